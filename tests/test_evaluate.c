/*
 * test_evaluate.c - evaluation jobs end to end (POST /evaluate, /jobs...):
 * the table and the rows against the per-image pipeline run in this process
 * on the same model, the box-plot statistics (common/stats.c on known data,
 * and the server's against an independent computation), offset / limit /
 * shard, labels from labels.txt, an ImageNet ground-truth file, no labels,
 * an upload, every refused dataset path, cancel, interactive requests
 * served while a job runs, a daemon killed with SIGKILL and restarted
 * (and rows.csv with a half-written or corrupt last row), the SVG figures
 * (well-formed XML, one box per transform).
 *
 * Needs $ADVJPGD (set by tests/meson.build); uses xmllint when installed.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "experiment.h"
#include "image.h"
#include "model.h"
#include "net.h"
#include "server_harness.h"
#include "stats.h"
#include "synth.h"
#include "testutil.h"

#define CLASSES 40 /* synth_n_classes(): the generated sets are labelled 0..39 */
#define TOL 1e-5

static char TMP[4096], DATA[4200], SPEC[4200], WEIGHTS[4200], EMPTY_CONF[4200];
static model *M;
static net_ctx *CTX;

static const char EVAL_SPEC[] =
    "{\"name\": \"evalnet\", \"channels\": 3, \"input_size\": 40, \"scale_size\": 48,\n"
    " \"mean\": 118.380948, \"std\": 61.896913, \"classes\": 40,\n"
    " \"layers\": [\n"
    "   {\"type\": \"conv\", \"out\": 16, \"kernel\": 3, \"stride\": 1, \"pad\": 1},\n"
    "   {\"type\": \"relu\"},\n"
    "   {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},\n"
    "   {\"type\": \"conv\", \"out\": 32, \"kernel\": 3, \"stride\": 1, \"pad\": 1},\n"
    "   {\"type\": \"relu\"},\n"
    "   {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},\n"
    "   {\"type\": \"fc\", \"out\": 40}]}\n";

/* ---------------------------------------------------------------- helpers */

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", TMP, name);
}


/* Writes im as PNG, PPM or JPEG (by the name's extension, any case). */
static void write_image(const char *path, const img_rgb *im)
{
    char err[ADJ_ERRLEN];
    uint8_t *buf = NULL;
    size_t len = 0;
    const char *dot = strrchr(path, '.');
    if (dot && strcasecmp(dot, ".png") == 0) {
        img_encode_png(im, &buf, &len, err, sizeof err);
    } else if (dot && strcasecmp(dot, ".ppm") == 0) {
        char head[64];
        int hl = snprintf(head, sizeof head, "P6\n%d %d\n255\n", im->w, im->h);
        len = (size_t)hl + (size_t)im->w * im->h * 3;
        buf = malloc(len);
        memcpy(buf, head, (size_t)hl);
        memcpy(buf + hl, im->px, len - (size_t)hl);
    } else {
        img_encode_jpeg(im, 90, &buf, &len, err, sizeof err);
    }
    if (!buf || tu_write_file(path, buf, len)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    free(buf);
}

static void mkdir_or_die(const char *path)
{
    if (mkdir(path, 0755) && errno != EEXIST) {
        perror(path);
        exit(1);
    }
}

/* A sub-path of the data root. */
static void data_path(char *buf, size_t size, const char *rel)
{
    snprintf(buf, size, "%s/%s", DATA, rel);
}

/* ---------------------------------------------------------------- CSV */

typedef struct {
    int nf;
    char **f;
} csv_row;

typedef struct {
    int n;
    csv_row *rows;
} csv;

static void csv_free(csv *c)
{
    for (int i = 0; i < c->n; i++) {
        for (int k = 0; k < c->rows[i].nf; k++)
            free(c->rows[i].f[k]);
        free(c->rows[i].f);
    }
    free(c->rows);
    memset(c, 0, sizeof *c);
}

/* RFC 4180 records ending in LF (quoted fields may hold , " and LF). -1 if malformed. */
static int csv_parse(const char *t, size_t len, csv *out)
{
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < len) {
        csv_row row = {0, NULL};
        for (;;) {
            char *val = malloc(len - i + 1);
            size_t o = 0;
            if (t[i] == '"') {
                for (i++;; i++) {
                    if (i >= len)
                        return free(val), -1;
                    if (t[i] == '"') {
                        if (i + 1 < len && t[i + 1] == '"')
                            i++;
                        else {
                            i++;
                            break;
                        }
                    }
                    val[o++] = t[i];
                }
            } else {
                while (i < len && t[i] != ',' && t[i] != '\n')
                    val[o++] = t[i++];
            }
            val[o] = '\0';
            row.f = realloc(row.f, (size_t)(row.nf + 1) * sizeof *row.f);
            row.f[row.nf++] = val;
            if (i >= len)
                return -1; /* no LF at the end */
            if (t[i++] == '\n')
                break;
        }
        out->rows = realloc(out->rows, (size_t)(out->n + 1) * sizeof *out->rows);
        out->rows[out->n++] = row;
    }
    return 0;
}

/* ---------------------------------------------------------------- the pipeline, here */

typedef struct {
    char file[256];
    int truth;
    int label_x;
    float prob[EXP_MAX_TRANSFORMS];
    int label[EXP_MAX_TRANSFORMS];
    atk_norms norms[EXP_MAX_EPS];
} xrow;

/*
 * What the per-image pipeline gives for these files of dir: decode,
 * prepare, exp_run_batch in chunks of 4 with exp_image_seed(seed, name).
 */
static xrow *expected(const char *dir, char **files, const int *truth, int n, const exp_params *p,
                      uint64_t seed)
{
    const model_spec *spec = model_get_spec(M);
    xrow *out = calloc((size_t)n, sizeof *out);
    char err[ADJ_ERRLEN];
    const int T = exp_n_transforms(p);
    for (int i0 = 0; i0 < n; i0 += 4) {
        int k = n - i0 < 4 ? n - i0 : 4;
        img_rgb xs[4];
        uint64_t seeds[4];
        exp_result res[4];
        for (int i = 0; i < k; i++) {
            char path[8400];
            snprintf(path, sizeof path, "%s/%s", dir, files[i0 + i]);
            size_t len;
            uint8_t *buf = tu_read_file(path, &len);
            img_rgb im;
            if (!buf || img_decode(buf, len, IMG_DEFAULT_MAX_PIXELS, &im, err, sizeof err) ||
                img_prepare(&im, spec->scale_size, spec->input_size, &xs[i], err, sizeof err)) {
                fprintf(stderr, "expected: %s: %s\n", path, err);
                exit(1);
            }
            img_free(&im);
            free(buf);
            seeds[i] = exp_image_seed(seed, files[i0 + i]);
        }
        if (exp_run_batch(CTX, xs, k, p, seeds, res, err, sizeof err)) {
            fprintf(stderr, "exp_run_batch: %s\n", err);
            exit(1);
        }
        for (int i = 0; i < k; i++) {
            xrow *r = &out[i0 + i];
            snprintf(r->file, sizeof r->file, "%s", files[i0 + i]);
            r->truth = truth ? truth[i0 + i] : -1;
            r->label_x = res[i].label_x;
            for (int t = 0; t < T; t++) {
                r->prob[t] = exp_top_label_prob(&res[i], t);
                r->label[t] = exp_label(&res[i], t);
            }
            memcpy(r->norms, res[i].norms, sizeof r->norms);
            exp_result_free(&res[i]);
            img_free(&xs[i]);
        }
    }
    return out;
}

/* The sorted names of a synth set and their labels from its labels.txt. */
static int read_labels(const char *dir, char ***files, int **truth)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/labels.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0;
    char line[512];
    *files = NULL;
    *truth = NULL;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        *files = realloc(*files, (size_t)(n + 1) * sizeof **files);
        *truth = realloc(*truth, (size_t)(n + 1) * sizeof **truth);
        (*files)[n] = strdup(line);
        (*truth)[n] = atoi(tab + 1);
        n++;
    }
    fclose(f);
    return n;
}

/* Type 7 quantile, written again here so that the check does not use stats.c. */
static double q7(const double *s, int n, double p)
{
    double h = (n - 1) * p;
    int lo = (int)floor(h);
    if (lo + 1 >= n)
        return s[n - 1];
    return s[lo] + (h - lo) * (s[lo + 1] - s[lo]);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---------------------------------------------------------------- HTTP */

static json_t *get_json(int port, const char *path, long *status)
{
    sh_resp r;
    sh_http(port, "GET", path, NULL, NULL, 0, &r);
    *status = r.status;
    json_t *j = sh_json(&r);
    sh_resp_free(&r);
    return j;
}

/* POST /evaluate with a JSON body; *id gets the job id on 202. */
static long post_eval(int port, const char *body, char *id, char *msg, size_t msgsz)
{
    const char *headers[] = {"Content-Type: application/json", NULL};
    sh_resp r;
    sh_http(port, "POST", "/evaluate", headers, body, strlen(body), &r);
    json_t *j = sh_json(&r);
    if (id)
        snprintf(id, 17, "%s", r.status == 202 ? sh_jstr(j, "id") : "");
    if (msg)
        snprintf(msg, msgsz, "%s", r.status == 202 ? "" : sh_jstr(j, "error"));
    if (r.status == 202) {
        char loc[64];
        CHECK(sh_header(&r, "Location", loc, sizeof loc) && strncmp(loc, "/jobs/", 6) == 0 &&
                  strcmp(loc + 6, sh_jstr(j, "id")) == 0 && strcmp(sh_jstr(j, "status"), "queued") == 0,
              "202: {\"id\", \"status\": \"queued\"} and Location: /jobs/ID (%s)", (char *)r.body);
    }
    long st = r.status;
    json_decref(j);
    sh_resp_free(&r);
    return st;
}

/* GET a job's sub-resource as text (new string), NULL unless 200. */
static char *get_text(int port, const char *id, const char *sub, char *ctype, size_t ctsz)
{
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s%s", id, sub);
    sh_resp r;
    sh_http(port, "GET", path, NULL, NULL, 0, &r);
    char *t = NULL;
    if (r.status == 200) {
        t = malloc(r.len + 1);
        memcpy(t, r.body, r.len);
        t[r.len] = '\0';
        if (ctype && !sh_header(&r, "Content-Type", ctype, ctsz))
            ctype[0] = '\0';
    }
    sh_resp_free(&r);
    return t;
}

/* ---------------------------------------------------------------- checks */

/* The rows of a job against the pipeline's values. */
static void check_rows(const char *what, const char *text, const xrow *x, int n,
                       const exp_params *p)
{
    csv c;
    int T = exp_n_transforms(p);
    if (!text || csv_parse(text, strlen(text), &c)) {
        CHECK(0, "%s: rows.csv parses as CSV", what);
        return;
    }
    CHECK(c.n == n + 1, "%s: a header and one row per image (%d rows, want %d)", what, c.n - 1, n);
    /* the header */
    char want[4096] = "file,truth,label_x";
    for (int t = 0; t < T; t++) {
        char name[64];
        exp_transform_name(p, t, name, sizeof name);
        size_t l = strlen(want);
        snprintf(want + l, sizeof want - l, ",%s:prob,%s:label", name, name);
    }
    for (int e = 0; e < p->n_eps; e++) { /* the perturbations' sizes, appended */
        size_t l = strlen(want);
        snprintf(want + l, sizeof want - l, ",Adv%d(x):linf,Adv%d(x):l2,Adv%d(x):psnr", p->eps[e],
                 p->eps[e], p->eps[e]);
    }
    char *nl = strchr(text, '\n');
    CHECK(nl && (size_t)(nl - text) == strlen(want) && strncmp(text, want, strlen(want)) == 0,
          "%s: header is '%s'", what, want);
    int bad_names = 0, bad_labels = 0, bad_fields = 0, bad_norms = 0;
    double maxdiff = 0;
    for (int i = 0; i + 1 < c.n && i < n; i++) {
        csv_row *r = &c.rows[i + 1];
        if (r->nf != 3 + 2 * T + 3 * p->n_eps) {
            bad_fields++;
            continue;
        }
        if (strcmp(r->f[0], x[i].file) != 0)
            bad_names++;
        int truth = *r->f[1] ? atoi(r->f[1]) : -1;
        if (truth != x[i].truth || atoi(r->f[2]) != x[i].label_x)
            bad_labels++;
        for (int t = 0; t < T; t++) {
            maxdiff = fmax(maxdiff, fabs(atof(r->f[3 + 2 * t]) - x[i].prob[t]));
            if (atoi(r->f[4 + 2 * t]) != x[i].label[t])
                bad_labels++;
        }
        /* the pipeline's norms; L-inf within eps: an independent bound */
        for (int e = 0; e < p->n_eps; e++) {
            const char *const *f = (const char *const *)r->f + 3 + 2 * T + 3 * e;
            const atk_norms *w = &x[i].norms[e];
            double psnr = strtod(f[2], NULL);
            if (atoi(f[0]) != w->linf || w->linf > p->eps[e] ||
                fabs(atof(f[1]) - w->l2) > 1e-6 * (1 + w->l2) ||
                (isfinite(w->psnr) ? fabs(psnr - w->psnr) > 1e-6 * w->psnr : !isinf(psnr)))
                bad_norms++;
        }
    }
    CHECK(bad_norms == 0, "%s: %d rows whose linf, l2, psnr differ from the pipeline's", what,
          bad_norms);
    CHECK(bad_fields == 0, "%s: %d rows with the wrong number of fields", what, bad_fields);
    CHECK(bad_names == 0, "%s: %d rows name another file than the job's order", what, bad_names);
    CHECK(bad_labels == 0, "%s: %d truth / label fields differ from the pipeline", what,
          bad_labels);
    CHECK(maxdiff <= TOL, "%s: probabilities equal the pipeline's (max diff %g)", what, maxdiff);
    csv_free(&c);
}

/* The result's table against the pipeline's values, computed here. */
static void check_table(const char *what, const json_t *res, const xrow *x, int n,
                        const exp_params *p, int has_truth)
{
    const int T = exp_n_transforms(p);
    json_t *table = json_object_get(res, "table");
    CHECK(sh_jint(res, "n") == n, "%s: n = %d (got %ld)", what, n, sh_jint(res, "n"));
    CHECK((int)json_array_size(table) == T, "%s: one table row per transform", what);
    double *v = malloc((size_t)n * sizeof *v);
    for (int t = 0; t < T && t < (int)json_array_size(table); t++) {
        json_t *row = json_array_get(table, (size_t)t), *box = json_object_get(row, "box");
        char name[64];
        exp_transform_name(p, t, name, sizeof name);
        CHECK(strcmp(sh_jstr(row, "transform"), name) == 0, "%s: row %d is %s", what, t, name);
        int correct = 0;
        double sum = 0;
        for (int i = 0; i < n; i++) {
            v[i] = x[i].prob[t];
            sum += v[i];
            correct += x[i].label[t] == x[i].truth;
        }
        if (has_truth)
            CHECK(fabs(sh_jnum(row, "top1") - (double)correct / n) < 1e-9, "%s: %s top1 %g, want %g",
                  what, name, sh_jnum(row, "top1"), (double)correct / n);
        else
            CHECK(json_is_null(json_object_get(row, "top1")), "%s: %s top1 is null without labels",
                  what, name);
        CHECK(fabs(sh_jnum(row, "mean_top_label_prob") - sum / n) < 1e-6,
              "%s: %s mean_top_label_prob %g, want %g", what, name,
              sh_jnum(row, "mean_top_label_prob"), sum / n);
        qsort(v, (size_t)n, sizeof *v, cmp_d);
        double q1 = q7(v, n, .25), med = q7(v, n, .5), q3 = q7(v, n, .75), iqr = q3 - q1;
        double wl = v[n - 1], wh = v[0];
        int outl = 0;
        for (int i = 0; i < n; i++) {
            if (v[i] < q1 - 1.5 * iqr || v[i] > q3 + 1.5 * iqr) {
                outl++;
                continue;
            }
            wl = fmin(wl, v[i]);
            wh = fmax(wh, v[i]);
        }
        const struct {
            const char *k;
            double want;
        } f[] = {{"min", v[0]}, {"q1", q1}, {"median", med}, {"q3", q3}, {"max", v[n - 1]},
                 {"mean", sum / n}, {"whisker_low", wl}, {"whisker_high", wh}};
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
            CHECK(fabs(sh_jnum(box, f[k].k) - f[k].want) < 1e-6, "%s: %s box.%s %g, want %g", what,
                  name, f[k].k, sh_jnum(box, f[k].k), f[k].want);
        CHECK(sh_jint(box, "outliers") == outl, "%s: %s box.outliers %ld, want %d", what, name,
              sh_jint(box, "outliers"), outl);
    }
    free(v);
}

/* Well-formed XML: xmllint when installed, else a small tag-balance check. */
static int well_formed(const char *svg, const char *path)
{
    if (system("command -v xmllint >/dev/null 2>&1") == 0) {
        tu_write_file(path, svg, strlen(svg));
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
        return system(cmd) == 0;
    }
    /* fallback: tags nest, attributes are quoted */
    char stack[64][64];
    int depth = 0;
    for (const char *p = svg; (p = strchr(p, '<'));) {
        const char *e = strchr(p, '>');
        if (!e)
            return 0;
        if (p[1] == '?' || p[1] == '!') {
            p = e + 1;
            continue;
        }
        int closing = p[1] == '/';
        const char *n0 = p + 1 + closing;
        size_t nl = strcspn(n0, " />");
        int quotes = 0;
        for (const char *q = p; q < e; q++)
            quotes += *q == '"';
        if (quotes % 2 || nl == 0 || nl >= 64)
            return 0;
        if (closing) {
            if (depth == 0 || strncmp(stack[depth - 1], n0, nl) || stack[depth - 1][nl])
                return 0;
            depth--;
        } else if (e[-1] != '/') {
            if (depth == 64)
                return 0;
            memcpy(stack[depth], n0, nl);
            stack[depth++][nl] = '\0';
        }
        p = e + 1;
    }
    return depth == 0;
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void check_figures(int port, const char *id, const exp_params *p, const char *what)
{
    char ct[128], path[4400];
    char *f3 = get_text(port, id, "/figure3.svg", ct, sizeof ct);
    tmp_path(path, sizeof path, "figure3.svg");
    CHECK(f3 && strcmp(ct, "image/svg+xml") == 0, "%s: figure3.svg is image/svg+xml", what);
    CHECK(f3 && well_formed(f3, path), "%s: figure3.svg is well-formed XML", what);
    CHECK(f3 && count(f3, "class=\"box\"") == exp_n_transforms(p),
          "%s: figure 3 has one box per transform (%d, want %d)", what,
          f3 ? count(f3, "class=\"box\"") : -1, exp_n_transforms(p));
    CHECK(f3 && strstr(f3, "JPGnoise(Adv1(x))") && strstr(f3, "class=\"median\"") &&
              strstr(f3, "class=\"mean\""),
          "%s: figure 3 names the transforms, marks medians and means", what);
    char *f4 = get_text(port, id, "/figure4.svg", ct, sizeof ct);
    tmp_path(path, sizeof path, "figure4.svg");
    CHECK(f4 && strcmp(ct, "image/svg+xml") == 0 && well_formed(f4, path),
          "%s: figure4.svg is well-formed image/svg+xml", what);
    CHECK(f4 && count(f4, "class=\"frame\"") == 5 && count(f4, "class=\"diagonal\"") == 5 &&
              strstr(f4, "(x, JPGnoise(Adv1(x)))") && strstr(f4, "(Adv1(x), JPG(Adv1(x)))"),
          "%s: figure 4 has the paper's five panels with diagonals", what);
    free(f3);
    free(f4);
}

/* ---------------------------------------------------------------- stats.c */

static void test_stats(void)
{
    stats_box b;
    const double a[] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
    CHECK(stats_box_of(a, 10, &b) == ADJ_OK && b.n == 10, "stats: 1..10");
    CHECK(b.q1 == 3.25 && b.median == 5.5 && b.q3 == 7.75 && b.mean == 5.5 && b.min == 1 &&
              b.max == 10,
          "stats: type-7 quartiles of 1..10 are 3.25, 5.5, 7.75 (got %g %g %g)", b.q1, b.median,
          b.q3);
    CHECK(b.whisker_low == 1 && b.whisker_high == 10 && b.n_low == 0 && b.n_high == 0,
          "stats: 1..10 has no outliers");
    const double c[] = {1, 2, 3, 4, 100};
    CHECK(stats_box_of(c, 5, &b) == ADJ_OK && b.q1 == 2 && b.median == 3 && b.q3 == 4 &&
              b.whisker_low == 1 && b.whisker_high == 4 && b.n_high == 1 && b.n_low == 0 &&
              b.mean == 22,
          "stats: {1,2,3,4,100}: whisker at 4, 100 an outlier (wh %g, n_high %zu)",
          b.whisker_high, b.n_high);
    CHECK(stats_is_outlier(&b, 100) && !stats_is_outlier(&b, 4), "stats: stats_is_outlier");
    const double d[] = {14, 10, -50, 12, 11, 13};
    CHECK(stats_box_of(d, 6, &b) == ADJ_OK && fabs(b.q1 - 10.25) < 1e-12 &&
              fabs(b.q3 - 12.75) < 1e-12 && b.median == 11.5 && b.whisker_low == 10 &&
              b.whisker_high == 14 && b.n_low == 1 && b.n_high == 0,
          "stats: a low outlier (q1 %g q3 %g wl %g)", b.q1, b.q3, b.whisker_low);
    const double e[] = {1, 3, 7, 15};
    CHECK(stats_quantile(e, 4, 0.25) == 2.5 && stats_quantile(e, 4, 0.5) == 5 &&
              stats_quantile(e, 4, 0) == 1 && stats_quantile(e, 4, 1) == 15 &&
              fabs(stats_quantile(e, 4, 0.9) - 12.6) < 1e-12,
          "stats: type-7 quantiles of {1,3,7,15} (numpy's linear)");
    const double one[] = {0.25};
    CHECK(stats_box_of(one, 1, &b) == ADJ_OK && b.q1 == 0.25 && b.q3 == 0.25 &&
              b.whisker_low == 0.25 && b.whisker_high == 0.25 && b.n_low + b.n_high == 0,
          "stats: one value");
    const double same[] = {0.5, 0.5, 0.5, 0.9};
    /* q3 0.6, IQR 0.1: the upper fence is 0.75, so 0.9 is an outlier */
    CHECK(stats_box_of(same, 4, &b) == ADJ_OK && b.q1 == 0.5 && fabs(b.q3 - 0.6) < 1e-12 &&
              b.whisker_low == 0.5 && b.whisker_high == 0.5 && b.n_high == 1 && b.n_low == 0,
          "stats: ties (q3 %g, whisker_high %g)", b.q3, b.whisker_high);
    const double nan_[] = {1, NAN};
    CHECK(stats_box_of(nan_, 2, &b) == ADJ_ERR_ARG, "stats: NaN refused");
    CHECK(stats_box_of(a, 0, &b) == ADJ_ERR_ARG, "stats: no values refused");
    CHECK(isnan(stats_quantile(a, 0, 0.5)), "stats: quantile of nothing is NaN");
}

/* ---------------------------------------------------------------- fixtures */

static char **SET_FILES, **BIG_FILES;
static int *SET_TRUTH, *BIG_TRUTH;
static int SET_N, BIG_N;
static char SET_DIR[4400], BIG_DIR[4400], MIXED_DIR[4400], INET_DIR[4400];
static const char *MIXED_FILES[] = {"a,\"q\".ppm", "b.PNG", "c.Jpeg"};

static void make_data(void)
{
    char err[ADJ_ERRLEN], p[9000], q[9000];
    mkdir_or_die(DATA);
    data_path(SET_DIR, sizeof SET_DIR, "set");
    data_path(BIG_DIR, sizeof BIG_DIR, "big");
    if (synth_write_set(SET_DIR, 60, 11, 1, err, sizeof err) ||
        synth_write_set(BIG_DIR, 200, 12, 1, err, sizeof err)) {
        fprintf(stderr, "synth_write_set: %s\n", err);
        exit(1);
    }
    SET_N = read_labels(SET_DIR, &SET_FILES, &SET_TRUTH);
    BIG_N = read_labels(BIG_DIR, &BIG_FILES, &BIG_TRUTH);
    /* no labels; mixed formats and cases, a name that needs CSV quoting, things that are not images */
    data_path(MIXED_DIR, sizeof MIXED_DIR, "mixed");
    mkdir_or_die(MIXED_DIR);
    for (int i = 0; i < 3; i++) {
        img_rgb im;
        sh_test_image(&im, 50 + 9 * i, 44 + 5 * i, (uint64_t)i + 1);
        snprintf(p, sizeof p, "%s/%s", MIXED_DIR, MIXED_FILES[i]);
        write_image(p, &im);
        img_free(&im);
    }
    snprintf(p, sizeof p, "%s/notes.txt", MIXED_DIR);
    tu_write_file(p, "not an image\n", 13);
    snprintf(p, sizeof p, "%s/folder.jpg", MIXED_DIR);
    mkdir_or_die(p);
    /* the ImageNet layout */
    data_path(INET_DIR, sizeof INET_DIR, "imagenet");
    mkdir_or_die(INET_DIR);
    for (int i = 1; i <= 6; i++) {
        img_rgb im;
        sh_test_image(&im, 64, 48, (uint64_t)(20 + i));
        snprintf(p, sizeof p, "%s/ILSVRC2012_val_%08d.JPEG", INET_DIR, i);
        write_image(p, &im);
        img_free(&im);
    }
    /* two images and one that does not decode */
    data_path(p, sizeof p, "broken");
    mkdir_or_die(p);
    for (int i = 0; i < 2; i++) {
        img_rgb im;
        sh_test_image(&im, 48, 48, (uint64_t)(60 + i));
        snprintf(q, sizeof q, "%s/broken/ok%d.png", DATA, i);
        write_image(q, &im);
        img_free(&im);
    }
    snprintf(q, sizeof q, "%s/broken/bad.jpg", DATA);
    static const char bad[] = "\xff\xd8\xff\xe0 not really a JPEG";
    tu_write_file(q, bad, sizeof bad - 1);
    data_path(p, sizeof p, "gt.txt");
    tu_write_file(p, "3\n1\n14\n7\n2\n9\n", 14);
    /* what must be refused */
    tmp_path(p, sizeof p, "outside");
    mkdir_or_die(p);
    tmp_path(q, sizeof q, "outside/secret.jpg");
    img_rgb im;
    sh_test_image(&im, 40, 40, 99);
    write_image(q, &im);
    img_free(&im);
    tmp_path(q, sizeof q, "outside/labels.txt");
    tu_write_file(q, "secret.jpg\t1\n", 13);
    data_path(q, sizeof q, "link_out");
    symlink(p, q); /* a folder link out of the root */
    data_path(q, sizeof q, "link_labels");
    tmp_path(p, sizeof p, "outside/labels.txt");
    symlink(p, q); /* a file link out of the root */
    data_path(q, sizeof q, "badlink");
    mkdir_or_die(q);
    snprintf(q, sizeof q, "%s/badlink/ok.jpg", DATA);
    char src[8400];
    snprintf(src, sizeof src, "%s/%s", SET_DIR, SET_FILES[0]);
    size_t len;
    uint8_t *b = tu_read_file(src, &len);
    tu_write_file(q, b, len);
    free(b);
    snprintf(q, sizeof q, "%s/badlink/zz.jpg", DATA);
    tmp_path(p, sizeof p, "outside/secret.jpg");
    symlink(p, q); /* an image link out of the root */
    data_path(q, sizeof q, "afile.txt");
    tu_write_file(q, "x", 1);
}

static const exp_params P3 = {.n_eps = 3, .eps = {1, 5, 10}, .quality = 75};

/* ---------------------------------------------------------------- tests */

/* A whole set with labels.txt: the table, the rows, the figures, /jobs. */
static void test_table(int port, xrow *x_set)
{
    char id[17], msg[512];
    CHECK(post_eval(port, "{\"dataset\": \"set\", \"eps\": [1, 5, 10]}", id, msg, sizeof msg) ==
              202,
          "POST /evaluate set: 202 (%s)", msg);
    json_t *st = sh_wait_job(port, id, 60);
    CHECK(strcmp(sh_jstr(st, "status"), "done") == 0 && sh_jint(st, "done") == SET_N &&
              sh_jint(st, "total") == SET_N,
          "set: done, %d of %d", SET_N, SET_N);
    CHECK(strcmp(sh_jstr(st, "labels"), "set/labels.txt") == 0 && sh_jint(st, "quality") == 75 &&
              sh_jint(st, "seed") == 1 && json_array_size(json_object_get(st, "eps")) == 3 &&
              json_is_string(json_object_get(st, "created")),
          "set: the status carries the request's parameters");
    CHECK(sh_jnum(st, "images_per_s") > 0 && sh_jnum(st, "eta_s") == 0,
          "set: images_per_s > 0 and eta_s 0 when done");
    json_decref(st);

    long code;
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    json_t *res = get_json(port, path, &code);
    CHECK(code == 200 && json_is_true(json_object_get(res, "complete")) &&
              sh_jint(res, "quality") == 75 && sh_jint(res, "seed") == 1,
          "set: result 200, complete");
    check_table("set", res, x_set, SET_N, &P3, 1);
    json_decref(res);
    char ct[128];
    char *rows = get_text(port, id, "/rows", ct, sizeof ct);
    CHECK(rows && strncmp(ct, "text/csv", 8) == 0, "set: rows are text/csv");
    check_rows("set", rows, x_set, SET_N, &P3);
    free(rows);
    check_figures(port, id, &P3, "set");

    json_t *list = get_json(port, "/jobs", &code);
    json_t *jobs = json_object_get(list, "jobs");
    int found = 0;
    size_t i;
    json_t *e;
    json_array_foreach(jobs, i, e) found += strcmp(sh_jstr(e, "id"), id) == 0;
    CHECK(code == 200 && found == 1, "GET /jobs lists the job");
    json_decref(list);
}

/* offset, limit and shard, against the full job's rows. */
static void test_subsets(int port)
{
    char id[17], msg[512], body[256];
    /* offset 5, limit 31, shard 1 of 3: images 6, 9, 12, ... of the sorted list */
    snprintf(body, sizeof body,
             "{\"dataset\": \"set\", \"offset\": 5, \"limit\": 31, \"shard\": {\"index\": 1, "
             "\"count\": 3}}");
    CHECK(post_eval(port, body, id, msg, sizeof msg) == 202, "subset: 202 (%s)", msg);
    json_t *st = sh_wait_job(port, id, 60);
    char *files[64];
    int truth[64], n = 0;
    for (int k = 5 + 1; k < 5 + 31; k += 3) {
        files[n] = SET_FILES[k];
        truth[n++] = SET_TRUTH[k];
    }
    CHECK(strcmp(sh_jstr(st, "status"), "done") == 0 && sh_jint(st, "total") == n,
          "subset: %d images (got %ld)", n, sh_jint(st, "total"));
    json_decref(st);
    xrow *want = expected(SET_DIR, files, truth, n, &P3, 1);
    char *rows = get_text(port, id, "/rows", NULL, 0);
    check_rows("offset 5, limit 31, shard 1/3", rows, want, n, &P3);
    free(rows);
    free(want);

    /* the three shards of the whole set: disjoint, together the set */
    int seen[256] = {0}, total = 0;
    for (int s = 0; s < 3; s++) {
        snprintf(body, sizeof body,
                 "{\"dataset\": \"set\", \"shard\": {\"index\": %d, \"count\": 3}}", s);
        CHECK(post_eval(port, body, id, msg, sizeof msg) == 202, "shard %d: 202 (%s)", s, msg);
        json_t *j = sh_wait_job(port, id, 60);
        json_decref(j);
        rows = get_text(port, id, "/rows", NULL, 0);
        csv c;
        if (rows && csv_parse(rows, strlen(rows), &c) == 0) {
            for (int r = 1; r < c.n; r++) {
                total++;
                for (int k = 0; k < SET_N; k++)
                    if (strcmp(c.rows[r].f[0], SET_FILES[k]) == 0) {
                        seen[k]++;
                        CHECK(k % 3 == s, "shard %d holds image %d", s, k);
                    }
            }
            csv_free(&c);
        }
        free(rows);
    }
    int once = 1;
    for (int k = 0; k < SET_N; k++)
        once &= seen[k] == 1;
    CHECK(total == SET_N && once, "the 3 shards together are the set, each image once");
}

/* No labels; file name quoting; the ImageNet layout. */
static void test_labels(int port)
{
    char id[17], msg[512];
    CHECK(post_eval(port, "{\"dataset\": \"mixed\", \"eps\": [1, 5, 10], \"seed\": 5}", id, msg,
                    sizeof msg) == 202,
          "mixed: 202 (%s)", msg);
    json_t *st = sh_wait_job(port, id, 30);
    CHECK(strcmp(sh_jstr(st, "status"), "done") == 0 && sh_jint(st, "total") == 3 &&
              json_is_null(json_object_get(st, "labels")),
          "mixed: 3 images (not notes.txt, not a folder named .jpg), no labels");
    json_decref(st);
    char *files[3];
    for (int i = 0; i < 3; i++)
        files[i] = (char *)MIXED_FILES[i];
    xrow *x = expected(MIXED_DIR, files, NULL, 3, &P3, 5);
    long code;
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    json_t *res = get_json(port, path, &code);
    check_table("mixed (no labels)", res, x, 3, &P3, 0);
    json_decref(res);
    char *rows = get_text(port, id, "/rows", NULL, 0);
    CHECK(rows && strstr(rows, "\n\"a,\"\"q\"\".ppm\",,"), "mixed: a name with , and \" is quoted "
                                                           "(RFC 4180), truth empty");
    check_rows("mixed", rows, x, 3, &P3);
    free(rows);
    free(x);

    /* ILSVRC2012_val_*.JPEG with the devkit's ground truth: line k for image k */
    CHECK(post_eval(port,
                    "{\"dataset\": \"imagenet\", \"ground_truth\": \"gt.txt\", \"offset\": 2, "
                    "\"limit\": 3, \"eps\": [2]}",
                    id, msg, sizeof msg) == 202,
          "imagenet: 202 (%s)", msg);
    st = sh_wait_job(port, id, 30);
    CHECK(strcmp(sh_jstr(st, "status"), "done") == 0 && sh_jint(st, "total") == 3, "imagenet: done");
    json_decref(st);
    rows = get_text(port, id, "/rows", NULL, 0);
    csv c;
    int ok = rows && csv_parse(rows, strlen(rows), &c) == 0 && c.n == 4;
    CHECK(ok && strcmp(c.rows[1].f[0], "ILSVRC2012_val_00000003.JPEG") == 0 &&
              strcmp(c.rows[1].f[1], "13") == 0 && strcmp(c.rows[2].f[1], "6") == 0 &&
              strcmp(c.rows[3].f[0], "ILSVRC2012_val_00000005.JPEG") == 0 &&
              strcmp(c.rows[3].f[1], "1") == 0,
          "imagenet: images 3..5 with truth = ILSVRC2012_ID - 1 (14, 7, 2 -> 13, 6, 1)");
    if (ok)
        csv_free(&c);
    free(rows);
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    res = get_json(port, path, &code);
    CHECK(json_is_number(json_object_get(json_array_get(json_object_get(res, "table"), 0), "top1")),
          "imagenet: top1 reported with ground truth");
    json_decref(res);
}

/* An image that does not decode: its row has empty fields, the job goes on. */
static void test_skipped(int port)
{
    char id[17], msg[512];
    CHECK(post_eval(port, "{\"dataset\": \"broken\"}", id, msg, sizeof msg) == 202,
          "broken: 202 (%s)", msg);
    json_t *st = sh_wait_job(port, id, 30);
    CHECK(strcmp(sh_jstr(st, "status"), "done") == 0 && sh_jint(st, "done") == 3 &&
              sh_jint(st, "skipped") == 1,
          "an image that does not decode is skipped, the job is done (%s, done %ld, skipped %ld)",
          sh_jstr(st, "status"), sh_jint(st, "done"), sh_jint(st, "skipped"));
    json_decref(st);
    char path[96];
    long code;
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    json_t *res = get_json(port, path, &code);
    CHECK(sh_jint(res, "n") == 2 && sh_jint(res, "skipped") == 1,
          "broken: the table is over the 2 images that decode");
    json_decref(res);
    char *rows = get_text(port, id, "/rows", NULL, 0);
    CHECK(rows && strstr(rows, "\nbad.jpg,,,,") && count(rows, "\n") == 4,
          "broken: bad.jpg has a row of empty fields");
    free(rows);
}

/* GET /jobs?status=S against the unfiltered list; unknown GET parameters refused everywhere. */
static void test_filters(int port)
{
    long code;
    json_t *all = get_json(port, "/jobs", &code);
    json_t *jobs = json_object_get(all, "jobs");
    CHECK(code == 200 && json_array_size(jobs) > 1, "GET /jobs: %ld", code);
    const char *states[] = {"done", "canceled", "queued", "failed"};
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        size_t want = 0, i;
        json_t *j;
        json_array_foreach(jobs, i, j)
            want += strcmp(sh_jstr(j, "status"), states[k]) == 0;
        char path[64];
        snprintf(path, sizeof path, "/jobs?status=%s", states[k]);
        json_t *some = get_json(port, path, &code);
        json_t *got = json_object_get(some, "jobs");
        int only = 1;
        json_array_foreach(got, i, j)
            only &= strcmp(sh_jstr(j, "status"), states[k]) == 0;
        CHECK(code == 200 && json_array_size(got) == want && only, "%s: %zu jobs, want %zu", path,
              json_array_size(got), want);
        json_decref(some);
    }
    const char *id = sh_jstr(json_array_get(jobs, 0), "id");
    char p1[96], p2[96], p3[96];
    snprintf(p1, sizeof p1, "/jobs/%s?verbose=1", id);
    snprintf(p2, sizeof p2, "/jobs/%s/rows?format=parquet", id);
    snprintf(p3, sizeof p3, "/jobs/%s/figure3.svg?w=1", id);
    const char *refused[] = {"/jobs?status=finished", "/jobs?limit=3", p1, p2, p3,
                             "/health?probe=1", "/models?x", "/metrics?format=json"};
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        json_t *e = get_json(port, refused[k], &code);
        const char *msg = sh_jstr(e, "error");
        CHECK(code == 400 && msg && *msg, "GET %s: %ld, want 400", refused[k], code);
        json_decref(e);
    }
    json_decref(all);
}

/* DELETE /jobs/{id}?purge=1: an ended job and its folder go (404 from then
 * on, not listed); a job that has not ended is refused (409) until canceled;
 * purge with GET is refused. */
static long http_status(int port, const char *method, const char *path, json_t **body)
{
    sh_resp r;
    sh_http(port, method, path, NULL, NULL, 0, &r);
    long st = r.status;
    if (body)
        *body = sh_json(&r);
    sh_resp_free(&r);
    return st;
}

/* A series' value in GET /metrics, -1 if absent. */
static double metric(int port, const char *series)
{
    sh_resp r;
    sh_http(port, "GET", "/metrics", NULL, NULL, 0, &r);
    double v = -1;
    size_t n = strlen(series);
    for (const char *p = r.status == 200 ? (const char *)r.body : ""; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            v = atof(p + n + 1);
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    sh_resp_free(&r);
    return v;
}

static void test_delete(int port, const char *jobs_dir)
{
    char id[17], msg[512], path[128], dir[4500];
    const char *images = "advjpgd_job_images_total", *done = "advjpgd_jobs{status=\"done\"}";
    static const char *const cpu[] = {"advjpgd_job_cpu_seconds_total{stage=\"load\"}",
                                      "advjpgd_job_cpu_seconds_total{stage=\"variants\"}",
                                      "advjpgd_job_cpu_seconds_total{stage=\"planar\"}",
                                      "advjpgd_job_cpu_seconds_total{stage=\"rows\"}"};
    const char *grad_images = "advjpgd_batch_size_sum{kind=\"gradient\"}";
    double cpu0[4];
    for (int s = 0; s < 4; s++)
        cpu0[s] = metric(port, cpu[s]);
    const double images0 = metric(port, images), grad0 = metric(port, grad_images);
    CHECK(post_eval(port, "{\"dataset\": \"set\", \"eps\": [1]}", id, msg, sizeof msg) == 202,
          "a job to delete: %s", msg);
    json_decref(sh_wait_job(port, id, 60));
    const double done0 = metric(port, done);
    CHECK(images0 >= 0 && metric(port, images) == images0 + SET_N,
          "/metrics: the job's %d images counted (%g, then %g)", SET_N, images0, metric(port, images));
    CHECK(grad0 >= 0 && metric(port, grad_images) == grad0 + SET_N,
          "/metrics: the job's %d images in gradient passes (%g, then %g)", SET_N, grad0,
          metric(port, grad_images));
    for (int s = 0; s < 4; s++)
        CHECK(cpu0[s] >= 0 && metric(port, cpu[s]) > cpu0[s], "/metrics: %s grew over the job",
              cpu[s]);
    /* nothing queued now: the worker's idle time grows with the wall clock, not faster */
    const char *idle = "advjpgd_worker_idle_seconds_total";
    const double t0 = sh_now(), idle0 = metric(port, idle); /* read within [t0, t1] */
    usleep(300000);
    const double idle1 = metric(port, idle), dt = sh_now() - t0;
    CHECK(idle0 >= 0 && idle1 - idle0 >= 0.25 && idle1 - idle0 <= dt + 1e-3,
          "/metrics: the idle worker's time grew by %g s in %g s", idle1 - idle0, dt);
    snprintf(dir, sizeof dir, "%s/%s", jobs_dir, id);
    struct stat st;
    CHECK(stat(dir, &st) == 0, "the job's folder %s exists", dir);
    snprintf(path, sizeof path, "/jobs/%s?purge=1", id);
    CHECK(http_status(port, "GET", path, NULL) == 400, "purge=1 with GET is refused");
    json_t *o = NULL;
    long code = http_status(port, "DELETE", path, &o);
    CHECK(code == 200 && json_is_true(json_object_get(o, "deleted")) &&
              strcmp(sh_jstr(o, "id"), id) == 0,
          "DELETE %s: %ld", path, code);
    json_decref(o);
    CHECK(stat(dir, &st) != 0 && errno == ENOENT, "the folder is gone");
    snprintf(path, sizeof path, "/jobs/%s", id);
    CHECK(http_status(port, "GET", path, NULL) == 404, "a deleted job is 404");
    snprintf(path, sizeof path, "/jobs/%s/rows", id);
    CHECK(http_status(port, "GET", path, NULL) == 404, "its rows are 404");
    snprintf(path, sizeof path, "/jobs/%s?purge=1", id);
    CHECK(http_status(port, "DELETE", path, NULL) == 404, "deleting it again is 404");
    json_t *all = get_json(port, "/jobs", &code);
    size_t i;
    json_t *j;
    int listed = 0;
    json_array_foreach(json_object_get(all, "jobs"), i, j)
        listed |= strcmp(sh_jstr(j, "id"), id) == 0;
    CHECK(!listed, "a deleted job is not listed");
    CHECK(done0 >= 1 && metric(port, done) == done0 - 1, "/metrics: one done job fewer");
    json_decref(all);
    /* a job that has not ended: 409, then canceled, then deleted */
    CHECK(post_eval(port, "{\"dataset\": \"big\", \"eps\": [1,2,3,4]}", id, msg, sizeof msg) == 202,
          "a long job: %s", msg);
    snprintf(path, sizeof path, "/jobs/%s?purge=1", id);
    code = http_status(port, "DELETE", path, &o); /* right after POST: queued or running */
    CHECK(code == 409 && strstr(sh_jstr(o, "error"), "cancel it"),
          "a job that has not ended: %ld, want 409 and why", code);
    json_decref(o);
    snprintf(dir, sizeof dir, "/jobs/%s", id);
    CHECK(http_status(port, "DELETE", dir, NULL) == 200, "cancel");
    CHECK(http_status(port, "DELETE", path, NULL) == 200, "then delete");
}

static int count_jobs_dir(const char *dir)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "ls -A '%s' 2>/dev/null | wc -l", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

static void test_refused(int port, const char *jobs_dir)
{
    static const struct {
        const char *body, *msg;
    } bad[] = {
        {"{\"dataset\": \"../outside\"}", "'..' components are not allowed"},
        {"{\"dataset\": \"set/../../outside\"}", "'..' components are not allowed"},
        {"{\"dataset\": \"/etc\"}", "absolute paths are not allowed"},
        {"{\"dataset\": \"link_out\"}", "leads outside the data root"},
        {"{\"dataset\": \"badlink\"}", "leads outside the data root"},
        {"{\"dataset\": \"nope\"}", "no such folder"},
        {"{\"dataset\": \"afile.txt\"}", "not a folder"},
        {"{\"dataset\": \"\"}", "dataset"},
        {"{\"dataset\": \"set\", \"labels\": \"../outside/labels.txt\"}", "'..'"},
        {"{\"dataset\": \"set\", \"labels\": \"link_labels\"}", "leads outside the data root"},
        {"{\"dataset\": \"set\", \"labels\": \"set\"}", "not a regular file"},
        {"{\"dataset\": \"set\", \"ground_truth\": \"nope.txt\"}", "no such file"},
        {"{\"dataset\": \"set\", \"ground_truth\": \"/etc/passwd\"}", "absolute"},
        {"{\"dataset\": \"imagenet\", \"ground_truth\": \"set/labels.txt\"}", "ILSVRC2012_ID"},
        {"{\"dataset\": \"set\", \"eps\": [0]}", "eps"},
        {"{\"dataset\": \"set\", \"quality\": 101}", "quality"},
        {"{\"dataset\": \"set\", \"bogus\": 1}", "unknown field 'bogus'"},
        {"{\"dataset\": \"set\", \"offset\": 100000}", "select none"},
        {"{\"dataset\": \"set\", \"shard\": {\"index\": 3, \"count\": 3}}", "shard"},
        {"{\"eps\": [1]}", "dataset"},
        {"not json", "not JSON"},
        /* the attack menu: each refusal names its parameter */
        {"{\"dataset\": \"set\", \"attack\": \"pgd\"}", "attack: give an object"},
        {"{\"dataset\": \"set\", \"attack\": {\"attack\": \"cw\"}}", "attack: 'cw' is not one of"},
        {"{\"dataset\": \"set\", \"attack\": {\"attack\": 3}}", "attack: give a string"},
        {"{\"dataset\": \"set\", \"attack\": {\"attack\": \"bim\", \"steps\": 0}}", "steps: '0'"},
        {"{\"dataset\": \"set\", \"attack\": {\"attack\": \"bim\", \"steps\": \"3\"}}",
         "steps: give an integer"},
        {"{\"dataset\": \"set\", \"attack\": {\"steps\": 3}}", "steps: attack=fgsm takes one step"},
        {"{\"dataset\": \"set\", \"attack\": {\"adaptive\": \"bpda\"}}", "adaptive: the adaptive"},
        {"{\"dataset\": \"set\", \"attack\": {\"attack\": \"pgd\", \"eot_qualities\": [50]}}",
         "eot_qualities: only with adaptive=eot"},
        {"{\"dataset\": \"set\", \"attack\": {\"attack\": \"pgd\", \"adaptive\": \"eot\", "
         "\"eot_qualities\": [50, 0]}}", "eot_qualities: '0'"},
        {"{\"dataset\": \"set\", \"attack\": {\"attack\": \"pgd\", \"norm\": \"l2\"}}",
         "attack: unknown field 'norm'"},
    };
    int before = count_jobs_dir(jobs_dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char msg[512];
        long st = post_eval(port, bad[i].body, NULL, msg, sizeof msg);
        CHECK(st == 400 && strstr(msg, bad[i].msg), "%s: 400 '%s' (got %ld '%s')", bad[i].body,
              bad[i].msg, st, msg);
    }
    CHECK(count_jobs_dir(jobs_dir) == before, "refused requests leave no job behind");
    /* ids are checked before the file system is touched */
    sh_resp r;
    sh_http(port, "GET", "/jobs/..%2f..%2fetc", NULL, NULL, 0, &r);
    CHECK(r.status == 404, "GET /jobs/../../etc: 404 (%ld)", r.status);
    sh_resp_free(&r);
    sh_http(port, "GET", "/jobs/%ff%fe", NULL, NULL, 0, &r);
    CHECK(r.status == 404 && strstr((char *)r.body, "no such job: '?\?'"),
          "GET /jobs/%%ff%%fe: 404 with the bytes shown as ? (%ld %s)", r.status, (char *)r.body);
    sh_resp_free(&r);
    sh_http(port, "GET", "/jobs/0123456789ABCDEF", NULL, NULL, 0, &r);
    CHECK(r.status == 404, "upper-case id: 404");
    sh_resp_free(&r);
    sh_http(port, "GET", "/jobs/0123456789abcdef/result", NULL, NULL, 0, &r);
    CHECK(r.status == 404, "unknown job: 404");
    sh_resp_free(&r);
    sh_http(port, "PUT", "/jobs", NULL, NULL, 0, &r);
    char allow[64];
    CHECK(r.status == 405 && sh_header(&r, "Allow", allow, sizeof allow) &&
              strcmp(allow, "GET, HEAD") == 0,
          "PUT /jobs: 405 Allow: GET, HEAD");
    sh_resp_free(&r);
    sh_http(port, "GET", "/evaluate", NULL, NULL, 0, &r);
    CHECK(r.status == 405, "GET /evaluate: 405");
    sh_resp_free(&r);
    const char *xml[] = {"Content-Type: application/xml", NULL};
    sh_http(port, "POST", "/evaluate", xml, "<a/>", 4, &r);
    CHECK(r.status == 415, "POST /evaluate application/xml: 415");
    sh_resp_free(&r);
}

/* A multipart POST of several images, labels and text fields. */
static long post_upload(int port, const char *const *names, const char *const *paths, int n,
                        const char *labels, const char *eps, const char *seed, char *id)
{
    CURL *c = curl_easy_init();
    curl_mime *m = curl_mime_init(c);
    for (int i = 0; i < n; i++) {
        curl_mimepart *p = curl_mime_addpart(m);
        curl_mime_name(p, "image");
        curl_mime_filedata(p, paths[i]);
        curl_mime_filename(p, names[i]);
    }
    const char *tf[3][2] = {{"labels", labels}, {"eps", eps}, {"seed", seed}};
    for (int i = 0; i < 3; i++)
        if (tf[i][1]) {
            curl_mimepart *p = curl_mime_addpart(m);
            curl_mime_name(p, tf[i][0]);
            curl_mime_data(p, tf[i][1], CURL_ZERO_TERMINATED);
        }
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/evaluate", port);
    FILE *out = tmpfile();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    char body[1024] = "";
    rewind(out);
    size_t got = fread(body, 1, sizeof body - 1, out);
    body[got] = '\0';
    fclose(out);
    json_t *j = json_loads(body, 0, NULL);
    snprintf(id, 17, "%s", status == 202 ? sh_jstr(j, "id") : "");
    if (status != 202)
        fprintf(stderr, "  upload: %ld %s\n", status, body);
    json_decref(j);
    curl_mime_free(m);
    curl_easy_cleanup(c);
    return status;
}

static void test_upload(int port)
{
    /* three images with labels, uploaded in an order that is not the sorted one */
    const char *names[] = {"zeta.ppm", "alpha.png", "mid.jpg"};
    const char *sorted[] = {"alpha.png", "mid.jpg", "zeta.ppm"};
    char paths[3][4400];
    const char *pp[3];
    for (int i = 0; i < 3; i++) {
        img_rgb im;
        sh_test_image(&im, 60 + i, 52, (uint64_t)(40 + i));
        tmp_path(paths[i], sizeof paths[i], names[i]);
        write_image(paths[i], &im);
        img_free(&im);
        pp[i] = paths[i];
    }
    char id[17];
    long st = post_upload(port, names, pp, 3, "zeta.ppm\t4\nalpha.png\t0\nmid.jpg\t13\n", "2,3",
                          "7", id);
    CHECK(st == 202, "upload: 202 (%ld)", st);
    json_t *j = sh_wait_job(port, id, 30);
    CHECK(strcmp(sh_jstr(j, "status"), "done") == 0 && sh_jint(j, "total") == 3 &&
              json_is_true(json_object_get(j, "upload")) && sh_jint(j, "seed") == 7,
          "upload: done, 3 images, seed 7");
    json_decref(j);
    /* the same files, in sorted order, through the pipeline here */
    char dir[4400];
    tmp_path(dir, sizeof dir, "");
    char *files[3];
    int truth[3] = {0, 13, 4};
    for (int i = 0; i < 3; i++)
        files[i] = (char *)sorted[i];
    exp_params p = {.n_eps = 2, .eps = {2, 3}, .quality = 75};
    xrow *x = expected(dir, files, truth, 3, &p, 7);
    char path[96];
    long code;
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    json_t *res = get_json(port, path, &code);
    check_table("upload", res, x, 3, &p, 1);
    json_decref(res);
    char *rows = get_text(port, id, "/rows", NULL, 0);
    check_rows("upload", rows, x, 3, &p);
    free(rows);
    free(x);
    st = post_upload(port, names, pp, 3, "zeta.ppm\t4\n", NULL, NULL, id);
    CHECK(st == 400, "upload with a label missing: 400");
    const char *dup[] = {"same.png", "same.png"};
    st = post_upload(port, dup, pp, 2, NULL, NULL, NULL, id);
    CHECK(st == 400, "upload of two files of one name: 400");
    tmp_path(paths[0], sizeof paths[0], "notes.txt");
    tu_write_file(paths[0], "hello", 5);
    const char *txt[] = {"notes.txt"};
    st = post_upload(port, txt, pp, 1, NULL, NULL, NULL, id);
    CHECK(st == 400, "upload of a text file: 400");
}

/* A long job in the background: interactive requests, progress, cancel. */
static void test_running(int port)
{
    char id[17], id2[17], msg[512];
    CHECK(post_eval(port, "{\"dataset\": \"big\", \"eps\": [1,2,3,4]}", id, msg, sizeof msg) ==
              202,
          "big: 202 (%s)", msg);
    CHECK(post_eval(port, "{\"dataset\": \"set\"}", id2, msg, sizeof msg) == 202,
          "a second job: 202 (%s)", msg);
    char path[64], path2[64];
    snprintf(path, sizeof path, "/jobs/%s", id);
    snprintf(path2, sizeof path2, "/jobs/%s", id2);
    long code;
    json_t *st = NULL;
    double end = sh_now() + 30;
    do {
        json_decref(st);
        usleep(10000);
        st = get_json(port, path, &code);
    } while (sh_now() < end && !(strcmp(sh_jstr(st, "status"), "running") == 0 && sh_jint(st, "done") > 0));
    CHECK(strcmp(sh_jstr(st, "status"), "running") == 0, "big: running");
    json_decref(st);
    json_t *st2 = get_json(port, path2, &code);
    CHECK(strcmp(sh_jstr(st2, "status"), "queued") == 0 && sh_jint(st2, "done") == 0 &&
              json_is_null(json_object_get(st2, "eta_s")),
          "the second job waits: queued (one job runs at a time)");
    json_decref(st2);

    /* interactive requests go between the job's batches */
    img_rgb im;
    sh_test_image(&im, 64, 48, 77);
    uint8_t *png;
    size_t len;
    char err[ADJ_ERRLEN];
    img_encode_png(&im, &png, &len, err, sizeof err);
    img_free(&im);
    double worst = 0;
    for (int i = 0; i < 10; i++) {
        const char *h[] = {"Content-Type: image/png", NULL};
        sh_resp r;
        double t0 = sh_now();
        sh_http(port, "POST", "/classify", h, png, len, &r);
        double dt = sh_now() - t0;
        worst = fmax(worst, dt);
        CHECK(r.status == 200, "/classify during a job: 200");
        sh_resp_free(&r);
    }
    free(png);
    st = get_json(port, path, &code);
    fprintf(stderr, "  /classify while a job runs: slowest %.1f ms; job at %ld/%ld, batch %ld, "
                    "%.1f images/s, ETA %.1f s\n",
            worst * 1e3, sh_jint(st, "done"), sh_jint(st, "total"), sh_jint(st, "batch"),
            sh_jnum(st, "images_per_s"), sh_jnum(st, "eta_s"));
    /* no timed assertion (the machine is shared): the answers came while the
     * job still ran, so they went between its batches, not after it */
    CHECK(sh_jint(st, "done") < sh_jint(st, "total"),
          "/classify answered while the job ran (%ld of %ld done; slowest %.3f s)", sh_jint(st, "done"),
          sh_jint(st, "total"), worst);
    CHECK(strcmp(sh_jstr(st, "status"), "running") == 0 && sh_jnum(st, "images_per_s") > 0 &&
              sh_jnum(st, "eta_s") > 0 && sh_jint(st, "batch") >= 1,
          "a running job reports images_per_s, eta_s and its batch");
    json_decref(st);

    /* cancel the queued one, then the running one */
    sh_resp r;
    sh_http(port, "DELETE", path2, NULL, NULL, 0, &r);
    st2 = sh_json(&r);
    CHECK(r.status == 200 && strcmp(sh_jstr(st2, "status"), "canceled") == 0 && sh_jint(st2, "done") == 0,
          "DELETE a queued job: canceled");
    json_decref(st2);
    sh_resp_free(&r);
    sh_http(port, "DELETE", path, NULL, NULL, 0, &r);
    st = sh_json(&r);
    long done = sh_jint(st, "done");
    CHECK(r.status == 200 && strcmp(sh_jstr(st, "status"), "canceled") == 0 && done < BIG_N,
          "DELETE a running job: canceled at %ld of %d", done, BIG_N);
    json_decref(st);
    sh_resp_free(&r);
    usleep(400000);
    st = get_json(port, path, &code);
    CHECK(strcmp(sh_jstr(st, "status"), "canceled") == 0 && sh_jint(st, "done") == done,
          "a canceled job stays canceled and writes no more rows (%ld, then %ld)", done,
          sh_jint(st, "done"));
    json_decref(st);
    char *rows = get_text(port, id, "/rows", NULL, 0);
    CHECK(rows && count(rows, "\n") == done + 1, "canceled job: rows.csv has its %ld rows", done);
    free(rows);
    sh_http(port, "DELETE", path, NULL, NULL, 0, &r);
    CHECK(r.status == 200, "DELETE again: 200, nothing changes");
    sh_resp_free(&r);
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    json_t *res = get_json(port, path, &code);
    CHECK(code == 200 && json_is_false(json_object_get(res, "complete")) &&
              sh_jint(res, "n") == done,
          "a partial job's result: complete false, n = rows so far");
    json_decref(res);
}

/* ---------------------------------------------------------------- restarts */

static int start_daemon(sh_daemon *d, const char *name, const char *jobs_dir, const char *batch)
{
    const char *args[] = {"--config", EMPTY_CONF, "--model", SPEC, "--weights", WEIGHTS,
                          "--data-root", DATA, "--jobs-dir", jobs_dir, "--job-batch", batch,
                          NULL};
    return sh_start(d, name, args, 60);
}

/* Polls until the job's done count reaches at least `want`; its last state. */
static long wait_done_at_least(int port, const char *id, long want, double timeout_s,
                               char *status, size_t stsz)
{
    char path[64];
    snprintf(path, sizeof path, "/jobs/%s", id);
    double end = sh_now() + timeout_s;
    long done = -1;
    while (sh_now() < end) {
        long code;
        json_t *j = get_json(port, path, &code);
        done = sh_jint(j, "done");
        snprintf(status, stsz, "%s", sh_jstr(j, "status"));
        json_decref(j);
        if (done >= want || (strcmp(status, "running") && strcmp(status, "queued")))
            break;
        usleep(2000);
    }
    return done;
}

static void append_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_kill_resume(const xrow *x_big, const exp_params *pb, const json_t *ref_table)
{
    char jobs[4400];
    tmp_path(jobs, sizeof jobs, "jobs-kill");
    sh_daemon d;
    if (start_daemon(&d, "kill", jobs, "4")) {
        CHECK(0, "the kill daemon starts");
        return;
    }
    char id[17], msg[512];
    CHECK(post_eval(d.port, "{\"dataset\": \"big\", \"eps\": [1,2,3,4]}", id, msg,
                    sizeof msg) == 202,
          "kill: 202 (%s)", msg);
    char rows_path[4500];
    snprintf(rows_path, sizeof rows_path, "%s/%s/rows.csv", jobs, id);
    /* garbage after the last good row, then a restart, several times over */
    static const char *const garbage[] = {
        "img_999999.jpg,3,1,0.5",                      /* half-written: no line feed */
        "img_999999.jpg,3\n",                          /* too few fields */
        NULL,                                          /* a good-looking row of the wrong file */
        NULL,                                          /* a probability that does not parse */
        NULL,                                          /* just killed, nothing added */
    };
    long last = 0;
    for (int round = 0; round < 5; round++) {
        char st[32];
        long done = wait_done_at_least(d.port, id, last + 8, 30, st, sizeof st);
        CHECK(strcmp(st, "running") == 0 && done < BIG_N,
              "kill round %d: the job is still running when killed (%s, %ld of %d)", round, st,
              done, BIG_N);
        int rc = sh_stop(&d, SIGKILL, 10);
        CHECK(rc == 1000 + SIGKILL, "kill round %d: SIGKILL", round);
        size_t len = 0;
        char *text = (char *)tu_read_file(rows_path, &len);
        int lines = text ? count(text, "\n") : 0;
        CHECK(lines >= 1 + (int)last, "kill round %d: rows.csv kept its %d rows", round, lines - 1);
        char line[1024];
        const char *add = garbage[round];
        if (round == 2 || round == 3) {
            /* the first row again: a complete row, but of the wrong file; or of
             * the right next file with a probability that does not parse */
            const char *l0 = strchr(text, '\n') + 1, *l1 = strchr(l0, '\n');
            const char *rest = strchr(strchr(l0, ',') + 1, ','); /* ",label_x,..." */
            if (round == 2)
                snprintf(line, sizeof line, "%.*s\n", (int)(l1 - l0), l0);
            else
                snprintf(line, sizeof line, "%s,%d%.*s\n", BIG_FILES[lines - 1],
                         BIG_TRUTH[lines - 1], (int)(l1 - rest), rest);
            if (round == 3) {
                char *comma = strchr(strchr(strchr(line, ',') + 1, ',') + 1, ',');
                memcpy(comma + 1, "0.x", 3);
            }
            add = line;
        }
        if (add)
            append_file(rows_path, add);
        free(text);
        last = lines - 1;
        /* another --job-batch: the job keeps its own chunk grid */
        if (start_daemon(&d, "kill", jobs, round % 2 ? "4" : "0")) {
            CHECK(0, "the kill daemon restarts");
            return;
        }
        char *log = sh_log(&d);
        CHECK(!add || (log && strstr(log, "cut off")),
              "kill round %d: the bad tail of rows.csv is found and cut off", round);
        free(log);
    }
    json_t *st = sh_wait_job(d.port, id, 240);
    CHECK(strcmp(sh_jstr(st, "status"), "done") == 0 && sh_jint(st, "done") == BIG_N,
          "after 5 kills the job finishes: %s %ld/%d", sh_jstr(st, "status"), sh_jint(st, "done"), BIG_N);
    json_decref(st);
    char *rows = get_text(d.port, id, "/rows", NULL, 0);
    check_rows("killed and resumed", rows, x_big, BIG_N, pb);
    free(rows);
    char path[96];
    long code;
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    json_t *res = get_json(d.port, path, &code);
    check_table("killed and resumed", res, x_big, BIG_N, pb, 1);
    CHECK(ref_table && json_equal(json_object_get(res, "table"), (json_t *)ref_table),
          "killed and resumed: the table equals the uninterrupted run's");
    json_decref(res);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "kill daemon: clean stop");

    /* a done job survives a restart as it is */
    if (start_daemon(&d, "kill", jobs, "0") == 0) {
        res = get_json(d.port, path, &code);
        CHECK(code == 200 && json_is_true(json_object_get(res, "complete")) &&
                  json_equal(json_object_get(res, "table"), (json_t *)ref_table),
              "after another restart the done job's result is the same");
        json_decref(res);
        sh_stop(&d, SIGTERM, 30);
    }
}

/*
 * A PGD job end to end: its request and state show the attack, its rows
 * (norm columns included) equal the pipeline's for PGD, killed and
 * restarted it resumes from its rows, and its table carries the attack's
 * fields, the norms and the threat model.
 */
static void test_pgd_job(const xrow *x_pgd, const exp_params *pp)
{
    char jobs[4400];
    tmp_path(jobs, sizeof jobs, "jobs-pgd");
    sh_daemon d;
    if (start_daemon(&d, "pgd", jobs, "4")) {
        CHECK(0, "the pgd daemon starts");
        return;
    }
    char id[17], msg[512], path[96];
    CHECK(post_eval(d.port, "{\"dataset\": \"big\", \"eps\": [3], \"attack\": {\"attack\": "
                            "\"pgd\", \"steps\": 2, \"step_size\": 2}}",
                    id, msg, sizeof msg) == 202,
          "pgd: 202 (%s)", msg);
    char st[32];
    long done = wait_done_at_least(d.port, id, 8, 60, st, sizeof st);
    CHECK(!strcmp(st, "running") && done >= 8 && done < BIG_N, "pgd: running when killed (%s, %ld of %d)",
          st, done, BIG_N);
    CHECK(sh_stop(&d, SIGKILL, 10) == 1000 + SIGKILL, "pgd: killed at %ld (%s)", done, st);
    if (start_daemon(&d, "pgd", jobs, "4")) {
        CHECK(0, "the pgd daemon restarts");
        return;
    }
    json_t *js = sh_wait_job(d.port, id, 120);
    json_t *a = json_object_get(js, "attack");
    CHECK(!strcmp(sh_jstr(js, "status"), "done") && !strcmp(sh_jstr(a, "attack"), "pgd") &&
              sh_jint(a, "steps") == 2 && sh_jint(a, "step_size") == 2 &&
              !strcmp(sh_jstr(a, "adaptive"), "none") &&
              !strncmp(sh_jstr(js, "threat_model"), "non-adaptive", 12),
          "pgd: GET /jobs/{id} shows the attack after the restart (%s)", sh_jstr(js, "status"));
    json_decref(js);
    char *rows = get_text(d.port, id, "/rows", NULL, 0);
    check_rows("pgd, killed and resumed", rows, x_pgd, BIG_N, pp);
    free(rows);
    long code;
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    json_t *res = get_json(d.port, path, &code);
    check_table("pgd", res, x_pgd, BIG_N, pp, 1);
    CHECK(!strcmp(sh_jstr(json_object_get(res, "attack"), "attack"), "pgd") &&
              !strncmp(sh_jstr(res, "threat_model"), "non-adaptive", 12),
          "pgd: the result names the attack and the threat model");
    json_t *table = json_object_get(res, "table"), *row;
    size_t t;
    json_array_foreach(table, t, row) {
        int e = t < 2 ? -1 : (int)(t - 2) / 3, linf = 0;
        double l2 = 0;
        for (int i = 0; e >= 0 && i < BIG_N; i++) {
            linf = x_pgd[i].norms[e].linf > linf ? x_pgd[i].norms[e].linf : linf;
            l2 += x_pgd[i].norms[e].l2 / BIG_N;
        }
        CHECK(!strcmp(sh_jstr(row, "attack"), "pgd") && sh_jint(row, "steps") == 2 &&
                  (e < 0 ? !json_object_get(row, "linf")
                         : sh_jint(row, "linf") == linf && linf <= pp->eps[e] &&
                               fabs(sh_jnum(row, "l2") - l2) < 1e-6 * l2),
              "pgd: table row %s has the attack and the norms (linf %ld, l2 %g; want %d, %g)",
              sh_jstr(row, "transform"), sh_jint(row, "linf"), sh_jnum(row, "l2"), linf, l2);
    }
    json_decref(res);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "pgd daemon: clean stop");
}

/* SIGTERM with a job running: it stops between batches and resumes later. */
static void test_sigterm_resume(const xrow *x_big, const exp_params *pb)
{
    char jobs[4400];
    tmp_path(jobs, sizeof jobs, "jobs-term");
    sh_daemon d;
    if (start_daemon(&d, "term", jobs, "4")) {
        CHECK(0, "the term daemon starts");
        return;
    }
    char id[17], msg[512], st[32];
    post_eval(d.port, "{\"dataset\": \"big\", \"eps\": [1,2,3,4]}", id, msg, sizeof msg);
    long done = wait_done_at_least(d.port, id, 20, 30, st, sizeof st);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0 && done < BIG_N, "SIGTERM during a job: exit 0");
    if (start_daemon(&d, "term", jobs, "0")) {
        CHECK(0, "the term daemon restarts");
        return;
    }
    json_t *j = sh_wait_job(d.port, id, 240);
    CHECK(strcmp(sh_jstr(j, "status"), "done") == 0, "after SIGTERM the job resumes and finishes");
    json_decref(j);
    char *rows = get_text(d.port, id, "/rows", NULL, 0);
    check_rows("stopped with SIGTERM and resumed", rows, x_big, BIG_N, pb);
    free(rows);
    sh_stop(&d, SIGTERM, 30);
}

/* A second daemon on a jobs folder in use serves no jobs (and runs none twice). */
static void test_second_daemon(const char *jobs)
{
    sh_daemon d;
    if (start_daemon(&d, "second", jobs, "4")) {
        CHECK(0, "a second daemon on the same --jobs-dir starts");
        return;
    }
    char msg[512];
    long st = post_eval(d.port, "{\"dataset\": \"set\"}", NULL, msg, sizeof msg);
    CHECK(st == 503 && strstr(msg, "is in use by another advjpgd (pid "),
          "second daemon on the jobs folder: POST /evaluate 503 naming the other (%ld '%s')", st,
          msg);
    sh_resp r;
    sh_http(d.port, "GET", "/jobs", NULL, NULL, 0, &r);
    CHECK(r.status == 503, "second daemon on the jobs folder: GET /jobs 503");
    sh_resp_free(&r);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "second daemon: clean stop");
}

static void test_no_data_root(void)
{
    char jobs[4400];
    tmp_path(jobs, sizeof jobs, "jobs-nodata");
    sh_daemon d;
    const char *args[] = {"--config", EMPTY_CONF, "--model", SPEC, "--weights", WEIGHTS,
                          "--jobs-dir", jobs, NULL};
    if (sh_start(&d, "nodata", args, 60)) {
        CHECK(0, "the daemon without --data-root starts");
        return;
    }
    char msg[512];
    long st = post_eval(d.port, "{\"dataset\": \"set\"}", NULL, msg, sizeof msg);
    CHECK(st == 400 && strcmp(msg, "server-side datasets are disabled (start advjpgd with "
                                    "--data-root)") == 0,
          "no --data-root: 400 '%s'", msg);
    CHECK(access(jobs, F_OK) != 0, "no --data-root: no jobs folder made for a refused request");
    sh_stop(&d, SIGTERM, 30);
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    (void)argc;
    if (!sh_program()) {
        fprintf(stderr, "test_evaluate: ADVJPGD is not set (tests/meson.build sets it)\n");
        return 1;
    }
    double t_start = sh_now();
    test_stats();

    snprintf(TMP, sizeof TMP, "%s", tu_tmpdir());
    sh_init(TMP);
    tmp_path(SPEC, sizeof SPEC, "evalnet.json");
    tmp_path(WEIGHTS, sizeof WEIGHTS, "evalnet.weights");
    tmp_path(EMPTY_CONF, sizeof EMPTY_CONF, "empty.conf");
    tmp_path(DATA, sizeof DATA, "data");
    model_spec spec;
    char err[ADJ_ERRLEN];
    if (tu_write_file(SPEC, EVAL_SPEC, strlen(EVAL_SPEC)) ||
        model_spec_parse(EVAL_SPEC, strlen(EVAL_SPEC), &spec, err, sizeof err) ||
        tu_write_random_weights(&spec, WEIGHTS, 42) || tu_write_file(EMPTY_CONF, "", 0) ||
        model_load(&spec, WEIGHTS, &M, err, sizeof err) || net_ctx_new(M, 16, &CTX, err, sizeof err)) {
        fprintf(stderr, "test_evaluate: setup failed: %s\n", err);
        return 1;
    }
    make_data();
    xrow *x_set = expected(SET_DIR, SET_FILES, SET_TRUTH, SET_N, &P3, 1);
    const exp_params pb = {.n_eps = 4, .eps = {1, 2, 3, 4}, .quality = 75};
    xrow *x_big = expected(BIG_DIR, BIG_FILES, BIG_TRUTH, BIG_N, &pb, 1);

    char jobs[4400];
    tmp_path(jobs, sizeof jobs, "jobs-main");
    sh_daemon d;
    json_t *ref_table = NULL;
    if (start_daemon(&d, "main", jobs, "4") == 0) {
        test_table(d.port, x_set);
        test_subsets(d.port);
        test_labels(d.port);
        test_skipped(d.port);
        test_refused(d.port, jobs);
        test_upload(d.port);
        test_running(d.port);
        test_filters(d.port);
        test_delete(d.port, jobs);
        test_second_daemon(jobs);
        /* the uninterrupted reference run of the kill test's job */
        char id[17], msg[512];
        post_eval(d.port, "{\"dataset\": \"big\", \"eps\": [1,2,3,4]}", id, msg, sizeof msg);
        json_t *st = sh_wait_job(d.port, id, 240);
        json_decref(st);
        char path[96];
        long code;
        snprintf(path, sizeof path, "/jobs/%s/result", id);
        json_t *res = get_json(d.port, path, &code);
        check_table("big, uninterrupted", res, x_big, BIG_N, &pb, 1);
        ref_table = json_incref(json_object_get(res, "table"));
        json_decref(res);
        CHECK(sh_stop(&d, SIGTERM, 30) == 0, "main daemon: clean stop");
    } else {
        CHECK(0, "the main daemon starts");
    }
    test_kill_resume(x_big, &pb, ref_table);
    const exp_params pp = {.n_eps = 1, .eps = {3}, .quality = 75,
                           .attack = {.kind = EXP_PGD, .steps = 2, .step_size = 2}};
    xrow *x_pgd = expected(BIG_DIR, BIG_FILES, BIG_TRUTH, BIG_N, &pp, 1);
    test_pgd_job(x_pgd, &pp);
    free(x_pgd);
    test_sigterm_resume(x_big, &pb);
    test_no_data_root();
    json_decref(ref_table);
    free(x_set);
    free(x_big);
    net_ctx_free(CTX);
    model_free(M);
    fprintf(stderr, "test_evaluate: %.1f s\n", sh_now() - t_start);
    return tu_done();
}
