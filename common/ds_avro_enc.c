/*
 * ds_avro_enc.c — see ds_avro_enc.h.
 *
 * The setters only note a value (its kind and a pointer or number) in the
 * slot of the field's index; ds_avro_enc_finish() then writes the 5-byte
 * header and each field in schema order.  A union takes its first branch
 * that fits the slot's kind (fits()); a field nobody set fits only null.
 * Arrays and maps are written as one block (count, items, 0), or as the
 * single 0 when empty.  Any failure truncates out back to its length
 * before the call.
 */
#include "ds_avro_enc.h"

#include <stdbool.h>
#include <string.h>

#include "ds_registry_plan.h"

enum { K_UNSET, K_NULL, K_STR, K_LONG, K_DOUBLE, K_ENUM, K_ARR, K_MAP };

ds_err_t ds_avro_enc_begin(ds_registry_t *r, int32_t id, ds_avro_enc_t *e) {
    const ds_registry_entry_t *ent = ds_registry_entry(r, id, NULL);
    if (!ent || avro_typeof(ent->schema) != AVRO_RECORD || ent->nfields > DS_AVRO_ENC_FIELDS)
        return DS_ERR_UNKNOWN_SCHEMA;
    e->schema = ent->schema;
    e->plan = ent->plan;
    e->id = id;
    e->nfields = ent->nfields;
    e->hint = 0;
    e->bad = NULL;
    for (size_t i = 0; i < e->nfields; i++)
        e->slot[i].kind = K_UNSET;
    return DS_ERR_OK;
}

static ds_avro_enc_slot_t *slot(ds_avro_enc_t *e, const char *name, bool optional) {
    int i = ds_registry_plan_field(e->plan, e->nfields, e->hint, name);
    if (i < 0) {
        if (!optional && !e->bad)
            e->bad = name;
        return NULL;
    }
    e->hint = (size_t)i + 1;
    return &e->slot[i];
}

void ds_avro_enc_str(ds_avro_enc_t *e, const char *name, const char *s) {
    ds_avro_enc_slot_t *x = slot(e, name, false);
    if (x) {
        x->kind = s ? K_STR : K_NULL;
        x->u.s = s;
    }
}

void ds_avro_enc_long(ds_avro_enc_t *e, const char *name, int64_t v) {
    ds_avro_enc_slot_t *x = slot(e, name, false);
    if (x) {
        x->kind = K_LONG;
        x->u.l = v;
    }
}

void ds_avro_enc_null(ds_avro_enc_t *e, const char *name) {
    ds_avro_enc_slot_t *x = slot(e, name, false);
    if (x)
        x->kind = K_NULL;
}

void ds_avro_enc_double(ds_avro_enc_t *e, const char *name, double v) {
    ds_avro_enc_slot_t *x = slot(e, name, false);
    if (x) {
        x->kind = K_DOUBLE;
        x->u.d = v;
    }
}

void ds_avro_enc_enum(ds_avro_enc_t *e, const char *name, int idx) {
    ds_avro_enc_slot_t *x = slot(e, name, false);
    if (x) {
        x->kind = idx < 0 ? K_NULL : K_ENUM;
        x->u.l = idx;
    }
}

void ds_avro_enc_str_array(ds_avro_enc_t *e, const char *name, const char *const *v, size_t n) {
    ds_avro_enc_slot_t *x = slot(e, name, false);
    if (x) {
        x->kind = K_ARR;
        x->u.arr = v;
        x->n = n;
    }
}

void ds_avro_enc_str_map(ds_avro_enc_t *e, const char *name, const ds_kv_t *kv, size_t n) {
    ds_avro_enc_slot_t *x = slot(e, name, true);
    if (x) {
        x->kind = K_MAP;
        x->u.kv = kv;
        x->n = n;
    }
}

static ds_err_t put_long(ds_buf_t *b, int64_t v) {
    return ds_buf_put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static ds_err_t put_bytes(ds_buf_t *b, const char *s, size_t n) {
    ds_err_t e = put_long(b, (int64_t)n);
    return e ? e : ds_buf_append(b, s, n);
}

/* Does a value of slot kind k fit schema type t (a union's branch)? */
static bool fits(int k, avro_type_t t) {
    switch (k) {
    case K_UNSET:
    case K_NULL:
        return t == AVRO_NULL;
    case K_STR:
        return t == AVRO_STRING || t == AVRO_BYTES;
    case K_LONG:
        return t == AVRO_INT64 || t == AVRO_INT32;
    case K_DOUBLE:
        return t == AVRO_DOUBLE || t == AVRO_FLOAT;
    case K_ENUM:
        return t == AVRO_ENUM;
    case K_ARR:
        return t == AVRO_ARRAY;
    case K_MAP:
        return t == AVRO_MAP;
    }
    return false;
}

static ds_err_t put_value(ds_buf_t *b, const ds_registry_plan_t *s, const ds_avro_enc_slot_t *x) {
    avro_type_t t = s->t;
    ds_err_t e;
    if (t == AVRO_UNION) {
        for (int64_t i = 0; i < s->n; i++) {
            const ds_registry_plan_t *br = s->kids[i];
            if (fits(x->kind, br->t))
                return (e = put_long(b, i)) ? e : put_value(b, br, x);
        }
        return DS_ERR_WRONG_TYPE;
    }
    if (!fits(x->kind, t))
        return DS_ERR_WRONG_TYPE;
    switch (t) {
    case AVRO_NULL:
        return DS_ERR_OK;
    case AVRO_STRING:
    case AVRO_BYTES:
        return put_bytes(b, x->u.s, strlen(x->u.s));
    case AVRO_INT32:
        if (x->u.l < INT32_MIN || x->u.l > INT32_MAX)
            return DS_ERR_LIMIT_EXCEEDED;
        return put_long(b, x->u.l);
    case AVRO_INT64:
        return put_long(b, x->u.l);
    case AVRO_DOUBLE:
        return ds_buf_put_f64(b, x->u.d);
    case AVRO_FLOAT: {
        float f = (float)x->u.d;
        uint32_t u;
        memcpy(&u, &f, sizeof(u));
        unsigned char le4[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                                (unsigned char)(u >> 24)};
        return ds_buf_append(b, le4, 4);
    }
    case AVRO_ENUM:
        if (x->u.l >= s->n)
            return DS_ERR_WRONG_TYPE;
        return put_long(b, x->u.l);
    case AVRO_ARRAY:
    case AVRO_MAP: {
        bool map = t == AVRO_MAP;
        if (s->kids[0]->t != AVRO_STRING)
            return DS_ERR_WRONG_TYPE;
        if (x->n && (e = put_long(b, (int64_t)x->n)))
            return e;
        for (size_t i = 0; i < x->n; i++) {
            if (map && (e = put_bytes(b, x->u.kv[i].key, strlen(x->u.kv[i].key))))
                return e;
            const char *v = map ? x->u.kv[i].value : x->u.arr[i];
            if ((e = put_bytes(b, v, strlen(v))))
                return e;
        }
        return put_long(b, 0);
    }
    default:
        return DS_ERR_WRONG_TYPE;
    }
}

ds_err_t ds_avro_enc_finish(ds_avro_enc_t *e, ds_buf_t *out) {
    if (e->bad)
        return DS_ERR_INVAL;
    size_t start = out->len;
    unsigned char hdr[5] = {0, (unsigned char)((uint32_t)e->id >> 24),
                            (unsigned char)((uint32_t)e->id >> 16),
                            (unsigned char)((uint32_t)e->id >> 8), (unsigned char)e->id};
    ds_err_t err = ds_buf_append(out, hdr, sizeof(hdr));
    for (size_t i = 0; !err && i < e->nfields; i++)
        err = put_value(out, e->plan->kids[i], &e->slot[i]);
    if (err) {
        out->len = start;
        return err == DS_ERR_LIMIT_EXCEEDED ? err : DS_ERR_INVAL;
    }
    return DS_ERR_OK;
}
