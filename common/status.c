#include "status.h"

#include <stdarg.h>
#include <stdio.h>

const char *adj_strerror(int status)
{
    switch (status) {
    case ADJ_OK: return "ok";
    case ADJ_ERR_ARG: return "bad argument";
    case ADJ_ERR_NOMEM: return "out of memory";
    case ADJ_ERR_IO: return "input/output error";
    case ADJ_ERR_FORMAT: return "malformed data";
    case ADJ_ERR_LIMIT: return "over a limit";
    case ADJ_ERR_UNSUPPORTED: return "unsupported";
    case ADJ_ERR_STATE: return "call out of order";
    case ADJ_ERR_NOTFOUND: return "not found";
    case ADJ_ERR_BUSY: return "busy";
    case ADJ_ERR_CONFLICT: return "conflict";
    default: return "unknown error";
    }
}

int adj_fail(char *err, size_t errsz, int status, const char *fmt, ...)
{
    if (err && errsz > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return status;
}
