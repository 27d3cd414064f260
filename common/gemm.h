/*
 * gemm.h - single-precision matrix products whose every element is computed
 * the same way whatever the shapes, the tiling, the threads or the processor.
 *
 *     gemm_ws *ws;
 *     gemm_ws_new(0, &ws, err, sizeof err);          // 0: one thread per core
 *     // C[M][N] = A[M][K] x B[K][N], all row-major
 *     gemm_f32(ws, GEMM_N, GEMM_N, M, N, K, A, K, B, N, 0, C, N);
 *     gemm_ws_free(ws);
 *
 * The contract (what makes results batch-invariant): every element is
 *
 *     C[i][j] = fma(a(i,K-1), b(K-1,j), ... fma(a(i,1), b(1,j), fma(a(i,0), b(0,j), c0)))
 *
 * with c0 = C[i][j] when accumulating and +0 otherwise: one fused
 * multiply-add per k, in increasing k, rounded to float at every step. So an
 * element depends only on its row of A and its column of B: not on M or N,
 * not on where it falls in a tile or which thread computes it, and not on the
 * instruction set (the AVX-512, AVX2 and portable kernels give the same bits).
 * A batch of images laid side by side in N (or stacked in M) gives each image
 * exactly the numbers it gets alone. OpenBLAS's sgemm does not promise this:
 * its edge kernels, small-matrix paths and thread splits change the rounding
 * of an element with the matrix's shape, which is why the engine uses this.
 *
 * Speed: an AVX-512 6x32 micro-kernel (AVX2+FMA 6x16 where there is no AVX-512)
 * on packed panels of A and B; products
 * of many rows and few columns are computed as C^T = B^T A^T (the same bits:
 * fma(a, b, c) = fma(b, a, c)); products of a few rows stream B's rows. A workspace owns threads - 1
 * helper threads that, with the caller, claim parts of a product (whole tiles
 * of rows or columns) as they come free. Without AVX2 a portable kernel
 * computes the same numbers, slowly.
 */
#ifndef ADJ_GEMM_H
#define ADJ_GEMM_H

#include <stddef.h>

/**
 * Products of at most this many rows read B in place, without packing it: its
 * rows streamed (B as stored) or, transposed, read once for all the rows (a
 * batch through a fully connected layer). A caller that could compute C^T
 * instead keeps such products as they are.
 */
#define GEMM_FEW_ROWS 16

/** Whether an operand is used as stored (N) or transposed (T). */
typedef enum { GEMM_N = 0, GEMM_T = 1 } gemm_op;

/** Scratch space (packed panels) and the thread count of a caller's products. */
typedef struct gemm_ws gemm_ws;

/**
 * New scratch space for products on up to `threads` threads (0 or less: one
 * per online core, at most 64): starts threads - 1 helper threads, which
 * sleep between products. *out is new: free with gemm_ws_free(), which stops
 * them. A workspace is used by one caller thread at a time.
 * Returns ADJ_OK or ADJ_ERR_NOMEM.
 */
int gemm_ws_new(int threads, gemm_ws **out, char *err, size_t errsz);

/** Frees the workspace (NULL is fine). */
void gemm_ws_free(gemm_ws *ws);

/** Threads the workspace's products use. */
int gemm_ws_threads(const gemm_ws *ws);

/** Bytes the workspace holds. */
size_t gemm_ws_bytes(const gemm_ws *ws);

/**
 * C[M][N] = op(A)[M][K] x op(B)[K][N], or C += that when `accumulate`, all
 * row-major with leading dimensions lda, ldb, ldc (op(A)(i,k) is A[i*lda+k]
 * for GEMM_N and A[k*lda+i] for GEMM_T; likewise B). Each element as the
 * header's contract says. M, N or K of 0 is fine (K = 0 writes zeros unless
 * accumulating). A and B are borrowed and not modified; C must not overlap them.
 */
void gemm_f32(gemm_ws *ws, gemm_op ta, gemm_op tb, int M, int N, int K, const float *A, int lda,
              const float *B, int ldb, int accumulate, float *C, int ldc);

/**
 * Runs fn(arg, i) for i = 0 .. parts-1 on the workspace's threads (the caller
 * and its helpers claim parts as they come free) and returns when all are
 * done: for the engine's loops that are not products (depthwise convolutions,
 * pooling). The parts must be independent (what one writes no other reads or
 * writes), so that the result does not depend on which thread runs which;
 * fn must not use ws itself.
 */
void gemm_parallel(gemm_ws *ws, int parts, void (*fn)(void *arg, int part), void *arg);

/**
 * One thread's share of a workspace inside gemm_parallel_local: its packing
 * buffers and kernel choice, borrowed from the workspace for the call's
 * duration (valid only inside the fn it is passed to; never freed by fn).
 */
typedef struct gemm_local gemm_local;

/**
 * Runs fn(arg, i, t) for i = 0 .. parts-1 on the workspace's threads, as
 * gemm_parallel does, with t the running thread's own gemm_local: fn may
 * compute whole products on that thread alone with gemm_f32_local(t, ...)
 * (for many independent products, as the images of a batch: no split, no
 * synchronisation inside a product). The parts must be independent; fn must
 * not call gemm_f32, gemm_parallel or gemm_parallel_local on ws.
 */
void gemm_parallel_local(gemm_ws *ws, int parts, void (*fn)(void *arg, int part, gemm_local *t),
                         void *arg);

/**
 * gemm_f32 on the calling thread alone, with t's packing buffers (t from
 * gemm_parallel_local's fn). Every element has the same bits gemm_f32 gives
 * it (the header's contract), whatever thread runs it.
 */
void gemm_f32_local(gemm_local *t, gemm_op ta, gemm_op tb, int M, int N, int K, const float *A,
                    int lda, const float *B, int ldb, int accumulate, float *C, int ldc);

/**
 * Makes each thread's gemm_local scratch (gemm_local_scratch) at least
 * `floats` floats: owned by the workspace, kept for later calls and freed
 * with it (gemm_ws_bytes counts it). Call it outside gemm_parallel_local.
 * Returns ADJ_OK or ADJ_ERR_NOMEM (then the reservation before the call
 * still holds).
 */
int gemm_ws_reserve_local(gemm_ws *ws, size_t floats, char *err, size_t errsz);

/** The running thread's own scratch in gemm_parallel_local's fn: the floats
 * reserved (NULL before any), 64-byte aligned, borrowed for the call. */
float *gemm_local_scratch(gemm_local *t);

/** The kernels' instruction sets, each a superset of the one before. */
typedef enum { GEMM_ISA_PORTABLE = 0, GEMM_ISA_AVX2 = 1, GEMM_ISA_AVX512 = 2 } gemm_isa;

/** The best the processor runs (AVX-512 needs AVX512F, AVX2 needs FMA too). */
gemm_isa gemm_isa_best(void);

/**
 * Makes the workspace's products use at most `max` (the processor's best
 * if that is less): every kernel gives the same bits, at its own speed, so
 * tests prove it and benchmarks compare them.
 */
void gemm_ws_limit_isa(gemm_ws *ws, gemm_isa max);

/** Name of the kernels the workspace uses ("avx512 6x32", "avx2-fma 6x16" or
 * "portable"); NULL: a new one's. */
const char *gemm_kernel_name(const gemm_ws *ws);

#endif
