/*
 * test_gen.c — the generator's WIDE and SKEW profiles have the shape the
 * benchmarks rely on: the same stream for the same seed, 4 % of WIDE's
 * events without an account and none of SKEW's, leads within their
 * account's size, every content id in the printed catalog with the
 * catalog's insight and stage when an event carries them, events ~7 ms
 * apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gen.h"
#include "unit_util.h"

#define N 200000

static uint64_t fnv(uint64_t h, const char *s) {
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL; /* NULL and "" differ from each other's neighbours */
}

/* a digest of the first n events of a stream */
static uint64_t digest(const ds_gen_opts_t *o, long n) {
    ds_gen_t *g = ds_gen_new(o);
    assert_non_null(g);
    uint64_t h = 0xcbf29ce484222325ULL;
    ds_gen_event_t ev;
    for (long i = 0; i < n; i++) {
        assert_true(ds_gen_next(g, &ev));
        assert_false(ev.is_crm);
        h = fnv(h, ev.ma.event_id);
        h = fnv(h, ev.ma.lead_id);
        h = fnv(h, ev.ma.account_id);
        h = fnv(h, ev.ma.content_id);
        h = (h ^ (uint64_t)ev.ma.type ^ ((uint64_t)ev.ma.occurred_at << 8)) * 0x100000001b3ULL;
    }
    ds_gen_destroy(g);
    return h;
}

static void test_same_seed_same_stream(void **state) {
    (void)state;
    ds_gen_opts_t o = {.seed = 7, .profile = DS_GEN_WIDE, .mix = DS_GEN_MARKETING};
    uint64_t a = digest(&o, 20000), b = digest(&o, 20000);
    assert_true(a == b);
    o.seed = 8;
    assert_true(digest(&o, 20000) != a);
    o.profile = DS_GEN_SKEW;
    o.seed = 7;
    assert_true(digest(&o, 20000) == digest(&o, 20000));
}

typedef struct entry {
    char id[64];
    const char *insight;
    int stage;
} entry_t;
static entry_t catalog[DS_GEN_WIDE_CONTENT];

static int entry_cmp(const void *a, const void *b) {
    return strcmp(((const entry_t *)a)->id, ((const entry_t *)b)->id);
}

/* the catalog entry of a content id */
static bool catalog_find(const char *content_id, const char **insight, int *stage) {
    if (!catalog[0].id[0]) {
        for (size_t i = 0; i < DS_GEN_WIDE_CONTENT; i++)
            ds_gen_wide_catalog(i, catalog[i].id, sizeof(catalog[i].id), &catalog[i].insight,
                                &catalog[i].stage);
        qsort(catalog, DS_GEN_WIDE_CONTENT, sizeof(catalog[0]), entry_cmp);
    }
    entry_t key;
    snprintf(key.id, sizeof(key.id), "%s", content_id);
    const entry_t *e = bsearch(&key, catalog, DS_GEN_WIDE_CONTENT, sizeof(catalog[0]), entry_cmp);
    if (!e)
        return false;
    *insight = e->insight;
    *stage = e->stage;
    return true;
}

static void test_catalog(void **state) {
    (void)state;
    /* 2,400 distinct ids over 40 insights, 60 each */
    static char ids[DS_GEN_WIDE_CONTENT][64];
    int per_insight[DS_GEN_WIDE_INSIGHTS] = {0};
    for (size_t i = 0; i < DS_GEN_WIDE_CONTENT; i++) {
        const char *ins;
        int stage;
        ds_gen_wide_catalog(i, ids[i], sizeof(ids[i]), &ins, &stage);
        int k = -1;
        assert_int_equal(sscanf(ins, "ins-%d", &k), 1);
        assert_true(k >= 0 && k < DS_GEN_WIDE_INSIGHTS);
        per_insight[k]++;
        assert_true(stage >= 0 && stage < DS_CS__COUNT);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    for (int k = 0; k < DS_GEN_WIDE_INSIGHTS; k++)
        assert_int_equal(per_insight[k], DS_GEN_WIDE_CONTENT / DS_GEN_WIDE_INSIGHTS);
}

static void test_wide_shape(void **state) {
    (void)state;
    ds_gen_opts_t o = {.seed = 3, .profile = DS_GEN_WIDE, .accounts = 2000, .start_ms = 1000};
    ds_gen_t *g = ds_gen_new(&o);
    assert_non_null(g);
    ds_gen_event_t ev;
    long lone = 0, shares = 0, webinars = 0, carried = 0, unknown = 0;
    int64_t t0 = 0, t1 = 0;
    for (long i = 0; i < N; i++) {
        assert_true(ds_gen_next(g, &ev));
        const ds_ma_event_t *e = &ev.ma;
        if (i == 0)
            t0 = e->occurred_at;
        t1 = e->occurred_at;
        if (!e->account_id) {
            lone++;
            int v = -1;
            assert_int_equal(sscanf(e->lead_id, "V-%d", &v), 1);
            assert_true(v >= 0 && v < 6 * 2000);
            assert_int_equal(e->shared_with_count, 0);
        } else {
            int a = -1, l = -1, a2 = -2;
            assert_int_equal(sscanf(e->lead_id, "L-%d-%d", &a, &l), 2);
            assert_int_equal(sscanf(e->account_id, "A-%d", &a2), 1);
            assert_int_equal(a, a2);
            assert_true(a >= 0 && a < 2000 && l >= 0 && l < 12);
            for (size_t k = 0; k < e->shared_with_count; k++) {
                int sa = -1, sl = -1;
                assert_int_equal(sscanf(e->shared_with[k], "L-%d-%d", &sa, &sl), 2);
                assert_true(sa == a && sl >= 0 && sl < 12); /* colleagues of its account */
            }
        }
        shares += e->type == DS_MA_CONTENT_SHARED;
        webinars += e->type == DS_MA_WEBINAR_ATTENDED;
        const char *ins;
        int stage;
        if (!e->content_id || !strncmp(e->content_id, "newsletter-", 11)) {
            unknown++;
        } else {
            assert_true(catalog_find(e->content_id, &ins, &stage));
            if (e->insight_id) {
                carried++;
                assert_string_equal(e->insight_id, ins);
                assert_int_equal(e->content_stage, stage);
            }
        }
    }
    ds_gen_destroy(g);
    /* 4 % without an account (the binomial's sd at N is 0.04 %) */
    assert_true(lone > N * 38 / 1000 && lone < N * 42 / 1000);
    assert_true(shares > N / 20 && webinars > N / 20);
    assert_true(carried > N / 4); /* about half carry insight and stage */
    assert_true(unknown < N / 20);
    double gap = (double)(t1 - t0) / (N - 1);
    assert_true(gap > 6.5 && gap < 7.5);
}

static void test_skew_shape(void **state) {
    (void)state;
    ds_gen_opts_t o = {.seed = 3, .profile = DS_GEN_SKEW}; /* one account of 5,000 leads */
    ds_gen_t *g = ds_gen_new(&o);
    assert_non_null(g);
    ds_gen_event_t ev;
    static unsigned char seen[5000];
    long distinct = 0;
    for (long i = 0; i < 60000; i++) {
        assert_true(ds_gen_next(g, &ev));
        assert_non_null(ev.ma.account_id);
        assert_string_equal(ev.ma.account_id, "A-00000");
        int a = -1, l = -1;
        assert_int_equal(sscanf(ev.ma.lead_id, "L-%d-%d", &a, &l), 2);
        assert_true(a == 0 && l >= 0 && l < 5000);
        distinct += !seen[l];
        seen[l] = 1;
    }
    ds_gen_destroy(g);
    assert_int_equal(distinct, 5000); /* 12 events per lead: every lead is reached */
}

UU_MAIN(NULL, NULL, cmocka_unit_test(test_same_seed_same_stream), cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_wide_shape), cmocka_unit_test(test_skew_shape))
