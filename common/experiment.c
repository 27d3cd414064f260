#include "experiment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attack.h"

int exp_params_check(const exp_params *p, char *err, size_t errsz)
{
    if (p->n_eps < 1 || p->n_eps > EXP_MAX_EPS)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: give 1..%d values, not %d", EXP_MAX_EPS,
                        p->n_eps);
    for (int i = 0; i < p->n_eps; i++)
        if (p->eps[i] < 1 || p->eps[i] > 255)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: %d is not an integer in 1..255",
                            p->eps[i]);
    if (p->quality < 1 || p->quality > 100)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "quality: %d is not in 1..100", p->quality);
    return ADJ_OK;
}

int exp_n_transforms(const exp_params *p) { return 2 + 3 * p->n_eps; }

exp_transform_kind exp_transform_kind_of(const exp_params *p, int t)
{
    (void)p;
    if (t < 2)
        return t == 0 ? EXP_T_X : EXP_T_JPG_X;
    return (exp_transform_kind)(EXP_T_ADV + (t - 2) % 3);
}

int exp_transform_eps(const exp_params *p, int t) { return t < 2 ? 0 : p->eps[(t - 2) / 3]; }

const char *exp_transform_name(const exp_params *p, int t, char *buf, size_t size)
{
    const int e = exp_transform_eps(p, t);
    switch (exp_transform_kind_of(p, t)) {
    case EXP_T_X: snprintf(buf, size, "x"); break;
    case EXP_T_JPG_X: snprintf(buf, size, "JPG(x)"); break;
    case EXP_T_ADV: snprintf(buf, size, "Adv%d(x)", e); break;
    case EXP_T_JPG_ADV: snprintf(buf, size, "JPG(Adv%d(x))", e); break;
    case EXP_T_NOISE_ADV: snprintf(buf, size, "JPGnoise(Adv%d(x))", e); break;
    }
    return buf;
}

float exp_top_label_prob(const exp_result *r, int t)
{
    return r->probs[(size_t)t * r->classes + r->label_x];
}

int exp_label(const exp_result *r, int t)
{
    return net_argmax(r->probs + (size_t)t * r->classes, r->classes);
}

void exp_result_free(exp_result *r)
{
    if (!r)
        return;
    if (r->images)
        for (int t = 0; t < r->n_transforms; t++)
            img_free(&r->images[t]);
    free(r->images);
    free(r->probs);
    memset(r, 0, sizeof *r);
}

uint64_t exp_image_seed(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (const unsigned char *s = (const unsigned char *)name; *s; s++)
        h = (h ^ *s) * 0x100000001b3ULL;
    uint64_t z = seed ^ h;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Builds every transformed image of one result from x and its gradient. */
static int make_variants(const exp_params *p, const float *grad, uint64_t seed, exp_result *r,
                         char *err, size_t errsz)
{
    const img_rgb *x = &r->images[0];
    int rc = img_jpeg_roundtrip(x, p->quality, &r->images[1], err, errsz);
    for (int e = 0; e < p->n_eps && !rc; e++) {
        img_rgb *adv = &r->images[2 + 3 * e];
        if ((rc = img_alloc(adv, x->w, x->h)))
            return adj_fail(err, errsz, rc, "out of memory");
        atk_fgsm(x->px, grad, (size_t)3 * x->w * x->h, p->eps[e], adv->px);
        rc = img_jpeg_roundtrip(adv, p->quality, adv + 1, err, errsz);
        if (!rc)
            rc = atk_jpeg_noise(adv, adv + 1, seed, adv + 2, err, errsz);
    }
    return rc;
}

int exp_run_batch(net_ctx *ctx, const img_rgb *xs, int n, const exp_params *p,
                  const uint64_t *seeds, exp_result *out, char *err, size_t errsz)
{
    int rc = exp_params_check(p, err, errsz);
    if (rc)
        return rc;
    if (n < 1)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "no images");
    const model_spec *spec = model_get_spec(net_ctx_model(ctx));
    const int B = net_ctx_max_batch(ctx), T = exp_n_transforms(p), K = spec->classes;
    const int w = xs[0].w, h = xs[0].h;
    if (w != spec->input_size || h != spec->input_size)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "image is %dx%d, the model takes %dx%d", w, h,
                        spec->input_size, spec->input_size);
    for (int i = 0; i < n; i++)
        if (xs[i].w != w || xs[i].h != h)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "images of a batch must have one size");
    const size_t per = (size_t)3 * w * h;
    const int cap = n < B ? n : B;
    exp_result *r = calloc((size_t)n, sizeof *r);
    float *grad = malloc(per * (size_t)cap * sizeof(float));
    float *planar = malloc(per * (size_t)B * sizeof(float));
    float *probs = malloc((size_t)B * K * sizeof(float));
    int *labels = malloc((size_t)B * sizeof *labels);
    if (!r || !grad || !planar || !probs || !labels) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n && !rc; i++) {
        r[i].n_transforms = T;
        r[i].classes = K;
        r[i].probs = calloc((size_t)T * K, sizeof(float));
        r[i].images = calloc((size_t)T, sizeof(img_rgb));
        if (!r[i].probs || !r[i].images || img_copy(&xs[i], &r[i].images[0]))
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    /* 1. the clean images: one forward and one backward pass per chunk */
    for (int b0 = 0; b0 < n && !rc; b0 += B) {
        const int nb = n - b0 < B ? n - b0 : B;
        if ((rc = atk_gradient(ctx, xs + b0, nb, labels, 1, grad, probs, err, errsz)))
            break;
        for (int i = 0; i < nb; i++) {
            r[b0 + i].label_x = labels[i];
            memcpy(r[b0 + i].probs, probs + (size_t)i * K, (size_t)K * sizeof(float));
        }
        for (int i = 0; i < nb && !rc; i++)
            rc = make_variants(p, grad + per * i, seeds[b0 + i], &r[b0 + i], err, errsz);
    }
    /* 2. every variant but x, classified in batches of B */
    const long total = (long)n * (T - 1);
    for (long j0 = 0; j0 < total && !rc; j0 += B) {
        const int nb = total - j0 < B ? (int)(total - j0) : B;
        for (int q = 0; q < nb; q++) {
            long j = j0 + q;
            img_to_planar(&r[j / (T - 1)].images[1 + j % (T - 1)], planar + per * q);
        }
        if ((rc = net_forward(ctx, planar, nb, probs))) {
            adj_fail(err, errsz, rc, "engine: forward pass failed");
            break;
        }
        for (int q = 0; q < nb; q++) {
            long j = j0 + q;
            memcpy(r[j / (T - 1)].probs + (size_t)(1 + j % (T - 1)) * K, probs + (size_t)q * K,
                   (size_t)K * sizeof(float));
        }
    }
    if (!rc)
        for (int i = 0; i < n; i++) {
            out[i] = r[i];
            memset(&r[i], 0, sizeof r[i]);
        }
done:
    if (r)
        for (int i = 0; i < n; i++)
            exp_result_free(&r[i]);
    free(r);
    free(grad);
    free(planar);
    free(probs);
    free(labels);
    return rc;
}
