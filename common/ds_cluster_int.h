/*
 * ds_cluster_int.h — what the two files of the cluster client share and
 * nothing else includes: the client's state (struct ds_cluster, its nodes
 * and its ring of units) and the functions one calls in the other (prefix
 * ds_cl_).
 *
 *   ds_cluster.c       the client: lifecycle, the slot map, units and
 *                      their routing, repairs, send/collect, the
 *                      synchronous pipeline
 *   ds_cluster_node.c  one master's connection: dial and identity, the
 *                      bytes to write, the replies owed and matching each
 *                      to its unit, a lost connection, per-node metrics
 *
 * Single-threaded, as the client.
 */
#ifndef DS_CLUSTER_INT_H
#define DS_CLUSTER_INT_H

#include <sys/uio.h>

#include "ds_buf.h"
#include "ds_cluster.h"
#include "ds_log.h"
#include "ds_redis.h"

typedef struct qent {
    uint64_t unit;
    uint64_t mark;    /* a WAIT: the node's wseq when it was written */
    uint32_t replies; /* still owed by this node for that unit */
} qent_t;

typedef struct node {
    ds_cluster_addr_t addr;
    char name[270]; /* host:port */
    redisContext *ctx;
    bool master; /* owns slots in the current map */
    bool noscript; /* answered NOSCRIPT: connect again (which loads it) once nothing is owed */
    /* writes routed here, and how many of them a WAIT confirmed: a WAIT
     * goes to every node with wseq > waited */
    uint64_t wseq, waited;
    struct iovec *out; /* bytes still to write: out[out_head .. out_n) */
    size_t out_head, out_n, out_cap;
    qent_t *q; /* replies owed, in order: ring of q_cap (a power of 2) */
    size_t q_head, q_len, q_cap;
    int64_t progress_ms;    /* last reply read, or first reply owed since */
    ds_redis_ident_t ident; /* this connection's, and the one dropped in flight */
    int known;              /* its entry in the known table (-1: none) */
    ds_redis_lost_t lost;   /* writes no WAIT confirmed went with it */
    ds_counter_t *m_err[DS_CLUSTER__KINDS];
} node_t;

enum { U_SENT, U_DONE };

typedef struct unit {
    const char *p;
    size_t len;
    const char *key; /* of its first command that keeps its key (the proof) */
    size_t key_len;
    size_t keep;      /* run: index of its first command's reply in kept[] */
    uint32_t ncmds;   /* commands (replies owed to the caller) */
    uint32_t left;    /* replies still to read, ASKING's included */
    uint32_t got;     /* replies of its commands read in this attempt */
    int32_t slot;     /* -1: no key */
    int32_t node;     /* where this attempt went (-1: several, a WAIT) */
    int32_t ask;      /* node named by -ASK: the next attempt goes there */
    long long wait_n; /* a WAIT: replicas each node must reach (else -1) */
    uint8_t state;
    uint8_t kind;   /* this attempt's outcome so far */
    uint8_t asking; /* this attempt began with ASKING (its reply comes first) */
    uint8_t tries;  /* attempts so far */
    uint8_t bcast;  /* a PING alone: to every master, one reply for the caller */
} unit_t;

struct ds_cluster {
    ds_redis_url_t url;
    int timeout_ms;
    ds_cluster_addr_t *seeds;
    size_t nseeds;
    node_t *nodes;
    size_t nnodes;
    int16_t owner[DS_CLUSTER_NSLOTS];
    bool have_map;
    size_t nmasters;
    /* units from the oldest not yet reported: ring of u_cap (a power of 2) */
    unit_t *u;
    size_t u_cap;
    uint64_t u_head, u_tail;
    size_t inflight; /* commands of the units in the ring */
    uint64_t first_failed;
    bool need_refresh, need_backoff, fatal;
    bool timed_out; /* a node did not answer within the timeout: fail at once */
    bool down_seen; /* a node was lost since the last success: a failure unloads the map */
    ds_redis_known_t *known;
    const char *script, *script_sha; /* not copied: they outlive the client */
    /* the synchronous pipeline: commands formatted here until run */
    ds_buf_t sbuf;
    size_t scount;
    redisReply **kept; /* every final reply of a run, by command */
    size_t nkept;
    bool keeping; /* a run is reading its replies into kept[] */
    char err[600];
    ds_metrics_t *metrics;
    char labels[128];
    ds_counter_t *m_redirect[DS_CLUSTER__KINDS];
    ds_gauge_t *m_nodes;
    ds_log_rl_t rl_map;
};

static inline unit_t *ds_cl_unit_at(const ds_cluster_t *c, uint64_t k) {
    return &c->u[k & (c->u_cap - 1)];
}

/* ---- ds_cluster.c ---- */

/* The text ds_cluster_errstr() returns. */
void ds_cl_set_err(ds_cluster_t *c, const char *fmt, ...) DS_PRINTF(2, 3);
/* Unit k has all its replies: DONE, its failure noted for the repair (or
 * its key kept as the node's proof). */
void ds_cl_unit_finish(ds_cluster_t *c, uint64_t k);

/* ---- ds_cluster_node.c ---- */

/* Count an error reply or a failed connection of node ni (metrics). */
void ds_cl_count_error(ds_cluster_t *c, int ni, ds_cluster_kind_t k);
/* The index of the node at a (added, not connected, when new); may move
 * c->nodes. */
int ds_cl_node_for(ds_cluster_t *c, const ds_cluster_addr_t *a);
/* Connect node ni (and check its identity) unless it is connected. */
bool ds_cl_node_connect(ds_cluster_t *c, int ni);
/* Close node ni's connection and forget its queues. */
void ds_cl_node_reset(node_t *n);
/* Node n is gone or no longer a master: note its unconfirmed writes lost. */
void ds_cl_node_forget_writes(node_t *n);
/* Node ni's connection is gone: every reply it owed is lost. */
void ds_cl_node_fail(ds_cluster_t *c, int ni, const char *why);
/* Node n owes `replies` replies to unit `unit` (a WAIT: mark its wseq). */
void ds_cl_q_push(node_t *n, uint64_t unit, uint32_t replies, uint64_t mark);
/* Queue len bytes at p (not copied) for node n. */
void ds_cl_out_push(node_t *n, const void *p, size_t len);
/* Write node ni's queued bytes (all, or what the socket takes now). */
bool ds_cl_node_write(ds_cluster_t *c, int ni, bool block);
/* Read one reply from node ni, waiting for it; false: connection lost. */
bool ds_cl_read_one(ds_cluster_t *c, int ni);
/* Read the replies every node has already sent, without waiting. */
void ds_cl_read_avail_all(ds_cluster_t *c);

#endif
