/*
 * score_store.c — a scoring unit as stored: one record per lead, the
 * account's aggregate record, the attendance-index fields, the dictionary
 * and the insight sums (the whole-unit container that tests and tools use
 * is score_container.c).
 *
 * Formats (version 3; all integers varints, signed ones zigzag, doubles
 * ds_buf_put_f64c, times relative to a base with ds_buf_put_time).  A
 * content or insight id is a reference: its index in the account's
 * dictionary + 1 (0: none); lead ids are strings.  A lone lead has no
 * account dictionary: its record starts with a list of its own (every
 * content and insight it named; only those the record refers to, in
 * that order, once its memory of content is kept apart), which its
 * references index.
 *
 *   lead:  3, bits (1 any_a, 2 member, 4 has as_of, 8 has max_t, flags<<4,
 *          128 ids kept apart), [max_t], [as_of rel. max_t],
 *          events_applied, n_emitted, gen, confront, connect, em_c10,
 *          em_n10, em_m10, em_tier, insights (ref, amask, smask, pts),
 *          repeats (ref, type, t), buckets (kind, a, b, v), shares (ref,
 *          colleague), then either event ids (hash as 8 bytes, t; by hash;
 *          those live by the lead's clock) or, with 128, the ids'
 *          compaction point, 0/1 and when 1 every id held (a whole-unit
 *          container of a lead whose ids are in memory; in Redis they are
 *          in the scorer's hash of the lead's ids), then inbox (sharer,
 *          ref, gen, ts), credited (sharer, ref, gen), attendances (ref,
 *          t), group credits (ref).  Builds before the bit 128 read a
 *          record without it, and refuse one with it.
 *          A lead whose repeats and shares are kept apart (in the
 *          scorer's hash of its memory) is version 4: after bits a byte,
 *          1, or 3 when they follow (a whole-unit container), and their
 *          counts are 0 unless they do; a share bucket's b (its count of
 *          colleagues, which version 3 derives from the shares) follows
 *          its ref.  Builds before version 4 refuse it.
 *   account: 3, thresholds (confronted, connector), consensus target,
 *          dedupe window (ms), members, bits (1 has
 *          as_of, 2 has max_t), [as_of], [max_t], n emitted, emitted
 *          engaged, confronted, consensus×10, top ref, mobilizer hash
 *          (8 bytes), count, engaged, legacy event ids (hash, t rel. max_t)
 *   insight sum (one per insight, keyed by its dictionary index): q high,
 *          q low (the sum in fixed point, 2^32 per point), confronted,
 *          with points
 *   attendance field (content, lead): group credit received (0/1), then
 *          the lead's counted attendance times of that content
 *
 * Reading never trusts the bytes: counts are bounded by what is left,
 * references by the dictionary, enums by their ranges.
 */
#include <stdlib.h>
#include <string.h>

#include "ds_hash.h"
#include "score_int.h"

#define REC_VERSION 3
#define REC_VERSION_MEM 4 /* a lead record whose repeats and shares are kept apart */

/* ---- the dictionary -------------------------------------------------------- */

/* The dictionary index of intern id `id`, assigned when it has none (a
 * unit read from an earlier version's blob; events assign theirs as they
 * are applied, see ds_score_dict_assign). */
static ds_err_t dict_ref(ds_score_unit_t *u, uint32_t id, uint64_t *ref) {
    if (id == NOID) {
        *ref = 0;
        return DS_ERR_OK;
    }
    if (u->scr->enc) { /* the record's own list, in the order it refers to them */
        refmap_t *rm = u->scr->enc;
        int32_t i = ds_score_idx(&rm->m, id);
        if (i < 0) {
            if (ENSURE(rm->ids, rm->cap, rm->n + 1, 8) ||
                ds_score_idx_put(&rm->m, id, (int32_t)rm->n))
                return DS_ERR_NOMEM;
            i = (int32_t)rm->n;
            rm->ids[rm->n++] = id;
        }
        *ref = (uint64_t)i + 1;
        return DS_ERR_OK;
    }
    if (ds_score_dict_assign(u, id))
        return DS_ERR_NOMEM;
    *ref = (uint64_t)ds_score_idx(&u->dictmap, id) + 1;
    return DS_ERR_OK;
}

static ds_err_t put_ref(ds_score_unit_t *u, ds_buf_t *b, uint32_t id) {
    uint64_t ref;
    DS_TRY(dict_ref(u, id, &ref));
    return ds_buf_put_varint(b, ref);
}

ds_err_t ds_score_put_sid(const ds_score_unit_t *u, ds_buf_t *b, uint32_t id) {
    return ds_buf_put_strn(b, ds_score_str(u, id), ds_score_strlen(u, id));
}

ds_err_t ds_score_unit_put_dict(ds_score_unit_t *u, uint64_t idx, const char *s, size_t n) {
    if (!u || !s || idx >= INT32_MAX)
        return DS_ERR_INVAL;
    uint32_t id;
    if (ds_score_sym(u, s, n, &id))
        return DS_ERR_NOMEM;
    int32_t was = ds_score_idx(&u->dictmap, id);
    if (was >= 0)
        return (uint64_t)was == idx ? DS_ERR_OK : DS_ERR_UNDECODABLE;
    if (idx >= u->ndict) {
        if (ENSURE(u->dict, u->cdict, idx + 1, DS_FIRST_IDS))
            return DS_ERR_NOMEM;
        for (uint64_t i = u->ndict; i < idx; i++)
            u->dict[i] = NOID;
        u->ndict = (uint32_t)idx + 1;
    } else if (u->dict[idx] != NOID) {
        return DS_ERR_UNDECODABLE; /* two strings for one index */
    }
    if (ds_score_idx_put(&u->dictmap, id, (int32_t)idx))
        return DS_ERR_NOMEM;
    u->dict[idx] = id;
    if (u->dict_written < u->ndict)
        u->dict_written = u->ndict; /* stored: not to be written again */
    return DS_ERR_OK;
}

/* ---- encoding ------------------------------------------------------------- */

ds_err_t ds_score_encode_lead(ds_score_unit_t *u, const lead_t *L, bool container, ds_buf_t *out) {
    bool has_max = L->max_t != UNSET_T, has_asof = L->as_of != UNSET_T;
    int64_t base = has_max ? L->max_t : 0;
    bool apart = L->ids & IDS_APART;
    uint8_t bits = (uint8_t)(L->any_a | (L->member << 1) | (has_asof << 2) | (has_max << 3) |
                             (L->flags << 4) | (apart << 7));
    /* its repeats and shares: in the record unless kept apart (then in
     * a container only, when in memory) */
    bool mapart = L->mem & IDS_APART;
    bool mem = !mapart || (container && !(L->mem & IDS_MISSING));
    DS_TRY(ds_buf_put_u8(out, mapart ? REC_VERSION_MEM : REC_VERSION));
    DS_TRY(ds_buf_put_u8(out, bits));
    if (mapart)
        DS_TRY(ds_buf_put_u8(out, (uint8_t)(1 | mem << 1)));
    if (has_max)
        DS_TRY(ds_buf_put_svarint(out, L->max_t));
    if (has_asof)
        DS_TRY(ds_buf_put_time(out, base, L->as_of));
    DS_TRY(ds_buf_put_svarint(out, L->events_applied));
    DS_TRY(ds_buf_put_varint(out, L->n_emitted));
    DS_TRY(ds_buf_put_varint(out, L->gen));
    DS_TRY(ds_buf_put_f64c(out, L->confront));
    DS_TRY(ds_buf_put_f64c(out, L->connect));
    DS_TRY(ds_buf_put_svarint(out, L->em_c10));
    DS_TRY(ds_buf_put_svarint(out, L->em_n10));
    DS_TRY(ds_buf_put_svarint(out, L->em_m10));
    DS_TRY(ds_buf_put_u8(out, L->em_tier));
    DS_TRY(ds_buf_put_varint(out, L->nins));
    for (uint32_t i = 0; i < L->nins; i++) {
        DS_TRY(put_ref(u, out, L->ins[i].insight));
        DS_TRY(ds_buf_put_u8(out, L->ins[i].amask));
        DS_TRY(ds_buf_put_u8(out, L->ins[i].smask));
        DS_TRY(ds_buf_put_f64c(out, L->ins[i].pts));
    }
    DS_TRY(ds_buf_put_varint(out, mem ? L->nrep : 0));
    for (uint32_t i = 0; mem && i < L->nrep; i++) {
        DS_TRY(put_ref(u, out, L->rep[i].content));
        DS_TRY(ds_buf_put_u8(out, L->rep[i].type));
        DS_TRY(ds_buf_put_time(out, base, L->rep[i].t));
    }
    DS_TRY(ds_buf_put_varint(out, L->nbkt));
    for (uint32_t i = 0; i < L->nbkt; i++) {
        const bkt_t *k = &L->bkt[i];
        DS_TRY(ds_buf_put_u8(out, bk_kind(k)));
        switch (bk_kind(k)) {
        case BK_CONF_INS:
        case BK_CONF_CONTENT:
            DS_TRY(put_ref(u, out, k->a));
            DS_TRY(ds_buf_put_varint(out, bk_b(k)));
            break;
        case BK_FOLLOW:
            DS_TRY(ds_score_put_sid(u, out, k->a));
            DS_TRY(put_ref(u, out, bk_b(k)));
            break;
        default: /* BK_SHARE, BK_GROUP: a content */
            DS_TRY(put_ref(u, out, k->a));
            if (mapart && bk_kind(k) == BK_SHARE) /* the count, without the pairs */
                DS_TRY(ds_buf_put_varint(out, bk_b(k)));
            break;
        }
        DS_TRY(ds_buf_put_f64c(out, k->v));
    }
    DS_TRY(ds_buf_put_varint(out, mem ? L->nshc : 0));
    for (uint32_t i = 0; mem && i < L->nshc; i++) {
        DS_TRY(put_ref(u, out, L->shc[i].content));
        DS_TRY(ds_score_put_sid(u, out, L->shc[i].colleague));
    }
    /* the ids live by the lead's own clock while in the record (a
     * superset of those live by the account's, which is later); once
     * apart, every one held (a compaction drops at points the events
     * set): the same bytes whenever the lead is written (score.c,
     * remember_id) */
    ds_dedupe_clock_t live = {.now = L->max_t, .window = u->dd_window_ms, .all = apart};
    bool ids = !apart || (container && !(L->ids & IDS_MISSING));
    if (apart) {
        DS_TRY(ds_buf_put_varint(out, L->dd_compact_at));
        DS_TRY(ds_buf_put_u8(out, ids));
    }
    if (ids)
        DS_TRY(ds_dedupe_save(&L->dd, &live, base, out));
    DS_TRY(ds_buf_put_varint(out, L->ninb));
    for (uint32_t i = 0; i < L->ninb; i++) {
        DS_TRY(ds_score_put_sid(u, out, L->inb[i].sharer));
        DS_TRY(put_ref(u, out, L->inb[i].insight));
        DS_TRY(ds_buf_put_varint(out, L->inb[i].gen));
        DS_TRY(ds_buf_put_time(out, base, L->inb[i].ts));
    }
    DS_TRY(ds_buf_put_varint(out, L->ncrd));
    for (uint32_t i = 0; i < L->ncrd; i++) {
        DS_TRY(ds_score_put_sid(u, out, L->crd[i].sharer));
        DS_TRY(put_ref(u, out, L->crd[i].insight));
        DS_TRY(ds_buf_put_varint(out, L->crd[i].gen));
    }
    DS_TRY(ds_buf_put_varint(out, L->natt));
    for (uint32_t i = 0; i < L->natt; i++) {
        DS_TRY(put_ref(u, out, L->att[i].content));
        DS_TRY(ds_buf_put_time(out, base, L->att[i].t));
    }
    DS_TRY(ds_buf_put_varint(out, L->ngc));
    for (uint32_t i = 0; i < L->ngc; i++)
        DS_TRY(put_ref(u, out, L->gc[i]));
    return DS_ERR_OK;
}

/* A lone lead's record: the strings it refers to, then the lead. */
ds_err_t ds_score_encode_lone(ds_score_unit_t *u, const lead_t *L, bool container, ds_buf_t *out,
                              ds_buf_t *tmp) {
    ds_buf_reset(tmp);
    if (!(L->mem & IDS_APART)) { /* every content and insight it named */
        DS_TRY(ds_score_encode_lead(u, L, container, tmp));
        DS_TRY(ds_buf_put_varint(out, u->ndict));
        for (uint32_t i = 0; i < u->ndict; i++)
            DS_TRY(ds_score_put_sid(u, out, u->dict[i]));
        return ds_buf_append(out, tmp->data, tmp->len);
    }
    /* its memory kept apart: only the strings the record refers to, in the
     * order it does (a function of the lead, not of the contents it ever
     * named, which grow with its history) */
    refmap_t rm = {.n = 0};
    u->scr->enc = &rm;
    ds_err_t e = ds_score_encode_lead(u, L, container, tmp);
    u->scr->enc = NULL;
    if (!e)
        e = ds_buf_put_varint(out, rm.n);
    for (uint32_t i = 0; i < rm.n && !e; i++)
        e = ds_score_put_sid(u, out, rm.ids[i]);
    if (!e)
        e = ds_buf_append(out, tmp->data, tmp->len);
    free(rm.m.v);
    free(rm.ids);
    return e;
}

ds_err_t ds_score_encode_account(ds_score_unit_t *u, ds_buf_t *out) {
    bool has_asof = u->as_of != UNSET_T, has_max = u->max_t != UNSET_T;
    DS_TRY(ds_buf_put_u8(out, REC_VERSION));
    DS_TRY(ds_buf_put_f64c(out, u->tier_confronted));
    DS_TRY(ds_buf_put_f64c(out, u->tier_connector));
    DS_TRY(ds_buf_put_f64c(out, u->consensus_target));
    DS_TRY(ds_buf_put_svarint(out, u->dd_window_ms));
    DS_TRY(ds_buf_put_varint(out, u->members));
    DS_TRY(ds_buf_put_u8(out, (uint8_t)(has_asof | (has_max << 1))));
    if (has_asof)
        DS_TRY(ds_buf_put_svarint(out, u->as_of));
    if (has_max)
        DS_TRY(ds_buf_put_svarint(out, u->max_t));
    DS_TRY(ds_buf_put_varint(out, u->acc_n_emitted));
    DS_TRY(ds_buf_put_svarint(out, u->em_engaged));
    DS_TRY(ds_buf_put_svarint(out, u->em_confronted));
    DS_TRY(ds_buf_put_svarint(out, u->em_cons10));
    DS_TRY(put_ref(u, out, u->em_top));
    DS_TRY(ds_buf_put_i64(out, (int64_t)u->em_mob_sig));
    DS_TRY(ds_buf_put_varint(out, u->em_nmob));
    DS_TRY(ds_buf_put_svarint(out, u->engaged));
    return ds_dedupe_save(&u->ldd, &(ds_dedupe_clock_t){.now = u->max_t, .window = u->dd_window_ms},
                          u->max_t, out);
}

ds_err_t ds_score_encode_sum(const aggi_t *g, ds_buf_t *out) {
    if (g->q == 0 && g->nconf == 0 && g->npos == 0)
        return DS_ERR_OK;
    DS_TRY(ds_buf_put_svarint(out, (int64_t)(g->q >> 64)));
    DS_TRY(ds_buf_put_varint(out, (uint64_t)g->q));
    DS_TRY(ds_buf_put_varint(out, g->nconf));
    return ds_buf_put_varint(out, g->npos);
}

/* The value of attendance field (content, lead L): empty when it holds
 * nothing (the field is then deleted). */
ds_err_t ds_score_encode_field(const lead_t *L, uint32_t content, ds_buf_t *out) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < L->natt; i++)
        n += L->att[i].content == content;
    bool gc = false;
    for (uint32_t i = 0; i < L->ngc && !gc; i++)
        gc = L->gc[i] == content;
    if (!n && !gc)
        return DS_ERR_OK;
    DS_TRY(ds_buf_put_u8(out, gc));
    DS_TRY(ds_buf_put_varint(out, n));
    for (uint32_t i = 0; i < L->natt; i++)
        if (L->att[i].content == content)
            DS_TRY(ds_buf_put_svarint(out, L->att[i].t));
    return DS_ERR_OK;
}

/* ---- decoding ------------------------------------------------------------- */

typedef struct rd {
    ds_reader_t r;
    ds_score_unit_t *u;
    const uint32_t *dict; /* a lone record's own strings, or NULL: the unit's */
    uint32_t ndict;
    bool bad;
} rd_t;

static int get_count(rd_t *d, uint32_t *n) {
    RD_GET(ds_get_count(&d->r, n));
    return 0;
}

/* A reference to the dictionary: an intern id, NOID for 0 when allowed. */
static int get_ref(rd_t *d, bool opt_none, uint32_t *id) {
    uint64_t v;
    RD_GET(ds_get_varint(&d->r, &v));
    if (v == 0) {
        RD_CHECK(opt_none);
        *id = NOID;
        return 0;
    }
    const uint32_t *dict = d->dict ? d->dict : d->u->dict;
    uint32_t n = d->dict ? d->ndict : d->u->ndict;
    RD_CHECK(v - 1 < n && dict[v - 1] != NOID);
    *id = dict[v - 1];
    return 0;
}

/* A string: interned. */
/* A string: a lead id (interned in the unit), or with `sym` a content or
 * insight id (a symbol). */
static int get_str_id(rd_t *d, uint32_t *id, bool sym) {
    uint64_t len;
    RD_GET(ds_get_varint(&d->r, &len));
    RD_CHECK(len >= 1 && len - 1 <= (uint64_t)(d->r.end - d->r.p));
    const char *s = (const char *)d->r.p;
    size_t n = (size_t)(len - 1);
    RD_CHECK((sym ? ds_score_sym(d->u, s, n, id) : ds_score_intern(d->u, s, n, id)) == 0);
    d->r.p += len - 1;
    return 0;
}

static int get_sid(rd_t *d, uint32_t *id) {
    return get_str_id(d, id, false);
}

static int get_u8max(rd_t *d, uint8_t max, uint8_t *v) {
    RD_GET(ds_get_u8(&d->r, v));
    RD_CHECK(*v <= max);
    return 0;
}

static int get_i32(rd_t *d, int32_t *v) {
    int64_t x;
    RD_GET(ds_get_svarint(&d->r, &x));
    RD_CHECK(x >= INT32_MIN && x <= INT32_MAX);
    *v = (int32_t)x;
    return 0;
}

static int get_u32(rd_t *d, uint32_t *v) {
    uint64_t x;
    RD_GET(ds_get_varint(&d->r, &x));
    RD_CHECK(x <= UINT32_MAX);
    *v = (uint32_t)x;
    return 0;
}

#define ALLOC(arr, cnt, n)                                                                         \
    do {                                                                                           \
        if ((n) && GROW(arr, cnt, n)) {                                                            \
            d->bad = true;                                                                         \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int decode_lead(rd_t *d, lead_t *L) {
    uint8_t ver, bits, mem = 0;
    RD_GET(ds_get_u8(&d->r, &ver));
    RD_CHECK(ver == REC_VERSION || ver == REC_VERSION_MEM);
    RD_GET(ds_get_u8(&d->r, &bits));
    if (ver == REC_VERSION_MEM) { /* 1: repeats and shares kept apart; 2: here too */
        RD_GET(ds_get_u8(&d->r, &mem));
        RD_CHECK(mem == 1 || mem == 3);
    }
    RD_CHECK(((bits >> 4) & 7) <= (LF_SHARED | LF_CREDITED | LF_GROUP));
    L->any_a = bits & 1;
    L->member = (bits >> 1) & 1;
    L->flags = (uint8_t)((bits >> 4) & 7);
    int64_t base = 0;
    if (bits & 8) {
        RD_GET(ds_get_svarint(&d->r, &L->max_t));
        base = L->max_t;
    }
    if (bits & 4)
        RD_GET(ds_get_time(&d->r, base, &L->as_of));
    RD_GET(ds_get_svarint(&d->r, &L->events_applied));
    if (get_u32(d, &L->n_emitted) || get_u32(d, &L->gen))
        return -1;
    RD_GET(ds_get_f64c(&d->r, &L->confront));
    RD_GET(ds_get_f64c(&d->r, &L->connect));
    if (get_i32(d, &L->em_c10) || get_i32(d, &L->em_n10) || get_i32(d, &L->em_m10) ||
        get_u8max(d, DS_TIER__COUNT - 1, &L->em_tier))
        return -1;
    uint32_t n;
    if (get_count(d, &n))
        return -1;
    ALLOC(L->ins, L->nins, n);
    for (uint32_t i = 0; i < n; i++) {
        ins_t *x = &L->ins[i];
        x->spts = 0;
        x->pos = 0;
        if (get_ref(d, false, &x->insight) || get_u8max(d, 7, &x->amask) ||
            get_u8max(d, 31, &x->smask))
            return -1;
        RD_GET(ds_get_f64c(&d->r, &x->pts));
        L->nins++;
    }
    if (get_count(d, &n))
        return -1;
    ALLOC(L->rep, L->nrep, n);
    for (uint32_t i = 0; i < n; i++) {
        rep_t *x = &L->rep[i];
        if (get_ref(d, true, &x->content) || get_u8max(d, DS_MA__COUNT - 1, &x->type))
            return -1;
        RD_GET(ds_get_time(&d->r, base, &x->t));
        L->nrep++;
    }
    if (get_count(d, &n))
        return -1;
    ALLOC(L->bkt, L->nbkt, n);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t kind;
        uint32_t a, b = 0;
        double v;
        if (get_u8max(d, BK__COUNT - 1, &kind))
            return -1;
        switch (kind) {
        case BK_CONF_INS:
        case BK_CONF_CONTENT:
            if (get_ref(d, kind == BK_CONF_CONTENT, &a) || get_u32(d, &b))
                return -1;
            RD_CHECK(b < DS_CS__COUNT);
            break;
        case BK_FOLLOW:
            if (get_sid(d, &a) || get_ref(d, false, &b))
                return -1;
            break;
        default:
            if (get_ref(d, kind == BK_SHARE, &a) || (mem && kind == BK_SHARE && get_u32(d, &b)))
                return -1;
            RD_CHECK(b <= UINT32_MAX >> 3);
            break;
        }
        RD_GET(ds_get_f64c(&d->r, &v));
        L->bkt[i] = bk_make(kind, a, b, v);
        L->nbkt++;
    }
    if (get_count(d, &n))
        return -1;
    ALLOC(L->shc, L->nshc, n);
    for (uint32_t i = 0; i < n; i++) {
        if (get_ref(d, true, &L->shc[i].content) || get_sid(d, &L->shc[i].colleague))
            return -1;
        L->nshc++;
    }
    if (mem == 1) { /* kept apart and not here: its next event reads them */
        RD_CHECK(!L->nrep && !L->nshc);
        L->mem = IDS_APART | IDS_MISSING;
    } else if (mem == 3) {
        L->mem = IDS_APART;
    } else {
        ds_score_share_counts(L); /* not stored: the pairs are here */
        if (L->nrep + L->nshc > DS_MEM_APART_AT) /* an earlier build's: its next write moves them */
            L->mem = IDS_APART | IDS_WHOLE;
    }
    if (!(bits & 0x80)) { /* the ids live by the lead's clock, in the record */
        RD_GET(ds_dedupe_load(&L->dd, &d->r, base, false));
        if (L->dd.n > DS_IDS_APART_AT) { /* an earlier build's: its next write moves them */
            L->ids = IDS_APART | IDS_WHOLE;
            L->dd_compact_at = 2 * L->dd.n;
        }
    } else { /* kept apart: here only in a whole-unit container */
        uint8_t follow;
        if (get_u32(d, &L->dd_compact_at) || get_u8max(d, 1, &follow))
            return -1;
        RD_CHECK(L->dd_compact_at > 0);
        if (follow)
            RD_GET(ds_dedupe_load(&L->dd, &d->r, base, false));
        L->ids = (uint8_t)(IDS_APART | (follow ? 0 : IDS_MISSING));
    }
    if (get_count(d, &n))
        return -1;
    ALLOC(L->inb, L->ninb, n);
    for (uint32_t i = 0; i < n; i++) {
        inb_t *x = &L->inb[i];
        if (get_sid(d, &x->sharer) || get_ref(d, false, &x->insight) || get_u32(d, &x->gen))
            return -1;
        RD_GET(ds_get_time(&d->r, base, &x->ts));
        L->ninb++;
    }
    if (get_count(d, &n))
        return -1;
    ALLOC(L->crd, L->ncrd, n);
    for (uint32_t i = 0; i < n; i++) {
        crd_t *x = &L->crd[i];
        if (get_sid(d, &x->sharer) || get_ref(d, false, &x->insight) || get_u32(d, &x->gen))
            return -1;
        L->ncrd++;
    }
    if (get_count(d, &n))
        return -1;
    ALLOC(L->att, L->natt, n);
    for (uint32_t i = 0; i < n; i++) {
        if (get_ref(d, false, &L->att[i].content))
            return -1;
        RD_GET(ds_get_time(&d->r, base, &L->att[i].t));
        L->natt++;
    }
    if (get_count(d, &n))
        return -1;
    ALLOC(L->gc, L->ngc, n);
    for (uint32_t i = 0; i < n; i++) {
        if (get_ref(d, false, &L->gc[i]))
            return -1;
        L->ngc++;
    }
    return 0;
}

ds_err_t ds_score_unit_put_lead(ds_score_unit_t *u, const char *lead_id, const void *p, size_t n) {
    if (!u || !lead_id)
        return DS_ERR_INVAL;
    uint32_t id, li;
    if (ds_score_intern(u, lead_id, strlen(lead_id), &id))
        return DS_ERR_NOMEM;
    if (u->t.strs[id].lead >= 0)
        return DS_ERR_OK; /* in memory: newer than what is stored */
    if (ds_score_lead_slot(u, id, &li))
        return DS_ERR_NOMEM;
    if (!p)
        return DS_ERR_OK;
    rd_t d_ = {.u = u}, *d = &d_;
    ds_reader_init(&d->r, p, n);
    uint32_t *own = NULL;
    if (!u->is_account) { /* a lone lead: its own strings first */
        uint32_t nd;
        if (get_count(d, &nd) == 0 && (own = calloc(nd ? nd : 1, sizeof(*own)))) {
            for (uint32_t i = 0; i < nd && !d->bad; i++)
                if (get_str_id(d, &own[i], true) == 0)
                    d->ndict++;
            d->dict = own;
        } else {
            d->bad = true;
        }
    }
    lead_t *L = u->leads[li];
    if (!d->bad && (decode_lead(d, L) || d->r.p != d->r.end))
        d->bad = true;
    if (!d->bad && !u->is_account) {
        /* the lone lead's strings become the unit's dictionary */
        for (uint32_t i = 0; i < d->ndict && !d->bad; i++) {
            uint64_t ref;
            if (dict_ref(u, own[i], &ref))
                d->bad = true;
        }
    }
    free(own);
    if (d->bad) {
        /* forget the half-read lead (it is the last slot) */
        ds_score_lead_free_arrays(L);
        free(L);
        u->t.strs[id].lead = -1;
        u->nleads--;
        return DS_ERR_UNDECODABLE;
    }
    if (L->member)
        u->resident_members++;
    L->set_known = L->member;
    /* a lone lead's unit too: what is kept apart is to be read */
    u->missing += !!(L->ids & IDS_MISSING) + !!(L->mem & IDS_MISSING);
    if (!u->is_account) { /* a lone lead: its clock and count are the unit's */
        u->max_t = L->max_t;
        u->members = u->resident_members;
    }
    if (u->is_account)
        ds_score_contributions(u, li);
    return DS_ERR_OK;
}

ds_err_t ds_score_unit_put_account(ds_score_unit_t *u, const void *p, size_t n) {
    if (!u || !p || !u->is_account)
        return DS_ERR_INVAL;
    rd_t d_ = {.u = u}, *d = &d_;
    ds_reader_init(&d->r, p, n);
    uint8_t ver = 0, bits = 0;
    if (ds_get_u8(&d->r, &ver) || ver != REC_VERSION)
        return DS_ERR_UNDECODABLE;
#define GA(x)                                                                                      \
    do {                                                                                           \
        if (x)                                                                                     \
            return DS_ERR_UNDECODABLE;                                                             \
    } while (0)
    GA(ds_get_f64c(&d->r, &u->tier_confronted));
    GA(ds_get_f64c(&d->r, &u->tier_connector));
    GA(ds_get_f64c(&d->r, &u->consensus_target));
    GA(ds_get_svarint(&d->r, &u->dd_window_ms));
    GA(get_u32(d, &u->members));
    GA(ds_get_u8(&d->r, &bits));
    if (bits & 1)
        GA(ds_get_svarint(&d->r, &u->as_of));
    if (bits & 2)
        GA(ds_get_svarint(&d->r, &u->max_t));
    GA(get_u32(d, &u->acc_n_emitted));
    GA(get_i32(d, &u->em_engaged));
    GA(get_i32(d, &u->em_confronted));
    GA(get_i32(d, &u->em_cons10));
    GA(get_ref(d, true, &u->em_top));
    int64_t sig;
    GA(ds_get_i64(&d->r, &sig));
    u->em_mob_sig = (uint64_t)sig;
    GA(get_u32(d, &u->em_nmob));
    GA(get_i32(d, &u->engaged));
    GA(ds_dedupe_load(&u->ldd, &d->r, u->max_t, false));
    if (d->r.p != d->r.end)
        return DS_ERR_UNDECODABLE;
#undef GA
    u->thr_known = true;
    u->complete = false;
    return DS_ERR_OK;
}

ds_err_t ds_score_unit_put_mobilizer(ds_score_unit_t *u, const char *lead_id, size_t n) {
    if (!u || !lead_id)
        return DS_ERR_INVAL;
    uint32_t id, nchg = u->nmchg;
    if (ds_score_intern(u, lead_id, n, &id) || ds_score_mob_set(u, id, true))
        return DS_ERR_NOMEM;
    u->nmchg = nchg; /* stored: not a change to write */
    return DS_ERR_OK;
}

ds_err_t ds_score_unit_put_sum(ds_score_unit_t *u, uint64_t idx, const void *p, size_t n) {
    if (!u || !p || !u->is_account)
        return DS_ERR_INVAL;
    if (idx >= u->ndict || u->dict[idx] == NOID)
        return DS_ERR_UNDECODABLE; /* the dictionary comes first */
    uint32_t g;
    if (ds_score_agg_slot(u, u->dict[idx], &g))
        return DS_ERR_NOMEM;
    ds_reader_t r;
    ds_reader_init(&r, p, n);
    int64_t hi;
    uint64_t lo, nconf, npos;
    if (ds_get_svarint(&r, &hi) || ds_get_varint(&r, &lo) || ds_get_varint(&r, &nconf) ||
        ds_get_varint(&r, &npos) || nconf > UINT32_MAX || npos > UINT32_MAX || r.p != r.end)
        return DS_ERR_UNDECODABLE;
    u->agg[g].q = (__int128)(((unsigned __int128)(uint64_t)hi << 64) | lo);
    u->agg[g].nconf = (uint32_t)nconf;
    u->agg[g].npos = (uint32_t)npos;
    return DS_ERR_OK;
}

ds_err_t ds_score_unit_put_attendance(ds_score_unit_t *u, const char *content_id,
                                      const char *lead_id, const void *p, size_t n) {
    if (!u || !content_id || !lead_id || !p)
        return DS_ERR_INVAL;
    uint32_t content, lead, ai;
    if (ds_score_sym(u, content_id, strlen(content_id), &content) ||
        ds_score_intern(u, lead_id, strlen(lead_id), &lead) || ds_score_att_slot(u, content, &ai))
        return DS_ERR_NOMEM;
    if (u->atts[ai].loaded)
        return DS_ERR_OK; /* in memory already: newer */
    ds_reader_t r;
    ds_reader_init(&r, p, n);
    uint8_t gc;
    uint64_t cnt;
    if (ds_get_u8(&r, &gc) || gc > 1 || ds_get_varint(&r, &cnt) || cnt > (uint64_t)(r.end - r.p))
        return DS_ERR_UNDECODABLE;
    for (uint64_t i = 0; i < cnt; i++) {
        int64_t t;
        if (ds_get_svarint(&r, &t))
            return DS_ERR_UNDECODABLE;
        attidx_t *a = &u->atts[ai];
        attx_t x = {t, lead};
        if (ds_score_att_insert(&a->all, &a->nall, &a->call, x) ||
            (!gc && ds_score_att_insert(&a->unc, &a->nunc, &a->cunc, x)))
            return DS_ERR_NOMEM;
    }
    return r.p == r.end ? DS_ERR_OK : DS_ERR_UNDECODABLE;
}

ds_err_t ds_score_unit_attendance_done(ds_score_unit_t *u, const char *content_id) {
    if (!u || !content_id)
        return DS_ERR_INVAL;
    uint32_t content, ai;
    if (ds_score_sym(u, content_id, strlen(content_id), &content) ||
        ds_score_att_slot(u, content, &ai))
        return DS_ERR_NOMEM;
    u->atts[ai].loaded = 1;
    return DS_ERR_OK;
}

/* ---- writing what changed ---------------------------------------------------- */

static int cmp_afield(const void *a, const void *b) {
    const afield_t *x = a, *y = b;
    if (x->content != y->content)
        return x->content < y->content ? -1 : 1;
    return x->lead < y->lead ? -1 : x->lead > y->lead;
}

static int cmp_u32p(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

bool ds_score_unit_dirty(const ds_score_unit_t *u) {
    return u->ndl || u->nadirty || u->nmchg || u->nsd || u->legacy;
}

ds_err_t ds_score_unit_write(ds_score_unit_t *u, const ds_score_writer_t *w) {
    if (!u || !w)
        return DS_ERR_INVAL;
    ds_buf_t rec, tmp;
    ds_buf_init(&rec, 0);
    ds_buf_init(&tmp, 0);
    ds_err_t e = DS_ERR_OK;
    ds_score_sort_logs(u);
    for (uint32_t i = 0; i < u->ndl && !e; i++) {
        lead_t *L = u->leads[u->dlist[i]];
        ds_buf_reset(&rec);
        e = u->is_account ? ds_score_encode_lead(u, L, false, &rec)
                          : ds_score_encode_lone(u, L, false, &rec, &tmp);
        if (e)
            break;
        ds_lead_score_t view;
        ds_score_lead_public(u, u->dlist[i], &view);
        L = u->leads[u->dlist[i]];
        if (w->lead)
            w->lead(w->opaque, &view, L->notes, rec.data, rec.len, L->member,
                    L->member && !L->set_known);
        L->set_known = L->member;
        e = ds_score_write_apart(u, L, w);
    }
    /* attendance fields: once each, by (content, lead) */
    if (!e && u->nadirty) {
        qsort(u->adirty, u->nadirty, sizeof(afield_t), cmp_afield);
        for (uint32_t i = 0; i < u->nadirty && !e; i++) {
            const afield_t *f = &u->adirty[i];
            if (i && !cmp_afield(f, &u->adirty[i - 1]))
                continue;
            int32_t li = u->t.strs[f->lead].lead;
            ds_buf_reset(&rec);
            if (li >= 0)
                e = ds_score_encode_field(u->leads[li], f->content, &rec);
            if (!e && w->attendance)
                w->attendance(w->opaque, ds_score_str(u, f->content), ds_score_str(u, f->lead),
                              rec.data, rec.len);
        }
    }
    if (!e && u->nmchg) {
        qsort(u->mchg, u->nmchg, sizeof(uint32_t), cmp_u32p);
        for (uint32_t i = 0; i < u->nmchg; i++) {
            if (i && u->mchg[i] == u->mchg[i - 1])
                continue;
            int32_t li = u->t.strs[u->mchg[i]].lead;
            bool on = li >= 0 && u->leads[li]->c_mob;
            if (w->mobilizer)
                w->mobilizer(w->opaque, ds_score_str(u, u->mchg[i]), on);
        }
    }
    for (uint32_t i = 0; !e && i < u->nsd; i++) {
        aggi_t *g = &u->agg[u->sdirty[i]];
        uint64_t ref;
        ds_buf_reset(&rec);
        e = dict_ref(u, g->insight, &ref);
        if (!e)
            e = ds_score_encode_sum(g, &rec);
        if (!e && w->sum)
            w->sum(w->opaque, (uint32_t)(ref - 1), rec.data, rec.len);
    }
    if (!e && u->is_account) {
        ds_buf_reset(&rec);
        e = ds_score_encode_account(u, &rec); /* may add dictionary entries: before them */
        for (uint32_t i = u->dict_written; !e && i < u->ndict; i++)
            if (w->dict)
                w->dict(w->opaque, i, ds_score_str(u, u->dict[i]));
        if (!e && w->account) {
            ds_account_score_t view;
            if (!ds_score_unit_account_view(u, &view))
                e = DS_ERR_NOMEM;
            else
                w->account(w->opaque, &view, ds_score_account_sig(u), rec.data, rec.len);
        }
    }
    ds_buf_free(&rec);
    ds_buf_free(&tmp);
    if (e)
        return e;
    for (uint32_t i = 0; i < u->ndl; i++)
        u->leads[u->dlist[i]]->dirty = 0;
    u->nidlog = 0;
    if (u->ma)
        u->ma->n = 0;
    for (uint32_t i = 0; i < u->nsd; i++)
        u->agg[u->sdirty[i]].dirty = 0;
    u->ndl = u->nadirty = u->nmchg = u->nsd = 0;
    u->dict_written = u->ndict;
    u->legacy = false;
    u->pub_changed = false;
    return DS_ERR_OK;
}

bool ds_score_unit_is_legacy(const ds_score_unit_t *u) {
    return u->legacy;
}

ds_err_t ds_score_unit_mark_all_dirty(ds_score_unit_t *u, bool *whole) {
    /* a lead's ids or memory kept apart and never read are lost with Redis */
    *whole = (u->complete || !u->is_account) && !u->missing;
    for (uint32_t li = 0; li < u->nleads; li++) {
        lead_t *L = u->leads[li];
        memset(L->notes, 0, sizeof(L->notes));
        L->set_known = 0;
        if (L->ids & IDS_APART)
            L->ids |= IDS_WHOLE;
        if (L->mem & IDS_APART)
            L->mem |= IDS_WHOLE;
        if (ds_score_mark_lead(u, li))
            return DS_ERR_NOMEM;
    }
    /* an attendance field's value is in its lead's record: those of the
     * leads in memory */
    for (uint32_t i = 0; i < u->natts; i++)
        for (uint32_t k = 0; u->atts[i].loaded && k < u->atts[i].nall; k++) {
            uint32_t lead = u->atts[i].all[k].lead;
            if (u->t.strs[lead].lead >= 0 && ds_score_mark_field(u, u->atts[i].content, lead))
                return DS_ERR_NOMEM;
        }
    for (uint32_t i = 0; i < u->nmob; i++) {
        if (u->t.strs[u->mob[i]].lead < 0)
            continue; /* written as it is only with its lead */
        if (ENSURE(u->mchg, u->cmchg, u->nmchg + 1, 4))
            return DS_ERR_NOMEM;
        u->mchg[u->nmchg++] = u->mob[i];
    }
    for (uint32_t k = 0; k < u->nagg; k++)
        if (ds_score_mark_sum(u, k))
            return DS_ERR_NOMEM;
    bool dict_whole = true;
    for (uint32_t i = 0; i < u->ndict; i++)
        dict_whole &= u->dict[i] != NOID;
    if (dict_whole)
        u->dict_written = 0;
    *whole &= dict_whole;
    u->pub_changed = true;
    return DS_ERR_OK;
}
