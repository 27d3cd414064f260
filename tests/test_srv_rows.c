/*
 * test_srv_rows.c - server/srv_rows.c without a daemon: rows.csv cut at
 * every byte keeps exactly the complete lines before the cut (the valid
 * prefix a restarted job keeps: found here with memchr, not the parser), a
 * damaged field or a wrong file name ends the prefix at its line, and the
 * probabilities survive the text round trip.
 */
#include <stdlib.h>
#include <string.h>

#include "srv_rows.h"
#include "status.h"
#include "testutil.h"

#define CLASSES 10
#define N_ROWS 4

/* A result with random probabilities (a softmax-like row per transform). */
static void fake_result(exp_result *r, int nt, int n_eps, uint64_t *st)
{
    memset(r, 0, sizeof *r);
    r->n_transforms = nt;
    r->n_adv = n_eps;
    r->classes = CLASSES;
    r->probs = calloc((size_t)nt * CLASSES, sizeof *r->probs);
    for (int t = 0; t < nt; t++) {
        float sum = 0;
        for (int c = 0; c < CLASSES; c++)
            sum += r->probs[t * CLASSES + c] = tu_uniform(st, 0.01f, 1.0f);
        for (int c = 0; c < CLASSES; c++)
            r->probs[t * CLASSES + c] /= sum;
    }
    r->label_x = exp_label(r, 0);
}

/* An adaptive job's rows: its header is the non-adaptive job's columns, then the twin's
 * (names by hand); the twin's probabilities and norms survive the round trip in place. */
static void test_twin_columns(void)
{
    exp_params p = {.n_eps = 1, .eps = {5}, .quality = 75,
                    .attack = {.kind = EXP_PGD, .steps = 10, .adaptive = EXP_ADAPT_BPDA}};
    exp_params own = p;
    own.attack.adaptive = EXP_ADAPT_NONE;
    char *h = srv_rows_header(&p), *h0 = srv_rows_header(&own);
    const char *twin = ",Adv5(x) PGD-10:prob,Adv5(x) PGD-10:label,JPG(Adv5(x)) PGD-10:prob,"
                       "JPG(Adv5(x)) PGD-10:label,JPGnoise(Adv5(x)) PGD-10:prob,"
                       "JPGnoise(Adv5(x)) PGD-10:label,Adv5(x) PGD-10:linf,Adv5(x) PGD-10:l2,"
                       "Adv5(x) PGD-10:psnr\n";
    const size_t l0 = strlen(h0) - 1; /* without its LF */
    CHECK(!strncmp(h, h0, l0) && !strcmp(h + l0, twin), "header: %s", h);
    const int nt = exp_n_transforms(&p);
    uint64_t st = 5;
    exp_result r;
    fake_result(&r, nt, 2, &st);
    r.twin_first = exp_twin_first(&p);
    r.norms[0] = (atk_norms){.linf = 5, .l2 = 100.5, .psnr = 40.25};
    r.norms[1] = (atk_norms){.linf = 3, .l2 = 60.125, .psnr = 44.5};
    ut_buf b = {0};
    ut_buf_puts(&b, h);
    srv_rows_format(&b, "a.jpg", 1, &r);
    /* the row's first part is the non-adaptive layout: its norms right after transform 4 */
    const char *l = strchr(b.s, '\n') + 1;
    int commas = 0;
    const char *f = l;
    while (commas < 3 + 2 * exp_twin_first(&p) && (f = strchr(f, ',') + 1))
        commas++;
    CHECK(!strncmp(f, "5,100.5,40.25,", 14), "own norms after the own transforms: %.30s", f);
    const char *files[1] = {"a.jpg"};
    const int truth[1] = {1};
    srv_rows_check chk = {&p, CLASSES, SIZE_MAX, files, truth, 1};
    srv_rows rows = {0};
    size_t valid;
    char why[256];
    srv_rows_parse(b.s, b.len, &chk, &rows, &valid, why, sizeof why);
    CHECK(rows.n == 1 && valid == b.len && rows.n_adv == 2, "%zu rows (%s)", rows.n, why);
    for (int t = 0; t < nt && rows.n == 1; t++)
        CHECK(rows.prob[t] == exp_top_label_prob(&r, t) && rows.label[t] == exp_label(&r, t),
              "t %d", t);
    CHECK(rows.n == 1 && rows.norms[0].linf == 5 && rows.norms[1].linf == 3 &&
              rows.norms[1].l2 == 60.125 && rows.norms[1].psnr == 44.5,
          "norms back in place");
    /* the table: the twin's rows carry adaptive none, the attack's bpda; the jpg_adaptive test */
    json_t *table = srv_rows_table(&rows, &p, 1), *tests = srv_rows_tests(&rows, &p, 1);
    const json_t *tw = json_array_get(table, (size_t)exp_twin_first(&p) + 1);
    CHECK(!strcmp(json_string_value(json_object_get(tw, "transform")), "JPG(Adv5(x)) PGD-10") &&
              !strcmp(json_string_value(json_object_get(tw, "adaptive")), "none") &&
              !strcmp(json_string_value(json_object_get(json_array_get(table, 3), "adaptive")),
                      "bpda") &&
              json_integer_value(json_object_get(tw, "linf")) == 3,
          "twin table row");
    const json_t *last = json_array_get(tests, json_array_size(tests) - 1);
    CHECK(json_array_size(tests) == 6 &&
              !strcmp(json_string_value(json_object_get(last, "pair")), "jpg_adaptive") &&
              !strcmp(json_string_value(json_object_get(last, "a")), "JPG(Adv5(x)) PGD-10") &&
              !strcmp(json_string_value(json_object_get(last, "b")), "JPG(Adv5(x))"),
          "%zu tests", json_array_size(tests));
    json_decref(table);
    json_decref(tests);
    srv_rows_free(&rows);
    exp_result_free(&r);
    ut_buf_free(&b);
    free(h);
    free(h0);
}

int main(void)
{
    test_twin_columns();
    exp_params p = {.n_eps = 2, .eps = {1, 5}, .quality = 75};
    int nt = exp_n_transforms(&p);
    uint64_t st = 3;
    const char *files[N_ROWS] = {"a.jpg", "b, \"quoted\".png", "c.ppm", "d.jpg"};
    const int truth[N_ROWS] = {1, -1, 9, 0};
    exp_result res[N_ROWS];
    ut_buf b = {0};
    char *header = srv_rows_header(&p);
    ut_buf_puts(&b, header);
    free(header);
    for (int i = 0; i < N_ROWS; i++) {
        fake_result(&res[i], nt, p.n_eps, &st);
        if (i == 2)
            srv_rows_format_skipped(&b, files[i], truth[i], &p);
        else
            srv_rows_format(&b, files[i], truth[i], &res[i]);
    }
    srv_rows_check chk = {&p, CLASSES, SIZE_MAX, files, truth, N_ROWS};
    char why[256];
    /* every cut: the valid prefix ends at the last LF before the cut */
    for (size_t cut = 0; cut <= b.len; cut++) {
        size_t want = 0, lines = 0;
        for (const char *q = b.s; (q = memchr(q, '\n', (size_t)(b.s + cut - q))); q++) {
            want = (size_t)(q - b.s) + 1;
            lines++;
        }
        srv_rows rows = {0};
        size_t valid = 99;
        int rc = srv_rows_parse(b.s, cut, &chk, &rows, &valid, why, sizeof why);
        CHECK(rc == ADJ_OK && valid == want && rows.n == (lines ? lines - 1 : 0),
              "cut %zu: valid %zu want %zu, %zu rows (%s)", cut, valid, want, rows.n, why);
        srv_rows_free(&rows);
    }
    srv_rows rows = {0};
    size_t valid;
    srv_rows_parse(b.s, b.len, &chk, &rows, &valid, why, sizeof why);
    CHECK(rows.n == N_ROWS && rows.skipped == 1 && !strcmp(rows.file[1], files[1]),
          "%zu rows, %zu skipped", rows.n, rows.skipped);
    for (int i = 0; i < N_ROWS && rows.n == N_ROWS; i++)
        for (int t = 0; t < nt && i != 2; t++)
            CHECK(rows.prob[i * nt + t] == exp_top_label_prob(&res[i], t) &&
                      rows.label[i * nt + t] == exp_label(&res[i], t), "row %d t %d", i, t);
    srv_rows_free(&rows);
    /* a wrong file name in row 2 (line 3): the prefix is the header and row 1 */
    const char *other[N_ROWS] = {"a.jpg", "x.png", "c.ppm", "d.jpg"};
    chk.files = other;
    srv_rows_parse(b.s, b.len, &chk, &rows, &valid, why, sizeof why);
    const char *l2 = strchr(strchr(b.s, '\n') + 1, '\n') + 1;
    CHECK(rows.n == 1 && valid == (size_t)(l2 - b.s) && *why, "wrong name: %zu rows (%s)", rows.n,
          why);
    srv_rows_free(&rows);
    /* a label out of range in row 1 */
    chk.files = files;
    char *bad = strdup(b.s);
    char *l1 = strchr(bad, '\n') + 1;
    char *field = strchr(strchr(l1, ',') + 1, ','); /* ",label_x," */
    field[1] = '7', field[2] = '7';                /* 77 or more: not a class of 10 */
    srv_rows_parse(bad, b.len, &chk, &rows, &valid, why, sizeof why);
    CHECK(rows.n == 0 && valid == (size_t)(l1 - bad), "bad label: %zu rows (%s)", rows.n, why);
    srv_rows_free(&rows);
    free(bad);
    for (int i = 0; i < N_ROWS; i++)
        exp_result_free(&res[i]);
    ut_buf_free(&b);
    return tu_done();
}
