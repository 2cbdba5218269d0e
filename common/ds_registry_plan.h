/*
 * ds_registry_plan.h — the registry's compiled schemas, for the reader
 * (ds_avro_dec.c) and the writer (ds_avro_enc.c) only: not an API.
 *
 * A plan node stands for one schema type with links followed (a union is
 * a node, never a link); a named type met again, as in a recursive schema,
 * is the same node, so a plan is a graph and its walks bound their depth.
 * Nodes live as long as their registry entry.
 */
#ifndef DS_REGISTRY_PLAN_H
#define DS_REGISTRY_PLAN_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ds_registry.h"

struct ds_registry_plan {
    avro_type_t t;
    avro_schema_t s;                 /* links followed */
    int64_t n;                       /* fields, branches, symbols or fixed size */
    const ds_registry_plan_t **kids; /* fields, branches, or [0] items/values */
    const char **names;              /* a record's field names */
};

/* What the reader and the writer use of a cached schema. */
typedef struct ds_registry_entry {
    avro_schema_t schema;
    const ds_registry_plan_t *plan;
    /* a top-level record's field count, and scratch where the reader
     * notes where each field of the last record it read starts */
    size_t nfields;
    const unsigned char **pos;
} ds_registry_entry_t;

/* The entry of id, fetched on a miss.  NULL when unknown; then *io_err
 * (when io_err is not NULL) is the fetcher's error text if it did not
 * answer (DS_ERR_IO: not the record's fault), else NULL.  The text lives
 * until the next lookup. */
ds_registry_entry_t *ds_registry_entry(ds_registry_t *r, int32_t id, const char **io_err);

/* Index of field `name` of record plan `rec` (n fields), trying `hint`
 * first (readers and writers usually go in the schema's order); -1 when
 * absent. */
static inline int ds_registry_plan_field(const ds_registry_plan_t *rec, size_t n, size_t hint,
                                         const char *name) {
    if (hint < n && !strcmp(rec->names[hint], name))
        return (int)hint;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rec->names[i], name))
            return (int)i;
    return -1;
}

#endif
