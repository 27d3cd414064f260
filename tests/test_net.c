/* The whole engine on a small OverFeat-like network: gradients against finite
 * differences, the gradient of a saturated softmax against a double-precision
 * reference, batches bit for bit equal to one-at-a-time, argument checks, and
 * spec files. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "net.h"
#include "testutil.h"

static const char *SMALL_SPEC =
    "{\"name\": \"small\", \"channels\": 3, \"input_size\": 19, \"scale_size\": 22,"
    " \"mean\": 118.380948, \"std\": 61.896913, \"classes\": 7,"
    " \"layers\": ["
    "  {\"type\": \"conv\", \"out\": 6, \"kernel\": 5, \"stride\": 2, \"pad\": 0},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
    "  {\"type\": \"conv\", \"out\": 8, \"kernel\": 3, \"stride\": 1, \"pad\": 1},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"conv\", \"out\": 8, \"kernel\": [3, 3], \"pad\": [1, 1, 1, 1]},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"fc\", \"out\": 12},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"fc\", \"out\": 7}]}";

static void test_spec_parse(model_spec *out)
{
    char err[ADJ_ERRLEN];
    model_spec s;
    CHECK(model_spec_parse(SMALL_SPEC, strlen(SMALL_SPEC), &s, err, sizeof err) == 0, "%s", err);
    CHECK(s.n_layers == 10 && s.classes == 7 && s.scale_size == 22, "parsed fields");
    CHECK(s.layers[0].stride == 2 && s.layers[2].stride == 2 && s.layers[5].pad_l == 1, "layer fields");
    char *json = NULL;
    CHECK(model_spec_to_json(&s, &json) == 0, "to json");
    model_spec s2;
    CHECK(model_spec_parse(json, strlen(json), &s2, err, sizeof err) == 0, "round trip: %s", err);
    CHECK(memcmp(&s, &s2, sizeof s) == 0, "the spec survives a JSON round trip");
    free(json);
    *out = s;

    const char *bad[][2] = {
        {"{\"name\": \"x\"}", "input_size"},
        {"[1, 2]", "not a JSON object"},
        {"{\"name\":\"x\",\"input_size\":8,\"classes\":3,\"layers\":[{\"type\":\"softmax\"}]}", "unknown type"},
        {"{\"name\":\"x\",\"input_size\":8,\"classes\":3,\"layers\":[{\"type\":\"fc\",\"out\":4}]}", "4 values"},
        {"{\"name\":\"x\",\"input_size\":4,\"classes\":3,\"layers\":[{\"type\":\"conv\",\"out\":3,\"kernel\":5}]}", "larger than"},
        {"{\"name\":\"x\",\"input_size\":8,\"classes\":3,", "JSON error"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        int rc = model_spec_parse(bad[i][0], strlen(bad[i][0]), &s2, err, sizeof err);
        CHECK(rc == ADJ_ERR_FORMAT && strstr(err, bad[i][1]), "bad spec %zu: rc %d, message '%s'", i, rc, err);
    }
    CHECK(model_spec_load("no-such-model", &s2, err, sizeof err) == ADJ_ERR_IO && strstr(err, "no-such-model"),
          "unknown model name: %s", err);
}

static void test_whole_network_gradients(const model_spec *s)
{
    int checked = 0;
    /* pixels 0..255 with std 61.9: a step of 0.05 pixel levels */
    int bad = gc_input(s, 5, 8, 0.05f, 2e-2f, 60, &checked);
    CHECK(bad <= checked / 20, "whole network: %d of %d input-gradient coordinates off", bad, checked);
    bad = gc_weights(s, 6, 8, 2e-3f, 2e-2f, 40, &checked);
    CHECK(bad <= checked / 20, "whole network: %d of %d weight-gradient coordinates off", bad, checked);
}

/* A second network with every layer algorithm: im2col (5x5), Winograd (3x3
 * pad 1), a 1x1 product, max-pooling, fully connected. */
static const char *ALGO_SPEC =
    "{\"name\": \"algos\", \"channels\": 3, \"input_size\": 16, \"scale_size\": 18,"
    " \"mean\": 118.380948, \"std\": 61.896913, \"classes\": 10,"
    " \"layers\": ["
    "  {\"type\": \"conv\", \"out\": 8, \"kernel\": 5, \"stride\": 1, \"pad\": 2},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
    "  {\"type\": \"conv\", \"out\": 12, \"kernel\": 3, \"stride\": 1, \"pad\": 1},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"conv\", \"out\": 6, \"kernel\": 1, \"stride\": 1, \"pad\": 0},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"fc\", \"out\": 20},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"fc\", \"out\": 10}]}";

/* Every image's probabilities, logits, gradient and loss computed in batches
 * of 1, 3, 8 and 16 (and by contexts of different sizes) are the same bytes,
 * on engine e. */
static void test_batch_invariance(const model_spec *s, uint64_t wseed, net_engine e)
{
    char err[ADJ_ERRLEN];
    model *m;
    float *w = tu_random_weights(s, wseed);
    CHECK(model_create(s, w, model_spec_param_count(s), 0, &m, err, sizeof err) == 0, "%s", err);
    const int N = 16, K = s->classes;
    const size_t per = (size_t)s->channels * s->input_size * s->input_size;
    float *x = malloc(per * N * sizeof(float));
    uint64_t seed = wseed + 1;
    for (size_t k = 0; k < per * N; k++)
        x[k] = (float)(tu_rand(&seed) % 256);
    int labels[16];
    for (int b = 0; b < N; b++)
        labels[b] = (b * 7) % K;
    /* reference: each image alone in a context of one */
    float *p1 = malloc((size_t)N * K * sizeof(float)), *z1 = malloc((size_t)N * K * sizeof(float));
    float *g1 = malloc(per * N * sizeof(float)), l1[16];
    net_ctx *one;
    CHECK(net_ctx_new(m, 1, &one, err, sizeof err) == 0, "%s", err);
    CHECK(net_ctx_set_engine(one, e, err, sizeof err) == 0, "%s", err);
    for (int b = 0; b < N; b++) {
        net_forward(one, x + per * b, 1, p1 + (size_t)b * K);
        memcpy(z1 + (size_t)b * K, net_logits(one), K * sizeof(float));
        net_backward(one, &labels[b], g1 + per * b, NULL, &l1[b]);
    }
    const int sizes[] = {1, 3, 8, 16};
    float *p = malloc((size_t)N * K * sizeof(float)), *g = malloc(per * N * sizeof(float)), l[16];
    net_ctx *big;
    CHECK(net_ctx_new(m, 16, &big, err, sizeof err) == 0, "%s", err);
    CHECK(net_ctx_set_engine(big, e, err, sizeof err) == 0, "%s", err);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int bs = sizes[si];
        int dp = 0, dz = 0, dg = 0, dl = 0;
        for (int b0 = 0; b0 < N; b0 += bs) {
            const int n = N - b0 < bs ? N - b0 : bs;
            net_forward(big, x + per * b0, n, p + (size_t)b0 * K);
            dz += memcmp(net_logits(big), z1 + (size_t)b0 * K, (size_t)n * K * sizeof(float)) != 0;
            net_backward(big, labels + b0, g + per * b0, NULL, l + b0);
        }
        for (int b = 0; b < N; b++) {
            dp += memcmp(p + (size_t)b * K, p1 + (size_t)b * K, K * sizeof(float)) != 0;
            dg += memcmp(g + per * b, g1 + per * b, per * sizeof(float)) != 0;
            dl += memcmp(&l[b], &l1[b], sizeof(float)) != 0;
        }
        CHECK(dp == 0 && dz == 0 && dg == 0 && dl == 0,
              "%s, %s engine, batches of %d: %d images' probabilities, %d batches' logits, %d "
              "gradients, %d losses differ from the image alone",
              s->name, e == NET_ENGINE_GRAPH ? "graph" : "training", bs, dp, dz, dg, dl);
    }
    double gmax = 0;
    for (size_t k = 0; k < per * N; k++)
        gmax = fmax(gmax, fabs(g1[k]));
    CHECK(gmax > 0, "the gradient is not zero");
    free(x);
    free(p1);
    free(z1);
    free(g1);
    free(p);
    free(g);
    net_ctx_free(one);
    net_ctx_free(big);
    model_free(m); /* and w, which it owns */
}

/*
 * The default graph (Winograd for 3x3 pad-1 convolutions) against the
 * im2col graph (net_ctx_set_winograd 0: Pad + Conv, another algorithm) on n
 * images: probabilities within 1e-5, the gradient within 1e-2 of its
 * largest entry (F(4x4,3x3)'s rounding) and the same FGSM signs where it is
 * not negligible; the
 * label-smoothed loss against its definition in double from the logits
 * (the weight gradients are checked against finite differences above:
 * test_whole_network_gradients); what the engine refuses.
 */
static void test_graph_engine(const model *m, const char *what)
{
    char err[ADJ_ERRLEN];
    const model_spec *s = model_get_spec(m);
    const int N = 5, K = s->classes;
    const size_t per = (size_t)s->channels * s->input_size * s->input_size;
    float *x = malloc(per * N * sizeof(float)), *gl = malloc(per * N * sizeof(float));
    float *gg = malloc(per * N * sizeof(float)), *pl = malloc((size_t)N * K * sizeof(float));
    float *pg = malloc((size_t)N * K * sizeof(float)), ll[5], lg[5];
    uint64_t seed = 77;
    for (size_t k = 0; k < per * N; k++)
        x[k] = (float)(tu_rand(&seed) % 256);
    int labels[5] = {0, 1, 2, K - 1, K / 2};
    net_ctx *c;
    CHECK(net_ctx_new(m, N, &c, err, sizeof err) == 0, "%s", err);
    CHECK(net_ctx_engine(c) == NET_ENGINE_GRAPH, "a context starts on the graph engine");
    CHECK(net_ctx_set_winograd(c, 0) == 0, "%s: the im2col graph", what);
    net_forward(c, x, N, pl);
    net_backward(c, labels, gl, NULL, ll);
    CHECK(net_ctx_set_winograd(c, -1) == 0, "%s: the model's graph", what);
    CHECK(net_backward(c, labels, gg, NULL, NULL) == ADJ_ERR_STATE, "no forward on the new graph");
    CHECK(net_forward(c, x, N, pg) == 0 && net_backward(c, labels, gg, NULL, lg) == 0, "graph pass");
    double pe = 0, ge = 0, gm = 0, le = 0;
    size_t counted = 0, same = 0;
    for (size_t k = 0; k < (size_t)N * K; k++)
        pe = fmax(pe, fabs(pl[k] - pg[k]));
    for (size_t k = 0; k < per * N; k++)
        gm = fmax(gm, fabs(gl[k]));
    for (size_t k = 0; k < per * N; k++) {
        ge = fmax(ge, fabs(gl[k] - gg[k]));
        if (fabs(gl[k]) > 1e-3 * gm)
            counted++, same += (gl[k] > 0) == (gg[k] > 0);
    }
    for (int b = 0; b < N; b++)
        le = fmax(le, fabs(ll[b] - lg[b]) / fmax(fabs(ll[b]), 1e-30));
    CHECK(pe <= 1e-5 && gm > 0 && ge <= 1e-2 * gm && le <= 1e-5,
          "%s: default vs im2col graph: probabilities off by %g, gradient by %g of %g, losses by %g",
          what, pe, ge, gm, le);
    CHECK(counted > 0 && same >= 0.999 * counted, "%s: FGSM signs agree on %zu of %zu", what, same,
          counted);
    const size_t np = model_spec_param_count(s);
    float *gw = calloc(np, sizeof(float));
    CHECK(net_backward(c, labels, NULL, gw, NULL) == ADJ_ERR_UNSUPPORTED,
          "no weight gradients on NET_ENGINE_GRAPH");
    /* label smoothing: -sum_k q_k log p_k, q = 0.9 onehot + 0.1 / K, in double */
    CHECK(net_ctx_set_engine(c, NET_ENGINE_GRAPH_TRAINING, err, sizeof err) == 0, "%s", err);
    net_forward(c, x, N, NULL);
    CHECK(net_backward_smoothed(c, labels, 0.1, NULL, gw, lg) == 0, "graph weight gradients");
    for (int b = 0; b < N; b++) {
        const float *z = net_logits(c) + (size_t)b * K;
        double mx = z[0], sum = 0, want = 0;
        for (int k = 1; k < K; k++)
            mx = fmax(mx, z[k]);
        for (int k = 0; k < K; k++)
            sum += exp(z[k] - mx);
        for (int k = 0; k < K; k++)
            want -= (0.1 / K + (k == labels[b] ? 0.9 : 0.0)) * (z[k] - mx - log(sum));
        CHECK(fabs(lg[b] - want) <= 1e-5 * fmax(fabs(want), 1e-30), "%s: smoothed loss %d: %g, "
              "not %g", what, b, lg[b], want);
    }
    double wm = 0;
    for (size_t k = 0; k < np; k++)
        wm = fmax(wm, fabs(gw[k]));
    CHECK(wm > 0, "%s: weight gradients", what);
    free(gw);
    CHECK(net_ctx_set_winograd(c, 2) == ADJ_ERR_ARG, "the plane size chooses the tile size");
    CHECK(net_ctx_set_engine(c, NET_ENGINE_GRAPH, err, sizeof err) == 0 &&
              net_ctx_engine(c) == NET_ENGINE_GRAPH && net_forward(c, x, N, pl) == 0 &&
              !memcmp(pg, pl, (size_t)N * K * sizeof(float)),
          "%s: back without weight gradients, the same probabilities", what);
    printf("%s: default vs im2col graph: probabilities within %.3g, gradient within %.3g of %.3g, "
           "FGSM signs %zu of %zu\n", what, pe, ge, gm, same, counted);
    net_ctx_free(c);
    free(x), free(gl), free(gg), free(pl), free(pg);
}

static void test_graph_engine_spec(const model_spec *s, uint64_t wseed)
{
    char err[ADJ_ERRLEN];
    model *m;
    float *w = tu_random_weights(s, wseed);
    CHECK(model_create(s, w, model_spec_param_count(s), 0, &m, err, sizeof err) == 0, "%s", err);
    test_graph_engine(m, s->name);
    model_free(m);
}

/* The embedded model with its own weights (config/), if ADVJPG_CONFIG_DIR says where. */
static void test_graph_engine_embedded(void)
{
    const char *dir = getenv("ADVJPG_CONFIG_DIR");
    char err[ADJ_ERRLEN], path[4200];
    model_spec s;
    model *m;
    if (!dir) {
        printf("embedded model skipped: ADVJPG_CONFIG_DIR is not set\n");
        return;
    }
    snprintf(path, sizeof path, "%s/%s.weights", dir, MODEL_DEFAULT_NAME);
    CHECK(model_spec_builtin(MODEL_DEFAULT_NAME, &s, err, sizeof err) == 0 &&
              model_load(&s, path, &m, err, sizeof err) == 0, "%s", err);
    test_graph_engine(m, MODEL_DEFAULT_NAME);
    model_free(m);
}

/* ---- the gradient of a saturated softmax, against a double-precision reference */

/* conv 3x3 pad 1 (C -> F) + relu + fc (F*S*S -> K): small enough to write in double */
#define CS 10 /* input size */
#define CC 3
#define CF 4
#define CK 10
static const char *CONF_SPEC =
    "{\"name\": \"confident\", \"channels\": 3, \"input_size\": 10, \"scale_size\": 12,"
    " \"mean\": 118.380948, \"std\": 61.896913, \"classes\": 10,"
    " \"layers\": ["
    "  {\"type\": \"conv\", \"out\": 4, \"kernel\": 3, \"stride\": 1, \"pad\": 1},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"fc\", \"out\": 10}]}";

/* Logits (and, with g, the gradient of -log p_l to the pixels and the loss)
 * in double. Weights in the weight-file layout. */
static double ref_net(const model_spec *s, const float *w, const float *x, int l, int naive,
                      double *z, double *g)
{
    const float *cw = w, *cb = w + CF * CC * 9, *fw = cb + CF, *fb = fw + CK * CF * CS * CS;
    double in[CC][CS][CS], h[CF][CS][CS];
    for (int c = 0; c < CC; c++)
        for (int i = 0; i < CS; i++)
            for (int j = 0; j < CS; j++)
                in[c][i][j] = ((double)x[(c * CS + i) * CS + j] - s->mean) / s->std;
    for (int f = 0; f < CF; f++)
        for (int i = 0; i < CS; i++)
            for (int j = 0; j < CS; j++) {
                double a = cb[f];
                for (int c = 0; c < CC; c++)
                    for (int u = 0; u < 3; u++)
                        for (int v = 0; v < 3; v++) {
                            int y = i + u - 1, xx = j + v - 1;
                            if (y >= 0 && y < CS && xx >= 0 && xx < CS)
                                a += cw[((f * CC + c) * 3 + u) * 3 + v] * in[c][y][xx];
                        }
                h[f][i][j] = a > 0 ? a : 0;
            }
    for (int k = 0; k < CK; k++) {
        double a = fb[k];
        for (int f = 0; f < CF; f++)
            for (int i = 0; i < CS; i++)
                for (int j = 0; j < CS; j++)
                    a += fw[((k * CF + f) * CS + i) * CS + j] * h[f][i][j];
        z[k] = a;
    }
    if (!g)
        return 0;
    /* dz = p - onehot(l), the label's entry as -sum of the others */
    double mx = z[0];
    for (int k = 1; k < CK; k++)
        mx = fmax(mx, z[k]);
    double S = 0, dz[CK], others = 0;
    for (int k = 0; k < CK; k++)
        S += exp(z[k] - mx);
    for (int k = 0; k < CK; k++) {
        dz[k] = exp(z[k] - mx) / S;
        if (k != l)
            others += dz[k];
    }
    dz[l] = -others;
    if (!naive) { /* the same direction times S e^(mx - m2) > 0, which no gap underflows */
        double m2 = -INFINITY, sum = 0;
        for (int k = 0; k < CK; k++)
            if (k != l)
                m2 = fmax(m2, z[k]);
        for (int k = 0; k < CK; k++)
            if (k != l)
                sum += (dz[k] = exp(z[k] - m2));
        dz[l] = -sum;
    }
    if (naive) { /* what p - onehot(l) in float32 gives */
        for (int k = 0; k < CK; k++)
            dz[k] = (float)dz[k];
        dz[l] = (float)(exp(z[l] - mx) / S) - 1.0f;
    }
    double dh[CF][CS][CS], din[CC][CS][CS];
    memset(din, 0, sizeof din);
    for (int f = 0; f < CF; f++)
        for (int i = 0; i < CS; i++)
            for (int j = 0; j < CS; j++) {
                double a = 0;
                for (int k = 0; k < CK; k++)
                    a += fw[((k * CF + f) * CS + i) * CS + j] * dz[k];
                dh[f][i][j] = h[f][i][j] > 0 ? a : 0;
            }
    for (int f = 0; f < CF; f++)
        for (int i = 0; i < CS; i++)
            for (int j = 0; j < CS; j++)
                for (int c = 0; c < CC; c++)
                    for (int u = 0; u < 3; u++)
                        for (int v = 0; v < 3; v++) {
                            int y = i + u - 1, xx = j + v - 1;
                            if (y >= 0 && y < CS && xx >= 0 && xx < CS)
                                din[c][y][xx] += cw[((f * CC + c) * 3 + u) * 3 + v] * dh[f][i][j];
                        }
    for (int c = 0; c < CC; c++)
        for (int i = 0; i < CS; i++)
            for (int j = 0; j < CS; j++)
                g[(c * CS + i) * CS + j] = din[c][i][j] / s->std;
    double lse = 0;
    for (int k = 0; k < CK; k++)
        if (k != l)
            lse += exp(z[k] - z[l]);
    return log1p(lse); /* -log p_l, l the arg-max */
}

/* A model whose label logit exceeds every other by at least `margin` on
 * every test image: p_l is exactly 1.0 in float32. The input gradient's
 * signs agree with the double reference on >= 99.9% of the pixels where it
 * is not negligible, and the loss is right although far below float's epsilon. */
static void test_confident_gradient(double margin)
{
    char err[ADJ_ERRLEN];
    model_spec s;
    CHECK(model_spec_parse(CONF_SPEC, strlen(CONF_SPEC), &s, err, sizeof err) == 0, "%s", err);
    float *w = tu_random_weights(&s, 77);
    float *fb = w + CF * CC * 9 + CF + CK * CF * CS * CS;
    const int n = 6, per = CC * CS * CS, l = 3;
    float *x = malloc((size_t)n * per * sizeof(float));
    uint64_t seed = 5;
    for (int k = 0; k < n * per; k++)
        x[k] = (float)(tu_rand(&seed) % 256);
    /* the label's bias: margin above the largest other logit of any image */
    double z[CK], need = 0;
    for (int b = 0; b < n; b++) {
        ref_net(&s, w, x + (size_t)b * per, l, 0, z, NULL);
        for (int k = 0; k < CK; k++)
            if (k != l)
                need = fmax(need, z[k] - z[l]);
    }
    fb[l] += (float)(need + margin);
    model *m;
    net_ctx *ctx;
    CHECK(model_create(&s, w, model_spec_param_count(&s), 0, &m, err, sizeof err) == 0, "%s", err);
    CHECK(net_ctx_new(m, n, &ctx, err, sizeof err) == 0, "%s", err);
    float *p = malloc((size_t)n * CK * sizeof(float)), *g = malloc((size_t)n * per * sizeof(float));
    float losses[8];
    int labels[8];
    for (int b = 0; b < n; b++)
        labels[b] = l;
    CHECK(net_forward(ctx, x, n, p) == 0, "forward");
    CHECK(net_backward(ctx, labels, g, NULL, losses) == 0, "backward");
    long agree = 0, counted = 0, naive_agree = 0;
    for (int b = 0; b < n; b++) {
        double gr[CC * CS * CS], zr[CK];
        const double loss = ref_net(&s, w, x + (size_t)b * per, l, 0, zr, gr);
        CHECK(p[b * CK + l] == 1.0f, "margin %g, image %d: p_l = %.9g is saturated in float32", margin, b,
              p[b * CK + l]);
        /* below float32's smallest normal number the loss can only round to ~0 */
        CHECK(isfinite(losses[b]) &&
                  (loss < FLT_MIN ? fabs(losses[b] - loss) <= FLT_MIN
                                  : losses[b] > 0 && fabs(losses[b] - loss) <= 1e-3 * loss),
              "margin %g, image %d: loss %g, double reference %g", margin, b, losses[b], loss);
        double gmax = 0;
        for (int k = 0; k < per; k++)
            gmax = fmax(gmax, fabs(gr[k]));
        for (int k = 0; k < per; k++) {
            if (fabs(gr[k]) <= 1e-3 * gmax)
                continue;
            counted++;
            agree += (g[(size_t)b * per + k] > 0) == (gr[k] > 0) && g[(size_t)b * per + k] != 0;
        }
        /* the naive direction, sum_{k != l} p_k grad z_k without the label's
         * -grad z_l: the test's premise is that it is far off */
        double gn[CC * CS * CS];
        ref_net(&s, w, x + (size_t)b * per, l, 1, zr, gn);
        for (int k = 0; k < per; k++)
            if (fabs(gr[k]) > 1e-3 * gmax)
                naive_agree += (gn[k] > 0) == (gr[k] > 0);
    }
    CHECK(counted > 0 && agree >= 0.999 * counted,
          "margin %g: the gradient's sign agrees with the double reference on %ld of %ld pixels",
          margin, agree, counted);
    CHECK(naive_agree < 0.99 * counted,
          "margin %g: the float32 p - onehot direction agrees on %ld of %ld (the test needs it off)",
          margin, naive_agree, counted);
    fprintf(stderr, "margin %g: sign agreement %.4f (float32 p - onehot: %.4f) on %ld pixels\n", margin,
            (double)agree / counted, (double)naive_agree / counted, counted);
    free(x);
    free(p);
    free(g);
    net_ctx_free(ctx);
    model_free(m); /* and w, which it owns */
}

static void test_argument_checks(const model_spec *s)
{
    char err[ADJ_ERRLEN];
    model *m;
    float *w = tu_random_weights(s, 21);
    CHECK(model_create(s, w, model_spec_param_count(s), 0, &m, err, sizeof err) == 0, "%s", err);
    const int K = s->classes;
    const size_t per = (size_t)3 * s->input_size * s->input_size;
    float *x = malloc(per * 4 * sizeof(float)), *g = malloc(per * 4 * sizeof(float));
    uint64_t seed = 3;
    for (size_t k = 0; k < per * 4; k++)
        x[k] = (float)(tu_rand(&seed) % 256);
    int labels[9] = {0, 1, 2, 3, 6, 5, 4, 0, 1};

    /* argument and order checks */
    net_ctx *fresh;
    net_ctx_new(m, 2, &fresh, err, sizeof err);
    CHECK(net_backward(fresh, labels, g, NULL, NULL) == ADJ_ERR_STATE, "backward before forward");
    CHECK(net_forward(fresh, x, 3, NULL) == ADJ_ERR_ARG, "batch over the context's maximum");
    CHECK(net_forward(fresh, x, 0, NULL) == ADJ_ERR_ARG, "empty batch");
    net_forward(fresh, x, 1, NULL);
    int badl = K;
    CHECK(net_backward(fresh, &badl, g, NULL, NULL) == ADJ_ERR_ARG, "label out of range");
    CHECK(net_ctx_new(m, 0, &fresh, err, sizeof err) == ADJ_ERR_ARG, "max_batch 0");
    net_ctx_free(fresh);

    float q[6] = {0.1f, 0.3f, 0.05f, 0.3f, 0.2f, 0.05f};
    int idx[6];
    CHECK(net_topk(q, 6, 3, idx) == 3 && idx[0] == 1 && idx[1] == 3 && idx[2] == 4, "top-3 with a tie");
    CHECK(net_topk(q, 6, 10, idx) == 6, "k clamped to n");
    CHECK(net_argmax(q, 6) == 1, "argmax: first of a tie");

    free(x);
    free(g);
    model_free(m); /* and w, which it owns */
}

int main(void)
{
    model_spec s;
    test_spec_parse(&s);
    test_whole_network_gradients(&s);
    test_argument_checks(&s);
    test_batch_invariance(&s, 21, NET_ENGINE_GRAPH);
    model_spec a;
    char err[ADJ_ERRLEN];
    CHECK(model_spec_parse(ALGO_SPEC, strlen(ALGO_SPEC), &a, err, sizeof err) == 0, "%s", err);
    test_batch_invariance(&a, 31, NET_ENGINE_GRAPH);
    test_graph_engine_spec(&s, 23);
    test_graph_engine_spec(&a, 33);
    test_graph_engine_embedded();
    test_confident_gradient(40);
    test_confident_gradient(120);
    test_confident_gradient(1e10); /* past op_xent_grad's cap: a gap of e^(1e10) > 2^(2^30) */
    return tu_done();
}
