/*
 * test_ops_conv - the window kernels of ops_conv.c (Conv by every algorithm:
 * depthwise, Winograd, im2col, 1x1 products; MaxPool, AveragePool) against
 * a direct computation in double written here from the ONNX definitions.
 *
 * Each case is a one-node graph (gr_*) on N = 3 random images. Checked:
 * the forward; the input gradient (gr_backward) against the transposed
 * direct sum of a random dY; Conv's weight gradient (gr_backward_params)
 * against sum over images and outputs of dY x; and batch invariance (image
 * 0 alone gives the same bits as in the batch). An element's error is
 * measured against the sum of the absolute values of its terms (what
 * float32 rounding scales with): |y - ref| <= tol * (sum |terms| + 1e-30),
 * tol 1e-6 (2e-6 for Winograd F(2x2), 2e-5 for F(4x4), whose transforms
 * carry entries up to 8 and 1/24); the errors seen are a fifth of that or
 * less, a wrong tap or a missed border is of the order of 1.
 *
 * The fused epilogue in every path's blocks (Winograd's tile rows across
 * blocks, im2col's row blocks and chunks of images, 1x1, depthwise): the
 * cases marked relu also run as Conv + Relu, fused and unfused
 * (gr_set_fusion), whose outputs and input gradients must be the same bits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "testutil.h"

#define N 3

typedef struct {
    const char *name, *op;
    int64_t C, M, H, W, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    int group, bias, ceil, include_pad;
    double tol;
    int relu; /* also as Conv + Relu, fused against unfused */
} cs;

/* Output size of one axis as ONNX defines it (floor, or ceil_mode for pooling). */
static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1,
                        int ceil)
{
    const int64_t span = in + p0 + p1 - ((k - 1) * d + 1);
    int64_t o = (ceil ? (span + s - 1) / s : span / s) + 1;
    if (ceil && (o - 1) * s >= in + p0)
        o--;
    return o;
}

/* The input element of output (oy, ox) and tap (i, j), or -1 in the padding. */
static int64_t tap(const cs *c, int64_t oy, int64_t ox, int64_t i, int64_t j)
{
    const int64_t iy = oy * c->sh + i * c->dh - c->pt, ix = ox * c->sw + j * c->dw - c->pl;
    return iy < 0 || iy >= c->H || ix < 0 || ix >= c->W ? -1 : iy * c->W + ix;
}

typedef struct {
    gr_graph *g;
    float *w, *b; /* Conv's constants (owned by the graph) */
    size_t nw;
    int64_t OH, OW;
} built;

static int build(const cs *c, uint64_t *rng, int relu, int fuse, built *o, char *err,
                 size_t errsz)
{
    const int conv = !strcmp(c->op, "Conv");
    int t[4], nt = 0, rc = gr_new(&o->g, err, errsz);
    op_shape xs = {4, {OP_DIM_BATCH, c->C, c->H, c->W}}, ys = {0, {0}};
    rc = rc ? rc
            : gr_add_tensor(o->g, "x", OP_FLOAT, &xs, 1, 0, NULL, GR_DATA_OWN, &t[nt++], err, errsz);
    if (conv) {
        op_shape ws = {4, {c->M, c->C / c->group, c->kh, c->kw}}, bs = {1, {c->M}};
        o->nw = op_numel(&ws);
        o->w = malloc(sizeof(float) * o->nw), o->b = malloc(sizeof(float) * (size_t)c->M);
        for (size_t i = 0; i < o->nw; i++)
            o->w[i] = tu_uniform(rng, -0.5f, 0.5f);
        for (int64_t i = 0; i < c->M; i++)
            o->b[i] = tu_uniform(rng, -0.5f, 0.5f);
        rc = rc ? rc
                : gr_add_tensor(o->g, "w", OP_FLOAT, &ws, 0, 1, o->w, GR_DATA_OWN, &t[nt++], err,
                                errsz);
        if (c->bias)
            rc = rc ? rc
                    : gr_add_tensor(o->g, "b", OP_FLOAT, &bs, 0, 1, o->b, GR_DATA_OWN, &t[nt++],
                                    err, errsz);
        else
            free(o->b), o->b = NULL;
    }
    int y = -1, z = -1;
    rc = rc ? rc : gr_add_tensor(o->g, "y", OP_FLOAT, &ys, 0, 0, NULL, GR_DATA_OWN, &y, err, errsz);
    if (relu) /* the Conv writes z, a Relu z -> y */
        rc = rc ? rc
                : gr_add_tensor(o->g, "z", OP_FLOAT, &ys, 0, 0, NULL, GR_DATA_OWN, &z, err, errsz);
    const int64_t pads[4] = {c->pt, c->pl, c->pb, c->pr}, ks[2] = {c->kh, c->kw};
    const int64_t st[2] = {c->sh, c->sw}, di[2] = {c->dh, c->dw};
    op_attr a[8] = {{.name = "pads", .type = OP_ATTR_INTS, .ints = pads, .n = 4},
                    {.name = "kernel_shape", .type = OP_ATTR_INTS, .ints = ks, .n = 2},
                    {.name = "strides", .type = OP_ATTR_INTS, .ints = st, .n = 2}};
    int na = 3;
    if (conv) {
        a[na++] = (op_attr){.name = "dilations", .type = OP_ATTR_INTS, .ints = di, .n = 2};
        a[na++] = (op_attr){.name = "group", .type = OP_ATTR_INT, .i = c->group};
    } else {
        a[na++] = (op_attr){.name = "ceil_mode", .type = OP_ATTR_INT, .i = c->ceil};
        if (!strcmp(c->op, "AveragePool"))
            a[na++] = (op_attr){.name = "count_include_pad", .type = OP_ATTR_INT,
                                .i = c->include_pad};
        else
            a[na++] = (op_attr){.name = "dilations", .type = OP_ATTR_INTS, .ints = di, .n = 2};
    }
    rc = rc ? rc : gr_add_node(o->g, c->name, c->op, t, nt, relu ? &z : &y, 1, a, na, 17, err, errsz);
    if (relu)
        rc = rc ? rc : gr_add_node(o->g, "relu", "Relu", &z, 1, &y, 1, NULL, 0, 17, err, errsz);
    gr_set_fusion(o->g, fuse);
    rc = rc ? rc : gr_set_io(o->g, t[0], &y, 1, err, errsz);
    rc = rc ? rc : gr_finalize(o->g, err, errsz);
    const int pool = !conv;
    o->OH = out_size(c->H, c->kh, c->sh, c->dh, c->pt, c->pb, pool && c->ceil);
    o->OW = out_size(c->W, c->kw, c->sw, c->dw, c->pl, c->pr, pool && c->ceil);
    return rc;
}

/* The reference's outputs and error scales: y, ey [N][M][OH][OW]; dx, ex of the input;
 * dw, ew of Conv's weights (all zeroed by the caller). */
typedef struct {
    double *y, *ey, *dx, *ex, *dw, *ew;
} ref;

/* Conv in double: y = b + sum w x; dx = sum w dy; dw = sum dy x. */
static void conv_reference(const cs *c, const built *o, const float *x, const float *dy, ref *r)
{
    const int64_t OH = o->OH, OW = o->OW, HW = c->H * c->W, Cg = c->C / c->group;
    const int64_t Mg = c->M / c->group;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < c->M; m++)
            for (int64_t oyx = 0; oyx < OH * OW; oyx++) {
                const int64_t oy = oyx / OW, ox = oyx % OW, yi = (n * c->M + m) * OH * OW + oyx;
                double s = o->b ? o->b[m] : 0, e = fabs(s);
                for (int64_t cc = 0; cc < Cg; cc++) {
                    const int64_t xo = (n * c->C + m / Mg * Cg + cc) * HW;
                    for (int64_t ij = 0; ij < c->kh * c->kw; ij++) {
                        const int64_t k = tap(c, oy, ox, ij / c->kw, ij % c->kw);
                        const int64_t wi = (m * Cg + cc) * c->kh * c->kw + ij;
                        if (k < 0)
                            continue;
                        const double wv = o->w[wi], xv = x[xo + k];
                        s += wv * xv, e += fabs(wv * xv);
                        r->dx[xo + k] += wv * dy[yi], r->ex[xo + k] += fabs(wv * dy[yi]);
                        r->dw[wi] += dy[yi] * xv, r->ew[wi] += fabs(dy[yi] * xv);
                    }
                }
                r->y[yi] = s, r->ey[yi] = e;
            }
}

/* MaxPool (the first largest in the window takes dy) and AveragePool in double. */
static void pool_reference(const cs *c, const built *o, const float *x, const float *dy, ref *r)
{
    const int avg = !strcmp(c->op, "AveragePool");
    const int64_t OH = o->OH, OW = o->OW, HW = c->H * c->W;
    for (int64_t pl = 0; pl < N * c->C; pl++)
        for (int64_t oyx = 0; oyx < OH * OW; oyx++) {
            const int64_t oy = oyx / OW, ox = oyx % OW, yi = pl * OH * OW + oyx;
            const float *xp = x + pl * HW;
            double s = 0, best = -INFINITY;
            int64_t arg = -1, cnt = 0;
            for (int64_t i = 0; i < c->kh; i++)
                for (int64_t j = 0; j < c->kw; j++) {
                    const int64_t k = tap(c, oy, ox, i, j);
                    const int64_t iy = oy * c->sh + i * c->dh - c->pt;
                    const int64_t ix = ox * c->sw + j * c->dw - c->pl;
                    /* count_include_pad: the window's part inside the padded plane */
                    cnt += c->include_pad ? iy < c->H + c->pb && ix < c->W + c->pr : k >= 0;
                    if (k >= 0)
                        s += xp[k];
                    if (k >= 0 && xp[k] > best)
                        best = xp[k], arg = k;
                }
            r->y[yi] = avg ? s / (double)cnt : best;
            r->ey[yi] = avg ? 1.0 : fabs(best); /* inputs in [-1, 1) */
            for (int64_t ij = 0; avg && ij < c->kh * c->kw; ij++) {
                const int64_t k = tap(c, oy, ox, ij / c->kw, ij % c->kw);
                if (k >= 0)
                    r->dx[pl * HW + k] += dy[yi] / (double)cnt,
                        r->ex[pl * HW + k] += fabs(dy[yi]) / (double)cnt;
            }
            if (!avg)
                r->dx[pl * HW + arg] += dy[yi], r->ex[pl * HW + arg] += fabs(dy[yi]);
        }
}

/* Largest |got - ref| / (tol * (err + tiny)) over n values: <= 1 passes. */
static double worst(const float *got, const double *ref, const double *err, size_t n, double tol)
{
    double w = 0;
    for (size_t i = 0; i < n; i++)
        w = fmax(w, fabs(got[i] - ref[i]) / (tol * (err[i] + 1e-30)));
    return w;
}

/* c against its direct sums in double, and image 0 alone against the batch;
 * ties: the inputs rounded to halves (windows with equal largest taps). */
static void run_case(const cs *c, int ties)
{
    char err[ADJ_ERRLEN];
    uint64_t rng = 0x5eed ^ (uint64_t)(c->C * 131 + c->H * 7 + c->kh);
    built o = {0};
    gr_ctx *ctx = NULL;
    const int conv = !strcmp(c->op, "Conv");
    int rc = build(c, &rng, 0, 1, &o, err, sizeof err);
    const int flags = GR_BACKWARD | (conv ? GR_PARAM_GRADS : 0);
    rc = rc ? rc : gr_ctx_new(o.g, N, flags, &ctx, err, sizeof err);
    CHECK(rc == 0, "%s: %s", c->name, err);
    if (rc) {
        gr_free(o.g);
        return;
    }
    const int64_t M = conv ? c->M : c->C;
    const size_t nx = (size_t)N * c->C * c->H * c->W, ny = (size_t)N * M * o.OH * o.OW;
    float *x = malloc(sizeof(float) * nx), *dy = malloc(sizeof(float) * ny);
    float *gx = malloc(sizeof(float) * nx), *gw = calloc(o.nw + 1, sizeof(float));
    float *y = malloc(sizeof(float) * ny);
    ref r = {calloc(ny, sizeof(double)), calloc(ny, sizeof(double)), calloc(nx, sizeof(double)),
             calloc(nx, sizeof(double)), calloc(o.nw + 1, sizeof(double)),
             calloc(o.nw + 1, sizeof(double))};
    for (size_t i = 0; i < nx; i++)
        x[i] = ties ? roundf(tu_uniform(&rng, -2.0f, 2.0f)) / 2 : tu_uniform(&rng, -1.0f, 1.0f);
    for (size_t i = 0; i < ny; i++)
        dy[i] = tu_uniform(&rng, -1.0f, 1.0f);
    (conv ? conv_reference : pool_reference)(c, &o, x, dy, &r);
    CHECK(gr_forward(ctx, x, N, err, sizeof err) == 0, "%s: forward: %s", c->name, err);
    memcpy(y, gr_output(ctx, 0, NULL), sizeof(float) * ny);
    const double wy = worst(y, r.y, r.ey, ny, c->tol);
    CHECK(wy <= 1, "%s: forward off the direct sum by %.3g of its tolerance", c->name, wy);
    if (conv)
        rc = gr_backward_params(ctx, dy, gx, o.w, o.nw, gw, err, sizeof err);
    else
        rc = gr_backward(ctx, dy, gx, err, sizeof err);
    CHECK(rc == 0, "%s: backward: %s", c->name, err);
    const double wx = worst(gx, r.dx, r.ex, nx, c->tol);
    const double ww = conv ? worst(gw, r.dw, r.ew, o.nw, c->tol) : 0;
    CHECK(wx <= 1, "%s: input gradient off by %.3g of its tolerance", c->name, wx);
    CHECK(ww <= 1, "%s: weight gradient off by %.3g of its tolerance", c->name, ww);
    /* image 0 alone: the same bits */
    const size_t px = nx / N, py = ny / N;
    float *gx1 = malloc(sizeof(float) * px);
    CHECK(gr_forward(ctx, x, 1, err, sizeof err) == 0 &&
              !memcmp(y, gr_output(ctx, 0, NULL), sizeof(float) * py),
          "%s: image 0's output differs alone", c->name);
    CHECK(gr_backward(ctx, dy, gx1, err, sizeof err) == 0 && !memcmp(gx, gx1, sizeof(float) * px),
          "%s: image 0's input gradient differs alone", c->name);
    printf("%-44s forward %.2g, dX %.2g, dW %.2g of tolerance %.0e\n", c->name, wy, wx, ww, c->tol);
    free(x), free(dy), free(gx), free(gw), free(y), free(gx1);
    free(r.y), free(r.ey), free(r.dx), free(r.ex), free(r.dw), free(r.ew);
    gr_ctx_free(ctx);
    gr_free(o.g);
}

/* Forward and input gradient of N images of c's Conv + Relu (fuse: folded);
 * new buffers in *y, *dx; the graph's run-time node count in *nodes. */
static int run_relu(const cs *c, int fuse, const float *x, const float *dy, float **y, float **dx,
                    int *nodes, char *err)
{
    uint64_t rng = 0x5eed ^ (uint64_t)(c->C * 131 + c->H * 7 + c->kh);
    built o = {0};
    gr_ctx *ctx = NULL;
    int rc = build(c, &rng, 1, fuse, &o, err, ADJ_ERRLEN);
    rc = rc ? rc : gr_ctx_new(o.g, N, GR_BACKWARD, &ctx, err, ADJ_ERRLEN);
    const size_t nx = (size_t)N * c->C * c->H * c->W, ny = (size_t)N * c->M * o.OH * o.OW;
    *y = malloc(sizeof(float) * ny), *dx = malloc(sizeof(float) * nx);
    rc = rc ? rc : gr_forward(ctx, x, N, err, ADJ_ERRLEN);
    if (!rc)
        memcpy(*y, gr_output(ctx, 0, NULL), sizeof(float) * ny);
    rc = rc ? rc : gr_backward(ctx, dy, *dx, err, ADJ_ERRLEN);
    *nodes = rc ? 0 : gr_n_nodes(o.g);
    gr_ctx_free(ctx);
    gr_free(o.g);
    return rc;
}

/* c as Conv + Relu: the fused graph (one node) gives the unfused one's bits. */
static void relu_case(const cs *c)
{
    char err[ADJ_ERRLEN];
    uint64_t rng = 0xf00d ^ (uint64_t)c->C;
    const int64_t OH = (c->H + c->pt + c->pb - ((c->kh - 1) * c->dh + 1)) / c->sh + 1;
    const int64_t OW = (c->W + c->pl + c->pr - ((c->kw - 1) * c->dw + 1)) / c->sw + 1;
    const size_t nx = (size_t)N * c->C * c->H * c->W, ny = (size_t)N * c->M * OH * OW;
    float *x = malloc(sizeof(float) * nx), *dy = malloc(sizeof(float) * ny);
    for (size_t i = 0; i < nx; i++)
        x[i] = tu_uniform(&rng, -1.0f, 1.0f);
    for (size_t i = 0; i < ny; i++)
        dy[i] = tu_uniform(&rng, -1.0f, 1.0f);
    float *y[2] = {0}, *dx[2] = {0};
    int nodes[2], rc[2];
    for (int f = 0; f < 2; f++)
        rc[f] = run_relu(c, f, x, dy, &y[f], &dx[f], &nodes[f], err);
    CHECK(!rc[0] && !rc[1], "%s + Relu: %s", c->name, err);
    if (!rc[0] && !rc[1]) {
        CHECK(nodes[1] == 1 && nodes[0] == 2, "%s + Relu: %d nodes fused, %d unfused", c->name,
              nodes[1], nodes[0]);
        CHECK(!memcmp(y[0], y[1], sizeof(float) * ny), "%s + Relu: fused output differs", c->name);
        CHECK(!memcmp(dx[0], dx[1], sizeof(float) * nx), "%s + Relu: fused input gradient differs",
              c->name);
        printf("%-44s + Relu fused: the same bits\n", c->name);
    }
    for (int f = 0; f < 2; f++)
        free(y[f]), free(dx[f]);
    free(x), free(dy);
}

/* name, op, C, M, H, W, kh, kw, sh, sw, dh, dw, pads t l b r, group, bias, ceil, include_pad, tol,
 * relu */
static const cs CASES[] = {
    {"depthwise 3x3 stride 1 pad 1", "Conv", 8, 8, 12, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, 1, 0, 0, 1e-6, 0},
    {"depthwise 3x3 stride 2 pad 1", "Conv", 8, 8, 13, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 8, 1, 0, 0, 1e-6, 1},
    {"depthwise 5x5 stride 1 pad 2", "Conv", 5, 5, 14, 11, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 5, 0, 0, 0, 1e-6, 0},
    {"depthwise 5x5 stride 2 pad 2", "Conv", 5, 5, 15, 16, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 5, 1, 0, 0, 1e-6, 0},
    {"depthwise 3x3 dilation 2, asymmetric pads", "Conv", 4, 4, 11, 10, 3, 3, 1, 1, 2, 2, 0, 2, 1, 1, 4, 1, 0, 0, 1e-6, 0},
    {"depthwise 7x7 stride 1 pad 3", "Conv", 3, 3, 12, 12, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3, 3, 1, 0, 0, 1e-6, 0},
    {"depthwise 3x3 pad 3 (past the kernel)", "Conv", 3, 3, 6, 7, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3, 3, 1, 0, 0, 1e-6, 0},
    {"depthwise 3x3 on a 2x3 plane (no interior)", "Conv", 4, 4, 2, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 0, 0, 1e-6, 0},
    {"depthwise 3x3 stride (1,2)", "Conv", 4, 4, 9, 12, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1, 4, 1, 0, 0, 1e-6, 0},
    {"group 2 3x3 pad 1 (im2col per group)", "Conv", 6, 4, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 0, 0, 1e-6, 0},
    {"1x1 on a 7x7 plane", "Conv", 24, 20, 7, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1e-6, 0},
    {"1x1 on a 40x40 plane", "Conv", 8, 12, 40, 40, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1e-6, 1},
    {"1x1 stride 2", "Conv", 16, 8, 9, 10, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1e-6, 0},
    {"3x3 8 channels pad 1 (im2col)", "Conv", 8, 12, 6, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1e-6, 0},
    {"3x3 128 channels pad 1 (Winograd F(4x4))", "Conv", 128, 130, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 2e-5, 0},
    {"3x3 130 channels pad 1 (Winograd F(2x2))", "Conv", 130, 128, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 2e-6, 0},
    /* Winograd's blocks of tiles (ops_conv.c's conv_wino_block: 8 MB of transforms, so
     * 16 tiles at 2048 or 4096 channels: blocks across images, 27 tiles in 2 blocks) */
    {"3x3 256 to 160 on 13x11 (F(4x4))", "Conv", 256, 160, 13, 11, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 2e-5, 0},
    {"3x3 2048 to 16 on 9x10 (F(4x4), 2 blocks)", "Conv", 2048, 16, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 2e-5, 1},
    {"3x3 16 to 2048 on 10x9 (F(4x4), 2 blocks)", "Conv", 16, 2048, 10, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 2e-5, 1},
    {"3x3 4096 to 16 on 6x5 (F(2x2), 2 blocks)", "Conv", 4096, 16, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 2e-6, 1},
    {"3x3 16 channels pad 1 (Winograd F(4x4), the fewest)", "Conv", 16, 16, 11, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 2e-5, 0},
    {"3x3 15 to 16 channels pad 1 (im2col)", "Conv", 15, 16, 11, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1e-6, 0},
    {"3x3 128 channels on 1x7 (F(2x2), one tile row)", "Conv", 128, 136, 1, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 2e-6, 0},
    {"3x3 128 channels on 2x2 (F(2x2), one tile)", "Conv", 128, 128, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 2e-6, 0},
    {"3x3 stride 2 pad 1", "Conv", 16, 8, 11, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1e-6, 0},
    {"7x7 stride 2 pad 3 (ResNet's conv1)", "Conv", 3, 8, 23, 22, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, 1, 0, 0, 1e-6, 1},
    {"11x11 stride 4 (OverFeat's conv1)", "Conv", 3, 6, 35, 31, 11, 11, 4, 4, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1e-6, 0},
    {"7x7 stride 1 (OverFeat's conv2 kind)", "Conv", 6, 5, 13, 12, 7, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1e-6, 0},
    {"5x5 dilation 2 pad 2", "Conv", 3, 4, 12, 11, 5, 5, 1, 1, 2, 2, 2, 2, 2, 2, 1, 0, 0, 0, 1e-6, 0},
    /* columns of an image over CONV_COL_LIMIT (4 MiB): blocks of output rows, the last shorter */
    {"11x11 stride 4 on 231x231 (row blocks)", "Conv", 3, 4, 231, 231, 11, 11, 4, 4, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1e-6, 1},
    {"5x5 strides (2,1) dilations (1,2) asymmetric pads (row blocks)", "Conv", 7, 3, 141, 97, 5, 5, 2, 1, 1, 2, 2, 3, 1, 2, 1, 1, 0, 0, 1e-6, 0},
    /* two images' columns fit CONV_COL_LIMIT: chunks of 2 and 1 of the N = 3 */
    {"3x3 pad 0 on 112x112 (chunks of 2 images)", "Conv", 4, 5, 112, 112, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1e-6, 1},
    {"MaxPool 3x3 stride 2 pad 1", "MaxPool", 4, 4, 13, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1e-6, 0},
    {"MaxPool 2x2 stride 2", "MaxPool", 3, 3, 8, 9, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1e-6, 0},
    /* rows wide enough for the vectorised loop over the windows inside the plane */
    {"MaxPool 3x3 stride 2 pad 1 on 37x41", "MaxPool", 2, 2, 37, 41, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1e-6, 0},
    {"MaxPool 2x2 stride 2 on 30x39", "MaxPool", 2, 2, 30, 39, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1e-6, 0},
    {"MaxPool 3x3 stride 1 pad 1 on 20x35", "MaxPool", 2, 2, 20, 35, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1e-6, 0},
    {"MaxPool 3x3 stride 3 on 31x34 (OverFeat accurate's)", "MaxPool", 2, 2, 31, 34, 3, 3, 3, 3, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1e-6, 0},
    {"MaxPool 3x3 dilation 2 stride 2 on 30x37", "MaxPool", 2, 2, 30, 37, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 1e-6, 0},
    {"MaxPool 3x3 stride 2 ceil_mode", "MaxPool", 3, 3, 10, 9, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1e-6, 0},
    {"MaxPool 3x3 dilation 2 stride 1", "MaxPool", 2, 2, 9, 9, 3, 3, 1, 1, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 1e-6, 0},
    {"AveragePool 3x3 stride 2 pad 1", "AveragePool", 3, 3, 9, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1e-6, 0},
    {"AveragePool 3x3 pad 1 count_include_pad", "AveragePool", 3, 3, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1e-6, 0},
    {"AveragePool 2x2 stride 2 ceil_mode", "AveragePool", 2, 2, 7, 7, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1e-6, 0},
};

/* Cases run again with ties (the gradient to the first of the equal largest
 * taps: inside the plane, at its edges, and the loop without constants). */
static const char *const TIED[] = {"MaxPool 3x3 stride 2 pad 1 on 37x41",
                                   "MaxPool 3x3 dilation 2 stride 2 on 30x37"};

int main(void)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        run_case(&CASES[i], 0);
        if (CASES[i].relu)
            relu_case(&CASES[i]);
        for (size_t k = 0; k < sizeof TIED / sizeof TIED[0]; k++)
            if (!strcmp(CASES[i].name, TIED[k])) {
                char name[96];
                cs t = CASES[i];
                snprintf(name, sizeof name, "%s, ties", t.name);
                t.name = name;
                run_case(&t, 1);
            }
    }
    return tu_done();
}
