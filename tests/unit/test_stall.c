/*
 * test_stall.c — the pure stall-detection domain (docs/CONTRACT.md,
 * "Stall detection"): CRM events are applied to one
 * ds_deal_t under the event clock, clock checks are made at chosen `now`
 * values, and every DealAlert handed to ctx->alert is copied and checked
 * (kind, state, level, alert_id, figures, message).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "ds_dedupe.h"
#include "stall.h"
#include "scoring_util.h"
#include "unit_util.h"

#define DAY ((int64_t)DS_DAY_MS)
#define HOUR (DAY / 24)
#define MINUTE (HOUR / 60)
#define T0 ((int64_t)1700000000000LL)
#define DEAL "D-1042"
#define ACCT "A-7"
#define MAX_RECS 64

/* Small rules so that days are easy: RECOGNIZE_NEED 10 quiet days,
 * EXPLORE_OPTIONS one verifier and 5 days, DEFINE_CRITERIA two verifiers. */
static const char RULES_YAML[] =
    "stall:\n"
    "  max_unanswered_seller_actions: 3\n"
    "  renotify_days: 7\n"
    "  grace_minutes: 0\n"
    "  mobilizer_required_from: DEFINE_CRITERIA\n"
    "  stages:\n"
    "    RECOGNIZE_NEED: {verifiers: [live_call_accepted], max_quiet_days: 10}\n"
    "    EXPLORE_OPTIONS: {verifiers: [status_quo_flaw_acknowledged], max_quiet_days: 5}\n"
    "    DEFINE_CRITERIA: {verifiers: [mobilizer_committed, resources_committed],"
    " max_quiet_days: 4}\n";

/* A copy of one DealAlert (the sink's record is valid during the call only). */
typedef struct rec {
    char *alert_id, *deal_id, *account_id, *owner_id, *message, *missing;
    int kind, state, level, reported, verified;
    int64_t last_buyer, last_seller, raised_at;
    int32_t unanswered;
    double quiet_days;
} rec_t;

typedef struct fx {
    ds_rules_t *rules;
    ds_watch_ctx_t ctx;
    rec_t recs[MAX_RECS];
    size_t n;
    /* stakeholder_is_mobilizer: the one contact the "scorer" says is MOBILIZER */
    const char *mob_contact;
    int mob_calls;
    char mob_account[64];
} fx_t;

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void on_alert(void *opaque, const ds_deal_alert_t *a) {
    fx_t *f = opaque;
    assert_true(f->n < MAX_RECS);
    rec_t *r = &f->recs[f->n++];
    memset(r, 0, sizeof(*r));
    r->alert_id = dup_or_null(a->alert_id);
    r->deal_id = dup_or_null(a->deal_id);
    r->account_id = dup_or_null(a->account_id);
    r->owner_id = dup_or_null(a->owner_id);
    r->message = dup_or_null(a->message);
    size_t len = 1;
    for (size_t i = 0; i < a->missing_verifiers_count; i++)
        len += strlen(a->missing_verifiers[i]) + 1;
    r->missing = calloc(1, len);
    assert_non_null(r->missing);
    size_t o = 0;
    for (size_t i = 0; i < a->missing_verifiers_count; i++)
        o += (size_t)snprintf(r->missing + o, len - o, "%s%s", i ? "," : "",
                              a->missing_verifiers[i]);
    r->kind = a->kind;
    r->state = a->state;
    r->level = a->level;
    r->reported = a->reported_stage;
    r->verified = a->verified_stage;
    r->last_buyer = a->last_buyer_signal_at;
    r->last_seller = a->last_seller_activity_at;
    r->raised_at = a->raised_at;
    r->unanswered = a->unanswered_seller_actions;
    r->quiet_days = a->quiet_days;
    assert_non_null(r->alert_id);
    assert_non_null(r->message);
}

static bool is_mobilizer(void *opaque, const char *account_id, const char *contact_id) {
    fx_t *f = opaque;
    f->mob_calls++;
    snprintf(f->mob_account, sizeof(f->mob_account), "%s", account_id ? account_id : "(null)");
    return f->mob_contact && contact_id && !strcmp(contact_id, f->mob_contact);
}

static void clear(fx_t *f) {
    for (size_t i = 0; i < f->n; i++) {
        rec_t *r = &f->recs[i];
        char *owned[] = {r->alert_id, r->deal_id, r->account_id,
                         r->owner_id, r->message, r->missing};
        for (size_t k = 0; k < UU_COUNT(owned); k++)
            free(owned[k]);
    }
    f->n = 0;
}

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    char err[256] = "";
    f->rules = ds_rules_load_buffer("test_stall.yaml", RULES_YAML, strlen(RULES_YAML), err,
                                    sizeof(err));
    if (!f->rules) {
        fprintf(stderr, "rules: %s\n", err);
        free(f);
        return -1;
    }
    f->ctx.rules = f->rules;
    f->ctx.grace_ms = 0;
    f->ctx.stakeholder_is_mobilizer = NULL;
    f->ctx.alert = on_alert;
    f->ctx.opaque = f;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    clear(f);
    ds_rules_destroy(f->rules);
    free(f);
    return 0;
}

/* ---- events (event clock: now = occurred_at) ------------------------------ */

static ds_crm_event_t crm(const char *id, int64_t t, int type) {
    ds_crm_event_t e = {.event_id = id, .occurred_at = t, .deal_id = DEAL, .account_id = ACCT};
    e.type = type;
    e.stage = e.contact_role = DS_NONE;
    return e;
}

static ds_err_t apply(fx_t *f, ds_deal_t *d, const ds_crm_event_t *e) {
    f->ctx.now = e->occurred_at;
    return ds_deal_apply(d, e, &f->ctx);
}

static void evaluate(fx_t *f, ds_deal_t *d, int64_t now) {
    f->ctx.now = now;
    ds_deal_evaluate(d, &f->ctx);
}

static ds_err_t open_deal(fx_t *f, ds_deal_t *d, const char *id, int64_t t, int stage) {
    ds_crm_event_t e = crm(id, t, DS_CRM_DEAL_OPENED);
    e.stage = stage;
    e.owner_id = "rep-1";
    return apply(f, d, &e);
}

/* A deal opened by event `id` at T0 at `stage`; the case fails if either
 * step does. */
static ds_deal_t *opened_deal(fx_t *f, const char *id, int stage) {
    ds_deal_t *d = ds_deal_new(DEAL);
    assert_non_null(d);
    assert_int_equal(open_deal(f, d, id, T0, stage), DS_ERR_OK);
    return d;
}

static ds_err_t seller(fx_t *f, ds_deal_t *d, const char *id, int64_t t) {
    ds_crm_event_t e = crm(id, t, DS_CRM_SELLER_ACTIVITY);
    e.activity = "email";
    return apply(f, d, &e);
}

/* n seller actions with ids <prefix><first>, <prefix><first + 1>, ... an
 * hour apart from t; each must return want (a failure names the action). */
static void sellers(fx_t *f, ds_deal_t *d, const char *prefix, int first, int n, int64_t t,
                    ds_err_t want) {
    char id[16];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%s%d", prefix, first + i);
        ds_err_t got = seller(f, d, id, t + i * HOUR);
        if (got != want)
            fail_msg("seller action %s: %s, want %s", id, ds_err2str(got), ds_err2str(want));
    }
}

static ds_err_t buyer(fx_t *f, ds_deal_t *d, const char *id, int64_t t, const char *signal,
                      const char *contact) {
    ds_crm_event_t e = crm(id, t, DS_CRM_BUYER_SIGNAL);
    e.signal = signal;
    e.contact_id = contact;
    e.contact_role = contact ? DS_ROLE_TALKER : DS_NONE;
    return apply(f, d, &e);
}

static ds_err_t stage_to(fx_t *f, ds_deal_t *d, const char *id, int64_t t, int stage) {
    ds_crm_event_t e = crm(id, t, DS_CRM_STAGE_CHANGED);
    e.stage = stage;
    return apply(f, d, &e);
}

static ds_err_t stakeholder(fx_t *f, ds_deal_t *d, const char *id, int64_t t,
                            const char *contact, int role) {
    ds_crm_event_t e = crm(id, t, DS_CRM_STAKEHOLDER_ADDED);
    e.contact_id = contact;
    e.contact_role = role;
    return apply(f, d, &e);
}

static ds_err_t close_deal(fx_t *f, ds_deal_t *d, const char *id, int64_t t, int type) {
    ds_crm_event_t e = crm(id, t, type);
    return apply(f, d, &e);
}

/* ---- assertions ------------------------------------------------------------ */

static void assert_rec(const rec_t *r, int kind, int state, int level) {
    if (r->kind != kind || r->state != state || r->level != level)
        fail_msg("alert %s: got %s/%s/level %d, want %s/%s/level %d", r->alert_id,
                 ds_alert_kind_name(r->kind), ds_alert_state_name(r->state), r->level,
                 ds_alert_kind_name(kind), ds_alert_state_name(state), level);
    assert_string_equal(r->deal_id, DEAL);
    assert_string_equal(r->account_id, ACCT);
}

static void assert_mentions(const rec_t *r, const char *s) {
    if (!strstr(r->message, s))
        fail_msg("message lacks \"%s\": %s", s, r->message);
}

static size_t count(const fx_t *f, int kind, int state) {
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->recs[i].kind == kind && f->recs[i].state == state)
            n++;
    return n;
}

static void assert_quiet(const rec_t *r, double days) {
    if (fabs(r->quiet_days - days) > 1e-9)
        fail_msg("quiet_days %.12g, want %.12g", r->quiet_days, days);
}

/* The case fails unless f has exactly one alert, of this kind, state and
 * level, with these reported and verified stages (UNCHECKED: not
 * checked) and missing verifiers, whose message holds the deal's id and
 * the words that follow (NULL after the last); that alert. */
#define UNCHECKED INT_MIN
static const rec_t *assert_only_alert(const fx_t *f, int kind, int state, int level, int reported,
                                      int verified, const char *missing, ...)
    __attribute__((sentinel));
static const rec_t *assert_only_alert(const fx_t *f, int kind, int state, int level, int reported,
                                      int verified, const char *missing, ...) {
    assert_int_equal(f->n, 1);
    const rec_t *r = &f->recs[0];
    assert_rec(r, kind, state, level);
    if (reported != UNCHECKED)
        assert_int_equal(r->reported, reported);
    if (verified != UNCHECKED)
        assert_int_equal(r->verified, verified);
    assert_string_equal(r->missing, missing);
    assert_mentions(r, DEAL);
    va_list ap;
    va_start(ap, missing);
    for (const char *w; (w = va_arg(ap, const char *));)
        assert_mentions(r, w);
    va_end(ap);
    return r;
}

/* A closed deal is no longer watched: closed, and a clock check long after
 * emits nothing. */
static void assert_watch_stopped(fx_t *f, ds_deal_t *d) {
    assert_true(ds_deal_is_closed(d));
    clear(f);
    evaluate(f, d, T0 + 100 * DAY);
    assert_int_equal(f->n, 0);
}

/* ---- 1. each alert kind fires on its condition ----------------------------- */

static void test_no_buyer_signal_fires(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_NONE);
    assert_int_equal(f->n, 0);
    evaluate(f, d, T0 + 11 * DAY);
    /* an absent stage is RECOGNIZE_NEED */
    const rec_t *r = assert_only_alert(
        f, DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN, 1, DS_PS_RECOGNIZE_NEED, DS_PS_RECOGNIZE_NEED,
        "live_call_accepted", "Recognizing the need", "live_call_accepted", NULL);
    assert_string_equal(r->owner_id, "rep-1");
    assert_true(r->last_buyer == DS_TS_NULL);
    assert_true(r->raised_at == T0 + 11 * DAY);
    assert_quiet(r, 11.0);
    /* still holding, nothing new at the same clock check */
    evaluate(f, d, T0 + 11 * DAY);
    assert_int_equal(f->n, 1);
    ds_deal_destroy(d);
}

static void test_one_sided_fires(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    sellers(f, d, "s", 1, 2, T0 + HOUR, DS_ERR_OK);
    assert_int_equal(f->n, 0); /* 2 < max_unanswered_seller_actions */
    assert_int_equal(seller(f, d, "s3", T0 + 3 * HOUR), DS_ERR_OK);
    const rec_t *r =
        assert_only_alert(f, DS_AK_ONE_SIDED, DS_AS_OPEN, 1, UNCHECKED, UNCHECKED,
                          "live_call_accepted", "3 seller actions", "live_call_accepted", NULL);
    assert_int_equal(r->unanswered, 3);
    assert_true(r->last_seller == T0 + 3 * HOUR);
    assert_true(r->last_buyer == DS_TS_NULL);
    assert_true(r->raised_at == T0 + 3 * HOUR);
    assert_quiet(r, 3.0 / 24.0); /* since opening, for every kind */
    ds_deal_destroy(d);
}

/* One seller action and one quiet day read in the singular. */
static void test_text_singular(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    assert_int_equal(seller(f, d, "s1", T0 + 1 * HOUR), DS_ERR_OK);
    evaluate(f, d, T0 + 11 * DAY);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN, 1);
    assert_mentions(&f->recs[0], ": 1 seller action and 11 days without");
    ds_deal_destroy(d);
}

static void test_unverified_stage_fires(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    assert_int_equal(f->n, 0);
    assert_int_equal(stage_to(f, d, "c1", T0 + HOUR, DS_PS_EXPLORE_OPTIONS), DS_ERR_OK);
    assert_only_alert(f, DS_AK_UNVERIFIED_STAGE, DS_AS_OPEN, 1, DS_PS_EXPLORE_OPTIONS,
                      DS_PS_RECOGNIZE_NEED, "live_call_accepted",
                      ds_purchase_stage_words(DS_PS_EXPLORE_OPTIONS),
                      ds_purchase_stage_words(DS_PS_RECOGNIZE_NEED), "live_call_accepted", NULL);
    ds_deal_destroy(d);
}

static void test_no_mobilizer_fires(void **state) {
    fx_t *f = *state;
    /* (a) the verified stage reaches mobilizer_required_from */
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    assert_int_equal(buyer(f, d, "b1", T0 + HOUR, "live_call_accepted", "L-1"), DS_ERR_OK);
    assert_int_equal(f->n, 0); /* verified EXPLORE_OPTIONS < DEFINE_CRITERIA */
    assert_int_equal(buyer(f, d, "b2", T0 + 2 * HOUR, "status_quo_flaw_acknowledged", "L-1"),
                     DS_ERR_OK);
    assert_only_alert(f, DS_AK_NO_MOBILIZER, DS_AS_OPEN, 1, DS_PS_RECOGNIZE_NEED,
                      DS_PS_DEFINE_CRITERIA, "mobilizer_committed,resources_committed",
                      "Defining purchase criteria", "mobilizer_committed", NULL);
    assert_false(ds_deal_mobilizer_known(d));
    ds_deal_destroy(d);
    clear(f);

    /* (b) the reported stage reaches it: two alerts, in AlertKind order */
    d = opened_deal(f, "e1", DS_PS_DEFINE_CRITERIA);
    assert_int_equal(f->n, 2);
    assert_rec(&f->recs[0], DS_AK_UNVERIFIED_STAGE, DS_AS_OPEN, 1);
    assert_rec(&f->recs[1], DS_AK_NO_MOBILIZER, DS_AS_OPEN, 1);
    assert_int_equal(f->recs[1].reported, DS_PS_DEFINE_CRITERIA);
    assert_int_equal(f->recs[1].verified, DS_PS_RECOGNIZE_NEED);
    assert_mentions(&f->recs[1], DEAL);
    /* a mobilizer_committed signal makes the mobilizer known: resolved */
    clear(f);
    assert_int_equal(buyer(f, d, "b1", T0 + HOUR, "mobilizer_committed", "L-2"), DS_ERR_OK);
    assert_true(ds_deal_mobilizer_known(d));
    assert_int_equal(count(f, DS_AK_NO_MOBILIZER, DS_AS_RESOLVED), 1);
    ds_deal_destroy(d);
}

/* ---- 2. the quiet boundary --------------------------------------------------- */

/* SPEC: "NO_BUYER_SIGNAL holds when quiet > max_quiet_days": exactly at the
 * boundary it does not hold yet; it opens one ms later. */
static void test_quiet_boundary(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    evaluate(f, d, T0 + 10 * DAY - 1);
    assert_int_equal(f->n, 0);
    evaluate(f, d, T0 + 10 * DAY); /* quiet == max_quiet_days: not > */
    assert_int_equal(f->n, 0);
    evaluate(f, d, T0 + 10 * DAY + 1);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN, 1);
    ds_deal_destroy(d);
}

/* ---- 3. reminders ------------------------------------------------------------ */

static void test_reminder_level_once(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    int64_t opened = T0 + 11 * DAY;
    evaluate(f, d, opened);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN, 1);

    evaluate(f, d, opened + 7 * DAY - 1); /* renotify_days not yet passed */
    assert_int_equal(f->n, 1);
    evaluate(f, d, opened + 7 * DAY); /* ≥ renotify_days */
    assert_int_equal(f->n, 2);
    const rec_t *r = &f->recs[1];
    assert_rec(r, DS_AK_NO_BUYER_SIGNAL, DS_AS_REMINDER, 2);
    assert_string_not_equal(r->alert_id, f->recs[0].alert_id);
    assert_true(r->raised_at == opened + 7 * DAY);
    assert_quiet(r, 18.0);
    assert_mentions(r, DEAL);
    assert_mentions(r, "live_call_accepted");

    /* not twice for the same level */
    evaluate(f, d, opened + 7 * DAY);
    assert_int_equal(f->n, 2);
    evaluate(f, d, opened + 7 * DAY + HOUR);
    assert_int_equal(f->n, 2);

    evaluate(f, d, opened + 14 * DAY);
    assert_int_equal(f->n, 3);
    assert_rec(&f->recs[2], DS_AK_NO_BUYER_SIGNAL, DS_AS_REMINDER, 3);

    /* a long gap: one REMINDER per evaluation at most */
    evaluate(f, d, opened + 60 * DAY);
    assert_int_equal(f->n, 4);
    assert_rec(&f->recs[3], DS_AK_NO_BUYER_SIGNAL, DS_AS_REMINDER, 4);

    /* every produced transition has its own id */
    for (size_t i = 0; i < f->n; i++)
        for (size_t j = i + 1; j < f->n; j++)
            assert_string_not_equal(f->recs[i].alert_id, f->recs[j].alert_id);
    ds_deal_destroy(d);
}

/* ---- 4. resolved on a buyer signal ------------------------------------------ */

static void test_resolved_on_buyer_signal(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    evaluate(f, d, T0 + 11 * DAY);
    evaluate(f, d, T0 + 18 * DAY);
    assert_int_equal(f->n, 2);
    assert_rec(&f->recs[1], DS_AK_NO_BUYER_SIGNAL, DS_AS_REMINDER, 2);
    char *first_open = strdup(f->recs[0].alert_id);
    assert_non_null(first_open);
    clear(f);

    assert_int_equal(buyer(f, d, "b1", T0 + 19 * DAY, "live_call_accepted", "L-1"), DS_ERR_OK);
    assert_int_equal(f->n, 1);
    const rec_t *r = &f->recs[0];
    assert_rec(r, DS_AK_NO_BUYER_SIGNAL, DS_AS_RESOLVED, 2); /* same level */
    assert_true(r->last_buyer == T0 + 19 * DAY);
    assert_int_equal(r->verified, DS_PS_EXPLORE_OPTIONS);
    assert_string_equal(r->missing, "status_quo_flaw_acknowledged");
    assert_quiet(r, 0.0);
    assert_mentions(r, DEAL);
    clear(f);

    /* quiet restarts from the signal, with the new verified stage's 5 days;
     * a new episode gets a new id */
    evaluate(f, d, T0 + 24 * DAY);
    assert_int_equal(f->n, 0);
    evaluate(f, d, T0 + 24 * DAY + 1);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN, 1);
    assert_string_not_equal(f->recs[0].alert_id, first_open);
    free(first_open);
    ds_deal_destroy(d);
}

/* ---- 5. won / lost resolves every open alert -------------------------------- */

/* A deal opened at EXPLORE_OPTIONS, three seller actions in its first
 * hours and no buyer answer, checked 11 days on. */
static ds_deal_t *one_sided_quiet_deal(fx_t *f) {
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_EXPLORE_OPTIONS);
    sellers(f, d, "s", 1, 3, T0 + HOUR, DS_ERR_OK);
    evaluate(f, d, T0 + 11 * DAY);
    return d;
}

static void test_close_resolves_all(void **state) {
    fx_t *f = *state;
    static const int outcomes[] = {DS_CRM_DEAL_WON, DS_CRM_DEAL_LOST};
    for (size_t o = 0; o < 2; o++) {
        clear(f);
        ds_deal_t *d = one_sided_quiet_deal(f);
        assert_int_equal(count(f, DS_AK_UNVERIFIED_STAGE, DS_AS_OPEN), 1);
        assert_int_equal(count(f, DS_AK_ONE_SIDED, DS_AS_OPEN), 1);
        assert_int_equal(count(f, DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN), 1);
        assert_int_equal(count(f, DS_AK_NO_MOBILIZER, DS_AS_OPEN), 0);
        clear(f);

        assert_int_equal(close_deal(f, d, "w1", T0 + 12 * DAY, outcomes[o]), DS_ERR_OK);
        assert_true(ds_deal_is_closed(d));
        assert_int_equal(f->n, 3);
        /* AlertKind order, each at the level it had reached */
        assert_rec(&f->recs[0], DS_AK_NO_BUYER_SIGNAL, DS_AS_RESOLVED, 1);
        assert_rec(&f->recs[1], DS_AK_ONE_SIDED, DS_AS_RESOLVED, 2);
        assert_rec(&f->recs[2], DS_AK_UNVERIFIED_STAGE, DS_AS_RESOLVED, 2);
        for (size_t i = 0; i < 3; i++)
            assert_mentions(&f->recs[i], DEAL);
        assert_watch_stopped(f, d);
        ds_deal_destroy(d);
    }
}

/* ---- 6. events after close are ignored -------------------------------------- */

static void test_event_after_close_ignored(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    /* a later DEAL_OPENED is ignored too (Precise semantics) */
    assert_int_equal(open_deal(f, d, "e2", T0 + HOUR, DS_PS_NEGOTIATE), DS_ERR_IGNORED);
    assert_int_equal(f->n, 0);
    assert_int_equal(close_deal(f, d, "w1", T0 + 2 * HOUR, DS_CRM_DEAL_WON), DS_ERR_OK);
    assert_int_equal(f->n, 0); /* nothing was open */

    sellers(f, d, "s", 1, 3, T0 + 3 * HOUR, DS_ERR_IGNORED);
    assert_int_equal(stage_to(f, d, "c1", T0 + 6 * HOUR, DS_PS_NEGOTIATE), DS_ERR_IGNORED);
    assert_int_equal(buyer(f, d, "b1", T0 + 7 * HOUR, "live_call_accepted", "L-1"), DS_ERR_IGNORED);
    assert_int_equal(stakeholder(f, d, "k1", T0 + 8 * HOUR, "L-2", DS_ROLE_TALKER), DS_ERR_IGNORED);
    assert_int_equal(close_deal(f, d, "l1", T0 + 9 * HOUR, DS_CRM_DEAL_LOST), DS_ERR_IGNORED);
    assert_int_equal(f->n, 0);
    assert_int_equal(ds_deal_stakeholder_count(d), 0);
    assert_watch_stopped(f, d);
    ds_deal_destroy(d);
}

/* ---- 7. an unknown signal code ---------------------------------------------- */

/* SPEC: "a code that no stage lists still counts as a buyer signal but
 * verifies nothing": resets unanswered, moves the last buyer signal time,
 * leaves the verified stage where it was. */
static void test_unknown_signal_code(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_EXPLORE_OPTIONS);
    assert_int_equal(count(f, DS_AK_UNVERIFIED_STAGE, DS_AS_OPEN), 1);
    evaluate(f, d, T0 + 11 * DAY);
    assert_int_equal(count(f, DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN), 1);
    sellers(f, d, "s", 1, 3, T0 + 11 * DAY + HOUR, DS_ERR_OK);
    assert_int_equal(count(f, DS_AK_ONE_SIDED, DS_AS_OPEN), 1);
    clear(f);

    int64_t t = T0 + 12 * DAY;
    assert_int_equal(buyer(f, d, "b1", t, "coffee_with_the_cfo", "L-1"), DS_ERR_OK);
    assert_int_equal(f->n, 2); /* UNVERIFIED_STAGE stays open: nothing verified */
    assert_rec(&f->recs[0], DS_AK_NO_BUYER_SIGNAL, DS_AS_RESOLVED, 1);
    assert_rec(&f->recs[1], DS_AK_ONE_SIDED, DS_AS_RESOLVED, 1);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(f->recs[i].verified, DS_PS_RECOGNIZE_NEED);
        assert_string_equal(f->recs[i].missing, "live_call_accepted");
        assert_true(f->recs[i].last_buyer == t);
        assert_int_equal(f->recs[i].unanswered, 0);
    }
    assert_int_equal(ds_deal_stakeholder_count(d), 1);
    clear(f);

    /* quiet counts from the unknown signal, with RECOGNIZE_NEED's 10 days */
    evaluate(f, d, t + 10 * DAY);
    assert_int_equal(count(f, DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN), 0);
    evaluate(f, d, t + 10 * DAY + 1);
    assert_int_equal(count(f, DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN), 1);
    assert_int_equal(count(f, DS_AK_UNVERIFIED_STAGE, DS_AS_RESOLVED), 0);
    clear(f);

    /* a BUYER_SIGNAL without a signal is a buyer signal that verifies nothing */
    assert_int_equal(buyer(f, d, "b2", t + 11 * DAY, NULL, NULL), DS_ERR_OK);
    assert_int_equal(count(f, DS_AK_NO_BUYER_SIGNAL, DS_AS_RESOLVED), 1);
    assert_int_equal(count(f, DS_AK_UNVERIFIED_STAGE, DS_AS_RESOLVED), 0);
    ds_deal_destroy(d);
}

/* ---- 8. a stage moving backwards -------------------------------------------- */

/* SPEC: "STAGE_CHANGED sets the reported stage" — backwards too; the
 * conditions are then evaluated against the new reported stage. */
static void test_stage_backwards(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    assert_int_equal(stage_to(f, d, "c1", T0 + 1 * HOUR, DS_PS_NEGOTIATE), DS_ERR_OK);
    assert_int_equal(f->n, 2);
    assert_rec(&f->recs[0], DS_AK_UNVERIFIED_STAGE, DS_AS_OPEN, 1);
    assert_rec(&f->recs[1], DS_AK_NO_MOBILIZER, DS_AS_OPEN, 1);
    char *first_open = strdup(f->recs[0].alert_id);
    assert_non_null(first_open);
    clear(f);

    /* back to EXPLORE_OPTIONS: still later than verified, below the
     * mobilizer threshold */
    assert_int_equal(stage_to(f, d, "c2", T0 + 2 * HOUR, DS_PS_EXPLORE_OPTIONS), DS_ERR_OK);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_NO_MOBILIZER, DS_AS_RESOLVED, 1);
    assert_int_equal(f->recs[0].reported, DS_PS_EXPLORE_OPTIONS);
    clear(f);

    /* back to the verified stage: the unverified claim is gone */
    assert_int_equal(stage_to(f, d, "c3", T0 + 3 * HOUR, DS_PS_RECOGNIZE_NEED), DS_ERR_OK);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_UNVERIFIED_STAGE, DS_AS_RESOLVED, 1);
    assert_int_equal(f->recs[0].reported, DS_PS_RECOGNIZE_NEED);
    clear(f);

    /* forward again: a new episode with a new id */
    assert_int_equal(stage_to(f, d, "c4", T0 + 4 * HOUR, DS_PS_SELECT_SUPPLIER), DS_ERR_OK);
    assert_int_equal(f->n, 2);
    assert_rec(&f->recs[0], DS_AK_UNVERIFIED_STAGE, DS_AS_OPEN, 1);
    assert_rec(&f->recs[1], DS_AK_NO_MOBILIZER, DS_AS_OPEN, 1);
    assert_int_equal(f->recs[0].reported, DS_PS_SELECT_SUPPLIER);
    assert_string_not_equal(f->recs[0].alert_id, first_open);
    free(first_open);
    clear(f);

    /* a STAGE_CHANGED without a stage is ignored */
    assert_int_equal(stage_to(f, d, "c5", T0 + 5 * HOUR, DS_NONE), DS_ERR_IGNORED);
    assert_int_equal(f->n, 0);
    ds_deal_destroy(d);
}

/* ---- 9. duplicates and save/load ------------------------------------------- */

static void test_duplicate_and_reload(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    assert_int_equal(open_deal(f, d, "e1", T0, DS_PS_RECOGNIZE_NEED), DS_ERR_DUPLICATE);
    assert_int_equal(seller(f, d, "s1", T0 + 1 * HOUR), DS_ERR_OK);
    assert_int_equal(seller(f, d, "s1", T0 + 1 * HOUR), DS_ERR_DUPLICATE);
    assert_int_equal(seller(f, d, "s2", T0 + 2 * HOUR), DS_ERR_OK);
    assert_int_equal(f->n, 0); /* 2 unanswered, not 3: s1 applied once */
    assert_int_equal(seller(f, d, "s3", T0 + 3 * HOUR), DS_ERR_OK);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_ONE_SIDED, DS_AS_OPEN, 1);
    assert_int_equal(f->recs[0].unanswered, 3);
    evaluate(f, d, T0 + 11 * DAY);
    assert_int_equal(f->n, 3);
    assert_rec(&f->recs[1], DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN, 1);
    assert_rec(&f->recs[2], DS_AK_ONE_SIDED, DS_AS_REMINDER, 2);
    clear(f);

    ds_buf_t b;
    ds_buf_init(&b, 0);
    su_save(&SU_DEAL, d, &b);
    ds_deal_t *d2 = su_load(&SU_DEAL, &b);
    assert_string_equal(ds_deal_id(d2), DEAL);
    assert_string_equal(ds_deal_account_id(d2), ACCT);
    assert_true(ds_deal_next_deadline(d2, f->rules) == ds_deal_next_deadline(d, f->rules));

    /* a truncated state does not load */
    ds_err_t err2 = DS_ERR_OK;
    assert_null(ds_deal_load(b.data, b.len - 1, &err2));
    assert_int_not_equal(err2, DS_ERR_OK);
    ds_buf_free(&b);

    /* the reload keeps the open alerts: nothing is emitted again */
    evaluate(f, d2, T0 + 11 * DAY);
    assert_int_equal(f->n, 0);
    /* and the dedupe memory */
    assert_int_equal(seller(f, d2, "s3", T0 + 3 * HOUR), DS_ERR_DUPLICATE);
    assert_int_equal(f->n, 0);

    /* the next transitions are the same, with the same ids */
    evaluate(f, d, T0 + 18 * DAY);
    size_t n1 = f->n;
    assert_int_equal(n1, 2);
    evaluate(f, d2, T0 + 18 * DAY);
    assert_int_equal(f->n, 2 * n1);
    assert_rec(&f->recs[0], DS_AK_NO_BUYER_SIGNAL, DS_AS_REMINDER, 2);
    assert_rec(&f->recs[1], DS_AK_ONE_SIDED, DS_AS_REMINDER, 3);
    for (size_t i = 0; i < n1; i++) {
        assert_int_equal(f->recs[n1 + i].kind, f->recs[i].kind);
        assert_int_equal(f->recs[n1 + i].state, f->recs[i].state);
        assert_int_equal(f->recs[n1 + i].level, f->recs[i].level);
        assert_string_equal(f->recs[n1 + i].alert_id, f->recs[i].alert_id);
        assert_string_equal(f->recs[n1 + i].message, f->recs[i].message);
    }
    clear(f);

    /* closing the reloaded deal resolves exactly what was open */
    assert_int_equal(close_deal(f, d2, "w1", T0 + 19 * DAY, DS_CRM_DEAL_LOST), DS_ERR_OK);
    assert_int_equal(f->n, 2);
    assert_rec(&f->recs[0], DS_AK_NO_BUYER_SIGNAL, DS_AS_RESOLVED, 2);
    assert_rec(&f->recs[1], DS_AK_ONE_SIDED, DS_AS_RESOLVED, 3);
    ds_deal_destroy(d2);
    ds_deal_destroy(d);
}

/* The verified stage is kept between evaluations; rules swapped in by a
 * reload (another object, maybe at a freed one's address) must not be
 * answered from what the old rules gave. */
static void test_verified_stage_follows_new_rules(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    assert_int_equal(buyer(f, d, "b1", T0 + HOUR, "live_call_accepted", NULL), DS_ERR_OK);
    assert_int_equal(stage_to(f, d, "c1", T0 + 2 * HOUR, DS_PS_EXPLORE_OPTIONS), DS_ERR_OK);
    assert_int_equal(f->n, 0); /* verified EXPLORE_OPTIONS = reported */
    int64_t before = ds_deal_next_deadline(d, f->rules);
    assert_true(before == T0 + HOUR + 5 * DAY + 1); /* EXPLORE_OPTIONS: 5 quiet days */

    /* the reload: RECOGNIZE_NEED now asks for a signal this deal lacks */
    static const char yaml[] =
        "stall:\n"
        "  stages:\n"
        "    RECOGNIZE_NEED: {verifiers: [budget_confirmed], max_quiet_days: 2}\n";
    char err[256] = "";
    ds_rules_t *r2 = ds_rules_load_buffer("reload.yaml", yaml, strlen(yaml), err, sizeof(err));
    assert_non_null(r2);
    assert_true(r2->gen != f->rules->gen);
    assert_true(ds_deal_next_deadline(d, r2) == T0 + HOUR + 2 * DAY + 1);
    f->ctx.rules = r2;
    evaluate(f, d, T0 + 3 * HOUR);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_UNVERIFIED_STAGE, DS_AS_OPEN, 1);
    assert_int_equal(f->recs[0].verified, DS_PS_RECOGNIZE_NEED);
    assert_string_equal(f->recs[0].missing, "budget_confirmed");
    clear(f);

    /* and back: the old rules' answer again, not the new one's */
    f->ctx.rules = f->rules;
    assert_true(ds_deal_next_deadline(d, f->rules) == before);
    evaluate(f, d, T0 + 4 * HOUR);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_UNVERIFIED_STAGE, DS_AS_RESOLVED, 1);
    /* a new signal under the same rules moves it too */
    assert_int_equal(buyer(f, d, "b2", T0 + 5 * HOUR, "status_quo_flaw_acknowledged", NULL),
                     DS_ERR_OK);
    assert_true(ds_deal_next_deadline(d, f->rules) == T0 + 5 * HOUR + 4 * DAY + 1);
    ds_rules_destroy(r2);
    ds_deal_destroy(d);
}

/* The days in a message are printf's "%.0f": ties to even, and "-0" when
 * the clock is a little behind the deal's events (wall clock, events
 * stamped ahead of it). */
static void test_message_days(void **state) {
    fx_t *f = *state;
    static const struct {
        int64_t behind; /* now - deal opened */
        const char *text;
    } cases[] = {
        {-HOUR, "(-0 days since"},        {DAY / 2, "(0 days since"},
        {3 * DAY / 2, "(2 days since"},   {5 * DAY / 2, "(2 days since"},
        {-3 * DAY / 2, "(-2 days since"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
        assert_int_equal(seller(f, d, "s1", T0), DS_ERR_OK);
        assert_int_equal(seller(f, d, "s2", T0), DS_ERR_OK);
        clear(f);
        ds_crm_event_t e = crm("s3", T0, DS_CRM_SELLER_ACTIVITY);
        f->ctx.now = T0 + cases[i].behind;
        assert_int_equal(ds_deal_apply(d, &e, &f->ctx), DS_ERR_OK);
        assert_int_equal(count(f, DS_AK_ONE_SIDED, DS_AS_OPEN), 1);
        for (size_t k = 0; k < f->n; k++)
            if (f->recs[k].kind == DS_AK_ONE_SIDED)
                assert_mentions(&f->recs[k], cases[i].text);
        clear(f);
        ds_deal_destroy(d);
    }
}

/* ---- 10. next deadline ------------------------------------------------------ */

/* One deal that fills every part of the saved state: owner and account,
 * seller and buyer times, signals, stakeholders, open alerts at a level,
 * a resolved one, dedupe ids. */
static ds_deal_t *mixed_deal(fx_t *f) {
    ds_deal_t *d = opened_deal(f, "x1", DS_PS_RECOGNIZE_NEED);
    sellers(f, d, "x", 2, 3, T0 + HOUR, DS_ERR_OK);
    assert_int_equal(stakeholder(f, d, "x5", T0 + 4 * HOUR, "C-9", DS_ROLE_BLOCKER), DS_ERR_OK);
    assert_int_equal(buyer(f, d, "x6", T0 + 5 * HOUR, "live_call_accepted", "C-7"), DS_ERR_OK);
    assert_int_equal(stage_to(f, d, "x7", T0 + 6 * HOUR, DS_PS_SELECT_SUPPLIER), DS_ERR_OK);
    evaluate(f, d, T0 + 40 * DAY);
    evaluate(f, d, T0 + 50 * DAY);
    clear(f);
    return d;
}

/* The records of earlier versions, which hold the stakeholders and the
 * dedupe ids themselves (mixed_deal() saved by the builds of versions 1
 * and 2: tests/fixtures/deal_v1.bin, deal_v2.bin), load to the deal the
 * events give: the same public fields, stakeholders, next deadline and
 * dedupe verdicts.  This version's whole deal (its record, stakeholders
 * and ids) loads back to itself; no truncation of any loads. */
static void test_deal_loads_earlier_versions(void **state) {
    fx_t *f = *state;
    static const struct {
        const char *file;
        size_t len;
        int version;
    } fx[] = {{"deal_v1.bin", 249, 1}, {"deal_v2.bin", 187, 2}};
    ds_buf_t b, pf, pf2;
    ds_buf_init(&b, 0);
    ds_buf_init(&pf, 0);
    ds_buf_init(&pf2, 0);
    for (size_t i = 0; i < sizeof(fx) / sizeof(fx[0]); i++) {
        ds_deal_t *d = mixed_deal(f);
        ds_buf_t old = {0};
        old.data = su_fixture(fx[i].file, &old.len);
        assert_int_equal(old.len, fx[i].len);
        assert_int_equal(old.data[0], fx[i].version);
        ds_deal_t *v = su_load(&SU_DEAL, &old);
        su_assert_prefixes_refused(&SU_DEAL, old.data, old.len);
        ds_buf_reset(&pf);
        ds_buf_reset(&pf2);
        assert_int_equal(ds_deal_public_fields(d, f->rules, &pf), DS_ERR_OK);
        assert_int_equal(ds_deal_public_fields(v, f->rules, &pf2), DS_ERR_OK);
        su_assert_same_bytes(&pf, &pf2);
        assert_int_equal(ds_deal_stakeholder_count(v), 2);
        assert_string_equal(ds_deal_stakeholder(v, 0), ds_deal_stakeholder(d, 0));
        assert_string_equal(ds_deal_stakeholder(v, 1), ds_deal_stakeholder(d, 1));
        assert_true(ds_deal_next_deadline(v, f->rules) == ds_deal_next_deadline(d, f->rules));
        /* this version's whole deal: loads back to itself */
        su_save(&SU_DEAL, v, &b);
        assert_int_equal(b.data[0], 'W');
        ds_deal_t *w = su_load_canonical(&SU_DEAL, &b);
        su_assert_prefixes_refused(&SU_DEAL, b.data, b.len);
        /* every event id of mixed_deal is still a duplicate, in each */
        static const char *const ids[] = {"x1", "x2", "x3", "x4", "x5", "x6", "x7"};
        for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
            ds_deal_t *each[] = {d, v, w};
            for (size_t m = 0; m < 3; m++)
                assert_int_equal(seller(f, each[m], ids[k], T0 + 7 * HOUR), DS_ERR_DUPLICATE);
        }
        free(old.data);
        ds_deal_destroy(w);
        ds_deal_destroy(v);
        ds_deal_destroy(d);
    }
    ds_buf_free(&b);
    ds_buf_free(&pf);
    ds_buf_free(&pf2);
}

static void test_next_deadline(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = ds_deal_new(DEAL);
    assert_non_null(d);
    assert_true(ds_deal_next_deadline(d, f->rules) == INT64_MAX); /* not opened */
    assert_int_equal(open_deal(f, d, "e1", T0, DS_PS_RECOGNIZE_NEED), DS_ERR_OK);

    /* quiet > 10 days first holds at opened + 10 days + 1 ms */
    int64_t dl = ds_deal_next_deadline(d, f->rules);
    assert_true(dl == T0 + 10 * DAY + 1);
    evaluate(f, d, dl - 1);
    assert_int_equal(f->n, 0);
    evaluate(f, d, dl);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN, 1);
    /* open: the reminder is next */
    assert_true(ds_deal_next_deadline(d, f->rules) == dl + 7 * DAY);
    clear(f);

    /* a verifying buyer signal: the next stage's 5 quiet days from it */
    int64_t t = T0 + 12 * DAY;
    assert_int_equal(buyer(f, d, "b1", t, "live_call_accepted", "L-1"), DS_ERR_OK);
    assert_int_equal(count(f, DS_AK_NO_BUYER_SIGNAL, DS_AS_RESOLVED), 1);
    assert_true(ds_deal_next_deadline(d, f->rules) == t + 5 * DAY + 1);

    assert_int_equal(close_deal(f, d, "w1", t + DAY, DS_CRM_DEAL_WON), DS_ERR_OK);
    assert_true(ds_deal_next_deadline(d, f->rules) == INT64_MAX);
    ds_deal_destroy(d);
}

/* ---- 11. mobilizer through the scorer's stored tier ------------------------- */

static void reach_define_criteria(fx_t *f, ds_deal_t *d) {
    assert_int_equal(open_deal(f, d, "e1", T0, DS_PS_RECOGNIZE_NEED), DS_ERR_OK);
    assert_int_equal(stakeholder(f, d, "k1", T0 + 1 * HOUR, "L-9", DS_ROLE_TALKER), DS_ERR_OK);
    assert_int_equal(buyer(f, d, "b1", T0 + 2 * HOUR, "live_call_accepted", "L-1"), DS_ERR_OK);
    assert_int_equal(buyer(f, d, "b2", T0 + 3 * HOUR, "status_quo_flaw_acknowledged", "L-1"),
                     DS_ERR_OK);
}

static void test_mobilizer_callback(void **state) {
    fx_t *f = *state;
    f->ctx.stakeholder_is_mobilizer = is_mobilizer;

    /* (a) the scorer says a stakeholder is MOBILIZER: mobilizer known */
    f->mob_contact = "L-9";
    ds_deal_t *d = ds_deal_new(DEAL);
    assert_non_null(d);
    reach_define_criteria(f, d);
    assert_int_equal(count(f, DS_AK_NO_MOBILIZER, DS_AS_OPEN), 0);
    assert_true(f->mob_calls > 0);
    assert_string_equal(f->mob_account, ACCT);
    evaluate(f, d, T0 + 4 * HOUR);
    assert_int_equal(f->n, 0);
    ds_deal_destroy(d);

    /* (b) no stakeholder is MOBILIZER yet (the callback names someone who is
     * not a stakeholder of this deal): NO_MOBILIZER opens; once the scorer's
     * stored tier of L-9 is MOBILIZER, the next clock check resolves it */
    f->mob_contact = "L-404";
    d = ds_deal_new(DEAL);
    assert_non_null(d);
    reach_define_criteria(f, d);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_NO_MOBILIZER, DS_AS_OPEN, 1);
    clear(f);
    f->mob_contact = "L-9";
    evaluate(f, d, T0 + 4 * HOUR);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_NO_MOBILIZER, DS_AS_RESOLVED, 1);
    assert_mentions(&f->recs[0], DEAL);
    ds_deal_destroy(d);
    clear(f);

    /* (c) without the callback, a contact role MOBILIZER counts */
    f->ctx.stakeholder_is_mobilizer = NULL;
    d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    assert_int_equal(stakeholder(f, d, "k1", T0 + HOUR, "L-5", DS_ROLE_MOBILIZER), DS_ERR_OK);
    assert_true(ds_deal_mobilizer_known(d));
    assert_int_equal(stage_to(f, d, "c1", T0 + 2 * HOUR, DS_PS_DEFINE_CRITERIA), DS_ERR_OK);
    assert_int_equal(count(f, DS_AK_NO_MOBILIZER, DS_AS_OPEN), 0);
    assert_int_equal(count(f, DS_AK_UNVERIFIED_STAGE, DS_AS_OPEN), 1);
    ds_deal_destroy(d);
}

/* ds_deal_may_ask_tiers for one event */
/* With a tier_epoch the deal asks for its stakeholders' tiers once per
 * epoch: again when the epoch moves (a new batch), when a stakeholder
 * joins or when the account changes; the answers follow. */
/* A deal at DEFINE_CRITERIA in tier epoch 1 whose stakeholders' tiers
 * are asked for (the scorer knows `contact` only): NO_MOBILIZER open. */
static ds_deal_t *mobilizer_epoch_deal(fx_t *f, const char *contact) {
    f->ctx.stakeholder_is_mobilizer = is_mobilizer;
    f->ctx.tier_epoch = 1;
    f->mob_contact = contact;
    ds_deal_t *d = ds_deal_new(DEAL);
    assert_non_null(d);
    reach_define_criteria(f, d);
    assert_int_equal(count(f, DS_AK_NO_MOBILIZER, DS_AS_OPEN), 1);
    clear(f);
    return d;
}

static void test_mobilizer_epoch(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = mobilizer_epoch_deal(f, "L-404");
    int calls = f->mob_calls;
    assert_true(calls > 0);
    evaluate(f, d, T0 + 4 * HOUR);
    evaluate(f, d, T0 + 5 * HOUR);
    assert_int_equal(f->mob_calls, calls); /* the same epoch: kept */

    /* the scorer's tier of L-9 changes; the same epoch still answers
     * from before, the next one sees it */
    f->mob_contact = "L-9";
    evaluate(f, d, T0 + 6 * HOUR);
    assert_int_equal(f->n, 0);
    f->ctx.tier_epoch = 2;
    evaluate(f, d, T0 + 7 * HOUR);
    assert_true(f->mob_calls > calls);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_NO_MOBILIZER, DS_AS_RESOLVED, 1);
    clear(f);

    /* a new stakeholder is asked for within the epoch */
    f->mob_contact = "L-404";
    f->ctx.tier_epoch = 3;
    evaluate(f, d, T0 + 8 * HOUR);
    assert_int_equal(count(f, DS_AK_NO_MOBILIZER, DS_AS_OPEN), 1);
    clear(f);
    f->mob_contact = "L-77";
    assert_int_equal(stakeholder(f, d, "k2", T0 + 9 * HOUR, "L-77", DS_ROLE_TALKER), DS_ERR_OK);
    assert_int_equal(count(f, DS_AK_NO_MOBILIZER, DS_AS_RESOLVED), 1);
    clear(f);

    /* the account changes: asked again, under the new account */
    f->mob_contact = "L-404";
    f->ctx.tier_epoch = 4;
    evaluate(f, d, T0 + 10 * HOUR);
    assert_int_equal(count(f, DS_AK_NO_MOBILIZER, DS_AS_OPEN), 1);
    calls = f->mob_calls;
    ds_crm_event_t e = crm("s1", T0 + 11 * HOUR, DS_CRM_SELLER_ACTIVITY);
    e.account_id = "A-8";
    assert_int_equal(apply(f, d, &e), DS_ERR_OK);
    assert_true(f->mob_calls > calls);
    assert_string_equal(f->mob_account, "A-8");
    ds_deal_destroy(d);
}

/* Within an epoch a stakeholder's tier is asked once: a deal that gains
 * 1,000 stakeholders one event at a time asks 1,000 times, not once per
 * stakeholder per event (500,500). */
static void test_new_stakeholder_asks_once(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = mobilizer_epoch_deal(f, "L-none");
    int calls = f->mob_calls;
    char id[32], contact[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "n%d", i);
        snprintf(contact, sizeof(contact), "L-%d", 1000 + i);
        assert_int_equal(stakeholder(f, d, id, T0 + 4 * HOUR + i, contact, DS_ROLE_TALKER),
                         DS_ERR_OK);
        clear(f);
    }
    assert_int_equal(ds_deal_stakeholder_count(d), 1000 + 2);
    assert_int_equal(f->mob_calls - calls, 1000);
    /* the next epoch asks every one again, once */
    f->ctx.tier_epoch = 2;
    evaluate(f, d, T0 + 5 * HOUR);
    assert_int_equal(f->mob_calls - calls, 1000 + 1002);
    ds_deal_destroy(d);
}

static bool may1(const fx_t *f, const ds_deal_t *d, const ds_crm_event_t *e) {
    const ds_crm_event_t *evs[] = {e};
    return ds_deal_may_ask_tiers(d, evs, 1, f->rules);
}

/* ds_deal_may_ask_tiers is what the watcher reads tiers ahead by: it must
 * be true before every batch of a deal's events whose apply or clock
 * checks ask stakeholder_is_mobilizer (else that evaluation costs a round
 * trip of its own), and false where no stage can reach
 * mobilizer_required_from (else it saves nothing). */
static void test_may_ask_tiers(void **state) {
    fx_t *f = *state;
    f->ctx.stakeholder_is_mobilizer = is_mobilizer;
    f->mob_contact = NULL;

    /* (a) early stages: no tier can matter */
    ds_deal_t *d = ds_deal_new(DEAL);
    assert_non_null(d);
    ds_crm_event_t e = crm("e1", T0, DS_CRM_DEAL_OPENED);
    e.stage = DS_PS_RECOGNIZE_NEED;
    assert_false(may1(f, d, &e));
    assert_int_equal(apply(f, d, &e), DS_ERR_OK);
    e = crm("s1", T0 + HOUR, DS_CRM_SELLER_ACTIVITY);
    assert_false(may1(f, d, &e));
    assert_false(ds_deal_may_ask_tiers(d, NULL, 0, f->rules)); /* a clock check */
    /* a stage change to DEFINE_CRITERIA: yes */
    e = crm("c1", T0 + HOUR, DS_CRM_STAGE_CHANGED);
    e.stage = DS_PS_DEFINE_CRITERIA;
    assert_true(may1(f, d, &e));
    /* two signals that verify RECOGNIZE_NEED and EXPLORE_OPTIONS only
     * together: neither alone, both in one batch yes */
    ds_crm_event_t b1 = crm("b1", T0 + HOUR, DS_CRM_BUYER_SIGNAL);
    b1.signal = "live_call_accepted";
    b1.contact_id = "L-1"; /* a stakeholder whose tier can be asked */
    ds_crm_event_t b2 = crm("b2", T0 + 2 * HOUR, DS_CRM_BUYER_SIGNAL);
    b2.signal = "status_quo_flaw_acknowledged";
    assert_false(may1(f, d, &b1));
    assert_false(may1(f, d, &b2));
    const ds_crm_event_t *both[] = {&b1, &b2};
    assert_true(ds_deal_may_ask_tiers(d, both, 2, f->rules));
    assert_int_equal(apply(f, d, &b1), DS_ERR_OK);
    assert_true(may1(f, d, &b2));
    /* a batch that takes the deal past DEFINE_CRITERIA asks on its way (with
     * these rules the later stages keep the defaults' verifiers, so no batch
     * here verifies every stage) */
    ds_crm_event_t b4 = crm("b4", T0 + 2 * HOUR, DS_CRM_BUYER_SIGNAL);
    b4.signal = "resources_committed";
    ds_crm_event_t b5 = crm("b5", T0 + 2 * HOUR, DS_CRM_BUYER_SIGNAL);
    b5.signal = "mobilizer_committed";
    const ds_crm_event_t *to_all[] = {&b2, &b4, &b5};
    assert_true(ds_deal_may_ask_tiers(d, to_all, 3, f->rules));
    {
        ds_deal_t *d2 = ds_deal_new(DEAL);
        assert_non_null(d2);
        ds_crm_event_t o = crm("e1", T0, DS_CRM_DEAL_OPENED);
        o.stage = DS_PS_RECOGNIZE_NEED;
        assert_int_equal(apply(f, d2, &o), DS_ERR_OK);
        assert_int_equal(apply(f, d2, &b1), DS_ERR_OK);
        int before = f->mob_calls;
        for (int k = 0; k < 3; k++)
            assert_int_equal(apply(f, d2, to_all[k]), DS_ERR_OK);
        assert_true(f->mob_calls > before); /* the case is real */
        ds_deal_destroy(d2);
        clear(f);
    }
    e.signal = "pricing_page_viewed";
    e = crm("b3", T0 + 2 * HOUR, DS_CRM_BUYER_SIGNAL);
    e.signal = "pricing_page_viewed";
    assert_false(may1(f, d, &e));
    /* at DEFINE_CRITERIA a clock check asks */
    assert_int_equal(apply(f, d, &b2), DS_ERR_OK);
    assert_true(ds_deal_may_ask_tiers(d, NULL, 0, f->rules));
    /* once a mobilizer is known, never */
    assert_int_equal(stakeholder(f, d, "k1", T0 + 3 * HOUR, "L-5", DS_ROLE_MOBILIZER), DS_ERR_OK);
    e = crm("c2", T0 + 4 * HOUR, DS_CRM_STAGE_CHANGED);
    e.stage = DS_PS_DEFINE_CRITERIA;
    assert_false(may1(f, d, &e));
    assert_false(ds_deal_may_ask_tiers(d, NULL, 0, f->rules));
    ds_deal_destroy(d);
    clear(f);

    /* (b) a batch that ends with every stage verified still asks on its way
     * (rules whose later stages need nothing: the bound is "all verified") */
    static const char ALL_YAML[] = "stall:\n"
                                   "  mobilizer_required_from: DEFINE_CRITERIA\n"
                                   "  stages:\n"
                                   "    RECOGNIZE_NEED: {verifiers: [live_call_accepted]}\n"
                                   "    EXPLORE_OPTIONS: {verifiers: [status_quo_flaw_acknowledged]}\n"
                                   "    DEFINE_CRITERIA: {verifiers: [resources_committed]}\n"
                                   "    EVALUATE_OPTIONS: {verifiers: []}\n"
                                   "    SELECT_SUPPLIER: {verifiers: []}\n"
                                   "    NEGOTIATE: {verifiers: []}\n"
                                   "    IMPLEMENT: {verifiers: []}\n"
                                   "    EVALUATE_IMPACT: {verifiers: []}\n";
    char err[256] = "";
    ds_rules_t *all = ds_rules_load_buffer("all.yaml", ALL_YAML, strlen(ALL_YAML), err,
                                           sizeof(err));
    if (!all)
        fail_msg("rules: %s", err);
    const ds_rules_t *kept = f->ctx.rules;
    f->ctx.rules = all;
    d = ds_deal_new(DEAL);
    assert_non_null(d);
    e = crm("e1", T0, DS_CRM_DEAL_OPENED);
    e.stage = DS_PS_RECOGNIZE_NEED;
    assert_int_equal(apply(f, d, &e), DS_ERR_OK);
    assert_int_equal(apply(f, d, &b1), DS_ERR_OK); /* live_call_accepted, stakeholder L-1 */
    ds_crm_event_t r1 = crm("r1", T0 + 3 * HOUR, DS_CRM_BUYER_SIGNAL);
    r1.signal = "resources_committed";
    const ds_crm_event_t *through[] = {&b2, &r1}; /* DEFINE_CRITERIA, then all verified */
    assert_true(ds_deal_may_ask_tiers(d, through, 2, all));
    int calls = f->mob_calls;
    for (int k = 0; k < 2; k++)
        assert_int_equal(apply(f, d, through[k]), DS_ERR_OK);
    assert_true(f->mob_calls > calls); /* after b2 it asked */
    /* every stage verified: nothing can ask any more */
    assert_false(ds_deal_may_ask_tiers(d, NULL, 0, all));
    const ds_crm_event_t *one[] = {&e};
    assert_false(ds_deal_may_ask_tiers(d, one, 1, all));
    ds_deal_destroy(d);
    clear(f);
    f->ctx.rules = kept;
    ds_rules_destroy(all);

    /* (c) sound over streams of every kind of event cut into batches:
     * whenever an apply or a clock check between them asked for a tier,
     * the predicate said so before the batch */
    static const char *const sigs[] = {"live_call_accepted", "status_quo_flaw_acknowledged",
                                       "resources_committed", "mobilizer_committed",
                                       "pricing_page_viewed", NULL};
    static const char *const contacts[] = {"L-1", "L-2", "L-3", NULL};
    static const int types[] = {DS_CRM_DEAL_OPENED, DS_CRM_STAGE_CHANGED,
                                DS_CRM_SELLER_ACTIVITY, DS_CRM_BUYER_SIGNAL,
                                DS_CRM_STAKEHOLDER_ADDED};
    uint64_t x = 88172645463325252ULL;
    int asked = 0, declined = 0;
    char ids[16][32];
    for (int deal = 0; deal < 400; deal++) {
        d = ds_deal_new(DEAL);
        assert_non_null(d);
        int i = 0;
        while (i < 16) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int nb = 1 + (int)(x % 4); /* a batch of 1 to 4 events */
            if (nb > 16 - i)
                nb = 16 - i;
            ds_crm_event_t ev[4];
            const ds_crm_event_t *evs[4];
            for (int k = 0; k < nb; k++, i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                snprintf(ids[i], sizeof(ids[i]), "x%d-%d", deal, i);
                ev[k] = crm(ids[i], T0 + i * HOUR, types[i ? x % 5 : 0]);
                ev[k].stage = (x >> 8) % 3 ? (int)((x >> 12) % DS_PS__COUNT) : DS_NONE;
                ev[k].signal = sigs[(x >> 20) % 6];
                ev[k].contact_id = contacts[(x >> 24) % 4];
                ev[k].contact_role = DS_ROLE_TALKER;
                evs[k] = &ev[k];
            }
            bool may = ds_deal_may_ask_tiers(d, evs, (size_t)nb, f->rules);
            int before = f->mob_calls;
            for (int k = 0; k < nb; k++) {
                apply(f, d, evs[k]);
                evaluate(f, d, evs[k]->occurred_at + 30 * DAY); /* a clock check */
            }
            if (f->mob_calls > before) {
                asked++;
                if (!may)
                    fail_msg("deal %d: the batch of %d events before event %d asked for a tier "
                             "the predicate did not foresee",
                             deal, nb, i);
            } else if (!may) {
                declined++;
            }
            clear(f);
        }
        ds_deal_destroy(d);
    }
    assert_true(asked > 100);
    assert_true(declined > 100);
}

/* ---- extras: grace, id stability across a replay ---------------------------- */

/* grace_ms delays wall-clock firing: conditions use now - grace_ms. */
static void test_grace_delays_quiet(void **state) {
    fx_t *f = *state;
    f->ctx.grace_ms = 30 * MINUTE;
    ds_deal_t *d = opened_deal(f, "e1", DS_PS_RECOGNIZE_NEED);
    evaluate(f, d, T0 + 10 * DAY + 1);
    assert_int_equal(f->n, 0);
    evaluate(f, d, T0 + 10 * DAY + 30 * MINUTE);
    assert_int_equal(f->n, 0);
    evaluate(f, d, T0 + 10 * DAY + 30 * MINUTE + 1);
    assert_int_equal(f->n, 1);
    assert_rec(&f->recs[0], DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN, 1);
    assert_true(f->recs[0].raised_at == T0 + 10 * DAY + 30 * MINUTE + 1);
    ds_deal_destroy(d);
}

static void replay(fx_t *f) {
    ds_deal_t *d = one_sided_quiet_deal(f);
    assert_int_equal(buyer(f, d, "b1", T0 + 12 * DAY, "live_call_accepted", "L-1"), DS_ERR_OK);
    evaluate(f, d, T0 + 20 * DAY);
    assert_int_equal(close_deal(f, d, "w1", T0 + 21 * DAY, DS_CRM_DEAL_WON), DS_ERR_OK);
    ds_deal_destroy(d);
}

static void test_alert_id_stable_across_replay(void **state) {
    fx_t *f = *state;
    replay(f);
    size_t n = f->n;
    assert_true(n >= 6);
    replay(f);
    assert_int_equal(f->n, 2 * n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(f->recs[n + i].kind, f->recs[i].kind);
        assert_int_equal(f->recs[n + i].state, f->recs[i].state);
        assert_int_equal(f->recs[n + i].level, f->recs[i].level);
        assert_string_equal(f->recs[n + i].alert_id, f->recs[i].alert_id);
        assert_mentions(&f->recs[i], DEAL);
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(f->recs[i].alert_id, f->recs[j].alert_id);
    }
}

/* `rules defaults` prints each number as its shortest text that reads back
 * the same (0.3, not 0.29999999999999999), and what it prints loads to
 * rules that print the same again. */
static void test_rules_print_round_trip(void **state) {
    (void)state;
    char err[512];
    ds_rules_t *r = ds_rules_load_buffer("empty.yaml", "", 0, err, sizeof(err));
    assert_non_null(r);
    uu_text_t out;
    ds_rules_print(r, uu_text_open(&out));
    char *text = uu_text_close(&out);
    assert_non_null(strstr(text, "EMAIL_CLICKED: 0.3,"));
    assert_non_null(strstr(text, "b_state_factor: 0.2\n"));
    assert_non_null(strstr(text, "consensus_target: 5.4\n"));
    assert_null(strstr(text, "0000"));
    ds_rules_t *r2 = ds_rules_load_buffer("printed.yaml", text, strlen(text), err, sizeof(err));
    assert_non_null(r2);
    ds_rules_print(r2, uu_text_open(&out));
    char *text2 = uu_text_close(&out);
    assert_string_equal(text, text2);
    assert_true(r2->scoring.type_weight[DS_MA_EMAIL_CLICKED] ==
                r->scoring.type_weight[DS_MA_EMAIL_CLICKED]);
    free(text);
    free(text2);
    ds_rules_destroy(r2);
    ds_rules_destroy(r);
}

/* Rules that would overflow the times and scores built from them, a key
 * given twice (the last would silently win) and a verifier's code no
 * signal can carry (over 256 bytes: DLQ'd) are refused, naming the key;
 * 1,000,000 itself is a valid number. */
static void test_rules_refuse_what_overflows(void **state) {
    (void)state;
    char longcode[300];
    memset(longcode, 'v', 257);
    longcode[257] = 0;
    char verif[400];
    snprintf(verif, sizeof(verif), "stall:\n  stages:\n    NEGOTIATE: {verifiers: [%s]}\n",
             longcode);
    const struct {
        const char *yaml, *says;
    } bad[] = {
        {"stall:\n  grace_minutes: 1e20\n", "stall.grace_minutes: must be at most 1000000"},
        {"scoring:\n  stage_points: {CONFRONT: 1e308}\n", "must be at most 1000000"},
        {"scoring:\n  half_life_days: 10\n  half_life_days: 20\n",
         "scoring.half_life_days: given twice"},
        {verif, "a signal code over 256 bytes"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        ds_rules_t *r = ds_rules_load_buffer("bad.yaml", bad[i].yaml, strlen(bad[i].yaml), err,
                                             sizeof(err));
        if (r || !strstr(err, bad[i].says))
            fail_msg("case %zu: %s (want an error saying \"%s\")", i, r ? "accepted" : err,
                     bad[i].says);
    }
    const char *ok = "stall:\n  grace_minutes: 1000000\n";
    ds_rules_t *r = ds_rules_load_buffer("ok.yaml", ok, strlen(ok), err, sizeof(err));
    assert_non_null(r);
    ds_rules_destroy(r);
}

/* ---- 14. dedupe and stakeholders over a long random history --------------- */

/* The dedupe window and the stakeholder list of a deal with a long
 * history, against a model that keeps them as plain arrays (the contract's
 * semantics, as the deal kept them until its lookups were indexed): an
 * event id is a duplicate when a stored entry has it; after each event the
 * stored entries are those within the window of the largest occurred_at
 * seen, and the entry of the event itself.  Random ids repeat near and far
 * apart, events arrive late (some beyond the window), the window changes,
 * the deal is saved and loaded at random points, and the stakeholders'
 * tiers change from one epoch to the next.  Every apply's verdict, the
 * stakeholders in order, and a digest of every alert id and every saved
 * state (pinned: the bytes the array version wrote) must match. */
typedef struct mseen {
    char id[24];
    int64_t at;
} mseen_t;

static uint64_t prop_rnd = 42;
static long prand(long n) {
    return (long)uu_below(&prop_rnd, (uint64_t)n);
}

static uint64_t digest_add(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t g_alert_digest;
static void digest_alert(void *opaque, const ds_deal_alert_t *a) {
    (void)opaque;
    g_alert_digest = digest_add(g_alert_digest, a->alert_id, strlen(a->alert_id) + 1);
}

static void ignore_alert(void *opaque, const ds_deal_alert_t *a) {
    (void)opaque, (void)a;
}

static const char *g_mob; /* the contact whose tier is MOBILIZER in this epoch */
static bool mob_by_epoch(void *opaque, const char *account_id, const char *contact_id) {
    (void)opaque;
    (void)account_id;
    return g_mob && !strcmp(contact_id, g_mob);
}

/* What the watcher stores of a deal, written as it does: the record, the
 * stakeholders set (kept here in the order added, which a set need not
 * keep) and the dedupe ids (hash -> time), each write applying what
 * ds_deal_changes reports. */
typedef struct store {
    ds_buf_t rec;
    char **stake;
    size_t nstake;
    ds_dedupe_entry_t *ids;
    size_t nids, cids;
} store_t;

static ds_dedupe_entry_t *store_find(store_t *st, uint64_t h) {
    for (size_t i = 0; i < st->nids; i++)
        if (st->ids[i].h == h)
            return &st->ids[i];
    return NULL;
}
static void store_put(void *opaque, uint64_t h, int64_t t) {
    store_t *st = opaque;
    ds_dedupe_entry_t *x = store_find(st, h);
    if (!x) {
        if (st->nids == st->cids) {
            st->cids = st->cids ? 2 * st->cids : 64;
            st->ids = realloc(st->ids, st->cids * sizeof(*st->ids));
            assert_non_null(st->ids);
        }
        x = &st->ids[st->nids++];
        x->h = h;
    }
    x->t = t;
}
static void store_del(void *opaque, uint64_t h) {
    store_t *st = opaque;
    ds_dedupe_entry_t *x = store_find(st, h);
    if (x)
        *x = st->ids[--st->nids];
}
static void store_clear(store_t *st) {
    for (size_t i = 0; i < st->nstake; i++)
        free(st->stake[i]);
    st->nstake = st->nids = 0;
}
/* ds_deal_changes' calls, recorded (whether the write is whole is known
 * only once they are made) */
typedef struct op {
    bool del;
    uint64_t h;
    int64_t t;
} op_t;
typedef struct ops {
    op_t *o;
    size_t n, cap;
} ops_t;
static void ops_add(ops_t *ops, bool del, uint64_t h, int64_t t) {
    if (ops->n == ops->cap) {
        ops->cap = ops->cap ? 2 * ops->cap : 64;
        ops->o = realloc(ops->o, ops->cap * sizeof(*ops->o));
        assert_non_null(ops->o);
    }
    ops->o[ops->n++] = (op_t){del, h, t};
}
static void rec_put(void *opaque, uint64_t h, int64_t t) {
    ops_add(opaque, false, h, t);
}
static void rec_del(void *opaque, uint64_t h) {
    ops_add(opaque, true, h, 0);
}
static void store_write(store_t *st, ds_deal_t *d) {
    ds_buf_reset(&st->rec);
    assert_int_equal(ds_deal_save(d, &st->rec), DS_ERR_OK);
    size_t first;
    ops_t ops = {0};
    if (ds_deal_changes(d, false, &first, rec_put, rec_del, &ops))
        store_clear(st);
    for (size_t i = 0; i < ops.n; i++) {
        if (ops.o[i].del)
            store_del(st, ops.o[i].h);
        else
            store_put(st, ops.o[i].h, ops.o[i].t);
    }
    free(ops.o);
    size_t n = ds_deal_stakeholder_count(d);
    st->stake = realloc(st->stake, (n + 1) * sizeof(char *));
    assert_non_null(st->stake);
    for (size_t i = first; i < n; i++)
        st->stake[st->nstake++] = strdup(ds_deal_stakeholder(d, i));
    assert_int_equal(st->nstake, n);
    ds_deal_written(d);
}
static ds_deal_t *store_load(const store_t *st) {
    ds_err_t err = DS_ERR_OK;
    ds_deal_t *d = ds_deal_load(st->rec.data, st->rec.len, &err);
    assert_non_null(d);
    for (size_t i = 0; i < st->nstake; i++)
        assert_int_equal(ds_deal_load_stakeholder(d, st->stake[i]), DS_ERR_OK);
    for (size_t i = 0; i < st->nids; i++)
        assert_int_equal(ds_deal_load_seen(d, st->ids[i].h, st->ids[i].t), DS_ERR_OK);
    return d;
}
static void store_free(store_t *st) {
    store_clear(st);
    free(st->stake);
    free(st->ids);
    ds_buf_free(&st->rec);
}

/* the digest of the whole deals saved along the way (this version's
 * format: a change of it changes this) */
#define STATE_DIGEST 0xdd2547d93f445c52ULL

static void test_long_history_random(void **state) {
    fx_t *f = *state;
    enum { N = 20000, CONTACTS = 300 };
    static mseen_t model[N];
    static char ids[N][24];
    static char contacts[CONTACTS][16];
    static char stake_model[CONTACTS][16];
    size_t nmodel = 0, nids = 0, nstake = 0;
    int64_t max_t = INT64_MIN, t = T0;
    for (int i = 0; i < CONTACTS; i++)
        snprintf(contacts[i], sizeof(contacts[i]), "L-%d", i);
    static const char *const sigs[] = {"live_call_accepted", "status_quo_flaw_acknowledged",
                                       "resources_committed", "pricing_requested"};
    static const double windows[] = {7, 1, 0.5, 3};
    f->ctx.stakeholder_is_mobilizer = mob_by_epoch;
    f->ctx.alert = digest_alert;
    f->ctx.tier_epoch = 1;
    g_alert_digest = 0xcbf29ce484222325ULL;
    g_mob = NULL;
    uint64_t state_digest = 0xcbf29ce484222325ULL;
    long dups = 0, late = 0, reloads = 0;
    ds_deal_t *d = ds_deal_new(DEAL), *plain = ds_deal_new(DEAL);
    assert_non_null(d);
    assert_non_null(plain);
    ds_deal_track(d);
    store_t st = {0};
    uint64_t write_rnd = 7;
    ds_buf_t b;
    ds_buf_init(&b, 0);
    for (long k = 0; k < N; k++) {
        if (k % 2000 == 1999)
            f->rules->dedupe_window_days = windows[prand(4)];
        if (k % 50 == 0) { /* a new batch: the tiers may have changed */
            f->ctx.tier_epoch++;
            g_mob = prand(3) == 0 ? contacts[prand(CONTACTS)] : NULL;
        }
        /* the event: a new id, or one seen before (recently or long ago) */
        const char *id;
        if (nids && prand(100) < 8) {
            id = ids[prand(10) < 7 ? nids - 1 - (size_t)prand(nids < 20 ? (long)nids : 20)
                                   : (size_t)prand((long)nids)];
        } else {
            snprintf(ids[nids], sizeof(ids[nids]), "e%ld", k);
            id = ids[nids++];
        }
        int64_t et;
        if (prand(100) < 3) {
            et = t - prand(10 * DAY); /* late, maybe beyond the window */
            late++;
        } else {
            t += prand(20 * MINUTE);
            et = t;
        }
        long roll = prand(100);
        ds_crm_event_t e = crm(id, et, DS_CRM_SELLER_ACTIVITY);
        e.activity = "call";
        const char *contact = contacts[prand(prand(4) ? 40 : CONTACTS)];
        if (k == 0) {
            e.type = DS_CRM_DEAL_OPENED;
            e.stage = DS_PS_RECOGNIZE_NEED;
        } else if (roll < 30) {
            e.type = DS_CRM_STAKEHOLDER_ADDED;
            e.contact_id = contact;
            e.contact_role = DS_ROLE_TALKER;
        } else if (roll < 50) {
            e.type = DS_CRM_BUYER_SIGNAL;
            e.signal = sigs[prand(4)];
            e.contact_id = contact;
        }
        /* the model */
        int64_t win = (int64_t)(f->rules->dedupe_window_days * DS_DAY_MS);
        if (et > max_t)
            max_t = et;
        bool dup = false;
        size_t j = 0;
        for (size_t i = 0; i < nmodel; i++) {
            bool same = !strcmp(model[i].id, id);
            dup |= same;
            if (max_t - model[i].at <= win || same)
                model[j++] = model[i];
        }
        nmodel = j;
        if (!dup) {
            snprintf(model[nmodel].id, sizeof(model[nmodel].id), "%s", id);
            model[nmodel++].at = et;
            if (e.contact_id) {
                size_t i = 0;
                while (i < nstake && strcmp(stake_model[i], e.contact_id))
                    i++;
                if (i == nstake)
                    snprintf(stake_model[nstake++], sizeof(stake_model[0]), "%s", e.contact_id);
            }
        }
        dups += dup;
        /* the deal */
        ds_err_t err = apply(f, d, &e);
        assert_int_equal(err, dup ? DS_ERR_DUPLICATE : DS_ERR_OK);
        g_alert_digest = digest_add(g_alert_digest, &err, sizeof(err));
        f->ctx.alert = ignore_alert; /* the digest is of d's alerts */
        assert_int_equal(apply(f, plain, &e), err);
        f->ctx.alert = digest_alert;
        /* writes at points of a generator of their own (the events'
         * stays that of the array version's figures) */
        bool reload = prand(100) == 0 || k == N - 1;
        if (reload || uu_below(&write_rnd, 20) == 0) {
            /* a write: what changed, onto what is stored */
            store_write(&st, d);
            if (reload) {
                /* what is stored is the deal: loaded from it, the deal
                 * saves whole what the one written saves */
                ds_deal_t *d2 = store_load(&st);
                su_save(&SU_DEAL, d, &b);
                state_digest = digest_add(state_digest, b.data, b.len);
                ds_buf_t b2;
                ds_buf_init(&b2, 0);
                su_save(&SU_DEAL, d2, &b2);
                su_assert_same_bytes(&b, &b2);
                ds_buf_free(&b2);
                if (prand(2)) {
                    ds_deal_destroy(d);
                    d = d2;
                    ds_deal_track(d);
                    reloads++;
                } else {
                    ds_deal_destroy(d2);
                }
            }
        }
    }
    /* the writes and reloads changed nothing: the deal that had none
     * holds the same, dedupe ids included */
    ds_buf_t b3;
    ds_buf_init(&b3, 0);
    su_save(&SU_DEAL, plain, &b3);
    su_save(&SU_DEAL, d, &b);
    su_assert_same_bytes(&b, &b3);
    ds_buf_free(&b3);
    ds_deal_destroy(plain);
    store_free(&st);
    assert_int_equal(ds_deal_stakeholder_count(d), nstake);
    for (size_t i = 0; i < nstake; i++)
        assert_string_equal(ds_deal_stakeholder(d, i), stake_model[i]);
    assert_true(dups > N / 50 && late > N / 50 && reloads > 50);
    fprintf(stderr,
            "long history: %ld duplicates, %ld late, %ld reloads, %zu stored, alerts %016llx, "
            "states %016llx\n",
            dups, late, reloads, nmodel, (unsigned long long)g_alert_digest,
            (unsigned long long)state_digest);
    /* the array version's figures (the alerts); the states of this
     * version (record, stakeholders, ids) */
    assert_true(g_alert_digest == 0x7d622900c390cedaULL);
    assert_true(state_digest == STATE_DIGEST);
    ds_buf_free(&b);
    ds_deal_destroy(d);
}

/* ---- 15. edges of the rules' durations and of ignored events ---------------- */

/* renotify_days 0 (valid: only negatives are refused): a REMINDER is due
 * at every evaluation, one per evaluation, and the deal's next deadline
 * is never the time it was just evaluated at (a clock check would
 * evaluate it for ever: the watcher and the backtest spun on it). */
static void test_renotify_zero(void **state) {
    fx_t *f = *state;
    f->rules->stall.renotify_days = 0;
    ds_deal_t *d = ds_deal_new(DEAL);
    assert_non_null(d);
    assert_int_equal(open_deal(f, d, "e1", T0, DS_PS_EXPLORE_OPTIONS), DS_ERR_OK);
    assert_int_equal(count(f, DS_AK_UNVERIFIED_STAGE, DS_AS_OPEN), 1);
    assert_true(ds_deal_next_deadline(d, f->rules) > T0);
    evaluate(f, d, T0); /* the same time: a REMINDER (0 days have passed) */
    assert_int_equal(count(f, DS_AK_UNVERIFIED_STAGE, DS_AS_REMINDER), 1);
    assert_true(ds_deal_next_deadline(d, f->rules) == T0 + 1);
    evaluate(f, d, T0 + 1);
    assert_int_equal(count(f, DS_AK_UNVERIFIED_STAGE, DS_AS_REMINDER), 2);
    ds_deal_destroy(d);
}

/* Durations in days are whole milliseconds rounded to the nearest:
 * 0.009 days is 777,600 ms (the product 0.009 × 86,400,000 is 777,599.99…
 * in binary, which a truncation made 777,599).  NO_BUYER_SIGNAL holds
 * when quiet > max_quiet_days, a REMINDER when ≥ renotify_days have
 * passed, and an id is a duplicate within the dedupe window. */
static void test_days_to_ms_exact(void **state) {
    fx_t *f = *state;
    const int64_t q = 777600;
    f->rules->stall.stages[DS_PS_RECOGNIZE_NEED].max_quiet_days = 0.009;
    f->rules->stall.renotify_days = 0.009;
    ds_deal_t *d = ds_deal_new(DEAL);
    assert_non_null(d);
    assert_int_equal(open_deal(f, d, "e1", T0, DS_PS_RECOGNIZE_NEED), DS_ERR_OK);
    assert_true(ds_deal_next_deadline(d, f->rules) == T0 + q + 1);
    evaluate(f, d, T0 + q); /* quiet = max_quiet_days: not more */
    assert_int_equal(count(f, DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN), 0);
    evaluate(f, d, T0 + q + 1);
    assert_int_equal(count(f, DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN), 1);
    evaluate(f, d, T0 + 2 * q); /* 777,599 ms after the OPEN: not yet */
    assert_int_equal(count(f, DS_AK_NO_BUYER_SIGNAL, DS_AS_REMINDER), 0);
    evaluate(f, d, T0 + 2 * q + 1);
    assert_int_equal(count(f, DS_AK_NO_BUYER_SIGNAL, DS_AS_REMINDER), 1);
    /* the dedupe window: a repeat exactly 0.009 days after the newest
     * event is still a duplicate */
    f->rules->dedupe_window_days = 0.009;
    assert_int_equal(seller(f, d, "s1", T0 + HOUR), DS_ERR_OK);
    assert_int_equal(seller(f, d, "s2", T0 + HOUR + q), DS_ERR_OK);
    assert_int_equal(seller(f, d, "s1", T0 + HOUR), DS_ERR_DUPLICATE);
    ds_deal_destroy(d);
}

/* An ignored event (a later DEAL_OPENED, a STAGE_CHANGED without a stage)
 * sets nothing of the deal: not its owner either. */
static void test_ignored_event_sets_no_owner(void **state) {
    fx_t *f = *state;
    ds_deal_t *d = ds_deal_new(DEAL);
    assert_non_null(d);
    ds_crm_event_t e = crm("o1", T0, DS_CRM_DEAL_OPENED);
    e.stage = DS_PS_EXPLORE_OPTIONS; /* UNVERIFIED_STAGE opens */
    e.owner_id = "rep-1";
    assert_int_equal(apply(f, d, &e), DS_ERR_OK);
    e = crm("o2", T0 + HOUR, DS_CRM_STAGE_CHANGED);
    e.owner_id = "rep-2";
    assert_int_equal(apply(f, d, &e), DS_ERR_IGNORED);
    e = crm("o3", T0 + 2 * HOUR, DS_CRM_DEAL_OPENED);
    e.owner_id = "rep-3";
    assert_int_equal(apply(f, d, &e), DS_ERR_IGNORED);
    clear(f);
    assert_int_equal(stage_to(f, d, "o4", T0 + 3 * HOUR, DS_PS_RECOGNIZE_NEED), DS_ERR_OK);
    assert_int_equal(count(f, DS_AK_UNVERIFIED_STAGE, DS_AS_RESOLVED), 1);
    assert_string_equal(f->recs[0].owner_id, "rep-1");
    /* the rep moved the stage back: the message says what is true */
    assert_non_null(strstr(f->recs[0].message, "no longer ahead of what the buyer verified"));
    ds_deal_destroy(d);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_no_buyer_signal_fires),
        T(test_one_sided_fires),
        T(test_text_singular),
        T(test_unverified_stage_fires),
        T(test_no_mobilizer_fires),
        T(test_quiet_boundary),
        T(test_reminder_level_once),
        T(test_resolved_on_buyer_signal),
        T(test_close_resolves_all),
        T(test_event_after_close_ignored),
        T(test_unknown_signal_code),
        T(test_stage_backwards),
        T(test_duplicate_and_reload),
        T(test_verified_stage_follows_new_rules),
        T(test_deal_loads_earlier_versions),
        T(test_renotify_zero),
        T(test_days_to_ms_exact),
        T(test_ignored_event_sets_no_owner),
        T(test_next_deadline),
        T(test_mobilizer_callback),
        T(test_mobilizer_epoch),
        T(test_new_stakeholder_asks_once),
        T(test_message_days),
        T(test_may_ask_tiers),
        T(test_grace_delays_quiet),
        T(test_alert_id_stable_across_replay),
        T(test_long_history_random),
        cmocka_unit_test(test_rules_print_round_trip),
        cmocka_unit_test(test_rules_refuse_what_overflows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
