#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
