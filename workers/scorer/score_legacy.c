/*
 * score_legacy.c — reading a unit saved whole by earlier versions (state
 * versions 1 and 2, one blob per account holding every lead), so that
 * state already in Redis keeps working: the unit comes out complete, in
 * the per-lead form, with everything dirty, and its next write stores it
 * in the per-lead layout (the caller deletes the blob in that write).
 *
 * What moves where: the account-wide follow records become the
 * colleagues' inbox entries, the follow credits their credited entries
 * (generation 0), attendances and group credits go to their leads and to
 * the content's attendance index, and the account-wide dedupe ids (which
 * do not say which lead they belong to) stay account-wide, live against
 * the account's largest event time, until the window has passed them.
 * The roll-up is settled from the leads; what was last emitted is kept,
 * so the next outputs continue the same numbering.
 *
 * Format (version 2; version 1 has fixed-width numbers and absolute
 * times): "DSSU", version, key, is_account, tier thresholds (confronted,
 * connector), consensus target, dedupe window, max_t, strings, dedupe ids
 * (hash, t), leads (id, n_emitted, as_of, events_applied, confront,
 * connect, em_c10, em_n10, em_m10, em_tier, any_a, insights, repeats,
 * buckets, shares), follow records (colleague, insight, sharer, ts),
 * credits (sharer, colleague, insight), attendances (content, lead index,
 * t), group credits (lead index, content), n emitted, emitted engaged,
 * confronted, consensus×10, top, mobilizers.  Ids are string index + 1.
 */
#include <stdlib.h>
#include <string.h>

#include "ds_hash.h"
#include "score_int.h"

typedef struct lg {
    ds_reader_t r;
    ds_score_unit_t *u;
    int version;
    bool bad;
    /* the blob's strings, by index; mapped to a lead id or to a symbol by
     * the role a reference gives them (NOID: not yet) */
    strtab_t old;
    uint32_t *lmap, *smap;
} lg_t;

#define NOMEM(c)                                                                                   \
    do {                                                                                           \
        if (c) {                                                                                   \
            d->bad = true;                                                                         \
            return -2;                                                                             \
        }                                                                                          \
    } while (0)

static int get_count(lg_t *d, uint32_t *n) {
    RD_GET(ds_get_count(&d->r, n));
    return 0;
}

static int get_id(lg_t *d, uint32_t limit, bool opt_none, uint32_t *id) {
    uint64_t v;
    RD_GET(ds_get_varint(&d->r, &v));
    if (v == 0) {
        RD_CHECK(opt_none);
        *id = NOID;
        return 0;
    }
    RD_CHECK(v - 1 < limit);
    *id = (uint32_t)(v - 1);
    return 0;
}

/* Old string i as a lead id (intern into map lmap) or as a symbol (sym
 * into smap), remembered in map so that each is made once. */
typedef int (*intern_fn)(ds_score_unit_t *u, const char *s, size_t n, uint32_t *id);

static int as_new(lg_t *d, uint32_t i, intern_fn make, uint32_t *map, uint32_t *id) {
    if (i == NOID) {
        *id = NOID;
        return 0;
    }
    if (map[i] == NOID) {
        const istr_t *e = &d->old.strs[i];
        NOMEM(make(d->u, d->old.pool + e->off, e->len, &map[i]));
    }
    *id = map[i];
    return 0;
}

static int as_lead(lg_t *d, uint32_t i, uint32_t *id) {
    return as_new(d, i, ds_score_intern, d->lmap, id);
}

static int as_sym(lg_t *d, uint32_t i, uint32_t *id) {
    return as_new(d, i, ds_score_sym, d->smap, id);
}

/* A reference to an old string, as a lead id or a symbol. */
static int get_lead(lg_t *d, bool opt_none, uint32_t *id) {
    uint32_t i;
    return get_id(d, d->old.n, opt_none, &i) || as_lead(d, i, id);
}

static int get_sym(lg_t *d, bool opt_none, uint32_t *id) {
    uint32_t i;
    return get_id(d, d->old.n, opt_none, &i) || as_sym(d, i, id);
}

static int get_u8max(lg_t *d, uint8_t max, uint8_t *v) {
    RD_GET(ds_get_u8(&d->r, v));
    RD_CHECK(*v <= max);
    return 0;
}

static int get_int(lg_t *d, int64_t *v) {
    RD_GET(d->version == 1 ? ds_get_i64(&d->r, v) : ds_get_svarint(&d->r, v));
    return 0;
}

static int get_time(lg_t *d, int64_t *t) {
    RD_GET(d->version == 1 ? ds_get_i64(&d->r, t) : ds_get_time(&d->r, d->u->max_t, t));
    return 0;
}

static int get_dbl(lg_t *d, double *v) {
    RD_GET(d->version == 1 ? ds_get_f64(&d->r, v) : ds_get_f64c(&d->r, v));
    return 0;
}

static int get_i32(lg_t *d, int32_t *v) {
    int64_t x;
    if (get_int(d, &x))
        return -1;
    RD_CHECK(x >= INT32_MIN && x <= INT32_MAX);
    *v = (int32_t)x;
    return 0;
}

static int lead_body(lg_t *d, lead_t *L) {
    uint32_t n;
    uint64_t v;
    RD_GET(ds_get_varint(&d->r, &v));
    RD_CHECK(v <= UINT32_MAX);
    L->n_emitted = (uint32_t)v;
    if (get_time(d, &L->as_of) || get_int(d, &L->events_applied) || get_dbl(d, &L->confront) ||
        get_dbl(d, &L->connect) || get_i32(d, &L->em_c10) || get_i32(d, &L->em_n10) ||
        get_i32(d, &L->em_m10) || get_u8max(d, DS_TIER__COUNT - 1, &L->em_tier) ||
        get_u8max(d, 1, &L->any_a) || get_count(d, &n))
        return -1;
    NOMEM(n && GROW(L->ins, L->nins, n));
    for (uint32_t i = 0; i < n; i++) {
        ins_t *x = &L->ins[i];
        x->spts = 0;
        x->pos = 0;
        if (get_sym(d, false, &x->insight) || get_u8max(d, 7, &x->amask) ||
            get_u8max(d, 31, &x->smask) || get_dbl(d, &x->pts))
            return -1;
        L->nins++;
    }
    if (get_count(d, &n))
        return -1;
    NOMEM(n && GROW(L->rep, L->nrep, n));
    for (uint32_t i = 0; i < n; i++) {
        rep_t *x = &L->rep[i];
        if (get_sym(d, true, &x->content) || get_u8max(d, DS_MA__COUNT - 1, &x->type) ||
            get_time(d, &x->t))
            return -1;
        L->nrep++;
    }
    if (get_count(d, &n))
        return -1;
    NOMEM(n && GROW(L->bkt, L->nbkt, n));
    for (uint32_t i = 0; i < n; i++) {
        uint8_t kind;
        uint32_t a, b;
        double pts;
        if (get_u8max(d, BK__COUNT - 1, &kind))
            return -1;
        switch (kind) {
        case BK_CONF_INS:
        case BK_CONF_CONTENT:
            if (get_sym(d, kind == BK_CONF_CONTENT, &a) || get_id(d, DS_CS__COUNT, false, &b))
                return -1;
            break;
        case BK_FOLLOW:
            if (get_lead(d, false, &a) || get_sym(d, false, &b))
                return -1;
            break;
        default:
            if (get_sym(d, kind == BK_SHARE, &a) || get_id(d, 1, false, &b))
                return -1;
            break;
        }
        if (get_dbl(d, &pts))
            return -1;
        L->bkt[i] = bk_make(kind, a, b, pts);
        L->nbkt++;
    }
    if (get_count(d, &n))
        return -1;
    NOMEM(n && GROW(L->shc, L->nshc, n));
    for (uint32_t i = 0; i < n; i++) {
        shc_t *x = &L->shc[i];
        if (get_sym(d, true, &x->content) || get_lead(d, false, &x->colleague))
            return -1;
        L->nshc++;
    }
    ds_score_share_counts(L); /* a share bucket's count of colleagues */
    if (L->nrep + L->nshc > DS_MEM_APART_AT) /* moved by its next write, as a record's */
        L->mem = IDS_APART | IDS_WHOLE;
    return 0;
}

/* The old lead index i (in save order) -> the new lead slot. */
static int body(lg_t *d, uint32_t **old_leads) {
    ds_score_unit_t *u = d->u;
    uint8_t is_acct;
    uint32_t n;
    double target;
    int64_t window;
    if (get_u8max(d, 1, &is_acct))
        return -1;
    u->is_account = is_acct;
    if (get_dbl(d, &u->tier_confronted) || get_dbl(d, &u->tier_connector) || get_dbl(d, &target) ||
        get_int(d, &window) || get_int(d, &u->max_t))
        return -1;
    u->consensus_target = target;
    u->dd_window_ms = window;
    u->thr_known = true;
    if (get_count(d, &n))
        return -1;
    NOMEM(!(d->lmap = malloc((n ? n : 1) * sizeof(uint32_t))) ||
          !(d->smap = malloc((n ? n : 1) * sizeof(uint32_t))));
    for (uint32_t i = 0; i < n; i++) {
        char *s = NULL;
        RD_GET(ds_get_str(&d->r, &s));
        RD_CHECK(s);
        uint32_t id;
        int rc = ds_score_tab_intern(&d->old, s, strlen(s), &id);
        free(s);
        NOMEM(rc);
        RD_CHECK(id == i); /* no duplicates */
        d->lmap[i] = d->smap[i] = NOID;
    }
    ds_err_t e = ds_dedupe_load(&u->ldd, &d->r, u->max_t, d->version == 1);
    NOMEM(e == DS_ERR_NOMEM);
    RD_GET(e);
    if (get_count(d, &n))
        return -1;
    NOMEM(!(*old_leads = calloc(n ? n : 1, sizeof(uint32_t))));
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id, li;
        if (get_lead(d, false, &id))
            return -1;
        RD_CHECK(u->t.strs[id].lead < 0);
        NOMEM(ds_score_lead_slot(u, id, &li));
        (*old_leads)[i] = li;
        lead_t *L = u->leads[li];
        L->member = 1;
        u->members++;
        u->resident_members++;
        if (lead_body(d, L))
            return -1;
    }
    uint32_t nl = n;
    /* follow records: to the colleague's inbox */
    if (get_count(d, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t col, insight, sharer, ci;
        int64_t ts;
        if (get_lead(d, false, &col) || get_sym(d, false, &insight) ||
            get_lead(d, false, &sharer) || get_time(d, &ts))
            return -1;
        RD_CHECK(u->t.strs[sharer].lead >= 0);
        NOMEM(ds_score_lead_slot(u, col, &ci));
        lead_t *C = u->leads[ci];
        NOMEM(GROW(C->inb, C->ninb, C->ninb + 1));
        C->inb[C->ninb++] = (inb_t){sharer, insight, 0, ts};
        u->leads[u->t.strs[sharer].lead]->flags |= LF_SHARED;
    }
    /* follow credits: to the colleague's credited list */
    if (get_count(d, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t sharer, col, insight, ci;
        if (get_lead(d, false, &sharer) || get_lead(d, false, &col) || get_sym(d, false, &insight))
            return -1;
        NOMEM(ds_score_lead_slot(u, col, &ci));
        lead_t *C = u->leads[ci];
        NOMEM(GROW(C->crd, C->ncrd, C->ncrd + 1));
        C->crd[C->ncrd++] = (crd_t){sharer, insight, 0};
        if (u->t.strs[sharer].lead >= 0)
            u->leads[u->t.strs[sharer].lead]->flags |= LF_CREDITED;
    }
    /* attendances: to the attendee and the content's index */
    if (get_count(d, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t content, ai;
        uint64_t l;
        int64_t t;
        if (get_sym(d, false, &content))
            return -1;
        RD_GET(ds_get_varint(&d->r, &l));
        RD_CHECK(l < nl);
        if (get_time(d, &t))
            return -1;
        lead_t *L = u->leads[(*old_leads)[l]];
        NOMEM(GROW(L->att, L->natt, L->natt + 1));
        L->att[L->natt++] = (latt_t){content, t};
        NOMEM(ds_score_att_slot(u, content, &ai));
        attidx_t *a = &u->atts[ai];
        NOMEM(ds_score_att_insert(&a->all, &a->nall, &a->call, (attx_t){t, L->id}));
    }
    /* group credits: to the receiver */
    if (get_count(d, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t l;
        uint32_t content;
        RD_GET(ds_get_varint(&d->r, &l));
        RD_CHECK(l < nl);
        if (get_sym(d, false, &content))
            return -1;
        lead_t *L = u->leads[(*old_leads)[l]];
        NOMEM(GROW(L->gc, L->ngc, L->ngc + 1));
        L->gc[L->ngc++] = content;
        L->flags |= LF_GROUP;
    }
    uint64_t v;
    RD_GET(ds_get_varint(&d->r, &v));
    RD_CHECK(v <= UINT32_MAX);
    u->acc_n_emitted = (uint32_t)v;
    if (get_i32(d, &u->em_engaged) || get_i32(d, &u->em_confronted) || get_i32(d, &u->em_cons10) ||
        get_sym(d, true, &u->em_top) || get_count(d, &n))
        return -1;
    u->em_nmob = n;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id;
        if (get_lead(d, false, &id))
            return -1;
        uint64_t h = ds_fnv64(ds_score_str(u, id), ds_score_strlen(u, id));
        u->em_mob_sig += h ? h : 1;
    }
    RD_CHECK(d->r.p == d->r.end);
    return 0;
}

/* The attendances of leads without the group credit of their content
 * are the uncredited ones; every lead and field is to be written. */
static int finish(ds_score_unit_t *u) {
    for (uint32_t k = 0; k < u->natts; k++) {
        attidx_t *a = &u->atts[k];
        a->loaded = 1;
        for (uint32_t i = 0; i < a->nall; i++) {
            const lead_t *L = u->leads[u->t.strs[a->all[i].lead].lead];
            bool gc = false;
            for (uint32_t j = 0; j < L->ngc && !gc; j++)
                gc = L->gc[j] == a->content;
            if (!gc && ds_score_att_insert(&a->unc, &a->nunc, &a->cunc, a->all[i]))
                return -1;
        }
    }
    for (uint32_t li = 0; li < u->nleads; li++) {
        lead_t *L = u->leads[li];
        if (ds_score_settle(u, li) || ds_score_mark_lead(u, li))
            return -1;
        for (uint32_t i = 0; i < L->natt; i++)
            if (ds_score_mark_field(u, L->att[i].content, L->id))
                return -1;
        for (uint32_t i = 0; i < L->ngc; i++)
            if (ds_score_mark_field(u, L->gc[i], L->id))
                return -1;
    }
    return 0;
}

ds_score_unit_t *ds_score_unit_load_legacy(const void *p, size_t n, ds_score_scratch_t *scr,
                                           ds_err_t *err) {
    ds_err_t dummy;
    if (!err)
        err = &dummy;
    *err = DS_ERR_UNDECODABLE;
    if (!p || n < 5 || memcmp(p, "DSSU", 4))
        return NULL;
    int version = ((const unsigned char *)p)[4];
    if (version != 1 && version != 2)
        return NULL;
    lg_t d_ = {.version = version}, *d = &d_;
    ds_reader_init(&d->r, (const unsigned char *)p + 5, n - 5);
    char *key = NULL;
    ds_err_t e = ds_get_str(&d->r, &key);
    if (e || !key) {
        free(key);
        *err = e == DS_ERR_NOMEM ? DS_ERR_NOMEM : DS_ERR_UNDECODABLE;
        return NULL;
    }
    d->u = ds_score_unit_new_in(key, false, scr);
    free(key);
    if (!d->u) {
        *err = DS_ERR_NOMEM;
        return NULL;
    }
    uint32_t *old_leads = NULL;
    int rc = body(d, &old_leads);
    free(old_leads);
    ds_score_tab_free(&d->old);
    free(d->lmap);
    free(d->smap);
    if (!rc && finish(d->u))
        rc = -2;
    if (rc) {
        *err = rc == -2 ? DS_ERR_NOMEM : DS_ERR_UNDECODABLE;
        ds_score_unit_destroy(d->u);
        return NULL;
    }
    d->u->legacy = true;
    *err = DS_ERR_OK;
    return d->u;
}
