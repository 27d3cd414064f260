/*
 * graph.c - the graph engine (see graph.h): building, shape inference,
 * constant and BatchNormalization folding, the memory plan, the forward pass.
 */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "gemm.h"
#include "ut_clock.h"

/* Largest tensor, in values per image: keeps every size computation exact. */
#define GR_MAX_ELEMS 4294967296.0

typedef struct {
    char *name;
    op_tensor t;      /* dtype, batched, shape (d[0] OP_DIM_BATCH if batched), const data */
    int is_const;
    int hold;         /* GR_DATA_OWN / GR_DATA_EXTERN / GR_DATA_SEALED */
    int producer;     /* node index, -1 for inputs and constants */
    int uses;         /* live consumers (+1 per graph output) after finalize */
    int unread;       /* a constant no kernel reads after finalize (gr_const_unread) */
} gr_tensor;

typedef struct {
    char *name;
    const op_def *def;
    void *params;
    int n_in, n_out;
    int *in, *out;    /* tensor indices, -1 absent */
    int live;         /* runs at forward time */
    const op_epilogue *epi; /* in params: what fusion folded into it (in[3] a residual), or NULL */
    char label[24];   /* "Conv+Add+Relu" for a fused node, else "" (gr_node_label) */
} gr_node;

typedef struct {
    void *addr;
    size_t len;
    void (*release)(void *); /* NULL: munmap(addr, len) */
} gr_map;

struct gr_graph {
    gr_tensor *t;
    int nt, cap_t;
    gr_node *nodes;
    int nn, cap_n;
    gr_map *maps;
    int nm, cap_m;
    int input;
    int *outputs;
    int n_outputs;
    int finalized;
    int *order;       /* live nodes in run order */
    int n_order;
    int per_image;    /* gr_set_per_image: batches run image by image */
    int no_fusion;    /* gr_set_fusion(g, 0): activations stay nodes of their own */
};

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q)
        return -1;
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
    *p = q;
    *cap = nc;
    return 0;
}

/* Nonzero if the graph frees data held so (GR_DATA_OWN, GR_DATA_SEALED). */
static int held(int hold) { return hold != GR_DATA_EXTERN; }

static void *aligned_alloc64(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? (bytes + 63) & ~(size_t)63 : 64))
        return NULL;
    return p;
}

int gr_new(gr_graph **out, char *err, size_t errsz)
{
    gr_graph *g = calloc(1, sizeof *g);
    if (!g)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    g->input = -1;
    *out = g;
    return ADJ_OK;
}

void gr_free(gr_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->nt; i++) {
        free(g->t[i].name);
        if (held(g->t[i].hold))
            free(g->t[i].t.data);
    }
    for (int i = 0; i < g->nn; i++) {
        free(g->nodes[i].name);
        op_release(g->nodes[i].def, g->nodes[i].params);
        free(g->nodes[i].params);
        free(g->nodes[i].in);
        free(g->nodes[i].out);
    }
    for (int i = 0; i < g->nm; i++)
        if (g->maps[i].release)
            g->maps[i].release(g->maps[i].addr);
        else
            munmap(g->maps[i].addr, g->maps[i].len);
    free(g->t);
    free(g->nodes);
    free(g->maps);
    free(g->outputs);
    free(g->order);
    free(g);
}

int gr_find_tensor(const gr_graph *g, const char *name)
{
    for (int i = g->nt - 1; i >= 0; i--)
        if (!strcmp(g->t[i].name, name))
            return i;
    return -1;
}

int gr_add_tensor(gr_graph *g, const char *name, op_dtype dtype, const op_shape *shape,
                  int batched, int is_const, void *data, int hold, int *id, char *err,
                  size_t errsz)
{
    int rc = ADJ_OK;
    char *nm = NULL;
    if (g->finalized)
        rc = adj_fail(err, errsz, ADJ_ERR_STATE, "graph already finalized");
    else if (!name || !*name)
        rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "a tensor without a name");
    else if (gr_find_tensor(g, name) >= 0)
        rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "tensor '%s' defined twice", name);
    else if (shape->rank < 0 || shape->rank > OP_MAX_RANK)
        rc = adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "tensor '%s' has rank %d (at most %d)", name,
                      shape->rank, OP_MAX_RANK);
    else if (op_dtype_size(dtype) == 0)
        rc = adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "tensor '%s' has an unsupported type", name);
    else if (batched && (is_const || shape->rank < 1 || shape->d[0] != OP_DIM_BATCH))
        rc = adj_fail(err, errsz, ADJ_ERR_ARG, "tensor '%s': only a run-time tensor is batched", name);
    for (int i = batched ? 1 : 0; rc == ADJ_OK && i < shape->rank; i++)
        if (shape->d[i] < 0 || shape->d[i] > ((int64_t)1 << 40))
            rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "tensor '%s' has dimension %d = %lld", name, i,
                          (long long)shape->d[i]);
    if (rc == ADJ_OK && (grow((void **)&g->t, &g->cap_t, g->nt + 1, sizeof *g->t) ||
                         !(nm = strdup(name))))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if (rc) {
        if (held(hold))
            free(data);
        return rc;
    }
    gr_tensor *t = &g->t[g->nt];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->t.dtype = dtype;
    t->t.batched = batched;
    t->t.shape = *shape;
    t->t.data = is_const ? data : NULL;
    t->is_const = is_const;
    t->hold = hold;
    t->producer = -1;
    if (!is_const && held(hold))
        free(data);
    *id = g->nt++;
    return ADJ_OK;
}

int gr_add_mapping(gr_graph *g, void *addr, size_t len, char *err, size_t errsz)
{
    if (grow((void **)&g->maps, &g->cap_m, g->nm + 1, sizeof *g->maps)) {
        munmap(addr, len);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    g->maps[g->nm++] = (gr_map){addr, len, NULL};
    return ADJ_OK;
}

int gr_add_owned(gr_graph *g, void *obj, void (*release)(void *), char *err, size_t errsz)
{
    if (grow((void **)&g->maps, &g->cap_m, g->nm + 1, sizeof *g->maps)) {
        release(obj);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    g->maps[g->nm++] = (gr_map){obj, 0, release};
    return ADJ_OK;
}

int gr_add_node(gr_graph *g, const char *name, const char *op_type, const int *in, int n_in,
                const int *out, int n_out, const op_attr *attrs, int n_attrs, int opset,
                char *err, size_t errsz)
{
    char msg[ADJ_ERRLEN];
    const char *nm = name && *name ? name : "(unnamed)";
    if (g->finalized)
        return adj_fail(err, errsz, ADJ_ERR_STATE, "graph already finalized");
    const op_def *d = op_find(op_type);
    if (!d)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "node '%s': operator %s is not supported",
                        nm, op_type);
    if (n_in < d->min_in || n_in > d->max_in || n_out < d->min_out || n_out > d->max_out)
        return adj_fail(err, errsz, n_out > d->max_out ? ADJ_ERR_UNSUPPORTED : ADJ_ERR_FORMAT,
                        "node '%s' (%s): %d inputs and %d outputs (takes %d..%d and %d..%d)", nm,
                        op_type, n_in, n_out, d->min_in, d->max_in, d->min_out, d->max_out);
    for (int i = 0; i < n_in; i++) {
        if (in[i] >= g->nt || in[i] < -1)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "node '%s' (%s): input %d is not a tensor", nm,
                            op_type, i);
        if (in[i] < 0 && i < d->min_in)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "node '%s' (%s): input %d is missing", nm,
                            op_type, i);
    }
    for (int i = 0; i < n_out; i++) {
        if (out[i] < 0 || out[i] >= g->nt)
            continue; /* an unnamed (unused) optional output */
        const gr_tensor *t = &g->t[out[i]];
        if (t->is_const || t->producer >= 0 || out[i] == g->input)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "node '%s' (%s): output '%s' is defined twice",
                            nm, op_type, t->name);
    }
    for (int i = 0; i < n_attrs; i++)
        if (!op_attr_accepted(d, attrs[i].name))
            return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                            "node '%s' (%s): attribute '%s' is not supported", nm, op_type,
                            attrs[i].name);
    void *params = calloc(1, d->params_size ? d->params_size : 1);
    int *ins = malloc(sizeof(int) * (size_t)(n_in > 3 ? n_in : 3));
    int *outs = malloc(sizeof(int) * (size_t)n_out);
    char *nmc = strdup(nm);
    int rc = ADJ_OK;
    if (!params || !ins || !outs || !nmc ||
        grow((void **)&g->nodes, &g->cap_n, g->nn + 1, sizeof *g->nodes))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    else if (d->parse && (rc = d->parse(params, attrs, n_attrs, opset, msg, sizeof msg)))
        adj_fail(err, errsz, rc, "node '%s' (%s): %s", nm, op_type, msg);
    if (rc) {
        free(params), free(ins), free(outs), free(nmc);
        return rc;
    }
    for (int i = 0; i < 3; i++)
        ins[i] = -1;
    memcpy(ins, in, sizeof(int) * (size_t)n_in);
    for (int i = 0; i < n_out; i++) {
        outs[i] = out[i] >= 0 && out[i] < g->nt ? out[i] : -1;
        if (outs[i] >= 0)
            g->t[outs[i]].producer = g->nn;
    }
    g->nodes[g->nn++] = (gr_node){nmc, d, params, n_in, n_out, ins, outs, 1, NULL, ""};
    return ADJ_OK;
}

int gr_set_io(gr_graph *g, int input, const int *outputs, int n_out, char *err, size_t errsz)
{
    if (input < 0 || input >= g->nt || g->t[input].is_const || g->t[input].producer >= 0)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "the graph input is not an input tensor");
    if (g->t[input].t.dtype != OP_FLOAT)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "input '%s' is %s (only float)",
                        g->t[input].name, op_dtype_name(g->t[input].t.dtype));
    if (n_out < 1)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "the graph has no output");
    int *o = malloc(sizeof(int) * (size_t)n_out);
    if (!o)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_out; i++) {
        if (outputs[i] < 0 || outputs[i] >= g->nt) {
            free(o);
            return adj_fail(err, errsz, ADJ_ERR_ARG, "output %d is not a tensor", i);
        }
        o[i] = outputs[i];
    }
    free(g->outputs);
    g->outputs = o;
    g->n_outputs = n_out;
    g->input = input;
    return ADJ_OK;
}

/* The op_tensor views of a node's inputs and outputs at load time. */
static void node_views(const gr_graph *g, const gr_node *nd, op_tensor *in, op_tensor *out)
{
    for (int i = 0; i < nd->n_in; i++) {
        if (nd->in[i] < 0) {
            memset(&in[i], 0, sizeof in[i]);
            continue;
        }
        const gr_tensor *t = &g->t[nd->in[i]];
        in[i] = t->t;
        in[i].data = t->is_const ? t->t.data : NULL;
    }
    for (int i = 0; i < nd->n_out; i++) {
        memset(&out[i], 0, sizeof out[i]);
        if (nd->out[i] >= 0)
            out[i] = g->t[nd->out[i]].t;
    }
}

/* Counts, for every tensor, the live nodes that read it and the graph outputs. */
static void count_uses(gr_graph *g)
{
    for (int i = 0; i < g->nt; i++)
        g->t[i].uses = 0;
    for (int k = 0; k < g->nn; k++)
        if (g->nodes[k].live)
            for (int i = 0; i < g->nodes[k].n_in; i++)
                if (g->nodes[k].in[i] >= 0)
                    g->t[g->nodes[k].in[i]].uses++;
    for (int i = 0; i < g->n_outputs; i++)
        g->t[g->outputs[i]].uses++;
}

/* Runs a node whose inputs are all constants at load time; its outputs become constants. */
static int fold_node(gr_graph *g, gr_node *nd, op_tensor *in, op_tensor *out, char *err,
                     size_t errsz)
{
    float *scratch = NULL;
    size_t sc = nd->def->scratch ? nd->def->scratch(nd->params, in, nd->n_in, out) : 0;
    if (sc && !(scratch = aligned_alloc64(sc * sizeof(float))))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nd->n_out; i++) {
        if (nd->out[i] < 0 || out[i].dtype == OP_NONE)
            continue;
        out[i].data = aligned_alloc64(op_numel(&out[i].shape) * op_dtype_size(out[i].dtype));
        if (!out[i].data) {
            for (int j = 0; j < i; j++)
                if (nd->out[j] >= 0 && out[j].dtype != OP_NONE) {
                    free(out[j].data);
                    out[j].data = NULL;
                }
            free(scratch);
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        }
    }
    gemm_ws *gemm = NULL; /* a product at load: one thread */
    if (gemm_ws_new(1, &gemm, err, errsz)) {
        free(scratch);
        for (int i = 0; i < nd->n_out; i++)
            if (nd->out[i] >= 0 && out[i].dtype != OP_NONE) {
                free(out[i].data);
                out[i].data = NULL;
            }
        return ADJ_ERR_NOMEM;
    }
    nd->def->forward(nd->params, in, nd->n_in, out, nd->n_out, scratch, gemm);
    gemm_ws_free(gemm);
    free(scratch);
    for (int i = 0; i < nd->n_out; i++) {
        if (nd->out[i] < 0 || out[i].dtype == OP_NONE)
            continue;
        gr_tensor *t = &g->t[nd->out[i]];
        t->t.data = out[i].data;
        t->is_const = 1;
        t->hold = GR_DATA_SEALED;
    }
    nd->live = 0;
    return ADJ_OK;
}

/* Folds BatchNormalization node k into the Conv producing its input, if it can. */
static int fold_bn(gr_graph *g, int k, char *err, size_t errsz)
{
    gr_node *bn = &g->nodes[k];
    const int x = bn->in[0];
    const gr_tensor *xt = &g->t[x];
    if (xt->producer < 0 || xt->uses != 1)
        return ADJ_OK;
    gr_node *cv = &g->nodes[xt->producer];
    if (!cv->live || strcmp(cv->def->name, "Conv"))
        return ADJ_OK;
    for (int i = 1; i < 5; i++)
        if (!g->t[bn->in[i]].is_const)
            return ADJ_OK;
    const gr_tensor *w = &g->t[cv->in[1]];
    const gr_tensor *b = cv->in[2] >= 0 ? &g->t[cv->in[2]] : NULL;
    if (!w->is_const || (b && !b->is_const))
        return ADJ_OK;
    const int M = (int)w->t.shape.d[0];
    const size_t K = op_numel(&w->t.shape) / (size_t)M;
    float *w2 = aligned_alloc64(sizeof(float) * (size_t)M * K);
    float *b2 = aligned_alloc64(sizeof(float) * (size_t)M);
    if (!w2 || !b2) {
        free(w2), free(b2);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    op_fold_bn(w->t.data, b ? b->t.data : NULL, M, K, g->t[bn->in[1]].t.data,
               g->t[bn->in[2]].t.data, g->t[bn->in[3]].t.data, g->t[bn->in[4]].t.data,
               op_bn_epsilon(bn->params), w2, b2);
    /* new constants named after the BatchNormalization node */
    char *nw = malloc(strlen(bn->name) + 16), *nb = malloc(strlen(bn->name) + 16);
    int iw, ib, rc;
    if (!nw || !nb) {
        free(nw), free(nb), free(w2), free(b2);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    sprintf(nw, "%s#W%d", bn->name, k);
    sprintf(nb, "%s#B%d", bn->name, k);
    op_shape bs = {1, {M}};
    op_shape ws = w->t.shape;
    rc = gr_add_tensor(g, nw, OP_FLOAT, &ws, 0, 1, w2, GR_DATA_SEALED, &iw, err, errsz);
    if (rc == ADJ_OK)
        rc = gr_add_tensor(g, nb, OP_FLOAT, &bs, 0, 1, b2, GR_DATA_SEALED, &ib, err, errsz);
    else
        free(b2);
    free(nw), free(nb);
    if (rc)
        return rc;
    cv = &g->nodes[g->t[x].producer]; /* g->t may have moved; nodes did not */
    bn = &g->nodes[k];
    cv->in[1] = iw;
    cv->in[2] = ib;
    if (cv->n_in < 3)
        cv->n_in = 3;
    cv->out[0] = bn->out[0];
    g->t[bn->out[0]].producer = (int)(cv - g->nodes);
    g->t[x].producer = -1;
    bn->live = 0;
    return ADJ_OK;
}

/* Node nd now computes what node k computed after it: its output, k dead. */
static void fuse_take(gr_graph *g, gr_node *nd, int k, const char *what)
{
    gr_node *o = &g->nodes[k];
    g->t[nd->out[0]].producer = -1;
    nd->out[0] = o->out[0];
    g->t[o->out[0]].producer = (int)(nd - g->nodes);
    o->live = 0;
    if (!nd->label[0])
        snprintf(nd->label, sizeof nd->label, "%s", nd->def->name);
    const size_t l = strlen(nd->label);
    snprintf(nd->label + l, sizeof nd->label - l, "+%s", what);
}

/* The live Conv or Gemm producing tensor x as its output 0 and read by one node only, with
 * its epilogue (NULL if none; for a Conv only when conv_only). */
static gr_node *fuse_producer(gr_graph *g, int x, int conv_only, op_epilogue **e)
{
    const gr_tensor *t = &g->t[x];
    if (t->is_const || t->producer < 0 || t->uses != 1)
        return NULL;
    gr_node *nd = &g->nodes[t->producer];
    if (!nd->live || nd->out[0] != x || (conv_only && strcmp(nd->def->name, "Conv")))
        return NULL;
    return (*e = op_epilogue_of(nd->def, nd->params)) ? nd : NULL;
}

/*
 * Same-shape Add node k into the Conv producing one operand (the later of
 * two such), whose epilogue then adds the other operand r: only when r is
 * computed before that Conv and no node in between reads it, so that r's
 * gradient sums its parts in the same order. 0, or -1 out of memory.
 */
static int fuse_add(gr_graph *g, int k)
{
    const gr_node *ad = &g->nodes[k];
    if (ad->in[0] < 0 || ad->in[1] < 0 || ad->in[0] == ad->in[1])
        return 0;
    gr_node *cv = NULL;
    op_epilogue *e = NULL;
    int side = -1;
    for (int s = 0; s < 2; s++) {
        const gr_tensor *a = &g->t[ad->in[s]], *b = &g->t[ad->in[1 - s]];
        op_epilogue *es;
        gr_node *c = fuse_producer(g, ad->in[s], 1, &es);
        if (c && !es->act && !es->residual && !b->is_const && a->t.batched == b->t.batched &&
            a->t.shape.rank == b->t.shape.rank &&
            !memcmp(a->t.shape.d, b->t.shape.d, sizeof(int64_t) * (size_t)a->t.shape.rank) &&
            (!cv || c > cv))
            cv = c, e = es, side = s;
    }
    if (!cv)
        return 0;
    const int r = ad->in[1 - side], at = (int)(cv - g->nodes);
    if (g->t[r].producer >= at)
        return 0;
    for (int j = at + 1; j < k; j++)
        for (int i = 0; g->nodes[j].live && i < g->nodes[j].n_in; i++)
            if (g->nodes[j].in[i] == r)
                return 0;
    if (cv->n_in < 4) {
        int *in = realloc(cv->in, 4 * sizeof *in);
        if (!in)
            return -1;
        for (int i = cv->n_in; i < 4; i++)
            in[i] = -1;
        cv->in = in;
        cv->n_in = 4;
    }
    cv->in[3] = r;
    e->residual = 1;
    cv->epi = e;
    fuse_take(g, cv, k, "Add");
    return 0;
}

/* A Relu or Clip node k into the Conv or Gemm producing its input (after a fused Add too). */
static void fuse_act(gr_graph *g, int k)
{
    gr_node *nd = &g->nodes[k];
    op_epilogue a, *e;
    if (!op_epilogue_act(nd->def, nd->params, &a) || nd->in[0] < 0)
        return;
    gr_node *cv = fuse_producer(g, nd->in[0], 0, &e);
    if (!cv || e->act)
        return;
    e->act = a.act, e->lo = a.lo, e->hi = a.hi;
    cv->epi = e;
    fuse_take(g, cv, k, nd->def->name);
}

/* The fusion pass (graph.h): residual Adds first, then the activations. 0 or -1. */
static int fuse_all(gr_graph *g)
{
    for (int k = 0; k < g->nn; k++)
        if (g->nodes[k].live && !strcmp(g->nodes[k].def->name, "Add")) {
            if (fuse_add(g, k))
                return -1;
            count_uses(g);
        }
    for (int k = 0; k < g->nn; k++)
        if (g->nodes[k].live) {
            fuse_act(g, k);
            count_uses(g);
        }
    return 0;
}

void gr_set_fusion(gr_graph *g, int on) { g->no_fusion = !on; }

/*
 * Frees the sealed constants node nd reads that no kernel will read any more:
 * once their last reader is prepared, if every reader has what it derived in
 * their place (op_prepared_unread: a Winograd Conv's U for its W), so that a
 * folded convolution's weights are not held beside U (nor, at load, all of
 * them at once). left[t]: the reads of t by nodes not yet prepared; need[t]:
 * nonzero if a prepared reader (or a graph output) still reads t. Nothing
 * else reads or writes a sealed constant, so nothing could need it again.
 */
static void drop_unread(gr_graph *g, const gr_node *nd, int *left, unsigned char *need)
{
    const int unread = op_prepared_unread(nd->def, nd->params);
    for (int i = 0; i < nd->n_in; i++) {
        const int id = nd->in[i];
        if (id < 0)
            continue;
        gr_tensor *t = &g->t[id];
        need[id] |= !(i < 8 && (unread & OPB_IN(i)));
        t->unread = --left[id] == 0 && !need[id] && t->is_const;
        if (t->unread && t->hold == GR_DATA_SEALED) {
            free(t->t.data);
            t->t.data = NULL;
            t->hold = GR_DATA_EXTERN; /* nothing left to free */
        }
    }
}

/* The run order of the live nodes, each prepared (op_prepare: what kernels
 * derive from constants), and the sealed constants they no longer read freed. */
static int prepare_nodes(gr_graph *g, char *err, size_t errsz)
{
    op_tensor in[64], out[8];
    int *left = calloc((size_t)g->nt + 1, sizeof *left), rc = ADJ_OK;
    unsigned char *need = calloc((size_t)g->nt + 1, 1);
    free(g->order);
    g->order = malloc(sizeof(int) * (size_t)(g->nn ? g->nn : 1));
    if (!g->order || !left || !need) {
        free(left), free(need);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    g->n_order = 0;
    for (int i = 0; i < g->n_outputs; i++)
        need[g->outputs[i]] = 1;
    for (int k = 0; k < g->nn; k++)
        for (int i = 0; g->nodes[k].live && i < g->nodes[k].n_in; i++)
            if (g->nodes[k].in[i] >= 0)
                left[g->nodes[k].in[i]]++;
    for (int k = 0; k < g->nn && rc == ADJ_OK; k++) {
        gr_node *nd = &g->nodes[k];
        if (!nd->live)
            continue;
        for (int i = 1; i < nd->n_out; i++) /* optional outputs nobody reads: not computed */
            if (nd->out[i] >= 0 && g->t[nd->out[i]].uses == 0)
                nd->out[i] = -1;
        node_views(g, nd, in, out);
        char msg[ADJ_ERRLEN];
        if ((rc = op_prepare(nd->def, nd->params, in, nd->n_in, msg, sizeof msg)))
            adj_fail(err, errsz, rc, "node '%s' (%s): %s", nd->name, nd->def->name, msg);
        else
            drop_unread(g, nd, left, need), g->order[g->n_order++] = k;
    }
    free(left), free(need);
    return rc;
}

int gr_finalize(gr_graph *g, char *err, size_t errsz)
{
    char msg[ADJ_ERRLEN];
    op_tensor in[64], out[8];
    if (g->finalized)
        return adj_fail(err, errsz, ADJ_ERR_STATE, "graph already finalized");
    if (g->input < 0)
        return adj_fail(err, errsz, ADJ_ERR_STATE, "graph input and outputs not set");
    count_uses(g);
    /* 1. shape inference and constant folding, in node order (topological) */
    for (int k = 0; k < g->nn; k++) {
        gr_node *nd = &g->nodes[k];
        node_views(g, nd, in, out);
        for (int i = 0; i < nd->n_out; i++)
            if (nd->out[i] >= 0 && (g->t[nd->out[i]].uses > 0 || i == 0))
                out[i].dtype = OP_FLOAT; /* "used": infer sets the real type */
            else
                out[i].dtype = OP_NONE;
        int rc = nd->def->infer(nd->params, in, nd->n_in, out, nd->n_out, msg, sizeof msg);
        if (rc)
            return adj_fail(err, errsz, rc, "node '%s' (%s): %s", nd->name, nd->def->name, msg);
        for (int i = 0; i < nd->n_out; i++) { /* every tensor: positive dims, bounded size */
            if (nd->out[i] < 0 || out[i].dtype == OP_NONE)
                continue;
            double elems = 1;
            for (int k = 0; k < out[i].shape.rank; k++) {
                int64_t dk = out[i].shape.d[k];
                if (dk == OP_DIM_BATCH && k == 0 && out[i].batched)
                    continue;
                if (dk < 1)
                    return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                                    "node '%s' (%s): output %d has dimension %d = %lld (empty "
                                    "tensors are not supported)", nd->name, nd->def->name, i, k,
                                    (long long)dk);
                elems *= (double)dk;
            }
            if (elems > GR_MAX_ELEMS)
                return adj_fail(err, errsz, ADJ_ERR_LIMIT,
                                "node '%s' (%s): output %d has %.3g values per image (at most 2^32)",
                                nd->name, nd->def->name, i, elems);
        }
        int all_const = 1;
        for (int i = 0; i < nd->n_in; i++)
            if (nd->in[i] >= 0 && !g->t[nd->in[i]].is_const)
                all_const = 0;
        for (int i = 0; i < nd->n_out; i++)
            if (nd->out[i] >= 0) {
                gr_tensor *t = &g->t[nd->out[i]];
                t->t.dtype = out[i].dtype ? out[i].dtype : OP_FLOAT;
                t->t.batched = out[i].batched;
                t->t.shape = out[i].shape;
                if (out[i].batched)
                    all_const = 0;
            }
        if (all_const || (nd->def->flags & OPF_SHAPE_ONLY)) {
            if ((rc = fold_node(g, nd, in, out, msg, sizeof msg)))
                return adj_fail(err, errsz, rc, "node '%s' (%s): %s", nd->name, nd->def->name, msg);
            continue;
        }
        for (int i = 0; i < nd->n_out; i++)
            if (nd->out[i] >= 0 && g->t[nd->out[i]].t.dtype != OP_FLOAT)
                return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                                "node '%s' (%s): computes a %s tensor at run time (only float; "
                                "integer tensors must fold into constants at load)",
                                nd->name, nd->def->name, op_dtype_name(g->t[nd->out[i]].t.dtype));
    }
    /* 2. dead nodes: nothing an output depends on */
    for (int k = g->nn - 1; k >= 0; k--) {
        count_uses(g);
        gr_node *nd = &g->nodes[k];
        if (!nd->live)
            continue;
        int used = 0;
        for (int i = 0; i < nd->n_out; i++)
            if (nd->out[i] >= 0 && g->t[nd->out[i]].uses > 0)
                used = 1;
        nd->live = used;
    }
    count_uses(g);
    /* 3. BatchNormalization into the Conv before it */
    for (int k = 0; k < g->nn; k++)
        if (g->nodes[k].live && !strcmp(g->nodes[k].def->name, "BatchNormalization")) {
            int rc = fold_bn(g, k, msg, sizeof msg);
            if (rc)
                return adj_fail(err, errsz, rc, "node '%s' (BatchNormalization): %s",
                                g->nodes[k].name, msg);
            count_uses(g);
        }
    /* 3b. activations and residual Adds into the Conv or Gemm before them */
    if (!g->no_fusion && fuse_all(g))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    /* 4. free constants no live node reads; the run order; what kernels derive
     * from constants (op_prepare), and the sealed constants they replace freed */
    int rc;
    for (int i = 0; i < g->nt; i++)
        if (g->t[i].is_const && g->t[i].uses == 0) { /* extern data: its owner may free it */
            if (held(g->t[i].hold))
                free(g->t[i].t.data);
            g->t[i].t.data = NULL;
            g->t[i].hold = GR_DATA_EXTERN; /* nothing left to free */
        }
    if ((rc = prepare_nodes(g, err, errsz)))
        return rc;
    for (int i = 0; i < g->n_outputs; i++) {
        const gr_tensor *t = &g->t[g->outputs[i]];
        if (!t->is_const && t->producer < 0 && g->outputs[i] != g->input)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "output '%s' is computed by no node",
                            t->name);
        if (t->is_const && t->t.dtype == OP_INT64)
            for (size_t j = 0; j < op_numel(&t->t.shape); j++)
                if (((const int64_t *)t->t.data)[j] == OP_BATCH_VALUE)
                    return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                                    "output '%s' holds the batch size (a graph output computed "
                                    "from the batch)", t->name);
    }
    g->finalized = 1;
    return ADJ_OK;
}

int gr_refresh(gr_graph *g, char *err, size_t errsz)
{
    if (!g || !g->finalized)
        return adj_fail(err, errsz, ADJ_ERR_STATE, "the graph is not finalized");
    op_tensor in[64], out[8];
    for (int o = 0; o < g->n_order; o++) {
        gr_node *nd = &g->nodes[g->order[o]];
        node_views(g, nd, in, out);
        int rc = op_prepare(nd->def, nd->params, in, nd->n_in, err, errsz);
        if (rc)
            return rc;
    }
    return ADJ_OK;
}

/* ---- inspecting ------------------------------------------------------- */

int gr_set_per_image(gr_graph *g, char *err, size_t errsz)
{
    if (!g->finalized)
        return adj_fail(err, errsz, ADJ_ERR_STATE, "the graph is not finalized");
    for (int i = -1; i < g->n_outputs; i++) {
        const gr_tensor *t = &g->t[i < 0 ? g->input : g->outputs[i]];
        if (t->t.batched || t->t.shape.rank < 1 || t->t.shape.d[0] != 1 || t->t.dtype != OP_FLOAT ||
            (i >= 0 && (t->is_const || g->outputs[i] == g->input)))
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s '%s' is not one image's float tensor "
                            "computed by a node", i < 0 ? "input" : "output", t->name);
    }
    g->per_image = 1;
    return ADJ_OK;
}

void gr_input_shape(const gr_graph *g, op_shape *shape, int *batched)
{
    if (shape)
        *shape = g->t[g->input].t.shape;
    if (shape && g->per_image)
        shape->d[0] = OP_DIM_BATCH;
    if (batched)
        *batched = g->t[g->input].t.batched || g->per_image;
}

int gr_const_unused(const gr_graph *g, const char *name)
{
    const int id = g->finalized ? gr_find_tensor(g, name) : -1;
    return id >= 0 && g->t[id].is_const && g->t[id].uses == 0 && !g->t[id].t.data;
}

int gr_const_unread(const gr_graph *g, const char *name)
{
    const int id = g->finalized ? gr_find_tensor(g, name) : -1;
    return id >= 0 && g->t[id].is_const && (g->t[id].uses == 0 || g->t[id].unread);
}

int gr_n_outputs(const gr_graph *g) { return g->n_outputs; }

void gr_output_info(const gr_graph *g, int i, op_shape *shape, op_dtype *dtype, const char **name)
{
    const gr_tensor *t = &g->t[g->outputs[i]];
    if (shape)
        *shape = t->t.shape;
    if (shape && g->per_image)
        shape->d[0] = OP_DIM_BATCH;
    if (dtype)
        *dtype = t->t.dtype;
    if (name)
        *name = t->name;
}

int gr_n_nodes(const gr_graph *g) { return g->n_order; }

const char *gr_node_op(const gr_graph *g, int i) { return g->nodes[g->order[i]].def->name; }

const char *gr_node_label(const gr_graph *g, int i)
{
    const gr_node *nd = &g->nodes[g->order[i]];
    return nd->label[0] ? nd->label : nd->def->name;
}

int gr_node_source(const gr_graph *g, int i) { return g->order[i]; }

int gr_node_shape(const gr_graph *g, int i, int output, int k, op_shape *shape)
{
    const gr_node *nd = &g->nodes[g->order[i]];
    const int n = output ? nd->n_out : nd->n_in, *ids = output ? nd->out : nd->in;
    if (k < 0 || k >= n || ids[k] < 0)
        return -1;
    *shape = g->t[ids[k]].t.shape;
    return 0;
}

size_t gr_param_count(const gr_graph *g)
{
    size_t n = 0;
    for (int i = 0; i < g->nt; i++)
        if (g->t[i].is_const && g->t[i].uses > 0 && g->t[i].t.dtype == OP_FLOAT)
            n += op_numel(&g->t[i].t.shape);
    return n;
}

size_t gr_const_bytes(const gr_graph *g)
{
    size_t n = 0;
    for (int i = 0; i < g->nt; i++)
        if (g->t[i].is_const && held(g->t[i].hold) && g->t[i].t.data)
            n += op_numel(&g->t[i].t.shape) * op_dtype_size(g->t[i].t.dtype);
    return n;
}

/* ---- contexts: the memory plan and the forward pass ------------------- */

struct gr_ctx {
    const gr_graph *g;
    int max_batch;
    int n;             /* images in the last forward, 0 before */
    int *buf_of;       /* tensor -> buffer index, -1: none (constants, the input) */
    float **bufs;
    int n_bufs;
    float *scratch;
    gemm_ws *gemm;     /* the products' scratch and helper threads */
    const float *input;
    size_t bytes;
    double *seconds;   /* per run-time node, summed over forwards */
    unsigned char *alias; /* per run-time node: output 0 shares input 0's buffer, nothing to run */
    /* GR_BACKWARD */
    int flags;
    unsigned char *saved; /* tensor -> kept after the forward for a backward kernel */
    float *in_copy;    /* the graph input, when a backward reads it */
    int *gbuf_of;      /* tensor -> gradient buffer, -1: none */
    float **gbufs;
    int n_gbufs;
    unsigned char *ginit; /* tensor -> its gradient buffer holds this pass's sum */
    float *dlogits;    /* gr_backward_loss: output 0's gradient */
    int *grad_exp;     /* per image: the power of two of gr_backward_loss */
    double *bseconds;  /* per run-time node, summed over backwards */
    /* a per-image graph (gr_set_per_image): the batch's outputs and inputs */
    float **obufs;     /* [n_outputs]: max_batch images of output i */
    float *xs;         /* GR_BACKWARD: the batch's input, for the backward's recomputation */
};

void gr_ctx_free(gr_ctx *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_bufs; i++)
        free(c->bufs[i]);
    free(c->bufs);
    free(c->buf_of);
    free(c->scratch);
    gemm_ws_free(c->gemm);
    free(c->seconds);
    free(c->alias);
    free(c->saved);
    free(c->in_copy);
    free(c->gbuf_of);
    for (int i = 0; i < c->n_gbufs; i++)
        free(c->gbufs[i]);
    free(c->gbufs);
    free(c->ginit);
    free(c->dlogits);
    free(c->grad_exp);
    free(c->bseconds);
    for (int i = 0; c->obufs && i < c->g->n_outputs; i++)
        free(c->obufs[i]);
    free(c->obufs);
    free(c->xs);
    free(c);
}

void gr_ctx_node_seconds(const gr_ctx *c, double *fwd)
{
    memcpy(fwd, c->seconds, sizeof(double) * (size_t)c->g->n_order);
}

void gr_ctx_node_seconds_backward(const gr_ctx *c, double *bwd)
{
    for (int i = 0; i < c->g->n_order; i++)
        bwd[i] = c->bseconds ? c->bseconds[i] : 0.0;
}

size_t gr_ctx_bytes(const gr_ctx *c) { return c->bytes; }
const char *gr_ctx_kernel(const gr_ctx *c) { return gemm_kernel_name(c->gemm); }
int gr_ctx_threads(const gr_ctx *c) { return gemm_ws_threads(c->gemm); }

static size_t tensor_bytes(const gr_tensor *t, int max_batch)
{
    return op_numel(&t->t.shape) * (t->t.batched ? (size_t)max_batch : 1) * op_dtype_size(t->t.dtype);
}

/* A node that reads tensor t (-1 if none). */
static int reader_of(const gr_graph *g, int t)
{
    for (int o = 0; o < g->n_order; o++) {
        const gr_node *nd = &g->nodes[g->order[o]];
        for (int i = 0; i < nd->n_in; i++)
            if (nd->in[i] == t)
                return g->order[o];
    }
    return -1;
}

int gr_backward_check(const gr_graph *g, char *err, size_t errsz)
{
    if (!g || !g->finalized)
        return adj_fail(err, errsz, ADJ_ERR_STATE, "the graph is not finalized");
    const gr_tensor *o0 = &g->t[g->outputs[0]];
    if (g->outputs[0] == g->input || o0->t.dtype != OP_FLOAT)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "no gradient: output '%s' is the input or not float", o0->name);
    for (int o = 0; o < g->n_order; o++) {
        const gr_node *nd = &g->nodes[g->order[o]];
        const char *op = nd->def->name;
        if (!nd->def->backward)
            return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                            "node '%s' (%s): operator %s has no backward (input gradient) yet",
                            nd->name, op, op);
        for (int i = 0; i < nd->n_in; i++) {
            const int t = nd->in[i];
            const int fused = nd->epi && nd->epi->residual && i == 3; /* the graph's own */
            if (t >= 0 && !g->t[t].is_const && !op_grad_input(nd->def, i) && !fused)
                return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                                "node '%s' (%s): no gradient with respect to input %d ('%s'), "
                                "which is computed at run time", nd->name, op, i, g->t[t].name);
        }
        for (int i = 1; i < nd->n_out; i++) {
            const int t = nd->out[i];
            if (t >= 0 && (reader_of(g, t) >= 0 || t == g->outputs[0]))
                return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                                "node '%s' (%s): output %d ('%s') is read, and the backward "
                                "takes only output 0's gradient", nd->name, op, i, g->t[t].name);
        }
    }
    return ADJ_OK;
}

/* GR_BACKWARD: c->saved marks the run-time tensors some backward kernel reads. */
static int mark_saved(gr_ctx *c, char *err, size_t errsz)
{
    const gr_graph *g = c->g;
    int rc = gr_backward_check(g, err, errsz);
    if (rc)
        return rc;
    if (!(c->saved = calloc((size_t)g->nt + 1, 1)))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    for (int o = 0; o < g->n_order; o++) {
        const gr_node *nd = &g->nodes[g->order[o]];
        for (int i = 0; i < nd->n_in; i++)
            if (nd->in[i] >= 0 && ((c->flags & GR_KEEP_ALL) || op_bwd_reads(nd->def, i) ||
                                   ((c->flags & GR_PARAM_GRADS) && op_params_reads(nd->def, i))))
                c->saved[nd->in[i]] = 1;
        for (int i = 0; i < nd->n_out; i++)
            if (nd->out[i] >= 0 && ((c->flags & GR_KEEP_ALL) ||
                                    (i == 0 && (op_bwd_reads(nd->def, -1) || (nd->epi && nd->epi->act)))))
                c->saved[nd->out[i]] = 1;
    }
    for (int t = 0; t < g->nt; t++)
        if (g->t[t].is_const)
            c->saved[t] = 0; /* always there */
    return ADJ_OK;
}

/* Gradient buffer for tensor t: the smallest free one that fits, else the largest grown. */
static void grad_take(gr_ctx *c, int t, size_t *cap, unsigned char *busy)
{
    const size_t need = tensor_bytes(&c->g->t[t], c->max_batch);
    int best = -1, big = -1;
    for (int b = 0; b < c->n_gbufs; b++) {
        if (busy[b])
            continue;
        if (cap[b] >= need && (best < 0 || cap[b] < cap[best]))
            best = b;
        if (big < 0 || cap[b] > cap[big])
            big = b;
    }
    if (best < 0)
        best = big >= 0 ? big : c->n_gbufs++;
    if (cap[best] < need)
        cap[best] = need;
    busy[best] = 1;
    c->gbuf_of[t] = best;
}

/*
 * GR_BACKWARD: the gradient buffers, planned in reverse run order (a
 * tensor's gradient lives from its last reader's backward to its
 * producer's), the input copy and the loss buffers. 0 or -1 (out of memory).
 */
static int plan_grads(gr_ctx *c)
{
    const gr_graph *g = c->g;
    const int nt = g->nt, out0 = g->outputs[0];
    size_t *cap = calloc((size_t)nt + 1, sizeof *cap);
    unsigned char *busy = calloc((size_t)nt + 1, 1);
    int ok = cap && busy && (c->gbuf_of = malloc(sizeof(int) * (size_t)(nt + 1))) &&
             (c->ginit = calloc((size_t)nt + 1, 1)) &&
             (c->grad_exp = calloc((size_t)c->max_batch, sizeof(int))) &&
             (c->bseconds = calloc((size_t)g->n_order + 1, sizeof(double)));
    for (int t = 0; ok && t < nt; t++)
        c->gbuf_of[t] = -1;
    if (ok && !g->t[out0].is_const)
        grad_take(c, out0, cap, busy);
    for (int o = g->n_order - 1; ok && o >= 0; o--) {
        const gr_node *nd = &g->nodes[g->order[o]];
        for (int i = 0; i < nd->n_in; i++) {
            const int t = nd->in[i];
            if (t >= 0 && !g->t[t].is_const && t != g->input && c->gbuf_of[t] < 0)
                grad_take(c, t, cap, busy);
        }
        for (int i = 0; i < nd->n_out; i++)
            if (nd->out[i] >= 0 && c->gbuf_of[nd->out[i]] >= 0)
                busy[c->gbuf_of[nd->out[i]]] = 0;
    }
    ok = ok && (c->gbufs = calloc((size_t)c->n_gbufs + 1, sizeof *c->gbufs)) != NULL;
    for (int b = 0; ok && b < c->n_gbufs; b++) {
        ok = (c->gbufs[b] = aligned_alloc64(cap[b])) != NULL;
        c->bytes += cap[b];
    }
    if (ok && c->saved[g->input]) {
        const size_t bytes = tensor_bytes(&g->t[g->input], c->max_batch);
        ok = (c->in_copy = aligned_alloc64(bytes)) != NULL;
        c->bytes += bytes;
    }
    if (ok)
        ok = (c->dlogits = aligned_alloc64(tensor_bytes(&g->t[out0], c->max_batch))) != NULL;
    free(cap), free(busy);
    return ok ? 0 : -1;
}

/* A per-image graph's context: every output for max_batch images; the input copy and the
 * batch's logit gradients for a backward. 0 or -1 (out of memory). */
static int per_image_bufs(gr_ctx *c)
{
    const gr_graph *g = c->g;
    const size_t B = (size_t)c->max_batch;
    int ok = (c->obufs = calloc((size_t)g->n_outputs, sizeof *c->obufs)) != NULL;
    for (int i = 0; ok && i < g->n_outputs; i++) {
        const size_t bytes = tensor_bytes(&g->t[g->outputs[i]], 1) * B;
        ok = (c->obufs[i] = aligned_alloc64(bytes)) != NULL;
        c->bytes += bytes;
    }
    if (ok && (c->flags & GR_BACKWARD)) {
        const size_t bytes = tensor_bytes(&g->t[g->input], 1) * B;
        free(c->dlogits);
        ok = (c->xs = aligned_alloc64(bytes)) != NULL &&
             (c->dlogits = aligned_alloc64(tensor_bytes(&g->t[g->outputs[0]], 1) * B)) != NULL;
        c->bytes += bytes;
    }
    return ok ? 0 : -1;
}

/* Scratch floats node nd needs in a context of max_batch images (forward,
 * and backward if asked): its views with the batch's d[0] = max_batch. */
static size_t node_scratch(const gr_graph *g, const gr_node *nd, int max_batch, int flags)
{
    const int backward = flags & GR_BACKWARD;
    op_tensor vi[64], vo[8];
    node_views(g, nd, vi, vo);
    for (int i = 0; i < nd->n_in; i++)
        if (vi[i].batched)
            vi[i].shape.d[0] = max_batch;
    for (int i = 0; i < nd->n_out; i++)
        if (vo[i].batched)
            vo[i].shape.d[0] = max_batch;
    size_t f = nd->def->scratch ? nd->def->scratch(nd->params, vi, nd->n_in, vo) : 0;
    size_t b = backward && nd->def->bwd_scratch ? nd->def->bwd_scratch(nd->params, vi, nd->n_in, vo) : 0;
    size_t w = backward && (flags & GR_PARAM_GRADS) ? op_params_scratch(nd->def, nd->params, vi, nd->n_in, vo) : 0;
    if (w > b)
        b = w;
    return f > b ? f : b;
}

int gr_ctx_new(const gr_graph *g, int max_batch, int flags, gr_ctx **out, char *err, size_t errsz)
{
    if (!g || !g->finalized)
        return adj_fail(err, errsz, ADJ_ERR_STATE, "the graph is not finalized");
    const int batched = g->t[g->input].t.batched || g->per_image;
    if (max_batch < 1 || max_batch > 4096 || (!batched && max_batch != 1))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "max_batch must be %s, not %d",
                        batched ? "1..4096" : "1 (an unbatched graph)", max_batch);
    gr_ctx *c = calloc(1, sizeof *c);
    size_t *cap = calloc((size_t)g->nt + 1, sizeof *cap);
    int *busy = calloc((size_t)g->nt + 1, sizeof *busy);
    int *left = calloc((size_t)g->nt + 1, sizeof *left);
    if (!c || !cap || !busy || !left || !(c->buf_of = malloc(sizeof(int) * (size_t)(g->nt + 1))) ||
        !(c->seconds = calloc((size_t)g->n_order + 1, sizeof(double))) ||
        !(c->alias = calloc((size_t)g->n_order + 1, 1)) ||
        gemm_ws_new(0, &c->gemm, err, errsz)) {
        free(cap), free(busy), free(left), gr_ctx_free(c);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    c->g = g;
    c->max_batch = max_batch;
    c->flags = flags;
    for (int i = 0; i < g->nt; i++) {
        c->buf_of[i] = -1;
        left[i] = g->t[i].uses;
    }
    int rc;
    if ((flags & GR_BACKWARD) && (rc = mark_saved(c, err, errsz))) {
        free(cap), free(busy), free(left), gr_ctx_free(c);
        return rc;
    }
    const unsigned char *keep = c->saved; /* NULL: keep nothing beyond the readers */
    /* Greedy plan in run order: an output takes the smallest free buffer
     * that fits (else the largest free one, grown; else a new one); a
     * buffer is free again once every tensor in it has had its last reader,
     * unless one is a graph output or GR_KEEP_ALL. busy[b] counts the live
     * tensors in buffer b: an OPF_ALIAS node (Reshape, Flatten, Identity...)
     * gives its output its input's buffer and does not run. */
    int nb = 0;
    size_t scratch = 0;
    for (int o = 0; o < g->n_order; o++) {
        const gr_node *nd = &g->nodes[g->order[o]];
        const size_t sc = node_scratch(g, nd, max_batch, flags);
        if (sc > scratch)
            scratch = sc;
        if ((nd->def->flags & OPF_ALIAS) && nd->in[0] >= 0 && c->buf_of[nd->in[0]] >= 0 &&
            nd->out[0] >= 0 && g->t[nd->out[0]].t.dtype == g->t[nd->in[0]].t.dtype) {
            c->alias[o] = 1;
            c->buf_of[nd->out[0]] = c->buf_of[nd->in[0]];
            busy[c->buf_of[nd->out[0]]]++;
        }
        for (int i = 0; i < nd->n_out; i++) {
            int t = nd->out[i];
            if (t < 0 || (i == 0 && c->alias[o]))
                continue;
            size_t need = tensor_bytes(&g->t[t], max_batch);
            int best = -1, big = -1;
            for (int b = 0; b < nb; b++) {
                if (busy[b])
                    continue;
                if (cap[b] >= need && (best < 0 || cap[b] < cap[best]))
                    best = b;
                if (big < 0 || cap[b] > cap[big])
                    big = b;
            }
            if (best < 0 && big >= 0)
                best = big;
            if (best < 0)
                best = nb++;
            if (cap[best] < need)
                cap[best] = need;
            busy[best] = 1;
            c->buf_of[t] = best;
        }
        for (int i = 0; i < nd->n_out && !(flags & GR_KEEP_ALL); i++)
            if (nd->out[i] >= 0 && left[nd->out[i]] == 0 && !(keep && keep[nd->out[i]]))
                /* an output nobody reads */
                busy[c->buf_of[nd->out[i]]]--;
        if (flags & GR_KEEP_ALL)
            continue;
        for (int i = 0; i < nd->n_in; i++) {
            int t = nd->in[i];
            if (t < 0 || c->buf_of[t] < 0)
                continue;
            if (--left[t] == 0 && !(keep && keep[t]))
                busy[c->buf_of[t]]--;
        }
    }
    /* graph outputs hold their buffers (their uses were counted, never reach 0) */
    c->n_bufs = nb;
    int ok = (c->bufs = calloc((size_t)nb + 1, sizeof *c->bufs)) != NULL;
    for (int b = 0; ok && b < nb; b++) {
        ok = (c->bufs[b] = aligned_alloc64(cap[b])) != NULL;
        c->bytes += cap[b];
    }
    if (ok && scratch) {
        ok = (c->scratch = aligned_alloc64(scratch * sizeof(float))) != NULL;
        c->bytes += scratch * sizeof(float);
    }
    free(cap), free(busy), free(left);
    if (ok && (flags & GR_BACKWARD))
        ok = plan_grads(c) == 0;
    if (ok && g->per_image)
        ok = per_image_bufs(c) == 0;
    if (!ok) {
        gr_ctx_free(c);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for the activations");
    }
    *out = c;
    return ADJ_OK;
}

/* A tensor's run-time view: batch size n in d[0]. */
static void run_view(const gr_ctx *c, int id, op_tensor *v)
{
    const gr_tensor *t = &c->g->t[id];
    *v = t->t;
    if (t->t.batched)
        v->shape.d[0] = c->n;
    if (t->is_const)
        v->data = t->t.data;
    else if (id == c->g->input)
        v->data = (void *)c->input;
    else
        v->data = c->buf_of[id] >= 0 ? c->bufs[c->buf_of[id]] : NULL;
}

/* The forward pass over n images of a batched graph (one of a per-image graph). */
static void forward_run(gr_ctx *c, const float *input, int n)
{
    const gr_graph *g = c->g;
    op_tensor in[64], out[8];
    c->n = n;
    c->input = input;
    if (c->in_copy)
        memcpy(c->in_copy, input, (size_t)n * op_numel(&g->t[g->input].t.shape) * sizeof(float));
    for (int o = 0; o < g->n_order; o++) {
        const gr_node *nd = &g->nodes[g->order[o]];
        for (int i = 0; i < nd->n_in; i++)
            if (nd->in[i] >= 0)
                run_view(c, nd->in[i], &in[i]);
            else
                memset(&in[i], 0, sizeof in[i]);
        for (int i = 0; i < nd->n_out; i++)
            if (nd->out[i] >= 0)
                run_view(c, nd->out[i], &out[i]);
            else
                memset(&out[i], 0, sizeof out[i]);
        if (c->alias[o])
            continue; /* output 0 is input 0's buffer */
        const double t0 = ut_now();
        nd->def->forward(nd->params, in, nd->n_in, out, nd->n_out, c->scratch, c->gemm);
        c->seconds[o] += ut_now() - t0;
    }
    c->input = NULL; /* borrowed for the call only */
}

/* Output i of the last forward_run, one image's values. */
static const float *out_data(const gr_ctx *c, int i)
{
    op_tensor v;
    run_view(c, c->g->outputs[i], &v);
    return v.data;
}

int gr_forward(gr_ctx *c, const float *input, int n, char *err, size_t errsz)
{
    if (n < 1 || n > c->max_batch)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "batch of %d images (1..%d)", n, c->max_batch);
    if (!input)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "no input");
    const gr_graph *g = c->g;
    if (!g->per_image) {
        forward_run(c, input, n);
        return ADJ_OK;
    }
    const size_t per = op_numel(&g->t[g->input].t.shape);
    if (c->xs)
        memcpy(c->xs, input, (size_t)n * per * sizeof(float));
    for (int b = 0; b < n; b++) {
        forward_run(c, input + (size_t)b * per, 1);
        for (int i = 0; i < g->n_outputs; i++) {
            const size_t k = op_numel(&g->t[g->outputs[i]].t.shape);
            memcpy(c->obufs[i] + (size_t)b * k, out_data(c, i), k * sizeof(float));
        }
    }
    c->n = n;
    return ADJ_OK;
}

const void *gr_output(const gr_ctx *c, int i, op_shape *shape)
{
    if (!c->n || i < 0 || i >= c->g->n_outputs)
        return NULL;
    op_tensor v;
    int id = c->g->outputs[i];
    if (id == c->g->input)
        return NULL; /* the input itself is not kept */
    run_view(c, id, &v);
    if (c->g->per_image)
        v.shape.d[0] = c->n, v.data = c->obufs[i];
    if (shape)
        *shape = v.shape;
    return v.data;
}

/* ---- the backward pass ------------------------------------------------ */

/* A tensor's view for a backward kernel: data only where it is kept (else NULL). */
static void bwd_view(const gr_ctx *c, int id, op_tensor *v)
{
    if (id < 0) {
        memset(v, 0, sizeof *v);
        return;
    }
    run_view(c, id, v);
    if (c->g->t[id].is_const)
        return;
    if (id == c->g->input)
        v->data = c->in_copy;
    else if (!c->saved[id])
        v->data = NULL;
}

/* Tensor t's gradient buffer, zeroed before its first writer of this pass. */
static float *grad_of(gr_ctx *c, int t)
{
    float *b = c->gbufs[c->gbuf_of[t]];
    if (!c->ginit[t]) {
        memset(b, 0, (size_t)c->n * op_numel(&c->g->t[t].t.shape) * sizeof(float));
        c->ginit[t] = 1;
    }
    return b;
}

/* Node nd's weight gradients: dw[i] for its constants inside [base, base + n). */
static void params_backward(gr_ctx *c, const gr_node *nd, const op_tensor *in,
                            const op_tensor *out, const float *dy, const float *base, size_t n,
                            float *grad)
{
    float *dw[64];
    int any = 0;
    for (int i = 0; i < nd->n_in; i++) {
        const int t = nd->in[i];
        const float *d = t >= 0 && c->g->t[t].is_const && c->g->t[t].t.dtype == OP_FLOAT
                             ? c->g->t[t].t.data : NULL;
        const size_t len = t >= 0 ? op_numel(&c->g->t[t].t.shape) : 0;
        dw[i] = d && op_params_grad(nd->def, i) && d >= base && d + len <= base + n
                    ? grad + (d - base) : NULL;
        any |= dw[i] != NULL;
    }
    if (any)
        op_backward_params(nd->def, nd->params, in, nd->n_in, out, nd->n_out, dy, dw, c->scratch,
                           c->gemm);
}

/* The backward pass of the last forward_run (c->n images); weight gradients
 * into grad too when it is not NULL (gr_backward_params). */
static void backward_run(gr_ctx *c, const float *grad_out, float *grad_input, const float *base,
                         size_t n_base, float *grad)
{
    const gr_graph *g = c->g;
    const int out0 = g->outputs[0];
    memset(c->ginit, 0, (size_t)g->nt);
    if (grad_input)
        memset(grad_input, 0, (size_t)c->n * op_numel(&g->t[g->input].t.shape) * sizeof(float));
    if (c->gbuf_of[out0] < 0)
        return; /* a constant output: the gradient is 0 */
    memcpy(grad_of(c, out0), grad_out, (size_t)c->n * op_numel(&g->t[out0].t.shape) * sizeof(float));
    op_tensor in[64], out[8];
    float *dx[64];
    for (int o = g->n_order - 1; o >= 0; o--) {
        const gr_node *nd = &g->nodes[g->order[o]];
        const int y = nd->out[0];
        if (y < 0 || c->gbuf_of[y] < 0 || !c->ginit[y])
            continue; /* no gradient reaches this node */
        int fresh = -1; /* a fused residual whose gradient buffer is still unwritten */
        for (int i = 0; i < nd->n_in; i++) {
            const int t = nd->in[i];
            bwd_view(c, t, &in[i]);
            if (i == 3 && nd->epi && nd->epi->residual && t >= 0 && !g->t[t].is_const &&
                t != g->input && !c->ginit[t])
                fresh = t, dx[i] = c->gbufs[c->gbuf_of[t]];
            else
                dx[i] = t < 0 || g->t[t].is_const ? NULL : t == g->input ? grad_input : grad_of(c, t);
        }
        for (int i = 0; i < nd->n_out; i++)
            bwd_view(c, nd->out[i], &out[i]);
        const double t0 = ut_now();
        float *dy = c->gbufs[c->gbuf_of[y]];
        if (nd->epi) { /* the fused epilogue's gradient: the Conv's own, in place in dy or,
                        * for a fresh residual, in the residual's buffer (which it is) */
            float *dr = nd->epi->residual ? dx[3] : NULL, *dg = fresh >= 0 ? dr : dy;
            dx[3] = NULL;
            op_epilogue_backward(c->gemm, nd->epi, out[0].data, dy, dg, fresh >= 0 ? NULL : dr,
                                 (size_t)c->n * op_numel(&g->t[y].t.shape));
            if (fresh >= 0)
                c->ginit[fresh] = 1, dy = dg;
        }
        if (grad)
            params_backward(c, nd, in, out, dy, base, n_base, grad);
        nd->def->backward(nd->params, in, nd->n_in, out, nd->n_out, dy, dx, c->scratch, c->gemm);
        c->bseconds[o] += ut_now() - t0;
    }
}

int gr_backward_params(gr_ctx *c, const float *grad_out, float *grad_input, const float *base,
                       size_t n_base, float *grad, char *err, size_t errsz)
{
    if (!(c->flags & GR_BACKWARD))
        return adj_fail(err, errsz, ADJ_ERR_STATE, "the context was made without GR_BACKWARD");
    if (grad && !(c->flags & GR_PARAM_GRADS))
        return adj_fail(err, errsz, ADJ_ERR_STATE, "the context was made without GR_PARAM_GRADS");
    if (!c->n)
        return adj_fail(err, errsz, ADJ_ERR_STATE, "a backward pass without a forward");
    if (!grad_out || (!grad_input && !grad))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "no output gradient, or nothing to compute");
    const gr_graph *g = c->g;
    if (!g->per_image) {
        backward_run(c, grad_out, grad_input, base, n_base, grad);
        return ADJ_OK;
    }
    if (grad || !grad_input)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "weight gradients of a graph run image by image (gr_set_per_image)");
    /* image by image: its forward again (the context keeps one image's activations) */
    const size_t per = op_numel(&g->t[g->input].t.shape);
    const size_t k = op_numel(&g->t[g->outputs[0]].t.shape);
    const int n = c->n;
    for (int b = 0; b < n; b++) {
        forward_run(c, c->xs + (size_t)b * per, 1);
        backward_run(c, grad_out + (size_t)b * k, grad_input + (size_t)b * per, NULL, 0, NULL);
    }
    c->n = n;
    return ADJ_OK;
}

int gr_backward(gr_ctx *c, const float *grad_out, float *grad_input, char *err, size_t errsz)
{
    if (!grad_input)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "no input gradient");
    return gr_backward_params(c, grad_out, grad_input, NULL, 0, NULL, err, errsz);
}

int gr_backward_loss(gr_ctx *c, const int *labels, float *grad_input, float *losses, char *err,
                     size_t errsz)
{
    op_shape s;
    const float *z = c->n ? gr_output(c, 0, &s) : NULL;
    if (!(c->flags & GR_BACKWARD) || !z)
        return adj_fail(err, errsz, ADJ_ERR_STATE, "a backward pass without a forward (or a "
                        "context without GR_BACKWARD)");
    if (s.rank != 2 || s.d[0] != c->n || s.d[1] < 1 || s.d[1] > INT32_MAX)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "output 0 is not [n][classes] logits");
    const int K = (int)s.d[1];
    for (int b = 0; b < c->n; b++)
        if (!labels || labels[b] < 0 || labels[b] >= K)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "label %d of image %d out of range 0..%d",
                            labels ? labels[b] : -1, b, K - 1);
    for (int b = 0; b < c->n; b++) {
        const double loss = op_xent_grad(z + (size_t)b * K, K, labels[b], 0.0, 1,
                                         c->dlogits + (size_t)b * K, &c->grad_exp[b]);
        if (losses)
            losses[b] = (float)loss;
    }
    return gr_backward(c, c->dlogits, grad_input, err, errsz);
}

int gr_grad_exponent(const gr_ctx *c, int i)
{
    return c->grad_exp && i >= 0 && i < c->max_batch ? c->grad_exp[i] : 0;
}
