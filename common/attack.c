#include "attack.h"

#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void atk_rng_seed(atk_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t atk_rng_next(atk_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t atk_rng_below(atk_rng *r, uint64_t bound)
{
    /* rejection sampling: accept r >= 2^64 mod bound, then r mod bound is uniform */
    const uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t x = atk_rng_next(r);
        if (x >= threshold)
            return x % bound;
    }
}

static uint8_t clip255(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

void atk_fgsm(const uint8_t *x, const float *grad, size_t n, int eps, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int s = grad[i] > 0.0f ? 1 : grad[i] < 0.0f ? -1 : 0;
        out[i] = clip255((int)x[i] + s * eps);
    }
}

/* planar [3][h][w] float to interleaved [h][w][3] */
static void planar_to_interleaved(const float *p, int w, int h, float *out)
{
    const size_t hw = (size_t)w * h;
    for (size_t k = 0; k < hw; k++)
        for (int c = 0; c < 3; c++)
            out[k * 3 + c] = p[c * hw + k];
}

int atk_gradient(net_ctx *ctx, const img_rgb *xs, int n, int *labels, int argmax_labels,
                 float *grad, float *probs, char *err, size_t errsz)
{
    if (n < 1 || n > net_ctx_max_batch(ctx))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "batch of %d images, the context takes 1..%d", n,
                        net_ctx_max_batch(ctx));
    const int w = xs[0].w, h = xs[0].h;
    const model_spec *spec = model_get_spec(net_ctx_model(ctx));
    if (w != spec->input_size || h != spec->input_size || spec->channels != 3)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "image is %dx%d, the model takes %dx%d RGB", w, h,
                        spec->input_size, spec->input_size);
    const size_t per = (size_t)3 * w * h;
    float *planar = malloc(per * n * sizeof(float) * 2);
    if (!planar)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    float *gp = planar + per * n;
    for (int i = 0; i < n; i++) {
        if (xs[i].w != w || xs[i].h != h) {
            free(planar);
            return adj_fail(err, errsz, ADJ_ERR_ARG, "images of a batch must have one size");
        }
        img_to_planar(&xs[i], planar + per * i);
    }
    int rc = net_forward(ctx, planar, n, probs);
    if (!rc && argmax_labels) {
        const int K = model_get_spec(net_ctx_model(ctx))->classes;
        const float *logits = net_logits(ctx);
        for (int i = 0; i < n; i++)
            labels[i] = net_argmax(logits + (size_t)i * K, K);
    }
    if (!rc)
        rc = net_backward(ctx, labels, gp, NULL, NULL);
    if (rc) {
        free(planar);
        return adj_fail(err, errsz, rc, "engine: %s (is the image of the model's input size?)",
                        adj_strerror(rc));
    }
    for (int i = 0; i < n; i++)
        planar_to_interleaved(gp + per * i, w, h, grad + per * i);
    free(planar);
    return ADJ_OK;
}

int atk_iterative(net_ctx *ctx, const img_rgb *xs, int n, const int *labels,
                  const atk_iter_params *p, img_rgb *outs, char *err, size_t errsz)
{
    if (p->eps < 0 || p->eps > 255 || p->steps < 1 || p->step_size < 1 || p->step_size > 255)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "iterative attack needs eps 0..255, steps >= 1, step size 1..255");
    const int B = net_ctx_max_batch(ctx);
    img_rgb *ys = calloc((size_t)n, sizeof *ys);
    if (!ys)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    int rc = ADJ_OK;
    atk_rng rng;
    atk_rng_seed(&rng, p->seed);
    for (int i = 0; i < n && !rc; i++) {
        if ((rc = img_copy(&xs[i], &ys[i])))
            adj_fail(err, errsz, rc, "out of memory");
        else if (p->random_start) {
            const size_t len = (size_t)3 * xs[i].w * xs[i].h;
            for (size_t k = 0; k < len; k++) {
                int d = (int)atk_rng_below(&rng, (uint64_t)(2 * p->eps + 1)) - p->eps;
                ys[i].px[k] = clip255(xs[i].px[k] + d);
            }
        }
    }
    const size_t per = n ? (size_t)3 * xs[0].w * xs[0].h : 0;
    float *grad = rc ? NULL : malloc(per * (size_t)(n < B ? n : B) * sizeof(float));
    if (!rc && !grad)
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    for (int b0 = 0; b0 < n && !rc; b0 += B) {
        const int nb = n - b0 < B ? n - b0 : B;
        for (int step = 0; step < p->steps && !rc; step++) {
            rc = atk_gradient(ctx, ys + b0, nb, (int *)(labels + b0), 0, grad, NULL, err, errsz);
            for (int i = 0; i < nb && !rc; i++) {
                const uint8_t *x = xs[b0 + i].px;
                uint8_t *y = ys[b0 + i].px;
                const float *g = grad + per * i;
                for (size_t k = 0; k < per; k++) {
                    int s = g[k] > 0.0f ? 1 : g[k] < 0.0f ? -1 : 0;
                    int v = y[k] + s * p->step_size;
                    int lo = x[k] - p->eps, hi = x[k] + p->eps;
                    v = v < lo ? lo : v > hi ? hi : v;
                    y[k] = clip255(v);
                }
            }
        }
    }
    free(grad);
    if (rc) {
        for (int i = 0; i < n; i++)
            img_free(&ys[i]);
        free(ys);
        return rc;
    }
    for (int i = 0; i < n; i++)
        outs[i] = ys[i];
    free(ys);
    return ADJ_OK;
}

int atk_jpeg_noise(const img_rgb *y, const img_rgb *jpg, uint64_t seed, img_rgb *out, char *err,
                   size_t errsz)
{
    if (y->w != jpg->w || y->h != jpg->h)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "JPEG noise: images of different sizes");
    const size_t n = (size_t)3 * y->w * y->h;
    int16_t *d = malloc(n * sizeof *d);
    img_rgb o;
    if (!d || img_alloc(&o, y->w, y->h)) {
        free(d);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < n; k++)
        d[k] = (int16_t)(jpg->px[k] - y->px[k]);
    atk_rng rng;
    atk_rng_seed(&rng, seed);
    for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = (size_t)atk_rng_below(&rng, (uint64_t)i + 1);
        int16_t t = d[i];
        d[i] = d[j];
        d[j] = t;
    }
    for (size_t k = 0; k < n; k++)
        o.px[k] = clip255(y->px[k] + d[k]);
    free(d);
    *out = o;
    return ADJ_OK;
}
