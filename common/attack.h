/*
 * attack.h - adversarial perturbations in exact 8-bit pixel units, and the
 * paper's "JPEG noise" control.
 *
 * All attacks keep images as exact 8-bit RGB (img_rgb): eps and step sizes
 * are integers in pixel levels (the paper's eps/255 on a 0..1 scale), so an
 * adversarial image survives a lossless PNG round trip and classifies the
 * same again.
 *
 * Random numbers come from atk_rng (xoshiro256** seeded through splitmix64):
 * the same seed gives the same numbers on every machine.
 */
#ifndef ADJ_ATTACK_H
#define ADJ_ATTACK_H

#include <stdint.h>

#include "image.h"
#include "net.h"

/** xoshiro256** state; seed with atk_rng_seed. */
typedef struct { uint64_t s[4]; } atk_rng;

/** Seeds the generator from one 64-bit value (splitmix64 expansion). */
void atk_rng_seed(atk_rng *r, uint64_t seed);

/** The next 64 random bits. */
uint64_t atk_rng_next(atk_rng *r);

/** A uniform integer in [0, bound) without modulo bias (bound >= 1). */
uint64_t atk_rng_below(atk_rng *r, uint64_t bound);

/**
 * FGSM: out = clip(x + eps * sign(grad), 0, 255) elementwise over n values.
 * x and grad must be in the same layout (e.g. interleaved RGB); sign(0) = 0.
 */
void atk_fgsm(const uint8_t *x, const float *grad, size_t n, int eps, uint8_t *out);

/**
 * Input gradient of -log p(labels[i] | x_i) for n prepared images, returned
 * in the images' interleaved layout: grad is [n][h][w][3]. Runs one forward
 * and one backward pass on ctx (n <= its max batch). With argmax_labels
 * nonzero, labels is output: it receives each image's arg-max class of that
 * forward pass (l_x), which is then the label of the loss. probs, if not
 * NULL, receives [n][classes] of the forward pass.
 */
int atk_gradient(net_ctx *ctx, const img_rgb *xs, int n, int *labels, int argmax_labels,
                 float *grad, float *probs, char *err, size_t errsz);

/** Parameters of the iterative attacks. */
typedef struct {
    int eps;          /**< L-infinity radius in pixel levels, >= 0 */
    int steps;        /**< iterations, >= 1 */
    int step_size;    /**< pixel levels per step (alpha), >= 1 */
    int random_start; /**< PGD: start from a uniform point of the eps ball */
    uint64_t seed;    /**< PGD's random start */
} atk_iter_params;

/**
 * BIM / I-FGSM (Kurakin et al.) and, with random_start, PGD (Madry et al.):
 * y_0 = x (or x + uniform integers in [-eps, eps], clipped), then for each
 * step y = clip(clip(y + step_size * sign(grad_y), x - eps, x + eps), 0, 255),
 * where grad_y is the gradient of -log p(labels[i] | y). Every iterate is an
 * exact 8-bit image in the eps ball. outs[i] (new) get the final images.
 * Works in chunks of ctx's max batch.
 */
int atk_iterative(net_ctx *ctx, const img_rgb *xs, int n, const int *labels,
                  const atk_iter_params *p, img_rgb *outs, char *err, size_t errsz);

/**
 * JPGnoise(y) = clip(y + P (jpg - y), 0, 255): the JPEG change of every one of
 * the 3*w*h entries, moved by a uniform random permutation P (Fisher-Yates
 * with atk_rng seeded by seed), added back to y. out (new) has y's size.
 */
int atk_jpeg_noise(const img_rgb *y, const img_rgb *jpg, uint64_t seed, img_rgb *out,
                   char *err, size_t errsz);

#endif
