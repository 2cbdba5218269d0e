/*
 * score_rec.h — owned copies of the scorer's output records, for the unit
 * tests that capture what a unit emits (test_score, test_score_prop).
 * The records handed to a ds_score_sink_t point into the unit and live
 * until its next call; a copy here owns every string (malloc'ed) and is
 * released with its _free.  A failed allocation fails the test (cmocka).
 */
#ifndef DS_SCORE_REC_H
#define DS_SCORE_REC_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"

typedef struct lrec {
    char *lead_id, *account_id, *top_insight, *output_id;
    char *reasons[DS_MAX_REASONS];
    size_t reasons_count;
    double confront, connect, mobilizer;
    int tier, previous_tier, furthest_stage;
    int64_t as_of, events_applied;
} lrec_t;

typedef struct arec {
    char *account_id, *top_insight, *output_id;
    char **mobilizers; /* mobilizers_count of them, then NULL */
    size_t mobilizers_count;
    int32_t engaged_stakeholders, confronted_stakeholders;
    double consensus;
    int64_t as_of;
} arec_t;

/* The fields of each record, listed once: the fill and the free below walk
 * them, and so do test_score_prop's comparison and digest, in this order.
 * S is a string (or NULL), D a double, I an integer, V(list, count) the
 * strings of a list (its count is an I of its own).  A record's fields
 * have the names of the ds_*_score_t fields they copy. */
/* clang-format off */
#define LREC_FIELDS(S, D, I, V)                                                                    \
    S(lead_id) S(account_id) S(output_id) D(confront) D(connect) D(mobilizer) I(tier)              \
    I(previous_tier) S(top_insight) I(furthest_stage) I(as_of) I(events_applied)                   \
    I(reasons_count) V(reasons, reasons_count)
#define AREC_FIELDS(S, D, I, V)                                                                    \
    S(account_id) S(output_id) I(engaged_stakeholders) I(confronted_stakeholders) D(consensus)     \
    S(top_insight) I(mobilizers_count) V(mobilizers, mobilizers_count) I(as_of)
/* clang-format on */

/** A malloc'ed copy of s; NULL for NULL. */
char *rec_dup(const char *s);
/** x becomes an owned copy of s (x's previous content is not freed). */
void lrec_fill(lrec_t *x, const ds_lead_score_t *s);
void lrec_free(lrec_t *x);
void arec_fill(arec_t *x, const ds_account_score_t *s);
void arec_free(arec_t *x);
/** Frees the *nl records of l and the *na of a; both counts become 0 (the
 *  arrays themselves stay the caller's). */
void rec_free_all(lrec_t *l, size_t *nl, arec_t *a, size_t *na);

#endif
