#include "dct.h"

#include <math.h>
#include <stdlib.h>

const int dct_zigzag[64] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
    41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
    30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

/* The JPEG specification's annex K tables, natural order. */
static const int STD_LUMA[64] = {
    16, 11, 10, 16, 24,  40,  51,  61,  12, 12, 14, 19, 26,  58,  60,  55,
    14, 13, 16, 24, 40,  57,  69,  56,  14, 17, 22, 29, 51,  87,  80,  62,
    18, 22, 37, 56, 68,  109, 103, 77,  24, 35, 55, 64, 81,  104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99};
static const int STD_CHROMA[64] = {
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99,
    99, 99, 47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99};

void dct_quant_steps(int quality, int steps[2][64])
{
    quality = quality < 1 ? 1 : quality > 100 ? 100 : quality;
    const long scale = quality < 50 ? 5000 / quality : 200 - quality * 2;
    for (int k = 0; k < 64; k++) {
        const int *std[2] = {STD_LUMA, STD_CHROMA};
        for (int t = 0; t < 2; t++) {
            long v = (std[t][k] * scale + 50) / 100;
            steps[t][k] = (int)(v < 1 ? 1 : v > 255 ? 255 : v);
        }
    }
}

/* The JPEG planes of a difference: Y (w x h), Cb and Cr (w/2 x h/2, 2x2 means), in buf. */
typedef struct {
    double *buf, *p[3];
    int w[3], h[3];
} planes;

static int planes_of(const float *d, int w, int h, planes *out)
{
    const int cw = w / 2, ch = h / 2;
    const size_t ny = (size_t)w * h, nc = (size_t)cw * ch;
    double *buf = malloc((ny + 2 * nc) * sizeof *buf);
    if (!buf)
        return ADJ_ERR_NOMEM;
    *out = (planes){buf, {buf, buf + ny, buf + ny + nc}, {w, cw, cw}, {h, ch, ch}};
    for (size_t k = 0; k < ny; k++)
        buf[k] = 0.299 * d[3 * k] + 0.587 * d[3 * k + 1] + 0.114 * d[3 * k + 2];
    for (int j = 0; j < ch; j++)
        for (int i = 0; i < cw; i++) {
            double sb = 0, sr = 0;
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++) {
                    const float *px = d + 3 * ((size_t)(2 * j + dy) * w + 2 * i + dx);
                    sb += -0.168736 * px[0] - 0.331264 * px[1] + 0.5 * px[2];
                    sr += 0.5 * px[0] - 0.418688 * px[1] - 0.081312 * px[2];
                }
            out->p[DCT_CB][(size_t)j * cw + i] = sb / 4;
            out->p[DCT_CR][(size_t)j * cw + i] = sr / 4;
        }
    return ADJ_OK;
}

/* The 64 orthonormal DCT-II coefficients (u * 8 + v) of the 8x8 block of p (width w) at bx, by. */
static void block_dct(const double cosines[8][8], const double *p, int w, int bx, int by,
                      double out[64])
{
    double rows[8][8]; /* rows[y][v]: the rows transformed */
    for (int y = 0; y < 8; y++)
        for (int v = 0; v < 8; v++) {
            double s = 0;
            for (int x = 0; x < 8; x++)
                s += cosines[v][x] * p[(size_t)(by + y) * w + bx + x];
            rows[y][v] = s;
        }
    for (int u = 0; u < 8; u++)
        for (int v = 0; v < 8; v++) {
            double s = 0;
            for (int y = 0; y < 8; y++)
                s += cosines[u][y] * rows[y][v];
            out[u * 8 + v] = s;
        }
}

/*
 * The energies of d1 into e1 and, with d2, of d2 into e2 and their cross
 * energy into ex (the mean products of the coefficients): one transform of
 * each block of each difference.
 */
static int spectra(const float *d1, const float *d2, int w, int h, dct_energy *e1,
                   dct_energy *e2, dct_energy *ex)
{
    if (w < 1 || h < 1)
        return ADJ_ERR_ARG;
    planes a, b = {0};
    int rc = planes_of(d1, w, h, &a);
    if (!rc && d2 && (rc = planes_of(d2, w, h, &b)))
        free(a.buf);
    if (rc)
        return rc;
    double cosines[8][8]; /* c(u) cos((2x + 1) u pi / 16) */
    for (int u = 0; u < 8; u++)
        for (int x = 0; x < 8; x++)
            cosines[u][x] = (u ? sqrt(2.0 / 8) : sqrt(1.0 / 8)) * cos((2 * x + 1) * u * M_PI / 16);
    dct_energy r1 = {0}, r2 = {0}, rx = {0};
    for (int c = 0; c < 3; c++) {
        int n = 0;
        for (int by = 0; by + 8 <= a.h[c]; by += 8)
            for (int bx = 0; bx + 8 <= a.w[c]; bx += 8, n++) {
                double k1[64], k2[64];
                block_dct(cosines, a.p[c], a.w[c], bx, by, k1);
                if (d2)
                    block_dct(cosines, b.p[c], b.w[c], bx, by, k2);
                for (int k = 0; k < 64; k++) {
                    r1.e[c][k] += k1[k] * k1[k];
                    if (d2) {
                        r2.e[c][k] += k2[k] * k2[k];
                        rx.e[c][k] += k1[k] * k2[k];
                    }
                }
            }
        r1.blocks[c] = r2.blocks[c] = rx.blocks[c] = n;
        for (int k = 0; k < 64 && n; k++) {
            r1.e[c][k] /= n;
            r2.e[c][k] /= n;
            rx.e[c][k] /= n;
        }
    }
    free(a.buf);
    free(b.buf);
    *e1 = r1;
    if (d2) {
        *e2 = r2;
        *ex = rx;
    }
    return ADJ_OK;
}

int dct_energy_diff(const float *d, int w, int h, dct_energy *out)
{
    return spectra(d, NULL, w, h, out, NULL, NULL);
}

int dct_energy_pair(const float *d1, const float *d2, int w, int h, dct_energy *e1,
                    dct_energy *e2, dct_energy *cross)
{
    return spectra(d1, d2, w, h, e1, e2, cross);
}

int dct_energy_of(const img_rgb *a, const img_rgb *b, dct_energy *out)
{
    if (a->w != b->w || a->h != b->h)
        return ADJ_ERR_ARG;
    const size_t n = (size_t)3 * a->w * a->h;
    float *d = malloc((n ? n : 1) * sizeof *d);
    if (!d)
        return ADJ_ERR_NOMEM;
    for (size_t k = 0; k < n; k++)
        d[k] = (float)b->px[k] - (float)a->px[k];
    int rc = dct_energy_diff(d, a->w, a->h, out);
    free(d);
    return rc;
}
