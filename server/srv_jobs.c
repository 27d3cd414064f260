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
#include "srv_rows.h"
#include "srv_svg.h"
#include "status.h"
#include "ut_buf.h"
#include "ut_clock.h"
#include "ut_file.h"
#include "ut_path.h"

#define IMAGE_FILE_MAX ((size_t)256 << 20) /* an image file larger than this is skipped */
#define MAX_INFLIGHT 2                      /* chunks queued on the worker at once */

typedef enum { JS_QUEUED, JS_RUNNING, JS_DONE, JS_FAILED, JS_CANCELED } job_state;
static const char *const STATE_NAMES[] = {"queued", "running", "done", "failed", "canceled"};

typedef struct job {
    char id[SRV_JOB_ID_LEN + 1];
    char *dir;          /* the job's folder */
    json_t *info;       /* request.json without "files" and "truth"; immutable */
    exp_params params;
    uint64_t seed;
    int classes;        /* of the model the job was created with */
    int has_truth;
    int upload;
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
    double t0;          /* ut_now() when this run began */
    size_t done0;       /* done when this run began */
    double rate;        /* images/s of the last run, set when it ends; 0: unknown */
    int batch;          /* images per chunk now (grid_k, or 1 while calibrating) */
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
};

/* ---------------------------------------------------------------- small helpers */

/* One line on stderr, "advjpgd: job ID: ...", in one stdio call. */
__attribute__((format(printf, 2, 3))) static void jlog(const char *id, const char *fmt, ...)
{
    char msg[ADJ_ERRLEN + 128], line[ADJ_ERRLEN + 200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "advjpgd: job %s: %s\n", id, msg);
    fputs(line, stderr);
}

static void iso_now(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* strerror for ut_open_regular's errors (UT_NOFOLLOW): a symbolic link or a non-regular file in words. */
static const char *file_strerror(int e)
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
        adj_fail(why, whysz, ADJ_ERR_IO, "cannot read it: %s", file_strerror(errno));
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

static int new_id(char id[SRV_JOB_ID_LEN + 1])
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

static json_t *seed_json(uint64_t seed)
{
    return seed <= (uint64_t)INT64_MAX ? json_integer((json_int_t)seed)
                                       : json_sprintf("%llu", (unsigned long long)seed);
}

static void job_free(job *j)
{
    if (!j)
        return;
    free(j->dir);
    json_decref(j->info);
    free(j->images_dir);
    for (size_t i = 0; j->files && i < j->total; i++)
        free(j->files[i]);
    free(j->files);
    free(j->truth);
    pthread_mutex_destroy(&j->io);
    free(j);
}

static job *job_alloc(void)
{
    job *j = calloc(1, sizeof *j);
    if (j)
        pthread_mutex_init(&j->io, NULL);
    return j;
}

/* The job of that id (lock held), or NULL. */
static job *find(srv_jobs *js, const char *id)
{
    for (job *j = js->head; j; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

/* images/s of the current run (running) or of the last one; 0 unknown. Lock held. */
static double job_rate(const job *j)
{
    if (j->state == JS_RUNNING) {
        double dt = ut_now() - j->t0;
        return dt > 0 && j->done > j->done0 ? (double)(j->done - j->done0) / dt : 0;
    }
    return j->rate;
}

/* The job's state as JSON (GET /jobs/{id}). Lock held. */
static json_t *job_json(const job *j)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
#define PUT(k, v) (bad |= json_object_set_new(o, (k), (v)) != 0)
    PUT("id", json_string(j->id));
    PUT("status", json_string(STATE_NAMES[j->state]));
    PUT("done", json_integer((json_int_t)j->done));
    PUT("total", json_integer((json_int_t)j->total));
    PUT("skipped", json_integer((json_int_t)j->skipped));
    double rate = job_rate(j);
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
    static const char *const keys[] = {"dataset", "upload", "ground_truth", "labels", "eps",
                                       "quality", "seed", "offset", "limit", "shard", "model"};
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
    json_t *o = json_pack("{s:s,s:I,s:I,s:s}", "status", STATE_NAMES[j->state], "done",
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
static int save_status(srv_jobs *js, job *j, char *err, size_t errsz)
{
    pthread_mutex_lock(&js->lock);
    char *text = status_text(j);
    pthread_mutex_unlock(&js->lock);
    char msg[ADJ_ERRLEN];
    int rc = text ? ut_write_atomic(j->dir, "status.json", text, strlen(text), 0600, msg, sizeof msg)
                  : adj_fail(msg, sizeof msg, ADJ_ERR_NOMEM, "out of memory");
    if (rc) {
        jlog(j->id, "cannot save its status: %s", msg);
        adj_fail(err, errsz, rc, "%s", msg);
    }
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- loading */

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
    job *j = job_alloc();
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
    j->params.quality = (int)json_integer_value(json_object_get(o, "quality"));
    if (exp_params_check(&j->params, NULL, 0)) {
        rc = adj_fail(why, whysz, ADJ_ERR_FORMAT, "request.json: bad eps or quality");
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
    j->files = calloc(j->total, sizeof *j->files);
    if (j->has_truth)
        j->truth = malloc(j->total * sizeof *j->truth);
    if (!j->files || (j->has_truth && !j->truth)) {
        rc = adj_fail(why, whysz, ADJ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < j->total; i++) {
        const char *f = json_string_value(json_array_get(files, i));
        if (!f || !*f || strchr(f, '/') || !(j->files[i] = strdup(f))) {
            rc = adj_fail(why, whysz, ADJ_ERR_FORMAT, "request.json: file %zu is malformed", i + 1);
            goto fail;
        }
        if (j->has_truth) {
            json_t *tv = json_array_get(truth, i);
            json_int_t t = json_integer_value(tv);
            if (!json_is_integer(tv) || t < 0 || t >= j->classes) {
                rc = adj_fail(why, whysz, ADJ_ERR_FORMAT,
                              "request.json: label %zu is out of range", i + 1);
                goto fail;
            }
            j->truth[i] = (int)t;
        }
    }
    json_object_del(o, "files");
    json_object_del(o, "truth");
    *out = j;
    return ADJ_OK;
fail:
    job_free(j);
    return rc;
}

/* Frees the file list, which only an unfinished job needs. */
static void drop_files(job *j)
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
        iso_now(j->finished);
    jlog(j->id, "failed: %s", j->error);
    save_status(js, j, NULL, 0);
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
        return adj_fail(why, whysz, ADJ_ERR_IO, "rows.csv: %s", file_strerror(errno));
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
            jlog(j->id, "rows.csv: %s: cut off %zu bytes after %zu good rows; resuming there",
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
        jlog(j->id, "chunk.json: %s; the job's chunks are measured again",
             o ? "no valid \"first\" and \"images\"" : why);
    }
    json_decref(o);
}

static int save_grid(const job *j, char *err, size_t errsz)
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
    job *j = job_alloc();
    if (!j || !(j->dir = strdup(dir))) {
        job_free(j);
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
        job_free(j);
        return ADJ_ERR_NOMEM;
    }
    j->state = JS_FAILED;
    snprintf(j->error, sizeof j->error, "the job cannot be loaded: %.400s", why);
    jlog(id, "failed: %s", j->error);
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
static int load_job(srv_jobs *js, const char *dir, const char *id, job **out)
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
            iso_now(j->finished);
            save_status(js, j, NULL, 0);
        } else {
            load_grid(j);
            jlog(j->id, "resuming at image %zu of %zu", j->done + 1, j->total);
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
            jlog(j->id, "status.json says %zu images; rows.csv holds %zu valid rows%s%s%s: the "
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
        job_free(j);
        return rc;
    }
    if (j->state != JS_QUEUED)
        drop_files(j);
    *out = j;
    return ADJ_OK;
}

/*
 * Loads every job folder of the jobs folder and adds the jobs to the list
 * (the runner starts on the unfinished ones); removes what creations that
 * never finished left. ADJ_ERR_IO when the folder cannot be read (err: the
 * real errno), ADJ_ERR_NOMEM. Call without js->lock.
 */
static int load_all(srv_jobs *js, size_t *n_loaded, char *err, size_t errsz)
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
            jlog(de->d_name, "ignored: %s", link ? "a symbolic link, not a job folder"
                                                 : "not a folder");
            free(dir);
            continue;
        }
        job *j = NULL;
        int lrc = load_job(js, dir, de->d_name, &j);
        free(dir);
        if (lrc) {
            rc = adj_fail(err, errsz, lrc, "out of memory");
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            job **nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                job_free(j);
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
            job_free(v[i]);
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

/* ---------------------------------------------------------------- the runner */

typedef struct {
    srv_jobs *js;
    size_t first;   /* job index of its first image */
    int n;          /* images */
    int pending;    /* worker jobs not yet done (js->lock) */
    int submitted;  /* worker jobs queued */
    int refused;    /* the worker refused the chunk: shutting down */
    srv_task *jobs;  /* [n]; jobs[i].x set when image i was prepared */
    char **skip;    /* [n] why image i could not be prepared, or NULL */
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
    memset(c, 0, sizeof *c);
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
 * Prepares images first .. first+n-1 of the job and queues them on the
 * worker as one batch group. ADJ_ERR_NOMEM, or ADJ_OK (c->refused when the
 * worker is shutting down: nothing queued).
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
        sj->prio = SRV_PRIO_BACKGROUND;
        sj->params = j->params;
        sj->seed = exp_image_seed(j->seed, file);
        sj->group = group;
        sj->done = on_image_done;
        sj->done_arg = c;
        queue[k++] = sj;
    }
    if (k > 0) {
        pthread_mutex_lock(&js->lock);
        c->pending = k;
        pthread_mutex_unlock(&js->lock);
        char msg[ADJ_ERRLEN];
        int rc;
        while ((rc = srv_worker_submit_many(js->w, queue, k, msg, sizeof msg)) == ADJ_ERR_BUSY)
            usleep(10000); /* cannot happen with the bound at 1024; wait rather than fail */
        if (rc) {
            pthread_mutex_lock(&js->lock);
            c->pending = 0;
            pthread_mutex_unlock(&js->lock);
            if (rc == ADJ_ERR_STATE) {
                c->refused = 1;
            } else {
                free(queue);
                return adj_fail(err, errsz, rc, "%s", msg);
            }
        } else {
            c->submitted = k;
        }
    }
    free(queue);
    return ADJ_OK;
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
        jlog(j->id, "cannot write errors.log: %s", file_strerror(errno));
        return;
    }
    struct stat st;
    off_t len0 = fstat(efd, &st) == 0 ? st.st_size : -1;
    if (ut_write_all(efd, errs->s, errs->len) || fsync(efd)) {
        jlog(j->id, "cannot write errors.log: %s", strerror(errno));
        if (len0 >= 0 && ftruncate(efd, len0) == 0)
            fsync(efd);
    }
    close(efd);
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
    for (int i = 0; i < c->n; i++) {
        size_t idx = c->first + (size_t)i;
        int truth = j->truth ? j->truth[idx] : -1;
        if (c->skip[i]) {
            srv_rows_format_skipped(&rows, j->files[idx], truth, exp_n_transforms(&j->params));
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
    j->skipped += (size_t)nskip;
    j->rows_len += rows.len;
    pthread_mutex_unlock(&js->lock);
    if (errs.len)
        append_errors(j, &errs);
    pthread_mutex_unlock(&j->io);
out:
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

static void run_job(srv_jobs *js, job *j)
{
    char err[ADJ_ERRLEN] = "";
    int failed = 0, fd = -1;
    chunk ring[MAX_INFLIGHT];
    memset(ring, 0, sizeof ring);
    char upload_dir[PATH_MAX];
    const char *root = js->root, *dir = j->images_dir;
    struct stat sb;
    if (!j->files) { /* only unfinished jobs are queued, and they keep their list */
        failed = 1;
        snprintf(err, sizeof err, "internal error: the job has no file list");
    } else if (j->upload) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/images", j->dir);
        if (lstat(p, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            failed = 1;
            snprintf(err, sizeof err, "its images/ is not a folder%s",
                     S_ISLNK(sb.st_mode) ? " but a symbolic link (refused)" : "");
        } else if (!realpath(p, upload_dir)) {
            failed = 1;
            adj_fail(err, sizeof err, ADJ_ERR_IO, "its uploaded images are gone: %s",
                     strerror(errno));
        }
        root = dir = upload_dir;
    } else if (!js->root) {
        failed = 1;
        snprintf(err, sizeof err, "server-side datasets are disabled (start advjpgd with "
                                  "--data-root) and this job reads a dataset");
    } else if (!srv_path_within(js->root, j->images_dir)) {
        failed = 1;
        snprintf(err, sizeof err, "its dataset folder is no longer under --data-root %s",
                 js->o.data_root);
    }
    if (!failed) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/rows.csv", j->dir);
        fd = ut_open_regular(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
        pthread_mutex_lock(&js->lock);
        uint64_t have = j->rows_len;
        pthread_mutex_unlock(&js->lock);
        if (fd < 0) {
            failed = 1;
            snprintf(err, sizeof err, "cannot open rows.csv: %s", file_strerror(errno));
        } else if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size != have) {
            /* rows are appended only here: anything else is not ours */
            failed = 1;
            snprintf(err, sizeof err, "rows.csv was changed behind the daemon's back (%llu bytes, "
                                      "want %llu)",
                     (unsigned long long)sb.st_size, (unsigned long long)have);
        }
    }
    if (!failed && j->rows_len == 0) {
        char *header = srv_rows_header(&j->params);
        if (!header || ut_write_all(fd, header, strlen(header)) || fsync(fd)) {
            failed = 1;
            snprintf(err, sizeof err, "cannot write rows.csv: %s",
                     header ? strerror(errno) : "out of memory");
        } else {
            pthread_mutex_lock(&js->lock);
            j->rows_len = strlen(header);
            pthread_mutex_unlock(&js->lock);
        }
        free(header);
    }

    /* The chunk grid: fixed by --job-batch, or calibrated by a first chunk
     * of one image; kept in chunk.json for the job's whole life. */
    if (!failed && j->grid_k == 0 && js->o.batch > 0) {
        j->grid_k = js->o.batch < js->o.max_batch ? js->o.batch : js->o.max_batch;
        j->grid_first = (int)j->done;
        if (save_grid(j, err, sizeof err))
            failed = 1;
    }
    pthread_mutex_lock(&js->lock);
    j->batch = j->grid_k ? j->grid_k : 1;
    pthread_mutex_unlock(&js->lock);

    size_t next = j->done;
    int head = 0, inflight = 0;
    for (;;) {
        while (!failed && inflight < MAX_INFLIGHT && next < j->total && !stop_asked(js, j) &&
               !(j->grid_k == 0 && inflight > 0)) {
            chunk *c = &ring[(head + inflight) % MAX_INFLIGHT];
            int n = chunk_size(js, j, next);
            if (start_chunk(js, j, root, dir, c, next, n, err, sizeof err)) {
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
        pthread_mutex_lock(&js->lock);
        while (c->pending > 0)
            pthread_cond_wait(&js->cond, &js->lock);
        pthread_mutex_unlock(&js->lock);
        for (int i = 0; i < c->n && !failed; i++)
            if (!c->skip[i] && c->jobs[i].status != SRV_TASK_OK) {
                failed = 1;
                snprintf(err, sizeof err, "the engine failed on '%.200s': %s",
                         j->files[c->first + (size_t)i], c->jobs[i].err);
            }
        if (!failed && j->grid_k == 0 && (j->grid_k = calibrate(js, c)) > 0) {
            /* saved before any row of the grid exists */
            j->grid_first = (int)(c->first + (size_t)c->n);
            if (save_grid(j, err, sizeof err))
                failed = 1;
            pthread_mutex_lock(&js->lock);
            j->batch = j->grid_k;
            pthread_mutex_unlock(&js->lock);
        }
        if (!failed && write_chunk(js, j, fd, c, err, sizeof err) < 0)
            failed = 1;
        chunk_free(c);
        head = (head + 1) % MAX_INFLIGHT;
        inflight--;
    }
    if (fd >= 0)
        close(fd);

    /* the outcome */
    pthread_mutex_lock(&j->io);
    pthread_mutex_lock(&js->lock);
    int final = 1, canceled = j->cancel;
    double rate = job_rate(j);
    if (rate > 0)
        j->rate = rate;
    if (canceled) {
        /* srv_jobs_cancel made it final already */
    } else if (failed) {
        j->state = JS_FAILED;
        snprintf(j->error, sizeof j->error, "%s", err);
        iso_now(j->finished);
    } else if (j->done == j->total) {
        j->state = JS_DONE;
        iso_now(j->finished);
    } else {
        j->state = JS_QUEUED; /* stopped by the shutdown: resumes at the next start */
        final = 0;
    }
    job_state st = j->state;
    size_t done = j->done, total = j->total;
    pthread_mutex_unlock(&js->lock);
    char serr[ADJ_ERRLEN];
    if (final && !canceled && save_status(js, j, serr, sizeof serr) && st == JS_FAILED) {
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
        jlog(j->id, "done: %zu images, %.2f images/s", total, rate);
    else if (st == JS_FAILED)
        jlog(j->id, "failed after %zu of %zu images: %s", done, total, err);
    else if (st == JS_CANCELED)
        jlog(j->id, "canceled after %zu of %zu images", done, total);
    else
        jlog(j->id, "stopped after %zu of %zu images; it resumes at the next start", done, total);
    if (final)
        drop_files(j);
}

static void *runner_main(void *arg)
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
        iso_now(j->started);
        j->t0 = ut_now();
        j->done0 = j->done;
        pthread_mutex_unlock(&js->lock);
        jlog(j->id, "running: %zu images, %zu done", j->total, j->done);
        run_job(js, j);
        pthread_mutex_lock(&js->lock);
    }
    pthread_mutex_unlock(&js->lock);
    return NULL;
}

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
                     js->jobs_dir, path, file_strerror(errno));
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
            int lrc = load_all(js, &n, msg, sizeof msg);
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

int srv_jobs_new(const srv_jobs_opts *o, const model *m, srv_worker *w, srv_jobs **out,
                 char *err, size_t errsz)
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
    js->m = m;
    js->spec = model_get_spec(m);
    js->w = w;
    pthread_mutex_init(&js->lock, NULL);
    pthread_mutex_init(&js->claim, NULL);
    pthread_cond_init(&js->cond, NULL);
    int rc = ADJ_OK;
    if (!(js->jobs_dir = strdup(o->jobs_dir))) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (o->data_root) {
        char real[PATH_MAX];
        if (!realpath(o->data_root, real)) {
            rc = adj_fail(err, errsz, ADJ_ERR_IO, "--data-root %s: %s", o->data_root,
                          strerror(errno));
            goto fail;
        }
        if (!(js->root = strdup(real))) {
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
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
    if (pthread_create(&js->runner, NULL, runner_main, js)) {
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
        job_free(j);
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
static json_t *request_json(const srv_jobs *js, const char *id, const srv_eval_request *rq,
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
    PUT("model", json_pack("{s:s,s:i,s:i,s:i}", "name", js->spec->name, "classes",
                           js->spec->classes, "input_size", js->spec->input_size, "scale_size",
                           js->spec->scale_size));
    PUT("upload", json_boolean(rq->dataset == NULL));
    PUT("dataset", rq->dataset ? json_string(rq->dataset) : json_null());
    PUT("images_dir", set->dir ? json_string(set->dir) : json_null());
    PUT("ground_truth", rq->ground_truth ? json_string(rq->ground_truth) : json_null());
    PUT("labels", set->labels_from && !rq->ground_truth ? json_string(set->labels_from)
                                                          : json_null());
    PUT("eps", eps);
    PUT("quality", json_integer(rq->params.quality));
    PUT("seed", seed_json(rq->seed));
    PUT("offset", json_integer(rq->offset));
    PUT("limit", rq->limit >= 0 ? json_integer(rq->limit) : json_null());
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
    rc = rq->dataset ? srv_eval_resolve(js->root, rq, js->spec->classes, &set, err, errsz)
                     : srv_eval_uploads(rq, js->spec->classes, &set, err, errsz);
    if (rc) /* the request names something wrong (a folder, a file, a label) */
        return rc == ADJ_ERR_NOMEM ? rc : ADJ_ERR_ARG;
    char tmp[PATH_MAX], final_dir[PATH_MAX], created[32];
    json_t *req = NULL;
    char *text = NULL;
    job *j = NULL;
    if (!claim_folder(js, 1, NULL)) {
        pthread_mutex_lock(&js->lock);
        rc = adj_fail(err, errsz, ADJ_ERR_STATE, "%s", js->unavailable);
        pthread_mutex_unlock(&js->lock);
        goto out;
    }
    for (int tries = 0;; tries++) {
        if (new_id(id)) {
            rc = adj_fail(err, errsz, ADJ_ERR_IO, "no random numbers: %s", strerror(errno));
            goto out;
        }
        snprintf(tmp, sizeof tmp, "%s/.new-%s", js->jobs_dir, id);
        snprintf(final_dir, sizeof final_dir, "%s/%s", js->jobs_dir, id);
        struct stat sb;
        int taken = lstat(final_dir, &sb) == 0;
        if (!taken && mkdir(tmp, 0700) == 0)
            break;
        int e = taken ? EEXIST : errno; /* mkdir's errno, not a later call's */
        if (e != EEXIST || tries > 100) {
            rc = adj_fail(err, errsz, ADJ_ERR_IO, "cannot create a job folder in %s: %s",
                          js->jobs_dir, strerror(e));
            goto out;
        }
    }
    int64_t cms = ut_wall_ms();
    iso_now(created);
    if (!rq->dataset && (rc = store_uploads(tmp, rq, err, errsz)))
        goto out_rm;
    req = request_json(js, id, rq, &set, cms, created);
    text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!text) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        goto out_rm;
    }
    if ((rc = ut_write_atomic(tmp, "request.json", text, strlen(text), 0600, err, errsz)))
        goto out_rm;
    char *header = srv_rows_header(&rq->params);
    if (!header) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        goto out_rm;
    }
    size_t header_len = strlen(header);
    rc = ut_write_atomic(tmp, "rows.csv", header, header_len, 0600, err, errsz);
    free(header);
    if (rc)
        goto out_rm;
    /* the job, in memory, before it appears on disk */
    if (!(j = job_alloc()) || !(j->dir = strdup(final_dir))) {
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        goto out_rm;
    }
    snprintf(j->id, sizeof j->id, "%.*s", SRV_JOB_ID_LEN, id);
    j->params = rq->params;
    j->seed = rq->seed;
    j->classes = js->spec->classes;
    j->has_truth = set.truth != NULL;
    j->upload = rq->dataset == NULL;
    j->total = set.n;
    j->created_ms = cms;
    j->rows_len = header_len;
    j->files = set.files;
    j->truth = set.truth;
    j->images_dir = set.dir;
    set.files = NULL;
    set.truth = NULL;
    set.dir = NULL;
    json_object_del(req, "files");
    json_object_del(req, "truth");
    j->info = req;
    req = NULL;
    if (rename(tmp, final_dir)) {
        rc = adj_fail(err, errsz, ADJ_ERR_IO, "cannot create %s: %s", final_dir, strerror(errno));
        goto out_rm;
    }
    ut_fsync_dir(js->jobs_dir);
    j->state = JS_QUEUED;
    pthread_mutex_lock(&js->lock);
    job **tail = &js->head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
    pthread_cond_broadcast(&js->cond);
    pthread_mutex_unlock(&js->lock);
    jlog(id, "queued: %zu images from %s%s", j->total, rq->dataset ? "dataset " : "an upload",
         rq->dataset ? rq->dataset : "");
    j = NULL;
    rc = ADJ_OK;
    goto out;
out_rm:
    ut_rmtree(tmp, NULL, 0);
out:
    job_free(j);
    json_decref(req);
    free(text);
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
    job *j = find(js, id);
    json_t *o = j ? job_json(j) : NULL;
    pthread_mutex_unlock(&js->lock);
    if (!j)
        return ADJ_ERR_NOTFOUND;
    if (!o)
        return ADJ_ERR_NOMEM;
    *out = o;
    return ADJ_OK;
}

json_t *srv_jobs_list(srv_jobs *js)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    pthread_mutex_lock(&js->lock);
    int bad = 0;
    for (job *j = js->head; j && !bad; j = j->next)
        bad = json_array_append_new(arr, job_json(j)) != 0;
    pthread_mutex_unlock(&js->lock);
    json_t *o = bad ? NULL : json_pack("{s:o}", "jobs", arr);
    if (!o && bad)
        json_decref(arr);
    return o;
}

int srv_jobs_cancel(srv_jobs *js, const char *id, json_t **out)
{
    pthread_mutex_lock(&js->lock);
    job *j = find(js, id); /* jobs are never freed before the store */
    pthread_mutex_unlock(&js->lock);
    if (!j)
        return ADJ_ERR_NOTFOUND;
    pthread_mutex_lock(&j->io);
    pthread_mutex_lock(&js->lock);
    int changed = 0;
    if (j->state == JS_QUEUED || j->state == JS_RUNNING) {
        double rate = job_rate(j);
        if (rate > 0)
            j->rate = rate;
        j->cancel = 1;
        j->state = JS_CANCELED;
        iso_now(j->finished);
        changed = 1;
        pthread_cond_broadcast(&js->cond);
    }
    size_t done = j->done, total = j->total;
    pthread_mutex_unlock(&js->lock);
    char serr[ADJ_ERRLEN];
    if (changed && save_status(js, j, serr, sizeof serr)) {
        /* a full disk: the cancellation is not kept, and the next start resumes the job */
        pthread_mutex_lock(&js->lock);
        snprintf(j->error, sizeof j->error,
                 "canceled, but that could not be saved (%.400s), so it resumes at the next start",
                 serr);
        pthread_mutex_unlock(&js->lock);
    }
    if (changed)
        jlog(j->id, "canceled at %zu of %zu images", done, total);
    pthread_mutex_unlock(&j->io);
    return srv_jobs_status(js, id, out);
}

/* What reading a job's rows needs, copied under the lock. */
typedef struct {
    char dir[PATH_MAX];
    uint64_t rows_len;
    exp_params params;
    int classes, has_truth;
    job_state state;
    size_t total;
    json_t *info; /* borrowed: immutable and as long-lived as the store */
    char error[ADJ_ERRLEN];
} snapshot;

static int take_snapshot(srv_jobs *js, const char *id, snapshot *s)
{
    pthread_mutex_lock(&js->lock);
    job *j = find(js, id);
    if (j) {
        snprintf(s->dir, sizeof s->dir, "%s", j->dir);
        s->rows_len = j->rows_len;
        s->params = j->params;
        s->classes = j->classes;
        s->has_truth = j->has_truth;
        s->state = j->state;
        s->total = j->total;
        s->info = j->info;
        snprintf(s->error, sizeof s->error, "%s", j->error);
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
                        file_strerror(errno));
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

int srv_jobs_result(srv_jobs *js, const char *id, json_t **out, char *err, size_t errsz)
{
    snapshot s;
    if (take_snapshot(js, id, &s))
        return adj_fail(err, errsz, ADJ_ERR_NOTFOUND, "no such job: %s", id);
    srv_rows rows;
    int rc = read_rows(&s, id, &rows, err, errsz);
    if (rc)
        return rc;
    json_t *table = srv_rows_table(&rows, &s.params, s.has_truth);
    json_t *eps = json_object_get(s.info, "eps");
    json_t *o = table ? json_pack("{s:s,s:s,s:b,s:I,s:I,s:I,s:O,s:i,s:O,s:O,s:O,s:{s:s,s:s,s:s},s:o}",
                                  "id", id, "status", STATE_NAMES[s.state], "complete",
                                  s.state == JS_DONE && rows.n == s.total, "n",
                                  (json_int_t)(rows.n - rows.skipped), "skipped",
                                  (json_int_t)rows.skipped, "total", (json_int_t)s.total, "eps",
                                  eps, "quality", s.params.quality, "seed",
                                  json_object_get(s.info, "seed"), "model",
                                  json_object_get(json_object_get(s.info, "model"), "name"),
                                  "dataset", json_object_get(s.info, "dataset"), "notes",
                                  "quartiles", "linear interpolation between order statistics (type 7)",
                                  "whiskers", "the last values within 1.5 IQR of the box",
                                  "outliers", "box.outliers counts the values beyond the whiskers; "
                                              "the values are in the rows",
                                  "table", table)
                      : NULL;
    srv_rows_free(&rows);
    if (!o)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
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

int srv_jobs_figure(srv_jobs *js, const char *id, srv_figure which, char **svg, size_t *len,
                    char *err, size_t errsz)
{
    snapshot s;
    if (take_snapshot(js, id, &s))
        return adj_fail(err, errsz, ADJ_ERR_NOTFOUND, "no such job: %s", id);
    srv_rows rows;
    int rc = read_rows(&s, id, &rows, err, errsz);
    if (rc)
        return rc;
    const char *dataset = json_string_value(json_object_get(s.info, "dataset"));
    const char *mname =
        json_string_value(json_object_get(json_object_get(s.info, "model"), "name"));
    char caption[512];
    snprintf(caption, sizeof caption, "job %s: %s, model %s, %zu of %zu images%s", id,
             dataset ? dataset : "uploaded images", mname ? mname : "?", rows.n - rows.skipped,
             s.total, s.state == JS_DONE ? "" : " (so far)");
    rc = which == SRV_FIGURE_3 ? srv_svg_figure3(&rows, &s.params, caption, svg, len)
                               : srv_svg_figure4(&rows, &s.params, caption, svg, len);
    srv_rows_free(&rows);
    if (rc)
        return adj_fail(err, errsz, rc, "out of memory");
    return ADJ_OK;
}
