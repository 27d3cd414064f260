/*
 * test_srv_params.c - server/srv_params.c and srv_routes.c without a daemon:
 * the parameter table's defaults are the paper's (eps
 * 1,5,10; quality 75; seed 1), every range edge is taken and the value past
 * it refused, eps lists against strtol on random text, and the route table
 * (paths with {id}, the 404 list, the paths under a job).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "srv_params.h"
#include "srv_routes.h"
#include "status.h"
#include "testutil.h"

static void test_defaults(void)
{
    srv_query q;
    srv_params_defaults(&q, 1000);
    CHECK(q.params.n_eps == 3 && q.params.eps[0] == 1 && q.params.eps[1] == 5 &&
              q.params.eps[2] == 10, "eps %d values", q.params.n_eps);
    CHECK(q.params.quality == 75 && q.seed == 1 && q.top_k == 5 && q.resize_center == 1 &&
              q.images == 0, "quality %d seed %llu top_k %d", q.params.quality,
          (unsigned long long)q.seed, q.top_k);
    srv_params_defaults(&q, 3);
    CHECK(q.top_k == 3, "top_k of a 3-class model: %d", q.top_k);
    for (int i = 0; i < EXP_PARAM_COUNT; i++)
        CHECK(exp_param_defs[i].name && (exp_param_defs[i].def || i == EXP_PARAM_STATUS) &&
                  exp_param_defs[i].help &&
                  (exp_param_find(exp_param_defs[i].name) == &exp_param_defs[i] ||
                   i == EXP_PARAM_FIGURE_EPS), /* a figure's one "eps", after the list */
              "row %d", i);
    CHECK(exp_param_find("eps") == &exp_param_defs[EXP_PARAM_EPS], "eps is the attack's list");
}

/* Every edge of every integer range: lo and hi taken, lo - 1 and hi + 1 refused. */
static void test_ranges(void)
{
    char err[ADJ_ERRLEN], v[32];
    const int classes = 10;
    for (int i = 0; i < EXP_PARAM_COUNT; i++) {
        const exp_param_def *d = &exp_param_defs[i];
        if (d->kind != EXP_PK_INT && d->kind != EXP_PK_INT_LIST)
            continue;
        long hi = d->hi ? d->hi : classes;
        long ok[] = {d->lo, hi}, bad[] = {d->lo - 1, hi + 1};
        for (int k = 0; k < 2; k++) {
            srv_query q;
            srv_params_defaults(&q, classes);
            snprintf(v, sizeof v, "%ld", ok[k]);
            CHECK(srv_params_set(&q, (exp_param_id)i, v, classes, err, sizeof err) == ADJ_OK,
                  "%s=%s: %s", d->name, v, err);
            snprintf(v, sizeof v, "%ld", bad[k]);
            srv_query before = q;
            CHECK(srv_params_set(&q, (exp_param_id)i, v, classes, err, sizeof err) == ADJ_ERR_ARG
                      && strstr(err, d->name) && !memcmp(&q, &before, sizeof q),
                  "%s=%s taken", d->name, v);
        }
    }
    srv_query q;
    srv_params_defaults(&q, classes);
    CHECK(srv_params_set(&q, EXP_PARAM_SEED, "18446744073709551615", classes, err, sizeof err) ==
              ADJ_OK && q.seed == UINT64_MAX, "seed 2^64-1");
    CHECK(srv_params_set(&q, EXP_PARAM_SEED, "18446744073709551616", classes, err, sizeof err),
          "seed 2^64 taken");
    CHECK(srv_params_set(&q, EXP_PARAM_RESIZE, "none", classes, err, sizeof err) == ADJ_OK &&
              q.resize_center == 0, "resize=none");
    CHECK(!q.status[0] && srv_params_set(&q, EXP_PARAM_STATUS, "done", classes, err, sizeof err) ==
              ADJ_OK && !strcmp(q.status, "done"), "status=done");
    CHECK(srv_params_set(&q, EXP_PARAM_STATUS, "finished", classes, err, sizeof err) &&
              !strcmp(q.status, "done"), "status=finished taken");
    CHECK(srv_params_set(&q, EXP_PARAM_RESIZE, "crop", classes, err, sizeof err) &&
              !strcmp(err, "resize: 'crop' is not one of center, none"), "%s", err);
}

/* Random eps lists against an independent reading with strtol. */
static void test_eps_random(void)
{
    uint64_t st = 7;
    char s[128], err[ADJ_ERRLEN];
    for (int it = 0; it < 5000; it++) {
        int n = 1 + (int)(tu_rand(&st) % 20), o = 0, want_ok = n <= EXP_MAX_EPS, want[32];
        for (int i = 0; i < n; i++) {
            long v = (long)(tu_rand(&st) % 300) - 10;
            want[i] = (int)v;
            if (v < EXP_EPS_MIN || v > EXP_EPS_MAX)
                want_ok = 0;
            o += snprintf(s + o, sizeof s - (size_t)o, "%s%s%ld", i ? "," : "",
                          tu_rand(&st) % 4 ? "" : " ", v);
        }
        exp_params p = {0};
        int rc = srv_parse_eps(s, &p, err, sizeof err);
        CHECK((rc == ADJ_OK) == want_ok, "'%s': rc %d", s, rc);
        if (rc == ADJ_OK && want_ok) {
            /* strtol over the text, item by item */
            int same = p.n_eps == n;
            char *q = s;
            for (int i = 0; same && i < n; i++) {
                long v = strtol(q, &q, 10);
                same = p.eps[i] == v && v == want[i];
                q += *q == ',';
            }
            CHECK(same, "'%s' read wrong", s);
        }
    }
}

static void test_routes(void)
{
    const char *const known[] = {"/classify", "/attack", "/recompress", "/evaluate", "/jobs",
                                 "/jobs/", "/health", "/models", "/metrics",
                                 "/jobs/abc", "/jobs/abc/result", "/jobs/abc/rows",
                                 "/jobs/abc/figure3.svg", "/jobs/abc/nothing", "/jobs/a/b/c"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        CHECK(srv_routes_find(known[i]), "%s has no route", known[i]);
    CHECK(!srv_routes_find("/classify/") && !srv_routes_find("/") && !srv_routes_find("/x") &&
              !srv_routes_find("/jobsx"), "a route too many");
    const srv_route *rt = srv_routes_find("/jobs/0123");
    CHECK(rt && !strcmp(rt->methods, "GET, HEAD, DELETE"), "a job can be deleted");
    rt = srv_routes_find("/jobs/0123/rows");
    CHECK(rt && !strcmp(rt->methods, "GET, HEAD"), "rows: GET only");
    rt = srv_routes_find("/jobs");
    char jn[64];
    CHECK(rt && !strcmp(srv_params_names(rt->params, jn, sizeof jn), "status") &&
              !strcmp(srv_params_names(srv_routes_find("/health")->params, jn, sizeof jn), "none"),
          "/jobs takes '%s'", jn);
    rt = srv_routes_find("/attack");
    char names[128];
    CHECK(rt && !strcmp(srv_params_names(rt->params, names, sizeof names),
                        "top_k, resize, eps, quality, seed, images, attack, steps, step_size, "
                        "adaptive, eot_qualities"), "attack takes '%s'", names);
    char list[256];
    CHECK(!strcmp(srv_routes_list(list, sizeof list),
                  "POST /classify, POST /attack, POST /recompress, POST /evaluate, GET /jobs, "
                  "GET /health, GET /livez, GET /models, GET /metrics"), "404 list '%s'", list);
    CHECK(!strcmp(srv_routes_under("/jobs/{id}", list, sizeof list),
                  "/result, /rows, /figure3.svg, /figure4.svg, /quality.svg, /images/*, /dct, /dct.svg"), "under a job '%s'", list);
    /* every route names its methods, its begin and, with a body, what follows it:
     * worked after a pool's work, or answer after the task work submits itself */
    for (const char *const *p = known; p < known + sizeof known / sizeof known[0]; p++) {
        rt = srv_routes_find(*p);
        CHECK(rt && rt->methods && rt->begin && (!rt->work || rt->worked || rt->answer), "%s",
              *p);
    }
}

/* The attack menu: words to the enums' values, the implicit defaults left unset. */
static void test_attack_params(void)
{
    char err[ADJ_ERRLEN];
    srv_query q;
    srv_params_defaults(&q, 10);
    CHECK(q.params.attack.kind == EXP_FGSM && q.params.attack.adaptive == EXP_ADAPT_NONE &&
              !q.params.attack.steps && !q.params.attack.step_size && !q.params.attack.n_eot,
          "the defaults are the paper's FGSM, steps unset");
    CHECK(exp_params_check(&q.params, err, sizeof err) == ADJ_OK, "defaults: %s", err);
    static const struct {
        exp_param_id id;
        const char *word;
        int want;
    } words[] = {{EXP_PARAM_ATTACK, "fgsm", EXP_FGSM}, {EXP_PARAM_ATTACK, "bim", EXP_BIM},
                 {EXP_PARAM_ATTACK, "pgd", EXP_PGD}, {EXP_PARAM_ATTACK, "ll", EXP_LL},
                 {EXP_PARAM_ADAPTIVE, "none", EXP_ADAPT_NONE},
                 {EXP_PARAM_ADAPTIVE, "bpda", EXP_ADAPT_BPDA},
                 {EXP_PARAM_ADAPTIVE, "eot", EXP_ADAPT_EOT}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        CHECK(srv_params_set(&q, words[i].id, words[i].word, 10, err, sizeof err) == ADJ_OK,
              "%s: %s", words[i].word, err);
        int got = words[i].id == EXP_PARAM_ATTACK ? (int)q.params.attack.kind
                                                   : (int)q.params.attack.adaptive;
        char w[16];
        CHECK(got == words[i].want &&
                  !strcmp(exp_param_choice(words[i].id, words[i].want, w, sizeof w), words[i].word),
              "%s is %d", words[i].word, got);
    }
    CHECK(srv_params_set(&q, EXP_PARAM_ATTACK, "cw", 10, err, sizeof err) == ADJ_ERR_ARG &&
              !strcmp(err, "attack: 'cw' is not one of fgsm, bim, pgd, ll"), "%s", err);
    CHECK(srv_params_set(&q, EXP_PARAM_EOT_QUALITIES, "50, 75,90", 10, err, sizeof err) == ADJ_OK &&
              q.params.attack.n_eot == 3 && q.params.attack.eot_qualities[1] == 75 &&
              q.params.attack.eot_qualities[2] == 90, "eot_qualities: %s", err);
    CHECK(srv_params_set(&q, EXP_PARAM_EOT_QUALITIES, "50,101", 10, err, sizeof err) &&
              strstr(err, "eot_qualities: '101'") && q.params.attack.n_eot == 3, "%s", err);
    CHECK(srv_params_set(&q, EXP_PARAM_STEPS, "0", 10, err, sizeof err) &&
              !strcmp(err, "steps: '0' is not an integer in 1..10000"), "%s", err);
    /* the defaults the experiment applies are the table's, and the menu's combinations */
    exp_params p = {.n_eps = 1, .eps = {5}, .quality = 75, .attack = {.kind = EXP_PGD}};
    exp_attack a = exp_attack_resolved(&p);
    CHECK(a.steps == atoi(exp_param_defs[EXP_PARAM_STEPS].def) &&
              a.step_size == atoi(exp_param_defs[EXP_PARAM_STEP_SIZE].def), "pgd's defaults");
    p.attack.adaptive = EXP_ADAPT_EOT;
    a = exp_attack_resolved(&p);
    srv_query e;
    memset(&e, 0, sizeof e);
    CHECK(srv_params_set(&e, EXP_PARAM_EOT_QUALITIES, exp_param_defs[EXP_PARAM_EOT_QUALITIES].def,
                         10, err, sizeof err) == ADJ_OK && e.params.attack.n_eot == a.n_eot &&
              !memcmp(e.params.attack.eot_qualities, a.eot_qualities, sizeof(int) * (size_t)a.n_eot),
          "EOT's default qualities are the table's");
    char tm[256];
    CHECK(strstr(exp_threat_model(&p, tm, sizeof tm), "EOT over qualities 50,60,70,75,80,90"), "%s", tm);
}

int main(void)
{
    test_attack_params();
    test_defaults();
    test_ranges();
    test_eps_random();
    test_routes();
    return tu_done();
}
