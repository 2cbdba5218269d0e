/*
 * test_demo_summary.c — the picture the demo ends with, drawn from a
 * hand-made set of deals and accounts: each open deal lands in the cell of
 * its reported × verified stage, the diagonal and the ahead/behind counts
 * follow, alerts are counted by kind, the accounts come in consensus order
 * with their mobilizers, and no line is wider than 100 columns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "demo_summary.h"
#include "unit_util.h"

static char *draw(const ds_demo_summary_t *s) {
    uu_text_t t;
    ds_demo_summary_print(s, uu_text_open(&t));
    return uu_text_close(&t);
}

static void test_deals_matrix(void **state) {
    (void)state;
    ds_demo_summary_t *s = ds_demo_summary_new();
    /* two deals the rep reports at NEGOTIATE while the buyer is verifiably
     * in DEFINE_CRITERIA, one where both agree, one the buyer is ahead of */
    ds_demo_summary_add_deal(s, "open", "NEGOTIATE", "DEFINE_CRITERIA",
                             "UNVERIFIED_STAGE:1,NO_MOBILIZER:2");
    ds_demo_summary_add_deal(s, "open", "NEGOTIATE", "DEFINE_CRITERIA", "UNVERIFIED_STAGE:3");
    ds_demo_summary_add_deal(s, "open", "NEGOTIATE", "NEGOTIATE", "");
    ds_demo_summary_add_deal(s, "open", "RECOGNIZE_NEED", "EXPLORE_OPTIONS",
                             "NO_BUYER_SIGNAL:1,ONE_SIDED:1");
    /* every stage verified: the "done" column */
    ds_demo_summary_add_deal(s, "open", "EVALUATE_IMPACT", "", NULL);
    /* closed deals are counted, not placed; a stage that is no symbol is
     * counted and said, not placed */
    ds_demo_summary_add_deal(s, "won", "NEGOTIATE", "IMPLEMENT", "");
    ds_demo_summary_add_deal(s, "lost", "EXPLORE_OPTIONS", "EXPLORE_OPTIONS", "");
    ds_demo_summary_add_deal(s, "open", "SPORK", "NEGOTIATE", "NO_BUYER_SIGNAL:4,BOGUS:1");
    char *t = draw(s);
    uu_assert_width(t, DS_DEMO_SUMMARY_WIDTH);
    static const char *const lines[] = {
        " 6 Negotiating                     .     .     2     .     .   [1]"
        "     .     .     . |     3     2",
        " 1 Recognizing the need          [.]     1     .     .     .     ."
        "     .     .     . |     1     .",
        " 8 Evaluating impact               .     .     .     .     .     ."
        "     .   [.]     1 |     1     .",
        " open deals                        .     1     2     .     .     1"
        "     .     .     1 |     5     2",
        " NO_BUYER_SIGNAL     2  ####################  no buyer signal for "
        "longer than the stage allows",
        " ONE_SIDED           1  ##########            the seller keeps acting,"
        " the buyer does not answer",
    };
    uu_assert_lines(t, lines, UU_COUNT(lines));
    static const char *const parts[] = {
        " 8 deals (6 open, 1 won, 1 lost), 0 accounts, 0 leads scored",
        " 2 of 5 open deals: the rep reports a later stage",
        " 2 of 5 open deals: the buyer has verified more",
        " 1 open deals have a stage that is not a PurchaseStage",
        /* alerts: 6 of known kinds on 4 deals; the bar is scaled to the largest */
        "OPEN ALERTS BY KIND: 6 open on 4 of the 6 open deals",
        " UNVERIFIED_STAGE    2  ####################",
        " NO_MOBILIZER        1  ##########          ",
        " no account scored",
    };
    uu_assert_contains(t, parts, UU_COUNT(parts));
    free(t);
    ds_demo_summary_destroy(s);
}

static void test_accounts_in_consensus_order(void **state) {
    (void)state;
    ds_demo_summary_t *s = ds_demo_summary_new();
    ds_demo_summary_add_leads(s, 40);
    ds_demo_summary_add_account(s, "A-low", "18.5", "4", "1", "claims-leakage", "");
    ds_demo_summary_add_account(s, "A-top", "100", "7", "6", "inventory-drift",
                                "L-0001-2,L-0001-5");
    /* a tie on consensus: more mobilizers first, then the smaller id */
    ds_demo_summary_add_account(s, "A-tie-b", "55.6", "5", "3", "hygienist-absence", "L-9");
    ds_demo_summary_add_account(s, "A-tie-a", "55.6", "5", "3", "hygienist-absence", "L-8");
    ds_demo_summary_add_account(s, "A-tie-0", "55.6", "5", "3", "hygienist-absence", "");
    ds_demo_summary_add_account(s, "A-none", "0", "1", "0", NULL, NULL);
    /* more mobilizers than fit: cut with a count; a long id is cut with ~ */
    ds_demo_summary_add_account(s, "A-account-with-a-long-id", "74.1", "9", "4",
                                "an-insight-with-a-long-name",
                                "L-aaaaaaa,L-bbbbbbb,L-ccccccc,L-ddddddd,L-eeeeeee");
    char *t = draw(s);
    uu_assert_width(t, DS_DEMO_SUMMARY_WIDTH);
    assert_non_null(strstr(t, ", 7 accounts, 40 leads scored"));
    static const char *const lines[] = {
        " A-top         100.0%  ##########       6 of 7  inventory-drift     "
        "L-0001-2, L-0001-5",
        " A-account-w~   74.1%  #######...       4 of 9  an-insight-with-a~  "
        "L-aaaaaaa, L-bbbbbbb, +3 more",
    };
    uu_assert_lines(t, lines, UU_COUNT(lines));
    /* the order: top, long id, then the ties; the fifth is A-tie-0; A-low
     * and A-none are not shown */
    const char *order[] = {" A-top", " A-account-w", " A-tie-a", " A-tie-b", " A-tie-0"};
    const char *at = t;
    for (size_t i = 0; i < 5; i++) {
        const char *p = strstr(at, order[i]);
        if (!p)
            fail_msg("%s missing or out of order in:\n%s", order[i], t);
        at = p + 1;
    }
    assert_null(strstr(t, " A-low"));
    assert_null(strstr(t, " A-none"));
    free(t);
    ds_demo_summary_destroy(s);
}

UU_MAIN(NULL, NULL, cmocka_unit_test(test_deals_matrix),
        cmocka_unit_test(test_accounts_in_consensus_order))
