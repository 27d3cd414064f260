/*
 * exp_param.h - every request parameter of the experiment, declared once:
 * its name, range, default and help. The daemon parses query strings and
 * fills its defaults from this table (server/srv_params.h); the client
 * checks its options against the same limits before it sends them.
 * Dependency-free (the client compiles exp_param.c without libadvjpg).
 *
 * A new parameter (an attack's steps, a grid) is one EXP_PARAM_* value and
 * one row in exp_param.c; the endpoints that take it list it in their route
 * row (server/srv_routes.c).
 *
 *     const exp_param_def *d = exp_param_find("quality");
 *     printf("--quality %ld..%ld (default %s): %s\n", d->lo, d->hi, d->def, d->help);
 */
#ifndef ADJ_EXP_PARAM_H
#define ADJ_EXP_PARAM_H

#include <stddef.h>

/** The most eps values one request may list. */
#define EXP_MAX_EPS 16

/** The most JPEG qualities one request may list (the quality grid). */
#define EXP_MAX_QUALITY 16

/** The paper's values (Dziugaite et al. 2016): eps 1,5,10 levels, JPEG quality 75; seed 1. */
#define EXP_EPS_MIN 1
#define EXP_EPS_MAX 255
#define EXP_QUALITY_MIN 1
#define EXP_QUALITY_MAX 100
#define EXP_DEFAULT_EPS "1,5,10"
#define EXP_DEFAULT_QUALITY 75
#define EXP_DEFAULT_SEED 1

/** The iterative attacks' defaults (api.md "Attacks"): 10 steps of 1 level; EOT's qualities. */
#define EXP_DEFAULT_STEPS 10
#define EXP_DEFAULT_STEP_SIZE 1
#define EXP_STEPS_MAX 10000
#define EXP_DEFAULT_EOT_QUALITIES 50, 60, 70, 75, 80, 90

/** The parameters, in the order of the table (and of "it takes: ..." lists). */
typedef enum {
    EXP_PARAM_TOP_K,
    EXP_PARAM_RESIZE,
    EXP_PARAM_EPS,
    EXP_PARAM_QUALITY,
    EXP_PARAM_SEED,
    EXP_PARAM_IMAGES,
    EXP_PARAM_ATTACK,        /**< fgsm, bim, pgd, ll: the exp_attack_kind of its index */
    EXP_PARAM_STEPS,
    EXP_PARAM_STEP_SIZE,
    EXP_PARAM_ADAPTIVE,      /**< none, bpda, eot: the exp_adaptive of its index */
    EXP_PARAM_EOT_QUALITIES,
    EXP_PARAM_STATUS, /**< GET /jobs: only the jobs in this state */
    EXP_PARAM_PURGE,  /**< DELETE /jobs/{id}: 1 removes an ended job and its files */
    EXP_PARAM_DCT,    /**< POST /evaluate: 1 adds the DCT analysis */
    EXP_PARAM_AXIS,   /**< figure3.svg: the probability axis */
    EXP_PARAM_FIGURE_EPS, /**< figure4.svg, dct.svg: the eps drawn ("eps", one value) */
    EXP_PARAM_COUNT
} exp_param_id;

/** How a parameter's text is read. */
typedef enum {
    EXP_PK_INT,      /**< a decimal integer in lo..hi */
    EXP_PK_INT_LIST, /**< comma-separated integers in lo..hi, at most EXP_MAX_EPS
                          (EXP_MAX_QUALITY for quality) */
    EXP_PK_U64,      /**< a decimal integer in 0..2^64-1 (lo, hi unused) */
    EXP_PK_CHOICE,   /**< one of the comma-separated words in choices */
} exp_param_kind;

typedef struct {
    const char *name;    /**< the query parameter ("eps"); the client's --name */
    exp_param_kind kind;
    long lo, hi;         /**< EXP_PK_INT(_LIST) range; hi 0: the model's classes */
    const char *def;     /**< the default, as text the parser takes ("1,5,10"); NULL: none
                              (the parameter is a filter, unset when not given) */
    const char *choices; /**< EXP_PK_CHOICE: "center,none" */
    const char *help;    /**< one line for --help and error messages */
    int implicit;        /**< def is the experiment's own default, applied when the
                              parameter is not given (a zero field of exp_attack):
                              the parser's defaults leave it unset, so that giving it
                              can be told from not giving it (steps with fgsm is refused) */
} exp_param_def;

/** The table, indexed by exp_param_id. */
extern const exp_param_def exp_param_defs[EXP_PARAM_COUNT];

/** The row named name, NULL if none. */
const exp_param_def *exp_param_find(const char *name);

/**
 * The i-th word (from 0) of an EXP_PK_CHOICE row's choices into buf (cut to
 * size); "" when there is none. Returns buf.
 */
const char *exp_param_choice(exp_param_id id, int i, char *buf, size_t size);

/** The index (from 0) of word among an EXP_PK_CHOICE row's choices, -1 if none. */
int exp_param_choice_index(exp_param_id id, const char *word);

/** An EXP_PK_CHOICE row's choices as "center, none" into buf (cut to size); returns buf. */
const char *exp_param_choices_text(exp_param_id id, char *buf, size_t size);

#endif
