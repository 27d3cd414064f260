/* srv_jobs_store.c - the job store on disk: a job's folder, its files, loading and saving. */
#include "srv_jobs_int.h"

const char *const srv_js_state_names[JS_STATE_COUNT] = {
    [JS_QUEUED] = "queued", [JS_RUNNING] = "running", [JS_DONE] = "done",
    [JS_FAILED] = "failed", [JS_CANCELED] = "canceled",
};
_Static_assert(JS_CANCELED + 1 == JS_STATE_COUNT, "a name per job state");

/* ---------------------------------------------------------------- small helpers */

/* One line on stderr, "advjpgd: job ID: ...", in one stdio call. */
__attribute__((format(printf, 2, 3))) void srv_js_log(const char *id, const char *fmt, ...)
{
    char msg[ADJ_ERRLEN + 128], line[ADJ_ERRLEN + 200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "advjpgd: job %s: %s\n", id, msg);
    fputs(line, stderr);
}

void srv_js_iso_now(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* strerror for ut_open_regular's errors (UT_NOFOLLOW): a symbolic link or a non-regular file in words. */
const char *srv_js_file_strerror(int e)
{
    if (e == ELOOP)
        return "it is a symbolic link (refused)";
    if (e == EINVAL)
        return "it is not a regular file";
    return strerror(e);
}

/*
 * A JSON file of a job folder (UT_NOFOLLOW's rules), new reference; NULL
 * with why ("cannot read: ..." or the parser's message) and *missing set
 * when the file does not exist.
 */
static json_t *load_json(const char *path, int *missing, char *why, size_t whysz)
{
    size_t len = 0;
    *missing = 0;
    char *text = NULL;
    if (ut_read_file(path, (size_t)64 << 20, UT_NOFOLLOW, &text, &len, NULL, 0)) {
        *missing = errno == ENOENT;
        adj_fail(why, whysz, ADJ_ERR_IO, "cannot read it: %s", srv_js_file_strerror(errno));
        return NULL;
    }
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!o)
        adj_fail(why, whysz, ADJ_ERR_FORMAT, "not valid JSON (line %d: %s)", je.line, je.text);
    else if (!json_is_object(o)) {
        adj_fail(why, whysz, ADJ_ERR_FORMAT, "not a JSON object");
        json_decref(o);
        o = NULL;
    }
    return o;
}

int srv_job_id_ok(const char *s)
{
    if (!s)
        return 0;
    for (int i = 0; i < SRV_JOB_ID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[SRV_JOB_ID_LEN] == '\0';
}

int srv_js_new_id(char id[SRV_JOB_ID_LEN + 1])
{
    unsigned char b[SRV_JOB_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(id + 2 * i, 3, "%02x", b[i]);
    return 0;
}

json_t *srv_js_seed_json(uint64_t seed)
{
    return seed <= (uint64_t)INT64_MAX ? json_integer((json_int_t)seed)
                                       : json_sprintf("%llu", (unsigned long long)seed);
}

void srv_js_job_free(job *j)
{
    if (!j)
        return;
    free(j->dir);
    json_decref(j->info);
    json_decref(j->result);
    free(j->images_dir);
    for (size_t i = 0; j->files && i < j->total; i++)
        free(j->files[i]);
    free(j->files);
    free(j->truth);
    pthread_mutex_destroy(&j->io);
    free(j);
}

job *srv_js_job_alloc(void)
{
    job *j = calloc(1, sizeof *j);
    if (j)
        pthread_mutex_init(&j->io, NULL);
    return j;
}

/* The job of that id (lock held), or NULL. */
job *srv_js_find(srv_jobs *js, const char *id)
{
    for (job *j = js->head; j; j = j->next)
        if (!j->deleted && strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

/* images/s of the current run (running) or of the last one; 0 unknown. Lock held. */
double srv_js_job_rate(const job *j)
{
    if (j->state == JS_RUNNING) {
        double dt = ut_now() - j->t0;
        return dt > 0 && j->done > j->done0 ? (double)(j->done - j->done0) / dt : 0;
    }
    return j->rate;
}

/* The job's state as JSON (GET /jobs/{id}). Lock held. */
json_t *srv_js_job_json(const job *j)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
#define PUT(k, v) (bad |= json_object_set_new(o, (k), (v)) != 0)
    PUT("id", json_string(j->id));
    PUT("status", json_string(srv_js_state_names[j->state]));
    PUT("done", json_integer((json_int_t)j->done));
    PUT("total", json_integer((json_int_t)j->total));
    PUT("skipped", json_integer((json_int_t)j->skipped));
    double rate = srv_js_job_rate(j);
    PUT("images_per_s", rate > 0 ? json_real(rate) : json_null());
    if (j->state == JS_DONE)
        PUT("eta_s", json_real(0));
    else if ((j->state == JS_RUNNING) && rate > 0)
        PUT("eta_s", json_real((double)(j->total - j->done) / rate));
    else
        PUT("eta_s", json_null());
    PUT("created", json_incref(json_object_get(j->info, "created")));
    PUT("started", j->started[0] ? json_string(j->started) : json_null());
    PUT("finished", j->finished[0] ? json_string(j->finished) : json_null());
    if (j->error[0])
        PUT("error", json_string(j->error));
    if (j->state == JS_RUNNING)
        PUT("batch", json_integer(j->batch));
    PUT("dct", json_boolean(j->dct));
    static const char *const keys[] = {"dataset", "upload", "ground_truth", "labels", "eps",
                                       "quality", "attack", "threat_model", "seed", "offset",
                                       "limit", "shard", "model"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(j->info, keys[i]);
        PUT(keys[i], v ? json_incref(v) : json_null());
    }
#undef PUT
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* status.json's text for a final job. Lock held. New string. */
static char *status_text(const job *j)
{
    json_t *o = json_pack("{s:s,s:I,s:I,s:s}", "status", srv_js_state_names[j->state], "done",
                          (json_int_t)j->done, "skipped", (json_int_t)j->skipped, "finished",
                          j->finished);
    if (!o)
        return NULL;
    if (j->started[0])
        json_object_set_new(o, "started", json_string(j->started));
    if (j->error[0])
        json_object_set_new(o, "error", json_string(j->error));
    if (j->rate > 0)
        json_object_set_new(o, "images_per_s", json_real(j->rate));
    char *s = json_dumps(o, JSON_INDENT(1) | JSON_REAL_PRECISION(6));
    json_decref(o);
    return s;
}

/*
 * Writes status.json from the job's state (call with j->io held, not the
 * lock). ADJ_OK, or ADJ_ERR_IO / ADJ_ERR_NOMEM with err (may be NULL) giving
 * the real errno (ENOSPC on a full disk); the failure is logged too.
 */
int srv_js_save_status(srv_jobs *js, job *j, char *err, size_t errsz)
{
    pthread_mutex_lock(&js->lock);
    char *text = status_text(j);
    pthread_mutex_unlock(&js->lock);
    char msg[ADJ_ERRLEN];
    int rc = text ? ut_write_atomic(j->dir, "status.json", text, strlen(text), 0600, msg, sizeof msg)
                  : adj_fail(msg, sizeof msg, ADJ_ERR_NOMEM, "out of memory");
    if (rc) {
        srv_js_log(j->id, "cannot save its status: %s", msg);
        adj_fail(err, errsz, rc, "%s", msg);
    }
    free(text);
    return rc;
}

json_t *srv_js_attack_json(const exp_params *p)
{
    json_t *o = json_object();
    if (o && srv_json_put_attack(o, p)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---------------------------------------------------------------- loading */

/* A file name of request.json: one component, or "class/name" (an ImageFolder dataset);
 * never empty, absolute or "..". */
static int rel_name_ok(const char *f, int folders)
{
    const char *slash = strchr(f, '/'), *last = slash ? slash + 1 : f;
    size_t n0 = slash ? (size_t)(slash - f) : strlen(f);
    if ((slash && (!folders || strchr(last, '/'))) || !n0 || !*last)
        return 0;
    return !(n0 <= 2 && !strncmp(f, "..", n0)) && strcmp(last, ".") && strcmp(last, "..");
}

/* request.json's "files" and "truth" into j->files, j->truth (j->total of them). */
static int load_files(job *j, const json_t *files, const json_t *truth, char *why, size_t whysz)
{
    j->files = calloc(j->total, sizeof *j->files);
    if (j->has_truth)
        j->truth = malloc(j->total * sizeof *j->truth);
    if (!j->files || (j->has_truth && !j->truth))
        return adj_fail(why, whysz, ADJ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < j->total; i++) {
        const char *f = json_string_value(json_array_get(files, i));
        if (!f || !rel_name_ok(f, !j->upload) || !(j->files[i] = strdup(f)))
            return adj_fail(why, whysz, ADJ_ERR_FORMAT, "request.json: file %zu is malformed",
                            i + 1);
        if (j->has_truth) {
            json_t *tv = json_array_get(truth, i);
            json_int_t t = json_integer_value(tv);
            if (!json_is_integer(tv) || t < 0 || t >= j->classes)
                return adj_fail(why, whysz, ADJ_ERR_FORMAT,
                                "request.json: label %zu is out of range", i + 1);
            j->truth[i] = (int)t;
        }
    }
    return ADJ_OK;
}

/*
 * Reads request.json into a new job, with its file list and labels.
 * ADJ_ERR_FORMAT / ADJ_ERR_IO (why says what is wrong) or ADJ_ERR_NOMEM.
 */
static int load_request(const char *dir, const char *id, job **out, char *why, size_t whysz)
{
    char path[PATH_MAX], msg[ADJ_ERRLEN];
    snprintf(path, sizeof path, "%s/request.json", dir);
    int missing;
    json_t *o = load_json(path, &missing, msg, sizeof msg);
    if (!o)
        return adj_fail(why, whysz, ADJ_ERR_FORMAT, "request.json: %s", msg);
    job *j = srv_js_job_alloc();
    int rc = ADJ_OK;
    json_t *eps = json_object_get(o, "eps"), *files = json_object_get(o, "files"),
           *truth = json_object_get(o, "truth"), *seed = json_object_get(o, "seed"),
           *model = json_object_get(o, "model");
    if (!j) {
        json_decref(o);
        return adj_fail(why, whysz, ADJ_ERR_NOMEM, "out of memory");
    }
    snprintf(j->id, sizeof j->id, "%.*s", SRV_JOB_ID_LEN, id);
    j->dir = strdup(dir);
    j->info = o;
    if (!j->dir) {
        rc = adj_fail(why, whysz, ADJ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (strcmp(json_string_value(json_object_get(o, "id")) ?: "", id) != 0 ||
        !json_is_array(eps) || json_array_size(eps) < 1 || json_array_size(eps) > EXP_MAX_EPS ||
        !json_is_array(files) || !json_is_integer(json_object_get(model, "classes"))) {
        rc = adj_fail(why, whysz, ADJ_ERR_FORMAT, "request.json: missing or malformed fields");
        goto fail;
    }
    j->params.n_eps = (int)json_array_size(eps);
    for (int i = 0; i < j->params.n_eps; i++)
        j->params.eps[i] = (int)json_integer_value(json_array_get(eps, (size_t)i));
    json_t *attack = json_object_get(o, "attack"); /* absent: a job from before the menu, FGSM */
    if (srv_json_read_quality(json_object_get(o, "quality"), &j->params, msg, sizeof msg) ||
        (attack && srv_eval_parse_attack(attack, &j->params, msg, sizeof msg)) ||
        exp_params_check(&j->params, msg, sizeof msg)) {
        rc = adj_fail(why, whysz, ADJ_ERR_FORMAT, "request.json: %s", msg);
        goto fail;
    }
    if (json_is_integer(seed))
        j->seed = (uint64_t)json_integer_value(seed);
    else if (json_is_string(seed))
        j->seed = strtoull(json_string_value(seed), NULL, 10);
    j->classes = (int)json_integer_value(json_object_get(model, "classes"));
    j->total = json_array_size(files);
    j->has_truth = json_is_array(truth);
    j->upload = json_is_true(json_object_get(o, "upload"));
    j->dct = json_is_true(json_object_get(o, "dct")); /* absent before the DCT analysis */
    j->created_ms = json_integer_value(json_object_get(o, "created_ms"));
    const char *idir = json_string_value(json_object_get(o, "images_dir"));
    if (j->classes < 1 || j->total < 1 || (j->has_truth && json_array_size(truth) != j->total) ||
        (!j->upload && !idir) || !json_is_string(json_object_get(o, "created"))) {
        rc = adj_fail(why, whysz, ADJ_ERR_FORMAT, "request.json: inconsistent fields");
        goto fail;
    }
    if (!j->upload && !(j->images_dir = strdup(idir))) {
        rc = adj_fail(why, whysz, ADJ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = load_files(j, files, truth, why, whysz)))
        goto fail;
    json_object_del(o, "files");
    json_object_del(o, "truth");
    *out = j;
    return ADJ_OK;
fail:
    srv_js_job_free(j);
    return rc;
}

/* Frees the file list, which only an unfinished job needs. */
void srv_js_drop_files(job *j)
{
    for (size_t i = 0; j->files && i < j->total; i++)
        free(j->files[i]);
    free(j->files);
    free(j->truth);
    j->files = NULL;
    j->truth = NULL;
}

/*
 * Reads status.json: 1 when it says the job ended (state, done and skipped
 * as it says them, times, error, rate), 0 when there is none (the job is
 * unfinished), -1 when it is damaged (why says how; j is unchanged).
 */
static int load_status(job *j, char *why, size_t whysz)
{
    char path[PATH_MAX], msg[ADJ_ERRLEN];
    snprintf(path, sizeof path, "%s/status.json", j->dir);
    int missing;
    json_t *o = load_json(path, &missing, msg, sizeof msg);
    if (!o) {
        if (missing)
            return 0;
        adj_fail(why, whysz, ADJ_ERR_FORMAT, "%s", msg);
        return -1;
    }
    const char *st = json_string_value(json_object_get(o, "status"));
    job_state s;
    if (st && strcmp(st, "done") == 0)
        s = JS_DONE;
    else if (st && strcmp(st, "failed") == 0)
        s = JS_FAILED;
    else if (st && strcmp(st, "canceled") == 0)
        s = JS_CANCELED;
    else {
        adj_fail(why, whysz, ADJ_ERR_FORMAT, "\"status\" is not done, failed or canceled");
        json_decref(o);
        return -1;
    }
    j->state = s;
    j->done = (size_t)json_integer_value(json_object_get(o, "done"));
    j->skipped = (size_t)json_integer_value(json_object_get(o, "skipped"));
    j->rate = json_number_value(json_object_get(o, "images_per_s"));
    snprintf(j->finished, sizeof j->finished, "%s",
             json_string_value(json_object_get(o, "finished")) ?: "");
    snprintf(j->started, sizeof j->started, "%s",
             json_string_value(json_object_get(o, "started")) ?: "");
    snprintf(j->error, sizeof j->error, "%s", json_string_value(json_object_get(o, "error")) ?: "");
    json_decref(o);
    return 1;
}

/* Marks a job failed at load, logs why and saves it (when the folder takes it). */
static void fail_at_load(srv_jobs *js, job *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_at_load(srv_jobs *js, job *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->error, sizeof j->error, fmt, ap);
    va_end(ap);
    j->state = JS_FAILED;
    if (!j->finished[0])
        srv_js_iso_now(j->finished);
    srv_js_log(j->id, "failed: %s", j->error);
    srv_js_save_status(js, j, NULL, 0);
}

/*
 * Parses the job's rows.csv against its file list and sets done, skipped
 * and rows_len from its valid prefix: the rows are the job's record, and
 * the status, the table, the figures and GET /rows all come from that
 * prefix. repair (an unfinished job): a missing file is created, a
 * half-written or invalid tail is cut off (ftruncate + fsync) and a missing
 * header written, so that the runner appends right after the last good
 * row. Otherwise the file is only read (a missing one reads as empty).
 * *what gets where the valid prefix ends ("" when the whole file is
 * valid). ADJ_ERR_IO (why: the file and the real errno) or ADJ_ERR_NOMEM;
 * on error the job is unchanged.
 */
static int scan_rows(job *j, int repair, char *what, size_t whatsz, char *why, size_t whysz)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/rows.csv", j->dir);
    int fd = ut_open_regular(path, repair ? O_RDWR | O_CREAT : O_RDONLY, 0600);
    if (fd < 0 && (repair || errno != ENOENT))
        return adj_fail(why, whysz, ADJ_ERR_IO, "rows.csv: %s", srv_js_file_strerror(errno));
    size_t len = 0;
    char *text = NULL;
    if (fd < 0)
        text = calloc(1, 1);
    else if (ut_read_fd(fd, (size_t)1 << 40, &text, &len, NULL, 0))
        text = NULL;
    if (!text) {
        int e = fd >= 0 ? errno : ENOMEM;
        if (fd >= 0)
            close(fd);
        return adj_fail(why, whysz, e == ENOMEM ? ADJ_ERR_NOMEM : ADJ_ERR_IO, "rows.csv: %s",
                        strerror(e));
    }
    srv_rows_check chk = {&j->params, j->classes, SIZE_MAX, (const char *const *)j->files,
                          j->truth, j->total};
    srv_rows rows;
    size_t valid = 0;
    int rc = srv_rows_parse(text, len, &chk, &rows, &valid, what, whatsz);
    free(text);
    if (rc) {
        if (fd >= 0)
            close(fd);
        return adj_fail(why, whysz, rc, "rows.csv: out of memory");
    }
    if (repair && valid < len) {
        if (ftruncate(fd, (off_t)valid) || fsync(fd))
            rc = adj_fail(why, whysz, ADJ_ERR_IO, "rows.csv: cannot cut off its damaged tail: %s",
                          strerror(errno));
        else if (len > 0)
            srv_js_log(j->id, "rows.csv: %s: cut off %zu bytes after %zu good rows; resuming there",
                 what, len - valid, rows.n);
    }
    if (!rc && repair && valid == 0) { /* no header yet: write it */
        char *header = srv_rows_header(&j->params);
        if (!header) {
            rc = adj_fail(why, whysz, ADJ_ERR_NOMEM, "out of memory");
        } else if (ut_write_all(fd, header, strlen(header)) || fsync(fd)) {
            rc = adj_fail(why, whysz, ADJ_ERR_IO, "rows.csv: cannot write its header: %s",
                          strerror(errno));
            if (ftruncate(fd, 0) == 0) /* no half header left behind */
                fsync(fd);
        } else {
            valid = strlen(header);
        }
        free(header);
    }
    if (fd >= 0)
        close(fd);
    if (!rc) {
        j->done = rows.n;
        j->skipped = rows.skipped;
        j->rows_len = valid;
    }
    srv_rows_free(&rows);
    return rc;
}

/* Reads chunk.json, if the job has one. */
static void load_grid(job *j)
{
    char path[PATH_MAX + 16], why[ADJ_ERRLEN];
    snprintf(path, sizeof path, "%s/chunk.json", j->dir);
    int missing;
    json_t *o = load_json(path, &missing, why, sizeof why);
    json_int_t k = json_integer_value(json_object_get(o, "images"));
    json_int_t f = json_integer_value(json_object_get(o, "first"));
    if (k >= 1 && k <= 4096 && f >= 0 && f <= INT_MAX) {
        j->grid_k = (int)k;
        j->grid_first = (int)f;
    } else if (!missing) {
        srv_js_log(j->id, "chunk.json: %s; the job's chunks are measured again",
             o ? "no valid \"first\" and \"images\"" : why);
    }
    json_decref(o);
}

int srv_js_save_grid(const job *j, char *err, size_t errsz)
{
    char text[96];
    snprintf(text, sizeof text, "{\"first\": %d, \"images\": %d}\n", j->grid_first, j->grid_k);
    return ut_write_atomic(j->dir, "chunk.json", text, strlen(text), 0600, err, errsz);
}

static int cmp_job(const void *a, const void *b)
{
    const job *x = *(job *const *)a, *y = *(job *const *)b;
    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Whether name is ".new-" followed by an id (a creation that never finished). */
static int is_leftover(const char *name)
{
    return strncmp(name, ".new-", 5) == 0 && srv_job_id_ok(name + 5);
}

/*
 * A job whose request.json cannot be read: listed as failed with why, so
 * that it does not vanish; created is the folder's time. Nothing is written
 * to its folder (the same is found at every start). ADJ_ERR_NOMEM only.
 */
static int damaged_job(const char *dir, const char *id, const char *why, job **out)
{
    job *j = srv_js_job_alloc();
    if (!j || !(j->dir = strdup(dir))) {
        srv_js_job_free(j);
        return ADJ_ERR_NOMEM;
    }
    snprintf(j->id, sizeof j->id, "%.*s", SRV_JOB_ID_LEN, id);
    char created[32] = "";
    struct stat sb;
    if (lstat(dir, &sb) == 0) {
        struct tm tm;
        gmtime_r(&sb.st_mtim.tv_sec, &tm);
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
        j->created_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    }
    j->info = json_pack("{s:s,s:o}", "id", id, "created",
                        created[0] ? json_string(created) : json_null());
    if (!j->info) {
        srv_js_job_free(j);
        return ADJ_ERR_NOMEM;
    }
    j->state = JS_FAILED;
    snprintf(j->error, sizeof j->error, "the job cannot be loaded: %.400s", why);
    srv_js_log(id, "failed: %s", j->error);
    *out = j;
    return ADJ_OK;
}

/*
 * Loads the job in folder dir (id: its name) into a new *out. A damaged job
 * never stops the daemon: it is loaded as a failed job whose error says
 * what is wrong (saved in its status.json when the folder takes it), and
 * whatever valid rows it has stay readable. The state is checked against
 * the rows: a job is done only when rows.csv holds a valid row for every
 * image. Only ADJ_ERR_NOMEM is an error.
 */
int srv_js_load_job(srv_jobs *js, const char *dir, const char *id, job **out)
{
    char why[ADJ_ERRLEN], what[ADJ_ERRLEN], before[ADJ_ERRLEN];
    job *j = NULL;
    int rc = load_request(dir, id, &j, why, sizeof why);
    if (rc == ADJ_ERR_NOMEM)
        return rc;
    if (rc)
        return damaged_job(dir, id, why, out);
    char swhy[ADJ_ERRLEN];
    int st = load_status(j, swhy, sizeof swhy);
    if (st == 0) { /* unfinished: repaired and queued again */
        j->state = JS_QUEUED;
        const json_t *mo = json_object_get(j->info, "model");
        const char *mname = json_string_value(json_object_get(mo, "name")) ?: "?";
        if (strcmp(mname, js->spec->name) != 0 || j->classes != js->spec->classes ||
            json_integer_value(json_object_get(mo, "input_size")) != js->spec->input_size) {
            /* its rows are still read, for what it did */
            rc = scan_rows(j, 0, what, sizeof what, why, sizeof why);
            fail_at_load(js, j, "it was started with model %s (%d classes); the daemon now "
                                "serves %s (%d classes)",
                         mname, j->classes, js->spec->name, js->spec->classes);
        } else if ((rc = scan_rows(j, 1, what, sizeof what, why, sizeof why))) {
            if (rc != ADJ_ERR_NOMEM)
                fail_at_load(js, j, "%s", why);
        } else if (j->done == j->total) {
            j->state = JS_DONE;
            srv_js_iso_now(j->finished);
            srv_js_save_status(js, j, NULL, 0);
        } else {
            load_grid(j);
            srv_js_log(j->id, "resuming at image %zu of %zu", j->done + 1, j->total);
        }
    } else {
        size_t said = st > 0 ? j->done : 0;
        snprintf(before, sizeof before, "%s", j->error);
        j->done = j->skipped = 0;
        char reason[ADJ_ERRLEN] = "";
        if ((rc = scan_rows(j, 0, what, sizeof what, why, sizeof why))) {
            if (rc != ADJ_ERR_NOMEM)
                snprintf(reason, sizeof reason, "%s", why);
        } else if (st < 0) {
            snprintf(reason, sizeof reason,
                     "its status.json was damaged (%.300s); its %zu valid rows are kept", swhy,
                     j->done);
        } else if (j->rows_len == 0) {
            snprintf(reason, sizeof reason, "rows.csv is damaged: %.400s", what);
        } else if (j->state == JS_DONE && j->done != j->total) {
            snprintf(reason, sizeof reason,
                     "it was done, but rows.csv holds %zu valid rows of %zu (%.300s)", j->done,
                     j->total, what);
        } else if (said != j->done || what[0]) {
            srv_js_log(j->id, "status.json says %zu images; rows.csv holds %zu valid rows%s%s%s: the "
                        "rows count",
                 said, j->done, what[0] ? " (then " : "", what, what[0] ? ")" : "");
        }
        if (!reason[0] || (j->state == JS_FAILED && strstr(before, reason))) {
            /* consistent, or failed for this reason at an earlier start already */
        } else if (before[0]) {
            fail_at_load(js, j, "%s; before that: %.300s", reason, before);
        } else {
            fail_at_load(js, j, "%s", reason);
        }
    }
    if (rc == ADJ_ERR_NOMEM) {
        srv_js_job_free(j);
        return rc;
    }
    if (j->state != JS_QUEUED)
        srv_js_drop_files(j);
    *out = j;
    return ADJ_OK;
}

/*
 * Loads every job folder of the jobs folder and adds the jobs to the list
 * (the runner starts on the unfinished ones); removes what creations that
 * never finished left. ADJ_ERR_IO when the folder cannot be read (err: the
 * real errno), ADJ_ERR_NOMEM. Call without js->lock.
 */
int srv_js_load_all(srv_jobs *js, size_t *n_loaded, char *err, size_t errsz)
{
    DIR *d = opendir(js->jobs_dir);
    if (!d)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot read it: %s", strerror(errno));
    size_t n = 0, cap = 0;
    job **v = NULL;
    struct dirent *de;
    int rc = ADJ_OK;
    while ((de = readdir(d))) {
        int leftover = is_leftover(de->d_name);
        if (!leftover && !srv_job_id_ok(de->d_name))
            continue;
        char *dir = ut_path_join(js->jobs_dir, de->d_name);
        if (!dir) {
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
            break;
        }
        if (leftover) {
            ut_rmtree(dir, NULL, 0);
            free(dir);
            continue;
        }
        struct stat st;
        if (lstat(dir, &st) || !S_ISDIR(st.st_mode)) {
            int link = lstat(dir, &st) == 0 && S_ISLNK(st.st_mode);
            srv_js_log(de->d_name, "ignored: %s", link ? "a symbolic link, not a job folder"
                                                 : "not a folder");
            free(dir);
            continue;
        }
        job *j = NULL;
        int lrc = srv_js_load_job(js, dir, de->d_name, &j);
        free(dir);
        if (lrc) {
            rc = adj_fail(err, errsz, lrc, "out of memory");
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            job **nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                srv_js_job_free(j);
                rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        v[n++] = j;
    }
    closedir(d);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            srv_js_job_free(v[i]);
        free(v);
        return rc;
    }
    if (n)
        qsort(v, n, sizeof *v, cmp_job);
    pthread_mutex_lock(&js->lock);
    job **tail = &js->head;
    while (*tail)
        tail = &(*tail)->next;
    for (size_t i = 0; i < n; i++) {
        *tail = v[i];
        tail = &v[i]->next;
    }
    pthread_cond_broadcast(&js->cond);
    pthread_mutex_unlock(&js->lock);
    free(v);
    *n_loaded = n;
    return ADJ_OK;
}
