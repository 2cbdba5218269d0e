/*
 * gen.c — see gen.h.  Each account carries a little state (the path of
 * each lead, its deal's progress and scenario); every step picks an
 * account and a plausible next action for it.  Event time advances by a
 * random gap, so a stream covers weeks of activity and deals that stop
 * hearing from the buyer go quiet in event time.
 */
#include "gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const insights[DS_GEN_INSIGHTS] = {"hygienist-absence", "inventory-drift",
                                                      "claims-leakage"};
static const char *const path_kind[] = {"spark", "intro", "confront", "diagnostic"};
static const int path_stage[] = {DS_CS_SPARK, DS_CS_INTRODUCE, DS_CS_CONFRONT, DS_CS_CONFRONT};

enum { HEALTHY, QUIET, JUMPER, NOMOB };

typedef struct lead {
    uint8_t progress, unsubscribed;
} lead_t;

typedef struct account {
    int nleads;
    lead_t leads[8];
    int deal_no;      /* current deal number, 0 = none yet */
    int deal_stage;   /* buyer's verified progress: index into stages */
    int deal_reported;
    int deal_sig;     /* verifiers given in this stage */
    int scenario;
    int seller_streak;
    uint8_t deal_open, deal_closed;
    int64_t reopen_at;
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
};

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
    if (g->o.accounts <= 0)
        g->o.accounts = 50;
    if (g->o.span_days <= 0)
        g->o.span_days = 90;
    g->s = opts->seed * 0x2545F4914F6CDD1DULL + 1;
    g->now = opts->start_ms;
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
        g->acc[a].scenario = rint_(g, 4);
    }
    return g;
}

void ds_gen_destroy(ds_gen_t *g) {
    if (!g)
        return;
    free(g->acc);
    free(g);
}

#define S(i) (g->ids[i])

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
        int k = 1 + rint_(g, 3);
        for (int i = 0; i < k; i++) {
            snprintf(g->sharedbuf[i], 64, "L-%04d-%d", a, rint_(g, ac->nleads));
            g->shared[i] = g->sharedbuf[i];
        }
        e->shared_with = g->shared;
        e->shared_with_count = (size_t)k;
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

/* the default verifiers of each stage (SPEC table) */
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

static void crm(ds_gen_t *g, int a, ds_gen_event_t *out) {
    account_t *ac = &g->acc[a];
    ds_crm_event_t *e = &out->crm;
    memset(e, 0, sizeof(*e));
    if (ac->deal_closed && g->now >= ac->reopen_at) {
        ac->deal_closed = 0;
        ac->deal_open = 0;
        ac->scenario = rint_(g, 4);
    }
    if (!ac->deal_open && !ac->deal_closed) {
        ac->deal_no++;
        ac->deal_open = 1;
        ac->deal_stage = ac->deal_reported = ac->deal_sig = ac->seller_streak = 0;
    }
    snprintf(S(0), 300, "crm-%llu-%ld", (unsigned long long)g->o.seed, g->n);
    snprintf(S(1), 300, "D-%04d-%d", a, ac->deal_no);
    snprintf(S(2), 300, "A-%04d", a);
    snprintf(S(4), 300, "rep-%d", a % 7);
    e->event_id = S(0);
    e->deal_id = S(1);
    e->account_id = S(2);
    e->owner_id = S(4);
    e->occurred_at = g->now;
    e->stage = DS_NONE;
    e->contact_role = DS_NONE;
    if (ac->deal_closed) {
        /* between deals: the rep keeps logging activity on the old one */
        e->type = DS_CRM_SELLER_ACTIVITY;
        e->activity = "email";
        return;
    }
    if (ac->deal_stage == 0 && ac->deal_sig == 0 && ac->seller_streak == 0) {
        e->type = DS_CRM_DEAL_OPENED;
        e->stage = DS_PS_RECOGNIZE_NEED;
        ac->seller_streak = 1;
        return;
    }
    int st = ac->deal_stage;
    bool quiet = ac->scenario == QUIET && st >= 1;
    int roll = rint_(g, 100);
    if (ac->scenario == JUMPER && ac->deal_reported < st + 2 && ac->deal_reported < 7 &&
        roll < 12) {
        e->type = DS_CRM_STAGE_CHANGED;
        e->stage = ++ac->deal_reported;
        return;
    }
    if (roll < 45 || quiet) {
        static const char *const acts[] = {"email", "call", "meeting", "proposal"};
        e->type = DS_CRM_SELLER_ACTIVITY;
        e->activity = acts[rint_(g, 4)];
        ac->seller_streak++;
        if (quiet && ac->seller_streak > 25 && chance(g, 10)) {
            /* the quiet deal is eventually lost */
            e->type = DS_CRM_DEAL_LOST;
            ac->deal_closed = 1;
            ac->reopen_at = g->now + 20 * g->gap;
        }
        return;
    }
    if (roll < 55) {
        e->type = DS_CRM_STAKEHOLDER_ADDED;
        snprintf(S(3), 300, "L-%04d-%d", a, rint_(g, ac->nleads));
        e->contact_id = S(3);
        e->contact_role = (ac->scenario != NOMOB && st >= 2 && chance(g, 30)) ? DS_ROLE_MOBILIZER
                                                                               : rint_(g, 3) + 1;
        return;
    }
    /* a buyer signal: the next verifier of the stage */
    const char *code = verifiers[st][ac->deal_sig];
    if (ac->scenario == NOMOB && !strcmp(code, "mobilizer_committed") &&
        ac->deal_sig + 1 < nverifiers[st])
        code = verifiers[st][++ac->deal_sig]; /* this buying group never commits a mobilizer */
    e->type = DS_CRM_BUYER_SIGNAL;
    e->signal = code;
    snprintf(S(3), 300, "L-%04d-%d", a, rint_(g, ac->nleads));
    e->contact_id = S(3);
    ac->seller_streak = 0;
    if (++ac->deal_sig >= nverifiers[st]) {
        if (ac->scenario == NOMOB && st == 2) {
            ac->deal_sig = nverifiers[st] - 1; /* stuck: DEFINE_CRITERIA never verified */
            if (ac->deal_reported < 3)
                ac->deal_reported = 3;
            return;
        }
        ac->deal_sig = 0;
        ac->deal_stage++;
        if (ac->deal_stage >= 6) {
            out->crm.type = DS_CRM_BUYER_SIGNAL;
            ac->deal_closed = 1;
            ac->reopen_at = g->now + 20 * g->gap;
            /* the next event of this account closes it */
            ac->deal_stage = 5;
            return;
        }
        if (ac->deal_reported < ac->deal_stage)
            ac->deal_reported = ac->deal_stage;
    }
}

bool ds_gen_next(ds_gen_t *g, ds_gen_event_t *out) {
    if (g->have_last && chance(g, 1) && rint_(g, 2) == 0) {
        *out = g->last;
        out->duplicate = true;
        g->have_last = false;
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
