#include "ut_path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

static const char *sep(const char *a)
{
    size_t n = strlen(a);
    return n == 0 || a[n - 1] == '/' ? "" : "/";
}

char *ut_path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, sep(a), b);
    return s;
}

int ut_path_join_buf(char *buf, size_t bufsz, const char *a, const char *b, char *err,
                     size_t errsz)
{
    int k = snprintf(buf, bufsz, "%s%s%s", a, sep(a), b);
    if (k < 0 || (size_t)k >= bufsz) {
        if (bufsz)
            buf[0] = '\0';
        return adj_fail(err, errsz, ADJ_ERR_ARG, "path too long: %.64s/%.64s", a, b);
    }
    return ADJ_OK;
}
