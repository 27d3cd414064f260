/*
 * srv_jobs.h - evaluation jobs: the paper's experiment over a set of images,
 * run in the background, kept on disk, resumed after a restart.
 *
 * Threads. HTTP threads create jobs (the data set is resolved and checked
 * there, so a bad request is answered 400 at once) and read their state.
 * One job-runner thread runs the queued jobs one after another, in the
 * order they were created: it reads, decodes and prepares a chunk of
 * images (img_decode, img_prepare), queues the chunk on the inference
 * worker at SRV_PRIO_BACKGROUND as one batch group (srv_worker.h), and
 * prepares the next chunk while the worker computes this one; at most two
 * chunks are queued. The worker runs interactive requests before any
 * background batch, so a request waits for at most the one chunk being
 * computed. Each image's JPGnoise seed is exp_image_seed(job seed, file
 * name).
 *
 * Chunks lie on a grid that is fixed for the job's whole life (chunk.json):
 * grid_k images each (--job-batch, or, with --job-batch 0, as many as take
 * about --job-batch-ms on the worker, measured on a first chunk of one
 * image; 1..max-batch). The engine's results depend on the batch size in
 * their last bits (matrix-vector products at batch 1, Winograd from batch
 * 8), so the grid is what makes a resumed job compute every image exactly
 * as an uninterrupted run does.
 *
 * On disk, one folder per job under the jobs folder, named by the job's id
 * (16 lowercase hex digits from getrandom):
 *
 *   request.json  the normalised request: parameters, model, where the
 *                 images are, and the resolved, sorted list of files with
 *                 their labels (written once, atomically, before the 202)
 *   rows.csv      srv_rows.h's format: the header, then one row per finished
 *                 image, appended and flushed (write + fsync) per chunk
 *   status.json   written atomically (temp file + rename) when the job ends:
 *                 done, failed or canceled; absent while it is unfinished
 *   chunk.json    the job's chunk grid (below), decided by its first run
 *   images/       an upload's files
 *   errors.log    "file<TAB>message" for each image that could not be read
 *
 * A job is created in ".new-<id>" and renamed into place, so a crash never
 * leaves a half-made job (leftover ".new-*" folders are removed at start).
 * The daemon holds an flock on <jobs folder>/.lock (with its pid in it):
 * a second daemon on the same folder serves no jobs (503) rather than run
 * the first one's jobs a second time. The jobs folder must be a folder of
 * this daemon's user that no one else can write (else 503 saying so); a
 * folder that is busy or unusable is tried again at each request, so jobs
 * come back once the other daemon is gone or the folder is fixed.
 *
 * Files of a job folder are never opened through a symbolic link
 * (O_NOFOLLOW) and must be regular files; status.json and chunk.json are
 * written through a temporary created with O_EXCL and renamed, which
 * replaces a link rather than writing its target.
 *
 * Loading and resuming. At start every job folder is loaded and its rows
 * are parsed against its file list (srv_rows_parse): the rows are the
 * record, and done, skipped, GET /rows, the table and the figures all come
 * from their valid prefix. An unfinished job (no status.json) has the
 * first row that is incomplete or invalid and everything after it cut off
 * (ftruncate + fsync) and is queued again: it resumes at its first
 * unfinished image, with no finished row lost and none repeated. A damaged
 * job never stops the daemon: it is failed with an error that says why
 * (saved in its status.json when the folder takes it) and the others
 * serve. Damaged means: request.json unreadable (the job is listed, without
 * parameters), status.json unreadable, "done" with fewer valid rows than
 * images, rows.csv without a valid header (then /result, /rows and the
 * figures answer an error), a link or non-file where a job file goes.
 *
 * A full disk. Rows are appended a chunk at a time; a write that fails
 * (ENOSPC) is cut back to the last complete row, and the job fails with the
 * reason. If its status.json cannot be written either, the error says so
 * and the job resumes at the next start.
 *
 *     srv_jobs *js;
 *     srv_jobs_new(&opts, model, worker, &js, err, sizeof err);   // resumes
 *     srv_jobs_create(js, &request, id, err, sizeof err); // HTTP thread
 *     json_t *st; srv_jobs_status(js, id, &st);
 *     ...
 *     srv_jobs_stop(js);      // before srv_worker_free: the runner ends
 *     srv_worker_free(w);
 *     srv_jobs_free(js);      // after the HTTP server has stopped
 */
#ifndef SRV_JOBS_H
#define SRV_JOBS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "srv_eval.h"
#include "srv_worker.h"

/** Characters of a job id (lowercase hex). */
#define SRV_JOB_ID_LEN 16

typedef struct {
    const char *jobs_dir;   /**< the jobs folder (borrowed; created when the first job is) */
    const char *data_root;  /**< the data root, or NULL: server-side datasets disabled */
    size_t max_pixels;      /**< decoded image size limit */
    int max_batch;          /**< images per chunk at most (the worker's max batch) */
    int batch;              /**< fixed images per chunk, 0: automatic */
    int batch_ms;           /**< automatic: aim for chunks of about this many ms */
} srv_jobs_opts;

typedef struct srv_jobs srv_jobs;

/** Which figure srv_jobs_figure draws. */
typedef enum { SRV_FIGURE_3 = 3, SRV_FIGURE_4 = 4, SRV_FIGURE_QUALITY = 5 } srv_figure;

/**
 * Loads the jobs folder (if it exists), repairs and queues the unfinished
 * jobs, and starts the job-runner thread. model and worker are borrowed and
 * must outlive the store (until srv_jobs_stop). A jobs folder that cannot
 * be used (another daemon's, not private, not writable, unreadable) is not
 * an error: it is printed on stderr as one line with the folder and the
 * real errno, and srv_jobs_unavailable says so until it is fixed.
 * ADJ_ERR_IO when the data root cannot be resolved; ADJ_ERR_NOMEM.
 * *out is new: srv_jobs_stop, then srv_jobs_free.
 */
int srv_jobs_new(const srv_jobs_opts *o, const model *m, srv_worker *w, srv_jobs **out,
                 char *err, size_t errsz);

/** Whether s is a well-formed job id (exactly SRV_JOB_ID_LEN lowercase hex digits). */
int srv_job_id_ok(const char *s);

/**
 * Creates a job from a request: a dataset (rq->dataset) or an upload
 * (rq->uploads, whose names are cleaned and sorted). On success id gets the
 * new job's id (NUL-terminated) and the job is queued. On failure err says
 * why and the code tells whose fault it is (srv_status_http maps it):
 * ADJ_ERR_ARG the request (its parameters, folder, files or labels);
 * ADJ_ERR_IO the job cannot be written (err has the real errno, e.g. a
 * full disk); ADJ_ERR_BUSY shutting down; ADJ_ERR_STATE the jobs folder
 * cannot be used (srv_jobs_unavailable's reason); ADJ_ERR_NOMEM.
 */
int srv_jobs_create(srv_jobs *js, srv_eval_request *rq, char id[SRV_JOB_ID_LEN + 1],
                    char *err, size_t errsz);

/**
 * Nonzero when evaluation jobs cannot be served: another advjpgd holds the
 * jobs folder's lock (jobs_dir/.lock), or the folder is not usable; msg
 * says which. Reading and creating jobs then fail; answer 503 with msg.
 * While it is so, each call tries to take the folder again (and loads its
 * jobs when it can), so nothing stale is reported.
 */
int srv_jobs_unavailable(srv_jobs *js, char *msg, size_t msgsz);

/**
 * A job's state: {"id", "status", "done", "total", "skipped", "images_per_s",
 * "eta_s", "created", "started", "finished", "error" (when failed), "batch",
 * and the request's parameters: "dataset", "upload", "ground_truth",
 * "labels", "eps", "quality", "attack" ({"attack", "adaptive", "steps",
 * "step_size", "eot_qualities"} as they apply), "threat_model", "seed",
 * "offset", "limit", "shard", "model", "dct"}. *out is new. ADJ_ERR_NOTFOUND when
 * there is no such job.
 */
int srv_jobs_status(srv_jobs *js, const char *id, json_t **out);

/**
 * {"jobs": [every job's state, oldest first]}, only those whose status is
 * status when it is neither NULL nor ""; new reference, NULL if out of memory.
 */
json_t *srv_jobs_list(srv_jobs *js, const char *status);

/**
 * Cancels a queued or running job (a running job stops before its next
 * chunk's rows are written; its status is canceled at once and on disk);
 * a job that has ended is left as it is. *out (new) is the job's state
 * afterwards. ADJ_ERR_NOTFOUND when there is no such job.
 */
int srv_jobs_cancel(srv_jobs *js, const char *id, json_t **out);

/**
 * Deletes an ended job (done, failed or canceled): its folder is removed and
 * the job is gone from the store (404 from then on). *out is new:
 * {"id": ..., "deleted": true}. ADJ_ERR_NOTFOUND, ADJ_ERR_CONFLICT for a
 * queued or running job (cancel it first), ADJ_ERR_IO if the folder could not
 * be removed (the job then stays as it was; what was removed is gone).
 */
int srv_jobs_delete(srv_jobs *js, const char *id, json_t **out);

/**
 * For /metrics: the job states' names (*names, borrowed, static) and their
 * number (returned), the jobs in each state (counts, room for max entries;
 * deleted jobs not counted) and the images evaluated by jobs since the
 * store was made (*images).
 */
int srv_jobs_counts(srv_jobs *js, const char *const **names, size_t *counts, int max,
                    uint64_t *images);

/** For /metrics: the runner thread's CPU seconds by stage since the store was made. */
void srv_jobs_cpu_seconds(srv_jobs *js, double seconds[SRV_JOB_STAGE_COUNT]);

/**
 * Table 1 from the job's rows so far: {"id", "status", "complete", "n",
 * "skipped", "total", "eps", "quality", "seed", "model", "dataset",
 * "notes" (how quartiles, whiskers and outliers are defined), "table":
 * srv_rows_table, "attack" and "threat_model" as in srv_jobs_status}. *out
 * is new. ADJ_ERR_NOTFOUND: no such job; ADJ_ERR_IO: the job has no readable rows (a damaged job: err gives
 * its error), or rows.csv is unreadable or was changed behind the daemon's
 * back (err says why); ADJ_ERR_NOMEM. A done job's result is made once (its
 * intervals and tests take seconds on thousands of images) and kept.
 */
int srv_jobs_result(srv_jobs *js, const char *id, json_t **out, char *err, size_t errsz);

/**
 * The job's rows.csv: *fd (new, read-only; the caller closes it) and *len,
 * the bytes of the header and the complete, valid rows to send (never 0).
 * Errors as srv_jobs_result.
 */
int srv_jobs_rows(srv_jobs *js, const char *id, int *fd, uint64_t *len, char *err,
                  size_t errsz);

/** One image of a job as GET /jobs/{id}/images/{file} rebuilds it. */
typedef struct {
    char *bytes;       /**< the image file (new: free()) */
    size_t len;
    exp_params params; /**< the job's */
    uint64_t seed;     /**< the image's own seed: exp_image_seed(job seed, file) */
    float *probs;      /**< its row: p(l_x | T(x)) per transform (new: free()) */
    int *labels;       /**< and the arg-max labels (new: free()) */
    int n_transforms;
} srv_job_image;

/**
 * The file of a job's evaluated row (not yet evaluated or not in the job:
 * ADJ_ERR_NOTFOUND; a row of an image that could not be read:
 * ADJ_ERR_CONFLICT; datasets disabled: ADJ_ERR_STATE), read from the dataset under the data root or from the
 * upload, with what rebuilding its transforms needs. Free with
 * srv_job_image_free. Errors as srv_jobs_result.
 */
int srv_jobs_image(srv_jobs *js, const char *id, const char *file, srv_job_image *out,
                   char *err, size_t errsz);

/** Frees an image's buffers (a zeroed struct is fine). */
void srv_job_image_free(srv_job_image *im);

/**
 * Figure 3 (on axis: "linear", "log1mp", "logit"; srv_svg.h), Figure 4
 * (for eps, 0: the job's smallest) or the quality curve (srv_svg_quality.h)
 * of the rows so far as SVG text; *svg is
 * new (free()). Errors as srv_jobs_result, and ADJ_ERR_ARG for an eps the
 * job does not have (err lists its eps).
 */
int srv_jobs_figure(srv_jobs *js, const char *id, srv_figure which, const char *axis, int eps,
                    char **svg, size_t *len, char *err, size_t errsz);

/**
 * The job's DCT analysis (srv_dct.h) over the images done so far: *json
 * (new) when svg is NULL, GET /jobs/{id}/dct's body with "id", "status",
 * "complete", "total"; else dct.svg for eps svg_eps (0: the job's smallest)
 * into *svg (new, free()) and *len. ADJ_ERR_NOTFOUND: no such job, or a job
 * without the analysis; ADJ_ERR_CONFLICT: no image analysed yet;
 * ADJ_ERR_ARG: not an eps of the job (err lists them); ADJ_ERR_IO as
 * srv_jobs_result (dct.bin unreadable or not the job's); ADJ_ERR_NOMEM.
 */
int srv_jobs_dct(srv_jobs *js, const char *id, int svg_eps, json_t **json, char **svg,
                 size_t *len, char *err, size_t errsz);

/**
 * Stops the runner: no new chunk is started; the chunks the worker holds are
 * finished and their rows written; the running job stays unfinished (it
 * resumes at the next start). New jobs are refused from now on; reading
 * states, results and rows still works. Returns once the runner has ended.
 */
void srv_jobs_stop(srv_jobs *js);

/** Stops (if not yet) and frees the store (NULL is fine). */
void srv_jobs_free(srv_jobs *js);

#endif
