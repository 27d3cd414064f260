#include "srv_http.h"

#include <arpa/inet.h>
#include <errno.h>
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
#include <time.h>
#include <unistd.h>

#include "srv_conns.h"
#include "srv_front.h"
#include "srv_json.h"
#include "srv_pool.h"
#include "srv_req.h"
#include "srv_routes.h"
#include "status.h"
#include "ut_clock.h"
#include "web_assets.h"

#define CONNECTION_MEMORY (128 * 1024)
/* How long the rest of a refused body is read and thrown away before the
 * answer (nginx's lingering_time is 30 s) */
#define DISCARD_SECONDS 10.0

struct srv_http {
    struct MHD_Daemon *daemon;
    const srv_config *cfg;
    srv_metrics *metrics;
    srv_engine engine; /* valid once ready is set */
    atomic_int ready;
    atomic_int draining;
    atomic_int active;
    srv_conns *conns;  /* every open connection: deadlines and limits */
    srv_front *front;  /* accepts and checks each request head first (srv_front.h) */
    srv_pool *pool;    /* the decode pool (srv_req_pool) */
};

/* ---------------------------------------------------------------- what requests see */

const srv_config *srv_req_cfg(const srv_req *r)
{
    return r->h->cfg;
}

const srv_engine *srv_req_engine(const srv_req *r)
{
    return atomic_load_explicit(&r->h->ready, memory_order_acquire) ? &r->h->engine : NULL;
}

int srv_req_draining(const srv_req *r)
{
    return atomic_load(&r->h->draining);
}

srv_metrics *srv_req_metrics(const srv_req *r)
{
    return r->h->metrics;
}

int srv_token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < lb; i++)
        d |= (unsigned char)(b[i] ^ (i < la ? a[i] : 0));
    return d == 0;
}

/* ---------------------------------------------------------------- the decode pool */

/*
 * Decoding, cropping and JPEG-encoding an upload cost up to a second of CPU
 * (within --max-pixels and the JPEG work budget). On a libmicrohttpd thread
 * that would hold up every other connection of that thread, /health
 * included. So the HTTP threads only move bytes: an image request is
 * suspended and queued for the pool (at most --queue-size waiting, else
 * 503), one of --threads pool threads runs its route's work and resumes it.
 */
static void pool_run(void *ctx, void *item, int stopping)
{
    srv_req *r = item;
    (void)ctx;
    r->t_pool0 = ut_now();
    if (stopping)
        srv_req_defer(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    else if (r->route->work(r)) /* to the worker from here: its done callback resumes r */
        return;
    r->t_pool1 = ut_now();
    r->state = SRV_RS_WORKED;
    MHD_resume_connection(r->conn);
}

enum MHD_Result srv_req_pool(srv_req *r)
{
    /* Suspend first: a pool thread may resume the connection at once. */
    r->t_body = ut_now();
    r->state = SRV_RS_WORKING;
    MHD_suspend_connection(r->conn);
    if (srv_pool_submit(r->h->pool, r)) {
        srv_req_defer(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                      "too many images waiting to be decoded (%d): try again",
                      r->h->cfg->queue_size);
        r->state = SRV_RS_WORKED;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

/* ---------------------------------------------------------------- the first call */

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
    return strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 && method_allowed("GET", allow);
}

/*
 * The demo page (server/web, built in) and /openapi.yaml: served without
 * the token, like /health, because the token is typed into the page and a
 * client reads the API's description first; they hold no data. -1 if url
 * is none of them.
 */
static int answer_page(srv_req *r, const char *url, const char *method, enum MHD_Result *ret)
{
    const unsigned char *page;
    size_t page_len;
    const char *page_type;
    if (!srv_web_find(url, &page, &page_len, &page_type))
        return -1;
    r->ep = SRV_EP_WEB;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *ret = srv_req_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "%s %s is not allowed (use GET)",
                             method, url);
        return 0;
    }
    static const char *const page_headers[] = {
        MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache",
        "X-Content-Type-Options", "nosniff",
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
        NULL,
    };
    *ret = srv_req_respond(r, MHD_HTTP_OK, page_type, (void *)page, page_len, 0, page_headers);
    return 0;
}

/* The bearer token, when the server has one: NULL if the request has it, else the reason. */
static const char *token_refused(srv_req *r)
{
    const char *token = r->h->cfg->token;
    if (!token)
        return NULL;
    const char *auth = srv_req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth)
        return "this server needs 'Authorization: Bearer TOKEN'";
    if (strncasecmp(auth, "Bearer ", 7) != 0)
        return "the Authorization header must be 'Bearer TOKEN'";
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    return srv_token_equal(tok, token) ? NULL : "wrong bearer token";
}

/* Headers are in: route, authorize, check the method, then the route's begin. */
static enum MHD_Result begin(srv_req *r, const char *url, const char *method)
{
    const srv_route *rt = srv_routes_find(url);
    enum MHD_Result ret;
    if (!rt && answer_page(r, url, method, &ret) == 0)
        return ret;
    const char *why = rt && rt->open ? NULL : token_refused(r);
    if (why)
        return srv_req_error(r, MHD_HTTP_UNAUTHORIZED, "%s", why);
    if (!rt) {
        char list[256];
        return srv_req_error(r, MHD_HTTP_NOT_FOUND, "no such endpoint: %.100s (endpoints: %s, "
                             "GET /)", url, srv_routes_list(list, sizeof list));
    }
    r->route = rt;
    r->ep = rt->ep;
    if (!method_allowed(method, rt->methods))
        return srv_req_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "%s %s is not allowed (use %s)",
                             method, url, rt->methods);
    if (rt->needs_model && !srv_req_engine(r))
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "model is loading");
    return rt->begin(r);
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

/* A new request: its state, the connection's phase, then begin(). */
static enum MHD_Result first_call(srv_http *h, struct MHD_Connection *conn, const char *url,
                                  const char *method, void **con_cls)
{
    srv_req *r = calloc(1, sizeof *r);
    if (!r)
        return MHD_NO;
    r->h = h;
    r->conn = conn;
    r->t0 = ut_now();
    r->ep = SRV_EP_OTHER;
    r->url = url;
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", url);
    const char *cl = srv_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    r->has_body = (cl && strcmp(cl, "0") != 0) ||
                  srv_req_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
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
        ret = srv_req_error_msg(r, MHD_HTTP_BAD_REQUEST, msg);
    } else {
        ret = begin(r, url, method);
    }
    r->first_call = 0;
    r->url = NULL;
    return ret;
}

/* A chunk of the body (size > 0): to the post processor or r->body, within the limits. */
static enum MHD_Result body_chunk(srv_req *r, const char *data, size_t size)
{
    srv_http *h = r->h;
    r->received += size;
    srv_conns_received(h->conns, r->crec, size);
    if (r->err_status) {
        /* Discarding the rest of a refused body, so that a client that
         * reads the answer only after sending everything gets it (as nginx
         * does); after DISCARD_SECONDS, answer now (the close may then
         * reset what the client has not read). */
        if (ut_now() - r->err_t > DISCARD_SECONDS)
            return srv_req_error_deferred(r);
        return MHD_YES;
    }
    if (r->received > h->cfg->max_body) {
        srv_req_defer(r, MHD_HTTP_CONTENT_TOO_LARGE,
                      "the body is larger than the limit of %zu bytes", h->cfg->max_body);
        srv_req_body_drop(r);
        return MHD_YES;
    }
    if (r->pp) {
        if (MHD_post_process(r->pp, data, size) != MHD_YES)
            srv_req_defer(r, MHD_HTTP_BAD_REQUEST, "malformed multipart/form-data body");
    } else {
        srv_req_body_append(r, data, size);
    }
    return MHD_YES;
}

/* The body is complete: the post processor's verdict, then the route's body(). */
static enum MHD_Result body_done(srv_req *r)
{
    srv_conns_phase(r->h->conns, r->crec, SRV_CONN_WORK);
    if (r->pp) {
        enum MHD_Result ok = MHD_destroy_post_processor(r->pp);
        r->pp = NULL;
        if (ok != MHD_YES)
            srv_req_defer(r, MHD_HTTP_BAD_REQUEST, "malformed multipart/form-data body");
    }
    if (r->err_status)
        return srv_req_error_deferred(r);
    return r->route->body(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    srv_req *r = *con_cls;
    (void)version;
    if (!r)
        return first_call(cls, conn, url, method, con_cls);
    if (r->pending) {
        enum MHD_Result ret = MHD_queue_response(conn, r->pending_status, r->pending);
        MHD_destroy_response(r->pending);
        r->pending = NULL;
        return ret;
    }
    switch (r->state) {
    case SRV_RS_BODY:
        if (*upload_data_size) {
            size_t size = *upload_data_size;
            *upload_data_size = 0;
            return body_chunk(r, upload_data, size);
        }
        return body_done(r);
    case SRV_RS_WORKED:
        r->t_worked = ut_now();
        if (!r->err_status && !r->route->worked)
            srv_req_defer(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "no task was submitted");
        return r->err_status ? srv_req_error_deferred(r) : r->route->worked(r);
    case SRV_RS_DONE:
        r->t_answer = ut_now();
        return r->route->answer(r);
    case SRV_RS_WORKING:  /* cannot happen: suspended */
    case SRV_RS_QUEUED:   /* cannot happen: suspended */
    case SRV_RS_ANSWERED: /* cannot happen: MHD does not call again */
    default:
        return MHD_NO;
    }
}

/* One line on stderr per request; the method and path are escaped
 * (srv_utf8_escape, ASCII only): a request cannot forge log lines. */
static void log_request(const srv_req *r, double ms, enum MHD_RequestTerminationCode toe)
{
    char line[4 * (SRV_REQ_LOG_PATH + sizeof r->method) + 128];
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

static void req_free(srv_req *r)
{
    if (r->route && r->route->done)
        r->route->done(r);
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    if (r->pending)
        MHD_destroy_response(r->pending);
    free(r->body);
    free(r);
}

/* An answered request that went through the pool and the worker: its stages. */
static void count_stages(const srv_req *r, double end)
{
    const srv_task *t = r->task;
    if (r->status != MHD_HTTP_OK || !t || !r->t_body || !r->t_worked || !r->t_answer ||
        t->status != SRV_TASK_OK)
        return;
    double s[SRV_STAGE_COUNT] = {
        [SRV_STAGE_RECEIVE] = r->t_body - r->t0,
        [SRV_STAGE_DECODE_WAIT] = r->t_pool0 - r->t_body,
        [SRV_STAGE_DECODE] = r->t_pool1 - r->t_pool0,
        [SRV_STAGE_SUBMIT] = t->t_queued - r->t_worked,
        [SRV_STAGE_QUEUE] = t->t_started - t->t_queued,
        [SRV_STAGE_COMPUTE] = t->t_finished - t->t_started,
        [SRV_STAGE_RESUME] = (r->t_worked - r->t_pool1) + (r->t_answer - t->t_finished),
        [SRV_STAGE_ANSWER] = end - r->t_answer,
    };
    srv_metrics_stages(r->h->metrics, s);
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
    double end = ut_now(), secs = end - r->t0;
    log_request(r, secs * 1e3, toe);
    count_stages(r, end);
    /* kept alive: waits for the next request; else closing (srv_front: Connection: close) */
    srv_conns_phase(h->conns, r->crec,
                    r->close || atomic_load(&h->draining) || !h->cfg->keep_alive ? SRV_CONN_DONE
                                                                                 : SRV_CONN_WAIT);
    srv_metrics_request_end(h->metrics, r->ep, r->status, secs);
    if (r->state == SRV_RS_QUEUED || r->state == SRV_RS_WORKING) {
        /* The worker still holds the task: never free it under its feet.
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

/* The libmicrohttpd daemon, with its callbacks and limits, listening on no
 * socket: srv_front accepts and hands it each connection. NULL on failure. */
static struct MHD_Daemon *start_daemon(srv_http *h)
{
    const srv_config *cfg = h->cfg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    /* libmicrohttpd's own limits are off or far: the accept policy
     * (srv_conns_accept) enforces ours, making room by closing idle connections,
     * and libmicrohttpd splits its limit between its threads. The slack
     * covers connections shut down but not yet closed. */
    unsigned mhd_limit = 2u * (unsigned)cfg->conn_limit + 64u;
    return MHD_start_daemon(
        flags, 0, srv_conns_accept, h->conns, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, /* first, so that it gets every message */
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->conn_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, srv_conns_notify, h->conns,
        MHD_OPTION_END);
}

int srv_http_start(const srv_config *cfg, srv_metrics *metrics, int fd, srv_http **out,
                   char *err, size_t errsz)
{
    srv_http *h = calloc(1, sizeof *h);
    if (!h)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    h->cfg = cfg;
    h->metrics = metrics;
    atomic_init(&h->ready, 0);
    atomic_init(&h->draining, 0);
    atomic_init(&h->active, 0);
    if (srv_conns_new(cfg, &h->conns, err, errsz)) {
        free(h);
        return ADJ_ERR_NOMEM;
    }
    if (srv_pool_new(cfg->threads, cfg->queue_size, pool_run, h, &h->pool)) {
        srv_http_stop(h);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot start the decode threads");
    }
    if (!(h->daemon = start_daemon(h))) {
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
    srv_pool_stop(h->pool);
    srv_front_stop(h->front); /* before the daemon: it adds connections to it */
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    srv_conns_free(h->conns); /* after the daemon: no callback can come */
    srv_pool_free(h->pool);
    free(h);
}
