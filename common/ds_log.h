/*
 * ds_log.h — structured logs: one line per event, key=value fields.
 *
 *   ts=2026-11-22T14:00:00.123Z level=warn comp=redis msg="reconnecting" attempt=3
 *
 * Lines go to stderr (stdout stays free for data: `broker` prints its
 * bootstrap servers there).  ds_log_ratelimited() lets a repeating fault log
 * once per interval with a count of what it suppressed.  Any thread.
 * Never pass secrets: use ds_log_redact_url() for URLs with credentials.
 */
#ifndef DS_LOG_H
#define DS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "ds_err.h"

typedef enum { DS_LOG_DEBUG, DS_LOG_INFO, DS_LOG_WARN, DS_LOG_ERROR } ds_log_level_t;

void ds_log_set_level(ds_log_level_t lvl);
ds_log_level_t ds_log_get_level(void);
/** Parse "debug|info|warn|error"; -1 when unknown. */
int ds_log_level_parse(const char *s);
/** Use JSON lines instead of key=value. */
void ds_log_set_json(int on);

/** `comp` is the component (scorer, watcher, kafka, redis…); `fmt` formats
 *  the message, followed by already formatted key=value fields in fields
 *  (may be NULL). */
void ds_log(ds_log_level_t lvl, const char *comp, const char *fmt, ...) DS_PRINTF(3, 4);

/** Rate-limited log: at most one line per `interval_ms` for this `state`;
 *  suppressed lines are counted and reported in the next one. */
typedef struct ds_log_rl {
    int64_t last_ms;
    uint64_t suppressed;
} ds_log_rl_t;
void ds_log_rl(ds_log_rl_t *state, int64_t interval_ms, ds_log_level_t lvl, const char *comp,
               const char *fmt, ...) DS_PRINTF(5, 6);

/** Copy url to out with any password replaced by "***". */
void ds_log_redact_url(const char *url, char *out, size_t out_size);

#define DS_DEBUG(comp, ...) ds_log(DS_LOG_DEBUG, comp, __VA_ARGS__)
#define DS_INFO(comp, ...) ds_log(DS_LOG_INFO, comp, __VA_ARGS__)
#define DS_WARN(comp, ...) ds_log(DS_LOG_WARN, comp, __VA_ARGS__)
#define DS_ERROR(comp, ...) ds_log(DS_LOG_ERROR, comp, __VA_ARGS__)

#endif
