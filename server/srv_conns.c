#include "srv_conns.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ut_clock.h"
#include "status.h"

/* How often the reaper looks at the connections, seconds. */
#define REAP_PERIOD 0.5
/* At most one summary line per this many seconds. */
#define REAP_LOG_EVERY 10.0

struct srv_conn {
    struct srv_conn *prev, *next;
    int fd;                      /* libmicrohttpd's; only shut down, never closed here */
    struct sockaddr_storage addr;
    srv_conn_phase phase;
    double since;                /* when the phase began (ut_now) */
    uint64_t received;           /* SRV_CONN_BODY: body bytes so far */
    int closing;                 /* shut down by us: no longer counted */
    int listed;                  /* in the set's list */
};

struct srv_conns {
    const srv_config *cfg;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* wakes the reaper to stop */
    srv_conn *head;
    int stop;
    pthread_t reaper;
    unsigned long n_reaped, n_evicted; /* since the last summary line */
    double logged;
};

/* Whether a recorded address and b are the same host (the port aside). */
static int same_host(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return 0;
    if (b->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (b->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return 0;
}

/* Shuts a connection down (lock held). */
static void conn_shut(srv_conn *c)
{
    c->closing = 1;
    shutdown(c->fd, SHUT_RDWR);
}

/*
 * Makes room for one more connection (of host, or of anyone when host is
 * NULL) when `limit` of them are open: shuts down the one that has waited
 * longest for a request. Returns 1 if there is room (then), 0 if every one
 * is busy. Lock held.
 */
static int make_room(srv_conns *cs, const struct sockaddr *host, int limit)
{
    int n = 0;
    srv_conn *oldest = NULL;
    for (srv_conn *c = cs->head; c; c = c->next) {
        if (c->closing || c->phase == SRV_CONN_DONE || (host && !same_host(&c->addr, host)))
            continue;
        n++;
        if (c->phase == SRV_CONN_WAIT && (!oldest || c->since < oldest->since))
            oldest = c;
    }
    if (n < limit)
        return 1;
    if (!oldest)
        return 0;
    conn_shut(oldest);
    cs->n_evicted++;
    return 1;
}

enum MHD_Result srv_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    srv_conns *cs = cls;
    (void)addrlen;
    pthread_mutex_lock(&cs->lock);
    int ok = make_room(cs, NULL, cs->cfg->conn_limit) &&
             make_room(cs, addr, cs->cfg->per_ip_limit);
    pthread_mutex_unlock(&cs->lock);
    return ok ? MHD_YES : MHD_NO;
}

void srv_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode code)
{
    srv_conns *cs = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        srv_conn *c = calloc(1, sizeof *c);
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context = c;
        if (!c || !fd)
            return; /* untracked: only the idle timeout applies */
        c->fd = fd->connect_fd;
        if (ad && ad->client_addr) {
            socklen_t len = ad->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                   : sizeof(struct sockaddr_in);
            memcpy(&c->addr, ad->client_addr, len);
        }
        c->phase = SRV_CONN_WAIT;
        c->since = ut_now();
        c->listed = 1;
        pthread_mutex_lock(&cs->lock);
        c->next = cs->head;
        if (cs->head)
            cs->head->prev = c;
        cs->head = c;
        pthread_mutex_unlock(&cs->lock);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        srv_conn *c = *socket_context;
        *socket_context = NULL;
        if (!c)
            return;
        pthread_mutex_lock(&cs->lock);
        if (c->listed) {
            if (c->prev)
                c->prev->next = c->next;
            else
                cs->head = c->next;
            if (c->next)
                c->next->prev = c->prev;
        }
        pthread_mutex_unlock(&cs->lock);
        free(c);
    }
}

srv_conn *srv_conns_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

void srv_conns_phase(srv_conns *cs, srv_conn *c, srv_conn_phase phase)
{
    if (!c)
        return;
    pthread_mutex_lock(&cs->lock);
    c->phase = phase;
    c->since = ut_now();
    c->received = 0;
    pthread_mutex_unlock(&cs->lock);
}

void srv_conns_received(srv_conns *cs, srv_conn *c, size_t n)
{
    if (!c)
        return;
    pthread_mutex_lock(&cs->lock);
    c->received += n;
    pthread_mutex_unlock(&cs->lock);
}

/* The reaper thread: header deadlines and the minimum body rate. */
static void *reaper_main(void *arg)
{
    srv_conns *cs = arg;
    double hto = cs->cfg->header_timeout_s, rate = (double)cs->cfg->min_rate;
    pthread_mutex_lock(&cs->lock);
    while (!cs->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(REAP_PERIOD * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&cs->cond, &cs->lock, &ts);
        double now = ut_now();
        for (srv_conn *c = cs->head; c; c = c->next) {
            double age = now - c->since;
            if (c->closing)
                continue;
            if ((c->phase == SRV_CONN_WAIT && age > hto) ||
                (c->phase == SRV_CONN_BODY && age > hto &&
                 (double)c->received < rate * (age - hto))) {
                conn_shut(c);
                cs->n_reaped++;
            }
        }
        if ((cs->n_reaped || cs->n_evicted) && now - cs->logged >= REAP_LOG_EVERY) {
            fprintf(stderr,
                    "advjpgd: closed %lu connections too slow to send a request (header "
                    "timeout %d s, min rate %zu B/s) and %lu waiting ones to make room\n",
                    cs->n_reaped, cs->cfg->header_timeout_s, cs->cfg->min_rate, cs->n_evicted);
            cs->n_reaped = cs->n_evicted = 0;
            cs->logged = now;
        }
    }
    pthread_mutex_unlock(&cs->lock);
    return NULL;
}

int srv_conns_new(const srv_config *cfg, srv_conns **out, char *err, size_t errsz)
{
    srv_conns *cs = calloc(1, sizeof *cs);
    if (!cs)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    cs->cfg = cfg;
    pthread_mutex_init(&cs->lock, NULL);
    pthread_cond_init(&cs->cond, NULL);
    if (pthread_create(&cs->reaper, NULL, reaper_main, cs)) {
        pthread_cond_destroy(&cs->cond);
        pthread_mutex_destroy(&cs->lock);
        free(cs);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot start the connection reaper thread");
    }
    *out = cs;
    return ADJ_OK;
}

void srv_conns_free(srv_conns *cs)
{
    if (!cs)
        return;
    pthread_mutex_lock(&cs->lock);
    cs->stop = 1;
    pthread_cond_signal(&cs->cond);
    pthread_mutex_unlock(&cs->lock);
    pthread_join(cs->reaper, NULL);
    while (cs->head) { /* only if the daemon never reported them closed */
        srv_conn *c = cs->head;
        cs->head = c->next;
        free(c);
    }
    pthread_cond_destroy(&cs->cond);
    pthread_mutex_destroy(&cs->lock);
    free(cs);
}
