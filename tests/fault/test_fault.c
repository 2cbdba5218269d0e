/*
 * test_fault.c — the guarantees under faults, Kafka Streams style: one
 * seeded stream of mixed events, one uninterrupted run as the oracle, then
 * one run per fault, each compared with the oracle on
 *   - the final Redis state (every key under the run's prefix, every field:
 *     public fields, internal state blobs and checkpoints), and
 *   - the set of output ids on the run's own output topics
 *     (at least once: duplicates are allowed, a missing or extra id is not).
 *
 * The scorer runs to the end before the watcher starts, in every run, so
 * that the watcher's reads of the scorer's tiers see the same state.
 * DS_FAULT_EVENTS sets the stream size (default 200000).  DS_FAULT_PROFILE
 * sets its shape: `mixed` (default: gen's mixed stream), `wide` (gen's
 * wide marketing profile with its catalog as the rules: many leads,
 * shares, webinars, leads without an account), `skew` (one account of
 * 2,000 leads) or `heavy` (gen's skew profile over one account of 20
 * leads: each has hundreds of event ids, kept apart from its record),
 * each of the last three with a quarter as many CRM events of gen's mix
 * for the watcher.
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

#include "ds_clock.h"
#include "harness.h"

static ds_h_env_t env;
static char schemas[256];
static long events = 200000;
static const char *profile = "mixed";
static char rules[300]; /* the profile's rules file ("": the defaults) */

typedef struct strs {
    char **v;
    size_t n, cap;
} strs_t;

static void strs_free(strs_t *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* ---- runs ------------------------------------------------------------------- */

typedef struct run {
    ds_h_names_t n;
} run_t;

static void run_init(run_t *r, const char *name) {
    ds_h_names(&r->n, "fault", name, true);
    ds_h_create_topic(&env, r->n.ls, 16);
    ds_h_create_topic(&env, r->n.as, 16);
    ds_h_create_topic(&env, r->n.al, 16);
}

/* The log of the run's `what` (scorer or watcher) workers. */
static void log_path(const run_t *r, const char *what, char *out, size_t size) {
    snprintf(out, size, "%s/%s-%s.log", env.tmpdir, r->n.name, what);
}

/* The oracle runs with the default batch size and writes every batch's
 * changes in that batch (redis.flush_ms 0); the faulted runs take batches
 * of at most 200 records and write-behind windows of 700 ms, each written
 * in shares over the next, so that their batches and writes fall
 * elsewhere: the final state must not depend on where they fell. */
static pid_t start(const run_t *r, const char *what) {
    char log[256];
    log_path(r, what, log, sizeof(log));
    bool oracle = !strcmp(r->n.name, "oracle");
    ds_h_args_t a;
    ds_h_worker_args(&a, &env, what, env.redis_url, r->n.group, r->n.prefix);
    ds_h_args_add(&a, "--topic-lead-scores", r->n.ls, "--topic-account-scores", r->n.as,
                  "--topic-alerts", r->n.al, "--batch-size", oracle ? "10000" : "200",
                  "--redis-flush-ms", oracle ? "0" : "700", "--log-level", "info", NULL);
    if (rules[0])
        ds_h_args_add(&a, "--rules", rules, NULL);
    return ds_h_spawn(log, a.v);
}

static const char *input_of(const char *what) {
    return !strcmp(what, "scorer") ? "ma.events" : "crm.events";
}

/* Wait for the group to consume the whole input, stop the workers (each
 * must exit 0) and check that no delivery report came for a batch that
 * had none outstanding (the counts of its outputs' acks were wrong). */
static void finish(const run_t *r, const char *what, pid_t *pids, int npids) {
    /* an undisturbed phase takes under a minute, these seldom two */
    bool done = ds_h_wait_group(&env, r->n.group, input_of(what), 300000);
    char log[256];
    log_path(r, what, log, sizeof(log));
    if (!done) { /* what the group and the worker were doing, for the record */
        fprintf(stderr, "  %s: the group did not consume its input\n", what);
        ds_h_show_group(&env, r->n.group, input_of(what));
        ds_h_show_log(log, 80);
    }
    for (int i = 0; i < npids; i++)
        if (pids[i] > 0)
            assert_int_equal(ds_h_stop(pids[i], SIGTERM, 15000), 0);
    assert_true(done);
    assert_int_equal(ds_h_log_count(log, "a delivery report for a counter"), 0);
}

/* ---- snapshots ----------------------------------------------------------------- */

static void snapshot(const run_t *r, strs_t *out) {
    out->n = out->cap = ds_h_snapshot(&env, r->n.prefix, NULL, &out->v);
}

/* With DS_FAULT_DUMP set: every AccountScore of the run, in topic order,
 * to <tmpdir>/<run>-accounts.txt (with DS_KEEP_TMP=1, to read after a
 * divergence). */
static void dump_accounts(const run_t *r) {
    if (!getenv("DS_FAULT_DUMP"))
        return;
    char path[400];
    snprintf(path, sizeof(path), "%s/%s-accounts.txt", env.tmpdir, r->n.name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    ds_h_record_t *recs;
    size_t k = ds_h_consume(&env, r->n.as, SIZE_MAX, 60000, &recs);
    ds_arena_t arena;
    ds_arena_init(&arena, 1 << 20);
    for (size_t i = 0; i < k; i++) {
        ds_account_score_t a;
        char detail[200];
        ds_arena_reset(&arena);
        if (ds_codec_decode_account_score(ds_h_codec(), recs[i].val, recs[i].len, &arena, &a,
                                          detail, sizeof(detail)))
            continue;
        fprintf(f, "%d@%lld %s engaged=%d confronted=%d consensus=%.1f top=%s mob=%zu as_of=%lld\n",
                recs[i].partition, (long long)recs[i].offset,
                ds_h_header(&recs[i], "dealsignal.id"), a.engaged_stakeholders,
                a.confronted_stakeholders, a.consensus, a.top_insight ? a.top_insight : "-",
                a.mobilizers_count, (long long)a.as_of);
    }
    ds_arena_free(&arena);
    ds_h_records_free(recs, k);
    fclose(f);
}

static void output_ids(const run_t *r, strs_t *out) {
    const char *topics[] = {r->n.ls, r->n.as, r->n.al};
    out->n = out->cap = ds_h_output_ids(&env, topics, 3, &out->v);
    dump_accounts(r);
}

static strs_t oracle_state, oracle_ids;

static void compare(const run_t *r) {
    strs_t st = {0}, ids = {0};
    snapshot(r, &st);
    output_ids(r, &ids);
    fprintf(stderr, "  %s: %zu keys (oracle %zu), %zu output ids (oracle %zu)\n", r->n.name, st.n,
            oracle_state.n, ids.n, oracle_ids.n);
    /* the lines one side has and the other has not (merge of sorted lists) */
    for (size_t i = 0, j = 0, shown = 0; (i < st.n || j < oracle_state.n) && shown < 6;) {
        int c = i == st.n ? 1 : j == oracle_state.n ? -1 : strcmp(st.v[i], oracle_state.v[j]);
        if (!c) {
            i++, j++;
            continue;
        }
        if (c < 0)
            fprintf(stderr, "    only %s: %.300s\n", r->n.name, st.v[i++]);
        else
            fprintf(stderr, "    only oracle: %.300s\n", oracle_state.v[j++]);
        shown++;
    }
    assert_int_equal(st.n, oracle_state.n);
    for (size_t i = 0; i < st.n; i++)
        assert_string_equal(st.v[i], oracle_state.v[i]);
    /* the ids one side has and the other has not (merge of sorted lists) */
    for (size_t i = 0, j = 0, shown = 0; (i < ids.n || j < oracle_ids.n) && shown < 10;) {
        int c = i == ids.n ? 1 : j == oracle_ids.n ? -1 : strcmp(ids.v[i], oracle_ids.v[j]);
        if (c) {
            fprintf(stderr, "  %s: %s\n", c < 0 ? "extra" : "missing",
                    c < 0 ? ids.v[i] : oracle_ids.v[j]);
            shown++;
        }
        i += c <= 0;
        j += c >= 0;
    }
    assert_int_equal(ids.n, oracle_ids.n);
    for (size_t i = 0; i < ids.n; i++)
        assert_string_equal(ids.v[i], oracle_ids.v[i]);
    strs_free(&st);
    strs_free(&ids);
}

/* ---- faults ---------------------------------------------------------------------- */

typedef void (*fault_fn)(const run_t *r, const char *what);

static void phase(const run_t *r, const char *what, fault_fn fault) {
    if (fault) {
        fault(r, what);
        return;
    }
    pid_t p = start(r, what);
    finish(r, what, &p, 1);
}

static void run_all(const char *name, fault_fn fault, bool is_oracle) {
    run_t r;
    run_init(&r, name);
    int64_t t0 = ds_clock_mono_ms();
    phase(&r, "scorer", fault);
    phase(&r, "watcher", fault);
    fprintf(stderr, "  %s: both phases in %.1f s\n", name, (ds_clock_mono_ms() - t0) / 1000.0);
    if (is_oracle) {
        snapshot(&r, &oracle_state);
        output_ids(&r, &oracle_ids);
        assert_true(oracle_state.n > 100);
        assert_true(oracle_ids.n > 100);
    } else {
        compare(&r);
    }
}

/* Three kill -9, each once the worker (started again) has stored more
 * than the one before, and up to a second later: a fixed delay would spend
 * itself on the group join (the embedded broker's takes seconds, and a
 * killed member's session must expire first).  The broker answers 150 ms
 * late meanwhile, so that the stream (the watcher's is short) lasts long
 * enough for the kills to fall inside it. */
static void kill9(const run_t *r, const char *what) {
    ds_h_broker_ctl(&env, "rtt 1 150");
    pid_t p = start(r, what);
    int64_t stored = 0;
    for (int i = 0; i < 3; i++) {
        stored = ds_h_wait_group_consumed(&env, r->n.group, input_of(what), stored, 120000);
        assert_true(stored >= 0);
        ds_clock_sleep_ms(rand() % 1000);
        fprintf(stderr, "  kill -9 %s (%d), %lld stored\n", what, i + 1, (long long)stored);
        ds_h_stop(p, SIGKILL, 5000);
        p = start(r, what);
    }
    ds_h_broker_ctl(&env, "rtt 1 0");
    finish(r, what, &p, 1);
}

/* Redis is killed once the worker has stored something (as kill9 times
 * its kills), while the broker answers 150 ms late so that the stream
 * (the watcher's is short) outlasts the join: the outage falls among
 * batches, some of whose writes are sent and not yet answered. */
static void redis_outage(const run_t *r, const char *what) {
    ds_h_broker_ctl(&env, "rtt 1 150");
    pid_t p = start(r, what);
    int64_t stored = ds_h_wait_group_consumed(&env, r->n.group, input_of(what), 0, 120000);
    assert_true(stored >= 0);
    ds_clock_sleep_ms(rand() % 500);
    fprintf(stderr, "  redis-server killed for 10 s with %lld stored (AOF appendfsync always)\n",
            (long long)stored);
    ds_h_stop_redis(&env);
    ds_clock_sleep_ms(10000);
    ds_h_restart_redis(&env);
    ds_h_broker_ctl(&env, "rtt 1 0");
    finish(r, what, &p, 1);
}

/* Whether the worker's log (info level) says that it holds an assignment
 * again: of its lines "partitions assigned", "partitions revoked" and a
 * group session timeout, the last is an assignment. */
static bool assigned_again(const char *log) {
    FILE *f = fopen(log, "r");
    if (!f)
        return false;
    char line[8192];
    bool assigned = false;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, "partitions assigned"))
            assigned = true;
        else if (strstr(line, "partitions revoked") || strstr(line, "SESSTMOUT"))
            assigned = false;
    fclose(f);
    return assigned;
}

/* A log line's time (its ts=…THH:MM:SS.mmmZ) in ms of the day; -1 when
 * it has none. */
static int64_t line_ms(const char *line) {
    const char *t = strstr(line, "ts=");
    int h, m, sec, ms;
    if (!t || !(t = strchr(t, 'T')) || sscanf(t, "T%d:%d:%d.%dZ", &h, &m, &sec, &ms) != 4)
        return -1;
    return ((h * 60 + m) * 60 + sec) * 1000LL + ms;
}

/* How long after librdkafka logged the broker's disconnect the worker
 * thread served the first error event of its consumer (its own "kafka: …"
 * or "all brokers are down" line): the worker must keep serving its
 * consumer while it waits for the outage to end.  -1: no such pair. */
static int64_t error_served_after_ms(const char *log, const char *what) {
    FILE *f = fopen(log, "r");
    if (!f)
        return -1;
    char line[8192], comp[64];
    snprintf(comp, sizeof(comp), "comp=%s ", what);
    int64_t down = -1, served = -1;
    while (served < 0 && fgets(line, sizeof(line), f)) {
        if (down < 0 && strstr(line, "comp=kafka ") && strstr(line, "Disconnected"))
            down = line_ms(line);
        else if (down >= 0 && strstr(line, comp) &&
                 (strstr(line, "msg=\"kafka: ") || strstr(line, "all brokers are down")))
            served = line_ms(line);
    }
    fclose(f);
    return down < 0 || served < 0 ? -1 : served - down;
}

/* The broker answers every request 30 ms late, so that the stream takes
 * long enough for the faults to fall inside it, and the faults begin once
 * the worker is consuming (a group join on the embedded broker takes
 * seconds: a fixed delay would spend them on the join): they fall among
 * batches whose outputs wait for acks.  The broker is then down for longer
 * than the group session (6 s): the worker loses its partitions and joins
 * again, abandoning those batches while their outputs are still in the
 * producer. */
static void broker_faults(const run_t *r, const char *what) {
    ds_h_broker_ctl(&env, "rtt 1 30");
    pid_t p = start(r, what);
    assert_true(ds_h_wait_group_consumed(&env, r->n.group, input_of(what), 0, 60000) >= 0);
    ds_h_broker_ctl(&env, "push-errors Produce 20 NOT_LEADER_FOR_PARTITION");
    ds_h_broker_ctl(&env, "push-errors Fetch 20 NOT_LEADER_FOR_PARTITION");
    ds_h_broker_ctl(&env, "push-errors OffsetCommit 10 COORDINATOR_NOT_AVAILABLE");
    ds_clock_sleep_ms(300);
    ds_h_broker_ctl(&env, "broker-down 1");
    ds_clock_sleep_ms(8000);
    ds_h_broker_ctl(&env, "broker-up 1");
    ds_h_broker_ctl(&env, "rtt 1 0");
    /* the stop comes once the worker holds its partitions again: closed
     * while its group hands it an assignment, librdkafka 2.0.2 can hang or
     * abort (docs/OPERATIONS.md) */
    char log[256];
    log_path(r, what, log, sizeof(log));
    int64_t end = ds_clock_mono_ms() + 90000;
    while (!assigned_again(log)) {
        assert_true(ds_clock_mono_ms() < end);
        ds_clock_sleep_ms(200);
    }
    finish(r, what, &p, 1);
    /* while paused for the outage it serves its consumer every second (a
     * watermark query for the lag metric held it for the whole outage) */
    int64_t served = error_served_after_ms(log, what);
    fprintf(stderr, "  %s: the consumer's first error served %lld ms after the disconnect\n", what,
            (long long)served);
    assert_in_range(served, 0, 3000);
}

static void three_workers(const run_t *r, const char *what) {
    pid_t p[4];
    p[0] = start(r, what);
    p[1] = start(r, what);
    p[2] = start(r, what);
    ds_clock_sleep_ms(4000);
    fprintf(stderr, "  a fourth %s joins, one leaves\n", what);
    p[3] = start(r, what);
    ds_clock_sleep_ms(2000);
    assert_int_equal(ds_h_stop(p[1], SIGTERM, 15000), 0);
    p[1] = -1;
    finish(r, what, p, 4);
}

/* SIGTERM once the worker is consuming (as kill9 times its kills), with
 * batches in flight: it must finish them, commit and exit 0. */
static void sigterm_midstream(const run_t *r, const char *what) {
    ds_h_broker_ctl(&env, "rtt 1 150");
    pid_t p = start(r, what);
    int64_t stored = ds_h_wait_group_consumed(&env, r->n.group, input_of(what), 0, 120000);
    assert_true(stored >= 0);
    ds_clock_sleep_ms(rand() % 1000);
    int64_t t0 = ds_clock_mono_ms();
    int rc = ds_h_stop(p, SIGTERM, 10000);
    fprintf(stderr, "  SIGTERM with %lld stored: exit %d after %lld ms\n", (long long)stored, rc,
            (long long)(ds_clock_mono_ms() - t0));
    assert_int_equal(rc, 0);
    p = start(r, what);
    ds_h_broker_ctl(&env, "rtt 1 0");
    finish(r, what, &p, 1);
}

/* Each case replays the stream through run_all with one fault (the
 * oracle: none, and its state is what the others are compared with). */
#define FAULT_CASE(name, label, fault, oracle)                                                     \
    static void test_##name(void **s) {                                                            \
        (void)s;                                                                                   \
        run_all(label, fault, oracle);                                                             \
    }
FAULT_CASE(oracle, "oracle", NULL, true)
FAULT_CASE(kill9, "kill9", kill9, false)
FAULT_CASE(redis_outage, "redis", redis_outage, false)
FAULT_CASE(broker_faults, "broker", broker_faults, false)
FAULT_CASE(rebalance, "group", three_workers, false)
FAULT_CASE(sigterm, "sigterm", sigterm_midstream, false)

/* `dealsignal gen` with args (NULL-terminated) after the broker and
 * schemas, stdout to `out` (NULL: the gen log); whether it exited 0. */
static bool gen(const char *out, const char *const *args) {
    ds_h_args_t a = {0};
    ds_h_args_add(&a, "gen", "--brokers", env.brokers, "--schemas", schemas, NULL);
    for (; *args; args++)
        ds_h_args_add(&a, *args, NULL);
    char log[300];
    snprintf(log, sizeof(log), "%s/gen.log", env.tmpdir);
    return ds_h_stop(ds_h_spawn(out ? out : log, a.v), 0, 600000) == 0;
}

/* The input stream of the profile, into the default input topics. */
static bool make_stream(void) {
    if (!strcmp(profile, "mixed"))
        return ds_h_gen_mixed(&env, events);
    bool heavy = !strcmp(profile, "heavy");
    if (strcmp(profile, "wide") && strcmp(profile, "skew") && !heavy) {
        fprintf(stderr, "DS_FAULT_PROFILE must be mixed, wide, skew or heavy, not %s\n", profile);
        return false;
    }
    const char *shape = heavy ? "skew" : profile;
    snprintf(rules, sizeof(rules), "%s/%s-rules.yaml", env.tmpdir, shape);
    char count[32], crm[32];
    snprintf(count, sizeof(count), "%ld", events);
    snprintf(crm, sizeof(crm), "%ld", events / 4);
    const char *print[] = {"--profile", shape, "--print-rules", NULL};
    /* wide: 2,000 accounts of 12 leads; skew: one account of 2,000 leads;
     * heavy: one of 20 */
    const char *mk[] = {"--profile",
                        shape,
                        "--count",
                        count,
                        "--rate",
                        "0",
                        "--seed",
                        "5",
                        !strcmp(profile, "wide") ? "--accounts" : "--leads",
                        heavy ? "20" : "2000",
                        NULL};
    const char *deals[] = {"--scenario", "crm",    "--count", crm, "--rate",
                           "0",          "--seed", "11",      NULL};
    return gen(rules, print) && gen(NULL, mk) && gen(NULL, deals);
}

int main(void) {
    const char *ev = getenv("DS_FAULT_EVENTS");
    if (ev)
        events = strtol(ev, NULL, 10);
    if (getenv("DS_FAULT_PROFILE"))
        profile = getenv("DS_FAULT_PROFILE");
    srand(7);
    ds_h_start_aof(&env, 8);
    snprintf(schemas, sizeof(schemas), "%s", getenv("DS_SCHEMAS_DIR"));
    if (!make_stream()) {
        fprintf(stderr, "gen failed\n");
        return 1;
    }
    fprintf(stderr, "test_fault: %ld events, profile %s\n", events, profile);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle),       cmocka_unit_test(test_kill9),
        cmocka_unit_test(test_redis_outage), cmocka_unit_test(test_broker_faults),
        cmocka_unit_test(test_rebalance),    cmocka_unit_test(test_sigterm),
    };
    /* DS_FAULT_ONLY=NAME[,NAME…] (e.g. broker_faults): the oracle and
     * those faults only */
    int rc = ds_h_run_tests("test_fault", tests, sizeof(tests) / sizeof(tests[0]), "DS_FAULT_ONLY");
    strs_free(&oracle_state);
    strs_free(&oracle_ids);
    ds_h_cleanup();
    return rc;
}
