/*
 * srv_req.h - the HTTP side's private header: one request (srv_req), the
 * route table's row (srv_route), and the helpers every endpoint uses to
 * read parameters and the body and to answer. srv_http.c implements the
 * helpers and drives a request through its route's functions; the routes
 * are in srv_routes.c, the endpoints in srv_ep_*.c (srv_ep.h).
 *
 * A request's life (each step on an HTTP thread unless said otherwise):
 *
 *   headers in   route found, token and method checked, then route->begin
 *                (parameters: srv_req_query; a body: srv_req_start_body)
 *   body in      route->body (srv_req_pool: route->work on a decode-pool
 *                thread, then route->worked; srv_req_submit: the worker,
 *                then route->answer; or route->work submits the task
 *                itself, srv_req_submit_suspended, and route->answer follows
 *                without a turn on an HTTP thread in between)
 *   completed    route->done(r) frees the endpoint's state r->st (made by begin)
 *
 * Each function answers (srv_req_respond*) or moves the request on; it
 * returns what libmicrohttpd's access handler returns.
 */
#ifndef SRV_REQ_H
#define SRV_REQ_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "srv_conns.h"
#include "srv_http.h"
#include "srv_metrics.h"
#include "srv_params.h"
#include "srv_worker.h"
#include "status.h"

#define SRV_REQ_LOG_PATH 160

typedef struct srv_req srv_req;
typedef enum MHD_Result (*srv_req_fn)(srv_req *r);

/** One endpoint: a row of the route table (srv_routes.c). */
typedef struct {
    const char *path;    /**< "/classify"; "{id}" matches one path segment */
    const char *methods; /**< the Allow header: "POST", "GET, HEAD, DELETE" */
    srv_endpoint ep;     /**< metrics name (srv_endpoint_name) */
    unsigned params;     /**< query parameters it takes: SRV_P(EXP_PARAM_*) */
    const char *const *defaults; /**< NULL, or name, value pairs over the table's defaults */
    int listed;          /**< named in the 404 answer's list of endpoints */
    int needs_model;     /**< 503 while the model loads */
    int open;            /**< served without the bearer token (/health) */
    srv_req_fn begin;    /**< headers are in: answer, or read a body */
    srv_req_fn body;     /**< the body is complete */
    /** srv_req_pool: on a decode-pool thread; 1 when it submitted a task
     *  (srv_req_submit_suspended: r may be answered and gone already), else 0 */
    int (*work)(srv_req *r);
    srv_req_fn worked;   /**< srv_req_pool: done (err_status set if it failed); NULL when
                              work always submits a task or defers an error */
    srv_req_fn answer;   /**< srv_req_submit: the worker is done */
    void (*done)(srv_req *r); /**< when the request ends: frees r->st (NULL: none to free) */
} srv_route;

typedef enum {
    SRV_RS_BODY,     /**< receiving the body */
    SRV_RS_WORKING,  /**< suspended, a decode-pool thread has it */
    SRV_RS_WORKED,   /**< the decode pool is done (or refused it): go on */
    SRV_RS_QUEUED,   /**< suspended, the worker has the task */
    SRV_RS_DONE,     /**< the worker is done (or the submit failed): answer now */
    SRV_RS_ANSWERED, /**< a response is queued */
} srv_req_state;

struct srv_req {
    srv_http *h;
    struct MHD_Connection *conn;
    const srv_route *route; /**< NULL until routed, and for the page and 404s */
    srv_endpoint ep;
    srv_req_state state;
    double t0;
    /* when a request through the pool and the worker reached each step (ut_now;
     * 0: not reached), for advjpgd_stage_seconds; task: the worker's, or NULL */
    double t_body, t_pool0, t_pool1, t_worked, t_answer;
    const srv_task *task;
    unsigned status;        /**< answered with; 0 until then */
    char method[16];
    char path[SRV_REQ_LOG_PATH];
    const char *url;        /**< libmicrohttpd's, valid during the first call */
    /* An answer decided on the first call to a request without a body waits
     * for the next call: libmicrohttpd closes the connection after a
     * response queued that early. */
    int first_call;
    int has_body;
    int close;              /**< answer with Connection: close (the framing is in doubt) */
    srv_conn *crec;         /**< the connection's record, NULL if untracked */
    struct MHD_Response *pending;
    unsigned pending_status;
    srv_query q;            /**< the query parameters, defaults first */
    /* the body */
    int multipart;
    struct MHD_PostProcessor *pp;
    uint8_t *body;          /**< a raw body (not multipart), owned */
    size_t len, cap;
    uint64_t received;      /**< raw body bytes seen */
    unsigned err_status;    /**< an error found while reading or working; answered later */
    char err_msg[ADJ_ERRLEN];
    double err_t;           /**< when err_status was set (ut_now) */
    void *st;               /**< the endpoint's own state, made by route->begin */
};

/* ---- the server (srv_http.c) ---- */

/** The config; borrowed. */
const srv_config *srv_req_cfg(const srv_req *r);

/** The engine once the model is loaded (srv_req_ready), else NULL. */
const srv_engine *srv_req_engine(const srv_req *r);

/** Whether the server is shutting down (quiesced). */
int srv_req_draining(const srv_req *r);

/** The metrics registry. */
srv_metrics *srv_req_metrics(const srv_req *r);

/* ---- answers ---- */

/**
 * The one place that answers: the response of data (taken and released with
 * free() when owned, else copied), Content-Type, the NULL-terminated
 * name/value pairs of headers and, while draining or without --keep-alive 1,
 * Connection: close.
 */
enum MHD_Result srv_req_respond(srv_req *r, unsigned status, const char *ctype, void *data,
                                size_t len, int owned, const char *const *headers);

/** srv_req_respond for a response already made (taken over). */
enum MHD_Result srv_req_respond_with(srv_req *r, unsigned status, struct MHD_Response *resp,
                                     const char *ctype, const char *const *headers);

/** j as JSON (taken; NULL answers 500 out of memory). */
enum MHD_Result srv_req_respond_json(srv_req *r, unsigned status, json_t *j,
                                     const char *const *headers);

/** {"error": msg} with the headers that status calls for (Retry-After, Allow, ...). */
enum MHD_Result srv_req_error_msg(srv_req *r, unsigned status, const char *msg);

/** srv_req_error_msg of a formatted message. */
__attribute__((format(printf, 3, 4))) enum MHD_Result srv_req_error(srv_req *r, unsigned status,
                                                                    const char *fmt, ...);

/** The error met earlier (r->err_status, r->err_msg). */
enum MHD_Result srv_req_error_deferred(srv_req *r);

/** Remembers the first error met while reading the body or working; answered later. */
__attribute__((format(printf, 3, 4))) void srv_req_defer(srv_req *r, unsigned status,
                                                         const char *fmt, ...);

/* ---- the request ---- */

/** A request header, NULL if absent. */
const char *srv_req_header(const srv_req *r, const char *name);

/**
 * What a Content-Type asks for: 2 multipart/form-data, 1 one of types (n of
 * them; no Content-Type counts as one), 0 none of them (415).
 */
int srv_req_content_kind(const char *ct, const char *const *types, size_t n);

/** Whether a comma-separated Accept header lists this media type. */
int srv_req_accept_has(const char *accept, const char *type);

/**
 * Reads the query string into r->q: the parameters of r->route->params,
 * others refused ("unknown parameter ... (it takes: ...)"). 0, or -1 with the
 * error deferred (answer it with srv_req_error_deferred).
 */
int srv_req_query(srv_req *r);

/**
 * Checks Content-Length and sets up the body's reception: raw bytes into
 * r->body, or multipart fields through iter. A body over --max-body is read,
 * thrown away and answered 413 (at once to a client that waits for
 * "100 Continue").
 */
enum MHD_Result srv_req_start_body(srv_req *r, int multipart, MHD_PostDataIterator iter);

/** Appends to r->body within --max-body (else 413 deferred); 1 if done, else 0. */
int srv_req_body_append(srv_req *r, const char *data, size_t size);

/** Frees r->body. */
void srv_req_body_drop(srv_req *r);

/* ---- handing the request on ---- */

/**
 * Suspends the connection and queues r for the decode pool, which runs
 * route->work then route->worked (503 deferred when the queue is full).
 */
enum MHD_Result srv_req_pool(srv_req *r);

/**
 * Suspends the connection and submits task (set up by the caller, kept in
 * r->st) to the worker; route->answer follows once it is done. A refused
 * submit defers its error and goes to route->answer at once: *submit_failed
 * is set then.
 */
enum MHD_Result srv_req_submit(srv_req *r, srv_task *task, int *submit_failed);

/**
 * srv_req_submit from route->work, on the decode-pool thread, while the
 * connection is still suspended: route->worked is skipped and
 * route->answer follows (one hand-back to an HTTP thread fewer).
 */
void srv_req_submit_suspended(srv_req *r, srv_task *task, int *submit_failed);

#endif
