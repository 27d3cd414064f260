/*
 * status.h - error codes and messages shared by all of libadvjpg.
 *
 * Every function in common/ that can fail returns an int: ADJ_OK (0) on
 * success or one of the negative adj_status codes below. Functions that can
 * fail for a reason worth telling the user also take `char *err, size_t errsz`:
 * a caller-supplied buffer that receives one line describing what was wrong
 * (it may be NULL when the caller does not want the text). Output parameters
 * are written only on success. common/ never prints and never exits.
 *
 *     char err[ADJ_ERRLEN];
 *     int rc = model_load(&spec, path, &m, err, sizeof err);
 *     if (rc) fprintf(stderr, "advjpgd: %s\n", err);
 */
#ifndef ADJ_STATUS_H
#define ADJ_STATUS_H

#include <stddef.h>

/** Suggested size of an error message buffer. */
#define ADJ_ERRLEN 512

enum adj_status {
    ADJ_OK = 0,
    ADJ_ERR_ARG = -1,         /**< bad argument or parameter value */
    ADJ_ERR_NOMEM = -2,       /**< out of memory */
    ADJ_ERR_IO = -3,          /**< a file is missing, unreadable or unwritable */
    ADJ_ERR_FORMAT = -4,      /**< malformed data: spec, weights, image, labels */
    ADJ_ERR_LIMIT = -5,       /**< over a configured limit (pixels, bytes) */
    ADJ_ERR_UNSUPPORTED = -6, /**< a valid but unsupported format or feature */
    ADJ_ERR_STATE = -7,       /**< call out of order (e.g. backward before forward) */
    ADJ_ERR_NOTFOUND = -8,    /**< the named thing (file, job, route) does not exist */
    ADJ_ERR_BUSY = -9,        /**< temporarily unable: a queue is full, a resource is held */
    ADJ_ERR_CONFLICT = -10,   /**< the named thing's state forbids it (a running job deleted) */
};

/** Short English name of a status code ("bad argument", ...). Never NULL. */
const char *adj_strerror(int status);

/**
 * Writes a printf-style message into err (if err is not NULL and errsz > 0)
 * and returns status, so that error paths read `return adj_fail(...)`.
 */
int adj_fail(char *err, size_t errsz, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
