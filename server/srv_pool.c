#include "srv_pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "status.h"

struct srv_pool {
    pthread_mutex_t lock; /* guards the queue and stop */
    pthread_cond_t cond;
    void **q; /* ring of cap */
    int cap, head, n, stop;
    int threads; /* started */
    pthread_t *tid;
    srv_pool_fn fn;
    void *ctx;
};

static void *pool_main(void *arg)
{
    srv_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->n && !p->stop)
            pthread_cond_wait(&p->cond, &p->lock);
        if (!p->n)
            break; /* stopping, and nothing left */
        void *item = p->q[p->head];
        p->head = (p->head + 1) % p->cap;
        p->n--;
        int stopping = p->stop;
        pthread_mutex_unlock(&p->lock);
        p->fn(p->ctx, item, stopping);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int srv_pool_new(int n, int cap, srv_pool_fn fn, void *ctx, srv_pool **out)
{
    srv_pool *p = calloc(1, sizeof *p);
    if (!p)
        return ADJ_ERR_NOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->cap = cap;
    p->fn = fn;
    p->ctx = ctx;
    int ok = (p->q = calloc((size_t)cap, sizeof *p->q)) &&
             (p->tid = calloc((size_t)n, sizeof *p->tid));
    while (ok && p->threads < n)
        if ((ok = pthread_create(&p->tid[p->threads], NULL, pool_main, p) == 0))
            p->threads++;
    if (!ok) {
        srv_pool_stop(p);
        srv_pool_free(p);
        return ADJ_ERR_NOMEM;
    }
    *out = p;
    return ADJ_OK;
}

int srv_pool_submit(srv_pool *p, void *item)
{
    pthread_mutex_lock(&p->lock);
    int full = p->n == p->cap || p->stop;
    if (!full) {
        p->q[(p->head + p->n) % p->cap] = item;
        p->n++;
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return full ? -1 : 0;
}

void srv_pool_stop(srv_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->threads; i++)
        pthread_join(p->tid[i], NULL);
    p->threads = 0;
}

void srv_pool_free(srv_pool *p)
{
    if (!p)
        return;
    free(p->q);
    free(p->tid);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
