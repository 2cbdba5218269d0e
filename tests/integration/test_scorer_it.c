/*
 * test_scorer_it.c — the scorer end to end: the broker process, a private
 * redis-server and the dealsignal binary; framed events in, LeadScore and
 * AccountScore records, DLQ records and Redis state out.
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_kafka.h"
#include "harness.h"

static ds_h_env_t env;
static const int64_t T0 = 1700000000000LL;
static char logfile[256];

/* An event of lead `lead` in account A-1. */
static ds_ma_event_t ma(const char *id, int64_t t, const char *lead, int type, const char *content,
                        const char *insight, int stage) {
    return ds_h_ma(id, t, lead, "A-1", type, content, insight, stage);
}

static pid_t start_scorer(const char *group) {
    const char *args[] = {"scorer",     "--brokers", env.brokers, "--redis", env.redis_url,
                          "--group-id", group,       "--schemas", getenv("DS_SCHEMAS_DIR"),
                          "--clock",    "event",     NULL};
    return ds_h_spawn(logfile, args);
}

static void test_scorer_end_to_end(void **state) {
    (void)state;
    rd_kafka_t *p = ds_h_producer(&env);
    ds_ma_event_t e1 = ma("e1", T0, "L-1", DS_MA_CONTENT_COMPLETED, "c-spark", "I1", DS_CS_SPARK);
    ds_ma_event_t e2 =
        ma("e2", T0, "L-1", DS_MA_DIAGNOSTIC_COMPLETED, "c-conf", "I1", DS_CS_CONFRONT);
    ds_ma_event_t e3 = ma("e3", T0, "L-1", DS_MA_CONTENT_SHARED, "c-conf", "I1", DS_CS_CONFRONT);
    const char *shared[] = {"L-2", "L-3"};
    e3.shared_with = shared;
    e3.shared_with_count = 2;
    ds_ma_event_t e6 =
        ma("e6", T0 + DS_DAY, "L-2", DS_MA_CONTENT_VIEWED, "c-conf", "I1", DS_CS_CONFRONT);
    ds_h_send_ma(p, "ma.events", &e1);
    ds_h_send_ma(p, "ma.events", &e2);
    ds_h_send_ma(p, "ma.events", &e3);
    ds_h_send_ma(p, "ma.events", &e2); /* duplicate event id */
    const unsigned char bad[] = {0x01, 0, 0, 0, 1, 2, 3};
    ds_h_produce(p, "ma.events", "A-1", bad, sizeof(bad));
    ds_h_send_ma(p, "ma.events", &e6);
    ds_h_flush(p);

    pid_t scorer = start_scorer("it-scorer");
    ds_h_record_t *recs;
    size_t n = ds_h_consume(&env, "lead.scores", 5, 60000, &recs);
    assert_int_equal(n, 5);
    ds_lead_score_t ls[5];
    ds_arena_t arena;
    ds_arena_init(&arena, 0);
    ds_h_decode_all(DS_H_LEAD_SCORE, recs, n, &arena, ls);
    /* e1: SPARK completed 5×1.0 = 5 → LEARNING */
    assert_string_equal(ls[0].lead_id, "L-1");
    assert_float_equal(ls[0].confront, 5.0, 1e-9);
    assert_int_equal(ls[0].tier, DS_TIER_LEARNING);
    assert_int_equal(ls[0].previous_tier, DS_TIER_UNAWARE);
    /* e2: CONFRONT diagnostic 20×1.5 on the path ×1.5 = 45 → 50, CONFRONTED */
    assert_float_equal(ls[1].confront, 50.0, 1e-9);
    assert_int_equal(ls[1].tier, DS_TIER_CONFRONTED);
    assert_string_equal(ls[1].top_insight, "I1");
    assert_int_equal(ls[1].furthest_stage, DS_CS_CONFRONT);
    /* e3: two colleagues × 8 = 16 connect */
    assert_float_equal(ls[2].connect, 16.0, 1e-9);
    /* e6: L-2 views the insight a day later (20×0.5 = 10) and L-1 gets the
     * follow credit (20) at that time; L-1's points decay by one day */
    assert_string_equal(ls[3].lead_id, "L-2");
    assert_float_equal(ls[3].confront, 10.0, 1e-9);
    assert_string_equal(ls[4].lead_id, "L-1");
    double f = pow(2.0, -1.0 / 30.0);
    assert_float_equal(ls[4].confront, 50.0 * f, 1e-6);
    assert_float_equal(ls[4].connect, 16.0 * f + 20.0, 1e-6);
    assert_int_equal(ls[4].tier, DS_TIER_MOBILIZER);
    assert_int_equal(ls[4].as_of, T0 + DS_DAY);
    assert_int_equal(ls[4].events_applied, 3);
    ds_arena_free(&arena);
    /* every output carries a stable id */
    assert_string_equal(ds_h_header(&recs[0], "dealsignal.id"), "L-1:1");
    ds_h_records_free(recs, n);

    /* account roll-up: e1 (engaged 1), e2 (confronted 1), e6 (engaged 2) */
    n = ds_h_consume(&env, "account.scores", 3, 30000, &recs);
    assert_int_equal(n, 3);
    ds_arena_t a;
    ds_arena_init(&a, 0);
    ds_account_score_t as;
    char detail[256];
    assert_int_equal(
        ds_codec_decode_account_score(ds_h_codec(), recs[2].val, recs[2].len, &a, &as, detail, 256),
        DS_ERR_OK);
    assert_int_equal(as.engaged_stakeholders, 2);
    assert_int_equal(as.confronted_stakeholders, 1);
    assert_float_equal(as.consensus, 18.5, 1e-9); /* 100 × 1/5.4, rounded to 0.1 */
    assert_int_equal(as.mobilizers_count, 1);
    assert_string_equal(as.mobilizers[0], "L-1");
    ds_arena_free(&a);
    ds_h_records_free(recs, n);

    /* the bad record went to the DLQ with its reason and source */
    n = ds_h_consume(&env, "ma.events.dlq", 1, 30000, &recs);
    assert_int_equal(n, 1);
    assert_string_equal(ds_h_header(&recs[0], "dealsignal.error"), "bad_magic");
    assert_string_equal(ds_h_header(&recs[0], "dealsignal.source.topic"), "ma.events");
    assert_non_null(ds_h_header(&recs[0], "dealsignal.detail"));
    assert_non_null(ds_h_header(&recs[0], "dealsignal.source.offset"));
    assert_int_equal(recs[0].len, sizeof(bad));
    assert_memory_equal(recs[0].val, bad, sizeof(bad));
    ds_h_records_free(recs, n);

    /* Redis holds the state under the documented keys */
    ds_h_expect_hget(&env, "ds:{acct:A-1}:lead:L-1", "tier", "MOBILIZER", 10000);
    ds_h_expect_hget(&env, "ds:{acct:A-1}:lead:L-1", "events_applied", "3", 10000);
    ds_h_expect_hget(&env, "ds:{acct:A-1}", "engaged_stakeholders", "2", 10000);

    /* SIGTERM: clean exit 0 within 10 s */
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 10000), 0);

    /* A new group replays the topic from the beginning: the checkpoints
     * stored with the state recognise every event, nothing is applied or
     * produced twice. */
    scorer = start_scorer("it-scorer-replay");
    ds_clock_sleep_ms(6000);
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 10000), 0);
    ds_h_expect_records(&env, "lead.scores", 6, 5000, 5);
    ds_h_expect_hget(&env, "ds:{acct:A-1}:lead:L-1", "events_applied", "3", 0);
    rd_kafka_destroy(p);
}

/* A scorer on topics and a Redis prefix of its own: NAME.events,
 * NAME.lead.scores, NAME.account.scores, "NAME:". */
static pid_t start_scorer_named(const char *name, const char *group, const char *batch_size,
                                const char *flush_ms, const char *flush_entities) {
    char topic[64], ls[64], as[64], prefix[32];
    snprintf(topic, sizeof(topic), "%s.events", name);
    snprintf(ls, sizeof(ls), "%s.lead.scores", name);
    snprintf(as, sizeof(as), "%s.account.scores", name);
    snprintf(prefix, sizeof(prefix), "%s:", name);
    const char *args[] = {"scorer",
                          "--brokers", env.brokers,
                          "--redis", env.redis_url,
                          "--group-id", group,
                          "--schemas", getenv("DS_SCHEMAS_DIR"),
                          "--clock", "event",
                          "--topic-marketing", topic,
                          "--topic-lead-scores", ls,
                          "--topic-account-scores", as,
                          "--redis-prefix", prefix,
                          "--batch-size", batch_size,
                          "--redis-flush-ms", flush_ms,
                          "--redis-flush-entities", flush_entities,
                          NULL};
    return ds_h_spawn(logfile, args);
}

static pid_t start_scorer_wb(const char *group, const char *flush_entities) {
    return start_scorer_named("wb", group, "10000", "60000", flush_entities);
}

/* Write-behind: outputs go out at once, the state is written at the next
 * flush, and offsets are committed only after it; SIGTERM flushes. */
/* Send e on account A-10 and wait until the lead hash of e's lead shows
 * `applied` events (its state has been flushed). */
static void send_flushed(rd_kafka_t *p, ds_ma_event_t e, const char *applied) {
    e.account_id = "A-10";
    ds_h_send_ma(p, "wb.events", &e);
    ds_h_flush(p);
    char key[128];
    snprintf(key, sizeof(key), "wb:{acct:A-10}:lead:%s", e.lead_id);
    ds_h_expect_hget(&env, key, "events_applied", applied, 20000);
}

static void test_write_behind_flush(void **state) {
    (void)state;
    pid_t scorer = start_scorer_wb("it-wb", "1000000");
    ds_clock_sleep_ms(3000); /* joined, idle: nothing to flush */
    rd_kafka_t *p = ds_h_producer(&env);
    ds_ma_event_t e1 = ma("wb1", T0, "L-9", DS_MA_CONTENT_COMPLETED, "c-spark", "I1", DS_CS_SPARK);
    ds_ma_event_t e2 =
        ma("wb2", T0 + 1000, "L-9", DS_MA_DIAGNOSTIC_COMPLETED, "c-conf", "I1", DS_CS_CONFRONT);
    e1.account_id = e2.account_id = "A-9";
    ds_h_send_ma(p, "wb.events", &e1);
    ds_h_send_ma(p, "wb.events", &e2);
    ds_h_flush(p);
    ds_h_expect_records(&env, "wb.lead.scores", 2, 30000, 2);
    /* scored and produced, but within the flush interval: no state in
     * Redis yet, and no offset committed for it */
    ds_clock_sleep_ms(1000);
    char *ev = ds_h_hget(&env, "wb:{acct:A-9}:lead:L-9", "events_applied");
    assert_null(ev);
    assert_false(ds_h_group_done(&env, "it-wb", "wb.events"));
    /* SIGTERM writes the state, then commits */
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 10000), 0);
    ev = ds_h_hget(&env, "wb:{acct:A-9}:lead:L-9", "events_applied");
    assert_non_null(ev);
    assert_string_equal(ev, "2");
    free(ev);
    assert_true(ds_h_group_done(&env, "it-wb", "wb.events"));

    /* redis.flush_entities: one changed entity is enough to flush now */
    scorer = start_scorer_wb("it-wb-2", "1");
    ds_clock_sleep_ms(3000);
    ds_ma_event_t e3 = ma("wb3", T0 + 2000, "L-9", DS_MA_CONTENT_COMPLETED, "c-spark", "I1", DS_CS_SPARK);
    e3.account_id = "A-10";
    ds_h_send_ma(p, "wb.events", &e3);
    ds_h_flush(p);
    int64_t end = ds_clock_mono_ms() + 20000;
    while (!(ev = ds_h_hget(&env, "wb:{acct:A-10}:lead:L-9", "events_applied")) &&
           ds_clock_mono_ms() < end)
        ds_clock_sleep_ms(200);
    assert_non_null(ev); /* long before the 60 s interval */
    assert_string_equal(ev, "1");
    free(ev);
    char *tier = ds_h_hget(&env, "wb:{acct:A-10}:lead:L-9", "tier");
    assert_string_equal(tier, "LEARNING");
    free(tier);

    /* a later flush rewrites every field that changed since the last one
     * (fields that did not change are not sent again): the lead's tier and
     * furthest stage, the account's counts */
    const char *lkey = "wb:{acct:A-10}:lead:L-9";
    send_flushed(p, ma("wb4", T0 + 3000, "L-9", DS_MA_DIAGNOSTIC_COMPLETED, "c-conf", "I1",
                       DS_CS_CONFRONT),
                 "2");
    static const char *const want[][2] = {{"tier", "CONFRONTED"},
                                          {"top_insight", "I1"},
                                          {"furthest_stage", "CONFRONT"},
                                          {"lead_id", "L-9"},
                                          {"account_id", "A-10"}};
    ds_h_expect_hash(&env, lkey, want, sizeof(want) / sizeof(want[0]));
    /* the lead's points and reasons go only when they change: a value
     * edited by hand stays while an event moves no score (events_applied
     * still goes), and the next event that moves one rewrites it */
    freeReplyObject(ds_h_redis(&env, "HSET %s confront hand", lkey));
    send_flushed(p, ma("wb5", T0 + 4000, "L-9", DS_MA_CONTENT_VIEWED, "c-nostage", NULL, DS_NONE),
                 "3");
    char *hand = ds_h_hget(&env, lkey, "confront");
    assert_string_equal(hand, "hand");
    free(hand);
    send_flushed(p, ma("wb6", T0 + 5000, "L-9", DS_MA_CONTENT_COMPLETED, "c-conf2", "I2",
                       DS_CS_CONFRONT),
                 "4");
    hand = ds_h_hget(&env, lkey, "confront");
    assert_non_null(hand);
    assert_string_not_equal(hand, "hand");
    assert_true(strtod(hand, NULL) > 0);
    free(hand);
    ds_h_expect_hget(&env, "wb:{acct:A-10}", "confronted_stakeholders", "1", 20000);
    assert_true(ds_h_wait_group(&env, "it-wb-2", "wb.events", 20000));
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 10000), 0);
    rd_kafka_destroy(p);
}

/* Three events of lead L-<tag> in account A-<tag>, each waited for in
 * Redis (its events_applied), disturb(i) run before the i-th. */
static void three_events(rd_kafka_t *p, const char *tag, int64_t t, void (*disturb)(int i)) {
    char lead[16], acct[16], lkey[64], id[16];
    snprintf(lead, sizeof(lead), "L-%s", tag);
    snprintf(acct, sizeof(acct), "A-%s", tag);
    snprintf(lkey, sizeof(lkey), "wb:{acct:%s}:lead:%s", acct, lead);
    for (int i = 1; i <= 3; i++) {
        disturb(i);
        snprintf(id, sizeof(id), "%s%d", tag, i);
        ds_ma_event_t e = ma(id, t + i, lead, DS_MA_CONTENT_VIEWED, "c-spark", "I1", DS_CS_SPARK);
        e.account_id = acct;
        ds_h_send_ma(p, "wb.events", &e);
        ds_h_flush(p);
        char want[4];
        snprintf(want, sizeof(want), "%d", i);
        ds_h_expect_hget(&env, lkey, "events_applied", want, 30000);
    }
}

static void restart_redis_before_2nd(int i) {
    if (i == 2) {
        ds_h_stop_redis(&env);
        ds_h_restart_redis(&env);
    }
}

/* Redis restarts empty (no persistence in this test): once the scorer has
 * reconnected, the next write of a hash is complete again, although the
 * lead's tier and ids did not change (fields are otherwise sent only when
 * they change).  The first write after the restart goes to a new
 * connection. */
static void test_full_write_after_redis_restart(void **state) {
    (void)state;
    pid_t scorer = start_scorer_wb("it-rr", "1");
    rd_kafka_t *p = ds_h_producer(&env);
    three_events(p, "R", T0 + 5000, restart_redis_before_2nd);
    static const char *const fields[][2] = {
        {"lead_id", "L-R"}, {"account_id", "A-R"}, {"tier", NULL}, {"furthest_stage", NULL}};
    ds_h_expect_hash(&env, "wb:{acct:A-R}:lead:L-R", fields, sizeof(fields) / sizeof(fields[0]));
    ds_h_expect_hget(&env, "wb:{acct:A-R}", "engaged_stakeholders", "1", 0);
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 10000), 0);
    rd_kafka_destroy(p);
}

static void flush_scripts_after_1st(int i) {
    if (i > 1)
        freeReplyObject(ds_h_redis(&env, "SCRIPT FLUSH"));
}

/* The scorer writes through its Lua script: scripts flushed under its live
 * connection (NOSCRIPT) cost a retry on a new connection, which loads the
 * script again; nothing is lost and the worker goes on. */
static void test_scripts_flushed(void **state) {
    (void)state;
    pid_t scorer = start_scorer_wb("it-sf", "1");
    rd_kafka_t *p = ds_h_producer(&env);
    three_events(p, "S", T0 + 9000, flush_scripts_after_1st);
    ds_h_expect_hget(&env, "wb:{acct:A-S}:lead:L-S", "lead_id", "L-S", 0);
    ds_h_expect_hget(&env, "wb:{acct:A-S}", "engaged_stakeholders", "1", 0);
    assert_true(ds_h_wait_group(&env, "it-sf", "wb.events", 20000));
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 10000), 0);
    rd_kafka_destroy(p);
}

/* Redis's count of HSET calls so far (INFO commandstats). */
static long long hset_calls(void) {
    redisReply *r = ds_h_redis(&env, "INFO commandstats");
    assert_non_null(r);
    const char *c = r->str ? strstr(r->str, "cmdstat_hset:calls=") : NULL;
    long long n = c ? strtoll(c + strlen("cmdstat_hset:calls="), NULL, 10) : 0;
    freeReplyObject(r);
    return n;
}

/* Write-behind windows over a backlog: with redis.flush_ms 20000 the
 * backlog (3,000 events in batches of 100, applied within a second of the
 * group join, itself ~3 s) falls in one window, or two when the join was
 * slow, and the worker writes it at once after a tenth of the interval
 * (2 s) without a message, long before the interval is over.
 * With `flush_ms` "0" every batch writes its changes. */
static long long run_backlog(const char *name, const char *flush_ms) {
    char topic[64], prefix[32], group[64];
    snprintf(topic, sizeof(topic), "%s.events", name);
    snprintf(prefix, sizeof(prefix), "%s:", name);
    snprintf(group, sizeof(group), "it-%s", name);
    enum { EVENTS = 3000, LEADS = 3 };
    rd_kafka_t *p = ds_h_producer(&env);
    char id[32], lead[16];
    for (int i = 0; i < EVENTS; i++) {
        snprintf(id, sizeof(id), "%s-%d", name, i);
        snprintf(lead, sizeof(lead), "L-%d", i % LEADS);
        /* 8 days apart: outside the repeat window, every event counts */
        ds_ma_event_t e = ma(id, T0 + (int64_t)i * 8 * DS_DAY, lead, DS_MA_CONTENT_VIEWED,
                             "c-spark", "I1", DS_CS_SPARK);
        e.account_id = "A-C";
        ds_h_send_ma(p, topic, &e);
    }
    ds_h_flush(p);
    rd_kafka_destroy(p);
    long long before = hset_calls();
    int64_t t0 = ds_clock_mono_ms();
    pid_t scorer = start_scorer_named(name, group, "100", flush_ms, "10000000");
    char key[64], want[16];
    snprintf(want, sizeof(want), "%d", EVENTS / LEADS);
    for (int l = 0; l < LEADS; l++) {
        snprintf(key, sizeof(key), "%s{acct:A-C}:lead:L-%d", prefix, l);
        ds_h_expect_hget(&env, key, "events_applied", want, 30000);
    }
    assert_true(ds_clock_mono_ms() - t0 < 15000); /* idle: not held for the interval */
    /* the offsets follow the state: committed once it is written */
    assert_true(ds_h_wait_group(&env, group, topic, 20000));
    long long calls = hset_calls() - before;
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 10000), 0);
    return calls;
}

static void test_windows_coalesce_writes(void **state) {
    (void)state;
    long long every = run_backlog("cw0", "0");
    long long windowed = run_backlog("cw1", "20000");
    fprintf(stderr, "  HSET calls for 3,000 events in batches of 100: %lld writing every "
                    "batch, %lld in one window\n",
            every, windowed);
    /* every batch writes the account and its lead: 30 batches, 60 HSETs at
     * least; a window writes the account and its 3 leads once */
    assert_true(every >= 60);
    assert_true(windowed <= 8);
}

static double window_seconds(const char *addr) {
    char *body = NULL;
    double v = -1;
    if (ds_h_http_get(addr, "/metrics", &body) == 200)
        v = ds_h_metric(body, "dealsignal_write_window_seconds{worker=\"scorer\"}");
    free(body);
    return v;
}

/* A scorer of its own: group it-NAME on NAME.events, writing NAME.lead.scores
 * and NAME.account.scores and keys under NAME:, with /metrics on `metrics`,
 * `extra` (NULL-terminated, may be NULL) added. */
static pid_t start_scorer_on(const char *name, const char *metrics, const char *const *extra) {
    static char group[64], in[64], leads[64], accounts[64], prefix[64];
    snprintf(group, sizeof(group), "it-%s", name);
    snprintf(in, sizeof(in), "%s.events", name);
    snprintf(leads, sizeof(leads), "%s.lead.scores", name);
    snprintf(accounts, sizeof(accounts), "%s.account.scores", name);
    snprintf(prefix, sizeof(prefix), "%s:", name);
    ds_h_args_t a;
    a.n = 0;
    ds_h_args_add(&a, "scorer", "--brokers", env.brokers, "--redis", env.redis_url, "--group-id",
                  group, "--schemas", getenv("DS_SCHEMAS_DIR"), "--clock", "event",
                  "--topic-marketing", in, "--topic-lead-scores", leads, "--topic-account-scores",
                  accounts, "--redis-prefix", prefix, "--metrics-addr", metrics, NULL);
    for (size_t i = 0; extra && extra[i]; i++)
        ds_h_args_add(&a, extra[i], NULL);
    return ds_h_spawn(logfile, a.v);
}

/* Behind its input the write-behind interval is half the lag, up to
 * redis.flush_max_ms.  A backlog of messages stamped an hour ago, read by
 * a scorer taking one message a batch (so that more are waiting while it
 * reads them), makes it 4 s; the scorer reads the backlog in a fraction
 * of a second, so the gauge is read every 2 ms.  A last message
 * stamped an hour ago too, with nothing waiting after it, is not behind:
 * redis.flush_ms again (the case of producers that stamp messages with
 * their old event times).  The state of every message is written. */
static void test_window_follows_lag(void **state) {
    (void)state;
    enum { BACKLOG = 20000, LEADS = 100 };
    rd_kafka_t *p = ds_h_producer(&env);
    char id[32], lead[16];
    for (int n = 0; n < BACKLOG; n++) {
        snprintf(id, sizeof(id), "wl-%d", n);
        snprintf(lead, sizeof(lead), "L-%d", n % LEADS);
        ds_ma_event_t e = ma(id, T0 + n, lead, DS_MA_CONTENT_VIEWED, "c-spark", "I1", DS_CS_SPARK);
        ds_h_send_ma_at(p, "wl.events", &e, ds_clock_now_ms() - 3600 * 1000);
    }
    ds_h_flush(p);
    char metrics[64];
    snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", ds_h_free_port());
    const char *extra[] = {"--batch-size", "1", "--redis-flush-ms", "1000", "--redis-flush-max-ms",
                           "4000",         NULL};
    pid_t scorer = start_scorer_on("wl", metrics, extra);
    double v = -1;
    for (int64_t t0 = ds_clock_mono_ms(); v != 4.0 && ds_clock_mono_ms() - t0 < 30000;
         ds_clock_sleep_ms(2)) /* often, not busily: other tests share the cores */
        v = window_seconds(metrics);
    assert_true(v == 4.0);
    ds_ma_event_t e =
        ma("wl-last", T0 + BACKLOG, "L-last", DS_MA_CONTENT_VIEWED, "c-spark", "I1", DS_CS_SPARK);
    ds_h_send_ma_at(p, "wl.events", &e, ds_clock_now_ms() - 3600 * 1000);
    ds_h_flush(p);
    ds_h_expect_hget(&env, "wl:{acct:A-1}:lead:L-last", "events_applied", "1", 60000);
    char want[16];
    snprintf(want, sizeof(want), "%d", BACKLOG / LEADS);
    ds_h_expect_hget(&env, "wl:{acct:A-1}:lead:L-0", "events_applied", want, 0);
    for (int64_t t0 = ds_clock_mono_ms(); v != 1.0 && ds_clock_mono_ms() - t0 < 15000;
         ds_clock_sleep_ms(50))
        v = window_seconds(metrics);
    assert_true(v == 1.0);
    rd_kafka_destroy(p);
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 10000), 0);
}

/* `events` events to NAME.events for each of `accounts` accounts
 * <acct>-<a>, each with one lead L-<a>. */
static void send_accounts(const char *name, const char *acct, int accounts, int events) {
    rd_kafka_t *p = ds_h_producer(&env);
    char id[48], lead[16], a_id[32], topic[64];
    snprintf(topic, sizeof(topic), "%s.events", name);
    for (int a = 0; a < accounts; a++)
        for (int n = 0; n < events; n++) {
            snprintf(id, sizeof(id), "%s-%d-%d", name, a, n);
            snprintf(lead, sizeof(lead), "L-%d", a);
            snprintf(a_id, sizeof(a_id), "%s-%d", acct, a);
            ds_ma_event_t e =
                ds_h_ma(id, T0 + n, lead, a_id, DS_MA_CONTENT_VIEWED, "c-spark", "I1", DS_CS_SPARK);
            ds_h_send_ma(p, topic, &e);
        }
    ds_h_flush(p);
    rd_kafka_destroy(p);
}

/* Every lead send_accounts wrote to has applied its `events` events. */
static void expect_applied(const char *name, const char *acct, int accounts, int events) {
    char want[16], key[96];
    snprintf(want, sizeof(want), "%d", events);
    for (int a = 0; a < accounts; a++) {
        snprintf(key, sizeof(key), "%s:{acct:%s-%d}:lead:L-%d", name, acct, a, a);
        ds_h_expect_hget(&env, key, "events_applied", want, 60000);
    }
}

/* A partition the client stops fetching (DS_TEST_STALL_PARTITION pauses
 * partition 1 in librdkafka behind the worker's back) is found by the
 * statistics once its position has not moved for the stall time (3 s
 * here) while records wait, and fetched again from there: every event is
 * applied once, and the log and the counter say so. */
static void test_stalled_partition_fetched_again(void **state) {
    (void)state;
    enum { ACCOUNTS = 16, EVENTS = 20 };
    send_accounts("fw", "FA", ACCOUNTS, EVENTS);
    char metrics[64];
    snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", ds_h_free_port());
    setenv("DS_TEST_STALL_PARTITION", "1:3000", 1);
    pid_t scorer = start_scorer_on("fw", metrics, NULL);
    unsetenv("DS_TEST_STALL_PARTITION");
    expect_applied("fw", "FA", ACCOUNTS, EVENTS);
    assert_true(ds_h_log_count(logfile, "paused in the client") > 0);
    assert_true(ds_h_log_count(logfile, "fetching it again from its position") > 0);
    char *body = NULL;
    assert_int_equal(ds_h_http_get(metrics, "/metrics", &body), 200);
    assert_true(ds_h_metric(body, "dealsignal_partition_refetches_total{worker=\"scorer\"}") >= 1);
    free(body);
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 10000), 0);
}

/* threads: 3: three scorers in one process, in one group, share the
 * partitions as processes would.  Once they have joined, the events of 24
 * accounts over 6 partitions are each applied once, at least two threads
 * consume some of them, every worker series carries its thread (none
 * without), the three threads' counts add up, every DLQ code's series is
 * there at 0 before any bad record, and SIGTERM stops all of them (exit
 * 0). */
static void test_threads_share_partitions(void **state) {
    (void)state;
    enum { ACCOUNTS = 24, EVENTS = 10 };
    ds_h_create_topic(&env, "th.events", 6);
    char metrics[64];
    snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", ds_h_free_port());
    const char *extra[] = {"--threads", "3", NULL};
    pid_t scorer = start_scorer_on("th", metrics, extra);
    ds_clock_sleep_ms(5000); /* all three in the group */
    send_accounts("th", "TA", ACCOUNTS, EVENTS);
    expect_applied("th", "TA", ACCOUNTS, EVENTS);
    double per[3] = {0}, sum = 0, leads = 0;
    char *body = NULL;
    for (int64_t t0 = ds_clock_mono_ms(); sum < ACCOUNTS * EVENTS && ds_clock_mono_ms() - t0 < 30000;
         ds_clock_sleep_ms(200)) { /* counted once the offsets are stored */
        free(body);
        body = NULL;
        assert_int_equal(ds_h_http_get(metrics, "/metrics", &body), 200);
        sum = leads = 0;
        for (int t = 0; t < 3; t++) {
            char series[96];
            snprintf(series, sizeof(series),
                     "dealsignal_consumed_records_total{worker=\"scorer\",thread=\"%d\"}", t + 1);
            sum += per[t] = ds_h_metric(body, series);
            snprintf(series, sizeof(series),
                     "dealsignal_tracked_leads{worker=\"scorer\",thread=\"%d\"}", t + 1);
            leads += ds_h_metric(body, series);
        }
    }
    fprintf(stderr, "  consumed by thread: %.0f %.0f %.0f; leads tracked %.0f\n", per[0], per[1],
            per[2], leads);
    assert_true(sum == ACCOUNTS * EVENTS);
    assert_true(leads == ACCOUNTS);
    assert_true((per[0] > 0) + (per[1] > 0) + (per[2] > 0) >= 2);
    assert_true(ds_h_metric(body, "dealsignal_consumed_records_total{worker=\"scorer\"}") < 0);
    /* every DLQ code's series is there before any bad record, at 0 */
    assert_true(ds_h_metric(body, "dealsignal_dlq_records_total{worker=\"scorer\",thread=\"2\","
                                  "reason=\"invalid_time\"}") == 0);
    free(body);
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 15000), 0);
}

/* More threads than partitions (3 on 2): the thread left without any
 * has no work, as a process left without partitions, and does not hold
 * the process back: /readyz turns 200 once the others have theirs, and
 * their events are applied. */
static void test_threads_more_than_partitions(void **state) {
    (void)state;
    ds_h_create_topic(&env, "tm.events", 2);
    char metrics[64];
    snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", ds_h_free_port());
    const char *extra[] = {"--threads", "3", NULL};
    pid_t scorer = start_scorer_on("tm", metrics, extra);
    long st = 0;
    char *why = NULL;
    for (int64_t t0 = ds_clock_mono_ms(); st != 200 && ds_clock_mono_ms() - t0 < 30000;
         ds_clock_sleep_ms(200)) {
        free(why);
        why = NULL;
        st = ds_h_http_get(metrics, "/readyz", &why);
    }
    fprintf(stderr, "  3 threads on 2 partitions: /readyz %ld %s\n", st, why ? why : "");
    free(why);
    assert_int_equal(st, 200);
    send_accounts("tm", "MA", 4, 3);
    expect_applied("tm", "MA", 4, 3);
    assert_int_equal(ds_h_stop(scorer, SIGTERM, 15000), 0);
}

/* The output topics' metadata, fetched before the first batch: known for
 * topics the broker has, not when no broker answers. */
static void test_warm_topics(void **state) {
    (void)state;
    rd_kafka_t *p = ds_h_producer(&env);
    const char *topics[] = {"lead.scores", "account.scores"};
    assert_true(ds_kafka_warm_topics(p, topics, 2, 10000));
    rd_kafka_destroy(p);
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char e[256];
    char nobody[64];
    snprintf(nobody, sizeof(nobody), "127.0.0.1:%d", ds_h_free_port());
    assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", nobody, e, sizeof(e)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *q = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
    assert_non_null(q);
    assert_false(ds_kafka_warm_topics(q, topics, 1, 300));
    rd_kafka_destroy(q);
}

int main(void) {
    snprintf(logfile, sizeof(logfile), "%s/test_scorer_it.log",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warm_topics),
        cmocka_unit_test(test_scorer_end_to_end),
        cmocka_unit_test(test_write_behind_flush),
        cmocka_unit_test(test_full_write_after_redis_restart),
        cmocka_unit_test(test_scripts_flushed),
        cmocka_unit_test(test_windows_coalesce_writes),
        cmocka_unit_test(test_window_follows_lag),
        cmocka_unit_test(test_stalled_partition_fetched_again),
        cmocka_unit_test(test_threads_share_partitions),
        cmocka_unit_test(test_threads_more_than_partitions),
    };
    return ds_h_main(&env, 2, tests, sizeof(tests) / sizeof(tests[0]));
}
