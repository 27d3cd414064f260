/* srv_req.c - what every endpoint uses: answers, parameters, the body, the worker. */
#include "srv_req.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "srv_json.h"
#include "srv_status.h"
#include "ut_clock.h"

#define POST_BUFFER_SIZE (64 * 1024)

/* ---------------------------------------------------------------- answers */

enum MHD_Result srv_req_respond(srv_req *r, unsigned status, const char *ctype, void *data,
                                size_t len, int owned, const char *const *headers)
{
    struct MHD_Response *resp =
        owned ? MHD_create_response_from_buffer_with_free_callback(len, data, free)
              : MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        if (owned)
            free(data);
        return MHD_NO;
    }
    return srv_req_respond_with(r, status, resp, ctype, headers);
}

enum MHD_Result srv_req_respond_with(srv_req *r, unsigned status, struct MHD_Response *resp,
                                     const char *ctype, const char *const *headers)
{
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (int i = 0; headers && headers[i]; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    /* without --keep-alive 1, the next request comes on a new connection, through srv_front */
    if (r->close || srv_req_draining(r) || !srv_req_cfg(r)->keep_alive)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->status = status;
    r->state = SRV_RS_ANSWERED;
    if (r->first_call && !r->has_body) {
        r->pending = resp;
        r->pending_status = status;
        return MHD_YES;
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result srv_req_respond_json(srv_req *r, unsigned status, json_t *j,
                                     const char *const *headers)
{
    char *text = srv_json_dump(j);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        return srv_req_respond(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json",
                               (void *)oom, sizeof oom - 1, 0, NULL);
    }
    return srv_req_respond(r, status, "application/json", text, strlen(text), 1, headers);
}

enum MHD_Result srv_req_error_msg(srv_req *r, unsigned status, const char *msg)
{
    const char *headers[8];
    int n = 0;
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        headers[n++] = MHD_HTTP_HEADER_RETRY_AFTER;
        headers[n++] = "1";
    } else if (status == MHD_HTTP_UNAUTHORIZED) {
        headers[n++] = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
        headers[n++] = srv_req_header(r, MHD_HTTP_HEADER_AUTHORIZATION)
                           ? "Bearer realm=\"advjpgd\", error=\"invalid_token\""
                           : "Bearer realm=\"advjpgd\"";
    } else if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        headers[n++] = MHD_HTTP_HEADER_ALLOW;
        headers[n++] = r->route ? r->route->methods : "GET, HEAD";
    }
    headers[n] = NULL;
    char *text = srv_json_error(msg);
    if (!text)
        return MHD_NO;
    return srv_req_respond(r, status, "application/json", text, strlen(text), 1, headers);
}

enum MHD_Result srv_req_error(srv_req *r, unsigned status, const char *fmt, ...)
{
    char msg[ADJ_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return srv_req_error_msg(r, status, msg);
}

enum MHD_Result srv_req_error_deferred(srv_req *r)
{
    return srv_req_error_msg(r, r->err_status, r->err_msg);
}

void srv_req_defer(srv_req *r, unsigned status, const char *fmt, ...)
{
    if (r->err_status)
        return;
    r->err_status = status;
    r->err_t = ut_now();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- the request */

const char *srv_req_header(const srv_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int srv_req_accept_has(const char *accept, const char *type)
{
    size_t tl = strlen(type);
    const char *p = accept;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',' && *end != ';' && *end != ' ' && *end != '\t')
            end++;
        if ((size_t)(end - p) == tl && strncasecmp(p, type, tl) == 0)
            return 1;
        p = strchr(end, ',');
    }
    return 0;
}

int srv_req_content_kind(const char *ct, const char *const *types, size_t n)
{
    if (!ct || !*ct)
        return 1;
    size_t len = strcspn(ct, "; \t");
    if (len == strlen("multipart/form-data") && strncasecmp(ct, "multipart/form-data", len) == 0)
        return 2;
    for (size_t i = 0; i < n; i++)
        if (strlen(types[i]) == len && strncasecmp(ct, types[i], len) == 0)
            return 1;
    return 0;
}

static int classes_of(const srv_req *r)
{
    const srv_engine *e = srv_req_engine(r);
    return e ? model_get_spec(e->model)->classes : 1;
}

static enum MHD_Result query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    srv_req *r = cls;
    (void)kind;
    if (r->err_status)
        return MHD_NO;
    int id = srv_params_lookup(key, r->route->params);
    if (id < 0) {
        char known[128];
        srv_req_defer(r, MHD_HTTP_BAD_REQUEST, "unknown parameter '%.64s' for %s (it takes: %s)",
                      key, srv_endpoint_name(r->ep),
                      srv_params_names(r->route->params, known, sizeof known));
        return MHD_NO;
    }
    char err[ADJ_ERRLEN];
    if (srv_params_set(&r->q, (exp_param_id)id, value ? value : "", classes_of(r), err,
                       sizeof err)) {
        srv_req_defer(r, MHD_HTTP_BAD_REQUEST, "%s", err);
        return MHD_NO;
    }
    return MHD_YES;
}

int srv_req_query(srv_req *r)
{
    int classes = classes_of(r);
    srv_params_defaults(&r->q, classes);
    const char *const *d = r->route->defaults;
    char err[ADJ_ERRLEN];
    for (int i = 0; d && d[i]; i += 2) {
        int id = srv_params_lookup(d[i], ~0u);
        if (id >= 0)
            srv_params_set(&r->q, (exp_param_id)id, d[i + 1], classes, err, sizeof err);
    }
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_iter, r);
    return r->err_status ? -1 : 0;
}

/* ---------------------------------------------------------------- the body */

void srv_req_body_drop(srv_req *r)
{
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
}

int srv_req_body_append(srv_req *r, const char *data, size_t size)
{
    size_t max = srv_req_cfg(r)->max_body;
    if (size > max - r->len) {
        srv_req_defer(r, MHD_HTTP_CONTENT_TOO_LARGE,
                      "the image is larger than the limit of %zu bytes", max);
        srv_req_body_drop(r);
        return 0;
    }
    if (r->len + size > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64 * 1024;
        if (cap < r->len + size)
            cap = r->len + size;
        if (cap > max)
            cap = max;
        uint8_t *p = realloc(r->body, cap);
        if (!p) {
            srv_req_defer(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory for the request body");
            return 0;
        }
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, size);
    r->len += size;
    return 1;
}

enum MHD_Result srv_req_start_body(srv_req *r, int multipart, MHD_PostDataIterator iter)
{
    size_t max = srv_req_cfg(r)->max_body;
    const char *cl = srv_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long clen = 0;
    if (cl) {
        char *end;
        errno = 0;
        clen = strtoull(cl, &end, 10);
        if (errno || *end)
            clen = 0;
        /* A client that waits for "100 Continue" has sent nothing yet:
         * answer at once, it never sends the body. */
        const char *expect = srv_req_header(r, MHD_HTTP_HEADER_EXPECT);
        if (clen > max && expect && strcasecmp(expect, "100-continue") == 0)
            return srv_req_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                 "the body of %llu bytes is larger than the limit of %zu bytes",
                                 clen, max);
        if (clen > max) {
            srv_req_defer(r, MHD_HTTP_CONTENT_TOO_LARGE,
                          "the body of %llu bytes is larger than the limit of %zu bytes", clen,
                          max);
            r->state = SRV_RS_BODY;
            return MHD_YES;
        }
    }
    if (multipart) {
        r->multipart = 1;
        r->pp = MHD_create_post_processor(r->conn, POST_BUFFER_SIZE, iter, r);
        if (!r->pp)
            return srv_req_error(r, MHD_HTTP_BAD_REQUEST,
                                 "malformed multipart/form-data Content-Type (no boundary?)");
    } else if (clen > 0) {
        r->body = malloc(clen);
        if (!r->body)
            return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory for the body");
        r->cap = clen;
    }
    r->state = SRV_RS_BODY;
    return MHD_YES;
}

/* ---------------------------------------------------------------- the worker */

static void on_task_done(srv_task *task, void *arg)
{
    srv_req *r = arg;
    (void)task;
    r->state = SRV_RS_DONE;
    MHD_resume_connection(r->conn);
}

/* Submits task; the connection is suspended. A refused submit resumes it, to answer. */
static void submit_task(srv_req *r, srv_task *task, int *submit_failed)
{
    const srv_engine *e = srv_req_engine(r);
    char err[ADJ_ERRLEN];
    task->prio = SRV_PRIO_INTERACTIVE;
    task->deadline = r->t0 + srv_req_cfg(r)->timeout_s;
    task->done = on_task_done;
    task->done_arg = r;
    r->task = task;
    r->state = SRV_RS_QUEUED;
    int rc = srv_worker_submit(e->worker, task, err, sizeof err);
    if (rc) {
        *submit_failed = 1;
        /* a malformed task is this server's bug; a full queue or shutting down is 503 */
        r->err_status = rc == ADJ_ERR_ARG ? srv_status_http_internal(rc) : srv_status_http(rc);
        snprintf(r->err_msg, sizeof r->err_msg, "%s", err);
        r->state = SRV_RS_DONE;
        MHD_resume_connection(r->conn);
    }
}

enum MHD_Result srv_req_submit(srv_req *r, srv_task *task, int *submit_failed)
{
    /* Suspend first: the worker may resume the connection at once. */
    MHD_suspend_connection(r->conn);
    submit_task(r, task, submit_failed);
    return MHD_YES;
}

void srv_req_submit_suspended(srv_req *r, srv_task *task, int *submit_failed)
{
    r->t_pool1 = r->t_worked = ut_now(); /* no hand-back: the stages go on from here */
    submit_task(r, task, submit_failed);
}
