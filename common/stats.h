/*
 * stats.h - box-plot statistics of a set of values (the paper's Figure 3
 * and the "box" of every row of Table 1).
 *
 *     double v[] = {0.9, 0.1, 0.4, 0.5, 0.45};
 *     stats_box b;
 *     if (stats_box_of(v, 5, &b) == ADJ_OK)
 *         printf("median %g, whiskers %g..%g, %zu outliers\n",
 *                b.median, b.whisker_low, b.whisker_high, b.n_low + b.n_high);
 *
 * Definitions (the ones R's boxplot() and matplotlib use, so that a figure
 * drawn elsewhere from the same values looks the same):
 *
 *   - quantile p of n sorted values x[0..n-1]: linear interpolation between
 *     order statistics, Hyndman & Fan's type 7 (R's default, numpy's
 *     "linear"): h = (n - 1) p, q = x[floor h] + (h - floor h)(x[floor h + 1]
 *     - x[floor h]). q1 = quantile 0.25, median = quantile 0.5, q3 = 0.75.
 *   - IQR = q3 - q1; the fences are q1 - 1.5 IQR and q3 + 1.5 IQR.
 *   - whisker_low is the smallest value >= the lower fence, whisker_high the
 *     largest value <= the upper fence ("the last values within 1.5 IQR").
 *   - outliers are the values beyond the fences: below whisker_low (n_low of
 *     them) or above whisker_high (n_high).
 *   - mean is the arithmetic mean (summed in long double).
 *
 * Pure functions: no I/O, no global state; stats_box_of allocates one
 * scratch copy of the values. The bootstrap, McNemar and Wilcoxon functions
 * at the end give Table 1's intervals and paired tests (README, "Status":
 * not yet in jobs). Values must be finite (a NaN or an infinity
 * is refused with ADJ_ERR_ARG).
 */
#ifndef ADJ_STATS_H
#define ADJ_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/** The box-plot statistics of n >= 1 values. */
typedef struct {
    size_t n;                         /**< number of values */
    double min, q1, median, q3, max;  /**< order statistics (type 7 quartiles) */
    double mean;
    double whisker_low, whisker_high; /**< last values within 1.5 IQR of the box */
    size_t n_low, n_high;             /**< outliers below whisker_low / above whisker_high */
} stats_box;

/** Sorts n values ascending in place (NULL with n == 0 is fine). */
void stats_sort(double *v, size_t n);

/**
 * Quantile p (0..1, clamped) of n >= 1 values sorted ascending, type 7
 * (linear interpolation between order statistics, see above). Returns NaN
 * for n == 0.
 */
double stats_quantile(const double *sorted, size_t n, double p);

/**
 * Box statistics of n >= 1 values sorted ascending (sorted is borrowed and
 * not modified). *out is written only on success. ADJ_ERR_ARG when n == 0,
 * sorted is NULL, or a value is not finite.
 */
int stats_box_sorted(const double *sorted, size_t n, stats_box *out);

/**
 * Box statistics of n >= 1 values in any order (not modified; a sorted
 * copy is made). ADJ_ERR_ARG as stats_box_sorted, ADJ_ERR_NOMEM.
 */
int stats_box_of(const double *values, size_t n, stats_box *out);

/** Whether v lies beyond the whiskers of b (an outlier of that box). */
int stats_is_outlier(const stats_box *b, double v);

/* ------------------------------------------------ what a reviewer asks for */

/**
 * Percentile bootstrap interval of the mean of n >= 1 values: `resamples`
 * means of n values drawn uniformly with replacement (index rng_below(n) of
 * rng.h seeded by seed, values in order), sorted, and their type-7
 * quantiles (1 - level) / 2 and (1 + level) / 2 into ci[0], ci[1]. The same
 * seed gives the same interval. For top-1 accuracy the values are 0 and 1.
 * ADJ_ERR_ARG for n == 0, resamples < 1, level outside (0, 1) or a value not
 * finite; ADJ_ERR_NOMEM.
 */
int stats_bootstrap_mean(const double *v, size_t n, int resamples, uint64_t seed, double level,
                         double ci[2]);

/**
 * stats_bootstrap_mean of k columns at once: v is [n][k] (row i, column c at
 * v[i * k + c]); ci[c] receives exactly what stats_bootstrap_mean gives for
 * column c alone with the same seed (the same draws, summed in the same
 * order), for one pass of the generator instead of k. Errors as
 * stats_bootstrap_mean (k >= 1).
 */
int stats_bootstrap_means(const double *v, size_t n, size_t k, int resamples, uint64_t seed,
                          double level, double (*ci)[2]);

/**
 * McNemar's exact test on paired right/wrong outcomes: b pairs went right to
 * wrong, c wrong to right. The two-sided binomial test of b out of b + c at
 * 1/2: p = min(1, 2 sum_{k <= min(b, c)} C(b + c, k) / 2^(b + c)); 1 when b + c
 * is 0. b, c >= 0.
 */
double stats_mcnemar_exact(long b, long c);

/** The Wilcoxon signed-rank test of n paired values. */
typedef struct {
    size_t n;     /**< pairs with a nonzero difference (zero differences are dropped) */
    double w;     /**< min(W+, W-): the sums of the ranks of |d| of positive / negative d */
    double w_plus, w_minus;
    double z, p;  /**< normal approximation with the tie correction; two-sided p */
} stats_wilcoxon;

/**
 * Wilcoxon's signed-rank test of y - x: differences of 0 dropped, ties of |d|
 * given their mean rank, z = (w - n(n+1)/4) / sqrt(n(n+1)(2n+1)/24 -
 * sum(t^3 - t)/48) over the groups of t tied |d|, p = 2 Phi(-|z|), no
 * continuity correction (SciPy's wilcoxon(x, y, zero_method="wilcox",
 * correction=False, mode="approx")). With no nonzero difference, z = 0 and
 * p = 1. ADJ_ERR_ARG for a value that is not finite; ADJ_ERR_NOMEM.
 */
int stats_wilcoxon_test(const double *x, const double *y, size_t n, stats_wilcoxon *out);

#endif
