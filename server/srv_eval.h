/*
 * srv_eval.h - what POST /evaluate asks for: the request (a JSON body, or a
 * multipart upload's fields), and the set of images it names, resolved
 * safely under the data root with its labels.
 *
 *     srv_eval_request rq;
 *     srv_eval_request_init(&rq);
 *     if (srv_eval_parse_json(&rq, body, len, err, sizeof err)) ... 400 ...
 *     srv_eval_set set;
 *     if (srv_eval_resolve(root_real, &rq, model_get_classes(m), &set, err, sizeof err)) ... 400 ...
 *     ... set.dir, set.files[i], set.truth ? set.truth[i] : -1 ...
 *     srv_eval_set_free(&set);
 *     srv_eval_request_free(&rq);
 *
 * Paths: "dataset", "ground_truth" and "labels" are relative to the data
 * root. Refused (ADJ_ERR_ARG, never opened): an empty or absolute path, a
 * ".." component, a path that does not exist, one whose real path (symbolic
 * links resolved with realpath) lies outside the data root, a dataset that
 * is not a folder, a labels or ground-truth file that is not a regular file.
 * Every image of the folder is checked the same way (its real path must lie
 * under the root).
 *
 * The images of a folder are its regular files (symbolic links followed)
 * whose names end in .jpg, .jpeg, .png or .ppm (any case), sorted by name
 * in byte order (strcmp). The selection is then: offset and limit first
 * (images offset .. offset+limit-1 of the sorted list), then the shard:
 * every count-th image of that slice, starting at its index-th. The shards
 * 0..count-1 of one slice are disjoint and together are the slice.
 *
 * The ImageFolder layout (torchvision's): a dataset folder that has
 * subfolders and no image file holds its images in class folders named by
 * synset (val/n01440764/x.JPEG); every subfolder must be a synset of the
 * model (model_classes: its class order), checked as the dataset (real path
 * under the root and under the dataset), and no
 * ground_truth or labels may be given: an image's class is its folder's
 * synset's class in the model's order. Its file names are "synset/name",
 * sorted as one list (strcmp), then selected as above.
 *
 * Otherwise labels, in this order of precedence:
 *   - "ground_truth": the ImageNet validation layout: one ILSVRC2012_ID
 *     (1..1000 for a model whose class order is known, 1..classes otherwise)
 *     per line, mapped to the model's order (ID -> synset -> class, refused
 *     when the model has no such class), or ID - 1 when the order is unknown. When every image is
 *     named ILSVRC2012_val_NNNNNNNN.<ext>, image NNNNNNNN takes line
 *     NNNNNNNN (so any subset of the folder works with the devkit's full
 *     file); otherwise line i belongs to the i-th image of the sorted folder
 *     and the counts must be equal.
 *   - "labels": a file of "filename<TAB>class-index" lines (split at the
 *     last TAB; blank lines and a trailing CR ignored); every selected
 *     image must have a line.
 *   - labels.txt in the dataset folder, in the same format, if it exists.
 *   - none: the job reports no top-1 accuracy.
 * An upload's "labels" field has the same format, naming the uploaded files.
 */
#ifndef SRV_EVAL_H
#define SRV_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "experiment.h"
#include "model.h"

/** Largest number of images of one job. */
#define SRV_EVAL_MAX_IMAGES 10000000

/** Largest number of 'image' parts of one upload (each costs a file and a name). */
#define SRV_EVAL_MAX_UPLOADS 10000

/** Bytes of an upload kept in memory for sniffing its format. */
#define SRV_UPLOAD_HEAD 16

/**
 * One uploaded image. Its bytes are not held in memory: they lie in the
 * request's spool file (srv_eval_spool_open) at off .. off + len - 1.
 */
typedef struct {
    char *name;    /**< its file name in the job's folder (sanitised) */
    uint64_t off;  /**< where its bytes start in the spool file */
    size_t len;    /**< its bytes */
    uint8_t head[SRV_UPLOAD_HEAD]; /**< its first min(len, SRV_UPLOAD_HEAD) bytes */
} srv_upload;

typedef struct {
    char *dataset;      /**< folder under the data root; NULL for an upload */
    char *ground_truth; /**< ILSVRC2012 ground-truth file under the data root, or NULL */
    char *labels;       /**< filename<TAB>index file under the data root, or NULL */
    exp_params params;  /**< eps (default 1,5,10), quality (default 75) */
    uint64_t seed;      /**< JPGnoise seed of the job (default 1) */
    long offset;        /**< first image of the sorted list (default 0) */
    long limit;         /**< images at most, -1: all (default) */
    int shard_index, shard_count; /**< default 0, 1 */
    int dct;            /**< 1: the job adds the DCT analysis (srv_dct.h); default 0 */
    /* an upload */
    int n_uploads, cap_uploads;
    srv_upload *uploads;
    int has_spool;      /**< spool_fd is open */
    int spool_fd;       /**< an unlinked temporary file: every upload's bytes, back to back */
    uint64_t spool_len; /**< bytes in it */
    char *labels_text;  /**< the multipart "labels" field, NUL-terminated, or NULL */
    size_t labels_len;
} srv_eval_request;

/** The images a request names. */
typedef struct {
    char *dir;          /**< real path of their folder (new) */
    size_t n;
    char **files;       /**< [n] names in dir, in job order (new) */
    int *truth;         /**< [n] class indices, or NULL without labels (new) */
    char *labels_from;  /**< where the labels came from ("labels.txt", a path), or NULL */
    size_t n_folder;    /**< images in the folder before offset/limit/shard */
} srv_eval_set;

/** The defaults: no dataset, eps 1,5,10, quality 75, seed 1, all images, shard 0 of 1. */
void srv_eval_request_init(srv_eval_request *rq);

/** Frees what the request holds (a zeroed or initialised struct is fine). */
void srv_eval_request_free(srv_eval_request *rq);

/**
 * Fills rq from a JSON object body: "dataset" (required), "ground_truth",
 * "labels", "eps" (an array of integers, or one integer), "quality", "seed"
 * (an integer >= 0, or a string of digits for values over 2^63 - 1),
 * "attack" (srv_eval_parse_attack), "offset", "limit", "shard" {"index",
 * "count"}, "dct" (a boolean). Unknown fields, wrong types and values out of range are
 * ADJ_ERR_ARG with a message naming the
 * field; ADJ_ERR_NOMEM.
 */
int srv_eval_parse_json(srv_eval_request *rq, const char *body, size_t len, char *err,
                        size_t errsz);

/**
 * The "attack" object of a JSON body (or of a job's request.json):
 * {"attack": "pgd", "steps": 10, "step_size": 1, "adaptive": "bpda",
 * "eot_qualities": [50, 75]}, any subset, read by the parameter table's rows
 * (strings for attack and adaptive, integers, an array of integers) into
 * p->attack (written only on success). ADJ_ERR_ARG names the field; the
 * combination is checked by exp_params_check.
 */
int srv_eval_parse_attack(const json_t *v, exp_params *p, char *err, size_t errsz);

/**
 * Sets one text parameter: "eps" ("1,5,10"), "quality", "seed" or one of the
 * attack's (from a multipart field or the query string). ADJ_ERR_ARG names
 * the value; ADJ_ERR_UNSUPPORTED for another name.
 */
int srv_eval_set_param(srv_eval_request *rq, const char *name, const char *value, char *err,
                       size_t errsz);

/**
 * Opens the request's spool file, where uploads are streamed instead of
 * held in memory: an unlinked temporary file in dir (the jobs folder, so
 * that the bytes land on the disk that keeps the job; created if missing),
 * else in $TMPDIR or /tmp. It is closed (and its space freed) by
 * srv_eval_request_free. Nothing happens when it is open already.
 * ADJ_ERR_IO with a message.
 */
int srv_eval_spool_open(srv_eval_request *rq, const char *dir, char *err, size_t errsz);

/**
 * Starts a new uploaded image from a multipart field's file name (may be
 * NULL or empty: a name is made up later), at the end of the spool file;
 * returns it (valid until the next srv_eval_add_upload), NULL when out of
 * memory or when SRV_EVAL_MAX_UPLOADS images exist already.
 */
srv_upload *srv_eval_add_upload(srv_eval_request *rq, const char *filename);

/**
 * Appends bytes to the last upload started (u), writing them to the spool
 * file (which must be open). ADJ_ERR_IO (disk full...) with a message.
 */
int srv_upload_append(srv_eval_request *rq, srv_upload *u, const char *data, size_t n,
                      char *err, size_t errsz);

/**
 * Reads an upload's bytes from the spool: *data is new (free()), u->len
 * bytes. ADJ_ERR_IO, ADJ_ERR_NOMEM.
 */
int srv_upload_read(const srv_eval_request *rq, const srv_upload *u, uint8_t **data, char *err,
                    size_t errsz);

/**
 * Copies an upload's bytes from the spool to fd (at its current offset)
 * through a small buffer. ADJ_ERR_IO with errno's text.
 */
int srv_upload_copy(const srv_eval_request *rq, const srv_upload *u, int fd, char *err,
                    size_t errsz);

/** Text fields an upload form may carry (srv_eval.c FORM_PARAMS). */
#define SRV_EVAL_FORM_FIELDS 9

/**
 * The multipart/form-data body of POST /evaluate as it arrives: 'image'
 * parts (one file each, streamed to the spool file), one optional 'labels'
 * part and the text fields (eps, quality, seed, the attack's, dct). Zero it
 * before the first field; it holds nothing to free (the request does).
 */
typedef struct {
    srv_upload *cur;      /**< the 'image' part being received (in the request) */
    char fval[SRV_EVAL_FORM_FIELDS][128]; /**< eps, quality, seed, the attack's fields, dct as received */
    size_t flen[SRV_EVAL_FORM_FIELDS];
    int fset[SRV_EVAL_FORM_FIELDS];
} srv_eval_form;

/**
 * One piece of a field, as libmicrohttpd's post processor hands it over
 * (key, the part's filename or NULL, size bytes of data at offset off of the
 * field). spool_dir: where the spool file is made (srv_eval_spool_open).
 * Refused: ADJ_ERR_ARG (an unknown field, a text field over 127 bytes),
 * ADJ_ERR_LIMIT (more than SRV_EVAL_MAX_UPLOADS images), ADJ_ERR_IO (the
 * spool), ADJ_ERR_NOMEM; err says which. Memory: one srv_upload per part
 * and the labels text; image bytes go to the spool file.
 */
int srv_eval_form_field(srv_eval_request *rq, srv_eval_form *f, const char *key,
                        const char *filename, const char *data, uint64_t off, size_t size,
                        const char *spool_dir, char *err, size_t errsz);

/**
 * The body is complete: applies the text fields (ADJ_ERR_ARG names a bad
 * value) and drops the empty parts without a name that an empty file input
 * of a form sends.
 */
int srv_eval_form_finish(srv_eval_request *rq, srv_eval_form *f, char *err, size_t errsz);

/**
 * Resolves a dataset request under root_real (the data root's real path,
 * or NULL when server-side datasets are disabled: then ADJ_ERR_ARG "server-
 * side datasets are disabled ..."). cl: the model's classes (bounds and
 * maps the labels). *out (new:
 * srv_eval_set_free) is written only on success. ADJ_ERR_ARG (a refused
 * path, bad labels, an empty selection: the message says which and why),
 * ADJ_ERR_NOMEM.
 */
int srv_eval_resolve(const char *root_real, const srv_eval_request *rq, const model_classes *cl,
                     srv_eval_set *out, char *err, size_t errsz);

/**
 * Checks an upload request: at least one image, usable and distinct file
 * names (a missing name becomes image_0001.<ext>, ...; a name is the part
 * after the last / or \), every upload an image by its header (img_probe),
 * the labels field. Sorts the uploads by name. *out gets the names and
 * labels (dir NULL; the caller stores the files). ADJ_ERR_ARG, ADJ_ERR_NOMEM.
 */
int srv_eval_uploads(srv_eval_request *rq, int classes, srv_eval_set *out, char *err,
                     size_t errsz);

/** Frees a set (a zeroed struct is fine). */
void srv_eval_set_free(srv_eval_set *s);

/**
 * Whether `real` (a real path) is root_real or lies under it.
 */
int srv_path_within(const char *root_real, const char *real);

/**
 * The real path of dir/name, checked to lie under root_real and to be a
 * regular file, into out (PATH_MAX bytes). ADJ_ERR_IO (missing), ADJ_ERR_ARG
 * (outside the root, not a regular file), with a message.
 */
int srv_path_file_under(const char *root_real, const char *dir, const char *name, char *out,
                        char *err, size_t errsz);

/** Whether s is valid UTF-8 without control characters other than TAB. */
int srv_name_ok(const char *s);

#endif
