/*
 * score_unit.c — a scoring unit's memory: its interned strings, its leads,
 * webinar indexes and insight aggregates as slots, the dirty lists, the
 * mobilizer set, creation and destruction.
 *
 * Strings (lead, content, insight, colleague ids) are interned once per
 * unit: a pool plus an open-addressing table of indexes, so the rest of
 * the state holds 32-bit ids.  An interned string also knows its lead's
 * slot, its insight's aggregate, its webinar's index and its dictionary
 * entry, so each is found in O(1) from the id.  Arrays grow by doubling;
 * a lead's arrays keep no capacity (ds_score_grow).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_hash.h"
#include "score_int.h"

/* ---- growth ---------------------------------------------------------------- */

uint32_t ds_score_capn(uint32_t n) {
    if (!n)
        return 0;
    uint32_t c = 1;
    while (c < n && c <= UINT32_MAX / 2)
        c <<= 1;
    return c < n ? n : c;
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

void *ds_score_ensure_cap(void *p, uint32_t *cap, uint32_t need, size_t sz, uint32_t first) {
    uint32_t nc = *cap ? *cap : first;
    while (nc < need) {
        if (nc > UINT32_MAX / 2)
            return NULL;
        nc *= 2;
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

static uint32_t intern_find(const ds_score_unit_t *u, const char *s, size_t len, uint32_t h) {
    if (!u->slot_cap)
        return NOID;
    uint32_t mask = u->slot_cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t v = u->slots[i];
        if (!v)
            return NOID;
        const istr_t *e = &u->strs[v - 1];
        if (e->hash == h && e->len == len && !memcmp(u->pool + e->off, s, len))
            return v - 1;
    }
}

static int slots_rebuild(ds_score_unit_t *u, uint32_t cap) {
    uint32_t *ns = calloc(cap, sizeof(*ns));
    if (!ns)
        return -1;
    for (uint32_t k = 0; k < u->nstrs; k++) {
        uint32_t i = u->strs[k].hash & (cap - 1);
        while (ns[i])
            i = (i + 1) & (cap - 1);
        ns[i] = k + 1;
    }
    free(u->slots);
    u->slots = ns;
    u->slot_cap = cap;
    return 0;
}

int ds_score_intern(ds_score_unit_t *u, const char *s, size_t len, uint32_t *out) {
    if (len > UINT32_MAX / 4)
        return -1;
    uint32_t h = str_hash(s, len);
    uint32_t id = intern_find(u, s, len, h);
    if (id != NOID) {
        *out = id;
        return 0;
    }
    if ((uint64_t)(u->nstrs + 1) * 2 > u->slot_cap &&
        slots_rebuild(u, u->slot_cap ? u->slot_cap * 2 : 16))
        return -1;
    if ((uint64_t)u->pool_len + len + 1 > UINT32_MAX ||
        ENSURE(u->pool, u->pool_cap, (uint64_t)u->pool_len + len + 1, 256) ||
        ENSURE(u->strs, u->cstrs, u->nstrs + 1, 8))
        return -1;
    memcpy(u->pool + u->pool_len, s, len);
    u->pool[u->pool_len + len] = '\0';
    id = u->nstrs++;
    u->strs[id] = (istr_t){u->pool_len, (uint32_t)len, h, -1, -1, -1, -1};
    u->pool_len += (uint32_t)len + 1;
    uint32_t mask = u->slot_cap - 1, i = h & mask;
    while (u->slots[i])
        i = (i + 1) & mask;
    u->slots[i] = id + 1;
    *out = id;
    return 0;
}


uint32_t ds_score_lookup(const ds_score_unit_t *u, const char *s, size_t len) {
    return intern_find(u, s, len, str_hash(s, len));
}



/* ---- leads, indexes, aggregates -------------------------------------------- */

int ds_score_lead_slot(ds_score_unit_t *u, uint32_t id, uint32_t *li) {
    if (u->strs[id].lead >= 0) {
        *li = (uint32_t)u->strs[id].lead;
        return 0;
    }
    if (u->nleads >= INT32_MAX || ENSURE(u->leads, u->cleads, u->nleads + 1, 4))
        return -1;
    lead_t *L = &u->leads[u->nleads];
    memset(L, 0, sizeof(*L));
    L->id = id;
    L->as_of = UNSET_T;
    L->max_t = UNSET_T;
    L->em_tier = DS_TIER_UNAWARE;
    L->c_top = NOID;
    u->strs[id].lead = (int32_t)u->nleads;
    *li = u->nleads++;
    return 0;
}

int ds_score_att_slot(ds_score_unit_t *u, uint32_t content, uint32_t *ai) {
    if (u->strs[content].att >= 0) {
        *ai = (uint32_t)u->strs[content].att;
        return 0;
    }
    if (ENSURE(u->atts, u->catts, u->natts + 1, 4))
        return -1;
    attidx_t *a = &u->atts[u->natts];
    memset(a, 0, sizeof(*a));
    a->content = content;
    a->loaded = u->complete;
    u->strs[content].att = (int32_t)u->natts;
    *ai = u->natts++;
    return 0;
}

int ds_score_agg_slot(ds_score_unit_t *u, uint32_t insight, uint32_t *gi) {
    if (u->strs[insight].agg >= 0) {
        *gi = (uint32_t)u->strs[insight].agg;
        return 0;
    }
    if (ENSURE(u->agg, u->cagg, u->nagg + 1, 4))
        return -1;
    u->agg[u->nagg] = (aggi_t){insight, 0, 0, 0, 0};
    u->strs[insight].agg = (int32_t)u->nagg;
    *gi = u->nagg++;
    return 0;
}

void ds_score_lead_free_arrays(lead_t *L) {
    free(L->ins);
    free(L->rep);
    free(L->bkt);
    free(L->shc);
    free(L->dd);
    free(L->inb);
    free(L->crd);
    free(L->att);
    free(L->gc);
}

int ds_score_dict_assign(ds_score_unit_t *u, uint32_t id) {
    if (u->strs[id].dict >= 0)
        return 0;
    if (u->ndict >= INT32_MAX || ENSURE(u->dict, u->cdict, u->ndict + 1, 16))
        return -1;
    u->dict[u->ndict] = id;
    u->strs[id].dict = (int32_t)u->ndict++;
    return 0;
}

int ds_score_mark_lead(ds_score_unit_t *u, uint32_t li) {
    lead_t *L = &u->leads[li];
    if (L->dirty)
        return 0;
    if (ENSURE(u->dlist, u->cdl, u->ndl + 1, 8))
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
    uint64_t h = ds_fnv64(S(u, id), u->strs[id].len);
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
    ds_buf_free(&sc->text);
    free(sc->touched);
    free(sc->tmp);
    free(sc->mobp);
    free(sc);
}

void ds_score_unit_share_scratch(ds_score_unit_t *u, ds_score_scratch_t *scr) {
    if (!u || !scr || u->scr == scr)
        return;
    if (u->own_scr)
        ds_score_scratch_destroy(u->scr);
    u->scr = scr;
    u->own_scr = false;
}

ds_score_unit_t *ds_score_unit_new(const char *key, bool is_account) {
    if (!key)
        return NULL;
    ds_score_unit_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->scr = ds_score_scratch_new();
    u->own_scr = true;
    u->key = strdup(key);
    if (!u->scr || !u->key) {
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
    u->dd_window_ms = 7 * 86400000LL; /* until the first apply's rules */
    u->max_t = UNSET_T;
    u->as_of = UNSET_T;
    u->em_top = NOID;
    return u;
}

void ds_score_unit_destroy(ds_score_unit_t *u) {
    if (!u)
        return;
    for (uint32_t i = 0; i < u->nleads; i++)
        ds_score_lead_free_arrays(&u->leads[i]);
    for (uint32_t i = 0; i < u->natts; i++) {
        free(u->atts[i].all);
        free(u->atts[i].unc);
    }
    free(u->leads);
    free(u->pool);
    free(u->strs);
    free(u->slots);
    free(u->dict);
    free(u->agg);
    free(u->sdirty);
    free(u->mob);
    free(u->ldd);
    free(u->atts);
    free(u->adirty);
    free(u->mchg);
    free(u->dlist);
    if (u->own_scr)
        ds_score_scratch_destroy(u->scr);
    free(u->key);
    free(u);
}

const char *ds_score_unit_key(const ds_score_unit_t *u) { return u->key; }
bool ds_score_unit_is_account(const ds_score_unit_t *u) { return u->is_account; }
size_t ds_score_unit_lead_count(const ds_score_unit_t *u) { return u->nleads; }

size_t ds_score_unit_mem(const ds_score_unit_t *u) {
    const size_t oh = 16; /* malloc overhead per block, roughly */
    size_t m = sizeof(*u) + oh + strlen(u->key) + 1 + oh;
    m += u->pool_cap + oh + (size_t)u->cstrs * sizeof(istr_t) + oh +
         (size_t)u->slot_cap * sizeof(uint32_t) + oh;
    m += (size_t)u->cleads * sizeof(lead_t) + oh;
    for (uint32_t i = 0; i < u->nleads; i++) {
        const lead_t *L = &u->leads[i];
#define A(f, T) (L->n##f ? ds_score_capn(L->n##f) * sizeof(T) + oh : 0)
        m += A(ins, ins_t) + A(rep, rep_t) + A(bkt, bkt_t) + A(shc, shc_t) + A(dd, dd_t) +
             A(inb, inb_t) + A(crd, crd_t) + A(att, latt_t) + A(gc, uint32_t);
#undef A
    }
    m += (size_t)u->cagg * sizeof(aggi_t) + (size_t)u->cmob * 4 + (size_t)u->cdict * 4 +
         (size_t)u->cldd * sizeof(dd_t) + (size_t)u->catts * sizeof(attidx_t) +
         (size_t)u->cadirty * sizeof(afield_t) + (size_t)u->cmchg * 4 + (size_t)u->cdl * 4 +
         9 * oh;
    for (uint32_t i = 0; i < u->natts; i++)
        m += ((size_t)u->atts[i].call + u->atts[i].cunc) * sizeof(attx_t) + 2 * oh;
    if (u->own_scr) {
        const scratch_t *sc = u->scr;
        m += sizeof(*sc) + sc->text.cap + (size_t)sc->ctouched * 4 + (size_t)sc->ctmp * 4 +
             (size_t)sc->cmobp * sizeof(char *) + 4 * oh;
    }
    return m;
}

