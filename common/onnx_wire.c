/*
 * onnx_wire.c - a ModelProto unpacked without copying its initializers'
 * raw_data (see onnx_wire.h).
 *
 * The wire format: a message is a sequence of fields, each a varint tag
 * (field number << 3 | wire type) and a value: a varint (type 0), 8 bytes
 * (1), a varint length and that many bytes (2: strings, bytes, submessages,
 * packed arrays) or 4 bytes (5). The fields walked here are ModelProto.graph
 * (7), GraphProto.initializer (5) and TensorProto.raw_data (9); every other
 * field is copied as it is into a smaller buffer that protobuf-c unpacks.
 */
#include "onnx_wire.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "ut_buf.h"

enum { MODEL_GRAPH = 7, GRAPH_INITIALIZER = 5, TENSOR_RAW_DATA = 9, WIRE_LEN = 2 };

/* One field of a message being walked. */
typedef struct {
    const uint8_t *start;   /* its first byte (the tag) */
    uint64_t num;           /* field number */
    int type;               /* wire type */
    const uint8_t *payload; /* type 2: its bytes */
    size_t len;             /* type 2: their length */
} wire_field;

/* A varint at *p (before end), at most 10 bytes: 0, or -1. */
static int rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (*p >= end)
            return -1;
        const uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* The field at *p (before end) into *f, *p moved past it: 0, or -1 (corrupt). */
static int rd_field(const uint8_t **p, const uint8_t *end, wire_field *f)
{
    uint64_t tag, v;
    f->start = *p;
    if (rd_varint(p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return -1;
    f->num = tag >> 3;
    f->type = (int)(tag & 7);
    f->payload = NULL;
    f->len = 0;
    switch (f->type) {
    case 0: return rd_varint(p, end, &v);
    case 1: case 5: {
        const size_t n = f->type == 1 ? 8 : 4;
        if ((size_t)(end - *p) < n)
            return -1;
        *p += n;
        return 0;
    }
    case WIRE_LEN:
        if (rd_varint(p, end, &v) || v > (uint64_t)(end - *p))
            return -1;
        f->payload = *p, f->len = (size_t)v;
        *p += v;
        return 0;
    default: return -1; /* groups (3, 4), 6, 7: ONNX has none */
    }
}

static int corrupt(char *err, size_t errsz, const char *what)
{
    return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                    "not an ONNX model: the protobuf is truncated or corrupt (%s)", what);
}

/* The spans of the skipped fields, in order. */
typedef struct {
    const uint8_t **p;
    size_t *len;
    size_t n, cap;
} span_list;

static int add_span(span_list *s, const uint8_t *p, size_t n)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        const uint8_t **np = realloc(s->p, cap * sizeof *np);
        if (np)
            s->p = np;
        size_t *nl = np ? realloc(s->len, cap * sizeof *nl) : NULL;
        if (!nl)
            return ADJ_ERR_NOMEM;
        s->len = nl, s->cap = cap;
    }
    s->p[s->n] = p, s->len[s->n++] = n;
    return 0;
}

static void free_spans(span_list *s)
{
    free(s->p);
    free(s->len);
}

/*
 * Copies msg's fields but those numbered `skip` of wire type 2 into *out,
 * the skipped payloads' spans to *skipped. 0, -1 for a corrupt message, or
 * ADJ_ERR_NOMEM.
 */
static int strip(const uint8_t *msg, size_t len, uint64_t skip, ut_buf *out, span_list *skipped)
{
    const uint8_t *p = msg, *end = msg + len;
    out->len = 0;
    while (p < end) {
        wire_field f;
        if (rd_field(&p, end, &f))
            return -1;
        int rc;
        if (f.num == skip && f.type == WIRE_LEN) {
            if ((rc = add_span(skipped, f.payload, f.len)))
                return rc;
        } else if (ut_buf_add(out, f.start, (size_t)(p - f.start))) {
            return ADJ_ERR_NOMEM;
        }
    }
    return 0;
}

/* The bytes of b for protobuf-c (never NULL). */
static const uint8_t *bytes(const ut_buf *b) { return b->s ? (const uint8_t *)b->s : (const uint8_t *)""; }

/* Forgets g's borrowed raw_data (NULL is fine), so that protobuf-c does not free them. */
static void unborrow(Onnx__GraphProto *g)
{
    for (size_t i = 0; g && i < g->n_initializer; i++)
        if (g->initializer[i]) {
            g->initializer[i]->raw_data.data = NULL;
            g->initializer[i]->raw_data.len = 0;
            g->initializer[i]->has_raw_data = 0;
        }
}

/* One initializer: the TensorProto at p without its raw_data, which (the last one, as
 * protobuf reads a repeated scalar field) is pointed at in place. */
static int unpack_tensor(const uint8_t *p, size_t len, ut_buf *tmp, Onnx__TensorProto **out,
                         char *err, size_t errsz)
{
    span_list raw = {0};
    int rc = strip(p, len, TENSOR_RAW_DATA, tmp, &raw);
    if (rc) {
        free_spans(&raw);
        return rc < 0 ? corrupt(err, errsz, "an initializer")
                      : adj_fail(err, errsz, rc, "out of memory");
    }
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, tmp->len, bytes(tmp));
    if (!t) {
        free_spans(&raw);
        return corrupt(err, errsz, "an initializer");
    }
    t->has_raw_data = raw.n > 0;
    t->raw_data.data = raw.n ? (uint8_t *)raw.p[raw.n - 1] : NULL;
    t->raw_data.len = raw.n ? raw.len[raw.n - 1] : 0;
    free_spans(&raw);
    *out = t;
    return ADJ_OK;
}

/* The GraphProto at p, its initializers unpacked one by one. */
static int unpack_graph(const uint8_t *p, size_t len, Onnx__GraphProto **out, char *err,
                        size_t errsz)
{
    ut_buf tmp = {0};
    span_list init = {0};
    int rc = strip(p, len, GRAPH_INITIALIZER, &tmp, &init);
    Onnx__GraphProto *g = NULL;
    if (rc)
        rc = rc < 0 ? corrupt(err, errsz, "the graph") : adj_fail(err, errsz, rc, "out of memory");
    else if (!(g = onnx__graph_proto__unpack(NULL, tmp.len, bytes(&tmp))))
        rc = corrupt(err, errsz, "the graph");
    else if (init.n && !(g->initializer = calloc(init.n, sizeof *g->initializer)))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < init.n; i++)
        if (!(rc = unpack_tensor(init.p[i], init.len[i], &tmp, &g->initializer[i], err, errsz)))
            g->n_initializer = i + 1;
    ut_buf_free(&tmp);
    free_spans(&init);
    if (rc && g) {
        unborrow(g);
        onnx__graph_proto__free_unpacked(g, NULL);
        return rc;
    }
    *out = g;
    return rc;
}

int onnx_wire_unpack(const uint8_t *buf, size_t len, Onnx__ModelProto **out, char *err,
                     size_t errsz)
{
    ut_buf tmp = {0};
    span_list graph = {0};
    Onnx__ModelProto *m = NULL;
    if (!buf) /* an empty file's (unmapped) bytes */
        buf = (const uint8_t *)"", len = 0;
    int rc = strip(buf, len, MODEL_GRAPH, &tmp, &graph);
    if (rc)
        rc = rc < 0 ? corrupt(err, errsz, "the model") : adj_fail(err, errsz, rc, "out of memory");
    else if (graph.n > 1) /* protobuf would merge them: never seen from an exporter */
        rc = corrupt(err, errsz, "two graphs");
    else if (!(m = onnx__model_proto__unpack(NULL, tmp.len, bytes(&tmp))))
        rc = corrupt(err, errsz, "the model");
    else if (graph.n)
        rc = unpack_graph(graph.p[0], graph.len[0], &m->graph, err, errsz);
    ut_buf_free(&tmp);
    free_spans(&graph);
    if (rc) {
        onnx_wire_free(m);
        return rc;
    }
    *out = m;
    return ADJ_OK;
}

void onnx_wire_free(Onnx__ModelProto *m)
{
    if (!m)
        return;
    unborrow(m->graph);
    onnx__model_proto__free_unpacked(m, NULL);
}
