/*
 * score_rollup.c — a lead's view and the account roll-up, incremental.
 *
 * Each lead remembers what it adds to its account: per insight record a
 * fixed-point copy of its points (q, 2^32 per point, __int128) and whether
 * it has points, and whether it is engaged, confronted on which insight, a
 * mobilizer.  ds_score_settle() moves the differences into the account's
 * per-insight sums (exact, so independent of the order of updates),
 * per-insight confronted counts, engaged count and mobilizer set.  The
 * account's top insight is then an argmax over its insights and the
 * confronted figure that insight's count: an event costs the leads it
 * touched plus the account's insights.  A change of tier thresholds
 * settles every lead once (all must be in memory).
 * ds_score_unit_check() recomputes the figures from the leads, for tests.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_hash.h"
#include "score_int.h"


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

/* ---- lead view ------------------------------------------------------------ */


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

void ds_score_lead_view(const ds_score_unit_t *u, const lead_t *L, lview_t *v) {
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
    lead_t *L = u->leads[li];
    if (!u->is_account)
        return 0;
    for (uint32_t i = 0; i < L->nins; i++) {
        ins_t *x = &L->ins[i];
        uint8_t pos = x->pts > 0;
        if (x->pts == x->spts && pos == x->pos)
            continue;
        __int128 q = ds_score_q(x->pts), was = ds_score_q(x->spts);
        uint32_t g;
        if (ds_score_agg_slot(u, x->insight, &g))
            return -1;
        u->agg[g].q += q - was;
        u->agg[g].npos += (uint32_t)pos - x->pos;
        if (ds_score_mark_sum(u, g))
            return -1;
        x->spts = x->pts;
        x->pos = pos;
    }
    lview_t v;
    ds_score_lead_view(u, L, &v);
    uint8_t engaged = v.c > 0 || v.n > 0;
    if (engaged != L->c_engaged) {
        u->engaged += engaged ? 1 : -1;
        L->c_engaged = engaged;
        u->pub_changed = true;
    }
    uint32_t top = (v.c >= u->tier_confronted && v.top != NOID) ? v.top : NOID;
    if (top != L->c_top) {
        uint32_t g;
        int32_t was = L->c_top == NOID ? -1 : ds_score_idx(&u->aggmap, L->c_top);
        if (was >= 0) {
            u->agg[was].nconf--;
            if (ds_score_mark_sum(u, (uint32_t)was))
                return -1;
        }
        if (top != NOID) {
            if (ds_score_agg_slot(u, top, &g) || ds_score_mark_sum(u, g))
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
    lead_t *L = u->leads[li];
    for (uint32_t i = 0; i < L->nins; i++) {
        L->ins[i].spts = L->ins[i].pts;
        L->ins[i].pos = L->ins[i].pts > 0;
    }
    lview_t v;
    ds_score_lead_view(u, L, &v);
    L->c_engaged = v.c > 0 || v.n > 0;
    L->c_mob = v.tier == DS_TIER_MOBILIZER;
    L->c_top = (v.c >= u->tier_confronted && v.top != NOID) ? v.top : NOID;
}

/* The account's figures from its aggregates. */

void ds_score_account_figures(const ds_score_unit_t *u, aview_t *a) {
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
    a->cons10 = ds_score_r10(cons);
}

int ds_score_account_fill(const ds_score_unit_t *u, const aview_t *a, ds_account_score_t *out) {
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
bool ds_score_thresholds_differ(const ds_score_unit_t *u, const ds_rules_t *r) {
    return u->tier_confronted != r->scoring.tier_confronted ||
           u->tier_connector != r->scoring.tier_connector;
}

bool ds_score_all_resident(const ds_score_unit_t *u) {
    return u->complete || u->resident_members >= u->members;
}

int ds_score_adopt_thresholds(ds_score_unit_t *u, const ds_rules_t *r) {
    u->tier_confronted = r->scoring.tier_confronted;
    u->tier_connector = r->scoring.tier_connector;
    u->thr_known = true;
    for (uint32_t li = 0; li < u->nleads; li++)
        if (ds_score_settle(u, li))
            return -1;
    return 0;
}

/* ---- views ---------------------------------------------------------------- */

bool ds_score_unit_account_view(ds_score_unit_t *u, ds_account_score_t *out) {
    if (!u->is_account)
        return false;
    aview_t a;
    ds_score_account_figures(u, &a);
    return ds_score_account_fill(u, &a, out) == 0;
}

uint64_t ds_score_account_sig(const ds_score_unit_t *u) {
    aview_t a;
    ds_score_account_figures(u, &a);
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
    if (!ds_score_all_resident(u))
        FAIL("not every lead is in memory (%u of %u)", u->resident_members, u->members);
    int32_t engaged = 0;
    uint32_t nmob = 0, members = 0;
    uint64_t mob_sig = 0;
    for (uint32_t k = 0; k < u->nagg; k++) {
        __int128 q = 0;
        uint32_t nconf = 0, npos = 0;
        uint32_t g = u->agg[k].insight;
        for (uint32_t li = 0; li < u->nleads; li++) {
            const lead_t *L = u->leads[li];
            for (uint32_t i = 0; i < L->nins; i++)
                if (L->ins[i].insight == g) {
                    q += ds_score_q(L->ins[i].pts);
                    npos += L->ins[i].pts > 0;
                }
            lview_t v;
            ds_score_lead_view(u, L, &v);
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
        const lead_t *L = u->leads[li];
        members += L->member;
        lview_t v;
        ds_score_lead_view(u, L, &v);
        engaged += v.c > 0 || v.n > 0;
        if (v.tier == DS_TIER_MOBILIZER) {
            nmob++;
            mob_sig += ds_score_mob_hash(u, L->id);
        }
        for (uint32_t i = 0; i < L->nins; i++)
            if (ds_score_idx(&u->aggmap, L->ins[i].insight) < 0 && ds_score_q(L->ins[i].pts) != 0)
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

