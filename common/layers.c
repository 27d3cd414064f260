#include "layers.h"

#include <math.h>
#include <string.h>

void lyr_softmax(const float *logits, int n, int k, float *probs)
{
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * k;
        float *p = probs + (size_t)i * k;
        float m = l[0];
        for (int j = 1; j < k; j++)
            if (l[j] > m)
                m = l[j];
        double s = 0.0;
        for (int j = 0; j < k; j++) {
            p[j] = expf(l[j] - m);
            s += p[j];
        }
        const float inv = (float)(1.0 / s);
        for (int j = 0; j < k; j++)
            p[j] *= inv;
    }
}

/* ---- Winograd F(m x m, 3x3), m = 2 or 4 ---------------------------------
 *
 * The 1-D transforms of Lavin and Gray (2016), with interpolation points
 * 0, 1, -1 (m = 2) and 0, 1, -1, 2, -2 (m = 4) and infinity: B^T (a x a, input
 * tile -> products), G (a x 3, kernel -> products), A^T (m x a, products ->
 * outputs), a = m + 2. Each 2-D transform applies the 1-D one to the columns
 * and then to the rows of a tile. */

enum { WINO_MAX_A = 6 };

static void bt2(const float *d, float *r)
{
    r[0] = d[0] - d[2];
    r[1] = d[1] + d[2];
    r[2] = d[2] - d[1];
    r[3] = d[1] - d[3];
}

static void at2(const float *p, float *o)
{
    o[0] = p[0] + p[1] + p[2];
    o[1] = p[1] - p[2] - p[3];
}

static void g2(const double *g, double *u)
{
    u[0] = g[0];
    u[1] = 0.5 * (g[0] + g[1] + g[2]);
    u[2] = 0.5 * (g[0] - g[1] + g[2]);
    u[3] = g[2];
}

static void bt4(const float *d, float *r)
{
    r[0] = 4 * d[0] - 5 * d[2] + d[4];
    r[1] = -4 * (d[1] + d[2]) + d[3] + d[4];
    r[2] = 4 * (d[1] - d[2]) - d[3] + d[4];
    r[3] = 2 * (d[3] - d[1]) - d[2] + d[4];
    r[4] = 2 * (d[1] - d[3]) - d[2] + d[4];
    r[5] = 4 * d[1] - 5 * d[3] + d[5];
}

static void at4(const float *p, float *o)
{
    const float s12 = p[1] + p[2], d12 = p[1] - p[2], s34 = p[3] + p[4], d34 = p[3] - p[4];
    o[0] = p[0] + s12 + s34;
    o[1] = d12 + 2 * d34;
    o[2] = s12 + 4 * s34;
    o[3] = d12 + 8 * d34 + p[5];
}

static void g4(const double *g, double *u)
{
    u[0] = g[0] / 4;
    u[1] = -(g[0] + g[1] + g[2]) / 6;
    u[2] = -(g[0] - g[1] + g[2]) / 6;
    u[3] = g[0] / 24 + g[1] / 12 + g[2] / 6;
    u[4] = g[0] / 24 - g[1] / 12 + g[2] / 6;
    u[5] = g[2];
}

/* The transforms by tile size. The tile loops below are inlined with m a
 * constant (WINO_INLINE, one copy per m), so these calls compile to straight
 * arithmetic: a call through a pointer per tile row costs more than the
 * arithmetic itself. */
#define WINO_INLINE static inline __attribute__((always_inline))
WINO_INLINE void wino_bt(int m, const float *d, float *r) { m == 4 ? bt4(d, r) : bt2(d, r); }
WINO_INLINE void wino_at(int m, const float *p, float *o) { m == 4 ? at4(p, o) : at2(p, o); }
WINO_INLINE void wino_g(int m, const double *g, double *u) { m == 4 ? g4(g, u) : g2(g, u); }

size_t lyr_wino_tiles(int m, int B, int h, int w)
{
    return (size_t)B * ((h + m - 1) / m) * ((w + m - 1) / m);
}

int lyr_wino_choose(int h, int w, int c, int m_out)
{
    if (c < LYR_WINO_MIN_CHANNELS || m_out < LYR_WINO_MIN_CHANNELS)
        return 0;
    /* products per image: a^2 planes x tiles */
    return 36 * lyr_wino_tiles(4, 1, h, w) < 16 * lyr_wino_tiles(2, 1, h, w) ? 4 : 2;
}

void lyr_wino_weights(int m, const float *W, int M, int C, int transpose, float *U)
{
    const int a = m + 2;
    const size_t plane = (size_t)M * C;
    for (int o = 0; o < M; o++)
        for (int c = 0; c < C; c++) {
            const float *g = W + ((size_t)o * C + c) * 9;
            double kk[9], t[WINO_MAX_A][3], col[3], u[WINO_MAX_A], row[WINO_MAX_A];
            for (int q = 0; q < 9; q++)
                kk[q] = transpose ? g[8 - q] : g[q]; /* the adjoint: rotated by 180 degrees */
            for (int j = 0; j < 3; j++) { /* t = G k: each column */
                for (int i = 0; i < 3; i++)
                    col[i] = kk[i * 3 + j];
                wino_g(m, col, u);
                for (int i = 0; i < a; i++)
                    t[i][j] = u[i];
            }
            const size_t at = transpose ? (size_t)c * M + o : (size_t)o * C + c;
            for (int i = 0; i < a; i++) { /* u = t G^T: each row, rounded once */
                wino_g(m, t[i], row);
                for (int j = 0; j < a; j++)
                    U[(size_t)(i * a + j) * plane + at] = (float)row[j];
            }
        }
}

WINO_INLINE void wino_input(int m, const float *in, int C, int B, int h, int w, size_t cs,
                            size_t bs, float *V)
{
    const int a = m + 2, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    const size_t T = (size_t)B * th * tw, plane = (size_t)C * T;
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++) {
            const float *src = in + ((size_t)c * cs + (size_t)b * bs) * h * w;
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    float d[WINO_MAX_A][WINO_MAX_A], t[WINO_MAX_A][WINO_MAX_A];
                    float col[WINO_MAX_A], r[WINO_MAX_A];
                    const int y0 = m * ty - 1, x0 = m * tx - 1;
                    for (int i = 0; i < a; i++)
                        for (int j = 0; j < a; j++) {
                            int y = y0 + i, x = x0 + j;
                            d[i][j] = (y >= 0 && y < h && x >= 0 && x < w) ? src[y * w + x] : 0.0f;
                        }
                    for (int j = 0; j < a; j++) { /* t = B^T d */
                        for (int i = 0; i < a; i++)
                            col[i] = d[i][j];
                        wino_bt(m, col, r);
                        for (int i = 0; i < a; i++)
                            t[i][j] = r[i];
                    }
                    const size_t at = (size_t)c * T + ((size_t)b * th + ty) * tw + tx;
                    for (int i = 0; i < a; i++) { /* V = t B */
                        wino_bt(m, t[i], r);
                        for (int j = 0; j < a; j++)
                            V[(size_t)(i * a + j) * plane + at] = r[j];
                    }
                }
        }
}

WINO_INLINE void wino_output(int m, const float *P, int M, int B, int h, int w, size_t ms,
                             size_t bs, const float *bias, int acc, float *out)
{
    const int a = m + 2, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    const size_t T = (size_t)B * th * tw, plane = (size_t)M * T;
    for (int o = 0; o < M; o++) {
        const float bm = bias ? bias[o] : 0.0f;
        for (int b = 0; b < B; b++) {
            float *dst = out + ((size_t)o * ms + (size_t)b * bs) * h * w;
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    const size_t at = (size_t)o * T + ((size_t)b * th + ty) * tw + tx;
                    float p[WINO_MAX_A][WINO_MAX_A], s[WINO_MAX_A][WINO_MAX_A];
                    float col[WINO_MAX_A], r[WINO_MAX_A];
                    for (int q = 0; q < a * a; q++)
                        p[q / a][q % a] = P[(size_t)q * plane + at];
                    for (int j = 0; j < a; j++) { /* s = A^T p */
                        for (int i = 0; i < a; i++)
                            col[i] = p[i][j];
                        wino_at(m, col, r);
                        for (int i = 0; i < m; i++)
                            s[i][j] = r[i];
                    }
                    for (int i = 0; i < m; i++) { /* out = s A */
                        const int y = m * ty + i;
                        if (y >= h)
                            break;
                        wino_at(m, s[i], r);
                        float *d = dst + y * w + m * tx;
                        if (acc)
                            for (int j = 0; j < m && m * tx + j < w; j++)
                                d[j] += r[j];
                        else
                            for (int j = 0; j < m && m * tx + j < w; j++)
                                d[j] = r[j] + bm;
                    }
                }
        }
    }
}

void lyr_wino_input_strided(int m, const float *in, int C, int B, int h, int w, size_t cs,
                            size_t bs, float *V)
{
    if (m == 4)
        wino_input(4, in, C, B, h, w, cs, bs, V);
    else
        wino_input(2, in, C, B, h, w, cs, bs, V);
}

void lyr_wino_output_strided(int m, const float *P, int M, int B, int h, int w, size_t ms,
                             size_t bs, const float *bias, int accumulate, float *out)
{
    if (m == 4)
        wino_output(4, P, M, B, h, w, ms, bs, bias, accumulate, out);
    else
        wino_output(2, P, M, B, h, w, ms, bs, bias, accumulate, out);
}
