/*
 * fuzz_json.c - the JSON body of POST /evaluate: srv_eval_parse_json on any
 * bytes, and the 400 answer built from its message (which quotes jansson's
 * own parse message, itself quoting the input): always valid JSON.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "srv_eval.h"
#include "srv_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srv_eval_request rq;
    char err[ADJ_ERRLEN];
    srv_eval_request_init(&rq);
    if (srv_eval_parse_json(&rq, (const char *)data, size, err, sizeof err)) {
        char *text = srv_json_error(err);
        json_t *j = text ? json_loads(text, 0, NULL) : NULL;
        if (text && !j)
            abort(); /* an answer that is not JSON */
        json_decref(j);
        free(text);
    } else if (!rq.dataset || rq.params.n_eps < 1 || rq.shard_index >= rq.shard_count) {
        abort(); /* accepted without what it promises */
    }
    srv_eval_request_free(&rq);
    return 0;
}
