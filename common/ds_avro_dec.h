/*
 * ds_avro_dec.h — reading Confluent-framed Avro in place.
 *
 * Framing: byte 0 = 0x00, bytes 1-4 = big-endian schema id, then the Avro
 * binary body.  A message is read with its writer schema, found by that id
 * in a registry (ds_registry.h); the caller projects fields by name, which
 * is how schema evolution is handled.  avro-c's resolved reader is not
 * used (the 1.11.1 one refuses a reader field that has a default and the
 * writer lacks, and slows down message after message with map fields),
 * and neither are its generic values (15 allocations per MarketingEvent:
 * one per string and union branch).
 *
 * ds_avro_dec_read() first walks the whole body against the writer
 * schema's plan without allocating: a truncated value, a union branch or
 * enum index out of range, nesting deeper than 64, trailing bytes, or an
 * array/map count beyond the bytes left or the item limit are refused
 * before any field is looked at.  The walk notes where each top-level
 * field starts; the accessors below then decode one value from there.
 * Strings point into the message and are not NUL-terminated.
 *
 * Cost: ds_avro_dec_read is O(bytes of the message); a field lookup is
 * O(fields of the record) by name, O(1) when asked in the writer's order.
 * Not thread-safe beyond its registry: one registry, one thread.
 */
#ifndef DS_AVRO_DEC_H
#define DS_AVRO_DEC_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_err.h"
#include "ds_registry.h"

/** One value of a read message (never a union: unions are unwrapped). */
typedef struct ds_avro_dec_val {
    avro_schema_t schema; /* the writer's type, links followed */
    const ds_registry_plan_t *plan;
    const unsigned char *p, *end;
} ds_avro_dec_val_t;

/** A read message: its writer schema and where its fields start. */
typedef struct ds_avro_dec_rec {
    avro_schema_t schema; /* the writer's top-level schema */
    const ds_registry_plan_t *plan;
    const unsigned char *const *pos; /* start of each field's value */
    size_t nfields;
    const unsigned char *end;
    size_t hint; /* next field index to try first */
} ds_avro_dec_rec_t;

/** Split a framed message into its schema id and Avro body (pointing into
 *  buf).  DS_ERR_BAD_MAGIC when it is shorter than 5 bytes or byte 0 is
 *  not 0. */
ds_err_t ds_avro_dec_unframe(const void *buf, size_t len, int32_t *id, const void **payload,
                             size_t *plen) DS_WUR;

/** Check a framed message against its writer schema and index its
 *  top-level fields.  *out is valid while buf lives and until the next
 *  read with this registry.  Errors (a one-line reason in detail):
 *  DS_ERR_BAD_MAGIC, DS_ERR_UNKNOWN_SCHEMA, DS_ERR_UNDECODABLE,
 *  DS_ERR_LIMIT_EXCEEDED (DLQ codes), or DS_ERR_IO when the registry's
 *  fetcher did not answer (try the message again later). */
ds_err_t ds_avro_dec_read(ds_registry_t *r, const void *buf, size_t len, ds_avro_dec_rec_t *out,
                          char *detail, size_t detail_size) DS_WUR;

/** Field `name` of the record; false when the writer has no such field or
 *  its value is null. */
bool ds_avro_dec_field(ds_avro_dec_rec_t *rec, const char *name, ds_avro_dec_val_t *out);
/** int or long. */
ds_err_t ds_avro_dec_long(const ds_avro_dec_val_t *v, int64_t *out) DS_WUR;
/** float or double, and int or long promoted (Avro resolution). */
ds_err_t ds_avro_dec_double(const ds_avro_dec_val_t *v, double *out) DS_WUR;
/** string or bytes, in place (not NUL-terminated). */
ds_err_t ds_avro_dec_string(const ds_avro_dec_val_t *v, const char **s, size_t *len) DS_WUR;
/** An enum's symbol (the schema's text, NUL-terminated) or a string's
 *  text (in place, not NUL-terminated). */
ds_err_t ds_avro_dec_symbol(const ds_avro_dec_val_t *v, const char **s, size_t *len) DS_WUR;

/** Items of an array or entries of a map, in order. */
typedef struct ds_avro_dec_iter {
    avro_schema_t items;
    const ds_registry_plan_t *items_plan;
    bool is_map;
    const unsigned char *p, *end;
    int64_t left; /* items left in the current block */
} ds_avro_dec_iter_t;
/** Start iterating v (an array or map); *count is the number of items
 *  (counted by stepping over them once). */
ds_err_t ds_avro_dec_iter_init(const ds_avro_dec_val_t *v, ds_avro_dec_iter_t *it,
                               size_t *count) DS_WUR;
/** The next item (and key, in place, for a map; key may be NULL); 0 at the
 *  end, 1 for an item, -1 on a malformed value. */
int ds_avro_dec_iter_next(ds_avro_dec_iter_t *it, const char **key, size_t *key_len,
                          ds_avro_dec_val_t *item);

#endif
