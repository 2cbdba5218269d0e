/*
 * ds_cluster.h — Redis Cluster routing on top of plain hiredis contexts.
 *
 * Two layers:
 *   - pure helpers (ds_cluster_map.c), unit-tested with nothing running:
 *     the key slot (CRC16/XMODEM of the hash tag, mod 16384), the slot map
 *     read from a CLUSTER SLOTS reply, the parse of one RESP command (its
 *     name and key), and the classification of replies (redirect, busy,
 *     down, refused, bad command) and of the replies of one atomic unit
 *     (one command, or MULTI … EXEC on one slot);
 *   - a client (ds_cluster_t: ds_cluster.c, each master's connection in
 *     ds_cluster_node.c) with one connection and one pipeline per master,
 *     used by ds_redis.c when the server it was pointed at turns out to
 *     be a cluster node: the workers only see ds_redis.h.
 *
 * The client follows redirects itself: -MOVED updates the slot and
 * refreshes the map, -ASK sends ASKING and the unit to the named node once
 * without touching the map, -TRYAGAIN/-CLUSTERDOWN/-LOADING/-BUSY back off
 * and retry, a lost node connection refreshes the map from another node.
 * A redirect inside MULTI/EXEC is seen on the queued command's reply and
 * the whole transaction is sent again.  Repairs are bounded in rounds and
 * in time (the command timeout); past that the call fails and everything
 * in flight is dropped, as a lost connection in ds_redis.h.  A node that
 * does not answer within the timeout (a blocking read, or replies owed to
 * ds_cluster_collect_avail for that long) is not repaired: the call fails
 * at once, and the map is read again at the next connect.
 *
 * Each node connection is identified as in ds_redis.h (ds_redis_ident_*):
 * a connection dropped with commands in flight is ended (CLIENT KILL ID)
 * from the next one to the same node, and a node whose run_id changed is
 * checked against the known table for the key its confirmed writes set
 * (the client notes one per node: the key of the last unit it saw
 * succeed there that leaves its key in place).  A PING sent alone goes to
 * every master (the worker's probe).
 *
 * Order: every write sets absolute values, so what matters is that the
 * last write of a key to take effect is the newest.  Units are numbered in
 * the order the caller gave them; when a unit must be sent again, every
 * reply outstanding anywhere is read first, and then that unit and every
 * later one are sent again in order (later ones may already have taken
 * effect: sending them again puts the newest value last).
 *
 * Single-threaded: one client per ds_redis_t.
 */
#ifndef DS_CLUSTER_H
#define DS_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_config.h"
#include "ds_err.h"
#include "ds_metrics.h"
#include "ds_redis_conn.h"

#define DS_CLUSTER_NSLOTS 16384

/* ---- pure helpers ---------------------------------------------------------- */

/** CRC16/XMODEM (polynomial 0x1021, initial value 0) of data. */
uint16_t ds_cluster_crc16(const void *data, size_t len);

/** The hash slot of a key: CRC16 of the text between the first `{` and
 *  the next `}` when that text is not empty, else of the whole key; & 16383. */
unsigned ds_cluster_keyslot(const void *key, size_t len);

/** One node address. */
typedef struct ds_cluster_addr {
    char host[256];
    int port;
} ds_cluster_addr_t;

/** A slot map: the masters, and which one owns each slot. */
typedef struct ds_cluster_map {
    ds_cluster_addr_t *nodes; /* masters, in the order first seen */
    size_t nnodes;
    int16_t owner[DS_CLUSTER_NSLOTS]; /* index into nodes; -1: no owner */
} ds_cluster_map_t;

/** Read a CLUSTER SLOTS reply into m (freed first with ds_cluster_map_free,
 *  so m must be zeroed or hold a map).  Each entry is [start, end, master,
 *  replicas…]; a node is [host, port, …] and what follows the port (the
 *  node id, 7.0's metadata) is ignored; an empty host is `asked_host`.
 *  DS_ERR_INVAL with errstr on a reply of another shape. */
ds_err_t ds_cluster_map_parse(ds_cluster_map_t *m, const redisReply *slots, const char *asked_host,
                              char *errstr, size_t errstr_size) DS_WUR;
void ds_cluster_map_free(ds_cluster_map_t *m);
/** Slots with an owner. */
size_t ds_cluster_map_covered(const ds_cluster_map_t *m);

/** One RESP command (an array of bulk strings) as formatted by ds_redis. */
typedef struct ds_cluster_cmd {
    size_t size; /* bytes of the whole command */
    int argc;
    const char *name; /* argv[0] */
    size_t name_len;
    const char *arg1; /* argv[1] (NULL when argc < 2) */
    size_t arg1_len;
    /* the key it is routed by: argv[1], or for EVAL and EVALSHA their
     * first key, argv[3] (NULL when there is none) */
    const char *key;
    size_t key_len;
} ds_cluster_cmd_t;

/** Parse the command at p (len bytes available).  DS_ERR_INVAL when the
 *  bytes are not one complete command. */
ds_err_t ds_cluster_cmd_parse(const char *p, size_t len, ds_cluster_cmd_t *out) DS_WUR;

/** True when the command's name is `name` (any case). */
bool ds_cluster_cmd_is(const ds_cluster_cmd_t *cmd, const char *name);

/** The slot a command is routed by: its key's (cmd->key); -1 for commands
 *  without a key (MULTI, EXEC, WAIT, PING, INFO, CLUSTER, ASKING …). */
int ds_cluster_cmd_slot(const ds_cluster_cmd_t *cmd);

/** What one reply says, most specific first. */
typedef enum {
    DS_CLUSTER_OK,          /* not an error */
    DS_CLUSTER_MOVED,       /* redirect: the slot lives elsewhere now */
    DS_CLUSTER_ASK,         /* redirect: this key is being migrated */
    DS_CLUSTER_TRYAGAIN,    /* busy: a multi-key request during a migration */
    DS_CLUSTER_LOADING,     /* busy: the node is loading its data */
    DS_CLUSTER_BUSY,        /* busy: a script is running, OOM, MISCONF */
    DS_CLUSTER_CLUSTERDOWN, /* down: the cluster is not serving this slot */
    DS_CLUSTER_DOWN,        /* down: MASTERDOWN, READONLY (a replica now), no connection */
    DS_CLUSTER_SHORT,       /* down: WAIT reached fewer replicas than asked */
    DS_CLUSTER_NOSCRIPT,    /* down: the script is not loaded (flushed, a new master) */
    DS_CLUSTER_EXECABORT,   /* a transaction discarded for a queued error */
    DS_CLUSTER_REFUSED,     /* refused: NOAUTH, WRONGPASS, NOPERM */
    DS_CLUSTER_BADCMD,      /* bad command: WRONGTYPE, unknown command, CROSSSLOT … */
    DS_CLUSTER__KINDS
} ds_cluster_kind_t;

/** The class of a kind: "ok", "redirect", "busy", "down", "refused",
 *  "bad_command". */
const char *ds_cluster_kind_class(ds_cluster_kind_t k);
/** A short name for metrics: "moved", "ask", "tryagain" … */
const char *ds_cluster_kind_name(ds_cluster_kind_t k);
/** True when retrying cannot fix it (refused, bad command). */
bool ds_cluster_kind_fatal(ds_cluster_kind_t k);

/** Where a redirect points (host empty: the node that answered). */
typedef struct ds_cluster_redirect {
    unsigned slot;
    ds_cluster_addr_t to;
} ds_cluster_redirect_t;

/** The kind of one reply; for MOVED/ASK, `to` (may be NULL) gets the
 *  target.  An array (EXEC's) is OK unless an element is an error: then
 *  the element's kind (a command that failed inside the transaction). */
ds_cluster_kind_t ds_cluster_reply_kind(const redisReply *r, ds_cluster_redirect_t *to);

/** Merge the kind of one more reply of a unit into `acc` (the unit's so
 *  far): the first error counts, EXECABORT never replaces the error that
 *  caused it, and a fatal kind replaces a retryable one.  Returns the new
 *  kind of the unit. */
ds_cluster_kind_t ds_cluster_kind_merge(ds_cluster_kind_t acc, ds_cluster_kind_t next);

/** The outcome of a unit from all its replies (MULTI, QUEUED…, EXEC; or
 *  one reply), with the redirect of the reply that decided it. */
ds_cluster_kind_t ds_cluster_unit_kind(const redisReply *const *replies, size_t n,
                                       ds_cluster_redirect_t *to);

/* ---- the client --------------------------------------------------------------- */

typedef struct ds_cluster ds_cluster_t;

/** Options of a client (all copied). */
typedef struct ds_cluster_opts {
    const ds_redis_url_t *url;  /* credentials (host/port: the first seed) */
    const char *seeds;          /* more "host:port" separated by commas; may be NULL */
    int timeout_ms;             /* connect and command timeout; bounds a repair */
    ds_metrics_t *metrics;      /* may be NULL */
    const char *metrics_labels; /* e.g. worker="scorer" (may be NULL) */
    struct ds_redis_known *known; /* servers seen and their proofs (may be NULL) */
    /* loaded on each node's connection (see ds_redis_opts_t); not copied:
     * they must outlive the client */
    const char *script, *script_sha;
} ds_cluster_opts_t;

/** A client; connects nothing yet.  NULL on out of memory. */
ds_cluster_t *ds_cluster_new(const ds_cluster_opts_t *o);
void ds_cluster_destroy(ds_cluster_t *c);

/** Load the slot map from the first node that answers (known masters,
 *  then the seeds), if there is none.  DS_ERR_IO with errstr when no node
 *  answers with a map. */
ds_err_t ds_cluster_connect(ds_cluster_t *c) DS_WUR;
/** True while a slot map is loaded. */
bool ds_cluster_connected(const ds_cluster_t *c);
/** Forget everything pending or in flight: connections that owed replies
 *  are closed (idle ones stay open), and the map is loaded again by the
 *  next connect. */
void ds_cluster_close(ds_cluster_t *c);

/** Synchronous pipeline (ds_redis_cmd/ds_redis_run in cluster mode). */
void ds_cluster_cmd(ds_cluster_t *c, int argc, const char **argv, const size_t *lens);
size_t ds_cluster_pending(const ds_cluster_t *c);
void ds_cluster_discard(ds_cluster_t *c);
/** Send the pending commands by slot, follow redirects, and hand every
 *  final reply to on_reply in the order of the commands.  An error reply
 *  left (a bad command) fails the run unless on_reply is given, which then
 *  sees it; a fatal one always fails it (ds_cluster_fatal). */
ds_err_t ds_cluster_run(ds_cluster_t *c, ds_redis_reply_fn on_reply, void *opaque) DS_WUR;

/** Asynchronous captured writes (ds_redis_send … in cluster mode): cmds
 *  holds ncmds RESP commands, MULTI … EXEC groups kept whole; a WAIT goes
 *  to every master written since the last WAIT and fails the unit when a
 *  node reached fewer replicas than it asked for; a PING alone goes to
 *  every master and is one command for the caller.  `cmds` must stay valid
 *  until its replies are collected or the client is closed. */
ds_err_t ds_cluster_send(ds_cluster_t *c, const void *cmds, size_t len, size_t ncmds) DS_WUR;
void ds_cluster_pump(ds_cluster_t *c);
size_t ds_cluster_inflight(const ds_cluster_t *c);
ds_err_t ds_cluster_collect(ds_cluster_t *c, size_t n) DS_WUR;
/** As ds_cluster_collect without waiting; DS_ERR_TIMEOUT (everything in
 *  flight dropped) when a node owes replies and sent none for the
 *  timeout. */
ds_err_t ds_cluster_collect_avail(ds_cluster_t *c, size_t max, size_t *got) DS_WUR;

/** Last error text (never a password); names the node when one failed. */
const char *ds_cluster_errstr(const ds_cluster_t *c);
/** True after a reply that retrying cannot fix (see ds_cluster_kind_fatal). */
bool ds_cluster_fatal(const ds_cluster_t *c);
/** True (once) when a node went away, or stopped being a master, while
 *  it held writes that no WAIT confirmed: they may be lost. */
bool ds_cluster_take_lost(ds_cluster_t *c);
/** Masters in the current map. */
size_t ds_cluster_nodes(const ds_cluster_t *c);

#endif
