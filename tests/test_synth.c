/*
 * test_synth.c - the procedural image set (common/synth.h): classes,
 * determinism, sizes, the set layout on disk, balance, and that the images
 * are not trivial.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "image.h"
#include "synth.h"
#include "testutil.h"

static int same_image(const img_rgb *a, const img_rgb *b)
{
    return a->w == b->w && a->h == b->h &&
           memcmp(a->px, b->px, (size_t)a->w * (size_t)a->h * 3) == 0;
}

/** Standard deviation of the luminance over pixels with x0 <= x < x1, y0 <= y < y1,
 *  or (frame > 0) over the outer frame of that width only. */
static double luma_std(const img_rgb *im, int frame)
{
    double s = 0, s2 = 0;
    size_t n = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            if (frame > 0 && x >= frame && x < im->w - frame && y >= frame && y < im->h - frame)
                continue;
            const uint8_t *p = im->px + 3 * ((size_t)y * (size_t)im->w + (size_t)x);
            double l = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
            s += l;
            s2 += l * l;
            n++;
        }
    double m = s / (double)n;
    return sqrt(fmax(0.0, s2 / (double)n - m * m));
}

static void test_classes(void)
{
    int k = synth_n_classes();
    CHECK(k >= 40, "only %d classes", k);
    for (int c = 0; c < k; c++) {
        const char *a = synth_class_name(c);
        CHECK(a && *a, "class %d has no name", c);
        CHECK(a && !strchr(a, '\t') && !strchr(a, '\n'), "class %d name has a tab or newline", c);
        for (int d = 0; d < c && a; d++)
            CHECK(strcmp(a, synth_class_name(d)) != 0, "classes %d and %d are both '%s'", c, d, a);
    }
    CHECK(synth_class_name(-1) == NULL, "class -1 has a name");
    CHECK(synth_class_name(k) == NULL, "class %d has a name", k);
}

static void test_render(void)
{
    char err[ADJ_ERRLEN];
    int k = synth_n_classes(), per = 10;
    double min_std = 1e9, min_frame_std = 1e9, sum_std = 0;
    int min_w = 1 << 30, max_w = 0, min_h = 1 << 30, max_h = 0, nimg = 0, narrow = 0, wide = 0;

    for (int c = 0; c < k; c++) {
        for (int j = 0; j < per; j++) {
            uint64_t seed = 1000u * (uint64_t)j + 17u;
            img_rgb a = {0}, b = {0};
            int rc = synth_render(c, seed, &a, err, sizeof err);
            CHECK(rc == ADJ_OK, "class %d seed %llu: %s", c, (unsigned long long)seed, err);
            if (rc)
                continue;
            CHECK(a.w >= SYNTH_MIN_SIDE && a.w <= SYNTH_MAX_SIDE && a.h >= SYNTH_MIN_SIDE &&
                      a.h <= SYNTH_MAX_SIDE,
                  "class %d: %dx%d out of range", c, a.w, a.h);
            double asp = (double)a.w / a.h;
            CHECK(asp >= SYNTH_MIN_ASPECT - 0.02 && asp <= SYNTH_MAX_ASPECT + 0.02,
                  "class %d: aspect %.3f", c, asp);
            narrow += asp < 0.8;
            wide += asp > 1.25;
            min_w = a.w < min_w ? a.w : min_w;
            max_w = a.w > max_w ? a.w : max_w;
            min_h = a.h < min_h ? a.h : min_h;
            max_h = a.h > max_h ? a.h : max_h;

            /* same (class, seed): same bytes */
            if (j < 3) {
                rc = synth_render(c, seed, &b, err, sizeof err);
                CHECK(rc == ADJ_OK && same_image(&a, &b), "class %d seed %llu not deterministic",
                      c, (unsigned long long)seed);
                img_free(&b);
                rc = synth_render(c, seed + 1, &b, err, sizeof err);
                CHECK(rc == ADJ_OK && !same_image(&a, &b), "class %d: seeds %llu and +1 agree", c,
                      (unsigned long long)seed);
                img_free(&b);
                rc = synth_render((c + 1) % k, seed, &b, err, sizeof err);
                CHECK(rc == ADJ_OK && !same_image(&a, &b), "classes %d and %d agree", c,
                      (c + 1) % k);
                img_free(&b);
            }

            /* not trivial: contrast overall, and a background that is not flat */
            double sd = luma_std(&a, 0), fr = luma_std(&a, 3);
            sum_std += sd;
            nimg++;
            min_std = sd < min_std ? sd : min_std;
            min_frame_std = fr < min_frame_std ? fr : min_frame_std;
            img_free(&a);
        }
    }
    CHECK(min_std > 8.0, "an image has a luminance std of only %.2f", min_std);
    CHECK(min_frame_std > 0.8, "an image has a flat background (frame std %.2f)", min_frame_std);
    CHECK(min_w <= SYNTH_MIN_SIDE + 48 && max_w >= SYNTH_MAX_SIDE - 48 &&
              min_h <= SYNTH_MIN_SIDE + 48 && max_h >= SYNTH_MAX_SIDE - 48,
          "sizes not varied: w %d..%d, h %d..%d", min_w, max_w, min_h, max_h);
    CHECK(narrow > nimg / 10 && wide > nimg / 10, "aspect ratios not varied: %d narrow, %d wide of %d",
          narrow, wide, nimg);
    printf("render: %d images, w %d..%d, h %d..%d, luma std mean %.1f min %.1f, frame std min %.2f\n",
           nimg, min_w, max_w, min_h, max_h, sum_std / nimg, min_std, min_frame_std);
}

static void test_errors(void)
{
    char err[ADJ_ERRLEN] = "";
    img_rgb im = {7, 7, NULL};
    CHECK(synth_render(-1, 1, &im, err, sizeof err) == ADJ_ERR_ARG, "class -1 accepted");
    CHECK(err[0] != '\0', "no message for class -1");
    CHECK(im.w == 7 && im.h == 7 && im.px == NULL, "output written on failure");
    CHECK(synth_render(synth_n_classes(), 1, &im, NULL, 0) == ADJ_ERR_ARG, "class K accepted");
    CHECK(synth_render(0, 1, NULL, NULL, 0) == ADJ_ERR_ARG, "NULL output accepted");
    synth_item it;
    CHECK(synth_plan(0, 1, &it) == ADJ_ERR_ARG, "plan of 0 images accepted");
    CHECK(synth_plan(1, 1, NULL) == ADJ_ERR_ARG, "plan into NULL accepted");
    CHECK(synth_write_set("/tmp", 0, 1, 1, err, sizeof err) == ADJ_ERR_ARG, "set of 0 accepted");
    CHECK(synth_write_set("", 1, 1, 1, err, sizeof err) == ADJ_ERR_ARG, "empty dir accepted");
}

static void test_plan(void)
{
    int k = synth_n_classes(), n = 7 * k + 5;
    synth_item *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    int *count = calloc((size_t)k, sizeof *count);
    CHECK(synth_plan(n, 42, a) == ADJ_OK, "plan failed");
    CHECK(synth_plan(n, 42, b) == ADJ_OK, "plan failed");
    int differ = 0;
    for (int i = 0; i < n; i++)
        differ += a[i].cls != b[i].cls || a[i].seed != b[i].seed || a[i].quality != b[i].quality;
    CHECK(differ == 0, "plan not deterministic (%d items differ)", differ);
    int qmin = 1000, qmax = 0, same = 0, run = 0;
    for (int i = 0; i < n; i++) {
        CHECK(a[i].cls >= 0 && a[i].cls < k, "item %d: class %d", i, a[i].cls);
        if (a[i].cls >= 0 && a[i].cls < k)
            count[a[i].cls]++;
        qmin = a[i].quality < qmin ? a[i].quality : qmin;
        qmax = a[i].quality > qmax ? a[i].quality : qmax;
        run += i > 0 && a[i].cls == (a[i - 1].cls + 1) % k;
    }
    for (int c = 0; c < k; c++)
        CHECK(count[c] == 7 + (c < 5), "class %d appears %d times in %d", c, count[c], n);
    CHECK(qmin >= SYNTH_MIN_QUALITY && qmax <= SYNTH_MAX_QUALITY && qmax - qmin >= 20,
          "qualities %d..%d", qmin, qmax);
    CHECK(run < n / 4, "order not shuffled (%d of %d in sequence)", run, n);
    CHECK(synth_plan(n, 43, b) == ADJ_OK, "plan failed");
    for (int i = 0; i < n; i++)
        same += a[i].cls == b[i].cls && a[i].seed == b[i].seed;
    CHECK(same < n / 4, "seeds 42 and 43 give nearly the same plan (%d of %d)", same, n);
    free(a);
    free(b);
    free(count);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/** Checks dir's labels.txt and classes.txt and every image; returns the number of
 *  images checked. */
static int check_set(const char *dir, int n)
{
    char path[2048], line[256];
    int k = synth_n_classes(), lines = 0;
    int *count = calloc((size_t)k, sizeof *count);

    snprintf(path, sizeof path, "%s/classes.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "no %s", path);
    for (int c = 0; f && c < k; c++) {
        CHECK(fgets(line, sizeof line, f) != NULL, "classes.txt ends at line %d", c + 1);
        line[strcspn(line, "\n")] = '\0';
        CHECK(strcmp(line, synth_class_name(c)) == 0, "classes.txt line %d '%s'", c + 1, line);
    }
    CHECK(!f || fgets(line, sizeof line, f) == NULL, "classes.txt has more than %d lines", k);
    if (f)
        fclose(f);

    snprintf(path, sizeof path, "%s/labels.txt", dir);
    f = fopen(path, "r");
    CHECK(f != NULL, "no %s", path);
    char prev[64] = "";
    while (f && fgets(line, sizeof line, f)) {
        lines++;
        char name[64], want[64];
        int cls = -1, used = 0;
        size_t len = strlen(line);
        CHECK(len > 0 && line[len - 1] == '\n', "labels.txt line %d not terminated", lines);
        int ok = sscanf(line, "%63[^\t]\t%d%n", name, &cls, &used) == 2 &&
                 (size_t)used == len - 1;
        CHECK(ok, "labels.txt line %d malformed: '%s'", lines, line);
        if (!ok)
            continue;
        snprintf(want, sizeof want, "img_%06d.jpg", lines);
        CHECK(strcmp(name, want) == 0, "labels.txt line %d names %s", lines, name);
        CHECK(strcmp(prev, name) < 0, "labels.txt not sorted at line %d", lines);
        snprintf(prev, sizeof prev, "%s", name);
        CHECK(cls >= 0 && cls < k, "labels.txt line %d: class %d", lines, cls);
        if (cls >= 0 && cls < k)
            count[cls]++;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        size_t blen = 0;
        uint8_t *buf = tu_read_file(path, &blen);
        CHECK(buf != NULL, "%s missing", path);
        if (!buf)
            continue;
        CHECK(img_sniff(buf, blen) == IMG_FMT_JPEG, "%s is not a JPEG", path);
        img_rgb im = {0};
        char err[ADJ_ERRLEN];
        int rc = img_decode(buf, blen, IMG_DEFAULT_MAX_PIXELS, &im, err, sizeof err);
        CHECK(rc == ADJ_OK, "%s does not decode: %s", path, err);
        if (!rc) {
            CHECK(im.w >= SYNTH_MIN_SIDE && im.w <= SYNTH_MAX_SIDE && im.h >= SYNTH_MIN_SIDE &&
                      im.h <= SYNTH_MAX_SIDE,
                  "%s is %dx%d", path, im.w, im.h);
            CHECK(luma_std(&im, 0) > 6.0, "%s is nearly flat", path);
        }
        img_free(&im);
        free(buf);
    }
    if (f)
        fclose(f);
    CHECK(lines == n, "labels.txt has %d lines, want %d", lines, n);
    for (int c = 0; c < k; c++)
        CHECK(count[c] == n / k + (c < n % k), "class %d has %d images of %d", c, count[c], n);
    snprintf(path, sizeof path, "%s/img_%06d.jpg", dir, n + 1);
    CHECK(!file_exists(path), "%s written", path);
    free(count);
    return lines;
}

static int same_file(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    uint8_t *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

static void test_write_set(void)
{
    char root[512], d1[1024], d2[1024], d3[1024], d4[1024], p1[2048], p2[2048];
    char err[ADJ_ERRLEN];
    snprintf(root, sizeof root, "%s", tu_tmpdir());
    int k = synth_n_classes(), n = 3 * k;

    /* parents are created */
    snprintf(d1, sizeof d1, "%s/a/b/set1", root);
    snprintf(d2, sizeof d2, "%s/set2", root);
    snprintf(d3, sizeof d3, "%s/set3", root);
    snprintf(d4, sizeof d4, "%s/nolabels", root);
    double t0 = (double)clock();
    int rc = synth_write_set(d1, n, 5, 1, err, sizeof err);
    double ms = 1e3 * ((double)clock() - t0) / CLOCKS_PER_SEC / n;
    CHECK(rc == ADJ_OK, "write_set: %s", err);
    printf("write_set: %.2f ms per image (render + JPEG + write)\n", ms);
    if (rc == ADJ_OK)
        CHECK(check_set(d1, n) == n, "set 1 incomplete");

    /* same seed: same bytes; other seed: other images */
    rc = synth_write_set(d2, n, 5, 1, err, sizeof err);
    CHECK(rc == ADJ_OK, "write_set: %s", err);
    rc = synth_write_set(d3, n, 6, 1, err, sizeof err);
    CHECK(rc == ADJ_OK, "write_set: %s", err);
    int same12 = 0, same13 = 0;
    for (int i = 1; i <= n; i++) {
        snprintf(p1, sizeof p1, "%s/img_%06d.jpg", d1, i);
        snprintf(p2, sizeof p2, "%s/img_%06d.jpg", d2, i);
        same12 += same_file(p1, p2);
        snprintf(p2, sizeof p2, "%s/img_%06d.jpg", d3, i);
        same13 += same_file(p1, p2);
    }
    CHECK(same12 == n, "only %d of %d images identical for the same seed", same12, n);
    CHECK(same13 == 0, "%d images identical for different seeds", same13);
    snprintf(p1, sizeof p1, "%s/labels.txt", d1);
    snprintf(p2, sizeof p2, "%s/labels.txt", d2);
    CHECK(same_file(p1, p2), "labels differ for the same seed");
    snprintf(p2, sizeof p2, "%s/labels.txt", d3);
    CHECK(!same_file(p1, p2), "labels equal for different seeds");

    /* without labels */
    rc = synth_write_set(d4, 5, 5, 0, err, sizeof err);
    CHECK(rc == ADJ_OK, "write_set without labels: %s", err);
    snprintf(p1, sizeof p1, "%s/img_000005.jpg", d4);
    CHECK(file_exists(p1), "%s missing", p1);
    snprintf(p1, sizeof p1, "%s/labels.txt", d4);
    CHECK(!file_exists(p1), "labels.txt written with with_labels = 0");
    snprintf(p1, sizeof p1, "%s/classes.txt", d4);
    CHECK(!file_exists(p1), "classes.txt written with with_labels = 0");

    /* an unwritable place: below a regular file */
    snprintf(p1, sizeof p1, "%s/afile", root);
    CHECK(tu_write_file(p1, "x", 1) == 0, "cannot write %s", p1);
    snprintf(p2, sizeof p2, "%s/afile/sub", root);
    err[0] = '\0';
    rc = synth_write_set(p2, 3, 1, 1, err, sizeof err);
    CHECK(rc == ADJ_ERR_IO, "write below a file gave %d", rc);
    CHECK(strstr(err, "afile") != NULL, "message does not name the path: '%s'", err);

    tu_rmtree(root);
}

static void test_speed(void)
{
    char err[ADJ_ERRLEN];
    int n = 100;
    clock_t t0 = clock();
    for (int i = 0; i < n; i++) {
        img_rgb im;
        if (synth_render(i % synth_n_classes(), (uint64_t)i * 7919u, &im, err, sizeof err) == 0)
            img_free(&im);
    }
    double ms = 1e3 * (double)(clock() - t0) / CLOCKS_PER_SEC / n;
    printf("render: %.3f ms per image\n", ms);
    /* CPU time, so load does not count; generous: a release build takes about
     * 4 ms for these 112..288-pixel scenes, sanitizer builds 5-10 times more */
    CHECK(ms < 100.0, "rendering takes %.2f ms per image", ms);
}

int main(void)
{
    test_classes();
    test_render();
    test_errors();
    test_plan();
    test_write_set();
    test_speed();
    return tu_done();
}
