/*
 * test_image.c - the image module against the reference tools and hostile input.
 *
 * - img_encode_jpeg == `cjpeg -quality Q` byte for byte, and
 *   img_jpeg_roundtrip / img_decode of those bytes == `djpeg -dct int`, for
 *   smooth, sharp-edged, noisy and mixed images of sizes that are and are not
 *   multiples of 16. cjpeg and djpeg are looked up on PATH; their absence is a
 *   failure (CI installs libjpeg-turbo-progs).
 * - PNG and PPM round trips are exact; PNG colour types, bit depths,
 *   palettes and interlacing all come back as 8-bit RGB.
 * - Hostile input is refused with the right code and a message: empty,
 *   garbage, truncated, oversized headers (before any allocation), bad CRCs.
 * - img_prepare: sizes, the identity, where an edge lands, constant images,
 *   elongated images; its bytes == stb_image_resize's resize of the whole
 *   image (stbir_resize_uint8_generic, the documented filter and edges)
 *   followed by the crop, on many sizes, both shrinking and enlarging.
 */
#include "image.h"
#include "testutil.h"

#include <jpeglib.h>
#include <stb/stb_image_resize.h>
#include <png.h>
#include <setjmp.h>
#include <turbojpeg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

enum { PAT_GRADIENT, PAT_EDGES, PAT_NOISE, PAT_MIXED };
static const char *pat_name[] = {"gradient", "edges", "noise", "mixed"};

/* A synthetic w x h image of the given pattern. Aborts on allocation failure. */
static img_rgb make_image(int w, int h, int pat, uint64_t seed)
{
    img_rgb im;
    if (img_alloc(&im, w, h))
        abort();
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im.px + ((size_t)y * w + x) * 3;
            int r, g, b;
            switch (pat) {
            case PAT_GRADIENT: /* smooth ramps in three directions */
                r = w > 1 ? x * 255 / (w - 1) : 128;
                g = h > 1 ? y * 255 / (h - 1) : 128;
                b = (w + h > 2) ? (x + y) * 255 / (w + h - 2) : 128;
                break;
            case PAT_EDGES: /* hard-edged blocks, stripes and a diagonal */
                r = ((x / 5) + (y / 7)) % 2 ? 255 : 0;
                g = x % 3 == 0 ? 230 : 20;
                b = x > y ? 200 : 40;
                break;
            case PAT_NOISE: {
                uint64_t v = tu_rand(&seed);
                r = (int)(v & 255);
                g = (int)(v >> 8 & 255);
                b = (int)(v >> 16 & 255);
                break;
            }
            default: { /* gradient + noise + a disc */
                int n = (int)(tu_rand(&seed) % 41) - 20;
                int dx = x - w / 2, dy = y - h / 2, rad = (w < h ? w : h) / 3;
                int in = dx * dx + dy * dy < rad * rad;
                r = (in ? 220 : x * 200 / (w > 1 ? w : 1)) + n;
                g = (in ? 30 : 100) + n;
                b = y * 250 / (h > 1 ? h : 1) - n;
                break;
            }
            }
            p[0] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
            p[1] = (uint8_t)(g < 0 ? 0 : g > 255 ? 255 : g);
            p[2] = (uint8_t)(b < 0 ? 0 : b > 255 ? 255 : b);
        }
    return im;
}

static int same_image(const img_rgb *a, const img_rgb *b)
{
    return a->w == b->w && a->h == b->h && a->px && b->px &&
           memcmp(a->px, b->px, (size_t)a->w * a->h * 3) == 0;
}

/* Largest per-channel difference (or 999 if the sizes differ). */
static int max_diff(const img_rgb *a, const img_rgb *b)
{
    if (a->w != b->w || a->h != b->h)
        return 999;
    int m = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h * 3; i++) {
        int d = abs(a->px[i] - b->px[i]);
        if (d > m)
            m = d;
    }
    return m;
}

/* A binary PPM of im, with an optional comment line in the header. New. */
static uint8_t *ppm_bytes(const img_rgb *im, const char *comment, size_t *len)
{
    char hdr[256];
    int n = comment ? snprintf(hdr, sizeof hdr, "P6\n# %s\n%d %d\n# maxval next\n255\n", comment,
                               im->w, im->h)
                    : snprintf(hdr, sizeof hdr, "P6\n%d %d\n255\n", im->w, im->h);
    size_t px = (size_t)im->w * im->h * 3;
    uint8_t *b = malloc((size_t)n + px);
    if (!b)
        abort();
    memcpy(b, hdr, (size_t)n);
    memcpy(b + n, im->px, px);
    *len = (size_t)n + px;
    return b;
}

/* Full path of an executable on PATH into out; 0 if found. */
static int find_on_path(const char *name, char *out, size_t outsz)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        if (n > 0 && (size_t)snprintf(out, outsz, "%.*s/%s", (int)n, path, name) < outsz &&
            access(out, X_OK) == 0)
            return 0;
        path += n + (end ? 1 : 0);
    }
    return -1;
}

/* `cjpeg [extra] -quality q` of im, through files in dir. New buffer or NULL. */
static uint8_t *run_cjpeg_args(const char *cjpeg, const char *dir, const img_rgb *im, int q,
                               const char *extra, size_t *len)
{
    char in[4200], out[4200], cmd[9000];
    snprintf(in, sizeof in, "%s/cj_in.ppm", dir);
    snprintf(out, sizeof out, "%s/cj_out.jpg", dir);
    size_t plen;
    uint8_t *ppm = ppm_bytes(im, NULL, &plen);
    int wr = tu_write_file(in, ppm, plen);
    free(ppm);
    if (wr)
        return NULL;
    /* cjpeg warns on stderr for quality < 24 ("too coarse for baseline") */
    if ((size_t)snprintf(cmd, sizeof cmd, "'%s' %s -quality %d '%s' > '%s' 2>/dev/null", cjpeg,
                         extra, q, in, out) >= sizeof cmd ||
        system(cmd) != 0)
        return NULL;
    return tu_read_file(out, len);
}

static uint8_t *run_cjpeg(const char *cjpeg, const char *dir, const img_rgb *im, int q, size_t *len)
{
    return run_cjpeg_args(cjpeg, dir, im, q, "", len);
}

/* `djpeg -dct int [extra] -ppm` of jpg, decoded; 0 on success. */
static int run_djpeg(const char *djpeg, const char *dir, const uint8_t *jpg, size_t jlen,
                     const char *extra, img_rgb *out)
{
    char in[4200], ppm[4200], cmd[9000], err[ADJ_ERRLEN];
    snprintf(in, sizeof in, "%s/dj_in.jpg", dir);
    snprintf(ppm, sizeof ppm, "%s/dj_out.ppm", dir);
    if (tu_write_file(in, jpg, jlen))
        return -1;
    if ((size_t)snprintf(cmd, sizeof cmd, "'%s' -dct int %s -ppm '%s' > '%s'", djpeg, extra, in,
                         ppm) >= sizeof cmd ||
        system(cmd) != 0)
        return -1;
    size_t n;
    uint8_t *b = tu_read_file(ppm, &n);
    if (!b)
        return -1;
    int rc = img_decode(b, n, IMG_DEFAULT_MAX_PIXELS, out, err, sizeof err);
    free(b);
    return rc;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The CRC-32 of PNG chunks (ISO 3309), bit by bit. */
static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* Offset of the first chunk of the given type in a PNG, or 0. */
static size_t png_find_chunk(const uint8_t *png, size_t len, const char *type)
{
    size_t pos = 8;
    while (pos + 12 <= len) {
        uint32_t n = be32(png + pos);
        if (memcmp(png + pos + 4, type, 4) == 0)
            return pos;
        pos += 12 + (size_t)n;
    }
    return 0;
}

/* Recomputes the CRC of the chunk at pos. */
static void png_fix_crc(uint8_t *png, size_t pos)
{
    uint32_t n = be32(png + pos);
    put_be32(png + pos + 8 + n, crc32_png(png + pos + 4, 4 + (size_t)n));
}

/* Offset of the SOF0/SOF1/SOF2 marker of a JPEG, or 0. */
static size_t jpeg_find_sof(const uint8_t *j, size_t len)
{
    size_t pos = 2;
    while (pos + 4 <= len && j[pos] == 0xff) {
        uint8_t m = j[pos + 1];
        if (m == 0xc0 || m == 0xc1 || m == 0xc2)
            return pos;
        pos += 2 + ((size_t)j[pos + 2] << 8 | j[pos + 3]);
    }
    return 0;
}

/* A PNG written with libpng's full API (any colour type, depth, interlace). */
typedef struct {
    uint8_t *b;
    size_t n, cap;
} membuf;

static void mb_write(png_structp png, png_bytep data, size_t n)
{
    membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        size_t cap = (m->n + n) * 2;
        uint8_t *nb = realloc(m->b, cap);
        if (!nb)
            png_error(png, "out of memory");
        m->b = nb;
        m->cap = cap;
    }
    memcpy(m->b + m->n, data, n);
    m->n += n;
}

static void mb_flush(png_structp png)
{
    (void)png;
}

/* rows: h rows of raw PNG row data (rowbytes each); palette/trans optional. */
static uint8_t *write_png_raw(int w, int h, int depth, int ctype, int interlace,
                              const uint8_t *data, size_t rowbytes, const png_color *pal,
                              int npal, const uint8_t *trans, int ntrans, size_t *len)
{
    membuf *m = calloc(1, sizeof *m);
    png_bytep *rows = calloc((size_t)h, sizeof *rows);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!m || !rows || !info)
        abort();
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)(data + (size_t)y * rowbytes);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m->b);
        free(m);
        free(rows);
        return NULL;
    }
    png_set_write_fn(png, m, mb_write, mb_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal)
        png_set_PLTE(png, info, pal, npal);
    if (trans)
        png_set_tRNS(png, info, trans, ntrans, NULL);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    uint8_t *b = m->b;
    *len = m->n;
    free(m);
    free(rows);
    return b;
}

/* A progressive JPEG of 1 + 3 * 63 * 3 = 568 scans (every AC coefficient of
 * every component on its own, in three successive-approximation steps),
 * made with the libjpeg API because cjpeg's -scans stops at 100. New (free()). */
static uint8_t *many_scans_jpeg(const img_rgb *im, size_t *len)
{
    enum { NSCANS = 1 + 3 * 63 * 3 };
    static const int steps[3][2] = {{0, 2}, {2, 1}, {1, 0}}; /* Ah, Al */
    jpeg_scan_info *scans = calloc(NSCANS, sizeof *scans);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je; /* the default handler exits: fine in a test */
    unsigned char *buf = NULL;
    unsigned long n = 0;
    if (!scans)
        return NULL;
    scans[0].comps_in_scan = 3;
    for (int c = 0; c < 3; c++)
        scans[0].component_index[c] = c;
    int k = 1;
    for (int c = 0; c < 3; c++)
        for (int coef = 1; coef < 64; coef++)
            for (int st = 0; st < 3; st++, k++) {
                scans[k].comps_in_scan = 1;
                scans[k].component_index[0] = c;
                scans[k].Ss = scans[k].Se = coef;
                scans[k].Ah = steps[st][0];
                scans[k].Al = steps[st][1];
            }
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &buf, &n);
    ci.image_width = (JDIMENSION)im->w;
    ci.image_height = (JDIMENSION)im->h;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 80, TRUE);
    ci.scan_info = scans;
    ci.num_scans = NSCANS;
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = im->px + (size_t)ci.next_scanline * im->w * 3;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(scans);
    *len = n;
    return buf;
}

/* --------------------------------------------------------------- tests */

static void test_basics(void)
{
    img_rgb im = {0, 0, NULL};
    CHECK(img_alloc(&im, 0, 5) == ADJ_ERR_ARG, "zero width");
    CHECK(img_alloc(&im, 5, -1) == ADJ_ERR_ARG, "negative height");
    CHECK(img_alloc(&im, 3, 2) == ADJ_OK && im.w == 3 && im.h == 2 && im.px, "alloc 3x2");
    for (int i = 0; i < 18; i++)
        im.px[i] = (uint8_t)(i * 10);
    img_rgb cp;
    CHECK(img_copy(&im, &cp) == ADJ_OK && same_image(&im, &cp) && cp.px != im.px, "deep copy");
    float pl[18];
    img_to_planar(&im, pl);
    /* pixel (x=1, y=1) is index 4: R at 12, G 13, B 14 interleaved */
    CHECK(pl[4] == 120.0f && pl[6 + 4] == 130.0f && pl[12 + 4] == 140.0f,
          "planar [c][y][x]: %g %g %g", pl[4], pl[10], pl[16]);
    CHECK(pl[0] == 0.0f && pl[6] == 10.0f && pl[12] == 20.0f && pl[17] == 170.0f, "planar ends");
    img_free(&cp);
    img_free(&im);
    CHECK(im.px == NULL && im.w == 0 && im.h == 0, "img_free zeroes");
    img_free(&im); /* twice is fine */
    img_free(NULL);

    static const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xe0};
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    CHECK(img_sniff(jpg, sizeof jpg) == IMG_FMT_JPEG, "sniff jpeg");
    CHECK(img_sniff(png, sizeof png) == IMG_FMT_PNG, "sniff png");
    CHECK(img_sniff((const uint8_t *)"P6\n1 1\n255\n", 11) == IMG_FMT_PPM, "sniff P6");
    CHECK(img_sniff((const uint8_t *)"P5 1 1 255 ", 11) == IMG_FMT_PPM, "sniff P5");
    CHECK(img_sniff((const uint8_t *)"P3\n1 1\n255\n", 11) == IMG_FMT_UNKNOWN, "ascii P3 unknown");
    CHECK(img_sniff((const uint8_t *)"GIF89a", 6) == IMG_FMT_UNKNOWN, "gif unknown");
    CHECK(img_sniff(png, 4) == IMG_FMT_UNKNOWN, "short png signature");
    CHECK(img_sniff(NULL, 0) == IMG_FMT_UNKNOWN, "NULL");
}

/* Checks the JPEG's structure: JFIF APP0, SOF0 (baseline) 4:2:0 for q >= 24. */
static void check_jpeg_structure(const uint8_t *j, size_t n, int w, int h, int q, const char *what)
{
    CHECK(n > 20 && j[0] == 0xff && j[1] == 0xd8 && j[2] == 0xff && j[3] == 0xe0 &&
              memcmp(j + 6, "JFIF", 5) == 0, "%s: SOI + JFIF APP0", what);
    size_t sof = jpeg_find_sof(j, n);
    CHECK(sof > 0, "%s: has a SOF marker", what);
    if (!sof)
        return;
    /* quality < 24 has quantisers over 255: cjpeg (no -baseline) then writes SOF1 */
    CHECK(j[sof + 1] == (q >= 24 ? 0xc0 : 0xc1), "%s: SOF%d", what, j[sof + 1] - 0xc0);
    const uint8_t *s = j + sof + 4; /* precision, height, width, ncomp, comps */
    CHECK(s[0] == 8 && (s[1] << 8 | s[2]) == h && (s[3] << 8 | s[4]) == w && s[5] == 3,
          "%s: SOF size", what);
    CHECK(s[7] == 0x22 && s[10] == 0x11 && s[13] == 0x11, "%s: 4:2:0 sampling %02x %02x %02x",
          what, s[7], s[10], s[13]);
    CHECK(j[n - 2] == 0xff && j[n - 1] == 0xd9, "%s: ends with EOI", what);
}

static void test_jpeg_reference(const char *dir)
{
    char cjpeg[4096], djpeg[4096], err[ADJ_ERRLEN];
    int have_c = find_on_path("cjpeg", cjpeg, sizeof cjpeg) == 0;
    int have_d = find_on_path("djpeg", djpeg, sizeof djpeg) == 0;
    CHECK(have_c, "cjpeg not found on PATH (install libjpeg-turbo-progs)");
    CHECK(have_d, "djpeg not found on PATH (install libjpeg-turbo-progs)");
    if (!have_c || !have_d)
        return;

    static const int sizes[][2] = {{231, 231}, {37, 19}, {64, 48}, {17, 100}};
    static const int qs[] = {50, 75, 95};
    int n_equal = 0, n_cases = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int pat = 0; pat < 4; pat++) {
            img_rgb im = make_image(sizes[si][0], sizes[si][1], pat, 1000 + si * 10 + (uint64_t)pat);
            for (size_t qi = 0; qi < sizeof qs / sizeof qs[0]; qi++) {
                int q = qs[qi];
                char what[128];
                snprintf(what, sizeof what, "%s %dx%d q%d", pat_name[pat], im.w, im.h, q);
                uint8_t *mine = NULL, *ref;
                size_t mlen = 0, rlen = 0;
                int rc = img_encode_jpeg(&im, q, &mine, &mlen, err, sizeof err);
                CHECK(rc == ADJ_OK, "%s: encode: %s", what, err);
                ref = run_cjpeg(cjpeg, dir, &im, q, &rlen);
                CHECK(ref != NULL, "%s: cjpeg failed", what);
                n_cases++;
                if (rc == ADJ_OK && ref) {
                    int eq = mlen == rlen && memcmp(mine, ref, mlen) == 0;
                    n_equal += eq;
                    CHECK(eq, "%s: bytes differ from cjpeg (%zu vs %zu bytes)", what, mlen, rlen);
                    check_jpeg_structure(mine, mlen, im.w, im.h, q, what);
                }
                /* JPG_q == djpeg -dct int of the same bytes, and so is img_decode */
                img_rgb rt = {0, 0, NULL}, dj = {0, 0, NULL}, dec = {0, 0, NULL};
                CHECK(img_jpeg_roundtrip(&im, q, &rt, err, sizeof err) == ADJ_OK,
                      "%s: roundtrip: %s", what, err);
                if (ref) {
                    CHECK(run_djpeg(djpeg, dir, ref, rlen, "", &dj) == 0, "%s: djpeg failed", what);
                    CHECK(same_image(&rt, &dj), "%s: roundtrip != djpeg -dct int (max diff %d)",
                          what, max_diff(&rt, &dj));
                    CHECK(img_decode(ref, rlen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) ==
                              ADJ_OK && same_image(&dec, &dj),
                          "%s: img_decode != djpeg -dct int", what);
                }
                if (pat == PAT_NOISE)
                    CHECK(max_diff(&rt, &im) > 0, "%s: JPEG of noise is lossy", what);
                img_free(&rt);
                img_free(&dj);
                img_free(&dec);
                free(mine);
                free(ref);
            }
            img_free(&im);
        }
    printf("jpeg: %d of %d encodings byte-identical to cjpeg\n", n_equal, n_cases);

    /* the extremes, including quality < 24 where cjpeg writes 16-bit tables */
    img_rgb im = make_image(40, 30, PAT_MIXED, 7);
    static const int qx[] = {1, 10, 23, 24, 100};
    for (size_t i = 0; i < sizeof qx / sizeof qx[0]; i++) {
        uint8_t *mine = NULL, *ref;
        size_t mlen = 0, rlen = 0;
        CHECK(img_encode_jpeg(&im, qx[i], &mine, &mlen, err, sizeof err) == ADJ_OK,
              "q%d: %s", qx[i], err);
        ref = run_cjpeg(cjpeg, dir, &im, qx[i], &rlen);
        CHECK(ref && mine && mlen == rlen && memcmp(mine, ref, mlen) == 0,
              "q%d: bytes differ from cjpeg", qx[i]);
        if (mine)
            check_jpeg_structure(mine, mlen, im.w, im.h, qx[i], "extreme q");
        img_rgb rt = {0, 0, NULL}, dj = {0, 0, NULL};
        CHECK(img_jpeg_roundtrip(&im, qx[i], &rt, err, sizeof err) == ADJ_OK &&
                  ref && run_djpeg(djpeg, dir, ref, rlen, "", &dj) == 0 && same_image(&rt, &dj),
              "q%d: roundtrip != djpeg", qx[i]);
        img_free(&rt);
        img_free(&dj);
        free(mine);
        free(ref);
    }
    img_free(&im);

    /* The match is not an accident of the settings: djpeg's non-fancy
     * upsampling or fast IDCT give other pixels on a smooth image. */
    im = make_image(231, 231, PAT_MIXED, 3);
    uint8_t *ref;
    size_t rlen;
    img_rgb rt = {0, 0, NULL}, alt = {0, 0, NULL};
    ref = run_cjpeg(cjpeg, dir, &im, 75, &rlen);
    CHECK(ref && img_jpeg_roundtrip(&im, 75, &rt, err, sizeof err) == ADJ_OK, "q75 mixed");
    if (ref && rt.px) {
        CHECK(run_djpeg(djpeg, dir, ref, rlen, "-nosmooth", &alt) == 0 && !same_image(&rt, &alt),
              "djpeg -nosmooth should differ from the fancy-upsampled round trip");
        img_free(&alt);
        /* -dct fast comes after -dct int on the command line and wins */
        CHECK(run_djpeg(djpeg, dir, ref, rlen, "-dct fast", &alt) == 0 && !same_image(&rt, &alt),
              "djpeg -dct fast should differ from the accurate IDCT");
        img_free(&alt);
    }
    img_free(&rt);
    free(ref);
    img_free(&im);

    /* other JPEGs from cjpeg decode as djpeg decodes them: progressive, greyscale */
    im = make_image(37, 19, PAT_MIXED, 12);
    static const char *kinds[] = {"-progressive", "-grayscale", "-sample 1x1"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        img_rgb dec = {0, 0, NULL}, dj = {0, 0, NULL};
        ref = run_cjpeg_args(cjpeg, dir, &im, 80, kinds[i], &rlen);
        CHECK(ref && img_decode(ref, rlen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK &&
                  run_djpeg(djpeg, dir, ref, rlen, "", &dj) == 0 && same_image(&dec, &dj),
              "cjpeg %s: img_decode != djpeg: %s", kinds[i], err);
        if (i == 1 && dec.px) {
            int grey = 1;
            for (int k = 0; k < dec.w * dec.h; k++)
                grey &= dec.px[3 * k] == dec.px[3 * k + 1] && dec.px[3 * k] == dec.px[3 * k + 2];
            CHECK(grey, "greyscale JPEG replicated to RGB");
        }
        img_free(&dec);
        img_free(&dj);
        free(ref);
    }
    /* a progressive JPEG of 568 scans: TJFLAG_LIMITSCANS refuses it (over
     * 500) although djpeg decodes it */
    {
        img_rgb dec = {0, 0, NULL}, dj = {0, 0, NULL};
        ref = many_scans_jpeg(&im, &rlen);
        CHECK(ref && run_djpeg(djpeg, dir, ref, rlen, "", &dj) == 0 && dj.w == im.w,
              "568-scan JPEG made and decodable by djpeg");
        if (ref) {
            memset(err, 0, sizeof err);
            int rc = img_decode(ref, rlen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
            CHECK(rc == ADJ_ERR_FORMAT && strstr(err, "500 scans") && dec.px == NULL,
                  "568 scans refused: rc %d: %s", rc, err);
        }
        img_free(&dj);
        free(ref);
    }
    img_free(&im);

    /* bad arguments */
    uint8_t *o;
    size_t ol;
    im = make_image(8, 8, PAT_GRADIENT, 1);
    CHECK(img_encode_jpeg(&im, 0, &o, &ol, err, sizeof err) == ADJ_ERR_ARG, "quality 0");
    CHECK(img_encode_jpeg(&im, 101, &o, &ol, err, sizeof err) == ADJ_ERR_ARG, "quality 101");
    CHECK(img_encode_jpeg(NULL, 75, &o, &ol, err, sizeof err) == ADJ_ERR_ARG, "NULL image");
    img_free(&im);
}

static void test_png_roundtrip(void)
{
    char err[ADJ_ERRLEN];
    static const int sizes[][2] = {{231, 231}, {37, 19}, {1, 1}, {300, 2}};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int pat = 0; pat < 4; pat++) {
            img_rgb im = make_image(sizes[si][0], sizes[si][1], pat, 77 + (uint64_t)pat);
            uint8_t *png = NULL;
            size_t len = 0;
            int rc = img_encode_png(&im, &png, &len, err, sizeof err);
            CHECK(rc == ADJ_OK && len > 8 && img_sniff(png, len) == IMG_FMT_PNG,
                  "png encode %s %dx%d: %s", pat_name[pat], im.w, im.h, err);
            if (rc) {
                img_free(&im);
                continue;
            }
            img_format f;
            int w = 0, h = 0;
            CHECK(img_probe(png, len, &f, &w, &h, err, sizeof err) == ADJ_OK && f == IMG_FMT_PNG &&
                      w == im.w && h == im.h, "png probe %dx%d", w, h);
            img_rgb dec = {0, 0, NULL};
            CHECK(img_decode(png, len, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK &&
                      same_image(&im, &dec), "png round trip %s %dx%d: %s", pat_name[pat],
                  im.w, im.h, err);
            img_free(&dec);
            free(png);
            img_free(&im);
        }
}

static void test_png_variants(void)
{
    char err[ADJ_ERRLEN];
    enum { W = 13, H = 7 };
    uint8_t data[H * W * 8];
    uint64_t seed = 99;
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)tu_rand(&seed);
    uint8_t *png;
    size_t len;
    img_rgb dec;

    /* 8-bit grey: replicated */
    png = write_png_raw(W, H, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, data, W, NULL, 0,
                        NULL, 0, &len);
    CHECK(png && img_decode(png, len, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK,
          "grey png: %s", err);
    if (png && dec.px) {
        int ok = dec.w == W && dec.h == H;
        for (int i = 0; ok && i < W * H; i++)
            ok = dec.px[3 * i] == data[i] && dec.px[3 * i + 1] == data[i] && dec.px[3 * i + 2] == data[i];
        CHECK(ok, "grey replicated to RGB");
        img_free(&dec);
    }
    free(png);

    /* 8-bit grey + alpha: alpha dropped, grey kept even where alpha is 0 */
    png = write_png_raw(W, H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, data, 2 * W,
                        NULL, 0, NULL, 0, &len);
    CHECK(png && img_decode(png, len, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK,
          "grey+alpha png: %s", err);
    if (png && dec.px) {
        int ok = 1;
        for (int i = 0; ok && i < W * H; i++)
            ok = dec.px[3 * i] == data[2 * i] && dec.px[3 * i + 2] == data[2 * i];
        CHECK(ok, "grey+alpha: grey replicated, alpha dropped");
        img_free(&dec);
    }
    free(png);

    /* RGBA: alpha dropped, not composited (alpha 0 keeps its colour) */
    uint8_t rgba[H * W * 4];
    memcpy(rgba, data, sizeof rgba);
    rgba[3] = 0;       /* pixel 0 fully transparent */
    rgba[7] = 255;
    png = write_png_raw(W, H, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, rgba, 4 * W, NULL,
                        0, NULL, 0, &len);
    CHECK(png && img_decode(png, len, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK,
          "rgba png: %s", err);
    if (png && dec.px) {
        int ok = 1;
        for (int i = 0; ok && i < W * H; i++)
            ok = memcmp(dec.px + 3 * i, rgba + 4 * i, 3) == 0;
        CHECK(ok, "rgba: alpha dropped, colours unchanged");
        img_free(&dec);
    }
    free(png);

    /* 16-bit grey: v * 255 / 65535 rounded (0x12ff -> 19, where the high byte is 18) */
    static const uint16_t g16[4] = {0x0000, 0x12ff, 0x8080, 0xffff};
    static const uint8_t g8[4] = {0, 19, 128, 255};
    uint8_t raw16[8];
    for (int i = 0; i < 4; i++) {
        raw16[2 * i] = (uint8_t)(g16[i] >> 8);
        raw16[2 * i + 1] = (uint8_t)g16[i];
    }
    png = write_png_raw(4, 1, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, raw16, 8, NULL, 0,
                        NULL, 0, &len);
    CHECK(png && img_decode(png, len, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK,
          "16-bit grey png: %s", err);
    if (png && dec.px) {
        int ok = 1;
        for (int i = 0; i < 4; i++)
            ok &= dec.px[3 * i] == g8[i] && dec.px[3 * i + 1] == g8[i] && dec.px[3 * i + 2] == g8[i];
        CHECK(ok, "16-bit reduced with rounding: %d %d %d %d", dec.px[0], dec.px[3], dec.px[6],
              dec.px[9]);
        img_free(&dec);
    }
    free(png);

    /* 16-bit RGB */
    png = write_png_raw(W, H, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, data, 6 * W, NULL, 0,
                        NULL, 0, &len);
    CHECK(png && img_decode(png, len, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK,
          "16-bit rgb png: %s", err);
    if (png && dec.px) {
        int ok = 1;
        for (int i = 0; ok && i < W * H * 3; i++) {
            unsigned v = (unsigned)data[2 * i] << 8 | data[2 * i + 1];
            ok = dec.px[i] == (v * 255 + 32767) / 65535;
        }
        CHECK(ok, "16-bit rgb reduced with rounding");
        img_free(&dec);
    }
    free(png);

    /* 1-bit grey: 0 -> 0, 1 -> 255 */
    uint8_t bits[H * 2];
    for (int y = 0; y < H; y++) {
        bits[2 * y] = 0xa5;
        bits[2 * y + 1] = 0xf0;
    }
    png = write_png_raw(12, H, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, bits, 2, NULL, 0,
                        NULL, 0, &len);
    CHECK(png && img_decode(png, len, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK,
          "1-bit png: %s", err);
    if (png && dec.px) {
        int ok = dec.w == 12;
        for (int x = 0; ok && x < 12; x++) {
            int bit = (bits[x / 8] >> (7 - x % 8)) & 1;
            ok = dec.px[3 * x] == (bit ? 255 : 0) && dec.px[3 * x + 1] == dec.px[3 * x];
        }
        CHECK(ok, "1-bit grey expanded to 0/255");
        img_free(&dec);
    }
    free(png);

    /* palette with transparency: colours from the palette, tRNS dropped */
    png_color pal[4] = {{10, 20, 30}, {200, 100, 0}, {0, 255, 0}, {1, 2, 3}};
    uint8_t trans[4] = {0, 128, 255, 255};
    uint8_t idx[H * W];
    for (int i = 0; i < W * H; i++)
        idx[i] = (uint8_t)(data[i] % 4);
    png = write_png_raw(W, H, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, W, pal, 4,
                        trans, 4, &len);
    CHECK(png && img_decode(png, len, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK,
          "palette png: %s", err);
    if (png && dec.px) {
        int ok = 1;
        for (int i = 0; ok && i < W * H; i++) {
            const png_color *c = &pal[idx[i]];
            ok = dec.px[3 * i] == c->red && dec.px[3 * i + 1] == c->green &&
                 dec.px[3 * i + 2] == c->blue;
        }
        CHECK(ok, "palette + tRNS -> RGB from the palette");
        img_free(&dec);
    }
    free(png);

    /* Adam7 interlaced RGB comes back exact */
    img_rgb im = make_image(37, 19, PAT_NOISE, 5);
    png = write_png_raw(37, 19, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, im.px, 37 * 3, NULL,
                        0, NULL, 0, &len);
    CHECK(png && img_decode(png, len, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK &&
              same_image(&im, &dec), "interlaced png: %s", err);
    img_free(&dec);
    free(png);
    img_free(&im);
}

static void test_ppm(void)
{
    char err[ADJ_ERRLEN];
    img_rgb im = make_image(37, 19, PAT_NOISE, 11), dec = {0, 0, NULL};
    size_t len;
    uint8_t *ppm = ppm_bytes(&im, "a comment with 255 and 12 34 numbers", &len);
    img_format f;
    int w, h;
    CHECK(img_probe(ppm, len, &f, &w, &h, err, sizeof err) == ADJ_OK && f == IMG_FMT_PPM &&
              w == 37 && h == 19, "ppm probe with comments: %s", err);
    CHECK(img_decode(ppm, len, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_OK &&
              same_image(&im, &dec), "ppm round trip with comments: %s", err);
    img_free(&dec);

    /* short pixel block */
    memset(err, 0, sizeof err);
    dec.w = 123;
    CHECK(img_decode(ppm, len - 1, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err) == ADJ_ERR_FORMAT &&
              strstr(err, "truncated PPM"), "short ppm: %s", err);
    CHECK(dec.w == 123 && dec.px == NULL, "output untouched on failure");
    free(ppm);
    img_free(&im);

    /* trailing bytes after the pixel block are ignored */
    static const char extra[] = "P6 2 1 255\n\x01\x02\x03\x04\x05\x06trailing";
    CHECK(img_decode((const uint8_t *)extra, sizeof extra - 1, 100, &dec, err, sizeof err) == ADJ_OK &&
              dec.w == 2 && dec.px[5] == 6, "ppm with trailing data: %s", err);
    img_free(&dec);

    /* P5 greyscale replicated */
    static const char pgm[] = "P5\n# grey\n3 1\n255\n\x00\x80\xff";
    CHECK(img_decode((const uint8_t *)pgm, sizeof pgm - 1, 100, &dec, err, sizeof err) == ADJ_OK &&
              dec.w == 3 && dec.h == 1 && dec.px[0] == 0 && dec.px[3] == 0x80 && dec.px[4] == 0x80 &&
              dec.px[5] == 0x80 && dec.px[8] == 0xff, "P5 grey: %s", err);
    img_free(&dec);

    static const struct {
        const char *bytes;
        int status;
        const char *msg;
    } bad[] = {
        {"P6\n2 2\n65535\n", ADJ_ERR_UNSUPPORTED, "maxval 65535"},
        {"P6\n2 2\n15\nxxxxxxxxxxxx", ADJ_ERR_UNSUPPORTED, "maxval 15"},
        {"P6\n0 2\n255\n", ADJ_ERR_FORMAT, "0 x 2"},
        {"P6\nab 2\n255\n", ADJ_ERR_FORMAT, "not a number"},
        {"P6\n2 2", ADJ_ERR_FORMAT, "no maxval"},
        {"P6\n2 2 255", ADJ_ERR_FORMAT, "no pixel data"},
        {"P6\n99999999999 2\n255\n", ADJ_ERR_FORMAT, "too large"},
        {"P6\n100000 100000\n255\n", ADJ_ERR_LIMIT, "over the limit"},
        {"P6\n2 2\n255\nabc", ADJ_ERR_FORMAT, "has 3 of 12 bytes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(err, 0, sizeof err);
        int rc = img_decode((const uint8_t *)bad[i].bytes, strlen(bad[i].bytes),
                            IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
        CHECK(rc == bad[i].status && strstr(err, bad[i].msg), "bad ppm %zu: rc %d (%s), want %d '%s'",
              i, rc, err, bad[i].status, bad[i].msg);
    }
}

static void test_hostile(void)
{
    char err[ADJ_ERRLEN];
    img_rgb dec = {0, 0, NULL};
    int rc;

    /* empty body, garbage */
    memset(err, 0, sizeof err);
    rc = img_decode((const uint8_t *)"", 0, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_FORMAT && strcmp(err, "empty body") == 0, "empty: %d %s", rc, err);
    rc = img_decode(NULL, 0, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_FORMAT, "NULL empty: %d", rc);
    rc = img_decode(NULL, 5, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_ARG, "NULL with length: %d", rc);
    uint8_t garbage[1000];
    uint64_t seed = 4;
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (uint8_t)tu_rand(&seed);
    garbage[0] = 'x';
    memset(err, 0, sizeof err);
    rc = img_decode(garbage, sizeof garbage, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_UNSUPPORTED && strstr(err, "unrecognised image format (not JPEG, PNG or PPM)"),
          "garbage: %d %s", rc, err);
    CHECK(img_probe(garbage, sizeof garbage, NULL, NULL, NULL, err, sizeof err) == ADJ_ERR_UNSUPPORTED,
          "probe garbage");
    /* a JPEG signature followed by garbage */
    garbage[0] = 0xff;
    garbage[1] = 0xd8;
    garbage[2] = 0xff;
    rc = img_decode(garbage, sizeof garbage, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_FORMAT && strstr(err, "JPEG"), "jpeg magic + garbage: %d %s", rc, err);
    /* a PNG signature followed by garbage */
    memcpy(garbage, "\x89PNG\r\n\x1a\n", 8);
    rc = img_decode(garbage, sizeof garbage, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_FORMAT && strstr(err, "PNG"), "png magic + garbage: %d %s", rc, err);
    CHECK(dec.px == NULL, "nothing decoded");

    /* ---- JPEG */
    img_rgb im = make_image(64, 48, PAT_MIXED, 8);
    uint8_t *jpg;
    size_t jlen;
    CHECK(img_encode_jpeg(&im, 75, &jpg, &jlen, err, sizeof err) == ADJ_OK, "encode: %s", err);
    img_format f;
    int w, h;
    CHECK(img_probe(jpg, jlen, &f, &w, &h, err, sizeof err) == ADJ_OK && f == IMG_FMT_JPEG &&
              w == 64 && h == 48, "jpeg probe");
    /* truncated at several points: never a half-decoded image */
    size_t cuts[] = {jlen - 2, jlen * 2 / 3, jlen / 2, 200, 20, 4};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        memset(err, 0, sizeof err);
        dec.w = 77;
        rc = img_decode(jpg, cuts[i], IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
        CHECK(rc == ADJ_ERR_FORMAT && strstr(err, "truncated or corrupt JPEG") && dec.w == 77 &&
                  dec.px == NULL, "JPEG cut at %zu of %zu: rc %d: %s", cuts[i], jlen, rc, err);
    }
    /* corrupt entropy data (not truncated) */
    uint8_t *bad = malloc(jlen);
    memcpy(bad, jpg, jlen);
    size_t sof = jpeg_find_sof(bad, jlen);
    for (size_t i = jlen - 60; i < jlen - 40; i++)
        bad[i] = 0xff;
    rc = img_decode(bad, jlen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_FORMAT, "corrupt JPEG data: rc %d: %s", rc, err);
    img_free(&dec);
    /* a header claiming 65000 x 65000 (the SOF limit is 65535 a side, libjpeg's 65500):
     * refused from the header, before any allocation */
    memcpy(bad, jpg, jlen);
    CHECK(sof > 0, "SOF found");
    if (sof) {
        bad[sof + 5] = 65000 >> 8;
        bad[sof + 6] = 65000 & 255;
        bad[sof + 7] = 65000 >> 8;
        bad[sof + 8] = 65000 & 255;
        memset(err, 0, sizeof err);
        rc = img_decode(bad, jlen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
        CHECK(rc == ADJ_ERR_LIMIT &&
                  strcmp(err, "image is 65000 x 65000 pixels, over the limit of 67108864") == 0,
              "JPEG 65000x65000: rc %d: %s", rc, err);
        CHECK(img_probe(bad, jlen, &f, &w, &h, err, sizeof err) == ADJ_OK && w == 65000 && h == 65000,
              "probe reads the claimed size");
        /* 9000 x 8000 = 72 M pixels: just over the default limit */
        bad[sof + 5] = 8000 >> 8;
        bad[sof + 6] = 8000 & 255;
        bad[sof + 7] = 9000 >> 8;
        bad[sof + 8] = 9000 & 255;
        rc = img_decode(bad, jlen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
        CHECK(rc == ADJ_ERR_LIMIT && strstr(err, "9000 x 8000"), "JPEG 9000x8000: %d %s", rc, err);
    }
    free(bad);
    /* a CMYK (Adobe YCCK) JPEG: refused as unsupported */
    {
        tjhandle tj = tjInitCompress();
        uint8_t cmyk[16 * 16 * 4];
        for (size_t i = 0; i < sizeof cmyk; i++)
            cmyk[i] = (uint8_t)(i * 7);
        unsigned char *cj = NULL;
        unsigned long cjlen = 0;
        CHECK(tj && tjCompress2(tj, cmyk, 16, 0, 16, TJPF_CMYK, &cj, &cjlen, TJSAMP_444, 90, 0) == 0,
              "CMYK JPEG made");
        if (cj) {
            memset(err, 0, sizeof err);
            rc = img_decode(cj, cjlen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
            CHECK(rc == ADJ_ERR_UNSUPPORTED && strstr(err, "CMYK"), "CMYK: rc %d: %s", rc, err);
        }
        tjFree(cj);
        if (tj)
            tjDestroy(tj);
    }
    /* the limit is width * height against max_pixels */
    rc = img_decode(jpg, jlen, 64 * 48 - 1, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_LIMIT && strstr(err, "64 x 48"), "JPEG over a small limit: %s", err);
    rc = img_decode(jpg, jlen, 64 * 48, &dec, err, sizeof err);
    CHECK(rc == ADJ_OK && dec.w == 64, "JPEG exactly at the limit: %s", err);
    img_free(&dec);
    free(jpg);

    /* ---- PNG */
    uint8_t *png;
    size_t plen;
    CHECK(img_encode_png(&im, &png, &plen, err, sizeof err) == ADJ_OK, "png: %s", err);
    size_t ihdr = png_find_chunk(png, plen, "IHDR"), idat = png_find_chunk(png, plen, "IDAT");
    CHECK(ihdr == 8 && idat > 0, "png chunks %zu %zu", ihdr, idat);
    bad = malloc(plen + 64);
    /* IHDR claiming 100000 x 100000, CRC fixed: LIMIT before allocation */
    memcpy(bad, png, plen);
    put_be32(bad + 16, 100000);
    put_be32(bad + 20, 100000);
    png_fix_crc(bad, ihdr);
    memset(err, 0, sizeof err);
    rc = img_decode(bad, plen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_LIMIT &&
              strcmp(err, "image is 100000 x 100000 pixels, over the limit of 67108864") == 0,
          "PNG 100000x100000: rc %d: %s", rc, err);
    CHECK(img_probe(bad, plen, &f, &w, &h, err, sizeof err) == ADJ_OK && w == 100000,
          "png probe reads the claimed size");
    /* the same without fixing the CRC: a CRC error */
    memcpy(bad, png, plen);
    put_be32(bad + 16, 100000);
    put_be32(bad + 20, 100000);
    rc = img_decode(bad, plen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_FORMAT && strstr(err, "CRC"), "IHDR bad CRC: rc %d: %s", rc, err);
    /* a byte inside the IDAT data flipped, CRC not fixed */
    memcpy(bad, png, plen);
    bad[idat + 8 + be32(png + idat) / 2] ^= 0x10;
    rc = img_decode(bad, plen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_FORMAT && strstr(err, "corrupt PNG"), "IDAT byte flipped: rc %d: %s", rc, err);
    /* only the IDAT CRC wrong (data intact): still refused */
    memcpy(bad, png, plen);
    bad[idat + 8 + be32(png + idat)] ^= 0x01;
    rc = img_decode(bad, plen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_FORMAT && strstr(err, "CRC"), "IDAT CRC wrong: rc %d: %s", rc, err);
    /* IEND's CRC wrong */
    memcpy(bad, png, plen);
    bad[plen - 1] ^= 0x01;
    rc = img_decode(bad, plen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_FORMAT && strstr(err, "CRC"), "IEND CRC wrong: rc %d: %s", rc, err);
    /* an ancillary chunk (tEXt) after IHDR: fine with its CRC, refused without */
    static const char text[] = "Comment\0hello";
    size_t tlen = sizeof text - 1, at = 8 + 25;
    memcpy(bad, png, at);
    put_be32(bad + at, (uint32_t)tlen);
    memcpy(bad + at + 4, "tEXt", 4);
    memcpy(bad + at + 8, text, tlen);
    memcpy(bad + at + 12 + tlen, png + at, plen - at);
    png_fix_crc(bad, at);
    rc = img_decode(bad, plen + 12 + tlen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_OK && same_image(&dec, &im), "PNG with a good tEXt chunk: %s", err);
    img_free(&dec);
    bad[at + 8 + tlen] ^= 0x80;
    rc = img_decode(bad, plen + 12 + tlen, IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_FORMAT && strstr(err, "CRC"), "tEXt with a bad CRC: rc %d: %s", rc, err);
    /* truncated: inside IDAT, before IEND, inside IHDR */
    size_t pcuts[] = {plen - 12, idat + 8 + be32(png + idat) / 2, 20};
    for (size_t i = 0; i < sizeof pcuts / sizeof pcuts[0]; i++) {
        memset(err, 0, sizeof err);
        dec.w = 55;
        rc = img_decode(png, pcuts[i], IMG_DEFAULT_MAX_PIXELS, &dec, err, sizeof err);
        CHECK(rc == ADJ_ERR_FORMAT && strstr(err, "PNG") && dec.w == 55 && dec.px == NULL,
              "PNG cut at %zu of %zu: rc %d: %s", pcuts[i], plen, rc, err);
    }
    dec.w = 0;
    /* over a small limit */
    rc = img_decode(png, plen, 64 * 48 - 1, &dec, err, sizeof err);
    CHECK(rc == ADJ_ERR_LIMIT && strstr(err, "64 x 48"), "PNG over a small limit: %s", err);
    free(bad);
    free(png);
    img_free(&im);

    /* error text is optional */
    CHECK(img_decode(garbage, 3, 10, &dec, NULL, 0) != ADJ_OK, "NULL err buffer is fine");
}

/* The column of the first pixel >= 128 in row y of x, or -1. */
static int first_bright(const img_rgb *x, int y)
{
    for (int i = 0; i < x->w; i++)
        if (x->px[((size_t)y * x->w + i) * 3] >= 128)
            return i;
    return -1;
}

/* img_prepare's crop as the whole image resized by stb, then cut (image.c's
 * size and offset rules); 0 when equal, else the first differing byte + 1. */
static size_t prepare_vs_stb(const img_rgb *im, int scale, int size)
{
    long w = im->w, h = im->h, s = w < h ? w : h, l = w < h ? h : w;
    long scaled = (l * scale + s / 2) / s;
    long sw = w < h ? scale : scaled, sh = w < h ? scaled : scale;
    long ox = (sw - size) / 2, oy = (sh - size) / 2;
    char err[ADJ_ERRLEN];
    img_rgb x = {0, 0, NULL};
    uint8_t *full = malloc((size_t)sw * sh * 3);
    if (!full || img_prepare(im, scale, size, &x, err, sizeof err) ||
        !stbir_resize_uint8_generic(im->px, im->w, im->h, 0, full, (int)sw, (int)sh, 0, 3,
                                    STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP,
                                    STBIR_FILTER_TRIANGLE, STBIR_COLORSPACE_LINEAR, NULL))
        abort();
    size_t bad = 0;
    for (int y = 0; y < size && !bad; y++)
        for (int i = 0; i < size * 3 && !bad; i++)
            if (x.px[(size_t)y * size * 3 + i] != full[((size_t)(oy + y) * sw + ox) * 3 + i])
                bad = (size_t)y * size * 3 + i + 1;
    free(full);
    img_free(&x);
    return bad;
}

/* img_prepare against stb on random sizes (mostly shrinking, some enlarging). */
static void test_prepare_stb(void)
{
    uint64_t r = 12345;
    for (int t = 0; t < 60; t++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        int w = 40 + (int)((r >> 33) % 1100), h = 40 + (int)((r >> 13) % 900);
        int scale = t % 3 == 0 ? 256 : t % 3 == 1 ? 232 : 64 + (int)((r >> 45) % 200);
        int size = scale - (int)((r >> 51) % 40);
        if (size < 1)
            size = 1;
        img_rgb im = make_image(w, h, t % 2 ? PAT_NOISE : PAT_MIXED, 100 + t);
        size_t bad = prepare_vs_stb(&im, scale, size);
        CHECK(!bad, "prepare %dx%d to %d, crop %d: byte %zu differs from stb's resize and cut",
              w, h, scale, size, bad ? bad - 1 : 0);
        img_free(&im);
    }
}

static void test_prepare(void)
{
    char err[ADJ_ERRLEN];
    img_rgb x = {0, 0, NULL};

    /* sizes */
    static const int dims[][2] = {{500, 375}, {375, 500}, {100, 50}, {37, 19}, {231, 300},
                                  {1000, 999}, {256, 256}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        img_rgb im = make_image(dims[i][0], dims[i][1], PAT_MIXED, 20 + i);
        CHECK(img_prepare(&im, 256, 231, &x, err, sizeof err) == ADJ_OK && x.w == 231 && x.h == 231,
              "prepare %dx%d: %s", im.w, im.h, err);
        img_free(&x);
        CHECK(img_prepare(&im, 256, 221, &x, err, sizeof err) == ADJ_OK && x.w == 221 && x.h == 221,
              "prepare 221 %dx%d: %s", im.w, im.h, err);
        img_free(&x);
        img_free(&im);
    }

    /* identity: already size x size with scale_size == size */
    img_rgb im = make_image(231, 231, PAT_NOISE, 3);
    CHECK(img_prepare(&im, 231, 231, &x, err, sizeof err) == ADJ_OK && same_image(&im, &x),
          "identity 231: %s", err);
    img_free(&x);
    img_free(&im);
    /* no scaling needed (shorter side already scale_size): a plain centred crop */
    im = make_image(256, 300, PAT_NOISE, 4);
    CHECK(img_prepare(&im, 256, 231, &x, err, sizeof err) == ADJ_OK, "crop only: %s", err);
    if (x.px) {
        int ok = 1; /* offsets (256-231)/2 = 12, (300-231)/2 = 34 */
        for (int y = 0; ok && y < 231; y++)
            ok = memcmp(x.px + (size_t)y * 231 * 3, im.px + ((size_t)(34 + y) * 256 + 12) * 3,
                        231 * 3) == 0;
        CHECK(ok, "crop-only prepare is the centred square, offsets rounded down");
    }
    img_free(&x);
    img_free(&im);

    /* 512 x 384, left half black, right half white. Scaled to 341 x 256
     * (512 * 256 / 384 = 341.33 -> 341), cropped at x = (341 - 231) / 2 = 55.
     * The edge at x = 256 maps to 256 * 341 / 512 = 170.5 in the scaled image,
     * 115.5 in the crop: the centre of crop pixel 115. Shrinking by 2/3, the
     * tent filter reaches 1.5 source pixels, i.e. one output pixel: so columns
     * <= 114 are black, column 115 is mid-grey, columns >= 116 are white. */
    CHECK(img_alloc(&im, 512, 384) == ADJ_OK, "alloc");
    for (int y = 0; y < 384; y++)
        for (int i = 0; i < 512; i++)
            memset(im.px + ((size_t)y * 512 + i) * 3, i < 256 ? 0 : 255, 3);
    CHECK(img_prepare(&im, 256, 231, &x, err, sizeof err) == ADJ_OK && x.w == 231, "b/w: %s", err);
    if (x.px) {
        /* column 115 sits at 127.5 exactly: float noise in the vertical
         * weights rounds it to 127 or 128 depending on the row */
        int rows_same = 1;
        for (int y = 1; y < 231; y++)
            for (int i = 0; i < 231 * 3; i++)
                rows_same &= abs(x.px[i] - x.px[(size_t)y * 231 * 3 + i]) <= 1;
        CHECK(rows_same, "every row of the b/w crop is the same (within 1)");
        int black = 1, white = 1;
        for (int i = 0; i <= 114; i++)
            black &= x.px[3 * i] == 0 && x.px[3 * i + 1] == 0 && x.px[3 * i + 2] == 0;
        for (int i = 116; i < 231; i++)
            white &= x.px[3 * i] == 255 && x.px[3 * i + 2] == 255;
        CHECK(black, "columns 0..114 black (114: %d)", x.px[3 * 114]);
        CHECK(white, "columns 116..230 white (116: %d)", x.px[3 * 116]);
        CHECK(x.px[3 * 115] >= 96 && x.px[3 * 115] <= 160, "column 115 mid-grey: %d", x.px[3 * 115]);
        CHECK(first_bright(&x, 100) >= 115 && first_bright(&x, 100) <= 116, "edge at %d",
              first_bright(&x, 100));
    }
    img_free(&x);
    img_free(&im);

    /* the same turned on its side: top black, bottom white -> rows flip at 115 */
    CHECK(img_alloc(&im, 384, 512) == ADJ_OK, "alloc");
    for (int y = 0; y < 512; y++)
        memset(im.px + (size_t)y * 384 * 3, y < 256 ? 0 : 255, 384 * 3);
    CHECK(img_prepare(&im, 256, 231, &x, err, sizeof err) == ADJ_OK, "portrait: %s", err);
    if (x.px)
        CHECK(x.px[(114 * 231 + 7) * 3] == 0 && x.px[(116 * 231 + 7) * 3] == 255 &&
                  x.px[(115 * 231 + 200) * 3] >= 96 && x.px[(115 * 231 + 200) * 3] <= 160,
              "portrait edge at row 115");
    img_free(&x);
    img_free(&im);

    /* a constant image stays constant (weights normalised), shrinking and enlarging */
    static const int cdims[][2] = {{300, 200}, {100, 50}, {1000, 751}};
    for (size_t i = 0; i < sizeof cdims / sizeof cdims[0]; i++) {
        CHECK(img_alloc(&im, cdims[i][0], cdims[i][1]) == ADJ_OK, "alloc");
        for (size_t k = 0; k < (size_t)im.w * im.h; k++) {
            im.px[3 * k] = 10;
            im.px[3 * k + 1] = 128;
            im.px[3 * k + 2] = 250;
        }
        CHECK(img_prepare(&im, 256, 231, &x, err, sizeof err) == ADJ_OK, "constant: %s", err);
        int ok = x.px != NULL;
        for (int k = 0; ok && k < 231 * 231; k++)
            ok = x.px[3 * k] == 10 && x.px[3 * k + 1] == 128 && x.px[3 * k + 2] == 250;
        CHECK(ok, "constant %dx%d stays constant", im.w, im.h);
        img_free(&x);
        img_free(&im);
    }

    /* elongated: 3000 x 3 scales to 256000 x 256 (only the crop is computed);
     * 1 x 70000 would need a side of 17920000 pixels, over 2^24: refused */
    im = make_image(3000, 3, PAT_GRADIENT, 1);
    CHECK(img_prepare(&im, 256, 231, &x, err, sizeof err) == ADJ_OK && x.w == 231, "3000x3: %s", err);
    img_free(&x);
    img_free(&im);
    im = make_image(1, 70000, PAT_GRADIENT, 1);
    CHECK(img_prepare(&im, 256, 231, &x, err, sizeof err) == ADJ_ERR_LIMIT && strstr(err, "elongated"),
          "1x70000: %s", err);
    img_free(&im);

    /* bad sizes */
    im = make_image(50, 50, PAT_GRADIENT, 1);
    CHECK(img_prepare(&im, 231, 256, &x, err, sizeof err) == ADJ_ERR_ARG, "size > scale");
    CHECK(img_prepare(&im, 256, 0, &x, err, sizeof err) == ADJ_ERR_ARG, "size 0");
    CHECK(img_prepare(&im, 0, 0, &x, err, sizeof err) == ADJ_ERR_ARG, "scale 0");
    CHECK(img_prepare(NULL, 256, 231, &x, err, sizeof err) == ADJ_ERR_ARG, "NULL image");
    img_free(&im);
}

int main(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    test_basics();
    test_ppm();
    test_png_roundtrip();
    test_png_variants();
    test_hostile();
    test_prepare();
    test_prepare_stb();
    test_jpeg_reference(dir);
    tu_rmtree(dir);
    return tu_done();
}
