/*
 * srv_front.h - advjpgd's accept loop in front of libmicrohttpd: every
 * request head is checked before libmicrohttpd sees it, so that a malformed
 * one gets a JSON error like every other answer.
 *
 * libmicrohttpd 0.9.75 answers a few malformed requests itself, before any
 * callback of ours runs, with fixed HTML bodies (431 for an oversized head,
 * 505 for an unknown HTTP version, 400 for a request or header line it
 * cannot parse), and has no hook to replace them. So the daemon runs with
 * MHD_USE_NO_LISTEN_SOCKET and one front thread owns the listen socket:
 *   - it accepts connections and keeps them in an epoll set (no thread per
 *     connection, nothing read yet: the head is looked at with
 *     recv(MSG_PEEK), at most SRV_FRONT_HEAD_MAX bytes, so libmicrohttpd later
 *     reads the untouched stream);
 *   - once the head is whole (or a line of it is wrong) it checks the
 *     request line (a method token, a target without control characters or
 *     spaces, HTTP/1.x; any other version is 505), the header lines (a
 *     token, a colon, a value without control characters; no folded lines),
 *     the head's size and its number of header lines and query parameters
 *     (SRV_FRONT_HEADERS_MAX, SRV_FRONT_PARAMS_MAX), the Content-Length values (digits only; two
 *     different values are refused) and Transfer-Encoding (chunked only,
 *     else 501: libmicrohttpd would wait for a body it cannot frame);
 *   - a good head: the socket goes to libmicrohttpd (MHD_add_connection,
 *     which applies srv_conns' accept policy as for its own accepts);
 *   - a bad one: {"error": ...} with 400, 413, 414, 431, 501 or 505 and Connection:
 *     close, then the rest of what the client sends is read and thrown away
 *     for a moment (SRV_FRONT_LINGER_S) before the close, so that the client
 *     reads the answer instead of a reset;
 *   - a head not whole within cfg->header_timeout_s: 408 (or a silent close
 *     when nothing came at all);
 *   - cfg->conn_limit and cfg->per_ip_limit bound the connections waiting
 *     here as srv_conns bounds libmicrohttpd's: when one is reached, the one
 *     (of that address) that has waited longest is closed to make room.
 * Only a connection's first request passes here: advjpgd answers every
 * request with Connection: close (srv_http), so that no request reaches
 * libmicrohttpd unchecked on a kept-alive connection.
 *
 *     srv_front *f;
 *     d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC | ..., 0, ...);
 *     srv_front_start(cfg, listen_fd, d, &f, err, sizeof err); // takes listen_fd
 *     ...
 *     srv_front_quiesce(f);   // closes the listen socket: no new connection
 *     srv_front_stop(f);      // before MHD_stop_daemon(d)
 *     MHD_stop_daemon(d);
 */
#ifndef SRV_FRONT_H
#define SRV_FRONT_H

#include <microhttpd.h>
#include <stddef.h>

#include "srv_config.h"

/** The longest request head (request line and headers) accepted, bytes: 431 (414) beyond. */
#define SRV_FRONT_HEAD_MAX (32 * 1024)
/** The most header lines and query parameters accepted (431, 400 beyond): libmicrohttpd
 * keeps each in its 128 KiB per-connection pool and answers HTML (or nothing) past about
 * 1,500 header lines or 1,000 parameters. */
#define SRV_FRONT_HEADERS_MAX 100
#define SRV_FRONT_PARAMS_MAX 100
/** How long the rest of a refused request is read and thrown away before the close, seconds. */
#define SRV_FRONT_LINGER_S 2.0

typedef struct srv_front srv_front;

/** What a head is, as srv_front_check finds it. */
typedef enum {
    SRV_HEAD_MORE,  /**< every line so far is fine but the head is not whole yet */
    SRV_HEAD_OK,    /**< whole and fine: *head_len is its length, up to the blank line */
    SRV_HEAD_BAD,   /**< refused: *status and msg say why */
} srv_head_verdict;

/**
 * Checks the n bytes received so far of a connection's stream (not
 * NUL-terminated). full: n is all that may be looked at (SRV_FRONT_HEAD_MAX
 * reached), so a head not whole is refused. Pure: used by the front and by
 * the fuzz and unit tests.
 */
srv_head_verdict srv_front_check(const char *buf, size_t n, int full, size_t *head_len,
                                 unsigned *status, char *msg, size_t msgsz);

/**
 * Starts the front thread. cfg is borrowed and must outlive the front;
 * listen_fd (non-blocking, listening) is taken over; daemon is borrowed and
 * must outlive srv_front_stop. *out is new: srv_front_stop. ADJ_ERR_NOMEM or
 * ADJ_ERR_IO with a message.
 */
int srv_front_start(const srv_config *cfg, int listen_fd, struct MHD_Daemon *daemon,
                    srv_front **out, char *err, size_t errsz);

/** Closes the listen socket (thread-safe, once is enough): connections already here go on. */
void srv_front_quiesce(srv_front *f);

/** Stops the thread, closes every connection still here and frees f (NULL is fine). */
void srv_front_stop(srv_front *f);

#endif
