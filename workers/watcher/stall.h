/*
 * stall.h — the stall-detection domain (docs/CONTRACT.md, "Stall
 * detection"), pure C.
 *
 * One ds_deal_t per deal_id (the key of crm.events): the customer-verified
 * state machine and the lifecycle of its four alerts.  No clock is read
 * here: the caller passes `now` (event clock: the partition watermark; wall
 * clock: the system time) and the grace, and keeps a deadline index from
 * ds_deal_next_deadline() so that only due deals are evaluated.
 *
 * Memory: the deal owns its strings; records passed to the sink are valid
 * during the call only.  Not thread-safe.
 */
#ifndef DS_STALL_H
#define DS_STALL_H

#include <stdbool.h>

#include "ds_buf.h"
#include "ds_err.h"
#include "rules.h"

typedef struct ds_deal ds_deal_t;

typedef struct ds_watch_ctx {
    const ds_rules_t *rules;
    int64_t now;      /* evaluation time, ms; also raised_at */
    int64_t grace_ms; /* wall clock only: conditions use now - grace_ms */
    /* True when the scorer's stored tier of this stakeholder is MOBILIZER
     * (may be NULL: then only signals and roles count). */
    bool (*stakeholder_is_mobilizer)(void *opaque, const char *account_id,
                                     const char *contact_id);
    /* Non-zero: stakeholder_is_mobilizer answers the same for the same
     * stakeholder until tier_epoch changes, so a deal keeps the answer
     * (0: asked at every evaluation). */
    uint64_t tier_epoch;
    void (*alert)(void *opaque, const ds_deal_alert_t *a);
    void *opaque;
} ds_watch_ctx_t;

ds_deal_t *ds_deal_new(const char *deal_id);
void ds_deal_destroy(ds_deal_t *d);

/** Apply one CRM event, then evaluate the alerts at ctx->now.  Returns OK,
 *  DS_ERR_DUPLICATE (event_id seen within the dedupe window) or
 *  DS_ERR_IGNORED (after close, a later DEAL_OPENED, a STAGE_CHANGED
 *  without stage): ignored events still evaluate nothing. */
ds_err_t ds_deal_apply(ds_deal_t *d, const ds_crm_event_t *ev, const ds_watch_ctx_t *ctx);

/** Evaluate the alert conditions at ctx->now (a clock check). */
void ds_deal_evaluate(ds_deal_t *d, const ds_watch_ctx_t *ctx);

/** The earliest time at which a clock check may change an alert (a quiet
 *  deadline passing, a reminder falling due), before grace; INT64_MAX when
 *  none (closed, or nothing can happen without an event). */
int64_t ds_deal_next_deadline(const ds_deal_t *d, const ds_rules_t *r);

/** Whether applying evs (every event of the deal in a batch, in order; n
 *  0 for a clock check, ds_deal_evaluate) may evaluate NO_MOBILIZER and so
 *  ask stakeholder_is_mobilizer (a stage at or past
 *  mobilizer_required_from), after any of them or at a clock check between
 *  them: false only when none can.  Lets the caller read just those tiers
 *  ahead. */
bool ds_deal_may_ask_tiers(const ds_deal_t *d, const ds_crm_event_t *const *evs, size_t n,
                           const ds_rules_t *r);

const char *ds_deal_id(const ds_deal_t *d);
/** The time of the deal's first event (its opening); DS_TS_NULL before. */
int64_t ds_deal_opened_at(const ds_deal_t *d);
/** Where NO_BUYER_SIGNAL's quiet spell starts: the last buyer signal, else
 *  the opening (DS_TS_NULL before the opening). */
int64_t ds_deal_quiet_start(const ds_deal_t *d);
/** The verified stage under r (DS_NONE: every stage is verified). */
int ds_deal_verified_stage(const ds_deal_t *d, const ds_rules_t *r);
/** DS_CRM_DEAL_WON or DS_CRM_DEAL_LOST once closed, DS_NONE while open. */
int ds_deal_outcome(const ds_deal_t *d);
const char *ds_deal_account_id(const ds_deal_t *d);
bool ds_deal_is_closed(const ds_deal_t *d);
bool ds_deal_mobilizer_known(const ds_deal_t *d);
/** Stakeholder contact ids, in the order first seen. */
size_t ds_deal_stakeholder_count(const ds_deal_t *d);
const char *ds_deal_stakeholder(const ds_deal_t *d, size_t i);

/** Public view for the Redis deal hash: appends "field\0value\0" pairs. */
ds_err_t ds_deal_public_fields(const ds_deal_t *d, const ds_rules_t *r, ds_buf_t *out) DS_WUR;

/** The deal's record: everything but its stakeholders and, once they
 *  were more than 64, the ids of its dedupe window, which the watcher
 *  stores as they change (ds_deal_changes); a deal is its record, then
 *  those. */
ds_err_t ds_deal_save(const ds_deal_t *d, ds_buf_t *out) DS_WUR;
/** A deal from its record (this version's, or an earlier one's, which
 *  holds its stakeholders and ids itself). */
ds_deal_t *ds_deal_load(const void *p, size_t n, ds_err_t *err);
/** After ds_deal_load: whether its stakeholders and its ids are stored
 *  apart from its record (to read with ds_deal_load_stakeholder and
 *  ds_deal_load_seen). */
void ds_deal_kept_apart(const ds_deal_t *d, bool *stakeholders, bool *ids);
/** After ds_deal_load of this version's record: one of its stored
 *  stakeholders, one of its stored dedupe ids (hash, time); no-ops after
 *  an earlier version's record.  DS_ERR_NOMEM, DS_ERR_UNDECODABLE (a hash
 *  of 0). */
ds_err_t ds_deal_load_stakeholder(ds_deal_t *d, const char *contact_id) DS_WUR;
ds_err_t ds_deal_load_seen(ds_deal_t *d, uint64_t h, int64_t t) DS_WUR;

/** Note from now on what changes in its stakeholders and dedupe ids, for
 *  ds_deal_changes (the watcher's deals; a backtest's do not); the first
 *  write after this is whole. */
void ds_deal_track(ds_deal_t *d);
/** What a write stores of the stakeholders and dedupe ids since the last
 *  ds_deal_written: the stakeholders from *first_stakeholder on, put(h, t)
 *  for each id to store (a new one, or a new time), del(h) for each id
 *  dropped from the window (no ids while the record holds them).  Whole (every id put, *first_stakeholder 0,
 *  returns true) when `whole`, on the first write after ds_deal_track, or
 *  when a change could not be noted; the caller then clears what was
 *  stored first.  What the ids come to after the writes depends only on
 *  the events applied: the window drops its old ids at points the events
 *  set (when the ids double), never at a write. */
bool ds_deal_changes(ds_deal_t *d, bool whole, size_t *first_stakeholder,
                     void (*put)(void *, uint64_t, int64_t), void (*del)(void *, uint64_t),
                     void *opaque);
/** The changes ds_deal_changes reported are stored. */
void ds_deal_written(ds_deal_t *d);
size_t ds_deal_mem(const ds_deal_t *d);

#endif
