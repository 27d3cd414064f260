/* The whole engine on a small OverFeat-like network: gradients against finite
 * differences, batched against one-at-a-time, argument checks, and spec files. */
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

static void test_batch_equals_single(const model_spec *s)
{
    char err[ADJ_ERRLEN];
    model *m;
    net_ctx *big, *one;
    float *w = tu_random_weights(s, 21);
    CHECK(model_create(s, w, model_spec_param_count(s), 0, &m, err, sizeof err) == 0, "%s", err);
    CHECK(net_ctx_new(m, 9, &big, err, sizeof err) == 0 && net_ctx_new(m, 1, &one, err, sizeof err) == 0,
          "%s", err);
    const int n = 9, K = s->classes; /* 9: Winograd in the batch, im2col alone */
    const size_t per = (size_t)3 * s->input_size * s->input_size;
    float *x = malloc(per * n * sizeof(float)), *p = malloc((size_t)n * K * sizeof(float));
    float *g = malloc(per * n * sizeof(float)), *g1 = malloc(per * sizeof(float)), p1[16];
    uint64_t seed = 3;
    for (size_t k = 0; k < per * n; k++)
        x[k] = (float)(tu_rand(&seed) % 256);
    int labels[9] = {0, 1, 2, 3, 6, 5, 4, 0, 1};
    CHECK(net_forward(big, x, n, p) == 0, "forward");
    CHECK(net_backward(big, labels, g, NULL, NULL) == 0, "backward");
    double perr = 0, gerr = 0, gmax = 0;
    for (int b = 0; b < n; b++) {
        double sum = 0;
        for (int k = 0; k < K; k++)
            sum += p[b * K + k];
        CHECK(fabs(sum - 1.0) < 1e-5, "probabilities of image %d sum to %g", b, sum);
        net_forward(one, x + per * b, 1, p1);
        net_backward(one, &labels[b], g1, NULL, NULL);
        for (int k = 0; k < K; k++)
            perr = fmax(perr, fabs(p1[k] - p[b * K + k]));
        for (size_t k = 0; k < per; k++) {
            gerr = fmax(gerr, fabs(g1[k] - g[per * b + k]));
            gmax = fmax(gmax, fabs(g1[k]));
        }
    }
    CHECK(perr < 1e-5, "batched probabilities differ from one-at-a-time by %g", perr);
    CHECK(gerr <= 1e-4 * gmax, "batched gradients differ from one-at-a-time by %g (max %g)", gerr, gmax);
    CHECK(gmax > 0, "the gradient is not zero");

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
    free(p);
    free(g);
    free(g1);
    net_ctx_free(big);
    net_ctx_free(one);
    model_free(m);
}

int main(void)
{
    model_spec s;
    test_spec_parse(&s);
    test_whole_network_gradients(&s);
    test_batch_equals_single(&s);
    return tu_done();
}
