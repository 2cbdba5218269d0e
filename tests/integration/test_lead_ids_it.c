/*
 * test_lead_ids_it.c — a lead's dedupe ids, end to end through the
 * scorer: while a lead has at most 64 ids remembered they stay in its
 * record; once it has had more, they live in a hash of their own
 * (`{acct:A}:seen:L`, or `{lead:L}:seen` for a lead without account: the
 * id's 64-bit FNV-1a as 8 bytes, big-endian → its occurred_at in ms), so
 * that the lead's `state` stays small however many ids it has.  A
 * restarted worker reads that hash back when the lead's next event comes:
 * a duplicate of any of its ids is still skipped.  The same with
 * `redis.writes: transaction` as with the write script.
 *
 * Each case runs a scorer of its own (its own input topic, output topics,
 * consumer group and Redis key prefix), so the cases share nothing but the
 * broker and the redis-server.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_dedupe.h"
#include "harness.h"

static ds_h_env_t env;
static const int64_t T0 = 1700000000000LL;

typedef ds_h_scase_t run_t;

static void run_init(run_t *r, const char *name, const char *writes) {
    ds_h_scase(r, &env, "it-lid", name, writes);
}

static pid_t start_scorer(const run_t *r) {
    return ds_h_scase_start(&env, r);
}

/* The id of event i of lead `lead` in run r. */
static void event_id(char *out, size_t size, const run_t *r, const char *lead, int i) {
    snprintf(out, size, "%s-%s-%d", r->n.name, lead, i);
}

/* The time of event i: a second apart, all within the dedupe window. */
static int64_t event_time(int i) {
    return T0 + (int64_t)i * 1000;
}

/* Event i of lead `lead` (account NULL: a lead without account): a view
 * of one SPARK content of insight I1. */
static void send_event(rd_kafka_t *p, const run_t *r, const char *lead, const char *account,
                       int i) {
    char id[96];
    event_id(id, sizeof(id), r, lead, i);
    ds_ma_event_t e = ds_h_ma(id, event_time(i), lead, account, DS_MA_CONTENT_VIEWED, "c-spark",
                              "I1", DS_CS_SPARK);
    ds_h_send_ma(p, r->topic, &e);
}

/* Events from..to-1 of lead `lead`. */
static void send_events(rd_kafka_t *p, const run_t *r, const char *lead, const char *account,
                        int from, int to) {
    for (int i = from; i < to; i++)
        send_event(p, r, lead, account, i);
}

/* The lead's Redis keys under r's prefix: its hash, and the hash of its
 * ids once kept apart. */
static void lead_keys(const run_t *r, const char *lead, const char *account, char *rec,
                      size_t rec_size, char *seen, size_t seen_size) {
    if (account) {
        snprintf(rec, rec_size, "%s{acct:%s}:lead:%s", r->n.prefix, account, lead);
        snprintf(seen, seen_size, "%s{acct:%s}:seen:%s", r->n.prefix, account, lead);
    } else {
        snprintf(rec, rec_size, "%s{lead:%s}", r->n.prefix, lead);
        snprintf(seen, seen_size, "%s{lead:%s}:seen", r->n.prefix, lead);
    }
}

static void wait_applied(const run_t *r, const char *key, int want) {
    ds_h_scase_wait_applied(&env, r, key, want);
}

static long long redis_int(const char *fmt, const char *key) {
    return ds_h_redis_int(&env, fmt, key);
}

/* The 8-byte big-endian field of event id `id`'s hash. */
static void id_field(unsigned char out[8], const char *id) {
    uint64_t h = ds_dedupe_hash(id, strlen(id));
    for (int k = 0; k < 8; k++)
        out[k] = (unsigned char)(h >> (56 - 8 * k));
}

/* Whether s is the decimal text of one of the times of events 0..n-1;
 * its index in *i. */
static bool event_time_of(const char *s, size_t len, int n, int *i) {
    char buf[32];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end || v < T0 || (v - T0) % 1000 || (v - T0) / 1000 >= n)
        return false;
    *i = (int)((v - T0) / 1000);
    return true;
}

/* Lead `lead` has had events 0..n-1 of run r (more than 64): its ids
 * are in its own hash `seen`, one field each (the id's hash, 8 bytes
 * big-endian → its time, decimal), and its record is small. */
static void expect_ids_apart(const run_t *r, const char *lead, const char *rec, const char *seen,
                             int n) {
    long long fields = redis_int("HLEN %s", seen);
    long long state_len = redis_int("HSTRLEN %s state", rec);
    fprintf(stderr, "  %s: %lld fields in %s, state of %s %lld bytes\n", r->n.name, fields, seen,
            rec, state_len);
    if (fields != n)
        fail_msg("HLEN %s: %lld, want %d (the lead's ids kept apart)", seen, fields, n);
    if (state_len >= 1000)
        fail_msg("HSTRLEN %s state: %lld bytes, want < 1000", rec, state_len);

    /* every field is 8 bytes, every value one event's time, each once
     * (what is wrong is said after the replies are freed: fail_msg leaves
     * this frame) */
    char bad[256] = "";
    redisReply *all = ds_h_redis(&env, "HGETALL %s", seen);
    assert_non_null(all);
    assert_int_equal(all->type, REDIS_REPLY_ARRAY);
    assert_int_equal(all->elements, 2 * (size_t)n);
    char *got = calloc((size_t)n, 1);
    assert_non_null(got);
    for (size_t j = 0; j < all->elements && !bad[0]; j += 2) {
        const redisReply *f = all->element[j], *v = all->element[j + 1];
        int i = -1;
        if (f->len != 8)
            snprintf(bad, sizeof(bad), "%s: a field of %zu bytes, want 8", seen, f->len);
        else if (!event_time_of(v->str, v->len, n, &i))
            snprintf(bad, sizeof(bad), "%s: value '%.*s' is not the time of an event", seen,
                     (int)(v->len < 40 ? v->len : 40), v->str);
        else if (got[i]++)
            snprintf(bad, sizeof(bad), "%s: the time of event %d twice", seen, i);
    }
    free(got);
    freeReplyObject(all);
    if (bad[0])
        fail_msg("%s", bad);

    /* and each event's field is its id's hash, with its time */
    for (int i = 0; i < n && !bad[0]; i++) {
        char id[96], want[32];
        unsigned char f[8];
        event_id(id, sizeof(id), r, lead, i);
        id_field(f, id);
        snprintf(want, sizeof(want), "%lld", (long long)event_time(i));
        redisReply *v = ds_h_redis(&env, "HGET %s %b", seen, f, sizeof(f));
        assert_non_null(v);
        if (v->type != REDIS_REPLY_STRING || strcmp(v->str, want))
            snprintf(bad, sizeof(bad), "HGET %s <hash of %s>: %.40s, want %s", seen, id,
                     v->type == REDIS_REPLY_STRING ? v->str : "(nil)", want);
        freeReplyObject(v);
    }
    if (bad[0])
        fail_msg("%s", bad);
}

/* 150 events of one lead and 10 of another, in one account: the first
 * lead's ids in their hash, the second's in its record (no hash). */
static void many_ids(const char *name, const char *writes) {
    enum { MANY = 150, FEW = 10 };
    run_t r;
    run_init(&r, name, writes);
    char acct[48], lead[48], few[48];
    snprintf(acct, sizeof(acct), "A-%s", name);
    snprintf(lead, sizeof(lead), "L-%s", name);
    snprintf(few, sizeof(few), "L-%s-few", name);
    rd_kafka_t *p = ds_h_producer(&env);
    send_events(p, &r, lead, acct, 0, MANY);
    send_events(p, &r, few, acct, 0, FEW);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    pid_t w = start_scorer(&r);

    char rec[128], seen[128], few_rec[128], few_seen[128];
    lead_keys(&r, lead, acct, rec, sizeof(rec), seen, sizeof(seen));
    lead_keys(&r, few, acct, few_rec, sizeof(few_rec), few_seen, sizeof(few_seen));
    wait_applied(&r, rec, MANY);
    wait_applied(&r, few_rec, FEW);
    expect_ids_apart(&r, lead, rec, seen, MANY);
    if (redis_int("EXISTS %s", few_seen) != 0)
        fail_msg("%s exists: a lead of %d ids keeps them in its record", few_seen, FEW);
    assert_int_equal(ds_h_stop(w, SIGTERM, 10000), 0);
}

static void test_many_ids_kept_apart(void **state) {
    (void)state;
    many_ids("lid-many", "script");
}

/* After a restart (same group: it goes on from its committed offsets,
 * with nothing of the lead in memory), 20 events already applied, taken
 * across the 150 (the earliest and the last among them), come again with
 * their ids and times, then one new event: only the new one is applied,
 * the 20 being recognised from the ids read back from Redis. */
static void test_duplicates_after_restart(void **state) {
    (void)state;
    enum { MANY = 150, AGAIN = 20 };
    run_t r;
    run_init(&r, "lid-restart", "script");
    const char *acct = "A-lid-restart", *lead = "L-lid-restart";
    char rec[128], seen[128];
    lead_keys(&r, lead, acct, rec, sizeof(rec), seen, sizeof(seen));
    rd_kafka_t *p = ds_h_producer(&env);
    send_events(p, &r, lead, acct, 0, MANY);
    ds_h_flush(p);
    pid_t w = start_scorer(&r);
    wait_applied(&r, rec, MANY);
    if (!ds_h_wait_group(&env, r.n.group, r.topic, 30000)) {
        ds_h_show_group(&env, r.n.group, r.topic);
        fail_msg("group %s did not commit %s", r.n.group, r.topic);
    }
    assert_int_equal(ds_h_stop(w, SIGTERM, 10000), 0);
    fprintf(stderr, "  %s: %lld fields in %s before the restart\n", r.n.name,
            redis_int("HLEN %s", seen), seen);

    w = start_scorer(&r);
    for (int k = 0; k < AGAIN; k++)
        send_event(p, &r, lead, acct, k * (MANY - 1) / (AGAIN - 1)); /* 0, 7, 15, …, 149 */
    send_event(p, &r, lead, acct, MANY);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    /* settled: every record consumed and its state written (offsets are
     * committed only after it) */
    if (!ds_h_wait_group(&env, r.n.group, r.topic, 60000)) {
        ds_h_show_group(&env, r.n.group, r.topic);
        ds_h_show_log(r.log, 30);
        fail_msg("group %s did not finish %s after the restart", r.n.group, r.topic);
    }
    ds_h_expect_hget(&env, rec, "events_applied", "151", 0);
    expect_ids_apart(&r, lead, rec, seen, MANY + 1);
    assert_int_equal(ds_h_stop(w, SIGTERM, 10000), 0);
    ds_h_expect_hget(&env, rec, "events_applied", "151", 0);
}

/* A lead without account: its ids in `{lead:L}:seen`. */
static void test_lone_lead_ids(void **state) {
    (void)state;
    enum { MANY = 100 };
    run_t r;
    run_init(&r, "lid-lone", "script");
    const char *lead = "L-lid-lone";
    rd_kafka_t *p = ds_h_producer(&env);
    send_events(p, &r, lead, NULL, 0, MANY);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    pid_t w = start_scorer(&r);
    char rec[128], seen[128];
    lead_keys(&r, lead, NULL, rec, sizeof(rec), seen, sizeof(seen));
    wait_applied(&r, rec, MANY);
    expect_ids_apart(&r, lead, rec, seen, MANY);
    assert_int_equal(ds_h_stop(w, SIGTERM, 10000), 0);
}

/* test_many_ids_kept_apart with redis.writes: transaction. */
static void test_transaction_writes(void **state) {
    (void)state;
    many_ids("lid-tx", "transaction");
}

DS_H_MAIN(&env, 2, cmocka_unit_test(test_many_ids_kept_apart),
          cmocka_unit_test(test_duplicates_after_restart), cmocka_unit_test(test_lone_lead_ids),
          cmocka_unit_test(test_transaction_writes))
