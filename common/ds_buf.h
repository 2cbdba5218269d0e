/*
 * ds_buf.h — growable byte buffer and a bump arena.
 *
 * ds_buf_t: owned bytes that grow on demand up to an optional cap
 * (0 = no cap).  Reset keeps the allocation, so a buffer reused per
 * message allocates only while it is still growing (no per-event malloc
 * in steady state).
 *
 * ds_arena_t: a chain of blocks for the strings and arrays of one decoded
 * message; ds_arena_reset() makes every earlier pointer invalid and keeps
 * the first block.  Single-threaded; the owner of the struct owns the
 * memory; *_free accept a zeroed struct.
 */
#ifndef DS_BUF_H
#define DS_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ds_err.h"

typedef struct ds_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
    size_t limit; /* 0: unbounded */
} ds_buf_t;

void ds_buf_init(ds_buf_t *b, size_t limit);
void ds_buf_free(ds_buf_t *b);
static inline void ds_buf_reset(ds_buf_t *b) { b->len = 0; }
/** Ensure room for `extra` more bytes. DS_ERR_LIMIT_EXCEEDED past limit. */
ds_err_t ds_buf_reserve(ds_buf_t *b, size_t extra) DS_WUR;
ds_err_t ds_buf_appendf(ds_buf_t *b, const char *fmt, ...) DS_PRINTF(2, 3) DS_WUR;

/* Appending is inline (state serialisation and RESP formatting call it a
 * few dozen times per event); only growing the buffer is a call. */
DS_WUR static inline ds_err_t ds_buf_append(ds_buf_t *b, const void *p, size_t n) {
    if (n > b->cap - b->len || (b->limit && n > b->limit - b->len)) {
        ds_err_t e = ds_buf_reserve(b, n);
        if (e)
            return e;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return DS_ERR_OK;
}

/* Fixed-width (little-endian) and varint helpers for our own binary state
 * encoding. */
DS_WUR static inline ds_err_t ds_buf_put_u8(ds_buf_t *b, uint8_t v) {
    return ds_buf_append(b, &v, 1);
}

DS_WUR static inline ds_err_t ds_buf_put_i64(ds_buf_t *b, int64_t v) {
    unsigned char x[8];
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        x[i] = (unsigned char)(u >> (8 * i));
    return ds_buf_append(b, x, 8);
}

DS_WUR static inline ds_err_t ds_buf_put_f64(ds_buf_t *b, double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return ds_buf_put_i64(b, (int64_t)u);
}

DS_WUR static inline ds_err_t ds_buf_put_varint(ds_buf_t *b, uint64_t v) {
    if (b->cap - b->len >= 10 && (!b->limit || b->limit - b->len >= 10)) {
        /* room for the longest: written in place (no memcpy of a
         * variable length, which is a libc call) */
        unsigned char *d = b->data + b->len, *p = d;
        while (v >= 0x80) {
            *p++ = (unsigned char)(v | 0x80);
            v >>= 7;
        }
        *p++ = (unsigned char)v;
        b->len += (size_t)(p - d);
        return DS_ERR_OK;
    }
    unsigned char x[10];
    size_t n = 0;
    do {
        unsigned char c = v & 0x7f;
        v >>= 7;
        if (v)
            c |= 0x80;
        x[n++] = c;
    } while (v);
    return ds_buf_append(b, x, n);
}

/* Zigzag: 0, -1, 1, -2 … as 0, 1, 2, 3 … so small magnitudes of either
 * sign make short varints. */
static inline uint64_t ds_zigzag(int64_t v) {
    return ((uint64_t)v << 1) ^ (0 - (uint64_t)(v < 0));
}
static inline int64_t ds_unzigzag(uint64_t u) { return (int64_t)((u >> 1) ^ (0 - (u & 1))); }

/** Zigzag varint: a small magnitude of either sign takes few bytes. */
DS_WUR static inline ds_err_t ds_buf_put_svarint(ds_buf_t *b, int64_t v) {
    return ds_buf_put_varint(b, ds_zigzag(v));
}

/** A time as its (wrapping) distance to a base time, as a zigzag varint:
 *  a few bytes for times near the base (ds_get_time reads it back). */
DS_WUR static inline ds_err_t ds_buf_put_time(ds_buf_t *b, int64_t base, int64_t t) {
    return ds_buf_put_svarint(b, (int64_t)((uint64_t)base - (uint64_t)t));
}

/** A double in as few bytes as is exact: an integer of magnitude up to
 *  2^53 (not -0) as the varint of its zigzag value times 2 (1 byte for
 *  points like 10 or -6); any other value as the varint 1, then its
 *  8 bytes. */
DS_WUR static inline ds_err_t ds_buf_put_f64c(ds_buf_t *b, double v) {
    if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double)(int64_t)v &&
        !(v == 0 && __builtin_signbit(v)))
        return ds_buf_put_varint(b, ds_zigzag((int64_t)v) << 1);
    ds_err_t e = ds_buf_put_varint(b, 1);
    return e ? e : ds_buf_put_f64(b, v);
}

/** Length-prefixed (varint of length + 1) bytes. */
DS_WUR static inline ds_err_t ds_buf_put_strn(ds_buf_t *b, const char *s, size_t n) {
    ds_err_t e = ds_buf_put_varint(b, (uint64_t)n + 1);
    return e ? e : ds_buf_append(b, s, n);
}

/** Length-prefixed (varint) string; NULL is written as a distinct marker. */
DS_WUR static inline ds_err_t ds_buf_put_str(ds_buf_t *b, const char *s) {
    return s ? ds_buf_put_strn(b, s, strlen(s)) : ds_buf_put_varint(b, 0);
}

/** The varint at *p, which it moves past it; DS_ERR_UNDECODABLE when it
 *  runs to end or past 64 bits (*v and *p are then unset and unmoved).  Shared by every
 *  reader of varints (this one, the Avro decoder's). */
DS_WUR static inline ds_err_t ds_varint_get(const unsigned char **p, const unsigned char *end,
                                            uint64_t *v) {
    const unsigned char *q = *p;
    if (q < end && !(*q & 0x80)) { /* one byte: most lengths, counts and indexes */
        *v = *q;
        *p = q + 1;
        return DS_ERR_OK;
    }
    uint64_t out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (q >= end)
            return DS_ERR_UNDECODABLE;
        unsigned char c = *q++;
        out |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = out;
            *p = q;
            return DS_ERR_OK;
        }
    }
    return DS_ERR_UNDECODABLE;
}

/* Reader over bytes produced by the ds_buf_put_* functions.  Every get
 * returns DS_ERR_UNDECODABLE when the input is short or malformed. */
typedef struct ds_reader {
    const unsigned char *p;
    const unsigned char *end;
} ds_reader_t;

static inline void ds_reader_init(ds_reader_t *r, const void *p, size_t n) {
    r->p = (const unsigned char *)p;
    r->end = r->p + n;
}
ds_err_t ds_get_u8(ds_reader_t *r, uint8_t *v) DS_WUR;
ds_err_t ds_get_i64(ds_reader_t *r, int64_t *v) DS_WUR;
ds_err_t ds_get_f64(ds_reader_t *r, double *v) DS_WUR;
ds_err_t ds_get_varint(ds_reader_t *r, uint64_t *v) DS_WUR;
ds_err_t ds_get_svarint(ds_reader_t *r, int64_t *v) DS_WUR;
/** A count of items that follow, each of them one byte at least: a varint
 *  no larger than the bytes left and below INT32_MAX (else undecodable). */
ds_err_t ds_get_count(ds_reader_t *r, uint32_t *n) DS_WUR;
ds_err_t ds_get_time(ds_reader_t *r, int64_t base, int64_t *t) DS_WUR;
ds_err_t ds_get_f64c(ds_reader_t *r, double *v) DS_WUR;
/** Returns a malloc'ed NUL-terminated copy (caller frees) or NULL for the
 *  NULL marker. */
ds_err_t ds_get_str(ds_reader_t *r, char **s) DS_WUR;

typedef struct ds_arena_block ds_arena_block_t;
typedef struct ds_arena {
    ds_arena_block_t *head;
    size_t used_total;
    size_t limit; /* 0: unbounded; over it allocation returns NULL */
} ds_arena_t;

void ds_arena_init(ds_arena_t *a, size_t limit);
void ds_arena_reset(ds_arena_t *a);
void ds_arena_free(ds_arena_t *a);
/** 8-byte aligned memory valid until the next reset; NULL when over limit. */
void *ds_arena_alloc(ds_arena_t *a, size_t n);
/** Copy of n bytes plus a NUL terminator. */
char *ds_arena_strndup(ds_arena_t *a, const char *s, size_t n);

/** An array of *cap elements of `size` bytes, all in use, reallocated to
 *  twice as many (`first` when *cap is 0) so that appends are amortised
 *  O(1): returns the new array and sets *cap; NULL, the array and *cap
 *  unchanged, when out of memory. */
void *ds_grow(void *arr, size_t *cap, size_t size, size_t first);

/** strlcpy-like bounded copy that always terminates; returns strlen(src). */
size_t ds_strlcpy(char *dst, const char *src, size_t size);

/** Whether s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 *  surrogates, nothing past U+10FFFF). */
bool ds_utf8_valid(const char *s, size_t n);

#endif
