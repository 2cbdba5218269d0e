/*
 * dlq.c — DLQ records, their headers, counting and rate-limited warnings
 * (dlq.h).
 *
 * Nothing here produces: the worker queues a DLQ record as an output of
 * the batch (so it is acknowledged, and its offset stored, like any
 * other) and asks for its headers when it is produced.  Keys and ids are
 * shown in details and logs as at most 96 bytes of printable ASCII
 * (anything else as '?'): they come from the network.
 */
#include "dlq.h"

#include <stdio.h>
#include <string.h>

_Static_assert(DS_ERR_WRONG_PARTITION + 1 == DS_ERR__COUNT, "the DLQ codes end ds_err.h's list");

/* dlq_records{worker,[thread,]reason=code}, created on the first call */
static ds_counter_t *series(const ds_dlq_t *d, ds_err_t code) {
    char labels[160];
    snprintf(labels, sizeof(labels), "%s,reason=\"%s\"", d->labels, ds_err2str(code));
    return ds_metrics_counter(d->metrics, "dlq_records", "Input records sent to the DLQ, by reason",
                              labels);
}

void ds_dlq_init(ds_dlq_t *d, const char *name, const char *labels, const char *src_topic,
                 ds_metrics_t *metrics) {
    memset(d, 0, sizeof(*d));
    d->name = name;
    d->labels = labels;
    d->src_topic = src_topic;
    d->metrics = metrics;
    snprintf(d->topic, sizeof(d->topic), "%s.dlq", src_topic);
    /* every code's series from the start, at 0: a dashboard's rate() or
     * alert on it has a series before the first bad record */
    for (int code = DS_ERR_BAD_MAGIC; metrics && code <= DS_ERR_WRONG_PARTITION; code++)
        series(d, (ds_err_t)code);
}

rd_kafka_headers_t *ds_dlq_headers(const ds_dlq_t *d, const rd_kafka_message_t *m, ds_err_t code,
                                   const char *detail) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(5);
    char part[16], off[32];
    snprintf(part, sizeof(part), "%d", (int)m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    const char *name = ds_err2str(code);
    rd_kafka_header_add(h, "dealsignal.error", -1, name, -1);
    rd_kafka_header_add(h, "dealsignal.detail", -1, detail ? detail : name, -1);
    rd_kafka_header_add(h, "dealsignal.source.topic", -1, d->src_topic, -1);
    rd_kafka_header_add(h, "dealsignal.source.partition", -1, part, -1);
    rd_kafka_header_add(h, "dealsignal.source.offset", -1, off, -1);
    return h;
}

void ds_dlq_count(ds_dlq_t *d, ds_err_t code) {
    if (!d->metrics)
        return;
    ds_counter_t *c = series(d, code);
    if (c)
        ds_counter_add(c, 1);
}

void ds_dlq_warn(ds_dlq_t *d, const rd_kafka_message_t *m, ds_err_t code, const char *detail) {
    ds_log_rl(&d->rl_msg, 2000, DS_LOG_WARN, d->name,
              "bad record to DLQ topic=%s partition=%d offset=%lld error=%s detail=%s",
              d->src_topic, (int)m->partition, (long long)m->offset, ds_err2str(code), detail);
}

/* `len` bytes of p as text for a log line or a DLQ detail: at most 96
 * bytes, other than printable ASCII shown as '?'. */
static void printable(const void *p, size_t len, char *out, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < len && i < 96 && o + 1 < n; i++) {
        unsigned char c = ((const unsigned char *)p)[i];
        out[o++] = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
    }
    out[o] = '\0';
}

/* A record must be keyed by its unit's id: only then do all the records of
 * one unit share a partition, and so one owner that applies them in order
 * and one checkpoint that describes them. */
ds_err_t ds_dlq_check_key(ds_dlq_t *d, const rd_kafka_message_t *m, const char *id,
                          const char *id_name, const char *key_doc, char *detail,
                          size_t detail_size) {
    size_t len = id ? strlen(id) : 0;
    if (id && len == m->key_len && !memcmp(id, m->key, len))
        return DS_ERR_OK;
    char key[100], want[100];
    printable(m->key, m->key_len, key, sizeof(key));
    printable(id ? id : "", len, want, sizeof(want));
    snprintf(detail, detail_size, "key \"%s\" is not the record's %s \"%s\" (expected key)", key,
             id_name, want);
    ds_log_rl(&d->rl_key, 10000, DS_LOG_WARN, d->name,
              "record keyed by another id than its unit's, sent to the DLQ (wrong_key): "
              "topic=%s partition=%d offset=%lld key=\"%s\" expected=\"%s\" (%s). "
              "Fix the producer: key every %s record by %s, so that one unit's records share "
              "a partition; or re-key the topic with `dealsignal repartition` "
              "(docs/INPUT-KEYS.md)",
              d->src_topic, (int)m->partition, (long long)m->offset, key, want, id_name,
              d->src_topic, key_doc);
    return DS_ERR_WRONG_KEY;
}

/* Its unit's records reach two partitions (two producers with different
 * partitioners, or a topic whose partition count changed): two owners
 * could apply them at once, and one checkpoint cannot describe both. */
void ds_dlq_wrong_partition(ds_dlq_t *d, const rd_kafka_message_t *m, int32_t bound, char *detail,
                            size_t detail_size) {
    char key[100];
    printable(m->key, m->key_len, key, sizeof(key));
    snprintf(detail, detail_size,
             "unit \"%s\" is bound to partition %d by its checkpoint; this record is on "
             "partition %d",
             key, (int)bound, (int)m->partition);
    ds_log_rl(&d->rl_key, 10000, DS_LOG_WARN, d->name,
              "record on another partition than its unit's, sent to the DLQ (wrong_partition): "
              "topic=%s partition=%d offset=%lld key=\"%s\" unit_partition=%d. Every producer "
              "of %s must use the same partitioner (e.g. -X partitioner=murmur2_random for "
              "librdkafka beside Java producers); after a change of the partition count, "
              "rebuild the state by replay (docs/INPUT-KEYS.md)",
              d->src_topic, (int)m->partition, (long long)m->offset, key, (int)bound, d->src_topic);
}
