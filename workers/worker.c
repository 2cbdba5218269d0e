/*
 * worker.c — the batch pipeline shared by the scorer and the watcher.
 *
 * One thread owns a worker: its consumer, producer, two Redis connections
 * (one for the loads a batch needs now, one for writes that may be
 * answered later) and codec state.  Every batch goes through the same
 * stages in order, in ds_worker_run():
 *
 *   poll+decode → load missing state (Redis, waited for) → apply →
 *   produce outputs → persist (write-behind: maybe close a window, format
 *   this batch's share of the closed window's writes, kept as bytes) →
 *   advance: [acks of its outputs] → send its writes → [their replies] →
 *   [a window's last share: store the window's offsets]
 *
 * The policies live in modules of their own: the batch ring and its states
 * (batch.c), the write-behind windows (writebehind.c), the DLQ
 * (dlq.c), readiness and its probes (health.c), the retry backoff
 * (ds_backoff.c) and the allocator (alloc.c).  Up to DS_NBATCH batches are
 * alive, so that the worker computes while Redis writes and the broker
 * acknowledges.  The rules that keep the guarantees:
 *   - a batch's writes are sent only after every output of it is
 *     acknowledged, and batches' writes go out in batch order on one
 *     connection;
 *   - a window (redis.flush_ms/_entities) takes the offsets of the
 *     batches since the last one; they are stored only once the writes of
 *     every entity it owes are confirmed (the batch with its last share,
 *     confirmed after all earlier batches' writes);
 *   - the writes are kept as bytes until confirmed: after a lost
 *     connection they are sent again (every write sets absolute values);
 *   - a failed delivery re-produces the outputs of every unconfirmed batch
 *     in order, so a compacted topic still ends with the newest value.
 * A message that cannot be decoded because the schema registry does not
 * answer (its writer schema is not cached yet) ends the batch before it:
 * it and every message after it are held, partitions paused, and decoded
 * again after a backoff; the worker is not ready meanwhile.  A registry
 * fault never sends a record to the DLQ.
 * A batch ends "done" (offsets stored) or "abandoned" (rebalance, or
 * shutdown past its timeout: nothing stored, the messages are consumed
 * again and the in-memory state is rebuilt from Redis).
 * Redis or broker failures pause the partitions and retry with backoff;
 * a retry's backoff ends as soon as the probe finds the server answering
 * again.
 *
 * A Redis (or cluster node) whose run_id changed and that lost a key this
 * worker wrote came back empty: every entity held in memory is written
 * again (redis_emptied).  Writes that no WAIT confirmed on a node that
 * went away are rewound for instead (rewind_to_committed: consumed again
 * from the committed offsets, the state reloaded), unless that node is
 * the one that came back empty: then the rewrite replaces the rewind.
 */
#include "worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "batch.h"
#include "dlq.h"
#include "ds_backoff.h"
#include "ds_clock.h"
#include "ds_kafka.h"
#include "ds_log.h"
#include "ds_registry.h"
#include "health.h"
#include "writebehind.h"

volatile sig_atomic_t ds_worker_stop;

static void on_signal(int sig) {
    (void)sig;
    ds_worker_stop = 1;
}

void ds_worker_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* How long the worker waits for a message while batches are in flight: it
 * looks at their acks and replies again in between. */
#define INFLIGHT_POLL_MS 1

/* The phases of a batch, for the histogram dealsignal_phase_seconds{phase}. */
enum { PH_COLLECT, PH_LOAD, PH_APPLY, PH_PRODUCE, PH_FORMAT, PH_ACKS, PH_WRITES, PH__COUNT };
static const char *const phase_names[PH__COUNT] = {
    "collect_decode", "load", "apply", "produce", "format_writes", "wait_acks", "redis_writes"};

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
    ds_batch_t *cur; /* the batch being built (ds_worker_emit) */
    size_t cap;
    /* messages polled while paused for a retry: processed first next time */
    rd_kafka_message_t **held;
    size_t nheld;
    ds_wb_t wb;         /* the write-behind windows */
    ds_health_t health; /* readiness; read by ds_worker_ready */
    ds_dlq_t dlq;
    ds_alloc_idle_t alloc;

    /* decoding waits for the schema registry: the message that could not
     * be decoded and every one after it are held, partitions paused, and
     * tried again at decode_retry_ms */
    int64_t decode_retry_ms;
    ds_backoff_t decode_backoff;
    char redis_labels[64];
    int64_t stop_ms; /* when the worker first saw ds_worker_stop */
    bool fatal;      /* Redis said something retrying cannot fix */
    bool abandon;
    bool paused;
    int64_t last_tick;
    int64_t last_msg_ms; /* when the last message was collected */
    ds_log_rl_t rl_redis, rl_kafka, rl_msg;

    ds_counter_t *m_polled, *m_consumed, *m_batches, *m_outputs, *m_redis_errors, *m_produce_errors,
        *m_redis_lost;
    ds_histogram_t *m_phase[PH__COUNT];
    ds_histogram_t *m_batch_seconds, *m_redis_seconds;
    ds_counter_t *m_events[DS_WORKER__NCOUNTERS]; /* ds_worker_count */
};
static ds_counter_t *counter(ds_worker_t *w, const char *name, const char *help) {
    if (!w->metrics)
        return NULL;
    char labels[64];
    snprintf(labels, sizeof(labels), "worker=\"%s\"", w->ops->name);
    return ds_metrics_counter(w->metrics, name, help, labels);
}

static void count(ds_counter_t *c, uint64_t n) {
    if (c)
        ds_counter_add(c, n);
}

static void observe(ds_histogram_t *h, double v) {
    if (h)
        ds_histogram_observe(h, v);
}

/* consumer_lag{worker,topic,partition} from librdkafka's statistics.  While
 * the worker is paused (Redis or the broker failing) no fetch refreshes the
 * high watermark in the statistics, so it is asked of the broker instead:
 * the lag must keep growing during an outage, not freeze. */
typedef struct lag_walk {
    ds_worker_t *w;
    bool query_failed;
} lag_walk_t;

static void lag_one(void *opaque, int32_t partition, int64_t lag, int64_t committed,
                    bool fetching) {
    lag_walk_t *lw = opaque;
    ds_worker_t *w = lw->w;
    if (fetching && w->paused && committed >= 0 && !lw->query_failed) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(w->consumer, w->topic, partition, &lo, &hi, 300) ==
            RD_KAFKA_RESP_ERR_NO_ERROR)
            lag = hi - committed;
        else
            lw->query_failed = true; /* broker away: keep the last figures */
    }
    char labels[400];
    snprintf(labels, sizeof(labels), "worker=\"%s\",topic=\"%s\",partition=\"%d\"", w->ops->name,
             w->topic, (int)partition);
    ds_gauge_t *g = ds_metrics_gauge(w->metrics, "consumer_lag",
                                     "Records behind the partition's high watermark, from the "
                                     "committed offset (librdkafka statistics); 0 when not "
                                     "assigned here",
                                     labels);
    if (g)
        ds_gauge_set(g, fetching && lag > 0 ? (double)lag : 0);
}

/* The statistics also say whether any broker answers: the responses
 * received over all broker connections grow while one does (fetches every
 * fetch.wait.max.ms, heartbeats every second even while paused). */
/* The statistics also say whether any broker answers (health.c). */
static void on_stats(void *opaque, const char *json, size_t len) {
    ds_worker_t *w = opaque;
    lag_walk_t lw = {w, false};
    ds_kafka_brokers_t br;
    if (ds_kafka_stats_read(json, len, w->topic, w->metrics ? lag_one : NULL, &lw, &br)) {
        ds_log_rl(&w->rl_msg, 60000, DS_LOG_WARN, w->ops->name,
                  "unreadable librdkafka statistics (%zu bytes)", len);
        return;
    }
    ds_health_brokers_rx(&w->health, br.rx, ds_clock_mono_ms());
}

static void on_error(void *opaque, int err, const char *reason) {
    ds_worker_t *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        ds_health_brokers_down(&w->health, reason);
        return;
    }
    ds_log_rl(&w->rl_kafka, 5000, DS_LOG_WARN, w->ops->name, "kafka: %s: %s",
              rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void phase_add(ds_worker_t *w, int phase, int64_t *t_us) {
    int64_t now = ds_clock_mono_us();
    observe(w->m_phase[phase], (double)(now - *t_us) / 1e6);
    *t_us = now;
}

/* ---- pause/resume during retries ---------------------------------------- */

static void set_paused(ds_worker_t *w, bool pause) {
    if (w->paused == pause)
        return;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(w->consumer, &parts) || !parts)
        return;
    if (pause)
        rd_kafka_pause_partitions(w->consumer, parts);
    else
        rd_kafka_resume_partitions(w->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    w->paused = pause;
    DS_INFO(w->ops->name, "%s partitions", pause ? "paused" : "resumed");
}

/* Sleep for a retry while keeping the consumer served: partitions are
 * paused, so anything polled is kept in `held` for the next batch. */
static void serve_consumer(ds_worker_t *w, int timeout_ms);

static bool past_shutdown_timeout(ds_worker_t *w);

static ds_probe_t probe_redis(ds_worker_t *w);

/* What a retry waits for: Redis unreachable or not answering (the wait
 * ends as soon as the probe gets an answer), Redis answering with an error
 * (the whole backoff: it would answer the same at once), the broker (ends
 * once a broker answers again if none did when the wait began).  A stop
 * request is noticed here too, so that its timeout starts then, and a
 * backoff does not outlast it. */
typedef enum { WAIT_REDIS_DOWN, WAIT_REDIS_ERROR, WAIT_KAFKA } wait_for_t;

static void backoff_wait(ds_worker_t *w, int64_t ms, wait_for_t what) {
    set_paused(w, true);
    bool silent = what == WAIT_KAFKA && ds_health_brokers_silent(&w->health);
    int64_t end = ds_clock_mono_ms() + ms;
    while (!w->abandon && !w->fatal && ds_clock_mono_ms() < end && !past_shutdown_timeout(w)) {
        serve_consumer(w, 20);
        if (what == WAIT_REDIS_DOWN && probe_redis(w) == DS_PROBE_UP)
            break; /* it answers again: retry now, whatever the backoff */
        if (silent && !ds_health_brokers_silent(&w->health))
            break;
    }
}

/* True once shutdown_timeout_ms have passed since the stop was asked for
 * (counted from when the worker first sees the request, not from when the
 * wait it is in began: a retry that started long before SIGTERM still
 * gets the whole timeout). */
static bool past_shutdown_timeout(ds_worker_t *w) {
    if (!ds_worker_stop)
        return false;
    int64_t now = ds_clock_mono_ms();
    if (!w->stop_ms)
        w->stop_ms = now;
    return now - w->stop_ms > w->cfg->shutdown_timeout_ms;
}

/* True when a retry loop should give up the batch. */
static bool must_abandon(ds_worker_t *w) {
    if (w->abandon || w->fatal)
        return true;
    if (past_shutdown_timeout(w)) {
        DS_WARN(w->ops->name,
                "shutdown timeout: abandoning the batch in hand %lld ms after the stop was "
                "asked for (shutdown_timeout_ms %d; it will be consumed again)",
                (long long)(ds_clock_mono_ms() - w->stop_ms), w->cfg->shutdown_timeout_ms);
        return true;
    }
    return false;
}

/* ---- batches in flight --------------------------------------------------- */

/* The batch's writes are confirmed (and, as batches finish in order, those
 * of every batch before it).  The batch that wrote a window's last entity
 * stores the offsets of every batch up to the window's close: their
 * outputs are acknowledged and their state is in Redis. */
static void batch_done(ds_worker_t *w, ds_batch_t *b) {
    /* a key Redis now holds: after a restart, its absence says the state
     * is gone (redis_emptied) */
    if (b->nwrites)
        ds_redis_note_written(w->wredis, b->writes.data, b->writes.len);
    if (b->store) {
        if (b->store->cnt)
            ds_kafka_store_offsets(w->consumer, b->store);
        count(w->m_consumed, b->store_msgs);
        rd_kafka_topic_partition_list_destroy(b->store);
        b->store = NULL;
        b->store_msgs = 0;
    }
    count(w->m_batches, 1);
    observe(w->m_batch_seconds, (double)(ds_clock_mono_us() - b->t0_us) / 1e6);
    b->state = DS_BATCH_DONE;
}

/* ---- rebalance ----------------------------------------------------------- */

static void drop_held(ds_worker_t *w) {
    for (size_t i = 0; i < w->nheld; i++)
        rd_kafka_message_destroy(w->held[i]);
    w->nheld = 0;
    w->health.decode_ok = 1; /* nothing waits for the schema registry any more */
}

/* The partitions of l as our own type, in *ids (freed by the caller). */
static ds_partitions_t partitions_of(ds_worker_t *w, const rd_kafka_topic_partition_list_t *l,
                                     int32_t **ids) {
    ds_partitions_t set = {NULL, 0};
    *ids = NULL;
    if (!l || l->cnt <= 0)
        return set;
    if (!(*ids = malloc((size_t)l->cnt * sizeof(**ids)))) {
        DS_ERROR(w->ops->name, "out of memory listing the partitions");
        abort(); /* the adapter would drop or skip partitions it owns */
    }
    for (int i = 0; i < l->cnt; i++)
        (*ids)[i] = l->elems[i].partition;
    set.ids = *ids;
    set.n = (size_t)l->cnt;
    return set;
}

static void on_assigned(void *opaque, const rd_kafka_topic_partition_list_t *parts) {
    ds_worker_t *w = opaque;
    w->health.assigned = parts->cnt;
    w->paused = false;
    if (w->ops->assigned) {
        int32_t *ids;
        ds_partitions_t set = partitions_of(w, parts, &ids);
        w->ops->assigned(w->self, &set);
        free(ids);
    }
}

static void on_revoked(void *opaque, const rd_kafka_topic_partition_list_t *parts) {
    ds_worker_t *w = opaque;
    (void)parts;
    /* Eager protocol: everything goes.  Batches whose writes are already
     * sent are finished if Redis answers now (one try, no backoff), so that
     * the next owner does not load state older than writes still on the
     * wire; then what is stored is committed.  Every other batch is
     * abandoned (the main loop releases them) and the in-memory state
     * dropped, so that the next owner (maybe us) reloads it from Redis. */
    ds_batch_t *sent[DS_NBATCH];
    size_t n = ds_batch_ring_in(&w->ring, DS_BATCH_SENT, sent);
    for (size_t i = 0; i < n; i++) {
        if (ds_redis_collect(w->wredis, sent[i]->nwrites - sent[i]->collected) ||
            ds_redis_take_lost(w->wredis)) { /* nothing more stored: replayed */
            ds_redis_close(w->wredis);
            break;
        }
        batch_done(w, sent[i]);
    }
    rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        DS_WARN(w->ops->name, "commit on revoke: %s", rd_kafka_err2str(err));
    w->abandon = true;
    (void)ds_wb_drop(&w->wb); /* their state is dropped below: replayed by the next owner */
    drop_held(w);
    w->ops->reset(w->self);
    if (w->ops->assigned)
        w->ops->assigned(w->self, NULL); /* we own nothing now */
    w->health.assigned = 0;
}

/* Release every batch without storing anything more and drop the state. */
static void abandon_all(ds_worker_t *w, const char *why) {
    size_t lost = 0;
    for (int i = 0; i < DS_NBATCH; i++) {
        if (w->ring.b[i].state != DS_BATCH_DONE)
            lost += w->ring.b[i].nmsgs;
        ds_batch_release(&w->ring.b[i]);
    }
    if (ds_redis_inflight(w->wredis))
        ds_redis_close(w->wredis); /* their replies are of no use any more */
    lost += ds_wb_drop(&w->wb);
    w->ops->reset(w->self);
    if (lost && why)
        DS_WARN(w->ops->name, "%zu messages abandoned (%s): they will be consumed again", lost,
                why);
}

/* ---- outputs ------------------------------------------------------------- */

void ds_worker_emit(ds_worker_t *w, const char *topic, const char *key, const void *val,
                    size_t vlen, const char *id) {
    if (!ds_batch_add_output(w->cur, topic, key, val, vlen, id)) {
        DS_ERROR(w->ops->name, "out of memory queuing an output");
        abort(); /* losing an output silently is not an option */
    }
}

static void emit_dlq(ds_worker_t *w, size_t index) {
    ds_worker_emit(w, w->dlq.topic, "", "", 0, NULL);
    ds_batch_output(w->cur, w->cur->nouts - 1)->dlq_index = (int)index;
    ds_dlq_count(&w->dlq, w->cur->errs[index]);
}

/* ---- held messages -------------------------------------------------------- */

/* Keep m as the last held message (processed first by the next batch). */
static void keep_held(ds_worker_t *w, rd_kafka_message_t *m) {
    rd_kafka_message_t **nh = realloc(w->held, (w->nheld + 1) * sizeof(*nh));
    if (!nh) { /* cannot keep it: rewind so it is fetched again */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
            m->offset;
        rd_kafka_seek_partitions(w->consumer, l, 1000);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_message_destroy(m);
        return;
    }
    w->held = nh;
    w->held[w->nheld++] = m;
}

/* Keep the consumer served while we wait: anything it returns (partitions
 * are paused, so only what was already queued) is held for the next batch. */
static void serve_consumer(ds_worker_t *w, int timeout_ms) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, timeout_ms);
    if (!m)
        return;
    if (m->err || w->abandon) {
        rd_kafka_message_destroy(m);
        return;
    }
    keep_held(w, m);
}

/* ---- outputs: produce, acks ----------------------------------------------- */

/* Hand every output of b to the producer (no waiting for acks). */
static void produce_batch(ds_worker_t *w, ds_batch_t *b) {
    memset(&b->delivery, 0, sizeof(b->delivery));
    b->produce_failed = false;
    const unsigned char *bytes = b->out_bytes.data;
    for (size_t i = 0; i < b->nouts; i++) {
        const ds_output_t *o = ds_batch_output(b, i);
        ds_err_t e;
        if (o->dlq_index >= 0) {
            const rd_kafka_message_t *m = b->msgs[o->dlq_index];
            e = ds_kafka_produce(
                w->producer, o->topic, m->key, m->key_len, m->payload, m->len,
                ds_dlq_headers(&w->dlq, m, b->errs[o->dlq_index], b->details[o->dlq_index]),
                &b->delivery);
        } else {
            rd_kafka_headers_t *h = NULL;
            if (o->id_len) {
                h = rd_kafka_headers_new(1);
                rd_kafka_header_add(h, "dealsignal.id", -1, bytes + o->id_off, (ssize_t)o->id_len);
            }
            e = ds_kafka_produce(w->producer, o->topic, bytes + o->key_off, o->key_len,
                                 bytes + o->val_off, o->val_len, h, &b->delivery);
        }
        if (e) {
            b->produce_failed = true;
            return;
        }
    }
    rd_kafka_poll(w->producer, 0);
}

/* Wait until every message counted in b->delivery has its report (each
 * gets one within message.timeout.ms; on a shutdown past the timeout the
 * queue is purged so the reports come at once). */
static void drain_deliveries(ds_worker_t *w, ds_batch_t *b) {
    bool purged = false;
    while (b->delivery.outstanding) {
        if (ds_kafka_wait(w->producer, &b->delivery, 1000) != DS_ERR_TIMEOUT)
            continue;
        w->health.kafka_ok = 0;
        set_paused(w, true);
        serve_consumer(w, 0);
        if (!purged && (past_shutdown_timeout(w) || w->fatal)) {
            rd_kafka_purge(w->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            purged = true;
        }
    }
}

/* The first n batches of `acks` are acknowledged: their writes may go. */
static void acks_in(ds_worker_t *w, ds_batch_t **acks, size_t n) {
    for (size_t i = 0; i < n; i++) {
        count(w->m_outputs, acks[i]->nouts);
        acks[i]->state = DS_BATCH_READY;
    }
}

/* Wait for the acks of every batch in ACKS but `except` (the newest, just
 * built: its acks are waited for next time), oldest first.  When any
 * output failed, the outputs of every batch in ACKS, `except` included,
 * are produced again in batch order (same ids), so that a record produced
 * again never lands after a newer one of the same key; this repeats until
 * all are acknowledged.  The waited-for batches are then READY.  Without
 * `block`, nothing is waited for: the oldest batches whose acks are all in
 * become READY (a failure still repairs at once).  False when abandoned. */
static bool wait_acks(ds_worker_t *w, const ds_batch_t *except, bool block) {
    ds_batch_t *acks[DS_NBATCH];
    size_t all = ds_batch_ring_in(&w->ring, DS_BATCH_ACKS, acks);
    size_t n = all && acks[all - 1] == except ? all - 1 : all;
    if (!n)
        return true;
    if (!block) {
        /* only the oldest batches whose acks are all in move on (in batch
         * order); the others wait for a later call, unless an output
         * failed: then the repair below runs now */
        rd_kafka_poll(w->producer, 0);
        size_t k = 0;
        while (k < n && ds_batch_acked(acks[k]))
            k++;
        bool failed = false;
        for (size_t i = k; i < n; i++)
            failed |= acks[i]->produce_failed || acks[i]->delivery.failed;
        if (!failed) {
            acks_in(w, acks, k);
            return true;
        }
    }
    ds_backoff_t backoff = ds_backoff_make(DS_BACKOFF_RETRY_MIN_MS, DS_BACKOFF_MAX_MS);
    for (bool repairing = false;; repairing = true) {
        /* normally only the older batches are waited for; once repairing,
         * the newest too, as its outputs are produced again with theirs */
        size_t upto = repairing ? all : n, failed = 0, total = 0;
        bool ok = true;
        rd_kafka_resp_err_t first = RD_KAFKA_RESP_ERR_NO_ERROR;
        for (size_t i = 0; i < upto; i++) {
            drain_deliveries(w, acks[i]);
            if (w->abandon)
                return false;
            if (!ds_batch_acked(acks[i])) {
                ok = false;
                failed += acks[i]->delivery.failed + acks[i]->produce_failed;
                if (!first)
                    first = acks[i]->delivery.first_err;
            }
            total += acks[i]->nouts;
        }
        if (ok)
            break;
        w->health.kafka_ok = 0;
        count(w->m_produce_errors, 1);
        ds_log_rl(&w->rl_kafka, 5000, DS_LOG_WARN, w->ops->name,
                  "delivery failed (%zu of %zu: %s); producing the outputs of %zu batch(es) "
                  "again",
                  failed, total, rd_kafka_err2str(first), all);
        /* the newest batch's first copies must be settled before they are
         * overtaken by the copies produced again */
        for (size_t i = n; i < all; i++)
            drain_deliveries(w, acks[i]);
        if (must_abandon(w))
            return false;
        backoff_wait(w, ds_backoff_next(&backoff), WAIT_KAFKA);
        if (must_abandon(w))
            return false;
        for (size_t i = 0; i < all; i++)
            produce_batch(w, acks[i]);
    }
    w->health.kafka_ok = 1;
    acks_in(w, acks, n);
    return true;
}

/* ---- Redis ---------------------------------------------------------------- */

typedef struct prefetch_ctx {
    ds_worker_t *w;
    ds_err_t err;
} prefetch_ctx_t;

static void on_prefetch_reply(void *opaque, size_t index, const ds_reply_t *reply) {
    prefetch_ctx_t *pc = opaque;
    ds_err_t e = pc->w->ops->prefetched(pc->w->self, index, reply);
    if (e && !pc->err)
        pc->err = e;
}

/* A Redis round failed.  Returns false when retrying cannot help: the
 * worker then stops (every worker of the process: ds_worker_stop). */
static bool redis_failed(ds_worker_t *w, ds_redis_t *r, int64_t backoff) {
    count(w->m_redis_errors, 1);
    const char *why = ds_redis_errstr(r);
    ds_health_redis_down(&w->health, why);
    if (ds_redis_fatal(r)) {
        if (!w->fatal)
            DS_ERROR(w->ops->name, "redis: %s; retrying cannot fix this: stopping", why);
        w->fatal = true;
        ds_worker_stop = 1;
        return false;
    }
    ds_log_rl(&w->rl_redis, 5000, DS_LOG_WARN, w->ops->name,
              "redis unavailable (%s); not ready, partitions paused, retrying in at most %lld "
              "ms",
              why[0] ? why : "no reason given", (long long)backoff);
    return true;
}

/* Writes no WAIT confirmed were on a Redis node that went away (or
 * stopped being a master): they may be lost.  Everything since the
 * committed offsets is consumed again, with the state reloaded from
 * Redis (units' checkpoints make it exactly once there).  Not when that
 * node came back empty: see redis_emptied. */
static void rewind_to_committed(ds_worker_t *w) {
    DS_WARN(w->ops->name, "a Redis node went away holding writes that no WAIT confirmed: "
                          "consuming again from the committed offsets");
    abandon_all(w, "Redis writes may be lost");
    drop_held(w);
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(w->consumer, &parts) || !parts)
        return;
    rd_kafka_resp_err_t err = rd_kafka_committed(w->consumer, parts, 10000);
    if (!err) {
        for (int i = 0; i < parts->cnt; i++)
            if (parts->elems[i].offset < 0)
                parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(w->consumer, parts, 10000);
        if (e) {
            DS_ERROR(w->ops->name, "seek to the committed offsets: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            err = RD_KAFKA_RESP_ERR__FAIL;
        }
    }
    if (err) { /* cannot replay in place: the restart will */
        DS_ERROR(w->ops->name,
                 "cannot read the committed offsets (%s): stopping so that a "
                 "restart consumes again",
                 rd_kafka_err2str(err));
        w->fatal = true;
        ds_worker_stop = 1;
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

/* Redis answered (a reply, not merely a send): ready as far as it goes. */
static void redis_fine(ds_worker_t *w) {
    ds_health_redis_up(&w->health);
}

/* Redis, or a node of the cluster, came back without the state this
 * worker wrote (its run_id changed and a key its confirmed writes set is
 * gone: ds_redis_take_emptied): every entity still held in memory (of
 * this worker's partitions) is written again; what it no longer holds is
 * lost until replayed.  This takes the place of the rewind that writes no
 * WAIT confirmed on that node would ask for (ds_redis_take_lost leaves
 * those out): reloading from a node that lost everything would build its
 * units from nothing, while memory holds them as of the newest event.
 * Checked after every call that may have made a new connection. */
static void redis_emptied(ds_worker_t *w) {
    char why[700];
    if (!ds_redis_take_emptied(w->wredis, why, sizeof(why)))
        return;
    rd_kafka_topic_partition_list_t *owned = NULL;
    if (rd_kafka_assignment(w->consumer, &owned))
        owned = NULL;
    int32_t *ids;
    ds_partitions_t set = partitions_of(w, owned, &ids);
    size_t before = w->ops->dirty_count(w->self);
    w->ops->rewrite_all(w->self, owned ? &set : NULL);
    free(ids);
    if (owned)
        rd_kafka_topic_partition_list_destroy(owned);
    count(w->m_redis_lost, 1);
    DS_ERROR(w->ops->name,
             "redis came back without the state this worker wrote (%s): writing back the %zu "
             "entities it holds in memory; state it does not hold is lost until replayed "
             "(docs/OPERATIONS.md)",
             why, w->ops->dirty_count(w->self) - before);
}

/* ds_redis_connect(), and what a new connection found out. */
static ds_err_t redis_connect(ds_worker_t *w, ds_redis_t *r) {
    ds_err_t e = ds_redis_connect(r);
    redis_emptied(w);
    return e;
}

/* The probe (health.c), every DS_HEALTH_PROBE_MS on the load connection:
 * without waiting; UP when an answer came now, DOWN on a failure.  (In a
 * cluster the PING goes to every master, connecting again those whose
 * connection was lost: a node that came back empty shows here.) */
static ds_probe_t probe_redis(ds_worker_t *w) {
    ds_probe_t p = ds_health_probe_poll(&w->health, w->redis, ds_clock_mono_ms());
    if (p == DS_PROBE_DUE) {
        ds_err_t e = redis_connect(w, w->redis);
        if (!e)
            e = ds_health_probe_send(&w->health, w->redis);
        redis_emptied(w);
        p = e ? DS_PROBE_DOWN : DS_PROBE_WAIT;
    }
    if (p == DS_PROBE_DOWN)
        (void)redis_failed(w, w->redis, DS_HEALTH_PROBE_MS);
    else if (p == DS_PROBE_UP)
        redis_fine(w);
    return p;
}

/* The load connection is about to be used synchronously: read the probe's
 * reply first (it is in by now unless Redis stopped answering; then the
 * connection is dropped and the caller's connect fails or reconnects).
 * A failure is reported as the probe's own would be: in a cluster the
 * caller's connect and reads may well succeed on the other masters, and a
 * worker that checks its clock often (the watcher) reads the probe's
 * reply here rather than in probe_redis. */
static void probe_settle(ds_worker_t *w) {
    ds_probe_t p = ds_health_probe_settle(&w->health, w->redis);
    if (p == DS_PROBE_UP) {
        redis_fine(w);
    } else if (p == DS_PROBE_DOWN) {
        (void)redis_failed(w, w->redis, DS_HEALTH_PROBE_MS);
        ds_redis_close(w->redis);
    }
}

/* Load what batch b needs (rounds until the worker asks for nothing). */
static bool load_stage(ds_worker_t *w, ds_batch_t *b) {
    int64_t t = ds_clock_mono_us();
    if (!b->t0_us)
        b->t0_us = t;
    const ds_rules_t *nr = __atomic_exchange_n(&w->next_rules, NULL, __ATOMIC_ACQ_REL);
    if (nr && w->ops->rules)
        w->ops->rules(w->self, nr); /* a batch boundary: the SIGHUP reload takes effect */
    ds_backoff_t backoff = ds_backoff_make(DS_BACKOFF_RETRY_MIN_MS, DS_BACKOFF_MAX_MS);
    for (;;) {
        probe_settle(w);
        ds_err_t e = redis_connect(w, w->redis);
        bool answered = false;
        if (!e) {
            int64_t t0 = ds_clock_mono_us();
            for (int round = 0; !e; round++) {
                size_t n = w->ops->prefetch(w->self, w->redis, b->slots, b->parts, b->nmsgs, round);
                if (!n)
                    break;
                prefetch_ctx_t pc = {w, DS_ERR_OK};
                e = ds_redis_run(w->redis, on_prefetch_reply, &pc);
                answered |= !e;
                if (!e && pc.err)
                    e = pc.err;
                observe(w->m_redis_seconds, (double)(ds_clock_mono_us() - t0) / 1e6);
            }
        }
        if (!e) {
            if (answered) /* else nothing was asked: no news of Redis */
                redis_fine(w);
            phase_add(w, PH_LOAD, &t);
            return true;
        }
        /* connected still: Redis answered, with an error */
        wait_for_t what = ds_redis_connected(w->redis) ? WAIT_REDIS_ERROR : WAIT_REDIS_DOWN;
        ds_redis_discard(w->redis);
        if (!redis_failed(w, w->redis, ds_backoff_peek(&backoff)))
            return false;
        backoff_wait(w, ds_backoff_next(&backoff), what);
        if (must_abandon(w))
            return false;
    }
}

/* How long writes_stage() waits for replies. */
typedef enum {
    WAIT_NONE,   /* only what is already in */
    WAIT_OLDEST, /* every reply of the oldest sent batch */
    WAIT_ALL,    /* every reply in flight */
} wait_t;

/* Send the writes of every DS_BATCH_READY batch (oldest first) and read the
 * replies of the DS_BATCH_SENT ones as `wait` says: a batch whose replies are all
 * in is done, in batch order.  On a lost connection everything sent but
 * not confirmed is sent again.  False when abandoned. */
static bool writes_stage(ds_worker_t *w, wait_t wait) {
    ds_backoff_t backoff = ds_backoff_make(DS_BACKOFF_RETRY_MIN_MS, DS_BACKOFF_MAX_MS);
    for (;;) {
        ds_err_t e = redis_connect(w, w->wredis);
        bool answered = false;
        ds_batch_t *bs[DS_NBATCH];
        size_t n = e ? 0 : ds_batch_ring_in(&w->ring, DS_BATCH_READY, bs);
        for (size_t i = 0; !e && i < n; i++) {
            e = ds_redis_send(w->wredis, bs[i]->writes.data, bs[i]->writes.len, bs[i]->nwrites);
            if (!e) {
                bs[i]->state = DS_BATCH_SENT;
                bs[i]->collected = 0;
            }
        }
        if (!e) {
            int64_t t0 = ds_clock_mono_us();
            n = ds_batch_ring_in(&w->ring, DS_BATCH_SENT, bs);
            for (size_t i = 0; !e && i < n; i++) {
                ds_batch_t *b = bs[i];
                size_t want = b->nwrites - b->collected, got = 0;
                if (wait == WAIT_ALL || (wait == WAIT_OLDEST && i == 0)) {
                    e = ds_redis_collect(w->wredis, want);
                    got = e ? 0 : want;
                } else {
                    e = ds_redis_collect_avail(w->wredis, want, &got);
                }
                if (e)
                    break;
                answered |= got > 0;
                /* a new connection (in a cluster, to a node connected
                 * again) may have found Redis back empty: what memory
                 * holds is written again, and the writes lost with it
                 * are not rewound for (ds_redis_take_lost leaves them
                 * out) */
                redis_emptied(w);
                if (ds_redis_take_lost(w->wredis)) {
                    /* a node went away with writes no WAIT confirmed, yet
                     * the round succeeded (elsewhere, or on a new
                     * connection): store nothing more */
                    rewind_to_committed(w);
                    return false;
                }
                b->collected += got;
                if (b->collected < b->nwrites)
                    break; /* later batches' replies come after this one's */
                batch_done(w, b);
                ds_batch_release(b);
            }
            if (wait != WAIT_NONE)
                observe(w->m_redis_seconds, (double)(ds_clock_mono_us() - t0) / 1e6);
        }
        if (!e) {
            if (answered) /* a send alone says nothing of Redis */
                redis_fine(w);
            return true;
        }
        wait_for_t what = ds_redis_connected(w->wredis) ? WAIT_REDIS_ERROR : WAIT_REDIS_DOWN;
        /* the connection is gone (or answered an error: closed too), and
         * with it every reply in flight: all of it goes out again */
        ds_redis_close(w->wredis);
        n = ds_batch_ring_in(&w->ring, DS_BATCH_SENT, bs);
        for (size_t i = 0; i < n; i++)
            bs[i]->state = DS_BATCH_READY;
        if (!redis_failed(w, w->wredis, ds_backoff_peek(&backoff)))
            return false;
        /* writes lost with the connection (ds_redis_take_lost) are looked
         * at once Redis answers again, after the round sent again: then
         * it is known whether it came back empty (everything held written
         * again) or not (rewind) */
        backoff_wait(w, ds_backoff_next(&backoff), what);
        if (must_abandon(w))
            return false;
    }
}

/* Move the pipeline on: confirm what Redis has answered so far, take the
 * acks that are in (of the batches before `keep`, the one just built) and
 * send those batches' writes.  Nothing is waited for unless `drain`: the
 * broker and Redis work while the next batches are built, until the worker
 * runs out of batches (make_room).  With `drain`, wait for every ack and
 * every reply, so that nothing is in flight afterwards (shutdown). */
static bool advance(ds_worker_t *w, ds_batch_t *keep, bool drain) {
    int64_t t = ds_clock_mono_us();
    if (!writes_stage(w, WAIT_NONE))
        return false;
    phase_add(w, PH_WRITES, &t);
    if (!wait_acks(w, keep, drain))
        return false;
    phase_add(w, PH_ACKS, &t);
    bool ok = writes_stage(w, drain ? WAIT_ALL : WAIT_NONE);
    phase_add(w, PH_WRITES, &t);
    return ok;
}

/* Every batch is in flight: wait for the oldest to finish. */
static bool make_room(ds_worker_t *w) {
    int64_t t = ds_clock_mono_us();
    if (!wait_acks(w, NULL, true))
        return false;
    phase_add(w, PH_ACKS, &t);
    bool ok = writes_stage(w, WAIT_OLDEST);
    phase_add(w, PH_WRITES, &t);
    return ok;
}

/* ---- poll and decode ------------------------------------------------------ */

/* A record must be keyed by its unit's id (dlq.c): otherwise DLQ
 * wrong_key, and a warning that says how to fix the producer. */
static ds_err_t check_key(ds_worker_t *w, const rd_kafka_message_t *m, const void *slot,
                          char *detail, size_t detail_size) {
    const char *id_name = "unit id";
    const char *id = w->ops->unit_key(w->self, slot, &id_name);
    return ds_dlq_check_key(&w->dlq, m, id, id_name, w->ops->unit_key_doc, detail, detail_size);
}

/* Add m to b, decoded; false (m not added) when it cannot be decoded now
 * because the schema registry did not answer (DS_ERR_IO from decode). */
static bool add_msg(ds_worker_t *w, ds_batch_t *b, rd_kafka_message_t *m) {
    size_t i = b->nmsgs++;
    if (i == 0)
        b->t0_us = ds_clock_mono_us();
    b->msgs[i] = m;
    b->parts[i] = m->partition;
    b->details[i] = NULL;
    b->slots[i] = NULL;
    ds_err_t e = DS_ERR_OK;
    char detail[256] = "";
    if (!m->payload) {
        e = DS_ERR_NULL_VALUE;
        snprintf(detail, sizeof(detail), "record has a null value");
    } else if (!m->key || !m->key_len) {
        e = DS_ERR_EMPTY_KEY;
        snprintf(detail, sizeof(detail), "record has an empty key");
    } else if (m->len > (size_t)w->cfg->max_message_bytes) {
        e = DS_ERR_LIMIT_EXCEEDED;
        snprintf(detail, sizeof(detail), "message of %zu bytes is over max_message_bytes %d",
                 m->len, w->cfg->max_message_bytes);
    } else {
        void *slot = b->slot_mem + i * w->ops->event_size;
        e = w->ops->decode(w->self, m->payload, m->len, &b->arena, slot, detail, sizeof(detail));
        if (!e && w->ops->unit_key)
            e = check_key(w, m, slot, detail, sizeof(detail));
        if (!e)
            b->slots[i] = slot;
    }
    if (e == DS_ERR_IO) {
        b->nmsgs--;
        int64_t now = ds_clock_mono_ms();
        if (w->health.decode_ok)
            w->decode_backoff = ds_backoff_make(DS_BACKOFF_SLOW_MIN_MS, DS_BACKOFF_MAX_MS);
        w->decode_retry_ms = now + ds_backoff_next(&w->decode_backoff);
        if (w->health.decode_ok)
            DS_WARN(w->ops->name,
                    "cannot decode topic=%s partition=%d offset=%lld yet, holding it and what "
                    "follows: %s",
                    w->topic, (int)m->partition, (long long)m->offset, detail);
        w->health.decode_ok = 0;
        return false;
    }
    if (!w->health.decode_ok) {
        DS_INFO(w->ops->name, "decoding again: the schema registry answered");
        w->health.decode_ok = 1;
    }
    b->errs[i] = e;
    if (e) {
        b->details[i] = ds_arena_strndup(&b->arena, detail, strlen(detail));
        if (e != DS_ERR_WRONG_KEY) /* check_key() said it, with the fix */
            ds_dlq_warn(&w->dlq, m, e, detail);
    }
    return true;
}

/* Keep m (not decodable yet) as the last held message, partitions paused. */
static void hold(ds_worker_t *w, rd_kafka_message_t *m) {
    keep_held(w, m);
    set_paused(w, true);
}

/* Once its unit is loaded: an event whose unit is bound by its checkpoint
 * to another partition is not applied (DLQ wrong_partition).  Its unit's
 * records reach two partitions (two producers with different
 * partitioners, or a topic whose partition count changed): two owners
 * could apply them at once, and one checkpoint cannot describe both. */
static bool check_partition(ds_worker_t *w, ds_batch_t *b, size_t i) {
    if (!w->ops->unit_partition)
        return true;
    const rd_kafka_message_t *m = b->msgs[i];
    int32_t bound = w->ops->unit_partition(w->self, b->slots[i]);
    if (bound < 0 || bound == m->partition)
        return true;
    char detail[256];
    ds_dlq_wrong_partition(&w->dlq, m, bound, detail, sizeof(detail));
    b->errs[i] = DS_ERR_WRONG_PARTITION;
    b->details[i] = ds_arena_strndup(&b->arena, detail, strlen(detail));
    return false;
}

/* Collect up to batch.size messages: wait up to `wait_ms` for the first,
 * then take what is already there, for at most batch.max_ms. */
static void collect(ds_worker_t *w, ds_batch_t *b, int wait_ms) {
    size_t held = w->nheld;
    if (held && !w->health.decode_ok) { /* waiting for the schema registry */
        int64_t left = w->decode_retry_ms - ds_clock_mono_ms();
        if (left > 0) {
            serve_consumer(w, (int)(left < wait_ms ? left : wait_ms));
            return;
        }
    }
    size_t taken = 0;
    bool blocked = false;
    while (taken < held && b->nmsgs < w->cap && !blocked)
        if (add_msg(w, b, w->held[taken]))
            taken++;
        else
            blocked = true; /* it and what follows stay held, in order */
    /* anything not taken stays held (held > cap, or decoding blocked) */
    if (held > taken)
        memmove(w->held, w->held + taken, (held - taken) * sizeof(*w->held));
    w->nheld -= taken;
    if (blocked)
        return;
    if (w->paused && !w->nheld)
        set_paused(w, false);
    int64_t deadline = -1;
    while (b->nmsgs < w->cap && !w->abandon) {
        int timeout = b->nmsgs ? 0 : wait_ms;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, timeout);
        if (!m)
            break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ds_log_rl(&w->rl_kafka, 5000, DS_LOG_WARN, w->ops->name, "consumer: %s",
                          rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (!b->nmsgs)
                break;
            continue;
        }
        if (w->abandon) {
            rd_kafka_message_destroy(m);
            break;
        }
        if (!add_msg(w, b, m)) {
            hold(w, m);
            break;
        }
        if ((b->nmsgs & 255) == 0)
            ds_redis_pump(w->wredis); /* Redis works on earlier writes meanwhile */
        if (deadline < 0)
            deadline = ds_clock_mono_ms() + w->cfg->batch_max_ms;
        else if (ds_clock_mono_ms() >= deadline)
            break;
    }
}

/* ---- the stages of a batch ------------------------------------------------ */

/* Poll and decode: collect up to batch.size messages into b, waiting up to
 * wait_ms for the first. */
static void poll_stage(ds_worker_t *w, ds_batch_t *b, int wait_ms) {
    int64_t t = ds_clock_mono_us();
    collect(w, b, wait_ms);
    if (!b->nmsgs)
        return;
    phase_add(w, PH_COLLECT, &t);
    count(w->m_polled, b->nmsgs);
    w->last_msg_ms = ds_clock_mono_ms();
    ds_alloc_busy(&w->alloc);
}

/* Apply b's events in order (those the DLQ takes are queued as its
 * records) and, on a clock tick, the adapter's wall-clock check. */
static bool apply_stage(ds_worker_t *w, ds_batch_t *b, bool tick) {
    int64_t t = ds_clock_mono_us();
    w->cur = b;
    for (size_t i = 0; i < b->nmsgs; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        if (b->errs[i] || !check_partition(w, b, i)) {
            emit_dlq(w, i);
            continue;
        }
        w->ops->apply(w->self, w, b->slots[i], m->partition, m->offset);
        if ((i & 255) == 255)
            ds_redis_pump(w->wredis);
    }
    if (tick && w->ops->tick)
        w->ops->tick(w->self, w, ds_clock_now_ms());
    phase_add(w, PH_APPLY, &t);
    return true;
}

/* Hand b's outputs to the producer; their acks are waited for later. */
static bool produce_stage(ds_worker_t *w, ds_batch_t *b) {
    int64_t t = ds_clock_mono_us();
    produce_batch(w, b);
    phase_add(w, PH_PRODUCE, &t);
    return true;
}

/* Persist: b's offsets go into the write-behind window, and b takes its
 * share of a closed window's writes (`all`: everything owed). */
static bool persist_stage(ds_worker_t *w, ds_batch_t *b, bool all) {
    int64_t t = ds_clock_mono_us();
    ds_wb_seen(&w->wb, b);
    ds_wb_step(&w->wb, b, w->wredis, ds_clock_mono_ms(), all);
    phase_add(w, PH_FORMAT, &t);
    b->state = DS_BATCH_ACKS;
    return true;
}

/* How long the next poll may wait for a first message: until the next
 * clock tick, the write-behind's next step, at most 100 ms. */
static int poll_wait_ms(ds_worker_t *w) {
    int64_t now = ds_clock_mono_ms();
    int wait = 100;
    if (w->ops->tick) {
        int64_t left = w->last_tick + w->cfg->check_interval_ms - now;
        wait = left < 0 ? 0 : left < 100 ? (int)left : 100;
    }
    return ds_wb_wait_ms(&w->wb, now, w->last_msg_ms, wait);
}

/* Whether the adapter's wall-clock check is due (every check_interval_ms,
 * while partitions are assigned). */
static bool tick_due(ds_worker_t *w) {
    if (!w->ops->tick || ds_clock_mono_ms() - w->last_tick < w->cfg->check_interval_ms)
        return false;
    w->last_tick = ds_clock_mono_ms();
    return w->health.assigned > 0;
}

/* No message, no tick, no write due: b goes back.  What is in flight moves
 * on as acks and replies come in, without blocking, so that a message that
 * arrives meanwhile is taken at once (the poll waits a little for one while
 * anything is in flight); idle after a burst, free memory goes back. */
static void idle(ds_worker_t *w, ds_batch_t *b, bool inflight) {
    ds_batch_release(b);
    if (inflight && !advance(w, NULL, false))
        abandon_all(w, w->abandon ? "rebalance" : "shutdown");
    else if (!inflight && !ds_wb_owes(&w->wb))
        ds_alloc_idle(&w->alloc, ds_clock_mono_ms() - w->last_msg_ms);
}

/* ---- start and stop -------------------------------------------------------- */

ds_codec_t *ds_worker_codec(ds_worker_t *w) {
    return w->codec;
}

void ds_worker_set_rules(ds_worker_t *w, const ds_rules_t *rules) {
    __atomic_store_n(&w->next_rules, rules, __ATOMIC_RELEASE);
}

/* The registry the configuration asks for and a codec on it: with a Schema
 * Registry, the output ids are resolved at start (-1 until then); else the
 * configured ids, checked against the embedded directory now. */
static bool open_codec(ds_worker_t *w, char *errstr, size_t errstr_size) {
    const ds_config_t *cfg = w->cfg;
    w->registry = ds_registry_open(cfg, errstr, errstr_size);
    if (!w->registry)
        return false;
    ds_codec_ids_t ids = ds_codec_default_ids;
    ids.lead_score = cfg->schema_id_lead_score;
    ids.account_score = cfg->schema_id_account_score;
    ids.deal_alert = cfg->schema_id_deal_alert;
    if (ds_registry_is_remote(cfg))
        ids = (ds_codec_ids_t){-1, -1, -1, -1, -1};
    w->codec = ds_codec_new(w->registry, &ids, errstr, errstr_size);
    for (size_t i = 0; i < DS_WORKER_MAX_OUTPUTS && w->ops->outputs[i]; i++) {
        ds_output_schema_init(&w->outs[i], cfg, w->ops->outputs[i]);
        w->out_topics[i] = w->outs[i].topic;
        w->nouts = i + 1;
    }
    return w->codec != NULL;
}

/* The output schemas' registration (ds_output_schemas_start) until it
 * succeeds: a registry that does not answer yet
 * (DS_ERR_IO) is waited for with a backoff (DS_BACKOFF_SLOW_MIN_MS
 * doubling up to DS_BACKOFF_MAX_MS), the worker not ready meanwhile; any
 * other error stops it.  False when the worker must not go on (*rc says
 * how it ends: 0 after a stop signal, 1 after an error). */
static bool start_adapter(ds_worker_t *w, int *rc) {
    char err[1024];
    ds_backoff_t backoff = ds_backoff_make(DS_BACKOFF_SLOW_MIN_MS, DS_BACKOFF_MAX_MS);
    for (int attempt = 1; !ds_worker_stop; attempt++) {
        err[0] = '\0';
        ds_err_t e = ds_output_schemas_start(w->cfg, w->registry, w->codec, w->outs, w->nouts,
                                             w->ops->name, err, sizeof(err));
        if (!e) {
            if (attempt > 1)
                DS_INFO(w->ops->name, "started after %d attempts", attempt);
            w->health.started = 1;
            return true;
        }
        ds_health_set_start_why(&w->health, err);
        if (e != DS_ERR_IO) {
            DS_ERROR(w->ops->name, "cannot start: %s", err);
            *rc = 1;
            return false;
        }
        int64_t ms = ds_backoff_next(&backoff);
        DS_WARN(w->ops->name, "not started yet (attempt %d, again in %lld ms): %s", attempt,
                (long long)ms, err);
        for (int64_t until = ds_clock_mono_ms() + ms;
             !ds_worker_stop && ds_clock_mono_ms() < until;)
            ds_clock_sleep_ms(50);
    }
    *rc = 0;
    return false;
}

/* The adapter started, the worker subscribes and connects.  False when
 * it must not go on (*rc: how it ends). */
static bool start(ds_worker_t *w, int *rc) {
    if (!start_adapter(w, rc))
        return false;
    char serr[512];
    const char *topics[] = {w->topic};
    if (!ds_kafka_consumer_subscribe(w->consumer, topics, 1, serr, sizeof(serr))) {
        DS_ERROR(w->ops->name, "%s", serr);
        *rc = 1;
        return false;
    }
    DS_INFO(w->ops->name, "consuming topic=%s group=%s", w->topic, w->cfg->group_id);
    /* look the output topics up now (2 s at most, all of them): otherwise
     * the first batch's outputs wait (~0.7 s) for the producer's metadata */
    if (w->nouts && !ds_kafka_warm_topics(w->producer, w->out_topics, w->nouts, 2000))
        DS_WARN(w->ops->name, "output topics not known to the broker yet; "
                              "the first outputs wait for their metadata");
    ds_wb_start(&w->wb, ds_clock_mono_ms()); /* the first interval starts now */
    ds_health_brokers_start(&w->health, ds_clock_mono_ms());
    if (redis_connect(w, w->redis) == DS_ERR_OK)
        w->health.redis_ok = 1;
    else
        (void)redis_failed(w, w->redis, 100); /* logs it; stops on a fatal reply */
    return true;
}

/* Shutdown: finish the batches in flight, write the state of the last
 * ones and store their offsets, commit and leave the group. */
static int finish(ds_worker_t *w, int rc) {
    (void)past_shutdown_timeout(w); /* its timeout starts now */
    DS_INFO(w->ops->name, "shutting down: finishing the batches in flight, committing and "
                          "leaving the group");
    w->abandon = false;
    if (ds_batch_ring_inflight(&w->ring) && !advance(w, NULL, true))
        abandon_all(w, "shutdown timeout");
    if (ds_wb_owes(&w->wb) && !w->fatal) { /* the state of the last batches, then their offsets */
        ds_batch_t *b = ds_batch_ring_take(&w->ring);
        if (!load_stage(w, b) || !apply_stage(w, b, false) || !produce_stage(w, b) ||
            !persist_stage(w, b, true) || !advance(w, NULL, true))
            abandon_all(w, "shutdown timeout");
    }
    rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        DS_WARN(w->ops->name, "final commit: %s", rd_kafka_err2str(err));
    drop_held(w);
    err = rd_kafka_consumer_close(w->consumer);
    if (err) {
        DS_WARN(w->ops->name, "consumer close: %s", rd_kafka_err2str(err));
        rc = 1;
    }
    rd_kafka_flush(w->producer, w->cfg->shutdown_timeout_ms);
    return w->fatal ? 1 : rc;
}

/* ---- the pipeline ----------------------------------------------------------- */

/* One batch a turn, its stages in order: poll → decode → load → apply →
 * produce → persist → advance (acks, writes, store offsets).  A batch that
 * cannot finish (rebalance, shutdown past its timeout) is abandoned with
 * every batch in flight: it will be consumed again. */
int ds_worker_run(ds_worker_t *w) {
    int rc = 0;
    if (!start(w, &rc))
        return rc;
    while (!ds_worker_stop) {
        w->abandon = false;
        probe_redis(w); /* every DS_HEALTH_PROBE_MS, busy or idle */
        ds_batch_t *b = ds_batch_ring_take(&w->ring);
        if (!b) { /* every batch in flight: the oldest finishes first */
            if (!make_room(w))
                abandon_all(w, w->abandon ? "rebalance" : "shutdown");
            continue;
        }
        bool inflight = ds_batch_ring_inflight(&w->ring);
        poll_stage(w, b, inflight ? INFLIGHT_POLL_MS : poll_wait_ms(w)); /* poll, decode */
        if (w->abandon) {
            abandon_all(w, "rebalance");
            continue;
        }
        /* no message: a clock tick, or the state owed goes out on schedule
         * (a share of a closed window, a window's close, or all of it once
         * idle; writebehind.h) */
        bool tick = tick_due(w), all = false;
        if (!b->nmsgs && !tick &&
            (inflight || !ds_wb_due(&w->wb, ds_clock_mono_ms(), w->last_msg_ms, &all))) {
            idle(w, b, inflight);
            continue;
        }
        if (!load_stage(w, b) || !apply_stage(w, b, tick) || !produce_stage(w, b) ||
            !persist_stage(w, b, all) || !advance(w, b, false))
            abandon_all(w, w->abandon ? "rebalance" : "shutdown");
    }
    return finish(w, rc);
}

ds_worker_t *ds_worker_new(const ds_config_t *cfg, const char *topic, const ds_worker_ops_t *ops,
                           void *self, ds_metrics_t *metrics, char *errstr, size_t errstr_size) {
    ds_alloc_tune();
    ds_worker_t *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    w->cfg = cfg;
    w->ops = ops;
    w->self = self;
    w->metrics = metrics;
    ds_health_init(&w->health, ops->name, cfg->broker_timeout_ms);
    ds_strlcpy(w->topic, topic, sizeof(w->topic));
    ds_dlq_init(&w->dlq, ops->name, w->topic, metrics);
    w->cap = (size_t)cfg->batch_size;
    if (!ds_wb_init(&w->wb, ops, self, cfg->redis_flush_ms, (size_t)cfg->redis_flush_entities) ||
        !ds_batch_ring_init(&w->ring, w->cap, ops->event_size)) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    w->cur = &w->ring.b[0];
    if (!open_codec(w, errstr, errstr_size))
        goto fail;
    w->redis = ds_redis_new(cfg->redis_url, cfg->redis_timeout_ms, errstr, errstr_size);
    if (!w->redis)
        goto fail;
    w->wredis = ds_redis_new(cfg->redis_url, cfg->redis_timeout_ms, errstr, errstr_size);
    if (!w->wredis)
        goto fail;
    snprintf(w->redis_labels, sizeof(w->redis_labels), "worker=\"%s\"", ops->name);
    ds_redis_opts_t ro = {
        .cluster = !strcmp(cfg->redis_cluster, "on")    ? DS_REDIS_CLUSTER_ON
                   : !strcmp(cfg->redis_cluster, "off") ? DS_REDIS_CLUSTER_OFF
                                                        : DS_REDIS_CLUSTER_AUTO,
        .seeds = cfg->redis_seeds,
        .metrics = metrics,
        .metrics_labels = w->redis_labels,
        .known = w->known = ds_redis_known_new(),
    };
    if (!w->known) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    ds_redis_set_opts(w->redis, &ro); /* loads: no WAIT */
    ro.wait_replicas = cfg->redis_wait_replicas;
    ro.wait_timeout_ms = cfg->redis_wait_timeout_ms;
    ds_redis_set_opts(w->wredis, &ro);
    w->producer = ds_kafka_producer_new(cfg, errstr, errstr_size);
    if (!w->producer)
        goto fail;
    w->hooks.assigned = on_assigned;
    w->hooks.revoked = on_revoked;
    w->hooks.stats = on_stats;
    w->hooks.error = on_error;
    w->hooks.opaque = w;
    /* subscribed by ds_worker_run, once ops->start has succeeded */
    w->consumer = ds_kafka_consumer_new(cfg, NULL, 0, &w->hooks, errstr, errstr_size);
    if (!w->consumer)
        goto fail;
    w->m_polled = counter(w, "polled_records",
                          "Input records taken from the consumer into a batch (counted again "
                          "when consumed again after a rebalance or a retry)");
    w->m_consumed = counter(w, "consumed_records",
                            "Input records consumed and fully processed (state written, outputs "
                            "acknowledged, offsets stored)");
    w->m_batches = counter(w, "batches", "Batches completed");
    w->m_events[DS_WORKER_APPLIED] =
        counter(w, "applied_events", "Input events applied to the state");
    w->m_events[DS_WORKER_DUPLICATE] =
        counter(w, "duplicate_events", "Duplicate event ids applied once");
    w->m_events[DS_WORKER_SKIPPED] = counter(
        w, "replayed_events_skipped", "Redelivered events already covered by the stored state");
    w->m_outputs = counter(w, "produced_records", "Output records acknowledged by the broker");
    w->m_redis_errors = counter(w, "redis_errors", "Failed Redis pipeline runs");
    w->m_produce_errors =
        counter(w, "produce_errors", "Batches whose outputs had to be produced again");
    w->m_redis_lost = counter(w, "redis_state_lost",
                              "Times Redis came back without the state this worker wrote (its "
                              "run_id changed and a key it wrote is gone): what it holds in "
                              "memory is written again");
    for (int i = 0; metrics && i < PH__COUNT; i++) {
        char labels[96];
        snprintf(labels, sizeof(labels), "worker=\"%s\",phase=\"%s\"", ops->name, phase_names[i]);
        w->m_phase[i] = ds_metrics_histogram(
            metrics, "phase_seconds",
            "Time the worker thread spent in one step of a batch (poll and decode, Redis loads, "
            "apply, produce, formatting the Redis writes, blocked on acks, blocked on Redis "
            "writes)",
            labels, ds_latency_bounds, DS_LATENCY_BOUNDS_N);
    }
    if (metrics) {
        static const double b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
        char labels[64];
        snprintf(labels, sizeof(labels), "worker=\"%s\"", ops->name);
        w->m_batch_seconds = ds_metrics_histogram(metrics, "batch_seconds",
                                                  "Time from a batch's first message to its "
                                                  "offsets being stored",
                                                  labels, b, sizeof(b) / sizeof(b[0]));
        w->m_redis_seconds = ds_metrics_histogram(metrics, "redis_seconds",
                                                  "Time blocked on one Redis round (loads, or "
                                                  "the replies of batch writes)",
                                                  labels, b, sizeof(b) / sizeof(b[0]));
    }
    return w;
fail:
    ds_worker_destroy(w);
    return NULL;
}

void ds_worker_destroy(ds_worker_t *w) {
    if (!w)
        return;
    ds_batch_ring_free(&w->ring);
    drop_held(w);
    free(w->held);
    ds_wb_free(&w->wb);
    if (w->consumer)
        rd_kafka_destroy(w->consumer);
    if (w->producer)
        rd_kafka_destroy(w->producer);
    ds_redis_destroy(w->redis);
    ds_redis_destroy(w->wredis);
    ds_redis_known_destroy(w->known);
    ds_codec_destroy(w->codec);
    ds_registry_destroy(w->registry);
    ds_health_destroy(&w->health);
    free(w);
}

void ds_worker_count(ds_worker_t *w, ds_worker_counter_t c) {
    count(w->m_events[c], 1);
}

bool ds_worker_ready(const ds_worker_t *w, char *why, size_t why_size) {
    return ds_health_ready((ds_health_t *)&w->health, why, why_size);
}

ds_metrics_t *ds_worker_metrics(ds_worker_t *w) {
    return w->metrics;
}
ds_redis_t *ds_worker_redis(ds_worker_t *w) {
    probe_settle(w); /* the caller runs commands on it at once */
    if (!ds_redis_connected(w->redis))
        (void)redis_connect(w, w->redis); /* with the identity check; else the caller's fails */
    return w->redis;
}
