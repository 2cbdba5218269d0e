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
 * Here: decode (which unit an event belongs to), apply (score.c; the
 * records it emits encoded and queued), the queue of dirty units of the
 * write-behind windows, reset, the rewrite after Redis came back empty,
 * and the ops table.
 */
#include "scorer.h"

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

static void publish_tracked(ds_scorer_t *s) {
    if (s->m_tracked_leads)
        ds_gauge_set(s->m_tracked_leads, (double)s->tracked_leads);
    if (s->m_tracked_units)
        ds_gauge_set(s->m_tracked_units, (double)s->tracked_units);
}

static ds_counter_t *mcounter(ds_metrics_t *m, const char *name, const char *help) {
    return m ? ds_metrics_counter(m, name, help, "worker=\"scorer\"") : NULL;
}

static void inc(ds_counter_t *c) {
    if (c)
        ds_counter_add(c, 1);
}

void ds_scorer_oom(void) {
    DS_ERROR("scorer", "out of memory");
    abort();
}

/* ---- decode -------------------------------------------------------------- */

static ds_err_t sc_decode(void *self, const void *val, size_t len, ds_arena_t *arena, void *slot,
                          char *detail, size_t detail_size) {
    ds_scorer_t *s = self;
    ((sslot_t *)slot)->e = NULL;
    return ds_codec_decode_ma(s->codec, val, len, arena, slot, detail, detail_size);
}

static const char *sc_unit_key(void *self, const void *slot, const char **id_name) {
    (void)self;
    bool is_account;
    const char *key = ds_scorer_ev_unit_key(slot, &is_account);
    *id_name = is_account ? "account_id" : "lead_id";
    return key;
}

static int32_t sc_unit_partition(void *self, const void *slot) {
    (void)self;
    const unit_entry_t *e = ((const sslot_t *)slot)->e;
    return e ? e->ckpt_partition : -1;
}

/* ---- apply --------------------------------------------------------------- */

static void sink_lead(void *opaque, const ds_lead_score_t *ls) {
    ds_scorer_t *s = opaque;
    ds_buf_reset(&s->enc);
    if (ds_codec_encode_lead_score(s->codec, ls, &s->enc)) {
        DS_ERROR("scorer", "cannot encode LeadScore of %s", ls->lead_id);
        abort();
    }
    ds_worker_emit(s->cur, s->cfg->topic_lead_scores, ls->lead_id, s->enc.data, s->enc.len,
                   ls->output_id);
    inc(s->m_lead_scores);
}

static void sink_account(void *opaque, const ds_account_score_t *as) {
    ds_scorer_t *s = opaque;
    ds_buf_reset(&s->enc);
    if (ds_codec_encode_account_score(s->codec, as, &s->enc)) {
        DS_ERROR("scorer", "cannot encode AccountScore of %s", as->account_id);
        abort();
    }
    ds_worker_emit(s->cur, s->cfg->topic_account_scores, as->account_id, s->enc.data, s->enc.len,
                   as->output_id);
    inc(s->m_account_scores);
}

static void mark_dirty(ds_scorer_t *s, unit_entry_t *e) {
    if (e->dirty)
        return;
    if (!ds_dirtyq_push(&s->dirty, e))
        ds_scorer_oom();
    e->dirty = true;
}

static void sc_apply(void *self, ds_worker_t *w, void *slot, int32_t partition, int64_t offset) {
    ds_scorer_t *s = self;
    const ds_ma_event_t *ev = slot;
    unit_entry_t *e = ((const sslot_t *)slot)->e;
    if (!e || !e->unit) {
        bool is_account;
        DS_ERROR("scorer", "unit %s was not loaded", ds_scorer_ev_unit_key(ev, &is_account));
        abort(); /* a bug: prefetch guarantees it */
    }
    if (e->ckpt_offset >= 0 && e->ckpt_partition == partition && offset <= e->ckpt_offset) {
        /* replayed after a crash: already in the state */
        ds_worker_count(w, DS_WORKER_SKIPPED);
        return;
    }
    s->cur = w;
    ds_score_sink_t sink = {sink_lead, sink_account, s};
    uint64_t unclassified = s->stats.unclassified;
    ds_err_t err = ds_score_unit_apply_ex(e->unit, s->rules, ev, &sink, &s->stats);
    if (s->stats.unclassified != unclassified)
        inc(s->m_unclassified);
    if (err == DS_ERR_DUPLICATE)
        ds_worker_count(w, DS_WORKER_DUPLICATE);
    else if (!err)
        ds_worker_count(w, DS_WORKER_APPLIED);
    else if (err == DS_ERR_AGAIN) {
        DS_ERROR("scorer", "event %s of %s needs state that was not loaded", ev->event_id, e->key);
        abort(); /* a bug: the prefetch loads what ds_score_unit_needs() names */
    } else
        DS_WARN("scorer", "event %s not applied: %s", ev->event_id, ds_err2str(err));
    e->ckpt_partition = partition;
    e->ckpt_offset = offset;
    ds_scorer_count_leads(s, e);
    mark_dirty(s, e);
}

/* ---- write-behind --------------------------------------------------------- */

/* How many units are dirty: what closing a window owes (every unit dirty
 * now: ds_scorer_persist writes them; the scorer has nothing else to
 * snapshot), and what is dirty at any time. */
static size_t sc_dirty_count(void *self) { return ds_dirtyq_count(&((ds_scorer_t *)self)->dirty); }

static void sc_persisted(void *self, size_t n, bool last) {
    ds_scorer_t *s = self;
    (void)last;
    for (size_t i = 0; i < n; i++) {
        unit_entry_t *e = ds_dirtyq_at(&s->dirty, i);
        e->dirty = false;
        ds_scorer_count_leads(s, e);
    }
    ds_dirtyq_drop(&s->dirty, n);
    publish_tracked(s);
}

static void sc_reset(void *self) {
    ds_scorer_t *s = self;
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
    ds_dirtyq_clear(&s->dirty);
    s->tracked_leads = s->tracked_units = 0;
    publish_tracked(s);
}

static void sc_rewrite_all(void *self, const ds_partitions_t *owned) {
    ds_scorer_t *s = self;
    size_t part = 0;
    unit_entry_t *e, *tmp;
    HASH_ITER(hh, s->units, e, tmp) {
        if (!e->unit || !ds_partitions_has(owned, e->ckpt_partition))
            continue; /* not loaded, or another worker's */
        bool whole = true;
        if (ds_score_unit_mark_all_dirty(e->unit, &whole))
            ds_scorer_oom();
        part += !whole;
        e->written_sig = 0;
        mark_dirty(s, e);
    }
    if (part)
        DS_ERROR("scorer",
                 "%zu accounts are held in memory only in part (the leads and webinars their "
                 "events needed since they were read from Redis): what was not held is lost "
                 "until replayed; rebuild them by replay (docs/OPERATIONS.md)",
                 part);
}

/* A batch boundary: the SIGHUP reload takes effect. */
static void sc_rules(void *self, const ds_rules_t *rules) { ((ds_scorer_t *)self)->rules = rules; }

static const ds_worker_ops_t scorer_ops = {
    .name = "scorer",
    .event_size = sizeof(sslot_t),
    .outputs = {"LeadScore", "AccountScore"},
    .decode = sc_decode,
    .rules = sc_rules,
    .prefetch = ds_scorer_prefetch,
    .prefetched = ds_scorer_prefetched,
    .apply = sc_apply,
    .close = sc_dirty_count,
    .persist = ds_scorer_persist,
    .persisted = sc_persisted,
    .dirty_count = sc_dirty_count,
    .tick = NULL,
    .reset = sc_reset,
    .assigned = NULL,
    .unit_key = sc_unit_key,
    .unit_key_doc = "account_id (lead_id for a lead without account)",
    .unit_partition = sc_unit_partition,
    .rewrite_all = sc_rewrite_all,
};
ds_scorer_t *ds_scorer_new(const ds_config_t *cfg, const ds_rules_t *rules,
                           ds_metrics_t *metrics, char *errstr, size_t errstr_size) {
    ds_scorer_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->rules = rules;
    if (!(s->scratch = ds_score_scratch_new())) {
        free(s);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    ds_buf_init(&s->enc, 0);
    ds_buf_init(&s->list, 0);
    ds_buf_init(&s->sumbuf, 0);
    ds_buf_init(&s->keybuf, 0);
    s->worker = ds_worker_new(cfg, cfg->topic_marketing, &scorer_ops, s, metrics, errstr,
                              errstr_size);
    if (!s->worker)
        goto fail;
    s->codec = ds_worker_codec(s->worker);
    s->m_unclassified = mcounter(metrics, "unclassified_events",
                                 "Events whose content has no stage (scores nothing)");
    s->m_migrated = mcounter(metrics, "state_migrated_units",
                             "Units read in an earlier version's layout (moved by their next write)");
    if (metrics) {
        s->m_lead_scores = ds_metrics_counter(metrics, "scores_emitted", "Score records produced",
                                              "worker=\"scorer\",kind=\"lead\"");
        s->m_account_scores = ds_metrics_counter(metrics, "scores_emitted",
                                                 "Score records produced",
                                                 "worker=\"scorer\",kind=\"account\"");
        s->m_tracked_leads = ds_metrics_gauge(metrics, "tracked_leads",
                                              "Leads whose state this process holds in memory",
                                              "worker=\"scorer\"");
        s->m_tracked_units = ds_metrics_gauge(
            metrics, "tracked_units",
            "Scoring units (accounts, or leads without one) held in memory", "worker=\"scorer\"");
    }
    return s;
fail:
    ds_scorer_destroy(s);
    return NULL;
}

ds_worker_t *ds_scorer_worker(ds_scorer_t *s) { return s->worker; }

void ds_scorer_destroy(ds_scorer_t *s) {
    if (!s)
        return;
    ds_worker_destroy(s->worker);
    sc_reset(s);
    ds_dirtyq_free(&s->dirty);
    free(s->loads);
    free(s->sadd);
    free(s->dict);
    free(s->dict_idx);
    ds_buf_free(&s->enc);
    ds_buf_free(&s->list);
    ds_buf_free(&s->sumbuf);
    ds_buf_free(&s->keybuf);
    free(s->sums);
    ds_score_scratch_destroy(s->scratch);
    free(s);
}
