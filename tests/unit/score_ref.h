/*
 * score_ref.h — THE PRE-REWRITE LEAD SCORER, KEPT AS A TEST ORACLE.
 *
 * A copy of workers/scorer/score.h as it was before the account roll-up
 * became incremental, every external name renamed (ds_score_unit_* ->
 * ref_score_unit_*, ds_score_sink_t/ds_score_stats_t -> ref_score_*), so
 * that tests can apply the same events to ds_score_unit_t and to this
 * whole-account implementation and compare what both emit.  Only the
 * event, record and rules types (events.h, rules.h) are shared.  Do not
 * "fix" or optimise it: its value is that it stays what it was.  One
 * deliberate change against the original (see score_ref.c): an account's
 * as_of is the largest as_of any of its leads has ever had.
 *
 * What follows is the original header's text, its references pointed
 * at docs/CONTRACT.md.
 *
 * score.h — the lead-scoring domain (docs/CONTRACT.md, "Lead scoring"), pure C.
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
#ifndef REF_SCORE_H
#define REF_SCORE_H

#include <stdbool.h>
#include <stdint.h>

#include "ds_buf.h"
#include "rules.h"

typedef struct ref_score_unit ref_score_unit_t;

typedef struct ref_score_sink {
    /* Called when an applied event changes a lead's rounded scores or tier. */
    void (*lead_score)(void *opaque, const ds_lead_score_t *s);
    /* Called when an account's figures change. */
    void (*account_score)(void *opaque, const ds_account_score_t *s);
    void *opaque;
} ref_score_sink_t;

/** A new empty unit for the key of the events (account_id, or the lead_id
 *  of a lead without account: then is_account is false). */
ref_score_unit_t *ref_score_unit_new(const char *key, bool is_account);
void ref_score_unit_destroy(ref_score_unit_t *u);

/** Apply one event in partition order.  Returns DS_ERR_OK when it was
 *  applied (even if it changed no score), DS_ERR_DUPLICATE for an event_id
 *  seen within dedupe_window_days (event time), DS_ERR_INVAL when the event
 *  does not belong to this unit.  Outputs go to sink (may be NULL). */
ds_err_t ref_score_unit_apply(ref_score_unit_t *u, const ds_rules_t *r,
                             const ds_ma_event_t *ev, const ref_score_sink_t *sink);

/** Counters that ref_score_unit_apply_ex adds to; owned by the caller and
 *  cumulative (zero it once).  `unclassified` counts applied events whose
 *  content has no stage (neither on the event nor in the catalog), the
 *  `unclassified` metric (docs/CONTRACT.md). */
typedef struct ref_score_stats {
    uint64_t applied;      /* non-duplicate events applied */
    uint64_t duplicates;   /* DS_ERR_DUPLICATE returns */
    uint64_t unclassified; /* applied, but content without a stage */
    uint64_t lead_scores;  /* LeadScore records passed to the sink */
    uint64_t account_scores;
} ref_score_stats_t;

/** ref_score_unit_apply that also adds to *stats (may be NULL). */
ds_err_t ref_score_unit_apply_ex(ref_score_unit_t *u, const ds_rules_t *r,
                                const ds_ma_event_t *ev, const ref_score_sink_t *sink,
                                ref_score_stats_t *stats);

/** Serialise the whole unit (versioned binary).  Appends to out. */
ds_err_t ref_score_unit_save(const ref_score_unit_t *u, ds_buf_t *out) DS_WUR;
/** Rebuild a unit from ref_score_unit_save bytes; NULL and *err on failure. */
ref_score_unit_t *ref_score_unit_load(const void *p, size_t n, ds_err_t *err);

/** Unit key and kind. */
const char *ref_score_unit_key(const ref_score_unit_t *u);
bool ref_score_unit_is_account(const ref_score_unit_t *u);
/** Number of leads in the unit; leads are only ever appended, so index i
 *  names the same lead for the unit's whole life. */
size_t ref_score_unit_lead_count(const ref_score_unit_t *u);
/** The lead_id of lead i (< ref_score_unit_lead_count). */
const char *ref_score_unit_lead_id(const ref_score_unit_t *u, size_t i);

/** Current public view of every lead changed since the last clear (what the
 *  Redis lead hash shows); the record is valid during the call only.
 *  `written` is a note the caller keeps per lead, REF_LEAD_NOTES words (0
 *  for a new or loaded lead; not saved): what it last wrote. */
#define REF_LEAD_NOTES 2
/* The current view of one lead (added for the property test: a lead the
 * per-lead layout rewrites for a change its public fields do not show). */
void ref_score_unit_view_of(ref_score_unit_t *u, const char *lead_id,
                            void (*fn)(void *opaque, uint64_t *written,
                                       const ds_lead_score_t *view),
                            void *opaque);
void ref_score_unit_foreach_dirty(ref_score_unit_t *u,
                                 void (*fn)(void *opaque, uint64_t *written,
                                            const ds_lead_score_t *view),
                                 void *opaque);
/** Current account view; false for a lone lead. Valid until the next call
 *  on the unit. */
bool ref_score_unit_account_view(ref_score_unit_t *u, ds_account_score_t *out);
void ref_score_unit_clear_dirty(ref_score_unit_t *u);
/** Ask the CPU to start loading the unit (stage 0: the struct; 1: the
 *  first lines of its arrays, once the struct is in; 2: the first lines of
 *  its leads' arrays, once leads[] is in) before it is saved. */
void ref_score_unit_prefetch(const ref_score_unit_t *u, int stage);

/** Not in score.h: the largest *current* as_of of the unit's leads (0 when
 *  none), i.e. an account's as_of under the rule of the original code,
 *  before a late UNSUBSCRIBED could no longer move it back.  For tests that
 *  compare against a score.c still on that rule. */
int64_t ref_score_unit_leads_as_of(const ref_score_unit_t *u);

/** Approximate heap bytes held by the unit (for the memory benchmark). */
size_t ref_score_unit_mem(const ref_score_unit_t *u);

#endif
