/*
 * ds_backoff.h — how long a retry waits: a wait that doubles after every
 * failure, from a first wait up to a ceiling, and starts again from the
 * first one after a success (a new ds_backoff_t).
 *
 * Every retry loop of the workers, the Redis Cluster client and
 * `repartition` uses it, so that an outage is waited out the same way
 * everywhere: 100 ms doubling up to 5 s for a batch's Redis rounds and its
 * outputs' deliveries (DS_BACKOFF_RETRY_MIN_MS), 200 ms doubling up to 5 s
 * for the schema registry and a worker's start (DS_BACKOFF_SLOW_MIN_MS);
 * the cluster client's repair and repartition's rounds pass their own
 * bounds.  O(1), no allocation, no clock: the caller sleeps.
 */
#ifndef DS_BACKOFF_H
#define DS_BACKOFF_H

#include <stdint.h>

typedef struct ds_backoff {
    int64_t ms;     /* the next wait */
    int64_t max_ms; /* the ceiling */
} ds_backoff_t;

/* A batch's retries (Redis rounds, deliveries): 100 ms doubling to 5 s. */
#define DS_BACKOFF_RETRY_MIN_MS 100
/* What waits for another service to come up (schema registry, a worker's
 * start): 200 ms doubling to 5 s. */
#define DS_BACKOFF_SLOW_MIN_MS 200
#define DS_BACKOFF_MAX_MS 5000

/** A backoff whose first wait is min_ms, never above max_ms. */
ds_backoff_t ds_backoff_make(int64_t min_ms, int64_t max_ms);

/** The wait to do now; the next one is twice as long (up to the ceiling). */
int64_t ds_backoff_next(ds_backoff_t *b);

/** The wait ds_backoff_next() returns next, without taking it. */
int64_t ds_backoff_peek(const ds_backoff_t *b);

#endif
