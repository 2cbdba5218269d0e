/*
 * test_dlq_it.c — hostile input through the real scorer: every class goes
 * to ma.events.dlq with its stable code, the source coordinates and the
 * original bytes, and the valid events around them are all applied.
 *
 * Values are built by hand in Avro binary (zig-zag varints) so that each
 * class is exactly the malformation it names.  Writer schemas that the
 * project does not ship (an extra enum symbol, a missing required field)
 * are dropped into a copy of schemas/ under new ids, as a user would.
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

static ds_h_env_t env;
static char schemas[256];

/* ---- hand-made Avro ------------------------------------------------------ */

static void put_long(ds_buf_t *b, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    assert_int_equal(ds_buf_put_varint(b, z), DS_ERR_OK);
}

static void put_str(ds_buf_t *b, const char *s) {
    put_long(b, (int64_t)strlen(s));
    assert_int_equal(ds_buf_append(b, s, strlen(s)), DS_ERR_OK);
}

static void frame(ds_buf_t *b, int id) {
    unsigned char h[5] = {0, (unsigned char)(id >> 24), (unsigned char)(id >> 16),
                          (unsigned char)(id >> 8), (unsigned char)id};
    assert_int_equal(ds_buf_append(b, h, 5), DS_ERR_OK);
}

/* A MarketingEvent in the shipped field order, up to `type`. */
static void head(ds_buf_t *b, int id, const char *event_id, const char *lead, int type_index) {
    frame(b, id);
    put_str(b, event_id);
    put_long(b, 1700000000000LL);
    put_str(b, lead);
    put_long(b, 1); /* account_id: union branch string */
    put_str(b, "A-D");
    put_long(b, type_index);
}

/* the rest of a valid MarketingEvent after `type` */
static void tail_fields(ds_buf_t *b) {
    put_long(b, 1);
    put_str(b, "c-1"); /* content_id */
    put_long(b, 1);
    put_str(b, "I1"); /* insight_id */
    put_long(b, 1);
    put_long(b, 2); /* content_stage CONFRONT */
    put_long(b, 0); /* shared_with [] */
    put_long(b, 0); /* source null */
    put_long(b, 0); /* attributes {} */
}

static void valid(ds_buf_t *b, const char *event_id) {
    head(b, 1, event_id, "L-ok", 1 /* CONTENT_COMPLETED */);
    tail_fields(b);
}

static void copy_schemas(void) {
    snprintf(schemas, sizeof(schemas), "%s/schemas", env.tmpdir);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s'/*.avsc '%s'/", schemas,
             getenv("DS_SCHEMAS_DIR"), schemas);
    assert_int_equal(system(cmd), 0);
    /* 101: the MarketingEventType enum with a symbol we do not know */
    snprintf(cmd, sizeof(cmd),
             "sed 's/\"UNSUBSCRIBED\"/\"UNSUBSCRIBED\", \"CONTENT_LIKED\"/' '%s/1-MarketingEvent.avsc' "
             "> '%s/101-MarketingEvent.avsc'",
             schemas, schemas);
    assert_int_equal(system(cmd), 0);
    /* 102: a writer without the required lead_id */
    snprintf(cmd, sizeof(cmd), "%s/102-MarketingEvent.avsc", schemas);
    FILE *f = fopen(cmd, "w");
    assert_non_null(f);
    fputs("{\"type\":\"record\",\"name\":\"MarketingEvent\",\"namespace\":\"dealsignal.v1\","
          "\"fields\":[{\"name\":\"event_id\",\"type\":\"string\"},"
          "{\"name\":\"occurred_at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
          "{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"MarketingEventType\",\"symbols\":"
          "[\"CONTENT_VIEWED\",\"CONTENT_COMPLETED\",\"DIAGNOSTIC_COMPLETED\",\"CONTENT_SHARED\","
          "\"EMAIL_CLICKED\",\"WEBINAR_ATTENDED\",\"FORM_SUBMITTED\",\"UNSUBSCRIBED\"]}}]}",
          f);
    fclose(f);
}

typedef struct hostile {
    const char *name;
    const char *code;
} hostile_t;

static void test_hostile_corpus(void **state) {
    (void)state;
    copy_schemas();
    rd_kafka_t *p = ds_h_producer(&env);
    ds_buf_t b;
    ds_buf_init(&b, 0);
    static const hostile_t expect[] = {
        {"wrong magic byte", "bad_magic"},
        {"unknown schema id", "unknown_schema_id"},
        {"truncated avro", "undecodable"},
        {"string claiming 64 MiB", "undecodable"},
        {"array count bomb", "limit_exceeded"},
        {"map count bomb", "limit_exceeded"},
        {"over max_message_bytes", "limit_exceeded"},
        {"unknown enum symbol", "unknown_enum"},
        {"missing required field", "missing_field"},
        {"id over 256 bytes", "limit_exceeded"},
        {"empty key", "empty_key"},
        {"null value", "null_value"},
    };
    int n_ok = 0;
#define OK_EVENT()                                                                                \
    do {                                                                                          \
        char id[16];                                                                              \
        snprintf(id, sizeof(id), "ok-%d", n_ok++);                                                \
        ds_buf_reset(&b);                                                                         \
        valid(&b, id);                                                                            \
        ds_h_produce(p, "ma.events", "A-D", b.data, b.len);                                       \
    } while (0)
    OK_EVENT();
    /* wrong magic byte */
    ds_buf_reset(&b);
    valid(&b, "bad-1");
    b.data[0] = 0x7;
    ds_h_produce(p, "ma.events", "A-D", b.data, b.len);
    OK_EVENT();
    /* unknown schema id */
    ds_buf_reset(&b);
    head(&b, 999, "bad-2", "L-x", 1);
    tail_fields(&b);
    ds_h_produce(p, "ma.events", "A-D", b.data, b.len);
    OK_EVENT();
    /* truncated */
    ds_buf_reset(&b);
    valid(&b, "bad-3");
    ds_h_produce(p, "ma.events", "A-D", b.data, b.len - 6);
    OK_EVENT();
    /* a string claiming 64 MiB in a tiny payload */
    ds_buf_reset(&b);
    frame(&b, 1);
    put_long(&b, 64LL << 20);
    assert_int_equal(ds_buf_append(&b, "abc", 3), DS_ERR_OK);
    ds_h_produce(p, "ma.events", "A-D", b.data, b.len);
    OK_EVENT();
    /* shared_with claiming 10 million entries */
    ds_buf_reset(&b);
    head(&b, 1, "bad-5", "L-x", 3);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 10000000);
    put_str(&b, "L-1");
    ds_h_produce(p, "ma.events", "A-D", b.data, b.len);
    OK_EVENT();
    /* attributes claiming 10 million entries */
    ds_buf_reset(&b);
    head(&b, 1, "bad-6", "L-x", 1);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 10000000);
    put_str(&b, "k");
    put_str(&b, "v");
    ds_h_produce(p, "ma.events", "A-D", b.data, b.len);
    OK_EVENT();
    /* over max_message_bytes (64 KiB): a huge but well-formed source */
    ds_buf_reset(&b);
    head(&b, 1, "bad-7", "L-x", 1);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 1);
    {
        char *big = malloc(70000);
        memset(big, 'x', 69999);
        big[69999] = '\0';
        put_str(&b, big);
        free(big);
    }
    put_long(&b, 0);
    ds_h_produce(p, "ma.events", "A-D", b.data, b.len);
    OK_EVENT();
    /* unknown enum symbol: writer 101 knows CONTENT_LIKED (index 8) */
    ds_buf_reset(&b);
    head(&b, 101, "bad-8", "L-x", 8);
    tail_fields(&b);
    ds_h_produce(p, "ma.events", "A-D", b.data, b.len);
    OK_EVENT();
    /* missing required field: writer 102 has no lead_id */
    ds_buf_reset(&b);
    frame(&b, 102);
    put_str(&b, "bad-9");
    put_long(&b, 1700000000000LL);
    put_long(&b, 1);
    ds_h_produce(p, "ma.events", "A-D", b.data, b.len);
    OK_EVENT();
    /* an id over 256 bytes */
    {
        char longid[300];
        memset(longid, 'L', 299);
        longid[299] = '\0';
        ds_buf_reset(&b);
        head(&b, 1, "bad-10", longid, 1);
        tail_fields(&b);
        ds_h_produce(p, "ma.events", "A-D", b.data, b.len);
    }
    OK_EVENT();
    /* empty key */
    ds_buf_reset(&b);
    valid(&b, "bad-11");
    ds_h_produce(p, "ma.events", NULL, b.data, b.len);
    OK_EVENT();
    /* null value */
    ds_h_produce(p, "ma.events", "A-D", NULL, 0);
    OK_EVENT();
    ds_h_flush(p);
    rd_kafka_destroy(p);
    ds_buf_free(&b);

    const char *args[] = {"scorer", "--brokers", env.brokers, "--redis", env.redis_url,
                          "--group-id", "it-dlq", "--schemas", schemas, NULL};
    pid_t w = ds_h_spawn("/tmp/test_dlq_it.log", args);
    ds_h_record_t *recs;
    size_t n = ds_h_consume(&env, "ma.events.dlq", 12, 60000, &recs);
    size_t nexp = sizeof(expect) / sizeof(expect[0]);
    for (size_t i = 0; i < n && i < nexp; i++) {
        const char *code = ds_h_header(&recs[i], "dealsignal.error");
        fprintf(stderr, "  %-24s -> %s (%s)\n", expect[i].name, code ? code : "(none)",
                ds_h_header(&recs[i], "dealsignal.detail"));
        assert_non_null(code);
        assert_string_equal(code, expect[i].code);
        assert_string_equal(ds_h_header(&recs[i], "dealsignal.source.topic"), "ma.events");
        assert_non_null(ds_h_header(&recs[i], "dealsignal.source.partition"));
        assert_non_null(ds_h_header(&recs[i], "dealsignal.source.offset"));
        assert_non_null(ds_h_header(&recs[i], "dealsignal.detail"));
    }
    assert_int_equal(n, nexp);
    /* the original bytes: the oversized message is kept whole */
    assert_true(recs[6].len > 65536);
    ds_h_records_free(recs, n);
    /* every valid event around them was applied (13 events of one lead) */
    char *ev = NULL;
    for (int i = 0; i < 100 && !(ev && !strcmp(ev, "13")); i++) {
        free(ev);
        ev = ds_h_hget(&env, "ds:{acct:A-D}:lead:L-ok", "events_applied");
        ds_clock_sleep_ms(100);
    }
    assert_non_null(ev);
    assert_string_equal(ev, "13");
    free(ev);
    assert_int_equal(ds_h_stop(w, SIGTERM, 10000), 0);
}

int main(void) {
    ds_h_start(&env, 1, true);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_corpus),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ds_h_cleanup();
    return rc;
}
