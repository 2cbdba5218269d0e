/*
 * worker_redis.c — the worker's two Redis connections (worker_int.h).
 *
 * `redis` answers at once: the loads a batch needs before it is applied
 * (ds_wk_load_stage: rounds of ops->load until it asks for nothing, the
 * replies handed to ops->loaded),
 * the adapters' own reads (ds_worker_redis) and the readiness probe.
 * `wredis` carries the write-behind's writes: each batch's are sent in
 * batch order once its outputs are acknowledged, and its replies read
 * later (ds_wk_writes_stage); a batch whose replies are all in is done,
 * in batch order, and stores the offsets it carries.  The writes are kept
 * as bytes until confirmed: on a lost connection everything sent but not
 * confirmed goes out again (every write sets absolute values).
 *
 * A failed round pauses the partitions and retries with a backoff that
 * ends as soon as the probe finds Redis answering again; an error that
 * retrying cannot fix stops every worker (ds_worker_stop).  After every
 * call that may have made a new connection, a Redis (or cluster node)
 * whose run_id changed and that lost a key this worker wrote came back
 * empty: every entity held in memory is written again.  Writes that no
 * WAIT confirmed on a node that went away are rewound for instead
 * (ds_wk_rewind_to_committed), unless that node is the one that came back
 * empty.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_clock.h"
#include "worker_int.h"

/* ---- loads ------------------------------------------------------------------ */

typedef struct load_ctx {
    ds_worker_t *w;
    ds_err_t err;
} load_ctx_t;

static void on_load_reply(void *opaque, size_t index, const ds_reply_t *reply) {
    load_ctx_t *pc = opaque;
    ds_err_t e = pc->w->ops->loaded(pc->w->self, index, reply);
    if (e && !pc->err)
        pc->err = e;
}

/* A Redis round failed.  Returns false when retrying cannot help: the
 * worker then stops (every worker of the process: ds_worker_stop). */
bool ds_wk_redis_failed(ds_worker_t *w, ds_redis_t *r, int64_t backoff) {
    ds_wk_count(w->m_redis_errors, 1);
    const char *why = ds_redis_errstr(r);
    ds_health_redis_down(&w->health, why);
    if (ds_redis_fatal(r)) {
        if (!w->fatal)
            DS_ERROR(w->ops->name, "redis: %s; retrying cannot fix this: stopping", why);
        w->fatal = true;
        ds_worker_stop = 1;
        return false;
    }
    ds_log_rl(&w->rl_redis, 5000, DS_LOG_WARN, w->ops->name,
              "redis unavailable (%s); not ready, partitions paused, retrying in at most %lld "
              "ms",
              why[0] ? why : "no reason given", (long long)backoff);
    return true;
}

/* Redis answered (a reply, not merely a send): ready as far as it goes. */
static void redis_fine(ds_worker_t *w) {
    ds_health_redis_up(&w->health);
}

/* Redis, or a node of the cluster, came back without the state this
 * worker wrote (its run_id changed and a key its confirmed writes set is
 * gone: ds_redis_take_emptied): every entity still held in memory (of
 * this worker's partitions) is written again; what it no longer holds is
 * lost until replayed.  This takes the place of the rewind that writes no
 * WAIT confirmed on that node would ask for (ds_redis_take_lost leaves
 * those out): reloading from a node that lost everything would build its
 * units from nothing, while memory holds them as of the newest event.
 * Checked after every call that may have made a new connection. */
static void redis_emptied(ds_worker_t *w) {
    char why[700];
    if (!ds_redis_take_emptied(w->wredis, why, sizeof(why)))
        return;
    int32_t *ids;
    ds_partitions_t set;
    bool owned = ds_wk_assignment(w, &set, &ids);
    size_t before = ds_wk_dirty_count(w);
    ds_wk_lifecycle(w, DS_WORKER_REWRITE, owned ? &set : NULL);
    free(ids);
    ds_wk_count(w->m_redis_lost, 1);
    DS_ERROR(w->ops->name,
             "redis came back without the state this worker wrote (%s): writing back the %zu "
             "entities it holds in memory; state it does not hold is lost until replayed "
             "(docs/OPERATIONS.md)",
             why, ds_wk_dirty_count(w) - before);
}

/* ds_redis_connect(), and what a new connection found out. */
ds_err_t ds_wk_redis_connect(ds_worker_t *w, ds_redis_t *r) {
    ds_err_t e = ds_redis_connect(r);
    redis_emptied(w);
    return e;
}

/* The probe (health.c), every DS_HEALTH_PROBE_MS on the load connection:
 * without waiting; UP when an answer came now, DOWN on a failure.  (In a
 * cluster the PING goes to every master, connecting again those whose
 * connection was lost: a node that came back empty shows here.) */
ds_probe_t ds_wk_probe_redis(ds_worker_t *w) {
    ds_probe_t p = ds_health_probe_poll(&w->health, w->redis, ds_clock_mono_ms());
    if (p == DS_PROBE_DUE) {
        ds_err_t e = ds_wk_redis_connect(w, w->redis);
        if (!e)
            e = ds_health_probe_send(&w->health, w->redis);
        redis_emptied(w);
        p = e ? DS_PROBE_DOWN : DS_PROBE_WAIT;
    }
    if (p == DS_PROBE_DOWN)
        (void)ds_wk_redis_failed(w, w->redis, DS_HEALTH_PROBE_MS);
    else if (p == DS_PROBE_UP)
        redis_fine(w);
    return p;
}

/* The load connection is about to be used synchronously: read the probe's
 * reply first (it is in by now unless Redis stopped answering; then the
 * connection is dropped and the caller's connect fails or reconnects).
 * A failure is reported as the probe's own would be: in a cluster the
 * caller's connect and reads may well succeed on the other masters, and a
 * worker that checks its clock often (the watcher) reads the probe's
 * reply here rather than in ds_wk_probe_redis. */
static void probe_settle(ds_worker_t *w) {
    ds_probe_t p = ds_health_probe_settle(&w->health, w->redis);
    if (p == DS_PROBE_UP) {
        redis_fine(w);
    } else if (p == DS_PROBE_DOWN) {
        (void)ds_wk_redis_failed(w, w->redis, DS_HEALTH_PROBE_MS);
        ds_redis_close(w->redis);
    }
}

/* Load what batch b needs (rounds until the worker asks for nothing). */
bool ds_wk_load_stage(ds_worker_t *w, ds_batch_t *b) {
    int64_t t = ds_clock_mono_us();
    if (!b->t0_us)
        b->t0_us = t;
    const ds_rules_t *nr = __atomic_exchange_n(&w->next_rules, NULL, __ATOMIC_ACQ_REL);
    if (nr) { /* a batch boundary: the SIGHUP reload takes effect */
        ((ds_worker_adapter_t *)w->self)->rules = nr;
        ds_wk_lifecycle(w, DS_WORKER_RULES, NULL);
    }
    ds_backoff_t backoff = ds_backoff_make(DS_BACKOFF_RETRY_MIN_MS, DS_BACKOFF_MAX_MS);
    for (;;) {
        probe_settle(w);
        ds_err_t e = ds_wk_redis_connect(w, w->redis);
        bool answered = false, refused = false;
        if (!e) {
            int64_t t0 = ds_clock_mono_us();
            for (int round = 0; !e; round++) {
                size_t n = w->ops->load(w->self, w->redis, b->slots, b->parts, b->nmsgs, round);
                if (!n)
                    break;
                load_ctx_t pc = {w, DS_ERR_OK};
                e = ds_redis_run(w->redis, on_load_reply, &pc);
                answered |= !e;
                if (!e && pc.err) {
                    e = pc.err;
                    refused = true;
                }
                ds_wk_observe(w->m_redis_seconds, (double)(ds_clock_mono_us() - t0) / 1e6);
            }
        }
        if (!e) {
            if (answered) /* else nothing was asked: no news of Redis */
                redis_fine(w);
            ds_wk_phase_add(w, PH_LOAD, &t);
            return true;
        }
        /* connected still: Redis answered, with an error, or with stored
         * state the adapter cannot read (it said which, and never
         * overwrites it): retried, since only a person can repair it */
        wait_for_t what = ds_redis_connected(w->redis) ? WAIT_REDIS_ERROR : WAIT_REDIS_DOWN;
        ds_redis_discard(w->redis);
        if (refused) {
            ds_health_state_unreadable(&w->health);
            ds_log_rl(&w->rl_redis, 5000, DS_LOG_WARN, w->ops->name,
                      "stored state in Redis cannot be read (see the error above); not ready, "
                      "partitions paused, retrying in at most %lld ms",
                      (long long)ds_backoff_peek(&backoff));
        } else if (!ds_wk_redis_failed(w, w->redis, ds_backoff_peek(&backoff))) {
            return false;
        }
        ds_wk_backoff_wait(w, ds_backoff_next(&backoff), what);
        if (ds_wk_must_abandon(w))
            return false;
    }
}

/* Send the writes of every DS_BATCH_READY batch (oldest first) and read the
 * replies of the DS_BATCH_SENT ones as `wait` says: a batch whose replies are all
 * in is done, in batch order.  On a lost connection everything sent but
 * not confirmed is sent again.  False when abandoned. */
bool ds_wk_writes_stage(ds_worker_t *w, wait_t wait) {
    ds_backoff_t backoff = ds_backoff_make(DS_BACKOFF_RETRY_MIN_MS, DS_BACKOFF_MAX_MS);
    for (;;) {
        ds_err_t e = ds_wk_redis_connect(w, w->wredis);
        bool answered = false;
        ds_batch_t *bs[DS_NBATCH];
        size_t n = e ? 0 : ds_batch_ring_in(&w->ring, DS_BATCH_READY, bs);
        for (size_t i = 0; !e && i < n; i++) {
            e = ds_redis_send(w->wredis, bs[i]->writes.data, bs[i]->writes.len, bs[i]->nwrites);
            if (!e) {
                bs[i]->state = DS_BATCH_SENT;
                bs[i]->collected = 0;
            }
        }
        if (!e) {
            int64_t t0 = ds_clock_mono_us();
            n = ds_batch_ring_in(&w->ring, DS_BATCH_SENT, bs);
            for (size_t i = 0; !e && i < n; i++) {
                ds_batch_t *b = bs[i];
                size_t want = b->nwrites - b->collected, got = 0;
                if (wait == WAIT_ALL || (wait == WAIT_OLDEST && i == 0)) {
                    e = ds_redis_collect(w->wredis, want);
                    got = e ? 0 : want;
                } else {
                    e = ds_redis_collect_avail(w->wredis, want, &got);
                }
                if (e)
                    break;
                answered |= got > 0;
                /* a new connection (in a cluster, to a node connected
                 * again) may have found Redis back empty: what memory
                 * holds is written again, and the writes lost with it
                 * are not rewound for (ds_redis_take_lost leaves them
                 * out) */
                redis_emptied(w);
                if (ds_redis_take_lost(w->wredis)) {
                    /* a node went away with writes no WAIT confirmed, yet
                     * the round succeeded (elsewhere, or on a new
                     * connection): store nothing more */
                    ds_wk_rewind_to_committed(w);
                    return false;
                }
                b->collected += got;
                if (b->collected < b->nwrites)
                    break; /* later batches' replies come after this one's */
                ds_wk_batch_done(w, b);
                ds_batch_release(b);
            }
            if (wait != WAIT_NONE)
                ds_wk_observe(w->m_redis_seconds, (double)(ds_clock_mono_us() - t0) / 1e6);
        }
        if (!e) {
            if (answered) /* a send alone says nothing of Redis */
                redis_fine(w);
            return true;
        }
        wait_for_t what = ds_redis_connected(w->wredis) ? WAIT_REDIS_ERROR : WAIT_REDIS_DOWN;
        /* the connection is gone (or answered an error: closed too), and
         * with it every reply in flight: all of it goes out again */
        ds_redis_close(w->wredis);
        n = ds_batch_ring_in(&w->ring, DS_BATCH_SENT, bs);
        for (size_t i = 0; i < n; i++)
            bs[i]->state = DS_BATCH_READY;
        if (!ds_wk_redis_failed(w, w->wredis, ds_backoff_peek(&backoff)))
            return false;
        /* writes lost with the connection (ds_redis_take_lost) are looked
         * at once Redis answers again, after the round sent again: then
         * it is known whether it came back empty (everything held written
         * again) or not (rewind) */
        ds_wk_backoff_wait(w, ds_backoff_next(&backoff), what);
        if (ds_wk_must_abandon(w))
            return false;
    }
}

/* ---- set-up, and the adapters' own reads -------------------------------------- */

ds_redis_t *ds_worker_redis(ds_worker_t *w) {
    probe_settle(w); /* the caller runs commands on it at once */
    if (!ds_redis_connected(w->redis))
        (void)ds_wk_redis_connect(w,
                                  w->redis); /* with the identity check; else the caller's fails */
    return w->redis;
}

bool ds_worker_redis_is_cluster(const ds_worker_t *w) {
    return !strcmp(w->cfg->redis_cluster, "on") || ds_redis_is_cluster(w->redis);
}

bool ds_wk_redis_open(ds_worker_t *w, char *errstr, size_t errstr_size) {
    const ds_config_t *cfg = w->cfg;
    w->redis = ds_redis_new(cfg->redis_url, cfg->redis_timeout_ms, errstr, errstr_size);
    if (!w->redis)
        return false;
    w->wredis = ds_redis_new(cfg->redis_url, cfg->redis_timeout_ms, errstr, errstr_size);
    if (!w->wredis)
        return false;
    ds_redis_opts_t ro = {
        .cluster = !strcmp(cfg->redis_cluster, "on")    ? DS_REDIS_CLUSTER_ON
                   : !strcmp(cfg->redis_cluster, "off") ? DS_REDIS_CLUSTER_OFF
                                                        : DS_REDIS_CLUSTER_AUTO,
        .seeds = cfg->redis_seeds,
        .metrics = w->metrics,
        .metrics_labels = w->labels,
        .known = w->known = ds_redis_known_new(),
    };
    if (!w->known) {
        snprintf(errstr, errstr_size, "out of memory");
        return false;
    }
    ds_redis_set_opts(w->redis, &ro); /* loads: no WAIT */
    ro.wait_replicas = cfg->redis_wait_replicas;
    ro.wait_timeout_ms = cfg->redis_wait_timeout_ms;
    if (!strcmp(cfg->redis_writes, "script")) { /* only writes run it */
        ro.script = w->ops->redis_script;
        ro.script_sha = w->ops->redis_script_sha;
    }
    ds_redis_set_opts(w->wredis, &ro);
    return true;
}
