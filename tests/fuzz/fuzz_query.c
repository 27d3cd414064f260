/*
 * fuzz_query.c - the query-string parameters as libmicrohttpd hands them to
 * advjpgd (split at '&' and '=', percent-decoded, cut at a decoded NUL):
 * srv_parse_long, srv_parse_seed, srv_parse_eps and srv_eval_set_param,
 * then the error answer that echoes the value: srv_json_error must always
 * give valid JSON (a value that is not UTF-8 once left the client with no
 * answer at all), and the ASCII log escape must hold no control byte.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_eval.h"
#include "srv_json.h"
#include "srv_params.h"

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes s in place ('+' is a space), as MHD_http_unescape does. */
static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        int a, b;
        if (*p == '%' && (a = hexval(p[1])) >= 0 && (b = hexval(p[2])) >= 0) {
            *o++ = (char)(a * 16 + b);
            p += 2;
        } else {
            *o++ = *p == '+' ? ' ' : *p;
        }
    }
    *o = '\0';
}

/* The answer to a refused value must be JSON whose error is a string. */
static void check_answer(const char *msg)
{
    char *text = srv_json_error(msg);
    if (!text)
        return; /* out of memory */
    json_t *j = json_loads(text, 0, NULL);
    if (!j || !json_is_string(json_object_get(j, "error")))
        abort();
    json_decref(j);
    free(text);
    char *log = srv_utf8_escape(msg, 1);
    for (const char *p = log; p && *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            abort();
    free(log);
}

static void one_param(char *key, char *value)
{
    char err[ADJ_ERRLEN], msg[2 * ADJ_ERRLEN];
    long v;
    uint64_t seed;
    exp_params p = {0};
    srv_eval_request rq;
    srv_eval_request_init(&rq);
    if (!srv_parse_long(value, 1, 1000, &v))
        snprintf(msg, sizeof msg, "top_k: '%s' is not an integer in 1..1000", value);
    else
        snprintf(msg, sizeof msg, "%s", value);
    check_answer(msg);
    if (!srv_parse_seed(value, &seed))
        check_answer(value);
    if (srv_parse_eps(value, &p, err, sizeof err))
        check_answer(err);
    else if (p.n_eps < 1 || p.n_eps > EXP_MAX_EPS)
        abort();
    if (srv_eval_set_param(&rq, key, value, err, sizeof err) == ADJ_ERR_ARG)
        check_answer(err);
    snprintf(msg, sizeof msg, "unknown parameter '%.64s' for /attack", key);
    check_answer(msg);
    srv_eval_request_free(&rq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q = malloc(size + 1);
    if (!q)
        return 0;
    memcpy(q, data, size);
    q[size] = '\0';
    char *save = NULL;
    for (char *pair = strtok_r(q, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        char *value = eq ? eq + 1 : pair + strlen(pair);
        if (eq)
            *eq = '\0';
        unescape(pair);
        unescape(value);
        one_param(pair, value);
    }
    free(q);
    return 0;
}
