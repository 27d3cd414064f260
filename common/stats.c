#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void stats_sort(double *v, size_t n)
{
    if (v && n > 1)
        qsort(v, n, sizeof *v, cmp_double);
}

double stats_quantile(const double *sorted, size_t n, double p)
{
    if (!sorted || n == 0)
        return NAN;
    if (!(p > 0)) /* also NaN */
        return sorted[0];
    if (p >= 1)
        return sorted[n - 1];
    double h = (double)(n - 1) * p;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n)
        return sorted[n - 1];
    double frac = h - (double)lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

int stats_box_sorted(const double *sorted, size_t n, stats_box *out)
{
    if (!sorted || n == 0 || !out)
        return ADJ_ERR_ARG;
    long double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(sorted[i]))
            return ADJ_ERR_ARG;
        sum += sorted[i];
    }
    stats_box b;
    memset(&b, 0, sizeof b);
    b.n = n;
    b.min = sorted[0];
    b.max = sorted[n - 1];
    b.q1 = stats_quantile(sorted, n, 0.25);
    b.median = stats_quantile(sorted, n, 0.5);
    b.q3 = stats_quantile(sorted, n, 0.75);
    b.mean = (double)(sum / (long double)n);
    const double iqr = b.q3 - b.q1;
    const double lo_fence = b.q1 - 1.5 * iqr, hi_fence = b.q3 + 1.5 * iqr;
    /* values are sorted: the outliers are a prefix and a suffix */
    size_t lo = 0, hi = n;
    while (lo < n && sorted[lo] < lo_fence)
        lo++;
    while (hi > lo && sorted[hi - 1] > hi_fence)
        hi--;
    /* q1 and q3 lie inside the fences, so some value always does */
    b.whisker_low = sorted[lo < n ? lo : n - 1];
    b.whisker_high = sorted[hi > 0 ? hi - 1 : 0];
    b.n_low = lo;
    b.n_high = n - hi;
    *out = b;
    return ADJ_OK;
}

int stats_box_of(const double *values, size_t n, stats_box *out)
{
    if (!values || n == 0 || !out)
        return ADJ_ERR_ARG;
    double *copy = malloc(n * sizeof *copy);
    if (!copy)
        return ADJ_ERR_NOMEM;
    memcpy(copy, values, n * sizeof *copy);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(copy[i])) {
            free(copy);
            return ADJ_ERR_ARG;
        }
    stats_sort(copy, n);
    int rc = stats_box_sorted(copy, n, out);
    free(copy);
    return rc;
}

int stats_is_outlier(const stats_box *b, double v)
{
    return v < b->whisker_low || v > b->whisker_high;
}

int stats_bootstrap_mean(const double *v, size_t n, int resamples, uint64_t seed, double level,
                         double ci[2])
{
    if (!v || n == 0 || resamples < 1 || !(level > 0 && level < 1))
        return ADJ_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return ADJ_ERR_ARG;
    double *means = malloc((size_t)resamples * sizeof *means);
    if (!means)
        return ADJ_ERR_NOMEM;
    rng r;
    rng_seed(&r, seed);
    for (int b = 0; b < resamples; b++) {
        long double s = 0;
        for (size_t i = 0; i < n; i++)
            s += v[rng_below(&r, n)];
        means[b] = (double)(s / n);
    }
    stats_sort(means, (size_t)resamples);
    ci[0] = stats_quantile(means, (size_t)resamples, (1 - level) / 2);
    ci[1] = stats_quantile(means, (size_t)resamples, (1 + level) / 2);
    free(means);
    return ADJ_OK;
}

int stats_bootstrap_means(const double *v, size_t n, size_t k, int resamples, uint64_t seed,
                          double level, double (*ci)[2])
{
    if (!v || n == 0 || k == 0 || resamples < 1 || !(level > 0 && level < 1))
        return ADJ_ERR_ARG;
    for (size_t i = 0; i < n * k; i++)
        if (!isfinite(v[i]))
            return ADJ_ERR_ARG;
    double *means = malloc((size_t)resamples * k * sizeof *means); /* [k][resamples] */
    long double *s = malloc(k * sizeof *s);
    if (!means || !s) {
        free(means);
        free(s);
        return ADJ_ERR_NOMEM;
    }
    rng r;
    rng_seed(&r, seed);
    for (int b = 0; b < resamples; b++) {
        for (size_t c = 0; c < k; c++)
            s[c] = 0;
        for (size_t i = 0; i < n; i++) {
            const double *row = v + rng_below(&r, n) * k;
            for (size_t c = 0; c < k; c++)
                s[c] += row[c];
        }
        for (size_t c = 0; c < k; c++)
            means[c * (size_t)resamples + (size_t)b] = (double)(s[c] / n);
    }
    for (size_t c = 0; c < k; c++) {
        double *m = means + c * (size_t)resamples;
        stats_sort(m, (size_t)resamples);
        ci[c][0] = stats_quantile(m, (size_t)resamples, (1 - level) / 2);
        ci[c][1] = stats_quantile(m, (size_t)resamples, (1 + level) / 2);
    }
    free(means);
    free(s);
    return ADJ_OK;
}

double stats_mcnemar_exact(long b, long c)
{
    const long n = b + c, k = b < c ? b : c;
    if (n <= 0)
        return 1.0;
    /* sum of C(n, i) / 2^n for i <= k, in logs so that large n do not overflow */
    double sum = 0;
    for (long i = 0; i <= k; i++)
        sum += exp(lgamma(n + 1.0) - lgamma(i + 1.0) - lgamma(n - i + 1.0) - n * log(2.0));
    const double p = 2 * sum;
    return p < 1 ? p : 1;
}

typedef struct {
    double a; /* |d| */
    int pos;
} signed_abs;

static int cmp_abs(const void *x, const void *y)
{
    const double a = ((const signed_abs *)x)->a, b = ((const signed_abs *)y)->a;
    return (a > b) - (a < b);
}

int stats_wilcoxon_test(const double *x, const double *y, size_t n, stats_wilcoxon *out)
{
    signed_abs *d = malloc((n ? n : 1) * sizeof *d);
    if (!d)
        return ADJ_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            free(d);
            return ADJ_ERR_ARG;
        }
        const double diff = y[i] - x[i];
        if (diff != 0)
            d[m++] = (signed_abs){fabs(diff), diff > 0};
    }
    qsort(d, m, sizeof *d, cmp_abs);
    double wp = 0, wm = 0, ties = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && d[j].a == d[i].a)
            j++;
        const double rank = (i + 1 + j) / 2.0, t = (double)(j - i); /* ranks i+1..j */
        for (size_t k = i; k < j; k++)
            *(d[k].pos ? &wp : &wm) += rank;
        ties += t * t * t - t;
        i = j;
    }
    free(d);
    stats_wilcoxon r = {.n = m, .w = wp < wm ? wp : wm, .w_plus = wp, .w_minus = wm, .z = 0, .p = 1};
    const double mn = (double)m;
    const double var = mn * (mn + 1) * (2 * mn + 1) / 24 - ties / 48;
    if (m > 0 && var > 0) {
        r.z = (r.w - mn * (mn + 1) / 4) / sqrt(var);
        r.p = erfc(fabs(r.z) / sqrt(2.0));
        if (r.p > 1)
            r.p = 1;
    }
    *out = r;
    return ADJ_OK;
}
