/*
 * scorer.c — the lead scorer's edge: Kafka records in, Redis state and
 * score records out.  The scoring itself is score.c (pure).
 *
 * Hot state: every scoring unit (an account with its leads, or a lone
 * lead) touched since start-up stays in memory (uthash by key), loaded
 * from Redis the first time a batch needs it.  Each unit remembers the
 * (partition, offset) of the last message applied to it; that checkpoint
 * is written with the unit's state in one MULTI/EXEC, so a replayed
 * message is recognised and skipped: state effects exactly once.
 *
 * Redis layout (public, see README):
 *   <p>{acct:A}          hash: state, checkpoint, engaged_stakeholders,
 *                        confronted_stakeholders, consensus, top_insight,
 *                        mobilizers, as_of
 *   <p>{acct:A}:lead:L   hash: lead_id, account_id, confront, connect,
 *                        mobilizer, tier, top_insight, furthest_stage,
 *                        reasons, as_of, events_applied
 *   <p>{acct:A}:leads    set of the account's lead ids
 *   <p>{lead:L}          a lead without account: its lead fields + state,
 *                        checkpoint
 */
#include "scorer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "ds_fmt.h"
#include "ds_hash.h"
#include "ds_log.h"
#include "ds_redis.h"
#include "ds_serde.h"
#include "dirtyq.h"
#include "score.h"

typedef struct unit_entry { /* 112 bytes: one per account, keep it small */
    char *key; /* account id or lone lead id */
    ds_score_unit_t *unit; /* NULL while not loaded */
    int32_t ckpt_partition;
    bool is_account, dirty, loading;
    int64_t ckpt_offset; /* -1: none */
    size_t leads_in_set; /* leads 0..n-1 are known to be in ds:{acct:A}:leads */
    size_t leads_counted; /* leads counted in tracked_leads */
    /* what this process last wrote of an account's score fields
     * (written_sig), 0 when it has written nothing yet; a lead's notes are
     * kept with the lead (foreach_dirty) */
    uint64_t written_sig;
    UT_hash_handle hh;
} unit_entry_t;

/* A decoded event with its unit's entry, found once by the prefetch */
typedef struct sslot {
    ds_ma_event_t ev; /* first: the decoder writes it */
    unit_entry_t *e;
} sslot_t;

struct ds_scorer {
    const ds_config_t *cfg;
    const ds_rules_t *rules;
    const ds_rules_t *next_rules; /* set by another thread, taken between batches */
    ds_registry_t *registry;
    ds_codec_t *codec;
    ds_output_schema_t outs[2]; /* what it writes, and with which ids */
    ds_worker_t *worker;
    unit_entry_t *units;
    ds_dirtyq_t dirty; /* of unit_entry_t */
    unit_entry_t **loads;
    size_t nloads, loads_cap;
    ds_buf_t enc, tmp, keybuf;
    ds_worker_t *cur; /* during apply */
    ds_score_stats_t stats;
    ds_counter_t *m_applied, *m_duplicates, *m_skipped, *m_lead_scores, *m_account_scores,
        *m_unclassified;
    size_t tracked_leads, tracked_units;
    ds_gauge_t *m_tracked_leads, *m_tracked_units;
};

static void count_leads(ds_scorer_t *s, unit_entry_t *e) {
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

static bool push(void ***arr, size_t *n, size_t *cap, void *p) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        void **na = realloc(*arr, nc * sizeof(void *));
        if (!na)
            return false;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return true;
}

/* The Redis key of a unit: <prefix>{acct:A} or <prefix>{lead:L}. */
static const char *unit_rkey(ds_scorer_t *s, const unit_entry_t *e) {
    ds_buf_reset(&s->keybuf);
    if (ds_buf_appendf(&s->keybuf, "%s{%s:%s}", s->cfg->redis_prefix,
                       e->is_account ? "acct" : "lead", e->key) ||
        ds_buf_append(&s->keybuf, "", 1))
        return NULL;
    return (const char *)s->keybuf.data;
}

/* ---- decode -------------------------------------------------------------- */

static ds_err_t sc_decode(void *self, const void *val, size_t len, ds_arena_t *arena, void *slot,
                          char *detail, size_t detail_size) {
    ds_scorer_t *s = self;
    ((sslot_t *)slot)->e = NULL;
    return ds_decode_ma(s->codec, val, len, arena, slot, detail, detail_size);
}

static const char *ev_unit_key(const ds_ma_event_t *ev, bool *is_account) {
    *is_account = ev->account_id && ev->account_id[0];
    return *is_account ? ev->account_id : ev->lead_id;
}

/* ---- load ---------------------------------------------------------------- */

static size_t sc_prefetch(void *self, ds_redis_t *r, void **slots, const int32_t *parts, size_t n,
                          int round) {
    ds_scorer_t *s = self;
    (void)parts;
    /* a failed earlier attempt may have left loads queued: forget them */
    for (size_t i = 0; i < s->nloads; i++)
        s->loads[i]->loading = false;
    s->nloads = 0;
    if (round > 0)
        return 0;
    const ds_rules_t *nr = __atomic_exchange_n(&s->next_rules, NULL, __ATOMIC_ACQ_REL);
    if (nr)
        s->rules = nr; /* a batch boundary: the SIGHUP reload takes effect */
    for (size_t i = 0; i < n; i++) {
        sslot_t *ss = slots[i];
        if (!ss)
            continue;
        bool is_account;
        const char *key = ev_unit_key(&ss->ev, &is_account);
        unit_entry_t *e;
        HASH_FIND_STR(s->units, key, e);
        /* kept for sc_apply(): entries live until a reset, which abandons
         * the batches in hand */
        ss->e = e;
        if (e && (e->unit || e->loading))
            continue;
        if (!e) {
            e = calloc(1, sizeof(*e));
            if (!e || !(e->key = strdup(key))) {
                free(e);
                continue; /* apply() will report it */
            }
            e->is_account = is_account;
            e->ckpt_offset = -1;
            HASH_ADD_KEYPTR(hh, s->units, e->key, strlen(e->key), e);
            ss->e = e;
        }
        if (!push((void ***)&s->loads, &s->nloads, &s->loads_cap, e))
            continue;
        e->loading = true;
        const char *argv[] = {"HMGET", unit_rkey(s, e), "blob", "checkpoint"};
        ds_redis_cmd(r, 4, argv, NULL);
    }
    return s->nloads;
}

static ds_err_t sc_prefetched(void *self, size_t index, const redisReply *rep) {
    ds_scorer_t *s = self;
    unit_entry_t *e = s->loads[index];
    e->loading = false;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
        return DS_ERR_IO;
    const redisReply *st = rep->element[0], *ck = rep->element[1];
    if (st->type == REDIS_REPLY_STRING) {
        ds_err_t err = DS_ERR_OK;
        e->unit = ds_score_unit_load(st->str, st->len, &err);
        if (!e->unit) {
            DS_ERROR("scorer", "stored state of %s is unreadable (%s); refusing to overwrite it",
                     e->key, ds_err2str(err));
            return DS_ERR_UNDECODABLE;
        }
        /* the set was written before the state that holds these leads */
        e->leads_in_set = ds_score_unit_lead_count(e->unit);
        count_leads(s, e);
    } else {
        e->unit = ds_score_unit_new(e->key, e->is_account);
        if (!e->unit)
            return DS_ERR_NOMEM;
    }
    s->tracked_units++;
    if (ck->type == REDIS_REPLY_STRING) {
        int p;
        long long o;
        if (sscanf(ck->str, "%d:%lld", &p, &o) == 2) {
            e->ckpt_partition = p;
            e->ckpt_offset = o;
        }
    }
    return DS_ERR_OK;
}

/* ---- apply --------------------------------------------------------------- */

static void sink_lead(void *opaque, const ds_lead_score_t *ls) {
    ds_scorer_t *s = opaque;
    ds_buf_reset(&s->enc);
    if (ds_encode_lead_score(s->codec, ls, &s->enc)) {
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
    if (ds_encode_account_score(s->codec, as, &s->enc)) {
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
    if (!ds_dirtyq_push(&s->dirty, e)) {
        DS_ERROR("scorer", "out of memory");
        abort();
    }
    e->dirty = true;
}

static void sc_apply(void *self, ds_worker_t *w, void *slot, int32_t partition, int64_t offset) {
    ds_scorer_t *s = self;
    const ds_ma_event_t *ev = slot;
    unit_entry_t *e = ((const sslot_t *)slot)->e;
    if (!e || !e->unit) {
        bool is_account;
        DS_ERROR("scorer", "unit %s was not loaded", ev_unit_key(ev, &is_account));
        abort(); /* a bug: prefetch guarantees it */
    }
    if (e->ckpt_offset >= 0 && e->ckpt_partition == partition && offset <= e->ckpt_offset) {
        inc(s->m_skipped); /* replayed after a crash: already in the state */
        return;
    }
    s->cur = w;
    ds_score_sink_t sink = {sink_lead, sink_account, s};
    uint64_t unclassified = s->stats.unclassified;
    ds_err_t err = ds_score_unit_apply_ex(e->unit, s->rules, ev, &sink, &s->stats);
    if (s->stats.unclassified != unclassified)
        inc(s->m_unclassified);
    if (err == DS_ERR_DUPLICATE)
        inc(s->m_duplicates);
    else if (!err)
        inc(s->m_applied);
    else
        DS_WARN("scorer", "event %s not applied: %s", ev->event_id, ds_err2str(err));
    e->ckpt_partition = partition;
    e->ckpt_offset = offset;
    mark_dirty(s, e);
}

/* ---- persist ------------------------------------------------------------- */

static const char *nz(const char *s) { return s ? s : ""; }

/* the strings joined by sep, cut to fit n bytes (NUL included) */
static void fmt_list(char *out, size_t n, const char *const *v, size_t count, char sep) {
    size_t o = 0;
    for (size_t i = 0; i < count && o + 1 < n; i++) {
        if (i)
            out[o++] = sep;
        size_t l = strlen(v[i]);
        if (l > n - 1 - o)
            l = n - 1 - o;
        memcpy(out + o, v[i], l);
        o += l;
    }
    out[o] = '\0';
}

/* A 64-bit FNV-1a of length-prefixed strings: which values were last
 * written, without keeping them.  Never 0 (0 means "nothing written"). */
static uint64_t sig_of(const char *const *v, int n) {
    unsigned epoch = ds_redis_epoch(); /* a reconnection: write everything again */
    uint64_t h = ds_fnv64_add(DS_FNV64_INIT, &epoch, sizeof(epoch));
    for (int i = 0; i < n; i++)
        h = ds_fnv64_str(h, v[i], strlen(v[i]));
    return h ? h : 1;
}

/* HSET rkey with the lead's public fields, then `nextra` more arguments
 * (field/value pairs, lengths in extra_lens).  A field is left out while
 * it still holds what this process last wrote over the same connection
 * epoch, by group: tier/top_insight/furthest_stage (and the ids, which
 * never change) while sig[0] says so, confront/connect/mobilizer/reasons
 * while sig[1] does (sig is updated); as_of and events_applied always go.
 * Every write stays an absolute value, so replaying a batch writes the
 * same hash. */
static void put_lead_fields(ds_redis_t *r, const char *rkey, const ds_lead_score_t *v,
                            uint64_t sig[DS_LEAD_NOTES], const char *const *extra,
                            const size_t *extra_lens, int nextra) {
    char confront[32], connect[32], mob[32], asof[32], ev[32], reasons[1400];
    ds_fmt_g6(confront, sizeof(confront), v->confront);
    ds_fmt_g6(connect, sizeof(connect), v->connect);
    ds_fmt_g6(mob, sizeof(mob), v->mobilizer);
    ds_fmt_i64(asof, v->as_of);
    ds_fmt_i64(ev, v->events_applied);
    fmt_list(reasons, sizeof(reasons), (const char *const *)v->reasons, v->reasons_count, '\n');
    const char *cls[] = {ds_tier_name(v->tier), nz(v->top_insight),
                         v->furthest_stage >= 0 ? ds_content_stage_name(v->furthest_stage) : ""};
    const char *pts[] = {confront, connect, mob, reasons};
    uint64_t now = sig_of(cls, 3), was = sig[0];
    uint64_t pnow = sig_of(pts, 4), pwas = sig[1];
    sig[0] = now;
    sig[1] = pnow;
    const char *argv[32];
    size_t lens[32];
    int c = 0;
#define F(name, val)                                                                               \
    do {                                                                                           \
        argv[c] = name;                                                                            \
        lens[c++] = strlen(name);                                                                  \
        argv[c] = nz(val);                                                                         \
        lens[c] = strlen(argv[c]);                                                                 \
        c++;                                                                                       \
    } while (0)
    argv[c] = "HSET";
    lens[c++] = 4;
    argv[c] = rkey;
    lens[c++] = strlen(rkey);
    if (now != was) {
        F("lead_id", v->lead_id);
        F("account_id", v->account_id);
    }
    if (pnow != pwas) {
        F("confront", confront);
        F("connect", connect);
        F("mobilizer", mob);
    }
    if (now != was) {
        F("tier", cls[0]);
        F("top_insight", cls[1]);
        F("furthest_stage", cls[2]);
    }
    if (pnow != pwas)
        F("reasons", reasons);
    F("as_of", asof);
    F("events_applied", ev);
#undef F
    for (int i = 0; i < nextra && c < 32; i++) {
        argv[c] = extra[i];
        lens[c++] = extra_lens[i];
    }
    ds_redis_cmd(r, c, argv, lens);
}

typedef struct dirty_ctx {
    ds_scorer_t *s;
    ds_redis_t *r;
    unit_entry_t *e;
    const char *ckpt;
    bool wrote_state; /* a lone lead's state went out with its fields */
} dirty_ctx_t;

static void put_dirty_lead(void *opaque, uint64_t *written, const ds_lead_score_t *v) {
    dirty_ctx_t *dc = opaque;
    ds_scorer_t *s = dc->s;
    char rkey[700];
    if (!dc->e->is_account) {
        /* a lone lead: public fields, state and checkpoint in one HSET */
        ds_fmt_join(rkey, sizeof(rkey), s->cfg->redis_prefix, "{lead:", dc->e->key, "}", NULL);
        const char *extra[] = {"blob", (const char *)s->tmp.data, "checkpoint", dc->ckpt};
        size_t lens[] = {4, s->tmp.len, 10, strlen(dc->ckpt)};
        put_lead_fields(dc->r, rkey, v, written, extra, lens, 4);
        dc->wrote_state = true;
        return;
    }
    ds_fmt_join(rkey, sizeof(rkey), s->cfg->redis_prefix, "{acct:", dc->e->key, "}:lead:",
                v->lead_id, NULL);
    put_lead_fields(dc->r, rkey, v, written, NULL, NULL, 0);
}

/* Every dirty unit, without MULTI/EXEC: each unit's state and checkpoint
 * are one HSET on one key (atomic by itself), written after the unit's
 * derived keys (lead hashes, the leads set).  A crash between them leaves
 * derived keys ahead of the state; the replay from the checkpoint rewrites
 * them with the same values.  Outputs were acknowledged before this runs. */
static size_t sc_close(void *self) { return ds_dirtyq_count(&((ds_scorer_t *)self)->dirty); }

static unit_entry_t *dirty_at(const ds_scorer_t *s, size_t i) { return ds_dirtyq_at(&s->dirty, i); }

static void sc_persist(void *self, ds_redis_t *r, size_t n, bool last) {
    ds_scorer_t *s = self;
    (void)last; /* a window owes nothing but its units */
    for (size_t i = 0; i < n; i++) {
        unit_entry_t *e = dirty_at(s, i);
        /* the units were last touched many events ago: start loading the
         * next ones (entry, struct, arrays) while this one is written */
        if (i + 4 < n)
            __builtin_prefetch(dirty_at(s, i + 4));
        if (i + 3 < n)
            ds_score_unit_prefetch(dirty_at(s, i + 3)->unit, 0);
        if (i + 2 < n)
            ds_score_unit_prefetch(dirty_at(s, i + 2)->unit, 1);
        if (i + 1 < n)
            ds_score_unit_prefetch(dirty_at(s, i + 1)->unit, 2);
        ds_buf_reset(&s->tmp);
        if (ds_score_unit_save(e->unit, &s->tmp)) {
            DS_ERROR("scorer", "cannot serialise unit %s", e->key);
            abort();
        }
        char ckpt[DS_FMT_CKPT_MAX];
        ds_fmt_checkpoint(ckpt, e->ckpt_partition, e->ckpt_offset);
        char rkey[600];
        ds_fmt_join(rkey, sizeof(rkey), s->cfg->redis_prefix, e->is_account ? "{acct:" : "{lead:",
                    e->key, "}", NULL);
        dirty_ctx_t dc = {s, r, e, ckpt, false};
        ds_score_unit_foreach_dirty(e->unit, put_dirty_lead, &dc);
        if (!e->is_account) {
            if (!dc.wrote_state) { /* no public change: the state alone */
                const char *argv[] = {"HSET", rkey, "blob", (const char *)s->tmp.data,
                                      "checkpoint", ckpt, "lead_id", e->key};
                size_t lens[] = {4, strlen(rkey), 4, s->tmp.len, 10, strlen(ckpt), 7,
                                 strlen(e->key)};
                ds_redis_cmd(r, 8, argv, lens);
            }
            continue;
        }
        /* leads new since the last write join the account's set (once) */
        size_t nl = ds_score_unit_lead_count(e->unit);
        if (nl > e->leads_in_set) {
            char skey[600];
            ds_fmt_join(skey, sizeof(skey), s->cfg->redis_prefix, "{acct:", e->key, "}:leads",
                        NULL);
            const char *argv[66];
            argv[0] = "SADD";
            argv[1] = skey;
            size_t k = e->leads_in_set;
            while (k < nl) {
                int c = 2;
                while (k < nl && c < 66)
                    argv[c++] = ds_score_unit_lead_id(e->unit, k++);
                ds_redis_cmd(r, c, argv, NULL);
            }
        }
        ds_account_score_t a;
        memset(&a, 0, sizeof(a));
        bool has = ds_score_unit_account_view(e->unit, &a);
        char engaged[DS_FMT_INT_MAX], confronted[DS_FMT_INT_MAX], consensus[32], asof[32],
            mobs[2048];
        fmt_list(mobs, sizeof(mobs), (const char *const *)a.mobilizers,
                 has ? a.mobilizers_count : 0, ',');
        ds_fmt_i64(engaged, a.engaged_stakeholders);
        ds_fmt_i64(confronted, a.confronted_stakeholders);
        ds_fmt_g6(consensus, sizeof(consensus), a.consensus);
        ds_fmt_i64(asof, a.as_of);
        /* the score fields (and the id) only when they differ from what
         * was last written (see put_lead_fields) */
        const char *score[] = {engaged, confronted, consensus, nz(a.top_insight), mobs};
        uint64_t now = sig_of(score, 5), was = e->written_sig;
        e->written_sig = now;
        const char *argv[20] = {"HSET", rkey, "blob", (const char *)s->tmp.data,
                                "checkpoint", ckpt, "as_of", asof};
        int c = 8;
        if (now != was) {
            argv[c++] = "account_id";
            argv[c++] = e->key;
            static const char *const names[] = {"engaged_stakeholders", "confronted_stakeholders",
                                                "consensus", "top_insight", "mobilizers"};
            for (int k = 0; k < 5; k++) {
                argv[c++] = names[k];
                argv[c++] = score[k];
            }
        }
        size_t lens[20];
        for (int k = 0; k < c; k++)
            lens[k] = strlen(argv[k]);
        lens[3] = s->tmp.len;
        ds_redis_cmd(r, c, argv, lens);
    }
}

static void sc_persisted(void *self, size_t n, bool last) {
    ds_scorer_t *s = self;
    (void)last;
    for (size_t i = 0; i < n; i++) {
        unit_entry_t *e = dirty_at(s, i);
        e->dirty = false;
        e->leads_in_set = ds_score_unit_lead_count(e->unit);
        count_leads(s, e);
        ds_score_unit_clear_dirty(e->unit);
    }
    ds_dirtyq_drop(&s->dirty, n);
    publish_tracked(s);
}

static size_t sc_dirty_count(void *self) { return ds_dirtyq_count(&((ds_scorer_t *)self)->dirty); }

static void sc_reset(void *self) {
    ds_scorer_t *s = self;
    unit_entry_t *e, *tmp;
    HASH_ITER(hh, s->units, e, tmp) {
        HASH_DEL(s->units, e);
        ds_score_unit_destroy(e->unit);
        free(e->key);
        free(e);
    }
    ds_dirtyq_clear(&s->dirty);
    s->nloads = 0;
    s->tracked_leads = s->tracked_units = 0;
    publish_tracked(s);
}

static ds_err_t sc_start(void *self, char *errstr, size_t errstr_size) {
    ds_scorer_t *s = self;
    return ds_output_schemas_start(s->cfg, s->registry, s->codec, s->outs, 2, "scorer", errstr,
                                   errstr_size);
}

static const ds_worker_ops_t scorer_ops = {
    .name = "scorer",
    .event_size = sizeof(sslot_t),
    .decode = sc_decode,
    .prefetch = sc_prefetch,
    .prefetched = sc_prefetched,
    .apply = sc_apply,
    .close = sc_close,
    .persist = sc_persist,
    .persisted = sc_persisted,
    .dirty_count = sc_dirty_count,
    .tick = NULL,
    .reset = sc_reset,
    .assigned = NULL,
    .start = sc_start,
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
    ds_buf_init(&s->enc, 0);
    ds_buf_init(&s->tmp, 0);
    ds_buf_init(&s->keybuf, 0);
    s->registry = ds_registry_open(cfg, errstr, errstr_size);
    if (!s->registry)
        goto fail;
    ds_codec_ids_t ids = ds_codec_default_ids;
    ids.lead_score = cfg->schema_id_lead_score;
    ids.account_score = cfg->schema_id_account_score;
    ids.deal_alert = cfg->schema_id_deal_alert;
    ds_output_schema_init(&s->outs[0], cfg, "LeadScore");
    ds_output_schema_init(&s->outs[1], cfg, "AccountScore");
    if (ds_registry_is_remote(cfg)) /* the registry's ids, at start (sc/wt_start) */
        ids = (ds_codec_ids_t){-1, -1, -1, -1, -1};
    s->codec = ds_codec_new(s->registry, &ids, errstr, errstr_size);
    if (!s->codec)
        goto fail;
    s->worker = ds_worker_new(cfg, cfg->topic_marketing, &scorer_ops, s, metrics, errstr,
                              errstr_size);
    if (!s->worker)
        goto fail;
    const char *outputs[] = {cfg->topic_lead_scores, cfg->topic_account_scores};
    ds_worker_set_outputs(s->worker, outputs, 2);
    s->m_applied = mcounter(metrics, "applied_events", "Input events applied to the state");
    s->m_duplicates = mcounter(metrics, "duplicate_events", "Duplicate event ids applied once");
    s->m_unclassified = mcounter(metrics, "unclassified_events",
                                 "Events whose content has no stage (scores nothing)");
    s->m_skipped = mcounter(metrics, "replayed_events_skipped",
                            "Redelivered events already covered by the stored state");
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

int ds_scorer_run(ds_scorer_t *s) {
    return ds_worker_run(s->worker);
}
void ds_scorer_set_rules(ds_scorer_t *s, const ds_rules_t *rules) {
    __atomic_store_n(&s->next_rules, rules, __ATOMIC_RELEASE);
}
ds_worker_t *ds_scorer_worker(ds_scorer_t *s) { return s->worker; }

void ds_scorer_destroy(ds_scorer_t *s) {
    if (!s)
        return;
    ds_worker_destroy(s->worker);
    sc_reset(s);
    ds_dirtyq_free(&s->dirty);
    free(s->loads);
    ds_codec_destroy(s->codec);
    ds_registry_destroy(s->registry);
    ds_buf_free(&s->enc);
    ds_buf_free(&s->tmp);
    ds_buf_free(&s->keybuf);
    free(s);
}
