/*
 * advjpg-bench: speed of the engine, one JSON line per case.
 *
 *   advjpg-bench --model overfeat-fast [--weights net_weight_0] [--batch 1,16]
 *                [--seconds 3]
 *
 * Without --weights the model gets random weights of the right size in
 * memory (--save-weights FILE also writes them, e.g. to start advjpgd with).
 * --layers adds a line per case with the milliseconds per image of each layer. For each batch size it times `forward` (net_forward) and
 * `gradient` (net_forward + net_backward to the input pixels), repeating
 * each case for at least --seconds after one warm-up pass, and prints
 *   {"model":..,"batch":16,"pass":"forward","ms_per_image":..,"gflops":..,
 *    "blas_core":"SkylakeX","blas_threads":2}
 * gflops counts 2 FLOP per multiply-add of the forward pass, and twice that
 * for `gradient` (the input-gradient products are as large as the forward
 * ones; the first layer's is counted although it is the only one that could
 * be skipped, so the figure is a slight overestimate there).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net.h"
#include "runtime.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: advjpg-bench --model NAME|FILE.json [--weights FILE] [--batch 1,16] [--seconds S] [--layers]\n"
               "                    [--save-weights FILE]\n"
               "Times the engine's forward pass and forward + input gradient; one JSON line per case.\n"
               "Without --weights, random weights of the model's exact size are used.\n");
}

int main(int argc, char **argv)
{
    adj_runtime_init(argv);
    const char *model_name = "overfeat-fast", *weights = NULL, *batches = "1,16";
    double seconds = 3.0;
    int layers = 0;
    const char *save = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--save-weights") && i + 1 < argc) {
            save = argv[++i];
        } else if (!strcmp(argv[i], "--layers")) {
            layers = 1;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model_name = argv[++i];
        } else if (!strcmp(argv[i], "--weights") && i + 1 < argc) {
            weights = argv[++i];
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            batches = argv[++i];
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else {
            fprintf(stderr, "advjpg-bench: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    char err[ADJ_ERRLEN];
    model_spec spec;
    model *m = NULL;
    if (model_spec_load(model_name, &spec, err, sizeof err)) {
        fprintf(stderr, "advjpg-bench: %s\n", err);
        return 1;
    }
    if (weights) {
        if (model_load(&spec, weights, &m, err, sizeof err)) {
            fprintf(stderr, "advjpg-bench: %s\n", err);
            return 1;
        }
    } else {
        size_t n = model_spec_param_count(&spec);
        float *w = malloc(n * sizeof *w);
        uint64_t s = 1;
        if (!w) {
            fprintf(stderr, "advjpg-bench: out of memory\n");
            return 1;
        }
        for (size_t k = 0; k < n; k++)
            w[k] = ((float)(next(&s) >> 40) / (float)(1 << 24) - 0.5f) * 0.02f;
        if (save) { /* the random weights as a file, e.g. to start advjpgd with */
            FILE *f = fopen(save, "wb");
            if (!f || fwrite(w, sizeof *w, n, f) != n || fclose(f) != 0) {
                fprintf(stderr, "advjpg-bench: cannot write %s\n", save);
                return 1;
            }
        }
        if (model_create(&spec, w, n, 0, &m, err, sizeof err)) {
            fprintf(stderr, "advjpg-bench: %s\n", err);
            return 1;
        }
    }
    const double flops = model_spec_flops(&spec);
    char list[256];
    snprintf(list, sizeof list, "%s", batches);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int b = atoi(tok);
        net_ctx *ctx;
        if (b < 1 || net_ctx_new(m, b, &ctx, err, sizeof err)) {
            fprintf(stderr, "advjpg-bench: batch '%s': %s\n", tok, b < 1 ? "not a positive integer" : err);
            return 2;
        }
        const size_t per = (size_t)spec.channels * spec.input_size * spec.input_size;
        float *x = malloc(per * b * sizeof(float)), *g = malloc(per * b * sizeof(float));
        int *labels = calloc(b, sizeof(int));
        uint64_t s = 7;
        for (size_t k = 0; k < per * b; k++)
            x[k] = (float)(next(&s) % 256);
        double fprev[MODEL_MAX_LAYERS] = {0};
        for (int pass = 0; pass < 2; pass++) {
            int reps = 0;
            double t0 = 0, t;
            for (int i = -1;; i++) { /* i = -1 is the warm-up */
                if (i == 0)
                    t0 = now();
                net_forward(ctx, x, b, NULL);
                if (pass == 1)
                    net_backward(ctx, labels, g, NULL, NULL);
                if (i >= 0)
                    reps++;
                t = now();
                if (i >= 0 && t - t0 >= seconds && reps >= 2)
                    break;
            }
            double per_img = (t - t0) / reps / b;
            printf("{\"model\":\"%s\",\"batch\":%d,\"pass\":\"%s\",\"ms_per_image\":%.2f,"
                   "\"gflops\":%.1f,\"blas_core\":\"%s\",\"blas_threads\":%d}\n",
                   spec.name, b, pass ? "gradient" : "forward", per_img * 1e3,
                   flops * (pass ? 2 : 1) / per_img * 1e-9, adj_blas_corename(), adj_blas_threads());
            fflush(stdout);
            if (layers) { /* where the time goes: per layer, ms per image */
                double f[MODEL_MAX_LAYERS], bw[MODEL_MAX_LAYERS];
                net_ctx_layer_seconds(ctx, f, bw);
                printf("{\"batch\":%d,\"pass\":\"%s\",\"layers_ms_per_image\":[", b,
                       pass ? "gradient" : "forward");
                for (int l = 0; l < spec.n_layers; l++) {
                    double v = pass ? f[l] + bw[l] - fprev[l] : f[l];
                    printf("%s%.2f", l ? "," : "", v * 1e3 / (reps + 1) / b);
                    fprev[l] = f[l] + bw[l];
                }
                printf("]}\n");
                memcpy(fprev, f, sizeof f);
            }
        }
        free(x);
        free(g);
        free(labels);
        net_ctx_free(ctx);
    }
    model_free(m);
    return 0;
}
