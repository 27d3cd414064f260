/*
 * srv_metrics.h - counters, gauges and histograms for GET /metrics
 * (Prometheus text exposition format 0.0.4).
 *
 * All functions are thread-safe (one mutex; every update is a few adds).
 *
 *     srv_metrics *m = srv_metrics_new();
 *     srv_metrics_request_begin(m);
 *     ...
 *     srv_metrics_request_end(m, SRV_EP_CLASSIFY, 200, 0.012);
 *     char *text = srv_metrics_render(m, &gauges);   // free()
 *     srv_metrics_free(m);
 *
 * Exposed series (all prefixed advjpgd_):
 *   requests_total{endpoint}                 requests answered, by endpoint
 *   request_failures_total{endpoint}         of those, answered with status >= 400
 *   responses_total{endpoint,code}           by status code
 *   request_duration_seconds                 histogram, first byte to response queued
 *   queue_seconds                            histogram, time a job waited for the worker
 *   compute_seconds{kind}                    histogram, time of one worker batch
 *                                            (kind = "forward", "attack" or "gradient")
 *   batch_size{kind}                         histogram, images per worker batch
 *   stage_seconds{stage}                     summary (sum, count), where an answered
 *                                            image request spent its time (srv_stage)
 *   worker_idle_seconds_total                counter, the worker thread waiting with
 *                                            nothing queued (an evaluation job's bubbles)
 *   job_cpu_seconds_total{stage}             counter, the job runner thread's CPU time
 *                                            by stage (srv_job_stage)
 *   in_flight_requests                       gauge, requests being handled now
 *   queue_depth                              gauge, jobs waiting for the worker
 *   model_ready                              gauge, 1 once the model is loaded
 *   model_load_seconds                       gauge, how long loading took
 */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stddef.h>
#include <stdint.h>

/** The endpoints that metrics and routing know; SRV_EP_OTHER for 404s. */
typedef enum {
    SRV_EP_CLASSIFY,
    SRV_EP_ATTACK,
    SRV_EP_RECOMPRESS,
    SRV_EP_HEALTH,
    SRV_EP_LIVEZ,    /**< GET /livez: the process serves (liveness) */
    SRV_EP_MODELS,
    SRV_EP_METRICS,
    SRV_EP_WEB, /* the demo page's files: /, /index.html, /app.js, /style.css */
    SRV_EP_EVALUATE, /**< POST /evaluate */
    SRV_EP_JOBS,     /**< /jobs and everything under it */
    SRV_EP_OTHER,
    SRV_EP_COUNT
} srv_endpoint;

/** "/classify", ..., "other". Never NULL. */
const char *srv_endpoint_name(srv_endpoint ep);

/** Kinds of worker batch, for compute_seconds and batch_size. */
typedef enum { SRV_BATCH_FORWARD, SRV_BATCH_ATTACK, SRV_BATCH_GRADIENT, SRV_BATCH_KINDS } srv_batch_kind;

/** What an evaluation job's runner thread spends its CPU time on; the names are the labels. */
typedef enum {
    SRV_JOB_STAGE_LOAD,     /**< "load": reading, decoding and preparing the images */
    SRV_JOB_STAGE_VARIANTS, /**< "variants": FGSM, JPEG, JPGnoise (exp_fgsm_variants) */
    SRV_JOB_STAGE_PLANAR,   /**< "planar": the variants as planar floats for the worker */
    SRV_JOB_STAGE_ROWS,     /**< "rows": formatting and appending rows (and DCT records) */
    SRV_JOB_STAGE_COUNT
} srv_job_stage;

/**
 * The stages of an image request that went through the decode pool and the
 * worker (/classify, /attack, /recompress as JSON), in order; the names are
 * the metric's labels.
 */
typedef enum {
    SRV_STAGE_RECEIVE,     /**< "receive": the headers to the whole body */
    SRV_STAGE_DECODE_WAIT, /**< "decode_wait": waiting for a decode thread */
    SRV_STAGE_DECODE,      /**< "decode": decoding and preparing the image (for /classify
                                and /attack also the task, queued from the decode thread) */
    SRV_STAGE_SUBMIT,      /**< "submit": /recompress: planar floats, the task queued on an
                                HTTP thread (0 for the others) */
    SRV_STAGE_QUEUE,       /**< "queue": waiting for the worker (batch delay included) */
    SRV_STAGE_COMPUTE,     /**< "compute": the worker's batch */
    SRV_STAGE_RESUME,      /**< "resume": waiting for an HTTP thread after the worker (and,
                                for /recompress, after the decode thread) */
    SRV_STAGE_ANSWER,      /**< "answer": the answer built, queued and sent (JSON, PNG) */
    SRV_STAGE_COUNT
} srv_stage;

typedef struct srv_metrics srv_metrics;

/** Values sampled from other modules when /metrics is rendered. */
typedef struct {
    int queue_depth;
    double worker_idle_seconds;     /**< the worker's time with nothing queued (srv_worker_idle) */
    int model_ready;
    double model_load_seconds;
    const char *model_name;         /**< for advjpgd_build_info; NULL while loading */
    int n_job_states;               /**< 0: no job figures (the job store is not up) */
    const char *const *job_state_names; /**< [n_job_states], borrowed */
    size_t jobs[8];                 /**< jobs by status, n_job_states of them */
    uint64_t job_images;            /**< images evaluated by jobs since the start */
    double job_cpu_seconds[SRV_JOB_STAGE_COUNT]; /**< the runner's CPU time by stage */
} srv_metrics_gauges;

/** A new, zeroed metrics registry (NULL when out of memory); free with srv_metrics_free. */
srv_metrics *srv_metrics_new(void);

/** Frees the registry (NULL is fine). */
void srv_metrics_free(srv_metrics *m);

/** A request started (in-flight gauge + 1). */
void srv_metrics_request_begin(srv_metrics *m);

/**
 * A request ended (in-flight gauge - 1). status 0 means the connection went
 * away without an answer: counted as a failure with code "0".
 */
void srv_metrics_request_end(srv_metrics *m, srv_endpoint ep, unsigned status, double seconds);

/** A job left the queue after waiting `seconds`. */
void srv_metrics_queue_time(srv_metrics *m, double seconds);

/** The worker ran one batch of `images` images in `seconds`. */
void srv_metrics_batch(srv_metrics *m, srv_batch_kind kind, int images, double seconds);

/** One answered image request's time per stage (seconds; a negative one is skipped). */
void srv_metrics_stages(srv_metrics *m, const double seconds[SRV_STAGE_COUNT]);

/** The text exposition; new string (free()), NULL when out of memory. */
char *srv_metrics_render(srv_metrics *m, const srv_metrics_gauges *g);

#endif
