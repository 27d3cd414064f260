/*
 * attack.h - adversarial perturbations in exact 8-bit pixel units, and the
 * paper's "JPEG noise" control.
 *
 * All attacks keep images as exact 8-bit RGB (img_rgb): eps and step sizes
 * are integers in pixel levels (the paper's eps/255 on a 0..1 scale), so an
 * adversarial image survives a lossless PNG round trip and classifies the
 * same again.
 *
 * Random numbers come from rng.h: the same seed gives the same numbers on
 * every machine.
 */
#ifndef ADJ_ATTACK_H
#define ADJ_ATTACK_H

#include <stdint.h>

#include "image.h"
#include "net.h"
#include "rng.h"

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

/** Most qualities an EOT attack averages over. */
#define ATK_MAX_QUALITIES 16

/** Parameters of the iterative attacks. */
typedef struct {
    int eps;          /**< L-infinity radius in pixel levels, 0..255 */
    int steps;        /**< iterations, >= 1 */
    int step_size;    /**< pixel levels per step (alpha), 1..255 */
    int random_start; /**< PGD: start from a uniform point of the eps ball */
    int targeted;     /**< labels are targets: descend their loss (iterative least-likely class) */
    /** The threat model: 0 attacks the classifier f (the paper); 1 attacks
     *  f(JPG_q(.)) with BPDA (the gradient taken at JPG_q(y), JPEG's backward
     *  pass the identity); more is EOT, the mean of the BPDA gradients over
     *  the qualities. */
    int n_qualities;
    int qualities[ATK_MAX_QUALITIES]; /**< 1..100 each */
} atk_iter_params;

/** Checks the parameters; the message names the bad value. */
int atk_iter_params_check(const atk_iter_params *p, char *err, size_t errsz);

/**
 * The iterative attacks, all on exact 8-bit images:
 * - BIM / I-FGSM (Kurakin et al.): y_0 = x; PGD (Madry et al.), with
 *   random_start: y_0 = clip_{x,eps}(x + u), u uniform integers in
 *   [-eps, eps] drawn by rng.h from seeds[i] (image i's start depends on
 *   its seed only, not on the other images);
 * - each step y = clip_{x,eps}(y + s * step_size * sign(g)), clip_{x,eps}
 *   projecting to the eps ball around x and to 0..255, with s = +1 and g the
 *   gradient of -log p(labels[i] | .) or, targeted, s = -1 and labels[i] the
 *   target (the least-likely class for Kurakin's iterative LL);
 * - g is taken at y (non-adaptive), at JPG_q(y) (BPDA), or is the mean over
 *   the qualities of those (EOT), weighed by their true sizes.
 * outs[i] (new) get the final images. seeds may be NULL without random_start.
 * A step costs one forward and one backward pass per image (per quality).
 * Works in chunks of ctx's max batch; an image's result does not depend on
 * the chunk it is in.
 */
int atk_iterative(net_ctx *ctx, const img_rgb *xs, int n, const int *labels,
                  const uint64_t *seeds, const atk_iter_params *p, img_rgb *outs, char *err,
                  size_t errsz);

/** The size of a perturbation y - x of two images of one size. */
typedef struct {
    int linf;    /**< largest |y - x| over all values, in pixel levels */
    double l2;   /**< sqrt(sum (y - x)^2), in pixel levels */
    double psnr; /**< 10 log10(255^2 / mean (y - x)^2) in dB; INFINITY when y == x */
} atk_norms;

/** The perturbation's sizes; x and y must have one size. */
atk_norms atk_perturbation(const img_rgb *x, const img_rgb *y);

/**
 * JPGnoise(y) = clip(y + P (jpg - y), 0, 255): the JPEG change of every one of
 * the 3*w*h entries, moved by a uniform random permutation P (Fisher-Yates
 * with rng seeded by seed), added back to y. out (new) has y's size.
 */
int atk_jpeg_noise(const img_rgb *y, const img_rgb *jpg, uint64_t seed, img_rgb *out,
                   char *err, size_t errsz);

#endif
