/*
 * test_srv_dct.c - server/srv_dct.c without a daemon: a job's DCT records
 * and their aggregation on synthetic images whose spectra are known by hand:
 * a change constant over 16x16 regions (one DCT basis function, (0,0), in
 * every 8x8 block of Y and of the 4:2:0 chroma planes) in Y only, a pure
 * chroma change (R, G, B) = (-15, 9, -7) whose luma is exactly 0, and white
 * noise (Parseval: the 64 energies sum to the squared values of a block).
 * Then dct.bin: a record past the job's rows is cut off when it resumes,
 * the means are those of the records, a wrong header is refused, and
 * dct.svg is well-formed XML (xmllint, when installed).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srv_dct.h"
#include "status.h"
#include "testutil.h"

enum { W = 128, H = 128 };

/* +1 or -1 per 16x16 region, in a checkerboard (mean 0 over the image). */
static int region_sign(int x, int y) { return ((x / 16 + y / 16) % 2) ? -1 : 1; }

static void fill(img_rgb *im, int (*f)(int x, int y, int c, void *), void *arg)
{
    img_alloc(im, W, H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                im->px[3 * ((size_t)y * W + x) + c] = (uint8_t)f(x, y, c, arg);
}

/* x: 128 +- 20 per region, the same on R, G and B (natural content: (0,0) only, in Y). */
static int clean(int x, int y, int c, void *a)
{
    (void)c, (void)a;
    return 128 + 20 * region_sign(x, y);
}

/* x plus k * delta[c] * the region's sign. */
typedef struct {
    int delta[3];
    int k;
} shift;
static int shifted(int x, int y, int c, void *a)
{
    const shift *s = a;
    return clean(x, y, c, NULL) + s->k * s->delta[c] * region_sign(x, y);
}

/* x plus +-3 per pixel (a fixed random sign), the same on R, G and B. */
static int noisy(int x, int y, int c, void *a)
{
    (void)c, (void)a;
    uint64_t s = (uint64_t)(y * W + x) * 0x9e3779b97f4a7c15ULL + 7;
    return clean(x, y, c, NULL) + (tu_rand(&s) & 1 ? 3 : -3);
}

static int same(int x, int y, int c, void *a)
{
    (void)a;
    return clean(x, y, c, NULL);
}

static const exp_params P = {.n_eps = 1, .eps = {5}, .quality = 75};

/*
 * An image's result: x, JPG(x) = x, Adv = x + change, JPG(Adv) = x + half
 * the change (sh only), JPGnoise(Adv) = Adv (no change).
 */
static void make_result(exp_result *r, const shift *sh, int noise)
{
    memset(r, 0, sizeof *r);
    r->n_transforms = exp_n_transforms(&P);
    r->n_adv = exp_n_adv(&P);
    r->images = calloc((size_t)r->n_transforms, sizeof *r->images);
    shift half = sh ? *sh : (shift){{0, 0, 0}, 0};
    half.k = sh ? sh->k / 2 : 0;
    for (int t = 0; t < r->n_transforms; t++)
        switch (exp_transform_kind_of(&P, t)) {
        case EXP_T_X:
        case EXP_T_JPG_X: fill(&r->images[t], same, NULL); break;
        case EXP_T_ADV:
        case EXP_T_NOISE_ADV:
            if (noise)
                fill(&r->images[t], noisy, NULL);
            else
                fill(&r->images[t], shifted, (void *)sh);
            break;
        case EXP_T_JPG_ADV: fill(&r->images[t], noise ? same : shifted, &half); break;
        case EXP_T_KIND_COUNT: break;
        }
}

/* Spectrum `slot` of eps 0 (or natural with nat) of a record, channel c. */
static const float *spec(const float *rec, int slot, int nat, int c)
{
    size_t at = nat ? (size_t)slot : (size_t)(SRV_DCT_PER_IMAGE + slot);
    return rec + 1 + at * SRV_DCT_SPECTRUM + (size_t)c * 64;
}

/* Whether v is (0,0)-only with energy e0 (relative 1e-6). */
static int dc_only(const float *v, double e0)
{
    if (fabs(v[0] - e0) > 1e-6 * (e0 > 1 ? e0 : 1))
        return 0;
    for (int k = 1; k < 64; k++)
        if (fabs(v[k]) > 1e-6)
            return 0;
    return 1;
}

static void test_records(float *recs, size_t nf)
{
    /* 1. luma only: +-4 on R, G, B: Y +-4, a block's DC 8 * 4, energy 1024; JPG keeps +-2 */
    shift luma = {{1, 1, 1}, 4};
    exp_result r;
    make_result(&r, &luma, 0);
    CHECK(srv_dct_record_of(&P, 75, &r, recs) == ADJ_OK && recs[0] == 1, "record");
    CHECK(dc_only(spec(recs, SRV_DCT_ETA, 0, 0), 1024), "eta Y %g %g", spec(recs, 0, 0, 0)[0],
          spec(recs, 0, 0, 0)[1]);
    CHECK(dc_only(spec(recs, SRV_DCT_ETA, 0, 1), 0) && dc_only(spec(recs, SRV_DCT_ETA, 0, 2), 0),
          "a luma change has no chroma");
    CHECK(dc_only(spec(recs, SRV_DCT_KEPT, 0, 0), 256), "kept Y %g", spec(recs, 1, 0, 0)[0]);
    CHECK(dc_only(spec(recs, SRV_DCT_CROSS, 0, 0), 32 * 16), "cross: DC 32 and 16, in phase");
    CHECK(dc_only(spec(recs, SRV_DCT_JPEG, 0, 0), 256), "JPEG's change: -2");
    CHECK(dc_only(spec(recs, SRV_DCT_NOISE, 0, 0), 0), "no control change");
    CHECK(dc_only(spec(recs, SRV_DCT_NATURAL, 1, 0), 64.0 * 400) &&
              dc_only(spec(recs, SRV_DCT_NATURAL_KEPT, 1, 0), 64.0 * 400),
          "natural: x - mean is +-20: %g", spec(recs, 0, 1, 0)[0]);
    CHECK(srv_dct_record_of(&P, 90, &r, recs + nf) == ADJ_ERR_ARG, "no transforms of quality 90");
    exp_result_free(&r);

    /* 2. pure chroma: (-15, 9, -7) has Y = 0 exactly; Cb, Cr by the JFIF formulas */
    shift chroma = {{-15, 9, -7}, 2};
    const double cb = 2 * (-0.168736 * -15 - 0.331264 * 9 + 0.5 * -7);
    const double cr = 2 * (0.5 * -15 - 0.418688 * 9 - 0.081312 * -7);
    make_result(&r, &chroma, 0);
    float *rec = recs + nf;
    CHECK(srv_dct_record_of(&P, 75, &r, rec) == ADJ_OK, "record");
    CHECK(dc_only(spec(rec, SRV_DCT_ETA, 0, 0), 0), "no luma: %g", spec(rec, 0, 0, 0)[0]);
    CHECK(dc_only(spec(rec, SRV_DCT_ETA, 0, 1), 64 * cb * cb) &&
              dc_only(spec(rec, SRV_DCT_ETA, 0, 2), 64 * cr * cr),
          "Cb %g (want %g), Cr %g (want %g)", spec(rec, 0, 0, 1)[0], 64 * cb * cb,
          spec(rec, 0, 0, 2)[0], 64 * cr * cr);
    CHECK(dc_only(spec(rec, SRV_DCT_KEPT, 0, 1), 16 * cb * cb), "half of it kept");
    exp_result_free(&r);

    /* 3. white noise +-3 in Y: Parseval (64 * 9 per block), flat, no chroma (2x2 means cancel
     * only in expectation: the chroma of equal R, G, B is 0 exactly) */
    make_result(&r, NULL, 1);
    rec = recs + 2 * nf;
    CHECK(srv_dct_record_of(&P, 75, &r, rec) == ADJ_OK, "record");
    const float *e = spec(rec, SRV_DCT_ETA, 0, 0);
    double sum = 0, lo = 1e9, hi = 0;
    for (int k = 0; k < 64; k++) {
        sum += e[k];
        lo = e[k] < lo ? e[k] : lo;
        hi = e[k] > hi ? e[k] : hi;
    }
    CHECK(fabs(sum - 64 * 9) < 1e-3, "Parseval: %g, want 576", sum);
    CHECK(lo > 0.6 * 9 && hi < 1.4 * 9, "flat: %g..%g around 9", lo, hi);
    CHECK(dc_only(spec(rec, SRV_DCT_ETA, 0, 1), 0), "no chroma");
    CHECK(dc_only(spec(rec, SRV_DCT_KEPT, 0, 0), 0) && dc_only(spec(rec, SRV_DCT_CROSS, 0, 0), 0),
          "JPG(Adv) = JPG(x) here: nothing kept");
    exp_result_free(&r);
}

/* dct.bin: records appended, one cut off at a resume, the means and the JSON. */
static void test_file(const float *recs, size_t nf, const char *dir)
{
    int fd;
    char err[256];
    CHECK(srv_dct_open(dir, &P, 75, 0, &fd, err, sizeof err) == 0, "%s", err);
    CHECK(srv_dct_append(fd, recs, 3, &P) == 0, "append");
    close(fd);
    exp_params other = P;
    other.eps[0] = 6;
    CHECK(srv_dct_open(dir, &other, 75, 3, &fd, err, sizeof err) == -1 && strstr(err, "header"),
          "another job's file: %s", err);
    close(fd);
    CHECK(srv_dct_open(dir, &P, 75, 4, &fd, err, sizeof err) == -1 && strstr(err, "fewer"),
          "fewer records than rows: %s", err);
    close(fd);
    /* a resume with 2 rows: the third record (written before its rows) goes */
    CHECK(srv_dct_open(dir, &P, 75, 2, &fd, err, sizeof err) == 0, "%s", err);
    close(fd);
    char path[4200];
    snprintf(path, sizeof path, "%s/dct.bin", dir);
    struct stat st;
    stat(path, &st);
    CHECK((size_t)st.st_size == 88 + 2 * nf * sizeof(float), "cut to 2 records: %lld bytes",
          (long long)st.st_size);
    srv_dct_sums s;
    CHECK(srv_dct_read(dir, &P, 75, 3, &s, err, sizeof err) == ADJ_ERR_IO, "3 records: short");
    CHECK(srv_dct_read(dir, &P, 75, 2, &s, err, sizeof err) == ADJ_OK && s.n == 2, "%s", err);
    for (size_t k = 0; k + 1 < nf; k++)
        if (fabs(s.sum[k] - ((double)recs[1 + k] + recs[nf + 1 + k]) / 2) > 1e-9) {
            CHECK(0, "mean %zu: %g", k, s.sum[k]);
            break;
        }
    json_t *o = srv_dct_json(&s);
    json_t *eps0 = json_array_get(json_object_get(o, "eps"), 0);
    json_t *surv = json_object_get(json_object_get(json_object_get(eps0, "survival"),
                                                   "per_frequency"), "Y");
    /* (0,0) of Y: (256 + 0) / (1024 + 0) */
    CHECK(fabs(json_real_value(json_array_get(surv, 0)) - 0.25) < 1e-9, "survival %g",
          json_real_value(json_array_get(surv, 0)));
    CHECK(json_is_null(json_array_get(surv, 1)), "no energy at (0,1): null");
    json_t *phase = json_object_get(json_object_get(json_object_get(eps0, "in_phase"),
                                                    "per_frequency"), "Y");
    /* (0,0) of Y: (512 + 0) / (1024 + 0) */
    CHECK(fabs(json_real_value(json_array_get(phase, 0)) - 0.5) < 1e-9, "in phase %g",
          json_real_value(json_array_get(phase, 0)));
    json_t *band = json_object_get(json_object_get(json_object_get(eps0, "eta"), "band_fraction"),
                                   "Y");
    CHECK(json_array_size(band) == SRV_DCT_BANDS &&
              fabs(json_real_value(json_array_get(band, 0)) - 1) < 1e-9,
          "all of Y's energy in band 0");
    json_t *q = json_object_get(json_object_get(o, "quant_steps"), "Cb");
    CHECK(json_integer_value(json_array_get(q, 0)) == 9,
          "Cb's (0,0) step at 75: (17 * 50 + 50) / 100 = 9");
    json_decref(o);

    char *svg;
    size_t len;
    CHECK(srv_dct_svg(&s, 6, "c", &svg, &len) == ADJ_ERR_ARG, "no eps 6");
    CHECK(srv_dct_svg(&s, 5, "a <caption> & more", &svg, &len) == ADJ_OK, "svg");
    snprintf(path, sizeof path, "%s/dct.svg", dir);
    tu_write_file(path, svg, len);
    CHECK(strstr(svg, "a &lt;caption&gt; &amp; more") != NULL, "escaped caption");
    int maps = 0;
    for (const char *p = svg; (p = strstr(p, "class=\"map\"")); p++)
        maps++;
    CHECK(maps == 9 * 3, "9 rows of 3 maps: %d", maps);
    free(svg);
    if (system("command -v xmllint >/dev/null 2>&1") == 0) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
        CHECK(system(cmd) == 0, "xmllint");
    } else {
        fprintf(stderr, "xmllint not installed: its check skipped\n");
    }
    srv_dct_sums_free(&s);
}

int main(void)
{
    const size_t nf = srv_dct_record_floats(&P);
    CHECK(nf == 1 + 192 * 8, "record floats %zu", nf);
    float *recs = calloc(3 * nf, sizeof *recs);
    test_records(recs, nf);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/srv-dct-%d", tu_tmpdir(), (int)getpid());
    mkdir(dir, 0700);
    test_file(recs, nf, dir);
    tu_rmtree(dir);
    free(recs);
    return tu_done();
}
