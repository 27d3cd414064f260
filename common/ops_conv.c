/*
 * ops_conv.c - the window operators of the graph engine: Conv (im2col +
 * gemm_f32, Winograd, 1x1 as a plain product, depthwise), MaxPool,
 * AveragePool and GlobalAveragePool; their parse, infer, scratch, forward,
 * input gradient and Conv's weight gradient. Their rows join ops.c's table
 * through opc_rows and opc_hooks (ops_int.h); the contracts are ops.h's.
 * ONNX's pads order is [x1_begin, x2_begin, x1_end, x2_end]; here pads are
 * kept per side as pb[] (begin) and pe[] (end).
 */
#include "ops_int.h"

#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Largest window size, stride, dilation and pad accepted (no overflow below). */
#define WIN_MAX ((int64_t)1 << 24)

/* ---- windows: Conv, MaxPool, AveragePool ------------------------------ */

enum { PAD_NOTSET, PAD_VALID, PAD_SAME_UPPER, PAD_SAME_LOWER };

typedef struct {
    int64_t k[2], s[2], d[2], pb[2], pe[2];
    int auto_pad, ceil, count_include_pad, group, nk; /* nk: kernel_shape given */
    /* resolved by infer */
    int64_t C, H, W, M, OH, OW;
    int direct; /* conv 1x1, stride 1, no pads: the input is the column matrix */
    int depthwise; /* conv with one input and one output channel per group: a direct loop */
    int wino;   /* conv 3x3, stride 1, pads 1, one group: Winograd F(wino x wino, 3x3)
                   (lyr_wino_choose, from the plane size alone), 0 otherwise */
    float *U; /* conv_prepare's: W transformed [a^2][M][C], a = wino + 2 (the forward, and
                 transposed the input gradient); owned, conv_release frees */
    op_epilogue epi; /* conv: what the graph fused after it (ops.h); input 3 the residual */
} win_params;

static int parse_auto_pad(const op_attr *a, int n, int *out, char *err, size_t errsz)
{
    const char *s;
    int rc = attr_str(a, n, "auto_pad", &s, err, errsz);
    if (rc)
        return rc;
    if (!s || !strcmp(s, "NOTSET"))
        *out = PAD_NOTSET;
    else if (!strcmp(s, "VALID"))
        *out = PAD_VALID;
    else if (!strcmp(s, "SAME_UPPER"))
        *out = PAD_SAME_UPPER;
    else if (!strcmp(s, "SAME_LOWER"))
        *out = PAD_SAME_LOWER;
    else
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute 'auto_pad' has value '%s'", s);
    return 0;
}

/* One of a window's 2-value attributes (kernel_shape, strides, dilations), each
 * value 1..2^24, into out; absent: out untouched, 0 returned. */
static int window_pair(const op_attr *a, int n, const char *name, int64_t out[2], int *given,
                       char *err, size_t errsz)
{
    int64_t v[8];
    int cnt, rc;
    if ((rc = attr_ints(a, n, name, 8, v, &cnt, err, errsz)) || cnt < 0)
        return rc;
    if (cnt != 2)
        return adj_fail(err, errsz, UNSUP,
                        "attribute '%s' has %d values: only 2-D windows are supported", name, cnt);
    if (v[0] < 1 || v[1] < 1 || v[0] > WIN_MAX || v[1] > WIN_MAX)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute '%s' must be 1..2^24", name);
    out[0] = v[0], out[1] = v[1];
    *given = 1;
    return 0;
}

/* Reads kernel_shape, strides, dilations, pads (2-D windows only). */
static int parse_window(win_params *p, const op_attr *a, int n, char *err, size_t errsz)
{
    int64_t v[8];
    int cnt, rc, given = 0;
    p->k[0] = p->k[1] = 0;
    p->s[0] = p->s[1] = p->d[0] = p->d[1] = 1;
    if ((rc = parse_auto_pad(a, n, &p->auto_pad, err, errsz)) ||
        (rc = window_pair(a, n, "kernel_shape", p->k, &p->nk, err, errsz)) ||
        (rc = window_pair(a, n, "strides", p->s, &given, err, errsz)) ||
        (rc = window_pair(a, n, "dilations", p->d, &given, err, errsz)))
        return rc;
    if ((rc = attr_ints(a, n, "pads", 8, v, &cnt, err, errsz)))
        return rc;
    if (cnt >= 0) {
        if (cnt != 4)
            return adj_fail(err, errsz, UNSUP, "attribute 'pads' has %d values, 4 supported", cnt);
        for (int i = 0; i < 4; i++)
            if (v[i] < 0 || v[i] > WIN_MAX)
                return adj_fail(err, errsz, UNSUP, "attribute 'pads' has %lld (0..2^24 supported)",
                                (long long)v[i]);
        if (p->auto_pad != PAD_NOTSET)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                            "attributes 'pads' and 'auto_pad' are both given");
        p->pb[0] = v[0], p->pb[1] = v[1], p->pe[0] = v[2], p->pe[1] = v[3];
    }
    return 0;
}

/* Output size of one axis; resolves auto_pad into pads. */
static int win_axis(win_params *p, int ax, int64_t in, int64_t *out, char *err, size_t errsz)
{
    const int64_t eff = (p->k[ax] - 1) * p->d[ax] + 1, s = p->s[ax];
    if (p->auto_pad == PAD_SAME_UPPER || p->auto_pad == PAD_SAME_LOWER) {
        int64_t o = (in + s - 1) / s;
        int64_t total = (o - 1) * s + eff - in;
        if (total < 0)
            total = 0;
        int64_t small = total / 2;
        p->pb[ax] = p->auto_pad == PAD_SAME_UPPER ? small : total - small;
        p->pe[ax] = total - p->pb[ax];
        *out = o;
        return 0;
    }
    if (p->auto_pad == PAD_VALID)
        p->pb[ax] = p->pe[ax] = 0;
    const int64_t span = in + p->pb[ax] + p->pe[ax] - eff;
    if (span < 0)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                        "window %lld (dilated) larger than the padded input %lld", (long long)eff,
                        (long long)(in + p->pb[ax] + p->pe[ax]));
    int64_t o = (p->ceil ? (span + s - 1) / s : span / s) + 1;
    /* ceil_mode: the last window must start inside the input or its left padding */
    if (p->ceil && (o - 1) * s >= in + p->pb[ax])
        o--;
    *out = o;
    return 0;
}

/*
 * Rows k0 .. k1-1 of the columns of output rows y0 .. y1-1 of one image
 * [C][H][W]: col [C*kh*kw][(y1-y0)*OW] (those rows OVERWRITTEN), rows ld
 * floats apart (ld >= (y1-y0)*OW: several images side by side): row
 * (c*kh + i)*kw + j, column (y-y0)*OW + x holds
 * in[c][y*sh + i*dh - pt][x*sw + j*dw - pl], 0 in the padding.
 */
static void im2col_rows(const float *in, const win_params *p, int64_t k0, int64_t k1, int64_t y0,
                        int64_t y1, int64_t ld, float *col)
{
    const int64_t H = p->H, W = p->W, OW = p->OW;
    const int64_t kh = p->k[0], kw = p->k[1], sh = p->s[0], sw = p->s[1];
    const int64_t dh = p->d[0], dw = p->d[1], pt = p->pb[0], pl = p->pb[1];
    for (int64_t k = k0; k < k1; k++) {
        const int64_t c = k / (kh * kw), i = k / kw % kh, j = k % kw;
        float *row = col + k * ld - y0 * OW;
        const float *plane = in + c * H * W;
        /* output columns x with 0 <= x*sw + j*dw - pl < W */
        const int64_t off = j * dw - pl;
        int64_t x0 = off >= 0 ? 0 : (-off + sw - 1) / sw;
        int64_t x1 = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;
        if (x1 > OW)
            x1 = OW;
        if (x0 > x1)
            x0 = x1;
        for (int64_t y = y0; y < y1; y++) {
            float *d = row + y * OW;
            const int64_t iy = y * sh + i * dh - pt;
            if (iy < 0 || iy >= H) {
                memset(d, 0, sizeof(float) * (size_t)OW);
                continue;
            }
            const float *src = plane + iy * W + off;
            for (int64_t x = 0; x < x0; x++)
                d[x] = 0.0f;
            if (sw == 1)
                memcpy(d + x0, src + x0, sizeof(float) * (size_t)(x1 - x0));
            else
                for (int64_t x = x0; x < x1; x++)
                    d[x] = src[x * sw];
            for (int64_t x = x1; x < OW; x++)
                d[x] = 0.0f;
        }
    }
}

/* All the columns of one image [C][H][W]: col [C*kh*kw][OH*OW], rows ld floats apart. */
static void im2col(const float *in, const win_params *p, int64_t C, int64_t ld, float *col)
{
    im2col_rows(in, p, 0, C * p->k[0] * p->k[1], 0, p->OH, ld, col);
}

/* ---- Conv ------------------------------------------------------------- */

static int conv_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    win_params *p = pp;
    int64_t g;
    int rc = parse_window(p, a, n, err, errsz);
    if (rc || (rc = attr_int(a, n, "group", 1, &g, err, errsz)))
        return rc;
    if (g < 1 || g > (1 << 20))
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute 'group' is %lld", (long long)g);
    p->group = (int)g;
    return 0;
}

static int conv_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                      char *err, size_t errsz)
{
    win_params *p = pp;
    const op_tensor *x = &in[0], *w = &in[1];
    char b1[64], b2[64];
    int rc;
    if ((rc = check_float(x, "X", err, errsz)) || (rc = check_float(w, "W", err, errsz)))
        return rc;
    if (x->shape.rank != 4 || w->shape.rank != 4)
        return adj_fail(err, errsz, UNSUP, "input X %s and W %s: only 2-D convolutions (rank 4)",
                        op_shape_str(&x->shape, b1, sizeof b1), op_shape_str(&w->shape, b2, sizeof b2));
    if (w->batched)
        return adj_fail(err, errsz, UNSUP, "input 'W' depends on the batch");
    p->C = x->shape.d[1], p->H = x->shape.d[2], p->W = x->shape.d[3], p->M = w->shape.d[0];
    if (p->C % p->group || p->M % p->group || w->shape.d[1] != p->C / p->group)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                        "input X %s, W %s and group %d do not agree",
                        op_shape_str(&x->shape, b1, sizeof b1), op_shape_str(&w->shape, b2, sizeof b2),
                        p->group);
    if (p->nk && (p->k[0] != w->shape.d[2] || p->k[1] != w->shape.d[3]))
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute 'kernel_shape' does not match W %s",
                        op_shape_str(&w->shape, b2, sizeof b2));
    p->k[0] = w->shape.d[2], p->k[1] = w->shape.d[3];
    if (p->k[0] > WIN_MAX || p->k[1] > WIN_MAX)
        return adj_fail(err, errsz, UNSUP, "a kernel over 2^24");
    if (n_in > 2 && in[2].dtype != OP_NONE) {
        if ((rc = check_float(&in[2], "B", err, errsz)))
            return rc;
        if (in[2].batched || op_numel(&in[2].shape) != (size_t)p->M || in[2].shape.rank != 1)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input 'B' must have %lld values",
                            (long long)p->M);
    }
    if ((rc = win_axis(p, 0, p->H, &p->OH, err, errsz)) || (rc = win_axis(p, 1, p->W, &p->OW, err, errsz)))
        return rc;
    /* BLAS takes int dimensions; the im2col scratch of one image must fit too */
    const double kk = (double)(p->C / p->group) * p->k[0] * p->k[1];
    if (kk > INT32_MAX || (double)p->OH * p->OW > INT32_MAX || kk * p->OH * p->OW > 4e9 ||
        p->M > INT32_MAX)
        return adj_fail(err, errsz, ADJ_ERR_LIMIT, "a convolution too large (%g columns)",
                        kk * p->OH * p->OW);
    p->direct = p->k[0] == 1 && p->k[1] == 1 && p->s[0] == 1 && p->s[1] == 1 && !p->pb[0] &&
                !p->pb[1] && !p->pe[0] && !p->pe[1];
    p->depthwise = p->group > 1 && p->group == p->C && p->M == p->C;
    p->wino = p->k[0] == 3 && p->k[1] == 3 && p->s[0] == 1 && p->s[1] == 1 && p->d[0] == 1 &&
                      p->d[1] == 1 && p->pb[0] == 1 && p->pb[1] == 1 && p->pe[0] == 1 &&
                      p->pe[1] == 1 && p->group == 1
                  ? lyr_wino_choose((int)p->H, (int)p->W, (int)p->C, (int)p->M)
                  : 0;
    op_shape s = {4, {x->shape.d[0], p->M, p->OH, p->OW}};
    set_out(&out[0], OP_FLOAT, x->batched, &s);
    return 0;
}

/* Columns of one group-1 im2col product, in floats (4 MiB): sized to stay in
 * the shared cache between im2col and the product's packing. */
#define CONV_COL_LIMIT ((int64_t)1 << 20)

/* Output planes of at most this many values (7x7) make products too narrow
 * for an image alone (a tile is 32 columns wide: 49 leave the second a third
 * full, and computed as C^T every image repacks all the weights): the
 * group-1 convolutions with such outputs, direct ones too, take their
 * columns a chunk of images side by side (conv_im2col_batched), never one image
 * a product. A choice by the shapes alone, as every other. */
#define CONV_SMALL_PLANE 64

static int conv_small_plane(const win_params *p)
{
    return p->group == 1 && p->OH * p->OW <= CONV_SMALL_PLANE;
}

/*
 * How a group-1 im2col convolution (not direct, or conv_small_plane) of up to n images is cut
 * into products, from the shapes alone: images whose columns fit
 * CONV_COL_LIMIT share one product, nb of them side by side (rows = OH);
 * an image whose columns do not runs alone (nb 1) in blocks of `rows`
 * output rows, whose product is the output's block itself. An output
 * element and the weight gradient's sums do not depend on the cut.
 */
typedef struct {
    int64_t nb, rows;
} conv_cut;

static conv_cut conv_chunk(const win_params *p, int64_t n)
{
    const int64_t K = p->C * p->k[0] * p->k[1], per = K * p->OH * p->OW;
    conv_cut c = {CONV_COL_LIMIT / per, p->OH};
    if (c.nb > n)
        c.nb = n;
    if (c.nb < 1) {
        c.nb = 1;
        c.rows = CONV_COL_LIMIT / (K * p->OW);
        c.rows = c.rows < 1 ? 1 : c.rows > p->OH ? p->OH : c.rows;
        const int64_t blocks = (p->OH + c.rows - 1) / c.rows;
        c.rows = (p->OH + blocks - 1) / blocks; /* blocks of equal size, the last no larger */
    }
    return c;
}

/* One product of a cut: images b0 .. b0+nb-1, their output rows y0 .. y1-1,
 * ld = nb * (y1-y0)*OW columns; ldy the row stride of the block's output
 * (and dY) in place, OH*OW for one image (several go through scratch, ld). */
typedef struct {
    int64_t b0, nb, y0, y1, ld, ldy;
} conv_blk;

/* The next product of the cut of N images after *k (zeroed: the first); 0 past the last. */
static int conv_blk_next(const win_params *p, conv_cut c, int64_t N, conv_blk *k)
{
    if (k->ld) {
        k->y0 = k->y1;
        if (k->y0 >= p->OH)
            k->y0 = 0, k->b0 += c.nb;
    }
    if (k->b0 >= N)
        return 0;
    k->nb = N - k->b0 < c.nb ? N - k->b0 : c.nb;
    k->y1 = k->y0 + c.rows < p->OH ? k->y0 + c.rows : p->OH;
    k->ld = k->nb * (k->y1 - k->y0) * p->OW;
    k->ldy = k->nb == 1 ? p->OH * p->OW : k->ld;
    return 1;
}

/* Floats of scratch a cut needs: its columns [K][nb * rows*OW] and, for
 * several images, their product (or gathered dY) [M][nb * OH*OW]. */
static size_t conv_cut_floats(const win_params *p, conv_cut c)
{
    const int64_t K = p->C * p->k[0] * p->k[1];
    return (size_t)(K * c.nb * c.rows * p->OW + (c.nb > 1 ? p->M * c.nb * p->OH * p->OW : 0));
}

/*
 * A block of the columns of nb images (im2col_rows of images x + b*C*H*W,
 * output rows y0 .. y1-1, image b's at col + b*(y1-y0)*OW, rows ld apart),
 * or its transpose added back (col2im_rows into dx), on the gemm threads:
 * parts of the column rows (fill) or of the channels, and of a channel's
 * input rows when there are fewer channels than parts (add back: each
 * float's sum in the same order whatever the parts), so that no two parts
 * write the same floats.
 */
typedef struct {
    const win_params *p;
    const float *x;
    float *col, *dx;
    int64_t nb, y0, y1, ld, per_part, bands; /* bands: input row bands a channel (add back) */
} conv_cols;

static void col2im_rows(const float *col, const win_params *p, int64_t c0, int64_t c1, int64_t y0,
                        int64_t y1, int64_t r0, int64_t r1, int64_t ld, float *dx);

static void conv_cols_part(void *arg, int part)
{
    const conv_cols *j = arg;
    const win_params *p = j->p;
    const int64_t HW = p->H * p->W, cols = (j->y1 - j->y0) * p->OW, kk = p->k[0] * p->k[1];
    const int64_t lim = j->dx ? p->C : p->C * kk, band = part % j->bands;
    const int64_t a = part / j->bands * j->per_part, e = a + j->per_part < lim ? a + j->per_part : lim;
    const int64_t r0 = p->H * band / j->bands, r1 = p->H * (band + 1) / j->bands;
    for (int64_t b = 0; b < j->nb; b++)
        if (j->dx)
            col2im_rows(j->col + b * cols, p, a, e, j->y0, j->y1, r0, r1, j->ld,
                        j->dx + b * p->C * HW);
        else
            im2col_rows(j->x + b * p->C * HW, p, a, e, j->y0, j->y1, j->ld, j->col + b * cols);
}

/* Runs a conv_cols job (j->dx set: col2im, else im2col) in a few parts per thread. */
static void conv_cols_run(conv_cols *j, gemm_ws *gemm)
{
    const int64_t n = j->dx ? j->p->C : j->p->C * j->p->k[0] * j->p->k[1];
    const int64_t want = 4 * (int64_t)gemm_ws_threads(gemm), parts = want > n ? n : want;
    j->per_part = (n + parts - 1) / parts;
    j->bands = j->dx && n < want ? (want + n - 1) / n : 1;
    j->bands = j->bands > j->p->H ? j->p->H : j->bands;
    gemm_parallel(gemm, (int)((n + j->per_part - 1) / j->per_part * j->bands), conv_cols_part, j);
}

/* Floats of a Winograd block's V and P together (8 MB): its transforms and
 * products stay in the L3 cache while it is done (measured against 2 MB:
 * 0.7-0.9x the time). */
#define CONV_WINO_BLOCK_FLOATS ((size_t)1 << 21)

/*
 * Tiles per Winograd block, from the node's channels alone (never the batch),
 * a multiple of 16 (the products' column panels): V and P [a^2][max(C,M)][nt]
 * within CONV_WINO_BLOCK_FLOATS, but at least M C / (4 (M + C)) tiles: each
 * block reads all of U (a^2 M C floats), and past the cache a tile's V and P
 * cost about 4 a^2 (M + C) floats of traffic, so smaller blocks would spend
 * more on reading U again than they save (OverFeat's 1024-channel layers:
 * 128 tiles, 38 MB, not 16).
 */
static size_t conv_wino_block(const win_params *p)
{
    const size_t a = (size_t)p->wino + 2, ch = (size_t)(p->C > p->M ? p->C : p->M);
    const size_t cache = CONV_WINO_BLOCK_FLOATS / (2 * a * a * ch);
    const size_t reuse = (size_t)(p->M * p->C / (4 * (p->M + p->C)));
    const size_t nt = ((cache > reuse ? cache : reuse) + 15) / 16 * 16;
    return nt < 16 ? 16 : nt;
}

/* The largest number of images a call gets, from a scratch call's input view:
 * a batched tensor's d[0] holds the context's max_batch, an unbatched one's
 * its static size. */
static int64_t view_batch(const op_tensor *x) { return x->shape.d[0] > 0 ? x->shape.d[0] : 1; }

/*
 * Forward and input-gradient scratch (the larger of the two): Winograd's
 * tile transforms of a block of tiles (conv_wino_block), V [a^2][max(C,M)][nt]
 * and the products P [a^2][max(C,M)][nt]; im2col's columns of a chunk of
 * images and the product's [M][chunk * OH*OW] before it is scattered to the images.
 */
static size_t conv_scratch(const void *pp, const op_tensor *in, int n_in, const op_tensor *out)
{
    const win_params *p = pp;
    const int64_t n = view_batch(&in[0]);
    if (p->depthwise)
        return 0;
    if (p->U) {
        const int64_t a = p->wino + 2, ch = p->C > p->M ? p->C : p->M;
        const size_t T = lyr_wino_tiles(p->wino, (int)n, (int)p->H, (int)p->W);
        const size_t nt = conv_wino_block(p);
        return 2 * (size_t)(a * a * ch) * (T < nt ? T : nt);
    }
    if (p->direct && !conv_small_plane(p))
        return 0;
    const int64_t K = p->C / p->group * p->k[0] * p->k[1], OHW = p->OH * p->OW;
    if (p->group > 1)
        return (size_t)(K * OHW);
    return conv_cut_floats(p, conv_chunk(p, n));
}

/* Winograd's transformed weights, from the constant W (none if W is not one; U
 * kept as made when the graph has dropped W: conv_unread, a sealed W that
 * cannot change). */
static int conv_prepare(void *pp, const op_tensor *in, int n_in, char *err, size_t errsz)
{
    win_params *p = pp;
    if (!p->wino || !in[1].data)
        return ADJ_OK;
    const int a = p->wino + 2;
    const size_t u = (size_t)a * a * p->M * p->C, huge = (size_t)2 << 20;
    const size_t pages = (u * sizeof(float) + huge - 1) / huge * huge;
    if (!p->U && u * sizeof(float) >= 2 * huge) {
        /* in 2 MB pages where the system gives them: the input gradient reads U
         * across its rows, a page per row (and a TLB miss) with 4 kB pages */
        void *m = NULL;
        if (!posix_memalign(&m, huge, pages))
            p->U = m;
#ifdef MADV_HUGEPAGE
        if (p->U)
            madvise(p->U, pages, MADV_HUGEPAGE);
#endif
    }
    if (!p->U && !(p->U = malloc(u * sizeof(float))))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for Winograd weights");
    lyr_wino_weights(p->wino, in[1].data, (int)p->M, (int)p->C, p->U);
    return ADJ_OK;
}

static void conv_release(void *pp)
{
    win_params *p = pp;
    free(p->U);
    p->U = NULL;
}

/* Once U is made no Conv kernel reads W: the forward and the input gradient go
 * through U, the weight gradient reads X and dY. */
static int conv_unread(const void *pp) { return ((const win_params *)pp)->U ? OPB_IN(1) : 0; }

/* One tile transform of a Winograd block on the workspace's threads, the
 * channels split into parts (lyr_wino_*: each writes its channels only). */
typedef struct {
    void (*fn)(int m, const float *src, int ch, int c0, int c1, int h, int w, size_t t0, int nt,
               float *dst); /* NULL: lyr_wino_output with bias */
    const win_params *p;
    const float *src, *bias;
    float *dst;
    int ch, nt, parts;
    size_t t0;
} wino_job;

static void wino_part(void *arg, int part)
{
    const wino_job *j = arg;
    const int c0 = (int)((int64_t)j->ch * part / j->parts);
    const int c1 = (int)((int64_t)j->ch * (part + 1) / j->parts);
    const int m = j->p->wino, H = (int)j->p->H, W = (int)j->p->W;
    if (j->fn)
        j->fn(m, j->src, j->ch, c0, c1, H, W, j->t0, j->nt, j->dst);
    else
        lyr_wino_output(m, j->src, j->ch, c0, c1, H, W, j->t0, j->nt, j->bias, j->dst);
}

static void wino_transform(wino_job j, gemm_ws *gemm)
{
    j.parts = j.ch < 32 ? j.ch : 32;
    gemm_parallel(gemm, j.parts, wino_part, &j);
}

/* The fused epilogue of the Winograd forward's tile rows g0 .. g1-1 (over
 * the batch: image g / th, tile row g % th), whose outputs are all written:
 * on the workspace's threads, the channels split into parts. */
typedef struct {
    const win_params *p;
    const float *res;
    float *y;
    int64_t g0, g1, th;
    int parts;
} wino_epi_job;

static void wino_epi_part(void *arg, int part)
{
    const wino_epi_job *j = arg;
    const win_params *p = j->p;
    const int64_t o0 = p->M * part / j->parts, o1 = p->M * (part + 1) / j->parts;
    const int64_t m = p->wino, HW = p->H * p->W;
    for (int64_t g = j->g0, ge; g < j->g1; g = ge) {
        const int64_t img = g / j->th;
        ge = j->g1 < (img + 1) * j->th ? j->g1 : (img + 1) * j->th;
        const int64_t r0 = (g - img * j->th) * m, r1e = (ge - img * j->th) * m;
        const int64_t r1 = r1e < p->H ? r1e : p->H;
        for (int64_t o = o0; o < o1; o++) {
            const int64_t at = (img * p->M + o) * HW + r0 * p->W;
            op_epilogue_run(&p->epi, j->y + at, j->res ? j->res + at : NULL,
                            (size_t)((r1 - r0) * p->W));
        }
    }
}

/*
 * A 3x3 pad-1 convolution of n NCHW images x [n][C][H][W] by Winograd, block
 * by block of at most conv_wino_block's tiles, the batch's split evenly (a
 * last block of a few tiles would read all of U for them; the blocks change
 * no result), the block's V and P in cache:
 * the input transform V, the a^2 products P[q] [M][nt] = U[q] [M][C] x V[q]
 * and the output transform, y [n][M][H][W] = that + bias, then p's fused
 * epilogue (res: the residual, or NULL) on the tile rows the block
 * completed, while they are in cache. With adjoint
 * nonzero, the input gradient instead (x the output gradient [n][M][H][W],
 * y += its [n][C][H][W] part): P = A x A^T, V[q] [C][nt] = U[q]^T x P[q],
 * B V B^T added at the windows, blocks in tile order. Every element is
 * computed the same way whatever the batch and the blocks.
 */
static void conv_wino(const win_params *p, const float *x, int64_t n, int adjoint,
                      const float *bias, const float *res, float *y, float *scratch,
                      gemm_ws *gemm)
{
    const int m = p->wino, a2 = (m + 2) * (m + 2), C = (int)p->C, M = (int)p->M;
    const size_t T = lyr_wino_tiles(m, (int)n, (int)p->H, (int)p->W), most = conv_wino_block(p);
    const size_t blocks = (T + most - 1) / most, even = ((T + blocks - 1) / blocks + 15) / 16 * 16;
    const size_t nb = even < most ? even : most;
    const size_t ch = (size_t)(C > M ? C : M), mc = (size_t)M * C;
    float *V = scratch, *P = scratch + (size_t)a2 * ch * (T < nb ? T : nb);
    const int64_t tw = (p->W + m - 1) / m;
    wino_epi_job e = {.p = p, .res = res, .y = y, .th = (p->H + m - 1) / m,
                      .parts = M < 32 ? M : 32};
    for (size_t t0 = 0; t0 < T; t0 += nb) {
        const int nt = (int)(T - t0 < nb ? T - t0 : nb);
        wino_job j = {.p = p, .t0 = t0, .nt = nt, .src = x, .bias = bias};
        if (!adjoint) {
            j.fn = lyr_wino_input, j.ch = C, j.dst = V;
            wino_transform(j, gemm);
            for (int q = 0; q < a2; q++) /* P[q] [M][nt] = U[q] [M][C] x V[q] [C][nt] */
                gemm_f32(gemm, GEMM_N, GEMM_N, M, nt, C, p->U + q * mc, C,
                         V + (size_t)q * C * nt, nt, 0, P + (size_t)q * M * nt, nt);
            j.fn = NULL, j.ch = M, j.src = P, j.dst = y;
        } else {
            j.fn = lyr_wino_output_adjoint, j.ch = M, j.dst = P;
            wino_transform(j, gemm);
            for (int q = 0; q < a2; q++) /* V[q] [C][nt] = U[q]^T [C][M] x P[q] [M][nt] */
                gemm_f32(gemm, GEMM_T, GEMM_N, C, nt, M, p->U + q * mc, C,
                         P + (size_t)q * M * nt, nt, 0, V + (size_t)q * C * nt, nt);
            j.fn = lyr_wino_input_adjoint, j.ch = C, j.src = V, j.dst = y;
        }
        wino_transform(j, gemm);
        e.g1 = (int64_t)(t0 + (size_t)nt) / tw; /* the tile rows done */
        if (!adjoint && (p->epi.act || res) && e.g1 > e.g0)
            gemm_parallel(gemm, e.parts, wino_epi_part, &e);
        e.g0 = e.g1;
    }
}

/* ---- depthwise convolutions ------------------------------------------- */

/*
 * A depthwise plane's geometry: input [H][W], output [OH][OW], one kh x kw
 * kernel, strides, dilations, pads before (the forward's, or for the input
 * gradient of a stride-1 one the adjoint's: pads (k-1)*d - p, maybe < 0).
 */
typedef struct {
    int64_t H, W, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl;
} dw_geom;

#define DW_INLINE static inline __attribute__((always_inline))

/* Largest kernel whose input gradient runs as a correlation (its rotated taps on the stack). */
#define DW_ROT_MAX 49

/* Output elements per part of a parallel depthwise call (a few hundred microseconds). */
#define DW_PART_ELEMS 32768

/* Element (oy, ox) near the border: s + the taps inside the plane, in row-major order. */
DW_INLINE float dw_edge(const dw_geom *g, const float *x, const float *w, float s, int64_t oy,
                        int64_t ox)
{
    for (int64_t i = 0; i < g->kh; i++) {
        const int64_t iy = oy * g->sh + i * g->dh - g->pt;
        if (iy < 0 || iy >= g->H)
            continue;
        for (int64_t j = 0; j < g->kw; j++) {
            const int64_t ix = ox * g->sw + j * g->dw - g->pl;
            if (ix >= 0 && ix < g->W)
                s += w[i * g->kw + j] * x[iy * g->W + ix];
        }
    }
    return s;
}

/* Elements ox0 .. ox1-1 of output row oy by dw_edge: written, or with acc added to y. */
DW_INLINE void dw_edge_run(const dw_geom *g, const float *x, const float *w, float bias, int acc,
                           float *yr, int64_t oy, int64_t ox0, int64_t ox1)
{
    for (int64_t ox = ox0; ox < ox1; ox++) {
        const float s = dw_edge(g, x, w, acc ? 0.0f : bias, oy, ox);
        yr[ox] = acc ? yr[ox] + s : s;
    }
}

/*
 * One plane: y [OH][OW] = bias + the taps inside x [H][W] in row-major
 * order, each product added in turn (padding adds nothing), OVERWRITTEN, or
 * with acc ADDED TO y (bias 0). Every element gets that same sum whichever
 * loop computes it: the interior (every tap inside) in a loop the compiler
 * vectorises over ox when kh .. dw are constants (the callers inline it
 * with them), the border element by element.
 */
DW_INLINE void dw_plane_k(const dw_geom *g, const float *restrict x, const float *restrict w,
                          float bias, int acc, float *restrict y, int64_t kh, int64_t kw,
                          int64_t sh, int64_t sw, int64_t dh, int64_t dw)
{
    const int64_t H = g->H, W = g->W, OW = g->OW, pt = g->pt, pl = g->pl;
    const int64_t last = W - 1 - (kw - 1) * dw + pl; /* interior: pl <= ox*sw <= last */
    int64_t xa = pl > 0 ? (pl + sw - 1) / sw : 0, xb = last < 0 ? 0 : last / sw + 1;
    xb = xb > OW ? OW : xb;
    xa = xa > xb ? xb : xa;
    for (int64_t oy = 0; oy < g->OH; oy++) {
        float *restrict yr = y + oy * OW;
        const int64_t iy0 = oy * sh - pt;
        if (iy0 < 0 || iy0 + (kh - 1) * dh >= H) {
            dw_edge_run(g, x, w, bias, acc, yr, oy, 0, OW);
            continue;
        }
        dw_edge_run(g, x, w, bias, acc, yr, oy, 0, xa);
        const float *xr = x + iy0 * W - pl;
        for (int64_t ox = xa; ox < xb; ox++) {
            float s = acc ? 0.0f : bias;
            for (int64_t i = 0; i < kh; i++)
                for (int64_t j = 0; j < kw; j++)
                    s += w[i * kw + j] * xr[i * dh * W + ox * sw + j * dw];
            yr[ox] = acc ? yr[ox] + s : s;
        }
        dw_edge_run(g, x, w, bias, acc, yr, oy, xb, OW);
    }
}

/* dw_plane_k with constants for the common kernels (3x3, 5x5, stride 1 or 2, no dilation). */
DW_INLINE void dw_plane_any(const dw_geom *g, const float *x, const float *w, float bias, int acc,
                            float *y)
{
#define DW_CASE(K, S, A)                                                                      \
    if (g->kh == K && g->kw == K && g->sh == S && g->sw == S && g->dh == 1 && g->dw == 1 &&   \
        acc == A) {                                                                           \
        dw_plane_k(g, x, w, bias, A, y, K, K, S, S, 1, 1);                                    \
        return;                                                                               \
    }
    DW_CASE(3, 1, 0) DW_CASE(3, 2, 0) DW_CASE(5, 1, 0) DW_CASE(5, 2, 0)
    DW_CASE(3, 1, 1) DW_CASE(5, 1, 1)
#undef DW_CASE
    dw_plane_k(g, x, w, bias, acc, y, g->kh, g->kw, g->sh, g->sw, g->dh, g->dw);
}

/* The same code compiled twice: for AVX2 (8 lanes; no FMA: the same bits) and the baseline. */
#if defined(__x86_64__) || defined(__i386__)
static __attribute__((target("avx2"))) void dw_plane_avx2(const dw_geom *g, const float *x,
                                                          const float *w, float bias, int acc,
                                                          float *y)
{
    dw_plane_any(g, x, w, bias, acc, y);
}
#else
#define dw_plane_avx2 dw_plane_base
#endif

static void dw_plane_base(const dw_geom *g, const float *x, const float *w, float bias, int acc,
                          float *y)
{
    dw_plane_any(g, x, w, bias, acc, y);
}

/* A depthwise call split into parts of whole planes (gemm_parallel). */
typedef struct {
    const win_params *p;
    dw_geom g;         /* the planes' geometry (the adjoint's for a correlation backward) */
    int mode;          /* DW_FORWARD, DW_ADJOINT (stride 1: the rotated kernel), DW_SCATTER */
    const float *x, *w, *bias;
    float *y;
    int64_t planes, per; /* planes per part */
    int avx2;
    const float *res;  /* forward with a fused epilogue: the residual planes, or NULL */
} dw_job;

enum { DW_FORWARD, DW_ADJOINT, DW_SCATTER };

static void conv_dw_plane_back(const win_params *p, const float *dy, const float *w, float *dx);

static void dw_part(void *arg, int part)
{
    const dw_job *j = arg;
    const int64_t K = j->p->k[0] * j->p->k[1], C = j->p->C;
    const int64_t in = j->g.H * j->g.W, out = j->g.OH * j->g.OW;
    const int64_t p0 = part * j->per, p1 = p0 + j->per < j->planes ? p0 + j->per : j->planes;
    float rot[DW_ROT_MAX];
    for (int64_t pl = p0; pl < p1; pl++) {
        const float *w = j->w + (pl % C) * K;
        if (j->mode == DW_SCATTER) {
            conv_dw_plane_back(j->p, j->x + pl * in, w, j->y + pl * out);
            continue;
        }
        if (j->mode == DW_ADJOINT) { /* the 180-degree rotation: the taps reversed */
            for (int64_t t = 0; t < K; t++)
                rot[t] = w[K - 1 - t];
            w = rot;
        }
        const float b = j->bias ? j->bias[pl % C] : 0.0f;
        (j->avx2 ? dw_plane_avx2 : dw_plane_base)(&j->g, j->x + pl * in, w, b,
                                                  j->mode == DW_ADJOINT, j->y + pl * out);
        if (j->mode == DW_FORWARD && (j->p->epi.act || j->p->epi.residual))
            op_epilogue_run(&j->p->epi, j->y + pl * out, j->res ? j->res + pl * out : NULL,
                            (size_t)out); /* the plane still in cache */
    }
}

/*
 * A depthwise convolution of n images on the workspace's threads, planes
 * in parts: forward (y OVERWRITTEN), or its input gradient (backward: x is
 * dY, y is dX, ADDED TO): for stride 1 and kernels up to DW_ROT_MAX taps the
 * correlation of dY with the rotated kernel (pads (k-1)*d - p), else the
 * forward's taps scattered back. Each plane's numbers do not depend on the
 * parts. The forward applies p's fused epilogue to each plane (res: the
 * residual, or NULL).
 */
static void conv_dw(const win_params *p, const float *x, const float *w, const float *bias,
                    const float *res, int64_t n, int backward, float *y, gemm_ws *gemm)
{
    dw_job j = {.p = p, .x = x, .w = w, .bias = bias, .y = y, .planes = n * p->C,
                .avx2 = op_have_avx2(), .res = res};
    j.g = (dw_geom){p->H, p->W, p->OH, p->OW, p->k[0], p->k[1], p->s[0], p->s[1], p->d[0],
                    p->d[1], p->pb[0], p->pb[1]};
    j.mode = DW_FORWARD;
    if (backward) {
        const int corr = p->s[0] == 1 && p->s[1] == 1 && p->k[0] * p->k[1] <= DW_ROT_MAX;
        j.mode = corr ? DW_ADJOINT : DW_SCATTER;
        j.g = (dw_geom){p->OH, p->OW, p->H, p->W, p->k[0], p->k[1], 1, 1, p->d[0], p->d[1],
                        (p->k[0] - 1) * p->d[0] - p->pb[0], (p->k[1] - 1) * p->d[1] - p->pb[1]};
    }
    int64_t parts = j.planes * p->OH * p->OW / DW_PART_ELEMS;
    parts = parts < 1 ? 1 : parts > j.planes ? j.planes : parts > 1024 ? 1024 : parts;
    j.per = (j.planes + parts - 1) / parts;
    gemm_parallel(gemm, (int)((j.planes + j.per - 1) / j.per), dw_part, &j);
}

/*
 * Output blocks after a product, on the gemm threads in parts of channels:
 * images b0 .. b0+nb-1, output rows y0 .. y1-1 (cols = (y1-y0)*OW values a
 * channel), the product's row m of image b at src + m*lds + b*cols (src may
 * be the output block itself): y = src + bias, then the fused epilogue,
 * while the block is still in cache. Each value's arithmetic is one
 * thread's, the same whatever the parts or the block.
 */
typedef struct {
    const win_params *p;
    const float *bias, *src, *res; /* res: the residual (y's layout), or NULL */
    float *y;                      /* the output of all images */
    int64_t lds, b0, nb, y0, cols, per; /* per: channels a part */
} conv_rows_job;

static void conv_rows_part(void *arg, int part)
{
    const conv_rows_job *j = arg;
    const win_params *p = j->p;
    const int64_t m0 = part * j->per, m1 = m0 + j->per < p->M ? m0 + j->per : p->M;
    const int64_t OHW = p->OH * p->OW;
    for (int64_t b = 0; b < j->nb; b++)
        for (int64_t m = m0; m < m1; m++) {
            const int64_t at = ((j->b0 + b) * p->M + m) * OHW + j->y0 * p->OW;
            op_epilogue_bias_run(&p->epi, j->src + m * j->lds + b * j->cols,
                                 j->bias ? j->bias + m : NULL, j->res ? j->res + at : NULL,
                                 j->y + at, (size_t)j->cols);
        }
}

/* Runs a conv_rows_job (its per set here) when there is anything to do. */
static void conv_rows_run(conv_rows_job *j, gemm_ws *gemm)
{
    const int copy = j->src != j->y + (j->b0 * j->p->M * j->p->OH + j->y0) * j->p->OW;
    if (!j->bias && !copy && !j->p->epi.act && !j->res)
        return;
    j->per = (DW_PART_ELEMS + j->nb * j->cols - 1) / (j->nb * j->cols);
    gemm_parallel(gemm, (int)((j->p->M + j->per - 1) / j->per), conv_rows_part, j);
}

/*
 * Convolutions image-parallel where the batch has at least as many images
 * as threads: `one` does image b, its products whole on one thread
 * (gemm_parallel_local, t that thread's buffers); the images left over
 * (fewer than the threads) go through products split over the threads (t
 * NULL). Each element has the same bits either way (gemm.h's contract).
 * The one-image-at-a-time convolutions (1x1, groups: conv_img_forward,
 * conv_img_backward) go image-parallel when direct (their columns are the
 * input itself; the others share one column scratch); the im2col ones
 * (conv_img_cols) with their columns in each thread's own scratch.
 */
typedef struct conv_img conv_img;
struct conv_img {
    const win_params *p;
    const float *x, *w, *bias, *res; /* forward; res: the residual or NULL */
    float *y;
    const float *dy; /* input gradient: dx += the adjoint of dy */
    float *dx, *scratch;
    gemm_ws *gemm;
    int64_t rows; /* conv_img_cols: output rows a block, conv_chunk(p, 1)'s */
    void (*one)(const conv_img *j, int64_t b, gemm_local *t);
};

static void conv_img_part(void *arg, int part, gemm_local *t)
{
    const conv_img *j = arg;
    j->one(j, part, t);
}

/*
 * conv_im2col_batched's image b (or its backward's, dx set) on t's thread
 * alone, a block of output rows at a time (the blocks an image alone gets
 * there), its columns in the thread's own scratch (gemm_local_scratch):
 * im2col, the product into the output block, then its bias and epilogue
 * while the block is in that core's cache; backward, dcol = W^T dY of the
 * block, added back by col2im. The same arithmetic for each value as the
 * split path's.
 */
static void conv_img_cols(const conv_img *j, int64_t b, gemm_local *t)
{
    const win_params *p = j->p;
    const int64_t K = p->C * p->k[0] * p->k[1], OW = p->OW, OHW = p->OH * OW;
    float *col = gemm_local_scratch(t);
    for (int64_t y0 = 0; y0 < p->OH; y0 += j->rows) {
        const int64_t y1 = y0 + j->rows < p->OH ? y0 + j->rows : p->OH, cols = (y1 - y0) * OW;
        if (j->dx) {
            gemm_f32_local(t, GEMM_T, GEMM_N, (int)K, (int)cols, (int)p->M, j->w, (int)K,
                           j->dy + b * p->M * OHW + y0 * OW, (int)OHW, 0, col, (int)cols);
            col2im_rows(col, p, 0, p->C, y0, y1, 0, p->H, cols, j->dx + b * p->C * p->H * p->W);
            continue;
        }
        im2col_rows(j->x + b * p->C * p->H * p->W, p, 0, K, y0, y1, cols, col);
        float *yb = j->y + b * p->M * OHW + y0 * OW;
        gemm_f32_local(t, GEMM_N, GEMM_N, (int)p->M, (int)cols, (int)K, j->w, (int)K, col,
                       (int)cols, 0, yb, (int)OHW);
        conv_rows_job r = {.p = p, .bias = j->bias, .src = yb, .res = j->res, .y = j->y,
                           .lds = OHW, .b0 = b, .nb = 1, .y0 = y0, .cols = cols, .per = p->M};
        conv_rows_part(&r, 0);
    }
}

/* Runs conv_img_cols on the first threads * (N / threads) images
 * image-parallel and returns how many (0: one thread, fewer images than
 * threads, or no memory for the threads' columns: the split path does them all). */
static int64_t conv_img_cols_run(conv_img *j, int64_t N)
{
    const int64_t T = gemm_ws_threads(j->gemm);
    const conv_cut cut = conv_chunk(j->p, 1);
    char err[ADJ_ERRLEN];
    if (T < 2 || N < T ||
        gemm_ws_reserve_local(j->gemm, conv_cut_floats(j->p, cut), err, sizeof err))
        return 0;
    j->rows = cut.rows;
    j->one = conv_img_cols;
    gemm_parallel_local(j->gemm, (int)(N / T * T), conv_img_part, j);
    return N / T * T;
}

/*
 * Group-1 im2col convolution over the batch, cut by conv_chunk: the columns
 * of a chunk of images side by side, one product Y [M][nb*OHW] = W [M][K] x
 * col scattered to the images; or one image's block of output rows, whose
 * product goes to the output directly. Each block gets the bias and the
 * fused epilogue (res: the residual, or NULL) right after its product.
 */
static void conv_im2col_batched(const win_params *p, const float *x, const float *w,
                                const float *bias, const float *res, int64_t N, float *y,
                                float *scratch, gemm_ws *gemm)
{
    const int64_t K = p->C * p->k[0] * p->k[1], OW = p->OW, OHW = p->OH * OW, HW = p->H * p->W;
    conv_img ji = {.p = p, .x = x, .w = w, .bias = bias, .res = res, .y = y, .gemm = gemm};
    const int64_t done = conv_small_plane(p) ? 0 : conv_img_cols_run(&ji, N); /* the rest split: */
    x += done * p->C * HW, y += done * p->M * OHW, res = res ? res + done * p->M * OHW : NULL;
    N -= done;
    const conv_cut cut = conv_chunk(p, N);
    for (conv_blk k = {0}; conv_blk_next(p, cut, N, &k);) {
        conv_cols j = {.p = p, .x = x + k.b0 * p->C * HW, .col = scratch, .nb = k.nb,
                       .y0 = k.y0, .y1 = k.y1, .ld = k.ld};
        conv_cols_run(&j, gemm);
        /* one image: the product [M][cols] is its output block already */
        float *prod = k.nb == 1 ? y + k.b0 * p->M * OHW + k.y0 * OW : scratch + K * k.ld;
        gemm_f32(gemm, GEMM_N, GEMM_N, (int)p->M, (int)k.ld, (int)K, w, (int)K, scratch,
                 (int)k.ld, 0, prod, (int)k.ldy);
        conv_rows_job r = {.p = p, .bias = bias, .src = prod, .res = res, .y = y, .lds = k.ldy,
                           .b0 = k.b0, .nb = k.nb, .y0 = k.y0, .cols = (k.y1 - k.y0) * OW};
        conv_rows_run(&r, gemm);
    }
}

/* C = op(A) B (or C += with acc): on t's thread alone, or split over j->gemm's threads. */
static void conv_img_gemm(const conv_img *j, gemm_local *t, gemm_op ta, int64_t M, int64_t N,
                          int64_t K, const float *A, int64_t lda, const float *B, int acc,
                          float *C, int64_t ldc)
{
    if (t)
        gemm_f32_local(t, ta, GEMM_N, (int)M, (int)N, (int)K, A, (int)lda, B, (int)N, acc, C,
                       (int)ldc);
    else
        gemm_f32(j->gemm, ta, GEMM_N, (int)M, (int)N, (int)K, A, (int)lda, B, (int)N, acc, C,
                 (int)ldc);
}

/* Image b's forward: each group's product yg [Mg][OHW] = W_g [Mg][K] x col
 * [K][OHW], then the bias and the fused epilogue (with t on this thread, while
 * the output is in its core's cache). */
static void conv_img_forward(const conv_img *j, int64_t b, gemm_local *t)
{
    const win_params *p = j->p;
    const int64_t G = p->group, Cg = p->C / G, Mg = p->M / G;
    const int64_t K = Cg * p->k[0] * p->k[1], OHW = p->OH * p->OW, HW = p->H * p->W;
    for (int64_t g = 0; g < G; g++) {
        const float *xg = j->x + (b * p->C + g * Cg) * HW;
        const float *col = xg;
        if (!p->direct) {
            im2col(xg, p, Cg, OHW, j->scratch);
            col = j->scratch;
        }
        conv_img_gemm(j, t, GEMM_N, Mg, OHW, K, j->w + g * Mg * K, K, col, 0,
                      j->y + (b * p->M + g * Mg) * OHW, OHW);
    }
    conv_rows_job r = {.p = p, .bias = j->bias, .src = j->y + b * p->M * OHW, .res = j->res,
                       .y = j->y, .lds = OHW, .b0 = b, .nb = 1, .cols = OHW, .per = p->M};
    if (t)
        conv_rows_part(&r, 0);
    else
        conv_rows_run(&r, j->gemm);
}

/* Runs j->one for images 0 .. N-1: the first threads * (N / threads) of a
 * direct convolution image-parallel, the rest split. */
static void conv_img_run(const conv_img *j, int64_t N)
{
    const int64_t T = gemm_ws_threads(j->gemm), local = j->p->direct ? N / T * T : 0;
    gemm_parallel_local(j->gemm, (int)local, conv_img_part, (void *)j);
    for (int64_t b = local; b < N; b++)
        j->one(j, b, NULL);
}

/*
 * The forward, with the fused epilogue (ops.h, op_epilogue; the graph's
 * fusion pass): every path applies it to each plane, block or tile row as
 * it writes it.
 */
static void conv_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                         float *scratch, gemm_ws *gemm)
{
    const win_params *p = pp;
    const float *x = in[0].data, *w = in[1].data;
    const float *bias = n_in > 2 && in[2].dtype != OP_NONE ? in[2].data : NULL;
    const float *res = p->epi.residual && n_in > 3 ? in[3].data : NULL;
    float *y = out[0].data;
    const int64_t N = in[0].shape.d[0], G = p->group;
    if (p->depthwise) {
        conv_dw(p, x, w, bias, res, N, 0, y, gemm);
        return;
    }
    if (p->U) {
        conv_wino(p, x, N, 0, bias, res, y, scratch, gemm);
        return;
    }
    if (G == 1 && (!p->direct || conv_small_plane(p))) {
        conv_im2col_batched(p, x, w, bias, res, N, y, scratch, gemm);
        return;
    }
    conv_img j = {.p = p, .x = x, .w = w, .bias = bias, .res = res, .y = y, .scratch = scratch,
                  .gemm = gemm, .one = conv_img_forward}; /* one image at a time (1x1, groups) */
    conv_img_run(&j, N);
}

/* ---- MaxPool, AveragePool --------------------------------------------- */

/* What MaxPool and AveragePool share: the window, a kernel_shape, ceil_mode. */
static int pool_parse(win_params *p, const op_attr *a, int n, char *err, size_t errsz)
{
    int64_t v;
    int rc = parse_window(p, a, n, err, errsz);
    if (rc)
        return rc;
    if (!p->nk)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute 'kernel_shape' is missing");
    if ((rc = attr_int(a, n, "ceil_mode", 0, &v, err, errsz)))
        return rc;
    p->ceil = v != 0;
    return 0;
}

static int maxpool_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    win_params *p = pp;
    int64_t v;
    int rc = pool_parse(p, a, n, err, errsz);
    if (rc || (rc = attr_int(a, n, "storage_order", 0, &v, err, errsz)))
        return rc;
    if (v != 0)
        return adj_fail(err, errsz, UNSUP, "attribute 'storage_order' = %lld (only 0)", (long long)v);
    return 0;
}

static int avgpool_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    win_params *p = pp;
    int64_t v;
    int rc = pool_parse(p, a, n, err, errsz);
    if (rc)
        return rc;
    if (p->d[0] != 1 || p->d[1] != 1)
        return adj_fail(err, errsz, UNSUP, "attribute 'dilations' (AveragePool takes none before opset 19)");
    if ((rc = attr_int(a, n, "count_include_pad", 0, &v, err, errsz)))
        return rc;
    p->count_include_pad = v != 0;
    return 0;
}

static int pool_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                      char *err, size_t errsz)
{
    win_params *p = pp;
    const op_tensor *x = &in[0];
    char b1[64];
    int rc;
    if ((rc = check_float(x, "X", err, errsz)))
        return rc;
    if (x->shape.rank != 4)
        return adj_fail(err, errsz, UNSUP, "input X %s: only 2-D pooling (rank 4)",
                        op_shape_str(&x->shape, b1, sizeof b1));
    if (n_out > 1 && out[1].dtype != OP_NONE)
        return adj_fail(err, errsz, UNSUP, "output 'Indices'");
    p->C = x->shape.d[1], p->H = x->shape.d[2], p->W = x->shape.d[3];
    if ((rc = win_axis(p, 0, p->H, &p->OH, err, errsz)) || (rc = win_axis(p, 1, p->W, &p->OW, err, errsz)))
        return rc;
    op_shape s = {4, {x->shape.d[0], p->C, p->OH, p->OW}};
    set_out(&out[0], OP_FLOAT, x->batched, &s);
    return 0;
}

/* Pooling planes in parallel parts (gemm_parallel): one job's views. */
typedef struct {
    const win_params *p;
    const float *x, *y, *dy;
    float *out; /* y (forward) or dx (backward) */
    int64_t per, planes;
    int avx2; /* MaxPool: the AVX2 build of its plane loop */
} pool_job;

/* The largest element of output (oy, ox)'s window in plane xp (NaN never is;
 * -inf for a window without a number). */
static inline float maxpool_window(const win_params *p, const float *xp, int64_t oy, int64_t ox)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < p->k[0]; i++) {
        const int64_t iy = oy * p->s[0] + i * p->d[0] - p->pb[0];
        if (iy < 0 || iy >= p->H)
            continue;
        for (int64_t j = 0; j < p->k[1]; j++) {
            const int64_t ix = ox * p->s[1] + j * p->d[1] - p->pb[1];
            if (ix >= 0 && ix < p->W && xp[iy * p->W + ix] > m)
                m = xp[iy * p->W + ix];
        }
    }
    return m;
}

/* The offset in the plane of the first tap of output (oy, ox)'s window equal
 * to m, in row-major order (as maxpool_window visits them), or -1. */
static inline int64_t maxpool_arg(const win_params *p, const float *xp, float m, int64_t oy,
                                  int64_t ox)
{
    for (int64_t i = 0; i < p->k[0]; i++) {
        const int64_t iy = oy * p->s[0] + i * p->d[0] - p->pb[0];
        if (iy < 0 || iy >= p->H)
            continue;
        for (int64_t j = 0; j < p->k[1]; j++) {
            const int64_t ix = ox * p->s[1] + j * p->d[1] - p->pb[1];
            if (ix >= 0 && ix < p->W && xp[iy * p->W + ix] == m)
                return iy * p->W + ix;
        }
    }
    return -1;
}

/* Outputs ox0 .. ox1-1 of row oy of a MaxPool plane by maxpool_window (the
 * forward, into out = y) or, with dy, maxpool_arg (the backward, into out = dx). */
static inline void maxpool_edge(const win_params *p, const float *x, const float *y,
                                const float *dy, float *out, int64_t oy, int64_t ox0, int64_t ox1)
{
    const int64_t r = oy * p->OW;
    for (int64_t ox = ox0; ox < ox1; ox++) {
        if (!dy)
            out[r + ox] = maxpool_window(p, x, oy, ox);
        else {
            const int64_t at = maxpool_arg(p, x, y[r + ox], oy, ox);
            if (at >= 0)
                out[at] += dy[r + ox];
        }
    }
}

/* The backward's outputs xa .. xb-1 of a row whose windows lie inside the
 * plane (xr, dxr: the window of ox = 0's first tap in x and dx), in chunks
 * of MAXPOOL_CHUNK: the tap of each window that takes its gradient (the
 * first equal to y, tap t = i kw + j; -1 none), searched from the last tap
 * to the first with selects (vectorised over ox: no branch on where the
 * maximum is), then the gradients added in ox order, as before. */
enum { MAXPOOL_CHUNK = 64 };

DW_INLINE void maxpool_back_row(const float *restrict xr, const float *y, const float *dy,
                                float *restrict dxr, int64_t W, int64_t xa, int64_t xb,
                                int64_t kh, int64_t kw, int64_t sw, int64_t dh, int64_t dw)
{
    int32_t tap[MAXPOOL_CHUNK];
    for (int64_t c0 = xa; c0 < xb; c0 += MAXPOOL_CHUNK) {
        const int64_t c1 = xb - c0 < MAXPOOL_CHUNK ? xb : c0 + MAXPOOL_CHUNK;
        for (int64_t ox = c0; ox < c1; ox++) {
            const float m = y[ox];
            int32_t t = -1;
            for (int64_t i = kh - 1; i >= 0; i--)
                for (int64_t j = kw - 1; j >= 0; j--)
                    t = xr[i * dh * W + ox * sw + j * dw] == m ? (int32_t)(i * kw + j) : t;
            tap[ox - c0] = t;
        }
        for (int64_t ox = c0; ox < c1; ox++) {
            const int32_t t = tap[ox - c0];
            if (t >= 0)
                dxr[t / kw * dh * W + ox * sw + t % kw * dw] += dy[ox];
        }
    }
}

/*
 * One MaxPool plane: the forward (y [OH][OW] OVERWRITTEN from x [H][W]) or,
 * with dy, the backward (each output's gradient added to the first tap of
 * its window equal to the kept y, into dx = out). The windows with every
 * tap inside the plane in a loop without bounds checks (vectorised over ox
 * when kh .. dw are constants: the callers inline it with them), the
 * others by maxpool_window / maxpool_arg: the same taps in the same order,
 * so the same values either way.
 */
DW_INLINE void maxpool_plane_k(const win_params *p, const float *restrict x, const float *y,
                               const float *dy, float *restrict out, int64_t kh, int64_t kw,
                               int64_t sh, int64_t sw, int64_t dh, int64_t dw)
{
    const int64_t H = p->H, W = p->W, OW = p->OW, pt = p->pb[0], pl = p->pb[1];
    const int64_t last = W - 1 - (kw - 1) * dw + pl; /* inside: pl <= ox*sw <= last */
    int64_t xa = pl > 0 ? (pl + sw - 1) / sw : 0, xb = last < 0 ? 0 : last / sw + 1;
    xb = xb > OW ? OW : xb;
    xa = xa > xb ? xb : xa;
    for (int64_t oy = 0; oy < p->OH; oy++) {
        const int64_t iy0 = oy * sh - pt, r = oy * OW;
        const int inside = iy0 >= 0 && iy0 + (kh - 1) * dh < H;
        maxpool_edge(p, x, y, dy, out, oy, 0, inside ? xa : OW);
        if (!inside)
            continue;
        const float *xr = x + iy0 * W - pl;
        if (!dy)
            for (int64_t ox = xa; ox < xb; ox++) {
                float m = -INFINITY;
                for (int64_t i = 0; i < kh; i++)
                    for (int64_t j = 0; j < kw; j++) {
                        const float v = xr[i * dh * W + ox * sw + j * dw];
                        m = v > m ? v : m;
                    }
                out[r + ox] = m;
            }
        else
            maxpool_back_row(xr, y + r, dy + r, out + iy0 * W - pl, W, xa, xb, kh, kw, sw, dh, dw);
        maxpool_edge(p, x, y, dy, out, oy, xb, OW); /* after: dx's sums in (oy, ox) order */
    }
}

/* maxpool_plane_k with constants for the common windows (3x3 stride 2, 1 or 3, 2x2 stride 2). */
DW_INLINE void maxpool_plane_any(const win_params *p, const float *x, const float *y,
                                 const float *dy, float *out)
{
#define POOL_CASE(K, S)                                                                       \
    if (p->k[0] == K && p->k[1] == K && p->s[0] == S && p->s[1] == S && p->d[0] == 1 &&       \
        p->d[1] == 1) {                                                                       \
        maxpool_plane_k(p, x, y, dy, out, K, K, S, S, 1, 1);                                  \
        return;                                                                               \
    }
    POOL_CASE(3, 2) POOL_CASE(3, 1) POOL_CASE(3, 3) POOL_CASE(2, 2)
#undef POOL_CASE
    maxpool_plane_k(p, x, y, dy, out, p->k[0], p->k[1], p->s[0], p->s[1], p->d[0], p->d[1]);
}

#if defined(__x86_64__) || defined(__i386__)
static __attribute__((target("avx2"))) void maxpool_plane_avx2(const win_params *p,
                                                               const float *x, const float *y,
                                                               const float *dy, float *out)
{
    maxpool_plane_any(p, x, y, dy, out);
}
#else
#define maxpool_plane_avx2 maxpool_plane_base
#endif

static void maxpool_plane_base(const win_params *p, const float *x, const float *y,
                               const float *dy, float *out)
{
    maxpool_plane_any(p, x, y, dy, out);
}

/* A part of a MaxPool's planes: the forward, or with j->dy the backward. */
static void maxpool_part(void *arg, int part)
{
    const pool_job *j = arg;
    const win_params *p = j->p;
    const int64_t p0 = part * j->per, p1 = p0 + j->per < j->planes ? p0 + j->per : j->planes;
    const int64_t in = p->H * p->W, out = p->OH * p->OW;
    for (int64_t pl = p0; pl < p1; pl++)
        (j->avx2 ? maxpool_plane_avx2 : maxpool_plane_base)(
            p, j->x + pl * in, j->dy ? j->y + pl * out : NULL, j->dy ? j->dy + pl * out : NULL,
            j->out + pl * (j->dy ? in : out));
}

/* Runs fn over the n images' planes in parts of about DW_PART_ELEMS outputs. */
static void pool_run(pool_job *j, int64_t n, void (*fn)(void *, int), gemm_ws *gemm)
{
    j->planes = n * j->p->C;
    int64_t parts = j->planes * j->p->OH * j->p->OW / DW_PART_ELEMS;
    parts = parts < 1 ? 1 : parts > j->planes ? j->planes : parts > 1024 ? 1024 : parts;
    j->per = (j->planes + parts - 1) / parts;
    gemm_parallel(gemm, (int)((j->planes + j->per - 1) / j->per), fn, j);
}

static void maxpool_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                            int n_out, float *scratch, gemm_ws *gemm)
{
    pool_job j = {.p = pp, .x = in[0].data, .out = out[0].data, .avx2 = op_have_avx2()};
    pool_run(&j, in[0].shape.d[0], maxpool_part, gemm);
}

static void avgpool_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                            int n_out, float *scratch, gemm_ws *gemm)
{
    const win_params *p = pp;
    const float *x = in[0].data;
    float *y = out[0].data;
    const int64_t planes = in[0].shape.d[0] * p->C;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * p->H * p->W;
        float *yp = y + pl * p->OH * p->OW;
        for (int64_t oy = 0; oy < p->OH; oy++) {
            int64_t y0 = oy * p->s[0] - p->pb[0], y1 = y0 + p->k[0];
            int64_t py1 = y1 < p->H + p->pe[0] ? y1 : p->H + p->pe[0]; /* padded extent */
            int64_t cy0 = y0 < 0 ? 0 : y0, cy1 = y1 < p->H ? y1 : p->H;
            for (int64_t ox = 0; ox < p->OW; ox++) {
                int64_t x0 = ox * p->s[1] - p->pb[1], x1 = x0 + p->k[1];
                int64_t px1 = x1 < p->W + p->pe[1] ? x1 : p->W + p->pe[1];
                int64_t cx0 = x0 < 0 ? 0 : x0, cx1 = x1 < p->W ? x1 : p->W;
                float s = 0.0f;
                for (int64_t iy = cy0; iy < cy1; iy++)
                    for (int64_t ix = cx0; ix < cx1; ix++)
                        s += xp[iy * p->W + ix];
                int64_t cnt = p->count_include_pad ? (py1 - y0) * (px1 - x0)
                                                   : (cy1 - cy0) * (cx1 - cx0);
                yp[oy * p->OW + ox] = cnt > 0 ? s / (float)cnt : 0.0f;
            }
        }
    }
}

/* ---- GlobalAveragePool ------------------------------------------------ */

static int gap_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                     char *err, size_t errsz)
{
    int rc = check_float(&in[0], "X", err, errsz);
    if (rc)
        return rc;
    if (in[0].shape.rank < 3)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input 'X' must have rank >= 3");
    op_shape s = in[0].shape;
    for (int i = 2; i < s.rank; i++)
        s.d[i] = 1;
    set_out(&out[0], OP_FLOAT, in[0].batched, &s);
    return 0;
}

static void gap_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                        float *scratch, gemm_ws *gemm)
{
    const op_shape *s = &in[0].shape;
    size_t planes = (size_t)s->d[0] * s->d[1], hw = op_numel(s) / planes;
    const float *x = in[0].data;
    float *y = out[0].data;
    for (size_t i = 0; i < planes; i++) {
        double acc = 0.0;
        for (size_t j = 0; j < hw; j++)
            acc += x[i * hw + j];
        y[i] = (float)(acc / (double)hw);
    }
}

/* ---- input gradients -------------------------------------------------- */

/* ceil(a / b) for b > 0 and any a. */
static inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -(-a / b); }

/*
 * Input rows r0 .. r1-1 of channels c0 .. c1-1 of dx [C][H][W] += the
 * transpose of im2col_rows of output rows y0 .. y1-1 applied to col
 * [C*kh*kw][(y1-y0)*OW] (rows ld floats apart), summed in the fixed order
 * (c, i, j, y, x): an element gets the same sum whatever the rows' bands.
 */
static void col2im_rows(const float *col, const win_params *p, int64_t c0, int64_t c1, int64_t y0,
                        int64_t y1, int64_t r0, int64_t r1, int64_t ld, float *dx)
{
    const int64_t H = p->H, W = p->W, OW = p->OW;
    const int64_t kh = p->k[0], kw = p->k[1], sh = p->s[0], sw = p->s[1];
    const int64_t dh = p->d[0], dw = p->d[1], pt = p->pb[0], pl = p->pb[1];
    for (int64_t c = c0; c < c1; c++)
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++) {
                const float *row = col + ((c * kh + i) * kw + j) * ld - y0 * OW;
                float *plane = dx + c * H * W;
                const int64_t off = j * dw - pl;
                int64_t x0 = off >= 0 ? 0 : (-off + sw - 1) / sw;
                int64_t x1 = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;
                if (x1 > OW)
                    x1 = OW;
                /* the output rows whose input row y*sh + i*dh - pt is in r0 .. r1-1 */
                const int64_t ya = ceil_div(r0 + pt - i * dh, sh), yb = ceil_div(r1 + pt - i * dh, sh);
                for (int64_t y = ya > y0 ? ya : y0; y < y1 && y < yb; y++) {
                    const int64_t iy = y * sh + i * dh - pt;
                    float *dst = plane + iy * W + off;
                    const float *src = row + y * OW;
                    for (int64_t x = x0; x < x1; x++)
                        dst[x * sw] += src[x];
                }
            }
}

/* dx [C][H][W] += col2im(col [C*kh*kw][OH*OW], rows ld floats apart). */
static void col2im_add(const float *col, const win_params *p, int64_t C, int64_t ld, float *dx)
{
    col2im_rows(col, p, 0, C, 0, p->OH, 0, p->H, ld, dx);
}

/* Depthwise: dx plane [H][W] += the transpose of the forward's plane applied to dy [OH][OW]
 * (conv_dw's backward for strides over 1). */
static void conv_dw_plane_back(const win_params *p, const float *dy, const float *w, float *dx)
{
    const int64_t H = p->H, W = p->W, OH = p->OH, OW = p->OW, sh = p->s[0], sw = p->s[1];
    for (int64_t oy = 0; oy < OH; oy++) {
        const float *dr = dy + oy * OW;
        for (int64_t i = 0; i < p->k[0]; i++) {
            const int64_t iy = oy * sh + i * p->d[0] - p->pb[0];
            if (iy < 0 || iy >= H)
                continue;
            for (int64_t j = 0; j < p->k[1]; j++) {
                const float wv = w[i * p->k[1] + j];
                const int64_t off = j * p->d[1] - p->pb[1];
                int64_t x0 = off >= 0 ? 0 : (-off + sw - 1) / sw;
                int64_t x1 = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;
                if (x1 > OW)
                    x1 = OW;
                float *dst = dx + iy * W + off;
                for (int64_t x = x0; x < x1; x++)
                    dst[x * sw] += wv * dr[x];
            }
        }
    }
}

/*
 * dY of images b0 .. b0+nb-1 side by side, [M][nb*OH*OW], as one product's
 * operand: gathered into buf, or for one image its own dY [M][OH*OW].
 */
static const float *conv_gather_dy(const win_params *p, const float *dy, int64_t b0, int64_t nb,
                                   float *buf)
{
    const int64_t OHW = p->OH * p->OW, ld = nb * OHW;
    if (nb == 1)
        return dy + b0 * p->M * OHW;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t m = 0; m < p->M; m++)
            memcpy(buf + m * ld + b * OHW, dy + ((b0 + b) * p->M + m) * OHW,
                   sizeof(float) * (size_t)OHW);
    return buf;
}

/* The input gradient of conv_im2col_batched, cut alike: dcol = W^T x dY of
 * a chunk of images (gathered side by side) or of one image's block of
 * output rows (read in place), added back to the images by col2im. */
static void conv_im2col_batched_back(const win_params *p, const float *dy, const float *w,
                                     int64_t N, float *dx, float *scratch, gemm_ws *gemm)
{
    const int64_t K = p->C * p->k[0] * p->k[1], HW = p->H * p->W;
    conv_img ji = {.p = p, .w = w, .dy = dy, .dx = dx, .gemm = gemm};
    const int64_t done = conv_small_plane(p) ? 0 : conv_img_cols_run(&ji, N); /* the rest split: */
    dy += done * p->M * p->OH * p->OW, dx += done * p->C * HW, N -= done;
    const conv_cut cut = conv_chunk(p, N);
    for (conv_blk k = {0}; conv_blk_next(p, cut, N, &k);) {
        const float *dya = conv_gather_dy(p, dy, k.b0, k.nb, scratch + K * k.ld) + k.y0 * p->OW;
        gemm_f32(gemm, GEMM_T, GEMM_N, (int)K, (int)k.ld, (int)p->M, w, (int)K, dya, (int)k.ldy,
                 0, scratch, (int)k.ld);
        conv_cols j = {.p = p, .col = scratch, .dx = dx + k.b0 * p->C * HW, .nb = k.nb,
                       .y0 = k.y0, .y1 = k.y1, .ld = k.ld};
        conv_cols_run(&j, gemm);
    }
}

/* Image b's input gradient: dcol [K][OHW] = W_g^T [K][Mg] x dy_g [Mg][OHW],
 * added in place for a direct convolution (the columns are the input). */
static void conv_img_backward(const conv_img *j, int64_t b, gemm_local *t)
{
    const win_params *p = j->p;
    const int64_t G = p->group, Cg = p->C / G, Mg = p->M / G;
    const int64_t K = Cg * p->k[0] * p->k[1], OHW = p->OH * p->OW, HW = p->H * p->W;
    for (int64_t g = 0; g < G; g++) {
        const float *dyg = j->dy + (b * p->M + g * Mg) * OHW;
        float *dxg = j->dx + (b * p->C + g * Cg) * HW;
        if (p->direct)
            conv_img_gemm(j, t, GEMM_T, K, OHW, Mg, j->w + g * Mg * K, K, dyg, 1, dxg, HW);
        else {
            conv_img_gemm(j, t, GEMM_T, K, OHW, Mg, j->w + g * Mg * K, K, dyg, 0, j->scratch, OHW);
            col2im_add(j->scratch, p, Cg, OHW, dxg);
        }
    }
}

static void conv_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                          int n_out, const float *dy, float *const *dx, float *scratch,
                          gemm_ws *gemm)
{
    const win_params *p = pp;
    const float *w = in[1].data;
    float *d = dx[0];
    if (!d)
        return;
    const int64_t N = in[0].shape.d[0], G = p->group;
    if (p->depthwise) {
        conv_dw(p, dy, w, NULL, NULL, N, 1, d, gemm);
        return;
    }
    if (p->U) { /* the exact adjoint of the forward's Winograd map, the same U */
        conv_wino(p, dy, N, 1, NULL, NULL, d, scratch, gemm);
        return;
    }
    if (G == 1 && (!p->direct || conv_small_plane(p))) {
        conv_im2col_batched_back(p, dy, w, N, d, scratch, gemm);
        return;
    }
    conv_img j = {.p = p, .w = w, .dy = dy, .dx = d, .scratch = scratch, .gemm = gemm,
                  .one = conv_img_backward};
    conv_img_run(&j, N);
}

/*
 * MaxPool: each output's gradient to the first largest input of its window
 * (as forward): the first element equal to the kept output y, which stops
 * the search there (half a window on average); none for a window of NaN
 * (whose output is -inf).
 */
static void maxpool_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                             int n_out, const float *dy, float *const *dx, float *scratch,
                             gemm_ws *gemm)
{
    if (!dx[0])
        return;
    pool_job j = {.p = pp, .x = in[0].data, .y = out[0].data, .dy = dy, .out = dx[0],
                  .avx2 = op_have_avx2()};
    pool_run(&j, in[0].shape.d[0], maxpool_part, gemm);
}

/* AveragePool: each output's gradient over its window, divided as forward divides. */
static void avgpool_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                             int n_out, const float *dy, float *const *dx, float *scratch,
                             gemm_ws *gemm)
{
    const win_params *p = pp;
    if (!dx[0])
        return;
    const int64_t planes = in[0].shape.d[0] * p->C;
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dp = dx[0] + pl * p->H * p->W;
        const float *gp = dy + pl * p->OH * p->OW;
        for (int64_t oy = 0; oy < p->OH; oy++) {
            int64_t y0 = oy * p->s[0] - p->pb[0], y1 = y0 + p->k[0];
            int64_t py1 = y1 < p->H + p->pe[0] ? y1 : p->H + p->pe[0];
            int64_t cy0 = y0 < 0 ? 0 : y0, cy1 = y1 < p->H ? y1 : p->H;
            for (int64_t ox = 0; ox < p->OW; ox++) {
                int64_t x0 = ox * p->s[1] - p->pb[1], x1 = x0 + p->k[1];
                int64_t px1 = x1 < p->W + p->pe[1] ? x1 : p->W + p->pe[1];
                int64_t cx0 = x0 < 0 ? 0 : x0, cx1 = x1 < p->W ? x1 : p->W;
                int64_t cnt = p->count_include_pad ? (py1 - y0) * (px1 - x0)
                                                   : (cy1 - cy0) * (cx1 - cx0);
                if (cnt <= 0)
                    continue;
                const float g = gp[oy * p->OW + ox] / (float)cnt;
                for (int64_t iy = cy0; iy < cy1; iy++)
                    for (int64_t ix = cx0; ix < cx1; ix++)
                        dp[iy * p->W + ix] += g;
            }
        }
    }
}

static void gap_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                         int n_out, const float *dy, float *const *dx, float *scratch,
                         gemm_ws *gemm)
{
    const op_shape *s = &in[0].shape;
    size_t planes = (size_t)s->d[0] * s->d[1], hw = op_numel(s) / planes;
    if (!dx[0])
        return;
    for (size_t i = 0; i < planes; i++) {
        const float g = (float)((double)dy[i] / (double)hw);
        for (size_t j = 0; j < hw; j++)
            dx[0][i * hw + j] += g;
    }
}

/* ---- Conv's weight gradients (ops.h, op_backward_params) -------------- */

/* Conv: the im2col scratch of a chunk of images (or of one image and group). */
static size_t conv_params_scratch(const void *pp, const op_tensor *in, int n_in,
                                  const op_tensor *out)
{
    const win_params *p = pp;
    const int64_t K = p->C / p->group * p->k[0] * p->k[1], OHW = p->OH * p->OW;
    if (p->group > 1)
        return (size_t)(K * OHW);
    return conv_cut_floats(p, conv_chunk(p, view_batch(&in[0])));
}

/*
 * Conv: dW [M][C/g][kh][kw] += sum over images of dY x col^T (a chunk of
 * images side by side in one product, K = nb * OH*OW, for one group; an
 * image and group at a time otherwise); dB[m] += the sum of dY's plane m over
 * the batch, in double, in (image, pixel) order.
 */
static void conv_backward_params(const void *pp, const op_tensor *in, int n_in,
                                 const op_tensor *out, int n_out, const float *dy,
                                 float *const *dw, float *scratch, gemm_ws *gemm)
{
    const win_params *p = pp;
    const float *x = in[0].data;
    const int64_t N = in[0].shape.d[0], G = p->group, Cg = p->C / G, Mg = p->M / G;
    const int64_t K = Cg * p->k[0] * p->k[1], OHW = p->OH * p->OW, HW = p->H * p->W;
    if (n_in > 2 && dw[2])
        for (int64_t m = 0; m < p->M; m++) {
            double sum = 0;
            for (int64_t b = 0; b < N; b++)
                for (int64_t i = 0; i < OHW; i++)
                    sum += dy[(b * p->M + m) * OHW + i];
            dw[2][m] += (float)sum;
        }
    if (!dw[1])
        return;
    if (G > 1) {
        for (int64_t b = 0; b < N; b++)
            for (int64_t g = 0; g < G; g++) {
                im2col(x + (b * p->C + g * Cg) * HW, p, Cg, OHW, scratch);
                /* dW_g [Mg][K] += dY_g [Mg][OHW] x col [K][OHW]^T */
                gemm_f32(gemm, GEMM_N, GEMM_T, (int)Mg, (int)K, (int)OHW,
                         dy + (b * p->M + g * Mg) * OHW, (int)OHW, scratch, (int)OHW, 1,
                         dw[1] + g * Mg * K, (int)K);
            }
        return;
    }
    const conv_cut cut = conv_chunk(p, N);
    for (conv_blk k = {0}; conv_blk_next(p, cut, N, &k);) {
        conv_cols j = {.p = p, .x = x + k.b0 * p->C * HW, .col = scratch, .nb = k.nb,
                       .y0 = k.y0, .y1 = k.y1, .ld = k.ld};
        conv_cols_run(&j, gemm);
        const float *dya = conv_gather_dy(p, dy, k.b0, k.nb, scratch + K * k.ld) + k.y0 * p->OW;
        gemm_f32(gemm, GEMM_N, GEMM_T, (int)p->M, (int)K, (int)k.ld, dya, (int)k.ldy, scratch,
                 (int)k.ld, 1, dw[1], (int)K);
    }
}
/* ---- the rows --------------------------------------------------------- */

#define WIN_ATTRS "auto_pad,kernel_shape,strides,dilations,pads"

static const op_def ROWS[] = {
    {"Conv", WIN_ATTRS ",group", 2, 3, 1, 1, 0, 0, sizeof(win_params), conv_parse, conv_infer,
     conv_scratch, conv_forward,
     conv_backward, conv_scratch, 0, OPB_IN(0)},
    {"MaxPool", WIN_ATTRS ",ceil_mode,storage_order", 1, 1, 1, 2, 0, 0, sizeof(win_params),
     maxpool_parse, pool_infer, NULL, maxpool_forward,
     maxpool_backward, NULL, OPB_IN(0) | OPB_OUT, OPB_IN(0)},
    {"AveragePool", WIN_ATTRS ",ceil_mode,count_include_pad", 1, 1, 1, 1, 0, 0, sizeof(win_params),
     avgpool_parse, pool_infer, NULL, avgpool_forward,
     avgpool_backward, NULL, 0, OPB_IN(0)},
    {"GlobalAveragePool", "", 1, 1, 1, 1, 0, 1, sizeof(int), NULL, gap_infer, NULL, gap_forward,
     gap_backward, NULL, 0, OPB_IN(0)},
};

static op_epilogue *conv_epilogue(void *pp) { return &((win_params *)pp)->epi; }

static const op_hooks HOOKS[] = {
    {"Conv", conv_prepare, conv_release, conv_backward_params, OPB_IN(1) | OPB_IN(2), OPB_IN(0),
     conv_params_scratch, conv_epilogue, conv_unread},
};

const op_def *opc_rows(int *n)
{
    *n = (int)(sizeof ROWS / sizeof ROWS[0]);
    return ROWS;
}

const op_hooks *opc_hooks(int *n)
{
    *n = (int)(sizeof HOOKS / sizeof HOOKS[0]);
    return HOOKS;
}
