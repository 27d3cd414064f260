/*
 * srv_rows.h - an evaluation job's rows (rows.csv) and the table computed
 * from them (Table 1 with the box-plot statistics of Figure 3).
 *
 * rows.csv is the job's only record of its results: one line per finished
 * image, appended in the job's file order, and the table is always
 * recomputed from it. Its format (RFC 4180 quoting, lines end with LF):
 *
 *   file,truth,label_x,x:prob,x:label,JPG(x):prob,JPG(x):label,Adv1(x):prob,...
 *   img_000001.jpg,3,3,0.912345678,3,0.90123,3,0.41,7,...
 *
 *   - file: the image's name in its folder; quoted ("...", with "" for a
 *     quote) when it holds a comma, a quote, CR or LF.
 *   - truth: the ground-truth class index, empty without labels.
 *   - label_x: l_x, the clean image's arg-max.
 *   - per transform T in pipeline order (exp_transform_name): "T:prob",
 *     p(l_x | T(x)) printed with 9 significant digits (a float survives the
 *     round trip), and "T:label", the arg-max of T(x).
 *   - then, appended, per eps in pipeline order (each Adv transform A):
 *     "A:linf" (the largest |Adv_eps(x) - x| in levels, an integer), "A:l2"
 *     (its L2 norm in levels) and "A:psnr" (10 log10(255^2 / MSE) in dB,
 *     "inf" when the image did not change), 9 significant digits.
 *   - an adaptive attack's job then appends its twin's columns (experiment.h:
 *     the same attack without adaptation), in the same form: "T:prob",
 *     "T:label" per twin transform ("JPG(Adv5(x)) PGD-10"), then the twin's
 *     "A:linf", "A:l2", "A:psnr" per eps. The columns before them are those
 *     of a job without a twin, unchanged.
 *   - an image that could not be read or decoded has label_x and every
 *     transform and norm field empty (it is counted as "skipped", not in n).
 *
 * srv_rows_parse reads a file's text and stops at the first line that is
 * not a complete, valid row (no LF at its end, a wrong number of fields, a
 * number that does not parse or is out of range, a file name that is not
 * the expected next file): what comes before it is the valid prefix, which
 * is what a restarted job keeps.
 *
 *     srv_rows rows;
 *     size_t valid;
 *     srv_rows_check chk = {&params, classes, SIZE_MAX, files, truth, n_files};
 *     srv_rows_parse(text, len, &chk, &rows, &valid, why, sizeof why);
 *     json_t *table = srv_rows_table(&rows, &params, has_truth);
 *     srv_rows_free(&rows);
 */
#ifndef SRV_ROWS_H
#define SRV_ROWS_H

#include <jansson.h>
#include <stddef.h>

#include "experiment.h"
#include "stats.h"
#include "ut_buf.h"

/** Parsed rows; arrays of n entries (prob and label: [n][n_transforms]). */
typedef struct {
    int n_transforms;
    size_t n;       /**< rows */
    size_t skipped; /**< rows of images that could not be read (label_x < 0) */
    char **file;    /**< [n] new strings */
    int *truth;     /**< [n] class index, -1 when none */
    int *label_x;   /**< [n] l_x, -1 for a skipped image */
    float *prob;    /**< [n][T] p(l_x | T(x)); 0 for a skipped image */
    int *label;     /**< [n][T] arg-max of T(x); -1 for a skipped image */
    int n_adv;        /**< entries of each row's norms: exp_n_adv */
    atk_norms *norms; /**< [n][n_adv] the size of Adv_eps(x) - x (exp_result's order); zeros
                           for a skipped image */
    size_t cap;
} srv_rows;

/** What a valid row must look like. */
typedef struct {
    const exp_params *params;
    int classes;               /**< labels are 0..classes-1 */
    size_t max_rows;           /**< parse at most this many rows (SIZE_MAX: all) */
    const char *const *files;  /**< the expected file of row i, or NULL: any name */
    const int *truth;          /**< the expected truth of row i (-1: empty), or NULL: any */
    size_t n_expected;         /**< entries of files / truth; more rows are invalid */
} srv_rows_check;

/** The header line of a job's rows.csv, LF included; new string (free()), NULL if out of memory. */
char *srv_rows_header(const exp_params *p);

/** Appends a CSV field: as it is, or quoted when it holds , " CR or LF. */
void srv_csv_field(ut_buf *b, const char *s);

/**
 * Appends one row for an evaluated image: file, truth (-1: empty), l_x and
 * each transform's top-label probability and label from r.
 */
void srv_rows_format(ut_buf *b, const char *file, int truth, const exp_result *r);

/** Appends the row of an image that could not be evaluated (empty fields). */
void srv_rows_format_skipped(ut_buf *b, const char *file, int truth, const exp_params *p);

/**
 * Parses text (len bytes: the header, then rows) into *out (new: free with
 * srv_rows_free), keeping the valid prefix: *valid_len receives its length
 * in bytes (0 when even the header is incomplete or wrong). When parsing
 * stopped before len, why (may be NULL) says where and why ("row 37: 24
 * fields, want 25"); otherwise it is set to "". Returns ADJ_OK (whatever
 * the validity of the text) or ADJ_ERR_NOMEM.
 */
int srv_rows_parse(const char *text, size_t len, const srv_rows_check *chk, srv_rows *out,
                   size_t *valid_len, char *why, size_t whysz);

/** Frees parsed rows (a zeroed struct is fine). */
void srv_rows_free(srv_rows *r);

/**
 * Table 1 over the evaluated (not skipped) rows, one entry per transform in
 * pipeline order: [{"transform", "eps" (absent for x and JPG(x)), "top1"
 * (null without truth or without rows), "mean_top_label_prob", "box":
 * {"min", "q1", "median", "q3", "max", "mean", "whisker_low",
 * "whisker_high", "outliers" (the number of values beyond the whiskers),
 * "outliers_low", "outliers_high"}, the attack's fields (srv_json_put_attack)
 * and, for the adversarial transforms, the perturbations' "linf" (the
 * largest over the images), "l2" (the mean) and "psnr" (the mean over the
 * images that changed; null if none)}]; the box's and the norms' numbers
 * are null without rows. Quartiles as stats.h defines them. New reference, NULL if out of
 * memory.
 */
json_t *srv_rows_table(const srv_rows *r, const exp_params *p, int has_truth);

/** Bootstrap resamples of the intervals (experiment.md, "Statistics"). */
#define SRV_ROWS_RESAMPLES 2000

/**
 * Adds to every row t of table (srv_rows_table's) "top1_ci" (null without
 * truth) and "mean_top_label_prob_ci": [low, high], the 95% percentile
 * bootstrap interval (stats_bootstrap_mean, SRV_ROWS_RESAMPLES resamples
 * seeded by seed, the job's) over the evaluated rows; null without rows.
 * ADJ_OK or ADJ_ERR_NOMEM.
 */
int srv_rows_add_intervals(json_t *table, const srv_rows *r, int has_truth, uint64_t seed);

/**
 * The paired tests of experiment.md over the evaluated rows: per quality q
 * (x, JPG_q(x)); per eps and quality (Adv, JPG(Adv)) and (JPG(Adv),
 * JPGnoise(Adv)), the same for an adaptive attack's twin, and then per eps
 * and quality (JPG(Adv twin), JPG(Adv)): the defended outputs of the
 * non-adaptive and the adaptive attack. Each [{"pair": "x_jpg" | "adv_jpg" |
 * "jpg_noise" | "jpg_adaptive", "a",
 * "b" (transform names), "eps" (absent for x_jpg), "quality", "adaptive" (b's
 * threat model: none, bpda, eot), "n",
 * "labelled", "right_to_wrong" / "wrong_to_right" (images whose top-1 goes
 * from right on a to wrong on b and back; null without truth), "mcnemar_p"
 * (exact; null without truth), "wilcoxon": {"n", "w", "w_plus", "w_minus",
 * "z", "p"} (of b - a, the top-label probabilities; null without rows)}].
 * New reference, NULL when out of memory.
 */
json_t *srv_rows_tests(const srv_rows *r, const exp_params *p, int has_truth);

/**
 * The box statistics of transform t's top-label probabilities over the
 * evaluated rows. ADJ_ERR_ARG when there are none, ADJ_ERR_NOMEM.
 */
int srv_rows_box(const srv_rows *r, int t, stats_box *out);

#endif
