/*
 * synth.h - a procedural, labelled image set: the data the default
 * classifier is trained and validated on.
 *
 * USAGE
 *
 *     // one image of class 3 ("dotted disc"), in memory
 *     img_rgb im;
 *     char err[ADJ_ERRLEN];
 *     if (synth_render(3, 12345, &im, err, sizeof err) == 0) {
 *         ...;                           // im.w x im.h, 112..288 px each side
 *         img_free(&im);
 *     }
 *
 *     // a set on disk: dir/img_000001.jpg ..., dir/labels.txt, dir/classes.txt
 *     if (synth_write_set("data/val", 2000, 2, 1, err, sizeof err))
 *         fprintf(stderr, "advjpg-gen: %s\n", err);
 *
 *     // the same set in memory, without JPEG (e.g. for a trainer)
 *     synth_item *it = malloc(n * sizeof *it);
 *     synth_plan(n, seed, it);            // it[i].cls, it[i].seed, it[i].quality
 *     synth_render(it[i].cls, it[i].seed, &im, err, sizeof err);
 *
 * THE CLASSES
 *
 * 40 object kinds: an outline (disc, ellipse, square, triangle, star, plus,
 * heart, crescent) times a surface (plain, striped, checked, dotted,
 * gridded), class index = outline * 5 + surface, named "striped star" etc.
 * (synth_class_name). Classes share parts: each outline with four other
 * classes, each surface with seven, and colours say nothing about the class,
 * so that telling classes apart takes both the outline and the surface, the
 * way fine-grained ImageNet classes share bodies and fur.
 *
 * WHAT AN IMAGE LOOKS LIKE
 *
 * A scene, like a photograph of a cluttered table:
 *
 *  - background: a linear or radial gradient between two colours, three
 *    octaves of value noise (a 1/f-like spectrum) and, in 25 % of the
 *    images, a faint wallpaper of one of the surface patterns;
 *  - the labelled object: the largest one, radius 20-32 % of the shorter
 *    side s, near the centre (inside the model's crop), at any rotation
 *    (hearts within +-40 degrees of upright), foreshortened by a factor
 *    0.75..1 along one axis (a tilted view), with a random colour of at
 *    least 20-55 luminance levels contrast against the background, a second
 *    pattern colour of 40-80 levels contrast (or, in 25 %, see-through gaps), a linear shading, surface
 *    noise and soft edges (0.6..2 px at the model's scale, like defocus);
 *  - 0..5 distractors of other classes, 30-65 % of its radius, anywhere
 *    (cut by the frame too); with probability 0.3 one of them is drawn in
 *    front of the labelled object across its edge (occlusion);
 *  - clutter: 2..10 dots and strokes (twigs, scratches);
 *  - lighting: a linear illumination ramp, in 40 % of the images a spot
 *    light, a colour cast (white-balance error: per-channel gain 0.8..1.2)
 *    and a gamma 0.8..1.25;
 *  - sensor grain, mostly luminance.
 *
 * Lengths are fractions of s, so a scene looks the same at every size once
 * scaled to the model's input (shorter side 110, centred 96 x 96 crop, the
 * 256/224 proportion of ImageNet's pipelines). Images are 112..288 pixels on
 * each side with aspect ratios w/h from 0.6 to 1.6; sets are written as JPEG
 * at qualities 60..95, like photographs from the web.
 *
 * DETERMINISM
 *
 * An image depends only on (class, seed) and a set only on (n, seed): an
 * internal splitmix64 generator is used, never rand(), and there is no
 * global state, so all functions are thread-safe. Outputs are bit-identical
 * across runs of the same build; other compilers or libm versions may
 * differ in the last bit of a few pixels.
 *
 * LIMITS
 *
 * synth_write_set() writes at most SYNTH_MAX_SET images per call. File names
 * have six digits (more only if n needs them), so that sorting by name is
 * sorting by index.
 */
#ifndef ADJ_SYNTH_H
#define ADJ_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "status.h"

/** Smallest and largest width or height of a rendered image, in pixels. */
#define SYNTH_MIN_SIDE 112
#define SYNTH_MAX_SIDE 288
/** Range of the aspect ratio w / h of a rendered image. */
#define SYNTH_MIN_ASPECT 0.6
#define SYNTH_MAX_ASPECT 1.6
/** Range of the JPEG quality drawn per image by synth_plan(). */
#define SYNTH_MIN_QUALITY 60
#define SYNTH_MAX_QUALITY 95
/** Largest n accepted by synth_plan() and synth_write_set(). */
#define SYNTH_MAX_SET 10000000

/** One entry of a set: what synth_write_set() renders for image i. */
typedef struct {
    int cls;       /**< class index, 0 .. synth_n_classes() - 1 */
    uint64_t seed; /**< seed for synth_render() */
    int quality;   /**< JPEG quality, SYNTH_MIN_QUALITY .. SYNTH_MAX_QUALITY */
} synth_item;

/** Number of classes (40). */
int synth_n_classes(void);

/**
 * Short lower-case name of class c ("plain disc", "dotted heart", ...): a static
 * string (borrowed, never free it). NULL if c is out of range.
 */
const char *synth_class_name(int c);

/**
 * Renders one image of class cls. Deterministic for (cls, seed); the size
 * (SYNTH_MIN_SIDE..SYNTH_MAX_SIDE per side, aspect SYNTH_MIN_ASPECT..
 * SYNTH_MAX_ASPECT) is drawn from the seed too.
 *
 * out: receives a new image on success (free with img_free()); untouched
 * on failure.
 * Returns ADJ_OK, ADJ_ERR_ARG (cls out of range, out NULL) or ADJ_ERR_NOMEM.
 */
int synth_render(int cls, uint64_t seed, img_rgb *out, char *err, size_t errsz);

/**
 * The plan of a set of n images for a seed, the one synth_write_set()
 * follows: classes balanced (each class appears floor(n/K) or
 * floor(n/K) + 1 times, K = synth_n_classes(), the first n % K classes
 * getting the extra one) in a shuffled order, with a render seed and a
 * JPEG quality per image.
 *
 * items: caller-owned array of n entries, written only on success.
 * Returns ADJ_OK or ADJ_ERR_ARG (n < 1 or n > SYNTH_MAX_SET, items NULL).
 */
int synth_plan(int n, uint64_t seed, synth_item *items);

/**
 * Writes a set of n images (synth_plan(n, seed)) into dir, which is
 * created, parents included, if missing:
 *
 *   img_000001.jpg ... img_<n>.jpg   JPEG (img_encode_jpeg) at the
 *                                     planned quality per image
 *   labels.txt    "filename<TAB>class-index\n" per image, sorted by file
 *                 name (only if with_labels)
 *   classes.txt   one class name per line, in index order (only if
 *                 with_labels)
 *
 * Existing files of the same names are overwritten; nothing else in dir is
 * touched. On failure some files may have been written.
 * Returns ADJ_OK, ADJ_ERR_ARG (bad n, dir NULL or empty), ADJ_ERR_IO (the
 * directory cannot be created or a file cannot be written; err names the
 * path and the reason), ADJ_ERR_NOMEM, or an error of img_encode_jpeg().
 */
int synth_write_set(const char *dir, int n, uint64_t seed, int with_labels,
                    char *err, size_t errsz);

#endif
