/* srv_eval.c - an evaluation request: its JSON body, its query and form fields, its uploads
 * spooled to one file. */
#include "srv_eval.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "status.h"
#include "ut_file.h"

#include "srv_json.h"
#include "srv_params.h"

/* ---------------------------------------------------------------- request */

void srv_eval_request_init(srv_eval_request *rq)
{
    memset(rq, 0, sizeof *rq);
    srv_query q; /* the parameter table's defaults (the paper's) */
    srv_params_defaults(&q, 1);
    rq->params = q.params;
    rq->seed = q.seed;
    rq->limit = -1;
    rq->shard_count = 1;
}

void srv_eval_request_free(srv_eval_request *rq)
{
    if (!rq)
        return;
    free(rq->dataset);
    free(rq->ground_truth);
    free(rq->labels);
    for (int i = 0; i < rq->n_uploads; i++)
        free(rq->uploads[i].name);
    free(rq->uploads);
    if (rq->has_spool)
        close(rq->spool_fd);
    free(rq->labels_text);
    memset(rq, 0, sizeof *rq);
}

int srv_eval_set_param(srv_eval_request *rq, const char *name, const char *value, char *err,
                       size_t errsz)
{
    int id = srv_params_lookup(name, SRV_P(EXP_PARAM_EPS) | SRV_P(EXP_PARAM_QUALITY) |
                                         SRV_P(EXP_PARAM_SEED) | SRV_ATTACK_PARAMS |
                                         SRV_P(EXP_PARAM_DCT));
    if (id < 0)
        return ADJ_ERR_UNSUPPORTED;
    srv_query q = {.params = rq->params, .seed = rq->seed, .dct = rq->dct};
    int rc = srv_params_set(&q, (exp_param_id)id, value, 1, err, errsz);
    if (!rc) {
        rq->params = q.params;
        rq->seed = q.seed;
        rq->dct = q.dct;
    }
    return rc;
}

/* A JSON integer in lo..hi. */
static int json_long(const json_t *v, long lo, long hi, long *out)
{
    if (!json_is_integer(v))
        return 0;
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return 0;
    *out = (long)x;
    return 1;
}

/* "eps" of a JSON body: an integer or an array of them, in EXP_EPS_MIN..EXP_EPS_MAX. */
static int json_eps(const json_t *v, exp_params *out, char *err, size_t errsz)
{
    exp_params p = *out;
    long n;
    p.n_eps = 0;
    if (json_is_integer(v)) {
        if (!json_long(v, EXP_EPS_MIN, EXP_EPS_MAX, &n))
            return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: give integers in %d..%d", EXP_EPS_MIN,
                            EXP_EPS_MAX);
        p.eps[p.n_eps++] = (int)n;
    } else if (!json_is_array(v) || json_array_size(v) == 0) {
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: give an array of integers in %d..%d",
                        EXP_EPS_MIN, EXP_EPS_MAX);
    } else if (json_array_size(v) > EXP_MAX_EPS) {
        return adj_fail(err, errsz, ADJ_ERR_ARG, "eps: more than %d values", EXP_MAX_EPS);
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (!json_long(e, EXP_EPS_MIN, EXP_EPS_MAX, &n))
                return adj_fail(err, errsz, ADJ_ERR_ARG,
                                "eps: item %zu is not an integer in %d..%d", i + 1, EXP_EPS_MIN,
                                EXP_EPS_MAX);
            p.eps[p.n_eps++] = (int)n;
        }
    }
    *out = p;
    return ADJ_OK;
}

/* A relative path field: a non-empty string; copied into *slot. */
static int json_path(const json_t *v, const char *key, char **slot, char *err, size_t errsz)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: give a non-empty string (a path under the "
                        "server's --data-root)", key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: a path has no NUL characters", key);
    free(*slot);
    if (!(*slot = strdup(json_string_value(v))))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    return ADJ_OK;
}

/* A JSON value of the attack object as the text srv_params_set reads: a string for a
 * choice, an integer, or for a list an array of integers (or one). 0 if of another type. */
static int attack_value_text(const json_t *v, exp_param_kind kind, char *text, size_t n)
{
    if (kind == EXP_PK_CHOICE) {
        if (!json_is_string(v) || json_string_length(v) >= n)
            return 0;
        snprintf(text, n, "%s", json_string_value(v));
        return strlen(text) == json_string_length(v);
    }
    if (json_is_integer(v)) {
        snprintf(text, n, "%lld", (long long)json_integer_value(v));
        return 1;
    }
    if (kind != EXP_PK_INT_LIST || !json_is_array(v) || json_array_size(v) == 0)
        return 0;
    size_t i, o = 0;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e) || o + 24 >= n)
            return 0;
        o += (size_t)snprintf(text + o, n - o, "%s%lld", i ? "," : "",
                              (long long)json_integer_value(e));
    }
    return 1;
}

int srv_eval_parse_attack(const json_t *v, exp_params *p, char *err, size_t errsz)
{
    if (!json_is_object(v))
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "attack: give an object such as {\"attack\": \"pgd\", \"steps\": 10}");
    srv_query q = {.params = *p};
    const char *key;
    json_t *x;
    char names[128];
    json_object_foreach((json_t *)v, key, x) {
        int id = srv_params_lookup(key, SRV_ATTACK_PARAMS);
        if (id < 0)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "attack: unknown field '%.64s' (fields: %s)",
                            key, srv_params_names(SRV_ATTACK_PARAMS, names, sizeof names));
        const exp_param_def *d = &exp_param_defs[id];
        char text[256];
        if (!attack_value_text(x, d->kind, text, sizeof text))
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: give %s", key,
                            d->kind == EXP_PK_CHOICE ? "a string"
                            : d->kind == EXP_PK_INT_LIST ? "an array of integers"
                                                         : "an integer");
        int rc = srv_params_set(&q, (exp_param_id)id, text, 1, err, errsz);
        if (rc)
            return rc;
    }
    p->attack = q.params.attack;
    return ADJ_OK;
}

int srv_eval_parse_json(srv_eval_request *rq, const char *body, size_t len, char *err,
                        size_t errsz)
{
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!o)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "the body is not JSON: %s (line %d, column %d)",
                        je.text, je.line, je.column);
    int rc = ADJ_OK;
    if (!json_is_object(o)) {
        rc = adj_fail(err, errsz, ADJ_ERR_ARG, "the body must be a JSON object");
        goto out;
    }
    const char *key;
    json_t *v;
    long n;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "dataset") == 0) {
            rc = json_path(v, key, &rq->dataset, err, errsz);
        } else if (strcmp(key, "ground_truth") == 0) {
            if (!json_is_null(v))
                rc = json_path(v, key, &rq->ground_truth, err, errsz);
        } else if (strcmp(key, "labels") == 0) {
            if (!json_is_null(v))
                rc = json_path(v, key, &rq->labels, err, errsz);
        } else if (strcmp(key, "eps") == 0) {
            rc = json_eps(v, &rq->params, err, errsz);
        } else if (strcmp(key, "quality") == 0) {
            rc = srv_json_read_quality(v, &rq->params, err, errsz);
        } else if (strcmp(key, "seed") == 0) {
            if (json_is_integer(v) && json_integer_value(v) >= 0)
                rq->seed = (uint64_t)json_integer_value(v);
            else if (!json_is_string(v) || !srv_parse_seed(json_string_value(v), &rq->seed))
                rc = adj_fail(err, errsz, ADJ_ERR_ARG,
                              "seed: give an integer in 0..18446744073709551615");
        } else if (strcmp(key, "attack") == 0) {
            rc = srv_eval_parse_attack(v, &rq->params, err, errsz);
        } else if (strcmp(key, "offset") == 0) {
            if (!json_long(v, 0, LONG_MAX, &n))
                rc = adj_fail(err, errsz, ADJ_ERR_ARG, "offset: give an integer >= 0");
            else
                rq->offset = n;
        } else if (strcmp(key, "limit") == 0) {
            if (json_is_null(v))
                rq->limit = -1;
            else if (!json_long(v, 1, LONG_MAX, &n))
                rc = adj_fail(err, errsz, ADJ_ERR_ARG, "limit: give an integer >= 1");
            else
                rq->limit = n;
        } else if (strcmp(key, "dct") == 0) {
            if (!json_is_boolean(v))
                rc = adj_fail(err, errsz, ADJ_ERR_ARG, "dct: give true or false");
            else
                rq->dct = json_is_true(v);
        } else if (strcmp(key, "shard") == 0) {
            long idx, cnt;
            json_t *ji = json_object_get(v, "index"), *jc = json_object_get(v, "count");
            if (!json_is_object(v) || json_object_size(v) != 2 || !json_long(jc, 1, 1000000, &cnt) ||
                !json_long(ji, 0, cnt - 1, &idx))
                rc = adj_fail(err, errsz, ADJ_ERR_ARG,
                              "shard: give {\"index\": I, \"count\": C} with 0 <= I < C <= 1000000");
            else {
                rq->shard_index = (int)idx;
                rq->shard_count = (int)cnt;
            }
        } else {
            rc = adj_fail(err, errsz, ADJ_ERR_ARG,
                          "unknown field '%.64s' (fields: dataset, ground_truth, labels, eps, "
                          "quality, seed, attack, offset, limit, shard, dct)",
                          key);
        }
        if (rc)
            goto out;
    }
    if (!rq->dataset)
        rc = adj_fail(err, errsz, ADJ_ERR_ARG,
                      "dataset: which images? give \"dataset\", a folder under the server's "
                      "--data-root (or upload images as multipart/form-data)");
    else if (rq->ground_truth && rq->labels)
        rc = adj_fail(err, errsz, ADJ_ERR_ARG, "give ground_truth or labels, not both");
out:
    json_decref(o);
    return rc;
}

/* An unlinked temporary file in dir; -1 with errno. */
static int tmpfile_in(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/.upload-XXXXXX", dir) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if ((fd = mkostemp(path, O_CLOEXEC)) >= 0)
        unlink(path);
    return fd;
}

int srv_eval_spool_open(srv_eval_request *rq, const char *dir, char *err, size_t errsz)
{
    if (rq->has_spool)
        return ADJ_OK;
    int fd = -1;
    if (dir) {
        mkdir(dir, 0700); /* its parent may be missing: then the fallback */
        fd = tmpfile_in(dir);
    }
    if (fd < 0) {
        const char *t = getenv("TMPDIR");
        fd = tmpfile_in(t && *t ? t : "/tmp");
    }
    if (fd < 0)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot create a file for the upload in %s: %s",
                        dir ? dir : "/tmp", strerror(errno));
    rq->spool_fd = fd;
    rq->has_spool = 1;
    rq->spool_len = 0;
    return ADJ_OK;
}

srv_upload *srv_eval_add_upload(srv_eval_request *rq, const char *filename)
{
    if (rq->n_uploads >= SRV_EVAL_MAX_UPLOADS)
        return NULL;
    if (rq->n_uploads == rq->cap_uploads) {
        int cap = rq->cap_uploads ? rq->cap_uploads * 2 : 16;
        srv_upload *u = realloc(rq->uploads, (size_t)cap * sizeof *u);
        if (!u)
            return NULL;
        rq->uploads = u;
        rq->cap_uploads = cap;
    }
    srv_upload *u = &rq->uploads[rq->n_uploads];
    memset(u, 0, sizeof *u);
    if (!(u->name = strdup(filename ? filename : "")))
        return NULL;
    u->off = rq->spool_len;
    rq->n_uploads++;
    return u;
}

int srv_upload_append(srv_eval_request *rq, srv_upload *u, const char *data, size_t n,
                      char *err, size_t errsz)
{
    if (!rq->has_spool || u->off + u->len != rq->spool_len)
        return adj_fail(err, errsz, ADJ_ERR_STATE, "srv_upload_append: not the last upload");
    if (u->len < SRV_UPLOAD_HEAD) {
        size_t k = SRV_UPLOAD_HEAD - u->len < n ? SRV_UPLOAD_HEAD - u->len : n;
        memcpy(u->head + u->len, data, k);
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = pwrite(rq->spool_fd, data + done, n - done, (off_t)(rq->spool_len + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return adj_fail(err, errsz, ADJ_ERR_IO, "cannot store the upload: %s",
                            w < 0 ? strerror(errno) : "short write");
        done += (size_t)w;
    }
    rq->spool_len += n;
    u->len += n;
    return ADJ_OK;
}

/* The multipart fields of POST /evaluate that carry text parameters (srv_eval_form's fval). */
static const exp_param_id FORM_PARAMS[] = {
    EXP_PARAM_EPS,      EXP_PARAM_QUALITY,   EXP_PARAM_SEED,     EXP_PARAM_ATTACK,
    EXP_PARAM_STEPS,    EXP_PARAM_STEP_SIZE, EXP_PARAM_ADAPTIVE, EXP_PARAM_EOT_QUALITIES,
    EXP_PARAM_DCT};
#define N_FORM_PARAMS ((int)(sizeof FORM_PARAMS / sizeof FORM_PARAMS[0]))
_Static_assert(N_FORM_PARAMS == SRV_EVAL_FORM_FIELDS, "srv_eval_form holds every form field");
_Static_assert(sizeof FORM_PARAMS / sizeof FORM_PARAMS[0] ==
                   sizeof ((srv_eval_form *)0)->fval / sizeof ((srv_eval_form *)0)->fval[0],
               "one fval per form parameter");

int srv_eval_form_field(srv_eval_request *rq, srv_eval_form *f, const char *key,
                        const char *filename, const char *data, uint64_t off, size_t size,
                        const char *spool_dir, char *err, size_t errsz)
{
    if (!key)
        return ADJ_OK;
    if (strcmp(key, "image") == 0) {
        const char *fn = filename ? filename : "";
        srv_upload *u = f->cur;
        /* a new part starts at offset 0; a part may also begin with an empty call */
        if (off == 0 && (!u || u->len > 0 || strcmp(u->name, fn) != 0)) {
            if (rq->n_uploads >= SRV_EVAL_MAX_UPLOADS)
                return adj_fail(err, errsz, ADJ_ERR_LIMIT,
                                "more than %d 'image' parts in one upload", SRV_EVAL_MAX_UPLOADS);
            int rc = srv_eval_spool_open(rq, spool_dir, err, errsz);
            if (rc)
                return rc;
            if (!(u = f->cur = srv_eval_add_upload(rq, fn)))
                return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for the upload");
        }
        return size ? srv_upload_append(rq, u, data, size, err, errsz) : ADJ_OK;
    }
    if (strcmp(key, "labels") == 0) {
        char *t = realloc(rq->labels_text, rq->labels_len + size + 1);
        if (!t)
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for the labels");
        memcpy(t + rq->labels_len, data, size);
        rq->labels_len += size;
        t[rq->labels_len] = '\0';
        rq->labels_text = t;
        return ADJ_OK;
    }
    for (int i = 0; i < N_FORM_PARAMS; i++)
        if (strcmp(key, exp_param_defs[FORM_PARAMS[i]].name) == 0) {
            if (f->flen[i] + size >= sizeof f->fval[i])
                return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: value too long", key);
            memcpy(f->fval[i] + f->flen[i], data, size);
            f->flen[i] += size;
            f->fval[i][f->flen[i]] = '\0';
            f->fset[i] = 1;
            return ADJ_OK;
        }
    return adj_fail(err, errsz, ADJ_ERR_ARG,
                    "unknown field '%.64s' in the multipart body (fields: image, labels, eps, "
                    "quality, seed, attack, steps, step_size, adaptive, eot_qualities, dct; a "
                    "dataset on the server is named in a JSON body)",
                    key);
}

int srv_eval_form_finish(srv_eval_request *rq, srv_eval_form *f, char *err, size_t errsz)
{
    int rc;
    for (int i = 0; i < N_FORM_PARAMS; i++)
        if (f->fset[i] && (rc = srv_eval_set_param(rq, exp_param_defs[FORM_PARAMS[i]].name, f->fval[i], err,
                                                      errsz)))
            return rc;
    int k = 0;
    for (int i = 0; i < rq->n_uploads; i++) {
        srv_upload *u = &rq->uploads[i];
        if (u->len == 0 && !*u->name) {
            free(u->name);
            continue;
        }
        rq->uploads[k++] = *u;
    }
    rq->n_uploads = k;
    f->cur = NULL;
    return ADJ_OK;
}

/* Reads n bytes at off of the spool into buf. */
static int spool_read(const srv_eval_request *rq, uint64_t off, void *buf, size_t n, char *err,
                      size_t errsz)
{
    for (size_t done = 0; done < n;) {
        ssize_t r = pread(rq->spool_fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return adj_fail(err, errsz, ADJ_ERR_IO, "cannot read the upload back: %s",
                            r < 0 ? strerror(errno) : "short file");
        done += (size_t)r;
    }
    return ADJ_OK;
}

int srv_upload_read(const srv_eval_request *rq, const srv_upload *u, uint8_t **data, char *err,
                    size_t errsz)
{
    uint8_t *d = malloc(u->len ? u->len : 1);
    if (!d)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    int rc = u->len ? spool_read(rq, u->off, d, u->len, err, errsz) : ADJ_OK;
    if (rc) {
        free(d);
        return rc;
    }
    *data = d;
    return ADJ_OK;
}

int srv_upload_copy(const srv_eval_request *rq, const srv_upload *u, int fd, char *err,
                    size_t errsz)
{
    char buf[64 * 1024];
    for (size_t done = 0; done < u->len;) {
        size_t n = u->len - done < sizeof buf ? u->len - done : sizeof buf;
        int rc = spool_read(rq, u->off + done, buf, n, err, errsz);
        if (rc)
            return rc;
        for (size_t k = 0; k < n;) {
            ssize_t w = write(fd, buf + k, n - k);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return adj_fail(err, errsz, ADJ_ERR_IO, "%s", w < 0 ? strerror(errno) : "short write");
            k += (size_t)w;
        }
        done += n;
    }
    return ADJ_OK;
}
