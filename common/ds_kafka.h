/*
 * ds_kafka.h — thin helpers over librdkafka for our workers and tools.
 *
 * Consumers use the eager `range` assignor, manual offset store
 * (enable.auto.offset.store=false; we store offset+1 only after state and
 * outputs are safe) and auto-commit of stored offsets; one thread polls
 * with rd_kafka_consumer_poll(): librdkafka 2.0's batch consume calls can
 * lose or repeat messages when combined with pause/resume, seek or a
 * rebalance.
 * Producers are idempotent.  `kafka.*` settings pass through unchanged and
 * win over ours.  librdkafka's logs are routed into ds_log.
 */
#ifndef DS_KAFKA_H
#define DS_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "ds_config.h"
#include "ds_err.h"

/** What librdkafka's statistics say of the brokers: their responses
 *  received in all ("rx", summed over every broker connection, the group
 *  coordinator's included: it grows while any broker answers requests)
 *  and how many of them are in state UP. */
typedef struct ds_kafka_brokers {
    int64_t rx;
    int up, total;
} ds_kafka_brokers_t;

typedef struct ds_kafka_hooks {
    /* Called on the polling thread inside rd_kafka_consumer_poll() before
     * the assignment changes.  `revoked` must finish (or drop) the batch in
     * hand for those partitions before it returns. */
    void (*assigned)(void *opaque, const rd_kafka_topic_partition_list_t *parts);
    void (*revoked)(void *opaque, const rd_kafka_topic_partition_list_t *parts);
    /* librdkafka's statistics JSON (statistics.interval.ms, default 1000
     * for our consumers), on the polling thread; may be NULL. */
    void (*stats)(void *opaque, const char *json, size_t len);
    /* librdkafka's error events (RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN …), on
     * the polling thread; may be NULL (they are then logged). */
    void (*error)(void *opaque, int err, const char *reason);
    void *opaque;
    /* Set by ds_kafka_hooks_all_committed: the consumer is closing with
     * every offset it stored committed. */
    int all_committed;
} ds_kafka_hooks_t;

/** The consumer of h is closing and has committed every offset it stored
 *  (its last commit succeeded or found nothing new).  librdkafka commits
 *  the stored offsets once more when it unassigns the partitions, even
 *  those already committed; when another member of the group left at the
 *  same moment the coordinator refuses that repeat ("COMMITFAIL … Group
 *  rebalance in progress").  After this call such a refusal is logged at
 *  debug level: nothing was lost.  Any thread. */
void ds_kafka_hooks_all_committed(ds_kafka_hooks_t *h);

/** Delivery tracking for one batch of produced messages.  Updated by the
 *  delivery report callback, which runs inside rd_kafka_poll() on the
 *  producing thread. */
typedef struct ds_delivery {
    size_t outstanding;
    size_t delivered;
    size_t failed;
    rd_kafka_resp_err_t first_err;
} ds_delivery_t;

/** A consumer subscribed to `topics` (none when ntopics is 0: subscribe
 *  later).  NULL on error (errstr). */
rd_kafka_t *ds_kafka_consumer_new(const ds_config_t *cfg, const char *const *topics,
                                  size_t ntopics, const ds_kafka_hooks_t *hooks,
                                  char *errstr, size_t errstr_size);
/** Subscribe rk to `topics`; false with errstr on error. */
bool ds_kafka_consumer_subscribe(rd_kafka_t *rk, const char *const *topics, size_t ntopics,
                                 char *errstr, size_t errstr_size);
/** One partition of a topic in librdkafka's statistics. */
typedef struct ds_kafka_part_stats {
    int32_t partition;
    int64_t lag;             /* consumer_lag: high watermark minus committed; < 0 unknown */
    int64_t committed;       /* committed offset; < 0 none */
    int64_t app_offset;      /* after the last record handed to the application; < 0 none */
    int64_t next_offset;     /* the next offset the client fetches; < 0 none */
    int64_t hi_offset;       /* high watermark of the last fetch response; < 0 unknown */
    const char *fetch_state; /* librdkafka's name of it ("active", "none", ...) */
    bool fetching;           /* fetch_state neither "none" nor "stopped" */
} ds_kafka_part_stats_t;

/** Walk librdkafka's statistics JSON: call fn (may be NULL: no walk) for
 *  every partition of `topic` the client knows, assigned or not (an
 *  unassigned one is not `fetching`), and fill *brokers (may be NULL),
 *  from one parse of the JSON.  The high watermark comes from fetch
 *  responses: it goes stale while the partition is paused.  DS_ERR_INVAL
 *  when the JSON is not librdkafka's statistics. */
ds_err_t ds_kafka_stats_read(const char *json, size_t len, const char *topic,
                             void (*fn)(void *opaque, const ds_kafka_part_stats_t *p), void *opaque,
                             ds_kafka_brokers_t *brokers);

/** Seek each partition of `l` to its offset, without waiting for the
 *  seeks to finish: records fetched before are never handed over after
 *  it returns.  DS_ERR_INVAL for a partition the consumer does not know
 *  (its elem's err says which). */
ds_err_t ds_kafka_seek(rd_kafka_t *consumer, rd_kafka_topic_partition_list_t *l) DS_WUR;

/** An idempotent producer whose delivery reports feed ds_delivery_t. */
rd_kafka_t *ds_kafka_producer_new(const ds_config_t *cfg, char *errstr, size_t errstr_size);

/** Fetch the metadata of `topics` (their partitions' leaders) for rk, waiting
 *  at most timeout_ms in all, so that the first records produced to them
 *  are not held until librdkafka has looked the topics up.  False when a
 *  topic's metadata did not come (the producer looks it up later then). */
bool ds_kafka_warm_topics(rd_kafka_t *rk, const char *const *topics, size_t n, int timeout_ms);

/** A client of `type` made from conf, which it takes in every case (the
 *  caller has set its callbacks): the properties defs (ndefs of them,
 *  ours), then bootstrap.servers = brokers (when not NULL), then extra
 *  (`kafka.*` or -X pass-through, which win); librdkafka's logs go to
 *  ds_log.  NULL on error with errstr: "kafka.KEY: why" for a property
 *  librdkafka refuses (the value is never echoed), else rd_kafka_new's
 *  text after "what: " (what NULL: the text alone).  The workers'
 *  consumer and producer and the tools' handles are all made here. */
rd_kafka_t *ds_kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
                                const ds_kv_pair_t *defs, size_t ndefs, const char *brokers,
                                const ds_kv_pair_t *extra, size_t nextra, const char *what,
                                char *errstr, size_t errstr_size);

/** Make a producer conf feed ds_delivery_t counters (tools building their
 *  own producer with ds_kafka_client_new). */
void ds_kafka_conf_track_deliveries(rd_kafka_conf_t *conf);

/** Produce a copy of key/value to topic; `hdrs` (may be NULL) is owned by
 *  the message on success and destroyed by us on failure.  Waits (polling)
 *  while the local queue is full.  `d` counts the delivery. */
ds_err_t ds_kafka_produce(rd_kafka_t *p, const char *topic, const void *key, size_t klen,
                          const void *val, size_t vlen, rd_kafka_headers_t *hdrs,
                          ds_delivery_t *d) DS_WUR;
/** The same to a topic handle the caller keeps (rd_kafka_topic_new on the
 *  producer): no lookup of the topic by name for each message. */
ds_err_t ds_kafka_produce_rkt(rd_kafka_t *p, rd_kafka_topic_t *rkt, const void *key, size_t klen,
                              const void *val, size_t vlen, rd_kafka_headers_t *hdrs,
                              ds_delivery_t *d) DS_WUR;
/** Poll until every message counted in d is reported, or timeout_ms passes
 *  (DS_ERR_TIMEOUT).  DS_ERR_IO when any delivery failed. */
ds_err_t ds_kafka_wait(rd_kafka_t *p, ds_delivery_t *d, int timeout_ms) DS_WUR;

/** For each partition of `topic`: fn(opaque, partition, committed, high)
 *  with group `group`'s committed offset (negative: none) and the
 *  partition's high watermark (-1 when the broker did not say).  Asks the
 *  broker through a short-lived handle that does not join the group; each
 *  request waits at most timeout_ms.  Returns how many partitions, or -1
 *  when the broker does not answer for the topic or the group. */
typedef void (*ds_kafka_group_offset_fn)(void *opaque, int32_t partition, int64_t committed,
                                         int64_t high);
int ds_kafka_group_offsets(const char *brokers, const char *group, const char *topic,
                           int timeout_ms, ds_kafka_group_offset_fn fn, void *opaque);
/** True when consumer group `group` has committed, on every partition of
 *  `topic`, the partition's high watermark: it has consumed everything
 *  produced so far.  Asks the broker through a short-lived handle that
 *  does not join the group; each request waits at most timeout_ms.  False
 *  when the broker does not answer. */
bool ds_kafka_group_caught_up(const char *brokers, const char *group, const char *topic,
                              int timeout_ms);

/** Store offset+1 for each (topic, partition) in list entries' offset
 *  fields (already +1).  Partitions no longer assigned are skipped. */
void ds_kafka_store_offsets(rd_kafka_t *c, rd_kafka_topic_partition_list_t *offsets);

#endif
