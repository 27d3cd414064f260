/*
 * srv_http.h - advjpgd's HTTP side (libmicrohttpd): the listening socket,
 * routes, per-request state, parameter checks, responses, the request log.
 *
 * Threads: libmicrohttpd's internal pool (epoll) runs every callback. For an
 * image endpoint the callback reads the body chunk by chunk; once the body
 * is complete it suspends the connection and queues it for the decode pool
 * (cfg->threads threads, at most cfg->queue_size waiting), which decodes and
 * prepares the image (or encodes the JPEG of /recompress) and resumes it, so
 * that a costly image never holds up an HTTP thread; the HTTP thread then
 * suspends it again and submits a job to the inference worker
 * (srv_worker.h), whose done callback resumes the connection, and the
 * answer is built (JSON, PNG) on the HTTP thread. /recompress returning
 * image/jpeg and the GET endpoints never touch the worker.
 *
 * Connections are tracked for deadlines and limits (--header-timeout,
 * --min-rate, --connection-limit, --per-ip-limit): see srv_http.c.
 *
 *     int fd, port;
 *     srv_http_listen("127.0.0.1:0", &fd, &port, err, sizeof err);
 *     srv_http_start(&cfg, metrics, fd, &h, err, sizeof err); // /health: 503 loading
 *     ...load the model, start the worker...
 *     srv_http_set_engine(h, &engine);                         // /health: 200
 *     ...SIGTERM...
 *     srv_http_quiesce(h);                   // no new connections
 *     while (srv_http_active(h)) ...;        // in-flight requests finish
 *     srv_worker_free(worker);               // (no job left: nothing suspended)
 *     srv_http_stop(h);
 *
 * Every request is logged as one line on stderr: method, path, status, ms.
 */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stddef.h>

#include "model.h"
#include "srv_config.h"
#include "srv_jobs.h"
#include "srv_metrics.h"
#include "srv_worker.h"

typedef struct srv_http srv_http;

/** What the routes need once the model is loaded; all borrowed and immutable. */
typedef struct {
    const model *model;
    const model_labels *labels; /**< may be NULL or empty: answers carry indices only */
    const char *labels_path;    /**< NULL without labels */
    srv_worker *worker;
    srv_jobs *jobs;             /**< evaluation jobs (/evaluate, /jobs) */
    int max_batch;
    double load_seconds;
} srv_engine;

/**
 * Binds and listens on "ADDR:PORT" (srv_parse_listen; port 0 picks a free
 * one). *fd is a new non-blocking socket, *port the bound port. Errors name
 * the address and the reason ("Address already in use").
 */
int srv_http_listen(const char *listen_addr, int *fd, int *port, char *err, size_t errsz);

/**
 * Starts serving on fd (which the daemon takes over). cfg and metrics are
 * borrowed and must outlive the server. Until srv_http_set_engine, /health
 * and the model endpoints answer 503 with Retry-After. *out is new: free
 * with srv_http_stop.
 */
int srv_http_start(const srv_config *cfg, srv_metrics *metrics, int fd, srv_http **out,
                   char *err, size_t errsz);

/** Publishes the loaded model and worker (copied); the server is ready. */
void srv_http_set_engine(srv_http *h, const srv_engine *e);

/**
 * Graceful stop, step 1: stop accepting connections (the listening socket is
 * closed), answer with "Connection: close" from now on and /health with 503.
 * Requests already begun still complete.
 */
void srv_http_quiesce(srv_http *h);

/** Requests begun (headers read) and not yet completed. */
int srv_http_active(srv_http *h);

/**
 * Stops the daemon and frees h (NULL is fine). Every suspended connection
 * must have been resumed (all submitted jobs done) before.
 */
void srv_http_stop(srv_http *h);

/** Constant-time string equality (time depends on the lengths only). */
int srv_token_equal(const char *a, const char *b);

#endif
