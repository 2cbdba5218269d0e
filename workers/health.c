/*
 * health.c — readiness, the Redis probe and broker silence (health.h).
 *
 * The probe is what tells a worker with nothing to ask of Redis (idle, or
 * every unit in memory) within redis.timeout_ms that Redis stopped
 * answering (ds_redis_collect_avail times the reply out), and a retry that
 * waits out its backoff at once that it answers again.  Broker silence
 * comes from librdkafka's statistics: the responses received over all
 * broker connections grow while one answers (fetches every
 * fetch.wait.max.ms, heartbeats every second even while paused).
 * broker_answer_ms is read by other threads: atomic loads and stores.
 */
#include "health.h"

#include <stdio.h>
#include <string.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_log.h"

static const char ping_cmd[] = "*1\r\n$4\r\nPING\r\n";

void ds_health_init(ds_health_t *h, const char *name, int broker_timeout_ms) {
    memset(h, 0, sizeof(*h));
    h->name = name;
    h->broker_timeout_ms = broker_timeout_ms;
    h->kafka_ok = 1;
    h->decode_ok = 1;
    pthread_mutex_init(&h->why_lock, NULL);
    snprintf(h->start_why, sizeof(h->start_why), "%s: starting", name);
}

void ds_health_destroy(ds_health_t *h) {
    pthread_mutex_destroy(&h->why_lock);
}

void ds_health_set_start_why(ds_health_t *h, const char *why) {
    pthread_mutex_lock(&h->why_lock);
    snprintf(h->start_why, sizeof(h->start_why), "%s", why);
    pthread_mutex_unlock(&h->why_lock);
}

void ds_health_redis_down(ds_health_t *h, const char *why) {
    h->redis_ok = 0;
    h->state_unreadable = 0;
    pthread_mutex_lock(&h->why_lock);
    ds_strlcpy(h->redis_why, why[0] ? why : "no reason given", sizeof(h->redis_why));
    pthread_mutex_unlock(&h->why_lock);
}

void ds_health_state_unreadable(ds_health_t *h) {
    h->state_unreadable = 1;
    h->redis_ok = 0;
}

void ds_health_redis_up(ds_health_t *h) {
    if (!h->redis_ok)
        DS_INFO(h->name, "%s",
                h->state_unreadable ? "the stored state it could not read is readable now"
                                    : "redis is reachable again");
    h->state_unreadable = 0;
    h->redis_ok = 1;
}

void ds_health_brokers_start(ds_health_t *h, int64_t now) {
    __atomic_store_n(&h->broker_answer_ms, now, __ATOMIC_RELAXED);
}

void ds_health_brokers_rx(ds_health_t *h, int64_t rx, int64_t now) {
    if (!h->stats_seen) { /* the count so far; silence is timed from the start */
        h->broker_rx = rx;
    } else if (rx != h->broker_rx) {
        if (h->brokers_down ||
            now - __atomic_load_n(&h->broker_answer_ms, __ATOMIC_RELAXED) > h->broker_timeout_ms)
            DS_INFO(h->name, "a broker answers again");
        h->broker_rx = rx;
        __atomic_store_n(&h->broker_answer_ms, now, __ATOMIC_RELAXED);
        h->brokers_down = 0;
    } else if (now - __atomic_load_n(&h->broker_answer_ms, __ATOMIC_RELAXED) >
               h->broker_timeout_ms) {
        ds_log_rl(&h->rl_kafka, 5000, DS_LOG_WARN, h->name,
                  "no broker has answered for %lld ms (broker_timeout_ms %d): not ready",
                  (long long)(now - h->broker_answer_ms), h->broker_timeout_ms);
    }
    h->stats_seen = 1;
}

void ds_health_brokers_down(ds_health_t *h, const char *reason) {
    h->brokers_down = 1;
    ds_log_rl(&h->rl_kafka, 5000, DS_LOG_WARN, h->name, "all brokers are down (%s): not ready",
              reason);
}

bool ds_health_brokers_silent(ds_health_t *h) {
    if (h->brokers_down)
        return true;
    return h->stats_seen &&
           ds_clock_mono_ms() - __atomic_load_n(&h->broker_answer_ms, __ATOMIC_RELAXED) >
               h->broker_timeout_ms;
}

bool ds_health_brokers_answered(ds_health_t *h, int64_t within_ms) {
    return !h->brokers_down &&
           ds_clock_mono_ms() - __atomic_load_n(&h->broker_answer_ms, __ATOMIC_RELAXED) < within_ms;
}

bool ds_health_ready(ds_health_t *h, char *why, size_t why_size) {
    if (!h->started) {
        pthread_mutex_lock(&h->why_lock);
        snprintf(why, why_size, "%s: not started: %s", h->name, h->start_why);
        pthread_mutex_unlock(&h->why_lock);
        return false;
    }
    /* the brokers first: without them nothing is assigned, and "no
     * partitions assigned" would hide why */
    if (h->brokers_down) {
        snprintf(why, why_size, "%s: all brokers down", h->name);
        return false;
    }
    if (ds_health_brokers_silent(h)) {
        snprintf(why, why_size, "%s: no broker answered for %d ms (broker_timeout_ms)", h->name,
                 h->broker_timeout_ms);
        return false;
    }
    if (!h->assigned) {
        snprintf(why, why_size, "%s: no partitions assigned", h->name);
        return false;
    }
    if (!h->redis_ok && h->state_unreadable) {
        snprintf(why, why_size, "%s: stored state in Redis unreadable (the log names the key)",
                 h->name);
        return false;
    }
    if (!h->redis_ok) {
        pthread_mutex_lock(&h->why_lock);
        snprintf(why, why_size, "%s: redis not answering: %s", h->name,
                 h->redis_why[0] ? h->redis_why : "not connected yet");
        pthread_mutex_unlock(&h->why_lock);
        return false;
    }
    if (!h->kafka_ok) {
        snprintf(why, why_size, "%s: broker not acknowledging outputs", h->name);
        return false;
    }
    if (!h->decode_ok) {
        snprintf(why, why_size, "%s: schema registry unreachable (input schemas not fetched)",
                 h->name);
        return false;
    }
    return true;
}

ds_probe_t ds_health_probe_poll(ds_health_t *h, ds_redis_t *r, int64_t now) {
    if (h->probing) {
        size_t got = 0;
        if (ds_redis_collect_avail(r, 1, &got)) {
            h->probing = false;
            return DS_PROBE_DOWN;
        }
        if (!got)
            return DS_PROBE_WAIT;
        h->probing = false;
        return DS_PROBE_UP;
    }
    if (now - h->last_probe_ms < DS_HEALTH_PROBE_MS)
        return DS_PROBE_IDLE;
    h->last_probe_ms = now;
    return DS_PROBE_DUE;
}

ds_err_t ds_health_probe_send(ds_health_t *h, ds_redis_t *r) {
    ds_err_t e = ds_redis_send(r, ping_cmd, sizeof(ping_cmd) - 1, 1);
    h->probing = !e;
    return e;
}

ds_probe_t ds_health_probe_settle(ds_health_t *h, ds_redis_t *r) {
    if (!h->probing)
        return DS_PROBE_IDLE;
    h->probing = false;
    return ds_redis_collect(r, 1) == DS_ERR_OK ? DS_PROBE_UP : DS_PROBE_DOWN;
}
