/*
 * codec.h — the records of events.h to and from Confluent-framed Avro.
 *
 * Decoding finds the writer schema by the message's id in a registry
 * (ds_registry.h) and projects fields by name (codec.c says how missing,
 * null, unknown and mistyped fields are treated); every failure is a DLQ
 * code (ds_err_is_dlq) with a one-line reason, except DS_ERR_IO: the
 * Schema Registry did not answer, and the message is to be tried again.
 * Encoding writes an output with the schema id configured for it.
 *
 * Cost: a decode is O(bytes of the message) and allocates only in the
 * caller's arena; an encode is O(fields + bytes).  A codec borrows its
 * registry, which is single-threaded: one codec per thread.
 */
#ifndef DS_CODEC_H
#define DS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_err.h"
#include "ds_registry.h"
#include "events.h"

typedef struct ds_codec ds_codec_t;

typedef struct ds_codec_ids {
    int32_t marketing_event, crm_event, lead_score, account_score, deal_alert;
} ds_codec_ids_t;
/** The fixed id map of the embedded registry (schemas/): 1..5 in the order
 *  of the fields above. */
extern const ds_codec_ids_t ds_codec_default_ids;

/** `reg` is borrowed and must outlive the codec.  NULL on error (errstr).
 *  Output ids must be in the registry, except negative ones: not known yet
 *  (set with ds_codec_set_ids before encoding that output). */
ds_codec_t *ds_codec_new(ds_registry_t *reg, const ds_codec_ids_t *ids, char *errstr,
                         size_t errstr_size);
/** Replace the ids (same rule as ds_codec_new). */
ds_err_t ds_codec_set_ids(ds_codec_t *c, const ds_codec_ids_t *ids, char *errstr,
                          size_t errstr_size) DS_WUR;
/** NULL is accepted. */
void ds_codec_destroy(ds_codec_t *c);

/* Decoders: strings/arrays of *out live in `arena` until its reset.
 * On failure return a DLQ code (or DS_ERR_IO) and write a one-line reason
 * to detail. */
ds_err_t ds_codec_decode_ma(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                            ds_ma_event_t *out, char *detail, size_t detail_size) DS_WUR;
ds_err_t ds_codec_decode_crm(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                             ds_crm_event_t *out, char *detail, size_t detail_size) DS_WUR;
ds_err_t ds_codec_decode_lead_score(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                                    ds_lead_score_t *out, char *detail, size_t detail_size) DS_WUR;
ds_err_t ds_codec_decode_account_score(ds_codec_t *c, const void *buf, size_t len,
                                       ds_arena_t *arena, ds_account_score_t *out, char *detail,
                                       size_t detail_size) DS_WUR;
ds_err_t ds_codec_decode_deal_alert(ds_codec_t *c, const void *buf, size_t len, ds_arena_t *arena,
                                    ds_deal_alert_t *out, char *detail, size_t detail_size) DS_WUR;

/* Encoders: append the framed record (magic, id, Avro) to out (not reset).
 * On failure out is as it was. */
ds_err_t ds_codec_encode_ma(ds_codec_t *c, const ds_ma_event_t *ev, ds_buf_t *out) DS_WUR;
ds_err_t ds_codec_encode_crm(ds_codec_t *c, const ds_crm_event_t *ev, ds_buf_t *out) DS_WUR;
ds_err_t ds_codec_encode_lead_score(ds_codec_t *c, const ds_lead_score_t *s, ds_buf_t *out) DS_WUR;
ds_err_t ds_codec_encode_account_score(ds_codec_t *c, const ds_account_score_t *s,
                                       ds_buf_t *out) DS_WUR;
ds_err_t ds_codec_encode_deal_alert(ds_codec_t *c, const ds_deal_alert_t *a, ds_buf_t *out) DS_WUR;

/* An encoder above that takes its record untyped. */
typedef ds_err_t (*ds_codec_encoder_t)(ds_codec_t *c, const void *record, ds_buf_t *out);
/* The encoder of the record named `record` ("LeadScore": a ds_lead_score_t,
 * "AccountScore": a ds_account_score_t, "DealAlert": a ds_deal_alert_t);
 * NULL for another name. */
ds_codec_encoder_t ds_codec_encoder(const char *record);

#endif
