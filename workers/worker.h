/*
 * worker.h — the pipeline every dealsignal worker runs, one thread each:
 *
 *   poll batch → decode (bad input → DLQ) → load missing state from Redis
 *   → apply in partition order → produce outputs, wait for acks
 *   → write state + checkpoints to Redis (write-behind: every entity changed
 *     in a window of redis.flush_ms, spread over the batches that follow
 *     it) → store offsets (auto-committed)
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

/* What differs between the workers.  The engine owns the rest: the
 * consumer, producer and Redis connections, the schema registry and the
 * codec (ds_worker_codec) with the output schemas' registration at start,
 * the rules' reload at a batch boundary (ds_worker_set_rules), batches,
 * windows, offsets, the DLQ and readiness.  Each callback is kept because
 * only the adapter knows it: decode (its record type); prefetch and
 * prefetched (its Redis layout: the replies are read where the layout is
 * known); rules (what new rules change in memory: the watcher's
 * deadlines); apply (the business); close, persist, persisted and
 * dirty_count (what an entity's write is, and what else a window owes: the
 * watcher's watermarks); tick (the watcher's clock); reset (its memory);
 * assigned (the watcher's clock per partition); unit_key and
 * unit_partition (which field is the unit, and the partition its
 * checkpoint binds it to); rewrite_all (which entities belong to the
 * partitions owned).  Partitions are passed as ds_partitions_t, never as
 * the Kafka client's lists. */
typedef struct ds_worker_ops {
    const char *name;  /* "scorer", "watcher": logs and metrics */
    size_t event_size; /* bytes of one decoded event slot */
    /* The records it writes ("LeadScore", "AccountScore", "DealAlert"),
     * up to the first NULL: each one's topic and schema id come from the
     * configuration (ds_output_schema_init). */
    const char *outputs[DS_WORKER_MAX_OUTPUTS];
    /* Decode a message value into slot (strings in arena, valid for the
     * batch).  Returns OK or a DLQ code with detail. */
    ds_err_t (*decode)(void *self, const void *val, size_t len, ds_arena_t *arena, void *slot,
                       char *detail, size_t detail_size);
    /* Before a batch is applied: append Redis commands (ds_redis_cmd) that
     * load whatever the batch's events need and is not in memory; return
     * how many were appended.  `slots` are the decoded events (NULL where
     * decoding failed), `partitions` their partitions.  Called again after
     * the replies were handled, until it appends nothing (so a load may
     * depend on what an earlier round read); `round` counts from 0. */
    size_t (*prefetch)(void *self, ds_redis_t *r, void **slots, const int32_t *partitions, size_t n,
                       int round);
    /* The rules changed (SIGHUP), at a batch boundary: before the first
     * prefetch round of a batch, so that the whole batch is applied under
     * one set (the watcher recomputes its deadlines).  May be NULL. */
    void (*rules)(void *self, const ds_rules_t *rules);
    /* The replies of the prefetch commands, in order. */
    ds_err_t (*prefetched)(void *self, size_t index, const ds_reply_t *reply);
    /* Apply one decoded event; outputs via ds_worker_emit(). */
    void (*apply)(void *self, ds_worker_t *w, void *slot, int32_t partition, int64_t offset);
    /* Write-behind, in windows: close() ends one and returns how many
     * dirty entities it owes (the first ones in the order they became
     * dirty), snapshotting what is written once they all are (the watcher's
     * watermarks).  persist() appends the Redis commands of the first `n`
     * dirty entities, as they are now (an entity changed again since the
     * close is written with its newest state); with `last`, also the
     * snapshot.  persisted() is called right after: those `n` are clean
     * (an entity changed after that is dirty again, at the end). */
    size_t (*close)(void *self);
    void (*persist)(void *self, ds_redis_t *r, size_t n, bool last);
    void (*persisted)(void *self, size_t n, bool last);
    /* How many entities are dirty now (closing a window with none owes
     * nothing: its offsets are stored as soon as its batch is acked). */
    size_t (*dirty_count)(void *self);
    /* Wall-clock check (may emit); NULL when the worker has none. */
    void (*tick)(void *self, ds_worker_t *w, int64_t now_ms);
    /* The in-memory state of every partition must be dropped (rebalance,
     * or a batch abandoned after its state ran ahead). */
    void (*reset)(void *self);
    /* Partitions were assigned (NULL: none is ours any more); may be
     * NULL: the watcher keeps a clock per partition it owns. */
    void (*assigned)(void *self, const ds_partitions_t *parts);
    /* The unit id of a decoded event: the Kafka key its records must carry
     * (scorer: account_id, or lead_id without account; watcher: deal_id).
     * *id_name names the field it comes from, for the DLQ detail.  A record
     * whose key differs goes to the DLQ (wrong_key) and is not applied. */
    const char *(*unit_key)(void *self, const void *slot, const char **id_name);
    /* How the input topic must be keyed, in words (for the warning). */
    const char *unit_key_doc;
    /* Once the batch's loads are in: the partition the event's unit is
     * bound to by its checkpoint (-1: none yet).  An event from another
     * partition goes to the DLQ (wrong_partition) and is not applied: one
     * unit's records on two partitions cannot be applied in order. */
    int32_t (*unit_partition)(void *self, const void *slot);
    /* Redis lost the state this worker wrote (it came back empty): make
     * every entity held in memory whose unit is bound to one of `owned`
     * (this worker's partitions) dirty, with its notes of what was written
     * cleared, so that the next windows write all of it again. */
    void (*rewrite_all)(void *self, const ds_partitions_t *owned);
} ds_worker_ops_t;

/** The stop flag every worker loop checks (set by signal handlers). */
extern volatile sig_atomic_t ds_worker_stop;
/** Install SIGTERM/SIGINT handlers that set ds_worker_stop. */
void ds_worker_install_signals(void);

/** Create a worker consuming `topic`.  `self` and `ops` are borrowed.
 *  `metrics` may be NULL.  NULL with errstr on failure. */
ds_worker_t *ds_worker_new(const ds_config_t *cfg, const char *topic, const ds_worker_ops_t *ops,
                           void *self, ds_metrics_t *metrics, char *errstr, size_t errstr_size);
/** Run until ds_worker_stop; returns 0 on a clean shutdown. */
int ds_worker_run(ds_worker_t *w);
void ds_worker_destroy(ds_worker_t *w);

/** The codec of the worker's thread: decodes its input, encodes its
 *  outputs with the ids registered at start (owned by the worker). */
ds_codec_t *ds_worker_codec(ds_worker_t *w);

/** New rules (borrowed; they must outlive the worker), taken at the next
 *  batch boundary (ops->rules).  Any thread. */
void ds_worker_set_rules(ds_worker_t *w, const ds_rules_t *rules);

/** Queue an output record for this batch (copied).  `id` is the stable
 *  output id, sent in the `dealsignal.id` header. */
void ds_worker_emit(ds_worker_t *w, const char *topic, const char *key, const void *val,
                    size_t vlen, const char *id);

/** Whether the worker is ready (partitions assigned, Redis answering within
 *  redis.timeout_ms, some broker answering within broker_timeout_ms, outputs
 *  acknowledged); why gets the reason when not.  Any thread. */
bool ds_worker_ready(const ds_worker_t *w, char *why, size_t why_size);

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

/** Metrics handle of the worker (may be NULL). */
ds_metrics_t *ds_worker_metrics(ds_worker_t *w);
/** The worker's Redis connection (for on-demand reads from ops). */
ds_redis_t *ds_worker_redis(ds_worker_t *w);

#endif
