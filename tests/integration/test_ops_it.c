/*
 * test_ops_it.c — what an operator sees of a running scorer: /healthz,
 * /readyz following Redis, /metrics with the consumer lag from librdkafka's
 * statistics (checked by promtool when installed), and rules reloaded on
 * SIGHUP — valid rules swap in, invalid ones are refused and the old rules
 * stay in force — and the Redis and Kafka passwords it is given appear
 * nowhere in its debug log or /metrics.
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
#include "unit_util.h"

static ds_h_env_t env;
static char rules_path[300], log_path[300], metrics_addr[64], redis_url[200];
/* secrets the worker is given: they must never appear in its logs or /metrics */
#define REDIS_SECRET "s3cr3t-redis-pw"
#define KAFKA_SECRET "s3cr3t-kafka-pw"
static const char *schemas; /* DS_SCHEMAS_DIR, given to the worker */
static pid_t worker;
static rd_kafka_t *producer;

/* ---- HTTP ---------------------------------------------------------------- */

/* GET path on the worker's metrics address (ds_h_http_get). */
static long http_get(const char *path, char **body) {
    return ds_h_http_get(metrics_addr, path, body);
}

static bool wait_status(const char *path, long want, int timeout_ms) {
    int64_t end = ds_clock_mono_ms() + timeout_ms;
    while (ds_clock_mono_ms() < end) {
        if (http_get(path, NULL) == want)
            return true;
        ds_clock_sleep_ms(100);
    }
    return false;
}

/* The value of the first sample line starting with `prefix`, or -1. */
static double sample(const char *text, const char *prefix) {
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, prefix, strlen(prefix)))
            return strtod(strchr(p + strlen(prefix), ' ') + 1, NULL);
    return -1;
}

static double metric(const char *prefix) {
    char *body = NULL;
    assert_int_equal(http_get("/metrics", &body), 200);
    double v = sample(body, prefix);
    free(body);
    return v;
}

#define LAG "dealsignal_consumer_lag{worker=\"scorer\",topic=\"ma.events\",partition=\"0\"}"

static bool wait_metric(const char *prefix, double want, int timeout_ms) {
    int64_t end = ds_clock_mono_ms() + timeout_ms;
    double v = -1;
    while (ds_clock_mono_ms() < end) {
        v = metric(prefix);
        if (v == want)
            return true;
        ds_clock_sleep_ms(200);
    }
    fprintf(stderr, "  %s is %g, want %g\n", prefix, v, want);
    return false;
}

/* ---- helpers ------------------------------------------------------------- */

static void write_rules(const char *text) {
    char tmp[320];
    snprintf(tmp, sizeof(tmp), "%s.tmp", rules_path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, rules_path), 0);
}

static void send_confront(const char *event_id, const char *lead, int64_t at) {
    ds_ma_event_t ev = {.event_id = event_id, .occurred_at = at, .lead_id = lead,
                        .account_id = NULL, .type = DS_MA_CONTENT_COMPLETED,
                        .content_id = "c-1", .insight_id = "I1", .content_stage = DS_CS_CONFRONT};
    ds_h_send_ma(producer, "ma.events", &ev);
    ds_h_flush(producer);
}

/* The confront score of a lone lead as the scorer stored it. */
static char *wait_confront(const char *lead, const char *want) {
    char key[128];
    snprintf(key, sizeof(key), "ds:{lead:%s}", lead);
    char *v = NULL;
    for (int i = 0; i < 150; i++) {
        free(v);
        v = ds_h_hget(&env, key, "confront");
        if (v && (!want || !strcmp(v, want)))
            break;
        ds_clock_sleep_ms(100);
    }
    return v;
}

static int log_count(const char *needle) {
    return ds_h_log_count(log_path, needle);
}

static bool wait_log(const char *needle, int count, int timeout_ms) {
    int64_t end = ds_clock_mono_ms() + timeout_ms;
    while (ds_clock_mono_ms() < end) {
        if (log_count(needle) >= count)
            return true;
        ds_clock_sleep_ms(100);
    }
    return false;
}

/* ---- tests --------------------------------------------------------------- */

static int group_setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ds_h_start(&env, 1, true);
    schemas = getenv("DS_SCHEMAS_DIR");
    snprintf(rules_path, sizeof(rules_path), "%s/rules.yaml", env.tmpdir);
    snprintf(log_path, sizeof(log_path), "%s/scorer.log", env.tmpdir);
    snprintf(metrics_addr, sizeof(metrics_addr), "127.0.0.1:%d", ds_h_free_port());
    write_rules("scoring:\n  stage_points: {CONFRONT: 20}\n");
    producer = ds_h_producer(&env);
    /* the worker logs in to Redis as an ACL user with a password */
    freeReplyObject(
        ds_h_redis(&env, "ACL SETUSER dsworker on >" REDIS_SECRET " ~* &* +@all"));
    snprintf(redis_url, sizeof(redis_url), "redis://dsworker:" REDIS_SECRET "@127.0.0.1:%d",
             env.redis_port);
    const char *args[] = {"scorer",         "--brokers",     env.brokers,
                          "--redis",        redis_url,       "--group-id",
                          "it-ops",         "--rules",       rules_path,
                          "--metrics-addr", metrics_addr,    "-X",
                          "statistics.interval.ms=300",      "-X",
                          "sasl.password=" KAFKA_SECRET,     "--log-level",
                          "debug",          "--schemas",     schemas,
                          NULL};
    worker = ds_h_spawn(log_path, args);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    int rc = ds_h_teardown(producer, worker);
    curl_global_cleanup();
    return rc;
}

static void test_health_and_ready(void **state) {
    (void)state;
    assert_true(wait_status("/healthz", 200, 10000));
    /* ready once partitions are assigned and Redis answers */
    send_confront("e-1", "L-1", 1700000000000LL);
    assert_true(wait_status("/readyz", 200, 30000));
    char *v = wait_confront("L-1", "20");
    assert_non_null(v);
    assert_string_equal(v, "20");
    free(v);
    assert_int_equal(http_get("/nope", NULL), 404);
}

static void test_metrics_lag_follows_redis(void **state) {
    (void)state;
    assert_true(wait_metric(LAG, 0, 10000));
    assert_true(metric("dealsignal_consumed_records_total{worker=\"scorer\"}") >= 1);
    /* Redis away: the worker pauses, is not ready, and the lag grows by
     * exactly what was produced since */
    ds_h_stop_redis(&env);
    for (int i = 0; i < 7; i++) {
        char id[16];
        snprintf(id, sizeof(id), "lag-%d", i);
        send_confront(id, "L-lag", 1700000001000LL + i);
    }
    assert_true(wait_status("/readyz", 503, 15000));
    assert_true(wait_metric(LAG, 7, 15000));
    ds_h_restart_redis(&env);
    /* a Redis without persistence comes back without its ACL users */
    freeReplyObject(
        ds_h_redis(&env, "ACL SETUSER dsworker on >" REDIS_SECRET " ~* &* +@all"));
    assert_true(wait_status("/readyz", 200, 20000));
    assert_true(wait_metric(LAG, 0, 20000));
}

static void test_metrics_pass_promtool(void **state) {
    (void)state;
    char *body = NULL;
    assert_int_equal(http_get("/metrics", &body), 200);
    char path[340];
    snprintf(path, sizeof(path), "%s/metrics.txt", env.tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    /* the process's heap, sampled once a second: a worker holds more than
     * a MiB live (librdkafka's buffers alone), and the gauge has no label
     * (under AddressSanitizer, whose allocator glibc's statistics do not
     * see, only that it is there) */
#ifdef __SANITIZE_ADDRESS__
    assert_true(sample(body, "dealsignal_heap_in_use_bytes") >= 0);
#else
    assert_true(sample(body, "dealsignal_heap_in_use_bytes") > 1 << 20);
#endif
    assert_true(sample(body, "dealsignal_heap_free_bytes") >= 0);
    /* the families docs/OPERATIONS.md lists are there */
    assert_non_null(strstr(body, "dealsignal_consumer_lag{"));
    assert_non_null(strstr(body, "dealsignal_batch_seconds_bucket{"));
    assert_non_null(strstr(body, "dealsignal_redis_seconds_bucket{"));
    assert_non_null(strstr(body, "dealsignal_phase_seconds_bucket{"));
    /* two lone leads so far: L-1 and L-lag */
    assert_true(sample(body, "dealsignal_tracked_leads{worker=\"scorer\"}") == 2);
    assert_true(sample(body, "dealsignal_tracked_units{worker=\"scorer\"}") == 2);
    free(body);
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        skip(); /* the prometheus package is not installed */
    }
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static void test_secrets_stay_secret(void **state) {
    (void)state;
    /* the worker did log in with the password (it scored above) ... */
    char *body = NULL;
    assert_int_equal(http_get("/metrics", &body), 200);
    assert_null(strstr(body, REDIS_SECRET));
    assert_null(strstr(body, KAFKA_SECRET));
    free(body);
    /* ... and its whole log, at debug level, holds neither secret; the
     * Redis URL is logged, with the password masked */
    assert_true(log_count("level=") > 0);
    assert_int_equal(log_count("redis=redis://dsworker:***@127.0.0.1"), 1);
    assert_int_equal(log_count(REDIS_SECRET), 0);
    assert_int_equal(log_count(KAFKA_SECRET), 0);
}

static void test_sighup_reload(void **state) {
    (void)state;
    /* invalid rules: refused, with the key and line, old rules in force */
    write_rules("scoring:\n  stage_points: {CONFRONT: -3}\n");
    assert_int_equal(kill(worker, SIGHUP), 0);
    assert_true(wait_log("rules reload rejected", 1, 10000));
    assert_true(log_count("stage_points.CONFRONT") >= 1);
    send_confront("e-2", "L-2", 1700000002000LL);
    char *v = wait_confront("L-2", NULL);
    assert_non_null(v);
    assert_string_equal(v, "20");
    free(v);
    /* valid rules: swapped in for the next events */
    write_rules("scoring:\n  stage_points: {CONFRONT: 50}\n");
    assert_int_equal(kill(worker, SIGHUP), 0);
    assert_true(wait_log("rules reloaded", 1, 10000));
    send_confront("e-3", "L-3", 1700000003000LL);
    v = wait_confront("L-3", NULL);
    assert_non_null(v);
    assert_string_equal(v, "50");
    free(v);
    /* the worker is still ready and serving */
    assert_int_equal(http_get("/readyz", NULL), 200);
}

UU_MAIN(group_setup, group_teardown, cmocka_unit_test(test_health_and_ready),
        cmocka_unit_test(test_metrics_lag_follows_redis),
        cmocka_unit_test(test_metrics_pass_promtool), cmocka_unit_test(test_sighup_reload),
        cmocka_unit_test(test_secrets_stay_secret))
