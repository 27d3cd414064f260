/*
 * test_jobs_disk.c - evaluation jobs against a hostile disk (issue 11,
 * section 3): each case is a job folder damaged by hand or a disk that
 * misbehaves, then a daemon started on it.
 *
 *   - an unfinished job whose status.json does not parse (the daemon used
 *     to crash at every start): failed with why, the other jobs serve;
 *   - status.json says done but rows.csv holds fewer rows; an empty
 *     rows.csv; an unreadable request.json: failed with why, the status,
 *     /result and /rows agree with the rows;
 *   - symbolic links planted as rows.csv, as the jobs folder's .lock and as
 *     status.json's temporary file: their targets are never written;
 *   - a jobs folder that others can write: refused until it is fixed;
 *   - a second daemon on a folder in use: it takes the folder over once the
 *     first one is gone;
 *   - a read-only jobs folder (a read-only tmpfs): one line naming the folder
 *     and the real errno, jobs answer 503 with it;
 *   - a full disk (a small tmpfs) while rows are appended and a job is
 *     created: the job fails with the reason, rows.csv keeps only complete
 *     rows, and the job ends with the uninterrupted run's rows;
 *   - listening on a non-loopback address without a token: a warning.
 *
 * The tmpfs cases need the right to mount (root); without it they are
 * skipped with a message. Needs $ADVJPGD (set by tests/meson.build).
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "image.h"
#include "model.h"
#include "server_harness.h"
#include "testutil.h"

#define N_IMAGES 40

static char TMP[4096], DATA[4200], SPEC[4200], WEIGHTS[4200], CONF[4200];
static char REF_ID[17], REF_DIR[4400]; /* a done job: the template of every case */
static char *REF_ROWS;                 /* its rows.csv */
static size_t REF_LEN, REF_HEADER;     /* its length, its header's length */

static const char BODY[] = "{\"dataset\": \"set\", \"eps\": [1,2,3,4,5,6,7,8,9,10]}";

static const char SPEC_TEXT[] =
    "{\"name\": \"disknet\", \"channels\": 3, \"input_size\": 32, \"scale_size\": 36,\n"
    " \"mean\": 118.380948, \"std\": 61.896913, \"classes\": 14,\n"
    " \"layers\": [\n"
    "   {\"type\": \"conv\", \"out\": 8, \"kernel\": 3, \"stride\": 1, \"pad\": 1},\n"
    "   {\"type\": \"relu\"},\n"
    "   {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},\n"
    "   {\"type\": \"fc\", \"out\": 14}]}\n";

/* ---------------------------------------------------------------- helpers */

__attribute__((format(printf, 3, 4))) static void path_of(char *buf, size_t size,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* Runs a shell command; its exit status. */
__attribute__((format(printf, 1, 2))) static int sys(const char *fmt, ...)
{
    char cmd[20000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *read_text(const char *path, size_t *len)
{
    size_t n = 0;
    uint8_t *b = tu_read_file(path, &n);
    if (!b)
        return NULL;
    char *s = realloc(b, n + 1);
    s[n] = '\0';
    if (len)
        *len = n;
    return s;
}

static int log_has(const sh_daemon *d, const char *needle)
{
    char *log = sh_log(d);
    int has = log && strstr(log, needle);
    free(log);
    return has;
}

static int start(sh_daemon *d, const char *name, const char *jobs, const char *x1, const char *x2)
{
    const char *args[] = {"--config", CONF, "--model", SPEC, "--weights", WEIGHTS, "--data-root",
                          DATA, "--jobs-dir", jobs, "--job-batch", "4", x1, x2, NULL};
    return sh_start(d, name, args, 60);
}

/* Bytes of the header and the first n rows of the reference rows. */
static size_t ref_prefix(size_t n)
{
    size_t pos = REF_HEADER;
    for (size_t i = 0; i < n && pos < REF_LEN; i++)
        pos = (size_t)(strchr(REF_ROWS + pos, '\n') - REF_ROWS) + 1;
    return pos;
}

/* Rows in text when it is the header and whole rows of the reference, else -1. */
static long ref_rows_in(const char *text, size_t len)
{
    if (!text || len < REF_HEADER || len > REF_LEN || memcmp(text, REF_ROWS, len) != 0 ||
        text[len - 1] != '\n')
        return -1;
    long n = -1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

/*
 * A copy of the reference job in jobs/ID (request.json rewritten for the
 * id). rows >= 0: made unfinished (no status.json) with that many rows.
 */
static void clone_job(const char *jobs, const char *id, long rows)
{
    char dir[4500], p[4600];
    mkdir(jobs, 0700);
    path_of(dir, sizeof dir, "%s/%s", jobs, id);
    if (sys("cp -a '%s' '%s'", REF_DIR, dir)) {
        fprintf(stderr, "cannot copy %s\n", REF_DIR);
        exit(1);
    }
    path_of(p, sizeof p, "%s/request.json", dir);
    size_t len;
    char *req = read_text(p, &len);
    for (char *q = req; q && (q = strstr(q, REF_ID));)
        memcpy(q, id, 16);
    tu_write_file(p, req, len);
    free(req);
    if (rows >= 0) {
        path_of(p, sizeof p, "%s/status.json", dir);
        unlink(p);
        path_of(p, sizeof p, "%s/rows.csv", dir);
        tu_write_file(p, REF_ROWS, ref_prefix((size_t)rows));
    }
}

/* GET /jobs/ID: its status, done and error. 0 when it answered 200. */
static int job_state(int port, const char *id, char *status, long *done, char *error, size_t esz)
{
    char path[64];
    long code;
    path_of(path, sizeof path, "/jobs/%s", id);
    json_t *j = sh_get_json(port, path, &code);
    snprintf(status, 32, "%s", sh_jstr(j, "status"));
    *done = sh_jint(j, "done");
    snprintf(error, esz, "%s", sh_jstr(j, "error"));
    json_decref(j);
    return code == 200 ? 0 : -1;
}

/* GET /jobs/ID/SUB: the status; the body (new, NUL-terminated) in *body when not NULL. */
static long get_sub(int port, const char *id, const char *sub, char **body, size_t *len)
{
    char path[96];
    path_of(path, sizeof path, "/jobs/%s%s", id, sub);
    sh_resp r;
    sh_http(port, "GET", path, NULL, NULL, 0, &r);
    long st = r.status;
    if (body) {
        *body = (char *)r.body;
        r.body = NULL;
    }
    if (len)
        *len = r.len;
    sh_resp_free(&r);
    return st;
}

/* /result's "n" (evaluated rows), -1 unless 200. */
static long result_n(int port, const char *id)
{
    char *body = NULL;
    size_t len;
    long st = get_sub(port, id, "/result", &body, &len);
    json_t *j = json_loadb(body ? body : "", len, 0, NULL);
    long n = st == 200 ? sh_jint(j, "n") : -1;
    json_decref(j);
    free(body);
    return n;
}

/* The "error" of a JSON error answer of /jobs/ID/SUB (copied into msg); its status. */
static long sub_error(int port, const char *id, const char *sub, char *msg, size_t msgsz)
{
    char *body = NULL;
    size_t len;
    long st = get_sub(port, id, sub, &body, &len);
    json_t *j = json_loadb(body ? body : "", len, 0, NULL);
    snprintf(msg, msgsz, "%s", sh_jstr(j, "error"));
    json_decref(j);
    free(body);
    return st;
}

/* Whether mounting works here (root with CAP_SYS_ADMIN); a tmpfs at dir if so. */
static int mount_tmpfs(const char *dir, const char *opts)
{
    mkdir(dir, 0700);
    if (mount("tmpfs", dir, "tmpfs", 0, opts)) {
        fprintf(stderr, "test_jobs_disk: SKIP the tmpfs cases at %s: cannot mount a tmpfs (%s)\n",
                dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- setup */

static void make_data(void)
{
    char p[4600], err[ADJ_ERRLEN];
    path_of(p, sizeof p, "%s/set", DATA);
    if (mkdir(DATA, 0755) || mkdir(p, 0755)) {
        perror(p);
        exit(1);
    }
    char labels[N_IMAGES * 24];
    size_t ll = 0;
    for (int i = 0; i < N_IMAGES; i++) {
        img_rgb im;
        sh_test_image(&im, 48, 40 + i % 9, (uint64_t)i + 1);
        uint8_t *buf = NULL;
        size_t len = 0;
        path_of(p, sizeof p, "%s/set/img_%02d.png", DATA, i);
        if (img_encode_png(&im, &buf, &len, err, sizeof err) || tu_write_file(p, buf, len)) {
            fprintf(stderr, "cannot write %s\n", p);
            exit(1);
        }
        free(buf);
        img_free(&im);
        ll += (size_t)snprintf(labels + ll, sizeof labels - ll, "img_%02d.png\t%d\n", i, i % 14);
    }
    path_of(p, sizeof p, "%s/set/labels.txt", DATA);
    tu_write_file(p, labels, ll);
}

/* The reference job: run once, uninterrupted, to done. */
static int make_reference(void)
{
    char jobs[4400];
    path_of(jobs, sizeof jobs, "%s/jobs-ref", TMP);
    sh_daemon d;
    if (start(&d, "ref", jobs, NULL, NULL)) {
        CHECK(0, "the reference daemon starts");
        return -1;
    }
    char msg[512];
    long st = sh_post_evaluate(d.port, BODY, REF_ID, msg, sizeof msg);
    CHECK(st == 202, "reference job: 202 (%ld %s)", st, msg);
    json_t *j = sh_wait_job(d.port, REF_ID, 120);
    int ok = strcmp(sh_jstr(j, "status"), "done") == 0 && sh_jint(j, "done") == N_IMAGES;
    CHECK(ok, "the reference job is done (%s)", sh_jstr(j, "status"));
    json_decref(j);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "reference daemon: clean stop");
    path_of(REF_DIR, sizeof REF_DIR, "%s/%s", jobs, REF_ID);
    char p[4500];
    path_of(p, sizeof p, "%s/rows.csv", REF_DIR);
    REF_ROWS = read_text(p, &REF_LEN);
    if (!ok || !REF_ROWS)
        return -1;
    REF_HEADER = (size_t)(strchr(REF_ROWS, '\n') - REF_ROWS) + 1;
    CHECK(ref_rows_in(REF_ROWS, REF_LEN) == N_IMAGES, "the reference has %d rows", N_IMAGES);
    return 0;
}

/* ---------------------------------------------------------------- cases */

/*
 * An unfinished job whose status.json does not parse, beside an intact
 * unfinished job, a done one and a fresh request: the daemon starts, the
 * damaged job is failed with why, the others serve.
 */
static void test_crash_loop(void)
{
    char jobs[4400], p[4600];
    path_of(jobs, sizeof jobs, "%s/jobs-crash", TMP);
    const char *bad = "00000000000000a1", *resume = "00000000000000a2", *done = "00000000000000a3";
    clone_job(jobs, bad, 9);
    path_of(p, sizeof p, "%s/%s/status.json", jobs, bad);
    tu_write_file(p, "{\"status\": \"do", 14);
    clone_job(jobs, resume, 12); /* on the chunk grid (4): the same batches as the reference */
    clone_job(jobs, done, -1);
    for (int round = 0; round < 2; round++) { /* and again: the verdict is kept */
        sh_daemon d;
        if (start(&d, "crash", jobs, NULL, NULL)) {
            CHECK(0, "crash loop, start %d: a damaged status.json does not stop the daemon", round);
            return;
        }
        char st[32], err[ADJ_ERRLEN];
        long n;
        CHECK(job_state(d.port, bad, st, &n, err, sizeof err) == 0 && strcmp(st, "failed") == 0 &&
                  strstr(err, "status.json was damaged") && n == 9,
              "crash loop, start %d: the job is failed with why (%s, %ld rows, '%s')", round, st, n,
              err);
        CHECK(result_n(d.port, bad) == 9, "crash loop: /result has its 9 rows");
        json_t *j = sh_wait_job(d.port, resume, 60);
        CHECK(strcmp(sh_jstr(j, "status"), "done") == 0 && sh_jint(j, "done") == N_IMAGES,
              "crash loop: the intact unfinished job resumes and is done (%s)", sh_jstr(j, "status"));
        json_decref(j);
        char *rows = NULL;
        size_t len = 0;
        CHECK(get_sub(d.port, resume, "/rows", &rows, &len) == 200 &&
                  ref_rows_in(rows, len) == N_IMAGES,
              "crash loop: the resumed job's rows are the uninterrupted run's");
        free(rows);
        CHECK(job_state(d.port, done, st, &n, err, sizeof err) == 0 && !strcmp(st, "done") &&
                  n == N_IMAGES,
              "crash loop: the done job is done (%s %ld)", st, n);
        char id[17], msg[512];
        CHECK(sh_post_evaluate(d.port, "{\"dataset\": \"set\", \"limit\": 3}", id, msg,
                               sizeof msg) == 202,
              "crash loop: a new job is accepted (%s)", msg);
        j = sh_wait_job(d.port, id, 60);
        CHECK(strcmp(sh_jstr(j, "status"), "done") == 0, "crash loop: the new job is done");
        json_decref(j);
        CHECK(sh_stop(&d, SIGTERM, 30) == 0, "crash loop: clean stop");
    }
}

/* Finished jobs whose files disagree: the rows decide, and every answer agrees with them. */
static void test_damaged_finished(void)
{
    char jobs[4400], p[4600];
    path_of(jobs, sizeof jobs, "%s/jobs-damaged", TMP);
    const char *short_rows = "00000000000000b1", *empty = "00000000000000b2",
               *noreq = "00000000000000b3", *tail = "00000000000000b4",
               *notdir = "00000000000000b5";
    clone_job(jobs, short_rows, -1);
    path_of(p, sizeof p, "%s/%s/rows.csv", jobs, short_rows);
    tu_write_file(p, REF_ROWS, ref_prefix(17) + 25); /* 17 rows and a torn one */
    clone_job(jobs, empty, -1);
    path_of(p, sizeof p, "%s/%s/rows.csv", jobs, empty);
    tu_write_file(p, "", 0);
    clone_job(jobs, noreq, -1);
    path_of(p, sizeof p, "%s/%s/request.json", jobs, noreq);
    tu_write_file(p, "{\"id\": ", 7);
    clone_job(jobs, tail, -1); /* all rows, then garbage: done, the garbage is not served */
    path_of(p, sizeof p, "%s/%s/rows.csv", jobs, tail);
    char *t = malloc(REF_LEN + 16);
    memcpy(t, REF_ROWS, REF_LEN);
    memcpy(t + REF_LEN, "junk,1,2\n", 9);
    tu_write_file(p, t, REF_LEN + 9);
    free(t);
    path_of(p, sizeof p, "%s/%s", jobs, notdir);
    tu_write_file(p, "a file named like a job", 23);

    sh_daemon d;
    if (start(&d, "damaged", jobs, NULL, NULL)) {
        CHECK(0, "damaged jobs: the daemon starts");
        return;
    }
    char st[32], err[ADJ_ERRLEN], msg[ADJ_ERRLEN];
    long n;
    CHECK(job_state(d.port, short_rows, st, &n, err, sizeof err) == 0 && !strcmp(st, "failed") &&
              n == 17 && strstr(err, "holds 17 valid rows of 40"),
          "done in status.json, 17 rows in rows.csv: failed, done 17 (%s %ld '%s')", st, n, err);
    CHECK(result_n(d.port, short_rows) == 17, "17 rows: /result has n 17, as the status says");
    char *rows = NULL;
    size_t len = 0;
    CHECK(get_sub(d.port, short_rows, "/rows", &rows, &len) == 200 && ref_rows_in(rows, len) == 17,
          "17 rows: /rows serves them and not the torn one (%zu bytes)", len);
    free(rows);

    CHECK(job_state(d.port, empty, st, &n, err, sizeof err) == 0 && !strcmp(st, "failed") &&
              n == 0 && strstr(err, "rows.csv is damaged: empty"),
          "empty rows.csv: failed with why (%s %ld '%s')", st, n, err);
    long code = sub_error(d.port, empty, "/rows", msg, sizeof msg);
    CHECK(code == 500 && strstr(msg, "has no readable rows"),
          "empty rows.csv: /rows is an error, not 200 with 0 bytes (%ld '%s')", code, msg);
    code = sub_error(d.port, empty, "/result", msg, sizeof msg);
    CHECK(code == 500 && strstr(msg, "has no readable rows"), "empty rows.csv: /result too (%ld)",
          code);

    CHECK(job_state(d.port, noreq, st, &n, err, sizeof err) == 0 && !strcmp(st, "failed") &&
              strstr(err, "request.json: not valid JSON"),
          "unreadable request.json: listed as failed with why, not gone (%s '%s')", st, err);
    code = sub_error(d.port, noreq, "/figure3.svg", msg, sizeof msg);
    CHECK(code == 500 && strstr(msg, "request.json"), "unreadable request.json: /figure3.svg says "
                                                      "why (%ld '%s')", code, msg);
    json_t *list = sh_get_json(d.port, "/jobs", &code);
    CHECK(code == 200 && json_array_size(json_object_get(list, "jobs")) == 4,
          "GET /jobs lists the 4 jobs, not the file (%zu)",
          json_array_size(json_object_get(list, "jobs")));
    json_decref(list);

    CHECK(job_state(d.port, tail, st, &n, err, sizeof err) == 0 && !strcmp(st, "done") &&
              n == N_IMAGES,
          "all rows then garbage: done (%s %ld)", st, n);
    rows = NULL;
    CHECK(get_sub(d.port, tail, "/rows", &rows, &len) == 200 && ref_rows_in(rows, len) == N_IMAGES,
          "all rows then garbage: /rows serves the rows only");
    free(rows);
    CHECK(log_has(&d, "ignored: not a folder"), "a file named like a job is logged and ignored");
    char err_short[ADJ_ERRLEN], err_empty[ADJ_ERRLEN];
    job_state(d.port, short_rows, st, &n, err_short, sizeof err_short);
    job_state(d.port, empty, st, &n, err_empty, sizeof err_empty);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "damaged jobs: clean stop");

    /* the next start finds the same, saved: the same answers, no new verdict */
    if (start(&d, "damaged-again", jobs, NULL, NULL)) {
        CHECK(0, "damaged jobs: the daemon restarts");
        return;
    }
    CHECK(job_state(d.port, short_rows, st, &n, err, sizeof err) == 0 && !strcmp(st, "failed") &&
              n == 17 && !strcmp(err, err_short),
          "17 rows, restarted: the same error ('%s')", err);
    CHECK(job_state(d.port, empty, st, &n, err, sizeof err) == 0 && !strcmp(st, "failed") &&
              !strcmp(err, err_empty),
          "empty rows.csv, restarted: the same error ('%s')", err);
    CHECK(!log_has(&d, "00000000000000b1: failed") && !log_has(&d, "00000000000000b2: failed"),
          "restarted: the saved verdicts are not made again");
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "damaged jobs: clean stop");
}

/* Links planted where the daemon writes: their targets stay as they are. */
static void test_links(void)
{
    char jobs[4400], p[4600], target[4600];
    path_of(jobs, sizeof jobs, "%s/jobs-links", TMP);
    path_of(target, sizeof target, "%s/precious.txt", TMP);
    static const char precious[] = "precious data, not a rows file\n";
    tu_write_file(target, precious, sizeof precious - 1);
    const char *unfinished = "00000000000000c1", *finished = "00000000000000c2",
               *tmplink = "00000000000000c3";
    clone_job(jobs, unfinished, 5);
    path_of(p, sizeof p, "%s/%s/rows.csv", jobs, unfinished);
    unlink(p);
    symlink(target, p);
    clone_job(jobs, finished, -1);
    path_of(p, sizeof p, "%s/%s/rows.csv", jobs, finished);
    unlink(p);
    symlink(target, p);
    clone_job(jobs, tmplink, 20); /* resumes; status.json is written through its temporary */
    path_of(p, sizeof p, "%s/%s/.status.json.tmp", jobs, tmplink);
    symlink(target, p);

    sh_daemon d;
    if (start(&d, "links", jobs, NULL, NULL)) {
        CHECK(0, "links: the daemon starts");
        return;
    }
    char st[32], err[ADJ_ERRLEN], msg[ADJ_ERRLEN];
    long n;
    CHECK(job_state(d.port, unfinished, st, &n, err, sizeof err) == 0 && !strcmp(st, "failed") &&
              strstr(err, "rows.csv: it is a symbolic link (refused)"),
          "rows.csv a link, unfinished job: failed with why (%s '%s')", st, err);
    CHECK(job_state(d.port, finished, st, &n, err, sizeof err) == 0 && !strcmp(st, "failed") &&
              strstr(err, "symbolic link"),
          "rows.csv a link, finished job: failed with why (%s '%s')", st, err);
    long code = sub_error(d.port, finished, "/rows", msg, sizeof msg);
    CHECK(code == 500, "rows.csv a link: /rows does not serve its target (%ld '%s')", code, msg);
    json_t *j = sh_wait_job(d.port, tmplink, 60);
    CHECK(strcmp(sh_jstr(j, "status"), "done") == 0, "a link as status.json's temporary: the job "
                                                     "still finishes (%s)", sh_jstr(j, "status"));
    json_decref(j);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "links: clean stop");
    struct stat sb;
    path_of(p, sizeof p, "%s/%s/status.json", jobs, tmplink);
    CHECK(lstat(p, &sb) == 0 && S_ISREG(sb.st_mode), "status.json is a file of its own");

    /* the jobs folder's lock file */
    char jobs2[4400];
    path_of(jobs2, sizeof jobs2, "%s/jobs-lock-link", TMP);
    clone_job(jobs2, "00000000000000c4", -1);
    path_of(p, sizeof p, "%s/.lock", jobs2);
    symlink(target, p);
    if (start(&d, "lock-link", jobs2, NULL, NULL) == 0) {
        json_t *o = sh_get_json(d.port, "/jobs", &code);
        CHECK(code == 503 && strstr(sh_jstr(o, "error"), ".lock: it is a symbolic link (refused)"),
              ".lock a link: jobs unavailable with why (%ld '%s')", code, sh_jstr(o, "error"));
        json_decref(o);
        sh_stop(&d, SIGTERM, 30);
    } else {
        CHECK(0, ".lock a link: the daemon starts");
    }
    size_t len = 0;
    char *now = read_text(target, &len);
    CHECK(now && len == sizeof precious - 1 && memcmp(now, precious, len) == 0,
          "the links' target is untouched (%zu bytes)", len);
    free(now);
}

/* A jobs folder that others can write is refused, and used once it is fixed. */
static void test_others_can_write(void)
{
    char jobs[4400];
    path_of(jobs, sizeof jobs, "%s/jobs-open", TMP);
    clone_job(jobs, "00000000000000d1", -1);
    chmod(jobs, 0777);
    sh_daemon d;
    if (start(&d, "open", jobs, NULL, NULL)) {
        CHECK(0, "open folder: the daemon starts");
        return;
    }
    CHECK(log_has(&d, "others can write it (mode 0777)"), "open folder: one line says why");
    long code;
    json_t *o = sh_get_json(d.port, "/jobs", &code);
    CHECK(code == 503 && strstr(sh_jstr(o, "error"), jobs) &&
              strstr(sh_jstr(o, "error"), "others can write it"),
          "open folder: GET /jobs 503 naming the folder (%ld '%s')", code, sh_jstr(o, "error"));
    json_decref(o);
    char msg[512];
    code = sh_post_evaluate(d.port, BODY, NULL, msg, sizeof msg);
    CHECK(code == 503 && strstr(msg, "others can write it"), "open folder: POST 503 (%ld '%s')",
          code, msg);
    chmod(jobs, 0700);
    o = sh_get_json(d.port, "/jobs", &code);
    CHECK(code == 200 && json_array_size(json_object_get(o, "jobs")) == 1,
          "fixed folder: GET /jobs 200 with its job, no restart needed (%ld)", code);
    json_decref(o);
    sh_stop(&d, SIGTERM, 30);
}

/* A second daemon takes the folder over once the first one is gone. */
static void test_second_daemon(void)
{
    char jobs[4400];
    path_of(jobs, sizeof jobs, "%s/jobs-two", TMP);
    clone_job(jobs, "00000000000000e1", -1);
    sh_daemon a, b;
    if (start(&a, "first", jobs, NULL, NULL) || start(&b, "second", jobs, NULL, NULL)) {
        CHECK(0, "two daemons start");
        return;
    }
    long code;
    char want[64];
    snprintf(want, sizeof want, "in use by another advjpgd (pid %d)", (int)a.pid);
    json_t *o = sh_get_json(b.port, "/jobs", &code);
    CHECK(code == 503 && strstr(sh_jstr(o, "error"), want), "second daemon: 503 naming pid %d (%s)",
          (int)a.pid, sh_jstr(o, "error"));
    json_decref(o);
    CHECK(sh_stop(&a, SIGKILL, 10) == 1000 + SIGKILL, "the first daemon is killed");
    o = sh_get_json(b.port, "/jobs", &code);
    CHECK(code == 200 && json_array_size(json_object_get(o, "jobs")) == 1,
          "second daemon, the first gone: GET /jobs 200 with the folder's job (%ld '%s')", code,
          sh_jstr(o, "error"));
    json_decref(o);
    char id[17], msg[512];
    CHECK(sh_post_evaluate(b.port, "{\"dataset\": \"set\", \"limit\": 2}", id, msg, sizeof msg) ==
              202,
          "second daemon: it takes new jobs (%s)", msg);
    CHECK(log_has(&b, "is usable now: 1 jobs loaded"), "second daemon: says it took the folder");
    sh_stop(&b, SIGTERM, 30);
}

/* A read-only jobs folder: one line naming it and the real errno; jobs 503 with it. */
static void test_read_only(void)
{
    char jobs[4400];
    path_of(jobs, sizeof jobs, "%s/jobs-ro", TMP);
    if (mount_tmpfs(jobs, "size=1m,mode=0700"))
        return;
    clone_job(jobs, "00000000000000f1", -1);
    if (mount("tmpfs", jobs, "tmpfs", MS_REMOUNT | MS_RDONLY, "mode=0700")) {
        fprintf(stderr, "test_jobs_disk: SKIP read-only: cannot remount (%s)\n", strerror(errno));
        umount(jobs);
        return;
    }
    sh_daemon d;
    if (start(&d, "ro", jobs, NULL, NULL) == 0) {
        char want[4600];
        snprintf(want, sizeof want, "the jobs folder %s: it is not writable: Read-only file system\n",
                 jobs);
        CHECK(log_has(&d, want), "read-only: one line naming the folder and EROFS");
        long code;
        json_t *o = sh_get_json(d.port, "/jobs", &code);
        CHECK(code == 503 && strstr(sh_jstr(o, "error"), "Read-only file system"),
              "read-only: GET /jobs 503 with the real errno (%ld '%s')", code, sh_jstr(o, "error"));
        json_decref(o);
        char msg[512];
        code = sh_post_evaluate(d.port, BODY, NULL, msg, sizeof msg);
        CHECK(code == 503 && strstr(msg, "Read-only file system") && strstr(msg, jobs),
              "read-only: POST /evaluate 503 naming the folder and the errno (%ld '%s')", code, msg);
        sh_resp r;
        sh_http(d.port, "GET", "/health", NULL, NULL, 0, &r);
        CHECK(r.status == 200, "read-only: the daemon serves the rest");
        sh_resp_free(&r);
        sh_stop(&d, SIGTERM, 30);
    } else {
        CHECK(0, "read-only: the daemon starts");
    }
    umount(jobs);
}

/* Fills the file system of dir but for about `left` bytes (a filler file). */
static int fill_fs(const char *filler, size_t left)
{
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    static char block[65536];
    off_t size = 0;
    for (;;) {
        ssize_t w = write(fd, block, sizeof block);
        if (w <= 0)
            break;
        size += w;
    }
    int rc = ftruncate(fd, size > (off_t)left ? size - (off_t)left : 0);
    close(fd);
    return rc;
}

/* A full disk while rows are appended and when a job is created. */
static void test_full_disk(void)
{
    char jobs[4400], filler[4600], p[4600];
    path_of(jobs, sizeof jobs, "%s/jobs-full", TMP);
    if (mount_tmpfs(jobs, "size=256k,mode=0700"))
        return;
    const char *id = "0000000000000f01";
    clone_job(jobs, id, 0);
    path_of(p, sizeof p, "%s/.lock", jobs);
    tu_write_file(p, "", 0); /* the daemon's pid goes in there: one page */
    path_of(filler, sizeof filler, "%s/filler", jobs);
    /* two pages: the header's page holds a few rows, the next about 9 more */
    if (fill_fs(filler, 8192)) {
        CHECK(0, "full disk: cannot fill the tmpfs");
        umount(jobs);
        return;
    }
    sh_daemon d;
    if (start(&d, "full", jobs, NULL, NULL)) {
        CHECK(0, "full disk: the daemon starts");
        umount(jobs);
        return;
    }
    json_t *j = sh_wait_job(d.port, id, 60);
    const char *err = sh_jstr(j, "error");
    long done = sh_jint(j, "done");
    CHECK(strcmp(sh_jstr(j, "status"), "failed") == 0 && strstr(err, "No space left on device") &&
              strstr(err, "rows.csv") && done > 0 && done < N_IMAGES,
          "full disk: the job fails with the reason (%s, %ld done, '%s')", sh_jstr(j, "status"),
          done, err);
    path_of(p, sizeof p, "%s/%s/status.json", jobs, id);
    /* "failed" shows as soon as the runner decides it; the attempt to save it,
     * and the words on its outcome, come just after: look again for a while */
    int saved = access(p, F_OK) == 0;
    for (int tries = 0; tries < 100 && !saved && !strstr(err, "could not be saved either"); tries++) {
        usleep(20000);
        json_decref(j);
        j = sh_wait_job(d.port, id, 60);
        err = sh_jstr(j, "error");
        saved = access(p, F_OK) == 0;
    }
    CHECK(saved ||
              (strstr(err, "could not be saved either") && strstr(err, "resumes at the next start")),
          "full disk: when the failure cannot be saved, the error says the job resumes ('%s')", err);
    json_decref(j);
    size_t len = 0;
    path_of(p, sizeof p, "%s/%s/rows.csv", jobs, id);
    char *rows = read_text(p, &len);
    CHECK(ref_rows_in(rows, len) == done, "full disk: rows.csv holds the %ld complete rows, no "
                                          "partial one (%ld)",
          done, ref_rows_in(rows, len));
    free(rows);
    rows = NULL;
    CHECK(get_sub(d.port, id, "/rows", &rows, &len) == 200 && ref_rows_in(rows, len) == done,
          "full disk: /rows serves them");
    free(rows);
    CHECK(result_n(d.port, id) == done, "full disk: /result counts them");
    char msg[512];
    long code = sh_post_evaluate(d.port, BODY, NULL, msg, sizeof msg);
    CHECK(code == 500 && strstr(msg, "No space left on device"),
          "full disk: a new job is refused with the reason (%ld '%s')", code, msg);
    CHECK(sys("ls -A '%s' | grep -q '^\\.new-'", jobs) != 0, "full disk: no half-made job left");
    sh_stop(&d, SIGTERM, 30);

    /* room again: the job resumes if its failure could not be saved, else stays failed */
    unlink(filler);
    if (start(&d, "full-again", jobs, NULL, NULL) == 0) {
        j = sh_wait_job(d.port, id, 60);
        if (saved)
            CHECK(strcmp(sh_jstr(j, "status"), "failed") == 0 &&
                      strstr(sh_jstr(j, "error"), "No space left on device"),
                  "full disk, status saved: still failed with the reason after a restart");
        else
            CHECK(strcmp(sh_jstr(j, "status"), "done") == 0,
                  "full disk, status not saved: the job resumes and is done (%s)",
                  sh_jstr(j, "status"));
        json_decref(j);
        rows = NULL;
        CHECK(get_sub(d.port, id, "/rows", &rows, &len) == 200 && ref_rows_in(rows, len) >= done,
              "full disk: after the restart the rows are the uninterrupted run's");
        free(rows);
        sh_stop(&d, SIGTERM, 30);
    } else {
        CHECK(0, "full disk: the daemon restarts");
    }
    umount(jobs);
}

/*
 * No inode left once the daemon holds the folder: creating a job folder
 * fails, and the answer gives mkdir's errno (it used to say "No such file
 * or directory", the errno of a later access()).
 */
static void test_no_inodes(void)
{
    char jobs[4400], p[4600];
    path_of(jobs, sizeof jobs, "%s/jobs-inodes", TMP);
    if (mount_tmpfs(jobs, "size=1m,nr_inodes=64,mode=0700"))
        return;
    sh_daemon d;
    if (start(&d, "inodes", jobs, NULL, NULL) == 0) {
        char id[17], msg[512];
        CHECK(sh_post_evaluate(d.port, "{\"dataset\": \"set\", \"limit\": 1}", id, msg,
                               sizeof msg) == 202,
              "no inodes: a first job takes the folder (%s)", msg);
        json_t *j = sh_wait_job(d.port, id, 60);
        json_decref(j);
        for (int i = 0; i < 1000; i++) { /* use up the inodes */
            path_of(p, sizeof p, "%s/f%d", jobs, i);
            if (tu_write_file(p, "", 0))
                break;
        }
        long code = sh_post_evaluate(d.port, BODY, NULL, msg, sizeof msg);
        CHECK(code == 500 && strstr(msg, "cannot create a job folder in") &&
                  strstr(msg, "No space left on device"),
              "no inodes: 500 with mkdir's errno (%ld '%s')", code, msg);
        sh_stop(&d, SIGTERM, 30);
    } else {
        CHECK(0, "no inodes: the daemon starts");
    }
    umount(jobs);
}

/* Listening beyond loopback without a token is warned about, and only that. */
static void test_listen_warning(void)
{
    char jobs[4400];
    path_of(jobs, sizeof jobs, "%s/jobs-listen", TMP);
    static const char warn[] = "not a loopback address, without a token";
    sh_daemon d;
    if (start(&d, "wild", jobs, "--listen", "0.0.0.0:0") == 0) {
        CHECK(log_has(&d, warn), "0.0.0.0 without a token: a warning");
        sh_stop(&d, SIGTERM, 30);
    }
    if (start(&d, "loop", jobs, NULL, NULL) == 0) {
        CHECK(!log_has(&d, warn), "127.0.0.1 without a token: no warning");
        sh_stop(&d, SIGTERM, 30);
    }
    if (start(&d, "tok", jobs, "--token", "s3cret-token") == 0) {
        char *log = sh_log(&d);
        CHECK(!strstr(log ? log : "", warn), "127.0.0.1 with a token: no warning");
        free(log);
        sh_stop(&d, SIGTERM, 30);
    }
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    (void)argc;
    if (!sh_program()) {
        fprintf(stderr, "test_jobs_disk: ADVJPGD is not set (tests/meson.build sets it)\n");
        return 1;
    }
    double t0 = sh_now();
    snprintf(TMP, sizeof TMP, "%s", tu_tmpdir());
    sh_init(TMP);
    path_of(SPEC, sizeof SPEC, "%s/disknet.json", TMP);
    path_of(WEIGHTS, sizeof WEIGHTS, "%s/disknet.weights", TMP);
    path_of(CONF, sizeof CONF, "%s/empty.conf", TMP);
    path_of(DATA, sizeof DATA, "%s/data", TMP);
    model_spec spec;
    char err[ADJ_ERRLEN];
    if (tu_write_file(SPEC, SPEC_TEXT, strlen(SPEC_TEXT)) ||
        model_spec_parse(SPEC_TEXT, strlen(SPEC_TEXT), &spec, err, sizeof err) ||
        tu_write_random_weights(&spec, WEIGHTS, 7) || tu_write_file(CONF, "", 0)) {
        fprintf(stderr, "test_jobs_disk: setup failed: %s\n", err);
        return 1;
    }
    make_data();
    if (make_reference() == 0) {
        test_crash_loop();
        test_damaged_finished();
        test_links();
        test_others_can_write();
        test_second_daemon();
        test_read_only();
        test_full_disk();
        test_no_inodes();
    }
    test_listen_warning();
    free(REF_ROWS);
    fprintf(stderr, "test_jobs_disk: %.1f s\n", sh_now() - t0);
    return tu_done();
}
