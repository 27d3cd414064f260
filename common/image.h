/*
 * image.h - 8-bit RGB images: decoding untrusted bytes, encoding PNG and
 * JPEG, JPG(q), and preparing the model's input crop.
 *
 * An img_rgb is interleaved RGB, 3 bytes per pixel, rows top to bottom with
 * no padding (stride = 3 * w). Functions that return an image fill a
 * caller-provided img_rgb whose pixels are new: free with img_free().
 *
 *     img_rgb im, x;
 *     if (img_decode(body, len, IMG_DEFAULT_MAX_PIXELS, &im, err, sizeof err) ||
 *         img_prepare(&im, 256, 231, &x, err, sizeof err))
 *         return error(err);
 *     uint8_t *jpg; size_t jlen;
 *     img_encode_jpeg(&x, 75, &jpg, &jlen, err, sizeof err);  // == cjpeg -quality 75
 *     free(jpg); img_free(&im); img_free(&x);
 */
#ifndef ADJ_IMAGE_H
#define ADJ_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/** Default limit on width * height of a decoded image: 64 megapixels. */
#define IMG_DEFAULT_MAX_PIXELS (64u * 1024u * 1024u)

/**
 * The JPEG decode work budget, in passes over the 8x8 blocks of an image at
 * the pixel limit: a JPEG may entropy-decode at most
 * IMG_JPEG_WORK_PASSES * max_pixels / 64 blocks summed over its scans (each
 * scan decodes every block of its components once). A baseline JPEG is one
 * pass (1.5 at 4:2:0 counting chroma), libjpeg's standard progressive
 * script 8 (4:2:0) to 14 (4:4:4); a file of hundreds of scans over a large
 * image is refused before any pixel is decoded (about 10-20 ns per block and
 * scan on one core: the budget caps a decode at the pixel limit near 0.5 s).
 */
#define IMG_JPEG_WORK_PASSES 24

typedef struct {
    int w, h;
    uint8_t *px; /**< h * w * 3 bytes, RGB interleaved, owned */
} img_rgb;

typedef enum { IMG_FMT_UNKNOWN = 0, IMG_FMT_JPEG, IMG_FMT_PNG, IMG_FMT_PPM } img_format;

/**
 * Allocates a w x h image (pixels uninitialised) into *im (new: img_free).
 * ADJ_ERR_ARG if w or h < 1 or the size overflows, ADJ_ERR_NOMEM.
 */
int img_alloc(img_rgb *im, int w, int h);

/** Frees the pixels and zeroes the struct (NULL and a zeroed struct are fine). */
void img_free(img_rgb *im);

/** A deep copy of src into *dst (new). ADJ_ERR_ARG, ADJ_ERR_NOMEM. */
int img_copy(const img_rgb *src, img_rgb *dst);

/** The format by its magic bytes, IMG_FMT_UNKNOWN if none matches. */
img_format img_sniff(const uint8_t *buf, size_t len);

/**
 * Reads the image's width and height from its header without decoding the
 * pixels. ADJ_ERR_UNSUPPORTED for an unknown format, ADJ_ERR_FORMAT for a bad header
 * (and for an empty buffer). fmt, w and h may each be NULL. No pixel limit is
 * applied and a PNG's IHDR CRC is not checked: img_decode does both.
 */
int img_probe(const uint8_t *buf, size_t len, img_format *fmt, int *w, int *h,
              char *err, size_t errsz);

/**
 * Decodes JPEG, PNG or binary PPM (P6, maxval 255; also P5 greyscale) into
 * 8-bit RGB: grey is replicated, alpha (and PNG tRNS) dropped without
 * compositing, 16-bit PNG reduced to 8 bits with rounding (v * 255 / 65535),
 * no gamma or colour-profile conversion. A JPEG is decoded as
 * `djpeg -dct int` does (accurate IDCT, fancy upsampling).
 *
 * The pixel count width * height is checked against max_pixels from the
 * header before any pixel buffer is allocated (ADJ_ERR_LIMIT, "image is W x H
 * pixels, over the limit of N"); so is a JPEG's decode work (ADJ_ERR_LIMIT,
 * IMG_JPEG_WORK_PASSES: the blocks its scans decode, from its markers). Corrupt or truncated data is ADJ_ERR_FORMAT,
 * never a half-decoded image: a JPEG that raises any libjpeg warning or has
 * over 500 progressive scans, a PNG with any CRC error (critical or ancillary
 * chunk), a bad zlib stream or a missing IEND, a PPM with a short pixel block.
 * An empty buffer is ADJ_ERR_FORMAT ("empty body"); an unknown format
 * ADJ_ERR_UNSUPPORTED, as are CMYK/YCCK JPEGs and PPM maxvals other than 255.
 * *out is written only on success.
 */
int img_decode(const uint8_t *buf, size_t len, size_t max_pixels, img_rgb *out,
               char *err, size_t errsz);

/** Lossless PNG (8-bit RGB). *out is new (free()). */
int img_encode_png(const img_rgb *im, uint8_t **out, size_t *len, char *err, size_t errsz);

/**
 * Baseline JPEG at quality 1..100, byte-identical to `cjpeg -quality Q` of
 * libjpeg-turbo for the same pixels: 4:2:0, accurate integer DCT, standard
 * Huffman tables, no optimisation, JFIF header. Like cjpeg without -baseline,
 * quality <= 23 keeps quantisers over 255, so those files are extended
 * sequential (SOF1) rather than baseline. *out is new (free()).
 * ADJ_ERR_ARG for a bad quality or a side over 65500 pixels.
 */
int img_encode_jpeg(const img_rgb *im, int quality, uint8_t **out, size_t *len,
                    char *err, size_t errsz);

/**
 * JPG_q(im): encode as img_encode_jpeg, then decode with the accurate IDCT
 * (what `djpeg -dct int` gives). out is new and has im's size.
 */
int img_jpeg_roundtrip(const img_rgb *im, int quality, img_rgb *out, char *err, size_t errsz);

/**
 * The model's clean input x: scale so that the shorter side is scale_size,
 * cut the centred size x size square, round to 8 bits. The longer side
 * becomes round(L * scale_size / shorter) (halves up: 500 x 375 -> 341 x 256
 * at 256); the square starts at ((W' - size) / 2, (H' - size) / 2) rounded
 * down. The filter (stb_image_resize, triangle, edge clamp, values filtered
 * as stored) is documented in image.c. An image that is already
 * scale_size on its shorter side is only cropped, so size x size with
 * scale_size == size comes back unchanged. *out is new (img_free).
 * ADJ_ERR_ARG if size > scale_size or sizes < 1; ADJ_ERR_LIMIT if the scaled
 * longer side would exceed 2^24 pixels (an absurdly elongated image).
 */
int img_prepare(const img_rgb *im, int scale_size, int size, img_rgb *out, char *err, size_t errsz);

/**
 * Interleaved 8-bit RGB to planar float [3][h][w] (values 0..255).
 * planar must hold 3 * w * h floats; it is overwritten.
 */
void img_to_planar(const img_rgb *im, float *planar);

#endif
