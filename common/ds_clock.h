/*
 * ds_clock.h — time in milliseconds since the epoch.
 * ds_clock_now_ms(): wall clock (CLOCK_REALTIME); ds_clock_mono_ms():
 * monotonic, for timeouts and latency.  Any thread.
 */
#ifndef DS_CLOCK_H
#define DS_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

int64_t ds_clock_now_ms(void);
int64_t ds_clock_mono_ms(void);
int64_t ds_clock_mono_us(void);
/** Format ms-since-epoch as ISO-8601 UTC with ms ("2026-11-22T14:00:00.123Z"). */
void ds_clock_format(int64_t ms, char *out, unsigned out_size);
/** Parse a time given on a command line: ISO-8601 UTC ("2026-11-22",
 *  "2026-11-22T14:00:00", optional ".mmm" and "Z"), "now", or "now-Nd" /
 *  "now+Nd" (N days, may be fractional).  False when s is none of these. */
bool ds_clock_parse(const char *s, int64_t *ms);
/** Sleep ms milliseconds (interrupted early by signals). */
void ds_clock_sleep_ms(int64_t ms);

#endif
