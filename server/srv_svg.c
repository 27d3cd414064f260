#include "srv_svg.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "status.h"

void srv_svg_escape(ut_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': ut_buf_add(b, "&amp;", 5); break;
        case '<': ut_buf_add(b, "&lt;", 4); break;
        case '>': ut_buf_add(b, "&gt;", 4); break;
        case '"': ut_buf_add(b, "&quot;", 6); break;
        case '\'': ut_buf_add(b, "&apos;", 6); break;
        default:
            /* XML 1.0 allows no other control characters than TAB, LF, CR */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
                ut_buf_add(b, "?", 1);
            else
                ut_buf_add(b, s, 1);
        }
    }
}

void srv_svg_open(ut_buf *b, int w, int h, const char *title, const char *caption)
{
    ut_buf_printf(b,
                   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
                   "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, "
                   "Arial, sans-serif\" font-size=\"12\">\n<title>",
                   w, h, w, h);
    srv_svg_escape(b, title);
    ut_buf_printf(b, "</title>\n<desc>");
    srv_svg_escape(b, caption);
    ut_buf_printf(b,
                   "</desc>\n<style>\n"
                   ".axis{stroke:#333;stroke-width:1;fill:none}\n"
                   ".grid{stroke:#ddd;stroke-width:1}\n"
                   ".box{fill:#cfe0f5;stroke:#1f4e8c;stroke-width:1.2}\n"
                   ".median{stroke:#c0392b;stroke-width:2}\n"
                   ".whisker{stroke:#1f4e8c;stroke-width:1.2}\n"
                   ".mean{fill:#2e8b57;stroke:#fff;stroke-width:.8}\n"
                   ".outliers circle{fill:none;stroke:#555;stroke-width:.8}\n"
                   ".frame{fill:#fbfbfb;stroke:#333;stroke-width:1}\n"
                   ".diagonal{stroke:#c0392b;stroke-width:1;stroke-dasharray:4 3}\n"
                   ".points{fill:none;stroke:#1f4e8c;stroke-opacity:.5;stroke-width:3;"
                   "stroke-linecap:round}\n"
                   ".small{font-size:11px;fill:#444}\n"
                   "</style>\n"
                   "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n"
                   "<text x=\"%d\" y=\"22\" font-size=\"15\" font-weight=\"bold\">",
                   16);
    srv_svg_escape(b, title);
    ut_buf_printf(b, "</text>\n<text class=\"small\" x=\"16\" y=\"40\">");
    srv_svg_escape(b, caption);
    ut_buf_printf(b, "</text>\n");
}

int srv_svg_close(ut_buf *b, char **out, size_t *len)
{
    ut_buf_printf(b, "</svg>\n");
    if (b->failed) {
        ut_buf_free(b);
        return ADJ_ERR_NOMEM;
    }
    *out = b->s;
    *len = b->len;
    return ADJ_OK;
}

/* ---------------------------------------------------------------- Figure 3 */

enum { F3_LEFT = 64, F3_TOP = 60, F3_PLOT = 360, F3_COL = 78, F3_BOTTOM = 170, F3_RIGHT = 24 };

/* A probability closer to 0 or 1 than this is drawn at this distance (float's resolution). */
#define F3_P_MIN 1e-8

/* The names of srv_svg_axis, in order (exp_param.c's "axis" choices). */
static const char *const AXIS_NAMES[] = {"linear", "log1mp", "logit"};

srv_svg_axis srv_svg_axis_of(const char *s)
{
    for (int a = 0; a < (int)(sizeof AXIS_NAMES / sizeof AXIS_NAMES[0]); a++)
        if (s && strcmp(s, AXIS_NAMES[a]) == 0)
            return (srv_svg_axis)a;
    return SRV_AXIS_LINEAR;
}

/* Figure 3's vertical scale: the axis and the range of its coordinate. */
typedef struct {
    srv_svg_axis axis;
    double lo, hi;
} f3_scale;

/* The plotted coordinate of p: p, -log10(1 - p), or logit p (all increasing in p). */
static double f3_coord(srv_svg_axis a, double p)
{
    const double q = 1 - p < F3_P_MIN ? F3_P_MIN : 1 - p;
    if (a == SRV_AXIS_LOG1MP)
        return -log10(q);
    if (a == SRV_AXIS_LOGIT)
        return log((p < F3_P_MIN ? F3_P_MIN : p) / q);
    return p;
}

static double f3_y(const f3_scale *sc, double c)
{
    return F3_TOP + F3_PLOT * (1.0 - (c - sc->lo) / (sc->hi - sc->lo));
}

/* The range: 0..1 for p, else the data's, out to whole units (decades, logits). */
static f3_scale f3_scale_of(const srv_rows *r, srv_svg_axis a)
{
    f3_scale sc = {a, 0, 1};
    if (a == SRV_AXIS_LINEAR)
        return sc;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < r->n; i++)
        for (int t = 0; t < r->n_transforms && r->label_x[i] >= 0; t++) {
            double c = f3_coord(a, r->prob[i * (size_t)r->n_transforms + (size_t)t]);
            lo = c < lo ? c : lo;
            hi = c > hi ? c : hi;
        }
    if (lo > hi)
        lo = a == SRV_AXIS_LOG1MP ? 0 : -1, hi = lo + 2;
    sc.lo = floor(lo);
    sc.hi = ceil(hi) > sc.lo ? ceil(hi) : sc.lo + 1;
    return sc;
}

/* The axis: ticks, grid, labels and its title. */
static void f3_axis(ut_buf *b, const f3_scale *sc, int x0, int x1)
{
    static const char *const titles[] = {"p(l_x | f(x))", "1 - p(l_x | f(x)), log scale",
                                         "logit p(l_x | f(x))"};
    const double span = sc->hi - sc->lo;
    const double step = sc->axis == SRV_AXIS_LINEAR ? 0.1 : ceil(span / 12);
    for (int k = 0; sc->lo + k * step <= sc->hi + 1e-9; k++) {
        const double c = sc->lo + k * step, y = f3_y(sc, c);
        const int label = sc->axis != SRV_AXIS_LINEAR || k % 2 == 0;
        ut_buf_printf(b, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n"
                         "<line class=\"axis\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n",
                      x0, y, x1, y, x0 - (label ? 6 : 3), y, x0, y);
        if (!label)
            continue;
        ut_buf_printf(b, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", x0 - 9,
                      y + 4);
        if (sc->axis == SRV_AXIS_LOG1MP)
            ut_buf_printf(b, c == 0 ? "1" : "1e-%.0f", c);
        else
            ut_buf_printf(b, sc->axis == SRV_AXIS_LINEAR ? "%.1f" : "%.0f", c);
        ut_buf_printf(b, "</text>\n");
    }
    ut_buf_printf(b, "<line class=\"axis\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", x0,
                  f3_y(sc, sc->lo), x0, f3_y(sc, sc->hi));
    ut_buf_printf(b, "<line class=\"axis\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", x0,
                  f3_y(sc, sc->lo), x1, f3_y(sc, sc->lo));
    ut_buf_printf(b, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\" "
                     "data-axis=\"%s\">%s</text>\n",
                  F3_TOP + F3_PLOT / 2.0, AXIS_NAMES[sc->axis], titles[sc->axis]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One transform's box at cx: whiskers and caps, box, median, mean, outliers of v (k, sorted,
 * in the scale's coordinate). */
static void f3_box(ut_buf *b, const f3_scale *sc, const char *name, double cx,
                   const stats_box *sp, const double *v, size_t k)
{
    const stats_box s = *sp;
    const double hw = F3_COL * 0.28;
    ut_buf_printf(b, "<g>\n<title>");
    srv_svg_escape(b, name);
    ut_buf_printf(b,
                  " (%s): median %.3f, mean %.3f, quartiles %.3f..%.3f, whiskers %.3f..%.3f, "
                  "%zu outliers</title>\n",
                  AXIS_NAMES[sc->axis], s.median, s.mean, s.q1, s.q3, s.whisker_low,
                  s.whisker_high, s.n_low + s.n_high);
    /* whiskers and caps */
    ut_buf_printf(b,
                  "<line class=\"whisker\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n"
                  "<line class=\"whisker\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n"
                  "<line class=\"whisker\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n"
                  "<line class=\"whisker\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n",
                  cx, f3_y(sc, s.whisker_low), cx, f3_y(sc, s.q1), cx, f3_y(sc, s.q3), cx,
                  f3_y(sc, s.whisker_high), cx - hw / 2, f3_y(sc, s.whisker_low), cx + hw / 2,
                  f3_y(sc, s.whisker_low), cx - hw / 2, f3_y(sc, s.whisker_high), cx + hw / 2,
                  f3_y(sc, s.whisker_high));
    double bh = f3_y(sc, s.q1) - f3_y(sc, s.q3);
    ut_buf_printf(b,
                  "<rect class=\"box\" x=\"%.1f\" y=\"%.2f\" width=\"%.1f\" "
                  "height=\"%.2f\"/>\n",
                  cx - hw, f3_y(sc, s.q3), 2 * hw, bh < 0.5 ? 0.5 : bh);
    ut_buf_printf(b,
                  "<line class=\"median\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n",
                  cx - hw, f3_y(sc, s.median), cx + hw, f3_y(sc, s.median));
    ut_buf_printf(b, "<path class=\"mean\" d=\"M%.1f %.2fl5 5l-5 5l-5 -5z\"/>\n", cx,
                  f3_y(sc, s.mean) - 5);
    /* outliers: one circle per half pixel of height */
    ut_buf_printf(b, "<g class=\"outliers\">");
    long last = -1;
    for (size_t i = 0; i < k; i++) {
        if (!stats_is_outlier(&s, v[i]))
            continue;
        long q = lround(f3_y(sc, v[i]) * 2);
        if (q == last)
            continue;
        last = q;
        ut_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>", cx, q / 2.0);
    }
    ut_buf_printf(b, "</g>\n</g>\n");
}

int srv_svg_figure3(const srv_rows *r, const exp_params *p, srv_svg_axis axis,
                    const char *caption, char **out, size_t *len)
{
    const int T = exp_n_transforms(p);
    const int W = F3_LEFT + T * F3_COL + F3_RIGHT, H = F3_TOP + F3_PLOT + F3_BOTTOM;
    const size_t m = r->n - r->skipped;
    const f3_scale sc = f3_scale_of(r, axis);
    ut_buf b = {0};
    srv_svg_open(&b, W, H, "Figure 3: top-label probability p(l_x | f(x)) per transform", caption);
    const int x0 = F3_LEFT, x1 = F3_LEFT + T * F3_COL;
    f3_axis(&b, &sc, x0, x1);

    double *v = m ? malloc(m * sizeof *v) : NULL;
    if (m && !v) {
        ut_buf_free(&b);
        return ADJ_ERR_NOMEM;
    }
    for (int t = 0; t < T; t++) {
        const double cx = F3_LEFT + F3_COL * (t + 0.5);
        char name[64];
        exp_transform_name(p, t, name, sizeof name);
        ut_buf_printf(&b,
                       "<text transform=\"translate(%.1f %.1f) rotate(-40)\" "
                       "text-anchor=\"end\">",
                       cx + 4, f3_y(&sc, sc.lo) + 16);
        srv_svg_escape(&b, name);
        ut_buf_printf(&b, "</text>\n");
        if (!m)
            continue;
        size_t k = 0;
        for (size_t i = 0; i < r->n; i++)
            if (r->label_x[i] >= 0)
                v[k++] = f3_coord(axis, r->prob[i * (size_t)r->n_transforms + (size_t)t]);
        qsort(v, k, sizeof *v, cmp_double);
        stats_box s;
        if (stats_box_sorted(v, k, &s))
            continue;
        f3_box(&b, &sc, name, cx, &s, v, k);
    }
    free(v);
    if (!m)
        ut_buf_printf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888\">"
                           "no finished images yet</text>\n",
                       (x0 + x1) / 2, F3_TOP + F3_PLOT / 2.0);
    /* legend */
    const int ly = H - 22;
    ut_buf_printf(&b,
                   "<g class=\"small\">"
                   "<rect class=\"box legend\" x=\"16\" y=\"%d\" width=\"14\" height=\"10\"/>"
                   "<text x=\"34\" y=\"%d\">quartiles (linear interpolation, type 7)</text>"
                   "<line class=\"median\" x1=\"270\" y1=\"%d\" x2=\"286\" y2=\"%d\"/>"
                   "<text x=\"290\" y=\"%d\">median</text>"
                   "<path class=\"mean\" d=\"M350 %dl5 5l-5 5l-5 -5z\"/>"
                   "<text x=\"360\" y=\"%d\">mean</text>"
                   "<text x=\"400\" y=\"%d\">whiskers: last values within 1.5 IQR; "
                   "circles: outliers%s</text></g>\n",
                   ly - 9, ly, ly - 4, ly - 4, ly, ly - 10, ly, ly,
                   axis == SRV_AXIS_LINEAR ? "" : " (all of the box in the axis' coordinate)");
    return srv_svg_close(&b, out, len);
}

/* ---------------------------------------------------------------- Figure 4 */

enum { F4_LEFT = 70, F4_TOP = 96, F4_PANEL = 220, F4_GAP = 70, F4_ROW_GAP = 76, F4_BOTTOM = 60,
       F4_BINS = 20 };

/* The paper's 2x3 layout: panel k's column and row (the bottom middle holds the legend). */
static const int F4_AT[5][2] = {{0, 0}, {1, 0}, {2, 0}, {0, 1}, {2, 1}};

/* A Figure 4 panel's ticks and their values (0, 0.5, 1) at px, py. */
static void f4_ticks(ut_buf *b, double px, double py)
{
    for (int t = 0; t <= 4; t++) {
        double f = t / 4.0;
        double tx = px + f * F4_PANEL, ty = py + F4_PANEL * (1 - f);
        ut_buf_printf(b,
                      "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                      "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                      tx, py + F4_PANEL, tx, py + F4_PANEL + 4, px - 4, ty, px, ty);
        if (t % 2 == 0)
            ut_buf_printf(b,
                          "<text class=\"small\" x=\"%.1f\" y=\"%.1f\" "
                          "text-anchor=\"middle\">%.1f</text>"
                          "<text class=\"small\" x=\"%.1f\" y=\"%.1f\" "
                          "text-anchor=\"end\">%.1f</text>\n",
                          tx, py + F4_PANEL + 16, f, px - 7, ty + 4, f);
    }
}

/* A count's shade: light to dark blue on a log scale of 1..max. */
static void f4_shade(size_t n, size_t max, char out[8])
{
    const double t = max > 1 ? log((double)n) / log((double)max) : 1;
    const int lo[3] = {222, 235, 247}, hi[3] = {8, 48, 107};
    int c[3];
    for (int i = 0; i < 3; i++)
        c[i] = (int)lround(lo[i] + t * (hi[i] - lo[i]));
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* A panel's images as a 2-D histogram: F4_BINS x F4_BINS cells shaded by count. */
static void f4_density(ut_buf *b, const srv_rows *r, int f1, int f2, double px, double py,
                       size_t *max_out)
{
    size_t count[F4_BINS][F4_BINS] = {{0}};
    size_t max = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->label_x[i] < 0)
            continue;
        const float *pr = r->prob + i * (size_t)r->n_transforms;
        int bx = (int)(pr[f1] * F4_BINS), by = (int)(pr[f2] * F4_BINS);
        bx = bx < 0 ? 0 : bx >= F4_BINS ? F4_BINS - 1 : bx;
        by = by < 0 ? 0 : by >= F4_BINS ? F4_BINS - 1 : by;
        if (++count[bx][by] > max)
            max = count[bx][by];
    }
    const double cell = (double)F4_PANEL / F4_BINS;
    ut_buf_printf(b, "<g class=\"density\">\n");
    for (int bx = 0; bx < F4_BINS; bx++)
        for (int by = 0; by < F4_BINS; by++) {
            if (!count[bx][by])
                continue;
            char fill[8];
            f4_shade(count[bx][by], max, fill);
            ut_buf_printf(b,
                          "<rect class=\"cell\" data-count=\"%zu\" x=\"%.1f\" y=\"%.1f\" "
                          "width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%zu images</title>"
                          "</rect>\n",
                          count[bx][by], px + bx * cell, py + F4_PANEL - (by + 1) * cell, cell,
                          cell, fill, count[bx][by]);
        }
    ut_buf_printf(b, "</g>\n");
    *max_out = max > *max_out ? max : *max_out;
}

/* A panel's images as dots (up to SRV_SVG_DENSITY_FROM of them). */
static void f4_points(ut_buf *b, const srv_rows *r, int f1, int f2, double px, double py)
{
    ut_buf_printf(b, "<path class=\"points\" style=\"stroke-width:6\" d=\"");
    int any = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->label_x[i] < 0)
            continue;
        const float *pr = r->prob + i * (size_t)r->n_transforms;
        ut_buf_printf(b, "M%.1f %.1fh0", px + pr[f1] * F4_PANEL, py + F4_PANEL * (1 - pr[f2]));
        any = 1;
    }
    if (!any)
        ut_buf_add(b, "M0 0", 4); /* a path needs data; this draws nothing */
    ut_buf_printf(b, "\"/>\n");
}

/* The density's count legend in the bottom middle cell of the grid. */
static void f4_legend(ut_buf *b, double x, double y, size_t max)
{
    ut_buf_printf(b, "<g class=\"legend small\">\n<text x=\"%.1f\" y=\"%.1f\">images per cell "
                     "(log scale)</text>\n<text x=\"%.1f\" y=\"%.1f\">a cell: 1/%d of each "
                     "axis</text>\n",
                  x, y - 14, x, y, F4_BINS);
    for (int s = 0; s < 6; s++) {
        const size_t n = (size_t)lround(pow((double)max, s / 5.0));
        char fill[8];
        f4_shade(n, max, fill);
        ut_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"24\" height=\"14\" fill=\"%s\" "
                         "stroke=\"#999\" stroke-width=\".5\"/><text x=\"%.1f\" y=\"%.1f\" "
                         "text-anchor=\"middle\">%zu</text>\n",
                      x + s * 32, y + 10, fill, x + s * 32 + 12, y + 38, n);
    }
    ut_buf_printf(b, "</g>\n");
}

int srv_svg_figure4(const srv_rows *r, const exp_params *p, int eps, const char *caption,
                    char **out, size_t *len)
{
    const int q = p->quality;
    const int x = exp_transform_find(p, EXP_T_X, 0, q);
    const int jx = exp_transform_find(p, EXP_T_JPG_X, 0, q);
    const int adv = exp_transform_find(p, EXP_T_ADV, eps, q),
              jadv = exp_transform_find(p, EXP_T_JPG_ADV, eps, q),
              nadv = exp_transform_find(p, EXP_T_NOISE_ADV, eps, q);
    if (x < 0 || jx < 0 || adv < 0 || jadv < 0 || nadv < 0)
        return ADJ_ERR_ARG;
    /* the paper's order: the top row from x, then (x, Adv), (Adv, JPG(Adv)) */
    const int pairs[5][2] = {{x, jx}, {x, jadv}, {x, nadv}, {x, adv}, {adv, jadv}};
    const int W = F4_LEFT + 3 * F4_PANEL + 2 * F4_GAP + 30,
              H = F4_TOP + 2 * F4_PANEL + F4_ROW_GAP + F4_BOTTOM;
    const size_t m = r->n - r->skipped;
    const int density = m > SRV_SVG_DENSITY_FROM;
    char title[128];
    snprintf(title, sizeof title,
             "Figure 4: p(l_x | f1(x)) against p(l_x | f2(x)) per image, eps = %d", eps);
    ut_buf b = {0};
    srv_svg_open(&b, W, H, title, caption);
    if (density)
        ut_buf_printf(&b, "<text class=\"small\" x=\"16\" y=\"58\">%zu images, counted in "
                          "%dx%d cells</text>\n", m, F4_BINS, F4_BINS);
    else if (m == 0)
        ut_buf_printf(&b, "<text class=\"small\" x=\"16\" y=\"58\">no finished images "
                           "yet</text>\n");
    size_t max = 0;
    for (int k = 0; k < 5; k++) {
        const int f1 = pairs[k][0], f2 = pairs[k][1];
        const double px = F4_LEFT + F4_AT[k][0] * (F4_PANEL + F4_GAP),
                     py = F4_TOP + F4_AT[k][1] * (F4_PANEL + F4_ROW_GAP);
        char n1[64], n2[64];
        exp_transform_name(p, f1, n1, sizeof n1);
        exp_transform_name(p, f2, n2, sizeof n2);
        ut_buf_printf(&b, "<g class=\"panel\">\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                           "font-weight=\"bold\">(",
                       px + F4_PANEL / 2.0, py - 10);
        srv_svg_escape(&b, n1);
        ut_buf_add(&b, ", ", 2);
        srv_svg_escape(&b, n2);
        ut_buf_printf(&b, ")</text>\n");
        ut_buf_printf(&b,
                       "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\"/>\n",
                       px, py, F4_PANEL, F4_PANEL);
        f4_ticks(&b, px, py);
        ut_buf_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">p(l_x | ",
                       px + F4_PANEL / 2.0, py + F4_PANEL + 36);
        srv_svg_escape(&b, n1);
        ut_buf_printf(&b, ")</text>\n<text transform=\"translate(%.1f %.1f) rotate(-90)\" "
                           "text-anchor=\"middle\">p(l_x | ",
                       px - 34, py + F4_PANEL / 2.0);
        srv_svg_escape(&b, n2);
        ut_buf_printf(&b, ")</text>\n");
        if (density)
            f4_density(&b, r, f1, f2, px, py, &max);
        else
            f4_points(&b, r, f1, f2, px, py);
        ut_buf_printf(&b,
                       "<line class=\"diagonal\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                       "y2=\"%.1f\"/>\n</g>\n",
                       px, py + F4_PANEL, px + F4_PANEL, py);
    }
    if (density)
        f4_legend(&b, F4_LEFT + F4_PANEL + F4_GAP, F4_TOP + F4_PANEL + F4_ROW_GAP + 60, max);
    return srv_svg_close(&b, out, len);
}
