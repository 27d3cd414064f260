/*
 * model.h - model specs, weight files and class labels.
 *
 * A model spec describes a feed-forward network: its input (channels, the
 * square input size, the scale size of the shorter side before the centre
 * crop, the standardisation mean and std shared by all channels), its layers
 * and its number of classes. Built-in specs: "overfeat-fast",
 * "overfeat-accurate" (Sermanet et al. 2014; README, "Models and weights")
 * and the embedded default model (MODEL_DEFAULT_NAME). A spec can also come
 * from a JSON file:
 *
 *   {"name": "tiny", "channels": 3, "input_size": 32, "scale_size": 36,
 *    "mean": 118.380948, "std": 61.896913, "classes": 10,
 *    "layers": [
 *      {"type": "conv", "out": 8, "kernel": 3, "stride": 1, "pad": 1},
 *      {"type": "relu"},
 *      {"type": "maxpool", "kernel": 2, "stride": 2},
 *      {"type": "fc", "out": 10}]}
 *
 * "pad" is one number (all four sides) or [top, bottom, left, right];
 * "kernel" is one number (square) or [kh, kw]. The network ends in a softmax
 * over the output of the last layer, which must have `classes` values.
 *
 * Weight layout (OverFeat's net_weight_N files): raw little-endian float32,
 * no header; for each conv and fc layer in order, its weights
 * [out][in][kh][kw] row-major followed by its `out` biases. An fc layer's
 * weights are [out][in_c][in_h][in_w], i.e. a convolution whose kernel covers
 * its whole input, which is how OverFeat stores its fully connected layers.
 *
 * A loaded `model` is immutable and may be shared by any number of threads
 * (each with its own net_ctx, see net.h).
 *
 *     model_spec spec;
 *     model *m;
 *     char err[ADJ_ERRLEN];
 *     if (model_spec_load("overfeat-fast", &spec, err, sizeof err) ||
 *         model_load(&spec, "net_weight_0", &m, err, sizeof err))
 *         die(err);
 *     ...
 *     model_free(m);
 */
#ifndef ADJ_MODEL_H
#define ADJ_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define MODEL_MAX_LAYERS 48
#define MODEL_NAME_LEN 64
/** Name of the embedded default model (built in, weights under config/; its
 *  spec's one source is config/advjpg-shapes.json, compiled in at build time). */
#define MODEL_DEFAULT_NAME "advjpg-shapes"

typedef enum {
    MODEL_LAYER_CONV,    /**< cross-correlation (kernels not flipped) + bias */
    MODEL_LAYER_RELU,    /**< x > 0 ? x : 0 */
    MODEL_LAYER_MAXPOOL, /**< max over kh x kw windows, stride; first max wins; sizes round down */
    MODEL_LAYER_FC,      /**< fully connected over the flattened (C,H,W) input + bias */
} model_layer_kind;

typedef struct {
    model_layer_kind kind;
    int out;            /**< conv/fc: output channels or units */
    int kh, kw;         /**< conv/maxpool: kernel size */
    int stride;         /**< conv/maxpool: stride (both directions) */
    int pad_t, pad_b, pad_l, pad_r; /**< conv: zero padding per side */
} model_layer;

typedef struct {
    char name[MODEL_NAME_LEN];
    int channels;       /**< input channels (3 for RGB) */
    int input_size;     /**< the network's square input, e.g. 231 */
    int scale_size;     /**< shorter side before the centre crop, e.g. 256 */
    float mean, std;    /**< standardisation: (pixel - mean) / std, pixels 0..255 */
    int classes;
    int n_layers;
    model_layer layers[MODEL_MAX_LAYERS];
} model_spec;

/** Shape of an activation: channels x height x width (fc outputs are c x 1 x 1). */
typedef struct { int c, h, w; } model_shape;

/** The built-in spec of that name ("overfeat-fast", "overfeat-accurate", MODEL_DEFAULT_NAME). */
int model_spec_builtin(const char *name, model_spec *out, char *err, size_t errsz);

/** Parses a spec from JSON text (len bytes) and validates it (model_spec_shapes). */
int model_spec_parse(const char *json, size_t len, model_spec *out, char *err, size_t errsz);

/** A built-in name, or else the path of a JSON spec file. */
int model_spec_load(const char *name_or_path, model_spec *out, char *err, size_t errsz);

/** The spec as JSON text; *out is new (caller frees with free()). */
int model_spec_to_json(const model_spec *spec, char **out);

/**
 * Computes the shape after each layer and checks that the spec is consistent
 * (positive sizes, kernels that fit, last layer of `classes` values).
 * shapes has room for n_layers + 1 entries: shapes[0] is the input, shapes[i+1]
 * the output of layer i. shapes may be NULL to validate only.
 */
int model_spec_shapes(const model_spec *spec, model_shape *shapes, char *err, size_t errsz);

/** Number of float parameters (weights + biases) of a valid spec. */
size_t model_spec_param_count(const model_spec *spec);

/** Floating-point operations of one forward pass (2 per multiply-add). */
double model_spec_flops(const model_spec *spec);

typedef struct model model;

/**
 * Maps a weight file read-only and shared (never copied) and checks its size
 * against the spec. Errors name the file and the expected and actual sizes.
 * *out is new: free with model_free().
 */
int model_load(const model_spec *spec, const char *weights_path, model **out, char *err, size_t errsz);

/**
 * A model over weights in memory. If copy is nonzero the n_floats are copied,
 * otherwise the model takes ownership of `weights` (allocated with malloc)
 * and frees it. n_floats must equal model_spec_param_count(spec).
 */
int model_create(const model_spec *spec, float *weights, size_t n_floats, int copy,
                 model **out, char *err, size_t errsz);

/** Frees the model (NULL is fine). No net_ctx on it may be used afterwards. */
void model_free(model *m);

/** The model's spec (borrowed, valid while the model lives). */
const model_spec *model_get_spec(const model *m);

/** All parameters in file layout (borrowed); count = model_spec_param_count. */
const float *model_weights(const model *m);

/**
 * Mutable parameters for a trainer that owns the model (created with
 * model_create); NULL for a memory-mapped model. After changing them, call
 * model_refresh (or net_ctx_refresh) before the next forward pass.
 */
float *model_weights_mut(model *m);

/** The weight file's path, or "" for a model in memory (borrowed). */
const char *model_weights_path(const model *m);

/**
 * The SHA-256 (hex, borrowed) of the weights, computed once: of the .onnx
 * file, of the weight file's bytes (model_load), or of the weights as
 * model_create received them, in the weight file's layout (a trainer that
 * changes them afterwards does not update it).
 */
const char *model_weights_sha256(const model *m);

/**
 * Offset (in floats) of layer i's weights in model_weights(); its biases
 * follow at offset + out * fan_in. -1 for a layer without parameters.
 */
long model_layer_offset(const model *m, int layer);

/* ---- graphs (common/graph.h engine) and ONNX models -------------------- */

typedef struct gr_graph gr_graph;

/**
 * An ONNX model's preprocessing: a pixel v (0..255) of the model's channel
 * c becomes (v * pixel_scale - mean[c]) / std[c]; mean and std are in the
 * model's channel order (the order of its input's channels).
 */
typedef struct {
    float mean[3], std[3];
    float pixel_scale;   /**< 1/255 (torchvision) or 1 */
    int bgr;             /**< the model's channels are B, G, R (images are RGB) */
    int probabilities;   /**< output 0 holds probabilities, not logits */
} model_preproc;

/** Nonzero if path names an ONNX model (ends in ".onnx"). */
int model_is_onnx_path(const char *path);

/**
 * Loads an ONNX image classifier (onnx.h): one input [N, 3, S, S], output 0
 * [N, classes]; every node must have an input gradient (gr_backward_check):
 * the service attacks it. The preprocessing comes from preprocess_path, else
 * FILE.json beside FILE.onnx if it exists, else the torchvision convention
 * (input 224, scale 256, mean 0.485 0.456 0.406, std 0.229 0.224 0.225,
 * pixel_scale 1/255, RGB, logits). The JSON keys: input_size, scale_size,
 * mean and std (a number or three), pixel_scale, channel_order ("RGB" or
 * "BGR"), output ("logits" or "probabilities"), labels (a file of class
 * names or of synsets, one per line, as many as classes; a relative path is
 * relative to the spec's folder), classes_order ("ilsvrc2012_id" or
 * "synset_sorted", 1000 classes; default: the labels' synsets if they are
 * synsets, else synset_sorted for 1000 classes, else none: see
 * model_classes); another key is refused. The
 * model's spec (model_get_spec) has n_layers 0, mean 0, std 1, the name of
 * the file without ".onnx", the sizes and the classes; net.h runs it on the
 * graph engine. *out is new: free with model_free().
 */
int model_load_onnx(const char *path, const char *preprocess_path, model **out, char *err,
                    size_t errsz);

/**
 * A layer-list model as a graph of the graph engine (model_graph.c): input
 * "pixels" [N][channels][input_size][input_size], standardised by the
 * caller (net.c, with model_get_preproc); conv -> Conv (per-side pads),
 * relu -> Relu, maxpool -> MaxPool, fc -> Flatten (after a convolutional
 * layer) + Gemm transB=1 (OverFeat's [out][c][h][w] fc weights are Gemm's B
 * over the NCHW flattening); a Flatten after a convolutional last layer;
 * output 0 the logits [N][classes]. The weights are referenced, never
 * copied: the graph reads model_weights(m) (which must outlive it; a trainer
 * that changes them calls gr_refresh). node_layer, if not NULL, gets for
 * each run-time node (gr_n_nodes, at most 2 * n_layers + 1) the layer it
 * computes (a Conv or fc with its Relu fused in: the Conv's or fc's layer).
 * flags: 0, or MODEL_GRAPH_IM2COL: every 3x3 stride-1 pad-1
 * convolution as Pad + a pad-0 Conv, so that it runs by im2col rather than
 * Winograd (an accuracy reference: net_ctx_set_winograd); MODEL_GRAPH_NO_FUSION:
 * every Relu a node of its own (gr_set_fusion; the same bits). model_load and model_create build the
 * model's own graph (flags 0: model_graph); this makes another one. *out is
 * new: free with gr_free().
 */
int model_build_graph(const model *m, int flags, gr_graph **out, int *node_layer, char *err,
                      size_t errsz);

/** model_build_graph's flags. */
enum { MODEL_GRAPH_IM2COL = 1, MODEL_GRAPH_NO_FUSION = 2 };

/**
 * The graph every context of the model runs (borrowed; net.h): an ONNX
 * model's, or a layer model's built at load by model_build_graph. Built
 * once per model and shared: Winograd's transformed weights (op_prepare)
 * are made once per model, not per context.
 */
const gr_graph *model_graph(const model *m);

/** Nonzero for a model loaded by model_load_onnx. */
int model_is_onnx(const model *m);

/** The layer that run-time node `node` of a layer model's graph computes; -1 otherwise. */
int model_node_layer(const model *m, int node);

/**
 * After a trainer changed the weights (model_weights_mut): recomputes what
 * the graph derives from them (gr_refresh: Winograd's weights). No context
 * of the model may run meanwhile. ADJ_ERR_NOMEM.
 */
int model_refresh(model *m, char *err, size_t errsz);

/**
 * The preprocessing (borrowed): an ONNX model's; for a layer model the
 * spec's mean and std on every channel, pixel_scale 1, RGB, logits.
 */
const model_preproc *model_get_preproc(const model *m);

/**
 * What /models reports of an ONNX model beyond its spec, as JSON text:
 * {"format": "onnx", "file", "preprocessing": {..., "labels": path or null,
 * "classes_order": name or null}, "preprocessing_source",
 * "parameters", "nodes", "operators": {"Conv": 20, ...}, "sha256": the .onnx
 * file's (computed at load)}. *out is new (free());
 * NULL for a layer-list model.
 */
int model_onnx_info_json(const model *m, char **out);

/** How a model's output indices map onto ImageNet's classes. */
typedef enum {
    MODEL_ORDER_NONE = 0,      /**< unknown: ImageNet labels cannot be mapped (ID - 1 is used) */
    MODEL_ORDER_ILSVRC2012_ID, /**< class i is ILSVRC2012_ID i + 1 (OverFeat) */
    MODEL_ORDER_SYNSET_SORTED, /**< class i is the i-th synset in sorted order (torchvision) */
    MODEL_ORDER_LABELS,        /**< class i is line i of the spec's labels file of synsets */
} model_class_order;

/** Number of ILSVRC2012 classes (IDs 1..MODEL_ILSVRC_CLASSES). */
#define MODEL_ILSVRC_CLASSES 1000

/**
 * A model's classes as ImageNet's labels see them. synsets is NULL when
 * the order is MODEL_ORDER_NONE; then of_id is unused and an ILSVRC2012_ID
 * k means class k - 1.
 */
typedef struct {
    int n;                     /**< the model's classes */
    model_class_order order;
    char **synsets;            /**< [n] class i's synset ("n01440764"), owned; or NULL */
    char *const *names;        /**< [n] class i's name (the spec's labels file: names or
                                    synsets), borrowed from the model; or NULL */
    int of_id[MODEL_ILSVRC_CLASSES]; /**< ILSVRC2012_ID - 1 -> class, -1 if the model has none */
} model_classes;

/** The name of an order ("ilsvrc2012_id", "synset_sorted", "labels"), NULL for NONE. */
const char *model_class_order_name(model_class_order o);

/**
 * The ILSVRC2012 synsets in ID order (ID k is (*out)[k - 1]), from
 * config/ilsvrc2012-synsets.txt compiled into the library ("synset ID
 * name" lines). *out is new: MODEL_ILSVRC_CLASSES strings and the array,
 * free each and it. ADJ_ERR_NOMEM, ADJ_ERR_FORMAT (a corrupt build).
 */
int model_ilsvrc_synsets(char ***out, char *err, size_t errsz);

/**
 * The class of a synset in the model's order, -1 if the model has none (or
 * its order is unknown). A binary search: O(log n).
 */
int model_class_of_synset(const model_classes *c, const char *synset);

/**
 * The class that `name` denotes: a synset of the model (c->synsets) or a
 * class name of its labels file (c->names). -1 if none; -2 if it denotes
 * more than one class (a name twice in the labels, as ImageNet's "crane",
 * or a synset of one class and the name of another): then *first and
 * *other (either may be NULL) get two of them. O(n).
 */
int model_class_of_name(const model_classes *c, const char *name, int *first, int *other);

/**
 * The model's classes (borrowed, valid while it lives). ONNX models: from
 * the preprocessing spec's classes_order and labels (model_load_onnx);
 * layer-list models named overfeat-* with 1000 classes: ILSVRC2012_ID order;
 * others: MODEL_ORDER_NONE.
 */
const model_classes *model_get_classes(const model *m);

/** Class names, one per line of a text file, in output-index order. */
typedef struct {
    int n;
    char **names; /**< n strings, owned */
} model_labels;

/** Reads a labels file (one name per line, trailing '\r' and blank last line ignored). */
int model_labels_load(const char *path, model_labels *out, char *err, size_t errsz);

/** Frees the names (NULL and a zeroed struct are fine). */
void model_labels_free(model_labels *l);

#endif
