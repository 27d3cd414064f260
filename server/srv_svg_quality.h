/*
 * srv_svg_quality.h - a job's quality curve (GET /jobs/{id}/quality.svg):
 * top-1 accuracy (with labels) and mean top-label probability against the
 * JPEG quality, the curve Kurakin et al. (2016) report. SVG 1.1 as the
 * other figures (srv_svg.h): well-formed, styles inline, text escaped.
 *
 *   Two panels, quality 0..100 across, 0..1 up. One line (<path
 *   class="curve">, a dot per quality, qualities in ascending order) per
 *   transform kind that depends on the quality: JPG(x), and per eps
 *   JPG(Adv_e(x)) and JPGnoise(Adv_e(x)) (colour: the eps; dashes: the
 *   kind). x and each Adv_e(x) do not depend on the quality: they are
 *   dotted horizontal references (<line class="ref">). An adaptive attack's
 *   twin (experiment.h) has the same lines again, paler, after them, named
 *   "JPG(Adv5(x)) PGD-10". Without labels the
 *   top-1 panel says so; without rows both panels say there is no data yet.
 */
#ifndef SRV_SVG_QUALITY_H
#define SRV_SVG_QUALITY_H

#include <stddef.h>

#include "experiment.h"
#include "srv_rows.h"

/**
 * The quality figure of rows (transforms of p) with a caption line.
 * *out is new (free()), *len its length. ADJ_OK or ADJ_ERR_NOMEM.
 */
int srv_svg_quality(const srv_rows *rows, const exp_params *p, int has_truth, const char *caption,
                    char **out, size_t *len);

#endif
