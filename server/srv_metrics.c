#include "srv_metrics.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ut_buf.h"

/* Status codes counted one by one; any other lands in the last slot. */
static const unsigned CODES[] = {0, 200, 202, 400, 401, 404, 405, 406, 409, 413, 415, 500, 503, 504};
#define N_CODES (sizeof CODES / sizeof CODES[0])
#define CODE_OTHER N_CODES

static const double TIME_BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define N_TIME (sizeof TIME_BUCKETS / sizeof TIME_BUCKETS[0])
static const double SIZE_BUCKETS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define N_SIZE (sizeof SIZE_BUCKETS / sizeof SIZE_BUCKETS[0])
#define MAX_BUCKETS 16

typedef struct {
    const double *bounds;
    size_t n;
    uint64_t counts[MAX_BUCKETS + 1]; /* per bucket (not cumulative); last = +Inf */
    uint64_t count;
    double sum;
} histogram;

struct srv_metrics {
    pthread_mutex_t lock;
    int in_flight;
    uint64_t requests[SRV_EP_COUNT];
    uint64_t failures[SRV_EP_COUNT];
    uint64_t codes[SRV_EP_COUNT][N_CODES + 1];
    histogram duration[SRV_EP_COUNT], queue;
    histogram compute[SRV_BATCH_KINDS], batch[SRV_BATCH_KINDS];
    double stage_sum[SRV_STAGE_COUNT];
    uint64_t stage_count[SRV_STAGE_COUNT];
};

/* The metrics names of the endpoints (the route table's rows name their srv_endpoint). */
static const char *const EP_NAMES[] = {
    [SRV_EP_CLASSIFY] = "/classify", [SRV_EP_ATTACK] = "/attack",
    [SRV_EP_RECOMPRESS] = "/recompress", [SRV_EP_HEALTH] = "/health",
    [SRV_EP_LIVEZ] = "/livez",
    [SRV_EP_MODELS] = "/models", [SRV_EP_METRICS] = "/metrics", [SRV_EP_WEB] = "/",
    [SRV_EP_EVALUATE] = "/evaluate", [SRV_EP_JOBS] = "/jobs", [SRV_EP_OTHER] = "other",
};
_Static_assert(sizeof EP_NAMES / sizeof EP_NAMES[0] == SRV_EP_COUNT, "a name per endpoint");
static const char *const BATCH_NAMES[] = {[SRV_BATCH_FORWARD] = "forward",
                                          [SRV_BATCH_ATTACK] = "attack",
                                          [SRV_BATCH_GRADIENT] = "gradient"};
_Static_assert(sizeof BATCH_NAMES / sizeof BATCH_NAMES[0] == SRV_BATCH_KINDS,
               "a name per batch kind");
static const char *const STAGE_NAMES[] = {
    [SRV_STAGE_RECEIVE] = "receive", [SRV_STAGE_DECODE_WAIT] = "decode_wait",
    [SRV_STAGE_DECODE] = "decode",   [SRV_STAGE_SUBMIT] = "submit",
    [SRV_STAGE_QUEUE] = "queue",     [SRV_STAGE_COMPUTE] = "compute",
    [SRV_STAGE_RESUME] = "resume",   [SRV_STAGE_ANSWER] = "answer",
};
_Static_assert(sizeof STAGE_NAMES / sizeof STAGE_NAMES[0] == SRV_STAGE_COUNT, "a name per stage");
static const char *const JOB_STAGE_NAMES[] = {
    [SRV_JOB_STAGE_LOAD] = "load", [SRV_JOB_STAGE_VARIANTS] = "variants",
    [SRV_JOB_STAGE_PLANAR] = "planar", [SRV_JOB_STAGE_ROWS] = "rows",
};
_Static_assert(sizeof JOB_STAGE_NAMES / sizeof JOB_STAGE_NAMES[0] == SRV_JOB_STAGE_COUNT,
               "a name per job stage");

/* The job gauges and counter (when the job store is up). */
static void render_jobs(ut_buf *b, const srv_metrics_gauges *g)
{
    if (!g || g->n_job_states <= 0)
        return;
    ut_buf_printf(b, "# HELP advjpgd_jobs Evaluation jobs in the store, by status.\n"
                  "# TYPE advjpgd_jobs gauge\n");
    for (int s = 0; s < g->n_job_states && s < 8; s++)
        ut_buf_printf(b, "advjpgd_jobs{status=\"%s\"} %zu\n", g->job_state_names[s], g->jobs[s]);
    ut_buf_printf(b, "# HELP advjpgd_job_images_total Images evaluated by jobs since the start.\n"
                  "# TYPE advjpgd_job_images_total counter\n"
                  "advjpgd_job_images_total %llu\n",
                  (unsigned long long)g->job_images);
    ut_buf_printf(b, "# HELP advjpgd_job_cpu_seconds_total The job runner thread's CPU time, by "
                  "stage.\n"
                  "# TYPE advjpgd_job_cpu_seconds_total counter\n");
    for (int s = 0; s < SRV_JOB_STAGE_COUNT; s++)
        ut_buf_printf(b, "advjpgd_job_cpu_seconds_total{stage=\"%s\"} %.9g\n", JOB_STAGE_NAMES[s],
                      g->job_cpu_seconds[s]);
}

const char *srv_endpoint_name(srv_endpoint ep)
{
    return (unsigned)ep < SRV_EP_COUNT ? EP_NAMES[ep] : "other";
}

static void hist_init(histogram *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n = n;
}

static void hist_observe(histogram *h, double v)
{
    size_t i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

srv_metrics *srv_metrics_new(void)
{
    srv_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    for (int e = 0; e < SRV_EP_COUNT; e++)
        hist_init(&m->duration[e], TIME_BUCKETS, N_TIME);
    hist_init(&m->queue, TIME_BUCKETS, N_TIME);
    for (int k = 0; k < SRV_BATCH_KINDS; k++) {
        hist_init(&m->compute[k], TIME_BUCKETS, N_TIME);
        hist_init(&m->batch[k], SIZE_BUCKETS, N_SIZE);
    }
    return m;
}

void srv_metrics_free(srv_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void srv_metrics_request_begin(srv_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->in_flight++;
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_request_end(srv_metrics *m, srv_endpoint ep, unsigned status, double seconds)
{
    if ((unsigned)ep >= SRV_EP_COUNT)
        ep = SRV_EP_OTHER;
    size_t ci = CODE_OTHER;
    for (size_t i = 0; i < N_CODES; i++)
        if (CODES[i] == status)
            ci = i;
    pthread_mutex_lock(&m->lock);
    m->in_flight--;
    m->requests[ep]++;
    if (status == 0 || status >= 400)
        m->failures[ep]++;
    m->codes[ep][ci]++;
    hist_observe(&m->duration[ep], seconds);
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_queue_time(srv_metrics *m, double seconds)
{
    pthread_mutex_lock(&m->lock);
    hist_observe(&m->queue, seconds);
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_batch(srv_metrics *m, srv_batch_kind kind, int images, double seconds)
{
    if ((unsigned)kind >= SRV_BATCH_KINDS)
        return;
    pthread_mutex_lock(&m->lock);
    hist_observe(&m->compute[kind], seconds);
    hist_observe(&m->batch[kind], images);
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_stages(srv_metrics *m, const double seconds[SRV_STAGE_COUNT])
{
    pthread_mutex_lock(&m->lock);
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        if (seconds[s] >= 0) {
            m->stage_sum[s] += seconds[s];
            m->stage_count[s]++;
        }
    pthread_mutex_unlock(&m->lock);
}

/* ---------------------------------------------------------------- render */

static void render_hist(ut_buf *b, const char *name, const char *labels, const histogram *h)
{
    uint64_t cum = 0;
    const char *sep = labels && *labels ? "," : "";
    if (!labels)
        labels = "";
    for (size_t i = 0; i < h->n; i++) {
        cum += h->counts[i];
        ut_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i],
                  (unsigned long long)cum);
    }
    cum += h->counts[h->n];
    ut_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    if (*labels) {
        ut_buf_printf(b, "%s_sum{%s} %.9g\n", name, labels, h->sum);
        ut_buf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
    } else {
        ut_buf_printf(b, "%s_sum %.9g\n", name, h->sum);
        ut_buf_printf(b, "%s_count %llu\n", name, (unsigned long long)h->count);
    }
}

char *srv_metrics_render(srv_metrics *m, const srv_metrics_gauges *g)
{
    ut_buf b = {0};
    if (ut_buf_reserve(&b, 8192))
        return NULL;

    pthread_mutex_lock(&m->lock);
    ut_buf_printf(&b, "# HELP advjpgd_requests_total HTTP requests answered, by endpoint.\n"
                  "# TYPE advjpgd_requests_total counter\n");
    for (int e = 0; e < SRV_EP_COUNT; e++)
        ut_buf_printf(&b, "advjpgd_requests_total{endpoint=\"%s\"} %llu\n", EP_NAMES[e],
                  (unsigned long long)m->requests[e]);
    ut_buf_printf(&b, "# HELP advjpgd_request_failures_total Requests answered with a status >= 400 "
                  "or not answered.\n"
                  "# TYPE advjpgd_request_failures_total counter\n");
    for (int e = 0; e < SRV_EP_COUNT; e++)
        ut_buf_printf(&b, "advjpgd_request_failures_total{endpoint=\"%s\"} %llu\n", EP_NAMES[e],
                  (unsigned long long)m->failures[e]);
    ut_buf_printf(&b, "# HELP advjpgd_responses_total Responses by endpoint and status code.\n"
                  "# TYPE advjpgd_responses_total counter\n");
    for (int e = 0; e < SRV_EP_COUNT; e++)
        for (size_t c = 0; c <= N_CODES; c++) {
            if (!m->codes[e][c])
                continue;
            if (c == CODE_OTHER)
                ut_buf_printf(&b, "advjpgd_responses_total{endpoint=\"%s\",code=\"other\"} %llu\n",
                          EP_NAMES[e], (unsigned long long)m->codes[e][c]);
            else
                ut_buf_printf(&b, "advjpgd_responses_total{endpoint=\"%s\",code=\"%u\"} %llu\n",
                          EP_NAMES[e], CODES[c], (unsigned long long)m->codes[e][c]);
        }
    ut_buf_printf(&b, "# HELP advjpgd_request_duration_seconds From the request's headers to its "
                  "response being queued.\n"
                  "# TYPE advjpgd_request_duration_seconds histogram\n");
    for (int e = 0; e < SRV_EP_COUNT; e++) {
        char lab[48];
        snprintf(lab, sizeof lab, "endpoint=\"%s\"", EP_NAMES[e]);
        render_hist(&b, "advjpgd_request_duration_seconds", lab, &m->duration[e]);
    }
    ut_buf_printf(&b, "# HELP advjpgd_queue_seconds Time a job waited for the inference worker.\n"
                  "# TYPE advjpgd_queue_seconds histogram\n");
    render_hist(&b, "advjpgd_queue_seconds", NULL, &m->queue);
    ut_buf_printf(&b, "# HELP advjpgd_compute_seconds Time of one worker batch.\n"
                  "# TYPE advjpgd_compute_seconds histogram\n");
    for (int k = 0; k < SRV_BATCH_KINDS; k++) {
        char lab[32];
        snprintf(lab, sizeof lab, "kind=\"%s\"", BATCH_NAMES[k]);
        render_hist(&b, "advjpgd_compute_seconds", lab, &m->compute[k]);
    }
    ut_buf_printf(&b, "# HELP advjpgd_batch_size Images per worker batch.\n"
                  "# TYPE advjpgd_batch_size histogram\n");
    for (int k = 0; k < SRV_BATCH_KINDS; k++) {
        char lab[32];
        snprintf(lab, sizeof lab, "kind=\"%s\"", BATCH_NAMES[k]);
        render_hist(&b, "advjpgd_batch_size", lab, &m->batch[k]);
    }
    ut_buf_printf(&b, "# HELP advjpgd_stage_seconds Where answered image requests spent their "
                  "time, by stage.\n"
                  "# TYPE advjpgd_stage_seconds summary\n");
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        ut_buf_printf(&b, "advjpgd_stage_seconds_sum{stage=\"%s\"} %.9g\n"
                      "advjpgd_stage_seconds_count{stage=\"%s\"} %llu\n",
                      STAGE_NAMES[s], m->stage_sum[s], STAGE_NAMES[s],
                      (unsigned long long)m->stage_count[s]);
    ut_buf_printf(&b, "# HELP advjpgd_in_flight_requests Requests being handled now.\n"
                  "# TYPE advjpgd_in_flight_requests gauge\n"
                  "advjpgd_in_flight_requests %d\n",
              m->in_flight);
    pthread_mutex_unlock(&m->lock);

    ut_buf_printf(&b, "# HELP advjpgd_queue_depth Jobs waiting for the inference worker.\n"
                  "# TYPE advjpgd_queue_depth gauge\n"
                  "advjpgd_queue_depth %d\n"
                  "# HELP advjpgd_model_ready 1 once the model is loaded.\n"
                  "# TYPE advjpgd_model_ready gauge\n"
                  "advjpgd_model_ready %d\n"
                  "# HELP advjpgd_model_load_seconds Time the model took to load.\n"
                  "# TYPE advjpgd_model_load_seconds gauge\n"
                  "advjpgd_model_load_seconds %.6f\n"
                  "# HELP advjpgd_worker_idle_seconds_total The inference worker waiting with "
                  "nothing queued.\n"
                  "# TYPE advjpgd_worker_idle_seconds_total counter\n"
                  "advjpgd_worker_idle_seconds_total %.6f\n",
              g ? g->queue_depth : 0, g ? g->model_ready : 0, g ? g->model_load_seconds : 0.0,
              g ? g->worker_idle_seconds : 0.0);
    render_jobs(&b, g);
    ut_buf_printf(&b, "# HELP advjpgd_build_info The daemon's version and model (always 1).\n"
                  "# TYPE advjpgd_build_info gauge\n"
                  "advjpgd_build_info{version=\"%s\",model=\"%s\"} 1\n",
              ADVJPG_VERSION, g && g->model_name ? g->model_name : "");
    return ut_buf_take(&b, NULL); /* NULL when an append ran out of memory */
}
