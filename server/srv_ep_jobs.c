/*
 * srv_ep_jobs.c - evaluation jobs over HTTP: POST /evaluate (a JSON body
 * naming a dataset, or images uploaded as multipart/form-data) creates a
 * job in the store (srv_jobs.h); GET /jobs, GET|DELETE /jobs/{id} and
 * GET /jobs/{id}/{result,rows,figure3.svg,figure4.svg,quality.svg,images/{file},dct,dct.svg}
 * read it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "srv_ep.h"
#include "srv_eval.h"
#include "srv_jobs.h"
#include "srv_routes.h"
#include "srv_status.h"

/* POST /evaluate's own state (r->st). */
typedef struct {
    srv_eval_request rq;
    srv_eval_form form; /* its multipart fields as they arrive */
} eval_state;

void srv_ep_eval_done(srv_req *r)
{
    eval_state *s = r->st;
    if (!s)
        return;
    srv_eval_request_free(&s->rq);
    free(s);
    r->st = NULL;
}

/* The HTTP status of a refused upload field (srv_eval_form_field): its byte
 * limits are the body's (413), everything else as the error map says. */
static unsigned form_status(int rc)
{
    return rc == ADJ_ERR_LIMIT ? MHD_HTTP_CONTENT_TOO_LARGE : srv_status_http(rc);
}

/*
 * POST /evaluate as multipart/form-data (srv_eval_form_field): 'image'
 * parts are streamed to the request's spool file in the jobs folder as they
 * arrive, at most SRV_EVAL_MAX_UPLOADS; memory per request is the post
 * processor's buffer, one srv_upload per part and the labels text.
 */
static enum MHD_Result eval_post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *filename, const char *content_type,
                                      const char *transfer_encoding, const char *data,
                                      uint64_t off, size_t size)
{
    srv_req *r = cls;
    eval_state *s = r->st;
    (void)kind, (void)content_type, (void)transfer_encoding;
    if (r->err_status)
        return MHD_NO;
    char err[ADJ_ERRLEN];
    int rc = srv_eval_form_field(&s->rq, &s->form, key, filename, data, off, size,
                                 srv_req_cfg(r)->jobs_dir, err, sizeof err);
    if (rc) {
        srv_req_defer(r, form_status(rc), "%s", err);
        return MHD_NO;
    }
    return MHD_YES;
}

/* The Content-Types of a JSON body (or multipart/form-data) for POST /evaluate. */
static const char *const JSON_TYPES[] = {
    "application/json", "text/json",
    /* curl -d's default: the body is JSON all the same */
    "application/x-www-form-urlencoded",
};

/* POST /evaluate, headers in: parameters from the query string, then the body. */
enum MHD_Result srv_ep_eval_begin(srv_req *r)
{
    if (srv_req_draining(r))
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    if (srv_req_query(r))
        return srv_req_error_deferred(r);
    eval_state *s = calloc(1, sizeof *s);
    if (!s)
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    r->st = s;
    srv_eval_request_init(&s->rq);
    s->rq.params = r->q.params;
    s->rq.seed = r->q.seed;
    s->rq.dct = r->q.dct;
    const char *ct = srv_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    int kind = srv_req_content_kind(ct, JSON_TYPES, sizeof JSON_TYPES / sizeof JSON_TYPES[0]);
    if (kind == 0)
        return srv_req_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                             "unsupported Content-Type '%.80s' (send application/json naming a "
                             "dataset, or multipart/form-data with 'image' fields)",
                             ct);
    return srv_req_start_body(r, kind == 2, eval_post_iter);
}

/* POST /evaluate: the body is complete: create the job, answer 202. */
enum MHD_Result srv_ep_eval_body(srv_req *r)
{
    eval_state *s = r->st;
    char err[ADJ_ERRLEN];
    int rc;
    if (r->multipart) {
        if ((rc = srv_eval_form_finish(&s->rq, &s->form, err, sizeof err)))
            return srv_req_error(r, MHD_HTTP_BAD_REQUEST, "%s", err);
    } else {
        if (r->len == 0)
            return srv_req_error(r, MHD_HTTP_BAD_REQUEST,
                                 "empty body: send JSON such as {\"dataset\": \"imagenet/val\"}, "
                                 "or upload images as multipart/form-data fields 'image'");
        rc = srv_eval_parse_json(&s->rq, (const char *)r->body, r->len, err, sizeof err);
        srv_req_body_drop(r);
        if (rc)
            return srv_req_error(r, srv_status_http(rc), "%s", err);
    }
    char id[SRV_JOB_ID_LEN + 1];
    if ((rc = srv_jobs_create(srv_req_engine(r)->jobs, &s->rq, id, err, sizeof err)))
        return srv_req_error(r, srv_status_http(rc), "%s", err);
    char location[64];
    snprintf(location, sizeof location, "/jobs/%s", id);
    const char *headers[] = {MHD_HTTP_HEADER_LOCATION, location, NULL};
    return srv_req_respond_json(r, MHD_HTTP_ACCEPTED,
                                json_pack("{s:s,s:s}", "id", id, "status", "queued"), headers);
}

/* ---------------------------------------------------------------- GET /jobs... */

/* Up to n - 1 bytes of s for a message: printable ASCII, anything else as '?'. */
static const char *ascii_echo(const char *s, char *out, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[i] = '\0';
    return out;
}

/*
 * The store, and the job id of /jobs/{id}... into id (checked before
 * anything touches the file system). NULL when answered (*ret: 503, 404).
 */
static srv_jobs *job_of(srv_req *r, char id[SRV_JOB_ID_LEN + 1], enum MHD_Result *ret)
{
    srv_jobs *js = srv_req_engine(r)->jobs;
    char err[ADJ_ERRLEN];
    if (srv_req_query(r)) { /* none taken: unknown parameters are refused */
        *ret = srv_req_error_deferred(r);
        return NULL;
    }
    if (srv_jobs_unavailable(js, err, sizeof err)) {
        *ret = srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
        return NULL;
    }
    const char *rest = r->url + strlen("/jobs/");
    size_t n = strcspn(rest, "/");
    if (n != SRV_JOB_ID_LEN || (memcpy(id, rest, n), id[n] = '\0', !srv_job_id_ok(id))) {
        char shown[41];
        *ret = srv_req_error(r, MHD_HTTP_NOT_FOUND,
                             "no such job: '%s' (a job id is %d lowercase hex digits)",
                             ascii_echo(rest, shown, sizeof shown), SRV_JOB_ID_LEN);
        return NULL;
    }
    return js;
}

/* A job store call's answer: o as JSON, or rc's status with err. */
static enum MHD_Result answer(srv_req *r, int rc, json_t *o, const char *err)
{
    if (rc)
        return srv_req_error(r, srv_status_http(rc), "%s", err);
    return srv_req_respond_json(r, MHD_HTTP_OK, o, NULL);
}

enum MHD_Result srv_ep_jobs_list(srv_req *r)
{
    srv_jobs *js = srv_req_engine(r)->jobs;
    char err[ADJ_ERRLEN];
    if (srv_req_query(r))
        return srv_req_error_deferred(r);
    if (srv_jobs_unavailable(js, err, sizeof err))
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
    return srv_req_respond_json(r, MHD_HTTP_OK, srv_jobs_list(js, r->q.status), NULL);
}

enum MHD_Result srv_ep_job(srv_req *r)
{
    char id[SRV_JOB_ID_LEN + 1];
    enum MHD_Result ret;
    srv_jobs *js = job_of(r, id, &ret);
    if (!js)
        return ret;
    json_t *o = NULL;
    const int del = strcmp(r->method, MHD_HTTP_METHOD_DELETE) == 0;
    if (r->q.purge && !del)
        return srv_req_error(r, MHD_HTTP_BAD_REQUEST, "purge=1 goes with DELETE /jobs/%s", id);
    int rc = !del ? srv_jobs_status(js, id, &o)
             : r->q.purge ? srv_jobs_delete(js, id, &o)
                          : srv_jobs_cancel(js, id, &o);
    if (rc == ADJ_ERR_NOTFOUND)
        return srv_req_error(r, srv_status_http(rc), "no such job: %s", id);
    if (rc == ADJ_ERR_CONFLICT)
        return srv_req_error(r, srv_status_http(rc),
                             "job %s has not ended: cancel it (DELETE /jobs/%s) first", id, id);
    return answer(r, rc, o, "out of memory");
}

enum MHD_Result srv_ep_job_result(srv_req *r)
{
    char id[SRV_JOB_ID_LEN + 1], err[ADJ_ERRLEN];
    enum MHD_Result ret;
    srv_jobs *js = job_of(r, id, &ret);
    if (!js)
        return ret;
    json_t *o = NULL;
    int rc = srv_jobs_result(js, id, &o, err, sizeof err);
    return answer(r, rc, o, err);
}

enum MHD_Result srv_ep_job_rows(srv_req *r)
{
    char id[SRV_JOB_ID_LEN + 1], err[ADJ_ERRLEN];
    enum MHD_Result ret;
    srv_jobs *js = job_of(r, id, &ret);
    if (!js)
        return ret;
    int fd;
    uint64_t len;
    int rc = srv_jobs_rows(js, id, &fd, &len, err, sizeof err);
    if (rc)
        return answer(r, rc, NULL, err);
    struct MHD_Response *resp = MHD_create_response_from_fd64(len, fd);
    if (!resp) {
        close(fd);
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    }
    char disp[96];
    snprintf(disp, sizeof disp, "attachment; filename=\"rows-%s.csv\"", id);
    const char *headers[] = {"Content-Disposition", disp, NULL};
    return srv_req_respond_with(r, MHD_HTTP_OK, resp, "text/csv; charset=utf-8; header=present",
                                headers);
}

enum MHD_Result srv_ep_job_figure(srv_req *r)
{
    char id[SRV_JOB_ID_LEN + 1], err[ADJ_ERRLEN];
    enum MHD_Result ret;
    srv_jobs *js = job_of(r, id, &ret);
    if (!js)
        return ret;
    static const struct {
        const char *name;
        srv_figure which;
    } FIGURES[] = {{"/figure3.svg", SRV_FIGURE_3}, {"/figure4.svg", SRV_FIGURE_4},
                   {"/quality.svg", SRV_FIGURE_QUALITY}};
    const char *name = strrchr(r->url, '/');
    srv_figure which = SRV_FIGURE_3;
    for (size_t i = 0; i < sizeof FIGURES / sizeof FIGURES[0]; i++)
        if (strcmp(name, FIGURES[i].name) == 0)
            which = FIGURES[i].which;
    char *svg;
    size_t len;
    int rc = srv_jobs_figure(js, id, which, r->q.axis, r->q.figure_eps, &svg, &len, err,
                             sizeof err);
    if (rc)
        return answer(r, rc, NULL, err);
    return srv_req_respond(r, MHD_HTTP_OK, "image/svg+xml", svg, len, 1, NULL);
}

enum MHD_Result srv_ep_job_image(srv_req *r)
{
    char id[SRV_JOB_ID_LEN + 1], err[ADJ_ERRLEN];
    enum MHD_Result ret;
    srv_jobs *js = job_of(r, id, &ret);
    if (!js)
        return ret;
    const char *file = r->url + strlen("/jobs/") + SRV_JOB_ID_LEN + strlen("/images/");
    if (!*file || strchr(file, '/'))
        return srv_req_error(r, MHD_HTTP_NOT_FOUND, "no such image: give a file name of the job");
    srv_job_image im;
    int rc = srv_jobs_image(js, id, file, &im, err, sizeof err);
    if (rc)
        return answer(r, rc, NULL, err);
    return srv_ep_img_of_job(r, id, file, &im);
}

enum MHD_Result srv_ep_job_dct(srv_req *r)
{
    char id[SRV_JOB_ID_LEN + 1], err[ADJ_ERRLEN];
    enum MHD_Result ret;
    srv_jobs *js = job_of(r, id, &ret);
    if (!js)
        return ret;
    const int svg = strcmp(strrchr(r->url, '/'), "/dct.svg") == 0;
    json_t *o = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = srv_jobs_dct(js, id, r->q.figure_eps, svg ? NULL : &o, svg ? &text : NULL, &len,
                          err, sizeof err);
    if (rc || !svg)
        return answer(r, rc, o, err);
    return srv_req_respond(r, MHD_HTTP_OK, "image/svg+xml", text, len, 1, NULL);
}

enum MHD_Result srv_ep_job_other(srv_req *r)
{
    char id[SRV_JOB_ID_LEN + 1];
    enum MHD_Result ret;
    if (!job_of(r, id, &ret))
        return ret;
    char shown[101], under[128];
    return srv_req_error(r, MHD_HTTP_NOT_FOUND, "no such endpoint: %s (a job has %s)",
                         ascii_echo(r->url, shown, sizeof shown),
                         srv_routes_under("/jobs/{id}", under, sizeof under));
}
