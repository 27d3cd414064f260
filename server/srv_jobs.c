#include "srv_jobs_int.h"

#include "srv_dct.h"

/* ---------------------------------------------------------------- the folder's lock */

/*
 * Whether the jobs folder may be used: a folder (made, with its parents,
 * when create), owned by this daemon's user, that no one else can write
 * (others could plant links or edit the rows), and that this daemon can
 * write. 1 yes; 0 it does not exist (and !create); -1 no, why says so with
 * the real errno.
 */
static int check_folder(const char *dir, int create, char *why, size_t whysz)
{
    struct stat st;
    if (create && ut_mkdir_p(dir, 0700, NULL, 0)) {
        adj_fail(why, whysz, ADJ_ERR_IO, "cannot create the jobs folder %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    if (stat(dir, &st)) {
        if (errno == ENOENT && !create)
            return 0;
        adj_fail(why, whysz, ADJ_ERR_IO, "cannot use the jobs folder %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        adj_fail(why, whysz, ADJ_ERR_IO, "cannot use the jobs folder %s: it is not a folder", dir);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        adj_fail(why, whysz, ADJ_ERR_IO,
                 "cannot use the jobs folder %s: it belongs to uid %ld, not to this daemon's uid %ld",
                 dir, (long)st.st_uid, (long)geteuid());
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        adj_fail(why, whysz, ADJ_ERR_IO,
                 "cannot use the jobs folder %s: others can write it (mode %04o); make it private "
                 "(chmod 700)",
                 dir, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    if (access(dir, R_OK | W_OK | X_OK)) {
        adj_fail(why, whysz, ADJ_ERR_IO, "cannot use the jobs folder %s: it is not writable: %s",
                 dir, strerror(errno));
        return -1;
    }
    return 1;
}

/*
 * Makes this daemon the user of the jobs folder, if it is not yet: checks
 * the folder (check_folder), takes jobs_dir/.lock (flock, held until the
 * store is freed, with our pid in it) so that two daemons never run the
 * jobs of one folder, then loads the folder's jobs, once. Nothing is cached
 * when it fails: every call tries again, so jobs come back once the other
 * daemon is gone or the folder is fixed. Returns 1 when the folder is
 * ours; 0 when it does not exist yet (and !create: js->unavailable is ""),
 * or when it cannot be used: then js->unavailable says why (the other
 * daemon's pid when it is one). *rc (may be NULL) gets ADJ_ERR_NOMEM when
 * loading ran out of memory, else ADJ_OK. Call without js->lock.
 */
static int claim_folder(srv_jobs *js, int create, int *rc)
{
    if (rc)
        *rc = ADJ_OK;
    pthread_mutex_lock(&js->claim);
    if (js->lock_fd >= 0) {
        pthread_mutex_unlock(&js->claim);
        return 1;
    }
    char why[ADJ_ERRLEN] = "";
    int fd = -1, ok = check_folder(js->jobs_dir, create, why, sizeof why);
    if (ok > 0) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/.lock", js->jobs_dir);
        fd = ut_open_regular(path, O_RDWR | O_CREAT, 0600);
        if (fd < 0) {
            adj_fail(why, sizeof why, ADJ_ERR_IO, "cannot use the jobs folder %s: cannot open %s: %s",
                     js->jobs_dir, path, srv_js_file_strerror(errno));
            ok = -1;
        } else if (flock(fd, LOCK_EX | LOCK_NB)) {
            char pid[32] = "";
            ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            adj_fail(why, sizeof why, ADJ_ERR_STATE,
                     "the jobs folder %s is in use by another advjpgd%s%s%s (give this one its own "
                     "--jobs-dir)",
                     js->jobs_dir, *pid ? " (pid " : "", pid, *pid ? ")" : "");
            close(fd);
            fd = -1;
            ok = -1;
        } else {
            char text[32];
            int len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)len, 0) < 0) {
                /* the pid is only informative */
            }
            size_t n = 0;
            char msg[ADJ_ERRLEN];
            int lrc = srv_js_load_all(js, &n, msg, sizeof msg);
            if (lrc) {
                if (rc && lrc == ADJ_ERR_NOMEM)
                    *rc = lrc;
                adj_fail(why, sizeof why, lrc, "cannot use the jobs folder %s: %s", js->jobs_dir,
                         msg);
                close(fd);
                fd = -1;
                ok = -1;
            } else if (js->was_unavailable) {
                fprintf(stderr, "advjpgd: the jobs folder %s is usable now: %zu jobs loaded\n",
                        js->jobs_dir, n);
            }
        }
    }
    pthread_mutex_lock(&js->lock);
    js->lock_fd = fd;
    snprintf(js->unavailable, sizeof js->unavailable, "%s", ok < 0 ? why : "");
    pthread_mutex_unlock(&js->lock);
    if (ok < 0)
        js->was_unavailable = 1;
    pthread_mutex_unlock(&js->claim);
    return ok > 0;
}

/* ---------------------------------------------------------------- API */

int srv_js_alloc(const srv_jobs_opts *o, const model_spec *spec, srv_jobs **out, char *err,
                 size_t errsz)
{
    srv_jobs *js = calloc(1, sizeof *js);
    if (!js)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    js->o = *o;
    js->lock_fd = -1;
    if (js->o.max_batch < 1)
        js->o.max_batch = 1;
    if (js->o.batch_ms < 1)
        js->o.batch_ms = 250;
    js->spec = spec;
    pthread_mutex_init(&js->lock, NULL);
    pthread_mutex_init(&js->claim, NULL);
    pthread_cond_init(&js->cond, NULL);
    int rc = ADJ_OK;
    if (!(js->jobs_dir = strdup(o->jobs_dir))) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    } else if (o->data_root) {
        char real[PATH_MAX];
        if (!realpath(o->data_root, real))
            rc = adj_fail(err, errsz, ADJ_ERR_IO, "--data-root %s: %s", o->data_root,
                          strerror(errno));
        else if (!(js->root = strdup(real)))
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    if (rc) {
        srv_jobs_free(js);
        return rc;
    }
    *out = js;
    return ADJ_OK;
}

int srv_jobs_new(const srv_jobs_opts *o, const model *m, srv_worker *w, srv_jobs **out,
                 char *err, size_t errsz)
{
    srv_jobs *js;
    int rc = srv_js_alloc(o, model_get_spec(m), &js, err, errsz);
    if (rc)
        return rc;
    js->m = m;
    js->w = w;
    /* a folder that does not exist is made with the first job */
    if (!claim_folder(js, 0, &rc) && js->unavailable[0]) {
        if (rc) {
            adj_fail(err, errsz, rc, "%s", js->unavailable);
            goto fail;
        }
        fprintf(stderr, "advjpgd: error: evaluation jobs are unavailable (tried again at each "
                        "request): %s\n",
                js->unavailable);
    }
    if (pthread_create(&js->runner, NULL, srv_js_runner_main, js)) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot start the job-runner thread");
        goto fail;
    }
    js->runner_started = 1;
    *out = js;
    return ADJ_OK;
fail:
    srv_jobs_free(js);
    return rc;
}

void srv_jobs_stop(srv_jobs *js)
{
    if (!js)
        return;
    pthread_mutex_lock(&js->lock);
    js->stopping = 1;
    pthread_cond_broadcast(&js->cond);
    pthread_mutex_unlock(&js->lock);
    if (js->runner_started) {
        pthread_join(js->runner, NULL);
        js->runner_started = 0;
    }
}

void srv_jobs_free(srv_jobs *js)
{
    if (!js)
        return;
    srv_jobs_stop(js);
    for (job *j = js->head, *next; j; j = next) {
        next = j->next;
        srv_js_job_free(j);
    }
    if (js->lock_fd >= 0)
        close(js->lock_fd); /* releases the folder */
    pthread_cond_destroy(&js->cond);
    pthread_mutex_destroy(&js->claim);
    pthread_mutex_destroy(&js->lock);
    free(js->jobs_dir);
    free(js->root);
    free(js);
}

/* The normalised request (request.json) of a new job. */
json_t *srv_js_request_json(const srv_jobs *js, const char *id, const srv_eval_request *rq,
                            const srv_eval_set *set, int64_t created_ms, const char *created)
{
    json_t *o = json_object(), *eps = json_array(), *files = json_array();
    json_t *truth = set->truth ? json_array() : json_null();
    int bad = !o || !eps || !files || !truth;
    for (int i = 0; !bad && i < rq->params.n_eps; i++)
        bad |= json_array_append_new(eps, json_integer(rq->params.eps[i])) != 0;
    for (size_t i = 0; !bad && i < set->n; i++) {
        bad |= json_array_append_new(files, json_string(set->files[i])) != 0;
        if (set->truth)
            bad |= json_array_append_new(truth, json_integer(set->truth[i])) != 0;
    }
    if (bad || !o) {
        json_decref(o);
        json_decref(eps);
        json_decref(files);
        json_decref(truth);
        return NULL;
    }
#define PUT(k, v) (bad |= json_object_set_new(o, (k), (v)) != 0)
    PUT("id", json_string(id));
    PUT("created", json_string(created));
    PUT("created_ms", json_integer(created_ms));
    PUT("model", json_pack("{s:s,s:i,s:i,s:i,s:s}", "name", js->spec->name, "classes",
                           js->spec->classes, "input_size", js->spec->input_size, "scale_size",
                           js->spec->scale_size, "weights_sha256", model_weights_sha256(js->m)));
    PUT("advjpg_version", json_string(ADVJPG_VERSION));
    PUT("upload", json_boolean(rq->dataset == NULL));
    PUT("dataset", rq->dataset ? json_string(rq->dataset) : json_null());
    PUT("images_dir", set->dir ? json_string(set->dir) : json_null());
    PUT("ground_truth", rq->ground_truth ? json_string(rq->ground_truth) : json_null());
    PUT("labels", set->labels_from && !rq->ground_truth ? json_string(set->labels_from)
                                                          : json_null());
    PUT("eps", eps);
    PUT("quality", srv_json_quality(&rq->params));
    PUT("attack", srv_js_attack_json(&rq->params));
    bad |= srv_json_put_threat_model(o, &rq->params) != 0;
    PUT("seed", srv_js_seed_json(rq->seed));
    PUT("offset", json_integer(rq->offset));
    PUT("limit", rq->limit >= 0 ? json_integer(rq->limit) : json_null());
    PUT("dct", json_boolean(rq->dct));
    PUT("shard", json_pack("{s:i,s:i}", "index", rq->shard_index, "count", rq->shard_count));
    PUT("images_in_folder", json_integer((json_int_t)set->n_folder));
    PUT("total", json_integer((json_int_t)set->n));
    PUT("files", files);
    PUT("truth", truth);
#undef PUT
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Writes the uploaded images into dir/images, copied from the request's
 * spool file a buffer at a time (an upload is never whole in memory). */
static int store_uploads(const char *dir, const srv_eval_request *rq, char *err, size_t errsz)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/images", dir);
    if (mkdir(path, 0700))
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    for (int i = 0; i < rq->n_uploads; i++) {
        const srv_upload *u = &rq->uploads[i];
        char file[PATH_MAX];
        if ((size_t)snprintf(file, sizeof file, "%s/%s", path, u->name) >= sizeof file)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "file name too long");
        int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return adj_fail(err, errsz, ADJ_ERR_IO, "cannot write %s: %s", file, strerror(errno));
        char msg[ADJ_ERRLEN];
        int rc = srv_upload_copy(rq, u, fd, msg, sizeof msg);
        if (!rc && fsync(fd))
            rc = adj_fail(msg, sizeof msg, ADJ_ERR_IO, "%s", strerror(errno));
        close(fd);
        if (rc)
            return adj_fail(err, errsz, ADJ_ERR_IO, "cannot write %s: %s", file, msg);
    }
    ut_fsync_dir(path);
    return ADJ_OK;
}

/* A new id and its folder tmp (jobs_dir/.new-ID), whose final name is final_dir. */
static int new_job_folder(srv_jobs *js, char id[SRV_JOB_ID_LEN + 1], char tmp[PATH_MAX],
                          char final_dir[PATH_MAX], char *err, size_t errsz)
{
    for (int tries = 0;; tries++) {
        if (srv_js_new_id(id))
            return adj_fail(err, errsz, ADJ_ERR_IO, "no random numbers: %s", strerror(errno));
        snprintf(tmp, PATH_MAX, "%s/.new-%s", js->jobs_dir, id);
        snprintf(final_dir, PATH_MAX, "%s/%s", js->jobs_dir, id);
        struct stat sb;
        int taken = lstat(final_dir, &sb) == 0;
        if (!taken && mkdir(tmp, 0700) == 0)
            return ADJ_OK;
        int e = taken ? EEXIST : errno; /* mkdir's errno, not a later call's */
        if (e != EEXIST || tries > 100)
            return adj_fail(err, errsz, ADJ_ERR_IO, "cannot create a job folder in %s: %s",
                            js->jobs_dir, strerror(e));
    }
}

/* request.json (text) and the header of rows.csv (*header_len bytes) into tmp. */
static int write_job_files(const char *tmp, const char *text, const exp_params *p,
                           size_t *header_len, char *err, size_t errsz)
{
    int rc = ut_write_atomic(tmp, "request.json", text, strlen(text), 0600, err, errsz);
    if (rc)
        return rc;
    char *header = srv_rows_header(p);
    if (!header)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    *header_len = strlen(header);
    rc = ut_write_atomic(tmp, "rows.csv", header, *header_len, 0600, err, errsz);
    free(header);
    return rc;
}

/* The job in memory (new), taking set's lists and req (without "files" and "truth"). */
static job *job_of_request(const srv_jobs *js, const char *id, const char *dir,
                           const srv_eval_request *rq, srv_eval_set *set, json_t *req,
                           int64_t cms, size_t header_len)
{
    job *j = srv_js_job_alloc();
    if (!j || !(j->dir = strdup(dir))) {
        srv_js_job_free(j);
        return NULL;
    }
    snprintf(j->id, sizeof j->id, "%.*s", SRV_JOB_ID_LEN, id);
    j->params = rq->params;
    j->seed = rq->seed;
    j->classes = js->spec->classes;
    j->has_truth = set->truth != NULL;
    j->upload = rq->dataset == NULL;
    j->dct = rq->dct;
    j->total = set->n;
    j->created_ms = cms;
    j->rows_len = header_len;
    j->files = set->files;
    j->truth = set->truth;
    j->images_dir = set->dir;
    set->files = NULL;
    set->truth = NULL;
    set->dir = NULL;
    json_object_del(req, "files");
    json_object_del(req, "truth");
    j->info = json_incref(req);
    j->state = JS_QUEUED;
    return j;
}

/* Appends j to the queue and wakes the runner. */
void srv_js_enqueue(srv_jobs *js, job *j)
{
    pthread_mutex_lock(&js->lock);
    job **tail = &js->head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
    pthread_cond_broadcast(&js->cond);
    pthread_mutex_unlock(&js->lock);
}

/* The job's folder filled in tmp, then renamed final_dir; *out the job, in memory before. */
int srv_js_create_job(srv_jobs *js, srv_eval_request *rq, srv_eval_set *set, const char *id,
                      const char *tmp, const char *final_dir, job **out, char *err, size_t errsz)
{
    char created[32];
    int64_t cms = ut_wall_ms();
    srv_js_iso_now(created);
    int rc;
    if (!rq->dataset && (rc = store_uploads(tmp, rq, err, errsz)))
        return rc;
    json_t *req = srv_js_request_json(js, id, rq, set, cms, created);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    size_t header_len = 0;
    if (!text)
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    else if (!(rc = write_job_files(tmp, text, &rq->params, &header_len, err, errsz)) &&
             !(*out = job_of_request(js, id, final_dir, rq, set, req, cms, header_len)))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    free(text);
    json_decref(req);
    if (!rc && rename(tmp, final_dir))
        rc = adj_fail(err, errsz, ADJ_ERR_IO, "cannot create %s: %s", final_dir, strerror(errno));
    return rc;
}

int srv_jobs_create(srv_jobs *js, srv_eval_request *rq, char id[SRV_JOB_ID_LEN + 1],
                    char *err, size_t errsz)
{
    pthread_mutex_lock(&js->lock);
    int stopping = js->stopping;
    pthread_mutex_unlock(&js->lock);
    if (stopping)
        return adj_fail(err, errsz, ADJ_ERR_BUSY, "shutting down");
    int rc = exp_params_check(&rq->params, err, errsz);
    if (rc)
        return rc == ADJ_ERR_NOMEM ? rc : ADJ_ERR_ARG;
    srv_eval_set set;
    rc = rq->dataset ? srv_eval_resolve(js->root, rq, model_get_classes(js->m), &set, err, errsz)
                     : srv_eval_uploads(rq, js->spec->classes, &set, err, errsz);
    if (rc) /* the request names something wrong (a folder, a file, a label) */
        return rc == ADJ_ERR_NOMEM ? rc : ADJ_ERR_ARG;
    char tmp[PATH_MAX], final_dir[PATH_MAX];
    job *j = NULL;
    if (!claim_folder(js, 1, NULL)) {
        pthread_mutex_lock(&js->lock);
        rc = adj_fail(err, errsz, ADJ_ERR_STATE, "%s", js->unavailable);
        pthread_mutex_unlock(&js->lock);
    } else if (!(rc = new_job_folder(js, id, tmp, final_dir, err, errsz))) {
        rc = srv_js_create_job(js, rq, &set, id, tmp, final_dir, &j, err, errsz);
        if (rc)
            ut_rmtree(tmp, NULL, 0);
    }
    if (!rc) {
        ut_fsync_dir(js->jobs_dir);
        srv_js_enqueue(js, j);
        srv_js_log(id, "queued: %zu images from %s%s", j->total,
                   rq->dataset ? "dataset " : "an upload", rq->dataset ? rq->dataset : "");
        j = NULL;
    }
    srv_js_job_free(j);
    srv_eval_set_free(&set);
    return rc;
}

int srv_jobs_unavailable(srv_jobs *js, char *msg, size_t msgsz)
{
    pthread_mutex_lock(&js->lock);
    int retry = js->unavailable[0] != '\0' && !js->stopping;
    pthread_mutex_unlock(&js->lock);
    if (retry)
        claim_folder(js, 0, NULL);
    pthread_mutex_lock(&js->lock);
    int un = js->unavailable[0] != '\0';
    if (un)
        snprintf(msg, msgsz, "%s", js->unavailable);
    pthread_mutex_unlock(&js->lock);
    return un;
}

int srv_jobs_status(srv_jobs *js, const char *id, json_t **out)
{
    pthread_mutex_lock(&js->lock);
    job *j = srv_js_find(js, id);
    json_t *o = j ? srv_js_job_json(j) : NULL;
    pthread_mutex_unlock(&js->lock);
    if (!j)
        return ADJ_ERR_NOTFOUND;
    if (!o)
        return ADJ_ERR_NOMEM;
    *out = o;
    return ADJ_OK;
}

json_t *srv_jobs_list(srv_jobs *js, const char *status)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    pthread_mutex_lock(&js->lock);
    int bad = 0;
    for (job *j = js->head; j && !bad; j = j->next)
        if (!j->deleted && (!status || !*status || strcmp(status, srv_js_state_names[j->state]) == 0))
            bad = json_array_append_new(arr, srv_js_job_json(j)) != 0;
    pthread_mutex_unlock(&js->lock);
    json_t *o = bad ? NULL : json_pack("{s:o}", "jobs", arr);
    if (!o && bad)
        json_decref(arr);
    return o;
}

int srv_jobs_cancel(srv_jobs *js, const char *id, json_t **out)
{
    pthread_mutex_lock(&js->lock);
    job *j = srv_js_find(js, id); /* jobs are never freed before the store */
    pthread_mutex_unlock(&js->lock);
    if (!j)
        return ADJ_ERR_NOTFOUND;
    pthread_mutex_lock(&j->io);
    pthread_mutex_lock(&js->lock);
    int changed = 0;
    if (j->state == JS_QUEUED || j->state == JS_RUNNING) {
        double rate = srv_js_job_rate(j);
        if (rate > 0)
            j->rate = rate;
        j->cancel = 1;
        j->state = JS_CANCELED;
        srv_js_iso_now(j->finished);
        changed = 1;
        pthread_cond_broadcast(&js->cond);
    }
    size_t done = j->done, total = j->total;
    pthread_mutex_unlock(&js->lock);
    char serr[ADJ_ERRLEN];
    if (changed && srv_js_save_status(js, j, serr, sizeof serr)) {
        /* a full disk: the cancellation is not kept, and the next start resumes the job */
        pthread_mutex_lock(&js->lock);
        snprintf(j->error, sizeof j->error,
                 "canceled, but that could not be saved (%.400s), so it resumes at the next start",
                 serr);
        pthread_mutex_unlock(&js->lock);
    }
    if (changed)
        srv_js_log(j->id, "canceled at %zu of %zu images", done, total);
    pthread_mutex_unlock(&j->io);
    return srv_jobs_status(js, id, out);
}

int srv_jobs_delete(srv_jobs *js, const char *id, json_t **out)
{
    pthread_mutex_lock(&js->lock);
    job *j = srv_js_find(js, id);
    pthread_mutex_unlock(&js->lock);
    if (!j)
        return ADJ_ERR_NOTFOUND;
    pthread_mutex_lock(&j->io);
    pthread_mutex_lock(&js->lock);
    int rc = j->deleted                                         ? ADJ_ERR_NOTFOUND
             : j->state == JS_QUEUED || j->state == JS_RUNNING ? ADJ_ERR_CONFLICT
                                                               : ADJ_OK;
    pthread_mutex_unlock(&js->lock);
    char err[ADJ_ERRLEN];
    if (rc == ADJ_OK && (rc = ut_rmtree(j->dir, err, sizeof err)) != ADJ_OK)
        srv_js_log(j->id, "not deleted: %s", err);
    if (rc == ADJ_OK) {
        pthread_mutex_lock(&js->lock);
        j->deleted = 1;
        pthread_mutex_unlock(&js->lock);
        srv_js_log(j->id, "deleted");
    }
    pthread_mutex_unlock(&j->io);
    if (rc == ADJ_OK && !(*out = json_pack("{s:s,s:b}", "id", id, "deleted", 1)))
        return ADJ_ERR_NOMEM;
    return rc;
}

int srv_jobs_counts(srv_jobs *js, const char *const **names, size_t *counts, int max,
                    uint64_t *images)
{
    const int n = JS_STATE_COUNT < max ? JS_STATE_COUNT : max;
    memset(counts, 0, (size_t)n * sizeof *counts);
    pthread_mutex_lock(&js->lock);
    for (job *j = js->head; j; j = j->next)
        if (!j->deleted && (int)j->state < n)
            counts[j->state]++;
    *images = js->images_evaluated;
    pthread_mutex_unlock(&js->lock);
    *names = srv_js_state_names;
    return n;
}

void srv_jobs_cpu_seconds(srv_jobs *js, double seconds[SRV_JOB_STAGE_COUNT])
{
    pthread_mutex_lock(&js->lock);
    memcpy(seconds, js->cpu_seconds, sizeof js->cpu_seconds);
    pthread_mutex_unlock(&js->lock);
}

/* What reading a job's rows needs, copied under the lock. */
typedef struct {
    char dir[PATH_MAX];
    uint64_t rows_len;
    exp_params params;
    uint64_t seed;
    int classes, has_truth;
    job_state state;
    size_t total;
    json_t *info; /* borrowed: immutable and as long-lived as the store */
    char error[ADJ_ERRLEN];
    size_t done;  /* images with rows (and, with dct, records) */
    int dct;
} snapshot;

static int take_snapshot(srv_jobs *js, const char *id, snapshot *s)
{
    pthread_mutex_lock(&js->lock);
    job *j = srv_js_find(js, id);
    if (j) {
        snprintf(s->dir, sizeof s->dir, "%s", j->dir);
        s->rows_len = j->rows_len;
        s->params = j->params;
        s->seed = j->seed;
        s->classes = j->classes;
        s->has_truth = j->has_truth;
        s->state = j->state;
        s->total = j->total;
        s->info = j->info;
        snprintf(s->error, sizeof s->error, "%s", j->error);
        s->done = j->done;
        s->dct = j->dct;
    }
    pthread_mutex_unlock(&js->lock);
    return j ? ADJ_OK : ADJ_ERR_NOTFOUND;
}

/*
 * Opens the job's rows.csv for reading (never through a link) and checks
 * that it still holds the rows_len bytes of valid rows the job knows of: a
 * job without a valid header (damaged rows.csv, unreadable request) has no
 * rows to serve, and its error says why. New fd, or ADJ_ERR_IO with err.
 */
static int open_rows(const snapshot *s, const char *id, char *err, size_t errsz)
{
    if (s->rows_len == 0)
        return adj_fail(err, errsz, ADJ_ERR_IO, "job %s has no readable rows: %.400s", id,
                        s->error[0] ? s->error : "rows.csv has no header");
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/rows.csv", s->dir);
    int fd = ut_open_regular(path, O_RDONLY, 0);
    if (fd < 0)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot read the rows of job %s: %s", id,
                        srv_js_file_strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || (uint64_t)st.st_size < s->rows_len) {
        close(fd);
        return adj_fail(err, errsz, ADJ_ERR_IO,
                        "the rows of job %s were changed behind the daemon's back: rows.csv is "
                        "shorter than its %llu bytes of rows",
                        id, (unsigned long long)s->rows_len);
    }
    return fd;
}

/* The first rows_len bytes of rows.csv, parsed (all of them valid, else ADJ_ERR_IO). */
static int read_rows(const snapshot *s, const char *id, srv_rows *rows, char *err, size_t errsz)
{
    int fd = open_rows(s, id, err, errsz);
    if (fd < 0)
        return fd;
    size_t len = 0;
    char *text = NULL;
    if (ut_read_fd(fd, (size_t)1 << 40, &text, &len, NULL, 0))
        text = NULL;
    int e = errno;
    close(fd);
    if (!text)
        return adj_fail(err, errsz, e == ENOMEM ? ADJ_ERR_NOMEM : ADJ_ERR_IO,
                        "cannot read the rows of job %s: %s", id, strerror(e));
    if (len > s->rows_len)
        len = (size_t)s->rows_len; /* rows being appended right now */
    srv_rows_check chk = {&s->params, s->classes, SIZE_MAX, NULL, NULL, 0};
    size_t valid = 0;
    char why[ADJ_ERRLEN];
    int rc = srv_rows_parse(text, len, &chk, rows, &valid, why, sizeof why);
    free(text);
    if (rc)
        return adj_fail(err, errsz, rc, "out of memory");
    if (valid != s->rows_len) {
        srv_rows_free(rows);
        return adj_fail(err, errsz, ADJ_ERR_IO,
                        "the rows of job %s were changed behind the daemon's back: %s", id, why);
    }
    return ADJ_OK;
}

/* The job's provenance from its request: the version and model that made it
 * and every parameter (request.json's fields but the bookkeeping ones). */
static json_t *job_provenance(const json_t *info)
{
    static const char *const not_params[] = {"id", "created", "created_ms", "model",
                                             "advjpg_version", "images_dir", "images_in_folder",
                                             "total"};
    json_t *params = json_deep_copy(info);
    for (size_t i = 0; params && i < sizeof not_params / sizeof not_params[0]; i++)
        json_object_del(params, not_params[i]);
    const json_t *model = json_object_get(info, "model"), *v = json_object_get(info, "advjpg_version");
    const json_t *sha = json_object_get(model, "weights_sha256");
    return params ? json_pack("{s:O,s:O,s:O,s:o}", "advjpg_version", v ? v : json_null(), "model",
                              json_object_get(model, "name"), "weights_sha256",
                              sha ? sha : json_null(), "parameters", params)
                  : NULL;
}

/* The result's statistics: intervals on the table, the paired tests, the provenance. */
static int result_stats(json_t *o, json_t *table, const srv_rows *rows, const snapshot *s)
{
    if (srv_rows_add_intervals(table, rows, s->has_truth, s->seed))
        return ADJ_ERR_NOMEM;
    json_t *tests = srv_rows_tests(rows, &s->params, s->has_truth), *prov = job_provenance(s->info);
    if (!tests || !prov || json_object_set_new(o, "tests", tests) ||
        json_object_set_new(o, "provenance", prov))
        return ADJ_ERR_NOMEM;
    return ADJ_OK;
}

/*
 * A done job's result does not change: it is kept (a copy) the first time it
 * is made, for the rows_len it was made of. cached_result gives a new copy of
 * it or NULL; keep_result stores a copy of o.
 */
static json_t *cached_result(srv_jobs *js, const char *id)
{
    pthread_mutex_lock(&js->lock);
    job *j = srv_js_find(js, id);
    json_t *o = j && j->state == JS_DONE && j->result ? json_deep_copy(j->result) : NULL;
    pthread_mutex_unlock(&js->lock);
    return o;
}

static void keep_result(srv_jobs *js, const char *id, const snapshot *s, const json_t *o)
{
    if (s->state != JS_DONE)
        return;
    json_t *copy = json_deep_copy(o);
    pthread_mutex_lock(&js->lock);
    job *j = srv_js_find(js, id);
    if (j && copy && !j->result && j->state == JS_DONE && j->rows_len == s->rows_len) {
        j->result = copy;
        copy = NULL;
    }
    pthread_mutex_unlock(&js->lock);
    json_decref(copy);
}

int srv_jobs_result(srv_jobs *js, const char *id, json_t **out, char *err, size_t errsz)
{
    snapshot s;
    if (take_snapshot(js, id, &s))
        return adj_fail(err, errsz, ADJ_ERR_NOTFOUND, "no such job: %s", id);
    json_t *kept = cached_result(js, id);
    if (kept) { /* rows.csv still there, a file, as long as the job knows */
        int fd = open_rows(&s, id, err, errsz);
        if (fd < 0) {
            json_decref(kept);
            return fd;
        }
        close(fd);
        *out = kept;
        return ADJ_OK;
    }
    srv_rows rows;
    int rc = read_rows(&s, id, &rows, err, errsz);
    if (rc)
        return rc;
    json_t *table = srv_rows_table(&rows, &s.params, s.has_truth);
    json_t *eps = json_object_get(s.info, "eps");
    json_t *o = table ? json_pack("{s:s,s:s,s:b,s:I,s:I,s:I,s:O,s:o,s:O,s:O,s:O,s:{s:s,s:s,s:s},s:O}",
                                  "id", id, "status", srv_js_state_names[s.state], "complete",
                                  s.state == JS_DONE && rows.n == s.total, "n",
                                  (json_int_t)(rows.n - rows.skipped), "skipped",
                                  (json_int_t)rows.skipped, "total", (json_int_t)s.total, "eps",
                                  eps, "quality", srv_json_quality(&s.params), "seed",
                                  json_object_get(s.info, "seed"), "model",
                                  json_object_get(json_object_get(s.info, "model"), "name"),
                                  "dataset", json_object_get(s.info, "dataset"), "notes",
                                  "quartiles", "linear interpolation between order statistics (type 7)",
                                  "whiskers", "the last values within 1.5 IQR of the box",
                                  "outliers", "box.outliers counts the values beyond the whiskers; "
                                              "the values are in the rows",
                                  "table", table)
                      : NULL;
    if (o && result_stats(o, table, &rows, &s)) {
        json_decref(o);
        o = NULL;
    }
    json_decref(table);
    srv_rows_free(&rows);
    if (o && (json_object_set_new(o, "attack", srv_js_attack_json(&s.params)) ||
              srv_json_put_threat_model(o, &s.params))) {
        json_decref(o);
        o = NULL;
    }
    if (!o)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    keep_result(js, id, &s, o);
    *out = o;
    return ADJ_OK;
}

int srv_jobs_rows(srv_jobs *js, const char *id, int *fd, uint64_t *len, char *err, size_t errsz)
{
    snapshot s;
    if (take_snapshot(js, id, &s))
        return adj_fail(err, errsz, ADJ_ERR_NOTFOUND, "no such job: %s", id);
    int f = open_rows(&s, id, err, errsz);
    if (f < 0)
        return f;
    *fd = f;
    *len = s.rows_len;
    return ADJ_OK;
}

/* The smallest eps of p when e is 0, else e if p has it, else -1. */
static int eps_of_job(const exp_params *p, int e)
{
    int smallest = p->eps[0];
    for (int i = 0; i < p->n_eps; i++) {
        if (p->eps[i] == e)
            return e;
        smallest = p->eps[i] < smallest ? p->eps[i] : smallest;
    }
    return e ? -1 : smallest;
}

/* The job's eps list as "1, 5, 10" into buf. */
static const char *eps_list(const exp_params *p, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < p->n_eps && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%d", i ? ", " : "", p->eps[i]);
    return buf;
}

/* "job ID: DATASET, model M, N of T images" (and " (so far)" while unfinished). */
static void job_caption(const snapshot *s, const char *id, size_t n, char *buf, size_t size)
{
    const char *dataset = json_string_value(json_object_get(s->info, "dataset"));
    const char *mname =
        json_string_value(json_object_get(json_object_get(s->info, "model"), "name"));
    snprintf(buf, size, "job %s: %s, model %s, %zu of %zu images%s", id,
             dataset ? dataset : "uploaded images", mname ? mname : "?", n, s->total,
             s->state == JS_DONE ? "" : " (so far)");
}

int srv_jobs_figure(srv_jobs *js, const char *id, srv_figure which, const char *axis, int eps,
                    char **svg, size_t *len, char *err, size_t errsz)
{
    snapshot s;
    char list[128];
    if (take_snapshot(js, id, &s))
        return adj_fail(err, errsz, ADJ_ERR_NOTFOUND, "no such job: %s", id);
    const int e = eps_of_job(&s.params, eps);
    if (e < 0)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: job %s has no eps %d (it has %s)", id, eps,
                        eps_list(&s.params, list, sizeof list));
    srv_rows rows;
    int rc = read_rows(&s, id, &rows, err, errsz);
    if (rc)
        return rc;
    char caption[512];
    job_caption(&s, id, rows.n - rows.skipped, caption, sizeof caption);
    rc = which == SRV_FIGURE_3
             ? srv_svg_figure3(&rows, &s.params, srv_svg_axis_of(axis), caption, svg, len)
         : which == SRV_FIGURE_4 ? srv_svg_figure4(&rows, &s.params, e, caption, svg, len)
                                 : srv_svg_quality(&rows, &s.params, s.has_truth, caption, svg, len);
    srv_rows_free(&rows);
    if (rc)
        return adj_fail(err, errsz, rc, "out of memory");
    return ADJ_OK;
}

void srv_job_image_free(srv_job_image *im)
{
    if (!im)
        return;
    free(im->bytes);
    free(im->probs);
    free(im->labels);
    memset(im, 0, sizeof *im);
}

/* The real path of a job's image file (under the data root, or its upload's images/). */
static int image_path(const srv_jobs *js, const snapshot *s, const char *file, char real[PATH_MAX],
                      char *err, size_t errsz)
{
    char up[PATH_MAX + 16], up_real[PATH_MAX];
    if (json_is_true(json_object_get(s->info, "upload"))) {
        snprintf(up, sizeof up, "%s/images", s->dir);
        if (!realpath(up, up_real))
            return adj_fail(err, errsz, ADJ_ERR_IO, "the job's uploaded images are gone: %s",
                            strerror(errno));
        return srv_path_file_under(up_real, up_real, file, real, err, errsz);
    }
    const char *dir = json_string_value(json_object_get(s->info, "images_dir"));
    if (!js->root || !dir)
        return adj_fail(err, errsz, ADJ_ERR_STATE,
                        "server-side datasets are disabled (start advjpgd with --data-root)");
    return srv_path_file_under(js->root, dir, file, real, err, errsz);
}

/* Row i of rows into im (its probabilities and labels). */
static int take_row_scores(const srv_rows *rows, size_t i, srv_job_image *im)
{
    const size_t T = (size_t)rows->n_transforms;
    im->n_transforms = rows->n_transforms;
    im->probs = malloc(T * sizeof *im->probs);
    im->labels = malloc(T * sizeof *im->labels);
    if (!im->probs || !im->labels)
        return ADJ_ERR_NOMEM;
    memcpy(im->probs, rows->prob + i * T, T * sizeof *im->probs);
    memcpy(im->labels, rows->label + i * T, T * sizeof *im->labels);
    return ADJ_OK;
}

int srv_jobs_image(srv_jobs *js, const char *id, const char *file, srv_job_image *out,
                   char *err, size_t errsz)
{
    snapshot s;
    memset(out, 0, sizeof *out);
    if (take_snapshot(js, id, &s))
        return adj_fail(err, errsz, ADJ_ERR_NOTFOUND, "no such job: %s", id);
    srv_rows rows;
    int rc = read_rows(&s, id, &rows, err, errsz);
    if (rc)
        return rc;
    size_t i = 0;
    while (i < rows.n && strcmp(rows.file[i], file) != 0)
        i++;
    char real[PATH_MAX];
    if (i == rows.n)
        rc = adj_fail(err, errsz, ADJ_ERR_NOTFOUND,
                      "job %s has no image '%.200s' among its %zu evaluated rows", id, file, rows.n);
    else if (rows.label_x[i] < 0)
        rc = adj_fail(err, errsz, ADJ_ERR_CONFLICT, "image '%.200s' of job %s could not be read",
                      file, id);
    else if (!(rc = image_path(js, &s, file, real, err, errsz)) &&
             ut_read_file(real, IMAGE_FILE_MAX, 0, &out->bytes, &out->len, NULL, 0))
        rc = adj_fail(err, errsz, ADJ_ERR_IO, "'%.200s': %s", file, strerror(errno));
    if (!rc && take_row_scores(&rows, i, out))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    srv_rows_free(&rows);
    out->params = s.params;
    out->seed = exp_image_seed(s.seed, file);
    if (rc)
        srv_job_image_free(out);
    return rc;
}

int srv_jobs_dct(srv_jobs *js, const char *id, int svg_eps, json_t **json, char **svg,
                 size_t *len, char *err, size_t errsz)
{
    snapshot s;
    char list[128];
    if (take_snapshot(js, id, &s))
        return adj_fail(err, errsz, ADJ_ERR_NOTFOUND, "no such job: %s", id);
    if (!s.dct)
        return adj_fail(err, errsz, ADJ_ERR_NOTFOUND,
                        "job %s has no DCT analysis (create the job with \"dct\": true)", id);
    const int e = eps_of_job(&s.params, svg_eps);
    if (svg && e < 0)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: job %s has no eps %d (it has %s)", id,
                        svg_eps, eps_list(&s.params, list, sizeof list));
    srv_dct_sums sums;
    int rc = s.done ? srv_dct_read(s.dir, &s.params, s.params.quality, s.done, &sums, err, errsz)
                    : ADJ_ERR_CONFLICT;
    if (rc == ADJ_ERR_CONFLICT || (!rc && sums.n == 0)) {
        if (!rc)
            srv_dct_sums_free(&sums);
        return adj_fail(err, errsz, ADJ_ERR_CONFLICT, "job %s (%s) has analysed no image yet", id,
                        srv_js_state_names[s.state]);
    }
    if (rc)
        return rc;
    if (svg) {
        char caption[512];
        job_caption(&s, id, sums.n, caption, sizeof caption);
        rc = srv_dct_svg(&sums, e, caption, svg, len);
    } else {
        json_t *o = srv_dct_json(&sums);
        if (o && json_object_update_new(o, json_pack("{s:s,s:s,s:b,s:I}", "id", id, "status",
                                                     srv_js_state_names[s.state], "complete",
                                                     s.state == JS_DONE && s.done == s.total,
                                                     "total", (json_int_t)s.total)) == 0)
            *json = o;
        else {
            json_decref(o);
            rc = ADJ_ERR_NOMEM;
        }
    }
    srv_dct_sums_free(&sums);
    return rc ? adj_fail(err, errsz, rc, "out of memory") : ADJ_OK;
}
