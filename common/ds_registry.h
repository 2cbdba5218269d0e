/*
 * ds_registry.h — the Avro schemas of Confluent-framed records, cached by
 * schema id.
 *
 * Each entry holds the schema as avro-c parsed it and its plan: the same
 * schema compiled once, when the entry is added, into plain nodes (type,
 * count, children, record field names) that the reader (ds_avro_dec.h)
 * and the writer (ds_avro_enc.h) follow instead of avro-c's hash-table
 * accessors.  avro-c only parses schema text; no record bytes go through
 * it.
 *
 * Schemas come from a directory of `<id>-<Name>.avsc` files, from JSON
 * text, or from a fetcher (the Schema Registry client, ds_registry_http.h)
 * that is asked for an id on every miss; what it returns is cached, a
 * failure is not.  Adding an id that is cached replaces its entry.
 *
 * Cost: a lookup is one hash probe; a miss with a fetcher is one blocking
 * fetch.  Memory: the schema and one plan node per distinct named or
 * anonymous type of it.  Not thread-safe (avro-c's schemas are not): one
 * registry per thread.
 */
#ifndef DS_REGISTRY_H
#define DS_REGISTRY_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_err.h"

typedef struct ds_registry ds_registry_t;

/* A schema compiled for the reader and the writer; opaque outside them. */
typedef struct ds_registry_plan ds_registry_plan_t;

/** Fetch the JSON text of schema `id` (malloc'ed into *json) on a cache
 *  miss; DS_ERR_UNKNOWN_SCHEMA when the registry has none, DS_ERR_IO when
 *  it did not answer (ds_avro_dec_read then returns DS_ERR_IO, not a DLQ
 *  code: the record is to be tried again later).  Called on the
 *  registry's thread. */
typedef ds_err_t (*ds_registry_fetch_fn)(void *opaque, int32_t id, char **json, char *errstr,
                                         size_t errstr_size);

/** Install avro-c's allocator that refuses any single allocation over
 *  max_alloc (at least 1 MiB; 0 keeps the current cap, 64 MiB at start).
 *  Process-wide: call from the main thread before any avro-c object is
 *  made; later calls only change the cap. */
void ds_registry_init(size_t max_alloc);

/** An empty registry (schemas come from ds_registry_add_json and the
 *  fetcher).  NULL when out of memory. */
ds_registry_t *ds_registry_new(void);
/** A registry holding every `<id>-<Name>.avsc` of dir (a relative dir is
 *  the working directory's).  NULL + errstr when dir cannot be read, holds
 *  no such file, or one of them is not a schema. */
ds_registry_t *ds_registry_new_dir(const char *dir, char *errstr, size_t errstr_size);
/** Add (or replace) schema `id` from JSON text. */
ds_err_t ds_registry_add_json(ds_registry_t *r, int32_t id, const char *json, char *errstr,
                              size_t errstr_size) DS_WUR;
/** Ask `fn` for ids not in the cache (opaque is borrowed). */
void ds_registry_set_fetcher(ds_registry_t *r, ds_registry_fetch_fn fn, void *opaque);
/** Frees every entry; NULL is accepted. */
void ds_registry_destroy(ds_registry_t *r);

/** The cached schema of id (fetching it when needed); NULL when unknown.
 *  Owned by the registry, valid until id is replaced or the registry is
 *  destroyed. */
avro_schema_t ds_registry_schema(ds_registry_t *r, int32_t id);

#endif
