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
 * outputs), a = m + 2; and for the adjoints B (a x a) and A (a x m). Each 2-D
 * transform applies the 1-D one to the columns and then to the rows of a
 * tile. The tile transforms do WINO_L consecutive tiles at once, one per
 * lane of a vector (GCC's vector extension: SSE or AVX as the target has):
 * every lane's arithmetic is the same, so a tile's result does not depend on
 * its lane or on how many lanes are in use. */

enum { WINO_MAX_A = 6, WINO_L = 8 };
typedef float wino_v __attribute__((vector_size(WINO_L * sizeof(float))));

static void bt2(const wino_v *d, wino_v *r)
{
    r[0] = d[0] - d[2];
    r[1] = d[1] + d[2];
    r[2] = d[2] - d[1];
    r[3] = d[1] - d[3];
}

static void at2(const wino_v *p, wino_v *o)
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

static void bt4(const wino_v *d, wino_v *r)
{
    r[0] = 4 * d[0] - 5 * d[2] + d[4];
    r[1] = -4 * (d[1] + d[2]) + d[3] + d[4];
    r[2] = 4 * (d[1] - d[2]) - d[3] + d[4];
    r[3] = 2 * (d[3] - d[1]) - d[2] + d[4];
    r[4] = 2 * (d[1] - d[3]) - d[2] + d[4];
    r[5] = 4 * d[1] - 5 * d[3] + d[5];
}

static void at4(const wino_v *p, wino_v *o)
{
    const wino_v s12 = p[1] + p[2], d12 = p[1] - p[2], s34 = p[3] + p[4], d34 = p[3] - p[4];
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

static void b2(const wino_v *v, wino_v *r)
{
    r[0] = v[0];
    r[1] = v[1] - v[2] + v[3];
    r[2] = v[1] + v[2] - v[0];
    r[3] = -v[3];
}

static void a2(const wino_v *y, wino_v *r)
{
    r[0] = y[0];
    r[1] = y[0] + y[1];
    r[2] = y[0] - y[1];
    r[3] = -y[1];
}

static void b4(const wino_v *v, wino_v *r)
{
    r[0] = 4 * v[0];
    r[1] = 4 * (v[2] - v[1] + v[5]) + 2 * (v[4] - v[3]);
    r[2] = -5 * v[0] - 4 * (v[1] + v[2]) - v[3] - v[4];
    r[3] = v[1] - v[2] + 2 * (v[3] - v[4]) - 5 * v[5];
    r[4] = v[0] + v[1] + v[2] + v[3] + v[4];
    r[5] = v[5];
}

static void a4(const wino_v *y, wino_v *r)
{
    const wino_v e = y[0] + y[2], o = y[1] + y[3], e4 = y[0] + 4 * y[2], o8 = 2 * y[1] + 8 * y[3];
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
WINO_INLINE void wino_bt(int m, const wino_v *d, wino_v *r) { m == 4 ? bt4(d, r) : bt2(d, r); }
WINO_INLINE void wino_at(int m, const wino_v *p, wino_v *o) { m == 4 ? at4(p, o) : at2(p, o); }
WINO_INLINE void wino_b(int m, const wino_v *v, wino_v *r) { m == 4 ? b4(v, r) : b2(v, r); }
WINO_INLINE void wino_a(int m, const wino_v *y, wino_v *r) { m == 4 ? a4(y, r) : a2(y, r); }
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

/* Where the lanes' tiles t0 + k + l (l < n) lie: their planes' image and
 * their first row and column in the plane (tile row ty, column tx: m ty, m tx). */
typedef struct {
    int n;
    size_t img[WINO_L];
    int y[WINO_L], x[WINO_L];
} wino_lanes;

WINO_INLINE wino_lanes wino_tiles_at(int m, size_t t, int n, int th, int tw)
{
    wino_lanes s = {.n = n};
    for (int l = 0; l < n; l++, t++) {
        const int r = (int)(t % ((size_t)th * tw));
        s.img[l] = t / ((size_t)th * tw), s.y[l] = m * (r / tw), s.x[l] = m * (r % tw);
    }
    return s;
}

/* The 2-D transform r = T1 d T1^T of n x n tiles d into a x a ones, by the
 * 1-D f (n -> a values): f on each column, then on each row. */
WINO_INLINE void wino_2d(void (*f)(int, const wino_v *, wino_v *), int m, int n,
                         wino_v d[][WINO_MAX_A], wino_v r[][WINO_MAX_A])
{
    wino_v t[WINO_MAX_A][WINO_MAX_A], c[WINO_MAX_A], o[WINO_MAX_A];
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < n; i++)
            c[i] = d[i][j];
        f(m, c, o);
        for (int i = 0; i < m + 2; i++)
            t[i][j] = o[i];
    }
    for (int i = 0; i < m + 2; i++)
        f(m, t[i], r[i]);
}

/* a x a vectors r to the lanes' columns k .. k + n - 1 of the [a^2][..][nt]
 * block at dst (its row q at dst + q * plane), and back (lanes past n: 0); a
 * full group (n = WINO_L) a vector at a time. */
WINO_INLINE void wino_store(int a, wino_v r[][WINO_MAX_A], int n, float *dst, size_t plane)
{
    for (int q = 0; q < a * a; q++)
        if (n == WINO_L)
            memcpy(dst + q * plane, &r[q / a][q % a], sizeof(wino_v));
        else
            memcpy(dst + q * plane, &r[q / a][q % a], sizeof(float) * n);
}

WINO_INLINE void wino_load(int a, const float *src, size_t plane, int n, wino_v r[][WINO_MAX_A])
{
    for (int q = 0; q < a * a; q++)
        if (n == WINO_L)
            memcpy(&r[q / a][q % a], src + q * plane, sizeof(wino_v));
        else {
            r[q / a][q % a] = (wino_v){0};
            memcpy(&r[q / a][q % a], src + q * plane, sizeof(float) * n);
        }
}

/* Whether (y, x) is in the h x w plane, and whether an r x r window at (y, x)
 * is: a tile inside takes no bounds check per element (the callers test it
 * once and the check folds away). */
WINO_INLINE int wino_in(int y, int x, int h, int w)
{
    return y >= 0 && y < h && x >= 0 && x < w;
}

WINO_INLINE int wino_inside(int r, int y, int x, int h, int w)
{
    return y >= 0 && y + r <= h && x >= 0 && x + r <= w;
}

WINO_INLINE void wino_input(int m, const float *x, int C, int c0, int c1, int h, int w,
                            size_t t0, int nt, float *V)
{
    const int a = m + 2, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    const size_t plane = (size_t)C * nt;
    for (int k = 0; k < nt; k += WINO_L) {
        const wino_lanes s = wino_tiles_at(m, t0 + k, nt - k < WINO_L ? nt - k : WINO_L, th, tw);
        for (int c = c0; c < c1; c++) {
            wino_v d[WINO_MAX_A][WINO_MAX_A], r[WINO_MAX_A][WINO_MAX_A];
            if (s.n < WINO_L)
                memset(d, 0, sizeof d);
            for (int l = 0; l < s.n; l++) {
                const float *src = x + (s.img[l] * C + c) * h * w;
                const int in = wino_inside(a, s.y[l] - 1, s.x[l] - 1, h, w);
                for (int i = 0; i < a; i++)
                    for (int j = 0; j < a; j++) {
                        const int y = s.y[l] - 1 + i, xx = s.x[l] - 1 + j;
                        d[i][j][l] = in || wino_in(y, xx, h, w) ? src[y * w + xx] : 0.0f;
                    }
            }
            wino_2d(wino_bt, m, a, d, r); /* B^T d B */
            wino_store(a, r, s.n, V + (size_t)c * nt + k, plane);
        }
    }
}

WINO_INLINE void wino_output(int m, const float *P, int M, int o0, int o1, int h, int w,
                             size_t t0, int nt, const float *bias, float *y)
{
    const int a = m + 2, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    const size_t plane = (size_t)M * nt;
    for (int k = 0; k < nt; k += WINO_L) {
        const wino_lanes s = wino_tiles_at(m, t0 + k, nt - k < WINO_L ? nt - k : WINO_L, th, tw);
        for (int o = o0; o < o1; o++) {
            const float bm = bias ? bias[o] : 0.0f;
            wino_v p[WINO_MAX_A][WINO_MAX_A], t[WINO_MAX_A][WINO_MAX_A], c[WINO_MAX_A];
            wino_v r[WINO_MAX_A][WINO_MAX_A];
            wino_load(a, P + (size_t)o * nt + k, plane, s.n, p);
            for (int j = 0; j < a; j++) { /* t = A^T p: m x a */
                for (int i = 0; i < a; i++)
                    c[i] = p[i][j];
                wino_at(m, c, r[0]);
                for (int i = 0; i < m; i++)
                    t[i][j] = r[0][i];
            }
            for (int i = 0; i < m; i++) /* r = t A: m x m */
                wino_at(m, t[i], r[i]);
            for (int l = 0; l < s.n; l++) {
                float *dst = y + (s.img[l] * M + o) * h * w;
                const int in = wino_inside(m, s.y[l], s.x[l], h, w);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < m; j++)
                        if (in || wino_in(s.y[l] + i, s.x[l] + j, h, w))
                            dst[(s.y[l] + i) * w + s.x[l] + j] = r[i][j][l] + bm;
            }
        }
    }
}

WINO_INLINE void wino_output_adjoint(int m, const float *dy, int M, int o0, int o1, int h,
                                     int w, size_t t0, int nt, float *P)
{
    const int a = m + 2, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    const size_t plane = (size_t)M * nt;
    for (int k = 0; k < nt; k += WINO_L) {
        const wino_lanes s = wino_tiles_at(m, t0 + k, nt - k < WINO_L ? nt - k : WINO_L, th, tw);
        for (int o = o0; o < o1; o++) {
            wino_v g[WINO_MAX_A][WINO_MAX_A], r[WINO_MAX_A][WINO_MAX_A];
            if (s.n < WINO_L)
                memset(g, 0, sizeof g);
            for (int l = 0; l < s.n; l++) { /* the tile's outputs past the plane: none, 0 */
                const float *src = dy + (s.img[l] * M + o) * h * w;
                const int in = wino_inside(m, s.y[l], s.x[l], h, w);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < m; j++)
                        g[i][j][l] = in || wino_in(s.y[l] + i, s.x[l] + j, h, w)
                                         ? src[(s.y[l] + i) * w + s.x[l] + j]
                                         : 0.0f;
            }
            wino_2d(wino_a, m, m, g, r); /* A g A^T */
            wino_store(a, r, s.n, P + (size_t)o * nt + k, plane);
        }
    }
}

WINO_INLINE void wino_input_adjoint(int m, const float *V, int C, int c0, int c1, int h, int w,
                                    size_t t0, int nt, float *dx)
{
    const int a = m + 2, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    const size_t plane = (size_t)C * nt;
    for (int k = 0; k < nt; k += WINO_L) {
        const wino_lanes s = wino_tiles_at(m, t0 + k, nt - k < WINO_L ? nt - k : WINO_L, th, tw);
        for (int c = c0; c < c1; c++) {
            wino_v v[WINO_MAX_A][WINO_MAX_A], r[WINO_MAX_A][WINO_MAX_A];
            wino_load(a, V + (size_t)c * nt + k, plane, s.n, v);
            wino_2d(wino_b, m, a, v, r); /* B v B^T */
            for (int l = 0; l < s.n; l++) { /* the windows in tile order, without the padding */
                float *dst = dx + (s.img[l] * C + c) * h * w;
                if (wino_inside(a, s.y[l] - 1, s.x[l] - 1, h, w)) { /* own loop: 3-5% faster */
                    float *b = dst + (s.y[l] - 1) * w + s.x[l] - 1;
                    for (int i = 0; i < a; i++)
                        for (int j = 0; j < a; j++)
                            b[i * w + j] += r[i][j][l];
                    continue;
                }
                for (int i = 0; i < a; i++)
                    for (int j = 0; j < a; j++) {
                        const int y = s.y[l] - 1 + i, xx = s.x[l] - 1 + j;
                        if (wino_in(y, xx, h, w))
                            dst[y * w + xx] += r[i][j][l];
                    }
            }
        }
    }
}

/*
 * The four transforms twice: an AVX2 build (one register per wino_v, where
 * the baseline build takes two SSE ones) and the baseline one, by the
 * processor. The same float operations in both (no FMA: target avx2 does not
 * enable it, and ISO C mode does not contract), so the same bits.
 */
#if defined(__x86_64__) || defined(__i386__)
#define WINO_TARGET_AVX2 __attribute__((target("avx2")))
#define WINO_AVX2() (__builtin_cpu_init(), __builtin_cpu_supports("avx2"))
#else
#define WINO_TARGET_AVX2
#define WINO_AVX2() 0
#endif
#define WINO_BUILD(name, attr) static attr void name

/* f's instance for the tile size m (4 or 2: each a constant to the inliner). */
#define WINO_M(f, m, ...) ((m) == 4 ? f(4, __VA_ARGS__) : f(2, __VA_ARGS__))

#define WINO_BUILDS(suffix, attr)                                                             \
    WINO_BUILD(input_##suffix, attr)(int m, const float *x, int C, int c0, int c1, int h,      \
                                       int w, size_t t0, int nt, float *V)                      \
    {                                                                                           \
        WINO_M(wino_input, m, x, C, c0, c1, h, w, t0, nt, V);                                   \
    }                                                                                           \
    WINO_BUILD(output_##suffix, attr)(int m, const float *P, int M, int o0, int o1, int h,     \
                                        int w, size_t t0, int nt, const float *bias, float *y)  \
    {                                                                                           \
        WINO_M(wino_output, m, P, M, o0, o1, h, w, t0, nt, bias, y);                            \
    }                                                                                           \
    WINO_BUILD(output_adjoint_##suffix, attr)(int m, const float *dy, int M, int o0, int o1,   \
                                                int h, int w, size_t t0, int nt, float *P)      \
    {                                                                                           \
        WINO_M(wino_output_adjoint, m, dy, M, o0, o1, h, w, t0, nt, P);                         \
    }                                                                                           \
    WINO_BUILD(input_adjoint_##suffix, attr)(int m, const float *V, int C, int c0, int c1,     \
                                               int h, int w, size_t t0, int nt, float *dx)      \
    {                                                                                           \
        WINO_M(wino_input_adjoint, m, V, C, c0, c1, h, w, t0, nt, dx);                          \
    }

WINO_BUILDS(avx2, WINO_TARGET_AVX2)
WINO_BUILDS(base, )

void lyr_wino_input(int m, const float *x, int C, int c0, int c1, int h, int w, size_t t0, int nt,
                    float *V)
{
    (WINO_AVX2() ? input_avx2 : input_base)(m, x, C, c0, c1, h, w, t0, nt, V);
}

void lyr_wino_output(int m, const float *P, int M, int o0, int o1, int h, int w, size_t t0,
                     int nt, const float *bias, float *y)
{
    (WINO_AVX2() ? output_avx2 : output_base)(m, P, M, o0, o1, h, w, t0, nt, bias, y);
}

void lyr_wino_output_adjoint(int m, const float *dy, int M, int o0, int o1, int h, int w,
                             size_t t0, int nt, float *P)
{
    (WINO_AVX2() ? output_adjoint_avx2 : output_adjoint_base)(m, dy, M, o0, o1, h, w, t0, nt, P);
}

void lyr_wino_input_adjoint(int m, const float *V, int C, int c0, int c1, int h, int w, size_t t0,
                            int nt, float *dx)
{
    (WINO_AVX2() ? input_adjoint_avx2 : input_adjoint_base)(m, V, C, c0, c1, h, w, t0, nt, dx);
}
