/*
 * dct.h - where a perturbation's energy sits in JPEG's own terms: the 64 DCT
 * frequencies of each JPEG channel (the paper's open question: which frequencies
 * of the perturbation JPEG removes).
 *
 *     dct_energy e;
 *     dct_energy_of(&x, &adv, &e);            // the energy of adv - x
 *     e.e[DCT_Y][u * 8 + v]                    // mean squared coefficient
 *     int q[2][64];
 *     dct_quant_steps(75, q);                  // libjpeg's steps at quality 75
 *
 * A difference of two RGB images (float, one value per channel and pixel) is
 * moved to JPEG's colour space with the linear part of the JFIF transform (no
 * offset: it is a difference): Y = 0.299 R + 0.587 G + 0.114 B,
 * Cb = -0.168736 R - 0.331264 G + 0.5 B, Cr = 0.5 R - 0.418688 G - 0.081312 B;
 * Y at full resolution, Cb and Cr averaged over 2x2 blocks as 4:2:0 does (a
 * last odd row or column is left out). Each plane is cut into JPEG's 8x8
 * blocks from the top-left (an incomplete edge block is left out) and
 * transformed with the orthonormal 8x8 DCT-II. e[c][u*8+v] is the mean over
 * the blocks of the squared coefficient (u vertical, v horizontal frequency),
 * so that sum over u, v of e[c] is the mean over the blocks of the sum of
 * a block's 64 squared values (Parseval). Pure functions, no allocation
 * beyond scratch.
 */
#ifndef ADJ_DCT_H
#define ADJ_DCT_H

#include "image.h"

enum { DCT_Y = 0, DCT_CB = 1, DCT_CR = 2 };

/** Energies per JPEG channel and frequency. */
typedef struct {
    double e[3][64]; /**< [channel][u * 8 + v]: mean squared DCT coefficient */
    int blocks[3];   /**< 8x8 blocks per channel (0: the plane is smaller than a block) */
} dct_energy;

/**
 * The energy of the difference d (interleaved RGB floats, [h][w][3]) of a
 * w x h image. Returns ADJ_OK, ADJ_ERR_ARG for sizes below 1, ADJ_ERR_NOMEM.
 */
int dct_energy_diff(const float *d, int w, int h, dct_energy *out);

/** The energy of b - a, two 8-bit images of one size. */
int dct_energy_of(const img_rgb *a, const img_rgb *b, dct_energy *out);

/**
 * The energies of two differences d1, d2 (as dct_energy_diff's d) and their
 * cross energy: the mean over the blocks of the product of their
 * coefficients (so that E(d1 + d2) = E(d1) + E(d2) + 2 cross); each block is
 * transformed once. cross / E(d1) is the share of d1 that d2 keeps in phase,
 * per frequency (1: d2 holds d1 unchanged, 0: nothing of it, whatever else
 * d2 holds). Errors as dct_energy_diff.
 */
int dct_energy_pair(const float *d1, const float *d2, int w, int h, dct_energy *e1,
                    dct_energy *e2, dct_energy *cross);

/**
 * libjpeg's quantisation steps at quality 1..100 (jpeg_set_quality with
 * force_baseline: the standard tables of the JPEG specification's annex K
 * scaled by 5000/q below 50 and 200 - 2q from 50, rounded, within 1..255):
 * steps[0] luminance, steps[1] chrominance, in natural order (u * 8 + v).
 */
void dct_quant_steps(int quality, int steps[2][64]);

/** The zigzag scan: dct_zigzag[k] is the natural index (u * 8 + v) of the k-th coefficient. */
extern const int dct_zigzag[64];

#endif
