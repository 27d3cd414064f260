/*
 * srv_ep.h - the endpoints' functions, named in the route table
 * (srv_routes.c): srv_ep_img.c (/classify, /attack, /recompress),
 * srv_ep_jobs.c (/evaluate, /jobs...), srv_ep_info.c (/health, /models,
 * /metrics). Each is a srv_route function (srv_req.h).
 */
#ifndef SRV_EP_H
#define SRV_EP_H

#include "srv_req.h"

/* ---- srv_ep_info.c: answered at once, also while the model loads ---- */
enum MHD_Result srv_ep_health(srv_req *r);
/** GET /livez: 200 while the process serves, loading or not (a liveness probe). */
enum MHD_Result srv_ep_livez(srv_req *r);
enum MHD_Result srv_ep_models(srv_req *r);
enum MHD_Result srv_ep_metrics(srv_req *r);

/* ---- srv_ep_img.c: an image body, the decode pool, then the worker ---- */
enum MHD_Result srv_ep_classify_begin(srv_req *r);
enum MHD_Result srv_ep_attack_begin(srv_req *r);
enum MHD_Result srv_ep_recompress_begin(srv_req *r);
enum MHD_Result srv_ep_img_body(srv_req *r);    /* the three of them */
int srv_ep_classify_work(srv_req *r);           /* decode, crop, submit the forward task */
int srv_ep_attack_work(srv_req *r);             /* decode, crop, submit the attack task */
int srv_ep_recompress_work(srv_req *r);         /* decode, encode the JPEG */
enum MHD_Result srv_ep_recompress_worked(srv_req *r);
enum MHD_Result srv_ep_classify_answer(srv_req *r);
enum MHD_Result srv_ep_attack_answer(srv_req *r);
enum MHD_Result srv_ep_recompress_answer(srv_req *r);
void srv_ep_img_done(srv_req *r);
/* GET /jobs/{id}/images/{file}: the job's image im (moved) as an /attack body with the
 * job's parameters; then srv_ep_img_body, srv_ep_attack_work */
enum MHD_Result srv_ep_img_of_job(srv_req *r, const char *id, const char *file,
                                  srv_job_image *im);
enum MHD_Result srv_ep_job_image_answer(srv_req *r);

/* ---- srv_ep_jobs.c: evaluation jobs ---- */
enum MHD_Result srv_ep_eval_begin(srv_req *r);  /* POST /evaluate */
enum MHD_Result srv_ep_eval_body(srv_req *r);
void srv_ep_eval_done(srv_req *r);
enum MHD_Result srv_ep_jobs_list(srv_req *r);   /* GET /jobs */
enum MHD_Result srv_ep_job(srv_req *r);         /* GET, DELETE /jobs/{id} */
enum MHD_Result srv_ep_job_result(srv_req *r);  /* GET /jobs/{id}/result */
enum MHD_Result srv_ep_job_rows(srv_req *r);    /* GET /jobs/{id}/rows */
enum MHD_Result srv_ep_job_figure(srv_req *r);  /* GET /jobs/{id}/figure3.svg, figure4.svg, quality.svg */
enum MHD_Result srv_ep_job_image(srv_req *r);   /* GET /jobs/{id}/images/{file} */
enum MHD_Result srv_ep_job_dct(srv_req *r);     /* GET /jobs/{id}/dct, dct.svg */
enum MHD_Result srv_ep_job_other(srv_req *r);   /* anything else under /jobs/: 404 */

#endif
