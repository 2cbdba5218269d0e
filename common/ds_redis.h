/*
 * ds_redis.h — a pipelined Redis connection that survives outages.
 *
 * Usage per batch: ds_redis_cmd() appends commands (nothing is sent until
 * ds_redis_run()), ds_redis_run() sends them all and reads every reply,
 * handing each to a callback.  Any I/O or protocol error kills the context:
 * the next ds_redis_run() reconnects first (AUTH, SELECT, and the command
 * timeout again: hiredis 0.14 drops the timeout on reconnect), and the
 * caller re-runs its whole batch, which must therefore be idempotent.
 * Single-threaded: one ds_redis_t per worker thread.
 *
 * Redis Cluster: every (re)connection asks the server whether it is a
 * cluster node (CLUSTER SLOTS; redis.cluster=off skips the question).  If
 * it is, every call below is routed by slot through ds_cluster.h (one
 * connection and one pipeline per master, redirects followed), so callers
 * do not know whether they talk to one node or many; the keys of one
 * atomic write (one command, or MULTI … EXEC) must share one hash tag.
 *
 * Errors: an error reply is classified (redirect, busy, down, refused, bad
 * command) and its text kept for ds_redis_errstr(); a reply that retrying
 * cannot fix (a wrong password, WRONGTYPE, a cluster node while
 * redis.cluster is off …) also sets ds_redis_fatal().
 */
#ifndef DS_REDIS_H
#define DS_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include "ds_buf.h"
#include "ds_config.h"
#include "ds_err.h"
#include "ds_metrics.h"
#include "ds_reply.h"

typedef struct ds_redis ds_redis_t;

typedef enum {
    DS_REDIS_CLUSTER_AUTO, /* find out at every connection */
    DS_REDIS_CLUSTER_ON,   /* a plain Redis is an error */
    DS_REDIS_CLUSTER_OFF,  /* never ask; a redirect is an error */
} ds_redis_cluster_t;

/** Options beyond the URL (copied; the strings must outlive r). */
typedef struct ds_redis_opts {
    ds_redis_cluster_t cluster;
    const char *seeds; /* more host:port, comma-separated: cluster nodes to try
                        * when the URL's is down (NULL: none) */
    int wait_replicas; /* ds_redis_capture_wait(): WAIT for this many (0: off) */
    int wait_timeout_ms;
    ds_metrics_t *metrics;      /* may be NULL */
    const char *metrics_labels; /* e.g. worker="scorer" */
    struct ds_redis_known *known; /* shared by the clients of one worker (may be NULL) */
    /* A Lua script the caller's EVALSHA commands name (by script_sha, its
     * SHA-1 in hex): loaded (SCRIPT LOAD) on every new connection, in a
     * cluster on each node's, before anything else is sent on it.  NOSCRIPT
     * (scripts flushed under a live connection) is an error that passes:
     * the caller's retry reconnects, which loads it again.  NULL: none. */
    const char *script, *script_sha;
} ds_redis_opts_t;

/* ---- what came back empty ----------------------------------------------
 * A server (or cluster node) that restarts without its data answers as if
 * nothing had been written.  A table shared by the clients of one worker
 * remembers, per server (host:port), the run_id it had when last connected
 * and a key whose write it confirmed.  Every new connection reads the
 * server's run_id (INFO server); when it differs from the one remembered
 * and the remembered key is gone (EXISTS, on that connection, before
 * anything else is sent on it), the server came back empty:
 * ds_redis_take_emptied() says so once.  A restart with the data intact
 * is logged and nothing more.  Single-threaded: one table per worker. */
typedef struct ds_redis_known ds_redis_known_t;
/** An empty table; NULL on out of memory. */
ds_redis_known_t *ds_redis_known_new(void);
void ds_redis_known_destroy(ds_redis_known_t *k);

/** A client for url (redis://[user:password@]host:port[/db]); does not
 *  connect yet.  NULL with errstr on a bad URL. */
ds_redis_t *ds_redis_new(const char *url, int timeout_ms, char *errstr, size_t errstr_size);
void ds_redis_destroy(ds_redis_t *r);
/** Set the options (before the first connect). */
void ds_redis_set_opts(ds_redis_t *r, const ds_redis_opts_t *o);

/** A number that changes whenever any connection to Redis is (re)made
 *  in this process.  A worker that skips writing values it already wrote
 *  mixes it into what it remembers, so that after a reconnection (Redis
 *  may have restarted empty) every hash is written in full again. */
unsigned ds_redis_epoch(void);

/** Connect now if not connected.  DS_ERR_IO when unreachable.  A new
 *  connection (in a cluster: each node's) reads the server's run_id (INFO
 *  server) and, when an earlier connection of r to the same server was
 *  dropped with commands in flight, ends that one first (CLIENT KILL ID):
 *  its commands have then run or never will, before anything is sent
 *  again; then it checks the known table (opts.known). */
ds_err_t ds_redis_connect(ds_redis_t *r) DS_WUR;
/** True while connected (in a cluster: while a slot map is loaded; a
 *  call that failed for a node lost or not answering unloads it). */
bool ds_redis_connected(const ds_redis_t *r);
/** The writes of `len` bytes of RESP commands were confirmed: the key of
 *  the first one that leaves its key in place (HSET, SET, SADD, ZADD …)
 *  becomes the proof of the state of its server in the known table (in a
 *  cluster the client takes one per node from the replies it reads). */
void ds_redis_note_written(ds_redis_t *r, const void *cmds, size_t len);
/** True (once per event) when a server or node of the known table came
 *  back without the state written to it (see above); why gets which, and
 *  the run_ids. */
bool ds_redis_take_emptied(ds_redis_t *r, char *why, size_t why_size);

/** Append one command (argv with explicit lengths; lens may be NULL for
 *  NUL-terminated strings) to the pending pipeline. */
void ds_redis_cmd(ds_redis_t *r, int argc, const char **argv, const size_t *lens);
/** Number of pending commands. */
size_t ds_redis_pending(const ds_redis_t *r);
/** Drop the pending commands without sending them. */
void ds_redis_discard(ds_redis_t *r);
/** Close the connection (everything pending or in flight is forgotten);
 *  the next ds_redis_connect() opens a new one.  In a cluster, only the
 *  connections that owed replies are closed (an idle one stays: a WAIT on
 *  it still covers the writes it carried), and the map is read again. */
void ds_redis_close(ds_redis_t *r);

typedef void (*ds_redis_reply_fn)(void *opaque, size_t index, const ds_reply_t *reply);
/** Send the pending commands and read their replies (on_reply may be NULL).
 *  An error reply (e.g. EXECABORT) fails the run with DS_ERR_IO unless
 *  on_reply is given, which then sees it.  The pipeline is emptied
 *  either way; on failure the caller rebuilds and re-runs it. */
ds_err_t ds_redis_run(ds_redis_t *r, ds_redis_reply_fn on_reply, void *opaque) DS_WUR;

/* ---- asynchronous writes ------------------------------------------------
 * A worker keeps its Redis writes of one batch as bytes (RESP) until Redis
 * confirmed them, so that it can send them without waiting, go on with the
 * next batch, collect the replies later, and send the same bytes again
 * after a lost connection (the commands must be idempotent). */

/** While `out` is set, ds_redis_cmd() formats commands (RESP) onto out and
 *  adds 1 to *count per command instead of queuing them; pass NULL to stop.
 *  Works while disconnected. */
void ds_redis_capture(ds_redis_t *r, ds_buf_t *out, size_t *count);
/** Send `ncmds` captured commands and return without reading the replies
 *  or waiting for Redis to take every byte: what the socket does not take
 *  at once is written by later ds_redis_pump() calls, or at the latest by
 *  ds_redis_collect().  `cmds` must stay valid until then (or until the
 *  connection is closed).  DS_ERR_IO (connection dropped, nothing in
 *  flight any more) on failure. */
ds_err_t ds_redis_send(ds_redis_t *r, const void *cmds, size_t len, size_t ncmds) DS_WUR;
/** Write what the socket takes now of the sent commands, without blocking,
 *  so that Redis works while the caller computes.  An I/O error drops the
 *  connection (the next send or collect reports it). */
void ds_redis_pump(ds_redis_t *r);
/** Replies still to read from earlier sends. */
size_t ds_redis_inflight(const ds_redis_t *r);
/** Read the replies of the oldest `n` sent commands.  An error reply makes
 *  the result DS_ERR_IO (the others are still read); an I/O error drops the
 *  connection and everything in flight. */
ds_err_t ds_redis_collect(ds_redis_t *r, size_t n) DS_WUR;

/** Read, without waiting, the replies already in (at most `max`); *got
 *  says how many.  Errors as ds_redis_collect(); DS_ERR_TIMEOUT (the
 *  connection dropped; in a cluster, everything in flight) when replies
 *  are owed and none has come for the timeout (in a cluster: from one
 *  node): a server that stopped answering is noticed by a caller that
 *  never blocks.  A PING sent alone (the probe) goes, in a cluster, to
 *  every master, and counts as one reply once all of them answered. */
ds_err_t ds_redis_collect_avail(ds_redis_t *r, size_t max, size_t *got) DS_WUR;

/** While capturing: append a WAIT for the configured number of replicas
 *  (counted as one command; nothing when wait_replicas is 0).  Its reply
 *  fails the collect unless every node written since the last WAIT (in a
 *  cluster: every master written) reached that many replicas. */
void ds_redis_capture_wait(ds_redis_t *r);
/** True (once) when a connection that held writes no WAIT confirmed was
 *  lost, or its node stopped being a master: those writes may be gone
 *  (meaningful with wait_replicas > 0 only).  Writes lost with a server
 *  (node) found since to have come back empty do not count: see
 *  ds_redis_take_emptied. */
bool ds_redis_take_lost(ds_redis_t *r);

/** Last error text (never contains the password). */
const char *ds_redis_errstr(const ds_redis_t *r);
/** True after a reply or a refusal that retrying cannot fix. */
bool ds_redis_fatal(const ds_redis_t *r);
/** True while connected to a Redis Cluster. */
bool ds_redis_is_cluster(const ds_redis_t *r);

#endif
