#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tu_checks, tu_failures;

int tu_done(void)
{
    printf("%d checks, %d failed\n", tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}

uint64_t tu_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float tu_uniform(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)((tu_rand(s) >> 40) / (double)(1ULL << 24));
}

const char *tu_tmpdir(void)
{
    static char buf[4096];
    const char *base = getenv("TMPDIR");
    snprintf(buf, sizeof buf, "%s/advjpg-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        abort();
    }
    return buf;
}

void tu_rmtree(const char *path)
{
    char cmd[4200];
    if (!path || (strncmp(path, "/tmp/", 5) != 0 && !getenv("TMPDIR")))
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

float *tu_random_weights(const model_spec *spec, uint64_t seed)
{
    model_shape shapes[MODEL_MAX_LAYERS + 1];
    if (model_spec_shapes(spec, shapes, NULL, 0))
        return NULL;
    size_t n = model_spec_param_count(spec), off = 0;
    float *w = malloc(n * sizeof *w);
    if (!w)
        return NULL;
    for (int i = 0; i < spec->n_layers; i++) {
        const model_layer *l = &spec->layers[i];
        const model_shape *in = &shapes[i];
        size_t fan_in;
        if (l->kind == MODEL_LAYER_CONV)
            fan_in = (size_t)in->c * l->kh * l->kw;
        else if (l->kind == MODEL_LAYER_FC)
            fan_in = (size_t)in->c * in->h * in->w;
        else
            continue;
        float a = sqrtf(6.0f / (float)fan_in); /* He-uniform */
        for (size_t k = 0; k < (size_t)l->out * fan_in; k++)
            w[off++] = tu_uniform(&seed, -a, a);
        for (int k = 0; k < l->out; k++)
            w[off++] = tu_uniform(&seed, -0.1f, 0.1f);
    }
    return w;
}

int tu_write_random_weights(const model_spec *spec, const char *path, uint64_t seed)
{
    float *w = tu_random_weights(spec, seed);
    if (!w)
        return -1;
    int rc = tu_write_file(path, w, model_spec_param_count(spec) * sizeof *w);
    free(w);
    return rc;
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

op_shape tu_shape(int rank, const int64_t *d)
{
    op_shape s = {rank, {0}};
    for (int i = 0; i < rank && i < OP_MAX_RANK; i++)
        s.d[i] = d[i];
    return s;
}

void tu_gb_start(tu_gb *b)
{
    memset(b, 0, sizeof *b);
    if (gr_new(&b->g, b->err, sizeof b->err))
        b->failed = 1;
}

int tu_gb_tensor(tu_gb *b, op_dtype dt, const op_shape *s, int batched, int is_const, void *data,
                 int hold)
{
    char name[32];
    int id = -1;
    snprintf(name, sizeof name, "t%d", b->nt++);
    if (b->failed) {
        if (hold != GR_DATA_EXTERN)
            free(data);
    } else if (gr_add_tensor(b->g, name, dt, s, batched, is_const, data, hold, &id, b->err,
                             sizeof b->err))
        b->failed = 1;
    return id;
}

int tu_gb_node(tu_gb *b, const char *op, const int *in, int n_in, const op_attr *a, int n_a,
               int n_out, int *outs, int opset)
{
    const op_shape s = {0, {0}};
    int o[8] = {-1};
    for (int i = 0; i < n_out && i < 8; i++) /* at most 8 */
        o[i] = tu_gb_tensor(b, OP_FLOAT, &s, 0, 0, NULL, GR_DATA_EXTERN);
    if (!b->failed && gr_add_node(b->g, op, op, in, n_in, o, n_out, a, n_a, opset, b->err,
                                  sizeof b->err))
        b->failed = 1;
    if (outs)
        memcpy(outs, o, sizeof(int) * (size_t)n_out);
    return o[0];
}

int tu_gb_finish(tu_gb *b, int x, int y)
{
    if (!b->failed && (gr_set_io(b->g, x, &y, 1, b->err, sizeof b->err) ||
                       gr_finalize(b->g, b->err, sizeof b->err)))
        b->failed = 1;
    return b->failed;
}

op_attr tu_int(const char *name, int64_t v)
{
    return (op_attr){.name = name, .type = OP_ATTR_INT, .i = v};
}

op_attr tu_float(const char *name, float v)
{
    return (op_attr){.name = name, .type = OP_ATTR_FLOAT, .f = v};
}

op_attr tu_str(const char *name, const char *v)
{
    return (op_attr){.name = name, .type = OP_ATTR_STRING, .s = v};
}

op_attr tu_ints(const char *name, const int64_t *v, size_t k)
{
    return (op_attr){.name = name, .type = OP_ATTR_INTS, .ints = v, .n = k};
}
