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

#include <stddef.h>
#include <stdint.h>

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
ds_err_t ds_buf_append(ds_buf_t *b, const void *p, size_t n) DS_WUR;
ds_err_t ds_buf_appendf(ds_buf_t *b, const char *fmt, ...) DS_PRINTF(2, 3) DS_WUR;
/* Fixed-width and varint helpers for our own binary state encoding. */
ds_err_t ds_buf_put_u8(ds_buf_t *b, uint8_t v) DS_WUR;
ds_err_t ds_buf_put_i64(ds_buf_t *b, int64_t v) DS_WUR;
ds_err_t ds_buf_put_f64(ds_buf_t *b, double v) DS_WUR;
ds_err_t ds_buf_put_varint(ds_buf_t *b, uint64_t v) DS_WUR;
/** Length-prefixed (varint) string; NULL is written as a distinct marker. */
ds_err_t ds_buf_put_str(ds_buf_t *b, const char *s) DS_WUR;

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

/** strlcpy-like bounded copy that always terminates; returns strlen(src). */
size_t ds_strlcpy(char *dst, const char *src, size_t size);

#endif
