/*
 * cli_io.c - see cli_io.h.
 */
#include "cli_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"

static int fail(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    if (err && errsz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *cli_image_type(const unsigned char *h, size_t n)
{
    /* the contract names one type for the netpbm family; P5 (greyscale) goes with it */
    static const char *const types[] = {
        [IMG_FMT_UNKNOWN] = NULL,
        [IMG_FMT_JPEG] = "image/jpeg",
        [IMG_FMT_PNG] = "image/png",
        [IMG_FMT_PPM] = "image/x-portable-pixmap",
    };
    _Static_assert(sizeof types / sizeof types[0] == IMG_FMT_PPM + 1, "one type per format");
    return types[img_sniff(h, n)];
}

int cli_image_check(const char *path, const char **type, char *err, size_t errsz)
{
    struct stat st;
    unsigned char head[8];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errsz, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, errsz, "%s: not a regular file", path);
    }
    ssize_t n = read(fd, head, sizeof head);
    int e = errno;
    close(fd);
    if (n < 0)
        return fail(err, errsz, "%s: %s", path, strerror(e));
    const char *t = cli_image_type(head, (size_t)n);
    if (!t)
        return fail(err, errsz, "%s: not a JPEG, PNG or PPM image", path);
    *type = t;
    return 0;
}

int cli_read_file(const char *path, char **data, size_t *len, char *err, size_t errsz)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errsz, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, errsz, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size, n = 0;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return fail(err, errsz, "%s: out of memory (%zu bytes)", path, size);
    }
    while (n < size) {
        ssize_t r = read(fd, buf + n, size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            free(buf);
            close(fd);
            return fail(err, errsz, "%s: %s", path, e ? strerror(e) : "file shrank while reading");
        }
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

int cli_write_file(const char *path, const void *data, size_t len, char *err, size_t errsz)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp)
        return fail(err, errsz, "%s: out of memory", path);
    /* the temporary name is in path's folder, so rename() does not cross file systems */
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    const char *slash = strrchr(tmp, '/');
    char *base = slash ? (char *)slash + 1 : tmp;
    if (*base != '.') { /* hide the temporary file: ".name.tmp.XXXXXX" */
        memmove(base + 1, base, strlen(base) + 1);
        *base = '.';
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return fail(err, errsz, "cannot write %s: %s", path, strerror(e));
    }
    /* mkstemp makes 0600; give the file the mode an ordinary open() would */
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um);
    const char *p = data;
    size_t left = len;
    int e = 0;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            e = errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!e && fsync(fd) && errno != EINVAL && errno != EROFS)
        e = errno;
    if (close(fd) && !e)
        e = errno;
    if (!e && rename(tmp, path))
        e = errno;
    if (e) {
        unlink(tmp);
        free(tmp);
        return fail(err, errsz, "cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}

int cli_mkdirs(const char *path, char *err, size_t errsz)
{
    struct stat st;
    size_t n = strlen(path);
    if (!n)
        return fail(err, errsz, "empty folder name");
    char *p = strdup(path);
    if (!p)
        return fail(err, errsz, "%s: out of memory", path);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) && errno != EEXIST) {
            int e = errno;
            free(p);
            return fail(err, errsz, "cannot create folder %s: %s", path, strerror(e));
        }
        p[i] = c;
    }
    free(p);
    if (stat(path, &st) || !S_ISDIR(st.st_mode))
        return fail(err, errsz, "%s exists and is not a folder", path);
    return 0;
}

void cli_safe_name(const char *name, const char *suffix, char *out, size_t n)
{
    size_t o = 0, max = n > 1 ? n - 1 : 0;
    size_t sl = suffix ? strlen(suffix) : 0;
    max = max > sl ? max - sl : 0;
    if (max > 200)
        max = 200;
    for (const char *s = name; *s && o < max; s++) {
        char c = *s;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '(' || c == ')' || c == '+' || c == ',' || c == '.' || c == '_' ||
                   c == '-';
        if (o == 0 && (c == '.' || c == '-'))
            keep = 0;
        out[o++] = keep ? c : '_';
    }
    if (o == 0 && max > 0)
        out[o++] = '_';
    if (!n)
        return;
    out[o] = '\0';
    if (suffix && o + sl < n)
        memcpy(out + o, suffix, sl + 1);
}

json_t *cli_json_path(const char *path)
{
    json_t *j = json_string(path);
    if (j)
        return j;
    char *copy = strdup(path);
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p > 0x7f)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

int cli_print_json(FILE *f, const json_t *j, int pretty)
{
    /* 15 significant digits give back the server's own text for every number
     * written with up to 15 (advjpgd writes 9), where jansson's default of 17
     * would turn 0.43 into 0.42999999999999999 */
    size_t flags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(15) |
                   (pretty ? JSON_INDENT(2) : JSON_COMPACT);
    if (json_dumpf(j, f, flags) || fputc('\n', f) == EOF || fflush(f))
        return -1;
    return 0;
}
