/*
 * ds_metrics.h — counters, gauges and histograms in Prometheus text format.
 *
 * A registry holds metric families (one name, help, type) and their series
 * (one label set each).  Registration takes a mutex and returns a handle
 * that stays valid until ds_metrics_destroy(); calling it again with the
 * same name and labels returns the same handle, so callers may register
 * lazily (e.g. one series per DLQ reason on first use).  Updating through
 * a handle is lock-free (C11 atomics) and may happen on any thread.
 *
 * Names: `prefix` + name, [a-zA-Z_:][a-zA-Z0-9_:]*.  Counters get `_total`
 * appended (unless the name already ends in it).  One name has one type.
 *
 * Labels: NULL/"" or `k="v",k2="v2"` as a C string, values written raw
 * (not escaped): the registry parses them and escapes `\`, `"` and newline
 * when rendering.  A value ends at the `"` that is followed by `,name="` or
 * by the end of the string, so values may contain quotes.  Label names are
 * [a-zA-Z_][a-zA-Z0-9_]*, no duplicates; histograms may not use `le`.
 *
 * common/ knows no business: every name is given by the caller.
 */
#ifndef DS_METRICS_H
#define DS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_err.h"

typedef struct ds_metrics ds_metrics_t;
typedef struct ds_counter ds_counter_t;
typedef struct ds_gauge ds_gauge_t;
typedef struct ds_histogram ds_histogram_t;

/** Default latency buckets in seconds: 0.0005 0.001 0.0025 0.005 0.01 0.025
 *  0.05 0.1 0.25 0.5 1 2.5 5 10 (DS_LATENCY_BOUNDS_N of them). */
extern const double ds_latency_bounds[];
#define DS_LATENCY_BOUNDS_N 14

/** New empty registry; `prefix` (may be NULL or "") is put before every
 *  name, e.g. "dealsignal_".  NULL on out of memory or an invalid prefix. */
ds_metrics_t *ds_metrics_new(const char *prefix);
/** Frees the registry and every handle it gave out.  Accepts NULL.  No
 *  other thread may use the registry or its handles any more. */
void ds_metrics_destroy(ds_metrics_t *m);

/** The counter `prefix name_total{labels}`; created on first call.  Any
 *  thread (takes the registry mutex).  NULL when m is NULL, the name or the
 *  labels are invalid, the name is registered with another type, or out of
 *  memory.  `help` of the first registration of a family wins. */
ds_counter_t *ds_metrics_counter(ds_metrics_t *m, const char *name, const char *help,
                                 const char *labels);
/** Adds n, lock-free, any thread.  A NULL counter is ignored. */
void ds_counter_add(ds_counter_t *c, uint64_t n);
/** Current value (0 for NULL). */
uint64_t ds_counter_get(const ds_counter_t *c);

/** The gauge `prefix name{labels}`, as ds_metrics_counter(). */
ds_gauge_t *ds_metrics_gauge(ds_metrics_t *m, const char *name, const char *help,
                             const char *labels);
/** Lock-free, any thread; NULL gauges are ignored. */
void ds_gauge_set(ds_gauge_t *g, double v);
void ds_gauge_add(ds_gauge_t *g, double delta);
double ds_gauge_get(const ds_gauge_t *g);

/** A gauge whose value is fn(opaque), called at render time on the thread
 *  that renders (the HTTP thread), with the registry mutex held: fn must be
 *  thread-safe, quick, and must not call into this registry.  Registering
 *  the same name and labels again replaces fn and opaque; fn == NULL
 *  removes the series from the output (do that before opaque dies).
 *  DS_ERR_INVAL (bad name/labels, type clash), DS_ERR_NOMEM. */
ds_err_t ds_metrics_gauge_fn(ds_metrics_t *m, const char *name, const char *help,
                             const char *labels, double (*fn)(void *opaque), void *opaque) DS_WUR;

/** The histogram `prefix name{labels}` with upper bounds `bounds[0..n)`
 *  (finite, strictly increasing, 1 ≤ n ≤ 64; +Inf is implicit).  The bounds
 *  are copied.  Registering an existing series returns it when the bounds
 *  are equal, NULL otherwise; all series of a family share the bounds. */
ds_histogram_t *ds_metrics_histogram(ds_metrics_t *m, const char *name, const char *help,
                                     const char *labels, const double *bounds, size_t n);
/** Records v (lock-free, any thread; NULL ignored).  NaN is ignored. */
void ds_histogram_observe(ds_histogram_t *h, double v);
/** Observations so far, and their sum (for tests and logs). */
uint64_t ds_histogram_count(const ds_histogram_t *h);
double ds_histogram_sum(const ds_histogram_t *h);

/** Appends the whole registry to `out` in the Prometheus text exposition
 *  format 0.0.4: families in registration order, one `# HELP` and one
 *  `# TYPE` each, series in registration order; histograms as cumulative
 *  `_bucket{le=...}` lines ending with `+Inf`, then `_sum` and `_count`.
 *  Any thread (takes the registry mutex).  Errors from ds_buf (NOMEM,
 *  LIMIT_EXCEEDED) leave `out` partially written. */
ds_err_t ds_metrics_render(ds_metrics_t *m, ds_buf_t *out) DS_WUR;

#endif
