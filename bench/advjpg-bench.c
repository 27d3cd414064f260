/*
 * advjpg-bench: speed of the engine, one JSON line per case.
 *
 *   advjpg-bench --model overfeat-fast [--weights net_weight_0] [--batch 1,16]
 *                [--seconds 3]
 *
 * --model FILE.onnx times an ONNX model (its own weights, the graph engine).
 * Without --weights a layer model gets random weights of the right size in
 * memory (--save-weights FILE also writes them, e.g. to start advjpgd with).
 * --winograd LIST times each case once per setting of the 3x3 pad-1
 * layers ("default": Winograd F(4x4,3x3) or F(2x2,3x3) by the plane size,
 * 0: im2col; net_ctx_set_winograd), in one run, and adds "winograd" to
 * each line.
 * --rounds R repeats the whole list R times (alternating runs on a shared
 * machine: compare the settings round by round); each line then has
 * "round" (and "engine": "graph", the one engine; --engine graph is
 * accepted for older scripts).
 * --layers adds a line per case with the milliseconds per image of each layer,
 * the algorithm each layer uses, the shapes (the input's, then each layer's
 * output), each layer's forward MFLOP per image and its GFLOP/s. For each batch size it times `forward` (net_forward) and
 * `gradient` (net_forward + net_backward to the input pixels), repeating
 * each case for at least --seconds after one warm-up pass, and prints
 *   {"model":..,"batch":16,"pass":"forward","ms_per_image":..,"ms_per_image_min":..,
 *    "gflops":..,"gemm":"avx2-fma 6x16","threads":2,"context_mb":..,"rss_mb":..}
 * ms_per_image is the mean over the repetitions, ms_per_image_min the fastest
 * one (steadier on a shared machine); context_mb the context's bytes
 * (net_ctx_bytes), rss_mb the process's resident memory after the case (the
 * model, its graph and this context). First comes one line with the peak of
 * the engine's products and of OpenBLAS's cblas_sgemm on 2048^3 (the limit
 * the engine's figures are measured against). Before each batch-1 case of a
 * layer model, one line with the rate at which the machine reads the model's
 * weights (AVX2 loads on all cores, best of 3) and the batch-1 bound it sets
 * (each weight is read once per pass), the fully connected layers' share of
 * it (fc_read_ms) and the convolutions' FLOP at the sgemm peak
 * (conv_at_sgemm_peak_ms); after its forward line, one with the forward time
 * over the read bound ("ratio_to_bound"; issue 19's target 1.2), the measured
 * split (conv_ms: the layers before the first fully connected one; fc_ms:
 * that one and those after it), each part over its own limit, and the forward
 * over the sum of the two limits (the fully connected layers cannot start
 * before the convolutions' output exists, and their weights fit in no cache).
 * --attacks times the attacks instead, per image at each batch size: FGSM
 * (one forward and one backward pass, the paper's), BIM-10 and PGD-10 (ten
 * steps of one level at eps 5, each a forward and a backward pass), in
 * rounds that alternate the three (a shared machine's noise falls on all of
 * them alike) for at least --seconds in all, and prints one line per attack
 *   {"model":..,"batch":1,"attack":"bim","steps":10,"ms_per_image":..,
 *    "ms_per_image_min":..,"ratio_to_fgsm":..,"backward_passes":10}
 * ratio_to_fgsm is the attack's mean time over FGSM's, from the same rounds.
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

#include <cblas.h>
#include <pthread.h>
#include <unistd.h>

#include "attack.h"
#include "gemm.h"
#include "net.h"
#include "blas_runtime.h"
#include "ut_clock.h"

/* The process's resident set size now (from /proc/self/statm), MB; 0 if unknown. */
static double rss_mb(void)
{
    unsigned long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* One thread's share of a streaming read: sums its floats (so that nothing
 * is optimised away) in 4 independent AVX2 sums of 8 lanes (one sum's
 * add latency would bound the rate below the memory's), portably without AVX2. */
typedef struct {
    const float *p;
    size_t n;
    double sum;
} read_part;

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static __attribute__((target("avx2"))) size_t read_avx2(const float *p, size_t n, float acc[8])
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + k));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + k + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + k + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + k + 24));
    }
    _mm256_storeu_ps(acc, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    return k;
}
#endif

static void *read_main(void *arg)
{
    read_part *r = arg;
    float acc[8] = {0};
    size_t k = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx2"))
        k = read_avx2(r->p, r->n, acc);
#endif
    for (; k + 8 <= r->n; k += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += r->p[k + j];
    for (; k < r->n; k++)
        acc[0] += r->p[k];
    r->sum = 0;
    for (int j = 0; j < 8; j++)
        r->sum += acc[j];
    return NULL;
}

/* GB/s of reading n floats once on every core: the bound of a batch-1 pass,
 * which reads each weight once. */
static double read_bandwidth(const float *p, size_t n, double *sum)
{
    long t = sysconf(_SC_NPROCESSORS_ONLN);
    int T = t < 1 ? 1 : t > 16 ? 16 : (int)t;
    read_part parts[16];
    pthread_t tid[16];
    double best = 1e9;
    *sum = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = ut_now();
        for (int i = 0; i < T; i++) {
            parts[i] = (read_part){p + n * i / T, n * (i + 1) / T - n * i / T, 0};
            pthread_create(&tid[i], NULL, read_main, &parts[i]);
        }
        for (int i = 0; i < T; i++) {
            pthread_join(tid[i], NULL);
            *sum += parts[i].sum;
        }
        best = fmin(best, ut_now() - t0);
    }
    return (double)n * sizeof(float) / best * 1e-9;
}

/* Each layer's forward FLOP per image (2 per multiply-add; 0 for ReLU and
 * max-pooling) into fl[], and its weights' count (with biases) into np[]
 * (either may be NULL). 0, or -1 if the spec's shapes do not chain. */
static int layer_costs(const model_spec *spec, model_shape *sh, double *fl, double *np)
{
    if (model_spec_shapes(spec, sh, NULL, 0))
        return -1;
    for (int l = 0; l < spec->n_layers; l++) {
        const model_layer *ly = &spec->layers[l];
        const double out = (double)sh[l + 1].c * sh[l + 1].h * sh[l + 1].w;
        double taps = 0; /* multiply-adds per output */
        if (ly->kind == MODEL_LAYER_CONV)
            taps = (double)sh[l].c * ly->kh * ly->kw;
        else if (ly->kind == MODEL_LAYER_FC)
            taps = (double)sh[l].c * sh[l].h * sh[l].w;
        if (fl)
            fl[l] = 2.0 * out * taps;
        if (np)
            np[l] = taps > 0 ? (taps + 1) * ly->out : 0;
    }
    return 0;
}

/*
 * The batch-1 limits of a layer model, measured now (so that they share the
 * run's load): every weight is read once per pass, so a pass takes at least
 * its weight bytes over the rate at which the machine reads them (read_ms;
 * the fully connected layers' share: fc_read_ms); and the convolutions'
 * FLOP over the sgemm peak (conv_peak_ms, the convention of the batch-16
 * bound), which the fully connected layers cannot overlap: they need the
 * convolutions' output, and their weights do not fit in any cache.
 */
typedef struct {
    double read_ms, fc_read_ms, conv_peak_ms;
} b1_bound;

/* Prints the read line and fills *out; all 0 for an ONNX model (weights not in one array). */
static void batch1_bound(const model *m, const model_spec *spec, double sgemm_gflops, b1_bound *out)
{
    *out = (b1_bound){0};
    model_shape sh[MODEL_MAX_LAYERS + 1];
    double fl[MODEL_MAX_LAYERS], np[MODEL_MAX_LAYERS], fc_n = 0, conv_fl = 0;
    if (model_is_onnx(m) || layer_costs(spec, sh, fl, np))
        return;
    for (int l = 0; l < spec->n_layers; l++) {
        if (spec->layers[l].kind == MODEL_LAYER_FC)
            fc_n += np[l];
        else
            conv_fl += fl[l];
    }
    const size_t n = model_spec_param_count(spec);
    double sum;
    const double gbs = read_bandwidth(model_weights(m), n, &sum);
    out->read_ms = n * sizeof(float) / gbs * 1e-6;
    out->fc_read_ms = fc_n * sizeof(float) / gbs * 1e-6;
    out->conv_peak_ms = conv_fl / (sgemm_gflops * 1e9) * 1e3;
    printf("{\"case\":\"read the weights\",\"bytes\":%zu,\"gbytes_per_s\":%.1f,"
           "\"batch1_bound_ms\":%.2f,\"fc_bytes\":%.0f,\"fc_read_ms\":%.2f,"
           "\"conv_gflop\":%.2f,\"conv_at_sgemm_peak_ms\":%.2f,\"checksum\":%.3g}\n",
           n * sizeof(float), gbs, out->read_ms, fc_n * sizeof(float), out->fc_read_ms,
           conv_fl * 1e-9, out->conv_peak_ms, sum);
}

/*
 * The batch-1 forward against its limits: the read bound, and the
 * one that counts the convolutions too (conv_peak_ms + fc_read_ms), with the
 * measured split (the layers' times over the passes so far, warm-up included).
 */
static void print_batch1(const net_ctx *ctx, const model_spec *spec, const b1_bound *bd,
                         double per_img_ms, int passes, int round)
{
    double f[MODEL_MAX_LAYERS], fc = 0, conv = 0;
    int in_fc = 0; /* from the first fully connected layer on */
    net_ctx_layer_seconds(ctx, f, NULL);
    for (int l = 0; l < spec->n_layers; l++) {
        in_fc |= spec->layers[l].kind == MODEL_LAYER_FC;
        *(in_fc ? &fc : &conv) += f[l] * 1e3 / passes;
    }
    const double dep = bd->conv_peak_ms + bd->fc_read_ms;
    printf("{\"case\":\"forward batch 1 against the read bound\",\"ms_per_image\":%.2f,"
           "\"bound_ms\":%.2f,\"ratio_to_bound\":%.2f,\"target\":1.2,"
           "\"conv_ms\":%.2f,\"fc_ms\":%.2f,\"fc_ratio_to_read\":%.2f,"
           "\"conv_ratio_to_sgemm_peak\":%.2f,\"conv_peak_plus_fc_read_ms\":%.2f,"
           "\"ratio_to_conv_peak_plus_fc_read\":%.2f,\"engine\":\"graph\",\"round\":%d}\n",
           per_img_ms, bd->read_ms, per_img_ms / bd->read_ms, conv, fc, fc / bd->fc_read_ms,
           conv / bd->conv_peak_ms, dep, per_img_ms / dep, round);
}

/*
 * --attacks at batch b: FGSM, BIM-10 and PGD-10 per image, alternating in
 * rounds; one line per attack. 0, or 1 with a message.
 */
static int bench_attacks(const model *m, const model_spec *spec, int b, double seconds)
{
    enum { N_ATK = 3 };
    static const char *const names[N_ATK] = {"fgsm", "bim", "pgd"};
    char err[ADJ_ERRLEN];
    net_ctx *ctx;
    if (b < 1 || net_ctx_new(m, b, &ctx, err, sizeof err)) {
        fprintf(stderr, "advjpg-bench: batch %d: %s\n", b, b < 1 ? "not a positive integer" : err);
        return 1;
    }
    const int S = spec->input_size, per = 3 * S * S;
    img_rgb *xs = calloc((size_t)b, sizeof *xs), *outs = calloc((size_t)b, sizeof *outs);
    int *labels = calloc((size_t)b, sizeof *labels);
    uint64_t *seeds = calloc((size_t)b, sizeof *seeds), st = 11;
    float *grad = malloc((size_t)per * b * sizeof *grad);
    int rc = !xs || !outs || !labels || !seeds || !grad;
    for (int i = 0; !rc && i < b; i++) {
        rc = img_alloc(&xs[i], S, S) != 0;
        for (int k = 0; !rc && k < per; k++)
            xs[i].px[k] = (uint8_t)(next(&st) >> 56);
        seeds[i] = (uint64_t)i + 1;
    }
    double sum[N_ATK] = {0}, best[N_ATK] = {1e9, 1e9, 1e9}, t_all = ut_now();
    int rounds = 0;
    for (int r = -1; !rc && (r < 1 || ut_now() - t_all < seconds); r++) { /* r = -1: warm-up */
        for (int a = 0; !rc && a < N_ATK; a++) {
            atk_iter_params ip = {.eps = 5, .steps = 10, .step_size = 1, .random_start = a == 2};
            double t = ut_now();
            if (a == 0) {
                rc = atk_gradient(ctx, xs, b, labels, 1, grad, NULL, err, sizeof err);
                for (int i = 0; !rc && i < b; i++)
                    rc = img_alloc(&outs[i], S, S) ||
                         (atk_fgsm(xs[i].px, grad + (size_t)per * i, (size_t)per, 5, outs[i].px), 0);
            } else {
                rc = atk_iterative(ctx, xs, b, labels, seeds, &ip, outs, err, sizeof err);
            }
            t = ut_now() - t;
            for (int i = 0; i < b; i++)
                img_free(&outs[i]);
            if (r >= 0) {
                sum[a] += t;
                best[a] = fmin(best[a], t);
            }
        }
        if (r == -1)
            t_all = ut_now();
        else
            rounds++;
    }
    for (int a = 0; !rc && a < N_ATK; a++)
        printf("{\"model\":\"%s\",\"batch\":%d,\"attack\":\"%s\",\"steps\":%d,"
               "\"ms_per_image\":%.2f,\"ms_per_image_min\":%.2f,\"ratio_to_fgsm\":%.2f,"
               "\"backward_passes\":%d,\"rounds\":%d,\"threads\":%d}\n",
               spec->name, b, names[a], a ? 10 : 1, sum[a] / rounds / b * 1e3, best[a] / b * 1e3,
               sum[a] / sum[0], a ? 10 : 1, rounds, net_ctx_threads(ctx));
    if (rc)
        fprintf(stderr, "advjpg-bench: attacks: %s\n", err);
    for (int i = 0; xs && i < b; i++)
        img_free(&xs[i]);
    free(xs);
    free(outs);
    free(labels);
    free(seeds);
    free(grad);
    net_ctx_free(ctx);
    return rc;
}

/*
 * --layers' shapes and rates: "shapes" (each layer's output, CxHxW; the input's
 * first), "mflop" per image of each layer's forward and "gflops" of its
 * ms[] (ms per image; a gradient pass counts twice the forward's FLOP).
 */
static void print_layer_shapes(const model_spec *spec, const double *ms, int pass)
{
    model_shape sh[MODEL_MAX_LAYERS + 1];
    double fl[MODEL_MAX_LAYERS];
    if (layer_costs(spec, sh, fl, NULL))
        return;
    printf(",\"shapes\":[\"%dx%dx%d\"", sh[0].c, sh[0].h, sh[0].w);
    for (int l = 0; l < spec->n_layers; l++)
        printf(",\"%dx%dx%d\"", sh[l + 1].c, sh[l + 1].h, sh[l + 1].w);
    printf("],\"mflop\":[");
    for (int l = 0; l < spec->n_layers; l++)
        printf("%s%.1f", l ? "," : "", fl[l] * 1e-6);
    printf("],\"gflops\":[");
    for (int l = 0; l < spec->n_layers; l++)
        printf("%s%.1f", l ? "," : "", ms[l] > 0 ? fl[l] * (pass ? 2 : 1) / ms[l] * 1e-6 : 0.0);
    printf("]");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: advjpg-bench --model NAME|FILE.json|FILE.onnx [--weights FILE] [--batch 1,16] [--seconds S] [--layers]\n"
               "                    [--winograd default,0] [--rounds R]\n"
               "                    [--save-weights FILE] [--attacks]\n"
               "Times the engine's forward pass and forward + input gradient; one JSON line per case.\n"
               "Without --weights, random weights of the model's exact size are used.\n");
}

int main(int argc, char **argv)
{
    adj_runtime_init(argv);
    const char *model_name = "overfeat-fast", *weights = NULL, *batches = "1,16";
    double seconds = 3.0;
    int layers = 0, attacks = 0;
    const char *winos = "default", *engines = "graph";
    int rounds = 1;
    const char *save = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--save-weights") && i + 1 < argc) {
            save = argv[++i];
        } else if (!strcmp(argv[i], "--winograd") && i + 1 < argc) {
            winos = argv[++i];
        } else if (!strcmp(argv[i], "--engine") && i + 1 < argc) {
            engines = argv[++i];
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--layers")) {
            layers = 1;
        } else if (!strcmp(argv[i], "--attacks")) {
            attacks = 1;
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
    if (model_is_onnx_path(model_name)) { /* an ONNX model: its own weights */
        if (model_load_onnx(model_name, NULL, &m, err, sizeof err)) {
            fprintf(stderr, "advjpg-bench: %s\n", err);
            return 1;
        }
        spec = *model_get_spec(m);
    } else if (model_spec_load(model_name, &spec, err, sizeof err)) {
        fprintf(stderr, "advjpg-bench: %s\n", err);
        return 1;
    }
    if (m) {
    } else if (weights) {
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
    if (attacks) { /* FGSM, BIM-10, PGD-10 per image, alternating */
        char list[256];
        int rc = 0;
        snprintf(list, sizeof list, "%s", batches);
        for (char *bs, *tok = strtok_r(list, ",", &bs); tok && !rc; tok = strtok_r(NULL, ",", &bs))
            rc = bench_attacks(m, &spec, atoi(tok), seconds);
        model_free(m);
        return rc;
    }
    double sgemm_gflops = 0;
    {   /* the limit: the engine's products and OpenBLAS's sgemm on 2048^3 */
        const int n = 2048;
        float *a = malloc((size_t)n * n * sizeof(float)), *bm = malloc((size_t)n * n * sizeof(float));
        float *c = malloc((size_t)n * n * sizeof(float));
        gemm_ws *ws;
        if (!a || !bm || !c || gemm_ws_new(0, &ws, err, sizeof err)) {
            fprintf(stderr, "advjpg-bench: out of memory\n");
            return 1;
        }
        for (size_t k = 0; k < (size_t)n * n; k++)
            a[k] = bm[k] = (float)(k % 7) * 0.1f;
        double best_g = 1e9, best_b = 1e9;
        for (int r = 0; r < 4; r++) {
            double t = ut_now();
            gemm_f32(ws, GEMM_N, GEMM_N, n, n, n, a, n, bm, n, 0, c, n);
            best_g = fmin(best_g, ut_now() - t);
            t = ut_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, bm, n, 0.0f, c, n);
            best_b = fmin(best_b, ut_now() - t);
        }
        const double fl = 2.0 * n * n * n;
        sgemm_gflops = fl / best_b * 1e-9;
        printf("{\"case\":\"product 2048^3\",\"gemm_gflops\":%.1f,\"sgemm_gflops\":%.1f,"
               "\"gemm\":\"%s\",\"threads\":%d,\"blas_core\":\"%s\",\"blas_threads\":%d}\n",
               fl / best_g * 1e-9, fl / best_b * 1e-9, gemm_kernel_name(ws), gemm_ws_threads(ws),
               adj_blas_corename(), adj_blas_threads());
        gemm_ws_free(ws);
        free(a);
        free(bm);
        free(c);
    }
    const double flops = model_spec_flops(&spec);
    char list[256], wlist[256], elist[256];
    for (int round = 1; round <= rounds; round++) {
    snprintf(list, sizeof list, "%s", batches);
    for (char *bsave, *tok = strtok_r(list, ",", &bsave); tok; tok = strtok_r(NULL, ",", &bsave)) {
      snprintf(wlist, sizeof wlist, "%s", winos);
      for (char *wsave, *wtok = strtok_r(wlist, ",", &wsave); wtok; wtok = strtok_r(NULL, ",", &wsave)) {
      snprintf(elist, sizeof elist, "%s", engines);
      for (char *esave, *etok = strtok_r(elist, ",", &esave); etok; etok = strtok_r(NULL, ",", &esave)) {
        int b = atoi(tok);
        const int wino = strcmp(wtok, "default") ? atoi(wtok) : -1;
        net_ctx *ctx;
        if (b < 1 || net_ctx_new(m, b, &ctx, err, sizeof err)) {
            fprintf(stderr, "advjpg-bench: batch '%s': %s\n", tok, b < 1 ? "not a positive integer" : err);
            return 2;
        }
        if (strcmp(etok, "graph")) {
            fprintf(stderr, "advjpg-bench: --engine '%s': the one engine is graph\n", etok);
            return 2;
        }
        if (net_ctx_set_winograd(ctx, wino)) {
            fprintf(stderr, "advjpg-bench: --winograd '%s': default or 0 (or out of memory)\n", wtok);
            return 2;
        }
        b1_bound bound = {0};
        if (b == 1)
            batch1_bound(m, &spec, sgemm_gflops, &bound);
        const size_t per = (size_t)spec.channels * spec.input_size * spec.input_size;
        float *x = malloc(per * b * sizeof(float)), *g = malloc(per * b * sizeof(float));
        int *labels = calloc(b, sizeof(int));
        uint64_t s = 7;
        for (size_t k = 0; k < per * b; k++)
            x[k] = (float)(next(&s) % 256);
        double fprev[MODEL_MAX_LAYERS] = {0};
        for (int pass = 0; pass < 2; pass++) {
            int reps = 0;
            double t0 = 0, t, last = 0, fastest = 1e9;
            for (int i = -1;; i++) { /* i = -1 is the warm-up */
                if (i == 0)
                    t0 = last = ut_now();
                net_forward(ctx, x, b, NULL);
                if (pass == 1)
                    net_backward(ctx, labels, g, NULL, NULL);
                t = ut_now();
                if (i >= 0) {
                    reps++;
                    fastest = fmin(fastest, t - last);
                }
                last = t;
                if (i >= 0 && t - t0 >= seconds && reps >= 2)
                    break;
            }
            double per_img = (t - t0) / reps / b;
            printf("{\"model\":\"%s\",\"batch\":%d,\"pass\":\"%s\",\"ms_per_image\":%.2f,"
                   "\"ms_per_image_min\":%.2f,\"gflops\":%.1f,\"gemm\":\"%s\",\"threads\":%d,"
                   "\"winograd\":\"%s\",\"context_mb\":%.0f,\"rss_mb\":%.0f,\"engine\":\"%s\","
                   "\"round\":%d}\n",
                   spec.name, b, pass ? "gradient" : "forward", per_img * 1e3, fastest / b * 1e3,
                   flops * (pass ? 2 : 1) / per_img * 1e-9, net_ctx_kernel(ctx), net_ctx_threads(ctx),
                   wtok, net_ctx_bytes(ctx) / 1048576.0, rss_mb(), etok, round);
            if (bound.read_ms > 0 && pass == 0) /* batch 1 against its limits */
                print_batch1(ctx, &spec, &bound, per_img * 1e3, reps + 1, round);
            fflush(stdout);
            if (layers) { /* where the time goes: per layer, ms per image */
                double f[MODEL_MAX_LAYERS], bw[MODEL_MAX_LAYERS];
                net_ctx_layer_seconds(ctx, f, bw);
                printf("{\"batch\":%d,\"pass\":\"%s\",\"engine\":\"%s\",\"round\":%d,"
                       "\"layers_ms_per_image\":[", b, pass ? "gradient" : "forward", etok, round);
                double ms[MODEL_MAX_LAYERS];
                for (int l = 0; l < spec.n_layers; l++) {
                    double v = pass ? f[l] + bw[l] - fprev[l] : f[l];
                    ms[l] = v * 1e3 / (reps + 1) / b;
                    printf("%s%.2f", l ? "," : "", ms[l]);
                    fprev[l] = f[l] + bw[l];
                }
                printf("],\"algorithms\":[");
                for (int l = 0; l < spec.n_layers; l++)
                    printf("%s\"%s\"", l ? "," : "", net_ctx_layer_algorithm(ctx, l));
                printf("]");
                print_layer_shapes(&spec, ms, pass);
                printf("}\n");
                memcpy(fprev, f, sizeof f);
            }
        }
        free(x);
        free(g);
        free(labels);
        net_ctx_free(ctx);
      }
      }
    }
    }
    model_free(m);
    return 0;
}
