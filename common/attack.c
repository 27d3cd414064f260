#include "attack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


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

int atk_iter_params_check(const atk_iter_params *p, char *err, size_t errsz)
{
    if (p->eps < 0 || p->eps > 255)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eps %d is not in 0..255", p->eps);
    if (p->steps < 1 || p->steps > 10000)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "steps %d is not in 1..10000", p->steps);
    if (p->step_size < 1 || p->step_size > 255)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "step size %d is not in 1..255", p->step_size);
    if (p->n_qualities < 0 || p->n_qualities > ATK_MAX_QUALITIES)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%d qualities: at most %d", p->n_qualities,
                        ATK_MAX_QUALITIES);
    for (int q = 0; q < p->n_qualities; q++)
        if (p->qualities[q] < 1 || p->qualities[q] > 100)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "quality %d is not in 1..100", p->qualities[q]);
    return ADJ_OK;
}

/* g[k] (interleaved) of the step for nb images ys: at ys, or the BPDA/EOT mean
 * over p's qualities of the gradients at JPG_q(ys), each weighed back to its
 * true size (net_grad_exponent) relative to the largest. zs: nb images of scratch. */
static int step_gradient(net_ctx *ctx, const img_rgb *ys, int nb, const int *labels,
                         const atk_iter_params *p, float *g, img_rgb *zs, char *err, size_t errsz)
{
    if (p->n_qualities == 0)
        return atk_gradient(ctx, ys, nb, (int *)labels, 0, g, NULL, err, errsz);
    const size_t per = (size_t)3 * ys[0].w * ys[0].h;
    int rc = ADJ_OK, ex[ATK_MAX_QUALITIES][64];
    double *acc = calloc(per * nb, sizeof *acc);
    float *all = malloc(per * nb * p->n_qualities * sizeof(float));
    if (!acc || !all)
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    for (int q = 0; q < p->n_qualities && !rc; q++) {
        for (int i = 0; i < nb && !rc; i++)
            rc = img_jpeg_roundtrip(&ys[i], p->qualities[q], &zs[i], err, errsz);
        if (!rc)
            rc = atk_gradient(ctx, zs, nb, (int *)labels, 0, all + per * nb * q, NULL, err, errsz);
        for (int i = 0; i < nb; i++) {
            ex[q][i] = net_grad_exponent(ctx, i);
            img_free(&zs[i]);
        }
    }
    for (int i = 0; i < nb && !rc; i++) {
        int top = ex[0][i]; /* the least scaled-up gradient is the largest */
        for (int q = 1; q < p->n_qualities; q++)
            top = ex[q][i] < top ? ex[q][i] : top;
        for (int q = 0; q < p->n_qualities; q++) {
            const double w = ldexp(1.0, top - ex[q][i]);
            const float *src = all + per * nb * q + per * i;
            for (size_t k = 0; k < per; k++)
                acc[per * i + k] += w * src[k];
        }
        for (size_t k = 0; k < per; k++)
            g[per * i + k] = (float)(acc[per * i + k] / p->n_qualities);
    }
    free(acc);
    free(all);
    return rc;
}

int atk_iterative(net_ctx *ctx, const img_rgb *xs, int n, const int *labels,
                  const uint64_t *seeds, const atk_iter_params *p, img_rgb *outs, char *err,
                  size_t errsz)
{
    int rc = atk_iter_params_check(p, err, errsz);
    if (rc)
        return rc;
    if (p->random_start && !seeds)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "a random start needs a seed per image");
    const int B = net_ctx_max_batch(ctx) < 64 ? net_ctx_max_batch(ctx) : 64;
    img_rgb *ys = calloc((size_t)n, sizeof *ys), *zs = calloc((size_t)B, sizeof *zs);
    if (!ys || !zs) {
        free(ys);
        free(zs);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n && !rc; i++) {
        if ((rc = img_copy(&xs[i], &ys[i])))
            adj_fail(err, errsz, rc, "out of memory");
        else if (p->random_start) {
            rng gen;
            rng_seed(&gen, seeds[i]);
            const size_t len = (size_t)3 * xs[i].w * xs[i].h;
            for (size_t k = 0; k < len; k++) {
                int d = (int)rng_below(&gen, (uint64_t)(2 * p->eps + 1)) - p->eps;
                ys[i].px[k] = clip255(xs[i].px[k] + d);
            }
        }
    }
    const size_t per = n ? (size_t)3 * xs[0].w * xs[0].h : 0;
    float *grad = rc ? NULL : malloc(per * (size_t)(n < B ? n : B) * sizeof(float));
    if (!rc && !grad)
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    const int dir = p->targeted ? -1 : 1;
    for (int b0 = 0; b0 < n && !rc; b0 += B) {
        const int nb = n - b0 < B ? n - b0 : B;
        for (int step = 0; step < p->steps && !rc; step++) {
            rc = step_gradient(ctx, ys + b0, nb, labels + b0, p, grad, zs, err, errsz);
            for (int i = 0; i < nb && !rc; i++) {
                const uint8_t *x = xs[b0 + i].px;
                uint8_t *y = ys[b0 + i].px;
                const float *g = grad + per * i;
                for (size_t k = 0; k < per; k++) {
                    int s = g[k] > 0.0f ? 1 : g[k] < 0.0f ? -1 : 0;
                    int v = y[k] + dir * s * p->step_size;
                    int lo = x[k] - p->eps, hi = x[k] + p->eps;
                    v = v < lo ? lo : v > hi ? hi : v;
                    y[k] = clip255(v);
                }
            }
        }
    }
    free(grad);
    free(zs);
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

atk_norms atk_perturbation(const img_rgb *x, const img_rgb *y)
{
    const size_t n = (size_t)3 * x->w * x->h;
    atk_norms r = {0, 0, INFINITY};
    double ss = 0;
    for (size_t k = 0; k < n; k++) {
        const int d = y->px[k] - x->px[k];
        if (abs(d) > r.linf)
            r.linf = abs(d);
        ss += (double)d * d;
    }
    r.l2 = sqrt(ss);
    if (ss > 0)
        r.psnr = 10.0 * log10(255.0 * 255.0 / (ss / (double)n));
    return r;
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
    rng gen;
    rng_seed(&gen, seed);
    for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = (size_t)rng_below(&gen, (uint64_t)i + 1);
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
