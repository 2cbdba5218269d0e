/*
 * ds_kafka.c — consumer/producer set-up, produce with backpressure,
 * delivery tracking, rebalance handling.
 *
 * The rebalance callback calls the worker's hooks first (so the batch in
 * hand is finished or dropped while the partitions are still ours), then
 * assigns/unassigns (eager protocol).  Every rd_kafka_t logs through
 * ds_log; no secret is ever printed because we never print properties.
 */
#include "ds_kafka.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_clock.h"
#include "ds_log.h"

/* Only consumers have an opaque: their hooks (ds_kafka_consumer_new). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    ds_log_level_t l = level <= 3 ? DS_LOG_ERROR : level <= 4 ? DS_LOG_WARN
                       : level <= 6 ? DS_LOG_INFO : DS_LOG_DEBUG;
    if (!strcmp(fac, "COMMITFAIL")) {
        const ds_kafka_hooks_t *h = rd_kafka_opaque(rk);
        if (h && __atomic_load_n(&h->all_committed, __ATOMIC_ACQUIRE))
            l = DS_LOG_DEBUG; /* a repeat of offsets already committed */
    } else if (!strcmp(fac, "CONFWARN") && strstr(buf, " property and will be ignored by this ")) {
        /* -X reaches every client of a command: a consumer property is
         * meant for its consumer, not a mistake on its producer (and
         * librdkafka says so for each such property of each client) */
        l = DS_LOG_DEBUG;
    }
    ds_log(l, "kafka", "%s: %s", fac, buf);
}

void ds_kafka_hooks_all_committed(ds_kafka_hooks_t *h) {
    __atomic_store_n(&h->all_committed, 1, __ATOMIC_RELEASE);
}

static ds_err_t set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errstr,
                    size_t errstr_size) {
    char e[512];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        /* never echo the value: it may be a secret */
        snprintf(errstr, errstr_size, "kafka.%s: %s", k, e);
        return DS_ERR_CONFIG;
    }
    return DS_ERR_OK;
}

static ds_err_t set_all(rd_kafka_conf_t *conf, const ds_kv_pair_t *kv, size_t n, char *errstr,
                        size_t errstr_size) {
    for (size_t i = 0; i < n; i++)
        if (set(conf, kv[i].key, kv[i].value, errstr, errstr_size))
            return DS_ERR_CONFIG;
    return DS_ERR_OK;
}

rd_kafka_t *ds_kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
                                const ds_kv_pair_t *defs, size_t ndefs, const char *brokers,
                                const ds_kv_pair_t *extra, size_t nextra, const char *what,
                                char *errstr, size_t errstr_size) {
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_t *rk = NULL;
    char e[512];
    if (!set_all(conf, defs, ndefs, errstr, errstr_size) &&
        !(brokers && set(conf, "bootstrap.servers", brokers, errstr, errstr_size)) &&
        !set_all(conf, extra, nextra, errstr, errstr_size) &&
        !(rk = rd_kafka_new(type, conf, e, sizeof(e))))
        snprintf(errstr, errstr_size, "%s%s%s", what ? what : "", what ? ": " : "", e);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk; /* conf is now owned by rk */
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    const ds_kafka_hooks_t *h = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        DS_INFO("kafka", "partitions assigned count=%d", parts->cnt);
        rd_kafka_assign(rk, parts);
        /* librdkafka keeps a partition paused by the application across a
         * revoke and a new assignment (assign resets only its own pause
         * flag): a partition paused during an outage, revoked and assigned
         * again would never be fetched.  A new assignment starts resumed. */
        rd_kafka_resume_partitions(rk, parts);
        if (h && h->assigned)
            h->assigned(h->opaque, parts);
    } else {
        DS_INFO("kafka", "partitions revoked count=%d", parts->cnt);
        if (h && h->revoked)
            h->revoked(h->opaque, parts);
        rd_kafka_assign(rk, NULL);
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk;
    const ds_kafka_hooks_t *h = opaque;
    if (h && h->error)
        h->error(h->opaque, err, reason);
    else
        DS_WARN("kafka", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    (void)rk;
    const ds_kafka_hooks_t *h = opaque;
    if (h && h->stats)
        h->stats(h->opaque, json, len);
    return 0; /* librdkafka frees json */
}

/* An integer member of a statistics object, or -1. */
static int64_t stat_int(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

ds_err_t ds_kafka_stats_read(const char *json, size_t len, const char *topic,
                             void (*fn)(void *opaque, const ds_kafka_part_stats_t *p), void *opaque,
                             ds_kafka_brokers_t *brokers) {
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return DS_ERR_INVAL;
    if (brokers) {
        memset(brokers, 0, sizeof(*brokers));
        const char *name;
        json_t *b;
        json_object_foreach(json_object_get(root, "brokers"), name, b) {
            json_t *rx = json_object_get(b, "rx");
            const char *st = json_string_value(json_object_get(b, "state"));
            if (json_is_integer(rx))
                brokers->rx += (int64_t)json_integer_value(rx);
            brokers->up += st && !strcmp(st, "UP");
            brokers->total++;
        }
    }
    if (!fn) {
        json_decref(root);
        return DS_ERR_OK;
    }
    json_t *parts = json_object_get(json_object_get(json_object_get(root, "topics"), topic),
                                    "partitions");
    if (!json_is_object(json_object_get(root, "topics"))) {
        json_decref(root);
        return DS_ERR_INVAL;
    }
    const char *k;
    json_t *p;
    json_object_foreach(parts, k, p) {
        char *end;
        long id = strtol(k, &end, 10);
        if (*end || id < 0) /* "-1": the internal UA partition */
            continue;
        const char *fs = json_string_value(json_object_get(p, "fetch_state"));
        ds_kafka_part_stats_t ps = {
            .partition = (int32_t)id,
            .lag = stat_int(p, "consumer_lag"),
            .committed = stat_int(p, "committed_offset"),
            .app_offset = stat_int(p, "app_offset"),
            .next_offset = stat_int(p, "next_offset"),
            .hi_offset = stat_int(p, "hi_offset"),
            .fetch_state = fs ? fs : "",
            .fetching = fs && strcmp(fs, "none") != 0 && strcmp(fs, "stopped") != 0,
        };
        fn(opaque, &ps);
    }
    json_decref(root);
    return DS_ERR_OK;
}

rd_kafka_t *ds_kafka_consumer_new(const ds_config_t *cfg, const char *const *topics,
                                  size_t ntopics, const ds_kafka_hooks_t *hooks,
                                  char *errstr, size_t errstr_size) {
    const ds_kv_pair_t defaults[] = {
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "1000"},
        {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", "range"},
        {"enable.partition.eof", "false"},
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "1000"},
        {"fetch.wait.max.ms", "10"},
        /* librdkafka 2.0.2 stops fetching once the consumer queue holds
         * queued.min.messages (default 100,000) messages, and nothing
         * wakes its fetcher when the worker drains them: it sleeps up to
         * 1 s.  A worker that drains 100,000 cheap events in a fraction of
         * that then idles; so the queue is bounded by its size below
         * (about 1 s of work at full rate) instead of by its count. */
        {"queued.min.messages", "1000000"},
        {"queued.max.messages.kbytes", "65536"},
        /* consumer lag for /metrics, and whether any broker answers */
        {"statistics.interval.ms", "1000"},
        {"group.id", cfg->group_id},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, (void *)hooks);
    rd_kafka_t *rk = ds_kafka_client_new(
        RD_KAFKA_CONSUMER, conf, defaults, sizeof(defaults) / sizeof(defaults[0]), cfg->brokers,
        cfg->kafka, cfg->kafka_count, "kafka consumer", errstr, errstr_size);
    if (!rk)
        return NULL;
    rd_kafka_poll_set_consumer(rk);
    if (ntopics && !ds_kafka_consumer_subscribe(rk, topics, ntopics, errstr, errstr_size)) {
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

bool ds_kafka_consumer_subscribe(rd_kafka_t *rk, const char *const *topics, size_t ntopics,
                                 char *errstr, size_t errstr_size) {
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new((int)ntopics);
    for (size_t i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(sub, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err)
        snprintf(errstr, errstr_size, "kafka subscribe: %s", rd_kafka_err2str(err));
    return !err;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    ds_delivery_t *d = m->_private;
    if (!d)
        return;
    if (!d->outstanding) {
        /* the counter was reset, or used again, before this report came:
         * the counts of whatever it tracks now are wrong */
        DS_ERROR("kafka", "a delivery report for a counter with no message outstanding (%s)",
                 rd_kafka_err2str(m->err));
        return;
    }
    d->outstanding--;
    if (m->err) {
        if (!d->failed)
            d->first_err = m->err;
        d->failed++;
    } else {
        d->delivered++;
    }
}

void ds_kafka_conf_track_deliveries(rd_kafka_conf_t *conf) { rd_kafka_conf_set_dr_msg_cb(conf, dr_cb); }

/* librdkafka 2.0.2's rd_kafka_seek_partitions waits a thousandth of the
 * timeout it is given (milliseconds handed on as microseconds; fixed in
 * 2.1.0): a wait of 10 s gave up after 10 ms with "Timed out", though
 * the seeks went on.  So none is waited for.  Nothing is lost by it: the
 * call sets each partition's version barrier before it returns, and the
 * consumer drops any record of an older version it still holds. */
ds_err_t ds_kafka_seek(rd_kafka_t *consumer, rd_kafka_topic_partition_list_t *l) {
    rd_kafka_error_t *e = rd_kafka_seek_partitions(consumer, l, 0);
    bool bad = e != NULL;
    if (e) {
        DS_WARN("kafka", "seek: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].err && l->elems[i].err != RD_KAFKA_RESP_ERR__IN_PROGRESS) {
            DS_WARN("kafka", "seek %s [%d]: %s", l->elems[i].topic, (int)l->elems[i].partition,
                    rd_kafka_err2str(l->elems[i].err));
            bad = true;
        }
    return bad ? DS_ERR_INVAL : DS_ERR_OK;
}

rd_kafka_t *ds_kafka_producer_new(const ds_config_t *cfg, char *errstr, size_t errstr_size) {
    static const ds_kv_pair_t defaults[] = {
        {"enable.idempotence", "true"},
        {"linger.ms", "2"},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
        {"compression.codec", "none"},
        {"message.timeout.ms", "300000"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    return ds_kafka_client_new(RD_KAFKA_PRODUCER, conf, defaults,
                               sizeof(defaults) / sizeof(defaults[0]), cfg->brokers, cfg->kafka,
                               cfg->kafka_count, "kafka producer", errstr, errstr_size);
}

bool ds_kafka_warm_topics(rd_kafka_t *rk, const char *const *topics, size_t n, int timeout_ms) {
    bool ok = true;
    int64_t deadline = ds_clock_mono_ms() + timeout_ms;
    for (size_t i = 0; i < n; i++) {
        int64_t left = deadline - ds_clock_mono_ms();
        rd_kafka_topic_t *rkt = left > 0 ? rd_kafka_topic_new(rk, topics[i], NULL) : NULL;
        if (!rkt) {
            ok = false;
            continue;
        }
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, (int)left);
        if (err || !md || md->topic_cnt != 1 || md->topics[0].err)
            ok = false;
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    return ok;
}

ds_err_t ds_kafka_produce_rkt(rd_kafka_t *p, rd_kafka_topic_t *rkt, const void *key, size_t klen,
                              const void *val, size_t vlen, rd_kafka_headers_t *hdrs,
                              ds_delivery_t *d) {
    for (;;) {
        rd_kafka_resp_err_t err;
        if (hdrs)
            err =
                rd_kafka_producev(p, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
                                  RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        else
            err =
                rd_kafka_producev(p, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
                                  RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        if (!err) {
            if (d)
                d->outstanding++;
            return DS_ERR_OK;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(p, 10);
            continue;
        }
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        DS_ERROR("kafka", "produce to %s failed: %s", rd_kafka_topic_name(rkt),
                 rd_kafka_err2str(err));
        return DS_ERR_IO;
    }
}

ds_err_t ds_kafka_produce(rd_kafka_t *p, const char *topic, const void *key, size_t klen,
                          const void *val, size_t vlen, rd_kafka_headers_t *hdrs,
                          ds_delivery_t *d) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p, topic, NULL);
    if (!rkt) {
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        DS_ERROR("kafka", "produce to %s failed: %s", topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        return DS_ERR_IO;
    }
    ds_err_t e = ds_kafka_produce_rkt(p, rkt, key, klen, val, vlen, hdrs, d);
    rd_kafka_topic_destroy(rkt);
    return e;
}

ds_err_t ds_kafka_wait(rd_kafka_t *p, ds_delivery_t *d, int timeout_ms) {
    int64_t deadline = ds_clock_mono_ms() + timeout_ms;
    rd_kafka_poll(p, 0);
    while (d->outstanding && ds_clock_mono_ms() < deadline)
        rd_kafka_poll(p, 5);
    if (d->outstanding)
        return DS_ERR_TIMEOUT;
    return d->failed ? DS_ERR_IO : DS_ERR_OK;
}

void ds_kafka_store_offsets(rd_kafka_t *c, rd_kafka_topic_partition_list_t *offsets) {
    if (!offsets || !offsets->cnt)
        return;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c, offsets);
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
        DS_WARN("kafka", "offsets_store: %s", rd_kafka_err2str(err));
}

int ds_kafka_group_offsets(const char *brokers, const char *group, const char *topic,
                           int timeout_ms, ds_kafka_group_offset_fn fn, void *opaque) {
    const ds_kv_pair_t defs[] = {{"group.id", (char *)group}, {"log_level", "3"}};
    char e[512];
    rd_kafka_t *k = ds_kafka_client_new(RD_KAFKA_CONSUMER, rd_kafka_conf_new(), defs, 2, brokers,
                                        NULL, 0, NULL, e, sizeof(e));
    if (!k)
        return -1;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(k, topic, NULL);
    int np = -1;
    if (!rd_kafka_metadata(k, 0, t, &md, timeout_ms) && md->topic_cnt == 1) {
        int n = md->topics[0].partition_cnt;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
        for (int i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(l, topic, md->topics[0].partitions[i].id);
        if (!rd_kafka_committed(k, l, timeout_ms)) {
            np = n;
            for (int i = 0; i < l->cnt; i++) {
                int64_t lo, hi;
                if (rd_kafka_query_watermark_offsets(k, topic, l->elems[i].partition, &lo, &hi,
                                                     timeout_ms))
                    hi = -1;
                fn(opaque, l->elems[i].partition, l->elems[i].offset, hi);
            }
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(k);
    return np;
}

static void behind(void *opaque, int32_t partition, int64_t committed, int64_t high) {
    (void)partition;
    bool *done = opaque;
    if (high < 0 || (high > 0 && committed < high))
        *done = false;
}

bool ds_kafka_group_caught_up(const char *brokers, const char *group, const char *topic,
                              int timeout_ms) {
    bool done = true;
    return ds_kafka_group_offsets(brokers, group, topic, timeout_ms, behind, &done) > 0 && done;
}
