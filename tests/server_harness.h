/*
 * server_harness.h - what tests/test_server.c needs to drive a live advjpgd:
 * starting it on a free port, stopping it, running it to completion, and
 * HTTP requests through libcurl.
 *
 *     sh_init(tmpdir);                 // kills daemons and removes tmpdir at exit
 *     sh_daemon d;
 *     const char *args[] = {"--model", spec, "--weights", w, NULL};
 *     if (sh_start(&d, "main", args, 30) == 0) {
 *         sh_resp r;
 *         sh_http(d.port, "GET", "/health", NULL, NULL, 0, &r);
 *         ...
 *         sh_resp_free(&r);
 *         sh_stop(&d, SIGTERM, 10);
 *     }
 *
 * The program is $ADVJPGD. Every daemon gets --listen 127.0.0.1:0 and
 * --port-file; its stdout and stderr go to TMPDIR/NAME.log. Children die with
 * the test (PR_SET_PDEATHSIG), and an exit, SIGINT or SIGTERM (meson's
 * timeout) kills the daemons still running and removes the temporary folder.
 */
#ifndef SERVER_HARNESS_H
#define SERVER_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "image.h"

typedef struct {
    pid_t pid;      /**< 0 once stopped */
    int port;
    char name[32];
    char log_path[4200];
    int loading_503;   /**< /health answers "503 model is loading" with Retry-After seen */
    int other_non_200; /**< any other answer of /health before 200 */
} sh_daemon;

typedef struct {
    long status;      /**< HTTP status, 0 when the request failed */
    uint8_t *body;    /**< NUL-terminated, len bytes before the NUL */
    size_t len;
    char *headers;    /**< the raw header block */
    char error[256];  /**< libcurl's message when status is 0 */
} sh_resp;

/** Remembers the temporary folder and installs the clean-up (exit, SIGINT, SIGTERM). */
void sh_init(const char *tmpdir);

/** The daemon's path ($ADVJPGD), or NULL. */
const char *sh_program(void);

/**
 * Starts advjpgd NAME with the NULL-terminated extra arguments and waits up
 * to timeout_s for its port file and for GET /health to answer 200.
 * Returns 0, or -1 (the daemon's log is printed and the daemon killed).
 */
int sh_start(sh_daemon *d, const char *name, const char *const *args, double timeout_s);

/**
 * Sends sig and waits up to timeout_s for the exit. Returns the exit status
 * (0..255), 1000 + signal number when a signal ended it, or -1 after a
 * timeout (then the daemon is killed).
 */
int sh_stop(sh_daemon *d, int sig, double timeout_s);

/** The daemon's log so far; new string (free()). */
char *sh_log(const sh_daemon *d);

/**
 * Runs advjpgd with the NULL-terminated arguments to completion (killed
 * after timeout_s). *out and *err (new strings, may be NULL) get its stdout
 * and stderr. Returns the exit status as sh_stop does.
 */
int sh_run(const char *const *args, double timeout_s, char **out, char **err);

/**
 * One request to 127.0.0.1:port. headers: NULL-terminated "Name: value"
 * lines (may be NULL). body/len: the request body (POST); NULL for none.
 * Returns 0 when an answer arrived (r->status set), -1 otherwise.
 */
int sh_http(int port, const char *method, const char *path, const char *const *headers,
            const void *body, size_t len, sh_resp *r);

/** The same with a body sent in chunks (Transfer-Encoding: chunked, no Content-Length). */
int sh_http_chunked(int port, const char *path, const char *const *headers, const void *body,
                    size_t len, sh_resp *r);

/** A multipart/form-data POST with one file field. */
int sh_http_multipart(int port, const char *path, const char *field, const void *data, size_t len,
                      const char *type, sh_resp *r);

/** A header's value (case-insensitive name) copied into buf, or NULL if absent. */
const char *sh_header(const sh_resp *r, const char *name, char *buf, size_t size);

/** The body as JSON (new reference), NULL if it is not JSON. */
json_t *sh_json(const sh_resp *r);

/** Frees the response's buffers (a zeroed struct is fine). */
void sh_resp_free(sh_resp *r);

/** Base64 decoding; new buffer (free()), NULL on bad input. */
uint8_t *sh_base64_decode(const char *s, size_t *len);

/** A JSON object's string member, "" when absent. */
const char *sh_jstr(const json_t *o, const char *key);
/** A JSON object's number member (integer or real), 0 when absent. */
double sh_jnum(const json_t *o, const char *key);
/** A JSON object's integer member, 0 when absent. */
long sh_jint(const json_t *o, const char *key);

/** GET path as JSON (new reference, NULL when the body is not JSON); *status gets the HTTP status. */
json_t *sh_get_json(int port, const char *path, long *status);

/**
 * POST /evaluate with the JSON body. Returns the HTTP status; id (17 bytes,
 * may be NULL) gets the job id on 202, else ""; msg (may be NULL) gets the
 * answer's "error" on any other status.
 */
long sh_post_evaluate(int port, const char *body, char id[17], char *msg, size_t msgsz);

/** Polls GET /jobs/ID until the job is done, failed or canceled, or timeout_s: its last state (new). */
json_t *sh_wait_job(int port, const char *id, double timeout_s);

/** A w x h test picture (smooth colour waves plus noise), different per seed; exits on ENOMEM. */
void sh_test_image(img_rgb *im, int w, int h, uint64_t seed);

/** Seconds on a monotonic clock. */
double sh_now(void);

#endif
