/*
 * experiment.h - the paper's per-image pipeline (README, "The experiment's transforms")
 * and the statistics over a set of images.
 *
 * For a prepared clean image x and a list of eps, the transforms are, in this
 * order: "x", "JPG(x)", then for each eps e: "Adv<e>(x)", "JPG(Adv<e>(x))",
 * "JPGnoise(Adv<e>(x))". Each is classified; the clean image's top label l_x
 * is the reference for every transform's top-label probability p(l_x | f(x)).
 *
 *     exp_params p = { .n_eps = 3, .eps = {1, 5, 10}, .quality = 75 };
 *     exp_result r[4];
 *     uint64_t seeds[4] = {1, 1, 1, 1};
 *     exp_run_batch(ctx, xs, 4, &p, seeds, r, err, sizeof err);
 *     for (t = 0; t < exp_n_transforms(&p); t++)
 *         printf("%s %f\n", exp_transform_name(&p, t, buf, sizeof buf),
 *                exp_top_label_prob(&r[0], t));
 *     exp_result_free(&r[0]); ...
 */
#ifndef ADJ_EXPERIMENT_H
#define ADJ_EXPERIMENT_H

#include <stdint.h>

#include "attack.h"
#include "exp_param.h"
#include "image.h"
#include "net.h"

#define EXP_MAX_TRANSFORMS (2 + 3 * EXP_MAX_EPS)

/** Which attack makes Adv_eps(x): the paper's FGSM, or an iterative one. */
typedef enum { EXP_FGSM = 0, EXP_BIM, EXP_PGD, EXP_LL } exp_attack_kind;

/** The threat model: the paper's attack on f, or an adaptive one on f(JPG_q(.)). */
typedef enum { EXP_ADAPT_NONE = 0, EXP_ADAPT_BPDA, EXP_ADAPT_EOT } exp_adaptive;

/** The attack; all zeros is the paper's FGSM. */
typedef struct {
    exp_attack_kind kind;
    int steps;         /**< iterative attacks; 0: 10 */
    int step_size;     /**< levels per step; 0: 1 */
    exp_adaptive adaptive; /**< BPDA at the job's quality, or EOT over eot_qualities */
    int n_eot;         /**< EOT's qualities; 0: 50, 60, 70, 75, 80, 90 */
    int eot_qualities[16];
} exp_attack;

typedef struct {
    int n_eps;
    int eps[EXP_MAX_EPS]; /**< pixel levels, 1..255 */
    int quality;          /**< JPEG quality 1..100 (the paper: 75) */
    exp_attack attack;    /**< zeros: FGSM */
} exp_params;

typedef enum {
    EXP_T_X, EXP_T_JPG_X, EXP_T_ADV, EXP_T_JPG_ADV, EXP_T_NOISE_ADV
} exp_transform_kind;

/**
 * Checks eps (1..255, at most EXP_MAX_EPS), quality and the attack (steps
 * 1..10000, step size 1..255, EOT qualities 1..100, an adaptive attack only
 * with an iterative one, EOT's qualities only with EOT); errors name the value.
 */
int exp_params_check(const exp_params *p, char *err, size_t errsz);

/** Number of transforms: 2 + 3 * n_eps. */
int exp_n_transforms(const exp_params *p);

/** Kind of transform t. */
exp_transform_kind exp_transform_kind_of(const exp_params *p, int t);

/** eps of transform t, 0 for x and JPG(x). */
int exp_transform_eps(const exp_params *p, int t);

/**
 * The transform of kind k, at eps (ignored for x and JPG(x)) and JPEG
 * quality (ignored for x and Adv; today a job has one, p->quality), or -1
 * when p has none.
 */
int exp_transform_find(const exp_params *p, exp_transform_kind k, int eps, int quality);

/** Writes transform t's name ("JPG(Adv5(x))") into buf; returns buf. */
const char *exp_transform_name(const exp_params *p, int t, char *buf, size_t size);

/**
 * What the pipeline gives for one image: the scores (label_x, probs, norms)
 * and, when asked for, the transformed images. An evaluation keeps only the
 * scores: its images are freed as soon as they are classified.
 */
typedef struct {
    int label_x;      /**< l_x: arg-max of the clean image */
    int n_transforms;
    int classes;
    float *probs;     /**< [n_transforms][classes], owned */
    atk_norms norms[EXP_MAX_EPS]; /**< the size of Adv_eps(x) - x for each eps */
    img_rgb *images;  /**< [n_transforms] the transformed 8-bit images, owned;
                           NULL when not kept (exp_run_batch_keep) */
} exp_result;

/**
 * Runs the pipeline for n prepared images (all of the model's input size):
 * one forward pass of the clean images, one backward pass for the gradient of
 * -log p(l_x | x), FGSM for every eps (or p->attack: BIM, PGD or iterative
 * least-likely class per eps, adaptive through JPG_q with BPDA or EOT; PGD's
 * start for image i and eps e seeded from seeds[i] and e), JPG and JPGnoise
 * (image i's permutation seeded by seeds[i]), and the variants classified in
 * batches of the context's max batch. out[i] (new) for each image: free with
 * exp_result_free.
 */
int exp_run_batch(net_ctx *ctx, const img_rgb *xs, int n, const exp_params *p,
                  const uint64_t *seeds, exp_result *out, char *err, size_t errsz);

/**
 * exp_run_batch, keeping image i's transformed images only when keep[i]
 * (keep NULL: every image's, as exp_run_batch). The others' images are freed
 * once their last variant is classified and out[i].images is NULL: the
 * scores are the same.
 */
int exp_run_batch_keep(net_ctx *ctx, const img_rgb *xs, int n, const exp_params *p,
                       const uint64_t *seeds, const int *keep, exp_result *out, char *err,
                       size_t errsz);

/** p(l_x | f(x)) of transform t. */
float exp_top_label_prob(const exp_result *r, int t);

/** Arg-max label of transform t. */
int exp_label(const exp_result *r, int t);

/** Frees a result (NULL and a zeroed struct are fine). */
void exp_result_free(exp_result *r);

/** A per-image seed from a run's seed and the image's name (stable, order-free). */
uint64_t exp_image_seed(uint64_t seed, const char *name);

#endif
