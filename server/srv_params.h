/*
 * srv_params.h - the request parameters that several endpoints share
 * (quality, seed, eps, integers in a range), parsed in one place so that
 * /attack, /recompress and /evaluate accept and refuse exactly the same text.
 * Pure functions: no I/O, no allocation.
 */
#ifndef SRV_PARAMS_H
#define SRV_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "experiment.h"

/** A decimal integer in lo..hi, the whole string (no sign, no spaces). 1 if so, else 0. */
int srv_parse_long(const char *s, long lo, long hi, long *out);

/** A decimal integer in 0..2^64-1, the whole string. 1 if so, else 0. */
int srv_parse_seed(const char *s, uint64_t *out);

/**
 * A comma-separated list of eps (integers 1..255, spaces around items
 * allowed, at most EXP_MAX_EPS) into p->eps / p->n_eps; p is written only on
 * success. ADJ_ERR_ARG with a message naming the bad item otherwise.
 */
int srv_parse_eps(const char *s, exp_params *p, char *err, size_t errsz);

#endif
