/*
 * ops.c - operator kernels and the operator table (see ops.h).
 *
 * Layout of this file: helpers (shapes, broadcasting; the attribute helpers
 * are ops_int.h's), then one section per operator family (params struct,
 * parse, infer, scratch, forward), then the table. The window operators
 * (Conv, MaxPool, AveragePool, GlobalAveragePool) are ops_conv.c's: op_find
 * searches this file's rows, then its. ONNX's pads order is [x1_begin,
 * x2_begin, ..., x1_end, x2_end]; here pads are kept per side as pb[] (begin)
 * and pe[] (end).
 */
#include "ops_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest dimension and |pad| in shape computations. */
#define DIM_MAX ((int64_t)1 << 40)

size_t op_dtype_size(op_dtype t)
{
    switch (t) {
    case OP_FLOAT: return 4;
    case OP_INT64: return 8;
    default: return 0;
    }
}

const char *op_dtype_name(op_dtype t)
{
    switch (t) {
    case OP_FLOAT: return "float";
    case OP_INT64: return "int64";
    default: return "none";
    }
}

size_t op_numel(const op_shape *s)
{
    size_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->d[i] == OP_DIM_BATCH ? 1 : (size_t)s->d[i];
    return n;
}

char *op_shape_str(const op_shape *s, char *buf, size_t size)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, o < size ? size - o : 0, "[");
    for (int i = 0; i < s->rank; i++) {
        if (s->d[i] == OP_DIM_BATCH)
            o += (size_t)snprintf(buf + o, o < size ? size - o : 0, "%sN", i ? "," : "");
        else
            o += (size_t)snprintf(buf + o, o < size ? size - o : 0, "%s%lld", i ? "," : "",
                                  (long long)s->d[i]);
    }
    snprintf(buf + o, o < size ? size - o : 0, "]");
    return buf;
}

int op_attr_accepted(const op_def *d, const char *name)
{
    size_t n = strlen(name);
    const char *p = d->attrs;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !memcmp(p, name, n))
            return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* ---- shape helpers ---------------------------------------------------- */

/* Advances the row-major multi-index idx over dims[0..last] (an odometer:
 * the last digit fastest); past the end it wraps to all zeros. */
static void idx_next(int64_t *idx, const int64_t *dims, int last)
{
    for (int k = last; k >= 0; k--) {
        if (++idx[k] < dims[k])
            return;
        idx[k] = 0;
    }
}

static void strides_of(const op_shape *s, int64_t *st)
{
    int64_t acc = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= s->d[i];
    }
}

static int norm_axis(int64_t axis, int rank, int64_t *out, const char *what, char *err,
                     size_t errsz)
{
    *out = 0;
    if (axis < -rank || axis >= rank)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s %lld out of range for rank %d", what,
                        (long long)axis, rank);
    *out = axis < 0 ? axis + rank : axis;
    return 0;
}

static const int64_t *const_ints(const op_tensor *t)
{
    return t->dtype == OP_INT64 ? (const int64_t *)t->data : NULL;
}

/* Reads a constant int64 1-D input (n values, at most max) into v. */
static int input_ints(const op_tensor *t, const char *what, int max, int64_t *v, int *n, char *err,
                      size_t errsz)
{
    *n = 0;
    if (t->dtype != OP_INT64)
        return adj_fail(err, errsz, UNSUP, "input '%s' must be int64, not %s", what,
                        op_dtype_name(t->dtype));
    if (!t->data)
        return adj_fail(err, errsz, UNSUP, "input '%s' must be a constant (computed at load time)",
                        what);
    if (t->shape.rank > 1)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input '%s' must be 1-D", what);
    size_t k = op_numel(&t->shape);
    if (k > (size_t)max)
        return adj_fail(err, errsz, UNSUP, "input '%s' has %zu values, at most %d supported", what,
                        k, max);
    memcpy(v, t->data, k * sizeof *v);
    *n = (int)k;
    return 0;
}

/* ---- BatchNormalization (inference) ----------------------------------- */

typedef struct {
    float eps;
} bn_params;

float op_bn_epsilon(const void *pp) { return ((const bn_params *)pp)->eps; }

static int bn_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    bn_params *p = pp;
    int64_t tm;
    float mom;
    int rc = attr_float(a, n, "epsilon", 1e-5f, &p->eps, err, errsz);
    if (rc || (rc = attr_float(a, n, "momentum", 0.9f, &mom, err, errsz)) ||
        (rc = attr_int(a, n, "training_mode", 0, &tm, err, errsz)))
        return rc;
    if (tm)
        return adj_fail(err, errsz, UNSUP, "attribute 'training_mode' = 1 (inference only)");
    return 0;
}

static int bn_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                    char *err, size_t errsz)
{
    static const char *names[] = {"X", "scale", "B", "input_mean", "input_var"};
    char b1[64];
    for (int i = 0; i < 5; i++) {
        int rc = check_float(&in[i], names[i], err, errsz);
        if (rc)
            return rc;
    }
    if (in[0].shape.rank < 2)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input 'X' must have rank >= 2");
    for (int i = 1; i < 5; i++)
        if (in[i].batched || in[i].shape.rank != 1 || in[i].shape.d[0] != in[0].shape.d[1])
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input '%s' %s must have %lld values",
                            names[i], op_shape_str(&in[i].shape, b1, sizeof b1),
                            (long long)in[0].shape.d[1]);
    for (int i = 1; i < n_out; i++)
        if (out[i].dtype != OP_NONE)
            return adj_fail(err, errsz, UNSUP, "output %d (running statistics: training mode)", i);
    set_out(&out[0], OP_FLOAT, in[0].batched, &in[0].shape);
    return 0;
}

static void bn_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                       float *scratch, gemm_ws *gemm)
{
    const bn_params *p = pp;
    const float *x = in[0].data, *sc = in[1].data, *bb = in[2].data, *mean = in[3].data,
                *var = in[4].data;
    float *y = out[0].data;
    const op_shape *s = &in[0].shape;
    const int64_t N = s->d[0], C = s->d[1];
    const size_t inner = op_numel(s) / (size_t)(N * C);
    for (int64_t b = 0; b < N; b++)
        for (int64_t c = 0; c < C; c++) {
            const float a = sc[c] / sqrtf(var[c] + p->eps), sh = bb[c] - mean[c] * a;
            const float *xp = x + ((size_t)(b * C + c)) * inner;
            float *yp = y + ((size_t)(b * C + c)) * inner;
            for (size_t i = 0; i < inner; i++)
                yp[i] = xp[i] * a + sh;
        }
}

void op_fold_bn(const float *W, const float *bias, int M, size_t K, const float *scale,
                const float *beta, const float *mean, const float *var, float eps, float *w_out,
                float *b_out)
{
    for (int m = 0; m < M; m++) {
        const float a = scale[m] / sqrtf(var[m] + eps);
        for (size_t k = 0; k < K; k++)
            w_out[(size_t)m * K + k] = W[(size_t)m * K + k] * a;
        b_out[m] = ((bias ? bias[m] : 0.0f) - mean[m]) * a + beta[m];
    }
}

/* ---- unary elementwise ------------------------------------------------ */

enum { U_RELU, U_SIGMOID, U_HARDSIGMOID, U_HARDSWISH, U_ERF, U_SQRT, U_CLIP, U_IDENTITY,
       U_TANH, U_EXP, U_NEG, U_ABS };

typedef struct {
    int kind;
    float alpha, beta;
    float lo, hi; /* Clip, resolved by infer */
} unary_params;

static int unary_set(void *pp, int kind)
{
    ((unary_params *)pp)->kind = kind;
    return 0;
}

static int relu_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_RELU); }
static int sigmoid_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_SIGMOID); }
static int erf_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_ERF); }
static int sqrt_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_SQRT); }
static int identity_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_IDENTITY); }
static int hardswish_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_HARDSWISH); }
static int tanh_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_TANH); }
static int exp_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_EXP); }
static int neg_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_NEG); }
static int abs_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_ABS); }
static int clip_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { return unary_set(p, U_CLIP); }

static int hardsigmoid_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    unary_params *p = pp;
    p->kind = U_HARDSIGMOID;
    int rc = attr_float(a, n, "alpha", 0.2f, &p->alpha, err, errsz);
    return rc ? rc : attr_float(a, n, "beta", 0.5f, &p->beta, err, errsz);
}

static int dropout_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    int64_t seed;
    unary_set(pp, U_IDENTITY);
    return attr_int(a, n, "seed", 0, &seed, err, errsz);
}

static int unary_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                       char *err, size_t errsz)
{
    unary_params *p = pp;
    int rc;
    if (p->kind != U_IDENTITY || in[0].dtype != OP_INT64)
        if ((rc = check_float(&in[0], "X", err, errsz)))
            return rc;
    if (p->kind == U_CLIP) {
        p->lo = -INFINITY, p->hi = INFINITY;
        for (int i = 1; i < n_in && i < 3; i++) {
            if (in[i].dtype == OP_NONE)
                continue;
            const char *name = i == 1 ? "min" : "max";
            if ((rc = check_float(&in[i], name, err, errsz)))
                return rc;
            if (!in[i].data)
                return adj_fail(err, errsz, UNSUP, "input '%s' must be a constant", name);
            if (op_numel(&in[i].shape) != 1 || in[i].batched)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input '%s' must be a scalar", name);
            *(i == 1 ? &p->lo : &p->hi) = *(const float *)in[i].data;
        }
    }
    if (n_in > 1 && p->kind == U_IDENTITY) { /* Dropout: ratio, training_mode */
        if (n_in > 2 && in[2].dtype != OP_NONE) {
            if (!in[2].data)
                return adj_fail(err, errsz, UNSUP, "input 'training_mode' must be a constant");
            if (op_dtype_size(in[2].dtype) == 0 || op_numel(&in[2].shape) != 1)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input 'training_mode' must be a scalar");
            if (in[2].dtype == OP_INT64 ? *(const int64_t *)in[2].data != 0
                                        : *(const float *)in[2].data != 0.0f)
                return adj_fail(err, errsz, UNSUP, "input 'training_mode' true (inference only)");
        }
    }
    if (n_out > 1 && out[1].dtype != OP_NONE)
        return adj_fail(err, errsz, UNSUP, "output 'mask'");
    set_out(&out[0], in[0].dtype, in[0].batched, &in[0].shape);
    return 0;
}

/* n values of a float unary operator: y = f(x) (a part of unary_forward's). */
static void unary_fwd_run(const unary_params *p, const float *x, float *y, size_t n)
{
    switch (p->kind) {
    case U_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case U_SIGMOID:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] >= 0.0f ? 1.0f / (1.0f + expf(-x[i])) : expf(x[i]) / (1.0f + expf(x[i]));
        break;
    case U_HARDSIGMOID:
        for (size_t i = 0; i < n; i++) {
            float v = p->alpha * x[i] + p->beta;
            y[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
        break;
    case U_HARDSWISH:
        for (size_t i = 0; i < n; i++) {
            float v = x[i] / 6.0f + 0.5f;
            y[i] = x[i] * (v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v);
        }
        break;
    case U_ERF:
        for (size_t i = 0; i < n; i++)
            y[i] = erff(x[i]);
        break;
    case U_SQRT:
        for (size_t i = 0; i < n; i++)
            y[i] = sqrtf(x[i]);
        break;
    case U_CLIP:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] < p->lo ? p->lo : x[i] > p->hi ? p->hi : x[i];
        break;
    case U_TANH:
        for (size_t i = 0; i < n; i++)
            y[i] = tanhf(x[i]);
        break;
    case U_EXP:
        for (size_t i = 0; i < n; i++)
            y[i] = expf(x[i]);
        break;
    case U_NEG:
        for (size_t i = 0; i < n; i++)
            y[i] = -x[i];
        break;
    case U_ABS:
        for (size_t i = 0; i < n; i++)
            y[i] = fabsf(x[i]);
        break;
    }
}

/* unary_forward's and unary_backward's parts: UN_PART values each (elementwise: the
 * same bits however the parts fall). */
typedef struct {
    const unary_params *p;
    const float *x, *y, *dy;
    float *out;
    size_t n;
} unary_job;

#define UN_PART ((size_t)1 << 15)

static void unary_fwd_part(void *arg, int part)
{
    const unary_job *j = arg;
    const size_t lo = (size_t)part * UN_PART, hi = lo + UN_PART < j->n ? lo + UN_PART : j->n;
    unary_fwd_run(j->p, j->x + lo, j->out + lo, hi - lo);
}

static void unary_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                          int n_out, float *scratch, gemm_ws *gemm)
{
    const unary_params *p = pp;
    const size_t n = op_numel(&in[0].shape);
    if (p->kind == U_IDENTITY) {
        memcpy(out[0].data, in[0].data, n * op_dtype_size(in[0].dtype));
        return;
    }
    unary_job j = {.p = p, .x = in[0].data, .out = out[0].data, .n = n};
    gemm_parallel(gemm, (int)((n + UN_PART - 1) / UN_PART), unary_fwd_part, &j);
}

/* ---- binary elementwise with broadcasting ----------------------------- */

enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW };

typedef struct {
    int kind;
} binary_params;

static int add_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { ((binary_params *)p)->kind = B_ADD; return 0; }
static int sub_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { ((binary_params *)p)->kind = B_SUB; return 0; }
static int mul_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { ((binary_params *)p)->kind = B_MUL; return 0; }
static int div_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { ((binary_params *)p)->kind = B_DIV; return 0; }
static int pow_parse(void *p, const op_attr *a, int n, int o, char *e, size_t z) { ((binary_params *)p)->kind = B_POW; return 0; }

/*
 * Multidirectional broadcasting of a and b into out; a batched input must
 * have the output's rank (its batch stays dimension 0) and the other's
 * dimension 0 then must be 1 or absent.
 */
static int broadcast_shape(const op_tensor *a, const op_tensor *b, op_shape *out, int *batched,
                           char *err, size_t errsz)
{
    char b1[64], b2[64];
    const int R = a->shape.rank > b->shape.rank ? a->shape.rank : b->shape.rank;
    out->rank = R;
    for (int i = 0; i < R; i++) {
        int ia = i - (R - a->shape.rank), ib = i - (R - b->shape.rank);
        int64_t da = ia >= 0 ? a->shape.d[ia] : 1, db = ib >= 0 ? b->shape.d[ib] : 1;
        int bat_a = a->batched && ia == 0, bat_b = b->batched && ib == 0;
        if ((a->batched && ia == 0 && i != 0) || (b->batched && ib == 0 && i != 0))
            return adj_fail(err, errsz, UNSUP, "broadcasting %s with %s moves the batch dimension",
                            op_shape_str(&a->shape, b1, sizeof b1), op_shape_str(&b->shape, b2, sizeof b2));
        if (bat_a || bat_b) {
            if ((bat_a && !bat_b && db != 1) || (bat_b && !bat_a && da != 1))
                return adj_fail(err, errsz, UNSUP, "broadcasting %s with %s across the batch",
                                op_shape_str(&a->shape, b1, sizeof b1), op_shape_str(&b->shape, b2, sizeof b2));
            out->d[i] = OP_DIM_BATCH;
            continue;
        }
        if (da != db && da != 1 && db != 1)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "shapes %s and %s do not broadcast",
                            op_shape_str(&a->shape, b1, sizeof b1), op_shape_str(&b->shape, b2, sizeof b2));
        out->d[i] = da == 1 ? db : da;
    }
    *batched = a->batched || b->batched;
    return 0;
}

static int has_batch_value(const op_tensor *t)
{
    const int64_t *v = const_ints(t);
    if (!v)
        return 0;
    size_t n = op_numel(&t->shape);
    for (size_t i = 0; i < n; i++)
        if (v[i] == OP_BATCH_VALUE)
            return 1;
    return 0;
}

static int binary_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                        char *err, size_t errsz)
{
    binary_params *p = pp;
    if (in[0].dtype != in[1].dtype)
        return adj_fail(err, errsz, UNSUP, "inputs of types %s and %s", op_dtype_name(in[0].dtype),
                        op_dtype_name(in[1].dtype));
    if (in[0].dtype != OP_FLOAT && in[0].dtype != OP_INT64)
        return adj_fail(err, errsz, UNSUP, "inputs of type %s", op_dtype_name(in[0].dtype));
    if (in[0].dtype == OP_INT64 && p->kind == B_POW)
        return adj_fail(err, errsz, UNSUP, "integer Pow");
    if (has_batch_value(&in[0]) || has_batch_value(&in[1]))
        return adj_fail(err, errsz, UNSUP, "arithmetic on the batch size (a dynamic batch)");
    op_shape s;
    int batched, rc = broadcast_shape(&in[0], &in[1], &s, &batched, err, errsz);
    if (rc)
        return rc;
    set_out(&out[0], in[0].dtype, batched, &s);
    return 0;
}

/* Element strides of t broadcast to the output shape (0 on broadcast axes). */
static void bcast_strides(const op_tensor *t, const op_shape *o, int64_t *st)
{
    int64_t own[OP_MAX_RANK];
    strides_of(&t->shape, own);
    for (int i = 0; i < o->rank; i++) {
        int j = i - (o->rank - t->shape.rank);
        st[i] = (j < 0 || t->shape.d[j] == 1) ? 0 : own[j];
    }
}

static float fbin(int kind, float a, float b)
{
    switch (kind) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    default: return powf(a, b);
    }
}

static int64_t ibin(int kind, int64_t a, int64_t b)
{
    switch (kind) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    default: return b ? a / b : 0; /* ONNX integer Div truncates; by zero is undefined */
    }
}

/* binary_forward's parts: whole rows of the output's last dimension (elementwise: the same
 * bits however the parts fall). */
typedef struct {
    int kind;
    const op_tensor *in;
    op_tensor *out;
    int64_t sa[OP_MAX_RANK], sb[OP_MAX_RANK];
    size_t inner, rows, per; /* values per row, rows, rows per part */
} bin_job;

/* Rows r0 .. r1-1 of the output. */
static void binary_rows(const bin_job *j, size_t r0, size_t r1)
{
    const int kind = j->kind;
    const op_tensor *in = j->in;
    op_tensor *out = j->out;
    const op_shape *o = &out[0].shape;
    const size_t n = op_numel(o), e0 = r0 * j->inner, m = (r1 - r0) * j->inner;
    const int R = o->rank;
    const int64_t *sa = j->sa, *sb = j->sb;
    int64_t idx[OP_MAX_RANK] = {0};
    const int isf = out[0].dtype == OP_FLOAT;
    if (isf && op_numel(&in[0].shape) == n && op_numel(&in[1].shape) == n) {
        const float *a = (const float *)in[0].data + e0, *b = (const float *)in[1].data + e0;
        float *y = (float *)out[0].data + e0;
        switch (kind) {
        case B_ADD: for (size_t i = 0; i < m; i++) y[i] = a[i] + b[i]; break;
        case B_MUL: for (size_t i = 0; i < m; i++) y[i] = a[i] * b[i]; break;
        default: for (size_t i = 0; i < m; i++) y[i] = fbin(kind, a[i], b[i]); break;
        }
        return;
    }
    if (isf && op_numel(&in[1].shape) == 1 && op_numel(&in[0].shape) == n) { /* x op scalar */
        const float *a = (const float *)in[0].data + e0, b = *(const float *)in[1].data;
        float *y = (float *)out[0].data + e0;
        switch (kind) {
        case B_ADD: for (size_t i = 0; i < m; i++) y[i] = a[i] + b; break;
        case B_SUB: for (size_t i = 0; i < m; i++) y[i] = a[i] - b; break;
        case B_MUL: for (size_t i = 0; i < m; i++) y[i] = a[i] * b; break;
        case B_DIV: for (size_t i = 0; i < m; i++) y[i] = a[i] / b; break;
        default:
            if (b == 2.0f)
                for (size_t i = 0; i < m; i++) y[i] = a[i] * a[i];
            else
                for (size_t i = 0; i < m; i++) y[i] = powf(a[i], b);
        }
        return;
    }
    size_t q = r0; /* row r0's index */
    for (int k = R - 2; k >= 0; k--) {
        idx[k] = (int64_t)(q % (size_t)o->d[k]);
        q /= (size_t)o->d[k];
    }
    const int64_t inner = R ? o->d[R - 1] : 1, ia = R ? sa[R - 1] : 0, ib = R ? sb[R - 1] : 0;
    for (size_t done = e0; done < e0 + m; done += (size_t)inner) {
        int64_t oa = 0, ob = 0;
        for (int k = 0; k < R - 1; k++)
            oa += idx[k] * sa[k], ob += idx[k] * sb[k];
        if (isf) {
            const float *a = (const float *)in[0].data + oa, *b = (const float *)in[1].data + ob;
            float *y = (float *)out[0].data + done;
            if (ia == 1 && ib == 1 && kind == B_ADD)
                for (int64_t i = 0; i < inner; i++)
                    y[i] = a[i] + b[i];
            else if (ia == 1 && ib == 1 && kind == B_MUL)
                for (int64_t i = 0; i < inner; i++)
                    y[i] = a[i] * b[i];
            else if (ia == 1 && ib == 0 && kind == B_ADD)
                for (int64_t i = 0; i < inner; i++)
                    y[i] = a[i] + b[0];
            else if (ia == 1 && ib == 0 && kind == B_MUL)
                for (int64_t i = 0; i < inner; i++)
                    y[i] = a[i] * b[0];
            else
                for (int64_t i = 0; i < inner; i++)
                    y[i] = fbin(kind, a[i * ia], b[i * ib]);
        } else {
            const int64_t *a = (const int64_t *)in[0].data + oa, *b = (const int64_t *)in[1].data + ob;
            int64_t *y = (int64_t *)out[0].data + done;
            for (int64_t i = 0; i < inner; i++)
                y[i] = ibin(kind, a[i * ia], b[i * ib]);
        }
        idx_next(idx, o->d, R - 2);
    }
}

static void bin_part(void *arg, int part)
{
    const bin_job *j = arg;
    const size_t r0 = (size_t)part * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
    binary_rows(j, r0, r1);
}

static void binary_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                           int n_out, float *scratch, gemm_ws *gemm)
{
    const op_shape *o = &out[0].shape;
    bin_job j = {.kind = ((const binary_params *)pp)->kind, .in = in, .out = out};
    bcast_strides(&in[0], o, j.sa);
    bcast_strides(&in[1], o, j.sb);
    j.inner = o->rank ? (size_t)o->d[o->rank - 1] : 1;
    j.rows = j.inner ? op_numel(o) / j.inner : 0;
    j.per = j.inner >= UN_PART ? 1 : UN_PART / j.inner;
    if (j.rows)
        gemm_parallel(gemm, (int)((j.rows + j.per - 1) / j.per), bin_part, &j);
}

/* ---- Gemm, MatMul ----------------------------------------------------- */

typedef struct {
    float alpha, beta;
    int ta, tb;
    int64_t M, K, N;
    /* MatMul: broadcast batch of matrices */
    int mm, a_vec, b_vec; /* MatMul; A or B was 1-D */
    int flat_a;           /* MatMul: B is a [K,N] matrix and A has rank >= 3: all of an image's rows at once */
    op_shape bshape;      /* MatMul: broadcast batch dims of the output */
    op_epilogue epi;      /* Gemm: a Relu or Clip fused after it (graph.h) */
} gemm_params;

static int gemm_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    gemm_params *p = pp;
    int64_t ta, tb;
    int rc = attr_float(a, n, "alpha", 1.0f, &p->alpha, err, errsz);
    if (rc || (rc = attr_float(a, n, "beta", 1.0f, &p->beta, err, errsz)) ||
        (rc = attr_int(a, n, "transA", 0, &ta, err, errsz)) ||
        (rc = attr_int(a, n, "transB", 0, &tb, err, errsz)))
        return rc;
    p->ta = ta != 0, p->tb = tb != 0;
    return 0;
}

static int gemm_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                      char *err, size_t errsz)
{
    gemm_params *p = pp;
    char b1[64], b2[64];
    int rc;
    if ((rc = check_float(&in[0], "A", err, errsz)) || (rc = check_float(&in[1], "B", err, errsz)))
        return rc;
    const op_shape *A = &in[0].shape, *B = &in[1].shape;
    if (A->rank != 2 || B->rank != 2)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "inputs A %s and B %s must be 2-D",
                        op_shape_str(A, b1, sizeof b1), op_shape_str(B, b2, sizeof b2));
    if (in[1].batched || (in[0].batched && p->ta))
        return adj_fail(err, errsz, UNSUP, "a product across the batch (batched B or transA)");
    p->M = p->ta ? A->d[1] : A->d[0];
    p->K = p->ta ? A->d[0] : A->d[1];
    p->N = p->tb ? B->d[0] : B->d[1];
    if ((p->tb ? B->d[1] : B->d[0]) != p->K)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "inputs A %s and B %s do not agree",
                        op_shape_str(A, b1, sizeof b1), op_shape_str(B, b2, sizeof b2));
    if (p->M > INT32_MAX || p->K > INT32_MAX || p->N > INT32_MAX)
        return adj_fail(err, errsz, ADJ_ERR_LIMIT, "a product over 2^31 rows or columns");
    op_shape s = {2, {p->M, p->N}};
    if (n_in > 2 && in[2].dtype != OP_NONE) {
        op_tensor o = {OP_FLOAT, in[0].batched, s, NULL};
        op_shape bs;
        int bat;
        if ((rc = check_float(&in[2], "C", err, errsz)) ||
            (rc = broadcast_shape(&o, &in[2], &bs, &bat, err, errsz)))
            return rc;
        if (bs.rank != 2 || (bs.d[1] != p->N) || (!in[0].batched && bs.d[0] != p->M))
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input C %s does not broadcast to [M,N]",
                            op_shape_str(&in[2].shape, b1, sizeof b1));
    }
    set_out(&out[0], OP_FLOAT, in[0].batched, &s);
    return 0;
}


/*
 * Whether Gemm computes its product transposed, Y^T [N][M] = op(B)^T op(A)^T
 * (dA^T [K][M] = op(B) dY^T backward), from the shapes: op(A) not transposed
 * and of more rows than gemm's few-row paths take (they stream B as stored),
 * and B the larger operand (wide = its other side: N forward, K backward). Then
 * gemm_f32 reads the weights in place as its A and packs the activations,
 * instead of packing every column of the weights (fc6 of OverFeat: 453 MB)
 * for a few rows. The same bits either way: an element is the same chain of
 * FMAs in increasing k (fma(a,b,c) is fma(b,a,c); gemm.h), so batch
 * invariance holds whichever product a batch size gets.
 */
static int gemm_swapped(const gemm_params *p, int64_t M, int64_t wide)
{
    return !p->ta && M > GEMM_FEW_ROWS && wide > M;
}

/* d[c][r] = s[r][c] for an r x c matrix (ld c and r). */
static void transpose_f32(const float *s, int64_t rows, int64_t cols, float *d)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            d[c * rows + r] = s[r * cols + c];
}

static size_t gemm_fwd_scratch(const void *pp, const op_tensor *in, int n_in, const op_tensor *out)
{
    const gemm_params *p = pp;
    const int64_t M = p->ta ? in[0].shape.d[1] : in[0].shape.d[0];
    return gemm_swapped(p, M, p->N) ? (size_t)(M * p->N) : 0;
}

static void gemm_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                         float *scratch, gemm_ws *gemm)
{
    const gemm_params *p = pp;
    const float *A = in[0].data, *B = in[1].data;
    float *Y = out[0].data;
    const int64_t M = p->ta ? in[0].shape.d[1] : in[0].shape.d[0], K = p->K, N = p->N;
    const op_tensor *C = n_in > 2 && in[2].dtype != OP_NONE ? &in[2] : NULL;
    int64_t cs[2] = {0, 0};
    if (C) {
        op_shape o = {2, {M, N}};
        bcast_strides(C, &o, cs);
    }
    /* Y [M][N] = op(A) [M][K] x op(B) [K][N]: each element a fixed chain
     * (gemm.h), so a row (an image) does not depend on the others */
    if (gemm_swapped(p, M, N)) { /* Y^T = op(B)^T A^T, the same chains */
        gemm_f32(gemm, p->tb ? GEMM_N : GEMM_T, GEMM_T, (int)N, (int)M, (int)K, B,
                 p->tb ? (int)K : (int)N, A, (int)K, 0, scratch, (int)M);
        transpose_f32(scratch, N, M, Y);
    } else {
        gemm_f32(gemm, p->ta ? GEMM_T : GEMM_N, p->tb ? GEMM_T : GEMM_N, (int)M, (int)N, (int)K,
                 A, p->ta ? (int)M : (int)K, B, p->tb ? (int)K : (int)N, 0, Y, (int)N);
    }
    for (int64_t i = 0; i < M; i++) {
        float *y = Y + i * N;
        if (p->alpha != 1.0f)
            for (int64_t j = 0; j < N; j++)
                y[j] *= p->alpha;
        if (C) {
            const float *c = (const float *)C->data + i * cs[0];
            for (int64_t j = 0; j < N; j++)
                y[j] += p->beta * c[j * cs[1]];
        }
        if (p->epi.act) /* a fused activation, on the row while it is in cache */
            op_epilogue_run(&p->epi, y, NULL, (size_t)N);
    }
}

static int matmul_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                        char *err, size_t errsz)
{
    gemm_params *p = pp;
    char b1[64], b2[64];
    int rc;
    if ((rc = check_float(&in[0], "A", err, errsz)) || (rc = check_float(&in[1], "B", err, errsz)))
        return rc;
    op_tensor a = in[0], b = in[1];
    p->mm = 1, p->alpha = 1.0f;
    if (a.shape.rank == 0 || b.shape.rank == 0)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "MatMul of a scalar");
    if (a.shape.rank == 1) { /* [K] -> [1,K] */
        if (a.batched)
            return adj_fail(err, errsz, UNSUP, "a 1-D batched A");
        a.shape.rank = 2, a.shape.d[1] = a.shape.d[0], a.shape.d[0] = 1, p->a_vec = 1;
    }
    if (b.shape.rank == 1) { /* [K] -> [K,1] */
        if (b.batched)
            return adj_fail(err, errsz, UNSUP, "a 1-D batched B");
        b.shape.rank = 2, b.shape.d[1] = 1, p->b_vec = 1;
    }
    if ((a.batched && a.shape.rank == 2 && b.batched) || (b.batched && b.shape.rank == 2))
        return adj_fail(err, errsz, UNSUP, "a product across the batch");
    int ra = a.shape.rank, rb = b.shape.rank;
    p->M = a.shape.d[ra - 2], p->K = a.shape.d[ra - 1], p->N = b.shape.d[rb - 1];
    if (b.shape.d[rb - 2] != p->K)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "inputs A %s and B %s do not agree",
                        op_shape_str(&in[0].shape, b1, sizeof b1), op_shape_str(&in[1].shape, b2, sizeof b2));
    if (p->M > INT32_MAX || p->K > INT32_MAX || p->N > INT32_MAX ||
        (double)op_numel(&a.shape) / (double)p->K > INT32_MAX)
        return adj_fail(err, errsz, ADJ_ERR_LIMIT, "a product over 2^31 rows or columns");
    /* broadcast the leading (matrix batch) dims */
    op_tensor ha = a, hb = b;
    ha.shape.rank = ra - 2, hb.shape.rank = rb - 2;
    if (ra == 2 && a.batched) /* rows of A are images: the batch is M */
        ha.batched = 0;
    op_shape bs;
    int bat;
    if ((rc = broadcast_shape(&ha, &hb, &bs, &bat, err, errsz)))
        return rc;
    p->bshape = bs;
    op_shape s = bs;
    if (!p->a_vec)
        s.d[s.rank++] = p->M;
    if (!p->b_vec)
        s.d[s.rank++] = p->N;
    if (a.batched && ra == 2)
        s.d[0] = OP_DIM_BATCH;
    p->flat_a = ra >= 3 && rb == 2 && !b.batched && !p->b_vec;
    set_out(&out[0], OP_FLOAT, in[0].batched || in[1].batched, &s);
    return 0;
}

static void matmul_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                           int n_out, float *scratch, gemm_ws *gemm)
{
    const gemm_params *p = pp;
    if (p->flat_a) { /* y [rows][N] = a [rows][K] x B [K][N] per image (or all rows unbatched) */
        const int64_t imgs = in[0].batched ? in[0].shape.d[0] : 1;
        const int64_t rows = (int64_t)op_numel(&in[0].shape) / p->K / imgs;
        /* all images' rows in one product: its elements do not depend on the others */
        gemm_f32(gemm, GEMM_N, GEMM_N, (int)(rows * imgs), (int)p->N, (int)p->K, in[0].data,
                 (int)p->K, in[1].data, (int)p->N, 0, out[0].data, (int)p->N);
        return;
    }
    op_shape sa = in[0].shape, sb = in[1].shape, bs = p->bshape;
    if (p->a_vec)
        sa.rank = 2, sa.d[1] = sa.d[0], sa.d[0] = 1;
    if (p->b_vec)
        sb.rank = 2, sb.d[1] = 1;
    const int64_t M = sa.d[sa.rank - 1 - 1], K = p->K, N = p->N;
    /* run-time batch size into the broadcast shape */
    if (bs.rank && bs.d[0] == OP_DIM_BATCH)
        bs.d[0] = in[0].batched ? in[0].shape.d[0] : in[1].shape.d[0];
    op_tensor ha = {OP_FLOAT, 0, sa, NULL}, hb = {OP_FLOAT, 0, sb, NULL};
    ha.shape.rank -= 2, hb.shape.rank -= 2;
    int64_t st_a[OP_MAX_RANK], st_b[OP_MAX_RANK], idx[OP_MAX_RANK] = {0};
    bcast_strides(&ha, &bs, st_a);
    bcast_strides(&hb, &bs, st_b);
    const size_t nmat = op_numel(&bs);
    const float *A = in[0].data, *B = in[1].data;
    float *Y = out[0].data;
    for (size_t m = 0; m < nmat; m++) {
        int64_t oa = 0, ob = 0;
        for (int k = 0; k < bs.rank; k++)
            oa += idx[k] * st_a[k], ob += idx[k] * st_b[k];
        const float *a = A + oa * M * K, *b = B + ob * K * N;
        float *y = Y + (int64_t)m * M * N;
        /* y [M][N] = a [M][K] x b [K][N]; rows (images) independent by gemm.h's contract */
        gemm_f32(gemm, GEMM_N, GEMM_N, (int)M, (int)N, (int)K, a, (int)K, b, (int)N, 0, y, (int)N);
        idx_next(idx, bs.d, bs.rank - 1);
    }
}

/* ---- shape and layout operators --------------------------------------- */

typedef struct {
    int64_t axis;
    int64_t start, end;         /* Shape */
    int64_t v[OP_MAX_RANK];     /* Transpose perm; Squeeze/Unsqueeze axes */
    int nv;                     /* number of v (-1: attribute absent) */
    int allowzero;              /* Reshape */
    int opset;
    int64_t outer, len, inner;  /* Concat/Gather/Softmax geometry */
} shape_params;

static int axis_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    shape_params *p = pp;
    p->opset = opset;
    return attr_int(a, n, "axis", 0, &p->axis, err, errsz);
}

static int flatten_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    shape_params *p = pp;
    return attr_int(a, n, "axis", 1, &p->axis, err, errsz);
}

static int concat_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    shape_params *p = pp;
    if (!attr_find(a, n, "axis"))
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute 'axis' is missing");
    return attr_int(a, n, "axis", 0, &p->axis, err, errsz);
}

static int copy_forward_bytes(const op_tensor *in, op_tensor *out)
{
    memcpy(out->data, in->data, op_numel(&in->shape) * op_dtype_size(in->dtype));
    return 0;
}

static void copy_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                         float *scratch, gemm_ws *gemm)
{
    copy_forward_bytes(&in[0], &out[0]);
}

static int flatten_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                         char *err, size_t errsz)
{
    shape_params *p = pp;
    const op_shape *s = &in[0].shape;
    int64_t axis;
    if (p->axis < -s->rank || p->axis > s->rank)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute 'axis' %lld out of range",
                        (long long)p->axis);
    axis = p->axis < 0 ? p->axis + s->rank : p->axis;
    if (in[0].batched && axis != 1)
        return adj_fail(err, errsz, UNSUP, "attribute 'axis' = %lld on a batched input (only 1)",
                        (long long)p->axis);
    op_shape o = {2, {1, 1}};
    for (int i = 0; i < s->rank; i++)
        o.d[i < axis ? 0 : 1] *= (i == 0 && in[0].batched) ? 1 : s->d[i];
    if (in[0].batched)
        o.d[0] = OP_DIM_BATCH;
    set_out(&out[0], in[0].dtype, in[0].batched, &o);
    return 0;
}

static int reshape_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    shape_params *p = pp;
    int64_t az;
    int rc = attr_int(a, n, "allowzero", 0, &az, err, errsz);
    p->allowzero = az != 0;
    return rc;
}

static int reshape_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                         char *err, size_t errsz)
{
    shape_params *p = pp;
    int64_t t[OP_MAX_RANK];
    int nt, rc = input_ints(&in[1], "shape", OP_MAX_RANK, t, &nt, err, errsz);
    char b1[64];
    if (rc)
        return rc;
    const op_shape *s = &in[0].shape;
    const int bat = in[0].batched;
    op_shape o = {nt, {0}};
    int first = 0;
    if (bat) {
        /* the first target dimension must be the batch: 0 (copy), the batch
         * value from Shape, -1 or 1 (a model exported with batch 1) */
        if (nt < 1 || !(t[0] == 0 || t[0] == OP_BATCH_VALUE || t[0] == -1 || t[0] == 1))
            return adj_fail(err, errsz, UNSUP,
                            "target shape's first value %lld on a batched input (the batch must "
                            "stay dimension 0)", nt ? (long long)t[0] : 0LL);
        o.d[0] = OP_DIM_BATCH, first = 1;
    }
    int neg = -1;
    size_t known = 1, total = op_numel(s);
    for (int i = first; i < nt; i++) {
        int64_t v = t[i];
        if (v == OP_BATCH_VALUE)
            return adj_fail(err, errsz, UNSUP, "the batch size in dimension %d of a target shape", i);
        if (v == 0 && !p->allowzero) {
            if (i >= s->rank)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "target shape copies dimension %d of %s",
                                i, op_shape_str(s, b1, sizeof b1));
            v = s->d[i];
        }
        if (v == 0)
            return adj_fail(err, errsz, UNSUP, "an empty tensor (a dimension 0)");
        if (v == -1) {
            if (neg >= 0)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "target shape has two -1");
            neg = i;
            continue;
        }
        if (v < 0 || v > DIM_MAX)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "target shape has %lld", (long long)v);
        o.d[i] = v;
        known *= (size_t)v;
        if (known > total) /* also keeps the product from overflowing */
            return adj_fail(err, errsz, bat ? UNSUP : ADJ_ERR_FORMAT,
                            "cannot reshape %s (%zu values%s) into more", op_shape_str(s, b1, sizeof b1),
                            total, bat ? " per image" : "");
    }
    if (neg >= 0) {
        if (known == 0 || total % known)
            return adj_fail(err, errsz, bat ? UNSUP : ADJ_ERR_FORMAT, "cannot reshape %s%s",
                            op_shape_str(s, b1, sizeof b1), bat ? " keeping the batch" : "");
        o.d[neg] = (int64_t)(total / known);
        known = total;
    }
    if (known != total) /* with a batch: the target does not keep it in dimension 0 */
        return adj_fail(err, errsz, bat ? UNSUP : ADJ_ERR_FORMAT,
                        "cannot reshape %s (%zu values%s) into %zu values",
                        op_shape_str(s, b1, sizeof b1), total, bat ? " per image" : "", known);
    set_out(&out[0], in[0].dtype, bat, &o);
    return 0;
}

static int shape_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    shape_params *p = pp;
    int rc = attr_int(a, n, "start", 0, &p->start, err, errsz);
    p->nv = attr_find(a, n, "end") != NULL;
    return rc ? rc : attr_int(a, n, "end", 0, &p->end, err, errsz);
}

static int shape_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                       char *err, size_t errsz)
{
    shape_params *p = pp;
    const int r = in[0].shape.rank;
    int64_t st = p->start < 0 ? p->start + r : p->start, en = p->nv ? p->end : r;
    if (en < 0)
        en += r;
    st = st < 0 ? 0 : st > r ? r : st;
    en = en < 0 ? 0 : en > r ? r : en;
    p->outer = st, p->len = en > st ? en - st : 0;
    op_shape o = {1, {p->len}};
    set_out(&out[0], OP_INT64, 0, &o);
    return 0;
}

static void shape_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                          int n_out, float *scratch, gemm_ws *gemm)
{
    const shape_params *p = pp;
    int64_t *y = out[0].data;
    for (int64_t i = 0; i < p->len; i++) {
        int64_t d = in[0].shape.d[p->outer + i];
        y[i] = (in[0].batched && p->outer + i == 0) ? OP_BATCH_VALUE : d;
    }
}

static int concat_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                        char *err, size_t errsz)
{
    shape_params *p = pp;
    char b1[64], b2[64];
    const op_shape *s0 = &in[0].shape;
    int64_t axis;
    int rc = norm_axis(p->axis, s0->rank, &axis, "attribute 'axis'", err, errsz);
    if (rc)
        return rc;
    if (in[0].batched && axis == 0)
        return adj_fail(err, errsz, UNSUP, "attribute 'axis' = 0 on batched inputs");
    op_shape o = *s0;
    o.d[axis] = 0;
    for (int i = 0; i < n_in; i++) {
        const op_shape *s = &in[i].shape;
        if (in[i].dtype != in[0].dtype || in[i].batched != in[0].batched || s->rank != s0->rank)
            return adj_fail(err, errsz, UNSUP, "input %d %s %s does not match input 0 %s %s", i,
                            op_dtype_name(in[i].dtype), op_shape_str(s, b1, sizeof b1),
                            op_dtype_name(in[0].dtype), op_shape_str(s0, b2, sizeof b2));
        for (int k = 0; k < s->rank; k++)
            if (k != axis && s->d[k] != s0->d[k])
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input %d %s does not match input 0 %s",
                                i, op_shape_str(s, b1, sizeof b1), op_shape_str(s0, b2, sizeof b2));
        o.d[axis] += s->d[axis];
    }
    p->len = axis; /* the resolved axis */
    set_out(&out[0], in[0].dtype, in[0].batched, &o);
    return 0;
}

static void concat_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                           int n_out, float *scratch, gemm_ws *gemm)
{
    const shape_params *p = pp;
    const int axis = (int)p->len;
    const size_t es = op_dtype_size(out[0].dtype);
    size_t outer = 1;
    for (int k = 0; k < axis; k++)
        outer *= (size_t)out[0].shape.d[k];
    const size_t orow = op_numel(&out[0].shape) / outer * es;
    size_t off = 0;
    for (int i = 0; i < n_in; i++) {
        const size_t row = op_numel(&in[i].shape) / outer * es;
        for (size_t o = 0; o < outer; o++)
            memcpy((char *)out[0].data + o * orow + off, (const char *)in[i].data + o * row, row);
        off += row;
    }
}

static int transpose_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    shape_params *p = pp;
    return attr_ints(a, n, "perm", OP_MAX_RANK, p->v, &p->nv, err, errsz);
}

static int transpose_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                           char *err, size_t errsz)
{
    shape_params *p = pp;
    const op_shape *s = &in[0].shape;
    if (p->nv < 0) {
        p->nv = s->rank;
        for (int i = 0; i < s->rank; i++)
            p->v[i] = s->rank - 1 - i;
    }
    if (p->nv != s->rank)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute 'perm' has %d values for rank %d",
                        p->nv, s->rank);
    int seen[OP_MAX_RANK] = {0};
    op_shape o = {s->rank, {0}};
    for (int i = 0; i < s->rank; i++) {
        if (p->v[i] < 0 || p->v[i] >= s->rank || seen[p->v[i]]++)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "attribute 'perm' is not a permutation");
        o.d[i] = s->d[p->v[i]];
    }
    if (in[0].batched && p->v[0] != 0)
        return adj_fail(err, errsz, UNSUP, "attribute 'perm' moves the batch dimension");
    set_out(&out[0], in[0].dtype, in[0].batched, &o);
    return 0;
}

static void transpose_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                              int n_out, float *scratch, gemm_ws *gemm)
{
    const shape_params *p = pp;
    const op_shape *o = &out[0].shape;
    const int R = o->rank;
    const size_t n = op_numel(o), es = op_dtype_size(in[0].dtype);
    int64_t ist[OP_MAX_RANK], st[OP_MAX_RANK], idx[OP_MAX_RANK] = {0};
    strides_of(&in[0].shape, ist);
    for (int i = 0; i < R; i++)
        st[i] = ist[p->v[i]];
    if (n == 0)
        return;
    /* odometer over the outer output axes; the last one is a strided run */
    const int64_t inner = R ? o->d[R - 1] : 1, is = R ? st[R - 1] : 0;
    for (size_t e = 0; e < n; e += (size_t)inner) {
        int64_t off = 0;
        for (int k = 0; k < R - 1; k++)
            off += idx[k] * st[k];
        if (es == 4) {
            const float *x = (const float *)in[0].data + off;
            float *y = (float *)out[0].data + e;
            for (int64_t i = 0; i < inner; i++)
                y[i] = x[i * is];
        } else {
            const int64_t *x = (const int64_t *)in[0].data + off;
            int64_t *y = (int64_t *)out[0].data + e;
            for (int64_t i = 0; i < inner; i++)
                y[i] = x[i * is];
        }
        idx_next(idx, o->d, R - 2);
    }
}

static int squeeze_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    shape_params *p = pp;
    p->opset = opset;
    return attr_ints(a, n, "axes", OP_MAX_RANK, p->v, &p->nv, err, errsz);
}

/* axes from the attribute (opset < 13) or the constant second input */
static int axes_of(shape_params *p, const op_tensor *in, int n_in, char *err, size_t errsz)
{
    if (n_in > 1 && in[1].dtype != OP_NONE) {
        if (p->nv >= 0)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "axes given as attribute and input");
        return input_ints(&in[1], "axes", OP_MAX_RANK, p->v, &p->nv, err, errsz);
    }
    return 0;
}

static int squeeze_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                         char *err, size_t errsz)
{
    shape_params *p = pp;
    const op_shape *s = &in[0].shape;
    int rc = axes_of(p, in, n_in, err, errsz);
    if (rc)
        return rc;
    int drop[OP_MAX_RANK] = {0};
    if (p->nv < 0) {
        for (int i = 0; i < s->rank; i++)
            drop[i] = s->d[i] == 1 && !(i == 0 && in[0].batched);
    } else
        for (int i = 0; i < p->nv; i++) {
            int64_t ax;
            if ((rc = norm_axis(p->v[i], s->rank, &ax, "axis", err, errsz)))
                return rc;
            if (ax == 0 && in[0].batched)
                return adj_fail(err, errsz, UNSUP, "squeezing the batch dimension");
            if (s->d[ax] != 1)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "axis %lld has size %lld, not 1",
                                (long long)p->v[i], (long long)s->d[ax]);
            drop[ax] = 1;
        }
    op_shape o = {0, {0}};
    for (int i = 0; i < s->rank; i++)
        if (!drop[i])
            o.d[o.rank++] = s->d[i];
    set_out(&out[0], in[0].dtype, in[0].batched, &o);
    return 0;
}

static int unsqueeze_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                           char *err, size_t errsz)
{
    shape_params *p = pp;
    const op_shape *s = &in[0].shape;
    int rc = axes_of(p, in, n_in, err, errsz);
    if (rc)
        return rc;
    if (p->nv < 0)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "axes are missing");
    const int R = s->rank + p->nv;
    if (R > OP_MAX_RANK)
        return adj_fail(err, errsz, UNSUP, "rank %d (at most %d)", R, OP_MAX_RANK);
    int ins[OP_MAX_RANK] = {0};
    for (int i = 0; i < p->nv; i++) {
        int64_t ax;
        if ((rc = norm_axis(p->v[i], R, &ax, "axis", err, errsz)))
            return rc;
        if (ins[ax]++)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "axis %lld repeated", (long long)p->v[i]);
    }
    if (in[0].batched && ins[0])
        return adj_fail(err, errsz, UNSUP, "inserting a dimension before the batch");
    op_shape o = {R, {0}};
    for (int i = 0, j = 0; i < R; i++)
        o.d[i] = ins[i] ? 1 : s->d[j++];
    set_out(&out[0], in[0].dtype, in[0].batched, &o);
    return 0;
}

static int gather_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                        char *err, size_t errsz)
{
    shape_params *p = pp;
    const op_shape *s = &in[0].shape, *is = &in[1].shape;
    int64_t axis;
    int rc = norm_axis(p->axis, s->rank, &axis, "attribute 'axis'", err, errsz);
    if (rc)
        return rc;
    if (in[0].batched && axis == 0)
        return adj_fail(err, errsz, UNSUP, "attribute 'axis' = 0 on a batched input");
    if (in[1].dtype != OP_INT64 || !in[1].data)
        return adj_fail(err, errsz, UNSUP, "input 'indices' must be a constant int64 tensor");
    if (s->rank - 1 + is->rank > OP_MAX_RANK)
        return adj_fail(err, errsz, UNSUP, "output rank over %d", OP_MAX_RANK);
    const int64_t *iv = in[1].data;
    for (size_t i = 0; i < op_numel(is); i++)
        if (iv[i] < -s->d[axis] || iv[i] >= s->d[axis])
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "index %lld out of range for size %lld",
                            (long long)iv[i], (long long)s->d[axis]);
    op_shape o = {0, {0}};
    for (int i = 0; i < axis; i++)
        o.d[o.rank++] = s->d[i];
    for (int i = 0; i < is->rank; i++)
        o.d[o.rank++] = is->d[i];
    for (int i = (int)axis + 1; i < s->rank; i++)
        o.d[o.rank++] = s->d[i];
    p->len = axis;
    set_out(&out[0], in[0].dtype, in[0].batched, &o);
    return 0;
}

static void gather_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                           int n_out, float *scratch, gemm_ws *gemm)
{
    const shape_params *p = pp;
    const op_shape *s = &in[0].shape;
    const int axis = (int)p->len;
    const size_t es = op_dtype_size(in[0].dtype), ni = op_numel(&in[1].shape);
    size_t outer = 1, inner = es;
    for (int k = 0; k < axis; k++)
        outer *= (size_t)s->d[k];
    for (int k = axis + 1; k < s->rank; k++)
        inner *= (size_t)s->d[k];
    const int64_t *iv = in[1].data, dim = s->d[axis];
    char *y = out[0].data;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < ni; i++) {
            int64_t k = iv[i] < 0 ? iv[i] + dim : iv[i];
            memcpy(y, (const char *)in[0].data + (o * (size_t)dim + (size_t)k) * inner, inner);
            y += inner;
        }
}

/* ---- Slice, Pad -------------------------------------------------------- */

/* Slice's and Pad's map from an output element to the input element it
 * copies: along axis k, input index start + idx * step. */
typedef struct {
    int64_t start[OP_MAX_RANK], step[OP_MAX_RANK]; /* per input axis, resolved (Pad: -pads, 1) */
    int mode; /* Pad: 0 constant, 1 reflect, 2 edge (Slice: 0, never outside) */
    float value;
} slice_params;

/* The input offset (ist: the input's strides) that output element idx
 * copies; -1 where Pad's constant stands instead. Slice's indices are
 * always inside; Pad's outside are reflected (mode 1) or the edge (2). */
static int64_t slice_source(const slice_params *p, const op_shape *s, const int64_t *ist,
                            const int64_t *idx)
{
    int64_t off = 0;
    for (int k = 0; k < s->rank; k++) {
        int64_t i = p->start[k] + idx[k] * p->step[k], d = s->d[k];
        if (i < 0 || i >= d) {
            if (p->mode == 0)
                return -1;
            i = p->mode == 1 ? (i < 0 ? -i : 2 * (d - 1) - i) : (i < 0 ? 0 : d - 1);
        }
        off += i * ist[k];
    }
    return off;
}

static int slice_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                       char *err, size_t errsz)
{
    slice_params *p = pp;
    const op_shape *s = &in[0].shape;
    int64_t st[OP_MAX_RANK], en[OP_MAX_RANK], ax[OP_MAX_RANK], sp[OP_MAX_RANK];
    int ns, ne, na = -1, nsp = -1, rc;
    if ((rc = input_ints(&in[1], "starts", OP_MAX_RANK, st, &ns, err, errsz)) ||
        (rc = input_ints(&in[2], "ends", OP_MAX_RANK, en, &ne, err, errsz)))
        return rc;
    if (n_in > 3 && in[3].dtype != OP_NONE &&
        (rc = input_ints(&in[3], "axes", OP_MAX_RANK, ax, &na, err, errsz)))
        return rc;
    if (n_in > 4 && in[4].dtype != OP_NONE &&
        (rc = input_ints(&in[4], "steps", OP_MAX_RANK, sp, &nsp, err, errsz)))
        return rc;
    if (ns != ne || (na >= 0 && na != ns) || (nsp >= 0 && nsp != ns))
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "starts, ends, axes and steps differ in length");
    op_shape o = *s;
    for (int i = 0; i < s->rank; i++)
        p->start[i] = 0, p->step[i] = 1;
    int seen[OP_MAX_RANK] = {0};
    for (int i = 0; i < ns; i++) {
        int64_t a = na >= 0 ? ax[i] : i, step = nsp >= 0 ? sp[i] : 1;
        if ((rc = norm_axis(a, s->rank, &a, "axis", err, errsz)))
            return rc;
        if (seen[a]++)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "axis %lld repeated", (long long)a);
        if (step == 0)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "a step of 0");
        if (step > DIM_MAX) /* a step past the end takes one element either way */
            step = DIM_MAX;
        if (step < -DIM_MAX)
            step = -DIM_MAX;
        int64_t d = s->d[a], b = st[i], e = en[i];
        if (in[0].batched && a == 0) {
            if (b == 0 && step == 1 && e >= INT32_MAX)
                continue; /* the whole batch */
            return adj_fail(err, errsz, UNSUP, "slicing the batch dimension");
        }
        if (b < 0)
            b += d;
        if (e < 0)
            e += d;
        if (step > 0) {
            b = b < 0 ? 0 : b > d ? d : b;
            e = e < 0 ? 0 : e > d ? d : e;
            o.d[a] = e > b ? (e - b + step - 1) / step : 0;
        } else {
            b = b < 0 ? -1 : b > d - 1 ? d - 1 : b;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            o.d[a] = b > e ? (b - e + (-step) - 1) / (-step) : 0;
        }
        if (o.d[a] == 0)
            return adj_fail(err, errsz, UNSUP, "an empty slice (axis %lld)", (long long)a);
        p->start[a] = b, p->step[a] = step;
    }
    set_out(&out[0], in[0].dtype, in[0].batched, &o);
    return 0;
}

static void slice_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                          int n_out, float *scratch, gemm_ws *gemm)
{
    const slice_params *p = pp;
    const op_shape *o = &out[0].shape;
    const int R = o->rank;
    const size_t n = op_numel(o), es = op_dtype_size(in[0].dtype);
    int64_t ist[OP_MAX_RANK], idx[OP_MAX_RANK] = {0};
    strides_of(&in[0].shape, ist);
    for (size_t e = 0; e < n; e++) {
        const int64_t off = slice_source(p, &in[0].shape, ist, idx);
        memcpy((char *)out[0].data + e * es, (const char *)in[0].data + off * (int64_t)es, es);
        idx_next(idx, o->d, R - 1);
    }
}

static int pad_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    slice_params *p = pp;
    const char *m;
    int rc = attr_str(a, n, "mode", &m, err, errsz);
    if (rc)
        return rc;
    if (!m || !strcmp(m, "constant"))
        p->mode = 0;
    else if (!strcmp(m, "reflect"))
        p->mode = 1;
    else if (!strcmp(m, "edge"))
        p->mode = 2;
    else
        return adj_fail(err, errsz, UNSUP, "attribute 'mode' = '%s'", m);
    return 0;
}

static int pad_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                     char *err, size_t errsz)
{
    slice_params *p = pp;
    const op_shape *s = &in[0].shape;
    int64_t pads[2 * OP_MAX_RANK];
    int np, rc = input_ints(&in[1], "pads", 2 * OP_MAX_RANK, pads, &np, err, errsz);
    if (rc)
        return rc;
    if (np != 2 * s->rank)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input 'pads' has %d values for rank %d", np,
                        s->rank);
    if (in[0].dtype != OP_FLOAT)
        return adj_fail(err, errsz, UNSUP, "input 'data' of type %s", op_dtype_name(in[0].dtype));
    p->value = 0.0f;
    if (n_in > 2 && in[2].dtype != OP_NONE) {
        if ((rc = check_float(&in[2], "constant_value", err, errsz)))
            return rc;
        if (!in[2].data || op_numel(&in[2].shape) != 1)
            return adj_fail(err, errsz, UNSUP, "input 'constant_value' must be a constant scalar");
        p->value = *(const float *)in[2].data;
    }
    op_shape o = *s;
    for (int i = 0; i < s->rank; i++) {
        p->start[i] = -pads[i], p->step[i] = 1;
        if (in[0].batched && i == 0) {
            if (pads[0] || pads[s->rank])
                return adj_fail(err, errsz, UNSUP, "padding the batch dimension");
            continue;
        }
        if (pads[i] > DIM_MAX || pads[i] < -DIM_MAX || pads[i + s->rank] > DIM_MAX ||
            pads[i + s->rank] < -DIM_MAX)
            return adj_fail(err, errsz, ADJ_ERR_LIMIT, "input 'pads' over 2^40 (axis %d)", i);
        o.d[i] = s->d[i] + pads[i] + pads[i + s->rank];
        if (o.d[i] < 1)
            return adj_fail(err, errsz, UNSUP, "an empty result (axis %d)", i);
        if (p->mode == 1 && (pads[i] >= s->d[i] || pads[i + s->rank] >= s->d[i]))
            return adj_fail(err, errsz, UNSUP, "reflect padding wider than the input (axis %d)", i);
    }
    set_out(&out[0], OP_FLOAT, in[0].batched, &o);
    return 0;
}

static void pad_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                        float *scratch, gemm_ws *gemm)
{
    const slice_params *p = pp;
    const op_shape *o = &out[0].shape;
    const size_t n = op_numel(o);
    int64_t ist[OP_MAX_RANK], idx[OP_MAX_RANK] = {0};
    strides_of(&in[0].shape, ist);
    const float *x = in[0].data;
    float *y = out[0].data;
    for (size_t e = 0; e < n; e++) {
        const int64_t off = slice_source(p, &in[0].shape, ist, idx);
        y[e] = off < 0 ? p->value : x[off];
        idx_next(idx, o->d, o->rank - 1);
    }
}

/* ---- Softmax, ReduceMean, LayerNormalization -------------------------- */

typedef struct {
    int64_t axis;
    int opset, keepdims, nv;
    int64_t axes[OP_MAX_RANK];
    float eps;
    int64_t outer, len, inner; /* resolved: rows x len (stride inner) */
    int red[OP_MAX_RANK];      /* ReduceMean: reduced axes of the input */
} norm_params;

static int softmax_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    norm_params *p = pp;
    p->opset = opset;
    return attr_int(a, n, "axis", opset < 13 ? 1 : -1, &p->axis, err, errsz);
}

static int softmax_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                         char *err, size_t errsz)
{
    norm_params *p = pp;
    const op_shape *s = &in[0].shape;
    int64_t axis;
    int rc = check_float(&in[0], "input", err, errsz);
    if (rc || (rc = norm_axis(p->axis, s->rank, &axis, "attribute 'axis'", err, errsz)))
        return rc;
    if (in[0].batched && axis == 0)
        return adj_fail(err, errsz, UNSUP, "attribute 'axis' = 0 on a batched input");
    p->axis = axis;
    set_out(&out[0], OP_FLOAT, in[0].batched, s);
    return 0;
}

static void softmax_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                            int n_out, float *scratch, gemm_ws *gemm)
{
    const norm_params *p = pp;
    const op_shape *s = &in[0].shape;
    size_t outer = 1, len = 1, inner = 1;
    for (int k = 0; k < s->rank; k++) {
        size_t d = (size_t)s->d[k];
        if (k < p->axis)
            outer *= d;
        else if (k == p->axis || p->opset < 13) /* before opset 13: all of axis.. as one row */
            len *= d;
        else
            inner *= d;
    }
    const float *x = in[0].data;
    float *y = out[0].data;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            const float *xr = x + o * len * inner + i;
            float *yr = y + o * len * inner + i;
            float m = xr[0];
            for (size_t j = 1; j < len; j++)
                if (xr[j * inner] > m)
                    m = xr[j * inner];
            double sum = 0.0;
            for (size_t j = 0; j < len; j++) {
                yr[j * inner] = expf(xr[j * inner] - m);
                sum += yr[j * inner];
            }
            const float inv = (float)(1.0 / sum);
            for (size_t j = 0; j < len; j++)
                yr[j * inner] *= inv;
        }
}

static int reducemean_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    norm_params *p = pp;
    int64_t kd;
    int rc = attr_int(a, n, "keepdims", 1, &kd, err, errsz);
    p->keepdims = kd != 0;
    return rc ? rc : attr_ints(a, n, "axes", OP_MAX_RANK, p->axes, &p->nv, err, errsz);
}

static int reducemean_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                            char *err, size_t errsz)
{
    norm_params *p = pp;
    const op_shape *s = &in[0].shape;
    int rc = check_float(&in[0], "data", err, errsz);
    if (rc)
        return rc;
    memset(p->red, 0, sizeof p->red);
    for (int i = 0; i < s->rank; i++)
        p->red[i] = p->nv < 0;
    for (int i = 0; i < p->nv; i++) {
        int64_t ax;
        if ((rc = norm_axis(p->axes[i], s->rank, &ax, "axis", err, errsz)))
            return rc;
        p->red[ax] = 1;
    }
    if (in[0].batched && s->rank && p->red[0])
        return adj_fail(err, errsz, UNSUP, "reducing over the batch dimension");
    op_shape o = {0, {0}};
    for (int i = 0; i < s->rank; i++)
        if (!p->red[i])
            o.d[o.rank++] = s->d[i];
        else if (p->keepdims)
            o.d[o.rank++] = 1;
    set_out(&out[0], OP_FLOAT, in[0].batched, &o);
    return 0;
}

static void reducemean_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                               int n_out, float *scratch, gemm_ws *gemm)
{
    const norm_params *p = pp;
    const op_shape *s = &in[0].shape;
    const int R = s->rank;
    int64_t st[OP_MAX_RANK], idx[OP_MAX_RANK] = {0};
    strides_of(s, st);
    /* kept (k) and reduced (r) axes as two odometers */
    int ka[OP_MAX_RANK], ra[OP_MAX_RANK], nk = 0, nr = 0;
    size_t cnt = 1, nout = 1;
    for (int i = 0; i < R; i++) {
        if (p->red[i])
            ra[nr++] = i, cnt *= (size_t)s->d[i];
        else
            ka[nk++] = i, nout *= (size_t)s->d[i];
    }
    const float *x = in[0].data;
    float *y = out[0].data;
    for (size_t o = 0; o < nout; o++) {
        int64_t base = 0;
        for (int k = 0; k < nk; k++)
            base += idx[ka[k]] * st[ka[k]];
        int64_t ridx[OP_MAX_RANK] = {0};
        double acc = 0.0;
        for (size_t r = 0; r < cnt; r++) {
            int64_t off = base;
            for (int k = 0; k < nr; k++)
                off += ridx[k] * st[ra[k]];
            acc += x[off];
            for (int k = nr - 1; k >= 0; k--) {
                if (++ridx[k] < s->d[ra[k]])
                    break;
                ridx[k] = 0;
            }
        }
        y[o] = (float)(acc / (double)cnt);
        for (int k = nk - 1; k >= 0; k--) {
            if (++idx[ka[k]] < s->d[ka[k]])
                break;
            idx[ka[k]] = 0;
        }
    }
}

static int layernorm_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    norm_params *p = pp;
    int64_t stash;
    int rc = attr_int(a, n, "axis", -1, &p->axis, err, errsz);
    if (rc || (rc = attr_float(a, n, "epsilon", 1e-5f, &p->eps, err, errsz)) ||
        (rc = attr_int(a, n, "stash_type", 1, &stash, err, errsz)))
        return rc;
    if (stash != 1)
        return adj_fail(err, errsz, UNSUP, "attribute 'stash_type' = %lld (only 1)", (long long)stash);
    return 0;
}

static int layernorm_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                           char *err, size_t errsz)
{
    norm_params *p = pp;
    const op_shape *s = &in[0].shape;
    int64_t axis;
    char b1[64];
    int rc = check_float(&in[0], "X", err, errsz);
    if (rc || (rc = norm_axis(p->axis, s->rank, &axis, "attribute 'axis'", err, errsz)))
        return rc;
    if (in[0].batched && axis == 0)
        return adj_fail(err, errsz, UNSUP, "attribute 'axis' = 0 on a batched input");
    p->axis = axis;
    size_t len = 1;
    for (int i = (int)axis; i < s->rank; i++)
        len *= (size_t)s->d[i];
    for (int i = 1; i < n_in && i < 3; i++) {
        if (in[i].dtype == OP_NONE)
            continue;
        const char *nm = i == 1 ? "Scale" : "B";
        if ((rc = check_float(&in[i], nm, err, errsz)))
            return rc;
        if (in[i].batched || op_numel(&in[i].shape) != len)
            return adj_fail(err, errsz, UNSUP, "input '%s' %s (only the shape of X's last axes)", nm,
                            op_shape_str(&in[i].shape, b1, sizeof b1));
    }
    set_out(&out[0], OP_FLOAT, in[0].batched, s);
    op_shape st = *s;
    for (int i = (int)axis; i < s->rank; i++)
        st.d[i] = 1;
    for (int i = 1; i < n_out && i < 3; i++)
        if (out[i].dtype != OP_NONE)
            set_out(&out[i], OP_FLOAT, in[0].batched, &st);
    return 0;
}

static void layernorm_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                              int n_out, float *scratch, gemm_ws *gemm)
{
    const norm_params *p = pp;
    const op_shape *s = &in[0].shape;
    size_t rows = 1, len = 1;
    for (int k = 0; k < s->rank; k++)
        *(k < p->axis ? &rows : &len) *= (size_t)s->d[k];
    const float *x = in[0].data, *sc = in[1].data;
    const float *bb = n_in > 2 && in[2].dtype != OP_NONE ? in[2].data : NULL;
    float *y = out[0].data;
    float *mo = n_out > 1 && out[1].dtype != OP_NONE ? out[1].data : NULL;
    float *io = n_out > 2 && out[2].dtype != OP_NONE ? out[2].data : NULL;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * len;
        float *yr = y + r * len;
        double m = 0.0, v = 0.0;
        for (size_t j = 0; j < len; j++)
            m += xr[j];
        m /= (double)len;
        for (size_t j = 0; j < len; j++)
            v += (xr[j] - m) * (xr[j] - m);
        v /= (double)len;
        const float inv = (float)(1.0 / sqrt(v + p->eps)), mf = (float)m;
        for (size_t j = 0; j < len; j++)
            yr[j] = (xr[j] - mf) * inv * sc[j] + (bb ? bb[j] : 0.0f);
        if (mo)
            mo[r] = mf;
        if (io)
            io[r] = inv;
    }
}

/* ---- Cast -------------------------------------------------------------- */

typedef struct {
    int to;
} cast_params;

static int cast_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    cast_params *p = pp;
    int64_t to;
    int rc = attr_int(a, n, "to", 0, &to, err, errsz);
    if (rc)
        return rc;
    if (to != OP_FLOAT && to != OP_INT64)
        return adj_fail(err, errsz, UNSUP, "attribute 'to' = %lld (only float and int64)",
                        (long long)to);
    p->to = (int)to;
    return 0;
}

static int cast_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                      char *err, size_t errsz)
{
    cast_params *p = pp;
    if (in[0].dtype != OP_FLOAT && in[0].dtype != OP_INT64)
        return adj_fail(err, errsz, UNSUP, "input of type %s", op_dtype_name(in[0].dtype));
    if (p->to == OP_INT64 && !in[0].data)
        return adj_fail(err, errsz, UNSUP, "a cast to int64 of a tensor computed at run time");
    if (p->to == OP_FLOAT && has_batch_value(&in[0]))
        return adj_fail(err, errsz, UNSUP, "a cast of the batch size");
    set_out(&out[0], (op_dtype)p->to, in[0].batched, &in[0].shape);
    return 0;
}

static void cast_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                         float *scratch, gemm_ws *gemm)
{
    const size_t n = op_numel(&in[0].shape);
    if (in[0].dtype == out[0].dtype) {
        copy_forward_bytes(&in[0], &out[0]);
        return;
    }
    if (in[0].dtype == OP_FLOAT) {
        const float *x = in[0].data;
        int64_t *y = out[0].data;
        for (size_t i = 0; i < n; i++)
            y[i] = (int64_t)x[i];
    } else {
        const int64_t *x = in[0].data;
        float *y = out[0].data;
        for (size_t i = 0; i < n; i++)
            y[i] = (float)x[i];
    }
}

/* ---- ConstantOfShape, Expand, Where, Equal ------------------------------ */

typedef struct {
    op_dtype dtype;   /* ConstantOfShape: the value's type and value */
    float f;
    int64_t i;
} fill_params;

static int cos_parse(void *pp, const op_attr *a, int n, int opset, char *err, size_t errsz)
{
    fill_params *p = pp;
    const op_attr *v = attr_find(a, n, "value");
    p->dtype = OP_FLOAT;
    if (!v)
        return 0;
    if (v->type != OP_ATTR_TENSOR || v->n != 1 || (v->tdtype != OP_FLOAT && v->tdtype != OP_INT64))
        return adj_fail(err, errsz, UNSUP, "attribute 'value' must be one float or int64 value");
    p->dtype = v->tdtype, p->f = v->f, p->i = v->i;
    return 0;
}

static int cos_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                     char *err, size_t errsz)
{
    const fill_params *p = pp;
    op_shape o = {0, {0}};
    int rc = input_ints(&in[0], "input", OP_MAX_RANK, o.d, &o.rank, err, errsz);
    for (int i = 0; !rc && i < o.rank; i++)
        if (o.d[i] == OP_BATCH_VALUE)
            rc = adj_fail(err, errsz, UNSUP, "a shape holding the batch size (a batch of constants)");
        else if (o.d[i] < 0)
            rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "dimension %d is %lld", i, (long long)o.d[i]);
    if (!rc)
        set_out(&out[0], p->dtype, 0, &o);
    return rc;
}

static void cos_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                        float *scratch, gemm_ws *gemm)
{
    const fill_params *p = pp;
    const size_t n = op_numel(&out[0].shape);
    for (size_t i = 0; i < n; i++)
        if (p->dtype == OP_FLOAT)
            ((float *)out[0].data)[i] = p->f;
        else
            ((int64_t *)out[0].data)[i] = p->i;
}

/*
 * Expand: X broadcast to shape (a constant; the batch size as its first value
 * makes a batched output, each image a copy of X's one).
 */
static int expand_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                        char *err, size_t errsz)
{
    int64_t t[OP_MAX_RANK];
    int k, rc = input_ints(&in[1], "shape", OP_MAX_RANK, t, &k, err, errsz);
    if (rc)
        return rc;
    const op_shape *x = &in[0].shape;
    const int R = k > x->rank ? k : x->rank;
    op_shape o = {R, {0}};
    int batched = in[0].batched;
    char b1[64];
    for (int i = 0; i < R; i++) {
        const int ix = i - (R - x->rank), it = i - (R - k);
        const int64_t dx = ix >= 0 ? x->d[ix] : 1, dt = it >= 0 ? t[it] : 1;
        const int xb = in[0].batched && ix == 0;
        if ((xb && i != 0) || (dt == OP_BATCH_VALUE && i != 0))
            return adj_fail(err, errsz, UNSUP, "expanding %s moves the batch dimension",
                            op_shape_str(x, b1, sizeof b1));
        if (xb || dt == OP_BATCH_VALUE) {
            if ((xb && dt != 1 && dt != OP_BATCH_VALUE) || (!xb && dx != 1))
                return adj_fail(err, errsz, UNSUP, "expanding %s across the batch",
                                op_shape_str(x, b1, sizeof b1));
            o.d[0] = OP_DIM_BATCH, batched = 1;
            continue;
        }
        if (dt < 1 || (dx != dt && dx != 1 && dt != 1))
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s does not expand to dimension %d = %lld",
                            op_shape_str(x, b1, sizeof b1), i, (long long)dt);
        o.d[i] = dx == 1 ? dt : dx;
    }
    set_out(&out[0], in[0].dtype, batched, &o);
    return 0;
}

/*
 * Runs body for every output element e of shape o in order, with off[t] the
 * broadcast offset of input ts[t] (n_t of them, at most 3).
 */
#define BCAST_LOOP(o, n_t, ts, body)                                                    \
    do {                                                                                \
        int64_t st_[3][OP_MAX_RANK] = {{0}}, idx_[OP_MAX_RANK] = {0}, off[3];          \
        const size_t n_ = op_numel(o);                                                  \
        for (int t_ = 0; t_ < (n_t); t_++)                                              \
            bcast_strides(&(ts)[t_], o, st_[t_]);                                       \
        for (size_t e = 0; e < n_; e++) {                                               \
            for (int t_ = 0; t_ < (n_t); t_++) {                                        \
                off[t_] = 0;                                                            \
                for (int k_ = 0; k_ < (o)->rank; k_++)                                  \
                    off[t_] += idx_[k_] * st_[t_][k_];                                  \
            }                                                                           \
            body;                                                                       \
            idx_next(idx_, (o)->d, (o)->rank - 1);                                      \
        }                                                                               \
    } while (0)

static void expand_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                           int n_out, float *scratch, gemm_ws *gemm)
{
    const size_t es = op_dtype_size(in[0].dtype);
    const char *x = in[0].data;
    char *y = out[0].data;
    BCAST_LOOP(&out[0].shape, 1, in, memcpy(y + e * es, x + off[0] * es, es));
}

/* The shape of a, b and c broadcast (c may be NULL), as broadcast_shape. */
static int broadcast3(const op_tensor *a, const op_tensor *b, const op_tensor *c, op_tensor *o,
                      char *err, size_t errsz)
{
    op_tensor ab = *b;
    int rc = broadcast_shape(a, b, &ab.shape, &ab.batched, err, errsz);
    if (!rc && c)
        rc = broadcast_shape(&ab, c, &ab.shape, &ab.batched, err, errsz);
    *o = ab;
    return rc;
}

/* Where(condition, X, Y): X where the condition (int64, a bool) is nonzero, else Y. */
static int where_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                       char *err, size_t errsz)
{
    if (in[0].dtype != OP_INT64)
        return adj_fail(err, errsz, UNSUP, "input 'condition' of type %s",
                        op_dtype_name(in[0].dtype));
    if (in[1].dtype != in[2].dtype)
        return adj_fail(err, errsz, UNSUP, "inputs X and Y of types %s and %s",
                        op_dtype_name(in[1].dtype), op_dtype_name(in[2].dtype));
    op_tensor o;
    int rc = broadcast3(&in[0], &in[1], &in[2], &o, err, errsz);
    if (!rc)
        set_out(&out[0], in[1].dtype, o.batched, &o.shape);
    return rc;
}

static void where_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                          int n_out, float *scratch, gemm_ws *gemm)
{
    const size_t es = op_dtype_size(out[0].dtype);
    const int64_t *c = in[0].data;
    const char *x = in[1].data, *yv = in[2].data;
    char *y = out[0].data;
    BCAST_LOOP(&out[0].shape, 3, in,
               memcpy(y + e * es, c[off[0]] ? x + off[1] * es : yv + off[2] * es, es));
}

/* Equal: int64 0 or 1. The batch size (in a shape) equals only itself and no number < 1. */
static int equal_infer(void *pp, const op_tensor *in, int n_in, op_tensor *out, int n_out,
                       char *err, size_t errsz)
{
    if (in[0].dtype != in[1].dtype || (in[0].dtype != OP_FLOAT && in[0].dtype != OP_INT64))
        return adj_fail(err, errsz, UNSUP, "inputs of types %s and %s", op_dtype_name(in[0].dtype),
                        op_dtype_name(in[1].dtype));
    for (int k = 0; k < 2; k++) {
        const int64_t *v = has_batch_value(&in[k]) ? const_ints(&in[1 - k]) : NULL;
        for (size_t i = 0; v && i < op_numel(&in[1 - k].shape); i++)
            if (v[i] >= 1 && v[i] != OP_BATCH_VALUE)
                return adj_fail(err, errsz, UNSUP, "comparing the batch size with %lld (a dynamic "
                                "batch)", (long long)v[i]);
    }
    op_tensor o;
    int rc = broadcast3(&in[0], &in[1], NULL, &o, err, errsz);
    if (!rc)
        set_out(&out[0], OP_INT64, o.batched, &o.shape);
    return rc;
}

static void equal_forward(const void *pp, const op_tensor *in, int n_in, op_tensor *out,
                          int n_out, float *scratch, gemm_ws *gemm)
{
    int64_t *y = out[0].data;
    if (in[0].dtype == OP_FLOAT) {
        const float *a = in[0].data, *b = in[1].data;
        BCAST_LOOP(&out[0].shape, 2, in, y[e] = a[off[0]] == b[off[1]]);
    } else {
        const int64_t *a = in[0].data, *b = in[1].data;
        BCAST_LOOP(&out[0].shape, 2, in, y[e] = a[off[0]] == b[off[1]]);
    }
}

/* ---- backward kernels (input gradients; see op_def.backward) ---------- */

/* The value at offset off of a tensor the backward may not have (NULL): 0. */
static float at(const float *p, int64_t off) { return p ? p[off] : 0.0f; }

/* dx[i] += dy[i], n values (Identity, Dropout, the layout operators, Cast). */
static void accum_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                           int n_out, const float *dy, float *const *dx, float *scratch,
                           gemm_ws *gemm)
{
    const size_t n = op_numel(&in[0].shape);
    float *d = dx[0];
    if (d)
        for (size_t i = 0; i < n; i++)
            d[i] += dy[i];
}

/* Expand: each output element adds its gradient to the element of X it copied, in order. */
static void expand_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                            int n_out, const float *dy, float *const *dx, float *scratch,
                            gemm_ws *gemm)
{
    float *d = dx[0];
    if (d)
        BCAST_LOOP(&out[0].shape, 1, in, d[off[0]] += dy[e]);
}

/* Where: the gradient goes to X where the condition holds, else to Y (in output order). */
static void where_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                           int n_out, const float *dy, float *const *dx, float *scratch,
                           gemm_ws *gemm)
{
    const int64_t *c = in[0].data;
    float *dxa = dx[1], *dya = dx[2];
    BCAST_LOOP(&out[0].shape, 3, in, {
        if (c[off[0]] && dxa)
            dxa[off[1]] += dy[e];
        else if (!c[off[0]] && dya)
            dya[off[2]] += dy[e];
    });
}

static void bn_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                        int n_out, const float *dy, float *const *dx, float *scratch,
                        gemm_ws *gemm)
{
    const bn_params *p = pp;
    const float *sc = in[1].data, *var = in[4].data;
    const op_shape *s = &in[0].shape;
    const int64_t N = s->d[0], C = s->d[1];
    const size_t inner = op_numel(s) / (size_t)(N * C);
    if (!dx[0])
        return;
    for (int64_t b = 0; b < N; b++)
        for (int64_t c = 0; c < C; c++) {
            const float a = sc[c] / sqrtf(var[c] + p->eps);
            const size_t o = (size_t)(b * C + c) * inner;
            for (size_t i = 0; i < inner; i++)
                dx[0][o + i] += dy[o + i] * a;
        }
}

/*
 * The commonest elementwise gradients, ReLU's and a same-shape Add's or Sub's
 * (ResNet's residuals), in parallel parts of EW_PART elements on the gemm
 * workspace's threads: each element is computed alone, so the bits do not
 * depend on the split. kind: U_RELU (d0 += y > 0 ? dy : 0), or B_ADD / B_SUB
 * (d0 += dy, d1 += dy or -dy; either may be NULL).
 */
#define EW_PART ((size_t)1 << 15)
typedef struct {
    int relu, sub;
    size_t n;
    const float *dy, *y;
    float *d0, *d1;
} ew_job;

static void ew_part(void *arg, int part)
{
    const ew_job *j = arg;
    const size_t lo = (size_t)part * EW_PART, hi = lo + EW_PART < j->n ? lo + EW_PART : j->n;
    const float *dy = j->dy, *y = j->y; /* no restrict: x + x has d0 == d1 */
    float *d0 = j->d0, *d1 = j->d1;
    if (j->relu) {
        for (size_t i = lo; i < hi; i++)
            d0[i] += y[i] > 0.0f ? dy[i] : 0.0f;
        return;
    }
    if (d0)
        for (size_t i = lo; i < hi; i++)
            d0[i] += dy[i];
    if (d1 && j->sub)
        for (size_t i = lo; i < hi; i++)
            d1[i] -= dy[i];
    else if (d1)
        for (size_t i = lo; i < hi; i++)
            d1[i] += dy[i];
}

static void ew_backward(gemm_ws *gemm, const ew_job *j)
{
    gemm_parallel(gemm, (int)((j->n + EW_PART - 1) / EW_PART), ew_part, (void *)j);
}

/* n values of a unary operator's input gradient, d += dy f'(x) (not Relu: ew_part's). */
static void unary_bwd_run(const unary_params *p, const float *x, const float *y, const float *dy,
                          float *d, size_t n)
{
    switch (p->kind) {
    case U_SIGMOID:
        for (size_t i = 0; i < n; i++)
            d[i] += dy[i] * (y[i] * (1.0f - y[i]));
        break;
    case U_HARDSIGMOID:
        for (size_t i = 0; i < n; i++) {
            float v = p->alpha * x[i] + p->beta;
            d[i] += v > 0.0f && v < 1.0f ? dy[i] * p->alpha : 0.0f;
        }
        break;
    case U_HARDSWISH: /* as PyTorch: 0 below -3, x/3 + 1/2 up to 3, 1 above */
        for (size_t i = 0; i < n; i++)
            d[i] += x[i] < -3.0f ? 0.0f : x[i] <= 3.0f ? dy[i] * (x[i] / 3.0f + 0.5f) : dy[i];
        break;
    case U_ERF:
        for (size_t i = 0; i < n; i++)
            d[i] += dy[i] * (float)(M_2_SQRTPI * exp(-(double)x[i] * x[i]));
        break;
    case U_SQRT:
        for (size_t i = 0; i < n; i++)
            d[i] += dy[i] * 0.5f / y[i];
        break;
    case U_CLIP: /* passes strictly inside (lo, hi), as PyTorch's hardtanh and ReLU6 */
        for (size_t i = 0; i < n; i++)
            d[i] += x[i] > p->lo && x[i] < p->hi ? dy[i] : 0.0f;
        break;
    case U_TANH:
        for (size_t i = 0; i < n; i++)
            d[i] += dy[i] * (1.0f - y[i] * y[i]);
        break;
    case U_EXP:
        for (size_t i = 0; i < n; i++)
            d[i] += dy[i] * y[i];
        break;
    case U_NEG:
        for (size_t i = 0; i < n; i++)
            d[i] -= dy[i];
        break;
    case U_ABS:
        for (size_t i = 0; i < n; i++)
            d[i] += x[i] > 0.0f ? dy[i] : x[i] < 0.0f ? -dy[i] : 0.0f;
        break;
    default: /* U_IDENTITY */
        for (size_t i = 0; i < n; i++)
            d[i] += dy[i];
    }
}

static void unary_bwd_part(void *arg, int part)
{
    const unary_job *j = arg;
    const size_t lo = (size_t)part * UN_PART, hi = lo + UN_PART < j->n ? lo + UN_PART : j->n;
    unary_bwd_run(j->p, j->x ? j->x + lo : NULL, j->y ? j->y + lo : NULL, j->dy + lo, j->out + lo,
                  hi - lo);
}

static void unary_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                           int n_out, const float *dy, float *const *dx, float *scratch,
                           gemm_ws *gemm)
{
    const unary_params *p = pp;
    const size_t n = op_numel(&in[0].shape);
    float *d = dx[0];
    if (!d)
        return;
    if (p->kind == U_RELU) { /* y > 0 exactly where x > 0 */
        ew_backward(gemm, &(ew_job){.relu = 1, .n = n, .dy = dy, .y = out[0].data, .d0 = d});
        return;
    }
    unary_job j = {.p = p, .x = in[0].data, .y = out[0].data, .dy = dy, .out = d, .n = n};
    gemm_parallel(gemm, (int)((n + UN_PART - 1) / UN_PART), unary_bwd_part, &j);
}

/* The partial derivatives of a op b at (a, b) with y = a op b, times g. */
static float bin_da(int kind, float g, float a, float b, float y)
{
    switch (kind) {
    case B_ADD:
    case B_SUB: return g;
    case B_MUL: return g * b;
    case B_DIV: return g / b;
    default: return b == 2.0f ? g * 2.0f * a : g * b * powf(a, b - 1.0f);
    }
}

static float bin_db(int kind, float g, float a, float b, float y)
{
    switch (kind) {
    case B_ADD: return g;
    case B_SUB: return -g;
    case B_MUL: return g * a;
    case B_DIV: return -g * y / b;
    default: return g * y * logf(a);
    }
}

/*
 * Broadcasting: each output element adds its part to the input element it
 * came from, in output order (a broadcast input sums its parts in that fixed
 * order; the batch is never broadcast, so an image's sums are its own).
 */
static void binary_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                            int n_out, const float *dy, float *const *dx, float *scratch,
                            gemm_ws *gemm)
{
    const int kind = ((const binary_params *)pp)->kind;
    const op_shape *o = &out[0].shape;
    const size_t n = op_numel(o);
    const int R = o->rank;
    const float *A = in[0].data, *B = in[1].data, *Y = out[0].data;
    float *da = dx[0], *db = dx[1];
    int64_t sa[OP_MAX_RANK] = {0}, sb[OP_MAX_RANK] = {0}, idx[OP_MAX_RANK] = {0};
    bcast_strides(&in[0], o, sa);
    bcast_strides(&in[1], o, sb);
    if (op_numel(&in[0].shape) == n && op_numel(&in[1].shape) == n &&
        (kind == B_ADD || kind == B_SUB)) {
        ew_backward(gemm, &(ew_job){.sub = kind == B_SUB, .n = n, .dy = dy, .d0 = da, .d1 = db});
        return;
    }
    if (op_numel(&in[0].shape) == n && op_numel(&in[1].shape) == n) {
        for (size_t i = 0; i < n; i++) {
            const float a = at(A, (int64_t)i), b = at(B, (int64_t)i), y = at(Y, (int64_t)i);
            if (da)
                da[i] += bin_da(kind, dy[i], a, b, y);
            if (db)
                db[i] += bin_db(kind, dy[i], a, b, y);
        }
        return;
    }
    for (size_t e = 0; e < n; e++) {
        int64_t oa = 0, ob = 0;
        for (int k = 0; k < R; k++)
            oa += idx[k] * sa[k], ob += idx[k] * sb[k];
        const float a = at(A, oa), b = at(B, ob), y = at(Y, (int64_t)e);
        if (da)
            da[oa] += bin_da(kind, dy[e], a, b, y);
        if (db)
            db[ob] += bin_db(kind, dy[e], a, b, y);
        idx_next(idx, o->d, R - 1);
    }
}

static size_t gemm_bwd_scratch(const void *pp, const op_tensor *in, int n_in, const op_tensor *out)
{
    const gemm_params *p = pp;
    const int64_t M = p->ta ? in[0].shape.d[1] : in[0].shape.d[0];
    if (p->ta)
        return (size_t)(p->M * p->K);
    if (p->alpha == 1.0f)
        return gemm_swapped(p, M, p->K) ? (size_t)(M * p->K) : 0;
    return (size_t)p->K;
}

/* Gemm: dA += alpha dY op(B)^T (op(A) = A) or alpha op(B) dY^T (transA); dC += beta dY. */
static void gemm_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                          int n_out, const float *dy, float *const *dx, float *scratch,
                          gemm_ws *gemm)
{
    const gemm_params *p = pp;
    const float *Bm = in[1].data;
    const int64_t M = p->ta ? in[0].shape.d[1] : in[0].shape.d[0], K = p->K, N = p->N;
    const gemm_op tbt = p->tb ? GEMM_N : GEMM_T; /* op(B)^T of the stored B */
    const int ldb = p->tb ? (int)K : (int)N;
    if (dx[0] && p->ta) { /* unbatched only: A [K][M] */
        gemm_f32(gemm, p->tb ? GEMM_T : GEMM_N, GEMM_T, (int)K, (int)M, (int)N, Bm, ldb, dy,
                 (int)N, 0, scratch, (int)M);
        for (int64_t i = 0; i < M * K; i++)
            dx[0][i] += p->alpha * scratch[i];
    } else if (dx[0] && p->alpha == 1.0f && gemm_swapped(p, M, K)) {
        /* dA^T += op(B) dY^T: the chains start from dA's values, as accumulating in place */
        transpose_f32(dx[0], M, K, scratch);
        gemm_f32(gemm, tbt == GEMM_T ? GEMM_N : GEMM_T, GEMM_T, (int)K, (int)M, (int)N, Bm, ldb,
                 dy, (int)N, 1, scratch, (int)M);
        transpose_f32(scratch, K, M, dx[0]);
    } else if (dx[0] && p->alpha == 1.0f)
        gemm_f32(gemm, GEMM_N, tbt, (int)M, (int)K, (int)N, dy, (int)N, Bm, ldb, 1, dx[0], (int)K);
    else if (dx[0])
        for (int64_t i = 0; i < M; i++) { /* a row (an image) at a time into K floats */
            gemm_f32(gemm, GEMM_N, tbt, 1, (int)K, (int)N, dy + i * N, (int)N, Bm, ldb, 0,
                     scratch, (int)K);
            for (int64_t k = 0; k < K; k++)
                dx[0][i * K + k] += p->alpha * scratch[k];
        }
    if (n_in > 2 && dx[2]) {
        int64_t cs[2] = {0, 0};
        op_shape o = {2, {M, N}};
        bcast_strides(&in[2], &o, cs);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                dx[2][i * cs[0] + j * cs[1]] += p->beta * dy[i * N + j];
    }
}

/* MatMul: dA_m += dY_m B_m^T, dB_m += A_m^T dY_m for each (broadcast) matrix m. */
static void matmul_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                            int n_out, const float *dy, float *const *dx, float *scratch,
                            gemm_ws *gemm)
{
    const gemm_params *p = pp;
    const float *A = in[0].data, *B = in[1].data;
    const int64_t K = p->K, N = p->N;
    if (p->flat_a) {
        const int64_t rows = (int64_t)op_numel(&in[0].shape) / K;
        if (dx[0])
            gemm_f32(gemm, GEMM_N, GEMM_T, (int)rows, (int)K, (int)N, dy, (int)N, B, (int)N, 1,
                     dx[0], (int)K);
        if (dx[1]) /* B computed at run time: an unbatched graph */
            gemm_f32(gemm, GEMM_T, GEMM_N, (int)K, (int)N, (int)rows, A, (int)K, dy, (int)N, 1,
                     dx[1], (int)N);
        return;
    }
    op_shape sa = in[0].shape, sb = in[1].shape, bs = p->bshape;
    if (p->a_vec)
        sa.rank = 2, sa.d[1] = sa.d[0], sa.d[0] = 1;
    if (p->b_vec)
        sb.rank = 2, sb.d[1] = 1;
    const int64_t M = sa.d[sa.rank - 2];
    if (bs.rank && bs.d[0] == OP_DIM_BATCH)
        bs.d[0] = in[0].batched ? in[0].shape.d[0] : in[1].shape.d[0];
    op_tensor ha = {OP_FLOAT, 0, sa, NULL}, hb = {OP_FLOAT, 0, sb, NULL};
    ha.shape.rank -= 2, hb.shape.rank -= 2;
    int64_t st_a[OP_MAX_RANK], st_b[OP_MAX_RANK], idx[OP_MAX_RANK] = {0};
    bcast_strides(&ha, &bs, st_a);
    bcast_strides(&hb, &bs, st_b);
    const size_t nmat = op_numel(&bs);
    for (size_t m = 0; m < nmat; m++) {
        int64_t oa = 0, ob = 0;
        for (int k = 0; k < bs.rank; k++)
            oa += idx[k] * st_a[k], ob += idx[k] * st_b[k];
        const float *g = dy + (int64_t)m * M * N;
        if (dx[0]) /* [M][K] += g [M][N] x b^T */
            gemm_f32(gemm, GEMM_N, GEMM_T, (int)M, (int)K, (int)N, g, (int)N, B + ob * K * N,
                     (int)N, 1, dx[0] + oa * M * K, (int)K);
        if (dx[1]) /* [K][N] += a^T [K][M] x g */
            gemm_f32(gemm, GEMM_T, GEMM_N, (int)K, (int)N, (int)M, A + oa * M * K, (int)K, g,
                     (int)N, 1, dx[1] + ob * K * N, (int)N);
        idx_next(idx, bs.d, bs.rank - 1);
    }
}

static void concat_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                            int n_out, const float *dy, float *const *dx, float *scratch,
                            gemm_ws *gemm)
{
    const shape_params *p = pp;
    size_t outer = 1;
    for (int k = 0; k < (int)p->len; k++)
        outer *= (size_t)out[0].shape.d[k];
    const size_t orow = op_numel(&out[0].shape) / outer;
    size_t off = 0;
    for (int i = 0; i < n_in; i++) {
        const size_t row = op_numel(&in[i].shape) / outer;
        if (dx[i])
            for (size_t o = 0; o < outer; o++)
                for (size_t j = 0; j < row; j++)
                    dx[i][o * row + j] += dy[o * orow + off + j];
        off += row;
    }
}

static void transpose_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                               int n_out, const float *dy, float *const *dx, float *scratch,
                               gemm_ws *gemm)
{
    const shape_params *p = pp;
    const op_shape *o = &out[0].shape;
    const int R = o->rank;
    const size_t n = op_numel(o);
    int64_t ist[OP_MAX_RANK], st[OP_MAX_RANK], idx[OP_MAX_RANK] = {0};
    strides_of(&in[0].shape, ist);
    for (int i = 0; i < R; i++)
        st[i] = ist[p->v[i]];
    if (!dx[0] || n == 0)
        return;
    const int64_t inner = R ? o->d[R - 1] : 1, is = R ? st[R - 1] : 0;
    for (size_t e = 0; e < n; e += (size_t)inner) {
        int64_t off = 0;
        for (int k = 0; k < R - 1; k++)
            off += idx[k] * st[k];
        for (int64_t i = 0; i < inner; i++)
            dx[0][off + i * is] += dy[e + (size_t)i];
        idx_next(idx, o->d, R - 2);
    }
}

static void gather_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                            int n_out, const float *dy, float *const *dx, float *scratch,
                            gemm_ws *gemm)
{
    const shape_params *p = pp;
    const op_shape *s = &in[0].shape;
    const int axis = (int)p->len;
    const size_t ni = op_numel(&in[1].shape);
    size_t outer = 1, inner = 1;
    for (int k = 0; k < axis; k++)
        outer *= (size_t)s->d[k];
    for (int k = axis + 1; k < s->rank; k++)
        inner *= (size_t)s->d[k];
    const int64_t *iv = in[1].data, dim = s->d[axis];
    if (!dx[0])
        return;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < ni; i++, dy += inner) {
            int64_t k = iv[i] < 0 ? iv[i] + dim : iv[i];
            float *d = dx[0] + (o * (size_t)dim + (size_t)k) * inner;
            for (size_t j = 0; j < inner; j++)
                d[j] += dy[j];
        }
}

/* Slice and Pad: each output element's gradient to the input element it
 * copies (none for Pad's constant). */
static void slice_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                           int n_out, const float *dy, float *const *dx, float *scratch,
                           gemm_ws *gemm)
{
    const slice_params *p = pp;
    const op_shape *o = &out[0].shape;
    const size_t n = op_numel(o);
    int64_t ist[OP_MAX_RANK], idx[OP_MAX_RANK] = {0};
    strides_of(&in[0].shape, ist);
    if (!dx[0])
        return;
    for (size_t e = 0; e < n; e++) {
        const int64_t off = slice_source(p, &in[0].shape, ist, idx);
        if (off >= 0)
            dx[0][off] += dy[e];
        idx_next(idx, o->d, o->rank - 1);
    }
}

/* Softmax: dx = y (dy - sum_j dy_j y_j) along the axis, the sum in double. */
static void softmax_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                             int n_out, const float *dy, float *const *dx, float *scratch,
                             gemm_ws *gemm)
{
    const norm_params *p = pp;
    const op_shape *s = &in[0].shape;
    size_t outer = 1, len = 1, inner = 1;
    for (int k = 0; k < s->rank; k++) {
        size_t d = (size_t)s->d[k];
        if (k < p->axis)
            outer *= d;
        else if (k == p->axis || p->opset < 13)
            len *= d;
        else
            inner *= d;
    }
    const float *y = out[0].data;
    if (!dx[0])
        return;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            const size_t base = o * len * inner + i;
            double dot = 0.0;
            for (size_t j = 0; j < len; j++)
                dot += (double)dy[base + j * inner] * y[base + j * inner];
            const float df = (float)dot;
            for (size_t j = 0; j < len; j++)
                dx[0][base + j * inner] += y[base + j * inner] * (dy[base + j * inner] - df);
        }
}

static void reducemean_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                                int n_out, const float *dy, float *const *dx, float *scratch,
                                gemm_ws *gemm)
{
    const norm_params *p = pp;
    const op_shape *s = &in[0].shape;
    const int R = s->rank;
    int64_t st[OP_MAX_RANK], idx[OP_MAX_RANK] = {0};
    strides_of(s, st);
    int ka[OP_MAX_RANK], ra[OP_MAX_RANK], nk = 0, nr = 0;
    size_t cnt = 1, nout = 1;
    for (int i = 0; i < R; i++) {
        if (p->red[i])
            ra[nr++] = i, cnt *= (size_t)s->d[i];
        else
            ka[nk++] = i, nout *= (size_t)s->d[i];
    }
    if (!dx[0])
        return;
    for (size_t o = 0; o < nout; o++) {
        int64_t base = 0;
        for (int k = 0; k < nk; k++)
            base += idx[ka[k]] * st[ka[k]];
        const float g = (float)((double)dy[o] / (double)cnt);
        int64_t ridx[OP_MAX_RANK] = {0};
        for (size_t r = 0; r < cnt; r++) {
            int64_t off = base;
            for (int k = 0; k < nr; k++)
                off += ridx[k] * st[ra[k]];
            dx[0][off] += g;
            for (int k = nr - 1; k >= 0; k--) {
                if (++ridx[k] < s->d[ra[k]])
                    break;
                ridx[k] = 0;
            }
        }
        for (int k = nk - 1; k >= 0; k--) {
            if (++idx[ka[k]] < s->d[ka[k]])
                break;
            idx[ka[k]] = 0;
        }
    }
}

/*
 * LayerNormalization: with xh = (x - m) inv and g = dy scale,
 * dx = inv (g - mean(g) - xh mean(g xh)); m and inv recomputed as forward.
 */
static void layernorm_backward(const void *pp, const op_tensor *in, int n_in, const op_tensor *out,
                               int n_out, const float *dy, float *const *dx, float *scratch,
                               gemm_ws *gemm)
{
    const norm_params *p = pp;
    const op_shape *s = &in[0].shape;
    size_t rows = 1, len = 1;
    for (int k = 0; k < s->rank; k++)
        *(k < p->axis ? &rows : &len) *= (size_t)s->d[k];
    const float *x = in[0].data, *sc = in[1].data;
    if (!dx[0])
        return;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * len, *gr = dy + r * len;
        float *dr = dx[0] + r * len;
        double m = 0.0, v = 0.0;
        for (size_t j = 0; j < len; j++)
            m += xr[j];
        m /= (double)len;
        for (size_t j = 0; j < len; j++)
            v += (xr[j] - m) * (xr[j] - m);
        v /= (double)len;
        const double inv = 1.0 / sqrt(v + p->eps);
        double mg = 0.0, mgx = 0.0;
        for (size_t j = 0; j < len; j++) {
            const double g = (double)gr[j] * sc[j];
            mg += g;
            mgx += g * ((xr[j] - m) * inv);
        }
        mg /= (double)len, mgx /= (double)len;
        for (size_t j = 0; j < len; j++) {
            const double g = (double)gr[j] * sc[j], xh = (xr[j] - m) * inv;
            dr[j] += (float)(inv * (g - mg - xh * mgx));
        }
    }
}

/* ---- the loss: softmax cross-entropy ---------------------------------- */

double op_xent_grad(const float *z, int K, int l, double alpha, int rescale, float *d, int *exp2)
{
    int am = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[am])
            am = k;
    const double m = z[am];
    double m2 = -INFINITY; /* the largest logit but the label's */
    for (int k = 0; k < K; k++)
        if (k != l && z[k] > m2)
            m2 = z[k];
    double rest = 0, not_l = 0; /* sums of e^(z_k - m) over k != argmax, of e^(z_k - m2) over k != l */
    for (int k = 0; k < K; k++) {
        if (k != am)
            rest += exp((double)z[k] - m);
        if (k != l)
            not_l += exp((double)z[k] - m2);
    }
    /* in logs (nothing underflows however far the softmax saturates): the label's
     * entry -not_l e^(m2 - m) / S is the largest in size, the others e^(z_k - m) / S */
    const double logS = log1p(rest), big = log(not_l) + (m2 - m) - logS;
    double frac = 0.0; /* rescaled: big + the shift, in [-ln 2, 0) */
    *exp2 = 0;
    const int scaled = K > 1 && rescale && big < log(OP_TINY_GRAD);
    if (scaled) {
        const double e = floor(big / M_LN2) + 1; /* the entry times 2^-e in [0.5, 1) */
        *exp2 = e < -OP_MAX_GRAD_EXP ? OP_MAX_GRAD_EXP : (int)-e;
        frac = big - e * M_LN2;
        frac = frac < -M_LN2 ? -M_LN2 : frac > 0 ? 0 : frac; /* rounding, at huge gaps */
    }
    const double lnot = log(not_l);
    double mean_gap = 0; /* mean over k of m - z_k (label smoothing's loss) */
    for (int k = 0; k < K; k++) {
        /* rescaled, each entry relative to the label's: e^(z_k - m2) / not_l, from the
         * logits' differences alone (exact however large the gaps; no shift of 2^e added
         * to or cancelled from a logit of 1e13) */
        const double v = k == l ? -exp(scaled ? frac : big)
                       : scaled ? exp((double)z[k] - m2 - lnot + frac)
                                : exp((double)z[k] - m - logS);
        const double smooth = alpha ? alpha * ((k == l) - 1.0 / K) * ldexp(1.0, *exp2) : 0.0;
        d[k] = K < 2 ? 0.0f : (float)(v + smooth);
        mean_gap += (m - (double)z[k]) / K;
    }
    return (1.0 - alpha) * (m - z[l]) + alpha * mean_gap + logS;
}

/* ---- the table -------------------------------------------------------- */

static const op_def table[] = {
    {"BatchNormalization", "epsilon,momentum,training_mode", 5, 5, 1, 3, 0, 0, sizeof(bn_params),
     bn_parse, bn_infer, NULL, bn_forward,
     bn_backward, NULL, 0, OPB_IN(0)},
    {"Relu", "", 1, 1, 1, 1, 0, 0, sizeof(unary_params), relu_parse, unary_infer, NULL, unary_forward,
     unary_backward, NULL, OPB_OUT, OPB_IN(0)},
    {"Sigmoid", "", 1, 1, 1, 1, 0, 0, sizeof(unary_params), sigmoid_parse, unary_infer, NULL,
     unary_forward,
     unary_backward, NULL, OPB_OUT, OPB_IN(0)},
    {"HardSigmoid", "alpha,beta", 1, 1, 1, 1, 0, 6, sizeof(unary_params), hardsigmoid_parse,
     unary_infer, NULL, unary_forward,
     unary_backward, NULL, OPB_IN(0), OPB_IN(0)},
    {"HardSwish", "", 1, 1, 1, 1, 0, 14, sizeof(unary_params), hardswish_parse, unary_infer, NULL,
     unary_forward,
     unary_backward, NULL, OPB_IN(0), OPB_IN(0)},
    {"Erf", "", 1, 1, 1, 1, 0, 0, sizeof(unary_params), erf_parse, unary_infer, NULL, unary_forward,
     unary_backward, NULL, OPB_IN(0), OPB_IN(0)},
    {"Sqrt", "", 1, 1, 1, 1, 0, 0, sizeof(unary_params), sqrt_parse, unary_infer, NULL, unary_forward,
     unary_backward, NULL, OPB_OUT, OPB_IN(0)},
    {"Tanh", "", 1, 1, 1, 1, 0, 0, sizeof(unary_params), tanh_parse, unary_infer, NULL, unary_forward,
     unary_backward, NULL, OPB_OUT, OPB_IN(0)},
    {"Exp", "", 1, 1, 1, 1, 0, 0, sizeof(unary_params), exp_parse, unary_infer, NULL, unary_forward,
     unary_backward, NULL, OPB_OUT, OPB_IN(0)},
    {"Neg", "", 1, 1, 1, 1, 0, 0, sizeof(unary_params), neg_parse, unary_infer, NULL, unary_forward,
     unary_backward, NULL, 0, OPB_IN(0)},
    {"Abs", "", 1, 1, 1, 1, 0, 0, sizeof(unary_params), abs_parse, unary_infer, NULL, unary_forward,
     unary_backward, NULL, OPB_IN(0), OPB_IN(0)},
    {"Clip", "", 1, 3, 1, 1, 0, 0, sizeof(unary_params), clip_parse, unary_infer, NULL, unary_forward,
     unary_backward, NULL, OPB_IN(0), OPB_IN(0)},
    {"Identity", "", 1, 1, 1, 1, OPF_ALIAS, 0, sizeof(unary_params), identity_parse, unary_infer, NULL,
     unary_forward,
     unary_backward, NULL, 0, OPB_IN(0)},
    {"Dropout", "seed,ratio", 1, 3, 1, 2, OPF_ALIAS, 0, sizeof(unary_params), dropout_parse, unary_infer,
     NULL, unary_forward,
     unary_backward, NULL, 0, OPB_IN(0)},
    {"Add", "", 2, 2, 1, 1, 0, 0, sizeof(binary_params), add_parse, binary_infer, NULL, binary_forward,
     binary_backward, NULL, 0, OPB_IN(0) | OPB_IN(1)},
    {"Sub", "", 2, 2, 1, 1, 0, 0, sizeof(binary_params), sub_parse, binary_infer, NULL, binary_forward,
     binary_backward, NULL, 0, OPB_IN(0) | OPB_IN(1)},
    {"Mul", "", 2, 2, 1, 1, 0, 0, sizeof(binary_params), mul_parse, binary_infer, NULL, binary_forward,
     binary_backward, NULL, OPB_IN(0) | OPB_IN(1), OPB_IN(0) | OPB_IN(1)},
    {"Div", "", 2, 2, 1, 1, 0, 0, sizeof(binary_params), div_parse, binary_infer, NULL, binary_forward,
     binary_backward, NULL, OPB_IN(1) | OPB_OUT, OPB_IN(0) | OPB_IN(1)},
    {"Pow", "", 2, 2, 1, 1, 0, 0, sizeof(binary_params), pow_parse, binary_infer, NULL, binary_forward,
     binary_backward, NULL, OPB_IN(0) | OPB_IN(1) | OPB_OUT, OPB_IN(0) | OPB_IN(1)},
    {"Gemm", "alpha,beta,transA,transB", 2, 3, 1, 1, 0, 0, sizeof(gemm_params), gemm_parse,
     gemm_infer, gemm_fwd_scratch, gemm_forward,
     gemm_backward, gemm_bwd_scratch, OPB_IN(1), OPB_IN(0) | OPB_IN(2)},
    {"MatMul", "", 2, 2, 1, 1, 0, 0, sizeof(gemm_params), NULL, matmul_infer, NULL, matmul_forward,
     matmul_backward, NULL, OPB_IN(0) | OPB_IN(1), OPB_IN(0) | OPB_IN(1)},
    {"Flatten", "axis", 1, 1, 1, 1, OPF_ALIAS, 0, sizeof(shape_params), flatten_parse, flatten_infer,
     NULL, copy_forward,
     accum_backward, NULL, 0, OPB_IN(0)},
    {"Reshape", "allowzero", 2, 2, 1, 1, OPF_ALIAS, 0, sizeof(shape_params), reshape_parse,
     reshape_infer, NULL, copy_forward,
     accum_backward, NULL, 0, OPB_IN(0)},
    {"Squeeze", "axes", 1, 2, 1, 1, OPF_ALIAS, 0, sizeof(shape_params), squeeze_parse, squeeze_infer,
     NULL, copy_forward,
     accum_backward, NULL, 0, OPB_IN(0)},
    {"Unsqueeze", "axes", 1, 2, 1, 1, OPF_ALIAS, 0, sizeof(shape_params), squeeze_parse,
     unsqueeze_infer, NULL, copy_forward,
     accum_backward, NULL, 0, OPB_IN(0)},
    {"Shape", "start,end", 1, 1, 1, 1, OPF_SHAPE_ONLY, 0, sizeof(shape_params), shape_parse,
     shape_infer, NULL, shape_forward,
     NULL, NULL, 0, 0},
    {"Concat", "axis", 1, 64, 1, 1, 0, 0, sizeof(shape_params), concat_parse, concat_infer, NULL,
     concat_forward,
     concat_backward, NULL, 0, OPB_ALL},
    {"Gather", "axis", 2, 2, 1, 1, 0, 0, sizeof(shape_params), axis_parse, gather_infer, NULL,
     gather_forward,
     gather_backward, NULL, 0, OPB_IN(0)},
    {"Transpose", "perm", 1, 1, 1, 1, 0, 0, sizeof(shape_params), transpose_parse, transpose_infer,
     NULL, transpose_forward,
     transpose_backward, NULL, 0, OPB_IN(0)},
    {"Slice", "", 3, 5, 1, 1, 0, 0, sizeof(slice_params), NULL, slice_infer, NULL, slice_forward,
     slice_backward, NULL, 0, OPB_IN(0)},
    {"Pad", "mode", 2, 3, 1, 1, 0, 0, sizeof(slice_params), pad_parse, pad_infer, NULL, pad_forward,
     slice_backward, NULL, 0, OPB_IN(0)},
    {"Softmax", "axis", 1, 1, 1, 1, 0, 0, sizeof(norm_params), softmax_parse, softmax_infer, NULL,
     softmax_forward,
     softmax_backward, NULL, OPB_OUT, OPB_IN(0)},
    {"ReduceMean", "axes,keepdims", 1, 1, 1, 1, 0, 0, sizeof(norm_params), reducemean_parse,
     reducemean_infer, NULL, reducemean_forward,
     reducemean_backward, NULL, 0, OPB_IN(0)},
    {"LayerNormalization", "axis,epsilon,stash_type", 2, 3, 1, 3, 0, 17, sizeof(norm_params),
     layernorm_parse, layernorm_infer, NULL, layernorm_forward,
     layernorm_backward, NULL, OPB_IN(0) | OPB_IN(1), OPB_IN(0)},
    {"Cast", "to", 1, 1, 1, 1, 0, 0, sizeof(cast_params), cast_parse, cast_infer, NULL, cast_forward,
     accum_backward, NULL, 0, OPB_IN(0)},
    {"ConstantOfShape", "value", 1, 1, 1, 1, 0, 0, sizeof(fill_params), cos_parse, cos_infer, NULL,
     cos_forward,
     NULL, NULL, 0, 0},
    {"Expand", "", 2, 2, 1, 1, 0, 0, sizeof(fill_params), NULL, expand_infer, NULL, expand_forward,
     expand_backward, NULL, 0, OPB_IN(0)},
    {"Where", "", 3, 3, 1, 1, 0, 0, sizeof(fill_params), NULL, where_infer, NULL, where_forward,
     where_backward, NULL, OPB_IN(0), OPB_IN(1) | OPB_IN(2)},
    {"Equal", "", 2, 2, 1, 1, 0, 0, sizeof(fill_params), NULL, equal_infer, NULL, equal_forward,
     NULL, NULL, 0, 0},
};

/* ---- weight gradients (ops.h, op_backward_params) --------------------- */

/*
 * Gemm: d op(B) = alpha op(A)^T dY (one product over the batch's rows for
 * alpha 1 and A not transposed, else in double), dC += beta dY summed over
 * C's broadcast.
 */
static void gemm_backward_params(const void *pp, const op_tensor *in, int n_in,
                                 const op_tensor *out, int n_out, const float *dy,
                                 float *const *dw, float *scratch, gemm_ws *gemm)
{
    const gemm_params *p = pp;
    const float *A = in[0].data;
    const int64_t M = p->ta ? in[0].shape.d[1] : in[0].shape.d[0], K = p->K, N = p->N;
    if (dw[1] && !p->ta && p->alpha == 1.0f) {
        if (p->tb) /* B [N][K] += dY^T [N][M] x A [M][K] */
            gemm_f32(gemm, GEMM_T, GEMM_N, (int)N, (int)K, (int)M, dy, (int)N, A, (int)K, 1,
                     dw[1], (int)K);
        else /* B [K][N] += A^T [K][M] x dY [M][N] */
            gemm_f32(gemm, GEMM_T, GEMM_N, (int)K, (int)N, (int)M, A, (int)K, dy, (int)N, 1,
                     dw[1], (int)N);
    } else if (dw[1])
        for (int64_t k = 0; k < K; k++)
            for (int64_t n = 0; n < N; n++) {
                double sum = 0;
                for (int64_t m = 0; m < M; m++)
                    sum += (double)(p->ta ? A[k * M + m] : A[m * K + k]) * dy[m * N + n];
                dw[1][p->tb ? n * K + k : k * N + n] += (float)(p->alpha * sum);
            }
    if (n_in > 2 && dw[2]) {
        int64_t cs[2] = {0, 0};
        op_shape o = {2, {M, N}};
        bcast_strides(&in[2], &o, cs);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                dw[2][i * cs[0] + j * cs[1]] += p->beta * dy[i * N + j];
    }
}

static op_epilogue *gemm_epilogue(void *pp) { return &((gemm_params *)pp)->epi; }

static const op_hooks HOOKS[] = {
    {"Gemm", NULL, NULL, gemm_backward_params, OPB_IN(1) | OPB_IN(2), OPB_IN(0), NULL,
     gemm_epilogue, NULL},
};

static const op_hooks *hooks_of(const op_def *d)
{
    int n;
    const op_hooks *conv = opc_hooks(&n);
    for (size_t i = 0; d && i < sizeof HOOKS / sizeof HOOKS[0]; i++)
        if (!strcmp(HOOKS[i].op, d->name))
            return &HOOKS[i];
    for (int i = 0; d && i < n; i++)
        if (!strcmp(conv[i].op, d->name))
            return &conv[i];
    return NULL;
}

int op_prepare(const op_def *d, void *params, const op_tensor *in, int n_in, char *err,
               size_t errsz)
{
    const op_hooks *h = hooks_of(d);
    return h && h->prepare ? h->prepare(params, in, n_in, err, errsz) : ADJ_OK;
}

void op_release(const op_def *d, void *params)
{
    const op_hooks *h = hooks_of(d);
    if (h && h->release && params)
        h->release(params);
}

int op_prepared_unread(const op_def *d, const void *params)
{
    const op_hooks *h = hooks_of(d);
    return h && h->unread && params ? h->unread(params) : 0;
}

int op_params_grad(const op_def *d, int i)
{
    const op_hooks *h = hooks_of(d);
    return h && h->backward_params && i >= 0 && i < 8 && (h->params_inputs & OPB_IN(i));
}

int op_params_reads(const op_def *d, int i)
{
    const op_hooks *h = hooks_of(d);
    return h && h->backward_params && i >= 0 && i < 8 && (h->params_reads & OPB_IN(i));
}

size_t op_params_scratch(const op_def *d, const void *params, const op_tensor *in, int n_in,
                         const op_tensor *out)
{
    const op_hooks *h = hooks_of(d);
    return h && h->params_scratch ? h->params_scratch(params, in, n_in, out) : 0;
}

void op_backward_params(const op_def *d, const void *params, const op_tensor *in, int n_in,
                        const op_tensor *out, int n_out, const float *dy, float *const *dw,
                        float *scratch, gemm_ws *gemm)
{
    const op_hooks *h = hooks_of(d);
    if (h && h->backward_params)
        h->backward_params(params, in, n_in, out, n_out, dy, dw, scratch, gemm);
}

op_epilogue *op_epilogue_of(const op_def *d, void *params)
{
    const op_hooks *h = hooks_of(d);
    return h && h->epilogue && params ? h->epilogue(params) : NULL;
}

int op_epilogue_act(const op_def *d, const void *params, op_epilogue *e)
{
    const unary_params *p = params;
    if (!d || !params || (strcmp(d->name, "Relu") && strcmp(d->name, "Clip")))
        return 0;
    *e = (op_epilogue){p->kind == U_CLIP ? OP_ACT_CLIP : OP_ACT_RELU, p->lo, p->hi, 0};
    return 1;
}

/*
 * y[i] = act(x[i] (+ b) (+ r[i])) for i < n, the float operations of the
 * unfused nodes in their order (the activations as unary_forward computes
 * them); kind's bits (EPI_*) constants where the callers inline it, so that
 * each loop is branch-free and vectorised. x may be y (in place); the
 * bounds are locals (a store to y could alias e).
 */
enum { EPI_BIAS = 1, EPI_RES = 2, EPI_RELU = 4, EPI_CLIP = 8 };

static inline __attribute__((always_inline)) void epi_loop(int kind, float lo, float hi,
                                                           const float *x, float b,
                                                           const float *restrict r, float *y,
                                                           size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = kind & EPI_BIAS ? x[i] + b : x[i];
        if (kind & EPI_RES)
            v = v + r[i];
        if (kind & EPI_RELU)
            v = v > 0.0f ? v : 0.0f;
        if (kind & EPI_CLIP)
            v = v < lo ? lo : v > hi ? hi : v;
        y[i] = v;
    }
}

/* epi_loop over the 12 kinds, each with its constants (compiled once per build below). */
static inline __attribute__((always_inline)) void epi_any(int kind, float lo, float hi,
                                                          const float *x, float b, const float *r,
                                                          float *y, size_t n)
{
#define EPI_KIND(k)                                                                              \
    case k:                                                                                      \
        epi_loop(k, lo, hi, x, b, r, y, n);                                                      \
        return;
#define EPI_ACTS(a) EPI_KIND(a) EPI_KIND(a | EPI_BIAS) EPI_KIND(a | EPI_RES)                      \
    EPI_KIND(a | EPI_BIAS | EPI_RES)
    switch (kind) {
        EPI_ACTS(0) EPI_ACTS(EPI_RELU) EPI_ACTS(EPI_CLIP)
    }
#undef EPI_ACTS
#undef EPI_KIND
}

#if defined(__x86_64__) || defined(__i386__)
static __attribute__((target("avx2"))) void epi_avx2(int kind, float lo, float hi, const float *x,
                                                     float b, const float *r, float *y, size_t n)
{
    epi_any(kind, lo, hi, x, b, r, y, n);
}
#else
#define epi_avx2 epi_base
#endif

int op_have_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static void epi_base(int kind, float lo, float hi, const float *x, float b, const float *r,
                     float *y, size_t n)
{
    epi_any(kind, lo, hi, x, b, r, y, n);
}

void op_epilogue_bias_run(const op_epilogue *e, const float *x, const float *b, const float *r,
                          float *y, size_t n)
{
    const int kind = (b ? EPI_BIAS : 0) | (r ? EPI_RES : 0) |
                     (e && e->act == OP_ACT_RELU ? EPI_RELU : 0) |
                     (e && e->act == OP_ACT_CLIP ? EPI_CLIP : 0);
    if (kind == 0 && x == y)
        return;
    (op_have_avx2() ? epi_avx2 : epi_base)(kind, e ? e->lo : 0.0f, e ? e->hi : 0.0f, x,
                                            b ? *b : 0.0f, r, y, n);
}

void op_epilogue_run(const op_epilogue *e, float *y, const float *r, size_t n)
{
    op_epilogue_bias_run(e, y, NULL, r, y, n);
}

/* op_epilogue_backward's parts (EW_PART values each). */
typedef struct {
    const op_epilogue *e;
    const float *dy;
    float *dg, *dr;
    const float *ky; /* the kept (fused) output */
    size_t n;
} epi_job;

/*
 * The backward's values lo .. hi-1, in one pass: dg[i] = 0 + (act passes
 * y[i] ? dy[i] : 0) (Relu as ew_part: y > 0; Clip as unary_backward's,
 * from the output; none: an Add alone, its gradient into the Conv's zeroed
 * buffer, 0 + dy, no -0), then dr[i] += dg[i] (as Add's) with EPI_RES. dg
 * may be dy (in place: element i reads and writes i only). Eight at a time
 * in vectors, the sum before the mask and the mask an and (the same values:
 * 0 + 0 and a cleared float are +0): written as a select, GCC keeps a
 * branch per element (it will not move the sum out of it).
 */
typedef float epi_v __attribute__((vector_size(8 * sizeof(float))));
typedef int32_t epi_k __attribute__((vector_size(8 * sizeof(float))));

static inline __attribute__((always_inline)) void epi_back_loop(int kind, float lo, float hi,
                                                                const float *restrict y,
                                                                const float *dy, float *dg,
                                                                float *restrict dr, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        epi_v d, v = {0}, r;
        memcpy(&d, dy + i, sizeof d);
        if (kind & (EPI_RELU | EPI_CLIP)) /* y: NULL without an activation */
            memcpy(&v, y + i, sizeof v);
        epi_k keep = (epi_k){0} - 1;
        if (kind & EPI_RELU)
            keep = v > 0.0f;
        if (kind & EPI_CLIP)
            keep = (v > lo) & (v < hi);
        const epi_v g = (epi_v)((epi_k)(0.0f + d) & keep);
        memcpy(dg + i, &g, sizeof g);
        if (kind & EPI_RES) {
            memcpy(&r, dr + i, sizeof r);
            r += g;
            memcpy(dr + i, &r, sizeof r);
        }
    }
    for (; i < n; i++) {
        float g = dy[i];
        if (kind & EPI_RELU)
            g = y[i] > 0.0f ? g : 0.0f;
        if (kind & EPI_CLIP)
            g = y[i] > lo && y[i] < hi ? g : 0.0f;
        g = 0.0f + g;
        dg[i] = g;
        if (kind & EPI_RES)
            dr[i] += g;
    }
}

static inline __attribute__((always_inline)) void epi_back_any(int kind, float lo, float hi,
                                                               const float *y, const float *dy,
                                                               float *dg, float *dr, size_t n)
{
#define EPI_KIND(k)                                                                              \
    case k:                                                                                      \
        epi_back_loop(k, lo, hi, y, dy, dg, dr, n);                                              \
        return;
    switch (kind) {
        EPI_KIND(0) EPI_KIND(EPI_RES) EPI_KIND(EPI_RELU) EPI_KIND(EPI_RELU | EPI_RES)
        EPI_KIND(EPI_CLIP) EPI_KIND(EPI_CLIP | EPI_RES)
    }
#undef EPI_KIND
}

#if defined(__x86_64__) || defined(__i386__)
static __attribute__((target("avx2"))) void epi_back_avx2(int kind, float lo, float hi,
                                                          const float *y, const float *dy,
                                                          float *dg, float *dr, size_t n)
{
    epi_back_any(kind, lo, hi, y, dy, dg, dr, n);
}
#else
#define epi_back_avx2 epi_back_base
#endif

static void epi_back_base(int kind, float lo, float hi, const float *y, const float *dy,
                          float *dg, float *dr, size_t n)
{
    epi_back_any(kind, lo, hi, y, dy, dg, dr, n);
}

static void epi_back_part(void *arg, int part)
{
    const epi_job *j = arg;
    const size_t lo = (size_t)part * EW_PART, hi = lo + EW_PART < j->n ? lo + EW_PART : j->n;
    const int kind = (j->dr ? EPI_RES : 0) | (j->e->act == OP_ACT_RELU ? EPI_RELU : 0) |
                     (j->e->act == OP_ACT_CLIP ? EPI_CLIP : 0);
    (op_have_avx2() ? epi_back_avx2 : epi_back_base)(kind, j->e->lo, j->e->hi, j->ky + lo,
                                                      j->dy + lo, j->dg + lo,
                                                      j->dr ? j->dr + lo : NULL, hi - lo);
}

void op_epilogue_backward(gemm_ws *gemm, const op_epilogue *e, const float *y, const float *dy,
                          float *dg, float *dr, size_t n)
{
    epi_job j = {.e = e, .ky = y, .dy = dy, .dg = dg, .dr = dr, .n = n};
    gemm_parallel(gemm, (int)((n + EW_PART - 1) / EW_PART), epi_back_part, &j);
}

const op_def *op_find(const char *name)
{
    int n;
    const op_def *conv = opc_rows(&n);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(table[i].name, name))
            return &table[i];
    for (int i = 0; i < n; i++)
        if (!strcmp(conv[i].name, name))
            return &conv[i];
    return NULL;
}

int op_grad_input(const op_def *d, int i)
{
    return d->backward && (d->bwd_inputs == OPB_ALL || (i < 16 && (d->bwd_inputs >> i & 1)));
}

int op_bwd_reads(const op_def *d, int i)
{
    return i < 0 ? (d->bwd_reads & OPB_OUT) != 0 : i < 16 && (d->bwd_reads >> i & 1);
}

const op_def *op_row(int i)
{
    int n;
    const op_def *conv = opc_rows(&n);
    const int own = (int)(sizeof table / sizeof table[0]);
    return i < 0 ? NULL : i < own ? &table[i] : i < own + n ? &conv[i - own] : NULL;
}
