/*
 * ds_backoff.c — the retry wait: doubled after each failure, capped.
 *
 * Invariant: 0 < ms <= max_ms at all times (a first wait above the
 * ceiling is the ceiling), so a retry loop never waits longer than
 * max_ms at once, however long the outage.
 */
#include "ds_backoff.h"

ds_backoff_t ds_backoff_make(int64_t min_ms, int64_t max_ms) {
    ds_backoff_t b = {min_ms < max_ms ? min_ms : max_ms, max_ms};
    return b;
}

int64_t ds_backoff_next(ds_backoff_t *b) {
    int64_t now = b->ms;
    b->ms = b->ms > b->max_ms / 2 ? b->max_ms : b->ms * 2;
    return now;
}

int64_t ds_backoff_peek(const ds_backoff_t *b) {
    return b->ms;
}
