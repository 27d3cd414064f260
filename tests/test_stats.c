/* The reviewer's statistics (common/stats.h): McNemar's exact test and the
 * Wilcoxon signed-rank test against hand-computed cases and against SciPy
 * (Debian's python3-scipy, when there), and the bootstrap interval against
 * the normal approximation and for reproducibility. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "testutil.h"

/* Hand-computed: b = 1, c = 5: 2 (C(6,0) + C(6,1)) / 64 = 14/64. */
static void test_mcnemar_by_hand(void)
{
    CHECK(fabs(stats_mcnemar_exact(1, 5) - 14.0 / 64) < 1e-12, "McNemar(1, 5) = %.17g",
          stats_mcnemar_exact(1, 5));
    CHECK(stats_mcnemar_exact(0, 0) == 1 && stats_mcnemar_exact(3, 3) == 1, "no evidence: p = 1");
    CHECK(fabs(stats_mcnemar_exact(0, 10) - 2.0 / 1024) < 1e-15, "McNemar(0, 10) = 2/1024");
    CHECK(stats_mcnemar_exact(5, 1) == stats_mcnemar_exact(1, 5), "symmetric");
    double p = stats_mcnemar_exact(4000, 4200);
    CHECK(p > 0 && p < 0.05 && isfinite(p), "large counts do not overflow: %g", p);
}

/* Hand-computed: d = y - x = {1, -2, 3, 4, 0, -5} -> the 0 dropped, ranks of
 * |d| 1..5: W+ = 1 + 3 + 4 = 8, W- = 2 + 5 = 7; n = 5, mean 7.5, var
 * 5*6*11/24 = 13.75, z = (7 - 7.5)/sqrt(13.75). With ties {1, 1, -1, 2}: ranks
 * 2, 2, 2, 4: W+ = 8, W- = 2, tie term (27 - 3)/48 = 0.5, var 4*5*9/24 - 0.5 = 7. */
static void test_wilcoxon_by_hand(void)
{
    const double x[] = {0, 2, 0, 0, 7, 5}, y[] = {1, 0, 3, 4, 7, 0};
    stats_wilcoxon w;
    CHECK(stats_wilcoxon_test(x, y, 6, &w) == 0, "wilcoxon");
    CHECK(w.n == 5 && w.w_plus == 8 && w.w_minus == 7 && w.w == 7, "n %zu W+ %g W- %g", w.n, w.w_plus,
          w.w_minus);
    CHECK(fabs(w.z - (7 - 7.5) / sqrt(13.75)) < 1e-12, "z %g", w.z);
    CHECK(fabs(w.p - erfc(fabs(w.z) / sqrt(2))) < 1e-12, "p %g", w.p);
    const double a[] = {0, 0, 1, 0}, b[] = {1, 1, 0, 2};
    CHECK(stats_wilcoxon_test(a, b, 4, &w) == 0 && w.w_plus == 8 && w.w_minus == 2 &&
              fabs(w.z - (2 - 5.0) / sqrt(7.0)) < 1e-12,
          "ties: W+ %g W- %g z %g", w.w_plus, w.w_minus, w.z);
    CHECK(stats_wilcoxon_test(a, a, 4, &w) == 0 && w.n == 0 && w.p == 1, "all differences zero: p 1");
    const double bad[] = {NAN};
    CHECK(stats_wilcoxon_test(bad, a, 1, &w) == ADJ_ERR_ARG, "NaN refused");
}

/* SciPy on random cases, written to a file and read back. */
static void test_against_scipy(void)
{
    const char *py = "/usr/bin/python3";
    if (system("/usr/bin/python3 -c 'import scipy.stats' 2>/dev/null") != 0) {
        fprintf(stderr, "SciPy comparison skipped: python3-scipy is not installed\n");
        return;
    }
    const char *dir = tu_tmpdir();
    char in[4200], out[4200], cmd[12000];
    snprintf(in, sizeof in, "%s/cases.txt", dir);
    snprintf(out, sizeof out, "%s/scipy.txt", dir);
    enum { CASES = 12, N = 60 };
    static double x[CASES][N], y[CASES][N];
    static const long mc[][2] = {{0, 1}, {1, 5}, {7, 19}, {30, 31}, {120, 160}, {400, 350}};
    FILE *f = fopen(in, "w");
    uint64_t s = 17;
    for (int c = 0; c < CASES; c++) {
        for (int i = 0; i < N; i++) {
            /* probabilities rounded to 2 decimals, so that ties and zeros occur */
            x[c][i] = round(tu_uniform(&s, 0, 1) * 100) / 100;
            y[c][i] = round((x[c][i] + tu_uniform(&s, -0.3f, 0.4f) * (c % 3)) * 100) / 100;
            fprintf(f, "%.17g %.17g%c", x[c][i], y[c][i], i + 1 < N ? ' ' : '\n');
        }
    }
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "%s -c '\n"
             "import scipy.stats as st\n"
             "out = open(\"%s\", \"w\")\n"
             "for line in open(\"%s\"):\n"
             "    v = [float(t) for t in line.split()]\n"
             "    x, y = v[0::2], v[1::2]\n"
             "    if all(a == b for a, b in zip(x, y)):\n"
             "        out.write(\"nan nan\\n\"); continue\n"
             "    r = st.wilcoxon(x, y, zero_method=\"wilcox\", correction=False, mode=\"approx\")\n"
             "    out.write(\"%%r %%r\\n\" %% (float(r.statistic), float(r.pvalue)))\n"
             "for b, c in %s:\n"
             "    out.write(\"%%r\\n\" %% st.binomtest(b, b + c, 0.5).pvalue)\n"
             "'",
             py, out, in, "[(0, 1), (1, 5), (7, 19), (30, 31), (120, 160), (400, 350)]");
    CHECK(system(cmd) == 0, "scipy ran");
    f = fopen(out, "r");
    CHECK(f != NULL, "scipy's answers");
    if (!f)
        return;
    int agree = 0;
    for (int c = 0; c < CASES; c++) {
        double sw, sp;
        if (fscanf(f, "%lf %lf", &sw, &sp) != 2)
            break;
        stats_wilcoxon w;
        stats_wilcoxon_test(x[c], y[c], N, &w);
        if (isnan(sw))
            agree += w.n == 0;
        else
            agree += fabs(w.w - sw) < 1e-9 && fabs(w.p - sp) <= 1e-9 * (1 + sp);
        if (!isnan(sw) && !(fabs(w.w - sw) < 1e-9 && fabs(w.p - sp) <= 1e-9 * (1 + sp)))
            fprintf(stderr, "case %d: W %g p %.12g, SciPy W %g p %.12g\n", c, w.w, w.p, sw, sp);
    }
    CHECK(agree == CASES, "Wilcoxon agrees with SciPy on %d of %d cases", agree, CASES);
    int mcn = 0;
    for (size_t k = 0; k < sizeof mc / sizeof mc[0]; k++) {
        double sp;
        if (fscanf(f, "%lf", &sp) != 1)
            break;
        double p = stats_mcnemar_exact(mc[k][0], mc[k][1]);
        mcn += fabs(p - sp) <= 1e-9 * (1 + sp);
        if (!(fabs(p - sp) <= 1e-9 * (1 + sp)))
            fprintf(stderr, "McNemar(%ld, %ld) %.12g, SciPy %.12g\n", mc[k][0], mc[k][1], p, sp);
    }
    CHECK(mcn == (int)(sizeof mc / sizeof mc[0]), "McNemar agrees with SciPy's binomtest on %d cases", mcn);
    fclose(f);
    fprintf(stderr, "SciPy: %d Wilcoxon and %d McNemar cases agree\n", agree, mcn);
}

/* 0/1 indicators of accuracy 0.7 over 2000 images: the 95% percentile
 * interval is close to p +- 1.96 sqrt(p(1-p)/n); the same seed, the same interval. */
static void test_bootstrap(void)
{
    enum { N = 2000 };
    static double v[N];
    uint64_t s = 5;
    double mean = 0;
    for (int i = 0; i < N; i++)
        mean += v[i] = tu_uniform(&s, 0, 1) < 0.7f;
    mean /= N;
    double ci[2], ci2[2], ci3[2];
    CHECK(stats_bootstrap_mean(v, N, 2000, 1, 0.95, ci) == 0, "bootstrap");
    const double half = 1.96 * sqrt(mean * (1 - mean) / N);
    CHECK(ci[0] < mean && mean < ci[1] && fabs(ci[0] - (mean - half)) < 0.25 * half &&
              fabs(ci[1] - (mean + half)) < 0.25 * half,
          "interval [%g, %g] around %g, normal approximation +- %g", ci[0], ci[1], mean, half);
    stats_bootstrap_mean(v, N, 2000, 1, 0.95, ci2);
    stats_bootstrap_mean(v, N, 2000, 2, 0.95, ci3);
    CHECK(ci2[0] == ci[0] && ci2[1] == ci[1], "reproducible for its seed");
    CHECK(ci3[0] != ci[0] || ci3[1] != ci[1], "another seed, another draw");
    CHECK(stats_bootstrap_mean(v, 0, 10, 1, 0.95, ci) == ADJ_ERR_ARG &&
              stats_bootstrap_mean(v, N, 10, 1, 1.0, ci) == ADJ_ERR_ARG,
          "bad arguments refused");
    double one = 0.25;
    CHECK(stats_bootstrap_mean(&one, 1, 100, 1, 0.95, ci) == 0 && ci[0] == 0.25 && ci[1] == 0.25,
          "one value: a point");
}

/* k columns at once give, bit for bit, what each column gives alone. */
static void test_bootstrap_columns(void)
{
    enum { N = 97, K = 5 };
    double v[N * K], col[N], ci[K][2], one[2];
    for (int i = 0; i < N; i++)
        for (int c = 0; c < K; c++)
            v[i * K + c] = c == 0 ? (i % 3 == 0) : sin(i * (c + 1)) * c + 0.01 * i;
    CHECK(stats_bootstrap_means(v, N, K, 500, 42, 0.95, ci) == 0, "bootstrap of %d columns", K);
    for (int c = 0; c < K; c++) {
        for (int i = 0; i < N; i++)
            col[i] = v[i * K + c];
        CHECK(stats_bootstrap_mean(col, N, 500, 42, 0.95, one) == 0 && one[0] == ci[c][0] &&
                  one[1] == ci[c][1],
              "column %d: [%.17g, %.17g] alone, [%.17g, %.17g] together", c, one[0], one[1],
              ci[c][0], ci[c][1]);
    }
    CHECK(stats_bootstrap_means(v, N, 0, 10, 1, 0.95, ci) == ADJ_ERR_ARG, "no columns refused");
}

int main(void)
{
    test_mcnemar_by_hand();
    test_wilcoxon_by_hand();
    test_against_scipy();
    test_bootstrap();
    test_bootstrap_columns();
    return tu_done();
}
