/*
 * cli_http.h - the client's one HTTP helper, on libcurl.
 *
 * One cli_http per program run: it holds the server's base URL, the bearer
 * token and the per-request time limit, and reuses one curl handle so that
 * several requests (classify of many images, polling a job) share a
 * keep-alive connection.
 *
 *     cli_http h;
 *     cli_response r;
 *     char err[CLI_ERRLEN];
 *     if (cli_http_init(&h, "http://127.0.0.1:8080", NULL, 30.0, err, sizeof err))
 *         die(err);                          // only a bad URL fails here
 *     cli_request q = {.method = "GET", .path = "/health"};
 *     if (cli_http_do(&h, &q, &r, err, sizeof err))
 *         die(err);                          // no answer: "cannot connect to ..."
 *     if (r.status >= 400)
 *         cli_http_status_message(&r, err, sizeof err), die(err);
 *     ... r.body, r.len ...
 *     cli_response_free(&r);
 *     cli_http_cleanup(&h);
 *
 * A request either gets an answer (any status, 0 returned) or it does not
 * (connection refused, host unknown, time limit, ...: -1 and one line in
 * err naming the server). HTTP error statuses are answers; the caller turns
 * them into a message with cli_http_status_message(), which uses the
 * server's {"error": "..."} text when there is one.
 */
#ifndef CLI_HTTP_H
#define CLI_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

/** Suggested size of an error message buffer. */
#define CLI_ERRLEN 512

/** Largest answer body the client accepts (attack answers with images are a few MB). */
#define CLI_MAX_BODY ((size_t)1 << 30)

typedef struct {
    char *base;        /**< server URL without a trailing '/', owned */
    char *auth;        /**< "Authorization: Bearer T" or NULL, owned */
    long timeout_ms;   /**< whole-request limit; 0 = none */
    CURL *curl;        /**< reused handle (connection cache) */
} cli_http;

/**
 * One part of a multipart/form-data body: its content is either a file,
 * streamed while the request is sent (never held in memory whole), or
 * bytes in memory. Everything is borrowed until cli_http_do() returns.
 */
typedef struct {
    const char *name;         /**< field name, e.g. "image" */
    const char *filename;     /**< the part's file name; NULL: the base name of path, or none */
    const char *path;         /**< a file whose bytes are the content, or NULL */
    const char *data;         /**< else the content (len bytes) */
    size_t len;
    const char *type;         /**< the part's Content-Type; NULL: none sent */
} cli_part;

typedef struct {
    const char *method;       /**< "GET", "POST" or "DELETE" */
    const char *path;         /**< appended to the base URL: "/classify?top_k=5" */
    const void *body;         /**< POST body (borrowed), may be NULL */
    size_t body_len;
    const char *content_type; /**< of the body, e.g. "image/jpeg"; NULL = none */
    const char *accept;       /**< Accept header; NULL = "application/json" */
    const cli_part *parts;    /**< n_parts > 0: a POST whose body is multipart/form-data
                                   made of these (body and content_type are ignored) */
    size_t n_parts;
} cli_request;

typedef struct {
    long status;              /**< HTTP status, e.g. 200 */
    char *body;               /**< the body, NUL-terminated (not counted in len), owned */
    size_t len;
    size_t cap;
    char content_type[128];   /**< the Content-Type header, "" if none */
    char location[512];       /**< the Location header, "" if none */
    long retry_after;         /**< Retry-After in seconds, -1 if none */
} cli_response;

/**
 * Prepares a client for server (an http:// or https:// URL; a bare
 * "host:port" gets "http://"), with token (NULL or "" = no Authorization
 * header) and a whole-request time limit in seconds (0 = none). Returns 0,
 * or -1 with a message in err when the URL is unusable or curl cannot start.
 */
int cli_http_init(cli_http *h, const char *server, const char *token, double timeout_s,
                  char *err, size_t errsz);

/** Frees what cli_http_init took; safe on a zeroed or half-initialised struct. */
void cli_http_cleanup(cli_http *h);

/**
 * Sends req and reads the whole answer into *resp (which this function
 * initialises; free it with cli_response_free() also after an error).
 * Returns 0 when an answer came, whatever its status, or -1 when none did,
 * with one line in err such as
 * "cannot connect to http://127.0.0.1:8080: Connection refused".
 */
int cli_http_do(cli_http *h, const cli_request *req, cli_response *resp, char *err, size_t errsz);

/** Frees the body; safe on a zeroed response. */
void cli_response_free(cli_response *r);

/**
 * One line for an error answer: "server answered 401: missing or wrong token",
 * with the server's "error" text when the body is {"error": ...}, else the
 * first line of a short text body, else the status's reason phrase; a
 * Retry-After is mentioned. Control characters are replaced, the text is
 * cut at a reasonable length. Returns err.
 */
char *cli_http_status_message(const cli_response *r, char *err, size_t errsz);

/** Whether the answer's Content-Type is type (ignoring parameters and case). */
int cli_response_is(const cli_response *r, const char *type);

#endif
