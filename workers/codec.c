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
 *
 * Each record's fields are listed once, in one function (ma_fields, ...)
 * that both directions walk: a field's name, whether it is required and
 * its limit cannot differ between encoding and decoding.
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

/* The walk over a record's fields and its steps (WALK) are inlined into
 * each ds_codec_decode_* and ds_codec_encode_*, so that each direction's
 * copy keeps only its own branches (f->enc is known there); so is the
 * lookup of a field's text.  Without it, decoding a CrmEvent through the
 * shared walk cost a quarter more than a decoder of its own. */
#define WALK static inline __attribute__((always_inline))

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

#define MISSING "required field missing or null"

/* The field's value with any union unwrapped; *present false when the
 * writer has no such field or the value is null, which is
 * DS_ERR_MISSING_FIELD when `missing` (the detail's text) is set. */
WALK ds_err_t value(proj_t *p, const char *name, const char *missing, ds_avro_dec_val_t *out,
                    bool *present) {
    *present = ds_avro_dec_field(&p->rec, name, out);
    return !*present && missing ? fail(p, DS_ERR_MISSING_FIELD, name, missing) : DS_ERR_OK;
}

/* A string or (symbol) an enum's symbol, in the message's bytes; *present
 * false when absent or null. */
WALK ds_err_t get_text(proj_t *p, const char *name, bool required, bool symbol, const char **s,
                       size_t *len, bool *present) {
    ds_avro_dec_val_t v;
    ds_err_t e = value(p, name, required ? MISSING : NULL, &v, present);
    if (e || !*present)
        return e;
    if (symbol ? ds_avro_dec_symbol(&v, s, len) : ds_avro_dec_string(&v, s, len))
        return fail(p, DS_ERR_UNDECODABLE, name, symbol ? "not an enum" : "not a string");
    return DS_ERR_OK;
}

/* An id (a string with a length limit) the workers can hold and name
 * keys with: no NUL byte (C strings would cut it short: another entity's
 * id), UTF-8, and, when `keyed` (a lead, account or deal id: it ends up inside
 * a Redis hash tag, "{acct:A}"), no '}' (it would end the tag early, and
 * "x}:lead:L" as an account would name the key of lead "L}" of account
 * "x"). */
static ds_err_t check_id(proj_t *p, const char *name, const char *s, size_t len, bool keyed) {
    if (memchr(s, 0, len))
        return fail(p, DS_ERR_INVALID_ID, name, "holds a NUL byte");
    if (!ds_utf8_valid(s, len)) /* Avro's strings are UTF-8: so are the outputs that carry it */
        return fail(p, DS_ERR_INVALID_ID, name, "is not UTF-8");
    if (keyed && memchr(s, '}', len))
        return fail(p, DS_ERR_INVALID_ID, name,
                    "holds '}', which would end the hash tag of its Redis keys");
    return DS_ERR_OK;
}

static ds_err_t get_str(proj_t *p, const char *name, bool required, size_t max, bool keyed,
                        const char **out) {
    const char *s;
    size_t len;
    bool present;
    *out = NULL;
    ds_err_t e = get_text(p, name, required, false, &s, &len, &present);
    if (e || !present)
        return e;
    if (required && len == 0)
        return fail(p, DS_ERR_MISSING_FIELD, name, "required id is empty");
    if (max && len > max) {
        char w[96];
        snprintf(w, sizeof(w), "%zu bytes, over the limit of %zu", len, max);
        return fail(p, DS_ERR_LIMIT_EXCEEDED, name, w);
    }
    if (max && (e = check_id(p, name, s, len, keyed)))
        return e;
    *out = ds_arena_strndup(p->arena, s, len);
    return *out ? DS_ERR_OK : fail(p, DS_ERR_LIMIT_EXCEEDED, name, "record too large");
}

/* A number into *l (a long) or else *d (a double); *present (when set)
 * false when absent or null, which is DS_ERR_MISSING_FIELD with the text
 * `missing` when that is set. */
static ds_err_t get_number(proj_t *p, const char *name, const char *missing, int64_t *l, double *d,
                           bool *present) {
    ds_avro_dec_val_t v;
    bool pr;
    ds_err_t e = value(p, name, missing, &v, &pr);
    if (present)
        *present = pr;
    if (e || !pr)
        return e;
    if (l ? ds_avro_dec_long(&v, l) : ds_avro_dec_double(&v, d))
        return fail(p, DS_ERR_UNDECODABLE, name, "not a number");
    return DS_ERR_OK;
}

/* An enum by symbol text; *out = DS_NONE when null/absent and optional. */
static ds_err_t get_enum(proj_t *p, const char *name, bool required, int (*parse)(const char *),
                         int *out) {
    const char *s;
    size_t len;
    bool present;
    *out = DS_NONE;
    ds_err_t e = get_text(p, name, required, true, &s, &len, &present);
    if (e || !present)
        return e;
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

/* An array (or, with kv, a map) of strings (or bytes, read as strings),
 * copied into the arena; an array's entries with max_len are lead ids
 * (check_id). */
static ds_err_t get_strings(proj_t *p, const char *name, bool map, size_t max_items, size_t max_len,
                            const char ***arr_out, ds_kv_t **kv_out, size_t *count) {
    ds_avro_dec_val_t v;
    bool pr;
    *count = 0;
    ds_err_t e = value(p, name, NULL, &v, &pr);
    if (e || !pr)
        return e;
    ds_avro_dec_iter_t it;
    size_t n = 0;
    if ((avro_typeof(v.schema) == AVRO_MAP) != map || ds_avro_dec_iter_init(&v, &it, &n) ||
        (avro_typeof(it.items) != AVRO_STRING && avro_typeof(it.items) != AVRO_BYTES))
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
        if (max_len && !map && (e = check_id(p, name, s, len, true)))
            return e;
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

/* ---- the records' fields, written once for both directions --------------------- */

/* A walk over one record's fields in its schema's order: with `enc` set
 * each field's value is written to the encoder; else each is projected
 * from the decoded message into the record, and the first failure is
 * kept in `err` (the fields after it are left as they are). */
typedef struct fields {
    ds_avro_enc_t *enc;
    proj_t *dec;
    ds_err_t err;
} fields_t;

typedef void fields_fn(fields_t *f, void *record);

enum {
    OPT = 0,
    REQ = 1,        /* missing, null or (a string) empty is DS_ERR_MISSING_FIELD */
    EMPTY_NULL = 2, /* decoding: an empty string is NULL */
    NULL_EMPTY = 4, /* encoding: NULL is written as an empty string */
    KEYED = 8,      /* decoding: a lead, account or deal id (check_id) */
};

WALK void f_str(fields_t *f, const char *name, int flags, size_t max, const char **v) {
    if (f->enc) {
        ds_avro_enc_str(f->enc, name, !*v && (flags & NULL_EMPTY) ? "" : *v);
    } else if (!f->err) {
        f->err = get_str(f->dec, name, flags & REQ, max, flags & KEYED, v);
        if ((flags & EMPTY_NULL) && *v && !**v)
            *v = NULL;
    }
}

/* A required long. */
WALK void f_long(fields_t *f, const char *name, int64_t *v) {
    if (f->enc)
        ds_avro_enc_long(f->enc, name, *v);
    else if (!f->err)
        f->err = get_number(f->dec, name, MISSING, v, NULL, NULL);
}

/* An event's time (ms since the epoch), required: from 1970-01-01 to
 * 9999-12-31 (DS_TS_MIN, DS_TS_MAX).  Outside it is a time in another unit
 * (micro- or nanoseconds: the year 50,000 and beyond) or a placeholder
 * (Long.MIN_VALUE), whose differences with real times overflow; one such
 * event would also carry a partition's watermark, and every deadline with
 * it, to its year. */
WALK void f_event_time(fields_t *f, const char *name, int64_t *v) {
    f_long(f, name, v);
    if (!f->enc && !f->err && (*v < DS_TS_MIN || *v > DS_TS_MAX)) {
        char w[128];
        snprintf(w, sizeof(w), "%lld is not a time from 1970 to 9999 in milliseconds",
                 (long long)*v);
        f->err = fail(f->dec, DS_ERR_INVALID_TIME, name, w);
    }
}

/* A required long held in an int32_t. */
WALK void f_int(fields_t *f, const char *name, int32_t *v) {
    int64_t x;
    if (f->enc)
        ds_avro_enc_long(f->enc, name, *v);
    else if (!f->err && !(f->err = get_number(f->dec, name, MISSING, &x, NULL, NULL)))
        *v = (int32_t)x;
}

/* An optional time: DS_TS_NULL for null or absent. */
WALK void f_time(fields_t *f, const char *name, int64_t *v) {
    if (f->enc) {
        if (*v == DS_TS_NULL)
            ds_avro_enc_null(f->enc, name);
        else
            ds_avro_enc_long(f->enc, name, *v);
    } else if (!f->err) {
        bool present;
        int64_t x = 0;
        f->err = get_number(f->dec, name, NULL, &x, NULL, &present);
        *v = present && !f->err ? x : DS_TS_NULL;
    }
}

/* A required double. */
WALK void f_double(fields_t *f, const char *name, double *v) {
    if (f->enc)
        ds_avro_enc_double(f->enc, name, *v);
    else if (!f->err)
        f->err = get_number(f->dec, name, "required field missing", NULL, v, NULL);
}

WALK void f_enum(fields_t *f, const char *name, int flags, int (*parse)(const char *), int *v) {
    if (f->enc)
        ds_avro_enc_enum(f->enc, name, *v);
    else if (!f->err)
        f->err = get_enum(f->dec, name, flags & REQ, parse, v);
}

WALK void f_strs(fields_t *f, const char *name, size_t max_items, size_t max_len, const char ***v,
                 size_t *count) {
    if (f->enc)
        ds_avro_enc_str_array(f->enc, name, *v, *count);
    else if (!f->err)
        f->err = get_str_array(f->dec, name, max_items, max_len, v, count);
}

/* Strings into a fixed array of `cap`: a message may carry up to
 * `max_items`, the first `cap` are kept. */
WALK void f_str_slots(fields_t *f, const char *name, size_t max_items, const char **v, size_t cap,
                      size_t *count) {
    if (f->enc) {
        ds_avro_enc_str_array(f->enc, name, v, *count);
    } else if (!f->err) {
        const char **r;
        size_t n;
        f->err = get_str_array(f->dec, name, max_items, 0, &r, &n);
        if (f->err)
            return;
        for (*count = 0; *count < n && *count < cap; (*count)++)
            v[*count] = r[*count];
    }
}

WALK void f_attrs(fields_t *f, const ds_kv_t **v, size_t *count) {
    if (f->enc)
        ds_avro_enc_str_map(f->enc, "attributes", *v, *count);
    else if (!f->err)
        f->err = get_attrs(f->dec, v, count);
}

#define ID DS_MAX_ID_BYTES

WALK void ma_fields(fields_t *f, void *record) {
    ds_ma_event_t *o = record;
    f_str(f, "event_id", REQ, ID, &o->event_id);
    f_event_time(f, "occurred_at", &o->occurred_at);
    f_str(f, "lead_id", REQ | KEYED, ID, &o->lead_id);
    f_str(f, "account_id", EMPTY_NULL | KEYED, ID, &o->account_id);
    f_enum(f, "type", REQ, ds_ma_type_parse, &o->type);
    f_str(f, "content_id", OPT, ID, &o->content_id);
    f_str(f, "insight_id", OPT, ID, &o->insight_id);
    f_enum(f, "content_stage", OPT, ds_content_stage_parse, &o->content_stage);
    f_strs(f, "shared_with", DS_MAX_SHARED_WITH, ID, &o->shared_with, &o->shared_with_count);
    /* not an id: no limit of its own (max_message_bytes bounds it) */
    f_str(f, "source", OPT, 0, &o->source);
    f_attrs(f, &o->attributes, &o->attributes_count);
}

WALK void crm_fields(fields_t *f, void *record) {
    ds_crm_event_t *o = record;
    f_str(f, "event_id", REQ, ID, &o->event_id);
    f_event_time(f, "occurred_at", &o->occurred_at);
    f_str(f, "deal_id", REQ | KEYED, ID, &o->deal_id);
    f_str(f, "account_id", REQ | KEYED, ID, &o->account_id);
    f_enum(f, "type", REQ, ds_crm_type_parse, &o->type);
    f_enum(f, "stage", OPT, ds_purchase_stage_parse, &o->stage);
    f_str(f, "signal", OPT, ID, &o->signal);
    /* not an id: no limit of its own (max_message_bytes bounds it) */
    f_str(f, "activity", OPT, 0, &o->activity);
    f_str(f, "contact_id", OPT | KEYED, ID, &o->contact_id);
    f_enum(f, "contact_role", OPT, ds_role_parse, &o->contact_role);
    f_str(f, "owner_id", OPT, ID, &o->owner_id);
    f_attrs(f, &o->attributes, &o->attributes_count);
}

/* The outputs are ours: their strings have no limit of their own. */
WALK void lead_score_fields(fields_t *f, void *record) {
    ds_lead_score_t *o = record;
    f_str(f, "lead_id", REQ, 0, &o->lead_id);
    f_str(f, "account_id", OPT, 0, &o->account_id);
    f_double(f, "confront", &o->confront);
    f_double(f, "connect", &o->connect);
    f_double(f, "mobilizer", &o->mobilizer);
    f_enum(f, "tier", REQ, ds_tier_parse, &o->tier);
    f_enum(f, "previous_tier", REQ, ds_tier_parse, &o->previous_tier);
    f_str(f, "top_insight", OPT, 0, &o->top_insight);
    f_enum(f, "furthest_stage", OPT, ds_content_stage_parse, &o->furthest_stage);
    f_str_slots(f, "reasons", 64, o->reasons, DS_MAX_REASONS, &o->reasons_count);
    f_long(f, "as_of", &o->as_of);
    f_long(f, "events_applied", &o->events_applied);
}

WALK void account_score_fields(fields_t *f, void *record) {
    ds_account_score_t *o = record;
    f_str(f, "account_id", REQ, 0, &o->account_id);
    f_int(f, "engaged_stakeholders", &o->engaged_stakeholders);
    f_int(f, "confronted_stakeholders", &o->confronted_stakeholders);
    f_double(f, "consensus", &o->consensus);
    f_str(f, "top_insight", OPT, 0, &o->top_insight);
    f_strs(f, "mobilizers", 100000, 0, &o->mobilizers, &o->mobilizers_count);
    f_long(f, "as_of", &o->as_of);
}

WALK void deal_alert_fields(fields_t *f, void *record) {
    ds_deal_alert_t *o = record;
    f_str(f, "alert_id", REQ, 0, &o->alert_id);
    f_str(f, "deal_id", REQ, 0, &o->deal_id);
    f_str(f, "account_id", NULL_EMPTY, 0, &o->account_id);
    f_str(f, "owner_id", OPT, 0, &o->owner_id);
    f_enum(f, "kind", REQ, ds_alert_kind_parse, &o->kind);
    f_enum(f, "state", REQ, ds_alert_state_parse, &o->state);
    f_int(f, "level", &o->level);
    f_enum(f, "reported_stage", REQ, ds_purchase_stage_parse, &o->reported_stage);
    f_enum(f, "verified_stage", OPT, ds_purchase_stage_parse, &o->verified_stage);
    f_strs(f, "missing_verifiers", 1000, 0, &o->missing_verifiers, &o->missing_verifiers_count);
    f_time(f, "last_buyer_signal_at", &o->last_buyer_signal_at);
    f_time(f, "last_seller_activity_at", &o->last_seller_activity_at);
    f_int(f, "unanswered_seller_actions", &o->unanswered_seller_actions);
    f_double(f, "quiet_days", &o->quiet_days);
    f_str(f, "message", REQ, 0, &o->message);
    f_long(f, "raised_at", &o->raised_at);
}

/* ---- decoding -------------------------------------------------------------------- */

/* The record is zeroed once the message is known to be a `name`, then
 * filled field by field up to the first failure. */
WALK ds_err_t decode(ds_codec_t *c, const char *name, fields_fn *fields, const void *buf,
                     size_t len, ds_arena_t *arena, void *record, size_t size, char *detail,
                     size_t dsz) {
    proj_t p;
    DS_TRY(open_rec(c, name, buf, len, arena, detail, dsz, &p));
    memset(record, 0, size);
    fields_t f = {.dec = &p};
    fields(&f, record);
    return f.err;
}

ds_err_t ds_codec_decode_ma(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                            ds_ma_event_t *o, char *detail, size_t dsz) {
    return decode(c, "MarketingEvent", ma_fields, buf, len, arena, o, sizeof(*o), detail, dsz);
}

ds_err_t ds_codec_decode_crm(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                             ds_crm_event_t *o, char *detail, size_t dsz) {
    return decode(c, "CrmEvent", crm_fields, buf, len, arena, o, sizeof(*o), detail, dsz);
}

ds_err_t ds_codec_decode_lead_score(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                                    ds_lead_score_t *o, char *detail, size_t dsz) {
    return decode(c, "LeadScore", lead_score_fields, buf, len, arena, o, sizeof(*o), detail, dsz);
}

ds_err_t ds_codec_decode_account_score(ds_codec_t *c, const void *buf, size_t len,
                                       ds_arena_t *arena, ds_account_score_t *o, char *detail,
                                       size_t dsz) {
    return decode(c, "AccountScore", account_score_fields, buf, len, arena, o, sizeof(*o), detail,
                  dsz);
}

ds_err_t ds_codec_decode_deal_alert(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                                    ds_deal_alert_t *o, char *detail, size_t dsz) {
    return decode(c, "DealAlert", deal_alert_fields, buf, len, arena, o, sizeof(*o), detail, dsz);
}

/* ---- encoding -------------------------------------------------------------------- */

/* The records are written straight to bytes (ds_avro_enc_*), in the order
 * and with the types of the schema registered for each id.  The walk only
 * reads the record: the casts below drop a const the field functions do
 * not need when encoding. */
WALK ds_err_t encode(ds_codec_t *c, int32_t id, fields_fn *fields, const void *record,
                     ds_buf_t *out) {
    ds_avro_enc_t x;
    DS_TRY(ds_avro_enc_begin(c->reg, id, &x));
    fields_t f = {.enc = &x};
    fields(&f, (void *)record);
    return ds_avro_enc_finish(&x, out);
}

ds_err_t ds_codec_encode_ma(ds_codec_t *c, const ds_ma_event_t *e, ds_buf_t *out) {
    return encode(c, c->ids.marketing_event, ma_fields, e, out);
}

ds_err_t ds_codec_encode_crm(ds_codec_t *c, const ds_crm_event_t *e, ds_buf_t *out) {
    return encode(c, c->ids.crm_event, crm_fields, e, out);
}

ds_err_t ds_codec_encode_lead_score(ds_codec_t *c, const ds_lead_score_t *s, ds_buf_t *out) {
    return encode(c, c->ids.lead_score, lead_score_fields, s, out);
}

ds_err_t ds_codec_encode_account_score(ds_codec_t *c, const ds_account_score_t *s, ds_buf_t *out) {
    return encode(c, c->ids.account_score, account_score_fields, s, out);
}

ds_err_t ds_codec_encode_deal_alert(ds_codec_t *c, const ds_deal_alert_t *a, ds_buf_t *out) {
    return encode(c, c->ids.deal_alert, deal_alert_fields, a, out);
}

static ds_err_t enc_lead_score(ds_codec_t *c, const void *r, ds_buf_t *out) {
    return ds_codec_encode_lead_score(c, r, out);
}

static ds_err_t enc_account_score(ds_codec_t *c, const void *r, ds_buf_t *out) {
    return ds_codec_encode_account_score(c, r, out);
}

static ds_err_t enc_deal_alert(ds_codec_t *c, const void *r, ds_buf_t *out) {
    return ds_codec_encode_deal_alert(c, r, out);
}

ds_codec_encoder_t ds_codec_encoder(const char *record) {
    static const struct {
        const char *record;
        ds_codec_encoder_t fn;
    } outs[] = {{"LeadScore", enc_lead_score},
                {"AccountScore", enc_account_score},
                {"DealAlert", enc_deal_alert}};
    for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++)
        if (!strcmp(outs[i].record, record))
            return outs[i].fn;
    return NULL;
}
