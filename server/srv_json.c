#include "srv_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "net.h"
#include "srv_params.h"
#include "ut_base64.h"

#ifndef ADVJPG_VERSION
#define ADVJPG_VERSION "unknown"
#endif

char *srv_json_dump(json_t *j)
{
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(j);
    return s;
}

/* The length of the valid UTF-8 sequence at s (1..4), 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing over U+10FFFF */
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) /* a NUL ends the loop here too */
            return 0;
    return n;
}

char *srv_utf8_escape(const char *s, int ascii_only)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    char *out = malloc(4 * strlen((const char *)p) + 1), *o = out;
    if (!out)
        return NULL;
    while (*p) {
        size_t n = utf8_seq(p);
        int escape = n == 0 || (ascii_only && (n > 1 || *p < 0x20 || *p == 0x7f || *p == '\\'));
        if (escape) {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
            p++;
            continue;
        }
        memcpy(o, p, n);
        o += n;
        p += n;
    }
    *o = '\0';
    return out;
}

char *srv_json_error(const char *msg)
{
    char *clean = srv_utf8_escape(msg ? msg : "error", 0);
    if (!clean)
        return NULL;
    char *text = srv_json_dump(json_pack("{s:s}", "error", clean));
    free(clean);
    return text;
}

/* A probability as a JSON number, or null if it is not finite. */
static json_t *jprob(float p)
{
    return isfinite(p) ? json_real((double)p) : json_null();
}

/* Sets key to value on obj; remembers a failure (NULL value or OOM) in *bad. */
static void put(json_t *obj, const char *key, json_t *value, int *bad)
{
    if (!value || json_object_set_new(obj, key, value))
        *bad = 1;
}

/* Sets "name" to class idx's name, when the model has labels. "label" is a
 * class index everywhere; top[].label, the name before "name" existed, is
 * kept as a deprecated copy (README, "API changes"). */
static void put_name(json_t *obj, const srv_json_ctx *c, int idx, int *bad)
{
    if (c->labels && c->labels->n > idx)
        put(obj, "name", json_string(c->labels->names[idx]), bad);
}

json_t *srv_json_top(const srv_json_ctx *c, const float *probs)
{
    int k = c->top_k < 1 ? 1 : c->top_k > c->classes ? c->classes : c->top_k;
    int *idx = malloc((size_t)k * sizeof *idx);
    json_t *arr = json_array();
    if (!idx || !arr)
        goto fail;
    k = net_topk(probs, c->classes, k, idx);
    for (int i = 0; i < k; i++) {
        json_t *e = json_object();
        int bad = 0;
        if (!e)
            goto fail;
        put(e, "index", json_integer(idx[i]), &bad);
        put_name(e, c, idx[i], &bad);
        if (c->labels && c->labels->n > idx[i]) /* deprecated: the same as "name" */
            put(e, "label", json_string(c->labels->names[idx[i]]), &bad);
        put(e, "prob", jprob(probs[idx[i]]), &bad);
        if (json_array_append_new(arr, e) || bad)
            goto fail;
    }
    free(idx);
    return arr;
fail:
    free(idx);
    json_decref(arr);
    return NULL;
}

/* Adds "label", "prob" and "top" of one probability vector to obj. */
static void put_classification(json_t *obj, const srv_json_ctx *c, const float *probs, int *bad)
{
    int label = net_argmax(probs, c->classes);
    put(obj, "label", json_integer(label), bad);
    put_name(obj, c, label, bad);
    put(obj, "prob", jprob(probs[label]), bad);
    put(obj, "top", srv_json_top(c, probs), bad);
}

/* The fields every image answer starts with. */
static json_t *answer_head(const srv_json_ctx *c, int width, int height, int *bad)
{
    json_t *o = json_object();
    if (!o) {
        *bad = 1;
        return NULL;
    }
    put(o, "model", json_string(c->model_name), bad);
    put(o, "width", json_integer(width), bad);
    put(o, "height", json_integer(height), bad);
    put(o, "input_size", json_integer(c->input_size), bad);
    return o;
}

json_t *srv_json_classify(const srv_json_ctx *c, const float *probs, int width, int height)
{
    int bad = 0;
    json_t *o = answer_head(c, width, height, &bad);
    if (!o)
        return NULL;
    put_classification(o, c, probs, &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int srv_json_put_attack(json_t *e, const exp_params *p)
{
    const exp_attack a = exp_attack_resolved(p);
    char word[16];
    int bad = 0;
    put(e, "attack", json_string(exp_param_choice(EXP_PARAM_ATTACK, (int)a.kind, word, sizeof word)),
        &bad);
    put(e, "adaptive",
        json_string(exp_param_choice(EXP_PARAM_ADAPTIVE, (int)a.adaptive, word, sizeof word)), &bad);
    if (a.kind != EXP_FGSM) {
        put(e, "steps", json_integer(a.steps), &bad);
        put(e, "step_size", json_integer(a.step_size), &bad);
    }
    if (a.adaptive == EXP_ADAPT_EOT) {
        json_t *q = json_array();
        for (int i = 0; q && i < a.n_eot; i++)
            if (json_array_append_new(q, json_integer(a.eot_qualities[i])))
                bad = 1;
        put(e, "eot_qualities", q, &bad);
    }
    return bad ? ADJ_ERR_NOMEM : ADJ_OK;
}

int srv_json_put_norms(json_t *e, const atk_norms *n)
{
    int bad = 0;
    put(e, "linf", json_integer(n->linf), &bad);
    put(e, "l2", json_real(n->l2), &bad);
    put(e, "psnr", isfinite(n->psnr) ? json_real(n->psnr) : json_null(), &bad);
    return bad ? ADJ_ERR_NOMEM : ADJ_OK;
}

int srv_json_put_threat_model(json_t *o, const exp_params *p)
{
    char text[256];
    return json_object_set_new(o, "threat_model",
                               json_string(exp_threat_model(p, text, sizeof text)))
               ? ADJ_ERR_NOMEM
               : ADJ_OK;
}

/* p's eps as an array. */
static json_t *eps_json(const exp_params *p)
{
    json_t *a = json_array();
    for (int i = 0; a && i < p->n_eps; i++)
        if (json_array_append_new(a, json_integer(p->eps[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* A seed: an integer, a string beyond JSON's safe integers (exact anyway). */
static json_t *seed_json(uint64_t seed)
{
    return seed <= (uint64_t)INT64_MAX ? json_integer((json_int_t)seed)
                                       : json_sprintf("%llu", (unsigned long long)seed);
}

/* One entry of "results": transform name, eps, p(l_x | f(x)), classification. */
static json_t *result_entry(const srv_json_ctx *c, const char *name, int eps, int label_x,
                            const float *probs, int *bad)
{
    json_t *e = json_object();
    if (!e) {
        *bad = 1;
        return NULL;
    }
    put(e, "transform", json_string(name), bad);
    if (eps > 0)
        put(e, "eps", json_integer(eps), bad);
    put(e, "top_label_prob", jprob(probs[label_x]), bad);
    put_classification(e, c, probs, bad);
    return e;
}

json_t *srv_json_attack(const srv_json_ctx *c, const exp_params *p, uint64_t seed,
                        const exp_result *r, int width, int height, int with_images,
                        char *err, size_t errsz)
{
    int bad = 0;
    json_t *o = answer_head(c, width, height, &bad);
    if (!o)
        goto oom;
    put(o, "label", json_integer(r->label_x), &bad);
    put_name(o, c, r->label_x, &bad);
    put(o, "eps", eps_json(p), &bad);
    put(o, "quality", srv_json_quality(p), &bad);
    bad |= srv_json_put_attack(o, p) || srv_json_put_threat_model(o, p);
    put(o, "seed", seed_json(seed), &bad);

    json_t *results = json_array();
    json_t *images = with_images ? json_object() : NULL;
    if (!results || (with_images && !images))
        bad = 1;
    int nt = exp_n_transforms(p);
    for (int t = 0; !bad && t < nt; t++) {
        char name[64];
        exp_transform_name(p, t, name, sizeof name);
        json_t *e = result_entry(c, name, exp_transform_eps(p, t), r->label_x,
                                 r->probs + (size_t)t * r->classes, &bad);
        const exp_params tp = exp_transform_params(p, t); /* the twin's, or p */
        if (!e || srv_json_transform_fields(e, p, t) || json_array_append_new(results, e) ||
            srv_json_put_attack(e, &tp) ||
            (exp_transform_eps(p, t) > 0 &&
             srv_json_put_norms(e, &r->norms[exp_transform_at(p, t).ai])))
            bad = 1;
        if (images && !bad) {
            uint8_t *png = NULL;
            size_t len = 0;
            if (img_encode_png(&r->images[t], &png, &len, err, errsz)) {
                json_decref(results);
                json_decref(images);
                json_decref(o);
                return NULL;
            }
            char *b64 = ut_base64_encode(png, len, NULL);
            free(png);
            if (!b64 || json_object_set_new(images, name, json_string(b64)))
                bad = 1;
            free(b64);
        }
    }
    put(o, "results", results, &bad);
    if (images)
        put(o, "images", images, &bad);
    if (!bad)
        return o;
    json_decref(o);
oom:
    snprintf(err, errsz, "out of memory building the answer");
    return NULL;
}

json_t *srv_json_recompress(const srv_json_ctx *c, int quality, const float *probs, int width,
                            int height, const uint8_t *jpeg, size_t jpeg_len)
{
    int bad = 0;
    json_t *o = answer_head(c, width, height, &bad);
    if (!o)
        return NULL;
    int label_x = net_argmax(probs, c->classes);
    put(o, "quality", json_integer(quality), &bad);
    put(o, "label", json_integer(label_x), &bad);
    put_name(o, c, label_x, &bad);
    json_t *results = json_array();
    if (results) {
        if (json_array_append_new(results, result_entry(c, "x", 0, label_x, probs, &bad)) ||
            json_array_append_new(results, result_entry(c, "JPG(x)", 0, label_x,
                                                        probs + c->classes, &bad)))
            bad = 1;
    }
    put(o, "results", results, &bad);
    put(o, "jpeg_bytes", json_integer((json_int_t)jpeg_len), &bad);
    char *b64 = ut_base64_encode(jpeg, jpeg_len, NULL);
    put(o, "jpeg", b64 ? json_string(b64) : NULL, &bad);
    free(b64);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *srv_json_models(const model *m, const char *labels_path, const model_labels *labels,
                        int max_batch)
{
    const model_spec *s = model_get_spec(m);
    int bad = 0;
    json_t *e = json_object();
    if (!e)
        return NULL;
    put(e, "name", json_string(s->name), &bad);
    put(e, "channels", json_integer(s->channels), &bad);
    put(e, "input_size", json_integer(s->input_size), &bad);
    put(e, "scale_size", json_integer(s->scale_size), &bad);
    put(e, "mean", json_real(s->mean), &bad);
    put(e, "std", json_real(s->std), &bad);
    put(e, "classes", json_integer(s->classes), &bad);
    put(e, "layers", json_integer(s->n_layers), &bad);
    put(e, "parameters", json_integer((json_int_t)model_spec_param_count(s)), &bad);
    put(e, "flops", json_real(model_spec_flops(s)), &bad);
    put(e, "weights", json_string(model_weights_path(m)), &bad);
    put(e, "labels", labels_path && labels && labels->n ? json_string(labels_path) : json_null(),
        &bad);
    put(e, "max_batch", json_integer(max_batch), &bad);
    char *onnx_text = NULL; /* an ONNX model: format, preprocessing, operators */
    if (model_onnx_info_json(m, &onnx_text) == ADJ_OK && onnx_text) {
        json_t *info = json_loads(onnx_text, 0, NULL);
        if (info)
            put(e, "onnx", info, &bad);
        free(onnx_text);
    }
    char *spec_text = NULL;
    if (model_spec_to_json(s, &spec_text) == ADJ_OK && spec_text) {
        json_t *spec = json_loads(spec_text, 0, NULL);
        if (spec)
            put(e, "spec", spec, &bad);
    }
    free(spec_text);
    if (bad) {
        json_decref(e);
        return NULL;
    }
    return e;
}

json_t *srv_json_quality(const exp_params *p)
{
    if (exp_n_qualities(p) == 1)
        return json_integer(p->quality);
    json_t *a = json_array();
    for (int i = 0; a && i < exp_n_qualities(p); i++)
        if (json_array_append_new(a, json_integer(exp_quality_at(p, i)))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

int srv_json_read_quality(const json_t *v, exp_params *p, char *err, size_t errsz)
{
    int q[EXP_MAX_QUALITY], n = 0;
    const size_t len = json_is_array(v) ? json_array_size(v) : 1;
    if ((!json_is_integer(v) && !json_is_array(v)) || len < 1 || len > EXP_MAX_QUALITY)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "quality: give an integer in %d..%d or an array of 1..%d of them",
                        EXP_QUALITY_MIN, EXP_QUALITY_MAX, EXP_MAX_QUALITY);
    for (size_t i = 0; i < len; i++) {
        const json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        json_int_t x = json_is_integer(e) ? json_integer_value(e) : -1;
        if (x < EXP_QUALITY_MIN || x > EXP_QUALITY_MAX)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "quality: item %zu is not an integer in %d..%d",
                            i + 1, EXP_QUALITY_MIN, EXP_QUALITY_MAX);
        q[n++] = (int)x;
    }
    exp_params_set_qualities(p, q, n); /* that they are distinct, exp_params_check checks */
    return ADJ_OK;
}

int srv_json_transform_fields(json_t *e, const exp_params *p, int t)
{
    const exp_transform d = exp_transform_at(p, t);
    char display[96];
    int bad = 0;
    put(e, "display_name", json_string(exp_transform_label(p, t, display, sizeof display)), &bad);
    put(e, "kind", json_string(exp_transform_kind_name(d.kind)), &bad);
    if (d.eps > 0)
        put(e, "eps", json_integer(d.eps), &bad);
    if (d.quality > 0)
        put(e, "quality", json_integer(d.quality), &bad);
    return bad ? -1 : 0;
}

json_t *srv_json_params(const srv_query *q, unsigned mask)
{
    json_t *o = json_object();
    int bad = !o;
    for (int i = 0; i < EXP_PARAM_COUNT && !bad; i++) {
        if (!(mask & SRV_P(i)))
            continue;
        json_t *v = NULL;
        switch ((exp_param_id)i) {
        case EXP_PARAM_TOP_K: v = json_integer(q->top_k); break;
        case EXP_PARAM_RESIZE: v = json_string(q->resize_center ? "center" : "none"); break;
        case EXP_PARAM_EPS: v = eps_json(&q->params); break;
        case EXP_PARAM_QUALITY: v = srv_json_quality(&q->params); break;
        case EXP_PARAM_SEED: v = seed_json(q->seed); break;
        case EXP_PARAM_IMAGES: v = json_integer(q->images); break;
        case EXP_PARAM_STATUS: v = q->status[0] ? json_string(q->status) : json_null(); break;
        case EXP_PARAM_PURGE: v = json_integer(q->purge); break;
        case EXP_PARAM_DCT: v = json_boolean(q->dct); break;
        case EXP_PARAM_AXIS: v = json_string(q->axis[0] ? q->axis : "linear"); break;
        case EXP_PARAM_FIGURE_EPS: v = json_integer(q->figure_eps); break;
        case EXP_PARAM_ATTACK: /* the attack's rows, as it runs: below */
        case EXP_PARAM_STEPS:
        case EXP_PARAM_STEP_SIZE:
        case EXP_PARAM_ADAPTIVE:
        case EXP_PARAM_EOT_QUALITIES: continue;
        case EXP_PARAM_COUNT: break;
        }
        put(o, exp_param_defs[i].name, v, &bad);
    }
    if (!bad && (mask & SRV_P(EXP_PARAM_ATTACK)))
        bad |= srv_json_put_attack(o, &q->params) != 0;
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int srv_json_put_provenance(json_t *o, const srv_json_ctx *c, json_t *parameters)
{
    if (!parameters)
        return -1;
    json_t *p = json_pack("{s:s,s:s,s:o,s:o}", "advjpg_version", ADVJPG_VERSION, "model",
                          c->model_name ? c->model_name : "", "weights_sha256",
                          c->weights_sha256 && c->weights_sha256[0] ? json_string(c->weights_sha256)
                                                                     : json_null(),
                          "parameters", parameters);
    int bad = 0;
    put(o, "provenance", p, &bad);
    return bad ? -1 : 0;
}
