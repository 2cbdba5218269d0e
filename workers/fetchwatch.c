/*
 * fetchwatch.c — an assigned partition that stopped being fetched
 * (fetchwatch.h).  Entries are indexed by partition id: a topic's ids
 * are 0 to its partition count, and a report per partition a second
 * must not cost a search (the watcher reads up to 4,096 partitions).
 */
#include "fetchwatch.h"

#include <stdlib.h>
#include <string.h>

#include "ds_buf.h"

void ds_fetchwatch_init(ds_fetchwatch_t *fw, int64_t stall_ms) {
    fw->p = NULL;
    fw->n = fw->cap = 0;
    fw->stall_ms = stall_ms;
}

void ds_fetchwatch_free(ds_fetchwatch_t *fw) {
    free(fw->p);
    fw->p = NULL;
    fw->n = fw->cap = 0;
}

void ds_fetchwatch_forget(ds_fetchwatch_t *fw) {
    if (fw->n)
        memset(fw->p, 0, fw->n * sizeof(*fw->p));
}

bool ds_fetchwatch_still(ds_fetchwatch_t *fw, int32_t partition, int64_t pos, bool paused,
                         int64_t now_ms) {
    if (partition < 0)
        return false;
    size_t i = (size_t)partition;
    while (i >= fw->cap) {
        ds_fetchwatch_part_t *np = ds_grow(fw->p, &fw->cap, sizeof(*np), 16);
        if (!np)
            return false; /* out of memory: not watched */
        fw->p = np;
    }
    if (i >= fw->n) {
        memset(fw->p + fw->n, 0, (i + 1 - fw->n) * sizeof(*fw->p));
        fw->n = i + 1;
    }
    ds_fetchwatch_part_t *e = &fw->p[i];
    if (!e->known) { /* its first report */
        *e = (ds_fetchwatch_part_t){true, pos, now_ms, 0};
        return false;
    }
    int64_t gap = now_ms - e->last_ms;
    e->last_ms = now_ms;
    if (paused || pos != e->pos) {
        e->pos = pos;
        e->still_ms = 0;
        return false;
    }
    e->still_ms += gap < 0 ? 0 : gap < DS_FETCHWATCH_GAP_MS ? gap : DS_FETCHWATCH_GAP_MS;
    if (e->still_ms < fw->stall_ms)
        return false;
    e->still_ms = 0;
    return true;
}
