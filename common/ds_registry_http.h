/*
 * ds_registry_http.h — Confluent Schema Registry client.
 *
 * The calls dealsignal makes, with libcurl; answers are parsed with
 * jansson:
 *   GET  /schemas/ids/{id}          the writer schema of a record
 *   POST /subjects/{s}/versions     register a schema under a subject
 *   POST /subjects/{s}              look a schema up under a subject
 *   GET  /config/{s}, GET /config   the compatibility level (for messages)
 * The schema cache lives in ds_registry.c, which calls fetch on a miss.
 *
 * Every call takes the base URL "http[s]://[user:password@]host[:port]
 * [/path]" (trailing '/' allowed); percent-encoded userinfo becomes HTTP
 * basic auth and never appears in errstr or logs.  timeout_ms bounds each
 * request (<= 0: 10 s).  Each call is thread-safe (one curl easy handle
 * per call) and blocks up to timeout_ms per request it makes.
 *
 * The error classes (errstr says what happened and what to do):
 *   DS_ERR_IO        transient: no answer, a timeout, HTTP 5xx or 429, an
 *                    answer that is not the expected JSON; retry later
 *   DS_ERR_CONFIG    the registry refused for good: 401/403 (credentials),
 *                    409 (incompatible with the subject's compatibility
 *                    level), 422 (invalid schema), any other 4xx
 *   DS_ERR_NOTFOUND  lookup only: the subject (40401) or the schema under
 *                    it (40403) is not there
 *   DS_ERR_INVAL     malformed base_url, bad arguments
 *   DS_ERR_NOMEM
 */
#ifndef DS_REGISTRY_HTTP_H
#define DS_REGISTRY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_err.h"

/** Fetches the writer schema with `id`.  On DS_ERR_OK *schema_json is the
 *  schema text, malloc'ed, NUL-terminated; the caller frees it.  Otherwise
 *  *schema_json is NULL and:
 *    DS_ERR_UNKNOWN_SCHEMA  the registry answered 404 (no such id)
 *    DS_ERR_WRONG_TYPE      the schema is not Avro (schemaType PROTOBUF/JSON)
 *    DS_ERR_IO              anything else that went wrong, 401/403 included:
 *                           on the decode path no registry fault may send a
 *                           record to the DLQ
 *    DS_ERR_INVAL, DS_ERR_NOMEM */
ds_err_t ds_registry_http_fetch(const char *base_url, int32_t id, long timeout_ms,
                                char **schema_json, char *errstr, size_t errstr_size) DS_WUR;

/** Registers the Avro schema `schema_json` under `subject` (POST
 *  /subjects/{subject}/versions) and sets *id to the id the registry
 *  gives it: the existing id when the same schema is registered already,
 *  a new version of the subject otherwise.  On 409 the message names the
 *  subject and its compatibility level (a second request asks for it). */
ds_err_t ds_registry_http_register(const char *base_url, const char *subject,
                                   const char *schema_json, long timeout_ms, int32_t *id,
                                   char *errstr, size_t errstr_size) DS_WUR;

/** Looks `schema_json` up under `subject` (POST /subjects/{subject}):
 *  *id and *version (may be NULL) of the registered schema, or
 *  DS_ERR_NOTFOUND. */
ds_err_t ds_registry_http_lookup(const char *base_url, const char *subject, const char *schema_json,
                                 long timeout_ms, int32_t *id, int32_t *version, char *errstr,
                                 size_t errstr_size) DS_WUR;

/** The compatibility level that applies to `subject`: its own (GET
 *  /config/{subject}; *own = true) or else the registry's global one (GET
 *  /config; *own = false).  level gets e.g. "BACKWARD". */
ds_err_t ds_registry_http_compatibility(const char *base_url, const char *subject, long timeout_ms,
                                        char *level, size_t level_size, bool *own, char *errstr,
                                        size_t errstr_size) DS_WUR;

#endif
