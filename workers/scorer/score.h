/*
 * score.h — the lead-scoring domain (SPEC "Lead scoring"), pure C.
 *
 * No I/O here: events in, LeadScore/AccountScore out through a sink, state
 * to and from bytes.  The unit of state is the Kafka key of ma.events: one
 * account with all its leads (or one lead that has no account).  Every rule
 * that relates two leads (follow credit, group credit, the account roll-up)
 * stays inside one unit, so a unit is applied by one thread in partition
 * order and persisted atomically with its checkpoint by the caller.
 *
 * Memory: a unit owns all its strings; pointers in emitted records are
 * valid only during the sink call.  Not thread-safe; one unit, one thread.
 */
#ifndef DS_SCORE_H
#define DS_SCORE_H

#include <stdbool.h>
#include <stdint.h>

#include "rules.h"

typedef struct ds_score_unit ds_score_unit_t;

typedef struct ds_score_sink {
    /* Called when an applied event changes a lead's rounded scores or tier. */
    void (*lead_score)(void *opaque, const ds_lead_score_t *s);
    /* Called when an account's figures change. */
    void (*account_score)(void *opaque, const ds_account_score_t *s);
    void *opaque;
} ds_score_sink_t;

/** A new empty unit for the key of the events (account_id, or the lead_id
 *  of a lead without account: then is_account is false). */
ds_score_unit_t *ds_score_unit_new(const char *key, bool is_account);
void ds_score_unit_destroy(ds_score_unit_t *u);

/** Apply one event in partition order.  Returns DS_ERR_OK when it was
 *  applied (even if it changed no score), DS_ERR_DUPLICATE for an event_id
 *  seen within dedupe_window_days (event time), DS_ERR_INVAL when the event
 *  does not belong to this unit.  Outputs go to sink (may be NULL). */
ds_err_t ds_score_unit_apply(ds_score_unit_t *u, const ds_rules_t *r,
                             const ds_ma_event_t *ev, const ds_score_sink_t *sink);

/** Counters that ds_score_unit_apply_ex adds to; owned by the caller and
 *  cumulative (zero it once).  `unclassified` counts applied events whose
 *  content has no stage (neither on the event nor in the catalog), the
 *  SPEC's `unclassified` metric. */
typedef struct ds_score_stats {
    uint64_t applied;      /* non-duplicate events applied */
    uint64_t duplicates;   /* DS_ERR_DUPLICATE returns */
    uint64_t unclassified; /* applied, but content without a stage */
    uint64_t lead_scores;  /* LeadScore records passed to the sink */
    uint64_t account_scores;
} ds_score_stats_t;

/** ds_score_unit_apply that also adds to *stats (may be NULL). */
ds_err_t ds_score_unit_apply_ex(ds_score_unit_t *u, const ds_rules_t *r,
                                const ds_ma_event_t *ev, const ds_score_sink_t *sink,
                                ds_score_stats_t *stats);

/** Serialise the whole unit (versioned binary).  Appends to out. */
ds_err_t ds_score_unit_save(const ds_score_unit_t *u, ds_buf_t *out) DS_WUR;
/** Rebuild a unit from ds_score_unit_save bytes; NULL and *err on failure. */
ds_score_unit_t *ds_score_unit_load(const void *p, size_t n, ds_err_t *err);

/** Unit key and kind. */
const char *ds_score_unit_key(const ds_score_unit_t *u);
bool ds_score_unit_is_account(const ds_score_unit_t *u);
/** Number of leads in the unit; leads are only ever appended, so index i
 *  names the same lead for the unit's whole life. */
size_t ds_score_unit_lead_count(const ds_score_unit_t *u);
/** The lead_id of lead i (< ds_score_unit_lead_count). */
const char *ds_score_unit_lead_id(const ds_score_unit_t *u, size_t i);

/** Current public view of every lead changed since the last clear (what the
 *  Redis lead hash shows); the record is valid during the call only.
 *  `written` is a note the caller keeps per lead, DS_LEAD_NOTES words (0
 *  for a new or loaded lead; not saved): what it last wrote. */
#define DS_LEAD_NOTES 2
void ds_score_unit_foreach_dirty(ds_score_unit_t *u,
                                 void (*fn)(void *opaque, uint64_t *written,
                                            const ds_lead_score_t *view),
                                 void *opaque);
/** Current account view; false for a lone lead. Valid until the next call
 *  on the unit. */
bool ds_score_unit_account_view(ds_score_unit_t *u, ds_account_score_t *out);
void ds_score_unit_clear_dirty(ds_score_unit_t *u);
/** Ask the CPU to start loading the unit (stage 0: the struct; 1: the
 *  first lines of its arrays, once the struct is in; 2: the first lines of
 *  its leads' arrays, once leads[] is in) before it is saved. */
void ds_score_unit_prefetch(const ds_score_unit_t *u, int stage);

/** Approximate heap bytes held by the unit (for the memory benchmark). */
size_t ds_score_unit_mem(const ds_score_unit_t *u);

#endif
