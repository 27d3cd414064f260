/*
 * image.c - the image module (img_*): decoding untrusted bytes, encoding PNG
 * and JPEG, JPG_q, and the model's input crop. See image.h for the contracts.
 *
 * Libraries:
 *   - JPEG decoding: TurboJPEG (libjpeg-turbo 2.1.5). tjDecompressHeader3
 *     first, the pixel limit, then tjDecompress2 with TJFLAG_ACCURATEDCT
 *     (= djpeg's default -dct int), fancy upsampling (djpeg's default),
 *     TJFLAG_LIMITSCANS and TJFLAG_STOPONWARNING (a warning such as "Premature
 *     end of JPEG file" fails the decode instead of returning grey blocks).
 *   - JPEG encoding: the libjpeg API, configured exactly as cjpeg does it
 *     (jpeg_set_defaults for JCS_RGB input, then jpeg_set_quality(q, FALSE),
 *     JDCT_ISLOW), into a destination manager of our own so that an error
 *     half-way cannot leak or double-free the output buffer.
 *   - PNG: libpng's full API (not the simplified one: that one treats
 *     16-bit data as linear light and gamma-encodes it, and cannot be told to
 *     fail on a bad CRC in an ancillary chunk). Every CRC error is fatal.
 *   - Resampling: stb_image_resize (its implementation lives in this file).
 *
 * Error handling: libjpeg and libpng report errors through longjmp. Each
 * setjmp lives in a small static *_run() function whose state is in a
 * struct owned by its caller, so nothing the caller frees afterwards is a
 * local variable modified between setjmp and longjmp.
 */
#include "image.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <turbojpeg.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
/* stb's internal asserts are off: with the triangle filter, shrinking by
 * some ratios (e.g. 500 -> 341) trips `total < 1.1f` in
 * stbir__normalize_downsample_coefficients although the weights are then
 * normalised correctly (nothings/stb issue #1449), and a debug or sanitizer
 * build must not abort on it. */
#define STBIR_ASSERT(x) ((void)0)
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include "stb_image_resize.h"
#pragma GCC diagnostic pop

/* Longest side img_prepare will scale to: beyond 2^24 a float (stb's
 * coordinates) no longer holds every integer pixel position. */
#define IMG_MAX_SCALED_SIDE (1L << 24)

/* ---------------------------------------------------------------- basics */

int img_alloc(img_rgb *im, int w, int h)
{
    if (!im || w < 1 || h < 1 || (size_t)w > SIZE_MAX / 3 / (size_t)h)
        return ADJ_ERR_ARG;
    uint8_t *px = malloc((size_t)w * (size_t)h * 3);
    if (!px)
        return ADJ_ERR_NOMEM;
    im->w = w;
    im->h = h;
    im->px = px;
    return ADJ_OK;
}

void img_free(img_rgb *im)
{
    if (!im)
        return;
    free(im->px);
    im->px = NULL;
    im->w = im->h = 0;
}

int img_copy(const img_rgb *src, img_rgb *dst)
{
    if (!src || !src->px || !dst)
        return ADJ_ERR_ARG;
    img_rgb t;
    int rc = img_alloc(&t, src->w, src->h);
    if (rc)
        return rc;
    memcpy(t.px, src->px, (size_t)src->w * (size_t)src->h * 3);
    *dst = t;
    return ADJ_OK;
}

/* A usable image: positive size and pixels. */
static int img_valid(const img_rgb *im)
{
    return im && im->px && im->w > 0 && im->h > 0;
}

/* ADJ_ERR_LIMIT with the standard message if w x h is over max_pixels. */
static int check_limit(long w, long h, size_t max_pixels, char *err, size_t errsz)
{
    if ((unsigned long long)w * (unsigned long long)h > (unsigned long long)max_pixels)
        return adj_fail(err, errsz, ADJ_ERR_LIMIT,
                        "image is %ld x %ld pixels, over the limit of %zu", w, h, max_pixels);
    return ADJ_OK;
}

/* ------------------------------------------------------------------- PPM */

typedef struct {
    int channels;  /* 3 for P6, 1 for P5 */
    int w, h;
    size_t data;   /* offset of the first pixel byte */
} ppm_header;

static int ppm_is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and '#' comments (to the end of the line) from *pos. */
static void ppm_skip(const uint8_t *buf, size_t len, size_t *pos)
{
    while (*pos < len) {
        if (ppm_is_space(buf[*pos])) {
            (*pos)++;
        } else if (buf[*pos] == '#') {
            while (*pos < len && buf[*pos] != '\n' && buf[*pos] != '\r')
                (*pos)++;
        } else {
            break;
        }
    }
}

/* Reads one decimal header field (what names it in messages) into *v. */
static int ppm_number(const uint8_t *buf, size_t len, size_t *pos, const char *what,
                      long *v, char *err, size_t errsz)
{
    ppm_skip(buf, len, pos);
    if (*pos >= len)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "truncated PPM header (no %s)", what);
    if (buf[*pos] < '0' || buf[*pos] > '9')
        return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                        "bad PPM header: %s is not a number (byte 0x%02x at offset %zu)",
                        what, buf[*pos], *pos);
    long n = 0;
    while (*pos < len && buf[*pos] >= '0' && buf[*pos] <= '9') {
        n = n * 10 + (buf[*pos] - '0');
        if (n > INT_MAX)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "bad PPM header: %s is too large", what);
        (*pos)++;
    }
    *v = n;
    return ADJ_OK;
}

/* Parses a binary PPM (P6) or PGM (P5) header; maxval must be 255. */
static int ppm_parse_header(const uint8_t *buf, size_t len, ppm_header *hd,
                            char *err, size_t errsz)
{
    if (len < 2 || buf[0] != 'P' || (buf[1] != '6' && buf[1] != '5'))
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "not a binary PPM/PGM (P6/P5) header");
    size_t pos = 2;
    long w, h, maxval;
    int rc;
    if ((rc = ppm_number(buf, len, &pos, "width", &w, err, errsz)) ||
        (rc = ppm_number(buf, len, &pos, "height", &h, err, errsz)) ||
        (rc = ppm_number(buf, len, &pos, "maxval", &maxval, err, errsz)))
        return rc;
    if (w < 1 || h < 1)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "bad PPM header: image is %ld x %ld pixels", w, h);
    if (maxval < 1 || maxval > 65535)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "bad PPM header: maxval %ld is out of range", maxval);
    if (maxval != 255)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "PPM maxval %ld is not supported (only 255)", maxval);
    if (pos >= len)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "truncated PPM: no pixel data");
    if (!ppm_is_space(buf[pos]))
        return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                        "bad PPM header: no whitespace after maxval (offset %zu)", pos);
    hd->channels = buf[1] == '6' ? 3 : 1;
    hd->w = (int)w;
    hd->h = (int)h;
    hd->data = pos + 1;
    return ADJ_OK;
}

static int ppm_decode(const uint8_t *buf, size_t len, size_t max_pixels, img_rgb *out,
                      char *err, size_t errsz)
{
    ppm_header hd;
    int rc = ppm_parse_header(buf, len, &hd, err, errsz);
    if (rc || (rc = check_limit(hd.w, hd.h, max_pixels, err, errsz)))
        return rc;
    size_t npx = (size_t)hd.w * (size_t)hd.h;
    size_t need = npx * (size_t)hd.channels;
    if (len - hd.data < need)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                        "truncated PPM: the pixel block has %zu of %zu bytes", len - hd.data, need);
    img_rgb im;
    if ((rc = img_alloc(&im, hd.w, hd.h)))
        return adj_fail(err, errsz, rc, "cannot allocate a %d x %d image", hd.w, hd.h);
    const uint8_t *src = buf + hd.data;
    if (hd.channels == 3) {
        memcpy(im.px, src, need);
    } else {
        for (size_t i = 0; i < npx; i++)
            im.px[3 * i] = im.px[3 * i + 1] = im.px[3 * i + 2] = src[i];
    }
    *out = im;
    return ADJ_OK;
}

/* ------------------------------------------------------- JPEG (TurboJPEG) */

/*
 * Reads a JPEG's size and colour space with tjDecompressHeader3. That call
 * returns success without setting anything for a tables-only stream, which
 * is also what a JPEG cut before its frame header looks like: no size is an
 * error here.
 */
static int jpeg_header(tjhandle tj, const uint8_t *buf, size_t len, int *w, int *h,
                       int *colorspace, char *err, size_t errsz)
{
    int pw = 0, ph = 0, subsamp = -1, cs = -1;
    if (tjDecompressHeader3(tj, buf, (unsigned long)len, &pw, &ph, &subsamp, &cs))
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "truncated or corrupt JPEG header: %s",
                        tjGetErrorStr2(tj));
    if (pw < 1 || ph < 1)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                        "truncated or corrupt JPEG header: no frame header (SOF) before the "
                        "end of the data");
    *w = pw;
    *h = ph;
    *colorspace = cs;
    return ADJ_OK;
}

/* A TurboJPEG decompressor for a buffer of len bytes (its API takes an
 * unsigned long). *tj is new: tjDestroy() it. */
static int jpeg_open(size_t len, tjhandle *tj, char *err, size_t errsz)
{
#if SIZE_MAX > ULONG_MAX
    if (len > ULONG_MAX)
        return adj_fail(err, errsz, ADJ_ERR_LIMIT, "JPEG of %zu bytes is too large", len);
#endif
    if (!(*tj = tjInitDecompress()))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot create a JPEG decoder: %s",
                        tjGetErrorStr2(NULL));
    return ADJ_OK;
}

/*
 * The decode work of a JPEG: the 8x8 blocks its scans entropy-decode, summed
 * over the scans (a block of a component counts once per scan that codes
 * that component). A baseline image is one pass over its blocks; each
 * progressive scan is another pass over the blocks of its components, so a
 * file of a few hundred scans over a large image costs hundreds of passes,
 * seconds of CPU, although its pixel count is within the limit.
 *
 * A walk over the marker segments (no entropy decoding): SOF gives the
 * components and their sampling factors, each SOS the components of a
 * scan; entropy-coded data is skipped up to the next marker (0xFF followed
 * by neither 0x00 nor RSTn). The walk stops at EOI, at the end of the data
 * or at anything malformed (libjpeg then fails the decode, every warning
 * being fatal), so *blocks counts at least the scans libjpeg would run
 * before it gives up. Pure: reads buf only.
 */
static unsigned long long jpeg_work_blocks(const uint8_t *buf, size_t len)
{
    unsigned long long comp_blocks[256] = {0}; /* by component id */
    unsigned long long total = 0;
    size_t i = 2; /* after SOI */
    while (i + 4 <= len) {
        if (buf[i] != 0xFF)
            break;
        uint8_t m = buf[i + 1];
        if (m == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0xD9) /* EOI */
            break;
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* no length */
            i += 2;
            continue;
        }
        size_t seg = (size_t)buf[i + 2] << 8 | buf[i + 3];
        if (seg < 2 || i + 2 + seg > len)
            break;
        const uint8_t *p = buf + i + 4;
        size_t plen = seg - 2;
        int is_sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (is_sof && plen >= 6) {
            unsigned h = (unsigned)p[1] << 8 | p[2], w = (unsigned)p[3] << 8 | p[4];
            unsigned nc = p[5], hmax = 1, vmax = 1;
            if (plen < 6 + 3 * (size_t)nc)
                break;
            for (unsigned c = 0; c < nc; c++) {
                unsigned hs = p[6 + 3 * c + 1] >> 4, vs = p[6 + 3 * c + 1] & 15;
                hmax = hs > hmax ? hs : hmax;
                vmax = vs > vmax ? vs : vmax;
            }
            for (unsigned c = 0; c < nc; c++) {
                unsigned hs = p[6 + 3 * c + 1] >> 4, vs = p[6 + 3 * c + 1] & 15;
                unsigned long long cw = ((unsigned long long)w * hs + hmax - 1) / hmax;
                unsigned long long ch = ((unsigned long long)h * vs + vmax - 1) / vmax;
                comp_blocks[p[6 + 3 * c]] = ((cw + 7) / 8) * ((ch + 7) / 8);
            }
        }
        i += 2 + seg;
        if (m != 0xDA) /* SOS */
            continue;
        unsigned ns = plen >= 1 ? p[0] : 0;
        for (unsigned c = 0; c < ns && 1 + 2 * (size_t)c < plen; c++)
            total += comp_blocks[p[1 + 2 * c]];
        /* skip the entropy-coded data */
        while (i + 1 < len && !(buf[i] == 0xFF && buf[i + 1] != 0x00 &&
                                !(buf[i + 1] >= 0xD0 && buf[i + 1] <= 0xD7)))
            i++;
    }
    return total;
}

/* Decodes a JPEG to RGB with the accurate IDCT and fancy upsampling, which
 * is what `djpeg -dct int` (= djpeg's defaults) writes. */
static int jpeg_decode(const uint8_t *buf, size_t len, size_t max_pixels, img_rgb *out,
                       char *err, size_t errsz)
{
    tjhandle tj;
    int rc0 = jpeg_open(len, &tj, err, errsz);
    if (rc0)
        return rc0;
    int w = 0, h = 0, colorspace = TJCS_RGB, rc;
    img_rgb im = {0, 0, NULL};
    if ((rc = jpeg_header(tj, buf, len, &w, &h, &colorspace, err, errsz)))
        goto done;
    if ((rc = check_limit(w, h, max_pixels, err, errsz)))
        goto done;
    unsigned long long work = jpeg_work_blocks(buf, len);
    unsigned long long budget = (unsigned long long)IMG_JPEG_WORK_PASSES * (max_pixels / 64);
    if (work > budget) {
        rc = adj_fail(err, errsz, ADJ_ERR_LIMIT,
                      "JPEG of %d x %d pixels needs %llu block decodes over its scans, over the "
                      "limit of %llu (%d passes over an image of the pixel limit): too many "
                      "progressive scans for its size",
                      w, h, work, budget, IMG_JPEG_WORK_PASSES);
        goto done;
    }
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        rc = adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "CMYK JPEG images are not supported");
        goto done;
    }
    if ((rc = img_alloc(&im, w, h))) {
        rc = adj_fail(err, errsz, rc, "cannot allocate a %d x %d image", w, h);
        goto done;
    }
    if (tjDecompress2(tj, buf, (unsigned long)len, im.px, w, 0, h, TJPF_RGB,
                      TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS | TJFLAG_STOPONWARNING)) {
        rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "truncated or corrupt JPEG: %s",
                      tjGetErrorStr2(tj));
        img_free(&im);
        goto done;
    }
    *out = im;
    rc = ADJ_OK;
done:
    tjDestroy(tj);
    return rc;
}

/* ---------------------------------------------------- JPEG (libjpeg API) */

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us a pointer to it */
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

/* The state of one encode; owned by img_encode_jpeg's frame. */
typedef struct {
    struct jpeg_compress_struct ci;
    jpeg_err je;
    struct jpeg_destination_mgr dst;
    uint8_t *buf;   /* output, grown by doubling; freed by the owner on error */
    size_t cap, len;
    int nomem;
} jpeg_enc;

static void jpeg_on_error(j_common_ptr c)
{
    jpeg_err *je = (jpeg_err *)c->err;
    (*c->err->format_message)(c, je->msg);
    longjmp(je->jb, 1);
}

/* common/ never prints: warnings and trace messages are dropped. */
static void jpeg_on_message(j_common_ptr c, int level)
{
    (void)c;
    (void)level;
}

static void jpeg_on_output(j_common_ptr c)
{
    (void)c;
}

static void jdst_init(j_compress_ptr c)
{
    jpeg_enc *e = c->client_data;
    e->cap = 65536;
    e->buf = malloc(e->cap);
    if (!e->buf) {
        e->nomem = 1;
        ERREXIT1(c, JERR_OUT_OF_MEMORY, 0);
    }
    e->dst.next_output_byte = e->buf;
    e->dst.free_in_buffer = e->cap;
}

/* Called when the buffer is full (free_in_buffer is not trustworthy here). */
static boolean jdst_empty(j_compress_ptr c)
{
    jpeg_enc *e = c->client_data;
    size_t ncap = e->cap * 2;
    uint8_t *nb = ncap > e->cap ? realloc(e->buf, ncap) : NULL;
    if (!nb) {
        e->nomem = 1;
        ERREXIT1(c, JERR_OUT_OF_MEMORY, 1);
    }
    e->buf = nb;
    e->dst.next_output_byte = nb + e->cap;
    e->dst.free_in_buffer = ncap - e->cap;
    e->cap = ncap;
    return TRUE;
}

static void jdst_term(j_compress_ptr c)
{
    jpeg_enc *e = c->client_data;
    e->len = e->cap - e->dst.free_in_buffer;
}

/* The encode proper; returns 0, or -1 after a libjpeg error (message in e->je.msg). */
static int jpeg_enc_run(jpeg_enc *e, const img_rgb *im, int quality)
{
    if (setjmp(e->je.jb))
        return -1;
    jpeg_create_compress(&e->ci);
    e->ci.client_data = e;
    e->dst.init_destination = jdst_init;
    e->dst.empty_output_buffer = jdst_empty;
    e->dst.term_destination = jdst_term;
    e->ci.dest = &e->dst;

    /* What cjpeg does for a PPM: set_defaults with RGB input (4:2:0 YCbCr,
     * JFIF header, standard Huffman tables, no optimisation), then
     * -quality Q without -baseline: jpeg_set_quality(Q, FALSE). */
    e->ci.image_width = (JDIMENSION)im->w;
    e->ci.image_height = (JDIMENSION)im->h;
    e->ci.input_components = 3;
    e->ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&e->ci);
    jpeg_set_quality(&e->ci, quality, FALSE);
    e->ci.dct_method = JDCT_ISLOW;
    e->ci.optimize_coding = FALSE;

    jpeg_start_compress(&e->ci, TRUE);
    size_t stride = (size_t)im->w * 3;
    while (e->ci.next_scanline < e->ci.image_height) {
        /* libjpeg does not write through the row pointer. */
        JSAMPROW row = (JSAMPROW)(im->px + (size_t)e->ci.next_scanline * stride);
        jpeg_write_scanlines(&e->ci, &row, 1);
    }
    jpeg_finish_compress(&e->ci);
    return 0;
}

int img_encode_jpeg(const img_rgb *im, int quality, uint8_t **out, size_t *len,
                    char *err, size_t errsz)
{
    if (!img_valid(im) || !out || !len)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "img_encode_jpeg: no image or no output");
    if (quality < 1 || quality > 100)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "JPEG quality %d is not in 1..100", quality);
    if (im->w > JPEG_MAX_DIMENSION || im->h > JPEG_MAX_DIMENSION)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "a %d x %d image is too large for JPEG (at most %ld pixels a side)",
                        im->w, im->h, (long)JPEG_MAX_DIMENSION);
    jpeg_enc *e = calloc(1, sizeof *e);
    if (!e)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    e->ci.err = jpeg_std_error(&e->je.pub);
    e->je.pub.error_exit = jpeg_on_error;
    e->je.pub.emit_message = jpeg_on_message;
    e->je.pub.output_message = jpeg_on_output;

    int rc;
    if (jpeg_enc_run(e, im, quality)) {
        rc = e->nomem ? adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory encoding JPEG")
                      : adj_fail(err, errsz, ADJ_ERR_ARG, "JPEG encoding failed: %s", e->je.msg);
        free(e->buf);
    } else {
        *out = e->buf;
        *len = e->len;
        rc = ADJ_OK;
    }
    jpeg_destroy_compress(&e->ci); /* safe on a half-created object */
    free(e);
    return rc;
}

int img_jpeg_roundtrip(const img_rgb *im, int quality, img_rgb *out, char *err, size_t errsz)
{
    if (!img_valid(im) || !out)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "img_jpeg_roundtrip: no image or no output");
    uint8_t *jpg;
    size_t jlen;
    int rc = img_encode_jpeg(im, quality, &jpg, &jlen, err, errsz);
    if (rc)
        return rc;
    img_rgb dec;
    rc = jpeg_decode(jpg, jlen, (size_t)im->w * (size_t)im->h, &dec, err, errsz);
    free(jpg);
    if (rc)
        return rc;
    if (dec.w != im->w || dec.h != im->h) { /* cannot happen; never return a wrong size */
        img_free(&dec);
        return adj_fail(err, errsz, ADJ_ERR_STATE, "JPEG round trip changed the image size");
    }
    *out = dec;
    return ADJ_OK;
}

/* ------------------------------------------------------------------- PNG */

/* libpng I/O and error state, shared by reading and writing. */
typedef struct {
    const uint8_t *in;   /* reading: the bytes, borrowed */
    size_t in_len, in_pos;
    uint8_t *out;        /* writing: the PNG so far, owned */
    size_t out_len, out_cap;
    int nomem;
    char msg[256];       /* libpng's error message */
} png_io;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_io *io = png_get_error_ptr(png);
    snprintf(io->msg, sizeof io->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

/* common/ never prints; libpng warnings (benign problems) are ignored. */
static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep data, size_t n)
{
    png_io *io = png_get_io_ptr(png);
    if (n > io->in_len - io->in_pos)
        png_error(png, "unexpected end of data (truncated PNG)");
    memcpy(data, io->in + io->in_pos, n);
    io->in_pos += n;
}

static void png_write_mem(png_structp png, png_bytep data, size_t n)
{
    png_io *io = png_get_io_ptr(png);
    if (n > io->out_cap - io->out_len) {
        size_t ncap = io->out_cap ? io->out_cap : 65536;
        while (ncap - io->out_len < n && ncap <= SIZE_MAX / 2)
            ncap *= 2;
        uint8_t *nb = ncap - io->out_len >= n ? realloc(io->out, ncap) : NULL;
        if (!nb) {
            io->nomem = 1;
            png_error(png, "out of memory");
        }
        io->out = nb;
        io->out_cap = ncap;
    }
    memcpy(io->out + io->out_len, data, n);
    io->out_len += n;
}

static void png_flush_mem(png_structp png)
{
    (void)png;
}

/* The state of one PNG decode; owned by png_decode's frame. */
typedef struct {
    png_io io;
    png_structp png;
    png_infop info;
    size_t max_pixels;
    uint8_t *px;    /* freed by the owner on error */
    int w, h;
} png_dec;

static int png_dec_run(png_dec *d, char *err, size_t errsz)
{
    png_structp png = d->png; /* set before setjmp, never changed */
    png_infop info = d->info;
    if (setjmp(png_jmpbuf(png)))
        return d->io.nomem ? adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory decoding PNG")
                           : adj_fail(err, errsz, ADJ_ERR_FORMAT, "truncated or corrupt PNG: %s",
                                      d->io.msg);
    png_set_read_fn(png, &d->io, png_read_mem);
    /* A CRC error in any chunk, critical or ancillary, is fatal (libpng's
     * default only warns and discards an ancillary chunk). */
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
#if defined(PNG_IGNORE_ADLER32) && defined(PNG_SET_OPTION_SUPPORTED)
    png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_OFF); /* check zlib's checksum */
#endif
    /* Our max_pixels decides, not libpng's 1,000,000-per-side default. */
    png_set_user_limits(png, 0x7fffffffu, 0x7fffffffu);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    int rc = check_limit((long)w, (long)h, d->max_pixels, err, errsz);
    if (rc)
        return rc;

    /* To 8-bit RGB: palette expanded, grey widened and replicated, 16 bits
     * scaled with rounding (v * 255 / 65535), alpha and tRNS dropped (not
     * composited), no gamma correction (the stored values are kept). */
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16)
        png_set_scale_16(png);
    if (!(ctype & PNG_COLOR_MASK_COLOR))
        png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t stride = (size_t)w * 3;
    if (png_get_rowbytes(png, info) != stride || png_get_channels(png, info) != 3 ||
        png_get_bit_depth(png, info) != 8)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "PNG colour type %d, depth %d does not convert to 8-bit RGB", ctype, depth);

    d->px = malloc(stride * h);
    if (!d->px)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot allocate a %lu x %lu image",
                        (unsigned long)w, (unsigned long)h);
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < h; y++)
            png_read_row(png, d->px + (size_t)y * stride, NULL);
    png_read_end(png, NULL); /* checks the CRCs of the chunks after IDAT too */
    d->w = (int)w;
    d->h = (int)h;
    return ADJ_OK;
}

static int png_decode(const uint8_t *buf, size_t len, size_t max_pixels, img_rgb *out,
                      char *err, size_t errsz)
{
    png_dec *d = calloc(1, sizeof *d);
    if (!d)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    d->io.in = buf;
    d->io.in_len = len;
    d->max_pixels = max_pixels;
    int rc;
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d->io, png_on_error, png_on_warning);
    if (!d->png || !(d->info = png_create_info_struct(d->png))) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot create a PNG decoder");
    } else if ((rc = png_dec_run(d, err, errsz)) == ADJ_OK) {
        out->w = d->w;
        out->h = d->h;
        out->px = d->px;
        d->px = NULL;
    }
    png_destroy_read_struct(&d->png, &d->info, NULL); /* NULL-safe */
    free(d->px);
    free(d);
    return rc;
}

/* The state of one PNG encode; owned by img_encode_png's frame. */
typedef struct {
    png_io io;
    png_structp png;
    png_infop info;
} png_enc;

static int png_enc_run(png_enc *e, const img_rgb *im, char *err, size_t errsz)
{
    png_structp png = e->png; /* set before setjmp, never changed */
    png_infop info = e->info;
    if (setjmp(png_jmpbuf(png)))
        return e->io.nomem ? adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory encoding PNG")
                           : adj_fail(err, errsz, ADJ_ERR_ARG, "PNG encoding failed: %s",
                                      e->io.msg);
    png_set_write_fn(png, &e->io, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t stride = (size_t)im->w * 3;
    for (int y = 0; y < im->h; y++)
        png_write_row(png, im->px + (size_t)y * stride);
    png_write_end(png, NULL);
    return ADJ_OK;
}

int img_encode_png(const img_rgb *im, uint8_t **out, size_t *len, char *err, size_t errsz)
{
    if (!img_valid(im) || !out || !len)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "img_encode_png: no image or no output");
    png_enc *e = calloc(1, sizeof *e);
    if (!e)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    int rc;
    e->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e->io, png_on_error, png_on_warning);
    if (!e->png || !(e->info = png_create_info_struct(e->png))) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot create a PNG encoder");
    } else if ((rc = png_enc_run(e, im, err, errsz)) == ADJ_OK) {
        *out = e->io.out;
        *len = e->io.out_len;
        e->io.out = NULL;
    }
    png_destroy_write_struct(&e->png, &e->info); /* NULL-safe */
    free(e->io.out);
    free(e);
    return rc;
}

/* PNG width and height straight from the IHDR chunk. */
static int png_probe(const uint8_t *buf, size_t len, int *w, int *h, char *err, size_t errsz)
{
    /* signature (8), IHDR length (4) and type (4), width (4), height (4) */
    if (len < 24)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "truncated PNG header");
    uint32_t n = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 | buf[11];
    if (n != 13 || memcmp(buf + 12, "IHDR", 4) != 0)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "bad PNG header: the first chunk is not IHDR");
    uint32_t pw = (uint32_t)buf[16] << 24 | (uint32_t)buf[17] << 16 | (uint32_t)buf[18] << 8 | buf[19];
    uint32_t ph = (uint32_t)buf[20] << 24 | (uint32_t)buf[21] << 16 | (uint32_t)buf[22] << 8 | buf[23];
    if (pw < 1 || ph < 1 || pw > 0x7fffffffu || ph > 0x7fffffffu)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "bad PNG header: image is %lu x %lu pixels",
                        (unsigned long)pw, (unsigned long)ph);
    *w = (int)pw;
    *h = (int)ph;
    return ADJ_OK;
}

/* ------------------------------------------------------ probe and decode */

int img_probe(const uint8_t *buf, size_t len, img_format *fmt, int *w, int *h,
              char *err, size_t errsz)
{
    if (!buf && len)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "img_probe: no buffer");
    if (len == 0)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "empty body");
    img_format f = img_sniff(buf, len);
    int pw = 0, ph = 0, rc;
    switch (f) {
    case IMG_FMT_JPEG: {
        tjhandle tj;
        if ((rc = jpeg_open(len, &tj, err, errsz)))
            return rc;
        int cs;
        rc = jpeg_header(tj, buf, len, &pw, &ph, &cs, err, errsz);
        tjDestroy(tj);
        break;
    }
    case IMG_FMT_PNG:
        rc = png_probe(buf, len, &pw, &ph, err, errsz);
        break;
    case IMG_FMT_PPM: {
        ppm_header hd;
        if ((rc = ppm_parse_header(buf, len, &hd, err, errsz)) == ADJ_OK) {
            pw = hd.w;
            ph = hd.h;
        }
        break;
    }
    default:
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "unrecognised image format (not JPEG, PNG or PPM)");
    }
    if (rc)
        return rc;
    if (fmt)
        *fmt = f;
    if (w)
        *w = pw;
    if (h)
        *h = ph;
    return ADJ_OK;
}

int img_decode(const uint8_t *buf, size_t len, size_t max_pixels, img_rgb *out,
               char *err, size_t errsz)
{
    if (!out || (!buf && len))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "img_decode: no buffer or no output");
    if (len == 0)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "empty body");
    switch (img_sniff(buf, len)) {
    case IMG_FMT_JPEG: return jpeg_decode(buf, len, max_pixels, out, err, errsz);
    case IMG_FMT_PNG: return png_decode(buf, len, max_pixels, out, err, errsz);
    case IMG_FMT_PPM: return ppm_decode(buf, len, max_pixels, out, err, errsz);
    default:
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "unrecognised image format (not JPEG, PNG or PPM)");
    }
}

/* ---------------------------------------------------------------- prepare */

/*
 * The horizontal pass of resize_down: out[k] (3 channels) of one input row,
 * each the sum from +0 of its taps (input pixel, weight) in increasing input
 * order, as stb's scatter adds them.
 */
static void resize_row(const uint8_t *row, const float lut[256], const int *first, const int *src,
                       const float *wt, int ow, float *out)
{
    for (int k = 0; k < ow; k++) {
        float r = 0, g = 0, b = 0;
        for (int t = first[k]; t < first[k + 1]; t++) {
            const uint8_t *p = row + 3 * src[t];
            r += lut[p[0]] * wt[t];
            g += lut[p[1]] * wt[t];
            b += lut[p[2]] * wt[t];
        }
        out[3 * k] = r;
        out[3 * k + 1] = g;
        out[3 * k + 2] = b;
    }
}

/*
 * The taps of each output pixel of the horizontal pass, from stb's nhc
 * contributors (one per input pixel, hm of margin each side, weights hcw
 * apart): output pixel k's are first[k] .. first[k + 1] - 1, in increasing
 * input order, each its input pixel (edges clamped) and weight. New arrays
 * (*first, *src, *wt: free()), or ADJ_ERR_NOMEM.
 */
static int resize_taps(const stbir__contributors *hc, const float *hcoef, int nhc, int hcw, int hm,
                       int w, int ow, int **first, int **src, float **wt)
{
    int *f = calloc((size_t)ow + 2, sizeof *f);
    *first = f;
    *src = NULL;
    *wt = NULL;
    if (!f)
        return ADJ_ERR_NOMEM;
    for (int c = 0; c < nhc; c++) /* a counting sort by output pixel */
        for (int k = hc[c].n0; k <= hc[c].n1; k++)
            f[k + 2]++;
    for (int k = 0; k < ow; k++)
        f[k + 2] += f[k + 1];
    *src = malloc(((size_t)f[ow + 1] + 1) * sizeof **src);
    *wt = malloc(((size_t)f[ow + 1] + 1) * sizeof **wt);
    if (!*src || !*wt)
        return ADJ_ERR_NOMEM;
    for (int c = 0; c < nhc; c++) {
        const int px = c - hm < 0 ? 0 : c - hm >= w ? w - 1 : c - hm; /* STBIR_EDGE_CLAMP */
        for (int k = hc[c].n0; k <= hc[c].n1; k++) {
            (*src)[f[k + 1]] = px;
            (*wt)[f[k + 1]++] = hcoef[hcw * c + k - hc[c].n0];
        }
    }
    return ADJ_OK;
}

/*
 * stbir_resize_subpixel's result (3 channels, uint8, linear, clamped edges,
 * the triangle filter) when both axes shrink, computed faster: stb's own
 * setup, filters and normalised weights (stbir__info), then its
 * downsampling's sums with the same products in the same order from +0 (per
 * output value: input pixels left to right, input rows top to bottom), the
 * decode a table of stb's x / 255 and the encode stb's rounding, so the
 * bytes are stb's (tests/test_image.c compares them on many sizes, shifts
 * and images). What is faster: no division per input value, and the
 * horizontal sums gathered per output pixel over the taps in the crop
 * instead of scattered from every input pixel. 1 when it does not apply
 * (an axis enlarges: stb does it), ADJ_ERR_NOMEM, or ADJ_OK.
 */
static int resize_down(const img_rgb *im, img_rgb *x, float xs, float ys, float ox, float oy)
{
    stbir__info info;
    float transform[4] = {xs, ys, ox, oy};
    stbir__setup(&info, im->w, im->h, x->w, x->h, 3);
    stbir__calculate_transform(&info, 0, 0, 1, 1, transform);
    stbir__choose_filter(&info, STBIR_FILTER_TRIANGLE, STBIR_FILTER_TRIANGLE);
    if (stbir__use_width_upsampling(&info) || stbir__use_height_upsampling(&info))
        return 1;
    stbir__calculate_memory(&info);
    const int ow = x->w, oh = x->h, w = im->w, h = im->h;
    const int hm = stbir__get_filter_pixel_margin(info.horizontal_filter, info.horizontal_scale);
    const int vm = stbir__get_filter_pixel_margin(info.vertical_filter, info.vertical_scale);
    const int hcw = stbir__get_coefficient_width(info.horizontal_filter, info.horizontal_scale);
    const int vcw = stbir__get_coefficient_width(info.vertical_filter, info.vertical_scale);
    /* the contributors stb's loops visit: each input pixel and row, margins included */
    const int nhc = stbir__min(info.horizontal_num_contributors, w + 2 * hm);
    const int nvc = stbir__min(info.vertical_num_contributors, h + 2 * vm);
    char *mem = calloc(1, (size_t)info.horizontal_contributors_size + info.horizontal_coefficients_size +
                              info.vertical_contributors_size + info.vertical_coefficients_size);
    int *first = NULL, *src = NULL;
    float *wt = NULL;
    float *hrow = malloc((size_t)ow * 3 * sizeof *hrow);
    float *acc = calloc((size_t)ow * oh * 3, sizeof *acc);
    int rc = mem && hrow && acc ? ADJ_OK : ADJ_ERR_NOMEM;
    stbir__contributors *hc = (stbir__contributors *)mem;
    float *hcoef = mem ? (float *)(mem + info.horizontal_contributors_size) : NULL;
    if (!rc) {
        stbir__calculate_filters(hc, hcoef, info.horizontal_filter, info.horizontal_scale,
                                 info.horizontal_shift, w, ow);
        rc = resize_taps(hc, hcoef, nhc, hcw, hm, w, ow, &first, &src, &wt);
    }
    if (!rc) {
        stbir__contributors *vc = (stbir__contributors *)((char *)hcoef + info.horizontal_coefficients_size);
        float *vcoef = (float *)((char *)vc + info.vertical_contributors_size);
        stbir__calculate_filters(vc, vcoef, info.vertical_filter, info.vertical_scale,
                                 info.vertical_shift, h, oh);
        float lut[256];
        for (int v = 0; v < 256; v++)
            lut[v] = ((float)v) / stbir__max_uint8_as_float;
        for (int c = 0; c < nvc; c++) { /* input rows top to bottom, into each output row */
            if (vc[c].n0 > vc[c].n1)
                continue;
            const int y = c - vm < 0 ? 0 : c - vm >= h ? h - 1 : c - vm;
            resize_row(im->px + (size_t)y * w * 3, lut, first, src, wt, ow, hrow);
            for (int k = vc[c].n0; k <= vc[c].n1; k++) {
                const float cf = vcoef[vcw * c + k - vc[c].n0];
                float *a = acc + (size_t)k * ow * 3;
                for (int i = 0; i < ow * 3; i++)
                    a[i] += hrow[i] * cf;
            }
        }
        for (size_t i = 0; i < (size_t)ow * oh * 3; i++) /* STBIR__ENCODE_LINEAR8 */
            x->px[i] = (unsigned char)STBIR__ROUND_INT(stbir__saturate(acc[i]) * stbir__max_uint8_as_float);
    }
    free(mem);
    free(first);
    free(src);
    free(wt);
    free(hrow);
    free(acc);
    return rc;
}

/*
 * img_prepare's resampling, fixed so that runs are reproducible:
 *
 *  - Size: the shorter side becomes scale_size exactly; the longer side L
 *    becomes round(L * scale_size / shorter), halves rounded up, in integer
 *    arithmetic (500 x 375 at 256 -> 341 x 256, since 341.33 rounds to 341).
 *  - Crop: the size x size square at ((W' - size) / 2, (H' - size) / 2) of
 *    the scaled W' x H' image, offsets rounded down.
 *  - Filter: stb_image_resize's triangle (tent) filter on both axes, widened
 *    by the scale factor when shrinking, so it is bilinear interpolation when
 *    enlarging and an anti-aliased area-style average when shrinking (the
 *    same kind of filter as Pillow's BILINEAR and torchvision's antialiased
 *    bilinear Resize).
 *    Edges are clamped (STBIR_EDGE_CLAMP). When the shorter side already is
 *    scale_size nothing is resampled: the crop is copied, so an image that
 *    is already size x size with scale_size == size comes back unchanged.
 *  - Colour space: STBIR_COLORSPACE_LINEAR, i.e. the 8-bit values are
 *    filtered as they are stored, without converting sRGB to linear light:
 *    that is what the common training pipelines (Torch, Pillow, OpenCV) do,
 *    so the crops look like the images the networks were trained on.
 *  - Rounding: stb's float result is rounded to the nearest 8-bit value.
 *
 * Only the crop is computed (stbir_resize_subpixel with the full scale
 * factors and the crop offset as the shift); this gives the same pixels as
 * stbir_resize of the whole image to W' x H' followed by the cut (checked
 * bit for bit on a range of sizes, shrinking and enlarging), without
 * materialising a huge scaled image for a very elongated input.
 */
int img_prepare(const img_rgb *im, int scale_size, int size, img_rgb *out, char *err, size_t errsz)
{
    if (!img_valid(im) || !out)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "img_prepare: no image or no output");
    if (size < 1 || scale_size < 1 || size > scale_size)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "bad prepare sizes: crop %d, scale %d (need 1 <= crop <= scale)",
                        size, scale_size);
    long w = im->w, h = im->h;
    long s = w < h ? w : h, l = w < h ? h : w;
    long long scaled_long = ((long long)l * scale_size + s / 2) / s;
    if (scaled_long > IMG_MAX_SCALED_SIDE)
        return adj_fail(err, errsz, ADJ_ERR_LIMIT,
                        "a %ld x %ld image is too elongated: scaling it to %d would make a side "
                        "of %lld pixels (limit %ld)", w, h, scale_size, scaled_long,
                        IMG_MAX_SCALED_SIDE);
    long sw = w < h ? scale_size : (long)scaled_long;
    long sh = w < h ? (long)scaled_long : scale_size;
    long ox = (sw - size) / 2, oy = (sh - size) / 2;

    img_rgb x;
    int rc = img_alloc(&x, size, size);
    if (rc)
        return adj_fail(err, errsz, rc, "cannot allocate a %d x %d image", size, size);
    if (sw == w && sh == h) {
        /* no scaling: the crop is a copy (the identity when size == w == h) */
        for (int y = 0; y < size; y++)
            memcpy(x.px + (size_t)y * size * 3,
                   im->px + ((size_t)(oy + y) * (size_t)w + (size_t)ox) * 3, (size_t)size * 3);
    } else {
        /* the same float scale stbir_resize would compute for sw x sh */
        float xs = (float)sw / (float)w, ys = (float)sh / (float)h;
        if ((rc = resize_down(im, &x, xs, ys, (float)ox, (float)oy)) == ADJ_ERR_NOMEM) {
            img_free(&x);
            return adj_fail(err, errsz, rc, "out of memory resizing a %ld x %ld image", w, h);
        }
        if (rc == 1 && !stbir_resize_subpixel(im->px, (int)w, (int)h, 0, x.px, size, size, 0,
                                   STBIR_TYPE_UINT8, 3, STBIR_ALPHA_CHANNEL_NONE, 0,
                                   STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP,
                                   STBIR_FILTER_TRIANGLE, STBIR_FILTER_TRIANGLE,
                                   STBIR_COLORSPACE_LINEAR, NULL, xs, ys, (float)ox, (float)oy)) {
            img_free(&x);
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory resizing a %ld x %ld image",
                            w, h);
        }
    }
    *out = x;
    return ADJ_OK;
}

void img_to_planar(const img_rgb *im, float *planar)
{
    size_t n = (size_t)im->w * (size_t)im->h;
    const uint8_t *p = im->px;
    for (size_t i = 0; i < n; i++) {
        planar[i] = p[3 * i];
        planar[n + i] = p[3 * i + 1];
        planar[2 * n + i] = p[3 * i + 2];
    }
}
