/*
 * srv_json.h - the JSON answers of advjpgd (jansson); base64 is ut_base64.h.
 *
 * Builders return a new json_t reference (the caller owns it: json_decref,
 * or hand it to srv_json_dump which consumes it), or NULL when out of
 * memory. Probabilities are written with 9 significant digits (a float
 * survives the round trip); a non-finite value is written as null.
 *
 *     srv_json_ctx c = {spec->name, spec->classes, spec->input_size, labels, 5};
 *     char *text = srv_json_dump(srv_json_classify(&c, probs, 500, 375));
 *     ... send text ...; free(text);
 *
 * Field names are those of server/openapi.yaml.
 */
#ifndef SRV_JSON_H
#define SRV_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "experiment.h"
#include "model.h"
#include "srv_params.h"

/** What every classification answer needs to know about the model. */
typedef struct {
    const char *model_name;
    int classes;
    int input_size;
    const model_labels *labels; /**< names for top[].label; NULL or n == 0: none */
    int top_k;                  /**< 1..classes */
    const char *weights_sha256; /**< the provenance's; NULL: null */
} srv_json_ctx;

/**
 * Serialises j compactly and releases j (NULL j gives NULL). New string
 * (free()), NULL when out of memory.
 */
char *srv_json_dump(json_t *j);

/**
 * {"error": msg} as a new string (free()); NULL if out of memory. msg may
 * hold any bytes (it often echoes a request): it is made valid UTF-8 with
 * srv_utf8_escape first, so an answer is always sent.
 */
char *srv_json_error(const char *msg);

/**
 * A copy of the NUL-terminated s that is valid UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing over U+10FFFF): every byte that does not
 * belong to a valid sequence becomes the four characters \xHH (a cut-off
 * sequence at the end too). With ascii_only, control characters (under
 * 0x20, 0x7f), the backslash and every byte over 0x7f become \xHH as well,
 * so that a log line cannot be forged or misread. New string (free()), NULL if out of memory.
 */
char *srv_utf8_escape(const char *s, int ascii_only);

/**
 * The top-k list [{"index", "label" (name, when labels exist), "prob"}] of
 * one probability vector of c->classes values, highest first.
 */
json_t *srv_json_top(const srv_json_ctx *c, const float *probs);

/**
 * POST /classify: {"model", "width", "height", "input_size", "label", "prob",
 * "top"}; width and height are the uploaded image's.
 */
json_t *srv_json_classify(const srv_json_ctx *c, const float *probs, int width, int height);

/**
 * POST /attack: {"model", "width", "height", "input_size", "label", "eps",
 * "quality", the attack's fields (srv_json_put_attack), "threat_model",
 * "seed", "results": [{"transform", "eps"?, "top_label_prob", "label",
 * "prob", "top", the attack's fields, and for the adversarial transforms
 * (Adv, JPG(Adv), JPGnoise(Adv)) "linf", "l2", "psnr" of Adv_eps(x) - x}...],
 * "images"?}. With with_images, "images" maps
 * every transform's name to the base64 PNG of its 8-bit image (PNG encoding
 * may fail: then NULL and a message in err).
 */
json_t *srv_json_attack(const srv_json_ctx *c, const exp_params *p, uint64_t seed,
                        const exp_result *r, int width, int height, int with_images,
                        char *err, size_t errsz);

/**
 * The attack's fields of a result or table entry (or of a request) into e:
 * "attack" (fgsm, bim, pgd, ll), "adaptive" (none, bpda, eot), and as they
 * apply "steps", "step_size" (bim, pgd, ll) and "eot_qualities" (eot), the
 * values the attack ran with (exp_attack_resolved). ADJ_ERR_NOMEM.
 */
int srv_json_put_attack(json_t *e, const exp_params *p);

/**
 * The perturbation's size Adv_eps(x) - x into e: "linf" (levels), "l2"
 * (levels), "psnr" (dB; null when the image did not change). ADJ_ERR_NOMEM.
 */
int srv_json_put_norms(json_t *e, const atk_norms *n);

/** "threat_model": exp_threat_model's sentence into o. ADJ_ERR_NOMEM. */
int srv_json_put_threat_model(json_t *o, const exp_params *p);

/**
 * POST /recompress with Accept: application/json: {"model", "width",
 * "height", "input_size", "quality", "label", "results": [x, JPG(x)],
 * "jpeg_bytes", "jpeg" (base64)}. probs is [2][classes]: the clean crop, then
 * the crop after the JPEG round trip; label is the clean crop's arg-max.
 */
json_t *srv_json_recompress(const srv_json_ctx *c, int quality, const float *probs, int width,
                            int height, const uint8_t *jpeg, size_t jpeg_len);

/**
 * GET /models, the loaded model: {"name", "channels", "input_size",
 * "scale_size", "mean", "std", "classes", "layers", "parameters", "flops",
 * "weights", "labels" (path or null), "max_batch", "spec" (the model spec as
 * JSON)}. labels_path may be NULL.
 */
json_t *srv_json_models(const model *m, const char *labels_path, const model_labels *labels,
                        int max_batch);

/** The qualities of p: a number for one, an array for a grid. New reference. */
json_t *srv_json_quality(const exp_params *p);

/**
 * "quality" of a JSON body or of request.json: an integer 1..100 or an array
 * of 1..EXP_MAX_QUALITY of them (distinct: exp_params_check), into p (written
 * only on success).
 * ADJ_ERR_ARG with a message naming the field otherwise.
 */
int srv_json_read_quality(const json_t *v, exp_params *p, char *err, size_t errsz);

/**
 * Adds transform t's description to a result entry or table row e: "display_name"
 * (exp_transform_label, the display name), "kind" (exp_transform_kind_name),
 * "eps" (absent for x and JPG(x)) and "quality" (absent for x and Adv(x)).
 * 0, or -1 when out of memory.
 */
int srv_json_transform_fields(json_t *e, const exp_params *p, int t);

/**
 * The request's parameters of mask (SRV_P bits) with their values, defaults
 * filled in: {"eps": [1, 5, 10], "quality": 75, "seed": 1, ...}. New
 * reference, NULL when out of memory.
 */
json_t *srv_json_params(const srv_query *q, unsigned mask);

/**
 * Sets o's "provenance": {"advjpg_version", "model", "weights_sha256",
 * "parameters"} (parameters is stolen; the model's name and hash are c's).
 * 0, or -1 when out of memory (parameters released).
 */
int srv_json_put_provenance(json_t *o, const srv_json_ctx *c, json_t *parameters);

#endif
