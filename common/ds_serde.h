/*
 * ds_serde.h — Confluent-framed Avro: schema registry cache, framing,
 * hostile-input checks, decode with the writer schema, encode.
 *
 * Framing: byte 0 = 0x00, bytes 1-4 = big-endian schema id, then Avro
 * binary.  Decoding never uses avro-c's resolved reader (broken in 1.11.1,
 * PITFALLS): the payload is read with the writer schema and the caller
 * projects fields by name.  Every payload is first walked against the
 * writer schema without allocating: truncated strings and count bombs are
 * refused up front (avro-c leaks on them), and the walk indexes the fields
 * for the in-place reader (ds_serde_read).
 *
 * A registry is single-threaded (avro-c is not thread-safe): one per thread.
 */
#ifndef DS_SERDE_H
#define DS_SERDE_H

#include <avro.h>
#include <stdbool.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_err.h"

typedef struct ds_registry ds_registry_t;

/** Fetch the JSON text of schema `id` (malloc'ed into *json) on a cache
 *  miss; DS_ERR_UNKNOWN_SCHEMA when the registry has none, DS_ERR_IO when
 *  it did not answer (ds_serde_read/decode then return DS_ERR_IO, not a
 *  DLQ code: the record is to be tried again later). */
typedef ds_err_t (*ds_registry_fetch_fn)(void *opaque, int32_t id, char **json, char *errstr,
                                         size_t errstr_size);

/** Install the capped avro-c allocator (once, before any avro object). */
void ds_serde_init(size_t max_alloc);

/** An empty registry (schemas come from ds_registry_add_json and the
 *  fetcher).  NULL when out of memory. */
ds_registry_t *ds_registry_new(void);
/** A registry holding every `<id>-<Name>.avsc` of dir.  NULL + errstr. */
ds_registry_t *ds_registry_new_dir(const char *dir, char *errstr, size_t errstr_size);
/** Add schema `id` from JSON text. */
ds_err_t ds_registry_add_json(ds_registry_t *r, int32_t id, const char *json, char *errstr,
                              size_t errstr_size) DS_WUR;
/** Ask `fn` for ids not in the cache (a Schema Registry client). */
void ds_registry_set_fetcher(ds_registry_t *r, ds_registry_fetch_fn fn, void *opaque);
void ds_registry_destroy(ds_registry_t *r);

/** The cached schema of id (fetching it when needed); NULL when unknown. */
avro_schema_t ds_registry_schema(ds_registry_t *r, int32_t id);

/** Split a framed message. */
ds_err_t ds_serde_unframe(const void *buf, size_t len, int32_t *id, const void **payload,
                          size_t *plen) DS_WUR;

/** Decode a framed message with its writer schema into the registry's
 *  reusable value for that id (valid until the next decode of that id). */
ds_err_t ds_serde_decode(ds_registry_t *r, const void *buf, size_t len, avro_value_t **out,
                         char *detail, size_t detail_size) DS_WUR;

/* ---- direct reading and writing (the hot path) ------------------------------
 *
 * avro-c's generic values allocate for every string and union branch they
 * read (15 calls to malloc per MarketingEvent, measured with
 * `bench/run.sh mallocs`).  The hot path therefore reads the bytes in place:
 * ds_serde_read() checks a framed payload against its writer schema (the
 * same walk as above) and returns where each top-level field's value starts;
 * the accessors below decode a value from there.  Strings point into the
 * message.  avro-c still parses the schemas and is the reference the tests
 * check our bytes against. */

/* A schema compiled once per registry entry for the walks (avro-c's
 * accessors look record fields and union branches up in hash tables). */
typedef struct ds_avro_plan ds_avro_plan_t;

typedef struct ds_avro_val {
    avro_schema_t schema; /* unions unwrapped, links followed; never a union */
    const ds_avro_plan_t *plan; /* the same, compiled */
    const unsigned char *p, *end;
} ds_avro_val_t;

typedef struct ds_avro_rec {
    avro_schema_t schema; /* the writer's top-level schema */
    const ds_avro_plan_t *plan;
    const unsigned char *const *pos; /* start of each field's value */
    size_t nfields;
    const unsigned char *end;
    size_t hint; /* next field index to try first */
} ds_avro_rec_t;

/** Check a framed message against its writer schema and index its
 *  top-level fields (valid until the next read with this registry and while
 *  buf lives). */
ds_err_t ds_serde_read(ds_registry_t *r, const void *buf, size_t len, ds_avro_rec_t *out,
                       char *detail, size_t detail_size) DS_WUR;

/** Field `name` of the record; false when the writer has no such field or
 *  its value is null. */
bool ds_avro_field(ds_avro_rec_t *rec, const char *name, ds_avro_val_t *out);
/** int or long. */
ds_err_t ds_avro_long(const ds_avro_val_t *v, int64_t *out) DS_WUR;
/** float or double, and int or long promoted (Avro resolution). */
ds_err_t ds_avro_double(const ds_avro_val_t *v, double *out) DS_WUR;
/** string or bytes, in place (not NUL-terminated). */
ds_err_t ds_avro_string(const ds_avro_val_t *v, const char **s, size_t *len) DS_WUR;
/** An enum's symbol (or a string's text, not NUL-terminated). */
ds_err_t ds_avro_symbol(const ds_avro_val_t *v, const char **s, size_t *len) DS_WUR;

/** Items of an array or entries of a map, in order. */
typedef struct ds_avro_iter {
    avro_schema_t items;
    const ds_avro_plan_t *items_plan;
    bool is_map;
    const unsigned char *p, *end;
    int64_t left; /* items left in the current block */
} ds_avro_iter_t;
/** Start iterating v (an array or map); *count is the number of items. */
ds_err_t ds_avro_iter_init(const ds_avro_val_t *v, ds_avro_iter_t *it, size_t *count) DS_WUR;
/** The next item (and key for a map); 0 at the end, 1 for an item, -1 on a
 *  malformed value. */
int ds_avro_iter_next(ds_avro_iter_t *it, const char **key, size_t *key_len,
                      ds_avro_val_t *item);

/* Writing: set the fields of an output record by name, in any order, then
 * ds_avro_enc_finish() writes them in the schema's order with the schema's
 * types (a union takes null for an unset/NULL value, else the first branch
 * of the value's kind).  Values are referenced, not copied, until finish. */
#define DS_AVRO_ENC_FIELDS 32
typedef struct ds_avro_kv {
    const char *key;
    const char *value;
} ds_avro_kv_t;
typedef struct ds_avro_slot {
    int kind;
    union {
        const char *s;
        int64_t l;
        double d;
        const char *const *arr;
        const ds_avro_kv_t *kv;
    } u;
    size_t n;
} ds_avro_slot_t;
typedef struct ds_avro_enc {
    avro_schema_t schema;
    const ds_avro_plan_t *plan;
    int32_t id;
    size_t nfields, hint;
    const char *bad; /* the first field that could not be set */
    ds_avro_slot_t slot[DS_AVRO_ENC_FIELDS];
} ds_avro_enc_t;

ds_err_t ds_avro_enc_begin(ds_registry_t *r, int32_t id, ds_avro_enc_t *e) DS_WUR;
/** s NULL: null. */
void ds_avro_enc_str(ds_avro_enc_t *e, const char *name, const char *s);
void ds_avro_enc_long(ds_avro_enc_t *e, const char *name, int64_t v);
void ds_avro_enc_null(ds_avro_enc_t *e, const char *name);
void ds_avro_enc_double(ds_avro_enc_t *e, const char *name, double v);
/** The symbol's index in the schema's enum; negative: null. */
void ds_avro_enc_enum(ds_avro_enc_t *e, const char *name, int idx);
void ds_avro_enc_str_array(ds_avro_enc_t *e, const char *name, const char *const *v, size_t n);
/** A map of strings; skipped when the schema has no such field. */
void ds_avro_enc_str_map(ds_avro_enc_t *e, const char *name, const ds_avro_kv_t *kv, size_t n);
/** Append the framed record to out. */
ds_err_t ds_avro_enc_finish(ds_avro_enc_t *e, ds_buf_t *out) DS_WUR;

/* ---- avro-c generic values (tests and tools: the reference encoder) ------ */

/** A reusable, reset value of schema `id` to fill for encoding. */
ds_err_t ds_serde_value(ds_registry_t *r, int32_t id, avro_value_t **out) DS_WUR;
/** Append the framed encoding of v (schema id) to out. */
ds_err_t ds_serde_encode(int32_t id, avro_value_t *v, ds_buf_t *out) DS_WUR;

#endif
