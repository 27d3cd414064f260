/*
 * layers.h - the kernels of the engine: im2col/col2im, max-pooling, ReLU,
 * softmax and layout changes. They take explicit dimensions and const inputs,
 * allocate nothing and do no I/O; net.c drives them with cblas_sgemm.
 *
 * Layouts. Convolutional activations are channel-major over the batch,
 * "CNHW": element (c, b, y, x) of a C x B x H x W tensor is at
 * ((c * B + b) * H + y) * W + x. A convolution over the whole batch is then
 * out[M][B*OH*OW] = W[M][C*kh*kw] x col[C*kh*kw][B*OH*OW]. Fully connected
 * activations are image-major, "NC": [B][features], features in (c, y, x)
 * order, which is OverFeat's flattening.
 */
#ifndef ADJ_LAYERS_H
#define ADJ_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/** Geometry of one convolution or pooling window sweep. */
typedef struct {
    int c, h, w;           /**< input channels and size */
    int kh, kw, stride;
    int pad_t, pad_b, pad_l, pad_r;
    int oh, ow;            /**< output size (computed by the caller) */
} lyr_geom;

/**
 * im2col for images b0 .. b0+nb-1 of a CNHW input with B images in total.
 * col: [c*kh*kw][nb*oh*ow] (overwritten); row r = (ci*kh + i)*kw + j, column
 * (b - b0)*oh*ow + y*ow + x holds input(ci, b, y*stride + i - pad_t,
 * x*stride + j - pad_l), or 0 in the padding.
 */
void lyr_im2col(const float *in, int B, int b0, int nb, const lyr_geom *g, float *col);

/**
 * col2im: the adjoint of lyr_im2col. ACCUMULATES (+=) every column entry
 * into the CNHW input gradient din (B images; only images b0..b0+nb-1 are
 * touched); entries that fall in the padding are dropped.
 */
void lyr_col2im(const float *col, int B, int b0, int nb, const lyr_geom *g, float *din);

/*
 * Winograd F(m x m, 3x3), m = 2 or 4, for 3x3 convolutions with stride 1 and
 * zero padding 1 on every side (OverFeat's layers 3-5 / 3-6): a^2 products per
 * m x m output tile (a = m + 2: 16 per 2x2 tile, 36 per 4x4 tile) instead of
 * 9 m^2. With T = B * ceil(h/m) * ceil(w/m) tiles,
 *   out = A^T [ U[xi] x V[xi] ] A  for the a^2 positions xi of an a x a tile,
 * U[xi] = (G g G^T)[xi] ([a^2][M][C]) from the weights, V[xi] = (B^T d B)[xi]
 * ([a^2][C][T]) from the input, each product one gemm [M][C] x [C][T].
 * F(4x4) does 0.56 of F(2x2)'s multiplications on tiles that fit, with
 * larger rounding errors (its transforms have entries up to 8 and 1/24: the
 * weight transform is done in double and rounded once).
 */

/** Number of m x m output tiles of a B-image batch of h x w planes. */
size_t lyr_wino_tiles(int m, int B, int h, int w);

/** Fewest input and output channels of a layer Winograd computes (below: im2col). */
#define LYR_WINO_MIN_CHANNELS 128

/**
 * The Winograd tile size m (2 or 4) with fewer products for h x w planes (2
 * on a tie), for a layer of c input and m_out output channels; 0 (im2col)
 * when either is under LYR_WINO_MIN_CHANNELS: with few channels the tile
 * transforms cost more than the products save (the 64-channel 56x56 3x3
 * layers of ResNet-18 and -50 at batch 16: 1.08-1.14x im2col's time).
 */
int lyr_wino_choose(int h, int w, int c, int m_out);

/**
 * Transformed weights U [a^2][M][C] of 3x3 kernels W [M][C][3][3]. With
 * transpose nonzero, the weights of the adjoint convolution (the input
 * gradient): U [a^2][C][M] of the kernels W'[c][m][i][j] = W[m][c][2-i][2-j].
 */
void lyr_wino_weights(int m, const float *W, int M, int C, int transpose, float *U);

/** Transformed input V [a^2][C][T] of a CNHW input [C][B][h][w] (padding 1). */
void lyr_wino_input(int m, const float *in, int C, int B, int h, int w, float *V);

/**
 * Output transform: out [M][B][h][w] (CNHW, OVERWRITTEN) from the products
 * P [a^2][M][T], plus bias[o] (bias may be NULL).
 */
void lyr_wino_output(int m, const float *P, int M, int B, int h, int w, const float *bias, float *out);

/**
 * lyr_wino_input for any layout whose h x w planes are contiguous: plane
 * (c, b) starts at in + (c * cs + b * bs) * h * w (CNHW: cs = B, bs = 1;
 * NCHW, the graph engine's: cs = 1, bs = C). Tile columns are ordered
 * (b, tile row, tile column) either way.
 */
void lyr_wino_input_strided(int m, const float *in, int C, int B, int h, int w, size_t cs,
                            size_t bs, float *V);

/**
 * lyr_wino_output with plane (o, b) at out + (o * ms + b * bs) * h * w; with
 * accumulate nonzero the results are ADDED to out (bias ignored: an input
 * gradient), else out is overwritten with results plus bias.
 */
void lyr_wino_output_strided(int m, const float *P, int M, int B, int h, int w, size_t ms,
                             size_t bs, const float *bias, int accumulate, float *out);

/**
 * Max-pooling over `planes` independent h x w planes (any layout whose planes
 * are contiguous, e.g. CNHW with planes = C * B). Windows kh x kw, stride,
 * no padding, output size oh x ow (rounded down). arg gets, per output, the
 * index within its plane of the first maximum in row-major window order.
 */
void lyr_maxpool(const float *in, int planes, const lyr_geom *g, float *out, int32_t *arg);

/**
 * Max-pooling backward: din (planes x h x w) is OVERWRITTEN with zeros and
 * each output gradient is added at its arg-max.
 */
void lyr_maxpool_back(const float *dout, const int32_t *arg, int planes, const lyr_geom *g,
                      float *din);

/** out[i] = in[i] > 0 ? in[i] : 0 (in == out allowed). */
void lyr_relu(const float *in, size_t n, float *out);

/** din[i] = out[i] > 0 ? dout[i] : 0, where out is the ReLU's output. */
void lyr_relu_back(const float *out, const float *dout, size_t n, float *din);

/** CNHW [C][B][HW] to NC [B][C*HW]. */
void lyr_cnhw_to_nc(const float *in, int C, int B, int hw, float *out);

/** NC [B][C*HW] to CNHW [C][B][HW]. */
void lyr_nc_to_cnhw(const float *in, int C, int B, int hw, float *out);

/**
 * Softmax of each of the n rows of k logits into probs; returns nothing.
 * Stable (subtracts the row maximum).
 */
void lyr_softmax(const float *logits, int n, int k, float *probs);

#endif
