/*
 * ut_base64.h - standard base64 (RFC 4648 section 4, with padding).
 *
 *     char *text = ut_base64_encode(png, png_len, NULL);   // free()
 *     uint8_t *bytes; size_t n;
 *     int rc = ut_base64_decode(text, strlen(text), &bytes, &n, err, sizeof err);
 */
#ifndef UT_BASE64_H
#define UT_BASE64_H

#include <stddef.h>
#include <stdint.h>

/**
 * The base64 of len bytes (data may be NULL when len is 0): a new
 * NUL-terminated string (free()), its length in *out_len (may be NULL).
 * NULL if out of memory or too large.
 */
char *ut_base64_encode(const void *data, size_t len, size_t *out_len);

/**
 * Decodes n characters of text into a new buffer (*out, free(); one spare
 * NUL byte after the data) of *out_len bytes. Padding is optional; ASCII
 * whitespace (line breaks of MIME text) is skipped. ADJ_ERR_FORMAT names the
 * first bad character's offset; ADJ_ERR_NOMEM.
 */
int ut_base64_decode(const char *text, size_t n, uint8_t **out, size_t *out_len, char *err,
                     size_t errsz);

#endif
