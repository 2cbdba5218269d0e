/*
 * ds_fmt.c — see ds_fmt.h.
 */
#include "ds_fmt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ds_fmt_u64(char *out, uint64_t v) {
    char tmp[DS_FMT_INT_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

size_t ds_fmt_i64(char *out, int64_t v) {
    if (v >= 0)
        return ds_fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    /* the magnitude of INT64_MIN does not fit in int64_t */
    return 1 + ds_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

size_t ds_fmt_checkpoint(char *out, int32_t partition, int64_t offset) {
    size_t o = ds_fmt_i64(out, partition);
    out[o++] = ':';
    return o + ds_fmt_i64(out + o, offset);
}

size_t ds_fmt_g6(char *out, size_t n, double v) {
    /* k/10 with |k| < 100,000 has at most six significant digits, so %.6g
     * prints it exactly: the integer part, then ".d" unless d is 0 (%g
     * drops trailing zeros).  The double must be the one nearest k/10,
     * which is what the division gives; -0 and the rest go to printf. */
    double x = v * 10.0;
    if (n >= 32 && x > -100000.0 && x < 100000.0 && !(v == 0.0 && signbit(v))) {
        long k = lround(x);
        if ((double)k / 10.0 == v) {
            size_t o = 0;
            unsigned long m = (unsigned long)(k < 0 ? -k : k);
            if (k < 0)
                out[o++] = '-';
            o += ds_fmt_u64(out + o, m / 10);
            if (m % 10) {
                out[o++] = '.';
                out[o++] = (char)('0' + m % 10);
                out[o] = '\0';
            }
            return o;
        }
    }
    int w = snprintf(out, n, "%.6g", v);
    return w < 0 ? 0 : (size_t)w < n ? (size_t)w : n - 1;
}

size_t ds_fmt_join(char *out, size_t n, ...) {
    va_list ap;
    va_start(ap, n);
    size_t o = 0;
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        size_t l = strlen(s);
        if (l > n - 1 - o)
            l = n - 1 - o;
        memcpy(out + o, s, l);
        o += l;
    }
    va_end(ap);
    out[o] = '\0';
    return o;
}

size_t ds_fmt_double(char *out, double v) {
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, DS_FMT_DOUBLE_MAX, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return n > 0 ? (size_t)n : 0;
}
