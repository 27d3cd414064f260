/*
 * advjpg-bench-gemm - GFLOP/s of gemm_f32 on the products the torchvision
 * models run: each 1x1 convolution is one product per image (M = Cout,
 * N = H*W, K = Cin, A = the weights), so a round is `batch` calls with the
 * same A and a new B and C each, as conv_forward makes them.
 *
 *     advjpg-bench-gemm [--threads T] [--batch B] [--rounds R] [--cpu 1] [--tb 1] [--local 1]
 *                       [--isa 0|1|2]
 *                       [M N K ...]
 *
 * Without shapes: ResNet-50's and MobileNet v2's 1x1 products. Prints one
 * line per shape, the best round's GFLOP/s (to compare two builds, run them
 * alternately). --cpu 1 times with processor time instead of wall time
 * (meaningful with --threads 1: it leaves out the time others' processes
 * took the core). --tb 1: B is used transposed (B[N][K], a fully connected
 * layer's weights as the engine passes them). --local 1: the batch's
 * products image-parallel, each whole on one thread (gemm_parallel_local and
 * gemm_f32_local, as the convolutions run them when the batch has at least
 * as many images as threads). --isa 0|1|2: the kernels at most portable,
 * AVX2 or AVX-512 (gemm_ws_limit_isa; default the processor's best).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"
#include "status.h"

/* Wall time, or with --cpu the process's processor time (on one thread,
 * steadier than wall time on a machine others use too). */
static clockid_t clock_id = CLOCK_MONOTONIC;
static gemm_op tb = GEMM_N;

/* One round's products, for gemm_parallel_local: product b is part b. */
typedef struct {
    int M, N, K;
    const float *A, *X;
    float *C;
} round_job;

static void local_part(void *arg, int b, gemm_local *t)
{
    const round_job *j = arg;
    gemm_f32_local(t, GEMM_N, tb, j->M, j->N, j->K, j->A, j->K, j->X + (size_t)b * j->K * j->N,
                   tb == GEMM_N ? j->N : j->K, 0, j->C + (size_t)b * j->M * j->N, j->N);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(clock_id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const int default_shapes[][3] = {
    {256, 3136, 64},  {64, 3136, 256},  {128, 3136, 256}, {64, 3136, 64},
    {512, 784, 128},  {128, 784, 512},  {1024, 196, 256}, {256, 196, 1024},
    {2048, 49, 512},  {512, 49, 2048},  {96, 12544, 16},  {16, 12544, 96},
    {2048, 2048, 2048},
};

/* Best of `rounds` rounds of `batch` products M x N x K, in GFLOP/s. */
static double bench_shape(gemm_ws *ws, int M, int N, int K, int batch, int rounds, int local)
{
    float *A = malloc(sizeof(float) * (size_t)M * K);
    float *X = malloc(sizeof(float) * (size_t)K * N * batch);
    float *C = malloc(sizeof(float) * (size_t)M * N * batch);
    if (!A || !X || !C) {
        free(A), free(X), free(C);
        return 0;
    }
    unsigned s = 1;
    for (size_t i = 0; i < (size_t)M * K; i++)
        A[i] = (float)(s = s * 1103515245u + 12345u) / 4294967296.0f - 0.5f;
    for (size_t i = 0; i < (size_t)K * N * batch; i++)
        X[i] = (float)(s = s * 1103515245u + 12345u) / 4294967296.0f;
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        const double t = now();
        round_job j = {M, N, K, A, X, C};
        if (local)
            gemm_parallel_local(ws, batch, local_part, &j);
        for (int b = 0; b < batch && !local; b++)
            gemm_f32(ws, GEMM_N, tb, M, N, K, A, K, X + (size_t)b * K * N, tb == GEMM_N ? N : K, 0,
                     C + (size_t)b * M * N, N);
        const double dt = now() - t;
        if (dt < best)
            best = dt;
    }
    free(A), free(X), free(C);
    return 2.0 * M * N * K * batch / best / 1e9;
}

int main(int argc, char **argv)
{
    int threads = 0, batch = 16, rounds = 5, local = 0, isa = GEMM_ISA_AVX512, a = 1;
    for (; a + 1 < argc && !strncmp(argv[a], "--", 2); a += 2) {
        const int v = atoi(argv[a + 1]);
        if (!strcmp(argv[a], "--threads"))
            threads = v;
        else if (!strcmp(argv[a], "--batch"))
            batch = v > 0 ? v : 1;
        else if (!strcmp(argv[a], "--rounds"))
            rounds = v > 0 ? v : 1;
        else if (!strcmp(argv[a], "--tb"))
            tb = v ? GEMM_T : GEMM_N;
        else if (!strcmp(argv[a], "--local"))
            local = v != 0;
        else if (!strcmp(argv[a], "--isa"))
            isa = v;
        else if (!strcmp(argv[a], "--cpu"))
            clock_id = v ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC;
        else {
            fprintf(stderr, "usage: %s [--threads T] [--batch B] [--rounds R] [--cpu 1] [--tb 1]"
                            " [--local 1] [--isa 0|1|2] [M N K ...]\n", argv[0]);
            return 2;
        }
    }
    char err[ADJ_ERRLEN];
    gemm_ws *ws;
    if (gemm_ws_new(threads, &ws, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    gemm_ws_limit_isa(ws, (gemm_isa)isa);
    const int n_args = (argc - a) / 3;
    const int n = n_args ? n_args : (int)(sizeof default_shapes / sizeof default_shapes[0]);
    for (int s = 0; s < n; s++) {
        const int M = n_args ? atoi(argv[a + 3 * s]) : default_shapes[s][0];
        const int N = n_args ? atoi(argv[a + 3 * s + 1]) : default_shapes[s][1];
        const int K = n_args ? atoi(argv[a + 3 * s + 2]) : default_shapes[s][2];
        const int bt = (double)M * N * K > 1e9 ? 1 : batch;
        printf("{\"M\":%d,\"N\":%d,\"K\":%d,\"tb\":%d,\"threads\":%d,\"local\":%d,"
               "\"kernel\":\"%s\",\"gflops\":%.1f}\n", M, N, K, tb == GEMM_T, gemm_ws_threads(ws), local,
               gemm_kernel_name(ws),
               bench_shape(ws, M, N, K, bt, rounds, local));
    }
    gemm_ws_free(ws);
    return 0;
}
