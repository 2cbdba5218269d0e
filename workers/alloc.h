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
 *
 * What the heap holds is exported, for a process's memory to be read
 * apart: heap_in_use_bytes (live allocations of every thread, librdkafka's
 * included) and heap_free_bytes (free memory the allocator keeps instead of
 * giving it back), from glibc's mallinfo2, at most once a second
 * (DS_ALLOC_SAMPLE_MS) and after each idle trim.  The rest of the RSS is
 * code, stacks and the pages of free memory the kernel has not taken back.
 */
#ifndef DS_ALLOC_H
#define DS_ALLOC_H

#include <stdbool.h>
#include <stdint.h>

#include "ds_metrics.h"

/* Idle this long after a message: the free memory goes back. */
#define DS_ALLOC_IDLE_TRIM_MS 1000
/* The heap gauges are set at most this often. */
#define DS_ALLOC_SAMPLE_MS 1000

typedef struct ds_alloc_idle {
    bool trimmed;                   /* free memory given back since the last message */
    int64_t sampled_ms;             /* when the gauges were last set (0: never) */
    ds_gauge_t *in_use, *free_held; /* NULL without metrics */
} ds_alloc_idle_t;

/** Raise the trim and mmap thresholds (idempotent; any thread, before the
 *  workers allocate). */
void ds_alloc_tune(void);

/** The heap gauges of metrics m (may be NULL: none); process-wide, so the
 *  two workers of `run` set the same ones. */
void ds_alloc_metrics(ds_alloc_idle_t *a, ds_metrics_t *m);

/** Set the heap gauges if DS_ALLOC_SAMPLE_MS have passed since the last
 *  time (now_ms: the monotonic clock). */
void ds_alloc_sample(ds_alloc_idle_t *a, int64_t now_ms);

/** A message came: the next idle spell gives memory back again. */
void ds_alloc_busy(ds_alloc_idle_t *a);

/** The worker has had nothing to do for idle_ms: after
 *  DS_ALLOC_IDLE_TRIM_MS, give the free memory back (once). */
void ds_alloc_idle(ds_alloc_idle_t *a, int64_t idle_ms);

#endif
