/*
 * backtest.c — the watcher's replay under the event clock, in memory, with
 * each deal's alert history kept until it closes (see backtest.h).
 *
 * Per event, as the watcher does it (watcher.c, wa_apply): the partition's
 * watermark observes the event, the deal is applied at the watermark and
 * its next deadline scheduled, then every deal of the partition due by the
 * watermark is evaluated.  The alert sink counts OPEN transitions and
 * keeps the first OPEN of each kind.
 *
 * A deal that closes gives its figures to the totals at once (outcome,
 * cycle, alerts, lead times, spells) and its state is freed; its id's hash
 * goes to a set so that its later events are ignored, as the watcher
 * ignores them.  Its entry lives on, without state, while the deadline
 * heap still holds entries of it (counted in `heaprefs`): they are stale
 * and popped once the watermark passes them.
 */
#include "backtest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_hash.h"
#include "partclock.h"
#include "stall.h"

#define NK DS_AK__COUNT
#define MAX_PARTITION (1 << 20)

typedef struct spell {
    double days;
    int32_t stage;
} spell_t;

typedef struct bt_deal {
    ds_deal_t *deal; /* NULL once closed */
    int32_t partition;
    uint32_t heaprefs; /* entries of this deal in a deadline heap */
    int64_t deadline;  /* current next deadline (INT64_MAX: none) */
    int32_t opens[NK];
    int64_t first_open[NK];
    spell_t *spells;
    uint32_t nspells, cspells;
    UT_hash_handle hh;
    char id[]; /* the key; also the heap's tie-break */
} bt_deal_t;

/* A set of 64-bit hashes (open addressing, 0 marks a free slot). */
typedef struct hset {
    uint64_t *slot;
    size_t n, cap; /* cap: a power of two, or 0 */
} hset_t;

typedef struct dvec {
    double *v;
    size_t n, cap;
} dvec_t;

struct ds_backtest {
    const ds_rules_t *rules;
    ds_backtest_opts_t o;
    bt_deal_t *deals; /* open deals, by id */
    ds_partclock_t *parts;
    size_t nparts;
    hset_t closed, before; /* ids of closed deals, of deals first seen before `since` */
    bt_deal_t *cur;        /* the deal being applied or evaluated (the sink's) */
    ds_bt_report_t t;      /* counts of events and of closed deals */
    int64_t c_opens[NK + 1], c_won[NK + 1], c_lost[NK + 1]; /* of closed deals; [NK]: any */
    dvec_t lead[NK + 1]; /* days, of deals alerted and lost; [NK]: any kind */
    dvec_t won_cycle, lost_cycle;
    dvec_t spells[DS_PS__COUNT];
    size_t spell_deals[DS_PS__COUNT];
};

/* ---- small containers --------------------------------------------------- */

static bool dvec_push(dvec_t *d, double x) {
    if (d->n == d->cap) {
        double *nv = ds_grow(d->v, &d->cap, sizeof(*nv), 64);
        if (!nv)
            return false;
        d->v = nv;
    }
    d->v[d->n++] = x;
    return true;
}

static uint64_t id_hash(const char *id) {
    uint64_t h = ds_fnv64(id, strlen(id));
    return h ? h : 1;
}

static bool hset_has(const hset_t *s, uint64_t h) {
    if (!s->cap)
        return false;
    for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == h)
            return true;
        if (!s->slot[i])
            return false;
    }
}

static bool hset_add(hset_t *s, uint64_t h) {
    if (2 * (s->n + 1) > s->cap) { /* at most half full */
        size_t nc = s->cap ? s->cap * 2 : 1024;
        uint64_t *ns = calloc(nc, sizeof(*ns));
        if (!ns)
            return false;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slot[i])
                continue;
            size_t j = s->slot[i] & (nc - 1);
            while (ns[j])
                j = (j + 1) & (nc - 1);
            ns[j] = s->slot[i];
        }
        free(s->slot);
        s->slot = ns;
        s->cap = nc;
    }
    size_t i = h & (s->cap - 1);
    while (s->slot[i] && s->slot[i] != h)
        i = (i + 1) & (s->cap - 1);
    if (!s->slot[i]) {
        s->slot[i] = h;
        s->n++;
    }
    return true;
}

/* ---- the replay --------------------------------------------------------- */

static const char *deal_key(const void *owner) {
    return ((const bt_deal_t *)owner)->id;
}

static void on_alert(void *opaque, const ds_deal_alert_t *a) {
    ds_backtest_t *bt = opaque;
    bt_deal_t *e = bt->cur;
    if (a->state != DS_AS_OPEN || a->kind < 0 || a->kind >= NK)
        return;
    if (!e->opens[a->kind]++)
        e->first_open[a->kind] = a->raised_at;
}

static void ctx_init(ds_backtest_t *bt, ds_watch_ctx_t *c, int64_t now) {
    memset(c, 0, sizeof(*c));
    c->rules = bt->rules;
    c->now = now;
    c->alert = on_alert;
    c->opaque = bt;
}

ds_backtest_t *ds_backtest_new(const ds_rules_t *rules, const ds_backtest_opts_t *opts) {
    ds_backtest_t *bt = calloc(1, sizeof(*bt));
    if (!bt)
        return NULL;
    bt->rules = rules;
    bt->o = *opts;
    return bt;
}

static void free_entry(bt_deal_t *e) {
    ds_deal_destroy(e->deal);
    free(e->spells);
    free(e);
}

void ds_backtest_destroy(ds_backtest_t *bt) {
    if (!bt)
        return;
    /* closed entries still referenced by a heap are found there */
    for (size_t p = 0; p < bt->nparts; p++) {
        ds_partclock_t *pc = &bt->parts[p];
        for (size_t i = 0; i < pc->n; i++) {
            bt_deal_t *e = pc->heap[i].owner;
            if (!e->deal && !--e->heaprefs)
                free_entry(e);
        }
        ds_partclock_free(pc);
    }
    free(bt->parts);
    bt_deal_t *e, *t;
    HASH_ITER(hh, bt->deals, e, t) {
        HASH_DEL(bt->deals, e);
        free_entry(e);
    }
    free(bt->closed.slot);
    free(bt->before.slot);
    for (int k = 0; k <= NK; k++)
        free(bt->lead[k].v);
    free(bt->won_cycle.v);
    free(bt->lost_cycle.v);
    for (int s = 0; s < DS_PS__COUNT; s++)
        free(bt->spells[s].v);
    free(bt);
}

static ds_partclock_t *get_part(ds_backtest_t *bt, int32_t p) {
    if (p < 0 || p >= MAX_PARTITION)
        return NULL;
    if ((size_t)p >= bt->nparts) {
        size_t nn = (size_t)p + 1;
        ds_partclock_t *np = realloc(bt->parts, nn * sizeof(*np));
        if (!np)
            return NULL;
        for (size_t i = bt->nparts; i < nn; i++)
            ds_partclock_init(&np[i], deal_key);
        bt->parts = np;
        bt->nparts = nn;
    }
    return &bt->parts[p];
}

/* The deal's next deadline into its partition's index. */
static bool schedule(ds_backtest_t *bt, bt_deal_t *e) {
    int64_t d = ds_deal_next_deadline(e->deal, bt->rules);
    bool push = d != e->deadline && d != INT64_MAX;
    if (!ds_partclock_schedule(&bt->parts[e->partition], e, &e->deadline, d))
        return false;
    e->heaprefs += push;
    return true;
}

static double days(int64_t ms) {
    return ms > 0 ? (double)ms / DS_DAY_MS : 0.0;
}

/* The deal closed with `ev`: its figures go to the totals, its state is
 * freed and its id remembered. */
static ds_err_t close_deal(ds_backtest_t *bt, bt_deal_t *e, const ds_crm_event_t *ev) {
    bool won = ds_deal_outcome(e->deal) == DS_CRM_DEAL_WON;
    int64_t opened = ds_deal_opened_at(e->deal), closed = ev->occurred_at;
    bool ok = hset_add(&bt->closed, id_hash(e->id));
    ok = ok && dvec_push(won ? &bt->won_cycle : &bt->lost_cycle, days(closed - opened));
    int64_t first_any = INT64_MAX;
    for (int k = 0; k < NK; k++) {
        bt->c_opens[k] += e->opens[k];
        bt->c_opens[NK] += e->opens[k];
        if (!e->opens[k])
            continue;
        if (e->first_open[k] < first_any)
            first_any = e->first_open[k];
        if (won)
            bt->c_won[k]++;
        else
            bt->c_lost[k]++;
        if (!won)
            ok = ok && dvec_push(&bt->lead[k], days(closed - e->first_open[k]));
    }
    if (first_any != INT64_MAX) {
        if (won)
            bt->c_won[NK]++;
        else
            bt->c_lost[NK]++;
        if (!won)
            ok = ok && dvec_push(&bt->lead[NK], days(closed - first_any));
    }
    if (won && bt->o.spells) {
        bool seen[DS_PS__COUNT] = {false};
        for (uint32_t i = 0; i < e->nspells; i++) {
            int s = e->spells[i].stage;
            ok = ok && dvec_push(&bt->spells[s], e->spells[i].days);
            bt->spell_deals[s] += !seen[s];
            seen[s] = true;
        }
    }
    if (won)
        bt->t.won++;
    else
        bt->t.lost++;
    HASH_DEL(bt->deals, e);
    ds_deal_destroy(e->deal);
    e->deal = NULL;
    free(e->spells);
    e->spells = NULL;
    if (!e->heaprefs)
        free(e);
    return ok ? DS_ERR_OK : DS_ERR_NOMEM;
}

static bool add_spell(bt_deal_t *e, int stage, int64_t ms) {
    if (e->nspells == e->cspells) {
        uint32_t nc = e->cspells ? e->cspells * 2 : 4;
        spell_t *n = realloc(e->spells, nc * sizeof(*n));
        if (!n)
            return false;
        e->spells = n;
        e->cspells = nc;
    }
    e->spells[e->nspells++] = (spell_t){days(ms), stage};
    return true;
}

static bt_deal_t *new_entry(ds_backtest_t *bt, const char *id) {
    size_t len = strlen(id);
    bt_deal_t *e = calloc(1, sizeof(*e) + len + 1);
    if (!e)
        return NULL;
    memcpy(e->id, id, len + 1);
    if (!(e->deal = ds_deal_new(id))) {
        free(e);
        return NULL;
    }
    e->deadline = INT64_MAX;
    HASH_ADD(hh, bt->deals, id, len, e);
    return e;
}

static ds_err_t check_due(ds_backtest_t *bt, ds_partclock_t *pc, int64_t now) {
    ds_watch_ctx_t ctx;
    ctx_init(bt, &ctx, now);
    bt_deal_t *e;
    int64_t deadline;
    ds_err_t err = DS_ERR_OK;
    while ((e = ds_partclock_pop_due(pc, now, &deadline))) {
        e->heaprefs--;
        if (!e->deal || deadline != e->deadline) { /* stale */
            if (!e->deal && !e->heaprefs)
                free(e);
            continue;
        }
        bt->cur = e;
        ds_deal_evaluate(e->deal, &ctx);
        e->deadline = INT64_MAX; /* its entry is gone */
        if (!schedule(bt, e))
            err = DS_ERR_NOMEM;
    }
    return err;
}

ds_err_t ds_backtest_apply(ds_backtest_t *bt, int32_t partition, const ds_crm_event_t *ev) {
    bt->t.events++;
    int64_t t = ev->occurred_at;
    if (t < bt->o.since || t >= bt->o.until) {
        bt->t.out_of_range++;
        if (t < bt->o.since) {
            bt_deal_t *e;
            HASH_FIND_STR(bt->deals, ev->deal_id, e);
            uint64_t h = id_hash(ev->deal_id);
            if (!e && !hset_has(&bt->closed, h) && !hset_add(&bt->before, h))
                return DS_ERR_NOMEM;
        }
        return DS_ERR_OK;
    }
    ds_partclock_t *pc = get_part(bt, partition);
    if (!pc)
        return partition < 0 || partition >= MAX_PARTITION ? DS_ERR_INVAL : DS_ERR_NOMEM;
    ds_partclock_observe(pc, t);
    int64_t now = pc->watermark;
    bt_deal_t *e;
    HASH_FIND_STR(bt->deals, ev->deal_id, e);
    if (!e) {
        uint64_t h = id_hash(ev->deal_id);
        if (hset_has(&bt->closed, h)) {
            bt->t.ignored++;
            return check_due(bt, pc, now);
        }
        if (hset_has(&bt->before, h)) {
            bt->t.out_of_range++;
            return check_due(bt, pc, now);
        }
        if (!(e = new_entry(bt, ev->deal_id)))
            return DS_ERR_NOMEM;
        bt->t.deals++;
    }
    /* a buyer signal ends the quiet spell begun at the opening or at the
     * previous signal, at the verified stage that spell had */
    int64_t spell_from = DS_TS_NULL;
    int spell_stage = DS_NONE;
    if (bt->o.spells && ev->type == DS_CRM_BUYER_SIGNAL) {
        spell_from = ds_deal_quiet_start(e->deal);
        if (spell_from != DS_TS_NULL)
            spell_stage = ds_deal_verified_stage(e->deal, bt->rules);
    }
    ds_watch_ctx_t ctx;
    ctx_init(bt, &ctx, now);
    bt->cur = e;
    e->partition = partition;
    ds_err_t r = ds_deal_apply(e->deal, ev, &ctx), err = DS_ERR_OK;
    if (r == DS_ERR_DUPLICATE)
        bt->t.duplicates++;
    else if (r == DS_ERR_IGNORED)
        bt->t.ignored++;
    else
        bt->t.applied++;
    if (r == DS_ERR_OK && spell_stage != DS_NONE && t >= spell_from &&
        !add_spell(e, spell_stage, t - spell_from))
        err = DS_ERR_NOMEM;
    if (ds_deal_outcome(e->deal) != DS_NONE) {
        ds_err_t ce = close_deal(bt, e, ev);
        err = err ? err : ce;
    } else if (!schedule(bt, e)) {
        err = DS_ERR_NOMEM;
    }
    ds_err_t ce = check_due(bt, pc, now);
    return err ? err : ce;
}

/* ---- the report --------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ds_backtest_median(double *v, size_t n) {
    if (!n)
        return NAN;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double ratio(int64_t a, int64_t b) {
    return b ? (double)a / (double)b : NAN;
}

static void finish(ds_bt_figures_t *f, const ds_bt_report_t *r, dvec_t *lead) {
    f->deals_alerted = f->won + f->lost + f->open;
    f->precision = ratio(f->lost, f->won + f->lost);
    f->recall = ratio(f->lost, r->lost);
    f->noise = ratio(f->won, r->won);
    f->median_lead_days = ds_backtest_median(lead->v, lead->n);
}

void ds_backtest_report(ds_backtest_t *bt, ds_bt_report_t *out) {
    ds_bt_report_t *r = out;
    *r = bt->t;
    r->open = (int64_t)HASH_COUNT(bt->deals);
    for (int k = 0; k <= NK; k++) {
        ds_bt_figures_t *f = k < NK ? &r->kind[k] : &r->any;
        memset(f, 0, sizeof(*f));
        f->alerts_opened = bt->c_opens[k];
        f->won = bt->c_won[k];
        f->lost = bt->c_lost[k];
    }
    r->median_won_cycle_days = ds_backtest_median(bt->won_cycle.v, bt->won_cycle.n);
    r->aged_after_days = r->median_won_cycle_days * DS_BT_AGED_FACTOR; /* NAN stays NAN */
    ds_bt_figures_t *ag = &r->aged;
    memset(ag, 0, sizeof(*ag));
    double thr = r->aged_after_days;
    bool aged_known = !isnan(thr);
    /* open deals: their alerts so far, and their age at their watermark */
    bt_deal_t *e, *t;
    HASH_ITER(hh, bt->deals, e, t) {
        bool any = false;
        for (int k = 0; k < NK; k++) {
            r->kind[k].alerts_opened += e->opens[k];
            r->any.alerts_opened += e->opens[k];
            r->kind[k].open += e->opens[k] > 0;
            any = any || e->opens[k] > 0;
        }
        r->any.open += any;
        int64_t opened = ds_deal_opened_at(e->deal);
        if (aged_known && opened != DS_TS_NULL &&
            days(bt->parts[e->partition].watermark - opened) > thr)
            ag->open++;
    }
    /* AGED: closed deals by their cycle; lead time from the moment the
     * deal became aged (opening + threshold) to its DEAL_LOST */
    dvec_t aged_lead = {0};
    if (aged_known) {
        for (size_t i = 0; i < bt->won_cycle.n; i++)
            ag->won += bt->won_cycle.v[i] > thr;
        for (size_t i = 0; i < bt->lost_cycle.n; i++) {
            if (bt->lost_cycle.v[i] > thr) {
                ag->lost++;
                if (!dvec_push(&aged_lead, bt->lost_cycle.v[i] - thr))
                    aged_lead.n = 0; /* out of memory: no median rather than a wrong one */
            }
        }
    }
    for (int k = 0; k <= NK; k++)
        finish(k < NK ? &r->kind[k] : &r->any, r, &bt->lead[k]);
    finish(ag, r, &aged_lead);
    ag->alerts_opened = ag->deals_alerted; /* a deal ages once */
    free(aged_lead.v);
}

size_t ds_backtest_open_deals(const ds_backtest_t *bt) {
    return HASH_COUNT(bt->deals);
}

const double *ds_backtest_spells(const ds_backtest_t *bt, int stage, size_t *n, size_t *deals) {
    if (stage < 0 || stage >= DS_PS__COUNT) {
        *n = *deals = 0;
        return NULL;
    }
    *n = bt->spells[stage].n;
    *deals = bt->spell_deals[stage];
    return *n ? bt->spells[stage].v : NULL;
}

/* ---- output ------------------------------------------------------------- */

/* a figure of the table: a share in %, days, or "-" when undefined */
static const char *pct(char *b, size_t n, double v) {
    if (isnan(v))
        return "-";
    snprintf(b, n, "%.1f%%", 100 * v);
    return b;
}

static const char *num1(char *b, size_t n, double v) {
    if (isnan(v))
        return "-";
    snprintf(b, n, "%.1f", v);
    return b;
}

static const char *kind_label(int k) {
    return k < NK ? ds_alert_kind_name(k) : k == NK ? "any kind" : "AGED";
}

static const ds_bt_figures_t *figures(const ds_bt_report_t *r, int k) {
    return k < NK ? &r->kind[k] : k == NK ? &r->any : &r->aged;
}

static void print_head(FILE *o, const ds_bt_source_t *src, const char *const *names,
                       const ds_bt_report_t *r, size_t n) {
    char a[40], b[40];
    fprintf(o, "Backtest of %s: %lld records.\n", src->topic, (long long)src->records);
    fprintf(o, "Deals: %lld, of which %lld won, %lld lost, %lld still open.\n", (long long)r->deals,
            (long long)r->won, (long long)r->lost, (long long)r->open);
    if (src->since != INT64_MIN || src->until != INT64_MAX) {
        if (src->since != INT64_MIN)
            ds_clock_format(src->since, a, sizeof(a));
        if (src->until != INT64_MAX)
            ds_clock_format(src->until, b, sizeof(b));
        fprintf(o,
                "Range: deals opened from %s to %s,\njudged on their events until then (event "
                "time).\n",
                src->since != INT64_MIN ? a : "the beginning",
                src->until != INT64_MAX ? b : "the end");
    }
    fprintf(o,
            "Events: %lld applied, %lld duplicates, %lld ignored (deal closed, ...), %lld out "
            "of range.\n",
            (long long)r->applied, (long long)r->duplicates, (long long)r->ignored,
            (long long)r->out_of_range);
    if (src->undecodable)
        fprintf(o, "%lld records skipped: undecodable (the watcher sends them to %s.dlq).\n",
                (long long)src->undecodable, src->topic);
    if (n == 1)
        fprintf(o, "Rules: %s\n", names[0]);
    else
        fprintf(o, "Rules: %s\nCompared with: %s\n", names[0], names[1]);
    if (isnan(r->median_won_cycle_days))
        fprintf(o, "No won deal: no median won cycle, no AGED line.\n\n");
    else
        fprintf(o, "Median won cycle %.1f days; AGED after %.1f days.\n\n",
                r->median_won_cycle_days, r->aged_after_days);
}

static void print_single(FILE *o, const ds_bt_report_t *r) {
    fprintf(o, "%-17s%9s%8s%8s%8s%8s%11s%8s%8s%7s\n", "kind", "alerts", "deals", "won", "lost",
            "open", "precision", "recall", "lead d", "noise");
    for (int k = 0; k <= NK + 1; k++) {
        const ds_bt_figures_t *f = figures(r, k);
        char label[32], p1[16], p2[16], p3[16], p4[16];
        if (k == NK + 1 && !isnan(r->aged_after_days))
            snprintf(label, sizeof(label), "AGED > %.1f d", r->aged_after_days);
        else
            snprintf(label, sizeof(label), "%s", kind_label(k));
        fprintf(o, "%-17s%9lld%8lld%8lld%8lld%8lld%11s%8s%8s%7s\n", label,
                (long long)f->alerts_opened, (long long)f->deals_alerted, (long long)f->won,
                (long long)f->lost, (long long)f->open, pct(p1, sizeof(p1), f->precision),
                pct(p2, sizeof(p2), f->recall), num1(p3, sizeof(p3), f->median_lead_days),
                pct(p4, sizeof(p4), f->noise));
    }
    fprintf(o, "\nalerts: alerts opened; deals: deals alerted, then by outcome (won, lost, still\n"
               "open); precision: lost / (won + lost) of the alerted deals that closed; recall:\n"
               "share of the lost deals alerted before they closed; lead d: median days from a\n"
               "deal's first alert to its DEAL_LOST; noise: share of the won deals alerted.\n"
               "AGED (report only): deals open longer than 1.65 x the median won cycle.\n");
}

/* "+3", "-2.5", "+17.5 pt": b minus a in the figure's own unit, of the
 * values as shown (rounded to 0.1), so that the column adds up */
static const char *change(char *buf, size_t n, double a, double b, int unit) {
    if (isnan(a) || isnan(b))
        return "-";
    if (unit == 0) {
        snprintf(buf, n, "%+.0f", b - a);
        return buf;
    }
    double k = unit == 1 ? 10 : 1000; /* tenths of a day, of a point */
    double d = (round(b * k) - round(a * k)) / 10;
    snprintf(buf, n, unit == 1 ? "%+.1f" : "%+.1f pt", d);
    return buf;
}

/* name in at most w columns: its end, after "...", when it is longer */
static const char *fit(char *b, size_t n, const char *name, size_t w) {
    size_t l = strlen(name);
    if (l <= w || w < 4 || n <= w)
        return name;
    snprintf(b, n, "...%s", name + l - (w - 3));
    return b;
}

static void print_compare(FILE *o, const char *const *names, const ds_bt_report_t *const *r) {
    char n0[32], n1[32];
    fprintf(o, "%-28s%16s%18s%14s\n", "", fit(n0, sizeof(n0), names[0], 15),
            fit(n1, sizeof(n1), names[1], 17), "change");
    for (int k = 0; k <= NK + 1; k++) {
        const ds_bt_figures_t *a = figures(r[0], k), *b = figures(r[1], k);
        if (k == NK + 1 && !isnan(r[0]->aged_after_days))
            fprintf(o, "AGED > %.1f d (report only, the same under both)\n", r[0]->aged_after_days);
        else
            fprintf(o, "%s\n", kind_label(k));
        const struct {
            const char *label;
            double a, b;
            int unit; /* 0 count, 1 days, 2 share */
        } rows[] = {
            {"  alerts opened", (double)a->alerts_opened, (double)b->alerts_opened, 0},
            {"  deals alerted", (double)a->deals_alerted, (double)b->deals_alerted, 0},
            {"    won", (double)a->won, (double)b->won, 0},
            {"    lost", (double)a->lost, (double)b->lost, 0},
            {"    still open", (double)a->open, (double)b->open, 0},
            {"  precision", a->precision, b->precision, 2},
            {"  recall", a->recall, b->recall, 2},
            {"  median lead time (days)", a->median_lead_days, b->median_lead_days, 1},
            {"  noise", a->noise, b->noise, 2},
        };
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            char va[24], vb[24], vc[24];
            const char *sa, *sb;
            if (rows[i].unit == 0) {
                snprintf(va, sizeof(va), "%.0f", rows[i].a);
                snprintf(vb, sizeof(vb), "%.0f", rows[i].b);
                sa = va, sb = vb;
            } else if (rows[i].unit == 1) {
                sa = num1(va, sizeof(va), rows[i].a);
                sb = num1(vb, sizeof(vb), rows[i].b);
            } else {
                sa = pct(va, sizeof(va), rows[i].a);
                sb = pct(vb, sizeof(vb), rows[i].b);
            }
            fprintf(o, "%-28s%16s%18s%14s\n", rows[i].label, sa, sb,
                    change(vc, sizeof(vc), rows[i].a, rows[i].b, rows[i].unit));
        }
    }
    fprintf(o, "\nprecision: lost / (won + lost) of the alerted deals that closed; recall: share\n"
               "of the lost deals alerted before they closed; lead time: median days from a\n"
               "deal's first alert to its DEAL_LOST; noise: share of the won deals alerted.\n");
}

void ds_backtest_print_table(FILE *o, const ds_bt_source_t *src, const char *const *names,
                             const ds_bt_report_t *const *reps, size_t n) {
    print_head(o, src, names, reps[0], n);
    if (n >= 2)
        print_compare(o, names, reps);
    else
        print_single(o, reps[0]);
}

static void jstr(FILE *o, const char *s) {
    fputc('"', o);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(o, "\\%c", c);
        else if (c < 0x20)
            fprintf(o, "\\u%04x", c);
        else
            fputc(c, o);
    }
    fputc('"', o);
}

static void jnum(FILE *o, double v) {
    if (isnan(v) || isinf(v))
        fputs("null", o);
    else
        fprintf(o, "%.6g", v);
}

static void jtime(FILE *o, int64_t t, int64_t none) {
    if (t == none) {
        fputs("null", o);
        return;
    }
    char b[40];
    ds_clock_format(t, b, sizeof(b));
    jstr(o, b);
}

void ds_backtest_print_json(FILE *o, const ds_bt_source_t *src, const char *const *names,
                            const ds_bt_report_t *const *reps, size_t n) {
    const ds_bt_report_t *r = reps[0];
    fputs("{\"topic\":", o);
    jstr(o, src->topic);
    fprintf(o, ",\"records\":%lld,\"undecodable\":%lld,\"since\":", (long long)src->records,
            (long long)src->undecodable);
    jtime(o, src->since, INT64_MIN);
    fputs(",\"until\":", o);
    jtime(o, src->until, INT64_MAX);
    fprintf(o,
            ",\"events\":%lld,\"applied\":%lld,\"duplicates\":%lld,\"ignored\":%lld,"
            "\"out_of_range\":%lld,\"deals\":{\"total\":%lld,\"won\":%lld,\"lost\":%lld,"
            "\"open\":%lld},\"median_won_cycle_days\":",
            (long long)r->events, (long long)r->applied, (long long)r->duplicates,
            (long long)r->ignored, (long long)r->out_of_range, (long long)r->deals,
            (long long)r->won, (long long)r->lost, (long long)r->open);
    jnum(o, r->median_won_cycle_days);
    fputs(",\"aged_after_days\":", o);
    jnum(o, r->aged_after_days);
    fputs(",\"rules\":[", o);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",{\"file\":" : "{\"file\":", o);
        jstr(o, names[i]);
        fputs(",\"kinds\":{", o);
        for (int k = 0; k <= NK + 1; k++) {
            const ds_bt_figures_t *f = figures(reps[i], k);
            fprintf(o,
                    "%s\"%s\":{\"alerts_opened\":%lld,\"deals_alerted\":%lld,\"won\":%lld,"
                    "\"lost\":%lld,\"open\":%lld,\"precision\":",
                    k ? "," : "",
                    k < NK    ? ds_alert_kind_name(k)
                    : k == NK ? "ANY"
                              : "AGED",
                    (long long)f->alerts_opened, (long long)f->deals_alerted, (long long)f->won,
                    (long long)f->lost, (long long)f->open);
            jnum(o, f->precision);
            fputs(",\"recall\":", o);
            jnum(o, f->recall);
            fputs(",\"median_lead_days\":", o);
            jnum(o, f->median_lead_days);
            fputs(",\"noise\":", o);
            jnum(o, f->noise);
            fputc('}', o);
        }
        fputs("}}", o);
    }
    fputs("]}\n", o);
}
