/*
 * scorer_int.h — what the scorer's two files share (scorer.c: the adapter
 * to the worker engine; scorer_redis.c: the Redis layout): a unit's entry
 * in memory (the engine's ds_worker_entity_t first), the slot of a decoded
 * event, the loads of a load round and the scorer itself.  Not a public header.  One worker thread
 * owns all of it.
 */
#ifndef DS_SCORER_INT_H
#define DS_SCORER_INT_H

#include <stdbool.h>
#include <uthash.h>

#include "ds_fmt.h"
#include "score.h"
#include "workers.h"

typedef struct unit_entry { /* one per account: keep it small */
    ds_worker_entity_t ent; /* first: the engine's (bound partition, checkpoint) */
    char *key;              /* account id or lone lead id */
    ds_score_unit_t *unit;  /* NULL while not loaded */
    ds_score_unit_t *pend;  /* being loaded: the dictionary came, the mobilizers not yet */
    char *stash;            /* the account's record, read before its dictionary */
    size_t nstash;
    bool is_account, loading;
    size_t leads_counted; /* leads counted in tracked_leads */
    /* what this process last wrote of an account's score fields, 0 when
     * it has written nothing yet; a lead's notes are kept with the lead */
    uint64_t written_sig;
    char **listed; /* lead ids of the account's set, to load next round */
    size_t nlisted;
    UT_hash_handle hh;
} unit_entry_t;

/* A decoded event; its unit's entry (head.entity) is found once by the
 * load */
typedef struct sslot {
    ds_worker_slot_t head; /* first: the engine's */
    ds_ma_event_t ev;
} sslot_t;

/* The entry of a slot's unit (NULL until the load found it). */
static inline unit_entry_t *ds_scorer_slot_entry(const sslot_t *ss) {
    return (unit_entry_t *)ss->head.entity;
}

/* An insight-sum field being written (value in ds_scorer.sumbuf). */
typedef struct sum_field {
    char name[DS_FMT_INT_MAX];
    const void *v;
    size_t n;
} sum_field_t;

/* One load command of a prefetch round and what its reply is for. */
enum {
    LD_ACCOUNT,
    LD_DICT,
    LD_SUMS,
    LD_MOBILIZERS,
    LD_LONE,
    LD_LEAD,
    LD_ATTENDANCE,
    LD_MEMBERS,
    LD_CLAIM
};
typedef struct load {
    unit_entry_t *e;
    int kind;
    char *id;          /* lead or content id (LD_LEAD, LD_ATTENDANCE) */
    UT_hash_handle hh; /* by Redis key: one load per key and round */
    char *rkey;
} load_t;

typedef struct ds_scorer ds_scorer_t;

struct ds_scorer {
    ds_worker_adapter_t a; /* first: the engine's (cfg, rules in force, worker, codec) */
    unit_entry_t *units;
    load_t **loads;
    size_t nloads, loads_cap;
    load_t *load_keys; /* this round's loads by Redis key */
    ds_buf_t keybuf, list;
    ds_worker_t *cur;  /* during apply */
    ds_redis_t *cur_r; /* during load and persist */
    unit_entry_t *cur_e;
    const char **sadd; /* new members of the unit being written */
    size_t nsadd, csadd;
    sum_field_t *sums; /* insight sums of the unit being written */
    size_t nsums, csums;
    ds_buf_t sumbuf;
    const char **dict; /* dictionary fields of the unit being written */
    char (*dict_idx)[DS_FMT_INT_MAX];
    size_t ndict, cdict;
    bool wrote_lone;
    ds_score_scratch_t *scratch; /* shared by every unit of this worker */
    ds_score_stats_t stats;
    ds_counter_t *m_lead_scores, *m_account_scores, *m_unclassified, *m_migrated;
    size_t tracked_leads, tracked_units;
    ds_gauge_t *m_tracked_leads, *m_tracked_units;
};

/* The unit a decoded event belongs to: its account, or its lead when it
 * has no account. */
static inline const char *ds_scorer_ev_unit_key(const ds_ma_event_t *ev, bool *is_account) {
    *is_account = ev->account_id && ev->account_id[0];
    return *is_account ? ev->account_id : ev->lead_id;
}

/* scorer.c */

/* Bring tracked_leads up to date with e's unit. */
void ds_scorer_count_leads(ds_scorer_t *s, unit_entry_t *e);
/* Set the gauges tracked_leads and tracked_units. */
void ds_scorer_publish_tracked(ds_scorer_t *s);

/* scorer_redis.c: the ops callbacks of the Redis layout (worker.h) */

size_t ds_scorer_load(void *self, ds_redis_t *r, void **slots, const int32_t *parts, size_t n,
                      int round);
ds_err_t ds_scorer_loaded(void *self, size_t index, const ds_reply_t *rep);
void ds_scorer_persist(void *self, ds_redis_t *r, ds_worker_entity_t *const *ents, size_t n,
                       bool last);
/* Drop the loads queued by a load round and the units half loaded. */
void ds_scorer_forget_loads(ds_scorer_t *s);

#endif
