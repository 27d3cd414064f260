/*
 * model_graph.c - a layer model (model.h: OverFeat's specs, JSON specs, the
 * embedded model) as a graph of the graph engine (graph.h), see
 * model_build_graph.
 */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

/* A builder: the graph, the last tensor, and counters for unique names. */
typedef struct {
    gr_graph *g;
    int cur;          /* the tensor the next layer reads */
    int rank;         /* its rank: 4 ([N][C][H][W]) or 2 ([N][features]) */
    int n_nodes;
    int *node_layer;  /* node -> layer, or NULL */
    int flags;        /* MODEL_GRAPH_* */
    char *err;
    size_t errsz;
} mg_builder;

/* A new run-time tensor named after layer i; its id, or -1 (err set). */
static int mg_value(mg_builder *b, int i, const char *what)
{
    char name[48];
    int id;
    snprintf(name, sizeof name, "layer%d.%s", i, what);
    op_shape s = {0, {0}};
    return gr_add_tensor(b->g, name, OP_FLOAT, &s, 0, 0, NULL, GR_DATA_EXTERN, &id, b->err,
                         b->errsz) ? -1 : id;
}

/* A constant over the model's weights (borrowed: GR_DATA_EXTERN, never copied). */
static int mg_weights(mg_builder *b, int i, const char *what, const float *data, int rank,
                      const int64_t *d)
{
    char name[48];
    int id;
    op_shape s = {rank, {0}};
    for (int k = 0; k < rank; k++)
        s.d[k] = d[k];
    snprintf(name, sizeof name, "layer%d.%s", i, what);
    return gr_add_tensor(b->g, name, OP_FLOAT, &s, 0, 1, (void *)data, GR_DATA_EXTERN, &id,
                         b->err, b->errsz) ? -1 : id;
}

/* Adds node op of layer i reading in[0..n_in-1]; its output becomes b->cur. */
static int mg_node(mg_builder *b, int i, const char *op, const int *in, int n_in,
                   const op_attr *a, int n_a)
{
    char name[48];
    const int y = mg_value(b, i, op);
    if (y < 0)
        return -1;
    snprintf(name, sizeof name, "layer%d.%s", i, op);
    for (int k = 0; k < n_in; k++)
        if (in[k] < 0)
            return -1;
    if (gr_add_node(b->g, name, op, in, n_in, &y, 1, a, n_a, 17, b->err, b->errsz))
        return -1;
    if (b->node_layer)
        b->node_layer[b->n_nodes] = i;
    b->n_nodes++;
    b->cur = y;
    return 0;
}

/* An int64 constant [n] (owned by the graph), named after layer i; its id, or -1. */
static int mg_int64s(mg_builder *b, int i, const char *what, const int64_t *v, int n)
{
    char name[48];
    int id;
    int64_t *data = malloc((size_t)n * sizeof *data);
    if (!data)
        return -1;
    memcpy(data, v, (size_t)n * sizeof *data);
    op_shape s = {1, {n}};
    snprintf(name, sizeof name, "layer%d.%s", i, what);
    return gr_add_tensor(b->g, name, OP_INT64, &s, 0, 1, data, GR_DATA_OWN, &id, b->err,
                         b->errsz) ? -1 : id;
}

static op_attr mg_ints(const char *name, const int64_t *v, size_t n)
{
    return (op_attr){.name = name, .type = OP_ATTR_INTS, .ints = v, .n = n};
}

/* Layer i of the spec (its shapes in[i] -> in[i+1]) as nodes. */
static int mg_layer(mg_builder *b, const model *m, int i, const model_shape *sh)
{
    const model_layer *l = &model_get_spec(m)->layers[i];
    const long off = model_layer_offset(m, i);
    const float *w = off >= 0 ? model_weights(m) + off : NULL;
    const int64_t k[2] = {l->kh, l->kw}, st[2] = {l->stride, l->stride};
    /* ONNX's order: begin of H, of W, end of H, of W */
    const int64_t pads[4] = {l->pad_t, l->pad_l, l->pad_b, l->pad_r};
    switch (l->kind) {
    case MODEL_LAYER_CONV: {
        const int64_t wd[4] = {l->out, sh[i].c, l->kh, l->kw}, bd[1] = {l->out};
        const size_t fan = (size_t)sh[i].c * l->kh * l->kw;
        const int64_t none[4] = {0, 0, 0, 0};
        const int pad_first = (b->flags & MODEL_GRAPH_IM2COL) && l->kh == 3 && l->kw == 3 &&
                              l->stride == 1 && l->pad_t == 1 && l->pad_b == 1 &&
                              l->pad_l == 1 && l->pad_r == 1;
        if (pad_first) { /* Pad, then a pad-0 Conv: not Winograd's case (ops.c) */
            const int64_t p8[8] = {0, 0, 1, 1, 0, 0, 1, 1};
            const int pin[2] = {b->cur, mg_int64s(b, i, "pads", p8, 8)};
            if (mg_node(b, i, "Pad", pin, 2, NULL, 0))
                return -1;
        }
        const int in[3] = {b->cur, mg_weights(b, i, "W", w, 4, wd),
                           mg_weights(b, i, "B", w + (size_t)l->out * fan, 1, bd)};
        const op_attr a[3] = {mg_ints("kernel_shape", k, 2), mg_ints("strides", st, 2),
                              mg_ints("pads", pad_first ? none : pads, 4)};
        return mg_node(b, i, "Conv", in, 3, a, 3);
    }
    case MODEL_LAYER_RELU:
        return mg_node(b, i, "Relu", &b->cur, 1, NULL, 0);
    case MODEL_LAYER_MAXPOOL: {
        const op_attr a[2] = {mg_ints("kernel_shape", k, 2), mg_ints("strides", st, 2)};
        return mg_node(b, i, "MaxPool", &b->cur, 1, a, 2);
    }
    case MODEL_LAYER_FC: {
        /* OverFeat's [out][c][h][w] weights are Gemm's B over the NCHW flattening */
        const int64_t fan = (int64_t)sh[i].c * sh[i].h * sh[i].w, wd[2] = {l->out, fan};
        const int64_t bd[1] = {l->out};
        if (b->rank == 4 && mg_node(b, i, "Flatten", &b->cur, 1, NULL, 0))
            return -1;
        b->rank = 2;
        const int in[3] = {b->cur, mg_weights(b, i, "W", w, 2, wd),
                           mg_weights(b, i, "B", w + (size_t)l->out * fan, 1, bd)};
        const op_attr a[1] = {{.name = "transB", .type = OP_ATTR_INT, .i = 1}};
        return mg_node(b, i, "Gemm", in, 3, a, 1);
    }
    }
    return -1;
}

int model_build_graph(const model *m, int flags, gr_graph **out, int *node_layer, char *err,
                      size_t errsz)
{
    const model_spec *s = model_get_spec(m);
    model_shape sh[MODEL_MAX_LAYERS + 1];
    if (model_is_onnx(m) || s->n_layers < 1)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "model %s has no layer list", s->name);
    int rc = model_spec_shapes(s, sh, err, errsz);
    if (rc)
        return rc;
    mg_builder b = {NULL, -1, 4, 0, node_layer, flags, err, errsz};
    if ((rc = gr_new(&b.g, err, errsz)))
        return rc;
    const op_shape xs = {4, {OP_DIM_BATCH, s->channels, s->input_size, s->input_size}};
    int input;
    rc = gr_add_tensor(b.g, "pixels", OP_FLOAT, &xs, 1, 0, NULL, GR_DATA_EXTERN, &input, err, errsz);
    b.cur = input;
    for (int i = 0; i < s->n_layers && !rc; i++)
        rc = mg_layer(&b, m, i, sh) ? ADJ_ERR_FORMAT : ADJ_OK;
    if (!rc && b.rank == 4) /* a convolutional last layer: [N][classes][1][1] */
        rc = mg_node(&b, s->n_layers - 1, "Flatten", &b.cur, 1, NULL, 0) ? ADJ_ERR_FORMAT : ADJ_OK;
    if (!rc)
        rc = gr_set_io(b.g, input, &b.cur, 1, err, errsz);
    gr_set_fusion(b.g, !(flags & MODEL_GRAPH_NO_FUSION));
    if (!rc)
        rc = gr_finalize(b.g, err, errsz);
    if (rc) {
        gr_free(b.g);
        return rc;
    }
    for (int k = 0; node_layer && k < gr_n_nodes(b.g); k++) /* fusion: a Relu's time is its Conv's */
        node_layer[k] = node_layer[gr_node_source(b.g, k)];
    *out = b.g;
    return ADJ_OK;
}
