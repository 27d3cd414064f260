/*
 * blas_runtime.h - OpenBLAS's fast kernels for advjpg-bench's reference
 * figures (cblas_sgemm beside the engine's own products), without the user
 * setting anything. The engine itself does not use BLAS.
 *
 * Debian's OpenBLAS 0.3.21 does not recognise recent processors and falls back
 * to its slowest x86-64 kernels; it reads OPENBLAS_CORETYPE only when the
 * library loads, before main() runs. Programs therefore call
 * adj_runtime_init(argv) first thing in main(): when OPENBLAS_CORETYPE is not
 * set it chooses the kernel family from the CPU's features (SkylakeX with
 * AVX-512, Haswell with AVX2), sets it, caps OpenBLAS's threads at the number
 * of online cores, and re-executes the program once (/proc/self/exe) so the
 * library loads with it. A user's own OPENBLAS_CORETYPE is left alone.
 */
#ifndef ADJ_RUNTIME_H
#define ADJ_RUNTIME_H

/**
 * Call at the top of main(). Returns only if no re-exec was needed or it
 * failed (then the program goes on with whatever kernels it has).
 */
void adj_runtime_init(char **argv);

/** The kernel family OpenBLAS is using ("SkylakeX", "Prescott", ...). */
const char *adj_blas_corename(void);

/** Number of threads OpenBLAS uses. */
int adj_blas_threads(void);

#endif
