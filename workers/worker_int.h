/*
 * worker_int.h — what the engine's own files share, and nothing else
 * includes: the worker's state (struct ds_worker) and the functions one of
 * worker.c, worker_kafka.c and worker_redis.c calls in another (prefix
 * ds_wk_).  One thread owns a worker and is the only one to write this
 * state, except next_rules (stored by another thread, taken at a batch
 * boundary); health is read from any thread (ds_worker_ready, health.h).
 * The librdkafka callbacks in worker_kafka.c run on the owning thread,
 * inside its consumer polls.
 *
 *   worker.c        lifecycle (new, start, finish, destroy, signals),
 *                   the pipeline and its stages, retry waits, abandoning,
 *                   the entities' checkpoints and the dirty queue, the
 *                   adapter's lifecycle callback
 *   worker_kafka.c  the consumer and the producer: polling and decoding,
 *                   held messages, pausing, rebalances, produce and acks,
 *                   the rewind to the committed offsets
 *   worker_redis.c  the two Redis connections: loads, write-behind sends
 *                   and replies, failures, the probe, "came back empty"
 */
#ifndef DS_WORKER_INT_H
#define DS_WORKER_INT_H

#include "alloc.h"
#include "batch.h"
#include "dirtyq.h"
#include "dlq.h"
#include "ds_backoff.h"
#include "ds_kafka.h"
#include "ds_log.h"
#include "ds_registry.h"
#include "fetchwatch.h"
#include "health.h"
#include "worker.h"
#include "writebehind.h"

/* The phases of a batch, for the histogram dealsignal_phase_seconds{phase}. */
enum { PH_COLLECT, PH_LOAD, PH_APPLY, PH_PRODUCE, PH_FORMAT, PH_ACKS, PH_WRITES, PH__COUNT };

struct ds_worker {
    const ds_config_t *cfg;
    const ds_worker_ops_t *ops;
    void *self;
    char topic[256];
    /* the codec of this thread, and the schemas of its outputs (their
     * ids registered at start) */
    ds_registry_t *registry;
    ds_codec_t *codec;
    ds_output_schema_t outs[DS_WORKER_MAX_OUTPUTS];
    const char *out_topics[DS_WORKER_MAX_OUTPUTS];
    rd_kafka_topic_t *out_rkt[DS_WORKER_MAX_OUTPUTS]; /* their handles on the producer */
    ds_codec_encoder_t encoders[DS_WORKER_MAX_OUTPUTS];
    void (*before_leave)(void *arg); /* ds_worker_before_leave */
    void *leave_arg;
    ds_buf_t enc; /* one output record being encoded */
    size_t nouts;
    const ds_rules_t *next_rules; /* set by another thread, taken at a batch boundary */
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    ds_redis_t *redis;       /* loads (and the ops' own reads): answered at once */
    ds_redis_t *wredis;      /* batch writes: sent, answered later */
    ds_redis_known_t *known; /* run_ids and proofs, shared by redis and wredis */
    ds_kafka_hooks_t hooks;
    ds_metrics_t *metrics;

    ds_batch_ring_t ring;
    ds_batch_t *cur; /* the batch being built (ds_worker_output) */
    size_t cap;
    /* messages polled while paused for a retry: processed first next time */
    rd_kafka_message_t **held;
    size_t nheld;
    ds_wb_t wb;         /* the write-behind windows */
    ds_dirtyq_t dirty;  /* the entities they owe, in the order they became dirty */
    size_t dirty_other; /* more owed (ds_worker_dirty_other), until a close */
    ds_health_t health; /* readiness; read by ds_worker_ready */
    ds_dlq_t dlq;
    ds_alloc_idle_t alloc;

    /* decoding waits for the schema registry: the message that could not
     * be decoded and every one after it are held, partitions paused, and
     * tried again at decode_retry_ms */
    int64_t decode_retry_ms;
    ds_backoff_t decode_backoff;
    char labels[64]; /* worker="<name>"[,thread="<k>"]: its metrics' labels */
    int64_t stop_ms; /* when the worker first saw ds_worker_stop */
    bool fatal;      /* Redis said something retrying cannot fix */
    bool abandon;
    bool paused;
    /* the consumer is being closed or destroyed: its statistics are not
     * read any more (rd_kafka_assignment, asked from a callback served by
     * the close, waits for ever on a group already leaving) */
    bool closing;
    int64_t last_tick;
    int64_t last_msg_ms; /* when the last message was collected */
    ds_log_rl_t rl_redis, rl_kafka, rl_msg;

    ds_fetchwatch_t fetchwatch;               /* assigned partitions that stopped being fetched */
    rd_kafka_topic_partition_list_t *refetch; /* ones to fetch again, from there */

    ds_counter_t *m_polled, *m_consumed, *m_batches, *m_outputs, *m_redis_errors, *m_produce_errors,
        *m_redis_lost, *m_refetches;
    ds_histogram_t *m_phase[PH__COUNT];
    ds_histogram_t *m_batch_seconds, *m_redis_seconds;
    ds_counter_t *m_events[DS_WORKER__NCOUNTERS]; /* ds_worker_count */
};

/* What a retry waits for: Redis unreachable or not answering (the wait
 * ends as soon as the probe gets an answer), Redis answering with an error
 * (the whole backoff: it would answer the same at once), the broker (ends
 * once a broker answers again if none did when the wait began).  A stop
 * request is noticed here too, so that its timeout starts then, and a
 * backoff does not outlast it. */
typedef enum { WAIT_REDIS_DOWN, WAIT_REDIS_ERROR, WAIT_KAFKA } wait_for_t;

/* How long ds_wk_writes_stage() waits for replies. */
typedef enum {
    WAIT_NONE,   /* only what is already in */
    WAIT_OLDEST, /* every reply of the oldest sent batch */
    WAIT_ALL,    /* every reply in flight */
} wait_t;

static inline void ds_wk_count(ds_counter_t *c, uint64_t n) {
    if (c)
        ds_counter_add(c, n);
}

static inline void ds_wk_observe(ds_histogram_t *h, double v) {
    if (h)
        ds_histogram_observe(h, v);
}

/* ---- worker.c ---- */

/* Add the time since *t_us to the phase's histogram; *t_us becomes now. */
void ds_wk_phase_add(ds_worker_t *w, int phase, int64_t *t_us);
/* Wait ms for a retry, partitions paused, the consumer served. */
void ds_wk_backoff_wait(ds_worker_t *w, int64_t ms, wait_for_t what);
/* True once shutdown_timeout_ms have passed since the stop was seen. */
bool ds_wk_past_shutdown_timeout(ds_worker_t *w);
/* True when a retry loop should give up the batch (logs a shutdown timeout). */
bool ds_wk_must_abandon(ds_worker_t *w);
/* b's writes are confirmed: store the offsets it carries; b is DONE. */
void ds_wk_batch_done(ds_worker_t *w, ds_batch_t *b);
/* Release every batch without storing anything more and drop the state. */
void ds_wk_abandon_all(ds_worker_t *w, const char *why);
/* Purge the outputs of batches still waiting for acks and serve their
 * delivery reports, so that none comes after the batch is used again. */
void ds_wk_settle_outputs(ds_worker_t *w);
/* Tell the adapter what happened (ds_worker_change_t). */
void ds_wk_lifecycle(ds_worker_t *w, ds_worker_event_t what, const ds_partitions_t *parts);
/* Drop the in-memory state: the dirty queue, then the adapter's. */
void ds_wk_reset(ds_worker_t *w);
/* How many entities (and other things) are dirty. */
size_t ds_wk_dirty_count(ds_worker_t *w);

/* ---- worker_kafka.c ---- */

/* The producer and the consumer (not subscribed yet), with the hooks. */
bool ds_wk_kafka_open(ds_worker_t *w, char *errstr, size_t errstr_size);
/* Pause (or resume) every assigned partition. */
void ds_wk_set_paused(ds_worker_t *w, bool pause);
/* Poll once for up to timeout_ms; what comes is held for the next batch. */
void ds_wk_serve_consumer(ds_worker_t *w, int timeout_ms);
/* Destroy the held messages; nothing waits for the schema registry now. */
void ds_wk_drop_held(ds_worker_t *w);
/* Poll and decode up to batch.size messages into b (held ones first). */
void ds_wk_collect(ds_worker_t *w, ds_batch_t *b, int wait_ms);
/* The partitions assigned now in *set (*ids: freed by the caller); false
 * when the assignment cannot be read. */
bool ds_wk_assignment(ds_worker_t *w, ds_partitions_t *set, int32_t **ids);
/* Hand every output of b to the producer (no waiting for acks). */
void ds_wk_produce(ds_worker_t *w, ds_batch_t *b);
/* How far behind its input the worker is, as b shows it: now minus the
 * newest Kafka timestamp of b's messages while that message's partition
 * has more waiting, 0 when it has not; -1: b has no timestamp. */
int64_t ds_wk_input_lag_ms(ds_worker_t *w, const ds_batch_t *b, int64_t now_wall_ms);
/* Wait for the acks of the batches before `except`, repairing failures;
 * false when abandoned. */
bool ds_wk_wait_acks(ds_worker_t *w, const ds_batch_t *except, bool block);
/* Abandon everything and consume again from the committed offsets. */
void ds_wk_rewind_to_committed(ds_worker_t *w);
/* Fetch again the partitions the statistics found not fetched
 * (w->refetch), from where the consumer stands in each. */
void ds_wk_refetch(ds_worker_t *w);

/* ---- worker_redis.c ---- */

/* The load and write connections, their options and shared identities. */
bool ds_wk_redis_open(ds_worker_t *w, char *errstr, size_t errstr_size);
/* ds_redis_connect(), and what a new connection found out. */
ds_err_t ds_wk_redis_connect(ds_worker_t *w, ds_redis_t *r);
/* A Redis round failed: counted, logged, not ready; false when fatal. */
bool ds_wk_redis_failed(ds_worker_t *w, ds_redis_t *r, int64_t backoff);
/* The readiness probe on the load connection, without waiting. */
ds_probe_t ds_wk_probe_redis(ds_worker_t *w);
/* Load what batch b needs; false when abandoned. */
bool ds_wk_load_stage(ds_worker_t *w, ds_batch_t *b);
/* Send the READY batches' writes, read replies as `wait` says; false when
 * abandoned. */
bool ds_wk_writes_stage(ds_worker_t *w, wait_t wait);

#endif
