/*
 * scorer.c — the lead scorer's adapter to the worker engine: ma.events
 * records in, LeadScore and AccountScore records out.  The scoring itself
 * is score.c (pure); the Redis layout (the keys, the loads and the writes)
 * is scorer_redis.c.
 *
 * Hot state: every scoring unit (an account, or a lead without account)
 * touched since start-up stays in memory (uthash by key) with the leads
 * its events needed, loaded before a batch is applied and never evicted
 * while the process runs.  Each unit remembers the (partition, offset) of
 * the last message applied to it; that checkpoint is written with what
 * the unit changed (an account's in one MULTI/EXEC, a lone lead's in one
 * HSET), so a replayed message is recognised and skipped: state effects
 * exactly once.  The first load of a unit binds it to the partition of the
 * event that needs it, so that two workers never apply one unit's records
 * from two partitions: the events of the other partition go to the DLQ
 * (wrong_partition).
 *
 * The engine owns the checkpoint's use (a replayed message skipped, an
 * event of a unit bound elsewhere sent to the DLQ), the counters of
 * applied, duplicate and skipped events, and the queue of dirty units of
 * the write-behind windows (each unit_entry_t begins with its
 * ds_worker_entity_t).  Here: decode (which unit an event belongs to),
 * apply (score.c; the records it emits encoded and queued), and the
 * lifecycle: new rules, reset, the rewrite after Redis came back empty.
 */
#include "workers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "ds_log.h"
#include "scorer_int.h"

void ds_scorer_count_leads(ds_scorer_t *s, unit_entry_t *e) {
    size_t nl = e->unit ? ds_score_unit_lead_count(e->unit) : 0;
    s->tracked_leads += nl - e->leads_counted;
    e->leads_counted = nl;
}

void ds_scorer_publish_tracked(ds_scorer_t *s) {
    if (s->m_tracked_leads)
        ds_gauge_set(s->m_tracked_leads, (double)s->tracked_leads);
    if (s->m_tracked_units)
        ds_gauge_set(s->m_tracked_units, (double)s->tracked_units);
}

/* ---- decode -------------------------------------------------------------- */

/* The event, and its unit: the account, or the lead without one. */
static ds_err_t sc_decode(void *self, const void *val, size_t len, ds_arena_t *arena, void *slot,
                          char *detail, size_t detail_size) {
    ds_scorer_t *s = self;
    sslot_t *ss = slot;
    ds_err_t e = ds_codec_decode_ma(s->a.codec, val, len, arena, &ss->ev, detail, detail_size);
    if (!e) {
        bool is_account;
        ss->head.unit = ds_scorer_ev_unit_key(&ss->ev, &is_account);
        ss->head.unit_field = is_account ? "account_id" : "lead_id";
    }
    return e;
}

/* ---- apply --------------------------------------------------------------- */

/* ops.outputs: LeadScore first, then AccountScore */
static void sink_lead(void *opaque, const ds_lead_score_t *ls) {
    ds_scorer_t *s = opaque;
    ds_worker_output(s->cur, 0, ls->lead_id, ls->output_id, ls);
    ds_worker_add(s->m_lead_scores, 1);
}

static void sink_account(void *opaque, const ds_account_score_t *as) {
    ds_scorer_t *s = opaque;
    ds_worker_output(s->cur, 1, as->account_id, as->output_id, as);
    ds_worker_add(s->m_account_scores, 1);
}

/* The event's unit is loaded and bound to `partition` (the engine checked
 * both); a replayed event is already in its state. */
static ds_err_t sc_apply(void *self, ds_worker_t *w, void *slot, int32_t partition, bool replay) {
    ds_scorer_t *s = self;
    const sslot_t *ss = slot;
    const ds_ma_event_t *ev = &ss->ev;
    unit_entry_t *e = ds_scorer_slot_entry(ss);
    (void)partition;
    if (!e->unit) {
        DS_ERROR("scorer", "unit %s was not loaded", ss->head.unit);
        abort(); /* a bug: the load guarantees it */
    }
    if (replay)
        return DS_ERR_OK;
    s->cur = w;
    ds_score_sink_t sink = {sink_lead, sink_account, s};
    uint64_t unclassified = s->stats.unclassified;
    ds_err_t err = ds_score_unit_apply_ex(e->unit, s->a.rules, ev, &sink, &s->stats);
    if (s->stats.unclassified != unclassified)
        ds_worker_add(s->m_unclassified, 1);
    if (err == DS_ERR_AGAIN) {
        DS_ERROR("scorer", "event %s of %s needs state that was not loaded", ev->event_id, e->key);
        abort(); /* a bug: the load reads what ds_score_unit_needs() names */
    } else if (err && err != DS_ERR_DUPLICATE) {
        DS_WARN("scorer", "event %s not applied: %s", ev->event_id, ds_err2str(err));
    }
    ds_scorer_count_leads(s, e);
    return err;
}

/* ---- lifecycle ------------------------------------------------------------- */

static void sc_reset(ds_scorer_t *s) {
    ds_scorer_forget_loads(s);
    unit_entry_t *e, *tmp;
    HASH_ITER(hh, s->units, e, tmp) {
        HASH_DEL(s->units, e);
        ds_score_unit_destroy(e->unit);
        ds_score_unit_destroy(e->pend);
        free(e->stash);
        for (size_t k = 0; k < e->nlisted; k++)
            free(e->listed[k]);
        free(e->listed);
        free(e->key);
        free(e);
    }
    s->tracked_leads = s->tracked_units = 0;
    ds_scorer_publish_tracked(s);
}

static void sc_rewrite_all(ds_scorer_t *s, const ds_partitions_t *owned) {
    size_t part = 0;
    unit_entry_t *e, *tmp;
    HASH_ITER(hh, s->units, e, tmp) {
        if (!e->unit || !ds_partitions_has(owned, e->ent.partition))
            continue; /* not loaded, or another worker's */
        bool whole = true;
        if (ds_score_unit_mark_all_dirty(e->unit, &whole))
            ds_worker_oom("scorer");
        part += !whole;
        e->written_sig = 0;
        ds_worker_dirty(s->a.worker, &e->ent);
    }
    if (part)
        DS_ERROR("scorer",
                 "%zu accounts are held in memory only in part (the leads and webinars their "
                 "events needed since they were read from Redis): what was not held is lost "
                 "until replayed; rebuild them by replay (docs/OPERATIONS.md)",
                 part);
}

/* New rules (the head's, set by the engine) need nothing more: the
 * scorer keeps no clock and nothing per partition, and a window owes
 * nothing but its units. */
static void sc_lifecycle(void *self, const ds_worker_change_t *c) {
    ds_scorer_t *s = self;
    if (c->what == DS_WORKER_RESET)
        sc_reset(s);
    else if (c->what == DS_WORKER_REWRITE)
        sc_rewrite_all(s, c->parts);
}

static void sc_close(void *self) {
    ds_scorer_t *s = self;
    sc_reset(s);
    free(s->loads);
    ds_buf_free(&s->prog);
    ds_buf_free(&s->wkeys);
    ds_buf_free(&s->xkeys);
    free(s->wargv);
    free(s->wlens);
    free(s->dict);
    free(s->dict_idx);
    ds_buf_free(&s->list);
    ds_buf_free(&s->sumbuf);
    ds_buf_free(&s->keybuf);
    free(s->sums);
    ds_score_scratch_destroy(s->scratch);
}

static bool sc_open(void *self, char *errstr, size_t errstr_size) {
    ds_scorer_t *s = self;
    ds_worker_t *w = s->a.worker;
    if (!(s->scratch = ds_score_scratch_new())) {
        snprintf(errstr, errstr_size, "out of memory");
        return false;
    }
    s->m_unclassified = ds_worker_counter(w, "unclassified_events",
                                          "Events whose content has no stage (scores nothing)");
    s->m_migrated =
        ds_worker_counter(w, "state_migrated_units",
                          "Units read in an earlier version's layout (moved by their next write)");
    ds_metrics_t *metrics = ds_worker_metrics(w);
    if (metrics) {
        char labels[128];
        snprintf(labels, sizeof(labels), "%s,kind=\"lead\"", ds_worker_labels(w));
        s->m_lead_scores =
            ds_metrics_counter(metrics, "scores_emitted", "Score records produced", labels);
        snprintf(labels, sizeof(labels), "%s,kind=\"account\"", ds_worker_labels(w));
        s->m_account_scores =
            ds_metrics_counter(metrics, "scores_emitted", "Score records produced", labels);
    }
    s->m_tracked_leads =
        ds_worker_gauge(w, "tracked_leads", "Leads whose state this process holds in memory");
    s->m_tracked_units = ds_worker_gauge(
        w, "tracked_units", "Scoring units (accounts, or leads without one) held in memory");
    return true;
}

static const ds_worker_ops_t scorer_ops = {
    .name = "scorer",
    .size = sizeof(ds_scorer_t),
    .event_size = sizeof(sslot_t),
    .outputs = {"LeadScore", "AccountScore"},
    .unit_key_doc = "account_id (lead_id for a lead without account)",
    .redis_script = ds_scorer_write_lua,
    .redis_script_sha = ds_scorer_write_lua_sha,
    .decode = sc_decode,
    .load = ds_scorer_load,
    .loaded = ds_scorer_loaded,
    .apply = sc_apply,
    .persist = ds_scorer_persist,
    .lifecycle = sc_lifecycle,
    .open = sc_open,
    .close = sc_close,
};

ds_worker_t *ds_scorer_new(const ds_config_t *cfg, const ds_rules_t *rules, ds_metrics_t *metrics,
                           int thread, char *errstr, size_t errstr_size) {
    return ds_worker_new(cfg, cfg->topic_marketing, &scorer_ops, rules, metrics, thread, errstr,
                         errstr_size);
}
