/*
 * test_state_migration.c — a scorer of this version carries on from the
 * Redis state that the scorer of state version 2 left (the fixture in
 * tests/fixtures/redis-v2/, made by tests/fixtures/make_redis_v2.c):
 *
 *   run A  the fixture's dump is restored into Redis database 0, the first
 *          half of the stream is produced again (it lands on the same
 *          offsets, which the dump's checkpoints refer to) and committed
 *          for A's group, then the second half follows: A reads only the
 *          second half, on top of the restored state;
 *   run B  the whole stream from scratch: the same topic (the same offsets,
 *          so the same checkpoints) with a group of its own, output topics
 *          of its own and Redis database 1.
 *
 * Both end with the same public Redis state: every field but the internal
 * `blob` of ds:{acct:A}, ds:{acct:A}:lead:L and ds:{lead:L}, and the
 * members of ds:{acct:A}:leads (keys of other shapes, which a later layout
 * may add, are not compared).  And B's LeadScore/AccountScore records are
 * exactly the fixture's first-half records plus A's, by output id and
 * value.  Run by the version that wrote the fixture this holds trivially;
 * after a change of the state layout it shows that state already in Redis
 * still loads and is moved on correctly.
 *
 * The account as_of: the first half holds no late UNSUBSCRIBED, so the
 * account as_of stored in the fixture is also the largest as_of its leads
 * ever had.
 */
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_buf.h"
#include "harness.h"
#include "state_dump.h"

static ds_h_env_t env;
static char dir[1024], logfile[256];

/* A lead hash that no event touched since the upgrade keeps the earlier
 * version's text: its scores with six digits (now to 0.1) and its reasons
 * with their points (now without).  Such a field is the same when it reads
 * the same in the newer format. */
static void strip_points(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap;) {
        size_t e = i;
        while (e < n && s[e] != '\n')
            e++;
        size_t end = e;
        for (size_t k = i; k + 4 <= e; k++) /* the last ": " of the line */
            if (s[k] == ':' && s[k + 1] == ' ')
                end = k;
        if (end < e && !(e - i >= 4 && !memcmp(s + e - 4, " pts", 4)))
            end = e;
        for (size_t k = i; k < end && o + 1 < cap; k++)
            out[o++] = s[k];
        if (e < n && o + 1 < cap)
            out[o++] = '\n';
        i = e + 1;
    }
    out[o] = '\0';
}

static bool same_in_either_format(const char *field, const redisReply *x, const redisReply *y) {
    static char a[8192], b[8192];
    if (!strcmp(field, "reasons")) {
        strip_points(x->str, x->len, a, sizeof(a));
        strip_points(y->str, y->len, b, sizeof(b));
        return !strcmp(a, b);
    }
    if (!strcmp(field, "confront") || !strcmp(field, "connect") || !strcmp(field, "mobilizer")) {
        double u = strtod(x->str, NULL), v = strtod(y->str, NULL);
        return round(u * 10) == round(v * 10);
    }
    return false;
}

static const char *const ACCOUNT_FIELDS[] = {
    "account_id", "engaged_stakeholders", "confronted_stakeholders",
    "consensus",  "top_insight",          "mobilizers",
    "as_of",      "checkpoint",           NULL};
static const char *const LEAD_FIELDS[] = {
    "lead_id",     "account_id",     "confront", "connect", "mobilizer",      "tier",
    "top_insight", "furthest_stage", "reasons",  "as_of",   "events_applied", NULL};
static const char *const LONE_FIELDS[] = {
    "lead_id",     "account_id",     "confront", "connect", "mobilizer",      "tier",
    "top_insight", "furthest_stage", "reasons",  "as_of",   "events_applied", "checkpoint",
    NULL};

enum { K_OTHER, K_ACCOUNT, K_LEAD, K_LEADS_SET, K_LONE };

/* The documented key shapes under the prefix ds:. */
static int classify(const char *k, size_t n) {
    const char *end = k + n;
    if (n > 9 && !memcmp(k, "ds:{acct:", 9)) {
        const char *c = memchr(k + 9, '}', (size_t)(end - (k + 9)));
        if (!c)
            return K_OTHER;
        size_t rest = (size_t)(end - c - 1);
        if (rest == 0)
            return K_ACCOUNT;
        if (rest == 6 && !memcmp(c + 1, ":leads", 6))
            return K_LEADS_SET;
        if (rest > 6 && !memcmp(c + 1, ":lead:", 6))
            return K_LEAD;
        return K_OTHER;
    }
    if (n > 9 && !memcmp(k, "ds:{lead:", 9) && k[n - 1] == '}' && !memchr(k + 9, '}', n - 10))
        return K_LONE;
    return K_OTHER;
}

typedef struct keyset {
    char **k;
    size_t *len;
    int *kind;
    size_t n, other;
} keyset_t;

static int cmp_key(const void *a, const void *b, void *ks_) {
    const keyset_t *ks = ks_;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    size_t n = ks->len[i] < ks->len[j] ? ks->len[i] : ks->len[j];
    int c = memcmp(ks->k[i], ks->k[j], n);
    return c ? c : (ks->len[i] > ks->len[j]) - (ks->len[i] < ks->len[j]);
}

/* The documented keys of a database, sorted. */
static void scan_keys(redisContext *c, keyset_t *ks) {
    memset(ks, 0, sizeof(*ks));
    size_t cap = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH ds:* COUNT 1000", cursor);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const redisReply *e = r->element[1]->element[i];
            int kind = classify(e->str, e->len);
            if (kind == K_OTHER) {
                ks->other++;
                continue;
            }
            bool dup = false;
            for (size_t j = 0; j < ks->n && !dup; j++)
                dup = ks->len[j] == e->len && !memcmp(ks->k[j], e->str, e->len);
            if (dup)
                continue;
            if (ks->n == cap) {
                cap = cap ? cap * 2 : 64;
                ks->k = realloc(ks->k, cap * sizeof(*ks->k));
                ks->len = realloc(ks->len, cap * sizeof(*ks->len));
                ks->kind = realloc(ks->kind, cap * sizeof(*ks->kind));
            }
            ks->k[ks->n] = malloc(e->len + 1);
            memcpy(ks->k[ks->n], e->str, e->len + 1);
            ks->len[ks->n] = e->len;
            ks->kind[ks->n] = kind;
            ks->n++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0"));
    /* sort by key bytes (an index permutation, applied) */
    size_t *ord = malloc((ks->n + 1) * sizeof(*ord));
    for (size_t i = 0; i < ks->n; i++)
        ord[i] = i;
    qsort_r(ord, ks->n, sizeof(*ord), cmp_key, ks);
    keyset_t s = *ks;
    s.k = malloc((ks->n + 1) * sizeof(*s.k));
    s.len = malloc((ks->n + 1) * sizeof(*s.len));
    s.kind = malloc((ks->n + 1) * sizeof(*s.kind));
    for (size_t i = 0; i < ks->n; i++) {
        s.k[i] = ks->k[ord[i]];
        s.len[i] = ks->len[ord[i]];
        s.kind[i] = ks->kind[ord[i]];
    }
    free(ks->k);
    free(ks->len);
    free(ks->kind);
    free(ord);
    *ks = s;
}

static void keyset_free(keyset_t *ks) {
    for (size_t i = 0; i < ks->n; i++)
        free(ks->k[i]);
    free(ks->k);
    free(ks->len);
    free(ks->kind);
}

/* The printable form of a key or value, for messages. */
static const char *show(ds_buf_t *b, const char *p, size_t n) {
    ds_buf_reset(b);
    ds_sd_quote(b, p, n);
    assert_int_equal(ds_buf_append(b, "", 1), DS_ERR_OK);
    return (const char *)b->data;
}

static redisReply *argv2(redisContext *c, const char *cmd, const char *key, size_t klen) {
    const char *argv[] = {cmd, key};
    size_t lens[] = {strlen(cmd), klen};
    redisReply *r = redisCommandArgv(c, 2, argv, lens);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    return r;
}

static const redisReply *hfield(const redisReply *h, const char *name) {
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (h->element[i]->len == strlen(name) &&
            !memcmp(h->element[i]->str, name, h->element[i]->len))
            return h->element[i + 1];
    return NULL;
}

static int cmp_reply_str(const void *a, const void *b) {
    const redisReply *x = *(redisReply *const *)a, *y = *(redisReply *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->str, y->str, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Database a (migrated) against b (from scratch); returns the number of
 * keys compared.  Fails naming the first difference. */
static size_t compare_redis(redisContext *a, redisContext *b) {
    keyset_t ka, kb;
    scan_keys(a, &ka);
    scan_keys(b, &kb);
    ds_buf_t m1, m2, m3;
    ds_buf_init(&m1, 0);
    ds_buf_init(&m2, 0);
    ds_buf_init(&m3, 0);
    for (size_t i = 0; i < ka.n || i < kb.n; i++) {
        if (i >= ka.n || i >= kb.n || ka.len[i] != kb.len[i] || memcmp(ka.k[i], kb.k[i], ka.len[i]))
            fail_msg("key #%zu: migrated run has %s, the run from scratch %s", i,
                     i < ka.n ? show(&m1, ka.k[i], ka.len[i]) : "(none)",
                     i < kb.n ? show(&m2, kb.k[i], kb.len[i]) : "(none)");
        const char *key = show(&m1, ka.k[i], ka.len[i]);
        if (ka.kind[i] == K_LEADS_SET) {
            redisReply *x = argv2(a, "SMEMBERS", ka.k[i], ka.len[i]);
            redisReply *y = argv2(b, "SMEMBERS", kb.k[i], kb.len[i]);
            if (x->elements != y->elements)
                fail_msg("%s: %zu members, from scratch %zu", key, x->elements, y->elements);
            qsort(x->element, x->elements, sizeof(*x->element), cmp_reply_str);
            qsort(y->element, y->elements, sizeof(*y->element), cmp_reply_str);
            for (size_t j = 0; j < x->elements; j++)
                if (cmp_reply_str(&x->element[j], &y->element[j]))
                    fail_msg("%s: member %s, from scratch %s", key,
                             show(&m2, x->element[j]->str, x->element[j]->len),
                             show(&m3, y->element[j]->str, y->element[j]->len));
            freeReplyObject(x);
            freeReplyObject(y);
            continue;
        }
        const char *const *fields = ka.kind[i] == K_ACCOUNT ? ACCOUNT_FIELDS
                                    : ka.kind[i] == K_LEAD  ? LEAD_FIELDS
                                                            : LONE_FIELDS;
        redisReply *x = argv2(a, "HGETALL", ka.k[i], ka.len[i]);
        redisReply *y = argv2(b, "HGETALL", kb.k[i], kb.len[i]);
        for (size_t f = 0; fields[f]; f++) {
            const redisReply *fx = hfield(x, fields[f]), *fy = hfield(y, fields[f]);
            if (!fx && !fy)
                continue;
            if (fx && fy && same_in_either_format(fields[f], fx, fy))
                continue;
            if (!fx || !fy || fx->len != fy->len || memcmp(fx->str, fy->str, fx->len))
                fail_msg("%s field %s: migrated run %s, from scratch %s", key, fields[f],
                         fx ? show(&m2, fx->str, fx->len) : "(absent)",
                         fy ? show(&m3, fy->str, fy->len) : "(absent)");
        }
        freeReplyObject(x);
        freeReplyObject(y);
    }
    size_t n = ka.n;
    print_message("  %zu keys compared (%zu and %zu of other shapes not compared)\n", n, ka.other,
                  kb.other);
    keyset_free(&ka);
    keyset_free(&kb);
    ds_buf_free(&m1);
    ds_buf_free(&m2);
    ds_buf_free(&m3);
    return n;
}

/* ---- outputs -------------------------------------------------------------- */

/* Output records as "kind id" -> text; repeats of an id (at least once
 * delivery) must carry the same text. */
typedef struct outs {
    char **line; /* "kind \"id\" ..." */
    size_t n, cap;
} outs_t;

static size_t id_len(const char *line) {
    /* kind, a space, the quoted id: up to the closing quote */
    const char *p = strchr(line, '"');
    assert_non_null(p);
    for (p++; *p && *p != '"'; p++)
        if (*p == '\\')
            p++;
    return (size_t)(p + 1 - line);
}

/* The line with the same "kind id" as `line`, or NULL. */
static const char *outs_find(const outs_t *o, const char *line) {
    size_t k = id_len(line);
    for (size_t i = 0; i < o->n; i++)
        if (id_len(o->line[i]) == k && !memcmp(o->line[i], line, k))
            return o->line[i];
    return NULL;
}

static void outs_add(outs_t *o, char *line, const char *from) {
    const char *have = outs_find(o, line);
    if (have) {
        if (strcmp(have, line))
            fail_msg("%s: two records with one output id differ:\n  %s\n  %s", from, have, line);
        free(line);
        return;
    }
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 256;
        o->line = realloc(o->line, o->cap * sizeof(*o->line));
    }
    o->line[o->n++] = line;
}

static void outs_read_topic(outs_t *o, const char *topic, const char *kind) {
    ds_h_record_t *recs;
    size_t n = ds_h_consume(&env, topic, SIZE_MAX, 30000, &recs);
    for (size_t i = 0; i < n; i++)
        outs_add(o, ds_sd_render_output(kind, &recs[i]), topic);
    ds_h_records_free(recs, n);
}

static void outs_read_file(outs_t *o, const char *path) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        outs_add(o, strdup(line), path);
    }
    free(line);
    fclose(f);
}

static void outs_free(outs_t *o) {
    for (size_t i = 0; i < o->n; i++)
        free(o->line[i]);
    free(o->line);
}

/* ---- the runs --------------------------------------------------------------- */

/* A scorer on ma.events writing Redis database db and the output topics
 * OUT.lead.scores and OUT.account.scores (no OUT: the default ones). */
static pid_t start_scorer(const char *group, int db, const char *out) {
    static char url[2][160], rules[2][1100], tl[2][64], ta[2][64];
    static int slot;
    int s = slot++ % 2;
    snprintf(url[s], sizeof(url[s]), "redis://127.0.0.1:%d/%d", env.redis_port, db);
    snprintf(rules[s], sizeof(rules[s]), "%s/rules.yaml", dir);
    snprintf(tl[s], sizeof(tl[s]), "%s%slead.scores", out ? out : "", out ? "." : "");
    snprintf(ta[s], sizeof(ta[s]), "%s%saccount.scores", out ? out : "", out ? "." : "");
    const char *args[] = {"scorer",
                          "--brokers",
                          env.brokers,
                          "--redis",
                          url[s],
                          "--group-id",
                          group,
                          "--schemas",
                          getenv("DS_SCHEMAS_DIR"),
                          "--rules",
                          rules[s],
                          "--clock",
                          "event",
                          "--topic-marketing",
                          "ma.events",
                          "--topic-lead-scores",
                          tl[s],
                          "--topic-account-scores",
                          ta[s],
                          NULL};
    return ds_h_spawn(logfile, args);
}

/* offsets.txt: "TOPIC PARTITION END" per partition of the first half. */
static int read_offsets(int64_t *end, int max) {
    char path[1100];
    snprintf(path, sizeof(path), "%s/offsets.txt", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char topic[64];
    int part, n = 0;
    int64_t off;
    while (fscanf(f, "%63s %d %" SCNd64, topic, &part, &off) == 3) {
        assert_true(part >= 0 && part < max);
        end[part] = off;
        n = part + 1 > n ? part + 1 : n;
    }
    fclose(f);
    return n;
}

/* Commit `end` for the group on the topic, as a group that had consumed
 * the first half would have (no member joins: a plain commit). */
static void commit_offsets(const char *group, const char *topic, const int64_t *end, int n) {
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char e[256];
    assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", env.brokers, e, sizeof(e)), 0);
    assert_int_equal(rd_kafka_conf_set(c, "group.id", group, e, sizeof(e)), 0);
    assert_int_equal(rd_kafka_conf_set(c, "enable.auto.commit", "false", e, sizeof(e)), 0);
    rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof(e));
    assert_non_null(k);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, i)->offset = end[i];
    rd_kafka_resp_err_t err = rd_kafka_commit(k, l, 0);
    if (err)
        fail_msg("commit of the first half's offsets: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(k);
    rd_kafka_destroy(k);
}

static void test_migration(void **state) {
    (void)state;
    char path[1100];
    ds_sd_events_t h1, h2;
    snprintf(path, sizeof(path), "%s/events-1.jsonl", dir);
    assert_true(ds_sd_events_load(path, &h1));
    snprintf(path, sizeof(path), "%s/events-2.jsonl", dir);
    assert_true(ds_sd_events_load(path, &h2));

    /* the state the scorer of version 2 left after the first half */
    redisContext *a = ds_sd_connect(&env, 0), *b = ds_sd_connect(&env, 1);
    snprintf(path, sizeof(path), "%s/dump.txt", dir);
    size_t restored = ds_sd_restore(a, path);
    assert_true(restored > 0);
    /* every unit's state is a blob of state version 2 (a fixture made
     * again by a later version would prove nothing) */
    keyset_t ks;
    scan_keys(a, &ks);
    ds_buf_t m;
    ds_buf_init(&m, 0);
    size_t units = 0;
    for (size_t i = 0; i < ks.n; i++) {
        if (ks.kind[i] != K_ACCOUNT && ks.kind[i] != K_LONE)
            continue;
        const char *argv[] = {"HGET", ks.k[i], "blob"};
        size_t lens[] = {4, ks.len[i], 4};
        redisReply *blob = redisCommandArgv(a, 3, argv, lens);
        if (!blob || blob->type != REDIS_REPLY_STRING || blob->len < 5 ||
            memcmp(blob->str, "DSSU\x02", 5))
            fail_msg("%s in the fixture holds no state of version 2", show(&m, ks.k[i], ks.len[i]));
        freeReplyObject(blob);
        units++;
    }
    assert_int_equal(units, 6); /* 4 accounts and 2 lone leads */
    keyset_free(&ks);
    ds_buf_free(&m);

    /* A: the first half again (its offsets must be the fixture's, which
     * the restored checkpoints name), committed; then the second half */
    rd_kafka_t *p = ds_h_producer(&env);
    for (size_t i = 0; i < h1.n; i++)
        ds_h_send_ma(p, "ma.events", &h1.ev[i]);
    ds_h_flush(p);
    int64_t want[8] = {0};
    int nparts = read_offsets(want, 8);
    assert_int_equal(nparts, 2);
    for (int i = 0; i < nparts; i++) {
        int64_t lo = 0, hi = 0;
        assert_int_equal(rd_kafka_query_watermark_offsets(p, "ma.events", i, &lo, &hi, 10000), 0);
        if (hi != want[i])
            fail_msg("the first half ends at offset %" PRId64 " of partition %d, the fixture "
                     "says %" PRId64 ": the partitioner differs",
                     hi, i, want[i]);
    }
    commit_offsets("migrated", "ma.events", want, nparts);
    for (size_t i = 0; i < h2.n; i++)
        ds_h_send_ma(p, "ma.events", &h2.ev[i]);
    ds_h_flush(p);
    rd_kafka_destroy(p);

    pid_t ra = start_scorer("migrated", 0, NULL);
    pid_t rb = start_scorer("scratch", 1, "fs");
    assert_true(ds_h_wait_group(&env, "migrated", "ma.events", 60000));
    assert_true(ds_h_wait_group(&env, "scratch", "ma.events", 60000));
    assert_int_equal(ds_h_stop(ra, SIGTERM, 10000), 0);
    assert_int_equal(ds_h_stop(rb, SIGTERM, 10000), 0);

    size_t keys = compare_redis(a, b);
    assert_true(keys >= 50);

    /* B's records = the fixture's first-half records + A's */
    outs_t fx = {0}, ra_out = {0}, rb_out = {0};
    snprintf(path, sizeof(path), "%s/outputs-1.txt", dir);
    outs_read_file(&fx, path);
    outs_read_topic(&ra_out, "lead.scores", "lead");
    outs_read_topic(&ra_out, "account.scores", "account");
    outs_read_topic(&rb_out, "fs.lead.scores", "lead");
    outs_read_topic(&rb_out, "fs.account.scores", "account");
    for (size_t i = 0; i < rb_out.n; i++) {
        const char *l = rb_out.line[i];
        const char *x = outs_find(&fx, l), *y = outs_find(&ra_out, l);
        if (!x && !y)
            fail_msg("from scratch, not in the fixture's first half nor the migrated run:\n  %s",
                     l);
        if ((x && strcmp(x, l)) || (y && strcmp(y, l)))
            fail_msg("a record differs from the run from scratch:\n  %s\n  from scratch:\n  %s",
                     x && strcmp(x, l) ? x : y, l);
    }
    for (size_t i = 0; i < ra_out.n; i++)
        if (!outs_find(&rb_out, ra_out.line[i]))
            fail_msg("the migrated run produced a record the run from scratch did not:\n  %s",
                     ra_out.line[i]);
    for (size_t i = 0; i < fx.n; i++)
        if (!outs_find(&rb_out, fx.line[i]))
            fail_msg("a record of the fixture's first half is not in the run from scratch:\n  %s",
                     fx.line[i]);
    print_message("  %zu records from scratch = %zu of the first half + %zu of the migrated run\n",
                  rb_out.n, fx.n, ra_out.n);
    assert_true(ra_out.n > 0);
    outs_free(&fx);
    outs_free(&ra_out);
    outs_free(&rb_out);
    redisFree(a);
    redisFree(b);
    ds_sd_events_free(&h1);
    ds_sd_events_free(&h2);
}

int main(void) {
    const char *src = getenv("DS_SOURCE_DIR");
    snprintf(dir, sizeof(dir), "%s/tests/fixtures/redis-v2", src ? src : ".");
    snprintf(logfile, sizeof(logfile), "%s/test_state_migration.log",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migration),
    };
    return ds_h_main(&env, 2, tests, sizeof(tests) / sizeof(tests[0]));
}
