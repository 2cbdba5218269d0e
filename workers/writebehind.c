/*
 * writebehind.c — the write-behind windows (writebehind.h).
 *
 * Invariants: at most one window is closed and not yet written
 * (`closing`); owed <= owed_total; a window's offsets (`closed`) go to
 * exactly one batch, the one that formats its last entity, and `seen`
 * never holds the offsets of a batch that a closed window took.  The
 * worker's write() writes entities as they are now, so an entity
 * changed again after the close goes out with its newest state.
 */
#include "writebehind.h"

#include <string.h>

bool ds_wb_init(ds_wb_t *wb, const ds_wb_hooks_t *ops, void *self, int64_t flush_ms,
                int64_t flush_max_ms, size_t flush_entities) {
    memset(wb, 0, sizeof(*wb));
    wb->ops = ops;
    wb->self = self;
    wb->flush_ms = flush_ms;
    wb->flush_max_ms = flush_max_ms;
    wb->pace_ms = flush_ms;
    wb->flush_entities = flush_entities;
    wb->seen = rd_kafka_topic_partition_list_new(8);
    return wb->seen != NULL;
}

void ds_wb_free(ds_wb_t *wb) {
    if (wb->seen)
        rd_kafka_topic_partition_list_destroy(wb->seen);
    if (wb->closed)
        rd_kafka_topic_partition_list_destroy(wb->closed);
    wb->seen = wb->closed = NULL;
}

void ds_wb_start(ds_wb_t *wb, int64_t now) {
    wb->last_flush_ms = now;
}

size_t ds_wb_drop(ds_wb_t *wb) {
    size_t msgs = wb->seen_msgs + wb->closed_msgs;
    rd_kafka_topic_partition_list_destroy(wb->seen);
    wb->seen = rd_kafka_topic_partition_list_new(8);
    wb->seen_msgs = 0;
    if (wb->closed)
        rd_kafka_topic_partition_list_destroy(wb->closed);
    wb->closed = NULL;
    wb->closed_msgs = 0;
    wb->closing = false;
    wb->owed = wb->owed_total = 0;
    return msgs;
}

bool ds_wb_owes(const ds_wb_t *wb) {
    return wb->closing || wb->seen_msgs || wb->ops->dirty_count(wb->self);
}

void ds_wb_seen(ds_wb_t *wb, const ds_batch_t *b, int64_t lag_ms) {
    ds_batch_add_offsets(wb->seen, b);
    wb->seen_msgs += b->nmsgs;
    if (lag_ms >= 0) {
        wb->lag_ms = lag_ms;
        ds_gauge_set(wb->window_gauge, (double)ds_wb_interval_ms(wb) / 1000.0);
    }
}

int64_t ds_wb_interval_ms(const ds_wb_t *wb) {
    int64_t half_lag = wb->lag_ms / 2;
    int64_t most = wb->flush_max_ms > wb->flush_ms ? wb->flush_max_ms : wb->flush_ms;
    if (wb->flush_ms <= 0 || half_lag <= wb->flush_ms)
        return wb->flush_ms;
    return half_lag < most ? half_lag : most;
}

/* The open window's interval is over. */
static bool interval_over(const ds_wb_t *wb, int64_t now) {
    return now - wb->last_flush_ms >= ds_wb_interval_ms(wb);
}

static int64_t idle_flush_ms(const ds_wb_t *wb) {
    return wb->flush_ms / 10;
}

int ds_wb_wait_ms(const ds_wb_t *wb, int64_t now, int64_t last_msg_ms, int wait) {
    if (!ds_wb_owes(wb))
        return wait;
    int64_t left =
        wb->closing ? DS_WB_SLICE_IDLE_MS : wb->last_flush_ms + ds_wb_interval_ms(wb) - now;
    int64_t idle_left = last_msg_ms + idle_flush_ms(wb) - now;
    if (idle_left < left)
        left = idle_left;
    return left < 0 ? 0 : left < wait ? (int)left : wait;
}

bool ds_wb_due(const ds_wb_t *wb, int64_t now, int64_t last_msg_ms, bool *all) {
    *all = false;
    if (!ds_wb_owes(wb))
        return false;
    *all = now - last_msg_ms >= idle_flush_ms(wb);
    return *all || wb->closing || interval_over(wb, now);
}

/* Close a window: it takes the offsets seen since the last one and owes
 * the entities dirty now. */
static void close_window(ds_wb_t *wb, int64_t now) {
    wb->closed = wb->seen;
    wb->closed_msgs = wb->seen_msgs;
    wb->seen = rd_kafka_topic_partition_list_new(8);
    wb->seen_msgs = 0;
    wb->owed = wb->owed_total = wb->ops->close(wb->self);
    wb->closing = true;
    wb->last_flush_ms = now;
    wb->pace_ms = ds_wb_interval_ms(wb);
}

/* How many of the closed window's entities a batch writes: an even share
 * of them over the interval that follows the close (the next window
 * closes when they are all written), at least DS_WB_SLICE_MIN, all of them
 * once the interval is over (an interval of 0: all at once). */
static size_t slice(const ds_wb_t *wb, int64_t now) {
    int64_t pace = wb->pace_ms, since = now - wb->last_flush_ms;
    if (pace <= 0 || since >= pace)
        return wb->owed;
    size_t due = (size_t)((double)wb->owed_total * (double)since / (double)pace);
    size_t done = wb->owed_total - wb->owed;
    size_t n = due > done ? due - done : 0;
    if (n < DS_WB_SLICE_MIN)
        n = DS_WB_SLICE_MIN;
    return n < wb->owed ? n : wb->owed;
}

void ds_wb_step(ds_wb_t *wb, ds_batch_t *b, ds_redis_t *r, int64_t now, bool all) {
    ds_redis_capture(r, &b->writes, &b->nwrites);
    for (;;) {
        if (!wb->closing) {
            size_t dirty = wb->ops->dirty_count(wb->self);
            if (all || dirty == 0 || interval_over(wb, now) || dirty >= wb->flush_entities)
                close_window(wb, now);
            else
                break;
        }
        size_t n = all ? wb->owed : slice(wb, now);
        bool last = n == wb->owed;
        wb->ops->write(wb->self, r, n, last); /* the bytes hold it now */
        wb->owed -= n;
        if (!last)
            break;
        ds_batch_merge_store(b, wb->closed, wb->closed_msgs);
        wb->closed = NULL;
        wb->closed_msgs = 0;
        wb->closing = false;
        if (!all || !ds_wb_owes(wb))
            break;
    }
    /* redis.wait_replicas: the window's writes are on that many replicas
     * before its offsets are stored (the WAIT's reply fails the batch) */
    if (b->store)
        ds_redis_capture_wait(r);
    ds_redis_capture(r, NULL, NULL);
}
