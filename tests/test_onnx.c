/*
 * test_onnx - the graph engine and the ONNX loader on models built here with
 * protobuf-c: grouped, depthwise, dilated, strided, asymmetrically padded
 * convolutions against a direct loop; batch invariance (an image's outputs
 * bit-identical in batches of 1, 3 and 8); BatchNormalization folding and
 * shape-chain constant folding (the same network written two ways);
 * external data (memory-mapped) equal to raw_data; the wire-format walk
 * (onnx_wire.h) against protobuf-c's own unpacking of the same bytes, and a
 * mapped file's weights (read in place or copied, at every alignment) giving
 * the buffer's outputs; the memory plan against GR_KEEP_ALL; and bad files,
 * each refused with a message that names what is wrong (corrupt wire format
 * among them: varints, lengths past a message's end, nested lengths).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "model.h"
#include "onnx.h"
#include "onnx.pb-c.h"
#include "onnx_wire.h"
#include "testutil.h"

/* ---- a small model builder over protobuf-c's structs (all malloc'd, so that
 * onnx__model_proto__free_unpacked frees them) ---- */

typedef struct {
    Onnx__NodeProto *nodes[64];
    Onnx__TensorProto *inits[64];
    Onnx__ValueInfoProto *ins[4], *outs[4];
    int nn, ni, nin, nout;
    int opset;
} mb;

static size_t prod(int nd, const int64_t *d)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)d[i];
    return n;
}

static Onnx__TensorProto *t_float(const char *name, int nd, const int64_t *dims, const float *v)
{
    Onnx__TensorProto *t = malloc(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = strdup(name);
    t->n_dims = (size_t)nd;
    t->dims = malloc(sizeof(int64_t) * (size_t)(nd ? nd : 1));
    memcpy(t->dims, dims, sizeof(int64_t) * (size_t)nd);
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    size_t n = prod(nd, dims);
    t->has_raw_data = 1;
    t->raw_data.len = 4 * n;
    t->raw_data.data = malloc(4 * n + 1);
    memcpy(t->raw_data.data, v, 4 * n);
    return t;
}

static Onnx__TensorProto *t_int64(const char *name, int n, const int64_t *v)
{
    Onnx__TensorProto *t = malloc(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = strdup(name);
    t->n_dims = 1;
    t->dims = malloc(sizeof(int64_t));
    t->dims[0] = n;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->n_int64_data = (size_t)n;
    t->int64_data = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    memcpy(t->int64_data, v, sizeof(int64_t) * (size_t)n);
    return t;
}

/* Moves a tensor's raw data to an external file entry (location, offset). */
static void t_external(Onnx__TensorProto *t, const char *loc, size_t off, long length)
{
    char buf[32];
    t->has_raw_data = 0;
    free(t->raw_data.data);
    t->raw_data.data = NULL;
    t->raw_data.len = 0;
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    t->n_external_data = length >= 0 ? 3 : 2;
    t->external_data = malloc(sizeof(void *) * 3);
    const char *keys[3] = {"location", "offset", "length"};
    for (size_t i = 0; i < t->n_external_data; i++) {
        Onnx__StringStringEntryProto *e = malloc(sizeof *e);
        onnx__string_string_entry_proto__init(e);
        e->key = strdup(keys[i]);
        if (i == 0)
            e->value = strdup(loc);
        else {
            snprintf(buf, sizeof buf, "%ld", i == 1 ? (long)off : length);
            e->value = strdup(buf);
        }
        t->external_data[i] = e;
    }
}

static Onnx__AttributeProto *a_new(const char *name, Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = malloc(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = strdup(name);
    a->has_type = 1;
    a->type = type;
    return a;
}

static Onnx__AttributeProto *a_int(const char *name, int64_t v)
{
    Onnx__AttributeProto *a = a_new(name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
    return a;
}

static Onnx__AttributeProto *a_ints(const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = a_new(name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)n;
    a->ints = malloc(sizeof(int64_t) * (size_t)n);
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
    return a;
}

/* Splits "a,b,,c" into a new array of strings ("" kept). */
static char **split(const char *s, size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = malloc(sizeof(char *) * cap);
    *n = 0;
    if (!*s)
        return v;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        v[*n] = malloc(l + 1);
        memcpy(v[*n], p, l);
        v[(*n)++][l] = 0;
        if (!e)
            break;
        p = e + 1;
    }
    return v;
}

static Onnx__NodeProto *mb_node(mb *b, const char *op, const char *name, const char *ins,
                                const char *outs)
{
    Onnx__NodeProto *n = malloc(sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = strdup(op);
    n->name = strdup(name);
    n->input = split(ins, &n->n_input);
    n->output = split(outs, &n->n_output);
    n->attribute = malloc(sizeof(void *) * 8);
    b->nodes[b->nn++] = n;
    return n;
}

static void n_attr(Onnx__NodeProto *n, Onnx__AttributeProto *a) { n->attribute[n->n_attribute++] = a; }

static Onnx__ValueInfoProto *vi(const char *name, int nd, const int64_t *dims)
{
    Onnx__ValueInfoProto *v = malloc(sizeof *v);
    onnx__value_info_proto__init(v);
    v->name = strdup(name);
    v->type = malloc(sizeof *v->type);
    onnx__type_proto__init(v->type);
    v->type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    Onnx__TypeProto__Tensor *tt = malloc(sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = malloc(sizeof *tt->shape);
    onnx__tensor_shape_proto__init(tt->shape);
    tt->shape->n_dim = (size_t)nd;
    tt->shape->dim = malloc(sizeof(void *) * (size_t)(nd ? nd : 1));
    for (int i = 0; i < nd; i++) {
        Onnx__TensorShapeProto__Dimension *d = malloc(sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = strdup("N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        tt->shape->dim[i] = d;
    }
    v->type->tensor_type = tt;
    return v;
}

/* Packs the model into a new buffer (free()) and frees the builder's parts. */
static uint8_t *mb_pack(mb *b, size_t *len)
{
    Onnx__ModelProto *m = malloc(sizeof *m);
    onnx__model_proto__init(m);
    m->has_ir_version = 1;
    m->ir_version = 8;
    m->n_opset_import = 1;
    m->opset_import = malloc(sizeof(void *));
    m->opset_import[0] = malloc(sizeof(Onnx__OperatorSetIdProto));
    onnx__operator_set_id_proto__init(m->opset_import[0]);
    m->opset_import[0]->domain = strdup("");
    m->opset_import[0]->has_version = 1;
    m->opset_import[0]->version = b->opset ? b->opset : 13;
    Onnx__GraphProto *g = malloc(sizeof *g);
    onnx__graph_proto__init(g);
    g->name = strdup("test");
    g->n_node = (size_t)b->nn;
    g->node = malloc(sizeof(void *) * (size_t)(b->nn + 1));
    memcpy(g->node, b->nodes, sizeof(void *) * (size_t)b->nn);
    g->n_initializer = (size_t)b->ni;
    g->initializer = malloc(sizeof(void *) * (size_t)(b->ni + 1));
    memcpy(g->initializer, b->inits, sizeof(void *) * (size_t)b->ni);
    g->n_input = (size_t)b->nin;
    g->input = malloc(sizeof(void *) * (size_t)(b->nin + 1));
    memcpy(g->input, b->ins, sizeof(void *) * (size_t)b->nin);
    g->n_output = (size_t)b->nout;
    g->output = malloc(sizeof(void *) * (size_t)(b->nout + 1));
    memcpy(g->output, b->outs, sizeof(void *) * (size_t)b->nout);
    m->graph = g;
    *len = onnx__model_proto__get_packed_size(m);
    uint8_t *buf = malloc(*len);
    onnx__model_proto__pack(m, buf);
    onnx__model_proto__free_unpacked(m, NULL);
    memset(b, 0, sizeof *b);
    return buf;
}

static float *rnd(uint64_t *s, size_t n, float lo, float hi)
{
    float *v = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        v[i] = tu_uniform(s, lo, hi);
    return v;
}

static void init_rnd(mb *b, uint64_t *s, const char *name, int nd, const int64_t *dims, float lo,
                     float hi)
{
    float *v = rnd(s, prod(nd, dims), lo, hi);
    b->inits[b->ni++] = t_float(name, nd, dims, v);
    free(v);
}

static int load_buf(const uint8_t *buf, size_t len, gr_graph **g, char *err)
{
    return onnx_load_buffer(buf, len, NULL, NULL, g, err, ADJ_ERRLEN);
}

/* ---- convolutions against a direct loop ------------------------------ */

static void naive_conv(const float *x, const float *w, const float *bias, int N, int C, int H,
                       int W, int M, int G, int kh, int kw, const int *s, const int *d,
                       const int *pads, int OH, int OW, float *y)
{
    const int Cg = C / G, Mg = M / G;
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double acc = bias ? bias[m] : 0.0;
                    const int g = m / Mg;
                    for (int c = 0; c < Cg; c++)
                        for (int i = 0; i < kh; i++)
                            for (int j = 0; j < kw; j++) {
                                int iy = oy * s[0] + i * d[0] - pads[0];
                                int ix = ox * s[1] + j * d[1] - pads[1];
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                acc += (double)x[((n * C + g * Cg + c) * H + iy) * W + ix] *
                                       w[((m * Cg + c) * kh + i) * kw + j];
                            }
                    y[((n * M + m) * OH + oy) * OW + ox] = (float)acc;
                }
}

static void test_conv_case(int N, int C, int H, int W, int M, int G, int kh, int kw, const int *s,
                           const int *d, const int *pads, uint64_t seed)
{
    uint64_t st = seed;
    mb b = {0};
    int64_t xd[4] = {-1, C, H, W}, wd[4] = {M, C / G, kh, kw}, bd[1] = {M};
    float *w = rnd(&st, prod(4, wd), -1, 1), *bias = rnd(&st, (size_t)M, -1, 1);
    b.inits[b.ni++] = t_float("W", 4, wd, w);
    b.inits[b.ni++] = t_float("B", 1, bd, bias);
    b.ins[b.nin++] = vi("x", 4, xd);
    b.outs[b.nout++] = vi("y", 0, NULL);
    Onnx__NodeProto *n = mb_node(&b, "Conv", "conv", "x,W,B", "y");
    int64_t v[4];
    v[0] = s[0], v[1] = s[1];
    n_attr(n, a_ints("strides", 2, v));
    v[0] = d[0], v[1] = d[1];
    n_attr(n, a_ints("dilations", 2, v));
    v[0] = pads[0], v[1] = pads[1], v[2] = pads[2], v[3] = pads[3];
    n_attr(n, a_ints("pads", 4, v));
    n_attr(n, a_int("group", G));
    size_t len;
    uint8_t *buf = mb_pack(&b, &len);
    gr_graph *g = NULL;
    gr_ctx *c = NULL;
    char err[ADJ_ERRLEN];
    int rc = load_buf(buf, len, &g, err);
    CHECK(rc == 0, "conv model: %s", err);
    if (!rc)
        CHECK((rc = gr_ctx_new(g, N, 0, &c, err, sizeof err)) == 0, "ctx: %s", err);
    const int OH = (H + pads[0] + pads[2] - ((kh - 1) * d[0] + 1)) / s[0] + 1;
    const int OW = (W + pads[1] + pads[3] - ((kw - 1) * d[1] + 1)) / s[1] + 1;
    float *x = rnd(&st, (size_t)N * C * H * W, -1, 1);
    float *want = malloc(sizeof(float) * (size_t)N * M * OH * OW);
    naive_conv(x, w, bias, N, C, H, W, M, G, kh, kw, s, d, pads, OH, OW, want);
    if (!rc) {
        CHECK(gr_forward(c, x, N, err, sizeof err) == 0, "forward: %s", err);
        op_shape sh;
        const float *y = gr_output(c, 0, &sh);
        CHECK(sh.rank == 4 && sh.d[0] == N && sh.d[1] == M && sh.d[2] == OH && sh.d[3] == OW,
              "conv output shape");
        double worst = 0;
        for (size_t i = 0; y && i < (size_t)N * M * OH * OW; i++)
            worst = fmax(worst, fabs(y[i] - want[i]));
        CHECK(worst < 1e-4, "conv C%d M%d G%d k%dx%d s%d,%d d%d,%d: max error %g", C, M, G, kh, kw,
              s[0], s[1], d[0], d[1], worst);
    }
    gr_ctx_free(c);
    gr_free(g);
    free(buf), free(x), free(want), free(w), free(bias);
}

static void test_convs(void)
{
    const int s1[2] = {1, 1}, s21[2] = {2, 1}, s2[2] = {2, 2}, d1[2] = {1, 1}, d21[2] = {2, 1},
              d2[2] = {2, 2};
    const int p0[4] = {0, 0, 0, 0}, pa[4] = {1, 0, 2, 1}, p1[4] = {1, 1, 1, 1}, p2[4] = {2, 2, 2, 2};
    test_conv_case(2, 4, 7, 8, 6, 2, 3, 2, s21, d21, pa, 1);  /* grouped, dilated, asymmetric */
    test_conv_case(3, 4, 6, 6, 4, 4, 3, 3, s1, d1, p1, 2);    /* depthwise */
    test_conv_case(2, 8, 9, 7, 8, 8, 3, 3, s2, d2, p2, 3);    /* depthwise, strided, dilated */
    test_conv_case(2, 4, 5, 5, 3, 1, 1, 1, s1, d1, p0, 4);    /* 1x1: the direct path */
    test_conv_case(1, 3, 11, 10, 5, 1, 5, 5, s2, d1, pa, 5);  /* 5x5 strided */
}

/* ---- a small network, written two ways -------------------------------- */

enum { NET_PLAIN = 0, NET_EXPANDED = 1, NET_EXTERNAL = 2 };

/*
 * x [N,3,9,9] -> Conv 3x3 pad 1 -> BatchNormalization -> Relu -> Conv group 2
 * stride 2 -> (+ depthwise dilated Conv of it) -> MaxPool -> GlobalAveragePool
 * -> Flatten -> Gemm -> Softmax. NET_EXPANDED writes the BatchNormalization
 * as Mul and Add by [1,6,1,1] constants and the Flatten as
 * Shape->Gather->Unsqueeze->Concat->Reshape. NET_EXTERNAL keeps the first
 * Conv's weights in dir/w.bin.
 */
static uint8_t *make_net(int how, const char *dir, size_t *len)
{
    uint64_t st = 42;
    mb b = {0};
    int64_t xd[4] = {-1, 3, 9, 9};
    int64_t w1[4] = {6, 3, 3, 3}, c6[1] = {6}, w2[4] = {6, 3, 3, 3}, w3[4] = {6, 1, 3, 3},
            wf[2] = {5, 6}, c5[1] = {5}, bc[4] = {1, 6, 1, 1};
    init_rnd(&b, &st, "W1", 4, w1, -0.5f, 0.5f);
    init_rnd(&b, &st, "B1", 1, c6, -0.5f, 0.5f);
    float *scale = rnd(&st, 6, 0.5f, 1.5f), *beta = rnd(&st, 6, -0.5f, 0.5f),
          *mean = rnd(&st, 6, -0.5f, 0.5f), *var = rnd(&st, 6, 0.5f, 2.0f);
    init_rnd(&b, &st, "W2", 4, w2, -0.5f, 0.5f);
    init_rnd(&b, &st, "W3", 4, w3, -0.5f, 0.5f);
    init_rnd(&b, &st, "B3", 1, c6, -0.5f, 0.5f);
    init_rnd(&b, &st, "WF", 2, wf, -1, 1);
    init_rnd(&b, &st, "BF", 1, c5, -1, 1);
    b.ins[b.nin++] = vi("x", 4, xd);
    b.outs[b.nout++] = vi("prob", 0, NULL);
    Onnx__NodeProto *n = mb_node(&b, "Conv", "conv1", "x,W1,B1", "c1");
    int64_t p1[4] = {1, 1, 1, 1}, p2[4] = {0, 1, 1, 0}, p3[4] = {2, 2, 2, 2}, s2[2] = {2, 2},
            d2[2] = {2, 2}, k2[2] = {2, 2}, s1[2] = {1, 1};
    n_attr(n, a_ints("pads", 4, p1));
    if (how == NET_EXPANDED) {
        float a[6], sh[6];
        for (int i = 0; i < 6; i++) {
            a[i] = scale[i] / sqrtf(var[i] + 1e-5f);
            sh[i] = beta[i] - mean[i] * a[i];
        }
        b.inits[b.ni++] = t_float("bn_a", 4, bc, a);
        b.inits[b.ni++] = t_float("bn_b", 4, bc, sh);
        mb_node(&b, "Mul", "bn_mul", "c1,bn_a", "bm");
        mb_node(&b, "Add", "bn_add", "bm,bn_b", "bn");
    } else {
        b.inits[b.ni++] = t_float("scale", 1, c6, scale);
        b.inits[b.ni++] = t_float("beta", 1, c6, beta);
        b.inits[b.ni++] = t_float("mean", 1, c6, mean);
        b.inits[b.ni++] = t_float("var", 1, c6, var);
        mb_node(&b, "BatchNormalization", "bn1", "c1,scale,beta,mean,var", "bn");
    }
    mb_node(&b, "Relu", "relu1", "bn", "r1");
    n = mb_node(&b, "Conv", "conv2", "r1,W2", "c2");
    n_attr(n, a_int("group", 2));
    n_attr(n, a_ints("strides", 2, s2));
    n_attr(n, a_ints("pads", 4, p2));
    n = mb_node(&b, "Conv", "conv3", "c2,W3,B3", "c3");
    n_attr(n, a_int("group", 6));
    n_attr(n, a_ints("dilations", 2, d2));
    n_attr(n, a_ints("pads", 4, p3));
    mb_node(&b, "Add", "add", "c2,c3", "s");
    n = mb_node(&b, "MaxPool", "pool", "s", "mp");
    n_attr(n, a_ints("kernel_shape", 2, k2));
    n_attr(n, a_ints("strides", 2, s1));
    mb_node(&b, "GlobalAveragePool", "gap", "mp", "gp");
    if (how == NET_EXPANDED) {
        int64_t zero = 0, m1 = -1, ax0 = 0;
        b.inits[b.ni++] = t_int64("i0", 1, &zero); /* a scalar index: rank 0 */
        b.inits[b.ni - 1]->n_dims = 0;
        b.inits[b.ni++] = t_int64("minus1", 1, &m1);
        b.inits[b.ni++] = t_int64("axes0", 1, &ax0);
        mb_node(&b, "Shape", "shape", "gp", "shp");
        mb_node(&b, "Gather", "gather", "shp,i0", "nb");
        mb_node(&b, "Unsqueeze", "unsq", "nb,axes0", "nb1");
        n = mb_node(&b, "Concat", "cat", "nb1,minus1", "tshape");
        n_attr(n, a_int("axis", 0));
        mb_node(&b, "Reshape", "reshape", "gp,tshape", "flat");
    } else
        mb_node(&b, "Flatten", "flatten", "gp", "flat");
    n = mb_node(&b, "Gemm", "fc", "flat,WF,BF", "logits");
    n_attr(n, a_int("transB", 1));
    n = mb_node(&b, "Softmax", "softmax", "logits", "prob");
    n_attr(n, a_int("axis", 1));
    if (how == NET_EXTERNAL) {
        Onnx__TensorProto *t = b.inits[0]; /* W1 */
        char path[4200];
        snprintf(path, sizeof path, "%s/w.bin", dir);
        uint8_t *file = calloc(1, 64 + t->raw_data.len);
        memcpy(file + 64, t->raw_data.data, t->raw_data.len);
        tu_write_file(path, file, 64 + t->raw_data.len);
        free(file);
        t_external(t, "w.bin", 64, (long)t->raw_data.len);
    }
    free(scale), free(beta), free(mean), free(var);
    return mb_pack(&b, len);
}

static int has_op(const gr_graph *g, const char *op)
{
    for (int i = 0; i < gr_n_nodes(g); i++)
        if (!strcmp(gr_node_op(g, i), op))
            return 1;
    return 0;
}

/* Runs images 0..n-1 of x (per image `per` floats) as one batch; new output copy. */
static float *run(gr_ctx *c, const float *x, int n, size_t *per_out)
{
    char err[ADJ_ERRLEN];
    if (gr_forward(c, x, n, err, sizeof err)) {
        fprintf(stderr, "forward: %s\n", err);
        return NULL;
    }
    op_shape s;
    const float *y = gr_output(c, 0, &s);
    size_t k = op_numel(&s);
    float *o = malloc(sizeof(float) * k);
    memcpy(o, y, sizeof(float) * k);
    *per_out = k / (size_t)n;
    return o;
}

static void test_network(void)
{
    char err[ADJ_ERRLEN], path[4200];
    const char *dir = tu_tmpdir();
    size_t la, lb, lc;
    uint8_t *ba = make_net(NET_PLAIN, dir, &la), *bb = make_net(NET_EXPANDED, dir, &lb),
            *bc = make_net(NET_EXTERNAL, dir, &lc);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    tu_write_file(path, bc, lc);
    gr_graph *ga = NULL, *gb = NULL, *gc = NULL;
    int rc = load_buf(ba, la, &ga, err);
    CHECK(rc == 0, "plain network: %s", err);
    rc |= load_buf(bb, lb, &gb, err);
    CHECK(rc == 0, "expanded network: %s", err);
    int rc2 = onnx_load(path, NULL, &gc, err, sizeof err);
    CHECK(rc2 == 0, "external network: %s", err);
    if (rc || rc2)
        goto done;
    CHECK(!has_op(ga, "BatchNormalization"), "BatchNormalization not folded into the Conv");
    CHECK(!has_op(gb, "Shape") && !has_op(gb, "Gather") && !has_op(gb, "Concat") &&
          !has_op(gb, "Unsqueeze"), "shape chain not folded");
    /* 10, less the Relu and the Add fused into the Convs before them (graph.h) */
    CHECK(gr_n_nodes(ga) == 8, "plain network runs %d nodes, want 8", gr_n_nodes(ga));
    op_shape is;
    int batched;
    gr_input_shape(ga, &is, &batched);
    CHECK(batched && is.d[0] == OP_DIM_BATCH && is.d[1] == 3, "input shape");

    uint64_t st = 7;
    const size_t per = 3 * 9 * 9;
    float *x = rnd(&st, 8 * per, -2, 2);
    gr_ctx *ca = NULL, *ck = NULL, *cb = NULL, *cc = NULL;
    CHECK(gr_ctx_new(ga, 8, 0, &ca, err, sizeof err) == 0, "ctx: %s", err);
    CHECK(gr_ctx_new(ga, 8, GR_KEEP_ALL, &ck, err, sizeof err) == 0, "ctx: %s", err);
    CHECK(gr_ctx_new(gb, 8, 0, &cb, err, sizeof err) == 0, "ctx: %s", err);
    CHECK(gr_ctx_new(gc, 8, 0, &cc, err, sizeof err) == 0, "ctx: %s", err);
    if (!ca || !ck || !cb || !cc)
        goto ctxdone;
    CHECK(gr_ctx_bytes(ca) < gr_ctx_bytes(ck), "the memory plan reuses nothing (%zu vs %zu bytes)",
          gr_ctx_bytes(ca), gr_ctx_bytes(ck));
    size_t k8, k3, k1, kk, kb, kc;
    float *y8 = run(ca, x, 8, &k8), *y3 = run(ca, x, 3, &k3);
    CHECK(y8 && y3 && k8 == 5 && k3 == 5, "output sizes");
    if (!y8 || !y3)
        goto ctxdone;
    /* batch invariance: bit-identical rows whatever the batch */
    CHECK(!memcmp(y8, y3, sizeof(float) * 3 * 5), "batch 3 differs from batch 8");
    for (int i = 0; i < 8; i++) {
        float *y1 = run(ca, x + (size_t)i * per, 1, &k1);
        CHECK(y1 && !memcmp(y1, y8 + i * 5, sizeof(float) * 5), "image %d: batch 1 differs from batch 8", i);
        free(y1);
    }
    float *yk = run(ck, x, 8, &kk), *yb = run(cb, x, 8, &kb), *yc = run(cc, x, 8, &kc);
    CHECK(yk && !memcmp(yk, y8, sizeof(float) * 40), "GR_KEEP_ALL gives other outputs");
    CHECK(yc && !memcmp(yc, y8, sizeof(float) * 40), "external data gives other outputs");
    double worst = 0, sum = 0;
    for (int i = 0; yb && i < 40; i++) {
        worst = fmax(worst, fabs(yb[i] - y8[i]));
        sum += y8[i];
    }
    CHECK(yb && worst < 1e-5, "folded and expanded networks differ by %g", worst);
    CHECK(fabs(sum - 8.0) < 1e-4, "probabilities sum to %g over 8 images", sum);
    free(y8), free(y3), free(yk), free(yb), free(yc);
ctxdone:
    gr_ctx_free(ca), gr_ctx_free(ck), gr_ctx_free(cb), gr_ctx_free(cc);
    free(x);
done:
    gr_free(ga), gr_free(gb), gr_free(gc);
    free(ba), free(bb), free(bc);
    tu_rmtree(dir);
}

/* ---- the wire-format walk ------------------------------------------- */

/* buf with a doc_string of k bytes inserted (field 6, before the graph's 7: every
 * raw_data moves by k + 2 bytes); *len in and out. */
static uint8_t *with_doc(const uint8_t *buf, size_t *len, int k)
{
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, *len, buf);
    char doc[8] = "abcdefg";
    doc[k] = 0;
    free(m->doc_string);
    m->doc_string = strdup(doc);
    *len = onnx__model_proto__get_packed_size(m);
    uint8_t *out = malloc(*len);
    onnx__model_proto__pack(m, out);
    onnx__model_proto__free_unpacked(m, NULL);
    return out;
}

/* The walk's message packs to the bytes protobuf-c's own unpacking packs to. */
static void check_walk_repacks(const uint8_t *buf, size_t len, const char *what)
{
    char err[ADJ_ERRLEN];
    Onnx__ModelProto *ref = onnx__model_proto__unpack(NULL, len, buf), *m = NULL;
    CHECK(ref && onnx_wire_unpack(buf, len, &m, err, sizeof err) == 0, "%s: %s", what, err);
    if (!ref || !m)
        goto done;
    size_t la = onnx__model_proto__get_packed_size(ref), lb = onnx__model_proto__get_packed_size(m);
    uint8_t *a = malloc(la), *b = malloc(lb);
    onnx__model_proto__pack(ref, a);
    onnx__model_proto__pack(m, b);
    CHECK(la == lb && !memcmp(a, b, la), "%s: the walk's message packs to other bytes", what);
    size_t raw = 0, n = m->graph ? m->graph->n_initializer : 0;
    for (size_t i = 0; i < n; i++) {
        const Onnx__TensorProto *t = m->graph->initializer[i];
        raw += t->has_raw_data && t->raw_data.data >= buf && t->raw_data.data < buf + len;
    }
    CHECK(raw == n, "%s: %zu of %zu initializers point into the buffer", what, raw, n);
    free(a), free(b);
done:
    if (ref)
        onnx__model_proto__free_unpacked(ref, NULL);
    onnx_wire_free(m);
}

static void test_wire(void)
{
    char err[ADJ_ERRLEN], path[4200];
    const char *dir = tu_tmpdir();
    size_t len;
    uint8_t *net = make_net(NET_PLAIN, NULL, &len);
    gr_graph *ref = NULL;
    CHECK(load_buf(net, len, &ref, err) == 0, "plain network: %s", err);
    uint64_t st = 11;
    const size_t per = 3 * 9 * 9;
    float *x = rnd(&st, 4 * per, -2, 2), *want = NULL;
    gr_ctx *c = NULL;
    size_t k;
    if (ref && gr_ctx_new(ref, 4, 0, &c, err, sizeof err) == 0)
        want = run(c, x, 4, &k);
    gr_ctx_free(c);
    CHECK(want != NULL, "the buffer's outputs");
    /* raw_data at every offset mod 4 (and 8): in place when aligned, else copied */
    for (int d = 0; d < 8 && want; d++) {
        size_t l2 = len;
        uint8_t *b = with_doc(net, &l2, d);
        char what[64];
        snprintf(what, sizeof what, "doc_string of %d bytes", d);
        check_walk_repacks(b, l2, what);
        snprintf(path, sizeof path, "%s/m%d.onnx", dir, d);
        tu_write_file(path, b, l2);
        gr_graph *g = NULL;
        CHECK(onnx_load(path, NULL, &g, err, sizeof err) == 0, "%s: %s", what, err);
        float *y = NULL;
        if (g && gr_ctx_new(g, 4, 0, &c, err, sizeof err) == 0)
            y = run(c, x, 4, &k);
        CHECK(y && !memcmp(y, want, 4 * 5 * sizeof(float)), "%s: the file's outputs differ from "
              "the buffer's", what);
        free(y);
        gr_ctx_free(c), gr_free(g);
        free(b);
    }
    check_walk_repacks((const uint8_t *)"", 0, "an empty message");
    free(x), free(want), free(net);
    gr_free(ref);
    tu_rmtree(dir);
}

/* ---- bad files -------------------------------------------------------- */

static void expect_fail(const uint8_t *buf, size_t len, int want_rc, const char *const *words,
                        const char *what)
{
    gr_graph *g = NULL;
    char err[ADJ_ERRLEN] = "";
    int rc = onnx_load_buffer(buf, len, NULL, NULL, &g, err, sizeof err);
    CHECK(rc == want_rc && g == NULL, "%s: rc %d (want %d): %s", what, rc, want_rc, err);
    for (int i = 0; words && words[i]; i++)
        CHECK(strstr(err, words[i]) != NULL, "%s: message '%s' does not name '%s'", what, err,
              words[i]);
    gr_free(g);
}

static uint8_t *tiny(const char *op, const char *attr, int two_inputs, int opset, size_t *len)
{
    mb b = {0};
    int64_t xd[4] = {-1, 2, 4, 4};
    b.opset = opset;
    b.ins[b.nin++] = vi("x", 4, xd);
    if (two_inputs)
        b.ins[b.nin++] = vi("y", 4, xd);
    b.outs[b.nout++] = vi("out", 0, NULL);
    Onnx__NodeProto *n = mb_node(&b, op, "the_node", two_inputs ? "x,y" : "x", "out");
    if (attr)
        n_attr(n, a_int(attr, 1));
    return mb_pack(&b, len);
}

static void test_bad_files(void)
{
    size_t len;
    char err[ADJ_ERRLEN], path[4200];
    uint8_t *good = make_net(NET_PLAIN, NULL, &len);
    {
        const char *w[] = {"truncated or corrupt", NULL};
        expect_fail(good, len / 2, ADJ_ERR_FORMAT, w, "truncated model");
        expect_fail(good, len - 3, ADJ_ERR_FORMAT, w, "model without its last bytes");
        uint8_t junk[256];
        for (int i = 0; i < 256; i++)
            junk[i] = (uint8_t)(0xff - i);
        expect_fail(junk, sizeof junk, ADJ_ERR_FORMAT, w, "corrupt model");
        /* the wire format, by hand: 7 = graph, 5 = initializer, 9 = raw_data; 08 07 is
         * ir_version 7, a valid field after the graph */
        static const struct {
            const char *what;
            uint8_t b[16];
            size_t n;
        } c[] = {
            {"an 11-byte varint", {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0x01}, 12},
            {"a varint cut by the end", {0x08, 0x07, 0x08, 0x80}, 4},
            {"a graph's length past the end", {0x3a, 0x10, 0x2a, 0x00}, 4},
            {"an initializer past its graph's end", {0x3a, 0x04, 0x2a, 0x08, 0x4a, 0x00, 0x08,
                                                     0x07, 0x08, 0x07, 0x08, 0x07}, 12},
            {"a raw_data past its tensor's end", {0x3a, 0x04, 0x2a, 0x02, 0x4a, 0x05, 0x08, 0x07,
                                                  0x08, 0x07, 0x08, 0x07}, 12},
            {"field number 0", {0x3a, 0x02, 0x02, 0x00}, 4},
            {"a group", {0x3a, 0x02, 0x2b, 0x2c}, 4},
            {"two graphs", {0x3a, 0x00, 0x3a, 0x00, 0x08, 0x07}, 6},
            {"raw_data of another wire type", {0x3a, 0x04, 0x2a, 0x02, 0x48, 0x01}, 6},
        };
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
            expect_fail(c[i].b, c[i].n, ADJ_ERR_FORMAT, w, c[i].what);
        for (size_t cut = 0; cut < len; cut += 7) /* every 7th length: never a crash */
            expect_fail(good, cut, ADJ_ERR_FORMAT, NULL, "a truncated model");
    }
    uint8_t *bad;
    {
        const char *w[] = {"2 inputs", "'x'", "'y'", NULL};
        bad = tiny("Add", NULL, 1, 13, &len);
        expect_fail(bad, len, ADJ_ERR_UNSUPPORTED, w, "two graph inputs");
        free(bad);
    }
    {
        const char *w[] = {"the_node", "FooBar", NULL};
        bad = tiny("FooBar", NULL, 0, 13, &len);
        expect_fail(bad, len, ADJ_ERR_UNSUPPORTED, w, "unknown operator");
        free(bad);
    }
    {
        const char *w[] = {"the_node", "Relu", "'bogus'", NULL};
        bad = tiny("Relu", "bogus", 0, 13, &len);
        expect_fail(bad, len, ADJ_ERR_UNSUPPORTED, w, "unknown attribute");
        free(bad);
    }
    {
        const char *w[] = {"opset 9", NULL};
        bad = tiny("Relu", NULL, 0, 9, &len);
        expect_fail(bad, len, ADJ_ERR_UNSUPPORTED, w, "old opset");
        free(bad);
    }
    {
        const char *w[] = {"the_node", "Softmax", "axis", NULL};
        bad = tiny("Softmax", "axis", 0, 13, &len); /* axis 1: fine */
        gr_graph *g = NULL;
        CHECK(onnx_load_buffer(bad, len, NULL, NULL, &g, err, sizeof err) == 0, "softmax: %s", err);
        gr_free(g);
        free(bad);
        mb b = {0};
        int64_t xd[2] = {-1, 4};
        b.ins[b.nin++] = vi("x", 2, xd);
        b.outs[b.nout++] = vi("out", 0, NULL);
        Onnx__NodeProto *n = mb_node(&b, "Softmax", "the_node", "x", "out");
        n_attr(n, a_int("axis", 0)); /* across the batch */
        bad = mb_pack(&b, &len);
        expect_fail(bad, len, ADJ_ERR_UNSUPPORTED, w, "softmax across the batch");
        free(bad);
    }
    {
        const char *w[] = {"'nowhere'", NULL};
        mb b = {0};
        int64_t xd[2] = {-1, 4};
        b.ins[b.nin++] = vi("x", 2, xd);
        b.outs[b.nout++] = vi("out", 0, NULL);
        mb_node(&b, "Add", "the_node", "x,nowhere", "out");
        bad = mb_pack(&b, &len);
        expect_fail(bad, len, ADJ_ERR_FORMAT, w, "undefined input");
        free(bad);
    }
    {
        const char *w[] = {"'missing'", NULL};
        mb b = {0};
        int64_t xd[2] = {-1, 4};
        b.ins[b.nin++] = vi("x", 2, xd);
        b.outs[b.nout++] = vi("missing", 0, NULL);
        mb_node(&b, "Relu", "the_node", "x", "out");
        bad = mb_pack(&b, &len);
        expect_fail(bad, len, ADJ_ERR_FORMAT, w, "output of no node");
        free(bad);
    }
    /* sizes that would overflow: a Reshape to 2^62 values, a Pad by 2^50, a huge window */
    for (int k = 0; k < 3; k++) {
        mb b = {0};
        int64_t xd[2] = {-1, 4}, x4[4] = {-1, 2, 4, 4};
        b.ins[b.nin++] = vi("x", k == 2 ? 4 : 2, k == 2 ? x4 : xd);
        b.outs[b.nout++] = vi("out", 0, NULL);
        if (k == 0) {
            int64_t t[3] = {0, (int64_t)1 << 31, (int64_t)1 << 31};
            b.inits[b.ni++] = t_int64("t", 3, t);
            mb_node(&b, "Reshape", "the_node", "x,t", "out");
        } else if (k == 1) {
            int64_t pads[4] = {0, (int64_t)1 << 50, 0, 0};
            b.inits[b.ni++] = t_int64("pads", 4, pads);
            mb_node(&b, "Pad", "the_node", "x,pads", "out");
        } else {
            int64_t ks[2] = {(int64_t)1 << 40, 2};
            Onnx__NodeProto *n = mb_node(&b, "MaxPool", "the_node", "x", "out");
            n_attr(n, a_ints("kernel_shape", 2, ks));
        }
        bad = mb_pack(&b, &len);
        gr_graph *g = NULL;
        int rc = onnx_load_buffer(bad, len, NULL, NULL, &g, err, sizeof err);
        CHECK(rc != 0 && g == NULL && strstr(err, "the_node"), "oversized case %d: rc %d: %s", k, rc,
              err);
        gr_free(g);
        free(bad);
    }
    /* external data: too short a file, a wrong length, a location outside */
    const char *dir = tu_tmpdir();
    for (int k = 0; k < 3; k++) {
        mb b = {0};
        int64_t xd[2] = {-1, 4}, wd[1] = {4};
        float w[4] = {1, 2, 3, 4};
        b.ins[b.nin++] = vi("x", 2, xd);
        b.outs[b.nout++] = vi("out", 0, NULL);
        b.inits[b.ni++] = t_float("w", 1, wd, w);
        t_external(b.inits[0], k == 2 ? "../w.bin" : "w.bin", 8, k == 1 ? 12 : 16);
        mb_node(&b, "Add", "the_node", "x,w", "out");
        bad = mb_pack(&b, &len);
        snprintf(path, sizeof path, "%s/w.bin", dir);
        tu_write_file(path, w, sizeof w); /* 16 bytes: too short from offset 8 */
        snprintf(path, sizeof path, "%s/model.onnx", dir);
        tu_write_file(path, bad, len);
        gr_graph *g = NULL;
        int rc = onnx_load(path, NULL, &g, err, sizeof err);
        const char *want = k == 0 ? "too short" : k == 1 ? "length 12" : "outside";
        CHECK(rc == ADJ_ERR_FORMAT && strstr(err, want) && strstr(err, "'w'"),
              "external data case %d: rc %d: %s", k, rc, err);
        gr_free(g);
        free(bad);
    }
    /* outputs of the wrong shape: against the file's declaration; not an image classifier */
    for (int k = 0; k < 2; k++) {
        mb b = {0};
        int64_t xd[2] = {-1, 4}, od[2] = {-1, 5}, x4[4] = {-1, 3, 4, 4};
        b.ins[b.nin++] = vi("x", k ? 4 : 2, k ? x4 : xd);
        b.outs[b.nout++] = vi("out", k ? 0 : 2, od);
        mb_node(&b, "Relu", "the_node", "x", "out");
        bad = mb_pack(&b, &len);
        if (k == 0) {
            const char *w[] = {"'out'", "declared [?,5]", "[N,4]", NULL};
            expect_fail(bad, len, ADJ_ERR_FORMAT, w, "output of a wrong declared shape");
        } else { /* [N,3,4,4] out: model_load_onnx wants [N,classes] */
            snprintf(path, sizeof path, "%s/relu.onnx", dir);
            tu_write_file(path, bad, len);
            model *m = NULL;
            int rc = model_load_onnx(path, NULL, &m, err, sizeof err);
            CHECK(rc == ADJ_ERR_UNSUPPORTED && !m && strstr(err, "[N,3,4,4]") &&
                      strstr(err, "[N,classes]"), "not a classifier's output: rc %d: %s", rc, err);
            model_free(m);
        }
        free(bad);
    }
    snprintf(path, sizeof path, "%s/empty.onnx", dir);
    tu_write_file(path, "", 0);
    gr_graph *g = NULL;
    CHECK(onnx_load(path, NULL, &g, err, sizeof err) == ADJ_ERR_FORMAT && !g &&
          strstr(err, "empty.onnx"), "an empty file: %s", err);
    snprintf(path, sizeof path, "%s/none.onnx", dir);
    CHECK(onnx_load(path, NULL, &g, err, sizeof err) == ADJ_ERR_IO && strstr(err, "none.onnx"),
          "missing file: %s", err);
    tu_rmtree(dir);
    free(good);
}

int main(int argc, char **argv)
{
    test_convs();
    test_network();
    test_wire();
    test_bad_files();
    return tu_done();
}
