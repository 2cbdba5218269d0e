/*
 * scorer_write.c — what a unit's changes become in Redis: a program for
 * write.lua (the script's header gives its format), built by the
 * score_writer callbacks w_*, and run by EVALSHA (redis.writes: script) or
 * here, into the commands the script would run, in a MULTI/EXEC per unit
 * (redis.writes: transaction).
 *
 * ds_scorer_persist writes the units the engine's write-behind window asks
 * for, each atomically: an account (its keys share a hash tag, so one
 * slot) with its changed leads, the attendance fields, dictionary
 * entries, insight sums and mobilizer changes they made, new members of
 * its lead set, and its hash with its checkpoint; a lead without account
 * with its hash (fields, state and checkpoint).  On one Redis server an
 * EVALSHA carries up to WRITE_UNITS units; on a cluster one (one slot).
 * O(what changed) plus the account's insights.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_hash.h"
#include "ds_log.h"
#include "ds_redis.h"
#include "scorer_int.h"

/* ---- the program --------------------------------------------------------- */

/* Units are written by EVALSHA of write.lua (loaded on every connection of
 * the write client): KEYS[u] the units' hashes, ARGV[1] a program of
 * operations built here (the script's header gives its format), ARGV[1+u]
 * their account ids.  Redis receives each value once, without the field
 * names and framing of the commands the script runs, and runs them
 * atomically. */

static const char *nz(const char *s) {
    return s ? s : "";
}

static void pg_put(ds_scorer_t *s, const void *p, size_t n) {
    if (ds_buf_append(&s->prog, p, n))
        ds_worker_oom("scorer");
}

/* An unsigned integer in `width` bytes, big-endian (struct's B, H, I4). */
static void pg_int(ds_scorer_t *s, uint64_t v, int width) {
    uint8_t b[4];
    for (int i = 0; i < width; i++)
        b[i] = (uint8_t)(v >> (8 * (width - 1 - i)));
    pg_put(s, b, (size_t)width);
}

/* A value after its length in `width` bytes (struct's B, H or I4 before
 * c0).  Widths of 1 and 2 hold only what is bounded by its source: what
 * this file formats, and ids of events (DS_MAX_ID_BYTES). */
static void pg_str(ds_scorer_t *s, int width, const void *v, size_t n) {
    if (n >> (8 * width)) {
        DS_ERROR("scorer", "a value of %zu bytes does not fit the write script's %d-byte length", n,
                 width);
        abort(); /* a value cut short would be written as if whole */
    }
    pg_int(s, n, width);
    pg_put(s, v, n);
}
_Static_assert(DS_MAX_ID_BYTES < 65536, "an id's length fits the write script's H");
_Static_assert(DS_FMT_CKPT_MAX < 256, "a checkpoint's length fits the write script's B");

static void pg_text(ds_scorer_t *s, int width, const char *v) {
    v = nz(v);
    pg_str(s, width, v, strlen(v));
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

/* strs[0..n) joined by sep, NUL-terminated, in s->list (the text of a
 * hash field). */
static const char *join(ds_scorer_t *s, const char *const *strs, size_t n, char sep) {
    ds_buf_reset(&s->list);
    for (size_t i = 0; i < n; i++)
        if ((i && ds_buf_append(&s->list, &sep, 1)) ||
            ds_buf_append(&s->list, strs[i], strlen(strs[i])))
            ds_worker_oom("scorer");
    if (ds_buf_append(&s->list, "", 1))
        ds_worker_oom("scorer");
    return (const char *)s->list.data;
}

/* The lead operation's mask (write.lua): which fields it writes. */
enum {
    LM_IDS = 1,          /* lead_id, account_id */
    LM_POINTS = 2,       /* confront, connect, mobilizer */
    LM_CLASS = 4,        /* tier, top_insight, furthest_stage */
    LM_REASONS = 8,      /* reasons */
    LM_PROGRESS = 16,    /* as_of, events_applied */
    LM_STATE = 32,       /* state */
    LM_CHECKPOINT = 64,  /* checkpoint (a lead without account) */
    LM_NEW_MEMBER = 128, /* SADD to the account's lead set */
    LM_LONE = 256,       /* the lead's hash is the unit's key */
};

/* A lead operation's values in the script's order: field, mask bit, and
 * the width of its length (0: 2, or 4 in a W operation).  The C runner
 * below (redis.writes: transaction) reads programs with it too. */
static const struct {
    const char *name;
    unsigned bit;
    int width;
} lead_fields[] = {
    {"confront", LM_POINTS, 1},      {"connect", LM_POINTS, 1},
    {"mobilizer", LM_POINTS, 1},     {"tier", LM_CLASS, 1},
    {"top_insight", LM_CLASS, 0},    {"furthest_stage", LM_CLASS, 1},
    {"reasons", LM_REASONS, 0},      {"as_of", LM_PROGRESS, 1},
    {"events_applied", LM_PROGRESS, 1}, {"state", LM_STATE, 0},
    {"checkpoint", LM_CHECKPOINT, 1},
};
enum { LEAD_FIELDS = sizeof(lead_fields) / sizeof(lead_fields[0]) };

/* The masks most writes have: an operation of their own, with only the
 * values they write. */
static const struct {
    unsigned mask;
    char op;
} lead_shapes[] = {
    {LM_IDS | LM_POINTS | LM_CLASS | LM_REASONS | LM_PROGRESS | LM_STATE | LM_NEW_MEMBER, 'F'},
    {LM_IDS | LM_POINTS | LM_CLASS | LM_REASONS | LM_PROGRESS | LM_STATE, 'G'},
    {LM_POINTS | LM_REASONS | LM_PROGRESS | LM_STATE, 'P'},
    {LM_PROGRESS | LM_STATE, 'Q'},
    {LM_STATE, 'Z'},
};

/* The mask of a lead operation with one (0: L or W, which carry it). */
static unsigned shape_mask(char op) {
    for (size_t i = 0; i < sizeof(lead_shapes) / sizeof(lead_shapes[0]); i++)
        if (lead_shapes[i].op == op)
            return lead_shapes[i].mask;
    return 0;
}

/* The scores are written to 0.1 (as LeadScore records are compared) and
 * the reasons without their points, so most events rewrite neither. */
static double tenth(double v) {
    return round(v * 10.0) / 10.0;
}

/* One lead's hash: its public fields, each group only when it differs
 * from what this process last wrote over the same connection epoch
 * (tier/top_insight/furthest_stage and the ids, which never change, while
 * notes[0] says so; confront/connect/mobilizer/reasons while notes[1]
 * does; as_of and events_applied always), then its record.  Every write
 * stays an absolute value, so replaying a batch writes the same hash.  A
 * lead that is not a member (a colleague credited by a share, no event of
 * its own yet) has its record only. */
static void w_lead(void *opaque, const ds_lead_score_t *v, uint64_t *notes, const void *rec,
                   size_t n, bool member, bool new_member) {
    ds_scorer_t *s = opaque;
    unit_entry_t *e = s->cur_e;
    char confront[32] = "", connect[32] = "", mob[32] = "", asof[32] = "", ev[32] = "",
         ckpt[DS_FMT_CKPT_MAX] = "";
    const char *reasons = "", *cls[3] = {"", "", ""};
    unsigned mask = LM_STATE;
    if (member || !e->is_account) {
        ds_fmt_g6(confront, sizeof(confront), tenth(v->confront));
        ds_fmt_g6(connect, sizeof(connect), tenth(v->connect));
        ds_fmt_g6(mob, sizeof(mob), tenth(v->mobilizer));
        ds_fmt_i64(asof, v->as_of);
        ds_fmt_i64(ev, v->events_applied);
        reasons = join(s, v->reasons, v->reasons_count, '\n');
        cls[0] = ds_tier_name(v->tier);
        cls[1] = nz(v->top_insight);
        cls[2] = v->furthest_stage >= 0 ? ds_content_stage_name(v->furthest_stage) : "";
        const char *pts[] = {confront, connect, mob, reasons};
        uint64_t now = sig_of(cls, 3), pnow = sig_of(pts, 4);
        mask |= LM_PROGRESS | (now != notes[0] ? LM_IDS | LM_CLASS : 0) |
                (pnow != notes[1] ? LM_POINTS | LM_REASONS : 0);
        notes[0] = now;
        notes[1] = pnow;
    }
    if (!e->is_account) { /* a lone lead: its checkpoint in the same hash */
        ds_fmt_checkpoint(ckpt, e->ent.partition, e->ent.offset);
        mask |= LM_CHECKPOINT | LM_LONE;
        s->wrote_lone = true;
    }
    if (new_member && e->is_account) /* a lone lead has no lead set */
        mask |= LM_NEW_MEMBER;
    /* the values in lead_fields' order */
    const char *val[LEAD_FIELDS] = {confront, connect, mob, cls[0], cls[1], cls[2],
                                    reasons,  asof,    ev,  (const char *)rec, ckpt};
    size_t len[LEAD_FIELDS];
    bool wide = false; /* W: 4-byte lengths where L has 2 (a record over 64 KiB) */
    for (size_t i = 0; i < LEAD_FIELDS; i++) {
        len[i] = lead_fields[i].bit == LM_STATE ? n : strlen(val[i]);
        wide |= !lead_fields[i].width && (mask & lead_fields[i].bit) && len[i] > 65535;
    }
    char op = wide ? 'W' : 'L';
    for (size_t i = 0; i < sizeof(lead_shapes) / sizeof(lead_shapes[0]) && !wide; i++)
        if (lead_shapes[i].mask == mask)
            op = lead_shapes[i].op;
    pg_put(s, &op, 1);
    pg_text(s, 2, v->lead_id);
    bool generic = !shape_mask(op);
    if (generic)
        pg_int(s, mask, 2);
    for (size_t i = 0; i < LEAD_FIELDS; i++) {
        bool has = mask & lead_fields[i].bit;
        if (has || generic)
            pg_str(s, lead_fields[i].width ? lead_fields[i].width : wide ? 4 : 2,
                   has ? val[i] : "", has ? len[i] : 0);
    }
}

/* The ids of a lead kept apart (I operation): flags (1 whole: the hash
 * is replaced, 2 the unit is a lead without account), the lead id, a
 * count, then each id's hash (8 bytes) and time (empty: dropped). */
static void w_ids(void *opaque, const char *lead_id, bool whole, const ds_dedupe_entry_t *e,
                  size_t n) {
    ds_scorer_t *s = opaque;
    pg_put(s, "I", 1);
    pg_int(s, (whole ? 1u : 0u) | (s->cur_e->is_account ? 0u : 2u), 1);
    pg_text(s, 2, lead_id);
    pg_int(s, n, 4);
    for (size_t i = 0; i < n; i++) {
        uint8_t h[8];
        for (int b = 0; b < 8; b++)
            h[b] = (uint8_t)(e[i].h >> (56 - 8 * b));
        pg_put(s, h, 8);
        char t[DS_FMT_INT_MAX] = "";
        if (e[i].t != DS_SCORE_ID_DROPPED)
            ds_fmt_i64(t, e[i].t);
        pg_text(s, 1, t);
    }
}

/* The repeats and shares of a lead kept apart (I operation with flag 4):
 * flags, the lead id, a count, then each field (2-byte length) and value
 * (1-byte length). */
static void w_mem(void *opaque, const char *lead_id, bool whole, const ds_score_field_t *f,
                  size_t n) {
    ds_scorer_t *s = opaque;
    pg_put(s, "I", 1);
    pg_int(s, (whole ? 1u : 0u) | (s->cur_e->is_account ? 0u : 2u) | 4u, 1);
    pg_text(s, 2, lead_id);
    pg_int(s, n, 4);
    for (size_t i = 0; i < n; i++) {
        pg_str(s, 2, f[i].k, f[i].kn);
        pg_str(s, 1, f[i].v, f[i].vn);
    }
}

static void w_dict(void *opaque, uint32_t idx, const char *str) {
    ds_scorer_t *s = opaque;
    size_t cap = s->cdict; /* two arrays of one capacity */
    s->dict = ds_worker_room("scorer", s->dict, s->ndict, &cap, sizeof(*s->dict), 64);
    s->dict_idx =
        ds_worker_room("scorer", s->dict_idx, s->ndict, &s->cdict, sizeof(*s->dict_idx), 64);
    s->dict_idx[s->ndict] = idx;
    s->dict[s->ndict++] = str;
}

static void w_attendance(void *opaque, const char *content, const char *lead, const void *v,
                         size_t n) {
    ds_scorer_t *s = opaque;
    pg_put(s, "T", 1);
    pg_text(s, 2, content);
    pg_text(s, 2, lead);
    pg_str(s, 4, v, n); /* empty: HDEL */
}

/* Insight sums: collected, then one operation per account write. */
static void w_sum(void *opaque, uint32_t idx, const void *v, size_t n) {
    ds_scorer_t *s = opaque;
    s->sums = ds_worker_room("scorer", s->sums, s->nsums, &s->csums, sizeof(*s->sums), 64);
    sum_field_t *f = &s->sums[s->nsums++];
    f->idx = idx;
    f->off = s->sumbuf.len;
    f->n = n;
    if (n && ds_buf_append(&s->sumbuf, v, n))
        ds_worker_oom("scorer");
}

/* S operations: the insight sums, at most 65,535 each. */
static void put_sums(ds_scorer_t *s) {
    for (size_t k = 0; k < s->nsums; k += 65535) {
        size_t m = s->nsums - k < 65535 ? s->nsums - k : 65535;
        pg_put(s, "S", 1);
        pg_int(s, m, 2);
        for (size_t i = k; i < k + m; i++) {
            pg_int(s, s->sums[i].idx, 4);
            pg_str(s, 4, (const char *)s->sumbuf.data + s->sums[i].off, s->sums[i].n);
        }
    }
}

/* D operations: the new dictionary entries, each operation a run of
 * consecutive indexes (they come so: appended since the last write) of
 * at most 65,535. */
static void put_dict(ds_scorer_t *s) {
    size_t k = 0;
    while (k < s->ndict) {
        size_t m = 1;
        while (k + m < s->ndict && m < 65535 && s->dict_idx[k + m] == s->dict_idx[k] + m)
            m++;
        pg_put(s, "D", 1);
        pg_int(s, s->dict_idx[k], 4);
        pg_int(s, m, 2);
        for (size_t i = k; i < k + m; i++)
            pg_text(s, 4, s->dict[i]);
        k += m;
    }
}

static void w_mobilizer(void *opaque, const char *lead, bool add) {
    ds_scorer_t *s = opaque;
    pg_put(s, "M", 1);
    pg_int(s, add, 1);
    pg_text(s, 2, lead);
}

/* The account's hash: its record, checkpoint and as_of, and the score
 * fields (with the id) only when they differ from what was last written;
 * the mobilizers' text is built only then. */
static void w_account(void *opaque, const ds_account_score_t *a, uint64_t sig, const void *rec,
                      size_t n) {
    ds_scorer_t *s = opaque;
    unit_entry_t *e = s->cur_e;
    char ckpt[DS_FMT_CKPT_MAX], asof[32];
    ds_fmt_checkpoint(ckpt, e->ent.partition, e->ent.offset);
    ds_fmt_i64(asof, a->as_of);
    unsigned epoch = ds_redis_epoch();
    uint64_t now = ds_fnv64_add(sig, &epoch, sizeof(epoch));
    now = now ? now : 1;
    bool scores = now != e->written_sig;
    pg_put(s, "A", 1);
    pg_int(s, scores, 1);
    pg_str(s, 4, rec, n);
    pg_text(s, 1, ckpt);
    pg_text(s, 1, asof);
    if (!scores)
        return;
    e->written_sig = now;
    char engaged[DS_FMT_INT_MAX], confronted[DS_FMT_INT_MAX], consensus[32];
    ds_fmt_i64(engaged, a->engaged_stakeholders);
    ds_fmt_i64(confronted, a->confronted_stakeholders);
    ds_fmt_g6(consensus, sizeof(consensus), a->consensus);
    pg_text(s, 1, engaged);
    pg_text(s, 1, confronted);
    pg_text(s, 1, consensus);
    pg_text(s, 4, a->top_insight);
    pg_text(s, 4, join(s, (const char *const *)a->mobilizers, a->mobilizers_count, ','));
}

/* Units per EVALSHA on one Redis server: each run costs Redis a call and
 * the worker a reply and a SHA-1 on the wire, so several units share one;
 * a bound keeps a run short (Redis does nothing else while it runs). */
enum { WRITE_UNITS = DS_SCORER_WRITE_UNITS, WRITE_PROGRAM_BYTES = 1 << 20 };

/* ---- redis.writes: transaction ----
 * The program run here instead, as write.lua runs it, into the same
 * commands, sent in a MULTI/EXEC per unit: for a Redis user that may not
 * run scripts, or a Redis whose CPU is scarcer than its network. */

typedef struct rd {
    const uint8_t *p, *end;
} rd_t;

static uint32_t rd_int(rd_t *r, int width) {
    uint32_t v = 0;
    for (int i = 0; i < width && r->p < r->end; i++)
        v = v << 8 | *r->p++;
    return v;
}

/* A value after its length; its bytes stay in the program. */
static const char *rd_str(rd_t *r, int width, size_t *n) {
    *n = rd_int(r, width);
    const char *v = (const char *)r->p;
    r->p += *n;
    return v;
}

/* An argument list being built, sent in commands of at most 64 pairs. */
typedef struct cmdv {
    const char *argv[2 + 2 * 64];
    size_t lens[2 + 2 * 64];
    int c;
    char nums[64][DS_FMT_INT_MAX];
} cmdv_t;

static void cv_start(cmdv_t *v, const char *cmd, const char *key, size_t klen) {
    v->argv[0] = cmd;
    v->lens[0] = strlen(cmd);
    v->argv[1] = key;
    v->lens[1] = klen;
    v->c = 2;
}

static void cv_send(ds_scorer_t *s, cmdv_t *v) {
    if (v->c > 2 && s->collect) { /* the key only (declare_keys) */
        if (ds_buf_append(&s->xkeys, v->argv[1], v->lens[1]) || ds_buf_append(&s->xkeys, "", 1))
            ds_worker_oom("scorer");
    } else if (v->c > 2) {
        ds_redis_cmd(s->cur_r, v->c, v->argv, v->lens);
    }
    v->c = 2;
}

static void cv_arg(ds_scorer_t *s, cmdv_t *v, const char *a, size_t n, int per) {
    if (v->c == 2 + per * 64)
        cv_send(s, v);
    v->argv[v->c] = a;
    v->lens[v->c++] = n;
}

/* cv_start of cmd on the key base + suffix + tail (built in s->keybuf). */
static void cv_start_at(ds_scorer_t *s, cmdv_t *v, const char *cmd, const char *base,
                        const char *suffix, const char *tail, size_t tlen) {
    ds_buf_reset(&s->keybuf);
    if (ds_buf_append(&s->keybuf, base, strlen(base)) ||
        ds_buf_append(&s->keybuf, suffix, strlen(suffix)) ||
        ds_buf_append(&s->keybuf, tail, tlen))
        ds_worker_oom("scorer");
    cv_start(v, cmd, (const char *)s->keybuf.data, s->keybuf.len);
}

/* What a unit's operations need: two argument lists (HSET and HDEL of
 * one hash) and where the new members' ids are in the program. */
typedef struct runner {
    cmdv_t v, del;
    ds_buf_t members; /* (offset, length) pairs into the program */
} runner_t;

static void run_lead(ds_scorer_t *s, runner_t *x, rd_t *r, char op, const char *base,
                     const char *acct) {
    cmdv_t *v = &x->v;
    size_t idn;
    const char *id = rd_str(r, 2, &idn);
    unsigned mask = shape_mask(op);
    bool generic = !mask;
    if (generic)
        mask = rd_int(r, 2);
    if (mask & LM_LONE)
        cv_start(v, "HSET", base, strlen(base));
    else
        cv_start_at(s, v, "HSET", base, ":lead:", id, idn);
    if (mask & LM_IDS) {
        cv_arg(s, v, "lead_id", 7, 2);
        cv_arg(s, v, id, idn, 2);
        cv_arg(s, v, "account_id", 10, 2);
        cv_arg(s, v, acct, strlen(acct), 2);
    }
    for (size_t i = 0; i < LEAD_FIELDS; i++) {
        bool has = mask & lead_fields[i].bit;
        if (!has && !generic)
            continue;
        size_t n;
        int width = lead_fields[i].width ? lead_fields[i].width : op == 'W' ? 4 : 2;
        const char *val = rd_str(r, width, &n);
        if (has) {
            cv_arg(s, v, lead_fields[i].name, strlen(lead_fields[i].name), 2);
            cv_arg(s, v, val, n, 2);
        }
    }
    cv_send(s, v);
    if (mask & LM_NEW_MEMBER) {
        size_t at[2] = {(size_t)(id - (const char *)s->prog.data), idn};
        if (ds_buf_append(&x->members, at, sizeof(at)))
            ds_worker_oom("scorer");
    }
}

static void run_account(ds_scorer_t *s, runner_t *x, rd_t *r, const char *base,
                        const char *acct) {
    static const char *const names[] = {"state",
                                        "checkpoint",
                                        "as_of",
                                        "engaged_stakeholders",
                                        "confronted_stakeholders",
                                        "consensus",
                                        "top_insight",
                                        "mobilizers"};
    static const int widths[] = {4, 1, 1, 1, 1, 1, 4, 4};
    cmdv_t *v = &x->v;
    size_t nm = x->members.len / (2 * sizeof(size_t));
    int all = (int)rd_int(r, 1);
    if (nm) { /* the new members first */
        const size_t *m = (const size_t *)x->members.data;
        cv_start_at(s, v, "SADD", base, ":leads", "", 0);
        for (size_t i = 0; i < nm; i++)
            cv_arg(s, v, (const char *)s->prog.data + m[2 * i], m[2 * i + 1], 1);
        cv_send(s, v);
        ds_buf_reset(&x->members);
    }
    cv_start(v, "HSET", base, strlen(base));
    for (size_t i = 0; i < (all == 1 ? 8u : 3u); i++) {
        if (i == 3) { /* the score fields after the id */
            cv_arg(s, v, "account_id", 10, 2);
            cv_arg(s, v, acct, strlen(acct), 2);
        }
        size_t n;
        const char *val = rd_str(r, widths[i], &n);
        cv_arg(s, v, names[i], strlen(names[i]), 2);
        cv_arg(s, v, val, n, 2);
    }
    cv_send(s, v);
}

/* D (first index, count, texts) or S (count, index and value each; an
 * empty value: HDEL), each number's text in the list's nums. */
static void run_indexed(ds_scorer_t *s, runner_t *x, rd_t *r, char op, const char *base) {
    cmdv_t *v = &x->v, *del = &x->del;
    uint32_t first = op == 'D' ? rd_int(r, 4) : 0, count = rd_int(r, 2);
    cv_start_at(s, v, "HSET", base, op == 'D' ? ":dict" : ":sums", "", 0);
    cv_start(del, "HDEL", v->argv[1], v->lens[1]);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t idx = op == 'D' ? first + i : rd_int(r, 4);
        size_t n;
        const char *val = rd_str(r, 4, &n);
        cmdv_t *to = op == 'S' && !n ? del : v;
        int per = to == del ? 1 : 2;
        if (to->c == 2 + per * 64)
            cv_send(s, to);
        char *num = to->nums[(to->c - 2) / per];
        ds_fmt_u64(num, idx);
        cv_arg(s, to, num, strlen(num), per);
        if (to == v)
            cv_arg(s, v, val, n, 2);
    }
    cv_send(s, v);
    cv_send(s, del);
}

/* I: DEL of the lead's hash of ids (with flag 4, of repeats and shares)
 * when whole, then HSET of the fields set and HDEL of those dropped. */
static void run_ids(ds_scorer_t *s, runner_t *x, rd_t *r, const char *base) {
    cmdv_t *v = &x->v, *del = &x->del;
    int flags = (int)rd_int(r, 1);
    size_t idn;
    const char *id = rd_str(r, 2, &idn);
    uint32_t count = rd_int(r, 4);
    const char *sfx = flags & 4 ? ":mem" : ":seen";
    if (flags & 2)
        cv_start_at(s, v, "HSET", base, sfx, "", 0);
    else
        cv_start_at(s, v, "HSET", base, flags & 4 ? ":mem:" : ":seen:", id, idn);
    if (flags & 1) { /* DEL of the key alone */
        const char *argv[] = {"DEL", v->argv[1]};
        size_t lens[] = {3, v->lens[1]};
        if (s->collect && (ds_buf_append(&s->xkeys, argv[1], lens[1]) ||
                           ds_buf_append(&s->xkeys, "", 1)))
            ds_worker_oom("scorer");
        else if (!s->collect)
            ds_redis_cmd(s->cur_r, 2, argv, lens);
    }
    cv_start(del, "HDEL", v->argv[1], v->lens[1]);
    for (uint32_t i = 0; i < count; i++) {
        size_t hn = 8, n;
        const char *h = (const char *)r->p;
        if (flags & 4)
            h = rd_str(r, 2, &hn);
        else
            r->p += 8;
        const char *t = rd_str(r, 1, &n);
        cmdv_t *to = n ? v : del;
        int per = n ? 2 : 1;
        cv_arg(s, to, h, hn, per);
        if (n)
            cv_arg(s, v, t, n, 2);
    }
    cv_send(s, v);
    cv_send(s, del);
}

/* One unit's operations, up to the U before the next unit's. */
static void run_unit_ops(ds_scorer_t *s, runner_t *x, rd_t *r, const char *base,
                         const char *acct) {
    cmdv_t *v = &x->v;
    ds_buf_reset(&x->members);
    while (r->p < r->end && *r->p != 'U') {
        char op = (char)*r->p++;
        if (shape_mask(op) || op == 'L' || op == 'W') {
            run_lead(s, x, r, op, base, acct);
        } else if (op == 'A') {
            run_account(s, x, r, base, acct);
        } else if (op == 'D' || op == 'S') {
            run_indexed(s, x, r, op, base);
        } else if (op == 'T') {
            size_t cn, ln, n;
            const char *content = rd_str(r, 2, &cn), *lead = rd_str(r, 2, &ln);
            const char *val = rd_str(r, 4, &n);
            cv_start_at(s, v, n ? "HSET" : "HDEL", base, ":att:", content, cn);
            cv_arg(s, v, lead, ln, 2);
            if (n)
                cv_arg(s, v, val, n, 2);
            cv_send(s, v);
        } else if (op == 'M') {
            int add = (int)rd_int(r, 1);
            size_t ln;
            const char *lead = rd_str(r, 2, &ln);
            cv_start_at(s, v, add == 1 ? "SADD" : "SREM", base, ":mobilizers", "", 0);
            cv_arg(s, v, lead, ln, 1);
            cv_send(s, v);
        } else if (op == 'I') {
            run_ids(s, x, r, base);
        } else if (op == 'X') {
            cv_start(v, "HDEL", base, strlen(base));
            cv_arg(s, v, "blob", 4, 1);
            cv_send(s, v);
        } else {
            DS_ERROR("scorer", "a write program this build does not read (operation %d)", op);
            abort(); /* written by this file: a bug */
        }
    }
}

/* The units gathered, each in a MULTI/EXEC of the commands write.lua
 * would run; while s->collect, the keys of those commands noted instead. */
static void run_writes(ds_scorer_t *s) {
    runner_t *x = calloc(1, sizeof(*x));
    if (!x)
        ds_worker_oom("scorer");
    ds_buf_init(&x->members, 0);
    rd_t r = {s->prog.data, s->prog.data + s->prog.len};
    const char *p = (const char *)s->wkeys.data;
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    for (size_t u = 0; u < s->nwunits; u++) {
        const char *base = p, *acct = p + strlen(p) + 1;
        p = acct + strlen(acct) + 1;
        if (u)
            r.p++; /* the U between units */
        if (!s->collect)
            ds_redis_cmd(s->cur_r, 1, multi, NULL);
        run_unit_ops(s, x, &r, base, acct);
        if (!s->collect)
            ds_redis_cmd(s->cur_r, 1, exec, NULL);
    }
    ds_buf_free(&x->members);
    free(x);
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Room in s->wargv and s->wlens for n arguments. */
static void wargv_room(ds_scorer_t *s, size_t n) {
    while (s->cwargv < n) {
        size_t cap = s->cwargv;
        s->wargv = ds_worker_room("scorer", s->wargv, cap, &cap, sizeof(*s->wargv), 64);
        s->wlens = ds_worker_room("scorer", s->wlens, s->cwargv, &s->cwargv, sizeof(*s->wlens), 64);
    }
}

/* On a Redis Cluster, every key the run writes besides the units' hashes
 * goes into KEYS after them, each once: Redis checks all declared keys
 * before a script runs, so while the slot migrates a run some of whose
 * keys have moved is refused whole (ASK, or TRYAGAIN), and retried.  With
 * the hashes alone the script ran, and stopped at the first moved key
 * after part of its writes (Redis does not undo them).  The keys are what
 * the runner (redis.writes: transaction) would write, noted instead of
 * sent, from s->wargv[at] on; returns how many. */
static size_t declare_keys(ds_scorer_t *s, size_t at) {
    ds_buf_reset(&s->xkeys);
    s->collect = true;
    run_writes(s);
    s->collect = false;
    size_t n = 0;
    for (size_t off = 0; off < s->xkeys.len; off += strlen((char *)s->xkeys.data + off) + 1)
        n++;
    wargv_room(s, at + n);
    const char **k = s->wargv + at;
    n = 0;
    for (size_t off = 0; off < s->xkeys.len; off += strlen((char *)s->xkeys.data + off) + 1)
        k[n++] = (const char *)s->xkeys.data + off;
    qsort(k, n, sizeof(*k), cmp_key);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        bool dup = m && !strcmp(k[m - 1], k[i]);
        for (size_t u = 3; u < 3 + s->nwunits && !dup; u++)
            dup = !strcmp(s->wargv[u], k[i]);
        if (!dup)
            k[m++] = k[i];
    }
    return m;
}

/* The EVALSHA of the units gathered: KEYS their hashes (then, on a
 * cluster, declare_keys), ARGV[1] their programs, ARGV[1+u] their account
 * ids (kept in s->wkeys, NUL-separated, key then account id); or, with
 * redis.writes: transaction, the commands it would run. */
static void flush_writes(ds_scorer_t *s) {
    if (!s->nwunits)
        return;
    if (s->script) {
        wargv_room(s, 4 + 2 * s->nwunits);
        const char *p = (const char *)s->wkeys.data;
        for (size_t u = 0; u < s->nwunits; u++) {
            s->wargv[3 + u] = p;
            p += strlen(p) + 1;
            p += strlen(p) + 1;
        }
        size_t nkeys = s->nwunits + (s->cluster ? declare_keys(s, 3 + s->nwunits) : 0);
        size_t argc = 4 + nkeys + s->nwunits;
        wargv_room(s, argc);
        const char **argv = s->wargv;
        char nk[DS_FMT_INT_MAX];
        ds_fmt_u64(nk, nkeys);
        argv[0] = "EVALSHA";
        argv[1] = ds_scorer_write_lua_sha;
        argv[2] = nk;
        argv[3 + nkeys] = (const char *)s->prog.data;
        p = (const char *)s->wkeys.data;
        for (size_t u = 0; u < s->nwunits; u++) {
            p += strlen(p) + 1;
            argv[4 + nkeys + u] = p;
            p += strlen(p) + 1;
        }
        for (size_t i = 0; i < argc; i++)
            s->wlens[i] = i == 3 + nkeys ? s->prog.len : strlen(argv[i]);
        ds_redis_cmd(s->cur_r, (int)argc, argv, s->wlens);
    } else {
        run_writes(s);
    }
    s->nwunits = 0;
    ds_buf_reset(&s->prog);
    ds_buf_reset(&s->wkeys);
}

/* The units ents[0..n), each as it is now.  Outputs were acknowledged
 * before this runs. */
void ds_scorer_persist(void *self, ds_redis_t *r, ds_worker_entity_t *const *ents, size_t n,
                       bool last) {
    ds_scorer_t *s = self;
    (void)last; /* a window owes nothing but its units */
    s->cur_r = r;
    ds_score_writer_t w = {.opaque = s,
                           .lead = w_lead,
                           .dict = w_dict,
                           .attendance = w_attendance,
                           .mobilizer = w_mobilizer,
                           .sum = w_sum,
                           .account = w_account,
                           .ids = w_ids,
                           .mem = w_mem,
                           .epoch = ds_redis_epoch()};
    /* a cluster runs a script on one slot: one unit per EVALSHA there */
    s->cluster = ds_worker_redis_is_cluster(s->a.worker);
    size_t per_run = s->cluster ? 1 : WRITE_UNITS;
    s->script = !strcmp(s->a.cfg->redis_writes, "script");
    s->nwunits = 0;
    ds_buf_reset(&s->prog);
    ds_buf_reset(&s->wkeys);
    for (size_t i = 0; i < n; i++) {
        unit_entry_t *e = (unit_entry_t *)ents[i];
        if (i + 1 < n)
            __builtin_prefetch(ents[i + 1]);
        s->cur_e = e;
        s->ndict = s->nsums = 0;
        ds_buf_reset(&s->sumbuf);
        s->wrote_lone = false;
        size_t mark = s->prog.len;
        if (s->nwunits)
            pg_put(s, "U", 1);
        bool legacy = ds_score_unit_is_legacy(e->unit);
        if (ds_score_unit_write(e->unit, &w))
            ds_worker_oom("scorer");
        put_sums(s);
        if (e->is_account)
            put_dict(s);
        if (legacy) /* moved to the per-lead layout: the old blob goes */
            pg_put(s, "X", 1);
        if (!e->is_account && !s->wrote_lone) { /* only the checkpoint moved */
            char ckpt[DS_FMT_CKPT_MAX];
            ds_fmt_checkpoint(ckpt, e->ent.partition, e->ent.offset);
            const char *argv[] = {"HSET", ds_scorer_rkey(s, e, NULL, NULL), "checkpoint", ckpt};
            ds_redis_cmd(r, 4, argv, NULL);
        }
        if (s->prog.len > mark + (s->nwunits ? 1 : 0)) {
            const char *key = ds_scorer_rkey(s, e, NULL, NULL), *acct = e->is_account ? e->key : "";
            if (ds_buf_append(&s->wkeys, key, strlen(key) + 1) ||
                ds_buf_append(&s->wkeys, acct, strlen(acct) + 1))
                ds_worker_oom("scorer");
            s->nwunits++;
            if (s->nwunits == per_run || s->prog.len >= WRITE_PROGRAM_BYTES)
                flush_writes(s);
        } else {
            s->prog.len = mark; /* nothing to run for this one */
        }
        ds_scorer_count_leads(s, e);
    }
    flush_writes(s);
    ds_scorer_publish_tracked(s);
}
