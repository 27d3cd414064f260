/*
 * graph.h - the graph engine: an immutable DAG of operators (common/ops.h)
 * run in topological order over a batch of images, and a per-worker context
 * with its activation buffers.
 *
 *     gr_graph *g;                       // built by a loader: onnx_load() (onnx.h)
 *     gr_ctx *ctx;
 *     char err[ADJ_ERRLEN];
 *     if (onnx_load("resnet18.onnx", NULL, &g, err, sizeof err) ||
 *         gr_ctx_new(g, 16, 0, &ctx, err, sizeof err))
 *         die(err);
 *     gr_forward(ctx, pixels, n, err, sizeof err);   // pixels [n][3][224][224]
 *     op_shape s;
 *     const float *logits = gr_output(ctx, 0, &s);   // [n][1000], borrowed
 *     gr_ctx_free(ctx);
 *     gr_free(g);
 *
 * A graph has one float input whose first dimension is the batch (or, for a
 * graph built unbatched, e.g. an ONNX conformance case, a fully static input
 * and n = 1) and one or more outputs. Building (gr_add_*, then gr_finalize)
 * infers every tensor's shape, folds every node whose inputs are all
 * constants into a constant (so shape computations such as
 * Shape -> Gather -> Unsqueeze -> Concat -> Reshape disappear), folds each
 * inference BatchNormalization into the Conv before it when that Conv feeds
 * only it, and drops nodes no output depends on. The constants it makes are
 * sealed (GR_DATA_SEALED): one that no kernel reads once the nodes are
 * prepared (a folded convolution's weights, once its Winograd U is made) is
 * freed, so the weights are held once, as the kernels read them. After
 * gr_finalize the graph is immutable and may be shared by any number of
 * threads, each with its own gr_ctx.
 *
 * Fusion (after BatchNormalization folding; gr_set_fusion(g, 0) turns it
 * off): a Relu, or a Clip with constant bounds (ReLU6), becomes the epilogue
 * of the Conv or Gemm producing its input when nothing else reads that
 * output, and a same-shape Add of a Conv's output and another tensor r (a
 * residual join, and the Relu after it) becomes that Conv's epilogue
 * y = act(conv + bias + r) (ops.h, op_epilogue): applied while each plane or
 * row is in cache, the Add's and Relu's outputs and their buffers gone. The
 * same float operations in the same order, so the same bits as the unfused
 * graph, forward and gradients: an Add fuses only when r is computed before
 * that Conv and no node between the two reads r (its gradient's parts then
 * sum in the same order). The backward masks the output's gradient in place
 * with the kept output (y > 0, lo < y < hi), then adds it to r's gradient.
 *
 * Memory plan: a context gives every run-time tensor a buffer for max_batch
 * images; a buffer is reused once the last node reading its tensor has run
 * (GR_KEEP_ALL keeps every activation); Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity and Dropout share their input's buffer instead of
 * copying it. A GR_BACKWARD context also keeps every tensor a backward
 * kernel reads (op_def.bwd_reads: Relu's output, MaxPool's input, Mul's
 * inputs... but not a Conv's input, whose input gradient needs only the
 * weights), copies the graph input if one reads it, and plans the gradient
 * buffers the same way in reverse order: a tensor's gradient gets a buffer
 * when its last reader's backward first adds to it and frees it once its
 * producer's backward has run.
 *
 * Backward: gr_backward runs the live nodes in reverse order, each row's
 * backward adding its inputs' gradients (ops.h); gr_backward_params also
 * gives the weight gradients of Conv and Gemm (ops.h, op_backward_params)
 * in the layout of the buffer the constants were borrowed from. Operators without a backward, or with a run-time
 * input it does not differentiate (Conv's W, LayerNormalization's Scale),
 * are refused by gr_backward_check / gr_ctx_new(GR_BACKWARD).
 *
 * Limits of this version: int64 tensors only as constants (shape
 * computations); the graph input is borrowed for the forward call.
 *
 * Conv algorithms (ops_conv.c): Winograd F(4x4,3x3) or F(2x2,3x3) for 3x3
 * stride-1 pad-1 one-group convolutions of 16 channels or more (the tile
 * size by lyr_wino_choose from the plane size), its transformed weights made
 * at finalize and owned by the node (op_prepare; gr_refresh after the
 * weights change), the batch's tiles in blocks; else im2col
 * over a chunk of images in one product (group 1), or per image (1x1 direct,
 * groups); depthwise by a direct kernel, planes in parallel.
 * Chosen from the node's shapes alone, never the batch.
 *
 * For the next steps:
 * - Fusion's epilogue inside the Winograd output transform and the im2col
 *   scatter (now a pass over the batch's output after their products), and
 *   its backward mask inside the convolutions' per-image loops.
 * - Weight gradients for MatMul (constant B) and the other operators with
 *   constants a trainer might learn (BatchNormalization is folded).
 * - The batch is always dimension 0 here. Models that move it (torch's
 *   MultiheadAttention transposes to [L, N, E] and merges N with the heads)
 *   need a per-tensor batch axis (and a "batch times k" dimension), not a flag.
 */
#ifndef ADJ_GRAPH_H
#define ADJ_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "status.h"

typedef struct gr_graph gr_graph;
typedef struct gr_ctx gr_ctx;

/* ---- building (loaders) ----------------------------------------------- */

/** A new, empty graph; *out is new: free with gr_free(). */
int gr_new(gr_graph **out, char *err, size_t errsz);

/** How gr_add_tensor's data is held. */
enum {
    GR_DATA_OWN = 0,  /**< malloc'd; the graph takes it and frees it */
    GR_DATA_EXTERN,   /**< lives as long as the graph (gr_add_mapping, gr_add_owned) */
    GR_DATA_SEALED,   /**< as GR_DATA_OWN, and nothing else reads or writes it after the
                           call (a loader's copy): gr_finalize frees it once no kernel
                           reads it (op_prepared_unread: a Winograd Conv's W) */
};

/**
 * Adds a named tensor. For a constant (initializer), data holds its
 * op_numel(shape) elements of dtype (data may be NULL for an empty tensor),
 * held as `hold` says, also when the call fails; for a value computed at run
 * time (the graph input, node outputs) data is NULL and is_const 0.
 * batched: dimension 0 is the batch (shape->d[0] == OP_DIM_BATCH); only for
 * the graph input. Names must be unique. *id gets the tensor's index.
 */
int gr_add_tensor(gr_graph *g, const char *name, op_dtype dtype, const op_shape *shape,
                  int batched, int is_const, void *data, int hold, int *id, char *err,
                  size_t errsz);

/** Index of the tensor of that name, or -1. */
int gr_find_tensor(const gr_graph *g, const char *name);

/**
 * Adds a node of the operator op_type (a row of ops.h's table; unknown types
 * are refused). in: n_in tensor indices (-1 for an absent optional input),
 * all already added; out: n_out tensors not yet produced by any node (add
 * them with gr_add_tensor, is_const 0). attrs are parsed now (borrowed for
 * the call); an attribute the operator does not take is refused. opset: the
 * model's ai.onnx version. Errors name the node, the operator and the
 * attribute.
 */
int gr_add_node(gr_graph *g, const char *name, const char *op_type, const int *in, int n_in,
                const int *out, int n_out, const op_attr *attrs, int n_attrs, int opset,
                char *err, size_t errsz);

/**
 * A read-only mapping (mmap) the graph unmaps when it is freed; the graph
 * takes it even when the call fails.
 */
int gr_add_mapping(gr_graph *g, void *addr, size_t len, char *err, size_t errsz);

/**
 * An object the graph releases (release(obj)) when it is freed: what
 * GR_DATA_EXTERN tensors point into, other than a mapping (the loader's
 * unpacked protobuf message). On failure obj is released at once.
 */
int gr_add_owned(gr_graph *g, void *obj, void (*release)(void *), char *err, size_t errsz);

/** Sets the graph input (one tensor) and outputs (n_out tensors). */
int gr_set_io(gr_graph *g, int input, const int *outputs, int n_out, char *err, size_t errsz);

/**
 * Shape inference, constant folding, BatchNormalization folding, dead-node
 * removal; then the graph is immutable. Errors name the node and operator.
 */
int gr_finalize(gr_graph *g, char *err, size_t errsz);

/**
 * Before gr_finalize: on (the default) or off, the fusion of activations and
 * residual Adds into the Conv or Gemm before them (see the top): off builds
 * the reference graph a test compares the fused one with, bit for bit.
 */
void gr_set_fusion(gr_graph *g, int on);

/**
 * Marks a finalized graph as computing one image: its input's and outputs'
 * first dimension is 1, and a context runs a batch of n images as n runs
 * of one (a backward recomputes each image's forward first). For models
 * whose graph moves or mixes the batch dimension (torch's export of
 * MultiheadAttention transposes it), loaded with the batch fixed to 1 by
 * onnx_load. The graph then reports itself as batched (gr_input_shape,
 * gr_output_info: OP_DIM_BATCH in d[0]), so callers need not know.
 * ADJ_ERR_ARG if the input or an output is batched or does not start with
 * 1, or an output is not float.
 */
int gr_set_per_image(gr_graph *g, char *err, size_t errsz);

/**
 * After the values of constants the graph borrows (GR_DATA_EXTERN weights a
 * trainer changed) have changed: recomputes what kernels derive from them
 * (op_prepare: Conv's Winograd weights). No context may run meanwhile.
 * Sealed constants (GR_DATA_SEALED, and those the graph made: folded
 * BatchNormalizations, folded nodes) never change: what was derived from one
 * the graph has freed stays as made.
 */
int gr_refresh(gr_graph *g, char *err, size_t errsz);

/** Frees the graph and what it holds (NULL and half-built graphs are fine). */
void gr_free(gr_graph *g);

/* ---- inspecting ------------------------------------------------------- */

/** The input's shape (d[0] OP_DIM_BATCH if batched) and whether it is batched. */
void gr_input_shape(const gr_graph *g, op_shape *shape, int *batched);

/**
 * Nonzero if the finalized graph has a constant of that name that no node
 * reads (folded away, or replaced by a folded BatchNormalization's weights):
 * the graph has dropped its data, and the owner of GR_DATA_EXTERN bytes may
 * free them.
 */
int gr_const_unused(const gr_graph *g, const char *name);

/**
 * Nonzero if the finalized graph has a constant of that name whose values
 * no kernel reads (gr_const_unused's, or one whose every reader derived what
 * it reads from it at finalize: a Winograd Conv's W), until gr_refresh,
 * which reads it again: a mapped file's pages under it may be dropped from
 * the process (they are read again from the file if touched).
 */
int gr_const_unread(const gr_graph *g, const char *name);

/** Number of outputs. */
int gr_n_outputs(const gr_graph *g);

/** Output i's shape, dtype and name (borrowed); any pointer may be NULL. */
void gr_output_info(const gr_graph *g, int i, op_shape *shape, op_dtype *dtype, const char **name);

/** Nodes that run at forward time (after folding). */
int gr_n_nodes(const gr_graph *g);

/** Operator name of run-time node i (0 .. gr_n_nodes-1), borrowed. */
const char *gr_node_op(const gr_graph *g, int i);

/** The same with what fusion folded into it ("Conv+Add+Relu"), borrowed. */
const char *gr_node_label(const gr_graph *g, int i);

/** The index, in gr_add_node's order (0, 1, ...), of run-time node i. */
int gr_node_source(const gr_graph *g, int i);
/**
 * Shape of run-time node i's input k (output 0) or output k (output 1), d[0]
 * OP_DIM_BATCH if batched: for profiles (a layer's size, its FLOP). Returns
 * 0, or -1 (shape untouched) if the node has no such input or output.
 */
int gr_node_shape(const gr_graph *g, int i, int output, int k, op_shape *shape);

/** Float parameters (constants read by run-time nodes). */
size_t gr_param_count(const gr_graph *g);

/**
 * Bytes of constant data the graph holds itself and still keeps (GR_DATA_OWN
 * and GR_DATA_SEALED constants, and those finalize made: folded nodes and
 * BatchNormalizations, less what it freed); not borrowed data, nor what
 * kernels derive (Winograd's U).
 */
size_t gr_const_bytes(const gr_graph *g);

/* ---- running ---------------------------------------------------------- */

/** gr_ctx_new flags. */
enum {
    GR_KEEP_ALL = 1, /**< keep every activation after the forward (no buffer reuse) */
    GR_BACKWARD = 2, /**< the context runs gr_backward: it keeps the activations the
                          backward kernels read (op_def.bwd_reads), and gradient buffers */
    GR_PARAM_GRADS = 4, /**< with GR_BACKWARD: gr_backward_params may give weight
                             gradients (it also keeps the inputs they read: Conv's X,
                             Gemm's A) */
};

/**
 * Whether gr_backward can run on the graph: every run-time input of every
 * live node has a gradient in its operator's row, and no output other than
 * a node's first is read (the backward takes only output 0's gradient).
 * Otherwise an error naming the node, the operator and the input.
 */
int gr_backward_check(const gr_graph *g, char *err, size_t errsz);

/**
 * A context for batches of up to max_batch images (1 for an unbatched
 * graph that is not per-image). *out is new: free with gr_ctx_free(). The graph must outlive it.
 * With GR_BACKWARD, fails as gr_backward_check does.
 */
int gr_ctx_new(const gr_graph *g, int max_batch, int flags, gr_ctx **out, char *err,
               size_t errsz);

/** Frees the context (NULL is fine). */
void gr_ctx_free(gr_ctx *c);

/**
 * Seconds each run-time node (0 .. gr_n_nodes-1, see gr_node_op) spent in
 * the forward passes of this context so far: fwd gets gr_n_nodes values.
 */
void gr_ctx_node_seconds(const gr_ctx *c, double *fwd);

/** The same for the backward passes (gr_n_nodes values). */
void gr_ctx_node_seconds_backward(const gr_ctx *c, double *bwd);

/** Bytes of activation and scratch memory the context holds. */
size_t gr_ctx_bytes(const gr_ctx *c);

/** The matrix-product kernels the context's products use (gemm_kernel_name). */
const char *gr_ctx_kernel(const gr_ctx *c);

/** Threads the context's products use. */
int gr_ctx_threads(const gr_ctx *c);

/**
 * Forward pass over n images (1 <= n <= max_batch). input: n images of the
 * input's per-image shape, row-major float (borrowed for the call).
 * Returns ADJ_OK or ADJ_ERR_ARG for a bad n.
 */
int gr_forward(gr_ctx *c, const float *input, int n, char *err, size_t errsz);

/**
 * Output i of the last forward (borrowed; valid until the next forward or
 * the context's end); shape (may be NULL) gets its shape with the batch
 * size in d[0]. Data is float unless gr_output_info says int64. NULL before
 * any forward.
 */
const void *gr_output(const gr_ctx *c, int i, op_shape *shape);

/**
 * Backward pass of the last gr_forward (a context made with GR_BACKWARD):
 * the input gradient only (gr_backward_params with no weight gradients):
 * given grad_out = dL/d output 0 (its shape with the run's n; borrowed),
 * writes grad_input = dL/d input ([n][input's per-image shape]). The live
 * nodes run in reverse order; a tensor read by several nodes sums their
 * parts in that order, so an image's gradient does not depend on its batch.
 * Returns ADJ_ERR_STATE without a forward or a GR_BACKWARD context.
 */
int gr_backward(gr_ctx *c, const float *grad_out, float *grad_input, char *err, size_t errsz);

/**
 * gr_backward that may also give weight gradients (a context made with
 * GR_BACKWARD | GR_PARAM_GRADS): for every float constant read by a node
 * whose operator has weight gradients (ops.h, op_params_grad: Conv's W and
 * B, Gemm's B and C) and whose values lie inside [base, base + n) (the
 * constants a builder borrowed from one buffer, e.g. a layer model's
 * weights: model_build_graph), dL/d constant summed over the batch is ADDED
 * to grad at the same offset: grad is in base's layout (the trainer's).
 * grad NULL: none. grad_input may be NULL when grad is not (a trainer's
 * pass: the input's gradient is then not computed). Deterministic for given
 * shapes (bit-reproducible), but a weight gradient is a sum over the batch.
 */
int gr_backward_params(gr_ctx *c, const float *grad_out, float *grad_input, const float *base,
                       size_t n, float *grad, char *err, size_t errsz);

/**
 * The loss sum_i -log softmax(z_i)[labels[i]] of output 0's logits z
 * ([n][K], K classes) and its input gradient, as net_backward (net.h):
 * the logits' gradient p - onehot(l) formed in double without cancellation
 * (op_xent_grad), an image's gradient scaled by a power of two when it
 * would underflow (gr_grad_exponent gives the exponent). grad_input as
 * gr_backward; losses: [n] (written) or NULL. ADJ_ERR_ARG for a label out
 * of range or an output 0 that is not [n][K].
 */
int gr_backward_loss(gr_ctx *c, const int *labels, float *grad_input, float *losses, char *err,
                     size_t errsz);

/**
 * e such that image i's gradient from the last gr_backward_loss is the true
 * gradient times 2^e (0 unless it was scaled up against underflow).
 */
int gr_grad_exponent(const gr_ctx *c, int i);

#endif
