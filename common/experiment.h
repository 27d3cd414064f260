/*
 * experiment.h - the paper's per-image pipeline (README, "The experiment's transforms")
 * and the statistics over a set of images.
 *
 * For a prepared clean image x and a list of eps, the transforms are, in this
 * order: "x", "JPG(x)", then for each eps e: "Adv<e>(x)", "JPG(Adv<e>(x))",
 * "JPGnoise(Adv<e>(x))". Each is classified; the clean image's top label l_x
 * is the reference for every transform's top-label probability p(l_x | f(x)).
 *
 * The quality grid (several JPEG qualities q1..qQ): "x", "JPG<q>(x)" for each
 * q, then for each eps e: "Adv<e>(x)" and, for each q, "JPG<q>(Adv<e>(x))",
 * "JPGnoise<q>(Adv<e>(x))". Adv_e(x) is made once per eps (the gradient work
 * does not depend on q). With one quality the names and the order are the
 * paper's above. exp_transform_at describes transform t (kind, eps, quality).
 *
 * An adaptive attack (BPDA, EOT) has a twin: the same attack without
 * adaptation (same kind, steps, step size and PGD start), as a non-adaptive
 * job with the same parameters would run it (exp_params_twin). Its
 * transforms follow the attack's own, in the same order: for each eps e
 * "Adv<e>(x) <A>" and, for each q, "JPG<q>(Adv<e>(x)) <A>",
 * "JPGnoise<q>(Adv<e>(x)) <A>", A its label (exp_attack_label: "PGD-10");
 * their scores are those of the non-adaptive job, bit for bit. The attack's
 * own transforms keep their names and indices.
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

/** Adversarial images per image: each eps, twice with an adaptive attack (its twin's). */
#define EXP_MAX_ADV (2 * EXP_MAX_EPS)
#define EXP_MAX_TRANSFORMS (1 + EXP_MAX_QUALITY + EXP_MAX_ADV * (1 + 2 * EXP_MAX_QUALITY))

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
    int quality;          /**< JPEG quality 1..100 (the paper: 75); a grid's first */
    exp_attack attack;    /**< zeros: FGSM */
    /** The quality grid: 0 or 1, one quality (quality); 2..EXP_MAX_QUALITY distinct
     *  qualities in qualities[] with qualities[0] == quality (exp_params_set_qualities). */
    int n_quality;
    int qualities[EXP_MAX_QUALITY];
} exp_params;

typedef enum {
    EXP_T_X, EXP_T_JPG_X, EXP_T_ADV, EXP_T_JPG_ADV, EXP_T_NOISE_ADV, EXP_T_KIND_COUNT
} exp_transform_kind;

/** What transform t is: its kind, eps and JPEG quality (0 where they do not apply). */
typedef struct {
    exp_transform_kind kind;
    int eps;     /**< levels; 0 for x and JPG(x) */
    int quality; /**< 0 for x and Adv(x) */
    int ei;      /**< index of eps in p->eps, -1 for x and JPG(x) */
    int qi;      /**< index of quality in the grid, -1 for x and Adv(x) */
    int twin;    /**< 1: made by the non-adaptive twin of an adaptive attack */
    int ai;      /**< index of its Adv in exp_result.norms (ei, + n_eps for the twin), -1 for
                      x and JPG(x) */
} exp_transform;

/** Sets the qualities (n of them, 1..EXP_MAX_QUALITY) of p: quality, n_quality, qualities. */
void exp_params_set_qualities(exp_params *p, const int *q, int n);

/** Number of JPEG qualities: 1 without a grid. */
int exp_n_qualities(const exp_params *p);

/** Quality i (0 .. exp_n_qualities - 1). */
int exp_quality_at(const exp_params *p, int i);

/** Transform t described (0 <= t < exp_n_transforms). */
exp_transform exp_transform_at(const exp_params *p, int t);

/** The index of the transform of kind with eps index ei and quality index qi (each
 *  ignored where it does not apply) among the attack's own; -1 when out of range. */
int exp_transform_index(const exp_params *p, exp_transform_kind kind, int ei, int qi);

/** exp_transform_index, of the twin's transforms when twin (-1 without a twin, and for x
 *  and JPG(x), which are the attack's own). */
int exp_transform_index_twin(const exp_params *p, int twin, exp_transform_kind kind, int ei,
                             int qi);

/** 1 when p's attack is adaptive and so has a non-adaptive twin, else 0. */
int exp_has_twin(const exp_params *p);

/** p with its attack's adaptation removed (adaptive none, no EOT qualities): the twin. */
exp_params exp_params_twin(const exp_params *p);

/** The parameters transform t was made with: the twin's for the twin's transforms, else *p. */
exp_params exp_transform_params(const exp_params *p, int t);

/** Adversarial images per image: n_eps, 2 n_eps with a twin (exp_result.norms' entries). */
int exp_n_adv(const exp_params *p);

/** The index of the twin's first transform: exp_n_transforms without a twin. */
int exp_twin_first(const exp_params *p);

/** "x", "jpg", "adv", "jpg_adv", "noise_adv": the kind's name in results and rows. */
const char *exp_transform_kind_name(exp_transform_kind kind);

/**
 * Checks eps (1..255, at most EXP_MAX_EPS), the qualities (1..100, distinct,
 * at most EXP_MAX_QUALITY) and the attack (steps 1..10000, step size 1..255,
 * EOT qualities 1..100, an adaptive attack only with an iterative one, EOT's
 * qualities only with EOT, BPDA with one quality: it attacks JPG_q); errors
 * name the value.
 */
int exp_params_check(const exp_params *p, char *err, size_t errsz);

/**
 * The attack as it runs: for bim, pgd and ll the steps and step size, and
 * for EOT its qualities, filled in with their defaults (EXP_DEFAULT_*) when
 * zero; FGSM as it is.
 */
exp_attack exp_attack_resolved(const exp_params *p);

/** The attack's short label into buf ("FGSM", "PGD-10", "BPDA-PGD-10", "EOT-LL-5"); buf. */
const char *exp_attack_label(const exp_params *p, char *buf, size_t size);

/** 1 when a and b run the same attack (after exp_attack_resolved), else 0. */
int exp_attack_equal(const exp_params *a, const exp_params *b);

/**
 * The threat model in one sentence, into buf; returns buf: "non-adaptive:
 * the attacker targets f and does not know JPEG follows (the paper)",
 * "adaptive: BPDA through JPG_q at q=75 (...)" or "adaptive: EOT over
 * qualities 50,60,... (...)".
 */
const char *exp_threat_model(const exp_params *p, char *buf, size_t size);

/** Number of transforms: 1 + Q + n_eps * (1 + 2 Q) for Q qualities (2 + 3 n_eps for one),
 *  plus n_eps * (1 + 2 Q) of the twin with an adaptive attack. */
int exp_n_transforms(const exp_params *p);

/** Kind of transform t. */
exp_transform_kind exp_transform_kind_of(const exp_params *p, int t);

/** eps of transform t, 0 for x and JPG(x). */
int exp_transform_eps(const exp_params *p, int t);

/**
 * The transform of kind k, at eps (ignored for x and JPG(x)) and JPEG
 * quality (ignored for x and Adv), among the attack's own, or -1 when p has none.
 */
int exp_transform_find(const exp_params *p, exp_transform_kind k, int eps, int quality);

/** Writes transform t's name ("JPG(Adv5(x))"; in a grid "JPG75(Adv5(x))"; the twin's
 *  "JPG(Adv5(x)) PGD-10") into buf; returns buf. */
const char *exp_transform_name(const exp_params *p, int t, char *buf, size_t size);

/** Its display name: the name, and for an adaptive attack's own adversarial transforms the
 *  attack's label after it ("JPG(Adv5(x)) BPDA-PGD-10" beside the twin's "JPG(Adv5(x))
 *  PGD-10"); returns buf. */
const char *exp_transform_label(const exp_params *p, int t, char *buf, size_t size);

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
    int n_adv;        /**< entries of norms: exp_n_adv */
    int twin_first;   /**< exp_twin_first with a twin, 0 without */
    atk_norms norms[EXP_MAX_ADV]; /**< the size of Adv_eps(x) - x for each eps (then the
                                       twin's for each eps) */
    img_rgb *images;  /**< [n_transforms] the transformed 8-bit images, owned;
                           NULL when not kept (exp_run_batch_keep) */
} exp_result;

/**
 * Runs the pipeline for n prepared images (all of the model's input size):
 * one forward pass of the clean images, one backward pass for the gradient of
 * -log p(l_x | x), FGSM for every eps (or p->attack: BIM, PGD or iterative
 * least-likely class per eps, adaptive through JPG_q with BPDA or EOT, and then
 * the same without adaptation, the twin; PGD's start for image i and eps e
 * seeded from seeds[i] and e, for both), JPG and JPGnoise
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

/**
 * The model-free middle of exp_run_batch for one image under FGSM (p's
 * attack kind EXP_FGSM), for a caller that runs the passes itself (the
 * daemon's job pipeline: the model thread runs only full passes): from x's
 * clean pass (its arg-max label_x and probabilities probs_x [classes]) and
 * the gradient of -log p(label_x | x) in x's interleaved layout (atk_gradient),
 * *r (new; exp_result_free) gets label_x, probs[0] and every transformed
 * image (Adv for each eps, JPG, JPGnoise seeded by seed) with its norms; the
 * caller classifies images[1 .. n_transforms-1] into probs[t]. The same
 * numbers as exp_run_batch (the engine is batch invariant).
 */
int exp_fgsm_variants(const exp_params *p, const img_rgb *x, const float *grad,
                      const float *probs_x, int label_x, int classes, uint64_t seed,
                      exp_result *r, char *err, size_t errsz);

/** p(l_x | f(x)) of transform t. */
float exp_top_label_prob(const exp_result *r, int t);

/** Arg-max label of transform t. */
int exp_label(const exp_result *r, int t);

/** Frees a result's images (images NULL after); the scores stay. */
void exp_result_drop_images(exp_result *r);

/** Frees a result (NULL and a zeroed struct are fine). */
void exp_result_free(exp_result *r);

/** A per-image seed from a run's seed and the image's name (stable, order-free). */
uint64_t exp_image_seed(uint64_t seed, const char *name);

#endif
