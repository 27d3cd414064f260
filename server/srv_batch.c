/* srv_batch.c - batch mode (advjpgd --run) and the merge of shards (srv_batch.h). */
#include "srv_batch.h"

#include "srv_jobs_int.h"
#include "srv_json.h"

/* request.json's fields that differ between two runs of one request */
static const char *const RUN_FIELDS[] = {"id", "created", "created_ms", NULL};
/* ... and between the shards of one evaluation */
static const char *const SHARD_FIELDS[] = {"id", "created", "created_ms", "shard", "total",
                                           "files", "truth", NULL};

static int listed(const char *const *v, const char *k)
{
    for (; *v; v++)
        if (strcmp(*v, k) == 0)
            return 1;
    return 0;
}

/* The first field (not in skip) whose value differs between objects a and b; NULL if none. */
static const char *first_difference(json_t *a, json_t *b, const char *const *skip)
{
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v)
        if (!listed(skip, k) && !json_equal(v, json_object_get(b, k)))
            return k;
    json_object_foreach(b, k, v)
        if (!listed(skip, k) && !json_object_get(a, k))
            return k;
    return NULL;
}

/* A JSON value as short text for a message ("(absent)" for NULL). */
static void value_text(const json_t *v, char *buf, size_t n)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    snprintf(buf, n, "%s", v ? (s ? s : "?") : "(absent)");
    if (s && strlen(s) >= n && n > 4)
        memcpy(buf + n - 4, "...", 4);
    free(s);
}

/* ---------------------------------------------------------------- shards */

static int parse_count(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int srv_batch_parse_shard(const char *s, int *index, int *count, char *err, size_t errsz)
{
    static const char *const ENV[] = {"SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"};
    const char *slash = s ? strchr(s, '/') : NULL;
    long n, i;
    char ibuf[32];
    if (!slash || parse_count(slash + 1, 1, 1000000, &n) || (size_t)(slash - s) >= sizeof ibuf)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "--shard '%.64s': give I/N (0 <= I < N <= 1000000) or auto/N", s ? s : "");
    snprintf(ibuf, sizeof ibuf, "%.*s", (int)(slash - s), s);
    const char *from = NULL, *is = ibuf;
    if (strcmp(ibuf, "auto") == 0) {
        for (size_t k = 0; k < sizeof ENV / sizeof *ENV && !from; k++)
            if ((is = getenv(ENV[k])) && *is)
                from = ENV[k];
        if (!from)
            return adj_fail(err, errsz, ADJ_ERR_ARG,
                            "--shard auto/%ld: neither $SLURM_ARRAY_TASK_ID (a Slurm array "
                            "task) nor $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set",
                            n);
    }
    if (parse_count(is, 0, n - 1, &i))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "--shard %.64s: the index '%.32s'%s%s is not in "
                                                 "0..%ld",
                        s, is, from ? " from $" : "", from ? from : "", n - 1);
    *index = (int)i;
    *count = (int)n;
    return ADJ_OK;
}

/* ---------------------------------------------------------------- outputs */

/*
 * result.json (GET /jobs/ID/result's bytes), figure3.svg, figure4.svg (the
 * smallest eps) and, for a quality grid, quality.svg of the job id into dir,
 * each atomically, through the store's own functions.
 */
static int write_outputs(srv_jobs *js, const char *id, const char *dir, char *err, size_t errsz)
{
    static const struct {
        srv_figure which;
        const char *name;
    } FIGURES[] = {{SRV_FIGURE_3, "figure3.svg"},
                   {SRV_FIGURE_4, "figure4.svg"},
                   {SRV_FIGURE_QUALITY, "quality.svg"}};
    json_t *res = NULL;
    int rc = srv_jobs_result(js, id, &res, err, errsz);
    if (rc)
        return rc;
    const int grid = json_is_array(json_object_get(res, "quality"));
    char *text = srv_json_dump(res); /* releases res */
    rc = text ? ut_write_atomic(dir, "result.json", text, strlen(text), 0600, err, errsz)
              : adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    free(text);
    for (size_t i = 0; !rc && i < sizeof FIGURES / sizeof *FIGURES; i++) {
        char *svg = NULL;
        size_t len = 0;
        if (FIGURES[i].which == SRV_FIGURE_QUALITY && !grid)
            continue;
        if (!(rc = srv_jobs_figure(js, id, FIGURES[i].which, NULL, 0, &svg, &len, err, errsz)))
            rc = ut_write_atomic(dir, FIGURES[i].name, svg, len, 0600, err, errsz);
        free(svg);
    }
    return rc;
}

/* ---------------------------------------------------------------- batch mode */

int srv_model_load(const srv_config *cfg, const model_spec *spec, model **out, char *err,
                   size_t errsz)
{
    return model_is_onnx_path(cfg->model)
               ? model_load_onnx(cfg->model, cfg->preprocess, out, err, errsz)
               : model_load(spec, cfg->weights, out, err, errsz);
}

/* REQUEST.json into rq, with --shard applied. An exit status. */
static int read_request(const srv_config *cfg, srv_eval_request *rq, char *err, size_t errsz)
{
    char *text = NULL, msg[ADJ_ERRLEN];
    size_t len = 0;
    if (ut_read_file(cfg->run, 1 << 24, 0, &text, &len, msg, sizeof msg)) {
        adj_fail(err, errsz, ADJ_ERR_ARG, "%s: %s", cfg->run, msg);
        return SRV_BATCH_EXIT_USAGE;
    }
    int rc = srv_eval_parse_json(rq, text, len, msg, sizeof msg);
    free(text);
    if (rc) {
        adj_fail(err, errsz, rc, "%s: %s", cfg->run, msg);
        return rc == ADJ_ERR_NOMEM ? SRV_BATCH_EXIT_FAILED : SRV_BATCH_EXIT_USAGE;
    }
    if (cfg->shard &&
        srv_batch_parse_shard(cfg->shard, &rq->shard_index, &rq->shard_count, err, errsz))
        return SRV_BATCH_EXIT_USAGE;
    return SRV_BATCH_EXIT_OK;
}

/*
 * A run that ended failed or canceled is run again: its status.json goes,
 * so that the store resumes it after its last valid row (a full disk, an
 * engine error or a preempted node are then retried by the scheduler).
 * 0, or -1 with err.
 */
static int retry_ended(const srv_jobs *js, char *err, size_t errsz)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/status.json", js->jobs_dir);
    json_error_t je;
    json_t *st = json_load_file(path, 0, &je);
    const char *s = json_string_value(json_object_get(st, "status")) ?: "";
    int again = strcmp(s, "failed") == 0 || strcmp(s, "canceled") == 0, rc = 0;
    if (again) {
        fprintf(stderr, "advjpgd: --run %s: its last run %s (%.300s); running it again from its "
                        "last row\n",
                js->jobs_dir, s,
                json_string_value(json_object_get(st, "error")) ?: "no reason saved");
        if (unlink(path)) {
            adj_fail(err, errsz, ADJ_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
            rc = -1;
        }
    }
    json_decref(st);
    return rc;
}

/*
 * The job of folder js->jobs_dir found again (a run resumed: refused when
 * the folder holds another request than rq names) into *out.
 */
static int resume_job(srv_jobs *js, const srv_eval_request *rq, const srv_eval_set *set,
                      json_t *old, job **out, char *err, size_t errsz)
{
    const char *id = json_string_value(json_object_get(old, "id"));
    if (!id || !srv_job_id_ok(id))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s/request.json has no valid job id (remove "
                                                 "the folder to start over)",
                        js->jobs_dir);
    json_t *now = srv_js_request_json(js, id, rq, set, 0, "");
    if (!now)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    const char *k = first_difference(old, now, RUN_FIELDS);
    int rc = ADJ_OK;
    if (k) {
        char was[160], is[160];
        value_text(json_object_get(old, k), was, sizeof was);
        value_text(json_object_get(now, k), is, sizeof is);
        rc = adj_fail(err, errsz, ADJ_ERR_ARG,
                      "%s holds another evaluation: its '%s' is %s, this run's %s (give another "
                      "--out, or remove it to start over)",
                      js->jobs_dir, k, was, is);
    }
    json_decref(now);
    return rc ? rc : retry_ended(js, err, errsz) ? ADJ_ERR_IO
                                                  : srv_js_load_job(js, js->jobs_dir, id, out);
}

/* The run's job, created in js->jobs_dir or resumed from it, on the list; its id. */
static int place_job(srv_jobs *js, srv_eval_request *rq, char id[SRV_JOB_ID_LEN + 1], char *err,
                     size_t errsz)
{
    int rc = exp_params_check(&rq->params, err, errsz);
    srv_eval_set set;
    if (rc || (rc = srv_eval_resolve(js->root, rq, model_get_classes(js->m), &set, err, errsz)))
        return rc == ADJ_ERR_NOMEM ? rc : ADJ_ERR_ARG;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/request.json", js->jobs_dir);
    json_error_t jerr;
    json_t *old = json_load_file(path, 0, &jerr);
    job *j = NULL;
    if (old) {
        rc = resume_job(js, rq, &set, old, &j, err, errsz);
    } else if (access(path, F_OK) == 0) {
        rc = adj_fail(err, errsz, ADJ_ERR_ARG, "%s: %s (remove the folder to start over)", path,
                      jerr.text);
    } else if (srv_js_new_id(id)) {
        rc = adj_fail(err, errsz, ADJ_ERR_IO, "no random numbers: %s", strerror(errno));
    } else if (!(rc = srv_js_create_job(js, rq, &set, id, js->jobs_dir, js->jobs_dir, &j, err,
                                        errsz))) {
        ut_fsync_dir(js->jobs_dir);
    }
    if (!rc) {
        snprintf(id, SRV_JOB_ID_LEN + 1, "%s", j->id);
        srv_js_enqueue(js, j);
    } else {
        srv_js_job_free(j);
    }
    json_decref(old);
    srv_eval_set_free(&set);
    return rc;
}

/* Waits for the job to end (or *stop), printing its progress every few seconds. */
static void wait_job(srv_jobs *js, const char *id, const char *dir, volatile sig_atomic_t *stop)
{
    double last = 0;
    json_int_t shown = -1;
    for (;;) {
        json_t *st = NULL;
        if (srv_jobs_status(js, id, &st))
            return;
        const char *s = json_string_value(json_object_get(st, "status")) ?: "?";
        json_int_t done = json_integer_value(json_object_get(st, "done"));
        int final = strcmp(s, "queued") != 0 && strcmp(s, "running") != 0;
        double now = ut_now();
        if (done != shown && (final || now - last >= 2.0)) {
            json_t *eta = json_object_get(st, "eta_s");
            char left[48] = "";
            if (json_is_number(eta) && !final)
                snprintf(left, sizeof left, ", about %.0f s left", json_number_value(eta));
            fprintf(stderr, "advjpgd: --run %s: %lld of %lld images (%lld skipped), %.2f "
                            "images/s%s\n",
                    dir, (long long)done,
                    (long long)json_integer_value(json_object_get(st, "total")),
                    (long long)json_integer_value(json_object_get(st, "skipped")),
                    json_number_value(json_object_get(st, "images_per_s")), left);
            shown = done;
            last = now;
        }
        json_decref(st);
        if (final || *stop)
            return;
        usleep(200000);
    }
}

/* The job's outcome once the runner has stopped: outputs, message, exit status. */
static int job_outcome(srv_jobs *js, const char *id, const char *dir, char *err, size_t errsz)
{
    json_t *st = NULL;
    if (srv_jobs_status(js, id, &st))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory"), SRV_BATCH_EXIT_FAILED;
    const char *s = json_string_value(json_object_get(st, "status")) ?: "?";
    const char *jerr = json_string_value(json_object_get(st, "error")) ?: "";
    json_int_t done = json_integer_value(json_object_get(st, "done"));
    json_int_t total = json_integer_value(json_object_get(st, "total"));
    json_int_t skipped = json_integer_value(json_object_get(st, "skipped"));
    int ex = SRV_BATCH_EXIT_OK;
    if (strcmp(s, "done") == 0) {
        if (write_outputs(js, id, dir, err, errsz))
            ex = SRV_BATCH_EXIT_DISK;
        else if (skipped == total)
            ex = SRV_BATCH_EXIT_FAILED, adj_fail(err, errsz, ADJ_ERR_IO,
                                                 "none of the %lld images could be read (%s/"
                                                 "errors.log says why)", (long long)total, dir);
        else if (skipped)
            fprintf(stderr, "advjpgd: --run %s: %lld images could not be read (errors.log)\n",
                    dir, (long long)skipped);
    } else if (strcmp(s, "failed") == 0) {
        ex = strstr(jerr, strerror(ENOSPC)) || strstr(jerr, strerror(EDQUOT))
                 ? SRV_BATCH_EXIT_DISK : SRV_BATCH_EXIT_FAILED;
        adj_fail(err, errsz, ADJ_ERR_IO, "failed after %lld of %lld images: %s", (long long)done,
                 (long long)total, jerr);
    } else {
        ex = SRV_BATCH_EXIT_FAILED;
        adj_fail(err, errsz, ADJ_ERR_STATE, "%s after %lld of %lld images; run again with the "
                                            "same --out to resume",
                 strcmp(s, "canceled") == 0 ? "canceled" : "stopped", (long long)done,
                 (long long)total);
    }
    json_decref(st);
    return ex;
}

/* The output folder made and claimed as the store's folder; an exit status. */
static int open_store(const srv_config *cfg, const model *m, srv_worker *w, srv_jobs **js,
                      char *err, size_t errsz)
{
    char msg[ADJ_ERRLEN];
    if (ut_mkdir_p(cfg->out, 0700, msg, sizeof msg)) {
        adj_fail(err, errsz, ADJ_ERR_IO, "--out %s: %s", cfg->out, msg);
        return SRV_BATCH_EXIT_DISK;
    }
    srv_jobs_opts jo = {cfg->out, cfg->data_root, cfg->max_pixels, cfg->max_batch,
                        cfg->job_batch, cfg->job_batch_ms};
    int rc = srv_jobs_new(&jo, m, w, js, err, errsz);
    if (rc)
        return rc == ADJ_ERR_IO ? SRV_BATCH_EXIT_USAGE : SRV_BATCH_EXIT_FAILED; /* the data root */
    if (srv_jobs_unavailable(*js, msg, sizeof msg)) {
        adj_fail(err, errsz, ADJ_ERR_STATE, "%s", msg);
        return SRV_BATCH_EXIT_DISK;
    }
    return SRV_BATCH_EXIT_OK;
}

int srv_batch_run(const srv_config *cfg, const model_spec *spec, volatile sig_atomic_t *stop)
{
    char err[ADJ_ERRLEN] = "", id[SRV_JOB_ID_LEN + 1] = "";
    srv_eval_request rq;
    srv_eval_request_init(&rq);
    model *m = NULL;
    srv_worker *w = NULL;
    srv_jobs *js = NULL;
    int ex = read_request(cfg, &rq, err, sizeof err);
    if (!ex && srv_model_load(cfg, spec, &m, err, sizeof err))
        ex = SRV_BATCH_EXIT_FAILED;
    srv_worker_opts wo = {cfg->max_batch, cfg->batch_delay_ms, cfg->queue_size, 1024};
    if (!ex && srv_worker_new(m, &wo, NULL, &w, err, sizeof err))
        ex = SRV_BATCH_EXIT_FAILED;
    if (!ex)
        ex = open_store(cfg, m, w, &js, err, sizeof err);
    if (!ex) {
        int rc = place_job(js, &rq, id, err, sizeof err);
        ex = rc == ADJ_OK         ? SRV_BATCH_EXIT_OK
             : rc == ADJ_ERR_ARG ? SRV_BATCH_EXIT_USAGE
             : rc == ADJ_ERR_IO  ? SRV_BATCH_EXIT_DISK
                                 : SRV_BATCH_EXIT_FAILED;
    }
    if (!ex) {
        fprintf(stderr, "advjpgd: --run %s: job %s, shard %d/%d, model %s\n", cfg->out, id,
                rq.shard_index, rq.shard_count, model_get_spec(m)->name);
        wait_job(js, id, cfg->out, stop);
        srv_jobs_stop(js); /* the chunks in flight are written; an unfinished job stays so */
        ex = job_outcome(js, id, cfg->out, err, sizeof err);
    }
    if (ex)
        fprintf(stderr, "advjpgd: --run: %s\n", err);
    else
        fprintf(stderr, "advjpgd: --run %s: done\n", cfg->out);
    srv_jobs_stop(js);
    srv_worker_stop(w);
    srv_worker_free(w);
    srv_jobs_free(js);
    model_free(m);
    srv_eval_request_free(&rq);
    return ex;
}

/* ---------------------------------------------------------------- the merge */

typedef struct {
    const char *dir;
    json_t *req;       /* its request.json */
    int index, count;
    size_t total;
    char *rows;        /* rows.csv */
    size_t rows_len, header_len;
    size_t *line;      /* [total + 1] offsets of its data lines in rows (and the end) */
    char *errors;      /* errors.log, or NULL */
    size_t errors_len;
    char state[160];   /* "" done, else what it is ("running: 3 of 25 rows") */
} shard;

static void shard_free(shard *s)
{
    json_decref(s->req);
    free(s->rows);
    free(s->line);
    free(s->errors);
}

/* The data lines of s->rows (after the header): offsets into s->line; their number. */
static size_t split_rows(shard *s)
{
    const char *nl = memchr(s->rows, '\n', s->rows_len);
    s->header_len = nl ? (size_t)(nl - s->rows) + 1 : 0;
    size_t n = 0;
    for (size_t i = s->header_len; i < s->rows_len; i++)
        if (s->rows[i] == '\n') {
            if (n < s->total)
                s->line[n + 1] = i + 1;
            n++;
        }
    s->line[0] = s->header_len;
    return n;
}

/* Reads a shard's folder; s->state says whether it is done. ADJ_ERR_IO/ARG with err. */
static int read_shard(shard *s, const char *dir, char *err, size_t errsz)
{
    char path[PATH_MAX], msg[ADJ_ERRLEN];
    json_error_t je;
    s->dir = dir;
    snprintf(path, sizeof path, "%s/request.json", dir);
    json_t *files;
    if (!(s->req = json_load_file(path, 0, &je)) ||
        !json_is_array(files = json_object_get(s->req, "files")))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s is not a job folder (request.json: %s)",
                        dir, s->req ? "no file list" : je.text);
    json_t *sh = json_object_get(s->req, "shard");
    s->index = (int)json_integer_value(json_object_get(sh, "index"));
    s->count = (int)json_integer_value(json_object_get(sh, "count"));
    s->total = json_array_size(files);
    if (!(s->line = calloc(s->total + 1, sizeof *s->line)))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/rows.csv", dir);
    if (ut_read_file(path, (size_t)1 << 40, 0, &s->rows, &s->rows_len, msg, sizeof msg))
        return adj_fail(err, errsz, ADJ_ERR_IO, "%s: %s", dir, msg);
    size_t n = split_rows(s);
    snprintf(path, sizeof path, "%s/errors.log", dir);
    if (ut_read_file(path, (size_t)1 << 30, 0, &s->errors, &s->errors_len, NULL, 0))
        s->errors = NULL;
    snprintf(path, sizeof path, "%s/status.json", dir);
    json_t *st = json_load_file(path, 0, &je);
    const char *state = json_string_value(json_object_get(st, "status"));
    if (!state || strcmp(state, "done") != 0 || n != s->total)
        snprintf(s->state, sizeof s->state, "%s: %zu of %zu rows",
                 state ? state : "unfinished", n, s->total);
    json_decref(st);
    return ADJ_OK;
}

/* Every shard done, of one request, the shards 0..N-1 of one slice each once. */
static int check_shards(const shard *v, int n, char *err, size_t errsz)
{
    ut_buf b = {0};
    for (int i = 0; i < n; i++)
        if (v[i].state[0])
            ut_buf_printf(&b, "%s%s (shard %d/%d, %s)", b.len ? ", " : "", v[i].dir, v[i].index,
                          v[i].count, v[i].state);
    int rc = b.len ? adj_fail(err, errsz, ADJ_ERR_ARG, "unfinished shards (merge once they are "
                                                       "done): %s", b.s)
                   : ADJ_OK;
    ut_buf_free(&b);
    for (int i = 1; !rc && i < n; i++) {
        const char *k = first_difference(v[0].req, v[i].req, SHARD_FIELDS);
        if (!k && v[i].count != v[0].count)
            k = "shard";
        if (k) {
            char a[160], c[160];
            value_text(json_object_get(v[0].req, k), a, sizeof a);
            value_text(json_object_get(v[i].req, k), c, sizeof c);
            rc = adj_fail(err, errsz, ADJ_ERR_ARG, "%s and %s are not shards of one evaluation: "
                                                   "their '%s' is %s and %s",
                          v[0].dir, v[i].dir, k, a, c);
        }
    }
    for (int i = 0; !rc && i < n; i++)
        if (v[i].count < 1 || v[i].index < 0 || v[i].index >= v[i].count)
            rc = adj_fail(err, errsz, ADJ_ERR_ARG, "%s: request.json's shard %d/%d is not one",
                          v[i].dir, v[i].index, v[i].count);
    for (int i = 0; !rc && i < n; i++)
        for (int k = 0; !rc && k < i; k++)
            if (v[k].index == v[i].index)
                rc = adj_fail(err, errsz, ADJ_ERR_ARG, "shard %d/%d is given twice: %s and %s",
                              v[i].index, v[i].count, v[k].dir, v[i].dir);
    for (int idx = 0; !rc && idx < v[0].count; idx++) {
        int found = 0;
        for (int i = 0; i < n && !found; i++)
            found = v[i].index == idx;
        if (!found)
            rc = adj_fail(err, errsz, ADJ_ERR_ARG, "shard %d/%d is missing (%d of %d shards "
                                                   "given): its images would be missing",
                          idx, v[0].count, n, v[0].count);
    }
    return rc;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(**(const char *const *const *)a, **(const char *const *const *)b);
}

/*
 * The slice's files and labels in one run's order (shard i's k-th image is
 * image k * N + i), and no image twice. *files, *truth (json_null without
 * labels) new; by[] (the slice's size) gets each image's shard.
 */
static int interleave(const shard *v, int n, size_t m, json_t **files, json_t **truth,
                      const shard **by, char *err, size_t errsz)
{
    const shard **of = calloc((size_t)n, sizeof *of);
    const char ***names = calloc(m, sizeof *names);
    const char **slot = calloc(m, sizeof *slot);
    int has_truth = json_is_array(json_object_get(v[0].req, "truth")), rc = ADJ_OK;
    *files = json_array();
    *truth = has_truth ? json_array() : json_null();
    if (!of || !names || !slot || !*files || !*truth)
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++)
        of[v[i].index] = &v[i];
    for (size_t p = 0; !rc && p < m; p++) {
        const shard *s = of[p % (size_t)n];
        size_t k = p / (size_t)n;
        if (k >= s->total) {
            rc = adj_fail(err, errsz, ADJ_ERR_ARG, "the shards are not of one slice: %s (shard "
                                                   "%d/%d) has %zu images, too few for %zu in all",
                          s->dir, s->index, s->count, s->total, m);
            break;
        }
        json_t *f = json_array_get(json_object_get(s->req, "files"), k);
        slot[p] = json_string_value(f);
        names[p] = &slot[p];
        by[p] = s;
        json_array_append(*files, f);
        if (has_truth)
            json_array_append(*truth, json_array_get(json_object_get(s->req, "truth"), k));
    }
    if (!rc)
        qsort(names, m, sizeof *names, cmp_name);
    for (size_t p = 1; !rc && p < m; p++)
        if (strcmp(*names[p - 1], *names[p]) == 0)
            rc = adj_fail(err, errsz, ADJ_ERR_ARG, "image '%.200s' is in two shards: %s and %s",
                          *names[p], by[names[p - 1] - slot]->dir, by[names[p] - slot]->dir);
    free(of);
    free(names);
    free(slot);
    return rc;
}

/* out made (or found empty); ADJ_ERR_ARG when it holds anything. */
static int make_empty_folder(const char *out, char *err, size_t errsz)
{
    char msg[ADJ_ERRLEN];
    if (ut_mkdir_p(out, 0700, msg, sizeof msg))
        return adj_fail(err, errsz, ADJ_ERR_IO, "--out %s: %s", out, msg);
    DIR *d = opendir(out);
    if (!d)
        return adj_fail(err, errsz, ADJ_ERR_IO, "--out %s: %s", out, strerror(errno));
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)))
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n ? adj_fail(err, errsz, ADJ_ERR_ARG, "--out %s is not empty", out) : ADJ_OK;
}

/*
 * The merged job folder's files in out: request.json (shard 0's with the
 * slice's files and labels, shard 0/1, a new id), rows.csv (each image's
 * row from its shard, bytes unchanged), errors.log. id gets the new id.
 */
static int write_merged(const shard *v, int n, const char *out, char id[SRV_JOB_ID_LEN + 1],
                        char *err, size_t errsz)
{
    size_t m = 0;
    for (int i = 0; i < n; i++)
        m += v[i].total;
    const shard **by = calloc(m ? m : 1, sizeof *by);
    json_t *files = NULL, *truth = NULL, *req = json_deep_copy(v[0].req);
    int rc = by && req ? interleave(v, n, m, &files, &truth, by, err, errsz)
                       : adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    char created[32];
    srv_js_iso_now(created);
    if (!rc && srv_js_new_id(id))
        rc = adj_fail(err, errsz, ADJ_ERR_IO, "no random numbers: %s", strerror(errno));
    ut_buf rows = {0}, errs = {0};
    if (!rc) {
        json_object_set_new(req, "id", json_string(id));
        json_object_set_new(req, "created", json_string(created));
        json_object_set_new(req, "created_ms", json_integer(ut_wall_ms()));
        json_object_set_new(req, "shard", json_pack("{s:i,s:i}", "index", 0, "count", 1));
        json_object_set_new(req, "total", json_integer((json_int_t)m));
        json_object_set(req, "files", files);
        json_object_set(req, "truth", truth);
        ut_buf_add(&rows, v[0].rows, v[0].header_len);
        for (size_t p = 0; p < m; p++) {
            const shard *s = by[p];
            size_t k = p / (size_t)n;
            ut_buf_add(&rows, s->rows + s->line[k], s->line[k + 1] - s->line[k]);
        }
        for (int i = 0; i < n; i++)
            if (v[i].errors)
                ut_buf_add(&errs, v[i].errors, v[i].errors_len);
    }
    char *text = rc ? NULL : json_dumps(req, JSON_COMPACT);
    if (!rc && (!text || rows.failed || errs.failed))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = ut_write_atomic(out, "rows.csv", rows.s, rows.len, 0600, err, errsz);
    if (!rc && errs.len)
        rc = ut_write_atomic(out, "errors.log", errs.s, errs.len, 0600, err, errsz);
    if (!rc) /* last: a folder without it is not a job */
        rc = ut_write_atomic(out, "request.json", text, strlen(text), 0600, err, errsz);
    free(text);
    ut_buf_free(&rows);
    ut_buf_free(&errs);
    json_decref(files);
    json_decref(truth);
    json_decref(req);
    free(by);
    return rc;
}

/*
 * The merged folder loaded through the store as a job of the shards' model
 * (its rows checked against its files, status.json written), then its
 * result and figures written as a run writes them.
 */
static int finish_merged(const char *out, const char *id, json_t *req, char *err, size_t errsz)
{
    const json_t *mo = json_object_get(req, "model");
    model_spec spec;
    memset(&spec, 0, sizeof spec);
    snprintf(spec.name, sizeof spec.name, "%s",
             json_string_value(json_object_get(mo, "name")) ?: "");
    spec.classes = (int)json_integer_value(json_object_get(mo, "classes"));
    spec.input_size = (int)json_integer_value(json_object_get(mo, "input_size"));
    spec.scale_size = (int)json_integer_value(json_object_get(mo, "scale_size"));
    srv_jobs_opts jo = {out, NULL, 0, 1, 0, 0};
    srv_jobs *js = NULL;
    job *j = NULL;
    int rc = srv_js_alloc(&jo, &spec, &js, err, errsz);
    if (!rc && !(rc = srv_js_load_job(js, out, id, &j))) {
        srv_js_enqueue(js, j);
        if (j->state != JS_DONE)
            rc = adj_fail(err, errsz, ADJ_ERR_ARG, "the merged rows do not check against the "
                                                   "shards' files: %s", j->error);
        else
            rc = write_outputs(js, id, out, err, errsz);
    } else if (rc == ADJ_ERR_NOMEM) {
        adj_fail(err, errsz, rc, "out of memory");
    }
    srv_jobs_free(js);
    return rc;
}

int srv_batch_merge(const char *const *dirs, int n, const char *out, char *err, size_t errsz)
{
    if (n < 1)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "no shard folders to merge");
    shard *v = calloc((size_t)n, sizeof *v);
    if (!v)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    int rc = ADJ_OK;
    for (int i = 0; !rc && i < n; i++)
        rc = read_shard(&v[i], dirs[i], err, errsz);
    if (!rc)
        rc = check_shards(v, n, err, errsz);
    char id[SRV_JOB_ID_LEN + 1];
    if (!rc)
        rc = make_empty_folder(out, err, errsz);
    if (!rc)
        rc = write_merged(v, n, out, id, err, errsz);
    if (!rc)
        rc = finish_merged(out, id, v[0].req, err, errsz);
    for (int i = 0; i < n; i++)
        shard_free(&v[i]);
    free(v);
    return rc;
}
