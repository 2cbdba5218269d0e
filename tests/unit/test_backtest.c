/*
 * test_backtest.c — the backtest's report and rules learn's values on
 * hand-made streams whose figures are computed by hand in the comments:
 * a deal alerted twice, a deal still open, kinds that never fire, ties in
 * the median, an event-time range; and the learned max_quiet_days.
 */
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

#include "backtest.h"
#include "learn.h"
#include "rules.h"
#include "unit_util.h"

#define DAY ((int64_t)DS_DAY_MS)
#define T0 ((int64_t)1700000000000LL)

/* RECOGNIZE_NEED quiet after 10 days, EXPLORE_OPTIONS after 5; the other
 * stages as the defaults. */
static const char RULES_YAML[] = "stall:\n"
                                 "  max_unanswered_seller_actions: 3\n"
                                 "  renotify_days: 7\n"
                                 "  stages:\n"
                                 "    RECOGNIZE_NEED: {verifiers: [live_call_accepted], "
                                 "max_quiet_days: 10}\n"
                                 "    EXPLORE_OPTIONS: {verifiers: [status_quo_flaw_acknowledged], "
                                 "max_quiet_days: 5}\n";

static ds_rules_t *rules(void) {
    char err[256];
    ds_rules_t *r = ds_rules_load_buffer("test", RULES_YAML, strlen(RULES_YAML), err, sizeof(err));
    assert_non_null(r);
    r->dedupe_window_days = 7;
    return r;
}

/* A backtest under rules() over [since, until) (learn: it keeps the
 * quiet spells), and its report once the events are in. */
typedef struct btx {
    ds_rules_t *r;
    ds_backtest_t *bt;
    ds_bt_report_t rep;
} btx_t;

static ds_backtest_t *bt_open(btx_t *x, int64_t since, int64_t until, bool learn) {
    memset(x, 0, sizeof(*x));
    x->r = rules();
    ds_backtest_opts_t o = {since, until, learn};
    x->bt = ds_backtest_new(x->r, &o);
    assert_non_null(x->bt);
    return x->bt;
}

static const ds_bt_report_t *bt_report(btx_t *x) {
    ds_backtest_report(x->bt, &x->rep);
    return &x->rep;
}

static void bt_close(btx_t *x) {
    ds_backtest_destroy(x->bt);
    ds_rules_destroy(x->r);
}

static int g_seq;

/* Replay one event of `deal` at day `d` of type `type` (signal may be NULL). */
static void ev(ds_backtest_t *bt, int32_t part, const char *deal, double d, int type,
               const char *signal) {
    char id[32];
    snprintf(id, sizeof(id), "e%d", ++g_seq);
    ds_crm_event_t e;
    memset(&e, 0, sizeof(e));
    e.event_id = id;
    e.deal_id = deal;
    e.account_id = "A-1";
    e.occurred_at = T0 + (int64_t)(d * (double)DAY);
    e.type = type;
    e.stage = type == DS_CRM_DEAL_OPENED ? DS_PS_RECOGNIZE_NEED : DS_NONE;
    e.signal = signal;
    e.contact_role = DS_NONE;
    e.activity = type == DS_CRM_SELLER_ACTIVITY ? "email" : NULL;
    assert_int_equal(ds_backtest_apply(bt, part, &e), DS_ERR_OK);
}

/* An event without a signal on partition 0: its deal, day and type. */
typedef struct bt_step {
    const char *deal;
    double day;
    int type;
} bt_step_t;

#define OPEN DS_CRM_DEAL_OPENED
#define SELL DS_CRM_SELLER_ACTIVITY
#define BUY DS_CRM_BUYER_SIGNAL
#define WON DS_CRM_DEAL_WON
#define LOST DS_CRM_DEAL_LOST

static void expect_fig(const ds_bt_figures_t *f, int64_t opened, int64_t won, int64_t lost,
                       int64_t open, double precision, double recall, double lead, double noise) {
    assert_int_equal(f->alerts_opened, opened);
    assert_int_equal(f->deals_alerted, won + lost + open);
    assert_int_equal(f->won, won);
    assert_int_equal(f->lost, lost);
    assert_int_equal(f->open, open);
    const double got[] = {f->precision, f->recall, f->median_lead_days, f->noise};
    const double want[] = {precision, recall, lead, noise};
    for (int i = 0; i < 4; i++) {
        if (isnan(want[i]))
            assert_true(isnan(got[i]));
        else
            assert_float_equal(got[i], want[i], 1e-9);
    }
}

/* The report's deal counts: seen, won, lost and still open. */
static void expect_deals(const ds_bt_report_t *rep, int64_t deals, int64_t won, int64_t lost,
                         int64_t open) {
    assert_int_equal(rep->deals, deals);
    assert_int_equal(rep->won, won);
    assert_int_equal(rep->lost, lost);
    assert_int_equal(rep->open, open);
}

/* Each deal on a partition of its own, so that its clock is its own
 * events' times:
 *   A lost:  opened 0; seller 11 → NO_BUYER_SIGNAL opens (quiet 11 > 10);
 *            live_call 12 resolves it (now EXPLORE_OPTIONS, 5 days); seller
 *            18 → opens again (quiet 6 > 5); lost 20.  Lead 20 − 11 = 9.
 *   B won:   opened 0; seller 1, 2, 3 → ONE_SIDED opens at 3; live_call 4;
 *            won 6 (cycle 6).
 *   C won:   opened 0; live_call 2; won 4 (cycle 4); a seller action at 5
 *            after the close is ignored.
 *   D lost:  opened 0; lost 3 (cycle 3), never alerted.
 *   E open:  opened 0; seller 15 → NO_BUYER_SIGNAL opens; seller 23 → a
 *            REMINDER (not an alert opened).  Its clock ends at 23.
 *   F lost:  opened 0; seller 1, 2, 3 → ONE_SIDED opens at 3; lost 7 (lead 4).
 * NO_BUYER_SIGNAL: 3 opened (A twice, E), deals A (lost) and E (open):
 *   precision 1/1, recall 1/3, lead 9, noise 0/2.
 * ONE_SIDED: B (won) and F (lost): precision 1/2, recall 1/3, lead 4, noise 1/2.
 * UNVERIFIED_STAGE, NO_MOBILIZER: never; recall 0/3, noise 0/2, the rest undefined.
 * Any kind: 5 opened; A, E, F, B: precision 2/3, recall 2/3, leads 9 and 4:
 *   median 6.5 (the mean of the two middle values), noise 1/2.
 * Median won cycle (6, 4) = 5, AGED after 8.25 days: A (20, lead 11.75) and
 *   E (23 days at its clock's end); B, C, D, F are not. */
static void test_report_by_hand(void **state) {
    (void)state;
    btx_t x;
    ds_backtest_t *bt = bt_open(&x, INT64_MIN, INT64_MAX, false);
    static const char *const deals[] = {"A", "B", "C", "D", "E", "F"};
    for (int32_t p = 0; p < 6; p++) /* deal p on partition p */
        ev(bt, p, deals[p], 0, OPEN, NULL);
    for (int d = 1; d <= 3; d++) {
        ev(bt, 1, "B", d, SELL, NULL);
        ev(bt, 5, "F", d, SELL, NULL);
    }
    ev(bt, 2, "C", 2, BUY, "live_call_accepted");
    ev(bt, 3, "D", 3, LOST, NULL);
    ev(bt, 1, "B", 4, BUY, "live_call_accepted");
    ev(bt, 2, "C", 4, WON, NULL);
    ev(bt, 2, "C", 5, SELL, NULL); /* after the close: ignored */
    ev(bt, 1, "B", 6, WON, NULL);
    ev(bt, 5, "F", 7, LOST, NULL);
    ev(bt, 0, "A", 11, SELL, NULL);
    ev(bt, 0, "A", 12, BUY, "live_call_accepted");
    ev(bt, 4, "E", 15, SELL, NULL);
    ev(bt, 0, "A", 18, SELL, NULL);
    ev(bt, 0, "A", 20, LOST, NULL);
    ev(bt, 4, "E", 23, SELL, NULL);
    assert_int_equal(ds_backtest_open_deals(bt), 1); /* closed deals' state is freed */
    const ds_bt_report_t *rep = bt_report(&x);
    assert_int_equal(rep->events, 25);
    assert_int_equal(rep->applied, 24);
    assert_int_equal(rep->ignored, 1);
    expect_deals(rep, 6, 2, 3, 1);
    expect_fig(&rep->kind[DS_AK_NO_BUYER_SIGNAL], 3, 0, 1, 1, 1.0, 1.0 / 3, 9, 0);
    expect_fig(&rep->kind[DS_AK_ONE_SIDED], 2, 1, 1, 0, 0.5, 1.0 / 3, 4, 0.5);
    expect_fig(&rep->kind[DS_AK_UNVERIFIED_STAGE], 0, 0, 0, 0, NAN, 0, NAN, 0);
    expect_fig(&rep->kind[DS_AK_NO_MOBILIZER], 0, 0, 0, 0, NAN, 0, NAN, 0);
    expect_fig(&rep->any, 5, 1, 2, 1, 2.0 / 3, 2.0 / 3, 6.5, 0.5);
    assert_float_equal(rep->median_won_cycle_days, 5, 1e-9);
    assert_float_equal(rep->aged_after_days, 8.25, 1e-9);
    expect_fig(&rep->aged, 2, 0, 1, 1, 1.0, 1.0 / 3, 11.75, 0);
    /* the report does not change the state: asked twice, the same */
    ds_bt_report_t again;
    ds_backtest_report(bt, &again);
    assert_int_equal(again.any.alerts_opened, 5);
    assert_float_equal(again.any.median_lead_days, 6.5, 1e-9);
    bt_close(&x);
}

/* One partition, so every event moves every deal's clock (days):
 *   0 OLD opened   before --since 8: OLD is left out, its events too
 *   5 OLD seller   before --since
 *  10 NEW opened
 *  20 CUT opened   (NEW's deadline is 20 d + 1 ms: not due)
 *  25 NEW seller   NO_BUYER_SIGNAL opens for NEW (quiet 15)
 *  30 OLD lost     in range but OLD is left out; the clock moves to 30:
 *                  CUT quiet exactly 10 days, not over 10: nothing
 *  40 NEW won      the clock check opens NO_BUYER_SIGNAL for CUT (quiet 20)
 *  50 CUT won      at or after --until 45: not applied, CUT stays open
 *  50 LATE opened  after --until
 * NO_BUYER_SIGNAL: 2 opened, NEW (won) and CUT (open): precision 0/1,
 * recall undefined (no lost deal), noise 1/1. */
static void test_since_until(void **state) {
    (void)state;
    static const bt_step_t evs[] = {{"OLD", 0, OPEN},  {"OLD", 5, SELL},  {"NEW", 10, OPEN},
                                    {"CUT", 20, OPEN}, {"NEW", 25, SELL}, {"OLD", 30, LOST},
                                    {"NEW", 40, WON},  {"CUT", 50, WON},  {"LATE", 50, OPEN}};
    btx_t x;
    ds_backtest_t *bt = bt_open(&x, T0 + 8 * DAY, T0 + 45 * DAY, false);
    for (size_t i = 0; i < UU_COUNT(evs); i++)
        ev(bt, 0, evs[i].deal, evs[i].day, evs[i].type, NULL);
    const ds_bt_report_t *rep = bt_report(&x);
    assert_int_equal(rep->events, 9);
    assert_int_equal(rep->out_of_range, 5);
    assert_int_equal(rep->applied, 4);
    expect_deals(rep, 2, 1, 0, 1);
    expect_fig(&rep->kind[DS_AK_NO_BUYER_SIGNAL], 2, 1, 0, 1, 0.0, NAN, NAN, 1.0);
    assert_float_equal(rep->median_won_cycle_days, 30, 1e-9);
    expect_fig(&rep->aged, 0, 0, 0, 0, NAN, NAN, NAN, 0); /* CUT is 20 days old: not over 49.5 */
    bt_close(&x);
}

/* Ties in the median: lost deals whose leads are 2, 2, 5, 5 days give
 * 3.5; with a fifth lead of 5, the middle value 5. */
static void test_median_ties(void **state) {
    (void)state;
    double even[] = {5, 2, 5, 2}, odd[] = {5, 2, 5, 2, 5}, one[] = {7};
    assert_float_equal(ds_backtest_median(even, 4), 3.5, 1e-12);
    assert_float_equal(ds_backtest_median(odd, 5), 5, 1e-12);
    assert_float_equal(ds_backtest_median(one, 1), 7, 1e-12);
    assert_true(isnan(ds_backtest_median(NULL, 0)));
    /* the same through the report: ONE_SIDED opens at day 3 for each;
     * lost at days 5, 5, 8, 8 → leads 2, 2, 5, 5 → 3.5 */
    btx_t x;
    ds_backtest_t *bt = bt_open(&x, INT64_MIN, INT64_MAX, false);
    const char *deals[] = {"P", "Q", "R", "S"};
    const double lost_at[] = {5, 5, 8, 8};
    for (int i = 0; i < 4; i++) {
        ev(bt, i, deals[i], 0, OPEN, NULL);
        for (int d = 1; d <= 3; d++)
            ev(bt, i, deals[i], d, SELL, NULL);
        ev(bt, i, deals[i], lost_at[i], LOST, NULL);
    }
    const ds_bt_report_t *rep = bt_report(&x);
    expect_fig(&rep->kind[DS_AK_ONE_SIDED], 4, 0, 4, 0, 1.0, 1.0, 3.5, NAN);
    assert_true(isnan(rep->median_won_cycle_days)); /* no won deal: no AGED threshold */
    expect_fig(&rep->aged, 0, 0, 0, 0, NAN, 0, NAN, NAN);
    bt_close(&x);
}

/* Three won deals' quiet spells in RECOGNIZE_NEED (a reply verifies
 * nothing but ends a spell; live_call_accepted moves the deal on):
 *   W1: reply 2, live_call 5 → 2, 3     W2: reply 1, live_call 7 → 1, 6
 *   W3: reply 4, live_call 8 → 4, 4
 * The stretch from live_call to DEAL_WON ends with no signal: no spell.
 * A lost deal's spell (30) does not count.  Spells 1 2 3 4 4 6: median
 * 3.5; 0.9 quantile the ceil(5.4) = 6th smallest, 6; 0.5 → the 3rd, 3. */
static void test_learn_spells(void **state) {
    (void)state;
    btx_t x;
    ds_backtest_t *bt = bt_open(&x, INT64_MIN, INT64_MAX, true);
    ds_rules_t *r = x.r; /* outlives the backtest: learned values go into it */
    const char *won[] = {"W1", "W2", "W3"};
    const double reply[] = {2, 1, 4}, call[] = {5, 7, 8};
    for (int i = 0; i < 3; i++) {
        ev(bt, i, won[i], 0, OPEN, NULL);
        ev(bt, i, won[i], reply[i], BUY, "email_replied");
        ev(bt, i, won[i], call[i], BUY, "live_call_accepted");
        ev(bt, i, won[i], call[i] + 1, WON, NULL);
    }
    ev(bt, 3, "L1", 0, OPEN, NULL);
    ev(bt, 3, "L1", 30, BUY, "email_replied");
    ev(bt, 3, "L1", 31, LOST, NULL);
    size_t n, deals;
    const double *sp = ds_backtest_spells(bt, DS_PS_RECOGNIZE_NEED, &n, &deals);
    assert_int_equal(n, 6);
    assert_int_equal(deals, 3);
    size_t n2, deals2;
    assert_null(ds_backtest_spells(bt, DS_PS_EXPLORE_OPTIONS, &n2, &deals2));
    assert_int_equal(n2, 0);
    ds_learned_t l;
    ds_learn_stage(sp, 6, deals, 0.9, 3, 10, &l);
    assert_true(l.learned);
    assert_float_equal(l.value, 6, 1e-12);
    assert_float_equal(l.median_days, 3.5, 1e-12);
    ds_learn_stage(sp, 6, deals, 0.5, 3, 10, &l);
    assert_float_equal(l.value, 3, 1e-12);
    ds_learn_stage(sp, 6, deals, 0.9, 4, 10, &l); /* too few deals: kept */
    assert_false(l.learned);
    assert_float_equal(l.value, 10, 1e-12);
    char note[300];
    ds_learn_note(&l, 0.9, 4, note, sizeof(note));
    assert_non_null(strstr(note, "kept: 3 won deals, 6 quiet spells"));
    /* learned rules print with their evidence and load back */
    ds_learn_stage(sp, 6, deals, 0.9, 3, 10, &l);
    ds_learn_note(&l, 0.9, 3, note, sizeof(note));
    assert_string_equal(note, "learned from 3 won deals, 6 quiet spells: median 3.5 d, 0.9 "
                              "quantile 6 d (was 10)");
    ds_backtest_destroy(bt);
    r->stall.stages[DS_PS_RECOGNIZE_NEED].max_quiet_days = l.value;
    const char *notes[DS_PS__COUNT] = {note};
    uu_text_t out;
    ds_rules_print_annotated(r, uu_text_open(&out), "learned\nby a test", notes);
    char *text = uu_text_close(&out);
    assert_non_null(strstr(text, "# learned\n# by a test\nscoring:"));
    assert_non_null(strstr(text, "    # learned from 3 won deals"));
    char err[256];
    ds_rules_t *back = ds_rules_load_buffer("learned", text, out.len, err, sizeof(err));
    assert_non_null(back);
    assert_float_equal(back->stall.stages[DS_PS_RECOGNIZE_NEED].max_quiet_days, 6, 1e-12);
    assert_float_equal(back->stall.stages[DS_PS_EXPLORE_OPTIONS].max_quiet_days, 5, 1e-12);
    ds_rules_destroy(back);
    free(text);
    ds_rules_destroy(r);
}

static void test_quantile_and_rounding(void **state) {
    (void)state;
    double v[] = {4, 1, 3, 2, 5, 6, 7, 8, 9, 10};
    assert_float_equal(ds_learn_quantile(v, 10, 0.9), 9, 0);  /* the 9th of 10 */
    assert_float_equal(ds_learn_quantile(v, 10, 1.0), 10, 0); /* the largest */
    assert_float_equal(ds_learn_quantile(v, 10, 0.01), 1, 0); /* at least the first */
    double t[] = {2, 2, 2, 7};
    assert_float_equal(ds_learn_quantile(t, 4, 0.75), 2, 0); /* ties: the 3rd is 2 */
    assert_float_equal(ds_learn_round_up(5.83), 5.83, 0);
    assert_float_equal(ds_learn_round_up(5.831), 5.84, 0);
    assert_float_equal(ds_learn_round_up(1234), 1240, 0);
    assert_float_equal(ds_learn_round_up(0.0000231), 0.0000231, 0);
    assert_float_equal(ds_learn_round_up(0), 0, 0);
}

/* The table stays within 100 columns, in both layouts, with large counts. */
static void test_table_width(void **state) {
    (void)state;
    ds_bt_report_t rep;
    memset(&rep, 0, sizeof(rep));
    rep.events = rep.applied = 10000000;
    rep.deals = 400000;
    rep.won = 180000;
    rep.lost = 120000;
    rep.open = 100000;
    rep.median_won_cycle_days = 1234.5;
    rep.aged_after_days = 2036.9;
    for (int k = 0; k < DS_AK__COUNT; k++)
        rep.kind[k] =
            (ds_bt_figures_t){9999999, 400000, 180000, 120000, 100000, 0.4, 1.0, 1234.5, 1.0};
    rep.any = rep.aged = rep.kind[0];
    const ds_bt_report_t *reps[] = {&rep, &rep};
    const char *names[] = {"config/rules.yaml", "a/very/long/path/to/learned-rules.yaml"};
    ds_bt_source_t src = {"crm.events", 10000000, 12, T0, T0 + 365 * DAY};
    for (size_t n = 1; n <= 2; n++) {
        uu_text_t out;
        ds_backtest_print_table(uu_text_open(&out), &src, names, reps, n);
        char *text = uu_text_close(&out);
        uu_assert_width(text, 100);
        assert_non_null(strstr(text, n == 1 ? "NO_MOBILIZER" : "  median lead time (days)"));
        free(text);
    }
    uu_text_t out;
    rep.kind[1].precision = NAN;
    ds_backtest_print_json(uu_text_open(&out), &src, names, reps, 2);
    char *text = uu_text_close(&out);
    assert_non_null(strstr(text, "\"ONE_SIDED\":{\"alerts_opened\":9999999,\"deals_alerted\":"
                                 "400000,\"won\":180000,\"lost\":120000,\"open\":100000,"
                                 "\"precision\":null,"));
    assert_non_null(strstr(text, "\"since\":\"2023-11-14T22:13:20.000Z\""));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_by_hand),        cmocka_unit_test(test_since_until),
        cmocka_unit_test(test_median_ties),           cmocka_unit_test(test_learn_spells),
        cmocka_unit_test(test_quantile_and_rounding), cmocka_unit_test(test_table_width),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
