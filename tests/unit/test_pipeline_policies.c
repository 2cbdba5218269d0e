/*
 * test_pipeline_policies.c — the worker's policies that need nothing
 * running: the retry backoff doubles up to its ceiling and never passes it;
 * the batch ring hands out free batches with rising seq, lists a state's
 * batches oldest first and says when anything is in flight; a batch's
 * offsets are the next offset of each partition, merged by the larger;
 * the write-behind interval is redis.flush_ms until half the lag is
 * longer, then that, up to redis.flush_max_ms, and decides when state is
 * due.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <string.h>

#include "batch.h"
#include "ds_backoff.h"
#include "fetchwatch.h"
#include "unit_util.h"
#include "writebehind.h"

static void test_backoff_doubles_to_ceiling(void **state) {
    (void)state;
    ds_backoff_t b = ds_backoff_make(DS_BACKOFF_RETRY_MIN_MS, DS_BACKOFF_MAX_MS);
    const int64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(ds_backoff_peek(&b), want[i]);
        assert_int_equal(ds_backoff_next(&b), want[i]);
    }
    b = ds_backoff_make(DS_BACKOFF_SLOW_MIN_MS, DS_BACKOFF_MAX_MS);
    const int64_t slow[] = {200, 400, 800, 1600, 3200, 5000, 5000};
    for (size_t i = 0; i < sizeof(slow) / sizeof(slow[0]); i++)
        assert_int_equal(ds_backoff_next(&b), slow[i]);
    b = ds_backoff_make(9000, 5000); /* a first wait above the ceiling is the ceiling */
    assert_int_equal(ds_backoff_next(&b), 5000);
}

static void test_ring_order(void **state) {
    (void)state;
    ds_batch_ring_t ring;
    assert_true(ds_batch_ring_init(&ring, 4, 16));
    ds_batch_t *got[DS_NBATCH];
    for (int i = 0; i < DS_NBATCH; i++) {
        got[i] = ds_batch_ring_take(&ring);
        assert_non_null(got[i]);
        assert_int_equal(got[i]->state, DS_BATCH_BUILD);
        assert_int_equal(got[i]->seq, (uint64_t)i + 1);
    }
    assert_null(ds_batch_ring_take(&ring)); /* all in use */
    assert_false(ds_batch_ring_inflight(&ring));
    /* the newest first in the array: listed oldest first all the same */
    got[5]->state = got[1]->state = got[3]->state = DS_BATCH_ACKS;
    ds_batch_t *acks[DS_NBATCH];
    assert_int_equal(ds_batch_ring_in(&ring, DS_BATCH_ACKS, acks), 3);
    assert_ptr_equal(acks[0], got[1]);
    assert_ptr_equal(acks[1], got[3]);
    assert_ptr_equal(acks[2], got[5]);
    assert_true(ds_batch_ring_inflight(&ring));
    ds_batch_release(got[1]);
    assert_int_equal(got[1]->state, DS_BATCH_FREE);
    ds_batch_t *again = ds_batch_ring_take(&ring);
    assert_ptr_equal(again, got[1]);
    assert_int_equal(again->seq, DS_NBATCH + 1);
    ds_batch_ring_free(&ring);
}

static void test_offsets_merge(void **state) {
    (void)state;
    ds_batch_t b;
    memset(&b, 0, sizeof(b));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(l, "in", 0)->offset = 10;
    rd_kafka_topic_partition_list_add(l, "in", 1)->offset = 7;
    ds_batch_merge_store(&b, l, 5); /* taken as is */
    assert_ptr_equal(b.store, l);
    rd_kafka_topic_partition_list_t *m = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(m, "in", 0)->offset = 8;  /* lower: kept at 10 */
    rd_kafka_topic_partition_list_add(m, "in", 1)->offset = 12; /* higher: raised */
    rd_kafka_topic_partition_list_add(m, "in", 2)->offset = 3;  /* new: added */
    ds_batch_merge_store(&b, m, 4);
    assert_int_equal(b.store_msgs, 9);
    assert_int_equal(b.store->cnt, 3);
    assert_int_equal(rd_kafka_topic_partition_list_find(b.store, "in", 0)->offset, 10);
    assert_int_equal(rd_kafka_topic_partition_list_find(b.store, "in", 1)->offset, 12);
    assert_int_equal(rd_kafka_topic_partition_list_find(b.store, "in", 2)->offset, 3);
    rd_kafka_topic_partition_list_destroy(b.store);
}

static int64_t interval(int64_t flush_ms, int64_t flush_max_ms, int64_t lag_ms) {
    static const ds_wb_hooks_t none;
    ds_wb_t wb;
    assert_true(ds_wb_init(&wb, &none, NULL, flush_ms, flush_max_ms, 10));
    assert_int_equal(ds_wb_interval_ms(&wb), flush_ms); /* no lag seen yet */
    wb.lag_ms = lag_ms;
    int64_t t = ds_wb_interval_ms(&wb);
    ds_wb_free(&wb);
    return t;
}

static void test_interval_follows_lag(void **state) {
    (void)state;
    assert_int_equal(interval(1000, 5000, 0), 1000);    /* keeping up */
    assert_int_equal(interval(1000, 5000, 2000), 1000); /* half the lag is not longer */
    assert_int_equal(interval(1000, 5000, 3001), 1500); /* half the lag */
    assert_int_equal(interval(1000, 5000, 9998), 4999);
    assert_int_equal(interval(1000, 5000, 3600000), 5000); /* up to the most */
    assert_int_equal(interval(1000, 0, 3600000), 1000);    /* growth off */
    assert_int_equal(interval(1000, 500, 3600000), 1000);  /* a most below flush_ms: off */
    assert_int_equal(interval(0, 5000, 3600000), 0);       /* every batch stays every batch */
}

static size_t one_dirty(void *self) {
    (void)self;
    return 1;
}
static void write_none(void *self, ds_redis_t *r, size_t n, bool last) {
    (void)self, (void)r, (void)n, (void)last;
}

/* The worker asks when its state is due by the interval in force; the lag
 * a batch reports stands until another says otherwise. */
static void test_due_by_interval(void **state) {
    (void)state;
    static const ds_wb_hooks_t hooks = {one_dirty, write_none, one_dirty};
    ds_wb_t wb;
    assert_true(ds_wb_init(&wb, &hooks, NULL, 1000, 5000, 10));
    ds_wb_start(&wb, 0);
    ds_batch_t none;
    memset(&none, 0, sizeof(none));
    bool all;
    assert_true(ds_wb_due(&wb, 1500, 1500, &all)); /* keeping up: 1 s */
    assert_false(all);
    ds_wb_seen(&wb, &none, 8000); /* 8 s behind: 4 s */
    assert_false(ds_wb_due(&wb, 1500, 1500, &all));
    assert_false(ds_wb_due(&wb, 3999, 3999, &all));
    assert_true(ds_wb_due(&wb, 4000, 4000, &all));
    /* with the idle write far off, the wait is what is left of the 4 s */
    assert_int_equal(ds_wb_wait_ms(&wb, 1500, 1500 + 60000, 10000), 2500);
    ds_wb_seen(&wb, &none, -1); /* says nothing: still 4 s */
    assert_false(ds_wb_due(&wb, 1500, 1500, &all));
    ds_wb_seen(&wb, &none, 0); /* caught up */
    assert_true(ds_wb_due(&wb, 1500, 1500, &all));
    assert_true(ds_wb_due(&wb, 1500, 1400, &all)); /* 100 ms without a message: all */
    assert_true(all);
    ds_wb_free(&wb);
}

/* A partition is still once its position has not moved for the stall
 * time of unpaused reports; a move or a pause starts the count again, a
 * burst of reports after a long gap counts the gap as DS_FETCHWATCH_GAP_MS,
 * and it is said again after another stall time. */
static void test_fetchwatch(void **state) {
    (void)state;
    ds_fetchwatch_t fw;
    ds_fetchwatch_init(&fw, 10000);
    int64_t t = 1000;
    assert_false(ds_fetchwatch_still(&fw, 3, 50, false, t)); /* first report */
    for (int i = 1; i < 10; i++)
        assert_false(ds_fetchwatch_still(&fw, 3, 50, false, t + i * 1000));
    /* another partition moving all along is never still */
    for (int i = 0; i <= 30; i++)
        assert_false(ds_fetchwatch_still(&fw, 7, 100 + i, false, t + i * 1000));
    assert_true(ds_fetchwatch_still(&fw, 3, 50, false, t + 10000));
    assert_false(ds_fetchwatch_still(&fw, 3, 50, false, t + 11000)); /* the count started again */
    /* a move starts it again */
    assert_false(ds_fetchwatch_still(&fw, 3, 51, false, t + 12000));
    for (int i = 1; i < 10; i++)
        assert_false(ds_fetchwatch_still(&fw, 3, 51, false, t + 12000 + i * 1000));
    /* a pause too */
    assert_false(ds_fetchwatch_still(&fw, 3, 51, true, t + 22000));
    for (int i = 1; i < 10; i++)
        assert_false(ds_fetchwatch_still(&fw, 3, 51, false, t + 22000 + i * 1000));
    assert_true(ds_fetchwatch_still(&fw, 3, 51, false, t + 32000));
    /* a worker busy for a minute reads its reports in a burst: the gap
     * counts 2 s, the burst nothing */
    int64_t u = t + 100000;
    assert_false(ds_fetchwatch_still(&fw, 3, 51, false, u));
    for (int i = 0; i < 40; i++)
        assert_false(ds_fetchwatch_still(&fw, 3, 51, false, u + 60000));
    /* none (-1001) is a position like another: never fetched is still */
    ds_fetchwatch_forget(&fw);
    assert_false(ds_fetchwatch_still(&fw, 0, -1001, false, t));
    for (int i = 1; i < 10; i++)
        assert_false(ds_fetchwatch_still(&fw, 0, -1001, false, t + i * 1000));
    assert_true(ds_fetchwatch_still(&fw, 0, -1001, false, t + 10000));
    ds_fetchwatch_free(&fw);
}

UU_MAIN(NULL, NULL, cmocka_unit_test(test_backoff_doubles_to_ceiling),
        cmocka_unit_test(test_ring_order), cmocka_unit_test(test_offsets_merge),
        cmocka_unit_test(test_interval_follows_lag), cmocka_unit_test(test_due_by_interval),
        cmocka_unit_test(test_fetchwatch))
