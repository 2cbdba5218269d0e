/*
 * ds_dedupe.c — the dedupe window's set: entries sorted by hash in one
 * block, found by binary search.
 *
 * Invariants.
 * - e[0..n) is strictly increasing by hash (one entry an id) and no hash
 *   is 0; cap is the room of the block, a capacity class.
 * - With arrival order, the block is e[cap], then cap 32-bit stamps (the
 *   stamp of e[i] at stamps[i]), then the next stamp: a later arrival has
 *   a larger stamp.  Stamps only order; they are renumbered from 0 when
 *   the next one would overflow.
 * - An entry is never dropped while live under the clock its caller
 *   passes: the set only forgets, when full, what the caller says no
 *   longer counts.  Whether an entry counts is never read from its
 *   presence alone (a present entry may be out of the window).
 * - Room is made only when the set is full, and a prune that frees a
 *   quarter or more leaves room for that many entries before the next
 *   one: each entry's share of the scans is O(1).  A room shrinks only
 *   when over KEEP_ROOM, so small sets are not reallocated back and forth.
 */
#include "ds_dedupe.h"

#include <stdlib.h>
#include <string.h>

/* ---- the block ------------------------------------------------------------- */

static uint32_t *stamps(const ds_dedupe_t *s) {
    return (uint32_t *)(void *)(s->e + s->cap);
}

uint32_t ds_dedupe_cap_class(uint32_t n) {
    if (n <= 2)
        return n;
    uint32_t p = 2;
    while (p < n && p <= UINT32_MAX / 2) {
        if (p + p / 2 >= n)
            return p + p / 2;
        p <<= 1;
    }
    return p < n ? n : p;
}

#define MAX_CAP 0x7fffffffu /* cap is 31 bits */

static size_t block_size(uint32_t cap, bool arrival) {
    return (size_t)cap * sizeof(ds_dedupe_entry_t) +
           (arrival ? ((size_t)cap + 1) * sizeof(uint32_t) : 0);
}

/* Move s to a block of room nc (>= n, > 0); -1 when out of memory (s as
 * it was). */
static int resize(ds_dedupe_t *s, uint32_t nc) {
    if (nc > MAX_CAP)
        return -1;
    if (!s->arrival) {
        void *p = realloc(s->e, block_size(nc, false));
        if (!p)
            return -1;
        s->e = p;
        s->cap = nc;
        return 0;
    }
    /* One realloc, which may grow the block in place; the stamps, which
     * follow the entries, move to their place in the new room (before
     * the realloc when the block shrinks, after it when it grows). */
    uint32_t oc = s->cap;
    uint32_t next = s->e ? stamps(s)[oc] : 0;
    size_t sb = (size_t)s->n * sizeof(uint32_t);
    char *old = (char *)s->e;
    size_t from = (size_t)oc * sizeof(ds_dedupe_entry_t),
           to = (size_t)nc * sizeof(ds_dedupe_entry_t);
    if (old && nc < oc)
        memmove(old + to, old + from, sb);
    char *p = realloc(old, block_size(nc, true));
    if (!p) {
        if (old && nc < oc)
            memmove(old + from, old + to, sb); /* s as it was */
        return -1;
    }
    if (old && nc > oc)
        memmove(p + to, p + from, sb);
    s->e = (ds_dedupe_entry_t *)(void *)p;
    s->cap = nc;
    stamps(s)[nc] = next;
    return 0;
}

void ds_dedupe_init(ds_dedupe_t *s, bool arrival) {
    memset(s, 0, sizeof(*s));
    s->arrival = arrival;
}

void ds_dedupe_free(ds_dedupe_t *s) {
    if (!s)
        return;
    free(s->e);
    ds_dedupe_init(s, s->arrival);
}

size_t ds_dedupe_mem(const ds_dedupe_t *s) {
    return s->e ? block_size(s->cap, s->arrival) : 0;
}

/* ---- questions ------------------------------------------------------------- */

bool ds_dedupe_within(int64_t now, int64_t window, int64_t t) {
    int64_t d;
    if (__builtin_sub_overflow(now, t, &d))
        d = now > t ? INT64_MAX : INT64_MIN;
    return d <= window;
}

bool ds_dedupe_live(const ds_dedupe_clock_t *c, const ds_dedupe_entry_t *x) {
    return c->all || (c->keep && x->h == c->keep) || ds_dedupe_within(c->now, c->window, x->t);
}

/* ---- changes --------------------------------------------------------------- */

/* Drop the entries not live under c, except hash `also` (0: none). */
static void prune(ds_dedupe_t *s, const ds_dedupe_clock_t *c, uint64_t also) {
    uint32_t *st = s->arrival && s->e ? stamps(s) : NULL;
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->e[i].h != also && !ds_dedupe_live(c, &s->e[i]))
            continue;
        s->e[k] = s->e[i];
        if (st)
            st[k] = st[i];
        k++;
    }
    s->n = k;
}

void ds_dedupe_prune(ds_dedupe_t *s, const ds_dedupe_clock_t *c) {
    prune(s, c, 0);
}

int ds_dedupe_compact(ds_dedupe_t *s, uint32_t *at, const ds_dedupe_clock_t *c,
                      int (*gone)(void *opaque, uint64_t h), void *opaque) {
    if (s->n < *at)
        return 0;
    for (uint32_t i = 0; gone && i < s->n; i++) {
        int rc = ds_dedupe_live(c, &s->e[i]) ? 0 : gone(opaque, s->e[i].h);
        if (rc)
            return rc;
    }
    prune(s, c, 0);
    *at = s->n < DS_DEDUPE_COMPACT_MIN / 2 ? DS_DEDUPE_COMPACT_MIN : 2 * s->n;
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Stamps from 0 again, in the same order (the next one would overflow). */
static int renumber(ds_dedupe_t *s) {
    uint32_t *st = stamps(s);
    uint64_t *k = malloc((s->n ? s->n : 1) * sizeof(*k)); /* stamp << 32 | position */
    if (!k)
        return -1;
    for (uint32_t i = 0; i < s->n; i++)
        k[i] = (uint64_t)st[i] << 32 | i;
    qsort(k, s->n, sizeof(*k), cmp_u64);
    for (uint32_t i = 0; i < s->n; i++)
        st[(uint32_t)k[i]] = i;
    st[s->cap] = s->n;
    free(k);
    return 0;
}

/* A set never shrinks below this room: a lead's or a deal's live ids come
 * and go around a small number, and a room that followed them down would
 * be reallocated at every crossing of a class boundary. */
#define KEEP_ROOM 16

/* Make room for one more entry in the full set s (see ds_dedupe_put). */
static int make_room(ds_dedupe_t *s, const ds_dedupe_clock_t *c, uint64_t h) {
    uint32_t c0 = s->cap;
    prune(s, c, h);
    uint32_t k = s->n;
    if (k < c0 && (uint64_t)k * 4 <= (uint64_t)c0 * 3) {
        uint32_t small = ds_dedupe_cap_class(k ? 2 * k : 1);
        if (c0 > KEEP_ROOM && (uint64_t)k * 4 <= c0 && small < c0)
            (void)resize(s, small); /* a failed shrink keeps the room it has */
        return 0;
    }
    /* an arrival-ordered set (a deal's) starts with room for 4: growing
     * through 1, 2 and 3 cost a reallocation at each of a young deal's
     * first events */
    uint32_t nc = ds_dedupe_cap_class(c0 + 1);
    return c0 < MAX_CAP ? resize(s, s->arrival && nc < 4 ? 4 : nc) : -1;
}

ds_err_t ds_dedupe_put(ds_dedupe_t *s, uint64_t h, int64_t t, const ds_dedupe_clock_t *c) {
    if (!h)
        return DS_ERR_INVAL;
    uint32_t pos = ds_dedupe_lower_bound(s, h);
    if (s->arrival && s->e && stamps(s)[s->cap] == UINT32_MAX && renumber(s))
        return DS_ERR_NOMEM;
    if (pos < s->n && s->e[pos].h == h) {
        s->e[pos].t = t;
        if (s->arrival)
            stamps(s)[pos] = stamps(s)[s->cap]++;
        return DS_ERR_OK;
    }
    if (s->n == s->cap) {
        if (make_room(s, c, h))
            return DS_ERR_NOMEM;
        pos = ds_dedupe_lower_bound(s, h);
    }
    memmove(s->e + pos + 1, s->e + pos, (size_t)(s->n - pos) * sizeof(ds_dedupe_entry_t));
    s->e[pos] = (ds_dedupe_entry_t){h, t};
    if (s->arrival) {
        uint32_t *st = stamps(s);
        memmove(st + pos + 1, st + pos, (size_t)(s->n - pos) * sizeof(uint32_t));
        st[pos] = st[s->cap]++;
    }
    s->n++;
    return DS_ERR_OK;
}

/* ---- stored form ----------------------------------------------------------- */

#define SMALL_SORT 32 /* up to this many entries are sorted on the stack (save, load) */

ds_err_t ds_dedupe_save(const ds_dedupe_t *s, const ds_dedupe_clock_t *c, int64_t base,
                        ds_buf_t *out) {
    uint32_t live = 0;
    for (uint32_t i = 0; i < s->n; i++)
        live += ds_dedupe_live(c, &s->e[i]);
    ds_err_t e = ds_buf_put_varint(out, live);
    if (e || !live)
        return e;
    /* arrival: stamp << 32 | position, sorted; a small set's on the stack,
     * by insertion (a deal's window is saved at every write of the deal) */
    uint64_t small[SMALL_SORT], *order = NULL;
    if (s->arrival) {
        if (live <= SMALL_SORT)
            order = small;
        else if (!(order = malloc((size_t)live * sizeof(*order))))
            return DS_ERR_NOMEM;
        uint32_t k = 0;
        for (uint32_t i = 0; i < s->n; i++)
            if (ds_dedupe_live(c, &s->e[i]))
                order[k++] = (uint64_t)stamps(s)[i] << 32 | i;
        if (order == small) {
            for (uint32_t i = 1; i < live; i++)
                for (uint32_t j = i; j > 0 && order[j - 1] > order[j]; j--) {
                    uint64_t x = order[j];
                    order[j] = order[j - 1];
                    order[j - 1] = x;
                }
        } else {
            qsort(order, live, sizeof(*order), cmp_u64);
        }
    }
    for (uint32_t i = 0, k = 0; !e && k < live; i++) {
        const ds_dedupe_entry_t *x = &s->e[order ? (uint32_t)order[k] : i];
        if (!order && !ds_dedupe_live(c, x))
            continue;
        k++;
        e = ds_buf_put_i64(out, (int64_t)x->h);
        e = e ? e : ds_buf_put_time(out, base, x->t);
    }
    if (order != small)
        free(order);
    return e;
}

typedef struct loaded {
    ds_dedupe_entry_t x;
    uint32_t stamp;
} loaded_t;

static int cmp_loaded(const void *a, const void *b) {
    uint64_t x = ((const loaded_t *)a)->x.h, y = ((const loaded_t *)b)->x.h;
    return x < y ? -1 : x > y;
}

/* Sort the n loaded entries of s by hash, each with its stamp (an
 * arrival-ordered set, saved by arrival, comes unsorted); a hash listed
 * twice is DS_ERR_UNDECODABLE. */
static ds_err_t sort_loaded(ds_dedupe_t *s, uint32_t n) {
    uint32_t *st = s->arrival ? stamps(s) : NULL;
    loaded_t small[SMALL_SORT], *v = n <= SMALL_SORT ? small : malloc((size_t)n * sizeof(*v));
    if (!v)
        return DS_ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        v[i] = (loaded_t){s->e[i], st ? st[i] : 0};
    if (v == small) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = i; j > 0 && v[j - 1].x.h > v[j].x.h; j--) {
                loaded_t x = v[j];
                v[j] = v[j - 1];
                v[j - 1] = x;
            }
    } else {
        qsort(v, n, sizeof(*v), cmp_loaded);
    }
    ds_err_t e = DS_ERR_OK;
    for (uint32_t i = 0; i < n; i++) {
        if (i && v[i - 1].x.h == v[i].x.h)
            e = DS_ERR_UNDECODABLE;
        s->e[i] = v[i].x;
        if (st)
            st[i] = v[i].stamp;
    }
    if (v != small)
        free(v);
    return e;
}

/* Read straight into the set's block: a set saved by hash (a lead's)
 * loads with one allocation and no sort. */
ds_err_t ds_dedupe_load(ds_dedupe_t *s, ds_reader_t *r, int64_t base, bool absolute) {
    uint32_t n;
    ds_err_t e = ds_get_count(r, &n);
    if (e || !n)
        return e;
    if (resize(s, ds_dedupe_cap_class(n)))
        return DS_ERR_NOMEM;
    uint32_t *st = s->arrival ? stamps(s) : NULL;
    bool sorted = true;
    for (uint32_t i = 0; !e && i < n; i++) {
        int64_t h;
        ds_dedupe_entry_t *x = &s->e[i];
        e = ds_get_i64(r, &h);
        if (!e)
            e = absolute ? ds_get_i64(r, &x->t) : ds_get_time(r, base, &x->t);
        if (!e && !h)
            e = DS_ERR_UNDECODABLE;
        x->h = (uint64_t)h;
        if (st)
            st[i] = i; /* listed order is arrival order */
        sorted = sorted && (i == 0 || s->e[i - 1].h < x->h);
    }
    if (!e && !sorted)
        e = sort_loaded(s, n);
    if (e) {
        ds_dedupe_free(s);
        return e;
    }
    if (st)
        st[s->cap] = n;
    s->n = n;
    return DS_ERR_OK;
}
