#include "gemm.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GEMM_X86 1
#endif

#include "status.h"

/* Micro-tile MR x NR; blocks of KC (depth) x NC (columns of B packed at once)
 * and MC rows of A per pass over a packed block; products of at most MR rows
 * (a few images through a fully connected layer) take deeper, narrower
 * blocks (KC_THIN x NC_THIN) so that B's rows are read in longer runs.
 * The tiling changes speed only, never a result (see the header's contract). */
#define MR 6
#define NR 16
#define KC 256
#define MC 96
#define NC 4096
#ifndef KC_THIN
#define KC_THIN 4096
#endif
#define NC_THIN (KC * NC / KC_THIN)
/* floats of a thread's packed block of A: MC x KC, or MR x KC_THIN */
#define APACK (MC * KC > MR * KC_THIN ? MC * KC : MR * KC_THIN)
#ifndef ROWS_BYTES
#define ROWS_BYTES (512 << 10)
#endif /* gemm_rows: C's and B's rows updated a pass stay in this much (of L2) */
/* gemm_rows: C's rows go through a copy this many floats past a multiple of
 * 32 apart, for products at least this deep (the copy costs 2 of K passes) */
#define ROWS_LD_PAD 16
#define ROWS_COPY_MIN_K 16
#define MAX_THREADS 64
/* Products smaller than this many multiply-adds run on the caller's thread
 * alone (waking a helper costs more than it saves). */
#define PARALLEL_MIN 4e6
/* Smallest share of a product worth handing out on its own, in tiles. */
#define PART_TILES 16
/* Products of at most this many rows with B used as stored stream B's rows. */
#define ROWS_MAX_M GEMM_FEW_ROWS
_Static_assert(ROWS_BYTES / sizeof(float) + ROWS_MAX_M * (32 + ROWS_LD_PAD) <= (size_t)KC * NC,
               "gemm_rows's copy of C fits a thread's packing buffer");
/* Blocks of at most this depth sweep their packed block of B with each panel
 * of A (gemm_block). */
#ifndef SWEEP_MAX_KC
#define SWEEP_MAX_KC 64
#endif
/* Products of at most this many columns (and more rows) are computed as C^T. */
#ifndef SWAP_MAX_N
#define SWAP_MAX_N 64
#endif

typedef struct gemm_job gemm_job;
static int job_parts(const gemm_job *j);
static void run_part(const gemm_job *j, int part, gemm_ws *ws, int thread);

/*
 * The helpers: threads - 1 threads that sleep until the caller posts a job
 * of `parts` independent parts. Everybody, the caller included, claims parts
 * one at a time from an atomic counter; the caller returns once every part is
 * finished and no helper is still claiming. A helper the system does not
 * schedule in time simply claims nothing, so it delays no one (a barrier, as
 * in an OpenMP loop, would make everybody wait for it).
 */
struct gemm_ws {
    int threads;
    gemm_isa isa; /* the kernels' instruction set: the processor's best, or less (tests) */
    size_t bytes;
    float *pack[MAX_THREADS];  /* one packed block of B per thread: KC x NC floats */
    float *apack[MAX_THREADS]; /* one packed block of A per thread: APACK floats */
    float *local[MAX_THREADS]; /* each thread's gemm_local scratch: local_floats */
    size_t local_floats;
    pthread_t tid[MAX_THREADS];
    int started;              /* helpers running */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    /* under mu */
    unsigned long gen; /* bumped for each job */
    int stop;
    const gemm_job *job; /* NULL between jobs */
    int finished;        /* parts of the job finished */
    int active;          /* helpers claiming parts of the job */
    atomic_int next;     /* next part to claim */
};

typedef struct {
    gemm_ws *ws;
    int index; /* 1..threads-1: its packing buffer */
} helper_arg;

static void *helper_main(void *arg)
{
    gemm_ws *ws = ((helper_arg *)arg)->ws;
    const int index = ((helper_arg *)arg)->index;
    free(arg);
    unsigned long seen = 0;
    pthread_mutex_lock(&ws->mu);
    for (;;) {
        while (!ws->stop && ws->gen == seen)
            pthread_cond_wait(&ws->wake, &ws->mu);
        if (ws->stop)
            break;
        seen = ws->gen;
        const gemm_job *j = ws->job;
        if (!j)
            continue;
        ws->active++;
        pthread_mutex_unlock(&ws->mu);
        int part;
        const int parts = job_parts(j);
        while ((part = atomic_fetch_add(&ws->next, 1)) < parts) {
            run_part(j, part, ws, index);
            pthread_mutex_lock(&ws->mu);
            if (++ws->finished == parts)
                pthread_cond_signal(&ws->done);
            pthread_mutex_unlock(&ws->mu);
        }
        pthread_mutex_lock(&ws->mu);
        if (--ws->active == 0)
            pthread_cond_signal(&ws->done);
    }
    pthread_mutex_unlock(&ws->mu);
    return NULL;
}

/* Runs the job's parts on the caller and the helpers; returns when all are done. */
static void run_job(gemm_ws *ws, const gemm_job *j, int parts)
{
    pthread_mutex_lock(&ws->mu);
    ws->job = j;
    ws->finished = 0;
    atomic_store(&ws->next, 0);
    ws->gen++;
    pthread_cond_broadcast(&ws->wake);
    pthread_mutex_unlock(&ws->mu);
    int part;
    while ((part = atomic_fetch_add(&ws->next, 1)) < parts) {
        run_part(j, part, ws, 0);
        pthread_mutex_lock(&ws->mu);
        ws->finished++;
        pthread_mutex_unlock(&ws->mu);
    }
    pthread_mutex_lock(&ws->mu);
    while (ws->finished < parts || ws->active > 0)
        pthread_cond_wait(&ws->done, &ws->mu);
    ws->job = NULL;
    pthread_mutex_unlock(&ws->mu);
}

int gemm_ws_new(int threads, gemm_ws **out, char *err, size_t errsz)
{
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    gemm_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    ws->threads = threads;
    ws->isa = gemm_isa_best();
    pthread_mutex_init(&ws->mu, NULL);
    pthread_cond_init(&ws->wake, NULL);
    pthread_cond_init(&ws->done, NULL);
    const size_t sz = (size_t)KC * NC * sizeof(float), asz = (size_t)APACK * sizeof(float);
    for (int t = 0; t < threads; t++) {
        void *p = NULL, *q = NULL;
        if (posix_memalign(&p, 64, sz) || posix_memalign(&q, 64, asz)) {
            free(p);
            gemm_ws_free(ws);
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for matrix-product scratch");
        }
        ws->pack[t] = p;
        ws->apack[t] = q;
        ws->bytes += sz + asz;
    }
    for (int t = 1; t < threads; t++) {
        helper_arg *a = malloc(sizeof *a);
        int rc = a ? 0 : ENOMEM;
        if (a) {
            *a = (helper_arg){ws, t};
            rc = pthread_create(&ws->tid[t], NULL, helper_main, a);
            if (rc)
                free(a);
        }
        if (rc) {
            gemm_ws_free(ws);
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "cannot start a matrix-product thread: %s",
                            strerror(rc));
        }
        ws->started = t;
    }
    *out = ws;
    return ADJ_OK;
}

void gemm_ws_free(gemm_ws *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&ws->mu);
    ws->stop = 1;
    pthread_cond_broadcast(&ws->wake);
    pthread_mutex_unlock(&ws->mu);
    for (int t = 1; t <= ws->started; t++)
        pthread_join(ws->tid[t], NULL);
    pthread_mutex_destroy(&ws->mu);
    pthread_cond_destroy(&ws->wake);
    pthread_cond_destroy(&ws->done);
    for (int t = 0; t < MAX_THREADS; t++) {
        free(ws->pack[t]);
        free(ws->apack[t]);
        free(ws->local[t]);
    }
    free(ws);
}

int gemm_ws_threads(const gemm_ws *ws) { return ws->threads; }
void gemm_ws_limit_isa(gemm_ws *ws, gemm_isa max)
{
    const gemm_isa best = gemm_isa_best();
    ws->isa = max < best ? max : best;
}
size_t gemm_ws_bytes(const gemm_ws *ws) { return ws->bytes; }

/* ------------------------------------------------------------- micro-kernels */

/* Every kernel: C[mr][nr] (row stride ldc) = (load ? C : 0) + sum over the kc
 * steps of a(i,k) * b(k,j), one fma per step in increasing k. a and b are
 * packed panels: a(i,k) = a[k*MR + i] (pack_a), b(k,j) = b[k*NR + j] (pack_b;
 * columns past nr are zero). */
typedef void kernel_fn(int mr, int nr, int kc, const float *a, const float *b, float *c,
                       ptrdiff_t ldc, int load);

static void kern_portable(int mr, int nr, int kc, const float *a, const float *b, float *c,
                          ptrdiff_t ldc, int load)
{
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float s = load ? c[i * ldc + j] : 0.0f;
            for (int k = 0; k < kc; k++)
                s = fmaf(a[(size_t)k * MR + i], b[(size_t)k * NR + j], s);
            c[i * ldc + j] = s;
        }
}

#ifdef GEMM_X86
/* An edge tile of nr < w columns (w: the kernel's full width, at most
 * 2 * NR; mr at most 2 * MR) through a full-width copy, since masked stores
 * are slow on AMD processors: the padding columns compute zeros nobody reads. */
static void kern_edge(kernel_fn *kern, int w, int mr, int nr, int kc, const float *a,
                      const float *b, float *c, ptrdiff_t ldc, int load)
{
    float tmp[2 * MR * 2 * NR] __attribute__((aligned(64)));
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < w; j++)
            tmp[i * w + j] = load && j < nr ? c[i * ldc + j] : 0.0f;
    kern(mr, w, kc, a, b, tmp, w, load);
    for (int i = 0; i < mr; i++)
        memcpy(c + i * ldc, tmp + i * w, (size_t)nr * sizeof(float));
}

#define TGT __attribute__((target("avx2,fma")))

/* One accumulator pair per row, named (arrays would live on the stack). */
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

static inline __attribute__((always_inline)) TGT void
kern_avx2_mr(const int mr, int kc, const float *a, const float *b, float *c, ptrdiff_t ldc,
             int load)
{
#define DECL(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
    ROWS(DECL)
#define LOAD(i)                                                                                    \
    if (mr > i && load) {                                                                          \
        c##i##0 = _mm256_loadu_ps(c + i * ldc);                                                    \
        c##i##1 = _mm256_loadu_ps(c + i * ldc + 8);                                                \
    }
    ROWS(LOAD)
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        b += NR;
#define STEP(i)                                                                                    \
        if (mr > i) {                                                                              \
            const __m256 av = _mm256_broadcast_ss(a + i);                                          \
            c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0);                                            \
            c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1);                                            \
        }
        ROWS(STEP)
        a += MR;
    }
#define STORE(i)                                                                                   \
    if (mr > i) {                                                                                  \
        _mm256_storeu_ps(c + i * ldc, c##i##0);                                                    \
        _mm256_storeu_ps(c + i * ldc + 8, c##i##1);                                                \
    }
    ROWS(STORE)
#undef DECL
#undef LOAD
#undef STEP
#undef STORE
}

static TGT void kern_avx2(int mr, int nr, int kc, const float *a, const float *b, float *c,
                          ptrdiff_t ldc, int load)
{
    if (nr < NR) {
        kern_edge(kern_avx2, NR, mr, nr, kc, a, b, c, ldc, load);
        return;
    }
    switch (mr) {
    case 6: kern_avx2_mr(6, kc, a, b, c, ldc, load); break;
    case 5: kern_avx2_mr(5, kc, a, b, c, ldc, load); break;
    case 4: kern_avx2_mr(4, kc, a, b, c, ldc, load); break;
    case 3: kern_avx2_mr(3, kc, a, b, c, ldc, load); break;
    case 2: kern_avx2_mr(2, kc, a, b, c, ldc, load); break;
    default: kern_avx2_mr(1, kc, a, b, c, ldc, load); break;
    }
}

#define TGT512 __attribute__((target("avx512f,avx2,fma")))

/* Rows 0..11 of an AVX-512 tile: rows 6..11 come from the next panel of A. */
#define ROWS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* The tile of up to 12 rows (two adjacent panels of A: a, and a + kc*MR) by
 * 32 columns (two adjacent panels of B: b, and b + kc*NR; pack_a and pack_b
 * lay panels one after the other), one zmm accumulator per row and panel of
 * B: the same fma chains as kern_avx2, four tiles at once. */
static inline __attribute__((always_inline)) TGT512 void
kern_avx512_mr(const int mr, int kc, const float *a, const float *b, float *c, ptrdiff_t ldc,
               int load)
{
    const float *b2 = b + (size_t)kc * NR, *a2 = mr > MR ? a + (size_t)kc * MR : a;
#define DECL(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();
    ROWS12(DECL)
#define LOAD(i)                                                                                    \
    if (mr > i && load) {                                                                          \
        c##i##0 = _mm512_loadu_ps(c + i * ldc);                                                    \
        c##i##1 = _mm512_loadu_ps(c + i * ldc + NR);                                               \
    }
    ROWS12(LOAD)
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b2);
        b += NR;
        b2 += NR;
#define STEP(i)                                                                                    \
        if (mr > i) {                                                                              \
            const __m512 av = _mm512_set1_ps(i < MR ? a[i] : a2[i - MR]);                         \
            c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);                                            \
            c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);                                            \
        }
        ROWS12(STEP)
        a += MR;
        a2 += MR;
    }
#define STORE(i)                                                                                   \
    if (mr > i) {                                                                                  \
        _mm512_storeu_ps(c + i * ldc, c##i##0);                                                    \
        _mm512_storeu_ps(c + i * ldc + NR, c##i##1);                                               \
    }
    ROWS12(STORE)
#undef DECL
#undef LOAD
#undef STEP
#undef STORE
}

/* Tiles of up to 2*MR rows and 2*NR columns; one of at most NR columns (the
 * last panel of B: there is no second) goes to kern_avx2, a panel of A at a time. */
static TGT512 void kern_avx512(int mr, int nr, int kc, const float *a, const float *b, float *c,
                               ptrdiff_t ldc, int load)
{
    if (nr <= NR) {
        kern_avx2(mr < MR ? mr : MR, nr, kc, a, b, c, ldc, load);
        if (mr > MR)
            kern_avx2(mr - MR, nr, kc, a + (size_t)kc * MR, b, c + MR * ldc, ldc, load);
        return;
    }
    if (nr < 2 * NR) {
        kern_edge(kern_avx512, 2 * NR, mr, nr, kc, a, b, c, ldc, load);
        return;
    }
    switch (mr) {
#define CASE(i) case i + 1: kern_avx512_mr(i + 1, kc, a, b, c, ldc, load); break;
    ROWS12(CASE)
#undef CASE
    default: break;
    }
}
#endif

/* The kernels by instruction set (gemm_isa's order): a tile is up to mt x nt
 * (whole panels of A and B: MR and NR or multiples). */
static const struct {
    const char *name;
    kernel_fn *fn;
    int mt, nt;
} KERNELS[] = {
    [GEMM_ISA_PORTABLE] = {"portable", kern_portable, MR, NR},
#ifdef GEMM_X86
    [GEMM_ISA_AVX2] = {"avx2-fma 6x16", kern_avx2, MR, NR},
    [GEMM_ISA_AVX512] = {"avx512 12x32", kern_avx512, 2 * MR, 2 * NR},
#endif
};
/* the largest tile of any kernel */
#define MT_MAX (2 * MR)
#define NT_MAX (2 * NR)

gemm_isa gemm_isa_best(void)
{
#ifdef GEMM_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return GEMM_ISA_PORTABLE;
    return __builtin_cpu_supports("avx512f") ? GEMM_ISA_AVX512 : GEMM_ISA_AVX2;
#else
    return GEMM_ISA_PORTABLE;
#endif
}

const char *gemm_kernel_name(const gemm_ws *ws)
{
    return KERNELS[ws ? ws->isa : gemm_isa_best()].name;
}

/* ----------------------------------------------------------------- blocking */

#ifdef GEMM_X86
/* r[q][j] = old r[j][q]: an 8x8 transposition in registers. */
static inline __attribute__((always_inline)) TGT void transpose8(__m256 r[8])
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* d[k][16] = B[j*cs + k] for 16 rows j of contiguous values: a transposition,
 * 8x8 blocks in registers (the fully connected layers' weights, packed as the
 * columns of W^T). */
static TGT void pack_t16_avx2(int kc, const float *B, ptrdiff_t cs, float *d)
{
    int k = 0;
    for (; k + 8 <= kc; k += 8)
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
            for (int j = 0; j < 8; j++)
                r[j] = _mm256_loadu_ps(B + (h * 8 + j) * cs + k);
            transpose8(r);
            float *o = d + (size_t)k * NR + h * 8;
            for (int q = 0; q < 8; q++)
                _mm256_store_ps(o + q * NR, r[q]);
        }
    for (; k < kc; k++)
        for (int j = 0; j < NR; j++)
            d[(size_t)k * NR + j] = B[j * cs + k];
}
#endif

#ifdef GEMM_X86
/* pack_b of rows of B (cs = 1): each whole panel's 16 floats of a row in two
 * vector moves (a memcpy call per panel and row took as long as the kernel
 * on products of 64 rows). */
static TGT void pack_rows_avx2(int kc, int nc, const float *B, ptrdiff_t rs, float *dst)
{
    const int full = nc / NR * NR;
    for (int k = 0; k < kc; k++) {
        const float *s = B + k * rs;
        float *d = dst + (size_t)k * NR;
        for (int j0 = 0; j0 < full; j0 += NR, d += (size_t)kc * NR) {
            _mm256_store_ps(d, _mm256_loadu_ps(s + j0));
            _mm256_store_ps(d + 8, _mm256_loadu_ps(s + j0 + 8));
        }
        if (full < nc) {
            memcpy(d, s + full, (size_t)(nc - full) * sizeof(float));
            memset(d + nc - full, 0, (size_t)(NR - (nc - full)) * sizeof(float));
        }
    }
}
#endif

/* Packs the kc x nc block b(k,j) = B[k*rs + j*cs] into panels [nc/NR][kc][NR],
 * zero past the last column. */
static void pack_b(gemm_isa isa, int kc, int nc, const float *B, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    if (cs == 1) { /* row by row, so that each row of B is read in one run */
#ifdef GEMM_X86
        if (isa) {
            pack_rows_avx2(kc, nc, B, rs, dst);
            return;
        }
#endif
        for (int k = 0; k < kc; k++)
            for (int j0 = 0; j0 < nc; j0 += NR) {
                const int nr = nc - j0 < NR ? nc - j0 : NR;
                float *d = dst + (size_t)(j0 / NR) * kc * NR + (size_t)k * NR;
                memcpy(d, B + k * rs + j0, (size_t)nr * sizeof(float));
                if (nr < NR)
                    memset(d + nr, 0, (size_t)(NR - nr) * sizeof(float));
            }
        return;
    }
    for (int j0 = 0; j0 < nc; j0 += NR) {
        const int nr = nc - j0 < NR ? nc - j0 : NR;
        float *d = dst + (size_t)(j0 / NR) * kc * NR;
        {
#ifdef GEMM_X86
            if (nr == NR && rs == 1 && isa) {
                pack_t16_avx2(kc, B + j0 * cs, cs, d);
                continue;
            }
#endif
            for (int j = 0; j < nr; j++) {
                const float *s = B + (j0 + j) * cs;
                for (int k = 0; k < kc; k++)
                    d[(size_t)k * NR + j] = s[k * rs];
            }
            for (int j = nr; j < NR; j++)
                for (int k = 0; k < kc; k++)
                    d[(size_t)k * NR + j] = 0.0f;
        }
    }
}

#ifdef GEMM_X86
/* d[k][MR] = s[i*rs + k] for the MR rows i of contiguous values (A as stored):
 * 8 k at a time transposed in registers (two zero rows make it 8x8). */
_Static_assert(MR == 6, "pack_a_rows_avx2 transposes 6 rows");
static TGT void pack_a_rows_avx2(int kc, const float *s, ptrdiff_t rs, float *d)
{
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 r[8];
        for (int i = 0; i < MR; i++)
            r[i] = _mm256_loadu_ps(s + i * rs + k);
        r[6] = r[7] = _mm256_setzero_ps();
        transpose8(r); /* r[q] = a(0..5, k+q), 0, 0 */
        float *o = d + (size_t)k * MR;
        for (int q = 0; q < 7; q++) /* 8 floats each: the next store overwrites the 2 zeros */
            _mm256_storeu_ps(o + q * MR, r[q]);
        _mm_storeu_ps(o + 7 * MR, _mm256_castps256_ps128(r[7]));
        _mm_storel_pi((__m64 *)(o + 7 * MR + 4), _mm256_extractf128_ps(r[7], 1));
    }
    for (; k < kc; k++)
        for (int i = 0; i < MR; i++)
            d[(size_t)k * MR + i] = s[i * rs + k];
}
#endif

/* Packs the mc x kc block a(i,k) = A[i*ars + k*acs] into panels
 * [mc/MR][kc][MR] (the kernels' a), zero past the last row: each k step of a
 * kernel then reads its MR values of A in one run. */
static void pack_a(gemm_isa isa, int mc, int kc, const float *A, ptrdiff_t ars, ptrdiff_t acs,
                   float *dst)
{
    for (int ir = 0; ir < mc; ir += MR) {
        const int mr = mc - ir < MR ? mc - ir : MR;
        const float *s = A + ir * ars;
        float *d = dst + (size_t)(ir / MR) * kc * MR;
#ifdef GEMM_X86
        if (mr == MR && acs == 1 && isa) {
            pack_a_rows_avx2(kc, s, ars, d);
            continue;
        }
#endif
        if (mr == MR && ars == 1) { /* columns of A: MR values of one k in a run */
            for (int k = 0; k < kc; k++)
                memcpy(d + (size_t)k * MR, s + k * acs, MR * sizeof(float));
            continue;
        }
        for (int k = 0; k < kc; k++)
            for (int i = 0; i < MR; i++)
                d[(size_t)k * MR + i] = i < mr ? s[i * ars + k * acs] : 0.0f;
    }
}

typedef struct {
    ptrdiff_t ars, acs; /* a(i,k) = A[i*ars + k*acs] */
    ptrdiff_t brs, bcs; /* b(k,j) = B[k*brs + j*bcs] */
} strides;

/* C[i][0..n) = fma(a(i,k), B[k][0..n), C) for every k in order: the same
 * chains as the kernels, with the accumulators in C (in cache) and B's rows
 * read once, in long runs. Four rows of B a pass, their 2W columns at j held
 * in registers while every row i of C takes its four fmas there (still in
 * increasing k): C's block is loaded and stored once for four fmas, and B
 * is loaded once for all M rows. One body, two widths (W floats a vector). */
#define ROWS_KERNEL(name, attr, vec, W, loadu, storeu, set1, fmadd)                              \
    static attr void name(int M, int n, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs,   \
                          const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc)               \
    {                                                                                           \
        int k = 0;                                                                              \
        for (; k + 4 <= K; k += 4) {                                                            \
            const float *b0 = B + k * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;      \
            int j = 0;                                                                          \
            for (; j + 2 * W <= n; j += 2 * W) {                                                \
                const vec p0 = loadu(b0 + j), q0 = loadu(b0 + j + W);                           \
                const vec p1 = loadu(b1 + j), q1 = loadu(b1 + j + W);                           \
                const vec p2 = loadu(b2 + j), q2 = loadu(b2 + j + W);                           \
                const vec p3 = loadu(b3 + j), q3 = loadu(b3 + j + W);                           \
                for (int i = 0; i < M; i++) {                                                   \
                    const float *a = A + i * ars + k * acs;                                     \
                    const vec a0 = set1(a[0]), a1 = set1(a[acs]);                               \
                    const vec a2 = set1(a[2 * acs]), a3 = set1(a[3 * acs]);                     \
                    float *c = C + i * ldc + j;                                                 \
                    vec c0 = loadu(c), c1 = loadu(c + W);                                       \
                    c0 = fmadd(a0, p0, c0), c1 = fmadd(a0, q0, c1);                             \
                    c0 = fmadd(a1, p1, c0), c1 = fmadd(a1, q1, c1);                             \
                    c0 = fmadd(a2, p2, c0), c1 = fmadd(a2, q2, c1);                             \
                    c0 = fmadd(a3, p3, c0), c1 = fmadd(a3, q3, c1);                             \
                    storeu(c, c0);                                                              \
                    storeu(c + W, c1);                                                          \
                }                                                                               \
            }                                                                                   \
            for (int i = 0; i < M; i++) {                                                       \
                const float *a = A + i * ars + k * acs;                                         \
                const float s0 = a[0], s1 = a[acs], s2 = a[2 * acs], s3 = a[3 * acs];           \
                float *c = C + i * ldc;                                                         \
                for (int jj = j; jj < n; jj++)                                                  \
                    c[jj] = fmaf(s3, b3[jj], fmaf(s2, b2[jj], fmaf(s1, b1[jj],                  \
                                                                fmaf(s0, b0[jj], c[jj]))));     \
            }                                                                                   \
        }                                                                                       \
        for (; k < K; k++) {                                                                    \
            const float *b = B + k * ldb;                                                       \
            for (int i = 0; i < M; i++) {                                                       \
                const float a = A[i * ars + k * acs];                                           \
                float *c = C + i * ldc;                                                         \
                for (int j = 0; j < n; j++)                                                     \
                    c[j] = fmaf(a, b[j], c[j]);                                                 \
            }                                                                                   \
        }                                                                                       \
    }

#ifdef GEMM_X86
ROWS_KERNEL(rows_avx2, TGT, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps,
            _mm256_fmadd_ps)
ROWS_KERNEL(rows_avx512, TGT512, __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps,
            _mm512_fmadd_ps)
#endif

#ifdef GEMM_X86
/* C[i][j..j+8) for i < M <= ROWS_MAX_M, b(k,j) = B[j*ldb + k] (rows of B
 * contiguous in k, as a fully connected layer's weights): 8 rows of B read
 * in one run each, transposed 8x8 in registers, one fma per k into each
 * accumulator, in increasing k: the kernels' chains. B is read once for all
 * M rows (a batch of images through a layer whose weights do not fit the
 * caches: its speed is the memory's). */
static TGT void rowsT_avx2(int M, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs,
                           const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int load)
{
    __m256 acc[ROWS_MAX_M];
    for (int i = 0; i < M; i++) {
        if (load) {
            float t[8];
            memcpy(t, C + i * ldc, sizeof t);
            acc[i] = _mm256_loadu_ps(t);
        } else
            acc[i] = _mm256_setzero_ps();
    }
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 r[8];
        for (int j = 0; j < 8; j++)
            r[j] = _mm256_loadu_ps(B + j * ldb + k);
        transpose8(r); /* r[q] = b(k+q, j..j+8) */
        for (int i = 0; i < M; i++) {
            const float *a = A + i * ars + k * acs;
            for (int q = 0; q < 8; q++)
                acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + q * acs), r[q], acc[i]);
        }
    }
    for (; k < K; k++) {
        float col[8];
        for (int j = 0; j < 8; j++)
            col[j] = B[j * ldb + k];
        const __m256 v = _mm256_loadu_ps(col);
        for (int i = 0; i < M; i++)
            acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(A + i * ars + k * acs), v, acc[i]);
    }
    for (int i = 0; i < M; i++) {
        float t[8];
        _mm256_storeu_ps(t, acc[i]);
        memcpy(C + i * ldc, t, sizeof t);
    }
}
#endif

#ifdef GEMM_X86
/* rowsT_avx512's depth chunk: its [RT_KX][16] copy of A^T and [n][16] sums share `pack` */
#define RT_KX 2048
#define RT_COLS (((size_t)KC * NC - (size_t)RT_KX * 16) / 16)

/* The sums of columns j .. j+nr-1 (nr <= 8) over the kx steps of a chunk:
 * the lanes of s[r] are C(0..15, j+r), each step one fma of b(k, j+r) (a
 * row of B, contiguous in k) broadcast by the column of A^T at k. */
static inline __attribute__((always_inline)) TGT512 void
rowsT_block(int nr, int kx, const float *at, const float *b, ptrdiff_t ldb, float *s)
{
    __m512 acc[8];
    for (int r = 0; r < nr; r++)
        acc[r] = _mm512_load_ps(s + r * 16);
    for (int k = 0; k < kx; k++) {
        const __m512 x = _mm512_load_ps(at + (size_t)k * 16);
        for (int r = 0; r < nr; r++)
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(b[r * ldb + k]), x, acc[r]);
    }
    for (int r = 0; r < nr; r++)
        _mm512_store_ps(s + r * 16, acc[r]);
}

/* C[M][N] (M <= 16) = A x B with b(k,j) = B[j*ldb + k] (a fully connected
 * layer's weights as stored): the 16 rows of C in the lanes of a vector, so
 * that each weight is read once, with one fma, for the whole batch (the
 * 8x8 transpositions of rowsT_avx2 cost more than its fmas on 16 rows).
 * Each C(i,j) is the one chain of fmas in increasing k (the lanes past M
 * sum zeros nobody reads). `pack` (KC*NC floats) holds the sums [n][16] of
 * a block of columns and A^T's chunk [RT_KX][16]. */
static TGT512 void rowsT_avx512(int M, int N, int K, const float *A, ptrdiff_t ars,
                                ptrdiff_t acs, const float *B, ptrdiff_t ldb, float *C,
                                ptrdiff_t ldc, int load, float *pack)
{
    float *at = pack, *sum = pack + (size_t)RT_KX * 16;
    for (int j0 = 0; j0 < N; j0 += (int)RT_COLS) {
        const int n = N - j0 < (int)RT_COLS ? N - j0 : (int)RT_COLS;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < 16; i++)
                sum[(size_t)j * 16 + i] = load && i < M ? C[i * ldc + j0 + j] : 0.0f;
        for (int k0 = 0; k0 < K; k0 += RT_KX) {
            const int kx = K - k0 < RT_KX ? K - k0 : RT_KX;
            for (int k = 0; k < kx; k++)
                for (int i = 0; i < 16; i++)
                    at[(size_t)k * 16 + i] = i < M ? A[i * ars + (k0 + k) * acs] : 0.0f;
            const float *b = B + (ptrdiff_t)j0 * ldb + k0;
            int j = 0;
            for (; j + 8 <= n; j += 8)
                rowsT_block(8, kx, at, b + j * ldb, ldb, sum + (size_t)j * 16);
            if (j < n)
                rowsT_block(n - j, kx, at, b + j * ldb, ldb, sum + (size_t)j * 16);
        }
        for (int i = 0; i < M; i++)
            for (int j = 0; j < n; j++)
                C[i * ldc + j0 + j] = sum[(size_t)j * 16 + i];
    }
}
#endif

static void gemm_rows(gemm_isa isa, float *pack, int M, int N, int K, const float *A,
                      const strides *st, const float *B, int accumulate, float *C, int ldc)
{
    if (!accumulate)
        for (int i = 0; i < M; i++)
            memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float));
    /* columns a pass: M of C's rows and four of B's in ROWS_BYTES */
    int chunk = (int)(ROWS_BYTES / sizeof(float) / (size_t)(M + 4)) / 32 * 32;
    chunk = chunk < 32 ? 32 : chunk;
    for (int j0 = 0; j0 < N; j0 += chunk) {
        const int n = N - j0 < chunk ? N - j0 : chunk;
#ifdef GEMM_X86
        if (isa) {
            /* C's rows copied to `pack` (KC*NC floats, more than ROWS_BYTES),
             * ROWS_LD_PAD floats past a multiple of 32 apart: rows of C a
             * multiple of 4 kB apart (a layer of 36864 outputs) would all fall
             * in one set of the L1 cache and evict each other at every step */
            const int copy = K >= ROWS_COPY_MIN_K;
            const ptrdiff_t ld = copy ? (n + 31) / 32 * 32 + ROWS_LD_PAD : ldc;
            float *c = copy ? pack : C + j0;
            for (int i = 0; copy && i < M; i++)
                memcpy(c + i * ld, C + (size_t)i * ldc + j0, (size_t)n * sizeof(float));
            (isa >= GEMM_ISA_AVX512 ? rows_avx512 : rows_avx2)(M, n, K, A, st->ars, st->acs,
                                                                B + j0, st->brs, c, ld);
            for (int i = 0; copy && i < M; i++)
                memcpy(C + (size_t)i * ldc + j0, c + i * ld, (size_t)n * sizeof(float));
            continue;
        }
#endif
        for (int k = 0; k < K; k++)
            for (int i = 0; i < M; i++) {
                const float a = A[i * st->ars + k * st->acs], *b = B + k * st->brs + j0;
                float *c = C + (size_t)i * ldc + j0;
                for (int j = 0; j < n; j++)
                    c[j] = fmaf(a, b[j], c[j]);
            }
    }
}

/* The kernel on a tile of C whose element (i,j) is c[i*rsc + j*csc]: in
 * place when rows are contiguous (csc = 1), else through a copy (C^T's
 * tiles, gemm_serial's swapped products). */
static void kern_tile(kernel_fn *kern, int mr, int nr, int kc, const float *a, const float *b,
                      float *c, ptrdiff_t rsc, ptrdiff_t csc, int load)
{
    if (csc == 1) {
        kern(mr, nr, kc, a, b, c, rsc, load);
        return;
    }
    const int w = nr <= NR ? NR : NT_MAX; /* full panels: a wide tile spans two */
    float tmp[MT_MAX * NT_MAX] __attribute__((aligned(64)));
    if (load)
        for (int j = 0; j < nr; j++)
            for (int i = 0; i < mr; i++)
                tmp[i * w + j] = c[i * rsc + j * csc];
    kern(mr, w, kc, a, b, tmp, w, load);
    for (int j = 0; j < nr; j++)
        for (int i = 0; i < mr; i++)
            c[i * rsc + j * csc] = tmp[i * w + j];
}

/* One kc-deep block of the product, rows [0, M) x columns [0, nc), element
 * (i,j) of C at C[i*rsc + j*csc]: A's rows packed MC at a time into apack;
 * rows of B (bcs = 1) packed into `pack` by the caller, columns of B packed
 * here, each panel just before its first use. Each panel of B serves the MC
 * rows' tiles while it is in L1; a shallow block of B (it stays in L2) is
 * swept instead by each panel of A in turn, so that C's rows are written in
 * runs (few k steps per tile, as K = 16, are otherwise bound by writing C in
 * MC streams at once). */
static void gemm_block(gemm_isa isa, float *pack, float *apack, const strides *st,
                       int M, int nc, int kc, const float *A, const float *B, int load, float *C,
                       ptrdiff_t rsc, ptrdiff_t csc)
{
    kernel_fn *kern = KERNELS[isa].fn;
    const int mt = KERNELS[isa].mt, nt = KERNELS[isa].nt;
    const int sweep = st->bcs == 1 && kc <= SWEEP_MAX_KC;
    for (int ic = 0; ic < M; ic += MC) {
        const int mc = M - ic < MC ? M - ic : MC;
        pack_a(isa, mc, kc, A + ic * st->ars, st->ars, st->acs, apack);
        const int outer = sweep ? mc : nc, inner = sweep ? nc : mc;
        for (int o = 0; o < outer; o += sweep ? mt : nt)
            for (int n = 0; n < inner; n += sweep ? nt : mt) {
                const int ir = sweep ? o : n, jr = sweep ? n : o;
                const int mr = mc - ir < mt ? mc - ir : mt, nr = nc - jr < nt ? nc - jr : nt;
                float *bp = pack + (size_t)(jr / NR) * kc * NR;
                if (ic == 0 && ir == 0 && st->bcs != 1)
                    pack_b(isa, kc, nr, B + jr * st->bcs, st->brs, st->bcs, bp);
                kern_tile(kern, mr, nr, kc, apack + (size_t)(ir / MR) * kc * MR, bp,
                          C + (ic + ir) * rsc + jr * csc, rsc, csc, load);
            }
    }
}

/* Whether the blocked product computes C^T = op(B)^T op(A)^T instead (the
 * same bits: fma(a, b, c) = fma(b, a, c)): for few columns and many rows,
 * where C's tiles of NR columns would be mostly padding. */
static int swap_pays(int M, int N)
{
    return N <= SWAP_MAX_N && M > N && M > MR;
}

/* The whole product on one thread, with its packing buffers. */
static void gemm_serial(gemm_isa isa, float *pack, float *apack, const strides *st, int M, int N,
                        int K, const float *A, const float *B, int accumulate, float *C, int ldc)
{
    if (K == 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++)
                memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    if (M <= ROWS_MAX_M && st->bcs == 1) {
        gemm_rows(isa, pack, M, N, K, A, st, B, accumulate, C, ldc);
        return;
    }
#ifdef GEMM_X86
    /* a batch through a fully connected layer: up to MR rows the
     * transposing kernel reads B as fast (its lanes are all rows' then) */
    if (M > MR && M <= ROWS_MAX_M && st->brs == 1 && isa >= GEMM_ISA_AVX512) {
        rowsT_avx512(M, N, K, A, st->ars, st->acs, B, st->bcs, C, ldc, accumulate, pack);
        return;
    }
    if (M <= ROWS_MAX_M && st->brs == 1 && isa && N % 8 == 0) {
        for (int j = 0; j < N; j += 8)
            rowsT_avx2(M, K, A, st->ars, st->acs, B + j * st->bcs, st->bcs, C + j, ldc, accumulate);
        return;
    }
#endif
    ptrdiff_t rsc = ldc, csc = 1; /* C's element (i,j) at C[i*rsc + j*csc] */
    strides sw;
    if (swap_pays(M, N)) { /* C^T = op(B)^T op(A)^T: rows and columns trade places */
        sw = (strides){.ars = st->bcs, .acs = st->brs, .brs = st->acs, .bcs = st->ars};
        const float *t = A;
        A = B, B = t, st = &sw, rsc = 1, csc = ldc;
        const int n = N;
        N = M, M = n;
    }
    const int KCb = M <= MR ? KC_THIN : KC, NCb = M <= MR ? NC_THIN : NC;
    for (int jc = 0; jc < N; jc += NCb) {
        const int nc = N - jc < NCb ? N - jc : NCb;
        for (int pc = 0; pc < K; pc += KCb) {
            const int kc = K - pc < KCb ? K - pc : KCb;
            const float *Bb = B + pc * st->brs + jc * st->bcs;
            if (st->bcs == 1) /* rows of B: packed all at once, each row read in one run */
                pack_b(isa, kc, nc, Bb, st->brs, 1, pack);
            gemm_block(isa, pack, apack, st, M, nc, kc, A + pc * st->acs, Bb,
                       accumulate || pc > 0, C + jc * csc, rsc, csc);
        }
    }
}

/* Slowest thread's share relative to a perfect split of `tiles` over t. */
static double imbalance(int tiles, int t) { return (double)((tiles + t - 1) / t) * t / tiles; }

/* A product split into parts of whole tiles, by columns or by rows; or, with
 * fn, any parts (gemm_parallel). */
struct gemm_job {
    int parts;
    void (*fn)(void *arg, int part);
    void (*fn_local)(void *arg, int part, gemm_local *t);
    void *arg;
    int by_cols, tiles;
    gemm_isa isa;
    strides st;
    int M, N, K, accumulate, ldc;
    const float *A, *B;
    float *C;
};

static int job_parts(const gemm_job *j) { return j->parts; }

struct gemm_local {
    gemm_isa isa;
    float *pack, *apack, *scratch;
};

/* Part `part` of the job on thread `thread` (0: the caller), with its buffers. */
static void run_part(const gemm_job *j, int part, gemm_ws *ws, int thread)
{
    float *pack = ws->pack[thread], *apack = ws->apack[thread];
    if (j->fn_local) {
        gemm_local t = {j->isa, pack, apack, ws->local[thread]};
        j->fn_local(j->arg, part, &t);
        return;
    }
    if (j->fn) {
        j->fn(j->arg, part);
        return;
    }
    const int lo = (int)((long)j->tiles * part / j->parts);
    const int hi = (int)((long)j->tiles * (part + 1) / j->parts);
    if (j->by_cols) {
        const int nt = KERNELS[j->isa].nt;
        const int j0 = lo * nt, j1 = hi * nt < j->N ? hi * nt : j->N;
        if (j1 > j0)
            gemm_serial(j->isa, pack, apack, &j->st, j->M, j1 - j0, j->K, j->A,
                        j->B + j0 * j->st.bcs, j->accumulate, j->C + j0, j->ldc);
    } else {
        const int mt = KERNELS[j->isa].mt;
        const int i0 = lo * mt, i1 = hi * mt < j->M ? hi * mt : j->M;
        if (i1 > i0)
            gemm_serial(j->isa, pack, apack, &j->st, i1 - i0, j->N, j->K,
                        j->A + i0 * j->st.ars, j->B, j->accumulate, j->C + (size_t)i0 * j->ldc,
                        j->ldc);
    }
}

/* Element (i,k) of op(A) at A[i*ars + k*acs], (k,j) of op(B) at B[k*brs + j*bcs]. */
static strides op_strides(gemm_op ta, gemm_op tb, int lda, int ldb)
{
    return (strides){.ars = ta == GEMM_N ? lda : 1,
                     .acs = ta == GEMM_N ? 1 : lda,
                     .brs = tb == GEMM_N ? ldb : 1,
                     .bcs = tb == GEMM_N ? 1 : ldb};
}

void gemm_f32(gemm_ws *ws, gemm_op ta, gemm_op tb, int M, int N, int K, const float *A, int lda,
              const float *B, int ldb, int accumulate, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    gemm_job j = {.st = op_strides(ta, tb, lda, ldb),
                  .isa = ws->isa,
                  .M = M, .N = N, .K = K, .accumulate = accumulate, .ldc = ldc,
                  .A = A, .B = B, .C = C};
    const int mt = KERNELS[j.isa].mt, nt = KERNELS[j.isa].nt;
    const int tm = (M + mt - 1) / mt, tn = (N + nt - 1) / nt;
    int T = ws->threads;
    if ((double)M * N * K < PARALLEL_MIN)
        T = 1;
    if (T > (tm > tn ? tm : tn))
        T = tm > tn ? tm : tn;
    if (T <= 1) {
        gemm_serial(j.isa, ws->pack[0], ws->apack[0], &j.st, M, N, K, A, B, accumulate, C, ldc);
        return;
    }
    /* Split the larger dimension (each part repeats the packing of the
     * other operand: all of A by columns, all of B by rows) unless the
     * smaller balances clearly better; into T, 2T, 3T or 4T parts (equal
     * shares: a part left over would leave one thread working alone), each
     * of at least PART_TILES tiles where there are enough. */
    const double by_c = imbalance(tn, T), by_r = imbalance(tm, T);
    j.by_cols = N >= M ? by_c <= by_r * 1.05 : by_c * 1.05 < by_r;
    j.tiles = j.by_cols ? tn : tm;
    int per = j.tiles / (PART_TILES * T);
    per = per < 1 ? 1 : per > 4 ? 4 : per;
    j.parts = per * T < j.tiles ? per * T : j.tiles;
    run_job(ws, &j, j.parts);
}

/* Runs a job of j->parts parts (not a product): on the caller alone when
 * there is one thread or one part, else on all. */
static void run_parts(gemm_ws *ws, const gemm_job *j)
{
    if (j->parts <= 0)
        return;
    if (ws->threads <= 1 || j->parts == 1) {
        for (int i = 0; i < j->parts; i++)
            run_part(j, i, ws, 0);
        return;
    }
    run_job(ws, j, j->parts);
}

void gemm_parallel(gemm_ws *ws, int parts, void (*fn)(void *arg, int part), void *arg)
{
    const gemm_job j = {.parts = parts, .fn = fn, .arg = arg};
    run_parts(ws, &j);
}

void gemm_parallel_local(gemm_ws *ws, int parts, void (*fn)(void *arg, int part, gemm_local *t),
                         void *arg)
{
    const gemm_job j = {.parts = parts, .fn_local = fn, .arg = arg, .isa = ws->isa};
    run_parts(ws, &j);
}

void gemm_f32_local(gemm_local *t, gemm_op ta, gemm_op tb, int M, int N, int K, const float *A,
                    int lda, const float *B, int ldb, int accumulate, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    const strides st = op_strides(ta, tb, lda, ldb);
    gemm_serial(t->isa, t->pack, t->apack, &st, M, N, K, A, B, accumulate, C, ldc);
}

int gemm_ws_reserve_local(gemm_ws *ws, size_t floats, char *err, size_t errsz)
{
    if (floats <= ws->local_floats)
        return ADJ_OK;
    for (int t = 0; t < ws->threads; t++) {
        void *p = NULL;
        if (posix_memalign(&p, 64, floats * sizeof(float)))
            return adj_fail(err, errsz, ADJ_ERR_NOMEM,
                            "out of memory for %zu floats of thread scratch", floats);
        free(ws->local[t]); /* this thread's grows; the others keep local_floats at least */
        ws->local[t] = p;
        ws->bytes += (floats - ws->local_floats) * sizeof(float);
    }
    ws->local_floats = floats;
    return ADJ_OK;
}

float *gemm_local_scratch(gemm_local *t) { return t->scratch; }
