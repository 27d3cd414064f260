/*
 * layers.h - kernels the graph engine's operators (ops.c) and net.c share:
 * Winograd F(m x m, 3x3)'s transforms and the softmax. They take explicit
 * dimensions and const inputs, allocate nothing and do no I/O. (The layer
 * engine's own kernels, im2col over CNHW activations, max-pooling with an
 * arg-max, ReLU and the layout changes, went with it: ops.c has the
 * graph's.)
 */
#ifndef ADJ_LAYERS_H
#define ADJ_LAYERS_H

#include <stddef.h>
#include <stdint.h>

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

/**
 * Transformed input V [a^2][C][T] (padding 1) of any layout whose h x w
 * planes are contiguous: plane (c, b) starts at in + (c * cs + b * bs) * h * w
 * (NCHW, the graph engine's: cs = 1, bs = C; CNHW: cs = B, bs = 1). Tile
 * columns are ordered (b, tile row, tile column) either way.
 */
void lyr_wino_input_strided(int m, const float *in, int C, int B, int h, int w, size_t cs,
                            size_t bs, float *V);

/**
 * Output transform from the products P [a^2][M][T]: plane (o, b) at
 * out + (o * ms + b * bs) * h * w; with accumulate nonzero the results are
 * ADDED to out (bias ignored: an input gradient), else out is overwritten
 * with results plus bias[o] (bias may be NULL).
 */
void lyr_wino_output_strided(int m, const float *P, int M, int B, int h, int w, size_t ms,
                             size_t bs, const float *bias, int accumulate, float *out);

/**
 * Softmax of each of the n rows of k logits into probs; returns nothing.
 * Stable (subtracts the row maximum).
 */
void lyr_softmax(const float *logits, int n, int k, float *probs);

#endif
