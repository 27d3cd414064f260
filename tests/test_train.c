/* The trainer (on the graph engine): a short run on generated images lowers
 * the loss, and a seeded run is reproducible. (Weight gradients themselves
 * are checked against finite differences in test_layers, test_net and
 * test_graph_grad.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"
#include "testutil.h"
#include "train.h"

static const char *SPEC =
    "{\"name\": \"t\", \"input_size\": 16, \"scale_size\": 16, \"mean\": 118.380948,"
    " \"std\": 61.896913, \"classes\": 4, \"layers\": ["
    "  {\"type\": \"conv\", \"out\": 8, \"kernel\": 3, \"pad\": 1}, {\"type\": \"relu\"},"
    "  {\"type\": \"maxpool\", \"kernel\": 2},"
    "  {\"type\": \"conv\", \"out\": 8, \"kernel\": 3, \"pad\": 1}, {\"type\": \"relu\"},"
    "  {\"type\": \"maxpool\", \"kernel\": 2},"
    "  {\"type\": \"fc\", \"out\": 16}, {\"type\": \"relu\"}, {\"type\": \"fc\", \"out\": 4}]}";

enum { NIMG = 256, BATCH = 16, STEPS = 300 };

/* Trains from seed; returns the mean loss of the first and last 30 steps. */
static float *run(const model_spec *s, const float *data, const int *labels, double *first, double *last)
{
    char err[ADJ_ERRLEN];
    size_t np = model_spec_param_count(s);
    model *m;
    trn_state *t;
    trn_params p = {.momentum = 0.9f, .weight_decay = 5e-4f, .smoothing = 0.1f};
    CHECK(model_create(s, calloc(np, sizeof(float)), np, 0, &m, err, sizeof err) == 0, "%s", err);
    trn_init_weights(m, 4);
    CHECK(trn_new(m, BATCH, &p, &t, err, sizeof err) == 0, "%s", err);
    CHECK(net_ctx_engine(trn_ctx(t)) == NET_ENGINE_GRAPH_TRAINING, "the trainer runs on the graph engine");
    const size_t per = 3 * 16 * 16;
    double a = 0, b = 0;
    for (int step = 0; step < STEPS; step++) {
        int b0 = (step * BATCH) % NIMG;
        double loss;
        int ok;
        CHECK(trn_step(t, data + per * b0, labels + b0, BATCH, 0.01f, &loss, &ok) == 0, "step %d", step);
        if (step < 30)
            a += loss / BATCH / 30;
        if (step >= STEPS - 30)
            b += loss / BATCH / 30;
    }
    *first = a;
    *last = b;
    float *w = malloc(np * sizeof(float));
    memcpy(w, model_weights(m), np * sizeof(float));
    trn_free(t);
    model_free(m);
    return w;
}

/* Label smoothing: net_backward_smoothed's loss is -sum_k q_k log p_k with
 * q = (1 - a) onehot(l) + a / K, recomputed here in double from the
 * probabilities; its weight gradient is (1 - a) g_l + (a / K) sum_k g_k, the
 * g_k being plain net_backward's gradients for label k (checked against
 * finite differences in test_net); and a central finite difference of the
 * smoothed loss agrees with its gradient on a few weights. */
static void test_smoothing(const model_spec *s, const float *data)
{
    char err[ADJ_ERRLEN];
    const size_t np = model_spec_param_count(s);
    const int K = s->classes, N = 3, labels[3] = {0, 2, 3};
    const double a = 0.2;
    model *m;
    net_ctx *c;
    CHECK(model_create(s, calloc(np, sizeof(float)), np, 0, &m, err, sizeof err) == 0, "%s", err);
    trn_init_weights(m, 9);
    CHECK(net_ctx_new(m, N, &c, err, sizeof err) == 0 &&
              net_ctx_set_engine(c, NET_ENGINE_GRAPH_TRAINING, err, sizeof err) == 0, "%s", err);
    float probs[3 * 4], losses[3];
    double *want = calloc(np, sizeof(double));
    float *g = calloc(np, sizeof(float)), *gs = calloc(np, sizeof(float));
    for (int k = 0; k < K; k++) { /* sum over labels of the plain gradients, per image */
        for (int b = 0; b < N; b++) {
            int lab = k;
            memset(g, 0, np * sizeof(float));
            CHECK(net_forward(c, data + (size_t)b * 3 * 16 * 16, 1, probs) == 0, "forward");
            CHECK(net_backward(c, &lab, NULL, g, NULL) == 0, "backward");
            double wk = a / K + (k == labels[b] ? 1.0 - a : 0.0);
            for (size_t q = 0; q < np; q++)
                want[q] += wk * g[q];
        }
    }
    CHECK(net_forward(c, data, N, probs) == 0, "forward");
    CHECK(net_backward_smoothed(c, labels, a, NULL, gs, losses) == 0, "smoothed backward");
    for (int b = 0; b < N; b++) {
        double ref = 0;
        for (int k = 0; k < K; k++)
            ref -= (a / K + (k == labels[b] ? 1.0 - a : 0.0)) * log((double)probs[b * K + k]);
        CHECK(fabs(losses[b] - ref) <= 1e-4 * fabs(ref) + 1e-5, "image %d: smoothed loss %.6f, expected %.6f",
              b, losses[b], ref);
    }
    double worst = 0, scale = 0;
    for (size_t q = 0; q < np; q++) {
        worst = fmax(worst, fabs(gs[q] - want[q]));
        scale = fmax(scale, fabs(want[q]));
    }
    printf("label smoothing: gradient vs the combination of plain gradients: max diff %.3g (max %.3g)\n",
           worst, scale);
    CHECK(scale > 0 && worst <= 1e-4 * scale, "smoothed gradient off by %.3g of %.3g", worst, scale);
    /* finite differences of the summed smoothed loss on weights of the last
     * layer (smooth there: no ReLU or pooling switch above it) */
    float *w = model_weights_mut(m);
    for (size_t q = (size_t)model_layer_offset(m, s->n_layers - 1); q < np; q += 7) {
        const float w0 = w[q], h = 1e-2f * fmaxf(fabsf(w0), 0.05f);
        double lp = 0, lm = 0;
        w[q] = w0 + h;
        net_ctx_refresh(c);
        net_forward(c, data, N, probs);
        net_backward_smoothed(c, labels, a, NULL, NULL, losses);
        for (int b = 0; b < N; b++)
            lp += losses[b];
        w[q] = w0 - h;
        net_ctx_refresh(c);
        net_forward(c, data, N, probs);
        net_backward_smoothed(c, labels, a, NULL, NULL, losses);
        for (int b = 0; b < N; b++)
            lm += losses[b];
        w[q] = w0;
        net_ctx_refresh(c);
        double fd = (lp - lm) / (2.0 * h);
        CHECK(fabs(fd - gs[q]) <= 2e-2 * fmax(fabs(fd), fabs(gs[q])) + 2e-3,
              "weight %zu: finite difference %.5f, gradient %.5f", q, fd, gs[q]);
    }
    CHECK(net_backward_smoothed(c, labels, 1.0, NULL, gs, NULL) == ADJ_ERR_ARG, "smoothing 1 refused");
    trn_params bad = {.momentum = 0.9f, .smoothing = -0.1f};
    trn_state *t = NULL;
    CHECK(trn_new(m, 4, &bad, &t, err, sizeof err) == ADJ_ERR_ARG, "negative smoothing refused");
    free(want);
    free(g);
    free(gs);
    net_ctx_free(c);
    model_free(m);
}

int main(void)
{
    char err[ADJ_ERRLEN];
    model_spec s;
    CHECK(model_spec_parse(SPEC, strlen(SPEC), &s, err, sizeof err) == 0, "%s", err);
    const size_t per = 3 * 16 * 16;
    float *data = malloc(per * NIMG * sizeof(float));
    int labels[NIMG];
    for (int i = 0; i < NIMG; i++) {
        img_rgb im, x;
        labels[i] = i % 4;
        CHECK(synth_render(labels[i], 1000 + i, &im, err, sizeof err) == 0, "%s", err);
        CHECK(img_prepare(&im, 16, 16, &x, err, sizeof err) == 0, "%s", err);
        img_to_planar(&x, data + per * i);
        img_free(&im);
        img_free(&x);
    }
    test_smoothing(&s, data);
    double f1, l1, f2, l2;
    float *w1 = run(&s, data, labels, &f1, &l1);
    float *w2 = run(&s, data, labels, &f2, &l2);
    printf("mean loss: first 30 steps %.4f, last 30 steps %.4f\n", f1, l1);
    CHECK(l1 < 0.7 * f1, "training lowers the loss: %.4f -> %.4f", f1, l1);
    CHECK(memcmp(w1, w2, model_spec_param_count(&s) * sizeof(float)) == 0,
          "a seeded run is reproducible");

    /* the embedded model's spec matches the generator's classes */
    model_spec d;
    CHECK(model_spec_builtin(MODEL_DEFAULT_NAME, &d, err, sizeof err) == 0, "%s", err);
    CHECK(d.classes == synth_n_classes(), "%s has %d classes, the generator %d", MODEL_DEFAULT_NAME,
          d.classes, synth_n_classes());
    CHECK(model_spec_param_count(&d) * 4 <= 16u << 20, "embedded weights at most 16 MB");
    CHECK(d.input_size >= 96 && d.classes >= 40, "%s: input %d, %d classes", MODEL_DEFAULT_NAME,
          d.input_size, d.classes);
    free(w1);
    free(w2);
    free(data);
    return tu_done();
}
