/* The DCT analysis (common/dct.h): a single DCT basis function lands in its
 * one frequency; Parseval holds on white noise; the energies equal SciPy's
 * orthonormal DCT (Debian's python3-scipy, when there) of the same colour
 * planes; the quantisation steps are libjpeg's own at every quality. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "dct.h"
#include "testutil.h"

static double basis(int u, int v, int y, int x)
{
    const double cu = u ? sqrt(2.0 / 8) : sqrt(1.0 / 8), cv = v ? sqrt(2.0 / 8) : sqrt(1.0 / 8);
    return cu * cv * cos((2 * y + 1) * u * M_PI / 16) * cos((2 * x + 1) * v * M_PI / 16);
}

static void test_basis(void)
{
    const int w = 24, h = 16, u0 = 2, v0 = 5;
    const double A = 7.5;
    float *d = malloc((size_t)3 * w * h * sizeof(float));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) /* grey: Y is the function itself, Cb = Cr = 0 */
                d[3 * (y * w + x) + c] = (float)(A * basis(u0, v0, y % 8, x % 8));
    dct_energy e;
    CHECK(dct_energy_diff(d, w, h, &e) == 0, "energy");
    CHECK(e.blocks[DCT_Y] == 6 && e.blocks[DCT_CB] == 1 && e.blocks[DCT_CR] == 1, "blocks %d %d %d",
          e.blocks[0], e.blocks[1], e.blocks[2]);
    double other = 0, chroma = 0;
    for (int k = 0; k < 64; k++) {
        if (k != u0 * 8 + v0)
            other += e.e[DCT_Y][k];
        chroma += e.e[DCT_CB][k] + e.e[DCT_CR][k];
    }
    CHECK(fabs(e.e[DCT_Y][u0 * 8 + v0] - A * A) < 1e-4 * A * A, "E_Y(2,5) = %g, want %g",
          e.e[DCT_Y][u0 * 8 + v0], A * A);
    CHECK(other < 1e-8 && chroma < 1e-8, "the rest is empty: %g, chroma %g", other, chroma);
    free(d);
}

/* Parseval on white noise, and SciPy's dctn(norm="ortho") on the same planes. */
static void test_noise_and_scipy(void)
{
    const int w = 37, h = 29; /* edge blocks and an odd chroma column are left out */
    float *d = malloc((size_t)3 * w * h * sizeof(float));
    uint64_t s = 9;
    for (int k = 0; k < 3 * w * h; k++)
        d[k] = (float)(int)tu_uniform(&s, -10, 11);
    dct_energy e;
    CHECK(dct_energy_diff(d, w, h, &e) == 0, "energy");
    double sum = 0, direct = 0;
    for (int k = 0; k < 64; k++)
        sum += e.e[DCT_Y][k];
    for (int by = 0; by + 8 <= h; by += 8)
        for (int bx = 0; bx + 8 <= w; bx += 8)
            for (int y = by; y < by + 8; y++)
                for (int x = bx; x < bx + 8; x++) {
                    const float *p = d + 3 * (y * w + x);
                    const double Y = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
                    direct += Y * Y;
                }
    direct /= e.blocks[DCT_Y];
    CHECK(fabs(sum - direct) < 1e-9 * direct, "Parseval: %g against %g", sum, direct);

    if (system("/usr/bin/python3 -c 'import scipy.fft, numpy' 2>/dev/null") != 0) {
        fprintf(stderr, "SciPy comparison skipped: python3-scipy is not installed\n");
        free(d);
        return;
    }
    const char *dir = tu_tmpdir();
    char in[4200], out[4200], cmd[12000];
    snprintf(in, sizeof in, "%s/diff.txt", dir);
    snprintf(out, sizeof out, "%s/energy.txt", dir);
    FILE *f = fopen(in, "w");
    for (int k = 0; k < 3 * w * h; k++)
        fprintf(f, "%.9g\n", d[k]);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c '\n"
             "import numpy as np, scipy.fft as F\n"
             "d = np.loadtxt(\"%s\").reshape(%d, %d, 3)\n"
             "R, G, B = d[..., 0], d[..., 1], d[..., 2]\n"
             "Y = 0.299*R + 0.587*G + 0.114*B\n"
             "def sub(p):\n"
             "    h, w = p.shape[0] // 2 * 2, p.shape[1] // 2 * 2\n"
             "    p = p[:h, :w]\n"
             "    return (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) / 4\n"
             "Cb = sub(-0.168736*R - 0.331264*G + 0.5*B)\n"
             "Cr = sub(0.5*R - 0.418688*G - 0.081312*B)\n"
             "with open(\"%s\", \"w\") as o:\n"
             "    for p in (Y, Cb, Cr):\n"
             "        e = np.zeros((8, 8)); n = 0\n"
             "        for by in range(0, p.shape[0] - 7, 8):\n"
             "            for bx in range(0, p.shape[1] - 7, 8):\n"
             "                e += F.dctn(p[by:by+8, bx:bx+8], norm=\"ortho\") ** 2; n += 1\n"
             "        o.write(\" \".join(repr(v) for v in (e / n).ravel()) + \"\\n\")\n"
             "'",
             in, h, w, out);
    CHECK(system(cmd) == 0, "scipy ran");
    f = fopen(out, "r");
    int agree = 0;
    for (int c = 0; c < 3 && f; c++)
        for (int k = 0; k < 64; k++) {
            double v;
            if (fscanf(f, "%lf", &v) == 1 && fabs(v - e.e[c][k]) <= 1e-9 * (1 + v))
                agree++;
        }
    if (f)
        fclose(f);
    CHECK(agree == 192, "%d of 192 energies equal SciPy's", agree);
    fprintf(stderr, "SciPy: %d of 192 energies agree\n", agree);
    free(d);
}

static void test_quant_steps(void)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    ci.in_color_space = JCS_RGB;
    ci.input_components = 3;
    jpeg_set_defaults(&ci);
    int bad = 0;
    for (int q = 1; q <= 100; q++) {
        jpeg_set_quality(&ci, q, TRUE);
        int steps[2][64];
        dct_quant_steps(q, steps);
        for (int t = 0; t < 2; t++)
            for (int k = 0; k < 64; k++)
                bad += steps[t][k] != ci.quant_tbl_ptrs[t]->quantval[k];
    }
    jpeg_destroy_compress(&ci);
    CHECK(bad == 0, "%d quantisation steps differ from libjpeg's over qualities 1..100", bad);
    int seen[64] = {0};
    for (int k = 0; k < 64; k++)
        seen[dct_zigzag[k]]++;
    int perm = 1;
    for (int k = 0; k < 64; k++)
        perm &= seen[k] == 1;
    CHECK(perm && dct_zigzag[2] == 8 && dct_zigzag[63] == 63, "the zigzag is a permutation");
}

/* The cross energy of dct_energy_pair (its two energies are dct_energy_diff's). */
static int cross_of(const float *d1, const float *d2, int w, int h, dct_energy *out)
{
    dct_energy e1, e2, e;
    int rc = dct_energy_pair(d1, d2, w, h, &e1, &e2, out);
    if (!rc && !dct_energy_diff(d2, w, h, &e))
        CHECK(!memcmp(e.e, e2.e, sizeof e.e), "E(d2) as dct_energy_diff's");
    return rc;
}

/* The cross energy: of d with itself its energy, with -d minus it, with a disjoint frequency
 * 0, and by hand for two constant blocks (DC coefficients 8a and 8b: 64ab). */
static void test_cross(void)
{
    const int w = 16, h = 16;
    const size_t n = (size_t)3 * w * h;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *neg = malloc(n * sizeof *neg);
    uint64_t s = 5;
    for (size_t k = 0; k < n; k++) {
        a[k] = tu_uniform(&s, -3, 3);
        neg[k] = -a[k];
    }
    dct_energy e, x, xn;
    dct_energy_diff(a, w, h, &e);
    CHECK(cross_of(a, a, w, h, &x) == ADJ_OK && cross_of(a, neg, w, h, &xn) == ADJ_OK,
          "cross");
    double worst = 0;
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 64; k++)
            worst = fmax(worst, fmax(fabs(x.e[c][k] - e.e[c][k]), fabs(xn.e[c][k] + e.e[c][k])));
    CHECK(worst < 1e-9, "cross(d, d) = E(d), cross(d, -d) = -E(d): %g off", worst);
    /* constant 2 and -5 in luma (R = G = B), the blocks' DC only: 8*2 * 8*(-5) = -640 */
    for (size_t k = 0; k < n; k++) {
        a[k] = 2;
        b[k] = -5;
    }
    cross_of(a, b, w, h, &x);
    CHECK(fabs(x.e[DCT_Y][0] + 640) < 1e-9 && fabs(x.e[DCT_Y][1]) < 1e-9 &&
              fabs(x.e[DCT_CB][0]) < 1e-9, "DC by hand: %g, want -640", x.e[DCT_Y][0]);
    /* a DC pattern against a checkerboard of the columns (no DC): nothing in common */
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++)
            for (int c = 0; c < 3; c++)
                b[3 * ((size_t)y * w + xx) + c] = xx % 2 ? 1.0f : -1.0f;
    cross_of(a, b, w, h, &x);
    worst = 0;
    for (int k = 0; k < 64; k++)
        worst = fmax(worst, fabs(x.e[DCT_Y][k]));
    CHECK(worst < 1e-9, "disjoint frequencies: %g", worst);
    CHECK(cross_of(a, b, 0, h, &x) == ADJ_ERR_ARG, "size 0");
    free(a);
    free(b);
    free(neg);
}

int main(void)
{
    test_cross();
    test_basis();
    test_noise_and_scipy();
    test_quant_steps();
    return tu_done();
}
