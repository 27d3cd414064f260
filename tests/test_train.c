/* The trainer: a short run on generated images lowers the loss, and a seeded
 * run is reproducible. (Weight gradients themselves are checked against
 * finite differences in test_layers and test_net.) */
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
    trn_params p = {.momentum = 0.9f, .weight_decay = 5e-4f};
    CHECK(model_create(s, calloc(np, sizeof(float)), np, 0, &m, err, sizeof err) == 0, "%s", err);
    trn_init_weights(m, 4);
    CHECK(trn_new(m, BATCH, &p, &t, err, sizeof err) == 0, "%s", err);
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
    CHECK(model_spec_param_count(&d) * 4 <= 8u << 20, "embedded weights at most 8 MB");
    free(w1);
    free(w2);
    free(data);
    return tu_done();
}
