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

static double f3_y(double p)
{
    return F3_TOP + F3_PLOT * (1.0 - p);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One transform's box at cx: whiskers and caps, box, median, mean, outliers of v (k, sorted). */
static void f3_box(ut_buf *b, const char *name, double cx, const stats_box *sp, const double *v,
                  size_t k)
{
    const stats_box s = *sp;
    const double hw = F3_COL * 0.28;
    ut_buf_printf(b, "<g>\n<title>");
    srv_svg_escape(b, name);
    ut_buf_printf(b,
                  ": median %.3f, mean %.3f, quartiles %.3f..%.3f, whiskers %.3f..%.3f, "
                  "%zu outliers</title>\n",
                  s.median, s.mean, s.q1, s.q3, s.whisker_low, s.whisker_high,
                  s.n_low + s.n_high);
    /* whiskers and caps */
    ut_buf_printf(b,
                  "<line class=\"whisker\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n"
                  "<line class=\"whisker\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n"
                  "<line class=\"whisker\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n"
                  "<line class=\"whisker\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n",
                  cx, f3_y(s.whisker_low), cx, f3_y(s.q1), cx, f3_y(s.q3), cx,
                  f3_y(s.whisker_high), cx - hw / 2, f3_y(s.whisker_low), cx + hw / 2,
                  f3_y(s.whisker_low), cx - hw / 2, f3_y(s.whisker_high), cx + hw / 2,
                  f3_y(s.whisker_high));
    double bh = f3_y(s.q1) - f3_y(s.q3);
    ut_buf_printf(b,
                  "<rect class=\"box\" x=\"%.1f\" y=\"%.2f\" width=\"%.1f\" "
                  "height=\"%.2f\"/>\n",
                  cx - hw, f3_y(s.q3), 2 * hw, bh < 0.5 ? 0.5 : bh);
    ut_buf_printf(b,
                  "<line class=\"median\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n",
                  cx - hw, f3_y(s.median), cx + hw, f3_y(s.median));
    double my = f3_y(s.mean);
    ut_buf_printf(b,
                  "<path class=\"mean\" d=\"M%.1f %.2fl5 5l-5 5l-5 -5z\"/>\n",
                  cx, my - 5);
    /* outliers: one circle per half pixel of height */
    ut_buf_printf(b, "<g class=\"outliers\">");
    long last = -1;
    for (size_t i = 0; i < k; i++) {
        if (!stats_is_outlier(&s, v[i]))
            continue;
        long q = lround(f3_y(v[i]) * 2);
        if (q == last)
            continue;
        last = q;
        ut_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>", cx, q / 2.0);
    }
    ut_buf_printf(b, "</g>\n</g>\n");
}

int srv_svg_figure3(const srv_rows *r, const exp_params *p, const char *caption, char **out,
                    size_t *len)
{
    const int T = exp_n_transforms(p);
    const int W = F3_LEFT + T * F3_COL + F3_RIGHT, H = F3_TOP + F3_PLOT + F3_BOTTOM;
    const size_t m = r->n - r->skipped;
    ut_buf b = {0};
    srv_svg_open(&b, W, H, "Figure 3: top-label probability p(l_x | f(x)) per transform", caption);

    /* axis, ticks, grid */
    const int x0 = F3_LEFT, x1 = F3_LEFT + T * F3_COL;
    for (int k = 0; k <= 10; k++) {
        double y = f3_y(k / 10.0);
        ut_buf_printf(&b, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n",
                       x0, y, x1, y);
        ut_buf_printf(&b, "<line class=\"axis\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n",
                       x0 - (k % 2 ? 3 : 6), y, x0, y);
        if (k % 2 == 0)
            ut_buf_printf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n",
                           x0 - 9, y + 4, k / 10.0);
    }
    ut_buf_printf(&b, "<line class=\"axis\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", x0,
                   f3_y(0), x0, f3_y(1));
    ut_buf_printf(&b, "<line class=\"axis\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", x0,
                   f3_y(0), x1, f3_y(0));
    ut_buf_printf(&b,
                   "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">"
                   "p(l_x | f(x))</text>\n",
                   f3_y(0.5));

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
                       cx + 4, f3_y(0) + 16);
        srv_svg_escape(&b, name);
        ut_buf_printf(&b, "</text>\n");
        if (!m)
            continue;
        size_t k = 0;
        for (size_t i = 0; i < r->n; i++)
            if (r->label_x[i] >= 0)
                v[k++] = r->prob[i * (size_t)r->n_transforms + (size_t)t];
        qsort(v, k, sizeof *v, cmp_double);
        stats_box s;
        if (stats_box_sorted(v, k, &s))
            continue;
        f3_box(&b, name, cx, &s, v, k);
    }
    free(v);
    if (!m)
        ut_buf_printf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888\">"
                           "no finished images yet</text>\n",
                       (x0 + x1) / 2, f3_y(0.5));
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
                   "circles: outliers</text></g>\n",
                   ly - 9, ly, ly - 4, ly - 4, ly, ly - 10, ly, ly);
    return srv_svg_close(&b, out, len);
}

/* ---------------------------------------------------------------- Figure 4 */

enum { F4_LEFT = 70, F4_TOP = 96, F4_PANEL = 220, F4_GAP = 70, F4_BOTTOM = 76 };

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

int srv_svg_figure4(const srv_rows *r, const exp_params *p, const char *caption, char **out,
                    size_t *len)
{
    /* the smallest eps */
    int e = 0;
    for (int i = 1; i < p->n_eps; i++)
        if (p->eps[i] < p->eps[e])
            e = i;
    const int adv = 2 + 3 * e, jadv = adv + 1, nadv = adv + 2;
    const int pairs[5][2] = {{0, 1}, {0, jadv}, {0, nadv}, {0, adv}, {adv, jadv}};
    const int W = F4_LEFT + 5 * F4_PANEL + 4 * F4_GAP + 30, H = F4_TOP + F4_PANEL + F4_BOTTOM;
    const size_t m = r->n - r->skipped;
    const size_t stride = m > SRV_SVG_MAX_POINTS ? (m + SRV_SVG_MAX_POINTS - 1) / SRV_SVG_MAX_POINTS
                                                 : 1;
    char title[128];
    snprintf(title, sizeof title,
             "Figure 4: p(l_x | f1(x)) against p(l_x | f2(x)) per image, eps = %d", p->eps[e]);
    ut_buf b = {0};
    srv_svg_open(&b, W, H, title, caption);
    if (stride > 1)
        ut_buf_printf(&b,
                       "<text class=\"small\" x=\"16\" y=\"58\">%zu of the %zu images shown "
                       "(one in %zu, in file order)</text>\n",
                       (m + stride - 1) / stride, m, stride);
    else if (m == 0)
        ut_buf_printf(&b, "<text class=\"small\" x=\"16\" y=\"58\">no finished images "
                           "yet</text>\n");
    for (int k = 0; k < 5; k++) {
        const int f1 = pairs[k][0], f2 = pairs[k][1];
        const double px = F4_LEFT + k * (F4_PANEL + F4_GAP), py = F4_TOP;
        char n1[64], n2[64];
        exp_transform_name(p, f1, n1, sizeof n1);
        exp_transform_name(p, f2, n2, sizeof n2);
        ut_buf_printf(&b, "<g>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
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
        /* dots: bigger when there are few of them */
        const size_t shown = (m + stride - 1) / stride;
        ut_buf_printf(&b, ")</text>\n<path class=\"points\" style=\"stroke-width:%.1f\" d=\"",
                       shown <= 200 ? 6.0 : shown <= 2000 ? 4.5 : 3.0);
        size_t seen = 0;
        int any = 0;
        for (size_t i = 0; i < r->n; i++) {
            if (r->label_x[i] < 0)
                continue;
            if (seen++ % stride)
                continue;
            const float *pr = r->prob + i * (size_t)r->n_transforms;
            ut_buf_printf(&b, "M%.1f %.1fh0", px + pr[f1] * F4_PANEL,
                           py + F4_PANEL * (1 - pr[f2]));
            any = 1;
        }
        if (!any)
            ut_buf_add(&b, "M0 0", 4); /* a path needs data; this draws nothing */
        ut_buf_printf(&b,
                       "\"/>\n<line class=\"diagonal\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                       "y2=\"%.1f\"/>\n</g>\n",
                       px, py + F4_PANEL, px + F4_PANEL, py);
    }
    return srv_svg_close(&b, out, len);
}
