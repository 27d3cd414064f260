/*
 * test_srv_svg.c - server/srv_svg.c without a daemon: Figures 3 and 4 of a
 * few rows and of none are well-formed XML (checked by a small tag matcher
 * written here, not by the code that writes them), name every transform,
 * and escape a hostile caption. For a confident model (most p at 1): Figure 3's
 * boxes collapse on the p axis and spread on the 1 - p (log) and logit axes;
 * Figure 4 draws the eps asked for (another is refused), in the paper's 2x3
 * layout, and over 200 images as cells whose counts sum to the images.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "srv_rows.h"
#include "srv_svg.h"
#include "status.h"
#include "testutil.h"

/* Whether text is one well-formed element tree: tags nest, attributes are
 * quoted, no raw '<' or '&' outside markup but entities. */
static int well_formed(const char *s, const char **why)
{
    const char *stack[256];
    size_t len[256];
    int depth = 0, roots = 0;
    while (*s) {
        if (*s == '&') {
            const char *e = strchr(s, ';');
            if (!e || e - s > 8)
                return *why = "a bare &", 0;
            s = e + 1;
        } else if (*s != '<') {
            s++;
        } else if (!strncmp(s, "<?", 2) || !strncmp(s, "<!--", 4)) {
            const char *e = strstr(s, s[1] == '?' ? "?>" : "-->");
            if (!e)
                return *why = "an unclosed declaration", 0;
            s = e + 2;
        } else {
            int closing = s[1] == '/';
            const char *n = s + 1 + closing;
            size_t nl = strcspn(n, " \t\n/>");
            const char *p = n + nl;
            char q = 0;
            for (; *p && (q || *p != '>'); p++)
                if (q ? *p == q : (*p == '"' || *p == '\''))
                    q = q ? 0 : *p;
                else if (!q && *p == '<')
                    return *why = "'<' in a tag", 0;
            if (!*p || nl == 0)
                return *why = "an unclosed tag", 0;
            int empty = p[-1] == '/';
            if (closing) {
                if (!depth || len[depth - 1] != nl || strncmp(stack[depth - 1], n, nl))
                    return *why = "a closing tag that does not match", 0;
                depth--;
            } else if (!empty) {
                if (depth == 0)
                    roots++;
                if (depth == 256)
                    return *why = "too deep", 0;
                stack[depth] = n;
                len[depth++] = nl;
            }
            s = p + 1;
        }
    }
    if (depth)
        return *why = "unclosed elements", 0;
    return roots == 1 ? 1 : (*why = "not one root", 0);
}

/* n rows of p; transform t of image i has probability prob(i, t) (label 0 everywhere). */
static void make_rows(const exp_params *p, int n, double (*prob)(int i, int t), srv_rows *out)
{
    ut_buf b = {0};
    char *header = srv_rows_header(p);
    ut_buf_puts(&b, header);
    free(header);
    for (int i = 0; i < n; i++) {
        ut_buf_printf(&b, "img%04d.jpg,0,0", i);
        for (int t = 0; t < exp_n_transforms(p); t++)
            ut_buf_printf(&b, ",%.9f,0", prob(i, t));
        for (int e = 0; e < p->n_eps; e++) /* the perturbation's size: an unchanged image */
            ut_buf_puts(&b, ",0,0,inf");
        ut_buf_puts(&b, "\n");
    }
    srv_rows_check chk = {p, 10, SIZE_MAX, NULL, NULL, 0};
    size_t valid;
    char why[256];
    srv_rows_parse(b.s, b.len, &chk, out, &valid, why, sizeof why);
    CHECK(out->n == (size_t)n, "%zu rows: %s", out->n, why);
    ut_buf_free(&b);
}

/* A confident model: 1 - p from 1e-6 to 1e-2, most images at p = 1 exactly. */
static double confident(int i, int t)
{
    if (i % 3 == 0)
        return 1;
    return 1 - pow(10, -2 - 4 * ((i * 7 + t * 3) % 101) / 100.0);
}

/* The heights of Figure 3's boxes (<rect class="box" ... height="H">) into h; their number. */
static int box_heights(const char *svg, double *h, int max)
{
    int n = 0;
    for (const char *s = svg; n < max && (s = strstr(s, "<rect class=\"box\" x=")); s++) {
        const char *e = strstr(s, "height=\"");
        h[n++] = e ? atof(e + 8) : -1;
    }
    return n;
}

/* Figure 3 on its three axes: a confident model's boxes collapse on p and spread on the others. */
static void test_axes(void)
{
    exp_params p = {.n_eps = 1, .eps = {1}, .quality = 75};
    srv_rows rows = {0};
    make_rows(&p, 90, confident, &rows);
    const char *names[3] = {"linear", "log1mp", "logit"};
    double min_height[3];
    for (int a = 0; a < 3; a++) {
        char *svg;
        size_t len;
        const char *bad = "";
        CHECK(srv_svg_axis_of(names[a]) == (srv_svg_axis)a, "axis %s", names[a]);
        CHECK(srv_svg_figure3(&rows, &p, (srv_svg_axis)a, "c", &svg, &len) == ADJ_OK, "fig 3");
        CHECK(well_formed(svg, &bad), "figure 3 on %s: %s", names[a], bad);
        char want[64];
        snprintf(want, sizeof want, "data-axis=\"%s\"", names[a]);
        CHECK(strstr(svg, want) != NULL, "%s named", names[a]);
        double h[8];
        int n = box_heights(svg, h, 8);
        CHECK(n == exp_n_transforms(&p), "%d boxes", n);
        min_height[a] = 1e9;
        for (int k = 0; k < n; k++)
            min_height[a] = h[k] < min_height[a] ? h[k] : min_height[a];
        if (a == 1)
            CHECK(strstr(svg, ">1e-6<") && strstr(svg, ">1e-2<"), "decade ticks 1e-2..1e-6");
        free(svg);
    }
    /* the quartiles of 1 - p span decades (1 - p = 1e-6 for a third, then 1e-2..1e-6) */
    CHECK(min_height[0] < 2 && min_height[1] > 40 && min_height[2] > 40,
          "box heights linear %.1f, log1mp %.1f, logit %.1f px", min_height[0], min_height[1],
          min_height[2]);
    CHECK(srv_svg_axis_of("log") == SRV_AXIS_LINEAR, "unknown: linear");
    srv_rows_free(&rows);
}

/* Figure 4: any eps of the job, the 2x3 layout, and counted cells over 200 images. */
static void test_density(void)
{
    exp_params p = {.n_eps = 2, .eps = {1, 10}, .quality = 75};
    srv_rows rows = {0};
    const int n = 300;
    make_rows(&p, n, confident, &rows);
    char *svg;
    size_t len;
    const char *bad = "";
    CHECK(srv_svg_figure4(&rows, &p, 3, "c", &svg, &len) == ADJ_ERR_ARG, "no eps 3");
    CHECK(srv_svg_figure4(&rows, &p, 10, "c", &svg, &len) == ADJ_OK, "eps 10");
    CHECK(well_formed(svg, &bad), "figure 4: %s", bad);
    CHECK(strstr(svg, "eps = 10") && strstr(svg, "Adv10(x)") && !strstr(svg, "Adv1(x)"),
          "drawn for eps 10");
    /* each panel's cells count every image once; most sit in the top-right cell */
    int panels = 0;
    for (const char *s = strstr(svg, "<g class=\"panel\">"); s; panels++) {
        const char *next = strstr(s + 1, "<g class=\"panel\">");
        long sum = 0, biggest = 0;
        for (const char *c = s; (c = strstr(c, "data-count=\"")) && (!next || c < next); c++) {
            long k = atol(c + 12);
            sum += k;
            biggest = k > biggest ? k : biggest;
        }
        CHECK(sum == n, "panel %d: cells count %ld images, want %d", panels, sum, n);
        CHECK(biggest >= n / 3, "panel %d: the p = 1 pile-up in one cell (%ld)", panels, biggest);
        s = next;
    }
    CHECK(panels == 5, "%d panels", panels);
    /* 2x3: frames on two rows and three columns */
    double xs[8], ys[8];
    int frames = 0;
    for (const char *s = svg; frames < 8 && (s = strstr(s, "<rect class=\"frame\" x=\"")); s++) {
        xs[frames] = atof(s + 23);
        ys[frames++] = atof(strstr(s, "y=\"") + 3);
    }
    CHECK(frames == 5 && ys[0] == ys[1] && ys[1] == ys[2] && ys[3] == ys[4] && ys[3] > ys[0] &&
              xs[3] == xs[0] && xs[4] == xs[2] && xs[0] < xs[1] && xs[1] < xs[2],
          "2x3 layout: %d frames", frames);
    CHECK(strstr(svg, "images per cell") != NULL, "a count legend");
    free(svg);
    srv_rows_free(&rows);

    /* up to 200 images: dots, no cells */
    make_rows(&p, 50, confident, &rows);
    CHECK(srv_svg_figure4(&rows, &p, 1, "c", &svg, &len) == ADJ_OK, "fig 4");
    CHECK(!strstr(svg, "data-count") && strstr(svg, "class=\"points\""), "dots for 50 images");
    free(svg);
    srv_rows_free(&rows);
}

int main(void)
{
    test_axes();
    test_density();
    exp_params p = {.n_eps = 2, .eps = {1, 10}, .quality = 75};
    int nt = exp_n_transforms(&p);
    ut_buf b = {0};
    char *header = srv_rows_header(&p);
    ut_buf_puts(&b, header);
    free(header);
    uint64_t st = 11;
    for (int i = 0; i < 30; i++) {
        ut_buf_printf(&b, "img%02d.jpg,%d,%d", i, i % 10, i % 10);
        for (int t = 0; t < nt; t++)
            ut_buf_printf(&b, ",%.6f,%d", tu_uniform(&st, 0, 1), i % 10);
        for (int e = 0; e < p.n_eps; e++) /* the perturbation's size: an unchanged image */
            ut_buf_puts(&b, ",0,0,inf");
        ut_buf_puts(&b, "\n");
    }
    srv_rows_check chk = {&p, 10, SIZE_MAX, NULL, NULL, 0};
    srv_rows rows = {0}, none = {0};
    size_t valid;
    char why[256];
    srv_rows_parse(b.s, b.len, &chk, &rows, &valid, why, sizeof why);
    CHECK(rows.n == 30, "%zu rows: %s", rows.n, why);
    srv_rows_parse(b.s, strchr(b.s, '\n') + 1 - b.s, &chk, &none, &valid, why, sizeof why);
    const char *caption = "job <x> & \"y\" 'z'\x01";
    for (int fig = 3; fig <= 4; fig++)
        for (int k = 0; k < 2; k++) {
            char *svg = NULL;
            size_t len = 0;
            const srv_rows *r = k ? &none : &rows;
            int rc = fig == 3 ? srv_svg_figure3(r, &p, SRV_AXIS_LINEAR, caption, &svg, &len)
                              : srv_svg_figure4(r, &p, 1, caption, &svg, &len);
            const char *bad = "";
            CHECK(rc == ADJ_OK && svg && strlen(svg) == len, "figure %d", fig);
            if (!svg)
                continue;
            CHECK(well_formed(svg, &bad), "figure %d (%zu rows): %s", fig, r->n, bad);
            CHECK(strstr(svg, "job &lt;x&gt; &amp; &quot;y&quot; &apos;z&apos;") &&
                      !strchr(svg, '\x01'), "figure %d: caption not escaped", fig);
            for (int t = 0; t < nt && fig == 3; t++) {
                char name[64], esc[96];
                exp_transform_name(&p, t, name, sizeof name);
                ut_buf e = {0};
                srv_svg_escape(&e, name);
                snprintf(esc, sizeof esc, "%s", e.s);
                ut_buf_free(&e);
                CHECK(strstr(svg, esc), "figure 3 does not name %s", name);
            }
            free(svg);
        }
    srv_rows_free(&rows);
    srv_rows_free(&none);
    ut_buf_free(&b);
    return tu_done();
}
