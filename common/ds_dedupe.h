/*
 * ds_dedupe.h — a dedupe window: a set of (64-bit hash of an id, time) in
 * which an entry counts while the time it was seen is within a window of
 * a clock.  The caller hashes its ids (ds_dedupe_hash), keeps the clock
 * and says, at each question, against which clock, window and exceptions
 * an entry's age is read (ds_dedupe_clock_t): the set knows no business.
 *
 * Cost: ds_dedupe_find is O(log n) (entries sorted by hash, 16 bytes
 * each); ds_dedupe_put is O(log n) plus the move of the entries after the
 * new one, and when the set is full it first drops what no longer counts
 * (amortised O(1) an entry, see ds_dedupe_put).  A set that keeps arrival
 * order holds 4 more bytes an entry and saves in O(n log n).
 *
 * Ownership: a ds_dedupe_t is a plain value embedded in its owner (16
 * bytes); ds_dedupe_free releases what it holds.  Its fields are read-only
 * outside ds_dedupe.c.  Not thread-safe: one owner thread.
 */
#ifndef DS_DEDUPE_H
#define DS_DEDUPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_err.h"
#include "ds_hash.h"

/** One remembered id: its hash (never 0) and the time it was seen. */
typedef struct ds_dedupe_entry {
    uint64_t h;
    int64_t t;
} ds_dedupe_entry_t;

/** A set of entries, sorted by hash.  With `arrival`, the block of e[]
 *  also holds each entry's arrival stamp, and the set is saved in arrival
 *  order; otherwise it is saved by hash.  All zero: an empty set by hash. */
typedef struct ds_dedupe {
    ds_dedupe_entry_t *e;
    uint32_t n;
    uint32_t cap : 31;
    uint32_t arrival : 1;
} ds_dedupe_t;

/** What makes an entry count ("live"): `all`, or its hash is `keep` (0:
 *  none), or now - t <= window (the difference saturated: times come from
 *  the network). */
typedef struct ds_dedupe_clock {
    int64_t now;
    int64_t window;
    uint64_t keep;
    bool all;
} ds_dedupe_clock_t;

/** An empty set; `arrival`: keep arrival order for saving. */
void ds_dedupe_init(ds_dedupe_t *s, bool arrival);
/** Release what s holds (s may be NULL); s is then empty. */
void ds_dedupe_free(ds_dedupe_t *s);
/** Bytes s holds on the heap. */
size_t ds_dedupe_mem(const ds_dedupe_t *s);

/** The capacity class of n: 1, 2, 3, 4, 6, 8, 12, 16, 24, … (powers of
 *  two and 1.5 times them, so that an array wastes at most a third of its
 *  room), n itself past 2^31. */
uint32_t ds_dedupe_cap_class(uint32_t n);

/** 64-bit FNV-1a of id's n bytes, 1 in place of 0. */
static inline uint64_t ds_dedupe_hash(const char *id, size_t n) {
    uint64_t h = ds_fnv64(id, n);
    return h ? h : 1;
}

/** Whether now - t <= window, saturated. */
bool ds_dedupe_within(int64_t now, int64_t window, int64_t t);
/** Whether entry x is live under c. */
bool ds_dedupe_live(const ds_dedupe_clock_t *c, const ds_dedupe_entry_t *x);

/** The position of the first entry whose hash is >= h (n when none). */
static inline uint32_t ds_dedupe_lower_bound(const ds_dedupe_t *s, uint64_t h) {
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->e[mid].h < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/** The entry of hash h, or NULL (live or not).  O(log n); inline: it is
 *  on every event's path. */
static inline const ds_dedupe_entry_t *ds_dedupe_find(const ds_dedupe_t *s, uint64_t h) {
    uint32_t i = ds_dedupe_lower_bound(s, h);
    return i < s->n && s->e[i].h == h ? &s->e[i] : NULL;
}

/** Remember h at t: a new entry, or h's entry takes time t (and, with
 *  arrival order, the newest arrival).  When the set is full it first
 *  drops the entries not live under c (never h's), and grows by one
 *  capacity class (1, 2, 3, 4, 6, 8, 12, …; an arrival-ordered set's
 *  first room is 4) when that freed less than a quarter of it; a room
 *  over 16 shrinks to the class of twice what is left when that is a
 *  quarter of it or less.  DS_ERR_NOMEM leaves s as it was. */
ds_err_t ds_dedupe_put(ds_dedupe_t *s, uint64_t h, int64_t t, const ds_dedupe_clock_t *c) DS_WUR;

/** Drop the entries not live under c, keeping the others' order and the
 *  capacity.  O(n). */
void ds_dedupe_prune(ds_dedupe_t *s, const ds_dedupe_clock_t *c);

/** Compaction at points the entries set, so that what a set holds (and an
 *  owner stores of it) is a function of its puts, whenever it is saved:
 *  when s holds *at entries or more, the hash of each entry not live
 *  under c is passed to gone (when not NULL; a nonzero return stops the
 *  compaction before anything is dropped, and is returned), those entries
 *  are dropped, and *at becomes twice what is left, at least
 *  DS_DEDUPE_COMPACT_MIN.  0 otherwise.  O(n) when it compacts, which is
 *  amortised O(1) a put. */
#define DS_DEDUPE_COMPACT_MIN 16
int ds_dedupe_compact(ds_dedupe_t *s, uint32_t *at, const ds_dedupe_clock_t *c,
                      int (*gone)(void *opaque, uint64_t h), void *opaque);

/** Append the entries live under c: their count (varint), then each hash
 *  (8 bytes) and time (ds_buf_put_time against base), by hash or, for an
 *  arrival-ordered set, by arrival. */
ds_err_t ds_dedupe_save(const ds_dedupe_t *s, const ds_dedupe_clock_t *c, int64_t base,
                        ds_buf_t *out) DS_WUR;

/** Read what ds_dedupe_save wrote into the empty set s (times read with
 *  ds_get_time against base, or, with `absolute`, as 8-byte integers), in
 *  any order: listed order is arrival order.  A hash of 0 or one listed
 *  twice is DS_ERR_UNDECODABLE; s is then empty.  Its capacity is the
 *  class of the count. */
ds_err_t ds_dedupe_load(ds_dedupe_t *s, ds_reader_t *r, int64_t base, bool absolute) DS_WUR;

#endif
