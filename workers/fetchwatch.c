/*
 * fetchwatch.c — an assigned partition that stopped being fetched
 * (fetchwatch.h).
 */
#include "fetchwatch.h"

#include <stdlib.h>

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
    fw->n = 0;
}

/* The partition's entry, made on its first report (NULL: out of memory). */
static ds_fetchwatch_part_t *entry(ds_fetchwatch_t *fw, int32_t partition, int64_t pos,
                                   int64_t now_ms, bool *fresh) {
    *fresh = false;
    for (size_t i = 0; i < fw->n; i++)
        if (fw->p[i].partition == partition)
            return &fw->p[i];
    if (fw->n == fw->cap) {
        ds_fetchwatch_part_t *np = ds_grow(fw->p, &fw->cap, sizeof(*np), 16);
        if (!np)
            return NULL;
        fw->p = np;
    }
    *fresh = true;
    fw->p[fw->n] = (ds_fetchwatch_part_t){partition, pos, now_ms, 0};
    return &fw->p[fw->n++];
}

bool ds_fetchwatch_still(ds_fetchwatch_t *fw, int32_t partition, int64_t pos, bool paused,
                         int64_t now_ms) {
    bool fresh;
    ds_fetchwatch_part_t *e = entry(fw, partition, pos, now_ms, &fresh);
    if (!e || fresh)
        return false;
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
