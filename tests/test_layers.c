/* Layer kernels: im2col convolution against a direct one, pooling semantics,
 * and a finite-difference check of every layer kind's input and weight
 * gradients. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "net.h"
#include "testutil.h"

static model_spec base(const char *name, int c, int size, int classes)
{
    model_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.name, sizeof s.name, "%s", name);
    s.channels = c;
    s.input_size = size;
    s.scale_size = size;
    s.mean = 0.0f;
    s.std = 1.0f;
    s.classes = classes;
    return s;
}

static model_layer conv(int out, int kh, int kw, int stride, int pt, int pb, int pl, int pr)
{
    return (model_layer){MODEL_LAYER_CONV, out, kh, kw, stride, pt, pb, pl, pr};
}

/* Sets classes to the size of the last layer's output (shapes are filled
 * even when only the final classes check fails). */
static void finish(model_spec *s)
{
    model_shape sh[MODEL_MAX_LAYERS + 1];
    model_spec_shapes(s, sh, NULL, 0);
    const model_shape *o = &sh[s->n_layers];
    s->classes = o->c * o->h * o->w;
}

/* Direct convolution of a CHW image, the definition: cross-correlation. */
static void naive_conv(const float *in, int C, int H, int W, const float *wt, const model_layer *l,
                       int oh, int ow, float *out)
{
    const float *bias = wt + (size_t)l->out * C * l->kh * l->kw;
    for (int m = 0; m < l->out; m++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                double s = bias[m];
                for (int c = 0; c < C; c++)
                    for (int i = 0; i < l->kh; i++)
                        for (int j = 0; j < l->kw; j++) {
                            int iy = y * l->stride + i - l->pad_t, ix = x * l->stride + j - l->pad_l;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            s += (double)in[((size_t)c * H + iy) * W + ix] *
                                 wt[(((size_t)m * C + c) * l->kh + i) * l->kw + j];
                        }
                out[((size_t)m * oh + y) * ow + x] = (float)s;
            }
}

static void test_conv_against_direct(void)
{
    struct { int c, size; model_layer l; } cases[] = {
        {3, 9, conv(4, 3, 3, 1, 1, 1, 1, 1)},    /* 3x3 pad 1: Winograd, odd size */
        {4, 12, conv(6, 3, 3, 1, 1, 1, 1, 1)},   /* Winograd, even size */
        {3, 5, conv(4, 3, 3, 1, 1, 1, 1, 1)},    /* Winograd, 5 = 4 + 1: a partial 4x4 tile */
        {4, 7, conv(3, 3, 3, 1, 1, 1, 1, 1)},    /* Winograd, 7 = 4 + 3 */
        {2, 2, conv(3, 3, 3, 1, 1, 1, 1, 1)},    /* Winograd, smaller than one 4x4 tile */
        {3, 9, conv(4, 3, 3, 2, 1, 1, 1, 1)},    /* 3x3 pad 1 stride 2: im2col */
        {3, 11, conv(5, 5, 5, 2, 1, 2, 0, 1)},   /* stride 2, different pad per side */
        {2, 8, conv(3, 1, 1, 1, 0, 0, 0, 0)},    /* 1x1: the direct sgemm path */
        {3, 23, conv(6, 11, 11, 4, 0, 0, 0, 0)}, /* OverFeat fast's first layer, small */
        {4, 10, conv(3, 3, 5, 1, 2, 0, 1, 1)},   /* non-square kernel */
        {3, 12, conv(2, 7, 7, 2, 0, 0, 0, 0)},   /* OverFeat accurate's first layer, small */
    };
    const int n = 8; /* Winograd runs from batch 8 up */
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        model_spec s = base("conv", cases[t].c, cases[t].size, 1);
        s.layers[s.n_layers++] = cases[t].l;
        finish(&s);
        model_shape sh[2];
        char err[ADJ_ERRLEN];
        CHECK(model_spec_shapes(&s, sh, err, sizeof err) == 0, "case %zu: %s", t, err);
        float *w = tu_random_weights(&s, 7 + t);
        model *m;
        net_ctx *ctx;
        CHECK(model_create(&s, w, model_spec_param_count(&s), 0, &m, err, sizeof err) == 0, "%s", err);
        CHECK(net_ctx_new(m, n, &ctx, err, sizeof err) == 0, "%s", err);
        /* 3x3 pad-1 layers: by default (Winograd, its tile size by the plane
         * size: planes 2 and 5 take F(2x2), the others F(4x4)), and by im2col */
        const int wino_layer = strncmp(net_ctx_layer_algorithm(ctx, 0), "winograd", 8) == 0;
        const int algos[] = {-1, 0};
        for (int ai = 0; ai < (wino_layer ? 2 : 1); ai++) {
        CHECK(net_ctx_set_winograd(ctx, algos[ai]) == 0, "set_winograd %d", algos[ai]);
        const size_t per = (size_t)s.channels * s.input_size * s.input_size;
        float *x = malloc(per * n * sizeof(float)), *ref = malloc((size_t)s.classes * sizeof(float));
        uint64_t seed = 99 + t;
        for (size_t k = 0; k < per * n; k++)
            x[k] = tu_uniform(&seed, -2, 2);
        CHECK(net_forward(ctx, x, n, NULL) == 0, "forward");
        const float *logits = net_logits(ctx);
        double maxerr = 0;
        for (int b = 0; b < n; b++) {
            naive_conv(x + per * b, s.channels, s.input_size, s.input_size, model_weights(m),
                       &s.layers[0], sh[1].h, sh[1].w, ref);
            for (int k = 0; k < s.classes; k++) {
                double e = fabs(ref[k] - logits[(size_t)b * s.classes + k]);
                if (e > maxerr)
                    maxerr = e;
            }
        }
        CHECK(maxerr < 1e-4, "conv case %zu (%dx%d k%dx%d s%d, %s): differs from direct by %g",
              t, cases[t].size, cases[t].size, cases[t].l.kh, cases[t].l.kw, cases[t].l.stride,
              net_ctx_layer_algorithm(ctx, 0), maxerr);
        free(x);
        free(ref);
        }
        net_ctx_free(ctx);
        model_free(m);
    }
}

/* Max-pooling: output size rounds down, first maximum wins a tie. */
static void test_maxpool_semantics(void)
{
    model_spec s = base("pool", 1, 5, 4);
    s.layers[s.n_layers++] = (model_layer){.kind = MODEL_LAYER_MAXPOOL, .kh = 2, .kw = 2, .stride = 2};
    char err[ADJ_ERRLEN];
    CHECK(model_spec_shapes(&s, NULL, err, sizeof err) == 0, "5x5 pooled 2/2 is 2x2: %s", err);
    model *m;
    net_ctx *ctx;
    float dummy = 0;
    CHECK(model_create(&s, &dummy, 0, 1, &m, err, sizeof err) == 0, "%s", err);
    CHECK(net_ctx_new(m, 1, &ctx, err, sizeof err) == 0, "%s", err);
    float x[25];
    for (int k = 0; k < 25; k++)
        x[k] = 1.0f; /* all equal: ties everywhere */
    x[6] = 3.0f;     /* window (0,0) has its max at (1,1) */
    float g[25];
    net_forward(ctx, x, 1, NULL);
    const float *lg = net_logits(ctx);
    CHECK(lg[0] == 3.0f && lg[1] == 1.0f && lg[3] == 1.0f, "pooled values %g %g %g", lg[0], lg[1], lg[3]);
    int label = 1;
    net_backward(ctx, &label, g, NULL, NULL);
    /* window 1 covers (0,2),(0,3),(1,2),(1,3): all 1, the first (index 2) wins */
    int nz = 0;
    for (int k = 0; k < 25; k++)
        nz += g[k] != 0.0f;
    CHECK(g[2] != 0.0f && g[3] == 0.0f && g[7] == 0.0f && g[8] == 0.0f,
          "tie: gradient must go to the first maximum (index 2)");
    CHECK(g[6] != 0.0f && g[0] == 0.0f, "window 0: gradient at its max");
    CHECK(nz == 4, "one gradient entry per window, got %d", nz);
    CHECK(g[4] == 0.0f && g[24] == 0.0f, "the dropped last row/column get no gradient");
    net_ctx_free(ctx);
    model_free(m);
}

static void check_grads(const char *what, model_spec s)
{
    finish(&s);
    snprintf(s.name, sizeof s.name, "%s", what);
    int checked = 0;
    int bad = gc_input(&s, 11, 8, 1e-2f, 2e-2f, 20, &checked);
    CHECK(bad <= checked / 20, "%s: %d of %d input-gradient coordinates off", what, bad, checked);
    CHECK(checked > 0, "%s: nothing checked", what);
    bad = gc_weights(&s, 12, 8, 2e-3f, 2e-2f, 40, &checked);
    CHECK(bad <= checked / 20, "%s: %d of %d weight-gradient coordinates off", what, bad, checked);
}

static void test_gradients(void)
{
    model_layer relu = {.kind = MODEL_LAYER_RELU};
    model_layer pool2 = {.kind = MODEL_LAYER_MAXPOOL, .kh = 2, .kw = 2, .stride = 2};
    model_layer pool3 = {.kind = MODEL_LAYER_MAXPOOL, .kh = 3, .kw = 3, .stride = 3};
    model_layer fc5 = {.kind = MODEL_LAYER_FC, .out = 5};
    model_spec s;

    s = base("", 3, 9, 1);
    s.layers[s.n_layers++] = conv(4, 3, 3, 1, 1, 1, 1, 1);
    check_grads("conv 3x3 pad 1", s);

    s = base("", 3, 11, 1);
    s.layers[s.n_layers++] = conv(3, 5, 5, 2, 1, 2, 0, 1);
    check_grads("conv 5x5 stride 2 uneven pad", s);

    s = base("", 3, 6, 1);
    s.layers[s.n_layers++] = conv(4, 1, 1, 1, 0, 0, 0, 0);
    check_grads("conv 1x1", s);

    s = base("", 3, 8, 1);
    s.layers[s.n_layers++] = conv(4, 3, 3, 1, 0, 0, 0, 0);
    s.layers[s.n_layers++] = relu;
    check_grads("conv + relu", s);

    s = base("", 2, 10, 1);
    s.layers[s.n_layers++] = conv(3, 3, 3, 1, 1, 1, 1, 1);
    s.layers[s.n_layers++] = pool2;
    check_grads("conv + maxpool 2/2", s);

    s = base("", 2, 10, 1);
    s.layers[s.n_layers++] = pool3;
    s.layers[s.n_layers++] = fc5;
    check_grads("maxpool 3/3 + fc", s);

    s = base("", 3, 5, 1);
    s.layers[s.n_layers++] = fc5;
    check_grads("fc", s);

    s = base("", 3, 4, 1);
    s.layers[s.n_layers++] = (model_layer){.kind = MODEL_LAYER_FC, .out = 8};
    s.layers[s.n_layers++] = relu;
    s.layers[s.n_layers++] = fc5;
    check_grads("fc + relu + fc", s);
}

int main(void)
{
    test_conv_against_direct();
    test_maxpool_semantics();
    test_gradients();
    return tu_done();
}
