/*
 * rules.c — the default rules (docs/CONTRACT.md), catalog lookup and
 * destruction.  Parsing and printing the YAML form live in rules_yaml.c.
 * The catalog is kept sorted by content_id (for printing) and indexed by
 * a hash of it (every scored event looks its content up).
 */
#include "rules.h"

#include <math.h>

#include <stdlib.h>
#include <string.h>

#include "ds_hash.h"

static char *dupstr(const char *s) { return s ? strdup(s) : NULL; }

static int set_verifiers(ds_stage_rule_t *st, const char *const *codes, size_t n, double quiet) {
    st->verifiers = calloc(n ? n : 1, sizeof(char *));
    if (!st->verifiers)
        return -1;
    for (size_t i = 0; i < n; i++) {
        st->verifiers[i] = dupstr(codes[i]);
        if (!st->verifiers[i])
            return -1;
        st->verifiers_count = i + 1;
    }
    st->max_quiet_days = quiet;
    return 0;
}

ds_rules_t *ds_rules_new_default(void) {
    static uint64_t next_gen;
    ds_rules_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->gen = __atomic_add_fetch(&next_gen, 1, __ATOMIC_RELAXED);
    r->scoring.half_life_days = 30;
    r->scoring.repeat_window_days = 7;
    r->scoring.stage_points[DS_CS_SPARK] = 5;
    r->scoring.stage_points[DS_CS_INTRODUCE] = 10;
    r->scoring.stage_points[DS_CS_CONFRONT] = 20;
    r->scoring.stage_points[DS_CS_BUILD_B] = 4;
    r->scoring.stage_points[DS_CS_SPEC] = 1;
    r->scoring.type_weight[DS_MA_CONTENT_VIEWED] = 0.5;
    r->scoring.type_weight[DS_MA_CONTENT_COMPLETED] = 1.0;
    r->scoring.type_weight[DS_MA_DIAGNOSTIC_COMPLETED] = 1.5;
    r->scoring.type_weight[DS_MA_EMAIL_CLICKED] = 0.3;
    r->scoring.type_weight[DS_MA_WEBINAR_ATTENDED] = 1.0;
    r->scoring.type_weight[DS_MA_FORM_SUBMITTED] = 0.5;
    r->scoring.path_multiplier = 1.5;
    r->scoring.b_state_factor = 0.2;
    r->scoring.share_points = 8;
    r->scoring.share_cap = 5;
    r->scoring.follow_points = 20;
    r->scoring.follow_window_days = 14;
    r->scoring.group_points = 6;
    r->scoring.tier_confronted = 40;
    r->scoring.tier_connector = 30;
    r->scoring.consensus_target = 5.4;
    r->stall.max_unanswered_seller_actions = 3;
    r->stall.renotify_days = 7;
    r->stall.grace_minutes = 0;
    r->stall.mobilizer_required_from = DS_PS_DEFINE_CRITERIA;
    r->dedupe_window_days = 7;

    static const char *const rn[] = {"live_call_accepted"};
    static const char *const eo[] = {"status_quo_flaw_acknowledged",
                                     "insight_exploration_committed"};
    static const char *const dc[] = {"mobilizer_committed", "resources_committed",
                                     "timeline_established"};
    static const char *const ev[] = {"stakeholder_consensus",
                                     "requirements_reflect_differentiators"};
    static const char *const ss[] = {"roi_validated", "funding_secured"};
    static const char *const ng[] = {"contract_signed"};
    static const char *const im[] = {"project_team_assigned"};
    static const char *const ei[] = {"impact_reviewed"};
    ds_stage_rule_t *s = r->stall.stages;
    if (set_verifiers(&s[DS_PS_RECOGNIZE_NEED], rn, 1, 14) ||
        set_verifiers(&s[DS_PS_EXPLORE_OPTIONS], eo, 2, 21) ||
        set_verifiers(&s[DS_PS_DEFINE_CRITERIA], dc, 3, 21) ||
        set_verifiers(&s[DS_PS_EVALUATE_OPTIONS], ev, 2, 21) ||
        set_verifiers(&s[DS_PS_SELECT_SUPPLIER], ss, 2, 14) ||
        set_verifiers(&s[DS_PS_NEGOTIATE], ng, 1, 14) ||
        set_verifiers(&s[DS_PS_IMPLEMENT], im, 1, 30) ||
        set_verifiers(&s[DS_PS_EVALUATE_IMPACT], ei, 1, 60)) {
        ds_rules_destroy(r);
        return NULL;
    }
    return r;
}

void ds_rules_destroy(ds_rules_t *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->scoring.catalog_count; i++) {
        free(r->scoring.catalog[i].content_id);
        free(r->scoring.catalog[i].insight_id);
    }
    free(r->scoring.catalog);
    free(r->scoring.catalog_index);
    for (int s = 0; s < DS_PS__COUNT; s++) {
        ds_stage_rule_t *st = &r->stall.stages[s];
        for (size_t i = 0; i < st->verifiers_count; i++)
            free(st->verifiers[i]);
        free(st->verifiers);
    }
    free(r);
}

static size_t catalog_slot(const char *content_id, size_t cap) {
    return (size_t)ds_fnv64(content_id, strlen(content_id)) & (cap - 1);
}

int ds_rules_index_catalog(ds_rules_t *r) {
    free(r->scoring.catalog_index);
    r->scoring.catalog_index = NULL;
    r->scoring.catalog_index_cap = 0;
    size_t n = r->scoring.catalog_count, cap = 16;
    if (!n)
        return 0;
    while (cap < 2 * n)
        cap *= 2;
    uint32_t *ix = calloc(cap, sizeof(*ix));
    if (!ix || n >= UINT32_MAX)
        return free(ix), -1;
    for (size_t i = 0; i < n; i++) {
        size_t k = catalog_slot(r->scoring.catalog[i].content_id, cap);
        while (ix[k])
            k = (k + 1) & (cap - 1);
        ix[k] = (uint32_t)i + 1;
    }
    r->scoring.catalog_index = ix;
    r->scoring.catalog_index_cap = cap;
    return 0;
}

const ds_catalog_entry_t *ds_rules_catalog_find(const ds_rules_t *r, const char *content_id) {
    if (!content_id)
        return NULL;
    if (r->scoring.catalog_index) {
        size_t cap = r->scoring.catalog_index_cap;
        for (size_t k = catalog_slot(content_id, cap); r->scoring.catalog_index[k];
             k = (k + 1) & (cap - 1)) {
            const ds_catalog_entry_t *e = &r->scoring.catalog[r->scoring.catalog_index[k] - 1];
            if (!strcmp(e->content_id, content_id))
                return e;
        }
        return NULL;
    }
    size_t lo = 0, hi = r->scoring.catalog_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->scoring.catalog[mid].content_id, content_id);
        if (c == 0)
            return &r->scoring.catalog[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int64_t ds_days_ms(double days) {
    if (!(days > 0))
        return 0;
    double ms = days * DS_DAY_MS;
    if (ms >= 9.0e18)
        return INT64_MAX;
    return (int64_t)llround(ms);
}
