/*
 * advjpgd - serves an image classifier and the paper's adversarial / JPEG
 * experiment over HTTP (the contract: server/openapi.yaml, served at /openapi.yaml).
 *
 * main() wires the modules together:
 *   srv_config   options and the INI file
 *   srv_http     the listening socket, routes, responses (libmicrohttpd)
 *   srv_worker   the inference thread, its queue and dynamic batching
 *   srv_jobs     evaluation jobs: their folders, the job-runner thread
 *                (srv_eval: the request and its images; srv_rows: rows.csv
 *                and the table; srv_svg: the figures)
 *   srv_batch    --run: one evaluation job without HTTP (batch mode)
 *   srv_metrics  /metrics
 *   srv_json     the JSON answers
 * The model is loaded in a background thread once the socket listens, so
 * /health can answer 503 meanwhile. SIGTERM / SIGINT stop gracefully:
 * no new connections, every request already begun is answered, exit 0.
 *
 * Exit status: 0 after a clean shutdown, 1 on a runtime error (model or
 * weights that do not load, a port in use), 2 on a bad option; with --run,
 * srv_batch.h's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gemm.h"
#include "model.h"
#include "srv_batch.h"
#include "srv_config.h"
#include "srv_http.h"
#include "srv_jobs.h"
#include "srv_metrics.h"
#include "srv_worker.h"
#include "status.h"
#include "ut_clock.h"
#include "ut_file.h"

/* The only global: the signal handler sets it, the main loop reads it. */
static volatile sig_atomic_t g_stop_signal;

static void on_signal(int sig)
{
    g_stop_signal = sig;
}

typedef struct {
    srv_config cfg;
    model_spec spec;
    srv_metrics *metrics;
    srv_http *http;
    int port;
    /* set by the loader thread; read by main after it signalled the pipe */
    model *model;
    model_labels labels;
    char *labels_path; /* NULL without labels */
    srv_worker *worker;
    srv_jobs *jobs;
    double load_seconds;
    int load_rc;
    char load_err[ADJ_ERRLEN];
    char load_note[ADJ_ERRLEN]; /* a warning to print once ready */
    int event_pipe[2];         /* loader -> main: one byte when done */
    pthread_t loader;
    int loader_started;
} app;

static void *load_main(void *arg)
{
    app *a = arg;
    double t0 = ut_now();
    char *err = a->load_err;
    size_t errsz = sizeof a->load_err;
    int rc = srv_model_load(&a->cfg, &a->spec, &a->model, err, errsz);
    if (!rc)
        a->spec = *model_get_spec(a->model); /* an ONNX model's spec comes with it */
    if (!rc && a->cfg.labels) {
        char lerr[ADJ_ERRLEN];
        int lrc = model_labels_load(a->cfg.labels, &a->labels, lerr, sizeof lerr);
        if (lrc && a->cfg.labels_required) {
            rc = adj_fail(err, errsz, lrc, "%s", lerr);
        } else if (lrc) {
            snprintf(a->load_note, sizeof a->load_note, "no class names (%.400s)", lerr);
        } else if (a->labels.n != a->spec.classes) {
            rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "labels file %s has %d names, model %s has %d classes",
                          a->cfg.labels, a->labels.n, a->spec.name, a->spec.classes);
        } else if (!(a->labels_path = strdup(a->cfg.labels))) {
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        }
    }
    if (!rc) {
        srv_worker_opts o = {a->cfg.max_batch, a->cfg.batch_delay_ms, a->cfg.queue_size, 1024};
        rc = srv_worker_new(a->model, &o, a->metrics, &a->worker, err, errsz);
    }
    if (!rc) {
        /* resumes unfinished jobs: their images go to the worker from now on */
        srv_jobs_opts jo = {a->cfg.jobs_dir, a->cfg.data_root, a->cfg.max_pixels,
                            a->cfg.max_batch, a->cfg.job_batch, a->cfg.job_batch_ms};
        rc = srv_jobs_new(&jo, a->model, a->worker, &a->jobs, err, errsz);
    }
    a->load_seconds = ut_now() - t0;
    a->load_rc = rc;
    char c = rc ? 'F' : 'R';
    while (write(a->event_pipe[1], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* Writes "PORT\n" into path atomically (ut_write_atomic: a reader never sees half a number). */
static int write_port_file(const char *path, int port, char *err, size_t errsz)
{
    char dir[4096], text[32], msg[ADJ_ERRLEN];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "port file name too long: %.64s...", path);
    char *slash = strrchr(dir, '/');
    const char *name = slash ? slash + 1 : dir;
    if (slash == dir)
        dir[1] = '\0', name = path + 1;
    else if (slash)
        *slash = '\0';
    int n = snprintf(text, sizeof text, "%d\n", port);
    int rc = ut_write_atomic(slash ? dir : ".", name, text, (size_t)n, 0644, msg, sizeof msg);
    if (rc)
        return adj_fail(err, errsz, rc, "cannot write port file %s: %s", path, msg);
    return ADJ_OK;
}

/*
 * Whether the listening socket fd is bound to a loopback address only
 * (127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104): then only this machine can
 * reach it. 0 for a wildcard (0.0.0.0, ::) or any other address, and when
 * the address cannot be read.
 */
static int listens_on_loopback(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl))
        return 0;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* Waits until no request is in progress, or until `limit` seconds passed. */
static void wait_idle(app *a, double limit)
{
    double end = ut_now() + limit;
    while (srv_http_active(a->http) > 0 && ut_now() < end) {
        srv_worker_expire(a->worker);
        poll(NULL, 0, 10);
    }
}

/* Stops everything in order and frees it. */
static void shutdown_app(app *a, int loaded)
{
    srv_worker_hurry(a->worker);
    if (a->http) {
        srv_http_quiesce(a->http);
        /* requests already begun: their bodies may still be arriving, their
         * jobs queued; all of them end within these bounds */
        if (loaded)
            wait_idle(a, a->cfg.timeout_s + a->cfg.conn_timeout_s + 5.0);
    }
    if (a->loader_started)
        pthread_join(a->loader, NULL);
    /* the job runner hands the worker no more images; the chunks it has
     * queued are finished and written, the job resumes at the next start */
    srv_jobs_stop(a->jobs);
    /* no job left behind: srv_worker_stop runs what is queued, and every
     * suspended connection has been resumed once it returns */
    srv_worker_stop(a->worker);
    if (a->http) {
        wait_idle(a, 5.0);
        srv_http_stop(a->http);
        a->http = NULL;
    }
    /* only now: a keep-alive request may have reached the closed worker */
    srv_worker_free(a->worker);
    a->worker = NULL;
    srv_jobs_free(a->jobs); /* after the HTTP server: requests read job states */
    a->jobs = NULL;
    model_free(a->model);
    model_labels_free(&a->labels);
    free(a->labels_path);
    srv_metrics_free(a->metrics);
    if (a->cfg.port_file)
        unlink(a->cfg.port_file);
    if (a->event_pipe[0] >= 0) {
        close(a->event_pipe[0]);
        close(a->event_pipe[1]);
    }
    srv_config_free(&a->cfg);
}

/* Listens, starts the HTTP side (/health: loading) and the loader thread. 0, or -1 said. */
static int start_serving(app *a)
{
    char err[ADJ_ERRLEN];
    int fd;
    if (srv_http_listen(a->cfg.listen, &fd, &a->port, err, sizeof err)) {
        fprintf(stderr, "advjpgd: %s\n", err);
        return -1;
    }
    if (!a->cfg.token && !listens_on_loopback(fd))
        fprintf(stderr, "advjpgd: warning: listening on %s, not a loopback address, without a "
                        "token: anyone who can reach it can use this daemon and its jobs (give "
                        "--token-file, or listen on 127.0.0.1)\n",
                a->cfg.listen);
    if (srv_http_start(&a->cfg, a->metrics, fd, &a->http, err, sizeof err)) {
        close(fd);
        fprintf(stderr, "advjpgd: %s\n", err);
        return -1;
    }
    if (a->cfg.port_file && write_port_file(a->cfg.port_file, a->port, err, sizeof err)) {
        fprintf(stderr, "advjpgd: %s\n", err);
        return -1;
    }
    if (pthread_create(&a->loader, NULL, load_main, a) != 0) {
        fprintf(stderr, "advjpgd: cannot start the loader thread\n");
        return -1;
    }
    a->loader_started = 1;
    return 0;
}

/* The loader is done: publish the engine (0), or say why it failed (1). */
static int loaded_now(app *a)
{
    pthread_join(a->loader, NULL);
    a->loader_started = 0;
    if (a->load_rc) {
        fprintf(stderr, "advjpgd: %s\n", a->load_err);
        return 1;
    }
    srv_engine e = {a->model, a->labels_path ? &a->labels : NULL, a->labels_path,
                    a->worker, a->jobs, a->cfg.max_batch, a->load_seconds};
    srv_http_set_engine(a->http, &e);
    if (*a->load_note)
        fprintf(stderr, "advjpgd: warning: %s\n", a->load_note);
    fprintf(stderr,
            "advjpgd: serving %s on %s (port %d): %zu parameters, loaded in %.2f s; "
            "products %s; max batch %d, batch delay %d ms%s\n",
            a->spec.name, a->cfg.listen, a->port, model_spec_param_count(&a->spec),
            a->load_seconds, gemm_kernel_name(NULL), a->cfg.max_batch, a->cfg.batch_delay_ms,
            a->cfg.token ? "; bearer token required" : "");
    return 0;
}

/* Until a signal: the loader's news, expired requests. The exit status; *loaded. */
static int serve(app *a, int *loaded)
{
    double next_expire = ut_now() + 1.0;
    while (!g_stop_signal) {
        struct pollfd pfd = {a->event_pipe[0], POLLIN, 0};
        int n = poll(&pfd, 1, 100);
        char c;
        if (n > 0 && (pfd.revents & POLLIN) && read(a->event_pipe[0], &c, 1) == 1) {
            if (loaded_now(a))
                return 1;
            *loaded = 1;
        }
        if (*loaded && ut_now() >= next_expire) {
            srv_worker_expire(a->worker);
            next_expire = ut_now() + 1.0;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
#ifdef __GLIBC__
    /* Request bodies and decoded images (up to --max-body, --max-pixels)
     * are large, short-lived buffers allocated on several HTTP threads.
     * glibc raises its mmap threshold to the size of the largest block
     * freed, after which such buffers come from per-thread arenas and their
     * pages stay resident after free (eight 12 MiB bodies: RSS 15 -> 52 MiB,
     * for good). A fixed threshold keeps every block of 1 MiB or more
     * mmapped, so that its memory goes back to the system when freed. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif

    app a;
    memset(&a, 0, sizeof a);
    a.event_pipe[0] = a.event_pipe[1] = -1;
    char err[ADJ_ERRLEN];

    int rc = srv_config_load(&a.cfg, argc, argv, stdout, err, sizeof err);
    if (rc == SRV_CONFIG_EXIT)
        return 0;
    if (rc) {
        fprintf(stderr, "advjpgd: %s\n", err);
        return 2;
    }
    if (!model_is_onnx_path(a.cfg.model) && model_spec_load(a.cfg.model, &a.spec, err, sizeof err)) {
        fprintf(stderr, "advjpgd: %s\n", err);
        srv_config_free(&a.cfg);
        return 2;
    }
    install_signals();
    if (a.cfg.run) { /* batch mode: the exit statuses of srv_batch.h */
        rc = srv_batch_run(&a.cfg, &a.spec, &g_stop_signal);
        srv_config_free(&a.cfg);
        return rc;
    }
    if (pipe2(a.event_pipe, O_CLOEXEC) != 0 || !(a.metrics = srv_metrics_new())) {
        fprintf(stderr, "advjpgd: out of resources: %s\n", strerror(errno));
        shutdown_app(&a, 0);
        return 1;
    }

    if (start_serving(&a)) {
        shutdown_app(&a, 0);
        return 1;
    }
    int loaded = 0, status = serve(&a, &loaded);
    if (g_stop_signal && !status)
        fprintf(stderr, "advjpgd: %s: finishing %d request(s) in progress, then stopping\n",
                strsignal(g_stop_signal), srv_http_active(a.http));
    shutdown_app(&a, loaded);
    if (!status)
        fprintf(stderr, "advjpgd: stopped\n");
    return status;
}
