/*
 * ds_registry_http.h — Confluent Schema Registry client (fetch by id).
 *
 * One call, GET {base_url}/schemas/ids/{id}, with libcurl; the answer
 * {"schema": "<schema JSON as a string>", ...} is parsed with jansson.
 * The schema cache lives in ds_serde.c, which calls this on a miss.
 */
#ifndef DS_REGISTRY_HTTP_H
#define DS_REGISTRY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "ds_err.h"

/** Fetches the writer schema with `id` from the registry at base_url
 *  ("http[s]://[user:password@]host[:port][/path]", trailing '/' allowed;
 *  percent-encoded userinfo becomes HTTP basic auth and never appears in
 *  errstr or logs).  timeout_ms bounds the whole request (<= 0: 10 s).
 *
 *  On DS_ERR_OK *schema_json is the schema text, malloc'ed, NUL-terminated;
 *  the caller frees it.  Otherwise *schema_json is NULL and errstr says why:
 *    DS_ERR_UNKNOWN_SCHEMA  the registry answered 404 (no such id)
 *    DS_ERR_WRONG_TYPE      the schema is not Avro (schemaType PROTOBUF/JSON)
 *    DS_ERR_IO              network error or timeout, any other HTTP status,
 *                           or an answer that is not the expected JSON
 *    DS_ERR_INVAL           malformed base_url, negative id, NULL arguments
 *    DS_ERR_NOMEM
 *  Thread-safe (one curl easy handle per call); blocks up to timeout_ms. */
ds_err_t ds_schema_registry_fetch(const char *base_url, int32_t id, long timeout_ms,
                                  char **schema_json, char *errstr, size_t errstr_size) DS_WUR;

#endif
