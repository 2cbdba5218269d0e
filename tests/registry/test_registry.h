/*
 * test_registry.h — a Schema Registry for tests that speaks Confluent's
 * REST API (v1, application/vnd.schemaregistry.v1+json), in memory, on
 * loopback, with libmicrohttpd.
 *
 * What it does as Confluent's does: ids are global and chosen by the
 * registry (from a random start, never 1-5 by default); registering a
 * schema identical to one of the subject's versions returns its id
 * without a new version, and one identical to a schema under another
 * subject reuses that schema's id; a schema that cannot read (BACKWARD),
 * be read by (FORWARD) or both (FULL) the subject's latest version (all
 * versions for *_TRANSITIVE) is refused with 409; lookups answer 404 with
 * 40401 (no subject) or 40403 (no such schema under it); GET /config/{s}
 * answers 40408 when the subject has no level of its own.  "Identical"
 * means equal once parsed as JSON (whitespace and key order aside).
 *
 * Endpoints: GET /subjects, GET /subjects/{s}/versions,
 * GET /subjects/{s}/versions/{v|latest}, POST /subjects/{s}/versions,
 * POST /subjects/{s}, GET /schemas/ids/{id}, GET|PUT /config,
 * GET|PUT /config/{s}.  Only Avro schemas, no references, no deletes.
 *
 * For the tests: basic auth (every request needs it when set), answers of
 * 500 for the next N requests, a count of registrations.
 */
#ifndef DS_TEST_REGISTRY_H
#define DS_TEST_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ds_treg ds_treg_t;

typedef struct ds_treg_opts {
    int port;         /* 0: a free port */
    int32_t first_id; /* 0: random in [1000, 1000000) */
    const char *auth; /* "user:password" required, or NULL */
} ds_treg_opts_t;

/** Start serving on 127.0.0.1; NULL (errno-style message on stderr) when
 *  the port cannot be bound. */
ds_treg_t *ds_treg_start(const ds_treg_opts_t *opts);
int ds_treg_port(const ds_treg_t *r);
/** The next n requests answer HTTP 500 (error_code 50001). */
void ds_treg_fail_next(ds_treg_t *r, int n);
/** How many POST /subjects/{s}/versions it answered 200. */
int ds_treg_registrations(const ds_treg_t *r);
/** The id of the latest version under subject, -1 when none. */
int32_t ds_treg_latest_id(ds_treg_t *r, const char *subject);
/** Register directly (as POST /subjects/{s}/versions would); the id, or
 *  -409 when incompatible, -422 when invalid. */
int32_t ds_treg_register(ds_treg_t *r, const char *subject, const char *schema_json);
/** Set a subject's compatibility level (NULL subject: the global one). */
void ds_treg_set_level(ds_treg_t *r, const char *subject, const char *level);
void ds_treg_stop(ds_treg_t *r);

#endif
