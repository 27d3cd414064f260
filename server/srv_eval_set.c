/* srv_eval_set.c - what a request names, checked and resolved into the images to evaluate:
 * paths confined to the data root, labels and ground truth, folders, uploads. */
#include "srv_eval.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "model.h"
#include "srv_params.h"
#include "status.h"
#include "ut_file.h"

#define TEXT_FILE_MAX (256u << 20) /* labels / ground-truth files */

/* ---------------------------------------------------------------- paths */

int srv_name_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int extra;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return 0;
            c = c << 6 | (*p & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
    }
    return 1;
}

int srv_path_within(const char *root, const char *real)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/')
        return real[0] == '/';
    return strncmp(real, root, n) == 0 && (real[n] == '\0' || real[n] == '/');
}

/*
 * Checks a relative path from a request and resolves it under root:
 * *real (PATH_MAX) gets its real path. what names the field in messages.
 * want_dir: 1 a folder, 0 a regular file.
 */
static int resolve_rel(const char *root, const char *rel, int want_dir, const char *what,
                       char *real, char *err, size_t errsz)
{
    if (!root)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "server-side datasets are disabled (start advjpgd with --data-root)");
    if (!*rel)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: empty path", what);
    if (rel[0] == '/')
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "%s '%.200s': absolute paths are not allowed (give a path under the "
                        "server's --data-root)", what, rel);
    for (const char *p = rel; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return adj_fail(err, errsz, ADJ_ERR_ARG,
                            "%s '%.200s': '..' components are not allowed", what, rel);
        p += n;
        while (*p == '/')
            p++;
    }
    char joined[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", root, rel) >= sizeof joined)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: path too long", what);
    if (!realpath(joined, real)) {
        if (errno == ENOENT || errno == ENOTDIR)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s '%.200s': no such %s under the data root",
                            what, rel, want_dir ? "folder" : "file");
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s '%.200s': %s", what, rel, strerror(errno));
    }
    if (!srv_path_within(root, real))
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "%s '%.200s': leads outside the data root (a symbolic link?)", what, rel);
    struct stat st;
    if (stat(real, &st) != 0)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s '%.200s': %s", what, rel, strerror(errno));
    if (want_dir && !S_ISDIR(st.st_mode))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s '%.200s': not a folder", what, rel);
    if (!want_dir && !S_ISREG(st.st_mode))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s '%.200s': not a regular file", what, rel);
    return ADJ_OK;
}

int srv_path_file_under(const char *root, const char *dir, const char *name, char *out,
                        char *err, size_t errsz)
{
    char joined[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", dir, name) >= sizeof joined)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "'%.100s': path too long", name);
    if (!realpath(joined, out))
        return adj_fail(err, errsz, ADJ_ERR_IO, "'%.200s': %s", name, strerror(errno));
    if (root && !srv_path_within(root, out))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "'%.200s' leads outside the data root", name);
    struct stat st;
    if (stat(out, &st) != 0)
        return adj_fail(err, errsz, ADJ_ERR_IO, "'%.200s': %s", name, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return adj_fail(err, errsz, ADJ_ERR_ARG, "'%.200s' is not a regular file", name);
    return ADJ_OK;
}

/* Reads a whole text file (at most TEXT_FILE_MAX bytes), NUL-terminated; NULL with err. */
static char *read_text(const char *path, size_t *len, char *err, size_t errsz, const char *what)
{
    char *buf = NULL, msg[ADJ_ERRLEN];
    int rc = ut_read_file(path, TEXT_FILE_MAX, 0, &buf, len, msg, sizeof msg);
    if (rc == ADJ_ERR_LIMIT)
        adj_fail(err, errsz, ADJ_ERR_ARG, "%s: larger than %u MiB", what, TEXT_FILE_MAX >> 20);
    else if (rc == ADJ_ERR_NOMEM)
        adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    else if (rc)
        adj_fail(err, errsz, ADJ_ERR_ARG, "%s: cannot read: %s", what, strerror(errno));
    return rc ? NULL : buf;
}

/* ---------------------------------------------------------------- labels */

/* One label line's name and index. */
typedef struct {
    char *name;
    int index;
} label_entry;

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const label_entry *)a)->name, ((const label_entry *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Parses "name<TAB>index" lines (text is modified: names point into it).
 * *out (malloc'd, sorted by name) and *n. Duplicate names with different
 * indices are an error; the same line twice is fine.
 */
static int parse_labels(char *text, size_t len, int classes, const char *what, label_entry **out,
                        size_t *n_out, char *err, size_t errsz)
{
    size_t cap = 0, n = 0;
    label_entry *e = NULL;
    int line = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        if (le > p && le[-1] == '\r')
            le--;
        *le = '\0';
        char *next = nl ? nl + 1 : end;
        if (le == p || strspn(p, " \t") == (size_t)(le - p)) {
            p = next;
            continue;
        }
        char *tab = strrchr(p, '\t');
        long v;
        if (!tab || tab == p) {
            free(e);
            return adj_fail(err, errsz, ADJ_ERR_ARG,
                            "%s line %d: expected filename<TAB>class-index", what, line);
        }
        *tab = '\0';
        char *num = tab + 1;
        while (*num == ' ')
            num++;
        size_t nl2 = strlen(num);
        while (nl2 && num[nl2 - 1] == ' ')
            num[--nl2] = '\0';
        if (!srv_parse_long(num, 0, classes - 1, &v)) {
            free(e);
            return adj_fail(err, errsz, ADJ_ERR_ARG,
                            "%s line %d: '%.20s' is not a class index in 0..%d", what, line, num,
                            classes - 1);
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            label_entry *ne = realloc(e, cap * sizeof *ne);
            if (!ne) {
                free(e);
                return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
            }
            e = ne;
        }
        e[n].name = p;
        e[n].index = (int)v;
        n++;
        p = next;
    }
    if (n)
        qsort(e, n, sizeof *e, cmp_label);
    for (size_t i = 1; i < n; i++)
        if (strcmp(e[i].name, e[i - 1].name) == 0 && e[i].index != e[i - 1].index) {
            int a = e[i - 1].index, b = e[i].index;
            char name[120];
            snprintf(name, sizeof name, "%s", e[i].name);
            free(e);
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: '%s' has two labels, %d and %d", what,
                            name, a, b);
        }
    *out = e;
    *n_out = n;
    return ADJ_OK;
}

/* truth[i] for each files[i] from a labels table; every file needs one. */
static int apply_labels(const label_entry *e, size_t n, char *const *files, size_t nf, int *truth,
                        const char *what, char *err, size_t errsz)
{
    for (size_t i = 0; i < nf; i++) {
        label_entry key = {files[i], 0};
        const label_entry *hit = n ? bsearch(&key, e, n, sizeof *e, cmp_label) : NULL;
        if (!hit)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s has no label for '%.200s'", what,
                            files[i]);
        truth[i] = hit->index;
    }
    return ADJ_OK;
}

/* The number of an ILSVRC2012_val_NNNNNNNN.<ext> name, or 0. */
static long ilsvrc_number(const char *name)
{
    static const char prefix[] = "ILSVRC2012_val_";
    if (strncmp(name, prefix, sizeof prefix - 1) != 0)
        return 0;
    const char *d = name + sizeof prefix - 1;
    long v = 0;
    for (int i = 0; i < 8; i++) {
        if (!isdigit((unsigned char)d[i]))
            return 0;
        v = v * 10 + (d[i] - '0');
    }
    return d[8] == '.' ? v : 0;
}

/*
 * truth for all n files of the folder (sorted) from an ILSVRC2012 ground
 * truth file.
 */
static int apply_ground_truth(char *text, size_t len, const model_classes *cl, const char *what,
                              char *const *files, size_t n, int *truth, char *err, size_t errsz)
{
    const int classes = cl->synsets ? MODEL_ILSVRC_CLASSES : cl->n; /* the IDs' range */
    size_t cap = 0, lines = 0;
    int *ids = NULL;
    char *p = text, *end = text + len;
    int blank_seen = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        while (le > p && isspace((unsigned char)le[-1]))
            le--;
        *le = '\0';
        char *s = p;
        while (isspace((unsigned char)*s))
            s++;
        p = nl ? nl + 1 : end;
        if (!*s) {
            blank_seen = 1;
            continue;
        }
        long v;
        if (blank_seen || !srv_parse_long(s, 1, classes, &v)) {
            free(ids);
            return blank_seen ? adj_fail(err, errsz, ADJ_ERR_ARG, "%s line %zu: empty", what,
                                         lines + 1)
                              : adj_fail(err, errsz, ADJ_ERR_ARG,
                                         "%s line %zu: '%.20s' is not an ILSVRC2012_ID in 1..%d "
                                         "(the model has %d classes)",
                                         what, lines + 1, s, classes, cl->n);
        }
        if (cl->synsets && cl->of_id[v - 1] < 0) {
            free(ids);
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s line %zu: ILSVRC2012_ID %ld is not a "
                            "class of the model (its labels)", what, lines + 1, v);
        }
        v = cl->synsets ? cl->of_id[v - 1] + 1 : v; /* the model's class + 1 */
        if (lines == cap) {
            cap = cap ? cap * 2 : 4096;
            int *ni = realloc(ids, cap * sizeof *ni);
            if (!ni) {
                free(ids);
                return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
            }
            ids = ni;
        }
        ids[lines++] = (int)v;
    }
    int by_number = n > 0;
    for (size_t i = 0; i < n && by_number; i++)
        by_number = ilsvrc_number(files[i]) > 0;
    int rc = ADJ_OK;
    if (by_number) {
        for (size_t i = 0; i < n && !rc; i++) {
            long k = ilsvrc_number(files[i]);
            if ((size_t)k > lines)
                rc = adj_fail(err, errsz, ADJ_ERR_ARG, "%s has %zu lines: none for '%.100s'", what,
                              lines, files[i]);
            else
                truth[i] = ids[k - 1] - 1;
        }
    } else if (lines != n) {
        rc = adj_fail(err, errsz, ADJ_ERR_ARG,
                      "%s has %zu lines but the folder has %zu images (one line per image, "
                      "in sorted order)", what, lines, n);
    } else {
        for (size_t i = 0; i < n; i++)
            truth[i] = ids[i] - 1;
    }
    free(ids);
    return rc;
}

/* ---------------------------------------------------------------- folders */

static int has_image_ext(const char *name)
{
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".ppm"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && strcasecmp(name + n - e, ext[i]) == 0)
            return 1;
    }
    return 0;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* The sorted image names of dir (a real path under root), each checked. */
static int list_images(const char *root, const char *dir, const char *rel, char ***out,
                       size_t *n_out, char *err, size_t errsz)
{
    DIR *d = opendir(dir);
    if (!d)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "dataset '%.200s': cannot read the folder: %s",
                        rel, strerror(errno));
    size_t cap = 0, n = 0;
    char **v = NULL;
    int rc = ADJ_OK;
    struct dirent *de;
    char real[PATH_MAX], msg[ADJ_ERRLEN];
    while (!rc && (de = readdir(d))) {
        const char *name = de->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..") || !has_image_ext(name))
            continue;
        int frc = srv_path_file_under(root, dir, name, real, msg, sizeof msg);
        if (frc == ADJ_ERR_ARG && strstr(msg, "not a regular file"))
            continue; /* a folder named x.jpg, a device: not an image file */
        if (frc) {
            rc = adj_fail(err, errsz, ADJ_ERR_ARG, "dataset '%.200s': %s", rel, msg);
            break;
        }
        if (!srv_name_ok(name)) {
            rc = adj_fail(err, errsz, ADJ_ERR_ARG,
                          "dataset '%.200s': a file name is not valid UTF-8 (rename it)", rel);
            break;
        }
        if (n >= SRV_EVAL_MAX_IMAGES) {
            rc = adj_fail(err, errsz, ADJ_ERR_ARG, "dataset '%.200s': more than %d images", rel,
                          SRV_EVAL_MAX_IMAGES);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            char **nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        if (!(v[n] = strdup(name))) {
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) {
        free_names(v, n);
        return rc;
    }
    if (n)
        qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    *n_out = n;
    return ADJ_OK;
}

/* A file name and its class, sorted together. */
typedef struct {
    char *name;
    int cls;
} named_class;

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const named_class *)a)->name, ((const named_class *)b)->name);
}

/* Nonzero if dir (a real path) has subfolders (symbolic links followed) and no image file:
 * the ImageFolder layout. */
static int is_image_folder(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int folders = 0, images = 0;
    char p[PATH_MAX];
    struct stat st;
    while (d && !images && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            (size_t)snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= sizeof p || stat(p, &st))
            continue;
        folders |= S_ISDIR(st.st_mode);
        images |= S_ISREG(st.st_mode) && has_image_ext(de->d_name);
    }
    if (d)
        closedir(d);
    return folders && !images;
}

/* Appends folder sub's images (as "sub/name", class cls) to *v; checked as list_images. */
static int add_class_folder(const char *root, const char *dir, const char *rel, const char *sub,
                            int cls, named_class **v, size_t *n, size_t *cap, char *err,
                            size_t errsz)
{
    char real[PATH_MAX], msg[ADJ_ERRLEN], **names = NULL;
    size_t k = 0;
    snprintf(msg, sizeof msg, "%s/%s", rel, sub);
    int rc = resolve_rel(root, msg, 1, "dataset", real, err, errsz);
    if (!rc && !srv_path_within(dir, real))
        rc = adj_fail(err, errsz, ADJ_ERR_ARG, "dataset '%.200s': folder '%.100s' leads outside "
                      "it (a symbolic link?)", rel, sub);
    if (!rc)
        rc = list_images(root, real, msg, &names, &k, err, errsz);
    for (size_t i = 0; !rc && i < k; i++) {
        if (*n >= SRV_EVAL_MAX_IMAGES)
            rc = adj_fail(err, errsz, ADJ_ERR_ARG, "dataset '%.200s': more than %d images", rel,
                          SRV_EVAL_MAX_IMAGES);
        else if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 1024;
            named_class *nv = realloc(*v, nc * sizeof *nv);
            if (!nv)
                rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
            else
                *v = nv, *cap = nc;
        }
        size_t len = strlen(sub) + strlen(names[i]) + 2;
        if (!rc && !((*v)[*n].name = malloc(len)))
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        if (!rc) {
            snprintf((*v)[*n].name, len, "%s/%s", sub, names[i]);
            (*v)[(*n)++].cls = cls;
        }
    }
    free_names(names, k);
    return rc;
}

/* The class of ImageFolder folder `name` (model_class_of_name), or an error naming it. */
static int folder_class(const model_classes *cl, const char *rel, const char *name, int *cls,
                        char *err, size_t errsz)
{
    int a = 0, b = 0;
    const char *shown = srv_name_ok(name) ? name : "?";
    *cls = model_class_of_name(cl, name, &a, &b);
    if (*cls == -2)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "dataset '%.200s': folder '%.100s' names two "
                        "classes of the model (%d and %d): rename it to one of their synsets or "
                        "make its name unique in the labels", rel, shown, a, b);
    if (*cls < 0)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "dataset '%.200s': folder '%.100s' is not a "
                        "class of the model (not %s)", rel, shown,
                        cl->synsets && cl->names ? "a synset or a class name of its labels"
                        : cl->synsets ? "one of its synsets" : "a class name of its labels");
    return ADJ_OK;
}

/*
 * The ImageFolder layout: dir's subfolders are classes of the model, by
 * synset (cl->synsets) or by the class names of its labels (cl->names),
 * each holding its images: s->files ("folder/name", sorted) and s->truth.
 * Refused: a model with neither, a folder that is no class or that names
 * two (folder_class).
 */
static int list_image_folder(const char *root, const char *dir, const char *rel,
                             const model_classes *cl, srv_eval_set *s, char *err, size_t errsz)
{
    if (!cl->synsets && !cl->names)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "dataset '%.200s' has class folders (the ImageFolder layout) but the "
                        "model's classes are unknown (give classes_order or a labels file of "
                        "synsets or class names in its preprocessing spec)", rel);
    DIR *d = opendir(dir);
    if (!d)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "dataset '%.200s': cannot read the folder: %s",
                        rel, strerror(errno));
    named_class *v = NULL;
    size_t n = 0, cap = 0;
    int rc = ADJ_OK;
    struct dirent *de;
    char p[PATH_MAX];
    struct stat st;
    while (!rc && (de = readdir(d))) {
        const char *name = de->d_name;
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        int is_dir = (size_t)snprintf(p, sizeof p, "%s/%s", dir, name) < sizeof p &&
                     stat(p, &st) == 0 && S_ISDIR(st.st_mode);
        int cls;
        if (is_dir && !(rc = folder_class(cl, rel, name, &cls, err, errsz)))
            rc = add_class_folder(root, dir, rel, name, cls, &v, &n, &cap, err, errsz);
    }
    closedir(d);
    if (!rc && n && !(s->files = malloc(n * sizeof *s->files)))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if (!rc && n && !(s->truth = malloc(n * sizeof *s->truth)))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if (!rc && !(s->labels_from = strdup("class folders")))
        rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if (!rc && n)
        qsort(v, n, sizeof *v, cmp_named);
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            s->files[i] = v[i].name, s->truth[i] = v[i].cls;
        else
            free(v[i].name);
    }
    free(v);
    if (!rc)
        s->n = n;
    return rc;
}

void srv_eval_set_free(srv_eval_set *s)
{
    if (!s)
        return;
    free(s->dir);
    free_names(s->files, s->n);
    free(s->truth);
    free(s->labels_from);
    memset(s, 0, sizeof *s);
}

/* Applies offset, limit and shard to names/truth (n entries): compacts them in place. */
static size_t select_subset(const srv_eval_request *rq, char **names, int *truth, size_t n)
{
    size_t lo = (size_t)rq->offset < n ? (size_t)rq->offset : n;
    size_t hi = rq->limit < 0 || (size_t)rq->limit > n - lo ? n : lo + (size_t)rq->limit;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int keep = i >= lo && i < hi && (i - lo) % (size_t)rq->shard_count == (size_t)rq->shard_index;
        if (keep) {
            names[k] = names[i];
            if (truth)
                truth[k] = truth[i];
            k++;
        } else {
            free(names[i]);
        }
    }
    return k;
}

/*
 * The labels' file of a dataset request, checked before anything is read:
 * ground_truth or labels if named, else the folder's labels.txt if there is
 * one. *lab its real path, *field its name for messages; 0 when none (*lab
 * empty), else ADJ_OK or an error.
 */
static int find_labels(const char *root, const srv_eval_request *rq, const char *dir,
                       char lab[PATH_MAX], const char **field, char *err, size_t errsz)
{
    const char *rel = rq->ground_truth ? rq->ground_truth : rq->labels;
    lab[0] = '\0';
    *field = rq->ground_truth ? "ground_truth" : "labels";
    if (rel)
        return resolve_rel(root, rel, 0, *field, lab, err, errsz);
    char joined[PATH_MAX], own[PATH_MAX];
    struct stat st;
    if ((size_t)snprintf(joined, sizeof joined, "%s/labels.txt", dir) >= sizeof joined ||
        lstat(joined, &st) != 0)
        return ADJ_OK;
    snprintf(own, sizeof own, "%s/labels.txt", rq->dataset);
    *field = "labels.txt";
    return resolve_rel(root, own, 0, "labels", lab, err, errsz);
}

/* The truth of the selected images from the labels' file lab; s->n is the selection. */
static int read_truth(const srv_eval_request *rq, const model_classes *cl, const char *lab,
                      const char *field, srv_eval_set *s, char *err, size_t errsz)
{
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%s/labels.txt", rq->dataset);
    const char *named = rq->ground_truth ? rq->ground_truth : rq->labels;
    if (!(s->labels_from = strdup(named ? named : rel)) ||
        !(s->truth = malloc(s->n * sizeof *s->truth)))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    size_t len;
    char *text = read_text(lab, &len, err, errsz, field);
    if (!text)
        return ADJ_ERR_ARG;
    int rc;
    if (rq->ground_truth) {
        /* lines map onto the whole folder: select afterwards */
        rc = apply_ground_truth(text, len, cl, field, s->files, s->n, s->truth, err, errsz);
        if (!rc)
            s->n = select_subset(rq, s->files, s->truth, s->n);
    } else {
        /* only the selected images need a label: select first */
        label_entry *e = NULL;
        size_t ne = 0;
        rc = parse_labels(text, len, cl->n, field, &e, &ne, err, errsz);
        if (!rc) {
            s->n = select_subset(rq, s->files, NULL, s->n);
            rc = apply_labels(e, ne, s->files, s->n, s->truth, field, err, errsz);
        }
        free(e);
    }
    free(text);
    return rc;
}

int srv_eval_resolve(const char *root, const srv_eval_request *rq, const model_classes *cl,
                     srv_eval_set *out, char *err, size_t errsz)
{
    char dir[PATH_MAX], lab[PATH_MAX];
    const char *field;
    int rc = resolve_rel(root, rq->dataset ? rq->dataset : "", 1, "dataset", dir, err, errsz);
    if (!rc)
        rc = find_labels(root, rq, dir, lab, &field, err, errsz);
    if (rc)
        return rc;
    srv_eval_set s;
    memset(&s, 0, sizeof s);
    if (!(s.dir = strdup(dir)))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    const int folders = is_image_folder(dir);
    if (folders && (rq->ground_truth || rq->labels)) {
        rc = adj_fail(err, errsz, ADJ_ERR_ARG, "dataset '%.200s' has class folders (the "
                      "ImageFolder layout): its classes come from them, not from %s", rq->dataset,
                      rq->ground_truth ? "ground_truth" : "labels");
        goto fail;
    }
    rc = folders ? list_image_folder(root, dir, rq->dataset, cl, &s, err, errsz)
                 : list_images(root, dir, rq->dataset, &s.files, &s.n, err, errsz);
    if (rc)
        goto fail;
    s.n_folder = s.n;
    if (s.n == 0) {
        rc = adj_fail(err, errsz, ADJ_ERR_ARG,
                      "dataset '%.200s': no images (files ending in .jpg, .jpeg, .png or .ppm)",
                      rq->dataset);
        goto fail;
    }
    if (!lab[0] || folders)
        s.n = select_subset(rq, s.files, s.truth, s.n);
    else if ((rc = read_truth(rq, cl, lab, field, &s, err, errsz)))
        goto fail;
    if (s.n == 0) {
        rc = adj_fail(err, errsz, ADJ_ERR_ARG,
                      "dataset '%.200s' has %zu images: offset %ld, limit %ld, shard %d/%d "
                      "select none",
                      rq->dataset, s.n_folder, rq->offset, rq->limit, rq->shard_index,
                      rq->shard_count);
        goto fail;
    }
    *out = s;
    return ADJ_OK;
fail:
    srv_eval_set_free(&s);
    return rc;
}

/* ---------------------------------------------------------------- uploads */

static int cmp_upload(const void *a, const void *b)
{
    return strcmp(((const srv_upload *)a)->name, ((const srv_upload *)b)->name);
}

/* The usable file name of an upload, made in place; 0 if none can be. */
static int clean_upload_name(srv_upload *u, int index)
{
    char *base = u->name;
    for (char *p = u->name; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    if (!*base) {
        img_format f = img_sniff(u->head, u->len < SRV_UPLOAD_HEAD ? u->len : SRV_UPLOAD_HEAD);
        const char *ext = f == IMG_FMT_PNG ? "png" : f == IMG_FMT_PPM ? "ppm" : "jpg";
        char made[64];
        snprintf(made, sizeof made, "image_%04d.%s", index + 1, ext);
        free(u->name);
        return (u->name = strdup(made)) != NULL;
    }
    memmove(u->name, base, strlen(base) + 1);
    if (u->name[0] == '.' || strlen(u->name) > 200 || !srv_name_ok(u->name))
        return 0;
    for (const unsigned char *p = (const unsigned char *)u->name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

int srv_eval_uploads(srv_eval_request *rq, int classes, srv_eval_set *out, char *err,
                     size_t errsz)
{
    if (rq->n_uploads == 0)
        return adj_fail(err, errsz, ADJ_ERR_ARG,
                        "no 'image' fields: upload one or more images as multipart/form-data "
                        "fields named 'image' (or send JSON naming a dataset)");
    for (int i = 0; i < rq->n_uploads; i++) {
        srv_upload *u = &rq->uploads[i];
        char shown[64];
        snprintf(shown, sizeof shown, "%s", u->name);
        if (!clean_upload_name(u, i))
            return adj_fail(err, errsz, ADJ_ERR_ARG,
                            "image %d: the file name '%.60s' cannot be used (no leading '.', no "
                            "control characters, UTF-8, at most 200 bytes)", i + 1, shown);
        char msg[ADJ_ERRLEN];
        if (u->len == 0)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "image '%.100s': empty file", u->name);
        uint8_t *data = NULL; /* one upload in memory at a time, for its header */
        int rc = srv_upload_read(rq, u, &data, err, errsz);
        if (rc)
            return rc;
        rc = img_probe(data, u->len, NULL, NULL, NULL, msg, sizeof msg);
        free(data);
        if (rc)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "image '%.100s': %s", u->name, msg);
    }
    qsort(rq->uploads, (size_t)rq->n_uploads, sizeof *rq->uploads, cmp_upload);
    for (int i = 1; i < rq->n_uploads; i++)
        if (strcmp(rq->uploads[i].name, rq->uploads[i - 1].name) == 0)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "two images named '%.100s'",
                            rq->uploads[i].name);
    srv_eval_set s;
    memset(&s, 0, sizeof s);
    s.n = s.n_folder = (size_t)rq->n_uploads;
    if (!(s.files = calloc(s.n, sizeof *s.files)))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    int rc = ADJ_OK;
    for (size_t i = 0; i < s.n && !rc; i++)
        if (!(s.files[i] = strdup(rq->uploads[i].name)))
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if (!rc && rq->labels_text) {
        char *copy = malloc(rq->labels_len + 1);
        label_entry *e = NULL;
        size_t ne = 0;
        if (!copy || !(s.truth = malloc(s.n * sizeof *s.truth)) ||
            !(s.labels_from = strdup("the labels field"))) {
            rc = adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        } else {
            memcpy(copy, rq->labels_text, rq->labels_len + 1);
            rc = parse_labels(copy, rq->labels_len, classes, "labels", &e, &ne, err, errsz);
            if (!rc)
                rc = apply_labels(e, ne, s.files, s.n, s.truth, "the labels field", err, errsz);
        }
        free(e);
        free(copy);
    }
    if (rc) {
        srv_eval_set_free(&s);
        return rc;
    }
    *out = s;
    return ADJ_OK;
}
