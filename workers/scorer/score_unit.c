/*
 * score_unit.c — a scoring unit's memory: its interned strings, its leads,
 * webinar indexes and insight aggregates as slots, the dirty lists, the
 * mobilizer set, creation and destruction.
 *
 * Strings are interned, so the rest of the state holds 32-bit ids: lead
 * and colleague ids in the unit's own table, content and insight ids once
 * per worker in the scratch's symbol table (ids with DS_SYM set), each
 * table a pool plus an open-addressing index.  An interned lead id knows
 * its lead's slot; the unit's id maps (open addressing) find an insight's
 * aggregate, a webinar's attendance index and a symbol's dictionary entry:
 * each in O(1) from the id.  A unit's arrays grow by half
 * (ds_score_ensure_cap); a lead's arrays keep no capacity: it is the class
 * of their count (ds_score_capn: 1, 2, 3, 4, 6, 8, 12, …; ds_score_grow).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_hash.h"
#include "score_int.h"

/* ---- growth ---------------------------------------------------------------- */

/* The classes of a dedupe set (1, 2, 3, 4, 6, 8, 12, …), which lives in a
 * lead as its other arrays do. */
uint32_t ds_score_capn(uint32_t n) {
    return ds_dedupe_cap_class(n);
}

void *ds_score_grow(void *p, uint32_t n, uint64_t need, size_t sz) {
    if (need <= ds_score_capn(n) && p)
        return p;
    if (need > UINT32_MAX)
        return NULL;
    uint64_t c = ds_score_capn((uint32_t)need);
    if (c > SIZE_MAX / sz)
        return NULL;
    return realloc(p, (size_t)c * sz);
}

/* A unit's arrays grow by half (an account holds a few dozen strings and
 * leads: doubling would leave a third of that memory unused on average). */
void *ds_score_ensure_cap(void *p, uint32_t *cap, uint32_t need, size_t sz, uint32_t first) {
    uint32_t nc = *cap ? *cap : first;
    while (nc < need) {
        if (nc > UINT32_MAX / 2)
            return NULL;
        nc += nc / 2 > 0 ? nc / 2 : 1;
    }
    if ((size_t)nc > SIZE_MAX / sz)
        return NULL;
    void *np = realloc(p, (size_t)nc * sz);
    if (!np)
        return NULL;
    *cap = nc;
    return np;
}

/* ---- interning ------------------------------------------------------------ */

static uint32_t str_hash(const char *s, size_t len) {
    uint64_t h = ds_fnv64(s, len);
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t tab_find(const strtab_t *t, const char *s, size_t len, uint32_t h) {
    if (!t->slot_cap)
        return NOID;
    uint32_t mask = t->slot_cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t v = t->slots[i];
        if (!v)
            return NOID;
        const istr_t *e = &t->strs[v - 1];
        if (e->hash == h && e->len == len && !memcmp(t->pool + e->off, s, len))
            return v - 1;
    }
}

static int tab_rebuild(strtab_t *t, uint32_t cap) {
    uint32_t *ns = calloc(cap, sizeof(*ns));
    if (!ns)
        return -1;
    for (uint32_t k = 0; k < t->n; k++) {
        uint32_t i = t->strs[k].hash & (cap - 1);
        while (ns[i])
            i = (i + 1) & (cap - 1);
        ns[i] = k + 1;
    }
    free(t->slots);
    t->slots = ns;
    t->slot_cap = cap;
    return 0;
}

/* The index of s in t (added when new); -1 on OOM.  The index is rebuilt
 * at three quarters full. */
int ds_score_tab_intern(strtab_t *t, const char *s, size_t len, uint32_t *out) {
    if (len > UINT32_MAX / 4)
        return -1;
    uint32_t h = str_hash(s, len);
    uint32_t id = tab_find(t, s, len, h);
    if (id != NOID) {
        *out = id;
        return 0;
    }
    if ((uint64_t)(t->n + 1) * 4 > (uint64_t)t->slot_cap * 3 &&
        tab_rebuild(t, t->slot_cap ? t->slot_cap * 2 : DS_FIRST_SLOTS))
        return -1;
    /* 2^28 at most: a symbol is packed in 29 bits (bkt_t) */
    if ((uint64_t)t->pool_len + len + 1 > UINT32_MAX || t->n + 1 >= (1u << 28) ||
        ENSURE(t->pool, t->pool_cap, (uint64_t)t->pool_len + len + 1, DS_FIRST_TEXT) ||
        ENSURE(t->strs, t->cap, t->n + 1, DS_FIRST_IDS))
        return -1;
    memcpy(t->pool + t->pool_len, s, len);
    t->pool[t->pool_len + len] = '\0';
    id = t->n++;
    t->strs[id] = (istr_t){t->pool_len, (uint32_t)len, h, -1};
    t->pool_len += (uint32_t)len + 1;
    uint32_t mask = t->slot_cap - 1, i = h & mask;
    while (t->slots[i])
        i = (i + 1) & mask;
    t->slots[i] = id + 1;
    *out = id;
    return 0;
}

void ds_score_tab_free(strtab_t *t) {
    free(t->pool);
    free(t->strs);
    free(t->slots);
}

static size_t tab_mem(const strtab_t *t) {
    return t->pool_cap + (size_t)t->cap * sizeof(istr_t) + (size_t)t->slot_cap * sizeof(uint32_t);
}

int ds_score_intern(ds_score_unit_t *u, const char *s, size_t len, uint32_t *out) {
    return ds_score_tab_intern(&u->t, s, len, out);
}

uint32_t ds_score_lookup(const ds_score_unit_t *u, const char *s, size_t len) {
    return tab_find(&u->t, s, len, str_hash(s, len));
}

int ds_score_sym(ds_score_unit_t *u, const char *s, size_t len, uint32_t *out) {
    uint32_t id;
    if (ds_score_tab_intern(&u->scr->syms, s, len, &id))
        return -1;
    *out = id | DS_SYM;
    return 0;
}

uint32_t ds_score_sym_lookup(const ds_score_unit_t *u, const char *s, size_t len) {
    uint32_t id = tab_find(&u->scr->syms, s, len, str_hash(s, len));
    return id == NOID ? NOID : id | DS_SYM;
}

static uint32_t idmap_slot(const idpair_t *v, uint32_t cap, uint32_t key) {
    uint32_t mask = cap - 1;
    for (uint32_t i = (key * 2654435761u) & mask;; i = (i + 1) & mask)
        if (v[i].key == key || v[i].key == NOID)
            return i;
}

int32_t ds_score_idx(const idmap_t *m, uint32_t key) {
    if (!m->cap)
        return -1;
    const idpair_t *p = &m->v[idmap_slot(m->v, m->cap, key)];
    return p->key == key ? p->val : -1;
}

int ds_score_idx_put(idmap_t *m, uint32_t key, int32_t val) {
    if (m->cap) {
        idpair_t *p = &m->v[idmap_slot(m->v, m->cap, key)];
        if (p->key == key) {
            p->val = val;
            return 0;
        }
    }
    if ((uint64_t)(m->n + 1) * 4 > (uint64_t)m->cap * 3) {
        uint32_t cap = m->cap ? m->cap * 2 : DS_FIRST_SLOTS;
        idpair_t *v = malloc((size_t)cap * sizeof(*v));
        if (!v)
            return -1;
        for (uint32_t i = 0; i < cap; i++)
            v[i].key = NOID;
        for (uint32_t i = 0; i < m->cap; i++)
            if (m->v[i].key != NOID)
                v[idmap_slot(v, cap, m->v[i].key)] = m->v[i];
        free(m->v);
        m->v = v;
        m->cap = cap;
    }
    m->v[idmap_slot(m->v, m->cap, key)] = (idpair_t){key, val};
    m->n++;
    return 0;
}

/* ---- leads, indexes, aggregates -------------------------------------------- */

int ds_score_lead_slot(ds_score_unit_t *u, uint32_t id, uint32_t *li) {
    if (u->t.strs[id].lead >= 0) {
        *li = (uint32_t)u->t.strs[id].lead;
        return 0;
    }
    if (u->nleads >= INT32_MAX || ENSURE(u->leads, u->cleads, u->nleads + 1, DS_FIRST_IDS))
        return -1;
    lead_t *L = calloc(1, sizeof(*L));
    if (!L)
        return -1;
    u->leads[u->nleads] = L;
    L->id = id;
    L->as_of = UNSET_T;
    L->max_t = UNSET_T;
    L->em_tier = DS_TIER_UNAWARE;
    L->c_top = NOID;
    L->dd_compact_at = DS_DEDUPE_COMPACT_MIN;
    u->t.strs[id].lead = (int32_t)u->nleads;
    *li = u->nleads++;
    return 0;
}

/* key's place in map, or n (its next element, which the caller fills)
 * when it has none yet: *added then. */
static int place(idmap_t *map, uint32_t key, uint32_t n, uint32_t *at, bool *added) {
    int32_t x = ds_score_idx(map, key);
    *added = x < 0;
    *at = *added ? n : (uint32_t)x;
    return *added ? ds_score_idx_put(map, key, (int32_t)n) : 0;
}

int ds_score_att_slot(ds_score_unit_t *u, uint32_t content, uint32_t *ai) {
    bool added;
    if (place(&u->attmap, content, u->natts, ai, &added))
        return -1;
    if (added) {
        if (ENSURE(u->atts, u->catts, u->natts + 1, 4))
            return -1;
        u->atts[u->natts++] = (attidx_t){.content = content, .loaded = u->complete};
    }
    return 0;
}

int ds_score_agg_slot(ds_score_unit_t *u, uint32_t insight, uint32_t *gi) {
    bool added;
    if (place(&u->aggmap, insight, u->nagg, gi, &added))
        return -1;
    if (added) {
        if (ENSURE(u->agg, u->cagg, u->nagg + 1, 4))
            return -1;
        u->agg[u->nagg++] = (aggi_t){insight, 0, 0, 0, 0};
    }
    return 0;
}

void ds_score_share_count(lead_t *L, uint32_t content, uint32_t count) {
    for (uint32_t i = 0; i < L->nbkt; i++)
        if (bk_kind(&L->bkt[i]) == BK_SHARE && L->bkt[i].a == content) {
            L->bkt[i] = bk_make(BK_SHARE, content, count, L->bkt[i].v);
            return;
        }
}

void ds_score_share_counts(lead_t *L) {
    for (uint32_t i = 0; i < L->nbkt; i++) {
        if (bk_kind(&L->bkt[i]) != BK_SHARE)
            continue;
        uint32_t n = 0;
        for (uint32_t k = 0; k < L->nshc; k++)
            n += L->shc[k].content == L->bkt[i].a;
        L->bkt[i] = bk_make(BK_SHARE, L->bkt[i].a, n, L->bkt[i].v);
    }
}

void ds_score_lead_free_arrays(lead_t *L) {
    free(L->ins);
    free(L->rep);
    free(L->bkt);
    free(L->shc);
    ds_dedupe_free(&L->dd);
    free(L->inb);
    free(L->crd);
    free(L->att);
    free(L->gc);
}

int ds_score_dict_assign(ds_score_unit_t *u, uint32_t id) {
    if (ds_score_idx(&u->dictmap, id) >= 0)
        return 0;
    if (u->ndict >= INT32_MAX || ENSURE(u->dict, u->cdict, u->ndict + 1, DS_FIRST_IDS) ||
        ds_score_idx_put(&u->dictmap, id, (int32_t)u->ndict))
        return -1;
    u->dict[u->ndict++] = id;
    return 0;
}

int ds_score_mark_lead(ds_score_unit_t *u, uint32_t li) {
    lead_t *L = u->leads[li];
    if (L->dirty)
        return 0;
    if (ENSURE(u->dlist, u->cdl, u->ndl + 1, DS_FIRST_IDS))
        return -1;
    u->dlist[u->ndl++] = li;
    L->dirty = 1;
    return 0;
}

int ds_score_mark_sum(ds_score_unit_t *u, uint32_t g) {
    if (u->agg[g].dirty)
        return 0;
    if (ENSURE(u->sdirty, u->csd, u->nsd + 1, 8))
        return -1;
    u->sdirty[u->nsd++] = g;
    u->agg[g].dirty = 1;
    return 0;
}

int ds_score_mark_field(ds_score_unit_t *u, uint32_t content, uint32_t lead) {
    if (ENSURE(u->adirty, u->cadirty, u->nadirty + 1, 8))
        return -1;
    u->adirty[u->nadirty++] = (afield_t){content, lead};
    return 0;
}

/* Mobilizers sorted by text: binary search. */
static uint32_t mob_lb(const ds_score_unit_t *u, const char *s, bool *found) {
    uint32_t lo = 0, hi = u->nmob;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (strcmp(S(u, u->mob[mid]), s) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < u->nmob && !strcmp(S(u, u->mob[lo]), s);
    return lo;
}

uint64_t ds_score_mob_hash(const ds_score_unit_t *u, uint32_t id) {
    uint64_t h = ds_fnv64(S(u, id), ds_score_strlen(u, id));
    return h ? h : 1;
}

int ds_score_mob_set(ds_score_unit_t *u, uint32_t id, bool on) {
    bool found;
    uint32_t pos = mob_lb(u, S(u, id), &found);
    if (found == on)
        return 0;
    if (on) {
        if (ENSURE(u->mob, u->cmob, u->nmob + 1, 4))
            return -1;
        ds_score_insert_at(u->mob, u->nmob++, sizeof(*u->mob), pos, &id);
        u->mob_sig += ds_score_mob_hash(u, id);
    } else {
        ds_score_remove_at(u->mob, &u->nmob, sizeof(*u->mob), pos);
        u->mob_sig -= ds_score_mob_hash(u, id);
    }
    if (ENSURE(u->mchg, u->cmchg, u->nmchg + 1, 4))
        return -1;
    u->mchg[u->nmchg++] = id;
    u->pub_changed = true;
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

ds_score_scratch_t *ds_score_scratch_new(void) {
    scratch_t *sc = calloc(1, sizeof(*sc));
    if (sc)
        ds_buf_init(&sc->text, 0);
    return sc;
}

void ds_score_scratch_destroy(ds_score_scratch_t *sc) {
    if (!sc)
        return;
    ds_score_tab_free(&sc->syms);
    ds_buf_free(&sc->text);
    free(sc->touched);
    free(sc->tmp);
    free(sc->mobp);
    free(sc);
}

ds_score_unit_t *ds_score_unit_new_in(const char *key, bool is_account, ds_score_scratch_t *scr) {
    if (!key)
        return NULL;
    ds_score_unit_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->own_scr = !scr;
    u->scr = scr ? scr : ds_score_scratch_new();
    u->key = strdup(key);
    if (!u->scr || !u->key) {
        if (u->own_scr)
            ds_score_scratch_destroy(u->scr);
        free(u->key);
        free(u);
        return NULL;
    }
    u->is_account = is_account;
    u->complete = true;
    u->tier_confronted = 40;
    u->tier_connector = 30;
    u->consensus_target = 5.4;
    /* until the first apply's rules (a lone lead's unit does not store its
     * window): every id is in it */
    u->dd_window_ms = INT64_MAX;
    u->max_t = UNSET_T;
    u->as_of = UNSET_T;
    u->em_top = NOID;
    return u;
}

ds_score_unit_t *ds_score_unit_new(const char *key, bool is_account) {
    return ds_score_unit_new_in(key, is_account, NULL);
}

void ds_score_unit_destroy(ds_score_unit_t *u) {
    if (!u)
        return;
    for (uint32_t i = 0; i < u->nleads; i++) {
        ds_score_lead_free_arrays(u->leads[i]);
        free(u->leads[i]);
    }
    for (uint32_t i = 0; i < u->natts; i++) {
        free(u->atts[i].all);
        free(u->atts[i].unc);
    }
    free(u->leads);
    ds_score_tab_free(&u->t);
    free(u->aggmap.v);
    free(u->attmap.v);
    free(u->dictmap.v);
    free(u->dict);
    free(u->agg);
    free(u->sdirty);
    free(u->mob);
    ds_dedupe_free(&u->ldd);
    free(u->atts);
    free(u->adirty);
    free(u->mchg);
    free(u->dlist);
    free(u->idlog);
    if (u->ma) {
        free(u->ma->log);
        for (uint32_t i = 0; i < u->ma->nrepix; i++)
            free(u->ma->repix[i].v);
        free(u->ma->repix);
        free(u->ma->repof.v);
        free(u->ma);
    }
    if (u->own_scr)
        ds_score_scratch_destroy(u->scr);
    free(u->key);
    free(u);
}

const char *ds_score_unit_key(const ds_score_unit_t *u) {
    return u->key;
}
bool ds_score_unit_is_account(const ds_score_unit_t *u) {
    return u->is_account;
}
size_t ds_score_unit_lead_count(const ds_score_unit_t *u) {
    return u->nleads;
}

size_t ds_score_unit_mem(const ds_score_unit_t *u) {
    const size_t oh = 16; /* malloc overhead per block, roughly */
    size_t m = sizeof(*u) + oh + strlen(u->key) + 1 + oh;
    m += tab_mem(&u->t) + 3 * oh +
         ((size_t)u->aggmap.cap + u->attmap.cap + u->dictmap.cap) * sizeof(idpair_t) + 3 * oh;
    m += (size_t)u->cleads * sizeof(lead_t *) + oh + (size_t)u->nleads * (sizeof(lead_t) + oh);
    for (uint32_t i = 0; i < u->nleads; i++) {
        const lead_t *L = u->leads[i];
#define A(f, T) (L->n##f ? ds_score_capn(L->n##f) * sizeof(T) + oh : 0)
        m += A(ins, ins_t) + A(rep, rep_t) + A(bkt, bkt_t) + A(shc, shc_t) +
             (L->dd.e ? ds_dedupe_mem(&L->dd) + oh : 0) + A(inb, inb_t) + A(crd, crd_t) +
             A(att, latt_t) + A(gc, uint32_t);
#undef A
    }
    m += (size_t)u->cagg * sizeof(aggi_t) + (size_t)u->cmob * 4 + (size_t)u->cdict * 4 +
         ds_dedupe_mem(&u->ldd) + (size_t)u->catts * sizeof(attidx_t) +
         (size_t)u->cadirty * sizeof(afield_t) + (size_t)u->cmchg * 4 + (size_t)u->cdl * 4 +
         (size_t)u->cidlog * sizeof(idlog_t) + 10 * oh;
    if (u->ma) {
        const memapart_t *ma = u->ma;
        m += sizeof(*ma) + (size_t)ma->cap * sizeof(memlog_t) +
             (size_t)ma->repof.cap * sizeof(idpair_t) + (size_t)ma->crepix * sizeof(idmap_t) +
             4 * oh;
        for (uint32_t i = 0; i < ma->nrepix; i++)
            m += (size_t)ma->repix[i].cap * sizeof(idpair_t) + oh;
    }
    for (uint32_t i = 0; i < u->natts; i++)
        m += ((size_t)u->atts[i].call + u->atts[i].cunc) * sizeof(attx_t) + 2 * oh;
    if (u->own_scr) {
        const scratch_t *sc = u->scr;
        m += sizeof(*sc) + sc->text.cap + (size_t)sc->ctouched * 4 + (size_t)sc->ctmp * 4 +
             (size_t)sc->cmobp * sizeof(char *) + 4 * oh;
    }
    return m;
}
