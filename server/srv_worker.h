/*
 * srv_worker.h - the inference worker: one thread that owns the net_ctx, a
 * bounded two-priority queue of jobs, and dynamic batching.
 *
 * Submitters (HTTP threads, later the evaluation jobs) prepare everything
 * that does not need the model (decoding, the centre crop, planar floats),
 * fill a srv_task and srv_worker_submit() it. The worker takes the oldest job
 * of the highest priority, waits until `batch_delay_ms` after that job was
 * queued for compatible jobs to join it (unless the batch is already full),
 * runs the batch and calls each job's `done` callback from its own thread.
 *
 *   - SRV_TASK_FORWARD jobs (n images each: /classify 1, /recompress 2) share
 *     one net_forward over up to max_batch images.
 *   - SRV_TASK_ATTACK jobs (1 image each) with equal exp_params share one
 *     exp_run_batch, each with its own seed.
 *   - A SRV_TASK_GRADIENT job (n <= max_batch images) is one atk_gradient
 *     pass of its own: the clean pass's arg-max labels and probabilities and
 *     the input gradients (an evaluation job's FGSM pipeline, which builds
 *     the variants off the worker thread and classifies them as FORWARD jobs).
 *   - SRV_PRIO_INTERACTIVE jobs always go before SRV_PRIO_BACKGROUND ones; a
 *     background job (an evaluation job's images) only runs when no
 *     interactive job is waiting, and batches only with its own priority.
 *     Each priority has its own bound (queue_size for interactive). A job
 *     with a nonzero `group` batches only with its group, so the submitter
 *     decides the size of a background batch: an interactive request waits
 *     for at most the one background batch being computed.
 *   - Queue-time metrics count interactive jobs only.
 *   - A job still queued at its deadline is completed with
 *     SRV_TASK_TIMED_OUT by srv_worker_expire() or by the worker itself.
 *
 *     srv_worker *w;
 *     srv_worker_new(model, &opts, metrics, &w, err, sizeof err);
 *     job->done = on_done; job->done_arg = req;
 *     if (srv_worker_submit(w, job, err, sizeof err)) ... 503 ...
 *     ...
 *     srv_worker_free(w);   // runs everything still queued, then joins
 *
 * Lifetime: after a successful submit the worker owns the job until it calls
 * job->done (exactly once); the submitter must keep the job and its borrowed
 * buffers alive until then and must not touch it meanwhile.
 */
#ifndef SRV_WORKER_H
#define SRV_WORKER_H

#include <stdint.h>

#include "experiment.h"
#include "image.h"
#include "model.h"
#include "srv_metrics.h"

typedef enum { SRV_TASK_FORWARD, SRV_TASK_ATTACK, SRV_TASK_GRADIENT } srv_task_kind;
typedef enum { SRV_PRIO_INTERACTIVE = 0, SRV_PRIO_BACKGROUND = 1, SRV_PRIO_COUNT } srv_prio;

/** How a job ended. */
typedef enum {
    SRV_TASK_OK = 0,
    SRV_TASK_FAILED,    /**< the engine returned an error (message in err) */
    SRV_TASK_TIMED_OUT, /**< still queued at its deadline */
} srv_task_status;

typedef struct srv_task srv_task;

/** Called once per job, from the worker thread (or srv_worker_expire's caller). */
typedef void (*srv_task_done_fn)(srv_task *job, void *arg);

struct srv_task {
    /* ---- set by the submitter ---- */
    srv_task_kind kind;
    srv_prio prio;
    int n;                 /**< FORWARD, GRADIENT: images (>= 1); ATTACK: always 1 */
    const float *input;    /**< FORWARD: [n][C][H][W] pixels 0..255 (borrowed) */
    float *probs;          /**< FORWARD, GRADIENT: [n][classes] written by the worker (borrowed) */
    const img_rgb *xs;     /**< GRADIENT: [n] prepared images (borrowed) */
    int *labels;           /**< GRADIENT: [n] their arg-max classes, written (borrowed) */
    float *grad;           /**< GRADIENT: [n][H][W][3] input gradients, written (borrowed) */
    img_rgb x;             /**< ATTACK: the prepared image (borrowed pixels) */
    exp_params params;     /**< ATTACK: checked by the submitter */
    uint64_t seed;         /**< ATTACK: JPGnoise seed */
    int scores_only;       /**< ATTACK: result.images NULL (an evaluation job keeps
                                only the scores; freed as soon as classified) */
    double deadline;       /**< monotonic seconds (ut_now()); 0: none */
    uint64_t group;        /**< nonzero: batches only with jobs of the same group,
                                and never waits for a batch to fill (an
                                evaluation job's chunk, queued at once with
                                srv_worker_submit_many); 0: any compatible job */
    srv_task_done_fn done;
    void *done_arg;
    /* ---- set by the worker before done() ---- */
    srv_task_status status;
    char err[256];
    exp_result result;     /**< ATTACK: new, the submitter frees it (exp_result_free) */
    double t_queued, t_started, t_finished; /**< monotonic seconds */
    int batch_images;      /**< images in the batch this job ran in */
    /* ---- private ---- */
    srv_task *next;
};

typedef struct {
    int max_batch;       /**< images per forward pass at most (>= 1) */
    int batch_delay_ms;  /**< wait for a batch to fill, measured from the oldest job */
    int queue_size;      /**< interactive jobs queued at most */
    int background_size; /**< background jobs queued at most */
} srv_worker_opts;

typedef struct srv_worker srv_worker;

/**
 * Creates the worker: a net_ctx for opts->max_batch images (created here, in
 * the calling thread, then used only by the worker thread), one warm-up
 * forward pass (which pages in memory-mapped weights), and the thread.
 * model and metrics are borrowed and must outlive the worker; metrics may be
 * NULL. *out is new: free with srv_worker_free.
 */
int srv_worker_new(const model *m, const srv_worker_opts *opts, srv_metrics *metrics,
                   srv_worker **out, char *err, size_t errsz);

/**
 * Queues a job. Returns ADJ_OK (the worker now owns it until done),
 * ADJ_ERR_BUSY when that priority's queue is full, ADJ_ERR_STATE after
 * srv_worker_close, ADJ_ERR_ARG for a malformed job; err says which.
 * On error done is not called.
 */
int srv_worker_submit(srv_worker *w, srv_task *job, char *err, size_t errsz);

/**
 * Queues n jobs at once, all or none (same errors as srv_worker_submit; the
 * bound is checked for all n). The worker cannot start on some of them
 * before the others are queued, so n jobs of one group form one batch
 * (if they fit in max_batch images).
 */
int srv_worker_submit_many(srv_worker *w, srv_task *const *jobs, int n, char *err, size_t errsz);

/** Completes every queued job whose deadline has passed (SRV_TASK_TIMED_OUT). */
void srv_worker_expire(srv_worker *w);

/** How long a partial interactive batch waits for expected requests, at most (ms). */
#define SRV_GATHER_MS 50
/** ... or after the worker's last batch ended, this long (ms), so that requests
 *  still being decoded when it ended join the next batch. */
#define SRV_REFILL_MS 10

/**
 * Counts interactive requests that the HTTP layer has accepted but not yet
 * submitted (their body is arriving, their image is being decoded): +1 when
 * one starts, -1 when it is submitted or given up. While some are expected,
 * the worker holds a partial interactive batch for them, up to SRV_GATHER_MS
 * after its oldest job was queued or SRV_REFILL_MS after the last batch
 * ended, whichever is later (never with batch_delay_ms 0). With one
 * client nothing is expected, so its request runs at once when batch_delay_ms
 * is under SRV_GATHER_MS (the default 2 ms; a longer delay is waited); with
 * many, the batches fill up instead of alternating between full and tiny ones.
 */
void srv_worker_expect(srv_worker *w, int delta);

/** Jobs queued plus jobs running. */
int srv_worker_pending(srv_worker *w);

/** Seconds the worker thread has waited with nothing queued since it started
 *  (the current wait included): within an evaluation job, its bubbles. */
double srv_worker_idle(srv_worker *w);

/** Jobs queued (not yet running). */
int srv_worker_queued(srv_worker *w);

/**
 * Shutdown has begun: run queued jobs without waiting for their batches to
 * fill. Submissions are still accepted (requests already being received).
 */
void srv_worker_hurry(srv_worker *w);

/** Refuses further submissions; queued jobs still run (without batch delay). */
void srv_worker_close(srv_worker *w);

/**
 * Closes the queue (later submits fail with 503), runs what is queued and
 * joins the worker thread; every job's done callback has run when it returns.
 * The worker stays valid (HTTP threads may still call it) until srv_worker_free.
 */
void srv_worker_stop(srv_worker *w);

/**
 * Closes, runs every job still queued, joins the thread and frees the worker
 * and its net_ctx (NULL is fine).
 */
void srv_worker_free(srv_worker *w);

#endif
