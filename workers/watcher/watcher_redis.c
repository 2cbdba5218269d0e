/*
 * watcher_redis.c — the watcher's Redis layout: the keys of a deal and of a
 * partition, which of them a batch's loads read, how their replies become
 * deals, clocks and tiers, and the commands a window's writes are.
 * Replies are read through ds_reply_t.
 *
 * Loads, in rounds before a batch is applied (ds_watcher_load, the replies
 * read by ds_watcher_loaded; the engine calls again once the replies are
 * in, until a round queues nothing): round 0 bootstraps every partition known and not bootstrapped
 * yet (its watermark and the deal ids of its deadline index) and reads
 * the batch's deals not in memory (an HSETNX of the checkpoint "P:-1"
 * binds a deal to the partition of the event that loads it, then an HMGET
 * reads its state and the partition it is bound to); the next round reads
 * the deals the indexes named; the last one reads the scorer's tiers of
 * the stakeholders the batch's evaluations may ask for (queue_tiers), or
 * for a deal of TIER_SET_FROM stakeholders or more its account's
 * mobilizers set, into a cache cleared at every batch.
 *
 * Writes (ds_watcher_persist, the deals the engine's write-behind window
 * asks for): each deal in one HSET (blob,
 * checkpoint, and each group of public fields that differs from what this
 * process last wrote), a ZADD or ZREM of its deadline index entry when its
 * deadline moved, and with the window's last deal the watermarks as they
 * were when the window closed.
 *
 * Redis layout (public, see README):
 *   <p>{deal:D}                      hash: public deal fields, checkpoint,
 *                                    blob (the deal's state)
 *   <p>{wpart:TOPIC:N}               hash: watermark
 *   <p>{wpart:TOPIC:N}:deadlines     zset: deal id → next deadline (ms)
 * The scorer's keys are read, never written: a stakeholder's tier is the
 * field `tier` of <p>{acct:A}:lead:L, or of <p>{lead:L} without account;
 * <p>{acct:A}:mobilizers holds the account's MOBILIZER-tier leads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_clock.h"
#include "ds_fmt.h"
#include "ds_hash.h"
#include "ds_log.h"
#include "watcher_int.h"

/* ---- load ----------------------------------------------------------------- */

static void add_load(ds_watcher_t *w, load_kind_t kind, deal_entry_t *e, int32_t p) {
    w->loads =
        ds_worker_room("watcher", w->loads, w->nloads, &w->loads_cap, sizeof(*w->loads), 256);
    w->loads[w->nloads++] = (load_t){kind, e, p, NULL};
}

static deal_entry_t *entry_for(ds_watcher_t *w, const char *id, int32_t partition) {
    deal_entry_t *e;
    HASH_FIND_STR(w->deals, id, e);
    if (e)
        return e;
    e = calloc(1, sizeof(*e));
    if (!e || !(e->id = strdup(id)))
        ds_worker_oom("watcher");
    e->ent.partition = partition;
    e->ent.offset = -1;
    e->deadline = INT64_MAX;
    e->indexed = INT64_MAX;
    HASH_ADD_KEYPTR(hh, w->deals, e->id, strlen(e->id), e);
    return e;
}

static void cmd_load_deal(ds_watcher_t *w, ds_redis_t *r, deal_entry_t *e) {
    char key[600];
    ds_fmt_join(key, sizeof(key), w->a.cfg->redis_prefix, "{deal:", e->id, "}", NULL);
    /* bind the deal to this partition unless it is bound already; the
     * HMGET reads which one it is */
    char claim[DS_FMT_CKPT_MAX];
    ds_fmt_checkpoint(claim, e->ent.partition, -1);
    const char *hsetnx[] = {"HSETNX", key, "checkpoint", claim};
    ds_redis_cmd(r, 4, hsetnx, NULL);
    add_load(w, LOAD_CLAIM, e, e->ent.partition);
    const char *argv[] = {"HMGET", key, "blob", "checkpoint"};
    ds_redis_cmd(r, 4, argv, NULL);
    e->loading = true;
    add_load(w, LOAD_DEAL, e, e->ent.partition);
}

/* The stakeholders and ids of the deals whose records said they are kept
 * apart (ds_deal_kept_apart), read in the round after their records. */
static void cmd_load_side(ds_watcher_t *w, ds_redis_t *r) {
    for (size_t i = 0; i < w->nside_pending; i++) {
        deal_entry_t *e = w->side_pending[i];
        if (!e->pending || e->side_left)
            continue; /* complete, or queued already */
        bool stake, ids;
        ds_deal_kept_apart(e->pending, &stake, &ids);
        e->side_left = (uint8_t)(stake + ids);
        char key[620];
        if (stake) {
            ds_fmt_join(key, sizeof(key), w->a.cfg->redis_prefix, "{deal:", e->id,
                        "}:stakeholders", NULL);
            const char *a[] = {"SMEMBERS", key};
            ds_redis_cmd(r, 2, a, NULL);
            add_load(w, LOAD_STAKE, e, e->ent.partition);
        }
        if (ids) {
            ds_fmt_join(key, sizeof(key), w->a.cfg->redis_prefix, "{deal:", e->id, "}:seen",
                        NULL);
            const char *a[] = {"HGETALL", key};
            ds_redis_cmd(r, 2, a, NULL);
            add_load(w, LOAD_SEEN, e, e->ent.partition);
        }
    }
}

/* Entry e's deal is complete: in use, and in its partition's deadline
 * index when the partition is ours. */
static void deal_ready(ds_watcher_t *w, deal_entry_t *e, bool ours) {
    e->indexed = ds_deal_next_deadline(e->deal, w->a.rules); /* as stored */
    if (ours)
        ds_watcher_reindex(w, e);
}

/* A load tried again from its first round: the deals waiting for their
 * stakeholders or ids are read again whole. */
static void forget_pending(ds_watcher_t *w) {
    for (size_t i = 0; i < w->nside_pending; i++) {
        deal_entry_t *e = w->side_pending[i];
        ds_deal_destroy(e->pending);
        e->pending = NULL;
        e->side_left = 0;
    }
    w->nside_pending = 0;
}

static void part_key(ds_watcher_t *w, int32_t p, char *out, size_t n, const char *suffix) {
    char part[DS_FMT_INT_MAX];
    ds_fmt_i64(part, p);
    ds_fmt_join(out, n, w->a.cfg->redis_prefix, "{wpart:", w->a.cfg->topic_crm, ":", part, "}",
                suffix, NULL);
}

static void mob_cache_clear(ds_watcher_t *w) {
    HASH_CLEAR(hh, w->mob_cache);
    ds_arena_reset(&w->mob_arena);
    w->mob_epoch++; /* what deals kept of the old cache is stale now */
}

/* A tier cache entry for key, from the batch's arena (no malloc per
 * entry); NULL when out of memory. */
static mob_entry_t *mob_add(ds_watcher_t *w, const char *key, bool is_mobilizer) {
    size_t len = strlen(key);
    mob_entry_t *m = ds_arena_alloc(&w->mob_arena, sizeof(*m));
    if (!m)
        return NULL;
    memset(m, 0, sizeof(*m));
    if (!(m->key = ds_arena_strndup(&w->mob_arena, key, len)))
        return NULL;
    m->is_mobilizer = is_mobilizer;
    HASH_ADD_KEYPTR(hh, w->mob_cache, m->key, len, m);
    return m;
}

/* The tier cache's key of a stakeholder: account \x1f contact. */
static void mob_key(const char *account_id, const char *contact_id, char *out, size_t n) {
    ds_fmt_join(out, n, account_id ? account_id : "", "\x1f", contact_id, NULL);
}

static void tier_rkey(const ds_watcher_t *w, const char *account_id, const char *contact_id,
                      char *out, size_t n) {
    if (account_id && account_id[0])
        ds_fmt_join(out, n, w->a.cfg->redis_prefix, "{acct:", account_id, "}:lead:", contact_id,
                    NULL);
    else
        ds_fmt_join(out, n, w->a.cfg->redis_prefix, "{lead:", contact_id, "}", NULL);
}

/* Read the scorer's tier of a stakeholder with the batch's loads, so that
 * evaluating a deal costs no round trip (ds_watcher_is_mobilizer() finds
 * it cached). */
static void queue_tier(ds_watcher_t *w, ds_redis_t *r, const char *account_id,
                       const char *contact_id) {
    if (!contact_id || !contact_id[0])
        return;
    char key[700];
    mob_key(account_id, contact_id, key, sizeof(key));
    mob_entry_t *m;
    HASH_FIND_STR(w->mob_cache, key, m);
    if (m)
        return;
    if (!(m = mob_add(w, key, false)))
        return; /* ds_watcher_is_mobilizer() reads it itself */
    char rkey[700];
    tier_rkey(w, account_id, contact_id, rkey, sizeof(rkey));
    const char *argv[] = {"HGET", rkey, "tier"};
    ds_redis_cmd(r, 3, argv, NULL);
    add_load(w, LOAD_TIER, NULL, 0);
    w->loads[w->nloads - 1].m = m;
}

/* The tier cache's entry of account a's mobilizers set. */
static void mobset_key(const char *account_id, char *out, size_t n) {
    ds_fmt_join(out, n, "\x1e", account_id, NULL);
}

/* Read account a's mobilizers set with the batch's loads, once a batch:
 * its members go into the tier cache, and a stakeholder of a not in it is
 * not a MOBILIZER (ds_watcher_is_mobilizer). */
static void queue_mobset(ds_watcher_t *w, ds_redis_t *r, const char *a) {
    char key[700];
    mobset_key(a, key, sizeof(key));
    mob_entry_t *m;
    HASH_FIND_STR(w->mob_cache, key, m);
    if (m || !(m = mob_add(w, key, false)))
        return; /* queued already, or read one by one when out of memory */
    char rkey[700];
    ds_fmt_join(rkey, sizeof(rkey), w->a.cfg->redis_prefix, "{acct:", a, "}:mobilizers", NULL);
    const char *argv[] = {"SMEMBERS", rkey};
    ds_redis_cmd(r, 2, argv, NULL);
    add_load(w, LOAD_MOBSET, NULL, 0);
    w->loads[w->nloads - 1].m = m;
}

static void queue_deal_tiers(ds_watcher_t *w, ds_redis_t *r, const deal_entry_t *e,
                             const char *acct) {
    const char *a = ds_deal_account_id(e->deal);
    if (!a || !a[0])
        a = acct;
    size_t n = ds_deal_stakeholder_count(e->deal);
    if (n >= TIER_SET_FROM && a && a[0]) {
        queue_mobset(w, r, a);
        return;
    }
    for (size_t k = 0; k < n; k++)
        queue_tier(w, r, a, ds_deal_stakeholder(e->deal, k));
}

/* The deals of partition heap pt due by `thr` (the subtree of i), that a
 * clock check will evaluate with their tiers. */
static void queue_due_tiers(ds_watcher_t *w, ds_redis_t *r, const part_t *pt, size_t i,
                            int64_t thr) {
    const ds_partclock_item_t *it = pt->clock.heap;
    if (i >= pt->clock.n || it[i].deadline > thr)
        return; /* a min-heap: nothing below is due either */
    deal_entry_t *e = it[i].owner;
    if (it[i].deadline == e->deadline && e->deal && e->tier_round != w->tier_round &&
        ds_deal_may_ask_tiers(e->deal, NULL, 0, w->a.rules)) {
        e->tier_round = w->tier_round;
        queue_deal_tiers(w, r, e, NULL);
    }
    queue_due_tiers(w, r, pt, 2 * i + 1, thr);
    queue_due_tiers(w, r, pt, 2 * i + 2, thr);
}

/* The tiers the batch's evaluations will ask for, read with its loads:
 * - of the deals that their events may take to a stage where NO_MOBILIZER
 *   is evaluated (ds_deal_may_ask_tiers), every stakeholder and every
 *   contact of their events;
 * - of the deals that the batch's clock checks will find due (event clock:
 *   by the partition's watermark after the batch; wall clock: by the tick
 *   about to run, give or take a second), every stakeholder.
 * A tick later than foreseen is not covered: ds_watcher_is_mobilizer()
 * then reads the tier itself. */
static void queue_tiers(ds_watcher_t *w, ds_redis_t *r, void **slots, const int32_t *parts,
                        size_t n) {
    w->tier_round++;
    if (w->event_clock) {
        for (size_t i = 0; i < n; i++) {
            const ds_crm_event_t *ev = slots[i] ? &((const wslot_t *)slots[i])->ev : NULL;
            part_t *pt = ds_watcher_part(w, parts[i]);
            if (ev && pt->due_round != w->tier_round) {
                pt->due_round = w->tier_round;
                pt->due_by = pt->clock.watermark;
            }
            if (ev && ev->occurred_at > pt->due_by)
                pt->due_by = ev->occurred_at;
        }
        for (size_t i = 0; i < n; i++) {
            part_t *pt = ds_watcher_part(w, parts[i]);
            if (slots[i] && pt->due_round == w->tier_round) {
                pt->due_round = 0; /* walked once */
                queue_due_tiers(w, r, pt, 0, pt->due_by);
            }
        }
    } else {
        int64_t thr =
            ds_clock_now_ms() + 1000 - (int64_t)(w->a.rules->stall.grace_minutes * 60000.0);
        for (int32_t p = 0; p < MAX_PARTITIONS; p++)
            if (w->parts[p].bootstrapped)
                queue_due_tiers(w, r, &w->parts[p], 0, thr);
    }
    /* each deal's events of the batch, chained in order */
    for (size_t i = 0; i < n; i++) {
        wslot_t *ws = slots[i];
        if (!ws || !ds_watcher_slot_entry(ws)->deal)
            continue;
        deal_entry_t *e = ds_watcher_slot_entry(ws);
        ws->next = UINT32_MAX;
        if (e->batch_round != w->tier_round) {
            e->batch_round = w->tier_round;
            e->first = (uint32_t)i;
        } else {
            ((wslot_t *)slots[e->last])->next = (uint32_t)i;
        }
        e->last = (uint32_t)i;
    }
    for (size_t i = 0; i < n; i++) {
        const wslot_t *ws = slots[i];
        deal_entry_t *e = ws ? ds_watcher_slot_entry(ws) : NULL;
        if (!e || !e->deal || e->first != i || e->tier_round == w->tier_round)
            continue;
        const ds_crm_event_t *evs[64];
        size_t k = 0;
        for (uint32_t j = (uint32_t)i; j != UINT32_MAX && k < 64;
             j = ((const wslot_t *)slots[j])->next)
            evs[k++] = &((const wslot_t *)slots[j])->ev;
        /* more than 64 events of one deal in a batch: read its tiers */
        if (k == 64 || ds_deal_may_ask_tiers(e->deal, evs, k, w->a.rules))
            e->tier_round = w->tier_round;
    }
    for (size_t i = 0; i < n; i++) {
        if (!slots[i])
            continue;
        const ds_crm_event_t *ev = &((const wslot_t *)slots[i])->ev;
        deal_entry_t *e = ds_watcher_slot_entry(slots[i]);
        if (e->tier_round != w->tier_round)
            continue;
        const char *acct = ds_deal_account_id(e->deal);
        if (!acct || !acct[0])
            acct = ev->account_id;
        if (e->first == i) /* the stakeholders once per deal, the contacts per event */
            queue_deal_tiers(w, r, e, acct);
        queue_tier(w, r, acct, ev->contact_id);
    }
}

size_t ds_watcher_load(void *self, ds_redis_t *r, void **slots, const int32_t *parts, size_t n,
                       int round) {
    ds_watcher_t *w = self;
    /* a failed earlier attempt may have left loads queued: forget them */
    for (size_t i = 0; i < w->nloads; i++)
        if (w->loads[i].kind == LOAD_DEAL)
            w->loads[i].e->loading = false;
    w->nloads = 0;
    if (round == 0)
        forget_pending(w); /* a completed load left none */
    if (round == 0 && w->boot_inflight) {
        /* an earlier bootstrap read its index but not all its deals: redo it */
        for (int32_t p = 0; p < MAX_PARTITIONS; p++)
            w->parts[p].bootstrapped = false;
        w->boot_inflight = false;
    }
    if (round == 0) {
        mob_cache_clear(w);
        w->tiers_queued = false;
        /* partitions of this batch, and every assigned one for clock checks */
        for (size_t i = 0; i < n; i++)
            ds_watcher_part(w, parts[i]);
        for (int32_t p = 0; p < MAX_PARTITIONS; p++) {
            part_t *pt = &w->parts[p];
            if (!pt->known || pt->bootstrapped)
                continue;
            char key[600];
            part_key(w, p, key, sizeof(key), "");
            const char *a1[] = {"HGET", key, "watermark"};
            ds_redis_cmd(r, 3, a1, NULL);
            add_load(w, LOAD_PART, NULL, p);
            part_key(w, p, key, sizeof(key), ":deadlines");
            const char *a2[] = {"ZRANGE", key, "0", "-1"};
            ds_redis_cmd(r, 4, a2, NULL);
            add_load(w, LOAD_PART, NULL, p);
        }
        for (size_t i = 0; i < n; i++) {
            wslot_t *ws = slots[i];
            if (!ws)
                continue;
            /* found once here for the engine, queue_tiers() and
             * wa_apply(): the entries live until a reset, which abandons
             * the batches in hand */
            deal_entry_t *e = entry_for(w, ws->ev.deal_id, parts[i]);
            ws->head.entity = &e->ent;
            if (!e->deal && !e->loading && !e->pending)
                cmd_load_deal(w, r, e);
        }
        if (w->nloads)
            return w->nloads;
    }
    /* a round with nothing to read falls through to the next step: the
     * deals of an index, then (every deal in memory) the tiers; a batch
     * whose deals were all in memory used to skip the tiers and read each
     * one alone when a deal was evaluated */
    if (round > 0 && w->nside_pending) {
        cmd_load_side(w, r);
        if (w->nloads)
            return w->nloads;
        w->nside_pending = 0; /* every one complete */
    }
    if (round > 0 && w->npending) {
        w->boot_inflight = true;
        for (size_t i = 0; i < w->npending; i++) {
            deal_entry_t *e = entry_for(w, w->pending_ids[i], w->pending_parts[i]);
            free(w->pending_ids[i]);
            if (!e->deal && !e->loading && !e->pending)
                cmd_load_deal(w, r, e);
        }
        w->npending = 0;
        if (w->nloads)
            return w->nloads;
        w->boot_inflight = false;
    }
    if (!w->tiers_queued) {
        /* every deal of the batch is loaded: their stakeholders' tiers */
        w->tiers_queued = true;
        queue_tiers(w, r, slots, parts, n);
    }
    return w->nloads;
}

/* A deal's stakeholders (SMEMBERS) or dedupe ids (HGETALL: 8-byte hash,
 * time in decimal), read after its record. */
static ds_err_t load_side(ds_watcher_t *w, deal_entry_t *e, load_kind_t kind,
                          const ds_reply_t *rep) {
    if (ds_reply_type(rep) != DS_REPLY_ARRAY)
        return DS_ERR_IO;
    if (!e->pending)
        return DS_ERR_IO; /* cannot be: its record is read first */
    size_t n = ds_reply_count(rep);
    for (size_t i = 0; i < n; i += kind == LOAD_SEEN ? 2 : 1) {
        const ds_reply_t *x = ds_reply_at(rep, i);
        if (ds_reply_type(x) != DS_REPLY_STRING)
            return DS_ERR_IO;
        size_t len;
        const char *s = ds_reply_str(x, &len);
        ds_err_t err;
        if (kind == LOAD_STAKE) {
            err = ds_deal_load_stakeholder(e->pending, s);
        } else {
            const ds_reply_t *y = i + 1 < n ? ds_reply_at(rep, i + 1) : NULL;
            if (len != 8 || !y || ds_reply_type(y) != DS_REPLY_STRING) {
                err = DS_ERR_UNDECODABLE;
            } else {
                uint64_t h = 0;
                for (int k = 0; k < 8; k++)
                    h = h << 8 | (unsigned char)s[k];
                char *end;
                const char *ts = ds_reply_str(y, NULL);
                long long t = strtoll(ts, &end, 10);
                err = *end || end == ts ? DS_ERR_UNDECODABLE : ds_deal_load_seen(e->pending, h, t);
            }
        }
        if (err) {
            DS_ERROR("watcher", "stored %s of deal %s are unreadable (%s)",
                     kind == LOAD_STAKE ? "stakeholders" : "dedupe ids", e->id, ds_err2str(err));
            return err;
        }
    }
    if (--e->side_left == 0) { /* the last of its replies */
        e->deal = e->pending;
        e->pending = NULL;
        deal_ready(w, e, e->pending_ours);
    }
    return DS_ERR_OK;
}

static void add_pending(ds_watcher_t *w, const char *id, int32_t p) {
    size_t cap = w->pending_cap; /* two arrays of one capacity */
    w->pending_ids =
        ds_worker_room("watcher", w->pending_ids, w->npending, &cap, sizeof(*w->pending_ids), 256);
    w->pending_parts = ds_worker_room("watcher", w->pending_parts, w->npending, &w->pending_cap,
                                      sizeof(*w->pending_parts), 256);
    w->pending_ids[w->npending] = strdup(id);
    w->pending_parts[w->npending++] = p;
}

ds_err_t ds_watcher_loaded(void *self, size_t index, const ds_reply_t *rep) {
    if (index + 1 == ((ds_watcher_t *)self)->nloads)
        ((ds_watcher_t *)self)->boot_inflight = false; /* every reply of the round arrived */
    ds_watcher_t *w = self;
    load_t *l = &w->loads[index];
    if (l->kind == LOAD_CLAIM) /* HSETNX: 0 or 1 */
        return ds_reply_type(rep) == DS_REPLY_INTEGER ? DS_ERR_OK : DS_ERR_IO;
    ds_reply_type_t type = ds_reply_type(rep);
    if (l->kind == LOAD_TIER) {
        if (type == DS_REPLY_ERROR)
            return DS_ERR_IO;
        l->m->is_mobilizer = ds_reply_is(rep, "MOBILIZER");
        return DS_ERR_OK;
    }
    if (l->kind == LOAD_MOBSET) {
        if (type != DS_REPLY_ARRAY)
            return DS_ERR_IO;
        const char *a = l->m->key + 1; /* after the \x1e */
        for (size_t i = 0; i < ds_reply_count(rep); i++) {
            const ds_reply_t *x = ds_reply_at(rep, i);
            if (ds_reply_type(x) != DS_REPLY_STRING)
                continue;
            char key[700];
            mob_key(a, ds_reply_str(x, NULL), key, sizeof(key));
            mob_entry_t *m;
            HASH_FIND_STR(w->mob_cache, key, m);
            if (m)
                m->is_mobilizer = true; /* the same answer as its tier's */
            else if (!mob_add(w, key, true))
                return DS_ERR_NOMEM;
        }
        l->m->is_mobilizer = true; /* read: the others are not mobilizers */
        return DS_ERR_OK;
    }
    if (l->kind == LOAD_PART) {
        part_t *pt = ds_watcher_part(w, l->partition);
        if (type == DS_REPLY_STRING) {
            pt->clock.watermark = strtoll(ds_reply_str(rep, NULL), NULL, 10);
        } else if (type == DS_REPLY_ARRAY) {
            for (size_t i = 0; i < ds_reply_count(rep); i++)
                if (ds_reply_type(ds_reply_at(rep, i)) == DS_REPLY_STRING)
                    add_pending(w, ds_reply_str(ds_reply_at(rep, i), NULL), l->partition);
            pt->bootstrapped = true; /* the ZRANGE is the second command */
        } else if (type == DS_REPLY_ERROR) {
            return DS_ERR_IO;
        }
        return DS_ERR_OK;
    }
    deal_entry_t *e = l->e;
    if (l->kind == LOAD_STAKE || l->kind == LOAD_SEEN)
        return load_side(w, e, l->kind, rep);
    e->loading = false;
    if (ds_reply_count(rep) != 2)
        return DS_ERR_IO;
    size_t st_len;
    const char *st = ds_reply_type(ds_reply_at(rep, 0)) == DS_REPLY_STRING
                         ? ds_reply_str(ds_reply_at(rep, 0), &st_len)
                         : NULL;
    const char *ck = ds_reply_type(ds_reply_at(rep, 1)) == DS_REPLY_STRING
                         ? ds_reply_str(ds_reply_at(rep, 1), NULL)
                         : NULL;
    e->stored = st != NULL;
    ds_deal_t *deal;
    if (st) {
        ds_err_t err = DS_ERR_OK;
        deal = ds_deal_load(st, st_len, &err);
        if (!deal) {
            DS_ERROR("watcher", "stored state of deal %s is unreadable (%s)", e->id,
                     ds_err2str(err));
            return DS_ERR_UNDECODABLE;
        }
    } else {
        deal = ds_deal_new(e->id);
        if (!deal)
            return DS_ERR_NOMEM;
    }
    bool ours = true;
    if (ck) {
        int p;
        long long o;
        if (sscanf(ck, "%d:%lld", &p, &o) == 2 && p >= 0 && p < MAX_PARTITIONS) {
            /* bound to p: its events from elsewhere go to the DLQ; a deal
             * of a partition not ours is not indexed here (its owner
             * checks its deadlines) */
            ours = p == e->ent.partition || w->parts[p].known;
            e->ent.partition = p;
            e->ent.offset = o;
        }
    }
    ds_deal_track(deal);
    bool stake, ids;
    ds_deal_kept_apart(deal, &stake, &ids);
    if (stake || ids) { /* complete when they are read, next round */
        w->side_pending = ds_worker_room("watcher", w->side_pending, w->nside_pending,
                                         &w->side_pending_cap, sizeof(*w->side_pending), 64);
        w->side_pending[w->nside_pending++] = e;
        e->pending = deal;
        e->pending_ours = ours;
        return DS_ERR_OK;
    }
    e->deal = deal;
    deal_ready(w, e, ours);
    return DS_ERR_OK;
}

/* ---- the tier of a stakeholder, read when a deal is evaluated ------------- */

static void on_tier_reply(void *opaque, size_t index, const ds_reply_t *rep) {
    (void)index;
    bool *out = opaque;
    *out = ds_reply_is(rep, "MOBILIZER");
}

bool ds_watcher_is_mobilizer(void *opaque, const char *account_id, const char *contact_id) {
    ds_watcher_t *w = opaque;
    char key[700];
    mob_key(account_id, contact_id, key, sizeof(key));
    mob_entry_t *m;
    HASH_FIND_STR(w->mob_cache, key, m);
    if (m)
        return m->is_mobilizer;
    if (account_id && account_id[0]) { /* the account's set read: not in it */
        char skey[700];
        mobset_key(account_id, skey, sizeof(skey));
        HASH_FIND_STR(w->mob_cache, skey, m);
        if (m && m->is_mobilizer)
            return false;
    }
    /* the scorer's stored tier, read when the deal is evaluated */
    /* not read with the batch's loads (a clock check of a due deal) */
    ds_redis_t *r = ds_worker_redis(w->a.worker);
    char rkey[700];
    tier_rkey(w, account_id, contact_id, rkey, sizeof(rkey));
    bool result = false;
    if (ds_redis_connect(r) == DS_ERR_OK) {
        const char *argv[] = {"HGET", rkey, "tier"};
        ds_redis_cmd(r, 3, argv, NULL);
        if (ds_redis_run(r, on_tier_reply, &result) != DS_ERR_OK)
            DS_WARN("watcher", "cannot read the tier of %s: %s", contact_id, ds_redis_errstr(r));
    }
    (void)mob_add(w, key, result); /* not cached when out of memory */
    return result;
}

void ds_watcher_forget_loads(ds_watcher_t *w) {
    mob_cache_clear(w);
    w->nloads = 0;
    w->nside_pending = 0; /* their entries are gone (wa_reset) */
    for (size_t i = 0; i < w->npending; i++)
        free(w->pending_ids[i]);
    w->npending = 0;
}

/* ---- persist -------------------------------------------------------------- */

/* The deal hash's public fields in ds_deal_public_fields' order, in groups
 * that tend to change together.  A group is written when any of its values
 * differs from what this process last wrote (a 64-bit FNV-1a of them and of
 * the Redis connection epoch, per deal; 0 after a load, so the first write
 * is complete, and so is the first after a reconnection).  A field not in
 * this table is written every time. */
#define NGROUPS 4
static const struct {
    const char *name;
    int group;
} deal_fields[] = {
    {"deal_id", 0},
    {"account_id", 0},
    {"owner_id", 0},
    {"state", 1},
    {"reported_stage", 1},
    {"verified_stage", 1},
    {"opened_at", 0},
    {"last_buyer_signal_at", 2},
    {"last_seller_activity_at", 3},
    {"unanswered_seller_actions", 3},
    {"mobilizer_known", 1},
    {"signals", 2},
    {"open_alerts", 3},
    {"missing_verifiers", 1},
};
#define NFIELDS 32 /* room for more fields than the table has */

static int field_group(int i, const char *name) {
    if (i < (int)(sizeof(deal_fields) / sizeof(deal_fields[0])) &&
        !strcmp(deal_fields[i].name, name))
        return deal_fields[i].group;
    return -1;
}

/* ---- the side keys: stakeholders and dedupe ids, as they change ---------- */

#define SIDE_PUT 32   /* bytes of one id to store in side_put */
#define SIDE_CHUNK 256 /* members or fields per command */

static void side_put(void *opaque, uint64_t h, int64_t t) {
    ds_watcher_t *w = opaque;
    unsigned char b[SIDE_PUT] = {0};
    for (int k = 0; k < 8; k++)
        b[k] = (unsigned char)(h >> (56 - 8 * k));
    ds_fmt_i64((char *)b + 8, t);
    if (ds_buf_append(&w->side_put, b, sizeof(b)))
        ds_worker_oom("watcher");
}

static void side_del(void *opaque, uint64_t h) {
    ds_watcher_t *w = opaque;
    unsigned char b[8];
    for (int k = 0; k < 8; k++)
        b[k] = (unsigned char)(h >> (56 - 8 * k));
    if (ds_buf_append(&w->side_del, b, sizeof(b)))
        ds_worker_oom("watcher");
}

/* Room for n arguments in sargv/slens. */
static void sargv_room(ds_watcher_t *w, size_t n) {
    if (n <= w->sargv_cap)
        return;
    const char **a = realloc(w->sargv, n * sizeof(*a));
    if (a)
        w->sargv = a;
    size_t *l = realloc(w->slens, n * sizeof(*l));
    if (l)
        w->slens = l;
    if (!a || !l)
        ds_worker_oom("watcher");
    w->sargv_cap = n;
}

/* `cmd key` then the items of `items` (n of them, `per` arguments each,
 * from arg(i, j)), SIDE_CHUNK items a command. */
static void side_cmds(ds_watcher_t *w, ds_redis_t *r, const char *cmd, const char *key, size_t n,
                      int per, const char *(*arg)(ds_watcher_t *, const deal_entry_t *, size_t, int,
                                                   size_t *),
                      const deal_entry_t *e) {
    sargv_room(w, 2 + SIDE_CHUNK * (size_t)per);
    for (size_t i = 0; i < n; i += SIDE_CHUNK) {
        size_t c = 0;
        w->sargv[c] = cmd, w->slens[c++] = strlen(cmd);
        w->sargv[c] = key, w->slens[c++] = strlen(key);
        for (size_t k = i; k < n && k < i + SIDE_CHUNK; k++)
            for (int j = 0; j < per; j++) {
                w->sargv[c] = arg(w, e, k, j, &w->slens[c]);
                c++;
            }
        ds_redis_cmd(r, (int)c, w->sargv, w->slens);
    }
}

static const char *stake_arg(ds_watcher_t *w, const deal_entry_t *e, size_t i, int j,
                             size_t *len) {
    (void)j;
    const char *s = ds_deal_stakeholder(e->deal, w->side_first + i);
    *len = strlen(s);
    return s;
}

static const char *put_arg(ds_watcher_t *w, const deal_entry_t *e, size_t i, int j, size_t *len) {
    (void)e;
    const char *b = (const char *)w->side_put.data + i * SIDE_PUT;
    *len = j ? strlen(b + 8) : 8;
    return j ? b + 8 : b;
}

static const char *del_arg(ds_watcher_t *w, const deal_entry_t *e, size_t i, int j, size_t *len) {
    (void)e, (void)j;
    *len = 8;
    return (const char *)w->side_del.data + i * 8;
}

/* The writes of deal e's side keys since its last write, into r; false
 * when there are none.  A whole write deletes the keys first. */
static bool side_writes(ds_watcher_t *w, ds_redis_t *r, deal_entry_t *e, const char *key) {
    ds_buf_reset(&w->side_put);
    ds_buf_reset(&w->side_del);
    size_t first;
    unsigned epoch = ds_redis_epoch(); /* a reconnection: write them whole again */
    bool whole = ds_deal_changes(e->deal, e->side_epoch != epoch, &first, side_put, side_del, w);
    e->side_epoch = epoch;
    size_t nstake = ds_deal_stakeholder_count(e->deal) - first;
    size_t nput = w->side_put.len / SIDE_PUT, ndel = w->side_del.len / 8;
    bool clear = whole && e->stored; /* nothing to clear of a deal never stored */
    e->stored = true;
    if (!clear && !nstake && !nput && !ndel) {
        ds_deal_written(e->deal);
        return false;
    }
    const char *multi[] = {"MULTI"};
    ds_redis_cmd(r, 1, multi, NULL);
    char skey[620], ikey[620];
    ds_fmt_join(skey, sizeof(skey), key, ":stakeholders", NULL);
    ds_fmt_join(ikey, sizeof(ikey), key, ":seen", NULL);
    if (clear) {
        const char *d[] = {"DEL", skey, ikey};
        ds_redis_cmd(r, 3, d, NULL);
        /* an earlier version's list, now the set */
        const char *h[] = {"HDEL", key, "stakeholders"};
        ds_redis_cmd(r, 3, h, NULL);
    }
    w->side_first = first;
    side_cmds(w, r, "SADD", skey, nstake, 1, stake_arg, e);
    side_cmds(w, r, "HSET", ikey, nput, 2, put_arg, e);
    side_cmds(w, r, "HDEL", ikey, ndel, 1, del_arg, e);
    ds_deal_written(e->deal);
    return true;
}

void ds_watcher_persist(void *self, ds_redis_t *r, ds_worker_entity_t *const *ents, size_t n,
                        bool last) {
    ds_watcher_t *w = self;
    for (size_t i = 0; i < n; i++) {
        deal_entry_t *e = (deal_entry_t *)ents[i];
        char key[600], ckpt[DS_FMT_CKPT_MAX];
        ds_fmt_join(key, sizeof(key), w->a.cfg->redis_prefix, "{deal:", e->id, "}", NULL);
        ds_fmt_checkpoint(ckpt, e->ent.partition, e->ent.offset);
        ds_buf_reset(&w->tmp);
        if (ds_deal_save(e->deal, &w->tmp)) {
            DS_ERROR("watcher", "cannot serialise deal %s", e->id);
            abort();
        }
        size_t state_len = w->tmp.len;
        if (ds_deal_public_fields(e->deal, w->a.rules, &w->tmp)) {
            DS_ERROR("watcher", "cannot format deal %s", e->id);
            abort();
        }
        /* argv: HSET key blob B checkpoint C (field value)*, a group of
         * fields only when it differs from what was last written */
        const char *argv[80];
        size_t lens[80];
        int c = 0;
        argv[c] = "HSET", lens[c++] = 4;
        argv[c] = key, lens[c++] = strlen(key);
        argv[c] = "blob", lens[c++] = 4;
        argv[c] = (const char *)w->tmp.data, lens[c++] = state_len;
        argv[c] = "checkpoint", lens[c++] = 10;
        argv[c] = ckpt, lens[c++] = strlen(ckpt);
        const char *f[2 * NFIELDS];
        size_t fl[2 * NFIELDS];
        int grp[NFIELDS];
        int nf = 0;
        const char *p = (const char *)w->tmp.data + state_len;
        const char *end = (const char *)w->tmp.data + w->tmp.len;
        while (p < end && nf < 2 * NFIELDS) {
            fl[nf] = strlen(p);
            f[nf] = p;
            p += fl[nf++] + 1;
        }
        uint64_t sig[NGROUPS];
        unsigned epoch = ds_redis_epoch(); /* a reconnection: write everything again */
        for (int g = 0; g < NGROUPS; g++)
            sig[g] = ds_fnv64_add(DS_FNV64_INIT, &epoch, sizeof(epoch));
        for (int k = 0; k + 1 < nf; k += 2) {
            int g = grp[k / 2] = field_group(k / 2, f[k]);
            if (g >= 0)
                sig[g] = ds_fnv64_str(sig[g], f[k + 1], fl[k + 1]);
        }
        for (int g = 0; g < NGROUPS; g++)
            sig[g] += !sig[g]; /* never 0 */
        for (int k = 0; k + 1 < nf && c < 78; k += 2) {
            int g = grp[k / 2];
            if (g >= 0 && sig[g] == e->written[g])
                continue;
            argv[c] = f[k], lens[c++] = fl[k];
            argv[c] = f[k + 1], lens[c++] = fl[k + 1];
        }
        memcpy(e->written, sig, sizeof(sig));
        /* the record and what changed of its stakeholders and dedupe ids,
         * in one MULTI/EXEC on the deal's slot when those changed */
        bool tx = side_writes(w, r, e, key);
        ds_redis_cmd(r, c, argv, lens);
        if (tx) {
            const char *exec[] = {"EXEC"};
            ds_redis_cmd(r, 1, exec, NULL);
        }
        if (e->deadline != e->indexed) {
            char zkey[600];
            part_key(w, e->ent.partition, zkey, sizeof(zkey), ":deadlines");
            if (e->deadline == INT64_MAX) {
                const char *z[] = {"ZREM", zkey, e->id};
                ds_redis_cmd(r, 3, z, NULL);
            } else {
                char score[DS_FMT_INT_MAX];
                ds_fmt_i64(score, e->deadline);
                const char *z[] = {"ZADD", zkey, score, e->id};
                ds_redis_cmd(r, 4, z, NULL);
            }
            e->indexed = e->deadline;
        }
    }
    for (int32_t p = 0; last && w->nwm_owed && p < MAX_PARTITIONS; p++) {
        part_t *pt = &w->parts[p];
        if (!pt->wm_owed)
            continue;
        pt->wm_owed = false;
        w->nwm_owed--;
        char key[600], wm[DS_FMT_INT_MAX];
        part_key(w, p, key, sizeof(key), "");
        ds_fmt_i64(wm, pt->wm_closed);
        const char *argv[] = {"HSET", key, "watermark", wm};
        ds_redis_cmd(r, 4, argv, NULL);
    }
    if (w->m_tracked)
        ds_gauge_set(w->m_tracked, (double)HASH_COUNT(w->deals));
}
