/*
 * worker.c — the batch pipeline shared by the scorer and the watcher.
 *
 * One thread owns a worker: its consumer, producer, Redis connection and
 * codec state.  process_batch() is the whole data flow in order; each
 * stage either completes or retries with backoff (partitions paused), so
 * the only ways a batch ends are "done" (offsets stored) or "abandoned"
 * (rebalance or shutdown before its outputs/state were safe: nothing was
 * stored, so the messages are consumed again).
 */
#include "worker.h"

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

struct ds_worker {
    const ds_config_t *cfg;
    const ds_worker_ops_t *ops;
    void *self;
    char topic[256];
    char dlq_topic[300];
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    ds_redis_t *redis;
    ds_kafka_hooks_t hooks;
    ds_metrics_t *metrics;

    /* the batch in hand */
    rd_kafka_message_t **msgs;
    size_t nmsgs, cap;
    unsigned char *slot_mem;
    void **slots;
    int32_t *parts;
    ds_err_t *errs;
    const char **details;
    ds_arena_t arena;
    output_t *outs;
    size_t nouts, outs_cap;
    ds_buf_t out_bytes;
    /* messages polled while paused for a retry: processed first next time */
    rd_kafka_message_t **held;
    size_t nheld;

    ds_delivery_t delivery; /* outputs of the batch in flight */
    volatile int assigned;
    volatile int redis_ok, kafka_ok;
    bool abandon;
    bool paused;
    int64_t last_tick;
    ds_log_rl_t rl_redis, rl_kafka, rl_msg;

    ds_counter_t *m_consumed, *m_batches, *m_outputs, *m_redis_errors, *m_produce_errors;
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

static void on_stats(void *opaque, const char *json, size_t len) {
    ds_worker_t *w = opaque;
    lag_walk_t lw = {w, false};
    if (w->metrics && ds_kafka_stats_lag(json, len, w->topic, lag_one, &lw))
        ds_log_rl(&w->rl_msg, 60000, DS_LOG_WARN, w->ops->name,
                  "unreadable librdkafka statistics (%zu bytes)", len);
}

/* ---- rebalance ----------------------------------------------------------- */

static void drop_held(ds_worker_t *w) {
    for (size_t i = 0; i < w->nheld; i++)
        rd_kafka_message_destroy(w->held[i]);
    w->nheld = 0;
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
    /* Eager protocol: everything goes.  What is stored is committed now; the
     * batch in hand is abandoned and the in-memory state dropped, so that
     * the next owner (maybe us) reloads it from Redis. */
    rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        DS_WARN(w->ops->name, "commit on revoke: %s", rd_kafka_err2str(err));
    w->abandon = true;
    drop_held(w);
    w->ops->reset(w->self);
    if (w->ops->assigned)
        w->ops->assigned(w->self, NULL); /* we own nothing now */
    w->assigned = 0;
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

static void backoff_wait(ds_worker_t *w, int64_t ms) {
    set_paused(w, true);
    int64_t end = ds_clock_mono_ms() + ms;
    while (!w->abandon && ds_clock_mono_ms() < end)
        serve_consumer(w, 50);
}

static int64_t next_backoff(int64_t cur) { return cur >= 5000 ? 5000 : cur * 2; }

/* True when a retry loop should give up the batch. */
static bool must_abandon(ds_worker_t *w, int64_t started) {
    if (w->abandon)
        return true;
    if (ds_worker_stop && ds_clock_mono_ms() - started > w->cfg->shutdown_timeout_ms) {
        DS_WARN(w->ops->name, "shutdown timeout: abandoning the batch in hand (it will be "
                              "consumed again)");
        return true;
    }
    return false;
}

/* ---- outputs ------------------------------------------------------------- */

void ds_worker_emit(ds_worker_t *w, const char *topic, const char *key, const void *val,
                    size_t vlen, const char *id) {
    if (w->nouts == w->outs_cap) {
        size_t nc = w->outs_cap ? w->outs_cap * 2 : 1024;
        output_t *no = realloc(w->outs, nc * sizeof(*no));
        if (!no) {
            DS_ERROR(w->ops->name, "out of memory queuing an output");
            abort(); /* losing an output silently is not an option */
        }
        w->outs = no;
        w->outs_cap = nc;
    }
    output_t *o = &w->outs[w->nouts];
    size_t klen = strlen(key), ilen = id ? strlen(id) : 0;
    o->topic = topic;
    o->dlq_index = -1;
    o->key_off = w->out_bytes.len;
    o->key_len = klen;
    o->val_off = o->key_off + klen;
    o->val_len = vlen;
    o->id_off = o->val_off + vlen;
    o->id_len = ilen;
    if (ds_buf_append(&w->out_bytes, key, klen) || ds_buf_append(&w->out_bytes, val, vlen) ||
        ds_buf_append(&w->out_bytes, id ? id : "", ilen)) {
        DS_ERROR(w->ops->name, "out of memory queuing an output");
        abort();
    }
    w->nouts++;
}

static void emit_dlq(ds_worker_t *w, size_t index) {
    ds_worker_emit(w, w->dlq_topic, "", "", 0, NULL);
    w->outs[w->nouts - 1].dlq_index = (int)index;
}

static rd_kafka_headers_t *dlq_headers(ds_worker_t *w, size_t i) {
    const rd_kafka_message_t *m = w->msgs[i];
    rd_kafka_headers_t *h = rd_kafka_headers_new(5);
    char part[16], off[32];
    snprintf(part, sizeof(part), "%d", (int)m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    const char *code = ds_err2str(w->errs[i]);
    const char *detail = w->details[i] ? w->details[i] : code;
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

/* Wait until every message counted in w->delivery has its report (each
 * gets one within message.timeout.ms; on a shutdown past the timeout the
 * queue is purged so the reports come at once). */
static void drain_deliveries(ds_worker_t *w, int64_t started) {
    bool purged = false;
    while (w->delivery.outstanding) {
        if (ds_kafka_wait(w->producer, &w->delivery, 1000) != DS_ERR_TIMEOUT)
            continue;
        w->kafka_ok = 0;
        set_paused(w, true);
        serve_consumer(w, 0);
        if (!purged && ds_worker_stop &&
            ds_clock_mono_ms() - started > w->cfg->shutdown_timeout_ms) {
            rd_kafka_purge(w->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            purged = true;
        }
    }
}

/* Produce every queued output and wait for all acknowledgements; on any
 * failure produce them all again (same ids, same order: a compacted topic
 * must end with the newest value of each key). */
static bool produce_outputs(ds_worker_t *w) {
    if (!w->nouts)
        return true;
    int64_t started = ds_clock_mono_ms(), backoff = 100;
    for (;;) {
        memset(&w->delivery, 0, sizeof(w->delivery));
        bool local_fail = false;
        for (size_t i = 0; i < w->nouts && !local_fail; i++) {
            const output_t *o = &w->outs[i];
            const unsigned char *b = w->out_bytes.data;
            ds_err_t e;
            if (o->dlq_index >= 0) {
                const rd_kafka_message_t *m = w->msgs[o->dlq_index];
                e = ds_kafka_produce(w->producer, o->topic, m->key, m->key_len, m->payload,
                                     m->len, dlq_headers(w, (size_t)o->dlq_index), &w->delivery);
            } else {
                rd_kafka_headers_t *h = NULL;
                if (o->id_len) {
                    h = rd_kafka_headers_new(1);
                    rd_kafka_header_add(h, "dealsignal.id", -1, b + o->id_off, (ssize_t)o->id_len);
                }
                e = ds_kafka_produce(w->producer, o->topic, b + o->key_off, o->key_len,
                                     b + o->val_off, o->val_len, h, &w->delivery);
            }
            if (e)
                local_fail = true;
        }
        drain_deliveries(w, started);
        if (!local_fail && !w->delivery.failed) {
            w->kafka_ok = 1;
            count(w->m_outputs, w->nouts);
            return true;
        }
        w->kafka_ok = 0;
        count(w->m_produce_errors, 1);
        ds_log_rl(&w->rl_kafka, 5000, DS_LOG_WARN, w->ops->name,
                  "delivery failed (%zu of %zu: %s); producing the batch's outputs again",
                  w->delivery.failed, w->nouts, rd_kafka_err2str(w->delivery.first_err));
        if (must_abandon(w, started))
            return false;
        backoff_wait(w, backoff);
        backoff = next_backoff(backoff);
        if (must_abandon(w, started))
            return false;
    }
}

/* ---- Redis stages -------------------------------------------------------- */

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

static bool redis_stage(ds_worker_t *w, bool load) {
    int64_t started = ds_clock_mono_ms(), backoff = 100;
    for (;;) {
        ds_err_t e = ds_redis_connect(w->redis);
        if (!e) {
            int64_t t0 = ds_clock_mono_us();
            if (load) {
                for (int round = 0; !e; round++) {
                    size_t n = w->ops->prefetch(w->self, w->redis, w->slots, w->parts, w->nmsgs,
                                                round);
                    if (!n)
                        break;
                    prefetch_ctx_t pc = {w, DS_ERR_OK};
                    e = ds_redis_run(w->redis, on_prefetch_reply, &pc);
                    if (!e && pc.err)
                        e = pc.err;
                }
            } else {
                w->ops->persist(w->self, w->redis);
                e = ds_redis_pending(w->redis) ? ds_redis_run(w->redis, NULL, NULL) : DS_ERR_OK;
            }
            observe(w->m_redis_seconds, (double)(ds_clock_mono_us() - t0) / 1e6);
        }
        if (!e) {
            if (!w->redis_ok)
                DS_INFO(w->ops->name, "redis is reachable again");
            w->redis_ok = 1;
            return true;
        }
        ds_redis_discard(w->redis);
        w->redis_ok = 0;
        count(w->m_redis_errors, 1);
        ds_log_rl(&w->rl_redis, 5000, DS_LOG_WARN, w->ops->name,
                  "redis unavailable (%s); partitions paused, retrying in %lld ms",
                  ds_redis_errstr(w->redis), (long long)backoff);
        backoff_wait(w, backoff);
        backoff = next_backoff(backoff);
        if (must_abandon(w, started))
            return false;
    }
}

/* ---- the batch ----------------------------------------------------------- */

static void release_batch(ds_worker_t *w) {
    for (size_t i = 0; i < w->nmsgs; i++)
        rd_kafka_message_destroy(w->msgs[i]);
    w->nmsgs = 0;
    w->nouts = 0;
    ds_buf_reset(&w->out_bytes);
    ds_arena_reset(&w->arena);
}

static void add_msg(ds_worker_t *w, rd_kafka_message_t *m) {
    size_t i = w->nmsgs++;
    w->msgs[i] = m;
    w->parts[i] = m->partition;
    w->details[i] = NULL;
    w->slots[i] = NULL;
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
        void *slot = w->slot_mem + i * w->ops->event_size;
        e = w->ops->decode(w->self, m->payload, m->len, &w->arena, slot, detail, sizeof(detail));
        if (!e)
            w->slots[i] = slot;
    }
    w->errs[i] = e;
    if (e) {
        w->details[i] = ds_arena_strndup(&w->arena, detail, strlen(detail));
        ds_log_rl(&w->rl_msg, 2000, DS_LOG_WARN, w->ops->name,
                  "bad record to DLQ topic=%s partition=%d offset=%lld error=%s detail=%s",
                  w->topic, (int)m->partition, (long long)m->offset, ds_err2str(e), detail);
    }
}

/* Collect up to batch.size messages: wait up to `wait_ms` for the first,
 * then take what is already there, for at most batch.max_ms. */
static void collect(ds_worker_t *w, int wait_ms) {
    size_t held = w->nheld;
    for (size_t i = 0; i < held && w->nmsgs < w->cap; i++)
        add_msg(w, w->held[i]);
    /* anything not taken stays held (only when held > cap) */
    size_t taken = held < w->cap ? held : w->cap;
    if (held > taken)
        memmove(w->held, w->held + taken, (held - taken) * sizeof(*w->held));
    w->nheld -= taken;
    if (w->paused && !w->nheld)
        set_paused(w, false);
    int64_t deadline = -1;
    while (w->nmsgs < w->cap && !w->abandon) {
        int timeout = w->nmsgs ? 0 : wait_ms;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, timeout);
        if (!m)
            break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ds_log_rl(&w->rl_kafka, 5000, DS_LOG_WARN, w->ops->name, "consumer: %s",
                          rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (!w->nmsgs)
                break;
            continue;
        }
        if (w->abandon) {
            rd_kafka_message_destroy(m);
            break;
        }
        add_msg(w, m);
        if (deadline < 0)
            deadline = ds_clock_mono_ms() + w->cfg->batch_max_ms;
        else if (ds_clock_mono_ms() >= deadline)
            break;
    }
}

static void store_offsets(ds_worker_t *w) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < w->nmsgs; i++) {
        const rd_kafka_message_t *m = w->msgs[i];
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, rd_kafka_topic_name(m->rkt), m->partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition);
        if (m->offset + 1 > tp->offset)
            tp->offset = m->offset + 1;
    }
    ds_kafka_store_offsets(w->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* One pass of the pipeline over the messages in hand (possibly none: a
 * clock tick).  Returns false when the batch was abandoned. */
static bool process_batch(ds_worker_t *w, bool tick) {
    int64_t t0 = ds_clock_mono_us();
    bool ok = false;
    if (!redis_stage(w, true))
        goto out;
    for (size_t i = 0; i < w->nmsgs; i++) {
        const rd_kafka_message_t *m = w->msgs[i];
        if (w->errs[i]) {
            emit_dlq(w, i);
            dlq_count(w, w->errs[i]);
            continue;
        }
        w->ops->apply(w->self, w, w->slots[i], m->partition, m->offset);
    }
    if (tick && w->ops->tick)
        w->ops->tick(w->self, w, ds_clock_now_ms());
    if (!produce_outputs(w))
        goto out;
    if (!redis_stage(w, false))
        goto out;
    w->ops->persisted(w->self);
    store_offsets(w);
    count(w->m_consumed, w->nmsgs);
    count(w->m_batches, 1);
    ok = true;
out:
    if (!ok) {
        /* in-memory state ran ahead of what is safe: drop it all, it is
         * rebuilt from Redis and the replayed messages */
        w->ops->reset(w->self);
        if (!w->abandon) {
            /* shutdown: nothing stored for this batch, it is consumed again */
            DS_WARN(w->ops->name, "batch of %zu abandoned", w->nmsgs);
        }
    }
    observe(w->m_batch_seconds, (double)(ds_clock_mono_us() - t0) / 1e6);
    release_batch(w);
    return ok;
}

int ds_worker_run(ds_worker_t *w) {
    int rc = 0;
    DS_INFO(w->ops->name, "consuming topic=%s group=%s", w->topic, w->cfg->group_id);
    if (ds_redis_connect(w->redis) == DS_ERR_OK)
        w->redis_ok = 1;
    else
        DS_WARN(w->ops->name, "redis not reachable yet (%s); will retry",
                ds_redis_errstr(w->redis));
    while (!ds_worker_stop) {
        w->abandon = false;
        int64_t now = ds_clock_mono_ms();
        int wait = 100;
        if (w->ops->tick) {
            int64_t left = w->last_tick + w->cfg->check_interval_ms - now;
            wait = left < 0 ? 0 : left < 100 ? (int)left : 100;
        }
        collect(w, wait);
        if (w->abandon) {
            release_batch(w);
            continue;
        }
        bool tick = false;
        if (w->ops->tick && ds_clock_mono_ms() - w->last_tick >= w->cfg->check_interval_ms) {
            tick = w->assigned > 0;
            w->last_tick = ds_clock_mono_ms();
        }
        if (!w->nmsgs && !tick)
            continue;
        process_batch(w, tick);
    }
    DS_INFO(w->ops->name, "shutting down: committing and leaving the group");
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
    return rc;
}

ds_worker_t *ds_worker_new(const ds_config_t *cfg, const char *topic, const ds_worker_ops_t *ops,
                           void *self, ds_metrics_t *metrics, char *errstr, size_t errstr_size) {
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
    ds_strlcpy(w->topic, topic, sizeof(w->topic));
    snprintf(w->dlq_topic, sizeof(w->dlq_topic), "%s.dlq", topic);
    w->cap = (size_t)cfg->batch_size;
    w->msgs = calloc(w->cap, sizeof(*w->msgs));
    w->slots = calloc(w->cap, sizeof(*w->slots));
    w->parts = calloc(w->cap, sizeof(*w->parts));
    w->slot_mem = calloc(w->cap, ops->event_size);
    w->errs = calloc(w->cap, sizeof(*w->errs));
    w->details = calloc(w->cap, sizeof(*w->details));
    ds_arena_init(&w->arena, 0);
    ds_buf_init(&w->out_bytes, 0);
    if (!w->msgs || !w->slots || !w->parts || !w->slot_mem || !w->errs || !w->details) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    w->redis = ds_redis_new(cfg->redis_url, cfg->redis_timeout_ms, errstr, errstr_size);
    if (!w->redis)
        goto fail;
    w->producer = ds_kafka_producer_new(cfg, errstr, errstr_size);
    if (!w->producer)
        goto fail;
    w->hooks.assigned = on_assigned;
    w->hooks.revoked = on_revoked;
    w->hooks.stats = on_stats;
    w->hooks.opaque = w;
    const char *topics[] = {w->topic};
    w->consumer = ds_kafka_consumer_new(cfg, topics, 1, &w->hooks, errstr, errstr_size);
    if (!w->consumer)
        goto fail;
    w->m_consumed = counter(w, "consumed_records", "Input records consumed and fully processed");
    w->m_batches = counter(w, "batches", "Batches completed");
    w->m_outputs = counter(w, "produced_records", "Output records acknowledged by the broker");
    w->m_redis_errors = counter(w, "redis_errors", "Failed Redis pipeline runs");
    w->m_produce_errors = counter(w, "produce_errors", "Batches whose outputs had to be produced again");
    if (metrics) {
        static const double b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,   0.25,   0.5,   1,    2.5, 5, 10};
        char labels[64];
        snprintf(labels, sizeof(labels), "worker=\"%s\"", ops->name);
        w->m_batch_seconds = ds_metrics_histogram(metrics, "batch_seconds",
                                                  "Time to process one batch end to end", labels,
                                                  b, sizeof(b) / sizeof(b[0]));
        w->m_redis_seconds = ds_metrics_histogram(metrics, "redis_seconds",
                                                  "Time of one Redis pipeline run", labels, b,
                                                  sizeof(b) / sizeof(b[0]));
    }
    return w;
fail:
    ds_worker_destroy(w);
    return NULL;
}

void ds_worker_destroy(ds_worker_t *w) {
    if (!w)
        return;
    release_batch(w);
    drop_held(w);
    free(w->held);
    if (w->consumer)
        rd_kafka_destroy(w->consumer);
    if (w->producer)
        rd_kafka_destroy(w->producer);
    ds_redis_destroy(w->redis);
    free(w->msgs);
    free(w->slots);
    free(w->parts);
    free(w->slot_mem);
    free(w->errs);
    free(w->details);
    free(w->outs);
    ds_buf_free(&w->out_bytes);
    ds_arena_free(&w->arena);
    free(w);
}

bool ds_worker_ready(const ds_worker_t *w, char *why, size_t why_size) {
    if (!w->assigned) {
        snprintf(why, why_size, "%s: no partitions assigned", w->ops->name);
        return false;
    }
    if (!w->redis_ok) {
        snprintf(why, why_size, "%s: redis unreachable", w->ops->name);
        return false;
    }
    if (!w->kafka_ok) {
        snprintf(why, why_size, "%s: broker not acknowledging outputs", w->ops->name);
        return false;
    }
    return true;
}

ds_metrics_t *ds_worker_metrics(ds_worker_t *w) { return w->metrics; }
ds_redis_t *ds_worker_redis(ds_worker_t *w) { return w->redis; }
