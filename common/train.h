/*
 * train.h - stochastic gradient descent for a model that owns its weights.
 *
 * One step: forward over a batch, backward to the weight gradients (no input
 * gradient) of the cross-entropy, label-smoothed if trn_params.smoothing > 0
 * (net_backward_smoothed), then SGD with momentum and L2 weight decay (on weights, not
 * biases) on the batch-mean gradient:
 *     v = momentum * v - lr * (g / n + decay * w);   w += v
 *
 *     trn_state *t;
 *     trn_new(m, 64, &t, err, sizeof err);          // m from model_create
 *     for (...) trn_step(t, x, labels, n, lr, &loss, &correct);
 *     trn_free(t);
 */
#ifndef ADJ_TRAIN_H
#define ADJ_TRAIN_H

#include "net.h"

typedef struct trn_state trn_state;

typedef struct {
    float momentum;     /**< e.g. 0.9 */
    float weight_decay; /**< e.g. 5e-4 */
    float smoothing;    /**< label smoothing 0..1 (0: plain cross-entropy), e.g. 0.1 */
} trn_params;

/**
 * A trainer for m (which must own its weights: model_create) with batches of
 * up to max_batch images. *out is new: free with trn_free().
 */
int trn_new(model *m, int max_batch, const trn_params *p, trn_state **out, char *err, size_t errsz);

/** Frees the trainer (NULL is fine); the model stays. */
void trn_free(trn_state *t);

/** The trainer's engine context (borrowed), e.g. to evaluate between epochs. */
net_ctx *trn_ctx(trn_state *t);

/**
 * One SGD step on n images x ([n][C][H][W], pixels 0..255) with labels.
 * loss (if not NULL) gets the batch's summed (smoothed) loss, correct (if not NULL) the
 * number of images whose arg-max equals the label, both before the update.
 * ADJ_ERR_FORMAT if the loss is not finite (the weights are then unchanged).
 */
int trn_step(trn_state *t, const float *x, const int *labels, int n, float lr, double *loss,
             int *correct);

/**
 * He-uniform initialisation of every weight (bound sqrt(6 / fan_in)) and zero
 * biases, from a seeded generator; then model_refresh (the model's graph).
 */
void trn_init_weights(model *m, uint64_t seed);

#endif
