#include "exp_param.h"

#include <stdio.h>
#include <string.h>

#define STR_(...) #__VA_ARGS__
#define STR(...) STR_(__VA_ARGS__)

const exp_param_def exp_param_defs[EXP_PARAM_COUNT] = {
    [EXP_PARAM_TOP_K] = {.name = "top_k", .kind = EXP_PK_INT, .lo = 1, .hi = 0, .def = "5",
                         .help = "how many of the best classes to list (at most the model's)"},
    [EXP_PARAM_RESIZE] = {.name = "resize", .kind = EXP_PK_CHOICE, .def = "center",
                          .choices = "center,none",
                          .help = "center: scale and crop the centre to the model's input; "
                                  "none: the image is already that size"},
    [EXP_PARAM_EPS] = {.name = "eps", .kind = EXP_PK_INT_LIST, .lo = EXP_EPS_MIN,
                       .hi = EXP_EPS_MAX, .def = EXP_DEFAULT_EPS,
                       .help = "the attack's sizes in pixel levels"},
    [EXP_PARAM_QUALITY] = {.name = "quality", .kind = EXP_PK_INT_LIST, .lo = EXP_QUALITY_MIN,
                           .hi = EXP_QUALITY_MAX, .def = STR(EXP_DEFAULT_QUALITY),
                           .help = "JPEG quality of JPG(); a list (75,50,90: distinct, at "
                                   "most 16) is the quality grid"},
    [EXP_PARAM_SEED] = {.name = "seed", .kind = EXP_PK_U64, .def = STR(EXP_DEFAULT_SEED),
                        .help = "seed of JPGnoise's random permutation of the JPEG change"},
    [EXP_PARAM_IMAGES] = {.name = "images", .kind = EXP_PK_INT, .lo = 0, .hi = 1, .def = "0",
                          .help = "1: the answer carries every transformed image (PNG, base64)"},
    [EXP_PARAM_ATTACK] = {.name = "attack", .kind = EXP_PK_CHOICE, .def = "fgsm",
                          .choices = "fgsm,bim,pgd,ll",
                          .help = "fgsm: the paper's one step; bim: iterative FGSM; pgd: bim "
                                  "from a seeded random start; ll: iterative least-likely class"},
    [EXP_PARAM_STEPS] = {.name = "steps", .kind = EXP_PK_INT, .lo = 1, .hi = EXP_STEPS_MAX,
                         .def = STR(EXP_DEFAULT_STEPS), .implicit = 1,
                         .help = "iterations of bim, pgd and ll (one backward pass each)"},
    [EXP_PARAM_STEP_SIZE] = {.name = "step_size", .kind = EXP_PK_INT, .lo = 1,
                             .hi = EXP_EPS_MAX, .def = STR(EXP_DEFAULT_STEP_SIZE),
                             .implicit = 1,
                             .help = "pixel levels per step of bim, pgd and ll"},
    [EXP_PARAM_ADAPTIVE] = {.name = "adaptive", .kind = EXP_PK_CHOICE, .def = "none",
                            .choices = "none,bpda,eot",
                            .help = "none: attack f (the paper); bpda: attack f(JPG_q(.)), JPEG "
                                    "the identity backwards; eot: bpda averaged over "
                                    "eot_qualities"},
    [EXP_PARAM_EOT_QUALITIES] = {.name = "eot_qualities", .kind = EXP_PK_INT_LIST,
                                 .lo = EXP_QUALITY_MIN, .hi = EXP_QUALITY_MAX,
                                 .def = STR(EXP_DEFAULT_EOT_QUALITIES), .implicit = 1,
                                 .help = "JPEG qualities that adaptive=eot averages over"},
    [EXP_PARAM_STATUS] = {.name = "status", .kind = EXP_PK_CHOICE,
                          .choices = "queued,running,done,failed,canceled",
                          .help = "only the jobs in this state"},
    [EXP_PARAM_PURGE] = {.name = "purge", .kind = EXP_PK_INT, .lo = 0, .hi = 1, .def = "0",
                         .help = "DELETE /jobs/{id}: 1 removes an ended job and its folder "
                                 "(0 cancels it)"},
    [EXP_PARAM_DCT] = {.name = "dct", .kind = EXP_PK_INT, .lo = 0, .hi = 1, .def = "0",
                       .help = "1: the job adds the DCT analysis (GET /jobs/{id}/dct, dct.svg)"},
    [EXP_PARAM_AXIS] = {.name = "axis", .kind = EXP_PK_CHOICE, .choices = "linear,log1mp,logit",
                        .def = "linear",
                        .help = "Figure 3's probability axis: p, 1 - p on a log scale, or logit p"},
    /* after EXP_PARAM_EPS: exp_param_find("eps") is the attack's list */
    [EXP_PARAM_FIGURE_EPS] = {.name = "eps", .kind = EXP_PK_INT, .lo = 0, .hi = EXP_EPS_MAX,
                              .def = "0",
                              .help = "the job's eps that the figure draws (0: the smallest)"},
};

_Static_assert(sizeof exp_param_defs / sizeof exp_param_defs[0] == EXP_PARAM_COUNT,
               "one row per exp_param_id");

const exp_param_def *exp_param_find(const char *name)
{
    for (int i = 0; i < EXP_PARAM_COUNT; i++)
        if (exp_param_defs[i].name && strcmp(exp_param_defs[i].name, name) == 0)
            return &exp_param_defs[i];
    return NULL;
}

const char *exp_param_choice(exp_param_id id, int i, char *buf, size_t size)
{
    const char *c = (unsigned)id < EXP_PARAM_COUNT ? exp_param_defs[id].choices : NULL;
    for (; c && *c && i > 0; i--)
        c += strcspn(c, ",") + (c[strcspn(c, ",")] == ',');
    size_t n = c ? strcspn(c, ",") : 0;
    if (size)
        snprintf(buf, size, "%.*s", (int)n, c ? c : "");
    return buf;
}

int exp_param_choice_index(exp_param_id id, const char *word)
{
    const char *c = (unsigned)id < EXP_PARAM_COUNT ? exp_param_defs[id].choices : NULL;
    size_t n = strlen(word);
    for (int i = 0; c && *c; i++) {
        size_t k = strcspn(c, ",");
        if (n && k == n && strncmp(c, word, n) == 0)
            return i;
        c += k + (c[k] == ',');
    }
    return -1;
}

const char *exp_param_choices_text(exp_param_id id, char *buf, size_t size)
{
    const char *c = (unsigned)id < EXP_PARAM_COUNT ? exp_param_defs[id].choices : NULL;
    size_t o = 0;
    if (size)
        buf[0] = '\0';
    for (; c && *c && o + 1 < size; c++)
        o += (size_t)snprintf(buf + o, size - o, *c == ',' ? ", " : "%c", *c);
    return buf;
}
