#include "experiment.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Images per call of the iterative attacks (their seeds on the stack). */
#define EXP_MAX_BATCH_SEEDS 64

void exp_params_set_qualities(exp_params *p, const int *q, int n)
{
    p->quality = q[0];
    p->n_quality = n;
    memset(p->qualities, 0, sizeof p->qualities);
    memcpy(p->qualities, q, (size_t)n * sizeof *q);
}

int exp_n_qualities(const exp_params *p) { return p->n_quality > 1 ? p->n_quality : 1; }

int exp_quality_at(const exp_params *p, int i)
{
    return p->n_quality > 1 ? p->qualities[i] : p->quality;
}

/* The quality or the grid: in range, distinct, qualities[0] == quality. */
static int check_qualities(const exp_params *p, char *err, size_t errsz)
{
    if (p->n_quality < 0 || p->n_quality > EXP_MAX_QUALITY)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "quality: give 1..%d values, not %d",
                        EXP_MAX_QUALITY, p->n_quality);
    if (p->n_quality > 1 && p->qualities[0] != p->quality)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "quality: the grid's first quality %d is not %d",
                        p->qualities[0], p->quality);
    const int nq = exp_n_qualities(p);
    for (int i = 0; i < nq; i++) {
        const int q = exp_quality_at(p, i);
        if (q < EXP_QUALITY_MIN || q > EXP_QUALITY_MAX)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "quality: %d is not in %d..%d", q,
                            EXP_QUALITY_MIN, EXP_QUALITY_MAX);
        for (int k = 0; k < i; k++)
            if (exp_quality_at(p, k) == q)
                return adj_fail(err, errsz, ADJ_ERR_ARG, "quality: %d is listed twice", q);
    }
    return ADJ_OK;
}

int exp_params_check(const exp_params *p, char *err, size_t errsz)
{
    if (p->n_eps < 1 || p->n_eps > EXP_MAX_EPS)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: give 1..%d values, not %d", EXP_MAX_EPS,
                        p->n_eps);
    for (int i = 0; i < p->n_eps; i++)
        if (p->eps[i] < EXP_EPS_MIN || p->eps[i] > EXP_EPS_MAX)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: %d is not an integer in %d..%d",
                            p->eps[i], EXP_EPS_MIN, EXP_EPS_MAX);
    int rc = check_qualities(p, err, errsz);
    if (rc)
        return rc;
    const exp_attack *a = &p->attack;
    if (a->adaptive == EXP_ADAPT_BPDA && exp_n_qualities(p) > 1)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "adaptive=bpda attacks JPG at one quality: give one quality, not %d "
                        "(a grid of adaptive attacks is one job per quality)",
                        exp_n_qualities(p));
    if (a->kind < EXP_FGSM || a->kind > EXP_LL)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "attack: unknown kind %d", (int)a->kind);
    if (a->adaptive < EXP_ADAPT_NONE || a->adaptive > EXP_ADAPT_EOT)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "adaptive: unknown kind %d", (int)a->adaptive);
    if (a->kind == EXP_FGSM && (a->steps || a->step_size))
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "%s: attack=fgsm takes one step of eps (steps and step_size are for "
                        "attack=bim, pgd or ll)", a->steps ? "steps" : "step_size");
    if (a->kind == EXP_FGSM && a->adaptive)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "adaptive: the adaptive attacks are iterative (attack=bim, pgd or ll), "
                        "not fgsm");
    if (a->n_eot && a->adaptive != EXP_ADAPT_EOT)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eot_qualities: only with adaptive=eot");
    if (a->steps < 0 || a->steps > EXP_STEPS_MAX)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "steps: %d is not in 1..%d", a->steps,
                        EXP_STEPS_MAX);
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
    const exp_attack a = exp_attack_resolved(p);
    atk_iter_params ip = {.eps = e,
                          .steps = a.steps,
                          .step_size = a.step_size,
                          .random_start = a.kind == EXP_PGD,
                          .targeted = a.kind == EXP_LL};
    if (a.adaptive == EXP_ADAPT_BPDA) {
        ip.n_qualities = 1;
        ip.qualities[0] = p->quality;
    } else if (a.adaptive == EXP_ADAPT_EOT) {
        ip.n_qualities = a.n_eot;
        memcpy(ip.qualities, a.eot_qualities, (size_t)a.n_eot * sizeof(int));
    }
    return ip;
}

int exp_has_twin(const exp_params *p) { return p->attack.adaptive != EXP_ADAPT_NONE; }

exp_params exp_params_twin(const exp_params *p)
{
    exp_params t = *p;
    t.attack.adaptive = EXP_ADAPT_NONE;
    t.attack.n_eot = 0;
    memset(t.attack.eot_qualities, 0, sizeof t.attack.eot_qualities);
    return t;
}

int exp_n_adv(const exp_params *p) { return p->n_eps * (1 + exp_has_twin(p)); }

/* Transforms per eps of one attack: Adv, then JPG and JPGnoise per quality. */
static int per_eps(const exp_params *p) { return 1 + 2 * exp_n_qualities(p); }

int exp_twin_first(const exp_params *p)
{
    return 1 + exp_n_qualities(p) + p->n_eps * per_eps(p);
}

int exp_n_transforms(const exp_params *p)
{
    return exp_twin_first(p) + exp_has_twin(p) * p->n_eps * per_eps(p);
}

exp_params exp_transform_params(const exp_params *p, int t)
{
    return exp_transform_at(p, t).twin ? exp_params_twin(p) : *p;
}

exp_transform exp_transform_at(const exp_params *p, int t)
{
    const int nq = exp_n_qualities(p), first = exp_twin_first(p);
    exp_transform d = {.kind = EXP_T_X, .ei = -1, .qi = -1, .ai = -1};
    if (t == 0)
        return d;
    if (t <= nq) {
        d.kind = EXP_T_JPG_X;
        d.qi = t - 1;
    } else {
        d.twin = t >= first;
        const int u = t - (d.twin ? first : 1 + nq), k = u % per_eps(p);
        d.ei = u / per_eps(p);
        d.ai = d.ei + d.twin * p->n_eps;
        d.eps = p->eps[d.ei];
        d.kind = k == 0 ? EXP_T_ADV : (k - 1) % 2 == 0 ? EXP_T_JPG_ADV : EXP_T_NOISE_ADV;
        d.qi = k == 0 ? -1 : (k - 1) / 2;
    }
    if (d.qi >= 0)
        d.quality = exp_quality_at(p, d.qi);
    return d;
}

int exp_transform_index(const exp_params *p, exp_transform_kind kind, int ei, int qi)
{
    return exp_transform_index_twin(p, 0, kind, ei, qi);
}

int exp_transform_index_twin(const exp_params *p, int twin, exp_transform_kind kind, int ei,
                             int qi)
{
    const int nq = exp_n_qualities(p);
    const int q_ok = qi >= 0 && qi < nq, e_ok = ei >= 0 && ei < p->n_eps;
    if (twin && (!exp_has_twin(p) || kind == EXP_T_X || kind == EXP_T_JPG_X))
        return -1;
    const int base = (twin ? exp_twin_first(p) : 1 + nq) + ei * per_eps(p);
    switch (kind) {
    case EXP_T_X: return 0;
    case EXP_T_JPG_X: return q_ok ? 1 + qi : -1;
    case EXP_T_ADV: return e_ok ? base : -1;
    case EXP_T_JPG_ADV: return e_ok && q_ok ? base + 1 + 2 * qi : -1;
    case EXP_T_NOISE_ADV: return e_ok && q_ok ? base + 2 + 2 * qi : -1;
    case EXP_T_KIND_COUNT: break;
    }
    return -1;
}

const char *exp_transform_kind_name(exp_transform_kind kind)
{
    static const char *const names[EXP_T_KIND_COUNT] = {
        [EXP_T_X] = "x", [EXP_T_JPG_X] = "jpg", [EXP_T_ADV] = "adv",
        [EXP_T_JPG_ADV] = "jpg_adv", [EXP_T_NOISE_ADV] = "noise_adv"};
    return (unsigned)kind < EXP_T_KIND_COUNT ? names[kind] : "?";
}
exp_attack exp_attack_resolved(const exp_params *p)
{
    static const int eot_default[] = {EXP_DEFAULT_EOT_QUALITIES};
    exp_attack a = p->attack;
    if (a.kind == EXP_FGSM)
        return a;
    a.steps = a.steps ? a.steps : EXP_DEFAULT_STEPS;
    a.step_size = a.step_size ? a.step_size : EXP_DEFAULT_STEP_SIZE;
    if (a.adaptive == EXP_ADAPT_EOT && !a.n_eot) {
        a.n_eot = (int)(sizeof eot_default / sizeof eot_default[0]);
        memcpy(a.eot_qualities, eot_default, sizeof eot_default);
    }
    return a;
}

/* An exp_param choice's word in capitals ("pgd": "PGD") into w. */
static const char *choice_upper(exp_param_id id, int v, char *w, size_t n)
{
    exp_param_choice(id, v, w, n);
    for (char *c = w; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    return w;
}

const char *exp_attack_label(const exp_params *p, char *buf, size_t size)
{
    const exp_attack a = exp_attack_resolved(p);
    char kind[16], adapt[16];
    choice_upper(EXP_PARAM_ATTACK, (int)a.kind, kind, sizeof kind);
    if (a.kind == EXP_FGSM)
        snprintf(buf, size, "%s", kind);
    else if (a.adaptive == EXP_ADAPT_NONE)
        snprintf(buf, size, "%s-%d", kind, a.steps);
    else
        snprintf(buf, size, "%s-%s-%d",
                 choice_upper(EXP_PARAM_ADAPTIVE, (int)a.adaptive, adapt, sizeof adapt), kind,
                 a.steps);
    return buf;
}

int exp_attack_equal(const exp_params *a, const exp_params *b)
{
    const exp_attack x = exp_attack_resolved(a), y = exp_attack_resolved(b);
    if (x.kind != y.kind || x.steps != y.steps || x.step_size != y.step_size ||
        x.adaptive != y.adaptive || x.n_eot != y.n_eot)
        return 0;
    return memcmp(x.eot_qualities, y.eot_qualities, (size_t)x.n_eot * sizeof(int)) == 0;
}

const char *exp_threat_model(const exp_params *p, char *buf, size_t size)
{
    const exp_attack a = exp_attack_resolved(p);
    size_t o;
    switch (a.adaptive) {
    case EXP_ADAPT_BPDA:
        snprintf(buf, size, "adaptive: BPDA through JPG_q at q=%d (the attacker targets "
                            "f(JPG_q(.)), JPEG taken as the identity in the backward pass)",
                 p->quality);
        break;
    case EXP_ADAPT_EOT:
        o = (size_t)snprintf(buf, size, "adaptive: EOT over qualities ");
        for (int q = 0; q < a.n_eot && o < size; q++)
            o += (size_t)snprintf(buf + o, size - o, "%s%d", q ? "," : "", a.eot_qualities[q]);
        if (o < size)
            snprintf(buf + o, size - o, " (the mean of the BPDA gradients through JPG_q)");
        break;
    default:
        snprintf(buf, size, "non-adaptive: the attacker targets f and does not know JPEG "
                            "follows (the paper)");
    }
    return buf;
}


exp_transform_kind exp_transform_kind_of(const exp_params *p, int t)
{
    return exp_transform_at(p, t).kind;
}

int exp_transform_eps(const exp_params *p, int t) { return exp_transform_at(p, t).eps; }

int exp_transform_find(const exp_params *p, exp_transform_kind k, int eps, int quality)
{
    int ei = -1, qi = -1;
    for (int i = 0; i < p->n_eps; i++)
        if (p->eps[i] == eps)
            ei = i;
    for (int i = 0; i < exp_n_qualities(p); i++)
        if (exp_quality_at(p, i) == quality)
            qi = i;
    if ((k != EXP_T_X && k != EXP_T_JPG_X && ei < 0) ||
        (k != EXP_T_X && k != EXP_T_ADV && qi < 0))
        return -1;
    return exp_transform_index(p, k, ei, qi);
}

const char *exp_transform_name(const exp_params *p, int t, char *buf, size_t size)
{
    const exp_transform d = exp_transform_at(p, t);
    char q[8] = "", a[32] = ""; /* the quality in a grid's names, the twin's attack */
    if (exp_n_qualities(p) > 1 && d.quality)
        snprintf(q, sizeof q, "%d", d.quality);
    if (d.twin) {
        const exp_params tp = exp_params_twin(p);
        a[0] = ' ';
        exp_attack_label(&tp, a + 1, sizeof a - 1);
    }
    switch (d.kind) {
    case EXP_T_X: snprintf(buf, size, "x"); break;
    case EXP_T_JPG_X: snprintf(buf, size, "JPG%s(x)", q); break;
    case EXP_T_ADV: snprintf(buf, size, "Adv%d(x)%s", d.eps, a); break;
    case EXP_T_JPG_ADV: snprintf(buf, size, "JPG%s(Adv%d(x))%s", q, d.eps, a); break;
    case EXP_T_NOISE_ADV: snprintf(buf, size, "JPGnoise%s(Adv%d(x))%s", q, d.eps, a); break;
    case EXP_T_KIND_COUNT: snprintf(buf, size, "?"); break;
    }
    return buf;
}

const char *exp_transform_label(const exp_params *p, int t, char *buf, size_t size)
{
    const exp_transform d = exp_transform_at(p, t);
    exp_transform_name(p, t, buf, size);
    const size_t o = strlen(buf);
    if (exp_has_twin(p) && !d.twin && d.eps && o + 1 < size) {
        buf[o] = ' ';
        exp_attack_label(p, buf + o + 1, size - o - 1);
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

void exp_result_drop_images(exp_result *r)
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
    exp_result_drop_images(r);
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
 * attacks and their twins: grad NULL). */
static int make_variants(const exp_params *p, const float *grad, uint64_t seed, exp_result *r,
                         char *err, size_t errsz)
{
    const img_rgb *x = &r->images[0];
    const int nq = exp_n_qualities(p);
    int rc = ADJ_OK;
    for (int q = 0; q < nq && !rc; q++)
        rc = img_jpeg_roundtrip(x, exp_quality_at(p, q),
                                &r->images[exp_transform_index(p, EXP_T_JPG_X, 0, q)], err, errsz);
    for (int a = 0; a < exp_n_adv(p) && !rc; a++) { /* each eps, then the twin's */
        const int e = a % p->n_eps, twin = a / p->n_eps;
        img_rgb *adv = &r->images[exp_transform_index_twin(p, twin, EXP_T_ADV, e, 0)];
        if (grad) {
            if ((rc = img_alloc(adv, x->w, x->h)))
                return adj_fail(err, errsz, rc, "out of memory");
            atk_fgsm(x->px, grad, (size_t)3 * x->w * x->h, p->eps[e], adv->px);
        }
        r->norms[a] = atk_perturbation(x, adv);
        for (int q = 0; q < nq && !rc; q++) {
            img_rgb *jpg = &r->images[exp_transform_index_twin(p, twin, EXP_T_JPG_ADV, e, q)];
            rc = img_jpeg_roundtrip(adv, exp_quality_at(p, q), jpg, err, errsz);
            if (!rc) /* the same permutation at every quality: the grid is the union of jobs */
                rc = atk_jpeg_noise(
                    adv, jpg, seed,
                    &r->images[exp_transform_index_twin(p, twin, EXP_T_NOISE_ADV, e, q)], err,
                    errsz);
        }
    }
    return rc;
}

/* The iterative attack of p (or of its twin) at each eps for the nb images xs
 * (labels: l_x, or LL's targets), into their results' Adv images. */
static int run_iterative(net_ctx *ctx, const img_rgb *xs, int nb, const int *labels,
                         const exp_params *p, int twin, const uint64_t *seeds, exp_result *r,
                         char *err, size_t errsz)
{
    const exp_params tp = twin ? exp_params_twin(p) : *p;
    int rc = ADJ_OK;
    for (int e = 0; e < p->n_eps && !rc; e++) {
        const atk_iter_params ip = iter_params(&tp, p->eps[e]);
        uint64_t s[EXP_MAX_BATCH_SEEDS];
        img_rgb adv[EXP_MAX_BATCH_SEEDS];
        for (int c0 = 0; c0 < nb && !rc; c0 += EXP_MAX_BATCH_SEEDS) {
            const int nc = nb - c0 < EXP_MAX_BATCH_SEEDS ? nb - c0 : EXP_MAX_BATCH_SEEDS;
            for (int i = 0; i < nc; i++) /* the twin starts where the attack starts */
                s[i] = start_seed(seeds[c0 + i], p->eps[e]);
            rc = atk_iterative(ctx, xs + c0, nc, labels + c0, s, &ip, adv, err, errsz);
            for (int i = 0; i < nc && !rc; i++)
                r[c0 + i].images[exp_transform_index_twin(p, twin, EXP_T_ADV, e, 0)] = adv[i];
        }
    }
    return rc;
}

/* An empty result for x: its copy as images[0], room for every transform's scores. */
static int result_init(const exp_params *p, int K, const img_rgb *x, exp_result *r, char *err,
                       size_t errsz)
{
    const int T = exp_n_transforms(p);
    r->n_transforms = T;
    r->n_adv = exp_n_adv(p);
    r->twin_first = exp_has_twin(p) ? exp_twin_first(p) : 0;
    r->classes = K;
    r->probs = calloc((size_t)T * K, sizeof(float));
    r->images = calloc((size_t)T, sizeof(img_rgb));
    if (!r->probs || !r->images || img_copy(x, &r->images[0]))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    return ADJ_OK;
}

int exp_fgsm_variants(const exp_params *p, const img_rgb *x, const float *grad,
                      const float *probs_x, int label_x, int classes, uint64_t seed,
                      exp_result *r, char *err, size_t errsz)
{
    memset(r, 0, sizeof *r);
    int rc = exp_params_check(p, err, errsz);
    if (!rc && p->attack.kind != EXP_FGSM)
        rc = adj_fail(err, errsz, ADJ_ERR_ARG, "exp_fgsm_variants: the attack is not FGSM");
    if (!rc)
        rc = result_init(p, classes, x, r, err, errsz);
    if (!rc) {
        r->label_x = label_x;
        memcpy(r->probs, probs_x, (size_t)classes * sizeof(float));
        rc = make_variants(p, grad, seed, r, err, errsz);
    }
    if (rc)
        exp_result_free(r);
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
    for (int i = 0; i < n && !rc; i++)
        rc = result_init(p, K, &xs[i], &r[i], err, errsz);
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
        for (int twin = 0; twin <= exp_has_twin(p) && !fgsm && !rc; twin++)
            rc = run_iterative(ctx, xs + b0, nb, labels, p, twin, seeds + b0, r + b0, err, errsz);
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
                exp_result_drop_images(ri); /* its last variant: only the scores are wanted */
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
