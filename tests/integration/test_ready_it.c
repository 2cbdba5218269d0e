/*
 * test_ready_it.c — /readyz tells the truth, through the real binary.
 *
 *   - Redis paused (SIGSTOP) right after a burst, while the scorer has
 *     writes in flight and no new input, and again once it is fully idle:
 *     /readyz answers 503 within redis.timeout_ms + 1 s, and 200 again
 *     soon after SIGCONT; the records produced meanwhile are applied once
 *     it answers.
 *   - Redis killed for 8 s (its retries' backoff reaches seconds) and
 *     restarted with its data (AOF): work resumes within about a second.
 *   - The broker process paused: 503 within broker_timeout_ms + 2 s, with
 *     the reason; 200 again after SIGCONT.
 *   - The final Redis state and the output ids equal those of a run that
 *     was never interrupted.
 *   - Redis restarted empty (its AOF removed) under `dealsignal run`: both
 *     workers log it as
 *     an error, count it (dealsignal_redis_state_lost_total) and write
 *     back everything they hold, so that the state is complete again
 *     without a new event.
 *   - A lead's stored state that cannot be read: never overwritten,
 *     /readyz and the log say so, and work goes on once it is deleted.
 * Timeouts are lowered (redis.timeout_ms 1000, broker_timeout_ms 2000).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "codec.h"
#include "ds_clock.h"
#include "harness.h"
#include "unit_util.h"

#define REDIS_TIMEOUT_MS 1000
#define BROKER_TIMEOUT_MS 2000
#define MIN_KEYS 100

static ds_h_env_t env;
static char schemas[256];

/* `dealsignal gen` of count events of scenario to the marketing topic ma
 * and, when not NULL, the CRM topic crm; the case fails unless it exits
 * with status 0. */
static void gen(const char *scenario, const char *ma, const char *crm, const char *seed,
                const char *count) {
    ds_h_args_t a = {.n = 0};
    ds_h_args_add(&a, "gen", "--brokers", env.brokers, "--count", count, "--seed", seed,
                  "--accounts", "40", "--scenario", scenario, "--start", "2025-06-01", "--schemas",
                  schemas, "--topic-marketing", ma, NULL);
    if (crm)
        ds_h_args_add(&a, "--topic-crm", crm, NULL);
    char log[256];
    snprintf(log, sizeof(log), "%s/gen.log", env.tmpdir);
    pid_t g = ds_h_spawn(log, a.v);
    int st;
    waitpid(g, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

typedef struct run {
    ds_h_names_t n;
    char metrics[64], log[256];
    pid_t pid;
} run_t;

/* Topics <name>.ma and <name>.crm, 4 partitions each. */
static void topics(const char *name) {
    char line[128];
    snprintf(line, sizeof(line), "create-topic %s.ma 4", name);
    ds_h_broker_ctl(&env, line);
    snprintf(line, sizeof(line), "create-topic %s.crm 4", name);
    ds_h_broker_ctl(&env, line);
}

static void run_init(run_t *r, const char *name) {
    memset(r, 0, sizeof(*r));
    ds_h_names(&r->n, "ready", name, false);
    snprintf(r->metrics, sizeof(r->metrics), "127.0.0.1:%d", ds_h_free_port());
    snprintf(r->log, sizeof(r->log), "%s/%s.log", env.tmpdir, name);
}

/* `what`: scorer, or run (both workers) */
static void start(run_t *r, const char *what, const char *ma, const char *crm) {
    ds_h_args_t a;
    ds_h_worker_args(&a, &env, what, env.redis_url, r->n.group, r->n.prefix);
    ds_h_args_add(&a, "--topic-marketing", ma, "--topic-crm", crm, "--topic-lead-scores", r->n.ls,
                  "--topic-account-scores", r->n.as, "--topic-alerts", r->n.al, "--batch-size",
                  "200", "--redis-flush-ms", "300", "--redis-timeout-ms", "1000",
                  "--broker-timeout-ms", "2000", "--metrics-addr", r->metrics, NULL);
    r->pid = ds_h_spawn(r->log, a.v);
}

/* Poll /readyz every 50 ms until it answers `want`; the time it took
 * (ms), or -1 after timeout_ms. */
static int64_t time_to(const run_t *r, long want, int timeout_ms) {
    int64_t t0 = ds_clock_mono_ms();
    while (ds_clock_mono_ms() - t0 < timeout_ms) {
        if (ds_h_http_get(r->metrics, "/readyz", NULL) == want)
            return ds_clock_mono_ms() - t0;
        ds_clock_sleep_ms(50);
    }
    return -1;
}

static char *readyz_body(const run_t *r) {
    char *body = NULL;
    ds_h_http_get(r->metrics, "/readyz", &body);
    return body;
}

static double metric(const run_t *r, const char *sample) {
    char *body = NULL;
    assert_int_equal(ds_h_http_get(r->metrics, "/metrics", &body), 200);
    double v = ds_h_metric(body, sample);
    free(body);
    return v;
}

static int log_count(const run_t *r, const char *needle) {
    return ds_h_log_count(r->log, needle);
}

static void compare_state(const run_t *a, const run_t *b, const char *skip) {
    assert_true(ds_h_same_run_state(&env, &a->n, &b->n, skip, MIN_KEYS));
}

static void compare_outputs(const run_t *a, const run_t *b) {
    assert_true(ds_h_same_run_scores(&env, &a->n, &b->n));
}

static int group_setup(void **state) {
    (void)state;
    ds_h_start_aof(&env, 4);
    snprintf(schemas, sizeof(schemas), "%s", getenv("DS_SCHEMAS_DIR"));
    return 0;
}

/* One scorer through a Redis pause with writes in flight, a Redis pause
 * while idle and a broker pause; then the same input uninterrupted. */
static void test_outages(void **state) {
    (void)state;
    ds_h_broker_ctl(&env, "create-topic ready.ma 4");
    run_t r;
    run_init(&r, "outage");
    start(&r, "scorer", "ready.ma", "ready.crm");
    assert_true(time_to(&r, 200, 30000) >= 0);

    /* a burst, then Redis paused while the writes are in flight */
    gen("marketing", "ready.ma", NULL, "31", "3000");
    ds_clock_sleep_ms(20);
    kill(env.redis_pid, SIGSTOP);
    int64_t t = time_to(&r, 503, 10000);
    fprintf(stderr, "  redis paused after a burst: 503 after %lld ms\n", (long long)t);
    assert_true(t >= 0 && t <= REDIS_TIMEOUT_MS + 1000);
    char *why = readyz_body(&r);
    assert_non_null(strstr(why, "redis"));
    free(why);
    /* input arrives meanwhile; it waits */
    gen("marketing", "ready.ma", NULL, "32", "1000");
    ds_clock_sleep_ms(2000);
    kill(env.redis_pid, SIGCONT);
    t = time_to(&r, 200, 10000);
    fprintf(stderr, "  redis resumed: 200 after %lld ms\n", (long long)t);
    assert_true(t >= 0 && t <= 3000);
    assert_true(ds_h_wait_group(&env, r.n.group, "ready.ma", 30000));

    /* Redis killed for 8 s while input arrives: the retries (refused at
     * once) back off to seconds; it comes back with its data */
    double consumed = metric(&r, "dealsignal_consumed_records_total{worker=\"scorer\"}");
    ds_h_stop_redis(&env);
    gen("marketing", "ready.ma", NULL, "34", "1000");
    ds_clock_sleep_ms(8000);
    assert_true(time_to(&r, 503, 100) >= 0);
    ds_h_restart_redis(&env);
    int64_t t0 = ds_clock_mono_ms();
    t = time_to(&r, 200, 10000);
    fprintf(stderr, "  redis restarted: 200 after %lld ms\n", (long long)t);
    assert_true(t >= 0 && t <= 1500);
    /* work resumes within about a second, whatever the backoff reached
     * (+ a write-behind window of 300 ms before offsets are stored) */
    while (metric(&r, "dealsignal_consumed_records_total{worker=\"scorer\"}") == consumed &&
           ds_clock_mono_ms() - t0 < 10000)
        ds_clock_sleep_ms(50);
    t = ds_clock_mono_ms() - t0;
    fprintf(stderr, "  redis restarted: records consumed again after %lld ms\n", (long long)t);
    assert_true(t <= 2000);
    assert_true(ds_h_wait_group(&env, r.n.group, "ready.ma", 30000));
    /* it came back with its data: nothing to write back */
    assert_int_equal(metric(&r, "dealsignal_redis_state_lost_total{worker=\"scorer\"}"), 0);
    assert_int_equal(log_count(&r, "restarted (run_id"), 1);

    /* fully idle: nothing in flight */
    ds_clock_sleep_ms(500);
    kill(env.redis_pid, SIGSTOP);
    t = time_to(&r, 503, 10000);
    fprintf(stderr, "  redis paused while idle: 503 after %lld ms\n", (long long)t);
    assert_true(t >= 0 && t <= REDIS_TIMEOUT_MS + 1000);
    ds_clock_sleep_ms(1000);
    kill(env.redis_pid, SIGCONT);
    t = time_to(&r, 200, 10000);
    fprintf(stderr, "  redis resumed: 200 after %lld ms\n", (long long)t);
    assert_true(t >= 0 && t <= 3000);

    /* the broker paused */
    kill(env.broker_pid, SIGSTOP);
    t = time_to(&r, 503, 15000);
    fprintf(stderr, "  broker paused: 503 after %lld ms\n", (long long)t);
    why = readyz_body(&r);
    kill(env.broker_pid, SIGCONT);
    assert_true(t >= 0 && t <= BROKER_TIMEOUT_MS + 2000);
    assert_non_null(strstr(why, "broker"));
    free(why);
    t = time_to(&r, 200, 20000);
    fprintf(stderr, "  broker resumed: 200 after %lld ms\n", (long long)t);
    assert_true(t >= 0);
    /* it works again: more input is applied */
    gen("marketing", "ready.ma", NULL, "33", "500");
    assert_true(ds_h_wait_group(&env, r.n.group, "ready.ma", 60000));
    assert_int_equal(ds_h_stop(r.pid, SIGTERM, 15000), 0);

    run_t ref;
    run_init(&ref, "outageref");
    start(&ref, "scorer", "ready.ma", "ready.crm");
    assert_true(ds_h_wait_group(&env, ref.n.group, "ready.ma", 60000));
    assert_int_equal(ds_h_stop(ref.pid, SIGTERM, 15000), 0);
    compare_state(&r, &ref, NULL);
    compare_outputs(&r, &ref);
}

/* Redis restarts without its data: both workers write back what they
 * hold, and the state is what it was. */
static void test_redis_back_empty(void **state) {
    (void)state;
    topics("empty");
    run_t r;
    run_init(&r, "empty");
    start(&r, "run", "empty.ma", "empty.crm");
    gen("mixed", "empty.ma", "empty.crm", "41", "2000");
    assert_true(ds_h_wait_group(&env, r.n.group, "empty.ma", 60000));
    assert_true(ds_h_wait_group(&env, r.n.group, "empty.crm", 60000));
    assert_true(time_to(&r, 200, 10000) >= 0);
    char **before;
    size_t nb = ds_h_snapshot(&env, r.n.prefix, NULL, &before);
    assert_true(nb > 100);
    ds_h_stop_redis(&env);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/appendonlydir'", env.tmpdir);
    assert_int_equal(system(cmd), 0);
    ds_h_restart_redis(&env);
    /* everything held in memory comes back, without a new event */
    char **after = NULL;
    size_t na = 0;
    int64_t end = ds_clock_mono_ms() + 20000;
    bool same = false;
    while (!same && ds_clock_mono_ms() < end) {
        ds_clock_sleep_ms(250);
        ds_h_lines_free(after, na);
        na = ds_h_snapshot(&env, r.n.prefix, NULL, &after);
        same = na == nb;
        for (size_t i = 0; same && i < na; i++)
            same = !strcmp(after[i], before[i]);
    }
    fprintf(stderr, "  before: %zu keys, after the restart: %zu\n", nb, na);
    for (size_t i = 0; !same && i < na && i < nb; i++)
        if (strcmp(after[i], before[i])) {
            fprintf(stderr, "  first difference:\n    before: %.300s\n    after: %.300s\n",
                    before[i], after[i]);
            break;
        }
    assert_true(same);
    ds_h_lines_free(after, na);
    ds_h_lines_free(before, nb);
    assert_int_equal(metric(&r, "dealsignal_redis_state_lost_total{worker=\"scorer\"}"), 1);
    assert_int_equal(metric(&r, "dealsignal_redis_state_lost_total{worker=\"watcher\"}"), 1);
    assert_int_equal(log_count(&r, "came back without the state"), 2);
    assert_int_equal(ds_h_stop(r.pid, SIGTERM, 15000), 0);
}

/* A lead whose stored state cannot be read (written by something else):
 * the scorer never overwrites it, says so in /readyz and the log, holds
 * the partition, and goes on once the key is deleted. */
static void test_unreadable_state(void **state) {
    (void)state;
    topics("bad");
    run_t r;
    run_init(&r, "bad");
    char key[160];
    snprintf(key, sizeof(key), "%s{lead:L-BAD}", r.n.prefix);
    freeReplyObject(ds_h_redis(&env, "HSET %s state not-a-state", key));
    start(&r, "scorer", "bad.ma", "bad.crm");
    assert_true(time_to(&r, 200, 30000) >= 0);
    rd_kafka_t *p = ds_h_producer(&env);
    ds_ma_event_t e = ds_h_ma("bad-1", 1700000000000LL, "L-BAD", NULL, DS_MA_CONTENT_VIEWED, "c-1",
                              "i-1", DS_CS_CONFRONT);
    ds_h_send_ma(p, "bad.ma", &e);
    ds_h_flush(p);
    rd_kafka_destroy(p);
    assert_true(time_to(&r, 503, 20000) >= 0);
    char *body = readyz_body(&r);
    assert_non_null(strstr(body, "stored state in Redis unreadable"));
    free(body);
    assert_true(log_count(&r, "{lead:L-BAD}") + log_count(&r, "L-BAD") > 0);
    assert_true(log_count(&r, "stored state in Redis cannot be read") > 0);
    char *v = ds_h_hget(&env, key, "state");
    assert_string_equal(v, "not-a-state"); /* never overwritten */
    free(v);
    freeReplyObject(ds_h_redis(&env, "DEL %s", key));
    ds_h_expect_hget(&env, key, "events_applied", "1", 15000);
    assert_true(time_to(&r, 200, 5000) >= 0);
    assert_int_equal(ds_h_stop(r.pid, SIGTERM, 15000), 0);
}

UU_MAIN(group_setup, ds_h_group_teardown, cmocka_unit_test(test_outages),
        cmocka_unit_test(test_redis_back_empty), cmocka_unit_test(test_unreadable_state))
