/*
 * batch.h — the worker's batches and the ring they live in.
 *
 * A batch holds the messages polled together, their decoded events, the
 * outputs its apply emitted (bytes kept until acknowledged), the RESP bytes
 * of its share of the Redis writes (kept until confirmed) and, when it
 * writes the last entity of a write-behind window, the offsets to store
 * once those writes are confirmed.
 *
 * DS_NBATCH batches are alive at once (the ring), so that the worker
 * computes while Redis writes and the broker acknowledges: while batch k
 * is built, the outputs of k-1 are being acknowledged and the writes of
 * older ones executed.  A batch moves through its states in this order
 * only, and batches of one state are handled oldest (lowest seq) first:
 *
 *   FREE → BUILD (collected, loaded, applied) → ACKS (outputs produced,
 *   delivery reports pending) → READY (outputs acknowledged: writes may
 *   go, again after a lost connection) → SENT (writes sent, replies
 *   pending) → FREE once its writes are confirmed; DONE (offsets stored,
 *   during a revoke) only waits to be released.
 *
 * Any batch may go back to FREE without storing anything (abandoned).
 * Nothing here waits, logs or talks to Redis or the broker.
 */
#ifndef DS_BATCH_H
#define DS_BATCH_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_err.h"
#include "ds_kafka.h"

#define DS_NBATCH 6

typedef enum {
    DS_BATCH_FREE,  /* unused */
    DS_BATCH_BUILD, /* being collected and applied */
    DS_BATCH_ACKS,  /* applied; outputs produced, delivery reports pending */
    DS_BATCH_READY, /* outputs acknowledged; writes to send (again after a lost connection) */
    DS_BATCH_SENT,  /* writes sent, replies pending */
    DS_BATCH_DONE,  /* offsets stored (during a revoke): only to release */
} ds_batch_state_t;

/* One output of a batch: its bytes are in the batch's out_bytes. */
typedef struct ds_output {
    const char *topic; /* static for the worker's life (config) */
    size_t key_off, key_len, val_off, val_len, id_off, id_len;
    int dlq_index; /* >= 0: a DLQ record for batch message dlq_index */
} ds_output_t;

typedef struct ds_batch {
    ds_batch_state_t state;
    uint64_t seq;
    int64_t t0_us; /* first message polled */
    /* per message (room for batch.size), all in one allocation (mem) */
    void *mem;
    unsigned char *slot_mem;
    rd_kafka_message_t **msgs;
    size_t nmsgs;
    void **slots;
    const char **details;
    int32_t *parts;
    ds_err_t *errs;
    ds_arena_t arena;
    ds_buf_t outs; /* nouts ds_output_t (ds_batch_output) */
    size_t nouts;
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
} ds_batch_t;

typedef struct ds_batch_ring {
    ds_batch_t b[DS_NBATCH];
    uint64_t seq; /* of the newest batch taken */
} ds_batch_ring_t;

/** Every batch FREE, room for `cap` messages of `event_size` bytes of
 *  decoded event each.  False when out of memory (ds_batch_ring_free()
 *  still frees what was allocated). */
bool ds_batch_ring_init(ds_batch_ring_t *ring, size_t cap, size_t event_size);
/** Release and free every batch. */
void ds_batch_ring_free(ds_batch_ring_t *ring);

/** A FREE batch, now BUILD with the next seq; NULL when all are in use. */
ds_batch_t *ds_batch_ring_take(ds_batch_ring_t *ring);
/** The batches in `state`, oldest first, into out (DS_NBATCH entries);
 *  returns how many. */
size_t ds_batch_ring_in(ds_batch_ring_t *ring, ds_batch_state_t state, ds_batch_t **out);
/** Whether any batch is past BUILD (outputs or writes in flight). */
bool ds_batch_ring_inflight(const ds_batch_ring_t *ring);

/** Back to FREE: messages destroyed, offsets to store dropped, buffers
 *  kept for reuse (the writes' room only up to a bound). */
void ds_batch_release(ds_batch_t *b);

/** Queue an output (copied into b).  False when out of memory (nothing
 *  queued). */
bool ds_batch_add_output(ds_batch_t *b, const char *topic, const char *key, const void *val,
                         size_t vlen, const char *id) DS_WUR;

/** The i-th output of b (i < b->nouts). */
static inline ds_output_t *ds_batch_output(const ds_batch_t *b, size_t i) {
    return (ds_output_t *)(void *)b->outs.data + i;
}

/** Whether every output of b is acknowledged (none failed). */
bool ds_batch_acked(const ds_batch_t *b);

/** Raise l's offsets to those after b's messages (l keeps the larger). */
void ds_batch_add_offsets(rd_kafka_topic_partition_list_t *l, const ds_batch_t *b);

/** b stores the offsets of l (owned now; merged into those it has: the
 *  larger offset of a partition), which cover `msgs` messages. */
void ds_batch_merge_store(ds_batch_t *b, rd_kafka_topic_partition_list_t *l, size_t msgs);

#endif
