/*
 * batch.c — the batch ring: allocation, reuse, ordering and the offsets a
 * batch carries.
 *
 * The ring is a fixed array of DS_NBATCH batches; a batch's state says
 * where it is in the pipeline (batch.h).  Batches of one state are taken
 * oldest first by sorting their seq (at most DS_NBATCH of them: an
 * insertion sort).  A released batch keeps its buffers for the next batch,
 * except the room of its Redis writes above BATCH_WRITES_KEEP: a batch that
 * wrote a large share (or a whole window, when idle) does not keep that
 * much memory for the batches that reuse it.
 */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

/* A released batch keeps at most this much room for its Redis writes. */
#define BATCH_WRITES_KEEP (4u << 20)

/* The per-message arrays in one block: the decoded events first (their
 * size rounded up to 16 bytes keeps what follows aligned), then the
 * pointers, then the 4-byte fields. */
static bool batch_init(ds_batch_t *b, size_t cap, size_t event_size) {
    memset(b, 0, sizeof(*b));
    ds_arena_init(&b->arena, 0);
    ds_buf_init(&b->out_bytes, 0);
    ds_buf_init(&b->writes, 0);
    ds_buf_init(&b->outs, 0);
    size_t events = (cap * event_size + 15) & ~(size_t)15;
    size_t per_msg = sizeof(*b->msgs) + sizeof(*b->slots) + sizeof(*b->details) +
                     sizeof(*b->parts) + sizeof(*b->errs);
    unsigned char *p = b->mem = calloc(1, events + cap * per_msg);
    if (!p)
        return false;
    b->slot_mem = p;
    b->msgs = (rd_kafka_message_t **)(void *)(p += events);
    b->slots = (void **)(void *)(p += cap * sizeof(*b->msgs));
    b->details = (const char **)(void *)(p += cap * sizeof(*b->slots));
    b->parts = (int32_t *)(void *)(p += cap * sizeof(*b->details));
    b->errs = (ds_err_t *)(void *)(p + cap * sizeof(*b->parts));
    return true;
}

void ds_batch_release(ds_batch_t *b) {
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
    ds_buf_reset(&b->outs);
    if (b->writes.cap > BATCH_WRITES_KEEP)
        ds_buf_free(&b->writes);
    ds_buf_reset(&b->writes);
    ds_arena_reset(&b->arena);
    b->state = DS_BATCH_FREE;
}

static void batch_free(ds_batch_t *b) {
    if (b->mem)
        ds_batch_release(b);
    free(b->mem);
    ds_buf_free(&b->outs);
    ds_buf_free(&b->out_bytes);
    ds_buf_free(&b->writes);
    ds_arena_free(&b->arena);
}

bool ds_batch_ring_init(ds_batch_ring_t *ring, size_t cap, size_t event_size) {
    bool ok = true;
    ring->seq = 0;
    for (int i = 0; i < DS_NBATCH; i++)
        ok &= batch_init(&ring->b[i], cap, event_size);
    return ok;
}

void ds_batch_ring_free(ds_batch_ring_t *ring) {
    for (int i = 0; i < DS_NBATCH; i++)
        batch_free(&ring->b[i]);
}

ds_batch_t *ds_batch_ring_take(ds_batch_ring_t *ring) {
    for (int i = 0; i < DS_NBATCH; i++) {
        ds_batch_t *b = &ring->b[i];
        if (b->state == DS_BATCH_FREE) {
            b->state = DS_BATCH_BUILD;
            b->seq = ++ring->seq;
            b->t0_us = 0;
            return b;
        }
    }
    return NULL;
}

size_t ds_batch_ring_in(ds_batch_ring_t *ring, ds_batch_state_t state, ds_batch_t **out) {
    size_t n = 0;
    for (int i = 0; i < DS_NBATCH; i++)
        if (ring->b[i].state == state)
            out[n++] = &ring->b[i];
    for (size_t i = 1; i < n; i++) /* insertion sort by seq: n <= DS_NBATCH */
        for (size_t j = i; j > 0 && out[j]->seq < out[j - 1]->seq; j--) {
            ds_batch_t *t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

bool ds_batch_ring_inflight(const ds_batch_ring_t *ring) {
    for (int i = 0; i < DS_NBATCH; i++)
        if (ring->b[i].state != DS_BATCH_FREE && ring->b[i].state != DS_BATCH_BUILD)
            return true;
    return false;
}

bool ds_batch_add_output(ds_batch_t *b, const char *topic, const char *key, const void *val,
                         size_t vlen, const char *id) {
    if (ds_buf_reserve(&b->outs, sizeof(ds_output_t)))
        return false;
    ds_output_t *o = ds_batch_output(b, b->nouts);
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
        ds_buf_append(&b->out_bytes, id ? id : "", ilen))
        return false;
    b->outs.len += sizeof(ds_output_t);
    b->nouts++;
    return true;
}

bool ds_batch_acked(const ds_batch_t *b) {
    return !b->produce_failed && !b->delivery.failed && !b->delivery.outstanding;
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

void ds_batch_add_offsets(rd_kafka_topic_partition_list_t *l, const ds_batch_t *b) {
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

void ds_batch_merge_store(ds_batch_t *b, rd_kafka_topic_partition_list_t *l, size_t msgs) {
    b->store_msgs += msgs;
    if (!b->store) {
        b->store = l;
        return;
    }
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = NULL;
        raise_offset(b->store, &tp, l->elems[i].topic, l->elems[i].partition, l->elems[i].offset);
    }
    rd_kafka_topic_partition_list_destroy(l);
}
