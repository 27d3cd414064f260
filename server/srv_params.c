#include "srv_params.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

_Static_assert(sizeof ((exp_attack *)0)->eot_qualities / sizeof(int) == EXP_MAX_EPS,
               "an INT_LIST parameter holds EXP_MAX_EPS values");

int srv_parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return 0;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

int srv_parse_seed(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return 0;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return 0;
    *out = v;
    return 1;
}

int srv_parse_int_list(const exp_param_def *d, const char *s, int max, int *out, int *n_out,
                       char *err, size_t errsz)
{
    int n = 0, v_[EXP_MAX_EPS > EXP_MAX_QUALITY ? EXP_MAX_EPS : EXP_MAX_QUALITY];
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char item[32];
        long v;
        if (len >= sizeof item)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: '%.*s' is not an integer in %ld..%ld",
                            d->name, (int)(len > 40 ? 40 : len), s, d->lo, d->hi);
        memcpy(item, s, len);
        item[len] = '\0';
        while (len && isspace((unsigned char)item[len - 1]))
            item[--len] = '\0';
        const char *it = item;
        while (isspace((unsigned char)*it))
            it++;
        if (!srv_parse_long(it, d->lo, d->hi, &v))
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: '%s' is not an integer in %ld..%ld",
                            d->name, it, d->lo, d->hi);
        if (n == max || n == (int)(sizeof v_ / sizeof v_[0]))
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: more than %d values", d->name, max);
        v_[n++] = (int)v;
        if (!comma)
            break;
        s = comma + 1;
    }
    memcpy(out, v_, (size_t)n * sizeof *out);
    *n_out = n;
    return ADJ_OK;
}

int srv_parse_eps(const char *s, exp_params *out, char *err, size_t errsz)
{
    return srv_parse_int_list(&exp_param_defs[EXP_PARAM_EPS], s, EXP_MAX_EPS, out->eps,
                              &out->n_eps, err, errsz);
}

/* A list of qualities into p (that they are distinct, exp_params_check checks). */
static int parse_qualities(const char *s, exp_params *p, char *err, size_t errsz)
{
    int q[EXP_MAX_QUALITY], n = 0;
    int rc = srv_parse_int_list(&exp_param_defs[EXP_PARAM_QUALITY], s, EXP_MAX_QUALITY, q, &n,
                                err, errsz);
    if (!rc)
        exp_params_set_qualities(p, q, n);
    return rc;
}

/* Stores v (read by row d; a choice's index) into the target field of parameter id. */
static void store(srv_query *q, exp_param_id id, long v, uint64_t u, const char *word)
{
    exp_attack *a = &q->params.attack;
    switch (id) {
    case EXP_PARAM_TOP_K: q->top_k = (int)v; break;
    case EXP_PARAM_RESIZE: q->resize_center = strcmp(word, "center") == 0; break;
    case EXP_PARAM_SEED: q->seed = u; break;
    case EXP_PARAM_IMAGES: q->images = (int)v; break;
    case EXP_PARAM_STATUS: snprintf(q->status, sizeof q->status, "%s", word); break;
    case EXP_PARAM_PURGE: q->purge = (int)v; break;
    case EXP_PARAM_ATTACK: a->kind = (exp_attack_kind)v; break;
    case EXP_PARAM_STEPS: a->steps = (int)v; break;
    case EXP_PARAM_STEP_SIZE: a->step_size = (int)v; break;
    case EXP_PARAM_ADAPTIVE: a->adaptive = (exp_adaptive)v; break;
    case EXP_PARAM_DCT: q->dct = (int)v; break;
    case EXP_PARAM_AXIS: snprintf(q->axis, sizeof q->axis, "%s", word); break;
    case EXP_PARAM_FIGURE_EPS: q->figure_eps = (int)v; break;
    case EXP_PARAM_EPS: /* stored by srv_parse_eps */
    case EXP_PARAM_QUALITY: /* by parse_qualities */
    case EXP_PARAM_EOT_QUALITIES: /* by srv_parse_int_list */
    case EXP_PARAM_COUNT: break;
    }
}

int srv_params_set(srv_query *q, exp_param_id id, const char *val, int classes, char *err,
                   size_t errsz)
{
    if ((unsigned)id >= EXP_PARAM_COUNT)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "no such parameter");
    const exp_param_def *d = &exp_param_defs[id];
    long hi = d->hi ? d->hi : classes, v = 0;
    uint64_t u = 0;
    char list[96];
    switch (d->kind) {
    case EXP_PK_INT_LIST:
        if (id == EXP_PARAM_QUALITY)
            return parse_qualities(val, &q->params, err, errsz);
        if (id == EXP_PARAM_EPS)
            return srv_parse_eps(val, &q->params, err, errsz);
        return srv_parse_int_list(d, val, ATK_MAX_QUALITIES, q->params.attack.eot_qualities,
                                  &q->params.attack.n_eot, err, errsz);
    case EXP_PK_U64:
        if (!srv_parse_seed(val, &u))
            return adj_fail(err, errsz, ADJ_ERR_ARG,
                            "%s: '%s' is not an integer in 0..18446744073709551615", d->name, val);
        break;
    case EXP_PK_CHOICE:
        if ((v = exp_param_choice_index(id, val)) < 0)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: '%s' is not one of %s", d->name, val,
                            exp_param_choices_text(id, list, sizeof list));
        break;
    case EXP_PK_INT:
        if (!srv_parse_long(val, d->lo, hi, &v)) {
            if (d->lo == 0 && hi == 1)
                return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: '%s' is not 0 or 1", d->name, val);
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: '%s' is not an integer in %ld..%ld",
                            d->name, val, d->lo, hi);
        }
        break;
    }
    store(q, id, v, u, val);
    return ADJ_OK;
}

void srv_params_defaults(srv_query *q, int classes)
{
    char err[128];
    memset(q, 0, sizeof *q);
    for (int i = 0; i < EXP_PARAM_COUNT; i++) {
        const exp_param_def *d = &exp_param_defs[i];
        if (d->def && !d->implicit && srv_params_set(q, (exp_param_id)i, d->def, classes, err, sizeof err) &&
            d->kind == EXP_PK_INT && !d->hi)
            store(q, (exp_param_id)i, classes, 0, d->def); /* above a small model's classes */
    }
}

int srv_params_lookup(const char *name, unsigned mask)
{
    for (int i = 0; i < EXP_PARAM_COUNT; i++)
        if ((mask & SRV_P(i)) && strcmp(exp_param_defs[i].name, name) == 0)
            return i;
    return -1;
}

const char *srv_params_names(unsigned mask, char *buf, size_t n)
{
    size_t o = 0;
    snprintf(buf, n, "none");
    for (int i = 0; i < EXP_PARAM_COUNT && o < n; i++)
        if (mask & SRV_P(i))
            o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? ", " : "", exp_param_defs[i].name);
    return buf;
}
