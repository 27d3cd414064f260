/*
 * ops.h - the operator kernels of the graph engine (common/graph.h), one row
 * per operator in a table: its name, the attributes it accepts, how it reads
 * them (parse), how it computes its outputs' shapes (infer), how much scratch
 * a call needs, its forward kernel, and its backward kernel (the input
 * gradient), so that adding an operator is adding a row.
 *
 *     const op_def *d = op_find("Conv");           // NULL: not supported
 *     void *params = calloc(1, d->params_size);
 *     d->parse(params, attrs, n_attrs, opset, err, sizeof err);
 *     d->infer(params, in, n_in, out, n_out, err, sizeof err);  // once, at load
 *     d->forward(params, in_at_run_time, n_in, out, n_out, scratch);
 *     d->backward(params, in, n_in, out, n_out, dy, dx, scratch, gemm); // dx += dL/din
 *
 * Tensors. A tensor is an op_tensor: element type, shape, row-major data. A
 * *batched* tensor's first dimension is the batch: at load time (parse,
 * infer) it holds OP_DIM_BATCH, at run time the number of images n. Shape
 * inference keeps the batch in dimension 0 of every batched tensor and
 * refuses an operator that would move it or mix images (a Concat, Softmax,
 * Transpose or Flatten across axis 0 of a batched tensor). Unbatched tensors
 * have fully static shapes.
 *
 * Batch invariance. Every kernel gives an image the same bits whatever batch
 * it is in: algorithms are chosen from the node's per-image shapes, never
 * from n, and products (Conv, Gemm, MatMul) are gemm_f32 (gemm.h), whose
 * elements do not depend on the matrix's shape: a Conv runs one product per
 * image and group, Gemm and MatMul one for the whole batch.
 *
 * Kernels take const inputs, allocate nothing and do no I/O; any memory they
 * need beyond their outputs is `scratch` (op_def.scratch floats, 64-byte
 * aligned). Outputs never alias inputs.
 *
 * Integer tensors (int64) exist for shape computations (Shape, Gather,
 * Concat, Unsqueeze, Reshape, Slice, arithmetic, ConstantOfShape, Equal,
 * Where...; a bool tensor is int64 0 or 1): the graph folds them
 * into constants at load time; at run time every non-constant tensor is float.
 */
#ifndef ADJ_OPS_H
#define ADJ_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"
#include "status.h"

/** Largest tensor rank. */
#define OP_MAX_RANK 8

/** A batched tensor's first dimension at load time (its size comes at run time). */
#define OP_DIM_BATCH (-1)

/**
 * The batch size as a value inside an int64 shape tensor (what Shape gives
 * for dimension 0 of a batched tensor); Reshape reads it back as "the batch".
 * No arithmetic is done on it: an operator that would is refused.
 */
#define OP_BATCH_VALUE (INT64_MIN + 7)

/** Element types, numbered as ONNX's TensorProto.DataType. 0: absent input. */
typedef enum {
    OP_NONE = 0,
    OP_FLOAT = 1,
    OP_INT64 = 7,
} op_dtype;

/** Size in bytes of one element of a dtype (0 for OP_NONE). */
size_t op_dtype_size(op_dtype t);

/** ONNX's name of a dtype ("float", "int64"). */
const char *op_dtype_name(op_dtype t);

typedef struct {
    int rank;                 /**< 0 .. OP_MAX_RANK; 0 is a scalar */
    int64_t d[OP_MAX_RANK];   /**< dimensions; d[0] may be OP_DIM_BATCH */
} op_shape;

/** Number of elements; a dimension OP_DIM_BATCH counts as 1 (one image). */
size_t op_numel(const op_shape *s);

/** Writes "[1,3,224,224]" ("N" for the batch) into buf; returns buf. */
char *op_shape_str(const op_shape *s, char *buf, size_t size);

typedef struct {
    op_dtype dtype;   /**< OP_NONE for an absent optional input */
    int batched;      /**< d[0] is the batch */
    op_shape shape;
    void *data;       /**< row-major elements; at load time non-NULL only for constants */
} op_tensor;

/* ---- attributes ------------------------------------------------------- */

typedef enum {
    OP_ATTR_INT,
    OP_ATTR_FLOAT,
    OP_ATTR_STRING,
    OP_ATTR_INTS,
    OP_ATTR_FLOATS,
    OP_ATTR_TENSOR,   /**< a tensor: n elements of tdtype; one element's value in i or f */
    OP_ATTR_OTHER,    /**< a type no operator here reads (graph, sparse tensor...) */
} op_attr_type;

/** One attribute of a node, borrowed from the loader for the parse call. */
typedef struct {
    const char *name;
    op_attr_type type;
    int64_t i;
    float f;
    const char *s;          /**< OP_ATTR_STRING, NUL-terminated */
    const int64_t *ints;    /**< OP_ATTR_INTS: n values */
    const float *floats;    /**< OP_ATTR_FLOATS: n values */
    size_t n;
    op_dtype tdtype;        /**< OP_ATTR_TENSOR: its type (OP_NONE: another than float, int64) */
} op_attr;

/* ---- the table -------------------------------------------------------- */

/** Row flags. */
enum {
    OPF_SHAPE_ONLY = 1, /**< reads only its inputs' shapes (Shape): always folded at load */
    OPF_ALIAS = 2,      /**< output 0 has input 0's bytes (Identity, Reshape...): the
                             graph may give both one buffer and not call forward */
};

/** What a backward kernel reads of the forward values (op_def.bwd_reads). */
#define OPB_IN(i) (1 << (i))  /**< input i (0..7) */
#define OPB_OUT (1 << 16)     /**< output 0 */
#define OPB_ALL (~0)          /**< bwd_inputs: every input, however many (Concat) */

typedef struct op_def {
    const char *name;        /**< ONNX op_type */
    const char *attrs;       /**< accepted attribute names, comma-separated ("" none) */
    int min_in, max_in;      /**< number of inputs (optional ones may be absent) */
    int min_out, max_out;
    int flags;               /**< OPF_* */
    /**
     * Oldest ai.onnx opset whose definition of this operator is the one
     * implemented here (0: the loader's ONNX_OPSET_MIN, 11). Older only for
     * operators unchanged since (GlobalAveragePool 1, HardSigmoid 6); newer
     * for operators added later (HardSwish 14, LayerNormalization 17).
     */
    int min_opset;
    size_t params_size;      /**< bytes of the node's parameter block (zeroed before parse) */

    /**
     * Reads the attributes (only names from `attrs` are passed) into params;
     * opset is the model's ai.onnx version. Refuses an unsupported value with
     * ADJ_ERR_UNSUPPORTED and a message naming the attribute (the caller
     * prefixes the node and operator).
     */
    int (*parse)(void *params, const op_attr *a, int n_attr, int opset, char *err, size_t errsz);

    /**
     * Shape inference: from the inputs (dtype, batched, shape; data of
     * constant inputs) sets each present output's dtype, batched and shape,
     * and may complete params (resolved pads, target shapes). Inputs that
     * must be constants (Reshape's shape, Slice's starts...) are refused
     * otherwise. On entry out[i].dtype is OP_NONE for an output the graph
     * does not use and nonzero for one it uses. Errors as parse.
     */
    int (*infer)(void *params, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                 char *err, size_t errsz);

    /**
     * Scratch floats one forward call needs (per-image shapes as infer saw
     * them, except that a batched tensor's d[0] holds the context's max_batch,
     * the largest n a call gets: a kernel may lower several images into one
     * product); may be NULL.
     */
    size_t (*scratch)(const void *params, const op_tensor *in, int n_in, const op_tensor *out);

    /**
     * The kernel: OVERWRITES every present output (shapes as infer gave
     * them, with the run's n in dimension 0 of batched tensors). Cannot fail.
     * Products go through gemm (the caller's workspace, gemm.h), whose
     * elements do not depend on the batch.
     */
    void (*forward)(const void *params, const op_tensor *in, int n_in, op_tensor *out,
                    int n_out, float *scratch, gemm_ws *gemm);

    /**
     * The input gradient (NULL: the operator has none; a graph that needs
     * its gradient is refused): ADDS dL/d in[i] to dx[i] for every i with
     * dx[i] != NULL (the caller zeroes a gradient before its first writer,
     * so that a tensor read by several nodes, or twice by one, sums its
     * parts), given dy = dL/d out[0] (the gradient of the other outputs is
     * taken as zero: the graph refuses a backward through an operator whose
     * other outputs are read). in and out are the forward's views (run-time
     * shapes); only the data that bwd_reads names (and constants) is valid,
     * the rest is NULL. dx[i] and dy have in[i]'s and out[0]'s shapes.
     * Batch invariant as forward: an image's gradient does not depend on the
     * others (per-image loops, gemm_f32, fixed summation orders). Cannot fail.
     * Weight gradients (the trainer's) will be a separate member, so that an
     * input-gradient pass never pays for them.
     */
    void (*backward)(const void *params, const op_tensor *in, int n_in, const op_tensor *out,
                     int n_out, const float *dy, float *const *dx, float *scratch, gemm_ws *gemm);
    /** Scratch floats one backward call needs (as `scratch`); may be NULL. */
    size_t (*bwd_scratch)(const void *params, const op_tensor *in, int n_in, const op_tensor *out);
    int bwd_reads;           /**< OPB_* bits: the forward values backward reads */
    int bwd_inputs;          /**< OPB_IN bits: the inputs whose gradient backward gives */

} op_def;

/** The row of an ONNX operator type, or NULL if it is not supported. */
const op_def *op_find(const char *name);

/** Row i of all operators (borrowed, static; 0, 1, ...), NULL past the last. */
const op_def *op_row(int i);

/** Nonzero if the row's backward gives the gradient of input i. */
int op_grad_input(const op_def *d, int i);

/** Nonzero if the row's backward reads input i (output 0 for i = -1) of the forward. */
int op_bwd_reads(const op_def *d, int i);

/** Nonzero if name is in the comma-separated list attrs. */
int op_attr_accepted(const op_def *d, const char *name);

/*
 * Derived state. A few operators keep what their kernels derive from their
 * constant inputs (Conv: its Winograd-transformed weights) in memory their
 * params own; a second small table (op_hooks, ops_int.h; not op_def: rows
 * stay as they are) lists them.
 */

/**
 * Called by the graph once the node's constant inputs are final (after
 * folding), and again by gr_refresh after their values change (a trainer's
 * step): (re)computes the derived state. Only a live node's params get it, so
 * forward also works without it (a node folded at load runs before). in: the
 * node's inputs as infer saw them. ADJ_OK for an operator without state,
 * ADJ_ERR_NOMEM on failure.
 */
int op_prepare(const op_def *d, void *params, const op_tensor *in, int n_in, char *err,
               size_t errsz);

/** Frees what op_prepare made (the caller then frees params itself). */
void op_release(const op_def *d, void *params);

/**
 * After op_prepare: the constant inputs (OPB_IN bits, inputs 0..7) that none
 * of the node's kernels (forward, input gradient, weight gradients) reads any
 * more, the derived state standing for them (Conv's W once its Winograd
 * weights U are made), so that a graph holding the only copy may free them;
 * 0 for operators without derived state.
 */
int op_prepared_unread(const op_def *d, const void *params);

/*
 * Weight gradients (the trainer's), in the same second table: Conv's W and B,
 * Gemm's B and C. A separate pass from the input gradient (op_def.backward),
 * so that an attack never pays for them.
 */

/** Nonzero if op_backward_params gives the gradient of input i. */
int op_params_grad(const op_def *d, int i);

/** Nonzero if op_backward_params reads input i's forward values (Conv's X, Gemm's A). */
int op_params_reads(const op_def *d, int i);

/** Scratch floats op_backward_params needs (as op_def.scratch: d[0] the max batch). */
size_t op_params_scratch(const op_def *d, const void *params, const op_tensor *in, int n_in,
                         const op_tensor *out);

/**
 * ADDS dL/d in[i] to dw[i] for every i with dw[i] != NULL and
 * op_params_grad(d, i), summed over the batch, given dy = dL/d out[0]; the
 * views as backward's (the inputs op_params_reads names are valid).
 * Deterministic: fixed summation orders for given shapes. Cannot fail.
 */
void op_backward_params(const op_def *d, const void *params, const op_tensor *in, int n_in,
                        const op_tensor *out, int n_out, const float *dy, float *const *dw,
                        float *scratch, gemm_ws *gemm);

/* ---- helpers other modules use --------------------------------------- */

/**
 * Folds an inference-mode BatchNormalization into the convolution before it:
 * W [M][K] (K = C/group*kh*kw) and bias [M] (may be NULL: then zeros) become
 * W' = W * s, b' = (b - mean) * s + beta with s = scale / sqrt(var + eps).
 * w_out [M*K] and b_out [M] are written (w_out may equal W).
 */
void op_fold_bn(const float *W, const float *bias, int M, size_t K, const float *scale,
                const float *beta, const float *mean, const float *var, float eps, float *w_out,
                float *b_out);

/** The epsilon of a parsed BatchNormalization node's params. */
float op_bn_epsilon(const void *bn_params);

/** Logit gradients below this are scaled up by op_xent_grad (see there). */
#define OP_TINY_GRAD 0x1p-64
/** op_xent_grad's largest exponent (a softmax saturated past e^-(7e8)). */
#define OP_MAX_GRAD_EXP (1 << 30)

/**
 * The softmax cross-entropy loss -log p_l of logits z[K] and its gradient
 * d[K] = p - onehot(l) (written), computed in double from the logits with
 * the label's entry as -sum_{k != l} p_k: formed as p_l - 1 in float it is
 * exactly 0 once p_l rounds to 1, which drops half of the direction. Returns
 * the loss (m - z_l) + log1p(sum_{k != argmax} e^(z_k - m)), m the largest
 * logit, right however small it is. With `rescale`, a d whose largest entry
 * is below OP_TINY_GRAD is multiplied by a power of two (exact) bringing that
 * entry to [0.5, 1), and *exp2 gets its exponent (the true d is d * 2^exp2);
 * else *exp2 is 0. Computed in logs, so that nothing underflows even when
 * the logits' gaps exceed double's range (e^-745): rescaled, each entry is
 * formed relative to the label's from the logits' differences (e^(z_k - m2) /
 * sum_{j != l} e^(z_j - m2), m2 the largest logit but the label's), so the
 * direction is exact at any gap; *exp2 is capped at OP_MAX_GRAD_EXP (past
 * it, d is the direction and 2^exp2 understates the scale). With label smoothing alpha > 0
 * (0 for the attacks) the target is q = (1 - alpha) onehot(l) + alpha / K: d
 * gets alpha (onehot(l) - 1/K) added before it is rounded, and the loss is
 * -sum_k q_k log p_k. Shared by net.c and graph.c.
 */
double op_xent_grad(const float *z, int K, int l, double alpha, int rescale, float *d, int *exp2);

/* ---- fused epilogues (graph.h's fusion pass) -------------------------- */

/*
 * What the graph folds into the Conv or Gemm producing a tensor that only one
 * node reads: a Relu or a Clip with constant bounds after it, and for a Conv
 * a same-shape Add of another run-time tensor (a residual join; its Relu
 * too). The kernel applies it to each block of its output as it writes it:
 * y = act(y + r), the same float operations as the unfused nodes (the sum
 * after the bias, then x > 0 ? x : 0, or x < lo ? lo : x > hi ? hi : x), so
 * the same bits. The backward reads the kept output as the mask (y > 0,
 * lo < y < hi hold exactly where they held for the input).
 */
enum { OP_ACT_NONE, OP_ACT_RELU, OP_ACT_CLIP };

typedef struct {
    int act;        /**< OP_ACT_* */
    float lo, hi;   /**< OP_ACT_CLIP's bounds */
    int residual;   /**< Conv: its input 3 (the output's shape, run time) is added before act */
} op_epilogue;

/** The epilogue in a node's params (Conv, Gemm: zeroed by parse), or NULL if the operator takes none. */
op_epilogue *op_epilogue_of(const op_def *d, void *params);

/**
 * Whether a parsed and inferred node is an activation an epilogue can take
 * (Relu; Clip, its bounds constants): 1 and *e set (residual 0), else 0.
 */
int op_epilogue_act(const op_def *d, const void *params, op_epilogue *e);

/** y[i] = act(y[i] + r[i]) (r NULL: act(y[i])) for i < n: one block, on the caller's thread. */
void op_epilogue_run(const op_epilogue *e, float *y, const float *r, size_t n);

/**
 * The epilogue's backward: dg[i] = 0 + (act passes y[i] ? dy[i] : 0) (the
 * unfused activation's gradient into a zeroed buffer; dg may be dy, in
 * place), then dr[i] += dg[i] when dr is not NULL (the residual's part, as
 * Add's); in parallel parts. y: the kept (fused) output. A residual whose
 * gradient buffer is still to be zeroed can be dg itself (dr NULL): the same
 * values, without the zeroing and a pass over dy.
 */
void op_epilogue_backward(gemm_ws *gemm, const op_epilogue *e, const float *y, const float *dy,
                          float *dg, float *dr, size_t n);

#endif
