/*
 * worker.c — the batch pipeline shared by the scorer and the watcher.
 *
 * One thread owns a worker: its consumer, producer, two Redis connections
 * (one for the loads a batch needs now, one for writes that may be
 * answered later) and codec state.  Every batch goes through the same
 * stages in order:
 *
 *   collect+decode → load missing state (Redis, waited for) → apply →
 *   produce outputs → [write-behind: maybe close a window, format this
 *   batch's share of the closed window's writes (bytes, kept)] →
 *   [acks of its outputs] → send its writes → [their replies] →
 *   [a window's last share: store the window's offsets]
 *
 * Up to NBATCH batches are alive, so that the worker computes while Redis
 * writes and the broker acknowledges: while batch k is built, the outputs
 * of k-1 are being acknowledged and the writes of older ones executed
 * (fed to the socket while k is built, replies read as they arrive).
 * The rules that keep the guarantees:
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
 *
 * Readiness tells the truth: it is lost when a Redis reply is owed for
 * longer than redis.timeout_ms (writes not waited for included), when a
 * PING sent every PROBE_MS (also while idle, and while a retry waits out
 * its backoff) goes unanswered as long, when no broker has answered
 * for broker_timeout_ms (librdkafka's statistics) or all are down, and
 * when outputs are not acknowledged; it comes back with the first answer.
 * A retry's backoff ends as soon as the probe finds the server answering
 * again.  In a Redis Cluster the same holds per master: the probe's
 * PING goes to each, and a reply owed by any one of them for too long is
 * a Redis that does not answer.
 *
 * A Redis (or cluster node) whose run_id changed and that lost a key this
 * worker wrote came back empty: every entity held in memory is written
 * again (redis_emptied).  Writes that no WAIT confirmed on a node that
 * went away are rewound for instead (rewind_to_committed: consumed again
 * from the committed offsets, the state reloaded), unless that node is
 * the one that came back empty: then the rewrite replaces the rewind.
 */
#include "worker.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_clock.h"
#include "ds_kafka.h"
#include "ds_log.h"

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

typedef struct output {
    const char *topic; /* static for the worker's life (config) */
    size_t key_off, key_len, val_off, val_len, id_off, id_len;
    int dlq_index; /* >= 0: a DLQ record for batch message dlq_index */
} output_t;

typedef enum {
    B_FREE,  /* unused */
    B_BUILD, /* being collected and applied */
    B_ACKS,  /* applied; outputs produced, delivery reports pending */
    B_READY, /* outputs acknowledged; writes to send (again after a lost connection) */
    B_SENT,  /* writes sent, replies pending */
    B_DONE,  /* offsets stored (during a revoke): only to release */
} bstate_t;

#define NBATCH 6
#define IDLE_TRIM_MS 1000 /* idle this long after a message: malloc_trim */
/* How long the worker waits for a message while batches are in flight: it
 * looks at their acks and replies again in between. */
#define INFLIGHT_POLL_MS 1
/* Each batch writes at least this many of a closed window's entities. */
#define SLICE_MIN 64
/* A released batch keeps at most this much room for its Redis writes. */
#define BATCH_WRITES_KEEP (4u << 20)
/* While a window is written: how long an idle worker waits for a message
 * before it writes the next share. */
#define SLICE_IDLE_MS 5

typedef struct batch {
    bstate_t state;
    uint64_t seq;
    int64_t t0_us; /* first message polled */
    rd_kafka_message_t **msgs;
    size_t nmsgs;
    unsigned char *slot_mem;
    void **slots;
    int32_t *parts;
    ds_err_t *errs;
    const char **details;
    ds_arena_t arena;
    output_t *outs;
    size_t nouts, outs_cap;
    ds_buf_t out_bytes;
    ds_delivery_t delivery;
    bool produce_failed; /* a local produce error: treated as a failed delivery */
    ds_buf_t writes;     /* RESP bytes of the batch's Redis writes */
    size_t nwrites;
    size_t collected; /* replies of its writes read so far */
    /* non-NULL: it writes the last entity of a write-behind window; once
     * its writes are confirmed these offsets (of every batch up to the
     * window's close) are stored */
    rd_kafka_topic_partition_list_t *store;
    size_t store_msgs;
} batch_t;

struct ds_worker {
    const ds_config_t *cfg;
    const ds_worker_ops_t *ops;
    void *self;
    char topic[256];
    char dlq_topic[300];
    const char *outputs[4]; /* ds_worker_set_outputs */
    size_t noutputs;
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    ds_redis_t *redis;  /* loads (and the ops' own reads): answered at once */
    ds_redis_t *wredis; /* batch writes: sent, answered later */
    ds_kafka_hooks_t hooks;
    ds_metrics_t *metrics;

    batch_t b[NBATCH];
    batch_t *cur; /* the batch being built (ds_worker_emit) */
    uint64_t seq;
    size_t cap;
    /* messages polled while paused for a retry: processed first next time */
    rd_kafka_message_t **held;
    size_t nheld;

    /* write-behind, in windows (redis.flush_ms/_entities): `seen` has the
     * offsets of every batch built since the last window closed; a window
     * that closes takes them, and the entities it owes are written over
     * the next batches (spread over the next interval), oldest first; the
     * batch with the last one stores the window's offsets once its writes
     * are confirmed.  One window is written at a time. */
    rd_kafka_topic_partition_list_t *seen;
    size_t seen_msgs;
    bool closing; /* a closed window is being written */
    rd_kafka_topic_partition_list_t *closed;
    size_t closed_msgs;
    size_t owed, owed_total; /* its entities not formatted yet, of all */
    int64_t last_flush_ms;   /* when the last window closed */

    volatile int assigned;
    volatile int redis_ok, kafka_ok;
    volatile int started; /* ops->start succeeded (or there is none) */
    /* decoding waits for the schema registry: the message that could not
     * be decoded and every one after it are held, partitions paused, and
     * tried again at decode_retry_ms (backoff decode_backoff_ms) */
    volatile int decode_ok;
    int64_t decode_retry_ms, decode_backoff_ms;
    pthread_mutex_t why_lock;
    char start_why[512]; /* why it has not started yet, for /readyz */
    char redis_why[300]; /* the last Redis failure, for /readyz (why_lock) */
    char redis_labels[64];
    int64_t stop_ms; /* when the worker first saw ds_worker_stop */
    bool fatal;      /* Redis said something retrying cannot fix */
    /* the Redis probe (probe_redis) and the servers' identities */
    bool probing;            /* a PING in flight on `redis` */
    int64_t last_probe_ms;   /* when the last one was sent */
    ds_redis_known_t *known; /* run_ids and proofs, shared by redis and wredis */
    /* the brokers (on_stats, on_error); read by ds_worker_ready */
    int64_t broker_answer_ms; /* when their responses last grew (atomic) */
    int64_t broker_rx;
    volatile int brokers_down; /* librdkafka: all brokers down */
    volatile int stats_seen;
    bool abandon;
    bool paused;
    int64_t last_tick;
    int64_t last_msg_ms; /* when the last message was collected */
    bool trimmed;        /* free memory given back since then */
    ds_log_rl_t rl_redis, rl_kafka, rl_msg, rl_key;

    ds_counter_t *m_polled, *m_consumed, *m_batches, *m_outputs, *m_redis_errors, *m_produce_errors,
        *m_redis_lost;
    ds_histogram_t *m_phase[8];
    ds_histogram_t *m_batch_seconds, *m_redis_seconds;
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

static void dlq_count(ds_worker_t *w, ds_err_t code) {
    if (!w->metrics)
        return;
    char labels[160];
    snprintf(labels, sizeof(labels), "worker=\"%s\",reason=\"%s\"", w->ops->name,
             ds_err2str(code));
    count(ds_metrics_counter(w->metrics, "dlq_records", "Input records sent to the DLQ, by reason",
                             labels),
          1);
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
    snprintf(labels, sizeof(labels), "worker=\"%s\",topic=\"%s\",partition=\"%d\"",
             w->ops->name, w->topic, (int)partition);
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
static void on_stats(void *opaque, const char *json, size_t len) {
    ds_worker_t *w = opaque;
    lag_walk_t lw = {w, false};
    ds_kafka_brokers_t br;
    if (ds_kafka_stats_read(json, len, w->topic, w->metrics ? lag_one : NULL, &lw, &br)) {
        ds_log_rl(&w->rl_msg, 60000, DS_LOG_WARN, w->ops->name,
                  "unreadable librdkafka statistics (%zu bytes)", len);
        return;
    }
    int64_t now = ds_clock_mono_ms();
    if (!w->stats_seen) { /* the count so far; silence is timed from the start */
        w->broker_rx = br.rx;
    } else if (br.rx != w->broker_rx) {
        if (w->brokers_down || now - __atomic_load_n(&w->broker_answer_ms, __ATOMIC_RELAXED) >
                                   w->cfg->broker_timeout_ms)
            DS_INFO(w->ops->name, "a broker answers again");
        w->broker_rx = br.rx;
        __atomic_store_n(&w->broker_answer_ms, now, __ATOMIC_RELAXED);
        w->brokers_down = 0;
    } else if (now - __atomic_load_n(&w->broker_answer_ms, __ATOMIC_RELAXED) >
               w->cfg->broker_timeout_ms) {
        ds_log_rl(&w->rl_kafka, 5000, DS_LOG_WARN, w->ops->name,
                  "no broker has answered for %lld ms (broker_timeout_ms %d): not ready",
                  (long long)(now - w->broker_answer_ms), w->cfg->broker_timeout_ms);
    }
    w->stats_seen = 1;
}

static void on_error(void *opaque, int err, const char *reason) {
    ds_worker_t *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        w->brokers_down = 1;
        ds_log_rl(&w->rl_kafka, 5000, DS_LOG_WARN, w->ops->name,
                  "all brokers are down (%s): not ready", reason);
        return;
    }
    ds_log_rl(&w->rl_kafka, 5000, DS_LOG_WARN, w->ops->name, "kafka: %s: %s",
              rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* The phases of a batch, for the histogram dealsignal_phase_seconds{phase}. */
enum { PH_COLLECT, PH_LOAD, PH_APPLY, PH_PRODUCE, PH_FORMAT, PH_ACKS, PH_WRITES, PH__COUNT };
static const char *const phase_names[PH__COUNT] = {
    "collect_decode", "load", "apply", "produce", "format_writes", "wait_acks", "redis_writes"};

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

typedef enum { PROBE_IDLE, PROBE_WAIT, PROBE_UP, PROBE_DOWN } probe_t;
static probe_t probe_redis(ds_worker_t *w);

/* What a retry waits for: Redis unreachable or not answering (the wait
 * ends as soon as the probe gets an answer), Redis answering with an error
 * (the whole backoff: it would answer the same at once), the broker (ends
 * once a broker answers again if none did when the wait began).  A stop
 * request is noticed here too, so that its timeout starts then, and a
 * backoff does not outlast it. */
typedef enum { WAIT_REDIS_DOWN, WAIT_REDIS_ERROR, WAIT_KAFKA } wait_for_t;

static bool brokers_silent(const ds_worker_t *w);

static void backoff_wait(ds_worker_t *w, int64_t ms, wait_for_t what) {
    set_paused(w, true);
    bool silent = what == WAIT_KAFKA && brokers_silent(w);
    int64_t end = ds_clock_mono_ms() + ms;
    while (!w->abandon && !w->fatal && ds_clock_mono_ms() < end && !past_shutdown_timeout(w)) {
        serve_consumer(w, 20);
        if (what == WAIT_REDIS_DOWN && probe_redis(w) == PROBE_UP)
            break; /* it answers again: retry now, whatever the backoff */
        if (silent && !brokers_silent(w))
            break;
    }
}

static int64_t next_backoff(int64_t cur) { return cur >= 5000 ? 5000 : cur * 2; }

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

/* ---- batches ------------------------------------------------------------- */

static bool batch_init(batch_t *b, size_t cap, size_t event_size) {
    memset(b, 0, sizeof(*b));
    b->msgs = calloc(cap, sizeof(*b->msgs));
    b->slots = calloc(cap, sizeof(*b->slots));
    b->parts = calloc(cap, sizeof(*b->parts));
    b->slot_mem = calloc(cap, event_size);
    b->errs = calloc(cap, sizeof(*b->errs));
    b->details = calloc(cap, sizeof(*b->details));
    ds_arena_init(&b->arena, 0);
    ds_buf_init(&b->out_bytes, 0);
    ds_buf_init(&b->writes, 0);
    return b->msgs && b->slots && b->parts && b->slot_mem && b->errs && b->details;
}

/* Back to B_FREE: messages destroyed, buffers kept for reuse. */
static void batch_release(batch_t *b) {
    for (size_t i = 0; i < b->nmsgs; i++)
        rd_kafka_message_destroy(b->msgs[i]);
    b->nmsgs = 0;
    b->nouts = 0;
    b->nwrites = 0;
    b->collected = 0;
    b->produce_failed = false;
    if (b->store) /* abandoned: nothing is stored */
        rd_kafka_topic_partition_list_destroy(b->store);
    b->store = NULL;
    b->store_msgs = 0;
    memset(&b->delivery, 0, sizeof(b->delivery));
    ds_buf_reset(&b->out_bytes);
    /* a batch that wrote a large share (or a whole window, when idle) does
     * not keep that much memory for the batches that reuse it */
    if (b->writes.cap > BATCH_WRITES_KEEP)
        ds_buf_free(&b->writes);
    ds_buf_reset(&b->writes);
    ds_arena_reset(&b->arena);
    b->state = B_FREE;
}

static void batch_free(batch_t *b) {
    batch_release(b);
    free(b->msgs);
    free(b->slots);
    free(b->parts);
    free(b->slot_mem);
    free(b->errs);
    free(b->details);
    free(b->outs);
    ds_buf_free(&b->out_bytes);
    ds_buf_free(&b->writes);
    ds_arena_free(&b->arena);
}

/* The live batches in `state`, oldest first; returns how many. */
static size_t batches_in(ds_worker_t *w, bstate_t state, batch_t **out) {
    size_t n = 0;
    for (int i = 0; i < NBATCH; i++)
        if (w->b[i].state == state)
            out[n++] = &w->b[i];
    for (size_t i = 1; i < n; i++) /* insertion sort by seq: n <= NBATCH */
        for (size_t j = i; j > 0 && out[j]->seq < out[j - 1]->seq; j--) {
            batch_t *t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static bool any_inflight(const ds_worker_t *w) {
    for (int i = 0; i < NBATCH; i++)
        if (w->b[i].state != B_FREE && w->b[i].state != B_BUILD)
            return true;
    return false;
}

/* Raise l's offset of (topic, partition) to at least `next`. */
static void raise_offset(rd_kafka_topic_partition_list_t *l, rd_kafka_topic_partition_t **tp,
                         const char *topic, int32_t partition, int64_t next) {
    if (!*tp) {
        *tp = rd_kafka_topic_partition_list_find(l, topic, partition);
        if (!*tp) /* may move the list's elements: *tp is the only pointer kept */
            *tp = rd_kafka_topic_partition_list_add(l, topic, partition);
    }
    if (next > (*tp)->offset)
        (*tp)->offset = next;
}

static void add_offsets(rd_kafka_topic_partition_list_t *l, const batch_t *b) {
    /* messages come in runs of one partition: look the list up (a linear
     * search comparing topic names) once per run */
    rd_kafka_topic_partition_t *tp = NULL;
    const rd_kafka_message_t *prev = NULL;
    for (size_t i = 0; i < b->nmsgs; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        if (!prev || m->rkt != prev->rkt || m->partition != prev->partition)
            tp = NULL;
        raise_offset(l, &tp, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
        prev = m;
    }
}

/* Forget the write-behind windows (their state is being dropped). */
static void drop_windows(ds_worker_t *w) {
    rd_kafka_topic_partition_list_destroy(w->seen);
    w->seen = rd_kafka_topic_partition_list_new(8);
    w->seen_msgs = 0;
    if (w->closed)
        rd_kafka_topic_partition_list_destroy(w->closed);
    w->closed = NULL;
    w->closed_msgs = 0;
    w->closing = false;
    w->owed = w->owed_total = 0;
}

/* The batch's writes are confirmed (and, as batches finish in order, those
 * of every batch before it).  The batch that wrote a window's last entity
 * stores the offsets of every batch up to the window's close: their
 * outputs are acknowledged and their state is in Redis. */
static void batch_done(ds_worker_t *w, batch_t *b) {
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
    b->state = B_DONE;
}

/* ---- rebalance ----------------------------------------------------------- */

static void drop_held(ds_worker_t *w) {
    for (size_t i = 0; i < w->nheld; i++)
        rd_kafka_message_destroy(w->held[i]);
    w->nheld = 0;
    w->decode_ok = 1; /* nothing waits for the schema registry any more */
}

static void on_assigned(void *opaque, const rd_kafka_topic_partition_list_t *parts) {
    ds_worker_t *w = opaque;
    w->assigned = parts->cnt;
    w->paused = false;
    if (w->ops->assigned)
        w->ops->assigned(w->self, parts);
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
    batch_t *sent[NBATCH];
    size_t n = batches_in(w, B_SENT, sent);
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
    drop_windows(w); /* their state is dropped below: replayed by the next owner */
    drop_held(w);
    w->ops->reset(w->self);
    if (w->ops->assigned)
        w->ops->assigned(w->self, NULL); /* we own nothing now */
    w->assigned = 0;
}

/* Release every batch without storing anything more and drop the state. */
static void abandon_all(ds_worker_t *w, const char *why) {
    size_t lost = 0;
    for (int i = 0; i < NBATCH; i++) {
        if (w->b[i].state != B_DONE)
            lost += w->b[i].nmsgs;
        batch_release(&w->b[i]);
    }
    if (ds_redis_inflight(w->wredis))
        ds_redis_close(w->wredis); /* their replies are of no use any more */
    lost += w->seen_msgs + w->closed_msgs;
    drop_windows(w);
    w->ops->reset(w->self);
    if (lost && why)
        DS_WARN(w->ops->name, "%zu messages abandoned (%s): they will be consumed again", lost,
                why);
}

/* ---- outputs ------------------------------------------------------------- */

void ds_worker_emit(ds_worker_t *w, const char *topic, const char *key, const void *val,
                    size_t vlen, const char *id) {
    batch_t *b = w->cur;
    if (b->nouts == b->outs_cap) {
        size_t nc = b->outs_cap ? b->outs_cap * 2 : 1024;
        output_t *no = realloc(b->outs, nc * sizeof(*no));
        if (!no) {
            DS_ERROR(w->ops->name, "out of memory queuing an output");
            abort(); /* losing an output silently is not an option */
        }
        b->outs = no;
        b->outs_cap = nc;
    }
    output_t *o = &b->outs[b->nouts];
    size_t klen = strlen(key), ilen = id ? strlen(id) : 0;
    o->topic = topic;
    o->dlq_index = -1;
    o->key_off = b->out_bytes.len;
    o->key_len = klen;
    o->val_off = o->key_off + klen;
    o->val_len = vlen;
    o->id_off = o->val_off + vlen;
    o->id_len = ilen;
    if (ds_buf_append(&b->out_bytes, key, klen) || ds_buf_append(&b->out_bytes, val, vlen) ||
        ds_buf_append(&b->out_bytes, id ? id : "", ilen)) {
        DS_ERROR(w->ops->name, "out of memory queuing an output");
        abort();
    }
    b->nouts++;
}

static void emit_dlq(ds_worker_t *w, size_t index) {
    ds_worker_emit(w, w->dlq_topic, "", "", 0, NULL);
    w->cur->outs[w->cur->nouts - 1].dlq_index = (int)index;
}

static rd_kafka_headers_t *dlq_headers(ds_worker_t *w, const batch_t *b, size_t i) {
    const rd_kafka_message_t *m = b->msgs[i];
    rd_kafka_headers_t *h = rd_kafka_headers_new(5);
    char part[16], off[32];
    snprintf(part, sizeof(part), "%d", (int)m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    const char *code = ds_err2str(b->errs[i]);
    const char *detail = b->details[i] ? b->details[i] : code;
    rd_kafka_header_add(h, "dealsignal.error", -1, code, -1);
    rd_kafka_header_add(h, "dealsignal.detail", -1, detail, -1);
    rd_kafka_header_add(h, "dealsignal.source.topic", -1, w->topic, -1);
    rd_kafka_header_add(h, "dealsignal.source.partition", -1, part, -1);
    rd_kafka_header_add(h, "dealsignal.source.offset", -1, off, -1);
    return h;
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
    rd_kafka_message_t **nh = realloc(w->held, (w->nheld + 1) * sizeof(*nh));
    if (!nh) {
        /* cannot keep it: rewind so it is fetched again */
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

/* Hand every output of b to the producer (no waiting for acks). */
static void produce_batch(ds_worker_t *w, batch_t *b) {
    memset(&b->delivery, 0, sizeof(b->delivery));
    b->produce_failed = false;
    const unsigned char *bytes = b->out_bytes.data;
    for (size_t i = 0; i < b->nouts; i++) {
        const output_t *o = &b->outs[i];
        ds_err_t e;
        if (o->dlq_index >= 0) {
            const rd_kafka_message_t *m = b->msgs[o->dlq_index];
            e = ds_kafka_produce(w->producer, o->topic, m->key, m->key_len, m->payload, m->len,
                                 dlq_headers(w, b, (size_t)o->dlq_index), &b->delivery);
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
static void drain_deliveries(ds_worker_t *w, batch_t *b) {
    bool purged = false;
    while (b->delivery.outstanding) {
        if (ds_kafka_wait(w->producer, &b->delivery, 1000) != DS_ERR_TIMEOUT)
            continue;
        w->kafka_ok = 0;
        set_paused(w, true);
        serve_consumer(w, 0);
        if (!purged && (past_shutdown_timeout(w) || w->fatal)) {
            rd_kafka_purge(w->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            purged = true;
        }
    }
}

static bool batch_acked(const batch_t *b) {
    return !b->produce_failed && !b->delivery.failed && !b->delivery.outstanding;
}

/* Wait for the acks of every batch in B_ACKS but `except` (the newest,
 * just built: its acks are waited for next time), oldest first.  When any
 * output failed, the outputs of every batch in B_ACKS, `except` included,
 * are produced again in batch order (same ids), so that a record produced
 * again never lands after a newer one of the same key; this repeats until
 * all are acknowledged.  The waited-for batches are then B_READY.  Without
 * `block`, nothing is waited for: the oldest batches whose acks are all in
 * become B_READY (a failure still repairs at once).  False when abandoned. */
/* The first n batches of `acks` are acknowledged: their writes may go. */
static void acks_in(ds_worker_t *w, batch_t **acks, size_t n) {
    for (size_t i = 0; i < n; i++) {
        count(w->m_outputs, acks[i]->nouts);
        acks[i]->state = B_READY;
    }
}

static bool wait_acks(ds_worker_t *w, const batch_t *except, bool block) {
    batch_t *acks[NBATCH];
    size_t all = batches_in(w, B_ACKS, acks);
    size_t n = all && acks[all - 1] == except ? all - 1 : all;
    if (!n)
        return true;
    if (!block) {
        /* only the oldest batches whose acks are all in move on (in batch
         * order); the others wait for a later call, unless an output
         * failed: then the repair below runs now */
        rd_kafka_poll(w->producer, 0);
        size_t k = 0;
        while (k < n && batch_acked(acks[k]))
            k++;
        bool failed = false;
        for (size_t i = k; i < n; i++)
            failed |= acks[i]->produce_failed || acks[i]->delivery.failed;
        if (!failed) {
            acks_in(w, acks, k);
            return true;
        }
    }
    int64_t backoff = 100;
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
            if (!batch_acked(acks[i])) {
                ok = false;
                failed += acks[i]->delivery.failed + acks[i]->produce_failed;
                if (!first)
                    first = acks[i]->delivery.first_err;
            }
            total += acks[i]->nouts;
        }
        if (ok)
            break;
        w->kafka_ok = 0;
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
        backoff_wait(w, backoff, WAIT_KAFKA);
        backoff = next_backoff(backoff);
        if (must_abandon(w))
            return false;
        for (size_t i = 0; i < all; i++)
            produce_batch(w, acks[i]);
    }
    w->kafka_ok = 1;
    acks_in(w, acks, n);
    return true;
}

/* ---- Redis ---------------------------------------------------------------- */

typedef struct prefetch_ctx {
    ds_worker_t *w;
    ds_err_t err;
} prefetch_ctx_t;

static void on_prefetch_reply(void *opaque, size_t index, const redisReply *reply) {
    prefetch_ctx_t *pc = opaque;
    ds_err_t e = pc->w->ops->prefetched(pc->w->self, index, reply);
    if (e && !pc->err)
        pc->err = e;
}

/* A Redis round failed.  Returns false when retrying cannot help: the
 * worker then stops (every worker of the process: ds_worker_stop). */
static bool redis_failed(ds_worker_t *w, ds_redis_t *r, int64_t backoff) {
    w->redis_ok = 0;
    count(w->m_redis_errors, 1);
    const char *why = ds_redis_errstr(r);
    pthread_mutex_lock(&w->why_lock);
    ds_strlcpy(w->redis_why, why[0] ? why : "no reason given", sizeof(w->redis_why));
    pthread_mutex_unlock(&w->why_lock);
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
    if (!w->redis_ok)
        DS_INFO(w->ops->name, "redis is reachable again");
    w->redis_ok = 1;
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
    size_t before = w->ops->dirty_count(w->self);
    w->ops->rewrite_all(w->self, owned);
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

/* The probe: one PING in flight at a time on the load connection, sent
 * every PROBE_MS.  A worker with nothing to ask of Redis (idle, or every
 * unit in memory) finds out within redis.timeout_ms that it stopped
 * answering (ds_redis_collect_avail times the reply out), and a retry that
 * waits out its backoff finds out at once that it answers again.  Without
 * waiting; UP when an answer came now, DOWN on a failure. */
#define PROBE_MS 250
static const char ping_cmd[] = "*1\r\n$4\r\nPING\r\n";

static probe_t probe_redis(ds_worker_t *w) {
    if (w->probing) {
        size_t got = 0;
        if (ds_redis_collect_avail(w->redis, 1, &got)) {
            w->probing = false;
            (void)redis_failed(w, w->redis, PROBE_MS);
            return PROBE_DOWN;
        }
        if (!got)
            return PROBE_WAIT;
        w->probing = false;
        redis_fine(w);
        return PROBE_UP;
    }
    int64_t now = ds_clock_mono_ms();
    if (now - w->last_probe_ms < PROBE_MS)
        return PROBE_IDLE;
    w->last_probe_ms = now;
    /* (in a cluster the PING goes to every master, connecting again those
     * whose connection was lost: a node that came back empty shows here) */
    ds_err_t e = redis_connect(w, w->redis);
    if (!e)
        e = ds_redis_send(w->redis, ping_cmd, sizeof(ping_cmd) - 1, 1);
    redis_emptied(w);
    if (e) {
        (void)redis_failed(w, w->redis, PROBE_MS);
        return PROBE_DOWN;
    }
    w->probing = true;
    return PROBE_WAIT;
}

/* The load connection is about to be used synchronously: read the probe's
 * reply first (it is in by now unless Redis stopped answering; then the
 * connection is dropped and the caller's connect fails or reconnects).
 * A failure is reported as the probe's own would be: in a cluster the
 * caller's connect and reads may well succeed on the other masters, and a
 * worker that checks its clock often (the watcher) reads the probe's
 * reply here rather than in probe_redis. */
static void probe_settle(ds_worker_t *w) {
    if (!w->probing)
        return;
    w->probing = false;
    if (ds_redis_collect(w->redis, 1) == DS_ERR_OK) {
        redis_fine(w);
    } else {
        (void)redis_failed(w, w->redis, PROBE_MS);
        ds_redis_close(w->redis);
    }
}

/* Load what batch b needs (rounds until the worker asks for nothing). */
static bool load_stage(ds_worker_t *w, batch_t *b) {
    int64_t backoff = 100;
    for (;;) {
        probe_settle(w);
        ds_err_t e = redis_connect(w, w->redis);
        bool answered = false;
        if (!e) {
            int64_t t0 = ds_clock_mono_us();
            for (int round = 0; !e; round++) {
                size_t n = w->ops->prefetch(w->self, w->redis, b->slots, b->parts, b->nmsgs,
                                            round);
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
            return true;
        }
        /* connected still: Redis answered, with an error */
        wait_for_t what = ds_redis_connected(w->redis) ? WAIT_REDIS_ERROR : WAIT_REDIS_DOWN;
        ds_redis_discard(w->redis);
        if (!redis_failed(w, w->redis, backoff))
            return false;
        backoff_wait(w, backoff, what);
        backoff = next_backoff(backoff);
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

/* Send the writes of every B_READY batch (oldest first) and read the
 * replies of the B_SENT ones as `wait` says: a batch whose replies are all
 * in is done, in batch order.  On a lost connection everything sent but
 * not confirmed is sent again.  False when abandoned. */
static bool writes_stage(ds_worker_t *w, wait_t wait) {
    int64_t backoff = 100;
    for (;;) {
        ds_err_t e = redis_connect(w, w->wredis);
        bool answered = false;
        batch_t *bs[NBATCH];
        size_t n = e ? 0 : batches_in(w, B_READY, bs);
        for (size_t i = 0; !e && i < n; i++) {
            e = ds_redis_send(w->wredis, bs[i]->writes.data, bs[i]->writes.len, bs[i]->nwrites);
            if (!e) {
                bs[i]->state = B_SENT;
                bs[i]->collected = 0;
            }
        }
        if (!e) {
            int64_t t0 = ds_clock_mono_us();
            n = batches_in(w, B_SENT, bs);
            for (size_t i = 0; !e && i < n; i++) {
                batch_t *b = bs[i];
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
                batch_release(b);
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
        n = batches_in(w, B_SENT, bs);
        for (size_t i = 0; i < n; i++)
            bs[i]->state = B_READY;
        if (!redis_failed(w, w->wredis, backoff))
            return false;
        /* writes lost with the connection (ds_redis_take_lost) are looked
         * at once Redis answers again, after the round sent again: then
         * it is known whether it came back empty (everything held written
         * again) or not (rewind) */
        backoff_wait(w, backoff, what);
        backoff = next_backoff(backoff);
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
static bool advance(ds_worker_t *w, batch_t *keep, bool drain) {
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

/* ---- the batch ----------------------------------------------------------- */

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
 * and one checkpoint that describes them.  Otherwise: DLQ wrong_key, and a
 * warning that says how to fix the producer. */
static ds_err_t check_key(ds_worker_t *w, const rd_kafka_message_t *m, const void *slot,
                          char *detail, size_t detail_size) {
    const char *id_name = "unit id";
    const char *id = w->ops->unit_key(w->self, slot, &id_name);
    size_t len = id ? strlen(id) : 0;
    if (id && len == m->key_len && !memcmp(id, m->key, len))
        return DS_ERR_OK;
    char key[100], want[100];
    printable(m->key, m->key_len, key, sizeof(key));
    printable(id ? id : "", len, want, sizeof(want));
    snprintf(detail, detail_size, "key \"%s\" is not the record's %s \"%s\" (expected key)", key,
             id_name, want);
    ds_log_rl(&w->rl_key, 10000, DS_LOG_WARN, w->ops->name,
              "record keyed by another id than its unit's, sent to the DLQ (wrong_key): "
              "topic=%s partition=%d offset=%lld key=\"%s\" expected=\"%s\" (%s). "
              "Fix the producer: key every %s record by %s, so that one unit's records share "
              "a partition; or re-key the topic with `dealsignal repartition` "
              "(docs/INPUT-KEYS.md)",
              w->topic, (int)m->partition, (long long)m->offset, key, want, id_name, w->topic,
              w->ops->unit_key_doc);
    return DS_ERR_WRONG_KEY;
}

/* Add m to b, decoded; false (m not added) when it cannot be decoded now
 * because the schema registry did not answer (DS_ERR_IO from decode). */
static bool add_msg(ds_worker_t *w, batch_t *b, rd_kafka_message_t *m) {
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
        w->decode_backoff_ms = w->decode_ok ? 200 : next_backoff(w->decode_backoff_ms);
        w->decode_retry_ms = now + w->decode_backoff_ms;
        if (w->decode_ok)
            DS_WARN(w->ops->name,
                    "cannot decode topic=%s partition=%d offset=%lld yet, holding it and what "
                    "follows: %s",
                    w->topic, (int)m->partition, (long long)m->offset, detail);
        w->decode_ok = 0;
        return false;
    }
    if (!w->decode_ok) {
        DS_INFO(w->ops->name, "decoding again: the schema registry answered");
        w->decode_ok = 1;
    }
    b->errs[i] = e;
    if (e) {
        b->details[i] = ds_arena_strndup(&b->arena, detail, strlen(detail));
        if (e != DS_ERR_WRONG_KEY) /* check_key() said it, with the fix */
            ds_log_rl(&w->rl_msg, 2000, DS_LOG_WARN, w->ops->name,
                      "bad record to DLQ topic=%s partition=%d offset=%lld error=%s detail=%s",
                      w->topic, (int)m->partition, (long long)m->offset, ds_err2str(e), detail);
    }
    return true;
}

/* Keep m (not decodable yet) as the last held message, partitions paused. */
static void hold(ds_worker_t *w, rd_kafka_message_t *m) {
    rd_kafka_message_t **nh = realloc(w->held, (w->nheld + 1) * sizeof(*nh));
    if (!nh) { /* cannot keep it: rewind so it is fetched again */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
            m->offset;
        rd_kafka_seek_partitions(w->consumer, l, 1000);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_message_destroy(m);
    } else {
        w->held = nh;
        w->held[w->nheld++] = m;
    }
    set_paused(w, true);
}

/* Once its unit is loaded: an event whose unit is bound by its checkpoint
 * to another partition is not applied (DLQ wrong_partition).  Its unit's
 * records reach two partitions (two producers with different
 * partitioners, or a topic whose partition count changed): two owners
 * could apply them at once, and one checkpoint cannot describe both. */
static bool check_partition(ds_worker_t *w, batch_t *b, size_t i) {
    if (!w->ops->unit_partition)
        return true;
    const rd_kafka_message_t *m = b->msgs[i];
    int32_t bound = w->ops->unit_partition(w->self, b->slots[i]);
    if (bound < 0 || bound == m->partition)
        return true;
    char key[100], detail[256];
    printable(m->key, m->key_len, key, sizeof(key));
    snprintf(detail, sizeof(detail),
             "unit \"%s\" is bound to partition %d by its checkpoint; this record is on "
             "partition %d",
             key, (int)bound, (int)m->partition);
    b->errs[i] = DS_ERR_WRONG_PARTITION;
    b->details[i] = ds_arena_strndup(&b->arena, detail, strlen(detail));
    ds_log_rl(&w->rl_key, 10000, DS_LOG_WARN, w->ops->name,
              "record on another partition than its unit's, sent to the DLQ (wrong_partition): "
              "topic=%s partition=%d offset=%lld key=\"%s\" unit_partition=%d. Every producer "
              "of %s must use the same partitioner (e.g. -X partitioner=murmur2_random for "
              "librdkafka beside Java producers); after a change of the partition count, "
              "rebuild the state by replay (docs/INPUT-KEYS.md)",
              w->topic, (int)m->partition, (long long)m->offset, key, (int)bound, w->topic);
    return false;
}

/* Collect up to batch.size messages: wait up to `wait_ms` for the first,
 * then take what is already there, for at most batch.max_ms. */
static void collect(ds_worker_t *w, batch_t *b, int wait_ms) {
    size_t held = w->nheld;
    if (held && !w->decode_ok) { /* waiting for the schema registry */
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

/* ---- write-behind ------------------------------------------------------- */

static int64_t flush_ms(const ds_worker_t *w) { return w->cfg->redis_flush_ms; }

static size_t flush_entities(const ds_worker_t *w) { return (size_t)w->cfg->redis_flush_entities; }

/* After this long without a message the worker writes all it owes: a
 * tenth of the interval (100 ms by default).  A stream with pauses gets
 * its state to Redis soon after each burst; one that never pauses is
 * written in windows. */
static int64_t idle_flush_ms(const ds_worker_t *w) { return flush_ms(w) / 10; }

/* Whether state or offsets are still to be written. */
static bool owes(const ds_worker_t *w) {
    return w->closing || w->seen_msgs || w->ops->dirty_count(w->self);
}

/* Close a write-behind window: it takes the offsets seen since the last
 * one and owes the entities dirty now. */
static void close_window(ds_worker_t *w, int64_t now) {
    w->closed = w->seen;
    w->closed_msgs = w->seen_msgs;
    w->seen = rd_kafka_topic_partition_list_new(8);
    w->seen_msgs = 0;
    w->owed = w->owed_total = w->ops->close(w->self);
    w->closing = true;
    w->last_flush_ms = now;
}

/* How many of the closed window's entities a batch writes: an even share
 * of them over the interval that follows the close (the next window
 * closes when they are all written), at least SLICE_MIN, all of them once
 * the interval is over (redis.flush_ms 0: all at once).  So the formatting
 * and Redis's work come in small steps, not as a stop of the worker every
 * interval, and an entity's change reaches Redis within two intervals. */
static size_t slice(const ds_worker_t *w, int64_t now) {
    int64_t pace = flush_ms(w), since = now - w->last_flush_ms;
    if (pace <= 0 || since >= pace)
        return w->owed;
    size_t due = (size_t)((double)w->owed_total * (double)since / (double)pace);
    size_t done = w->owed_total - w->owed;
    size_t n = due > done ? due - done : 0;
    if (n < SLICE_MIN)
        n = SLICE_MIN;
    return n < w->owed ? n : w->owed;
}

/* Take b's offsets into store (merged: the larger offset of a partition). */
static void merge_store(batch_t *b, rd_kafka_topic_partition_list_t *l, size_t msgs) {
    b->store_msgs += msgs;
    if (!b->store) {
        b->store = l;
        return;
    }
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = NULL;
        raise_offset(b->store, &tp, l->elems[i].topic, l->elems[i].partition,
                     l->elems[i].offset);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* The write-behind step of batch b: close a window when its limits are
 * reached (or nothing is dirty: a window with no writes, so that the
 * offsets are stored as soon as the batch is acknowledged), then format
 * the batch's share of the closed window's writes.  With `all` (shutdown,
 * idle), everything: the window in hand, then one more with the rest. */
static void write_behind(ds_worker_t *w, batch_t *b, int64_t now, bool all) {
    ds_redis_capture(w->wredis, &b->writes, &b->nwrites);
    for (;;) {
        if (!w->closing) {
            size_t dirty = w->ops->dirty_count(w->self);
            if (all || dirty == 0 || now - w->last_flush_ms >= flush_ms(w) ||
                dirty >= flush_entities(w))
                close_window(w, now);
            else
                break;
        }
        size_t n = all ? w->owed : slice(w, now);
        bool last = n == w->owed;
        w->ops->persist(w->self, w->wredis, n, last);
        w->ops->persisted(w->self, n, last); /* the bytes hold it now */
        w->owed -= n;
        if (!last)
            break;
        merge_store(b, w->closed, w->closed_msgs);
        w->closed = NULL;
        w->closed_msgs = 0;
        w->closing = false;
        if (!all || !owes(w))
            break;
    }
    /* redis.wait_replicas: the window's writes are on that many replicas
     * before its offsets are stored (the WAIT's reply fails the batch) */
    if (b->store)
        ds_redis_capture_wait(w->wredis);
    ds_redis_capture(w->wredis, NULL, NULL);
}

/* Build batch b (possibly empty: a clock tick, a share of a window's
 * writes, or a flush): load, apply, produce its outputs and take its step
 * of the write-behind (write_behind(); `flush`: everything owed).
 * False when abandoned. */
static bool build_batch(ds_worker_t *w, batch_t *b, bool tick, bool flush) {
    int64_t tp = ds_clock_mono_us();
    if (!b->t0_us)
        b->t0_us = tp;
    if (!load_stage(w, b))
        return false;
    phase_add(w, PH_LOAD, &tp);
    w->cur = b;
    for (size_t i = 0; i < b->nmsgs; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        if (b->errs[i] || !check_partition(w, b, i)) {
            emit_dlq(w, i);
            dlq_count(w, b->errs[i]);
            continue;
        }
        w->ops->apply(w->self, w, b->slots[i], m->partition, m->offset);
        if ((i & 255) == 255)
            ds_redis_pump(w->wredis);
    }
    if (tick && w->ops->tick)
        w->ops->tick(w->self, w, ds_clock_now_ms());
    phase_add(w, PH_APPLY, &tp);
    produce_batch(w, b);
    phase_add(w, PH_PRODUCE, &tp);
    add_offsets(w->seen, b);
    w->seen_msgs += b->nmsgs;
    int64_t now = ds_clock_mono_ms();
    write_behind(w, b, now, flush);
    phase_add(w, PH_FORMAT, &tp);
    b->state = B_ACKS;
    return true;
}

static batch_t *free_batch(ds_worker_t *w) {
    for (int i = 0; i < NBATCH; i++)
        if (w->b[i].state == B_FREE)
            return &w->b[i];
    return NULL;
}

void ds_worker_set_outputs(ds_worker_t *w, const char *const *topics, size_t n) {
    w->noutputs = 0;
    for (size_t i = 0; i < n && i < sizeof(w->outputs) / sizeof(w->outputs[0]); i++)
        w->outputs[w->noutputs++] = topics[i];
}

/* ops->start until it succeeds: a dependency that does not answer yet
 * (DS_ERR_IO) is waited for with a backoff (START_BACKOFF_MIN_MS doubling
 * up to START_BACKOFF_MAX_MS), the worker not ready meanwhile; any other
 * error stops it.  False when the worker must not go on (*rc says how it
 * ends: 0 after a stop signal, 1 after an error). */
#define START_BACKOFF_MIN_MS 200
#define START_BACKOFF_MAX_MS 5000

static void set_start_why(ds_worker_t *w, const char *why) {
    pthread_mutex_lock(&w->why_lock);
    snprintf(w->start_why, sizeof(w->start_why), "%s", why);
    pthread_mutex_unlock(&w->why_lock);
}

static bool start(ds_worker_t *w, int *rc) {
    char err[1024];
    int64_t backoff = START_BACKOFF_MIN_MS;
    for (int attempt = 1; !ds_worker_stop; attempt++) {
        err[0] = '\0';
        ds_err_t e = w->ops->start ? w->ops->start(w->self, err, sizeof(err)) : DS_ERR_OK;
        if (!e) {
            if (attempt > 1)
                DS_INFO(w->ops->name, "started after %d attempts", attempt);
            w->started = 1;
            return true;
        }
        if (e != DS_ERR_IO) {
            DS_ERROR(w->ops->name, "cannot start: %s", err);
            set_start_why(w, err);
            *rc = 1;
            return false;
        }
        set_start_why(w, err);
        DS_WARN(w->ops->name, "not started yet (attempt %d, again in %lld ms): %s", attempt,
                (long long)backoff, err);
        for (int64_t until = ds_clock_mono_ms() + backoff;
             !ds_worker_stop && ds_clock_mono_ms() < until;)
            ds_clock_sleep_ms(50);
        backoff = backoff * 2 > START_BACKOFF_MAX_MS ? START_BACKOFF_MAX_MS : backoff * 2;
    }
    *rc = 0;
    return false;
}

int ds_worker_run(ds_worker_t *w) {
    int rc = 0;
    if (!start(w, &rc))
        return rc;
    char serr[512];
    const char *topics[] = {w->topic};
    if (!ds_kafka_consumer_subscribe(w->consumer, topics, 1, serr, sizeof(serr))) {
        DS_ERROR(w->ops->name, "%s", serr);
        return 1;
    }
    DS_INFO(w->ops->name, "consuming topic=%s group=%s", w->topic, w->cfg->group_id);
    /* look the output topics up now (2 s at most, all of them): otherwise
     * the first batch's outputs wait (~0.7 s) for the producer's metadata */
    if (w->noutputs && !ds_kafka_warm_topics(w->producer, w->outputs, w->noutputs, 2000))
        DS_WARN(w->ops->name, "output topics not known to the broker yet; "
                              "the first outputs wait for their metadata");
    w->last_flush_ms = ds_clock_mono_ms(); /* the first interval starts now */
    __atomic_store_n(&w->broker_answer_ms, ds_clock_mono_ms(), __ATOMIC_RELAXED);
    if (redis_connect(w, w->redis) == DS_ERR_OK)
        w->redis_ok = 1;
    else
        (void)redis_failed(w, w->redis, 100); /* logs it; stops on a fatal reply */
    while (!ds_worker_stop) {
        w->abandon = false;
        probe_redis(w); /* every PROBE_MS, busy or idle */
        batch_t *b = free_batch(w);
        if (!b) {
            if (!make_room(w))
                abandon_all(w, w->abandon ? "rebalance" : "shutdown");
            continue;
        }
        int64_t now = ds_clock_mono_ms();
        int wait = 100;
        if (w->ops->tick) {
            int64_t left = w->last_tick + w->cfg->check_interval_ms - now;
            wait = left < 0 ? 0 : left < 100 ? (int)left : 100;
        }
        if (owes(w)) { /* idle: the state goes out on schedule */
            int64_t left = w->closing ? SLICE_IDLE_MS : w->last_flush_ms + flush_ms(w) - now;
            int64_t idle_left = w->last_msg_ms + idle_flush_ms(w) - now;
            if (idle_left < left)
                left = idle_left;
            wait = left < 0 ? 0 : left < wait ? (int)left : wait;
        }
        bool inflight = any_inflight(w);
        int64_t tc = ds_clock_mono_us();
        b->state = B_BUILD;
        b->seq = ++w->seq;
        b->t0_us = 0;
        collect(w, b, inflight ? INFLIGHT_POLL_MS : wait);
        if (b->nmsgs) {
            phase_add(w, PH_COLLECT, &tc);
            count(w->m_polled, b->nmsgs);
            w->last_msg_ms = ds_clock_mono_ms();
            w->trimmed = false;
        }
        if (w->abandon) {
            abandon_all(w, "rebalance");
            continue;
        }
        bool tick = false;
        if (w->ops->tick && ds_clock_mono_ms() - w->last_tick >= w->cfg->check_interval_ms) {
            tick = w->assigned > 0;
            w->last_tick = ds_clock_mono_ms();
        }
        /* no message, state not written yet: an empty batch writes its
         * share of a closed window, or closes one when the interval is
         * over (the wait above ended then); once no message came for
         * idle_flush_ms(), everything goes */
        int64_t mono = ds_clock_mono_ms();
        bool quiet = !b->nmsgs && !tick && !inflight && owes(w);
        bool flush = quiet && mono - w->last_msg_ms >= idle_flush_ms(w);
        bool step = flush || (quiet && (w->closing || mono - w->last_flush_ms >= flush_ms(w)));
        if (!b->nmsgs && !tick && !step) {
            batch_release(b);
            /* no message now: move what is in flight on as acks and
             * replies come in, without blocking, so that a message that
             * arrives meanwhile is taken at once (collect waits a little
             * for one while anything is in flight) */
            if (inflight && !advance(w, NULL, false))
                abandon_all(w, w->abandon ? "rebalance" : "shutdown");
            else if (!inflight && !owes(w) && !w->trimmed &&
                     ds_clock_mono_ms() - w->last_msg_ms >= IDLE_TRIM_MS) {
                /* idle after a burst: give the pages freed since (the
                 * consumer queue's messages above all: up to
                 * queued.max.messages.kbytes) back to the system */
                malloc_trim(0);
                w->trimmed = true;
            }
            continue;
        }
        if (!build_batch(w, b, tick, flush) || !advance(w, b, false)) {
            abandon_all(w, w->abandon ? "rebalance" : "shutdown");
            continue;
        }
    }
    (void)past_shutdown_timeout(w); /* its timeout starts now */
    DS_INFO(w->ops->name, "shutting down: finishing the batches in flight, committing and "
                          "leaving the group");
    w->abandon = false;
    if (any_inflight(w) && !advance(w, NULL, true))
        abandon_all(w, "shutdown timeout");
    if (owes(w) && !w->fatal) { /* the state of the last batches, then their offsets */
        batch_t *b = free_batch(w);
        b->state = B_BUILD;
        b->seq = ++w->seq;
        b->t0_us = 0;
        if (!build_batch(w, b, false, true) || !advance(w, NULL, true))
            abandon_all(w, "shutdown timeout");
    }
    rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        DS_WARN(w->ops->name, "final commit: %s", rd_kafka_err2str(err));
    }
    drop_held(w);
    err = rd_kafka_consumer_close(w->consumer);
    if (err) {
        DS_WARN(w->ops->name, "consumer close: %s", rd_kafka_err2str(err));
        rc = 1;
    }
    rd_kafka_flush(w->producer, w->cfg->shutdown_timeout_ms);
    return w->fatal ? 1 : rc;
}

/* glibc gives a heap's free top back to the system as soon as it passes
 * the trim threshold (128 KiB, raised only by freed mmapped chunks).  A
 * batch allocates its outputs (librdkafka's copies of them) and frees them
 * when they are acknowledged, so every batch faulted the same pages in
 * again.  Free memory is kept while the worker is busy and given back
 * once it is idle (malloc_trim, IDLE_TRIM_MS).  Fixing the trim threshold
 * also fixes the mmap threshold, so that one is raised too (else every
 * allocation of 128 KiB or more, such as a fetch response, would be an
 * mmap and a munmap). */
#define TRIM_THRESHOLD (16 << 20)
#define MMAP_THRESHOLD (32 << 20) /* glibc's maximum on 64-bit */

static void tune_malloc(void) { /* idempotent: `run` has two workers */
    if (!mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) || !mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        DS_DEBUG("worker", "malloc thresholds not set (not glibc's allocator?)");
}

ds_worker_t *ds_worker_new(const ds_config_t *cfg, const char *topic, const ds_worker_ops_t *ops,
                           void *self, ds_metrics_t *metrics, char *errstr, size_t errstr_size) {
    tune_malloc();
    ds_worker_t *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    w->cfg = cfg;
    w->ops = ops;
    w->self = self;
    w->metrics = metrics;
    w->kafka_ok = 1;
    w->decode_ok = 1;
    pthread_mutex_init(&w->why_lock, NULL);
    snprintf(w->start_why, sizeof(w->start_why), "%s: starting", ops->name);
    ds_strlcpy(w->topic, topic, sizeof(w->topic));
    snprintf(w->dlq_topic, sizeof(w->dlq_topic), "%s.dlq", topic);
    w->cap = (size_t)cfg->batch_size;
    w->seen = rd_kafka_topic_partition_list_new(8);
    for (int i = 0; i < NBATCH; i++)
        if (!batch_init(&w->b[i], w->cap, ops->event_size)) {
            snprintf(errstr, errstr_size, "out of memory");
            goto fail;
        }
    w->cur = &w->b[0];
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
    w->m_outputs = counter(w, "produced_records", "Output records acknowledged by the broker");
    w->m_redis_errors = counter(w, "redis_errors", "Failed Redis pipeline runs");
    w->m_produce_errors = counter(w, "produce_errors", "Batches whose outputs had to be produced again");
    w->m_redis_lost = counter(w, "redis_state_lost",
                              "Times Redis came back without the state this worker wrote (its "
                              "run_id changed and a key it wrote is gone): what it holds in "
                              "memory is written again");
    for (int i = 0; metrics && i < PH__COUNT; i++) {
        char labels[96];
        snprintf(labels, sizeof(labels), "worker=\"%s\",phase=\"%s\"", ops->name,
                 phase_names[i]);
        w->m_phase[i] = ds_metrics_histogram(
            metrics, "phase_seconds",
            "Time the worker thread spent in one step of a batch (poll and decode, Redis loads, "
            "apply, produce, formatting the Redis writes, blocked on acks, blocked on Redis "
            "writes)",
            labels, ds_latency_bounds, DS_LATENCY_BOUNDS_N);
    }
    if (metrics) {
        static const double b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,   0.25,   0.5,   1,    2.5, 5, 10};
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
    for (int i = 0; i < NBATCH; i++)
        batch_free(&w->b[i]);
    drop_held(w);
    free(w->held);
    if (w->seen)
        rd_kafka_topic_partition_list_destroy(w->seen);
    if (w->closed)
        rd_kafka_topic_partition_list_destroy(w->closed);
    if (w->consumer)
        rd_kafka_destroy(w->consumer);
    if (w->producer)
        rd_kafka_destroy(w->producer);
    ds_redis_destroy(w->redis);
    ds_redis_destroy(w->wredis);
    ds_redis_known_destroy(w->known);
    pthread_mutex_destroy(&w->why_lock);
    free(w);
}

/* No broker answered for broker_timeout_ms (once statistics came: they
 * are what says so), or librdkafka said all are down.  Any thread. */
static bool brokers_silent(const ds_worker_t *w) {
    if (w->brokers_down)
        return true;
    return w->stats_seen &&
           ds_clock_mono_ms() - __atomic_load_n(&w->broker_answer_ms, __ATOMIC_RELAXED) >
               w->cfg->broker_timeout_ms;
}

bool ds_worker_ready(const ds_worker_t *w, char *why, size_t why_size) {
    if (!w->started) {
        pthread_mutex_lock((pthread_mutex_t *)&w->why_lock);
        snprintf(why, why_size, "%s: not started: %s", w->ops->name, w->start_why);
        pthread_mutex_unlock((pthread_mutex_t *)&w->why_lock);
        return false;
    }
    if (!w->assigned) {
        snprintf(why, why_size, "%s: no partitions assigned", w->ops->name);
        return false;
    }
    if (!w->redis_ok) {
        pthread_mutex_lock((pthread_mutex_t *)&w->why_lock);
        snprintf(why, why_size, "%s: redis not answering: %s", w->ops->name,
                 w->redis_why[0] ? w->redis_why : "not connected yet");
        pthread_mutex_unlock((pthread_mutex_t *)&w->why_lock);
        return false;
    }
    if (w->brokers_down) {
        snprintf(why, why_size, "%s: all brokers down", w->ops->name);
        return false;
    }
    if (brokers_silent(w)) {
        snprintf(why, why_size, "%s: no broker answered for %d ms (broker_timeout_ms)",
                 w->ops->name, w->cfg->broker_timeout_ms);
        return false;
    }
    if (!w->kafka_ok) {
        snprintf(why, why_size, "%s: broker not acknowledging outputs", w->ops->name);
        return false;
    }
    if (!w->decode_ok) {
        snprintf(why, why_size, "%s: schema registry unreachable (input schemas not fetched)",
                 w->ops->name);
        return false;
    }
    return true;
}

ds_metrics_t *ds_worker_metrics(ds_worker_t *w) { return w->metrics; }
ds_redis_t *ds_worker_redis(ds_worker_t *w) {
    probe_settle(w); /* the caller runs commands on it at once */
    if (!ds_redis_connected(w->redis))
        (void)redis_connect(w, w->redis); /* with the identity check; else the caller's fails */
    return w->redis;
}
