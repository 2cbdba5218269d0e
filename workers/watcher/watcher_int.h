/*
 * watcher_int.h — what the watcher's two files share (watcher.c: the
 * adapter to the worker engine; watcher_redis.c: the Redis layout): a
 * deal's entry in memory (the engine's ds_worker_entity_t first), the slot
 * of a decoded event, a partition's clock, the tier cache, the loads of a
 * load round and the watcher itself.
 * Not a public header.  One worker thread owns all of it.
 */
#ifndef DS_WATCHER_INT_H
#define DS_WATCHER_INT_H

#include <stdbool.h>
#include <uthash.h>

#include "partclock.h"
#include "stall.h"
#include "workers.h"

#define MAX_PARTITIONS 4096

typedef struct deal_entry {
    ds_worker_entity_t ent; /* first: the engine's (bound partition, checkpoint) */
    char *id;
    ds_deal_t *deal;      /* NULL while not loaded */
    int64_t deadline;     /* current next deadline (INT64_MAX: none) */
    int64_t indexed;      /* deadline last written to the Redis index */
    uint64_t written[4];  /* per field group, what was last written; 0: nothing */
    unsigned side_epoch;  /* ds_redis_epoch() of its last write of the side keys */
    bool stored;          /* Redis may hold some of it (loaded, or written) */
    /* loaded from its record, its stakeholders or ids (kept apart) still
     * to read: it becomes `deal` when the last of them is in, and is
     * dropped if the load is tried again */
    ds_deal_t *pending;
    uint8_t side_left; /* replies still to come for pending */
    bool pending_ours; /* its partition is ours: index it when complete */
    uint64_t tier_round;  /* == the watcher's: its stakeholders' tiers are read */
    uint64_t batch_round; /* == the watcher's tier_round: first/last below are set */
    uint32_t first, last; /* this batch's first and last event of the deal */
    bool loading;
    UT_hash_handle hh;
} deal_entry_t;

/* A decoded event; its deal's entry (head.entity) is found once by the
 * load */
typedef struct wslot {
    ds_worker_slot_t head; /* first: the engine's */
    ds_crm_event_t ev;
    uint32_t next; /* the deal's next event in the batch (UINT32_MAX: none) */
} wslot_t;

/* The entry of a slot's deal (NULL until the load found it). */
static inline deal_entry_t *ds_watcher_slot_entry(const wslot_t *ws) {
    return (deal_entry_t *)ws->head.entity;
}

typedef struct part {
    bool known, bootstrapped, wm_dirty;
    bool wm_owed;         /* wm_closed is written at the end of the closed window */
    ds_partclock_t clock; /* the watermark and the deadline index (of deal_entry_t) */
    int64_t wm_closed;    /* the watermark when the write-behind window closed */
    uint64_t due_round;   /* == tier_round: due_by is this batch's watermark */
    int64_t due_by;
} part_t;

/* A deal of more stakeholders than this asks its account's mobilizers
 * set (one read of the account's few MOBILIZER-tier leads) instead of each
 * stakeholder's tier (one read each): the scorer writes a lead's `tier`
 * and its membership of <p>{acct:A}:mobilizers in one write, so both say
 * the same. */
#define TIER_SET_FROM 17

typedef struct mob_entry {
    char *key; /* account \x1f contact; an account's set: \x1e account */
    bool is_mobilizer; /* an account's set: read */
    UT_hash_handle hh;
} mob_entry_t;

typedef enum {
    LOAD_DEAL,
    LOAD_CLAIM,
    LOAD_PART,
    LOAD_TIER,
    LOAD_MOBSET,
    LOAD_STAKE, /* a deal's stakeholders set, after its LOAD_DEAL */
    LOAD_SEEN   /* a deal's dedupe ids, after its LOAD_STAKE */
} load_kind_t;
typedef struct load {
    load_kind_t kind;
    deal_entry_t *e;
    int32_t partition;
    mob_entry_t *m; /* LOAD_TIER, LOAD_MOBSET */
} load_t;

typedef struct ds_watcher ds_watcher_t;

struct ds_watcher {
    ds_worker_adapter_t a; /* first: the engine's (cfg, rules in force, worker, codec) */
    bool event_clock;
    deal_entry_t *deals;
    part_t parts[MAX_PARTITIONS];
    size_t nwm_dirty; /* partitions whose watermark is not written yet (each
                       * counted by the engine: ds_worker_dirty_other) */
    size_t nwm_owed;  /* partitions whose closed watermark is (wm_owed) */
    load_t *loads;
    size_t nloads, loads_cap;
    deal_entry_t **side_pending; /* entries with a pending deal: their
                                   * stakeholders or ids are read next round */
    size_t nside_pending, side_pending_cap;
    char **pending_ids; /* deal ids read from an index, to load next round */
    int32_t *pending_parts;
    size_t npending, pending_cap;
    mob_entry_t *mob_cache; /* per batch */
    uint64_t mob_epoch;     /* counts mob_cache_clear() calls: ds_watch_ctx_t.tier_epoch */
    ds_arena_t mob_arena;   /* its entries and keys, reset with it */
    bool boot_inflight;     /* index deals queued, not yet known loaded */
    bool tiers_queued;      /* this batch's stakeholder tiers are being read */
    uint64_t tier_round;    /* counts queue_tiers() calls */
    ds_buf_t tmp;
    /* a deal write's side keys (ds_deal_changes): the ids to store, each
     * as SIDE_PUT bytes (8-byte big-endian hash, then its time in decimal,
     * NUL-terminated), the ids to delete (8 bytes each), and the argument
     * vectors of their commands */
    ds_buf_t side_put, side_del;
    const char **sargv;
    size_t *slens, sargv_cap;
    size_t side_first; /* the first stakeholder to add */
    ds_worker_t *cur;
    ds_counter_t *m_ignored;
    ds_gauge_t *m_tracked;
    ds_counter_t *m_checked;                            /* deals evaluated by clock checks */
    ds_counter_t *m_alerts[DS_AK__COUNT][DS_AS__COUNT]; /* NULL until the first */
    ds_histogram_t *m_check_sec; /* one wall-clock check over all partitions */
    ds_metrics_t *metrics;
};

/* watcher.c */

/* Partition p's clock and index, made on first use (p < MAX_PARTITIONS,
 * or the process aborts). */
part_t *ds_watcher_part(ds_watcher_t *w, int32_t p);
/* Put e in its partition's deadline index at its next deadline. */
void ds_watcher_reindex(ds_watcher_t *w, deal_entry_t *e);

/* watcher_redis.c */

/* ds_watch_ctx_t.stakeholder_is_mobilizer: the scorer's stored tier of a
 * stakeholder, from the tiers read with the batch's loads, else read from
 * Redis now (and cached until the next batch). */
bool ds_watcher_is_mobilizer(void *opaque, const char *account_id, const char *contact_id);
/* Drop the loads queued, the deal ids read from an index and the tier
 * cache (a reset). */
void ds_watcher_forget_loads(ds_watcher_t *w);
/* The ops callbacks of the Redis layout (worker.h). */
size_t ds_watcher_load(void *self, ds_redis_t *r, void **slots, const int32_t *parts, size_t n,
                       int round);
ds_err_t ds_watcher_loaded(void *self, size_t index, const ds_reply_t *rep);
void ds_watcher_persist(void *self, ds_redis_t *r, ds_worker_entity_t *const *ents, size_t n,
                        bool last);

#endif
