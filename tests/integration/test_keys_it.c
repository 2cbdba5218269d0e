/*
 * test_keys_it.c — input keyed by the wrong id, through the real binary.
 *
 * One seeded marketing stream (3,200 events over 50 accounts, 4
 * partitions) produced by `dealsignal gen`:
 *   - keyed by lead_id, to two scorers in one group, and again (produced
 *     while they run) with one of them killed with SIGKILL and restarted:
 *     every record whose key is not its unit's id reaches the DLQ
 *     (wrong_key, once per source offset, counted in
 *     dealsignal_dlq_records_total), every other is applied exactly once
 *     — the Redis state and the output ids equal those of a reference run
 *     over a topic that holds only the records that are not expected in
 *     the DLQ;
 *   - keyed by unit id but with some units' records also on a second
 *     partition (a second producer with another partitioner), two scorers,
 *     one killed and restarted: each unit's records on the partition its
 *     checkpoint names are applied, the others reach the DLQ
 *     (wrong_partition), and the state equals the reference run over the
 *     records that were applied;
 *   - an account's records on a partition the other worker owns, twice,
 *     its owner adding content in between: both reach the DLQ and the
 *     group finishes (the other worker must not read the account's leads
 *     against what it loaded for the first record);
 *   - keyed by lead_id and copied by `dealsignal repartition`: the copy
 *     gives the same state and outputs as the stream keyed by unit id; a
 *     DLQ of wrong_key records fed back through it comes out keyed by unit.
 * State is compared without the checkpoint field (offsets differ between
 * topics); the run over the same topic compares it too.
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
#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_registry.h"
#include "gen.h"
#include "harness.h"

#define NEVENTS 3200
#define NPARTS 4
#define MIN_KEYS 0 /* the lead-keyed streams leave only lone leads */

static ds_h_env_t env;
static char schemas[256];

/* ---- input ----------------------------------------------------------------- */

typedef struct in {
    int32_t part;
    int64_t off;
    char *key, *unit;
    unsigned char *val;
    size_t len;
} in_t;

typedef struct input {
    in_t *v;
    size_t n;
} input_t;

/* Orders records by (partition, offset): -1, 0 or 1. */
static int cmp_part_off(int32_t pa, int64_t oa, int32_t pb, int64_t ob) {
    if (pa != pb)
        return pa < pb ? -1 : 1;
    return oa < ob ? -1 : oa > ob;
}

static int cmp_in(const void *a, const void *b) {
    const in_t *x = a, *y = b;
    return cmp_part_off(x->part, x->off, y->part, y->off);
}

/* Every record of `topic` in (partition, offset) order, with its unit id. */
static void load_input(const char *topic, size_t want, input_t *out) {
    ds_h_record_t *recs;
    size_t n = ds_h_consume(&env, topic, want, 60000, &recs);
    assert_int_equal(n, want);
    out->v = calloc(n, sizeof(in_t));
    out->n = n;
    ds_arena_t a;
    ds_arena_init(&a, 0);
    for (size_t i = 0; i < n; i++) {
        in_t *x = &out->v[i];
        x->part = recs[i].partition;
        x->off = recs[i].offset;
        x->key = strdup(recs[i].key ? recs[i].key : "");
        x->len = recs[i].len;
        x->val = malloc(x->len);
        memcpy(x->val, recs[i].val, x->len);
        ds_ma_event_t ev;
        char detail[256];
        ds_arena_reset(&a);
        assert_int_equal(ds_codec_decode_ma(ds_h_codec(), x->val, x->len, &a, &ev, detail, 256),
                         DS_ERR_OK);
        x->unit = strdup(ev.account_id && ev.account_id[0] ? ev.account_id : ev.lead_id);
    }
    ds_arena_free(&a);
    ds_h_records_free(recs, n);
    qsort(out->v, n, sizeof(in_t), cmp_in);
}

static void input_free(input_t *in) {
    for (size_t i = 0; i < in->n; i++) {
        free(in->v[i].key);
        free(in->v[i].unit);
        free(in->v[i].val);
    }
    free(in->v);
    memset(in, 0, sizeof(*in));
}

static const in_t *find_in(const input_t *in, int32_t part, int64_t off) {
    in_t k = {.part = part, .off = off};
    return bsearch(&k, in->v, in->n, sizeof(in_t), cmp_in);
}

/* ---- processes --------------------------------------------------------------- */

/* `dealsignal gen`'s marketing mix (seed 22, fixed start: every topic made
 * from it holds the same events) to topic, keyed as key_by says. */
static pid_t gen_spawn(const char *topic, const char *key_by, const char *rate) {
    const char *args[] = {"gen",        "--brokers",  env.brokers, "--count",
                          "3200",       "--seed",     "22",        "--accounts",
                          "50",         "--scenario", "marketing", "--start",
                          "2025-06-01", "--schemas",  schemas,     "--topic-marketing",
                          topic,        "--key",      key_by,      "--rate",
                          rate,         NULL};
    char log[256];
    snprintf(log, sizeof(log), "%s/gen-%s.log", env.tmpdir, topic);
    return ds_h_spawn(log, args);
}

static void gen_wait(pid_t g) {
    int st;
    waitpid(g, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void gen(const char *topic, const char *key_by, const char *rate) {
    gen_wait(gen_spawn(topic, key_by, rate));
}

typedef struct run {
    ds_h_names_t n; /* its deal.alerts name is not used */
    char topic[64];
    char metrics[2][64];
    pid_t pid[2];
} run_t;

static void run_init(run_t *r, const char *name, const char *topic) {
    memset(r, 0, sizeof(*r));
    ds_h_names(&r->n, "keys", name, false);
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    ds_h_create_topic(&env, topic, NPARTS);
}

static pid_t start_one(run_t *r, int i) {
    char log[256];
    snprintf(log, sizeof(log), "%s/%s-%d.log", env.tmpdir, r->n.name, i);
    if (!r->metrics[i][0])
        snprintf(r->metrics[i], sizeof(r->metrics[i]), "127.0.0.1:%d", ds_h_free_port());
    ds_h_args_t a;
    ds_h_worker_args(&a, &env, "scorer", env.redis_url, r->n.group, r->n.prefix);
    ds_h_args_add(&a, "--topic-marketing", r->topic, "--topic-lead-scores", r->n.ls,
                  "--topic-account-scores", r->n.as, "--batch-size", "100", "--redis-flush-ms",
                  "300", "--metrics-addr", r->metrics[i], "--log-level", "warn", NULL);
    r->pid[i] = ds_h_spawn(log, a.v);
    return r->pid[i];
}

static bool wait_ready(const char *addr, int timeout_ms) {
    int64_t end = ds_clock_mono_ms() + timeout_ms;
    while (ds_clock_mono_ms() < end) {
        if (ds_h_http_get(addr, "/readyz", NULL) == 200)
            return true;
        ds_clock_sleep_ms(100);
    }
    return false;
}

/* Two workers in one group, both with their partitions: no rebalance
 * comes with the first records, so counts are exact. */
static void start_pair(run_t *r) {
    start_one(r, 0);
    start_one(r, 1);
    assert_true(wait_ready(r->metrics[0], 30000));
    assert_true(wait_ready(r->metrics[1], 30000));
}

static double dlq_metric(run_t *r, int nworkers, const char *reason) {
    double sum = 0;
    char sample[128];
    snprintf(sample, sizeof(sample),
             "dealsignal_dlq_records_total{worker=\"scorer\",reason=\"%s\"}", reason);
    for (int i = 0; i < nworkers; i++) {
        char *body = NULL;
        assert_int_equal(ds_h_http_get(r->metrics[i], "/metrics", &body), 200);
        double v = ds_h_metric(body, sample);
        free(body);
        sum += v > 0 ? v : 0;
    }
    return sum;
}

static void finish(run_t *r, int nworkers) {
    bool done = ds_h_wait_group(&env, r->n.group, r->topic, 90000);
    if (!done) {
        fprintf(stderr, "  %s: group did not finish\n", r->n.name);
        ds_h_show_group(&env, r->n.group, r->topic);
        for (int i = 0; i < nworkers; i++) {
            char log[256];
            snprintf(log, sizeof(log), "%s/%s-%d.log", env.tmpdir, r->n.name, i);
            ds_h_show_log(log, 40);
        }
    }
    for (int i = 0; i < nworkers; i++)
        assert_int_equal(ds_h_stop(r->pid[i], SIGTERM, 15000), 0);
    assert_true(done);
}

/* ---- comparisons -------------------------------------------------------------- */

typedef struct coord {
    int32_t part;
    int64_t off;
    char code[32];
} coord_t;

static int cmp_coord(const void *a, const void *b) {
    const coord_t *x = a, *y = b;
    return cmp_part_off(x->part, x->off, y->part, y->off);
}

/* The DLQ of `topic`: distinct source coordinates (a redelivery after a
 * crash may send a record twice); each must carry the source topic and
 * its original key and bytes. */
static size_t dlq_of(const char *topic, const input_t *in, coord_t **out) {
    char dlq[128];
    snprintf(dlq, sizeof(dlq), "%s.dlq", topic);
    ds_h_record_t *recs;
    size_t n = ds_h_consume(&env, dlq, SIZE_MAX, 20000, &recs);
    coord_t *c = calloc(n ? n : 1, sizeof(*c));
    for (size_t i = 0; i < n; i++) {
        const char *src = ds_h_header(&recs[i], "dealsignal.source.topic");
        const char *p = ds_h_header(&recs[i], "dealsignal.source.partition");
        const char *o = ds_h_header(&recs[i], "dealsignal.source.offset");
        const char *code = ds_h_header(&recs[i], "dealsignal.error");
        assert_non_null(src);
        assert_non_null(p);
        assert_non_null(o);
        assert_non_null(code);
        assert_string_equal(src, topic);
        c[i].part = (int32_t)strtol(p, NULL, 10);
        c[i].off = strtoll(o, NULL, 10);
        snprintf(c[i].code, sizeof(c[i].code), "%s", code);
        const in_t *x = find_in(in, c[i].part, c[i].off);
        assert_non_null(x);
        assert_string_equal(recs[i].key, x->key);
        assert_int_equal(recs[i].len, x->len);
        assert_memory_equal(recs[i].val, x->val, x->len);
    }
    ds_h_records_free(recs, n);
    qsort(c, n, sizeof(*c), cmp_coord);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || cmp_coord(&c[k - 1], &c[i]))
            c[k++] = c[i];
    *out = c;
    return k;
}

static bool in_dlq(const coord_t *c, size_t n, const in_t *x) {
    coord_t k = {.part = x->part, .off = x->off};
    return bsearch(&k, c, n, sizeof(*c), cmp_coord) != NULL;
}

/* A topic with the records of `in` that `keep` says, each on its own
 * partition, with its own key, in offset order: what a correct run
 * applies, as a stream of its own. */
static void make_ref(const char *topic, const input_t *in, bool (*keep)(const in_t *, void *),
                     void *opaque) {
    ds_h_create_topic(&env, topic, NPARTS);
    rd_kafka_t *p = ds_h_producer(&env);
    for (size_t i = 0; i < in->n; i++)
        if (keep(&in->v[i], opaque))
            ds_h_produce_to(p, topic, in->v[i].part, in->v[i].key, strlen(in->v[i].key),
                            in->v[i].val, in->v[i].len);
    ds_h_flush(p);
    rd_kafka_destroy(p);
}

static void compare_state(const run_t *a, const run_t *b, const char *skip) {
    assert_true(ds_h_same_run_state(&env, &a->n, &b->n, skip, MIN_KEYS));
}

static void compare_outputs(const run_t *a, const run_t *b) {
    assert_true(ds_h_same_run_scores(&env, &a->n, &b->n));
}

/* ---- lead-keyed ------------------------------------------------------------------ */

static input_t lead_in;   /* the lead-keyed stream (keys.lead) */
static run_t lead_ref;    /* the reference run over its correctly keyed records */
static size_t lead_wrong; /* its records keyed by another id than their unit's */

static bool keyed_right(const in_t *x, void *opaque) {
    (void)opaque;
    return !strcmp(x->key, x->unit);
}

/* The DLQ holds exactly the wrongly keyed records, each once, each with
 * the code wrong_key and a detail naming the key and the unit id. */
static void check_wrong_key_dlq(const run_t *r, const input_t *in) {
    coord_t *c;
    size_t n = dlq_of(r->topic, in, &c);
    fprintf(stderr, "  %s: %zu records in the DLQ, %zu expected\n", r->n.name, n, lead_wrong);
    assert_int_equal(n, lead_wrong);
    for (size_t i = 0; i < in->n; i++)
        assert_int_equal(in_dlq(c, n, &in->v[i]), !keyed_right(&in->v[i], NULL));
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c[i].code, "wrong_key");
    free(c);
}

static int group_setup(void **state) {
    (void)state;
    ds_h_start(&env, NPARTS, true);
    snprintf(schemas, sizeof(schemas), "%s", getenv("DS_SCHEMAS_DIR"));
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    input_free(&lead_in);
    ds_h_cleanup();
    return 0;
}

static void test_lead_keyed_two_workers(void **state) {
    (void)state;
    run_t r;
    run_init(&r, "pair", "keys.lead");
    start_pair(&r);
    gen("keys.lead", "lead_id", "0");
    load_input("keys.lead", NEVENTS, &lead_in);
    for (size_t i = 0; i < lead_in.n; i++)
        lead_wrong += !keyed_right(&lead_in.v[i], NULL);
    assert_true(lead_wrong > NEVENTS / 2 && lead_wrong < NEVENTS); /* lone leads are right */

    run_init(&lead_ref, "leadref", "keys.leadref");
    make_ref("keys.leadref", &lead_in, keyed_right, NULL);
    start_one(&lead_ref, 0);

    assert_true(ds_h_wait_group(&env, r.n.group, r.topic, 90000));
    assert_int_equal(dlq_metric(&r, 2, "wrong_key"), (double)lead_wrong);
    finish(&r, 2);
    finish(&lead_ref, 1);
    check_wrong_key_dlq(&r, &lead_in);
    /* the detail names both keys */
    ds_h_record_t *recs;
    size_t n = ds_h_consume(&env, "keys.lead.dlq", 1, 10000, &recs);
    assert_int_equal(n, 1);
    const char *detail = ds_h_header(&recs[0], "dealsignal.detail");
    assert_non_null(detail);
    assert_non_null(strstr(detail, recs[0].key));
    assert_non_null(strstr(detail, "account_id \"A-"));
    ds_h_records_free(recs, n);
    compare_state(&r, &lead_ref, "checkpoint");
    compare_outputs(&r, &lead_ref);
}

static void test_lead_keyed_kill9(void **state) {
    (void)state;
    run_t r;
    run_init(&r, "kill", "keys.kill");
    start_pair(&r);
    /* the same stream, produced while the workers run (4 s); one of them
     * is killed mid-stream and restarted */
    pid_t g = gen_spawn("keys.kill", "lead_id", "800");
    ds_clock_sleep_ms(1500);
    fprintf(stderr, "  kill -9 one of two workers\n");
    assert_int_equal(ds_h_stop(r.pid[1], SIGKILL, 5000), 128 + SIGKILL);
    start_one(&r, 1);
    gen_wait(g);
    finish(&r, 2);
    /* the same records as keys.lead, partition by partition */
    input_t in;
    load_input("keys.kill", NEVENTS, &in);
    for (size_t i = 0; i < in.n; i++) {
        assert_int_equal(in.v[i].part, lead_in.v[i].part);
        assert_int_equal(in.v[i].off, lead_in.v[i].off);
        assert_memory_equal(in.v[i].val, lead_in.v[i].val, in.v[i].len);
    }
    check_wrong_key_dlq(&r, &in);
    compare_state(&r, &lead_ref, "checkpoint");
    compare_outputs(&r, &lead_ref);
    input_free(&in);
}

/* ---- a unit bound elsewhere ------------------------------------------------------ */

static void send_view(rd_kafka_t *p, const char *topic, int32_t part, const char *id, int64_t t,
                      const char *lead, const char *content) {
    ds_ma_event_t e =
        ds_h_ma(id, t, lead, "A-BOUND", DS_MA_CONTENT_VIEWED, content, "insight-b", DS_CS_CONFRONT);
    ds_buf_t b;
    ds_buf_init(&b, 0);
    assert_int_equal(ds_codec_encode_ma(ds_h_codec(), &e, &b), DS_ERR_OK);
    ds_h_produce_to(p, topic, part, e.account_id, strlen(e.account_id), b.data, b.len);
    ds_buf_free(&b);
    ds_h_flush(p);
}

/* An account's records on a partition the other worker owns, twice, while
 * its owner writes new content to it in between: both reach the DLQ
 * (wrong_partition) and the group finishes.  The other worker loaded the
 * account for the first one; for the second it must not read a lead
 * against that old load (the lead names content added since: it would
 * not decode, and the partition would stop on it). */
static void test_bound_elsewhere(void **state) {
    (void)state;
    run_t r;
    run_init(&r, "bound", "keys.bound");
    start_pair(&r);
    const char *acct = "A-BOUND";
    int32_t home =
        rd_kafka_msg_partitioner_consistent(NULL, acct, strlen(acct), NPARTS, NULL, NULL);
    int32_t away = (home + 2) % NPARTS; /* range assignment: the other worker's half */
    const int64_t t0 = 1700000000000LL;
    rd_kafka_t *p = ds_h_producer(&env);
    char key[160];

    send_view(p, "keys.bound", home, "b-1", t0, "L-B1", "c-0");
    snprintf(key, sizeof(key), "%s{acct:%s}:lead:L-B1", r.n.prefix, acct);
    ds_h_expect_hget(&env, key, "events_applied", "1", 20000);
    send_view(p, "keys.bound", away, "b-2", t0 + 1000, "L-B1", "c-0");
    char dlq[64];
    snprintf(dlq, sizeof(dlq), "%s.dlq", "keys.bound");
    ds_h_expect_records(&env, dlq, 1, 20000, 1);

    for (int i = 0; i < 8; i++) { /* new dictionary entries, on a new lead */
        char id[16], content[16];
        snprintf(id, sizeof(id), "b-%d", 10 + i);
        snprintf(content, sizeof(content), "c-%d", 1 + i);
        send_view(p, "keys.bound", home, id, t0 + 2000 + i, "L-B2", content);
    }
    snprintf(key, sizeof(key), "%s{acct:%s}:lead:L-B2", r.n.prefix, acct);
    ds_h_expect_hget(&env, key, "events_applied", "8", 20000);
    send_view(p, "keys.bound", away, "b-3", t0 + 3000, "L-B2", "c-5");
    rd_kafka_destroy(p);

    finish(&r, 2);
    ds_h_record_t *recs;
    size_t n = ds_h_consume(&env, dlq, SIZE_MAX, 20000, &recs);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(ds_h_header(&recs[i], "dealsignal.error"), "wrong_partition");
    ds_h_records_free(recs, n);
}

/* ---- split partitions --------------------------------------------------------------- */

typedef struct dlq_set {
    const coord_t *c;
    size_t n;
} dlq_set_t;

static bool applied_in(const in_t *x, void *opaque) {
    const dlq_set_t *d = opaque;
    return !in_dlq(d->c, d->n, x);
}

static void test_split_partitions(void **state) {
    (void)state;
    run_t r;
    run_init(&r, "split", "keys.split");
    start_pair(&r);
    /* keyed by unit id; a second "producer" puts every third record of
     * one account in five on the next partition */
    ds_gen_opts_t o = {.seed = 33,
                       .accounts = 50,
                       .mix = DS_GEN_MARKETING,
                       .start_ms = 1700000000000LL,
                       .span_days = 90};
    ds_gen_t *g = ds_gen_new(&o);
    rd_kafka_t *p = ds_h_producer(&env);
    ds_buf_t b;
    ds_buf_init(&b, 0);
    int moved = 0;
    for (int i = 0; i < NEVENTS; i++) {
        ds_gen_event_t ev;
        ds_gen_next(g, &ev);
        const char *key = ev.ma.account_id ? ev.ma.account_id : ev.ma.lead_id;
        int32_t part =
            rd_kafka_msg_partitioner_consistent(NULL, key, strlen(key), NPARTS, NULL, NULL);
        unsigned a = (unsigned)strtoul(ev.ma.lead_id + 2, NULL, 10); /* L-AAAA-n */
        if (a % 5 == 1 && i % 3 == 0) {
            part = (part + 1) % NPARTS;
            moved++;
        }
        ds_buf_reset(&b);
        assert_int_equal(ds_codec_encode_ma(ds_h_codec(), &ev.ma, &b), DS_ERR_OK);
        ds_h_produce_to(p, "keys.split", part, key, strlen(key), b.data, b.len);
        if (i % 100 == 99) { /* ~4 s in all */
            rd_kafka_poll(p, 0);
            ds_clock_sleep_ms(120);
        }
        if (i == NEVENTS / 2) {
            ds_h_flush(p);
            fprintf(stderr, "  kill -9 one of two workers\n");
            assert_int_equal(ds_h_stop(r.pid[0], SIGKILL, 5000), 128 + SIGKILL);
            start_one(&r, 0);
        }
    }
    ds_h_flush(p);
    rd_kafka_destroy(p);
    ds_buf_free(&b);
    ds_gen_destroy(g);
    finish(&r, 2);

    input_t in;
    load_input("keys.split", NEVENTS, &in);
    coord_t *c;
    size_t n = dlq_of("keys.split", &in, &c);
    fprintf(stderr, "  split: %d records on a second partition, %zu in the DLQ\n", moved, n);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c[i].code, "wrong_partition");
    /* each unit's records on the partition its checkpoint names are
     * applied, all others are in the DLQ */
    for (size_t i = 0; i < in.n; i++) {
        const in_t *x = &in.v[i];
        char key[128];
        bool acct = strncmp(x->unit, "L-", 2) != 0;
        snprintf(key, sizeof(key), "%s{%s:%s}", r.n.prefix, acct ? "acct" : "lead", x->unit);
        char *ck = ds_h_hget(&env, key, "checkpoint");
        assert_non_null(ck);
        int32_t bound = (int32_t)strtol(ck, NULL, 10);
        free(ck);
        if (in_dlq(c, n, x) != (x->part != bound))
            fprintf(stderr, "  %s[%d]@%lld unit %s bound to %d\n", in.v[i].key, (int)x->part,
                    (long long)x->off, x->unit, (int)bound);
        assert_int_equal(in_dlq(c, n, x), x->part != bound);
    }
    run_t ref;
    run_init(&ref, "splitref", "keys.splitref");
    dlq_set_t applied = {c, n};
    make_ref("keys.splitref", &in, applied_in, &applied);
    start_one(&ref, 0);
    finish(&ref, 1);
    compare_state(&r, &ref, "checkpoint");
    compare_outputs(&r, &ref);
    free(c);
    input_free(&in);
}

/* ---- repartition -------------------------------------------------------------------------- */

static int repartition(const char *from, const char *to, const char *group) {
    const char *args[] = {
        "repartition", "--brokers", env.brokers, "--from",        from, "--to", to, "--group-id",
        group,         "--schemas", schemas,     "--exit-at-end", NULL};
    char log[256];
    snprintf(log, sizeof(log), "%s/repartition-%s.log", env.tmpdir, to);
    pid_t pid = ds_h_spawn(log, args);
    int64_t end = ds_clock_mono_ms() + 60000;
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (ds_clock_mono_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        ds_clock_sleep_ms(50);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_repartition_equals_unit_keying(void **state) {
    (void)state;
    run_t unit, rekeyed;
    run_init(&unit, "unit", "keys.unit");
    run_init(&rekeyed, "rekeyed", "keys.rekeyed");
    gen("keys.unit", "unit", "0");
    assert_int_equal(repartition("keys.lead", "keys.rekeyed", "rp-1"), 0);
    start_one(&unit, 0);
    start_one(&rekeyed, 0);
    assert_true(ds_h_wait_group(&env, rekeyed.n.group, rekeyed.topic, 90000));
    /* every record keyed by its unit: nothing in the DLQ */
    assert_int_equal(dlq_metric(&rekeyed, 1, "wrong_key"), 0);
    finish(&unit, 1);
    finish(&rekeyed, 1);
    input_t in;
    load_input("keys.rekeyed", NEVENTS, &in);
    for (size_t i = 0; i < in.n; i++)
        assert_string_equal(in.v[i].key, in.v[i].unit);
    input_free(&in);
    compare_state(&unit, &rekeyed, "checkpoint");
    compare_outputs(&unit, &rekeyed);

    /* the DLQ of the lead-keyed run fed back: its records keyed by unit */
    assert_int_equal(repartition("keys.lead.dlq", "keys.fed", "rp-2"), 0);
    load_input("keys.fed", lead_wrong, &in);
    for (size_t i = 0; i < in.n; i++)
        assert_string_equal(in.v[i].key, in.v[i].unit);
    input_free(&in);
    ds_h_record_t *recs;
    size_t n = ds_h_consume(&env, "keys.fed", SIZE_MAX, 20000, &recs);
    assert_int_equal(n, lead_wrong);
    for (size_t i = 0; i < n; i++)
        assert_null(ds_h_header(&recs[i], "dealsignal.error"));
    ds_h_records_free(recs, n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lead_keyed_two_workers),
        cmocka_unit_test(test_lead_keyed_kill9),
        cmocka_unit_test(test_split_partitions),
        cmocka_unit_test(test_bound_elsewhere),
        cmocka_unit_test(test_repartition_equals_unit_keying),
    };
    if (getenv("DS_KEYS_ONLY")) /* one case, e.g. DS_KEYS_ONLY=test_bound_elsewhere */
        cmocka_set_test_filter(getenv("DS_KEYS_ONLY"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
