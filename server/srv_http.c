#include "srv_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "experiment.h"
#include "image.h"
#include "net.h"
#include "srv_conns.h"
#include "srv_eval.h"
#include "srv_front.h"
#include "srv_json.h"
#include "srv_params.h"
#include "srv_status.h"
#include "status.h"
#include "ut_clock.h"
#include "web_assets.h"

#define POST_BUFFER_SIZE (64 * 1024)
#define CONNECTION_MEMORY (128 * 1024)
#define LOG_PATH_MAX 160
/* How long the rest of a refused body is read and thrown away before the
 * answer (nginx's lingering_time is 30 s) */
#define DISCARD_SECONDS 10.0

struct srv_http {
    struct MHD_Daemon *daemon;
    const srv_config *cfg;
    srv_metrics *metrics;
    int listen_fd; /* ours again after quiesce (then closed), -1 */
    srv_engine engine; /* valid once ready is set */
    atomic_int ready;
    atomic_int draining;
    atomic_int active;
    srv_conns *conns; /* every open connection: deadlines and limits */
    srv_front *front; /* accepts and checks each request head first (srv_front.h) */
    /* the decode pool (pool_lock guards the queue) */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    struct srv_req **pool_q; /* ring of pool_cap */
    int pool_cap, pool_head, pool_n, pool_stop;
    int pool_threads;        /* started */
    int pool_started;        /* pool_lock and pool_cond exist */
    pthread_t *pool_tid;
};

/* ---------------------------------------------------------------- requests */

typedef enum {
    RS_BODY,     /* receiving the body */
    RS_WORKING,  /* suspended, a decode-pool thread has it */
    RS_WORKED,   /* the decode pool is done (or refused it): go on */
    RS_QUEUED,   /* suspended, the worker has the job */
    RS_DONE,     /* the worker is done (or the submit failed): answer now */
    RS_ANSWERED, /* a response is queued */
} req_state;

/* Which query parameters an endpoint takes. */
enum {
    P_TOP_K = 1 << 0,
    P_RESIZE = 1 << 1,
    P_EPS = 1 << 2,
    P_QUALITY = 1 << 3,
    P_SEED = 1 << 4,
    P_IMAGES = 1 << 5,
};

typedef struct srv_req {
    srv_http *h;
    struct MHD_Connection *conn;
    srv_endpoint ep;
    req_state state;
    double t0;
    unsigned status; /* answered with; 0 until then */
    char method[16];
    char path[LOG_PATH_MAX];
    /* An answer decided on the first call to a request without a body waits
     * for the next call: libmicrohttpd closes the connection after a
     * response queued that early. */
    int first_call;
    int has_body;
    int close; /* answer with Connection: close (the framing is in doubt) */
    srv_conn *crec; /* the connection's record, NULL if untracked */
    struct MHD_Response *pending;
    unsigned pending_status;

    /* parameters */
    unsigned allowed;
    int top_k;
    int resize_center;
    exp_params params;
    uint64_t seed;
    int images;
    int want_png;  /* /attack: Accept: image/png */
    int want_json; /* /recompress: Accept: application/json */

    /* body */
    int multipart;
    struct MHD_PostProcessor *pp;
    uint8_t *body;
    size_t len, cap;
    uint64_t received;  /* raw body bytes seen */
    unsigned err_status; /* an error found while reading the body; answered at its end */
    char err_msg[ADJ_ERRLEN];
    double err_t;        /* when err_status was set (ut_now) */

    /* the work */
    int width, height; /* the uploaded image */
    img_rgb x;         /* the prepared crop */
    img_rgb pair[2];   /* /recompress as JSON: the crops before and after JPG */
    float *input;      /* forward jobs: [n][3][S][S] */
    float *probs;      /* forward jobs: [n][classes] */
    uint8_t *jpeg;     /* /recompress */
    size_t jpeg_len;
    int submit_failed; /* the job never reached the worker: err_status/err_msg say why */
    int expected;      /* counted in srv_worker_expect until submitted or done */
    srv_job job;

    /* 405 answers: the methods this path takes */
    const char *allow;
    /* POST /evaluate */
    srv_eval_request *eval;
    srv_eval_form form;      /* its multipart fields as they arrive */
} srv_req;

static void req_free(srv_req *r)
{
    if (!r)
        return;
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    if (r->pending)
        MHD_destroy_response(r->pending);
    free(r->body);
    img_free(&r->x);
    img_free(&r->pair[0]);
    img_free(&r->pair[1]);
    free(r->input);
    free(r->probs);
    free(r->jpeg);
    exp_result_free(&r->job.result);
    srv_eval_request_free(r->eval);
    free(r->eval);
    free(r);
}

/* ---------------------------------------------------------------- responses */

/*
 * The one place that answers: creates the response (taking `data` when
 * `owned`, which is then released with free(), else copying it), adds
 * Content-Type, the NULL-terminated name/value pairs in `headers` and, while
 * draining, Connection: close; queues it and destroys our reference.
 */
static enum MHD_Result respond_with(srv_req *r, unsigned status, struct MHD_Response *resp,
                                    const char *ctype, const char *const *headers);

static enum MHD_Result respond(srv_req *r, unsigned status, const char *ctype, void *data,
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
    return respond_with(r, status, resp, ctype, headers);
}

/* respond() for a response already made (which it takes over). */
static enum MHD_Result respond_with(srv_req *r, unsigned status, struct MHD_Response *resp,
                                    const char *ctype, const char *const *headers)
{
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (int i = 0; headers && headers[i]; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    /* without --keep-alive 1, the next request comes on a new connection, through srv_front */
    if (r->close || atomic_load(&r->h->draining) || !r->h->cfg->keep_alive)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->status = status;
    r->state = RS_ANSWERED;
    if (r->first_call && !r->has_body) {
        r->pending = resp;
        r->pending_status = status;
        return MHD_YES;
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result respond_json(srv_req *r, unsigned status, json_t *j,
                                    const char *const *headers)
{
    char *text = srv_json_dump(j);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        return respond(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json", (void *)oom,
                       sizeof oom - 1, 0, NULL);
    }
    return respond(r, status, "application/json", text, strlen(text), 1, headers);
}

/* {"error": msg} with the headers that status calls for. */
static enum MHD_Result respond_error_msg(srv_req *r, unsigned status, const char *msg)
{
    const char *headers[8];
    int n = 0;
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        headers[n++] = MHD_HTTP_HEADER_RETRY_AFTER;
        headers[n++] = "1";
    } else if (status == MHD_HTTP_UNAUTHORIZED) {
        headers[n++] = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
        headers[n++] = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_AUTHORIZATION)
                           ? "Bearer realm=\"advjpgd\", error=\"invalid_token\""
                           : "Bearer realm=\"advjpgd\"";
    } else if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        headers[n++] = MHD_HTTP_HEADER_ALLOW;
        headers[n++] = r->allow ? r->allow : "GET, HEAD";
    }
    headers[n] = NULL;
    char *text = srv_json_error(msg);
    if (!text)
        return MHD_NO;
    return respond(r, status, "application/json", text, strlen(text), 1, headers);
}

__attribute__((format(printf, 3, 4))) static enum MHD_Result
respond_error(srv_req *r, unsigned status, const char *fmt, ...)
{
    char msg[ADJ_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return respond_error_msg(r, status, msg);
}

/* Remembers the first error met while reading the body; answered at its end. */
__attribute__((format(printf, 3, 4))) static void defer_error(srv_req *r, unsigned status,
                                                              const char *fmt, ...)
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

/* ---------------------------------------------------------------- checks */

int srv_token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < lb; i++)
        d |= (unsigned char)(b[i] ^ (i < la ? a[i] : 0));
    return d == 0;
}

/* Whether a comma-separated Accept header lists this media type. */
static int accept_has(const char *accept, const char *type)
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

static enum MHD_Result param_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    srv_req *r = cls;
    const model_spec *spec = model_get_spec(r->h->engine.model);
    long v;
    const char *val = value ? value : "";
    (void)kind;
    if (r->err_status)
        return MHD_NO;
    if (strcmp(key, "top_k") == 0 && (r->allowed & P_TOP_K)) {
        if (!srv_parse_long(val, 1, spec->classes, &v)) {
            defer_error(r, MHD_HTTP_BAD_REQUEST,
                        "top_k: '%s' is not an integer in 1..%d", val, spec->classes);
            return MHD_NO;
        }
        r->top_k = (int)v;
    } else if (strcmp(key, "resize") == 0 && (r->allowed & P_RESIZE)) {
        if (strcmp(val, "center") == 0)
            r->resize_center = 1;
        else if (strcmp(val, "none") == 0)
            r->resize_center = 0;
        else {
            defer_error(r, MHD_HTTP_BAD_REQUEST, "resize: '%s' is not one of center, none", val);
            return MHD_NO;
        }
    } else if (strcmp(key, "quality") == 0 && (r->allowed & P_QUALITY)) {
        if (!srv_parse_long(val, 1, 100, &v)) {
            defer_error(r, MHD_HTTP_BAD_REQUEST, "quality: '%s' is not an integer in 1..100", val);
            return MHD_NO;
        }
        r->params.quality = (int)v;
    } else if (strcmp(key, "seed") == 0 && (r->allowed & P_SEED)) {
        if (!srv_parse_seed(val, &r->seed)) {
            defer_error(r, MHD_HTTP_BAD_REQUEST,
                        "seed: '%s' is not an integer in 0..18446744073709551615", val);
            return MHD_NO;
        }
    } else if (strcmp(key, "images") == 0 && (r->allowed & P_IMAGES)) {
        if (!srv_parse_long(val, 0, 1, &v)) {
            defer_error(r, MHD_HTTP_BAD_REQUEST, "images: '%s' is not 0 or 1", val);
            return MHD_NO;
        }
        r->images = (int)v;
    } else if (strcmp(key, "eps") == 0 && (r->allowed & P_EPS)) {
        char err[ADJ_ERRLEN];
        if (srv_parse_eps(val, &r->params, err, sizeof err)) {
            defer_error(r, MHD_HTTP_BAD_REQUEST, "%s", err);
            return MHD_NO;
        }
    } else {
        static const char *const names[] = {"top_k", "resize", "eps", "quality", "seed", "images"};
        char known[96] = "";
        for (int i = 0; i < 6; i++)
            if (r->allowed & (1u << i)) {
                strcat(known, *known ? ", " : "");
                strcat(known, names[i]);
            }
        defer_error(r, MHD_HTTP_BAD_REQUEST, "unknown parameter '%.64s' for %s (it takes: %s)", key,
                    srv_endpoint_name(r->ep), known);
        return MHD_NO;
    }
    return MHD_YES;
}

/* ---------------------------------------------------------------- body */

static int body_append(srv_req *r, const char *data, size_t size)
{
    size_t max = r->h->cfg->max_body;
    if (size > max - r->len) {
        defer_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "the image is larger than the limit of %zu bytes",
                    max);
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
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
            defer_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory for the request body");
            return 0;
        }
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, size);
    r->len += size;
    return 1;
}

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *filename, const char *content_type,
                                 const char *transfer_encoding, const char *data, uint64_t off,
                                 size_t size)
{
    srv_req *r = cls;
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding;
    if (r->err_status)
        return MHD_NO;
    if (!key || strcmp(key, "image") != 0 || size == 0)
        return MHD_YES; /* other fields are ignored */
    if (off == 0 && r->len > 0) {
        defer_error(r, MHD_HTTP_BAD_REQUEST,
                    "more than one 'image' field: send one image per request");
        return MHD_NO;
    }
    return body_append(r, data, size) ? MHD_YES : MHD_NO;
}

/* What a Content-Type asks for: 1 raw image bytes, 2 multipart, 0 unsupported. */
static int content_kind(const char *ct)
{
    static const char *const raw[] = {
        "image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/x-portable-pixmap",
        "image/x-portable-anymap", "application/octet-stream",
        /* curl --data-binary's default; the bytes are sniffed anyway */
        "application/x-www-form-urlencoded",
    };
    if (!ct || !*ct)
        return 1;
    size_t n = strcspn(ct, "; \t");
    if (n == strlen("multipart/form-data") && strncasecmp(ct, "multipart/form-data", n) == 0)
        return 2;
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++)
        if (strlen(raw[i]) == n && strncasecmp(ct, raw[i], n) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- GET endpoints */

static enum MHD_Result answer_health(srv_req *r)
{
    if (atomic_load(&r->h->draining))
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    if (!atomic_load_explicit(&r->h->ready, memory_order_acquire))
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "model is loading");
    return respond_json(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"), NULL);
}

static enum MHD_Result answer_models(srv_req *r)
{
    if (!atomic_load_explicit(&r->h->ready, memory_order_acquire))
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "model is loading");
    const srv_engine *e = &r->h->engine;
    return respond_json(r, MHD_HTTP_OK,
                        srv_json_models(e->model, e->labels_path, e->labels, e->max_batch), NULL);
}

static enum MHD_Result answer_metrics(srv_req *r)
{
    srv_http *h = r->h;
    srv_metrics_gauges g = {0, 0, 0.0};
    if (atomic_load_explicit(&h->ready, memory_order_acquire)) {
        g.model_ready = 1;
        g.queue_depth = srv_worker_queued(h->engine.worker);
        g.model_load_seconds = h->engine.load_seconds;
    }
    char *text = srv_metrics_render(h->metrics, &g);
    if (!text)
        return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return respond(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text),
                   1, NULL);
}

/* ---------------------------------------------------------------- POST endpoints */

/* The model's input crop of im according to center (resize=center|none)
 * into *x; moves or frees im. 0, or -1 with the error in r (defer_error). */
static int prepare(srv_req *r, img_rgb *im, int center, img_rgb *x)
{
    const model_spec *spec = model_get_spec(r->h->engine.model);
    char err[ADJ_ERRLEN];
    if (!center) {
        if (im->w != spec->input_size || im->h != spec->input_size) {
            defer_error(r, MHD_HTTP_BAD_REQUEST,
                        "resize=none needs a %dx%d image (the model's input size), got %dx%d",
                        spec->input_size, spec->input_size, im->w, im->h);
            img_free(im);
            return -1;
        }
        *x = *im;
        memset(im, 0, sizeof *im);
        return 0;
    }
    int rc = img_prepare(im, spec->scale_size, spec->input_size, x, err, sizeof err);
    img_free(im);
    if (rc) {
        defer_error(r, srv_status_http(rc), "%s", err);
        return -1;
    }
    return 0;
}

static void on_job_done(srv_job *job, void *arg)
{
    srv_req *r = arg;
    (void)job;
    r->state = RS_DONE;
    MHD_resume_connection(r->conn);
}

/* Suspends the connection and hands the job to the worker. */
static enum MHD_Result submit(srv_req *r)
{
    srv_http *h = r->h;
    char err[ADJ_ERRLEN];
    r->job.prio = SRV_PRIO_INTERACTIVE;
    r->job.deadline = r->t0 + h->cfg->timeout_s;
    r->job.done = on_job_done;
    r->job.done_arg = r;
    if (r->expected) {
        r->expected = 0;
        srv_worker_expect(h->engine.worker, -1);
    }
    /* Suspend first: the worker may resume the connection at once. */
    r->state = RS_QUEUED;
    MHD_suspend_connection(r->conn);
    int rc = srv_worker_submit(h->engine.worker, &r->job, err, sizeof err);
    if (rc) {
        r->submit_failed = 1;
        /* a malformed job is this server's bug; a full queue or shutting down is 503 */
        r->err_status = rc == ADJ_ERR_ARG ? srv_status_http_internal(rc) : srv_status_http(rc);
        snprintf(r->err_msg, sizeof r->err_msg, "%s", err);
        r->state = RS_DONE;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

/* Planar floats of images (each input_size square) into a new buffer. */
static float *planar(const img_rgb *ims, int n)
{
    size_t per = (size_t)3 * ims[0].w * ims[0].h;
    float *p = malloc((size_t)n * per * sizeof *p);
    if (p)
        for (int i = 0; i < n; i++)
            img_to_planar(&ims[i], p + (size_t)i * per);
    return p;
}

static enum MHD_Result start_forward(srv_req *r, const img_rgb *ims, int n)
{
    const model_spec *spec = model_get_spec(r->h->engine.model);
    r->input = planar(ims, n);
    r->probs = calloc((size_t)n * spec->classes, sizeof *r->probs);
    if (!r->input || !r->probs)
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    r->job.kind = SRV_JOB_FORWARD;
    r->job.n = n;
    r->job.input = r->input;
    r->job.probs = r->probs;
    return submit(r);
}

/*
 * /recompress off the HTTP threads: the JPEG of im (or of its crop) into
 * r->jpeg and, for a JSON answer, the crops before and after the JPEG round
 * trip into r->pair. Frees im. 0, or -1 with the error in r.
 */
static int work_recompress(srv_req *r, img_rgb *im)
{
    const model_spec *spec = model_get_spec(r->h->engine.model);
    char err[ADJ_ERRLEN];
    int rc;
    img_rgb base = {0}; /* what gets encoded: the upload, or its crop */
    if (r->resize_center) {
        if (prepare(r, im, 1, &base))
            return -1;
    } else {
        base = *im;
        memset(im, 0, sizeof *im);
    }
    rc = img_encode_jpeg(&base, r->params.quality, &r->jpeg, &r->jpeg_len, err, sizeof err);
    if (rc || !r->want_json) {
        img_free(&base);
        if (rc)
            defer_error(r, srv_status_http_internal(rc), "%s", err);
        return rc ? -1 : 0;
    }
    /* JSON: classify the crop before and after the JPEG round trip. The
     * experiment's JPG() (accurate IDCT) gives the "after" image. */
    img_rgb after = {0};
    rc = img_jpeg_roundtrip(&base, r->params.quality, &after, err, sizeof err);
    if (rc) {
        img_free(&base);
        defer_error(r, srv_status_http_internal(rc), "%s", err);
        return -1;
    }
    if (base.w == spec->input_size && base.h == spec->input_size) {
        r->pair[0] = base;
        r->pair[1] = after;
        return 0;
    }
    rc = img_prepare(&base, spec->scale_size, spec->input_size, &r->pair[0], err, sizeof err);
    if (!rc)
        rc = img_prepare(&after, spec->scale_size, spec->input_size, &r->pair[1], err, sizeof err);
    img_free(&base);
    img_free(&after);
    if (rc) {
        defer_error(r, srv_status_http(rc), "%s", err);
        return -1;
    }
    return 0;
}

/*
 * The work of an image request, on a decode-pool thread while the
 * connection is suspended: decode the body, then the crop (/classify,
 * /attack) or the JPEG (/recompress). Results in r->x, r->jpeg, r->pair;
 * an error in r->err_status / r->err_msg. Touches no libmicrohttpd state.
 */
static void work_image(srv_req *r)
{
    char err[ADJ_ERRLEN];
    img_rgb im = {0};
    int rc = img_decode(r->body, r->len, r->h->cfg->max_pixels, &im, err, sizeof err);
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
    if (rc) {
        defer_error(r, srv_status_http(rc), "%s", err);
        return;
    }
    r->width = im.w;
    r->height = im.h;
    if (r->ep == SRV_EP_RECOMPRESS)
        work_recompress(r, &im);
    else
        prepare(r, &im, r->resize_center, &r->x);
}

/* The decode pool is done with r (on the HTTP thread again): answer or
 * hand the prepared input to the worker. */
static enum MHD_Result after_work(srv_req *r)
{
    if (r->err_status)
        return respond_error_msg(r, r->err_status, r->err_msg);
    switch (r->ep) {
    case SRV_EP_CLASSIFY:
        return start_forward(r, &r->x, 1);
    case SRV_EP_ATTACK:
        r->job.kind = SRV_JOB_ATTACK;
        r->job.x = r->x;
        r->job.params = r->params;
        r->job.seed = r->seed;
        return submit(r);
    case SRV_EP_RECOMPRESS:
        if (!r->want_json) {
            uint8_t *jpeg = r->jpeg;
            r->jpeg = NULL;
            return respond(r, MHD_HTTP_OK, "image/jpeg", jpeg, r->jpeg_len, 1, NULL);
        }
        return start_forward(r, r->pair, 2);
    default:
        return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "no handler");
    }
}

static enum MHD_Result eval_done(srv_req *r);
static int pool_submit(srv_http *h, srv_req *r);

/* The body is complete: check it, and hand the image work to the decode
 * pool (the connection is suspended until it is done). */
static enum MHD_Result body_done(srv_req *r)
{
    if (r->pp) {
        enum MHD_Result ok = MHD_destroy_post_processor(r->pp);
        r->pp = NULL;
        if (ok != MHD_YES)
            defer_error(r, MHD_HTTP_BAD_REQUEST, "malformed multipart/form-data body");
    }
    if (r->err_status)
        return respond_error_msg(r, r->err_status, r->err_msg);
    if (r->ep == SRV_EP_EVALUATE)
        return eval_done(r);
    if (r->len == 0)
        return respond_error(r, MHD_HTTP_BAD_REQUEST,
                             r->multipart ? "no 'image' field in the multipart/form-data body"
                                          : "empty body: send the image as the request body "
                                            "or as the multipart/form-data field 'image'");
    /* Suspend first: a pool thread may resume the connection at once. */
    r->state = RS_WORKING;
    MHD_suspend_connection(r->conn);
    if (pool_submit(r->h, r)) {
        defer_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "too many images waiting to be decoded (%d): try again", r->h->cfg->queue_size);
        r->state = RS_WORKED;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

/* ---------------------------------------------------------------- the decode pool */

/*
 * Decoding, cropping and JPEG-encoding an upload cost up to a second of CPU
 * (within --max-pixels and the JPEG work budget). On a libmicrohttpd thread
 * that would hold up every other connection of that thread, /health
 * included. So the HTTP threads only move bytes: an image request is
 * suspended and queued here (at most --queue-size waiting, else 503), one
 * of --threads pool threads runs work_image on it and resumes it.
 */
static void *pool_main(void *arg)
{
    srv_http *h = arg;
    pthread_mutex_lock(&h->pool_lock);
    for (;;) {
        while (!h->pool_n && !h->pool_stop)
            pthread_cond_wait(&h->pool_cond, &h->pool_lock);
        if (!h->pool_n)
            break; /* stopping, and nothing left */
        srv_req *r = h->pool_q[h->pool_head];
        h->pool_head = (h->pool_head + 1) % h->pool_cap;
        h->pool_n--;
        int stopping = h->pool_stop;
        pthread_mutex_unlock(&h->pool_lock);
        if (stopping)
            defer_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
        else
            work_image(r);
        r->state = RS_WORKED;
        MHD_resume_connection(r->conn);
        pthread_mutex_lock(&h->pool_lock);
    }
    pthread_mutex_unlock(&h->pool_lock);
    return NULL;
}

/* Queues a suspended request for the pool; -1 when the queue is full. */
static int pool_submit(srv_http *h, srv_req *r)
{
    pthread_mutex_lock(&h->pool_lock);
    int full = h->pool_n == h->pool_cap || h->pool_stop;
    if (!full) {
        h->pool_q[(h->pool_head + h->pool_n) % h->pool_cap] = r;
        h->pool_n++;
        pthread_cond_signal(&h->pool_cond);
    }
    pthread_mutex_unlock(&h->pool_lock);
    return full ? -1 : 0;
}

/* Starts n pool threads with a queue of cap; ADJ_ERR_NOMEM. */
static int pool_start(srv_http *h, int n, int cap)
{
    pthread_mutex_init(&h->pool_lock, NULL);
    pthread_cond_init(&h->pool_cond, NULL);
    h->pool_cap = cap;
    if (!(h->pool_q = calloc((size_t)cap, sizeof *h->pool_q)) ||
        !(h->pool_tid = calloc((size_t)n, sizeof *h->pool_tid)))
        return ADJ_ERR_NOMEM;
    for (; h->pool_threads < n; h->pool_threads++)
        if (pthread_create(&h->pool_tid[h->pool_threads], NULL, pool_main, h))
            return ADJ_ERR_NOMEM;
    return ADJ_OK;
}

/* Stops the pool: what is queued is resumed with 503, the running work
 * finishes, later submissions are refused; returns when every thread has
 * ended. Safe on a half-started pool. */
static void pool_stop(srv_http *h)
{
    pthread_mutex_lock(&h->pool_lock);
    h->pool_stop = 1;
    pthread_cond_broadcast(&h->pool_cond);
    pthread_mutex_unlock(&h->pool_lock);
    for (int i = 0; i < h->pool_threads; i++)
        pthread_join(h->pool_tid[i], NULL);
    h->pool_threads = 0;
}

/* Frees the stopped pool, once no HTTP thread can call pool_submit. */
static void pool_free(srv_http *h)
{
    free(h->pool_q);
    free(h->pool_tid);
    h->pool_q = NULL;
    h->pool_tid = NULL;
    pthread_cond_destroy(&h->pool_cond);
    pthread_mutex_destroy(&h->pool_lock);
}

/* The worker is done (or the submit failed): build the answer. */
static enum MHD_Result answer_job(srv_req *r)
{
    srv_http *h = r->h;
    const srv_engine *e = &h->engine;
    const model_spec *spec = model_get_spec(e->model);
    srv_job *j = &r->job;
    char err[ADJ_ERRLEN];

    if (r->submit_failed)
        return respond_error_msg(r, r->err_status, r->err_msg);
    if (j->status == SRV_JOB_TIMED_OUT)
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "timed out: %s (limit %d s)", j->err,
                             h->cfg->timeout_s);
    if (j->status != SRV_JOB_OK)
        return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", j->err);

    srv_json_ctx c = {spec->name, spec->classes, spec->input_size, e->labels, r->top_k};
    switch (r->ep) {
    case SRV_EP_CLASSIFY:
        return respond_json(r, MHD_HTTP_OK, srv_json_classify(&c, r->probs, r->width, r->height),
                            NULL);
    case SRV_EP_RECOMPRESS:
        return respond_json(r, MHD_HTTP_OK,
                            srv_json_recompress(&c, r->params.quality, r->probs, r->width,
                                                r->height, r->jpeg, r->jpeg_len),
                            NULL);
    case SRV_EP_ATTACK:
        if (r->want_png) {
            int t = 0;
            while (t < j->result.n_transforms &&
                   exp_transform_kind_of(&r->params, t) != EXP_T_ADV)
                t++;
            uint8_t *png;
            size_t len;
            if (t == j->result.n_transforms ||
                img_encode_png(&j->result.images[t], &png, &len, err, sizeof err))
                return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                     "%s", t == j->result.n_transforms ? "no Adv image" : err);
            return respond(r, MHD_HTTP_OK, "image/png", png, len, 1, NULL);
        } else {
            json_t *o = srv_json_attack(&c, &r->params, r->seed, &j->result, r->width, r->height,
                                        r->images, err, sizeof err);
            if (!o)
                return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
            return respond_json(r, MHD_HTTP_OK, o, NULL);
        }
    default:
        return respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "no handler");
    }
}

/* ---------------------------------------------------------------- evaluation jobs */

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
    (void)kind, (void)content_type, (void)transfer_encoding;
    if (r->err_status)
        return MHD_NO;
    char err[ADJ_ERRLEN];
    int rc = srv_eval_form_field(r->eval, &r->form, key, filename, data, off, size,
                                 r->h->cfg->jobs_dir, err, sizeof err);
    if (rc) {
        defer_error(r, form_status(rc), "%s", err);
        return MHD_NO;
    }
    return MHD_YES;
}

/* POST /evaluate: the body is complete: create the job, answer 202. */
static enum MHD_Result eval_done(srv_req *r)
{
    char err[ADJ_ERRLEN];
    srv_eval_request *rq = r->eval;
    int rc;
    if (r->multipart) {
        if ((rc = srv_eval_form_finish(rq, &r->form, err, sizeof err)))
            return respond_error(r, MHD_HTTP_BAD_REQUEST, "%s", err);
    } else {
        if (r->len == 0)
            return respond_error(r, MHD_HTTP_BAD_REQUEST,
                                 "empty body: send JSON such as {\"dataset\": \"imagenet/val\"}, "
                                 "or upload images as multipart/form-data fields 'image'");
        rc = srv_eval_parse_json(rq, (const char *)r->body, r->len, err, sizeof err);
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        if (rc)
            return respond_error(r, srv_status_http(rc), "%s", err);
    }
    char id[SRV_JOB_ID_LEN + 1];
    if ((rc = srv_jobs_create(r->h->engine.jobs, rq, id, err, sizeof err)))
        return respond_error(r, srv_status_http(rc), "%s", err);
    char location[64];
    snprintf(location, sizeof location, "/jobs/%s", id);
    const char *headers[] = {MHD_HTTP_HEADER_LOCATION, location, NULL};
    return respond_json(r, MHD_HTTP_ACCEPTED, json_pack("{s:s,s:s}", "id", id, "status", "queued"),
                        headers);
}

/* What a Content-Type of POST /evaluate asks for: 2 multipart, 3 JSON, 0 unsupported. */
static int eval_content_kind(const char *ct)
{
    static const char *const json_types[] = {
        "application/json", "text/json",
        /* curl -d's default: the body is JSON all the same */
        "application/x-www-form-urlencoded",
    };
    if (!ct || !*ct)
        return 3;
    size_t n = strcspn(ct, "; \t");
    if (n == strlen("multipart/form-data") && strncasecmp(ct, "multipart/form-data", n) == 0)
        return 2;
    for (size_t i = 0; i < sizeof json_types / sizeof json_types[0]; i++)
        if (strlen(json_types[i]) == n && strncasecmp(ct, json_types[i], n) == 0)
            return 3;
    return 0;
}

/*
 * Checks Content-Length against the limit and sets up the body's reception.
 * A body over the limit is answered 413 after it has been read and
 * discarded (clients such as Python's urllib send the whole body before
 * they read), for at most DISCARD_SECONDS; at once to a client that waits
 * for "100 Continue" (curl, for bodies over 1 MiB).
 */
static enum MHD_Result start_body(srv_req *r, int multipart, MHD_PostDataIterator iter)
{
    srv_http *h = r->h;
    struct MHD_Connection *c = r->conn;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long clen = 0;
    if (cl) {
        char *end;
        errno = 0;
        clen = strtoull(cl, &end, 10);
        if (errno || *end)
            clen = 0;
        /* A client that waits for "100 Continue" has sent nothing yet:
         * answer at once, it never sends the body. */
        const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_EXPECT);
        if (clen > h->cfg->max_body && expect && strcasecmp(expect, "100-continue") == 0)
            return respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                 "the body of %llu bytes is larger than the limit of %zu bytes",
                                 clen, h->cfg->max_body);
        if (clen > h->cfg->max_body) {
            defer_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                        "the body of %llu bytes is larger than the limit of %zu bytes", clen,
                        h->cfg->max_body);
            r->state = RS_BODY;
            return MHD_YES;
        }
    }
    if (multipart) {
        r->multipart = 1;
        r->pp = MHD_create_post_processor(c, POST_BUFFER_SIZE, iter, r);
        if (!r->pp)
            return respond_error(r, MHD_HTTP_BAD_REQUEST,
                                 "malformed multipart/form-data Content-Type (no boundary?)");
    } else if (clen > 0) {
        r->body = malloc(clen);
        if (!r->body)
            return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory for the body");
        r->cap = clen;
    }
    r->state = RS_BODY;
    return MHD_YES;
}

/* POST /evaluate, headers in: parameters from the query string, then the body. */
static enum MHD_Result begin_evaluate(srv_req *r)
{
    srv_http *h = r->h;
    if (atomic_load(&h->draining))
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    r->allowed = P_EPS | P_QUALITY | P_SEED;
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, param_iter, r);
    if (r->err_status)
        return respond_error_msg(r, r->err_status, r->err_msg);
    if (!(r->eval = malloc(sizeof *r->eval)))
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    srv_eval_request_init(r->eval);
    r->eval->params = r->params;
    r->eval->seed = r->seed;
    const char *ct =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    int kind = eval_content_kind(ct);
    if (kind == 0)
        return respond_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                             "unsupported Content-Type '%.80s' (send application/json naming a "
                             "dataset, or multipart/form-data with 'image' fields)",
                             ct);
    return start_body(r, kind == 2, eval_post_iter);
}

/* Up to n - 1 bytes of s for a message: printable ASCII, anything else as '?'. */
static const char *ascii_echo(const char *s, char *out, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[i] = '\0';
    return out;
}

/* GET /jobs, GET|DELETE /jobs/{id}, GET /jobs/{id}/{result,rows,figure3.svg,figure4.svg}. */
static enum MHD_Result answer_jobs(srv_req *r, const char *url, const char *method)
{
    srv_jobs *js = r->h->engine.jobs;
    char err[ADJ_ERRLEN];
    if (srv_jobs_unavailable(js, err, sizeof err))
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
    if (strcmp(url, "/jobs") == 0 || strcmp(url, "/jobs/") == 0)
        return respond_json(r, MHD_HTTP_OK, srv_jobs_list(js), NULL);
    const char *rest = url + strlen("/jobs/");
    size_t n = strcspn(rest, "/");
    const char *sub = rest + n;
    char id[SRV_JOB_ID_LEN + 1];
    /* the id is checked before anything touches the file system */
    if (n != SRV_JOB_ID_LEN || (memcpy(id, rest, n), id[n] = '\0', !srv_job_id_ok(id))) {
        char shown[41];
        return respond_error(r, MHD_HTTP_NOT_FOUND,
                             "no such job: '%s' (a job id is %d lowercase hex digits)",
                             ascii_echo(rest, shown, sizeof shown), SRV_JOB_ID_LEN);
    }
    json_t *o = NULL;
    int rc;
    if (!*sub) {
        rc = strcmp(method, "DELETE") == 0 ? srv_jobs_cancel(js, id, &o) : srv_jobs_status(js, id, &o);
        if (rc == ADJ_ERR_NOTFOUND)
            return respond_error(r, srv_status_http(rc), "no such job: %s", id);
        if (rc)
            return respond_error(r, srv_status_http(rc), "out of memory");
        return respond_json(r, MHD_HTTP_OK, o, NULL);
    }
    if (strcmp(sub, "/result") == 0) {
        rc = srv_jobs_result(js, id, &o, err, sizeof err);
    } else if (strcmp(sub, "/rows") == 0) {
        int fd;
        uint64_t len;
        if (!(rc = srv_jobs_rows(js, id, &fd, &len, err, sizeof err))) {
            struct MHD_Response *resp = MHD_create_response_from_fd64(len, fd);
            if (!resp) {
                close(fd);
                return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
            }
            char disp[96];
            snprintf(disp, sizeof disp, "attachment; filename=\"rows-%s.csv\"", id);
            const char *headers[] = {"Content-Disposition", disp, NULL};
            return respond_with(r, MHD_HTTP_OK, resp, "text/csv; charset=utf-8; header=present",
                                headers);
        }
    } else if (strcmp(sub, "/figure3.svg") == 0 || strcmp(sub, "/figure4.svg") == 0) {
        char *svg;
        size_t len;
        if (!(rc = srv_jobs_figure(js, id, sub[7] == '3' ? SRV_FIGURE_3 : SRV_FIGURE_4, &svg, &len,
                                   err, sizeof err)))
            return respond(r, MHD_HTTP_OK, "image/svg+xml", svg, len, 1, NULL);
    } else {
        char shown[101];
        return respond_error(r, MHD_HTTP_NOT_FOUND,
                             "no such endpoint: %s (a job has /result, /rows, /figure3.svg, "
                             "/figure4.svg)",
                             ascii_echo(url, shown, sizeof shown));
    }
    if (rc)
        return respond_error(r, srv_status_http(rc), "%s", err);
    return respond_json(r, MHD_HTTP_OK, o, NULL);
}

/* The methods a path takes, as the Allow header lists them. */
static const char *allowed_methods(srv_endpoint ep, const char *url)
{
    switch (ep) {
    case SRV_EP_CLASSIFY:
    case SRV_EP_ATTACK:
    case SRV_EP_RECOMPRESS:
    case SRV_EP_EVALUATE:
        return "POST";
    case SRV_EP_JOBS:
        /* /jobs/{id} itself can be canceled */
        return url[5] == '/' && url[6] && !strchr(url + 6, '/') ? "GET, HEAD, DELETE" : "GET, HEAD";
    default:
        return "GET, HEAD";
    }
}

/* Whether method is listed in allow (HEAD wherever GET is). */
static int method_allowed(const char *method, const char *allow)
{
    size_t n = strlen(method);
    for (const char *p = allow; *p;) {
        size_t k = strcspn(p, ", ");
        if (k == n && strncmp(p, method, n) == 0)
            return 1;
        p += k;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return 0;
}

/* ---------------------------------------------------------------- the first call */

static srv_endpoint route(const char *url)
{
    static const struct {
        const char *path;
        srv_endpoint ep;
    } routes[] = {
        {"/classify", SRV_EP_CLASSIFY}, {"/attack", SRV_EP_ATTACK},
        {"/recompress", SRV_EP_RECOMPRESS}, {"/health", SRV_EP_HEALTH},
        {"/models", SRV_EP_MODELS}, {"/metrics", SRV_EP_METRICS},
        {"/evaluate", SRV_EP_EVALUATE}, {"/jobs", SRV_EP_JOBS},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(url, routes[i].path) == 0)
            return routes[i].ep;
    if (strncmp(url, "/jobs/", 6) == 0)
        return SRV_EP_JOBS;
    return SRV_EP_OTHER;
}

/* Headers are in: route, authorize, check method and parameters. */
static enum MHD_Result begin(srv_req *r, const char *url, const char *method)
{
    srv_http *h = r->h;
    struct MHD_Connection *c = r->conn;
    r->ep = route(url);

    /* The demo page (server/web, built in) and /openapi.yaml: served without
     * the token, like /health, because the token is typed into the page and
     * a client reads the API's description first; they hold no data. */
    const unsigned char *page;
    size_t page_len;
    const char *page_type;
    if (r->ep == SRV_EP_OTHER && srv_web_find(url, &page, &page_len, &page_type)) {
        r->ep = SRV_EP_WEB;
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
            return respond_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "%s %s is not allowed (use GET)",
                                 method, url);
        static const char *const page_headers[] = {
            MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache",
            "X-Content-Type-Options", "nosniff",
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
            NULL,
        };
        return respond(r, MHD_HTTP_OK, page_type, (void *)page, page_len, 0, page_headers);
    }

    if (h->cfg->token && r->ep != SRV_EP_HEALTH) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth)
            return respond_error(r, MHD_HTTP_UNAUTHORIZED,
                                 "this server needs 'Authorization: Bearer TOKEN'");
        if (strncasecmp(auth, "Bearer ", 7) != 0)
            return respond_error(r, MHD_HTTP_UNAUTHORIZED,
                                 "the Authorization header must be 'Bearer TOKEN'");
        const char *tok = auth + 7;
        while (*tok == ' ')
            tok++;
        if (!srv_token_equal(tok, h->cfg->token))
            return respond_error(r, MHD_HTTP_UNAUTHORIZED, "wrong bearer token");
    }
    if (r->ep == SRV_EP_OTHER)
        return respond_error(r, MHD_HTTP_NOT_FOUND,
                             "no such endpoint: %.100s (endpoints: POST /classify, POST /attack, "
                             "POST /recompress, POST /evaluate, GET /jobs, GET /health, "
                             "GET /models, GET /metrics, GET /)",
                             url);

    r->allow = allowed_methods(r->ep, url);
    if (!method_allowed(method, r->allow) &&
        !(strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 && method_allowed("GET", r->allow)))
        return respond_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "%s %s is not allowed (use %s)",
                             method, url, r->allow);

    switch (r->ep) {
    case SRV_EP_HEALTH: return answer_health(r);
    case SRV_EP_MODELS: return answer_models(r);
    case SRV_EP_METRICS: return answer_metrics(r);
    default: break;
    }

    /* An endpoint that needs the model. */
    if (!atomic_load_explicit(&h->ready, memory_order_acquire))
        return respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "model is loading");
    const model_spec *spec = model_get_spec(h->engine.model);
    r->top_k = spec->classes < 5 ? spec->classes : 5;
    r->params.n_eps = 3;
    r->params.eps[0] = 1;
    r->params.eps[1] = 5;
    r->params.eps[2] = 10;
    r->params.quality = 75;
    r->seed = 1;
    if (r->ep == SRV_EP_JOBS)
        return answer_jobs(r, url, method);
    if (r->ep == SRV_EP_EVALUATE)
        return begin_evaluate(r);
    switch (r->ep) {
    case SRV_EP_CLASSIFY:
        r->allowed = P_TOP_K | P_RESIZE;
        r->resize_center = 1;
        break;
    case SRV_EP_ATTACK:
        r->allowed = P_TOP_K | P_RESIZE | P_EPS | P_QUALITY | P_SEED | P_IMAGES;
        r->resize_center = 1;
        break;
    default: /* recompress */
        r->allowed = P_TOP_K | P_RESIZE | P_QUALITY;
        r->resize_center = 0;
        break;
    }
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, param_iter, r);
    if (r->err_status)
        return respond_error_msg(r, r->err_status, r->err_msg);
    char err[ADJ_ERRLEN];
    if (r->ep == SRV_EP_ATTACK && exp_params_check(&r->params, err, sizeof err))
        return respond_error(r, MHD_HTTP_BAD_REQUEST, "%s", err);

    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    if (accept && r->ep == SRV_EP_ATTACK && accept_has(accept, "image/png") &&
        !accept_has(accept, "application/json")) {
        if (r->params.n_eps != 1)
            return respond_error(r, MHD_HTTP_NOT_ACCEPTABLE,
                                 "Accept: image/png returns one image: give exactly one eps "
                                 "(got %d)", r->params.n_eps);
        r->want_png = 1;
    }
    if (accept && r->ep == SRV_EP_RECOMPRESS && accept_has(accept, "application/json") &&
        !accept_has(accept, "image/jpeg"))
        r->want_json = 1;

    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    int kind = content_kind(ct);
    if (kind == 0)
        return respond_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                             "unsupported Content-Type '%.80s' (send image/jpeg, image/png, "
                             "image/x-portable-pixmap, application/octet-stream or "
                             "multipart/form-data with a field 'image')",
                             ct);

    if (h->engine.worker) { /* tell the worker that one more is on its way */
        r->expected = 1;
        srv_worker_expect(h->engine.worker, +1);
    }
    return start_body(r, kind == 2, post_iter);
}

/* ---------------------------------------------------------------- callbacks */

/* Counts the Content-Length headers (an int *). */
static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                            const char *value)
{
    (void)kind, (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        ++*(int *)cls;
    return MHD_YES;
}

/*
 * A request whose body framing is ambiguous (RFC 9112 6.3: two
 * Content-Length headers, or Content-Length with Transfer-Encoding) is
 * refused with 400 and the connection closed: a proxy in front may frame
 * it otherwise (request smuggling). 0 when the framing is clear.
 */
static int framing_ambiguous(struct MHD_Connection *conn, char *msg, size_t msgsz)
{
    int n = 0;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_content_length, &n);
    if (n > 1) {
        snprintf(msg, msgsz, "%d Content-Length headers: send one", n);
        return 1;
    }
    if (n == 1 && MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        snprintf(msg, msgsz, "Content-Length and Transfer-Encoding together: send one");
        return 1;
    }
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    srv_http *h = cls;
    srv_req *r = *con_cls;
    (void)version;

    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->h = h;
        r->conn = conn;
        r->t0 = ut_now();
        r->ep = SRV_EP_OTHER;
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        r->has_body = (cl && strcmp(cl, "0") != 0) ||
                      MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_TRANSFER_ENCODING);
        *con_cls = r;
        atomic_fetch_add(&h->active, 1);
        srv_metrics_request_begin(h->metrics);
        r->first_call = 1;
        r->crec = srv_conns_of(conn);
        srv_conns_phase(h->conns, r->crec, r->has_body ? SRV_CONN_BODY : SRV_CONN_WORK);
        char msg[128];
        enum MHD_Result ret;
        if (framing_ambiguous(conn, msg, sizeof msg)) {
            r->close = 1;
            r->has_body = 1; /* answer now: the body cannot be read */
            ret = respond_error_msg(r, MHD_HTTP_BAD_REQUEST, msg);
        } else {
            ret = begin(r, url, method);
        }
        r->first_call = 0;
        return ret;
    }
    if (r->pending) {
        enum MHD_Result ret = MHD_queue_response(conn, r->pending_status, r->pending);
        MHD_destroy_response(r->pending);
        r->pending = NULL;
        return ret;
    }

    switch (r->state) {
    case RS_BODY:
        if (*upload_data_size) {
            size_t size = *upload_data_size;
            *upload_data_size = 0;
            r->received += size;
            srv_conns_received(h->conns, r->crec, size);
            if (r->err_status) {
                /* Discarding the rest of a refused body, so that a client
                 * that reads the answer only after sending everything gets
                 * it (as nginx does); after DISCARD_SECONDS, answer now
                 * (the close may then reset what the client has not read). */
                if (ut_now() - r->err_t > DISCARD_SECONDS)
                    return respond_error_msg(r, r->err_status, r->err_msg);
                return MHD_YES;
            }
            if (r->received > h->cfg->max_body) {
                defer_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                            "the body is larger than the limit of %zu bytes", h->cfg->max_body);
                free(r->body);
                r->body = NULL;
                r->len = r->cap = 0;
                return MHD_YES;
            }
            if (r->pp) {
                if (MHD_post_process(r->pp, upload_data, size) != MHD_YES)
                    defer_error(r, MHD_HTTP_BAD_REQUEST, "malformed multipart/form-data body");
            } else {
                body_append(r, upload_data, size);
            }
            return MHD_YES;
        }
        srv_conns_phase(h->conns, r->crec, SRV_CONN_WORK);
        return body_done(r);
    case RS_WORKED:
        return after_work(r);
    case RS_DONE:
        return answer_job(r);
    case RS_WORKING:  /* cannot happen: suspended */
    case RS_QUEUED:   /* cannot happen: suspended */
    case RS_ANSWERED: /* cannot happen: MHD does not call again */
    default:
        return MHD_NO;
    }
}

/* One line on stderr per request; the method and path are escaped
 * (srv_utf8_escape, ASCII only): a request cannot forge log lines. */
static void log_request(const srv_req *r, double ms, enum MHD_RequestTerminationCode toe)
{
    char line[4 * (LOG_PATH_MAX + sizeof r->method) + 128];
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *why = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
                      : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? " (connection timed out)"
                      : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? " (shutdown)"
                                                                      : " (client went away)";
    char *method = srv_utf8_escape(r->method, 1), *path = srv_utf8_escape(r->path, 1);
    int n;
    const char *m = method ? method : "?", *p = path ? path : "?";
    if (r->status)
        n = snprintf(line, sizeof line, "%s %s %s %u %.1f ms%s\n", when, m, p, r->status, ms, why);
    else
        n = snprintf(line, sizeof line, "%s %s %s - %.1f ms%s\n", when, m, p, ms,
                     *why ? why : " (no answer)");
    free(method);
    free(path);
    if (n > 0)
        fputs(line, stderr); /* one stdio call: one line, not interleaved */
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv_http *h = cls;
    srv_req *r = *con_cls;
    (void)conn;
    if (!r)
        return;
    *con_cls = NULL;
    double secs = ut_now() - r->t0;
    if (r->expected) /* answered (an error) before reaching the worker */
        srv_worker_expect(h->engine.worker, -1);
    log_request(r, secs * 1e3, toe);
    /* kept alive: waits for the next request; else closing (srv_front: Connection: close) */
    srv_conns_phase(h->conns, r->crec,
                    r->close || atomic_load(&h->draining) || !h->cfg->keep_alive ? SRV_CONN_DONE
                                                                                 : SRV_CONN_WAIT);
    srv_metrics_request_end(h->metrics, r->ep, r->status, secs);
    if (r->state == RS_QUEUED || r->state == RS_WORKING) {
        /* The worker still holds the job: never free it under its feet.
         * Cannot happen while every suspended connection is resumed before
         * MHD_stop_daemon; leak rather than crash if it ever does. */
        fprintf(stderr, "advjpgd: warning: request completed while queued\n");
    } else {
        req_free(r);
    }
    atomic_fetch_sub(&h->active, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    /* one line per closed slow connection would flood the log: the reaper
     * writes a summary instead */
    if (strstr(msg, "closed by remote side with incomplete request") ||
        strstr(msg, "closed when reading request"))
        return;
    char *clean = srv_utf8_escape(msg, 1); /* it may quote the request */
    fprintf(stderr, "advjpgd: libmicrohttpd: %s\n", clean ? clean : msg);
    free(clean);
}

/* ---------------------------------------------------------------- lifecycle */

int srv_http_listen(const char *listen_addr, int *fd_out, int *port_out, char *err, size_t errsz)
{
    char host[256], port[16];
    int p;
    if (srv_parse_listen(listen_addr, host, sizeof host, &p))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "--listen: '%s' is not ADDR:PORT", listen_addr);
    snprintf(port, sizeof port, "%d", p);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "cannot listen on %s: %s", listen_addr,
                        gai_strerror(gai));
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot listen on %s: %s", listen_addr,
                        strerror(saved));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int bound = p;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    *fd_out = fd;
    *port_out = bound;
    return ADJ_OK;
}

int srv_http_start(const srv_config *cfg, srv_metrics *metrics, int fd, srv_http **out,
                   char *err, size_t errsz)
{
    srv_http *h = calloc(1, sizeof *h);
    if (!h)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    h->cfg = cfg;
    h->metrics = metrics;
    h->listen_fd = fd;
    atomic_init(&h->ready, 0);
    atomic_init(&h->draining, 0);
    atomic_init(&h->active, 0);
    if (srv_conns_new(cfg, &h->conns, err, errsz)) {
        free(h);
        return ADJ_ERR_NOMEM;
    }
    h->pool_started = 1;
    if (pool_start(h, cfg->threads, cfg->queue_size)) {
        srv_http_stop(h);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot start the decode threads");
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    /* libmicrohttpd's own limits are off or far: the accept policy
     * (srv_conns_accept) enforces ours, making room by closing idle connections,
     * and libmicrohttpd splits its limit between its threads. The slack
     * covers connections shut down but not yet closed. */
    unsigned mhd_limit = 2u * (unsigned)cfg->conn_limit + 64u;
    h->daemon = MHD_start_daemon(
        flags, 0, srv_conns_accept, h->conns, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, /* first, so that it gets every message */
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->conn_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, srv_conns_notify, h->conns,
        MHD_OPTION_END);
    if (!h->daemon) {
        srv_http_stop(h);
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot start the HTTP server (libmicrohttpd)");
    }
    if (srv_front_start(cfg, fd, h->daemon, &h->front, err, errsz)) { /* takes fd */
        srv_http_stop(h);
        return ADJ_ERR_IO;
    }
    *out = h;
    return ADJ_OK;
}

void srv_http_set_engine(srv_http *h, const srv_engine *e)
{
    h->engine = *e;
    atomic_store_explicit(&h->ready, 1, memory_order_release);
}

void srv_http_quiesce(srv_http *h)
{
    if (!h || atomic_exchange(&h->draining, 1))
        return;
    srv_front_quiesce(h->front); /* closes the listen socket */
    h->listen_fd = -1;
}

int srv_http_active(srv_http *h)
{
    return h ? atomic_load(&h->active) : 0;
}

void srv_http_stop(srv_http *h)
{
    if (!h)
        return;
    /* the pool first: it resumes every request it holds, and
     * MHD_stop_daemon needs every connection resumed */
    if (h->pool_started)
        pool_stop(h);
    srv_front_stop(h->front); /* before the daemon: it adds connections to it */
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    srv_conns_free(h->conns); /* after the daemon: no callback can come */
    if (h->pool_started)
        pool_free(h);
    free(h);
}
