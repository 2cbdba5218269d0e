/*
 * ds_redis.h — a pipelined hiredis connection that survives outages.
 *
 * Usage per batch: ds_redis_cmd() appends commands (nothing is sent until
 * ds_redis_run()), ds_redis_run() sends them all and reads every reply,
 * handing each to a callback.  Any I/O or protocol error kills the context:
 * the next ds_redis_run() reconnects first (AUTH, SELECT, and the command
 * timeout again: hiredis 0.14 drops it on reconnect — PITFALLS), and the
 * caller re-runs its whole batch, which must therefore be idempotent.
 * Single-threaded: one ds_redis_t per worker thread.
 */
#ifndef DS_REDIS_H
#define DS_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "ds_config.h"
#include "ds_err.h"

typedef struct ds_redis ds_redis_t;

/** A client for url (redis://[user:password@]host:port[/db]); does not
 *  connect yet.  NULL with errstr on a bad URL. */
ds_redis_t *ds_redis_new(const char *url, int timeout_ms, char *errstr, size_t errstr_size);
void ds_redis_destroy(ds_redis_t *r);

/** Connect now if not connected.  DS_ERR_IO when unreachable. */
ds_err_t ds_redis_connect(ds_redis_t *r) DS_WUR;
bool ds_redis_connected(const ds_redis_t *r);

/** Append one command (argv with explicit lengths; lens may be NULL for
 *  NUL-terminated strings) to the pending pipeline. */
void ds_redis_cmd(ds_redis_t *r, int argc, const char **argv, const size_t *lens);
/** Number of pending commands. */
size_t ds_redis_pending(const ds_redis_t *r);
/** Drop the pending commands without sending them. */
void ds_redis_discard(ds_redis_t *r);

typedef void (*ds_redis_reply_fn)(void *opaque, size_t index, const redisReply *reply);
/** Send the pending commands and read their replies (on_reply may be NULL).
 *  An error reply (e.g. EXECABORT) fails the run with DS_ERR_IO unless
 *  on_reply is given, which then sees it.  The pipeline is emptied
 *  either way; on failure the caller rebuilds and re-runs it. */
ds_err_t ds_redis_run(ds_redis_t *r, ds_redis_reply_fn on_reply, void *opaque) DS_WUR;

/** Last error text (never contains the password). */
const char *ds_redis_errstr(const ds_redis_t *r);

#endif
