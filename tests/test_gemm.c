/* gemm_f32 against its contract: every element equals a plain fmaf chain over
 * k in increasing order, bit for bit, for every shape (edge tiles, deep and
 * wide blocks, the few-rows path), both transpositions of each operand,
 * accumulation, and 1, 2 or 3 threads, split or each thread alone
 * (gemm_f32_local). Bit equality to this reference is what
 * makes an image's numbers independent of the batch it is computed in. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "status.h"
#include "testutil.h"

/* The contract, written out with nothing but fmaf. */
static void reference(gemm_op ta, gemm_op tb, int M, int N, int K, const float *A, int lda,
                      const float *B, int ldb, int acc, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = acc ? C[(size_t)i * ldc + j] : 0.0f;
            for (int k = 0; k < K; k++) {
                const float a = ta == GEMM_N ? A[(size_t)i * lda + k] : A[(size_t)k * lda + i];
                const float b = tb == GEMM_N ? B[(size_t)k * ldb + j] : B[(size_t)j * ldb + k];
                s = fmaf(a, b, s);
            }
            C[(size_t)i * ldc + j] = s;
        }
}

static float *random_matrix(size_t n, uint64_t *seed)
{
    float *m = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        m[i] = tu_uniform(seed, -1.0f, 1.0f);
    return m;
}

/* A product and `parts` copies of its C, for gemm_parallel_local: part i
 * computes the whole product into its copy on whichever thread claims it. */
typedef struct {
    gemm_op ta, tb;
    int M, N, K, lda, ldb, acc, ldc;
    const float *A, *B;
    float *C; /* parts x M*ldc floats, each copy starting as C0 */
    size_t nc, nb; /* nb: B's floats, copied to the thread's scratch first */
} local_case;

static void local_part(void *arg, int part, gemm_local *t)
{
    const local_case *c = arg;
    float *b = gemm_local_scratch(t);
    memcpy(b, c->B, c->nb * sizeof(float));
    gemm_f32_local(t, c->ta, c->tb, c->M, c->N, c->K, c->A, c->lda, b, c->ldb, c->acc,
                   c->C + (size_t)part * c->nc, c->ldc);
}

/* Rows of got that differ from want (bad) and leading-dimension gaps that differ from C0. */
static void compare(const float *got, const float *want, const float *C0, int M, int N, int ldc,
                    size_t *bad, size_t *gap)
{
    for (int i = 0; i < M; i++) {
        *bad += memcmp(got + (size_t)i * ldc, want + (size_t)i * ldc, (size_t)N * sizeof(float)) != 0;
        *gap += memcmp(got + (size_t)i * ldc + N, C0 + (size_t)i * ldc + N,
                       (size_t)(ldc - N) * sizeof(float)) != 0;
    }
}

/* The product on each thread alone (gemm_parallel_local, threads + 1 parts
 * claimed concurrently, each with its thread's buffers, B read from the
 * thread's own scratch), against want. */
static void check_local(gemm_ws *ws, local_case c, const float *C0, const float *want)
{
    char err[ADJ_ERRLEN];
    CHECK(gemm_ws_reserve_local(ws, c.nb, err, sizeof err) == 0, "%s", err);
    const int parts = gemm_ws_threads(ws) + 1;
    c.C = malloc((size_t)parts * c.nc * sizeof(float) + 1);
    for (int q = 0; q < parts; q++)
        memcpy(c.C + (size_t)q * c.nc, C0, c.nc * sizeof(float));
    gemm_parallel_local(ws, parts, local_part, &c);
    size_t bad = 0, gap = 0;
    for (int q = 0; q < parts; q++)
        compare(c.C + (size_t)q * c.nc, want, C0, c.M, c.N, c.ldc, &bad, &gap);
    CHECK(bad == 0 && gap == 0,
          "local %c%c M=%d N=%d K=%d acc=%d threads=%d %s: %zu rows differ from the fma chain, %zu gaps written",
          c.ta ? 'T' : 'N', c.tb ? 'T' : 'N', c.M, c.N, c.K, c.acc, gemm_ws_threads(ws),
          gemm_kernel_name(ws), bad, gap);
    free(c.C);
}

/* One product through every workspace, split (gemm_f32) and on each thread
 * alone (gemm_f32_local), compared with the reference. */
static void check_shape(gemm_ws *const *ws, int n_ws, gemm_op ta, gemm_op tb, int M, int N, int K,
                        int acc, uint64_t seed)
{
    /* leading dimensions a little larger than needed, to catch stride mix-ups */
    const int lda = (ta == GEMM_N ? K : M) + 3, ldb = (tb == GEMM_N ? N : K) + 5, ldc = N + 7;
    const size_t na = (size_t)(ta == GEMM_N ? M : K) * lda + 1, nb = (size_t)(tb == GEMM_N ? K : N) * ldb + 1;
    const size_t nc = (size_t)M * ldc;
    float *A = random_matrix(na, &seed), *B = random_matrix(nb, &seed), *C0 = random_matrix(nc, &seed);
    float *want = malloc(nc * sizeof(float)), *got = malloc(nc * sizeof(float));
    memcpy(want, C0, nc * sizeof(float));
    reference(ta, tb, M, N, K, A, lda, B, ldb, acc, want, ldc);
    for (int w = 0; w < n_ws; w++) {
        memcpy(got, C0, nc * sizeof(float));
        gemm_f32(ws[w], ta, tb, M, N, K, A, lda, B, ldb, acc, got, ldc);
        /* what lies between the rows (the leading-dimension gap) is untouched */
        size_t bad = 0, gap = 0;
        compare(got, want, C0, M, N, ldc, &bad, &gap);
        CHECK(bad == 0 && gap == 0,
              "%c%c M=%d N=%d K=%d acc=%d threads=%d %s: %zu rows differ from the fma chain, %zu gaps written",
              ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, acc, gemm_ws_threads(ws[w]),
              gemm_kernel_name(ws[w]), bad, gap);
        check_local(ws[w], (local_case){ta, tb, M, N, K, lda, ldb, acc, ldc, A, B, NULL, nc, nb}, C0,
                    want);
    }
    free(A);
    free(B);
    free(C0);
    free(want);
    free(got);
}

int main(void)
{
    char err[ADJ_ERRLEN];
    /* the processor's best kernels on 1, 2 and 3 threads; on 2 threads the
     * portable ones and, where AVX-512 is there, the AVX2 ones */
    gemm_ws *ws[5] = {NULL, NULL, NULL, NULL, NULL};
    const int n_ws = gemm_isa_best() > GEMM_ISA_AVX2 ? 5 : 4;
    for (int t = 0; t < n_ws; t++)
        CHECK(gemm_ws_new(t < 3 ? t + 1 : 2, &ws[t], err, sizeof err) == 0, "%s", err);
    gemm_ws_limit_isa(ws[3], GEMM_ISA_PORTABLE);
    if (n_ws > 4)
        gemm_ws_limit_isa(ws[4], GEMM_ISA_AVX2);
    for (int t = 0; t < n_ws; t++)
        fprintf(stderr, "kernels of workspace %d: %s\n", t, gemm_kernel_name(ws[t]));

    /* {M, N, K}: tile edges, one row, the few-rows path (M <= 6), deep K over
     * several depth blocks, wide N over several column blocks, M over MC */
    static const int shapes[][3] = {
        {1, 1, 1},     {1, 17, 3},    {2, 16, 5},    {5, 33, 40},   {6, 16, 256},   {7, 15, 257},
        {13, 47, 31},  {1, 3000, 700}, {4, 130, 2100}, {6, 9000, 20}, {16, 70, 600},  {97, 29, 300},
        {101, 4200, 9}, {40, 1, 513},  {3, 2, 4100},  {12, 36, 64},  {0, 5, 5},      {5, 5, 0},
        /* few columns, many rows (computed as C^T): over several row blocks */
        {4200, 7, 20}, {200, 49, 300}, {64, 64, 40},
        /* tiles of 17..31 columns (AVX-512's two panels, the second partial),
         * in place and in C^T's copies */
        {7, 57, 33}, {19, 120, 70}, {90, 20, 30},
        /* 7..16 rows by B^T (AVX-512: rows in a vector's lanes) over several
         * depth chunks and several column blocks */
        {9, 21, 4500}, {8, 64000, 3},
    };
    uint64_t seed = 11;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int acc = 0; acc < 2; acc++)
                    check_shape(ws, n_ws, (gemm_op)ta, (gemm_op)tb, shapes[s][0], shapes[s][1],
                                shapes[s][2], acc, seed++);

    /* A product big enough for every thread (conv-like: 64 x 2304 x 1152) */
    check_shape(ws, 3, GEMM_N, GEMM_N, 64, 2304, 1152, 0, 99);
    check_shape(ws, 3, GEMM_T, GEMM_N, 300, 600, 64, 1, 98);
    check_shape(ws, 3, GEMM_N, GEMM_N, 1000, 49, 300, 0, 97);
    check_shape(ws, 3, GEMM_N, GEMM_T, 1000, 49, 300, 1, 96);

    /* Columns of one image side by side with others (a batch): the image's
     * block of C is the same whatever sits next to it. */
    {
        const int M = 37, K = 290, w = 50;
        float *A = random_matrix((size_t)M * K, &seed);
        float *alone = NULL;
        int diff = 0;
        for (int n = 1; n <= 9; n += 4) {
            const int N = n * w;
            float *B = malloc((size_t)K * N * sizeof(float)), *C = malloc((size_t)M * N * sizeof(float));
            uint64_t s2 = 5, s3 = 1000 + n;
            for (int k = 0; k < K; k++)
                for (int j = 0; j < N; j++) /* image 0 first, then others */
                    B[(size_t)k * N + j] = j < w ? tu_uniform(&s2, -1, 1) : tu_uniform(&s3, -1, 1);
            gemm_f32(ws[1], GEMM_N, GEMM_N, M, N, K, A, K, B, N, 0, C, N);
            if (!alone) {
                alone = malloc((size_t)M * w * sizeof(float));
                for (int i = 0; i < M; i++)
                    memcpy(alone + (size_t)i * w, C + (size_t)i * N, w * sizeof(float));
            } else
                for (int i = 0; i < M; i++)
                    diff += memcmp(alone + (size_t)i * w, C + (size_t)i * N, w * sizeof(float)) != 0;
            free(B);
            free(C);
        }
        CHECK(diff == 0, "an image's columns change with its neighbours in %d rows", diff);
        free(A);
        free(alone);
    }
    /* Rows of one product stacked with others (a batch in M), and its columns
     * cut anywhere: each piece, computed alone on one thread, has the bits of
     * the whole product on two (which takes other paths: C^T for few
     * columns, shallow sweeps, other thread splits). */
    {
        static const int cuts[][3] = {{200, 49, 300}, {150, 300, 40}, {97, 20, 16}};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            const int M = cuts[c][0], N = cuts[c][1], K = cuts[c][2];
            float *A = random_matrix((size_t)M * K, &seed), *B = random_matrix((size_t)K * N, &seed);
            float *whole = malloc((size_t)M * N * sizeof(float));
            float *piece = malloc((size_t)M * N * sizeof(float));
            gemm_f32(ws[1], GEMM_N, GEMM_N, M, N, K, A, K, B, N, 0, whole, N);
            const int i1 = 7, i2 = M / 2 + 1, j1 = N / 3 + 1;
            const int rows[][2] = {{0, i1}, {i1, i2}, {i2, M}}, cols[][2] = {{0, j1}, {j1, N}};
            for (int r = 0; r < 3; r++)
                for (int q = 0; q < 2; q++)
                    gemm_f32(ws[0], GEMM_N, GEMM_N, rows[r][1] - rows[r][0],
                             cols[q][1] - cols[q][0], K, A + (size_t)rows[r][0] * K, K,
                             B + cols[q][0], N, 0, piece + (size_t)rows[r][0] * N + cols[q][0], N);
            CHECK(!memcmp(whole, piece, (size_t)M * N * sizeof(float)),
                  "M=%d N=%d K=%d: a piece's bits differ from the whole product's", M, N, K);
            free(A);
            free(B);
            free(whole);
            free(piece);
        }
    }
    for (int t = 0; t < n_ws; t++)
        gemm_ws_free(ws[t]);
    gemm_ws_free(NULL);
    return tu_done();
}
