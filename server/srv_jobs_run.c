/* srv_jobs_run.c - the runner: a job's images in chunks through the worker, rows to rows.csv. */
#include "srv_jobs_int.h"

#include "srv_dct.h"

/* ---------------------------------------------------------------- the runner */

/*
 * A chunk of an FGSM job runs as a pipeline (pipe): the worker runs one
 * gradient pass of its images (SRV_TASK_GRADIENT), this thread builds every
 * variant (FGSM, JPEG, JPGnoise: exp_fgsm_variants) while the worker runs
 * the other chunk's passes, and the worker classifies the variants in full
 * forward passes (SRV_TASK_FORWARD of max_batch images each). Other attacks
 * run as one SRV_TASK_ATTACK per image (exp_run_batch_keep on the worker).
 */
typedef enum { CH_GRADIENT, CH_FORWARD, CH_DONE } chunk_stage;

typedef struct {
    srv_jobs *js;
    size_t first;   /* job index of its first image */
    int n;          /* images */
    int pending;    /* worker jobs not yet done (js->lock) */
    int submitted;  /* worker jobs queued */
    int refused;    /* the worker refused the chunk: shutting down */
    srv_task *jobs;  /* [n]; jobs[i].x set when image i was prepared */
    char **skip;    /* [n] why image i could not be prepared, or NULL */
    /* the FGSM pipeline */
    int pipe;
    chunk_stage stage; /* js->lock */
    int k;             /* images prepared */
    int *idx;          /* [k] the chunk's index of each */
    img_rgb *xs;       /* [k] jobs[idx[q]].x, borrowed pixels */
    int *labels;       /* [k] */
    float *grad;       /* [k][H][W][3] */
    float *probs;      /* [k][classes] of the gradient pass, then [k][T-1][classes] */
    float *planar;     /* [k][T-1][C][H][W] the variants */
    srv_task *passes;  /* [n_passes]: the gradient pass, then the forward passes */
    int n_passes;
} chunk;

static void chunk_free(chunk *c)
{
    for (int i = 0; i < c->n; i++) {
        if (c->jobs) {
            img_free(&c->jobs[i].x);
            exp_result_free(&c->jobs[i].result);
        }
        if (c->skip)
            free(c->skip[i]);
    }
    free(c->jobs);
    free(c->skip);
    free(c->idx);
    free(c->xs);
    free(c->labels);
    free(c->grad);
    free(c->probs);
    free(c->planar);
    free(c->passes);
    memset(c, 0, sizeof *c);
}

/* The calling thread's CPU time (seconds). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Adds the runner's CPU time since t0 (cpu_now) to a stage of /metrics. */
static void add_cpu(srv_jobs *js, srv_job_stage stage, double t0)
{
    double d = cpu_now() - t0;
    pthread_mutex_lock(&js->lock);
    js->cpu_seconds[stage] += d;
    pthread_mutex_unlock(&js->lock);
}

static void on_image_done(srv_task *sj, void *arg)
{
    chunk *c = arg;
    (void)sj;
    pthread_mutex_lock(&c->js->lock);
    c->pending--;
    pthread_cond_broadcast(&c->js->cond);
    pthread_mutex_unlock(&c->js->lock);
}

/* Reads, decodes and prepares one image of the job into *x. */
static int load_image(srv_jobs *js, const char *root, const char *dir, const char *file, img_rgb *x,
                      char *err, size_t errsz)
{
    char real[PATH_MAX];
    int rc = srv_path_file_under(root, dir, file, real, err, errsz);
    if (rc)
        return rc;
    size_t len = 0;
    char *buf = NULL;
    if (ut_read_file(real, IMAGE_FILE_MAX, 0, &buf, &len, NULL, 0))
        return adj_fail(err, errsz, ADJ_ERR_IO, "'%.200s': %s", file,
                        errno == EFBIG ? "larger than 256 MiB" : strerror(errno));
    img_rgb im;
    char msg[ADJ_ERRLEN];
    rc = img_decode((const uint8_t *)buf, len, js->o.max_pixels, &im, msg, sizeof msg);
    free(buf);
    if (rc)
        return adj_fail(err, errsz, rc, "'%.200s': %s", file, msg);
    rc = img_prepare(&im, js->spec->scale_size, js->spec->input_size, x, msg, sizeof msg);
    img_free(&im);
    if (rc)
        return adj_fail(err, errsz, rc, "'%.200s': %s", file, msg);
    return ADJ_OK;
}

/*
 * Queues a chunk's worker jobs (queue, k of them; c->pending set first):
 * ADJ_OK, ADJ_OK with c->refused when the worker is shutting down (nothing
 * queued), or another error with err.
 */
static int submit_all(srv_jobs *js, chunk *c, srv_task **queue, int k, char *err, size_t errsz)
{
    pthread_mutex_lock(&js->lock);
    c->pending = k;
    pthread_mutex_unlock(&js->lock);
    char msg[ADJ_ERRLEN];
    int rc;
    while ((rc = srv_worker_submit_many(js->w, queue, k, msg, sizeof msg)) == ADJ_ERR_BUSY)
        usleep(10000); /* cannot happen with the bound at 1024; wait rather than fail */
    if (!rc) {
        c->submitted += k;
        return ADJ_OK;
    }
    pthread_mutex_lock(&js->lock);
    c->pending = 0;
    pthread_mutex_unlock(&js->lock);
    if (rc != ADJ_ERR_STATE)
        return adj_fail(err, errsz, rc, "%s", msg);
    c->refused = 1;
    return ADJ_OK;
}

/* A worker job of the chunk's pipeline, of its group. */
static srv_task *pipe_task(chunk *c, int i, srv_task_kind kind, uint64_t group)
{
    srv_task *t = &c->passes[i];
    t->kind = kind;
    t->prio = SRV_PRIO_BACKGROUND;
    t->group = group;
    t->done = on_image_done;
    t->done_arg = c;
    return t;
}

/* The pipeline's first pass: the gradient of the chunk's prepared images. */
static int submit_gradient(srv_jobs *js, chunk *c, uint64_t group, char *err, size_t errsz)
{
    const size_t per = (size_t)3 * js->spec->input_size * js->spec->input_size;
    for (int i = 0; i < c->n; i++)
        if (!c->skip[i])
            c->k++;
    if (c->k == 0) { /* nothing to compute: every image is skipped */
        c->stage = CH_DONE;
        return ADJ_OK;
    }
    c->idx = calloc((size_t)c->k, sizeof *c->idx);
    c->xs = calloc((size_t)c->k, sizeof *c->xs);
    c->labels = calloc((size_t)c->k, sizeof *c->labels);
    c->grad = malloc((size_t)c->k * per * sizeof *c->grad);
    c->probs = malloc((size_t)c->k * js->spec->classes * sizeof *c->probs);
    c->passes = calloc(1, sizeof *c->passes);
    if (!c->idx || !c->xs || !c->labels || !c->grad || !c->probs || !c->passes)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    for (int i = 0, q = 0; i < c->n; i++)
        if (!c->skip[i]) {
            c->idx[q] = i;
            c->xs[q++] = c->jobs[i].x;
        }
    c->n_passes = 1;
    srv_task *t = pipe_task(c, 0, SRV_TASK_GRADIENT, group);
    t->n = c->k;
    t->xs = c->xs;
    t->labels = c->labels;
    t->grad = c->grad;
    t->probs = c->probs;
    return submit_all(js, c, &t, 1, err, errsz);
}

/* The first failed pass of the chunk, or NULL. */
static const srv_task *failed_pass(const chunk *c)
{
    for (int i = 0; i < c->n_passes; i++)
        if (c->passes[i].status != SRV_TASK_OK)
            return &c->passes[i];
    return NULL;
}

/* Every image of the chunk failed with the pass's message. */
static void fail_images(chunk *c, const srv_task *t)
{
    for (int q = 0; q < c->k; q++) {
        c->jobs[c->idx[q]].status = SRV_TASK_FAILED;
        snprintf(c->jobs[c->idx[q]].err, sizeof c->jobs[0].err, "%s", t->err);
    }
}

/*
 * The gradient pass is back: every variant built (here, off the worker), as
 * planar floats, and queued as forward passes of max_batch images. With
 * keep 0 (no DCT) the variants' images are freed once in planar form.
 */
static int submit_forwards(srv_jobs *js, job *j, chunk *c, char *err, size_t errsz)
{
    const srv_task *bad = failed_pass(c);
    const int T = exp_n_transforms(&j->params), K = js->spec->classes, B = js->o.max_batch;
    const size_t per = (size_t)3 * js->spec->input_size * js->spec->input_size;
    const long total = (long)c->k * (T - 1);
    int rc = ADJ_OK;
    if (bad) {
        fail_images(c, bad);
        goto done;
    }
    double t0 = cpu_now();
    for (int q = 0; q < c->k && !rc; q++) {
        srv_task *sj = &c->jobs[c->idx[q]];
        rc = exp_fgsm_variants(&j->params, &sj->x, c->grad + per * q, c->probs + (size_t)q * K,
                               c->labels[q], K, sj->seed, &sj->result, err, errsz);
    }
    add_cpu(js, SRV_JOB_STAGE_VARIANTS, t0);
    t0 = cpu_now();
    free(c->grad); /* used */
    c->grad = NULL;
    float *probs = rc ? NULL : realloc(c->probs, (size_t)total * K * sizeof *c->probs);
    srv_task *passes = rc ? NULL : realloc(c->passes, (size_t)((total + B - 1) / B) * sizeof *passes);
    c->probs = probs ? probs : c->probs;
    c->passes = passes ? passes : c->passes;
    if (!rc && (!probs || !passes || !(c->planar = malloc((size_t)total * per * sizeof(float)))))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    for (long v = 0; v < total && !rc; v++) {
        exp_result *r = &c->jobs[c->idx[v / (T - 1)]].result;
        img_to_planar(&r->images[1 + v % (T - 1)], c->planar + per * v);
        if (v % (T - 1) == T - 2 && !j->dct)
            exp_result_drop_images(r); /* rows.csv holds scores only; the DCT needs the images */
    }
    add_cpu(js, SRV_JOB_STAGE_PLANAR, t0);
    if (rc)
        goto done;
    const uint64_t group = c->passes[0].group;
    srv_task **queue = malloc((size_t)((total + B - 1) / B) * sizeof *queue);
    if (!queue) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        goto done;
    }
    memset(c->passes, 0, (size_t)((total + B - 1) / B) * sizeof *c->passes);
    c->n_passes = 0;
    for (long v0 = 0; v0 < total; v0 += B, c->n_passes++) {
        srv_task *t = pipe_task(c, c->n_passes, SRV_TASK_FORWARD, group);
        t->n = total - v0 < B ? (int)(total - v0) : B;
        t->input = c->planar + per * v0;
        t->probs = c->probs + (size_t)K * v0;
        queue[c->n_passes] = t;
    }
    rc = submit_all(js, c, queue, c->n_passes, err, errsz);
    free(queue);
done:
    pthread_mutex_lock(&js->lock);
    c->stage = bad || rc || c->refused ? CH_DONE : CH_FORWARD;
    pthread_mutex_unlock(&js->lock);
    return rc;
}

/* The forward passes are back: each variant's probabilities into its result. */
static void collect_forwards(srv_jobs *js, job *j, chunk *c)
{
    const srv_task *bad = failed_pass(c);
    const int T = exp_n_transforms(&j->params), K = js->spec->classes;
    if (bad) {
        fail_images(c, bad);
        return;
    }
    for (long v = 0; v < (long)c->k * (T - 1); v++)
        memcpy(c->jobs[c->idx[v / (T - 1)]].result.probs + (size_t)(1 + v % (T - 1)) * K,
               c->probs + (size_t)K * v, (size_t)K * sizeof(float));
}

/*
 * Prepares images first .. first+n-1 of the job and queues them on the
 * worker as one batch group (an FGSM job: its gradient pass). ADJ_ERR_NOMEM,
 * or ADJ_OK (c->refused when the worker is shutting down: nothing queued).
 */
static int start_chunk(srv_jobs *js, job *j, const char *root, const char *dir, chunk *c,
                       size_t first, int n, char *err, size_t errsz)
{
    memset(c, 0, sizeof *c);
    c->js = js;
    c->first = first;
    c->n = n;
    c->jobs = calloc((size_t)n, sizeof *c->jobs);
    c->skip = calloc((size_t)n, sizeof *c->skip);
    srv_task **queue = calloc((size_t)n, sizeof *queue);
    if (!c->jobs || !c->skip || !queue) {
        free(queue);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_lock(&js->lock);
    uint64_t group = ++js->next_group;
    pthread_mutex_unlock(&js->lock);
    int k = 0;
    const double t0 = cpu_now();
    for (int i = 0; i < n; i++) {
        const char *file = j->files[first + (size_t)i];
        srv_task *sj = &c->jobs[i];
        char msg[ADJ_ERRLEN];
        int rc = load_image(js, root, dir, file, &sj->x, msg, sizeof msg);
        if (rc) {
            if (!(c->skip[i] = strdup(msg))) {
                free(queue);
                return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
            }
            continue;
        }
        sj->kind = SRV_TASK_ATTACK;
        sj->scores_only = !j->dct; /* rows.csv holds scores only; the DCT needs the images */
        sj->prio = SRV_PRIO_BACKGROUND;
        sj->params = j->params;
        sj->seed = exp_image_seed(j->seed, file);
        sj->group = group;
        sj->done = on_image_done;
        sj->done_arg = c;
        queue[k++] = sj;
    }
    add_cpu(js, SRV_JOB_STAGE_LOAD, t0);
    int rc = ADJ_OK;
    c->pipe = j->params.attack.kind == EXP_FGSM;
    c->stage = c->pipe ? CH_GRADIENT : CH_DONE;
    if (c->pipe)
        rc = submit_gradient(js, c, group, err, errsz);
    else if (k > 0)
        rc = submit_all(js, c, queue, k, err, errsz);
    free(queue);
    return rc;
}

/*
 * Appends lines to the job's errors.log (informative only: the rows are the
 * record). A failed append is cut back, so the log holds whole lines.
 */
static void append_errors(const job *j, const ut_buf *errs)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/errors.log", j->dir);
    int efd = ut_open_regular(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (efd < 0) {
        srv_js_log(j->id, "cannot write errors.log: %s", srv_js_file_strerror(errno));
        return;
    }
    struct stat st;
    off_t len0 = fstat(efd, &st) == 0 ? st.st_size : -1;
    if (ut_write_all(efd, errs->s, errs->len) || fsync(efd)) {
        srv_js_log(j->id, "cannot write errors.log: %s", strerror(errno));
        if (len0 >= 0 && ftruncate(efd, len0) == 0)
            fsync(efd);
    }
    close(efd);
}

/* ---- the DCT analysis (srv_dct.h): a record per image, written before the chunk's rows ---- */

/* The chunk's records (new, c->n of them), or NULL with err. */
static float *dct_records(const job *j, const chunk *c, char *err, size_t errsz)
{
    const size_t nf = srv_dct_record_floats(&j->params);
    float *recs = malloc((size_t)c->n * nf * sizeof *recs);
    if (!recs)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory"), NULL;
    for (int i = 0; i < c->n; i++) {
        float *rec = recs + (size_t)i * nf;
        if (c->skip[i]) {
            srv_dct_record_skipped(&j->params, rec);
            continue;
        }
        int rc = srv_dct_record_of(&j->params, j->params.quality, &c->jobs[i].result, rec);
        if (rc) {
            free(recs);
            return adj_fail(err, errsz, rc, "the DCT analysis of '%.200s' failed",
                            j->files[c->first + (size_t)i]), NULL;
        }
    }
    return recs;
}

/*
 * Appends the chunk's rows and flushes them (write + fsync), then its
 * errors.log lines, unless the job was canceled meanwhile. 1 written, 0
 * discarded, -1 an error (in err: the real errno, e.g. a full disk). On
 * error rows.csv is cut back to its last complete row (no partial row
 * stays; should even that fail, the next start cuts it off) and rows_len
 * is unchanged, so the rows served never include a partial one.
 */
static int write_chunk(srv_jobs *js, job *j, int fd, const chunk *c, char *err, size_t errsz)
{
    ut_buf rows = {0}, errs = {0};
    int nskip = 0;
    float *dct = j->dct ? dct_records(j, c, err, errsz) : NULL;
    if (j->dct && !dct)
        return -1;
    for (int i = 0; i < c->n; i++) {
        size_t idx = c->first + (size_t)i;
        int truth = j->truth ? j->truth[idx] : -1;
        if (c->skip[i]) {
            srv_rows_format_skipped(&rows, j->files[idx], truth, &j->params);
            ut_buf_printf(&errs, "%s\t%s\n", j->files[idx], c->skip[i]);
            nskip++;
        } else {
            srv_rows_format(&rows, j->files[idx], truth, &c->jobs[i].result);
        }
    }
    int ret = 1;
    if (rows.failed || errs.failed) {
        adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        ret = -1;
        goto out;
    }
    pthread_mutex_lock(&j->io);
    pthread_mutex_lock(&js->lock);
    int canceled = j->cancel;
    uint64_t len0 = j->rows_len;
    pthread_mutex_unlock(&js->lock);
    if (canceled) {
        pthread_mutex_unlock(&j->io);
        ret = 0;
        goto out;
    }
    /* a crash between the two leaves records past the rows: srv_dct_open cuts them */
    if (dct && srv_dct_append(j->dct_fd, dct, (size_t)c->n, &j->params)) {
        adj_fail(err, errsz, ADJ_ERR_IO, "cannot append the DCT records of images %zu..%zu to "
                 "dct.bin: %s", c->first + 1, c->first + (size_t)c->n, strerror(errno));
        pthread_mutex_unlock(&j->io);
        ret = -1;
        goto out;
    }
    if (ut_write_all(fd, rows.s, rows.len) || fsync(fd)) {
        int e = errno;
        const char *cut = "";
        char cutmsg[128] = "";
        if (ftruncate(fd, (off_t)len0) || fsync(fd)) {
            snprintf(cutmsg, sizeof cutmsg, " (and cutting its partial rows off failed: %s; the "
                                            "next start does it)",
                     strerror(errno));
            cut = cutmsg;
        }
        adj_fail(err, errsz, ADJ_ERR_IO,
                 "cannot append the rows of images %zu..%zu to rows.csv: %s; the %zu rows before "
                 "them are kept%s",
                 c->first + 1, c->first + (size_t)c->n, strerror(e), c->first, cut);
        pthread_mutex_unlock(&j->io);
        ret = -1;
        goto out;
    }
    pthread_mutex_lock(&js->lock);
    j->done += (size_t)c->n;
    js->images_evaluated += (uint64_t)c->n;
    j->skipped += (size_t)nskip;
    j->rows_len += rows.len;
    pthread_mutex_unlock(&js->lock);
    if (errs.len)
        append_errors(j, &errs);
    pthread_mutex_unlock(&j->io);
out:
    free(dct);
    ut_buf_free(&rows);
    ut_buf_free(&errs);
    return ret;
}

/*
 * The size of the chunk that starts at image `next`: 1 while the grid is
 * being calibrated, the rest of [0, grid_first), else up to the next grid
 * line (a whole grid_k unless rows.csv was torn mid-chunk), never past the
 * end or over the worker's batch.
 */
static int chunk_size(const srv_jobs *js, const job *j, size_t next)
{
    size_t n;
    if (j->grid_k == 0)
        n = 1;
    else if (next < (size_t)j->grid_first)
        n = (size_t)j->grid_first - next;
    else
        n = (size_t)j->grid_k - (next - (size_t)j->grid_first) % (size_t)j->grid_k;
    if (n > j->total - next)
        n = j->total - next;
    if (n > (size_t)js->o.max_batch)
        n = (size_t)js->o.max_batch;
    return (int)n;
}

/*
 * Decides the grid from a calibration chunk (one image): as many images
 * per chunk as take about --job-batch-ms on the worker, 1..max-batch.
 * 0 when the chunk has no timing (its image could not be read).
 */
static int calibrate(const srv_jobs *js, const chunk *c)
{
    if (c->submitted == 0)
        return 0;
    const srv_task *sj = &c->jobs[0];
    double per = sj->t_finished - sj->t_started;
    int k = per > 0 ? (int)(js->o.batch_ms * 1e-3 / per) : js->o.max_batch;
    return k < 1 ? 1 : k > js->o.max_batch ? js->o.max_batch : k;
}

static int stop_asked(srv_jobs *js, job *j)
{
    pthread_mutex_lock(&js->lock);
    int s = js->stopping || j->cancel;
    pthread_mutex_unlock(&js->lock);
    return s;
}

/*
 * Where the job's images are read from: *root and *dir (the data root and
 * the dataset, or the upload's images/ folder, resolved into upload_dir).
 * 0, or -1 with the reason in err.
 */
static int job_source(const srv_jobs *js, const job *j, const char **root, const char **dir,
                      char upload_dir[PATH_MAX], char *err, size_t errsz)
{
    struct stat sb;
    *root = js->root;
    *dir = j->images_dir;
    if (!j->files) /* only unfinished jobs are queued, and they keep their list */
        return snprintf(err, errsz, "internal error: the job has no file list"), -1;
    if (j->upload) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/images", j->dir);
        *root = *dir = upload_dir;
        if (lstat(p, &sb) == 0 && !S_ISDIR(sb.st_mode))
            return snprintf(err, errsz, "its images/ is not a folder%s",
                            S_ISLNK(sb.st_mode) ? " but a symbolic link (refused)" : ""), -1;
        if (!realpath(p, upload_dir))
            return adj_fail(err, errsz, ADJ_ERR_IO, "its uploaded images are gone: %s",
                            strerror(errno)), -1;
        return 0;
    }
    if (!js->root)
        return snprintf(err, errsz, "server-side datasets are disabled (start advjpgd with "
                                    "--data-root) and this job reads a dataset"), -1;
    if (!srv_path_within(js->root, j->images_dir))
        return snprintf(err, errsz, "its dataset folder is no longer under --data-root %s",
                        js->o.data_root), -1;
    return 0;
}

/*
 * rows.csv opened for appending (*fd), checked to hold what the job wrote
 * and nothing else, with its header written if it is new. 0, or -1 with err.
 */
static int open_rows(srv_jobs *js, job *j, int *fd, char *err, size_t errsz)
{
    char path[PATH_MAX];
    struct stat sb;
    snprintf(path, sizeof path, "%s/rows.csv", j->dir);
    *fd = ut_open_regular(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    pthread_mutex_lock(&js->lock);
    uint64_t have = j->rows_len;
    pthread_mutex_unlock(&js->lock);
    if (*fd < 0)
        return snprintf(err, errsz, "cannot open rows.csv: %s", srv_js_file_strerror(errno)), -1;
    if (fstat(*fd, &sb) == 0 && (uint64_t)sb.st_size != have)
        /* rows are appended only here: anything else is not ours */
        return snprintf(err, errsz, "rows.csv was changed behind the daemon's back (%llu bytes, "
                                    "want %llu)",
                        (unsigned long long)sb.st_size, (unsigned long long)have), -1;
    if (have)
        return 0;
    char *header = srv_rows_header(&j->params);
    int rc = 0;
    if (!header || ut_write_all(*fd, header, strlen(header)) || fsync(*fd)) {
        rc = -1;
        snprintf(err, errsz, "cannot write rows.csv: %s", header ? strerror(errno) : "out of memory");
    } else {
        pthread_mutex_lock(&js->lock);
        j->rows_len = strlen(header);
        pthread_mutex_unlock(&js->lock);
    }
    free(header);
    return rc;
}

/* Sets the chunk grid to k images from first on, saved before any row of it exists. */
static int set_grid(srv_jobs *js, job *j, int k, int first, char *err, size_t errsz)
{
    j->grid_k = k;
    j->grid_first = first;
    pthread_mutex_lock(&js->lock);
    j->batch = k ? k : 1;
    pthread_mutex_unlock(&js->lock);
    return k ? srv_js_save_grid(j, err, errsz) : 0;
}

/* A chunk of the ring whose gradient pass is back and whose variants are
 * not built yet, or NULL. js->lock held. */
static chunk *gradient_back(chunk *ring, int head, int inflight)
{
    for (int i = 0; i < inflight; i++) {
        chunk *c = &ring[(head + i) % MAX_INFLIGHT];
        if (c->pipe && c->stage == CH_GRADIENT && c->pending == 0)
            return c;
    }
    return NULL;
}

/*
 * Waits until chunk c (the ring's head) has no worker job left, building
 * meanwhile the variants of every chunk whose gradient pass comes back (c's
 * and the next one's), so that the worker always has the next passes
 * queued. 0, or -1 with err.
 */
static int wait_chunk(srv_jobs *js, job *j, chunk *ring, int head, int inflight, chunk *c,
                      char *err, size_t errsz)
{
    for (;;) {
        pthread_mutex_lock(&js->lock);
        chunk *ready;
        while (!(ready = gradient_back(ring, head, inflight)) && c->pending > 0)
            pthread_cond_wait(&js->cond, &js->lock);
        pthread_mutex_unlock(&js->lock);
        if (!ready)
            return 0;
        if (submit_forwards(js, j, ready, err, errsz))
            return -1;
    }
}

/* The oldest chunk in flight is done: checked, the grid calibrated, its rows
 * written. 0, 1 when the worker refused a pass (shutting down: the chunk's
 * rows are not written), or -1 with err. */
static int finish_chunk(srv_jobs *js, job *j, int fd, chunk *ring, int head, int inflight,
                        char *err, size_t errsz)
{
    chunk *c = &ring[head];
    if (wait_chunk(js, j, ring, head, inflight, c, err, errsz))
        return -1;
    if (c->refused)
        return 1;
    if (c->pipe && c->stage == CH_FORWARD)
        collect_forwards(js, j, c);
    for (int i = 0; i < c->n; i++)
        if (!c->skip[i] && c->jobs[i].status != SRV_TASK_OK)
            return snprintf(err, errsz, "the engine failed on '%.200s': %s",
                            j->files[c->first + (size_t)i], c->jobs[i].err), -1;
    int k;
    if (j->grid_k == 0 && (k = calibrate(js, c)) > 0 &&
        set_grid(js, j, k, (int)(c->first + (size_t)c->n), err, errsz))
        return -1;
    const double t0 = cpu_now();
    int wr = write_chunk(js, j, fd, c, err, errsz);
    add_cpu(js, SRV_JOB_STAGE_ROWS, t0);
    return wr < 0 ? -1 : 0;
}

/*
 * The job's images from j->done on, in chunks of the grid, at most
 * MAX_INFLIGHT chunks on the worker at once (one while calibrating), until
 * the last, a failure, a cancel or the shutdown. 0, or -1 with err.
 */
static int run_chunks(srv_jobs *js, job *j, const char *root, const char *dir, int fd,
                      char *err, size_t errsz)
{
    chunk ring[MAX_INFLIGHT];
    memset(ring, 0, sizeof ring);
    size_t next = j->done;
    int head = 0, inflight = 0, failed = 0, refused = 0;
    for (;;) {
        while (!failed && !refused && inflight < MAX_INFLIGHT && next < j->total &&
               !stop_asked(js, j) && !(j->grid_k == 0 && inflight > 0)) {
            chunk *c = &ring[(head + inflight) % MAX_INFLIGHT];
            int n = chunk_size(js, j, next);
            if (start_chunk(js, j, root, dir, c, next, n, err, errsz)) {
                chunk_free(c);
                failed = 1;
                break;
            }
            if (c->refused) { /* shutting down: these images stay undone */
                chunk_free(c);
                break;
            }
            next += (size_t)n;
            inflight++;
        }
        if (inflight == 0)
            break;
        chunk *c = &ring[head];
        int fin = failed || refused ? 0 : finish_chunk(js, j, fd, ring, head, inflight, err, errsz);
        failed |= fin < 0;
        refused |= fin > 0; /* shutting down: no later chunk's rows either (rows stay contiguous) */
        if (failed || refused) { /* the rest still has to come back from the worker */
            pthread_mutex_lock(&js->lock);
            while (c->pending > 0)
                pthread_cond_wait(&js->cond, &js->lock);
            pthread_mutex_unlock(&js->lock);
        }
        chunk_free(c);
        head = (head + 1) % MAX_INFLIGHT;
        inflight--;
    }
    return failed ? -1 : 0;
}

/* The job's outcome: its state, status.json, the log line; the file list freed if final. */
static void finish_job(srv_jobs *js, job *j, int failed, const char *err)
{
    pthread_mutex_lock(&j->io);
    pthread_mutex_lock(&js->lock);
    int final = 1, canceled = j->cancel;
    double rate = srv_js_job_rate(j);
    if (rate > 0)
        j->rate = rate;
    if (canceled) {
        /* srv_jobs_cancel made it final already */
    } else if (failed) {
        j->state = JS_FAILED;
        snprintf(j->error, sizeof j->error, "%s", err);
        srv_js_iso_now(j->finished);
    } else if (j->done == j->total) {
        j->state = JS_DONE;
        srv_js_iso_now(j->finished);
    } else {
        j->state = JS_QUEUED; /* stopped by the shutdown: resumes at the next start */
        final = 0;
    }
    job_state st = j->state;
    size_t done = j->done, total = j->total;
    pthread_mutex_unlock(&js->lock);
    char serr[ADJ_ERRLEN];
    if (final && !canceled && srv_js_save_status(js, j, serr, sizeof serr) && st == JS_FAILED) {
        /* a full disk: the state cannot be kept, and the next start resumes the job */
        pthread_mutex_lock(&js->lock);
        size_t el = strlen(j->error);
        snprintf(j->error + el, sizeof j->error - el,
                 "; its status could not be saved either (%s), so it resumes at the next start",
                 serr);
        pthread_mutex_unlock(&js->lock);
    }
    pthread_mutex_unlock(&j->io);

    if (st == JS_DONE)
        srv_js_log(j->id, "done: %zu images, %.2f images/s", total, rate);
    else if (st == JS_FAILED)
        srv_js_log(j->id, "failed after %zu of %zu images: %s", done, total, err);
    else if (st == JS_CANCELED)
        srv_js_log(j->id, "canceled after %zu of %zu images", done, total);
    else
        srv_js_log(j->id, "stopped after %zu of %zu images; it resumes at the next start", done,
                   total);
    if (final)
        srv_js_drop_files(j);
}

static void run_job(srv_jobs *js, job *j)
{
    char err[ADJ_ERRLEN] = "", upload_dir[PATH_MAX];
    const char *root, *dir;
    int fd = -1;
    int failed = job_source(js, j, &root, &dir, upload_dir, err, sizeof err) ||
                 open_rows(js, j, &fd, err, sizeof err);
    j->dct_fd = -1;
    if (!failed && j->dct) /* cut back to the rows: a resumed job adds what a one-shot one does */
        failed = srv_dct_open(j->dir, &j->params, j->params.quality, j->done, &j->dct_fd, err,
                              sizeof err) != 0;
    /* The chunk grid: fixed by --job-batch, or for FGSM full passes of
     * --max-batch (the worker runs a chunk pass by pass), or calibrated by a
     * first chunk of one image; kept in chunk.json for the job's whole life. */
    const int fgsm = j->params.attack.kind == EXP_FGSM;
    const int grid = js->o.batch > 0 ? js->o.batch : fgsm ? js->o.max_batch : 0;
    if (!failed && j->grid_k == 0 && grid > 0)
        failed = set_grid(js, j, grid < js->o.max_batch ? grid : js->o.max_batch, (int)j->done,
                          err, sizeof err) != 0;
    else {
        pthread_mutex_lock(&js->lock);
        j->batch = j->grid_k ? j->grid_k : 1;
        pthread_mutex_unlock(&js->lock);
    }
    if (!failed)
        failed = run_chunks(js, j, root, dir, fd, err, sizeof err) != 0;
    if (fd >= 0)
        close(fd);
    if (j->dct_fd >= 0)
        close(j->dct_fd);
    finish_job(js, j, failed, err);
}

void *srv_js_runner_main(void *arg)
{
    srv_jobs *js = arg;
    pthread_mutex_lock(&js->lock);
    while (!js->stopping) {
        job *j = js->head;
        while (j && j->state != JS_QUEUED)
            j = j->next;
        if (!j) {
            pthread_cond_wait(&js->cond, &js->lock);
            continue;
        }
        j->state = JS_RUNNING;
        srv_js_iso_now(j->started);
        j->t0 = ut_now();
        j->done0 = j->done;
        pthread_mutex_unlock(&js->lock);
        srv_js_log(j->id, "running: %zu images, %zu done", j->total, j->done);
        run_job(js, j);
        pthread_mutex_lock(&js->lock);
    }
    pthread_mutex_unlock(&js->lock);
    return NULL;
}
