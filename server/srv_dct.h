/*
 * srv_dct.h - a job's DCT analysis ("dct": true; experiment.md, "What JPEG
 * removes"): per image and eps, where the perturbation's energy sits in the
 * 64 DCT frequencies of each JPEG channel (common/dct.h) and how much of it
 * survives JPEG; its per-image records on disk (dct.bin), their
 * aggregation over the job, GET /jobs/{id}/dct's JSON and dct.svg.
 *
 * The spectra of one image (all differences of 8-bit images as floats):
 *
 *   per eps e:  eta    = Adv_e(x) - x                (the perturbation)
 *               kept   = JPG_q(Adv_e(x)) - JPG_q(x)  (what JPEG keeps of it)
 *               cross  = the cross energy of eta and kept (dct_energy_pair)
 *               jpeg   = JPG_q(Adv_e(x)) - Adv_e(x)  (JPEG's own change)
 *               noise  = JPGnoise_q(Adv_e(x)) - Adv_e(x)
 *                        (the control's change against the image it was
 *                        applied to: JPEG's change, permuted)
 *   per image:  natural      = x - mean(x)           (mean: per RGB channel over
 *                                                     the image)
 *               natural_kept = JPG_q(x) - mean(x)
 *               natural_cross, their cross energy
 *
 * dct.bin: a header (srv_dct_header: magic, version, eps, quality, the
 * record's floats), then one record per image of the job in job order,
 * appended a chunk at a time before the chunk's rows (write + fsync), so it
 * always holds at least as many records as rows.csv has rows; a resumed job
 * cuts it back to its rows (srv_dct_open) and a job aggregates its first
 * `done` records only, so a resumed job aggregates exactly what a one-shot
 * one does. A record is a flag (1 analysed, 0 the image was skipped), the
 * natural spectra, then the five spectra of each eps, each [3][64] floats
 * (channel Y, Cb, Cr; frequency u * 8 + v) of dct_energy's e.
 *
 * Aggregates: the mean spectrum over the analysed images; survival per
 * frequency = mean E_kept / mean E_eta (a ratio of means: frequencies where
 * a few images have no energy do not explode), which counts JPEG's rounding
 * of two different images too; in phase = mean cross / mean E_eta, the
 * share of eta that kept holds unchanged (the regression coefficient of
 * kept's coefficients on eta's: 1 all of it, 0 none); the zigzag bands are the
 * anti-diagonals b = u + v (0..14), which the zigzag scan visits in order.
 *
 * The quality argument (srv_dct_record_of, srv_dct_json, srv_dct_svg) picks
 * the JPEG transforms of that quality: today a job has one (p->quality).
 */
#ifndef SRV_DCT_H
#define SRV_DCT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "experiment.h"

/** The spectra of each eps, in a record's order. */
enum { SRV_DCT_ETA, SRV_DCT_KEPT, SRV_DCT_CROSS, SRV_DCT_JPEG, SRV_DCT_NOISE, SRV_DCT_PER_EPS };
/** The spectra of the clean image. */
enum { SRV_DCT_NATURAL, SRV_DCT_NATURAL_KEPT, SRV_DCT_NATURAL_CROSS, SRV_DCT_PER_IMAGE };
/** Floats of one spectrum. */
#define SRV_DCT_SPECTRUM (3 * 64)
/** Zigzag bands (anti-diagonals u + v). */
#define SRV_DCT_BANDS 15

/** Floats of one image's record for p. */
size_t srv_dct_record_floats(const exp_params *p);

/**
 * Fills rec (srv_dct_record_floats(p)) from an image's result r, which must
 * hold its images (a task with scores_only 0), using the transforms of
 * JPEG quality `quality`. ADJ_OK, ADJ_ERR_ARG (no images, or a transform
 * missing), ADJ_ERR_NOMEM.
 */
int srv_dct_record_of(const exp_params *p, int quality, const exp_result *r, float *rec);

/** A skipped image's record: flag 0, zeros. */
void srv_dct_record_skipped(const exp_params *p, float *rec);

/**
 * Opens dir/dct.bin for appending with its header written (a new file) or
 * checked against p and quality, cut back to `done` records (a resumed job:
 * records past its rows were written by a chunk whose rows were not).
 * *fd is new. 0, or -1 with err (the file is shorter than done records, or
 * not this job's).
 */
int srv_dct_open(const char *dir, const exp_params *p, int quality, size_t done, int *fd,
                 char *err, size_t errsz);

/** Appends n records (write + fsync); 0, or -1 with errno. */
int srv_dct_append(int fd, const float *recs, size_t n, const exp_params *p);

/** The sums over a job's records. */
typedef struct {
    int n_eps;
    int eps[EXP_MAX_EPS];
    int quality;
    size_t n;         /**< images analysed (flag 1) */
    size_t records;   /**< records read (analysed and skipped) */
    double *sum;      /**< [record floats - 1]: the sums of each spectrum value; owned */
} srv_dct_sums;

/**
 * Reads the first `records` records of dir/dct.bin into sums (new: free
 * with srv_dct_sums_free). ADJ_ERR_IO with err (missing, short, not this
 * job's), ADJ_ERR_NOMEM.
 */
int srv_dct_read(const char *dir, const exp_params *p, int quality, size_t records,
                 srv_dct_sums *out, char *err, size_t errsz);

void srv_dct_sums_free(srv_dct_sums *s);

/**
 * GET /jobs/{id}/dct's body (without the job's id and status, which the
 * caller adds): quantisation steps, natural content, and per eps the
 * spectra, survival and bands. New reference, NULL out of memory.
 */
json_t *srv_dct_json(const srv_dct_sums *s);

/**
 * dct.svg for eps e of the job (a value of s->eps): 8x8 heat maps per
 * channel (columns Y, Cb, Cr) of eta's energy, its survival, the share
 * kept in phase, JPEG's own change, the JPEG-noise control's change,
 * natural content with its survival and share in phase, and the
 * quantisation steps, each row with its colour scale (energies and steps
 * log10, ratios 0..1 clipped).
 * *out new (free()). ADJ_OK, ADJ_ERR_ARG (no such eps), ADJ_ERR_NOMEM.
 */
int srv_dct_svg(const srv_dct_sums *s, int e, const char *caption, char **out, size_t *len);

#endif
