/*
 * score_rec.c — see score_rec.h.  Every field of the output records is
 * copied, walking the field lists of score_rec.h; the reasons stay bounded
 * by DS_MAX_REASONS (checked), the mobilizers are an array of their own.
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

/* What the fill and the free do with each kind of field. */
#define DUP_(f) x->f = rec_dup(s->f);
#define COPY_(f) x->f = s->f;
#define DUP_LIST_(f, n) dup_each(x->f, s->f, s->n);
#define FREE_(f) free(x->f);
#define NOTHING_(f)
#define FREE_LIST_(f, n) free_each(x->f, x->n);

void lrec_fill(lrec_t *x, const ds_lead_score_t *s) {
    memset(x, 0, sizeof(*x));
    assert_true(s->reasons_count <= DS_MAX_REASONS);
    LREC_FIELDS(DUP_, COPY_, COPY_, DUP_LIST_)
}

void lrec_free(lrec_t *x) {
    LREC_FIELDS(FREE_, NOTHING_, NOTHING_, FREE_LIST_)
    memset(x, 0, sizeof(*x));
}

void arec_fill(arec_t *x, const ds_account_score_t *s) {
    memset(x, 0, sizeof(*x));
    x->mobilizers = calloc(s->mobilizers_count + 1, sizeof(char *));
    assert_non_null(x->mobilizers);
    AREC_FIELDS(DUP_, COPY_, COPY_, DUP_LIST_)
}

void arec_free(arec_t *x) {
    AREC_FIELDS(FREE_, NOTHING_, NOTHING_, FREE_LIST_)
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
