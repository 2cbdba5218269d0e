/*
 * scorer_redis.c — the scorer's Redis layout: the keys of a unit, which of
 * them a unit's load reads and how their replies become the unit.
 * Replies are read through ds_reply_t.
 *
 * Loads, in rounds before a batch is applied (ds_scorer_load, the replies
 * read by ds_scorer_loaded; the engine calls again once the replies are
 * in, until a round queues nothing): a unit not in memory is read first (its hash, after an HSETNX
 * of its checkpoint "P:-1" that binds a unit never applied to the
 * partition of the event that needs it); an account stored in the
 * per-lead layout then its dictionary (its record refers to it), insight
 * sums and mobilizers; then the leads and webinar indexes the events name
 * (ds_score_unit_needs); then those their records name (the sharers to
 * credit, the attendees within a day).  One load per key and round.
 * Stored state that cannot be read fails the load and is never
 * overwritten.
 *
 * Writes: scorer_write.c.
 *
 * Redis layout (public, see README; every key of an account shares the
 * hash tag {acct:A}):
 *   <p>{acct:A}              hash: account_id, engaged_stakeholders,
 *                            confronted_stakeholders, consensus,
 *                            top_insight, mobilizers, as_of, checkpoint,
 *                            state (the aggregate record)
 *   <p>{acct:A}:lead:L       hash: lead_id, account_id, confront, connect,
 *                            mobilizer, tier, top_insight, furthest_stage,
 *                            reasons, as_of, events_applied, state
 *   <p>{acct:A}:leads        set of the account's lead ids
 *   <p>{acct:A}:mobilizers   set of its MOBILIZER-tier lead ids
 *   <p>{acct:A}:dict         hash: n -> content or insight id
 *   <p>{acct:A}:sums         hash: n (an insight's dictionary index) -> the
 *                            sum of the leads' points on it and how many
 *                            are confronted on it
 *   <p>{acct:A}:att:C        hash: lead id -> its attendances of webinar C
 *   <p>{acct:A}:seen:L       hash: lead L's dedupe ids once it has had more
 *                            than 64 (fewer are in its record): 8-byte
 *                            hash -> occurred_at
 *   <p>{lead:L}              a lead without account: its lead fields,
 *                            state and checkpoint
 *   <p>{acct:A}:mem:L        hash: lead L's repeats and share pairs once it
 *                            has had more than 64 (fewer are in its
 *                            record): r<type>:<content> (r<type>
 *                            without content) -> last counted time;
 *                            s<n>:<content><colleague> (s:<colleague>
 *                            without content) -> 1
 *   <p>{lead:L}:seen         its dedupe ids, as <p>{acct:A}:seen:L
 *   <p>{lead:L}:mem          its repeats and shares, as <p>{acct:A}:mem:L
 * A unit stored by an earlier version (one `blob` field with everything)
 * is read whole and moved to this layout by its next write, which deletes
 * the blob (in the same script run).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_log.h"
#include "ds_redis.h"
#include "scorer_int.h"

/* The Redis key <prefix>{acct:A}<suffix…> or <prefix>{lead:L} in keybuf
 * (pieces appended, not printf: a key or two for every load and write). */
const char *ds_scorer_rkey(ds_scorer_t *s, const unit_entry_t *e, const char *suffix,
                           const char *tail) {
    const char *parts[] = {s->a.cfg->redis_prefix, e->is_account ? "{acct:" : "{lead:", e->key, "}",
                           suffix ? suffix : "", tail ? tail : ""};
    ds_buf_reset(&s->keybuf);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        if (ds_buf_append(&s->keybuf, parts[i], strlen(parts[i])))
            ds_worker_oom("scorer");
    if (ds_buf_append(&s->keybuf, "", 1))
        ds_worker_oom("scorer");
    return (const char *)s->keybuf.data;
}

/* ---- load ---------------------------------------------------------------- */

void ds_scorer_forget_loads(ds_scorer_t *s) {
    load_t *l, *tmp;
    HASH_ITER(hh, s->load_keys, l, tmp) {
        HASH_DEL(s->load_keys, l);
    }
    for (size_t i = 0; i < s->nloads; i++) {
        unit_entry_t *e = s->loads[i]->e;
        e->loading = false;
        ds_score_unit_destroy(e->pend);
        e->pend = NULL;
        free(s->loads[i]->id);
        free(s->loads[i]->rkey);
        free(s->loads[i]);
    }
    s->nloads = 0;
}

/* Queue one load (once per Redis key and round): argv[1] is the key.  A
 * claim is not counted against its key: the read after it has the same. */
static void queue_load(ds_scorer_t *s, unit_entry_t *e, int kind, const char *id, int argc,
                       const char **argv) {
    load_t *l = NULL;
    bool keyed = kind != LD_CLAIM;
    if (keyed)
        HASH_FIND_STR(s->load_keys, argv[1], l);
    if (l)
        return;
    s->loads = ds_worker_room("scorer", s->loads, s->nloads, &s->loads_cap, sizeof(*s->loads), 256);
    l = calloc(1, sizeof(*l));
    if (!l || !(l->rkey = strdup(argv[1])) || (id && !(l->id = strdup(id))))
        ds_worker_oom("scorer");
    l->e = e;
    l->kind = kind;
    s->loads[s->nloads++] = l;
    if (keyed)
        HASH_ADD_KEYPTR(hh, s->load_keys, l->rkey, strlen(l->rkey), l);
    ds_redis_cmd(s->cur_r, argc, argv, NULL);
}

/* Bind the unit to `partition` unless it is bound (or has a checkpoint)
 * already: HSETNX of its checkpoint, before the read of it. */
static void queue_claim(ds_scorer_t *s, unit_entry_t *e, int32_t partition) {
    char claim[DS_FMT_CKPT_MAX];
    ds_fmt_checkpoint(claim, partition, -1);
    const char *argv[] = {"HSETNX", ds_scorer_rkey(s, e, NULL, NULL), "checkpoint", claim};
    queue_load(s, e, LD_CLAIM, NULL, 4, argv);
}

static void load_unit(ds_scorer_t *s, unit_entry_t *e, int32_t partition) {
    e->loading = true;
    if (!e->stash)
        queue_claim(s, e, partition);
    if (!e->is_account) {
        const char *a[] = {"HMGET", ds_scorer_rkey(s, e, NULL, NULL), "state", "checkpoint",
                           "blob"};
        queue_load(s, e, LD_LONE, NULL, 5, a);
        return;
    }
    /* a new account has only this to read; a stored one then its
     * dictionary (its record refers to it) and its mobilizers */
    if (!e->stash) {
        const char *a[] = {"HMGET", ds_scorer_rkey(s, e, NULL, NULL), "state", "checkpoint",
                           "blob"};
        queue_load(s, e, LD_ACCOUNT, NULL, 5, a);
        return;
    }
    const char *d[] = {"HGETALL", ds_scorer_rkey(s, e, ":dict", NULL)};
    queue_load(s, e, LD_DICT, NULL, 2, d);
    const char *g[] = {"HGETALL", ds_scorer_rkey(s, e, ":sums", NULL)};
    queue_load(s, e, LD_SUMS, NULL, 2, g);
    const char *m[] = {"SMEMBERS", ds_scorer_rkey(s, e, ":mobilizers", NULL)};
    queue_load(s, e, LD_MOBILIZERS, NULL, 2, m);
}

static void on_need(void *opaque, int kind, const char *id) {
    ds_scorer_t *s = opaque;
    unit_entry_t *e = s->cur_e;
    if (kind == DS_SCORE_NEED_LEAD) {
        const char *a[] = {"HGET", ds_scorer_rkey(s, e, ":lead:", id), "state"};
        queue_load(s, e, LD_LEAD, id, 3, a);
    } else if (kind == DS_SCORE_NEED_IDS) {
        const char *a[] = {"HGETALL", e->is_account ? ds_scorer_rkey(s, e, ":seen:", id)
                                                    : ds_scorer_rkey(s, e, ":seen", NULL)};
        queue_load(s, e, LD_IDS, id, 2, a);
    } else if (kind == DS_SCORE_NEED_MEM) {
        const char *a[] = {"HGETALL", e->is_account ? ds_scorer_rkey(s, e, ":mem:", id)
                                                    : ds_scorer_rkey(s, e, ":mem", NULL)};
        queue_load(s, e, LD_MEM, id, 2, a);
    } else if (kind == DS_SCORE_NEED_ATTENDANCE) {
        const char *a[] = {"HGETALL", ds_scorer_rkey(s, e, ":att:", id)};
        queue_load(s, e, LD_ATTENDANCE, id, 2, a);
    } else if (!e->listed) {
        const char *a[] = {"SMEMBERS", ds_scorer_rkey(s, e, ":leads", NULL)};
        queue_load(s, e, LD_MEMBERS, NULL, 2, a);
    }
}

/* Rounds: 0 loads the units the batch's events belong to; each later
 * round loads what the events need that is not in memory yet (which
 * depends on what the previous round read). */
size_t ds_scorer_load(void *self, ds_redis_t *r, void **slots, const int32_t *parts, size_t n,
                      int round) {
    ds_scorer_t *s = self;
    ds_scorer_forget_loads(s); /* a failed earlier attempt may have left loads queued */
    s->cur_r = r;
    for (size_t i = 0; i < n; i++) {
        sslot_t *ss = slots[i];
        if (!ss)
            continue;
        bool is_account;
        const char *key = ds_scorer_ev_unit_key(&ss->ev, &is_account);
        unit_entry_t *e = ds_scorer_slot_entry(ss);
        if (!e) {
            HASH_FIND_STR(s->units, key, e);
            if (!e) {
                e = calloc(1, sizeof(*e));
                if (!e || !(e->key = strdup(key)))
                    ds_worker_oom("scorer");
                e->is_account = is_account;
                e->ent.partition = -1;
                e->ent.offset = -1;
                HASH_ADD_KEYPTR(hh, s->units, e->key, strlen(e->key), e);
            }
            /* kept for the engine and sc_apply(): entries live until a
             * reset, which abandons the batches in hand */
            ss->head.entity = &e->ent;
        }
        if (!e->unit) {
            if (!e->loading)
                load_unit(s, e, parts[i]);
            continue;
        }
        /* A unit bound to another partition is another worker's (or
         * another partition's here): the event goes to the DLQ unapplied,
         * so nothing more is loaded for it.  What this worker holds of
         * such a unit stops at its first load while its owner goes on
         * writing; a lead read now could name dictionary entries written
         * since, and fail to decode against that old dictionary. */
        if (e->ent.partition >= 0 && e->ent.partition != parts[i])
            continue;
        if (e->listed) { /* the account's leads, listed last round */
            for (size_t k = 0; k < e->nlisted; k++) {
                const char *a[] = {"HGET", ds_scorer_rkey(s, e, ":lead:", e->listed[k]), "state"};
                queue_load(s, e, LD_LEAD, e->listed[k], 3, a);
                free(e->listed[k]);
            }
            free(e->listed);
            e->listed = NULL;
            e->nlisted = 0;
        }
        s->cur_e = e;
        ds_score_unit_needs(e->unit, s->a.rules, &ss->ev, on_need, s);
    }
    if (round > 64 && s->nloads) {
        DS_ERROR("scorer", "the loads of a batch do not converge after %d rounds", round);
        ds_scorer_forget_loads(s);
    }
    return s->nloads;
}

static bool parse_checkpoint(unit_entry_t *e, const ds_reply_t *ck) {
    const char *text = ds_reply_str(ck, NULL);
    if (ds_reply_type(ck) != DS_REPLY_STRING)
        return true;
    int p;
    long long o;
    if (sscanf(text, "%d:%lld", &p, &o) != 2)
        return false;
    e->ent.partition = p;
    e->ent.offset = o;
    return true;
}

static ds_err_t unreadable(const unit_entry_t *e, const char *what, ds_err_t err) {
    DS_ERROR("scorer", "stored state of %s (%s) is unreadable (%s); refusing to overwrite it",
             e->key, what, ds_err2str(err));
    return DS_ERR_UNDECODABLE;
}

/* The unit is ready: it joins the worker's. */
static void unit_ready(ds_scorer_t *s, unit_entry_t *e, ds_score_unit_t *u) {
    e->unit = u;
    s->tracked_units++;
    ds_scorer_count_leads(s, e);
}

/* The stored hash of e: state (the per-lead layout: an account's is
 * completed next round, with its dictionary and mobilizers), blob (a whole
 * unit of an earlier version), or nothing (new). */
static ds_err_t load_main(ds_scorer_t *s, unit_entry_t *e, const ds_reply_t *rep) {
    if (ds_reply_count(rep) != 3)
        return DS_ERR_IO;
    const ds_reply_t *ck = ds_reply_at(rep, 1);
    size_t st_len, blob_len;
    const char *st = ds_reply_type(ds_reply_at(rep, 0)) == DS_REPLY_STRING
                         ? ds_reply_str(ds_reply_at(rep, 0), &st_len)
                         : NULL;
    const char *blob = ds_reply_type(ds_reply_at(rep, 2)) == DS_REPLY_STRING
                           ? ds_reply_str(ds_reply_at(rep, 2), &blob_len)
                           : NULL;
    if (!parse_checkpoint(e, ck))
        return unreadable(e, "checkpoint", DS_ERR_UNDECODABLE);
    ds_err_t err = DS_ERR_OK;
    ds_score_unit_t *u = NULL;
    if (st && e->is_account) {
        free(e->stash);
        if (!(e->stash = malloc(st_len ? st_len : 1)))
            return DS_ERR_NOMEM;
        memcpy(e->stash, st, st_len);
        e->nstash = st_len;
        return DS_ERR_OK;
    }
    if (st) { /* a lone lead */
        if (!(u = ds_score_unit_new_in(e->key, false, s->scratch)))
            return DS_ERR_NOMEM;
        if ((err = ds_score_unit_put_lead(u, e->key, st, st_len))) {
            ds_score_unit_destroy(u);
            return unreadable(e, "state", err);
        }
    } else if (blob) {
        u = ds_score_unit_load_legacy(blob, blob_len, s->scratch, &err);
        if (!u)
            return unreadable(e, "blob", err);
        if (ds_score_unit_is_account(u) != e->is_account) {
            ds_score_unit_destroy(u);
            return unreadable(e, "blob", DS_ERR_INVAL);
        }
        ds_counter_add(s->m_migrated, 1);
    } else if (!(u = ds_score_unit_new_in(e->key, e->is_account, s->scratch))) {
        return DS_ERR_NOMEM;
    }
    unit_ready(s, e, u);
    return DS_ERR_OK;
}

/* The pairs of an HGETALL whose fields are numbers (a dictionary's index,
 * an insight's): each given to put. */
static ds_err_t put_indexed(ds_score_unit_t *u, const ds_reply_t *rep,
                            ds_err_t (*put)(ds_score_unit_t *, uint64_t, const char *, size_t)) {
    ds_err_t err = DS_ERR_OK;
    for (size_t i = 0; i + 1 < ds_reply_count(rep) && !err; i += 2) {
        size_t klen, vlen;
        const char *k = ds_reply_str(ds_reply_at(rep, i), &klen);
        const char *v = ds_reply_str(ds_reply_at(rep, i + 1), &vlen);
        char *end = NULL;
        unsigned long long idx = k ? strtoull(k, &end, 10) : 0;
        err = !k || !v || *end || !klen ? DS_ERR_UNDECODABLE : put(u, idx, v, vlen);
    }
    return err;
}

static ds_err_t put_sum(ds_score_unit_t *u, uint64_t idx, const char *p, size_t n) {
    return ds_score_unit_put_sum(u, idx, p, n);
}

/* The pairs of a lead's hash of ids (8-byte hash -> occurred_at in
 * decimal), given to the unit. */
static ds_err_t put_ids(ds_score_unit_t *u, const char *lead_id, const ds_reply_t *rep) {
    size_t n = ds_reply_count(rep) / 2;
    ds_dedupe_entry_t *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v)
        return DS_ERR_NOMEM;
    ds_err_t err = DS_ERR_OK;
    for (size_t i = 0; i < n && !err; i++) {
        size_t klen, vlen;
        const unsigned char *k =
            (const unsigned char *)ds_reply_str(ds_reply_at(rep, 2 * i), &klen);
        const char *t = ds_reply_str(ds_reply_at(rep, 2 * i + 1), &vlen);
        char *end = NULL;
        errno = 0;
        long long ms = t && vlen && (t[0] == '-' || (t[0] >= '0' && t[0] <= '9'))
                           ? strtoll(t, &end, 10)
                           : 0;
        if (!k || klen != 8 || !end || end != t + vlen || errno)
            err = DS_ERR_UNDECODABLE;
        v[i].h = 0;
        for (size_t b = 0; b < 8 && !err; b++)
            v[i].h = v[i].h << 8 | k[b];
        v[i].t = ms;
    }
    if (!err)
        err = ds_score_unit_put_ids(u, lead_id, v, n);
    free(v);
    return err;
}

/* The pairs of a lead's hash of repeats and shares, given to the unit. */
static ds_err_t put_mem(ds_score_unit_t *u, const char *lead_id, const ds_reply_t *rep) {
    size_t n = ds_reply_count(rep) / 2;
    ds_score_field_t *f = malloc((n ? n : 1) * sizeof(*f));
    if (!f)
        return DS_ERR_NOMEM;
    ds_err_t err = DS_ERR_OK;
    for (size_t i = 0; i < n && !err; i++) {
        f[i].k = ds_reply_str(ds_reply_at(rep, 2 * i), &f[i].kn);
        f[i].v = ds_reply_str(ds_reply_at(rep, 2 * i + 1), &f[i].vn);
        if (!f[i].k || !f[i].v)
            err = DS_ERR_UNDECODABLE;
    }
    if (!err)
        err = ds_score_unit_put_mem(u, lead_id, f, n);
    free(f);
    return err;
}

ds_err_t ds_scorer_loaded(void *self, size_t index, const ds_reply_t *rep) {
    ds_scorer_t *s = self;
    load_t *l = s->loads[index];
    unit_entry_t *e = l->e;
    ds_err_t err = DS_ERR_OK;
    switch (l->kind) {
    case LD_CLAIM: /* HSETNX: 0 or 1 */
        return ds_reply_type(rep) == DS_REPLY_INTEGER ? DS_ERR_OK : DS_ERR_IO;
    case LD_ACCOUNT:
    case LD_LONE:
        e->loading = false;
        if (e->unit)
            return DS_ERR_OK;
        return load_main(s, e, rep);
    case LD_DICT:
        if (ds_reply_type(rep) != DS_REPLY_ARRAY)
            return DS_ERR_IO;
        if (e->unit || !e->stash)
            return DS_ERR_OK;
        ds_score_unit_destroy(e->pend);
        if (!(e->pend = ds_score_unit_new_in(e->key, true, s->scratch)))
            return DS_ERR_NOMEM;
        err = put_indexed(e->pend, rep, ds_score_unit_put_dict);
        if (!err)
            err = ds_score_unit_put_account(e->pend, e->stash, e->nstash);
        return err ? unreadable(e, "dictionary or record", err) : DS_ERR_OK;
    case LD_SUMS:
        if (ds_reply_type(rep) != DS_REPLY_ARRAY)
            return DS_ERR_IO;
        if (!e->pend)
            return e->unit ? DS_ERR_OK : DS_ERR_IO;
        err = put_indexed(e->pend, rep, put_sum);
        return err ? unreadable(e, "insight sums", err) : DS_ERR_OK;
    case LD_MOBILIZERS: {
        if (ds_reply_type(rep) != DS_REPLY_ARRAY)
            return DS_ERR_IO;
        ds_score_unit_t *u = e->pend;
        if (!u)
            return e->unit ? DS_ERR_OK : DS_ERR_IO;
        for (size_t i = 0; i < ds_reply_count(rep) && !err; i++) {
            size_t len;
            const char *id = ds_reply_str(ds_reply_at(rep, i), &len);
            err = id ? ds_score_unit_put_mobilizer(u, id, len) : DS_ERR_UNDECODABLE;
        }
        if (err)
            return err;
        e->pend = NULL;
        free(e->stash);
        e->stash = NULL;
        unit_ready(s, e, u);
        return DS_ERR_OK;
    }
    case LD_MEMBERS:
        if (ds_reply_type(rep) != DS_REPLY_ARRAY || !e->unit)
            return DS_ERR_IO;
        /* LD_MEMBERS: load the ones not in memory next round */
        e->listed = calloc(ds_reply_count(rep) + 1, sizeof(char *));
        if (!e->listed)
            return DS_ERR_NOMEM;
        for (size_t i = 0; i < ds_reply_count(rep); i++) {
            const char *id = ds_reply_str(ds_reply_at(rep, i), NULL);
            if (!id)
                return DS_ERR_IO;
            if (!(e->listed[e->nlisted++] = strdup(id)))
                return DS_ERR_NOMEM;
        }
        return DS_ERR_OK;
    case LD_LEAD: {
        if (ds_reply_type(rep) != DS_REPLY_STRING && ds_reply_type(rep) != DS_REPLY_NIL)
            return DS_ERR_IO;
        size_t len;
        const char *st = ds_reply_str(rep, &len); /* NULL: nil */
        err = ds_score_unit_put_lead(e->unit, l->id, st, len);
        ds_scorer_count_leads(s, e);
        return err ? unreadable(e, l->id, err) : DS_ERR_OK;
    }
    case LD_IDS:
        if (ds_reply_type(rep) != DS_REPLY_ARRAY || !e->unit)
            return DS_ERR_IO;
        err = put_ids(e->unit, l->id, rep);
        return err ? unreadable(e, l->id, err) : DS_ERR_OK;
    case LD_MEM:
        if (ds_reply_type(rep) != DS_REPLY_ARRAY || !e->unit)
            return DS_ERR_IO;
        err = put_mem(e->unit, l->id, rep);
        return err ? unreadable(e, l->id, err) : DS_ERR_OK;
    default: /* LD_ATTENDANCE */
        if (ds_reply_type(rep) != DS_REPLY_ARRAY)
            return DS_ERR_IO;
        for (size_t i = 0; i + 1 < ds_reply_count(rep) && !err; i += 2) {
            size_t vlen;
            const char *k = ds_reply_str(ds_reply_at(rep, i), NULL);
            const char *v = ds_reply_str(ds_reply_at(rep, i + 1), &vlen);
            err = k && v ? ds_score_unit_put_attendance(e->unit, l->id, k, v, vlen)
                         : DS_ERR_UNDECODABLE;
        }
        if (!err)
            err = ds_score_unit_attendance_done(e->unit, l->id);
        return err ? unreadable(e, l->id, err) : DS_ERR_OK;
    }
}
