/*
 * worker_kafka.c — the worker's consumer and producer (worker_int.h).
 *
 * Consumer: each batch is polled here and its messages decoded into
 * slots (ds_wk_collect); a message that cannot be decoded because the
 * schema registry does not answer is held with every one after it, in
 * order, the partitions paused, and decoded again after a backoff.  While
 * a retry waits, the consumer is still served (ds_wk_serve_consumer) and
 * what it returns is held too, so that nothing polled is lost or
 * reordered.  The rebalance callbacks run inside the worker thread's
 * polls: a revoke (eager protocol: everything goes) finishes the batches
 * whose writes are already sent if Redis answers at once, commits what is
 * stored, and abandons the rest with the adapter's memory.  A rewind
 * (ds_wk_rewind_to_committed) abandons everything and seeks the assigned
 * partitions back to their committed offsets.  The statistics callback
 * feeds consumer_lag and the brokers' silence (health.c).
 *
 * Producer: a batch's outputs are handed to it at once (ds_wk_produce)
 * and their acks waited for later, oldest batch first (ds_wk_wait_acks).
 * When any delivery fails, the outputs of every batch still waiting for
 * acks are produced again in batch order with the same ids, so that a
 * compacted topic still ends with the newest value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_clock.h"
#include "worker_int.h"

/* ---- statistics and errors ---------------------------------------------------- */

/* consumer_lag{worker,topic,partition} from librdkafka's statistics.  While
 * the worker is paused for Redis, no fetch refreshes the high watermark in
 * the statistics, so it is asked of the broker instead: the lag must keep
 * growing during a Redis outage, not freeze.  Only while the broker is
 * known to answer (outputs acknowledged, a response within the last two
 * seconds): librdkafka 2.0.2's rd_kafka_query_watermark_offsets does not
 * keep to its timeout once its requests are queued to the leader, and
 * blocks until the leader answers or socket.timeout.ms passes.  Asked of a
 * broker that is down, it held the worker thread (and with it the
 * consumer: the group's revoke, its errors) for the whole outage.  During
 * a broker outage the lag keeps its last figures. */
typedef struct lag_walk {
    ds_worker_t *w;
    bool no_query; /* the broker may be away, or a query failed this round */
    bool *mine;    /* mine[i]: partition i of the topic is assigned here (NULL: none) */
    size_t nmine;
    int64_t now_ms;
} lag_walk_t;

/* lw->mine from the worker's assignment, once per report (a search per
 * partition would cost the watcher's 4,096 partitions their square). */
static void mine_of(ds_worker_t *w, lag_walk_t *lw) {
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(w->consumer, &l) || !l)
        return;
    int32_t top = -1;
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].partition > top && !strcmp(l->elems[i].topic, w->topic))
            top = l->elems[i].partition;
    if (top >= 0 && (lw->mine = calloc((size_t)top + 1, sizeof(bool)))) {
        lw->nmine = (size_t)top + 1;
        for (int i = 0; i < l->cnt; i++)
            if (l->elems[i].partition >= 0 && !strcmp(l->elems[i].topic, w->topic))
                lw->mine[l->elems[i].partition] = true;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Where the consumer goes on from when a partition has no position and
 * nothing committed: auto.offset.reset's end or, by default, beginning. */
static int64_t reset_offset(ds_worker_t *w) {
    char v[32];
    size_t n = sizeof(v);
    if (rd_kafka_conf_get(rd_kafka_conf(w->consumer), "auto.offset.reset", v, &n) ==
            RD_KAFKA_CONF_OK &&
        (!strcmp(v, "latest") || !strcmp(v, "largest") || !strcmp(v, "end")))
        return RD_KAFKA_OFFSET_END;
    return RD_KAFKA_OFFSET_BEGINNING;
}

/* An assigned partition that librdkafka stopped fetching (fetchwatch.h):
 * records wait past a position that has not moved for
 * DS_FETCHWATCH_STALL_MS while this worker held nothing paused.  Nothing
 * of ours stops one partition without pausing them all, so that is the
 * client's doing (our tests under load have seen one partition of four
 * never fetched after an assignment, its group offset never committed);
 * the partition is fetched again from its position (ds_wk_refetch),
 * which neither skips nor repeats a record. */
static void watch_one(lag_walk_t *lw, const ds_kafka_part_stats_t *p) {
    ds_worker_t *w = lw->w;
    if (p->partition < 0 || (size_t)p->partition >= lw->nmine || !lw->mine[p->partition] ||
        !ds_fetchwatch_still(&w->fetchwatch, p->partition, p->app_offset, w->paused || w->nheld > 0,
                             lw->now_ms))
        return;
    int64_t from = p->app_offset >= 0 ? p->app_offset : p->committed >= 0 ? p->committed : -1;
    /* fetched up to: past the position when the client skipped records
     * the application never sees (a transaction's control record) */
    int64_t fetched = p->next_offset > from ? p->next_offset : from;
    int64_t lo = -1, hi = p->hi_offset;
    if (hi < 0 || fetched < 0) { /* never fetched: the broker says what it holds */
        if (lw->no_query ||
            rd_kafka_query_watermark_offsets(w->consumer, w->topic, p->partition, &lo, &hi, 300)) {
            lw->no_query = true;
            return; /* cannot tell now; asked again after another stall */
        }
    }
    if (fetched >= 0 ? hi <= fetched : hi <= lo)
        return; /* nothing waits */
    DS_WARN(w->ops->name,
            "partition %d of %s: records wait (high watermark %lld, position %lld) and none "
            "was consumed for %d s (librdkafka fetch state %s): fetching it again from its "
            "position",
            (int)p->partition, w->topic, (long long)hi, (long long)from,
            (int)(w->fetchwatch.stall_ms / 1000), p->fetch_state);
    if (!w->refetch && !(w->refetch = rd_kafka_topic_partition_list_new(4)))
        return;
    rd_kafka_topic_partition_list_add(w->refetch, w->topic, p->partition)->offset =
        from >= 0 ? from : reset_offset(w);
    ds_wk_count(w->m_refetches, 1);
}

static void lag_one(void *opaque, const ds_kafka_part_stats_t *p) {
    lag_walk_t *lw = opaque;
    ds_worker_t *w = lw->w;
    watch_one(lw, p);
    if (!w->metrics)
        return;
    int32_t partition = p->partition;
    int64_t lag = p->lag, committed = p->committed;
    bool fetching = p->fetching;
    if (fetching && w->paused && committed >= 0 && !lw->no_query) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(w->consumer, w->topic, partition, &lo, &hi, 300) ==
            RD_KAFKA_RESP_ERR_NO_ERROR)
            lag = hi - committed;
        else
            lw->no_query = true; /* broker away: keep the last figures */
    }
    char labels[400];
    snprintf(labels, sizeof(labels), "%s,topic=\"%s\",partition=\"%d\"", w->labels, w->topic,
             (int)partition);
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
 * fetch.wait.max.ms, heartbeats every second even while paused; health.c). */
static void on_stats(void *opaque, const char *json, size_t len) {
    ds_worker_t *w = opaque;
    if (w->closing)
        return;
    lag_walk_t lw = {w, !w->health.kafka_ok || !ds_health_brokers_answered(&w->health, 2000), NULL,
                     0, ds_clock_mono_ms()};
    mine_of(w, &lw);
    ds_kafka_brokers_t br;
    ds_err_t e = ds_kafka_stats_read(json, len, w->topic, lag_one, &lw, &br);
    free(lw.mine);
    if (e) {
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

/* ---- pause/resume during retries ---------------------------------------- */

void ds_wk_set_paused(ds_worker_t *w, bool pause) {
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

/* ---- held messages -------------------------------------------------------- */

/* Keep m as the last held message (processed first by the next batch). */
static void keep_held(ds_worker_t *w, rd_kafka_message_t *m) {
    rd_kafka_message_t **nh = realloc(w->held, (w->nheld + 1) * sizeof(*nh));
    if (!nh) { /* cannot keep it: rewind so it is fetched again */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
            m->offset;
        if (ds_kafka_seek(w->consumer, l)) /* not assigned any more: nothing to fetch */
            DS_DEBUG(w->ops->name, "held record not rewound to");
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_message_destroy(m);
        return;
    }
    w->held = nh;
    w->held[w->nheld++] = m;
}

/* Keep the consumer served while we wait: anything it returns (partitions
 * are paused, so only what was already queued) is held for the next batch. */
void ds_wk_serve_consumer(ds_worker_t *w, int timeout_ms) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, timeout_ms);
    if (!m)
        return;
    if (m->err || w->abandon) {
        rd_kafka_message_destroy(m);
        return;
    }
    keep_held(w, m);
}

/* ---- poll and decode ------------------------------------------------------ */

/* A record must be keyed by its unit's id, as decode stated it in the
 * slot's head (dlq.c): otherwise DLQ wrong_key, and a warning that says
 * how to fix the producer. */
static ds_err_t check_key(ds_worker_t *w, const rd_kafka_message_t *m, const void *slot,
                          char *detail, size_t detail_size) {
    const ds_worker_slot_t *h = slot;
    return ds_dlq_check_key(&w->dlq, m, h->unit, h->unit_field ? h->unit_field : "unit id",
                            w->ops->unit_key_doc, detail, detail_size);
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
        memset(slot, 0, sizeof(ds_worker_slot_t));
        e = w->ops->decode(w->self, m->payload, m->len, &b->arena, slot, detail, sizeof(detail));
        if (!e)
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
    ds_wk_set_paused(w, true);
}

/* Collect up to batch.size messages: wait up to `wait_ms` for the first,
 * then take what is already there, for at most batch.max_ms. */
void ds_wk_collect(ds_worker_t *w, ds_batch_t *b, int wait_ms) {
    size_t held = w->nheld;
    if (held && !w->health.decode_ok) { /* waiting for the schema registry */
        int64_t left = w->decode_retry_ms - ds_clock_mono_ms();
        if (left > 0) {
            ds_wk_serve_consumer(w, (int)(left < wait_ms ? left : wait_ms));
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
        ds_wk_set_paused(w, false);
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

/* ---- rebalance ----------------------------------------------------------- */

void ds_wk_drop_held(ds_worker_t *w) {
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

bool ds_wk_assignment(ds_worker_t *w, ds_partitions_t *set, int32_t **ids) {
    rd_kafka_topic_partition_list_t *owned = NULL;
    if (rd_kafka_assignment(w->consumer, &owned))
        owned = NULL;
    *set = partitions_of(w, owned, ids);
    if (!owned)
        return false;
    rd_kafka_topic_partition_list_destroy(owned);
    return true;
}

/* The partitions change: none is watched or fetched again any more. */
static void forget_fetches(ds_worker_t *w) {
    ds_fetchwatch_forget(&w->fetchwatch);
    if (w->refetch)
        rd_kafka_topic_partition_list_destroy(w->refetch);
    w->refetch = NULL;
}

void ds_wk_refetch(ds_worker_t *w) {
    rd_kafka_topic_partition_list_t *l = w->refetch;
    w->refetch = NULL;
    if (!w->paused && !w->nheld) { /* else a pause came since: seen again later */
        /* this worker holds them resumed, whatever the client thinks */
        rd_kafka_resume_partitions(w->consumer, l);
        if (ds_kafka_seek(w->consumer, l)) /* said by ds_kafka_seek; seen again if it lasts */
            DS_DEBUG(w->ops->name, "a partition not fetched again");
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* For the tests only: DS_TEST_STALL_PARTITION="P:MS" pauses partition P
 * in the client behind the worker's back at each assignment (a client
 * that stopped fetching it) and watches with a stall time of MS. */
static void test_stall(ds_worker_t *w, const rd_kafka_topic_partition_list_t *parts) {
    const char *v = getenv("DS_TEST_STALL_PARTITION");
    int p, ms;
    if (!v || sscanf(v, "%d:%d", &p, &ms) != 2 ||
        !rd_kafka_topic_partition_list_find(parts, w->topic, p))
        return;
    w->fetchwatch.stall_ms = ms;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, w->topic, p);
    rd_kafka_pause_partitions(w->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    DS_WARN(w->ops->name, "DS_TEST_STALL_PARTITION: partition %d of %s paused in the client", p,
            w->topic);
}

static void on_assigned(void *opaque, const rd_kafka_topic_partition_list_t *parts) {
    ds_worker_t *w = opaque;
    w->health.assigned = parts->cnt;
    w->paused = false;
    forget_fetches(w);
    test_stall(w, parts);
    int32_t *ids;
    ds_partitions_t set = partitions_of(w, parts, &ids);
    ds_wk_lifecycle(w, DS_WORKER_ASSIGNED, &set);
    free(ids);
}

static void on_revoked(void *opaque, const rd_kafka_topic_partition_list_t *parts) {
    ds_worker_t *w = opaque;
    (void)parts;
    forget_fetches(w);
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
        ds_wk_batch_done(w, sent[i]);
    }
    rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        DS_WARN(w->ops->name, "commit on revoke: %s", rd_kafka_err2str(err));
    w->abandon = true;
    (void)ds_wb_drop(&w->wb); /* their state is dropped below: replayed by the next owner */
    ds_wk_drop_held(w);
    ds_wk_reset(w);
    ds_wk_lifecycle(w, DS_WORKER_ASSIGNED, NULL); /* we own nothing now */
    w->health.assigned = 0;
}

/* How far behind its input the worker is, as batch b shows it
 * (worker_int.h). */
int64_t ds_wk_input_lag_ms(ds_worker_t *w, const ds_batch_t *b, int64_t now_wall_ms) {
    /* the newest message by its Kafka timestamp (CreateTime, set by its
     * producer, unless the topic keeps LogAppendTime); -1 is none, and 0
     * is what a copy of a message without one may carry */
    const rd_kafka_message_t *newest = NULL;
    int64_t ts = 0;
    for (size_t i = 0; i < b->nmsgs; i++) {
        int64_t t = rd_kafka_message_timestamp(b->msgs[i], NULL);
        if (t > ts) {
            ts = t;
            newest = b->msgs[i];
        }
    }
    if (!newest)
        return -1;
    /* behind only while its partition has more than this batch took: a
     * producer that stamps messages with their old event times looks
     * behind only during a backlog (the high watermark is librdkafka's
     * copy from its last fetch) */
    int64_t next = newest->offset + 1, lo, hi;
    for (size_t i = 0; i < b->nmsgs; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        if (m->rkt == newest->rkt && m->partition == newest->partition && m->offset + 1 > next)
            next = m->offset + 1;
    }
    if (rd_kafka_get_watermark_offsets(w->consumer, rd_kafka_topic_name(newest->rkt),
                                       newest->partition, &lo, &hi) ||
        hi <= next)
        return 0;
    return now_wall_ms > ts ? now_wall_ms - ts : 0; /* a clock ahead of ours: no lag */
}

/* ---- outputs: produce, acks ----------------------------------------------- */

/* Hand every output of b to the producer (no waiting for acks). */
/* The producer's handle of one of the worker's output topics, made at its
 * first message and kept (rd_kafka_producev looks a topic named by string
 * up again for every message, under the client's lock); NULL for another
 * topic. */
static rd_kafka_topic_t *out_rkt(ds_worker_t *w, const char *topic) {
    for (size_t i = 0; i < w->nouts; i++)
        if (w->out_topics[i] == topic) {
            if (!w->out_rkt[i])
                w->out_rkt[i] = rd_kafka_topic_new(w->producer, topic, NULL);
            return w->out_rkt[i];
        }
    return NULL;
}

void ds_wk_produce(ds_worker_t *w, ds_batch_t *b) {
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
            rd_kafka_topic_t *rkt = out_rkt(w, o->topic);
            e = rkt ? ds_kafka_produce_rkt(w->producer, rkt, bytes + o->key_off, o->key_len,
                                           bytes + o->val_off, o->val_len, h, &b->delivery)
                    : ds_kafka_produce(w->producer, o->topic, bytes + o->key_off, o->key_len,
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
        ds_wk_set_paused(w, true);
        ds_wk_serve_consumer(w, 0);
        if (!purged && (ds_wk_past_shutdown_timeout(w) || w->fatal)) {
            rd_kafka_purge(w->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            purged = true;
        }
    }
}

/* Before batches are abandoned: their outputs still queued or in flight
 * are purged, and every delivery report still owed to a batch is served.
 * A released batch is used again with the same delivery counters, and a
 * report that came later would count against the next batch's outputs:
 * that batch would pass for acknowledged before its own outputs are, and a
 * failure of theirs arriving after it would go unseen (the record lost,
 * the state written).  The purged records are produced again when their
 * messages are consumed again.  A purge fails queued and in-flight
 * messages at once, each with its report (ERR__PURGE_QUEUE or
 * ERR__PURGE_INFLIGHT). */
void ds_wk_settle_outputs(ds_worker_t *w) {
    bool owed = false;
    for (int i = 0; i < DS_NBATCH; i++)
        owed |= w->ring.b[i].delivery.outstanding > 0;
    if (!owed)
        return;
    rd_kafka_purge(w->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < DS_NBATCH; i++)
        while (ds_kafka_wait(w->producer, &w->ring.b[i].delivery, 1000) == DS_ERR_TIMEOUT)
            DS_WARN(w->ops->name, "waiting for the reports of purged outputs");
}

/* The first n batches of `acks` are acknowledged: their writes may go. */
static void acks_in(ds_worker_t *w, ds_batch_t **acks, size_t n) {
    for (size_t i = 0; i < n; i++) {
        ds_wk_count(w->m_outputs, acks[i]->nouts);
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
bool ds_wk_wait_acks(ds_worker_t *w, const ds_batch_t *except, bool block) {
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
        ds_wk_count(w->m_produce_errors, 1);
        ds_log_rl(&w->rl_kafka, 5000, DS_LOG_WARN, w->ops->name,
                  "delivery failed (%zu of %zu: %s); producing the outputs of %zu batch(es) "
                  "again",
                  failed, total, rd_kafka_err2str(first), all);
        /* the newest batch's first copies must be settled before they are
         * overtaken by the copies produced again */
        for (size_t i = n; i < all; i++)
            drain_deliveries(w, acks[i]);
        if (ds_wk_must_abandon(w))
            return false;
        ds_wk_backoff_wait(w, ds_backoff_next(&backoff), WAIT_KAFKA);
        if (ds_wk_must_abandon(w))
            return false;
        for (size_t i = 0; i < all; i++)
            ds_wk_produce(w, acks[i]);
    }
    w->health.kafka_ok = 1;
    acks_in(w, acks, n);
    return true;
}

/* ---- rewind ---------------------------------------------------------------- */

/* Writes no WAIT confirmed were on a Redis node that went away (or
 * stopped being a master): they may be lost.  Everything since the
 * committed offsets is consumed again, with the state reloaded from
 * Redis (units' checkpoints make it exactly once there).  Not when that
 * node came back empty: see redis_emptied. */
void ds_wk_rewind_to_committed(ds_worker_t *w) {
    DS_WARN(w->ops->name, "a Redis node went away holding writes that no WAIT confirmed: "
                          "consuming again from the committed offsets");
    ds_wk_abandon_all(w, "Redis writes may be lost");
    ds_wk_drop_held(w);
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(w->consumer, &parts) || !parts)
        return;
    rd_kafka_resp_err_t err = rd_kafka_committed(w->consumer, parts, 10000);
    if (!err) {
        for (int i = 0; i < parts->cnt; i++)
            if (parts->elems[i].offset < 0)
                parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        if (ds_kafka_seek(w->consumer, parts))
            err = RD_KAFKA_RESP_ERR__FAIL;
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

/* ---- set-up ------------------------------------------------------------------ */

bool ds_wk_kafka_open(ds_worker_t *w, char *errstr, size_t errstr_size) {
    w->producer = ds_kafka_producer_new(w->cfg, errstr, errstr_size);
    if (!w->producer)
        return false;
    w->hooks.assigned = on_assigned;
    w->hooks.revoked = on_revoked;
    w->hooks.stats = on_stats;
    w->hooks.error = on_error;
    w->hooks.opaque = w;
    /* subscribed by ds_worker_run, once the output schemas are registered */
    w->consumer = ds_kafka_consumer_new(w->cfg, NULL, 0, &w->hooks, errstr, errstr_size);
    return w->consumer != NULL;
}
