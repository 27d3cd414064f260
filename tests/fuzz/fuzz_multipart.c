/*
 * fuzz_multipart.c - the fields of a multipart POST /evaluate in the order
 * and pieces libmicrohttpd's post processor hands them over, through
 * srv_eval_form_field, srv_eval_form_finish and srv_eval_uploads (file
 * names, image headers read back from the spool file, the labels field).
 *
 * Input: records of [kind][name length][name][data length (2 bytes, big
 * endian)][data]. kind & 7 picks the field (image, labels, eps, quality,
 * seed, an unknown name, no name); kind & 8 starts a new part (offset 0),
 * else the piece continues the last one. The spool file goes to $TMPDIR.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "srv_eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[8] = {"image", "labels", "eps", "quality", "seed",
                                        "other", NULL, "image"};
    srv_eval_request rq;
    srv_eval_form form;
    char err[ADJ_ERRLEN];
    srv_eval_request_init(&rq);
    memset(&form, 0, sizeof form);
    uint64_t off = 0;
    size_t i = 0;
    int rc = ADJ_OK;
    while (!rc && i + 2 <= size) {
        unsigned kind = data[i], nlen = data[i + 1];
        i += 2;
        if (i + nlen + 2 > size)
            break;
        char name[256];
        memcpy(name, data + i, nlen);
        name[nlen] = '\0';
        i += nlen;
        size_t dlen = (size_t)data[i] << 8 | data[i + 1];
        i += 2;
        if (dlen > size - i)
            dlen = size - i;
        if (kind & 8)
            off = 0;
        rc = srv_eval_form_field(&rq, &form, keys[kind & 7], nlen ? name : NULL,
                                 (const char *)data + i, off, dlen, NULL, err, sizeof err);
        off += dlen;
        i += dlen;
    }
    if (!rc && !srv_eval_form_finish(&rq, &form, err, sizeof err)) {
        srv_eval_set set;
        if (srv_eval_uploads(&rq, 14, &set, err, sizeof err) == ADJ_OK) {
            if (set.n != (size_t)rq.n_uploads || set.n == 0)
                abort();
            srv_eval_set_free(&set);
        }
    }
    srv_eval_request_free(&rq);
    return 0;
}
