/*
 * srv_batch.h - scale-out: one evaluation without HTTP (advjpgd --run), and
 * the merge of its shards into one result (advjpg merge).
 *
 * Batch mode. `advjpgd --run REQUEST.json --out DIR [--shard I/N]` runs the
 * /evaluate body REQUEST.json (srv_eval_parse_json; paths relative to
 * --data-root) as one job of the job store (srv_jobs.h) whose folder is DIR
 * itself: the same runner, chunk grid, request.json, rows.csv, status.json
 * and errors.log as an HTTP job, plus the answers of GET /jobs/ID/result,
 * figure3.svg and figure4.svg saved as result.json, figure3.svg and
 * figure4.svg when it is done. DIR is created (mode 0700) when missing and
 * is locked (DIR/.lock) while a run uses it. Run again on the same DIR, it
 * resumes: the rows there are kept as they are (the store's loading checks
 * and repairs them) and the run goes on at the first image without one; a
 * DIR that holds another request (another model, parameter, shard or file
 * list) is refused. A run that ended failed or canceled (its status.json
 * says so: a full disk, an engine error) is run again from its last row, so
 * that a scheduler's retry resumes it. --shard I/N overrides the request's "shard"; auto/N
 * takes I from $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX
 * (Kubernetes Indexed Jobs). Progress lines on stderr; SIGTERM / SIGINT
 * stop after the chunks in flight are written (run again to resume).
 *
 * Exit status of a run (SRV_BATCH_EXIT_*): 0 done; 1 the job failed (an
 * engine error, no image of the set readable), the model did not load, or
 * the run was stopped; 2 a bad request or option (a missing dataset or
 * labels, DIR holding another request, no shard index in the environment);
 * 3 the disk (DIR cannot be created or written, a full disk).
 *
 * The merge. srv_batch_merge takes the folders of the N shards of one
 * evaluation (batch runs or HTTP jobs' folders, shard i/N each, every one
 * done) and writes into a new folder the job folder that one run over the
 * whole slice would have: request.json with the shards' files interleaved
 * back into the slice's order, rows.csv with each shard's rows at its
 * images' places (the bytes of the shards' rows, unchanged), errors.log;
 * then it loads that folder through the store (which checks every row
 * against the file list and writes status.json) and writes result.json and
 * the figures through the same functions as a run, so that a field added to
 * the result or the table is in both. Refused, with the folders' names:
 * a shard that is not done (all such are listed), shards whose requests
 * differ in anything but their id, creation time and shard (model, weights,
 * parameters, dataset, labels, offset, limit), a shard count that differs,
 * a shard index given twice or missing, an image in two shards, rows that
 * do not match their shard's files.
 */
#ifndef SRV_BATCH_H
#define SRV_BATCH_H

#include <signal.h>
#include <stddef.h>

#include "model.h"
#include "srv_config.h"

enum {
    SRV_BATCH_EXIT_OK = 0,
    SRV_BATCH_EXIT_FAILED = 1,
    SRV_BATCH_EXIT_USAGE = 2,
    SRV_BATCH_EXIT_DISK = 3,
};

/**
 * Parses a --shard value: "I/N" (0 <= I < N <= 1000000) or "auto/N" (I from
 * $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX; an error if neither is
 * set). ADJ_ERR_ARG with a message.
 */
int srv_batch_parse_shard(const char *s, int *index, int *count, char *err, size_t errsz);

/**
 * Loads the model cfg names: an ONNX file (with cfg->preprocess), else spec
 * with cfg->weights. *out is new (model_free). The model's errors.
 */
int srv_model_load(const srv_config *cfg, const model_spec *spec, model **out, char *err,
                   size_t errsz);

/**
 * advjpgd --run: cfg->run, cfg->out, cfg->shard (may be NULL) and the model
 * options; spec is the built-in or spec-file model's (ignored for ONNX).
 * Runs to the end, printing progress and any failure on stderr; returns the
 * exit status. stop (set by the caller's signal handler, borrowed) ends it
 * early, resumable.
 */
int srv_batch_run(const srv_config *cfg, const model_spec *spec, volatile sig_atomic_t *stop);

/**
 * Merges the n shard folders dirs into the new folder out (which must not
 * exist, or be empty), as above. ADJ_ERR_ARG (a refusal: err names the
 * folders and what differs), ADJ_ERR_IO (a folder cannot be read or out
 * written), ADJ_ERR_NOMEM. Progress is not printed; err is one line.
 */
int srv_batch_merge(const char *const *dirs, int n, const char *out, char *err, size_t errsz);

#endif
