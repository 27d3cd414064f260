#include "srv_rows.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_json.h"
#include "status.h"

/* ---------------------------------------------------------------- CSV */

void srv_csv_field(ut_buf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        ut_buf_add(b, s, strlen(s));
        return;
    }
    ut_buf_add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            ut_buf_add(b, "\"\"", 2);
        else
            ut_buf_add(b, p, 1);
    }
    ut_buf_add(b, "\"", 1);
}

/* ---------------------------------------------------------------- writing */

/* rows.csv's order: the attack's own transforms (prob, label), their Adv's norms, then the
 * twin's transforms and their norms (appended columns: the first part is the columns of a
 * job without a twin). The field of transform t and of norms a (exp_result.norms' index). */
static int field_of_transform(const exp_params *p, int t)
{
    const int first = exp_twin_first(p);
    return t < first ? 3 + 2 * t : 3 + 2 * t + 3 * p->n_eps;
}

static int field_of_norms(const exp_params *p, int a)
{
    return a < p->n_eps ? 3 + 2 * exp_twin_first(p) + 3 * a : 3 + 2 * exp_n_transforms(p) + 3 * a;
}

/* Appends the header's columns of transforms t0..t1-1, then of their Adv's norms. */
static void header_part(ut_buf *b, const exp_params *p, int t0, int t1)
{
    char name[64];
    for (int t = t0; t < t1; t++) {
        exp_transform_name(p, t, name, sizeof name);
        ut_buf_printf(b, ",%s:prob,%s:label", name, name);
    }
    for (int t = t0; t < t1; t++) /* the perturbations' sizes, appended */
        if (exp_transform_kind_of(p, t) == EXP_T_ADV) {
            exp_transform_name(p, t, name, sizeof name);
            ut_buf_printf(b, ",%s:linf,%s:l2,%s:psnr", name, name, name);
        }
}

char *srv_rows_header(const exp_params *p)
{
    ut_buf b = {0};
    ut_buf_printf(&b, "file,truth,label_x");
    header_part(&b, p, 0, exp_twin_first(p));
    header_part(&b, p, exp_twin_first(p), exp_n_transforms(p));
    ut_buf_add(&b, "\n", 1);
    if (b.failed) {
        ut_buf_free(&b);
        return NULL;
    }
    return b.s;
}

static void row_head(ut_buf *b, const char *file, int truth)
{
    srv_csv_field(b, file);
    if (truth >= 0)
        ut_buf_printf(b, ",%d", truth);
    else
        ut_buf_add(b, ",", 1);
}

/* Appends the fields of transforms t0..t1-1 and of norms a0..a1-1 of r. */
static void row_part(ut_buf *b, const exp_result *r, int t0, int t1, int a0, int a1)
{
    for (int t = t0; t < t1; t++)
        ut_buf_printf(b, ",%.9g,%d", (double)exp_top_label_prob(r, t), exp_label(r, t));
    for (int a = a0; a < a1; a++) /* "inf": an unchanged image */
        ut_buf_printf(b, ",%d,%.9g,%.9g", r->norms[a].linf, r->norms[a].l2, r->norms[a].psnr);
}

void srv_rows_format(ut_buf *b, const char *file, int truth, const exp_result *r)
{
    const int first = r->twin_first ? r->twin_first : r->n_transforms;
    const int own_adv = r->twin_first ? r->n_adv / 2 : r->n_adv;
    row_head(b, file, truth);
    ut_buf_printf(b, ",%d", r->label_x);
    row_part(b, r, 0, first, 0, own_adv);
    row_part(b, r, first, r->n_transforms, own_adv, r->n_adv);
    ut_buf_add(b, "\n", 1);
}

void srv_rows_format_skipped(ut_buf *b, const char *file, int truth, const exp_params *p)
{
    row_head(b, file, truth);
    ut_buf_add(b, ",", 1);
    for (int t = 0; t < exp_n_transforms(p); t++)
        ut_buf_add(b, ",,", 2);
    for (int a = 0; a < exp_n_adv(p); a++)
        ut_buf_add(b, ",,,", 3);
    ut_buf_add(b, "\n", 1);
}

/* ---------------------------------------------------------------- parsing */

/* One CSV record's fields, unquoted, NUL-terminated in buf. */
typedef struct {
    char *buf;
    size_t cap;
    size_t *off; /* [maxf] */
    int nf, maxf;
} record;

/* Appends c to the record's buffer. 0 when out of memory. */
static int put_char(record *r, size_t *o, char c)
{
    if (*o + 1 >= r->cap) {
        size_t cap = r->cap * 2 + 64;
        char *nb = realloc(r->buf, cap);
        if (!nb)
            return 0;
        r->buf = nb;
        r->cap = cap;
    }
    r->buf[(*o)++] = c;
    return 1;
}

/*
 * Reads the record at text[pos..len). Returns 1 with *end just past its LF,
 * 0 when the text ends before the LF (incomplete), -1 when it is malformed
 * (a quote inside an unquoted field, text after a closing quote, a lone
 * CR), -2 when out of memory. At most maxf field offsets are kept; nf
 * counts all fields. A CR right before a LF is dropped (CRLF lines).
 */
static int read_record(const char *text, size_t len, size_t pos, record *r, size_t *end)
{
    size_t o = 0, i = pos;
    r->nf = 0;
    for (;;) {
        if (r->nf < r->maxf)
            r->off[r->nf] = o;
        r->nf++;
        if (i < len && text[i] == '"') { /* a quoted field */
            for (i++;; i++) {
                if (i >= len)
                    return 0;
                if (text[i] == '"') {
                    if (i + 1 < len && text[i + 1] == '"') {
                        i++;
                    } else {
                        i++;
                        break;
                    }
                }
                if (!put_char(r, &o, text[i]))
                    return -2;
            }
        } else {
            for (; i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r'; i++) {
                if (text[i] == '"')
                    return -1;
                if (!put_char(r, &o, text[i]))
                    return -2;
            }
        }
        if (i < len && text[i] == '\r') {
            if (i + 1 >= len)
                return 0;
            if (text[i + 1] != '\n')
                return -1;
            i++;
        }
        if (i >= len)
            return 0;
        if (text[i] != ',' && text[i] != '\n')
            return -1;
        if (!put_char(r, &o, '\0'))
            return -2;
        if (text[i] == '\n') {
            *end = i + 1;
            return 1;
        }
        i++; /* the comma */
    }
}

static const char *field(const record *r, int k)
{
    return r->buf + r->off[k];
}

/* A decimal integer in 0..hi-1, the whole field; -1 if not. */
static int parse_index(const char *s, int hi)
{
    if (!*s || strlen(s) > 9)
        return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (s[0] == '0' && s[1]) /* no leading zeros: one spelling per value */
        return -1;
    return v < hi ? (int)v : -1;
}

/* A probability 0..1, the whole field. */
static int parse_prob(const char *s, float *out)
{
    if (!*s)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0 || v > 1)
        return 0;
    *out = (float)v;
    return 1;
}

/* A perturbation's sizes from three fields: linf 0..255, l2 >= 0, psnr >= 0 or inf. */
static int parse_norms(const char *linf, const char *l2, const char *psnr, atk_norms *out)
{
    int li = parse_index(linf, 256);
    char *end;
    errno = 0;
    double v2 = *l2 ? strtod(l2, &end) : -1;
    if (li < 0 || errno || !*l2 || *end || !isfinite(v2) || v2 < 0)
        return 0;
    double vp = *psnr ? strtod(psnr, &end) : -1;
    if (errno || !*psnr || *end || isnan(vp) || vp < 0)
        return 0;
    *out = (atk_norms){.linf = li, .l2 = v2, .psnr = vp};
    return 1;
}

static int rows_grow(srv_rows *r)
{
    if (r->n < r->cap)
        return 1;
    size_t cap = r->cap ? r->cap * 2 : 256;
    size_t T = (size_t)r->n_transforms;
    char **file = realloc(r->file, cap * sizeof *file);
    if (!file)
        return 0;
    r->file = file;
    int *truth = realloc(r->truth, cap * sizeof *truth);
    if (!truth)
        return 0;
    r->truth = truth;
    int *lx = realloc(r->label_x, cap * sizeof *lx);
    if (!lx)
        return 0;
    r->label_x = lx;
    float *prob = realloc(r->prob, cap * T * sizeof *prob);
    if (!prob)
        return 0;
    r->prob = prob;
    int *label = realloc(r->label, cap * T * sizeof *label);
    if (!label)
        return 0;
    r->label = label;
    atk_norms *norms = realloc(r->norms, cap * (size_t)r->n_adv * sizeof *norms + 1);
    if (!norms)
        return 0;
    r->norms = norms;
    r->cap = cap;
    return 1;
}

/* Checks a record as row number idx (0-based); fills out's next entry. */
static int take_row(const record *rec, size_t idx, const srv_rows_check *c, srv_rows *out,
                    char *why, size_t whysz)
{
    const exp_params *p = c->params;
    const int T = exp_n_transforms(p), E = exp_n_adv(p), F = 3 + 2 * T + 3 * E;
    if (rec->nf != F)
        return adj_fail(why, whysz, ADJ_ERR_FORMAT, "row %zu: %d fields, want %d", idx + 1,
                        rec->nf, F);
    const char *file = field(rec, 0);
    if (!*file)
        return adj_fail(why, whysz, ADJ_ERR_FORMAT, "row %zu: no file name", idx + 1);
    if (c->files || c->truth) {
        if (idx >= c->n_expected)
            return adj_fail(why, whysz, ADJ_ERR_FORMAT, "row %zu: more rows than images (%zu)",
                            idx + 1, c->n_expected);
    }
    if (c->files && strcmp(file, c->files[idx]) != 0)
        return adj_fail(why, whysz, ADJ_ERR_FORMAT, "row %zu: file '%.100s', want '%.100s'",
                        idx + 1, file, c->files[idx]);
    int truth = -1;
    if (*field(rec, 1) && (truth = parse_index(field(rec, 1), c->classes)) < 0)
        return adj_fail(why, whysz, ADJ_ERR_FORMAT, "row %zu: truth '%.20s' is not a class index",
                        idx + 1, field(rec, 1));
    if (c->truth && truth != c->truth[idx])
        return adj_fail(why, whysz, ADJ_ERR_FORMAT, "row %zu: truth %d, want %d", idx + 1, truth,
                        c->truth[idx]);
    if (!rows_grow(out))
        return ADJ_ERR_NOMEM;
    size_t n = out->n;
    float *prob = out->prob + n * (size_t)T;
    int *label = out->label + n * (size_t)T;
    atk_norms *norms = out->norms + n * (size_t)E;
    int lx = -1;
    if (!*field(rec, 2)) { /* an image that could not be evaluated */
        for (int k = 3; k < F; k++)
            if (*field(rec, k))
                return adj_fail(why, whysz, ADJ_ERR_FORMAT,
                                "row %zu: empty label_x but field %d is not empty", idx + 1, k + 1);
        for (int t = 0; t < T; t++) {
            prob[t] = 0;
            label[t] = -1;
        }
        for (int e = 0; e < E; e++)
            norms[e] = (atk_norms){0};
    } else {
        if ((lx = parse_index(field(rec, 2), c->classes)) < 0)
            return adj_fail(why, whysz, ADJ_ERR_FORMAT, "row %zu: label_x '%.20s' is not a class index",
                            idx + 1, field(rec, 2));
        for (int t = 0; t < T; t++) {
            const int k = field_of_transform(p, t);
            if (!parse_prob(field(rec, k), &prob[t]))
                return adj_fail(why, whysz, ADJ_ERR_FORMAT,
                                "row %zu: field %d '%.30s' is not a probability", idx + 1, k + 1,
                                field(rec, k));
            if ((label[t] = parse_index(field(rec, k + 1), c->classes)) < 0)
                return adj_fail(why, whysz, ADJ_ERR_FORMAT,
                                "row %zu: field %d '%.20s' is not a class index", idx + 1, k + 2,
                                field(rec, k + 1));
        }
        if (label[0] != lx)
            return adj_fail(why, whysz, ADJ_ERR_FORMAT, "row %zu: x:label %d differs from label_x %d",
                            idx + 1, label[0], lx);
        for (int e = 0; e < E; e++) {
            const int k = field_of_norms(p, e);
            if (!parse_norms(field(rec, k), field(rec, k + 1), field(rec, k + 2), &norms[e]))
                return adj_fail(why, whysz, ADJ_ERR_FORMAT,
                                "row %zu: fields %d..%d are not a perturbation's linf, l2, psnr",
                                idx + 1, k + 1, k + 3);
        }
    }
    if (!(out->file[n] = strdup(file)))
        return ADJ_ERR_NOMEM;
    out->truth[n] = truth;
    out->label_x[n] = lx;
    out->n++;
    if (lx < 0)
        out->skipped++;
    return ADJ_OK;
}

int srv_rows_parse(const char *text, size_t len, const srv_rows_check *c, srv_rows *out,
                   size_t *valid_len, char *why, size_t whysz)
{
    srv_rows r;
    memset(&r, 0, sizeof r);
    r.n_transforms = exp_n_transforms(c->params);
    r.n_adv = exp_n_adv(c->params);
    if (why && whysz)
        why[0] = '\0';
    char *header = srv_rows_header(c->params);
    if (!header)
        return ADJ_ERR_NOMEM;
    size_t hl = strlen(header), valid = 0;
    int rc = ADJ_OK;
    record rec = {0};
    rec.maxf = 3 + 2 * r.n_transforms + 3 * r.n_adv;
    rec.off = calloc((size_t)rec.maxf, sizeof *rec.off);
    if (!rec.off) {
        free(header);
        return ADJ_ERR_NOMEM;
    }
    if (len < hl || memcmp(text, header, hl) != 0) {
        if (len == 0)
            adj_fail(why, whysz, ADJ_ERR_FORMAT, "empty");
        else if (len < hl && memcmp(text, header, len) == 0)
            adj_fail(why, whysz, ADJ_ERR_FORMAT, "the header line is incomplete");
        else
            adj_fail(why, whysz, ADJ_ERR_FORMAT, "the header line is not the job's");
        goto out;
    }
    valid = hl;
    for (size_t pos = hl; pos < len && r.n < c->max_rows;) {
        size_t end = 0;
        int got = read_record(text, len, pos, &rec, &end);
        if (got == -2) {
            rc = ADJ_ERR_NOMEM;
            break;
        }
        if (got == 0) {
            adj_fail(why, whysz, ADJ_ERR_FORMAT, "row %zu: incomplete (no line feed at its end)",
                     r.n + 1);
            break;
        }
        if (got < 0) {
            adj_fail(why, whysz, ADJ_ERR_FORMAT, "row %zu: malformed quoting", r.n + 1);
            break;
        }
        int trc = take_row(&rec, r.n, c, &r, why, whysz);
        if (trc == ADJ_ERR_NOMEM) {
            rc = trc;
            break;
        }
        if (trc)
            break;
        pos = valid = end;
    }
out:
    free(header);
    free(rec.buf);
    free(rec.off);
    if (rc) {
        srv_rows_free(&r);
        return rc;
    }
    *out = r;
    *valid_len = valid;
    return ADJ_OK;
}

void srv_rows_free(srv_rows *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n && r->file; i++)
        free(r->file[i]);
    free(r->file);
    free(r->truth);
    free(r->label_x);
    free(r->prob);
    free(r->label);
    free(r->norms);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- the table */

int srv_rows_box(const srv_rows *r, int t, stats_box *out)
{
    size_t m = r->n - r->skipped;
    if (m == 0)
        return ADJ_ERR_ARG;
    double *v = malloc(m * sizeof *v);
    if (!v)
        return ADJ_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->label_x[i] >= 0)
            v[k++] = r->prob[i * (size_t)r->n_transforms + (size_t)t];
    stats_sort(v, k);
    int rc = stats_box_sorted(v, k, out);
    free(v);
    return rc;
}

static void put(json_t *o, const char *key, json_t *v, int *bad)
{
    if (!v || json_object_set_new(o, key, v))
        *bad = 1;
}

static json_t *box_json(const stats_box *b, int have, int *bad)
{
    json_t *o = json_object();
    if (!o) {
        *bad = 1;
        return NULL;
    }
    const struct {
        const char *k;
        double v;
    } f[] = {{"min", b->min}, {"q1", b->q1}, {"median", b->median}, {"q3", b->q3},
             {"max", b->max}, {"mean", b->mean}, {"whisker_low", b->whisker_low},
             {"whisker_high", b->whisker_high}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        put(o, f[i].k, have ? json_real(f[i].v) : json_null(), bad);
    put(o, "outliers", json_integer(have ? (json_int_t)(b->n_low + b->n_high) : 0), bad);
    put(o, "outliers_low", json_integer(have ? (json_int_t)b->n_low : 0), bad);
    put(o, "outliers_high", json_integer(have ? (json_int_t)b->n_high : 0), bad);
    return o;
}

/* The sizes of Adv a's perturbations (exp_transform.ai) over the evaluated rows: the largest linf, the mean l2
 * and the mean psnr of the images that changed (null without rows). */
static int put_norms_summary(json_t *e, const srv_rows *r, int adv_index)
{
    const int E = r->n_adv;
    atk_norms s = {0};
    size_t m = 0, changed = 0;
    double psnr = 0;
    for (size_t i = 0; i < r->n; i++) {
        const atk_norms *n = &r->norms[i * (size_t)E + (size_t)adv_index];
        if (r->label_x[i] < 0)
            continue;
        m++;
        s.linf = n->linf > s.linf ? n->linf : s.linf;
        s.l2 += n->l2;
        if (isfinite(n->psnr)) {
            psnr += n->psnr;
            changed++;
        }
    }
    s.l2 = m ? s.l2 / (double)m : NAN;
    s.psnr = changed ? psnr / (double)changed : INFINITY;
    if (!m)
        return json_object_set_new(e, "linf", json_null()) ||
               json_object_set_new(e, "l2", json_null()) ||
               json_object_set_new(e, "psnr", json_null());
    return srv_json_put_norms(e, &s);
}

json_t *srv_rows_table(const srv_rows *r, const exp_params *p, int has_truth)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    const int T = exp_n_transforms(p);
    int bad = 0;
    for (int t = 0; t < T && !bad; t++) {
        json_t *e = json_object();
        if (!e || json_array_append_new(arr, e)) {
            bad = 1;
            break;
        }
        char name[64];
        put(e, "transform", json_string(exp_transform_name(p, t, name, sizeof name)), &bad);
        bad |= srv_json_transform_fields(e, p, t) != 0;
        size_t labelled = 0, correct = 0;
        for (size_t i = 0; i < r->n; i++)
            if (r->label_x[i] >= 0 && r->truth[i] >= 0) {
                labelled++;
                correct += r->label[i * (size_t)T + (size_t)t] == r->truth[i];
            }
        put(e, "top1",
            has_truth && labelled ? json_real((double)correct / (double)labelled) : json_null(),
            &bad);
        stats_box b;
        int rc = srv_rows_box(r, t, &b);
        if (rc == ADJ_ERR_NOMEM) {
            bad = 1;
            break;
        }
        put(e, "mean_top_label_prob", rc ? json_null() : json_real(b.mean), &bad);
        put(e, "box", box_json(&b, rc == ADJ_OK, &bad), &bad);
        const exp_params tp = exp_transform_params(p, t);
        bad |= srv_json_put_attack(e, &tp) != 0;
        if (exp_transform_eps(p, t) > 0)
            bad |= put_norms_summary(e, r, exp_transform_at(p, t).ai) != 0;
    }
    if (bad) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* ---------------------------------------------------------------- intervals and tests */

/* [lo, hi] as JSON. */
static json_t *pair_json(const double v[2])
{
    return json_pack("[f,f]", v[0], v[1]);
}

/* Transform t's values over the evaluated rows (labelled ones only, as 0/1
 * correctness, when top1) into v; returns how many. */
static size_t column(const srv_rows *r, int t, int top1, double *v)
{
    size_t k = 0;
    const size_t T = (size_t)r->n_transforms;
    for (size_t i = 0; i < r->n; i++) {
        if (r->label_x[i] < 0 || (top1 && r->truth[i] < 0))
            continue;
        v[k++] = top1 ? (double)(r->label[i * T + (size_t)t] == r->truth[i])
                      : (double)r->prob[i * T + (size_t)t];
    }
    return k;
}

/* The intervals of every transform's top-1 (top1) or mean top-label probability, in one
 * pass of the bootstrap over the rows that count (labelled ones for top-1) into table. */
static int put_intervals(json_t *table, const srv_rows *r, int top1, uint64_t seed)
{
    const size_t T = (size_t)r->n_transforms;
    double *v = malloc((r->n ? r->n : 1) * T * sizeof *v), (*ci)[2] = malloc(T * sizeof *ci);
    double *col = malloc((r->n ? r->n : 1) * sizeof *col);
    int rc = v && ci && col ? ADJ_OK : ADJ_ERR_NOMEM, bad = 0;
    size_t m = 0;
    for (size_t t = 0; !rc && t < T; t++) {
        m = column(r, (int)t, top1, col);
        for (size_t i = 0; i < m; i++)
            v[i * T + t] = col[i];
    }
    if (!rc)
        rc = m ? stats_bootstrap_means(v, m, T, SRV_ROWS_RESAMPLES, seed, 0.95, ci) : ADJ_ERR_ARG;
    for (size_t t = 0; rc != ADJ_ERR_NOMEM && t < T; t++)
        put(json_array_get(table, t), top1 ? "top1_ci" : "mean_top_label_prob_ci",
            rc ? json_null() : pair_json(ci[t]), &bad);
    free(v);
    free(ci);
    free(col);
    return rc == ADJ_ERR_NOMEM || bad ? ADJ_ERR_NOMEM : ADJ_OK;
}

int srv_rows_add_intervals(json_t *table, const srv_rows *r, int has_truth, uint64_t seed)
{
    int rc = put_intervals(table, r, 0, seed);
    if (!rc && has_truth)
        rc = put_intervals(table, r, 1, seed);
    else if (!rc) /* without labels: no top-1, no interval */
        for (int t = 0; t < r->n_transforms && !rc; t++)
            if (json_object_set_new(json_array_get(table, (size_t)t), "top1_ci", json_null()))
                rc = ADJ_ERR_NOMEM;
    return rc;
}

/* The tests of one pair (a, b) of transforms. NULL when out of memory. */
static json_t *pair_test(const srv_rows *r, const exp_params *p, const char *pair, int a, int b,
                         int has_truth, double *va, double *vb)
{
    char na[64], nb[64];
    json_t *o = json_pack("{s:s,s:s,s:s}", "pair", pair, "a", exp_transform_name(p, a, na, sizeof na),
                          "b", exp_transform_name(p, b, nb, sizeof nb));
    if (!o)
        return NULL;
    int bad = 0;
    const exp_transform d = exp_transform_at(p, b);
    if (d.eps)
        put(o, "eps", json_integer(d.eps), &bad);
    put(o, "quality", json_integer(d.quality), &bad);
    const exp_params bp = exp_transform_params(p, b);
    char word[16];
    put(o, "adaptive",
        json_string(exp_param_choice(EXP_PARAM_ADAPTIVE, (int)bp.attack.adaptive, word, sizeof word)),
        &bad);
    long rw = 0, wr = 0, labelled = 0;
    const size_t T = (size_t)r->n_transforms;
    for (size_t i = 0; i < r->n; i++)
        if (r->label_x[i] >= 0 && r->truth[i] >= 0) {
            const int ra = r->label[i * T + (size_t)a] == r->truth[i];
            const int rb = r->label[i * T + (size_t)b] == r->truth[i];
            labelled++;
            rw += ra && !rb;
            wr += !ra && rb;
        }
    const size_t m = column(r, a, 0, va);
    column(r, b, 0, vb);
    put(o, "n", json_integer((json_int_t)m), &bad);
    const int lab = has_truth && labelled;
    put(o, "labelled", json_integer(lab ? labelled : 0), &bad);
    put(o, "right_to_wrong", lab ? json_integer(rw) : json_null(), &bad);
    put(o, "wrong_to_right", lab ? json_integer(wr) : json_null(), &bad);
    put(o, "mcnemar_p", lab ? json_real(stats_mcnemar_exact(rw, wr)) : json_null(), &bad);
    stats_wilcoxon w;
    int rc = m ? stats_wilcoxon_test(va, vb, m, &w) : ADJ_ERR_ARG;
    if (rc == ADJ_ERR_NOMEM)
        bad = 1;
    put(o, "wilcoxon",
        rc ? json_null()
           : json_pack("{s:I,s:f,s:f,s:f,s:f,s:f}", "n", (json_int_t)w.n, "w", w.w, "w_plus",
                       w.w_plus, "w_minus", w.w_minus, "z", w.z, "p", w.p),
        &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *srv_rows_tests(const srv_rows *r, const exp_params *p, int has_truth)
{
    json_t *arr = json_array();
    double *va = malloc((r->n ? r->n : 1) * sizeof *va), *vb = malloc((r->n ? r->n : 1) * sizeof *vb);
    int bad = !arr || !va || !vb;
    const int nq = exp_n_qualities(p);
    for (int q = 0; q < nq && !bad; q++)
        bad |= json_array_append_new(arr, pair_test(r, p, "x_jpg", 0,
                                                    exp_transform_index(p, EXP_T_JPG_X, 0, q),
                                                    has_truth, va, vb)) != 0;
    for (int twin = 0; twin <= exp_has_twin(p) && !bad; twin++)
        for (int e = 0; e < p->n_eps && !bad; e++)
            for (int q = 0; q < nq && !bad; q++) {
                const int adv = exp_transform_index_twin(p, twin, EXP_T_ADV, e, q),
                          jpg = exp_transform_index_twin(p, twin, EXP_T_JPG_ADV, e, q),
                          noise = exp_transform_index_twin(p, twin, EXP_T_NOISE_ADV, e, q);
                bad |= json_array_append_new(arr, pair_test(r, p, "adv_jpg", adv, jpg, has_truth,
                                                            va, vb)) != 0;
                bad |= json_array_append_new(arr, pair_test(r, p, "jpg_noise", jpg, noise,
                                                            has_truth, va, vb)) != 0;
            }
    for (int e = 0; e < p->n_eps && exp_has_twin(p) && !bad; e++)
        for (int q = 0; q < nq && !bad; q++) /* what the attacker's knowing of JPEG changes */
            bad |= json_array_append_new(
                       arr, pair_test(r, p, "jpg_adaptive",
                                      exp_transform_index_twin(p, 1, EXP_T_JPG_ADV, e, q),
                                      exp_transform_index(p, EXP_T_JPG_ADV, e, q), has_truth, va,
                                      vb)) != 0;
    free(va);
    free(vb);
    if (bad) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}
