/*
 * test_partclock.c — a partition's event clock and deadline index, shared
 * by the watcher and the backtest: the watermark only rises; due entries
 * come out by deadline, then by key; a deadline that changes leaves a
 * stale entry the caller recognises; an unchanged one pushes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include "partclock.h"
#include "unit_util.h"

typedef struct owner {
    const char *id;
    int64_t deadline; /* INT64_MAX: none */
} owner_t;

static const char *key(const void *o) {
    return ((const owner_t *)o)->id;
}

static void test_watermark(void **state) {
    (void)state;
    ds_partclock_t pc;
    ds_partclock_init(&pc, key);
    assert_true(pc.watermark == INT64_MIN);
    assert_true(ds_partclock_observe(&pc, 100));
    assert_false(ds_partclock_observe(&pc, 50)); /* a late event: the clock stays */
    assert_false(ds_partclock_observe(&pc, 100));
    assert_true(pc.watermark == 100);
    ds_partclock_free(&pc);
}

static void test_due_order_and_stale_entries(void **state) {
    (void)state;
    ds_partclock_t pc;
    ds_partclock_init(&pc, key);
    owner_t b = {"b", INT64_MAX}, a = {"a", INT64_MAX}, c = {"c", INT64_MAX};
    assert_true(ds_partclock_schedule(&pc, &b, &b.deadline, 10));
    assert_true(ds_partclock_schedule(&pc, &a, &a.deadline, 10));
    assert_true(ds_partclock_schedule(&pc, &c, &c.deadline, 5));
    assert_true(ds_partclock_schedule(&pc, &c, &c.deadline, 5)); /* unchanged: no entry */
    assert_int_equal(pc.n, 3);
    assert_true(ds_partclock_schedule(&pc, &c, &c.deadline, 20)); /* the 5 goes stale */
    assert_int_equal(pc.n, 4);
    int64_t d;
    owner_t *o = ds_partclock_pop_due(&pc, 10, &d);
    assert_ptr_equal(o, &c); /* deadline 5, stale: c's is 20 now */
    assert_true(d == 5 && d != c.deadline);
    o = ds_partclock_pop_due(&pc, 10, &d); /* equal deadlines: by key */
    assert_ptr_equal(o, &a);
    assert_true(d == a.deadline);
    o = ds_partclock_pop_due(&pc, 10, &d);
    assert_ptr_equal(o, &b);
    assert_null(ds_partclock_pop_due(&pc, 19, &d)); /* c's 20 is not due by 19 */
    o = ds_partclock_pop_due(&pc, 20, &d);
    assert_ptr_equal(o, &c);
    assert_true(d == c.deadline);
    c.deadline = INT64_MAX;                                              /* popped: no entry left */
    assert_true(ds_partclock_schedule(&pc, &c, &c.deadline, INT64_MAX)); /* none: no entry */
    assert_int_equal(pc.n, 0);
    ds_partclock_free(&pc);
}

UU_MAIN(NULL, NULL, cmocka_unit_test(test_watermark),
        cmocka_unit_test(test_due_order_and_stale_entries))
