/*
 * rng.h - the project's one random generator: xoshiro256** seeded through
 * splitmix64, so the same seed gives the same numbers on every machine
 * (JPEG noise's permutations, PGD's starts, the trainer's crops, bootstrap
 * resampling).
 *
 *     rng r;
 *     rng_seed(&r, 42);
 *     uint64_t k = rng_below(&r, 10);   // uniform in 0..9
 */
#ifndef ADJ_RNG_H
#define ADJ_RNG_H

#include <stdint.h>

/** xoshiro256** state; seed with rng_seed. */
typedef struct { uint64_t s[4]; } rng;

/** Seeds the generator from one 64-bit value (splitmix64 expansion). */
void rng_seed(rng *r, uint64_t seed);

/** The next 64 random bits. */
uint64_t rng_next(rng *r);

/** A uniform integer in [0, bound) without modulo bias (bound >= 1). */
uint64_t rng_below(rng *r, uint64_t bound);

#endif
