/*
 * advjpg-gen - writes the procedural image sets (common/synth.h) the default
 * classifier is trained and validated on.
 *
 *   advjpg-gen --out DIR --count N --seed S [--no-labels]
 *   advjpg-gen --standard DIR      DIR/train (24000, seed 1), DIR/val (2000,
 *                                  seed 2), DIR/demo (48, seed 3)
 *   advjpg-gen --sheet FILE.png [--seed S] [--per-class K]
 *                                  a contact sheet: one row per class
 *
 * Errors give one line on stderr and exit status 1.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"
#include "status.h"
#include "synth.h"
#include "ut_clock.h"

static const char usage[] =
    "usage: advjpg-gen --out DIR --count N --seed S [--no-labels]\n"
    "       advjpg-gen --standard DIR\n"
    "       advjpg-gen --sheet FILE.png [--seed S] [--per-class K]\n"
    "\n"
    "Writes a labelled set of procedural images (%d classes: shapes and textures on\n"
    "noisy gradient backgrounds, %d..%d px per side, JPEG quality %d..%d), the\n"
    "same bytes for the same seed.\n"
    "\n"
    "  --out DIR       output folder (created if missing): img_000001.jpg ...,\n"
    "                  labels.txt (filename<TAB>class-index), classes.txt\n"
    "  --count N       number of images (classes balanced, shuffled order)\n"
    "  --seed S        seed (default 1)\n"
    "  --no-labels     write the images only (no labels.txt, no classes.txt)\n"
    "  --standard DIR  DIR/train (24000 images, seed 1), DIR/val (2000, seed 2)\n"
    "                  and DIR/demo (48, seed 3)\n"
    "  --sheet FILE    a PNG contact sheet: one row per class, --per-class\n"
    "                  examples (default 8) per row\n"
    "  --help          this text\n";

/** Parses a non-negative decimal integer <= max; -1 on error. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

static int write_set(const char *dir, int n, uint64_t seed, int labels)
{
    char err[ADJ_ERRLEN];
    double t0 = ut_now();
    if (synth_write_set(dir, n, seed, labels, err, sizeof err)) {
        fprintf(stderr, "advjpg-gen: %s\n", err);
        return 1;
    }
    fprintf(stderr, "advjpg-gen: wrote %d images to %s (seed %llu, %.1f s)\n", n, dir,
            (unsigned long long)seed, ut_now() - t0);
    return 0;
}

/** One row per class, per_class examples per row, each centred in a cell. */
static int write_sheet(const char *path, uint64_t seed, int per_class)
{
    char err[ADJ_ERRLEN];
    const int cell = SYNTH_MAX_SIDE + 4, k = synth_n_classes();
    img_rgb sheet = {0};
    if (img_alloc(&sheet, cell * per_class, cell * k)) {
        fprintf(stderr, "advjpg-gen: out of memory for the sheet\n");
        return 1;
    }
    memset(sheet.px, 40, (size_t)sheet.w * (size_t)sheet.h * 3);
    for (int c = 0; c < k; c++) {
        for (int j = 0; j < per_class; j++) {
            img_rgb im;
            if (synth_render(c, seed * 1000003u + (uint64_t)j, &im, err, sizeof err)) {
                fprintf(stderr, "advjpg-gen: %s\n", err);
                img_free(&sheet);
                return 1;
            }
            int x0 = j * cell + (cell - im.w) / 2, y0 = c * cell + (cell - im.h) / 2;
            for (int y = 0; y < im.h; y++)
                memcpy(sheet.px + 3 * ((size_t)(y0 + y) * (size_t)sheet.w + (size_t)x0),
                       im.px + 3 * (size_t)y * (size_t)im.w, 3 * (size_t)im.w);
            img_free(&im);
        }
    }
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = img_encode_png(&sheet, &png, &len, err, sizeof err);
    img_free(&sheet);
    if (rc) {
        fprintf(stderr, "advjpg-gen: %s\n", err);
        return 1;
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(png, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "advjpg-gen: cannot write %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        free(png);
        return 1;
    }
    free(png);
    fprintf(stderr, "advjpg-gen: wrote %s (%d classes x %d)\n", path, k, per_class);
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_NO_LABELS = 256, OPT_STANDARD, OPT_SHEET, OPT_PER_CLASS };
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"count", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"no-labels", no_argument, NULL, OPT_NO_LABELS},
        {"standard", required_argument, NULL, OPT_STANDARD},
        {"sheet", required_argument, NULL, OPT_SHEET},
        {"per-class", required_argument, NULL, OPT_PER_CLASS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *standard = NULL, *sheet = NULL;
    uint64_t count = 0, seed = 1, per_class = 8;
    int have_count = 0, labels = 1, o;

    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'o': out = optarg; break;
        case 'n':
            if (parse_u64(optarg, SYNTH_MAX_SET, &count) || count < 1) {
                fprintf(stderr, "advjpg-gen: --count must be an integer in 1..%d, not '%s'\n",
                        SYNTH_MAX_SET, optarg);
                return 1;
            }
            have_count = 1;
            break;
        case 's':
            if (parse_u64(optarg, UINT64_MAX, &seed)) {
                fprintf(stderr, "advjpg-gen: --seed must be a non-negative integer, not '%s'\n",
                        optarg);
                return 1;
            }
            break;
        case OPT_NO_LABELS: labels = 0; break;
        case OPT_STANDARD: standard = optarg; break;
        case OPT_SHEET: sheet = optarg; break;
        case OPT_PER_CLASS:
            if (parse_u64(optarg, 64, &per_class) || per_class < 1) {
                fprintf(stderr, "advjpg-gen: --per-class must be an integer in 1..64, not '%s'\n",
                        optarg);
                return 1;
            }
            break;
        case 'h': printf(usage, synth_n_classes(), SYNTH_MIN_SIDE, SYNTH_MAX_SIDE,
                         SYNTH_MIN_QUALITY, SYNTH_MAX_QUALITY);
            return 0;
        default:
            fprintf(stderr, "advjpg-gen: unknown option or missing value: %s (see --help)\n",
                    argv[optind - 1]);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "advjpg-gen: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 1;
    }
    if (!!out + !!standard + !!sheet != 1) {
        fprintf(stderr, "advjpg-gen: give exactly one of --out, --standard, --sheet (see --help)\n");
        return 1;
    }

    if (sheet)
        return write_sheet(sheet, seed, (int)per_class);

    if (standard) {
        static const struct { const char *name; int n; uint64_t seed; } sets[] = {
            {"train", 24000, 1}, {"val", 2000, 2}, {"demo", 48, 3}};
        for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
            char dir[4200];
            int k = snprintf(dir, sizeof dir, "%s/%s", standard, sets[i].name);
            if (k < 0 || (size_t)k >= sizeof dir) {
                fprintf(stderr, "advjpg-gen: directory name too long: %.64s...\n", standard);
                return 1;
            }
            if (write_set(dir, sets[i].n, sets[i].seed, 1))
                return 1;
        }
        return 0;
    }

    if (!have_count) {
        fprintf(stderr, "advjpg-gen: --out needs --count N (see --help)\n");
        return 1;
    }
    return write_set(out, (int)count, seed, labels);
}
