/*
 * ds_avro_enc.h — writing one Confluent-framed Avro record straight to
 * bytes.
 *
 * The record's schema is the registry's for the id written (ds_registry.h).
 * Set its fields by name, in any order, then ds_avro_enc_finish() appends
 * the framing (0x00, the big-endian id) and every field in the schema's
 * order with the schema's types: a union takes null for a value that is
 * unset or NULL, else its first branch of the value's kind; a long is
 * written as the field's int or long, a double as its float or double.
 * Values are referenced, not copied, until finish.  The bytes are Avro's
 * binary encoding, the same as avro-c writes (the tests compare the two).
 *
 * Cost: O(fields + bytes written); no allocation beyond growing out.
 * An encoder lives on its caller's stack; the registry is single-threaded.
 */
#ifndef DS_AVRO_ENC_H
#define DS_AVRO_ENC_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_err.h"
#include "ds_kv.h"
#include "ds_registry.h"

/* Fields of a record the encoder can write, at most. */
#define DS_AVRO_ENC_FIELDS 32

/* One field's value, as set (the kind is private to ds_avro_enc.c). */
typedef struct ds_avro_enc_slot {
    int kind;
    union {
        const char *s;
        int64_t l;
        double d;
        const char *const *arr;
        const ds_kv_t *kv;
    } u;
    size_t n;
} ds_avro_enc_slot_t;

typedef struct ds_avro_enc {
    avro_schema_t schema;
    const ds_registry_plan_t *plan;
    int32_t id;
    size_t nfields, hint;
    const char *bad; /* the first field that could not be set */
    ds_avro_enc_slot_t slot[DS_AVRO_ENC_FIELDS];
} ds_avro_enc_t;

/** Start a record of schema `id`: DS_ERR_UNKNOWN_SCHEMA when the registry
 *  has no such id, or its schema is not a record of at most
 *  DS_AVRO_ENC_FIELDS fields. */
ds_err_t ds_avro_enc_begin(ds_registry_t *r, int32_t id, ds_avro_enc_t *e) DS_WUR;
/* Setters: a name the schema does not have makes finish fail
 * (DS_ERR_INVAL), except for ds_avro_enc_str_map. */
/** s NULL: null. */
void ds_avro_enc_str(ds_avro_enc_t *e, const char *name, const char *s);
void ds_avro_enc_long(ds_avro_enc_t *e, const char *name, int64_t v);
void ds_avro_enc_null(ds_avro_enc_t *e, const char *name);
void ds_avro_enc_double(ds_avro_enc_t *e, const char *name, double v);
/** The symbol's index in the schema's enum; negative: null. */
void ds_avro_enc_enum(ds_avro_enc_t *e, const char *name, int idx);
void ds_avro_enc_str_array(ds_avro_enc_t *e, const char *name, const char *const *v, size_t n);
/** A map of strings; skipped when the schema has no such field. */
void ds_avro_enc_str_map(ds_avro_enc_t *e, const char *name, const ds_kv_t *kv, size_t n);
/** Append the framed record to out.  On failure out is as it was, and:
 *  DS_ERR_LIMIT_EXCEEDED for a long out of an int field's range,
 *  DS_ERR_INVAL for an unknown field, a value that does not fit its
 *  field's type (an unset field that cannot be null) or no memory. */
ds_err_t ds_avro_enc_finish(ds_avro_enc_t *e, ds_buf_t *out) DS_WUR;

#endif
