/*
 * srv_status.h - the one error map: adj status codes (status.h) to HTTP
 * statuses. Domain modules (srv_jobs, srv_eval, srv_worker, common/) return
 * adj codes with a message; only the HTTP side turns them into a status,
 * through these two functions.
 *
 *     int rc = srv_jobs_result(js, id, &o, err, sizeof err);
 *     if (rc) return respond_error(r, srv_status_http(rc), "%s", err);
 *
 *   ADJ_OK                                     200 OK
 *   ADJ_ERR_ARG, ADJ_ERR_FORMAT, ADJ_ERR_LIMIT 400 Bad Request (a value, a file or
 *                                              an image the request names is wrong,
 *                                              over a limit such as the pixels)
 *   ADJ_ERR_NOTFOUND                           404 Not Found
 *   ADJ_ERR_UNSUPPORTED                        415 Unsupported Media Type
 *   ADJ_ERR_NOMEM, ADJ_ERR_BUSY, ADJ_ERR_STATE 503 Service Unavailable (out of memory,
 *                                              a full queue, shutting down, the jobs
 *                                              folder unusable: try again later)
 *   ADJ_ERR_IO, anything else                  500 Internal Server Error
 *
 * A request body over the byte limit is 413 (MHD_HTTP_CONTENT_TOO_LARGE);
 * the code that counts the body's bytes answers it, not this map.
 */
#ifndef SRV_STATUS_H
#define SRV_STATUS_H

/** The HTTP status for adj status rc, as the table above gives it. */
unsigned srv_status_http(int rc);

/**
 * The HTTP status when a step of the server's own failed (encoding an image
 * it made, a job it built): 503 for ADJ_ERR_NOMEM and ADJ_ERR_BUSY, else 500
 * whatever the code (a bad argument there is the server's fault).
 */
unsigned srv_status_http_internal(int rc);

#endif
