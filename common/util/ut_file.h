/*
 * ut_file.h - files and folders: whole-file read, atomic write, mkdir -p,
 * remove tree, and the small POSIX helpers they are made of.
 *
 *     char err[ADJ_ERRLEN], *text;
 *     size_t len;
 *     int rc = ut_read_file(path, 1 << 20, 0, &text, &len, err, sizeof err);
 *     if (rc == ADJ_ERR_NOTFOUND) ...;  else if (rc) ...report err...;
 *     ...; free(text);
 *
 *     rc = ut_write_atomic(dir, "status.json", text, len, 0600, err, sizeof err);
 *
 * Errors: functions return ADJ_OK or a negative adj_status code with one
 * line in err (which may be NULL). Functions that make system calls also
 * leave errno as the failing call set it, so that a caller can tell ENOSPC
 * from EACCES. Output parameters are written only on success. Nothing here
 * logs, exits or keeps state; everything is thread-safe. Paths are limited
 * to PATH_MAX bytes (ADJ_ERR_ARG with ENAMETOOLONG beyond).
 */
#ifndef UT_FILE_H
#define UT_FILE_H

#include <stddef.h>
#include <sys/types.h>

/**
 * Flag of ut_open_regular and ut_read_file: never through a symbolic link
 * (O_NOFOLLOW: ELOOP) and only a regular file (EISDIR for a folder, EINVAL
 * for a FIFO, socket or device; opened with O_NONBLOCK so that a FIFO does
 * not hang, the flag cleared afterwards).
 */
#define UT_NOFOLLOW 1

/**
 * open(2) with O_CLOEXEC and UT_NOFOLLOW's rules. Returns the new fd (the
 * caller closes it), or -1 with errno set (ELOOP: a link; EISDIR, EINVAL:
 * not a regular file). mode is used when flags hold O_CREAT.
 */
int ut_open_regular(const char *path, int flags, mode_t mode);

/**
 * Reads the rest of fd, at most max bytes, into a new NUL-terminated buffer
 * (*out, free()) and its length (*len). A regular file is read up to the
 * size fstat gives at the start (bytes appended meanwhile are not read);
 * anything else until end of file. Errors: ADJ_ERR_LIMIT (errno EFBIG) over
 * max, ADJ_ERR_IO, ADJ_ERR_NOMEM. The fd stays open.
 */
int ut_read_fd(int fd, size_t max, char **out, size_t *len, char *err, size_t errsz);

/**
 * Reads the whole file at path as ut_read_fd does; flags 0 or UT_NOFOLLOW.
 * Errors: ADJ_ERR_NOTFOUND (errno ENOENT) when it does not exist,
 * ADJ_ERR_LIMIT, ADJ_ERR_IO, ADJ_ERR_NOMEM; err names the path.
 */
int ut_read_file(const char *path, size_t max, int flags, char **out, size_t *len, char *err,
                 size_t errsz);

/** Writes all len bytes to fd, retrying on EINTR and short writes. ADJ_OK or ADJ_ERR_IO (errno set). */
int ut_write_all(int fd, const void *data, size_t len);

/** fsync of a folder, so that a rename or a new entry in it is durable. ADJ_OK or ADJ_ERR_IO. */
int ut_fsync_dir(const char *dir);

/**
 * Writes dir/name atomically: a new temporary file dir/.name.tmp (O_EXCL |
 * O_NOFOLLOW, so never through a link planted there; a leftover of a crash
 * is removed first) with mode, fsync, rename over name (which replaces a
 * link, never its target), fsync of dir. On failure (a full disk: ENOSPC)
 * name is as it was, the temporary file is removed, errno and err give the
 * real cause. ADJ_OK, ADJ_ERR_ARG (too long), ADJ_ERR_IO.
 */
int ut_write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
                    char *err, size_t errsz);

/**
 * mkdir -p: creates path and its missing parents with mode (an existing
 * folder is fine). ADJ_OK; ADJ_ERR_IO with errno of the step that failed
 * (ENOTDIR when path exists and is not a folder); ADJ_ERR_ARG when too long.
 */
int ut_mkdir_p(const char *path, mode_t mode, char *err, size_t errsz);

/**
 * rm -rf: removes path and everything under it, never following symbolic
 * links (a link is removed, not its target). A missing path is ADJ_OK.
 * ADJ_ERR_IO (errno set) when something could not be removed.
 */
int ut_rmtree(const char *path, char *err, size_t errsz);

#endif
