/*
 * test_server.c - advjpgd end to end: options and start-up failures, every
 * endpoint and its fields, the attack images against their reported
 * probabilities, /recompress against cjpeg, every error status, limits,
 * the token, dynamic batching under 16 concurrent clients, a graceful
 * SIGTERM with requests in flight, and a run with OverFeat-fast's layout.
 *
 * Needs $ADVJPGD (set by tests/meson.build) and cjpeg on PATH.
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "experiment.h"
#include "image.h"
#include "model.h"
#include "server_harness.h"
#include "testutil.h"

#define CLASSES 10
#define TOL 1e-5

static char TMP[4096];
static char SPEC[4200], WEIGHTS[4200], LABELS[4200], EMPTY_CONF[4200];

static const char TINY_SPEC[] =
    "{\"name\": \"tiny\", \"channels\": 3, \"input_size\": 32, \"scale_size\": 36,\n"
    " \"mean\": 118.380948, \"std\": 61.896913, \"classes\": 10,\n"
    " \"layers\": [\n"
    "   {\"type\": \"conv\", \"out\": 8, \"kernel\": 3, \"stride\": 1, \"pad\": 1},\n"
    "   {\"type\": \"relu\"},\n"
    "   {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},\n"
    "   {\"type\": \"conv\", \"out\": 16, \"kernel\": 3, \"stride\": 1, \"pad\": 1},\n"
    "   {\"type\": \"relu\"},\n"
    "   {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},\n"
    "   {\"type\": \"fc\", \"out\": 10}]}\n";

/* ---------------------------------------------------------------- helpers */

static void path_in_tmp(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", TMP, name);
}


static uint8_t *to_png(const img_rgb *im, size_t *len)
{
    uint8_t *out;
    char err[ADJ_ERRLEN];
    if (img_encode_png(im, &out, len, err, sizeof err)) {
        fprintf(stderr, "png: %s\n", err);
        exit(1);
    }
    return out;
}

static uint8_t *to_jpeg(const img_rgb *im, int q, size_t *len)
{
    uint8_t *out;
    char err[ADJ_ERRLEN];
    if (img_encode_jpeg(im, q, &out, len, err, sizeof err)) {
        fprintf(stderr, "jpeg: %s\n", err);
        exit(1);
    }
    return out;
}

static uint8_t *to_ppm(const img_rgb *im, size_t *len)
{
    char head[64];
    int hl = snprintf(head, sizeof head, "P6\n%d %d\n255\n", im->w, im->h);
    size_t n = (size_t)hl + (size_t)im->w * im->h * 3;
    uint8_t *out = malloc(n);
    memcpy(out, head, (size_t)hl);
    memcpy(out + hl, im->px, n - (size_t)hl);
    *len = n;
    return out;
}

static int write_ppm(const char *path, const img_rgb *im)
{
    size_t len;
    uint8_t *b = to_ppm(im, &len);
    int rc = tu_write_file(path, b, len);
    free(b);
    return rc;
}

/* A JSON request and its parsed answer; the answer is NULL unless JSON. */
static json_t *post_json(int port, const char *path, const char *ctype, const void *body,
                         size_t len, long *status)
{
    char h[128];
    snprintf(h, sizeof h, "Content-Type: %s", ctype);
    const char *headers[] = {h, NULL};
    sh_resp r;
    sh_http(port, "POST", path, headers, body, len, &r);
    *status = r.status;
    json_t *j = sh_json(&r);
    if (r.status != 200)
        fprintf(stderr, "  (POST %s: %ld %s)\n", path, r.status, r.len < 300 ? (char *)r.body : "");
    sh_resp_free(&r);
    return j;
}

/* The full distribution from a "top" list of all classes; 0 if not all there. */
static int probs_from_top(const json_t *top, double *p)
{
    for (int i = 0; i < CLASSES; i++)
        p[i] = -1;
    size_t i;
    json_t *e;
    json_array_foreach(top, i, e) {
        int idx = sh_jint(e, "index");
        if (idx < 0 || idx >= CLASSES)
            return 0;
        p[idx] = sh_jnum(e, "prob");
    }
    for (int k = 0; k < CLASSES; k++)
        if (p[k] < 0)
            return 0;
    return 1;
}

static double max_diff_top(const json_t *a, const json_t *b)
{
    double pa[CLASSES], pb[CLASSES], m = 0;
    if (!probs_from_top(a, pa) || !probs_from_top(b, pb))
        return 1e9;
    for (int i = 0; i < CLASSES; i++)
        m = fmax(m, fabs(pa[i] - pb[i]));
    return m;
}

/* Checks the common shape of a classification (label, prob, top). */
static void check_classification(const json_t *o, int top_k, const char *what)
{
    json_t *top = json_object_get(o, "top");
    CHECK(json_is_array(top) && (int)json_array_size(top) == top_k, "%s: top has %d entries",
          what, top_k);
    if (!json_is_array(top) || json_array_size(top) == 0)
        return;
    json_t *t0 = json_array_get(top, 0);
    CHECK(sh_jint(o, "label") == sh_jint(t0, "index"), "%s: label is top[0].index", what);
    CHECK(fabs(sh_jnum(o, "prob") - sh_jnum(t0, "prob")) < 1e-12, "%s: prob is top[0].prob", what);
    double prev = 2;
    int sorted = 1, named = 1;
    size_t i;
    json_t *e;
    json_array_foreach(top, i, e) {
        double p = sh_jnum(e, "prob");
        if (p > prev || p < 0 || p > 1)
            sorted = 0;
        prev = p;
        char want[32];
        snprintf(want, sizeof want, "class %ld", sh_jint(e, "index"));
        if (strcmp(sh_jstr(e, "name"), want) != 0 || strcmp(sh_jstr(e, "label"), want) != 0)
            named = 0;
    }
    CHECK(sorted, "%s: top sorted by decreasing probability in 0..1", what);
    CHECK(named, "%s: top[].name (and the deprecated top[].label) is the class name from the "
          "labels file", what);
    CHECK(strcmp(sh_jstr(o, "name"), sh_jstr(t0, "name")) == 0, "%s: name is label's class name",
          what);
}

/* Expects status and {"error": msg} (msg == NULL: any message; else a substring). */
static void expect_error(const sh_resp *r, long status, const char *msg, const char *what)
{
    json_t *j = sh_json(r);
    const char *e = json_string_value(json_object_get(j, "error"));
    CHECK(r->status == status, "%s: status %ld, want %ld (%s)", what, r->status, status,
          r->body ? (char *)r->body : "");
    CHECK(e != NULL && json_object_size(j) == 1, "%s: body is {\"error\": ...}: %s", what,
          r->body ? (char *)r->body : "");
    if (e && msg)
        CHECK(strstr(e, msg) != NULL, "%s: message '%s' contains '%s'", what, e, msg);
    char ct[128];
    CHECK(sh_header(r, "Content-Type", ct, sizeof ct) && strcmp(ct, "application/json") == 0,
          "%s: Content-Type application/json", what);
    json_decref(j);
}

static void request_error(int port, const char *method, const char *path, const char *ctype,
                          const void *body, size_t len, long status, const char *msg,
                          const char *what)
{
    char h[160];
    snprintf(h, sizeof h, "Content-Type: %s", ctype ? ctype : "image/png");
    const char *headers[] = {h, NULL};
    sh_resp r;
    sh_http(port, method, path, headers, body, len, &r);
    expect_error(&r, status, msg, what);
    sh_resp_free(&r);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* A metric's value from Prometheus text; -1 when absent. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atof(p + n + 1);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

static char *get_metrics(int port)
{
    sh_resp r;
    sh_http(port, "GET", "/metrics", NULL, NULL, 0, &r);
    char *t = r.status == 200 ? strdup((char *)r.body) : strdup("");
    sh_resp_free(&r);
    return t;
}

/*
 * A metric's value, polled for up to a second until it equals want: a
 * request is counted when libmicrohttpd reports it complete, which can be
 * just after its client has the answer.
 */
static double metric_wait(int port, const char *series, double want)
{
    double v = -1;
    for (int tries = 0; tries < 100; tries++) {
        char *m = get_metrics(port);
        v = metric(m, series);
        free(m);
        if (v == want)
            break;
        usleep(10000);
    }
    return v;
}

/* ---------------------------------------------------------------- start-up */

static void test_startup_errors(int running_port)
{
    char *out = NULL, *err = NULL;
    const char *help[] = {"--help", NULL};
    int rc = sh_run(help, 30, &out, &err);
    CHECK(rc == 0, "--help exits 0 (got %d)", rc);
    static const char *const opts[] = {
        "--config", "--listen", "--model", "--weights", "--labels", "--data-root", "--jobs-dir",
        "--token", "--token-file", "--max-batch", "--batch-delay-ms", "--queue-size",
        "--max-body", "--max-pixels", "--timeout", "--port-file", "--help", NULL};
    for (int i = 0; opts[i]; i++)
        CHECK(out && strstr(out, opts[i]), "--help lists %s", opts[i]);
    free(out);
    free(err);

    struct {
        const char *args[12];
        const char *msg;
    } bad[] = {
        {{"--bogus", NULL}, "--bogus"},
        {{"--max-batch", "0", NULL}, "--max-batch"},
        {{"--listen", "nowhere", NULL}, "--listen"},
        {{"--config", EMPTY_CONF, "--model", "overfeat-fast", NULL}, "--weights"},
        {{"--config", EMPTY_CONF, "--model", "no-such-model", NULL}, "no-such-model"},
        {{"--config", EMPTY_CONF, "--model", SPEC, "--weights", "/nonexistent/w.bin", "--listen",
          "127.0.0.1:0", NULL},
         "/nonexistent/w.bin"},
        {{"--config", "/nonexistent/advjpgd.conf", NULL}, "/nonexistent/advjpgd.conf"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = sh_run(bad[i].args, 30, &out, &err);
        CHECK(rc != 0 && rc > 0 && rc < 256, "%s: non-zero exit (got %d)", bad[i].msg, rc);
        CHECK(count_lines(err) == 1, "%s: one line on stderr: '%s'", bad[i].msg, err ? err : "");
        CHECK(err && strstr(err, bad[i].msg), "%s: the message names it: '%s'", bad[i].msg,
              err ? err : "");
        free(out);
        free(err);
    }

    /* a weight file of the wrong size */
    char small[4200];
    path_in_tmp(small, sizeof small, "small.bin");
    tu_write_file(small, "0123456789abcdef", 16);
    const char *wrong[] = {"--config", EMPTY_CONF, "--model", SPEC, "--weights", small,
                           "--listen", "127.0.0.1:0", NULL};
    rc = sh_run(wrong, 30, &out, &err);
    CHECK(rc > 0 && rc < 256, "wrong-sized weights: non-zero exit (got %d)", rc);
    CHECK(count_lines(err) == 1 && strstr(err, "small.bin"),
          "wrong-sized weights: one line naming the file: '%s'", err ? err : "");
    free(out);
    free(err);

    /* a config file with an unknown key */
    char conf[4200];
    path_in_tmp(conf, sizeof conf, "bad.conf");
    const char *text = "[server]\nlisten = 127.0.0.1:0\nbogus-key = 1\n";
    tu_write_file(conf, text, strlen(text));
    const char *badconf[] = {"--config", conf, NULL};
    rc = sh_run(badconf, 30, &out, &err);
    CHECK(rc > 0 && rc < 256 && count_lines(err) == 1 && strstr(err, "bad.conf:3") &&
              strstr(err, "bogus-key"),
          "bad config key: one line naming file:line and key (rc %d): '%s'", rc, err ? err : "");
    free(out);
    free(err);

    /* the port of a running daemon */
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", running_port);
    const char *inuse[] = {"--config", EMPTY_CONF, "--model", SPEC, "--weights", WEIGHTS,
                           "--listen", listen, NULL};
    rc = sh_run(inuse, 30, &out, &err);
    CHECK(rc > 0 && rc < 256, "port in use: non-zero exit (got %d)", rc);
    CHECK(count_lines(err) == 1 && strstr(err, "in use"), "port in use: one line: '%s'",
          err ? err : "");
    free(out);
    free(err);

    /* the embedded default model: its weight file may not exist yet; then
     * one line names it, else the daemon runs (killed after 5 s) */
    const char *def[] = {"--config", EMPTY_CONF, "--listen", "127.0.0.1:0", NULL};
    rc = sh_run(def, 5, &out, &err);
    if (rc == -1)
        CHECK(err && strstr(err, "serving " MODEL_DEFAULT_NAME), "the default model runs: '%s'",
              err ? err : "");
    else
        CHECK(rc > 0 && rc < 256 && count_lines(err) == 1 &&
                  strstr(err, MODEL_DEFAULT_NAME ".weights"),
              "default model without its weights: one line naming the file (rc %d): '%s'", rc,
              err ? err : "");
    free(out);
    free(err);
}

/* ---------------------------------------------------------------- endpoints */

static void test_service(int port)
{
    sh_resp r;
    sh_http(port, "GET", "/health", NULL, NULL, 0, &r);
    json_t *j = sh_json(&r);
    CHECK(r.status == 200 && json_object_size(j) == 1 && strcmp(sh_jstr(j, "status"), "ok") == 0,
          "/health: 200 {\"status\":\"ok\"}: %ld %s", r.status, (char *)r.body);
    json_decref(j);
    sh_resp_free(&r);
    sh_http(port, "HEAD", "/health", NULL, NULL, 0, &r);
    CHECK(r.status == 200 && r.len == 0, "HEAD /health: 200, no body");
    sh_resp_free(&r);

    model_spec spec;
    char err[ADJ_ERRLEN];
    model_spec_load(SPEC, &spec, err, sizeof err);
    sh_http(port, "GET", "/models", NULL, NULL, 0, &r);
    j = sh_json(&r);
    CHECK(r.status == 200 && json_is_object(j), "/models: 200 JSON");
    CHECK(strcmp(sh_jstr(j, "name"), "tiny") == 0, "/models: name");
    CHECK(sh_jint(j, "input_size") == 32 && sh_jint(j, "scale_size") == 36, "/models: sizes");
    CHECK(sh_jint(j, "classes") == CLASSES, "/models: classes");
    CHECK(json_integer_value(json_object_get(j, "parameters")) ==
              (json_int_t)model_spec_param_count(&spec),
          "/models: parameters %lld", (long long)json_integer_value(json_object_get(j, "parameters")));
    CHECK(strcmp(sh_jstr(j, "weights"), WEIGHTS) == 0, "/models: weight file '%s'", sh_jstr(j, "weights"));
    CHECK(strcmp(sh_jstr(j, "labels"), LABELS) == 0, "/models: labels file");
    CHECK(sh_jint(j, "max_batch") == 16, "/models: max_batch");
    CHECK(json_is_object(json_object_get(j, "spec")), "/models: the spec");
    json_decref(j);
    sh_resp_free(&r);

    /* a request is counted when the server completes it, which may be just
     * after the client has its answer (seen under ASan on a loaded machine) */
    metric_wait(port, "advjpgd_request_duration_seconds_count{endpoint=\"/models\"}", 1);
    char *m = get_metrics(port);
    static const char *const series[] = {
        "# TYPE advjpgd_requests_total counter", "# TYPE advjpgd_request_failures_total counter",
        "# TYPE advjpgd_queue_seconds histogram", "# TYPE advjpgd_compute_seconds histogram",
        "# TYPE advjpgd_batch_size histogram", "# TYPE advjpgd_in_flight_requests gauge",
        "advjpgd_requests_total{endpoint=\"/health\"}", "advjpgd_model_ready 1",
        "advjpgd_request_duration_seconds_count{endpoint=\"/models\"} 1",
        "advjpgd_build_info{version=\"", "\",model=\"tiny\"} 1", "# TYPE advjpgd_jobs gauge",
        "advjpgd_jobs{status=\"running\"} ", "# TYPE advjpgd_job_images_total counter", NULL};
    for (int i = 0; series[i]; i++)
        CHECK(strstr(m, series[i]), "/metrics has '%s'", series[i]);
    CHECK(metric(m, "advjpgd_in_flight_requests") >= 1, "/metrics: in flight counts this request");
    free(m);
}

static void test_classify(int port)
{
    img_rgb im;
    sh_test_image(&im, 48, 40, 1);
    size_t png_len, ppm_len, jpg_len;
    uint8_t *png = to_png(&im, &png_len), *ppm = to_ppm(&im, &ppm_len),
            *jpg = to_jpeg(&im, 90, &jpg_len);
    long st;

    json_t *a = post_json(port, "/classify", "image/png", png, png_len, &st);
    CHECK(st == 200, "classify PNG: 200");
    CHECK(strcmp(sh_jstr(a, "model"), "tiny") == 0 && sh_jint(a, "width") == 48 &&
              sh_jint(a, "height") == 40 && sh_jint(a, "input_size") == 32,
          "classify: model, width, height, input_size");
    check_classification(a, 5, "classify PNG");

    json_t *b = post_json(port, "/classify", "image/x-portable-pixmap", ppm, ppm_len, &st);
    CHECK(st == 200 && json_equal(a, b), "classify: PPM of the same pixels gives the same answer");
    json_decref(b);
    b = post_json(port, "/classify", "application/octet-stream", png, png_len, &st);
    CHECK(st == 200 && json_equal(a, b), "classify: application/octet-stream is sniffed");
    json_decref(b);
    sh_resp r;
    sh_http_multipart(port, "/classify", "image", png, png_len, "image/png", &r);
    b = sh_json(&r);
    CHECK(r.status == 200 && json_equal(a, b), "classify: multipart field 'image': %ld %s",
          r.status, (char *)r.body);
    json_decref(b);
    sh_resp_free(&r);
    sh_http_chunked(port, "/classify", (const char *[]){"Content-Type: image/png", NULL}, png,
                    png_len, &r);
    b = sh_json(&r);
    CHECK(r.status == 200 && json_equal(a, b), "classify: chunked upload: %ld", r.status);
    json_decref(b);
    sh_resp_free(&r);
    b = post_json(port, "/classify", "image/jpeg", jpg, jpg_len, &st);
    CHECK(st == 200, "classify JPEG: 200");
    check_classification(b, 5, "classify JPEG");
    json_decref(b);

    b = post_json(port, "/classify?top_k=10", "image/png", png, png_len, &st);
    check_classification(b, 10, "classify top_k=10");
    double p[CLASSES], sum = 0;
    if (probs_from_top(json_object_get(b, "top"), p))
        for (int i = 0; i < CLASSES; i++)
            sum += p[i];
    CHECK(fabs(sum - 1) < 1e-4, "classify: the ten probabilities sum to 1 (%g)", sum);
    json_decref(b);
    b = post_json(port, "/classify?top_k=1&resize=center", "image/png", png, png_len, &st);
    check_classification(b, 1, "classify top_k=1");
    json_decref(b);

    /* resize=none takes the model's input size only */
    img_rgb sq;
    sh_test_image(&sq, 32, 32, 2);
    size_t sq_len;
    uint8_t *sq_png = to_png(&sq, &sq_len);
    b = post_json(port, "/classify?resize=none", "image/png", sq_png, sq_len, &st);
    CHECK(st == 200 && sh_jint(b, "width") == 32, "classify resize=none: 32x32 accepted");
    json_decref(b);
    request_error(port, "POST", "/classify?resize=none", "image/png", png, png_len, 400,
                  "resize=none needs a 32x32 image", "resize=none with 48x40");

    json_decref(a);
    free(png);
    free(ppm);
    free(jpg);
    free(sq_png);
    img_free(&im);
    img_free(&sq);
}

/* Decodes the base64 PNG of one transform. */
static int image_of(const json_t *attack, const char *name, img_rgb *out, uint8_t **png,
                    size_t *png_len)
{
    const char *b64 = json_string_value(json_object_get(json_object_get(attack, "images"), name));
    if (!b64)
        return -1;
    size_t len;
    uint8_t *bytes = sh_base64_decode(b64, &len);
    char err[ADJ_ERRLEN];
    int rc = bytes ? img_decode(bytes, len, 1u << 20, out, err, sizeof err) : -1;
    if (png && bytes) {
        *png = bytes;
        *png_len = len;
    } else {
        free(bytes);
    }
    return rc;
}

static void test_attack(int port)
{
    img_rgb im;
    sh_test_image(&im, 48, 40, 3);
    size_t png_len;
    uint8_t *png = to_png(&im, &png_len);
    long st;

    json_t *a = post_json(port, "/attack?eps=1,5&quality=60&seed=7&top_k=10&images=1", "image/png",
                          png, png_len, &st);
    CHECK(st == 200, "attack: 200");
    CHECK(strcmp(sh_jstr(a, "model"), "tiny") == 0 && sh_jint(a, "quality") == 60 &&
              json_integer_value(json_object_get(a, "seed")) == 7,
          "attack: model, quality, seed");
    json_t *eps = json_object_get(a, "eps");
    CHECK(json_array_size(eps) == 2 && json_integer_value(json_array_get(eps, 0)) == 1 &&
              json_integer_value(json_array_get(eps, 1)) == 5,
          "attack: eps [1, 5]");
    static const char *const names[] = {"x", "JPG(x)", "Adv1(x)", "JPG(Adv1(x))",
                                        "JPGnoise(Adv1(x))", "Adv5(x)", "JPG(Adv5(x))",
                                        "JPGnoise(Adv5(x))"};
    static const int name_eps[] = {0, 0, 1, 1, 1, 5, 5, 5};
    json_t *results = json_object_get(a, "results");
    CHECK(json_array_size(results) == 8, "attack: 8 results");
    int label_x = sh_jint(a, "label");
    for (size_t t = 0; t < 8 && t < json_array_size(results); t++) {
        json_t *e = json_array_get(results, t);
        char what[64];
        snprintf(what, sizeof what, "attack %s", names[t]);
        CHECK(strcmp(sh_jstr(e, "transform"), names[t]) == 0, "%s: transform name '%s'", what,
              sh_jstr(e, "transform"));
        CHECK(name_eps[t] ? sh_jint(e, "eps") == name_eps[t] : !json_object_get(e, "eps"),
              "%s: eps field", what);
        check_classification(e, 10, what);
        double p[CLASSES];
        CHECK(probs_from_top(json_object_get(e, "top"), p) &&
                  fabs(sh_jnum(e, "top_label_prob") - p[label_x]) < 1e-9,
              "%s: top_label_prob is p(l_x)", what);
        if (t == 0)
            CHECK(sh_jint(e, "label") == label_x, "attack: label is l_x, x's arg-max");

        /* the PNG is the image whose probabilities were reported */
        img_rgb y = {0};
        uint8_t *ypng = NULL;
        size_t ylen = 0;
        CHECK(image_of(a, names[t], &y, &ypng, &ylen) == 0 && y.w == 32 && y.h == 32,
              "%s: images has a 32x32 PNG", what);
        if (!ypng)
            continue;
        json_t *c = post_json(port, "/classify?resize=none&top_k=10", "image/png", ypng, ylen, &st);
        double d = max_diff_top(json_object_get(c, "top"), json_object_get(e, "top"));
        CHECK(st == 200 && d < TOL, "%s: classifying its PNG again gives the same probabilities "
                                    "(max diff %g)", what, d);
        json_decref(c);
        free(ypng);
        img_free(&y);
    }

    /* Adv_eps(x) is within eps of x, and differs from it */
    img_rgb x = {0}, adv = {0};
    if (image_of(a, "x", &x, NULL, NULL) == 0 && image_of(a, "Adv5(x)", &adv, NULL, NULL) == 0) {
        int maxd = 0;
        for (size_t i = 0; i < (size_t)32 * 32 * 3; i++) {
            int dd = abs((int)x.px[i] - (int)adv.px[i]);
            if (dd > maxd)
                maxd = dd;
        }
        CHECK(maxd == 5, "Adv5(x) moves pixels by at most (and some by exactly) 5: %d", maxd);
    }
    img_free(&adv);

    /* the same request again: the same answer (seeded JPGnoise) */
    json_t *again = post_json(port, "/attack?eps=1,5&quality=60&seed=7&top_k=10&images=1",
                              "image/png", png, png_len, &st);
    CHECK(json_equal(a, again), "attack: the same request gives the same answer");
    json_decref(again);

    /* Accept: image/png with one eps: the PNG of Adv_eps(x) */
    json_t *one = post_json(port, "/attack?eps=5&quality=60&seed=7&images=1", "image/png", png,
                            png_len, &st);
    CHECK(st == 200 && json_object_size(json_object_get(one, "images")) == 5 &&
              json_array_size(json_object_get(one, "results")) == 5,
          "attack one eps: 5 results and images");
    CHECK(!json_object_get(json_array_get(json_object_get(one, "results"), 0), "eps"),
          "attack: x has no eps field");
    uint8_t *want = NULL;
    size_t want_len = 0;
    img_rgb tmp = {0};
    image_of(one, "Adv5(x)", &tmp, &want, &want_len);
    img_free(&tmp);
    sh_resp r;
    const char *hpng[] = {"Content-Type: image/png", "Accept: image/png", NULL};
    sh_http(port, "POST", "/attack?eps=5&quality=60&seed=7", hpng, png, png_len, &r);
    char ct[64];
    CHECK(r.status == 200 && sh_header(&r, "Content-Type", ct, sizeof ct) &&
              strcmp(ct, "image/png") == 0,
          "attack Accept: image/png: 200 image/png (%ld)", r.status);
    CHECK(want && r.len == want_len && memcmp(r.body, want, want_len) == 0,
          "attack Accept: image/png: the PNG of Adv5(x)");
    sh_resp_free(&r);
    free(want);
    sh_http(port, "POST", "/attack?eps=1,5", hpng, png, png_len, &r);
    expect_error(&r, 406, "exactly one eps", "attack Accept: image/png with two eps");
    sh_resp_free(&r);
    json_decref(one);

    /* without images=1: no images */
    json_t *noimg = post_json(port, "/attack", "image/png", png, png_len, &st);
    CHECK(st == 200 && !json_object_get(noimg, "images") &&
              json_array_size(json_object_get(noimg, "results")) == 11,
          "attack defaults: eps 1,5,10, no images");
    CHECK(sh_jint(noimg, "quality") == 75, "attack default quality 75");
    json_decref(noimg);

    img_free(&x);
    json_decref(a);
    free(png);
    img_free(&im);
}

/* The size of y - x computed here (independently of atk_perturbation). */
static void norms_of(const img_rgb *x, const img_rgb *y, int *linf, double *l2, double *psnr)
{
    double ss = 0;
    size_t n = (size_t)3 * x->w * x->h;
    *linf = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)y->px[i] - (int)x->px[i]);
        *linf = d > *linf ? d : *linf;
        ss += (double)d * d;
    }
    *l2 = sqrt(ss);
    *psnr = ss > 0 ? 10 * log10(255.0 * 255.0 / (ss / (double)n)) : INFINITY;
}

/* One /attack request of the menu with images; NULL unless 200. */
static json_t *attack_menu(int port, const char *query, const uint8_t *png, size_t len)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/attack?images=1&seed=7&%s", query);
    json_t *a = post_json(port, path, "image/png", png, len, &st);
    CHECK(st == 200 && a, "attack %s: 200 (%ld)", query, st);
    if (st != 200) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* Whether two answers' image name holds the same pixels. */
static int same_image(const json_t *a, const json_t *b, const char *name)
{
    img_rgb x = {0}, y = {0};
    int same = a && b && image_of(a, name, &x, NULL, NULL) == 0 &&
               image_of(b, name, &y, NULL, NULL) == 0 && x.w == y.w && x.h == y.h &&
               memcmp(x.px, y.px, (size_t)3 * x.w * x.h) == 0;
    img_free(&x);
    img_free(&y);
    return same;
}

/*
 * The attack menu through /attack: BIM, PGD and LL keep every Adv image in
 * the eps ball around x (its norms computed here from the PNGs equal the
 * reported ones), each result names its attack; PGD is reproducible for a
 * seed and another seed starts elsewhere; EOT over {75} is BPDA at 75, bit
 * for bit; and every bad combination is a 400 naming its parameter.
 */
static void test_attack_menu(int port)
{
    img_rgb im;
    sh_test_image(&im, 48, 40, 5);
    size_t png_len;
    uint8_t *png = to_png(&im, &png_len);
    static const char *const kinds[] = {"bim", "pgd", "ll"};
    for (size_t k = 0; k < 3; k++) {
        char q[128];
        snprintf(q, sizeof q, "attack=%s&steps=3&step_size=2&eps=1,5", kinds[k]);
        json_t *a = attack_menu(port, q, png, png_len);
        img_rgb x = {0};
        if (!a || image_of(a, "x", &x, NULL, NULL)) {
            json_decref(a);
            continue;
        }
        CHECK(!strcmp(sh_jstr(a, "attack"), kinds[k]) && sh_jint(a, "steps") == 3 &&
                  !strcmp(sh_jstr(a, "adaptive"), "none") &&
                  !strncmp(sh_jstr(a, "threat_model"), "non-adaptive: the attacker targets f", 36),
              "%s: the answer names the attack and the threat model", kinds[k]);
        json_t *res = json_object_get(a, "results"), *e;
        size_t t;
        json_array_foreach(res, t, e) {
            CHECK(!strcmp(sh_jstr(e, "attack"), kinds[k]) && sh_jint(e, "steps") == 3 &&
                      sh_jint(e, "step_size") == 2 && !strcmp(sh_jstr(e, "adaptive"), "none"),
                  "%s %s: the attack's fields", kinds[k], sh_jstr(e, "transform"));
            CHECK(t < 2 ? !json_object_get(e, "linf") : json_object_get(e, "l2") != NULL,
                  "%s %s: norms on the adversarial results only", kinds[k], sh_jstr(e, "transform"));
            if (t < 2 || (t - 2) % 3 != 0)
                continue;
            img_rgb adv = {0};
            int eps = sh_jint(e, "eps"), linf;
            double l2, psnr;
            if (image_of(a, sh_jstr(e, "transform"), &adv, NULL, NULL))
                continue;
            norms_of(&x, &adv, &linf, &l2, &psnr);
            CHECK(linf <= eps && linf > 0, "%s eps %d: inside the eps ball (L-inf %d)", kinds[k],
                  eps, linf);
            for (int f = 0; f < 3; f++) { /* JPG(Adv) and JPGnoise(Adv) report Adv's norms */
                json_t *g = json_array_get(res, t + (size_t)f);
                CHECK(sh_jint(g, "linf") == linf && fabs(sh_jnum(g, "l2") - l2) < 1e-7 * (1 + l2) &&
                          fabs(sh_jnum(g, "psnr") - psnr) < 1e-7 * psnr, /* 9 digits */
                      "%s %s: linf %ld l2 %g psnr %g, measured %d %g %g", kinds[k],
                      sh_jstr(g, "transform"), sh_jint(g, "linf"), sh_jnum(g, "l2"),
                      sh_jnum(g, "psnr"), linf, l2, psnr);
            }
            img_free(&adv);
        }
        img_free(&x);
        json_decref(a);
    }
    json_t *fg = attack_menu(port, "eps=5", png, png_len), *adv = json_array_get(json_object_get(fg, "results"), 2);
    CHECK(adv && !strcmp(sh_jstr(adv, "attack"), "fgsm") && !strcmp(sh_jstr(adv, "adaptive"), "none") &&
              !json_object_get(adv, "steps") && sh_jint(adv, "linf") == 5,
          "the default is the paper's FGSM, without steps");
    json_decref(fg);
    /* PGD's start: the seed's */
    json_t *p7 = attack_menu(port, "attack=pgd&steps=2&eps=5", png, png_len);
    json_t *p7b = attack_menu(port, "attack=pgd&steps=2&eps=5", png, png_len);
    json_t *p8 = attack_menu(port, "attack=pgd&steps=2&eps=5&seed=8", png, png_len);
    CHECK(same_image(p7, p7b, "Adv5(x)"), "PGD: the same seed, the same image");
    CHECK(p8 && !same_image(p7, p8, "Adv5(x)"), "PGD: another seed, another image");
    json_decref(p7);
    json_decref(p7b);
    json_decref(p8);
    /* the adaptive attacks: EOT over {75} is BPDA at q = 75 */
    json_t *bpda = attack_menu(port, "attack=bim&steps=3&adaptive=bpda&eps=5", png, png_len);
    json_t *eot = attack_menu(port, "attack=bim&steps=3&adaptive=eot&eot_qualities=75&eps=5", png,
                              png_len);
    CHECK(bpda && strstr(sh_jstr(bpda, "threat_model"), "adaptive: BPDA through JPG_q at q=75"),
          "bpda: the threat model says so");
    CHECK(eot && strstr(sh_jstr(eot, "threat_model"), "adaptive: EOT over qualities 75") &&
              json_array_size(json_object_get(eot, "eot_qualities")) == 1,
          "eot: the threat model names its qualities");
    CHECK(same_image(bpda, eot, "Adv5(x)") && same_image(bpda, eot, "JPG(Adv5(x))"),
          "EOT over {75} equals BPDA at 75, bit for bit");
    json_decref(bpda);
    json_decref(eot);
    /* refused, each with a message naming the parameter */
    static const struct {
        const char *query, *msg;
    } bad[] = {
        {"attack=cw", "attack: 'cw' is not one of fgsm, bim, pgd, ll"},
        {"attack=bim&steps=0", "steps: '0' is not an integer in 1..10000"},
        {"attack=bim&steps=10001", "steps: '10001'"},
        {"attack=bim&step_size=256", "step_size: '256'"},
        {"steps=5", "steps: attack=fgsm takes one step"},
        {"attack=fgsm&step_size=2", "step_size: attack=fgsm takes one step"},
        {"adaptive=bpda", "adaptive: the adaptive attacks are iterative"},
        {"attack=pgd&adaptive=maybe", "adaptive: 'maybe' is not one of none, bpda, eot"},
        {"attack=bim&eot_qualities=50,75", "eot_qualities: only with adaptive=eot"},
        {"attack=bim&adaptive=bpda&eot_qualities=50", "eot_qualities: only with adaptive=eot"},
        {"attack=bim&adaptive=eot&eot_qualities=50,101", "eot_qualities: '101'"},
        {"attack=bim&adaptive=eot&eot_qualities=", "eot_qualities: ''"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "/attack?%s", bad[i].query);
        request_error(port, "POST", path, "image/png", png, png_len, 400, bad[i].msg, bad[i].query);
    }
    free(png);
    img_free(&im);
}

/* cjpeg -quality q of im's pixels; new buffer. */
static uint8_t *cjpeg(const img_rgb *im, int q, size_t *len)
{
    char ppm[4200], jpg[4200], cmd[9000];
    path_in_tmp(ppm, sizeof ppm, "cjpeg-in.ppm");
    path_in_tmp(jpg, sizeof jpg, "cjpeg-out.jpg");
    if (write_ppm(ppm, im))
        return NULL;
    snprintf(cmd, sizeof cmd, "cjpeg -quality %d '%s' > '%s'", q, ppm, jpg);
    if (system(cmd) != 0)
        return NULL;
    return tu_read_file(jpg, len);
}

static void test_recompress(int port)
{
    CHECK(system("command -v cjpeg >/dev/null 2>&1") == 0, "cjpeg (libjpeg-turbo-progs) is on PATH");
    img_rgb im;
    sh_test_image(&im, 48, 40, 4);
    size_t png_len, ref_len;
    uint8_t *png = to_png(&im, &png_len);
    sh_resp r;
    const char *hpng[] = {"Content-Type: image/png", NULL};

    uint8_t *ref = cjpeg(&im, 75, &ref_len);
    sh_http(port, "POST", "/recompress", hpng, png, png_len, &r);
    char ct[64];
    CHECK(r.status == 200 && sh_header(&r, "Content-Type", ct, sizeof ct) &&
              strcmp(ct, "image/jpeg") == 0,
          "recompress: 200 image/jpeg (%ld)", r.status);
    CHECK(ref && r.len == ref_len && memcmp(r.body, ref, ref_len) == 0,
          "recompress: the bytes of cjpeg -quality 75 (%zu vs %zu bytes)", r.len, ref_len);
    sh_resp_free(&r);
    free(ref);

    /* resize=center: the prepared crop, here at quality 50 */
    long st;
    json_t *a = post_json(port, "/attack?eps=1&images=1", "image/png", png, png_len, &st);
    img_rgb crop = {0};
    CHECK(image_of(a, "x", &crop, NULL, NULL) == 0, "the crop from /attack");
    json_decref(a);
    ref = cjpeg(&crop, 50, &ref_len);
    sh_http(port, "POST", "/recompress?quality=50&resize=center", hpng, png, png_len, &r);
    CHECK(r.status == 200 && ref && r.len == ref_len && memcmp(r.body, ref, ref_len) == 0,
          "recompress resize=center: cjpeg -quality 50 of the crop");
    sh_resp_free(&r);
    free(ref);
    img_free(&crop);

    /* Accept: application/json for an input-size image: x and JPG(x) */
    img_rgb sq;
    sh_test_image(&sq, 32, 32, 5);
    size_t sq_len;
    uint8_t *sq_png = to_png(&sq, &sq_len);
    const char *hjson[] = {"Content-Type: image/png", "Accept: application/json", NULL};
    sh_http(port, "POST", "/recompress?quality=75&top_k=10", hjson, sq_png, sq_len, &r);
    json_t *j = sh_json(&r);
    CHECK(r.status == 200 && json_is_object(j), "recompress JSON: 200 (%ld)", r.status);
    json_t *res = json_object_get(j, "results");
    CHECK(json_array_size(res) == 2 &&
              strcmp(sh_jstr(json_array_get(res, 0), "transform"), "x") == 0 &&
              strcmp(sh_jstr(json_array_get(res, 1), "transform"), "JPG(x)") == 0,
          "recompress JSON: results x, JPG(x)");
    CHECK(sh_jint(j, "quality") == 75 && sh_jint(j, "width") == 32 && strcmp(sh_jstr(j, "model"), "tiny") == 0,
          "recompress JSON: quality, width, model");
    for (int t = 0; t < 2 && json_array_size(res) == 2; t++)
        check_classification(json_array_get(res, t), 10, t ? "recompress JPG(x)" : "recompress x");
    size_t jl = 0;
    uint8_t *jb = sh_base64_decode(sh_jstr(j, "jpeg"), &jl);
    ref = cjpeg(&sq, 75, &ref_len);
    CHECK(jb && ref && jl == ref_len && memcmp(jb, ref, jl) == 0 &&
              json_integer_value(json_object_get(j, "jpeg_bytes")) == (json_int_t)jl,
          "recompress JSON: jpeg (base64) is cjpeg's file, jpeg_bytes its size");
    free(jb);
    free(ref);
    json_t *c = post_json(port, "/classify?resize=none&top_k=10", "image/png", sq_png, sq_len, &st);
    double d = max_diff_top(json_object_get(c, "top"), json_object_get(json_array_get(res, 0), "top"));
    CHECK(d < TOL, "recompress JSON: x as /classify resize=none says (max diff %g)", d);
    json_decref(c);
    a = post_json(port, "/attack?eps=1&quality=75&resize=none&top_k=10", "image/png", sq_png, sq_len,
                  &st);
    d = max_diff_top(json_object_get(json_array_get(json_object_get(a, "results"), 1), "top"),
                     json_object_get(json_array_get(res, 1), "top"));
    CHECK(d < TOL, "recompress JSON: JPG(x) as /attack's JPG(x) (max diff %g)", d);
    json_decref(a);
    json_decref(j);
    sh_resp_free(&r);

    /* JSON for a photo-sized upload: the crops before and after */
    sh_http(port, "POST", "/recompress", hjson, png, png_len, &r);
    j = sh_json(&r);
    CHECK(r.status == 200 && json_array_size(json_object_get(j, "results")) == 2 &&
              sh_jint(j, "width") == 48,
          "recompress JSON of a 48x40 image: 200 with two results");
    json_decref(j);
    sh_resp_free(&r);

    free(png);
    free(sq_png);
    img_free(&im);
    img_free(&sq);
}

static void test_errors(int port)
{
    img_rgb im;
    sh_test_image(&im, 48, 40, 6);
    size_t png_len, jpg_len;
    uint8_t *png = to_png(&im, &png_len), *jpg = to_jpeg(&im, 90, &jpg_len);
    sh_resp r;

    sh_http(port, "GET", "/nope", NULL, NULL, 0, &r);
    expect_error(&r, 404, "/nope", "GET /nope");
    sh_resp_free(&r);
    request_error(port, "POST", "/classify/extra", NULL, png, png_len, 404, NULL, "POST /classify/extra");

    char allow[64];
    sh_http(port, "GET", "/classify", NULL, NULL, 0, &r);
    expect_error(&r, 405, "GET", "GET /classify");
    CHECK(sh_header(&r, "Allow", allow, sizeof allow) && strcmp(allow, "POST") == 0,
          "405 on /classify: Allow: POST");
    sh_resp_free(&r);
    sh_http(port, "POST", "/health", NULL, "x", 1, &r);
    expect_error(&r, 405, NULL, "POST /health");
    CHECK(sh_header(&r, "Allow", allow, sizeof allow) && strcmp(allow, "GET, HEAD") == 0,
          "405 on /health: Allow: GET, HEAD");
    sh_resp_free(&r);
    sh_http(port, "DELETE", "/metrics", NULL, NULL, 0, &r);
    expect_error(&r, 405, NULL, "DELETE /metrics");
    sh_resp_free(&r);

    struct {
        const char *path, *msg;
    } bad[] = {
        {"/attack?eps=0", "eps: '0' is not an integer in 1..255"},
        {"/attack?eps=1,256", "eps: '256' is not an integer in 1..255"},
        {"/attack?eps=1,abc", "eps: 'abc' is not an integer in 1..255"},
        {"/attack?eps=", "eps: '' is not an integer in 1..255"},
        {"/attack?eps=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", "eps: more than 16"},
        {"/attack?quality=0", "quality: '0' is not an integer in 1..100"},
        {"/attack?quality=101", "quality: '101' is not an integer in 1..100"},
        {"/recompress?quality=high", "quality: 'high' is not an integer in 1..100"},
        {"/classify?top_k=0", "top_k: '0' is not an integer in 1..10"},
        {"/classify?top_k=11", "top_k: '11' is not an integer in 1..10"},
        {"/classify?resize=stretch", "resize: 'stretch' is not one of center, none"},
        {"/attack?seed=-1", "seed: '-1'"},
        {"/attack?images=2", "images: '2' is not 0 or 1"},
        {"/classify?eps=1", "unknown parameter 'eps'"},
        {"/classify?topk=3", "unknown parameter 'topk'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        request_error(port, "POST", bad[i].path, "image/png", png, png_len, 400, bad[i].msg,
                      bad[i].path);

    request_error(port, "POST", "/classify", "image/jpeg", jpg, jpg_len / 2, 400, NULL,
                  "truncated JPEG");
    uint8_t garbage[600];
    memcpy(garbage, png, 100);
    for (size_t i = 100; i < sizeof garbage; i++)
        garbage[i] = (uint8_t)(i * 37);
    request_error(port, "POST", "/classify", "image/png", garbage, sizeof garbage, 400, NULL,
                  "corrupt PNG");
    request_error(port, "POST", "/classify", "image/png", "", 0, 400, "empty body", "empty body");
    request_error(port, "POST", "/classify", "text/plain", png, png_len, 415, "text/plain",
                  "Content-Type text/plain");
    request_error(port, "POST", "/classify", "application/json", "{}", 2, 415, NULL,
                  "Content-Type application/json");
    request_error(port, "POST", "/classify", "application/octet-stream", "GIF89a not really", 17,
                  415, NULL, "unknown image format");
    sh_http_multipart(port, "/classify", "picture", png, png_len, "image/png", &r);
    expect_error(&r, 400, "'image'", "multipart without an 'image' field");
    sh_resp_free(&r);

    free(png);
    free(jpg);
    img_free(&im);
}

/* ---------------------------------------------------------------- limits */

typedef struct {
    int port;
    const uint8_t *body;
    size_t len;
    const char *path;
    const char *accept; /* NULL: default */
    long status;
    char *answer;
    char retry_after[16];
    pthread_barrier_t *barrier;
} client_arg;

static void *client_main(void *p)
{
    client_arg *c = p;
    const char *headers[3] = {"Content-Type: application/octet-stream", c->accept, NULL};
    if (c->barrier)
        pthread_barrier_wait(c->barrier);
    sh_resp r;
    sh_http(c->port, "POST", c->path, headers, c->body, c->len, &r);
    c->status = r.status;
    c->answer = strdup(r.body ? (char *)r.body : "");
    if (!sh_header(&r, "Retry-After", c->retry_after, sizeof c->retry_after))
        c->retry_after[0] = '\0';
    sh_resp_free(&r);
    return NULL;
}

static void test_limits(void)
{
    /* the file's max-body applies (no command-line value) */
    char conf[4200];
    path_in_tmp(conf, sizeof conf, "limits.conf");
    const char *text = "; limits daemon\n[limits]\nmax-body = 4K\n[batching]\nqueue-size = 50\n";
    tu_write_file(conf, text, strlen(text));
    sh_daemon d;
    const char *args[] = {"--config", conf, "--model", SPEC, "--weights", WEIGHTS,
                          "--max-pixels", "1000", "--timeout", "1", "--batch-delay-ms", "3000",
                          "--queue-size", "2", NULL};
    if (sh_start(&d, "limits", args, 30)) {
        CHECK(0, "the limits daemon starts");
        return;
    }
    img_rgb big, small, wide;
    sh_test_image(&big, 64, 64, 7);   /* 12 KB as PPM */
    sh_test_image(&small, 30, 30, 8); /* 900 pixels */
    sh_test_image(&wide, 48, 40, 9);  /* 1920 pixels, one colour: a small PNG */
    memset(wide.px, 90, (size_t)48 * 40 * 3);
    size_t big_len, small_len, wide_len;
    uint8_t *big_ppm = to_ppm(&big, &big_len), *small_ppm = to_ppm(&small, &small_len),
            *wide_png = to_png(&wide, &wide_len);

    request_error(d.port, "POST", "/classify", "image/x-portable-pixmap", big_ppm, big_len, 413,
                  "4096", "413 with Content-Length");
    sh_resp r;
    sh_http_chunked(d.port, "/classify", (const char *[]){"Content-Type: image/x-portable-pixmap", NULL},
                    big_ppm, big_len, &r);
    expect_error(&r, 413, "4096", "413 for a chunked body (counted as it arrives)");
    sh_resp_free(&r);
    sh_http_multipart(d.port, "/classify", "image", big_ppm, big_len, "image/x-portable-pixmap", &r);
    expect_error(&r, 413, NULL, "413 for a multipart body");
    sh_resp_free(&r);
    request_error(d.port, "POST", "/classify", "image/png", wide_png, wide_len, 400, "limit",
                  "400 over the pixel limit");

    /* queue of 2 with a long batch delay and a 1 s deadline: two wait and
     * time out, the others are turned away at once */
    pthread_t th[5];
    client_arg ca[5];
    for (int i = 0; i < 5; i++) {
        memset(&ca[i], 0, sizeof ca[i]);
        ca[i].port = d.port;
        ca[i].body = small_ppm;
        ca[i].len = small_len;
        ca[i].path = "/classify";
        pthread_create(&th[i], NULL, client_main, &ca[i]);
        usleep(50000);
    }
    int busy = 0, timed_out = 0, retry = 0;
    for (int i = 0; i < 5; i++) {
        pthread_join(th[i], NULL);
        if (ca[i].status == 503 && strstr(ca[i].answer, "busy"))
            busy++;
        if (ca[i].status == 503 && strstr(ca[i].answer, "timed out"))
            timed_out++;
        retry += strcmp(ca[i].retry_after, "1") == 0;
        free(ca[i].answer);
    }
    CHECK(busy == 3 && timed_out == 2, "queue of 2: 3 turned away, 2 timed out (%d, %d)", busy,
          timed_out);
    CHECK(retry == 5, "503 answers carry Retry-After: 1 (%d of 5)", retry);
    CHECK(metric_wait(d.port, "advjpgd_responses_total{endpoint=\"/classify\",code=\"503\"}", 5) == 5,
          "/metrics counts the five 503s");
    char *m = get_metrics(d.port);
    CHECK(metric(m, "advjpgd_request_failures_total{endpoint=\"/classify\"}") >= 9,
          "/metrics counts the failures");
    free(m);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "limits daemon: clean stop");
    free(big_ppm);
    free(small_ppm);
    free(wide_png);
    img_free(&big);
    img_free(&small);
    img_free(&wide);
}

static void test_token(void)
{
    char tok[4200];
    path_in_tmp(tok, sizeof tok, "token");
    tu_write_file(tok, "s3cret\n", 7);
    sh_daemon d;
    const char *args[] = {"--config", EMPTY_CONF, "--model", SPEC, "--weights", WEIGHTS,
                          "--token-file", tok, NULL};
    if (sh_start(&d, "token", args, 30)) {
        CHECK(0, "the token daemon starts");
        return;
    }
    sh_resp r;
    sh_http(d.port, "GET", "/health", NULL, NULL, 0, &r);
    CHECK(r.status == 200, "token: /health needs none");
    sh_resp_free(&r);
    char www[128];
    sh_http(d.port, "GET", "/models", NULL, NULL, 0, &r);
    expect_error(&r, 401, "Bearer", "token: none given");
    CHECK(sh_header(&r, "WWW-Authenticate", www, sizeof www) && strncmp(www, "Bearer", 6) == 0,
          "401: WWW-Authenticate: Bearer");
    sh_resp_free(&r);
    sh_http(d.port, "GET", "/models", (const char *[]){"Authorization: Bearer s3cre", NULL}, NULL,
            0, &r);
    expect_error(&r, 401, "wrong", "token: wrong one");
    sh_resp_free(&r);
    sh_http(d.port, "GET", "/metrics", (const char *[]){"Authorization: Bearer s3cret!", NULL},
            NULL, 0, &r);
    expect_error(&r, 401, NULL, "token: longer one");
    sh_resp_free(&r);
    sh_http(d.port, "GET", "/models", (const char *[]){"Authorization: Bearer s3cret", NULL}, NULL,
            0, &r);
    CHECK(r.status == 200, "token: the right one: 200");
    sh_resp_free(&r);
    img_rgb im;
    sh_test_image(&im, 40, 40, 10);
    size_t len;
    uint8_t *png = to_png(&im, &len);
    request_error(d.port, "POST", "/classify", "image/png", png, len, 401, NULL,
                  "token: POST /classify without it");
    sh_http(d.port, "POST", "/classify",
            (const char *[]){"Content-Type: image/png", "Authorization: bearer s3cret", NULL}, png,
            len, &r);
    CHECK(r.status == 200, "token: POST /classify with it: 200 (%ld)", r.status);
    sh_resp_free(&r);
    free(png);
    img_free(&im);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "token daemon: clean stop");
}

/* ---------------------------------------------------------------- batching */

/* twice --max-batch, from one address: every one answered under the default
 * --per-ip-limit and --queue-size (16 refused the 17th busy connection) */
#define CLIENTS 32

/*
 * advjpgd_stage_seconds after n answered /classify requests (and nothing
 * else through the worker): every stage counted once per request, none
 * negative, and together the requests' whole durations (the stages follow
 * one another from the headers to the answer sent).
 */
static void check_stages(int port, int n)
{
    static const char *const STAGES[] = {"receive", "decode_wait", "decode", "submit",
                                         "queue",   "compute",     "resume", "answer"};
    char series[96];
    snprintf(series, sizeof series, "advjpgd_stage_seconds_count{stage=\"answer\"}");
    metric_wait(port, series, n);
    char *m = get_metrics(port);
    double sum = 0;
    int counted = 0;
    for (size_t i = 0; i < sizeof STAGES / sizeof STAGES[0]; i++) {
        snprintf(series, sizeof series, "advjpgd_stage_seconds_count{stage=\"%s\"}", STAGES[i]);
        counted += metric(m, series) == n;
        snprintf(series, sizeof series, "advjpgd_stage_seconds_sum{stage=\"%s\"}", STAGES[i]);
        double s = metric(m, series);
        CHECK(s >= 0, "/metrics: stage %s's time %g is not negative", STAGES[i], s);
        sum += s;
    }
    CHECK(counted == 8, "/metrics: each of the 8 stages counted %d times (%d are)", n, counted);
    double total = metric(m, "advjpgd_request_duration_seconds_sum{endpoint=\"/classify\"}");
    CHECK(fabs(sum - total) <= 1e-6 * n + 1e-9 * total,
          "/metrics: the stages add up to the requests' durations (%.9g s against %.9g s)", sum,
          total);
    free(m);
}

static void test_concurrency(void)
{
    sh_daemon d;
    const char *args[] = {"--config", EMPTY_CONF, "--model", SPEC, "--weights", WEIGHTS,
                          "--labels", LABELS, "--batch-delay-ms", "20", NULL};
    if (sh_start(&d, "batch", args, 30)) {
        CHECK(0, "the batching daemon starts");
        return;
    }
    img_rgb ims[CLIENTS];
    uint8_t *pngs[CLIENTS];
    size_t lens[CLIENTS];
    json_t *solo[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        sh_test_image(&ims[i], 40 + i, 36 + 2 * i, 100 + i);
        pngs[i] = to_png(&ims[i], &lens[i]);
        long st;
        solo[i] = post_json(d.port, "/classify?top_k=10", "image/png", pngs[i], lens[i], &st);
    }
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, CLIENTS);
    pthread_t th[CLIENTS];
    client_arg ca[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        memset(&ca[i], 0, sizeof ca[i]);
        ca[i].port = d.port;
        ca[i].body = pngs[i];
        ca[i].len = lens[i];
        ca[i].path = "/classify?top_k=10";
        ca[i].barrier = &bar;
        pthread_create(&th[i], NULL, client_main, &ca[i]);
    }
    int same = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        json_t *j = json_loads(ca[i].answer, 0, NULL);
        double dd = max_diff_top(json_object_get(j, "top"), json_object_get(solo[i], "top"));
        if (ca[i].status == 200 && sh_jint(j, "label") == sh_jint(solo[i], "label") &&
            sh_jint(j, "width") == sh_jint(solo[i], "width") && dd < TOL)
            same++;
        else
            fprintf(stderr, "  client %d: %ld, max diff %g\n", i, ca[i].status, dd);
        json_decref(j);
        free(ca[i].answer);
    }
    pthread_barrier_destroy(&bar);
    CHECK(same == CLIENTS, "%d concurrent clients get the one-at-a-time answers (%d)", CLIENTS,
          same);
    char *m = get_metrics(d.port);
    double one = metric(m, "advjpgd_batch_size_bucket{kind=\"forward\",le=\"1\"}");
    double all = metric(m, "advjpgd_batch_size_count{kind=\"forward\"}");
    double images = metric(m, "advjpgd_batch_size_sum{kind=\"forward\"}");
    CHECK(all > one && one >= 0, "/metrics: a batch larger than 1 (%g of %g batches of size 1)",
          one, all);
    CHECK(images == 2 * CLIENTS, "/metrics: %d images went through the worker (%g)", 2 * CLIENTS,
          images);
    double n = metric_wait(d.port, "advjpgd_requests_total{endpoint=\"/classify\"}", 2 * CLIENTS);
    CHECK(n == 2 * CLIENTS, "/metrics: requests counted (%g)", n);
    CHECK(metric(m, "advjpgd_queue_seconds_count") == 2 * CLIENTS, "/metrics: queue times");
    CHECK(metric(m, "advjpgd_compute_seconds_count{kind=\"forward\"}") == all,
          "/metrics: one compute time per batch");
    free(m);
    check_stages(d.port, 2 * CLIENTS);

    /* /attack requests with equal parameters share one pipeline run, each
     * with its own seed */
    enum { NA = 6 };
    json_t *asolo[NA];
    char paths[NA][96];
    for (int i = 0; i < NA; i++) {
        long st;
        snprintf(paths[i], sizeof paths[i], "/attack?eps=1,5&seed=%d&top_k=10", 11 + i);
        asolo[i] = post_json(d.port, paths[i], "image/png", pngs[i], lens[i], &st);
    }
    pthread_barrier_init(&bar, NULL, NA);
    for (int i = 0; i < NA; i++) {
        memset(&ca[i], 0, sizeof ca[i]);
        ca[i].port = d.port;
        ca[i].body = pngs[i];
        ca[i].len = lens[i];
        ca[i].path = paths[i];
        ca[i].barrier = &bar;
        pthread_create(&th[i], NULL, client_main, &ca[i]);
    }
    int asame = 0;
    for (int i = 0; i < NA; i++) {
        pthread_join(th[i], NULL);
        json_t *j = json_loads(ca[i].answer, 0, NULL);
        json_t *ra = json_object_get(j, "results"), *rb = json_object_get(asolo[i], "results");
        int ok = ca[i].status == 200 && json_integer_value(json_object_get(j, "seed")) == 11 + i &&
                 json_array_size(ra) == 8 && json_array_size(rb) == 8;
        for (size_t t = 0; ok && t < 8; t++)
            ok = max_diff_top(json_object_get(json_array_get(ra, t), "top"),
                              json_object_get(json_array_get(rb, t), "top")) < TOL;
        asame += ok;
        json_decref(j);
        json_decref(asolo[i]);
        free(ca[i].answer);
    }
    pthread_barrier_destroy(&bar);
    CHECK(asame == NA, "concurrent /attack answers equal the one-at-a-time ones (%d of %d)", asame, NA);
    m = get_metrics(d.port);
    double abatches = metric(m, "advjpgd_batch_size_count{kind=\"attack\"}");
    double aimages = metric(m, "advjpgd_batch_size_sum{kind=\"attack\"}");
    CHECK(aimages == 2 * NA && abatches < 2 * NA,
          "/metrics: concurrent attacks were batched (%g images in %g runs)", aimages, abatches);
    free(m);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "batching daemon: clean stop");
    for (int i = 0; i < CLIENTS; i++) {
        json_decref(solo[i]);
        free(pngs[i]);
        img_free(&ims[i]);
    }
}

static void test_sigterm(void)
{
    sh_daemon d;
    const char *args[] = {"--config", EMPTY_CONF, "--model", SPEC, "--weights", WEIGHTS,
                          "--batch-delay-ms", "5000", NULL};
    if (sh_start(&d, "term", args, 30)) {
        CHECK(0, "the SIGTERM daemon starts");
        return;
    }
    enum { N = 8 };
    img_rgb ims[N];
    uint8_t *pngs[N];
    size_t lens[N];
    pthread_t th[N];
    client_arg ca[N];
    for (int i = 0; i < N; i++) {
        sh_test_image(&ims[i], 40, 40, 200 + i);
        pngs[i] = to_png(&ims[i], &lens[i]);
        memset(&ca[i], 0, sizeof ca[i]);
        ca[i].port = d.port;
        ca[i].body = pngs[i];
        ca[i].len = lens[i];
        ca[i].path = i % 2 ? "/attack?eps=1,5&images=1" : "/classify";
        pthread_create(&th[i], NULL, client_main, &ca[i]);
    }
    /* wait until all of them are queued (the batch delay holds them) */
    double end = sh_now() + 10;
    int queued = 0;
    while (sh_now() < end) {
        char *m = get_metrics(d.port);
        queued = (int)metric(m, "advjpgd_queue_depth");
        free(m);
        if (queued == N)
            break;
        usleep(20000);
    }
    CHECK(queued == N, "%d requests queued before SIGTERM (%d)", N, queued);
    double t0 = sh_now();
    int rc = sh_stop(&d, SIGTERM, 30);
    CHECK(rc == 0, "SIGTERM with requests in flight: exit status 0 (%d)", rc);
    CHECK(sh_now() - t0 < 4, "SIGTERM: no waiting for the batch delay (%.1f s)", sh_now() - t0);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        json_t *j = json_loads(ca[i].answer, 0, NULL);
        if (ca[i].status == 200 && json_object_get(j, "label"))
            ok++;
        else
            fprintf(stderr, "  in flight %d: %ld %.200s\n", i, ca[i].status, ca[i].answer);
        json_decref(j);
        free(ca[i].answer);
        free(pngs[i]);
        img_free(&ims[i]);
    }
    CHECK(ok == N, "SIGTERM: every request in flight answered 200 (%d of %d)", ok, N);
    char *log = sh_log(&d);
    CHECK(log && strstr(log, "stopped"), "SIGTERM: the log says stopped");
    int lines = 0;
    for (const char *p = log; p && (p = strstr(p, " 200 ")); p++)
        lines++;
    CHECK(lines >= N, "one log line per request (%d lines with 200)", lines);
    free(log);
    sh_resp r;
    CHECK(sh_http(d.port, "GET", "/health", NULL, NULL, 0, &r) != 0, "after exit: port closed");
    sh_resp_free(&r);
}

/* ---------------------------------------------------------------- OverFeat */

static void test_overfeat(void)
{
    model_spec spec;
    char err[ADJ_ERRLEN], w[4200], labels[4200];
    if (model_spec_builtin("overfeat-fast", &spec, err, sizeof err)) {
        CHECK(0, "overfeat-fast spec: %s", err);
        return;
    }
    path_in_tmp(w, sizeof w, "net_weight_0");
    path_in_tmp(labels, sizeof labels, "overfeat-labels.txt");
    double t0 = sh_now();
    if (tu_write_random_weights(&spec, w, 1234)) {
        CHECK(0, "writing 584 MB of OverFeat weights");
        return;
    }
    FILE *f = fopen(labels, "w");
    for (int i = 0; i < 1000; i++)
        fprintf(f, "imagenet class %d\n", i);
    fclose(f);
    fprintf(stderr, "  overfeat weights written in %.1f s\n", sh_now() - t0);

    sh_daemon d;
    const char *args[] = {"--config", EMPTY_CONF, "--model", "overfeat-fast", "--weights", w,
                          "--labels", labels, "--max-batch", "2", NULL};
    if (sh_start(&d, "overfeat", args, 300) == 0) {
        CHECK(d.other_non_200 == 0, "overfeat: /health answered only 503 (loading) or 200");
        if (d.loading_503)
            fprintf(stderr, "  /health answered 503 with Retry-After %d times while loading\n",
                    d.loading_503);
        else
            fprintf(stderr, "  note: the model loaded before /health was first asked\n");
        sh_resp r;
        sh_http(d.port, "GET", "/models", NULL, NULL, 0, &r);
        json_t *j = sh_json(&r);
        CHECK(r.status == 200 && strcmp(sh_jstr(j, "name"), "overfeat-fast") == 0 &&
                  sh_jint(j, "input_size") == 231 && sh_jint(j, "scale_size") == 256 &&
                  sh_jint(j, "classes") == 1000 &&
                  json_integer_value(json_object_get(j, "parameters")) == 145920872 &&
                  strcmp(sh_jstr(j, "weights"), w) == 0,
              "overfeat /models: name, sizes, classes, 145,920,872 parameters, weight file");
        json_decref(j);
        sh_resp_free(&r);

        img_rgb im;
        sh_test_image(&im, 500, 375, 11);
        size_t len;
        uint8_t *jpg = to_jpeg(&im, 90, &len);
        t0 = sh_now();
        long st;
        j = post_json(d.port, "/classify", "image/jpeg", jpg, len, &st);
        fprintf(stderr, "  overfeat /classify took %.0f ms\n", (sh_now() - t0) * 1e3);
        CHECK(st == 200 && strcmp(sh_jstr(j, "model"), "overfeat-fast") == 0 &&
                  sh_jint(j, "width") == 500 && sh_jint(j, "height") == 375 &&
                  sh_jint(j, "input_size") == 231,
              "overfeat /classify: 200, model, width, height, input_size");
        json_t *top = json_object_get(j, "top");
        CHECK(json_array_size(top) == 5 && sh_jint(j, "label") == sh_jint(json_array_get(top, 0), "index") &&
                  strncmp(sh_jstr(json_array_get(top, 0), "label"), "imagenet class ", 15) == 0,
              "overfeat /classify: top 5 with names");
        json_decref(j);
        free(jpg);
        img_free(&im);
        CHECK(sh_stop(&d, SIGTERM, 60) == 0, "overfeat daemon: clean stop");
    } else {
        CHECK(0, "the OverFeat daemon starts");
    }
    unlink(w);
}

/* ---------------------------------------------------------------- main */

int main(void)
{
    if (!sh_program()) {
        fprintf(stderr, "test_server: ADVJPGD is not set (tests/meson.build sets it)\n");
        return 1;
    }
    snprintf(TMP, sizeof TMP, "%s", tu_tmpdir());
    sh_init(TMP);
    path_in_tmp(SPEC, sizeof SPEC, "tiny.json");
    path_in_tmp(WEIGHTS, sizeof WEIGHTS, "tiny.weights");
    path_in_tmp(LABELS, sizeof LABELS, "tiny.labels");
    path_in_tmp(EMPTY_CONF, sizeof EMPTY_CONF, "empty.conf");
    model_spec spec;
    char err[ADJ_ERRLEN];
    if (tu_write_file(SPEC, TINY_SPEC, strlen(TINY_SPEC)) ||
        model_spec_parse(TINY_SPEC, strlen(TINY_SPEC), &spec, err, sizeof err) ||
        tu_write_random_weights(&spec, WEIGHTS, 42) || tu_write_file(EMPTY_CONF, "", 0)) {
        fprintf(stderr, "test_server: setup failed\n");
        return 1;
    }
    FILE *f = fopen(LABELS, "w");
    for (int i = 0; i < CLASSES; i++)
        fprintf(f, "class %d\n", i);
    fclose(f);

    /* The main daemon: the config file's max-body (1K) loses against the
     * command line's. */
    char conf[4200];
    path_in_tmp(conf, sizeof conf, "main.conf");
    const char *text = "[limits]\nmax-body = 1K\n[batching]\nmax_batch = 16\n";
    tu_write_file(conf, text, strlen(text));
    sh_daemon d;
    const char *args[] = {"--config", conf, "--model", SPEC, "--weights", WEIGHTS,
                          "--labels", LABELS, "--max-body", "8M", NULL};
    if (sh_start(&d, "main", args, 30) == 0) {
        test_service(d.port);
        test_classify(d.port);
        test_attack(d.port);
        test_attack_menu(d.port);
        test_recompress(d.port);
        test_errors(d.port);
        test_startup_errors(d.port);
        CHECK(sh_stop(&d, SIGINT, 30) == 0, "main daemon: SIGINT stops it cleanly");
    } else {
        CHECK(0, "the main daemon starts");
    }
    test_limits();
    test_token();
    test_concurrency();
    test_sigterm();
    if (!getenv("ADVJPG_SKIP_OVERFEAT"))
        test_overfeat();
    return tu_done();
}
