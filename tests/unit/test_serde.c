/*
 * test_serde.c — Confluent framing and schema evolution without avro-c's
 * resolved reader: a writer schema that adds fields, and one that lacks
 * fields our reader has with defaults, both decode into the same event.
 * Also the round trip of every output record, the framing errors, and
 * our writer's bytes against avro-c's generic writer (avro_ref.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avro_ref.h"
#include "codec.h"
#include "ds_avro_dec.h"
#include "ds_avro_enc.h"
#include "ds_registry.h"
#include "unit_util.h"
#include "worker.h"

typedef struct fixture {
    ds_registry_t *reg;
    ref_avro_t *ref; /* avro-c's generic values: the reference */
    ds_codec_t *codec;
    ds_arena_t arena;
    ds_buf_t buf;
} fixture_t;

/* f->buf := *rec written by ds_codec_encode_<kind> (the case fails unless
 * it succeeds).  A macro: each kind has its own record type. */
#define ENCODE(f, kind, rec)                                                                       \
    do {                                                                                           \
        ds_buf_reset(&(f)->buf);                                                                   \
        assert_int_equal(ds_codec_encode_##kind((f)->codec, rec, &(f)->buf), DS_ERR_OK);           \
    } while (0)
/* ds_codec_decode_<kind> of f->buf into *out, in f's arena: its error, the
 * reason in detail (an array). */
#define DECODE(f, kind, out, detail)                                                               \
    ds_codec_decode_##kind((f)->codec, (f)->buf.data, (f)->buf.len, &(f)->arena, out, detail,      \
                           sizeof(detail))

/* MarketingEvent as a newer producer writes it: a field added in the
 * middle (campaign, a record) and one at the end (score_hint, a union). */
static const char *const WRITER_ADDS =
    "{\"type\":\"record\",\"name\":\"MarketingEvent\",\"namespace\":\"dealsignal.v1\","
    "\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"campaign\",\"type\":{\"type\":\"record\",\"name\":\"Campaign\",\"fields\":["
    "  {\"name\":\"name\",\"type\":\"string\"},{\"name\":\"tags\",\"type\":{\"type\":\"array\","
    "\"items\":\"string\"}}]}},"
    "{\"name\":\"occurred_at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"lead_id\",\"type\":\"string\"},"
    "{\"name\":\"account_id\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"MarketingEventType\",\"symbols\":"
    "[\"CONTENT_VIEWED\",\"CONTENT_COMPLETED\",\"DIAGNOSTIC_COMPLETED\",\"CONTENT_SHARED\","
    "\"EMAIL_CLICKED\",\"WEBINAR_ATTENDED\",\"FORM_SUBMITTED\",\"UNSUBSCRIBED\"]}},"
    "{\"name\":\"content_id\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"insight_id\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"content_stage\",\"type\":[\"null\",{\"type\":\"enum\",\"name\":\"ContentStage\","
    "\"symbols\":[\"SPARK\",\"INTRODUCE\",\"CONFRONT\",\"BUILD_B\",\"SPEC\"]}],\"default\":null},"
    "{\"name\":\"shared_with\",\"type\":{\"type\":\"array\",\"items\":\"string\"},\"default\":[]},"
    "{\"name\":\"source\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"attributes\",\"type\":{\"type\":\"map\",\"values\":\"string\"},\"default\":{}},"
    "{\"name\":\"score_hint\",\"type\":[\"null\",\"double\"],\"default\":null}"
    "]}";

/* MarketingEvent as an older producer writes it: only the required fields
 * and content_id; everything else must take the reader's defaults. */
static const char *const WRITER_LACKS =
    "{\"type\":\"record\",\"name\":\"MarketingEvent\",\"namespace\":\"dealsignal.v1\","
    "\"fields\":["
    "{\"name\":\"lead_id\",\"type\":\"string\"},"
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"occurred_at\",\"type\":\"long\"},"
    "{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"MarketingEventType\",\"symbols\":"
    "[\"CONTENT_VIEWED\",\"CONTENT_COMPLETED\",\"DIAGNOSTIC_COMPLETED\",\"CONTENT_SHARED\","
    "\"EMAIL_CLICKED\",\"WEBINAR_ATTENDED\",\"FORM_SUBMITTED\",\"UNSUBSCRIBED\"]}},"
    "{\"name\":\"content_id\",\"type\":[\"null\",\"string\"],\"default\":null}"
    "]}";

/* An older producer with other types for the same fields: int for a long,
 * bytes for a string, an enum listing its symbols in another order. */
static const char *const WRITER_TYPES =
    "{\"type\":\"record\",\"name\":\"MarketingEvent\",\"namespace\":\"dealsignal.v1\","
    "\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"occurred_at\",\"type\":\"int\"},"
    "{\"name\":\"lead_id\",\"type\":\"bytes\"},"
    "{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"MarketingEventType\","
    "\"symbols\":[\"UNSUBSCRIBED\",\"CONTENT_VIEWED\"]}},"
    "{\"name\":\"shared_with\",\"type\":{\"type\":\"array\",\"items\":\"string\"}}"
    "]}";

/* A producer whose colleagues' ids are bytes (read as strings, as a
 * bytes field is). */
static const char *const WRITER_BYTES =
    "{\"type\":\"record\",\"name\":\"MarketingEvent\",\"namespace\":\"dealsignal.v1\","
    "\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"occurred_at\",\"type\":\"long\"},"
    "{\"name\":\"lead_id\",\"type\":\"string\"},"
    "{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"MarketingEventType\","
    "\"symbols\":[\"CONTENT_SHARED\"]}},"
    "{\"name\":\"shared_with\",\"type\":{\"type\":\"array\",\"items\":\"bytes\"}}"
    "]}";

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    char err[512] = "";
    ds_registry_init(1 << 20);
    f->reg = ds_registry_open_dir(getenv("DS_SCHEMAS_DIR"), err, sizeof(err));
    assert_non_null(f->reg);
    assert_int_equal(ds_registry_add_json(f->reg, 201, WRITER_ADDS, err, sizeof(err)), DS_ERR_OK);
    assert_int_equal(ds_registry_add_json(f->reg, 202, WRITER_LACKS, err, sizeof(err)), DS_ERR_OK);
    assert_int_equal(ds_registry_add_json(f->reg, 203, WRITER_TYPES, err, sizeof(err)), DS_ERR_OK);
    assert_int_equal(ds_registry_add_json(f->reg, 204, WRITER_BYTES, err, sizeof(err)), DS_ERR_OK);
    f->codec = ds_codec_new(f->reg, &ds_codec_default_ids, err, sizeof(err));
    assert_non_null(f->codec);
    f->ref = ref_avro_new(f->reg);
    assert_non_null(f->ref);
    ds_arena_init(&f->arena, 0);
    ds_buf_init(&f->buf, 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    ds_buf_free(&f->buf);
    ds_arena_free(&f->arena);
    ds_codec_destroy(f->codec);
    ref_avro_destroy(f->ref);
    ds_registry_destroy(f->reg);
    free(f);
    return 0;
}

static void set_str(avro_value_t *rec, const char *field, const char *s) {
    avro_value_t v;
    assert_int_equal(avro_value_get_by_name(rec, field, &v, NULL), 0);
    assert_int_equal(avro_value_set_string(&v, s), 0);
}

/* Set branch `branch` of a union field and return the branch value. */
static avro_value_t branch_of(avro_value_t *rec, const char *field, int branch) {
    avro_value_t u, b;
    assert_int_equal(avro_value_get_by_name(rec, field, &u, NULL), 0);
    assert_int_equal(avro_value_set_branch(&u, branch, &b), 0);
    return b;
}

static void test_writer_adds_fields(void **state) {
    fixture_t *f = *state;
    avro_value_t *v;
    assert_int_equal(ref_avro_value(f->ref, 201, &v), DS_ERR_OK);
    set_str(v, "event_id", "e-adds");
    avro_value_t camp, x;
    assert_int_equal(avro_value_get_by_name(v, "campaign", &camp, NULL), 0);
    set_str(&camp, "name", "spring");
    assert_int_equal(avro_value_get_by_name(&camp, "tags", &x, NULL), 0);
    avro_value_t item;
    assert_int_equal(avro_value_append(&x, &item, NULL), 0);
    assert_int_equal(avro_value_set_string(&item, "t1"), 0);
    assert_int_equal(avro_value_get_by_name(v, "occurred_at", &x, NULL), 0);
    assert_int_equal(avro_value_set_long(&x, 1700000000123), 0);
    set_str(v, "lead_id", "L-1");
    x = branch_of(v, "account_id", 1);
    assert_int_equal(avro_value_set_string(&x, "A-1"), 0);
    assert_int_equal(avro_value_get_by_name(v, "type", &x, NULL), 0);
    assert_int_equal(avro_value_set_enum(&x, 3 /* CONTENT_SHARED */), 0);
    x = branch_of(v, "content_id", 1);
    assert_int_equal(avro_value_set_string(&x, "c-9"), 0);
    x = branch_of(v, "insight_id", 0);
    assert_int_equal(avro_value_set_null(&x), 0);
    x = branch_of(v, "content_stage", 1);
    assert_int_equal(avro_value_set_enum(&x, 2 /* CONFRONT */), 0);
    assert_int_equal(avro_value_get_by_name(v, "shared_with", &x, NULL), 0);
    assert_int_equal(avro_value_append(&x, &item, NULL), 0);
    assert_int_equal(avro_value_set_string(&item, "L-2"), 0);
    x = branch_of(v, "source", 0);
    assert_int_equal(avro_value_set_null(&x), 0);
    assert_int_equal(avro_value_get_by_name(v, "attributes", &x, NULL), 0);
    assert_int_equal(avro_value_add(&x, "utm", &item, NULL, NULL), 0);
    assert_int_equal(avro_value_set_string(&item, "mail"), 0);
    x = branch_of(v, "score_hint", 1);
    assert_int_equal(avro_value_set_double(&x, 2.5), 0);
    assert_int_equal(ref_avro_encode(201, v, &f->buf), DS_ERR_OK);

    /* the frame names the writer id */
    int32_t id;
    const void *payload;
    size_t plen;
    assert_int_equal(ds_avro_dec_unframe(f->buf.data, f->buf.len, &id, &payload, &plen), DS_ERR_OK);
    assert_int_equal(id, 201);

    ds_ma_event_t ev;
    char detail[256] = "";
    assert_int_equal(DECODE(f, ma, &ev, detail), DS_ERR_OK);
    assert_string_equal(ev.event_id, "e-adds");
    assert_int_equal(ev.occurred_at, 1700000000123);
    assert_string_equal(ev.lead_id, "L-1");
    assert_string_equal(ev.account_id, "A-1");
    assert_int_equal(ev.type, DS_MA_CONTENT_SHARED);
    assert_string_equal(ev.content_id, "c-9");
    assert_null(ev.insight_id);
    assert_int_equal(ev.content_stage, DS_CS_CONFRONT);
    assert_int_equal(ev.shared_with_count, 1);
    assert_string_equal(ev.shared_with[0], "L-2");
    assert_null(ev.source);
    assert_int_equal(ev.attributes_count, 1);
    assert_string_equal(ev.attributes[0].key, "utm");
    assert_string_equal(ev.attributes[0].value, "mail");
}

static void test_writer_lacks_fields_with_defaults(void **state) {
    fixture_t *f = *state;
    avro_value_t *v, x;
    assert_int_equal(ref_avro_value(f->ref, 202, &v), DS_ERR_OK);
    set_str(v, "lead_id", "L-old");
    set_str(v, "event_id", "e-old");
    assert_int_equal(avro_value_get_by_name(v, "occurred_at", &x, NULL), 0);
    assert_int_equal(avro_value_set_long(&x, 42), 0);
    assert_int_equal(avro_value_get_by_name(v, "type", &x, NULL), 0);
    assert_int_equal(avro_value_set_enum(&x, 0 /* CONTENT_VIEWED */), 0);
    x = branch_of(v, "content_id", 1);
    assert_int_equal(avro_value_set_string(&x, "c-1"), 0);
    ds_buf_reset(&f->buf);
    assert_int_equal(ref_avro_encode(202, v, &f->buf), DS_ERR_OK);

    ds_ma_event_t ev;
    char detail[256] = "";
    assert_int_equal(DECODE(f, ma, &ev, detail), DS_ERR_OK);
    assert_string_equal(ev.event_id, "e-old");
    assert_string_equal(ev.lead_id, "L-old");
    assert_int_equal(ev.occurred_at, 42);
    assert_int_equal(ev.type, DS_MA_CONTENT_VIEWED);
    assert_string_equal(ev.content_id, "c-1");
    /* the reader's defaults */
    assert_null(ev.account_id);
    assert_null(ev.insight_id);
    assert_int_equal(ev.content_stage, DS_NONE);
    assert_int_equal(ev.shared_with_count, 0);
    assert_null(ev.source);
    assert_int_equal(ev.attributes_count, 0);
}

static void test_framing_errors(void **state) {
    fixture_t *f = *state;
    ds_ma_event_t ev;
    char detail[256] = "";
    static const unsigned char short_frame[] = {0, 0, 0};
    assert_int_equal(ds_codec_decode_ma(f->codec, short_frame, sizeof(short_frame), &f->arena, &ev,
                                        detail, sizeof(detail)),
                     DS_ERR_BAD_MAGIC);
    static const unsigned char bad_magic[] = {1, 0, 0, 0, 1, 0};
    assert_int_equal(ds_codec_decode_ma(f->codec, bad_magic, sizeof(bad_magic), &f->arena, &ev,
                                        detail, sizeof(detail)),
                     DS_ERR_BAD_MAGIC);
    static const unsigned char unknown_id[] = {0, 0, 0, 0x30, 0x39, 0};
    assert_int_equal(ds_codec_decode_ma(f->codec, unknown_id, sizeof(unknown_id), &f->arena, &ev,
                                        detail, sizeof(detail)),
                     DS_ERR_UNKNOWN_SCHEMA);
    assert_non_null(strstr(detail, "12345"));
    /* a CrmEvent frame where a MarketingEvent is expected */
    ds_crm_event_t crm = {.event_id = "c", .occurred_at = 1, .deal_id = "D", .account_id = "A",
                          .type = DS_CRM_DEAL_OPENED, .stage = DS_PS_RECOGNIZE_NEED, .contact_role = DS_NONE};
    ENCODE(f, crm, &crm);
    assert_int_equal(DECODE(f, ma, &ev, detail), DS_ERR_WRONG_TYPE);
    assert_non_null(strstr(detail, "CrmEvent"));
}

static void test_output_round_trip(void **state) {
    fixture_t *f = *state;
    char detail[256] = "";
    ds_lead_score_t ls = {.lead_id = "L", .account_id = "A", .confront = 12.5, .connect = 3,
                          .mobilizer = 4.25, .tier = DS_TIER_CONFRONTED,
                          .previous_tier = DS_TIER_LEARNING, .top_insight = "I1",
                          .furthest_stage = DS_CS_CONFRONT, .reasons = {"a", "b"},
                          .reasons_count = 2, .as_of = 77, .events_applied = 9};
    ENCODE(f, lead_score, &ls);
    ds_lead_score_t ls2;
    assert_int_equal(DECODE(f, lead_score, &ls2, detail), DS_ERR_OK);
    assert_string_equal(ls2.lead_id, "L");
    assert_string_equal(ls2.account_id, "A");
    assert_true(ls2.confront == 12.5 && ls2.connect == 3 && ls2.mobilizer == 4.25);
    assert_int_equal(ls2.tier, DS_TIER_CONFRONTED);
    assert_int_equal(ls2.previous_tier, DS_TIER_LEARNING);
    assert_string_equal(ls2.top_insight, "I1");
    assert_int_equal(ls2.furthest_stage, DS_CS_CONFRONT);
    assert_int_equal(ls2.reasons_count, 2);
    assert_string_equal(ls2.reasons[1], "b");
    assert_int_equal(ls2.as_of, 77);
    assert_int_equal(ls2.events_applied, 9);

    const char *mob[] = {"L"};
    ds_account_score_t as = {.account_id = "A", .engaged_stakeholders = 3,
                             .confronted_stakeholders = 1, .consensus = 0.3,
                             .top_insight = NULL, .mobilizers = mob, .mobilizers_count = 1,
                             .as_of = 5};
    ENCODE(f, account_score, &as);
    ds_account_score_t as2;
    assert_int_equal(DECODE(f, account_score, &as2, detail), DS_ERR_OK);
    assert_string_equal(as2.account_id, "A");
    assert_int_equal(as2.engaged_stakeholders, 3);
    assert_int_equal(as2.confronted_stakeholders, 1);
    assert_true(as2.consensus == 0.3);
    assert_null(as2.top_insight);
    assert_int_equal(as2.mobilizers_count, 1);
    assert_string_equal(as2.mobilizers[0], "L");

    const char *missing[] = {"PROBLEM_ACKNOWLEDGED", "CRITERIA_SHARED"};
    ds_deal_alert_t da = {.alert_id = "D:QUIET:1:OPEN:1", .deal_id = "D", .account_id = "A",
                          .owner_id = NULL, .kind = DS_AK_NO_BUYER_SIGNAL, .state = DS_AS_OPEN,
                          .level = 1, .reported_stage = DS_PS_EVALUATE_OPTIONS,
                          .verified_stage = DS_NONE, .missing_verifiers = missing,
                          .missing_verifiers_count = 2, .last_buyer_signal_at = DS_TS_NULL,
                          .last_seller_activity_at = 99, .unanswered_seller_actions = 4,
                          .quiet_days = 15.5, .message = "m", .raised_at = 100};
    ENCODE(f, deal_alert, &da);
    ds_deal_alert_t da2;
    assert_int_equal(DECODE(f, deal_alert, &da2, detail), DS_ERR_OK);
    assert_string_equal(da2.alert_id, "D:QUIET:1:OPEN:1");
    assert_null(da2.owner_id);
    assert_int_equal(da2.kind, DS_AK_NO_BUYER_SIGNAL);
    assert_int_equal(da2.verified_stage, DS_NONE);
    assert_int_equal(da2.missing_verifiers_count, 2);
    assert_string_equal(da2.missing_verifiers[1], "CRITERIA_SHARED");
    assert_int_equal(da2.last_buyer_signal_at, DS_TS_NULL);
    assert_int_equal(da2.last_seller_activity_at, 99);
    assert_int_equal(da2.unanswered_seller_actions, 4);
    assert_true(da2.quiet_days == 15.5);
    assert_int_equal(da2.raised_at, 100);

    /* the schema's account_id is a required string: a deal without one
     * is written as "" (and its other strings as they are) */
    da.account_id = NULL;
    ENCODE(f, deal_alert, &da);
    assert_int_equal(DECODE(f, deal_alert, &da2, detail), DS_ERR_OK);
    assert_non_null(da2.account_id);
    assert_string_equal(da2.account_id, "");
    assert_string_equal(da2.deal_id, "D");
}

/* Our writer must produce exactly the bytes avro-c's reference writer
 * produces for the same record: avro-c reads what we wrote and writes it
 * again, byte for byte. */
static void assert_avro_c_agrees(fixture_t *f) {
    avro_value_t *v;
    char detail[256] = "";
    assert_int_equal(ref_avro_decode(f->ref, f->buf.data, f->buf.len, &v, detail, sizeof(detail)),
                     DS_ERR_OK);
    int32_t id;
    const void *payload;
    size_t plen;
    assert_int_equal(ds_avro_dec_unframe(f->buf.data, f->buf.len, &id, &payload, &plen), DS_ERR_OK);
    ds_buf_t again;
    ds_buf_init(&again, 0);
    assert_int_equal(ref_avro_encode(id, v, &again), DS_ERR_OK);
    assert_int_equal(again.len, f->buf.len);
    assert_memory_equal(again.data, f->buf.data, f->buf.len);
    ds_buf_free(&again);
}

static void test_direct_writer_matches_avro_c(void **state) {
    fixture_t *f = *state;
    const char *reasons[] = {"confront +4: read insight I1", "connect +1"};
    ds_lead_score_t ls = {.lead_id = "L-7", .account_id = NULL, .confront = -0.125, .connect = 1e9,
                          .mobilizer = 4.25, .tier = DS_TIER_MOBILIZER,
                          .previous_tier = DS_TIER_UNAWARE, .top_insight = NULL,
                          .furthest_stage = DS_CS_SPEC, .reasons = {reasons[0], reasons[1]},
                          .reasons_count = 2, .as_of = -5, .events_applied = 1LL << 40};
    ENCODE(f, lead_score, &ls);
    assert_avro_c_agrees(f);
    ls.reasons_count = 0;
    ls.account_id = "A-1";
    ls.furthest_stage = DS_NONE;
    ENCODE(f, lead_score, &ls);
    assert_avro_c_agrees(f);

    ds_deal_alert_t da = {.alert_id = "D:QUIET:1:OPEN:1", .deal_id = "D", .account_id = "A",
                          .owner_id = "o", .kind = DS_AK_NO_BUYER_SIGNAL, .state = DS_AS_RESOLVED,
                          .level = 3, .reported_stage = DS_PS_EVALUATE_OPTIONS,
                          .verified_stage = DS_PS_RECOGNIZE_NEED, .missing_verifiers = NULL,
                          .missing_verifiers_count = 0, .last_buyer_signal_at = 12345678901,
                          .last_seller_activity_at = DS_TS_NULL, .unanswered_seller_actions = 0,
                          .quiet_days = 0.5, .message = "quiet for 15 days", .raised_at = 100};
    ENCODE(f, deal_alert, &da);
    assert_avro_c_agrees(f);

    const char *shared[] = {"L-2", "L-3", ""};
    ds_kv_t attrs[] = {{"utm", "mail"}, {"k", ""}};
    ds_ma_event_t ma = {.event_id = "e", .occurred_at = 1700000000123, .lead_id = "L",
                        .account_id = "A", .type = DS_MA_CONTENT_SHARED, .content_id = "c",
                        .insight_id = NULL, .content_stage = DS_NONE, .shared_with = shared,
                        .shared_with_count = 3, .source = "web", .attributes = attrs,
                        .attributes_count = 2};
    ENCODE(f, ma, &ma);
    assert_avro_c_agrees(f);

    /* a field the schema does not have is an error, not silently dropped */
    ds_avro_enc_t x;
    assert_int_equal(ds_avro_enc_begin(f->reg, 3, &x), DS_ERR_OK);
    ds_avro_enc_str(&x, "no_such_field", "v");
    assert_int_equal(ds_avro_enc_finish(&x, &f->buf), DS_ERR_INVAL);
    /* and so is a required field left unset */
    assert_int_equal(ds_avro_enc_begin(f->reg, 3, &x), DS_ERR_OK);
    ds_avro_enc_str(&x, "lead_id", "L");
    size_t before = f->buf.len;
    assert_int_equal(ds_avro_enc_finish(&x, &f->buf), DS_ERR_INVAL);
    assert_int_equal(f->buf.len, before);
}

/* Avro resolution on the direct reader: int read as long, bytes as
 * string, enums by symbol, and an array written in blocks with negative
 * counts (which carry their byte size). */
static void test_direct_reader_promotions_and_blocks(void **state) {
    fixture_t *f = *state;
    static const unsigned char msg[] = {
        0, 0, 0, 0, 203,          /* frame, schema id 203 */
        2, 'e',                   /* event_id "e" */
        0x0a,                     /* occurred_at: int 5 */
        2, 'L',                   /* lead_id: bytes "L" */
        0,                        /* type: symbol 0 of the writer = UNSUBSCRIBED */
        3, 8, 2, 'a', 2, 'b',     /* shared_with: a block of -2 items, 4 bytes */
        1, 4, 2, 'c',             /* a block of -1 item, 2 bytes */
        0};
    ds_ma_event_t ev;
    char detail[256] = "";
    assert_int_equal(
        ds_codec_decode_ma(f->codec, msg, sizeof(msg), &f->arena, &ev, detail, sizeof(detail)),
        DS_ERR_OK);
    assert_string_equal(ev.event_id, "e");
    assert_int_equal(ev.occurred_at, 5);
    assert_string_equal(ev.lead_id, "L");
    assert_int_equal(ev.type, DS_MA_UNSUBSCRIBED);
    assert_int_equal(ev.shared_with_count, 3);
    assert_string_equal(ev.shared_with[0], "a");
    assert_string_equal(ev.shared_with[1], "b");
    assert_string_equal(ev.shared_with[2], "c");
    assert_null(ev.account_id);

    /* one byte short: refused before anything is read */
    assert_int_equal(
        ds_codec_decode_ma(f->codec, msg, sizeof(msg) - 1, &f->arena, &ev, detail, sizeof(detail)),
        DS_ERR_UNDECODABLE);
}

/* Fill the fields MarketingEvent and CrmEvent share (event_id,
 * occurred_at 42, type = its first symbol), set the optional fields in
 * `nulls` to null and the optional string `field` to `text`. */
static void fill_event(avro_value_t *v, const char *const *nulls, size_t n, const char *field,
                       const char *text) {
    avro_value_t x;
    set_str(v, "event_id", "e-long");
    assert_int_equal(avro_value_get_by_name(v, "occurred_at", &x, NULL), 0);
    assert_int_equal(avro_value_set_long(&x, 42), 0);
    assert_int_equal(avro_value_get_by_name(v, "type", &x, NULL), 0);
    assert_int_equal(avro_value_set_enum(&x, 0), 0);
    for (size_t i = 0; i < n; i++) {
        x = branch_of(v, nulls[i], 0);
        assert_int_equal(avro_value_set_null(&x), 0);
    }
    x = branch_of(v, field, 1);
    assert_int_equal(avro_value_set_string(&x, text), 0);
}

/* The 256-byte limit is the ids' (docs/CONTRACT.md): a longer
 * source or activity is valid input; a longer lead_id or deal_id goes to
 * the DLQ as limit_exceeded. */
static void test_limits_are_for_ids(void **state) {
    fixture_t *f = *state;
    char long_s[301], id257[258];
    memset(long_s, 's', 300);
    long_s[300] = '\0';
    memset(id257, 'i', 257);
    id257[257] = '\0';
    static const char *const ma_nulls[] = {"account_id", "content_id", "insight_id",
                                           "content_stage"};
    static const char *const crm_nulls[] = {"stage", "signal", "contact_id", "contact_role",
                                            "owner_id"};
    avro_value_t *v;
    char detail[256] = "";
    for (int round = 0; round < 2; round++) {
        /* MarketingEvent: a 300-byte source; round 1 also a 257-byte lead_id */
        assert_int_equal(ref_avro_value(f->ref, 1, &v), DS_ERR_OK);
        fill_event(v, ma_nulls, 4, "source", long_s);
        set_str(v, "lead_id", round ? id257 : "L-1");
        ds_buf_reset(&f->buf);
        assert_int_equal(ref_avro_encode(1, v, &f->buf), DS_ERR_OK);
        ds_ma_event_t ma;
        ds_err_t e = DECODE(f, ma, &ma, detail);
        assert_int_equal(e, round ? DS_ERR_LIMIT_EXCEEDED : DS_ERR_OK);
        if (!round)
            assert_int_equal(strlen(ma.source), 300);

        /* CrmEvent: a 300-byte activity; round 1 also a 257-byte deal_id */
        assert_int_equal(ref_avro_value(f->ref, 2, &v), DS_ERR_OK);
        fill_event(v, crm_nulls, 5, "activity", long_s);
        set_str(v, "deal_id", round ? id257 : "D-1");
        set_str(v, "account_id", "A-1");
        ds_buf_reset(&f->buf);
        assert_int_equal(ref_avro_encode(2, v, &f->buf), DS_ERR_OK);
        ds_crm_event_t crm;
        e = DECODE(f, crm, &crm, detail);
        assert_int_equal(e, round ? DS_ERR_LIMIT_EXCEEDED : DS_ERR_OK);
        if (!round)
            assert_int_equal(strlen(crm.activity), 300);
    }
}

/* What the workers cannot hold goes to the DLQ: a NUL byte in an id (C
 * strings would cut it to another entity's id), an id that is not UTF-8
 * (the outputs that carry it are Avro strings), and a '}' in a lead,
 * account or deal id or a colleague's (it would end the hash tag of its
 * Redis keys: account "x}:lead:L" would name lead "L}" of account "x") are
 * invalid_id; an occurred_at outside 1970-9999 in milliseconds
 * (Long.MIN_VALUE, a time in microseconds) is invalid_time.  A '}' in a
 * content id (after the tag), and the first and last valid times, pass.
 * Colleagues' ids written as bytes are read as strings. */
static void test_ids_and_times_the_state_can_hold(void **state) {
    fixture_t *f = *state;
    static const char *const ma_nulls[] = {"account_id", "insight_id", "content_stage"};
    static const struct {
        const char *field, *val;
        size_t len; /* with NULs inside */
        int64_t at;
        ds_err_t want;
    } cases[] = {
        {"lead_id", "L\0X", 3, 42, DS_ERR_INVALID_ID},
        {"event_id", "E\0X", 3, 42, DS_ERR_INVALID_ID},
        {"lead_id", "L}", 2, 42, DS_ERR_INVALID_ID},
        {"account_id", "x}:lead:L", 9, 42, DS_ERR_INVALID_ID},
        {"shared_with", "C}", 2, 42, DS_ERR_INVALID_ID},
        {"content_id", "c}", 2, 42, DS_ERR_OK},
        {"lead_id", "{L", 2, 42, DS_ERR_OK},
        {"lead_id", "L\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10, 42, DS_ERR_OK}, /* é € 😀 */
        {"lead_id", "L\xff", 2, 42, DS_ERR_INVALID_ID},             /* Latin-1 ÿ */
        {"lead_id", "L\xc0\xaf", 3, 42, DS_ERR_INVALID_ID},         /* overlong '/' */
        {"lead_id", "L\xed\xa0\x80", 4, 42, DS_ERR_INVALID_ID},     /* a surrogate */
        {"content_id", "c\xe2\x82", 3, 42, DS_ERR_INVALID_ID},      /* cut short */
        {"lead_id", "L\xf4\x90\x80\x80", 5, 42, DS_ERR_INVALID_ID}, /* past U+10FFFF */
        {"lead_id", "L", 1, INT64_MIN, DS_ERR_INVALID_TIME},
        {"lead_id", "L", 1, -1, DS_ERR_INVALID_TIME},
        {"lead_id", "L", 1, INT64_C(1700000000000000), DS_ERR_INVALID_TIME},
        {"lead_id", "L", 1, 0, DS_ERR_OK},
        {"lead_id", "L", 1, DS_TS_MAX, DS_ERR_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        avro_value_t *v, x, el;
        assert_int_equal(ref_avro_value(f->ref, 1, &v), DS_ERR_OK);
        fill_event(v, ma_nulls, 3, "content_id", "c-1");
        set_str(v, "lead_id", "L-1");
        assert_int_equal(avro_value_get_by_name(v, "occurred_at", &x, NULL), 0);
        assert_int_equal(avro_value_set_long(&x, cases[i].at), 0);
        char buf[32];
        memcpy(buf, cases[i].val, cases[i].len);
        buf[cases[i].len] = 0;
        if (!strcmp(cases[i].field, "shared_with")) {
            assert_int_equal(avro_value_get_by_name(v, "shared_with", &x, NULL), 0);
            assert_int_equal(avro_value_append(&x, &el, NULL), 0);
            assert_int_equal(avro_value_set_string_len(&el, buf, cases[i].len + 1), 0);
        } else {
            if (!strcmp(cases[i].field, "lead_id") || !strcmp(cases[i].field, "event_id"))
                assert_int_equal(avro_value_get_by_name(v, cases[i].field, &x, NULL), 0);
            else
                x = branch_of(v, cases[i].field, 1);
            assert_int_equal(avro_value_set_string_len(&x, buf, cases[i].len + 1), 0);
        }
        ds_buf_reset(&f->buf);
        assert_int_equal(ref_avro_encode(1, v, &f->buf), DS_ERR_OK);
        ds_ma_event_t ma;
        char detail[256] = "";
        ds_err_t e = DECODE(f, ma, &ma, detail);
        if (e != cases[i].want)
            fail_msg("case %zu (%s): %s, want %s (%s)", i, cases[i].field, ds_err2str(e),
                     ds_err2str(cases[i].want), detail);
    }
    /* shared_with as an array of bytes */
    static const uint8_t msg[] = {0, 0, 0, 0, 204, 2, 'e', 10, 2, 'L', 0, 4, 2, 'a', 2, 'b', 0};
    ds_ma_event_t ev;
    char detail[256] = "";
    assert_int_equal(
        ds_codec_decode_ma(f->codec, msg, sizeof(msg), &f->arena, &ev, detail, sizeof(detail)),
        DS_ERR_OK);
    assert_int_equal(ev.shared_with_count, 2);
    assert_string_equal(ev.shared_with[1], "b");
}

/* The binary's compiled-in schemas are the schemas/ files, byte for byte,
 * and stand for the default directory when the working directory has
 * none; a directory named explicitly must exist. */
static void test_builtin_schemas(void **state) {
    (void)state;
    const char *dir = getenv("DS_SCHEMAS_DIR");
    char err[512] = "", tmpl[] = "/tmp/ds-serde-XXXXXX", cwd[4096];
    int n = 0;
    for (const ds_schema_file_t *s = ds_builtin_schemas; s->name; s++, n++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, s->name);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        static char text[1 << 16];
        size_t got = fread(text, 1, sizeof(text) - 1, fp);
        fclose(fp);
        text[got] = 0;
        assert_string_equal(s->json, text);
    }
    assert_int_equal(n, 5);
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_non_null(mkdtemp(tmpl));
    assert_int_equal(chdir(tmpl), 0);
    ds_registry_t *r = ds_registry_open_dir("schemas", err, sizeof(err));
    assert_non_null(r);
    ds_registry_destroy(r);
    char *lead = ds_schema_file_text(NULL, "LeadScore", err, sizeof(err));
    assert_non_null(lead);
    assert_non_null(strstr(lead, "\"LeadScore\""));
    free(lead);
    assert_null(ds_registry_open_dir("./schemas", err, sizeof(err)));
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rmdir(tmpl), 0);
}

UU_MAIN(setup, teardown, cmocka_unit_test(test_writer_adds_fields),
        cmocka_unit_test(test_builtin_schemas), cmocka_unit_test(test_limits_are_for_ids),
        cmocka_unit_test(test_writer_lacks_fields_with_defaults),
        cmocka_unit_test(test_framing_errors), cmocka_unit_test(test_output_round_trip),
        cmocka_unit_test(test_direct_writer_matches_avro_c),
        cmocka_unit_test(test_direct_reader_promotions_and_blocks),
        cmocka_unit_test(test_ids_and_times_the_state_can_hold))
