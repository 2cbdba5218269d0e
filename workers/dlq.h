/*
 * dlq.h — the dead-letter queue of a worker's input topic: what goes there,
 * what its records say and how it is counted and warned about.
 *
 * A record that cannot be applied (null value, empty key, over
 * max_message_bytes, undecodable, keyed by another id than its unit's, or
 * on another partition than the one its unit is bound to) is produced to
 * "<topic>.dlq" with its original key and value and the headers
 * dealsignal.error (the DLQ code), dealsignal.detail and
 * dealsignal.source.{topic,partition,offset}; it is counted in
 * dlq_records{worker,[thread,]reason}, and a warning says why (rate-limited: a
 * producer that sends many bad records does not flood the log).  The
 * warnings about keys and partitions also say how to fix the producer.
 */
#ifndef DS_DLQ_H
#define DS_DLQ_H

#include <librdkafka/rdkafka.h>

#include "ds_err.h"
#include "ds_log.h"
#include "ds_metrics.h"

typedef struct ds_dlq {
    const char *name;      /* the worker's: logs */
    const char *labels;    /* the worker's metric labels (worker.h) */
    const char *src_topic; /* the input topic (borrowed) */
    char topic[300];       /* "<src_topic>.dlq" */
    ds_metrics_t *metrics; /* may be NULL */
    ds_log_rl_t rl_msg, rl_key;
} ds_dlq_t;

/** The DLQ of src_topic (name, labels, src_topic and metrics borrowed). */
void ds_dlq_init(ds_dlq_t *d, const char *name, const char *labels, const char *src_topic,
                 ds_metrics_t *metrics);

/** The headers of m's DLQ record (owned by the caller, then by the
 *  producer).  detail NULL: the code's name. */
rd_kafka_headers_t *ds_dlq_headers(const ds_dlq_t *d, const rd_kafka_message_t *m, ds_err_t code,
                                   const char *detail);

/** One more record sent to the DLQ for `code`. */
void ds_dlq_count(ds_dlq_t *d, ds_err_t code);

/** A record that goes to the DLQ for `code` (not wrong_key: see
 *  ds_dlq_check_key) is warned about. */
void ds_dlq_warn(ds_dlq_t *d, const rd_kafka_message_t *m, ds_err_t code, const char *detail);

/** DS_ERR_OK when m's key is its unit's id `id` (from the field id_name;
 *  NULL: none); else DS_ERR_WRONG_KEY with detail, and a warning that says
 *  how the topic must be keyed (key_doc). */
ds_err_t ds_dlq_check_key(ds_dlq_t *d, const rd_kafka_message_t *m, const char *id,
                          const char *id_name, const char *key_doc, char *detail,
                          size_t detail_size);

/** m's unit is bound to partition `bound` by its checkpoint: the detail of
 *  its DLQ record (wrong_partition), and a warning. */
void ds_dlq_wrong_partition(ds_dlq_t *d, const rd_kafka_message_t *m, int32_t bound, char *detail,
                            size_t detail_size);

#endif
