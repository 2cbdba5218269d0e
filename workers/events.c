/*
 * events.c — the SPEC's records to and from Confluent-framed Avro.
 *
 * Decoding reads the record with its writer schema (ds_serde) and projects
 * fields by name: unknown fields are ignored, missing optional fields take
 * the SPEC defaults, a missing required field is DS_ERR_MISSING_FIELD, a
 * field of an incompatible type is DS_ERR_UNDECODABLE, an enum symbol we
 * do not know is DS_ERR_UNKNOWN_ENUM (enums are matched by symbol text, so
 * a writer may reorder or extend them).  The SPEC limits are checked here.
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_serde.h"

const ds_codec_ids_t ds_codec_default_ids = {1, 2, 3, 4, 5};

struct ds_codec {
    ds_registry_t *reg;
    ds_codec_ids_t ids;
};

ds_codec_t *ds_codec_new(ds_registry_t *reg, const ds_codec_ids_t *ids, char *errstr,
                         size_t errstr_size) {
    const int32_t want[] = {ids->lead_score, ids->account_score, ids->deal_alert};
    for (size_t i = 0; i < 3; i++) {
        if (!ds_registry_schema(reg, want[i])) {
            snprintf(errstr, errstr_size, "output schema id %d is not in the registry",
                     (int)want[i]);
            return NULL;
        }
    }
    ds_codec_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->reg = reg;
    c->ids = *ids;
    return c;
}

void ds_codec_destroy(ds_codec_t *c) { free(c); }

/* ---- projection helpers ------------------------------------------------------ */

typedef struct proj {
    avro_value_t *rec;
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
static ds_err_t field(proj_t *p, const char *name, avro_value_t *out, bool *present) {
    avro_value_t v;
    *present = false;
    if (avro_value_get_by_name(p->rec, name, &v, NULL))
        return DS_ERR_OK;
    if (avro_value_get_type(&v) == AVRO_UNION) {
        avro_value_t b;
        if (avro_value_get_current_branch(&v, &b))
            return fail(p, DS_ERR_UNDECODABLE, name, "bad union");
        v = b;
    }
    if (avro_value_get_type(&v) == AVRO_NULL)
        return DS_ERR_OK;
    *out = v;
    *present = true;
    return DS_ERR_OK;
}

static ds_err_t get_str(proj_t *p, const char *name, bool required, size_t max,
                        const char **out) {
    avro_value_t v;
    bool present;
    ds_err_t e = field(p, name, &v, &present);
    *out = NULL;
    if (e)
        return e;
    if (!present)
        return required ? fail(p, DS_ERR_MISSING_FIELD, name, "required field missing or null")
                        : DS_ERR_OK;
    if (avro_value_get_type(&v) != AVRO_STRING)
        return fail(p, DS_ERR_UNDECODABLE, name, "not a string");
    const char *s;
    size_t sz;
    if (avro_value_get_string(&v, &s, &sz))
        return fail(p, DS_ERR_UNDECODABLE, name, "unreadable string");
    size_t len = sz ? sz - 1 : 0; /* the size includes the NUL */
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
    avro_value_t v;
    bool pr;
    ds_err_t e = field(p, name, &v, &pr);
    if (present)
        *present = pr;
    if (e)
        return e;
    if (!pr)
        return required ? fail(p, DS_ERR_MISSING_FIELD, name, "required field missing or null")
                        : DS_ERR_OK;
    if (avro_value_get_type(&v) == AVRO_INT64)
        return avro_value_get_long(&v, out) ? fail(p, DS_ERR_UNDECODABLE, name, "bad long")
                                            : DS_ERR_OK;
    if (avro_value_get_type(&v) == AVRO_INT32) {
        int32_t i;
        if (avro_value_get_int(&v, &i))
            return fail(p, DS_ERR_UNDECODABLE, name, "bad int");
        *out = i;
        return DS_ERR_OK;
    }
    return fail(p, DS_ERR_UNDECODABLE, name, "not a number");
}

static ds_err_t get_double(proj_t *p, const char *name, double *out) {
    avro_value_t v;
    bool pr;
    ds_err_t e = field(p, name, &v, &pr);
    if (e)
        return e;
    if (!pr)
        return fail(p, DS_ERR_MISSING_FIELD, name, "required field missing");
    if (avro_value_get_type(&v) == AVRO_DOUBLE)
        return avro_value_get_double(&v, out) ? DS_ERR_UNDECODABLE : DS_ERR_OK;
    if (avro_value_get_type(&v) == AVRO_FLOAT) {
        float f;
        if (avro_value_get_float(&v, &f))
            return DS_ERR_UNDECODABLE;
        *out = f;
        return DS_ERR_OK;
    }
    return fail(p, DS_ERR_UNDECODABLE, name, "not a number");
}

/* An enum by symbol text; *out = DS_NONE when null/absent and optional. */
static ds_err_t get_enum(proj_t *p, const char *name, bool required, int (*parse)(const char *),
                         int *out) {
    avro_value_t v;
    bool pr;
    *out = DS_NONE;
    ds_err_t e = field(p, name, &v, &pr);
    if (e)
        return e;
    if (!pr)
        return required ? fail(p, DS_ERR_MISSING_FIELD, name, "required field missing or null")
                        : DS_ERR_OK;
    const char *sym = NULL;
    if (avro_value_get_type(&v) == AVRO_ENUM) {
        int i;
        if (avro_value_get_enum(&v, &i))
            return fail(p, DS_ERR_UNDECODABLE, name, "bad enum");
        sym = avro_schema_enum_get(avro_value_get_schema(&v), i);
    } else if (avro_value_get_type(&v) == AVRO_STRING) {
        size_t sz;
        avro_value_get_string(&v, &sym, &sz);
    } else {
        return fail(p, DS_ERR_UNDECODABLE, name, "not an enum");
    }
    *out = sym ? parse(sym) : DS_NONE;
    if (*out == DS_NONE) {
        char w[160];
        snprintf(w, sizeof(w), "unknown symbol %.100s", sym ? sym : "?");
        return fail(p, DS_ERR_UNKNOWN_ENUM, name, w);
    }
    return DS_ERR_OK;
}

static ds_err_t get_str_array(proj_t *p, const char *name, size_t max_items, size_t max_len,
                              const char ***out, size_t *count) {
    avro_value_t v;
    bool pr;
    *out = NULL;
    *count = 0;
    ds_err_t e = field(p, name, &v, &pr);
    if (e || !pr)
        return e;
    if (avro_value_get_type(&v) != AVRO_ARRAY)
        return fail(p, DS_ERR_UNDECODABLE, name, "not an array");
    size_t n = 0;
    avro_value_get_size(&v, &n);
    if (n > max_items) {
        char w[96];
        snprintf(w, sizeof(w), "%zu entries, over the limit of %zu", n, max_items);
        return fail(p, DS_ERR_LIMIT_EXCEEDED, name, w);
    }
    const char **arr = n ? ds_arena_alloc(p->arena, n * sizeof(char *)) : NULL;
    if (n && !arr)
        return fail(p, DS_ERR_LIMIT_EXCEEDED, name, "record too large");
    for (size_t i = 0; i < n; i++) {
        avro_value_t el;
        const char *s;
        size_t sz;
        if (avro_value_get_by_index(&v, i, &el, NULL) || avro_value_get_type(&el) != AVRO_STRING ||
            avro_value_get_string(&el, &s, &sz))
            return fail(p, DS_ERR_UNDECODABLE, name, "not an array of strings");
        size_t len = sz ? sz - 1 : 0;
        if (max_len && len > max_len)
            return fail(p, DS_ERR_LIMIT_EXCEEDED, name, "entry over the id limit");
        if (!(arr[i] = ds_arena_strndup(p->arena, s, len)))
            return fail(p, DS_ERR_LIMIT_EXCEEDED, name, "record too large");
    }
    *out = arr;
    *count = n;
    return DS_ERR_OK;
}

static ds_err_t get_attrs(proj_t *p, const ds_kv_t **out, size_t *count) {
    avro_value_t v;
    bool pr;
    *out = NULL;
    *count = 0;
    ds_err_t e = field(p, "attributes", &v, &pr);
    if (e || !pr)
        return e;
    if (avro_value_get_type(&v) != AVRO_MAP)
        return fail(p, DS_ERR_UNDECODABLE, "attributes", "not a map");
    size_t n = 0;
    avro_value_get_size(&v, &n);
    if (n > DS_MAX_ATTRIBUTES)
        return fail(p, DS_ERR_LIMIT_EXCEEDED, "attributes", "over 64 entries");
    ds_kv_t *kv = n ? ds_arena_alloc(p->arena, n * sizeof(ds_kv_t)) : NULL;
    if (n && !kv)
        return fail(p, DS_ERR_LIMIT_EXCEEDED, "attributes", "record too large");
    for (size_t i = 0; i < n; i++) {
        avro_value_t el;
        const char *key, *s;
        size_t sz;
        if (avro_value_get_by_index(&v, i, &el, &key) || avro_value_get_type(&el) != AVRO_STRING ||
            avro_value_get_string(&el, &s, &sz))
            return fail(p, DS_ERR_UNDECODABLE, "attributes", "not a map of strings");
        size_t len = sz ? sz - 1 : 0;
        if (len > DS_MAX_ATTRIBUTE_BYTES || strlen(key) > DS_MAX_ATTRIBUTE_BYTES)
            return fail(p, DS_ERR_LIMIT_EXCEEDED, "attributes", "an entry over 1 KiB");
        kv[i].key = ds_arena_strndup(p->arena, key, strlen(key));
        kv[i].value = ds_arena_strndup(p->arena, s, len);
        if (!kv[i].key || !kv[i].value)
            return fail(p, DS_ERR_LIMIT_EXCEEDED, "attributes", "record too large");
    }
    *out = kv;
    *count = n;
    return DS_ERR_OK;
}

/* Decode with the writer schema, which must be a record named `name`
 * (Avro resolution matches records by unqualified name). */
static ds_err_t open_rec(ds_codec_t *c, const char *name, const void *buf, size_t len,
                         ds_arena_t *arena, char *detail, size_t dsz, proj_t *p,
                         avro_value_t **v) {
    ds_err_t e = ds_serde_decode(c->reg, buf, len, v, detail, dsz);
    if (e)
        return e;
    if (avro_value_get_type(*v) != AVRO_RECORD) {
        snprintf(detail, dsz, "writer schema is not a record, expected %s", name);
        return DS_ERR_WRONG_TYPE;
    }
    const char *wname = avro_schema_name(avro_value_get_schema(*v));
    if (!wname || strcmp(wname, name) != 0) {
        snprintf(detail, dsz, "writer schema is record %s, expected %s", wname ? wname : "?",
                 name);
        return DS_ERR_WRONG_TYPE;
    }
    p->rec = *v;
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

ds_err_t ds_decode_ma(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                      ds_ma_event_t *o, char *detail, size_t dsz) {
    proj_t p;
    avro_value_t *v;
    TRY(open_rec(c, "MarketingEvent", buf, len, arena, detail, dsz, &p, &v));
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
    TRY(get_str(&p, "source", false, ID, &o->source));
    TRY(get_attrs(&p, &o->attributes, &o->attributes_count));
    return DS_ERR_OK;
}

ds_err_t ds_decode_crm(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                       ds_crm_event_t *o, char *detail, size_t dsz) {
    proj_t p;
    avro_value_t *v;
    TRY(open_rec(c, "CrmEvent", buf, len, arena, detail, dsz, &p, &v));
    memset(o, 0, sizeof(*o));
    TRY(get_str(&p, "event_id", true, ID, &o->event_id));
    TRY(get_long(&p, "occurred_at", true, &o->occurred_at, NULL));
    TRY(get_str(&p, "deal_id", true, ID, &o->deal_id));
    TRY(get_str(&p, "account_id", true, ID, &o->account_id));
    TRY(get_enum(&p, "type", true, ds_crm_type_parse, &o->type));
    TRY(get_enum(&p, "stage", false, ds_purchase_stage_parse, &o->stage));
    TRY(get_str(&p, "signal", false, ID, &o->signal));
    TRY(get_str(&p, "activity", false, ID, &o->activity));
    TRY(get_str(&p, "contact_id", false, ID, &o->contact_id));
    TRY(get_enum(&p, "contact_role", false, ds_role_parse, &o->contact_role));
    TRY(get_str(&p, "owner_id", false, ID, &o->owner_id));
    TRY(get_attrs(&p, &o->attributes, &o->attributes_count));
    return DS_ERR_OK;
}

ds_err_t ds_decode_lead_score(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                              ds_lead_score_t *o, char *detail, size_t dsz) {
    proj_t p;
    avro_value_t *v;
    TRY(open_rec(c, "LeadScore", buf, len, arena, detail, dsz, &p, &v));
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

ds_err_t ds_decode_account_score(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                                 ds_account_score_t *o, char *detail, size_t dsz) {
    proj_t p;
    avro_value_t *v;
    TRY(open_rec(c, "AccountScore", buf, len, arena, detail, dsz, &p, &v));
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

ds_err_t ds_decode_deal_alert(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                              ds_deal_alert_t *o, char *detail, size_t dsz) {
    proj_t p;
    avro_value_t *v;
    TRY(open_rec(c, "DealAlert", buf, len, arena, detail, dsz, &p, &v));
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

static int f_get(avro_value_t *rec, const char *name, avro_value_t *f) {
    return avro_value_get_by_name(rec, name, f, NULL);
}

static int set_str(avro_value_t *rec, const char *name, const char *s) {
    avro_value_t f, b;
    if (f_get(rec, name, &f))
        return -1;
    if (avro_value_get_type(&f) == AVRO_UNION) {
        if (!s)
            return avro_value_set_branch(&f, 0, &b) || avro_value_set_null(&b);
        if (avro_value_set_branch(&f, 1, &b))
            return -1;
        f = b;
    }
    return avro_value_set_string(&f, s ? s : "");
}

static int set_long(avro_value_t *rec, const char *name, int64_t v, bool nullable_null) {
    avro_value_t f, b;
    if (f_get(rec, name, &f))
        return -1;
    if (avro_value_get_type(&f) == AVRO_UNION) {
        if (nullable_null)
            return avro_value_set_branch(&f, 0, &b) || avro_value_set_null(&b);
        if (avro_value_set_branch(&f, 1, &b))
            return -1;
        f = b;
    }
    if (avro_value_get_type(&f) == AVRO_INT32)
        return avro_value_set_int(&f, (int32_t)v);
    return avro_value_set_long(&f, v);
}

static int set_double(avro_value_t *rec, const char *name, double v) {
    avro_value_t f;
    return f_get(rec, name, &f) || avro_value_set_double(&f, v);
}

static int set_enum(avro_value_t *rec, const char *name, int v) {
    avro_value_t f, b;
    if (f_get(rec, name, &f))
        return -1;
    if (avro_value_get_type(&f) == AVRO_UNION) {
        if (v < 0)
            return avro_value_set_branch(&f, 0, &b) || avro_value_set_null(&b);
        if (avro_value_set_branch(&f, 1, &b))
            return -1;
        f = b;
    }
    return avro_value_set_enum(&f, v);
}

static int set_array(avro_value_t *rec, const char *name, const char *const *v, size_t n) {
    avro_value_t f, el;
    if (f_get(rec, name, &f))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (avro_value_append(&f, &el, NULL) || avro_value_set_string(&el, v[i]))
            return -1;
    return 0;
}

static int set_attrs(avro_value_t *rec, const ds_kv_t *kv, size_t n) {
    avro_value_t f, el;
    if (f_get(rec, "attributes", &f))
        return 0; /* a writer schema without attributes */
    for (size_t i = 0; i < n; i++)
        if (avro_value_add(&f, kv[i].key, &el, NULL, NULL) ||
            avro_value_set_string(&el, kv[i].value))
            return -1;
    return 0;
}

static ds_err_t finish(int rc, int32_t id, avro_value_t *v, ds_buf_t *out) {
    if (rc)
        return DS_ERR_INVAL;
    return ds_serde_encode(id, v, out);
}

ds_err_t ds_encode_ma(ds_codec_t *c, const ds_ma_event_t *e, ds_buf_t *out) {
    avro_value_t *v;
    TRY(ds_serde_value(c->reg, c->ids.marketing_event, &v));
    int rc = set_str(v, "event_id", e->event_id) || set_long(v, "occurred_at", e->occurred_at, 0) ||
             set_str(v, "lead_id", e->lead_id) || set_str(v, "account_id", e->account_id) ||
             set_enum(v, "type", e->type) || set_str(v, "content_id", e->content_id) ||
             set_str(v, "insight_id", e->insight_id) ||
             set_enum(v, "content_stage", e->content_stage) ||
             set_array(v, "shared_with", e->shared_with, e->shared_with_count) ||
             set_str(v, "source", e->source) || set_attrs(v, e->attributes, e->attributes_count);
    return finish(rc, c->ids.marketing_event, v, out);
}

ds_err_t ds_encode_crm(ds_codec_t *c, const ds_crm_event_t *e, ds_buf_t *out) {
    avro_value_t *v;
    TRY(ds_serde_value(c->reg, c->ids.crm_event, &v));
    int rc = set_str(v, "event_id", e->event_id) || set_long(v, "occurred_at", e->occurred_at, 0) ||
             set_str(v, "deal_id", e->deal_id) || set_str(v, "account_id", e->account_id) ||
             set_enum(v, "type", e->type) || set_enum(v, "stage", e->stage) ||
             set_str(v, "signal", e->signal) || set_str(v, "activity", e->activity) ||
             set_str(v, "contact_id", e->contact_id) ||
             set_enum(v, "contact_role", e->contact_role) || set_str(v, "owner_id", e->owner_id) ||
             set_attrs(v, e->attributes, e->attributes_count);
    return finish(rc, c->ids.crm_event, v, out);
}

ds_err_t ds_encode_lead_score(ds_codec_t *c, const ds_lead_score_t *s, ds_buf_t *out) {
    avro_value_t *v;
    TRY(ds_serde_value(c->reg, c->ids.lead_score, &v));
    int rc = set_str(v, "lead_id", s->lead_id) || set_str(v, "account_id", s->account_id) ||
             set_double(v, "confront", s->confront) || set_double(v, "connect", s->connect) ||
             set_double(v, "mobilizer", s->mobilizer) || set_enum(v, "tier", s->tier) ||
             set_enum(v, "previous_tier", s->previous_tier) ||
             set_str(v, "top_insight", s->top_insight) ||
             set_enum(v, "furthest_stage", s->furthest_stage) ||
             set_array(v, "reasons", s->reasons, s->reasons_count) ||
             set_long(v, "as_of", s->as_of, 0) || set_long(v, "events_applied", s->events_applied, 0);
    return finish(rc, c->ids.lead_score, v, out);
}

ds_err_t ds_encode_account_score(ds_codec_t *c, const ds_account_score_t *s, ds_buf_t *out) {
    avro_value_t *v;
    TRY(ds_serde_value(c->reg, c->ids.account_score, &v));
    int rc = set_str(v, "account_id", s->account_id) ||
             set_long(v, "engaged_stakeholders", s->engaged_stakeholders, 0) ||
             set_long(v, "confronted_stakeholders", s->confronted_stakeholders, 0) ||
             set_double(v, "consensus", s->consensus) ||
             set_str(v, "top_insight", s->top_insight) ||
             set_array(v, "mobilizers", s->mobilizers, s->mobilizers_count) ||
             set_long(v, "as_of", s->as_of, 0);
    return finish(rc, c->ids.account_score, v, out);
}

ds_err_t ds_encode_deal_alert(ds_codec_t *c, const ds_deal_alert_t *a, ds_buf_t *out) {
    avro_value_t *v;
    TRY(ds_serde_value(c->reg, c->ids.deal_alert, &v));
    int rc = set_str(v, "alert_id", a->alert_id) || set_str(v, "deal_id", a->deal_id) ||
             set_str(v, "account_id", a->account_id ? a->account_id : "") ||
             set_str(v, "owner_id", a->owner_id) || set_enum(v, "kind", a->kind) ||
             set_enum(v, "state", a->state) || set_long(v, "level", a->level, 0) ||
             set_enum(v, "reported_stage", a->reported_stage) ||
             set_enum(v, "verified_stage", a->verified_stage) ||
             set_array(v, "missing_verifiers", a->missing_verifiers, a->missing_verifiers_count) ||
             set_long(v, "last_buyer_signal_at", a->last_buyer_signal_at,
                      a->last_buyer_signal_at == DS_TS_NULL) ||
             set_long(v, "last_seller_activity_at", a->last_seller_activity_at,
                      a->last_seller_activity_at == DS_TS_NULL) ||
             set_long(v, "unanswered_seller_actions", a->unanswered_seller_actions, 0) ||
             set_double(v, "quiet_days", a->quiet_days) || set_str(v, "message", a->message) ||
             set_long(v, "raised_at", a->raised_at, 0);
    return finish(rc, c->ids.deal_alert, v, out);
}
