/*
 * worker.c — the batch pipeline shared by the scorer and the watcher: its
 * lifecycle (new, start, finish, destroy, signals) and ds_worker_run(),
 * the stages of a batch in order.
 *
 * One thread owns a worker: its consumer, producer, two Redis connections
 * (one for the loads a batch needs now, one for writes that may be
 * answered later) and codec state.  Every batch goes through the same
 * stages in order, in ds_worker_run():
 *
 *   poll+decode → load missing state (Redis, waited for) → apply →
 *   produce outputs → persist (write-behind: maybe close a window, format
 *   this batch's share of the closed window's writes, kept as bytes) →
 *   advance: [acks of its outputs] → send its writes → [their replies] →
 *   [a window's last share: store the window's offsets]
 *
 * The Kafka side (polling and decoding, held messages, pausing,
 * rebalances, produce and acks, rewinds) is in worker_kafka.c, the Redis
 * side (loads, write-behind sends and replies, failures, the probe) in
 * worker_redis.c; they share struct ds_worker through worker_int.h.  The
 * policies live in modules of their own: the batch ring and its states
 * (batch.c), the write-behind windows (writebehind.c), the DLQ
 * (dlq.c), readiness and its probes (health.c), the retry backoff
 * (ds_backoff.c) and the allocator (alloc.c).  What both adapters did the
 * same way is here too: every unit's checkpoint (ds_worker_entity_t, the
 * head of the adapter's entry: the replay skip, the wrong_partition
 * check, the applied/duplicate/skipped counts) and the dirty queue the
 * windows write from (dirtyq.h), the adapter's state (allocated here,
 * its head ds_worker_adapter_t filled, new rules set in it) and the
 * encoding of its output records (ds_worker_output); the adapter answers
 * the callbacks of ds_worker_ops_t (worker.h).  Up to DS_NBATCH batches are
 * alive, so that the worker computes while Redis writes and the broker
 * acknowledges.  The rules that keep the guarantees:
 *   - a batch's writes are sent only after every output of it is
 *     acknowledged, and batches' writes go out in batch order on one
 *     connection;
 *   - a window (redis.flush_ms/_max_ms/_entities) takes the offsets of the
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
 * Redis or broker failures pause the partitions and retry with backoff;
 * a retry's backoff ends as soon as the probe finds the server answering
 * again.
 *
 * A Redis (or cluster node) whose run_id changed and that lost a key this
 * worker wrote came back empty: every entity held in memory is written
 * again (worker_redis.c).  Writes that no WAIT confirmed on a node that
 * went away are rewound for instead (ds_wk_rewind_to_committed: consumed
 * again from the committed offsets, the state reloaded), unless that node
 * is the one that came back empty: then the rewrite replaces the rewind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_clock.h"
#include "worker_int.h"

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

/* How long the worker waits for a message while batches are in flight: it
 * looks at their acks and replies again in between. */
#define INFLIGHT_POLL_MS 1

static const char *const phase_names[PH__COUNT] = {
    "collect_decode", "load", "apply", "produce", "format_writes", "wait_acks", "redis_writes"};

/* ---- metrics ------------------------------------------------------------------ */

ds_counter_t *ds_worker_counter(ds_worker_t *w, const char *name, const char *help) {
    return w->metrics ? ds_metrics_counter(w->metrics, name, help, w->labels) : NULL;
}

ds_gauge_t *ds_worker_gauge(ds_worker_t *w, const char *name, const char *help) {
    return w->metrics ? ds_metrics_gauge(w->metrics, name, help, w->labels) : NULL;
}

ds_histogram_t *ds_worker_histogram(ds_worker_t *w, const char *name, const char *help) {
    return w->metrics ? ds_metrics_histogram(w->metrics, name, help, w->labels, ds_latency_bounds,
                                             DS_LATENCY_BOUNDS_N)
                      : NULL;
}

static ds_counter_t *counter(ds_worker_t *w, const char *name, const char *help) {
    return ds_worker_counter(w, name, help);
}

void ds_wk_phase_add(ds_worker_t *w, int phase, int64_t *t_us) {
    int64_t now = ds_clock_mono_us();
    ds_wk_observe(w->m_phase[phase], (double)(now - *t_us) / 1e6);
    *t_us = now;
}

/* ---- retries ------------------------------------------------------------------ */

/* Sleep for a retry while keeping the consumer served: partitions are
 * paused, so anything polled is kept in `held` for the next batch.  The
 * wait ends early as `what` says (wait_for_t). */
void ds_wk_backoff_wait(ds_worker_t *w, int64_t ms, wait_for_t what) {
    ds_wk_set_paused(w, true);
    bool silent = what == WAIT_KAFKA && ds_health_brokers_silent(&w->health);
    int64_t end = ds_clock_mono_ms() + ms;
    while (!w->abandon && !w->fatal && ds_clock_mono_ms() < end &&
           !ds_wk_past_shutdown_timeout(w)) {
        ds_wk_serve_consumer(w, 20);
        if (what == WAIT_REDIS_DOWN && ds_wk_probe_redis(w) == DS_PROBE_UP)
            break; /* it answers again: retry now, whatever the backoff */
        if (silent && !ds_health_brokers_silent(&w->health))
            break;
    }
}

/* True once shutdown_timeout_ms have passed since the stop was asked for
 * (counted from when the worker first sees the request, not from when the
 * wait it is in began: a retry that started long before SIGTERM still
 * gets the whole timeout). */
bool ds_wk_past_shutdown_timeout(ds_worker_t *w) {
    if (!ds_worker_stop)
        return false;
    int64_t now = ds_clock_mono_ms();
    if (!w->stop_ms)
        w->stop_ms = now;
    return now - w->stop_ms > w->cfg->shutdown_timeout_ms;
}

/* True when a retry loop should give up the batch. */
bool ds_wk_must_abandon(ds_worker_t *w) {
    if (w->abandon || w->fatal)
        return true;
    if (ds_wk_past_shutdown_timeout(w)) {
        DS_WARN(w->ops->name,
                "shutdown timeout: abandoning the batch in hand %lld ms after the stop was "
                "asked for (shutdown_timeout_ms %d; it will be consumed again)",
                (long long)(ds_clock_mono_ms() - w->stop_ms), w->cfg->shutdown_timeout_ms);
        return true;
    }
    return false;
}

/* ---- batches in flight --------------------------------------------------- */

/* The batch's writes are confirmed (and, as batches finish in order, those
 * of every batch before it).  The batch that wrote a window's last entity
 * stores the offsets of every batch up to the window's close: their
 * outputs are acknowledged and their state is in Redis. */
void ds_wk_batch_done(ds_worker_t *w, ds_batch_t *b) {
    /* a key Redis now holds: after a restart, its absence says the state
     * is gone (redis_emptied, worker_redis.c) */
    if (b->nwrites)
        ds_redis_note_written(w->wredis, b->writes.data, b->writes.len);
    if (b->store) {
        if (b->store->cnt)
            ds_kafka_store_offsets(w->consumer, b->store);
        ds_wk_count(w->m_consumed, b->store_msgs);
        rd_kafka_topic_partition_list_destroy(b->store);
        b->store = NULL;
        b->store_msgs = 0;
    }
    ds_wk_count(w->m_batches, 1);
    ds_wk_observe(w->m_batch_seconds, (double)(ds_clock_mono_us() - b->t0_us) / 1e6);
    b->state = DS_BATCH_DONE;
}

/* Release every batch without storing anything more and drop the state. */
void ds_wk_abandon_all(ds_worker_t *w, const char *why) {
    size_t lost = 0;
    ds_wk_settle_outputs(w);
    for (int i = 0; i < DS_NBATCH; i++) {
        if (w->ring.b[i].state != DS_BATCH_DONE)
            lost += w->ring.b[i].nmsgs;
        ds_batch_release(&w->ring.b[i]);
    }
    if (ds_redis_inflight(w->wredis))
        ds_redis_close(w->wredis); /* their replies are of no use any more */
    lost += ds_wb_drop(&w->wb);
    ds_wk_reset(w);
    if (lost && why)
        DS_WARN(w->ops->name, "%zu messages abandoned (%s): they will be consumed again", lost,
                why);
}

/* ---- outputs and the DLQ ----------------------------------------------------- */

static void emit(ds_worker_t *w, const char *topic, const char *key, const void *val, size_t vlen,
                 const char *id) {
    if (!ds_batch_add_output(w->cur, topic, key, val, vlen, id)) {
        DS_ERROR(w->ops->name, "out of memory queuing an output");
        abort(); /* losing an output silently is not an option */
    }
}

void ds_worker_output(ds_worker_t *w, size_t out, const char *key, const char *id,
                      const void *record) {
    ds_buf_reset(&w->enc);
    if (out >= w->nouts || w->encoders[out](w->codec, record, &w->enc)) {
        DS_ERROR(w->ops->name, "cannot encode output %zu (%s) %s", out,
                 out < w->nouts ? w->ops->outputs[out] : "none", id ? id : "");
        abort(); /* a bug: losing an output silently is not an option */
    }
    emit(w, w->out_topics[out], key, w->enc.data, w->enc.len, id);
}

static void emit_dlq(ds_worker_t *w, size_t index) {
    emit(w, w->dlq.topic, "", "", 0, NULL);
    ds_batch_output(w->cur, w->cur->nouts - 1)->dlq_index = (int)index;
    ds_dlq_count(&w->dlq, w->cur->errs[index]);
}

/* Once its unit is loaded: an event whose unit is bound by its checkpoint
 * to another partition is not applied (DLQ wrong_partition).  Its unit's
 * records reach two partitions (two producers with different
 * partitioners, or a topic whose partition count changed): two owners
 * could apply them at once, and one checkpoint cannot describe both. */
static bool check_partition(ds_worker_t *w, ds_batch_t *b, size_t i) {
    const rd_kafka_message_t *m = b->msgs[i];
    const ds_worker_entity_t *e = ((const ds_worker_slot_t *)b->slots[i])->entity;
    int32_t bound = e ? e->partition : -1;
    if (bound < 0 || bound == m->partition)
        return true;
    char detail[256];
    ds_dlq_wrong_partition(&w->dlq, m, bound, detail, sizeof(detail));
    b->errs[i] = DS_ERR_WRONG_PARTITION;
    b->details[i] = ds_arena_strndup(&b->arena, detail, strlen(detail));
    return false;
}

/* Apply one event of a loaded entity.  A replayed one (its entity's
 * checkpoint covers it: a crash or a rebalance came after its state was
 * written) is skipped; any other moves the checkpoint, makes the entity
 * dirty (before the adapter may make others dirty: the order they are
 * written in) and is counted by what the adapter says. */
static void apply_one(ds_worker_t *w, void *slot, const rd_kafka_message_t *m) {
    ds_worker_entity_t *e = ((ds_worker_slot_t *)slot)->entity;
    if (!e) {
        DS_ERROR(w->ops->name, "the unit %s was not loaded", ((ds_worker_slot_t *)slot)->unit);
        abort(); /* a bug: the adapter's load sets it */
    }
    bool replay = e->offset >= 0 && e->partition == m->partition && m->offset <= e->offset;
    if (!replay) {
        e->partition = m->partition;
        e->offset = m->offset;
        ds_worker_dirty(w, e);
    }
    ds_err_t err = w->ops->apply(w->self, w, slot, m->partition, replay);
    if (replay)
        ds_worker_count(w, DS_WORKER_SKIPPED);
    else if (err == DS_ERR_OK)
        ds_worker_count(w, DS_WORKER_APPLIED);
    else if (err == DS_ERR_DUPLICATE)
        ds_worker_count(w, DS_WORKER_DUPLICATE);
}

/* ---- the stages of a batch ------------------------------------------------ */

/* Poll and decode: collect up to batch.size messages into b, waiting up to
 * wait_ms for the first. */
static void poll_stage(ds_worker_t *w, ds_batch_t *b, int wait_ms) {
    int64_t t = ds_clock_mono_us();
    ds_wk_collect(w, b, wait_ms);
    if (!b->nmsgs)
        return;
    ds_wk_phase_add(w, PH_COLLECT, &t);
    ds_wk_count(w->m_polled, b->nmsgs);
    w->last_msg_ms = ds_clock_mono_ms();
    ds_alloc_busy(&w->alloc);
}

/* Apply b's events in order (those the DLQ takes are queued as its
 * records) and, on a clock tick, the adapter's wall-clock check. */
static bool apply_stage(ds_worker_t *w, ds_batch_t *b, bool tick) {
    int64_t t = ds_clock_mono_us();
    w->cur = b;
    for (size_t i = 0; i < b->nmsgs; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        if (b->errs[i] || !check_partition(w, b, i)) {
            emit_dlq(w, i);
            continue;
        }
        apply_one(w, b->slots[i], m);
        if ((i & 255) == 255)
            ds_redis_pump(w->wredis);
    }
    if (tick && w->ops->tick)
        w->ops->tick(w->self, w, ds_clock_now_ms());
    ds_wk_phase_add(w, PH_APPLY, &t);
    return true;
}

/* Hand b's outputs to the producer; their acks are waited for later. */
static bool produce_stage(ds_worker_t *w, ds_batch_t *b) {
    int64_t t = ds_clock_mono_us();
    ds_wk_produce(w, b);
    ds_wk_phase_add(w, PH_PRODUCE, &t);
    return true;
}

/* Persist: b's offsets go into the write-behind window, and b takes its
 * share of a closed window's writes (`all`: everything owed). */
static bool persist_stage(ds_worker_t *w, ds_batch_t *b, bool all) {
    int64_t t = ds_clock_mono_us();
    ds_wb_seen(&w->wb, b, ds_wk_input_lag_ms(w, b, ds_clock_now_ms()));
    ds_wb_step(&w->wb, b, w->wredis, ds_clock_mono_ms(), all);
    ds_wk_phase_add(w, PH_FORMAT, &t);
    b->state = DS_BATCH_ACKS;
    return true;
}

/* Move the pipeline on: confirm what Redis has answered so far, take the
 * acks that are in (of the batches before `keep`, the one just built) and
 * send those batches' writes.  Nothing is waited for unless `drain`: the
 * broker and Redis work while the next batches are built, until the worker
 * runs out of batches (make_room).  With `drain`, wait for every ack and
 * every reply, so that nothing is in flight afterwards (shutdown). */
static bool advance(ds_worker_t *w, ds_batch_t *keep, bool drain) {
    int64_t t = ds_clock_mono_us();
    if (!ds_wk_writes_stage(w, WAIT_NONE))
        return false;
    ds_wk_phase_add(w, PH_WRITES, &t);
    if (!ds_wk_wait_acks(w, keep, drain))
        return false;
    ds_wk_phase_add(w, PH_ACKS, &t);
    bool ok = ds_wk_writes_stage(w, drain ? WAIT_ALL : WAIT_NONE);
    ds_wk_phase_add(w, PH_WRITES, &t);
    return ok;
}

/* Every batch is in flight: wait for the oldest to finish. */
static bool make_room(ds_worker_t *w) {
    int64_t t = ds_clock_mono_us();
    if (!ds_wk_wait_acks(w, NULL, true))
        return false;
    ds_wk_phase_add(w, PH_ACKS, &t);
    bool ok = ds_wk_writes_stage(w, WAIT_OLDEST);
    ds_wk_phase_add(w, PH_WRITES, &t);
    return ok;
}

/* How long the next poll may wait for a first message: until the next
 * clock tick, the write-behind's next step, at most 100 ms. */
static int poll_wait_ms(ds_worker_t *w) {
    int64_t now = ds_clock_mono_ms();
    int wait = 100;
    if (w->ops->tick) {
        int64_t left = w->last_tick + w->cfg->check_interval_ms - now;
        wait = left < 0 ? 0 : left < 100 ? (int)left : 100;
    }
    return ds_wb_wait_ms(&w->wb, now, w->last_msg_ms, wait);
}

/* Whether the adapter's wall-clock check is due (every check_interval_ms,
 * while partitions are assigned). */
static bool tick_due(ds_worker_t *w) {
    if (!w->ops->tick || ds_clock_mono_ms() - w->last_tick < w->cfg->check_interval_ms)
        return false;
    w->last_tick = ds_clock_mono_ms();
    return w->health.assigned > 0;
}

/* No message, no tick, no write due: b goes back.  What is in flight moves
 * on as acks and replies come in, without blocking, so that a message that
 * arrives meanwhile is taken at once (the poll waits a little for one while
 * anything is in flight); idle after a burst, free memory goes back. */
static void idle(ds_worker_t *w, ds_batch_t *b, bool inflight) {
    ds_batch_release(b);
    if (inflight && !advance(w, NULL, false))
        ds_wk_abandon_all(w, w->abandon ? "rebalance" : "shutdown");
    else if (!inflight && !ds_wb_owes(&w->wb))
        ds_alloc_idle(&w->alloc, ds_clock_mono_ms() - w->last_msg_ms);
}

/* ---- the dirty queue and the adapter's lifecycle --------------------------- */

void ds_worker_dirty(ds_worker_t *w, ds_worker_entity_t *e) {
    if (e->dirty)
        return;
    if (!ds_dirtyq_push(&w->dirty, e))
        ds_worker_oom(w->ops->name); /* an entity that is never written would be lost */
    e->dirty = true;
}

void ds_worker_dirty_other(ds_worker_t *w, size_t n) {
    w->dirty_other += n;
}

void ds_wk_lifecycle(ds_worker_t *w, ds_worker_event_t what, const ds_partitions_t *parts) {
    ds_worker_change_t c = {what, parts};
    w->ops->lifecycle(w->self, &c);
}

void ds_wk_reset(ds_worker_t *w) {
    ds_dirtyq_clear(&w->dirty);
    w->dirty_other = 0;
    ds_wk_lifecycle(w, DS_WORKER_RESET, NULL);
}

size_t ds_wk_dirty_count(ds_worker_t *w) {
    return ds_dirtyq_count(&w->dirty) + w->dirty_other;
}

/* The write-behind's hooks (writebehind.h).  A window that closes owes
 * the entities dirty then, and the adapter snapshots what its last share
 * writes besides them. */
static size_t wb_close(void *self) {
    ds_worker_t *w = self;
    ds_wk_lifecycle(w, DS_WORKER_CLOSE, NULL);
    w->dirty_other = 0;
    return ds_dirtyq_count(&w->dirty);
}

static void wb_write(void *self, ds_redis_t *r, size_t n, bool last) {
    ds_worker_t *w = self;
    w->ops->persist(w->self, r, ds_dirtyq_oldest(&w->dirty), n, last);
    for (size_t i = 0; i < n; i++)
        ds_dirtyq_at(&w->dirty, i)->dirty = false; /* an entity changed later is dirty again */
    ds_dirtyq_drop(&w->dirty, n);
}

static size_t wb_dirty_count(void *self) {
    return ds_wk_dirty_count(self);
}

static const ds_wb_hooks_t wb_hooks = {wb_close, wb_write, wb_dirty_count};

/* ---- start and stop -------------------------------------------------------- */

ds_codec_t *ds_worker_codec(ds_worker_t *w) {
    return w->codec;
}

void ds_worker_set_rules(ds_worker_t *w, const ds_rules_t *rules) {
    __atomic_store_n(&w->next_rules, rules, __ATOMIC_RELEASE);
}

/* The registry the configuration asks for and a codec on it: with a Schema
 * Registry, the output ids are resolved at start (-1 until then); else the
 * configured ids, checked against the embedded directory now. */
static bool open_codec(ds_worker_t *w, char *errstr, size_t errstr_size) {
    const ds_config_t *cfg = w->cfg;
    w->registry = ds_registry_open(cfg, errstr, errstr_size);
    if (!w->registry)
        return false;
    ds_codec_ids_t ids = ds_codec_default_ids;
    ids.lead_score = cfg->schema_id_lead_score;
    ids.account_score = cfg->schema_id_account_score;
    ids.deal_alert = cfg->schema_id_deal_alert;
    if (ds_registry_is_remote(cfg))
        ids = (ds_codec_ids_t){-1, -1, -1, -1, -1};
    w->codec = ds_codec_new(w->registry, &ids, errstr, errstr_size);
    for (size_t i = 0; i < DS_WORKER_MAX_OUTPUTS && w->ops->outputs[i]; i++) {
        ds_output_schema_init(&w->outs[i], cfg, w->ops->outputs[i]);
        w->out_topics[i] = w->outs[i].topic;
        if (!(w->encoders[i] = ds_codec_encoder(w->ops->outputs[i]))) {
            snprintf(errstr, errstr_size, "no encoder for output record %s", w->ops->outputs[i]);
            return false;
        }
        w->nouts = i + 1;
    }
    return w->codec != NULL;
}

/* The output schemas' registration (ds_output_schemas_start) until it
 * succeeds: a registry that does not answer yet
 * (DS_ERR_IO) is waited for with a backoff (DS_BACKOFF_SLOW_MIN_MS
 * doubling up to DS_BACKOFF_MAX_MS), the worker not ready meanwhile; any
 * other error stops it.  False when the worker must not go on (*rc says
 * how it ends: 0 after a stop signal, 1 after an error). */
static bool start_outputs(ds_worker_t *w, int *rc) {
    char err[1024];
    ds_backoff_t backoff = ds_backoff_make(DS_BACKOFF_SLOW_MIN_MS, DS_BACKOFF_MAX_MS);
    for (int attempt = 1; !ds_worker_stop; attempt++) {
        err[0] = '\0';
        ds_err_t e = ds_output_schemas_start(w->cfg, w->registry, w->codec, w->outs, w->nouts,
                                             w->ops->name, err, sizeof(err));
        if (!e) {
            if (attempt > 1)
                DS_INFO(w->ops->name, "started after %d attempts", attempt);
            w->health.started = 1;
            return true;
        }
        ds_health_set_start_why(&w->health, err);
        if (e != DS_ERR_IO) {
            DS_ERROR(w->ops->name, "cannot start: %s", err);
            *rc = 1;
            return false;
        }
        int64_t ms = ds_backoff_next(&backoff);
        DS_WARN(w->ops->name, "not started yet (attempt %d, again in %lld ms): %s", attempt,
                (long long)ms, err);
        for (int64_t until = ds_clock_mono_ms() + ms;
             !ds_worker_stop && ds_clock_mono_ms() < until;)
            ds_clock_sleep_ms(50);
    }
    *rc = 0;
    return false;
}

/* The adapter started, the worker subscribes and connects.  False when
 * it must not go on (*rc: how it ends). */
static bool start(ds_worker_t *w, int *rc) {
    if (!start_outputs(w, rc))
        return false;
    char serr[512];
    const char *topics[] = {w->topic};
    if (!ds_kafka_consumer_subscribe(w->consumer, topics, 1, serr, sizeof(serr))) {
        DS_ERROR(w->ops->name, "%s", serr);
        *rc = 1;
        return false;
    }
    DS_INFO(w->ops->name, "consuming topic=%s group=%s", w->topic, w->cfg->group_id);
    /* look the output topics up now (2 s at most, all of them): otherwise
     * the first batch's outputs wait (~0.7 s) for the producer's metadata */
    if (w->nouts && !ds_kafka_warm_topics(w->producer, w->out_topics, w->nouts, 2000))
        DS_WARN(w->ops->name, "output topics not known to the broker yet; "
                              "the first outputs wait for their metadata");
    ds_wb_start(&w->wb, ds_clock_mono_ms()); /* the first interval starts now */
    ds_health_brokers_start(&w->health, ds_clock_mono_ms());
    if (ds_wk_redis_connect(w, w->redis) == DS_ERR_OK)
        w->health.redis_ok = 1;
    else
        (void)ds_wk_redis_failed(w, w->redis, 100); /* logs it; stops on a fatal reply */
    return true;
}

/* Shutdown: finish the batches in flight, write the state of the last
 * ones and store their offsets, commit and leave the group. */
static int finish(ds_worker_t *w, int rc) {
    (void)ds_wk_past_shutdown_timeout(w); /* its timeout starts now */
    DS_INFO(w->ops->name, "shutting down: finishing the batches in flight, committing and "
                          "leaving the group");
    w->abandon = false;
    if (ds_batch_ring_inflight(&w->ring) && !advance(w, NULL, true))
        ds_wk_abandon_all(w, "shutdown timeout");
    if (ds_wb_owes(&w->wb) && !w->fatal) { /* the state of the last batches, then their offsets */
        ds_batch_t *b = ds_batch_ring_take(&w->ring);
        if (!ds_wk_load_stage(w, b) || !apply_stage(w, b, false) || !produce_stage(w, b) ||
            !persist_stage(w, b, true) || !advance(w, NULL, true))
            ds_wk_abandon_all(w, "shutdown timeout");
    }
    rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        DS_WARN(w->ops->name, "final commit: %s", rd_kafka_err2str(err));
    else if (!w->fatal && !ds_batch_ring_inflight(&w->ring))
        ds_kafka_hooks_all_committed(&w->hooks); /* nothing more is stored after this */
    if (w->before_leave)
        w->before_leave(w->leave_arg);
    ds_wk_drop_held(w);
    w->closing = true;
    err = rd_kafka_consumer_close(w->consumer);
    if (err) {
        DS_WARN(w->ops->name, "consumer close: %s", rd_kafka_err2str(err));
        rc = 1;
    }
    rd_kafka_flush(w->producer, w->cfg->shutdown_timeout_ms);
    return w->fatal ? 1 : rc;
}

/* ---- the pipeline ----------------------------------------------------------- */

/* One batch a turn, its stages in order: poll → decode → load → apply →
 * produce → persist → advance (acks, writes, store offsets).  A batch that
 * cannot finish (rebalance, shutdown past its timeout) is abandoned with
 * every batch in flight: it will be consumed again. */
int ds_worker_run(ds_worker_t *w) {
    int rc = 0;
    if (!start(w, &rc))
        return rc;
    while (!ds_worker_stop) {
        w->abandon = false;
        ds_wk_probe_redis(w);                           /* every DS_HEALTH_PROBE_MS, busy or idle */
        ds_alloc_sample(&w->alloc, ds_clock_mono_ms()); /* the heap gauges, once a second */
        if (w->refetch)
            ds_wk_refetch(w); /* between batches: a seek, nothing in hand */
        ds_batch_t *b = ds_batch_ring_take(&w->ring);
        if (!b) { /* every batch in flight: the oldest finishes first */
            if (!make_room(w))
                ds_wk_abandon_all(w, w->abandon ? "rebalance" : "shutdown");
            continue;
        }
        bool inflight = ds_batch_ring_inflight(&w->ring);
        poll_stage(w, b, inflight ? INFLIGHT_POLL_MS : poll_wait_ms(w)); /* poll, decode */
        if (w->abandon) {
            ds_wk_abandon_all(w, "rebalance");
            continue;
        }
        /* no message: a clock tick, or the state owed goes out on schedule
         * (a share of a closed window, a window's close, or all of it once
         * idle; writebehind.h) */
        bool tick = tick_due(w), all = false;
        if (!b->nmsgs && !tick &&
            (inflight || !ds_wb_due(&w->wb, ds_clock_mono_ms(), w->last_msg_ms, &all))) {
            idle(w, b, inflight);
            continue;
        }
        if (!ds_wk_load_stage(w, b) || !apply_stage(w, b, tick) || !produce_stage(w, b) ||
            !persist_stage(w, b, all) || !advance(w, b, false))
            ds_wk_abandon_all(w, w->abandon ? "rebalance" : "shutdown");
    }
    return finish(w, rc);
}

void ds_worker_oom(const char *who) {
    DS_ERROR(who, "out of memory");
    abort();
}

void *ds_worker_room(const char *who, void *arr, size_t n, size_t *cap, size_t size, size_t first) {
    if (n < *cap)
        return arr;
    void *na = ds_grow(arr, cap, size, first);
    if (!na)
        ds_worker_oom(who);
    return na;
}

/* Zeroed memory; NULL with errstr "out of memory". */
static void *zalloc(size_t size, char *errstr, size_t errstr_size) {
    void *p = calloc(1, size);
    if (!p)
        snprintf(errstr, errstr_size, "out of memory");
    return p;
}

ds_worker_t *ds_worker_new(const ds_config_t *cfg, const char *topic, const ds_worker_ops_t *ops,
                           const ds_rules_t *rules, ds_metrics_t *metrics, int thread,
                           char *errstr, size_t errstr_size) {
    ds_alloc_tune();
    ds_worker_t *w = zalloc(sizeof(*w), errstr, errstr_size);
    if (!w)
        return NULL;
    w->cfg = cfg;
    w->ops = ops;
    w->metrics = metrics;
    ds_health_init(&w->health, ops->name, cfg->broker_timeout_ms);
    ds_strlcpy(w->topic, topic, sizeof(w->topic));
    if (thread > 0) /* one of several of its kind in the process */
        snprintf(w->labels, sizeof(w->labels), "worker=\"%s\",thread=\"%d\"", ops->name, thread);
    else
        snprintf(w->labels, sizeof(w->labels), "worker=\"%s\"", ops->name);
    ds_dlq_init(&w->dlq, ops->name, w->labels, w->topic, metrics);
    w->cap = (size_t)cfg->batch_size;
    if (!ds_wb_init(&w->wb, &wb_hooks, w, cfg->redis_flush_ms, cfg->redis_flush_max_ms,
                    (size_t)cfg->redis_flush_entities) ||
        !ds_batch_ring_init(&w->ring, w->cap, ops->event_size)) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    w->cur = &w->ring.b[0];
    if (!open_codec(w, errstr, errstr_size))
        goto fail;
    if (!ds_wk_redis_open(w, errstr, errstr_size) || !ds_wk_kafka_open(w, errstr, errstr_size))
        goto fail;
    w->m_polled = counter(w, "polled_records",
                          "Input records taken from the consumer into a batch (counted again "
                          "when consumed again after a rebalance or a retry)");
    w->m_consumed = counter(w, "consumed_records",
                            "Input records consumed and fully processed (state written, outputs "
                            "acknowledged, offsets stored)");
    w->m_batches = counter(w, "batches", "Batches completed");
    w->m_events[DS_WORKER_APPLIED] =
        counter(w, "applied_events", "Input events applied to the state");
    w->m_events[DS_WORKER_DUPLICATE] =
        counter(w, "duplicate_events", "Duplicate event ids applied once");
    w->m_events[DS_WORKER_SKIPPED] = counter(
        w, "replayed_events_skipped", "Redelivered events already covered by the stored state");
    w->m_outputs = counter(w, "produced_records", "Output records acknowledged by the broker");
    w->m_redis_errors = counter(w, "redis_errors", "Failed Redis pipeline runs");
    w->wb.window_gauge = ds_worker_gauge(
        w, "write_window_seconds",
        "Write-behind interval in force: redis.flush_ms, longer while behind the input "
        "(half the lag, up to redis.flush_max_ms)");
    ds_gauge_set(w->wb.window_gauge, (double)cfg->redis_flush_ms / 1000.0);
    ds_alloc_metrics(&w->alloc, metrics);
    w->m_produce_errors =
        counter(w, "produce_errors", "Batches whose outputs had to be produced again");
    w->m_refetches = counter(w, "partition_refetches",
                             "Assigned partitions found with records waiting and none consumed "
                             "for 30 s while not paused, then fetched again from their position");
    ds_fetchwatch_init(&w->fetchwatch, DS_FETCHWATCH_STALL_MS);
    w->m_redis_lost = counter(w, "redis_state_lost",
                              "Times Redis came back without the state this worker wrote (its "
                              "run_id changed and a key it wrote is gone): what it holds in "
                              "memory is written again");
    for (int i = 0; metrics && i < PH__COUNT; i++) {
        char labels[128];
        snprintf(labels, sizeof(labels), "%s,phase=\"%s\"", w->labels, phase_names[i]);
        w->m_phase[i] = ds_metrics_histogram(
            metrics, "phase_seconds",
            "Time the worker thread spent in one step of a batch (poll and decode, Redis loads, "
            "apply, produce, formatting the Redis writes, blocked on acks, blocked on Redis "
            "writes)",
            labels, ds_latency_bounds, DS_LATENCY_BOUNDS_N);
    }
    if (metrics) {
        static const double b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
        w->m_batch_seconds = ds_metrics_histogram(metrics, "batch_seconds",
                                                  "Time from a batch's first message to its "
                                                  "offsets being stored",
                                                  w->labels, b, sizeof(b) / sizeof(b[0]));
        w->m_redis_seconds = ds_metrics_histogram(metrics, "redis_seconds",
                                                  "Time blocked on one Redis round (loads, or "
                                                  "the replies of batch writes)",
                                                  w->labels, b, sizeof(b) / sizeof(b[0]));
    }
    ds_worker_adapter_t *a = zalloc(ops->size, errstr, errstr_size);
    if (!a)
        goto fail;
    *a = (ds_worker_adapter_t){cfg, rules, w, w->codec};
    w->self = a;
    if (!ops->open(a, errstr, errstr_size))
        goto fail;
    return w;
fail:
    ds_worker_destroy(w);
    return NULL;
}

void ds_worker_before_leave(ds_worker_t *w, void (*fn)(void *arg), void *arg) {
    w->before_leave = fn;
    w->leave_arg = arg;
}

void ds_worker_destroy(ds_worker_t *w) {
    if (!w)
        return;
    ds_batch_ring_free(&w->ring);
    ds_wk_drop_held(w);
    free(w->held);
    ds_wb_free(&w->wb);
    ds_fetchwatch_free(&w->fetchwatch);
    if (w->refetch)
        rd_kafka_topic_partition_list_destroy(w->refetch);
    ds_dirtyq_free(&w->dirty);
    w->closing = true;
    if (w->consumer)
        rd_kafka_destroy(w->consumer);
    for (size_t i = 0; i < DS_WORKER_MAX_OUTPUTS; i++)
        if (w->out_rkt[i])
            rd_kafka_topic_destroy(w->out_rkt[i]);
    if (w->producer)
        rd_kafka_destroy(w->producer);
    ds_redis_destroy(w->redis);
    ds_redis_destroy(w->wredis);
    ds_redis_known_destroy(w->known);
    ds_codec_destroy(w->codec);
    ds_buf_free(&w->enc);
    ds_registry_destroy(w->registry);
    ds_health_destroy(&w->health);
    /* last: closing the consumer may still hand a revocation to the
     * adapter (DS_WORKER_RESET) */
    if (w->self)
        w->ops->close(w->self);
    free(w->self);
    free(w);
}

void ds_worker_count(ds_worker_t *w, ds_worker_counter_t c) {
    ds_wk_count(w->m_events[c], 1);
}

bool ds_worker_ready(const ds_worker_t *w, char *why, size_t why_size) {
    return ds_health_ready((ds_health_t *)&w->health, why, why_size);
}

bool ds_worker_assigned(const ds_worker_t *w) {
    return w->health.assigned;
}

ds_metrics_t *ds_worker_metrics(ds_worker_t *w) {
    return w->metrics;
}

const char *ds_worker_labels(const ds_worker_t *w) {
    return w->labels;
}
