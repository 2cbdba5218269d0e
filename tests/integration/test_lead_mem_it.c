/*
 * test_lead_mem_it.c — a lead's memory of what it engaged and shared, end
 * to end through the scorer.  That memory is, per lead, the time of the
 * last counted engagement of each (content, event type) (the repeat
 * window: one engagement counts per repeat_window_days, 7) and the
 * colleagues it shared each content with (share_cap: 5 per content).
 * While a lead has at most 64 such entries they stay in its record; the
 * event that gives it more moves them, for good, to a hash of their own
 * (`{acct:A}:mem:L`, or `{lead:L}:mem` for a lead without account):
 *
 *   r<type>:<content>            → the last counted time (ms, decimal)
 *   s<len(content)>:<content><colleague> → "1"
 *
 * so that the lead's `state` stays small however much it engaged.  A
 * restarted worker reads that hash back when the lead's next event comes:
 * a repeat inside the window is still not counted and the share cap still
 * holds.  An unsubscribe clears the memory, hash and all.  The same with
 * `redis.writes: transaction` as with the write script, and on a Redis
 * Cluster (its own, of three masters).
 *
 * Each case runs a scorer of its own (its own input topic, output topics,
 * consumer group and Redis key prefix), so the cases share nothing but the
 * broker and the redis-server.
 *
 * The scores read back: default rules, no catalog.  An engagement of a
 * BUILD_B content is worth 4 × the type's weight × the B-state factor 0.2
 * (a lead that saw no A-stage content): 0.4 for CONTENT_VIEWED, 0.8 for
 * CONTENT_COMPLETED, so that 100 of them stay under the score cap of 100.
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ds_cluster.h"
#include "harness.h"

static ds_h_env_t env;
static const int64_t T0 = 1700000000000LL;

enum {
    MANY = 100,  /* contents engaged: more than 64, kept apart */
    FEW = 10,    /* contents engaged: kept in the record */
    SHARED = 70, /* contents shared, one colleague each: kept apart */
    /* bytes: a record holding the 100 repeats takes more (about 5 bytes
     * each: reference, type, time; 553 bytes in all before they were kept
     * apart) */
    STATE_SMALL = 400
};

typedef ds_h_scase_t run_t;

static void run_init(run_t *r, const char *name, const char *writes) {
    ds_h_scase(r, &env, "it-lmem", name, writes);
}

static pid_t start_scorer(const run_t *r) {
    return ds_h_scase_start(&env, r);
}

/* Stops a scorer; it must exit cleanly. */
static void stop_scorer(pid_t w) {
    assert_int_equal(ds_h_stop(w, SIGTERM, 10000), 0);
}

/* Content i: the same ids in every run (transaction and script runs store
 * the same fields). */
static void content_id(char *out, size_t size, int i) {
    snprintf(out, size, "content-item-%04d", i);
}

/* The type of the engagements of content i: views and completions in
 * turn, so that the type's number in the field is checked for two. */
static int content_type(int i) {
    return i % 2 ? DS_MA_CONTENT_COMPLETED : DS_MA_CONTENT_VIEWED;
}

/* The points of a counted engagement of content i (see the header). */
static double engage_points(int i) {
    return content_type(i) == DS_MA_CONTENT_COMPLETED ? 0.8 : 0.4;
}

/* The time of the first engagement of content i: a second apart, all
 * within the repeat window of each other. */
static int64_t event_time(int i) {
    return T0 + (int64_t)i * 1000;
}

/* An engagement of content i at t by lead `lead` (account NULL: a lead
 * without account), its event id "<run>-<lead>-<tag>-<i>". */
static void send_engage(rd_kafka_t *p, const run_t *r, const char *lead, const char *account,
                        const char *tag, int i, int64_t t) {
    char id[128], content[32];
    snprintf(id, sizeof(id), "%s-%s-%s-%d", r->n.name, lead, tag, i);
    content_id(content, sizeof(content), i);
    ds_ma_event_t e = ds_h_ma(id, t, lead, account, content_type(i), content, "I1", DS_CS_BUILD_B);
    ds_h_send_ma(p, r->topic, &e);
}

/* First engagements of contents 0..n-1, each at event_time(i). */
static void send_engages(rd_kafka_t *p, const run_t *r, const char *lead, const char *account,
                         int n) {
    for (int i = 0; i < n; i++)
        send_engage(p, r, lead, account, "e", i, event_time(i));
}

/* The lead's Redis keys under r's prefix: its hash, and the hash of its
 * memory once kept apart. */
static void lead_keys(const run_t *r, const char *lead, const char *account, char *rec,
                      size_t rec_size, char *mem, size_t mem_size) {
    if (account) {
        snprintf(rec, rec_size, "%s{acct:%s}:lead:%s", r->n.prefix, account, lead);
        snprintf(mem, mem_size, "%s{acct:%s}:mem:%s", r->n.prefix, account, lead);
    } else {
        snprintf(rec, rec_size, "%s{lead:%s}", r->n.prefix, lead);
        snprintf(mem, mem_size, "%s{lead:%s}:mem", r->n.prefix, lead);
    }
}

/* The field of the repeat entry of content i: "r<type>:<content>". */
static void repeat_field(char *out, size_t size, int i) {
    char content[32];
    content_id(content, sizeof(content), i);
    snprintf(out, size, "r%d:%s", content_type(i), content);
}

/* The field of the share of content i with `colleague`:
 * "s<len(content)>:<content><colleague>". */
static void share_field(char *out, size_t size, int i, const char *colleague) {
    char content[32];
    content_id(content, sizeof(content), i);
    snprintf(out, size, "s%zu:%s%s", strlen(content), content, colleague);
}

static void wait_applied(const run_t *r, const char *key, int want) {
    ds_h_scase_wait_applied(&env, r, key, want);
}

/* Waits until r's group has committed all of r's input (every record
 * consumed and its state written), e.g. before a stop. */
static void wait_settled(const run_t *r) {
    if (!ds_h_wait_group(&env, r->n.group, r->topic, 60000)) {
        ds_h_show_group(&env, r->n.group, r->topic);
        ds_h_show_log(r->log, 30);
        fail_msg("group %s did not finish %s", r->n.group, r->topic);
    }
}

static long long redis_int(const char *fmt, const char *key) {
    return ds_h_redis_int(&env, fmt, key);
}

/* Field `field` of hash `key` into out (cut to size), failing the case
 * when absent. */
static void hget_copy(const char *key, const char *field, char *out, size_t size) {
    char *v = ds_h_hget(&env, key, field);
    if (!v)
        fail_msg("HGET %s %s: (nil)", key, field);
    snprintf(out, size, "%s", v);
    free(v);
}

/* A numeric field of hash `key`. */
static double hget_num(const char *key, const char *field) {
    char v[64];
    hget_copy(key, field, v, sizeof(v));
    return strtod(v, NULL);
}

/* Fails the case unless field `field` of the memory hash `mem` is `want`
 * (NULL: absent). */
static void expect_mem_field(const char *mem, const char *field, const char *want) {
    char *v = ds_h_hget(&env, mem, field);
    char got[48];
    snprintf(got, sizeof(got), "%.40s", v ? v : "(nil)");
    bool ok = want ? v && !strcmp(v, want) : !v;
    free(v);
    if (!ok)
        fail_msg("HGET %s %s: %s, want %s", mem, field, got, want ? want : "(nil)");
}

/* The memory hash `mem` has exactly `n` fields. */
static void expect_fields(const run_t *r, const char *mem, long long n) {
    long long fields = redis_int("HLEN %s", mem);
    fprintf(stderr, "  %s: %lld fields in %s\n", r->n.name, fields, mem);
    if (fields != n)
        fail_msg("HLEN %s: %lld, want %lld (the lead's memory kept apart)", mem, fields, n);
}

/* The state of the lead's record `rec` is small: its memory is not in it
 * as well. */
static void expect_small_state(const run_t *r, const char *rec) {
    long long state_len = redis_int("HSTRLEN %s state", rec);
    fprintf(stderr, "  %s: state of %s %lld bytes\n", r->n.name, rec, state_len);
    if (state_len >= STATE_SMALL)
        fail_msg("HSTRLEN %s state: %lld bytes, want < %d (the lead's memory not in its record)",
                 rec, state_len, (int)STATE_SMALL);
}

/* Lead has engaged contents 0..n-1 once each (n > 64): its hash `mem`
 * holds exactly one repeat entry per content, "r<type>:<content>" → the
 * engagement's time, and its record is small. */
static void expect_repeats_apart(const run_t *r, const char *rec, const char *mem, int n) {
    expect_fields(r, mem, n);
    expect_small_state(r, rec);
    for (int i = 0; i < n; i++) {
        char field[64], want[32];
        repeat_field(field, sizeof(field), i);
        snprintf(want, sizeof(want), "%lld", (long long)event_time(i));
        expect_mem_field(mem, field, want);
    }
}

/* Cases 1 and 4: one lead of an account engages 100 contents, another 10:
 * the first's repeat entries are in their hash (and not in its record),
 * the second's stay in its record (no hash). */
static void many_contents(const char *name, const char *writes) {
    run_t r;
    run_init(&r, name, writes);
    char acct[48], lead[48], few[48];
    snprintf(acct, sizeof(acct), "A-%s", name);
    snprintf(lead, sizeof(lead), "L-%s", name);
    snprintf(few, sizeof(few), "L-%s-few", name);
    rd_kafka_t *p = ds_h_producer(&env);
    send_engages(p, &r, lead, acct, MANY);
    send_engages(p, &r, few, acct, FEW);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    pid_t w = start_scorer(&r);

    char rec[128], mem[128], few_rec[128], few_mem[128];
    lead_keys(&r, lead, acct, rec, sizeof(rec), mem, sizeof(mem));
    lead_keys(&r, few, acct, few_rec, sizeof(few_rec), few_mem, sizeof(few_mem));
    wait_applied(&r, rec, MANY);
    wait_applied(&r, few_rec, FEW);
    expect_repeats_apart(&r, rec, mem, MANY);
    if (redis_int("EXISTS %s", few_mem) != 0)
        fail_msg("%s exists: a lead of %d repeats keeps them in its record", few_mem, FEW);
    stop_scorer(w);
}

/* 1. Repeats kept apart, with the write script. */
static void test_repeats_kept_apart(void **state) {
    (void)state;
    many_contents("lm-many", "script");
}

/* Cases 2 and 3: lead (of `account`, or without one) engages 100
 * contents; after a restart (same group: nothing of the lead in memory)
 * a new engagement of content 5 a day after its first, and one of content
 * 6 a day before its first, do not count: the repeats are recognised from
 * the hash read back (the confront score stays, the entries keep their
 * times).  Then content 5 again 8 days after its first: out of the window,
 * it counts, and its entry takes the new time. */
static void repeats_after_restart(const char *name, const char *account) {
    run_t r;
    run_init(&r, name, "script");
    char lead[48], rec[128], mem[128];
    snprintf(lead, sizeof(lead), "L-%s", name);
    lead_keys(&r, lead, account, rec, sizeof(rec), mem, sizeof(mem));
    rd_kafka_t *p = ds_h_producer(&env);
    send_engages(p, &r, lead, account, MANY);
    ds_h_flush(p);
    pid_t w = start_scorer(&r);
    wait_applied(&r, rec, MANY);
    expect_repeats_apart(&r, rec, mem, MANY);
    wait_settled(&r);
    stop_scorer(w);
    char before[32], after[32];
    hget_copy(rec, "confront", before, sizeof(before));

    w = start_scorer(&r);
    send_engage(p, &r, lead, account, "later", 5, event_time(5) + DS_DAY);
    send_engage(p, &r, lead, account, "earlier", 6, event_time(6) - DS_DAY);
    ds_h_flush(p);
    wait_applied(&r, rec, MANY + 2);
    hget_copy(rec, "confront", after, sizeof(after));
    if (strcmp(after, before))
        fail_msg("%s confront %s after two repeats within the window, was %s: counted", rec, after,
                 before);
    expect_repeats_apart(&r, rec, mem, MANY);

    /* 8 days after: counts (the score decays to then and gains it) */
    int64_t t8 = event_time(5) + 8 * DS_DAY;
    send_engage(p, &r, lead, account, "week", 5, t8);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    wait_applied(&r, rec, MANY + 3);
    double was = strtod(before, NULL), now = hget_num(rec, "confront");
    double want =
        was * exp2(-(double)(t8 - event_time(MANY - 1)) / (30.0 * DS_DAY)) + engage_points(5);
    if (fabs(now - want) > 0.2)
        fail_msg("%s confront %g after an engagement 8 days on, want about %g (was %g)", rec, now,
                 want, was);
    char field[64], t[32];
    repeat_field(field, sizeof(field), 5);
    snprintf(t, sizeof(t), "%lld", (long long)t8);
    expect_mem_field(mem, field, t);
    stop_scorer(w);
}

/* 2. Repeats recognised after a restart: a lead of an account. */
static void test_repeats_after_restart(void **state) {
    (void)state;
    repeats_after_restart("lm-restart", "A-lm-restart");
}

/* 3. The same for a lead without account: its memory in `{lead:L}:mem`. */
static void test_lone_lead_repeats(void **state) {
    (void)state;
    repeats_after_restart("lm-lone", NULL);
}

/* 4. test_repeats_kept_apart with redis.writes: transaction: the same
 * fields and values (the content ids and times are those of case 1). */
static void test_transaction_writes(void **state) {
    (void)state;
    many_contents("lm-tx", "transaction");
}

/* Colleague i of the share feed. */
static void colleague_id(char *out, size_t size, int i) {
    snprintf(out, size, "K-%04d", i);
}

/* A share of content i at t with the n colleagues `with`. */
static void send_share(rd_kafka_t *p, const run_t *r, const char *lead, const char *account,
                       const char *tag, int i, int64_t t, const char **with, size_t n) {
    char id[128], content[32];
    snprintf(id, sizeof(id), "%s-%s-%s-%d", r->n.name, lead, tag, i);
    content_id(content, sizeof(content), i);
    ds_ma_event_t e =
        ds_h_ma(id, t, lead, account, DS_MA_CONTENT_SHARED, content, "I1", DS_CS_SPARK);
    e.shared_with = with;
    e.shared_with_count = n;
    ds_h_send_ma(p, r->topic, &e);
}

/* 5. Shares kept apart: a lead shares 70 contents, each with a colleague
 * of its own, a week apart (so that its connect score, 8 points a share
 * decaying with a 30-day half-life, stays under the cap of 100 and its
 * changes show): 70 fields "s<len>:<content><colleague>" = "1".  After a
 * restart it shares content 0 again, at the time of its last share (no
 * decay in between), with 5 new colleagues: the share cap (5 a content)
 * counts the one of before, read back from the hash, so only the first 4
 * new ones score: connect rises by 4 × 8 = 32, not 40.  (The record's size
 * is not checked here: it keeps a reason bucket per content shared.) */
static void test_shares_kept_apart(void **state) {
    (void)state;
    run_t r;
    run_init(&r, "lm-share", "script");
    const char *acct = "A-lm-share", *lead = "L-lm-share";
    char rec[128], mem[128];
    lead_keys(&r, lead, acct, rec, sizeof(rec), mem, sizeof(mem));
    rd_kafka_t *p = ds_h_producer(&env);
    for (int i = 0; i < SHARED; i++) {
        char k[16];
        colleague_id(k, sizeof(k), i);
        const char *with[] = {k};
        send_share(p, &r, lead, acct, "s", i, T0 + (int64_t)i * 7 * DS_DAY, with, 1);
    }
    ds_h_flush(p);
    pid_t w = start_scorer(&r);
    wait_applied(&r, rec, SHARED);
    expect_fields(&r, mem, SHARED);
    for (int i = 0; i < SHARED; i++) {
        char k[16], field[64];
        colleague_id(k, sizeof(k), i);
        share_field(field, sizeof(field), i, k);
        expect_mem_field(mem, field, "1");
    }
    wait_settled(&r);
    stop_scorer(w);
    double before = hget_num(rec, "connect");

    w = start_scorer(&r);
    const char *with[] = {"N-1", "N-2", "N-3", "N-4", "N-5"};
    send_share(p, &r, lead, acct, "again", 0, T0 + (int64_t)(SHARED - 1) * 7 * DS_DAY, with, 5);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    wait_applied(&r, rec, SHARED + 1);
    double after = hget_num(rec, "connect");
    fprintf(stderr, "  %s: connect %g, then %g\n", r.n.name, before, after);
    if (fabs(after - before - 32) > 0.11)
        fail_msg("%s connect %g after sharing content 0 with 5 more, was %g: want +32 (4 of "
                 "them under the cap of 5)",
                 rec, after, before);
    expect_fields(&r, mem, SHARED + 4);
    for (int k = 0; k < 5; k++) {
        char field[64];
        share_field(field, sizeof(field), 0, with[k]);
        expect_mem_field(mem, field, k < 4 ? "1" : NULL);
    }
    stop_scorer(w);
}

/* 6. An unsubscribe clears the memory: the lead of 100 contents
 * unsubscribes; its hash is deleted, and its next engagement of content 1
 * (within a second of the first: inside the window of the old entry)
 * counts, from a score of 0, its memory back in its record. */
static void test_unsubscribe_clears(void **state) {
    (void)state;
    run_t r;
    run_init(&r, "lm-unsub", "script");
    const char *acct = "A-lm-unsub", *lead = "L-lm-unsub";
    char rec[128], mem[128];
    lead_keys(&r, lead, acct, rec, sizeof(rec), mem, sizeof(mem));
    rd_kafka_t *p = ds_h_producer(&env);
    send_engages(p, &r, lead, acct, MANY);
    ds_h_flush(p);
    pid_t w = start_scorer(&r);
    wait_applied(&r, rec, MANY);
    expect_repeats_apart(&r, rec, mem, MANY);

    char id[96];
    snprintf(id, sizeof(id), "%s-unsub", r.n.name);
    ds_ma_event_t u =
        ds_h_ma(id, event_time(MANY), lead, acct, DS_MA_UNSUBSCRIBED, NULL, NULL, DS_NONE);
    ds_h_send_ma(p, r.topic, &u);
    ds_h_flush(p);
    wait_applied(&r, rec, MANY + 1);
    if (redis_int("EXISTS %s", mem) != 0)
        fail_msg("%s exists after the lead unsubscribed", mem);
    double c = hget_num(rec, "confront");
    if (c != 0)
        fail_msg("%s confront %g after the lead unsubscribed, want 0", rec, c);

    send_engage(p, &r, lead, acct, "again", 1, event_time(MANY + 1));
    ds_h_flush(p);
    rd_kafka_destroy(p);
    wait_applied(&r, rec, MANY + 2);
    c = hget_num(rec, "confront");
    if (fabs(c - engage_points(1)) > 0.05)
        fail_msg("%s confront %g after engaging content 1 again, want %g (the repeat forgotten)",
                 rec, c, engage_points(1));
    if (redis_int("EXISTS %s", mem) != 0)
        fail_msg("%s exists: a lead of one repeat keeps it in its record", mem);
    stop_scorer(w);
}

/* A command with one key on the node of a Redis Cluster that owns its
 * slot; its integer reply, or its string reply in out (-1 then). */
static long long cl_cmd(const ds_h_cluster_t *cl, const char *fmt, const char *key, char *out,
                        size_t size) {
    int owner = ds_h_cluster_owner(cl, ds_cluster_keyslot(key, strlen(key)));
    assert_true(owner >= 0);
    redisReply *x = ds_h_node(cl, owner, fmt, key);
    assert_non_null(x);
    long long v = x->type == REDIS_REPLY_INTEGER ? x->integer : -1;
    if (out)
        snprintf(out, size, "%s", x->type == REDIS_REPLY_STRING ? x->str : "");
    freeReplyObject(x);
    return v;
}

/* 7. On a Redis Cluster: the write script declares the key of the
 * memory (it is on the account's slot), and what it stores is what a
 * single Redis stores. */
static void test_cluster(void **state) {
    (void)state;
    ds_h_cluster_t cl;
    ds_h_cluster_start(&env, &cl, 3, 0);
    run_t r;
    run_init(&r, "lm-cluster", "script");
    const char *acct = "A-lm-cluster", *lead = "L-lm-cluster";
    rd_kafka_t *p = ds_h_producer(&env);
    send_engages(p, &r, lead, acct, MANY);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    ds_h_args_t a;
    ds_h_worker_args(&a, &env, "scorer", cl.url, r.n.group, r.n.prefix);
    ds_h_args_add(&a, "--topic-marketing", r.topic, "--topic-lead-scores", r.n.ls,
                  "--topic-account-scores", r.n.as, "--redis-seeds", cl.seeds, NULL);
    pid_t w = ds_h_spawn(r.log, a.v);
    char rec[128], mem[128], got[32] = "";
    lead_keys(&r, lead, acct, rec, sizeof(rec), mem, sizeof(mem));
    for (int i = 0; i < 600 && strcmp(got, "100"); i++) { /* up to 60 s */
        cl_cmd(&cl, "HGET %s events_applied", rec, got, sizeof(got));
        if (strcmp(got, "100"))
            usleep(100000);
    }
    if (strcmp(got, "100")) {
        ds_h_show_log(r.log, 30);
        fail_msg("%s events_applied on the cluster: %s, want 100", rec, got);
    }
    long long fields = cl_cmd(&cl, "HLEN %s", mem, NULL, 0);
    long long state_len = cl_cmd(&cl, "HSTRLEN %s state", rec, NULL, 0);
    if (fields != MANY || state_len >= STATE_SMALL)
        fail_msg("on the cluster: %s has %lld fields (want %d), %s's state %lld bytes (want < %d)",
                 mem, fields, MANY, rec, state_len, (int)STATE_SMALL);
    char field[64], want[32];
    repeat_field(field, sizeof(field), 7);
    snprintf(want, sizeof(want), "%lld", (long long)event_time(7));
    int owner = ds_h_cluster_owner(&cl, ds_cluster_keyslot(mem, strlen(mem)));
    redisReply *x = ds_h_node(&cl, owner, "HGET %s %s", mem, field);
    assert_non_null(x);
    if (x->type != REDIS_REPLY_STRING || strcmp(x->str, want))
        fail_msg("on the cluster: HGET %s %s: %s, want %s", mem, field,
                 x->type == REDIS_REPLY_STRING ? x->str : "(nil)", want);
    freeReplyObject(x);
    stop_scorer(w);
}

DS_H_MAIN(&env, 2, cmocka_unit_test(test_repeats_kept_apart),
          cmocka_unit_test(test_repeats_after_restart), cmocka_unit_test(test_lone_lead_repeats),
          cmocka_unit_test(test_transaction_writes), cmocka_unit_test(test_shares_kept_apart),
          cmocka_unit_test(test_unsubscribe_clears), cmocka_unit_test(test_cluster))
