/*
 * score.h — the lead-scoring domain (confront and connect scoring, the
 * account roll-up), pure C.
 *
 * No I/O here: events in, LeadScore/AccountScore out through a sink, state
 * to and from bytes through callbacks.  The unit of state is the Kafka key
 * of ma.events: one account with its leads (or one lead that has no
 * account).  Every rule that relates two leads (follow credit, group
 * credit, the account roll-up) stays inside one unit, so a unit is applied
 * by one thread in partition order and persisted atomically with its
 * checkpoint by the caller.
 *
 * Cost.  Applying an event costs in proportion to the leads it touches
 * (its lead, the colleagues it names, the sharers it credits, the
 * attendees it credits) and to the account's insights; never to the
 * number of leads of the account or to their history: the account's
 * figures (per-insight sums, engaged and confronted counts, mobilizers)
 * are maintained incrementally.  A write carries the leads changed since
 * the last one, the attendance fields they changed, new dictionary
 * entries and the account's aggregate record.
 *
 * Residency.  A unit made by ds_score_unit_new() is complete: it holds all
 * its state.  A unit rebuilt from storage holds what was supplied to it
 * (ds_score_unit_put_*); ds_score_unit_needs() says what an event needs
 * that is not there yet, and ds_score_unit_apply() refuses (DS_ERR_AGAIN,
 * nothing changed) an event whose state is not all in memory.
 *
 * Memory: a unit owns all its strings; pointers in emitted records are
 * valid only during the sink call.  Not thread-safe; one unit, one thread.
 */
#ifndef DS_SCORE_H
#define DS_SCORE_H

#include <stdbool.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_dedupe.h"
#include "rules.h"

typedef struct ds_score_unit ds_score_unit_t;

typedef struct ds_score_sink {
    /* Called when an applied event changes a lead's rounded scores or tier. */
    void (*lead_score)(void *opaque, const ds_lead_score_t *s);
    /* Called when an account's figures change. */
    void (*account_score)(void *opaque, const ds_account_score_t *s);
    void *opaque;
} ds_score_sink_t;

/** A new, complete, empty unit for the key of the events (account_id, or
 *  the lead_id of a lead without account: then is_account is false). */
ds_score_unit_t *ds_score_unit_new(const char *key, bool is_account);
void ds_score_unit_destroy(ds_score_unit_t *u);

/** The buffers an apply or a view works in (reason texts, the touched
 *  leads, the mobilizers' pointers).  Each unit has its own unless it is
 *  given a shared one: the units of one thread may share one, which saves
 *  its few hundred bytes per account.  Records passed to a sink or a
 *  writer, and views, are then valid until the next call on any unit
 *  sharing it.  The scratch must outlive the units that use it. */
typedef struct ds_score_scratch ds_score_scratch_t;
ds_score_scratch_t *ds_score_scratch_new(void);
void ds_score_scratch_destroy(ds_score_scratch_t *scr);
/** A new unit (as ds_score_unit_new) using scr (borrowed; NULL: its own).
 *  Content and insight ids are interned once per scratch, so that the
 *  units of a worker share them. */
ds_score_unit_t *ds_score_unit_new_in(const char *key, bool is_account, ds_score_scratch_t *scr);

/** Counters that ds_score_unit_apply_ex adds to; owned by the caller and
 *  cumulative (zero it once).  `unclassified` counts applied events whose
 *  content has no stage (neither on the event nor in the catalog). */
typedef struct ds_score_stats {
    uint64_t applied;      /* non-duplicate events applied */
    uint64_t duplicates;   /* DS_ERR_DUPLICATE returns */
    uint64_t unclassified; /* applied, but content without a stage */
    uint64_t lead_scores;  /* LeadScore records passed to the sink */
    uint64_t account_scores;
} ds_score_stats_t;

/** Apply one event in partition order.  Returns DS_ERR_OK when it was
 *  applied (even if it changed no score), DS_ERR_DUPLICATE for an event_id
 *  its lead saw within dedupe_window_days (event time), DS_ERR_INVAL when
 *  the event does not belong to this unit, DS_ERR_AGAIN (nothing changed)
 *  when state it needs is not in memory.  Outputs go to sink (may be
 *  NULL); *stats (may be NULL) is added to. */
ds_err_t ds_score_unit_apply_ex(ds_score_unit_t *u, const ds_rules_t *r,
                                const ds_ma_event_t *ev, const ds_score_sink_t *sink,
                                ds_score_stats_t *stats);
ds_err_t ds_score_unit_apply(ds_score_unit_t *u, const ds_rules_t *r, const ds_ma_event_t *ev,
                             const ds_score_sink_t *sink);

/* ---- what an event needs ------------------------------------------------ */

enum {
    DS_SCORE_NEED_LEAD,       /* id: a lead's stored record */
    DS_SCORE_NEED_ATTENDANCE, /* id: a content id: its attendance index */
    DS_SCORE_NEED_IDS,        /* id: a lead's dedupe ids, kept apart
                               * (ds_score_unit_put_ids) */
    DS_SCORE_NEED_MEM,        /* id: a lead's repeats and share pairs, kept
                               * apart (ds_score_unit_put_mem) */
    DS_SCORE_NEED_ALL_LEADS,  /* every lead of the account (tier thresholds
                               * changed: the counts are recomputed once) */
};
typedef void (*ds_score_need_fn)(void *opaque, int kind, const char *id);

/** Call fn for each piece of state that applying ev may touch and that is
 *  not in memory; returns how many.  Once they are supplied, call again:
 *  a lead's record may name more (the sharers of what was shared with it,
 *  the attendees of a webinar).  A superset: events applied in between
 *  only touch what is in memory. */
size_t ds_score_unit_needs(const ds_score_unit_t *u, const ds_rules_t *r,
                           const ds_ma_event_t *ev, ds_score_need_fn fn, void *opaque);

/* ---- storage: supplying a unit ------------------------------------------ */

/** The account's stored aggregate record (first, before its leads).
 *  The unit becomes incomplete: from now on only what is supplied is in
 *  memory.  DS_ERR_UNDECODABLE on bytes that are not such a record. */
ds_err_t ds_score_unit_put_account(ds_score_unit_t *u, const void *p, size_t n) DS_WUR;
/** One stored dictionary entry (index -> content or insight id). */
ds_err_t ds_score_unit_put_dict(ds_score_unit_t *u, uint64_t idx, const char *s,
                                size_t n) DS_WUR;
/** One stored insight sum (ds_score_writer_t.sum), after the dictionary. */
ds_err_t ds_score_unit_put_sum(ds_score_unit_t *u, uint64_t idx, const void *p, size_t n) DS_WUR;
/** One stored mobilizer of the account. */
ds_err_t ds_score_unit_put_mobilizer(ds_score_unit_t *u, const char *lead_id, size_t n) DS_WUR;
/** A lead's stored record; p NULL: the lead has none (new).  A lead
 *  already in memory is left as it is. */
ds_err_t ds_score_unit_put_lead(ds_score_unit_t *u, const char *lead_id, const void *p,
                                size_t n) DS_WUR;
/** The dedupe ids kept apart of a lead in memory (DS_SCORE_NEED_IDS): all
 *  of them, in any order.  Nothing for a lead whose ids are in memory.
 *  None (a hash Redis lost), a hash of 0 or one listed twice is
 *  DS_ERR_UNDECODABLE, and the lead's ids stay to be read. */
ds_err_t ds_score_unit_put_ids(ds_score_unit_t *u, const char *lead_id,
                               const ds_dedupe_entry_t *e, size_t n) DS_WUR;

/** A field of a hash a unit keeps apart: its name and value (an empty
 *  value: the field is deleted). */
typedef struct ds_score_field {
    const char *k, *v;
    size_t kn, vn;
} ds_score_field_t;

/** The repeats and share pairs kept apart of a lead in memory
 *  (DS_SCORE_NEED_MEM): every field of their hash, in any order (the
 *  formats are score_store.c's).  Nothing for a lead whose memory is in
 *  memory. */
ds_err_t ds_score_unit_put_mem(ds_score_unit_t *u, const char *lead_id,
                               const ds_score_field_t *f, size_t n) DS_WUR;
/** One stored field of a webinar's attendance index, then _done once all
 *  of them were supplied (an index with no field is empty). */
ds_err_t ds_score_unit_put_attendance(ds_score_unit_t *u, const char *content_id,
                                      const char *lead_id, const void *p, size_t n) DS_WUR;
ds_err_t ds_score_unit_attendance_done(ds_score_unit_t *u, const char *content_id) DS_WUR;
/** A unit saved whole by an earlier version (state versions 1 and 2).  The
 *  result is complete and everything in it is dirty, so that its next
 *  write stores it in the per-lead layout; ds_score_unit_is_legacy() says
 *  so until then (the caller deletes the old blob in that write).
 *  NULL and *err on failure. */
ds_score_unit_t *ds_score_unit_load_legacy(const void *p, size_t n, ds_score_scratch_t *scr,
                                           ds_err_t *err);
bool ds_score_unit_is_legacy(const ds_score_unit_t *u);

/* ---- storage: writing what changed --------------------------------------- */

/** Notes a caller keeps per lead about what it last wrote (0 for a new or
 *  loaded lead; not saved). */
#define DS_LEAD_NOTES 2

typedef struct ds_score_writer {
    void *opaque;
    /* A changed lead: its public view (output_id NULL; its reasons are the
     * contributions in words, largest first, without their points, which
     * change with every event while the words seldom do), the caller's notes,
     * its record (ds_score_unit_put_lead bytes), whether it is a lead of
     * the account's lead set and not yet known there.  A lead that only
     * received a share has no event of its own: `member` is false. */
    void (*lead)(void *opaque, const ds_lead_score_t *view, uint64_t *notes, const void *rec,
                 size_t n, bool member, bool new_member);
    /* A new dictionary entry. */
    void (*dict)(void *opaque, uint32_t idx, const char *s);
    /* An attendance-index field (content, lead) to set, or (n == 0) delete. */
    void (*attendance)(void *opaque, const char *content_id, const char *lead_id, const void *v,
                       size_t n);
    /* A mobilizer joined (add) or left the account's set. */
    void (*mobilizer)(void *opaque, const char *lead_id, bool add);
    /* An insight's sum over the account's leads (keyed by the insight's
     * dictionary index) to set, or (n == 0) delete.  Only changed ones. */
    void (*sum)(void *opaque, uint32_t idx, const void *v, size_t n);
    /* The account's figures and aggregate record (accounts only; last).
     * `sig` changes whenever a figure does (0 never). */
    void (*account)(void *opaque, const ds_account_score_t *view, uint64_t sig, const void *rec,
                    size_t n);
    /* The dedupe ids of a lead whose record does not hold them (more
     * than 64 were in its window: they are kept apart), after its `lead`:
     * with `whole`, what is stored of them is replaced by e[0..n); else
     * each of e[0..n) (by hash, once each) is set, or removed when its t
     * is DS_SCORE_ID_DROPPED.  A writer without it stores the views only
     * (nothing of the ids is taken as written). */
    void (*ids)(void *opaque, const char *lead_id, bool whole, const ds_dedupe_entry_t *e,
                size_t n);
    /* The repeats and share pairs of a lead whose record does not hold
     * them (it has had more than 64: they are kept apart), after its
     * `lead`: with `whole`, what is stored of them is replaced by
     * f[0..n) (n may be 0: the hash is deleted); else each of f[0..n) is
     * set.  A writer without it stores the views only (nothing of the
     * memory is taken as written). */
    void (*mem)(void *opaque, const char *lead_id, bool whole, const ds_score_field_t *f,
                size_t n);
    /* The writer's epoch (a new connection, say): a lead's ids or memory
     * last written in another are written whole. */
    unsigned epoch;
} ds_score_writer_t;

#define DS_SCORE_ID_DROPPED INT64_MIN

/** Pass everything changed since the last write to w (dirty leads in the
 *  order they became dirty, then the attendance-field, mobilizer and
 *  insight-sum changes, then the new dictionary entries and the account),
 *  and forget it: the unit is clean after.
 *  Costs what changed plus the account's insights. */
ds_err_t ds_score_unit_write(ds_score_unit_t *u, const ds_score_writer_t *w) DS_WUR;
/** Whether anything changed since the last write. */
bool ds_score_unit_dirty(const ds_score_unit_t *u);
/** Make everything in memory dirty, as if nothing had been written: every
 *  lead (notes cleared, set membership unknown), the attendance fields and
 *  mobilizers of the leads in memory, the dictionary, the account (Redis
 *  lost what was written).  *whole: the unit holds everything it ever
 *  stored (a unit read from Redis holds only what its events needed).
 *  Costs the unit's size. */
ds_err_t ds_score_unit_mark_all_dirty(ds_score_unit_t *u, bool *whole) DS_WUR;

/** Everything in memory as one buffer (all leads, indexes, dictionary and
 *  aggregate, in the per-lead formats), and back: for tests, tools and
 *  the whole-unit round trip.  ds_score_unit_load also reads the whole-unit
 *  blobs of earlier versions (ds_score_unit_load_legacy). */
ds_err_t ds_score_unit_save(ds_score_unit_t *u, ds_buf_t *out) DS_WUR;
ds_score_unit_t *ds_score_unit_load(const void *p, size_t n, ds_err_t *err);

/* ---- views -------------------------------------------------------------- */

const char *ds_score_unit_key(const ds_score_unit_t *u);
bool ds_score_unit_is_account(const ds_score_unit_t *u);
/** Leads in memory (with records of their own or receiving shares). */
size_t ds_score_unit_lead_count(const ds_score_unit_t *u);
/** Current account view; false for a lone lead.  Valid until the next call
 *  on the unit. */
bool ds_score_unit_account_view(ds_score_unit_t *u, ds_account_score_t *out);
/** Recompute the account's figures from its leads and compare them with
 *  the incremental ones (needs every lead in memory); false with a reason
 *  in why when they differ.  For tests. */
bool ds_score_unit_check(const ds_score_unit_t *u, char *why, size_t why_size);
/** Approximate heap bytes held by the unit (for the memory benchmark). */
size_t ds_score_unit_mem(const ds_score_unit_t *u);

#endif
