#include "ut_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

int ut_buf_reserve(ut_buf *b, size_t more)
{
    if (b->failed)
        return ADJ_ERR_NOMEM;
    if (more > (size_t)-1 / 2 - b->len) {
        b->failed = 1;
        return ADJ_ERR_NOMEM;
    }
    if (b->len + more + 1 <= b->cap)
        return ADJ_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = 1;
        return ADJ_ERR_NOMEM;
    }
    s[b->len] = '\0'; /* NUL-terminated even before the first append */
    b->s = s;
    b->cap = cap;
    return ADJ_OK;
}

int ut_buf_add(ut_buf *b, const void *data, size_t n)
{
    int rc = ut_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = '\0';
    return ADJ_OK;
}

int ut_buf_puts(ut_buf *b, const char *s)
{
    return ut_buf_add(b, s, strlen(s));
}

int ut_buf_printf(ut_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return ADJ_ERR_ARG;
    }
    if ((size_t)n < sizeof small)
        return ut_buf_add(b, small, (size_t)n);
    int rc = ut_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return ADJ_OK;
}

char *ut_buf_take(ut_buf *b, size_t *len)
{
    char *s = NULL;
    size_t n = 0;
    if (!b->failed) {
        s = b->s ? b->s : calloc(1, 1);
        n = b->s ? b->len : 0;
        b->s = NULL;
    }
    ut_buf_free(b);
    if (s && len)
        *len = n;
    return s;
}

void ut_buf_free(ut_buf *b)
{
    if (!b)
        return;
    free(b->s);
    memset(b, 0, sizeof *b);
}
