/*
 * srv_params.h - the request parameters (common/exp_param.h's table) read
 * from text in one place, so that /attack, /recompress and /evaluate accept
 * and refuse exactly the same text, and their defaults are the table's.
 * Pure functions: no I/O, no allocation.
 *
 *     srv_query q;
 *     srv_params_defaults(&q, classes);                    // the paper's values
 *     if (srv_params_set(&q, EXP_PARAM_EPS, "1,5", classes, err, sizeof err)) ...400...
 */
#ifndef SRV_PARAMS_H
#define SRV_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "exp_param.h"
#include "experiment.h"

/** A set of parameters (bit 1 << id per exp_param_id). */
#define SRV_P(id) (1u << (id))

/** The attack menu (api.md "Attacks"): /attack's and /evaluate's, the body's "attack" object. */
#define SRV_ATTACK_PARAMS                                                                      \
    (SRV_P(EXP_PARAM_ATTACK) | SRV_P(EXP_PARAM_STEPS) | SRV_P(EXP_PARAM_STEP_SIZE) |          \
     SRV_P(EXP_PARAM_ADAPTIVE) | SRV_P(EXP_PARAM_EOT_QUALITIES))

/** The values of a request's parameters; each field is one exp_param_id's target. */
typedef struct {
    int top_k;         /**< EXP_PARAM_TOP_K */
    int resize_center; /**< EXP_PARAM_RESIZE: 1 center, 0 none */
    exp_params params; /**< EXP_PARAM_EPS, EXP_PARAM_QUALITY, the attack's (ATTACK..EOT_QUALITIES;
                            the implicit defaults stay 0: exp_attack's own) */
    uint64_t seed;     /**< EXP_PARAM_SEED */
    int images;        /**< EXP_PARAM_IMAGES */
    char status[16];   /**< EXP_PARAM_STATUS, "" when not given */
    int purge;         /**< EXP_PARAM_PURGE */
    int dct;           /**< EXP_PARAM_DCT */
    char axis[16];     /**< EXP_PARAM_AXIS */
    int figure_eps;    /**< EXP_PARAM_FIGURE_EPS, 0: the job's smallest */
} srv_query;

/** Every parameter's default (top_k at most classes). */
void srv_params_defaults(srv_query *q, int classes);

/**
 * Sets parameter id from text (classes bounds top_k). ADJ_ERR_ARG with a
 * message naming the parameter and the value; q is unchanged then.
 */
int srv_params_set(srv_query *q, exp_param_id id, const char *val, int classes, char *err,
                   size_t errsz);

/** The parameter named name among those of mask, or -1. */
int srv_params_lookup(const char *name, unsigned mask);

/** "top_k, resize, ..." of mask into buf (cut to n), "none" for 0; returns buf. */
const char *srv_params_names(unsigned mask, char *buf, size_t n);

/** A decimal integer in lo..hi, the whole string (no sign, no spaces). 1 if so, else 0. */
int srv_parse_long(const char *s, long lo, long hi, long *out);

/** A decimal integer in 0..2^64-1, the whole string. 1 if so, else 0. */
int srv_parse_seed(const char *s, uint64_t *out);

/**
 * A comma-separated list of eps (integers EXP_EPS_MIN..EXP_EPS_MAX, spaces
 * around items allowed, at most EXP_MAX_EPS) into p->eps / p->n_eps; p is
 * written only on success. ADJ_ERR_ARG with a message naming the bad item
 * otherwise.
 */
int srv_parse_eps(const char *s, exp_params *p, char *err, size_t errsz);

/**
 * A comma-separated list of integers in row d's lo..hi (spaces around items
 * allowed, at most max) into out[0..*n-1]; written only on success. Errors
 * name d and the bad item.
 */
int srv_parse_int_list(const exp_param_def *d, const char *s, int max, int *out, int *n,
                       char *err, size_t errsz);

#endif
