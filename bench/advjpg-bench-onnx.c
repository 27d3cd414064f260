/*
 * advjpg-bench-onnx: an ONNX model through the service's path (model_load_onnx,
 * net_forward, net_backward to the pixels), timed; bench/torch_side_by_side.py
 * runs it in alternation with PyTorch on the same model.
 *
 *   advjpg-bench-onnx MODEL.onnx [--batch 16] [--rounds 3] [--pass forward,gradient]
 *                    [--layers]
 *
 * Prints one JSON line for the load:
 *   {"case":"load","model":..,"seconds":..,"file_mb":..,"rss_mb":..,"peak_rss_mb":..}
 * (rss after the load; peak_rss_mb the process's peak so far, VmHWM), then
 * one per pass after a warm-up batch:
 *   {"case":"forward","batch":16,"ms_per_image":[..one per round..],"peak_rss_mb":..}
 * "gradient" is net_forward + net_backward (the input gradient of the
 * cross-entropy, label 0). The input is random pixels 0..255.
 *
 * --layers: where the time goes, on the model's graph (onnx_load, gr_forward,
 * gr_backward_loss: the kernels the service runs, without its
 * preprocessing), after a warm-up batch, over the rounds: one line per
 * operator type,
 *   {"case":"op","op":"Conv","nodes":53,"forward_ms":..,"backward_ms":..}
 * (ms per image, summed over that type's nodes; a fused node's type names what
 * it holds, gr_node_label: "Conv+Add+Relu"), then one per node, in run
 * order (gr_node_op's index), with its input, weight (input 1) and output
 * shapes per image, MFLOP per image (Conv, Gemm, MatMul; 0 for others) and
 * the GFLOP/s of its forward and of its input gradient (the same FLOP):
 *   {"case":"node","index":12,"op":"Conv","x":"64x56x56","w":"64x64x3x3",
 *    "y":"64x56x56","mflop":231.2,"forward_ms":..,"backward_ms":..,
 *    "forward_gflops":..,"backward_gflops":..}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "graph.h"
#include "model.h"
#include "net.h"
#include "onnx.h"
#include "ut_clock.h"

/* Resident set size now (from /proc/self/statm), MB; 0 if unknown. */
static double rss_mb(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (double)res * 4096.0 / 1048576.0;
}

/* Peak RSS (VmHWM of /proc/self/status), MB: this program's own, unlike getrusage's
 * ru_maxrss, which a child inherits from a larger parent (a Python process). */
static double peak_rss_mb(void)
{
    char line[256];
    double kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atof(line + 6);
    if (f)
        fclose(f);
    return kb / 1024.0;
}

/* One pass ("forward" or "gradient") over rounds batches of b images. */
static int time_pass(net_ctx *ctx, const char *pass, int b, int rounds, const float *x,
                     float *g, const int *labels)
{
    const int grad = !strcmp(pass, "gradient");
    printf("{\"case\":\"%s\",\"batch\":%d,\"ms_per_image\":[", pass, b);
    for (int r = -1; r < rounds; r++) { /* r = -1: the warm-up */
        const double t0 = ut_now();
        if (net_forward(ctx, x, b, NULL) || (grad && net_backward(ctx, labels, g, NULL, NULL)))
            return 1;
        if (r >= 0)
            printf("%s%.2f", r ? "," : "", (ut_now() - t0) * 1e3 / b);
    }
    printf("],\"peak_rss_mb\":%.0f}\n", peak_rss_mb());
    fflush(stdout);
    return 0;
}

/* dst[i] = sum over rounds of node i's seconds (a context's totals minus the warm-up's). */
static void node_seconds(const gr_ctx *c, int nn, const double *warm, int bwd, double *dst)
{
    (bwd ? gr_ctx_node_seconds_backward : gr_ctx_node_seconds)(c, dst);
    for (int i = 0; i < nn; i++)
        dst[i] -= warm[i];
}

/* "64x56x56": a shape without its batch dimension (a batched tensor's d[0]). */
static const char *shape_str(const op_shape *sh, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int d = sh->d[0] == OP_DIM_BATCH ? 1 : 0; d < sh->rank && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", len ? "x" : "", (long long)sh->d[d]);
    return buf;
}

/* Values per image of a shape (a batched one's d[0] left out). */
static double per_image(const op_shape *sh)
{
    double v = 1;
    for (int d = sh->d[0] == OP_DIM_BATCH ? 1 : 0; d < sh->rank; d++)
        v *= (double)sh->d[d];
    return v;
}

/* FLOP per image of node j (2 per multiply-add): Conv's 2 x Y x (W's values per
 * output channel), Gemm's and MatMul's 2 x Y x (A's last dimension); 0 for others. */
static double node_flop(const gr_graph *g, int j)
{
    const char *op = gr_node_op(g, j);
    op_shape a, w, y;
    if (gr_node_shape(g, j, 0, 0, &a) || gr_node_shape(g, j, 1, 0, &y))
        return 0;
    if (!strcmp(op, "Conv") && !gr_node_shape(g, j, 0, 1, &w) && w.d[0] > 0)
        return 2 * per_image(&y) * (per_image(&w) / (double)w.d[0]);
    if ((!strcmp(op, "Gemm") || !strcmp(op, "MatMul")) && a.rank > 0)
        return 2 * per_image(&y) * (double)a.d[a.rank - 1];
    return 0;
}

/* Prints one line per operator type (with what fusion folded in: "Conv+Relu"),
 * then one per node: its input, weight and
 * output shapes per image, MFLOP per image and the forward's and input
 * gradient's GFLOP/s (an input gradient's products are as large as the forward's). */
static void print_layers(const gr_graph *g, int nn, const double *f, const double *b, double per)
{
    for (int i = 0; i < nn; i++) { /* a type's line at its first node */
        int first = 1, k = 0;
        double fs = 0, bs = 0;
        for (int j = 0; j < nn && first; j++)
            first = j >= i || strcmp(gr_node_label(g, j), gr_node_label(g, i));
        for (int j = i; first && j < nn; j++)
            if (!strcmp(gr_node_label(g, j), gr_node_label(g, i)))
                k++, fs += f[j], bs += b[j];
        if (first)
            printf("{\"case\":\"op\",\"op\":\"%s\",\"nodes\":%d,\"forward_ms\":%.3f,"
                   "\"backward_ms\":%.3f}\n", gr_node_label(g, i), k, fs * per, bs * per);
    }
    for (int j = 0; j < nn; j++) {
        char sx[64] = "", sw[64] = "", sy[64] = "";
        op_shape sh;
        if (!gr_node_shape(g, j, 0, 0, &sh))
            shape_str(&sh, sx, sizeof sx);
        if (!gr_node_shape(g, j, 0, 1, &sh))
            shape_str(&sh, sw, sizeof sw);
        if (!gr_node_shape(g, j, 1, 0, &sh))
            shape_str(&sh, sy, sizeof sy);
        const double fl = node_flop(g, j), fms = f[j] * per, bms = b[j] * per;
        printf("{\"case\":\"node\",\"index\":%d,\"op\":\"%s\",\"x\":\"%s\",\"w\":\"%s\","
               "\"y\":\"%s\",\"mflop\":%.1f,\"forward_ms\":%.3f,\"backward_ms\":%.3f,"
               "\"forward_gflops\":%.1f,\"backward_gflops\":%.1f}\n", j, gr_node_label(g, j), sx, sw,
               sy, fl * 1e-6, fms, bms, fms > 0 ? fl / fms * 1e-6 : 0.0,
               bms > 0 ? fl / bms * 1e-6 : 0.0);
    }
}

/* --layers: per-node times of rounds forward + input-gradient batches of b images. */
static int time_layers(const char *path, int b, int rounds, const float *x, float *dx,
                       const int *labels)
{
    char err[ADJ_ERRLEN];
    gr_graph *g = NULL;
    gr_ctx *c = NULL;
    if (onnx_load(path, NULL, &g, err, sizeof err) ||
        gr_ctx_new(g, b, GR_BACKWARD, &c, err, sizeof err)) {
        fprintf(stderr, "advjpg-bench-onnx: %s\n", err);
        gr_free(g);
        return 1;
    }
    const int nn = gr_n_nodes(g);
    double *s = calloc((size_t)nn * 4 + 4, sizeof *s); /* warm-up fwd, bwd; rounds' fwd, bwd */
    int rc = !s;
    for (int r = -1; !rc && r < rounds; r++) {
        rc = gr_forward(c, x, b, err, sizeof err) ||
             gr_backward_loss(c, labels, dx, NULL, err, sizeof err);
        if (!rc && r < 0)
            gr_ctx_node_seconds(c, s), gr_ctx_node_seconds_backward(c, s + nn);
    }
    if (!rc) {
        node_seconds(c, nn, s, 0, s + 2 * nn);
        node_seconds(c, nn, s + nn, 1, s + 3 * nn);
        print_layers(g, nn, s + 2 * nn, s + 3 * nn, 1e3 / ((double)b * rounds));
    } else
        fprintf(stderr, "advjpg-bench-onnx: %s\n", s ? err : "out of memory");
    free(s);
    gr_ctx_free(c);
    gr_free(g);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *passes = "forward,gradient";
    int batch = 16, rounds = 3, layers = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pass") && i + 1 < argc)
            passes = argv[++i];
        else if (!strcmp(argv[i], "--layers"))
            layers = 1;
        else if (!path && argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "usage: advjpg-bench-onnx MODEL.onnx [--batch 16] [--rounds 3] "
                            "[--pass forward,gradient] [--layers]\n");
            return 2;
        }
    }
    if (!path || batch < 1 || rounds < 1) {
        fprintf(stderr, "advjpg-bench-onnx: a model, --batch >= 1 and --rounds >= 1\n");
        return 2;
    }
    char err[ADJ_ERRLEN];
    model *m = NULL;
    net_ctx *ctx = NULL;
    const double t0 = ut_now();
    if (model_load_onnx(path, NULL, &m, err, sizeof err)) {
        fprintf(stderr, "advjpg-bench-onnx: %s\n", err);
        return 1;
    }
    const double load = ut_now() - t0;
    struct stat st;
    printf("{\"case\":\"load\",\"model\":\"%s\",\"seconds\":%.3f,\"file_mb\":%.1f,\"rss_mb\":%.0f,"
           "\"peak_rss_mb\":%.0f}\n", model_get_spec(m)->name, load,
           stat(path, &st) ? 0.0 : (double)st.st_size / 1048576.0, rss_mb(), peak_rss_mb());
    fflush(stdout);
    if (net_ctx_new(m, batch, &ctx, err, sizeof err)) {
        fprintf(stderr, "advjpg-bench-onnx: %s\n", err);
        return 1;
    }
    const model_spec *s = model_get_spec(m);
    const size_t per = (size_t)s->channels * s->input_size * s->input_size;
    float *x = malloc(per * batch * sizeof *x), *g = malloc(per * batch * sizeof *g);
    int *labels = calloc((size_t)batch, sizeof *labels);
    uint32_t r = 7;
    for (size_t k = 0; x && k < per * batch; k++)
        r = r * 1664525u + 1013904223u, x[k] = (float)(r >> 24);
    char list[256];
    snprintf(list, sizeof list, "%s", passes);
    int rc = !x || !g || !labels;
    for (char *save, *p = strtok_r(list, ",", &save); !rc && p; p = strtok_r(NULL, ",", &save))
        rc = time_pass(ctx, p, batch, rounds, x, g, labels);
    if (!rc && layers)
        rc = time_layers(path, batch, rounds, x, g, labels);
    if (rc)
        fprintf(stderr, "advjpg-bench-onnx: a pass failed (or out of memory)\n");
    free(x), free(g), free(labels);
    net_ctx_free(ctx);
    model_free(m);
    return rc;
}
