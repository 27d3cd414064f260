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

/* The adjoints' 1-D transforms: B (a x a, the transpose of B^T: product
 * gradients -> input tile gradients) and A (a x m, output tile gradients ->
 * product gradients). */
static void b2(const float *v, float *r)
{
    r[0] = v[0];
    r[1] = v[1] - v[2] + v[3];
    r[2] = v[1] + v[2] - v[0];
    r[3] = -v[3];
}

static void a2(const float *y, float *r)
{
    r[0] = y[0];
    r[1] = y[0] + y[1];
    r[2] = y[0] - y[1];
    r[3] = -y[1];
}

static void b4(const float *v, float *r)
{
    r[0] = 4 * v[0];
    r[1] = 4 * (v[2] - v[1] + v[5]) + 2 * (v[4] - v[3]);
    r[2] = -5 * v[0] - 4 * (v[1] + v[2]) - v[3] - v[4];
    r[3] = v[1] - v[2] + 2 * (v[3] - v[4]) - 5 * v[5];
    r[4] = v[0] + v[1] + v[2] + v[3] + v[4];
    r[5] = v[5];
}

static void a4(const float *y, float *r)
{
    const float e = y[0] + y[2], o = y[1] + y[3], e4 = y[0] + 4 * y[2], o8 = 2 * y[1] + 8 * y[3];
    r[0] = y[0];
    r[1] = e + o;
    r[2] = e - o;
    r[3] = e4 + o8;
    r[4] = e4 - o8;
    r[5] = y[3];
}

/* The transforms by tile size. The tile loops below are inlined with m a
 * constant (WINO_INLINE, one copy per m), so these calls compile to straight
 * arithmetic: a call through a pointer per tile row costs more than the
 * arithmetic itself. */
#define WINO_INLINE static inline __attribute__((always_inline))
WINO_INLINE void wino_bt(int m, const float *d, float *r) { m == 4 ? bt4(d, r) : bt2(d, r); }
WINO_INLINE void wino_at(int m, const float *p, float *o) { m == 4 ? at4(p, o) : at2(p, o); }
WINO_INLINE void wino_b(int m, const float *v, float *r) { m == 4 ? b4(v, r) : b2(v, r); }
WINO_INLINE void wino_a(int m, const float *y, float *r) { m == 4 ? a4(y, r) : a2(y, r); }
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

void lyr_wino_weights(int m, const float *W, int M, int C, float *U)
{
    const int a = m + 2;
    const size_t plane = (size_t)M * C;
    for (int o = 0; o < M; o++)
        for (int c = 0; c < C; c++) {
            const float *g = W + ((size_t)o * C + c) * 9;
            double t[WINO_MAX_A][3], col[3], u[WINO_MAX_A], row[WINO_MAX_A];
            for (int j = 0; j < 3; j++) { /* t = G g: each column */
                for (int i = 0; i < 3; i++)
                    col[i] = g[i * 3 + j];
                wino_g(m, col, u);
                for (int i = 0; i < a; i++)
                    t[i][j] = u[i];
            }
            for (int i = 0; i < a; i++) { /* u = t G^T: each row, rounded once */
                wino_g(m, t[i], row);
                for (int j = 0; j < a; j++)
                    U[(size_t)(i * a + j) * plane + (size_t)o * C + c] = (float)row[j];
            }
        }
}

/* Where tile t0 + k of a block lies: its plane's offset in planes of `ch`
 * channels (image t / (th * tw)) and its tile row and column. */
typedef struct {
    size_t img;
    int ty, tx;
} wino_at_tile;

WINO_INLINE wino_at_tile wino_tile(size_t t, int th, int tw)
{
    const int r = (int)(t % ((size_t)th * tw));
    return (wino_at_tile){t / ((size_t)th * tw), r / tw, r % tw};
}

/* The 2-D transform r = T1 d T1^T of an n x n tile d into an a x a one, by
 * the 1-D f (n -> a values): f on each column, then on each row. */
#define WINO_2D(f, m, n, d, r)                                                                  \
    do {                                                                                        \
        float t_[WINO_MAX_A][WINO_MAX_A], c_[WINO_MAX_A], o_[WINO_MAX_A];                       \
        for (int j_ = 0; j_ < (n); j_++) {                                                      \
            for (int i_ = 0; i_ < (n); i_++)                                                    \
                c_[i_] = (d)[i_][j_];                                                           \
            f((m), c_, o_);                                                                     \
            for (int i_ = 0; i_ < (m) + 2; i_++)                                                \
                t_[i_][j_] = o_[i_];                                                            \
        }                                                                                       \
        for (int i_ = 0; i_ < (m) + 2; i_++)                                                    \
            f((m), t_[i_], (r)[i_]);                                                            \
    } while (0)

WINO_INLINE void wino_input(int m, const float *x, int C, int c0, int c1, int h, int w,
                            size_t t0, int nt, float *V)
{
    const int a = m + 2, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    const size_t plane = (size_t)C * nt;
    for (int c = c0; c < c1; c++)
        for (int k = 0; k < nt; k++) {
            const wino_at_tile at = wino_tile(t0 + k, th, tw);
            const float *src = x + (at.img * C + c) * h * w;
            float d[WINO_MAX_A][WINO_MAX_A], r[WINO_MAX_A][WINO_MAX_A];
            const int y0 = m * at.ty - 1, x0 = m * at.tx - 1;
            for (int i = 0; i < a; i++)
                for (int j = 0; j < a; j++) {
                    const int y = y0 + i, xx = x0 + j;
                    d[i][j] = (y >= 0 && y < h && xx >= 0 && xx < w) ? src[y * w + xx] : 0.0f;
                }
            WINO_2D(wino_bt, m, a, d, r); /* B^T d B */
            float *v = V + (size_t)c * nt + k;
            for (int q = 0; q < a * a; q++)
                v[q * plane] = r[q / a][q % a];
        }
}

WINO_INLINE void wino_output(int m, const float *P, int M, int o0, int o1, int h, int w,
                             size_t t0, int nt, const float *bias, float *y)
{
    const int a = m + 2, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    const size_t plane = (size_t)M * nt;
    for (int o = o0; o < o1; o++) {
        const float bm = bias ? bias[o] : 0.0f;
        for (int k = 0; k < nt; k++) {
            const wino_at_tile at = wino_tile(t0 + k, th, tw);
            float *dst = y + (at.img * M + o) * h * w;
            float p[WINO_MAX_A][WINO_MAX_A], s[WINO_MAX_A][WINO_MAX_A], r[WINO_MAX_A];
            const float *src = P + (size_t)o * nt + k;
            for (int q = 0; q < a * a; q++)
                p[q / a][q % a] = src[q * plane];
            for (int j = 0; j < a; j++) { /* s = A^T p */
                float col[WINO_MAX_A];
                for (int i = 0; i < a; i++)
                    col[i] = p[i][j];
                wino_at(m, col, r);
                for (int i = 0; i < m; i++)
                    s[i][j] = r[i];
            }
            for (int i = 0; i < m && m * at.ty + i < h; i++) { /* y = s A */
                wino_at(m, s[i], r);
                float *d = dst + (m * at.ty + i) * w + m * at.tx;
                for (int j = 0; j < m && m * at.tx + j < w; j++)
                    d[j] = r[j] + bm;
            }
        }
    }
}

WINO_INLINE void wino_output_adjoint(int m, const float *dy, int M, int o0, int o1, int h,
                                     int w, size_t t0, int nt, float *P)
{
    const int a = m + 2, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    const size_t plane = (size_t)M * nt;
    for (int o = o0; o < o1; o++)
        for (int k = 0; k < nt; k++) {
            const wino_at_tile at = wino_tile(t0 + k, th, tw);
            const float *src = dy + (at.img * M + o) * h * w;
            float g[WINO_MAX_A][WINO_MAX_A], r[WINO_MAX_A][WINO_MAX_A];
            const int y0 = m * at.ty, x0 = m * at.tx;
            for (int i = 0; i < m; i++) /* the tile's outputs past the plane: none, 0 */
                for (int j = 0; j < m; j++)
                    g[i][j] = y0 + i < h && x0 + j < w ? src[(y0 + i) * w + x0 + j] : 0.0f;
            WINO_2D(wino_a, m, m, g, r); /* A g A^T */
            float *pp = P + (size_t)o * nt + k;
            for (int q = 0; q < a * a; q++)
                pp[q * plane] = r[q / a][q % a];
        }
}

WINO_INLINE void wino_input_adjoint(int m, const float *V, int C, int c0, int c1, int h, int w,
                                    size_t t0, int nt, float *dx)
{
    const int a = m + 2, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    const size_t plane = (size_t)C * nt;
    for (int c = c0; c < c1; c++)
        for (int k = 0; k < nt; k++) {
            const wino_at_tile at = wino_tile(t0 + k, th, tw);
            float *dst = dx + (at.img * C + c) * h * w;
            float v[WINO_MAX_A][WINO_MAX_A], r[WINO_MAX_A][WINO_MAX_A];
            const float *src = V + (size_t)c * nt + k;
            for (int q = 0; q < a * a; q++)
                v[q / a][q % a] = src[q * plane];
            WINO_2D(wino_b, m, a, v, r); /* B v B^T */
            const int y0 = m * at.ty - 1, x0 = m * at.tx - 1;
            for (int i = 0; i < a; i++) { /* the window, without its padding */
                const int y = y0 + i;
                if (y < 0 || y >= h)
                    continue;
                for (int j = 0; j < a; j++)
                    if (x0 + j >= 0 && x0 + j < w)
                        dst[y * w + x0 + j] += r[i][j];
            }
        }
}

void lyr_wino_input(int m, const float *x, int C, int c0, int c1, int h, int w, size_t t0, int nt,
                    float *V)
{
    if (m == 4)
        wino_input(4, x, C, c0, c1, h, w, t0, nt, V);
    else
        wino_input(2, x, C, c0, c1, h, w, t0, nt, V);
}

void lyr_wino_output(int m, const float *P, int M, int o0, int o1, int h, int w, size_t t0,
                     int nt, const float *bias, float *y)
{
    if (m == 4)
        wino_output(4, P, M, o0, o1, h, w, t0, nt, bias, y);
    else
        wino_output(2, P, M, o0, o1, h, w, t0, nt, bias, y);
}

void lyr_wino_output_adjoint(int m, const float *dy, int M, int o0, int o1, int h, int w,
                             size_t t0, int nt, float *P)
{
    if (m == 4)
        wino_output_adjoint(4, dy, M, o0, o1, h, w, t0, nt, P);
    else
        wino_output_adjoint(2, dy, M, o0, o1, h, w, t0, nt, P);
}

void lyr_wino_input_adjoint(int m, const float *V, int C, int c0, int c1, int h, int w, size_t t0,
                            int nt, float *dx)
{
    if (m == 4)
        wino_input_adjoint(4, V, C, c0, c1, h, w, t0, nt, dx);
    else
        wino_input_adjoint(2, V, C, c0, c1, h, w, t0, nt, dx);
}
