#include "ut_file.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

/* adj_fail that leaves errno as e (the header promises the failing call's errno). */
__attribute__((format(printf, 5, 6))) static int fail(int e, char *err, size_t errsz, int status,
                                                       const char *fmt, ...)
{
    if (err && errsz > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    errno = e;
    return status;
}

int ut_open_regular(const char *path, int flags, mode_t mode)
{
    int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    struct stat st;
    int e = fstat(fd, &st) ? errno : S_ISDIR(st.st_mode) ? EISDIR : !S_ISREG(st.st_mode) ? EINVAL : 0;
    if (e) {
        close(fd);
        errno = e;
        return -1;
    }
    if (!(flags & O_NONBLOCK)) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    return fd;
}

int ut_read_fd(int fd, size_t max, char **out, size_t *len, char *err, size_t errsz)
{
    struct stat st;
    if (max > SIZE_MAX - 2)
        max = SIZE_MAX - 2;
    if (fstat(fd, &st))
        return fail(errno, err, errsz, ADJ_ERR_IO, "%s", strerror(errno));
    int regular = S_ISREG(st.st_mode);
    if (regular && (uint64_t)st.st_size > max) {
        errno = EFBIG;
        return fail(errno, err, errsz, ADJ_ERR_LIMIT, "larger than %zu bytes", max);
    }
    size_t cap = regular ? (size_t)st.st_size + 1 : 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        errno = ENOMEM;
        return fail(errno, err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    for (;;) {
        if (n + 1 == cap) {
            if (regular) /* what fstat saw; bytes appended meanwhile are not wanted */
                break;
            if (n > max) {
                free(buf);
                errno = EFBIG;
                return fail(errno, err, errsz, ADJ_ERR_LIMIT, "larger than %zu bytes", max);
            }
            size_t nc = cap > (max + 2) / 2 ? max + 2 : cap * 2;
            char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                errno = ENOMEM;
                return fail(errno, err, errsz, ADJ_ERR_NOMEM, "out of memory");
            }
            buf = nb;
            cap = nc;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return fail(errno, err, errsz, ADJ_ERR_IO, "%s", strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        free(buf);
        errno = EFBIG;
        return fail(errno, err, errsz, ADJ_ERR_LIMIT, "larger than %zu bytes", max);
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return ADJ_OK;
}

int ut_read_file(const char *path, size_t max, int flags, char **out, size_t *len, char *err,
                 size_t errsz)
{
    int fd = (flags & UT_NOFOLLOW) ? ut_open_regular(path, O_RDONLY, 0)
                                   : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        fail(errno, err, errsz, e == ENOENT ? ADJ_ERR_NOTFOUND : ADJ_ERR_IO, "cannot read %s: %s", path,
                 e == ELOOP && (flags & UT_NOFOLLOW) ? "it is a symbolic link (refused)"
                 : e == EINVAL && (flags & UT_NOFOLLOW) ? "it is not a regular file"
                                                        : strerror(e));
        errno = e;
        return e == ENOENT ? ADJ_ERR_NOTFOUND : ADJ_ERR_IO;
    }
    char msg[ADJ_ERRLEN];
    int rc = ut_read_fd(fd, max, out, len, msg, sizeof msg);
    int e = errno;
    close(fd);
    errno = e;
    if (rc)
        return fail(errno, err, errsz, rc, "cannot read %s: %s", path, msg);
    return ADJ_OK;
}

int ut_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return ADJ_ERR_IO;
        }
        p += w;
        len -= (size_t)w;
    }
    return ADJ_OK;
}

int ut_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ADJ_ERR_IO;
    int rc = fsync(fd) ? ADJ_ERR_IO : ADJ_OK;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int ut_write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
                    char *err, size_t errsz)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return fail(errno, err, errsz, ADJ_ERR_ARG, "path too long: %.64s/%.64s", dir, name);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return fail(errno, err, errsz, ADJ_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (ut_write_all(fd, data, len) || fsync(fd)) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return fail(errno, err, errsz, ADJ_ERR_IO, "cannot write %s: %s", tmp, strerror(e));
    }
    if (close(fd)) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return fail(errno, err, errsz, ADJ_ERR_IO, "cannot write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return fail(errno, err, errsz, ADJ_ERR_IO, "cannot rename %s: %s", tmp, strerror(e));
    }
    ut_fsync_dir(dir);
    return ADJ_OK;
}

int ut_mkdir_p(const char *path, mode_t mode, char *err, size_t errsz)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return fail(errno, err, errsz, ADJ_ERR_ARG, "directory name too long: %.64s...", path);
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) && errno != EEXIST)
            return fail(errno, err, errsz, ADJ_ERR_IO, "cannot create directory %s: %s", buf,
                            strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, mode) && errno != EEXIST)
        return fail(errno, err, errsz, ADJ_ERR_IO, "cannot create directory %s: %s", buf,
                        strerror(errno));
    struct stat st;
    if (stat(buf, &st))
        return fail(errno, err, errsz, ADJ_ERR_IO, "cannot create directory %s: %s", buf,
                        strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return fail(errno, err, errsz, ADJ_ERR_IO, "%s is not a directory", path);
    }
    return ADJ_OK;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if ((flag == FTW_DP ? rmdir(path) : unlink(path)) && errno != ENOENT)
        return -1;
    return 0;
}

int ut_rmtree(const char *path, char *err, size_t errsz)
{
    struct stat st;
    if (lstat(path, &st))
        return errno == ENOENT ? ADJ_OK
                               : fail(errno, err, errsz, ADJ_ERR_IO, "cannot remove %s: %s", path,
                                          strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) && errno != ENOENT)
            return fail(errno, err, errsz, ADJ_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
        return ADJ_OK;
    }
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS))
        return fail(errno, err, errsz, ADJ_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return ADJ_OK;
}
