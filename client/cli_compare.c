/*
 * cli_compare.c - advjpg compare A B: two jobs' tables side by side (top-1
 * and mean top-label probability with their 95% intervals, rows matched by
 * transform name) and, when both jobs evaluated the same images, the paired
 * tests between the same rows of the two jobs (McNemar's exact test on top-1
 * with the counts of images right on A and wrong on B and back, Wilcoxon's
 * signed-rank test of B - A on the top-label probabilities; common/stats.h),
 * images paired by file name from the two jobs' rows.csv.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_cmd.h"
#include "stats.h"

/* ---------------------------------------------------------------- rows.csv */

/* A job's rows: the header's columns and the evaluated images' fields. */
typedef struct {
    char **cell;  /* [n_rows][n_cols] NUL-terminated fields, owned */
    size_t n_rows;
    int n_cols;
    char **head;  /* [n_cols] */
} csv_rows;

static void csv_free(csv_rows *c)
{
    for (size_t i = 0; c->cell && i < c->n_rows * (size_t)c->n_cols; i++)
        free(c->cell[i]);
    for (int k = 0; c->head && k < c->n_cols; k++)
        free(c->head[k]);
    free(c->cell);
    free(c->head);
    memset(c, 0, sizeof *c);
}

/* The next RFC 4180 field of s at *pos into a new string; *eol set at a line's end. */
static char *csv_field(const char *s, size_t len, size_t *pos, int *eol)
{
    size_t i = *pos, o = 0;
    char *f = malloc(len - i + 1);
    if (!f)
        return NULL;
    int quoted = i < len && s[i] == '"';
    for (i += (size_t)quoted; i < len; i++) {
        if (quoted && s[i] == '"') {
            if (i + 1 < len && s[i + 1] == '"') {
                f[o++] = s[++i];
                continue;
            }
            quoted = 0;
            continue;
        }
        if (!quoted && (s[i] == ',' || s[i] == '\n'))
            break;
        if (!quoted && s[i] == '\r')
            continue;
        f[o++] = s[i];
    }
    f[o] = '\0';
    *eol = i >= len || s[i] == '\n';
    *pos = i < len ? i + 1 : len;
    return f;
}

/* Parses rows.csv text (the header, then one line per image). 0 or -1 (malformed, OOM). */
static int csv_parse(const char *s, size_t len, csv_rows *out)
{
    memset(out, 0, sizeof *out);
    size_t pos = 0, cap = 0, n = 0;
    int eol = 0;
    while (!eol && pos < len) {
        char **h = realloc(out->head, (size_t)(out->n_cols + 1) * sizeof *h);
        if (!h || !(out->head = h, h[out->n_cols] = csv_field(s, len, &pos, &eol)))
            return -1;
        out->n_cols++;
    }
    while (pos < len) {
        if (n + (size_t)out->n_cols > cap) {
            cap = cap * 2 + (size_t)out->n_cols * 64;
            char **c = realloc(out->cell, cap * sizeof *c);
            if (!c)
                return -1;
            out->cell = c;
        }
        for (int k = 0; k < out->n_cols; k++) {
            if (eol && k > 0)
                return -1; /* a short line */
            if (!(out->cell[n + (size_t)k] = csv_field(s, len, &pos, &eol)))
                return -1;
            out->n_rows += k == 0;
        }
        n += (size_t)out->n_cols;
        if (!eol)
            return -1;
    }
    return 0;
}

static const char *cell(const csv_rows *c, size_t i, int k)
{
    return c->cell[i * (size_t)c->n_cols + (size_t)k];
}

/* The column named name, -1 if none. */
static int column(const csv_rows *c, const char *name)
{
    for (int k = 0; k < c->n_cols; k++)
        if (!strcmp(c->head[k], name))
            return k;
    return -1;
}

/* ---------------------------------------------------------------- one job */

typedef struct {
    const char *id;
    json_t *result;
    csv_rows rows;
} job;

static int fetch(cli_ctx *ctx, job *j)
{
    char path[512];
    char *e = cli_escape(j->id);
    if (!e)
        return cli_fail("out of memory");
    snprintf(path, sizeof path, "/jobs/%s/result", e);
    cli_request q = {.method = "GET", .path = path};
    int rc = cli_call_json(ctx, &q, &j->result);
    snprintf(path, sizeof path, "/jobs/%s/rows", e);
    free(e);
    if (rc)
        return rc;
    cli_request qr = {.method = "GET", .path = path, .accept = "text/csv"};
    cli_response r;
    if ((rc = cli_call(ctx, &qr, &r)))
        return rc;
    if (csv_parse(r.body, r.len, &j->rows))
        rc = cli_fail("the rows of job %s are not the CSV advjpgd writes", j->id);
    cli_response_free(&r);
    return rc;
}

/* "0.812 [0.700, 0.900]" of a table row's key and key_ci, "-" without. */
static const char *cell_ci(const json_t *row, const char *key, char *buf, size_t n)
{
    char k_ci[64];
    snprintf(k_ci, sizeof k_ci, "%s_ci", key);
    const json_t *v = json_object_get(row, key), *ci = json_object_get(row, k_ci);
    if (!json_is_number(v))
        snprintf(buf, n, "-");
    else if (json_array_size(ci) == 2)
        snprintf(buf, n, "%.3f [%.3f, %.3f]", json_number_value(v),
                 json_number_value(json_array_get(ci, 0)), json_number_value(json_array_get(ci, 1)));
    else
        snprintf(buf, n, "%.3f", json_number_value(v));
    return buf;
}

static void describe(const char *tag, const job *j)
{
    const json_t *r = j->result, *p = json_object_get(r, "provenance");
    const char *sha = json_string_value(json_object_get(p, "weights_sha256"));
    char *eps = json_dumps(json_object_get(r, "eps"), JSON_COMPACT | JSON_ENCODE_ANY);
    char *q = json_dumps(json_object_get(r, "quality"), JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s = job %s: %s, model %s (weights %.12s), eps %s, quality %s, %lld images\n", tag,
           j->id, json_string_value(json_object_get(r, "dataset")) ?: "uploaded images",
           json_string_value(json_object_get(r, "model")) ?: "?", sha ? sha : "unknown",
           eps ? eps : "?", q ? q : "?", (long long)json_integer_value(json_object_get(r, "n")));
    free(eps);
    free(q);
}

static const char *name_of(const json_t *row)
{
    return json_string_value(json_object_get(row, "transform")) ?: "?";
}

/* Whether two table rows are the same transform: by name (by_name), or by kind, eps and
 * quality (so that a single-quality job's JPG(x) meets a grid's JPG75(x)). */
static int same_transform(const json_t *x, const json_t *y, int by_name)
{
    static const char *const keys[] = {"eps", "quality"};
    const char *kx = json_string_value(json_object_get(x, "kind")),
               *ky = json_string_value(json_object_get(y, "kind"));
    if (by_name || !kx || !ky)
        return by_name && !strcmp(name_of(x), name_of(y));
    for (int k = 0; k < 2; k++)
        if (json_integer_value(json_object_get(x, keys[k])) !=
            json_integer_value(json_object_get(y, keys[k])))
            return 0;
    return !strcmp(kx, ky);
}

/* The row of table that is row's transform, by name first (NULL when none). */
static const json_t *row_match(const json_t *table, const json_t *row)
{
    size_t i;
    json_t *r;
    for (int by_name = 1; by_name >= 0; by_name--)
        json_array_foreach(table, i, r)
            if (same_transform(r, row, by_name))
                return r;
    return NULL;
}

static void side_by_side(const job *a, const job *b)
{
    const json_t *ta = json_object_get(a->result, "table"), *tb = json_object_get(b->result, "table");
    printf("\n%-24s %-24s %-24s %-24s %-24s\n", "transform", "top-1 A [95% CI]", "top-1 B",
           "mean p A [95% CI]", "mean p B");
    for (int pass = 0; pass < 2; pass++) { /* A's rows, then B's rows that A has not */
        const json_t *t = pass ? tb : ta, *other = pass ? ta : tb;
        size_t i;
        json_t *row;
        json_array_foreach(t, i, row) {
            const json_t *o = row_match(other, row);
            if (pass && o)
                continue;
            const json_t *ra = pass ? NULL : row, *rb = pass ? row : o;
            char c[4][64], name[80];
            if (o && strcmp(name_of(row), name_of(o)))
                snprintf(name, sizeof name, "%s = %s", name_of(row), name_of(o));
            else
                snprintf(name, sizeof name, "%s", name_of(row));
            printf("%-24s %-24s %-24s %-24s %-24s\n", name, cell_ci(ra, "top1", c[0], 64),
                   cell_ci(rb, "top1", c[1], 64), cell_ci(ra, "mean_top_label_prob", c[2], 64),
                   cell_ci(rb, "mean_top_label_prob", c[3], 64));
        }
    }
}

/* ---------------------------------------------------------------- the paired tests */

static const csv_rows *sort_rows;
static int by_file(const void *x, const void *y)
{
    return strcmp(cell(sort_rows, *(const size_t *)x, 0), cell(sort_rows, *(const size_t *)y, 0));
}

/* The evaluated rows of c (label_x not empty), sorted by file: indices into *idx (new). */
static size_t evaluated_sorted(const csv_rows *c, size_t **idx)
{
    size_t k = 0;
    *idx = malloc((c->n_rows ? c->n_rows : 1) * sizeof **idx);
    for (size_t i = 0; *idx && i < c->n_rows; i++)
        if (*cell(c, i, 2))
            (*idx)[k++] = i;
    sort_rows = c;
    if (*idx)
        qsort(*idx, k, sizeof **idx, by_file);
    return k;
}

/* Why the two sets of images differ ("" when they are the same, files and labels). */
static void same_images(const job *a, const size_t *ia, size_t na, const job *b, const size_t *ib,
                        size_t nb, char *why, size_t n)
{
    why[0] = '\0';
    size_t i = 0, k = 0, only_a = 0, only_b = 0;
    const char *ex = NULL;
    while (i < na || k < nb) {
        int d = i == na ? 1 : k == nb ? -1 : strcmp(cell(&a->rows, ia[i], 0), cell(&b->rows, ib[k], 0));
        if (d == 0 && strcmp(cell(&a->rows, ia[i], 1), cell(&b->rows, ib[k], 1)) && !why[0])
            snprintf(why, n, "image '%.100s' has label '%s' in A and '%s' in B",
                     cell(&a->rows, ia[i], 0), cell(&a->rows, ia[i], 1), cell(&b->rows, ib[k], 1));
        if (d < 0 && !ex)
            ex = cell(&a->rows, ia[i], 0);
        only_a += d < 0;
        only_b += d > 0;
        i += d <= 0;
        k += d >= 0;
    }
    if (only_a || only_b)
        snprintf(why, n, "the jobs evaluated different images: %zu only in A%s%.100s%s, %zu only in B",
                 only_a, ex ? " (such as '" : "", ex ? ex : "", ex ? "')" : "", only_b);
}

/* The tests of transform name_a's column in A against name_b's in B. */
static int pair_row(const job *a, const size_t *ia, const job *b, const size_t *ib, size_t n,
                    const char *name_a, const char *name_b, double *va, double *vb)
{
    char col[80];
    snprintf(col, sizeof col, "%s:prob", name_a);
    const int pa = column(&a->rows, col);
    snprintf(col, sizeof col, "%s:label", name_a);
    const int la = column(&a->rows, col);
    snprintf(col, sizeof col, "%s:prob", name_b);
    const int pb = column(&b->rows, col);
    snprintf(col, sizeof col, "%s:label", name_b);
    const int lb = column(&b->rows, col);
    if (pa < 0 || pb < 0 || la < 0 || lb < 0)
        return 0;
    long rw = 0, wr = 0, labelled = 0;
    for (size_t i = 0; i < n; i++) {
        va[i] = strtod(cell(&a->rows, ia[i], pa), NULL);
        vb[i] = strtod(cell(&b->rows, ib[i], pb), NULL);
        const char *truth = cell(&a->rows, ia[i], 1);
        if (!*truth)
            continue;
        const int ra = !strcmp(cell(&a->rows, ia[i], la), truth);
        const int rb = !strcmp(cell(&b->rows, ib[i], lb), truth);
        labelled++;
        rw += ra && !rb;
        wr += !ra && rb;
    }
    stats_wilcoxon w;
    if (stats_wilcoxon_test(va, vb, n, &w))
        return cli_fail("out of memory");
    if (labelled)
        printf("%-24s %14ld %14ld %12.4g %12.4g %10.4g\n", name_a, rw, wr,
               stats_mcnemar_exact(rw, wr), w.p, w.z);
    else
        printf("%-24s %14s %14s %12s %12.4g %10.4g\n", name_a, "-", "-", "-", w.p, w.z);
    return 0;
}

static int paired(const job *a, const job *b)
{
    size_t *ia = NULL, *ib = NULL;
    const size_t na = evaluated_sorted(&a->rows, &ia), nb = evaluated_sorted(&b->rows, &ib);
    double *va = malloc((na ? na : 1) * sizeof *va), *vb = malloc((na ? na : 1) * sizeof *vb);
    int rc = 0;
    char why[400];
    if (!ia || !ib || !va || !vb)
        rc = cli_fail("out of memory");
    else if (same_images(a, ia, na, b, ib, nb, why, sizeof why), why[0])
        rc = cli_fail("no paired tests: %s (they pair the same images of both jobs)", why);
    else if (na == 0)
        rc = cli_fail("no paired tests: no evaluated images");
    if (!rc) {
        printf("\npaired tests on the %zu images of both jobs, each row of A against the same "
               "row of B:\n%-24s %14s %14s %12s %12s %10s\n", na, "transform", "right->wrong",
               "wrong->right", "McNemar p", "Wilcoxon p", "z (B - A)");
        const json_t *ta = json_object_get(a->result, "table");
        size_t i;
        json_t *row;
        json_array_foreach(ta, i, row) {
            const json_t *o = row_match(json_object_get(b->result, "table"), row);
            if (!rc && o)
                rc = pair_row(a, ia, b, ib, na, name_of(row), name_of(o), va, vb);
        }
    }
    free(ia);
    free(ib);
    free(va);
    free(vb);
    return rc;
}

static int run_compare(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {CLI_GLOBAL_OPTIONS, {NULL, 0, NULL, 0}};
    int c, rc;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
        if ((rc = cli_common_option(ctx, c, argv)) >= 0)
            return rc;
    if (argc - optind != 2)
        return cli_usage(ctx, "two job ids: advjpg compare A B");
    job j[2] = {{.id = argv[optind]}, {.id = argv[optind + 1]}};
    rc = fetch(ctx, &j[0]);
    if (!rc)
        rc = fetch(ctx, &j[1]);
    if (!rc) {
        describe("A", &j[0]);
        describe("B", &j[1]);
        side_by_side(&j[0], &j[1]);
        fflush(stdout);
        rc = paired(&j[0], &j[1]);
    }
    if (fflush(stdout) && !rc)
        rc = cli_fail("cannot write the output: %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
        json_decref(j[i].result);
        csv_free(&j[i].rows);
    }
    return rc;
}

const cli_command cli_cmd_compare = {
    "compare", run_compare, "two jobs side by side, with paired tests on the same images",
    "usage: advjpg compare A B\n"
    "\n"
    "Prints jobs A and B (dataset, model and weights, eps, qualities), their\n"
    "tables side by side (top-1 and mean top-label probability with the 95%\n"
    "bootstrap intervals, rows matched by transform name), and, when both jobs\n"
    "evaluated the same images (same file names and labels), the paired tests\n"
    "between the same row of A and of B: the images right on A and wrong on B\n"
    "(right->wrong) and back, McNemar's exact p on top-1 (with labels), and\n"
    "Wilcoxon's signed-rank p and z of B - A on the top-label probabilities.\n"
    "Images are paired by file name. Jobs of different image sets get the\n"
    "tables only, and the paired part is refused with the difference (exit 1).\n"
    "\n"
    "Rows are matched by transform name, else by kind, eps and quality, so that\n"
    "a single-quality job's JPG(Adv5(x)) meets a grid job's JPG75(Adv5(x)).\n"
    "\n"
    "example:\n"
    "  advjpg compare 3f2a9c1d0b7e6a54 9e8d7c6b5a493827\n",
};
