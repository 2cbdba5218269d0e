/*
 * test_dedupe.c — the dedupe window's set (common/ds_dedupe): the window's
 * edges, late entries, making room (growth and shrink), and the stored
 * form's order both ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ds_dedupe.h"
#include "unit_util.h"

#define W 1000 /* the window, ms */

static ds_dedupe_clock_t at(int64_t now) {
    return (ds_dedupe_clock_t){.now = now, .window = W};
}
#define AT(t_) (&(ds_dedupe_clock_t){.now = (t_), .window = W})

static bool live_h(const ds_dedupe_t *s, uint64_t h, ds_dedupe_clock_t c) {
    const ds_dedupe_entry_t *x = ds_dedupe_find(s, h);
    return x && ds_dedupe_live(&c, x);
}

/* Exactly at the window counts; one ms over does not; saturated at the
 * ends of int64; keep and all override the age. */
static void test_window_edges(void **state) {
    (void)state;
    ds_dedupe_t s;
    ds_dedupe_init(&s, false);
    assert_int_equal(ds_dedupe_put(&s, 7, 5000, AT(5000)), DS_ERR_OK);
    assert_true(live_h(&s, 7, at(5000 + W)));
    assert_false(live_h(&s, 7, at(5000 + W + 1)));
    assert_false(live_h(&s, 8, at(5000)));
    assert_true(ds_dedupe_within(INT64_MIN, W, INT64_MAX)); /* later than the clock */
    assert_false(ds_dedupe_within(INT64_MAX, W, INT64_MIN));
    ds_dedupe_clock_t c = at(5000 + W + 1);
    c.keep = 7;
    assert_true(live_h(&s, 7, c));
    c.keep = 0;
    c.all = true;
    assert_true(live_h(&s, 7, c));
    assert_int_equal(ds_dedupe_hash("", 0) != 0, 1);
    assert_int_equal(ds_dedupe_put(&s, 0, 1, &c), DS_ERR_INVAL);
    ds_dedupe_free(&s);
}

/* A late entry (older than the window when it arrives) is remembered but
 * does not count unless kept; putting it again gives it the new time. */
static void test_late_entries(void **state) {
    (void)state;
    ds_dedupe_t s;
    ds_dedupe_init(&s, false);
    int64_t now = 100000;
    assert_int_equal(ds_dedupe_put(&s, 3, now - 5 * W, AT(now)), DS_ERR_OK);
    assert_non_null(ds_dedupe_find(&s, 3));
    assert_false(live_h(&s, 3, at(now)));
    ds_dedupe_clock_t k = at(now);
    k.keep = 3;
    assert_true(live_h(&s, 3, k));
    assert_int_equal(ds_dedupe_put(&s, 3, now, AT(now)), DS_ERR_OK);
    assert_int_equal(s.n, 1);
    assert_true(live_h(&s, 3, at(now)));
    ds_dedupe_free(&s);
}

/* Room is made only when full: what is out of the window goes, the set
 * grows by one class when less than a quarter went, and a room over 16
 * shrinks when a quarter or less is left; live entries are never lost. */
static void test_capacity(void **state) {
    (void)state;
    ds_dedupe_t s;
    ds_dedupe_init(&s, false);
    uint32_t caps[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32};
    for (uint64_t i = 1; i <= 32; i++) {
        assert_int_equal(ds_dedupe_put(&s, i * 1000003, 0, AT(0)), DS_ERR_OK);
        uint32_t want = 0;
        for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]) && !want; k++)
            if (caps[k] >= i)
                want = caps[k];
        assert_int_equal(s.cap, want);
    }
    for (uint64_t i = 2; i < 32; i++)
        assert_int_equal(s.e[i - 1].h < s.e[i].h, 1);
    /* 30 of 32 leave the window: the next put shrinks to the class of 2 × 2 */
    for (uint64_t i = 1; i <= 2; i++)
        assert_int_equal(ds_dedupe_put(&s, i * 1000003, 10 * W, AT(10 * W)), DS_ERR_OK);
    assert_int_equal(s.cap, 32);
    assert_int_equal(ds_dedupe_put(&s, 99, 10 * W, AT(10 * W)), DS_ERR_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.cap, 4);
    for (uint64_t i = 1; i <= 2; i++)
        assert_true(live_h(&s, i * 1000003, at(10 * W)));
    assert_true(live_h(&s, 99, at(10 * W)));
    /* a prune that frees a quarter, no more, keeps the room */
    ds_dedupe_free(&s);
    for (uint64_t i = 1; i <= 8; i++)
        assert_int_equal(ds_dedupe_put(&s, i, i <= 2 ? 0 : 5 * W, AT(0)), DS_ERR_OK);
    assert_int_equal(s.cap, 8);
    assert_int_equal(ds_dedupe_put(&s, 100, 5 * W, AT(5 * W)), DS_ERR_OK);
    assert_int_equal(s.cap, 8);
    assert_int_equal(s.n, 7);
    /* less than a quarter out (1 of 8): one class more */
    assert_int_equal(ds_dedupe_put(&s, 101, 5 * W, AT(5 * W)), DS_ERR_OK);
    assert_int_equal(ds_dedupe_put(&s, 3, 0, AT(0)), DS_ERR_OK); /* 3 leaves the window */
    assert_int_equal(ds_dedupe_put(&s, 102, 5 * W, AT(5 * W)), DS_ERR_OK);
    assert_int_equal(s.cap, 12);
    assert_int_equal(s.n, 8);
    assert_null(ds_dedupe_find(&s, 1));
    /* a room of 16 or less never shrinks: every entry out keeps it */
    for (uint64_t i = 104; i <= 107; i++)
        assert_int_equal(ds_dedupe_put(&s, i, 80 * W, AT(80 * W)), DS_ERR_OK);
    assert_int_equal(s.n, 12);
    assert_int_equal(ds_dedupe_put(&s, 112, 200 * W, AT(200 * W)), DS_ERR_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.cap, 12);
    ds_dedupe_free(&s);
}

/* b holds what ds_dedupe_save wrote (against base): n entries, with the
 * hashes want[0..n) in that order. */
static void expect_saved(const ds_buf_t *b, int64_t base, const uint64_t *want, uint32_t n) {
    ds_reader_t r;
    ds_reader_init(&r, b->data, b->len);
    uint32_t got;
    assert_int_equal(ds_get_count(&r, &got), DS_ERR_OK);
    assert_int_equal(got, n);
    for (uint32_t i = 0; i < n; i++) {
        int64_t h, t;
        assert_int_equal(ds_get_i64(&r, &h), DS_ERR_OK);
        assert_int_equal(ds_get_time(&r, base, &t), DS_ERR_OK);
        assert_int_equal((uint64_t)h, want[i]);
    }
    assert_true(r.p == r.end);
}

/* An arrival-ordered set keeps its order through growth and a shrink:
 * the arrival stamps move with the room. */
static void test_arrival_through_resize(void **state) {
    (void)state;
    ds_dedupe_t s;
    ds_dedupe_init(&s, true);
    uint64_t h[33];
    for (uint64_t i = 1; i <= 32; i++) { /* hashes in an order unlike arrival */
        h[i] = (i * 7919) % 1009 + 1;
        assert_int_equal(ds_dedupe_put(&s, h[i], i <= 30 ? 0 : 10 * W, AT(0)), DS_ERR_OK);
    }
    assert_int_equal(s.cap, 32);
    /* 30 leave the window: the next put shrinks the room to 4 */
    assert_int_equal(ds_dedupe_put(&s, 5000, 10 * W, AT(10 * W)), DS_ERR_OK);
    assert_int_equal(s.cap, 4);
    ds_buf_t b;
    ds_buf_init(&b, 0);
    assert_int_equal(ds_dedupe_save(&s, AT(10 * W), 10 * W, &b), DS_ERR_OK);
    const uint64_t want[] = {h[31], h[32], 5000};
    expect_saved(&b, 10 * W, want, 3);
    ds_buf_free(&b);
    ds_dedupe_free(&s);
}

/* An arrival-ordered set's first room is 4 entries, and it is saved in
 * arrival order whatever its size (up to 32 are sorted on the stack, more
 * on the heap). */
static void test_arrival_sizes(void **state) {
    (void)state;
    const uint32_t sizes[] = {1, 5, 32, 33, 100};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        ds_dedupe_t s;
        ds_dedupe_init(&s, true);
        uint64_t h[100];
        for (uint32_t i = 0; i < sizes[k]; i++) {
            h[i] = ((uint64_t)i * 7919) % 1009 + 1; /* an order unlike arrival */
            assert_int_equal(ds_dedupe_put(&s, h[i], 0, AT(0)), DS_ERR_OK);
            if (i == 0)
                assert_int_equal(s.cap, 4);
        }
        ds_buf_t b;
        ds_buf_init(&b, 0);
        assert_int_equal(ds_dedupe_save(&s, AT(0), 0, &b), DS_ERR_OK);
        expect_saved(&b, 0, h, sizes[k]);
        /* loaded back (unsorted by hash: sorted on load), it keeps the order */
        ds_dedupe_t v;
        ds_dedupe_init(&v, true);
        ds_reader_t r;
        ds_reader_init(&r, b.data, b.len);
        assert_int_equal(ds_dedupe_load(&v, &r, 0, false), DS_ERR_OK);
        for (uint32_t i = 0; i < sizes[k]; i++)
            assert_non_null(ds_dedupe_find(&v, h[i]));
        ds_buf_t b2;
        ds_buf_init(&b2, 0);
        assert_int_equal(ds_dedupe_save(&v, AT(0), 0, &b2), DS_ERR_OK);
        expect_saved(&b2, 0, h, sizes[k]);
        ds_buf_free(&b2);
        ds_dedupe_free(&v);
        ds_buf_free(&b);
        ds_dedupe_free(&s);
    }
}

/* Saved: the live entries only, by hash, or by arrival for a set that
 * keeps it (a re-put id is its newest arrival); loaded in any order, and
 * saved again to the same bytes; a repeated or zero hash does not load. */
static void test_save_load_order(void **state) {
    (void)state;
    uint64_t hs[] = {50, 10, 40, 20, 30};
    for (int arrival = 0; arrival < 2; arrival++) {
        ds_dedupe_t s;
        ds_dedupe_init(&s, arrival);
        for (int i = 0; i < 5; i++)
            assert_int_equal(ds_dedupe_put(&s, hs[i], 1000 + i, AT(1000)), DS_ERR_OK);
        assert_int_equal(ds_dedupe_put(&s, 10, 2000, AT(2000)), DS_ERR_OK); /* again */
        assert_int_equal(ds_dedupe_put(&s, 60, 0, AT(2000)), DS_ERR_OK);    /* out */
        ds_buf_t b;
        ds_buf_init(&b, 0);
        assert_int_equal(ds_dedupe_save(&s, AT(2000), 2000, &b), DS_ERR_OK);
        uint64_t by_hash[] = {10, 20, 30, 40, 50}, by_arrival[] = {50, 40, 20, 30, 10};
        expect_saved(&b, 2000, arrival ? by_arrival : by_hash, 5);
        ds_reader_t r;
        /* load and save again: the same bytes */
        ds_dedupe_t v;
        ds_dedupe_init(&v, arrival);
        ds_reader_init(&r, b.data, b.len);
        assert_int_equal(ds_dedupe_load(&v, &r, 2000, false), DS_ERR_OK);
        assert_true(r.p == r.end);
        assert_int_equal(v.n, 5);
        assert_true(live_h(&v, 10, at(2000)));
        ds_buf_t b2;
        ds_buf_init(&b2, 0);
        assert_int_equal(ds_dedupe_save(&v, AT(2000), 2000, &b2), DS_ERR_OK);
        assert_int_equal(b2.len, b.len);
        assert_memory_equal(b2.data, b.data, b.len);
        /* one hash twice, or a 0, does not load */
        for (int bad = 0; bad < 2; bad++) {
            ds_buf_reset(&b2);
            assert_int_equal(ds_buf_put_varint(&b2, 2), DS_ERR_OK);
            for (int i = 0; i < 2; i++) {
                assert_int_equal(ds_buf_put_i64(&b2, bad && i ? 0 : 9), DS_ERR_OK);
                assert_int_equal(ds_buf_put_time(&b2, 0, 1), DS_ERR_OK);
            }
            ds_dedupe_t x;
            ds_dedupe_init(&x, arrival);
            ds_reader_init(&r, b2.data, b2.len);
            assert_int_equal(ds_dedupe_load(&x, &r, 0, false), DS_ERR_UNDECODABLE);
            assert_int_equal(x.n, 0);
        }
        ds_buf_free(&b);
        ds_buf_free(&b2);
        ds_dedupe_free(&v);
        ds_dedupe_free(&s);
    }
}

UU_MAIN(NULL, NULL, cmocka_unit_test(test_window_edges), cmocka_unit_test(test_late_entries),
        cmocka_unit_test(test_arrival_through_resize), cmocka_unit_test(test_arrival_sizes),
        cmocka_unit_test(test_capacity), cmocka_unit_test(test_save_load_order))
