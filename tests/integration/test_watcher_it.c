/*
 * test_watcher_it.c — the watcher end to end under both clocks: the broker
 * process, a private redis-server and the dealsignal binary.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "harness.h"

static ds_h_env_t env;
static const int64_t T0 = 1700000000000LL;
static char logfile[256] = "/tmp/test_watcher_it.log";

static ds_crm_event_t crm(const char *id, const char *deal, int64_t t, int type) {
    ds_crm_event_t e;
    memset(&e, 0, sizeof(e));
    e.event_id = id;
    e.deal_id = deal;
    e.account_id = "A-9";
    e.occurred_at = t;
    e.type = type;
    e.stage = DS_NONE;
    e.contact_role = DS_NONE;
    e.owner_id = "rep-1";
    return e;
}

/* A watcher consuming `topic`; its alerts to `alerts` (NULL: deal.alerts). */
static pid_t start_watcher_to(const char *group, const char *clock, const char *rules,
                              const char *topic, const char *alerts) {
    const char *args[] = {"watcher", "--brokers", env.brokers, "--redis", env.redis_url,
                          "--group-id", group, "--schemas", getenv("DS_SCHEMAS_DIR"),
                          "--clock", clock, "--topic-crm", topic, "--rules", rules,
                          "--check-interval-ms", "100", "--topic-alerts",
                          alerts ? alerts : "deal.alerts", NULL};
    return ds_h_spawn(logfile, args);
}

static pid_t start_watcher(const char *group, const char *clock, const char *rules,
                           const char *topic) {
    return start_watcher_to(group, clock, rules, topic, NULL);
}

/* The alerts a watcher wrote: the records read (nrecs) and the first n
 * of them decoded. */
typedef struct alerts {
    ds_deal_alert_t a[32];
    size_t n, nrecs;
    ds_arena_t arena;
    ds_h_record_t *recs;
} alerts_t;

/* Reads at most want records of topic (timeout_ms), stops watcher w (it
 * must exit 0 within 10 s) and decodes them into al, which owns them until
 * alerts_free.  Returns how many were read. */
static size_t read_alerts(pid_t w, const char *topic, size_t want, int timeout_ms, alerts_t *al) {
    al->nrecs = ds_h_consume(&env, topic, want, timeout_ms, &al->recs);
    assert_int_equal(ds_h_stop(w, SIGTERM, 10000), 0);
    ds_arena_init(&al->arena, 0);
    al->n = al->nrecs < 32 ? al->nrecs : 32;
    ds_h_decode_all(DS_H_DEAL_ALERT, al->recs, al->n, &al->arena, al->a);
    return al->nrecs;
}

static void alerts_free(alerts_t *al) {
    ds_arena_free(&al->arena);
    ds_h_records_free(al->recs, al->nrecs);
}

static void expect(const ds_deal_alert_t *a, const char *deal, int kind, int state, int level) {
    assert_string_equal(a->deal_id, deal);
    assert_int_equal(a->kind, kind);
    assert_int_equal(a->state, state);
    assert_int_equal(a->level, level);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The path of a rules file with the defaults (written again at each call). */
static const char *default_rules(void) {
    static char path[300];
    snprintf(path, sizeof(path), "%s/rules-default.yaml", env.tmpdir);
    write_file(path, "{}\n");
    return path;
}

static void test_event_clock_lifecycle(void **state) {
    (void)state;
    const char *rules = default_rules();
    rd_kafka_t *p = ds_h_producer(&env);
    ds_crm_event_t e = crm("c1", "D-1", T0, DS_CRM_DEAL_OPENED);
    e.stage = DS_PS_RECOGNIZE_NEED;
    ds_h_send_crm(p, "crm.events", &e);
    for (int i = 1; i <= 3; i++) {
        char id[8];
        snprintf(id, sizeof(id), "s%d", i);
        e = crm(strdup(id), "D-1", T0 + i * DS_DAY, DS_CRM_SELLER_ACTIVITY);
        e.activity = "email";
        ds_h_send_crm(p, "crm.events", &e);
        free((char *)e.event_id);
    }
    e = crm("c5", "D-1", T0 + 4 * DS_DAY, DS_CRM_STAGE_CHANGED);
    e.stage = DS_PS_DEFINE_CRITERIA; /* the rep jumps two stages */
    ds_h_send_crm(p, "crm.events", &e);
    e = crm("c6", "D-2", T0 + 20 * DS_DAY, DS_CRM_DEAL_OPENED);
    ds_h_send_crm(p, "crm.events", &e); /* moves the watermark 20 days on */
    e = crm("c7", "D-1", T0 + 20 * DS_DAY, DS_CRM_BUYER_SIGNAL);
    e.signal = "live_call_accepted";
    e.contact_id = "L-5";
    e.contact_role = DS_ROLE_MOBILIZER;
    ds_h_send_crm(p, "crm.events", &e);
    ds_h_send_crm(p, "crm.events", &e); /* duplicate: applied once */
    e = crm("c8", "D-1", T0 + 21 * DS_DAY, DS_CRM_DEAL_WON);
    ds_h_send_crm(p, "crm.events", &e);
    e = crm("c9", "D-1", T0 + 22 * DS_DAY, DS_CRM_SELLER_ACTIVITY);
    ds_h_send_crm(p, "crm.events", &e); /* after close: ignored */
    ds_h_flush(p);
    rd_kafka_destroy(p);

    pid_t w = start_watcher("it-watch-event", "event", rules, "crm.events");
    alerts_t al;
    assert_int_equal(read_alerts(w, "deal.alerts", 12, 60000, &al), 11);
    /* three seller actions unanswered at day 3 */
    expect(&al.a[0], "D-1", DS_AK_ONE_SIDED, DS_AS_OPEN, 1);
    assert_int_equal(al.a[0].raised_at, T0 + 3 * DS_DAY);
    assert_int_equal(al.a[0].unanswered_seller_actions, 3);
    /* day 4: reported DEFINE_CRITERIA, verified RECOGNIZE_NEED, no mobilizer */
    expect(&al.a[1], "D-1", DS_AK_UNVERIFIED_STAGE, DS_AS_OPEN, 1);
    assert_int_equal(al.a[1].reported_stage, DS_PS_DEFINE_CRITERIA);
    assert_int_equal(al.a[1].verified_stage, DS_PS_RECOGNIZE_NEED);
    assert_int_equal(al.a[1].missing_verifiers_count, 1);
    assert_string_equal(al.a[1].missing_verifiers[0], "live_call_accepted");
    expect(&al.a[2], "D-1", DS_AK_NO_MOBILIZER, DS_AS_OPEN, 1);
    /* day 20 (D-2's event moves the watermark): quiet 20 > 14 days, and
     * reminders for the alerts open for ≥ 7 days, in AlertKind order */
    expect(&al.a[3], "D-1", DS_AK_NO_BUYER_SIGNAL, DS_AS_OPEN, 1);
    assert_int_equal(al.a[3].raised_at, T0 + 20 * DS_DAY);
    assert_float_equal(al.a[3].quiet_days, 20.0, 1e-9);
    assert_string_equal(al.a[3].owner_id, "rep-1");
    assert_true(strstr(al.a[3].message, "D-1") != NULL);
    expect(&al.a[4], "D-1", DS_AK_ONE_SIDED, DS_AS_REMINDER, 2);
    expect(&al.a[5], "D-1", DS_AK_UNVERIFIED_STAGE, DS_AS_REMINDER, 2);
    expect(&al.a[6], "D-1", DS_AK_NO_MOBILIZER, DS_AS_REMINDER, 2);
    /* the buyer signal from a mobilizer resolves three of them */
    expect(&al.a[7], "D-1", DS_AK_NO_BUYER_SIGNAL, DS_AS_RESOLVED, 1);
    expect(&al.a[8], "D-1", DS_AK_ONE_SIDED, DS_AS_RESOLVED, 2);
    expect(&al.a[9], "D-1", DS_AK_NO_MOBILIZER, DS_AS_RESOLVED, 2);
    /* won: the rest resolves */
    expect(&al.a[10], "D-1", DS_AK_UNVERIFIED_STAGE, DS_AS_RESOLVED, 2);
    assert_string_equal(al.a[0].alert_id, "D-1:ONE_SIDED:1:OPEN:1");
    assert_string_equal(ds_h_header(&al.recs[0], "dealsignal.id"), al.a[0].alert_id);
    alerts_free(&al);
    ds_h_expect_hget(&env, "ds:{deal:D-1}", "state", "won", 10000);
    ds_h_expect_hget(&env, "ds:{deal:D-1}", "unanswered_seller_actions", "0", 10000);
}

static void test_wall_clock_fires_without_events_and_after_restart(void **state) {
    (void)state;
    char rules[300];
    snprintf(rules, sizeof(rules), "%s/rules-wall.yaml", env.tmpdir);
    /* quiet after 2 s, reminders every 4 s */
    write_file(rules, "stall:\n"
                      "  renotify_days: 0.0000463\n"
                      "  stages:\n"
                      "    RECOGNIZE_NEED: {max_quiet_days: 0.0000231}\n");
    ds_h_broker_ctl(&env, "create-topic crm.wall 1");
    rd_kafka_t *p = ds_h_producer(&env);
    ds_crm_event_t e = crm("w1", "D-W", ds_clock_now_ms(), DS_CRM_DEAL_OPENED);
    e.account_id = "A-W";
    ds_h_send_crm(p, "crm.wall", &e);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    pid_t w = start_watcher("it-watch-wall", "wall", rules, "crm.wall");
    /* no further event arrives: the clock check alone opens the alert */
    alerts_t al;
    read_alerts(w, "deal.alerts", 12, 30000, &al);
    size_t found = 0;
    for (size_t i = 0; i < al.n; i++)
        if (!strcmp(al.a[i].deal_id, "D-W"))
            found++;
    assert_true(found >= 1);
    alerts_free(&al);
    /* down for longer than the reminder interval: the reminder fires at
     * once after the restart, from the deadline index in Redis */
    ds_clock_sleep_ms(5000);
    int64_t restarted = ds_clock_now_ms();
    w = start_watcher("it-watch-wall", "wall", rules, "crm.wall");
    read_alerts(w, "deal.alerts", 14, 15000, &al);
    bool reminder = false;
    for (size_t i = 0; i < al.n; i++) {
        if (strcmp(al.a[i].deal_id, "D-W") || al.a[i].state != DS_AS_REMINDER)
            continue;
        assert_int_equal(al.a[i].kind, DS_AK_NO_BUYER_SIGNAL);
        assert_true(al.a[i].level >= 2);
        if (al.a[i].raised_at >= restarted && al.a[i].raised_at < restarted + 8000)
            reminder = true;
    }
    assert_true(reminder);
    alerts_free(&al);
}

/* A stakeholder whose LeadScore tier in the scorer's Redis state is
 * MOBILIZER counts as the deal's mobilizer (issue: "read from the scorer's
 * state in Redis"); one of another tier does not. */
static void test_mobilizer_from_scorer_tier(void **state) {
    (void)state;
    const char *rules = default_rules();
    /* what the scorer stores for two leads of account A-M */
    freeReplyObject(ds_h_redis(&env, "HSET ds:{acct:A-M}:lead:L-M lead_id L-M tier MOBILIZER"));
    freeReplyObject(ds_h_redis(&env, "HSET ds:{acct:A-M}:lead:L-T lead_id L-T tier CONFRONTED"));
    ds_h_broker_ctl(&env, "create-topic crm.mob 1");
    ds_h_broker_ctl(&env, "create-topic alerts.mob 1");
    rd_kafka_t *p = ds_h_producer(&env);
    const char *deals[] = {"D-M", "D-T"}, *leads[] = {"L-M", "L-T"};
    for (int i = 0; i < 2; i++) {
        char id1[16], id2[16];
        snprintf(id1, sizeof(id1), "m%d-open", i);
        snprintf(id2, sizeof(id2), "m%d-add", i);
        ds_crm_event_t e = crm(id1, deals[i], T0, DS_CRM_DEAL_OPENED);
        e.account_id = "A-M";
        e.stage = DS_PS_DEFINE_CRITERIA; /* a mobilizer is required from here */
        ds_h_send_crm(p, "crm.mob", &e);
        e = crm(id2, deals[i], T0 + 3600000, DS_CRM_STAKEHOLDER_ADDED);
        e.account_id = "A-M";
        e.contact_id = leads[i];
        e.contact_role = DS_ROLE_UNKNOWN; /* the CRM does not know */
        ds_h_send_crm(p, "crm.mob", &e);
    }
    ds_h_flush(p);
    rd_kafka_destroy(p);
    pid_t w = start_watcher_to("it-watch-mob", "event", rules, "crm.mob", "alerts.mob");
    /* D-M: UNVERIFIED_STAGE and NO_MOBILIZER open, NO_MOBILIZER resolved;
     * D-T: both open */
    alerts_t al;
    size_t n = read_alerts(w, "alerts.mob", 5, 30000, &al);
    int m_resolved = 0, t_open = 0, t_resolved = 0;
    for (size_t i = 0; i < al.n; i++) {
        if (al.a[i].kind != DS_AK_NO_MOBILIZER)
            continue;
        if (!strcmp(al.a[i].deal_id, "D-M") && al.a[i].state == DS_AS_RESOLVED)
            m_resolved++;
        if (!strcmp(al.a[i].deal_id, "D-T")) {
            if (al.a[i].state == DS_AS_RESOLVED)
                t_resolved++;
            else
                t_open++;
        }
    }
    assert_int_equal(n, 5);
    assert_int_equal(m_resolved, 1);
    assert_int_equal(t_open, 1);
    assert_int_equal(t_resolved, 0);
    ds_h_expect_hget(&env, "ds:{deal:D-M}", "mobilizer_known", NULL, 10000);
    alerts_free(&al);
}

/* A seller action on deal `deal` after its two alerts (UNVERIFIED_STAGE,
 * NO_MOBILIZER) opened, once a stakeholder became a MOBILIZER: its
 * evaluation resolves NO_MOBILIZER.  Stops watcher w; destroys p. */
static void seller_then_resolved(pid_t w, rd_kafka_t *p, const char *id, const char *deal,
                                 const char *acct, int64_t t, const char *in, const char *out) {
    ds_crm_event_t e = crm(id, deal, t, DS_CRM_SELLER_ACTIVITY);
    e.account_id = acct;
    ds_h_send_crm(p, in, &e);
    ds_h_flush(p);
    alerts_t al;
    size_t n = read_alerts(w, out, 3, 30000, &al);
    rd_kafka_destroy(p);
    assert_int_equal(n, 3);
    expect(&al.a[2], deal, DS_AK_NO_MOBILIZER, DS_AS_RESOLVED, 1);
    alerts_free(&al);
}

/* A stakeholder's tier is read when the deal is evaluated: one written
 * between two batches (here by hand, as the scorer would) is seen by the
 * next evaluation, not the one read for the batch before. */
static void test_tier_change_seen_by_next_batch(void **state) {
    (void)state;
    const char *rules = default_rules();
    freeReplyObject(ds_h_redis(&env, "HSET ds:{acct:A-K}:lead:L-K lead_id L-K tier CONFRONTED"));
    ds_h_broker_ctl(&env, "create-topic crm.tier 1");
    ds_h_broker_ctl(&env, "create-topic alerts.tier 1");
    pid_t w = start_watcher_to("it-watch-tier", "event", rules, "crm.tier", "alerts.tier");
    rd_kafka_t *p = ds_h_producer(&env);
    ds_crm_event_t e = crm("k-open", "D-K", T0, DS_CRM_DEAL_OPENED);
    e.account_id = "A-K";
    e.stage = DS_PS_DEFINE_CRITERIA;
    ds_h_send_crm(p, "crm.tier", &e);
    e = crm("k-add", "D-K", T0 + 3600000, DS_CRM_STAKEHOLDER_ADDED);
    e.account_id = "A-K";
    e.contact_id = "L-K";
    e.contact_role = DS_ROLE_UNKNOWN;
    ds_h_send_crm(p, "crm.tier", &e);
    ds_h_flush(p);
    /* UNVERIFIED_STAGE and NO_MOBILIZER open */
    ds_h_expect_records(&env, "alerts.tier", 2, 30000, 2);
    /* the scorer's tier of L-K becomes MOBILIZER; the deal's next event
     * (a batch of its own) sees it */
    freeReplyObject(ds_h_redis(&env, "HSET ds:{acct:A-K}:lead:L-K tier MOBILIZER"));
    seller_then_resolved(w, p, "k-s1", "D-K", "A-K", T0 + 2 * 3600000, "crm.tier", "alerts.tier");
}

/* Calls of Redis command `cmd` (lower case) since the last CONFIG
 * RESETSTAT. */
static long cmd_calls(const char *cmd) {
    redisReply *r = ds_h_redis(&env, "INFO commandstats");
    assert_non_null(r);
    char pat[64];
    snprintf(pat, sizeof(pat), "cmdstat_%s:calls=", cmd);
    const char *at = r->str ? strstr(r->str, pat) : NULL;
    long n = at ? atol(at + strlen(pat)) : 0;
    freeReplyObject(r);
    return n;
}

/* A deal of many stakeholders asks its account's mobilizers set once an
 * evaluation, not each stakeholder's tier: what it costs follows the
 * account's few mobilizers, not the deal's size.  The set says what the
 * tiers say (the scorer writes both in one write; here by hand). */
static void test_mobilizer_of_a_large_deal(void **state) {
    (void)state;
    const char *rules = default_rules();
    enum { N = 20 };
    for (int i = 0; i < N; i++)
        freeReplyObject(ds_h_redis(&env, "HSET ds:{acct:A-L}:lead:L-%d tier CONFRONTED", i));
    ds_h_broker_ctl(&env, "create-topic crm.large 1");
    ds_h_broker_ctl(&env, "create-topic alerts.large 1");
    pid_t w = start_watcher_to("it-watch-large", "event", rules, "crm.large", "alerts.large");
    rd_kafka_t *p = ds_h_producer(&env);
    ds_crm_event_t e = crm("l-open", "D-L", T0, DS_CRM_DEAL_OPENED);
    e.account_id = "A-L";
    e.stage = DS_PS_DEFINE_CRITERIA;
    ds_h_send_crm(p, "crm.large", &e);
    for (int i = 0; i < N; i++) {
        char id[16], lead[16];
        snprintf(id, sizeof(id), "l-add-%d", i);
        snprintf(lead, sizeof(lead), "L-%d", i);
        e = crm(id, "D-L", T0 + 60000 * (i + 1), DS_CRM_STAKEHOLDER_ADDED);
        e.account_id = "A-L";
        e.contact_id = lead;
        e.contact_role = DS_ROLE_UNKNOWN;
        ds_h_send_crm(p, "crm.large", &e);
    }
    ds_h_flush(p);
    ds_h_expect_records(&env, "alerts.large", 2, 30000, 2); /* UNVERIFIED_STAGE, NO_MOBILIZER */
    freeReplyObject(ds_h_redis(&env, "CONFIG RESETSTAT"));
    freeReplyObject(ds_h_redis(&env, "HSET ds:{acct:A-L}:lead:L-7 tier MOBILIZER"));
    freeReplyObject(ds_h_redis(&env, "SADD ds:{acct:A-L}:mobilizers L-7"));
    seller_then_resolved(w, p, "l-s1", "D-L", "A-L", T0 + 3600000, "crm.large", "alerts.large");
    long smembers = cmd_calls("smembers"), hget = cmd_calls("hget");
    if (smembers < 1 || hget > 0)
        fprintf(stderr, "smembers %ld, hget %ld\n", smembers, hget);
    assert_true(smembers >= 1);
    assert_int_equal(hget, 0);
}

/* Redis's integer reply to a command. */
static long long redis_int(const char *fmt, const char *key) {
    redisReply *r = ds_h_redis(&env, fmt, key);
    assert_non_null(r);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

/* A deal stored by the version before (tests/fixtures/deal_v2.bin: its
 * record holds its stakeholders C-9, C-7 and the ids x1..x7 of its
 * events; the hash a `stakeholders` field) loads as it is: a repeat of
 * x5 is a duplicate, a new event applies, and the write that follows
 * moves it: the stakeholders set, this version's record (which keeps
 * its few ids), and the old field gone. */
static void test_deal_of_the_version_before(void **state) {
    (void)state;
    const char *rules = default_rules();
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fixtures/deal_v2.bin", getenv("DS_SOURCE_DIR"));
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char blob[4096];
    size_t n = fread(blob, 1, sizeof(blob), f);
    fclose(f);
    assert_int_equal(n, 187);
    const char *key = "ds:{deal:D-1042}";
    freeReplyObject(ds_h_redis(&env, "HSET %s blob %b checkpoint 0:-1 stakeholders C-9,C-7", key,
                               blob, n));
    ds_h_broker_ctl(&env, "create-topic crm.v2 1");
    ds_h_broker_ctl(&env, "create-topic alerts.v2 1");
    rd_kafka_t *p = ds_h_producer(&env);
    const int64_t t0 = 1700000000000LL, hour = 3600000;
    ds_crm_event_t e = crm("x5", "D-1042", t0 + 7 * hour, DS_CRM_STAKEHOLDER_ADDED);
    e.account_id = "A-7";
    e.contact_id = "C-DUP"; /* a repeat: not added */
    ds_h_send_crm(p, "crm.v2", &e);
    e = crm("y1", "D-1042", t0 + 8 * hour, DS_CRM_STAKEHOLDER_ADDED);
    e.account_id = "A-7";
    e.contact_id = "C-8";
    ds_h_send_crm(p, "crm.v2", &e);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    pid_t w = start_watcher_to("it-watch-v2", "event", rules, "crm.v2", "alerts.v2");
    char sk[64];
    snprintf(sk, sizeof(sk), "%s:stakeholders", key);
    long long members = 0;
    for (int i = 0; i < 300 && (members = redis_int("SCARD %s", sk)) < 3; i++)
        ds_clock_sleep_ms(100);
    assert_int_equal(ds_h_stop(w, SIGTERM, 10000), 0);
    assert_int_equal(members, 3);
    static const char *const want[] = {"C-9", "C-7", "C-8"};
    for (size_t i = 0; i < 3; i++) {
        redisReply *r = ds_h_redis(&env, "SISMEMBER %s %s", sk, want[i]);
        assert_int_equal(r->integer, 1);
        freeReplyObject(r);
    }
    char ik[64];
    snprintf(ik, sizeof(ik), "%s:seen", key);
    assert_int_equal(redis_int("EXISTS %s", ik), 0); /* 8 ids: the record holds them */
    redisReply *r = ds_h_redis(&env, "HEXISTS %s stakeholders", key);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = ds_h_redis(&env, "HGET %s blob", key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal((unsigned char)r->str[0], 3); /* this version's record */
    freeReplyObject(r);
    char *applied = ds_h_hget(&env, key, "checkpoint");
    assert_non_null(applied);
    assert_string_equal(applied, "0:1"); /* both read, the last one the checkpoint */
    free(applied);
}

/* Each flush rewrites the deal hash fields whose values changed since the
 * last one, whichever group of fields they are in, and only those. */
static void test_deal_hash_follows_each_flush(void **state) {
    (void)state;
    const char *rules = default_rules();
    ds_h_broker_ctl(&env, "create-topic crm.flush 1");
    ds_h_broker_ctl(&env, "create-topic alerts.flush 1");
    const char *args[] = {"watcher", "--brokers", env.brokers, "--redis", env.redis_url,
                          "--group-id", "it-watch-flush", "--schemas", getenv("DS_SCHEMAS_DIR"),
                          "--clock", "event", "--topic-crm", "crm.flush", "--topic-alerts",
                          "alerts.flush", "--rules", rules, "--redis-flush-entities", "1", NULL};
    pid_t w = ds_h_spawn(logfile, args);
    rd_kafka_t *p = ds_h_producer(&env);
    const char *key = "ds:{deal:D-F}";
    /* one event at a time; after each, the fields it changed */
    struct step {
        int type;
        const char *field, *want;
    } steps[] = {
        {DS_CRM_DEAL_OPENED, "reported_stage", "RECOGNIZE_NEED"},
        {DS_CRM_STAGE_CHANGED, "reported_stage", "DEFINE_CRITERIA"},
        {DS_CRM_SELLER_ACTIVITY, "unanswered_seller_actions", "1"},
        {DS_CRM_BUYER_SIGNAL, "signals", "live_call_accepted=1700000003000"},
        {DS_CRM_DEAL_LOST, "state", "lost"},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        char id[16];
        snprintf(id, sizeof(id), "f%zu", i);
        ds_crm_event_t e = crm(id, "D-F", T0 + (int64_t)i * 1000, steps[i].type);
        if (steps[i].type == DS_CRM_STAGE_CHANGED)
            e.stage = DS_PS_DEFINE_CRITERIA;
        if (steps[i].type == DS_CRM_SELLER_ACTIVITY)
            e.activity = "email";
        if (steps[i].type == DS_CRM_BUYER_SIGNAL) {
            e.signal = "live_call_accepted";
            e.contact_id = "L-F";
        }
        ds_h_send_crm(p, "crm.flush", &e);
        ds_h_flush(p);
        ds_h_expect_hget(&env, key, steps[i].field, steps[i].want, 20000);
    }
    /* the buyer signal answered the seller's action; the identity fields
     * were written once and are still there */
    static const char *const want[][2] = {{"unanswered_seller_actions", "0"},
                                          {"last_buyer_signal_at", "1700000003000"},
                                          {"deal_id", "D-F"},
                                          {"owner_id", "rep-1"},
                                          {"opened_at", "1700000000000"}};
    ds_h_expect_hash(&env, key, want, sizeof(want) / sizeof(want[0]));
    assert_int_equal(ds_h_stop(w, SIGTERM, 10000), 0);
    rd_kafka_destroy(p);
}

DS_H_MAIN(&env, 1, cmocka_unit_test(test_event_clock_lifecycle),
          cmocka_unit_test(test_wall_clock_fires_without_events_and_after_restart),
          cmocka_unit_test(test_mobilizer_from_scorer_tier),
          cmocka_unit_test(test_tier_change_seen_by_next_batch),
          cmocka_unit_test(test_mobilizer_of_a_large_deal),
          cmocka_unit_test(test_deal_of_the_version_before),
          cmocka_unit_test(test_deal_hash_follows_each_flush))
