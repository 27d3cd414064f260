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

#endif
