/*
 * test_srv_paths.c - path confinement (server/srv_eval.c) without a daemon,
 * on a real folder tree with planted links: srv_path_within against the
 * file system's own answer (realpath of the root and of the path, compared
 * by components), and srv_path_file_under refusing what leaves the root.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srv_eval.h"
#include "status.h"
#include "testutil.h"

static void touch(const char *dir, const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f)
        fclose(f);
}

/* Whether real lies under root, by walking up real with dirname-like cuts. */
static int under_by_walk(const char *root, const char *real)
{
    char cur[PATH_MAX];
    snprintf(cur, sizeof cur, "%s", real);
    for (;;) {
        if (strcmp(cur, root) == 0)
            return 1;
        char *slash = strrchr(cur, '/');
        if (!slash || slash == cur)
            return strcmp(root, "/") == 0;
        *slash = '\0';
    }
}

int main(void)
{
    char base[512], root[PATH_MAX], p[PATH_MAX], out[PATH_MAX], err[ADJ_ERRLEN];
    snprintf(base, sizeof base, "%s", tu_tmpdir());
    snprintf(p, sizeof p, "%s/data", base);
    mkdir(p, 0700);
    CHECK(realpath(p, root) != NULL, "realpath");
    snprintf(p, sizeof p, "%s/data/set", base);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/data-other", base); /* shares the root's name as a prefix */
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/data/set", base);
    touch(p, "in.jpg");
    snprintf(p, sizeof p, "%s/data-other", base);
    touch(p, "out.jpg");
    char link[PATH_MAX], target[PATH_MAX];
    snprintf(link, sizeof link, "%s/data/set/escape.jpg", base);
    snprintf(target, sizeof target, "%s/data-other/out.jpg", base);
    CHECK(symlink(target, link) == 0, "symlink");
    snprintf(link, sizeof link, "%s/data/set/inside.jpg", base);
    CHECK(symlink("in.jpg", link) == 0, "symlink");

    const char *names[] = {"data", "data/set", "data/set/in.jpg", "data-other",
                           "data-other/out.jpg", "data/set/escape.jpg", "data/set/inside.jpg",
                           "data/../data-other", "."};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char real[PATH_MAX];
        snprintf(p, sizeof p, "%s/%.100s", base, names[i]);
        if (!realpath(p, real))
            continue;
        CHECK(srv_path_within(root, real) == under_by_walk(root, real), "%s", names[i]);
    }
    CHECK(srv_path_within("/", "/etc") && srv_path_within(root, root), "the root itself");

    snprintf(p, sizeof p, "%.4000s/set", root);
    CHECK(srv_path_file_under(root, p, "in.jpg", out, err, sizeof err) == ADJ_OK, "%s", err);
    CHECK(srv_path_file_under(root, p, "inside.jpg", out, err, sizeof err) == ADJ_OK &&
              strstr(out, "/in.jpg"), "a link inside the root: %s", err);
    CHECK(srv_path_file_under(root, p, "escape.jpg", out, err, sizeof err) == ADJ_ERR_ARG,
          "a link out of the root is taken");
    CHECK(srv_path_file_under(root, p, "missing.jpg", out, err, sizeof err) == ADJ_ERR_IO,
          "missing: %s", err);
    CHECK(srv_path_file_under(root, root, "set", out, err, sizeof err) == ADJ_ERR_ARG,
          "a folder is not a regular file");
    tu_rmtree(base);
    return tu_done();
}
