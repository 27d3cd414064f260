/*
 * srv_svg.h - the paper's Figures 3 and 4 drawn from a job's rows, as
 * self-contained SVG 1.1 (well-formed XML, styles inline, no scripts, no
 * external references), readable in any browser or image viewer.
 *
 *   Figure 3: one box plot per transform, in pipeline order, of the
 *   top-label probabilities p(l_x | f(x)) on a 0..1 axis, or (for confident
 *   models, whose boxes collapse at 1) of -log10(1 - p) labelled as 1 - p,
 *   or of logit p, each from the data's range out to whole units, the box
 *   statistics computed in that coordinate (p within 1e-8 of 0 or 1 is
 *   drawn at 1e-8): the box spans
 *   q1..q3 (<rect class="box">, one per transform), a line at the median,
 *   a diamond at the mean, whiskers to the last values within 1.5 IQR, and
 *   the outliers as small circles (circles that would fall on the same
 *   half pixel are drawn once). Quartiles as common/stats.h defines them.
 *
 *   Figure 4: five scatter plots of (p(l_x | f1(x)), p(l_x | f2(x))), one
 *   point per image, for an eps e of the job, laid out as the paper's 2x3:
 *   the top row (x, JPG(x)), (x, JPG(Adv_e(x))), (x, JPGnoise(Adv_e(x))),
 *   the bottom row (x, Adv_e(x)) on the left and (Adv_e(x), JPG(Adv_e(x)))
 *   on the right, each with the diagonal, both axes 0..1 and labelled. Up
 *   to SRV_SVG_DENSITY_FROM images, points are round dots of one path per
 *   panel with 1-decimal coordinates; above, each panel is a 2-D histogram
 *   of 20x20 cells (<rect class="cell" data-count="N">, empty cells left
 *   out; a probability of 1 falls in the last cell) shaded by count on a
 *   log scale, with the count legend in the bottom middle.
 *
 * Text (transform names, the caption) is XML-escaped. Images that could not
 * be read (skipped rows) are left out. Without any row the figures show
 * their axes and say that there is no data yet.
 */
#ifndef SRV_SVG_H
#define SRV_SVG_H

#include <stddef.h>

#include "experiment.h"
#include "srv_rows.h"

/** Over this many images Figure 4 counts them in cells (a 2-D histogram) instead of dots. */
#define SRV_SVG_DENSITY_FROM 200

/** Figure 3's probability axis: p, 1 - p on a log scale, or logit p (?axis=). */
typedef enum { SRV_AXIS_LINEAR, SRV_AXIS_LOG1MP, SRV_AXIS_LOGIT } srv_svg_axis;

/** The axis named s ("linear", "log1mp", "logit"); SRV_AXIS_LINEAR for anything else. */
srv_svg_axis srv_svg_axis_of(const char *s);

/** Appends s with & < > " ' escaped as XML entities. */
void srv_svg_escape(ut_buf *b, const char *s);

/**
 * Starts a w x h figure in b: the XML header, the shared styles (.small,
 * .frame, ...), a white background, the title and the caption line under it.
 */
void srv_svg_open(ut_buf *b, int w, int h, const char *title, const char *caption);

/** Ends the figure: *out is b's text (new, free()), or ADJ_ERR_NOMEM (b freed). */
int srv_svg_close(ut_buf *b, char **out, size_t *len);

/**
 * Figure 3 of rows (transforms of p) on the given axis, with a caption line
 * under the title. *out is new (free()), *len its length. ADJ_OK or
 * ADJ_ERR_NOMEM.
 */
int srv_svg_figure3(const srv_rows *rows, const exp_params *p, srv_svg_axis axis,
                    const char *caption, char **out, size_t *len);

/** Figure 4 for eps (one of p's), as srv_svg_figure3; ADJ_ERR_ARG when p has no such eps. */
int srv_svg_figure4(const srv_rows *rows, const exp_params *p, int eps, const char *caption,
                    char **out, size_t *len);

#endif
