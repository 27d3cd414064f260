/*
 * testutil.h - the small harness every test program uses.
 *
 * CHECK(cond, fmt, ...) records a failure (with file, line and message) and
 * goes on; tu_done() prints "N checks, M failed" and returns the exit status
 * (0 when nothing failed, 1 otherwise). A test program is main() calling
 * functions that use CHECK, then `return tu_done();`.
 */
#ifndef ADJ_TESTUTIL_H
#define ADJ_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "graph.h"
#include "model.h"

extern int tu_checks, tu_failures;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        tu_checks++;                                                         \
        if (!(cond)) {                                                       \
            tu_failures++;                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

/** Prints the summary and returns the exit status for main(). */
int tu_done(void);

/** A deterministic generator for test data (splitmix64). */
uint64_t tu_rand(uint64_t *state);
/** Uniform float in [lo, hi). */
float tu_uniform(uint64_t *state, float lo, float hi);

/** A new temporary directory (mkdtemp under $TMPDIR or /tmp); static buffer. */
const char *tu_tmpdir(void);

/** Removes a directory tree (rm -rf); for temporary folders only. */
void tu_rmtree(const char *path);

/**
 * Writes a weight file of random floats for spec (He-style scale so that
 * activations neither vanish nor explode) at path. Returns 0 or -1.
 */
int tu_write_random_weights(const model_spec *spec, const char *path, uint64_t seed);

/**
 * Random weights in memory (malloc'd, model_spec_param_count floats), same
 * scaling as tu_write_random_weights.
 */
float *tu_random_weights(const model_spec *spec, uint64_t seed);

/** Reads a whole file; *len gets its size. New buffer (free()), NULL on error. */
uint8_t *tu_read_file(const char *path, size_t *len);

/** Writes len bytes to path. Returns 0 or -1. */
int tu_write_file(const char *path, const void *data, size_t len);

/*
 * A graph builder (test_fusion, test_graph_grad): tensors named t0, t1, ...
 * in order of creation; the first failure sticks (failed, err) and the later
 * calls add nothing. A test's own builder holds one (and its weights).
 */
typedef struct {
    gr_graph *g;          /**< new (tu_gb_start); the test frees it (gr_free) */
    int nt;               /**< tensors named so far */
    int failed;
    char err[ADJ_ERRLEN]; /**< the first failure's message */
} tu_gb;

/** The shape of rank dimensions d[0..rank-1]. */
op_shape tu_shape(int rank, const int64_t *d);

/** Starts b on a new, empty graph. */
void tu_gb_start(tu_gb *b);

/**
 * A tensor (gr_add_tensor; data held as hold says, freed at once when b has
 * failed and hold is not GR_DATA_EXTERN); its id, or -1.
 */
int tu_gb_tensor(tu_gb *b, op_dtype dt, const op_shape *s, int batched, int is_const, void *data,
                 int hold);

/**
 * A node of operator op (also its name; opset: the ai.onnx version) reading
 * in[0..n_in-1] (-1: an absent optional input), with n_out (at most 8) new
 * float outputs (their ids into outs, if not NULL); returns output 0's id.
 */
int tu_gb_node(tu_gb *b, const char *op, const int *in, int n_in, const op_attr *a, int n_a,
               int n_out, int *outs, int opset);

/** Sets input x and output y and finalizes; returns b->failed. */
int tu_gb_finish(tu_gb *b, int x, int y);

/** Attributes (op_attr) of one int, float, string, or k ints (borrowed). */
op_attr tu_int(const char *name, int64_t v);
op_attr tu_float(const char *name, float v);
op_attr tu_str(const char *name, const char *v);
op_attr tu_ints(const char *name, const int64_t *v, size_t k);
/** tu_ints over the listed values: TU_INTS("pads", 1, 1, 1, 1). */
#define TU_INTS(name, ...)                                                   \
    tu_ints(name, (const int64_t[]){__VA_ARGS__}, sizeof((int64_t[]){__VA_ARGS__}) / 8)

#endif
