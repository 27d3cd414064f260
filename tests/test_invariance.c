/* Batch invariance through the daemon, on the embedded model: an image's row
 * is the same bytes whatever else was computed with it. Two runs of one job,
 * with automatic (timing-based) job batches, give identical rows; three
 * shards of it, put together, give its rows; and /attack on one image alone
 * (seeded as the job seeds it) gives exactly the probabilities of its row. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "experiment.h"
#include "server_harness.h"
#include "testutil.h"

#define N_IMAGES 14

static char TMP[4096];

/* Waits for the job to end and returns its rows CSV (new string), NULL unless done. */
static char *job_rows(int port, const char *id)
{
    json_t *st = sh_wait_job(port, id, 240);
    const int done = !strcmp(sh_jstr(st, "status"), "done");
    json_decref(st);
    CHECK(done, "job %s is done", id);
    if (!done)
        return NULL;
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s/rows", id);
    sh_resp r;
    sh_http(port, "GET", path, NULL, NULL, 0, &r);
    char *t = r.status == 200 ? strdup((char *)r.body) : NULL;
    sh_resp_free(&r);
    return t;
}

/* The data lines of a rows CSV (after its header), sorted; count in *n. */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static char **data_lines(char *csv, int *n)
{
    char **v = calloc(N_IMAGES * 2 + 1, sizeof *v);
    *n = 0;
    char *save = NULL, *line = strtok_r(csv, "\n", &save); /* the header */
    while ((line = strtok_r(NULL, "\n", &save)) && *n < N_IMAGES * 2)
        v[(*n)++] = line;
    qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

/* The row of file `name` among sorted lines, or NULL. */
static const char *row_of(char **lines, int n, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < n; i++)
        if (!strncmp(lines[i], name, len) && lines[i][len] == ',')
            return lines[i];
    return NULL;
}

/* /attack on file `name` alone, seeded as job seed 1 seeds it: each result's
 * top_label_prob and label, printed as the rows print them, appended after
 * "name,truth,label_x," must give the row itself (up to its norm columns). */
static void check_attack_matches_row(int port, const char *name, const char *row)
{
    char path[4600], query[160];
    snprintf(path, sizeof path, "%s/data/set/%s", TMP, name);
    size_t len;
    uint8_t *img = tu_read_file(path, &len);
    snprintf(query, sizeof query, "/attack?eps=1,5,10&quality=75&seed=%llu",
             (unsigned long long)exp_image_seed(1, name));
    sh_resp r;
    sh_http(port, "POST", query, NULL, img, len, &r);
    free(img);
    json_t *j = sh_json(&r);
    CHECK(r.status == 200 && j, "/attack %s: %ld", name, r.status);
    json_t *res = json_object_get(j, "results");
    /* the row from its fourth field on: x:prob,x:label,JPG(x):prob,... */
    const char *p = row;
    for (int commas = 0; *p && commas < 3; p++)
        commas += *p == ',';
    char want[2048] = "", cell[64];
    for (size_t t = 0; t < json_array_size(res); t++) {
        json_t *e = json_array_get(res, t);
        snprintf(cell, sizeof cell, "%s%.9g,%ld", t ? "," : "", (double)(float)sh_jnum(e, "top_label_prob"),
                 sh_jint(e, "label"));
        strncat(want, cell, sizeof want - strlen(want) - 1);
    }
    /* then the row's perturbation sizes (L-inf, L2, PSNR per eps) */
    const size_t wl = strlen(want);
    CHECK(json_array_size(res) == 11 && strncmp(p, want, wl) == 0 && p[wl] == ',',
          "%s: /attack alone gives\n  %s\nthe job's row has\n  %s", name, want, p);
    json_decref(j);
    sh_resp_free(&r);
}

int main(void)
{
    if (!sh_program()) {
        fprintf(stderr, "SKIP: $ADVJPGD is not set\n");
        return 77;
    }
    snprintf(TMP, sizeof TMP, "%s", tu_tmpdir());
    sh_init(TMP);
    char dir[4200], path[4400], err[ADJ_ERRLEN];
    snprintf(dir, sizeof dir, "%s/data", TMP);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/data/set", TMP);
    mkdir(dir, 0755);
    /* pictures of several sizes and aspects, so that preparing them differs */
    for (int i = 0; i < N_IMAGES; i++) {
        img_rgb im;
        sh_test_image(&im, 48 + 9 * i, 90 - 3 * i, 500 + i);
        uint8_t *png;
        size_t len;
        CHECK(img_encode_png(&im, &png, &len, err, sizeof err) == 0, "%s", err);
        snprintf(path, sizeof path, "%s/img%02d.png", dir, i);
        CHECK(tu_write_file(path, png, len) == 0, "write %s", path);
        free(png);
        img_free(&im);
    }
    char data_root[4200], jobs[4200];
    snprintf(data_root, sizeof data_root, "%s/data", TMP);
    snprintf(jobs, sizeof jobs, "%s/jobs", TMP);
    /* the embedded model (no model options); job batches from a timing */
    const char *args[] = {"--data-root", data_root, "--jobs-dir", jobs, NULL};
    sh_daemon d;
    if (sh_start(&d, "inv", args, 60) != 0) {
        CHECK(0, "advjpgd starts");
        return tu_done();
    }
    const char *body = "{\"dataset\": \"set\", \"eps\": [1, 5, 10], \"quality\": 75, \"seed\": 1}";
    char id[3][17];
    CHECK(sh_post_evaluate(d.port, body, id[0], NULL, 0) == 202, "first job");
    char *rows_a = job_rows(d.port, id[0]);
    CHECK(sh_post_evaluate(d.port, body, id[1], NULL, 0) == 202, "second job");
    char *rows_b = job_rows(d.port, id[1]);
    CHECK(rows_a && rows_b && strcmp(rows_a, rows_b) == 0, "two runs of one job give the same rows, byte for byte");

    /* three shards */
    char *shard_rows[3] = {NULL, NULL, NULL};
    char **shard_lines[3];
    int shard_n[3], total = 0;
    for (int s = 0; s < 3; s++) {
        char sb[256];
        snprintf(sb, sizeof sb,
                 "{\"dataset\": \"set\", \"eps\": [1, 5, 10], \"quality\": 75, \"seed\": 1,"
                 " \"shard\": {\"index\": %d, \"count\": 3}}", s);
        CHECK(sh_post_evaluate(d.port, sb, id[2], NULL, 0) == 202, "shard %d", s);
        shard_rows[s] = job_rows(d.port, id[2]);
        shard_lines[s] = shard_rows[s] ? data_lines(shard_rows[s], &shard_n[s]) : calloc(1, sizeof(char *));
        if (!shard_rows[s])
            shard_n[s] = 0;
        total += shard_n[s];
    }
    if (rows_a) {
        char *copy = strdup(rows_a);
        int n;
        char **lines = data_lines(copy, &n);
        CHECK(n == N_IMAGES && total == N_IMAGES, "%d rows, %d in the shards", n, total);
        int same = 0;
        for (int i = 0; i < n; i++) {
            const char *name_end = strchr(lines[i], ',');
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(name_end - lines[i]), lines[i]);
            for (int s = 0; s < 3; s++) {
                const char *r = row_of(shard_lines[s], shard_n[s], name);
                same += r && strcmp(r, lines[i]) == 0;
            }
        }
        CHECK(same == N_IMAGES, "the shards' rows are the job's rows, byte for byte (%d of %d)", same, n);
        /* /attack, one image per request, against the rows */
        for (int i = 0; i < n; i += 3) {
            char name[64];
            const char *name_end = strchr(lines[i], ',');
            snprintf(name, sizeof name, "%.*s", (int)(name_end - lines[i]), lines[i]);
            check_attack_matches_row(d.port, name, lines[i]);
        }
        free(lines);
        free(copy);
    }
    for (int s = 0; s < 3; s++) {
        free(shard_lines[s]);
        free(shard_rows[s]);
    }
    free(rows_a);
    free(rows_b);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "advjpgd stops");
    return tu_done();
}
