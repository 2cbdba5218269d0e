/*
 * score.c — the lead-scoring rules: applying one event to a unit, and what
 * an event needs in memory before it can be applied.
 *
 * A unit (score_int.h) holds its leads as records of their own and the
 * account's aggregates; score_unit.c keeps its memory, score_rollup.c the
 * incremental roll-up, score_text.c the public records, score_store.c the
 * stored formats.  Here: dedupe, the confront and connect rules (repeat
 * window, path multiplier, B-state factor, shares, follow credit, group
 * credit, unsubscribe), the lead scores and account scores each event
 * emits, and ds_score_unit_needs().
 *
 * Invariants.
 * - Every per-lead accumulator (confront, connect, per-insight points,
 *   reason buckets) is a value "as of" lead->as_of; when as_of moves
 *   forward they are all rescaled by 2^(-dt/half_life) together.  A late
 *   contribution is decayed to as_of.
 * - Events that change nothing (duplicates, repeats, unclassified content)
 *   touch nothing but events_applied/dirty; as_of moves only with a
 *   positive contribution.
 * - Dedupe: an event id belongs to one lead, which keeps it in its
 *   ds_dedupe_t (hash of event_id -> occurred_at); a hit is a duplicate
 *   only while the account's largest event time, this event's included,
 *   minus its t is within the window (the ids of a whole-unit blob, which
 *   name no lead, are the unit's ldd, read the same way).
 * - For every insight g of the account: agg[g].q = sum of ds_score_q(ins.spts) over the
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

#include "score_int.h"

/* ---- small helpers -------------------------------------------------------- */

/* a - b, saturated (event times come from the network). */
static int64_t tdiff(int64_t a, int64_t b) {
    int64_t d;
    if (__builtin_sub_overflow(a, b, &d))
        return a > b ? INT64_MAX : INT64_MIN;
    return d;
}

static int64_t tabs(int64_t d) {
    return d == INT64_MIN ? INT64_MAX : (d < 0 ? -d : d);
}

static int64_t tadd(int64_t a, int64_t b) {
    int64_t s;
    if (__builtin_add_overflow(a, b, &s))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return s;
}


static double half_life_ms(const ds_rules_t *r) {
    return r->scoring.half_life_days * DS_DAY_MS;
}

/* 2^(-dt/h); a non-positive half-life means no decay. */
static double decay(int64_t dt, double h) {
    if (!(h > 0) || dt <= 0)
        return 1.0;
    return exp2(-(double)dt / h);
}

static const int64_t DAY_MS_I = 86400000;

/* The resident lead of a string, or NULL. */
static const lead_t *resident(const ds_score_unit_t *u, uint32_t id) {
    if (id == NOID || u->t.strs[id].lead < 0)
        return NULL;
    return u->leads[u->t.strs[id].lead];
}
static int intern_z(ds_score_unit_t *u, const char *s, uint32_t *out) {
    return ds_score_intern(u, s, strlen(s), out);
}
static uint32_t lookup_z(const ds_score_unit_t *u, const char *s) {
    return s ? ds_score_lookup(u, s, strlen(s)) : NOID;
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
        if (bk_kind(k) == kind && k->a == a && (kind == BK_SHARE || bk_b(k) == b)) {
            k->v += v;
            *k = bk_make(kind, a, b, k->v); /* a share's count of colleagues */
            return 0;
        }
    }
    if (GROW(L->bkt, L->nbkt, L->nbkt + 1))
        return -1;
    L->bkt[L->nbkt++] = bk_make(kind, a, b, v);
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
    lead_t *L = u->leads[li];
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
    ds_score_insert_at(*arr, (*n)++, sizeof(attx_t), pos, &x);
    return 0;
}

static void att_remove(attx_t *arr, uint32_t *n, attx_t x) {
    uint32_t pos = attx_lb(arr, *n, &x);
    if (pos < *n && !cmp_attx(&arr[pos], &x))
        ds_score_remove_at(arr, n, sizeof(attx_t), pos);
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

/* ---- apply: the rules ----------------------------------------------------- */

/* Follow credit: lead li (a colleague) engaged `insight` at t: credit the
 * sharers of its inbox whose share of that insight is within the window. */
static int follow_credit(ds_score_unit_t *u, const ds_rules_t *r, uint32_t li, uint32_t insight,
                         int64_t t) {
    int64_t win = ds_days_ms(r->scoring.follow_window_days);
    for (uint32_t i = 0; i < u->leads[li]->ninb; i++) {
        lead_t *C = u->leads[li];
        inb_t f = C->inb[i];
        if (f.insight != insight || f.sharer == C->id)
            continue;
        int64_t d = tdiff(t, f.ts);
        if (d < 0 || d > win)
            continue;
        int32_t si = u->t.strs[f.sharer].lead;
        if (si < 0)
            return -2; /* not in memory: ds_score_unit_needs() names it */
        if (u->leads[si]->gen != f.gen)
            continue; /* a share its sharer's unsubscribe cleared */
        bool done = false;
        for (uint32_t k = 0; k < C->ncrd && !done; k++)
            done = C->crd[k].sharer == f.sharer && C->crd[k].insight == insight &&
                   C->crd[k].gen == u->leads[si]->gen;
        if (done)
            continue;
        if (GROW(C->crd, C->ncrd, C->ncrd + 1))
            return -1;
        C->crd[C->ncrd++] = (crd_t){f.sharer, insight, u->leads[si]->gen};
        lead_t *Sh = u->leads[si];
        Sh->flags |= LF_CREDITED;
        if (lead_add(Sh, r, t, r->scoring.follow_points, false, NOID, BK_FOLLOW, C->id, insight) ||
            touch(u, (uint32_t)si))
            return -1;
    }
    return 0;
}

static int group_give(ds_score_unit_t *u, const ds_rules_t *r, uint32_t li, uint32_t content,
                      int64_t t) {
    lead_t *L = u->leads[li];
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
    lead_t *L = u->leads[li];
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
    for (uint32_t i = attx_lb(a->all, a->nall, &(attx_t){lo_t, 0});
         i < a->nall && a->all[i].t <= hi_t; i++)
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
    for (uint32_t i = attx_lb(a->unc, a->nunc, &(attx_t){lo_t, 0});
         i < a->nunc && a->unc[i].t <= hi_t; i++) {
        if (a->unc[i].lead == me)
            continue;
        if (ENSURE(sc->tmp, sc->ctmp, n + 1, 8))
            return -1;
        sc->tmp[n++] = a->unc[i].lead;
    }
    for (uint32_t k = 0; k < n; k++) {
        int32_t wi = u->t.strs[sc->tmp[k]].lead;
        if (wi < 0)
            return -2;
        if (!lead_has_gc(u->leads[wi], content))
            unc_drop_lead(&u->atts[ai], u->leads[wi]);
        if (group_give(u, r, (uint32_t)wi, content, t))
            return -1;
    }
    unc_drop_lead(&u->atts[ai], u->leads[li]);
    return group_give(u, r, li, content, t);
}

/* A classified engagement (not a share) of lead li. */
static int engage(ds_score_unit_t *u, const ds_rules_t *r, uint32_t li, const ds_ma_event_t *ev,
                  uint32_t content, uint32_t insight, int stage, bool *changed) {
    lead_t *L = u->leads[li];
    int64_t t = ev->occurred_at;
    rep_t *rp = ds_score_rep_find(u, L, content, (uint8_t)ev->type);
    if (rp && tabs(tdiff(t, rp->t)) < ds_days_ms(r->scoring.repeat_window_days))
        return 0; /* a repeat inside the window changes nothing */
    if (ds_score_mem_room(u, L))
        return -1;
    if (rp) {
        rp->t = t;
    } else {
        if (GROW(L->rep, L->nrep, L->nrep + 1))
            return -1;
        L->rep[L->nrep++] = (rep_t){content, (uint8_t)ev->type, t};
        ds_score_rep_added(u, L);
    }
    ds_score_mem_set(u, L, false, content, (uint32_t)ev->type, t);
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
    uint32_t added = 0, count = 0; /* pairs added; the content's pairs after */
    for (size_t k = 0; k < ev->shared_with_count; k++) {
        const char *cs = ev->shared_with[k];
        if (!cs || !strcmp(cs, ev->lead_id))
            continue;
        uint32_t col;
        if (intern_z(u, cs, &col))
            return -1;
        lead_t *L = u->leads[li];
        bool have = false;
        uint32_t n = 0;
        for (uint32_t i = 0; i < L->nshc; i++)
            if (L->shc[i].content == content) {
                n++;
                if (L->shc[i].colleague == col)
                    have = true;
            }
        if (!have && r->scoring.share_cap > 0 && n < (uint32_t)r->scoring.share_cap) {
            if (ds_score_mem_room(u, L) || GROW(L->shc, L->nshc, L->nshc + 1))
                return -1;
            L->shc[L->nshc++] = (shc_t){content, col};
            ds_score_mem_set(u, L, true, content, col, 0);
            count = n + 1;
            ds_score_share_count(L, content, count); /* even if a later step fails */
            added++;
            *changed = true;
        }
        if (!u->is_account || insight == NOID)
            continue;
        /* the share goes to the colleague's inbox */
        if (u->t.strs[col].lead < 0 && !u->complete)
            return -2;
        uint32_t ci;
        if (ds_score_lead_slot(u, col, &ci)) /* may move leads[] */
            return -1;
        L = u->leads[li];
        lead_t *C = u->leads[ci];
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
    /* the bucket's b is its count of colleagues (its reason's words) */
    return lead_add(u->leads[li], r, t, added * r->scoring.share_points, false, NOID, BK_SHARE,
                    content, count);
}

/* Note that id h of lead L changed, when its ids are kept apart. */
static int log_id(ds_score_unit_t *u, const lead_t *L, uint64_t h) {
    if (!(L->ids & IDS_APART))
        return 0;
    if (ENSURE(u->idlog, u->cidlog, u->nidlog + 1, 8))
        return -1;
    u->idlog[u->nidlog++] = (idlog_t){h, L->id};
    return 0;
}

typedef struct id_gone {
    ds_score_unit_t *u;
    const lead_t *L;
} id_gone_t;

static int log_gone(void *opaque, uint64_t h) {
    id_gone_t *g = opaque;
    return log_id(g->u, g->L, h);
}

/* Remember id h of lead L at t.  What is stored of L's ids depends only
 * on the events applied, never on when the writes fell or the lead was
 * read (c is the lead's clock: its own latest event time and the window,
 * so the ids it leaves out are dead for good under the account's too).
 * - While in the record: the record holds the ids live under c (the set
 *   makes room by dropping the others when full); the first put that makes
 *   those more than DS_IDS_APART_AT moves them apart.
 * - Apart: the stored hash is the set as it is, so nothing is dropped but
 *   by a compaction at a point the events set (ds_dedupe_compact at
 *   dd_compact_at, kept in the record), each drop logged for the write. */
static int remember_id(ds_score_unit_t *u, lead_t *L, uint64_t h, int64_t t,
                       const ds_dedupe_clock_t *c) {
    if (!(L->ids & IDS_APART)) {
        if (ds_dedupe_put(&L->dd, h, t, c))
            return -1;
        if (L->dd.n > DS_IDS_APART_AT)
            ds_dedupe_prune(&L->dd, c); /* its count is then the live ones' */
        if (L->dd.n > DS_IDS_APART_AT) {
            L->ids |= IDS_APART | IDS_WHOLE;
            L->dd_compact_at = 2 * L->dd.n;
        }
        return 0;
    }
    id_gone_t g = {u, L};
    /* the log's room first: an id put must be logged */
    if (ENSURE(u->idlog, u->cidlog, u->nidlog + 1, 8) ||
        ds_dedupe_put(&L->dd, h, t, &(ds_dedupe_clock_t){.all = true}) || log_id(u, L, h) ||
        ds_dedupe_compact(&L->dd, &L->dd_compact_at, c, log_gone, &g))
        return -1;
    return 0;
}

/* Whether the lead has points or any memory an unsubscribe would clear. */
static bool has_memory(const lead_t *L) {
    return L->confront != 0 || L->connect != 0 || L->any_a || L->nins || L->nrep || L->nbkt ||
           L->nshc || L->natt || L->ngc || L->flags;
}

/* Clear the lead's points and memory; 0 when there was nothing to clear
 * (then nothing changes, as_of included), 1 when cleared. */
static int unsubscribe(ds_score_unit_t *u, uint32_t li, int64_t t) {
    lead_t *L = u->leads[li];
    if (!has_memory(L))
        return 0;
    for (uint32_t i = 0; i < L->natt; i++) {
        int32_t ai = ds_score_idx(&u->attmap, L->att[i].content);
        if (ai < 0 || !u->atts[ai].loaded)
            return -2;
    }
    for (uint32_t i = 0; i < L->natt; i++) {
        attidx_t *a = &u->atts[ds_score_idx(&u->attmap, L->att[i].content)];
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
        int32_t g = ds_score_idx(&u->aggmap, L->ins[i].insight);
        if (g >= 0) {
            u->agg[g].q -= ds_score_q(L->ins[i].spts);
            u->agg[g].npos -= L->ins[i].pos;
            if (ds_score_mark_sum(u, (uint32_t)g))
                return -1;
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
    if (L->mem & IDS_APART) { /* back in its record: the next write deletes the hash */
        ds_score_rep_unindex(u, L);
        L->mem = MEM_GONE;
        /* a lone lead's record lists its own strings: those it refers to
         * while apart, every one named (the dictionary) when not.  Nothing
         * refers to any now: the dictionary starts again, so that the
         * record is the same whether the unit was read back or not */
        if (!u->is_account) {
            free(u->dictmap.v);
            u->dictmap = (idmap_t){.v = NULL};
            u->ndict = u->dict_written = 0;
        }
    }
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
        while (j > 1 && strcmp(S(u, u->leads[sc->touched[j - 1]]->id), S(u, u->leads[x]->id)) > 0) {
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
        lead_t *L = u->leads[sc->touched[i]];
        L->touched = 0;
        lview_t v;
        ds_score_lead_view(u, L, &v);
        int32_t c10 = ds_score_r10(v.c), n10 = ds_score_r10(v.n), m10 = ds_score_r10(v.m);
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
            ds_score_lead_record(u, L, &v, prev, L->n_emitted, &rec);
            sink->lead_score(sink->opaque, &rec);
        }
        if (stats)
            stats->lead_scores++;
    }
    sc->ntouched = 0;
    if (rc || !u->is_account)
        return rc;
    aview_t a;
    ds_score_account_figures(u, &a);
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
        if (ds_score_account_fill(u, &a, &rec))
            return -1;
        ds_buf_t *b = &u->scr->text;
        ds_buf_reset(b);
        if (ds_score_put_s(b, u->key) && ds_score_put_s(b, ":") &&
            ds_score_put_u(b, u->acc_n_emitted) && ds_buf_append(b, "", 1) == 0)
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

size_t ds_score_unit_needs(const ds_score_unit_t *u, const ds_rules_t *r, const ds_ma_event_t *ev,
                           ds_score_need_fn fn, void *opaque) {
    if (!u || !r || !ev || !ev->lead_id || (u->complete && !u->missing))
        return 0;
    size_t n = 0;
    if (u->is_account && u->thr_known && ds_score_thresholds_differ(u, r) &&
        !ds_score_all_resident(u)) {
        fn(opaque, DS_SCORE_NEED_ALL_LEADS, NULL);
        return 1;
    }
    const lead_t *L = resident(u, lookup_z(u, ev->lead_id));
    if (!L) {
        fn(opaque, DS_SCORE_NEED_LEAD, ev->lead_id);
        return 1;
    }
    if (L->ids & IDS_MISSING) { /* its dedupe ids, kept apart */
        fn(opaque, DS_SCORE_NEED_IDS, ev->lead_id);
        n++;
    }
    if ((L->mem & IDS_MISSING) && (ev->type == DS_MA_UNSUBSCRIBED ||
                                   classify(r, ev).stage != DS_NONE)) {
        /* its repeats and shares, kept apart: for an event the rules
         * apply (an unclassified one records nothing) */
        fn(opaque, DS_SCORE_NEED_MEM, ev->lead_id);
        n++;
    }
    if (!u->is_account)
        return n;
    if (ev->type == DS_MA_UNSUBSCRIBED) {
        for (uint32_t i = 0; i < L->natt; i++) {
            int32_t ai = ds_score_idx(&u->attmap, L->att[i].content);
            if (ai < 0 || !u->atts[ai].loaded) {
                fn(opaque, DS_SCORE_NEED_ATTENDANCE, S(u, L->att[i].content));
                n++;
            }
        }
        return n;
    }
    ev_content_t c = classify(r, ev);
    if (c.stage == DS_NONE)
        return n;
    if (ev->type == DS_MA_CONTENT_SHARED) {
        if (!c.insight)
            return n;
        for (size_t k = 0; k < ev->shared_with_count; k++) {
            const char *cs = ev->shared_with[k];
            if (cs && strcmp(cs, ev->lead_id) && !resident(u, lookup_z(u, cs))) {
                fn(opaque, DS_SCORE_NEED_LEAD, cs);
                n++;
            }
        }
        return n;
    }
    uint32_t insight = c.insight ? ds_score_sym_lookup(u, c.insight, strlen(c.insight)) : NOID;
    int64_t win = ds_days_ms(r->scoring.follow_window_days);
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
        uint32_t content = ds_score_sym_lookup(u, ev->content_id, strlen(ev->content_id));
        int32_t ai = content == NOID ? -1 : ds_score_idx(&u->attmap, content);
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
        u->leads[sc->touched[i]]->touched = 0;
    sc->ntouched = 0;
}

ds_err_t ds_score_unit_apply_ex(ds_score_unit_t *u, const ds_rules_t *r, const ds_ma_event_t *ev,
                                const ds_score_sink_t *sink, ds_score_stats_t *stats) {
    if (!u || !r || !ev || !ev->event_id || !ev->lead_id || !ev->lead_id[0] || ev->type < 0 ||
        ev->type >= DS_MA__COUNT ||
        (ev->content_stage != DS_NONE &&
         (ev->content_stage < 0 || ev->content_stage >= DS_CS__COUNT)))
        return DS_ERR_INVAL;
    if (!belongs(u, ev))
        return DS_ERR_INVAL;
    if (!u->complete || u->missing) {
        size_t missing = 0;
        ds_score_unit_needs(u, r, ev, count_need, &missing);
        if (missing)
            return DS_ERR_AGAIN;
    }
    if (!u->thr_known || ds_score_thresholds_differ(u, r)) {
        if (ds_score_adopt_thresholds(u, r))
            return DS_ERR_NOMEM;
    }
    u->consensus_target = r->scoring.consensus_target;
    u->dd_window_ms = ds_days_ms(r->dedupe_window_days);

    uint32_t id, li;
    if (intern_z(u, ev->lead_id, &id) || ds_score_lead_slot(u, id, &li))
        return DS_ERR_NOMEM;
    lead_t *L = u->leads[li];

    /* dedupe, in event time: the ids are kept on their lead, and an id is
     * live while the account's largest event time is within the window of
     * it (the unit's clock, as when the ids were the account's) */
    int64_t t = ev->occurred_at;
    uint64_t h = ds_dedupe_hash(ev->event_id, strlen(ev->event_id));
    int64_t max_t = (u->max_t == UNSET_T || t > u->max_t) ? t : u->max_t;
    ds_dedupe_clock_t clock = {.now = max_t, .window = u->dd_window_ms};
    const ds_dedupe_entry_t *seen = ds_dedupe_find(&L->dd, h);
    /* ids of a whole-unit blob are not attributable to a lead */
    const ds_dedupe_entry_t *lseen = u->ldd.n ? ds_dedupe_find(&u->ldd, h) : NULL;
    if ((seen && ds_dedupe_live(&clock, seen)) || (lseen && ds_dedupe_live(&clock, lseen))) {
        if (stats)
            stats->duplicates++;
        return DS_ERR_DUPLICATE;
    }
    if (ds_score_mark_lead(u, li))
        return DS_ERR_NOMEM;
    u->max_t = max_t;
    if (L->max_t == UNSET_T || t > L->max_t)
        L->max_t = t;
    /* a new id, or the same id out of the window: it counts again */
    if (remember_id(u, L, h, t, &(ds_dedupe_clock_t){.now = L->max_t, .window = u->dd_window_ms}))
        return DS_ERR_NOMEM;
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
        if ((ev->content_id && (ds_score_sym(u, ev->content_id, strlen(ev->content_id), &content) ||
                                ds_score_dict_assign(u, content))) ||
            (c.insight && (ds_score_sym(u, c.insight, strlen(c.insight), &insight) ||
                           ds_score_dict_assign(u, insight))))
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
    if (!u->leads[li]->touched) {
        if (ENSURE(sc->touched, sc->ctouched, sc->ntouched + 1, 8))
            rc = -1;
        else {
            memmove(sc->touched + 1, sc->touched, sc->ntouched * sizeof(*sc->touched));
            sc->touched[0] = li;
            sc->ntouched++;
            u->leads[li]->touched = 1;
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
