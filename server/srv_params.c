#include "srv_params.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int srv_parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return 0;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

int srv_parse_seed(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return 0;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return 0;
    *out = v;
    return 1;
}

int srv_parse_eps(const char *s, exp_params *out, char *err, size_t errsz)
{
    exp_params p = *out;
    p.n_eps = 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        char item[32];
        long v;
        if (n >= sizeof item)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: '%.*s' is not an integer in 1..255",
                            (int)(n > 40 ? 40 : n), s);
        memcpy(item, s, n);
        item[n] = '\0';
        while (n && isspace((unsigned char)item[n - 1]))
            item[--n] = '\0';
        const char *it = item;
        while (isspace((unsigned char)*it))
            it++;
        if (!srv_parse_long(it, 1, 255, &v))
            return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: '%s' is not an integer in 1..255", it);
        if (p.n_eps == EXP_MAX_EPS)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: more than %d values", EXP_MAX_EPS);
        p.eps[p.n_eps++] = (int)v;
        if (!comma)
            break;
        s = comma + 1;
    }
    *out = p;
    return ADJ_OK;
}
