/*
 * test_srv_svg.c - server/srv_svg.c without a daemon: Figures 3 and 4 of a
 * few rows and of none are well-formed XML (checked by a small tag matcher
 * written here, not by the code that writes them), name every transform,
 * and escape a hostile caption.
 */
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

int main(void)
{
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
            int rc = fig == 3 ? srv_svg_figure3(r, &p, caption, &svg, &len)
                              : srv_svg_figure4(r, &p, caption, &svg, &len);
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
