/*
 * state_dump.h — test helpers for fixtures of the scorer's Redis state:
 * event streams as JSON lines, a binary-safe text dump of every key under
 * a prefix and its restore, and a text form of LeadScore/AccountScore
 * records to compare runs by output id.
 *
 * Dump format: one Redis command per line, every argument double-quoted,
 * bytes outside printable ASCII as \xHH and `"`/`\` escaped:
 *   HSET "ds:{acct:A}" "as_of" "1704067200000" "blob" "DSSU\x02..." ...
 *   SADD "ds:{acct:A}:leads" "L-1" "L-2"
 * (strings: SET; lists: RPUSH; sorted sets: ZADD with scores as %.17g;
 * a key with a time to live is followed by PEXPIRE).  Keys, hash fields
 * and set members are sorted bytewise, so the same state gives the same
 * file.  It is the quoting redis-cli reads, so `redis-cli -p PORT < FILE`
 * restores it too; lines starting with `#` and empty lines are skipped by
 * ds_sd_restore (redis-cli would send them).
 *
 * Everything here calls cmocka's fail_msg (or exits, outside a test) on
 * errors: these are test tools.
 */
#ifndef DS_STATE_DUMP_H
#define DS_STATE_DUMP_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "events.h"
#include "harness.h"

/* ---- event streams (JSON lines) ------------------------------------------ */

/** Write one MarketingEvent as a JSON line (every field of the record
 *  except attributes; null for absent optional fields). */
void ds_sd_event_write(FILE *f, const ds_ma_event_t *ev);

/** Events read from a JSON-lines file; strings live until ds_sd_events_free. */
typedef struct ds_sd_events {
    ds_ma_event_t *ev;
    size_t n;
    void *owned; /* the parsed documents and shared_with arrays */
} ds_sd_events_t;

/** Read a file written with ds_sd_event_write; false (and a message on
 *  stderr) when a line does not parse. */
bool ds_sd_events_load(const char *path, ds_sd_events_t *out);
void ds_sd_events_free(ds_sd_events_t *e);

/* ---- Redis state ----------------------------------------------------------- */

/** A connection to the env's redis-server, database db. */
redisContext *ds_sd_connect(const ds_h_env_t *env, int db);

/** Append to f every key of the current database that starts with prefix,
 *  in the dump format; returns the number of keys. */
size_t ds_sd_dump(redisContext *c, const char *prefix, FILE *f);

/** Send every command of a dump file to c; returns the number sent.
 *  Fails on a line that does not parse or a command Redis refuses. */
size_t ds_sd_restore(redisContext *c, const char *path);

/** Append the dump-format quoting of the n bytes at p to the buffer. */
void ds_sd_quote(ds_buf_t *b, const void *p, size_t n);

/* ---- outputs ----------------------------------------------------------------- */

/** One line of text for a LeadScore or AccountScore record read back from
 *  a topic: `lead|account "<output id>" <every field of the record>`,
 *  doubles as %.17g (equal text, equal value).  `kind` is "lead" or
 *  "account".  Returns a malloc'ed string; fails when the record does not
 *  decode or carries no dealsignal.id header. */
char *ds_sd_render_output(const char *kind, const ds_h_record_t *r);

#endif
