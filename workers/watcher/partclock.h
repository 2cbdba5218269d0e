/*
 * partclock.h — the event clock of one partition and its deadline index,
 * pure C: what the watcher and the backtest share so that a replay in
 * memory evaluates every deal at the same times the watcher does.
 *
 * The watermark is the largest occurred_at observed in the partition
 * (every decoded event moves it, ignored ones too).  The index is a
 * min-heap of (deadline, owner), ordered by deadline then by the owner's
 * key (a deal id), with lazy deletion: the owner keeps its current
 * deadline, and an entry whose deadline differs from it is stale.  The
 * index never reads an owner except through the key function, so a stale
 * entry's owner must stay valid (or be recognised by the caller before it
 * is touched) until the entry is popped.
 *
 * Cost: observe O(1); schedule and pop O(log entries).  Not thread-safe.
 */
#ifndef DS_PARTCLOCK_H
#define DS_PARTCLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ds_partclock_item {
    int64_t deadline;
    void *owner;
} ds_partclock_item_t;

/* The owner's key: the tie-break between equal deadlines. */
typedef const char *(*ds_partclock_key_fn)(const void *owner);

typedef struct ds_partclock {
    int64_t watermark;         /* INT64_MIN: nothing observed yet */
    ds_partclock_item_t *heap; /* heap[0 .. n): a min-heap */
    size_t n, cap;
    ds_partclock_key_fn key;
} ds_partclock_t;

/** An empty clock (no watermark, no entries). */
void ds_partclock_init(ds_partclock_t *pc, ds_partclock_key_fn key);
/** Free the index; the clock is empty again (same key function). */
void ds_partclock_free(ds_partclock_t *pc);

/** An event of time t was decoded from the partition: the watermark
 *  becomes max(watermark, t).  True when it moved. */
static inline bool ds_partclock_observe(ds_partclock_t *pc, int64_t t) {
    if (t <= pc->watermark)
        return false;
    pc->watermark = t;
    return true;
}

/** The owner's next deadline is now `deadline` (INT64_MAX: none); its
 *  deadline so far is *current (INT64_MAX: no live entry).  When they
 *  differ, *current becomes `deadline` and an entry is pushed unless it is
 *  INT64_MAX.  Returns false only when out of memory (nothing changed). */
bool ds_partclock_schedule(ds_partclock_t *pc, void *owner, int64_t *current, int64_t deadline);

/** Pop the first entry whose deadline is <= by; NULL when there is none.
 *  *deadline gets the entry's deadline: the entry is live when it equals
 *  the owner's current deadline, which the caller then sets to INT64_MAX
 *  (the owner has no entry any more) before it schedules the owner again. */
void *ds_partclock_pop_due(ds_partclock_t *pc, int64_t by, int64_t *deadline);

#endif
