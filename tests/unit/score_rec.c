/*
 * score_rec.c — see score_rec.h.  Every field of the output records is
 * copied; the reasons stay bounded by DS_MAX_REASONS (checked), the
 * mobilizers are an array of their own.
 */
#include "score_rec.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

char *rec_dup(const char *s) {
    if (!s)
        return NULL;
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

/* dst[i] = a copy of src[i], for n of them */
static void dup_each(char **dst, const char *const *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = rec_dup(src[i]);
}

static void free_each(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
}

void lrec_fill(lrec_t *x, const ds_lead_score_t *s) {
    memset(x, 0, sizeof(*x));
    x->lead_id = rec_dup(s->lead_id);
    x->account_id = rec_dup(s->account_id);
    x->top_insight = rec_dup(s->top_insight);
    x->output_id = rec_dup(s->output_id);
    assert_true(s->reasons_count <= DS_MAX_REASONS);
    dup_each(x->reasons, s->reasons, s->reasons_count);
    x->reasons_count = s->reasons_count;
    x->confront = s->confront;
    x->connect = s->connect;
    x->mobilizer = s->mobilizer;
    x->tier = s->tier;
    x->previous_tier = s->previous_tier;
    x->furthest_stage = s->furthest_stage;
    x->as_of = s->as_of;
    x->events_applied = s->events_applied;
}

void lrec_free(lrec_t *x) {
    free(x->lead_id);
    free(x->account_id);
    free(x->top_insight);
    free(x->output_id);
    free_each(x->reasons, x->reasons_count);
    memset(x, 0, sizeof(*x));
}

void arec_fill(arec_t *x, const ds_account_score_t *s) {
    memset(x, 0, sizeof(*x));
    x->account_id = rec_dup(s->account_id);
    x->top_insight = rec_dup(s->top_insight);
    x->output_id = rec_dup(s->output_id);
    x->mobilizers = calloc(s->mobilizers_count + 1, sizeof(char *));
    assert_non_null(x->mobilizers);
    dup_each(x->mobilizers, s->mobilizers, s->mobilizers_count);
    x->mobilizers_count = s->mobilizers_count;
    x->engaged = s->engaged_stakeholders;
    x->confronted = s->confronted_stakeholders;
    x->consensus = s->consensus;
    x->as_of = s->as_of;
}

void arec_free(arec_t *x) {
    free(x->account_id);
    free(x->top_insight);
    free(x->output_id);
    free_each(x->mobilizers, x->mobilizers_count);
    free(x->mobilizers);
    memset(x, 0, sizeof(*x));
}

void rec_free_all(lrec_t *l, size_t *nl, arec_t *a, size_t *na) {
    for (size_t i = 0; i < *nl; i++)
        lrec_free(&l[i]);
    for (size_t i = 0; i < *na; i++)
        arec_free(&a[i]);
    *nl = *na = 0;
}
