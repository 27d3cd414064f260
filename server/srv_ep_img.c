/*
 * srv_ep_img.c - POST /classify, /attack, /recompress: an image body, read
 * on the HTTP thread; decoded and cropped (or JPEG-encoded) on the decode
 * pool, which hands /classify's and /attack's task to the worker itself;
 * classified or attacked by the worker; answered (JSON, PNG, JPEG) on the
 * HTTP thread again.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image.h"
#include "srv_ep.h"
#include "srv_jobs.h"
#include "srv_json.h"
#include "srv_status.h"

/* An image request's own state (r->st). */
typedef struct {
    int want_png;      /* /attack: Accept: image/png */
    int want_json;     /* /recompress: Accept: application/json */
    int width, height; /* the uploaded image */
    img_rgb x;         /* the prepared crop */
    img_rgb pair[2];   /* /recompress as JSON: the crops before and after JPG */
    float *input;      /* forward tasks: [n][3][S][S] */
    float *probs;      /* forward tasks: [n][classes] */
    uint8_t *jpeg;     /* /recompress */
    size_t jpeg_len;
    int submit_failed; /* the task never reached the worker: r->err_* say why */
    srv_job_image row; /* GET /jobs/{id}/images/{file}: the job's row of the image */
    char job_id[SRV_JOB_ID_LEN + 1];
    char *file;
    srv_worker *expected; /* counted in srv_worker_expect until submitted or done */
    srv_task task;
} img_state;

static const model_spec *spec_of(const srv_req *r)
{
    return model_get_spec(srv_req_engine(r)->model);
}

void srv_ep_img_done(srv_req *r)
{
    img_state *s = r->st;
    if (!s)
        return;
    if (s->expected) /* answered (an error) before reaching the worker */
        srv_worker_expect(s->expected, -1);
    img_free(&s->x);
    img_free(&s->pair[0]);
    img_free(&s->pair[1]);
    free(s->input);
    free(s->probs);
    free(s->jpeg);
    exp_result_free(&s->task.result);
    srv_job_image_free(&s->row);
    free(s->file);
    free(s);
    r->st = NULL;
}

/* ---------------------------------------------------------------- headers */

/* The state and the query parameters; NULL when answered (*ret). */
static img_state *img_start(srv_req *r, enum MHD_Result *ret)
{
    img_state *s = calloc(1, sizeof *s);
    if (!s) {
        *ret = srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return NULL;
    }
    r->st = s;
    if (srv_req_query(r)) {
        *ret = srv_req_error_deferred(r);
        return NULL;
    }
    return s;
}

/* The field 'image' of a multipart body into r->body; other fields are ignored. */
static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *filename, const char *content_type,
                                 const char *transfer_encoding, const char *data, uint64_t off,
                                 size_t size)
{
    srv_req *r = cls;
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding;
    if (r->err_status)
        return MHD_NO;
    if (!key || strcmp(key, "image") != 0 || size == 0)
        return MHD_YES;
    if (off == 0 && r->len > 0) {
        srv_req_defer(r, MHD_HTTP_BAD_REQUEST,
                      "more than one 'image' field: send one image per request");
        return MHD_NO;
    }
    return srv_req_body_append(r, data, size) ? MHD_YES : MHD_NO;
}

/* The Content-Types of raw image bytes (or multipart/form-data). */
static const char *const IMAGE_TYPES[] = {
    "image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/x-portable-pixmap",
    "image/x-portable-anymap", "application/octet-stream",
    /* curl --data-binary's default; the bytes are sniffed anyway */
    "application/x-www-form-urlencoded",
};

/* The Content-Type, then the body's reception. */
static enum MHD_Result img_body_begin(srv_req *r, img_state *s)
{
    const char *ct = srv_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    int kind = srv_req_content_kind(ct, IMAGE_TYPES, sizeof IMAGE_TYPES / sizeof IMAGE_TYPES[0]);
    if (kind == 0)
        return srv_req_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                             "unsupported Content-Type '%.80s' (send image/jpeg, image/png, "
                             "image/x-portable-pixmap, application/octet-stream or "
                             "multipart/form-data with a field 'image')",
                             ct);
    srv_worker *w = srv_req_engine(r)->worker;
    if (w) { /* tell the worker that one more is on its way */
        s->expected = w;
        srv_worker_expect(w, +1);
    }
    return srv_req_start_body(r, kind == 2, post_iter);
}

enum MHD_Result srv_ep_classify_begin(srv_req *r)
{
    enum MHD_Result ret;
    img_state *s = img_start(r, &ret);
    return s ? img_body_begin(r, s) : ret;
}

enum MHD_Result srv_ep_attack_begin(srv_req *r)
{
    enum MHD_Result ret;
    img_state *s = img_start(r, &ret);
    if (!s)
        return ret;
    char err[ADJ_ERRLEN];
    if (exp_params_check(&r->q.params, err, sizeof err))
        return srv_req_error(r, MHD_HTTP_BAD_REQUEST, "%s", err);
    const char *accept = srv_req_header(r, MHD_HTTP_HEADER_ACCEPT);
    if (accept && srv_req_accept_has(accept, "image/png") &&
        !srv_req_accept_has(accept, "application/json")) {
        if (r->q.params.n_eps != 1)
            return srv_req_error(r, MHD_HTTP_NOT_ACCEPTABLE,
                                 "Accept: image/png returns one image: give exactly one eps "
                                 "(got %d)", r->q.params.n_eps);
        s->want_png = 1;
    }
    return img_body_begin(r, s);
}

enum MHD_Result srv_ep_recompress_begin(srv_req *r)
{
    enum MHD_Result ret;
    img_state *s = img_start(r, &ret);
    if (!s)
        return ret;
    if (exp_n_qualities(&r->q.params) > 1)
        return srv_req_error(r, MHD_HTTP_BAD_REQUEST,
                             "quality: /recompress encodes at one quality, not a list of %d",
                             exp_n_qualities(&r->q.params));
    const char *accept = srv_req_header(r, MHD_HTTP_HEADER_ACCEPT);
    if (accept && srv_req_accept_has(accept, "application/json") &&
        !srv_req_accept_has(accept, "image/jpeg"))
        s->want_json = 1;
    return img_body_begin(r, s);
}

/* ---------------------------------------------------------------- the body */

enum MHD_Result srv_ep_img_body(srv_req *r)
{
    if (r->len == 0)
        return srv_req_error(r, MHD_HTTP_BAD_REQUEST,
                             r->multipart ? "no 'image' field in the multipart/form-data body"
                                          : "empty body: send the image as the request body "
                                            "or as the multipart/form-data field 'image'");
    return srv_req_pool(r);
}

/* ---------------------------------------------------------------- the decode pool */

/* The model's input crop of im according to center (resize=center|none)
 * into *x; moves or frees im. 0, or -1 with the error deferred. */
static int prepare(srv_req *r, img_rgb *im, int center, img_rgb *x)
{
    const model_spec *spec = spec_of(r);
    char err[ADJ_ERRLEN];
    if (!center) {
        if (im->w != spec->input_size || im->h != spec->input_size) {
            srv_req_defer(r, MHD_HTTP_BAD_REQUEST,
                          "resize=none needs a %dx%d image (the model's input size), got %dx%d",
                          spec->input_size, spec->input_size, im->w, im->h);
            img_free(im);
            return -1;
        }
        *x = *im;
        memset(im, 0, sizeof *im);
        return 0;
    }
    int rc = img_prepare(im, spec->scale_size, spec->input_size, x, err, sizeof err);
    img_free(im);
    if (rc) {
        srv_req_defer(r, srv_status_http(rc), "%s", err);
        return -1;
    }
    return 0;
}

/* The body decoded into *im (the body is freed). 0, or -1 with the error deferred. */
static int decode(srv_req *r, img_rgb *im)
{
    img_state *s = r->st;
    char err[ADJ_ERRLEN];
    int rc = img_decode(r->body, r->len, srv_req_cfg(r)->max_pixels, im, err, sizeof err);
    srv_req_body_drop(r);
    if (rc) {
        srv_req_defer(r, srv_status_http(rc), "%s", err);
        return -1;
    }
    s->width = im->w;
    s->height = im->h;
    return 0;
}

/* The body decoded and cropped into s->x: 0, or -1 with the error deferred. */
static int decode_crop(srv_req *r)
{
    img_state *s = r->st;
    img_rgb im = {0};
    return decode(r, &im) ? -1 : prepare(r, &im, r->q.resize_center, &s->x);
}

/*
 * /recompress: the JPEG of the upload (or of its crop) into s->jpeg and, for
 * a JSON answer, the crops before and after the JPEG round trip into
 * s->pair. The experiment's JPG() (accurate IDCT) gives the "after" image.
 */
int srv_ep_recompress_work(srv_req *r)
{
    img_state *s = r->st;
    const model_spec *spec = spec_of(r);
    char err[ADJ_ERRLEN];
    img_rgb im = {0}, base = {0}, after = {0}; /* base: what gets encoded */
    if (decode(r, &im))
        return 0;
    if (r->q.resize_center) {
        if (prepare(r, &im, 1, &base))
            return 0;
    } else {
        base = im;
    }
    int rc = img_encode_jpeg(&base, r->q.params.quality, &s->jpeg, &s->jpeg_len, err, sizeof err);
    if (!rc && s->want_json)
        rc = img_jpeg_roundtrip(&base, r->q.params.quality, &after, err, sizeof err);
    if (rc || !s->want_json) {
        if (rc)
            srv_req_defer(r, srv_status_http_internal(rc), "%s", err);
        img_free(&base);
        img_free(&after);
        return 0;
    }
    if (base.w == spec->input_size && base.h == spec->input_size) {
        s->pair[0] = base;
        s->pair[1] = after;
        return 0;
    }
    rc = img_prepare(&base, spec->scale_size, spec->input_size, &s->pair[0], err, sizeof err);
    if (!rc)
        rc = img_prepare(&after, spec->scale_size, spec->input_size, &s->pair[1], err, sizeof err);
    img_free(&base);
    img_free(&after);
    if (rc)
        srv_req_defer(r, srv_status_http(rc), "%s", err);
    return 0;
}

/* ---------------------------------------------------------------- to the worker */

/* No longer on its way to the worker: it is submitted now (or given up). */
static void arrived(img_state *s)
{
    if (s->expected) {
        srv_worker_expect(s->expected, -1);
        s->expected = NULL;
    }
}

/* Planar floats of images (each input_size square) into a new buffer. */
static float *planar(const img_rgb *ims, int n)
{
    size_t per = (size_t)3 * ims[0].w * ims[0].h;
    float *p = malloc((size_t)n * per * sizeof *p);
    if (p)
        for (int i = 0; i < n; i++)
            img_to_planar(&ims[i], p + (size_t)i * per);
    return p;
}

/* A forward task of n images (each input_size square); -1 when out of memory. */
static int forward_task(srv_req *r, const img_rgb *ims, int n)
{
    img_state *s = r->st;
    s->input = planar(ims, n);
    s->probs = calloc((size_t)n * spec_of(r)->classes, sizeof *s->probs);
    if (!s->input || !s->probs)
        return -1;
    s->task.kind = SRV_TASK_FORWARD;
    s->task.n = n;
    s->task.input = s->input;
    s->task.probs = s->probs;
    return 0;
}

/* /classify on the decode pool: decoded, cropped and handed to the worker from here. */
int srv_ep_classify_work(srv_req *r)
{
    img_state *s = r->st;
    if (decode_crop(r))
        return 0;
    if (forward_task(r, &s->x, 1)) {
        srv_req_defer(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return 0;
    }
    arrived(s);
    srv_req_submit_suspended(r, &s->task, &s->submit_failed);
    return 1;
}

/* /attack and a job's image, likewise. */
int srv_ep_attack_work(srv_req *r)
{
    img_state *s = r->st;
    if (decode_crop(r))
        return 0;
    s->task.kind = SRV_TASK_ATTACK;
    s->task.x = s->x;
    s->task.params = r->q.params;
    s->task.seed = r->q.seed;
    arrived(s);
    srv_req_submit_suspended(r, &s->task, &s->submit_failed);
    return 1;
}

enum MHD_Result srv_ep_recompress_worked(srv_req *r)
{
    img_state *s = r->st;
    if (!s->want_json) {
        uint8_t *jpeg = s->jpeg;
        s->jpeg = NULL;
        return srv_req_respond(r, MHD_HTTP_OK, "image/jpeg", jpeg, s->jpeg_len, 1, NULL);
    }
    if (forward_task(r, s->pair, 2))
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    arrived(s);
    return srv_req_submit(r, &s->task, &s->submit_failed);
}

/* ---------------------------------------------------------------- answers */

/* o with its "provenance" (the route's parameters); NULL when o is or when out of memory. */
static json_t *with_provenance(const srv_req *r, const srv_json_ctx *c, json_t *o)
{
    if (o && srv_json_put_provenance(o, c, srv_json_params(&r->q, r->route->params))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The task's failure answered (1), or 0 when it succeeded; c is then its JSON context. */
static int task_failed(srv_req *r, enum MHD_Result *ret, srv_json_ctx *c)
{
    img_state *s = r->st;
    const srv_task *t = &s->task;
    if (s->submit_failed)
        *ret = srv_req_error_deferred(r);
    else if (t->status == SRV_TASK_TIMED_OUT)
        *ret = srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "timed out: %s (limit %d s)",
                             t->err, srv_req_cfg(r)->timeout_s);
    else if (t->status != SRV_TASK_OK)
        *ret = srv_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", t->err);
    else {
        const model_spec *spec = spec_of(r);
        *c = (srv_json_ctx){spec->name, spec->classes, spec->input_size,
                            srv_req_engine(r)->labels, r->q.top_k,
                            model_weights_sha256(srv_req_engine(r)->model)};
        return 0;
    }
    return 1;
}

enum MHD_Result srv_ep_classify_answer(srv_req *r)
{
    img_state *s = r->st;
    enum MHD_Result ret;
    srv_json_ctx c;
    if (task_failed(r, &ret, &c))
        return ret;
    return srv_req_respond_json(r, MHD_HTTP_OK,
                                with_provenance(r, &c, srv_json_classify(&c, s->probs, s->width,
                                                                         s->height)),
                                NULL);
}

enum MHD_Result srv_ep_recompress_answer(srv_req *r)
{
    img_state *s = r->st;
    enum MHD_Result ret;
    srv_json_ctx c;
    if (task_failed(r, &ret, &c))
        return ret;
    return srv_req_respond_json(r, MHD_HTTP_OK,
                                srv_json_recompress(&c, r->q.params.quality, s->probs, s->width,
                                                    s->height, s->jpeg, s->jpeg_len),
                                NULL);
}

/* Accept: image/png: Adv(x) of the one eps as a PNG. */
static enum MHD_Result answer_png(srv_req *r)
{
    img_state *s = r->st;
    const exp_result *res = &s->task.result;
    char err[ADJ_ERRLEN];
    int t = 0;
    while (t < res->n_transforms && exp_transform_kind_of(&r->q.params, t) != EXP_T_ADV)
        t++;
    uint8_t *png;
    size_t len;
    if (t == res->n_transforms || img_encode_png(&res->images[t], &png, &len, err, sizeof err))
        return srv_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s",
                             t == res->n_transforms ? "no Adv image" : err);
    return srv_req_respond(r, MHD_HTTP_OK, "image/png", png, len, 1, NULL);
}

enum MHD_Result srv_ep_attack_answer(srv_req *r)
{
    img_state *s = r->st;
    enum MHD_Result ret;
    srv_json_ctx c;
    char err[ADJ_ERRLEN];
    if (task_failed(r, &ret, &c))
        return ret;
    if (s->want_png)
        return answer_png(r);
    json_t *o = srv_json_attack(&c, &r->q.params, r->q.seed, &s->task.result, s->width,
                                s->height, r->q.images, err, sizeof err);
    if (!o)
        return srv_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
    return srv_req_respond_json(r, MHD_HTTP_OK, with_provenance(r, &c, o), NULL);
}

/* ---------------------------------------------------------------- a job's image */

enum MHD_Result srv_ep_img_of_job(srv_req *r, const char *id, const char *file, srv_job_image *im)
{
    img_state *s = calloc(1, sizeof *s);
    if (!s || !(s->file = strdup(file))) {
        free(s);
        srv_job_image_free(im);
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    }
    r->st = s;
    snprintf(s->job_id, sizeof s->job_id, "%s", id);
    s->row = *im;
    memset(im, 0, sizeof *im);
    int ok = srv_req_body_append(r, s->row.bytes, s->row.len);
    free(s->row.bytes);
    s->row.bytes = NULL;
    if (!ok)
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    r->q.params = s->row.params; /* as the job ran it: its parameters, the image's seed */
    r->q.seed = s->row.seed;
    r->q.resize_center = 1;
    r->q.images = 1;
    r->state = SRV_RS_BODY;
    return MHD_YES; /* no body to read: srv_ep_img_body next */
}

/* Whether the rebuilt scores are the row's, bit for bit (as rows.csv prints them). */
static int same_as_row(const img_state *s)
{
    const exp_result *res = &s->task.result;
    if (res->n_transforms != s->row.n_transforms)
        return 0;
    for (int t = 0; t < res->n_transforms; t++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%.9g", (double)exp_top_label_prob(res, t));
        snprintf(b, sizeof b, "%.9g", (double)s->row.probs[t]);
        if (strcmp(a, b) != 0 || exp_label(res, t) != s->row.labels[t])
            return 0;
    }
    return 1;
}

enum MHD_Result srv_ep_job_image_answer(srv_req *r)
{
    img_state *s = r->st;
    enum MHD_Result ret;
    srv_json_ctx c;
    char err[ADJ_ERRLEN];
    if (task_failed(r, &ret, &c))
        return ret;
    json_t *o = srv_json_attack(&c, &r->q.params, r->q.seed, &s->task.result, s->width,
                                s->height, 1, err, sizeof err);
    if (!o)
        return srv_req_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
    int bad = json_object_set_new(o, "job", json_string(s->job_id)) ||
              json_object_set_new(o, "file", json_string(s->file)) ||
              json_object_set_new(o, "same_as_row", json_boolean(same_as_row(s))) ||
              srv_json_put_provenance(o, &c,
                                      srv_json_params(&r->q, SRV_P(EXP_PARAM_EPS) |
                                                                 SRV_P(EXP_PARAM_QUALITY) |
                                                                 SRV_P(EXP_PARAM_SEED)));
    if (bad) {
        json_decref(o);
        return srv_req_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    }
    return srv_req_respond_json(r, MHD_HTTP_OK, o, NULL);
}
