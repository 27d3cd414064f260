#include "layers.h"

#include <math.h>
#include <string.h>

void lyr_im2col(const float *in, int B, int b0, int nb, const lyr_geom *g, float *col)
{
    const int ohw = g->oh * g->ow;
    const size_t ncols = (size_t)nb * ohw;
    for (int ci = 0; ci < g->c; ci++) {
        for (int i = 0; i < g->kh; i++) {
            for (int j = 0; j < g->kw; j++) {
                float *row = col + ((size_t)(ci * g->kh + i) * g->kw + j) * ncols;
                for (int b = 0; b < nb; b++) {
                    const float *plane = in + ((size_t)ci * B + b0 + b) * g->h * g->w;
                    float *dst = row + (size_t)b * ohw;
                    for (int y = 0; y < g->oh; y++) {
                        const int iy = y * g->stride + i - g->pad_t;
                        float *d = dst + (size_t)y * g->ow;
                        if (iy < 0 || iy >= g->h) {
                            memset(d, 0, sizeof(float) * g->ow);
                            continue;
                        }
                        const float *src = plane + (size_t)iy * g->w;
                        if (g->stride == 1) {
                            /* contiguous run with zero borders */
                            int x0 = g->pad_l - j, x = 0;
                            for (; x < g->ow && x - x0 < 0; x++)
                                d[x] = 0.0f;
                            int xend = g->w + x0; /* first x with ix >= w */
                            if (xend > g->ow)
                                xend = g->ow;
                            if (xend > x) {
                                memcpy(d + x, src + (x - x0), sizeof(float) * (size_t)(xend - x));
                                x = xend;
                            }
                            for (; x < g->ow; x++)
                                d[x] = 0.0f;
                        } else {
                            for (int x = 0; x < g->ow; x++) {
                                const int ix = x * g->stride + j - g->pad_l;
                                d[x] = (ix >= 0 && ix < g->w) ? src[ix] : 0.0f;
                            }
                        }
                    }
                }
            }
        }
    }
}

void lyr_col2im(const float *col, int B, int b0, int nb, const lyr_geom *g, float *din)
{
    const int ohw = g->oh * g->ow;
    const size_t ncols = (size_t)nb * ohw;
    for (int ci = 0; ci < g->c; ci++) { /* each channel's planes are its own */
        for (int i = 0; i < g->kh; i++) {
            for (int j = 0; j < g->kw; j++) {
                const float *row = col + ((size_t)(ci * g->kh + i) * g->kw + j) * ncols;
                for (int b = 0; b < nb; b++) {
                    float *plane = din + ((size_t)ci * B + b0 + b) * g->h * g->w;
                    const float *s = row + (size_t)b * ohw;
                    for (int y = 0; y < g->oh; y++) {
                        const int iy = y * g->stride + i - g->pad_t;
                        if (iy < 0 || iy >= g->h)
                            continue;
                        float *dst = plane + (size_t)iy * g->w;
                        const float *sr = s + (size_t)y * g->ow;
                        for (int x = 0; x < g->ow; x++) {
                            const int ix = x * g->stride + j - g->pad_l;
                            if (ix >= 0 && ix < g->w)
                                dst[ix] += sr[x];
                        }
                    }
                }
            }
        }
    }
}

void lyr_maxpool(const float *in, int planes, const lyr_geom *g, float *out, int32_t *arg)
{
    const size_t ip = (size_t)g->h * g->w, op = (size_t)g->oh * g->ow;
    for (int p = 0; p < planes; p++) {
        const float *src = in + p * ip;
        float *dst = out + p * op;
        int32_t *a = arg + p * op;
        for (int y = 0; y < g->oh; y++) {
            for (int x = 0; x < g->ow; x++) {
                const int y0 = y * g->stride, x0 = x * g->stride;
                int best = y0 * g->w + x0;
                float m = src[best];
                for (int i = 0; i < g->kh; i++) {
                    const float *r = src + (size_t)(y0 + i) * g->w + x0;
                    for (int j = 0; j < g->kw; j++) {
                        if (r[j] > m) { /* strict: the first maximum wins */
                            m = r[j];
                            best = (y0 + i) * g->w + x0 + j;
                        }
                    }
                }
                dst[y * g->ow + x] = m;
                a[y * g->ow + x] = best;
            }
        }
    }
}

void lyr_maxpool_back(const float *dout, const int32_t *arg, int planes, const lyr_geom *g,
                      float *din)
{
    const size_t ip = (size_t)g->h * g->w, op = (size_t)g->oh * g->ow;
    memset(din, 0, sizeof(float) * ip * planes);
    for (int p = 0; p < planes; p++) {
        const float *d = dout + p * op;
        const int32_t *a = arg + p * op;
        float *t = din + p * ip;
        for (size_t k = 0; k < op; k++)
            t[a[k]] += d[k];
    }
}

void lyr_relu(const float *in, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void lyr_relu_back(const float *out, const float *dout, size_t n, float *din)
{
    for (size_t i = 0; i < n; i++)
        din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

void lyr_cnhw_to_nc(const float *in, int C, int B, int hw, float *out)
{
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++)
            memcpy(out + ((size_t)b * C + c) * hw, in + ((size_t)c * B + b) * hw,
                   sizeof(float) * hw);
}

void lyr_nc_to_cnhw(const float *in, int C, int B, int hw, float *out)
{
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++)
            memcpy(out + ((size_t)c * B + b) * hw, in + ((size_t)b * C + c) * hw,
                   sizeof(float) * hw);
}

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

/* ---- Winograd F(2x2, 3x3) -------------------------------------------- */

size_t lyr_wino_tiles(int B, int h, int w)
{
    return (size_t)B * ((h + 1) / 2) * ((w + 1) / 2);
}

void lyr_wino_weights(const float *W, int M, int C, int transpose, float *U)
{
    const size_t plane = (size_t)M * C;
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            const float *g = W + ((size_t)m * C + c) * 9;
            float k[9];
            if (transpose)
                for (int q = 0; q < 9; q++)
                    k[q] = g[8 - q]; /* rotated by 180 degrees */
            else
                memcpy(k, g, sizeof k);
            /* t = G k (4x3), G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] */
            float t[4][3];
            for (int j = 0; j < 3; j++) {
                t[0][j] = k[j];
                t[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
                t[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
                t[3][j] = k[6 + j];
            }
            /* u = t G^T (4x4) */
            const size_t at = transpose ? (size_t)c * M + m : (size_t)m * C + c;
            for (int i = 0; i < 4; i++) {
                float u0 = t[i][0], u1 = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                float u2 = 0.5f * (t[i][0] - t[i][1] + t[i][2]), u3 = t[i][2];
                U[(size_t)(i * 4 + 0) * plane + at] = u0;
                U[(size_t)(i * 4 + 1) * plane + at] = u1;
                U[(size_t)(i * 4 + 2) * plane + at] = u2;
                U[(size_t)(i * 4 + 3) * plane + at] = u3;
            }
        }
}

void lyr_wino_input(const float *in, int C, int B, int h, int w, float *V)
{
    const int th = (h + 1) / 2, tw = (w + 1) / 2;
    const size_t T = (size_t)B * th * tw, plane = (size_t)C * T;
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++) {
            const float *src = in + ((size_t)c * B + b) * h * w;
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    float d[4][4];
                    const int y0 = 2 * ty - 1, x0 = 2 * tx - 1;
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) {
                            int y = y0 + i, x = x0 + j;
                            d[i][j] = (y >= 0 && y < h && x >= 0 && x < w) ? src[y * w + x] : 0.0f;
                        }
                    /* t = B^T d, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
                    float t[4][4];
                    for (int j = 0; j < 4; j++) {
                        t[0][j] = d[0][j] - d[2][j];
                        t[1][j] = d[1][j] + d[2][j];
                        t[2][j] = d[2][j] - d[1][j];
                        t[3][j] = d[1][j] - d[3][j];
                    }
                    const size_t at = (size_t)c * T + ((size_t)b * th + ty) * tw + tx;
                    for (int i = 0; i < 4; i++) {
                        V[(size_t)(i * 4 + 0) * plane + at] = t[i][0] - t[i][2];
                        V[(size_t)(i * 4 + 1) * plane + at] = t[i][1] + t[i][2];
                        V[(size_t)(i * 4 + 2) * plane + at] = t[i][2] - t[i][1];
                        V[(size_t)(i * 4 + 3) * plane + at] = t[i][1] - t[i][3];
                    }
                }
        }
}

void lyr_wino_output(const float *P, int M, int B, int h, int w, const float *bias, float *out)
{
    const int th = (h + 1) / 2, tw = (w + 1) / 2;
    const size_t T = (size_t)B * th * tw, plane = (size_t)M * T;
    for (int m = 0; m < M; m++) {
        const float bm = bias ? bias[m] : 0.0f;
        for (int b = 0; b < B; b++) {
            float *dst = out + ((size_t)m * B + b) * h * w;
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    const size_t at = (size_t)m * T + ((size_t)b * th + ty) * tw + tx;
                    float p[4][4];
                    for (int q = 0; q < 16; q++)
                        p[q / 4][q % 4] = P[(size_t)q * plane + at];
                    /* s = A^T p, A^T = [1 1 1 0; 0 1 -1 -1] */
                    float s[2][4];
                    for (int j = 0; j < 4; j++) {
                        s[0][j] = p[0][j] + p[1][j] + p[2][j];
                        s[1][j] = p[1][j] - p[2][j] - p[3][j];
                    }
                    for (int i = 0; i < 2; i++) {
                        const int y = 2 * ty + i;
                        if (y >= h)
                            continue;
                        const float o0 = s[i][0] + s[i][1] + s[i][2] + bm;
                        const float o1 = s[i][1] - s[i][2] - s[i][3] + bm;
                        dst[y * w + 2 * tx] = o0;
                        if (2 * tx + 1 < w)
                            dst[y * w + 2 * tx + 1] = o1;
                    }
                }
        }
    }
}
