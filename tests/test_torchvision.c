/*
 * test_torchvision DIR N NAME... - advjpg's graph engine against PyTorch on
 * torchvision models exported by torchvision_export.py (see
 * test_torchvision.sh): for each model, DIR/NAME.onnx run on DIR/NAME.input
 * (N images) must give the same top-5 classes as DIR/NAME.probs for every
 * image and probabilities within 1e-4; each image's logits must be
 * bit-identical when it runs alone (batch invariance). When the export wrote
 * DIR/NAME.labels and DIR/NAME.grad (PyTorch's input gradient of the
 * cross-entropy, by autograd in double), gr_backward_loss's gradient must
 * have the same sign (FGSM's direction) at >= 99.5% of the pixels where the
 * gradient is not negligible: |g_torch| >= GRAD_FLOOR times the image's
 * largest |g_torch|; and each image's gradient must be bit-identical alone
 * and in the batch. Prints the times of a batch, and the same agreement of
 * PyTorch's own float32 gradient (DIR/NAME.grad32, when exported): what float32
 * arithmetic reaches on the model (a baseline, not a criterion).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph.h"
#include "onnx.h"
#include "testutil.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void softmax(const float *l, int k, float *p)
{
    float m = l[0];
    for (int j = 1; j < k; j++)
        m = l[j] > m ? l[j] : m;
    double s = 0;
    for (int j = 0; j < k; j++)
        s += (p[j] = expf(l[j] - m));
    for (int j = 0; j < k; j++)
        p[j] = (float)(p[j] / s);
}

static void top5(const float *p, int k, int *idx)
{
    for (int t = 0; t < 5; t++) {
        int best = -1;
        for (int j = 0; j < k; j++) {
            int used = 0;
            for (int u = 0; u < t; u++)
                used |= idx[u] == j;
            if (!used && (best < 0 || p[j] > p[best]))
                best = j;
        }
        idx[t] = best;
    }
}

/* Pixels whose reference gradient is below this fraction of the image's largest are negligible. */
#define GRAD_FLOOR 1e-3
/* Least fraction of the other pixels whose gradient sign must agree with PyTorch's. */
#define SIGN_AGREEMENT 0.995

/* The fraction of the n images' pixels (per each) where got's sign is want's, over the
 * pixels whose |want| >= GRAD_FLOOR times the image's largest; *counted (if not NULL)
 * gets their number.
 * With ctx (our gradient), TORCHVISION_VERBOSE prints each image's fraction. */
static double sign_agreement(const double *want, const float *got, int n, size_t per,
                             const char *name, const gr_ctx *ctx, const int *labels,
                             size_t *counted)
{
    size_t all = 0, agree = 0;
    for (int i = 0; i < n; i++) {
        const size_t c0 = all, a0 = agree;
        double big = 0;
        for (size_t j = 0; j < per; j++)
            big = fmax(big, fabs(want[i * per + j]));
        for (size_t j = 0; j < per; j++) {
            const double w = want[i * per + j];
            const float v = got[i * per + j];
            if (fabs(w) < GRAD_FLOOR * big)
                continue;
            all++;
            agree += (w > 0 && v > 0) || (w < 0 && v < 0);
        }
        if (ctx && getenv("TORCHVISION_VERBOSE"))
            printf("%s: image %d (label %d, gradient times 2^%d): signs agree at %.4f\n", name, i,
                   labels[i], gr_grad_exponent(ctx, i),
                   all > c0 ? (double)(agree - a0) / (double)(all - c0) : 0.0);
    }
    if (counted)
        *counted = all;
    return all ? (double)agree / (double)all : 0;
}

/* The input gradient against PyTorch's (double) and its batch invariance. */
static void check_gradient(const char *dir, int n, const char *name, const gr_graph *g,
                           const float *x)
{
    char path[4200], err[ADJ_ERRLEN];
    const size_t per = 3 * 224 * 224;
    size_t len_l = 0, len_g = 0;
    snprintf(path, sizeof path, "%s/%s.labels", dir, name);
    int *labels = (int *)tu_read_file(path, &len_l);
    snprintf(path, sizeof path, "%s/%s.grad", dir, name);
    double *want = (double *)tu_read_file(path, &len_g);
    gr_ctx *c = NULL;
    float *grad = malloc(sizeof(float) * n * per), *one = malloc(sizeof(float) * per);
    if (!labels || !want) {
        printf("%s: no reference gradient (an older export): gradient not checked\n", name);
        goto done;
    }
    CHECK(len_l == (size_t)n * 4 && len_g == (size_t)n * per * 8, "%s: labels and gradient", name);
    CHECK(gr_ctx_new(g, n, GR_BACKWARD, &c, err, sizeof err) == 0, "%s: backward: %s", name, err);
    if (!c || len_g != (size_t)n * per * 8)
        goto done;
    gr_forward(c, x, n, err, sizeof err);
    double t0 = now();
    CHECK(gr_backward_loss(c, labels, grad, NULL, err, sizeof err) == 0, "%s: %s", name, err);
    double t1 = now();
    if (getenv("TORCHVISION_VERBOSE")) { /* DIR/NAME.ours: the gradient, float32 */
        snprintf(path, sizeof path, "%s/%s.ours", dir, name);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(grad, sizeof(float), n * per, f);
            fclose(f);
        }
    }
    size_t counted = 0;
    const double frac = sign_agreement(want, grad, n, per, name, c, labels, &counted);
    /* PyTorch's own float32 gradient by the same criterion (an export that wrote it):
     * how far float32 arithmetic itself is from the double reference on this model */
    snprintf(path, sizeof path, "%s/%s.grad32", dir, name);
    size_t len32 = 0;
    float *torch32 = (float *)tu_read_file(path, &len32);
    const double frac32 = torch32 && len32 == (size_t)n * per * 4
                              ? sign_agreement(want, torch32, n, per, name, NULL, labels, NULL)
                              : -1;
    free(torch32);
    char base[32] = "not exported";
    if (frac32 >= 0)
        snprintf(base, sizeof base, "%.4f", frac32);
    CHECK(frac >= SIGN_AGREEMENT, "%s: gradient signs agree with PyTorch's at %.4f of %zu pixels "
          "(PyTorch's own float32 gradient: %s)", name, frac, counted, base);
    int invariant = 1;
    for (int i = 0; i < n; i++) {
        gr_forward(c, x + i * per, 1, err, sizeof err);
        gr_backward_loss(c, labels + i, one, NULL, err, sizeof err);
        invariant &= !memcmp(one, grad + i * per, sizeof(float) * per);
    }
    CHECK(invariant, "%s: an image's gradient differs alone and in a batch of %d", name, n);
    gr_ctx *all = NULL; /* the memory plan's saving: against keeping every activation */
    size_t all_kb = gr_ctx_new(g, n, GR_BACKWARD | GR_KEEP_ALL, &all, err, sizeof err) ? 0
                    : gr_ctx_bytes(all) / 1024;
    gr_ctx_free(all);
    printf("%s: gradient %.3f s per batch of %d, %zu KB activations and gradients (%zu KB "
           "keeping every activation), sign agreement %.4f of %zu pixels (|g| >= %g max; "
           "PyTorch's float32 gradient: %s), batch-invariant %s\n", name, t1 - t0, n,
           gr_ctx_bytes(c) / 1024, all_kb, frac, counted, GRAD_FLOOR, base,
           invariant ? "yes" : "NO");
done:
    gr_ctx_free(c);
    free(labels), free(want), free(grad), free(one);
}

static void run_model(const char *dir, int n, const char *name)
{
    char path[4200], err[ADJ_ERRLEN];
    const size_t per = 3 * 224 * 224, K = 1000;
    snprintf(path, sizeof path, "%s/%s.input", dir, name);
    size_t len;
    float *x = (float *)tu_read_file(path, &len);
    CHECK(x && len == (size_t)n * per * 4, "%s: input", path);
    snprintf(path, sizeof path, "%s/%s.probs", dir, name);
    float *want = (float *)tu_read_file(path, &len);
    CHECK(want && len == (size_t)n * K * 4, "%s: probabilities", path);
    gr_graph *g = NULL;
    gr_ctx *c = NULL;
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    double t0 = now();
    int rc = onnx_load(path, NULL, &g, err, sizeof err);
    CHECK(rc == 0, "%s: %s", name, err);
    if (rc || !x || !want)
        goto done;
    double t1 = now();
    CHECK(gr_ctx_new(g, n, 0, &c, err, sizeof err) == 0, "%s: %s", name, err);
    if (!c)
        goto done;
    gr_forward(c, x, n, err, sizeof err); /* warm-up */
    double t2 = now();
    CHECK(gr_forward(c, x, n, err, sizeof err) == 0, "%s: %s", name, err);
    double t3 = now();
    op_shape s;
    const float *logits = gr_output(c, 0, &s);
    CHECK(s.rank == 2 && s.d[0] == n && s.d[1] == (int64_t)K, "%s: output shape", name);
    float *all = malloc(sizeof(float) * n * K), *p = malloc(sizeof(float) * K);
    memcpy(all, logits, sizeof(float) * n * K);
    double worst = 0;
    int same_top5 = 1;
    for (int i = 0; i < n; i++) {
        softmax(all + i * K, (int)K, p);
        int a[5], b[5];
        top5(p, (int)K, a);
        top5(want + i * K, (int)K, b);
        same_top5 &= !memcmp(a, b, sizeof a);
        for (size_t j = 0; j < K; j++)
            worst = fmax(worst, fabs(p[j] - want[i * K + j]));
    }
    CHECK(same_top5, "%s: top-5 differs from PyTorch's", name);
    CHECK(worst <= 1e-4, "%s: max |p - p_torch| = %g", name, worst);
    int invariant = 1;
    for (int i = 0; i < n; i++) {
        gr_forward(c, x + i * per, 1, err, sizeof err);
        invariant &= !memcmp(gr_output(c, 0, NULL), all + i * K, sizeof(float) * K);
    }
    CHECK(invariant, "%s: an image's logits differ alone and in a batch of %d", name, n);
    printf("%s: %d nodes, %zu parameters, load %.2f s, advjpg %.3f s per batch of %d, "
           "max |p - p_torch| %.2g, top-5 %s, batch-invariant %s\n", name, gr_n_nodes(g),
           gr_param_count(g), t1 - t0, t3 - t2, n, worst, same_top5 ? "identical" : "DIFFERENT",
           invariant ? "yes" : "NO");
    if (getenv("TORCHVISION_PROFILE")) { /* seconds per operator type, both forwards */
        int nn = gr_n_nodes(g);
        double *sec = calloc((size_t)nn, sizeof *sec);
        gr_ctx_node_seconds(c, sec);
        for (int i = 0; i < nn; i++) {
            int first = 1;
            for (int j = 0; j < i; j++)
                first &= strcmp(gr_node_op(g, j), gr_node_op(g, i)) != 0;
            if (!first)
                continue;
            double t = 0;
            for (int j = i; j < nn; j++)
                if (!strcmp(gr_node_op(g, j), gr_node_op(g, i)))
                    t += sec[j];
            printf("  %-20s %.3f s\n", gr_node_op(g, i), t);
        }
        free(sec);
    }
    free(all), free(p);
    check_gradient(dir, n, name, g, x);
done:
    gr_ctx_free(c);
    gr_free(g);
    free(x), free(want);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_torchvision DIR N NAME...\n");
        return 2;
    }
    for (int i = 3; i < argc; i++)
        run_model(argv[1], atoi(argv[2]), argv[i]);
    return tu_done();
}
