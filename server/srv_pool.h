/*
 * srv_pool.h - the decode pool: a few threads that run a function on items
 * taken from a bounded queue, so that decoding, cropping and JPEG-encoding
 * an upload (up to a second of CPU) never run on an HTTP thread.
 *
 *     srv_pool *p;
 *     srv_pool_new(4, 64, run, ctx, &p);   // run(ctx, item, stopping)
 *     if (srv_pool_submit(p, item)) ...full: 503...
 *     srv_pool_stop(p);                    // queued items run with stopping = 1
 *     srv_pool_free(p);
 *
 * Thread-safe; run is called on a pool thread, once per submitted item.
 */
#ifndef SRV_POOL_H
#define SRV_POOL_H

typedef struct srv_pool srv_pool;

/** What a pool thread runs; stopping: the pool is stopping, only hand the item back. */
typedef void (*srv_pool_fn)(void *ctx, void *item, int stopping);

/** Starts n threads with a queue of cap items. ADJ_ERR_NOMEM; *out is new (srv_pool_free). */
int srv_pool_new(int n, int cap, srv_pool_fn fn, void *ctx, srv_pool **out);

/** Queues item; -1 when the queue is full or the pool stopping, else 0. */
int srv_pool_submit(srv_pool *p, void *item);

/** Refuses new items, runs what is queued with stopping = 1, joins the threads. */
void srv_pool_stop(srv_pool *p);

/** Frees a stopped pool (NULL is fine), once nothing can call srv_pool_submit. */
void srv_pool_free(srv_pool *p);

#endif
