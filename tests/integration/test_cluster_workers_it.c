/*
 * test_cluster_workers_it.c — the scorer and the watcher on a real Redis
 * Cluster (three masters with a replica each), compared with one run
 * against one plain Redis (the oracle) on
 *   - the final state: every key under the run's prefix, every field, read
 *     from every master, and
 *   - the set of output ids on the run's own output topics (at least once:
 *     duplicates allowed, a missing or extra id is not).
 * Runs: the cluster as is; slots resharded (redis-cli --cluster reshard)
 * while the input arrives, redirects counted in /metrics; three workers in
 * one group, one killed with SIGKILL mid-stream and replaced; a slot left
 * half migrated (by hand: the keys of one account that a scorer write
 * reaches last moved, the rest not) while the input's second half
 * arrives: no EVALSHA may fail part way on any master, some are refused
 * whole, and the run ends oracle-equal once the slot has moved; a master
 * killed mid-stream (its replica takes over, the old master comes back as
 * a replica) with redis.wait_replicas 1: /readyz says not ready and names
 * Redis, the worker waits, resumes and ends oracle-equal; a master paused
 * (SIGSTOP, shorter than the cluster's node timeout) mid-stream and again
 * while the worker is idle: /readyz turns 503 within redis.timeout_ms + 1 s
 * naming that master, 200 again once it answers, and the run ends
 * oracle-equal; a master restarted empty mid-stream (before its replica
 * could take over, so the replica copies the empty master) with
 * redis.wait_replicas 1 and redis.timeout_ms 500 (shorter than the
 * restarted master's CLUSTERDOWN, so that the write round fails first):
 * the worker writes back what it holds instead of replaying from the
 * committed offsets, and ends oracle-equal.
 *
 * One seeded stream (dealsignal gen) is copied into each run's own input
 * topics, at once or paced (so that a fault falls mid-stream); the scorer
 * runs to the end before the watcher starts, in every run, so that the
 * watcher's reads of the scorer's tiers see the same state.
 * DS_CLUSTER_EVENTS sets the stream size (default 4000); DS_CLUSTER_ONLY=NAME
 * runs the oracle and test_NAME only (e.g. master_back_empty); DS_KEEP_TMP
 * keeps the logs and data (the harness says where).
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
static ds_h_cluster_t cl;
static char schemas[256];
static long events = 4000;
static ds_h_record_t *src_ma, *src_crm;
static size_t nsrc_ma, nsrc_crm;

/* ---- runs ------------------------------------------------------------------------ */

typedef struct run {
    ds_h_names_t n;
    char in_ma[64], in_crm[64];
    bool plain;          /* the oracle: one plain Redis */
    bool wait;           /* redis.wait_replicas 1 */
    bool quick;          /* redis.timeout_ms 500 */
    char metrics[4][64]; /* --metrics-addr of the workers started (by slot) */
} run_t;

static void run_init(run_t *r, const char *name) {
    memset(r, 0, sizeof(*r));
    ds_h_names(&r->n, "cl", name, true);
    snprintf(r->in_ma, sizeof(r->in_ma), "ma.%s", name);
    snprintf(r->in_crm, sizeof(r->in_crm), "crm.%s", name);
    const char *t[] = {r->in_ma, r->in_crm};
    for (int i = 0; i < 2; i++) {
        char dlq[80];
        ds_h_create_topic(&env, t[i], 4);
        snprintf(dlq, sizeof(dlq), "%s.dlq", t[i]);
        ds_h_create_topic(&env, dlq, 4);
    }
    ds_h_create_topic(&env, r->n.ls, 8);
    ds_h_create_topic(&env, r->n.as, 8);
    ds_h_create_topic(&env, r->n.al, 8);
}

static bool is_scorer(const char *what) {
    return !strcmp(what, "scorer");
}

static const char *input_of(const run_t *r, const char *what) {
    return is_scorer(what) ? r->in_ma : r->in_crm;
}

/* The oracle as in the fault test: default batches, every batch's state
 * written in that batch; the cluster runs: batches of 200, write-behind
 * windows of 700 ms. */
static pid_t start(run_t *r, const char *what, int slot) {
    char log[256];
    snprintf(log, sizeof(log), "%s/%s-%s.log", env.tmpdir, r->n.name, what);
    snprintf(r->metrics[slot], sizeof(r->metrics[slot]), "127.0.0.1:%d", ds_h_free_port());
    ds_h_args_t a;
    ds_h_worker_args(&a, &env, what, r->plain ? env.redis_url : cl.url, r->n.group, r->n.prefix);
    ds_h_args_add(&a, "--topic-marketing", r->in_ma, "--topic-crm", r->in_crm,
                  "--topic-lead-scores", r->n.ls, "--topic-account-scores", r->n.as,
                  "--topic-alerts", r->n.al, "--batch-size", r->plain ? "10000" : "200",
                  "--redis-flush-ms", r->plain ? "0" : "700", "--log-level", "warn",
                  "--metrics-addr", r->metrics[slot], NULL);
    if (!r->plain)
        ds_h_args_add(&a, "--redis-seeds", cl.seeds, NULL);
    if (r->wait)
        ds_h_args_add(&a, "--redis-wait-replicas", "1", NULL);
    if (r->quick) {
        ds_h_args_add(&a, "--redis-timeout-ms", "500", NULL);
        if (r->wait) /* less than redis.timeout_ms */
            ds_h_args_add(&a, "--redis-wait-timeout-ms", "200", NULL);
    }
    return ds_h_spawn(log, a.v);
}

/* ---- input -------------------------------------------------------------------------- */

/* A feed thread copies one worker's input into the run's topic.  Its
 * feed_t is the harness's heap copy (the case keeps a pointer to it), and
 * it stops early when the harness stops a failed case's threads. */
typedef struct feed {
    char topic[64];
    const ds_h_record_t *recs;
    size_t n;
    int per_sec; /* 0: all at once */
    int done;    /* atomic */
} feed_t;

static void *feed_run(void *arg) {
    feed_t *f = arg;
    rd_kafka_t *p = ds_h_producer(&env);
    int64_t t0 = ds_clock_mono_ms();
    for (size_t i = 0; i < f->n && !ds_h_stopping(); i++) {
        ds_h_produce(p, f->topic, f->recs[i].key, f->recs[i].val, f->recs[i].len);
        if (f->per_sec && i % 50 == 49) {
            int64_t due = t0 + (int64_t)((i + 1) * 1000 / (size_t)f->per_sec);
            int64_t now = ds_clock_mono_ms();
            if (due > now)
                ds_clock_sleep_ms(due - now);
            rd_kafka_poll(p, 0);
        }
    }
    ds_h_flush(p);
    rd_kafka_destroy(p);
    __atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* records [from, to) of one worker's input (to SIZE_MAX: all) */
static feed_t *feed_slice(const run_t *r, const char *what, size_t from, size_t to, int per_sec) {
    size_t all = is_scorer(what) ? nsrc_ma : nsrc_crm;
    to = to < all ? to : all;
    feed_t f = {.recs = (is_scorer(what) ? src_ma : src_crm) + from,
                .n = to - from,
                .per_sec = per_sec};
    snprintf(f.topic, sizeof(f.topic), "%s", input_of(r, what));
    return ds_h_thread_start(feed_run, &f, sizeof(f));
}

static feed_t *feed_start(const run_t *r, const char *what, int per_sec) {
    return feed_slice(r, what, 0, SIZE_MAX, per_sec);
}

static bool feed_done(feed_t *f) {
    return __atomic_load_n(&f->done, __ATOMIC_ACQUIRE);
}

static void feed_wait(feed_t *f) {
    ds_h_thread_join(f);
}

static void finish(const run_t *r, const char *what, pid_t *pids, int npids) {
    bool done = ds_h_wait_group(&env, r->n.group, input_of(r, what), 120000);
    for (int i = 0; i < npids; i++)
        if (pids[i] > 0)
            assert_int_equal(ds_h_stop(pids[i], SIGTERM, 15000), 0);
    assert_true(done);
}

/* ---- comparison ------------------------------------------------------------------ */

static char **oracle_state, **oracle_ids;
static size_t noracle_state, noracle_ids;

static int cmpstr(const void *a, const void *b);

/* The watcher's partition keys name the input topic, the run's own: the
 * same name for every run in the comparison. */
static size_t state_of(const run_t *r, char ***out) {
    size_t n;
    if (r->plain) {
        n = ds_h_snapshot(&env, r->n.prefix, NULL, out);
    } else {
        int m[DS_H_CLUSTER_MAX], ports[DS_H_CLUSTER_MAX];
        int nm = ds_h_cluster_masters(&cl, m);
        for (int i = 0; i < nm; i++)
            ports[i] = cl.port[m[i]];
        n = ds_h_snapshot_ports(ports, nm, r->n.prefix, NULL, out);
    }
    char from[80];
    snprintf(from, sizeof(from), "{wpart:%s:", r->in_crm);
    for (size_t i = 0; i < n; i++) {
        char *line = (*out)[i];
        if (strncmp(line, from, strlen(from)))
            continue;
        size_t l = strlen(line) + 16;
        char *x = malloc(l);
        snprintf(x, l, "{wpart:IN:%s", line + strlen(from));
        free(line);
        (*out)[i] = x;
    }
    qsort(*out, n, sizeof(char *), cmpstr);
    return n;
}

static int cmpstr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t ids_of(const run_t *r, char ***out) {
    const char *topics[] = {r->n.ls, r->n.as, r->n.al};
    return ds_h_output_ids(&env, topics, 3, out);
}

static void compare(const run_t *r) {
    char **st, **ids;
    size_t nst = state_of(r, &st), nids = ids_of(r, &ids);
    fprintf(stderr, "  %s: %zu keys (oracle %zu), %zu output ids (oracle %zu)\n", r->n.name, nst,
            noracle_state, nids, noracle_ids);
    for (size_t i = 0; i < nst && i < noracle_state; i++)
        if (strcmp(st[i], oracle_state[i])) {
            fprintf(stderr, "  first difference:\n    oracle: %.300s\n    %s: %.300s\n",
                    oracle_state[i], r->n.name, st[i]);
            break;
        }
    assert_int_equal(nst, noracle_state);
    for (size_t i = 0; i < nst; i++)
        assert_string_equal(st[i], oracle_state[i]);
    for (size_t i = 0, j = 0, shown = 0; (i < nids || j < noracle_ids) && shown < 10;) {
        int c = i == nids ? 1 : j == noracle_ids ? -1 : strcmp(ids[i], oracle_ids[j]);
        if (c) {
            fprintf(stderr, "  %s: %s\n", c < 0 ? "extra" : "missing",
                    c < 0 ? ids[i] : oracle_ids[j]);
            shown++;
        }
        i += c <= 0;
        j += c >= 0;
    }
    assert_int_equal(nids, noracle_ids);
    for (size_t i = 0; i < nids; i++)
        assert_string_equal(ids[i], oracle_ids[i]);
    ds_h_lines_free(st, nst);
    ds_h_lines_free(ids, nids);
}

static double scrape(const char *addr, const char *prefix) {
    char *body = NULL;
    if (ds_h_http_get(addr, "/metrics", &body) != 200) {
        free(body);
        return -1;
    }
    double v = ds_h_metric_sum(body, prefix);
    free(body);
    return v;
}

/* ---- phases ---------------------------------------------------------------------- */

typedef void (*phase_fn)(run_t *r, const char *what);
static void pause_phase(run_t *r, const char *what);
static void empty_phase(run_t *r, const char *what);

/* one worker, the whole input at once */
static void plain_phase(run_t *r, const char *what) {
    feed_t *f = feed_start(r, what, 0);
    pid_t p = start(r, what, 0);
    feed_wait(f);
    finish(r, what, &p, 1);
}

static void run_all(const char *name, phase_fn fn, bool plain, bool wait) {
    run_t r;
    run_init(&r, name);
    r.plain = plain;
    r.wait = wait;
    r.quick = fn == pause_phase || fn == empty_phase;
    int64_t t0 = ds_clock_mono_ms();
    fn(&r, "scorer");
    fn(&r, "watcher");
    fprintf(stderr, "  %s: both phases in %.1f s\n", name, (ds_clock_mono_ms() - t0) / 1000.0);
    if (plain) {
        noracle_state = state_of(&r, &oracle_state);
        noracle_ids = ids_of(&r, &oracle_ids);
        assert_true(noracle_state > 100);
        assert_true(noracle_ids > 100);
    } else {
        compare(&r);
    }
}

/* slots move from master to master, round after round, for as long as
 * the input arrives */
static void reshard_phase(run_t *r, const char *what) {
    int m[DS_H_CLUSTER_MAX];
    assert_int_equal(ds_h_cluster_masters(&cl, m), 3);
    pid_t p = start(r, what, 0);
    ds_clock_sleep_ms(3000); /* in the group */
    feed_t *f = feed_start(r, what, (int)(nsrc_ma + nsrc_crm) / 8);
    char log[256];
    snprintf(log, sizeof(log), "%s/reshard-cli-%s.log", env.tmpdir, what);
    int rounds = 0;
    for (int k = 0; !feed_done(f) || rounds == 0; k++, rounds++) {
        assert_true(ds_h_cluster_wait_ok(&cl, 20000)); /* all agree before the next */
        pid_t rs = ds_h_cluster_reshard(&cl, m[k % 3], m[(k + 1) % 3], 400, log);
        int st;
        waitpid(rs, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) {
            char cmd[300];
            snprintf(cmd, sizeof(cmd), "tail -20 '%s' >&2", log);
            if (system(cmd)) {
            }
            fail_msg("redis-cli --cluster reshard failed");
        }
    }
    fprintf(stderr, "  %s: %d rounds of 400 slots moved while the input arrived\n", what, rounds);
    feed_wait(f);
    assert_true(ds_h_wait_group(&env, r->n.group, input_of(r, what), 120000));
    double redirects = scrape(r->metrics[0], "dealsignal_redis_redirects_total{");
    fprintf(stderr, "  %s: %.0f redirects followed during the reshard\n", what, redirects);
    assert_true(redirects > 0);
    finish(r, what, &p, 1);
    assert_true(ds_h_cluster_wait_ok(&cl, 20000));
}

/* x, a reply that is not an error (freed) */
static void reply_ok(redisReply *x, const char *what) {
    if (!x || x->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", what, x ? x->str : "no reply");
    freeReplyObject(x);
}

/* node i's CLUSTER MYID */
static void node_id(int i, char *out, size_t size) {
    redisReply *x = ds_h_node(&cl, i, "CLUSTER MYID");
    assert_true(x && x->type == REDIS_REPLY_STRING);
    snprintf(out, size, "%s", x->str);
    freeReplyObject(x);
}

/* cmdstat_evalsha's `field` (rejected_calls, failed_calls) on node i */
static long evalsha_stat(int i, const char *field) {
    redisReply *x = ds_h_node(&cl, i, "INFO commandstats");
    long v = 0;
    const char *l = x && x->str ? strstr(x->str, "cmdstat_evalsha:") : NULL;
    const char *f = l ? strstr(l, field) : NULL, *eol = l ? strchr(l, '\n') : NULL;
    if (f && (!eol || f < eol))
        v = strtol(f + strlen(field) + 1, NULL, 10);
    if (x)
        freeReplyObject(x);
    return v;
}

static long evalsha_stat_all(const int *m, int nm, const char *field) {
    long v = 0;
    for (int i = 0; i < nm; i++)
        v += evalsha_stat(m[i], field);
    return v;
}

/* MIGRATE key from node `from` to node `to` */
static void migrate_key(int from, int to, const char *key) {
    reply_ok(ds_h_node(&cl, from, "MIGRATE 127.0.0.1 %d %s 0 5000", cl.port[to], key), key);
}

typedef struct acct_count {
    const char *key;
    size_t n;
} acct_count_t;

static int by_count(const void *a, const void *b) {
    const acct_count_t *x = a, *y = b;
    return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->key, y->key);
}

/* The account of the second half of the scorer's input (from `half` on)
 * with the most events there, among those whose hash the first half
 * wrote (in out, its hash's key); at least 10 events, so that its writes
 * reach the keys the case moves.  The busiest one's hash is waited for up
 * to 30 s (after a backlog a write-behind window lasts up to
 * redis.flush_max_ms, and a slow machine is behind longer), the others
 * asked for up to three times. */
static void busiest_account(const run_t *r, size_t half, char *out, size_t size) {
    acct_count_t *c = calloc(nsrc_ma, sizeof(*c));
    assert_non_null(c);
    size_t nc = 0;
    for (size_t i = half; i < nsrc_ma; i++) {
        size_t k = 0;
        while (k < nc && strcmp(c[k].key, src_ma[i].key))
            k++;
        if (k == nc)
            c[nc++].key = src_ma[i].key;
        c[k].n++;
    }
    qsort(c, nc, sizeof(*c), by_count);
    size_t best = 0;
    for (size_t k = 0; k < nc && !best; k++) {
        char key[256];
        snprintf(key, sizeof(key), "%s{acct:%s}", r->n.prefix, c[k].key);
        char *ck = NULL;
        for (int t = 0; t < (k ? 3 : 150) && !ck; t++) {
            if (t)
                ds_clock_sleep_ms(200);
            ck = ds_h_cluster_hget(&cl, key, "checkpoint");
        }
        if (ck) {
            best = c[k].n;
            snprintf(out, size, "%s", key);
        }
        free(ck);
    }
    free(c);
    fprintf(stderr, "  %s: %zu of the second half's events\n", out, best);
    assert_true(best >= 10);
}

/* A slot caught half migrated by the scorer's writes: the keys of one
 * account that a run writes after its lead hashes and its hash (its lead
 * set, insight sums, dictionary, attendance and mobilizers) moved to the
 * importing master, the rest left on the migrating one, while the second
 * half of the input arrives.  A run that writes one of the moved keys is
 * refused whole (ASK, then TRYAGAIN) until the migration ends: no EVALSHA
 * fails on any master (one that failed had run part of its writes: the
 * script stopped at its first moved key, after the leads and the
 * checkpoint), some are refused, and once the slot has moved the run ends
 * oracle-equal.  The scorer only; the watcher runs as in plain_phase. */
/* The scorer's input reordered so that its first `*half` records are the
 * first half of each partition's and the rest the others, each
 * partition's in their order (so every record keeps its offset, which
 * the checkpoints hold).  The input as consumed is grouped by partition:
 * a plain cut in the middle left most accounts wholly on one side, and
 * the busiest account of the second half had no state from the first. */
static void halve_by_partition(size_t *half) {
    enum { MAXP = 64 };
    size_t all[MAXP] = {0}, seen[MAXP];
    for (size_t i = 0; i < nsrc_ma; i++) {
        assert_true(src_ma[i].partition >= 0 && src_ma[i].partition < MAXP);
        all[src_ma[i].partition]++;
    }
    ds_h_record_t *a = malloc(nsrc_ma * sizeof(*a));
    assert_non_null(a);
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        memset(seen, 0, sizeof(seen));
        for (size_t i = 0; i < nsrc_ma; i++) {
            int32_t p = src_ma[i].partition;
            if ((seen[p]++ < all[p] / 2) == (pass == 0))
                a[n++] = src_ma[i];
        }
        if (pass == 0)
            *half = n;
    }
    memcpy(src_ma, a, nsrc_ma * sizeof(*a));
    free(a);
}

static void migrating_phase(run_t *r, const char *what) {
    if (!is_scorer(what)) {
        plain_phase(r, what);
        return;
    }
    size_t half;
    halve_by_partition(&half);
    feed_wait(feed_slice(r, what, 0, half, 0));
    pid_t p = start(r, what, 0);
    assert_true(ds_h_wait_group(&env, r->n.group, r->in_ma, 60000));
    ds_clock_sleep_ms(2000); /* past the write-behind window */
    char base[256];
    busiest_account(r, half, base, sizeof(base));
    int m[DS_H_CLUSTER_MAX], nm = ds_h_cluster_masters(&cl, m);
    redisReply *x = ds_h_node(&cl, m[0], "CLUSTER KEYSLOT %s", base);
    assert_true(x && x->type == REDIS_REPLY_INTEGER);
    int slot = (int)x->integer;
    freeReplyObject(x);
    int src = ds_h_cluster_owner(&cl, (unsigned)slot), dst = m[0] == src ? m[1] : m[0];
    char src_id[64], dst_id[64];
    node_id(src, src_id, sizeof(src_id));
    node_id(dst, dst_id, sizeof(dst_id));
    for (int i = 0; i < nm; i++)
        reply_ok(ds_h_node(&cl, m[i], "CONFIG RESETSTAT"), "CONFIG RESETSTAT");
    reply_ok(ds_h_node(&cl, dst, "CLUSTER SETSLOT %d IMPORTING %s", slot, src_id), "IMPORTING");
    reply_ok(ds_h_node(&cl, src, "CLUSTER SETSLOT %d MIGRATING %s", slot, dst_id), "MIGRATING");
    x = ds_h_node(&cl, src, "CLUSTER GETKEYSINSLOT %d 100000", slot);
    assert_true(x && x->type == REDIS_REPLY_ARRAY);
    size_t bl = strlen(base), moved = 0;
    for (size_t i = 0; i < x->elements; i++) {
        const char *k = x->element[i]->str;
        if (!strncmp(k, base, bl) && k[bl] == ':' && strncmp(k + bl, ":lead:", 6)) {
            migrate_key(src, dst, k);
            moved++;
        }
    }
    freeReplyObject(x);
    fprintf(stderr, "  slot %d migrating from :%d to :%d, %zu of the account's keys moved\n", slot,
            cl.port[src], cl.port[dst], moved);
    assert_true(moved > 0);
    feed_wait(feed_slice(r, what, half, SIZE_MAX, 0));
    int64_t t0 = ds_clock_mono_ms();
    while (evalsha_stat_all(m, nm, "rejected_calls") == 0 && ds_clock_mono_ms() - t0 < 30000)
        ds_clock_sleep_ms(100);
    ds_clock_sleep_ms(3000); /* more rounds of it */
    long rejected = evalsha_stat_all(m, nm, "rejected_calls"),
         failed = evalsha_stat_all(m, nm, "failed_calls");
    fprintf(stderr, "  EVALSHA while the slot migrated: %ld refused, %ld failed\n", rejected,
            failed);
    /* the rest of the slot, then the slot, before anything is asserted: a
     * slot left migrating would fail the cases after this one */
    for (;;) {
        x = ds_h_node(&cl, src, "CLUSTER GETKEYSINSLOT %d 100", slot);
        assert_true(x && x->type == REDIS_REPLY_ARRAY);
        size_t n = x->elements;
        for (size_t i = 0; i < n; i++)
            migrate_key(src, dst, x->element[i]->str);
        freeReplyObject(x);
        if (!n)
            break;
    }
    reply_ok(ds_h_node(&cl, dst, "CLUSTER SETSLOT %d NODE %s", slot, dst_id), "NODE (target)");
    reply_ok(ds_h_node(&cl, src, "CLUSTER SETSLOT %d NODE %s", slot, dst_id), "NODE (source)");
    for (int i = 0; i < nm; i++)
        if (m[i] != src && m[i] != dst)
            reply_ok(ds_h_node(&cl, m[i], "CLUSTER SETSLOT %d NODE %s", slot, dst_id), "NODE");
    assert_int_equal(failed, 0);
    assert_true(rejected > 0);
    finish(r, what, &p, 1);
    assert_true(ds_h_cluster_wait_ok(&cl, 20000));
}

/* three in one group, one killed with SIGKILL mid-stream and replaced */
static void group_phase(run_t *r, const char *what) {
    pid_t p[4];
    for (int i = 0; i < 3; i++)
        p[i] = start(r, what, i);
    ds_clock_sleep_ms(3000);
    feed_t *f = feed_start(r, what, (int)(nsrc_ma + nsrc_crm) / 6);
    ds_clock_sleep_ms(1500);
    fprintf(stderr, "  kill -9 one of three %ss\n", what);
    ds_h_stop(p[1], SIGKILL, 5000);
    p[1] = start(r, what, 3);
    feed_wait(f);
    finish(r, what, p, 3);
}

/* a master dies mid-stream: not ready (naming Redis), waits, resumes */
static void failover_phase(run_t *r, const char *what) {
    pid_t p = start(r, what, 0);
    ds_clock_sleep_ms(3000);
    feed_t *f = feed_start(r, what, (int)(nsrc_ma + nsrc_crm) / 8);
    ds_clock_sleep_ms(1000);
    int m[DS_H_CLUSTER_MAX];
    assert_int_equal(ds_h_cluster_masters(&cl, m), 3);
    int victim = m[is_scorer(what) ? 0 : 1];
    fprintf(stderr, "  master on port %d killed\n", cl.port[victim]);
    ds_h_cluster_kill(&cl, victim);
    bool not_ready = false;
    int64_t t0 = ds_clock_mono_ms();
    while (!not_ready && ds_clock_mono_ms() - t0 < 15000) {
        char *body = NULL;
        long st = ds_h_http_get(r->metrics[0], "/readyz", &body);
        if (st == 503 && strstr(body, "redis")) {
            fprintf(stderr, "  /readyz: %s", body);
            not_ready = true;
        }
        free(body);
        ds_clock_sleep_ms(50);
    }
    assert_true(not_ready);
    assert_true(ds_h_cluster_wait_ok(&cl, 30000)); /* the replica took over */
    ds_h_cluster_restart(&env, &cl, victim);       /* back, as its replica */
    assert_true(ds_h_cluster_wait_ok(&cl, 30000));
    feed_wait(f);
    bool ready = false;
    for (t0 = ds_clock_mono_ms(); !ready && ds_clock_mono_ms() - t0 < 30000;) {
        ready = ds_h_http_get(r->metrics[0], "/readyz", NULL) == 200;
        ds_clock_sleep_ms(100);
    }
    assert_true(ready);
    finish(r, what, &p, 1);
    char cmd[400];
    snprintf(cmd, sizeof(cmd),
             "printf '  %s: %%s replays from the committed offsets\\n' "
             "$(grep -c 'consuming again from the committed' '%s/%s-%s.log') >&2",
             what, env.tmpdir, r->n.name, what);
    if (system(cmd)) {
    }
}

/* A master stops answering for 1.2 s: /readyz must turn 503 within
 * redis.timeout_ms (500) + 1 s, naming it, and 200 again within 3 s of
 * SIGCONT.  It is not the master of slot 0, where a PING sent to one
 * master only would go: idle, only a PING to every master notices it.
 * (Which master owns what depends on the runs before: the reshard run
 * leaves the slots spread over the masters at random, so one master may
 * own both slot 0 and slot 16383.) */
static void pause_master(const run_t *r, const char *what, const char *when) {
    /* every node agreeing on the slots first: after the failover runs a
     * restarted node may still hold an older view for a moment */
    assert_true(ds_h_cluster_wait_ok(&cl, 30000));
    int m[DS_H_CLUSTER_MAX], victim = -1, first = ds_h_cluster_owner(&cl, 0);
    for (int k = ds_h_cluster_masters(&cl, m) - 1; k >= 0 && victim < 0; k--)
        if (m[k] != first)
            victim = m[k];
    assert_true(victim >= 0 && first >= 0);
    char port[16];
    snprintf(port, sizeof(port), ":%d", cl.port[victim]);
    kill(cl.pid[victim], SIGSTOP);
    int64_t t0 = ds_clock_mono_ms(), t;
    char *why = NULL;
    long st = 0;
    while ((t = ds_clock_mono_ms() - t0) < 1500) {
        free(why);
        why = NULL;
        if ((st = ds_h_http_get(r->metrics[0], "/readyz", &why)) == 503)
            break;
        ds_clock_sleep_ms(50);
    }
    if (t < 1200)
        ds_clock_sleep_ms(1200 - t);
    kill(cl.pid[victim], SIGCONT);
    fprintf(stderr, "  %s: master%s paused while %s: %ld after %lld ms: %s", what, port, when, st,
            (long long)t, why ? why : "\n");
    assert_int_equal(st, 503);
    assert_non_null(strstr(why, "redis"));
    assert_non_null(strstr(why, port));
    free(why);
    t0 = ds_clock_mono_ms();
    while (ds_h_http_get(r->metrics[0], "/readyz", NULL) != 200 && ds_clock_mono_ms() - t0 < 3000)
        ds_clock_sleep_ms(50);
    t = ds_clock_mono_ms() - t0;
    fprintf(stderr, "  %s: ready again %lld ms after SIGCONT\n", what, (long long)t);
    assert_true(t < 3000);
    assert_true(ds_h_cluster_wait_ok(&cl, 20000));
}

/* a master paused mid-stream, then again once everything is consumed */
static void pause_phase(run_t *r, const char *what) {
    pid_t p = start(r, what, 0);
    int64_t t0 = ds_clock_mono_ms(); /* in the group, and ready */
    while (ds_h_http_get(r->metrics[0], "/readyz", NULL) != 200 && ds_clock_mono_ms() - t0 < 30000)
        ds_clock_sleep_ms(100);
    feed_t *f = feed_start(r, what, (int)(nsrc_ma + nsrc_crm) / 6);
    ds_clock_sleep_ms(1000);
    pause_master(r, what, "writes are in flight");
    feed_wait(f);
    assert_true(ds_h_wait_group(&env, r->n.group, input_of(r, what), 120000));
    ds_clock_sleep_ms(1000);
    pause_master(r, what, "idle");
    finish(r, what, &p, 1);
}

static int log_count(const run_t *r, const char *what, const char *needle) {
    char log[256];
    snprintf(log, sizeof(log), "%s/%s-%s.log", env.tmpdir, r->n.name, what);
    return ds_h_log_count(log, needle);
}

/* a master killed and started again at once, without its data, once the
 * scorer has stored offsets: it is master again (no failover had time to
 * start) and its replica resyncs from it, empty too.  The scorer only:
 * when the watcher runs, the scorer (whose state every master holds too)
 * has stopped, and nothing would write its part back. */
static void empty_phase(run_t *r, const char *what) {
    if (!is_scorer(what)) {
        plain_phase(r, what);
        return;
    }
    pid_t p = start(r, what, 0);
    feed_t *f = feed_start(r, what, (int)(nsrc_ma + nsrc_crm) / 6);
    int64_t t0 = ds_clock_mono_ms();
    while (scrape(r->metrics[0], "dealsignal_consumed_records_total{") <= 0 &&
           ds_clock_mono_ms() - t0 < 30000)
        ds_clock_sleep_ms(50);
    int victim = ds_h_cluster_owner(&cl, 0);
    ds_h_cluster_kill(&cl, victim);
    ds_h_cluster_restart(&env, &cl, victim);
    fprintf(stderr, "  %s: master on port %d restarted empty\n", what, cl.port[victim]);
    feed_wait(f);
    assert_true(ds_h_cluster_wait_ok(&cl, 30000));
    assert_int_equal(ds_h_cluster_owner(&cl, 0), victim); /* no failover */
    finish(r, what, &p, 1);
    int lost = log_count(r, what, "came back without the state");
    int rewinds = log_count(r, what, "consuming again from the committed");
    fprintf(stderr, "  %s: %d writes back from memory, %d replays\n", what, lost, rewinds);
    assert_int_equal(lost, 1);
    assert_int_equal(rewinds, 0);
}

/* A run named `name` whose marketing input is all there (a worker started
 * by hand reads it), and its log's path, <tmpdir>/<name>.log. */
static void fed_run(run_t *r, const char *name, char *log, size_t size) {
    run_init(r, name);
    feed_wait(feed_start(r, "scorer", 0));
    snprintf(log, size, "%s/%s.log", env.tmpdir, name);
}

/* Pointed at a cluster node with redis.cluster off, the worker meets a
 * redirect it may not follow: it stops at once, non-zero, saying why. */
static void test_fatal_stop(void **s) {
    (void)s;
    run_t r;
    char log[256];
    fed_run(&r, "fatal", log, sizeof(log));
    const char *args[] = {
        "scorer", "--brokers",  env.brokers, "--redis",        cl.url,     "--redis-cluster",
        "off",    "--group-id", r.n.group,   "--redis-prefix", r.n.prefix, "--topic-marketing",
        r.in_ma,  "--schemas",  schemas,     "--log-level",    "warn",     NULL};
    int64_t t0 = ds_clock_mono_ms();
    pid_t p = ds_h_spawn(log, args);
    int st = -1;
    while (ds_clock_mono_ms() - t0 < 20000 && waitpid(p, &st, WNOHANG) == 0)
        ds_clock_sleep_ms(50);
    if (ds_clock_mono_ms() - t0 >= 20000)
        ds_h_stop(p, SIGKILL, 1000);
    fprintf(stderr, "  stopped after %lld ms\n", (long long)(ds_clock_mono_ms() - t0));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "grep -q 'redis.cluster is off; retrying cannot fix this' '%s'",
             log);
    assert_int_equal(system(cmd), 0);
}

/* shutdown_timeout_ms counts from SIGTERM: a worker that has been retrying
 * an unreachable Redis for longer than the timeout still gets all of it
 * to finish (it used to give up at once) */
static void test_shutdown_timeout_from_sigterm(void **s) {
    (void)s;
    run_t r;
    char log[256], url[64];
    fed_run(&r, "shut", log, sizeof(log));
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", ds_h_free_port()); /* nobody */
    const char *args[] = {"scorer",
                          "--brokers",
                          env.brokers,
                          "--redis",
                          url,
                          "--group-id",
                          r.n.group,
                          "--redis-prefix",
                          r.n.prefix,
                          "--topic-marketing",
                          r.in_ma,
                          "--schemas",
                          schemas,
                          "--shutdown-timeout-ms",
                          "2000",
                          "-X",
                          "session.timeout.ms=6000",
                          "--log-level",
                          "warn",
                          NULL};
    pid_t p = ds_h_spawn(log, args);
    ds_clock_sleep_ms(7000); /* in the group, a batch in hand, retrying for seconds */
    int64_t t0 = ds_clock_mono_ms();
    int rc = ds_h_stop(p, SIGTERM, 15000);
    int64_t took = ds_clock_mono_ms() - t0;
    fprintf(stderr, "  SIGTERM: exit %d after %lld ms (shutdown_timeout_ms 2000)\n", rc,
            (long long)took);
    assert_int_equal(rc, 0);
    assert_true(took >= 1900);
    char cmd[400];
    snprintf(cmd, sizeof(cmd),
             "grep -Eq 'shutdown timeout: abandoning the batch in hand 2[0-4][0-9][0-9] ms' '%s'",
             log);
    assert_int_equal(system(cmd), 0);
}

/* Each case runs both workers through one phase (run_all; `plain`: one
 * plain Redis, the oracle's; `wait`: redis.wait_replicas 1). */
#define CLUSTER_CASE(name, label, phase, plain, wait)                                              \
    static void test_##name(void **s) {                                                            \
        (void)s;                                                                                   \
        run_all(label, phase, plain, wait);                                                        \
    }
CLUSTER_CASE(oracle, "oracle", plain_phase, true, false)
CLUSTER_CASE(cluster, "cluster", plain_phase, false, false)
CLUSTER_CASE(reshard, "reshard", reshard_phase, false, false)
CLUSTER_CASE(migrating, "migrating", migrating_phase, false, false)
CLUSTER_CASE(group_kill9, "group", group_phase, false, false)
CLUSTER_CASE(failover_wait, "failover", failover_phase, false, true)
CLUSTER_CASE(paused_master, "paused", pause_phase, false, false)
CLUSTER_CASE(master_back_empty, "empty", empty_phase, false, true)

int main(void) {
    const char *ev = getenv("DS_CLUSTER_EVENTS");
    if (ev)
        events = strtol(ev, NULL, 10);
    ds_h_start(&env, 4, true);
    ds_h_cluster_start(&env, &cl, 3, 1);
    snprintf(schemas, sizeof(schemas), "%s", getenv("DS_SCHEMAS_DIR"));
    if (!ds_h_gen_mixed(&env, events)) {
        fprintf(stderr, "gen failed\n");
        return 1;
    }
    nsrc_ma = ds_h_consume(&env, "ma.events", SIZE_MAX, 60000, &src_ma);
    nsrc_crm = ds_h_consume(&env, "crm.events", SIZE_MAX, 60000, &src_crm);
    fprintf(stderr, "stream: %zu marketing and %zu CRM events\n", nsrc_ma, nsrc_crm);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle),
        cmocka_unit_test(test_cluster),
        cmocka_unit_test(test_reshard),
        cmocka_unit_test(test_migrating),
        cmocka_unit_test(test_group_kill9),
        cmocka_unit_test(test_failover_wait),
        cmocka_unit_test(test_paused_master),
        cmocka_unit_test(test_master_back_empty),
        cmocka_unit_test(test_fatal_stop),
        cmocka_unit_test(test_shutdown_timeout_from_sigterm),
    };
    /* DS_CLUSTER_ONLY=NAME: the oracle and test_NAME only */
    int rc = ds_h_run_tests("test_cluster_workers", tests, sizeof(tests) / sizeof(tests[0]),
                            "DS_CLUSTER_ONLY");
    ds_h_lines_free(oracle_state, noracle_state);
    ds_h_lines_free(oracle_ids, noracle_ids);
    ds_h_records_free(src_ma, nsrc_ma);
    ds_h_records_free(src_crm, nsrc_crm);
    ds_h_cleanup();
    return rc;
}
