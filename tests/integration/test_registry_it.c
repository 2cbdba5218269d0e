/*
 * test_registry_it.c — the workers and `gen` with a Schema Registry that
 * speaks Confluent's REST API (tests/registry, in this process):
 *   - outputs carry the ids the registry gave under <topic>-value (renamed
 *     topics followed), never the embedded 3/4/5, and a consumer decodes
 *     them by id; inputs produced by `gen --schema-registry` decode too;
 *     a restart registers nothing new (same schema, same id);
 *   - schema_registry.auto_register false: a registered subject is looked
 *     up, a missing one stops the worker with a message naming it;
 *   - 409: the message names the subject and its compatibility level;
 *   - 401: the message names the URL, never the password;
 *   - a registry down at start-up: the worker waits, not ready, retries
 *     (through 500s too), and becomes ready once the registry answers.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "harness.h"
#include "test_registry.h"
#include "unit_util.h"
#include "worker.h"

static ds_h_env_t env;
static ds_treg_t *reg;
static char reg_url[128];
static const char *schemas; /* DS_SCHEMAS_DIR, given to the workers */

/* ---- helpers ------------------------------------------------------------- */

/* GET http://addr/path: the status (0: no answer), the body in out. */
static long http_get(const char *addr, const char *path, char *out, size_t out_size) {
    char *body;
    long status = ds_h_http_get(addr, path, &body);
    snprintf(out, out_size, "%s", body);
    free(body);
    return status;
}

static bool wait_ready(const char *addr, int timeout_ms) {
    char body[1024];
    for (int64_t end = ds_clock_mono_ms() + timeout_ms; ds_clock_mono_ms() < end;) {
        if (http_get(addr, "/readyz", body, sizeof(body)) == 200)
            return true;
        ds_clock_sleep_ms(100);
    }
    fprintf(stderr, "  still not ready: %s\n", body);
    return false;
}

/* Polls addr's /readyz (5 s at most) until it answers 503, its body in
 * body; the case fails if it never does. */
static void expect_not_ready(const char *addr, char *body, size_t body_size) {
    long st = 0;
    for (int i = 0; i < 50 && st != 503; i++, ds_clock_sleep_ms(100))
        st = http_get(addr, "/readyz", body, body_size);
    assert_int_equal(st, 503);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    ds_buf_t b;
    ds_buf_init(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(ds_buf_append(&b, chunk, n), DS_ERR_OK);
    fclose(f);
    assert_int_equal(ds_buf_append(&b, "", 1), DS_ERR_OK);
    return (char *)b.data;
}

static bool log_has(const char *path, const char *needle) {
    char *s = slurp(path);
    bool yes = strstr(s, needle) != NULL;
    free(s);
    return yes;
}

static bool wait_log(const char *path, const char *needle, int timeout_ms) {
    for (int64_t end = ds_clock_mono_ms() + timeout_ms; ds_clock_mono_ms() < end;) {
        if (log_has(path, needle))
            return true;
        ds_clock_sleep_ms(100);
    }
    return false;
}

/* Print the first line of the log that holds needle (what a user reads). */
static void show(const char *path, const char *needle) {
    char *s = slurp(path);
    char *p = strstr(s, needle);
    if (p) {
        char *start = p, *end = strchr(p, '\n');
        while (start > s && start[-1] != '\n')
            start--;
        print_message("  %.*s\n", (int)(end ? end - start : (long)strlen(start)), start);
    }
    free(s);
}

static void logpath(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s.log", env.tmpdir, name);
}

/* Wait for a process to exit by itself; its exit status (-1: it did not). */
static int wait_exit(pid_t p, int timeout_ms) {
    return ds_h_stop(p, 0, timeout_ms);
}

/* Runs the worker args describe, its output in log: it must refuse to
 * start (exit status 1) saying each of want[0..n) (the failure names the
 * one missing); prints the line a user reads. */
static void expect_refusal(const char *log, const ds_h_args_t *args, const char *const *want,
                           size_t n) {
    assert_int_equal(wait_exit(ds_h_spawn(log, args->v), 20000), 1);
    for (size_t i = 0; i < n; i++)
        if (!log_has(log, want[i]))
            fail_msg("%s does not say: %s", log, want[i]);
    show(log, "cannot start");
}

static int32_t frame_id(const ds_h_record_t *r) {
    assert_true(r->len >= 5);
    assert_int_equal(r->val[0], 0);
    return (int32_t)((uint32_t)r->val[1] << 24 | (uint32_t)r->val[2] << 16 |
                     (uint32_t)r->val[3] << 8 | r->val[4]);
}

static void topics(const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        ds_h_create_topic(&env, names[i], 1);
}

/* Starts a with what every case gives a worker: `what` (scorer, watcher or
 * run), the shipped schemas, env's brokers and Redis, the consumer group
 * and the registry at url; the case adds the rest with ds_h_args_add. */
static void worker_args(ds_h_args_t *a, const char *what, const char *group, const char *url) {
    a->n = 0;
    ds_h_args_add(a, what, "--schemas", schemas, "--brokers", env.brokers, "--redis", env.redis_url,
                  "--group-id", group, "--schema-registry", url, NULL);
}

/* ---- tests --------------------------------------------------------------- */

static int group_setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ds_registry_init(1 << 20);
    ds_h_start(&env, 1, true);
    ds_treg_opts_t o = {0, 0, NULL};
    reg = ds_treg_start(&o);
    assert_non_null(reg);
    snprintf(reg_url, sizeof(reg_url), "http://127.0.0.1:%d", ds_treg_port(reg));
    schemas = getenv("DS_SCHEMAS_DIR");
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    ds_h_cleanup();
    ds_treg_stop(reg);
    curl_global_cleanup();
    return 0;
}

/* Every record of topic: framed with `want_id`, decodable by id through
 * the registry; returns how many. */
static size_t check_topic(const char *topic, int32_t want_id, ds_h_kind_t kind) {
    ds_h_record_t *recs = NULL;
    size_t n = ds_h_consume(&env, topic, SIZE_MAX, 10000, &recs);
    char err[512];
    ds_registry_t *r = ds_registry_open_url(reg_url, err, sizeof(err));
    static const ds_codec_ids_t none = {-1, -1, -1, -1, -1};
    ds_codec_t *codec = ds_codec_new(r, &none, err, sizeof(err));
    assert_non_null(codec);
    ds_arena_t arena;
    ds_arena_init(&arena, 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(frame_id(&recs[i]), want_id);
        ds_arena_reset(&arena);
        char detail[256] = "";
        ds_h_decoded_t out;
        ds_err_t e = ds_h_decode(codec, kind, &recs[i], &arena, &out, detail, sizeof(detail));
        if (e)
            fprintf(stderr, "  %s[%zu]: %s\n", topic, i, detail);
        assert_int_equal(e, DS_ERR_OK);
    }
    ds_arena_free(&arena);
    ds_codec_destroy(codec);
    ds_registry_destroy(r);
    ds_h_records_free(recs, n);
    return n;
}

static int32_t latest(const char *subject) {
    int32_t id = ds_treg_latest_id(reg, subject);
    assert_true(id > 5); /* the registry's own ids, never the embedded 1-5 */
    return id;
}

static void test_outputs_carry_registry_ids(void **state) {
    (void)state;
    static const char *const t[] = {"ma.reg", "crm.reg", "lead.reg", "acct.reg", "alerts.reg"};
    topics(t, 5);
    char log[300], glog[300], metrics[64];
    logpath(log, sizeof(log), "run");
    logpath(glog, sizeof(glog), "gen");
    snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", ds_h_free_port());
    ds_h_args_t args;
    worker_args(&args, "run", "it-reg", reg_url);
    ds_h_args_add(&args, "--metrics-addr", metrics, "--clock", "event", "--topic-marketing", t[0],
                  "--topic-crm", t[1], "--topic-lead-scores", t[2], "--topic-account-scores", t[3],
                  "--topic-alerts", t[4], NULL);
    pid_t w = ds_h_spawn(log, args.v);
    assert_true(wait_ready(metrics, 60000)); /* ASan, a busy machine: 20 s was short */
    const char *gargs[] = {"gen",       "--schemas",         schemas, "--brokers",
                           env.brokers, "--schema-registry", reg_url, "--topic-marketing",
                           t[0],        "--topic-crm",       t[1],    "--count",
                           "600",       "--accounts",        "8",     NULL};
    assert_int_equal(wait_exit(ds_h_spawn(glog, gargs), 60000), 0);
    assert_true(ds_h_wait_group(&env, "it-reg", t[0], 30000));
    assert_true(ds_h_wait_group(&env, "it-reg", t[1], 30000));
    int rc = ds_h_stop(w, SIGTERM, 15000);
    if (rc != 0) /* what the worker said last (a sanitizer's report, say) */
        ds_h_show_log(log, 60);
    assert_int_equal(rc, 0);

    /* the subjects follow the renamed topics; nothing under the defaults */
    assert_int_equal(ds_treg_latest_id(reg, "lead.scores-value"), -1);
    int32_t ls = latest("lead.reg-value"), as = latest("acct.reg-value"),
            al = latest("alerts.reg-value");
    assert_true(ls != as && as != al && ls != al);
    size_t nls = check_topic(t[2], ls, DS_H_LEAD_SCORE),
           nas = check_topic(t[3], as, DS_H_ACCOUNT_SCORE),
           nal = check_topic(t[4], al, DS_H_DEAL_ALERT);
    print_message("  %zu LeadScore (id %d), %zu AccountScore (id %d), %zu DealAlert (id %d)\n", nls,
                  (int)ls, nas, (int)as, nal, (int)al);
    assert_true(nls > 0 && nas > 0 && nal > 0);
    /* gen's inputs, under their own subjects */
    assert_true(check_topic(t[0], latest("ma.reg-value"), DS_H_MA_EVENT) > 0);
    assert_true(check_topic(t[1], latest("crm.reg-value"), DS_H_CRM_EVENT) > 0);

    /* a restart registers the same schemas again: same ids, no new version */
    int before = ds_treg_registrations(reg);
    w = ds_h_spawn(log, args.v);
    assert_true(wait_ready(metrics, 60000)); /* ASan, a busy machine: 20 s was short */
    assert_int_equal(ds_h_stop(w, SIGTERM, 15000), 0);
    assert_int_equal(ds_treg_registrations(reg), before);
    assert_int_equal(ds_treg_latest_id(reg, "lead.reg-value"), ls);

    /* auto_register false: the registered subject is looked up */
    char log2[300], want[128];
    logpath(log2, sizeof(log2), "lookup");
    ds_h_args_t largs;
    worker_args(&largs, "scorer", "it-reg-lookup", reg_url);
    ds_h_args_add(&largs, "--auto-register", "false", "--topic-marketing", t[0],
                  "--topic-lead-scores", t[2], "--topic-account-scores", t[3], NULL);
    w = ds_h_spawn(log2, largs.v);
    snprintf(want, sizeof(want),
             "output LeadScore: schema id %d, registered under subject "
             "lead.reg-value",
             (int)ls);
    assert_true(wait_log(log2, want, 15000));
    assert_int_equal(ds_h_stop(w, SIGTERM, 15000), 0);
}

static void test_auto_register_off_missing_subject(void **state) {
    (void)state;
    char log[300];
    logpath(log, sizeof(log), "noreg");
    ds_h_args_t args;
    worker_args(&args, "scorer", "it-noreg", reg_url);
    ds_h_args_add(&args, "--auto-register", "false", "--topic-lead-scores", "lead.none", NULL);
    static const char *const want[] = {"schema_registry.auto_register is false", "40401"};
    expect_refusal(log, &args, want, UU_COUNT(want));
    assert_true(log_has(log, "subject \\\"lead.none-value\\\"") ||
                log_has(log, "subject \"lead.none-value\""));
    assert_int_equal(ds_treg_latest_id(reg, "lead.none-value"), -1); /* nothing registered */
}

static void test_incompatible_names_subject_and_level(void **state) {
    (void)state;
    /* an earlier LeadScore whose lead_id is an int: ours (a string) cannot
     * read it, and the subject asks for FULL compatibility */
    int32_t old = ds_treg_register(
        reg, "lead.inc-value",
        "{\"type\":\"record\",\"name\":\"LeadScore\",\"namespace\":\"dealsignal.v1\","
        "\"fields\":[{\"name\":\"lead_id\",\"type\":\"int\"}]}");
    assert_true(old > 5);
    ds_treg_set_level(reg, "lead.inc-value", "FULL");
    char log[300];
    logpath(log, sizeof(log), "incompatible");
    ds_h_args_t args;
    worker_args(&args, "scorer", "it-inc", reg_url);
    ds_h_args_add(&args, "--topic-lead-scores", "lead.inc", NULL);
    static const char *const want[] = {"409", "lead.inc-value",
                                       "compatibility level FULL, set on the subject"};
    expect_refusal(log, &args, want, UU_COUNT(want));
    assert_int_equal(ds_treg_latest_id(reg, "lead.inc-value"), old);
}

static void test_unauthorized_hides_password(void **state) {
    (void)state;
    ds_treg_opts_t o = {0, 0, "dsuser:right-pw"};
    ds_treg_t *auth = ds_treg_start(&o);
    assert_non_null(auth);
    char url[200], shown[128], log[300];
    snprintf(url, sizeof(url), "http://dsuser:Wr0ngPassw0rd@127.0.0.1:%d", ds_treg_port(auth));
    snprintf(shown, sizeof(shown), "http://127.0.0.1:%d/subjects/", ds_treg_port(auth));
    logpath(log, sizeof(log), "auth");
    ds_h_args_t args;
    worker_args(&args, "watcher", "it-auth", url);
    ds_h_args_add(&args, "--log-level", "debug", NULL);
    const char *want[] = {"401", shown, "dsuser"};
    expect_refusal(log, &args, want, UU_COUNT(want));
    assert_false(log_has(log, "Wr0ngPassw0rd"));
    /* the right password gets in */
    snprintf(url, sizeof(url), "http://dsuser:right-pw@127.0.0.1:%d", ds_treg_port(auth));
    logpath(log, sizeof(log), "auth-ok");
    pid_t w = ds_h_spawn(log, args.v);
    assert_true(wait_log(log, "output DealAlert: schema id", 15000));
    assert_int_equal(ds_h_stop(w, SIGTERM, 15000), 0);
    ds_treg_stop(auth);
}

static void test_registry_down_at_start(void **state) {
    (void)state;
    int port = ds_h_free_port();
    char url[128], metrics[64], log[300], body[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", ds_h_free_port());
    logpath(log, sizeof(log), "down");
    ds_h_args_t args;
    worker_args(&args, "scorer", "it-down", url);
    ds_h_args_add(&args, "--metrics-addr", metrics, NULL);
    pid_t w = ds_h_spawn(log, args.v);
    assert_true(wait_log(log, "not started yet", 10000));
    expect_not_ready(metrics, body, sizeof(body));
    assert_non_null(strstr(body, "not started"));
    assert_non_null(strstr(body, "schema registry"));
    print_message("  /readyz: %s", body);
    assert_int_equal(http_get(metrics, "/healthz", body, sizeof(body)), 200); /* alive */
    /* the registry comes up, failing its first two answers */
    ds_treg_opts_t o = {port, 0, NULL};
    ds_treg_t *late = ds_treg_start(&o);
    assert_non_null(late);
    ds_treg_fail_next(late, 2);
    assert_true(wait_ready(metrics, 30000));
    assert_true(log_has(log, "HTTP 500"));
    show(log, "HTTP 500");
    assert_true(ds_treg_latest_id(late, "lead.scores-value") > 5);
    assert_int_equal(ds_h_stop(w, SIGTERM, 15000), 0);
    ds_treg_stop(late);
}

/* A worker stopped before it could start (the registry down, so its
 * consumer was never closed) exits 0 at once: destroying such a consumer
 * served a statistics callback whose rd_kafka_assignment waited for ever
 * on the group being left (two runs in three hung, after "stopped
 * rc=0").  Four runs, stopped at different points of the statistics'
 * second. */
static void test_stop_before_start(void **state) {
    (void)state;
    char url[128], log[300];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ds_h_free_port()); /* nobody */
    static const int waits[] = {500, 1700, 2900, 4100}; /* a report falls in the close */
    for (int i = 0; i < 4; i++) {
        char name[16], group[32];
        snprintf(name, sizeof(name), "early%d", i);
        snprintf(group, sizeof(group), "it-early-%d", i);
        logpath(log, sizeof(log), name);
        ds_h_args_t args;
        worker_args(&args, "scorer", group, url);
        pid_t w = ds_h_spawn(log, args.v);
        assert_true(wait_log(log, "not started yet", 10000));
        ds_clock_sleep_ms(waits[i]);
        int64_t t0 = ds_clock_mono_ms();
        int rc = ds_h_stop(w, SIGTERM, 15000);
        print_message("  stopped before starting: exit %d after %lld ms\n", rc,
                      (long long)(ds_clock_mono_ms() - t0));
        assert_int_equal(rc, 0);
    }
}

/* The registry fails while a record with a schema id not cached yet
 * arrives: the record waits (worker not ready), nothing goes to the DLQ,
 * and it is applied once the registry answers. */
static void test_registry_outage_while_decoding(void **state) {
    (void)state;
    static const char *const t[] = {"ma.out", "ma.out.dlq", "lead.out", "acct.out"};
    topics(t, 4);
    char log[300], metrics[64], body[1024];
    logpath(log, sizeof(log), "outage");
    snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", ds_h_free_port());
    ds_h_args_t args;
    worker_args(&args, "scorer", "it-outage", reg_url);
    ds_h_args_add(&args, "--metrics-addr", metrics, "--topic-marketing", t[0],
                  "--topic-lead-scores", t[2], "--topic-account-scores", t[3], NULL);
    pid_t w = ds_h_spawn(log, args.v);
    assert_true(wait_ready(metrics, 60000)); /* ASan, a busy machine: 20 s was short */
    /* a MarketingEvent schema the worker has not seen: the shipped one with
     * another doc (same binary layout, a new id) */
    char err[512];
    const char *dir = getenv("DS_SCHEMAS_DIR");
    char *text = ds_schema_file_text(dir ? dir : "schemas", "MarketingEvent", err, sizeof(err));
    assert_non_null(text);
    char *doc = strstr(text, "A marketing-automation activity of one lead.");
    assert_non_null(doc);
    memcpy(doc, "B", 1);
    int32_t id = ds_treg_register(reg, "ma.out-value", text);
    free(text);
    assert_true(id > 5);
    ds_treg_fail_next(reg, 1000000);
    ds_ma_event_t ev = {.event_id = "out-1",
                        .occurred_at = 1700000000000LL,
                        .lead_id = "L-OUT",
                        .account_id = NULL,
                        .type = DS_MA_CONTENT_COMPLETED,
                        .content_id = "c-1",
                        .insight_id = "I1",
                        .content_stage = DS_CS_CONFRONT};
    ds_buf_t b;
    ds_buf_init(&b, 0);
    assert_int_equal(ds_codec_encode_ma(ds_h_codec(), &ev, &b), DS_ERR_OK);
    b.data[1] = (unsigned char)((uint32_t)id >> 24);
    b.data[2] = (unsigned char)((uint32_t)id >> 16);
    b.data[3] = (unsigned char)((uint32_t)id >> 8);
    b.data[4] = (unsigned char)id;
    rd_kafka_t *p = ds_h_producer(&env);
    ds_h_produce(p, t[0], "L-OUT", b.data, b.len);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    ds_buf_free(&b);
    assert_true(wait_log(log, "cannot decode", 15000));
    expect_not_ready(metrics, body, sizeof(body));
    assert_non_null(strstr(body, "schema registry unreachable"));
    ds_clock_sleep_ms(1500); /* a few retries, all refused */
    ds_treg_fail_next(reg, 0);
    assert_true(wait_ready(metrics, 60000)); /* ASan, a busy machine: 20 s was short */
    ds_h_expect_hget(&env, "ds:{lead:L-OUT}", "confront", NULL, 15000);
    assert_true(ds_h_wait_group(&env, "it-outage", t[0], 15000));
    ds_h_record_t *recs = NULL;
    assert_int_equal(ds_h_consume(&env, t[1], SIZE_MAX, 3000, &recs), 0); /* no DLQ record */
    ds_h_records_free(recs, 0);
    show(log, "cannot decode");
    assert_int_equal(ds_h_stop(w, SIGTERM, 15000), 0);
}

UU_MAIN(group_setup, group_teardown, cmocka_unit_test(test_outputs_carry_registry_ids),
        cmocka_unit_test(test_auto_register_off_missing_subject),
        cmocka_unit_test(test_incompatible_names_subject_and_level),
        cmocka_unit_test(test_unauthorized_hides_password),
        cmocka_unit_test(test_registry_down_at_start), cmocka_unit_test(test_stop_before_start),
        cmocka_unit_test(test_registry_outage_while_decoding))
