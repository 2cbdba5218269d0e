/*
 * writebehind.h — when a worker's state goes to Redis: windows, shares and
 * the idle write.
 *
 * State is written behind, in windows of an interval (below) or of
 * redis.flush_entities dirty entities, whichever comes first.  `seen`
 * has the offsets of every batch built since the last window closed; a
 * window that closes takes them and owes the entities dirty then.  Those
 * are written over the batches that follow, oldest first, an even share
 * each over the next interval (at least DS_WB_SLICE_MIN a batch, all of
 * them once the interval is over), so that formatting and Redis's work
 * come in small steps, not as a stop of the worker every interval, and an
 * entity's change reaches Redis within two intervals.  The batch with the
 * window's last share stores the window's offsets once its writes are
 * confirmed (ds_batch_t.store).  One window is written at a time.
 *
 * The interval is redis.flush_ms while the worker keeps up with its
 * input.  Behind it (a backlog, a catch-up after an outage), it is half
 * the lag, up to redis.flush_max_ms; the worker says what the lag is
 * (ds_wb_seen).  State in Redis is then behind the input by the lag
 * already; a longer window adds at most as much again, and writes an
 * entity that changes throughout the backlog once per window instead of
 * once per redis.flush_ms.
 *
 * After idle_flush_ms (a tenth of redis.flush_ms) without a message the
 * worker writes all it owes: a stream with pauses gets its state to Redis
 * soon after each burst; one that never pauses is written in windows.
 * A window closed with nothing dirty owes nothing: its offsets are stored
 * as soon as its batch is acknowledged.
 */
#ifndef DS_WRITEBEHIND_H
#define DS_WRITEBEHIND_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "batch.h"
#include "ds_metrics.h"
#include "ds_redis.h"

/* What the windows ask of the worker (worker.c: its dirty queue). */
typedef struct ds_wb_hooks {
    /* a window closes: how many dirty entities it owes (the oldest ones) */
    size_t (*close)(void *self);
    /* append the writes of the n oldest dirty entities (with `last`, the
     * window's last share) to r; they are clean afterwards */
    void (*write)(void *self, ds_redis_t *r, size_t n, bool last);
    /* how many entities are dirty now */
    size_t (*dirty_count)(void *self);
} ds_wb_hooks_t;

/* Each batch writes at least this many of a closed window's entities. */
#define DS_WB_SLICE_MIN 64
/* While a window is written: how long an idle worker waits for a message
 * before it writes the next share. */
#define DS_WB_SLICE_IDLE_MS 5

typedef struct ds_wb {
    const ds_wb_hooks_t *ops;
    void *self;
    int64_t flush_ms;      /* redis.flush_ms */
    int64_t flush_max_ms;  /* redis.flush_max_ms */
    size_t flush_entities; /* redis.flush_entities */
    int64_t lag_ms;        /* how far behind its input the worker is, at the last batch */
    int64_t pace_ms;       /* the interval of the window being written */
    ds_gauge_t *window_gauge; /* optional: the interval in force, in seconds */
    rd_kafka_topic_partition_list_t *seen;
    size_t seen_msgs;
    bool closing; /* a closed window is being written */
    rd_kafka_topic_partition_list_t *closed;
    size_t closed_msgs;
    size_t owed, owed_total; /* its entities not formatted yet, of all */
    int64_t last_flush_ms;   /* when the last window closed */
} ds_wb_t;

/** Windows of the worker's dirty entities (ops and self borrowed).
 *  False when out of memory. */
bool ds_wb_init(ds_wb_t *wb, const ds_wb_hooks_t *ops, void *self, int64_t flush_ms,
                int64_t flush_max_ms, size_t flush_entities);
void ds_wb_free(ds_wb_t *wb);

/** The first interval starts at now. */
void ds_wb_start(ds_wb_t *wb, int64_t now);

/** Forget the windows (the state they owe is being dropped); returns how
 *  many messages their offsets covered (to be consumed again). */
size_t ds_wb_drop(ds_wb_t *wb);

/** Whether state or offsets are still to be written. */
bool ds_wb_owes(const ds_wb_t *wb);

/** Batch b was built: its offsets are in the next window.  lag_ms: how
 *  far behind its input the worker is now (negative: b does not say;
 *  the last lag stands). */
void ds_wb_seen(ds_wb_t *wb, const ds_batch_t *b, int64_t lag_ms);
/** The interval now: redis.flush_ms, or half the lag while that is
 *  longer, up to redis.flush_max_ms (0 with redis.flush_ms 0). */
int64_t ds_wb_interval_ms(const ds_wb_t *wb);

/** How long an idle worker may wait for a message (at most `wait` ms)
 *  before the state it owes is due: the next share, the window's close,
 *  or the idle write (`last_msg_ms`: when the last message came). */
int ds_wb_wait_ms(const ds_wb_t *wb, int64_t now, int64_t last_msg_ms, int wait);

/** With no message, no tick and nothing in flight: whether an empty batch
 *  is due to write (a share of a closed window, or to close one once the
 *  interval is over); *all: everything goes (idle_flush_ms without a
 *  message). */
bool ds_wb_due(const ds_wb_t *wb, int64_t now, int64_t last_msg_ms, bool *all);

/** The write-behind step of batch b: close a window when its limits are
 *  reached (or nothing is dirty), then format the batch's share of the
 *  closed window's writes into b (captured from r).  With `all`
 *  (shutdown, idle), everything: the window in hand, then one more with
 *  the rest. */
void ds_wb_step(ds_wb_t *wb, ds_batch_t *b, ds_redis_t *r, int64_t now, bool all);

#endif
