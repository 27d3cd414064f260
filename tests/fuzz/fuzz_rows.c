/*
 * fuzz_rows.c - libFuzzer target over rows.csv: srv_rows_parse, which
 * decides what a restarted job keeps (its valid prefix), the row
 * formatting a resumed job appends after it, and the table.
 *
 * Input: byte 0 chooses the check (bits 0-1: 1..4 eps; bit 2: the job's
 * header is put before the text, so that mutations reach the rows; bit 3:
 * rows must name the expected files; bit 4: and carry the expected labels;
 * bits 5-7: parse at most 3*k rows, 0: all), byte 1 the classes (1..16),
 * the rest is the text of rows.csv. The expected files include names that
 * need CSV quoting (a comma and quotes, a line feed).
 *
 * What must hold, whatever the text:
 *   - the valid prefix is empty or ends right after a line feed, at least
 *     the header long; without a row limit, why is "" exactly when the
 *     whole text is valid (an empty text is not: it has no header);
 *   - the prefix alone parses in full to the same rows (what is kept after
 *     the cut is kept at the next start too);
 *   - the prefix, then the rows of the next expected files as a resumed
 *     job formats them (srv_rows_format / srv_rows_format_skipped), parses
 *     in full, and the rows read back are the rows written (probabilities
 *     bit for bit through "%.9g", and the perturbations' norms);
 *   - the kept rows, formatted again, read back the same;
 *   - the table of the rows can be computed.
 *
 * Build and run by hand: the comment at the end of this file.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment.h"
#include "srv_rows.h"
#include "status.h"

#define N_FILES 48

static const char *file_name(int i, char *buf, size_t size)
{
    if (i % 16 == 1)
        snprintf(buf, size, "a,\"q%d\".png", i);
    else if (i % 16 == 2)
        snprintf(buf, size, "line\nbreak%d.jpg", i);
    else
        snprintf(buf, size, "img_%03d.jpg", i);
    return buf;
}

/* Aborts with a message: the fuzzer reports the input. */
static void fail(const char *what)
{
    fprintf(stderr, "fuzz_rows: %s\n", what);
    abort();
}

/* Appends rows for files first..first+n-1 as the runner does; odd i evaluated, even i skipped. */
static void append_rows(ut_buf *b, const exp_params *p, int classes, char *const *files,
                        const int *truth, size_t first, size_t n)
{
    const int T = exp_n_transforms(p);
    float *probs = malloc((size_t)T * (size_t)classes * sizeof *probs);
    if (!probs)
        return;
    for (size_t k = 0; k < n; k++) {
        size_t i = first + k;
        int tr = truth ? truth[i] : -1;
        if (i % 4 == 0) {
            srv_rows_format_skipped(b, files[i], tr, p);
            continue;
        }
        exp_result r = {.label_x = (int)(i % (size_t)classes), .n_transforms = T,
                        .n_adv = exp_n_adv(p), .twin_first = exp_has_twin(p) ? exp_twin_first(p) : 0,
                        .classes = classes, .probs = probs};
        for (int e = 0; e < r.n_adv; e++) /* an unchanged image (psnr inf) now and then */
            r.norms[e] = (atk_norms){.linf = (int)((i + (size_t)e) % 256), .l2 = (double)i / 3.0,
                                     .psnr = i % 5 == 1 ? INFINITY : 20.0 + (double)i / 7.0};
        for (int t = 0; t < T; t++) {
            float *row = probs + (size_t)t * (size_t)classes;
            for (int c = 0; c < classes; c++)
                row[c] = -1.0f;
            row[r.label_x] = (float)((i * 7 + (size_t)t * 13) % 1000) / 999.0f;
            int other = (r.label_x + 1 + t) % classes;
            if (t > 0 && t % 3 == 0 && other != r.label_x)
                row[other] = 2.0f; /* a transform that moved the label */
        }
        srv_rows_format(b, files[i], tr, &r);
    }
    free(probs);
}

/* Appends rows from..to-1 of parsed rows, formatted as the runner formats them. */
static void format_parsed(ut_buf *b, const srv_rows *r, size_t from, size_t to, int classes,
                          const exp_params *p)
{
    const size_t T = (size_t)r->n_transforms;
    float *probs = malloc(T * (size_t)classes * sizeof *probs);
    if (!probs)
        fail("out of memory");
    for (size_t i = from; i < to; i++) {
        if (r->label_x[i] < 0) {
            srv_rows_format_skipped(b, r->file[i], r->truth[i], p);
            continue;
        }
        for (size_t k = 0; k < T; k++) {
            float *row = probs + k * (size_t)classes;
            for (int c = 0; c < classes; c++)
                row[c] = -1.0f;
            row[r->label_x[i]] = r->prob[i * T + k];
            if (r->label[i * T + k] != r->label_x[i])
                row[r->label[i * T + k]] = 2.0f; /* the arg-max */
        }
        exp_result e = {.label_x = r->label_x[i], .n_transforms = (int)T, .n_adv = r->n_adv,
                        .twin_first = exp_has_twin(p) ? exp_twin_first(p) : 0,
                        .classes = classes, .probs = probs};
        const size_t E = (size_t)r->n_adv;
        memcpy(e.norms, r->norms + i * E, E * sizeof *e.norms);
        srv_rows_format(b, r->file[i], r->truth[i], &e);
    }
    free(probs);
}

static int same_rows(const srv_rows *a, const srv_rows *b, size_t n)
{
    if (a->n_transforms != b->n_transforms)
        return 0;
    size_t T = (size_t)a->n_transforms;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a->file[i], b->file[i]) || a->truth[i] != b->truth[i] ||
            a->label_x[i] != b->label_x[i])
            return 0;
        if (memcmp(a->prob + i * T, b->prob + i * T, T * sizeof *a->prob) ||
            memcmp(a->label + i * T, b->label + i * T, T * sizeof *a->label))
            return 0;
        const size_t E = (size_t)a->n_adv;
        for (size_t e = 0; e < E; e++) {
            const atk_norms *x = &a->norms[i * E + e], *y = &b->norms[i * E + e];
            if (x->linf != y->linf || x->l2 != y->l2 || x->psnr != y->psnr)
                return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t flags = data[0];
    const exp_params p = {.n_eps = 1 + (flags & 3), .eps = {1, 5, 10, 255}, .quality = 75};
    const int classes = 1 + data[1] % 16;
    const int with_header = flags & 4, check_files = flags & 8, check_truth = flags & 16;
    const size_t max_rows = (flags >> 5) ? (size_t)(flags >> 5) * 3 : SIZE_MAX;

    char *files[N_FILES], name[64];
    int truth[N_FILES];
    for (int i = 0; i < N_FILES; i++) {
        files[i] = strdup(file_name(i, name, sizeof name));
        truth[i] = i % classes;
        if (!files[i])
            fail("out of memory");
    }
    ut_buf text = {0};
    char *header = srv_rows_header(&p);
    if (!header)
        fail("out of memory");
    const size_t hl = strlen(header);
    if (with_header)
        ut_buf_add(&text, header, hl);
    ut_buf_add(&text, (const char *)data + 2, size - 2);
    if (text.failed)
        fail("out of memory");
    const char *t = text.s ? text.s : "";

    srv_rows_check chk = {&p,
                          classes,
                          max_rows,
                          check_files ? (const char *const *)files : NULL,
                          check_truth ? truth : NULL,
                          N_FILES};
    srv_rows rows;
    size_t valid = 12345;
    char why[ADJ_ERRLEN];
    if (srv_rows_parse(t, text.len, &chk, &rows, &valid, why, sizeof why))
        fail("srv_rows_parse ran out of memory");
    if (valid > text.len)
        fail("the valid prefix is longer than the text");
    if (valid && (valid < hl || t[valid - 1] != '\n'))
        fail("the valid prefix does not end after a line feed");
    if (max_rows == SIZE_MAX && (why[0] == '\0') != (valid == text.len && valid > 0))
        fail("why is empty exactly when the whole text is valid (an empty text is not)");
    if (rows.n > max_rows || rows.skipped > rows.n)
        fail("row counts out of range");
    if ((check_files || check_truth) && rows.n > N_FILES)
        fail("more rows than expected files");

    /* the prefix alone: parsed in full, the same rows */
    srv_rows again;
    size_t valid2 = 0;
    if (srv_rows_parse(t, valid, &chk, &again, &valid2, why, sizeof why))
        fail("out of memory");
    if (valid2 != valid || again.n != rows.n || again.skipped != rows.skipped ||
        !same_rows(&rows, &again, rows.n))
        fail("the valid prefix does not parse to the same rows");
    srv_rows_free(&again);

    /* a resumed job: the prefix (or a new header), then the next files' rows */
    if (check_files && (max_rows == SIZE_MAX) && rows.n < N_FILES) {
        ut_buf resumed = {0};
        if (valid)
            ut_buf_add(&resumed, t, valid);
        else
            ut_buf_add(&resumed, header, hl);
        size_t more = N_FILES - rows.n;
        append_rows(&resumed, &p, classes, files, check_truth ? truth : NULL, rows.n, more);
        if (resumed.failed)
            fail("out of memory");
        srv_rows full;
        size_t valid3 = 0;
        if (srv_rows_parse(resumed.s, resumed.len, &chk, &full, &valid3, why, sizeof why))
            fail("out of memory");
        if (valid3 != resumed.len || full.n != N_FILES) {
            fprintf(stderr, "fuzz_rows: resumed rows: %s\n", why);
            fail("the rows a resumed job appends do not parse after the kept prefix");
        }
        if (!same_rows(&rows, &full, rows.n))
            fail("the kept rows changed");
        /* what was written is what is read: format the appended rows again */
        ut_buf once = {0}, twice = {0};
        append_rows(&once, &p, classes, files, check_truth ? truth : NULL, rows.n, more);
        format_parsed(&twice, &full, rows.n, full.n, classes, &p);
        if (once.failed || twice.failed)
            fail("out of memory");
        if (once.len != twice.len || memcmp(once.s, twice.s, once.len))
            fail("rows read back do not format to the same text");
        ut_buf_free(&once);
        ut_buf_free(&twice);
        srv_rows_free(&full);
        ut_buf_free(&resumed);
    }

    /* every row kept can be written again as it was read */
    if (max_rows == SIZE_MAX) {
        ut_buf re = {0};
        ut_buf_add(&re, header, hl);
        format_parsed(&re, &rows, 0, rows.n, classes, &p);
        srv_rows back;
        size_t valid4 = 0;
        if (re.failed || srv_rows_parse(re.s, re.len, &chk, &back, &valid4, why, sizeof why))
            fail("out of memory");
        if (valid4 != re.len || back.n != rows.n || !same_rows(&rows, &back, rows.n)) {
            fprintf(stderr, "fuzz_rows: rows written again: %s\n", why);
            fail("the kept rows, written again, do not read back the same");
        }
        srv_rows_free(&back);
        ut_buf_free(&re);
    }

    /* the table and the box statistics */
    json_t *table = srv_rows_table(&rows, &p, check_truth);
    if (!table)
        fail("srv_rows_table failed");
    if ((int)json_array_size(table) != exp_n_transforms(&p))
        fail("the table does not have one entry per transform");
    json_decref(table);

    srv_rows_free(&rows);
    ut_buf_free(&text);
    free(header);
    for (int i = 0; i < N_FILES; i++)
        free(files[i]);
    return 0;
}

/*
 * By hand, from the source root (clang 14; what was run for the jobs branch):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -fno-sanitize-recover=undefined -Icommon -Iserver -I/usr/include/stb \
 *     $(pkg-config --cflags jansson) tests/fuzz/fuzz_rows.c server/srv_rows.c \
 *     common/experiment.c common/stats.c common/status.c common/net.c common/layers.c \
 *     common/model.c common/attack.c common/image.c -o fuzz_rows \
 *     $(pkg-config --libs jansson libturbojpeg libpng openblas libjpeg) -lm -lpthread
 *   mkdir -p work && ./fuzz_rows -max_total_time=300 -max_len=4096 work tests/fuzz/corpus/rows
 * (new inputs go to work/; the corpus stays as it is).
 */
