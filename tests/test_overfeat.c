/* OverFeat fast and accurate from weight files of the exact layout (random
 * weights the test writes): sizes, shapes, probabilities, batched results,
 * Winograd against im2col (the default graph against one with Pad + Conv),
 * and the errors for wrong, missing and unreadable files. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net.h"
#include "testutil.h"

/*
 * Two computations of the same network on the same two images (K classes):
 * logits za / zb within 1e-4 of their range, the same top 5 (where the 5th
 * and 6th are apart by more than the error), and the FGSM direction (the
 * input gradient's sign) the same on at least 99.9% of the pixels whose
 * gradient gb is not negligible (over 1e-3 of the largest).
 */
static void same_answers(const char *name, const char *what, const float *za, const float *ga,
                         const float *zb, const float *gb, size_t per, int K)
{
    for (int b = 0; b < 2; b++) {
        const float *a = za + b * K, *d = zb + b * K;
        double err = 0, lo = d[0], hi = d[0];
        for (int k = 0; k < K; k++) {
            err = fmax(err, fabs(a[k] - d[k]));
            lo = fmin(lo, d[k]);
            hi = fmax(hi, d[k]);
        }
        CHECK(err <= 1e-4 * (hi - lo), "%s image %d: %s: logits off by %g (range %g)", name, b,
              what, err, hi - lo);
        int ta[6], td[6];
        net_topk(a, K, 6, ta);
        net_topk(d, K, 6, td);
        if (d[td[4]] - d[td[5]] > 2 * err)
            for (int k = 0; k < 5; k++) {
                int found = 0;
                for (int j = 0; j < 5; j++)
                    found |= ta[j] == td[k];
                CHECK(found, "%s image %d: %s: class %d of one top 5 not in the other's", name, b,
                      what, td[k]);
            }
        double gm = 0;
        for (size_t k = 0; k < per; k++)
            gm = fmax(gm, fabs(gb[per * b + k]));
        size_t counted = 0, same = 0;
        for (size_t k = 0; k < per; k++)
            if (fabs(gb[per * b + k]) > 1e-3 * gm) {
                counted++;
                same += (ga[per * b + k] > 0) == (gb[per * b + k] > 0);
            }
        printf("%s image %d: %s: logits within %.3g of a range of %.3g, "
               "FGSM sign the same on %.4f%% of %zu pixels\n",
               name, b, what, err, hi - lo, 100.0 * same / (double)counted, counted);
        CHECK(counted > per / 4 && same >= 0.999 * counted, "%s image %d: %s: FGSM signs agree on "
              "%zu of %zu", name, b, what, same, counted);
    }
}

/*
 * The network's 3x3 layers by Winograd (the default: F(4x4) or F(2x2) per
 * layer) against im2col (net_ctx_set_winograd 0: the graph with Pad + Conv)
 * on the same two images (same_answers). g holds the default's gradients;
 * the context is left on im2col. (The layer engine this was also compared
 * with is gone: one engine now.)
 */
static void paths_agree(const char *name, net_ctx *ctx, const float *x, const int *labels,
                        size_t per, const float *g)
{
    float zw[2000], zd[2000];
    float *gd = malloc(per * 2 * sizeof(float));
    net_forward(ctx, x, 2, NULL);
    memcpy(zw, net_logits(ctx), sizeof zw);
    CHECK(net_ctx_set_winograd(ctx, 0) == 0, "im2col");
    CHECK(net_forward(ctx, x, 2, NULL) == 0, "forward by im2col");
    memcpy(zd, net_logits(ctx), sizeof zd);
    CHECK(net_backward(ctx, labels, gd, NULL, NULL) == 0, "backward by im2col");
    same_answers(name, "Winograd vs im2col", zw, g, zd, gd, per, 1000);
    free(gd);
}

static void test_network(const char *name, size_t want_params, size_t want_bytes, int want_layers,
                         const char *dir)
{
    char err[ADJ_ERRLEN], path[4200];
    model_spec s;
    CHECK(model_spec_builtin(name, &s, err, sizeof err) == 0, "%s", err);
    CHECK(model_spec_param_count(&s) == want_params, "%s: %zu parameters, expected %zu", name,
          model_spec_param_count(&s), want_params);
    int convs = 0;
    for (int i = 0; i < s.n_layers; i++)
        convs += s.layers[i].kind == MODEL_LAYER_CONV || s.layers[i].kind == MODEL_LAYER_FC;
    CHECK(convs == want_layers, "%s: %d weight layers", name, convs);
    model_shape sh[MODEL_MAX_LAYERS + 1];
    model_spec_shapes(&s, sh, NULL, 0);
    CHECK(sh[s.n_layers].c == 1000 && sh[s.n_layers].h == 1, "1000 outputs");

    snprintf(path, sizeof path, "%s/%s.weights", dir, name);
    CHECK(tu_write_random_weights(&s, path, 42) == 0, "write %s", path);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (size_t)st.st_size == want_bytes, "%s: file of %zu bytes", name, want_bytes);

    model *m = NULL;
    CHECK(model_load(&s, path, &m, err, sizeof err) == 0, "load: %s", err);
    if (!m)
        return;
    net_ctx *ctx = NULL, *one = NULL;
    CHECK(net_ctx_new(m, 2, &ctx, err, sizeof err) == 0 && net_ctx_new(m, 1, &one, err, sizeof err) == 0,
          "%s", err);
    const size_t per = (size_t)3 * s.input_size * s.input_size;
    float *x = malloc(per * 2 * sizeof(float)), *p = malloc(2000 * sizeof(float)), p1[1000];
    float *g = malloc(per * 2 * sizeof(float)), *g1 = malloc(per * sizeof(float));
    uint64_t seed = 1;
    for (size_t k = 0; k < per * 2; k++)
        x[k] = (float)(tu_rand(&seed) % 256);
    CHECK(net_forward(ctx, x, 2, p) == 0, "forward");
    int labels[2] = {483, 0};
    CHECK(net_backward(ctx, labels, g, NULL, NULL) == 0, "backward");
    for (int b = 0; b < 2; b++) {
        double sum = 0;
        for (int k = 0; k < 1000; k++)
            sum += p[b * 1000 + k];
        CHECK(fabs(sum - 1) < 1e-4, "%s: probabilities sum to %g", name, sum);
        net_forward(one, x + per * b, 1, p1);
        net_backward(one, &labels[b], g1, NULL, NULL);
        double pe = 0, ge = 0, gm = 0;
        for (int k = 0; k < 1000; k++)
            pe = fmax(pe, fabs(p1[k] - p[b * 1000 + k]));
        for (size_t k = 0; k < per; k++) {
            ge = fmax(ge, fabs(g1[k] - g[per * b + k]));
            gm = fmax(gm, fabs(g1[k]));
        }
        CHECK(pe < 1e-5, "%s image %d: batched probabilities differ by %g", name, b, pe);
        CHECK(gm > 0 && ge < 1e-3 * gm, "%s image %d: batched gradient differs by %g of %g", name, b, ge, gm);
    }
    paths_agree(name, ctx, x, labels, per, g);
    free(x);
    free(p);
    free(g);
    free(g1);
    net_ctx_free(ctx);
    net_ctx_free(one);
    model_free(m);

    /* a file one float short is refused with both sizes and its name */
    CHECK(truncate(path, (off_t)want_bytes - 4) == 0, "truncate");
    err[0] = 0;
    CHECK(model_load(&s, path, &m, err, sizeof err) == ADJ_ERR_FORMAT, "short file refused");
    char want[64], got[64];
    snprintf(want, sizeof want, "%zu", want_bytes);
    snprintf(got, sizeof got, "%zu", want_bytes - 4);
    CHECK(strstr(err, path) && strstr(err, want) && strstr(err, got),
          "message names file, expected and actual size: %s", err);
    unlink(path);
}

static void test_bad_files(const char *dir)
{
    char err[ADJ_ERRLEN], path[4200];
    model_spec s;
    model *m;
    model_spec_builtin("overfeat-fast", &s, err, sizeof err);
    snprintf(path, sizeof path, "%s/missing", dir);
    err[0] = 0;
    CHECK(model_load(&s, path, &m, err, sizeof err) == ADJ_ERR_IO && strstr(err, path) &&
              strstr(err, "583683488") && strstr(err, "No such file"),
          "missing file: %s", err);
    snprintf(path, sizeof path, "%s/empty", dir);
    tu_write_file(path, "", 0);
    CHECK(model_load(&s, path, &m, err, sizeof err) == ADJ_ERR_FORMAT && strstr(err, "is 0 bytes"),
          "empty file: %s", err);
    if (geteuid() != 0) { /* root reads anything */
        chmod(path, 0);
        CHECK(model_load(&s, path, &m, err, sizeof err) == ADJ_ERR_IO, "unreadable: %s", err);
    }
    unlink(path);
    CHECK(model_load(&s, dir, &m, err, sizeof err) == ADJ_ERR_IO && strstr(err, "not a regular file"),
          "a directory: %s", err);
}

int main(void)
{
    const char *dir = tu_tmpdir();
    char d[4096];
    snprintf(d, sizeof d, "%s", dir);
    test_bad_files(d);
    test_network("overfeat-fast", 145920872u, 583683488u, 8, d);
    test_network("overfeat-accurate", 144656488u, 578625952u, 9, d);
    tu_rmtree(d);
    return tu_done();
}
