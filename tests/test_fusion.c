/*
 * test_fusion - the graph's fusion pass (graph.h: Relu, Clip and residual
 * Adds folded into the Conv or Gemm before them) gives the same bits as the
 * same graph built unfused (gr_set_fusion(g, 0)): the outputs, the input
 * gradient and the weight gradients (gr_backward_params), compared with
 * memcmp, on a ResNet-like graph (strided, im2col, Winograd, 1x1 direct and
 * strided convolutions, BatchNormalization folded, identity and downsampling
 * residual joins, Gemm + Relu, a Conv whose output has two readers) and a
 * MobileNet v2-like one (Clip(0, 6) after 1x1 and depthwise convolutions, a
 * residual Add without an activation). The unfused graph is the reference:
 * its kernels are the separate nodes' (test_graph_grad checks those against
 * finite differences). Also that fusion took place where it may, and not
 * where it may not (a Conv whose output has two readers). Last, sealed
 * constants (GR_DATA_SEALED, the folded BatchNormalization's): freed once
 * their Winograd Convs have U, kept while an im2col Conv reads them, and
 * the same bits as over borrowed weights (check_sealed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "testutil.h"

#define NB 4 /* images per batch */

/* A builder over one weight arena (the constants borrow it, as a layer model's do). */
typedef struct {
    tu_gb gb;      /* the graph being built */
    uint64_t rng;
    float *arena;
    size_t used, cap;
} bld;

static int b_tensor(bld *b, const op_shape *s, int batched, int is_const, void *data, int hold)
{
    return tu_gb_tensor(&b->gb, OP_FLOAT, s, batched, is_const, data, hold);
}

/* Random weights in [lo, hi) from the arena. */
static int b_w(bld *b, int rank, const int64_t *d, float lo, float hi)
{
    const op_shape s = tu_shape(rank, d);
    const size_t n = op_numel(&s);
    if (b->used + n > b->cap) {
        b->gb.failed = 1;
        snprintf(b->gb.err, sizeof b->gb.err, "weight arena too small");
        return -1;
    }
    float *v = b->arena + b->used;
    b->used += n;
    for (size_t i = 0; i < n; i++)
        v[i] = tu_uniform(&b->rng, lo, hi);
    return b_tensor(b, &s, 0, 1, v, GR_DATA_EXTERN);
}

static int b_node(bld *b, const char *op, const int *in, int n_in, const op_attr *a, int n_a)
{
    return tu_gb_node(&b->gb, op, in, n_in, a, n_a, 1, NULL, 13);
}

/* Conv C -> M, k x k, stride s, pad (k-1)/2, groups g, with a bias; BatchNormalization after it if bn. */
static int conv(bld *b, int x, int64_t C, int64_t M, int64_t k, int64_t s, int64_t g, int bn)
{
    const float r = 1.5f / (float)(C / g * k * k);
    const int64_t p = (k - 1) / 2;
    const op_attr a[3] = {TU_INTS("strides", s, s), TU_INTS("pads", p, p, p, p),
                          {.name = "group", .type = OP_ATTR_INT, .i = g}};
    int y = b_node(b, "Conv", (int[]){x, b_w(b, 4, (int64_t[]){M, C / g, k, k}, -r, 3 * r),
                                      b_w(b, 1, (int64_t[]){M}, -0.3f, 0.3f)}, 3, a, 3);
    if (!bn)
        return y;
    const int64_t d[1] = {M};
    return b_node(b, "BatchNormalization",
                  (int[]){y, b_w(b, 1, d, 0.5f, 1.5f), b_w(b, 1, d, -0.2f, 0.2f),
                          b_w(b, 1, d, -0.2f, 0.2f), b_w(b, 1, d, 0.5f, 2.0f)}, 5, NULL, 0);
}

static int relu(bld *b, int x) { return b_node(b, "Relu", &x, 1, NULL, 0); }
static int add(bld *b, int x, int y) { return b_node(b, "Add", (int[]){x, y}, 2, NULL, 0); }

static int relu6(bld *b, int x)
{
    static float lo = 0.0f, hi = 6.0f;
    op_shape s = {0, {0}};
    return b_node(b, "Clip", (int[]){x, b_tensor(b, &s, 0, 1, &lo, GR_DATA_EXTERN),
                                     b_tensor(b, &s, 0, 1, &hi, GR_DATA_EXTERN)}, 3, NULL, 0);
}

/* GlobalAveragePool, Flatten, Gemm C -> K (+ Relu if act). */
static int head(bld *b, int x, int64_t C, int64_t K, int act)
{
    int f = b_node(b, "Flatten", (int[]){b_node(b, "GlobalAveragePool", &x, 1, NULL, 0)}, 1, NULL, 0);
    const op_attr t = {.name = "transB", .type = OP_ATTR_INT, .i = 1};
    int y = b_node(b, "Gemm", (int[]){f, b_w(b, 2, (int64_t[]){K, C}, -0.3f, 0.3f),
                                      b_w(b, 1, (int64_t[]){K}, -0.3f, 0.3f)}, 3, &t, 1);
    return act ? relu(b, y) : y;
}

/* ResNet-like: a strided stem, a basic block (im2col), a downsampling block
 * (Winograd at 128 channels, a strided 1x1 shortcut computed after the main
 * path's last Conv), a bottleneck of 1x1 direct products, a Winograd join, a
 * Conv read twice. */
static int resnet_like(bld *b, int x)
{
    int s = relu(b, conv(b, x, 3, 16, 3, 2, 1, 1));                      /* 16 x 8 x 8 */
    int a = relu(b, add(b, conv(b, relu(b, conv(b, s, 16, 16, 3, 1, 1, 1)), 16, 16, 3, 1, 1, 1), s));
    int m1 = relu(b, conv(b, a, 16, 128, 3, 2, 1, 1));                   /* 128 x 4 x 4 */
    int m = conv(b, relu(b, conv(b, m1, 128, 128, 3, 1, 1, 1)), 128, 128, 3, 1, 1, 1);
    int d = relu(b, add(b, m, conv(b, a, 16, 128, 1, 2, 1, 1)));
    int e = relu(b, conv(b, d, 128, 32, 1, 1, 1, 0));
    int f = relu(b, add(b, d, conv(b, e, 32, 128, 1, 1, 1, 1)));          /* the Conv second */
    f = relu(b, add(b, conv(b, f, 128, 128, 3, 1, 1, 0), f));             /* Winograd's join */
    int two = conv(b, f, 128, 128, 1, 1, 1, 0);                           /* two readers */
    int t = add(b, relu(b, two), two);
    int h = head(b, t, 128, 24, 1);
    const op_attr tb = {.name = "transB", .type = OP_ATTR_INT, .i = 1};
    return b_node(b, "Gemm", (int[]){h, b_w(b, 2, (int64_t[]){10, 24}, -0.3f, 0.3f)}, 2, &tb, 1);
}

/* MobileNet v2-like: Clip(0, 6) after 1x1 and depthwise Convs, inverted residuals. */
static int mobilenet_like(bld *b, int x)
{
    int s = relu6(b, conv(b, x, 3, 16, 3, 2, 1, 1));                     /* 16 x 8 x 8 */
    int dw = relu6(b, conv(b, s, 16, 16, 3, 1, 16, 1));
    int p = conv(b, dw, 16, 8, 1, 1, 1, 1);
    int e = relu6(b, conv(b, p, 8, 48, 1, 1, 1, 1));
    int q = add(b, p, conv(b, relu6(b, conv(b, e, 48, 48, 3, 1, 48, 1)), 48, 8, 1, 1, 1, 1));
    int e2 = relu6(b, conv(b, q, 8, 48, 1, 1, 1, 1));
    int r = conv(b, relu6(b, conv(b, e2, 48, 48, 3, 2, 48, 1)), 48, 16, 1, 1, 1, 1); /* 4 x 4 */
    int u = relu6(b, conv(b, r, 16, 64, 1, 1, 1, 1));
    return head(b, u, 64, 10, 0);
}

typedef int (*net_fn)(bld *b, int x);

/* The builder's graph from input x to output y, finalized (fused or not);
 * NULL (err set, the graph freed) if building it failed. */
static gr_graph *b_finish(bld *b, int x, int y, int fuse, char *err)
{
    if (!b->gb.failed)
        gr_set_fusion(b->gb.g, fuse);
    if (tu_gb_finish(&b->gb, x, y)) {
        snprintf(err, ADJ_ERRLEN, "%s", b->gb.err);
        gr_free(b->gb.g);
        return NULL;
    }
    return b->gb.g;
}

/* The graph of fn over [N][3][16][16], weights from seed into arena (cap floats). */
static gr_graph *build(net_fn fn, int fuse, float *arena, size_t cap, char *err)
{
    bld b = {.rng = 99, .arena = arena, .cap = cap};
    tu_gb_start(&b.gb);
    op_shape xs = {4, {OP_DIM_BATCH, 3, 16, 16}};
    int x = b_tensor(&b, &xs, 1, 0, NULL, GR_DATA_EXTERN);
    int y = b.gb.failed ? -1 : fn(&b, x);
    return b_finish(&b, x, y, fuse, err);
}

/* Run-time nodes labelled exactly `label` (gr_node_label). */
static int count_label(const gr_graph *g, const char *label)
{
    int k = 0;
    for (int i = 0; i < gr_n_nodes(g); i++)
        k += !strcmp(gr_node_label(g, i), label);
    return k;
}

typedef struct {
    float *y, *dx, *dw;
    size_t ny;
} run_out;

/* Forward, input gradient and weight gradients (with arena: the constants
 * inside its na floats; NULL: none) of n images; new buffers in *o. */
static int run(gr_graph *g, const float *x, int n, const float *arena, size_t na, run_out *o,
               char *err)
{
    gr_ctx *c = NULL;
    op_shape s;
    gr_input_shape(g, &s, NULL);
    const size_t per = op_numel(&s); /* d[0] OP_DIM_BATCH: one image's */
    int rc = gr_ctx_new(g, NB, GR_BACKWARD | (arena ? GR_PARAM_GRADS : 0), &c, err, ADJ_ERRLEN) ||
             gr_forward(c, x, n, err, ADJ_ERRLEN);
    const float *y = rc ? NULL : gr_output(c, 0, &s);
    if (y) {
        o->ny = op_numel(&s);
        o->y = malloc(o->ny * sizeof(float));
        memcpy(o->y, y, o->ny * sizeof(float));
        float *dy = malloc(o->ny * sizeof(float));
        uint64_t r = 5;
        for (size_t i = 0; i < o->ny; i++)
            dy[i] = tu_uniform(&r, -1.0f, 1.0f);
        o->dx = calloc((size_t)n * per, sizeof(float));
        o->dw = arena ? calloc(na, sizeof(float)) : NULL;
        rc = gr_backward_params(c, dy, o->dx, arena, na, o->dw, err, ADJ_ERRLEN);
        free(dy);
    }
    gr_ctx_free(c);
    return rc || !y;
}

static void check_net(const char *name, net_fn fn, const char *const *want, int n_want,
                      const char *unfused_op)
{
    char err[ADJ_ERRLEN] = "";
    const size_t cap = (size_t)1 << 20;
    float *arena = calloc(cap, sizeof(float)), *arena2 = calloc(cap, sizeof(float));
    gr_graph *gf = build(fn, 1, arena, cap, err), *gu = gf ? build(fn, 0, arena2, cap, err) : NULL;
    CHECK(gf && gu, "%s: build: %s", name, err);
    if (!gf || !gu)
        goto done;
    CHECK(!memcmp(arena, arena2, cap * sizeof(float)), "%s: the same weights", name);
    printf("%s: %d nodes fused, %d unfused:", name, gr_n_nodes(gf), gr_n_nodes(gu));
    for (int i = 0; i < gr_n_nodes(gf); i++)
        printf(" %s", gr_node_label(gf, i));
    printf("\n");
    CHECK(gr_n_nodes(gf) < gr_n_nodes(gu), "%s: fusion removed nodes", name);
    for (int i = 0; i < n_want; i++)
        CHECK(count_label(gf, want[i]) > 0, "%s: a %s node", name, want[i]);
    CHECK(count_label(gu, unfused_op) > 0, "%s: the reference keeps its %s nodes", name, unfused_op);
    uint64_t r = 17;
    const size_t per = 3 * 16 * 16;
    float *x = malloc(NB * per * sizeof(float));
    for (size_t i = 0; i < NB * per; i++)
        x[i] = tu_uniform(&r, -2.0f, 2.0f);
    for (int n = 1; n <= NB; n += NB - 1) {
        run_out a = {0}, u = {0};
        int rc = run(gf, x, n, arena, cap, &a, err) || run(gu, x, n, arena2, cap, &u, err);
        CHECK(!rc, "%s: run: %s", name, err);
        if (!rc) {
            CHECK(a.ny == u.ny && !memcmp(a.y, u.y, a.ny * sizeof(float)),
                  "%s, %d images: outputs bit-identical", name, n);
            CHECK(!memcmp(a.dx, u.dx, (size_t)n * per * sizeof(float)),
                  "%s, %d images: input gradients bit-identical", name, n);
            CHECK(!memcmp(a.dw, u.dw, cap * sizeof(float)),
                  "%s, %d images: weight gradients bit-identical", name, n);
            double s = 0;
            for (size_t i = 0; i < (size_t)n * per; i++)
                s += a.dx[i] * (double)a.dx[i];
            CHECK(s > 0, "%s: a gradient that is not zero", name);
        }
        free(a.y), free(a.dx), free(a.dw), free(u.y), free(u.dx), free(u.dw);
    }
    free(x);
done:
    gr_free(gf);
    gr_free(gu);
    free(arena), free(arena2);
}

/* ---- sealed constants: dropped once Winograd's U is made ------------ */

/*
 * Offsets in sealed_net's weight arena: Conv A (16 -> 32, 3x3) with its bias
 * and BatchNormalization (scale, beta, mean, var), Conv B's weights (32 -> 32,
 * 3x3) and the biases of its two readers; then Conv A folded by the test
 * (op_fold_bn), the reference's weights.
 */
enum {
    SN_C = 16, SN_M = 32, SN_AW = 0, SN_AB = SN_AW + SN_M * SN_C * 9, SN_BN = SN_AB + SN_M,
    SN_BW = SN_BN + 4 * SN_M, SN_B1 = SN_BW + SN_M * SN_M * 9, SN_B2 = SN_B1 + SN_M,
    SN_FW = SN_B2 + SN_M, SN_FB = SN_FW + SN_M * SN_C * 9, SN_END = SN_FB + SN_M
};

/* A constant over arena[off..off + n): borrowed, or a sealed copy. */
static int b_arena(bld *b, const float *arena, int off, int rank, const int64_t *d, int sealed)
{
    const op_shape s = tu_shape(rank, d);
    const size_t n = op_numel(&s);
    float *v = (float *)arena + off;
    if (sealed && (v = malloc(n * sizeof *v)))
        memcpy(v, arena + off, n * sizeof *v);
    return b_tensor(b, &s, 0, 1, v, sealed ? GR_DATA_SEALED : GR_DATA_EXTERN);
}

/*
 * x [N][16][8][8] -> Relu(Conv A) -> t; Conv B1 (Winograd) of t, and with
 * two_readers Conv B2 (stride 2: im2col) of t with the same weight tensor;
 * the sum of their global averages. sealed: the constants are sealed copies
 * and Conv A has its BatchNormalization (folded at finalize, sealed too);
 * else they borrow the arena and Conv A has the test's folded weights.
 */
static gr_graph *sealed_net(const float *arena, int sealed, int two_readers, char *err)
{
    bld b = {0};
    tu_gb_start(&b.gb);
    op_shape xs = {4, {OP_DIM_BATCH, SN_C, 8, 8}};
    const int64_t wa[4] = {SN_M, SN_C, 3, 3}, wb[4] = {SN_M, SN_M, 3, 3}, m[1] = {SN_M};
    const op_attr s1[2] = {TU_INTS("strides", 1, 1), TU_INTS("pads", 1, 1, 1, 1)};
    const op_attr s2[2] = {TU_INTS("strides", 2, 2), TU_INTS("pads", 1, 1, 1, 1)};
    int x = b_tensor(&b, &xs, 1, 0, NULL, GR_DATA_EXTERN), a;
    if (sealed) {
        a = b_node(&b, "Conv", (int[]){x, b_arena(&b, arena, SN_AW, 4, wa, 1),
                                       b_arena(&b, arena, SN_AB, 1, m, 1)}, 3, s1, 2);
        int bn[5] = {a};
        for (int i = 0; i < 4; i++)
            bn[i + 1] = b_arena(&b, arena, SN_BN + i * SN_M, 1, m, 1);
        a = b_node(&b, "BatchNormalization", bn, 5, NULL, 0);
    } else
        a = b_node(&b, "Conv", (int[]){x, b_arena(&b, arena, SN_FW, 4, wa, 0),
                                       b_arena(&b, arena, SN_FB, 1, m, 0)}, 3, s1, 2);
    const int t = relu(&b, a), w = b_arena(&b, arena, SN_BW, 4, wb, sealed);
    int u = b_node(&b, "Conv", (int[]){t, w, b_arena(&b, arena, SN_B1, 1, m, sealed)}, 3, s1, 2);
    int y = b_node(&b, "GlobalAveragePool", &u, 1, NULL, 0);
    if (two_readers) {
        int v = b_node(&b, "Conv", (int[]){t, w, b_arena(&b, arena, SN_B2, 1, m, sealed)}, 3, s2, 2);
        y = add(&b, y, b_node(&b, "GlobalAveragePool", &v, 1, NULL, 0));
    }
    return b_finish(&b, x, y, 1, err);
}

/*
 * A sealed convolution weight (GR_DATA_SEALED: a loader's copy, or a folded
 * BatchNormalization's) is freed once every Conv reading it has its Winograd
 * U, and kept while an im2col Conv reads it: gr_const_bytes, and the outputs
 * and input gradients bit for bit those of the same graph over borrowed
 * weights (Conv A folded by the test with op_fold_bn: the graph's own fold),
 * also after gr_refresh, which has nothing to recompute from a freed one.
 */
static void check_sealed(int two_readers)
{
    const char *name = two_readers ? "sealed, a weight read by Winograd and im2col"
                                   : "sealed, a weight read by Winograd only";
    char err[ADJ_ERRLEN] = "";
    float *arena = malloc(SN_END * sizeof(float));
    uint64_t r = 23;
    for (int i = 0; i < SN_FW; i++)
        arena[i] = tu_uniform(&r, -0.1f, 0.12f);
    for (int i = 0; i < SN_M; i++) /* positive scales and variances */
        arena[SN_BN + i] = tu_uniform(&r, 0.5f, 1.5f), arena[SN_BN + 3 * SN_M + i] =
                                                          tu_uniform(&r, 0.5f, 2.0f);
    op_fold_bn(arena + SN_AW, arena + SN_AB, SN_M, SN_C * 9, arena + SN_BN, arena + SN_BN + SN_M,
               arena + SN_BN + 2 * SN_M, arena + SN_BN + 3 * SN_M, 1e-5f, arena + SN_FW,
               arena + SN_FB);
    gr_graph *gs = sealed_net(arena, 1, two_readers, err);
    gr_graph *gb = gs ? sealed_net(arena, 0, two_readers, err) : NULL;
    CHECK(gs && gb, "%s: build: %s", name, err);
    if (!gs || !gb)
        goto done;
    /* kept: the folded bias, Conv B's biases, and W_B while the im2col Conv reads it */
    const size_t kept = sizeof(float) * (SN_M * (two_readers ? 3 : 2) +
                                         (two_readers ? SN_M * SN_M * 9 : 0));
    CHECK(gr_const_bytes(gs) == kept, "%s: %zu bytes of constants held, want %zu", name,
          gr_const_bytes(gs), kept);
    CHECK(gr_const_bytes(gb) == 0, "%s: the reference borrows its weights", name);
    CHECK(gr_param_count(gs) == gr_param_count(gb), "%s: the parameters counted all the same",
          name);
    const size_t per = SN_C * 8 * 8;
    float *x = malloc(NB * per * sizeof(float));
    for (size_t i = 0; i < NB * per; i++)
        x[i] = tu_uniform(&r, -2.0f, 2.0f);
    for (int pass = 0; pass < 2; pass++) {
        if (pass)
            CHECK(gr_refresh(gs, err, sizeof err) == 0, "%s: gr_refresh: %s", name, err);
        for (int n = 1; n <= NB; n += NB - 1) {
            run_out a = {0}, u = {0};
            int rc = run(gs, x, n, NULL, 0, &a, err) || run(gb, x, n, NULL, 0, &u, err);
            CHECK(!rc, "%s: run: %s", name, err);
            if (!rc) {
                CHECK(a.ny == u.ny && !memcmp(a.y, u.y, a.ny * sizeof(float)),
                      "%s, %d images%s: outputs bit-identical", name, n, pass ? ", refreshed" : "");
                CHECK(!memcmp(a.dx, u.dx, (size_t)n * per * sizeof(float)),
                      "%s, %d images%s: input gradients bit-identical", name, n,
                      pass ? ", refreshed" : "");
            }
            free(a.y), free(a.dx), free(u.y), free(u.dx);
        }
    }
    printf("%s: %zu bytes of constants held\n", name, gr_const_bytes(gs));
    free(x);
done:
    gr_free(gs);
    gr_free(gb);
    free(arena);
}

int main(void)
{
    static const char *const res[] = {"Conv+Relu", "Conv+Add+Relu", "Gemm+Relu", "Conv"};
    check_net("resnet-like", resnet_like, res, 4, "Relu");
    /* the two-reader Conv keeps its Relu and Add; the identity and downsampling joins fuse */
    char err[ADJ_ERRLEN];
    const size_t cap = (size_t)1 << 20;
    float *arena = calloc(cap, sizeof(float));
    gr_graph *g = build(resnet_like, 1, arena, cap, err);
    CHECK(g && count_label(g, "Relu") == 1 && count_label(g, "Add") == 1 &&
          count_label(g, "Conv+Add+Relu") == 4, "resnet-like: which joins fused");
    gr_free(g);
    free(arena);
    static const char *const mob[] = {"Conv+Clip", "Conv+Add"};
    check_net("mobilenet-v2-like", mobilenet_like, mob, 2, "Clip");
    check_sealed(0);
    check_sealed(1);
    return tu_done();
}
