#include "ut_base64.h"

#include <stdlib.h>

#include "status.h"

static const char TAB[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ut_base64_encode(const void *data, size_t len, size_t *out_len)
{
    const uint8_t *d = data;
    if (len > ((size_t)-1 / 4 - 1) * 3)
        return NULL;
    size_t n = 4 * ((len + 2) / 3);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *o++ = TAB[v >> 18];
        *o++ = TAB[(v >> 12) & 63];
        *o++ = TAB[(v >> 6) & 63];
        *o++ = TAB[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < len ? (uint32_t)d[i + 1] << 8 : 0);
        *o++ = TAB[v >> 18];
        *o++ = TAB[(v >> 12) & 63];
        *o++ = i + 1 < len ? TAB[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    if (out_len)
        *out_len = n;
    return out;
}

static int value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int ut_base64_decode(const char *text, size_t n, uint8_t **out, size_t *out_len, char *err,
                     size_t errsz)
{
    uint8_t *buf = malloc(n / 4 * 3 + 4);
    if (!buf)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    size_t len = 0, pad = 0, quad = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_space(c))
            continue;
        int v = c == '=' ? -2 : value(c);
        if (v == -1 || (v >= 0 && pad) || (v == -2 && quad + pad < 2)) {
            free(buf);
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "base64: bad character at offset %zu", i);
        }
        if (v == -2) {
            if (++pad + quad > 4) {
                free(buf);
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "base64: bad padding at offset %zu", i);
            }
            continue;
        }
        acc = acc << 6 | (uint32_t)v;
        if (++quad == 4) {
            buf[len++] = (uint8_t)(acc >> 16);
            buf[len++] = (uint8_t)(acc >> 8);
            buf[len++] = (uint8_t)acc;
            quad = 0;
            acc = 0;
        }
    }
    if (quad == 1 || (pad && quad + pad != 4)) {
        free(buf);
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "base64: the text ends in the middle of a group");
    }
    if (quad == 2) {
        buf[len++] = (uint8_t)(acc >> 4);
    } else if (quad == 3) {
        buf[len++] = (uint8_t)(acc >> 10);
        buf[len++] = (uint8_t)(acc >> 2);
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return ADJ_OK;
}
