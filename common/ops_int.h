/*
 * ops_int.h - what the operator files (ops.c, ops_conv.c) share; internal to
 * them, not part of the engine's interface (ops.h).
 *
 * The attribute and tensor-check helpers every parse and infer uses (static
 * inline: each file gets its own copy, nothing is exported), the second
 * table's row type (op_hooks: derived state and weight gradients), and the
 * rows ops_conv.c contributes to the operator table: op_find and the op_*
 * hook functions in ops.c search ops.c's rows and then these.
 */
#ifndef ADJ_OPS_INT_H
#define ADJ_OPS_INT_H

#include "ops.h"

#include <string.h>

#define UNSUP ADJ_ERR_UNSUPPORTED

/* ---- attribute helpers ------------------------------------------------ */

static inline const op_attr *attr_find(const op_attr *a, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(a[i].name, name))
            return &a[i];
    return NULL;
}

static inline int attr_int(const op_attr *a, int n, const char *name, int64_t def, int64_t *v,
                           char *err, size_t errsz)
{
    const op_attr *x = attr_find(a, n, name);
    *v = def;
    if (!x)
        return 0;
    if (x->type != OP_ATTR_INT)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute '%s' must be an int", name);
    *v = x->i;
    return 0;
}

static inline int attr_float(const op_attr *a, int n, const char *name, float def, float *v,
                             char *err, size_t errsz)
{
    const op_attr *x = attr_find(a, n, name);
    *v = def;
    if (!x)
        return 0;
    if (x->type != OP_ATTR_FLOAT)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute '%s' must be a float", name);
    *v = x->f;
    return 0;
}

/* Copies up to max ints; *cnt gets their number (-1 when absent). */
static inline int attr_ints(const op_attr *a, int n, const char *name, int max, int64_t *v, int *cnt,
                            char *err, size_t errsz)
{
    const op_attr *x = attr_find(a, n, name);
    *cnt = -1;
    if (!x)
        return 0;
    if (x->type != OP_ATTR_INTS)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute '%s' must be a list of ints", name);
    if (x->n > (size_t)max)
        return adj_fail(err, errsz, UNSUP, "attribute '%s' has %zu values, at most %d supported",
                        name, x->n, max);
    if (x->n) /* an empty list may have no array */
        memcpy(v, x->ints, x->n * sizeof *v);
    *cnt = (int)x->n;
    return 0;
}

static inline int attr_str(const op_attr *a, int n, const char *name, const char **v, char *err,
                           size_t errsz)
{
    const op_attr *x = attr_find(a, n, name);
    *v = NULL;
    if (!x)
        return 0;
    if (x->type != OP_ATTR_STRING)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute '%s' must be a string", name);
    *v = x->s;
    return 0;
}

/* ---- tensor checks ---------------------------------------------------- */

static inline int check_float(const op_tensor *t, const char *what, char *err, size_t errsz)
{
    if (t->dtype != OP_FLOAT)
        return adj_fail(err, errsz, UNSUP, "input '%s' must be float, not %s", what,
                        op_dtype_name(t->dtype));
    return 0;
}

static inline void set_out(op_tensor *o, op_dtype t, int batched, const op_shape *s)
{
    o->dtype = t;
    o->batched = batched;
    o->shape = *s;
}

/* ---- the second table ------------------------------------------------- */

/* The operators with derived state (ops.h, op_prepare). */
typedef struct {
    const char *op;
    int (*prepare)(void *params, const op_tensor *in, int n_in, char *err, size_t errsz);
    void (*release)(void *params);
    /* weight gradients: the kernel, the inputs it gives them for, the forward
     * values it reads, its scratch */
    void (*backward_params)(const void *params, const op_tensor *in, int n_in,
                            const op_tensor *out, int n_out, const float *dy, float *const *dw,
                            float *scratch, gemm_ws *gemm);
    int params_inputs, params_reads;
    size_t (*params_scratch)(const void *params, const op_tensor *in, int n_in,
                             const op_tensor *out);
    /* the op_epilogue inside the params (ops.h, op_epilogue_of); NULL: none */
    op_epilogue *(*epilogue)(void *params);
    /* after prepare: the constant inputs (OPB_IN bits) no kernel reads any more
     * (ops.h, op_prepared_unread); NULL: none */
    int (*unread)(const void *params);
} op_hooks;

/**
 * Whether the processor runs the kernels' AVX2 builds (the epilogues',
 * depthwise and pooling loops: compiled twice, the same bits either way).
 */
int op_have_avx2(void);

/* ---- fused epilogues -------------------------------------------------- */

/**
 * y[i] = act(x[i] + *b + r[i]) for i < n: op_epilogue_run with a source x
 * (y itself, or a product elsewhere) and a bias *b first (b NULL: none, x[i]
 * as it is; r NULL: no residual; e NULL: no activation), in one pass.
 */
void op_epilogue_bias_run(const op_epilogue *e, const float *x, const float *b, const float *r,
                          float *y, size_t n);

/* ---- the rows of ops_conv.c ------------------------------------------- */

/** Conv, MaxPool, AveragePool, GlobalAveragePool (static); *n gets their number. */
const op_def *opc_rows(int *n);

/** Their op_hooks rows (Conv's); *n gets their number. */
const op_hooks *opc_hooks(int *n);

#endif
