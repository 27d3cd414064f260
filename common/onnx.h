/*
 * onnx.h - loads an ONNX model (.onnx, protobuf) into a graph (graph.h).
 *
 *     gr_graph *g;
 *     char err[ADJ_ERRLEN];
 *     if (onnx_load("resnet18.onnx", NULL, &g, err, sizeof err))
 *         fprintf(stderr, "%s\n", err);   // names the node, operator, attribute
 *
 * What is read: the ai.onnx operator set, versions 11 to 17 (other domains
 * are refused when a node uses them); one graph input of type float (graph
 * inputs that are also initializers are initializers); initializers and
 * Constant nodes from raw_data or the typed fields (float_data, int64_data,
 * int32_data; float, int64, int32 and bool tensors, the last two widened to
 * int64) and from external data files next to the model, memory-mapped
 * read-only (never copied when aligned) with their offset and length
 * checked against the file. Shapes are inferred and shape computations
 * folded into constants at load (graph.h). Anything else (an operator, an
 * attribute or a value this engine does not implement) is refused with
 * ADJ_ERR_UNSUPPORTED and a message naming the node, the operator and the
 * attribute: a model loads and runs exactly, or not at all.
 *
 * The batch: by default the input's first dimension is the batch, whatever
 * the file says it is (a symbolic "N" or the 1 of a model exported with a
 * fixed batch); its other dimensions must be numbers.
 *
 * Protobuf parsing is protobuf-c over Debian's onnx.proto (libonnx-dev),
 * generated at build time, after a wire-format walk (onnx_wire.h) that
 * leaves the initializers' raw_data where they lie: onnx_load maps the file
 * and reads each float or int64 initializer in place when it is aligned, or
 * copies it (in chunks whose file pages are dropped behind the copy), so the
 * weights are resident once; the pages of initializers the graph no longer
 * reads (a convolution's weights once its BatchNormalization is folded in)
 * are dropped too. onnx_load_buffer copies them (the buffer is borrowed).
 * Tensors are read as little-endian (as ONNX stores them), which is this
 * machine's order.
 */
#ifndef ADJ_ONNX_H
#define ADJ_ONNX_H

#include <stddef.h>

#include "graph.h"
#include "ops.h"
#include "status.h"

/** Opset range of the ai.onnx domain that the loader reads. */
#define ONNX_OPSET_MIN 11
#define ONNX_OPSET_MAX 17

/** A tensor read from a TensorProto file (conformance data, tests). */
typedef struct {
    char *name;     /**< owned; "" if the proto has none */
    op_dtype dtype; /**< OP_FLOAT or OP_INT64 */
    op_shape shape;
    void *data;     /**< owned, op_numel(&shape) elements (NULL when empty) */
} onnx_tensor;

/** Loader options; onnx_load takes NULL for the defaults (all zero). */
typedef struct {
    /** Nonzero: no batch; every dimension of the input is static and n = 1. */
    int unbatched;
    /**
     * Graph inputs given as constants (by name; a conformance case's second
     * and later inputs), so that a graph has one run-time input. Borrowed
     * for the call.
     */
    int n_bind;
    const char *const *bind_names;
    const onnx_tensor *const *bind;
    /** Largest model file in bytes (0: 2 GiB, protobuf's own limit). */
    size_t max_bytes;
    /** Nonzero: the graph without fusion (gr_set_fusion(g, 0)): the reference graph. */
    int no_fusion;
} onnx_opts;

/**
 * Loads the model at path; external data files are looked up in its folder.
 * *out is new: free with gr_free(). Errors: ADJ_ERR_IO (unreadable file),
 * ADJ_ERR_FORMAT (not a valid model: truncated or corrupt protobuf, a
 * missing tensor, wrong-sized data), ADJ_ERR_UNSUPPORTED (valid but not
 * implemented here), ADJ_ERR_LIMIT (over max_bytes).
 */
int onnx_load(const char *path, const onnx_opts *opts, gr_graph **out, char *err, size_t errsz);

/**
 * The same from a model in memory (len bytes, borrowed for the call);
 * base_dir is the folder for external data (NULL: external data refused).
 */
int onnx_load_buffer(const void *buf, size_t len, const char *base_dir, const onnx_opts *opts,
                     gr_graph **out, char *err, size_t errsz);

/** What a model file holds, without building it. */
typedef struct {
    int opset;             /**< ai.onnx version (0 if none is imported) */
    int n_inputs;          /**< graph inputs that are not initializers */
    char inputs[16][128];  /**< the first 16 of their names, in order */
    int n_outputs;
    int non_tensor_io;     /**< nonzero if an input or output is not a tensor (a sequence...) */
    char ops[1024];        /**< distinct op types in node order, comma-separated */
} onnx_info;

/** Reads a model's opset, inputs and operator types into *info. */
int onnx_inspect(const char *path, onnx_info *info, char *err, size_t errsz);

/** Reads a serialized TensorProto file; *out is new: free with onnx_tensor_free(). */
int onnx_tensor_load(const char *path, onnx_tensor **out, char *err, size_t errsz);

/** Frees a tensor (NULL is fine). */
void onnx_tensor_free(onnx_tensor *t);

#endif
