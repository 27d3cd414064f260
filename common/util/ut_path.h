/*
 * ut_path.h - building paths.
 *
 *     char *p = ut_path_join(dir, "rows.csv");   // "dir/rows.csv"
 *     if (!p) ...out of memory...;  ...; free(p);
 */
#ifndef UT_PATH_H
#define UT_PATH_H

#include <stddef.h>

/**
 * a "/" b as a new string (free()); NULL if out of memory. One slash joins
 * them: a trailing slash of a is not doubled; an empty a gives b.
 */
char *ut_path_join(const char *a, const char *b);

/**
 * a "/" b into buf (bufsz bytes) as ut_path_join builds it. ADJ_OK, or
 * ADJ_ERR_ARG with a message in err when it does not fit (buf is then "").
 */
int ut_path_join_buf(char *buf, size_t bufsz, const char *a, const char *b, char *err,
                     size_t errsz);

#endif
