/*
 * alloc.c — the allocator's thresholds and the idle trim (alloc.h).
 *
 * Fixing the trim threshold also fixes the mmap threshold, so that one is
 * raised too (else every allocation of 128 KiB or more, such as a fetch
 * response, would be an mmap and a munmap).  What an idle trim gives back
 * is above all the pages freed since the burst: the consumer queue's
 * messages, up to queued.max.messages.kbytes.
 */
#include "alloc.h"

#include <malloc.h>

#include "ds_clock.h"
#include "ds_log.h"

/* Under AddressSanitizer the allocator is ASan's: glibc's arenas, which
 * mallinfo2 and malloc_trim walk, were never set up, and two worker
 * threads sampling them at once (`run`) crashed in int_mallinfo.  The
 * heap gauges then stay 0 and nothing is trimmed. */
#if defined(__SANITIZE_ADDRESS__)
#define GLIBC_HEAP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GLIBC_HEAP 0
#endif
#endif
#ifndef GLIBC_HEAP
#define GLIBC_HEAP 1
#endif

#define TRIM_THRESHOLD (16 << 20)
#define MMAP_THRESHOLD (32 << 20) /* glibc's maximum on 64-bit */

void ds_alloc_tune(void) { /* idempotent: `run` has two workers */
    if (!mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) || !mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        DS_DEBUG("worker", "malloc thresholds not set (not glibc's allocator?)");
}

void ds_alloc_busy(ds_alloc_idle_t *a) {
    a->trimmed = false;
}

void ds_alloc_metrics(ds_alloc_idle_t *a, ds_metrics_t *m) {
    if (!m)
        return;
    a->in_use = ds_metrics_gauge(m, "heap_in_use_bytes",
                                 "Bytes of the heap in live allocations, every thread's (glibc "
                                 "mallinfo2: arenas and mmapped chunks)",
                                 NULL);
    a->free_held = ds_metrics_gauge(
        m, "heap_free_bytes",
        "Bytes of free memory the allocator keeps in its arenas instead of giving them back", NULL);
}

static void sample(ds_alloc_idle_t *a, int64_t now_ms) {
    a->sampled_ms = now_ms;
    if (!a->in_use || !GLIBC_HEAP)
        return;
    /* locks each arena for a walk of its bins: microseconds, once a second */
    struct mallinfo2 mi = mallinfo2();
    ds_gauge_set(a->in_use, (double)(mi.uordblks + mi.hblkhd));
    ds_gauge_set(a->free_held, (double)mi.fordblks);
}

void ds_alloc_sample(ds_alloc_idle_t *a, int64_t now_ms) {
    if (a->in_use && now_ms - a->sampled_ms >= DS_ALLOC_SAMPLE_MS)
        sample(a, now_ms);
}

void ds_alloc_idle(ds_alloc_idle_t *a, int64_t idle_ms) {
    if (a->trimmed || idle_ms < DS_ALLOC_IDLE_TRIM_MS)
        return;
    if (GLIBC_HEAP)
        malloc_trim(0);
    a->trimmed = true;
    sample(a, ds_clock_mono_ms()); /* what the trim left */
}
