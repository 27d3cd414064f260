#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attack.h"
#include "rng.h"

struct trn_state {
    model *m;
    net_ctx *ctx;
    trn_params p;
    size_t n_params;
    float *grad, *vel, *losses, *probs;
    unsigned char *is_bias; /* per parameter: 1 for biases (no decay) */
};

int trn_new(model *m, int max_batch, const trn_params *p, trn_state **out, char *err, size_t errsz)
{
    if (!model_weights_mut(m))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "training needs a model that owns its weights");
    if (!(p->smoothing >= 0.0f && p->smoothing < 1.0f))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "label smoothing must be in [0, 1), not %g",
                        (double)p->smoothing);
    const model_spec *s = model_get_spec(m);
    trn_state *t = calloc(1, sizeof *t);
    if (!t)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    t->m = m;
    t->p = *p;
    t->n_params = model_spec_param_count(s);
    t->grad = calloc(t->n_params, sizeof(float));
    t->vel = calloc(t->n_params, sizeof(float));
    t->is_bias = calloc(t->n_params, 1);
    t->losses = malloc((size_t)max_batch * sizeof(float));
    t->probs = malloc((size_t)max_batch * s->classes * sizeof(float));
    int rc = (!t->grad || !t->vel || !t->is_bias || !t->losses || !t->probs)
                 ? adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory")
                 : net_ctx_new(m, max_batch, &t->ctx, err, errsz);
    if (!rc) /* the graph engine, with weight gradients (net.h) */
        rc = net_ctx_set_engine(t->ctx, NET_ENGINE_GRAPH_TRAINING, err, errsz);
    if (rc) {
        trn_free(t);
        return rc;
    }
    for (int i = 0; i < s->n_layers; i++) {
        long off = model_layer_offset(m, i);
        if (off < 0)
            continue;
        long next = (long)t->n_params;
        for (int j = i + 1; j < s->n_layers; j++)
            if (model_layer_offset(m, j) >= 0) {
                next = model_layer_offset(m, j);
                break;
            }
        memset(t->is_bias + next - s->layers[i].out, 1, (size_t)s->layers[i].out);
    }
    *out = t;
    return ADJ_OK;
}

void trn_free(trn_state *t)
{
    if (!t)
        return;
    net_ctx_free(t->ctx);
    free(t->grad);
    free(t->vel);
    free(t->is_bias);
    free(t->losses);
    free(t->probs);
    free(t);
}

net_ctx *trn_ctx(trn_state *t) { return t->ctx; }

int trn_step(trn_state *t, const float *x, const int *labels, int n, float lr, double *loss,
             int *correct)
{
    const int K = model_get_spec(t->m)->classes;
    int rc = net_forward(t->ctx, x, n, t->probs);
    if (rc)
        return rc;
    memset(t->grad, 0, t->n_params * sizeof(float));
    if ((rc = net_backward_smoothed(t->ctx, labels, t->p.smoothing, NULL, t->grad, t->losses)))
        return rc;
    double sum = 0;
    int ok = 0;
    for (int i = 0; i < n; i++) {
        sum += t->losses[i];
        ok += net_argmax(t->probs + (size_t)i * K, K) == labels[i];
    }
    if (!isfinite(sum))
        return ADJ_ERR_FORMAT;
    float *w = model_weights_mut(t->m);
    const float inv = 1.0f / (float)n, mom = t->p.momentum, wd = t->p.weight_decay;
    for (size_t k = 0; k < t->n_params; k++) {
        float g = t->grad[k] * inv + (t->is_bias[k] ? 0.0f : wd * w[k]);
        t->vel[k] = mom * t->vel[k] - lr * g;
        w[k] += t->vel[k];
    }
    net_ctx_refresh(t->ctx);
    if (loss)
        *loss = sum;
    if (correct)
        *correct = ok;
    return ADJ_OK;
}

void trn_init_weights(model *m, uint64_t seed)
{
    const model_spec *s = model_get_spec(m);
    model_shape sh[MODEL_MAX_LAYERS + 1];
    model_spec_shapes(s, sh, NULL, 0);
    float *w = model_weights_mut(m);
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < s->n_layers; i++) {
        long off = model_layer_offset(m, i);
        if (off < 0)
            continue;
        const model_layer *l = &s->layers[i];
        size_t fan = l->kind == MODEL_LAYER_CONV ? (size_t)sh[i].c * l->kh * l->kw
                                                 : (size_t)sh[i].c * sh[i].h * sh[i].w;
        float a = sqrtf(6.0f / (float)fan);
        float *p = w + off;
        for (size_t k = 0; k < (size_t)l->out * fan; k++)
            p[k] = a * (2.0f * (float)((rng_next(&r) >> 40) / (double)(1 << 24)) - 1.0f);
        memset(p + (size_t)l->out * fan, 0, (size_t)l->out * sizeof(float));
    }
    char err[ADJ_ERRLEN]; /* the model's graph (Winograd's weights) from the new weights */
    model_refresh(m, err, sizeof err); /* fails only out of memory at load */
}
