/*
 * dirtyq.h — the entities a worker has changed and not yet written, in the
 * order they became dirty (the write-behind window's queue; the engine
 * owns it, worker.c).
 *
 * A window's writes are spread over the batches after it closes, oldest
 * first: ds_dirtyq_at(q, i) for i < n is the i-th oldest, and
 * ds_dirtyq_drop(q, n) removes the n oldest in O(1) (the array is
 * compacted only when the dropped part is at least half of it), and
 * ds_dirtyq_oldest(q) is the run of them in that order.  An entity is in
 * the queue at most once: its `dirty` flag says so.
 * Not thread-safe; one worker thread owns it.
 */
#ifndef DS_DIRTYQ_H
#define DS_DIRTYQ_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct ds_worker_entity;

typedef struct ds_dirtyq {
    struct ds_worker_entity **v;
    size_t head, n, cap; /* entries v[head .. n) */
} ds_dirtyq_t;

/* How many entities are dirty. */
static inline size_t ds_dirtyq_count(const ds_dirtyq_t *q) {
    return q->n - q->head;
}

/* The i-th oldest dirty entity, i < ds_dirtyq_count(q). */
static inline struct ds_worker_entity *ds_dirtyq_at(const ds_dirtyq_t *q, size_t i) {
    return q->v[q->head + i];
}

/* The dirty entities, oldest first (ds_dirtyq_count(q) of them). */
static inline struct ds_worker_entity *const *ds_dirtyq_oldest(const ds_dirtyq_t *q) {
    return q->v + q->head;
}

/* Append p (false: out of memory, nothing changed). */
static inline bool ds_dirtyq_push(ds_dirtyq_t *q, struct ds_worker_entity *p) {
    if (q->n == q->cap) {
        if (q->head) { /* room at the front: slide down first */
            memmove(q->v, q->v + q->head, (q->n - q->head) * sizeof(*q->v));
            q->n -= q->head;
            q->head = 0;
        } else {
            size_t nc = q->cap ? q->cap * 2 : 256;
            struct ds_worker_entity **nv = realloc(q->v, nc * sizeof(*nv));
            if (!nv)
                return false;
            q->v = nv;
            q->cap = nc;
        }
    }
    q->v[q->n++] = p;
    return true;
}

/* Remove the n oldest (n <= ds_dirtyq_count(q)). */
static inline void ds_dirtyq_drop(ds_dirtyq_t *q, size_t n) {
    q->head += n;
    if (q->head == q->n) {
        q->head = q->n = 0;
    } else if (q->head >= q->n - q->head) {
        memmove(q->v, q->v + q->head, (q->n - q->head) * sizeof(*q->v));
        q->n -= q->head;
        q->head = 0;
    }
}

static inline void ds_dirtyq_clear(ds_dirtyq_t *q) {
    q->head = q->n = 0;
}

static inline void ds_dirtyq_free(ds_dirtyq_t *q) {
    free(q->v);
    memset(q, 0, sizeof(*q));
}

#endif
