/*
 * web_assets.h - the demo page's files (index.html, app.js, style.css) and
 * the OpenAPI description (server/openapi.yaml, at /openapi.yaml), built
 * into advjpgd.
 *
 * The files in server/web/ are turned into the C source web_assets.c at build
 * time by server/web/embed.py (see server/web/meson.build), byte for byte, so
 * the daemon serves the page with no files to install and no path to find at
 * run time. Editing a file in server/web/ and rebuilding is all it takes.
 *
 * Usage, in an HTTP handler for GET or HEAD:
 *
 *     const unsigned char *data;
 *     size_t len;
 *     const char *type;
 *     if (srv_web_find(url, &data, &len, &type))
 *         ... answer 200 with Content-Type `type`, Cache-Control: no-cache,
 *             and the `len` bytes at `data` (static: no copy needed) ...
 *
 * Limits: only the exact paths below are known; there are no directories, no
 * index of other files, and no compression. Nothing here allocates, locks or
 * does I/O, so it is safe from any thread.
 */
#ifndef ADVJPG_WEB_ASSETS_H
#define ADVJPG_WEB_ASSETS_H

#include <stddef.h>

/**
 * Looks up one of the embedded files by its URL path.
 *
 * @param path          the request path without the query string, e.g. "/",
 *                      "/index.html", "/app.js", "/style.css",
 *                      "/openapi.yaml". "/" maps to
 *                      "/index.html". Matching is exact and case-sensitive.
 *                      NULL is treated as not found.
 * @param data          out: the file's bytes; *borrowed*, static for the life
 *                      of the program, never freed by anyone. The bytes are
 *                      followed by a NUL (not counted in *len) for convenience.
 * @param len           out: the number of bytes at *data.
 * @param content_type  out: the Content-Type to send, a static string such as
 *                      "text/html; charset=utf-8"; *borrowed*.
 * @return 1 if the path names an embedded file (all three outputs written);
 *         0 if not (the outputs are left untouched). Any output pointer may be
 *         NULL when the caller does not want that value.
 */
int srv_web_find(const char *path, const unsigned char **data, size_t *len,
                 const char **content_type);

#endif
