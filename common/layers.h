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
 * zero padding 1 on every side: a^2 products per m x m output tile (a = m + 2:
 * 16 per 2x2 tile, 36 per 4x4 tile) instead of 9 m^2. Per tile,
 *   y = A^T [ sum_c U[c] (.) (B^T d_c B) ] A,
 * d_c the a x a input window of channel c, U = G g G^T of the weights; with
 * the a^2 positions xi of a tile as separate products, P[xi] [M][T] =
 * U[xi] [M][C] x V[xi] [C][T] over T tiles. The input gradient is the exact
 * adjoint of that map with the same U: Pbar = A ybar A^T of the output
 * gradient's tiles, Vbar[xi] = U[xi]^T x Pbar[xi], and dx += B Vbar B^T
 * added at each tile's (overlapping) window, its padding dropped.
 * F(4x4) does 0.56 of F(2x2)'s multiplications on tiles that fit, with
 * larger rounding errors (its transforms have entries up to 8 and 1/24: the
 * weight transform is done in double and rounded once).
 *
 * The tile transforms work on a block of nt tiles t0 .. t0 + nt - 1 of a
 * batch of NCHW planes h x w: tile t is image t / (th * tw)'s tile row
 * (t % (th * tw)) / tw and column t % tw, th = ceil(h / m), tw = ceil(w / m).
 * A block's transforms are [a^2][channels][nt] (column k: tile t0 + k), and
 * each call does the channels c0 .. c1 - 1 (what it writes no other channel
 * range touches: ranges can run on different threads).
 */

/** Number of m x m output tiles of a B-image batch of h x w planes. */
size_t lyr_wino_tiles(int m, int B, int h, int w);

/** Fewest input and output channels of a layer Winograd computes (below: im2col). */
#define LYR_WINO_MIN_CHANNELS 16

/**
 * The Winograd tile size m (2 or 4) with fewer products for h x w planes (2
 * on a tie), for a layer of c input and m_out output channels; 0 (im2col)
 * when either is under LYR_WINO_MIN_CHANNELS: with fewer channels the tile
 * transforms cost more than the products save. Measured at batch 16 against
 * im2col, alternating (forward, backward): 64 channels at 56x56 0.62x, 0.73x;
 * 32 at 56x56 0.19x, 0.29x; 16 at 56x56 0.81x, 0.83x; 8 to 24 at 56x56
 * 0.98x, 0.81x; 3 to 64 at 224x224 1.43x, 1.39x.
 */
int lyr_wino_choose(int h, int w, int c, int m_out);

/** Transformed weights U [a^2][M][C] of 3x3 kernels W [M][C][3][3] (computed in double). */
void lyr_wino_weights(int m, const float *W, int M, int C, float *U);

/** Input transform V [a^2][C][nt] = B^T d B of a block's tiles of x [..][C][h][w] (padding 1). */
void lyr_wino_input(int m, const float *x, int C, int c0, int c1, int h, int w, size_t t0, int nt,
                    float *V);

/**
 * Output transform of a block's products P [a^2][M][nt]: each tile's part of
 * y [..][M][h][w] inside the plane is overwritten with A^T p A + bias[o]
 * (bias may be NULL).
 */
void lyr_wino_output(int m, const float *P, int M, int o0, int o1, int h, int w, size_t t0,
                     int nt, const float *bias, float *y);

/**
 * The adjoint of lyr_wino_output: P [a^2][M][nt] = A g A^T of each tile g
 * of the output gradient dy [..][M][h][w] (0 past the plane).
 */
void lyr_wino_output_adjoint(int m, const float *dy, int M, int o0, int o1, int h, int w,
                             size_t t0, int nt, float *P);

/**
 * The adjoint of lyr_wino_input: dx [..][C][h][w] += B v B^T of each tile's
 * V [a^2][C][nt] at its window (rows m*ty-1 .. m*ty+m, likewise columns), the
 * padding dropped. Adds tile by tile in increasing t, so an element's sum is
 * in the same order however the tiles are blocked.
 */
void lyr_wino_input_adjoint(int m, const float *V, int C, int c0, int c1, int h, int w, size_t t0,
                            int nt, float *dx);

/**
 * Softmax of each of the n rows of k logits into probs; returns nothing.
 * Stable (subtracts the row maximum).
 */
void lyr_softmax(const float *logits, int n, int k, float *probs);

#endif
