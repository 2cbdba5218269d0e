/*
 * test_cluster_it.c — ds_redis against a real Redis Cluster (three masters
 * with a replica each, on loopback): found out, not configured; writes
 * routed by slot and read back in order; a slot moved under a client with
 * a stale map (MOVED), a slot half migrated (ASK, and TRYAGAIN for a
 * transaction whose keys are split until the migration ends); WAIT on
 * every master written (and on one plain Redis); replies retrying cannot fix (WRONGTYPE, a cluster
 * node with redis.cluster off, a plain Redis with redis.cluster on); and a
 * master killed: the client fails naming it, says its unconfirmed writes
 * may be lost, and works again once the replica has taken over.  A
 * master paused (SIGSTOP): replies it owes time a collect out, a PING sent
 * alone reaches it as every master, and the connection dropped with
 * commands in flight is ended (CLIENT KILL ID) from the next one to that
 * node.  A master of a cluster without replicas restarted empty: the
 * client that connects to it again says so once (the known table shared
 * by two clients), and the unconfirmed writes that went with it are not
 * reported as lost.  A client's script is loaded on each node it connects
 * to, EVALSHA is routed by its first key, and NOSCRIPT from masters whose
 * scripts were flushed is repaired within the collect.
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
#include "ds_cluster.h"
#include "ds_metrics.h"
#include "ds_redis.h"
#include "harness.h"

static ds_h_env_t env;
static ds_h_cluster_t cl;
static ds_metrics_t *metrics;

static ds_redis_t *client_opts(const char *url, const ds_redis_opts_t *o) {
    char err[256] = "";
    ds_redis_t *r = ds_redis_new(url, 1500, err, sizeof(err));
    assert_non_null(r);
    if (o)
        ds_redis_set_opts(r, o);
    return r;
}

/* client_opts, connected (the case fails if it does not connect). */
static ds_redis_t *connected(const char *url, const ds_redis_opts_t *o) {
    ds_redis_t *r = client_opts(url, o);
    assert_int_equal(ds_redis_connect(r), DS_ERR_OK);
    return r;
}

static ds_redis_t *client(void) {
    ds_redis_opts_t o = {.metrics = metrics, .metrics_labels = "worker=\"test\""};
    ds_redis_t *r = connected(cl.url, &o);
    assert_true(ds_redis_is_cluster(r));
    return r;
}

static void hset(ds_redis_t *r, const char *key, const char *value) {
    const char *argv[] = {"HSET", key, "f", value};
    ds_redis_cmd(r, 4, argv, NULL);
}

/* MULTI; HSET key f v; HSET key:x f v; EXEC (one slot) */
static void hset_tx(ds_redis_t *r, const char *key, const char *value) {
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    char k2[128];
    snprintf(k2, sizeof(k2), "%s:x", key);
    ds_redis_cmd(r, 1, multi, NULL);
    hset(r, key, value);
    hset(r, k2, value);
    ds_redis_cmd(r, 1, exec, NULL);
}

/* Send what `fill` captures and collect every reply. */
static ds_err_t write_all(ds_redis_t *r, void (*fill)(ds_redis_t *, void *), void *arg) {
    ds_buf_t b;
    ds_buf_init(&b, 0);
    size_t n = 0;
    ds_redis_capture(r, &b, &n);
    fill(r, arg);
    ds_redis_capture(r, NULL, NULL);
    ds_err_t e = ds_redis_send(r, b.data, b.len, n);
    if (!e)
        e = ds_redis_collect(r, n);
    ds_buf_free(&b);
    return e;
}

static char *hget(const char *key) {
    return ds_h_cluster_hget(&cl, key, "f");
}

static void assert_hget(const char *key, const char *want) {
    char *v = hget(key);
    if (!v || strcmp(v, want))
        fail_msg("%s: f = %s, want %s", key, v ? v : "(nil)", want);
    free(v);
}

static double metric(const char *name, const char *kind) {
    ds_buf_t b;
    ds_buf_init(&b, 0);
    assert_int_equal(ds_metrics_render(metrics, &b), DS_ERR_OK);
    assert_int_equal(ds_buf_append(&b, "", 1), DS_ERR_OK);
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "%s{worker=\"test\",kind=\"%s\"}", name, kind);
    double v = ds_h_metric_sum((const char *)b.data, prefix);
    ds_buf_free(&b);
    return v;
}

/* ---- slots moved by hand ----------------------------------------------------- */

/* The moves below come in two forms: try_* says what went wrong (NULL:
 * nothing), for the thread that ends a move while the case waits (cmocka's
 * asserts may only fail on the case's own thread), and the asserting form
 * the cases call. */
static const char *try_node_id(int i, char *id, size_t size) {
    redisReply *r = ds_h_node(&cl, i, "CLUSTER MYID");
    if (!r || r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return "CLUSTER MYID: no answer";
    }
    snprintf(id, size, "%s", r->str);
    freeReplyObject(r);
    return NULL;
}

static char *node_id(int i) {
    char id[64];
    const char *why = try_node_id(i, id, sizeof(id));
    if (why)
        fail_msg("%s", why);
    return strdup(id);
}

static const char *try_setslot_all(unsigned slot, const char *id) {
    int m[DS_H_CLUSTER_MAX];
    int n = ds_h_cluster_masters(&cl, m);
    for (int i = 0; i < n; i++) {
        redisReply *r = ds_h_node(&cl, m[i], "CLUSTER SETSLOT %u NODE %s", slot, id);
        if (!r)
            return "CLUSTER SETSLOT: no answer";
        freeReplyObject(r);
    }
    return NULL;
}

static const char *try_migrate_key(int from, int to, const char *key) {
    redisReply *r = ds_h_node(&cl, from, "MIGRATE 127.0.0.1 %d %s 0 5000", cl.port[to], key);
    const char *why = !r                             ? "MIGRATE: no answer"
                      : r->type == REDIS_REPLY_ERROR ? "MIGRATE: an error"
                                                     : NULL;
    if (r && r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "  MIGRATE %s: %s\n", key, r->str);
    freeReplyObject(r);
    return why;
}

static void migrate_key(int from, int to, const char *key) {
    const char *why = try_migrate_key(from, to, key);
    if (why)
        fail_msg("%s (%s)", why, key);
}

/* slot from `from` to `to`: migrating/importing, no key moved yet */
static void begin_move(unsigned slot, int from, int to) {
    char *fid = node_id(from), *tid = node_id(to);
    redisReply *r = ds_h_node(&cl, to, "CLUSTER SETSLOT %u IMPORTING %s", slot, fid);
    assert_non_null(r);
    freeReplyObject(r);
    r = ds_h_node(&cl, from, "CLUSTER SETSLOT %u MIGRATING %s", slot, tid);
    assert_non_null(r);
    freeReplyObject(r);
    free(fid);
    free(tid);
}

/* every key left in the slot, then the slot itself */
static const char *try_end_move(unsigned slot, int from, int to) {
    redisReply *r = ds_h_node(&cl, from, "CLUSTER GETKEYSINSLOT %u 1000", slot);
    if (!r)
        return "CLUSTER GETKEYSINSLOT: no answer";
    const char *why = NULL;
    for (size_t i = 0; i < r->elements && !why; i++)
        why = try_migrate_key(from, to, r->element[i]->str);
    freeReplyObject(r);
    char tid[64];
    if (!why)
        why = try_node_id(to, tid, sizeof(tid));
    if (!why)
        why = try_setslot_all(slot, tid);
    if (!why && !ds_h_cluster_wait_ok(&cl, 10000))
        why = "the nodes do not agree on the slots";
    return why;
}

static void end_move(unsigned slot, int from, int to) {
    const char *why = try_end_move(slot, from, to);
    if (why)
        fail_msg("ending the move of slot %u: %s", slot, why);
}

static bool slot_has(int node, unsigned slot, const char *key) {
    redisReply *r = ds_h_node(&cl, node, "CLUSTER GETKEYSINSLOT %u 1000", slot);
    assert_non_null(r);
    bool found = false;
    for (size_t i = 0; i < r->elements; i++)
        found |= !strcmp(r->element[i]->str, key);
    freeReplyObject(r);
    return found;
}

/* a master other than `not` */
static int other_master(int not ) {
    int m[DS_H_CLUSTER_MAX];
    int n = ds_h_cluster_masters(&cl, m);
    for (int i = 0; i < n; i++)
        if (m[i] != not )
            return m[i];
    fail_msg("no other master");
    return -1;
}

/* ---- tests ------------------------------------------------------------------------ */

static void fill_many(ds_redis_t *r, void *arg) {
    const char *value = arg;
    for (int i = 0; i < 300; i++) {
        char key[64];
        snprintf(key, sizeof(key), "t:{k%d}", i);
        if (i % 3 == 0)
            hset_tx(r, key, value);
        else
            hset(r, key, value);
    }
}

typedef struct got {
    int n, bad;
    const char *want;
} got_t;

static void on_get(void *opaque, size_t index, const ds_reply_t *rep) {
    got_t *g = opaque;
    if ((int)index != g->n || !ds_reply_is(rep, g->want))
        g->bad++;
    g->n++;
}

static void test_detect_and_route(void **state) {
    (void)state;
    ds_redis_t *r = client();
    assert_int_equal(write_all(r, fill_many, "v1"), DS_ERR_OK);
    assert_int_equal(ds_redis_inflight(r), 0);
    /* read back synchronously: replies in the order of the commands */
    for (int i = 0; i < 300; i++) {
        char key[64];
        snprintf(key, sizeof(key), "t:{k%d}", i);
        const char *argv[] = {"HGET", key, "f"};
        ds_redis_cmd(r, 3, argv, NULL);
    }
    got_t g = {0, 0, "v1"};
    assert_int_equal(ds_redis_run(r, on_get, &g), DS_ERR_OK);
    assert_int_equal(g.n, 300);
    assert_int_equal(g.bad, 0);
    assert_hget("t:{k3}:x", "v1");
    /* the keys really are spread over the masters */
    int m[DS_H_CLUSTER_MAX];
    int n = ds_h_cluster_masters(&cl, m);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++) {
        redisReply *d = ds_h_node(&cl, m[i], "DBSIZE");
        assert_true(d->integer > 50);
        freeReplyObject(d);
    }
    ds_redis_destroy(r);
}

/* Error replies of one kind, summed over the nodes. */
static double node_errors(const char *kind) {
    ds_buf_t b;
    ds_buf_init(&b, 0);
    assert_int_equal(ds_metrics_render(metrics, &b), DS_ERR_OK);
    assert_int_equal(ds_buf_append(&b, "", 1), DS_ERR_OK);
    char want[64];
    snprintf(want, sizeof(want), "kind=\"%s\"", kind);
    double v = 0;
    for (char *line = (char *)b.data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (!strncmp(line, "dealsignal_redis_node_errors_total{", 35) && strstr(line, want))
            v += ds_h_metric_sum(line, "dealsignal_redis_node_errors_total");
        line = nl ? nl + 1 : NULL;
    }
    ds_buf_free(&b);
    return v;
}

/* EVALSHA of the script on 300 keys spread over the masters. */
static const char script_body[] = "return redis.call('HSET', KEYS[1], 'f', ARGV[1])";
static char script_sha[64];
static void fill_script(ds_redis_t *r, void *arg) {
    for (int i = 0; i < 300; i++) {
        char key[64];
        snprintf(key, sizeof(key), "t:{e%d}", i);
        const char *argv[] = {"EVALSHA", script_sha, "1", key, arg};
        ds_redis_cmd(r, 5, argv, NULL);
    }
}

static void test_script_on_every_node(void **state) {
    (void)state;
    int m[DS_H_CLUSTER_MAX];
    int n = ds_h_cluster_masters(&cl, m);
    redisReply *load = ds_h_node(&cl, m[0], "SCRIPT LOAD %s", script_body);
    assert_int_equal(load->type, REDIS_REPLY_STRING);
    snprintf(script_sha, sizeof(script_sha), "%s", load->str);
    freeReplyObject(load);
    for (int i = 0; i < n; i++)
        freeReplyObject(ds_h_node(&cl, m[i], "SCRIPT FLUSH"));
    ds_redis_opts_t o = {.metrics = metrics,
                         .metrics_labels = "worker=\"test\"",
                         .script = script_body,
                         .script_sha = script_sha};
    ds_redis_t *r = connected(cl.url, &o);
    assert_true(ds_redis_is_cluster(r));
    /* routed by the first key (argv[3]): no master redirects one */
    double moved = metric("dealsignal_redis_redirects_total", "moved");
    assert_int_equal(write_all(r, fill_script, "v1"), DS_ERR_OK);
    assert_true(metric("dealsignal_redis_redirects_total", "moved") == moved);
    assert_hget("t:{e7}", "v1");
    for (int i = 0; i < n; i++)
        freeReplyObject(ds_h_node(&cl, m[i], "SCRIPT FLUSH"));
    /* the masters answer NOSCRIPT; the client connects to them again,
     * which loads the script, and the units go again, within the collect */
    double before = node_errors("noscript");
    assert_int_equal(write_all(r, fill_script, "v2"), DS_ERR_OK);
    assert_true(node_errors("noscript") >= before + n);
    assert_false(ds_redis_fatal(r));
    for (int i = 0; i < 300; i += 37) {
        char key[64];
        snprintf(key, sizeof(key), "t:{e%d}", i);
        assert_hget(key, "v2");
    }
    ds_redis_destroy(r);
}

static void test_seed_when_first_is_down(void **state) {
    (void)state;
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", ds_h_free_port());
    ds_redis_opts_t o = {.seeds = cl.seeds};
    ds_redis_t *r = connected(url, &o);
    assert_true(ds_redis_is_cluster(r));
    assert_int_equal(write_all(r, fill_many, "v2"), DS_ERR_OK);
    assert_hget("t:{k7}", "v2");
    ds_redis_destroy(r);
    /* without seeds: unreachable, and the error says where */
    r = client_opts(url, NULL);
    assert_int_equal(ds_redis_connect(r), DS_ERR_IO);
    char addr[32];
    snprintf(addr, sizeof(addr), "%.*s", (int)(strrchr(url, '/') - url - strlen("redis://")),
             url + strlen("redis://"));
    assert_non_null(strstr(ds_redis_errstr(r), addr));
    assert_false(ds_redis_fatal(r));
    ds_redis_destroy(r);
}

typedef struct slot_keys {
    const char *tag; /* hash tag: one slot */
    const char *value;
} slot_keys_t;

static void fill_slot(ds_redis_t *r, void *arg) {
    const slot_keys_t *s = arg;
    for (int i = 0; i < 20; i++) {
        char key[64];
        snprintf(key, sizeof(key), "m:{%s}:%d", s->tag, i);
        if (i % 2)
            hset_tx(r, key, s->value);
        else
            hset(r, key, s->value);
    }
    fill_many(r, (void *)s->value); /* other slots in the same pipeline */
}

static void test_moved(void **state) {
    (void)state;
    ds_redis_t *r = client(); /* its map is loaded now */
    slot_keys_t s = {"mv", "a"};
    assert_int_equal(write_all(r, fill_slot, &s), DS_ERR_OK);
    unsigned slot = ds_cluster_keyslot("mv", 2);
    int from = ds_h_cluster_owner(&cl, slot), to = other_master(from);
    begin_move(slot, from, to);
    end_move(slot, from, to);
    double before = metric("dealsignal_redis_redirects_total", "moved");
    s.value = "b";
    assert_int_equal(write_all(r, fill_slot, &s), DS_ERR_OK);
    assert_true(metric("dealsignal_redis_redirects_total", "moved") > before);
    assert_int_equal(ds_h_cluster_owner(&cl, slot), to);
    assert_hget("m:{mv}:0", "b");
    assert_hget("m:{mv}:19:x", "b");
    assert_hget("t:{k299}", "b");
    /* the moved slot is read from its new owner too */
    const char *argv[] = {"HGET", "m:{mv}:3", "f"};
    ds_redis_cmd(r, 3, argv, NULL);
    got_t g = {0, 0, "b"};
    assert_int_equal(ds_redis_run(r, on_get, &g), DS_ERR_OK);
    assert_int_equal(g.bad, 0);
    ds_redis_destroy(r);
}

static void test_ask(void **state) {
    (void)state;
    ds_redis_t *r = client();
    slot_keys_t s = {"ak", "a"};
    assert_int_equal(write_all(r, fill_slot, &s), DS_ERR_OK);
    unsigned slot = ds_cluster_keyslot("ak", 2);
    int from = ds_h_cluster_owner(&cl, slot), to = other_master(from);
    begin_move(slot, from, to);
    /* half the keys migrated (a transaction's two keys together) */
    for (int i = 0; i < 10; i++) {
        char key[64];
        snprintf(key, sizeof(key), "m:{ak}:%d", i);
        migrate_key(from, to, key);
        if (i % 2) {
            snprintf(key, sizeof(key), "m:{ak}:%d:x", i);
            migrate_key(from, to, key);
        }
    }
    double ask = metric("dealsignal_redis_redirects_total", "ask");
    double moved = metric("dealsignal_redis_redirects_total", "moved");
    s.value = "b";
    assert_int_equal(write_all(r, fill_slot, &s), DS_ERR_OK);
    assert_true(metric("dealsignal_redis_redirects_total", "ask") >= ask + 10);
    /* ASK does not change the map */
    assert_true(metric("dealsignal_redis_redirects_total", "moved") == moved);
    /* a migrated key is on the target, one not migrated on the source
     * (the importing node answers MOVED without ASKING: list the keys) */
    assert_true(slot_has(to, slot, "m:{ak}:3"));
    assert_false(slot_has(from, slot, "m:{ak}:3"));
    assert_true(slot_has(from, slot, "m:{ak}:15"));
    /* reads follow ASK as well */
    const char *argv[] = {"HGET", "m:{ak}:4", "f"};
    ds_redis_cmd(r, 3, argv, NULL);
    got_t g = {0, 0, "b"};
    assert_int_equal(ds_redis_run(r, on_get, &g), DS_ERR_OK);
    assert_int_equal(g.bad, 0);
    end_move(slot, from, to);
    assert_hget("m:{ak}:3", "b");
    assert_hget("m:{ak}:15:x", "b");
    ds_redis_destroy(r);
}

typedef struct mover {
    unsigned slot;
    int from, to;
} mover_t;

/* on a harness thread: what went wrong, or NULL */
static void *finish_later(void *arg) {
    mover_t *m = arg;
    ds_clock_sleep_ms(300);
    return (void *)try_end_move(m->slot, m->from, m->to);
}

static void fill_split_tx(ds_redis_t *r, void *arg) {
    (void)arg;
    hset_tx(r, "m:{ty}:1", "c"); /* m:{ty}:1 migrated, m:{ty}:1:x not yet */
    hset(r, "m:{ty}:2", "c");
}

static void test_tryagain(void **state) {
    (void)state;
    ds_redis_t *r = client();
    slot_keys_t s = {"ty", "a"};
    assert_int_equal(write_all(r, fill_slot, &s), DS_ERR_OK);
    mover_t m = {ds_cluster_keyslot("ty", 2), 0, 0};
    m.from = ds_h_cluster_owner(&cl, m.slot);
    m.to = other_master(m.from);
    begin_move(m.slot, m.from, m.to);
    migrate_key(m.from, m.to, "m:{ty}:1");
    /* the transaction's keys are split: ASK, then TRYAGAIN on the target,
     * retried until the migration ends (within the command timeout) */
    double before = metric("dealsignal_redis_redirects_total", "tryagain");
    void *t = ds_h_thread_start(finish_later, &m, sizeof(m));
    ds_err_t e = write_all(r, fill_split_tx, NULL);
    const char *why = ds_h_thread_join(t);
    if (why)
        fail_msg("ending the move of slot %u: %s", m.slot, why);
    assert_int_equal(e, DS_ERR_OK);
    assert_true(metric("dealsignal_redis_redirects_total", "tryagain") > before);
    assert_hget("m:{ty}:1", "c");
    assert_hget("m:{ty}:1:x", "c");
    assert_hget("m:{ty}:2", "c");
    ds_redis_destroy(r);
}

static void fill_wait(ds_redis_t *r, void *arg) {
    fill_many(r, arg);
    ds_redis_capture_wait(r);
}

static void test_wait(void **state) {
    (void)state;
    ds_redis_opts_t o = {.wait_replicas = 1, .wait_timeout_ms = 2000};
    ds_redis_t *r = connected(cl.url, &o);
    assert_int_equal(write_all(r, fill_wait, "w1"), DS_ERR_OK);
    ds_redis_destroy(r);
    /* two replicas asked, one each: the collect fails and says so */
    o.wait_replicas = 2;
    o.wait_timeout_ms = 50;
    r = connected(cl.url, &o);
    assert_int_equal(write_all(r, fill_wait, "w2"), DS_ERR_IO);
    assert_non_null(strstr(ds_redis_errstr(r), "1 of 2 replicas"));
    assert_false(ds_redis_fatal(r));
    ds_redis_destroy(r);
    /* one plain Redis (no replica): the WAIT's reply is checked there too,
     * and the writes it did not confirm are said to be at risk once the
     * connection goes */
    o.wait_replicas = 1;
    r = connected(env.redis_url, &o);
    assert_false(ds_redis_is_cluster(r));
    assert_int_equal(write_all(r, fill_wait, "w3"), DS_ERR_IO);
    assert_non_null(strstr(ds_redis_errstr(r), "0 of 1 replicas"));
    ds_redis_close(r);
    assert_true(ds_redis_take_lost(r));
    ds_redis_destroy(r);
}

static void fill_hset_string(ds_redis_t *r, void *arg) {
    (void)arg;
    hset(r, "str:{s}", "x");
}

static void test_fatal_replies(void **state) {
    (void)state;
    redisReply *x;
    int owner = ds_h_cluster_owner(&cl, ds_cluster_keyslot("s", 1));
    x = ds_h_node(&cl, owner, "SET str:{s} plain");
    freeReplyObject(x);
    ds_redis_t *r = client();
    assert_int_equal(write_all(r, fill_hset_string, NULL), DS_ERR_IO);
    assert_true(ds_redis_fatal(r));
    assert_non_null(strstr(ds_redis_errstr(r), "WRONGTYPE"));
    assert_non_null(strstr(ds_redis_errstr(r), "bad_command"));
    ds_redis_destroy(r);
    /* a cluster node with redis.cluster off: the first redirect stops it */
    ds_redis_opts_t off = {.cluster = DS_REDIS_CLUSTER_OFF};
    char url[64];
    int m[DS_H_CLUSTER_MAX];
    ds_h_cluster_masters(&cl, m);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", cl.port[m[0]]);
    r = connected(url, &off);
    assert_false(ds_redis_is_cluster(r));
    assert_int_equal(write_all(r, fill_many, "off"), DS_ERR_IO);
    assert_true(ds_redis_fatal(r));
    assert_non_null(strstr(ds_redis_errstr(r), "redis.cluster is off"));
    ds_redis_destroy(r);
    /* a plain Redis with redis.cluster on */
    ds_redis_opts_t on = {.cluster = DS_REDIS_CLUSTER_ON};
    r = client_opts(env.redis_url, &on);
    assert_int_equal(ds_redis_connect(r), DS_ERR_IO);
    assert_true(ds_redis_fatal(r));
    assert_non_null(strstr(ds_redis_errstr(r), "not a Redis Cluster node"));
    ds_redis_destroy(r);
    /* and the same plain Redis in auto mode: one node, as before */
    r = connected(env.redis_url, NULL);
    assert_false(ds_redis_is_cluster(r));
    assert_int_equal(write_all(r, fill_many, "plain"), DS_ERR_OK);
    ds_redis_destroy(r);
}

/* CLIENT KILL commands node i ran (INFO commandstats) */
static long long kill_calls(const ds_h_cluster_t *c, int i) {
    redisReply *x = ds_h_node(c, i, "INFO commandstats");
    assert_non_null(x);
    const char *tag = "cmdstat_client|kill:calls=";
    const char *p = strstr(x->str, tag);
    long long n = p ? strtoll(p + strlen(tag), NULL, 10) : 0;
    freeReplyObject(x);
    return n;
}

static const char ping_cmd[] = "*1\r\n$4\r\nPING\r\n";

/* Collect without waiting until everything is in or the call fails;
 * returns its result and how long it took (*ms). */
static ds_err_t collect_avail_all(ds_redis_t *r, size_t n, int64_t *ms) {
    int64_t t0 = ds_clock_mono_ms();
    ds_err_t e = DS_ERR_OK;
    for (size_t have = 0; have < n && ds_clock_mono_ms() - t0 < 10000;) {
        size_t got = 0;
        if ((e = ds_redis_collect_avail(r, n - have, &got)))
            break;
        have += got;
        ds_clock_sleep_ms(5);
    }
    *ms = ds_clock_mono_ms() - t0;
    return e;
}

/* Sends the n commands in bytes with node `victim` paused and collects
 * their replies (*ms: how long the collect took); the case fails unless
 * that times out after the client's 500 ms (450 to 1500 ms) with an error
 * naming the node's port. */
static void expect_paused_timeout(ds_redis_t *r, int victim, const char *what, const void *bytes,
                                  size_t len, size_t n, int64_t *ms) {
    char port[16];
    snprintf(port, sizeof(port), ":%d", cl.port[victim]);
    kill(cl.pid[victim], SIGSTOP);
    ds_err_t e = ds_redis_send(r, bytes, len, n);
    if (!e)
        e = collect_avail_all(r, n, ms);
    kill(cl.pid[victim], SIGCONT);
    fprintf(stderr, "  %s with a master paused: %s after %lld ms: %s\n", what, ds_err2str(e),
            (long long)*ms, ds_redis_errstr(r));
    assert_int_equal(e, DS_ERR_TIMEOUT);
    assert_true(*ms >= 450 && *ms < 1500);
    assert_non_null(strstr(ds_redis_errstr(r), port));
}

static void test_node_not_answering(void **state) {
    (void)state;
    char err[256];
    ds_redis_t *r = ds_redis_new(cl.url, 500, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(ds_redis_connect(r), DS_ERR_OK);
    assert_true(ds_redis_is_cluster(r));
    /* not the master of slot 0, where a keyless command sent to one master
     * only would go */
    int victim = ds_h_cluster_owner(&cl, 16383);
    assert_true(victim != ds_h_cluster_owner(&cl, 0));
    int64_t ms;
    assert_int_equal(ds_redis_send(r, ping_cmd, sizeof(ping_cmd) - 1, 1), DS_ERR_OK);
    assert_int_equal(collect_avail_all(r, 1, &ms), DS_ERR_OK);
    long long kills = kill_calls(&cl, victim);

    /* the probe's PING, alone, while that master is paused */
    expect_paused_timeout(r, victim, "PING", ping_cmd, sizeof(ping_cmd) - 1, 1, &ms);
    assert_false(ds_redis_connected(r)); /* the map is read again */

    /* it answers again: writes to every master go through, and the
     * connection dropped with the PING in flight was ended from the next
     * one to that node */
    assert_int_equal(ds_redis_connect(r), DS_ERR_OK);
    assert_int_equal(write_all(r, fill_many, "p1"), DS_ERR_OK);
    assert_int_equal(kill_calls(&cl, victim), kills + 1);

    /* writes to every master; the paused one owes its replies */
    ds_buf_t b;
    ds_buf_init(&b, 0);
    size_t n = 0;
    ds_redis_capture(r, &b, &n);
    fill_many(r, "p2");
    ds_redis_capture(r, NULL, NULL);
    expect_paused_timeout(r, victim, "writes", b.data, b.len, n, &ms);
    assert_false(ds_redis_fatal(r));
    ds_buf_free(&b);

    /* sent again once it answers */
    assert_int_equal(ds_redis_connect(r), DS_ERR_OK);
    assert_int_equal(write_all(r, fill_many, "p3"), DS_ERR_OK);
    assert_int_equal(kill_calls(&cl, victim), kills + 2);
    assert_hget("t:{k1}", "p3");
    assert_hget("t:{k299}", "p3");
    ds_redis_destroy(r);
    assert_true(ds_h_cluster_wait_ok(&cl, 20000));
}

static void fill_c0(ds_redis_t *r, void *arg) {
    fill_many(r, arg);
}

static void test_node_back_empty(void **state) {
    (void)state;
    ds_h_cluster_t c0; /* no replicas: a master restarted is master again, empty */
    ds_h_cluster_start(&env, &c0, 3, 0);
    ds_redis_known_t *k = ds_redis_known_new();
    assert_non_null(k);
    char err[256];
    ds_redis_opts_t wo = {.wait_replicas = 1, .known = k}, lo = {.known = k};
    ds_redis_t *w = ds_redis_new(c0.url, 5000, err, sizeof(err));
    ds_redis_t *l = ds_redis_new(c0.url, 5000, err, sizeof(err));
    ds_redis_set_opts(w, &wo);
    ds_redis_set_opts(l, &lo);
    assert_int_equal(ds_redis_connect(w), DS_ERR_OK);
    assert_int_equal(ds_redis_connect(l), DS_ERR_OK);
    assert_int_equal(write_all(w, fill_c0, "e1"), DS_ERR_OK);
    int64_t ms;
    assert_int_equal(ds_redis_send(l, ping_cmd, sizeof(ping_cmd) - 1, 1), DS_ERR_OK);
    assert_int_equal(collect_avail_all(l, 1, &ms), DS_ERR_OK);
    char why[700];
    assert_false(ds_redis_take_emptied(w, why, sizeof(why)));

    int victim = ds_h_cluster_owner(&c0, ds_cluster_keyslot("k1", 2));
    char port[16];
    snprintf(port, sizeof(port), ":%d", c0.port[victim]);
    ds_h_cluster_kill(&c0, victim);
    ds_h_cluster_restart(&env, &c0, victim);
    /* the other client's PING reaches it first (it answers CLUSTERDOWN
     * for a while after a restart: the check waits for an answer) */
    int64_t t0 = ds_clock_mono_ms();
    ds_err_t e;
    do {
        e = ds_redis_connect(l);
        if (!e)
            e = ds_redis_send(l, ping_cmd, sizeof(ping_cmd) - 1, 1);
        if (!e)
            e = collect_avail_all(l, 1, &ms);
    } while (e && ds_clock_mono_ms() - t0 < 15000);
    assert_int_equal(e, DS_ERR_OK);
    assert_true(ds_redis_take_emptied(w, why, sizeof(why)));
    fprintf(stderr, "  after %lld ms: %s\n", (long long)(ds_clock_mono_ms() - t0), why);
    assert_non_null(strstr(why, port));
    assert_non_null(strstr(why, "is gone"));
    assert_false(ds_redis_take_emptied(l, why, sizeof(why))); /* said once */

    /* the writer's connection to it went with the restart, holding writes
     * no WAIT confirmed: they are not reported as lost (what memory holds
     * is written again instead) */
    assert_int_equal(write_all(w, fill_c0, "e2"), DS_ERR_OK);
    assert_false(ds_redis_take_lost(w));
    assert_false(ds_redis_take_emptied(w, why, sizeof(why)));
    char *v = ds_h_cluster_hget(&c0, "t:{k1}", "f");
    assert_non_null(v);
    assert_string_equal(v, "e2");
    free(v);
    ds_redis_destroy(w);
    ds_redis_destroy(l);
    ds_redis_known_destroy(k);
    for (int i = 0; i < c0.n; i++)
        ds_h_cluster_kill(&c0, i);
}

static void test_master_lost(void **state) {
    (void)state;
    ds_redis_opts_t o = {.wait_replicas = 1, .wait_timeout_ms = 1000};
    ds_redis_t *r = connected(cl.url, &o);
    /* writes no WAIT confirmed yet, then their master dies */
    assert_int_equal(write_all(r, fill_many, "l1"), DS_ERR_OK);
    int victim = ds_h_cluster_owner(&cl, ds_cluster_keyslot("k1", 2));
    ds_h_cluster_kill(&cl, victim);
    ds_err_t e = write_all(r, fill_wait, "l2");
    assert_int_equal(e, DS_ERR_IO);
    char port[16];
    snprintf(port, sizeof(port), ":%d", cl.port[victim]);
    fprintf(stderr, "  while the master is down: %s\n", ds_redis_errstr(r));
    assert_non_null(strstr(ds_redis_errstr(r), port));
    assert_false(ds_redis_fatal(r));
    assert_true(ds_redis_take_lost(r));
    assert_false(ds_redis_take_lost(r)); /* said once */
    /* the replica takes over; the old master comes back as its replica */
    int64_t t0 = ds_clock_mono_ms();
    for (;;) {
        ds_redis_close(r);
        if (ds_redis_connect(r) == DS_ERR_OK && write_all(r, fill_many, "l3") == DS_ERR_OK)
            break;
        assert_true(ds_clock_mono_ms() - t0 < 30000);
        ds_clock_sleep_ms(200);
    }
    fprintf(stderr, "  writes go through again after %lld ms\n",
            (long long)(ds_clock_mono_ms() - t0));
    ds_h_cluster_restart(&env, &cl, victim);
    assert_true(ds_h_cluster_wait_ok(&cl, 30000));
    assert_int_equal(write_all(r, fill_wait, "l4"), DS_ERR_OK);
    assert_hget("t:{k1}", "l4");
    ds_redis_destroy(r);
}

int main(void) {
    ds_h_start(&env, 1, true);
    ds_h_cluster_start(&env, &cl, 3, 1);
    metrics = ds_metrics_new("dealsignal_");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_and_route),
        cmocka_unit_test(test_seed_when_first_is_down),
        cmocka_unit_test(test_script_on_every_node),
        cmocka_unit_test(test_moved),
        cmocka_unit_test(test_ask),
        cmocka_unit_test(test_tryagain),
        cmocka_unit_test(test_wait),
        cmocka_unit_test(test_fatal_replies),
        cmocka_unit_test(test_node_not_answering),
        cmocka_unit_test(test_node_back_empty),
        cmocka_unit_test(test_master_lost),
    };
    int rc = ds_h_run_tests("tests", tests, sizeof(tests) / sizeof(tests[0]), NULL);
    ds_metrics_destroy(metrics);
    ds_h_cleanup();
    return rc;
}
