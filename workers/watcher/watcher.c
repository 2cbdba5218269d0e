/*
 * watcher.c — the stall watcher's adapter to the worker engine: crm.events
 * records in, DealAlert records out.  The verification state machine is
 * stall.c (pure); the Redis layout (the keys, the loads, the tier reads,
 * the partition bootstrap and the writes) is watcher_redis.c.
 *
 * Deadlines: every deal that a clock check could change (a quiet deadline
 * or a reminder ahead) sits in its partition's deadline index: a min-heap
 * in memory (partclock.c, which the backtest replays with too; lazy
 * deletion: an entry is valid while it equals the deal's current
 * deadline) and a sorted set in Redis, so that a check costs in
 * proportion to the due deals and a restarted worker finds every deal that
 * fell due while it was down.  A partition is bootstrapped (watermark and
 * index loaded, their deals read) before its first batch or clock check.
 *
 * Partitions: a deal is bound to the partition of the first event that
 * loads it (HSETNX of its checkpoint "P:-1", nothing applied yet).  A deal
 * bound to a partition this worker does not own is held but never indexed
 * or applied: its events here go to the DLQ (wrong_partition).
 *
 * Clocks: `event` evaluates at the partition watermark (the largest
 * occurred_at decoded from that partition) after every event; `wall`
 * evaluates at the system time, with clock checks every check_interval_ms
 * (grace_minutes delays quiet deadlines).
 */
#include "workers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "ds_clock.h"
#include "ds_log.h"
#include "watcher_int.h"

/* ---- partitions ---------------------------------------------------------- */

static const char *deal_key(const void *owner) {
    return ((const deal_entry_t *)owner)->id;
}

part_t *ds_watcher_part(ds_watcher_t *w, int32_t p) {
    if (p < 0 || p >= MAX_PARTITIONS) {
        DS_ERROR("watcher", "partition %d is over the supported %d", (int)p, MAX_PARTITIONS);
        abort();
    }
    part_t *pt = &w->parts[p];
    if (!pt->known) {
        pt->known = true;
        ds_partclock_free(&pt->clock); /* an empty index kept since wa_assigned */
        ds_partclock_init(&pt->clock, deal_key);
    }
    return pt;
}

/* ---- helpers -------------------------------------------------------------- */

static void mark_dirty(ds_watcher_t *w, deal_entry_t *e) {
    ds_worker_dirty(w->a.worker, &e->ent);
}

/* The partition's watermark is to be written (by the next window). */
static void watermark_dirty(ds_watcher_t *w, part_t *pt) {
    if (pt->wm_dirty)
        return;
    pt->wm_dirty = true;
    w->nwm_dirty++;
    ds_worker_dirty_other(w->a.worker, 1);
}

void ds_watcher_reindex(ds_watcher_t *w, deal_entry_t *e) {
    int64_t d = ds_deal_next_deadline(e->deal, w->a.rules);
    if (!ds_partclock_schedule(&ds_watcher_part(w, e->ent.partition)->clock, e, &e->deadline, d))
        ds_worker_oom("watcher");
}

/* ---- decode --------------------------------------------------------------- */

/* The event, and its unit: the deal. */
static ds_err_t wa_decode(void *self, const void *val, size_t len, ds_arena_t *arena, void *slot,
                          char *detail, size_t detail_size) {
    ds_watcher_t *w = self;
    wslot_t *ws = slot;
    ds_err_t e = ds_codec_decode_crm(w->a.codec, val, len, arena, &ws->ev, detail, detail_size);
    if (!e) {
        ws->head.unit = ws->ev.deal_id;
        ws->head.unit_field = "deal_id";
    }
    return e;
}

/* ---- evaluation ---------------------------------------------------------- */

static void sink_alert(void *opaque, const ds_deal_alert_t *a) {
    ds_watcher_t *w = opaque;
    ds_worker_output(w->cur, 0, a->deal_id, a->alert_id, a); /* ops.outputs[0]: DealAlert */
    if (w->metrics && a->kind >= 0 && a->kind < DS_AK__COUNT && a->state >= 0 &&
        a->state < DS_AS__COUNT) {
        /* each series looked up once, when its first alert is counted */
        ds_counter_t **c = &w->m_alerts[a->kind][a->state];
        if (!*c) {
            char labels[128];
            snprintf(labels, sizeof(labels), "kind=\"%s\",state=\"%s\"",
                     ds_alert_kind_name(a->kind), ds_alert_state_name(a->state));
            *c = ds_metrics_counter(w->metrics, "alerts", "Deal alerts produced", labels);
        }
        ds_counter_add(*c, 1);
    }
}

static void ctx_init(ds_watcher_t *w, ds_watch_ctx_t *c, int64_t now) {
    c->rules = w->a.rules;
    c->now = now;
    c->grace_ms = w->event_clock ? 0 : (int64_t)(w->a.rules->stall.grace_minutes * 60000.0);
    c->stakeholder_is_mobilizer = ds_watcher_is_mobilizer;
    c->tier_epoch = w->mob_epoch;
    c->alert = sink_alert;
    c->opaque = w;
}

/* Evaluate every deal of the partition that is due at `now`. */
static void check_due(ds_watcher_t *w, int32_t partition, int64_t now) {
    part_t *pt = ds_watcher_part(w, partition);
    ds_watch_ctx_t ctx;
    ctx_init(w, &ctx, now);
    deal_entry_t *e;
    int64_t deadline;
    while ((e = ds_partclock_pop_due(&pt->clock, now - ctx.grace_ms, &deadline))) {
        if (deadline != e->deadline || !e->deal)
            continue; /* stale entry */
        ds_deal_evaluate(e->deal, &ctx);
        ds_worker_add(w->m_checked, 1);
        e->deadline = INT64_MAX; /* its entry is gone: pushed again if it has a deadline */
        ds_watcher_reindex(w, e);
        mark_dirty(w, e);
    }
}

/* The event's deal is loaded and bound to `partition` (the engine checked
 * both): the partition's watermark moves, then the deal (unless the event
 * is replayed) and, with the event clock, every deal due by then. */
static ds_err_t wa_apply(void *self, ds_worker_t *wk, void *slot, int32_t partition, bool replay) {
    ds_watcher_t *w = self;
    const wslot_t *ws = slot;
    const ds_crm_event_t *ev = &ws->ev;
    w->cur = wk;
    part_t *pt = ds_watcher_part(w, partition);
    if (ds_partclock_observe(&pt->clock, ev->occurred_at))
        watermark_dirty(w, pt);
    deal_entry_t *e = ds_watcher_slot_entry(ws);
    if (!e->deal) {
        DS_ERROR("watcher", "deal %s was not loaded", ev->deal_id);
        abort();
    }
    int64_t now = w->event_clock ? pt->clock.watermark : ds_clock_now_ms();
    ds_err_t ret = DS_ERR_OK;
    if (!replay) {
        ds_watch_ctx_t ctx;
        ctx_init(w, &ctx, now);
        ds_err_t err = ds_deal_apply(e->deal, ev, &ctx);
        if (err == DS_ERR_IGNORED)
            ds_worker_add(w->m_ignored, 1);
        if (err == DS_ERR_DUPLICATE || err == DS_ERR_IGNORED)
            ret = err; /* anything else counts as applied */
        ds_watcher_reindex(w, e);
    }
    if (w->event_clock)
        check_due(w, partition, now);
    return ret;
}

static void wa_tick(void *self, ds_worker_t *wk, int64_t now) {
    ds_watcher_t *w = self;
    if (w->event_clock)
        return;
    w->cur = wk;
    int64_t t0 = ds_clock_mono_us();
    for (int32_t p = 0; p < MAX_PARTITIONS; p++)
        if (w->parts[p].bootstrapped)
            check_due(w, p, now);
    if (w->m_check_sec)
        ds_histogram_observe(w->m_check_sec, (double)(ds_clock_mono_us() - t0) / 1e6);
}

/* ---- lifecycle ------------------------------------------------------------- */

/* A window closes: its deals are written over the next batches, each as
 * it is then (a deal written after it changed again is ahead of the
 * window's offsets: its checkpoint skips those events on a replay, and its
 * next deadline lies past them).  The watermarks are written as they were
 * at the close, with the window's last deal (ds_watcher_persist with
 * `last`): a replay from the window's offsets moves them again from
 * there, as the first run did. */
static void wa_window_close(ds_watcher_t *w, const ds_worker_change_t *c) {
    (void)c;
    for (int32_t p = 0; w->nwm_dirty && p < MAX_PARTITIONS; p++) {
        part_t *pt = &w->parts[p];
        if (!pt->wm_dirty)
            continue;
        pt->wm_closed = pt->clock.watermark;
        w->nwm_owed += !pt->wm_owed;
        pt->wm_owed = true;
        pt->wm_dirty = false;
        w->nwm_dirty--;
    }
}

static void wa_reset(ds_watcher_t *w, const ds_worker_change_t *c) {
    (void)c;
    deal_entry_t *e, *t;
    HASH_ITER(hh, w->deals, e, t) {
        HASH_DEL(w->deals, e);
        ds_deal_destroy(e->deal);
        ds_deal_destroy(e->pending);
        free(e->id);
        free(e);
    }
    for (int32_t p = 0; p < MAX_PARTITIONS; p++) {
        bool known = w->parts[p].known;
        ds_partclock_free(&w->parts[p].clock);
        ds_partclock_t clock = w->parts[p].clock; /* empty, watermark none */
        memset(&w->parts[p], 0, sizeof(w->parts[p]));
        w->parts[p].known = known; /* bootstrapped again before its next use */
        w->parts[p].clock = clock;
    }
    ds_watcher_forget_loads(w);
    w->nwm_dirty = 0;
    w->nwm_owed = 0;
    if (w->m_tracked)
        ds_gauge_set(w->m_tracked, 0);
}

static void wa_assigned(ds_watcher_t *w, const ds_worker_change_t *c) {
    const ds_partitions_t *parts = c->parts;
    /* exactly these partitions are ours now */
    for (int32_t p = 0; p < MAX_PARTITIONS; p++)
        if (w->parts[p].known && !w->parts[p].clock.n)
            w->parts[p].known = false;
    for (size_t i = 0; parts && i < parts->n; i++)
        ds_watcher_part(w, parts->ids[i]);
}

/* A batch boundary: the SIGHUP reload takes effect, and every deadline is
 * recomputed under the new rules. */
static void wa_rules(ds_watcher_t *w, const ds_worker_change_t *c) {
    (void)c;
    deal_entry_t *e, *t;
    HASH_ITER(hh, w->deals, e, t) {
        if (!e->deal)
            continue;
        e->deadline = INT64_MAX - 1;
        ds_watcher_reindex(w, e);
        mark_dirty(w, e);
    }
}

static void wa_rewrite_all(ds_watcher_t *w, const ds_worker_change_t *c) {
    const ds_partitions_t *owned = c->parts;
    deal_entry_t *e, *t;
    HASH_ITER(hh, w->deals, e, t) {
        if (!e->deal || !ds_partitions_has(owned, e->ent.partition))
            continue; /* not loaded, or another worker's */
        memset(e->written, 0, sizeof(e->written));
        e->indexed = INT64_MIN; /* its deadline index entry too */
        mark_dirty(w, e);
    }
    for (int32_t p = 0; p < MAX_PARTITIONS; p++) {
        part_t *pt = &w->parts[p];
        if (!pt->known || pt->clock.watermark == INT64_MIN || !ds_partitions_has(owned, p))
            continue;
        watermark_dirty(w, pt);
    }
}

static void wa_lifecycle(void *self, const ds_worker_change_t *c) {
    static void (*const on[])(ds_watcher_t *, const ds_worker_change_t *) = {
        [DS_WORKER_RULES] = wa_rules,        [DS_WORKER_ASSIGNED] = wa_assigned,
        [DS_WORKER_RESET] = wa_reset,        [DS_WORKER_REWRITE] = wa_rewrite_all,
        [DS_WORKER_CLOSE] = wa_window_close,
    };
    on[c->what](self, c);
}

static void wa_close(void *self) {
    ds_watcher_t *w = self;
    wa_reset(w, NULL);
    free(w->loads);
    free(w->pending_ids);
    free(w->pending_parts);
    ds_buf_free(&w->tmp);
    free(w->side_pending);
    ds_buf_free(&w->side_put);
    ds_buf_free(&w->side_del);
    free(w->sargv);
    free(w->slens);
    ds_arena_free(&w->mob_arena);
}

static bool wa_open(void *self, char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    ds_watcher_t *w = self;
    ds_worker_t *wk = w->a.worker;
    w->metrics = ds_worker_metrics(wk);
    w->event_clock = !strcmp(w->a.cfg->clock, "event");
    w->m_ignored =
        ds_worker_counter(wk, "ignored_events", "Events ignored by the rules (after close, …)");
    w->m_checked = ds_worker_counter(wk, "clock_check_deals",
                                     "Deals evaluated by clock checks (only due ones are)");
    w->m_check_sec = ds_worker_histogram(wk, "clock_check_seconds",
                                         "Duration of one wall-clock check of due deadlines");
    w->m_tracked =
        ds_worker_gauge(wk, "tracked_deals", "Deals whose state this process holds in memory");
    return true;
}

static const ds_worker_ops_t watcher_ops = {
    .name = "watcher",
    .size = sizeof(ds_watcher_t),
    .event_size = sizeof(wslot_t),
    .outputs = {"DealAlert"},
    .unit_key_doc = "deal_id",
    .decode = wa_decode,
    .load = ds_watcher_load,
    .loaded = ds_watcher_loaded,
    .apply = wa_apply,
    .persist = ds_watcher_persist,
    .tick = wa_tick,
    .lifecycle = wa_lifecycle,
    .open = wa_open,
    .close = wa_close,
};

ds_worker_t *ds_watcher_new(const ds_config_t *cfg, const ds_rules_t *rules, ds_metrics_t *metrics,
                            int thread, char *errstr, size_t errstr_size) {
    return ds_worker_new(cfg, cfg->topic_crm, &watcher_ops, rules, metrics, thread, errstr,
                         errstr_size);
}
