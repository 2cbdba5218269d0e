/*
 * partclock.c — a partition's event clock and deadline min-heap (see
 * partclock.h).  The heap grows by doubling and never shrinks while the
 * clock lives: its size follows the deals with a deadline ahead, plus the
 * stale entries not popped yet (one per deadline change, each popped once
 * the watermark passes it).
 */
#include "partclock.h"

#include <stdlib.h>
#include <string.h>

#include "ds_buf.h"

void ds_partclock_init(ds_partclock_t *pc, ds_partclock_key_fn key) {
    memset(pc, 0, sizeof(*pc));
    pc->watermark = INT64_MIN;
    pc->key = key;
}

void ds_partclock_free(ds_partclock_t *pc) {
    ds_partclock_key_fn key = pc->key;
    free(pc->heap);
    ds_partclock_init(pc, key);
}

static bool item_less(const ds_partclock_t *pc, const ds_partclock_item_t *a,
                      const ds_partclock_item_t *b) {
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return strcmp(pc->key(a->owner), pc->key(b->owner)) < 0;
}

static bool push(ds_partclock_t *pc, void *owner, int64_t deadline) {
    if (pc->n == pc->cap) {
        ds_partclock_item_t *nh = ds_grow(pc->heap, &pc->cap, sizeof(*nh), 64);
        if (!nh)
            return false;
        pc->heap = nh;
    }
    size_t i = pc->n++;
    pc->heap[i] = (ds_partclock_item_t){deadline, owner};
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!item_less(pc, &pc->heap[i], &pc->heap[up]))
            break;
        ds_partclock_item_t t = pc->heap[i];
        pc->heap[i] = pc->heap[up];
        pc->heap[up] = t;
        i = up;
    }
    return true;
}

bool ds_partclock_schedule(ds_partclock_t *pc, void *owner, int64_t *current, int64_t deadline) {
    if (deadline == *current)
        return true;
    if (deadline != INT64_MAX && !push(pc, owner, deadline))
        return false;
    *current = deadline;
    return true;
}

void *ds_partclock_pop_due(ds_partclock_t *pc, int64_t by, int64_t *deadline) {
    if (!pc->n || pc->heap[0].deadline > by)
        return NULL;
    ds_partclock_item_t top = pc->heap[0];
    pc->heap[0] = pc->heap[--pc->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < pc->n && item_less(pc, &pc->heap[l], &pc->heap[m]))
            m = l;
        if (r < pc->n && item_less(pc, &pc->heap[r], &pc->heap[m]))
            m = r;
        if (m == i)
            break;
        ds_partclock_item_t t = pc->heap[i];
        pc->heap[i] = pc->heap[m];
        pc->heap[m] = t;
        i = m;
    }
    *deadline = top.deadline;
    return top.owner;
}
