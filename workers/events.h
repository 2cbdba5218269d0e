/*
 * events.h — the records dealsignal reads and writes, as plain C structs,
 * and the names of their enums.
 *
 * The domain (scoring, stall rules) works on these structs only; turning
 * them into and out of Avro is the codec's job (codec.h), so this header
 * pulls in no Avro, Kafka or Redis header.  Strings and arrays are
 * borrowed: whoever fills a struct says how long they live (the codec: in
 * the caller's arena until its reset; the worker's is reset per batch).
 *
 * Enum order is the order of the Avro symbols in schemas/: it is the
 * contract ("later stage", the order of alert kinds, docs/CONTRACT.md) and
 * must not change.  The names and parsers are in events.c.
 */
#ifndef DS_EVENTS_H
#define DS_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_kv.h"

#define DS_MA_TYPE_MAP(X)                                                 \
    X(CONTENT_VIEWED) X(CONTENT_COMPLETED) X(DIAGNOSTIC_COMPLETED)        \
    X(CONTENT_SHARED) X(EMAIL_CLICKED) X(WEBINAR_ATTENDED)                \
    X(FORM_SUBMITTED) X(UNSUBSCRIBED)
#define DS_CONTENT_STAGE_MAP(X) X(SPARK) X(INTRODUCE) X(CONFRONT) X(BUILD_B) X(SPEC)
#define DS_CRM_TYPE_MAP(X)                                                \
    X(DEAL_OPENED) X(STAGE_CHANGED) X(SELLER_ACTIVITY) X(BUYER_SIGNAL)    \
    X(STAKEHOLDER_ADDED) X(DEAL_WON) X(DEAL_LOST)
#define DS_PURCHASE_STAGE_MAP(X)                                          \
    X(RECOGNIZE_NEED) X(EXPLORE_OPTIONS) X(DEFINE_CRITERIA)               \
    X(EVALUATE_OPTIONS) X(SELECT_SUPPLIER) X(NEGOTIATE) X(IMPLEMENT)      \
    X(EVALUATE_IMPACT)
#define DS_ROLE_MAP(X) X(MOBILIZER) X(TALKER) X(BLOCKER) X(UNKNOWN)
#define DS_TIER_MAP(X) X(UNAWARE) X(LEARNING) X(CONFRONTED) X(CONNECTOR) X(MOBILIZER)
#define DS_ALERT_KIND_MAP(X)                                              \
    X(NO_BUYER_SIGNAL) X(ONE_SIDED) X(UNVERIFIED_STAGE) X(NO_MOBILIZER)
#define DS_ALERT_STATE_MAP(X) X(OPEN) X(REMINDER) X(RESOLVED)

/* -1 means "null" for every nullable enum field below. */
#define DS_NONE (-1)

typedef enum {
#define X(s) DS_MA_##s,
    DS_MA_TYPE_MAP(X)
#undef X
    DS_MA__COUNT
} ds_ma_type_t;

typedef enum {
#define X(s) DS_CS_##s,
    DS_CONTENT_STAGE_MAP(X)
#undef X
    DS_CS__COUNT
} ds_content_stage_t;

typedef enum {
#define X(s) DS_CRM_##s,
    DS_CRM_TYPE_MAP(X)
#undef X
    DS_CRM__COUNT
} ds_crm_type_t;

typedef enum {
#define X(s) DS_PS_##s,
    DS_PURCHASE_STAGE_MAP(X)
#undef X
    DS_PS__COUNT
} ds_purchase_stage_t;

typedef enum {
#define X(s) DS_ROLE_##s,
    DS_ROLE_MAP(X)
#undef X
    DS_ROLE__COUNT
} ds_role_t;

typedef enum {
#define X(s) DS_TIER_##s,
    DS_TIER_MAP(X)
#undef X
    DS_TIER__COUNT
} ds_tier_t;

typedef enum {
#define X(s) DS_AK_##s,
    DS_ALERT_KIND_MAP(X)
#undef X
    DS_AK__COUNT
} ds_alert_kind_t;

typedef enum {
#define X(s) DS_AS_##s,
    DS_ALERT_STATE_MAP(X)
#undef X
    DS_AS__COUNT
} ds_alert_state_t;

/* Symbol text (the Avro symbol) for each enum; NULL when out of range. */
const char *ds_ma_type_name(int v);
const char *ds_content_stage_name(int v);
const char *ds_crm_type_name(int v);
const char *ds_purchase_stage_name(int v);
const char *ds_role_name(int v);
const char *ds_tier_name(int v);
const char *ds_alert_kind_name(int v);
const char *ds_alert_state_name(int v);
/* Symbol → value; DS_NONE when unknown. */
int ds_ma_type_parse(const char *s);
int ds_content_stage_parse(const char *s);
int ds_crm_type_parse(const char *s);
int ds_purchase_stage_parse(const char *s);
int ds_role_parse(const char *s);
int ds_tier_parse(const char *s);
int ds_alert_kind_parse(const char *s);
int ds_alert_state_parse(const char *s);
/** Purchase stage in words for messages ("Defining purchase criteria"). */
const char *ds_purchase_stage_words(int v);

/* Limits on input records: over them a record goes to the DLQ as
 * limit_exceeded (docs/CONTRACT.md). */
#define DS_MAX_ID_BYTES 256
#define DS_MAX_SHARED_WITH 256
#define DS_MAX_ATTRIBUTES 64
#define DS_MAX_ATTRIBUTE_BYTES 1024

typedef struct ds_ma_event {
    const char *event_id;
    int64_t occurred_at; /* ms since epoch */
    const char *lead_id;
    const char *account_id; /* NULL: no account */
    int type;               /* ds_ma_type_t */
    const char *content_id; /* NULL allowed */
    const char *insight_id; /* NULL allowed */
    int content_stage;      /* ds_content_stage_t or DS_NONE */
    const char **shared_with;
    size_t shared_with_count;
    const char *source; /* NULL allowed */
    const ds_kv_t *attributes;
    size_t attributes_count;
} ds_ma_event_t;

/** A MarketingEvent with these fields, the others zero (no shared_with,
 *  no source, no attributes); account NULL for a lead without account.
 *  The strings are borrowed. */
ds_ma_event_t ds_ma_event_make(const char *event_id, int64_t occurred_at, const char *lead_id,
                               const char *account_id, int type, const char *content_id,
                               const char *insight_id, int content_stage);

typedef struct ds_crm_event {
    const char *event_id;
    int64_t occurred_at;
    const char *deal_id;
    const char *account_id;
    int type;           /* ds_crm_type_t */
    int stage;          /* ds_purchase_stage_t or DS_NONE */
    const char *signal; /* NULL allowed */
    const char *activity;
    const char *contact_id;
    int contact_role; /* ds_role_t or DS_NONE */
    const char *owner_id;
    const ds_kv_t *attributes;
    size_t attributes_count;
} ds_crm_event_t;

#define DS_MAX_REASONS 5

typedef struct ds_lead_score {
    const char *lead_id;
    const char *account_id; /* NULL allowed */
    double confront, connect, mobilizer;
    int tier, previous_tier;  /* ds_tier_t */
    const char *top_insight;  /* NULL allowed */
    int furthest_stage;       /* ds_content_stage_t or DS_NONE */
    const char *reasons[DS_MAX_REASONS];
    size_t reasons_count;
    int64_t as_of;
    int64_t events_applied;
    /* not in the Avro record: the stable output id (Kafka header) */
    const char *output_id;
} ds_lead_score_t;

typedef struct ds_account_score {
    const char *account_id;
    int32_t engaged_stakeholders;
    int32_t confronted_stakeholders;
    double consensus;
    const char *top_insight; /* NULL allowed */
    const char **mobilizers;
    size_t mobilizers_count;
    int64_t as_of;
    const char *output_id;
} ds_account_score_t;

typedef struct ds_deal_alert {
    const char *alert_id;
    const char *deal_id;
    const char *account_id;
    const char *owner_id; /* NULL allowed */
    int kind;             /* ds_alert_kind_t */
    int state;            /* ds_alert_state_t */
    int32_t level;
    int reported_stage; /* ds_purchase_stage_t */
    int verified_stage; /* ds_purchase_stage_t or DS_NONE */
    const char **missing_verifiers;
    size_t missing_verifiers_count;
    int64_t last_buyer_signal_at;     /* INT64_MIN: null */
    int64_t last_seller_activity_at;  /* INT64_MIN: null */
    int32_t unanswered_seller_actions;
    double quiet_days;
    const char *message;
    int64_t raised_at;
} ds_deal_alert_t;

#define DS_TS_NULL INT64_MIN

/* The event times the workers take (occurred_at, in ms): 1970-01-01 to
 * 9999-12-31T23:59:59.999Z; others are DLQ'd invalid_time (codec.c). */
#define DS_TS_MIN INT64_C(0)
#define DS_TS_MAX INT64_C(253402300799999)

#endif
