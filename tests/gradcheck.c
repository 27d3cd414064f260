#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "testutil.h"

/* Sum over the batch of -log p(label_i | x_i). */
static double total_loss(net_ctx *ctx, const float *x, int n, const int *labels, float *losses)
{
    net_forward(ctx, x, n, NULL);
    net_backward(ctx, labels, NULL, NULL, losses);
    double s = 0;
    for (int i = 0; i < n; i++)
        s += losses[i];
    return s;
}

static int mismatch(double num, double ana, float tol)
{
    double den = fabs(num) + fabs(ana);
    if (den < 1e-4)
        return 0; /* both ~0 */
    return fabs(num - ana) / den > tol && fabs(num - ana) > 2e-4;
}

static void random_input(const model_spec *spec, int n, uint64_t *seed, float *x)
{
    size_t len = (size_t)n * spec->channels * spec->input_size * spec->input_size;
    for (size_t k = 0; k < len; k++)
        x[k] = spec->mean + spec->std * tu_uniform(seed, -1.5f, 1.5f);
}

int gc_input(const model_spec *spec, uint64_t seed, int n, float h, float tol, int max_coords,
             int *checked)
{
    char err[ADJ_ERRLEN];
    model *m = NULL;
    net_ctx *ctx = NULL;
    float *w = tu_random_weights(spec, seed);
    if (!w || model_create(spec, w, model_spec_param_count(spec), 0, &m, err, sizeof err) ||
        net_ctx_new(m, n, &ctx, err, sizeof err)) {
        fprintf(stderr, "gradcheck setup: %s\n", err);
        return 1;
    }
    const size_t per = (size_t)spec->channels * spec->input_size * spec->input_size;
    float *x = malloc(per * n * sizeof(float)), *g = malloc(per * n * sizeof(float));
    float *losses = malloc(n * sizeof(float));
    int *labels = malloc(n * sizeof(int));
    random_input(spec, n, &seed, x);
    for (int i = 0; i < n; i++)
        labels[i] = (int)(tu_rand(&seed) % spec->classes);
    net_forward(ctx, x, n, NULL);
    net_backward(ctx, labels, g, NULL, losses);
    int bad = 0, cnt = 0;
    for (int i = 0; i < n; i++) {
        for (int q = 0; q < max_coords && q < (int)per; q++) {
            size_t k = per * i + (max_coords >= (int)per ? (size_t)q : tu_rand(&seed) % per);
            float save = x[k];
            x[k] = save + h;
            double lp = total_loss(ctx, x, n, labels, losses);
            x[k] = save - h;
            double lm = total_loss(ctx, x, n, labels, losses);
            x[k] = save;
            double num = (lp - lm) / (2.0 * h);
            cnt++;
            if (mismatch(num, g[k], tol)) {
                if (bad < 5)
                    fprintf(stderr, "  %s input grad [%zu]: numeric %.6g analytic %.6g\n",
                            spec->name, k, num, g[k]);
                bad++;
            }
        }
    }
    *checked = cnt;
    free(x);
    free(g);
    free(losses);
    free(labels);
    net_ctx_free(ctx);
    model_free(m);
    return bad;
}

int gc_weights(const model_spec *spec, uint64_t seed, int n, float h, float tol, int max_coords,
               int *checked)
{
    char err[ADJ_ERRLEN];
    model *m = NULL;
    net_ctx *ctx = NULL;
    const size_t np = model_spec_param_count(spec);
    float *w0 = tu_random_weights(spec, seed);
    if (!w0 || model_create(spec, w0, np, 0, &m, err, sizeof err) ||
        net_ctx_new(m, n, &ctx, err, sizeof err) ||
        net_ctx_set_engine(ctx, NET_ENGINE_GRAPH_TRAINING, err, sizeof err)) {
        fprintf(stderr, "gradcheck setup: %s\n", err);
        return 1;
    }
    float *w = model_weights_mut(m);
    const size_t per = (size_t)spec->channels * spec->input_size * spec->input_size;
    float *x = malloc(per * n * sizeof(float));
    float *gw = calloc(np, sizeof(float));
    float *losses = malloc(n * sizeof(float));
    int *labels = malloc(n * sizeof(int));
    random_input(spec, n, &seed, x);
    for (int i = 0; i < n; i++)
        labels[i] = (int)(tu_rand(&seed) % spec->classes);
    net_forward(ctx, x, n, NULL);
    net_backward(ctx, labels, NULL, gw, losses);
    int bad = 0, cnt = 0;
    for (int l = 0; l < spec->n_layers; l++) {
        long off = model_layer_offset(m, l);
        if (off < 0)
            continue;
        long next = (long)np;
        for (int j = l + 1; j < spec->n_layers; j++)
            if (model_layer_offset(m, j) >= 0) {
                next = model_layer_offset(m, j);
                break;
            }
        const long len = next - off;
        for (int q = 0; q < max_coords && q < len; q++) {
            /* always include the last few (biases) */
            long k = off + (q < 3 ? len - 1 - q : (long)(tu_rand(&seed) % (uint64_t)len));
            float save = w[k];
            w[k] = save + h;
            net_ctx_refresh(ctx);
            double lp = total_loss(ctx, x, n, labels, losses);
            w[k] = save - h;
            net_ctx_refresh(ctx);
            double lm = total_loss(ctx, x, n, labels, losses);
            w[k] = save;
            net_ctx_refresh(ctx);
            double num = (lp - lm) / (2.0 * h);
            cnt++;
            if (mismatch(num, gw[k], tol)) {
                if (bad < 5)
                    fprintf(stderr, "  %s layer %d weight grad [%ld]: numeric %.6g analytic %.6g\n",
                            spec->name, l + 1, k, num, gw[k]);
                bad++;
            }
        }
    }
    *checked = cnt;
    free(x);
    free(gw);
    free(losses);
    free(labels);
    net_ctx_free(ctx);
    model_free(m);
    return bad;
}
