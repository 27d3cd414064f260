/*
 * advjpg-train: trains a model spec from scratch on a labelled image folder
 * (the layout advjpg-gen writes and /evaluate reads: images + labels.txt of
 * "filename<TAB>class" lines, + classes.txt of class names).
 *
 *   advjpg-train --train DIR --val DIR --out PREFIX [--model NAME|FILE.json]
 *                [--epochs 12] [--stop-after E] [--batch 64] [--lr 0.05] [--seed 1] [--no-flip]
 *                [--smoothing 0.1]
 *
 * Every image is decoded and prepared once: shorter side scaled to the spec's
 * scale_size and the centred scale_size square cut (img_prepare). Each epoch
 * shuffles the training set (seeded) and trains on random input_size crops of
 * those squares, flipped left-right half of the time; validation uses the
 * centred crop, exactly what the daemon does. SGD with momentum 0.9, weight
 * decay 5e-4, label smoothing (--smoothing, against a saturated softmax) and
 * a cosine learning-rate decay. One progress line per epoch.
 * Writes PREFIX.weights (OverFeat's layout), PREFIX.json (the spec) and
 * PREFIX.labels (the class names).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attack.h"
#include "image.h"
#include "train.h"
#include "ut_clock.h"

typedef struct {
    int n, size;         /* images, side of each square */
    uint8_t *px;         /* n * size * size * 3 */
    int *labels;
} dataset;

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Loads DIR/labels.txt and every image in it, prepared to scale x crop squares. */
static int load_set(const char *dir, int scale, int crop, int classes, dataset *d, char *err, size_t errsz)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/labels.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot read %s", path);
    int cap = 1024;
    d->n = 0;
    d->size = crop;
    d->px = malloc((size_t)cap * crop * crop * 3);
    d->labels = malloc((size_t)cap * sizeof(int));
    char line[4096];
    int rc = ADJ_OK, lineno = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *tab = strchr(line, '\t');
        if (!tab) {
            rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s line %d: no tab", path, lineno);
            break;
        }
        *tab = 0;
        int label = atoi(tab + 1);
        if (label < 0 || label >= classes) {
            rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s line %d: class %d outside 0..%d", path,
                          lineno, label, classes - 1);
            break;
        }
        if (d->n == cap) {
            cap *= 2;
            d->px = realloc(d->px, (size_t)cap * crop * crop * 3);
            d->labels = realloc(d->labels, (size_t)cap * sizeof(int));
        }
        char ipath[8200];
        snprintf(ipath, sizeof ipath, "%s/%s", dir, line);
        size_t len;
        uint8_t *buf = read_file(ipath, &len);
        img_rgb im, x;
        if (!buf) {
            rc = adj_fail(err, errsz, ADJ_ERR_IO, "cannot read %s", ipath);
            break;
        }
        char msg[ADJ_ERRLEN];
        rc = img_decode(buf, len, IMG_DEFAULT_MAX_PIXELS, &im, msg, sizeof msg);
        free(buf);
        if (!rc) {
            rc = img_prepare(&im, scale, crop, &x, msg, sizeof msg);
            img_free(&im);
        }
        if (rc) {
            adj_fail(err, errsz, rc, "%s: %s", ipath, msg);
            break;
        }
        memcpy(d->px + (size_t)d->n * crop * crop * 3, x.px, (size_t)crop * crop * 3);
        img_free(&x);
        d->labels[d->n++] = label;
    }
    fclose(f);
    if (!rc && d->n == 0)
        rc = adj_fail(err, errsz, ADJ_ERR_FORMAT, "%s lists no images", path);
    return rc;
}

/* Copies a size x size crop at (ox, oy) of a square of side `side` into planar floats. */
static void crop_planar(const uint8_t *sq, int side, int ox, int oy, int size, int flip, float *out)
{
    const size_t hw = (size_t)size * size;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            int sx = flip ? size - 1 - x : x;
            const uint8_t *p = sq + ((size_t)(oy + y) * side + ox + sx) * 3;
            for (int c = 0; c < 3; c++)
                out[c * hw + (size_t)y * size + x] = p[c];
        }
}

/* Top-1 accuracy of the centred crops; *mean_top gets the mean top-label probability. */
static double evaluate(net_ctx *ctx, const dataset *v, int batch, int classes, float *x, float *probs,
                       double *mean_top)
{
    double top_sum = 0;
    const int size = v->size;
    const size_t per = (size_t)3 * size * size;
    int correct = 0;
    for (int b0 = 0; b0 < v->n; b0 += batch) {
        int nb = v->n - b0 < batch ? v->n - b0 : batch;
        for (int i = 0; i < nb; i++)
            crop_planar(v->px + (size_t)(b0 + i) * per, size, 0, 0, size, 0, x + per * i);
        net_forward(ctx, x, nb, probs);
        for (int i = 0; i < nb; i++) {
            const float *p = probs + (size_t)i * classes;
            const int top = net_argmax(p, classes);
            correct += top == v->labels[b0 + i];
            top_sum += p[top];
        }
    }
    *mean_top = top_sum / v->n;
    return (double)correct / v->n;
}

static int write_outputs(const char *prefix, const model *m, const char *train_dir, char *err, size_t errsz)
{
    char path[4200];
    const model_spec *s = model_get_spec(m);
    snprintf(path, sizeof path, "%s.weights", prefix);
    FILE *f = fopen(path, "wb");
    size_t n = model_spec_param_count(s);
    if (!f || fwrite(model_weights(m), sizeof(float), n, f) != n || fclose(f) != 0)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot write %s", path);
    char *json;
    if (model_spec_to_json(s, &json))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    snprintf(path, sizeof path, "%s.json", prefix);
    f = fopen(path, "w");
    int ok = f && fputs(json, f) >= 0 && fputc('\n', f) != EOF;
    free(json);
    if (!f || fclose(f) != 0 || !ok)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot write %s", path);
    char src[4200];
    snprintf(src, sizeof src, "%s/classes.txt", train_dir);
    size_t len;
    uint8_t *names = read_file(src, &len);
    if (names) {
        snprintf(path, sizeof path, "%s.labels", prefix);
        f = fopen(path, "wb");
        ok = f && fwrite(names, 1, len, f) == len;
        free(names);
        if (!f || fclose(f) != 0 || !ok)
            return adj_fail(err, errsz, ADJ_ERR_IO, "cannot write %s", path);
    }
    return ADJ_OK;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: advjpg-train --train DIR --val DIR --out PREFIX [--model NAME|FILE.json]\n"
               "                    [--epochs 12] [--batch 64] [--lr 0.05] [--seed 1] [--no-flip]\n"
               "                    [--smoothing 0.1] [--stop-after E]\n"
               "Trains the model from scratch on DIR/labels.txt; writes PREFIX.weights,\n"
               "PREFIX.json and PREFIX.labels. --stop-after E ends after epoch E of the\n"
               "--epochs learning-rate schedule (early stopping; default: all of them).\n"
               "The default model is " MODEL_DEFAULT_NAME ".\n");
}

int main(int argc, char **argv)
{
    const char *train_dir = NULL, *val_dir = NULL, *out = NULL, *model_name = MODEL_DEFAULT_NAME;
    int epochs = 12, stop_after = 0, batch = 64, flip = 1;
    double lr0 = 0.05, smoothing = 0.1;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--no-flip")) {
            flip = 0;
            continue;
        } else if (!v) {
            fprintf(stderr, "advjpg-train: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--train")) train_dir = v;
        else if (!strcmp(a, "--val")) val_dir = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--model")) model_name = v;
        else if (!strcmp(a, "--epochs")) epochs = atoi(v);
        else if (!strcmp(a, "--stop-after")) stop_after = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--lr")) lr0 = atof(v);
        else if (!strcmp(a, "--smoothing")) smoothing = atof(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "advjpg-train: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (stop_after == 0)
        stop_after = epochs;
    if (!train_dir || !val_dir || !out || epochs < 1 || stop_after < 1 || stop_after > epochs ||
        batch < 1 || !(lr0 > 0) ||
        !(smoothing >= 0 && smoothing < 1)) {
        usage(stderr);
        return 2;
    }
    char err[ADJ_ERRLEN];
    model_spec spec;
    model *m = NULL;
    trn_state *t = NULL;
    dataset tr = {0}, va = {0};
    size_t np;
    if (model_spec_load(model_name, &spec, err, sizeof err))
        goto fail;
    np = model_spec_param_count(&spec);
    if (model_create(&spec, calloc(np, sizeof(float)), np, 0, &m, err, sizeof err))
        goto fail;
    trn_init_weights(m, seed);
    trn_params tp = {.momentum = 0.9f, .weight_decay = 5e-4f, .smoothing = (float)smoothing};
    if (trn_new(m, batch, &tp, &t, err, sizeof err))
        goto fail;
    double t0 = ut_now();
    if (load_set(train_dir, spec.scale_size, spec.scale_size, spec.classes, &tr, err, sizeof err) ||
        load_set(val_dir, spec.scale_size, spec.input_size, spec.classes, &va, err, sizeof err))
        goto fail;
    fprintf(stderr, "advjpg-train: %s, %zu parameters, %d training and %d validation images (loaded in %.1f s)\n",
            spec.name, np, tr.n, va.n, ut_now() - t0);
    const int S = spec.input_size, side = tr.size;
    const size_t per = (size_t)3 * S * S, sq = (size_t)3 * side * side;
    float *x = malloc(per * batch * sizeof(float)), *probs = malloc((size_t)batch * spec.classes * sizeof(float));
    int *order = malloc((size_t)tr.n * sizeof(int)), *labels = malloc((size_t)batch * sizeof(int));
    rng gen;
    rng_seed(&gen, seed ^ 0x5eed);
    const long steps_total = (long)epochs * ((tr.n + batch - 1) / batch);
    long step = 0;
    double acc = 0;
    for (int e = 0; e < stop_after; e++) {
        for (int i = 0; i < tr.n; i++)
            order[i] = i;
        for (int i = tr.n - 1; i > 0; i--) {
            int j = (int)rng_below(&gen, (uint64_t)i + 1), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        double te = ut_now(), loss_sum = 0;
        long correct = 0;
        for (int b0 = 0; b0 < tr.n; b0 += batch, step++) {
            const int nb = tr.n - b0 < batch ? tr.n - b0 : batch;
            for (int i = 0; i < nb; i++) {
                const int k = order[b0 + i];
                int ox = (int)rng_below(&gen, (uint64_t)(side - S + 1));
                int oy = (int)rng_below(&gen, (uint64_t)(side - S + 1));
                int fl = flip && (rng_next(&gen) >> 63);
                crop_planar(tr.px + sq * k, side, ox, oy, S, fl, x + per * i);
                labels[i] = tr.labels[k];
            }
            /* cosine decay with a short linear warm-up */
            double frac = (double)step / steps_total;
            double lr = lr0 * 0.5 * (1 + cos(M_PI * frac));
            if (step < 100)
                lr *= (step + 1) / 100.0;
            double loss;
            int ok;
            int rc = trn_step(t, x, labels, nb, (float)lr, &loss, &ok);
            if (rc) {
                snprintf(err, sizeof err, "step %ld: %s (the loss diverged; try a smaller --lr)", step,
                         adj_strerror(rc));
                goto fail;
            }
            loss_sum += loss;
            correct += ok;
        }
        double dt = ut_now() - te, top;
        acc = evaluate(trn_ctx(t), &va, batch, spec.classes, x, probs, &top);
        printf("epoch %d/%d  loss %.4f  train accuracy %.4f  validation accuracy %.4f  mean top prob %.4f"
               "  %.0f images/s\n",
               e + 1, epochs, loss_sum / tr.n, (double)correct / tr.n, acc, top, tr.n / dt);
        fflush(stdout);
    }
    if (write_outputs(out, m, train_dir, err, sizeof err))
        goto fail;
    printf("wrote %s.weights (%zu bytes), %s.json, %s.labels; validation accuracy %.4f; %.0f s in all\n",
           out, np * sizeof(float), out, out, acc, ut_now() - t0);
    trn_free(t);
    model_free(m);
    return 0;
fail:
    fprintf(stderr, "advjpg-train: %s\n", err);
    trn_free(t);
    model_free(m);
    return 1;
}
