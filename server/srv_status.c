#include "srv_status.h"

#include <microhttpd.h>

#include "status.h"

unsigned srv_status_http(int rc)
{
    switch (rc) {
    case ADJ_OK: return MHD_HTTP_OK;
    case ADJ_ERR_ARG:
    case ADJ_ERR_FORMAT:
    case ADJ_ERR_LIMIT: return MHD_HTTP_BAD_REQUEST;
    case ADJ_ERR_NOTFOUND: return MHD_HTTP_NOT_FOUND;
    case ADJ_ERR_CONFLICT: return MHD_HTTP_CONFLICT;
    case ADJ_ERR_UNSUPPORTED: return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
    case ADJ_ERR_NOMEM:
    case ADJ_ERR_BUSY:
    case ADJ_ERR_STATE: return MHD_HTTP_SERVICE_UNAVAILABLE;
    default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

unsigned srv_status_http_internal(int rc)
{
    return rc == ADJ_ERR_NOMEM || rc == ADJ_ERR_BUSY ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                     : MHD_HTTP_INTERNAL_SERVER_ERROR;
}
