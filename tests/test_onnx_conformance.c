/*
 * test_onnx_conformance - the ONNX project's own backend node tests (Debian's
 * libonnx-testdata: data/node/test_* /model.onnx with test_data_set_0's
 * input_K.pb and output_K.pb) for every case whose operators are all in
 * ops.h's table.
 *
 * Each case is loaded unbatched with inputs 1.. bound as constants (so that
 * the graph has one run-time input, input 0), run once and compared with
 * the expected outputs: shape exactly, int64 exactly, float within ONNX's
 * backend-test tolerances (|got - want| <= 1e-7 + 1e-3 |want|). A case the
 * loader refuses (ADJ_ERR_UNSUPPORTED: an attribute value, a type, an
 * opset this engine does not implement) is counted and listed, never run;
 * any other load error or any mismatch fails the test. Each passing case
 * runs again batched (input 0's first dimension as the batch, the batch
 * size being that dimension): it must pass or be refused (an operator that
 * would mix images, a constant that would broadcast across the batch). Cases with other
 * operators are not run, but each must be refused at load with a message;
 * every supported case's file cut in half must be refused as malformed.
 * Without the package the test is
 * skipped (exit 77).
 *
 * ONNX_NODE_TESTS=DIR overrides the folder; `-v` lists every case.
 */
#include <dirent.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "onnx.h"

#define DEFAULT_DIR "/usr/share/libonnx-testdata/data/node"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Nonzero if every operator of the comma-separated list is supported. */
static int all_supported(const char *ops)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", ops);
    if (!buf[0])
        return 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, "Constant") && !op_find(t))
            return 0;
    return 1;
}

enum { R_PASS, R_REFUSED, R_FAIL };

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = n > 0 ? malloc((size_t)n) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = b ? (size_t)n : 0;
    return b;
}

/* Runs one case; msg gets what happened. */
static int run_case(const char *dir, const onnx_info *info, int batched, char *msg, size_t msz)
{
    char path[4400], err[ADJ_ERRLEN];
    onnx_tensor *ins[16] = {0}, *want = NULL;
    const char *names[16];
    int n_in = 0, result = R_FAIL, rc;
    gr_graph *g = NULL;
    gr_ctx *c = NULL;
    if (info->non_tensor_io) {
        snprintf(msg, msz, "inputs or outputs that are not tensors");
        result = R_REFUSED;
        goto done;
    }
    for (; n_in < 16; n_in++) {
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, n_in);
        FILE *f = fopen(path, "rb");
        if (!f)
            break;
        fclose(f);
        if ((rc = onnx_tensor_load(path, &ins[n_in], err, sizeof err))) {
            snprintf(msg, msz, "%s", err);
            result = rc == ADJ_ERR_UNSUPPORTED ? R_REFUSED : R_FAIL;
            goto done;
        }
        names[n_in] = info->inputs[n_in];
    }
    if (n_in != info->n_inputs) {
        snprintf(msg, msz, "%d input files for %d graph inputs", n_in, info->n_inputs);
        goto done;
    }
    onnx_opts o = {.unbatched = !batched, .n_bind = n_in > 0 ? n_in - 1 : 0, .bind_names = names + 1,
                   .bind = (const onnx_tensor *const *)ins + 1};
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    if ((rc = onnx_load(path, &o, &g, err, sizeof err))) {
        snprintf(msg, msz, "%s", err);
        result = rc == ADJ_ERR_UNSUPPORTED ? R_REFUSED : R_FAIL;
        goto done;
    }
    if (!ins[0] || ins[0]->dtype != OP_FLOAT) {
        snprintf(msg, msz, "input 0 is not float");
        result = R_REFUSED;
        goto done;
    }
    /* batched: input 0's first dimension is the batch */
    const int nb = batched ? (int)ins[0]->shape.d[0] : 1;
    if ((rc = gr_ctx_new(g, nb, 0, &c, err, sizeof err)) ||
        (rc = gr_forward(c, ins[0]->data, nb, err, sizeof err))) {
        snprintf(msg, msz, "%s", err);
        goto done;
    }
    if (gr_n_outputs(g) != info->n_outputs) {
        snprintf(msg, msz, "%d outputs, want %d", gr_n_outputs(g), info->n_outputs);
        goto done;
    }
    for (int k = 0; k < info->n_outputs; k++) {
        snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", dir, k);
        if ((rc = onnx_tensor_load(path, &want, err, sizeof err))) {
            snprintf(msg, msz, "%s", err);
            result = rc == ADJ_ERR_UNSUPPORTED ? R_REFUSED : R_FAIL;
            goto done;
        }
        op_shape s;
        op_dtype dt;
        const void *got = gr_output(c, k, &s);
        gr_output_info(g, k, NULL, &dt, NULL);
        char b1[96], b2[96];
        if (!got || dt != want->dtype || s.rank != want->shape.rank ||
            memcmp(s.d, want->shape.d, sizeof(int64_t) * (size_t)s.rank)) {
            snprintf(msg, msz, "output %d: %s %s, want %s %s", k, op_dtype_name(dt),
                     op_shape_str(&s, b1, sizeof b1), op_dtype_name(want->dtype),
                     op_shape_str(&want->shape, b2, sizeof b2));
            goto done;
        }
        size_t n = op_numel(&s);
        for (size_t i = 0; i < n; i++) {
            if (dt == OP_INT64) {
                int64_t a = ((const int64_t *)got)[i], b = ((const int64_t *)want->data)[i];
                if (a != b) {
                    snprintf(msg, msz, "output %d[%zu] = %lld, want %lld", k, i, (long long)a,
                             (long long)b);
                    goto done;
                }
                continue;
            }
            float a = ((const float *)got)[i], b = ((const float *)want->data)[i];
            if (isnan(a) && isnan(b))
                continue;
            if (!(fabsf(a - b) <= 1e-7f + 1e-3f * fabsf(b)) && !(a == b)) {
                snprintf(msg, msz, "output %d[%zu] = %.9g, want %.9g", k, i, a, b);
                goto done;
            }
        }
        onnx_tensor_free(want);
        want = NULL;
    }
    snprintf(msg, msz, "%d node(s) at run time", gr_n_nodes(g));
    result = R_PASS;
done:
    onnx_tensor_free(want);
    for (int i = 0; i < 16; i++)
        onnx_tensor_free(ins[i]);
    gr_ctx_free(c);
    gr_free(g);
    return result;
}

int main(int argc, char **argv)
{
    const int verbose = argc > 1 && !strcmp(argv[1], "-v");
    const char *root = getenv("ONNX_NODE_TESTS") ? getenv("ONNX_NODE_TESTS") : DEFAULT_DIR;
    DIR *d = opendir(root);
    if (!d) {
        printf("SKIP: %s is missing (install libonnx-testdata)\n", root);
        return 77;
    }
    char **cases = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "test_", 5))
            continue;
        if (n == cap && !(cases = realloc(cases, (cap = cap ? 2 * cap : 256) * sizeof *cases)))
            return 2;
        cases[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(cases, n, sizeof *cases, cmp_str);
    int pass = 0, refused = 0, fail = 0, other = 0, other_refused = 0, bpass = 0, brefused = 0;
    for (size_t i = 0; i < n; i++) {
        char dir[4096], path[4200], err[ADJ_ERRLEN], msg[1024];
        onnx_info info;
        snprintf(dir, sizeof dir, "%s/%s", root, cases[i]);
        snprintf(path, sizeof path, "%s/model.onnx", dir);
        if (onnx_inspect(path, &info, err, sizeof err) || !all_supported(info.ops)) {
            /* another operator: the loader must refuse it, saying why */
            gr_graph *g = NULL;
            onnx_opts o = {.unbatched = 1};
            err[0] = 0;
            int rc = onnx_load(path, &o, &g, err, sizeof err);
            if (rc == 0 || !err[0]) {
                printf("FAIL     %s [%s]: loaded (rc %d) without the operator: %s\n", cases[i],
                       info.ops, rc, err);
                fail++;
            } else
                other_refused++;
            gr_free(g);
            other++;
            free(cases[i]);
            continue;
        }
        /* the same file cut short must be refused as malformed, not crash */
        {
            size_t len;
            uint8_t *buf = read_all(path, &len);
            gr_graph *g = NULL;
            if (buf && len > 8) {
                int rc = onnx_load_buffer(buf, len / 2, NULL, NULL, &g, err, sizeof err);
                if (rc != ADJ_ERR_FORMAT) {
                    printf("FAIL     %s: half of the file gives rc %d: %s\n", cases[i], rc, err);
                    fail++;
                }
            }
            gr_free(g);
            free(buf);
        }
        int r = run_case(dir, &info, 0, msg, sizeof msg);
        if (r == R_PASS)
            pass++;
        else if (r == R_REFUSED)
            refused++;
        else
            fail++;
        if (verbose || r != R_PASS)
            printf("%-8s %s [%s opset %d]: %s\n",
                   r == R_PASS ? "PASS" : r == R_REFUSED ? "REFUSED" : "FAIL", cases[i], info.ops,
                   info.opset, msg);
        if (r != R_PASS)
            goto next;
        /* the same case with input 0's first dimension as the batch */
        r = run_case(dir, &info, 1, msg, sizeof msg);
        if (r == R_PASS)
            bpass++;
        else if (r == R_REFUSED)
            brefused++;
        else
            fail++;
        if (verbose || r == R_FAIL)
            printf("%-8s %s batched: %s\n",
                   r == R_PASS ? "PASS" : r == R_REFUSED ? "REFUSED" : "FAIL", cases[i], msg);
    next:
        free(cases[i]);
    }
    free(cases);
    printf("%d cases of supported operators: %d passed, %d refused at load, %d failed; "
           "%d cases of other operators skipped\n", pass + refused + fail, pass, refused, fail, other);
    printf("other operators: %d of %d models refused at load with a message\n", other_refused,
           other);
    printf("batched (input 0's first dimension as the batch): %d of the %d passed cases pass, "
           "%d are refused at load (they mix or move the batch)\n", bpass, pass, brefused);
    return fail ? 1 : 0;
}
