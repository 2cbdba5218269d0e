/*
 * test_dlq_it.c — the hostile-input corpus (tests/corpus/) through the real
 * scorer, one test per class: each record goes to ma.events.dlq with its
 * stable code, the source coordinates, a detail and its original bytes, and
 * the valid event sent right after it is applied.
 *
 * The corpus files are hand-encoded Avro (tests/corpus/make_corpus.py);
 * tests/corpus/MANIFEST names the class, the file, the key and the code.
 * The writer schemas the project does not ship (an extra enum symbol, a
 * missing required field) sit in tests/corpus/schemas/ and are added to a
 * copy of schemas/, as a user would add them to a registry.
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
#include "harness.h"

#define MAX_CLASSES 32

typedef struct hostile {
    char name[64];
    char file[96];
    char key[32]; /* "-": no key */
    char code[32];
    int index; /* position in the stream: the (index+1)-th DLQ record */
} hostile_t;

static ds_h_env_t env;
static char corpus[512];
static hostile_t classes[MAX_CLASSES];
static int nclasses;
static rd_kafka_t *producer;
static pid_t worker;

static void load_manifest(void) {
    const char *src = getenv("DS_SOURCE_DIR");
    assert_non_null(src);
    snprintf(corpus, sizeof(corpus), "%s/tests/corpus", src);
    char path[600];
    snprintf(path, sizeof(path), "%s/MANIFEST", corpus);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        assert_true(nclasses < MAX_CLASSES);
        hostile_t *h = &classes[nclasses];
        assert_int_equal(sscanf(line, "%63s %95s %31s %31s", h->name, h->file, h->key, h->code), 4);
        h->index = nclasses++;
    }
    fclose(f);
    assert_true(nclasses >= 12);
}

static unsigned char *read_file(const char *name, size_t *len) {
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", corpus, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int group_setup(void **state) {
    (void)state;
    ds_h_start(&env, 1, true);
    char schemas[256], cmd[1500];
    snprintf(schemas, sizeof(schemas), "%s/schemas", env.tmpdir);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s'/*.avsc '%s/schemas'/*.avsc '%s'/",
             schemas, getenv("DS_SCHEMAS_DIR"), corpus, schemas);
    assert_int_equal(system(cmd), 0);
    producer = ds_h_producer(&env);
    const char *args[] = {"scorer", "--brokers", env.brokers, "--redis", env.redis_url,
                          "--group-id", "it-dlq", "--schemas", schemas, NULL};
    worker = ds_h_spawn("/tmp/test_dlq_it.log", args);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    return ds_h_teardown(producer, worker);
}

static void test_class(void **state) {
    const hostile_t *h = *state;
    size_t len = 0;
    unsigned char *val = strcmp(h->file, "-") ? read_file(h->file, &len) : NULL;
    ds_h_produce(producer, "ma.events", strcmp(h->key, "-") ? h->key : NULL, val, len);
    /* a valid event of the same unit right behind it */
    char id[32];
    snprintf(id, sizeof(id), "ok-%d", h->index);
    ds_ma_event_t ok = {.event_id = id, .occurred_at = 1700000000000LL + h->index,
                        .lead_id = "L-ok", .account_id = "A-D", .type = DS_MA_CONTENT_COMPLETED,
                        .content_id = "c-1", .insight_id = "I1", .content_stage = DS_CS_CONFRONT};
    ds_h_send_ma(producer, "ma.events", &ok);
    ds_h_flush(producer);

    ds_h_record_t *recs;
    size_t want = (size_t)h->index + 1;
    size_t n = ds_h_consume(&env, "ma.events.dlq", want, 30000, &recs);
    assert_int_equal(n, want);
    const ds_h_record_t *r = &recs[h->index];
    const char *code = ds_h_header(r, "dealsignal.error");
    fprintf(stderr, "  %-24s -> %s (%s)\n", h->name, code ? code : "(none)",
            ds_h_header(r, "dealsignal.detail"));
    assert_non_null(code);
    assert_string_equal(code, h->code);
    assert_non_null(ds_h_header(r, "dealsignal.detail"));
    assert_string_equal(ds_h_header(r, "dealsignal.source.topic"), "ma.events");
    assert_string_equal(ds_h_header(r, "dealsignal.source.partition"), "0");
    char off[24];
    /* each class and its valid follower: offsets 2i and 2i+1 */
    snprintf(off, sizeof(off), "%d", 2 * h->index);
    assert_string_equal(ds_h_header(r, "dealsignal.source.offset"), off);
    /* key and value are the original bytes */
    if (strcmp(h->key, "-"))
        assert_string_equal(r->key, h->key);
    else
        assert_null(r->key);
    assert_int_equal(r->len, len);
    if (len)
        assert_memory_equal(r->val, val, len);
    ds_h_records_free(recs, n);
    free(val);

    /* the valid event behind it was applied */
    char want_applied[16];
    snprintf(want_applied, sizeof(want_applied), "%d", h->index + 1);
    char *ev = NULL;
    for (int i = 0; i < 200 && !(ev && !strcmp(ev, want_applied)); i++) {
        free(ev);
        ev = ds_h_hget(&env, "ds:{acct:A-D}:lead:L-ok", "events_applied");
        if (!(ev && !strcmp(ev, want_applied)))
            ds_clock_sleep_ms(50);
    }
    assert_non_null(ev);
    assert_string_equal(ev, want_applied);
    free(ev);
}

int main(void) {
    load_manifest();
    struct CMUnitTest tests[MAX_CLASSES];
    for (int i = 0; i < nclasses; i++) {
        struct CMUnitTest t = {classes[i].name, test_class, NULL, NULL, &classes[i]};
        tests[i] = t;
    }
    return _cmocka_run_group_tests("hostile_corpus", tests, (size_t)nclasses, group_setup,
                                   group_teardown);
}
