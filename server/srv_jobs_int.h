/*
 * srv_jobs_int.h - the job store's private header, shared by its three
 * files: srv_jobs_store.c (the on-disk store: a job's folder, loading and
 * saving it), srv_jobs_run.c (the runner thread: a job's images in chunks
 * through the worker, rows appended to rows.csv) and srv_jobs.c (the public
 * API of srv_jobs.h and the folder's lock), and by srv_batch.c (batch mode
 * and the merge of shards: one job whose folder is the jobs folder itself,
 * through the same creation, loading, runner and result). Nothing else
 * includes it.
 */
#ifndef SRV_JOBS_INT_H
#define SRV_JOBS_INT_H

#include "srv_jobs.h"


#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "srv_eval.h"
#include "srv_json.h"
#include "srv_rows.h"
#include "srv_svg.h"
#include "srv_svg_quality.h"
#include "status.h"
#include "ut_buf.h"
#include "ut_clock.h"
#include "ut_file.h"
#include "ut_path.h"

#define IMAGE_FILE_MAX ((size_t)256 << 20) /* an image file larger than this is skipped */
#define MAX_INFLIGHT 2                      /* chunks queued on the worker at once */

typedef enum { JS_QUEUED, JS_RUNNING, JS_DONE, JS_FAILED, JS_CANCELED, JS_STATE_COUNT } job_state;
extern const char *const srv_js_state_names[JS_STATE_COUNT];

typedef struct job {
    char id[SRV_JOB_ID_LEN + 1];
    char *dir;          /* the job's folder */
    json_t *info;       /* request.json without "files" and "truth"; immutable */
    exp_params params;
    uint64_t seed;
    int classes;        /* of the model the job was created with */
    int has_truth;
    int upload;
    int dct;            /* "dct": true: dct.bin holds a record per image (srv_dct.h) */
    int dct_fd;         /* the runner's: dct.bin open for appending while it runs, else -1 */
    char *images_dir;   /* a dataset's real folder; NULL for an upload (dir/images) */
    size_t total;
    int64_t created_ms;
    /* unfinished jobs only; read by the runner (and while loading) */
    char **files;
    int *truth;
    /* guarded by srv_jobs.lock */
    job_state state;
    size_t done, skipped;
    uint64_t rows_len;  /* bytes of rows.csv that hold complete rows */
    char started[32], finished[32];
    char error[ADJ_ERRLEN];
    int cancel;         /* canceled while running: write no more rows */
    int deleted;        /* its folder removed: no longer found or listed (kept in memory,
                         * as every job is, until the store is freed) */
    double t0;          /* ut_now() when this run began */
    size_t done0;       /* done when this run began */
    double rate;        /* images/s of the last run, set when it ends; 0: unknown */
    int batch;          /* images per chunk now (grid_k, or 1 while calibrating) */
    json_t *result;     /* a done job's GET /result, made once (its bootstrap takes
                         * seconds on a large job) for rows_len bytes of rows; or NULL */
    /* the chunk grid (chunk.json): chunks are [0, grid_first), then grid_k
     * images each, so that a resumed job computes every image in the same
     * batch as an uninterrupted run would; grid_k 0: not decided yet */
    int grid_k, grid_first;
    /* held while rows are appended and while the job becomes final */
    pthread_mutex_t io;
    struct job *next;
} job;

struct srv_jobs {
    srv_jobs_opts o;
    char *jobs_dir;
    char *root;         /* the data root's real path, or NULL */
    const model *m;
    const model_spec *spec;
    srv_worker *w;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a job queued, a chunk's image done, stop */
    job *head;           /* oldest first */
    int stopping;
    pthread_t runner;
    int runner_started;
    uint64_t next_group;
    pthread_mutex_t claim;        /* serialises claim_folder */
    int lock_fd;                  /* jobs_dir/.lock, held (flock) while we use the folder;
                                   * written under claim and lock */
    char unavailable[ADJ_ERRLEN]; /* why jobs cannot be served, "" if they can (js->lock) */
    int was_unavailable;          /* claim: the folder was unusable once (to log its return) */
    uint64_t images_evaluated;    /* rows written by this process's runner (js->lock) */
    double cpu_seconds[SRV_JOB_STAGE_COUNT]; /* the runner's CPU time by stage (js->lock) */
};

/* ---- srv_jobs_store.c: the on-disk store (a job's folder, loading, saving) ---- */

/** One line on stderr, "advjpgd: job ID: ...", in one stdio call. */
__attribute__((format(printf, 2, 3))) void srv_js_log(const char *id, const char *fmt, ...);
/** The time now as 2026-01-31T12:00:00Z. */
void srv_js_iso_now(char buf[32]);
/** strerror for ut_open_regular's errors (a symbolic link, not a regular file in words). */
const char *srv_js_file_strerror(int e);
/** A new random job id; 0, or -1 without randomness. */
int srv_js_new_id(char id[SRV_JOB_ID_LEN + 1]);
/** A seed as JSON (an integer, or a string above INT64_MAX). New reference. */
json_t *srv_js_seed_json(uint64_t seed);

/** request.json's and the result's "attack": {"attack", "adaptive", ...}
 *  (srv_json_put_attack); new reference, NULL if out of memory. */
json_t *srv_js_attack_json(const exp_params *p);
/** A new zeroed job (NULL when out of memory); srv_js_job_free. */
job *srv_js_job_alloc(void);
void srv_js_job_free(job *j);
/** The job of id in js's list (js->lock held), NULL if none. */
job *srv_js_find(srv_jobs *js, const char *id);
/** Images per second of the job (js->lock held); 0 unknown. */
double srv_js_job_rate(const job *j);
/** GET /jobs/{id}'s JSON of j (js->lock held). New reference, NULL out of memory. */
json_t *srv_js_job_json(const job *j);
/** Writes j's status.json (atomically; j->io held, not js->lock); the failure is logged. */
int srv_js_save_status(srv_jobs *js, job *j, char *err, size_t errsz);
/** Writes j's chunk grid (chunk.json). */
int srv_js_save_grid(const job *j, char *err, size_t errsz);
/** Frees the file list, which only an unfinished job needs. */
void srv_js_drop_files(job *j);
/**
 * Loads the job in folder dir (id: its request.json's id) into a new *out,
 * checked against its rows and repaired (srv_jobs.h, "Loading and
 * resuming"); a damaged job is loaded as failed. Only ADJ_ERR_NOMEM fails.
 */
int srv_js_load_job(srv_jobs *js, const char *dir, const char *id, job **out);
/** Loads every job of the folder into js (oldest first); without js->lock. */
int srv_js_load_all(srv_jobs *js, size_t *n_loaded, char *err, size_t errsz);

/* ---- srv_jobs.c: the store, creating a job ---- */

/**
 * A store on o->jobs_dir for jobs of the model spec (borrowed), without its
 * folder claimed or its runner started (srv_jobs_new does both). *out is
 * new: srv_jobs_free. ADJ_ERR_IO (the data root), ADJ_ERR_NOMEM.
 */
int srv_js_alloc(const srv_jobs_opts *o, const model_spec *spec, srv_jobs **out, char *err,
                 size_t errsz);
/** The normalised request (request.json) of a new job. New reference, NULL out of memory. */
json_t *srv_js_request_json(const srv_jobs *js, const char *id, const srv_eval_request *rq,
                            const srv_eval_set *set, int64_t created_ms, const char *created);
/**
 * The job's folder filled in tmp (request.json, the header of rows.csv, an
 * upload's images), then renamed final_dir (tmp == final_dir: filled in
 * place); *out the job in memory, taking set's lists.
 */
int srv_js_create_job(srv_jobs *js, srv_eval_request *rq, srv_eval_set *set, const char *id,
                      const char *tmp, const char *final_dir, job **out, char *err, size_t errsz);
/** Appends j to the list and wakes the runner (which runs it if it is queued). */
void srv_js_enqueue(srv_jobs *js, job *j);

/* ---- srv_jobs_run.c: the runner ---- */

/** The runner thread: runs queued jobs one at a time until js->stopping. */
void *srv_js_runner_main(void *arg);

#endif
