/*
 * ds_serde.h — Confluent-framed Avro: schema registry cache, framing,
 * hostile-input checks, decode with the writer schema, encode.
 *
 * Framing: byte 0 = 0x00, bytes 1-4 = big-endian schema id, then Avro
 * binary.  Decoding never uses avro-c's resolved reader (broken in 1.11.1,
 * PITFALLS): the value is read with the writer schema and the caller
 * projects fields by name.  Before avro-c sees a payload, ds_serde_check()
 * walks it against the writer schema without allocating: truncated
 * strings and count bombs are refused up front (avro-c leaks on them).
 *
 * A registry is single-threaded (avro-c is not thread-safe): one per thread.
 */
#ifndef DS_SERDE_H
#define DS_SERDE_H

#include <avro.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_err.h"

typedef struct ds_registry ds_registry_t;

/** Fetch the JSON text of schema `id` (malloc'ed into *json) on a cache
 *  miss; DS_ERR_UNKNOWN_SCHEMA when the registry has none. */
typedef ds_err_t (*ds_registry_fetch_fn)(void *opaque, int32_t id, char **json, char *errstr,
                                         size_t errstr_size);

/** Install the capped avro-c allocator (once, before any avro object). */
void ds_serde_init(size_t max_alloc);

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

/** A reusable, reset value of schema `id` to fill for encoding. */
ds_err_t ds_serde_value(ds_registry_t *r, int32_t id, avro_value_t **out) DS_WUR;
/** Append the framed encoding of v (schema id) to out. */
ds_err_t ds_serde_encode(int32_t id, avro_value_t *v, ds_buf_t *out) DS_WUR;

#endif
