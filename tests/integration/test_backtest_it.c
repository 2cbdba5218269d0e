/*
 * test_backtest_it.c — `dealsignal backtest` and `dealsignal rules learn`
 * through the binary: the embedded broker, a private redis-server.
 *
 * The same generated stream (4 partitions, shared event clocks) goes
 * through `dealsignal watcher --clock event` and through `dealsignal
 * backtest --json`; the report's counts must be those of the alerts the
 * watcher produced and of the deal states it stored.  `rules learn` on a
 * hand-made stream must learn the hand-computed value and pass `rules
 * check`.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "gen.h"
#include "harness.h"

static ds_h_env_t env;
static const int64_t T0 = 1700000000000LL;
static char logfile[256] = "/tmp/test_backtest_it.log";

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Run $DS_BIN args to completion: stdout to `out`, stderr to the log. */
static int run_to(const char *out, const char *const *args) {
    return ds_h_run_to(out, logfile, true, args);
}

/* True when group has no committed offset on any partition of topic. */
static bool nothing_committed(const char *group, const char *topic, int partitions) {
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char e[256];
    rd_kafka_conf_set(c, "bootstrap.servers", env.brokers, e, sizeof(e));
    rd_kafka_conf_set(c, "group.id", group, e, sizeof(e));
    rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof(e));
    assert_non_null(k);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
    for (int i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    assert_int_equal(rd_kafka_committed(k, l, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    bool none = true;
    for (int i = 0; i < l->cnt; i++)
        none = none && l->elems[i].offset < 0;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(k);
    return none;
}

typedef struct kind_count {
    long opened, won, lost, open;
    char **deals; /* deal ids with an OPEN, each once */
    size_t ndeals;
} kind_count_t;

static bool has(const kind_count_t *k, const char *deal) {
    for (size_t i = 0; i < k->ndeals; i++)
        if (!strcmp(k->deals[i], deal))
            return true;
    return false;
}

static long jint(json_t *o, const char *k1, const char *k2) {
    json_t *v = json_object_get(o, k1);
    if (k2)
        v = json_object_get(v, k2);
    if (!json_is_integer(v))
        fail_msg("JSON: %s.%s is not an integer", k1, k2 ? k2 : "");
    return (long)json_integer_value(v);
}

static void test_backtest_matches_watcher(void **state) {
    (void)state;
    const char *topic = "crm.bt", *alerts = "alerts.bt";
    ds_h_broker_ctl(&env, "create-topic crm.bt 4");
    ds_h_broker_ctl(&env, "create-topic alerts.bt 1");
    char rules[300];
    snprintf(rules, sizeof(rules), "%s/rules-bt.yaml", env.tmpdir);
    write_file(rules, "{}\n");
    /* gen's CRM mix: every outcome, duplicates, events after a close */
    ds_gen_opts_t go = {.seed = 3, .accounts = 40, .mix = DS_GEN_CRM, .start_ms = T0};
    ds_gen_t *g = ds_gen_new(&go);
    rd_kafka_t *p = ds_h_producer(&env);
    for (int i = 0; i < 6000; i++) {
        ds_gen_event_t ev;
        ds_gen_next(g, &ev);
        ds_h_send_crm(p, topic, &ev.crm);
    }
    ds_h_flush(p);
    rd_kafka_destroy(p);
    ds_gen_destroy(g);

    const char *group = "it-bt-watcher";
    const char *wargs[] = {"watcher",
                           "--brokers",
                           env.brokers,
                           "--redis",
                           env.redis_url,
                           "--group-id",
                           group,
                           "--schemas",
                           getenv("DS_SCHEMAS_DIR"),
                           "--clock",
                           "event",
                           "--topic-crm",
                           topic,
                           "--topic-alerts",
                           alerts,
                           "--rules",
                           rules,
                           NULL};
    pid_t w = ds_h_spawn(logfile, wargs);
    /* offsets are committed once the deal states are in Redis */
    assert_true(ds_h_wait_group(&env, group, topic, 90000));
    assert_int_equal(ds_h_stop(w, SIGTERM, 10000), 0);

    /* the watcher's alerts, each id once (outputs are at least once) */
    ds_h_record_t *recs;
    size_t n = ds_h_consume(&env, alerts, SIZE_MAX, 30000, &recs);
    assert_true(n > 0);
    kind_count_t kc[DS_AK__COUNT + 1];
    memset(kc, 0, sizeof(kc));
    assert_true(n < 1000000);
    char **ids = calloc(n + 1, sizeof(char *));
    size_t nids = 0;
    ds_arena_t arena;
    ds_arena_init(&arena, 0);
    for (size_t i = 0; i < n; i++) {
        ds_deal_alert_t a;
        char detail[256];
        ds_arena_reset(&arena);
        assert_int_equal(ds_codec_decode_deal_alert(ds_h_codec(), recs[i].val, recs[i].len, &arena,
                                                    &a, detail, sizeof(detail)),
                         DS_ERR_OK);
        bool seen = false;
        for (size_t j = 0; j < nids && !seen; j++)
            seen = !strcmp(ids[j], a.alert_id);
        if (seen || a.state != DS_AS_OPEN)
            continue;
        ids[nids++] = strdup(a.alert_id);
        const int ks[2] = {a.kind, DS_AK__COUNT}; /* its kind, and any kind */
        for (int j = 0; j < 2; j++) {
            kind_count_t *c = &kc[ks[j]];
            c->opened++;
            if (!has(c, a.deal_id)) {
                c->deals = realloc(c->deals, (c->ndeals + 1) * sizeof(char *));
                c->deals[c->ndeals++] = strdup(a.deal_id);
            }
        }
    }
    ds_arena_free(&arena);
    ds_h_records_free(recs, n);
    /* every deal's outcome as the watcher stored it */
    redisReply *keys = ds_h_redis(&env, "KEYS ds:{deal:*}");
    assert_int_equal(keys->type, REDIS_REPLY_ARRAY);
    long deals = (long)keys->elements, won = 0, lost = 0, open = 0;
    for (size_t i = 0; i < keys->elements; i++) {
        const char *key = keys->element[i]->str; /* ds:{deal:ID} */
        char id[300];
        snprintf(id, sizeof(id), "%.*s", (int)strlen(key) - 10, key + 9);
        char *st = ds_h_hget(&env, key, "state");
        assert_non_null(st);
        int outcome = !strcmp(st, "won") ? 0 : !strcmp(st, "lost") ? 1 : 2;
        won += outcome == 0;
        lost += outcome == 1;
        open += outcome == 2;
        for (int k = 0; k <= DS_AK__COUNT; k++) {
            if (!has(&kc[k], id))
                continue;
            kc[k].won += outcome == 0;
            kc[k].lost += outcome == 1;
            kc[k].open += outcome == 2;
        }
        free(st);
    }
    freeReplyObject(keys);
    assert_true(won > 0 && lost > 0 && open > 0); /* the stream has every outcome */

    char out[300];
    snprintf(out, sizeof(out), "%s/backtest.json", env.tmpdir);
    const char *bargs[] = {
        "backtest",    "--brokers", env.brokers, "--schemas", getenv("DS_SCHEMAS_DIR"),
        "--topic-crm", topic,       "--rules",   rules,       "--json",
        NULL};
    assert_int_equal(run_to(out, bargs), 0);
    json_error_t je;
    json_t *rep = json_load_file(out, 0, &je);
    if (!rep)
        fail_msg("backtest --json: %s", je.text);
    assert_int_equal(jint(rep, "records", NULL), 6000);
    assert_int_equal(jint(rep, "deals", "total"), deals);
    assert_int_equal(jint(rep, "deals", "won"), won);
    assert_int_equal(jint(rep, "deals", "lost"), lost);
    assert_int_equal(jint(rep, "deals", "open"), open);
    json_t *kinds = json_object_get(json_array_get(json_object_get(rep, "rules"), 0), "kinds");
    for (int k = 0; k <= DS_AK__COUNT; k++) {
        json_t *f = json_object_get(kinds, k < DS_AK__COUNT ? ds_alert_kind_name(k) : "ANY");
        const char *name = k < DS_AK__COUNT ? ds_alert_kind_name(k) : "ANY";
        print_message("%-16s watcher: %ld opened, %zu deals (%ld won, %ld lost, %ld open)\n", name,
                      kc[k].opened, kc[k].ndeals, kc[k].won, kc[k].lost, kc[k].open);
        assert_int_equal(jint(f, "alerts_opened", NULL), kc[k].opened);
        assert_int_equal(jint(f, "deals_alerted", NULL), (long)kc[k].ndeals);
        assert_int_equal(jint(f, "won", NULL), kc[k].won);
        assert_int_equal(jint(f, "lost", NULL), kc[k].lost);
        assert_int_equal(jint(f, "open", NULL), kc[k].open);
        for (size_t i = 0; i < kc[k].ndeals; i++)
            free(kc[k].deals[i]);
        free(kc[k].deals);
    }
    assert_true(jint(json_object_get(kinds, "ANY"), "alerts_opened", NULL) > 0);
    json_decref(rep);
    for (size_t i = 0; i < nids; i++)
        free(ids[i]);
    free(ids);
    /* the backtest read without a group: nothing committed */
    assert_true(nothing_committed("dealsignal-backtest", topic, 4));
}

/* The unit test's stream, through the binary: three won deals whose
 * RECOGNIZE_NEED quiet spells are 2 3, 1 6, 4 4 days; the 0.9 quantile of
 * 1 2 3 4 4 6 is 6; a lost deal's spell of 30 days does not count. */
static void test_rules_learn_passes_check(void **state) {
    (void)state;
    const char *topic = "crm.learn";
    ds_h_broker_ctl(&env, "create-topic crm.learn 2");
    rd_kafka_t *p = ds_h_producer(&env);
    const char *deal[] = {"W1", "W2", "W3", "L1"};
    const double reply[] = {2, 1, 4, 30}, call[] = {5, 7, 8, -1};
    int seq = 0;
    for (int i = 0; i < 4; i++) {
        const struct {
            double day;
            int type;
            const char *signal;
        } steps[] = {{0, DS_CRM_DEAL_OPENED, NULL},
                     {reply[i], DS_CRM_BUYER_SIGNAL, "email_replied"},
                     {call[i], DS_CRM_BUYER_SIGNAL, "live_call_accepted"},
                     {(call[i] < 0 ? reply[i] : call[i]) + 1,
                      call[i] < 0 ? DS_CRM_DEAL_LOST : DS_CRM_DEAL_WON, NULL}};
        for (size_t s = 0; s < 4; s++) {
            if (steps[s].day < 0)
                continue;
            char id[16];
            snprintf(id, sizeof(id), "l%d", ++seq);
            ds_crm_event_t e;
            memset(&e, 0, sizeof(e));
            e.event_id = id;
            e.deal_id = deal[i];
            e.account_id = "A-L";
            e.occurred_at = T0 + (int64_t)(steps[s].day * 86400000.0);
            e.type = steps[s].type;
            e.stage = DS_NONE;
            e.contact_role = DS_NONE;
            e.signal = steps[s].signal;
            ds_h_send_crm(p, topic, &e);
        }
    }
    ds_h_flush(p);
    rd_kafka_destroy(p);
    char out[300], checked[300];
    snprintf(out, sizeof(out), "%s/learned.yaml", env.tmpdir);
    snprintf(checked, sizeof(checked), "%s/checked.yaml", env.tmpdir);
    const char *largs[] = {
        "rules",       "learn", "--brokers",   env.brokers, "--schemas", getenv("DS_SCHEMAS_DIR"),
        "--topic-crm", topic,   "--min-deals", "3",         NULL};
    assert_int_equal(run_to(out, largs), 0);
    const char *cargs[] = {"rules", "check", out, NULL};
    assert_int_equal(run_to(checked, cargs), 0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char text[16384];
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    text[len] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "    # learned from 3 won deals, 6 quiet spells: median 3.5 d, "
                                 "0.9 quantile 6 d (was 14)\n"
                                 "    RECOGNIZE_NEED: {verifiers: [\"live_call_accepted\"], "
                                 "max_quiet_days: 6}\n"));
    /* the stages without evidence keep the input's values */
    assert_non_null(strstr(text, "    # kept: no won deal had a quiet spell at this stage\n"
                                 "    EXPLORE_OPTIONS: {verifiers: "));
    f = fopen(checked, "r");
    assert_non_null(f);
    len = fread(text, 1, sizeof(text) - 1, f);
    text[len] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "RECOGNIZE_NEED: {verifiers: [\"live_call_accepted\"], "
                                 "max_quiet_days: 6}"));
}

DS_H_MAIN(&env, 1, cmocka_unit_test(test_backtest_matches_watcher),
          cmocka_unit_test(test_rules_learn_passes_check))
