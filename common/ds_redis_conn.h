/*
 * ds_redis_conn.h — what ds_redis.c and ds_cluster.c share about one
 * hiredis connection: RESP formatting, dialling with the URL's
 * credentials, and each connection's identity (which server incarnation it
 * talks to, and whether that one came back empty).  Internal to common/:
 * the workers see ds_redis.h only.
 */
#ifndef DS_REDIS_CONN_H
#define DS_REDIS_CONN_H

#include <hiredis/hiredis.h>

#include "ds_redis.h"

/** The view of a hiredis reply handed to ds_redis_reply_fn callbacks. */
static inline const ds_reply_t *ds_reply_of(const redisReply *r) {
    return (const ds_reply_t *)(const void *)r;
}

/** Append one command in RESP to b. */
ds_err_t ds_redis_format(ds_buf_t *b, int argc, const char **argv, const size_t *lens) DS_WUR;
/** Connect to host:port with url's credentials (AUTH; no SELECT), the
 *  command timeout set; counts as a (re)connection for ds_redis_epoch().
 *  NULL with errstr on failure; *refused is set when the server refused
 *  the credentials (retrying cannot help). */
redisContext *ds_redis_dial(const ds_redis_url_t *url, const char *host, int port, int timeout_ms,
                            bool *refused, char *errstr, size_t errstr_size);

/** The identity of one connection: the server's run_id and the CLIENT ID,
 *  and the connection an earlier drop left with commands in flight. */
typedef struct ds_redis_ident {
    long long client_id; /* 0: unknown */
    char run_id[48];     /* "": unknown */
    long long orphan_id;
    char orphan_run_id[48];
    bool kill_refused; /* CLIENT KILL not allowed: said once */
} ds_redis_ident_t;
/** The connection is about to be freed; `in_flight`: with commands whose
 *  replies were not read (they may still run: the next connection to the
 *  same server ends it). */
void ds_redis_ident_drop(ds_redis_ident_t *id, bool in_flight);
/** On a new connection c to server `name` (host:port), before anything is
 *  sent on it: read its run_id and CLIENT ID, end the orphan of id if it
 *  was to the same server, and check the known table (may be NULL).
 *  False, with err, when the connection failed meanwhile (c->err set) or
 *  the server cannot answer the check yet (LOADING, CLUSTERDOWN …: not to
 *  be used now, the next connection checks again). */
bool ds_redis_ident_connect(redisContext *c, ds_redis_ident_t *id, ds_redis_known_t *known,
                            const char *name, char *err, size_t err_size) DS_WUR;
/** The known table's entry for server `name` (added when new), for
 *  ds_redis_known_proof(); -1 without a table or memory. */
int ds_redis_known_server(ds_redis_known_t *k, const char *name);
/** A write of `key` was confirmed on that server. */
void ds_redis_known_proof(ds_redis_known_t *k, int server, const char *key, size_t len);
/** True when that incarnation (run_id) of server `server` was found to
 *  have come back empty. */
bool ds_redis_known_gone(const ds_redis_known_t *k, int server, const char *run_id);

/** True (once) when a server of the table was found to have come back
 *  empty since the last call; why says which and how it was told. */
bool ds_redis_known_take_emptied(ds_redis_known_t *k, char *why, size_t why_size);

/** Writes no WAIT confirmed that went with connections to one server. */
typedef struct ds_redis_lost {
    bool lost;
    bool mixed;      /* to more than one incarnation of the server */
    char run_id[48]; /* the incarnation they went to ("": unknown) */
} ds_redis_lost_t;
/** They went with a connection to the incarnation run_id. */
void ds_redis_lost_note(ds_redis_lost_t *l, const char *run_id);
/** Whether there are any that count, and forget them: not those to an
 *  incarnation of `server` that came back empty (the state written back
 *  from memory replaces them). */
bool ds_redis_lost_take(ds_redis_lost_t *l, const ds_redis_known_t *k, int server);

/** A script the workers' writes run by EVALSHA, loaded on every new
 *  connection (in a cluster, each node's) before anything else is sent on
 *  it: then a server that restarted, failed over or flushed its scripts
 *  has it again by the time a write retried after the error reaches it. */
typedef enum {
    DS_REDIS_SCRIPT_OK,
    DS_REDIS_SCRIPT_DOWN,    /* no answer, or an error that may pass */
    DS_REDIS_SCRIPT_REFUSED, /* refused (ACL), or not the SHA-1 expected */
} ds_redis_script_t;
ds_redis_script_t ds_redis_script_load(redisContext *c, const char *body, const char *sha,
                                       const char *name, char *err, size_t err_size);

/** True when a command of this name leaves its key in place (its key can
 *  then prove that the server holds what was written). */
bool ds_redis_cmd_keeps_key(const char *name, size_t len);

#endif
