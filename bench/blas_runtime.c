#include "blas_runtime.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Provided by OpenBLAS (not declared in every cblas.h). */
extern char *openblas_get_corename(void);
extern int openblas_get_num_threads(void);

static const char *pick_coretype(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}

void adj_runtime_init(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("ADVJPG_NO_REEXEC"))
        return;
    const char *core = pick_coretype();
    if (!core)
        return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    if (!getenv("OPENBLAS_NUM_THREADS") && !getenv("OMP_NUM_THREADS")) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        char buf[24];
        snprintf(buf, sizeof buf, "%ld", n > 0 ? n : 1);
        setenv("OPENBLAS_NUM_THREADS", buf, 1);
    }
    /* Guard against a loop should the exec come back here. */
    setenv("ADVJPG_NO_REEXEC", "1", 1);
    /* exec the program's own path, so that its process name stays its own */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return;
    self[n] = '\0';
    execv(self, argv);
    /* exec failed: carry on with the kernels we have. */
}

const char *adj_blas_corename(void)
{
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
}

int adj_blas_threads(void)
{
    return openblas_get_num_threads();
}
