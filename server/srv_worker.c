#include "srv_worker.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net.h"
#include "status.h"
#include "ut_clock.h"

struct srv_worker {
    const model *m;
    int classes;
    size_t img_floats; /* C * H * W */
    int input_size;
    net_ctx *ctx;
    srv_worker_opts o;
    srv_metrics *metrics;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled on submit and close */
    srv_task *head[SRV_PRIO_COUNT], *tail[SRV_PRIO_COUNT];
    int count[SRV_PRIO_COUNT];
    int running; /* jobs of the batch being computed */
    int closed;
    int hurry;   /* no batch delay any more */
    int expected; /* interactive requests accepted by HTTP, not yet submitted */
    double idle;       /* seconds waited with nothing queued, before idle_since */
    double idle_since; /* ut_now() when the current wait began, 0: not waiting */
    double t_free;     /* ut_now() when the last batch ended (the worker thread's) */
    pthread_t thread;
    int started;

    /* worker-thread scratch */
    float *in_buf;   /* [max_batch][C][H][W] */
    float *prob_buf; /* [max_batch][classes] */
    srv_task **slot_job; /* [max_batch] owner of each image of a chunk */
    int *slot_idx;      /* [max_batch] its index within the job */
};

/* The metrics' kind of each task kind's batch. */
static const srv_batch_kind BATCH_KIND[] = {[SRV_TASK_FORWARD] = SRV_BATCH_FORWARD,
                                            [SRV_TASK_ATTACK] = SRV_BATCH_ATTACK,
                                            [SRV_TASK_GRADIENT] = SRV_BATCH_GRADIENT};

/* ---------------------------------------------------------------- queue */

static int same_params(const exp_params *a, const exp_params *b)
{
    if (a->n_eps != b->n_eps || a->quality != b->quality)
        return 0;
    for (int i = 0; i < a->n_eps; i++)
        if (a->eps[i] != b->eps[i])
            return 0;
    return 1;
}

/* Whether job may share a batch with head. */
static int compatible(const srv_task *head, const srv_task *job)
{
    if (head->kind != job->kind || head->group != job->group)
        return 0;
    if (job->kind == SRV_TASK_GRADIENT) /* a pass of its own */
        return job == head;
    return job->kind == SRV_TASK_FORWARD || (same_params(&head->params, &job->params) &&
                                             exp_attack_equal(&head->params, &job->params));
}

/* Images that would join head's batch if it ran now (head included). */
static int batchable_images(const srv_worker *w, const srv_task *head)
{
    int n = 0;
    for (const srv_task *j = w->head[head->prio]; j; j = j->next)
        if (compatible(head, j))
            n += j->n;
    return n;
}

static void unlink_job(srv_worker *w, srv_task *prev, srv_task *j)
{
    int p = j->prio;
    if (prev)
        prev->next = j->next;
    else
        w->head[p] = j->next;
    if (w->tail[p] == j)
        w->tail[p] = prev;
    w->count[p]--;
    j->next = NULL;
}

/*
 * Takes head and the compatible jobs after it (queue order) while they fit
 * in max_batch images; returns them as a list. Called with the lock held.
 */
static srv_task *take_batch(srv_worker *w, srv_task *head, int *n_jobs, int *n_images)
{
    srv_task *first = NULL, *last = NULL, *prev = NULL, *j = w->head[head->prio];
    int images = 0, jobs = 0;
    while (j) {
        srv_task *next = j->next;
        if (compatible(head, j) && (jobs == 0 || images + j->n <= w->o.max_batch)) {
            unlink_job(w, prev, j);
            if (last)
                last->next = j;
            else
                first = j;
            last = j;
            images += j->n;
            jobs++;
            if (images >= w->o.max_batch)
                break;
        } else {
            prev = j;
        }
        j = next;
    }
    *n_jobs = jobs;
    *n_images = images;
    return first;
}

/* Unlinks every queued job past its deadline; returns them as a list. Lock held. */
static srv_task *take_expired(srv_worker *w, double now)
{
    srv_task *dead = NULL;
    for (int p = 0; p < SRV_PRIO_COUNT; p++) {
        srv_task *prev = NULL, *j = w->head[p];
        while (j) {
            srv_task *next = j->next;
            if (j->deadline > 0 && now >= j->deadline) {
                unlink_job(w, prev, j);
                j->next = dead;
                dead = j;
            } else {
                prev = j;
            }
            j = next;
        }
    }
    return dead;
}

/* Calls done for each job of a list (without the lock). */
static void finish_list(srv_task *list)
{
    while (list) {
        srv_task *next = list->next; /* done() may free the job */
        list->next = NULL;
        list->done(list, list->done_arg);
        list = next;
    }
}

static void expire_now(srv_task *dead, double now)
{
    for (srv_task *j = dead; j; j = j->next) {
        j->status = SRV_TASK_TIMED_OUT;
        j->t_started = j->t_finished = now;
        snprintf(j->err, sizeof j->err, "the request waited %.1f s in the queue without a turn",
                 now - j->t_queued);
    }
}

void srv_worker_expire(srv_worker *w)
{
    if (!w)
        return;
    double now = ut_now();
    pthread_mutex_lock(&w->lock);
    srv_task *dead = take_expired(w, now);
    pthread_mutex_unlock(&w->lock);
    expire_now(dead, now);
    finish_list(dead);
}

/* ---------------------------------------------------------------- running */

static void run_forward(srv_worker *w, srv_task *batch)
{
    int k = 0;
    for (srv_task *j = batch; j; j = j->next) {
        for (int i = 0; i < j->n; i++) {
            memcpy(w->in_buf + (size_t)k * w->img_floats, j->input + (size_t)i * w->img_floats,
                   w->img_floats * sizeof(float));
            w->slot_job[k] = j;
            w->slot_idx[k] = i;
            k++;
            int last = !j->next && i == j->n - 1;
            if (k == w->o.max_batch || last) {
                int rc = net_forward(w->ctx, w->in_buf, k, w->prob_buf);
                for (int s = 0; s < k; s++) {
                    srv_task *o = w->slot_job[s];
                    if (rc) {
                        o->status = SRV_TASK_FAILED;
                        snprintf(o->err, sizeof o->err, "forward pass failed: %s",
                                 adj_strerror(rc));
                    } else {
                        memcpy(o->probs + (size_t)w->slot_idx[s] * w->classes,
                               w->prob_buf + (size_t)s * w->classes, w->classes * sizeof(float));
                    }
                }
                k = 0;
            }
        }
    }
}

static void run_attack(srv_worker *w, srv_task *batch, int n)
{
    img_rgb *xs = calloc((size_t)n, sizeof *xs);
    uint64_t *seeds = calloc((size_t)n, sizeof *seeds);
    exp_result *res = calloc((size_t)n, sizeof *res);
    int *keep = calloc((size_t)n, sizeof *keep);
    char err[256] = "out of memory";
    int rc = ADJ_ERR_NOMEM;
    if (xs && seeds && res && keep) {
        int i = 0;
        for (srv_task *j = batch; j; j = j->next, i++) {
            xs[i] = j->x;
            seeds[i] = j->seed;
            keep[i] = !j->scores_only;
        }
        rc = exp_run_batch_keep(w->ctx, xs, n, &batch->params, seeds, keep, res, err,
                                sizeof err);
    }
    int i = 0;
    for (srv_task *j = batch; j; j = j->next, i++) {
        if (rc) {
            j->status = SRV_TASK_FAILED;
            snprintf(j->err, sizeof j->err, "%s", err);
        } else {
            j->result = res[i]; /* moved: the submitter frees it */
        }
    }
    free(xs);
    free(seeds);
    free(res);
    free(keep);
}

static void run_gradient(srv_worker *w, srv_task *j)
{
    char err[256];
    int rc = atk_gradient(w->ctx, j->xs, j->n, j->labels, 1, j->grad, j->probs, err, sizeof err);
    if (rc) {
        j->status = SRV_TASK_FAILED;
        snprintf(j->err, sizeof j->err, "%s", err);
    }
}

static void *worker_main(void *arg)
{
    srv_worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        double now = ut_now();
        srv_task *dead = take_expired(w, now);
        if (dead) {
            pthread_mutex_unlock(&w->lock);
            expire_now(dead, now);
            finish_list(dead);
            pthread_mutex_lock(&w->lock);
            continue;
        }
        srv_task *head = NULL;
        for (int p = 0; p < SRV_PRIO_COUNT && !head; p++)
            head = w->head[p];
        if (!head) {
            if (w->closed)
                break;
            w->idle_since = now;
            pthread_cond_wait(&w->cond, &w->lock);
            w->idle += ut_now() - now;
            w->idle_since = 0;
            continue;
        }
        /* Dynamic batching: wait until batch_delay_ms after the oldest job
         * was queued, unless the batch is full; jobs that queued up while
         * the worker was busy have waited long enough already. A lone
         * request with nothing on its way runs at once when the delay is a
         * short one (under SRV_GATHER_MS, as the default): it could only
         * gather requests whose body has not even begun, and every single
         * client would pay for it. A longer delay is waited as asked. */
        const int lone = w->expected == 0 && w->o.batch_delay_ms < SRV_GATHER_MS &&
                         w->count[head->prio] == 1;
        if (!lone && !w->closed && !w->hurry && w->o.batch_delay_ms > 0 && !head->group) {
            double ready = head->t_queued + w->o.batch_delay_ms * 1e-3;
            /* More requests are on their way (body arriving, image being
             * decoded): hold a partial batch for them, up to a bound. */
            if (w->expected > 0 && head->prio == SRV_PRIO_INTERACTIVE) {
                double gather = head->t_queued + SRV_GATHER_MS * 1e-3;
                /* requests that queued during the last batch have waited, but
                 * the ones still being decoded would make a batch of their own:
                 * a short wait from the end of the last batch lets them join */
                double refill = w->t_free + SRV_REFILL_MS * 1e-3;
                if (gather < refill)
                    gather = refill;
                if (gather > ready)
                    ready = gather;
            }
            if (head->deadline > 0 && head->deadline < ready)
                ready = head->deadline;
            if (now < ready && batchable_images(w, head) < w->o.max_batch) {
                struct timespec ts;
                ts.tv_sec = (time_t)floor(ready);
                ts.tv_nsec = (long)((ready - floor(ready)) * 1e9);
                if (ts.tv_nsec >= 1000000000L)
                    ts.tv_nsec = 999999999L;
                pthread_cond_timedwait(&w->cond, &w->lock, &ts);
                continue;
            }
        }
        int n_jobs, n_images;
        srv_task *batch = take_batch(w, head, &n_jobs, &n_images);
        w->running = n_jobs;
        pthread_mutex_unlock(&w->lock);

        double t0 = ut_now();
        for (srv_task *j = batch; j; j = j->next) {
            j->t_started = t0;
            j->status = SRV_TASK_OK;
            j->err[0] = '\0';
            j->batch_images = n_images;
            if (w->metrics && j->prio == SRV_PRIO_INTERACTIVE)
                srv_metrics_queue_time(w->metrics, t0 - j->t_queued);
        }
        if (batch->kind == SRV_TASK_FORWARD)
            run_forward(w, batch);
        else if (batch->kind == SRV_TASK_GRADIENT)
            run_gradient(w, batch);
        else
            run_attack(w, batch, n_jobs);
        double t1 = ut_now();
        if (w->metrics)
            srv_metrics_batch(w->metrics, BATCH_KIND[batch->kind], n_images, t1 - t0);
        for (srv_task *j = batch; j; j = j->next)
            j->t_finished = t1;
        w->t_free = t1; /* the worker's own (read by this thread only) */

        /* running drops only after the answers are handed over, so that
         * srv_worker_pending never reads 0 while a job is unanswered. */
        finish_list(batch);
        pthread_mutex_lock(&w->lock);
        w->running = 0;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---------------------------------------------------------------- API */

/* Checks a job before it is queued and resets its output fields. */
static int check_job(const srv_worker *w, srv_task *job, char *err, size_t errsz)
{
    if (!job || !job->done || (unsigned)job->prio >= SRV_PRIO_COUNT)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "malformed job");
    if (job->kind == SRV_TASK_FORWARD) {
        if (job->n < 1 || !job->input || !job->probs)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "malformed forward job");
    } else if (job->kind == SRV_TASK_GRADIENT) {
        if (job->n < 1 || job->n > w->o.max_batch || !job->xs || !job->labels || !job->grad ||
            !job->probs)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "malformed gradient job");
        for (int i = 0; i < job->n; i++)
            if (!job->xs[i].px || job->xs[i].w != w->input_size || job->xs[i].h != w->input_size)
                return adj_fail(err, errsz, ADJ_ERR_ARG, "gradient job: image %d is not %dx%d",
                                i, w->input_size, w->input_size);
    } else if (job->kind == SRV_TASK_ATTACK) {
        job->n = 1;
        if (!job->x.px || job->x.w != w->input_size || job->x.h != w->input_size)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "attack job: image is not %dx%d",
                            w->input_size, w->input_size);
    } else {
        return adj_fail(err, errsz, ADJ_ERR_ARG, "unknown job kind");
    }
    job->next = NULL;
    job->status = SRV_TASK_OK;
    job->err[0] = '\0';
    memset(&job->result, 0, sizeof job->result);
    return ADJ_OK;
}

int srv_worker_submit_many(srv_worker *w, srv_task *const *jobs, int n, char *err, size_t errsz)
{
    int added[SRV_PRIO_COUNT] = {0};
    for (int i = 0; i < n; i++) {
        int rc = check_job(w, jobs[i], err, errsz);
        if (rc)
            return rc;
        added[jobs[i]->prio]++;
    }
    if (n < 1)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "no jobs");

    pthread_mutex_lock(&w->lock);
    int rc = ADJ_OK;
    if (w->closed)
        rc = adj_fail(err, errsz, ADJ_ERR_STATE, "the server is shutting down");
    for (int p = 0; p < SRV_PRIO_COUNT && !rc; p++) {
        int cap = p == SRV_PRIO_INTERACTIVE ? w->o.queue_size : w->o.background_size;
        if (added[p] && w->count[p] + added[p] > cap)
            rc = adj_fail(err, errsz, ADJ_ERR_BUSY, "the server is busy (%d requests queued)",
                          w->count[p]);
    }
    if (!rc) {
        double now = ut_now();
        for (int i = 0; i < n; i++) {
            srv_task *job = jobs[i];
            job->t_queued = now;
            if (w->tail[job->prio])
                w->tail[job->prio]->next = job;
            else
                w->head[job->prio] = job;
            w->tail[job->prio] = job;
            w->count[job->prio]++;
        }
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int srv_worker_submit(srv_worker *w, srv_task *job, char *err, size_t errsz)
{
    return srv_worker_submit_many(w, &job, 1, err, errsz);
}

void srv_worker_expect(srv_worker *w, int delta)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->expected += delta;
    if (w->expected < 0)
        w->expected = 0;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int srv_worker_pending(srv_worker *w)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&w->lock);
    int n = w->running;
    for (int p = 0; p < SRV_PRIO_COUNT; p++)
        n += w->count[p];
    pthread_mutex_unlock(&w->lock);
    return n;
}

double srv_worker_idle(srv_worker *w)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&w->lock);
    double s = w->idle + (w->idle_since > 0 ? ut_now() - w->idle_since : 0);
    pthread_mutex_unlock(&w->lock);
    return s;
}

int srv_worker_queued(srv_worker *w)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&w->lock);
    int n = 0;
    for (int p = 0; p < SRV_PRIO_COUNT; p++)
        n += w->count[p];
    pthread_mutex_unlock(&w->lock);
    return n;
}

void srv_worker_hurry(srv_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->hurry = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void srv_worker_close(srv_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->closed = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void srv_worker_stop(srv_worker *w)
{
    if (!w)
        return;
    srv_worker_close(w);
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = 0;
}

void srv_worker_free(srv_worker *w)
{
    if (!w)
        return;
    srv_worker_stop(w);
    net_ctx_free(w->ctx);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w->in_buf);
    free(w->prob_buf);
    free(w->slot_job);
    free(w->slot_idx);
    free(w);
}

int srv_worker_new(const model *m, const srv_worker_opts *opts, srv_metrics *metrics,
                   srv_worker **out, char *err, size_t errsz)
{
    const model_spec *spec = model_get_spec(m);
    if (spec->channels != 3)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "model %s has %d input channels; advjpgd serves RGB (3-channel) models",
                        spec->name, spec->channels);
    if (opts->max_batch < 1 || opts->queue_size < 1 || opts->batch_delay_ms < 0)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "bad worker options");

    srv_worker *w = calloc(1, sizeof *w);
    if (!w)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    w->m = m;
    w->o = *opts;
    if (w->o.background_size < 1)
        w->o.background_size = 1024;
    w->metrics = metrics;
    w->classes = spec->classes;
    w->input_size = spec->input_size;
    w->img_floats = (size_t)spec->channels * spec->input_size * spec->input_size;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);

    int rc;
    size_t mb = (size_t)w->o.max_batch;
    w->in_buf = calloc(mb * w->img_floats, sizeof(float));
    w->prob_buf = calloc(mb * (size_t)w->classes, sizeof(float));
    w->slot_job = calloc(mb, sizeof *w->slot_job);
    w->slot_idx = calloc(mb, sizeof *w->slot_idx);
    if (!w->in_buf || !w->prob_buf || !w->slot_job || !w->slot_idx) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for a batch of %d images",
                      w->o.max_batch);
        goto fail;
    }
    if ((rc = net_ctx_new(m, w->o.max_batch, &w->ctx, err, errsz)))
        goto fail;
    /* Warm-up: one pass over all weights so the first request does not pay
     * for paging them in. */
    if ((rc = net_forward(w->ctx, w->in_buf, 1, w->prob_buf))) {
        adj_fail(err, errsz, rc, "warm-up forward pass failed: %s", adj_strerror(rc));
        goto fail;
    }
    if ((rc = pthread_create(&w->thread, NULL, worker_main, w))) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot start the worker thread: %s",
                      strerror(rc));
        goto fail;
    }
    w->started = 1;
    *out = w;
    return ADJ_OK;
fail:
    srv_worker_free(w);
    return rc;
}
