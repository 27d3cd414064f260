#include "net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "layers.h"
#include "ops.h"

/*
 * One engine: every model runs its graph (graph.h), the model's own
 * (model_graph: an ONNX model's, or a layer model's built at load) or, after
 * net_ctx_set_winograd(ctx, 0), one the context built with im2col for every
 * 3x3 convolution. Batch invariance is the graph engine's (graph.h, ops.c):
 * every product is gemm_f32, whose elements do not depend on the shapes, and
 * each node's algorithm is chosen from its shapes alone.
 */

struct net_ctx {
    const model *m;
    const model_spec *spec;
    int max_batch;
    int n;                 /* images in the last forward, 0 before any */
    net_engine engine;
    gr_graph *own;         /* net_ctx_set_winograd(0): the im2col graph; NULL: the model's */
    int own_layer[2 * MODEL_MAX_LAYERS + 1]; /* its run-time node -> layer */
    gr_ctx *gc;            /* the graph's context: activations, gradients, scratch */
    model_preproc pp;
    /* the preprocessed input and its gradient [B][C][S][S], the graph's
     * output gradient, logits and probabilities [B][classes] */
    float *pre, *pre_grad, *dz, *logits, *probs;
    int *grad_exp;         /* [B]: the last input gradient is the true one times 2^grad_exp */
    size_t bytes;          /* the buffers above, without gc's */
    uint64_t bwd_images;   /* images through backward passes since the context was made */
};

static const gr_graph *ctx_graph(const net_ctx *c) { return c->own ? c->own : model_graph(c->m); }

static void *ctx_alloc(net_ctx *c, size_t bytes)
{
    void *p = NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes ? bytes : 64))
        return NULL;
    c->bytes += bytes;
    return p;
}

/* (Re)opens the graph context for the engine e on the context's graph. */
static int ctx_open(net_ctx *c, net_engine e, char *err, size_t errsz)
{
    gr_ctx_free(c->gc);
    c->gc = NULL;
    c->n = 0;
    const int flags = GR_BACKWARD | (e == NET_ENGINE_GRAPH_TRAINING ? GR_PARAM_GRADS : 0);
    int rc = gr_ctx_new(ctx_graph(c), c->max_batch, flags, &c->gc, err, errsz);
    if (!rc)
        c->engine = e;
    return rc;
}

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
    c->pp = *model_get_preproc(m);
    const model_spec *s = c->spec;
    const size_t B = (size_t)max_batch, per = (size_t)s->channels * s->input_size * s->input_size;
    const size_t K = (size_t)s->classes;
    if (!(c->pre = ctx_alloc(c, B * per * sizeof(float))) ||
        !(c->pre_grad = ctx_alloc(c, B * per * sizeof(float))) ||
        !(c->dz = ctx_alloc(c, B * K * sizeof(float))) ||
        !(c->logits = ctx_alloc(c, B * K * sizeof(float))) ||
        !(c->probs = ctx_alloc(c, B * K * sizeof(float))) ||
        !(c->grad_exp = ctx_alloc(c, B * sizeof(int)))) {
        net_ctx_free(c);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for a batch-%d context of %s",
                        max_batch, s->name);
    }
    int rc = ctx_open(c, NET_ENGINE_GRAPH, err, errsz);
    if (rc) {
        net_ctx_free(c);
        return rc;
    }
    *out = c;
    return ADJ_OK;
}

void net_ctx_refresh(net_ctx *c)
{
    char err[ADJ_ERRLEN]; /* both fail only out of memory at finalize */
    model_refresh((model *)c->m, err, sizeof err);
    if (c->own)
        gr_refresh(c->own, err, sizeof err);
}

int net_ctx_set_winograd(net_ctx *c, int m)
{
    char err[ADJ_ERRLEN];
    if (m != -1 && m != 0)
        return ADJ_ERR_ARG;
    if (model_is_onnx(c->m))
        return m == -1 ? ADJ_OK : ADJ_ERR_ARG;
    if ((m == 0) == (c->own != NULL))
        return ADJ_OK;
    gr_ctx_free(c->gc);
    c->gc = NULL;
    gr_free(c->own);
    c->own = NULL;
    int rc = m == 0 ? model_build_graph(c->m, MODEL_GRAPH_IM2COL, &c->own, c->own_layer, err,
                                        sizeof err)
                    : ADJ_OK;
    return rc ? rc : ctx_open(c, c->engine, err, sizeof err);
}

int net_ctx_set_engine(net_ctx *c, net_engine e, char *err, size_t errsz)
{
    if (e != NET_ENGINE_GRAPH && e != NET_ENGINE_GRAPH_TRAINING)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "engine %d: graph (1) or graph with weight "
                        "gradients (2)", (int)e);
    if (model_is_onnx(c->m) && e != NET_ENGINE_GRAPH)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "an ONNX model runs without weight gradients");
    return e == c->engine ? ADJ_OK : ctx_open(c, e, err, errsz);
}

net_engine net_ctx_engine(const net_ctx *c) { return c->engine; }

void net_ctx_free(net_ctx *c)
{
    if (!c)
        return;
    gr_ctx_free(c->gc);
    gr_free(c->own);
    free(c->pre);
    free(c->pre_grad);
    free(c->dz);
    free(c->logits);
    free(c->probs);
    free(c->grad_exp);
    free(c);
}

const model *net_ctx_model(const net_ctx *c) { return c->m; }

void net_ctx_layer_seconds(const net_ctx *c, double *fwd, double *bwd)
{
    const int nn = gr_n_nodes(ctx_graph(c));
    double *f = calloc((size_t)nn + 1, sizeof *f), *b = calloc((size_t)nn + 1, sizeof *b);
    for (int i = 0; i < c->spec->n_layers; i++) {
        if (fwd)
            fwd[i] = 0;
        if (bwd)
            bwd[i] = 0;
    }
    if (!f || !b || !c->gc) {
        free(f), free(b);
        return;
    }
    gr_ctx_node_seconds(c->gc, f);
    gr_ctx_node_seconds_backward(c->gc, b);
    for (int k = 0; k < nn; k++) { /* each node's time to its layer */
        const int l = c->own ? c->own_layer[k] : model_node_layer(c->m, k);
        if (l < 0)
            continue;
        if (fwd)
            fwd[l] += f[k];
        if (bwd)
            bwd[l] += b[k];
    }
    free(f), free(b);
}

int net_ctx_max_batch(const net_ctx *c) { return c->max_batch; }

uint64_t net_ctx_backward_images(const net_ctx *c) { return c->bwd_images; }

const char *net_ctx_layer_algorithm(const net_ctx *c, int i)
{
    const model_spec *s = c->spec;
    if (i < 0 || i >= s->n_layers)
        return "?";
    const model_layer *l = &s->layers[i];
    static const char *const kinds[] = {"conv", "relu", "maxpool", "fc"};
    if (l->kind != MODEL_LAYER_CONV)
        return kinds[l->kind];
    const int pads = l->pad_t + l->pad_b + l->pad_l + l->pad_r;
    if (l->kh == 1 && l->kw == 1 && l->stride == 1 && !pads)
        return "1x1";
    if (c->own || l->kh != 3 || l->kw != 3 || l->stride != 1 || pads != 4 || l->pad_t != 1 ||
        l->pad_b != 1 || l->pad_l != 1)
        return "im2col";
    model_shape sh[MODEL_MAX_LAYERS + 1]; /* ops.c's choice: from the plane size alone */
    model_spec_shapes(s, sh, NULL, 0);
    const int wino = lyr_wino_choose(sh[i].h, sh[i].w, sh[i].c, l->out);
    return wino == 4 ? "winograd-4x4-3x3" : wino == 2 ? "winograd-2x2-3x3" : "im2col";
}

size_t net_ctx_bytes(const net_ctx *c) { return c->bytes + (c->gc ? gr_ctx_bytes(c->gc) : 0); }
const char *net_ctx_kernel(const net_ctx *c) { return gr_ctx_kernel(c->gc); }
int net_ctx_threads(const net_ctx *c) { return gr_ctx_threads(c->gc); }

const float *net_logits(const net_ctx *c) { return c->logits; }

int net_grad_exponent(const net_ctx *c, int i) { return i >= 0 && i < c->n ? c->grad_exp[i] : 0; }

/* The model's channel ch reads image channel (RGB) src_channel(p, ch). */
static int src_channel(const model_preproc *p, int ch) { return p->bgr ? 2 - ch : ch; }

/* The entry of p's mean and std for channel ch: a layer spec may have more
 * than 3 channels, with one mean and std for all (model_get_preproc). */
static int pp_entry(int ch) { return ch < 3 ? ch : 0; }

int net_forward(net_ctx *c, const float *input, int n, float *probs)
{
    if (!c || !input || n < 1 || n > c->max_batch || !c->gc)
        return ADJ_ERR_ARG;
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
                dst[k] = (src[k] / div - p->mean[pp_entry(ch)]) / p->std[pp_entry(ch)];
        }
    char err[ADJ_ERRLEN];
    c->n = 0;
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
 * net_backward: the loss and logit gradient (op_xent_grad with the
 * smoothing alpha, rescaled unless weight gradients are asked for), then
 * gr_backward_params (the weights' gradients in the model's layout, for a
 * layer model on NET_ENGINE_GRAPH_TRAINING), then
 * through the preprocessing to the 0..255 pixels. A probabilities output
 * (ONNX) differentiates -log p_l directly.
 */
static int backward(net_ctx *c, const int *labels, double alpha, float *grad_input,
                    float *grad_weights, float *losses)
{
    if (!c || !labels)
        return ADJ_ERR_ARG;
    if (c->n < 1)
        return ADJ_ERR_STATE;
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
    c->bwd_images += (uint64_t)n;
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
            const float f = p->pixel_scale / p->std[pp_entry(ch)];
            for (size_t k = 0; k < hw; k++)
                dst[k] = src[k] * f;
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
