/*
 * net.h - the engine: batched forward pass, softmax, and backward passes.
 *
 * A net_ctx is one worker's scratch space (activations, gradients, the
 * products' buffers) for a shared, immutable model. One thread uses a
 * context at a time; several contexts may share a model. Inputs are planar
 * float images [n][C][H][W] with pixel values on the 0..255 scale; the
 * context applies the model's preprocessing (model_get_preproc: a layer
 * spec's mean and std, an ONNX model's per-channel one) itself.
 *
 *     net_ctx *ctx;
 *     net_ctx_new(m, 16, &ctx, err, sizeof err);
 *     net_forward(ctx, pixels, n, probs);             // probs: [n][classes]
 *     net_backward(ctx, labels, grad, NULL, NULL);     // grad: d(-log p(l|x))/d pixel
 *     net_ctx_free(ctx);
 *
 * One engine: every model runs its graph (graph.h; model_graph: an ONNX
 * model's, or a layer model's built at load by model_build_graph), which
 * the model owns and every context shares (Winograd's transformed weights
 * are made once per model); the context holds only the graph's activations
 * and gradients (its memory plan, graph.h), the preprocessed input and the
 * logits. The same loss and logit gradient for every model (op_xent_grad),
 * the gradient with respect to the 0..255 pixels; weight gradients on
 * NET_ENGINE_GRAPH_TRAINING only (layer models: the trainer).
 *
 * Batch invariance: an image's probabilities, logits and gradient are the
 * same, bit for bit, whatever other images share its batch (and whatever
 * max_batch is): every product is gemm_f32 (gemm.h), whose elements do not
 * depend on the shapes, and each node's algorithm (im2col, 1x1, Winograd
 * F(4x4,3x3) or F(2x2,3x3) for 3x3 pad-1 convolutions) is chosen from its
 * shapes alone (ops.c).
 */
#ifndef ADJ_NET_H
#define ADJ_NET_H

#include "model.h"

typedef struct net_ctx net_ctx;

/**
 * A context for batches of up to max_batch images. *out is new: free with
 * net_ctx_free(). The model must outlive the context.
 */
int net_ctx_new(const model *m, int max_batch, net_ctx **out, char *err, size_t errsz);

/**
 * Call after changing the model's weights (a trainer's step, which owns the
 * model): recomputes what the model's graph derives from them (model_refresh:
 * Winograd's weights; the model is shared, so no other context of it may run
 * meanwhile), and the context's own graph's if it has one.
 */
void net_ctx_refresh(net_ctx *ctx);

/**
 * How the context computes a layer model's 3x3 pad-1 convolutions: -1, the
 * default (the model's graph: Winograd F(4x4) or F(2x2) per layer by its
 * plane size, im2col under 16 channels: lyr_wino_choose); 0, im2col (a graph the context builds and
 * owns, model_build_graph with MODEL_GRAPH_IM2COL: an accuracy reference and
 * a benchmark). An ONNX model takes -1 only. Forgets the last forward.
 * Returns ADJ_OK, ADJ_ERR_ARG for another m, or the graph's or memory's
 * error (the context then must not be used).
 */
int net_ctx_set_winograd(net_ctx *ctx, int m);

/** The engines (see net_ctx_set_engine). */
typedef enum {
    NET_ENGINE_GRAPH = 1, /**< the graph engine (graph.h), every context's start */
    NET_ENGINE_GRAPH_TRAINING = 2, /**< the graph engine with weight gradients (layer models:
                                        its context also keeps every Conv's and Gemm's input) */
} net_engine;

/**
 * Whether the context gives weight gradients: NET_ENGINE_GRAPH_TRAINING
 * reopens the graph context with them (GR_PARAM_GRADS: weight gradients of
 * Conv and Gemm in the weight file's layout, sums over the batch),
 * NET_ENGINE_GRAPH without (net_backward then gives ADJ_ERR_UNSUPPORTED for
 * grad_weights). An ONNX model takes NET_ENGINE_GRAPH only. Forgets the last
 * forward. ADJ_ERR_ARG, or the graph's or memory's error.
 */
int net_ctx_set_engine(net_ctx *ctx, net_engine e, char *err, size_t errsz);

/** The engine the context runs on. */
net_engine net_ctx_engine(const net_ctx *ctx);

/** Frees the context (NULL is fine). */
void net_ctx_free(net_ctx *ctx);

/** The model this context runs (borrowed). */
const model *net_ctx_model(const net_ctx *ctx);

/**
 * Seconds spent in each layer since the context (or its last
 * net_ctx_set_winograd / net_ctx_set_engine) was made, forward (fwd) and
 * backward (bwd), n_layers values each (either may be NULL): the graph's
 * nodes' times summed per layer (none for an ONNX model: n_layers is 0).
 */
void net_ctx_layer_seconds(const net_ctx *ctx, double *fwd, double *bwd);

/**
 * How layer i is computed, chosen from the layer alone (never from the batch
 * size): "im2col", "1x1", "winograd-2x2-3x3" or "winograd-4x4-3x3" (3x3
 * pad-1 convolutions), "fc", "relu", "maxpool"; "?" for another i. A static
 * string.
 */
const char *net_ctx_layer_algorithm(const net_ctx *ctx, int i);

/**
 * Images that went through a backward pass since the context was made (a
 * call on n images counts n): what an attack's gradient work costs.
 */
uint64_t net_ctx_backward_images(const net_ctx *ctx);

/** The largest batch this context takes. */
int net_ctx_max_batch(const net_ctx *ctx);

/** The matrix-product kernels the context uses ("avx2-fma 6x16", "portable"). */
const char *net_ctx_kernel(const net_ctx *ctx);

/** Threads the context's products use. */
int net_ctx_threads(const net_ctx *ctx);

/**
 * Bytes of memory the context holds: its graph context's activations,
 * gradients and scratch and its input and logit buffers; not the model's
 * weights or its graph's (Winograd's transformed weights are the model's).
 */
size_t net_ctx_bytes(const net_ctx *ctx);

/**
 * Forward pass over n images (1 <= n <= max_batch).
 * input: [n][C][H][W] pixels 0..255 (borrowed, not modified).
 * probs: [n][classes] softmax probabilities (written); may be NULL.
 * Keeps what the backward pass needs until the next forward.
 * Returns ADJ_OK or ADJ_ERR_ARG for a bad n.
 */
int net_forward(net_ctx *ctx, const float *input, int n, float *probs);

/** Logits (pre-softmax outputs) of the last forward: [n][classes], borrowed. */
const float *net_logits(const net_ctx *ctx);

/**
 * Backward pass of the loss sum_i -log p(labels[i] | x_i) for the images of
 * the last net_forward.
 * The logits' gradient p - onehot(l) is formed in double from the logits,
 * the label's entry as -sum_{k != l} p_k, so the direction stays right when
 * p_l rounds to 1 in float32 (a confident model).
 * grad_input: [n][C][H][W] gradient with respect to the 0..255 pixels
 *             (written), or NULL to skip the input gradient. Without
 *             grad_weights, an image whose logits' gradient is below 2^-64
 *             (a softmax saturated far past float32) gets its gradient times
 *             a power of two that brings it to about 1, so that nothing
 *             underflows: its direction and signs are exact, its size is not.
 * grad_weights: model_spec_param_count floats in weight-file layout that the
 *             weight gradients are ADDED to, or NULL to skip them.
 * losses: [n] per-image loss (written), or NULL; right to float32's relative
 *         precision however small (log1p of the other classes' mass).
 * Returns ADJ_ERR_STATE without a preceding forward, ADJ_ERR_ARG for a label
 * out of range, ADJ_ERR_UNSUPPORTED for grad_weights off
 * NET_ENGINE_GRAPH_TRAINING.
 */
int net_backward(net_ctx *ctx, const int *labels, float *grad_input, float *grad_weights,
                 float *losses);

/**
 * net_backward for the label-smoothed loss -sum_k q_k log p_k with the target
 * q = (1 - smoothing) onehot(labels[i]) + smoothing / classes (a trainer's
 * defence against a saturated softmax); smoothing 0 is net_backward.
 * ADJ_ERR_ARG unless 0 <= smoothing < 1.
 */
int net_backward_smoothed(net_ctx *ctx, const int *labels, double smoothing, float *grad_input,
                          float *grad_weights, float *losses);

/**
 * e such that image i's input gradient from the last net_backward is the true
 * gradient times 2^e: 0 unless it was scaled up against underflow (see
 * net_backward). Callers that add gradients of several passes (EOT) weigh
 * them with it.
 */
int net_grad_exponent(const net_ctx *ctx, int i);

/** Index of the largest of n values (the first one on a tie). */
int net_argmax(const float *v, int n);

/**
 * The k largest of n probabilities, in decreasing order (ties: lower index
 * first). idx gets k indices; k is clamped to n. Returns the number written.
 */
int net_topk(const float *p, int n, int k, int *idx);

#endif
