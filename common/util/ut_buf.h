/*
 * ut_buf.h - a growable byte buffer, always NUL-terminated.
 *
 *     ut_buf b = {0};                  // a zeroed buffer is empty and valid
 *     ut_buf_printf(&b, "%d,%s\n", 7, "x");
 *     ut_buf_add(&b, data, n);
 *     if (b.failed) ...out of memory: b.s holds what fitted...
 *     send(b.s, b.len); ut_buf_free(&b);
 *
 * Ownership: the buffer owns b.s until ut_buf_free, or until ut_buf_take
 * hands it to the caller. Once an allocation fails, `failed` stays set and
 * every later append is a no-op, so a sequence of appends needs one check at
 * the end. Dependency-free (libc only).
 */
#ifndef UT_BUF_H
#define UT_BUF_H

#include <stddef.h>

/** A growable buffer; zero-initialise it. s is NULL until the first append. */
typedef struct {
    char *s;    /**< the bytes, NUL-terminated (NULL while nothing was added) */
    size_t len; /**< bytes in s, not counting the NUL */
    size_t cap; /**< bytes allocated for s */
    int failed; /**< an allocation failed: s holds what fitted */
} ut_buf;

/**
 * Makes room for `more` bytes (and the NUL) after len. ADJ_OK, or
 * ADJ_ERR_NOMEM (then failed is set and the buffer is as it was).
 */
int ut_buf_reserve(ut_buf *b, size_t more);

/** Appends n bytes of data (data may be NULL when n is 0). ADJ_OK or ADJ_ERR_NOMEM. */
int ut_buf_add(ut_buf *b, const void *data, size_t n);

/** Appends the NUL-terminated s. ADJ_OK or ADJ_ERR_NOMEM. */
int ut_buf_puts(ut_buf *b, const char *s);

/** Appends printf-style text. ADJ_OK, ADJ_ERR_NOMEM, or ADJ_ERR_ARG for a bad format. */
int ut_buf_printf(ut_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Hands the bytes to the caller: a new NUL-terminated string (free()), its
 * length in *len (len may be NULL); NULL when the buffer failed or is empty
 * and the allocation of an empty string fails. The buffer is empty afterwards.
 */
char *ut_buf_take(ut_buf *b, size_t *len);

/** Frees the bytes and zeroes the buffer (NULL and a zeroed buffer are fine). */
void ut_buf_free(ut_buf *b);

#endif
