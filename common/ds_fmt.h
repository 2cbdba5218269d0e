/*
 * ds_fmt.h — text formatting without printf for the per-event paths (the
 * Redis fields and keys written at every flush).  snprintf parses its
 * format string and, for doubles, runs the general conversion every time;
 * these do only the work the values need and give the same text.
 */
#ifndef DS_FMT_H
#define DS_FMT_H

#include <stddef.h>
#include <stdint.h>

/** Longest text of ds_fmt_i64/ds_fmt_u64, NUL included. */
#define DS_FMT_INT_MAX 21

/** Decimal text of v into out (DS_FMT_INT_MAX bytes), NUL-terminated;
 *  returns its length. */
size_t ds_fmt_u64(char *out, uint64_t v);
size_t ds_fmt_i64(char *out, int64_t v);

/** The checkpoint text "partition:offset" into out (DS_FMT_CKPT_MAX bytes). */
#define DS_FMT_CKPT_MAX (2 * DS_FMT_INT_MAX)
size_t ds_fmt_checkpoint(char *out, int32_t partition, int64_t offset);

/** Exactly snprintf(out, n, "%.6g", v) (n >= 32); values with at most one
 *  decimal and six significant digits (scores, consensus) skip printf. */
size_t ds_fmt_g6(char *out, size_t n, double v);

/** The shortest text that reads back as the same double (0.3, not
 *  0.29999999999999999; 20696875.2, not 2.06969e+07) into out
 *  (DS_FMT_DOUBLE_MAX bytes); returns its length. */
#define DS_FMT_DOUBLE_MAX 32
size_t ds_fmt_double(char *out, double v);

/** The NULL-terminated list of strings, one after the other, into out (n
 *  bytes, n >= 1), cut at n - 1; returns the length written. */
size_t ds_fmt_join(char *out, size_t n, ...) __attribute__((sentinel));

#endif
