#include "experiment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Images per call of the iterative attacks (their seeds on the stack). */
#define EXP_MAX_BATCH_SEEDS 64

int exp_params_check(const exp_params *p, char *err, size_t errsz)
{
    if (p->n_eps < 1 || p->n_eps > EXP_MAX_EPS)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: give 1..%d values, not %d", EXP_MAX_EPS,
                        p->n_eps);
    for (int i = 0; i < p->n_eps; i++)
        if (p->eps[i] < EXP_EPS_MIN || p->eps[i] > EXP_EPS_MAX)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: %d is not an integer in %d..%d",
                            p->eps[i], EXP_EPS_MIN, EXP_EPS_MAX);
    if (p->quality < EXP_QUALITY_MIN || p->quality > EXP_QUALITY_MAX)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "quality: %d is not in %d..%d", p->quality,
                        EXP_QUALITY_MIN, EXP_QUALITY_MAX);
    const exp_attack *a = &p->attack;
    if (a->kind < EXP_FGSM || a->kind > EXP_LL)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "attack: unknown kind %d", (int)a->kind);
    if (a->adaptive < EXP_ADAPT_NONE || a->adaptive > EXP_ADAPT_EOT)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "adaptive: unknown kind %d", (int)a->adaptive);
    if (a->kind == EXP_FGSM && (a->steps || a->step_size))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "steps and step_size: FGSM takes one step of eps");
    if (a->kind == EXP_FGSM && a->adaptive)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "adaptive: the adaptive attacks are iterative (bim, pgd or ll), not fgsm");
    if (a->n_eot && a->adaptive != EXP_ADAPT_EOT)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eot_qualities: only with adaptive=eot");
    if (a->steps < 0 || a->steps > 10000)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "steps: %d is not in 1..10000", a->steps);
    if (a->step_size < 0 || a->step_size > 255)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "step_size: %d is not in 1..255", a->step_size);
    if (a->n_eot < 0 || a->n_eot > 16)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eot_qualities: give 1..16 values, not %d", a->n_eot);
    for (int q = 0; q < a->n_eot; q++)
        if (a->eot_qualities[q] < 1 || a->eot_qualities[q] > 100)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "eot_qualities: %d is not in 1..100",
                            a->eot_qualities[q]);
    return ADJ_OK;
}

/* PGD's start for an image (its seed) at eps e: its own stream per eps. */
static uint64_t start_seed(uint64_t image_seed, int eps)
{
    char name[24];
    snprintf(name, sizeof name, "PGD%d", eps);
    return exp_image_seed(image_seed, name);
}

/* The iterative attack's parameters for eps e, defaults filled in. */
static atk_iter_params iter_params(const exp_params *p, int e)
{
    static const int eot_default[] = {50, 60, 70, 75, 80, 90};
    const exp_attack *a = &p->attack;
    atk_iter_params ip = {.eps = e,
                          .steps = a->steps ? a->steps : 10,
                          .step_size = a->step_size ? a->step_size : 1,
                          .random_start = a->kind == EXP_PGD,
                          .targeted = a->kind == EXP_LL};
    if (a->adaptive == EXP_ADAPT_BPDA) {
        ip.n_qualities = 1;
        ip.qualities[0] = p->quality;
    } else if (a->adaptive == EXP_ADAPT_EOT) {
        ip.n_qualities = a->n_eot ? a->n_eot : 6;
        for (int q = 0; q < ip.n_qualities; q++)
            ip.qualities[q] = a->n_eot ? a->eot_qualities[q] : eot_default[q];
    }
    return ip;
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

int exp_transform_find(const exp_params *p, exp_transform_kind k, int eps, int quality)
{
    if (quality != p->quality && k != EXP_T_X && k != EXP_T_ADV)
        return -1;
    for (int t = 0; t < exp_n_transforms(p); t++)
        if (exp_transform_kind_of(p, t) == k &&
            (k == EXP_T_X || k == EXP_T_JPG_X || exp_transform_eps(p, t) == eps))
            return t;
    return -1;
}

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

/* Frees a result's images (the scores stay). */
static void drop_images(exp_result *r)
{
    for (int t = 0; r->images && t < r->n_transforms; t++)
        img_free(&r->images[t]);
    free(r->images);
    r->images = NULL;
}

void exp_result_free(exp_result *r)
{
    if (!r)
        return;
    drop_images(r);
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

/* Builds every transformed image of one result from x and its gradient
 * (FGSM), or from the adversarial images already in place (the iterative
 * attacks: grad NULL). */
static int make_variants(const exp_params *p, const float *grad, uint64_t seed, exp_result *r,
                         char *err, size_t errsz)
{
    const img_rgb *x = &r->images[0];
    int rc = img_jpeg_roundtrip(x, p->quality, &r->images[1], err, errsz);
    for (int e = 0; e < p->n_eps && !rc; e++) {
        img_rgb *adv = &r->images[2 + 3 * e];
        if (grad) {
            if ((rc = img_alloc(adv, x->w, x->h)))
                return adj_fail(err, errsz, rc, "out of memory");
            atk_fgsm(x->px, grad, (size_t)3 * x->w * x->h, p->eps[e], adv->px);
        }
        r->norms[e] = atk_perturbation(x, adv);
        rc = img_jpeg_roundtrip(adv, p->quality, adv + 1, err, errsz);
        if (!rc)
            rc = atk_jpeg_noise(adv, adv + 1, seed, adv + 2, err, errsz);
    }
    return rc;
}

int exp_run_batch(net_ctx *ctx, const img_rgb *xs, int n, const exp_params *p,
                  const uint64_t *seeds, exp_result *out, char *err, size_t errsz)
{
    return exp_run_batch_keep(ctx, xs, n, p, seeds, NULL, out, err, errsz);
}

int exp_run_batch_keep(net_ctx *ctx, const img_rgb *xs, int n, const exp_params *p,
                       const uint64_t *seeds, const int *keep, exp_result *out, char *err,
                       size_t errsz)
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
    /* 1. the clean images: one forward and one backward pass per chunk; the
     * iterative attacks then make Adv for each eps from l_x (or, for LL, the
     * least-likely class of x) */
    const int fgsm = p->attack.kind == EXP_FGSM;
    for (int b0 = 0; b0 < n && !rc; b0 += B) {
        const int nb = n - b0 < B ? n - b0 : B;
        if ((rc = atk_gradient(ctx, xs + b0, nb, labels, 1, grad, probs, err, errsz)))
            break;
        for (int i = 0; i < nb; i++) {
            r[b0 + i].label_x = labels[i];
            memcpy(r[b0 + i].probs, probs + (size_t)i * K, (size_t)K * sizeof(float));
            if (p->attack.kind == EXP_LL) {
                int ll = 0;
                for (int k = 1; k < K; k++)
                    ll = probs[(size_t)i * K + k] < probs[(size_t)i * K + ll] ? k : ll;
                labels[i] = ll;
            }
        }
        for (int e = 0; e < p->n_eps && !fgsm && !rc; e++) {
            const atk_iter_params ip = iter_params(p, p->eps[e]);
            uint64_t s[EXP_MAX_BATCH_SEEDS];
            img_rgb adv[EXP_MAX_BATCH_SEEDS];
            for (int c0 = 0; c0 < nb && !rc; c0 += EXP_MAX_BATCH_SEEDS) {
                const int nc = nb - c0 < EXP_MAX_BATCH_SEEDS ? nb - c0 : EXP_MAX_BATCH_SEEDS;
                for (int i = 0; i < nc; i++)
                    s[i] = start_seed(seeds[b0 + c0 + i], p->eps[e]);
                rc = atk_iterative(ctx, xs + b0 + c0, nc, labels + c0, s, &ip, adv, err, errsz);
                for (int i = 0; i < nc && !rc; i++)
                    r[b0 + c0 + i].images[2 + 3 * e] = adv[i];
            }
        }
        for (int i = 0; i < nb && !rc; i++)
            rc = make_variants(p, fgsm ? grad + per * i : NULL, seeds[b0 + i], &r[b0 + i], err, errsz);
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
            exp_result *ri = &r[j / (T - 1)];
            memcpy(ri->probs + (size_t)(1 + j % (T - 1)) * K, probs + (size_t)q * K,
                   (size_t)K * sizeof(float));
            if (j % (T - 1) == T - 2 && keep && !keep[j / (T - 1)])
                drop_images(ri); /* its last variant: only the scores are wanted */
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
