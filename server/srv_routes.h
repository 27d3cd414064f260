/*
 * srv_routes.h - the route table: one row (srv_route, srv_req.h) per
 * endpoint. The Allow header, the 404 answer's list of endpoints, the
 * "it takes: ..." lists and the metrics names all come from its rows.
 * Adding an endpoint is one row in srv_routes.c plus its functions (srv_ep.h).
 */
#ifndef SRV_ROUTES_H
#define SRV_ROUTES_H

#include <stddef.h>

#include "srv_req.h"

/** The row whose path matches url ("{id}" one segment, a final "*" the rest), NULL if none. */
const srv_route *srv_routes_find(const char *url);

/** "POST /classify, POST /attack, ..." of the listed rows into buf; returns buf. */
const char *srv_routes_list(char *buf, size_t n);

/** "/result, /rows, ..." : the listed rows under prefix ("/jobs/{id}"), without it. */
const char *srv_routes_under(const char *prefix, char *buf, size_t n);

#endif
