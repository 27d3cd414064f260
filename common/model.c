#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ut_file.h"

struct model {
    model_spec spec;
    const float *weights;   /* mmap'd or owned */
    float *owned;           /* non-NULL when weights are in memory */
    size_t map_bytes;       /* non-zero when mmap'd */
    size_t n_params;
    long offsets[MODEL_MAX_LAYERS];
    char path[4096];
};

/* ---- built-in specs ---------------------------------------------------- */

/* config/advjpg-shapes.json as a string, generated at build time by
 * tools/advjpg-embed.c (constant data, not state) */
extern const char model_default_spec_json[];
extern const unsigned long model_default_spec_json_len;

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
    model_init_offsets(m);
    *out = m;
    return ADJ_OK;
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
    model_init_offsets(m);
    *out = m;
    return ADJ_OK;
}

void model_free(model *m)
{
    if (!m)
        return;
    if (m->map_bytes)
        munmap((void *)m->weights, m->map_bytes);
    free(m->owned);
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
