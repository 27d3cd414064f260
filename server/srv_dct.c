/* srv_dct.c - a job's DCT analysis: per-image records (dct.bin), their means, JSON and SVG. */
#include "srv_dct.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dct.h"
#include "srv_svg.h"
#include "status.h"
#include "ut_buf.h"
#include "ut_file.h"

#define MAGIC "ADVJDCT1"
#define VERSION 1
/* A ratio's denominator below this is no energy (float records: 1e-12 is rounding). */
#define NO_ENERGY 1e-9

/* dct.bin's header; a record follows it for each image of the job. */
typedef struct {
    char magic[8];
    uint32_t version, n_eps, quality, floats;
    int32_t eps[EXP_MAX_EPS];
} file_header;

static const char *const CHANNELS[3] = {"Y", "Cb", "Cr"};

size_t srv_dct_record_floats(const exp_params *p)
{
    return 1 + (size_t)SRV_DCT_SPECTRUM * (SRV_DCT_PER_IMAGE + SRV_DCT_PER_EPS * (size_t)p->n_eps);
}

/* Where spectrum `slot` starts in a record without its flag (the means). */
static size_t natural_at(int slot) { return (size_t)slot * SRV_DCT_SPECTRUM; }
static size_t eps_at(int e, int slot)
{
    return (size_t)(SRV_DCT_PER_IMAGE + SRV_DCT_PER_EPS * e + slot) * SRV_DCT_SPECTRUM;
}

static void put(float *dst, const dct_energy *en)
{
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 64; k++)
            dst[c * 64 + k] = (float)en->e[c][k];
}

/* d = b - a, as floats (n values). */
static void diff_of(const img_rgb *a, const img_rgb *b, float *d, size_t n)
{
    for (size_t k = 0; k < n; k++)
        d[k] = (float)b->px[k] - (float)a->px[k];
}

/* The spectra of d1 and d2 and their cross energy, and where in a record they go. */
typedef struct {
    const float *d1, *d2;
    float *m1, *m2, *mx; /* where the three go in the record */
} spectra_job;

static int three_spectra(const spectra_job *j, int w, int h)
{
    dct_energy e1, e2, ex;
    int rc = dct_energy_pair(j->d1, j->d2, w, h, &e1, &e2, &ex);
    if (!rc) {
        put(j->m1, &e1);
        put(j->m2, &e2);
        put(j->mx, &ex);
    }
    return rc;
}

/* Natural content: x - mean(x) and JPG(x) - mean(x) (mean per RGB channel), their cross. */
static int natural_part(const img_rgb *x, const img_rgb *jx, float *d1, float *d2, float *m)
{
    const size_t n = (size_t)x->w * x->h;
    double mean[3] = {0, 0, 0};
    for (size_t k = 0; k < n; k++)
        for (int c = 0; c < 3; c++)
            mean[c] += x->px[3 * k + c];
    for (size_t k = 0; k < 3 * n; k++) {
        d1[k] = (float)(x->px[k] - mean[k % 3] / (double)n);
        d2[k] = (float)(jx->px[k] - mean[k % 3] / (double)n);
    }
    spectra_job j = {d1, d2, m + natural_at(SRV_DCT_NATURAL), m + natural_at(SRV_DCT_NATURAL_KEPT),
                     m + natural_at(SRV_DCT_NATURAL_CROSS)};
    return three_spectra(&j, x->w, x->h);
}

/* eps e: eta, kept and their cross; JPEG's change and the control's. */
static int eps_part(const exp_params *p, int quality, int e, const exp_result *r, float *d1,
                    float *d2, float *m)
{
    const int tx = exp_transform_find(p, EXP_T_X, 0, quality);
    const int tj = exp_transform_find(p, EXP_T_JPG_X, 0, quality);
    const int ta = exp_transform_find(p, EXP_T_ADV, p->eps[e], quality);
    const int tja = exp_transform_find(p, EXP_T_JPG_ADV, p->eps[e], quality);
    const int tn = exp_transform_find(p, EXP_T_NOISE_ADV, p->eps[e], quality);
    if (tx < 0 || tj < 0 || ta < 0 || tja < 0 || tn < 0)
        return ADJ_ERR_ARG;
    const img_rgb *x = &r->images[tx], *adv = &r->images[ta], *jadv = &r->images[tja];
    const size_t n = (size_t)3 * x->w * x->h;
    diff_of(x, adv, d1, n);
    diff_of(&r->images[tj], jadv, d2, n);
    spectra_job j = {d1, d2, m + eps_at(e, SRV_DCT_ETA), m + eps_at(e, SRV_DCT_KEPT),
                     m + eps_at(e, SRV_DCT_CROSS)};
    int rc = three_spectra(&j, x->w, x->h);
    dct_energy en;
    if (!rc && !(rc = dct_energy_of(adv, jadv, &en)))
        put(m + eps_at(e, SRV_DCT_JPEG), &en);
    if (!rc && !(rc = dct_energy_of(adv, &r->images[tn], &en)))
        put(m + eps_at(e, SRV_DCT_NOISE), &en);
    return rc;
}

int srv_dct_record_of(const exp_params *p, int quality, const exp_result *r, float *rec)
{
    const int tx = exp_transform_find(p, EXP_T_X, 0, quality);
    const int tj = exp_transform_find(p, EXP_T_JPG_X, 0, quality);
    if (!r->images || tx < 0 || tj < 0)
        return ADJ_ERR_ARG;
    const img_rgb *x = &r->images[tx];
    const size_t n = (size_t)3 * x->w * x->h;
    float *d1 = malloc(n * sizeof *d1), *d2 = malloc(n * sizeof *d2);
    int rc = d1 && d2 ? natural_part(x, &r->images[tj], d1, d2, rec + 1) : ADJ_ERR_NOMEM;
    for (int e = 0; e < p->n_eps && !rc; e++)
        rc = eps_part(p, quality, e, r, d1, d2, rec + 1);
    free(d1);
    free(d2);
    rec[0] = rc ? 0 : 1;
    return rc;
}

void srv_dct_record_skipped(const exp_params *p, float *rec)
{
    memset(rec, 0, srv_dct_record_floats(p) * sizeof *rec);
}

static file_header header_of(const exp_params *p, int quality)
{
    file_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MAGIC, 8);
    h.version = VERSION;
    h.n_eps = (uint32_t)p->n_eps;
    h.quality = (uint32_t)quality;
    h.floats = (uint32_t)srv_dct_record_floats(p);
    for (int e = 0; e < p->n_eps; e++)
        h.eps[e] = p->eps[e];
    return h;
}

/* Checks fd's header against p and quality; its size into *size. 0 or -1 with err. */
static int check_header(int fd, const exp_params *p, int quality, off_t *size, char *err,
                        size_t errsz)
{
    file_header want = header_of(p, quality), have;
    struct stat st;
    if (fstat(fd, &st))
        return adj_fail(err, errsz, ADJ_ERR_IO, "dct.bin: %s", strerror(errno)), -1;
    *size = st.st_size;
    if (st.st_size < (off_t)sizeof have ||
        pread(fd, &have, sizeof have, 0) != (ssize_t)sizeof have ||
        memcmp(&have, &want, sizeof have) != 0)
        return adj_fail(err, errsz, ADJ_ERR_IO,
                        "dct.bin is not this job's analysis (its header differs)"), -1;
    return 0;
}

int srv_dct_open(const char *dir, const exp_params *p, int quality, size_t done, int *fd,
                 char *err, size_t errsz)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/dct.bin", dir);
    *fd = ut_open_regular(path, O_RDWR | O_APPEND | O_CREAT, 0600);
    if (*fd < 0)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot open dct.bin: %s", strerror(errno)), -1;
    struct stat st;
    if (fstat(*fd, &st) == 0 && st.st_size == 0 && done == 0) {
        file_header h = header_of(p, quality);
        if (ut_write_all(*fd, &h, sizeof h) || fsync(*fd))
            return adj_fail(err, errsz, ADJ_ERR_IO, "cannot write dct.bin: %s", strerror(errno)),
                   -1;
        return 0;
    }
    off_t size;
    if (check_header(*fd, p, quality, &size, err, errsz))
        return -1;
    const off_t want =
        (off_t)(sizeof(file_header) + done * srv_dct_record_floats(p) * sizeof(float));
    if (size < want)
        return adj_fail(err, errsz, ADJ_ERR_IO,
                        "dct.bin holds fewer records than rows.csv has rows (%zu)", done), -1;
    if (size > want && (ftruncate(*fd, want) || fsync(*fd)))
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot cut dct.bin back to its rows: %s",
                        strerror(errno)), -1;
    return 0;
}

int srv_dct_append(int fd, const float *recs, size_t n, const exp_params *p)
{
    return ut_write_all(fd, recs, n * srv_dct_record_floats(p) * sizeof *recs) || fsync(fd) ? -1
                                                                                            : 0;
}

int srv_dct_read(const char *dir, const exp_params *p, int quality, size_t records,
                 srv_dct_sums *out, char *err, size_t errsz)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/dct.bin", dir);
    int fd = ut_open_regular(path, O_RDONLY, 0);
    if (fd < 0)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot read dct.bin: %s", strerror(errno));
    off_t size;
    const size_t nf = srv_dct_record_floats(p);
    memset(out, 0, sizeof *out);
    float *rec = malloc(nf * sizeof *rec);
    out->sum = calloc(nf - 1, sizeof *out->sum);
    int rc = ADJ_OK;
    if (!rec || !out->sum)
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    else if (check_header(fd, p, quality, &size, err, errsz))
        rc = ADJ_ERR_IO;
    else if ((uint64_t)size < sizeof(file_header) + records * nf * sizeof *rec)
        rc = adj_fail(err, errsz, ADJ_ERR_IO, "dct.bin is shorter than its %zu records", records);
    for (size_t i = 0; i < records && !rc; i++) {
        off_t at = (off_t)(sizeof(file_header) + i * nf * sizeof *rec);
        if (pread(fd, rec, nf * sizeof *rec, at) != (ssize_t)(nf * sizeof *rec))
            rc = adj_fail(err, errsz, ADJ_ERR_IO, "cannot read dct.bin: %s", strerror(errno));
        else if (rec[0] == 1) {
            for (size_t k = 0; k + 1 < nf; k++)
                out->sum[k] += rec[1 + k];
            out->n++;
        }
    }
    close(fd);
    free(rec);
    if (rc) {
        srv_dct_sums_free(out);
        return rc;
    }
    for (size_t k = 0; out->n && k + 1 < nf; k++)
        out->sum[k] /= (double)out->n; /* the means from here on */
    out->records = records;
    out->n_eps = p->n_eps;
    memcpy(out->eps, p->eps, sizeof out->eps);
    out->quality = quality;
    return ADJ_OK;
}

void srv_dct_sums_free(srv_dct_sums *s)
{
    free(s->sum);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- JSON */

static int band_of(int k) { return k / 8 + k % 8; }

static json_t *real_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* {"Y": [n values], "Cb": ..., "Cr": ...} of v[c * n + k]; a number per channel for n 1. */
static json_t *per_channel(const double *v, int n)
{
    json_t *o = json_object();
    for (int c = 0; c < 3 && o; c++) {
        json_t *a = n == 1 ? real_or_null(v[c]) : json_array();
        for (int k = 0; k < n && a && n > 1; k++)
            json_array_append_new(a, real_or_null(v[c * n + k]));
        json_object_set_new(o, CHANNELS[c], a);
    }
    return o;
}

/* {"energy", "total", "band_fraction"} of a mean spectrum. */
static json_t *spectrum_json(const double *m)
{
    double total[3] = {0}, band[3 * SRV_DCT_BANDS] = {0};
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 64; k++) {
            total[c] += m[c * 64 + k];
            band[c * SRV_DCT_BANDS + band_of(k)] += m[c * 64 + k];
        }
    for (int c = 0; c < 3; c++)
        for (int b = 0; b < SRV_DCT_BANDS; b++)
            band[c * SRV_DCT_BANDS + b] =
                total[c] > NO_ENERGY ? band[c * SRV_DCT_BANDS + b] / total[c] : NAN;
    return json_pack("{s:o,s:o,s:o}", "energy", per_channel(m, 64), "total", per_channel(total, 1),
                     "band_fraction", per_channel(band, SRV_DCT_BANDS));
}

/* {"per_frequency", "total", "per_band"}: num / den of two mean spectra (null where den is 0). */
static json_t *ratio_json(const double *num, const double *den)
{
    double r[3 * 64], t[3], b[3 * SRV_DCT_BANDS];
    double tn[3] = {0}, td[3] = {0}, bn[3 * SRV_DCT_BANDS] = {0}, bd[3 * SRV_DCT_BANDS] = {0};
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 64; k++) {
            const int i = c * 64 + k, bi = c * SRV_DCT_BANDS + band_of(k);
            r[i] = den[i] > NO_ENERGY ? num[i] / den[i] : NAN;
            tn[c] += num[i], td[c] += den[i];
            bn[bi] += num[i], bd[bi] += den[i];
        }
    for (int c = 0; c < 3; c++)
        t[c] = td[c] > NO_ENERGY ? tn[c] / td[c] : NAN;
    for (int i = 0; i < 3 * SRV_DCT_BANDS; i++)
        b[i] = bd[i] > NO_ENERGY ? bn[i] / bd[i] : NAN;
    return json_pack("{s:o,s:o,s:o}", "per_frequency", per_channel(r, 64), "total",
                     per_channel(t, 1), "per_band", per_channel(b, SRV_DCT_BANDS));
}

/* {"Y": [64 steps], "Cb": ..., "Cr": ...}: libjpeg's at quality (Cb and Cr share a table). */
static json_t *quant_json(int quality)
{
    int q[2][64];
    dct_quant_steps(quality, q);
    json_t *o = json_object();
    for (int c = 0; c < 3 && o; c++) {
        json_t *a = json_array();
        for (int k = 0; k < 64 && a; k++)
            json_array_append_new(a, json_integer(q[c ? 1 : 0][k]));
        json_object_set_new(o, CHANNELS[c], a);
    }
    return o;
}

json_t *srv_dct_json(const srv_dct_sums *s)
{
    const double *m = s->sum;
    json_t *eps = json_array();
    for (int e = 0; e < s->n_eps && eps; e++)
        json_array_append_new(
            eps, json_pack("{s:i,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "eps", s->eps[e], "eta",
                           spectrum_json(m + eps_at(e, SRV_DCT_ETA)), "kept",
                           spectrum_json(m + eps_at(e, SRV_DCT_KEPT)), "survival",
                           ratio_json(m + eps_at(e, SRV_DCT_KEPT), m + eps_at(e, SRV_DCT_ETA)),
                           "in_phase",
                           ratio_json(m + eps_at(e, SRV_DCT_CROSS), m + eps_at(e, SRV_DCT_ETA)),
                           "jpeg_change", spectrum_json(m + eps_at(e, SRV_DCT_JPEG)), "noise",
                           spectrum_json(m + eps_at(e, SRV_DCT_NOISE)), "noise_vs_jpeg",
                           ratio_json(m + eps_at(e, SRV_DCT_NOISE), m + eps_at(e, SRV_DCT_JPEG))));
    return json_pack(
        "{s:i,s:I,s:[sss],s:s,s:s,s:o,s:{s:o,s:o,s:o,s:o},s:o}", "quality", s->quality, "n",
        (json_int_t)s->n, "channels", "Y", "Cb", "Cr", "order",
        "per_frequency arrays: natural order, index u * 8 + v (u vertical frequency); per_band "
        "arrays: the anti-diagonals u + v = 0..14 (the zigzag bands)",
        "definitions",
        "energy: mean over the images of the mean over 8x8 blocks of the squared orthonormal DCT "
        "coefficient; eta = Adv(x) - x, kept = JPG(Adv(x)) - JPG(x), jpeg_change = JPG(Adv(x)) - "
        "Adv(x), noise = JPGnoise(Adv(x)) - Adv(x), natural content = x - mean(x) (per RGB "
        "channel), natural kept = JPG(x) - mean(x); survival = mean kept / mean eta (JPEG's "
        "rounding of two images included); in_phase = mean cross energy of eta and kept / mean eta "
        "(the share of eta kept unchanged)",
        "quant_steps", quant_json(s->quality), "natural", "content",
        spectrum_json(m + natural_at(SRV_DCT_NATURAL)), "kept",
        spectrum_json(m + natural_at(SRV_DCT_NATURAL_KEPT)), "survival",
        ratio_json(m + natural_at(SRV_DCT_NATURAL_KEPT), m + natural_at(SRV_DCT_NATURAL)),
        "in_phase",
        ratio_json(m + natural_at(SRV_DCT_NATURAL_CROSS), m + natural_at(SRV_DCT_NATURAL)), "eps",
        eps);
}

/* ---------------------------------------------------------------- SVG */

enum { CELL = 11, MAP = 8 * CELL, LEFT = 250, TOP = 104, COL = MAP + 28, ROW = MAP + 34,
       LEGEND = LEFT + 3 * COL + 10, STEPS = 8 };

/* How a row's values are coloured. */
typedef enum { SCALE_LOG, SCALE_RATIO } scale_kind;

typedef struct {
    const char *label, *note[2]; /* the note in two lines */
    scale_kind scale;
    double v[3 * 64]; /* NAN: undefined (grey) */
} map_row;

/* A colour from dark blue (t 0) through teal and green to yellow (t 1). */
static void colour(double t, char out[8])
{
    static const double stops[5][3] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double f = t * 4;
    int i = f >= 4 ? 3 : (int)f;
    f -= i;
    int rgb[3];
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]));
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

/* A row's scale: [lo, hi] (log10 for SCALE_LOG). */
static void row_range(const map_row *r, double *lo, double *hi)
{
    if (r->scale == SCALE_RATIO) {
        *lo = 0, *hi = 1;
        return;
    }
    double mx = 0, mn = INFINITY;
    for (int i = 0; i < 3 * 64; i++)
        if (r->v[i] > 0) {
            mx = r->v[i] > mx ? r->v[i] : mx;
            mn = r->v[i] < mn ? r->v[i] : mn;
        }
    if (mx <= 0) {
        *lo = -1, *hi = 0;
        return;
    }
    *hi = log10(mx);
    *lo = fmax(log10(mn), *hi - 6); /* six decades at most */
    if (*hi - *lo < 1e-9)
        *lo = *hi - 1;
}

static double row_t(const map_row *r, double v, double lo, double hi)
{
    if (r->scale == SCALE_RATIO)
        return v;
    return v > 0 ? (log10(v) - lo) / (hi - lo) : 0;
}

static void draw_legend(ut_buf *b, const map_row *r, int y, double lo, double hi)
{
    ut_buf_printf(b, "<g class=\"legend\">\n");
    for (int s = 0; s < STEPS; s++) {
        char c[8];
        colour((s + 0.5) / STEPS, c);
        ut_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"%d\" fill=\"%s\"/>\n",
                      LEGEND, y + MAP - (s + 1) * MAP / STEPS, MAP / STEPS, c);
    }
    if (r->scale == SCALE_RATIO)
        ut_buf_printf(b, "<text class=\"small\" x=\"%d\" y=\"%d\">1 or more</text>\n"
                         "<text class=\"small\" x=\"%d\" y=\"%d\">0 or less</text>\n",
                      LEGEND + 18, y + 9, LEGEND + 18, y + MAP);
    else
        ut_buf_printf(b, "<text class=\"small\" x=\"%d\" y=\"%d\">%.3g</text>\n"
                         "<text class=\"small\" x=\"%d\" y=\"%d\">%.3g</text>\n",
                      LEGEND + 18, y + 9, pow(10, hi), LEGEND + 18, y + MAP, pow(10, lo));
    ut_buf_printf(b, "</g>\n");
}

/* One row: its label, three 8x8 maps (Y, Cb, Cr) with a tooltip per cell, its scale. */
static void draw_row(ut_buf *b, const map_row *r, int y)
{
    double lo, hi;
    row_range(r, &lo, &hi);
    ut_buf_printf(b, "<text x=\"16\" y=\"%d\" font-weight=\"bold\">", y + 14);
    srv_svg_escape(b, r->label);
    for (int l = 0; l < 2; l++) {
        ut_buf_printf(b, "</text>\n<text class=\"small\" x=\"16\" y=\"%d\">", y + 30 + 14 * l);
        srv_svg_escape(b, r->note[l]);
    }
    ut_buf_printf(b, "</text>\n");
    for (int c = 0; c < 3; c++) {
        const int x0 = LEFT + c * COL;
        ut_buf_printf(b, "<g class=\"map\" data-channel=\"%s\">\n", CHANNELS[c]);
        for (int k = 0; k < 64; k++) {
            const double v = r->v[c * 64 + k];
            char fill[8] = "#bbbbbb";
            if (isfinite(v))
                colour(row_t(r, v, lo, hi), fill);
            ut_buf_printf(b,
                          "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\">"
                          "<title>%s (%d,%d): %.4g</title></rect>\n",
                          x0 + (k % 8) * CELL, y + (k / 8) * CELL, CELL, CELL, fill, CHANNELS[c],
                          k / 8, k % 8, v);
        }
        ut_buf_printf(b, "<rect style=\"fill:none;stroke:#333;stroke-width:1\" x=\"%d\" y=\"%d\" "
                         "width=\"%d\" height=\"%d\"/>\n</g>\n",
                      x0, y, MAP, MAP);
    }
    draw_legend(b, r, y, lo, hi);
}

/* r->v = num / den per value (NAN where den is 0). */
static void ratio_row(map_row *r, const double *num, const double *den)
{
    for (int i = 0; i < 3 * 64; i++)
        r->v[i] = den[i] > NO_ENERGY ? num[i] / den[i] : NAN;
}

int srv_dct_svg(const srv_dct_sums *s, int eps, const char *caption, char **out, size_t *len)
{
    int e = 0;
    while (e < s->n_eps && s->eps[e] != eps)
        e++;
    if (e == s->n_eps)
        return ADJ_ERR_ARG;
    const double *m = s->sum;
    enum { N_ROWS = 9 };
    map_row *rows = calloc(N_ROWS, sizeof *rows);
    if (!rows)
        return ADJ_ERR_NOMEM;
    static const char *const labels[N_ROWS][3] = {
        {"Perturbation energy", "E_eta, eta = Adv(x) - x", ""},
        {"Its survival", "E_kept / E_eta,", "kept = JPG(Adv(x)) - JPG(x)"},
        {"Kept in phase", "cross(eta, kept) / E_eta:", "the share of eta kept unchanged"},
        {"JPEG's own change", "energy of", "JPG(Adv(x)) - Adv(x)"},
        {"JPEG-noise control", "energy of", "JPGnoise(Adv(x)) - Adv(x)"},
        {"Natural content", "energy of x - mean(x)", "(mean per RGB channel)"},
        {"Its survival", "E(JPG(x) - mean)", "/ E(x - mean)"},
        {"Kept in phase", "cross(x - mean, JPG(x) - mean)", "/ E(x - mean)"},
        {"Quantisation step", "libjpeg's table", "at this quality"}};
    for (int i = 0; i < N_ROWS; i++) {
        rows[i].label = labels[i][0];
        rows[i].note[0] = labels[i][1];
        rows[i].note[1] = labels[i][2];
        rows[i].scale = i == 1 || i == 2 || i == 6 || i == 7 ? SCALE_RATIO : SCALE_LOG;
    }
    memcpy(rows[0].v, m + eps_at(e, SRV_DCT_ETA), sizeof rows[0].v);
    ratio_row(&rows[1], m + eps_at(e, SRV_DCT_KEPT), m + eps_at(e, SRV_DCT_ETA));
    ratio_row(&rows[2], m + eps_at(e, SRV_DCT_CROSS), m + eps_at(e, SRV_DCT_ETA));
    memcpy(rows[3].v, m + eps_at(e, SRV_DCT_JPEG), sizeof rows[3].v);
    memcpy(rows[4].v, m + eps_at(e, SRV_DCT_NOISE), sizeof rows[4].v);
    memcpy(rows[5].v, m + natural_at(SRV_DCT_NATURAL), sizeof rows[5].v);
    ratio_row(&rows[6], m + natural_at(SRV_DCT_NATURAL_KEPT), m + natural_at(SRV_DCT_NATURAL));
    ratio_row(&rows[7], m + natural_at(SRV_DCT_NATURAL_CROSS), m + natural_at(SRV_DCT_NATURAL));
    int q[2][64];
    dct_quant_steps(s->quality, q);
    for (int i = 0; i < 3 * 64; i++)
        rows[8].v[i] = q[i >= 64][i % 64];

    ut_buf b = {0};
    char title[128];
    snprintf(title, sizeof title, "What JPEG (quality %d) removes of FGSM at eps %d, per DCT "
                                  "frequency", s->quality, eps);
    srv_svg_open(&b, LEGEND + 90, TOP + N_ROWS * ROW + 30, title, caption);
    ut_buf_printf(&b, "<text class=\"small\" x=\"16\" y=\"58\">Each map: the 8x8 frequencies of "
                      "a JPEG channel, (0,0) top left, horizontal frequency to the right;</text>\n"
                      "<text class=\"small\" x=\"16\" y=\"72\">means over %zu images; grey: "
                      "undefined (no energy). Hover a cell for its value.</text>\n",
                  s->n);
    for (int c = 0; c < 3; c++)
        ut_buf_printf(&b, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">%s</text>\n",
                      LEFT + c * COL + MAP / 2 - 8, TOP - 8, CHANNELS[c]);
    for (int i = 0; i < N_ROWS; i++)
        draw_row(&b, &rows[i], TOP + i * ROW);
    free(rows);
    return srv_svg_close(&b, out, len);
}
