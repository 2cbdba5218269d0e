/*
 * ds_http.h — the operations endpoint: /metrics, /healthz, /readyz.
 *
 * A libmicrohttpd server with its own polling thread:
 *   GET /metrics  200 text/plain; version=0.0.4 (ds_metrics_render)
 *   GET /healthz  200 "ok\n" while the process serves at all
 *   GET /readyz   200 "ready\n", or 503 "<reason>\n" when ready() says no
 *   other paths   404; methods other than GET/HEAD on the routes: 405.
 * HEAD answers like GET without a body.
 */
#ifndef DS_HTTP_H
#define DS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "ds_metrics.h"

typedef struct ds_http ds_http_t;

/** Readiness probe: true when ready; otherwise false with a short reason
 *  in why (NUL-terminated, at most why_size bytes).  Called on the HTTP
 *  thread for every GET /readyz: must be thread-safe and quick. */
typedef bool (*ds_http_ready_fn)(void *opaque, char *why, size_t why_size);

/** Starts serving on addr "HOST:PORT" ("127.0.0.1:9100", "[::1]:9100",
 *  "0.0.0.0:0", ":9100" = every IPv4 address; PORT 0 picks a free port,
 *  see ds_http_port()).  `m` (may be NULL: empty /metrics) and `ready`
 *  (NULL: always ready) with `opaque` are borrowed and must outlive the
 *  server.  NULL with a reason in errstr on a malformed address, an
 *  unresolvable host, or when the address cannot be bound.  Any thread. */
ds_http_t *ds_http_start(const char *addr, ds_metrics_t *m, ds_http_ready_fn ready, void *opaque,
                         char *errstr, size_t errstr_size);

/** The port actually bound (the one picked when PORT was 0). */
int ds_http_port(const ds_http_t *h);

/** Stops the server (waits for its thread) and frees it.  Accepts NULL. */
void ds_http_stop(ds_http_t *h);

#endif
