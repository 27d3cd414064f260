#include "srv_svg_quality.h"

#include <stdlib.h>
#include <string.h>

#include "srv_svg.h"
#include "status.h"

enum { Q_LEFT = 64, Q_TOP = 70, Q_PLOT = 300, Q_GAP = 80, Q_LEGEND = 210, Q_BOTTOM = 60 };

/* Line colours, one per eps (cycled), and JPG(x)'s. */
static const char *const EPS_COLOURS[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                          "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
#define N_COLOURS (sizeof EPS_COLOURS / sizeof EPS_COLOURS[0])

/* The dash pattern of a transform kind ("" solid). */
static const char *dashes(exp_transform_kind k)
{
    return k == EXP_T_NOISE_ADV ? "6 4" : k == EXP_T_X || k == EXP_T_ADV ? "2 3" : "";
}

static const char *colour(int ei)
{
    return ei < 0 ? "#222" : EPS_COLOURS[(size_t)ei % N_COLOURS];
}

/* An adaptive attack's twin (the same attack without adaptation): its eps's colour, paler. */
static const char *opacity(int twin) { return twin ? "0.45" : "1"; }

/* Top-1 (top1) or mean top-label probability of transform t over the rows; -1 when none. */
static double metric(const srv_rows *r, int t, int top1)
{
    size_t n = 0;
    double s = 0;
    const size_t T = (size_t)r->n_transforms;
    for (size_t i = 0; i < r->n; i++) {
        if (r->label_x[i] < 0 || (top1 && r->truth[i] < 0))
            continue;
        n++;
        s += top1 ? (double)(r->label[i * T + (size_t)t] == r->truth[i]) : (double)r->prob[i * T + (size_t)t];
    }
    return n ? s / (double)n : -1;
}

static double px_x(double x0, int q) { return x0 + Q_PLOT * q / 100.0; }
static double px_y(double v) { return Q_TOP + Q_PLOT * (1.0 - v); }

/* A panel's frame, ticks and axis titles. */
static void panel_axes(ut_buf *b, double x0, const char *ytitle)
{
    ut_buf_printf(b, "<rect class=\"frame\" x=\"%.1f\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n", x0,
                  Q_TOP, Q_PLOT, Q_PLOT);
    for (int k = 0; k <= 10; k += 2) {
        ut_buf_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n"
                         "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n"
                         "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n",
                      x0, px_y(k / 10.0), x0 + Q_PLOT, px_y(k / 10.0), x0 - 6, px_y(k / 10.0) + 4,
                      k / 10.0, px_x(x0, 10 * k), Q_TOP + Q_PLOT + 16, 10 * k);
    }
    ut_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">JPEG quality</text>\n"
                     "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-weight=\"bold\">",
                  x0 + Q_PLOT / 2.0, Q_TOP + Q_PLOT + 36, x0 + Q_PLOT / 2.0, Q_TOP - 10);
    srv_svg_escape(b, ytitle);
    ut_buf_printf(b, "</text>\n");
}

/* The qualities' indices in ascending order of quality. */
static void sorted_qualities(const exp_params *p, int *order)
{
    const int nq = exp_n_qualities(p);
    for (int i = 0; i < nq; i++)
        order[i] = i;
    for (int i = 1; i < nq; i++)
        for (int k = i; k > 0 && exp_quality_at(p, order[k]) < exp_quality_at(p, order[k - 1]); k--) {
            int t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
}

/* The quality-free name of a line ("JPG(Adv5(x))", the twin's "JPG(Adv5(x)) PGD-10"): its
 * name with one quality. */
static const char *line_name(const exp_params *p, int twin, exp_transform_kind kind, int ei,
                             char *buf, size_t n)
{
    exp_params one = *p;
    one.n_quality = 0;
    return exp_transform_name(&one, exp_transform_index_twin(&one, twin, kind, ei, 0), buf, n);
}

/* One curve of kind (eps index ei; of the twin when twin) across the qualities, a dot per
 * quality. */
static void curve(ut_buf *b, const srv_rows *r, const exp_params *p, double x0, int top1,
                  int twin, exp_transform_kind kind, int ei, const int *order)
{
    char name[64];
    const char *col = colour(kind == EXP_T_JPG_X ? -1 : ei);
    ut_buf_printf(b, "<g><title>");
    srv_svg_escape(b, line_name(p, twin, kind, ei, name, sizeof name));
    ut_buf_printf(b, "</title>\n<path class=\"curve\" stroke=\"%s\" stroke-opacity=\"%s\" "
                     "stroke-dasharray=\"%s\" d=\"",
                  col, opacity(twin), dashes(kind));
    ut_buf dots = {0};
    int first = 1;
    for (int k = 0; k < exp_n_qualities(p); k++) {
        const int q = exp_quality_at(p, order[k]);
        const double v = metric(r, exp_transform_index_twin(p, twin, kind, ei, order[k]), top1);
        if (v < 0)
            continue;
        ut_buf_printf(b, "%s%.1f %.1f", first ? "M" : "L", px_x(x0, q), px_y(v));
        ut_buf_printf(&dots, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%.4f at "
                             "quality %d</title></circle>\n",
                      px_x(x0, q), px_y(v), col, v, q);
        first = 0;
    }
    ut_buf_printf(b, "%s\"/>\n", first ? "M0 0" : "");
    if (dots.len)
        ut_buf_add(b, dots.s, dots.len);
    b->failed |= dots.failed;
    ut_buf_free(&dots);
    ut_buf_printf(b, "</g>\n");
}

/* A dotted horizontal reference for a transform that does not depend on the quality. */
static void reference(ut_buf *b, const srv_rows *r, const exp_params *p, double x0, int top1,
                      int twin, exp_transform_kind kind, int ei)
{
    char name[64];
    const double v = metric(r, exp_transform_index_twin(p, twin, kind, ei, 0), top1);
    if (v < 0)
        return;
    ut_buf_printf(b, "<line class=\"ref\" stroke=\"%s\" stroke-opacity=\"%s\" "
                     "stroke-dasharray=\"%s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                     "y2=\"%.1f\"><title>",
                  colour(kind == EXP_T_X ? -1 : ei), opacity(twin), dashes(kind), x0, px_y(v),
                  x0 + Q_PLOT, px_y(v));
    srv_svg_escape(b, line_name(p, twin, kind, ei, name, sizeof name));
    ut_buf_printf(b, ": %.4f</title></line>\n", v);
}

/* The legend: one entry per line and reference (the twin's after the attack's own). */
static void legend(ut_buf *b, const exp_params *p, double x0)
{
    const struct {
        exp_transform_kind kind;
        int per_eps, twin;
    } rows[] = {{EXP_T_X, 0, 0},       {EXP_T_JPG_X, 0, 0},    {EXP_T_ADV, 1, 0},
                {EXP_T_JPG_ADV, 1, 0}, {EXP_T_NOISE_ADV, 1, 0}, {EXP_T_ADV, 1, 1},
                {EXP_T_JPG_ADV, 1, 1}, {EXP_T_NOISE_ADV, 1, 1}};
    double y = Q_TOP + 6;
    char name[64];
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++)
        for (int e = 0; e < (rows[k].per_eps ? p->n_eps : 1) && rows[k].twin <= exp_has_twin(p);
             e++, y += 16) {
            const int ei = rows[k].per_eps ? e : -1;
            ut_buf_printf(b, "<line stroke=\"%s\" stroke-opacity=\"%s\" stroke-width=\"2\" "
                             "stroke-dasharray=\"%s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                             "y2=\"%.1f\"/>\n<text class=\"small\" x=\"%.1f\" y=\"%.1f\">",
                          colour(ei), opacity(rows[k].twin), dashes(rows[k].kind), x0, y, x0 + 26,
                          y, x0 + 32, y + 4);
            srv_svg_escape(b, line_name(p, rows[k].twin, rows[k].kind, rows[k].per_eps ? e : 0,
                                        name, sizeof name));
            ut_buf_printf(b, "</text>\n");
        }
}

int srv_svg_quality(const srv_rows *r, const exp_params *p, int has_truth, const char *caption,
                    char **out, size_t *len)
{
    const int W = Q_LEFT + 2 * Q_PLOT + Q_GAP + Q_LEGEND;
    const int lines = 2 + 3 * p->n_eps * (1 + exp_has_twin(p)); /* the legend's */
    const int H = Q_TOP + Q_PLOT + Q_BOTTOM + 16 * (lines > 20 ? lines - 20 : 0);
    int order[EXP_MAX_QUALITY];
    sorted_qualities(p, order);
    ut_buf b = {0};
    ut_buf_printf(&b,
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
                  "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, "
                  "Arial, sans-serif\" font-size=\"12\">\n<title>Top-1 and mean top-label "
                  "probability against JPEG quality</title>\n<desc>",
                  W, H, W, H);
    srv_svg_escape(&b, caption);
    ut_buf_printf(&b, "</desc>\n<style>\n.frame{fill:#fbfbfb;stroke:#333;stroke-width:1}\n"
                      ".grid{stroke:#ddd;stroke-width:1}\n.curve{fill:none;stroke-width:2}\n"
                      ".ref{stroke-width:1.5}\n.small{font-size:11px;fill:#444}\n</style>\n"
                      "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n"
                      "<text x=\"16\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Top-1 and "
                      "mean top-label probability against JPEG quality</text>\n"
                      "<text class=\"small\" x=\"16\" y=\"40\">");
    srv_svg_escape(&b, caption);
    ut_buf_printf(&b, "</text>\n");
    const int any = r->n > r->skipped;
    for (int top1 = 1; top1 >= 0; top1--) {
        const double x0 = Q_LEFT + (top1 ? 0 : Q_PLOT + Q_GAP);
        panel_axes(&b, x0, top1 ? "top-1 accuracy" : "mean top-label probability p(l_x | f(x))");
        if (!any || (top1 && !has_truth)) {
            ut_buf_printf(&b, "<text class=\"small\" x=\"%.1f\" y=\"%.1f\" "
                              "text-anchor=\"middle\">%s</text>\n",
                          x0 + Q_PLOT / 2.0, px_y(0.5), !any ? "no finished images yet"
                                                            : "no labels: no top-1 accuracy");
            continue;
        }
        reference(&b, r, p, x0, top1, 0, EXP_T_X, -1);
        curve(&b, r, p, x0, top1, 0, EXP_T_JPG_X, -1, order);
        for (int twin = 0; twin <= exp_has_twin(p); twin++)
            for (int e = 0; e < p->n_eps; e++) {
                reference(&b, r, p, x0, top1, twin, EXP_T_ADV, e);
                curve(&b, r, p, x0, top1, twin, EXP_T_JPG_ADV, e, order);
                curve(&b, r, p, x0, top1, twin, EXP_T_NOISE_ADV, e, order);
            }
    }
    legend(&b, p, Q_LEFT + 2 * Q_PLOT + Q_GAP + 20);
    ut_buf_printf(&b, "</svg>\n");
    if (b.failed) {
        ut_buf_free(&b);
        return ADJ_ERR_NOMEM;
    }
    *out = b.s;
    *len = b.len;
    return ADJ_OK;
}
