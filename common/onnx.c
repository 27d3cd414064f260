/*
 * onnx.c - the ONNX loader (see onnx.h): the message as onnx_wire.h unpacks
 * it (protobuf-c's generated onnx.pb-c.h, from Debian's onnx.proto at build
 * time, without the weights' bytes) into gr_* calls.
 */
#include "onnx.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "onnx_wire.h"

#define MAX_ELEMS ((size_t)1 << 40)

typedef struct {
    char *loc;
    const unsigned char *addr;
    size_t len;
} ext_map;

typedef struct {
    const char *base_dir; /* NULL: external data refused */
    gr_graph *g;          /* mappings go to it */
    ext_map maps[64];
    int n_maps;
    int fixed_batch;      /* 0: the input's first dimension is the batch; else fixed to this */
    const unsigned char *map; /* the model file's mapping, which the graph is to keep (raw_data
                               * lying in it is used in place); NULL: a borrowed buffer */
    size_t map_len;
} load_state;

/* Nonzero if [p, p + n) lies in the model file's mapping. */
static int in_map(const load_state *st, const void *p, size_t n)
{
    const uintptr_t a = (uintptr_t)p, lo = (uintptr_t)st->map;
    return st->map && a >= lo && n <= st->map_len && a - lo <= st->map_len - n;
}

/* Chunks of a copy out of the mapping: its pages are dropped behind each one. */
#define COPY_CHUNK ((size_t)8 << 20)

/*
 * Drops the pages of the model file's mapping that lie wholly in [p, p + n)
 * from the process (they are the file's: read again from it if touched),
 * when p is in the mapping; else nothing.
 */
static void release_pages(const load_state *st, const void *p, size_t n)
{
    if (!in_map(st, p, n))
        return;
    const uintptr_t a = (uintptr_t)p, pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t s = (a + pg - 1) / pg * pg, e = (a + n) / pg * pg;
    if (e > s)
        madvise((void *)s, e - s, MADV_DONTNEED);
}

/* memcpy of n bytes, in chunks whose source pages release_pages drops. */
static void copy_out(const load_state *st, void *dst, const void *src, size_t n)
{
    for (size_t o = 0; o < n; o += COPY_CHUNK) {
        const size_t k = n - o < COPY_CHUNK ? n - o : COPY_CHUNK;
        memcpy((char *)dst + o, (const char *)src + o, k);
        release_pages(st, (const char *)src + o, k);
    }
}

static const char *type_name(int t)
{
    switch (t) {
    case 1: return "float";
    case 2: return "uint8";
    case 3: return "int8";
    case 4: return "uint16";
    case 5: return "int16";
    case 6: return "int32";
    case 7: return "int64";
    case 8: return "string";
    case 9: return "bool";
    case 10: return "float16";
    case 11: return "double";
    case 12: return "uint32";
    case 13: return "uint64";
    case 16: return "bfloat16";
    default: return "unknown";
    }
}

/* Bytes per element of a file type we read, 0 otherwise. */
static size_t file_elem_size(int t)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return 1;
    default: return 0;
    }
}

static void *alloc64(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64))
        return NULL;
    return p;
}

/* Widens n elements of file type t at src into a new int64 (or float) array. */
static void *widen(const load_state *st, const void *src, size_t n, int t)
{
    const size_t es = t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? 4 : 8;
    void *d = alloc64(n * es);
    if (!d)
        return NULL;
    if (t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || t == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        copy_out(st, d, src, n * es);
    else if (t == ONNX__TENSOR_PROTO__DATA_TYPE__INT32)
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, (const char *)src + 4 * i, 4);
            ((int64_t *)d)[i] = v;
        }
    else /* bool */
        for (size_t i = 0; i < n; i++)
            ((int64_t *)d)[i] = ((const unsigned char *)src)[i] != 0;
    return d;
}

/* Maps base_dir/loc once per load. */
static int ext_file(load_state *st, const char *tname, const char *loc, const unsigned char **addr,
                    size_t *len, char *err, size_t errsz)
{
    for (int i = 0; i < st->n_maps; i++)
        if (!strcmp(st->maps[i].loc, loc)) {
            *addr = st->maps[i].addr, *len = st->maps[i].len;
            return 0;
        }
    if (!st->base_dir || !st->g)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "tensor '%s': external data '%s' without a model folder", tname, loc);
    if (loc[0] == '/' || strstr(loc, "..") || !*loc)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                        "tensor '%s': external data location '%s' is outside the model's folder",
                        tname, loc);
    if (st->n_maps == (int)(sizeof st->maps / sizeof st->maps[0]))
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "more than 64 external data files");
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", st->base_dir, loc) >= sizeof path)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "tensor '%s': path too long", tname);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return adj_fail(err, errsz, ADJ_ERR_IO, "tensor '%s': external data %s: %s", tname, path,
                        strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return adj_fail(err, errsz, ADJ_ERR_IO, "tensor '%s': external data %s is not a file",
                        tname, path);
    }
    void *m = NULL;
    size_t n = (size_t)sb.st_size;
    if (n) {
        m = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return adj_fail(err, errsz, ADJ_ERR_IO, "tensor '%s': cannot map %s: %s", tname, path,
                            strerror(errno));
        }
    }
    close(fd);
    char *lc = strdup(loc);
    if (!lc) {
        if (m)
            munmap(m, n);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    if (m && gr_add_mapping(st->g, m, n, err, errsz)) {
        free(lc);
        return ADJ_ERR_NOMEM;
    }
    st->maps[st->n_maps++] = (ext_map){lc, m, n};
    *addr = m, *len = n;
    return 0;
}

static int parse_u64(const char *s, size_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *v = (size_t)x;
    return 0;
}

/*
 * A TensorProto's type, shape and data. *data is new (hold GR_DATA_SEALED:
 * the loader's copy, which only the graph reads) or points into a mapping held
 * by the graph (GR_DATA_EXTERN).
 */
static int read_tensor(load_state *st, const Onnx__TensorProto *tp, op_dtype *dtype,
                       op_shape *shape, void **data, int *hold, char *err, size_t errsz)
{
    const char *tn = tp->name ? tp->name : "";
    const int t = tp->has_data_type ? tp->data_type : 0;
    const size_t es = file_elem_size(t);
    if (!es)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "tensor '%s' has type %s (only float, int64, int32, bool)", tn, type_name(t));
    if (tp->n_dims > OP_MAX_RANK)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "tensor '%s' has rank %zu (at most %d)", tn,
                        tp->n_dims, OP_MAX_RANK);
    shape->rank = (int)tp->n_dims;
    size_t n = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0 || (size_t)tp->dims[i] > MAX_ELEMS)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "tensor '%s' has dimension %lld", tn,
                            (long long)tp->dims[i]);
        shape->d[i] = tp->dims[i];
        n *= (size_t)tp->dims[i];
        if (n > MAX_ELEMS)
            return adj_fail(err, errsz, ADJ_ERR_LIMIT, "tensor '%s' is too large", tn);
    }
    *dtype = t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? OP_FLOAT : OP_INT64;
    *hold = GR_DATA_SEALED;
    const void *src = NULL;
    size_t have = 0;     /* elements (typed fields) or bytes (raw, external) */
    int typed = 0;
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        const char *loc = NULL;
        size_t off = 0, len = (size_t)-1;
        for (size_t i = 0; i < tp->n_external_data; i++) {
            const char *k = tp->external_data[i]->key, *v = tp->external_data[i]->value;
            if (!k || !v)
                continue;
            if (!strcmp(k, "location"))
                loc = v;
            else if (!strcmp(k, "offset") && parse_u64(v, &off))
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "tensor '%s': external offset '%s'", tn, v);
            else if (!strcmp(k, "length") && parse_u64(v, &len))
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "tensor '%s': external length '%s'", tn, v);
        }
        if (!loc)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "tensor '%s': external data without a location", tn);
        const unsigned char *addr;
        size_t flen;
        int rc = ext_file(st, tn, loc, &addr, &flen, err, errsz);
        if (rc)
            return rc;
        if (len == (size_t)-1)
            len = n * es;
        if (len != n * es)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                            "tensor '%s': external length %zu bytes, its shape needs %zu", tn, len, n * es);
        if (off > flen || len > flen - off)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                            "tensor '%s': external data %s is %zu bytes, too short for %zu bytes at "
                            "offset %zu", tn, loc, flen, len, off);
        src = addr + off;
        have = len;
        if ((t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || t == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) &&
            ((uintptr_t)src % es) == 0) { /* used in place, never copied */
            *data = (void *)src;
            *hold = GR_DATA_EXTERN;
            return 0;
        }
    } else if (tp->has_raw_data) {
        src = tp->raw_data.data;
        have = tp->raw_data.len;
        if (in_map(st, src, have) && have == n * es && n &&
            (t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || t == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) &&
            ((uintptr_t)src % es) == 0) { /* in the file's mapping, which the graph keeps */
            *data = (void *)src;
            *hold = GR_DATA_EXTERN;
            return 0;
        }
    } else {
        typed = 1;
        switch (t) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: src = tp->float_data, have = tp->n_float_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: src = tp->int64_data, have = tp->n_int64_data; break;
        default: src = tp->int32_data, have = tp->n_int32_data; break;
        }
    }
    if (typed ? have != n : have != n * es)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "tensor '%s' holds %zu %s, its shape needs %zu", tn,
                        have, typed ? "values" : "bytes", typed ? n : n * es);
    if (n == 0) {
        *data = NULL;
        return 0;
    }
    if (typed && t != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && t != ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
        /* int32_data holds int32 and bool values as int32 */
        int64_t *d = alloc64(n * 8);
        if (!d)
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            d[i] = t == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL ? tp->int32_data[i] != 0 : tp->int32_data[i];
        *data = d;
        return 0;
    }
    if (!(*data = widen(st, src, n, t)))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    return 0;
}

static int add_const(load_state *st, const Onnx__TensorProto *tp, const char *name, char *err,
                     size_t errsz)
{
    op_dtype dt;
    op_shape sh;
    void *data;
    int hold, id, rc = read_tensor(st, tp, &dt, &sh, &data, &hold, err, errsz);
    if (rc)
        return rc;
    return gr_add_tensor(st->g, name, dt, &sh, 0, 1, data, hold, &id, err, errsz);
}

/* A Constant node: its one value attribute becomes a constant tensor. */
static int add_constant_node(load_state *st, const Onnx__NodeProto *nd, const char *nname, char *err,
                             size_t errsz)
{
    if (nd->n_output != 1 || !nd->output[0][0])
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "node '%s' (Constant): needs one output", nname);
    if (nd->n_attribute != 1)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "node '%s' (Constant): needs one attribute", nname);
    const Onnx__AttributeProto *a = nd->attribute[0];
    const char *out = nd->output[0];
    char msg[ADJ_ERRLEN];
    int rc, id;
    if (!strcmp(a->name, "value") && a->t) {
        if ((rc = add_const(st, a->t, out, msg, sizeof msg)))
            return adj_fail(err, errsz, rc, "node '%s' (Constant): %s", nname, msg);
        return 0;
    }
    op_shape sh = {0, {0}};
    void *data = NULL;
    op_dtype dt;
    if (!strcmp(a->name, "value_float") && a->has_f) {
        dt = OP_FLOAT;
        if ((data = alloc64(4)))
            *(float *)data = a->f;
    } else if (!strcmp(a->name, "value_int") && a->has_i) {
        dt = OP_INT64;
        if ((data = alloc64(8)))
            *(int64_t *)data = a->i;
    } else if (!strcmp(a->name, "value_floats")) {
        dt = OP_FLOAT, sh.rank = 1, sh.d[0] = (int64_t)a->n_floats;
        if ((data = alloc64(a->n_floats * 4)))
            memcpy(data, a->floats, a->n_floats * 4);
    } else if (!strcmp(a->name, "value_ints")) {
        dt = OP_INT64, sh.rank = 1, sh.d[0] = (int64_t)a->n_ints;
        if ((data = alloc64(a->n_ints * 8)))
            memcpy(data, a->ints, a->n_ints * 8);
    } else
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "node '%s' (Constant): attribute '%s' is not supported", nname, a->name);
    if (!data)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if ((rc = gr_add_tensor(st->g, out, dt, &sh, 0, 1, data, GR_DATA_OWN, &id, msg, sizeof msg)))
        return adj_fail(err, errsz, rc, "node '%s' (Constant): %s", nname, msg);
    return 0;
}

static int is_initializer(const Onnx__GraphProto *gp, const char *name)
{
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (gp->initializer[i]->name && !strcmp(gp->initializer[i]->name, name))
            return 1;
    return 0;
}

static int bound_index(const onnx_opts *o, const char *name)
{
    for (int i = 0; o && i < o->n_bind; i++)
        if (!strcmp(o->bind_names[i], name))
            return i;
    return -1;
}

/* The ai.onnx opset, 0 if none. */
static int model_opset(const Onnx__ModelProto *m)
{
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (!o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx"))
            return o->has_version ? (int)o->version : 0;
    }
    return 0;
}

/* The graph input's shape from its ValueInfoProto: the first dimension is the batch
 * (batched), or fixed_batch (> 0), or as the file says (a number). */
static int input_shape(const Onnx__ValueInfoProto *vi, int batched, int fixed_batch, op_shape *sh,
                       char *err, size_t errsz)
{
    const char *nm = vi->name;
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "input '%s' is not a tensor", nm);
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    if (tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "input '%s' is %s (only float)", nm,
                        type_name(tt->elem_type));
    if (!tt->shape)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "input '%s' has no shape", nm);
    if (tt->shape->n_dim > OP_MAX_RANK || ((batched || fixed_batch) && tt->shape->n_dim < 1))
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "input '%s' has rank %zu", nm,
                        tt->shape->n_dim);
    sh->rank = (int)tt->shape->n_dim;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        if ((batched || fixed_batch) && i == 0) {
            sh->d[0] = batched ? OP_DIM_BATCH : fixed_batch;
            continue;
        }
        if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || d->dim_value < 1)
            return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                            "input '%s': dimension %zu is %s%s%s (only numbers, the batch first)", nm, i,
                            d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? "'" : "",
                            d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                                ? d->dim_param : "unknown",
                            d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? "'" : "");
        sh->d[i] = d->dim_value;
    }
    return 0;
}

/* A tensor attribute into o: its type, element count and, for one element, its value. */
static int attr_tensor(load_state *st, const Onnx__AttributeProto *a, op_attr *o, char *err,
                       size_t errsz)
{
    op_dtype dt;
    op_shape sh;
    void *data = NULL;
    int hold = GR_DATA_SEALED;
    o->type = OP_ATTR_TENSOR;
    if (!a->t)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "no tensor");
    int rc = read_tensor(st, a->t, &dt, &sh, &data, &hold, err, errsz);
    if (rc)
        return rc;
    o->tdtype = dt;
    o->n = op_numel(&sh);
    if (o->n == 1 && data && dt == OP_FLOAT)
        memcpy(&o->f, data, sizeof o->f);
    else if (o->n == 1 && data)
        memcpy(&o->i, data, sizeof o->i);
    if (hold != GR_DATA_EXTERN)
        free(data);
    return ADJ_OK;
}

static int add_node(load_state *st, const Onnx__NodeProto *nd, int k, int opset, char *err,
                    size_t errsz)
{
    char nname[160];
    snprintf(nname, sizeof nname, "%s", nd->name && nd->name[0] ? nd->name : "");
    if (!nname[0])
        snprintf(nname, sizeof nname, "#%d", k);
    const char *op = nd->op_type ? nd->op_type : "";
    if (nd->domain && nd->domain[0] && strcmp(nd->domain, "ai.onnx"))
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "node '%s' (%s): operator domain '%s' is not supported", nname, op, nd->domain);
    if (!strcmp(op, "Constant"))
        return add_constant_node(st, nd, nname, err, errsz);
    if (nd->n_input > 64 || nd->n_output > 8)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "node '%s' (%s): %zu inputs, %zu outputs",
                        nname, op, nd->n_input, nd->n_output);
    const op_def *d = op_find(op);
    if (!d)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "node '%s': operator %s is not supported",
                        nname, op);
    const int lo = d->min_opset ? d->min_opset : ONNX_OPSET_MIN;
    if (opset < lo)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "opset %d (advjpg reads opsets %d to %d; %s from opset %d)", opset,
                        ONNX_OPSET_MIN, ONNX_OPSET_MAX, op, lo);
    int in[64], out[8], rc;
    for (size_t i = 0; i < nd->n_input; i++) {
        const char *nm = nd->input[i];
        in[i] = nm[0] ? gr_find_tensor(st->g, nm) : -1;
        if (nm[0] && in[i] < 0)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                            "node '%s' (%s): input '%s' is not defined before the node", nname, op, nm);
    }
    for (size_t i = 0; i < nd->n_output; i++) {
        out[i] = -1;
        if (!nd->output[i][0])
            continue;
        op_shape s0 = {0, {0}};
        char msg[ADJ_ERRLEN];
        if ((rc = gr_add_tensor(st->g, nd->output[i], OP_FLOAT, &s0, 0, 0, NULL, GR_DATA_OWN, &out[i],
                                msg, sizeof msg)))
            return adj_fail(err, errsz, rc, "node '%s' (%s): %s", nname, op, msg);
    }
    op_attr attrs[32];
    char sbuf[32][64];
    if (nd->n_attribute > 32)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "node '%s' (%s): %zu attributes", nname, op,
                        nd->n_attribute);
    for (size_t i = 0; i < nd->n_attribute; i++) {
        const Onnx__AttributeProto *a = nd->attribute[i];
        op_attr *o = &attrs[i];
        memset(o, 0, sizeof *o);
        o->name = a->name ? a->name : "";
        switch (a->type) {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: o->type = OP_ATTR_INT, o->i = a->i; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: o->type = OP_ATTR_FLOAT, o->f = a->f; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
            o->type = OP_ATTR_INTS, o->ints = a->ints, o->n = a->n_ints;
            break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
            o->type = OP_ATTR_FLOATS, o->floats = a->floats, o->n = a->n_floats;
            break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: {
            size_t len = a->s.len < sizeof sbuf[i] - 1 ? a->s.len : sizeof sbuf[i] - 1;
            if (len)
                memcpy(sbuf[i], a->s.data, len);
            sbuf[i][len] = 0;
            o->type = OP_ATTR_STRING, o->s = sbuf[i];
            break;
        }
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
            char msg[ADJ_ERRLEN];
            if ((rc = attr_tensor(st, a, o, msg, sizeof msg)))
                return adj_fail(err, errsz, rc, "node '%s' (%s): attribute '%s': %s", nname, op,
                                o->name, msg);
            break;
        }
        default: o->type = OP_ATTR_OTHER; break;
        }
    }
    return gr_add_node(st->g, nname, op, in, (int)nd->n_input, out, (int)nd->n_output, attrs,
                       (int)nd->n_attribute, opset, err, errsz);
}

/*
 * Output i as inferred against its declaration in the file (when it has a
 * tensor type with a shape of one or more dimensions): the same element
 * type and rank, and the same number in every declared numeric dimension
 * (dimension 0 excepted: the batch).
 */
static int check_output(const gr_graph *g, int i, const Onnx__ValueInfoProto *vi, char *err,
                        size_t errsz)
{
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return ADJ_OK;
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    op_shape s;
    op_dtype dt;
    char b1[64];
    gr_output_info(g, i, &s, &dt, NULL);
    if (tt->has_elem_type && tt->elem_type && (int)tt->elem_type != (int)dt)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "output '%s' is declared %s but computes %s",
                        vi->name, type_name(tt->elem_type), op_dtype_name(dt));
    if (!tt->shape || !tt->shape->n_dim) /* no dimensions: taken as undeclared, not a scalar */
        return ADJ_OK;
    int bad = tt->shape->n_dim != (size_t)s.rank;
    for (size_t k = 1; !bad && k < tt->shape->n_dim; k++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[k];
        bad = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
              d->dim_value != s.d[k];
    }
    if (!bad)
        return ADJ_OK;
    char decl[160] = "[";
    for (size_t k = 0; k < tt->shape->n_dim && k < 16; k++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[k];
        size_t l = strlen(decl);
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            snprintf(decl + l, sizeof decl - l, "%s%lld", k ? "," : "", (long long)d->dim_value);
        else
            snprintf(decl + l, sizeof decl - l, "%s?", k ? "," : "");
    }
    strncat(decl, "]", sizeof decl - strlen(decl) - 1);
    return adj_fail(err, errsz, ADJ_ERR_FORMAT, "output '%s' is declared %s but computes %s",
                    vi->name, decl, op_shape_str(&s, b1, sizeof b1));
}

static int build(load_state *st, const Onnx__ModelProto *m, const onnx_opts *opts, char *err,
                 size_t errsz)
{
    const int batched = !(opts && opts->unbatched) && !st->fixed_batch;
    if (!m->graph)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "not an ONNX model: no graph");
    if (!m->has_ir_version || m->ir_version < 3)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "not an ONNX model: IR version %lld",
                        (long long)m->ir_version);
    const int opset = model_opset(m);
    if (opset < 1 || opset > ONNX_OPSET_MAX) /* older opsets: per operator, see add_node */
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "opset %d (advjpg reads opsets %d to %d)",
                        opset, ONNX_OPSET_MIN, ONNX_OPSET_MAX);
    const Onnx__GraphProto *gp = m->graph;
    int rc;
    if (gp->n_sparse_initializer)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "sparse initializers");
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !tp->name[0])
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "initializer %zu has no name", i);
        if ((rc = add_const(st, tp, tp->name, err, errsz)))
            return rc;
    }
    /* the run-time input: graph inputs that are neither initializers nor bound */
    int input = -1, n_rt = 0;
    char names[256] = "";
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || is_initializer(gp, vi->name))
            continue;
        int b = bound_index(opts, vi->name), id;
        if (b >= 0) {
            const onnx_tensor *t = opts->bind[b];
            size_t bytes = op_numel(&t->shape) * op_dtype_size(t->dtype);
            void *d = alloc64(bytes);
            if (!d)
                return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
            if (bytes)
                memcpy(d, t->data, bytes);
            if ((rc = gr_add_tensor(st->g, vi->name, t->dtype, &t->shape, 0, 1, d, GR_DATA_OWN, &id,
                                    err, errsz)))
                return rc;
            continue;
        }
        n_rt++;
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s'%s'", l ? ", " : "", vi->name);
        if (n_rt > 1)
            continue;
        op_shape sh;
        if ((rc = input_shape(vi, batched, st->fixed_batch, &sh, err, errsz)) ||
            (rc = gr_add_tensor(st->g, vi->name, OP_FLOAT, &sh, batched, 0, NULL, GR_DATA_OWN, &input,
                                err, errsz)))
            return rc;
    }
    if (n_rt != 1)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "the graph has %d inputs%s%s (advjpg runs models of one image input)", n_rt,
                        n_rt ? ": " : "", names);
    for (size_t k = 0; k < gp->n_node; k++)
        if ((rc = add_node(st, gp->node[k], (int)k, opset, err, errsz)))
            return rc;
    if (gp->n_output < 1 || gp->n_output > 64)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "the graph has %zu outputs", gp->n_output);
    int outs[64];
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *nm = gp->output[i]->name ? gp->output[i]->name : "";
        if ((outs[i] = gr_find_tensor(st->g, nm)) < 0)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "output '%s' is computed by no node", nm);
    }
    gr_set_fusion(st->g, !(opts && opts->no_fusion));
    if ((rc = gr_set_io(st->g, input, outs, (int)gp->n_output, err, errsz)) ||
        (rc = gr_finalize(st->g, err, errsz)))
        return rc;
    for (size_t i = 0; i < gp->n_output; i++)
        if ((rc = check_output(st->g, (int)i, gp->output[i], err, errsz)))
            return rc;
    return ADJ_OK;
}

static void state_done(load_state *st)
{
    for (int i = 0; i < st->n_maps; i++)
        free(st->maps[i].loc);
}

/* A graph from a parsed model, its bytes and folder as src says (base_dir, map):
 * batched (fixed_batch 0), or with the batch fixed (1: a per-image graph,
 * gr_set_per_image). */
static int build_graph(const Onnx__ModelProto *m, const load_state *src, const onnx_opts *opts,
                       int fixed_batch, gr_graph **out, char *err, size_t errsz)
{
    load_state st = {.base_dir = src->base_dir, .fixed_batch = fixed_batch, .map = src->map,
                     .map_len = src->map_len};
    int rc = gr_new(&st.g, err, errsz);
    if (rc == ADJ_OK)
        rc = build(&st, m, opts, err, errsz);
    if (rc == ADJ_OK && fixed_batch == 1)
        rc = gr_set_per_image(st.g, err, errsz);
    state_done(&st);
    if (rc) {
        gr_free(st.g);
        return rc;
    }
    *out = st.g;
    return ADJ_OK;
}

/* Output i of ctx c (batch n) against the reference's rows (shape [n, ...]): 0 if equal. */
static int outputs_differ(const gr_ctx *c, const gr_ctx *ref, int i, int n)
{
    op_shape a, b;
    const float *x = gr_output(c, i, &a), *y = gr_output(ref, i, &b);
    if (!x || !y || a.rank != b.rank || a.d[0] != n || b.d[0] != n)
        return 1;
    for (int k = 1; k < a.rank; k++)
        if (a.d[k] != b.d[k])
            return 1;
    const size_t len = op_numel(&a); /* d[0] = n */
    float big = 1.0f;
    for (size_t j = 0; j < len; j++)
        big = fabsf(y[j]) > big ? fabsf(y[j]) : big;
    for (size_t j = 0; j < len; j++)
        if (!(fabsf(x[j] - y[j]) <= 1e-5f * big))
            return 1;
    return 0;
}

/*
 * Whether the per-image graph g computes the model: the model loaded with
 * the batch fixed to CHECK_BATCH must give, on that many pseudo-random
 * images, what g gives on each alone (same shapes, values within 1e-5 of
 * the largest). Else the model mixes its images (a Softmax or a reduction
 * across them, a Slice of the batch...). A test, not a proof: a model that
 * treats batches larger than CHECK_BATCH otherwise passes it. Costs a second
 * build of the model and 2 x CHECK_BATCH images' forwards, at load only.
 */
#define CHECK_BATCH 5
static int images_independent(const Onnx__ModelProto *m, const load_state *src,
                              const onnx_opts *opts, const gr_graph *g, char *err, size_t errsz)
{
    gr_graph *g2 = NULL;
    gr_ctx *c = NULL, *c2 = NULL;
    float *x = NULL;
    op_shape s;
    gr_input_shape(g, &s, NULL);
    const size_t per = op_numel(&s);
    const int K = CHECK_BATCH;
    int rc = build_graph(m, src, opts, K, &g2, err, errsz);
    if (!rc && !(x = malloc((size_t)K * per * sizeof *x)))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = gr_ctx_new(g, K, 0, &c, err, errsz);
    if (!rc)
        rc = gr_ctx_new(g2, 1, 0, &c2, err, errsz);
    uint32_t r = 12345;
    for (size_t j = 0; !rc && j < (size_t)K * per; j++) /* a fixed LCG: values in [-2, 2) */
        r = r * 1664525u + 1013904223u, x[j] = (float)(r >> 8) / (float)(1 << 22) - 2.0f;
    if (!rc && !(rc = gr_forward(c, x, K, err, errsz)))
        rc = gr_forward(c2, x, 1, err, errsz);
    for (int i = 0; !rc && i < gr_n_outputs(g); i++)
        if (outputs_differ(c, c2, i, K))
            rc = adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "its images are not independent");
    gr_ctx_free(c), gr_ctx_free(c2), gr_free(g2), free(x);
    return rc;
}

/*
 * The graph of an unpacked model (borrowed) whose raw_data lie where src says
 * (src->map: the graph is to keep that mapping; else copied).
 */
static int load_unpacked(const Onnx__ModelProto *m, const load_state *src, const onnx_opts *opts,
                         gr_graph **out, char *err, size_t errsz)
{
    int rc = build_graph(m, src, opts, 0, out, err, errsz);
    if (rc == ADJ_ERR_UNSUPPORTED && !(opts && opts->unbatched)) {
        /* a graph that moves the batch (MultiheadAttention's export): one image at a time,
         * if its images are independent; else the batched attempt's error is the answer */
        char msg[ADJ_ERRLEN];
        gr_graph *g = NULL;
        if (build_graph(m, src, opts, 1, &g, msg, sizeof msg) == ADJ_OK &&
            images_independent(m, src, opts, g, msg, sizeof msg) == ADJ_OK)
            *out = g, rc = ADJ_OK;
        else
            gr_free(g);
    }
    if (rc)
        return rc;
    /* the file's pages of what the graph no longer reads (a convolution's weights once
     * its BatchNormalization is folded in, or once its Winograd weights are made) */
    const Onnx__GraphProto *gp = m->graph;
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (tp->has_raw_data && gr_const_unread(*out, tp->name))
            release_pages(src, tp->raw_data.data, tp->raw_data.len);
    }
    return ADJ_OK;
}

int onnx_load_buffer(const void *buf, size_t len, const char *base_dir, const onnx_opts *opts,
                     gr_graph **out, char *err, size_t errsz)
{
    const size_t max = opts && opts->max_bytes ? opts->max_bytes : ((size_t)2 << 30);
    if (len > max)
        return adj_fail(err, errsz, ADJ_ERR_LIMIT, "model of %zu bytes (at most %zu)", len, max);
    Onnx__ModelProto *m;
    int rc = onnx_wire_unpack(buf, len, &m, err, errsz);
    if (rc)
        return rc;
    const load_state src = {.base_dir = base_dir}; /* the buffer is borrowed: copies */
    rc = load_unpacked(m, &src, opts, out, err, errsz);
    onnx_wire_free(m);
    return rc;
}

/* Maps a whole file read-only; *len its size. */
static int map_file(const char *path, size_t max, void **addr, size_t *len, char *err, size_t errsz)
{
    *addr = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return adj_fail(err, errsz, ADJ_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return adj_fail(err, errsz, ADJ_ERR_IO, "%s: not a regular file", path);
    }
    if ((size_t)sb.st_size > max) {
        close(fd);
        return adj_fail(err, errsz, ADJ_ERR_LIMIT, "%s: %lld bytes (at most %zu)", path,
                        (long long)sb.st_size, max);
    }
    *len = (size_t)sb.st_size;
    *addr = NULL;
    if (*len) {
        void *m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return adj_fail(err, errsz, ADJ_ERR_IO, "%s: %s", path, strerror(errno));
        }
        *addr = m;
    }
    close(fd);
    return 0;
}

int onnx_load(const char *path, const onnx_opts *opts, gr_graph **out, char *err, size_t errsz)
{
    const size_t max = opts && opts->max_bytes ? opts->max_bytes : ((size_t)2 << 30);
    void *m;
    size_t len;
    char msg[ADJ_ERRLEN];
    int rc = map_file(path, max, &m, &len, err, errsz);
    if (rc)
        return rc;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    /* the weights are read from the mapping (aligned ones in place), which the graph keeps */
    Onnx__ModelProto *mp = NULL;
    const load_state src = {.base_dir = dir, .map = m, .map_len = len};
    rc = onnx_wire_unpack(m, len, &mp, msg, sizeof msg);
    if (!rc)
        rc = load_unpacked(mp, &src, opts, out, msg, sizeof msg);
    onnx_wire_free(mp);
    if (!rc && m && (rc = gr_add_mapping(*out, m, len, msg, sizeof msg))) { /* m is unmapped */
        gr_free(*out);
        *out = NULL;
    } else if (rc && m) {
        munmap(m, len);
    }
    if (rc)
        return adj_fail(err, errsz, rc, "%s: %s", path, msg);
    return ADJ_OK;
}

int onnx_inspect(const char *path, onnx_info *info, char *err, size_t errsz)
{
    void *buf;
    size_t len;
    int rc = map_file(path, (size_t)2 << 30, &buf, &len, err, errsz);
    if (rc)
        return rc;
    Onnx__ModelProto *m = NULL;
    char msg[ADJ_ERRLEN];
    onnx_wire_unpack(buf, len, &m, msg, sizeof msg);
    if (buf)
        munmap(buf, len);
    if (!m || !m->graph) {
        onnx_wire_free(m);
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s: not an ONNX model", path);
    }
    memset(info, 0, sizeof *info);
    info->opset = model_opset(m);
    const Onnx__GraphProto *gp = m->graph;
    for (size_t i = 0; i < gp->n_input; i++) {
        const char *nm = gp->input[i]->name ? gp->input[i]->name : "";
        if (is_initializer(gp, nm))
            continue;
        if (info->n_inputs < 16)
            snprintf(info->inputs[info->n_inputs], sizeof info->inputs[0], "%s", nm);
        info->n_inputs++;
    }
    info->n_outputs = (int)gp->n_output;
    for (size_t i = 0; i < gp->n_input + gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = i < gp->n_input ? gp->input[i] : gp->output[i - gp->n_input];
        if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
            info->non_tensor_io = 1;
    }
    for (size_t k = 0; k < gp->n_node; k++) {
        const char *op = gp->node[k]->op_type ? gp->node[k]->op_type : "";
        /* distinct, comma-separated */
        const char *p = info->ops;
        size_t n = strlen(op);
        int seen = 0;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l == n && !memcmp(p, op, n))
                seen = 1;
            p = e ? e + 1 : p + l;
        }
        if (!seen) {
            size_t l = strlen(info->ops);
            snprintf(info->ops + l, sizeof info->ops - l, "%s%s", l ? "," : "", op);
        }
    }
    onnx_wire_free(m);
    return ADJ_OK;
}

void onnx_tensor_free(onnx_tensor *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->data);
    free(t);
}

int onnx_tensor_load(const char *path, onnx_tensor **out, char *err, size_t errsz)
{
    void *buf;
    size_t len;
    int rc = map_file(path, (size_t)2 << 30, &buf, &len, err, errsz);
    if (rc)
        return rc;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    if (buf)
        munmap(buf, len);
    if (!tp)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s: not a TensorProto", path);
    onnx_tensor *t = calloc(1, sizeof *t);
    load_state st = {0};
    int hold;
    char msg[ADJ_ERRLEN];
    if (!t || !(t->name = strdup(tp->name ? tp->name : "")))
        rc = adj_fail(msg, sizeof msg, ADJ_ERR_NOMEM, "out of memory");
    else
        rc = read_tensor(&st, tp, &t->dtype, &t->shape, &t->data, &hold, msg, sizeof msg);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    if (rc) {
        onnx_tensor_free(t);
        return adj_fail(err, errsz, rc, "%s: %s", path, msg);
    }
    *out = t;
    return ADJ_OK;
}
