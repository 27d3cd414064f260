#include "srv_front.h"

#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "srv_json.h"
#include "status.h"
#include "ut_clock.h"

/* At most this many bytes of a refused request are thrown away before the close. */
#define LINGER_BYTES (1024 * 1024)
/* How often the deadlines are looked at, milliseconds. */
#define SWEEP_MS 250
/* epoll tags: the listen socket, the wake-up eventfd, then slot i as i + TAG_SLOT. */
#define TAG_LISTEN 0
#define TAG_WAKE 1
#define TAG_SLOT 2

/* ------------------------------------------------------------ the head check */

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* A refusal: fills *status and msg, returns SRV_HEAD_BAD. */
__attribute__((format(printf, 5, 6))) static srv_head_verdict
refuse(unsigned *status, unsigned code, char *msg, size_t msgsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msgsz, fmt, ap);
    va_end(ap);
    *status = code;
    return SRV_HEAD_BAD;
}

/* Whether s[0..len) is "HTTP/" then digits and dots: a version, if not ours. */
static int looks_like_version(const char *s, size_t len)
{
    if (len <= 5 || memcmp(s, "HTTP/", 5) != 0)
        return 0;
    for (size_t i = 5; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
            return 0;
    return 1;
}

/* METHOD SP TARGET SP HTTP/1.x (len bytes, without the line end). */
static srv_head_verdict check_request_line(const char *s, size_t len, unsigned *status,
                                           char *msg, size_t msgsz)
{
    const char *sp1 = memchr(s, ' ', len);
    size_t mlen = sp1 ? (size_t)(sp1 - s) : len;
    for (size_t i = 0; i < mlen; i++)
        if (!is_tchar((unsigned char)s[i]))
            return refuse(status, 400, msg, msgsz,
                          "malformed request line: the method is not a token");
    if (!sp1 || mlen == 0)
        return refuse(status, 400, msg, msgsz,
                      "malformed request line: send METHOD TARGET HTTP/1.1");
    const char *t = sp1 + 1, *end = s + len;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    const char *tend = sp2 ? sp2 : end;
    if (tend == t)
        return refuse(status, 400, msg, msgsz, "malformed request line: no request target");
    for (const char *p = t; p < tend; p++)
        if (is_ctl((unsigned char)*p))
            return refuse(status, 400, msg, msgsz,
                          "malformed request line: a control character in the target");
    const char *q = memchr(t, '?', (size_t)(tend - t));
    int params = q ? 1 : 0;
    for (const char *p = q; p && p < tend; p++)
        params += *p == '&';
    if (params > SRV_FRONT_PARAMS_MAX)
        return refuse(status, 400, msg, msgsz, "more than %d query parameters",
                      SRV_FRONT_PARAMS_MAX);
    if (!sp2)
        return refuse(status, 505, msg, msgsz,
                      "HTTP/0.9 requests (no version) are not supported: send HTTP/1.1");
    const char *v = sp2 + 1;
    size_t vlen = (size_t)(end - v);
    /* HTTP/1.x: a higher minor version is taken as 1.1 (RFC 9110, 2.5), as libmicrohttpd does */
    if (vlen == 8 && memcmp(v, "HTTP/1.", 7) == 0 && v[7] >= '0' && v[7] <= '9')
        return SRV_HEAD_MORE;
    if (looks_like_version(v, vlen))
        return refuse(status, 505, msg, msgsz,
                      "HTTP version %.*s is not supported: send HTTP/1.1 or HTTP/1.0",
                      (int)(vlen > 16 ? 16 : vlen), v);
    return refuse(status, 400, msg, msgsz,
                  "malformed request line: the version is not HTTP/1.1 or HTTP/1.0");
}

/* What the framing headers said so far. */
typedef struct {
    long long clen; /* Content-Length, -1: none */
} head_state;

/* Content-Length: digits only, and the same value if it comes again. */
static srv_head_verdict check_content_length(const char *v, const char *end, head_state *hs,
                                             unsigned *status, char *msg, size_t msgsz)
{
    long long n = 0;
    for (const char *p = v; p < end; p++)
        if (*p < '0' || *p > '9')
            return refuse(status, 400, msg, msgsz, "Content-Length is not a number of bytes");
    if (v == end)
        return refuse(status, 400, msg, msgsz, "Content-Length is not a number of bytes");
    if (end - v > 18)
        return refuse(status, 413, msg, msgsz, "Content-Length is larger than any body accepted");
    for (const char *p = v; p < end; p++)
        n = n * 10 + (*p - '0');
    if (hs->clen >= 0 && hs->clen != n)
        return refuse(status, 400, msg, msgsz,
                      "two different Content-Length values (%lld and %lld): send one", hs->clen, n);
    hs->clen = n;
    return SRV_HEAD_MORE;
}

/* Transfer-Encoding: chunked only (libmicrohttpd knows no other coding). */
static srv_head_verdict check_transfer_encoding(const char *v, const char *end, head_state *hs,
                                                unsigned *status, char *msg, size_t msgsz)
{
    (void)hs;
    if (end - v == 7 && strncasecmp(v, "chunked", 7) == 0)
        return SRV_HEAD_MORE;
    return refuse(status, 501, msg, msgsz,
                  "Transfer-Encoding %.*s is not supported: send chunked or a Content-Length",
                  (int)(end - v > 40 ? 40 : end - v), v);
}

/* The headers that frame the body, checked beyond the syntax; the value is trimmed. */
static const struct {
    const char *name;
    srv_head_verdict (*check)(const char *v, const char *end, head_state *hs, unsigned *status,
                              char *msg, size_t msgsz);
} framing_headers[] = {
    {"Content-Length", check_content_length},
    {"Transfer-Encoding", check_transfer_encoding},
};

/* NAME ":" VALUE (len bytes, without the line end). */
static srv_head_verdict check_header_line(const char *s, size_t len, head_state *hs,
                                          unsigned *status, char *msg, size_t msgsz)
{
    if (s[0] == ' ' || s[0] == '\t')
        return refuse(status, 400, msg, msgsz,
                      "malformed header: a folded line (starting with a space or tab)");
    const char *colon = memchr(s, ':', len);
    if (!colon)
        return refuse(status, 400, msg, msgsz, "malformed header: a line without a colon");
    size_t nlen = (size_t)(colon - s);
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)s[i]))
            return refuse(status, 400, msg, msgsz,
                          "malformed header: the name is not a token (a space before the colon?)");
    if (nlen == 0)
        return refuse(status, 400, msg, msgsz, "malformed header: an empty name");
    const char *v = colon + 1, *end = s + len;
    for (const char *p = v; p < end; p++)
        if (is_ctl((unsigned char)*p) && *p != '\t')
            return refuse(status, 400, msg, msgsz,
                          "malformed header: a control character in the value of %.*s",
                          (int)(nlen > 40 ? 40 : nlen), s);
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (size_t i = 0; i < sizeof framing_headers / sizeof framing_headers[0]; i++)
        if (strlen(framing_headers[i].name) == nlen &&
            strncasecmp(s, framing_headers[i].name, nlen) == 0)
            return framing_headers[i].check(v, end, hs, status, msg, msgsz);
    return SRV_HEAD_MORE;
}

srv_head_verdict srv_front_check(const char *buf, size_t n, int full, size_t *head_len,
                                 unsigned *status, char *msg, size_t msgsz)
{
    size_t pos = 0;
    /* empty lines before the request line are ignored (RFC 9112, 2.2) */
    while (pos < n && (buf[pos] == '\n' || (buf[pos] == '\r' && pos + 1 < n && buf[pos + 1] == '\n')))
        pos += buf[pos] == '\r' ? 2 : 1;
    head_state hs = {-1};
    for (int line = 0;; line++) {
        const char *nl = memchr(buf + pos, '\n', n - pos);
        if (!nl) {
            if (!full)
                return SRV_HEAD_MORE;
            if (line == 0)
                return refuse(status, 414, msg, msgsz,
                              "the request line is longer than %d bytes", SRV_FRONT_HEAD_MAX);
            return refuse(status, 431, msg, msgsz,
                          "the request head is larger than %d bytes", SRV_FRONT_HEAD_MAX);
        }
        const char *s = buf + pos;
        size_t len = (size_t)(nl - s);
        pos += len + 1;
        if (len && s[len - 1] == '\r')
            len--;
        srv_head_verdict v;
        if (line == 0) {
            v = len ? check_request_line(s, len, status, msg, msgsz)
                    : refuse(status, 400, msg, msgsz, "malformed request line: a bare CR");
        } else if (len == 0) {
            *head_len = pos;
            return SRV_HEAD_OK;
        } else if (line > SRV_FRONT_HEADERS_MAX) {
            v = refuse(status, 431, msg, msgsz, "more than %d header lines", SRV_FRONT_HEADERS_MAX);
        } else {
            v = check_header_line(s, len, &hs, status, msg, msgsz);
        }
        if (v == SRV_HEAD_BAD)
            return v;
    }
}

/* ------------------------------------------------------------ the front thread */

typedef enum {
    P_FREE,   /* an empty slot */
    P_HEAD,   /* waiting for its head */
    P_LINGER, /* answered (refused): reading and throwing away, then the close */
} pend_state;

typedef struct {
    int fd;
    pend_state state;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    double since;  /* accepted (P_HEAD) or answered (P_LINGER), ut_now */
    size_t thrown; /* P_LINGER: bytes thrown away */
} pend;

struct srv_front {
    const srv_config *cfg;
    struct MHD_Daemon *daemon;
    int listen_fd; /* -1 once quiesced; the front thread closes it */
    int ep, wake;  /* epoll set, eventfd for quiesce and stop */
    atomic_int quiesce, stop;
    pthread_t thread;
    int started;
    pend *slots; /* cfg->conn_limit of them */
    int cap, n;  /* slots, slots in use */
    char *peek;  /* SRV_FRONT_HEAD_MAX bytes: the thread's look at a head */
};

/* Whether two addresses are the same host (the port aside). */
static int same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return 1; /* other families (a Unix socket): one host */
}

static void slot_close(srv_front *f, pend *p)
{
    epoll_ctl(f->ep, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    p->fd = -1;
    p->state = P_FREE;
    f->n--;
}

/* Closes the oldest connection (of host, or of anyone when NULL) when
 * `limit` of them are here, to make room for one more. */
static void make_room(srv_front *f, const struct sockaddr_storage *host, int limit)
{
    int count = 0;
    pend *oldest = NULL;
    for (int i = 0; i < f->cap; i++) {
        pend *p = &f->slots[i];
        if (p->state == P_FREE || (host && !same_host(&p->addr, host)))
            continue;
        count++;
        if (!oldest || p->since < oldest->since)
            oldest = p;
    }
    if (count >= limit && oldest)
        slot_close(f, oldest);
}

/* One line on stderr per refused head, the request log's shape. */
static void log_refusal(unsigned status, const char *msg)
{
    char when[32], line[512];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char *clean = srv_utf8_escape(msg, 1);
    snprintf(line, sizeof line, "%s - - %u (refused before libmicrohttpd: %s)\n", when, status,
             clean ? clean : "?");
    free(clean);
    fputs(line, stderr);
}

/* Reads and throws away what has come; closes at the end of the stream,
 * after LINGER_BYTES, or on an error. */
static void linger_read(srv_front *f, pend *p)
{
    for (;;) {
        ssize_t got = recv(p->fd, f->peek, SRV_FRONT_HEAD_MAX, MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || (p->thrown += (size_t)got) > LINGER_BYTES) {
            slot_close(f, p);
            return;
        }
    }
}

/* Answers {"error": msg} with status and Connection: close, then lingers. */
static void answer(srv_front *f, pend *p, unsigned status, const char *msg)
{
    char *body = srv_json_error(msg);
    const char *text = body ? body : "{\"error\":\"out of memory\"}";
    const char *reason = MHD_get_reason_phrase_for(status);
    char date[64], head[256];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %u %s\r\nConnection: close\r\nContent-Length: %zu\r\n"
                      "Date: %s\r\nContent-Type: application/json\r\n\r\n",
                      status, reason && *reason ? reason : "Error", strlen(text), date);
    struct iovec iov[2] = {{head, (size_t)hn}, {(void *)text, strlen(text)}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    /* a fresh socket's send buffer holds this small answer whole */
    (void)sendmsg(p->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    free(body);
    log_refusal(status, msg);
    shutdown(p->fd, SHUT_WR);
    p->state = P_LINGER;
    p->since = ut_now();
    p->thrown = 0;
    linger_read(f, p);
}

/* Hands a connection with a good head to libmicrohttpd (which applies
 * srv_conns' accept policy and closes the socket if it refuses it). */
static void hand_over(srv_front *f, pend *p)
{
    epoll_ctl(f->ep, EPOLL_CTL_DEL, p->fd, NULL);
    int fd = p->fd;
    p->fd = -1;
    p->state = P_FREE;
    f->n--;
    MHD_add_connection(f->daemon, fd, (const struct sockaddr *)&p->addr, p->addrlen);
}

/* New bytes (or the end) on a connection waiting for its head. */
static void head_event(srv_front *f, pend *p, uint32_t events)
{
    ssize_t got = recv(p->fd, f->peek, SRV_FRONT_HEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (got <= 0) { /* gone, or an error: nothing to answer */
        slot_close(f, p);
        return;
    }
    size_t head_len = 0;
    unsigned status = 0;
    char msg[ADJ_ERRLEN];
    srv_head_verdict v = srv_front_check(f->peek, (size_t)got, got >= SRV_FRONT_HEAD_MAX,
                                         &head_len, &status, msg, sizeof msg);
    if (v == SRV_HEAD_OK)
        hand_over(f, p);
    else if (v == SRV_HEAD_BAD)
        answer(f, p, status, msg);
    else if (events & (EPOLLRDHUP | EPOLLHUP))
        answer(f, p, 400, "the request head ended before its blank line");
}

/* Takes every waiting connection from the listen socket. */
static void accept_all(srv_front *f)
{
    while (f->listen_fd >= 0) {
        pend np = {0};
        np.addrlen = sizeof np.addr;
        np.fd = accept4(f->listen_fd, (struct sockaddr *)&np.addr, &np.addrlen,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (np.fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or out of descriptors: the next sweep tries again */
        }
        make_room(f, NULL, f->cfg->conn_limit);
        make_room(f, &np.addr, f->cfg->per_ip_limit);
        int i = 0;
        while (i < f->cap && f->slots[i].state != P_FREE)
            i++;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET,
                                 .data.u64 = (uint64_t)i + TAG_SLOT};
        if (i == f->cap || epoll_ctl(f->ep, EPOLL_CTL_ADD, np.fd, &ev) != 0) {
            close(np.fd);
            continue;
        }
        np.state = P_HEAD;
        np.since = ut_now();
        f->slots[i] = np;
        f->n++;
    }
}

/* The deadlines: a head within header_timeout_s (408, or a silent close
 * when nothing came), the lingering close within SRV_FRONT_LINGER_S. */
static void sweep(srv_front *f)
{
    double now = ut_now(), hto = f->cfg->header_timeout_s;
    for (int i = 0; i < f->cap && f->n; i++) {
        pend *p = &f->slots[i];
        if (p->state == P_HEAD && now - p->since > hto) {
            char c;
            if (recv(p->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
                char msg[128];
                snprintf(msg, sizeof msg, "the request head did not arrive within %d s",
                         f->cfg->header_timeout_s);
                answer(f, p, 408, msg);
            } else {
                slot_close(f, p);
            }
        } else if (p->state == P_LINGER && now - p->since > SRV_FRONT_LINGER_S) {
            slot_close(f, p);
        }
    }
}

static void *front_main(void *arg)
{
    srv_front *f = arg;
    struct epoll_event evs[64];
    double swept = ut_now();
    while (!atomic_load(&f->stop)) {
        int n = epoll_wait(f->ep, evs, 64, SWEEP_MS);
        for (int k = 0; k < n; k++) {
            uint64_t tag = evs[k].data.u64;
            if (tag == TAG_LISTEN) {
                accept_all(f);
            } else if (tag == TAG_WAKE) {
                uint64_t v;
                (void)!read(f->wake, &v, sizeof v);
            } else {
                pend *p = &f->slots[tag - TAG_SLOT];
                if (p->state == P_HEAD)
                    head_event(f, p, evs[k].events);
                else if (p->state == P_LINGER)
                    linger_read(f, p);
            }
        }
        if (atomic_load(&f->quiesce) && f->listen_fd >= 0) {
            epoll_ctl(f->ep, EPOLL_CTL_DEL, f->listen_fd, NULL);
            close(f->listen_fd);
            f->listen_fd = -1;
        }
        double now = ut_now();
        if (now - swept >= SWEEP_MS / 1000.0) {
            swept = now;
            sweep(f);
            accept_all(f); /* after running out of descriptors */
        }
    }
    return NULL;
}

/* Frees what srv_front_start made (the thread not running). */
static void front_free(srv_front *f)
{
    for (int i = 0; f->slots && i < f->cap; i++)
        if (f->slots[i].state != P_FREE)
            close(f->slots[i].fd);
    if (f->listen_fd >= 0)
        close(f->listen_fd);
    if (f->ep >= 0)
        close(f->ep);
    if (f->wake >= 0)
        close(f->wake);
    free(f->slots);
    free(f->peek);
    free(f);
}

int srv_front_start(const srv_config *cfg, int listen_fd, struct MHD_Daemon *daemon,
                    srv_front **out, char *err, size_t errsz)
{
    srv_front *f = calloc(1, sizeof *f);
    if (!f) {
        close(listen_fd);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    f->cfg = cfg;
    f->daemon = daemon;
    f->listen_fd = listen_fd;
    f->cap = cfg->conn_limit;
    f->slots = calloc((size_t)f->cap, sizeof *f->slots);
    f->peek = malloc(SRV_FRONT_HEAD_MAX);
    f->ep = epoll_create1(EPOLL_CLOEXEC);
    f->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    atomic_init(&f->quiesce, 0);
    atomic_init(&f->stop, 0);
    if (!f->slots || !f->peek) {
        front_free(f);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.u64 = TAG_LISTEN};
    struct epoll_event wev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
    if (f->ep < 0 || f->wake < 0 || epoll_ctl(f->ep, EPOLL_CTL_ADD, listen_fd, &lev) != 0 ||
        epoll_ctl(f->ep, EPOLL_CTL_ADD, f->wake, &wev) != 0) {
        int e = errno;
        front_free(f);
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot start the accept loop: %s", strerror(e));
    }
    if (pthread_create(&f->thread, NULL, front_main, f)) {
        front_free(f);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot start the accept thread");
    }
    f->started = 1;
    *out = f;
    return ADJ_OK;
}

static void wake(srv_front *f)
{
    uint64_t one = 1;
    (void)!write(f->wake, &one, sizeof one);
}

void srv_front_quiesce(srv_front *f)
{
    if (!f)
        return;
    atomic_store(&f->quiesce, 1);
    wake(f);
}

void srv_front_stop(srv_front *f)
{
    if (!f)
        return;
    atomic_store(&f->stop, 1);
    wake(f);
    if (f->started)
        pthread_join(f->thread, NULL);
    front_free(f);
}
