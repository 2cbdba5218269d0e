/*
 * alloc.h — how a worker uses glibc's allocator: free memory kept while
 * busy, given back once idle.
 *
 * glibc gives a heap's free top back to the system as soon as it passes
 * the trim threshold (128 KiB, raised only by freed mmapped chunks).  A
 * batch allocates its outputs (librdkafka's copies of them) and frees them
 * when they are acknowledged, so every batch faulted the same pages in
 * again.  ds_alloc_tune() raises the thresholds; free memory is kept while
 * the worker is busy and given back once it is idle for
 * DS_ALLOC_IDLE_TRIM_MS (ds_alloc_idle: malloc_trim, once per idle spell).
 */
#ifndef DS_ALLOC_H
#define DS_ALLOC_H

#include <stdbool.h>
#include <stdint.h>

/* Idle this long after a message: the free memory goes back. */
#define DS_ALLOC_IDLE_TRIM_MS 1000

typedef struct ds_alloc_idle {
    bool trimmed; /* free memory given back since the last message */
} ds_alloc_idle_t;

/** Raise the trim and mmap thresholds (idempotent; any thread, before the
 *  workers allocate). */
void ds_alloc_tune(void);

/** A message came: the next idle spell gives memory back again. */
void ds_alloc_busy(ds_alloc_idle_t *a);

/** The worker has had nothing to do for idle_ms: after
 *  DS_ALLOC_IDLE_TRIM_MS, give the free memory back (once). */
void ds_alloc_idle(ds_alloc_idle_t *a, int64_t idle_ms);

#endif
