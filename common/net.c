#include "net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "ut_clock.h"
#include "graph.h"
#include "layers.h"
#include "ops.h"

/* Largest im2col buffer a context keeps, in floats (128 MiB). Convolutions
 * whose columns for the whole batch would not fit run in chunks of images. */
#define NET_COL_LIMIT ((size_t)32 << 20)

/* Batch invariance: an image's numbers never depend on the other images of
 * its batch. Every product is gemm_f32 (each element one fma chain in a fixed
 * order, whatever the shapes and threads), images are laid side by side in a
 * product's columns (or rows), and the algorithm of a layer (im2col, 1x1,
 * Winograd) is chosen from the layer alone, never from the batch size. */

enum { LAYOUT_CNHW, LAYOUT_NC };

struct net_ctx {
    const model *m;
    const model_spec *spec;
    int max_batch;
    int n;                 /* images in the last forward, 0 before any */
    model_shape sh[MODEL_MAX_LAYERS + 1];
    int layout[MODEL_MAX_LAYERS + 1];
    lyr_geom geom[MODEL_MAX_LAYERS];
    int chunk[MODEL_MAX_LAYERS];  /* conv: images per im2col chunk */
    float *act[MODEL_MAX_LAYERS + 1];
    int32_t *arg[MODEL_MAX_LAYERS];
    float *col, *flat, *g0, *g1, *logits, *probs;
    /* Winograd F(m x m,3x3) layers (wino[i] = m, 0 for none): transformed
     * weights for the forward pass (U) and for the input gradient (Ut), and
     * the tile buffers (wbuf floats each) */
    int wino[MODEL_MAX_LAYERS];
    size_t wbuf, wino_bytes;
    float *U[MODEL_MAX_LAYERS], *Ut[MODEL_MAX_LAYERS];
    float *wv, *wp;
    gemm_ws *gemm;
    int *grad_exp; /* [max_batch]: the last input gradient is the true one times 2^grad_exp */
    size_t bytes;
    /* seconds spent per layer since the context was made: forward, backward */
    double t_fwd[MODEL_MAX_LAYERS], t_bwd[MODEL_MAX_LAYERS];
    uint64_t bwd_images; /* images through backward passes since the context was made */
    /* the graph engine (an ONNX model, or a layer model with
     * NET_ENGINE_GRAPH): its context, the preprocessing, the preprocessed
     * input and its gradient [B][C][S][S] */
    gr_ctx *gc;
    model_preproc pp;
    float *pre, *pre_grad;
    net_engine engine;
    float *dz;             /* the graph's output gradient [B][classes] */
    size_t layer_bytes;    /* bytes before the graph engine's were added */
};

static size_t shape_size(const model_shape *s) { return (size_t)s->c * s->h * s->w; }

static void *ctx_alloc(net_ctx *c, size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes))
        return NULL;
    c->bytes += bytes;
    return p;
}

static int is_wino(const lyr_geom *g)
{
    return g->kh == 3 && g->kw == 3 && g->stride == 1 && g->pad_t == 1 && g->pad_b == 1 &&
           g->pad_l == 1 && g->pad_r == 1;
}

static int is_1x1(const lyr_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && !g->pad_t && !g->pad_b && !g->pad_l &&
           !g->pad_r;
}

/* Allocates the transformed weights of the Winograd layers (as c->wino says)
 * and the tile buffers for max_batch images. */
static int wino_alloc(net_ctx *c)
{
    const size_t before = c->bytes;
    c->wbuf = 0;
    for (int i = 0; i < c->spec->n_layers; i++) {
        const int m = c->wino[i], a2 = (m + 2) * (m + 2);
        if (!m)
            continue;
        const lyr_geom *g = &c->geom[i];
        const int M = c->spec->layers[i].out;
        const size_t u = (size_t)a2 * M * g->c * sizeof(float);
        if (!(c->U[i] = ctx_alloc(c, u)) || !(c->Ut[i] = ctx_alloc(c, u)))
            return ADJ_ERR_NOMEM;
        const size_t ch = (size_t)(g->c > M ? g->c : M);
        const size_t need = a2 * ch * lyr_wino_tiles(m, c->max_batch, g->h, g->w);
        if (need > c->wbuf)
            c->wbuf = need;
    }
    if (c->wbuf && (!(c->wv = ctx_alloc(c, c->wbuf * sizeof(float))) ||
                    !(c->wp = ctx_alloc(c, c->wbuf * sizeof(float)))))
        return ADJ_ERR_NOMEM;
    c->wino_bytes = c->bytes - before;
    return ADJ_OK;
}

/* Frees what wino_alloc made and forgets the tile sizes. */
static void wino_release(net_ctx *c)
{
    for (int i = 0; i < c->spec->n_layers; i++) {
        free(c->U[i]);
        free(c->Ut[i]);
        c->U[i] = c->Ut[i] = NULL;
        c->wino[i] = 0;
    }
    free(c->wv);
    free(c->wp);
    c->wv = c->wp = NULL;
    c->wbuf = 0;
    c->bytes -= c->wino_bytes;
    c->wino_bytes = 0;
}

static int graph_ctx_new(net_ctx *c, net_ctx **out, char *err, size_t errsz);
static int graph_ctx_open(net_ctx *c, const gr_graph *g, int flags, char *err, size_t errsz);
static int graph_forward(net_ctx *c, const float *input, int n, float *probs);
static int graph_backward(net_ctx *c, const int *labels, double alpha, float *grad_input,
                          float *grad_weights, float *losses);

int net_ctx_new(const model *m, int max_batch, net_ctx **out, char *err, size_t errsz)
{
    if (!m || max_batch < 1 || max_batch > 4096)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "max_batch must be 1..4096, not %d", max_batch);
    net_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    c->m = m;
    c->spec = model_get_spec(m);
    c->max_batch = max_batch;
    if (model_is_onnx(m))
        return graph_ctx_new(c, out, err, errsz);
    const model_spec *s = c->spec;
    model_spec_shapes(s, c->sh, NULL, 0);
    size_t max_act = 0, col = 0, flat = 0;
    c->layout[0] = LAYOUT_CNHW;
    for (int i = 0; i < s->n_layers; i++) {
        const model_layer *l = &s->layers[i];
        c->layout[i + 1] = (l->kind == MODEL_LAYER_FC) ? LAYOUT_NC : c->layout[i];
        lyr_geom *g = &c->geom[i];
        *g = (lyr_geom){.c = c->sh[i].c, .h = c->sh[i].h, .w = c->sh[i].w, .kh = l->kh,
                        .kw = l->kw, .stride = l->stride, .pad_t = l->pad_t, .pad_b = l->pad_b,
                        .pad_l = l->pad_l, .pad_r = l->pad_r, .oh = c->sh[i + 1].h,
                        .ow = c->sh[i + 1].w};
        if (l->kind == MODEL_LAYER_CONV && !is_1x1(g)) { /* Winograd layers too: weight gradients */
            size_t per = (size_t)g->c * g->kh * g->kw * g->oh * g->ow;
            size_t nb = NET_COL_LIMIT / per;
            if (nb < 1)
                nb = 1;
            if (nb > (size_t)max_batch)
                nb = (size_t)max_batch;
            c->chunk[i] = (int)nb;
            if (per * nb > col)
                col = per * nb;
        }
        if (l->kind == MODEL_LAYER_CONV && is_wino(g))
            c->wino[i] = lyr_wino_choose(g->h, g->w);
        if (l->kind == MODEL_LAYER_FC && c->layout[i] == LAYOUT_CNHW && shape_size(&c->sh[i]) > flat)
            flat = shape_size(&c->sh[i]);
    }
    for (int i = 0; i <= s->n_layers; i++)
        if (shape_size(&c->sh[i]) > max_act)
            max_act = shape_size(&c->sh[i]);
    const size_t B = (size_t)max_batch;
    char gerr[ADJ_ERRLEN];
    int ok = gemm_ws_new(0, &c->gemm, gerr, sizeof gerr) == ADJ_OK;
    if (ok)
        c->bytes += gemm_ws_bytes(c->gemm);
    ok = ok && wino_alloc(c) == ADJ_OK;
    for (int i = 0; i <= s->n_layers && ok; i++) {
        ok = (c->act[i] = ctx_alloc(c, B * shape_size(&c->sh[i]) * sizeof(float))) != NULL;
        if (ok && i < s->n_layers && s->layers[i].kind == MODEL_LAYER_MAXPOOL)
            ok = (c->arg[i] = ctx_alloc(c, B * shape_size(&c->sh[i + 1]) * sizeof(int32_t))) != NULL;
    }
    if (ok)
        ok = (c->col = ctx_alloc(c, col * sizeof(float))) && (c->flat = ctx_alloc(c, B * flat * sizeof(float))) &&
             (c->g0 = ctx_alloc(c, B * max_act * sizeof(float))) &&
             (c->g1 = ctx_alloc(c, B * max_act * sizeof(float))) &&
             (c->logits = ctx_alloc(c, B * s->classes * sizeof(float))) &&
             (c->probs = ctx_alloc(c, B * s->classes * sizeof(float))) &&
             (c->grad_exp = ctx_alloc(c, B * sizeof(int)));
    if (!ok) {
        size_t want = c->bytes;
        net_ctx_free(c);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM,
                        "out of memory for a batch-%d context of %s (%zu MB allocated so far)",
                        max_batch, s->name, want >> 20);
    }
    net_ctx_refresh(c);
    *out = c;
    return ADJ_OK;
}

void net_ctx_refresh(net_ctx *c)
{
    char err[ADJ_ERRLEN];
    model_refresh((model *)c->m, err, sizeof err); /* fails only out of memory at finalize */
    for (int i = 0; i < c->spec->n_layers; i++)
        if (c->wino[i]) {
            const float *W = model_weights(c->m) + model_layer_offset(c->m, i);
            lyr_wino_weights(c->wino[i], W, c->spec->layers[i].out, c->sh[i].c, 0, c->U[i]);
            lyr_wino_weights(c->wino[i], W, c->spec->layers[i].out, c->sh[i].c, 1, c->Ut[i]);
        }
}

int net_ctx_set_winograd(net_ctx *c, int m)
{
    if (m != -1 && m != 0 && m != 2 && m != 4)
        return ADJ_ERR_ARG;
    if (c->gc) /* the graph engine chooses its own algorithms */
        return m == -1 ? ADJ_OK : ADJ_ERR_ARG;
    wino_release(c);
    for (int i = 0; i < c->spec->n_layers; i++)
        if (c->spec->layers[i].kind == MODEL_LAYER_CONV && is_wino(&c->geom[i]))
            c->wino[i] = m == -1 ? lyr_wino_choose(c->geom[i].h, c->geom[i].w) : m;
    int rc = wino_alloc(c);
    if (rc == ADJ_OK)
        net_ctx_refresh(c);
    return rc;
}

/* Leaves the graph engine of a layer model (back to the layer path). */
static void graph_close(net_ctx *c)
{
    if (c->engine != NET_ENGINE_LAYER || c->gc)
        c->bytes = c->layer_bytes;
    gr_ctx_free(c->gc);
    free(c->pre);
    free(c->pre_grad);
    free(c->dz);
    c->gc = NULL;
    c->pre = c->pre_grad = c->dz = NULL;
    c->n = 0;
    c->engine = NET_ENGINE_LAYER;
}

int net_ctx_set_engine(net_ctx *c, net_engine e, char *err, size_t errsz)
{
    if (e != NET_ENGINE_LAYER && e != NET_ENGINE_GRAPH && e != NET_ENGINE_GRAPH_TRAINING)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "engine %d: layer (0), graph (1) or graph "
                        "with weight gradients (2)", (int)e);
    if (model_is_onnx(c->m))
        return e == NET_ENGINE_GRAPH
                   ? ADJ_OK
                   : adj_fail(err, errsz, ADJ_ERR_ARG, "an ONNX model runs on the graph engine "
                              "only, without weight gradients");
    if (e == c->engine)
        return ADJ_OK;
    graph_close(c);
    if (e == NET_ENGINE_LAYER)
        return ADJ_OK;
    int rc = graph_ctx_open(c, model_graph(c->m), e == NET_ENGINE_GRAPH_TRAINING ? GR_PARAM_GRADS : 0,
                            err, errsz);
    if (rc) {
        graph_close(c);
        return rc;
    }
    c->pp = *model_get_preproc(c->m);
    c->n = 0;
    c->engine = e;
    return ADJ_OK;
}

net_engine net_ctx_engine(const net_ctx *c) { return c->engine; }

void net_ctx_free(net_ctx *c)
{
    if (!c)
        return;
    for (int i = 0; i <= MODEL_MAX_LAYERS; i++)
        free(c->act[i]);
    for (int i = 0; i < MODEL_MAX_LAYERS; i++)
        free(c->arg[i]);
    for (int i = 0; i < MODEL_MAX_LAYERS; i++) {
        free(c->U[i]);
        free(c->Ut[i]);
    }
    free(c->wv);
    free(c->wp);
    free(c->col);
    free(c->flat);
    free(c->g0);
    free(c->g1);
    free(c->logits);
    free(c->probs);
    free(c->grad_exp);
    gemm_ws_free(c->gemm);
    gr_ctx_free(c->gc);
    free(c->pre);
    free(c->pre_grad);
    free(c->dz);
    free(c);
}

const model *net_ctx_model(const net_ctx *c) { return c->m; }

void net_ctx_layer_seconds(const net_ctx *c, double *fwd, double *bwd)
{
    if (c->gc && !model_is_onnx(c->m)) { /* the graph engine: each node's time to its layer */
        const int nn = gr_n_nodes(model_graph(c->m));
        double f[2 * MODEL_MAX_LAYERS + 1], b[2 * MODEL_MAX_LAYERS + 1];
        gr_ctx_node_seconds(c->gc, f);
        gr_ctx_node_seconds_backward(c->gc, b);
        for (int i = 0; i < c->spec->n_layers; i++) {
            if (fwd)
                fwd[i] = 0;
            if (bwd)
                bwd[i] = 0;
        }
        for (int k = 0; k < nn; k++) {
            if (fwd)
                fwd[model_node_layer(c->m, k)] += f[k];
            if (bwd)
                bwd[model_node_layer(c->m, k)] += b[k];
        }
        return;
    }
    for (int i = 0; i < c->spec->n_layers; i++) {
        if (fwd)
            fwd[i] = c->t_fwd[i];
        if (bwd)
            bwd[i] = c->t_bwd[i];
    }
}
int net_ctx_max_batch(const net_ctx *c) { return c->max_batch; }

uint64_t net_ctx_backward_images(const net_ctx *c) { return c->bwd_images; }

const char *net_ctx_layer_algorithm(const net_ctx *c, int i)
{
    switch (c->spec->layers[i].kind) {
    case MODEL_LAYER_CONV:
        return c->wino[i] == 4 ? "winograd-4x4-3x3"
               : c->wino[i]    ? "winograd-2x2-3x3"
               : is_1x1(&c->geom[i]) ? "1x1" : "im2col";
    case MODEL_LAYER_RELU: return "relu";
    case MODEL_LAYER_MAXPOOL: return "maxpool";
    case MODEL_LAYER_FC: return "fc";
    }
    return "?";
}
size_t net_ctx_bytes(const net_ctx *c) { return c->bytes; }
const char *net_ctx_kernel(const net_ctx *c) { return gemm_kernel_name(c->gemm); }
int net_ctx_threads(const net_ctx *c) { return c->gemm ? gemm_ws_threads(c->gemm) : 1; }

static const float *layer_w(const net_ctx *c, int i)
{
    return model_weights(c->m) + model_layer_offset(c->m, i);
}

/* Adds bias[m] to every one of the `len` values of row m, for M rows. */
static void add_bias_rows(float *y, const float *bias, int M, size_t len)
{
    for (int m = 0; m < M; m++) {
        float b = bias[m], *r = y + (size_t)m * len;
        for (size_t j = 0; j < len; j++)
            r[j] += b;
    }
}

/* A 3x3 pad-1 convolution by Winograd F(m x m): out[M] (CNHW) from in[C]
 * (CNHW), with transformed weights U [(m+2)^2][M][C]. */
static void wino_conv(net_ctx *c, int m, const float *U, const float *in, int C, int M, int n, int h,
                      int w, const float *bias, float *out)
{
    const size_t T = lyr_wino_tiles(m, n, h, w);
    lyr_wino_input(m, in, C, n, h, w, c->wv);
    for (int q = 0; q < (m + 2) * (m + 2); q++)
        /* P[q][M][T] = U[q][M][C] x V[q][C][T] */
        gemm_f32(c->gemm, GEMM_N, GEMM_N, M, (int)T, C, U + (size_t)q * M * C, C,
                 c->wv + (size_t)q * C * T, (int)T, 0, c->wp + (size_t)q * M * T, (int)T);
    lyr_wino_output(m, c->wp, M, n, h, w, bias, out);
}

static void conv_forward(net_ctx *c, int i, int n)
{
    if (c->wino[i]) {
        const lyr_geom *g = &c->geom[i];
        const int M = c->spec->layers[i].out;
        wino_conv(c, c->wino[i], c->U[i], c->act[i], g->c, M, n, g->h, g->w,
                  layer_w(c, i) + (size_t)M * g->c * 9, c->act[i + 1]);
        return;
    }
    const lyr_geom *g = &c->geom[i];
    const int M = c->spec->layers[i].out, K = g->c * g->kh * g->kw, ohw = g->oh * g->ow;
    const float *W = layer_w(c, i), *in = c->act[i];
    float *out = c->act[i + 1];
    const size_t ld = (size_t)n * ohw;
    if (is_1x1(g)) {
        /* out[M][n*hw] = W[M][C] x in[C][n*hw] */
        gemm_f32(c->gemm, GEMM_N, GEMM_N, M, (int)ld, K, W, K, in, (int)ld, 0, out, (int)ld);
    } else {
        for (int b0 = 0; b0 < n; b0 += c->chunk[i]) {
            int nb = n - b0 < c->chunk[i] ? n - b0 : c->chunk[i];
            lyr_im2col(in, n, b0, nb, g, c->col);
            /* out[M][b0*ohw ..][nb*ohw] = W[M][K] x col[K][nb*ohw], row stride n*ohw */
            gemm_f32(c->gemm, GEMM_N, GEMM_N, M, nb * ohw, K, W, K, c->col, nb * ohw, 0,
                     out + (size_t)b0 * ohw, (int)ld);
        }
    }
    add_bias_rows(out, W + (size_t)M * K, M, ld);
}

static void fc_forward(net_ctx *c, int i, int n)
{
    const int in = (int)shape_size(&c->sh[i]), out = c->spec->layers[i].out;
    const float *W = layer_w(c, i), *X = c->act[i];
    if (c->layout[i] == LAYOUT_CNHW) {
        lyr_cnhw_to_nc(c->act[i], c->sh[i].c, n, c->sh[i].h * c->sh[i].w, c->flat);
        X = c->flat;
    }
    float *Y = c->act[i + 1];
    /* Y[n][out] = X[n][in] x W[out][in]^T: W is packed once for the batch */
    gemm_f32(c->gemm, GEMM_N, GEMM_T, n, out, in, X, in, W, in, 0, Y, out);
    const float *bias = W + (size_t)out * in;
    for (int b = 0; b < n; b++)
        for (int k = 0; k < out; k++)
            Y[(size_t)b * out + k] += bias[k];
}

int net_forward(net_ctx *c, const float *input, int n, float *probs)
{
    if (!c || !input || n < 1 || n > c->max_batch)
        return ADJ_ERR_ARG;
    if (c->gc)
        return graph_forward(c, input, n, probs);
    const model_spec *s = c->spec;
    const int C = s->channels, hw = s->input_size * s->input_size;
    /* standardise into CNHW */
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < n; b++) {
            const float *src = input + ((size_t)b * C + ch) * hw;
            float *dst = c->act[0] + ((size_t)ch * n + b) * hw;
            for (int k = 0; k < hw; k++)
                dst[k] = (src[k] - s->mean) / s->std;
        }
    for (int i = 0; i < s->n_layers; i++) {
        const size_t len = (size_t)n * shape_size(&c->sh[i + 1]);
        const double t0 = ut_now();
        switch (s->layers[i].kind) {
        case MODEL_LAYER_CONV: conv_forward(c, i, n); break;
        case MODEL_LAYER_RELU: lyr_relu(c->act[i], len, c->act[i + 1]); break;
        case MODEL_LAYER_MAXPOOL:
            lyr_maxpool(c->act[i], c->sh[i].c * n, &c->geom[i], c->act[i + 1], c->arg[i]);
            break;
        case MODEL_LAYER_FC: fc_forward(c, i, n); break;
        }
        c->t_fwd[i] += ut_now() - t0;
    }
    const int L = s->n_layers;
    if (c->layout[L] == LAYOUT_CNHW)
        lyr_cnhw_to_nc(c->act[L], c->sh[L].c, n, c->sh[L].h * c->sh[L].w, c->logits);
    else
        memcpy(c->logits, c->act[L], (size_t)n * s->classes * sizeof(float));
    lyr_softmax(c->logits, n, s->classes, c->probs);
    if (probs)
        memcpy(probs, c->probs, (size_t)n * s->classes * sizeof(float));
    c->n = n;
    return ADJ_OK;
}

const float *net_logits(const net_ctx *c) { return c->logits; }

int net_grad_exponent(const net_ctx *c, int i) { return i >= 0 && i < c->n ? c->grad_exp[i] : 0; }

/* Backward through conv layer i: dY (CNHW) -> weight grads (if dw) and dX (if dx). */
static void conv_backward(net_ctx *c, int i, int n, const float *dY, float *dx, float *dw)
{
    const lyr_geom *g = &c->geom[i];
    const int M = c->spec->layers[i].out, K = g->c * g->kh * g->kw, ohw = g->oh * g->ow;
    const float *W = layer_w(c, i), *in = c->act[i];
    const size_t ld = (size_t)n * ohw;
    if (dw) {
        float *db = dw + (size_t)M * K;
        for (int m = 0; m < M; m++) {
            const float *r = dY + (size_t)m * ld;
            double s = 0;
            for (size_t j = 0; j < ld; j++)
                s += r[j];
            db[m] += (float)s;
        }
    }
    if (is_1x1(g)) {
        if (dw) /* dW[M][C] += dY[M][n*hw] x in[C][n*hw]^T */
            gemm_f32(c->gemm, GEMM_N, GEMM_T, M, K, (int)ld, dY, (int)ld, in, (int)ld, 1, dw, K);
        if (dx) /* dX[C][n*hw] = W[M][C]^T x dY[M][n*hw] */
            gemm_f32(c->gemm, GEMM_T, GEMM_N, K, (int)ld, M, W, K, dY, (int)ld, 0, dx, (int)ld);
        return;
    }
    if (dx && c->wino[i]) {
        /* the input gradient of a 3x3 pad-1 convolution is one too */
        wino_conv(c, c->wino[i], c->Ut[i], dY, M, g->c, n, g->h, g->w, NULL, dx);
        dx = NULL;
    }
    if (dx)
        memset(dx, 0, (size_t)n * shape_size(&c->sh[i]) * sizeof(float));
    for (int b0 = 0; b0 < n && (dx || dw); b0 += c->chunk[i]) {
        int nb = n - b0 < c->chunk[i] ? n - b0 : c->chunk[i];
        const float *dYc = dY + (size_t)b0 * ohw;
        if (dw) {
            lyr_im2col(in, n, b0, nb, g, c->col);
            /* dW[M][K] += dY[M][nb*ohw] x col[K][nb*ohw]^T */
            gemm_f32(c->gemm, GEMM_N, GEMM_T, M, K, nb * ohw, dYc, (int)ld, c->col, nb * ohw, 1,
                     dw, K);
        }
        if (dx) {
            /* dcol[K][nb*ohw] = W[M][K]^T x dY[M][nb*ohw] */
            gemm_f32(c->gemm, GEMM_T, GEMM_N, K, nb * ohw, M, W, K, dYc, (int)ld, 0, c->col,
                     nb * ohw);
            lyr_col2im(c->col, n, b0, nb, g, dx);
        }
    }
}

/* Backward through fc layer i: dY (NC) -> weight grads and dX (NC, in dx). */
static void fc_backward(net_ctx *c, int i, int n, const float *dY, float *dx, float *dw)
{
    const int in = (int)shape_size(&c->sh[i]), out = c->spec->layers[i].out;
    const float *W = layer_w(c, i);
    const float *X = c->layout[i] == LAYOUT_CNHW ? c->flat : c->act[i];
    if (dw) {
        /* dW[out][in] += dY[n][out]^T x X[n][in] */
        gemm_f32(c->gemm, GEMM_T, GEMM_N, out, in, n, dY, out, X, in, 1, dw, in);
        float *db = dw + (size_t)out * in;
        for (int b = 0; b < n; b++)
            for (int k = 0; k < out; k++)
                db[k] += dY[(size_t)b * out + k];
    }
    if (dx) /* dX[n][in] = dY[n][out] x W[out][in] */
        gemm_f32(c->gemm, GEMM_N, GEMM_N, n, in, out, dY, out, W, in, 0, dx, in);
}

static int backward(net_ctx *c, const int *labels, double alpha, float *grad_input,
                    float *grad_weights, float *losses)
{
    if (!c || !labels)
        return ADJ_ERR_ARG;
    if (c->n < 1)
        return ADJ_ERR_STATE;
    c->bwd_images += (uint64_t)c->n;
    if (c->gc)
        return graph_backward(c, labels, alpha, grad_input, grad_weights, losses);
    const model_spec *s = c->spec;
    const int n = c->n, K = s->classes, L = s->n_layers;
    for (int b = 0; b < n; b++)
        if (labels[b] < 0 || labels[b] >= K)
            return ADJ_ERR_ARG;
    float *cur = c->g0, *other = c->g1;
    for (int b = 0; b < n; b++) {
        const double loss = op_xent_grad(c->logits + (size_t)b * K, K, labels[b], alpha,
                                         !grad_weights, other + (size_t)b * K, &c->grad_exp[b]);
        if (losses)
            losses[b] = (float)loss;
    }
    if (c->layout[L] == LAYOUT_CNHW)
        lyr_nc_to_cnhw(other, c->sh[L].c, n, c->sh[L].h * c->sh[L].w, cur);
    else
        memcpy(cur, other, (size_t)n * K * sizeof(float));
    if (!grad_input && !grad_weights)
        return ADJ_OK;
    int first_param = L;
    for (int i = 0; i < L; i++)
        if (model_layer_offset(c->m, i) >= 0) {
            first_param = i;
            break;
        }
    for (int i = L - 1; i >= 0; i--) {
        const int need_dx = grad_input != NULL || i > first_param;
        const long off = model_layer_offset(c->m, i);
        float *dw = (grad_weights && off >= 0) ? grad_weights + off : NULL;
        if (!need_dx && !dw)
            break;
        const size_t in_len = (size_t)n * shape_size(&c->sh[i]);
        const double t0 = ut_now();
        switch (s->layers[i].kind) {
        case MODEL_LAYER_CONV:
            conv_backward(c, i, n, cur, need_dx ? other : NULL, dw);
            break;
        case MODEL_LAYER_RELU:
            lyr_relu_back(c->act[i + 1], cur, in_len, other);
            break;
        case MODEL_LAYER_MAXPOOL:
            lyr_maxpool_back(cur, c->arg[i], c->sh[i].c * n, &c->geom[i], other);
            break;
        case MODEL_LAYER_FC:
            fc_backward(c, i, n, cur, need_dx ? other : NULL, dw);
            if (need_dx && c->layout[i] == LAYOUT_CNHW) {
                lyr_nc_to_cnhw(other, c->sh[i].c, n, c->sh[i].h * c->sh[i].w, cur);
                c->t_bwd[i] += ut_now() - t0;
                continue; /* the gradient is already in cur */
            }
            break;
        }
        c->t_bwd[i] += ut_now() - t0;
        if (!need_dx)
            break;
        float *t = cur;
        cur = other;
        other = t;
    }
    if (grad_input) {
        const int C = s->channels, hw = s->input_size * s->input_size;
        const float inv = 1.0f / s->std;
        for (int ch = 0; ch < C; ch++)
            for (int b = 0; b < n; b++) {
                const float *src = cur + ((size_t)ch * n + b) * hw;
                float *dst = grad_input + ((size_t)b * C + ch) * hw;
                for (int k = 0; k < hw; k++)
                    dst[k] = src[k] * inv;
            }
    }
    return ADJ_OK;
}

int net_backward(net_ctx *c, const int *labels, float *grad_input, float *grad_weights, float *losses)
{
    return backward(c, labels, 0.0, grad_input, grad_weights, losses);
}

int net_backward_smoothed(net_ctx *c, const int *labels, double smoothing, float *grad_input,
                          float *grad_weights, float *losses)
{
    if (!(smoothing >= 0.0 && smoothing < 1.0))
        return ADJ_ERR_ARG;
    return backward(c, labels, smoothing, grad_input, grad_weights, losses);
}

int net_argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

int net_topk(const float *p, int n, int k, int *idx)
{
    if (k > n)
        k = n;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            int taken = 0;
            for (int q = 0; q < j && !taken; q++)
                taken = idx[q] == i;
            if (!taken && (best < 0 || p[i] > p[best]))
                best = i;
        }
        idx[j] = best;
    }
    return k;
}

/* ---- ONNX models: the graph engine (graph.h) behind the same calls ---- */

/* The graph engine's context on graph g and the input buffers (c->gc, pre, pre_grad). */
static int graph_ctx_open(net_ctx *c, const gr_graph *g, int flags, char *err, size_t errsz)
{
    const model_spec *s = c->spec;
    const size_t B = (size_t)c->max_batch;
    const size_t per = (size_t)s->channels * s->input_size * s->input_size;
    c->layer_bytes = c->bytes;
    int rc = gr_ctx_new(g, c->max_batch, GR_BACKWARD | flags, &c->gc, err, errsz);
    if (rc)
        return rc;
    c->bytes += gr_ctx_bytes(c->gc);
    if (!(c->pre = ctx_alloc(c, B * per * sizeof(float))) ||
        !(c->pre_grad = ctx_alloc(c, B * per * sizeof(float))) ||
        !(c->dz = ctx_alloc(c, B * s->classes * sizeof(float))))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for a batch-%d context of %s",
                        (int)B, s->name);
    return ADJ_OK;
}

/* net_ctx_new for a model_graph model: a GR_BACKWARD graph context. */
static int graph_ctx_new(net_ctx *c, net_ctx **out, char *err, size_t errsz)
{
    const model_spec *s = c->spec;
    int rc = graph_ctx_open(c, model_graph(c->m), 0, err, errsz);
    c->engine = NET_ENGINE_GRAPH;
    if (rc) {
        net_ctx_free(c);
        return rc;
    }
    c->pp = *model_get_preproc(c->m);
    const size_t B = (size_t)c->max_batch;
    if (!(c->logits = ctx_alloc(c, B * s->classes * sizeof(float))) ||
        !(c->probs = ctx_alloc(c, B * s->classes * sizeof(float))) ||
        !(c->grad_exp = ctx_alloc(c, B * sizeof(int)))) {
        net_ctx_free(c);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for a batch-%d context of %s",
                        (int)B, s->name);
    }
    *out = c;
    return ADJ_OK;
}

/* The model's channel ch reads image channel (RGB) src_channel(p, ch). */
static int src_channel(const model_preproc *p, int ch) { return p->bgr ? 2 - ch : ch; }

static int graph_forward(net_ctx *c, const float *input, int n, float *probs)
{
    const model_preproc *p = &c->pp;
    const model_spec *s = c->spec;
    const size_t hw = (size_t)s->input_size * s->input_size;
    const int K = s->classes, C = s->channels;
    const float div = 1.0f / p->pixel_scale; /* 255: v / 255 as torchvision's ToTensor */
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < C; ch++) {
            const float *src = input + ((size_t)b * C + src_channel(p, ch)) * hw;
            float *dst = c->pre + ((size_t)b * C + ch) * hw;
            for (size_t k = 0; k < hw; k++)
                dst[k] = (src[k] / div - p->mean[ch]) / p->std[ch];
        }
    char err[ADJ_ERRLEN];
    if (gr_forward(c->gc, c->pre, n, err, sizeof err))
        return ADJ_ERR_ARG;
    const float *z = gr_output(c->gc, 0, NULL);
    for (size_t i = 0; i < (size_t)n * K; i++) /* probabilities: their logs are logits */
        c->logits[i] = p->probabilities ? logf(z[i] > 0.0f ? z[i] : 0x1p-149f) : z[i];
    lyr_softmax(c->logits, n, K, c->probs);
    if (probs)
        memcpy(probs, c->probs, (size_t)n * K * sizeof(float));
    c->n = n;
    return ADJ_OK;
}

/* The graph's gradient of -log p_l for a probabilities output (-1 / p_l at
 * the label) into pre_grad, the loss (and grad_exp) as op_xent_grad's. */
static int graph_backward_probs(net_ctx *c, const int *labels, float *grad_input, float *losses)
{
    const int n = c->n, K = c->spec->classes;
    char err[ADJ_ERRLEN];
    for (int b = 0; b < n; b++) {
        const double loss = op_xent_grad(c->logits + (size_t)b * K, K, labels[b], 0.0, 1,
                                         c->dz + (size_t)b * K, &c->grad_exp[b]);
        if (losses)
            losses[b] = (float)loss;
    }
    if (!grad_input)
        return ADJ_OK;
    const float *z = gr_output(c->gc, 0, NULL);
    for (int b = 0; b < n; b++) {
        float *dy = c->dz + (size_t)b * K;
        for (int k = 0; k < K; k++)
            dy[k] = 0.0f;
        const float pl = z[(size_t)b * K + labels[b]];
        dy[labels[b]] = -1.0f / (pl > 0x1p-126f ? pl : 0x1p-126f);
        c->grad_exp[b] = 0;
    }
    return gr_backward(c->gc, c->dz, c->pre_grad, err, sizeof err);
}

/*
 * net_backward for a graph: the loss and logit gradient as the layer path's
 * (op_xent_grad with the smoothing alpha, rescaled unless weight gradients
 * are asked for), then gr_backward_params (the weights' gradients in the
 * model's layout, for a layer model on NET_ENGINE_GRAPH_TRAINING), then
 * through the preprocessing to the 0..255 pixels. A probabilities output
 * (ONNX) differentiates -log p_l directly.
 */
static int graph_backward(net_ctx *c, const int *labels, double alpha, float *grad_input,
                          float *grad_weights, float *losses)
{
    const model_preproc *p = &c->pp;
    const model_spec *s = c->spec;
    const int n = c->n, K = s->classes, C = s->channels;
    const size_t hw = (size_t)s->input_size * s->input_size;
    char err[ADJ_ERRLEN];
    if (grad_weights && c->engine != NET_ENGINE_GRAPH_TRAINING)
        return ADJ_ERR_UNSUPPORTED;
    if (p->probabilities && alpha > 0)
        return ADJ_ERR_UNSUPPORTED;
    for (int b = 0; b < n; b++)
        if (labels[b] < 0 || labels[b] >= K)
            return ADJ_ERR_ARG;
    int rc;
    if (p->probabilities) {
        rc = graph_backward_probs(c, labels, grad_input, losses);
    } else {
        for (int b = 0; b < n; b++) {
            const double loss = op_xent_grad(c->logits + (size_t)b * K, K, labels[b], alpha,
                                             !grad_weights, c->dz + (size_t)b * K, &c->grad_exp[b]);
            if (losses)
                losses[b] = (float)loss;
        }
        if (!grad_input && !grad_weights)
            return ADJ_OK;
        rc = gr_backward_params(c->gc, c->dz, grad_input ? c->pre_grad : NULL, model_weights(c->m),
                                model_spec_param_count(s), grad_weights, err, sizeof err);
    }
    if (rc || !grad_input)
        return rc;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < C; ch++) {
            const float *src = c->pre_grad + ((size_t)b * C + ch) * hw;
            float *dst = grad_input + ((size_t)b * C + src_channel(p, ch)) * hw;
            const float f = p->pixel_scale / p->std[ch];
            for (size_t k = 0; k < hw; k++)
                dst[k] = src[k] * f;
        }
    return ADJ_OK;
}
