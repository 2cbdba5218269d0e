/*
 * avro_ref.h — avro-c's generic values as the reference Avro reader and
 * writer of the tests.
 *
 * The product reads and writes Avro bytes itself (ds_avro_dec.h,
 * ds_avro_enc.h); the tests check those bytes against what avro-c's own
 * generic writer makes of the same record, and build writer-side records
 * (other schemas, evolved schemas) with it.  Test code only: it allocates
 * per string and union branch, which the product avoids.
 *
 * One reusable value per schema id (reset on each ref_avro_value and
 * ref_avro_decode of that id; valid until the next one).  A context
 * borrows its registry; single-threaded, as avro-c is.
 */
#ifndef AVRO_REF_H
#define AVRO_REF_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_err.h"
#include "ds_registry.h"

typedef struct ref_avro ref_avro_t;

/** A context over reg (borrowed; it must outlive the context); NULL when
 *  out of memory. */
ref_avro_t *ref_avro_new(ds_registry_t *reg);
/** NULL is accepted. */
void ref_avro_destroy(ref_avro_t *g);

/** The reset value of schema `id`, to fill and encode. */
ds_err_t ref_avro_value(ref_avro_t *g, int32_t id, avro_value_t **out) DS_WUR;
/** Decode a framed message with its writer schema into that schema's
 *  value, after the same check of the bytes as ds_avro_dec_read (the same
 *  error codes and detail); avro-c's read failing is DS_ERR_UNDECODABLE. */
ds_err_t ref_avro_decode(ref_avro_t *g, const void *buf, size_t len, avro_value_t **out,
                         char *detail, size_t detail_size) DS_WUR;
/** Append the framed encoding of v (schema id) to out. */
ds_err_t ref_avro_encode(int32_t id, avro_value_t *v, ds_buf_t *out) DS_WUR;

#endif
