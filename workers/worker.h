/*
 * worker.h — the pipeline every dealsignal worker runs, one thread each:
 *
 *   poll batch → decode (bad input → DLQ) → load missing state from Redis
 *   → apply in partition order → produce outputs, wait for acks
 *   → write state + checkpoints to Redis (write-behind: every entity changed
 *     in a window of redis.flush_ms, longer while behind the input, spread
 *     over the batches that follow it) → store offsets (auto-committed)
 *
 * Outputs are acknowledged before the state that caused them is written,
 * and offsets are stored only after both: a crash at any point replays
 * from the last committed offset; units whose Redis checkpoint already
 * covers a message skip it (state effects exactly once) and outputs that
 * were already sent are sent again with the same ids (at least once).
 * Redis or broker failures pause the partitions and retry with backoff;
 * the batch in hand is never dropped, except on a rebalance (eager
 * protocol: everything is revoked), when it is abandoned and replayed by
 * whoever owns the partitions next.
 *
 * The business lives behind ds_worker_ops_t (workers/scorer/scorer.c and
 * workers/watcher/watcher.c); the engine is worker.c (lifecycle and the
 * stages), worker_kafka.c and worker_redis.c, sharing worker_int.h.
 */
#ifndef DS_WORKER_H
#define DS_WORKER_H

#include <signal.h>
#include <stdbool.h>

#include "codec.h"
#include "ds_buf.h"
#include "ds_config.h"
#include "ds_metrics.h"
#include "ds_partitions.h"
#include "ds_redis.h"
#include "rules.h"

typedef struct ds_worker ds_worker_t;

/* How many output records a worker may write (its topics' metadata is
 * fetched at start, their schemas registered). */
#define DS_WORKER_MAX_OUTPUTS 4

/* What the engine keeps of one unit of state (a scoring unit, a deal):
 * the first member of the adapter's entry for it, so that the engine can
 * check the partition it is bound to, skip replayed events, move its
 * checkpoint and queue it for writing without knowing the rest. */
typedef struct ds_worker_entity {
    int32_t partition; /* bound to by its checkpoint (-1: not yet) */
    bool dirty;        /* in the engine's dirty queue */
    int64_t offset;    /* checkpoint: the last offset applied (-1: none) */
} ds_worker_entity_t;

/* The first member of the adapter's slot type (one decoded event): decode
 * states the unit, load finds its entity. */
typedef struct ds_worker_slot {
    /* decode: the unit id, the Kafka key the event's record must carry
     * (scorer: account_id, or lead_id without account; watcher: deal_id),
     * and the field it comes from, for the DLQ detail.  A record whose
     * key differs goes to the DLQ (wrong_key) and is not applied. */
    const char *unit;
    const char *unit_field;
    /* load: the unit's entity, in memory until a reset */
    ds_worker_entity_t *entity;
} ds_worker_slot_t;

/* The first member of every adapter's state (the `self` of its
 * callbacks): what the engine gives it.  The engine allocates the state
 * (ops->size bytes, zeroed), fills this head, then calls ops->open; it
 * frees the state after ops->close. */
typedef struct ds_worker_adapter {
    const ds_config_t *cfg;
    /* the rules in force: new ones are set here at a batch boundary, then
     * the adapter is told (DS_WORKER_RULES) */
    const ds_rules_t *rules;
    ds_worker_t *worker;
    ds_codec_t *codec; /* the worker's (ds_worker_codec) */
} ds_worker_adapter_t;

/* What happened to the worker, for the adapter's lifecycle callback. */
typedef enum {
    /* new rules (in the head's `rules` now), at a batch boundary before
     * the first load round, so that the whole batch is applied under one
     * set */
    DS_WORKER_RULES,
    /* these partitions are assigned now (parts NULL: none is ours) */
    DS_WORKER_ASSIGNED,
    /* the in-memory state of every partition must be dropped (rebalance,
     * or a batch abandoned after its state ran ahead); the engine has
     * emptied its dirty queue */
    DS_WORKER_RESET,
    /* Redis lost the state this worker wrote (it came back empty): every
     * entity held in memory and bound to one of `parts` (the partitions
     * owned) must be made dirty (ds_worker_dirty) with its notes of what
     * was written cleared, so that the next windows write all of it */
    DS_WORKER_REWRITE,
    /* a write-behind window closes: snapshot what its last write adds to
     * its entities (the watcher's watermarks; persist with `last`) */
    DS_WORKER_CLOSE,
} ds_worker_event_t;

typedef struct ds_worker_change {
    ds_worker_event_t what;
    const ds_partitions_t *parts; /* DS_WORKER_ASSIGNED, DS_WORKER_REWRITE */
} ds_worker_change_t;

/* What differs between the workers; the engine owns the rest: the
 * consumer, producer and Redis connections, the schema registry and the
 * codec (ds_worker_codec) with the output schemas' registration at start,
 * the rules' reload at a batch boundary (ds_worker_set_rules), batches,
 * the DLQ (wrong_key from the slot's unit, wrong_partition from its
 * entity), the replay skip and the checkpoint of every entity, the
 * applied/duplicate/skipped counters, the dirty queue and the
 * write-behind windows, offsets and readiness.  Partitions are passed as
 * ds_partitions_t and Redis replies as ds_reply_t, never as the clients'
 * own types. */
typedef struct ds_worker_ops {
    const char *name;  /* "scorer", "watcher": logs and metrics */
    size_t size;       /* bytes of its state (it begins with ds_worker_adapter_t) */
    size_t event_size; /* bytes of one slot (it begins with ds_worker_slot_t) */
    /* The records it writes ("LeadScore", "AccountScore", "DealAlert"),
     * up to the first NULL: each one's topic and schema id come from the
     * configuration (ds_output_schema_init). */
    const char *outputs[DS_WORKER_MAX_OUTPUTS];
    /* How the input topic must be keyed, in words (for the warning). */
    const char *unit_key_doc;
    /* A Lua script its writes run (EVALSHA redis_script_sha), loaded on
     * every connection of the write client; NULL: none. */
    const char *redis_script, *redis_script_sha;
    /* Decode a message value into slot (strings in arena, valid for the
     * batch; the slot's head is zeroed), stating its unit in the head.
     * Returns OK or a DLQ code with detail. */
    ds_err_t (*decode)(void *self, const void *val, size_t len, ds_arena_t *arena, void *slot,
                       char *detail, size_t detail_size);
    /* Before a batch is applied: append Redis commands (ds_redis_cmd) that
     * load whatever the batch's events need and is not in memory, and set
     * each slot's entity; return how many were appended.  `slots` are the
     * decoded events (NULL where decoding failed), `partitions` their
     * partitions.  Called again after the replies were handed to loaded(),
     * in order, until it appends nothing (so a load may depend on what an
     * earlier round read); `round` counts from 0.  The first load of a
     * unit binds it to a partition (its entity's).  A slot whose entity is
     * bound to another partition than its record's needs nothing more (the
     * record goes to the DLQ unapplied): what the worker holds of such a
     * unit is not kept up to date by its owner, and what is read on top of
     * it may not fit it. */
    size_t (*load)(void *self, ds_redis_t *r, void **slots, const int32_t *partitions, size_t n,
                   int round);
    ds_err_t (*loaded)(void *self, size_t index, const ds_reply_t *reply);
    /* Apply one decoded event, its entity loaded and bound to `partition`;
     * outputs via ds_worker_output().  `replay`: the entity's checkpoint
     * already covers it (counted as skipped; the adapter changes no state
     * but may move its clocks).  Otherwise the engine has moved the
     * checkpoint and made the entity dirty, and counts the event by the
     * result: OK applied, DS_ERR_DUPLICATE duplicate, anything else
     * neither. */
    ds_err_t (*apply)(void *self, ds_worker_t *w, void *slot, int32_t partition, bool replay);
    /* Append the Redis commands of entities[0..n), each as it is now (an
     * entity changed again since its window closed is written with its
     * newest state); with `last` (the window's last share), also the
     * snapshot taken at DS_WORKER_CLOSE.  They are clean once this
     * returns. */
    void (*persist)(void *self, ds_redis_t *r, ds_worker_entity_t *const *entities, size_t n,
                    bool last);
    /* Wall-clock check every check_interval_ms (may emit); NULL when the
     * worker has none. */
    void (*tick)(void *self, ds_worker_t *w, int64_t now_ms);
    /* What happened (ds_worker_event_t). */
    void (*lifecycle)(void *self, const ds_worker_change_t *change);
    /* Make the rest of the adapter's state (its head is filled), once the
     * engine's codec, metrics and connections exist and before any record
     * is consumed.  False with errstr; close is called all the same. */
    bool (*open)(void *self, char *errstr, size_t errstr_size);
    /* Free what open made (not self), once the engine's clients are
     * closed (no callback follows); safe on a state open left half made. */
    void (*close)(void *self);
} ds_worker_ops_t;

/** The stop flag every worker loop checks (set by signal handlers). */
extern volatile sig_atomic_t ds_worker_stop;
/** Install SIGTERM/SIGINT handlers that set ds_worker_stop. */
void ds_worker_install_signals(void);

/** Log "<who>: out of memory" and abort: a worker does not run on without
 *  memory (what it could not hold would be lost). */
void ds_worker_oom(const char *who) __attribute__((noreturn));

/** arr, whose n elements of `size` bytes fill *cap, with room for one
 *  more: grown as ds_grow does when full (`first` elements at first); out
 *  of memory aborts (ds_worker_oom(who)). */
void *ds_worker_room(const char *who, void *arr, size_t n, size_t *cap, size_t size, size_t first);

/** Create a worker consuming `topic` and its adapter (ops->open).  `ops`,
 *  `rules` and `metrics` are borrowed (`metrics` may be NULL; new rules:
 *  ds_worker_set_rules).  `thread`: 0 for the only worker of its kind in
 *  the process, else its number among several (1…), which its metrics
 *  carry as thread="k".  NULL with errstr on failure. */
ds_worker_t *ds_worker_new(const ds_config_t *cfg, const char *topic, const ds_worker_ops_t *ops,
                           const ds_rules_t *rules, ds_metrics_t *metrics, int thread,
                           char *errstr, size_t errstr_size);
/** Run until ds_worker_stop; returns 0 on a clean shutdown. */
int ds_worker_run(ds_worker_t *w);
/** fn(arg) is called on the worker's thread at shutdown, once its last
 *  state is written and its offsets committed, just before it leaves the
 *  consumer group.  Workers of one process that share a group wait for
 *  each other there: the first to leave rebalances the group, and a
 *  worker still committing would see its commit refused. */
void ds_worker_before_leave(ds_worker_t *w, void (*fn)(void *arg), void *arg);
/** Close the worker's clients, then its adapter (ops->close); w may be NULL. */
void ds_worker_destroy(ds_worker_t *w);

/** The codec of the worker's thread: decodes its input, encodes its
 *  outputs with the ids registered at start (owned by the worker). */
ds_codec_t *ds_worker_codec(ds_worker_t *w);

/** New rules (borrowed; they must outlive the worker), taken at the next
 *  batch boundary (ops->rules).  Any thread. */
void ds_worker_set_rules(ds_worker_t *w, const ds_rules_t *rules);

/** Queue output record number `out` of ops->outputs for this batch, to
 *  its topic, encoded from `record` (its C type: ds_lead_score_t for
 *  "LeadScore", ds_account_score_t for "AccountScore", ds_deal_alert_t for
 *  "DealAlert") and keyed by `key`; `id` is its stable output id, sent in
 *  the `dealsignal.id` header.  A record that cannot be encoded is a bug:
 *  the process aborts rather than lose it. */
void ds_worker_output(ds_worker_t *w, size_t out, const char *key, const char *id,
                      const void *record);

/** Whether the worker is ready (partitions assigned, Redis answering within
 *  redis.timeout_ms, some broker answering within broker_timeout_ms, outputs
 *  acknowledged); why gets the reason when not.  Any thread. */
bool ds_worker_ready(const ds_worker_t *w, char *why, size_t why_size);
/** True while the worker has partitions assigned.  Any thread. */
bool ds_worker_assigned(const ds_worker_t *w);

/** The schema registry the configuration asks for: the embedded one
 *  (schemas.dir) or, with schema_registry.url, a Schema Registry client
 *  with the embedded directory as a fallback cache.  One per thread. */
ds_registry_t *ds_registry_open(const ds_config_t *cfg, char *errstr, size_t errstr_size);

/** One schema file compiled into the binary (schemas_builtin.c). */
typedef struct {
    const char *name; /* "<id>-<Name>.avsc" */
    const char *json;
} ds_schema_file_t;

/** Every schemas/ file of the source tree, ending with {NULL, NULL}: what
 *  the default schemas.dir ("schemas") means when the working directory
 *  has none, so the binary runs from anywhere. */
extern const ds_schema_file_t ds_builtin_schemas[];

/** The embedded registry of dir (NULL: "schemas"); the default "schemas",
 *  when the working directory has none, is the compiled-in copy. */
ds_registry_t *ds_registry_open_dir(const char *dir, char *errstr, size_t errstr_size);

/** An empty cache that fetches every id from the Schema Registry at `url`
 *  (borrowed: it must outlive the registry). */
ds_registry_t *ds_registry_open_url(const char *url, char *errstr, size_t errstr_size);

/** True when schema_registry.url is set. */
bool ds_registry_is_remote(const ds_config_t *cfg);

/** The text of `<dir>/<n>-<record>.avsc` (the highest n when there are
 *  several), malloc'ed; NULL with errstr. */
char *ds_schema_file_text(const char *dir, const char *record, char *errstr, size_t errstr_size);

/** The subject of a value schema: strategy "topic" (or NULL): "<topic>-value";
 *  "record": the record's full name (namespace.name) from schema_json. */
ds_err_t ds_schema_subject(const char *strategy, const char *topic, const char *schema_json,
                           char *out, size_t out_size, char *errstr, size_t errstr_size) DS_WUR;

/** One output record type of a worker and the id its records carry. */
typedef struct ds_output_schema {
    const char *record;     /* "LeadScore" */
    const char *topic;      /* where it is written (TopicNameStrategy subject) */
    const char *id_setting; /* "schema_ids.lead_score" */
    int32_t configured_id;  /* that setting's value */
    int32_t id;             /* out: the id to write; set to -1 before the first call */
    char subject[512];      /* out: the subject it was registered under ("" if none) */
} ds_output_schema_t;

/** The ids the outputs are written with (see registry_open.c): without a
 *  registry the configured ids, checked against the embedded directory;
 *  with one, each schema registered (or looked up) under its subject, an
 *  explicitly set schema_ids.* taken as is.  Outputs resolved by an
 *  earlier call are skipped.  DS_ERR_IO: the registry did not answer (call
 *  again later); any other error: errstr says what to change. */
ds_err_t ds_output_schemas_resolve(const ds_config_t *cfg, ds_registry_t *reg,
                                   ds_output_schema_t *outs, size_t n, char *errstr,
                                   size_t errstr_size) DS_WUR;

/** o for `record` ("LeadScore", "AccountScore" or "DealAlert"): its topic
 *  and configured id from cfg, id not resolved yet. */
void ds_output_schema_init(ds_output_schema_t *o, const ds_config_t *cfg, const char *record);

/** A worker's start step for its outputs: with a registry, resolve them
 *  (ds_output_schemas_resolve), give the ids to codec and log them;
 *  without one nothing (the codec was made with the configured ids). */
ds_err_t ds_output_schemas_start(const ds_config_t *cfg, ds_registry_t *reg, ds_codec_t *codec,
                                 ds_output_schema_t *outs, size_t n, const char *comp, char *errstr,
                                 size_t errstr_size) DS_WUR;

/** The counters every worker keeps of the events its adapter applies:
 *  applied_events, duplicate_events (applied once) and
 *  replayed_events_skipped (already covered by the stored state), with the
 *  label worker="<ops->name>". */
typedef enum {
    DS_WORKER_APPLIED,
    DS_WORKER_DUPLICATE,
    DS_WORKER_SKIPPED,
    DS_WORKER__NCOUNTERS
} ds_worker_counter_t;

/** One more event of kind c (the worker's thread). */
void ds_worker_count(ds_worker_t *w, ds_worker_counter_t c);

/** Entity e changed: it is written by a later window (queued once, in the
 *  order entities become dirty).  The worker's thread. */
void ds_worker_dirty(ds_worker_t *w, ds_worker_entity_t *e);
/** n more things besides entities are owed to Redis until the next
 *  window closes (DS_WORKER_CLOSE takes them into its snapshot): the
 *  watcher's partition watermarks.  They count as dirty entities. */
void ds_worker_dirty_other(ds_worker_t *w, size_t n);

/** A counter, gauge or histogram of the worker labelled worker="<name>"
 *  (NULL without metrics). */
ds_counter_t *ds_worker_counter(ds_worker_t *w, const char *name, const char *help);
ds_gauge_t *ds_worker_gauge(ds_worker_t *w, const char *name, const char *help);
ds_histogram_t *ds_worker_histogram(ds_worker_t *w, const char *name, const char *help);

/** c += n (c may be NULL). */
static inline void ds_worker_add(ds_counter_t *c, uint64_t n) {
    if (c)
        ds_counter_add(c, n);
}

/** Metrics handle of the worker (may be NULL). */
ds_metrics_t *ds_worker_metrics(ds_worker_t *w);
/** The labels of the worker's series: worker="<name>"[,thread="<k>"]. */
const char *ds_worker_labels(const ds_worker_t *w);
/** The worker's Redis connection (for on-demand reads from ops). */
ds_redis_t *ds_worker_redis(ds_worker_t *w);
/** True when the worker's Redis is a Redis Cluster (redis.cluster on, or
 *  found to be one by the loads, which connect before any write is
 *  formatted): an atomic write must then keep to the keys of one slot.
 *  False for one Redis server, where one write may span units. */
bool ds_worker_redis_is_cluster(const ds_worker_t *w);

#endif
