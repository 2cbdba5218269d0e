/*
 * test_score.c — the pure lead-scoring domain (docs/CONTRACT.md, "Lead
 * scoring"), one test per rule.  Every expected figure is worked
 * out by hand from the contract's rules in the comment next to it, with a small
 * catalog and mostly the default rules:
 *   stage_points SPARK 5, INTRODUCE 10, CONFRONT 20, BUILD_B 4, SPEC 1;
 *   type_weight VIEWED 0.5, COMPLETED 1.0, DIAGNOSTIC 1.5, WEBINAR 1.0;
 *   path 1.5, b_state 0.2, share 8 (cap 5), follow 20 (14 d), group 6,
 *   half-life 30 d, repeat window 7 d, tiers 40/30, consensus_target 5.4.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_buf.h"
#include "score.h"
#include "score_int.h"
#include "score_rec.h"
#include "scoring_util.h"

#define T0 1700000000000LL /* ms */
#define DAY 86400000LL     /* ms */

/* Catalog: insight alpha has one content per stage, beta two. */
static const char CATALOG[] =
    "  catalog:\n"
    "    - {content_id: s1, insight_id: alpha, stage: SPARK}\n"
    "    - {content_id: i1, insight_id: alpha, stage: INTRODUCE}\n"
    "    - {content_id: c1, insight_id: alpha, stage: CONFRONT}\n"
    "    - {content_id: b1, insight_id: alpha, stage: BUILD_B}\n"
    "    - {content_id: p1, insight_id: alpha, stage: SPEC}\n"
    "    - {content_id: w1, insight_id: alpha, stage: INTRODUCE}\n"
    "    - {content_id: s2, insight_id: beta, stage: SPARK}\n"
    "    - {content_id: c2, insight_id: beta, stage: CONFRONT}\n";

/* Rules = defaults + `extra` (lines under scoring:, two-space indent) + catalog. */
static ds_rules_t *rules(const char *extra) {
    char yaml[2048];
    int n = snprintf(yaml, sizeof(yaml), "scoring:\n%s%s", extra ? extra : "", CATALOG);
    assert_true(n > 0 && (size_t)n < sizeof(yaml));
    char err[256] = "";
    ds_rules_t *r = ds_rules_load_buffer("test_score", yaml, (size_t)n, err, sizeof(err));
    if (!r)
        print_error("rules: %s\n", err);
    assert_non_null(r);
    return r;
}

/* ---- capture sink ---------------------------------------------------------- */

#define CAP_MAX 64

typedef struct cap {
    lrec_t l[CAP_MAX];
    size_t nl;
    arec_t a[CAP_MAX];
    size_t na;
} cap_t;

static void on_lead(void *opaque, const ds_lead_score_t *s) {
    cap_t *c = opaque;
    assert_true(c->nl < CAP_MAX);
    lrec_fill(&c->l[c->nl++], s);
}

static void on_account(void *opaque, const ds_account_score_t *s) {
    cap_t *c = opaque;
    assert_true(c->na < CAP_MAX);
    assert_true(s->mobilizers_count <= CAP_MAX);
    arec_fill(&c->a[c->na++], s);
}

static void cap_clear(cap_t *c) {
    rec_free_all(c->l, &c->nl, c->a, &c->na);
}

static ds_score_sink_t sink_of(cap_t *c) {
    ds_score_sink_t s = {on_lead, on_account, c};
    return s;
}

/* The last LeadScore captured for `lead`, or NULL. */
static const lrec_t *last_lead(const cap_t *c, const char *lead) {
    for (size_t i = c->nl; i > 0; i--)
        if (!strcmp(c->l[i - 1].lead_id, lead))
            return &c->l[i - 1];
    return NULL;
}

static size_t count_lead(const cap_t *c, const char *lead) {
    size_t n = 0;
    for (size_t i = 0; i < c->nl; i++)
        n += !strcmp(c->l[i].lead_id, lead);
    return n;
}

static const arec_t *last_account(const cap_t *c) { return c->na ? &c->a[c->na - 1] : NULL; }

/* ---- helpers --------------------------------------------------------------- */

#define EPS 1e-9
#define assert_near(got, want) near_((got), (want), EPS, __FILE__, __LINE__)
static void near_(double got, double want, double eps, const char *file, int line) {
    if (!(fabs(got - want) <= eps)) {
        print_error("got %.12f, want %.12f\n", got, want);
        _fail(file, line);
    }
}

static ds_ma_event_t ev(const char *id, int64_t t, const char *lead, const char *acct, int type,
                        const char *content) {
    ds_ma_event_t e = {.event_id = id, .occurred_at = t, .type = type, .content_stage = DS_NONE};
    e.lead_id = lead;
    e.account_id = acct;
    e.content_id = content;
    return e;
}

static ds_ma_event_t share_ev(const char *id, int64_t t, const char *lead, const char *acct,
                              const char *content, const char **with, size_t n) {
    ds_ma_event_t e = ev(id, t, lead, acct, DS_MA_CONTENT_SHARED, content);
    e.shared_with = with;
    e.shared_with_count = n;
    return e;
}

static void apply_ok(ds_score_unit_t *u, const ds_rules_t *r, ds_ma_event_t e, cap_t *c) {
    ds_score_sink_t s = sink_of(c);
    assert_int_equal(ds_score_unit_apply(u, r, &e, &s), DS_ERR_OK);
}

/* A case's rules, its scoring unit and the records the unit emitted. */
typedef struct sc {
    ds_rules_t *r;
    ds_score_unit_t *u;
    cap_t c;
} sc_t;

/* A new unit `key` (an account when is_account) for the case. */
static void sc_unit(sc_t *s, const char *key, bool is_account) {
    ds_score_unit_destroy(s->u);
    s->u = ds_score_unit_new(key, is_account);
    assert_non_null(s->u);
}

/* A case under rules(extra) with a first unit. */
static sc_t sc_open(const char *extra, const char *key, bool is_account) {
    sc_t s = {.r = rules(extra)};
    sc_unit(&s, key, is_account);
    return s;
}

static void sc_close(sc_t *s) {
    ds_score_unit_destroy(s->u);
    cap_clear(&s->c);
    ds_rules_destroy(s->r);
}

/* e is applied to the case's unit, which must accept it. */
static void ap(sc_t *s, ds_ma_event_t e) {
    apply_ok(s->u, s->r, e, &s->c);
}

/* ---- 1. path order --------------------------------------------------------- */

static void test_path_order(void **state) {
    (void)state;
    sc_t s = sc_open(NULL, "L1", false);

    /* In order, all CONTENT_COMPLETED (weight 1) at T0 (no decay):
     *   s1 SPARK      5 × 1            =  5
     *   i1 INTRODUCE 10 × 1 × 1.5      = 15  (SPARK of alpha before)   -> 20
     *   c1 CONFRONT  20 × 1 × 1.5      = 30  (earlier A-state before)  -> 50 */
    ap(&s, ev("p1-1", T0, "L1", NULL, DS_MA_CONTENT_COMPLETED, "s1"));
    assert_near(last_lead(&s.c, "L1")->confront, 5.0);
    ap(&s, ev("p1-2", T0, "L1", NULL, DS_MA_CONTENT_COMPLETED, "i1"));
    assert_near(last_lead(&s.c, "L1")->confront, 20.0);
    ap(&s, ev("p1-3", T0, "L1", NULL, DS_MA_CONTENT_COMPLETED, "c1"));
    const lrec_t *x = last_lead(&s.c, "L1");
    assert_near(x->confront, 50.0);
    assert_near(x->connect, 0.0);
    assert_near(x->mobilizer, 0.0);
    assert_int_equal(x->tier, DS_TIER_CONFRONTED); /* 50 ≥ 40, connect 0 */
    assert_int_equal(x->previous_tier, DS_TIER_LEARNING);
    assert_string_equal(x->top_insight, "alpha");
    assert_int_equal(x->furthest_stage, DS_CS_CONFRONT);
    assert_null(x->account_id);
    assert_int_equal(x->events_applied, 3);
    assert_int_equal(x->as_of, T0);

    /* Out of order: c1 first 20 (nothing earlier), i1 10 (only CONFRONT,
     * a later stage, was engaged: no multiplier), s1 5: 20 + 10 + 5 = 35. */
    sc_unit(&s, "L2", false);
    ap(&s, ev("p2-1", T0, "L2", NULL, DS_MA_CONTENT_COMPLETED, "c1"));
    ap(&s, ev("p2-2", T0, "L2", NULL, DS_MA_CONTENT_COMPLETED, "i1"));
    assert_near(last_lead(&s.c, "L2")->confront, 30.0);
    ap(&s, ev("p2-3", T0, "L2", NULL, DS_MA_CONTENT_COMPLETED, "s1"));
    x = last_lead(&s.c, "L2");
    assert_near(x->confront, 35.0);
    assert_int_equal(x->tier, DS_TIER_LEARNING); /* 35 < 40 */

    /* Another insight's SPARK does not open alpha's path:
     * s2 (beta SPARK) 5 + i1 (alpha INTRODUCE) 10 = 15. */
    sc_unit(&s, "L3", false);
    ap(&s, ev("p3-1", T0, "L3", NULL, DS_MA_CONTENT_COMPLETED, "s2"));
    ap(&s, ev("p3-2", T0, "L3", NULL, DS_MA_CONTENT_COMPLETED, "i1"));
    assert_near(last_lead(&s.c, "L3")->confront, 15.0);
    sc_close(&s);
}

/* ---- 2. B-state factor ----------------------------------------------------- */

static void test_b_state_factor(void **state) {
    (void)state;
    sc_t s = sc_open(NULL, "L1", false);

    /* b1 BUILD_B completed, no A-state yet: 4 × 1 × 0.2 = 0.8 */
    ap(&s, ev("b-1", T0, "L1", NULL, DS_MA_CONTENT_COMPLETED, "b1"));
    const lrec_t *x = last_lead(&s.c, "L1");
    assert_non_null(x);
    assert_near(x->confront, 0.8);
    assert_int_equal(x->tier, DS_TIER_LEARNING);
    assert_int_equal(x->previous_tier, DS_TIER_UNAWARE);
    /* p1 SPEC completed, still no A-state: 1 × 1 × 0.2 = 0.2 -> 1.0 */
    ap(&s, ev("b-2", T0, "L1", NULL, DS_MA_CONTENT_COMPLETED, "p1"));
    assert_near(last_lead(&s.c, "L1")->confront, 1.0);
    /* s1 SPARK completed: 5 -> 6.0 */
    ap(&s, ev("b-3", T0, "L1", NULL, DS_MA_CONTENT_COMPLETED, "s1"));
    assert_near(last_lead(&s.c, "L1")->confront, 6.0);
    /* b1 viewed (other type, no repeat) after an A-state: 4 × 0.5 = 2, no
     * b-state factor and no path multiplier (never on BUILD_B) -> 8.0 */
    ap(&s, ev("b-4", T0, "L1", NULL, DS_MA_CONTENT_VIEWED, "b1"));
    x = last_lead(&s.c, "L1");
    assert_near(x->confront, 8.0);
    assert_string_equal(x->top_insight, "alpha");
    /* furthest: largest ContentStage engaged on alpha (SPARK, BUILD_B, SPEC) */
    assert_int_equal(x->furthest_stage, DS_CS_SPEC);

    sc_close(&s);
}

/* ---- 3. repeat window ------------------------------------------------------ */

static void test_repeat_window(void **state) {
    (void)state;
    /* half-life = repeat window = 7 d, so one window halves a point */
    sc_t s = sc_open("  half_life_days: 7\n  repeat_window_days: 7\n", "L1", false);

    /* T0: c1 completed: 20 */
    ap(&s, ev("r-1", T0, "L1", NULL, DS_MA_CONTENT_COMPLETED, "c1"));
    assert_near(last_lead(&s.c, "L1")->confront, 20.0);
    /* T0+6d: same (lead, c1, COMPLETED), |6d| < 7d: not counted, no output */
    size_t n = s.c.nl;
    ap(&s, ev("r-2", T0 + 6 * DAY, "L1", NULL, DS_MA_CONTENT_COMPLETED, "c1"));
    assert_int_equal(s.c.nl, n);
    /* T0+7d: |7d − T0 (last counted)| = 7d ≥ 7d: counts.
     * 20 × 2^(−7/7) + 20 = 10 + 20 = 30, as_of T0+7d;
     * events_applied 3 (r-2 is not a duplicate) */
    ap(&s, ev("r-3", T0 + 7 * DAY, "L1", NULL, DS_MA_CONTENT_COMPLETED, "c1"));
    const lrec_t *x = last_lead(&s.c, "L1");
    assert_int_equal(s.c.nl, n + 1);
    assert_near(x->confront, 30.0);
    assert_int_equal(x->as_of, T0 + 7 * DAY);
    assert_int_equal(x->events_applied, 3);
    /* T0+13d: 13 − 7 = 6 d since the last counted one: not counted */
    n = s.c.nl;
    ap(&s, ev("r-4", T0 + 13 * DAY, "L1", NULL, DS_MA_CONTENT_COMPLETED, "c1"));
    assert_int_equal(s.c.nl, n);
    /* T0+7d: c1 VIEWED is another (lead, content, type): 20 × 0.5 = 10
     * -> 40 (as_of still T0+7d: r-4 moved nothing), CONFRONTED at 40 ≥ 40 */
    ap(&s, ev("r-5", T0 + 7 * DAY, "L1", NULL, DS_MA_CONTENT_VIEWED, "c1"));
    x = last_lead(&s.c, "L1");
    assert_int_equal(s.c.nl, n + 1);
    assert_near(x->confront, 40.0);
    assert_int_equal(x->tier, DS_TIER_CONFRONTED);
    assert_int_equal(x->as_of, T0 + 7 * DAY);
    assert_int_equal(x->events_applied, 5);

    sc_close(&s);
}

/* ---- 4. decay of one half-life -------------------------------------------- */

static void test_decay_one_half_life(void **state) {
    (void)state;
    sc_t s = sc_open(NULL, "L1", false); /* half-life 30 d */

    /* T0: c1 completed: 20 */
    ap(&s, ev("d-1", T0, "L1", NULL, DS_MA_CONTENT_COMPLETED, "c1"));
    assert_near(last_lead(&s.c, "L1")->confront, 20.0);
    /* T0+30d: a share (connect only) moves as_of by one half-life:
     * confront 20 × 2^(−30/30) = 10; connect 8 × 1 = 8;
     * mobilizer sqrt(10 × 8) = sqrt(80) */
    const char *with[] = {"X"};
    ap(&s, share_ev("d-2", T0 + 30 * DAY, "L1", NULL, "s1", with, 1));
    const lrec_t *x = last_lead(&s.c, "L1");
    assert_near(x->confront, 10.0);
    assert_near(x->connect, 8.0);
    assert_near(x->mobilizer, sqrt(80.0));
    assert_int_equal(x->tier, DS_TIER_LEARNING);
    assert_int_equal(x->as_of, T0 + 30 * DAY);
    assert_string_equal(x->top_insight, "alpha");
    assert_int_equal(x->furthest_stage, DS_CS_CONFRONT);
    /* two current contributions, the larger (10, on insight alpha) first */
    assert_int_equal(x->reasons_count, 2);
    assert_non_null(strstr(x->reasons[0], "alpha"));

    sc_close(&s);
}

/* ---- 5. late event --------------------------------------------------------- */

static void test_late_event_decay(void **state) {
    (void)state;
    sc_t s = sc_open(NULL, "L1", false); /* half-life 30 d */

    /* T0+30d: s2 (beta SPARK) completed: 5, as_of T0+30d */
    ap(&s, ev("l-1", T0 + 30 * DAY, "L1", NULL, DS_MA_CONTENT_COMPLETED, "s2"));
    const lrec_t *x = last_lead(&s.c, "L1");
    assert_near(x->confront, 5.0);
    assert_string_equal(x->top_insight, "beta");
    /* late, at T0: c1 (alpha CONFRONT) completed 20, decayed by its own age
     * at as_of: 20 × 2^(−30/30) = 10 -> 5 + 10 = 15; as_of stays T0+30d;
     * top insight alpha (10 > 5) */
    ap(&s, ev("l-2", T0, "L1", NULL, DS_MA_CONTENT_COMPLETED, "c1"));
    x = last_lead(&s.c, "L1");
    assert_near(x->confront, 15.0);
    assert_int_equal(x->as_of, T0 + 30 * DAY);
    assert_string_equal(x->top_insight, "alpha");
    assert_int_equal(x->furthest_stage, DS_CS_CONFRONT);

    sc_close(&s);
}

/* ---- 6. share cap ---------------------------------------------------------- */

static void test_share_cap(void **state) {
    (void)state;
    sc_t s = sc_open(NULL, "L1", false); /* share 8, cap 5 */

    /* s1 with [L1 (self), A, B, C, A]: distinct colleagues A, B, C: 3 × 8 = 24 */
    const char *w1[] = {"L1", "A", "B", "C", "A"};
    ap(&s, share_ev("s-1", T0, "L1", NULL, "s1", w1, 5));
    const lrec_t *x = last_lead(&s.c, "L1");
    assert_near(x->connect, 24.0);
    assert_near(x->confront, 0.0);
    assert_near(x->mobilizer, 0.0);
    assert_int_equal(x->tier, DS_TIER_LEARNING);
    assert_null(x->top_insight);                   /* no confront points */
    assert_int_equal(x->furthest_stage, DS_NONE); /* a share is no engagement */
    /* s1 with [D, E, F, G]: only 5 − 3 = 2 more count: + 16 = 40 */
    const char *w2[] = {"D", "E", "F", "G"};
    ap(&s, share_ev("s-2", T0, "L1", NULL, "s1", w2, 4));
    x = last_lead(&s.c, "L1");
    assert_near(x->connect, 40.0);
    assert_int_equal(x->tier, DS_TIER_CONNECTOR); /* 40 ≥ 30 */
    /* s1 with [H]: beyond the cap, no points, no output */
    size_t n = s.c.nl;
    const char *w3[] = {"H"};
    ap(&s, share_ev("s-3", T0, "L1", NULL, "s1", w3, 1));
    assert_int_equal(s.c.nl, n);
    /* the cap is per content item: s2 with [A]: + 8 = 48 */
    const char *w4[] = {"A"};
    ap(&s, share_ev("s-4", T0, "L1", NULL, "s2", w4, 1));
    assert_near(last_lead(&s.c, "L1")->connect, 48.0);

    sc_close(&s);
}

/* ---- 7. follow window edges ------------------------------------------------ */

static void test_follow_window_edges(void **state) {
    (void)state;
    /* half-life = follow window = 14 d so the share halves at the edge */
    sc_t s = sc_open("  half_life_days: 14\n  follow_window_days: 14\n", "ACC", true);

    /* T0: S shares s1 (insight alpha) with C1, C2: 2 × 8 = 16 */
    const char *with[] = {"C1", "C2"};
    ap(&s, share_ev("f-1", T0, "S", "ACC", "s1", with, 2));
    assert_near(last_lead(&s.c, "S")->connect, 16.0);
    assert_string_equal(last_lead(&s.c, "S")->account_id, "ACC");
    /* T0+14d exactly: C1 completes i1 (alpha): C1 confront 10; follow credit
     * to S at T0+14d: 16 × 2^(−14/14) + 20 = 8 + 20 = 28, as_of T0+14d */
    ap(&s, ev("f-2", T0 + 14 * DAY, "C1", "ACC", DS_MA_CONTENT_COMPLETED, "i1"));
    assert_near(last_lead(&s.c, "C1")->confront, 10.0);
    const lrec_t *x = last_lead(&s.c, "S");
    assert_int_equal(count_lead(&s.c, "S"), 2);
    assert_near(x->connect, 28.0);
    assert_near(x->confront, 0.0);
    assert_int_equal(x->as_of, T0 + 14 * DAY);
    /* T0+14d+1ms: C2 completes i1: just past the window, no credit to S */
    ap(&s, ev("f-3", T0 + 14 * DAY + 1, "C2", "ACC", DS_MA_CONTENT_COMPLETED, "i1"));
    assert_near(last_lead(&s.c, "C2")->confront, 10.0);
    assert_int_equal(count_lead(&s.c, "S"), 2);
    /* C1 engages alpha again (c1, path: 20 × 1.5 = 30 -> 40): credit is once
     * per (S, C1, alpha), S gets nothing more */
    ap(&s, ev("f-4", T0 + 14 * DAY, "C1", "ACC", DS_MA_CONTENT_COMPLETED, "c1"));
    assert_near(last_lead(&s.c, "C1")->confront, 40.0);
    assert_int_equal(count_lead(&s.c, "S"), 2);

    sc_close(&s);
}

/* ---- 8. group credit ------------------------------------------------------- */

static void test_group_credit_both(void **state) {
    (void)state;
    sc_t s = sc_open("  half_life_days: 1\n", "ACC", true); /* 1 d: a day halves */

    /* T0: L1 attends webinar w1 (alpha INTRODUCE): 10 × 1.0 = 10 */
    ap(&s, ev("g-1", T0, "L1", "ACC", DS_MA_WEBINAR_ATTENDED, "w1"));
    assert_near(last_lead(&s.c, "L1")->confront, 10.0);
    assert_near(last_lead(&s.c, "L1")->connect, 0.0);
    /* T0+1d: L2 attends w1, |Δt| = 1 d ≤ 1 d: group credit to both.
     * L2: confront 10, connect 6.
     * L1: credit at T0+1d: confront 10 × 2^(−1/1) = 5, connect 6 */
    ap(&s, ev("g-2", T0 + DAY, "L2", "ACC", DS_MA_WEBINAR_ATTENDED, "w1"));
    const lrec_t *x = last_lead(&s.c, "L2");
    assert_near(x->confront, 10.0);
    assert_near(x->connect, 6.0);
    x = last_lead(&s.c, "L1");
    assert_int_equal(count_lead(&s.c, "L1"), 2);
    assert_near(x->confront, 5.0);
    assert_near(x->connect, 6.0);
    assert_int_equal(x->as_of, T0 + DAY);
    /* T0+1d: L4 attends: L4 gets 10 + 6; L1, L2 already credited for w1 */
    ap(&s, ev("g-3", T0 + DAY, "L4", "ACC", DS_MA_WEBINAR_ATTENDED, "w1"));
    assert_near(last_lead(&s.c, "L4")->confront, 10.0);
    assert_near(last_lead(&s.c, "L4")->connect, 6.0);
    assert_int_equal(count_lead(&s.c, "L1"), 2);
    assert_int_equal(count_lead(&s.c, "L2"), 1);
    /* T0+2d+1ms: L3 attends: 1 d + 1 ms after L2/L4, 2 d after L1: no credit */
    ap(&s, ev("g-4", T0 + 2 * DAY + 1, "L3", "ACC", DS_MA_WEBINAR_ATTENDED, "w1"));
    assert_near(last_lead(&s.c, "L3")->confront, 10.0);
    assert_near(last_lead(&s.c, "L3")->connect, 0.0);
    assert_int_equal(count_lead(&s.c, "L1"), 2);
    assert_int_equal(count_lead(&s.c, "L2"), 1);
    assert_int_equal(count_lead(&s.c, "L4"), 1);

    sc_close(&s);
}

/* ---- 9. unsubscribe -------------------------------------------------------- */

static void test_unsubscribe(void **state) {
    (void)state;
    sc_t s = sc_open(NULL, "L1", false);

    /* T0: s1 completed 5; share s1 with A: connect 8 */
    const char *with[] = {"A"};
    ap(&s, ev("u-1", T0, "L1", NULL, DS_MA_CONTENT_COMPLETED, "s1"));
    ap(&s, share_ev("u-2", T0, "L1", NULL, "s1", with, 1));
    const lrec_t *x = last_lead(&s.c, "L1");
    assert_near(x->confront, 5.0);
    assert_near(x->connect, 8.0);
    /* T0+1d: UNSUBSCRIBED: zeroing LeadScore with as_of = T0+1d */
    ap(&s, ev("u-3", T0 + DAY, "L1", NULL, DS_MA_UNSUBSCRIBED, NULL));
    x = last_lead(&s.c, "L1");
    assert_near(x->confront, 0.0);
    assert_near(x->connect, 0.0);
    assert_near(x->mobilizer, 0.0);
    assert_int_equal(x->tier, DS_TIER_UNAWARE);
    assert_int_equal(x->previous_tier, DS_TIER_LEARNING);
    assert_int_equal(x->as_of, T0 + DAY);
    assert_null(x->top_insight);
    assert_int_equal(x->furthest_stage, DS_NONE);
    /* T0+2d: memory is gone, scoring starts from zero:
     * i1 completed: 10 (no path memory of s1, else 15) */
    ap(&s, ev("u-4", T0 + 2 * DAY, "L1", NULL, DS_MA_CONTENT_COMPLETED, "i1"));
    x = last_lead(&s.c, "L1");
    assert_near(x->confront, 10.0);
    assert_int_equal(x->previous_tier, DS_TIER_UNAWARE);
    /* s1 completed again 2 d after the last counted one: repeat memory gone,
     * counts: + 5 = 15 */
    ap(&s, ev("u-5", T0 + 2 * DAY, "L1", NULL, DS_MA_CONTENT_COMPLETED, "s1"));
    assert_near(last_lead(&s.c, "L1")->confront, 15.0);
    /* share s1 with A again: share memory gone: connect 8 */
    ap(&s, share_ev("u-6", T0 + 2 * DAY, "L1", NULL, "s1", with, 1));
    assert_near(last_lead(&s.c, "L1")->connect, 8.0);

    /* a lead with no points emits nothing when it unsubscribes */
    size_t n = s.c.nl;
    sc_unit(&s, "L2", false);
    ap(&s, ev("u-7", T0, "L2", NULL, DS_MA_UNSUBSCRIBED, NULL));
    assert_int_equal(s.c.nl, n);

    /* nor does it move as_of: an account whose L1 scored at T0 still has
     * as_of T0 after its pointless L2 unsubscribes at T0+5d */
    sc_unit(&s, "ACC", true);
    ap(&s, ev("u-8", T0, "L1", "ACC", DS_MA_CONTENT_COMPLETED, "s1"));
    n = s.c.nl;
    size_t na = s.c.na;
    ap(&s, ev("u-9", T0 + 5 * DAY, "L2", "ACC", DS_MA_UNSUBSCRIBED, NULL));
    assert_int_equal(s.c.nl, n);
    assert_int_equal(s.c.na, na);
    ds_account_score_t a;
    memset(&a, 0, sizeof(a));
    assert_true(ds_score_unit_account_view(s.u, &a));
    assert_int_equal(a.as_of, T0);
    sc_close(&s);
}

/* ---- 10. top insight ties -------------------------------------------------- */

static void test_top_insight_ties(void **state) {
    (void)state;
    sc_t s = sc_open(NULL, "ACC", true);

    /* Lead tie: L1 beta first (s2, 5), then alpha (s1, 5): 5 = 5, the
     * smaller insight_id wins: alpha (whatever came first). */
    ap(&s, ev("t-1", T0, "L1", "ACC", DS_MA_CONTENT_COMPLETED, "s2"));
    assert_string_equal(last_lead(&s.c, "L1")->top_insight, "beta");
    ap(&s, ev("t-2", T0, "L1", "ACC", DS_MA_CONTENT_COMPLETED, "s1"));
    const lrec_t *x = last_lead(&s.c, "L1");
    assert_near(x->confront, 10.0);
    assert_string_equal(x->top_insight, "alpha");
    assert_int_equal(x->furthest_stage, DS_CS_SPARK);

    /* Account tie: L1 beta 5, L2 alpha 5: sums beta 5 = alpha 5 -> alpha */
    sc_unit(&s, "ACC", true);
    cap_clear(&s.c);
    ap(&s, ev("t-3", T0, "L1", "ACC", DS_MA_CONTENT_COMPLETED, "s2"));
    assert_string_equal(last_account(&s.c)->top_insight, "beta");
    ap(&s, ev("t-4", T0, "L2", "ACC", DS_MA_CONTENT_COMPLETED, "s1"));
    assert_string_equal(last_lead(&s.c, "L2")->top_insight, "alpha");
    const arec_t *a = last_account(&s.c);
    assert_non_null(a);
    assert_string_equal(a->account_id, "ACC");
    assert_string_equal(a->top_insight, "alpha");
    assert_int_equal(a->engaged_stakeholders, 2);
    /* break the tie: L1 views c2 (beta CONFRONT after beta SPARK):
     * 20 × 0.5 × 1.5 = 15 -> beta 20 > alpha 5 */
    ap(&s, ev("t-5", T0, "L1", "ACC", DS_MA_CONTENT_VIEWED, "c2"));
    assert_near(last_lead(&s.c, "L1")->confront, 20.0);
    assert_string_equal(last_account(&s.c)->top_insight, "beta");

    sc_close(&s);
}

/* ---- 11. consensus --------------------------------------------------------- */

static void test_consensus(void **state) {
    (void)state;
    sc_t s = sc_open(NULL, "ACC", true); /* consensus_target 5.4, tiers 40/30 */
    const arec_t *a;

    /* L1: s1 completed 5 -> engaged 1, confronted 0, consensus 0, top alpha */
    ap(&s, ev("k-1", T0, "L1", "ACC", DS_MA_CONTENT_COMPLETED, "s1"));
    a = last_account(&s.c);
    assert_non_null(a);
    assert_int_equal(a->engaged_stakeholders, 1);
    assert_int_equal(a->confronted_stakeholders, 0);
    assert_near(a->consensus, 0.0);
    assert_string_equal(a->top_insight, "alpha");
    /* L1: c1 diagnostic 20 × 1.5 × 1.5 (path) = 45 -> 50 ≥ 40 on alpha:
     * confronted 1, consensus 100 × 1/5.4 = 18.518… -> 18.5 */
    ap(&s, ev("k-2", T0, "L1", "ACC", DS_MA_DIAGNOSTIC_COMPLETED, "c1"));
    assert_near(last_lead(&s.c, "L1")->confront, 50.0);
    a = last_account(&s.c);
    assert_int_equal(a->confronted_stakeholders, 1);
    assert_near(a->consensus, 18.5);
    /* L3: c2 diagnostic 30 + c2 completed 20 (no earlier stage) = 50 on
     * beta: CONFRONTED, but its top is beta; account alpha 50 = beta 50,
     * tie -> alpha: still confronted 1, engaged 2 */
    ap(&s, ev("k-3", T0, "L3", "ACC", DS_MA_DIAGNOSTIC_COMPLETED, "c2"));
    ap(&s, ev("k-4", T0, "L3", "ACC", DS_MA_CONTENT_COMPLETED, "c2"));
    assert_near(last_lead(&s.c, "L3")->confront, 50.0);
    assert_int_equal(last_lead(&s.c, "L3")->tier, DS_TIER_CONFRONTED);
    a = last_account(&s.c);
    assert_int_equal(a->engaged_stakeholders, 2);
    assert_int_equal(a->confronted_stakeholders, 1);
    assert_string_equal(a->top_insight, "alpha");
    /* L2: like L1, 5 + 45 = 50 on alpha: alpha 100 > beta 50;
     * confronted 2, consensus 100 × 2/5.4 = 37.037… -> 37.0 */
    ap(&s, ev("k-5", T0, "L2", "ACC", DS_MA_CONTENT_COMPLETED, "s1"));
    ap(&s, ev("k-6", T0, "L2", "ACC", DS_MA_DIAGNOSTIC_COMPLETED, "c1"));
    a = last_account(&s.c);
    assert_int_equal(a->engaged_stakeholders, 3);
    assert_int_equal(a->confronted_stakeholders, 2);
    assert_near(a->consensus, 37.0);
    /* L4: s2 viewed 2.5: engaged 4, nothing else */
    ap(&s, ev("k-7", T0, "L4", "ACC", DS_MA_CONTENT_VIEWED, "s2"));
    a = last_account(&s.c);
    assert_int_equal(a->engaged_stakeholders, 4);
    assert_int_equal(a->confronted_stakeholders, 2);
    assert_int_equal(a->mobilizers_count, 0);
    /* L2 then L1 share s1 with 4 colleagues: 32 ≥ 30 and 50 ≥ 40:
     * MOBILIZER; mobilizers sorted ascending: [L1, L2] */
    const char *with[] = {"X1", "X2", "X3", "X4"};
    ap(&s, share_ev("k-8", T0, "L2", "ACC", "s1", with, 4));
    assert_int_equal(last_lead(&s.c, "L2")->tier, DS_TIER_MOBILIZER);
    assert_near(last_lead(&s.c, "L2")->mobilizer, sqrt(50.0 * 32.0));
    a = last_account(&s.c);
    assert_int_equal(a->mobilizers_count, 1);
    assert_string_equal(a->mobilizers[0], "L2");
    ap(&s, share_ev("k-9", T0, "L1", "ACC", "s1", with, 4));
    a = last_account(&s.c);
    assert_int_equal(a->engaged_stakeholders, 4);
    assert_int_equal(a->confronted_stakeholders, 2);
    assert_near(a->consensus, 37.0);
    assert_string_equal(a->top_insight, "alpha");
    assert_int_equal(a->mobilizers_count, 2);
    assert_string_equal(a->mobilizers[0], "L1");
    assert_string_equal(a->mobilizers[1], "L2");
    assert_int_equal(a->as_of, T0);

    sc_close(&s);
}

/* ---- 12. duplicates, save/load --------------------------------------------- */

/* a and b are both NULL or the same string. */
static void assert_same_str(const char *a, const char *b) {
    assert_true((a == NULL) == (b == NULL));
    if (a)
        assert_string_equal(a, b);
}

/* n strings of a and of b, the same one by one. */
static void assert_same_strs(char *const *a, char *const *b, size_t n) {
    for (size_t k = 0; k < n; k++)
        assert_string_equal(a[k], b[k]);
}

static void assert_same_records(const cap_t *x, const cap_t *y) {
    assert_int_equal(x->nl, y->nl);
    for (size_t i = 0; i < x->nl; i++) {
        const lrec_t *p = &x->l[i], *q = &y->l[i];
        assert_string_equal(p->lead_id, q->lead_id);
        assert_true(p->confront == q->confront);
        assert_true(p->connect == q->connect);
        assert_true(p->mobilizer == q->mobilizer);
        assert_int_equal(p->tier, q->tier);
        assert_int_equal(p->previous_tier, q->previous_tier);
        assert_int_equal(p->furthest_stage, q->furthest_stage);
        assert_int_equal(p->as_of, q->as_of);
        assert_int_equal(p->events_applied, q->events_applied);
        assert_same_str(p->top_insight, q->top_insight);
        assert_same_str(p->output_id, q->output_id);
        assert_int_equal(p->reasons_count, q->reasons_count);
        assert_same_strs(p->reasons, q->reasons, p->reasons_count);
    }
    assert_int_equal(x->na, y->na);
    for (size_t i = 0; i < x->na; i++) {
        const arec_t *p = &x->a[i], *q = &y->a[i];
        assert_int_equal(p->engaged_stakeholders, q->engaged_stakeholders);
        assert_int_equal(p->confronted_stakeholders, q->confronted_stakeholders);
        assert_true(p->consensus == q->consensus);
        assert_int_equal(p->as_of, q->as_of);
        assert_same_str(p->top_insight, q->top_insight);
        assert_int_equal(p->mobilizers_count, q->mobilizers_count);
        assert_same_strs(p->mobilizers, q->mobilizers, p->mobilizers_count);
    }
}

/* The event ids a saved unit remembers (live in the account's window),
 * read back from the saved bytes: every lead's, and the account-wide ones
 * of a unit moved from an earlier version's blob. */
static size_t saved_ids(const ds_buf_t *b) {
    ds_score_unit_t *u = su_load(&SU_SCORE_UNIT, b);
    size_t n = u->ldd.n;
    for (uint32_t i = 0; i < u->nleads; i++) {
        const lead_t *L = u->leads[i];
        for (uint32_t k = 0; k < L->dd.n; k++) /* live by the account's clock */
            n += u->max_t - L->dd.e[k].t <= u->dd_window_ms;
        for (uint32_t k = 1; k < L->dd.n; k++)
            assert_true(L->dd.e[k - 1].h < L->dd.e[k].h); /* by hash */
    }
    ds_score_unit_destroy(u);
    return n;
}

static ds_err_t apply_id(ds_score_unit_t *u, const ds_rules_t *r, const char *fmt, int i,
                         int64_t t) {
    char id[32];
    snprintf(id, sizeof(id), fmt, i);
    ds_ma_event_t e = ev(id, t, i % 2 ? "L1" : "L2", "ACC", DS_MA_CONTENT_VIEWED, "s1");
    return ds_score_unit_apply(u, r, &e, NULL);
}

/* The dedupe memory holds every id of the window however many arrive (the
 * array grows), forgets the ones the window has left (saved without them,
 * they count again), and still knows the live ones after making room.
 * The ids are kept on their leads (L1 and L2 take turns), the window is
 * the account's. */
static void test_dedupe_window(void **state) {
    (void)state;
    ds_rules_t *r = rules(NULL); /* dedupe_window_days 7 */
    ds_score_unit_t *u = ds_score_unit_new("ACC", true);
    for (int i = 0; i < 100; i++)
        assert_int_equal(apply_id(u, r, "a-%d", i, T0 + i * 1000), DS_ERR_OK);
    for (int i = 0; i < 100; i++)
        assert_int_equal(apply_id(u, r, "a-%d", i, T0 + i * 1000), DS_ERR_DUPLICATE);
    /* the newest event at T0 + 7 d + 50 s: a-0 … a-49 are out of the window */
    int64_t late = T0 + 7 * DAY + 50 * 1000;
    assert_int_equal(apply_id(u, r, "late-%d", 0, late), DS_ERR_OK);
    ds_buf_t b;
    ds_buf_init(&b, 0);
    su_save(&SU_SCORE_UNIT, u, &b);
    assert_int_equal(saved_ids(&b), 51);
    ds_score_unit_t *v = su_load(&SU_SCORE_UNIT, &b);
    ds_score_unit_t *units[] = {u, v};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(apply_id(units[k], r, "a-%d", 10, late), DS_ERR_OK);
        assert_int_equal(apply_id(units[k], r, "a-%d", 60, late), DS_ERR_DUPLICATE);
        assert_int_equal(apply_id(units[k], r, "late-%d", 0, late), DS_ERR_DUPLICATE);
        /* 300 more: the expired entries make room, then the array grows */
        for (int i = 0; i < 300; i++)
            assert_int_equal(apply_id(units[k], r, "b-%d", i, late), DS_ERR_OK);
        for (int i = 50; i < 100; i++)
            assert_int_equal(apply_id(units[k], r, "a-%d", i, late), DS_ERR_DUPLICATE);
        assert_int_equal(apply_id(units[k], r, "a-%d", 10, late), DS_ERR_DUPLICATE);
        for (int i = 0; i < 300; i++)
            assert_int_equal(apply_id(units[k], r, "b-%d", i, late), DS_ERR_DUPLICATE);
    }
    /* both histories save the same 352 ids */
    ds_buf_t bv;
    ds_buf_init(&bv, 0);
    su_save(&SU_SCORE_UNIT, u, &b);
    su_save(&SU_SCORE_UNIT, v, &bv);
    assert_int_equal(saved_ids(&b), 352);
    assert_int_equal(saved_ids(&bv), 352);
    su_assert_same_bytes(&b, &bv);
    ds_buf_free(&b);
    ds_buf_free(&bv);
    ds_score_unit_destroy(v);
    ds_score_unit_destroy(u);
    ds_rules_destroy(r);
}

/* A lead record (the per-lead format) with the given event ids, in the
 * given order, and nothing else. */
static void lead_rec_with_ids(ds_buf_t *b, const uint64_t *h, size_t n) {
    ds_buf_reset(b);
    assert_int_equal(ds_buf_put_u8(b, 3), DS_ERR_OK);           /* version */
    assert_int_equal(ds_buf_put_u8(b, 2 | 8), DS_ERR_OK);       /* member, has max_t */
    assert_int_equal(ds_buf_put_svarint(b, T0 + 10), DS_ERR_OK); /* max_t */
    assert_int_equal(ds_buf_put_svarint(b, (int64_t)n), DS_ERR_OK); /* events_applied */
    for (int i = 0; i < 2; i++)                                  /* n_emitted, gen */
        assert_int_equal(ds_buf_put_varint(b, 0), DS_ERR_OK);
    for (int i = 0; i < 2; i++) /* confront, connect */
        assert_int_equal(ds_buf_put_f64c(b, 0), DS_ERR_OK);
    for (int i = 0; i < 3; i++) /* emitted ×10 */
        assert_int_equal(ds_buf_put_svarint(b, 0), DS_ERR_OK);
    assert_int_equal(ds_buf_put_u8(b, 0), DS_ERR_OK); /* emitted tier */
    for (int i = 0; i < 4; i++)                       /* insights, repeats, buckets, shares */
        assert_int_equal(ds_buf_put_varint(b, 0), DS_ERR_OK);
    assert_int_equal(ds_buf_put_varint(b, n), DS_ERR_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ds_buf_put_i64(b, (int64_t)h[i]), DS_ERR_OK);
        assert_int_equal(ds_buf_put_time(b, T0 + 10, T0 + (int64_t)(h[i] % 10)), DS_ERR_OK);
    }
    for (int i = 0; i < 4; i++) /* inbox, credited, attendances, group credits */
        assert_int_equal(ds_buf_put_varint(b, 0), DS_ERR_OK);
}

/* A lead record whose event ids are out of order still loads (and is
 * written back in order); one that repeats an id does not. */
static void test_load_dedupe_order(void **state) {
    (void)state;
    uint64_t sorted[] = {11, 22, 33, 44, 55}, swapped[] = {22, 11, 33, 44, 55},
             twice[] = {11, 11, 33, 44, 55};
    ds_buf_t b, ref;
    ds_buf_init(&b, 0);
    ds_buf_init(&ref, 0);
    lead_rec_with_ids(&ref, sorted, 5);
    lead_rec_with_ids(&b, swapped, 5);
    ds_score_unit_t *u = ds_score_unit_new("ACC", true);
    assert_int_equal(ds_score_unit_put_lead(u, "L1", b.data, b.len), DS_ERR_OK);
    const lead_t *L = u->leads[0];
    assert_int_equal(L->dd.n, 5);
    for (uint32_t k = 0; k < 5; k++)
        assert_int_equal(L->dd.e[k].h, sorted[k]);
    /* written back: the sorted record's bytes */
    ds_buf_t rec;
    ds_buf_init(&rec, 0);
    assert_int_equal(ds_score_unit_save(u, &rec), DS_ERR_OK);
    assert_non_null(memmem(rec.data, rec.len, ref.data, ref.len));
    lead_rec_with_ids(&b, twice, 5);
    assert_int_equal(ds_score_unit_put_lead(u, "L2", b.data, b.len), DS_ERR_UNDECODABLE);
    /* nothing of the refused lead stays in memory */
    assert_int_equal(ds_score_unit_lead_count(u), 1);
    ds_buf_free(&b);
    ds_buf_free(&ref);
    ds_buf_free(&rec);
    ds_score_unit_destroy(u);
}

/* What a write passes of a lead's ids kept apart. */
typedef struct idw {
    int calls;
    bool whole;
    size_t n, recn;
    unsigned char rec[512]; /* the lead's last record */
} idw_t;

static void idw_lead(void *opaque, const ds_lead_score_t *v, uint64_t *notes, const void *rec,
                     size_t n, bool member, bool new_member) {
    (void)v, (void)notes, (void)member, (void)new_member;
    idw_t *w = opaque;
    w->recn = n;
    if (n <= sizeof(w->rec))
        memcpy(w->rec, rec, n);
}

static void count_needs(void *opaque, int kind, const char *id) {
    (void)id;
    if (kind == DS_SCORE_NEED_IDS)
        ++*(int *)opaque;
}

static void idw_ids(void *opaque, const char *lead, bool whole, const ds_dedupe_entry_t *e,
                    size_t n) {
    idw_t *w = opaque;
    assert_string_equal(lead, "L1");
    assert_true(n == 0 || e != NULL);
    w->calls++;
    w->whole = whole;
    w->n = n;
}

/* A lead record with 100 ids in it (as builds before the ids were kept
 * apart wrote it) loads, and its next write moves them apart: all of them
 * to the writer's ids, none in the record; the write after that passes
 * only what changed. */
static void test_ids_of_an_earlier_build_move_apart(void **state) {
    (void)state;
    enum { N = 100 };
    uint64_t h[N];
    for (size_t i = 0; i < N; i++)
        h[i] = 1000 + 7 * i;
    ds_buf_t b;
    ds_buf_init(&b, 0);
    lead_rec_with_ids(&b, h, N);
    ds_score_unit_t *u = ds_score_unit_new("ACC", true);
    assert_int_equal(ds_score_unit_put_lead(u, "L1", b.data, b.len), DS_ERR_OK);
    assert_int_equal(u->leads[0]->dd.n, N);
    assert_int_equal(u->leads[0]->ids, IDS_APART | IDS_WHOLE);
    size_t with_ids = b.len;
    /* the lead's next event, then a write */
    ds_rules_t *r = rules(NULL);
    ds_ma_event_t ev = ds_ma_event_make("new-1", T0 + 20, "L1", "ACC", DS_MA_CONTENT_VIEWED, "c1",
                                        "I1", DS_CS_SPARK);
    assert_int_equal(ds_score_unit_apply(u, r, &ev, NULL), DS_ERR_OK);
    idw_t w = {0};
    ds_score_writer_t wr = {.opaque = &w, .lead = idw_lead, .ids = idw_ids, .epoch = 1};
    assert_int_equal(ds_score_unit_write(u, &wr), DS_ERR_OK);
    assert_int_equal(w.calls, 1);
    assert_true(w.whole);
    assert_int_equal(w.n, N + 1);
    assert_true(w.recn < with_ids - N * 8); /* no id in the record */
    /* the next event: the one id it adds */
    ev.event_id = "new-2";
    assert_int_equal(ds_score_unit_apply(u, r, &ev, NULL), DS_ERR_OK);
    w = (idw_t){0};
    assert_int_equal(ds_score_unit_write(u, &wr), DS_ERR_OK);
    assert_int_equal(w.calls, 1);
    assert_false(w.whole);
    assert_int_equal(w.n, 1);
    /* another epoch of the writer (a reconnection): whole again */
    ev.event_id = "new-3";
    assert_int_equal(ds_score_unit_apply(u, r, &ev, NULL), DS_ERR_OK);
    wr.epoch = 2;
    w = (idw_t){0};
    assert_int_equal(ds_score_unit_write(u, &wr), DS_ERR_OK);
    assert_true(w.whole);
    assert_int_equal(w.n, N + 3);
    /* that record read back (a unit of its own, as after a restart): the
     * lead's next event asks for its ids; a hash Redis lost (none) is
     * refused, the ids themselves are taken */
    assert_true(w.recn <= sizeof(w.rec));
    ds_score_unit_t *v = ds_score_unit_new("ACC", true);
    for (uint32_t i = 0; i < u->ndict; i++) /* the dictionary its record refers to */
        assert_int_equal(ds_score_unit_put_dict(v, i, ds_score_str(u, u->dict[i]),
                                                ds_score_strlen(u, u->dict[i])),
                         DS_ERR_OK);
    assert_int_equal(ds_score_unit_put_lead(v, "L1", w.rec, w.recn), DS_ERR_OK);
    ev.event_id = "new-1"; /* a duplicate */
    int asked = 0;
    ds_score_unit_needs(v, r, &ev, count_needs, &asked);
    assert_int_equal(asked, 1);
    assert_int_equal(ds_score_unit_apply(v, r, &ev, NULL), DS_ERR_AGAIN);
    assert_int_equal(ds_score_unit_put_ids(v, "L1", NULL, 0), DS_ERR_UNDECODABLE);
    assert_int_equal(ds_score_unit_put_ids(v, "L1", u->leads[0]->dd.e, u->leads[0]->dd.n),
                     DS_ERR_OK);
    asked = 0;
    ds_score_unit_needs(v, r, &ev, count_needs, &asked);
    assert_int_equal(asked, 0);
    assert_int_equal(ds_score_unit_apply(v, r, &ev, NULL), DS_ERR_DUPLICATE);
    ds_score_unit_destroy(v);
    ds_rules_destroy(r);
    ds_buf_free(&b);
    ds_score_unit_destroy(u);
}

/* What a write passes of a lead's memory kept apart. */
typedef struct memw {
    int calls;
    bool whole;
    size_t n, recn;
    char field[64], value[32]; /* the last field passed */
    unsigned char rec[2048];
} memw_t;

static void memw_lead(void *opaque, const ds_lead_score_t *v, uint64_t *notes, const void *rec,
                      size_t n, bool member, bool new_member) {
    (void)v, (void)notes, (void)member, (void)new_member;
    memw_t *w = opaque;
    w->recn = n;
    assert_true(n <= sizeof(w->rec));
    memcpy(w->rec, rec, n);
}

static void memw_mem(void *opaque, const char *lead, bool whole, const ds_score_field_t *f,
                     size_t n) {
    memw_t *w = opaque;
    assert_string_equal(lead, "L1");
    w->calls++;
    w->whole = whole;
    w->n = n;
    if (n) {
        snprintf(w->field, sizeof(w->field), "%.*s", (int)f[n - 1].kn, f[n - 1].k);
        snprintf(w->value, sizeof(w->value), "%.*s", (int)f[n - 1].vn, f[n - 1].v);
    }
}

static void count_mem_needs(void *opaque, int kind, const char *id) {
    (void)id;
    if (kind == DS_SCORE_NEED_MEM)
        ++*(int *)opaque;
}

/* A lead's memory of content moves apart at the entry that makes it more
 * than 64: a write passes it whole, the next one the entry that changed;
 * its record then holds none of it but the count of each share's
 * colleagues (its reason's words, right after a read without the
 * memory); a lead read back asks for it before its next event, refuses a
 * hash that lost entries, and knows a repeat from it; an unsubscribe
 * takes it back into the record and deletes the hash. */
static void test_memory_of_content_moves_apart(void **state) {
    (void)state;
    ds_rules_t *r = rules(NULL);
    ds_score_unit_t *u = ds_score_unit_new("ACC", true);
    char id[32], content[32];
    const char *with[] = {"L2", "L3"};
    ds_ma_event_t e = share_ev("sh-1", T0, "L1", "ACC", "s1", with, 2);
    assert_int_equal(ds_score_unit_apply(u, r, &e, NULL), DS_ERR_OK);
    for (int i = 0; i < 64; i++) { /* with the two pairs, 66 entries: apart at the 65th */
        snprintf(id, sizeof(id), "v-%d", i);
        snprintf(content, sizeof(content), "c-%d", i);
        e = ev(id, T0 + 1 + i, "L1", "ACC", DS_MA_CONTENT_VIEWED, content);
        e.content_stage = DS_CS_SPARK;
        assert_int_equal(ds_score_unit_apply(u, r, &e, NULL), DS_ERR_OK);
        assert_int_equal(u->leads[0]->mem & IDS_APART, i < 62 ? 0 : IDS_APART);
    }
    memw_t w = {0};
    ds_score_writer_t wr = {.opaque = &w, .lead = memw_lead, .mem = memw_mem, .epoch = 1};
    assert_int_equal(ds_score_unit_write(u, &wr), DS_ERR_OK);
    assert_int_equal(w.calls, 1);
    assert_true(w.whole);
    assert_int_equal(w.n, 66);
    assert_true(w.recn < 600); /* none of the 66 entries in it */
    /* a new content: its one entry */
    e = ev("v-new", T0 + 100, "L1", "ACC", DS_MA_CONTENT_VIEWED, "c-new");
    e.content_stage = DS_CS_SPARK;
    assert_int_equal(ds_score_unit_apply(u, r, &e, NULL), DS_ERR_OK);
    w = (memw_t){0};
    assert_int_equal(ds_score_unit_write(u, &wr), DS_ERR_OK);
    assert_int_equal(w.calls, 1);
    assert_false(w.whole);
    assert_int_equal(w.n, 1);
    char want[32];
    snprintf(want, sizeof(want), "r%d:c-new", DS_MA_CONTENT_VIEWED);
    assert_string_equal(w.field, want);
    assert_string_equal(w.value, "1700000000100");
    /* read back without its memory: the share's words still count 2 */
    ds_score_unit_t *v = ds_score_unit_new("ACC", true);
    for (uint32_t i = 0; i < u->ndict; i++)
        assert_int_equal(ds_score_unit_put_dict(v, i, ds_score_str(u, u->dict[i]),
                                                ds_score_strlen(u, u->dict[i])),
                         DS_ERR_OK);
    assert_int_equal(ds_score_unit_put_lead(v, "L1", w.rec, w.recn), DS_ERR_OK);
    ds_lead_score_t view;
    ds_score_lead_public(v, 0, &view);
    bool words = false;
    for (size_t i = 0; i < view.reasons_count; i++)
        words |= !strncmp(view.reasons[i], "Shared s1 with 2 colleagues", 27);
    assert_true(words);
    /* its 67 ids moved apart too */
    assert_int_equal(ds_score_unit_put_ids(v, "L1", u->leads[0]->dd.e, u->leads[0]->dd.n),
                     DS_ERR_OK);
    /* an event the rules do not classify does without its memory */
    e = ev("v-unc", T0 + 200, "L1", "ACC", DS_MA_CONTENT_VIEWED, "not-in-catalog");
    int asked = 0;
    ds_score_unit_needs(v, r, &e, count_mem_needs, &asked);
    assert_int_equal(asked, 0);
    assert_int_equal(ds_score_unit_apply(v, r, &e, NULL), DS_ERR_OK);
    /* a repeat of c-0 a day later: its memory is asked for first */
    e = ev("v-rep", T0 + 86400000, "L1", "ACC", DS_MA_CONTENT_VIEWED, "c-0");
    e.content_stage = DS_CS_SPARK;
    asked = 0;
    ds_score_unit_needs(v, r, &e, count_mem_needs, &asked);
    assert_int_equal(asked, 1);
    assert_int_equal(ds_score_unit_apply(v, r, &e, NULL), DS_ERR_AGAIN);
    /* the memory as u holds it, as fields; with one lost, refused */
    ds_buf_t fb;
    ds_buf_init(&fb, 0);
    const lead_t *L = u->leads[0];
    size_t nf = L->nrep + L->nshc, *off = calloc(2 * nf + 1, sizeof(*off));
    assert_non_null(off);
    for (size_t i = 0; i < nf; i++) {
        bool share = i >= L->nrep;
        off[2 * i] = fb.len;
        assert_int_equal(ds_score_mem_field(u, share,
                                            share ? L->shc[i - L->nrep].content : L->rep[i].content,
                                            share ? L->shc[i - L->nrep].colleague : L->rep[i].type,
                                            &fb),
                         DS_ERR_OK);
        off[2 * i + 1] = fb.len;
        char t[24] = "1";
        if (!share)
            snprintf(t, sizeof(t), "%" PRId64, L->rep[i].t);
        assert_int_equal(ds_buf_append(&fb, t, strlen(t)), DS_ERR_OK);
    }
    off[2 * nf] = fb.len;
    ds_score_field_t *f = calloc(nf, sizeof(*f));
    assert_non_null(f);
    for (size_t i = 0; i < nf; i++)
        f[i] = (ds_score_field_t){(const char *)fb.data + off[2 * i],
                                  (const char *)fb.data + off[2 * i + 1],
                                  off[2 * i + 1] - off[2 * i], off[2 * i + 2] - off[2 * i + 1]};
    assert_int_equal(ds_score_unit_put_mem(v, "L1", f, 64), DS_ERR_UNDECODABLE);
    ds_score_field_t bad = f[0];
    bad.v = "x";
    bad.vn = 1;
    ds_score_field_t two[65];
    memcpy(two, f, sizeof(two));
    two[3] = bad;
    assert_int_equal(ds_score_unit_put_mem(v, "L1", two, 65), DS_ERR_UNDECODABLE);
    assert_int_equal(ds_score_unit_put_mem(v, "L1", f, nf), DS_ERR_OK);
    asked = 0;
    ds_score_unit_needs(v, r, &e, count_mem_needs, &asked);
    assert_int_equal(asked, 0);
    double before = v->leads[0]->confront;
    assert_int_equal(ds_score_unit_apply(v, r, &e, NULL), DS_ERR_OK);
    assert_true(v->leads[0]->confront == before); /* a repeat inside the window */
    /* an unsubscribe: the hash deleted, the record holds the (empty) memory */
    e = ev("un", T0 + 2 * 86400000LL, "L1", "ACC", DS_MA_UNSUBSCRIBED, NULL);
    assert_int_equal(ds_score_unit_apply(v, r, &e, NULL), DS_ERR_OK);
    w = (memw_t){0};
    assert_int_equal(ds_score_unit_write(v, &wr), DS_ERR_OK);
    assert_int_equal(w.calls, 1);
    assert_true(w.whole);
    assert_int_equal(w.n, 0);
    assert_int_equal(w.rec[0], 3); /* the record's version: its memory in it */
    assert_int_equal(v->leads[0]->mem, 0);
    free(f);
    free(off);
    ds_buf_free(&fb);
    ds_score_unit_destroy(v);
    ds_score_unit_destroy(u);
    ds_rules_destroy(r);
}

/* The saved event ids are sorted by hash whatever order they arrived in,
 * so a unit saves to the same bytes after a load: a few and many. */
static void test_save_is_canonical(void **state) {
    (void)state;
    ds_rules_t *r = rules(NULL);
    static const int counts[] = {5, 32, 33, 200};
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        ds_score_unit_t *u = ds_score_unit_new("ACC", true);
        char id[32];
        for (int i = 0; i < counts[c]; i++) {
            snprintf(id, sizeof(id), "dd-%d", i);
            ds_ma_event_t e = ev(id, T0 + i, i % 2 ? "L1" : "L2", "ACC", DS_MA_CONTENT_VIEWED, "s1");
            assert_int_equal(ds_score_unit_apply(u, r, &e, NULL), DS_ERR_OK);
        }
        ds_buf_t b;
        ds_buf_init(&b, 0);
        su_save(&SU_SCORE_UNIT, u, &b);
        assert_int_equal(saved_ids(&b), counts[c]);
        ds_score_unit_t *v = su_load_canonical(&SU_SCORE_UNIT, &b);
        ds_buf_free(&b);
        ds_score_unit_destroy(v);
        ds_score_unit_destroy(u);
    }
    ds_rules_destroy(r);
}

/* One unit that fills every part of the saved state: leads with insights,
 * repeats, every bucket kind and counted shares; forwards, follow credit,
 * attendances, group credit; an unsubscribe; a late event; dedupe ids. */
static ds_score_unit_t *mixed_unit(const ds_rules_t *r) {
    cap_t c = {0};
    ds_score_unit_t *u = ds_score_unit_new("ACC", true);
    assert_non_null(u);
    const char *with[] = {"C1", "C2"};
    apply_ok(u, r, ev("m-1", T0, "L1", "ACC", DS_MA_CONTENT_VIEWED, "s1"), &c);
    apply_ok(u, r, share_ev("m-2", T0 + 1000, "S", "ACC", "s1", with, 2), &c);
    apply_ok(u, r, ev("m-3", T0 + DAY, "L1", "ACC", DS_MA_WEBINAR_ATTENDED, "w1"), &c);
    apply_ok(u, r, ev("m-4", T0 + DAY + 5 * 3600000LL, "L2", "ACC", DS_MA_WEBINAR_ATTENDED, "w1"),
             &c);
    apply_ok(u, r, ev("m-5", T0 + 2 * DAY, "L2", "ACC", DS_MA_DIAGNOSTIC_COMPLETED, "c2"), &c);
    apply_ok(u, r, ev("m-6", T0 + 3 * DAY, "C1", "ACC", DS_MA_CONTENT_COMPLETED, "i1"), &c);
    apply_ok(u, r, ev("m-7", T0 + 3 * DAY + 7, "L3", "ACC", DS_MA_CONTENT_VIEWED, "s2"), &c);
    apply_ok(u, r, ev("m-8", T0 + 3 * DAY + 9, "L3", "ACC", DS_MA_CONTENT_VIEWED, "s2"), &c);
    apply_ok(u, r, ev("m-9", T0 - DAY, "L1", "ACC", DS_MA_CONTENT_COMPLETED, "c1"), &c);
    apply_ok(u, r, ev("m-10", T0 + 4 * DAY, "L3", "ACC", DS_MA_UNSUBSCRIBED, NULL), &c);
    apply_ok(u, r, ev("m-11", T0 + 4 * DAY + 1, "C1", "ACC", DS_MA_CONTENT_COMPLETED, "b1"), &c);
    cap_clear(&c);
    return u;
}

/* Events after mixed_unit(): a follow credit on i1 for S through C2, a
 * webinar attendance next to L1's and L2's, more of L1, a repeat, a
 * duplicate of one of mixed_unit's ids, the unsubscribed L3 again. */
static void continue_mixed(ds_score_unit_t *u, const ds_rules_t *r, cap_t *c) {
    ds_score_sink_t sk = sink_of(c);
    ds_ma_event_t evs[] = {
        ev("n-1", T0 + 4 * DAY + 10, "C2", "ACC", DS_MA_CONTENT_COMPLETED, "i1"),
        ev("n-2", T0 + DAY + 3600000LL, "C1", "ACC", DS_MA_WEBINAR_ATTENDED, "w1"),
        ev("n-3", T0 + 5 * DAY, "L1", "ACC", DS_MA_CONTENT_COMPLETED, "c1"),
        ev("n-4", T0 + 5 * DAY + 1, "L2", "ACC", DS_MA_DIAGNOSTIC_COMPLETED, "c2"),
        ev("m-5", T0 + 2 * DAY, "L2", "ACC", DS_MA_DIAGNOSTIC_COMPLETED, "c2"),
        ev("n-5", T0 + 6 * DAY, "L3", "ACC", DS_MA_CONTENT_COMPLETED, "s1"),
        ev("n-6", T0 + 30 * DAY, "S", "ACC", DS_MA_CONTENT_COMPLETED, "c1"),
    };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        ds_err_t e = ds_score_unit_apply(u, r, &evs[i], &sk);
        assert_true(e == DS_ERR_OK || e == DS_ERR_DUPLICATE);
    }
}

/* State saved whole by earlier versions (mixed_unit() in version 1's
 * fixed-width blob, tests/fixtures/score_unit_v1.bin, written by the
 * build before version 2) still loads and behaves as the unit that never
 * left memory: same figures now, same records for what follows, same
 * save. */
static void test_loads_version_1(void **state) {
    (void)state;
    ds_rules_t *r = rules(NULL);
    ds_score_unit_t *u = mixed_unit(r);
    ds_buf_t v1 = {0};
    v1.data = su_fixture("score_unit_v1.bin", &v1.len);
    ds_score_unit_t *v = su_load(&SU_SCORE_UNIT, &v1);
    assert_true(ds_score_unit_is_legacy(v));
    char why[256];
    assert_true(ds_score_unit_check(v, why, sizeof(why)));
    ds_account_score_t au, av;
    assert_true(ds_score_unit_account_view(u, &au));
    int32_t engaged = au.engaged_stakeholders, confronted = au.confronted_stakeholders;
    double consensus = au.consensus;
    assert_true(ds_score_unit_account_view(v, &av));
    assert_int_equal(av.engaged_stakeholders, engaged);
    assert_int_equal(av.confronted_stakeholders, confronted);
    assert_true(av.consensus == consensus);
    /* the same continuation gives the same records on both */
    cap_t cu = {0}, cv = {0};
    continue_mixed(u, r, &cu);
    continue_mixed(v, r, &cv);
    assert_true(cu.nl > 3 && cu.na > 0);
    assert_same_records(&cu, &cv);
    /* its save is canonical: loads back to the same bytes */
    ds_buf_t b;
    ds_buf_init(&b, 0);
    su_save(&SU_SCORE_UNIT, v, &b);
    ds_score_unit_t *w = su_load_canonical(&SU_SCORE_UNIT, &b);
    assert_false(ds_score_unit_is_legacy(w));
    /* every truncation of either format is refused, none crashes */
    su_assert_prefixes_refused(&SU_SCORE_UNIT, b.data, b.len);
    su_assert_prefixes_refused(&SU_SCORE_UNIT, v1.data, v1.len);
    ds_buf_free(&b);
    free(v1.data);
    cap_clear(&cu);
    cap_clear(&cv);
    ds_score_unit_destroy(w);
    ds_score_unit_destroy(v);
    ds_score_unit_destroy(u);
    ds_rules_destroy(r);
}

static void test_duplicate_and_save_load(void **state) {
    (void)state;
    ds_rules_t *r = rules(NULL);
    cap_t c = {0}, c2 = {0};
    ds_score_sink_t sk = sink_of(&c);
    ds_score_unit_t *u = ds_score_unit_new("ACC", true);
    assert_non_null(u);

    /* e1: s1 completed 5 */
    ds_ma_event_t e1 = ev("e1", T0, "L1", "ACC", DS_MA_CONTENT_COMPLETED, "s1");
    assert_int_equal(ds_score_unit_apply(u, r, &e1, &sk), DS_ERR_OK);
    assert_near(last_lead(&c, "L1")->confront, 5.0);
    /* e1 again: a duplicate, applied once: nothing emitted */
    size_t n = c.nl, na = c.na;
    assert_int_equal(ds_score_unit_apply(u, r, &e1, &sk), DS_ERR_DUPLICATE);
    assert_int_equal(c.nl, n);
    assert_int_equal(c.na, na);
    /* e2: i1 completed with path 10 × 1.5 = 15 -> 20; events_applied 2 */
    ds_ma_event_t e2 = ev("e2", T0, "L1", "ACC", DS_MA_CONTENT_COMPLETED, "i1");
    assert_int_equal(ds_score_unit_apply(u, r, &e2, &sk), DS_ERR_OK);
    const lrec_t *x = last_lead(&c, "L1");
    assert_near(x->confront, 20.0);
    assert_int_equal(x->events_applied, 2);

    /* save, load */
    ds_buf_t b;
    ds_buf_init(&b, 0);
    su_save(&SU_SCORE_UNIT, u, &b);
    ds_score_unit_t *v = su_load(&SU_SCORE_UNIT, &b);
    assert_string_equal(ds_score_unit_key(v), "ACC");
    assert_true(ds_score_unit_is_account(v));
    assert_int_equal(ds_score_unit_lead_count(v), 1);

    /* the dedupe memory survives: e2 again is a duplicate on both */
    cap_clear(&c);
    ds_score_sink_t sk2 = sink_of(&c2);
    assert_int_equal(ds_score_unit_apply(u, r, &e2, &sk), DS_ERR_DUPLICATE);
    assert_int_equal(ds_score_unit_apply(v, r, &e2, &sk2), DS_ERR_DUPLICATE);
    assert_int_equal(c.nl + c.na + c2.nl + c2.na, 0);

    /* e3 at T0+30d: c1 completed with path 20 × 1.5 = 30; the 20 halves:
     * 10 + 30 = 40 -> CONFRONTED (previous LEARNING), events_applied 3 */
    ds_ma_event_t e3 = ev("e3", T0 + 30 * DAY, "L1", "ACC", DS_MA_CONTENT_COMPLETED, "c1");
    assert_int_equal(ds_score_unit_apply(u, r, &e3, &sk), DS_ERR_OK);
    assert_int_equal(ds_score_unit_apply(v, r, &e3, &sk2), DS_ERR_OK);
    x = last_lead(&c, "L1");
    assert_non_null(x);
    assert_near(x->confront, 40.0);
    assert_int_equal(x->tier, DS_TIER_CONFRONTED);
    assert_int_equal(x->previous_tier, DS_TIER_LEARNING);
    assert_int_equal(x->events_applied, 3);
    assert_int_equal(x->as_of, T0 + 30 * DAY);
    /* account: 1 confronted on alpha, 100 × 1/5.4 -> 18.5 */
    assert_non_null(last_account(&c));
    assert_near(last_account(&c)->consensus, 18.5);
    assert_same_records(&c, &c2);

    ds_buf_free(&b);
    ds_score_unit_destroy(v);
    ds_score_unit_destroy(u);
    cap_clear(&c);
    cap_clear(&c2);
    ds_rules_destroy(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_order),
        cmocka_unit_test(test_save_is_canonical),
        cmocka_unit_test(test_b_state_factor),
        cmocka_unit_test(test_repeat_window),
        cmocka_unit_test(test_decay_one_half_life),
        cmocka_unit_test(test_late_event_decay),
        cmocka_unit_test(test_share_cap),
        cmocka_unit_test(test_follow_window_edges),
        cmocka_unit_test(test_group_credit_both),
        cmocka_unit_test(test_unsubscribe),
        cmocka_unit_test(test_top_insight_ties),
        cmocka_unit_test(test_consensus),
        cmocka_unit_test(test_duplicate_and_save_load),
        cmocka_unit_test(test_loads_version_1),
        cmocka_unit_test(test_dedupe_window),
        cmocka_unit_test(test_load_dedupe_order),
        cmocka_unit_test(test_ids_of_an_earlier_build_move_apart),
        cmocka_unit_test(test_memory_of_content_moves_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
