/*
 * score.c — the lead-scoring rules and the account roll-up, pure C.
 *
 * Layout.  A unit interns every id it meets (lead, content, insight,
 * colleague) once: a string pool plus an open-addressing table of
 * indexes, so the rest of the state holds 32-bit ids.  Each lead is a
 * record of its own (score_int.h): totals, per-insight records (points,
 * A-state and stage masks), repeat-window records per (content, type),
 * reason buckets, counted share pairs, its recent event ids, its inbox of
 * shares, the follow credits given for it, its webinar attendances and
 * group credits.  The account holds aggregates only.
 *
 * The roll-up is incremental.  Each lead remembers what it adds to the
 * account: per insight record a fixed-point copy of its points (q), and
 * whether it is engaged, confronted on which insight, a mobilizer.  After
 * an event, each lead it touched is "settled": the differences go into
 * the account's per-insight sums (__int128, exact and independent of the
 * order of updates), its per-insight confronted counts, its engaged count
 * and its mobilizer set.  The account's top insight is then an argmax over
 * its insights, the confronted figure the count of that insight.  So an
 * event costs what it touches plus the account's insights; a change of
 * tier thresholds (a rules reload) settles every lead of the account once.
 *
 * Invariants.
 * - Every per-lead accumulator (confront, connect, per-insight points,
 *   reason buckets) is a value "as of" lead->as_of; when as_of moves
 *   forward they are all rescaled by 2^(-dt/half_life) together.  A late
 *   contribution is decayed to as_of.
 * - Events that change nothing (duplicates, repeats, unclassified content)
 *   touch nothing but events_applied/dirty; as_of moves only with a
 *   positive contribution.
 * - Dedupe: an event id belongs to one lead, which keeps it (64-bit FNV-1a
 *   of event_id -> occurred_at in an array sorted by hash); a hit is a
 *   duplicate only while (the account's largest event time - its t) is
 *   within the window, so pruning never changes answers.
 * - For every insight g of the account: agg[g].q = sum of ins.q over the
 *   records of g of all its leads, and agg[g].nconf = the number of leads
 *   whose c_top is g; engaged = sum of c_engaged; mob = {leads with c_mob}.
 *   Leads not in memory keep their share in these sums as stored: a lead
 *   is loaded with the contributions its record implies under the
 *   thresholds the account's record was computed with.
 * - An account's as_of is the largest as_of any of its leads has had (a
 *   late UNSUBSCRIBE that sets a lead's as_of back does not lower it).
 * - Everything is deterministic given the event order.
 */
#include "score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ds_hash.h"
#include "score_int.h"

#define S(u, id) ds_score_str((u), (id))

/* ---- small helpers -------------------------------------------------------- */

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

static void insert_at(void *base, uint32_t n, size_t sz, uint32_t pos, const void *rec) {
    unsigned char *b = base;
    memmove(b + (size_t)(pos + 1) * sz, b + (size_t)pos * sz, (size_t)(n - pos) * sz);
    memcpy(b + (size_t)pos * sz, rec, sz);
}

static void remove_at(void *base, uint32_t *n, size_t sz, uint32_t pos) {
    unsigned char *b = base;
    memmove(b + (size_t)pos * sz, b + (size_t)(pos + 1) * sz, (size_t)(*n - pos - 1) * sz);
    (*n)--;
}

/* a - b, saturated (event times come from the network). */
static int64_t tdiff(int64_t a, int64_t b) {
    int64_t d;
    if (__builtin_sub_overflow(a, b, &d))
        return a > b ? INT64_MAX : INT64_MIN;
    return d;
}

static int64_t tabs(int64_t d) { return d == INT64_MIN ? INT64_MAX : (d < 0 ? -d : d); }

static int64_t tadd(int64_t a, int64_t b) {
    int64_t s;
    if (__builtin_add_overflow(a, b, &s))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return s;
}

static int64_t days_ms(double days) {
    if (!(days > 0))
        return 0;
    double ms = days * DS_DAY_MS;
    if (ms >= 9.0e18)
        return INT64_MAX;
    return (int64_t)llround(ms);
}

static double half_life_ms(const ds_rules_t *r) { return r->scoring.half_life_days * DS_DAY_MS; }

/* 2^(-dt/h); a non-positive half-life means no decay. */
static double decay(int64_t dt, double h) {
    if (!(h > 0) || dt <= 0)
        return 1.0;
    return exp2(-(double)dt / h);
}

static int32_t r10(double x) {
    double v = round(x * 10.0);
    if (v > 2.0e9)
        return INT32_MAX;
    if (v < -2.0e9)
        return INT32_MIN;
    return (int32_t)v;
}

__int128 ds_score_q(double pts) {
    /* pts * 2^32 rounded; beyond 2^53 a double is an integer, and up to
     * 2^126 it splits exactly into 64-bit halves.  Past that (no rules
     * and events make such points) it saturates. */
    double x = ldexp(pts, 32);
    if (x != x)
        return 0;
    double ax = fabs(x);
    if (ax < 9.0e18)
        return (__int128)llround(x);
    if (ax >= 8.5e37)
        return x > 0 ? ((__int128)1 << 126) : -((__int128)1 << 126);
    double hi = floor(ldexp(ax, -64));
    double lo = ax - ldexp(hi, 64); /* exact: both are integers */
    __int128 v = ((__int128)(uint64_t)hi << 64) + (__int128)(uint64_t)lo;
    return x > 0 ? v : -v;
}

static const int64_t DAY_MS_I = 86400000;

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

static int intern_z(ds_score_unit_t *u, const char *s, uint32_t *out) {
    return ds_score_intern(u, s, strlen(s), out);
}

uint32_t ds_score_lookup(const ds_score_unit_t *u, const char *s, size_t len) {
    return intern_find(u, s, len, str_hash(s, len));
}

static uint32_t lookup_z(const ds_score_unit_t *u, const char *s) {
    return s ? ds_score_lookup(u, s, strlen(s)) : NOID;
}

/* The resident lead of a string, or NULL. */
static const lead_t *resident(const ds_score_unit_t *u, uint32_t id) {
    if (id == NOID || u->strs[id].lead < 0)
        return NULL;
    return &u->leads[u->strs[id].lead];
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
    u->agg[u->nagg] = (aggi_t){insight, 0, 0, 0};
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

static uint64_t mob_hash(const ds_score_unit_t *u, uint32_t id) {
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
        insert_at(u->mob, u->nmob++, sizeof(*u->mob), pos, &id);
        u->mob_sig += mob_hash(u, id);
    } else {
        remove_at(u->mob, &u->nmob, sizeof(*u->mob), pos);
        u->mob_sig -= mob_hash(u, id);
    }
    if (ENSURE(u->mchg, u->cmchg, u->nmchg + 1, 4))
        return -1;
    u->mchg[u->nmchg++] = id;
    u->pub_changed = true;
    return 0;
}

/* Move the lead's as_of forward to t, rescaling every accumulator. */
static void lead_move(lead_t *L, int64_t t, double h) {
    if (L->as_of == UNSET_T) {
        L->as_of = t;
        return;
    }
    if (t <= L->as_of)
        return;
    double f = decay(tdiff(t, L->as_of), h);
    L->confront *= f;
    L->connect *= f;
    for (uint32_t i = 0; i < L->nins; i++)
        L->ins[i].pts *= f;
    for (uint32_t i = 0; i < L->nbkt; i++)
        L->bkt[i].v *= f;
    L->as_of = t;
}

static int bucket_add(lead_t *L, uint8_t kind, uint32_t a, uint32_t b, double v) {
    for (uint32_t i = 0; i < L->nbkt; i++) {
        bkt_t *k = &L->bkt[i];
        if (k->kind == kind && k->a == a && k->b == b) {
            k->v += v;
            return 0;
        }
    }
    if (GROW(L->bkt, L->nbkt, L->nbkt + 1))
        return -1;
    L->bkt[L->nbkt++] = (bkt_t){a, b, kind, v};
    return 0;
}

/* Add p points made at t (confront when `confront`, else connect) to the
 * lead, to insight record `ins_idx` (NOID: none) and to a reason bucket. */
static int lead_add(lead_t *L, const ds_rules_t *r, int64_t t, double p, bool confront,
                    uint32_t ins_idx, uint8_t kind, uint32_t a, uint32_t b) {
    if (!(p > 0))
        return 0;
    double h = half_life_ms(r);
    lead_move(L, t, h);
    double v = t >= L->as_of ? p : p * decay(tdiff(L->as_of, t), h);
    if (confront)
        L->confront += v;
    else
        L->connect += v;
    if (ins_idx != NOID)
        L->ins[ins_idx].pts += v;
    return bucket_add(L, kind, a, b, v);
}

static int touch(ds_score_unit_t *u, uint32_t li) {
    lead_t *L = &u->leads[li];
    if (ds_score_mark_lead(u, li))
        return -1;
    if (L->touched)
        return 0;
    scratch_t *sc = u->scr;
    if (ENSURE(sc->touched, sc->ctouched, sc->ntouched + 1, 8))
        return -1;
    sc->touched[sc->ntouched++] = li;
    L->touched = 1;
    return 0;
}

/* ---- lead view ------------------------------------------------------------ */

typedef struct lview {
    double c, n, m;
    int tier;
    uint32_t top;
    int furthest;
} lview_t;

static int tier_of(const ds_score_unit_t *u, double c, double n) {
    if (c >= u->tier_confronted && n >= u->tier_connector)
        return DS_TIER_MOBILIZER;
    if (c >= u->tier_confronted)
        return DS_TIER_CONFRONTED;
    if (n >= u->tier_connector)
        return DS_TIER_CONNECTOR;
    if (c > 0 || n > 0)
        return DS_TIER_LEARNING;
    return DS_TIER_UNAWARE;
}

static void lead_view(const ds_score_unit_t *u, const lead_t *L, lview_t *v) {
    v->c = L->confront > 100 ? 100 : (L->confront > 0 ? L->confront : 0);
    v->n = L->connect > 100 ? 100 : (L->connect > 0 ? L->connect : 0);
    v->m = sqrt(v->c * v->n);
    v->tier = tier_of(u, v->c, v->n);
    v->top = NOID;
    v->furthest = DS_NONE;
    const ins_t *best = NULL;
    for (uint32_t i = 0; i < L->nins; i++) {
        const ins_t *x = &L->ins[i];
        if (!(x->pts > 0))
            continue;
        if (!best || x->pts > best->pts ||
            (x->pts == best->pts && strcmp(S(u, x->insight), S(u, best->insight)) < 0))
            best = x;
    }
    if (best) {
        v->top = best->insight;
        for (int s = DS_CS__COUNT - 1; s >= 0; s--)
            if (best->smask & (1u << s)) {
                v->furthest = s;
                break;
            }
    }
}

/* ---- the roll-up ------------------------------------------------------------ */

int ds_score_settle(ds_score_unit_t *u, uint32_t li) {
    lead_t *L = &u->leads[li];
    if (!u->is_account)
        return 0;
    for (uint32_t i = 0; i < L->nins; i++) {
        ins_t *x = &L->ins[i];
        __int128 q = ds_score_q(x->pts);
        uint8_t pos = x->pts > 0;
        if (q == x->q && pos == x->pos)
            continue;
        uint32_t g;
        if (ds_score_agg_slot(u, x->insight, &g))
            return -1;
        u->agg[g].q += q - x->q;
        u->agg[g].npos += (uint32_t)pos - x->pos;
        x->q = q;
        x->pos = pos;
    }
    lview_t v;
    lead_view(u, L, &v);
    uint8_t engaged = v.c > 0 || v.n > 0;
    if (engaged != L->c_engaged) {
        u->engaged += engaged ? 1 : -1;
        L->c_engaged = engaged;
        u->pub_changed = true;
    }
    uint32_t top = (v.c >= u->tier_confronted && v.top != NOID) ? v.top : NOID;
    if (top != L->c_top) {
        uint32_t g;
        if (L->c_top != NOID && u->strs[L->c_top].agg >= 0)
            u->agg[u->strs[L->c_top].agg].nconf--;
        if (top != NOID) {
            if (ds_score_agg_slot(u, top, &g))
                return -1;
            u->agg[g].nconf++;
        }
        L->c_top = top;
        u->pub_changed = true;
    }
    uint8_t mob = v.tier == DS_TIER_MOBILIZER;
    if (mob != L->c_mob) {
        if (ds_score_mob_set(u, L->id, mob))
            return -1;
        L->c_mob = mob;
    }
    if (L->as_of != UNSET_T && (u->as_of == UNSET_T || L->as_of > u->as_of))
        u->as_of = L->as_of;
    return 0;
}

void ds_score_contributions(ds_score_unit_t *u, uint32_t li) {
    lead_t *L = &u->leads[li];
    for (uint32_t i = 0; i < L->nins; i++) {
        L->ins[i].q = ds_score_q(L->ins[i].pts);
        L->ins[i].pos = L->ins[i].pts > 0;
    }
    lview_t v;
    lead_view(u, L, &v);
    L->c_engaged = v.c > 0 || v.n > 0;
    L->c_mob = v.tier == DS_TIER_MOBILIZER;
    L->c_top = (v.c >= u->tier_confronted && v.top != NOID) ? v.top : NOID;
}

/* The account's figures from its aggregates. */
typedef struct aview {
    int32_t engaged, confronted, cons10;
    uint32_t top;
} aview_t;

static void account_figures(const ds_score_unit_t *u, aview_t *a) {
    const aggi_t *best = NULL;
    for (uint32_t k = 0; k < u->nagg; k++) {
        const aggi_t *x = &u->agg[k];
        if (!x->npos)
            continue;
        if (!best || x->q > best->q ||
            (x->q == best->q && strcmp(S(u, x->insight), S(u, best->insight)) < 0))
            best = x;
    }
    a->top = best ? best->insight : NOID;
    a->engaged = u->engaged;
    a->confronted = best ? (int32_t)best->nconf : 0;
    double cons;
    if (u->consensus_target > 0) {
        double q = (double)a->confronted / u->consensus_target;
        cons = 100.0 * (q < 1 ? q : 1);
    } else {
        cons = a->confronted > 0 ? 100.0 : 0.0;
    }
    a->cons10 = r10(cons);
}

static int account_fill(const ds_score_unit_t *u, const aview_t *a, ds_account_score_t *out) {
    scratch_t *sc = u->scr;
    if (ENSURE(sc->mobp, sc->cmobp, u->nmob + 1, 8))
        return -1;
    for (uint32_t i = 0; i < u->nmob; i++)
        sc->mobp[i] = S(u, u->mob[i]);
    memset(out, 0, sizeof(*out));
    out->account_id = u->key;
    out->engaged_stakeholders = a->engaged;
    out->confronted_stakeholders = a->confronted;
    out->consensus = a->cons10 / 10.0;
    out->top_insight = a->top == NOID ? NULL : S(u, a->top);
    out->mobilizers = sc->mobp;
    out->mobilizers_count = u->nmob;
    out->as_of = u->as_of == UNSET_T ? 0 : u->as_of;
    return 0;
}

/* Whether the stored figures were computed under r's tier thresholds;
 * when not and every lead is in memory, adopt r's and settle them all. */
static bool thresholds_differ(const ds_score_unit_t *u, const ds_rules_t *r) {
    return u->tier_confronted != r->scoring.tier_confronted ||
           u->tier_connector != r->scoring.tier_connector;
}

static bool all_resident(const ds_score_unit_t *u) {
    return u->complete || u->resident_members >= u->members;
}

static int adopt_thresholds(ds_score_unit_t *u, const ds_rules_t *r) {
    u->tier_confronted = r->scoring.tier_confronted;
    u->tier_connector = r->scoring.tier_connector;
    u->thr_known = true;
    for (uint32_t li = 0; li < u->nleads; li++)
        if (ds_score_settle(u, li))
            return -1;
    return 0;
}

/* ---- reasons -------------------------------------------------------------- */

static const char *const stage_words[DS_CS__COUNT] = {"Spark", "Introduce", "Confront",
                                                      "Solution (Build-B)", "Spec"};

static bool put_s(ds_buf_t *b, const char *s) { return ds_buf_append(b, s, strlen(s)) == 0; }

static bool put_u(ds_buf_t *b, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return ds_buf_append(b, tmp + sizeof(tmp) - n, n) == 0;
}

/* One decimal, rounded half away from zero (fast path for reasons). */
static bool put_1d(ds_buf_t *b, double v) {
    double x = round(v * 10.0);
    bool ok = true;
    if (x < 0) {
        ok = put_s(b, "-");
        x = -x;
    }
    if (!(x < 1.0e18))
        return ok && put_s(b, "inf");
    uint64_t n = (uint64_t)x;
    char d[3] = {'.', (char)('0' + n % 10), 0};
    return ok && put_u(b, n / 10) && put_s(b, d);
}

static uint32_t share_count(const lead_t *L, uint32_t content) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < L->nshc; i++)
        n += L->shc[i].content == content;
    return n;
}

static const char *opt(const ds_score_unit_t *u, uint32_t id, const char *none) {
    return id == NOID ? none : S(u, id);
}

/* Append the words of one bucket (NUL-terminated); false on OOM. */
static bool bucket_text(const ds_score_unit_t *u, const lead_t *L, const bkt_t *k, ds_buf_t *b) {
    bool ok = true;
    switch (k->kind) {
    case BK_CONF_INS:
        ok = put_s(b, stage_words[k->b]) && put_s(b, " content on insight ") &&
             put_s(b, S(u, k->a));
        break;
    case BK_CONF_CONTENT:
        ok = put_s(b, stage_words[k->b]) && put_s(b, " content ") &&
             put_s(b, opt(u, k->a, "(unnamed)")) && put_s(b, " (no insight)");
        break;
    case BK_SHARE: {
        uint32_t n = share_count(L, k->a);
        ok = put_s(b, "Shared ") && put_s(b, opt(u, k->a, "content")) && put_s(b, " with ") &&
             put_u(b, n) && put_s(b, n == 1 ? " colleague" : " colleagues");
        break;
    }
    case BK_FOLLOW:
        ok = put_s(b, "Colleague ") && put_s(b, S(u, k->a)) && put_s(b, " engaged insight ") &&
             put_s(b, S(u, k->b)) && put_s(b, " after a share");
        break;
    default:
        ok = put_s(b, "Attended webinar ") && put_s(b, S(u, k->a)) &&
             put_s(b, " with colleagues");
        break;
    }
    return ok && put_s(b, ": ") && put_1d(b, k->v) && put_s(b, " pts") &&
           ds_buf_append(b, "", 1) == 0;
}

/* Order of reasons: larger value first, then by text. */
static int bucket_cmp(const ds_score_unit_t *u, const lead_t *L, const bkt_t *x, const bkt_t *y) {
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    ds_buf_t *b = &u->scr->text;
    size_t base = b->len;
    if (!bucket_text(u, L, x, b))
        return 0;
    size_t oy = b->len;
    int c = 0;
    if (bucket_text(u, L, y, b))
        c = strcmp((const char *)b->data + base, (const char *)b->data + oy);
    b->len = base;
    return c;
}

/* Fill out->reasons with the top buckets; texts go to scratch text. */
static void reasons_fill(const ds_score_unit_t *u, const lead_t *L, ds_lead_score_t *out) {
    scratch_t *sc = u->scr;
    size_t n = 0;
    for (uint32_t i = 0; i < L->nbkt; i++) {
        const bkt_t *k = &L->bkt[i];
        if (r10(k->v) < 1) /* would read "0.0 pts" */
            continue;
        size_t pos = n;
        while (pos > 0 && bucket_cmp(u, L, k, &L->bkt[sc->cand[pos - 1]]) < 0)
            pos--;
        if (pos >= DS_MAX_REASONS)
            continue;
        size_t last = n < DS_MAX_REASONS ? n : DS_MAX_REASONS - 1;
        for (size_t j = last; j > pos; j--)
            sc->cand[j] = sc->cand[j - 1];
        sc->cand[pos] = i;
        if (n < DS_MAX_REASONS)
            n++;
    }
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        sc->roff[i] = sc->text.len;
        if (!bucket_text(u, L, &L->bkt[sc->cand[i]], &sc->text))
            break;
        ok++;
    }
    for (size_t i = 0; i < ok; i++)
        out->reasons[i] = (const char *)sc->text.data + sc->roff[i];
    out->reasons_count = ok;
}

/* Build the public record of a lead.  `n_out` > 0: output id "<lead>:<n>". */
static void lead_record(const ds_score_unit_t *u, const lead_t *L, const lview_t *v, int prev_tier,
                        uint32_t n_out, ds_lead_score_t *out) {
    scratch_t *sc = u->scr;
    memset(out, 0, sizeof(*out));
    ds_buf_reset(&sc->text);
    bool has_oid = false;
    if (n_out) {
        has_oid = put_s(&sc->text, S(u, L->id)) && put_s(&sc->text, ":") &&
                  put_u(&sc->text, n_out) && ds_buf_append(&sc->text, "", 1) == 0;
        if (!has_oid)
            ds_buf_reset(&sc->text);
    }
    reasons_fill(u, L, out);
    out->output_id = has_oid ? (const char *)sc->text.data : NULL;
    out->lead_id = S(u, L->id);
    out->account_id = u->is_account ? u->key : NULL;
    out->confront = v->c;
    out->connect = v->n;
    out->mobilizer = v->m;
    out->tier = v->tier;
    out->previous_tier = prev_tier;
    out->top_insight = v->top == NOID ? NULL : S(u, v->top);
    out->furthest_stage = v->furthest;
    out->as_of = L->as_of == UNSET_T ? 0 : L->as_of;
    out->events_applied = L->events_applied;
}

void ds_score_lead_public(const ds_score_unit_t *u, uint32_t li, ds_lead_score_t *out) {
    const lead_t *L = &u->leads[li];
    lview_t v;
    lead_view(u, L, &v);
    lead_record(u, L, &v, L->em_tier, 0, out);
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
    u->dd_window_ms = days_ms(7);
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

/* ---- attendance indexes ----------------------------------------------------- */

static int cmp_attx(const attx_t *x, const attx_t *y) {
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->lead < y->lead ? -1 : x->lead > y->lead;
}

static uint32_t attx_lb(const attx_t *a, uint32_t n, const attx_t *key) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cmp_attx(&a[mid], key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ds_score_att_insert(attx_t **arr, uint32_t *n, uint32_t *cap, attx_t x) {
    uint32_t pos = attx_lb(*arr, *n, &x);
    if (pos < *n && !cmp_attx(&(*arr)[pos], &x))
        return 0;
    if (ENSURE(*arr, *cap, *n + 1, 4))
        return -1;
    insert_at(*arr, (*n)++, sizeof(attx_t), pos, &x);
    return 0;
}

static void att_remove(attx_t *arr, uint32_t *n, attx_t x) {
    uint32_t pos = attx_lb(arr, *n, &x);
    if (pos < *n && !cmp_attx(&arr[pos], &x))
        remove_at(arr, n, sizeof(attx_t), pos);
}

static bool lead_has_gc(const lead_t *L, uint32_t content) {
    for (uint32_t i = 0; i < L->ngc; i++)
        if (L->gc[i] == content)
            return true;
    return false;
}

/* Remove every uncredited attendance of lead L at content index a. */
static void unc_drop_lead(attidx_t *a, const lead_t *L) {
    for (uint32_t i = 0; i < L->natt; i++)
        if (L->att[i].content == a->content)
            att_remove(a->unc, &a->nunc, (attx_t){L->att[i].t, L->id});
}

/* ---- dedupe --------------------------------------------------------------- */

static uint32_t dd_find(const dd_t *dd, uint32_t n, uint64_t h) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (dd[mid].h < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool dd_live(int64_t max_t, int64_t window, int64_t t) { return tdiff(max_t, t) <= window; }

/* Make room for one more entry of L: drop the ones no longer live, and
 * grow when that leaves the array more than 3/4 full. */
static int dd_reserve(lead_t *L, int64_t max_t, int64_t window) {
    uint32_t cap = ds_score_capn(L->ndd);
    if (L->ndd < cap)
        return 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < L->ndd; i++)
        if (dd_live(max_t, window, L->dd[i].t))
            L->dd[k++] = L->dd[i];
    L->ndd = k;
    if (cap && (uint64_t)k * 4 <= (uint64_t)cap * 3)
        return GROW(L->dd, k, (uint64_t)k + 1);
    return GROW(L->dd, k, (uint64_t)cap + 1);
}

/* ---- apply: the rules ----------------------------------------------------- */

/* Follow credit: lead li (a colleague) engaged `insight` at t: credit the
 * sharers of its inbox whose share of that insight is within the window. */
static int follow_credit(ds_score_unit_t *u, const ds_rules_t *r, uint32_t li, uint32_t insight,
                         int64_t t) {
    int64_t win = days_ms(r->scoring.follow_window_days);
    for (uint32_t i = 0; i < u->leads[li].ninb; i++) {
        lead_t *C = &u->leads[li];
        inb_t f = C->inb[i];
        if (f.insight != insight || f.sharer == C->id)
            continue;
        int32_t si = u->strs[f.sharer].lead;
        if (si < 0)
            return -2; /* not in memory: ds_score_unit_needs() names it */
        if (u->leads[si].gen != f.gen)
            continue; /* a share its sharer's unsubscribe cleared */
        int64_t d = tdiff(t, f.ts);
        if (d < 0 || d > win)
            continue;
        bool done = false;
        for (uint32_t k = 0; k < C->ncrd && !done; k++)
            done = C->crd[k].sharer == f.sharer && C->crd[k].insight == insight &&
                   C->crd[k].gen == u->leads[si].gen;
        if (done)
            continue;
        if (GROW(C->crd, C->ncrd, C->ncrd + 1))
            return -1;
        C->crd[C->ncrd++] = (crd_t){f.sharer, insight, u->leads[si].gen};
        lead_t *Sh = &u->leads[si];
        Sh->flags |= LF_CREDITED;
        if (lead_add(Sh, r, t, r->scoring.follow_points, false, NOID, BK_FOLLOW, C->id, insight) ||
            touch(u, (uint32_t)si))
            return -1;
    }
    return 0;
}

static int group_give(ds_score_unit_t *u, const ds_rules_t *r, uint32_t li, uint32_t content,
                      int64_t t) {
    lead_t *L = &u->leads[li];
    if (lead_has_gc(L, content))
        return 0;
    if (GROW(L->gc, L->ngc, L->ngc + 1))
        return -1;
    L->gc[L->ngc++] = content;
    L->flags |= LF_GROUP;
    if (ds_score_mark_field(u, content, L->id))
        return -1;
    return lead_add(L, r, t, r->scoring.group_points, false, NOID, BK_GROUP, content, 0) ||
           touch(u, li);
}

/* A counted webinar attendance of lead li at t: both it and the other
 * attendees within a day get the group credit (once per lead and
 * content).  Visits the attendances within a day that have not been
 * credited, and finds "another attendee within a day" by time. */
static int group_credit(ds_score_unit_t *u, const ds_rules_t *r, uint32_t li, uint32_t content,
                        int64_t t) {
    uint32_t ai;
    if (ds_score_att_slot(u, content, &ai))
        return -1;
    if (!u->atts[ai].loaded)
        return -2;
    lead_t *L = &u->leads[li];
    uint32_t me = L->id;
    if (GROW(L->att, L->natt, L->natt + 1))
        return -1;
    L->att[L->natt++] = (latt_t){content, t};
    attidx_t *a = &u->atts[ai];
    if (ds_score_att_insert(&a->all, &a->nall, &a->call, (attx_t){t, me}) ||
        ds_score_mark_field(u, content, me))
        return -1;
    int64_t lo_t = tadd(t, -DAY_MS_I), hi_t = tadd(t, DAY_MS_I);
    bool any = false;
    for (uint32_t i = attx_lb(a->all, a->nall, &(attx_t){lo_t, 0}); i < a->nall && a->all[i].t <= hi_t;
         i++)
        if (a->all[i].lead != me) {
            any = true;
            break;
        }
    if (!any) {
        if (!lead_has_gc(L, content))
            return ds_score_att_insert(&a->unc, &a->nunc, &a->cunc, (attx_t){t, me});
        return 0;
    }
    /* credit the others not yet credited (collected first: crediting
     * removes them from unc) */
    scratch_t *sc = u->scr;
    uint32_t n = 0;
    for (uint32_t i = attx_lb(a->unc, a->nunc, &(attx_t){lo_t, 0}); i < a->nunc && a->unc[i].t <= hi_t;
         i++) {
        if (a->unc[i].lead == me)
            continue;
        if (ENSURE(sc->tmp, sc->ctmp, n + 1, 8))
            return -1;
        sc->tmp[n++] = a->unc[i].lead;
    }
    for (uint32_t k = 0; k < n; k++) {
        int32_t wi = u->strs[sc->tmp[k]].lead;
        if (wi < 0)
            return -2;
        if (!lead_has_gc(&u->leads[wi], content))
            unc_drop_lead(&u->atts[ai], &u->leads[wi]);
        if (group_give(u, r, (uint32_t)wi, content, t))
            return -1;
    }
    unc_drop_lead(&u->atts[ai], &u->leads[li]);
    return group_give(u, r, li, content, t);
}

/* A classified engagement (not a share) of lead li. */
static int engage(ds_score_unit_t *u, const ds_rules_t *r, uint32_t li, const ds_ma_event_t *ev,
                  uint32_t content, uint32_t insight, int stage, bool *changed) {
    lead_t *L = &u->leads[li];
    int64_t t = ev->occurred_at;
    rep_t *rp = NULL;
    for (uint32_t i = 0; i < L->nrep; i++)
        if (L->rep[i].content == content && L->rep[i].type == (uint8_t)ev->type) {
            rp = &L->rep[i];
            break;
        }
    if (rp) {
        if (tabs(tdiff(t, rp->t)) < days_ms(r->scoring.repeat_window_days))
            return 0; /* a repeat inside the window changes nothing */
        rp->t = t;
    } else {
        if (GROW(L->rep, L->nrep, L->nrep + 1))
            return -1;
        L->rep[L->nrep++] = (rep_t){content, (uint8_t)ev->type, t};
    }
    *changed = true;
    uint32_t ii = NOID;
    if (insight != NOID) {
        for (uint32_t i = 0; i < L->nins; i++)
            if (L->ins[i].insight == insight) {
                ii = i;
                break;
            }
        if (ii == NOID) {
            if (GROW(L->ins, L->nins, L->nins + 1))
                return -1;
            ii = L->nins++;
            L->ins[ii] = (ins_t){insight, 0, 0, 0, 0, 0};
        }
    }
    bool a_state = stage <= DS_CS_CONFRONT;
    double mult = 1.0, bf = 1.0;
    if ((stage == DS_CS_INTRODUCE || stage == DS_CS_CONFRONT) && ii != NOID &&
        (L->ins[ii].amask & ((1u << stage) - 1)))
        mult = r->scoring.path_multiplier;
    if (!a_state && !L->any_a)
        bf = r->scoring.b_state_factor;
    double p = r->scoring.stage_points[stage] * r->scoring.type_weight[ev->type] * mult * bf;
    if (ii != NOID) {
        L->ins[ii].smask |= (uint8_t)(1u << stage);
        if (a_state)
            L->ins[ii].amask |= (uint8_t)(1u << stage);
    }
    if (a_state)
        L->any_a = 1;
    if (ii != NOID) {
        if (lead_add(L, r, t, p, true, ii, BK_CONF_INS, insight, (uint32_t)stage))
            return -1;
    } else if (lead_add(L, r, t, p, true, NOID, BK_CONF_CONTENT, content, (uint32_t)stage)) {
        return -1;
    }
    if (!u->is_account)
        return 0; /* follow and group credit need colleagues of an account */
    int rc;
    if (ev->type == DS_MA_WEBINAR_ATTENDED && content != NOID &&
        (rc = group_credit(u, r, li, content, t)))
        return rc;
    if (insight != NOID && (rc = follow_credit(u, r, li, insight, t)))
        return rc;
    return 0;
}

static int share(ds_score_unit_t *u, const ds_rules_t *r, uint32_t li, const ds_ma_event_t *ev,
                 uint32_t content, uint32_t insight, bool *changed) {
    int64_t t = ev->occurred_at;
    uint32_t added = 0;
    for (size_t k = 0; k < ev->shared_with_count; k++) {
        const char *cs = ev->shared_with[k];
        if (!cs || !strcmp(cs, ev->lead_id))
            continue;
        uint32_t col;
        if (intern_z(u, cs, &col))
            return -1;
        lead_t *L = &u->leads[li];
        bool have = false;
        uint32_t n = 0;
        for (uint32_t i = 0; i < L->nshc; i++)
            if (L->shc[i].content == content) {
                n++;
                if (L->shc[i].colleague == col)
                    have = true;
            }
        if (!have && r->scoring.share_cap > 0 && n < (uint32_t)r->scoring.share_cap) {
            if (GROW(L->shc, L->nshc, L->nshc + 1))
                return -1;
            L->shc[L->nshc++] = (shc_t){content, col};
            added++;
            *changed = true;
        }
        if (!u->is_account || insight == NOID)
            continue;
        /* the share goes to the colleague's inbox */
        if (u->strs[col].lead < 0 && !u->complete)
            return -2;
        uint32_t ci;
        if (ds_score_lead_slot(u, col, &ci)) /* may move leads[] */
            return -1;
        L = &u->leads[li];
        lead_t *C = &u->leads[ci];
        inb_t f = {L->id, insight, L->gen, t};
        bool found = false;
        for (uint32_t i = 0; i < C->ninb && !found; i++)
            found = C->inb[i].sharer == f.sharer && C->inb[i].insight == f.insight &&
                    C->inb[i].gen == f.gen && C->inb[i].ts == f.ts;
        L->flags |= LF_SHARED;
        if (found)
            continue;
        if (GROW(C->inb, C->ninb, C->ninb + 1) || ds_score_mark_lead(u, ci))
            return -1;
        C->inb[C->ninb++] = f;
        *changed = true;
    }
    return lead_add(&u->leads[li], r, t, added * r->scoring.share_points, false, NOID, BK_SHARE,
                    content, 0);
}

/* Whether the lead has points or any memory an unsubscribe would clear. */
static bool has_memory(const lead_t *L) {
    return L->confront != 0 || L->connect != 0 || L->any_a || L->nins || L->nrep || L->nbkt ||
           L->nshc || L->natt || L->ngc || L->flags;
}

/* Clear the lead's points and memory; 0 when there was nothing to clear
 * (then nothing changes, as_of included), 1 when cleared. */
static int unsubscribe(ds_score_unit_t *u, uint32_t li, int64_t t) {
    lead_t *L = &u->leads[li];
    if (!has_memory(L))
        return 0;
    for (uint32_t i = 0; i < L->natt; i++) {
        int32_t ai = u->strs[L->att[i].content].att;
        if (ai < 0 || !u->atts[ai].loaded)
            return -2;
    }
    for (uint32_t i = 0; i < L->natt; i++) {
        attidx_t *a = &u->atts[u->strs[L->att[i].content].att];
        attx_t x = {L->att[i].t, L->id};
        att_remove(a->all, &a->nall, x);
        att_remove(a->unc, &a->nunc, x);
        if (ds_score_mark_field(u, L->att[i].content, L->id))
            return -1;
    }
    for (uint32_t i = 0; i < L->ngc; i++)
        if (ds_score_mark_field(u, L->gc[i], L->id))
            return -1;
    /* its points leave the account's sums */
    for (uint32_t i = 0; i < L->nins; i++) {
        int32_t g = u->strs[L->ins[i].insight].agg;
        if (g >= 0) {
            u->agg[g].q -= L->ins[i].q;
            u->agg[g].npos -= L->ins[i].pos;
        }
    }
    free(L->ins);
    free(L->rep);
    free(L->bkt);
    free(L->shc);
    free(L->att);
    free(L->gc);
    L->ins = NULL;
    L->rep = NULL;
    L->bkt = NULL;
    L->shc = NULL;
    L->att = NULL;
    L->gc = NULL;
    L->nins = L->nrep = L->nbkt = L->nshc = L->natt = L->ngc = 0;
    L->confront = L->connect = 0;
    L->any_a = 0;
    L->flags = 0;
    L->gen++;
    L->as_of = t;
    return 1;
}

/* ---- apply: emission ------------------------------------------------------ */

static int emit(ds_score_unit_t *u, const ds_score_sink_t *sink, ds_score_stats_t *stats) {
    scratch_t *sc = u->scr;
    /* the event's lead first, then the others in lead_id order */
    for (uint32_t i = 2; i < sc->ntouched; i++) {
        uint32_t x = sc->touched[i], j = i;
        while (j > 1 && strcmp(S(u, u->leads[sc->touched[j - 1]].id), S(u, u->leads[x].id)) > 0) {
            sc->touched[j] = sc->touched[j - 1];
            j--;
        }
        sc->touched[j] = x;
    }
    int rc = 0;
    for (uint32_t i = 0; i < sc->ntouched; i++)
        if (ds_score_settle(u, sc->touched[i]))
            rc = -1;
    for (uint32_t i = 0; i < sc->ntouched; i++) {
        lead_t *L = &u->leads[sc->touched[i]];
        L->touched = 0;
        lview_t v;
        lead_view(u, L, &v);
        int32_t c10 = r10(v.c), n10 = r10(v.n), m10 = r10(v.m);
        if (c10 == L->em_c10 && n10 == L->em_n10 && m10 == L->em_m10 && v.tier == L->em_tier)
            continue;
        int prev = L->em_tier;
        L->em_c10 = c10;
        L->em_n10 = n10;
        L->em_m10 = m10;
        L->em_tier = (uint8_t)v.tier;
        L->n_emitted++;
        if (sink && sink->lead_score) {
            ds_lead_score_t rec;
            lead_record(u, L, &v, prev, L->n_emitted, &rec);
            sink->lead_score(sink->opaque, &rec);
        }
        if (stats)
            stats->lead_scores++;
    }
    sc->ntouched = 0;
    if (rc || !u->is_account)
        return rc;
    aview_t a;
    account_figures(u, &a);
    if (a.engaged == u->em_engaged && a.confronted == u->em_confronted &&
        a.cons10 == u->em_cons10 && a.top == u->em_top && u->nmob == u->em_nmob &&
        u->mob_sig == u->em_mob_sig)
        return 0;
    u->em_engaged = a.engaged;
    u->em_confronted = a.confronted;
    u->em_cons10 = a.cons10;
    u->em_top = a.top;
    u->em_nmob = u->nmob;
    u->em_mob_sig = u->mob_sig;
    u->acc_n_emitted++;
    u->pub_changed = true;
    if (sink && sink->account_score) {
        ds_account_score_t rec;
        if (account_fill(u, &a, &rec))
            return -1;
        ds_buf_t *b = &u->scr->text;
        ds_buf_reset(b);
        if (put_s(b, u->key) && put_s(b, ":") && put_u(b, u->acc_n_emitted) &&
            ds_buf_append(b, "", 1) == 0)
            rec.output_id = (const char *)b->data;
        sink->account_score(sink->opaque, &rec);
    }
    if (stats)
        stats->account_scores++;
    return 0;
}

/* ---- what an event needs ---------------------------------------------------- */

typedef struct ev_content {
    const char *insight; /* NULL: none */
    int stage;           /* DS_NONE: unclassified */
} ev_content_t;

static ev_content_t classify(const ds_rules_t *r, const ds_ma_event_t *ev) {
    const ds_catalog_entry_t *ce = ds_rules_catalog_find(r, ev->content_id);
    ev_content_t c;
    c.insight = ev->insight_id ? ev->insight_id : (ce ? ce->insight_id : NULL);
    if (c.insight && !c.insight[0])
        c.insight = NULL;
    c.stage = ev->content_stage != DS_NONE ? ev->content_stage : (ce ? ce->stage : DS_NONE);
    if (c.stage < 0 || c.stage >= DS_CS__COUNT)
        c.stage = DS_NONE;
    return c;
}

size_t ds_score_unit_needs(const ds_score_unit_t *u, const ds_rules_t *r,
                           const ds_ma_event_t *ev, ds_score_need_fn fn, void *opaque) {
    if (!u || !r || !ev || !ev->lead_id || u->complete)
        return 0;
    size_t n = 0;
    if (u->is_account && u->thr_known && thresholds_differ(u, r) && !all_resident(u)) {
        fn(opaque, DS_SCORE_NEED_ALL_LEADS, NULL);
        return 1;
    }
    const lead_t *L = resident(u, lookup_z(u, ev->lead_id));
    if (!L) {
        fn(opaque, DS_SCORE_NEED_LEAD, ev->lead_id);
        return 1;
    }
    if (!u->is_account)
        return 0;
    if (ev->type == DS_MA_UNSUBSCRIBED) {
        for (uint32_t i = 0; i < L->natt; i++) {
            int32_t ai = u->strs[L->att[i].content].att;
            if (ai < 0 || !u->atts[ai].loaded) {
                fn(opaque, DS_SCORE_NEED_ATTENDANCE, S(u, L->att[i].content));
                n++;
            }
        }
        return n;
    }
    ev_content_t c = classify(r, ev);
    if (c.stage == DS_NONE)
        return 0;
    if (ev->type == DS_MA_CONTENT_SHARED) {
        if (!c.insight)
            return 0;
        for (size_t k = 0; k < ev->shared_with_count; k++) {
            const char *cs = ev->shared_with[k];
            if (cs && strcmp(cs, ev->lead_id) && !resident(u, lookup_z(u, cs))) {
                fn(opaque, DS_SCORE_NEED_LEAD, cs);
                n++;
            }
        }
        return n;
    }
    uint32_t insight = lookup_z(u, c.insight);
    int64_t win = days_ms(r->scoring.follow_window_days);
    if (insight != NOID)
        for (uint32_t i = 0; i < L->ninb; i++) {
            int64_t d = tdiff(ev->occurred_at, L->inb[i].ts);
            if (L->inb[i].insight == insight && d >= 0 && d <= win &&
                !resident(u, L->inb[i].sharer)) {
                fn(opaque, DS_SCORE_NEED_LEAD, S(u, L->inb[i].sharer));
                n++;
            }
        }
    if (ev->type == DS_MA_WEBINAR_ATTENDED && ev->content_id) {
        uint32_t content = lookup_z(u, ev->content_id);
        int32_t ai = content == NOID ? -1 : u->strs[content].att;
        if (ai < 0 || !u->atts[ai].loaded) {
            fn(opaque, DS_SCORE_NEED_ATTENDANCE, ev->content_id);
            return n + 1;
        }
        const attidx_t *a = &u->atts[ai];
        int64_t t = ev->occurred_at, hi_t = tadd(t, DAY_MS_I);
        for (uint32_t i = attx_lb(a->unc, a->nunc, &(attx_t){tadd(t, -DAY_MS_I), 0});
             i < a->nunc && a->unc[i].t <= hi_t; i++)
            if (a->unc[i].lead != L->id && !resident(u, a->unc[i].lead)) {
                fn(opaque, DS_SCORE_NEED_LEAD, S(u, a->unc[i].lead));
                n++;
            }
    }
    return n;
}

static void count_need(void *opaque, int kind, const char *id) {
    (void)kind;
    (void)id;
    (*(size_t *)opaque)++;
}

/* ---- apply ---------------------------------------------------------------- */

static bool belongs(const ds_score_unit_t *u, const ds_ma_event_t *ev) {
    bool has_acct = ev->account_id && ev->account_id[0];
    if (u->is_account)
        return has_acct && !strcmp(ev->account_id, u->key);
    return !has_acct && !strcmp(ev->lead_id, u->key);
}

static void unwind_touched(ds_score_unit_t *u) {
    scratch_t *sc = u->scr;
    for (uint32_t i = 0; i < sc->ntouched; i++)
        u->leads[sc->touched[i]].touched = 0;
    sc->ntouched = 0;
}

ds_err_t ds_score_unit_apply_ex(ds_score_unit_t *u, const ds_rules_t *r, const ds_ma_event_t *ev,
                                const ds_score_sink_t *sink, ds_score_stats_t *stats) {
    if (!u || !r || !ev || !ev->event_id || !ev->lead_id || !ev->lead_id[0] || ev->type < 0 ||
        ev->type >= DS_MA__COUNT || (ev->content_stage != DS_NONE &&
                                     (ev->content_stage < 0 || ev->content_stage >= DS_CS__COUNT)))
        return DS_ERR_INVAL;
    if (!belongs(u, ev))
        return DS_ERR_INVAL;
    if (!u->complete) {
        size_t missing = 0;
        ds_score_unit_needs(u, r, ev, count_need, &missing);
        if (missing)
            return DS_ERR_AGAIN;
    }
    if (!u->thr_known || thresholds_differ(u, r)) {
        if (adopt_thresholds(u, r))
            return DS_ERR_NOMEM;
    }
    u->consensus_target = r->scoring.consensus_target;
    u->dd_window_ms = days_ms(r->dedupe_window_days);

    uint32_t id, li;
    if (intern_z(u, ev->lead_id, &id) || ds_score_lead_slot(u, id, &li))
        return DS_ERR_NOMEM;
    lead_t *L = &u->leads[li];

    /* dedupe, in event time: the ids are kept on their lead, and an id is
     * live while the account's largest event time is within the window of
     * it (the unit's clock, as when the ids were the account's) */
    int64_t t = ev->occurred_at;
    uint64_t h = ds_fnv64(ev->event_id, strlen(ev->event_id));
    if (!h)
        h = 1;
    int64_t max_t = (u->max_t == UNSET_T || t > u->max_t) ? t : u->max_t;
    uint32_t pos = dd_find(L->dd, L->ndd, h);
    bool seen = pos < L->ndd && L->dd[pos].h == h;
    if (seen && dd_live(max_t, u->dd_window_ms, L->dd[pos].t)) {
        if (stats)
            stats->duplicates++;
        return DS_ERR_DUPLICATE;
    }
    if (u->nldd) { /* ids of a whole-unit blob, not attributable to a lead */
        uint32_t lp = dd_find(u->ldd, u->nldd, h);
        if (lp < u->nldd && u->ldd[lp].h == h && dd_live(max_t, u->dd_window_ms, u->ldd[lp].t)) {
            if (stats)
                stats->duplicates++;
            return DS_ERR_DUPLICATE;
        }
    }
    if (ds_score_mark_lead(u, li))
        return DS_ERR_NOMEM;
    u->max_t = max_t;
    if (L->max_t == UNSET_T || t > L->max_t)
        L->max_t = t;
    if (seen) { /* the same id, out of the window: it counts again */
        L->dd[pos].t = t;
    } else {
        if (L->ndd == ds_score_capn(L->ndd)) {
            if (dd_reserve(L, u->max_t, u->dd_window_ms))
                return DS_ERR_NOMEM;
            pos = dd_find(L->dd, L->ndd, h);
        }
        insert_at(L->dd, L->ndd, sizeof(dd_t), pos, &(dd_t){h, t});
        L->ndd++;
    }
    if (stats)
        stats->applied++;
    if (!L->member) {
        L->member = 1;
        u->members++;
        u->resident_members++;
    }
    L->events_applied++;

    bool changed = false;
    int rc = 0;
    if (ev->type == DS_MA_UNSUBSCRIBED) {
        rc = unsubscribe(u, li, t);
        changed = rc == 1;
        if (rc == 1)
            rc = 0;
    } else {
        ev_content_t c = classify(r, ev);
        if (c.stage == DS_NONE) {
            if (stats)
                stats->unclassified++;
            return DS_ERR_OK; /* unclassified: scores nothing, records nothing */
        }
        uint32_t content = NOID, insight = NOID;
        if ((ev->content_id && intern_z(u, ev->content_id, &content)) ||
            (c.insight && intern_z(u, c.insight, &insight)))
            return DS_ERR_NOMEM;
        if (ev->type == DS_MA_CONTENT_SHARED)
            rc = share(u, r, li, ev, content, insight, &changed);
        else
            rc = engage(u, r, li, ev, content, insight, c.stage, &changed);
    }
    if (rc == -2) {
        /* needs() is a superset of what the rules visit: a bug */
        unwind_touched(u);
        return DS_ERR_AGAIN;
    }
    if (!changed && !rc)
        return DS_ERR_OK;
    /* the event's own lead first, then credited ones */
    scratch_t *sc = u->scr;
    for (uint32_t i = 0; i < sc->ntouched; i++)
        if (sc->touched[i] == li && i != 0) {
            memmove(sc->touched + 1, sc->touched, i * sizeof(*sc->touched));
            sc->touched[0] = li;
        }
    if (!u->leads[li].touched) {
        if (ENSURE(sc->touched, sc->ctouched, sc->ntouched + 1, 8))
            rc = -1;
        else {
            memmove(sc->touched + 1, sc->touched, sc->ntouched * sizeof(*sc->touched));
            sc->touched[0] = li;
            sc->ntouched++;
            u->leads[li].touched = 1;
        }
    }
    if (!rc && emit(u, sink, stats))
        rc = -1;
    if (rc) {
        unwind_touched(u);
        return DS_ERR_NOMEM;
    }
    return DS_ERR_OK;
}

ds_err_t ds_score_unit_apply(ds_score_unit_t *u, const ds_rules_t *r, const ds_ma_event_t *ev,
                             const ds_score_sink_t *sink) {
    return ds_score_unit_apply_ex(u, r, ev, sink, NULL);
}

/* ---- views ---------------------------------------------------------------- */

bool ds_score_unit_account_view(ds_score_unit_t *u, ds_account_score_t *out) {
    if (!u->is_account)
        return false;
    aview_t a;
    account_figures(u, &a);
    return account_fill(u, &a, out) == 0;
}

uint64_t ds_score_account_sig(const ds_score_unit_t *u) {
    aview_t a;
    account_figures(u, &a);
    int64_t v[] = {a.engaged, a.confronted, a.cons10, (int64_t)u->nmob, (int64_t)u->mob_sig};
    uint64_t h = ds_fnv64(v, sizeof(v));
    const char *top = a.top == NOID ? "" : S(u, a.top);
    h = ds_fnv64_str(h, top, strlen(top));
    return h ? h : 1;
}

bool ds_score_unit_check(const ds_score_unit_t *u, char *why, size_t why_size) {
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, why_size, __VA_ARGS__);                                                      \
        return false;                                                                              \
    } while (0)
    if (!u->is_account)
        return true;
    if (!all_resident(u))
        FAIL("not every lead is in memory (%u of %u)", u->resident_members, u->members);
    int32_t engaged = 0;
    uint32_t nmob = 0, members = 0;
    uint64_t mob_sig = 0;
    for (uint32_t k = 0; k < u->nagg; k++) {
        __int128 q = 0;
        uint32_t nconf = 0, npos = 0;
        uint32_t g = u->agg[k].insight;
        for (uint32_t li = 0; li < u->nleads; li++) {
            const lead_t *L = &u->leads[li];
            for (uint32_t i = 0; i < L->nins; i++)
                if (L->ins[i].insight == g) {
                    q += ds_score_q(L->ins[i].pts);
                    npos += L->ins[i].pts > 0;
                }
            lview_t v;
            lead_view(u, L, &v);
            if (v.c >= u->tier_confronted && v.top == g)
                nconf++;
        }
        if (q != u->agg[k].q)
            FAIL("insight %s: sum %.17g, from scratch %.17g", S(u, g),
                 ldexp((double)u->agg[k].q, -32), ldexp((double)q, -32));
        if (nconf != u->agg[k].nconf)
            FAIL("insight %s: %u confronted, from scratch %u", S(u, g), u->agg[k].nconf, nconf);
        if (npos != u->agg[k].npos)
            FAIL("insight %s: %u with points, from scratch %u", S(u, g), u->agg[k].npos, npos);
    }
    for (uint32_t li = 0; li < u->nleads; li++) {
        const lead_t *L = &u->leads[li];
        members += L->member;
        lview_t v;
        lead_view(u, L, &v);
        engaged += v.c > 0 || v.n > 0;
        if (v.tier == DS_TIER_MOBILIZER) {
            nmob++;
            mob_sig += mob_hash(u, L->id);
        }
        for (uint32_t i = 0; i < L->nins; i++)
            if (u->strs[L->ins[i].insight].agg < 0 && ds_score_q(L->ins[i].pts) != 0)
                FAIL("insight %s of lead %s has no sum", S(u, L->ins[i].insight), S(u, L->id));
        if (L->as_of != UNSET_T && L->as_of > u->as_of)
            FAIL("lead %s is later than its account", S(u, L->id));
    }
    if (engaged != u->engaged)
        FAIL("engaged %d, from scratch %d", u->engaged, engaged);
    if (nmob != u->nmob || mob_sig != u->mob_sig)
        FAIL("mobilizers %u, from scratch %u", u->nmob, nmob);
    if (members != u->members)
        FAIL("members %u, counted %u", u->members, members);
    for (uint32_t i = 1; i < u->nmob; i++)
        if (strcmp(S(u, u->mob[i - 1]), S(u, u->mob[i])) >= 0)
            FAIL("mobilizers out of order at %u", i);
    return true;
#undef FAIL
}

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
