/*
 * codec.c — see codec.h.
 *
 * Decoding reads the message in place with its writer schema
 * (ds_avro_dec_read) and projects fields by name: unknown fields are
 * ignored, missing optional fields take their defaults, a missing or null
 * required field is DS_ERR_MISSING_FIELD, a field of an incompatible type
 * is DS_ERR_UNDECODABLE, an enum symbol we do not know is
 * DS_ERR_UNKNOWN_ENUM (enums are matched by symbol text, so a writer may
 * reorder or extend them).  The records' limits (events.h: DS_MAX_*) are
 * checked here, over them is DS_ERR_LIMIT_EXCEEDED.  Strings and arrays
 * are copied into the caller's arena.
 *
 * Encoding sets each field by name (ds_avro_enc_*), so the bytes follow
 * the order and types of the schema registered for the output's id.
 */
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_avro_dec.h"
#include "ds_avro_enc.h"

const ds_codec_ids_t ds_codec_default_ids = {1, 2, 3, 4, 5};

struct ds_codec {
    ds_registry_t *reg;
    ds_codec_ids_t ids;
};

static bool outputs_known(ds_registry_t *reg, const ds_codec_ids_t *ids, char *errstr,
                          size_t errstr_size) {
    const int32_t want[] = {ids->lead_score, ids->account_score, ids->deal_alert};
    for (size_t i = 0; i < 3; i++) {
        if (want[i] >= 0 && !ds_registry_schema(reg, want[i])) {
            snprintf(errstr, errstr_size, "output schema id %d is not in the registry",
                     (int)want[i]);
            return false;
        }
    }
    return true;
}

ds_codec_t *ds_codec_new(ds_registry_t *reg, const ds_codec_ids_t *ids, char *errstr,
                         size_t errstr_size) {
    if (!outputs_known(reg, ids, errstr, errstr_size))
        return NULL;
    ds_codec_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->reg = reg;
    c->ids = *ids;
    return c;
}

ds_err_t ds_codec_set_ids(ds_codec_t *c, const ds_codec_ids_t *ids, char *errstr,
                          size_t errstr_size) {
    if (!outputs_known(c->reg, ids, errstr, errstr_size))
        return DS_ERR_UNKNOWN_SCHEMA;
    c->ids = *ids;
    return DS_ERR_OK;
}

void ds_codec_destroy(ds_codec_t *c) {
    free(c);
}

/* ---- projection helpers ------------------------------------------------------ */

typedef struct proj {
    ds_avro_dec_rec_t rec;
    ds_arena_t *arena;
    char *detail;
    size_t detail_size;
} proj_t;

static ds_err_t fail(proj_t *p, ds_err_t e, const char *field, const char *what) {
    snprintf(p->detail, p->detail_size, "field %s: %s", field, what);
    return e;
}

/* The field's value with any union unwrapped; *present false when the
 * writer has no such field or the value is null. */
static ds_err_t field(proj_t *p, const char *name, ds_avro_dec_val_t *out, bool *present) {
    *present = ds_avro_dec_field(&p->rec, name, out);
    return DS_ERR_OK;
}

static ds_err_t get_str(proj_t *p, const char *name, bool required, size_t max, const char **out) {
    ds_avro_dec_val_t v;
    bool present;
    ds_err_t e = field(p, name, &v, &present);
    *out = NULL;
    if (e)
        return e;
    if (!present)
        return required ? fail(p, DS_ERR_MISSING_FIELD, name, "required field missing or null")
                        : DS_ERR_OK;
    const char *s;
    size_t len;
    if (ds_avro_dec_string(&v, &s, &len))
        return fail(p, DS_ERR_UNDECODABLE, name, "not a string");
    if (required && len == 0)
        return fail(p, DS_ERR_MISSING_FIELD, name, "required id is empty");
    if (max && len > max) {
        char w[96];
        snprintf(w, sizeof(w), "%zu bytes, over the limit of %zu", len, max);
        return fail(p, DS_ERR_LIMIT_EXCEEDED, name, w);
    }
    *out = ds_arena_strndup(p->arena, s, len);
    return *out ? DS_ERR_OK : fail(p, DS_ERR_LIMIT_EXCEEDED, name, "record too large");
}

static ds_err_t get_long(proj_t *p, const char *name, bool required, int64_t *out, bool *present) {
    ds_avro_dec_val_t v;
    bool pr;
    ds_err_t e = field(p, name, &v, &pr);
    if (present)
        *present = pr;
    if (e)
        return e;
    if (!pr)
        return required ? fail(p, DS_ERR_MISSING_FIELD, name, "required field missing or null")
                        : DS_ERR_OK;
    return ds_avro_dec_long(&v, out) ? fail(p, DS_ERR_UNDECODABLE, name, "not a number")
                                     : DS_ERR_OK;
}

static ds_err_t get_double(proj_t *p, const char *name, double *out) {
    ds_avro_dec_val_t v;
    bool pr;
    ds_err_t e = field(p, name, &v, &pr);
    if (e)
        return e;
    if (!pr)
        return fail(p, DS_ERR_MISSING_FIELD, name, "required field missing");
    return ds_avro_dec_double(&v, out) ? fail(p, DS_ERR_UNDECODABLE, name, "not a number")
                                       : DS_ERR_OK;
}

/* An enum by symbol text; *out = DS_NONE when null/absent and optional. */
static ds_err_t get_enum(proj_t *p, const char *name, bool required, int (*parse)(const char *),
                         int *out) {
    ds_avro_dec_val_t v;
    bool pr;
    *out = DS_NONE;
    ds_err_t e = field(p, name, &v, &pr);
    if (e)
        return e;
    if (!pr)
        return required ? fail(p, DS_ERR_MISSING_FIELD, name, "required field missing or null")
                        : DS_ERR_OK;
    const char *s;
    size_t len;
    if (ds_avro_dec_symbol(&v, &s, &len))
        return fail(p, DS_ERR_UNDECODABLE, name, "not an enum");
    char sym[64];
    if (len < sizeof(sym)) {
        memcpy(sym, s, len);
        sym[len] = 0;
        *out = parse(sym);
    }
    if (*out == DS_NONE) {
        char w[160];
        snprintf(w, sizeof(w), "unknown symbol %.*s", (int)(len > 100 ? 100 : len), s);
        return fail(p, DS_ERR_UNKNOWN_ENUM, name, w);
    }
    return DS_ERR_OK;
}

/* An array (or, with kv, a map) of strings, copied into the arena. */
static ds_err_t get_strings(proj_t *p, const char *name, bool map, size_t max_items, size_t max_len,
                            const char ***arr_out, ds_kv_t **kv_out, size_t *count) {
    ds_avro_dec_val_t v;
    bool pr;
    *count = 0;
    ds_err_t e = field(p, name, &v, &pr);
    if (e || !pr)
        return e;
    ds_avro_dec_iter_t it;
    size_t n = 0;
    if ((avro_typeof(v.schema) == AVRO_MAP) != map || ds_avro_dec_iter_init(&v, &it, &n) ||
        avro_typeof(it.items) != AVRO_STRING)
        return fail(p, DS_ERR_UNDECODABLE, name,
                    map ? "not a map of strings" : "not an array of strings");
    if (n > max_items) {
        char w[96];
        snprintf(w, sizeof(w), "%zu entries, over the limit of %zu", n, max_items);
        return fail(p, DS_ERR_LIMIT_EXCEEDED, name, w);
    }
    void *arr = n ? ds_arena_alloc(p->arena, n * (map ? sizeof(ds_kv_t) : sizeof(char *))) : NULL;
    if (n && !arr)
        return fail(p, DS_ERR_LIMIT_EXCEEDED, name, "record too large");
    for (size_t i = 0; i < n; i++) {
        ds_avro_dec_val_t el;
        const char *key = NULL, *s;
        size_t klen = 0, len;
        if (ds_avro_dec_iter_next(&it, &key, &klen, &el) != 1 || ds_avro_dec_string(&el, &s, &len))
            return fail(p, DS_ERR_UNDECODABLE, name, "malformed");
        if (max_len && (len > max_len || klen > max_len))
            return fail(p, DS_ERR_LIMIT_EXCEEDED, name,
                        map ? "an entry over 1 KiB" : "entry over the id limit");
        const char *copy = ds_arena_strndup(p->arena, s, len);
        if (!copy)
            return fail(p, DS_ERR_LIMIT_EXCEEDED, name, "record too large");
        if (map) {
            ds_kv_t *kv = (ds_kv_t *)arr + i;
            kv->value = copy;
            if (!(kv->key = ds_arena_strndup(p->arena, key, klen)))
                return fail(p, DS_ERR_LIMIT_EXCEEDED, name, "record too large");
        } else {
            ((const char **)arr)[i] = copy;
        }
    }
    if (map)
        *kv_out = arr;
    else
        *arr_out = arr;
    *count = n;
    return DS_ERR_OK;
}

static ds_err_t get_str_array(proj_t *p, const char *name, size_t max_items, size_t max_len,
                              const char ***out, size_t *count) {
    *out = NULL;
    return get_strings(p, name, false, max_items, max_len, out, NULL, count);
}

static ds_err_t get_attrs(proj_t *p, const ds_kv_t **out, size_t *count) {
    ds_kv_t *kv = NULL;
    ds_err_t e = get_strings(p, "attributes", true, DS_MAX_ATTRIBUTES, DS_MAX_ATTRIBUTE_BYTES, NULL,
                             &kv, count);
    *out = kv;
    return e;
}

/* Check the message against its writer schema, which must be a record
 * named `name` (Avro resolution matches records by unqualified name). */
static ds_err_t open_rec(ds_codec_t *c, const char *name, const void *buf, size_t len,
                         ds_arena_t *arena, char *detail, size_t dsz, proj_t *p) {
    ds_err_t e = ds_avro_dec_read(c->reg, buf, len, &p->rec, detail, dsz);
    if (e)
        return e;
    if (avro_typeof(p->rec.schema) != AVRO_RECORD) {
        snprintf(detail, dsz, "writer schema is not a record, expected %s", name);
        return DS_ERR_WRONG_TYPE;
    }
    const char *wname = avro_schema_name(p->rec.schema);
    if (!wname || strcmp(wname, name) != 0) {
        snprintf(detail, dsz, "writer schema is record %s, expected %s", wname ? wname : "?", name);
        return DS_ERR_WRONG_TYPE;
    }
    p->arena = arena;
    p->detail = detail;
    p->detail_size = dsz;
    return DS_ERR_OK;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        ds_err_t e_ = (x);                                                                         \
        if (e_)                                                                                    \
            return e_;                                                                             \
    } while (0)
#define ID DS_MAX_ID_BYTES

ds_err_t ds_codec_decode_ma(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                            ds_ma_event_t *o, char *detail, size_t dsz) {
    proj_t p;
    TRY(open_rec(c, "MarketingEvent", buf, len, arena, detail, dsz, &p));
    memset(o, 0, sizeof(*o));
    TRY(get_str(&p, "event_id", true, ID, &o->event_id));
    TRY(get_long(&p, "occurred_at", true, &o->occurred_at, NULL));
    TRY(get_str(&p, "lead_id", true, ID, &o->lead_id));
    TRY(get_str(&p, "account_id", false, ID, &o->account_id));
    if (o->account_id && !o->account_id[0])
        o->account_id = NULL;
    TRY(get_enum(&p, "type", true, ds_ma_type_parse, &o->type));
    TRY(get_str(&p, "content_id", false, ID, &o->content_id));
    TRY(get_str(&p, "insight_id", false, ID, &o->insight_id));
    TRY(get_enum(&p, "content_stage", false, ds_content_stage_parse, &o->content_stage));
    TRY(get_str_array(&p, "shared_with", DS_MAX_SHARED_WITH, ID, &o->shared_with,
                      &o->shared_with_count));
    /* not an id: no limit of its own (max_message_bytes bounds it) */
    TRY(get_str(&p, "source", false, 0, &o->source));
    TRY(get_attrs(&p, &o->attributes, &o->attributes_count));
    return DS_ERR_OK;
}

ds_err_t ds_codec_decode_crm(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                             ds_crm_event_t *o, char *detail, size_t dsz) {
    proj_t p;
    TRY(open_rec(c, "CrmEvent", buf, len, arena, detail, dsz, &p));
    memset(o, 0, sizeof(*o));
    TRY(get_str(&p, "event_id", true, ID, &o->event_id));
    TRY(get_long(&p, "occurred_at", true, &o->occurred_at, NULL));
    TRY(get_str(&p, "deal_id", true, ID, &o->deal_id));
    TRY(get_str(&p, "account_id", true, ID, &o->account_id));
    TRY(get_enum(&p, "type", true, ds_crm_type_parse, &o->type));
    TRY(get_enum(&p, "stage", false, ds_purchase_stage_parse, &o->stage));
    TRY(get_str(&p, "signal", false, ID, &o->signal));
    /* not an id: no limit of its own (max_message_bytes bounds it) */
    TRY(get_str(&p, "activity", false, 0, &o->activity));
    TRY(get_str(&p, "contact_id", false, ID, &o->contact_id));
    TRY(get_enum(&p, "contact_role", false, ds_role_parse, &o->contact_role));
    TRY(get_str(&p, "owner_id", false, ID, &o->owner_id));
    TRY(get_attrs(&p, &o->attributes, &o->attributes_count));
    return DS_ERR_OK;
}

ds_err_t ds_codec_decode_lead_score(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                                    ds_lead_score_t *o, char *detail, size_t dsz) {
    proj_t p;
    TRY(open_rec(c, "LeadScore", buf, len, arena, detail, dsz, &p));
    memset(o, 0, sizeof(*o));
    TRY(get_str(&p, "lead_id", true, 0, &o->lead_id));
    TRY(get_str(&p, "account_id", false, 0, &o->account_id));
    TRY(get_double(&p, "confront", &o->confront));
    TRY(get_double(&p, "connect", &o->connect));
    TRY(get_double(&p, "mobilizer", &o->mobilizer));
    TRY(get_enum(&p, "tier", true, ds_tier_parse, &o->tier));
    TRY(get_enum(&p, "previous_tier", true, ds_tier_parse, &o->previous_tier));
    TRY(get_str(&p, "top_insight", false, 0, &o->top_insight));
    TRY(get_enum(&p, "furthest_stage", false, ds_content_stage_parse, &o->furthest_stage));
    const char **r;
    size_t n;
    TRY(get_str_array(&p, "reasons", 64, 0, &r, &n));
    for (size_t i = 0; i < n && i < DS_MAX_REASONS; i++)
        o->reasons[i] = r[i];
    o->reasons_count = n < DS_MAX_REASONS ? n : DS_MAX_REASONS;
    TRY(get_long(&p, "as_of", true, &o->as_of, NULL));
    TRY(get_long(&p, "events_applied", true, &o->events_applied, NULL));
    return DS_ERR_OK;
}

ds_err_t ds_codec_decode_account_score(ds_codec_t *c, const void *buf, size_t len,
                                       ds_arena_t *arena, ds_account_score_t *o, char *detail,
                                       size_t dsz) {
    proj_t p;
    TRY(open_rec(c, "AccountScore", buf, len, arena, detail, dsz, &p));
    memset(o, 0, sizeof(*o));
    int64_t x;
    TRY(get_str(&p, "account_id", true, 0, &o->account_id));
    TRY(get_long(&p, "engaged_stakeholders", true, &x, NULL));
    o->engaged_stakeholders = (int32_t)x;
    TRY(get_long(&p, "confronted_stakeholders", true, &x, NULL));
    o->confronted_stakeholders = (int32_t)x;
    TRY(get_double(&p, "consensus", &o->consensus));
    TRY(get_str(&p, "top_insight", false, 0, &o->top_insight));
    TRY(get_str_array(&p, "mobilizers", 100000, 0, &o->mobilizers, &o->mobilizers_count));
    TRY(get_long(&p, "as_of", true, &o->as_of, NULL));
    return DS_ERR_OK;
}

ds_err_t ds_codec_decode_deal_alert(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                                    ds_deal_alert_t *o, char *detail, size_t dsz) {
    proj_t p;
    TRY(open_rec(c, "DealAlert", buf, len, arena, detail, dsz, &p));
    memset(o, 0, sizeof(*o));
    int64_t x;
    bool pr;
    TRY(get_str(&p, "alert_id", true, 0, &o->alert_id));
    TRY(get_str(&p, "deal_id", true, 0, &o->deal_id));
    TRY(get_str(&p, "account_id", false, 0, &o->account_id));
    TRY(get_str(&p, "owner_id", false, 0, &o->owner_id));
    TRY(get_enum(&p, "kind", true, ds_alert_kind_parse, &o->kind));
    TRY(get_enum(&p, "state", true, ds_alert_state_parse, &o->state));
    TRY(get_long(&p, "level", true, &x, NULL));
    o->level = (int32_t)x;
    TRY(get_enum(&p, "reported_stage", true, ds_purchase_stage_parse, &o->reported_stage));
    TRY(get_enum(&p, "verified_stage", false, ds_purchase_stage_parse, &o->verified_stage));
    TRY(get_str_array(&p, "missing_verifiers", 1000, 0, &o->missing_verifiers,
                      &o->missing_verifiers_count));
    o->last_buyer_signal_at = DS_TS_NULL;
    o->last_seller_activity_at = DS_TS_NULL;
    TRY(get_long(&p, "last_buyer_signal_at", false, &x, &pr));
    if (pr)
        o->last_buyer_signal_at = x;
    TRY(get_long(&p, "last_seller_activity_at", false, &x, &pr));
    if (pr)
        o->last_seller_activity_at = x;
    TRY(get_long(&p, "unanswered_seller_actions", true, &x, NULL));
    o->unanswered_seller_actions = (int32_t)x;
    TRY(get_double(&p, "quiet_days", &o->quiet_days));
    TRY(get_str(&p, "message", true, 0, &o->message));
    TRY(get_long(&p, "raised_at", true, &o->raised_at, NULL));
    return DS_ERR_OK;
}

/* ---- encoding -------------------------------------------------------------------- */

/* The records are written straight to bytes (ds_avro_enc_*), in the order
 * and with the types of the schema registered for each id. */

ds_err_t ds_codec_encode_ma(ds_codec_t *c, const ds_ma_event_t *e, ds_buf_t *out) {
    ds_avro_enc_t x;
    TRY(ds_avro_enc_begin(c->reg, c->ids.marketing_event, &x));
    ds_avro_enc_str(&x, "event_id", e->event_id);
    ds_avro_enc_long(&x, "occurred_at", e->occurred_at);
    ds_avro_enc_str(&x, "lead_id", e->lead_id);
    ds_avro_enc_str(&x, "account_id", e->account_id);
    ds_avro_enc_enum(&x, "type", e->type);
    ds_avro_enc_str(&x, "content_id", e->content_id);
    ds_avro_enc_str(&x, "insight_id", e->insight_id);
    ds_avro_enc_enum(&x, "content_stage", e->content_stage);
    ds_avro_enc_str_array(&x, "shared_with", e->shared_with, e->shared_with_count);
    ds_avro_enc_str(&x, "source", e->source);
    ds_avro_enc_str_map(&x, "attributes", e->attributes, e->attributes_count);
    return ds_avro_enc_finish(&x, out);
}

ds_err_t ds_codec_encode_crm(ds_codec_t *c, const ds_crm_event_t *e, ds_buf_t *out) {
    ds_avro_enc_t x;
    TRY(ds_avro_enc_begin(c->reg, c->ids.crm_event, &x));
    ds_avro_enc_str(&x, "event_id", e->event_id);
    ds_avro_enc_long(&x, "occurred_at", e->occurred_at);
    ds_avro_enc_str(&x, "deal_id", e->deal_id);
    ds_avro_enc_str(&x, "account_id", e->account_id);
    ds_avro_enc_enum(&x, "type", e->type);
    ds_avro_enc_enum(&x, "stage", e->stage);
    ds_avro_enc_str(&x, "signal", e->signal);
    ds_avro_enc_str(&x, "activity", e->activity);
    ds_avro_enc_str(&x, "contact_id", e->contact_id);
    ds_avro_enc_enum(&x, "contact_role", e->contact_role);
    ds_avro_enc_str(&x, "owner_id", e->owner_id);
    ds_avro_enc_str_map(&x, "attributes", e->attributes, e->attributes_count);
    return ds_avro_enc_finish(&x, out);
}

ds_err_t ds_codec_encode_lead_score(ds_codec_t *c, const ds_lead_score_t *s, ds_buf_t *out) {
    ds_avro_enc_t x;
    TRY(ds_avro_enc_begin(c->reg, c->ids.lead_score, &x));
    ds_avro_enc_str(&x, "lead_id", s->lead_id);
    ds_avro_enc_str(&x, "account_id", s->account_id);
    ds_avro_enc_double(&x, "confront", s->confront);
    ds_avro_enc_double(&x, "connect", s->connect);
    ds_avro_enc_double(&x, "mobilizer", s->mobilizer);
    ds_avro_enc_enum(&x, "tier", s->tier);
    ds_avro_enc_enum(&x, "previous_tier", s->previous_tier);
    ds_avro_enc_str(&x, "top_insight", s->top_insight);
    ds_avro_enc_enum(&x, "furthest_stage", s->furthest_stage);
    ds_avro_enc_str_array(&x, "reasons", s->reasons, s->reasons_count);
    ds_avro_enc_long(&x, "as_of", s->as_of);
    ds_avro_enc_long(&x, "events_applied", s->events_applied);
    return ds_avro_enc_finish(&x, out);
}

ds_err_t ds_codec_encode_account_score(ds_codec_t *c, const ds_account_score_t *s, ds_buf_t *out) {
    ds_avro_enc_t x;
    TRY(ds_avro_enc_begin(c->reg, c->ids.account_score, &x));
    ds_avro_enc_str(&x, "account_id", s->account_id);
    ds_avro_enc_long(&x, "engaged_stakeholders", s->engaged_stakeholders);
    ds_avro_enc_long(&x, "confronted_stakeholders", s->confronted_stakeholders);
    ds_avro_enc_double(&x, "consensus", s->consensus);
    ds_avro_enc_str(&x, "top_insight", s->top_insight);
    ds_avro_enc_str_array(&x, "mobilizers", s->mobilizers, s->mobilizers_count);
    ds_avro_enc_long(&x, "as_of", s->as_of);
    return ds_avro_enc_finish(&x, out);
}

static void enc_ts(ds_avro_enc_t *x, const char *name, int64_t ts) {
    if (ts == DS_TS_NULL)
        ds_avro_enc_null(x, name);
    else
        ds_avro_enc_long(x, name, ts);
}

ds_err_t ds_codec_encode_deal_alert(ds_codec_t *c, const ds_deal_alert_t *a, ds_buf_t *out) {
    ds_avro_enc_t x;
    TRY(ds_avro_enc_begin(c->reg, c->ids.deal_alert, &x));
    ds_avro_enc_str(&x, "alert_id", a->alert_id);
    ds_avro_enc_str(&x, "deal_id", a->deal_id);
    ds_avro_enc_str(&x, "account_id", a->account_id ? a->account_id : "");
    ds_avro_enc_str(&x, "owner_id", a->owner_id);
    ds_avro_enc_enum(&x, "kind", a->kind);
    ds_avro_enc_enum(&x, "state", a->state);
    ds_avro_enc_long(&x, "level", a->level);
    ds_avro_enc_enum(&x, "reported_stage", a->reported_stage);
    ds_avro_enc_enum(&x, "verified_stage", a->verified_stage);
    ds_avro_enc_str_array(&x, "missing_verifiers", a->missing_verifiers,
                          a->missing_verifiers_count);
    enc_ts(&x, "last_buyer_signal_at", a->last_buyer_signal_at);
    enc_ts(&x, "last_seller_activity_at", a->last_seller_activity_at);
    ds_avro_enc_long(&x, "unanswered_seller_actions", a->unanswered_seller_actions);
    ds_avro_enc_double(&x, "quiet_days", a->quiet_days);
    ds_avro_enc_str(&x, "message", a->message);
    ds_avro_enc_long(&x, "raised_at", a->raised_at);
    return ds_avro_enc_finish(&x, out);
}
