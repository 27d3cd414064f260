#include "srv_routes.h"

#include <stdio.h>
#include <string.h>

#include "srv_ep.h"

#define P(x) SRV_P(EXP_PARAM_##x)

static const char *const RECOMPRESS_DEFAULTS[] = {"resize", "none", NULL};

/* The image endpoints share their functions but for the last steps. */
#define IMG_ROUTE .needs_model = 1, .listed = 1, .methods = "POST", .body = srv_ep_img_body, \
    .done = srv_ep_img_done
/* The job routes read the job store; a job id is checked before anything touches the disk. */
#define JOB_ROUTE .ep = SRV_EP_JOBS, .needs_model = 1

/* One row per endpoint, in the order of the 404 answer's list. */
static const srv_route ROUTES[] = {
    {.path = "/classify", .ep = SRV_EP_CLASSIFY, .params = P(TOP_K) | P(RESIZE), IMG_ROUTE,
     .begin = srv_ep_classify_begin, .work = srv_ep_classify_work,
     .answer = srv_ep_classify_answer},
    {.path = "/attack", .ep = SRV_EP_ATTACK,
     .params = P(TOP_K) | P(RESIZE) | P(EPS) | P(QUALITY) | P(SEED) | P(IMAGES) |
               SRV_ATTACK_PARAMS,
     IMG_ROUTE,
     .begin = srv_ep_attack_begin, .work = srv_ep_attack_work,
     .answer = srv_ep_attack_answer},
    {.path = "/recompress", .ep = SRV_EP_RECOMPRESS, .params = P(TOP_K) | P(RESIZE) | P(QUALITY),
     .defaults = RECOMPRESS_DEFAULTS, IMG_ROUTE, .begin = srv_ep_recompress_begin,
     .work = srv_ep_recompress_work, .worked = srv_ep_recompress_worked,
     .answer = srv_ep_recompress_answer},
    {.path = "/evaluate", .ep = SRV_EP_EVALUATE, .methods = "POST", .needs_model = 1,
     .listed = 1, .params = P(EPS) | P(QUALITY) | P(SEED) | SRV_ATTACK_PARAMS | P(DCT),
     .begin = srv_ep_eval_begin,
     .body = srv_ep_eval_body, .done = srv_ep_eval_done},
    {.path = "/jobs", JOB_ROUTE, .methods = "GET, HEAD", .listed = 1, .params = P(STATUS),
     .begin = srv_ep_jobs_list},
    {.path = "/jobs/", JOB_ROUTE, .methods = "GET, HEAD", .params = P(STATUS),
     .begin = srv_ep_jobs_list},
    {.path = "/jobs/{id}", JOB_ROUTE, .methods = "GET, HEAD, DELETE", .params = P(PURGE),
     .begin = srv_ep_job},
    {.path = "/jobs/{id}/result", JOB_ROUTE, .methods = "GET, HEAD", .listed = 1,
     .begin = srv_ep_job_result},
    {.path = "/jobs/{id}/rows", JOB_ROUTE, .methods = "GET, HEAD", .listed = 1,
     .begin = srv_ep_job_rows},
    {.path = "/jobs/{id}/figure3.svg", JOB_ROUTE, .methods = "GET, HEAD", .listed = 1,
     .params = P(AXIS), .begin = srv_ep_job_figure},
    {.path = "/jobs/{id}/figure4.svg", JOB_ROUTE, .methods = "GET, HEAD", .listed = 1,
     .params = P(FIGURE_EPS), .begin = srv_ep_job_figure},
    {.path = "/jobs/{id}/quality.svg", JOB_ROUTE, .methods = "GET, HEAD", .listed = 1,
     .begin = srv_ep_job_figure},
    {.path = "/jobs/{id}/images/*", JOB_ROUTE, .methods = "GET, HEAD", .listed = 1,
     .begin = srv_ep_job_image, .body = srv_ep_img_body, .work = srv_ep_attack_work,
     .answer = srv_ep_job_image_answer, .done = srv_ep_img_done},
    {.path = "/jobs/{id}/dct", JOB_ROUTE, .methods = "GET, HEAD", .listed = 1,
     .begin = srv_ep_job_dct},
    {.path = "/jobs/{id}/dct.svg", JOB_ROUTE, .methods = "GET, HEAD", .listed = 1,
     .params = P(FIGURE_EPS), .begin = srv_ep_job_dct},
    {.path = "/jobs/*", JOB_ROUTE, .methods = "GET, HEAD", .begin = srv_ep_job_other},
    {.path = "/health", .ep = SRV_EP_HEALTH, .methods = "GET, HEAD", .listed = 1, .open = 1,
     .begin = srv_ep_health},
    {.path = "/livez", .ep = SRV_EP_LIVEZ, .methods = "GET, HEAD", .listed = 1, .open = 1,
     .begin = srv_ep_livez},
    {.path = "/models", .ep = SRV_EP_MODELS, .methods = "GET, HEAD", .listed = 1,
     .begin = srv_ep_models},
    {.path = "/metrics", .ep = SRV_EP_METRICS, .methods = "GET, HEAD", .listed = 1,
     .begin = srv_ep_metrics},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

/* Whether url matches pattern: "{id}" is one non-empty segment, a final "*" anything. */
static int path_match(const char *pat, const char *url)
{
    while (*pat) {
        if (strcmp(pat, "*") == 0)
            return 1;
        if (strncmp(pat, "{id}", 4) == 0) {
            size_t n = strcspn(url, "/");
            if (n == 0)
                return 0;
            pat += 4;
            url += n;
            continue;
        }
        if (*pat++ != *url++)
            return 0;
    }
    return *url == '\0';
}

const srv_route *srv_routes_find(const char *url)
{
    for (size_t i = 0; i < N_ROUTES; i++)
        if (path_match(ROUTES[i].path, url))
            return &ROUTES[i];
    return NULL;
}

const char *srv_routes_list(char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_ROUTES && o < n; i++) {
        const srv_route *rt = &ROUTES[i];
        if (!rt->listed || strchr(rt->path + 1, '/'))
            continue; /* the paths under another are listed with it */
        char method[8];
        snprintf(method, sizeof method, "%.*s", (int)strcspn(rt->methods, ","), rt->methods);
        o += (size_t)snprintf(buf + o, n - o, "%s%s %s", o ? ", " : "", method, rt->path);
    }
    return buf;
}

const char *srv_routes_under(const char *prefix, char *buf, size_t n)
{
    size_t o = 0, pl = strlen(prefix);
    buf[0] = '\0';
    for (size_t i = 0; i < N_ROUTES && o < n; i++)
        if (ROUTES[i].listed && strncmp(ROUTES[i].path, prefix, pl) == 0 &&
            ROUTES[i].path[pl] == '/')
            o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? ", " : "", ROUTES[i].path + pl);
    return buf;
}
