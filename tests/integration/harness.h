/*
 * harness.h — integration-test helpers: real processes on loopback.
 *
 * Starts a private redis-server and `dealsignal broker` on free ports,
 * runs the dealsignal binary ($DS_BIN) as child processes, produces framed
 * events and consumes outputs with librdkafka, reads Redis with hiredis.
 * Everything started is stopped by ds_h_cleanup() (also registered with
 * atexit), so a failing test leaves nothing running.
 */
#ifndef DS_HARNESS_H
#define DS_HARNESS_H

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"

typedef struct ds_h_env {
    char brokers[256];
    char redis_url[128];
    int redis_port;
    pid_t broker_pid, redis_pid;
    int broker_ctl; /* write end of the broker's stdin (fault control) */
    char tmpdir[128];
    bool redis_aof;
} ds_h_env_t;

/** Start redis-server (if want_redis) and the broker with `partitions`.
 *  With env->redis_aof set before the call (use ds_h_start_aof), Redis runs
 *  with appendonly yes / appendfsync always and survives a restart. */
void ds_h_start(ds_h_env_t *env, int partitions, bool want_redis);
void ds_h_start_aof(ds_h_env_t *env, int partitions);

/** True when consumer group `group` has committed, on every partition of
 *  `topic`, the partition's high watermark (it has consumed everything). */
bool ds_h_group_done(const ds_h_env_t *env, const char *group, const char *topic);
/** Wait up to timeout_ms for ds_h_group_done. */
bool ds_h_wait_group(const ds_h_env_t *env, const char *group, const char *topic, int timeout_ms);
/** Wait up to timeout_ms until group `group` has committed more than
 *  `more_than` records of `topic` in all (it is consuming, not still
 *  joining), or all of them; the records committed then, -1 on timeout. */
int64_t ds_h_wait_group_consumed(const ds_h_env_t *env, const char *group, const char *topic,
                                 int64_t more_than, int timeout_ms);
/** Send one control line to the broker (e.g. "broker-down 1"). */
void ds_h_broker_ctl(ds_h_env_t *env, const char *line);
/** Create topic `name` with `partitions` partitions on the broker. */
void ds_h_create_topic(ds_h_env_t *env, const char *name, int partitions);
void ds_h_stop_redis(ds_h_env_t *env);
void ds_h_restart_redis(ds_h_env_t *env);
void ds_h_cleanup(void);
/** Prints "who: " and the message on stderr, then ds_h_cleanup() and
 *  exit(1): for what a test cannot go on from. */
void ds_h_die(const char *who, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
/** A group teardown: destroys producer (when not NULL), stops worker with
 *  SIGTERM (10 s at most), then ds_h_cleanup(); 0 when the worker exited
 *  with status 0, else -1. */
int ds_h_teardown(rd_kafka_t *producer, pid_t worker);
/** A group teardown for a suite that leaves nothing but what the harness
 *  started: ds_h_cleanup(); returns 0. */
int ds_h_group_teardown(void **state);

/** Spawn $DS_BIN with args (NULL-terminated); stdout/stderr go to
 *  `logfile` (appended) when not NULL. */
pid_t ds_h_spawn(const char *logfile, const char *const *args);
/** Run $DS_BIN args (NULL-terminated) to completion, 60 s at most (else
 *  the case fails): stdout to `out` (truncated), stderr to `err`
 *  (appended when err_append, else truncated).  Returns the exit status
 *  (-1: killed by a signal). */
int ds_h_run_to(const char *out, const char *err, bool err_append, const char *const *args);
/** SIGTERM (or sig) then wait up to timeout_ms; returns the exit status,
 *  -1 on timeout (the process is then killed with SIGKILL). */
int ds_h_stop(pid_t pid, int sig, int timeout_ms);

/** `dealsignal gen --count events --seed 11 --scenario mixed --start
 *  2025-06-01 --accounts A` into env's broker (the default input topics),
 *  schemas from $DS_SCHEMAS_DIR, its output in <tmpdir>/gen.log; waits
 *  for it and returns whether it exited with status 0.  A is one account
 *  per 400 events, at least 50: gen's event time advances with the events
 *  per account, and 200,000 events over 50 accounts spanned eleven years
 *  and gave 156,000 deal alerts, more than the embedded broker keeps on 8
 *  partitions (about a year and 44,000 over 500).  Tests that compare
 *  runs replay this one stream. */
bool ds_h_gen_mixed(const ds_h_env_t *env, long events);

/** Arguments for ds_h_spawn, built up: v is always NULL-terminated. */
typedef struct ds_h_args {
    const char *v[64];
    int n;
} ds_h_args_t;
/** Appends the arguments given, up to a NULL (too many: the test ends). */
void ds_h_args_add(ds_h_args_t *a, ...);
/** Starts a with what every suite gives a worker: `what` (scorer, watcher
 *  or run), env's brokers, redis_url, the consumer group and the Redis key
 *  prefix, $DS_SCHEMAS_DIR, the event clock and a 6 s Kafka session
 *  timeout. */
void ds_h_worker_args(ds_h_args_t *a, const ds_h_env_t *env, const char *what,
                      const char *redis_url, const char *group, const char *prefix);

/** What one run of the workers in a suite is called: its name, its Redis
 *  key prefix "<name>:", its consumer group "<group_prefix>-<name>" and
 *  its output topics, "<name>.ls", "<name>.as", "<name>.al" or, with
 *  long_topics, "lead.scores.<name>", "account.scores.<name>",
 *  "deal.alerts.<name>". */
typedef struct ds_h_names {
    char name[32], prefix[40], group[64], ls[80], as[80], al[80];
} ds_h_names_t;
void ds_h_names(ds_h_names_t *n, const char *group_prefix, const char *name, bool long_topics);
/** ds_h_same_state over two runs' key prefixes (and names). */
bool ds_h_same_run_state(const ds_h_env_t *env, const ds_h_names_t *a, const ds_h_names_t *b,
                         const char *skip_field, size_t min_keys);
/** ds_h_same_outputs over two runs' LeadScore and AccountScore topics. */
bool ds_h_same_run_scores(const ds_h_env_t *env, const ds_h_names_t *a, const ds_h_names_t *b);

/** One case's scorer: its names, its input topic, its log and its
 *  redis.writes ("script" or "transaction"). */
typedef struct ds_h_scase {
    ds_h_names_t n;
    char topic[64], log[256];
    const char *writes;
} ds_h_scase_t;
void ds_h_scase(ds_h_scase_t *c, const ds_h_env_t *env, const char *group_prefix,
                const char *name, const char *writes);
/** Starts c's scorer; a second start (same group) goes on from the
 *  offsets the first committed. */
pid_t ds_h_scase_start(const ds_h_env_t *env, const ds_h_scase_t *c);
/** Waits until hash `key` shows `want` events applied (its write is in
 *  Redis); fails the case, with the end of c's log, when it does not
 *  within 60 s. */
void ds_h_scase_wait_applied(const ds_h_env_t *env, const ds_h_scase_t *c, const char *key,
                             int want);
/** An integer reply of a command (fmt with one %s: key) on env's Redis. */
long long ds_h_redis_int(const ds_h_env_t *env, const char *fmt, const char *key);

/** A producer connected to env's broker (framed values are built by the
 *  caller with the codec). */
rd_kafka_t *ds_h_producer(const ds_h_env_t *env);
void ds_h_produce(rd_kafka_t *p, const char *topic, const char *key, const void *val, size_t len);
void ds_h_flush(rd_kafka_t *p);
/** Produce to one partition (RD_KAFKA_PARTITION_UA: the partitioner's
 *  choice). */
void ds_h_produce_to(rd_kafka_t *p, const char *topic, int32_t partition, const void *key,
                     size_t klen, const void *val, size_t len);
/** ds_h_produce_to with the Kafka timestamp ts_ms, as if produced then
 *  (0: now). */
void ds_h_produce_at(rd_kafka_t *p, const char *topic, int32_t partition, const void *key,
                     size_t klen, const void *val, size_t len, int64_t ts_ms);

/** A record read back from a topic. */
typedef struct ds_h_record {
    char *key;
    unsigned char *val;
    size_t len;
    int32_t partition;
    int64_t offset;
    char *headers[8][2];
    int nheaders;
} ds_h_record_t;

/** Read every record of `topic` from the beginning until `want` records
 *  arrived or `timeout_ms` passed; returns how many (records in *out,
 *  free with ds_h_records_free).  want == SIZE_MAX: every record up to
 *  each partition's high watermark as it was when the read began. */
size_t ds_h_consume(const ds_h_env_t *env, const char *topic, size_t want, int timeout_ms,
                    ds_h_record_t **out);
void ds_h_records_free(ds_h_record_t *r, size_t n);
/** ds_h_consume of at most `read` records of topic (timeout_ms), freed
 *  at once: fails the case unless exactly `want` arrived (the failure
 *  names the topic and both counts). */
void ds_h_expect_records(const ds_h_env_t *env, const char *topic, size_t read, int timeout_ms,
                         size_t want);
const char *ds_h_header(const ds_h_record_t *r, const char *name);

/** HGET on the env's Redis; malloc'ed string or NULL. */
char *ds_h_hget(const ds_h_env_t *env, const char *key, const char *field);
/** HGET until the field exists (and equals `want` unless NULL) or
 *  timeout_ms passes: workers write state behind their outputs (at most
 *  two windows later).  Returns the last value read (malloc'ed) or NULL. */
char *ds_h_wait_hget(const ds_h_env_t *env, const char *key, const char *field, const char *want,
                     int timeout_ms);
/** Fails the case unless the hash field exists and, when want is not
 *  NULL, equals want: read once (timeout_ms 0) or as ds_h_wait_hget does
 *  for up to timeout_ms.  The failure names the key, the field and what
 *  was read. */
void ds_h_expect_hget(const ds_h_env_t *env, const char *key, const char *field, const char *want,
                      int timeout_ms);
/** ds_h_expect_hget(env, key, fields[i][0], fields[i][1], 0) for each of
 *  the n {field, want} pairs. */
void ds_h_expect_hash(const ds_h_env_t *env, const char *key, const char *const (*fields)[2],
                      size_t n);
/** Any command; caller frees the reply. */
redisReply *ds_h_redis(const ds_h_env_t *env, const char *fmt, ...);

/** Codec over the project's schemas (DS_SCHEMAS_DIR). */
ds_codec_t *ds_h_codec(void);
void ds_h_codec_free(void);

/** The records a suite reads back, by schema. */
typedef enum ds_h_kind {
    DS_H_LEAD_SCORE,
    DS_H_ACCOUNT_SCORE,
    DS_H_DEAL_ALERT,
    DS_H_MA_EVENT,
    DS_H_CRM_EVENT
} ds_h_kind_t;
/** Room for a decoded record of any ds_h_kind_t. */
typedef union ds_h_decoded {
    ds_lead_score_t lead_score;
    ds_account_score_t account_score;
    ds_deal_alert_t deal_alert;
    ds_ma_event_t ma;
    ds_crm_event_t crm;
} ds_h_decoded_t;
/** Decodes r with codec as `kind` into *out (the kind's struct: a
 *  ds_lead_score_t for DS_H_LEAD_SCORE, …), its strings in arena; returns
 *  the codec's result and, when it fails, the reason in detail. */
ds_err_t ds_h_decode(ds_codec_t *codec, ds_h_kind_t kind, const ds_h_record_t *r, ds_arena_t *arena,
                     void *out, char *detail, size_t detail_size);
/** ds_h_decode with ds_h_codec() of r[0..n) into out[0..n) (an array of
 *  at least n of the kind's struct), strings in arena (initialised by the
 *  caller); fails the case at the first record that does not decode,
 *  naming it and the reason. */
void ds_h_decode_all(ds_h_kind_t kind, const ds_h_record_t *r, size_t n, ds_arena_t *arena,
                     void *out);

/** Convenience builders: produce one MarketingEvent / CrmEvent. */
void ds_h_send_ma(rd_kafka_t *p, const char *topic, const ds_ma_event_t *ev);
/** ds_h_send_ma with the Kafka timestamp ts_ms (0: now). */
void ds_h_send_ma_at(rd_kafka_t *p, const char *topic, const ds_ma_event_t *ev, int64_t ts_ms);
/** A MarketingEvent with these fields (the others zero: no attendees,
 *  no shared_with; account NULL for a lead without account). */
ds_ma_event_t ds_h_ma(const char *id, int64_t t, const char *lead, const char *account, int type,
                      const char *content, const char *insight, int stage);
void ds_h_send_crm(rd_kafka_t *p, const char *topic, const ds_crm_event_t *ev);

/** Every key under `prefix` with its whole content, one sorted line per
 *  key ("key-without-prefix<TAB>field=value;…", binary values in hex),
 *  without the hash field `skip_field` when not NULL (e.g. "checkpoint",
 *  to compare runs over topics whose offsets differ).  Returns the count;
 *  free with ds_h_lines_free. */
size_t ds_h_snapshot(const ds_h_env_t *env, const char *prefix, const char *skip_field,
                     char ***lines);
void ds_h_lines_free(char **lines, size_t n);

/** GET http://addr/path; returns the HTTP status (0: no answer) and, when
 *  body is not NULL, the NUL-terminated body (caller frees). */
long ds_h_http_get(const char *addr, const char *path, char **body);
/** The value of the sample `name{labels}` in /metrics text; -1 if absent. */
double ds_h_metric(const char *text, const char *sample);

/** The distinct output ids ("<topic index>/<dealsignal.id>") of every
 *  record of `topics`, sorted; free with ds_h_lines_free. */
size_t ds_h_output_ids(const ds_h_env_t *env, const char *const *topics, int ntopics, char ***ids);
/** Whether two sorted line lists are equal; prints their counts and the
 *  first lines only one has. */
bool ds_h_same_lines(const char *what, const char *name_a, char **a, size_t na, const char *name_b,
                     char **b, size_t nb);
/** Two runs' Redis states (ds_h_snapshot of each prefix, without
 *  skip_field) are equal and hold more than min_keys keys; the
 *  differences are printed. */
bool ds_h_same_state(const ds_h_env_t *env, const char *name_a, const char *prefix_a,
                     const char *name_b, const char *prefix_b, const char *skip_field,
                     size_t min_keys);
/** Two runs' output topics (topics_a[i] against topics_b[i]) hold the
 *  same set of output ids, and some. */
bool ds_h_same_outputs(const ds_h_env_t *env, const char *name_a, const char *const *topics_a,
                       const char *name_b, const char *const *topics_b, int ntopics);
/** Lines of the file at path that contain needle (0 when unreadable). */
int ds_h_log_count(const char *path, const char *needle);
/** The same from the first line holding `mark` on (NULL: the whole file). */
int ds_h_log_count_after(const char *path, const char *mark, const char *needle);
/** Prints the last `lines` lines of the file at path on stderr, under a
 *  header naming it: what a worker said before a case failed. */
void ds_h_show_log(const char *path, int lines);
/** Prints, for each partition of topic, the group's committed offset and
 *  the high watermark: where a group that did not finish stopped. */
void ds_h_show_group(const ds_h_env_t *env, const char *group, const char *topic);

/* ---- threads a case starts ----------------------------------------------------- */

/** Starts fn on a thread the harness owns.  fn gets a heap copy of the
 *  `size` bytes at arg, never the case's own stack, and the same copy is
 *  returned: the case reads what the thread shares through it.  Threads
 *  are test-main-thread business: start and join them from a case only.
 *  A thread must not call cmocka's asserts (they longjmp into the case's
 *  frame from the wrong thread): it returns what went wrong instead.
 *  Ends the test run (ds_h_die) when no thread can be started. */
void *ds_h_thread_start(void *(*fn)(void *arg), const void *arg, size_t size);
/** Joins the thread started with the copy `arg`, frees the copy and
 *  returns what fn returned. */
void *ds_h_thread_join(void *arg);
/** True while the harness is stopping the threads a case left running
 *  (the case failed): long-running thread functions check it in their
 *  loops and return early.  Any thread may call it. */
bool ds_h_stopping(void);
/** The teardown ds_h_run_tests and ds_h_main give every case that has
 *  none: raises the stop flag, joins every thread the case left running
 *  (saying how many on stderr), frees their arguments and lowers the
 *  flag.  A case with its own teardown calls it from there.  Returns 0. */
int ds_h_threads_teardown(void **state);

struct CMUnitTest;
/** Run the cmocka group `tests` (n tests), or, when the environment
 *  variable `only_var` (may be NULL) names some of them without their
 *  "test_" prefix (comma-separated), tests[0] (the oracle the others
 *  compare with) and those only: to repeat one case while diagnosing it,
 *  or to run a subset on another stream.  `group` names the
 *  selection in cmocka's output.  Every case without a teardown of its
 *  own gets ds_h_threads_teardown, so that a failed case's threads never
 *  run into the next case.  Returns cmocka's result. */
int ds_h_run_tests(const char *group, const struct CMUnitTest *tests, size_t n,
                   const char *only_var);
/** A suite's main: starts Redis and the broker with `partitions`
 *  (ds_h_start), runs the cmocka group `tests` (n tests, as
 *  ds_h_run_tests does without a selection), stops everything and returns
 *  cmocka's result. */
int ds_h_main(ds_h_env_t *env, int partitions, const struct CMUnitTest *tests, size_t n);
/** A suite's whole main: ds_h_main(env, partitions, …) over the cases
 *  given (cmocka_unit_test(name), …).  The file that uses it includes
 *  cmocka.h. */
#define DS_H_MAIN(env, partitions, ...)                                                            \
    int main(void) {                                                                               \
        const struct CMUnitTest tests[] = {__VA_ARGS__};                                           \
        return ds_h_main(env, partitions, tests, sizeof(tests) / sizeof(tests[0]));                \
    }

/** A free TCP port on 127.0.0.1 (for a process's HTTP endpoint). */
int ds_h_free_port(void);

/** A fresh unique name (for group ids). */
const char *ds_h_unique(const char *prefix);

/* ---- Redis Cluster ------------------------------------------------------------ */

#define DS_H_CLUSTER_MAX 12

/** A Redis Cluster on loopback: `masters` masters with `replicas` replicas
 *  each, one redis-server per node on free ports, data in env's tmpdir. */
typedef struct ds_h_cluster {
    int n;
    int port[DS_H_CLUSTER_MAX];
    pid_t pid[DS_H_CLUSTER_MAX];
    char url[64];    /* redis://127.0.0.1:<first node>/0 */
    char seeds[256]; /* every other node, host:port comma-separated */
} ds_h_cluster_t;

/** Start the nodes, `redis-cli --cluster create`, and wait until every
 *  node says cluster_state:ok, agrees on the masters and every replica's
 *  link is up (ds_h_cluster_wait_ok). */
void ds_h_cluster_start(ds_h_env_t *env, ds_h_cluster_t *cl, int masters, int replicas);
/** Wait until every live node reports cluster_state:ok, all of them name
 *  the same master for every slot, and every replica is in sync. */
bool ds_h_cluster_wait_ok(const ds_h_cluster_t *cl, int timeout_ms);
/** SIGKILL node i / start it again (same port and node config file: it
 *  rejoins, as a replica of whoever took over). */
void ds_h_cluster_kill(ds_h_cluster_t *cl, int i);
void ds_h_cluster_restart(const ds_h_env_t *env, ds_h_cluster_t *cl, int i);
/** A command on node i (NULL when it does not answer); caller frees. */
redisReply *ds_h_node(const ds_h_cluster_t *cl, int i, const char *fmt, ...);
/** The index of the node that is master of `slot` now (-1: unknown). */
int ds_h_cluster_owner(const ds_h_cluster_t *cl, unsigned slot);
/** The indexes of the masters now; returns how many. */
int ds_h_cluster_masters(const ds_h_cluster_t *cl, int *out);
/** HGET routed by the key's slot; malloc'ed string or NULL. */
char *ds_h_cluster_hget(const ds_h_cluster_t *cl, const char *key, const char *field);
/** Spawn `redis-cli --cluster reshard` moving `nslots` slots from node
 *  `from` to node `to` (both masters); returns its pid (wait with
 *  waitpid). */
pid_t ds_h_cluster_reshard(const ds_h_cluster_t *cl, int from, int to, int nslots,
                           const char *logfile);

/** ds_h_snapshot() over the Redis servers at `ports` (the masters of a
 *  cluster, or one plain Redis), merged into one sorted list. */
size_t ds_h_snapshot_ports(const int *ports, int nports, const char *prefix, const char *skip_field,
                           char ***lines);

/** The sum of the samples in a /metrics text whose line starts with
 *  `prefix` (e.g. "dealsignal_redis_redirects_total{"). */
double ds_h_metric_sum(const char *text, const char *prefix);

#define DS_DAY 86400000LL

#endif
