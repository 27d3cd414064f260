/*
 * fuzz_head.c - srv_front_check, the request-head check of advjpgd's front
 * (server/srv_front.c), on any bytes, as a connection's first bytes so far
 * and as all that may be looked at (full). Aborts when:
 *   - a head taken as whole does not end at a newline inside the input, or
 *     holds a NUL or a bare CR (they must be refused), or is not found again
 *     when the check sees only that head (the verdict must not depend on
 *     the bytes after it: they are the body);
 *   - a refusal has a status outside 400, 408, 413, 414, 431, 501, 505, an
 *     empty message, or one whose JSON error answer (srv_json_error) does
 *     not parse back;
 *   - with full set, the verdict is "more" (the front would wait for ever).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "srv_front.h"
#include "srv_json.h"

static const unsigned allowed[] = {400, 408, 413, 414, 431, 501, 505};

static void check_refusal(unsigned status, const char *msg)
{
    int ok = 0;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        ok |= status == allowed[i];
    if (!ok || !msg[0])
        abort();
    char *text = srv_json_error(msg);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    if (!j || !json_is_string(json_object_get(j, "error")))
        abort();
    json_decref(j);
    free(text);
}

/* The checks of one verdict on buf[0..n). */
static void check(const char *buf, size_t n, int full)
{
    size_t head_len = 0;
    unsigned status = 0;
    char msg[256] = "";
    srv_head_verdict v = srv_front_check(buf, n, full, &head_len, &status, msg, sizeof msg);
    if (v == SRV_HEAD_BAD) {
        check_refusal(status, msg);
    } else if (v == SRV_HEAD_OK) {
        if (head_len == 0 || head_len > n || buf[head_len - 1] != '\n' ||
            memchr(buf, '\0', head_len))
            abort();
        for (size_t i = 0; i + 1 < head_len; i++)
            if (buf[i] == '\r' && buf[i + 1] != '\n')
                abort();
        size_t again = 0;
        if (head_len < n &&
            srv_front_check(buf, head_len, 0, &again, &status, msg, sizeof msg) != SRV_HEAD_OK)
            abort();
        if (head_len < n && again != head_len)
            abort();
    } else if (full) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > SRV_FRONT_HEAD_MAX)
        size = SRV_FRONT_HEAD_MAX;
    check((const char *)data, size, 0);
    check((const char *)data, size, 1);
    return 0;
}
