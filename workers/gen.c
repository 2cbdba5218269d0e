/*
 * gen.c — see gen.h.  Each account carries a little state (the path of
 * each lead, its deal's progress and buyer behaviour); every step picks an
 * account and a plausible next action for it.  Event time advances by a
 * random gap, so a stream covers weeks of activity and deals that stop
 * hearing from the buyer go quiet in event time.
 *
 * The WIDE and SKEW profiles (marketing only) are separate functions
 * below: a fixed catalog of 2,400 items, one byte of state per lead, an
 * account's leads all walking the account's insight; their cost per event
 * is O(1) whatever the number of accounts or leads.
 */
#include "gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_buf.h"

static const char *const insights[DS_GEN_INSIGHTS] = {"hygienist-absence", "inventory-drift",
                                                      "claims-leakage"};
static const char *const path_kind[] = {"spark", "intro", "confront", "diagnostic"};
static const int path_stage[] = {DS_CS_SPARK, DS_CS_INTRODUCE, DS_CS_CONFRONT, DS_CS_CONFRONT};

/* The buying behaviour of a deal, drawn when it opens; its outcome follows
 * from it (see crm_open). */
enum {
    B_WIN,       /* verifiers in time, a mobilizer early: won */
    B_JUMPER,    /* the rep reports stages ahead; won at the won pace, else lost */
    B_QUIET,     /* the buyer goes silent at some stage: lost long after */
    B_ONE_SIDED, /* the seller chases, the buyer seldom answers: lost */
    B_SLOW,      /* verifiers at 2-4 times the won pace: lost when a stage drags */
    B_NOMOB,     /* no mobilizer ever: stuck in DEFINE_CRITERIA, lost */
    B_ZOMBIE,    /* goes silent early; never closed, the account moves on */
    B__COUNT
};

typedef struct crm_deal {
    int no; /* deal number, 0 = none yet */
    int behaviour;
    uint8_t open, closed, won_next, stage_news, mobilizer, mob_added, silent;
    int stage, sig; /* the buyer's verified progress: stage index, verifiers given in it */
    int reported;   /* the stage the rep reports */
    int unanswered, give_up_actions;
    int stop_stage;      /* B_QUIET, B_ZOMBIE: the buyer goes silent there */
    double pace_days;    /* mean time between verifiers */
    double give_up_days; /* lost (abandoned) after this long silent or in a stage */
    int64_t last_buyer, next_signal_at, stage_since, reopen_at;
} crm_deal_t;

/* a buyer's next verifier, due at `at` (stale once the deal's differs) */
typedef struct crm_due {
    int64_t at;
    int account;
} crm_due_t;

typedef struct lead {
    uint8_t progress, unsubscribed;
} lead_t;

typedef struct account {
    int nleads;
    lead_t leads[8];
    crm_deal_t deal; /* the account's current deal (CRM side) */
} account_t;

struct ds_gen {
    ds_gen_opts_t o;
    uint64_t s;
    int64_t now, gap;
    long n;
    account_t *acc;
    ds_gen_event_t last;
    bool have_last;
    char ids[8][300];
    const char *shared[4];
    char sharedbuf[4][64];
    crm_due_t *due; /* CRM: buyer signals by due time (a min-heap) */
    size_t ndue, cdue;
    struct wide *w; /* the WIDE and SKEW profiles' state; NULL for DEMO */
};

static bool wide_new(ds_gen_t *g);
static void wide_destroy(struct wide *w);
static void wide_marketing(ds_gen_t *g, ds_gen_event_t *out);

static uint64_t rnd(ds_gen_t *g) {
    /* splitmix64 */
    uint64_t z = (g->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int rint_(ds_gen_t *g, int n) { return (int)(rnd(g) % (uint64_t)n); }
static bool chance(ds_gen_t *g, int pct) { return rint_(g, 1000) < pct * 10; }

ds_gen_t *ds_gen_new(const ds_gen_opts_t *opts) {
    ds_gen_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->o = *opts;
    g->s = opts->seed * 0x2545F4914F6CDD1DULL + 1;
    g->now = opts->start_ms;
    if (g->o.profile != DS_GEN_DEMO) {
        if (!wide_new(g)) {
            ds_gen_destroy(g);
            return NULL;
        }
        return g;
    }
    if (g->o.accounts <= 0)
        g->o.accounts = 50;
    if (g->o.span_days <= 0)
        g->o.span_days = 90;
    g->gap = (int64_t)(g->o.span_days * 86400000.0 / (g->o.accounts * 60.0));
    if (g->gap < 1)
        g->gap = 1;
    g->acc = calloc((size_t)g->o.accounts, sizeof(*g->acc));
    if (!g->acc) {
        free(g);
        return NULL;
    }
    for (int a = 0; a < g->o.accounts; a++) {
        g->acc[a].nleads = 3 + rint_(g, 6);
        g->acc[a].deal.behaviour = rint_(g, B__COUNT); /* drawn again when a deal opens */
    }
    return g;
}

void ds_gen_destroy(ds_gen_t *g) {
    if (!g)
        return;
    free(g->acc);
    free(g->due);
    wide_destroy(g->w);
    free(g);
}

#define S(i) (g->ids[i])

/* e is shared with 1 to 3 leads of account a (of nleads), whose ids have
 * the account's number in `width` digits. */
static void share(ds_gen_t *g, ds_ma_event_t *e, int width, int a, int nleads) {
    int k = 1 + rint_(g, 3);
    for (int i = 0; i < k; i++) {
        snprintf(g->sharedbuf[i], sizeof(g->sharedbuf[i]), "L-%0*d-%d", width, a, rint_(g, nleads));
        g->shared[i] = g->sharedbuf[i];
    }
    e->shared_with = g->shared;
    e->shared_with_count = (size_t)k;
}

static void marketing(ds_gen_t *g, int a, ds_gen_event_t *out) {
    account_t *ac = &g->acc[a];
    int l = rint_(g, ac->nleads);
    lead_t *ld = &ac->leads[l];
    const char *ins = insights[a % DS_GEN_INSIGHTS];
    ds_ma_event_t *e = &out->ma;
    memset(e, 0, sizeof(*e));
    snprintf(S(0), 300, "ma-%llu-%ld", (unsigned long long)g->o.seed, g->n);
    snprintf(S(1), 300, "L-%04d-%d", a, l);
    snprintf(S(2), 300, "A-%04d", a);
    e->event_id = S(0);
    e->lead_id = S(1);
    e->account_id = (a % 17 == 16) ? NULL : S(2); /* a few leads without account */
    e->occurred_at = g->now;
    e->content_stage = DS_NONE;
    e->source = "marketo";
    if (ld->unsubscribed) {
        e->type = DS_MA_EMAIL_CLICKED;
        snprintf(S(3), 300, "newsletter-%d", rint_(g, 4));
        e->content_id = S(3);
        return;
    }
    int roll = rint_(g, 100);
    int step = ld->progress < 3 ? ld->progress : 3;
    bool carry = chance(g, 50); /* else the catalog classifies it */
    if (roll < 45) {
        snprintf(S(3), 300, "%s-%s", ins, path_kind[step]);
        e->content_id = S(3);
        e->type = step == 3 ? DS_MA_DIAGNOSTIC_COMPLETED
                            : (chance(g, 50) ? DS_MA_CONTENT_COMPLETED : DS_MA_CONTENT_VIEWED);
        if (carry) {
            e->insight_id = ins;
            e->content_stage = path_stage[step];
        }
        if (ld->progress < 4 && chance(g, 55))
            ld->progress++;
    } else if (roll < 55) {
        bool spec = chance(g, 40);
        snprintf(S(3), 300, "%s-%s", ins, spec ? "spec" : "buildb");
        e->content_id = S(3);
        e->type = chance(g, 50) ? DS_MA_CONTENT_VIEWED : DS_MA_CONTENT_COMPLETED;
        if (carry) {
            e->insight_id = ins;
            e->content_stage = spec ? DS_CS_SPEC : DS_CS_BUILD_B;
        }
    } else if (roll < 67 && ac->nleads > 1) {
        snprintf(S(3), 300, "%s-%s", ins, path_kind[step > 2 ? 2 : step]);
        e->content_id = S(3);
        e->type = DS_MA_CONTENT_SHARED;
        share(g, e, 4, a, ac->nleads);
    } else if (roll < 77) {
        snprintf(S(3), 300, "%s-webinar", ins);
        e->content_id = S(3);
        e->type = DS_MA_WEBINAR_ATTENDED;
    } else if (roll < 90) {
        snprintf(S(3), 300, "%s-%s", ins, path_kind[step > 1 ? 1 : step]);
        e->content_id = S(3);
        e->type = DS_MA_EMAIL_CLICKED;
    } else if (roll < 99) {
        snprintf(S(3), 300, "%s-spec", ins);
        e->content_id = S(3);
        e->type = DS_MA_FORM_SUBMITTED;
    } else {
        e->type = DS_MA_UNSUBSCRIBED;
        ld->unsubscribed = 1;
    }
}

/* ---- the WIDE and SKEW profiles (marketing) ------------------------------ */

/* A catalog of 60 items per insight, in the kinds a content team makes:
 * the Spark -> Introduce -> Confront path (a diagnostic confronts with the
 * lead's own numbers), content about the solution (B-state, spec) and
 * webinars. */
static const struct {
    const char *kind;
    int items, stage;
} wide_kinds[] = {{"spark", 12, DS_CS_SPARK},       {"intro", 12, DS_CS_INTRODUCE},
                  {"confront", 12, DS_CS_CONFRONT}, {"diagnostic", 6, DS_CS_CONFRONT},
                  {"buildb", 6, DS_CS_BUILD_B},     {"spec", 6, DS_CS_SPEC},
                  {"webinar", 6, DS_CS_INTRODUCE}};
enum { W_SPARK, W_INTRO, W_CONFRONT, W_DIAG, W_BUILDB, W_SPEC, W_WEBINAR, W_NKINDS };
#define W_PER_INSIGHT 60

static const char *const wide_insights[DS_GEN_WIDE_INSIGHTS] = {
    "ins-00", "ins-01", "ins-02", "ins-03", "ins-04", "ins-05", "ins-06", "ins-07",
    "ins-08", "ins-09", "ins-10", "ins-11", "ins-12", "ins-13", "ins-14", "ins-15",
    "ins-16", "ins-17", "ins-18", "ins-19", "ins-20", "ins-21", "ins-22", "ins-23",
    "ins-24", "ins-25", "ins-26", "ins-27", "ins-28", "ins-29", "ins-30", "ins-31",
    "ins-32", "ins-33", "ins-34", "ins-35", "ins-36", "ins-37", "ins-38", "ins-39"};

void ds_gen_wide_catalog(size_t i, char *content_id, size_t n, const char **insight_id,
                         int *stage) {
    size_t ins = (i / W_PER_INSIGHT) % DS_GEN_WIDE_INSIGHTS, j = i % W_PER_INSIGHT;
    int k = 0;
    while (j >= (size_t)wide_kinds[k].items)
        j -= (size_t)wide_kinds[k++].items;
    snprintf(content_id, n, "%s-%s-%02zu", wide_insights[ins], wide_kinds[k].kind, j);
    *insight_id = wide_insights[ins];
    *stage = wide_kinds[k].stage;
}

/* One byte per lead: its progress on its account's insight (0..4) and,
 * in the top bit, unsubscribed. */
#define W_UNSUB 0x80

typedef struct wide {
    int leads;        /* per account */
    int pool;         /* leads without an account (WIDE: 6 per account) */
    uint8_t *lead;    /* accounts * leads, then pool */
    uint8_t *insight; /* each account's insight */
} wide_t;

static bool wide_new(ds_gen_t *g) {
    wide_t *w = calloc(1, sizeof(*w));
    if (!w)
        return false;
    g->w = w;
    bool skew = g->o.profile == DS_GEN_SKEW;
    if (g->o.accounts <= 0)
        g->o.accounts = skew ? 1 : 20000;
    w->leads = g->o.leads_per_account > 0 ? g->o.leads_per_account : skew ? 5000 : 12;
    w->pool = skew ? 0 : 6 * g->o.accounts;
    size_t n = (size_t)g->o.accounts * (size_t)w->leads + (size_t)w->pool;
    w->lead = calloc(n, 1);
    w->insight = calloc((size_t)g->o.accounts, 1);
    if (!w->lead || !w->insight)
        return false;
    for (int a = 0; a < g->o.accounts; a++)
        w->insight[a] = (uint8_t)rint_(g, DS_GEN_WIDE_INSIGHTS);
    return true;
}

static void wide_destroy(wide_t *w) {
    if (!w)
        return;
    free(w->lead);
    free(w->insight);
    free(w);
}

/* content id of a random item of `kind` of insight `ins` into S(3) */
static const char *wide_item(ds_gen_t *g, int ins, int kind) {
    snprintf(S(3), 300, "%s-%s-%02d", wide_insights[ins], wide_kinds[kind].kind,
             rint_(g, wide_kinds[kind].items));
    return S(3);
}

static void wide_marketing(ds_gen_t *g, ds_gen_event_t *out) {
    wide_t *w = g->w;
    ds_ma_event_t *e = &out->ma;
    memset(e, 0, sizeof(*e));
    bool lone = w->pool && chance(g, 4); /* 4 % of the events: no account */
    int a = lone ? -1 : rint_(g, g->o.accounts), l;
    uint8_t *ld;
    if (lone) {
        l = rint_(g, w->pool);
        ld = &w->lead[(size_t)g->o.accounts * (size_t)w->leads + (size_t)l];
        snprintf(S(1), 300, "V-%06d", l);
    } else {
        l = rint_(g, w->leads);
        ld = &w->lead[(size_t)a * (size_t)w->leads + (size_t)l];
        snprintf(S(1), 300, "L-%05d-%d", a, l);
        snprintf(S(2), 300, "A-%05d", a);
        e->account_id = S(2);
    }
    snprintf(S(0), 300, "w-%llu-%ld", (unsigned long long)g->o.seed, g->n);
    e->event_id = S(0);
    e->lead_id = S(1);
    e->occurred_at = g->now;
    e->content_stage = DS_NONE;
    e->source = "marketo";
    /* the account's insight; a lead without one (or 15 % of the time, any
     * lead) looks at another */
    int own = lone ? (l % DS_GEN_WIDE_INSIGHTS) : w->insight[a];
    bool other = chance(g, 15);
    int ins = other ? (own + 1 + rint_(g, DS_GEN_WIDE_INSIGHTS - 1)) % DS_GEN_WIDE_INSIGHTS : own;
    if (*ld & W_UNSUB) {
        e->type = DS_MA_EMAIL_CLICKED;
        snprintf(S(3), 300, "newsletter-%d", rint_(g, 4));
        e->content_id = S(3);
        return;
    }
    int progress = other ? 0 : (*ld & 7);
    int roll = rint_(g, 100), kind;
    if (roll < 67 && roll >= 55 && (lone || w->leads < 2))
        roll = 0; /* nobody to share with: content instead */
    if (roll < 45) {
        static const int path[] = {W_SPARK, W_INTRO, W_CONFRONT, W_DIAG, W_DIAG};
        kind = path[progress];
        if (kind == W_DIAG && chance(g, 50))
            kind = W_CONFRONT;
        e->type = kind == W_DIAG ? DS_MA_DIAGNOSTIC_COMPLETED
                                 : (chance(g, 50) ? DS_MA_CONTENT_COMPLETED : DS_MA_CONTENT_VIEWED);
        if (!other && progress < 4 && chance(g, 55))
            (*ld)++;
    } else if (roll < 55) {
        kind = chance(g, 40) ? W_SPEC : W_BUILDB;
        e->type = chance(g, 50) ? DS_MA_CONTENT_VIEWED : DS_MA_CONTENT_COMPLETED;
    } else if (roll < 67) {
        kind = progress > 2 ? W_CONFRONT : progress; /* W_SPARK..W_CONFRONT */
        e->type = DS_MA_CONTENT_SHARED;
        share(g, e, 5, a, w->leads);
    } else if (roll < 77) {
        kind = W_WEBINAR;
        e->type = DS_MA_WEBINAR_ATTENDED;
    } else if (roll < 90) {
        kind = progress > 1 ? W_INTRO : W_SPARK;
        e->type = DS_MA_EMAIL_CLICKED;
    } else if (roll < 99) {
        kind = W_SPEC;
        e->type = DS_MA_FORM_SUBMITTED;
    } else {
        e->type = DS_MA_UNSUBSCRIBED;
        *ld = W_UNSUB;
        return;
    }
    e->content_id = wide_item(g, ins, kind);
    if (e->type != DS_MA_CONTENT_SHARED && chance(g, 50)) { /* else the catalog classifies it */
        e->insight_id = wide_insights[ins];
        e->content_stage = wide_kinds[kind].stage;
    }
}

/* ---- CRM ------------------------------------------------------------------
 * A deal's buyer behaviour decides its outcome: won deals get their
 * verifiers at their pace and a mobilizer early; lost ones go quiet, turn
 * one-sided, sit in a stage well past the won pace or never find a
 * mobilizer; zombies stay open.  The rep logs activity in between and
 * reports stages (ahead of the buyer, for jumpers); buyers of live deals
 * also answer the seller now and then (a buyer signal that verifies
 * nothing). */

/* the default verifiers of each stage (docs/CONTRACT.md); a deal is won once the
 * buyer has given every verifier up to NEGOTIATE's contract_signed */
static const char *const verifiers[8][3] = {
    {"live_call_accepted"},
    {"status_quo_flaw_acknowledged", "insight_exploration_committed"},
    {"mobilizer_committed", "resources_committed", "timeline_established"},
    {"stakeholder_consensus", "requirements_reflect_differentiators"},
    {"roi_validated", "funding_secured"},
    {"contract_signed"},
    {"project_team_assigned"},
    {"impact_reviewed"}};
static const int nverifiers[8] = {1, 2, 3, 2, 2, 1, 1, 1};
#define WON_AFTER_STAGE 5 /* NEGOTIATE */

/* per 100 deals */
static const int behaviour_weight[B__COUNT] = {42, 8, 14, 11, 11, 8, 6};

#define DAY_MS 86400000.0

static double uniform(ds_gen_t *g, double lo, double hi) {
    return lo + (hi - lo) * (double)(rnd(g) >> 11) / 9007199254740992.0;
}

static int64_t days_ms(double d) {
    return (int64_t)(d * DAY_MS);
}

/* Buyer signals come when they are due, whichever account the step drew:
 * a deal's next verifier goes into a min-heap by due time, and the first
 * CRM step at or after that time serves it (otherwise its wait would be
 * the account's next turn, days in a mix with few CRM events). */
static void crm_due_push(ds_gen_t *g, int64_t at, int account) {
    if (g->ndue == g->cdue) {
        crm_due_t *n = ds_grow(g->due, &g->cdue, sizeof(*n), 64);
        if (!n)
            return; /* served at the account's next turn instead */
        g->due = n;
    }
    size_t i = g->ndue++;
    g->due[i] = (crm_due_t){at, account};
    for (; i > 0 && g->due[(i - 1) / 2].at > g->due[i].at; i = (i - 1) / 2) {
        crm_due_t t = g->due[i];
        g->due[i] = g->due[(i - 1) / 2];
        g->due[(i - 1) / 2] = t;
    }
}

static void crm_due_pop(ds_gen_t *g) {
    g->due[0] = g->due[--g->ndue];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < g->ndue && g->due[l].at < g->due[m].at)
            m = l;
        if (r < g->ndue && g->due[r].at < g->due[m].at)
            m = r;
        if (m == i)
            break;
        crm_due_t t = g->due[i];
        g->due[i] = g->due[m];
        g->due[m] = t;
        i = m;
    }
}

/* The account whose buyer's verifier is due by now, or -1. */
static int crm_due_account(ds_gen_t *g) {
    while (g->ndue) {
        const crm_due_t *t = &g->due[0];
        const crm_deal_t *d = &g->acc[t->account].deal;
        if (d->closed || d->silent || d->won_next || d->next_signal_at != t->at) {
            crm_due_pop(g); /* stale */
            continue;
        }
        return t->at <= g->now ? t->account : -1;
    }
    return -1;
}

static void crm_schedule_signal(ds_gen_t *g, int a, crm_deal_t *d) {
    d->next_signal_at = g->now + days_ms(d->pace_days * uniform(g, 0.5, 1.5));
    crm_due_push(g, d->next_signal_at, a);
}

/* A new deal for the account: its behaviour and the pace that goes with it. */
static void crm_open(ds_gen_t *g, int a, crm_deal_t *d) {
    int no = d->no + 1, r = rint_(g, 100), b = 0;
    for (int acc = behaviour_weight[0]; r >= acc && b + 1 < B__COUNT; acc += behaviour_weight[b])
        b++;
    memset(d, 0, sizeof(*d));
    d->no = no;
    d->open = 1;
    d->behaviour = b;
    d->last_buyer = d->stage_since = g->now;
    d->stop_stage = 99;
    switch (b) {
    case B_WIN:
        d->pace_days = uniform(g, 2, 6);
        d->mobilizer = chance(g, 85);
        break;
    case B_JUMPER: /* half of them buy at the won pace */
        d->pace_days = chance(g, 50) ? uniform(g, 2, 6) : uniform(g, 10, 18);
        d->give_up_days = uniform(g, 35, 70);
        d->mobilizer = chance(g, 60);
        break;
    case B_QUIET:
        d->pace_days = uniform(g, 2, 7);
        d->stop_stage = 1 + rint_(g, 3);
        d->give_up_days = uniform(g, 40, 90);
        d->mobilizer = chance(g, 50);
        break;
    case B_ONE_SIDED:
        d->pace_days = uniform(g, 10, 20);
        d->give_up_actions = 6 + rint_(g, 7);
        d->mobilizer = chance(g, 40);
        break;
    case B_SLOW:
        d->pace_days = uniform(g, 9, 18);
        d->give_up_days = uniform(g, 35, 70);
        d->mobilizer = chance(g, 50);
        break;
    case B_NOMOB:
        d->pace_days = uniform(g, 3, 8);
        d->give_up_days = uniform(g, 30, 60);
        break;
    default: /* B_ZOMBIE */
        d->pace_days = uniform(g, 3, 8);
        d->stop_stage = rint_(g, 2);
        d->give_up_days = uniform(g, 90, 180); /* then the account moves on */
        break;
    }
    crm_schedule_signal(g, a, d);
}

/* The deal ends (won or lost): the account opens its next one later. */
static void crm_close(ds_gen_t *g, crm_deal_t *d, ds_crm_event_t *e, int type) {
    e->type = type;
    d->closed = 1;
    d->reopen_at = g->now + days_ms(uniform(g, 2, 10));
}

/* DEAL_LOST is due: the buyer's behaviour has run its course. */
static bool crm_lost_due(const ds_gen_t *g, const crm_deal_t *d) {
    double silent = (double)(g->now - d->last_buyer) / DAY_MS;
    double in_stage = (double)(g->now - d->stage_since) / DAY_MS;
    switch (d->behaviour) {
    case B_QUIET:
    case B_NOMOB:
        return d->silent && silent > d->give_up_days;
    case B_ONE_SIDED:
        return d->unanswered >= d->give_up_actions;
    case B_SLOW:
    case B_JUMPER:
        return d->give_up_days > 0 && in_stage > d->give_up_days;
    default:
        return false;
    }
}

/* The buyer's next verifier, or NULL when this buyer gives none now. */
static const char *crm_next_verifier(ds_gen_t *g, int a, crm_deal_t *d) {
    if (d->stage >= d->stop_stage)
        d->silent = 1;
    if (d->silent || g->now < d->next_signal_at)
        return NULL;
    if (d->behaviour == B_ONE_SIDED && !chance(g, 35)) {
        crm_schedule_signal(g, a, d); /* the buyer lets the seller chase */
        return NULL;
    }
    const char *code = verifiers[d->stage][d->sig];
    if (d->behaviour == B_NOMOB && !strcmp(code, "mobilizer_committed"))
        code = verifiers[d->stage][++d->sig]; /* this buying group never commits a mobilizer */
    return code;
}

/* A verifier was given: the buyer moves on, and so does the rep's stage. */
static void crm_verified(ds_gen_t *g, int a, crm_deal_t *d) {
    d->last_buyer = g->now;
    d->unanswered = 0;
    crm_schedule_signal(g, a, d);
    if (++d->sig < nverifiers[d->stage])
        return;
    if (d->behaviour == B_NOMOB && d->stage == 2) {
        d->silent = 1; /* DEFINE_CRITERIA is never verified: nothing more to give */
        return;
    }
    d->sig = 0;
    d->stage_since = g->now;
    if (d->stage++ == WON_AFTER_STAGE) {
        d->won_next = 1;
        return;
    }
    d->stage_news = d->reported < d->stage;
}

/* Seller activity, stakeholders, the rep's stage reports, buyer replies. */
static void crm_filler(ds_gen_t *g, int a, crm_deal_t *d, ds_crm_event_t *e) {
    account_t *ac = &g->acc[a];
    if (d->behaviour == B_JUMPER && d->reported < d->stage + 2 && d->reported < 7 &&
        chance(g, 15)) {
        e->type = DS_CRM_STAGE_CHANGED;
        e->stage = ++d->reported;
        return;
    }
    int roll = rint_(g, 100);
    if (roll < 10) {
        e->type = DS_CRM_STAKEHOLDER_ADDED;
        snprintf(S(3), 300, "L-%04d-%d", a, rint_(g, ac->nleads));
        e->contact_id = S(3);
        e->contact_role = DS_ROLE_TALKER + rint_(g, 3);
        return;
    }
    /* a buyer who is still engaged answers the seller now and then */
    int reply = d->silent ? 0 : d->behaviour == B_ONE_SIDED ? 5 : d->behaviour == B_SLOW ? 20 : 60;
    if (d->unanswered > 0 && roll < 10 + reply) {
        static const char *const replies[] = {"email_replied", "meeting_held", "call_returned"};
        e->type = DS_CRM_BUYER_SIGNAL;
        e->signal = replies[rint_(g, 3)];
        snprintf(S(3), 300, "L-%04d-%d", a, rint_(g, ac->nleads));
        e->contact_id = S(3);
        d->unanswered = 0;
        d->last_buyer = g->now;
        return;
    }
    static const char *const acts[] = {"email", "call", "meeting", "proposal"};
    e->type = DS_CRM_SELLER_ACTIVITY;
    e->activity = acts[rint_(g, 4)];
    d->unanswered++;
}

static void crm(ds_gen_t *g, int a, ds_gen_event_t *out) {
    int due = crm_due_account(g);
    if (due >= 0)
        a = due;
    account_t *ac = &g->acc[a];
    crm_deal_t *d = &ac->deal;
    ds_crm_event_t *e = &out->crm;
    memset(e, 0, sizeof(*e));
    bool opened = false;
    if ((d->closed && g->now >= d->reopen_at) || !d->open ||
        (d->behaviour == B_ZOMBIE && d->silent &&
         (double)(g->now - d->last_buyer) / DAY_MS > d->give_up_days)) {
        crm_open(g, a, d); /* a zombie is left open: the account moves on */
        opened = true;
    }
    snprintf(S(0), 300, "crm-%llu-%ld", (unsigned long long)g->o.seed, g->n);
    snprintf(S(1), 300, "D-%04d-%d", a, d->no);
    snprintf(S(2), 300, "A-%04d", a);
    snprintf(S(4), 300, "rep-%d", a % 7);
    e->event_id = S(0);
    e->deal_id = S(1);
    e->account_id = S(2);
    e->owner_id = S(4);
    e->occurred_at = g->now;
    e->stage = DS_NONE;
    e->contact_role = DS_NONE;
    if (opened) {
        e->type = DS_CRM_DEAL_OPENED;
        e->stage = DS_PS_RECOGNIZE_NEED;
        return;
    }
    if (d->closed) {
        /* between deals: the rep keeps logging activity on the old one */
        e->type = DS_CRM_SELLER_ACTIVITY;
        e->activity = "email";
        return;
    }
    if (d->won_next) {
        crm_close(g, d, e, DS_CRM_DEAL_WON);
        return;
    }
    if (d->stage_news) {
        e->type = DS_CRM_STAGE_CHANGED;
        e->stage = d->reported = d->stage;
        d->stage_news = 0;
        return;
    }
    if (crm_lost_due(g, d)) {
        crm_close(g, d, e, DS_CRM_DEAL_LOST);
        return;
    }
    if (d->mobilizer && !d->mob_added && d->stage >= 1) {
        /* the buyer's need is recognised: the rep meets the mobilizer */
        e->type = DS_CRM_STAKEHOLDER_ADDED;
        snprintf(S(3), 300, "L-%04d-%d", a, rint_(g, ac->nleads));
        e->contact_id = S(3);
        e->contact_role = DS_ROLE_MOBILIZER;
        d->mob_added = 1;
        return;
    }
    const char *code = crm_next_verifier(g, a, d);
    if (!code) {
        crm_filler(g, a, d, e);
        return;
    }
    e->type = DS_CRM_BUYER_SIGNAL;
    e->signal = code;
    snprintf(S(3), 300, "L-%04d-%d", a, rint_(g, ac->nleads));
    e->contact_id = S(3);
    crm_verified(g, a, d);
}

bool ds_gen_next(ds_gen_t *g, ds_gen_event_t *out) {
    if (g->have_last && chance(g, 1) && rint_(g, 2) == 0) {
        *out = g->last;
        out->duplicate = true;
        g->have_last = false;
        return true;
    }
    if (g->w) { /* WIDE, SKEW: ~7 ms apart */
        g->now += 1 + (int64_t)(rnd(g) % 13);
        memset(out, 0, sizeof(*out));
        wide_marketing(g, out);
        g->n++;
        g->last = *out;
        g->have_last = true;
        return true;
    }
    g->now += 1 + (int64_t)(rnd(g) % (uint64_t)(2 * g->gap));
    int a = rint_(g, g->o.accounts);
    bool is_crm = g->o.mix == DS_GEN_CRM || (g->o.mix == DS_GEN_MIXED && chance(g, 40));
    memset(out, 0, sizeof(*out));
    out->is_crm = is_crm;
    if (is_crm)
        crm(g, a, out);
    else
        marketing(g, a, out);
    g->n++;
    g->last = *out;
    g->have_last = true;
    return true;
}
