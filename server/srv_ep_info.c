/* srv_ep_info.c - GET /health, /livez, /models, /metrics: answered at once, also while the model loads. */
#include <stdlib.h>
#include <string.h>

#include "srv_ep.h"
#include "srv_json.h"

enum MHD_Result srv_ep_health(srv_req *r)
{
    if (srv_req_query(r)) /* none taken: unknown parameters are refused */
        return srv_req_error_deferred(r);
    if (srv_req_draining(r))
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    if (!srv_req_engine(r))
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "model is loading");
    return srv_req_respond_json(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"), NULL);
}

enum MHD_Result srv_ep_livez(srv_req *r)
{
    if (srv_req_query(r))
        return srv_req_error_deferred(r);
    return srv_req_respond_json(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "alive"), NULL);
}

enum MHD_Result srv_ep_models(srv_req *r)
{
    const srv_engine *e = srv_req_engine(r);
    if (srv_req_query(r))
        return srv_req_error_deferred(r);
    if (!e)
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "model is loading");
    return srv_req_respond_json(
        r, MHD_HTTP_OK, srv_json_models(e->model, e->labels_path, e->labels, e->max_batch), NULL);
}

enum MHD_Result srv_ep_metrics(srv_req *r)
{
    const srv_engine *e = srv_req_engine(r);
    if (srv_req_query(r))
        return srv_req_error_deferred(r);
    srv_metrics_gauges g = {0};
    if (e) {
        g.model_ready = 1;
        g.queue_depth = srv_worker_queued(e->worker);
        g.worker_idle_seconds = srv_worker_idle(e->worker);
        g.model_load_seconds = e->load_seconds;
        g.model_name = model_get_spec(e->model)->name;
        if (e->jobs) {
            g.n_job_states = srv_jobs_counts(e->jobs, &g.job_state_names, g.jobs,
                                             (int)(sizeof g.jobs / sizeof g.jobs[0]), &g.job_images);
            srv_jobs_cpu_seconds(e->jobs, g.job_cpu_seconds);
        }
    }
    char *text = srv_metrics_render(srv_req_metrics(r), &g);
    if (!text)
        return srv_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return srv_req_respond(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
                           strlen(text), 1, NULL);
}
