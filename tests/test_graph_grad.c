/*
 * test_graph_grad - the graph engine's backward pass (gr_backward) against
 * central finite differences of its own forward pass, operator by operator,
 * several attribute combinations each, on small random tensors.
 *
 * Each case is a small graph built here with gr_* (the graph input X is
 * batched, N = 3 images; weights are random constants). The loss is
 * L = sum_j r_j y_j for random r over output 0, accumulated in double; the
 * backward's dL/dX is compared with (L(x + h) - L(x - h)) / 2h at every
 * coordinate (up to 48 per image). A coordinate mismatches when
 * |g - fd| > tol * max(|g|, |fd|, 0.05 * max|g|): none may. In cases with
 * kinks (ReLU, max-pooling, Abs...) a step may cross one: such a coordinate
 * must match one of the one-sided differences instead, and at most 10% may
 * be such. Each case also checks batch
 * invariance (image 0's gradient bit-identical alone and in the batch) and
 * the memory plan (the same bits from a GR_KEEP_ALL context). Finally
 * gr_backward_loss against op_xent_grad's definition, and the refusals: a
 * run-time input without a gradient, a second output that is read.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "testutil.h"

#define NB 3 /* images per batch */

typedef struct {
    tu_gb gb;      /* the graph being built */
    uint64_t rng;
    float *last;   /* the last b_const's values (owned by the graph) and their number */
    size_t last_n;
} bld;

static void b_start(bld *b, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    tu_gb_start(&b->gb);
    b->rng = seed;
}

/* A tensor of the graph's own (GR_DATA_OWN: data malloc'd, or NULL). */
static int b_tensor(bld *b, op_dtype dt, const op_shape *s, int batched, int is_const, void *data)
{
    return tu_gb_tensor(&b->gb, dt, s, batched, is_const, data, GR_DATA_OWN);
}

/* The batched graph input [N, d...] (rank-1 per-image dims given). */
static int b_input(bld *b, int rank, const int64_t *d)
{
    op_shape s = {rank + 1, {OP_DIM_BATCH}};
    for (int i = 0; i < rank; i++)
        s.d[i + 1] = d[i];
    return b_tensor(b, OP_FLOAT, &s, 1, 0, NULL);
}

/* A random float constant of the given shape, uniform in [lo, hi). */
static int b_const(bld *b, int rank, const int64_t *d, float lo, float hi)
{
    const op_shape s = tu_shape(rank, d);
    size_t n = op_numel(&s);
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        v[i] = tu_uniform(&b->rng, lo, hi);
    b->last = v, b->last_n = n;
    return b_tensor(b, OP_FLOAT, &s, 0, 1, v);
}

static int b_scalar(bld *b, float x)
{
    op_shape s = {0, {0}};
    float *v = malloc(sizeof(float));
    *v = x;
    return b_tensor(b, OP_FLOAT, &s, 0, 1, v);
}

static int b_ints(bld *b, int n, const int64_t *vals)
{
    op_shape s = {1, {n}};
    int64_t *v = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    memcpy(v, vals, sizeof(int64_t) * (size_t)n);
    return b_tensor(b, OP_INT64, &s, 0, 1, v);
}

/* A node with n_out outputs (the others unnamed); returns output 0. */
static int b_node_n(bld *b, const char *op, const int *in, int n_in, const op_attr *a, int n_a,
                    int n_out, int *outs)
{
    return tu_gb_node(&b->gb, op, in, n_in, a, n_a, n_out, outs, 17);
}

static int b_node(bld *b, const char *op, const int *in, int n_in, const op_attr *a, int n_a)
{
    return b_node_n(b, op, in, n_in, a, n_a, 1, NULL);
}

static int b_finish(bld *b, int input, int output) { return tu_gb_finish(&b->gb, input, output); }

/* L = sum r y over output 0 (double). */
static double loss_of(gr_ctx *c, const float *x, int n, const float *r, size_t per_out)
{
    char err[ADJ_ERRLEN];
    gr_forward(c, x, n, err, sizeof err);
    const float *y = gr_output(c, 0, NULL);
    double L = 0;
    for (size_t j = 0; j < (size_t)n * per_out; j++)
        L += (double)r[j] * y[j];
    return L;
}

typedef struct {
    float lo, hi;   /* input range */
    float h, tol;
    int kinks;      /* a few mismatches allowed */
} grad_opts;

static const grad_opts SMOOTH = {-1.0f, 1.0f, 1e-2f, 2e-2f, 0};
static const grad_opts KINKS = {-1.0f, 1.0f, 1e-2f, 2e-2f, 1};

/* Checks a finished graph's input gradient; name says which case. */
static void check_case(const char *name, bld *b, grad_opts o)
{
    CHECK(!b->gb.failed, "%s: build: %s", name, b->gb.err);
    if (b->gb.failed) {
        gr_free(b->gb.g);
        return;
    }
    gr_graph *g = b->gb.g;
    char err[ADJ_ERRLEN];
    gr_ctx *c = NULL, *ck = NULL;
    int rc = gr_ctx_new(g, NB, GR_BACKWARD, &c, err, sizeof err);
    CHECK(rc == 0, "%s: context: %s", name, err);
    rc |= gr_ctx_new(g, NB, GR_BACKWARD | GR_KEEP_ALL, &ck, err, sizeof err);
    op_shape is, os;
    gr_input_shape(g, &is, NULL);
    gr_output_info(g, 0, &os, NULL, NULL);
    const size_t per_in = op_numel(&is), per_out = op_numel(&os);
    float *x = malloc(sizeof(float) * NB * per_in), *r = malloc(sizeof(float) * NB * per_out);
    float *gx = malloc(sizeof(float) * NB * per_in), *gk = malloc(sizeof(float) * NB * per_in);
    float *g1 = malloc(sizeof(float) * per_in);
    uint64_t rng = b->rng ^ 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < NB * per_in; i++)
        x[i] = tu_uniform(&rng, o.lo, o.hi);
    for (size_t i = 0; i < NB * per_out; i++)
        r[i] = tu_uniform(&rng, -1.0f, 1.0f);
    if (rc)
        goto done;
    gr_forward(c, x, NB, err, sizeof err);
    float *y0 = malloc(sizeof(float) * per_out); /* image 0's output in the batch */
    memcpy(y0, gr_output(c, 0, NULL), sizeof(float) * per_out);
    CHECK(gr_backward(c, r, gx, err, sizeof err) == 0, "%s: backward: %s", name, err);
    gr_forward(ck, x, NB, err, sizeof err);
    gr_backward(ck, r, gk, err, sizeof err);
    CHECK(!memcmp(gx, gk, sizeof(float) * NB * per_in), "%s: the memory plan changes the gradient",
          name);
    gr_forward(c, x, 1, err, sizeof err);
    CHECK(!memcmp(y0, gr_output(c, 0, NULL), sizeof(float) * per_out),
          "%s: image 0's output differs alone", name);
    free(y0);
    gr_backward(c, r, g1, err, sizeof err);
    CHECK(!memcmp(gx, g1, sizeof(float) * per_in), "%s: image 0's gradient differs alone", name);
    double gmax = 0;
    for (size_t i = 0; i < NB * per_in; i++)
        gmax = fmax(gmax, fabs(gx[i]));
    CHECK(gmax > 0, "%s: the gradient is zero", name);
    int bad = 0, checked = 0, at_kink = 0;
    double worst = 0;
    const double L0 = loss_of(c, x, NB, r, per_out);
#define REL(a, b) (fabs((a) - (b)) / fmax(fmax(fabs(a), fabs(b)), 0.05 * gmax))
    for (int img = 0; img < NB; img++) {
        const size_t step = per_in > 48 ? per_in / 48 : 1;
        for (size_t j = img % step; j < per_in; j += step) {
            const size_t k = img * per_in + j;
            const float x0 = x[k];
            const float xp = x0 + o.h, xm = x0 - o.h; /* the steps as float holds them */
            x[k] = xp;
            const double lp = loss_of(c, x, NB, r, per_out);
            x[k] = xm;
            const double lm = loss_of(c, x, NB, r, per_out);
            x[k] = x0;
            const double fd = (lp - lm) / ((double)xp - (double)xm);
            const double fdp = (lp - L0) / ((double)xp - x0), fdm = (L0 - lm) / (x0 - (double)xm);
            double e = REL(gx[k], fd);
            checked++;
            if (e > o.tol && o.kinks && fmin(REL(gx[k], fdp), REL(gx[k], fdm)) <= 2 * o.tol) {
                at_kink++; /* a step crossed a kink: the gradient is one of the one-sided ones */
                continue;
            }
            worst = fmax(worst, e);
            bad += e > o.tol;
            if (e > o.tol && getenv("GRAD_VERBOSE"))
                printf("  %s: image %d coordinate %zu: x %g gradient %g, differences %g (%g, %g)\n",
                       name, img, j, x0, gx[k], fd, fdm, fdp);
        }
    }
#undef REL
    CHECK(bad == 0, "%s: %d of %d coordinates differ from finite differences (worst relative "
          "error %.3g)", name, bad, checked, worst);
    CHECK(at_kink <= checked / 10, "%s: %d of %d coordinates at a kink", name, at_kink, checked);
    printf("%-44s %4d coordinates, %d at a kink, %d off, worst %.2g\n", name, checked, at_kink,
           bad, worst);
done:
    free(x), free(r), free(gx), free(gk), free(g1);
    gr_ctx_free(c);
    gr_ctx_free(ck);
    gr_free(g);
}

/* ---- cases ------------------------------------------------------------- */

static void conv_case(const char *name, int64_t C, int64_t M, int64_t H, const op_attr *a, int na,
                      int group, int64_t k, int bias)
{
    bld b;
    b_start(&b, 11 + (uint64_t)na * 7 + (uint64_t)C);
    int x = b_input(&b, 3, (int64_t[]){C, H, H + 1});
    int w = b_const(&b, 4, (int64_t[]){M, C / group, k, k}, -0.5f, 0.5f);
    int in[3] = {x, w, bias ? b_const(&b, 1, (int64_t[]){M}, -0.5f, 0.5f) : -1};
    int y = b_node(&b, "Conv", in, bias ? 3 : 2, a, na);
    b_finish(&b, x, y);
    check_case(name, &b, SMOOTH);
}

static void test_conv(void)
{
    op_attr a[6];
    a[0] = TU_INTS("pads", 1, 1, 1, 1);
    /* Winograd from 16 channels in and out (ops_conv.c), im2col below */
    conv_case("Conv 3x3 pad 1 (Winograd F(4x4))", 128, 130, 6, a, 1, 1, 3, 1);
    conv_case("Conv 3x3 pad 1 (Winograd F(2x2))", 130, 128, 5, a, 1, 1, 3, 0);
    conv_case("Conv 3x3 pad 1, 16 to 2048 channels (Winograd F(4x4), blocks of 16 tiles)", 16, 2048,
              9, a, 1, 1, 3, 1);
    conv_case("Conv 3x3 pad 1, 64 channels (Winograd F(4x4))", 64, 64, 6, a, 1, 1, 3, 1);
    conv_case("Conv 3x3 pad 1, 8 to 12 channels (im2col)", 8, 12, 6, a, 1, 1, 3, 1);
    a[1] = TU_INTS("strides", 1, 1);
    conv_case("Conv 3x3 pad 1, 7 to 5 channels (im2col)", 7, 5, 9, a, 2, 1, 3, 1);
    a[0] = TU_INTS("pads", 0, 1, 1, 0), a[1] = TU_INTS("strides", 2, 2);
    conv_case("Conv 3x3 stride 2 asymmetric pads", 3, 4, 7, a, 2, 1, 3, 0);
    a[0] = TU_INTS("pads", 2, 2, 2, 2), a[1] = TU_INTS("dilations", 2, 2);
    conv_case("Conv 3x3 dilation 2", 2, 3, 7, a, 2, 1, 3, 1);
    a[0] = tu_int("group", 2), a[1] = TU_INTS("pads", 1, 1, 1, 1);
    conv_case("Conv group 2", 4, 6, 5, a, 2, 2, 3, 1);
    a[0] = tu_int("group", 4), a[1] = TU_INTS("pads", 1, 1, 1, 1), a[2] = TU_INTS("strides", 2, 2);
    conv_case("Conv depthwise stride 2", 4, 4, 7, a, 3, 4, 3, 1);
    a[0] = tu_int("group", 3), a[1] = TU_INTS("pads", 2, 2, 2, 2);
    a[2] = TU_INTS("dilations", 2, 1);
    conv_case("Conv depthwise dilation (2,1)", 3, 3, 6, a, 3, 3, 3, 0);
    conv_case("Conv 1x1 (direct)", 5, 3, 4, a, 0, 1, 1, 1);
    a[0] = TU_INTS("strides", 2, 2);
    conv_case("Conv 1x1 stride 2", 5, 3, 5, a, 1, 1, 1, 0);
    a[0] = tu_str("auto_pad", "SAME_UPPER"), a[1] = TU_INTS("strides", 2, 2);
    conv_case("Conv 2x2 SAME_UPPER stride 2", 2, 3, 5, a, 2, 1, 2, 1);
}

static void pool_case(const char *name, const char *op, const op_attr *a, int na, grad_opts o)
{
    bld b;
    b_start(&b, 23 + (uint64_t)na);
    int x = b_input(&b, 3, (int64_t[]){2, 7, 6});
    int y = b_node(&b, op, &x, 1, a, na);
    b_finish(&b, x, y);
    check_case(name, &b, o);
}

static void test_pool(void)
{
    op_attr a[6];
    a[0] = TU_INTS("kernel_shape", 3, 3), a[1] = TU_INTS("strides", 2, 2), a[2] = TU_INTS("pads", 1, 1, 1, 1);
    pool_case("MaxPool 3x3 stride 2 pad 1", "MaxPool", a, 3, KINKS);
    a[0] = TU_INTS("kernel_shape", 2, 2), a[1] = TU_INTS("strides", 2, 2);
    pool_case("MaxPool 2x2 stride 2", "MaxPool", a, 2, KINKS);
    a[0] = TU_INTS("kernel_shape", 3, 3), a[1] = TU_INTS("strides", 2, 2), a[2] = tu_int("ceil_mode", 1);
    pool_case("MaxPool 3x3 stride 2 ceil_mode", "MaxPool", a, 3, KINKS);
    a[0] = TU_INTS("kernel_shape", 2, 2), a[1] = TU_INTS("dilations", 2, 2);
    pool_case("MaxPool 2x2 dilation 2", "MaxPool", a, 2, KINKS);
    a[0] = TU_INTS("kernel_shape", 3, 3), a[1] = TU_INTS("pads", 1, 1, 1, 1);
    a[2] = tu_int("count_include_pad", 0);
    pool_case("AveragePool 3x3 pad 1 exclude pad", "AveragePool", a, 3, SMOOTH);
    a[2] = tu_int("count_include_pad", 1);
    pool_case("AveragePool 3x3 pad 1 include pad", "AveragePool", a, 3, SMOOTH);
    a[0] = TU_INTS("kernel_shape", 3, 3), a[1] = TU_INTS("strides", 2, 2), a[2] = tu_int("ceil_mode", 1);
    a[3] = TU_INTS("pads", 1, 0, 0, 1), a[4] = tu_int("count_include_pad", 0);
    pool_case("AveragePool ceil_mode exclude pad", "AveragePool", a, 5, SMOOTH);
    a[4] = tu_int("count_include_pad", 1);
    pool_case("AveragePool ceil_mode include pad", "AveragePool", a, 5, SMOOTH);
    pool_case("GlobalAveragePool", "GlobalAveragePool", a, 0, SMOOTH);
}

static void unary_case(const char *op, const op_attr *a, int na, grad_opts o, float lo, float hi)
{
    bld b;
    b_start(&b, 31 + (uint64_t)strlen(op));
    int x = b_input(&b, 2, (int64_t[]){4, 5});
    int y = b_node(&b, op, &x, 1, a, na);
    b_finish(&b, x, y);
    o.lo = lo, o.hi = hi;
    check_case(op, &b, o);
}

static void test_unary(void)
{
    op_attr a[2];
    unary_case("Relu", NULL, 0, KINKS, -1, 1);
    unary_case("Sigmoid", NULL, 0, SMOOTH, -4, 4);
    a[0] = tu_float("alpha", 0.3f), a[1] = tu_float("beta", 0.4f);
    unary_case("HardSigmoid", a, 2, KINKS, -3, 3);
    unary_case("HardSwish", NULL, 0, KINKS, -5, 5);
    unary_case("Erf", NULL, 0, SMOOTH, -2, 2);
    unary_case("Sqrt", NULL, 0, SMOOTH, 0.5f, 2);
    unary_case("Tanh", NULL, 0, SMOOTH, -2, 2);
    unary_case("Exp", NULL, 0, SMOOTH, -2, 2);
    unary_case("Neg", NULL, 0, SMOOTH, -2, 2);
    unary_case("Abs", NULL, 0, KINKS, -2, 2);
    unary_case("Identity", NULL, 0, SMOOTH, -2, 2);
    unary_case("Dropout", NULL, 0, SMOOTH, -2, 2);
    { /* Clip(0, 6): ReLU6 */
        bld b;
        b_start(&b, 41);
        int x = b_input(&b, 2, (int64_t[]){4, 5});
        int in[3] = {x, b_scalar(&b, 0.0f), b_scalar(&b, 6.0f)};
        int y = b_node(&b, "Clip", in, 3, NULL, 0);
        b_finish(&b, x, y);
        grad_opts o = KINKS;
        o.lo = -2, o.hi = 8;
        check_case("Clip(0, 6)", &b, o);
    }
}

/* op(X, C) with C a constant of shape cs (broadcast), or op(X, f(X)) with run-time second input. */
static void binary_const(const char *name, const char *op, int rank_c, const int64_t *cs, float lo,
                         float hi, int swap)
{
    bld b;
    b_start(&b, 53 + (uint64_t)rank_c);
    int x = b_input(&b, 3, (int64_t[]){3, 4, 5});
    int k = rank_c < 0 ? b_scalar(&b, tu_uniform(&b.rng, lo, hi)) : b_const(&b, rank_c, cs, lo, hi);
    int in[2] = {swap ? k : x, swap ? x : k};
    int y = b_node(&b, op, in, 2, NULL, 0);
    b_finish(&b, x, y);
    grad_opts o = SMOOTH;
    if (!strcmp(op, "Pow") && !swap)
        o.lo = 0.5f, o.hi = 2.0f;
    check_case(name, &b, o);
}

static void test_binary(void)
{
    static const char *ops[] = {"Add", "Sub", "Mul", "Div", "Pow"};
    char name[64];
    for (int i = 0; i < 5; i++) {
        const int p = !strcmp(ops[i], "Pow") || !strcmp(ops[i], "Div");
        const float lo = p ? 0.5f : -1.0f, hi = p ? 2.0f : 1.0f;
        snprintf(name, sizeof name, "%s X, C[3,1,1]", ops[i]);
        binary_const(name, ops[i], 3, (int64_t[]){3, 1, 1}, lo, hi, 0);
        snprintf(name, sizeof name, "%s X, C[5]", ops[i]);
        binary_const(name, ops[i], 1, (int64_t[]){5}, lo, hi, 0);
        snprintf(name, sizeof name, "%s X, scalar", ops[i]);
        binary_const(name, ops[i], -1, NULL, lo, hi, 0);
        if (strcmp(ops[i], "Div")) { /* Div C / X: X near 0 */
            snprintf(name, sizeof name, "%s C[4,1], X", ops[i]);
            binary_const(name, ops[i], 2, (int64_t[]){4, 1}, lo, hi, 1);
        }
    }
    /* both inputs at run time, broadcast within an image: X * mean(X over H,W) (SE) */
    static const char *ops2[] = {"Add", "Sub", "Mul", "Div", "Pow"};
    for (int i = 0; i < 5; i++) {
        bld b;
        b_start(&b, 61 + (uint64_t)i);
        int x = b_input(&b, 3, (int64_t[]){3, 4, 5});
        op_attr a[2] = {TU_INTS("axes", 2, 3), tu_int("keepdims", 1)};
        int s = b_node(&b, "ReduceMean", &x, 1, a, 2);
        int sg = b_node(&b, "Sigmoid", &s, 1, NULL, 0); /* in (0, 1): fine for Div and Pow */
        int in[2] = {x, sg};
        if (!strcmp(ops2[i], "Pow"))
            in[0] = b_node(&b, "Exp", &x, 1, NULL, 0); /* a positive base */
        int y = b_node(&b, ops2[i], in, 2, NULL, 0);
        b_finish(&b, x, y);
        snprintf(name, sizeof name, "%s X, sigmoid(mean(X)) [N,3,1,1]", ops2[i]);
        check_case(name, &b, SMOOTH);
    }
    { /* X read twice by one node and by two nodes: Add(Relu(X), Mul(X, X)) */
        bld b;
        b_start(&b, 71);
        int x = b_input(&b, 2, (int64_t[]){3, 4});
        int rl = b_node(&b, "Relu", &x, 1, NULL, 0);
        int sq = b_node(&b, "Mul", (int[]){x, x}, 2, NULL, 0);
        int y = b_node(&b, "Add", (int[]){rl, sq}, 2, NULL, 0);
        b_finish(&b, x, y);
        check_case("fan-out: Relu(X) + X*X", &b, KINKS);
    }
}

static void test_products(void)
{
    op_attr a[4];
    for (int v = 0; v < 4; v++) { /* Gemm: transB, alpha/beta, C a constant or run time */
        bld b;
        b_start(&b, 81 + (uint64_t)v);
        int x = b_input(&b, 1, (int64_t[]){12});
        int tb = v != 1;
        int w = b_const(&b, 2, tb ? (int64_t[]){5, 12} : (int64_t[]){12, 5}, -0.5f, 0.5f);
        int n = 0;
        a[n++] = tu_int("transB", tb);
        if (v >= 1)
            a[n++] = tu_float("alpha", 0.5f), a[n++] = tu_float("beta", 2.0f);
        int cin = v == 3 ? b_node(&b, "Gemm", (int[]){x, b_const(&b, 2, (int64_t[]){5, 12}, -1, 1)}, 2,
                                  (op_attr[]){tu_int("transB", 1)}, 1)
                         : b_const(&b, 1, (int64_t[]){5}, -1, 1);
        int y = b_node(&b, "Gemm", (int[]){x, w, cin}, 3, a, n);
        b_finish(&b, x, y);
        static const char *names[] = {"Gemm transB", "Gemm alpha beta", "Gemm alpha beta transB",
                                      "Gemm C at run time"};
        check_case(names[v], &b, SMOOTH);
    }
    { /* MatMul [N,4,6] x [6,5] */
        bld b;
        b_start(&b, 91);
        int x = b_input(&b, 2, (int64_t[]){4, 6});
        int y = b_node(&b, "MatMul", (int[]){x, b_const(&b, 2, (int64_t[]){6, 5}, -1, 1)}, 2, NULL, 0);
        b_finish(&b, x, y);
        check_case("MatMul [N,4,6] x [6,5]", &b, SMOOTH);
    }
    { /* MatMul [N,6] x [6,5] */
        bld b;
        b_start(&b, 92);
        int x = b_input(&b, 1, (int64_t[]){6});
        int y = b_node(&b, "MatMul", (int[]){x, b_const(&b, 2, (int64_t[]){6, 5}, -1, 1)}, 2, NULL, 0);
        b_finish(&b, x, y);
        check_case("MatMul [N,6] x [6,5]", &b, SMOOTH);
    }
    { /* attention-like: X [N,2,3,4] x Transpose(X) [N,2,4,3], both at run time */
        bld b;
        b_start(&b, 93);
        int x = b_input(&b, 3, (int64_t[]){2, 3, 4});
        int t = b_node(&b, "Transpose", &x, 1, (op_attr[]){TU_INTS("perm", 0, 1, 3, 2)}, 1);
        int y = b_node(&b, "MatMul", (int[]){x, t}, 2, NULL, 0);
        b_finish(&b, x, y);
        check_case("MatMul X x X^T (both run time)", &b, SMOOTH);
    }
    { /* MatMul with a broadcast constant batch of matrices [2,4,5] */
        bld b;
        b_start(&b, 94);
        int x = b_input(&b, 3, (int64_t[]){2, 3, 4});
        int y = b_node(&b, "MatMul", (int[]){x, b_const(&b, 3, (int64_t[]){2, 4, 5}, -1, 1)}, 2,
                       NULL, 0);
        b_finish(&b, x, y);
        check_case("MatMul [N,2,3,4] x [2,4,5]", &b, SMOOTH);
    }
}

static void layout_case(const char *name, const char *op, const int *extra, int n_extra,
                        const op_attr *a, int na, bld *b, int x)
{
    int in[8] = {x};
    if (n_extra)
        memcpy(in + 1, extra, sizeof(int) * (size_t)n_extra);
    int y = b_node(b, op, in, 1 + n_extra, a, na);
    b_finish(b, x, y);
    check_case(name, b, SMOOTH);
}

static void test_layout(void)
{
    bld b;
    int x;
#define START(seed) (b_start(&b, seed), x = b_input(&b, 3, (int64_t[]){3, 4, 5}))
    START(101);
    layout_case("Flatten", "Flatten", NULL, 0, (op_attr[]){tu_int("axis", 1)}, 1, &b, x);
    START(102);
    layout_case("Reshape [0,-1,2]", "Reshape", (int[]){b_ints(&b, 3, (int64_t[]){0, -1, 2})}, 1,
                NULL, 0, &b, x);
    START(103);
    layout_case("Unsqueeze axes 2", "Unsqueeze", (int[]){b_ints(&b, 1, (int64_t[]){2})}, 1, NULL, 0,
                &b, x);
    START(104);
    layout_case("Transpose perm 0,2,3,1", "Transpose", NULL, 0,
                (op_attr[]){TU_INTS("perm", 0, 2, 3, 1)}, 1, &b, x);
    START(105);
    layout_case("Slice axes 1,3 steps 1,2", "Slice",
                (int[]){b_ints(&b, 2, (int64_t[]){1, 0}), b_ints(&b, 2, (int64_t[]){3, 5}),
                        b_ints(&b, 2, (int64_t[]){1, 3}), b_ints(&b, 2, (int64_t[]){1, 2})},
                4, NULL, 0, &b, x);
    START(106);
    layout_case("Slice negative step", "Slice",
                (int[]){b_ints(&b, 1, (int64_t[]){-1}), b_ints(&b, 1, (int64_t[]){0}),
                        b_ints(&b, 1, (int64_t[]){2}), b_ints(&b, 1, (int64_t[]){-2})},
                4, NULL, 0, &b, x);
    START(107);
    layout_case("Gather axis 1 repeated indices", "Gather",
                (int[]){b_ints(&b, 3, (int64_t[]){2, 0, 2})}, 1, (op_attr[]){tu_int("axis", 1)}, 1,
                &b, x);
    START(108);
    layout_case("Gather axis 3 scalar-like", "Gather", (int[]){b_ints(&b, 1, (int64_t[]){-1})}, 1,
                (op_attr[]){tu_int("axis", 3)}, 1, &b, x);
    static const char *modes[] = {"constant", "reflect", "edge"};
    for (int m = 0; m < 3; m++) {
        char name[64];
        snprintf(name, sizeof name, "Pad %s", modes[m]);
        START(110 + (uint64_t)m);
        layout_case(name, "Pad", (int[]){b_ints(&b, 8, (int64_t[]){0, 0, 1, 2, 0, 0, 2, 1})}, 1,
                    (op_attr[]){tu_str("mode", modes[m])}, 1, &b, x);
    }
    START(115);
    layout_case("ReduceMean axes 1 keepdims 0", "ReduceMean", NULL, 0,
                (op_attr[]){TU_INTS("axes", 1), tu_int("keepdims", 0)}, 2, &b, x);
    START(116);
    layout_case("ReduceMean axes 2,3", "ReduceMean", NULL, 0, (op_attr[]){TU_INTS("axes", 2, 3)}, 1, &b, x);
    START(117);
    layout_case("Softmax axis -1", "Softmax", NULL, 0, (op_attr[]){tu_int("axis", -1)}, 1, &b, x);
    START(118);
    layout_case("Softmax axis 1", "Softmax", NULL, 0, (op_attr[]){tu_int("axis", 1)}, 1, &b, x);
    START(119);
    layout_case("LayerNormalization axis -1", "LayerNormalization",
                (int[]){b_const(&b, 1, (int64_t[]){5}, 0.5f, 1.5f), b_const(&b, 1, (int64_t[]){5}, -1, 1)},
                2, (op_attr[]){tu_int("axis", -1), tu_float("epsilon", 1e-5f)}, 2, &b, x);
    START(120);
    layout_case("LayerNormalization axis 2", "LayerNormalization",
                (int[]){b_const(&b, 2, (int64_t[]){4, 5}, 0.5f, 1.5f)}, 1,
                (op_attr[]){tu_int("axis", 2)}, 1, &b, x);
    START(121);
    layout_case("BatchNormalization (not folded)", "BatchNormalization",
                (int[]){b_const(&b, 1, (int64_t[]){3}, 0.5f, 1.5f), b_const(&b, 1, (int64_t[]){3}, -1, 1),
                        b_const(&b, 1, (int64_t[]){3}, -1, 1), b_const(&b, 1, (int64_t[]){3}, 0.5f, 2)},
                4, NULL, 0, &b, x);
    START(122);
    {
        int rl = b_node(&b, "Relu", &x, 1, NULL, 0);
        int sg = b_node(&b, "Sigmoid", &x, 1, NULL, 0);
        int y = b_node(&b, "Concat", (int[]){rl, x, sg}, 3, (op_attr[]){tu_int("axis", 1)}, 1);
        b_finish(&b, x, y);
        check_case("Concat axis 1 of Relu(X), X, Sigmoid(X)", &b, KINKS);
    }
    START(123);
    {
        int sg = b_node(&b, "Tanh", &x, 1, NULL, 0);
        int y = b_node(&b, "Concat", (int[]){x, sg}, 2, (op_attr[]){tu_int("axis", -1)}, 1);
        b_finish(&b, x, y);
        check_case("Concat axis -1", &b, SMOOTH);
    }
    START(124);
    { /* Squeeze after a ReduceMean keepdims: [N,3,1,1] -> [N,3] */
        int m = b_node(&b, "ReduceMean", &x, 1, (op_attr[]){TU_INTS("axes", 2, 3)}, 1);
        int y = b_node(&b, "Squeeze", (int[]){m, b_ints(&b, 2, (int64_t[]){2, 3})}, 2, NULL, 0);
        b_finish(&b, x, y);
        check_case("Squeeze axes 2,3", &b, SMOOTH);
    }
#undef START
}

/* An int64 constant of any shape (values given). */
static int b_int_tensor(bld *b, int rank, const int64_t *d, const int64_t *vals)
{
    const op_shape s = tu_shape(rank, d);
    size_t n = op_numel(&s);
    int64_t *v = malloc(sizeof(int64_t) * (n ? n : 1));
    memcpy(v, vals, sizeof(int64_t) * n);
    return b_tensor(b, OP_INT64, &s, 0, 1, v);
}

/* Expand and Where at run time; ViT's class token (ConstantOfShape, Equal, Where, Expand on
 * the batch size folded at load). */
static void test_fill(void)
{
    bld b;
    int x;
#define START(seed) (b_start(&b, seed), x = b_input(&b, 3, (int64_t[]){3, 4, 5}))
    START(141);
    { /* [N,3,1,5] -> [N,3,4,5]: the gradient sums over the copies */
        int m = b_node(&b, "ReduceMean", &x, 1, (op_attr[]){TU_INTS("axes", 2)}, 1);
        int y = b_node(&b, "Expand", (int[]){m, b_ints(&b, 4, (int64_t[]){1, 3, 4, 5})}, 2, NULL, 0);
        b_finish(&b, x, y);
        check_case("Expand [N,3,1,5] to [N,3,4,5]", &b, SMOOTH);
    }
    START(142);
    { /* a trailing broadcast: [N,3,4,1] by [1,6] -> [N,3,4,6] */
        int m = b_node(&b, "ReduceMean", &x, 1, (op_attr[]){TU_INTS("axes", 3)}, 1);
        int y = b_node(&b, "Expand", (int[]){m, b_ints(&b, 2, (int64_t[]){1, 6})}, 2, NULL, 0);
        b_finish(&b, x, y);
        check_case("Expand [N,3,4,1] by [1,6]", &b, SMOOTH);
    }
    START(143);
    {
        int64_t cv[20];
        for (int i = 0; i < 20; i++)
            cv[i] = (i * 7 + 3) % 3 == 0;
        int cond = b_int_tensor(&b, 2, (int64_t[]){4, 5}, cv);
        int other = b_const(&b, 2, (int64_t[]){1, 5}, -1, 1);
        int sg = b_node(&b, "Tanh", &x, 1, NULL, 0);
        int w1 = b_node(&b, "Where", (int[]){cond, x, other}, 3, NULL, 0);
        int y = b_node(&b, "Where", (int[]){cond, w1, sg}, 3, NULL, 0); /* X twice: sums */
        b_finish(&b, x, y);
        check_case("Where (constant condition) of X, a constant, Tanh(X)", &b, SMOOTH);
    }
    START(144);
    { /* torch's ViT: Expand(cls [1,3,1,5], Where(Equal(s, -1s), 1s, s)) for s = [N,3,1] */
        int sh = b_node(&b, "Shape", &x, 1, NULL, 0);
        int n = b_node(&b, "Gather", (int[]){sh, b_ints(&b, 1, (int64_t[]){0})}, 2,
                       (op_attr[]){tu_int("axis", 0)}, 1);
        int tgt = b_node(&b, "Concat", (int[]){n, b_ints(&b, 2, (int64_t[]){3, 1}), b_ints(&b, 1, (int64_t[]){-1})}, 3,
                         (op_attr[]){tu_int("axis", 0)}, 1);
        int ts = b_node(&b, "Shape", &tgt, 1, NULL, 0);
        op_attr one = {.name = "value", .type = OP_ATTR_TENSOR, .tdtype = OP_INT64, .i = 1, .n = 1};
        int ones = b_node(&b, "ConstantOfShape", &ts, 1, &one, 1);
        int minus = b_node(&b, "Mul", (int[]){ones, b_ints(&b, 1, (int64_t[]){-1})}, 2, NULL, 0);
        int eq = b_node(&b, "Equal", (int[]){tgt, minus}, 2, NULL, 0);
        int wh = b_node(&b, "Where", (int[]){eq, ones, tgt}, 3, NULL, 0);
        int cls = b_node(&b, "Expand", (int[]){b_const(&b, 4, (int64_t[]){1, 3, 1, 5}, -1, 1), wh}, 2,
                         NULL, 0);
        int y = b_node(&b, "Concat", (int[]){cls, x}, 2, (op_attr[]){tu_int("axis", 2)}, 1);
        b_finish(&b, x, y);
        check_case("class token: Expand of a constant to the batch, Concat with X", &b, SMOOTH);
    }
#undef START
}

/* A small network: Conv -> BN (folded) -> Relu -> MaxPool -> Conv -> Add (residual) -> GAP -> Gemm. */
static void test_network(void)
{
    bld b;
    b_start(&b, 131);
    int x = b_input(&b, 3, (int64_t[]){3, 8, 8});
    int c1 = b_node(&b, "Conv", (int[]){x, b_const(&b, 4, (int64_t[]){4, 3, 3, 3}, -0.5f, 0.5f)}, 2,
                    (op_attr[]){TU_INTS("pads", 1, 1, 1, 1)}, 1);
    int bn = b_node(&b, "BatchNormalization",
                    (int[]){c1, b_const(&b, 1, (int64_t[]){4}, 0.5f, 1.5f), b_const(&b, 1, (int64_t[]){4}, -1, 1),
                            b_const(&b, 1, (int64_t[]){4}, -1, 1), b_const(&b, 1, (int64_t[]){4}, 0.5f, 2)},
                    5, NULL, 0);
    int r1 = b_node(&b, "Relu", &bn, 1, NULL, 0);
    int mp = b_node(&b, "MaxPool", &r1, 1,
                    (op_attr[]){TU_INTS("kernel_shape", 2, 2), TU_INTS("strides", 2, 2)}, 2);
    int c2 = b_node(&b, "Conv", (int[]){mp, b_const(&b, 4, (int64_t[]){4, 4, 3, 3}, -0.5f, 0.5f)}, 2,
                    (op_attr[]){TU_INTS("pads", 1, 1, 1, 1)}, 1);
    int ad = b_node(&b, "Add", (int[]){c2, mp}, 2, NULL, 0);
    int gp = b_node(&b, "GlobalAveragePool", &ad, 1, NULL, 0);
    int fl = b_node(&b, "Flatten", &gp, 1, NULL, 0);
    int y = b_node(&b, "Gemm", (int[]){fl, b_const(&b, 2, (int64_t[]){6, 4}, -1, 1), b_const(&b, 1, (int64_t[]){6}, -1, 1)},
                   3, (op_attr[]){tu_int("transB", 1)}, 1);
    b_finish(&b, x, y);
    check_case("network: conv-bn-relu-pool-residual-gap-fc", &b, KINKS);
}

/* gr_backward_loss: d = p - onehot(l) from the logits, checked against softmax in double. */
static void test_loss(void)
{
    bld b;
    b_start(&b, 141);
    int x = b_input(&b, 1, (int64_t[]){6});
    int y = b_node(&b, "Gemm", (int[]){x, b_const(&b, 2, (int64_t[]){6, 6}, -1, 1)}, 2, NULL, 0);
    CHECK(!b_finish(&b, x, y), "loss graph: %s", b.gb.err);
    gr_ctx *c = NULL;
    char err[ADJ_ERRLEN];
    if (b.gb.failed || gr_ctx_new(b.gb.g, NB, GR_BACKWARD, &c, err, sizeof err)) {
        gr_free(b.gb.g);
        return;
    }
    float xin[NB * 6], gx[NB * 6], gr[NB * 6], d[NB * 6], losses[NB];
    int labels[NB] = {0, 3, 5};
    uint64_t rng = 5;
    for (int i = 0; i < NB * 6; i++)
        xin[i] = tu_uniform(&rng, -2, 2);
    gr_forward(c, xin, NB, err, sizeof err);
    const float *z = gr_output(c, 0, NULL);
    for (int i = 0; i < NB; i++) { /* softmax in double, the reference of d */
        double m = -INFINITY, s = 0;
        for (int k = 0; k < 6; k++)
            m = fmax(m, z[i * 6 + k]);
        for (int k = 0; k < 6; k++)
            s += exp(z[i * 6 + k] - m);
        for (int k = 0; k < 6; k++)
            d[i * 6 + k] = (float)(exp(z[i * 6 + k] - m) / s - (k == labels[i]));
    }
    CHECK(gr_backward_loss(c, labels, gx, losses, err, sizeof err) == 0, "loss: %s", err);
    gr_backward(c, d, gr, err, sizeof err);
    double worst = 0;
    for (int i = 0; i < NB * 6; i++)
        worst = fmax(worst, fabs(gx[i] - gr[i]));
    CHECK(worst < 1e-5, "loss gradient differs from softmax - onehot by %g", worst);
    for (int i = 0; i < NB; i++) {
        double m = -INFINITY, s = 0;
        for (int k = 0; k < 6; k++)
            m = fmax(m, z[i * 6 + k]);
        for (int k = 0; k < 6; k++)
            s += exp(z[i * 6 + k] - m);
        CHECK(fabs(losses[i] - (m - z[i * 6 + labels[i]] + log(s))) < 1e-5, "loss %d", i);
        CHECK(gr_grad_exponent(c, i) == 0, "no rescale expected");
    }
    labels[1] = 6;
    CHECK(gr_backward_loss(c, labels, gx, NULL, err, sizeof err) == ADJ_ERR_ARG,
          "a label out of range is refused");
    gr_ctx_free(c);
    gr_free(b.gb.g);
}

/* Refusals: a run-time input without a gradient; a read second output. */
static void test_refusals(void)
{
    char err[ADJ_ERRLEN];
    gr_ctx *c = NULL;
    { /* unbatched: LayerNormalization's Scale computed at run time */
        bld b;
        b_start(&b, 151);
        op_shape s = {2, {1, 6}};
        int x = b_tensor(&b, OP_FLOAT, &s, 0, 0, NULL);
        int sc = b_node(&b, "Reshape", (int[]){x, b_ints(&b, 1, (int64_t[]){6})}, 2, NULL, 0);
        int y = b_node(&b, "LayerNormalization", (int[]){x, sc}, 2, NULL, 0);
        CHECK(!b_finish(&b, x, y), "refusal graph: %s", b.gb.err);
        int rc = gr_ctx_new(b.gb.g, 1, GR_BACKWARD, &c, err, sizeof err);
        CHECK(rc == ADJ_ERR_UNSUPPORTED && strstr(err, "LayerNormalization") && strstr(err, "input 1"),
              "run-time Scale refused (%d: %s)", rc, err);
        CHECK(gr_backward_check(b.gb.g, err, sizeof err) == ADJ_ERR_UNSUPPORTED, "check refuses too");
        CHECK(gr_ctx_new(b.gb.g, 1, 0, &c, err, sizeof err) == 0, "forward still works: %s", err);
        gr_ctx_free(c);
        c = NULL;
        gr_free(b.gb.g);
    }
    { /* LayerNormalization's Mean output read by a node */
        bld b;
        b_start(&b, 152);
        int x = b_input(&b, 1, (int64_t[]){6});
        int o[3];
        b_node_n(&b, "LayerNormalization", (int[]){x, b_const(&b, 1, (int64_t[]){6}, 0.5f, 1.5f)}, 2,
                 NULL, 0, 2, o);
        int y = b_node(&b, "Add", (int[]){o[0], o[1]}, 2, NULL, 0);
        CHECK(!b_finish(&b, x, y), "refusal graph 2: %s", b.gb.err);
        int rc = gr_ctx_new(b.gb.g, 2, GR_BACKWARD, &c, err, sizeof err);
        CHECK(rc == ADJ_ERR_UNSUPPORTED && strstr(err, "output 1"), "a read Mean refused (%d: %s)",
              rc, err);
        gr_free(b.gb.g);
    }
    { /* gr_backward without GR_BACKWARD or without a forward */
        bld b;
        b_start(&b, 153);
        int x = b_input(&b, 1, (int64_t[]){4});
        int y = b_node(&b, "Relu", &x, 1, NULL, 0);
        b_finish(&b, x, y);
        float in[4] = {1, 2, 3, 4}, g[4];
        gr_ctx_new(b.gb.g, 1, 0, &c, err, sizeof err);
        gr_forward(c, in, 1, err, sizeof err);
        CHECK(gr_backward(c, in, g, err, sizeof err) == ADJ_ERR_STATE, "no GR_BACKWARD: refused");
        gr_ctx_free(c);
        gr_ctx_new(b.gb.g, 1, GR_BACKWARD, &c, err, sizeof err);
        CHECK(gr_backward(c, in, g, err, sizeof err) == ADJ_ERR_STATE, "no forward: refused");
        gr_ctx_free(c);
        gr_free(b.gb.g);
    }
}

/* ---- weight gradients (gr_backward_params) ------------------------------ */

/*
 * The weight gradients of a finished graph's constants P[k] (values, count:
 * borrowed from the graph) against central differences of its forward
 * (gr_refresh after each change: Winograd's weights), every coordinate
 * (up to 40 per constant), check_case's mismatch rule with a tolerance of
 * 5e-3 (the differences' own error is about 1e-3 here); and
 * bit-reproducible from a second context.
 */
static void check_params(const char *name, bld *b, float **P, const size_t *cnt, int np)
{
    CHECK(!b->gb.failed, "%s: build: %s", name, b->gb.err);
    if (b->gb.failed) {
        gr_free(b->gb.g);
        return;
    }
    gr_graph *g = b->gb.g;
    char err[ADJ_ERRLEN];
    gr_ctx *c = NULL, *c2 = NULL;
    CHECK(gr_ctx_new(g, NB, GR_BACKWARD | GR_PARAM_GRADS, &c, err, sizeof err) == 0 &&
              gr_ctx_new(g, NB, GR_BACKWARD | GR_PARAM_GRADS, &c2, err, sizeof err) == 0,
          "%s: context: %s", name, err);
    op_shape is, os;
    gr_input_shape(g, &is, NULL);
    gr_output_info(g, 0, &os, NULL, NULL);
    const size_t per_in = op_numel(&is), per_out = op_numel(&os);
    float *x = malloc(sizeof(float) * NB * per_in), *r = malloc(sizeof(float) * NB * per_out);
    uint64_t rng = b->rng ^ 0x51ed2701u;
    for (size_t i = 0; i < NB * per_in; i++)
        x[i] = tu_uniform(&rng, -1.0f, 1.0f);
    for (size_t i = 0; i < NB * per_out; i++)
        r[i] = tu_uniform(&rng, -1.0f, 1.0f);
    int bad = 0, checked = 0;
    double worst = 0;
    for (int k = 0; k < np && c && c2; k++) {
        float *gw = calloc(cnt[k], sizeof(float)), *gw2 = calloc(cnt[k], sizeof(float));
        gr_forward(c, x, NB, err, sizeof err);
        CHECK(gr_backward_params(c, r, NULL, P[k], cnt[k], gw, err, sizeof err) == 0,
              "%s: backward_params: %s", name, err);
        gr_forward(c2, x, NB, err, sizeof err);
        gr_backward_params(c2, r, NULL, P[k], cnt[k], gw2, err, sizeof err);
        CHECK(!memcmp(gw, gw2, sizeof(float) * cnt[k]), "%s: constant %d: not reproducible", name, k);
        double gmax = 0;
        for (size_t i = 0; i < cnt[k]; i++)
            gmax = fmax(gmax, fabs(gw[i]));
        CHECK(gmax > 0, "%s: constant %d: the gradient is zero", name, k);
        const size_t step = cnt[k] > 40 ? cnt[k] / 40 : 1;
        for (size_t i = 0; i < cnt[k]; i += step) {
            const float v0 = P[k][i], h = 1e-2f;
            P[k][i] = v0 + h;
            gr_refresh(g, err, sizeof err);
            const double lp = loss_of(c, x, NB, r, per_out);
            P[k][i] = v0 - h;
            gr_refresh(g, err, sizeof err);
            const double lm = loss_of(c, x, NB, r, per_out);
            P[k][i] = v0;
            gr_refresh(g, err, sizeof err);
            const double fd = (lp - lm) / ((double)(v0 + h) - (double)(v0 - h));
            const double e = fabs(gw[i] - fd) / fmax(fmax(fabs(gw[i]), fabs(fd)), 0.05 * gmax);
            worst = fmax(worst, e);
            bad += e > 5e-3; /* finite differences in float: about 1e-3 */
            checked++;
        }
        free(gw), free(gw2);
    }
    CHECK(bad == 0, "%s: %d of %d weight-gradient coordinates differ from finite differences "
          "(worst relative error %.3g)", name, bad, checked, worst);
    printf("%-44s %4d weights, %d off, worst %.2g\n", name, checked, bad, worst);
    free(x), free(r);
    gr_ctx_free(c);
    gr_ctx_free(c2);
    gr_free(g);
}

static void conv_params_case(const char *name, int64_t C, int64_t M, int64_t H, const op_attr *a,
                             int na, int group, int64_t k)
{
    bld b;
    float *P[2];
    size_t n[2];
    b_start(&b, 211 + (uint64_t)na * 5 + (uint64_t)C);
    int x = b_input(&b, 3, (int64_t[]){C, H, H + 1});
    int w = b_const(&b, 4, (int64_t[]){M, C / group, k, k}, -0.5f, 0.5f);
    P[0] = b.last, n[0] = b.last_n;
    int bias = b_const(&b, 1, (int64_t[]){M}, -0.5f, 0.5f);
    P[1] = b.last, n[1] = b.last_n;
    int y = b_node(&b, "Conv", (int[]){x, w, bias}, 3, a, na);
    b_finish(&b, x, y);
    check_params(name, &b, P, n, 2);
}

static void test_params(void)
{
    op_attr a[3];
    a[0] = TU_INTS("pads", 1, 1, 1, 1);
    conv_params_case("dW Conv 3x3 pad 1 (Winograd F(4x4))", 128, 130, 6, a, 1, 1, 3);
    conv_params_case("dW Conv 3x3 pad 1 (Winograd F(2x2))", 130, 128, 5, a, 1, 1, 3);
    a[0] = TU_INTS("pads", 0, 1, 1, 0), a[1] = TU_INTS("strides", 2, 2);
    conv_params_case("dW Conv 3x3 stride 2 asymmetric pads", 3, 4, 7, a, 2, 1, 3);
    a[0] = tu_int("group", 2), a[1] = TU_INTS("pads", 1, 1, 1, 1);
    conv_params_case("dW Conv group 2", 4, 6, 5, a, 2, 2, 3);
    a[0] = tu_int("group", 4), a[1] = TU_INTS("pads", 1, 1, 1, 1), a[2] = TU_INTS("strides", 2, 2);
    conv_params_case("dW Conv depthwise stride 2", 4, 4, 7, a, 3, 4, 3);
    conv_params_case("dW Conv 1x1 (direct)", 5, 3, 4, a, 0, 1, 1);
    for (int v = 0; v < 2; v++) { /* Gemm: transB 1 (fc), transB 0 with alpha and beta */
        bld b;
        float *P[2];
        size_t n[2];
        b_start(&b, 231 + (uint64_t)v);
        int x = b_input(&b, 1, (int64_t[]){12});
        int w = b_const(&b, 2, v ? (int64_t[]){12, 5} : (int64_t[]){5, 12}, -0.5f, 0.5f);
        P[0] = b.last, n[0] = b.last_n;
        int cc = b_const(&b, 1, (int64_t[]){5}, -1, 1);
        P[1] = b.last, n[1] = b.last_n;
        op_attr ga[3] = {tu_int("transB", !v), tu_float("alpha", 0.5f), tu_float("beta", 2.0f)};
        int y = b_node(&b, "Gemm", (int[]){x, w, cc}, 3, ga, v ? 3 : 1);
        b_finish(&b, x, y);
        check_params(v ? "dW Gemm alpha beta" : "dW Gemm transB (fc)", &b, P, n, 2);
    }
}

int main(void)
{
    test_params();
    test_conv();
    test_pool();
    test_unary();
    test_binary();
    test_products();
    test_layout();
    test_fill();
    test_network();
    test_loss();
    test_refusals();
    return tu_done();
}
