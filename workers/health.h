/*
 * health.h — whether a worker is ready, and the checks that say so: the
 * Redis probe and the brokers' silence.
 *
 * Readiness tells the truth: it is lost when a Redis reply is owed for
 * longer than redis.timeout_ms (writes not waited for included), when a
 * PING sent every DS_HEALTH_PROBE_MS (also while idle, and while a retry
 * waits out its backoff) goes unanswered as long, when no broker has
 * answered for broker_timeout_ms (librdkafka's statistics) or all are
 * down, when outputs are not acknowledged, and while the schema registry
 * holds decoding up; it comes back with the first answer.  In a Redis
 * Cluster the same holds per master: the probe's PING goes to each, and a
 * reply owed by any one of them for too long is a Redis that does not
 * answer.
 *
 * The worker's thread writes these flags; ds_health_ready() reads them
 * from any thread (the texts under a lock, the flags as single words).
 */
#ifndef DS_HEALTH_H
#define DS_HEALTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ds_err.h"
#include "ds_log.h"
#include "ds_redis.h"

/* How often the probe's PING is sent on the load connection. */
#define DS_HEALTH_PROBE_MS 250

typedef struct ds_health {
    const char *name; /* the worker's: logs and reasons */
    int broker_timeout_ms;
    volatile int started;  /* the output schemas are registered (or there is no registry) */
    volatile int assigned; /* partitions assigned */
    volatile int redis_ok, kafka_ok;
    volatile int state_unreadable; /* with !redis_ok: Redis answers, with state we cannot read */
    volatile int decode_ok; /* decoding does not wait for the schema registry */
    pthread_mutex_t why_lock;
    char start_why[512]; /* why it has not started yet (why_lock) */
    char redis_why[300]; /* the last Redis failure (why_lock) */
    /* the brokers, from librdkafka's statistics and errors */
    int64_t broker_answer_ms; /* when their responses last grew (atomic) */
    int64_t broker_rx;
    volatile int brokers_down; /* librdkafka: all brokers down */
    volatile int stats_seen;
    ds_log_rl_t rl_kafka;
    /* the Redis probe: one PING in flight at a time */
    bool probing;
    int64_t last_probe_ms; /* when the last one was sent */
} ds_health_t;

/** Not started yet, everything else fine until told otherwise (name
 *  borrowed). */
void ds_health_init(ds_health_t *h, const char *name, int broker_timeout_ms);
void ds_health_destroy(ds_health_t *h);

/** Whether the worker is ready; why gets the reason when not.  Any thread. */
bool ds_health_ready(ds_health_t *h, char *why, size_t why_size);

/** Why the worker has not started yet (for ds_health_ready). */
void ds_health_set_start_why(ds_health_t *h, const char *why);

/** A Redis round failed (why: its error) / Redis answered again. */
void ds_health_redis_down(ds_health_t *h, const char *why);
/** Redis answered with stored state the worker cannot read (and will not
 *  overwrite): not ready until a load succeeds (ds_health_redis_up). */
void ds_health_state_unreadable(ds_health_t *h);
void ds_health_redis_up(ds_health_t *h);

/** Broker silence is timed from now (the worker starts consuming). */
void ds_health_brokers_start(ds_health_t *h, int64_t now);
/** librdkafka's statistics counted `rx` responses over all brokers. */
void ds_health_brokers_rx(ds_health_t *h, int64_t rx, int64_t now);
/** librdkafka said all brokers are down. */
void ds_health_brokers_down(ds_health_t *h, const char *reason);
/** No broker answered for broker_timeout_ms (once statistics came: they
 *  are what says so), or all are down.  Any thread. */
bool ds_health_brokers_silent(ds_health_t *h);
/** A broker's responses grew within the last `within_ms` and librdkafka
 *  does not say all are down.  Any thread. */
bool ds_health_brokers_answered(ds_health_t *h, int64_t within_ms);

typedef enum {
    DS_PROBE_IDLE, /* nothing to do now */
    DS_PROBE_DUE,  /* a PING is due: connect and ds_health_probe_send() */
    DS_PROBE_WAIT, /* a PING in flight, no answer yet */
    DS_PROBE_UP,   /* it answered now */
    DS_PROBE_DOWN, /* it failed (the connection's error says why) */
} ds_probe_t;

/** The probe, without waiting: the answer of the PING in flight, if any
 *  (a reply owed for redis.timeout_ms fails it), or whether the next one
 *  is due. */
ds_probe_t ds_health_probe_poll(ds_health_t *h, ds_redis_t *r, int64_t now);
/** Send the PING (r connected); an error fails the probe. */
ds_err_t ds_health_probe_send(ds_health_t *h, ds_redis_t *r) DS_WUR;
/** r is about to be used synchronously: read the PING's reply first (it is
 *  in by now unless Redis stopped answering).  DS_PROBE_IDLE when none was
 *  in flight, else UP or DOWN (then the caller reads r's error and closes
 *  it: the replies owed on it are of no use). */
ds_probe_t ds_health_probe_settle(ds_health_t *h, ds_redis_t *r);

#endif
