/*
 * test_layout_it.c — the README's "Redis layout" is the whole of what the
 * workers write: `dealsignal run` over the wide profile (shares, webinars,
 * leads without an account, 2,400 content items) and gen's mixed stream
 * (deals), then every key in Redis, its ids replaced by the names the
 * README uses (A, L, C, D, TOPIC, N), must be a row of that section's
 * table, and every field of a hash whose fields are names (not ids) must
 * be named there in backquotes.  A key or field added to the code without
 * its documentation fails here.  And a lead set lists the account's leads:
 * each member has its hash under the account.  Then the scorer again over
 * the same wide stream, once with each redis.writes: the write script
 * (write.lua) and the MULTI/EXEC of the commands it stands for must leave
 * the same state, key for key and field for field.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "state_dump.h"

static ds_h_env_t env;

/* The README's "## Redis layout" section (malloc'ed). */
static char *layout_section(void) {
    char path[512];
    snprintf(path, sizeof(path), "%s/README.md", getenv("DS_SOURCE_DIR"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = NULL;
    size_t cap = 0;
    ssize_t len = getdelim(&text, &cap, '\0', f);
    fclose(f);
    assert_true(len > 0);
    char *start = strstr(text, "\n## Redis layout\n");
    assert_non_null(start);
    char *end = strstr(start + 1, "\n## ");
    if (end)
        *end = '\0';
    char *section = strdup(start);
    free(text);
    return section;
}

/* Copy s[0..n) to out, then the README's name for an id. */
static size_t put(char *out, size_t o, size_t size, const char *s, size_t n) {
    if (o + n < size) {
        memcpy(out + o, s, n);
        out[o + n] = '\0';
    }
    return o + n;
}

/* The README's name of a key: "ds:{acct:A-7}:lead:L-7-1" is
 * "ds:{acct:A}:lead:L"; ids are what follows "acct:", "lead:", "deal:",
 * ":lead:", ":seen:", ":mem:", ":att:" up to the next ':' or '}'; a watermark's partition key
 * "{wpart:ma.events:3}" is "{wpart:TOPIC:N}". */
static void key_pattern(const char *key, char *out, size_t size) {
    static const struct {
        const char *tag, *name;
    } ids[] = {{"{acct:", "A"}, {"{lead:", "L"}, {"{deal:", "D"},
               {":lead:", "L"}, {":seen:", "L"}, {":mem:", "L"}, {":att:", "C"}};
    size_t o = 0;
    out[0] = '\0';
    const char *p = key;
    while (*p) {
        if (!strncmp(p, "{wpart:", 7)) {
            o = put(out, o, size, "{wpart:TOPIC:N}", 15);
            p = strchr(p, '}');
            assert_non_null(p);
            p++;
            continue;
        }
        size_t k = 0;
        while (k < sizeof(ids) / sizeof(ids[0]) && strncmp(p, ids[k].tag, strlen(ids[k].tag)))
            k++;
        if (k == sizeof(ids) / sizeof(ids[0])) {
            o = put(out, o, size, p, 1);
            p++;
            continue;
        }
        o = put(out, o, size, ids[k].tag, strlen(ids[k].tag));
        o = put(out, o, size, ids[k].name, 1);
        p += strlen(ids[k].tag);
        p += strcspn(p, ":}");
    }
    assert_true(o < size);
}

/* Whether "`name`" stands in the section. */
static bool documented(const char *section, const char *name) {
    char q[300];
    snprintf(q, sizeof(q), "`%s`", name);
    return strstr(section, q) != NULL;
}

/* Hashes whose fields are ids (dictionary and sums indexes, lead ids,
 * a lead's memory of content). */
static bool fields_are_ids(const char *pattern) {
    static const char *const suffix[] = {":dict", ":sums",  ":att:C", ":seen",
                                         ":seen:L", ":mem", ":mem:L"};
    size_t n = strlen(pattern);
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        size_t m = strlen(suffix[i]);
        if (n >= m && !strcmp(pattern + n - m, suffix[i]))
            return true;
    }
    return false;
}

static pid_t spawn_gen(const char *log, const char *const *more) {
    ds_h_args_t a = {0};
    ds_h_args_add(&a, "gen", "--brokers", env.brokers, "--schemas", getenv("DS_SCHEMAS_DIR"), NULL);
    for (; *more; more++)
        ds_h_args_add(&a, *more, NULL);
    return ds_h_spawn(log, a.v);
}

static void test_everything_written_is_documented(void **state) {
    (void)state;
    char rules[256], log[256];
    snprintf(rules, sizeof(rules), "%s/wide-rules.yaml", env.tmpdir);
    snprintf(log, sizeof(log), "%s/gen.log", env.tmpdir);
    const char *print[] = {"--profile", "wide", "--print-rules", NULL};
    assert_int_equal(ds_h_stop(spawn_gen(rules, print), 0, 30000), 0);
    const char *wide[] = {"--profile", "wide", "--accounts", "60", "--count", "8000",
                          "--rate",    "0",    "--seed",     "3",  NULL};
    assert_int_equal(ds_h_stop(spawn_gen(log, wide), 0, 60000), 0);
    /* and 20 leads of 100 events each: their event ids kept apart */
    const char *heavy[] = {"--profile", "skew", "--leads", "20", "--count", "2000",
                           "--rate",    "0",    "--seed",  "4",  NULL};
    assert_int_equal(ds_h_stop(spawn_gen(log, heavy), 0, 60000), 0);
    assert_true(ds_h_gen_mixed(&env, 3000));

    ds_h_args_t a;
    ds_h_worker_args(&a, &env, "run", env.redis_url, "it-layout", "ds:");
    ds_h_args_add(&a, "--rules", rules, NULL);
    char wlog[256];
    snprintf(wlog, sizeof(wlog), "%s/run.log", env.tmpdir);
    pid_t w = ds_h_spawn(wlog, a.v);
    static const char *const topics[] = {"ma.events", "crm.events"};
    for (int i = 0; i < 2; i++)
        if (!ds_h_wait_group(&env, "it-layout", topics[i], 90000)) {
            ds_h_show_group(&env, "it-layout", topics[i]);
            ds_h_show_log(wlog, 40);
            fail_msg("group it-layout did not finish %s", topics[i]);
        }
    assert_int_equal(ds_h_stop(w, SIGTERM, 20000), 0);
    /* the scorer and the watcher share the group and leave it together:
     * no commit of theirs is refused on the way out */
    if (ds_h_log_count_after(wlog, "shutting down", "COMMITFAIL") ||
        ds_h_log_count(wlog, "final commit")) {
        ds_h_show_log(wlog, 20);
        fail_msg("a commit was refused at shutdown (log above)");
    }
    /* -X session.timeout.ms, a consumer property, is no warning on the
     * producers it also reaches */
    if (ds_h_log_count(wlog, "CONFWARN")) {
        ds_h_show_log(wlog, 20);
        fail_msg("a -X consumer property was warned about (log above)");
    }

    char *section = layout_section();
    redisReply *keys = ds_h_redis(&env, "KEYS %s", "*");
    assert_non_null(keys);
    assert_int_equal(keys->type, REDIS_REPLY_ARRAY);
    size_t checked_fields = 0, patterns_seen = 0;
    char seen[32][256]; /* as long as pat: a cut copy would never compare equal */
    for (size_t i = 0; i < keys->elements; i++) {
        const char *key = keys->element[i]->str;
        char pat[256];
        key_pattern(key, pat, sizeof(pat));
        if (!documented(section, pat))
            fail_msg("key %s (%s) is not in the README's Redis layout", key, pat);
        size_t s = 0;
        while (s < patterns_seen && strcmp(seen[s], pat))
            s++;
        if (s == patterns_seen && patterns_seen < 32)
            snprintf(seen[patterns_seen++], sizeof(seen[0]), "%s", pat);
        if (!strcmp(pat, "ds:{acct:A}:leads")) {
            redisReply *m = ds_h_redis(&env, "SMEMBERS %s", key);
            assert_non_null(m);
            size_t stem = strlen(key) - strlen(":leads");
            for (size_t j = 0; j < m->elements; j++) {
                redisReply *x =
                    ds_h_redis(&env, "EXISTS %b:lead:%s", key, stem, m->element[j]->str);
                if (!x || x->integer != 1)
                    fail_msg("%s lists %s, which has no hash under the account", key,
                             m->element[j]->str);
                freeReplyObject(x);
            }
            freeReplyObject(m);
        }
        redisReply *t = ds_h_redis(&env, "TYPE %s", key);
        bool hash = t && t->type == REDIS_REPLY_STATUS && !strcmp(t->str, "hash");
        freeReplyObject(t);
        if (!hash || fields_are_ids(pat))
            continue;
        redisReply *f = ds_h_redis(&env, "HKEYS %s", key);
        assert_non_null(f);
        for (size_t j = 0; j < f->elements; j++, checked_fields++)
            if (!documented(section, f->element[j]->str))
                fail_msg("field %s of %s (%s) is not in the README's Redis layout",
                         f->element[j]->str, key, pat);
        freeReplyObject(f);
    }
    /* the streams reached every kind of key, or the check proves little */
    static const char *const want[] = {
        "ds:{acct:A}",      "ds:{acct:A}:lead:L", "ds:{acct:A}:leads",  "ds:{acct:A}:dict",
        "ds:{acct:A}:sums", "ds:{acct:A}:att:C",  "ds:{acct:A}:seen:L", "ds:{acct:A}:mem:L",
        "ds:{lead:L}",      "ds:{deal:D}",        "ds:{wpart:TOPIC:N}"};
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        size_t s = 0;
        while (s < patterns_seen && strcmp(seen[s], want[k]))
            s++;
        if (s == patterns_seen)
            fail_msg("no key %s was written", want[k]);
    }
    assert_true(checked_fields > 1000);
    freeReplyObject(keys);
    free(section);
}

/* The scorer's keys under prefix, dumped (state_dump.h), the prefix cut. */
static char *scorer_state(redisContext *c, const char *prefix) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    char p[64];
    size_t keys = 0;
    const char *const kinds[] = {"{acct:", "{lead:"};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof(p), "%s%s", prefix, kinds[k]);
        keys += ds_sd_dump(c, p, f);
    }
    fclose(f);
    assert_true(keys > 500);
    /* "PFX{" -> "{" wherever a key starts */
    char from[64];
    snprintf(from, sizeof(from), "\"%s{", prefix);
    size_t fl = strlen(from);
    char *out = malloc(len + 1), *o = out;
    assert_non_null(out);
    for (const char *q = text; *q;) {
        if (!strncmp(q, from, fl)) {
            *o++ = '"';
            q += fl - 1;
        } else {
            *o++ = *q++;
        }
    }
    *o = '\0';
    free(text);
    return out;
}

static void run_scorer(const char *rules, const char *group, const char *prefix,
                       const char *writes) {
    ds_h_args_t a;
    ds_h_worker_args(&a, &env, "scorer", env.redis_url, group, prefix);
    ds_h_args_add(&a, "--rules", rules, "--redis-writes", writes, NULL);
    char log[256];
    snprintf(log, sizeof(log), "%s/%s.log", env.tmpdir, group);
    pid_t w = ds_h_spawn(log, a.v);
    if (!ds_h_wait_group(&env, group, "ma.events", 90000)) {
        ds_h_show_log(log, 40);
        fail_msg("group %s did not finish ma.events", group);
    }
    assert_int_equal(ds_h_stop(w, SIGTERM, 20000), 0);
}

static void test_script_and_transaction_agree(void **state) {
    (void)state;
    char rules[256];
    snprintf(rules, sizeof(rules), "%s/wide-rules.yaml", env.tmpdir);
    run_scorer(rules, "it-writes-script", "sc:", "script");
    run_scorer(rules, "it-writes-tx", "tx:", "transaction");
    redisContext *c = ds_sd_connect(&env, 0);
    char *sc = scorer_state(c, "sc:"), *tx = scorer_state(c, "tx:");
    redisFree(c);
    if (strcmp(sc, tx)) {
        size_t i = 0;
        while (sc[i] && sc[i] == tx[i])
            i++;
        size_t from = i > 200 ? i - 200 : 0;
        fail_msg("the two write modes differ at byte %zu:\nscript: %.400s\ntransaction: %.400s", i,
                 sc + from, tx + from);
    }
    free(sc);
    free(tx);
}

DS_H_MAIN(&env, 4, cmocka_unit_test(test_everything_written_is_documented),
          cmocka_unit_test(test_script_and_transaction_agree))
