/*
 * srv_conns.h - every open connection of advjpgd, for the deadlines and
 * limits that libmicrohttpd does not have: slow clients (slowloris) and a
 * table full of idle connections.
 *
 * libmicrohttpd's own timeout is idle-based: a client that sends a byte a
 * second holds its connection for ever, and its connection limits refuse
 * newcomers while such clients hold every slot. So:
 *   - a reaper thread shuts down a connection that has not sent a whole
 *     request's headers within cfg->header_timeout_s of its start (or of
 *     its previous answer), and one whose body arrives slower than
 *     cfg->min_rate bytes/s on average once header_timeout_s has passed;
 *   - the accept policy enforces cfg->conn_limit and cfg->per_ip_limit:
 *     when one is reached, the connection (of that address, for the
 *     per-address limit) that has waited longest for a request is shut down
 *     to make room, so /health and other clients still get in while idle or
 *     slow connections fill the table (a newcomer that sends its request at
 *     once is busy before it becomes the oldest); only when every
 *     connection is busy with a request is the newcomer refused.
 * A connection is shut down (shutdown(2)), never closed here: libmicrohttpd
 * sees the end of the stream and closes it on its own thread. Its record
 * lives until MHD_CONNECTION_NOTIFY_CLOSED, which libmicrohttpd calls before
 * it closes the socket, so a descriptor is never reused under us. A summary
 * line on stderr counts the connections closed so (at most one per 10 s).
 *
 *     srv_conns *cs;
 *     srv_conns_new(cfg, &cs, err, sizeof err);
 *     MHD_start_daemon(flags, 0, srv_conns_accept, cs, handler, h,
 *                      MHD_OPTION_NOTIFY_CONNECTION, srv_conns_notify, cs, ...);
 *     // in the handler: the phase of the connection's current request
 *     srv_conns_phase(cs, srv_conns_of(conn), SRV_CONN_BODY);
 *     ...
 *     MHD_stop_daemon(d);
 *     srv_conns_free(cs);
 */
#ifndef SRV_CONNS_H
#define SRV_CONNS_H

#include <microhttpd.h>
#include <stddef.h>
#include <sys/socket.h>

#include "srv_config.h"

typedef struct srv_conns srv_conns;

/** One tracked connection (opaque); NULL stands for an untracked one. */
typedef struct srv_conn srv_conn;

/** What a connection is doing. */
typedef enum {
    SRV_CONN_WAIT, /**< waiting for a request's headers (new, or kept alive after an answer) */
    SRV_CONN_BODY, /**< receiving a request's body */
    SRV_CONN_WORK, /**< its request is being worked on or answered: never shut down */
    SRV_CONN_DONE, /**< answered with Connection: close: closing, no longer counted */
} srv_conn_phase;

/**
 * Starts the tracking and its reaper thread. cfg is borrowed and must
 * outlive the set (header_timeout_s, min_rate, conn_limit, per_ip_limit).
 * *out is new: srv_conns_free. ADJ_ERR_NOMEM with a message.
 */
int srv_conns_new(const srv_config *cfg, srv_conns **out, char *err, size_t errsz);

/** Stops the reaper and frees the set (NULL is fine); after MHD_stop_daemon. */
void srv_conns_free(srv_conns *cs);

/** libmicrohttpd's accept policy (cls: the srv_conns): the limits above. */
enum MHD_Result srv_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);

/** MHD_OPTION_NOTIFY_CONNECTION (cls: the srv_conns): records connections. */
void srv_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode code);

/** The record of a connection (borrowed, valid until it closes), NULL if untracked. */
srv_conn *srv_conns_of(struct MHD_Connection *conn);

/** Moves a connection (NULL: nothing) to a phase from now on; resets its body count. */
void srv_conns_phase(srv_conns *cs, srv_conn *c, srv_conn_phase phase);

/** Counts n body bytes of a connection in SRV_CONN_BODY (NULL: nothing). */
void srv_conns_received(srv_conns *cs, srv_conn *c, size_t n);

#endif
