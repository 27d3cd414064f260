#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "graph.h"
#include "onnx.h"

#include "ut_file.h"

struct model {
    model_spec spec;
    const float *weights;   /* mmap'd or owned */
    float *owned;           /* non-NULL when weights are in memory */
    size_t map_bytes;       /* non-zero when mmap'd */
    size_t n_params;
    long offsets[MODEL_MAX_LAYERS];
    char path[4096];
    /* the graph every context runs (graph.h): an ONNX model's, or the layer
     * list's (model_build_graph, at load); built once, shared by contexts */
    gr_graph *graph;
    int node_layer[2 * MODEL_MAX_LAYERS + 1]; /* layer models: run-time node -> layer */
    int onnx;               /* loaded by model_load_onnx */
    model_preproc pre;
    char pre_source[4096];  /* the preprocessing's file, or "torchvision default" */
    char sha256[65];        /* hex, of the .onnx file or of the weights as loaded or created */
    char labels[4096];      /* the spec's labels file as resolved, or "" */
    int order_key;          /* the spec's classes_order, MODEL_ORDER_NONE when not given */
    model_labels names;     /* the labels file's lines (ONNX models with one) */
    model_classes classes;  /* every model */
};

static void sha256_mem(const void *p, size_t n, char out[65]);
static void classes_for_layers(model *m);
static void free_names(char **v, int n);

/* ---- built-in specs ---------------------------------------------------- */

/* config/advjpg-shapes.json as a string, generated at build time by
 * tools/advjpg-embed.c (constant data, not state) */
extern const char model_default_spec_json[];
extern const unsigned long model_default_spec_json_len;
/* config/ilsvrc2012-synsets.txt, the same way: "synset ID name" lines */
extern const char model_ilsvrc_synsets_txt[];
extern const unsigned long model_ilsvrc_synsets_txt_len;

static model_layer conv(int out, int k, int stride, int pad)
{
    return (model_layer){.kind = MODEL_LAYER_CONV, .out = out, .kh = k, .kw = k,
                         .stride = stride, .pad_t = pad, .pad_b = pad, .pad_l = pad, .pad_r = pad};
}
static model_layer relu(void) { return (model_layer){.kind = MODEL_LAYER_RELU}; }
static model_layer pool(int k, int stride)
{
    return (model_layer){.kind = MODEL_LAYER_MAXPOOL, .kh = k, .kw = k, .stride = stride};
}
static model_layer fc(int out) { return (model_layer){.kind = MODEL_LAYER_FC, .out = out}; }

static void spec_init(model_spec *s, const char *name, int input, int scale, int classes)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->channels = 3;
    s->input_size = input;
    s->scale_size = scale;
    s->mean = 118.380948f;
    s->std = 61.896913f;
    s->classes = classes;
}

static void push(model_spec *s, model_layer l) { s->layers[s->n_layers++] = l; }

int model_spec_builtin(const char *name, model_spec *out, char *err, size_t errsz)
{
    model_spec s;
    if (!name)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "no model name");
    if (!strcmp(name, "overfeat-fast")) {
        spec_init(&s, name, 231, 256, 1000);
        push(&s, conv(96, 11, 4, 0)); push(&s, relu()); push(&s, pool(2, 2));
        push(&s, conv(256, 5, 1, 0)); push(&s, relu()); push(&s, pool(2, 2));
        push(&s, conv(512, 3, 1, 1)); push(&s, relu());
        push(&s, conv(1024, 3, 1, 1)); push(&s, relu());
        push(&s, conv(1024, 3, 1, 1)); push(&s, relu()); push(&s, pool(2, 2));
        push(&s, fc(3072)); push(&s, relu());
        push(&s, fc(4096)); push(&s, relu());
        push(&s, fc(1000));
    } else if (!strcmp(name, "overfeat-accurate")) {
        spec_init(&s, name, 221, 256, 1000);
        push(&s, conv(96, 7, 2, 0)); push(&s, relu()); push(&s, pool(3, 3));
        push(&s, conv(256, 7, 1, 0)); push(&s, relu()); push(&s, pool(2, 2));
        push(&s, conv(512, 3, 1, 1)); push(&s, relu());
        push(&s, conv(512, 3, 1, 1)); push(&s, relu());
        push(&s, conv(1024, 3, 1, 1)); push(&s, relu());
        push(&s, conv(1024, 3, 1, 1)); push(&s, relu()); push(&s, pool(3, 3));
        push(&s, fc(4096)); push(&s, relu());
        push(&s, fc(4096)); push(&s, relu());
        push(&s, fc(1000));
    } else if (!strcmp(name, MODEL_DEFAULT_NAME)) {
        /* The embedded default model: its one source is config/<name>.json,
         * compiled in at build time (common/meson.build). */
        char msg[ADJ_ERRLEN];
        if (model_spec_parse(model_default_spec_json, model_default_spec_json_len, &s, msg, sizeof msg))
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "built-in %s: %s", name, msg);
        if (strcmp(s.name, MODEL_DEFAULT_NAME))
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "built-in %s: its spec is named '%s'", name,
                            s.name);
    } else {
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "unknown model '%s' (built in: overfeat-fast, overfeat-accurate, %s)",
                        name, MODEL_DEFAULT_NAME);
    }
    int rc = model_spec_shapes(&s, NULL, err, errsz);
    if (rc)
        return rc;
    *out = s;
    return ADJ_OK;
}

/* ---- validation and shapes ---------------------------------------------- */

int model_spec_shapes(const model_spec *s, model_shape *shapes, char *err, size_t errsz)
{
    if (s->channels < 1 || s->channels > 4)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "channels must be 1..4, not %d", s->channels);
    if (s->input_size < 1 || s->input_size > 4096)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "input_size must be 1..4096, not %d", s->input_size);
    if (s->scale_size < s->input_size || s->scale_size > 8192)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                        "scale_size (%d) must be at least input_size (%d) and at most 8192",
                        s->scale_size, s->input_size);
    if (!(s->std > 0.0f))
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "std must be positive");
    if (s->classes < 1 || s->classes > 1000000)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "classes must be 1..1000000, not %d", s->classes);
    if (s->n_layers < 1 || s->n_layers > MODEL_MAX_LAYERS)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "a model needs 1..%d layers, not %d",
                        MODEL_MAX_LAYERS, s->n_layers);
    model_shape cur = {s->channels, s->input_size, s->input_size};
    int flat = 0; /* after an fc layer only fc and relu may follow */
    if (shapes)
        shapes[0] = cur;
    for (int i = 0; i < s->n_layers; i++) {
        const model_layer *l = &s->layers[i];
        switch (l->kind) {
        case MODEL_LAYER_CONV: {
            if (flat)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "layer %d: conv after fc", i + 1);
            if (l->out < 1 || l->kh < 1 || l->kw < 1 || l->stride < 1 || l->pad_t < 0 ||
                l->pad_b < 0 || l->pad_l < 0 || l->pad_r < 0)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                                "layer %d: conv needs out, kernel, stride >= 1 and pad >= 0", i + 1);
            int h = cur.h + l->pad_t + l->pad_b, w = cur.w + l->pad_l + l->pad_r;
            if (h < l->kh || w < l->kw)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                                "layer %d: %dx%d kernel larger than its padded %dx%d input",
                                i + 1, l->kh, l->kw, h, w);
            cur = (model_shape){l->out, (h - l->kh) / l->stride + 1, (w - l->kw) / l->stride + 1};
            break;
        }
        case MODEL_LAYER_MAXPOOL:
            if (flat)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "layer %d: maxpool after fc", i + 1);
            if (l->kh < 1 || l->kw < 1 || l->stride < 1)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                                "layer %d: maxpool needs kernel and stride >= 1", i + 1);
            if (cur.h < l->kh || cur.w < l->kw)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                                "layer %d: %dx%d pooling window larger than its %dx%d input",
                                i + 1, l->kh, l->kw, cur.h, cur.w);
            cur = (model_shape){cur.c, (cur.h - l->kh) / l->stride + 1,
                                (cur.w - l->kw) / l->stride + 1};
            break;
        case MODEL_LAYER_RELU:
            break;
        case MODEL_LAYER_FC:
            if (l->out < 1)
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "layer %d: fc needs out >= 1", i + 1);
            cur = (model_shape){l->out, 1, 1};
            flat = 1;
            break;
        default:
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "layer %d: unknown kind", i + 1);
        }
        if ((double)cur.c * cur.h * cur.w > 1e9)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "layer %d: output too large", i + 1);
        if (shapes)
            shapes[i + 1] = cur;
    }
    if ((long)cur.c * cur.h * cur.w != s->classes)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                        "the last layer gives %d values (%dx%dx%d), but the model has %d classes",
                        cur.c * cur.h * cur.w, cur.c, cur.h, cur.w, s->classes);
    return ADJ_OK;
}

/* fan-in of a parameter layer given its input shape, 0 for others */
static size_t fan_in(const model_layer *l, const model_shape *in)
{
    if (l->kind == MODEL_LAYER_CONV)
        return (size_t)in->c * l->kh * l->kw;
    if (l->kind == MODEL_LAYER_FC)
        return (size_t)in->c * in->h * in->w;
    return 0;
}

size_t model_spec_param_count(const model_spec *s)
{
    model_shape sh[MODEL_MAX_LAYERS + 1];
    if (model_spec_shapes(s, sh, NULL, 0))
        return 0;
    size_t n = 0;
    for (int i = 0; i < s->n_layers; i++) {
        size_t f = fan_in(&s->layers[i], &sh[i]);
        if (f)
            n += (size_t)s->layers[i].out * (f + 1);
    }
    return n;
}

double model_spec_flops(const model_spec *s)
{
    model_shape sh[MODEL_MAX_LAYERS + 1];
    if (model_spec_shapes(s, sh, NULL, 0))
        return 0;
    double f = 0;
    for (int i = 0; i < s->n_layers; i++) {
        size_t fi = fan_in(&s->layers[i], &sh[i]);
        if (fi)
            f += 2.0 * (double)fi * sh[i + 1].c * sh[i + 1].h * sh[i + 1].w;
    }
    return f;
}

/* ---- JSON ------------------------------------------------------------- */

static int json_int_or_pair(json_t *v, int *a, int *b)
{
    if (json_is_integer(v)) {
        *a = *b = (int)json_integer_value(v);
        return 0;
    }
    if (json_is_array(v) && json_array_size(v) == 2 && json_is_integer(json_array_get(v, 0)) &&
        json_is_integer(json_array_get(v, 1))) {
        *a = (int)json_integer_value(json_array_get(v, 0));
        *b = (int)json_integer_value(json_array_get(v, 1));
        return 0;
    }
    return -1;
}

static int get_int(json_t *o, const char *key, int *out, int required)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return required ? -1 : 0;
    if (!json_is_integer(v) || json_integer_value(v) < -1000000000 ||
        json_integer_value(v) > 1000000000)
        return -1;
    *out = (int)json_integer_value(v);
    return 0;
}

int model_spec_parse(const char *text, size_t len, model_spec *out, char *err, size_t errsz)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "model spec: JSON error at line %d: %s",
                        je.line, je.text);
    int rc = ADJ_ERR_FORMAT;
    model_spec s;
    memset(&s, 0, sizeof s);
    s.channels = 3;
    if (!json_is_object(root)) {
        adj_fail(err, errsz, rc, "model spec: not a JSON object");
        goto done;
    }
    json_t *name = json_object_get(root, "name");
    if (!json_is_string(name) || !*json_string_value(name) ||
        strlen(json_string_value(name)) >= sizeof s.name) {
        adj_fail(err, errsz, rc, "model spec: \"name\" must be a string of 1..%d characters",
                 (int)sizeof s.name - 1);
        goto done;
    }
    snprintf(s.name, sizeof s.name, "%s", json_string_value(name));
    if (get_int(root, "channels", &s.channels, 0) || get_int(root, "input_size", &s.input_size, 1) ||
        get_int(root, "classes", &s.classes, 1)) {
        adj_fail(err, errsz, rc, "model spec: \"input_size\" and \"classes\" (and \"channels\") must be integers");
        goto done;
    }
    s.scale_size = s.input_size;
    if (get_int(root, "scale_size", &s.scale_size, 0)) {
        adj_fail(err, errsz, rc, "model spec: \"scale_size\" must be an integer");
        goto done;
    }
    json_t *mean = json_object_get(root, "mean"), *std = json_object_get(root, "std");
    if ((mean && !json_is_number(mean)) || (std && !json_is_number(std))) {
        adj_fail(err, errsz, rc, "model spec: \"mean\" and \"std\" must be numbers");
        goto done;
    }
    s.mean = mean ? (float)json_number_value(mean) : 0.0f;
    s.std = std ? (float)json_number_value(std) : 1.0f;
    json_t *layers = json_object_get(root, "layers");
    if (!json_is_array(layers) || json_array_size(layers) < 1 ||
        json_array_size(layers) > MODEL_MAX_LAYERS) {
        adj_fail(err, errsz, rc, "model spec: \"layers\" must be an array of 1..%d layers",
                 MODEL_MAX_LAYERS);
        goto done;
    }
    size_t i;
    json_t *lj;
    json_array_foreach(layers, i, lj) {
        model_layer l = {0};
        const char *type = json_string_value(json_object_get(lj, "type"));
        if (!type) {
            adj_fail(err, errsz, rc, "model spec: layer %zu has no \"type\"", i + 1);
            goto done;
        }
        if (!strcmp(type, "conv") || !strcmp(type, "maxpool")) {
            l.kind = type[0] == 'c' ? MODEL_LAYER_CONV : MODEL_LAYER_MAXPOOL;
            json_t *k = json_object_get(lj, "kernel"), *p = json_object_get(lj, "pad");
            if (!k || json_int_or_pair(k, &l.kh, &l.kw)) {
                adj_fail(err, errsz, rc, "model spec: layer %zu needs \"kernel\" (n or [kh, kw])", i + 1);
                goto done;
            }
            l.stride = l.kind == MODEL_LAYER_MAXPOOL ? l.kh : 1;
            if (get_int(lj, "stride", &l.stride, 0)) {
                adj_fail(err, errsz, rc, "model spec: layer %zu: \"stride\" must be an integer", i + 1);
                goto done;
            }
            if (l.kind == MODEL_LAYER_CONV) {
                if (get_int(lj, "out", &l.out, 1)) {
                    adj_fail(err, errsz, rc, "model spec: layer %zu: conv needs integer \"out\"", i + 1);
                    goto done;
                }
                if (p && json_is_integer(p)) {
                    l.pad_t = l.pad_b = l.pad_l = l.pad_r = (int)json_integer_value(p);
                } else if (p && json_is_array(p) && json_array_size(p) == 4) {
                    int *d[4] = {&l.pad_t, &l.pad_b, &l.pad_l, &l.pad_r};
                    for (int q = 0; q < 4; q++) {
                        json_t *e = json_array_get(p, q);
                        if (!json_is_integer(e)) {
                            adj_fail(err, errsz, rc, "model spec: layer %zu: bad \"pad\"", i + 1);
                            goto done;
                        }
                        *d[q] = (int)json_integer_value(e);
                    }
                } else if (p) {
                    adj_fail(err, errsz, rc,
                             "model spec: layer %zu: \"pad\" must be n or [top, bottom, left, right]", i + 1);
                    goto done;
                }
            }
        } else if (!strcmp(type, "relu")) {
            l.kind = MODEL_LAYER_RELU;
        } else if (!strcmp(type, "fc")) {
            l.kind = MODEL_LAYER_FC;
            if (get_int(lj, "out", &l.out, 1)) {
                adj_fail(err, errsz, rc, "model spec: layer %zu: fc needs integer \"out\"", i + 1);
                goto done;
            }
        } else {
            adj_fail(err, errsz, rc,
                     "model spec: layer %zu: unknown type \"%s\" (conv, relu, maxpool, fc)", i + 1, type);
            goto done;
        }
        s.layers[s.n_layers++] = l;
    }
    char msg[ADJ_ERRLEN];
    rc = model_spec_shapes(&s, NULL, msg, sizeof msg);
    if (rc) {
        adj_fail(err, errsz, rc, "model spec: %s", msg);
        goto done;
    }
    *out = s;
    rc = ADJ_OK;
done:
    json_decref(root);
    return rc;
}

int model_spec_load(const char *name_or_path, model_spec *out, char *err, size_t errsz)
{
    if (!name_or_path)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "no model given");
    if (!strcmp(name_or_path, "overfeat-fast") || !strcmp(name_or_path, "overfeat-accurate") ||
        !strcmp(name_or_path, MODEL_DEFAULT_NAME))
        return model_spec_builtin(name_or_path, out, err, errsz);
    char *buf = NULL;
    size_t n = 0;
    int rc = ut_read_file(name_or_path, ((size_t)64 << 10) - 1, 0, &buf, &n, NULL, 0);
    if (rc == ADJ_ERR_LIMIT)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "model spec '%s' is over 64 KiB", name_or_path);
    if (rc == ADJ_ERR_NOMEM)
        return adj_fail(err, errsz, rc, "out of memory");
    if (rc)
        return adj_fail(err, errsz, ADJ_ERR_IO,
                        "model '%s' is neither a built-in name (overfeat-fast, overfeat-accurate, %s) "
                        "nor a readable spec file: %s",
                        name_or_path, MODEL_DEFAULT_NAME, strerror(errno));
    char msg[ADJ_ERRLEN];
    rc = model_spec_parse(buf, n, out, msg, sizeof msg);
    free(buf);
    if (rc)
        return adj_fail(err, errsz, rc, "%s: %s", name_or_path, msg);
    return ADJ_OK;
}

int model_spec_to_json(const model_spec *s, char **out)
{
    json_t *root = json_pack("{s:s, s:i, s:i, s:i, s:f, s:f, s:i}", "name", s->name, "channels",
                             s->channels, "input_size", s->input_size, "scale_size", s->scale_size,
                             "mean", (double)s->mean, "std", (double)s->std, "classes", s->classes);
    json_t *layers = json_array();
    if (!root || !layers) {
        json_decref(root);
        json_decref(layers);
        return ADJ_ERR_NOMEM;
    }
    for (int i = 0; i < s->n_layers; i++) {
        const model_layer *l = &s->layers[i];
        json_t *o = NULL;
        switch (l->kind) {
        case MODEL_LAYER_CONV:
            o = json_pack("{s:s, s:i, s:[i,i], s:i, s:[i,i,i,i]}", "type", "conv", "out", l->out,
                          "kernel", l->kh, l->kw, "stride", l->stride, "pad", l->pad_t, l->pad_b,
                          l->pad_l, l->pad_r);
            break;
        case MODEL_LAYER_MAXPOOL:
            o = json_pack("{s:s, s:[i,i], s:i}", "type", "maxpool", "kernel", l->kh, l->kw,
                          "stride", l->stride);
            break;
        case MODEL_LAYER_RELU: o = json_pack("{s:s}", "type", "relu"); break;
        case MODEL_LAYER_FC: o = json_pack("{s:s, s:i}", "type", "fc", "out", l->out); break;
        }
        json_array_append_new(layers, o);
    }
    json_object_set_new(root, "layers", layers);
    *out = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    return *out ? ADJ_OK : ADJ_ERR_NOMEM;
}

/* ---- loaded models ---------------------------------------------------- */

static int model_init_offsets(model *m)
{
    model_shape sh[MODEL_MAX_LAYERS + 1];
    model_spec_shapes(&m->spec, sh, NULL, 0);
    long off = 0;
    for (int i = 0; i < m->spec.n_layers; i++) {
        size_t f = fan_in(&m->spec.layers[i], &sh[i]);
        m->offsets[i] = f ? off : -1;
        if (f)
            off += (long)(m->spec.layers[i].out * (f + 1));
    }
    return ADJ_OK;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* The finished layer model's graph (model_build_graph) and preprocessing:
 * the spec's mean and std on every channel, pixels as they are. Frees m on
 * failure. */
static int model_attach_graph(model *m, model **out, char *err, size_t errsz)
{
    int rc = model_build_graph(m, 0, &m->graph, m->node_layer, err, errsz);
    if (rc) {
        model_free(m);
        return rc;
    }
    m->pre = (model_preproc){.pixel_scale = 1.0f};
    for (int ch = 0; ch < 3; ch++)
        m->pre.mean[ch] = m->spec.mean, m->pre.std[ch] = m->spec.std;
    *out = m;
    return ADJ_OK;
}

int model_load(const model_spec *spec, const char *path, model **out, char *err, size_t errsz)
{
    char msg[ADJ_ERRLEN];
    if (model_spec_shapes(spec, NULL, msg, sizeof msg))
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s", msg);
    if (!host_is_little_endian())
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "weight files are little-endian; this host is not");
    const size_t n = model_spec_param_count(spec);
    const unsigned long long want = (unsigned long long)n * sizeof(float);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return adj_fail(err, errsz, ADJ_ERR_IO,
                        "weight file '%s': %s (expected %llu bytes for %s)", path, strerror(errno),
                        want, spec->name);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return adj_fail(err, errsz, ADJ_ERR_IO, "weight file '%s' is not a regular file", path);
    }
    if ((unsigned long long)st.st_size != want) {
        close(fd);
        return adj_fail(err, errsz, ADJ_ERR_FORMAT,
                        "weight file '%s' is %llu bytes, but %s needs %llu bytes (%zu float32 values)",
                        path, (unsigned long long)st.st_size, spec->name, want, n);
    }
    void *p = mmap(NULL, (size_t)want, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return adj_fail(err, errsz, ADJ_ERR_IO, "weight file '%s': cannot map: %s", path, strerror(e));
    madvise(p, (size_t)want, MADV_WILLNEED);
    model *m = calloc(1, sizeof *m);
    if (!m) {
        munmap(p, (size_t)want);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    m->spec = *spec;
    m->weights = p;
    m->map_bytes = (size_t)want;
    m->n_params = n;
    snprintf(m->path, sizeof m->path, "%s", path);
    sha256_mem(p, (size_t)want, m->sha256); /* the file's bytes: what the map holds */
    model_init_offsets(m);
    classes_for_layers(m);
    return model_attach_graph(m, out, err, errsz);
}

int model_create(const model_spec *spec, float *weights, size_t n_floats, int copy, model **out,
                 char *err, size_t errsz)
{
    char msg[ADJ_ERRLEN];
    if (model_spec_shapes(spec, NULL, msg, sizeof msg))
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s", msg);
    const size_t n = model_spec_param_count(spec);
    if (!weights || n_floats != n)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s needs %zu weights, got %zu", spec->name, n,
                        weights ? n_floats : 0);
    model *m = calloc(1, sizeof *m);
    if (!m)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if (copy) {
        m->owned = malloc(n ? n * sizeof(float) : 1);
        if (!m->owned) {
            free(m);
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for %zu weights", n);
        }
        memcpy(m->owned, weights, n * sizeof(float));
    } else {
        m->owned = weights;
    }
    m->spec = *spec;
    m->weights = m->owned;
    m->n_params = n;
    sha256_mem(m->weights, n * sizeof(float), m->sha256); /* a weight file's bytes (little-endian) */
    model_init_offsets(m);
    classes_for_layers(m);
    return model_attach_graph(m, out, err, errsz);
}

void model_free(model *m)
{
    if (!m)
        return;
    if (m->map_bytes)
        munmap((void *)m->weights, m->map_bytes);
    free(m->owned);
    gr_free(m->graph);
    model_labels_free(&m->names);
    free_names(m->classes.synsets, m->classes.synsets ? m->classes.n : 0);
    free(m);
}

const model_spec *model_get_spec(const model *m) { return &m->spec; }
const float *model_weights(const model *m) { return m->weights; }
float *model_weights_mut(model *m) { return m->owned; }
const char *model_weights_path(const model *m) { return m->path; }

long model_layer_offset(const model *m, int layer)
{
    if (layer < 0 || layer >= m->spec.n_layers)
        return -1;
    return m->offsets[layer];
}

/* ---- class order -------------------------------------------------------- */

static void free_names(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

const char *model_class_order_name(model_class_order o)
{
    static const char *const names[] = {NULL, "ilsvrc2012_id", "synset_sorted", "labels"};
    return o > 0 && o < (int)(sizeof names / sizeof names[0]) ? names[o] : NULL;
}

/* Nonzero if s is a WordNet synset id: 'n' and eight digits. */
static int is_synset(const char *s)
{
    if (s[0] != 'n' || strlen(s) != 9)
        return 0;
    for (int i = 1; i < 9; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int model_ilsvrc_synsets(char ***out, char *err, size_t errsz)
{
    char **v = calloc(MODEL_ILSVRC_CLASSES, sizeof *v);
    if (!v)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    const char *p = model_ilsvrc_synsets_txt, *end = p + model_ilsvrc_synsets_txt_len;
    int rc = ADJ_OK;
    while (p < end && !rc) {
        char syn[16];
        int id = 0;
        if (sscanf(p, "%15s %d", syn, &id) != 2 || !is_synset(syn) || id < 1 ||
            id > MODEL_ILSVRC_CLASSES || v[id - 1])
            rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "the built-in ILSVRC2012 synset table is corrupt");
        else if (!(v[id - 1] = strdup(syn)))
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    for (int i = 0; !rc && i < MODEL_ILSVRC_CLASSES; i++)
        if (!v[i])
            rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "the built-in synset table has no ID %d", i + 1);
    if (rc) {
        free_names(v, MODEL_ILSVRC_CLASSES);
        return rc;
    }
    *out = v;
    return ADJ_OK;
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int model_class_of_synset(const model_classes *c, const char *synset)
{
    for (int i = 0; c->synsets && i < c->n; i++) /* n is small (1000): no index kept */
        if (!strcmp(c->synsets[i], synset))
            return i;
    return -1;
}

int model_class_of_name(const model_classes *c, const char *name, int *first, int *other)
{
    int k = model_class_of_synset(c, name);
    for (int i = 0; c->names && i < c->n; i++)
        if (i != k && !strcmp(c->names[i], name)) {
            if (k >= 0) {
                if (first)
                    *first = k;
                if (other)
                    *other = i;
                return -2;
            }
            k = i;
        }
    return k;
}

const model_classes *model_get_classes(const model *m) { return &m->classes; }

/*
 * c->synsets and c->of_id from an order: ILSVRC2012_ID or sorted synsets
 * (n must be 1000), or the given synsets (owned by c from now on, also
 * when this fails). ADJ_ERR_FORMAT names a synset the table lacks.
 */
static int classes_set(model_classes *c, model_class_order order, char **given, char *err,
                       size_t errsz)
{
    char **ids = NULL;
    int rc = model_ilsvrc_synsets(&ids, err, errsz);
    if (rc) {
        free_names(given, c->n);
        return rc;
    }
    c->order = order;
    if (order == MODEL_ORDER_LABELS) {
        c->synsets = given;
    } else {
        c->synsets = ids; /* ID order; sorted for torchvision's */
        ids = NULL;
        if (order == MODEL_ORDER_SYNSET_SORTED)
            qsort(c->synsets, (size_t)c->n, sizeof *c->synsets, cmp_strp);
        if ((rc = model_ilsvrc_synsets(&ids, err, errsz)))
            return rc;
    }
    for (int k = 0; k < MODEL_ILSVRC_CLASSES; k++)
        c->of_id[k] = model_class_of_synset(c, ids[k]);
    free_names(ids, MODEL_ILSVRC_CLASSES);
    return ADJ_OK;
}

/* A layer-list model's classes: ILSVRC2012_ID order for OverFeat's 1000, else none. */
static void classes_for_layers(model *m)
{
    char msg[ADJ_ERRLEN];
    m->classes.n = m->spec.classes;
    if (m->spec.classes == MODEL_ILSVRC_CLASSES && !strncmp(m->spec.name, "overfeat", 8) &&
        classes_set(&m->classes, MODEL_ORDER_ILSVRC2012_ID, NULL, msg, sizeof msg)) {
        free_names(m->classes.synsets, m->classes.n); /* out of memory: no order */
        m->classes.synsets = NULL;
        m->classes.order = MODEL_ORDER_NONE;
    }
}

/* ---- labels ----------------------------------------------------------- */

int model_labels_load(const char *path, model_labels *out, char *err, size_t errsz)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return adj_fail(err, errsz, ADJ_ERR_IO, "labels file '%s': %s", path, strerror(errno));
    model_labels l = {0, NULL};
    int cap = 0, rc = ADJ_OK;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (l.n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **nn = realloc(l.names, (size_t)cap * sizeof *nn);
            if (!nn) {
                rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
                break;
            }
            l.names = nn;
        }
        if (!(l.names[l.n] = strdup(line))) {
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
            break;
        }
        l.n++;
    }
    free(line);
    fclose(f);
    if (!rc && l.n > 0 && l.names[l.n - 1][0] == '\0')
        free(l.names[--l.n]); /* a blank last line */
    if (!rc && l.n == 0)
        rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "labels file '%s' is empty", path);
    if (rc) {
        model_labels_free(&l);
        return rc;
    }
    *out = l;
    return ADJ_OK;
}

void model_labels_free(model_labels *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

/* ---- ONNX models -------------------------------------------------------- */

int model_is_onnx_path(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n > 5 && !strcmp(path + n - 5, ".onnx");
}

const gr_graph *model_graph(const model *m) { return m->graph; }

int model_is_onnx(const model *m) { return m->onnx; }

int model_node_layer(const model *m, int node)
{
    return !m->onnx && node >= 0 && node < gr_n_nodes(m->graph) ? m->node_layer[node] : -1;
}

int model_refresh(model *m, char *err, size_t errsz) { return gr_refresh(m->graph, err, errsz); }

const model_preproc *model_get_preproc(const model *m) { return &m->pre; }

/* mean or std: one number (all channels) or three. */
static int preproc_triple(const json_t *v, const char *key, float *out, char *err, size_t errsz)
{
    if (json_is_number(v)) {
        out[0] = out[1] = out[2] = (float)json_number_value(v);
    } else if (json_is_array(v) && json_array_size(v) == 3) {
        for (int i = 0; i < 3; i++) {
            if (!json_is_number(json_array_get(v, (size_t)i)))
                return adj_fail(err, errsz, ADJ_ERR_FORMAT, "'%s' must hold numbers", key);
            out[i] = (float)json_number_value(json_array_get(v, (size_t)i));
        }
    } else
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "'%s' must be a number or three", key);
    for (int i = 0; i < 3; i++)
        if (!isfinite(out[i]) || (!strcmp(key, "std") && !(out[i] > 0)))
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "'%s' has %g", key, (double)out[i]);
    return ADJ_OK;
}

/* Reads a preprocessing spec (JSON text) into m->pre, m->labels (as written), m->order_key
 * and the sizes (0: not given). */
static int preproc_parse(const char *text, size_t len, model *m, int *input_size,
                         int *scale_size, char *err, size_t errsz)
{
    model_preproc *p = &m->pre;
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "not a JSON object (line %d: %s)", je.line,
                        je.text);
    }
    int rc = ADJ_OK;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        const char *str = json_string_value(v);
        if (!strcmp(k, "input_size") || !strcmp(k, "scale_size")) {
            json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
            if (x < 1 || x > 8192)
                rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "'%s' must be 1..8192", k);
            *(!strcmp(k, "input_size") ? input_size : scale_size) = (int)x;
        } else if (!strcmp(k, "mean") || !strcmp(k, "std"))
            rc = preproc_triple(v, k, !strcmp(k, "mean") ? p->mean : p->std, err, errsz);
        else if (!strcmp(k, "pixel_scale")) {
            p->pixel_scale = (float)json_number_value(v);
            if (!json_is_number(v) || !(p->pixel_scale > 0) || !isfinite(p->pixel_scale))
                rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "'pixel_scale' must be positive");
        } else if (!strcmp(k, "channel_order") && str && (!strcmp(str, "RGB") || !strcmp(str, "BGR")))
            p->bgr = !strcmp(str, "BGR");
        else if (!strcmp(k, "output") && str &&
                 (!strcmp(str, "logits") || !strcmp(str, "probabilities")))
            p->probabilities = !strcmp(str, "probabilities");
        else if (!strcmp(k, "labels") && str && *str && strlen(str) < sizeof m->labels)
            snprintf(m->labels, sizeof m->labels, "%s", str);
        else if (!strcmp(k, "classes_order") && str && (!strcmp(str, "ilsvrc2012_id") ||
                                                        !strcmp(str, "synset_sorted")))
            m->order_key = !strcmp(str, "ilsvrc2012_id") ? MODEL_ORDER_ILSVRC2012_ID
                                                         : MODEL_ORDER_SYNSET_SORTED;
        else if (!strcmp(k, "labels"))
            rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "'labels' must be a file name");
        else if (!strcmp(k, "channel_order") || !strcmp(k, "output") || !strcmp(k, "classes_order"))
            rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "'%s' has an unknown value", k);
        else
            rc = adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED, "key '%s' is not supported", k);
        if (rc)
            break;
    }
    json_decref(o);
    return rc;
}

/* The preprocessing of an ONNX model at path: explicit file, sidecar, or torchvision's. */
static int preproc_load(model *m, const char *path, const char *pre_path, int *input_size,
                        int *scale_size, char *err, size_t errsz)
{
    static const model_preproc torchvision = {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f},
                                              1.0f / 255.0f, 0, 0};
    char side[4096];
    m->pre = torchvision;
    *input_size = *scale_size = 0;
    snprintf(m->pre_source, sizeof m->pre_source, "torchvision default");
    if (!pre_path && snprintf(side, sizeof side, "%.*s.json", (int)(strlen(path) - 5), path) <
                         (int)sizeof side && access(side, F_OK) == 0)
        pre_path = side;
    if (!pre_path)
        return ADJ_OK;
    char *buf = NULL, msg[ADJ_ERRLEN];
    size_t n = 0;
    int rc = ut_read_file(pre_path, 64 << 10, 0, &buf, &n, msg, sizeof msg);
    if (rc)
        return adj_fail(err, errsz, rc, "preprocessing %s: %s", pre_path, msg);
    rc = preproc_parse(buf, n, m, input_size, scale_size, msg, sizeof msg);
    free(buf);
    if (rc)
        return adj_fail(err, errsz, rc, "preprocessing %s: %s", pre_path, msg);
    const char *slash = strrchr(pre_path, '/'); /* labels: relative to the spec's folder */
    if (m->labels[0] && m->labels[0] != '/' && slash) {
        char rel[sizeof m->labels];
        snprintf(rel, sizeof rel, "%s", m->labels);
        if (snprintf(m->labels, sizeof m->labels, "%.*s/%s", (int)(slash - pre_path), pre_path,
                     rel) >= (int)sizeof m->labels)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "preprocessing %s: labels path too long",
                            pre_path);
    }
    snprintf(m->pre_source, sizeof m->pre_source, "%s", pre_path);
    return ADJ_OK;
}

/* The spec of a loaded graph: sizes and classes from its input and output 0. */
static int onnx_spec(model *m, const char *path, int input_size, int scale_size, char *err,
                     size_t errsz)
{
    op_shape in, out;
    int batched;
    char b1[64], b2[64];
    gr_input_shape(m->graph, &in, &batched);
    gr_output_info(m->graph, 0, &out, NULL, NULL);
    if (!batched || in.rank != 4 || in.d[1] != 3 || in.d[2] != in.d[3] || out.rank != 2 ||
        out.d[1] < 2 || out.d[1] > 1000000)
        return adj_fail(err, errsz, ADJ_ERR_UNSUPPORTED,
                        "%s: input %s and output %s: an image classifier takes [N,3,S,S] and gives "
                        "[N,classes]", path, op_shape_str(&in, b1, sizeof b1),
                        op_shape_str(&out, b2, sizeof b2));
    if (input_size && input_size != in.d[2])
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s: input_size %d but the model takes %lld",
                        path, input_size, (long long)in.d[2]);
    model_spec *s = &m->spec;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    snprintf(s->name, sizeof s->name, "%.*s", (int)(strlen(base) - 5), base);
    s->channels = 3;
    s->input_size = (int)in.d[2];
    s->scale_size = scale_size ? scale_size : (int)((s->input_size * 256 + 112) / 224);
    if (s->scale_size < s->input_size)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s: scale_size %d below input_size %d", path,
                        s->scale_size, s->input_size);
    s->mean = 0.0f, s->std = 1.0f; /* per channel: model_get_preproc */
    s->classes = (int)out.d[1];
    s->n_layers = 0;
    return ADJ_OK;
}

/* An ONNX model's classes from its spec's labels and classes_order (model_load_onnx). */
static int onnx_classes(model *m, char *err, size_t errsz)
{
    model_classes *c = &m->classes;
    char msg[ADJ_ERRLEN];
    int all_syn = 0, rc;
    c->n = m->spec.classes;
    if (m->labels[0]) {
        if ((rc = model_labels_load(m->labels, &m->names, msg, sizeof msg)))
            return adj_fail(err, errsz, rc, "preprocessing: %s", msg);
        if (m->names.n != c->n)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "labels file %s has %d lines, the model "
                            "%d classes", m->labels, m->names.n, c->n);
        c->names = m->names.names;
        all_syn = 1;
        for (int i = 0; i < c->n; i++)
            all_syn &= is_synset(m->names.names[i]);
    }
    model_class_order order = m->order_key;
    if (!order)
        order = all_syn ? MODEL_ORDER_LABELS
                        : c->n == MODEL_ILSVRC_CLASSES ? MODEL_ORDER_SYNSET_SORTED : MODEL_ORDER_NONE;
    if (order != MODEL_ORDER_LABELS && order != MODEL_ORDER_NONE && c->n != MODEL_ILSVRC_CLASSES)
        return adj_fail(err, errsz, ADJ_ERR_FORMAT, "classes_order '%s' needs %d classes, the "
                        "model has %d", model_class_order_name(order), MODEL_ILSVRC_CLASSES, c->n);
    if (order == MODEL_ORDER_NONE)
        return ADJ_OK;
    char **given = NULL;
    if (order == MODEL_ORDER_LABELS) {
        if (!(given = calloc(c->n > 0 ? (size_t)c->n : 1, sizeof *given)))
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        for (int i = 0; i < c->n; i++)
            if (!(given[i] = strdup(m->names.names[i]))) {
                free_names(given, c->n);
                return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
            }
    }
    if ((rc = classes_set(c, order, given, err, errsz)))
        return rc;
    for (int i = 0; i < c->n; i++) {
        if (order == MODEL_ORDER_LABELS && model_class_of_synset(c, c->synsets[i]) != i)
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "labels file %s names %s twice",
                            m->labels, c->synsets[i]);
        if (all_syn && strcmp(m->names.names[i], c->synsets[i]))
            return adj_fail(err, errsz, ADJ_ERR_FORMAT, "labels file %s line %d is %s, but "
                            "classes_order %s makes class %d %s", m->labels, i + 1,
                            m->names.names[i], model_class_order_name(order), i, c->synsets[i]);
    }
    return ADJ_OK;
}

/* SHA-256 (FIPS 180-4) of a file: hex into out[65]. ADJ_OK or ADJ_ERR_IO. */
static void sha256_block(uint32_t h[8], const unsigned char *p)
{
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 64; i++)
        w[i] = w[i - 16] + (ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3)) + w[i - 7] +
               (ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10));
    memcpy(v, h, sizeof v);
    uint32_t a = v[0], b = v[1], c = v[2], d = v[3], e = v[4], f = v[5], g = v[6], hh = v[7];
    for (int i = 0; i < 64; i++) { /* the working variables in registers, not an array */
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + k[i] +
                      w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
#undef ROR
    v[0] = a, v[1] = b, v[2] = c, v[3] = d, v[4] = e, v[5] = f, v[6] = g, v[7] = hh;
    for (int i = 0; i < 8; i++)
        h[i] += v[i];
}

/* SHA-256 of a stream: blocks as they come, the tail and the length at the end. */
typedef struct {
    uint32_t h[8];
    unsigned char buf[64];
    size_t have;
    uint64_t total;
} sha256_ctx;

static void sha256_init(sha256_ctx *c)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->have = 0;
    c->total = 0;
}

static void sha256_update(sha256_ctx *c, const unsigned char *p, size_t n)
{
    c->total += n;
    if (c->have) {
        size_t k = 64 - c->have < n ? 64 - c->have : n;
        memcpy(c->buf + c->have, p, k);
        c->have += k, p += k, n -= k;
        if (c->have < 64)
            return;
        sha256_block(c->h, c->buf);
        c->have = 0;
    }
    for (; n >= 64; p += 64, n -= 64)
        sha256_block(c->h, p);
    memcpy(c->buf, p, n);
    c->have = n;
}

static void sha256_final(sha256_ctx *c, char out[65])
{
    unsigned char tail[128] = {0};
    memcpy(tail, c->buf, c->have);
    tail[c->have] = 0x80;
    const size_t len = c->have + 1 + 8 <= 64 ? 64 : 128;
    for (int i = 0; i < 8; i++)
        tail[len - 1 - i] = (unsigned char)((c->total * 8) >> (8 * i));
    for (size_t i = 0; i < len; i += 64)
        sha256_block(c->h, tail + i);
    for (int i = 0; i < 8; i++)
        snprintf(out + 8 * i, 9, "%08x", c->h[i]);
}

/* The hex SHA-256 of n bytes in memory. */
static void sha256_mem(const void *p, size_t n, char out[65])
{
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, p, n);
    sha256_final(&c, out);
}

static int sha256_file(const char *path, char out[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ADJ_ERR_IO;
    sha256_ctx c;
    sha256_init(&c);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(&c, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return ADJ_ERR_IO;
    sha256_final(&c, out);
    return ADJ_OK;
}

const char *model_weights_sha256(const model *m) { return m->sha256; }

int model_load_onnx(const char *path, const char *preprocess_path, model **out, char *err,
                    size_t errsz)
{
    if (!model_is_onnx_path(path))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s is not a .onnx file", path ? path : "(null)");
    model *m = calloc(1, sizeof *m);
    if (!m)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    m->onnx = 1;
    int input_size, scale_size;
    int rc = preproc_load(m, path, preprocess_path, &input_size, &scale_size, err, errsz);
    if (!rc)
        rc = onnx_load(path, NULL, &m->graph, err, errsz);
    if (!rc)
        rc = onnx_spec(m, path, input_size, scale_size, err, errsz);
    if (!rc)
        rc = onnx_classes(m, err, errsz);
    if (!rc) {
        char msg[ADJ_ERRLEN];
        if ((rc = gr_backward_check(m->graph, msg, sizeof msg)))
            adj_fail(err, errsz, rc, "%s: no input gradient (attacks need one): %s", path, msg);
    }
    if (rc) {
        model_free(m);
        return rc;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    m->n_params = gr_param_count(m->graph);
    if (sha256_file(path, m->sha256)) {
        int e = errno;
        model_free(m);
        return adj_fail(err, errsz, ADJ_ERR_IO, "%s: %s", path, strerror(e));
    }
    *out = m;
    return ADJ_OK;
}

int model_onnx_info_json(const model *m, char **out)
{
    *out = NULL;
    if (!m->onnx)
        return ADJ_ERR_ARG;
    const model_preproc *p = &m->pre;
    json_t *ops = json_object();
    for (int i = 0; ops && i < gr_n_nodes(m->graph); i++) {
        const char *op = gr_node_op(m->graph, i);
        json_t *c = json_object_get(ops, op);
        json_object_set_new(ops, op, json_integer(c ? json_integer_value(c) + 1 : 1));
    }
    const char *order = model_class_order_name(m->classes.order);
    json_t *o = json_pack("{s:s, s:s, s:{s:i, s:i, s:[f,f,f], s:[f,f,f], s:f, s:s, s:s, s:o, s:o}, "
                          "s:s, s:I, s:i, s:o, s:s}",
                          "format", "onnx", "file", m->path, "preprocessing", "input_size",
                          m->spec.input_size, "scale_size", m->spec.scale_size, "mean",
                          (double)p->mean[0], (double)p->mean[1], (double)p->mean[2], "std",
                          (double)p->std[0], (double)p->std[1], (double)p->std[2], "pixel_scale",
                          (double)p->pixel_scale, "channel_order", p->bgr ? "BGR" : "RGB", "output",
                          p->probabilities ? "probabilities" : "logits", "labels",
                          m->labels[0] ? json_string(m->labels) : json_null(), "classes_order",
                          order ? json_string(order) : json_null(), "preprocessing_source",
                          m->pre_source, "parameters", (json_int_t)m->n_params, "nodes",
                          gr_n_nodes(m->graph), "operators", ops, "sha256", m->sha256);
    if (!o)
        return ADJ_ERR_NOMEM;
    *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return *out ? ADJ_OK : ADJ_ERR_NOMEM;
}
