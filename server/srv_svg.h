/*
 * srv_svg.h - the paper's Figures 3 and 4 drawn from a job's rows, as
 * self-contained SVG 1.1 (well-formed XML, styles inline, no scripts, no
 * external references), readable in any browser or image viewer.
 *
 *   Figure 3: one box plot per transform, in pipeline order, of the
 *   top-label probabilities p(l_x | f(x)) on a 0..1 axis: the box spans
 *   q1..q3 (<rect class="box">, one per transform), a line at the median,
 *   a diamond at the mean, whiskers to the last values within 1.5 IQR, and
 *   the outliers as small circles (circles that would fall on the same
 *   half pixel are drawn once). Quartiles as common/stats.h defines them.
 *
 *   Figure 4: five scatter plots of (p(l_x | f1(x)), p(l_x | f2(x))), one
 *   point per image, for the smallest eps e: (x, JPG(x)), (x, JPG(Adv_e(x))),
 *   (x, JPGnoise(Adv_e(x))), (x, Adv_e(x)), (Adv_e(x), JPG(Adv_e(x))), each
 *   with the diagonal, both axes 0..1 and labelled. Points are round dots
 *   of one path per panel with 1-decimal coordinates; over
 *   SRV_SVG_MAX_POINTS images every k-th image is drawn and the figure says
 *   so, which keeps 50,000 images under 1 MB.
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

/** Figure 4 draws at most this many points per panel. */
#define SRV_SVG_MAX_POINTS 10000

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
 * Figure 3 of rows (transforms of p) with a caption line under the title.
 * *out is new (free()), *len its length. ADJ_OK or ADJ_ERR_NOMEM.
 */
int srv_svg_figure3(const srv_rows *rows, const exp_params *p, const char *caption, char **out,
                    size_t *len);

/** Figure 4, as srv_svg_figure3. */
int srv_svg_figure4(const srv_rows *rows, const exp_params *p, const char *caption, char **out,
                    size_t *len);

#endif
