/*
 * cli_http.c - see cli_http.h.
 */
#include "cli_http.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#ifndef ADVJPG_VERSION
#define ADVJPG_VERSION "dev"
#endif

static void set_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || !errsz)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* Copies src (len bytes) into dst (size n) as one printable line: control
 * characters and runs of blanks become one space, the ends are trimmed, and a
 * text longer than max bytes is cut and ends in "...". */
static void one_line(char *dst, size_t n, const char *src, size_t len, size_t max)
{
    size_t o = 0;
    int blank = 0;
    if (n < 5)
        max = 0;
    else if (max > n - 4)
        max = n - 4;
    for (size_t i = 0; i < len && src[i]; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c <= ' ' || c == 0x7f) {
            blank = o > 0;
            continue;
        }
        if (o + (size_t)blank + 1 > max) {
            if (n >= 5)
                memcpy(dst + o, "...", 3), o += 3;
            break;
        }
        if (blank)
            dst[o++] = ' ', blank = 0;
        dst[o++] = (char)c;
    }
    if (n)
        dst[o] = '\0';
}

int cli_http_init(cli_http *h, const char *server, const char *token, double timeout_s,
                  char *err, size_t errsz)
{
    memset(h, 0, sizeof *h);
    if (!server || !*server) {
        set_err(err, errsz, "the server URL is empty");
        return -1;
    }
    const char *prefix = strstr(server, "://") ? "" : "http://";
    size_t n = strlen(prefix) + strlen(server) + 1;
    h->base = malloc(n);
    if (!h->base) {
        set_err(err, errsz, "out of memory");
        return -1;
    }
    snprintf(h->base, n, "%s%s", prefix, server);
    if (strncasecmp(h->base, "http://", 7) && strncasecmp(h->base, "https://", 8)) {
        set_err(err, errsz, "'%s' is not an http:// or https:// URL", server);
        cli_http_cleanup(h);
        return -1;
    }
    const char *host = strstr(h->base, "://") + 3;
    if (!*host || *host == '/') {
        set_err(err, errsz, "'%s' names no host", server);
        cli_http_cleanup(h);
        return -1;
    }
    for (size_t i = strlen(h->base); i > 0 && h->base[i - 1] == '/'; i--)
        h->base[i - 1] = '\0';
    for (const char *p = h->base; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            set_err(err, errsz, "the server URL '%s' contains a space or control character",
                    server);
            cli_http_cleanup(h);
            return -1;
        }
    }
    if (token && *token) {
        for (const char *p = token; *p; p++) {
            if ((unsigned char)*p < ' ' || *p == 0x7f) {
                set_err(err, errsz, "the token contains a control character");
                cli_http_cleanup(h);
                return -1;
            }
        }
        n = strlen("Authorization: Bearer ") + strlen(token) + 1;
        h->auth = malloc(n);
        if (!h->auth) {
            set_err(err, errsz, "out of memory");
            cli_http_cleanup(h);
            return -1;
        }
        snprintf(h->auth, n, "Authorization: Bearer %s", token);
    }
    h->timeout_ms = timeout_s > 0 ? (long)(timeout_s * 1000.0 + 0.5) : 0;
    if (timeout_s > 0 && h->timeout_ms == 0)
        h->timeout_ms = 1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(h->curl = curl_easy_init())) {
        set_err(err, errsz, "cannot start libcurl");
        cli_http_cleanup(h);
        return -1;
    }
    return 0;
}

void cli_http_cleanup(cli_http *h)
{
    if (!h)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    if (h->auth) {
        /* the token does not outlive its use in memory */
        memset(h->auth, 0, strlen(h->auth));
        free(h->auth);
    }
    free(h->base);
    memset(h, 0, sizeof *h);
}

void cli_response_free(cli_response *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    cli_response *r = ud;
    size_t n = size * nmemb;
    if (n > CLI_MAX_BODY - r->len)
        return 0; /* curl reports CURLE_WRITE_ERROR */
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return 0;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/* Copies a header's value (after "Name:") without surrounding blanks. */
static void header_value(char *dst, size_t n, const char *v, size_t len)
{
    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' ||
                   v[len - 1] == '\t'))
        len--;
    if (len >= n)
        len = n - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    cli_response *r = ud;
    size_t n = size * nmemb;
    char tmp[32];
    if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
        /* a new header block (after "100 Continue"): forget the previous one */
        r->content_type[0] = r->location[0] = '\0';
        r->retry_after = -1;
    } else if (n > 13 && !strncasecmp(data, "Content-Type:", 13)) {
        header_value(r->content_type, sizeof r->content_type, data + 13, n - 13);
    } else if (n > 9 && !strncasecmp(data, "Location:", 9)) {
        header_value(r->location, sizeof r->location, data + 9, n - 9);
    } else if (n > 12 && !strncasecmp(data, "Retry-After:", 12)) {
        header_value(tmp, sizeof tmp, data + 12, n - 12);
        char *end;
        long v = strtol(tmp, &end, 10);
        if (end != tmp && *end == '\0' && v >= 0)
            r->retry_after = v;
    }
    return n;
}

static const char *reason_phrase(long status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status >= 500 ? "server error" : "request refused";
    }
}

int cli_response_is(const cli_response *r, const char *type)
{
    size_t n = strlen(type);
    const char *ct = r->content_type;
    return !strncasecmp(ct, type, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

char *cli_http_status_message(const cli_response *r, char *err, size_t errsz)
{
    char text[300] = "";
    if (r->body && r->len) {
        json_t *j = json_loadb(r->body, r->len, 0, NULL);
        const char *e = json_string_value(json_object_get(j, "error"));
        if (e)
            one_line(text, sizeof text, e, strlen(e), 240);
        json_decref(j);
        if (!text[0] && !j && r->len <= 240 && !cli_response_is(r, "text/html")) {
            size_t first = strcspn(r->body, "\r\n");
            one_line(text, sizeof text, r->body, first, 240);
        }
    }
    if (!text[0])
        snprintf(text, sizeof text, "%s", reason_phrase(r->status));
    if (r->retry_after >= 0)
        set_err(err, errsz, "server answered %ld: %s (retry after %ld s)", r->status, text,
                r->retry_after);
    else
        set_err(err, errsz, "server answered %ld: %s", r->status, text);
    return err;
}

/* One line for a request that got no answer. */
static void transport_message(cli_http *h, CURLcode rc, const char *curlerr, char *err,
                              size_t errsz)
{
    long oserr = 0;
    curl_easy_getinfo(h->curl, CURLINFO_OS_ERRNO, &oserr);
    const char *detail = curlerr && *curlerr ? curlerr : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        set_err(err, errsz, "cannot connect to %s: %s", h->base,
                oserr ? strerror((int)oserr) : detail);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        set_err(err, errsz, "cannot connect to %s: unknown host", h->base);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        set_err(err, errsz, "no answer from %s within %.3g s (see --timeout)", h->base,
                h->timeout_ms / 1000.0);
        break;
    case CURLE_WRITE_ERROR:
        set_err(err, errsz, "the answer from %s is larger than %zu MiB or memory ran out",
                h->base, CLI_MAX_BODY >> 20);
        break;
    case CURLE_READ_ERROR:
        set_err(err, errsz, "cannot read a file to upload to %s: %s", h->base, detail);
        break;
    case CURLE_GOT_NOTHING:
        set_err(err, errsz, "%s closed the connection without answering", h->base);
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        set_err(err, errsz, "connection to %s broke: %s", h->base,
                oserr ? strerror((int)oserr) : detail);
        break;
    default:
        set_err(err, errsz, "request to %s failed: %s", h->base, detail);
    }
}

/* Appends a header line to *l; 1, or 0 when memory ran out (*l is kept). */
static int add_header(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n)
        return 0;
    *l = n;
    return 1;
}

/* A multipart body of n parts for handle c; NULL with a message in err. */
static curl_mime *build_mime(CURL *c, const cli_part *parts, size_t n, char *err, size_t errsz)
{
    curl_mime *m = curl_mime_init(c);
    if (!m) {
        set_err(err, errsz, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const cli_part *p = &parts[i];
        curl_mimepart *mp = curl_mime_addpart(m);
        CURLcode rc = mp ? curl_mime_name(mp, p->name) : CURLE_OUT_OF_MEMORY;
        if (rc == CURLE_OK)
            rc = p->path ? curl_mime_filedata(mp, p->path)
                         : curl_mime_data(mp, p->data ? p->data : "", p->len);
        if (rc == CURLE_OK && p->filename)
            rc = curl_mime_filename(mp, p->filename);
        if (rc == CURLE_OK && p->type)
            rc = curl_mime_type(mp, p->type);
        if (rc != CURLE_OK) {
            set_err(err, errsz, "cannot add the part '%s'%s%s to the request: %s", p->name,
                    p->path ? " from " : "", p->path ? p->path : "", curl_easy_strerror(rc));
            curl_mime_free(m);
            return NULL;
        }
    }
    return m;
}

int cli_http_do(cli_http *h, const cli_request *req, cli_response *resp, char *err, size_t errsz)
{
    memset(resp, 0, sizeof *resp);
    resp->retry_after = -1;
    size_t n = strlen(h->base) + strlen(req->path) + 1;
    char *url = malloc(n);
    char ct[160], accept[160], curlerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdr = NULL;
    curl_mime *mime = NULL;
    int ok = 1;
    if (!url) {
        set_err(err, errsz, "out of memory");
        return -1;
    }
    snprintf(url, n, "%s%s", h->base, req->path);

    snprintf(accept, sizeof accept, "Accept: %s", req->accept ? req->accept : "application/json");
    ok &= add_header(&hdr, accept);
    /* no "Expect: 100-continue" round trip before image bodies */
    ok &= add_header(&hdr, "Expect:");
    if (req->content_type && !req->n_parts) {
        snprintf(ct, sizeof ct, "Content-Type: %s", req->content_type);
        ok &= add_header(&hdr, ct);
    }
    if (h->auth)
        ok &= add_header(&hdr, h->auth);
    if (!ok) {
        curl_slist_free_all(hdr);
        free(url);
        set_err(err, errsz, "out of memory");
        return -1;
    }

    CURL *c = h->curl;
    curl_easy_reset(c); /* keeps the connection cache */
    curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curlerr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "advjpg/" ADVJPG_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* whatever curl can decode */
    long connect_ms = 10000;
    if (h->timeout_ms && h->timeout_ms < connect_ms)
        connect_ms = h->timeout_ms;
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    if (!strcmp(req->method, "POST") && req->n_parts) {
        if (!(mime = build_mime(c, req->parts, req->n_parts, err, errsz))) {
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
            curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
            curl_slist_free_all(hdr);
            free(url);
            return -1;
        }
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    } else if (!strcmp(req->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
    } else if (!strcmp(req->method, "GET")) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    }

    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    else
        transport_message(h, rc, curlerr, err, errsz);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    if (mime) {
        curl_easy_setopt(c, CURLOPT_MIMEPOST, NULL);
        curl_mime_free(mime);
    }
    curl_slist_free_all(hdr);
    free(url);
    if (rc != CURLE_OK)
        return -1;
    if (!resp->body) { /* an empty body is still a string */
        resp->body = calloc(1, 1);
        if (!resp->body) {
            set_err(err, errsz, "out of memory");
            return -1;
        }
        resp->cap = 1;
    }
    return 0;
}
