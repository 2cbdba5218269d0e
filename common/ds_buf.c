/*
 * ds_buf.c — growable buffer, binary reader/writer, bump arena.
 *
 * Growth doubles so appends are amortised O(1).  The arena keeps its first
 * block across resets: one decoded message at a time fits in it once the
 * stream has warmed up, so decoding allocates nothing in steady state.
 */
#include "ds_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ds_buf_init(ds_buf_t *b, size_t limit) {
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

void ds_buf_free(ds_buf_t *b) {
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

ds_err_t ds_buf_reserve(ds_buf_t *b, size_t extra) {
    if (b->len + extra < b->len)
        return DS_ERR_LIMIT_EXCEEDED;
    size_t need = b->len + extra;
    if (b->limit && need > b->limit)
        return DS_ERR_LIMIT_EXCEEDED;
    if (need <= b->cap)
        return DS_ERR_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p)
        return DS_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return DS_ERR_OK;
}

ds_err_t ds_buf_appendf(ds_buf_t *b, const char *fmt, ...) {
    va_list ap;
    /* one pass when it fits in the room already there */
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(room ? (char *)b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return DS_ERR_INVAL;
    if ((size_t)n < room && (!b->limit || (size_t)n <= b->limit - b->len)) {
        b->len += (size_t)n;
        return DS_ERR_OK;
    }
    ds_err_t e = ds_buf_reserve(b, (size_t)n + 1);
    if (e)
        return e;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return DS_ERR_OK;
}

ds_err_t ds_get_u8(ds_reader_t *r, uint8_t *v) {
    if (r->p >= r->end)
        return DS_ERR_UNDECODABLE;
    *v = *r->p++;
    return DS_ERR_OK;
}

ds_err_t ds_get_i64(ds_reader_t *r, int64_t *v) {
    if (r->end - r->p < 8)
        return DS_ERR_UNDECODABLE;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    *v = (int64_t)u;
    return DS_ERR_OK;
}

ds_err_t ds_get_f64(ds_reader_t *r, double *v) {
    int64_t i;
    ds_err_t e = ds_get_i64(r, &i);
    if (!e)
        memcpy(v, &i, sizeof(*v));
    return e;
}

ds_err_t ds_get_varint(ds_reader_t *r, uint64_t *v) {
    return ds_varint_get(&r->p, r->end, v);
}

ds_err_t ds_get_count(ds_reader_t *r, uint32_t *n) {
    uint64_t v;
    ds_err_t e = ds_get_varint(r, &v);
    if (e)
        return e;
    if (v > (uint64_t)(r->end - r->p) || v >= INT32_MAX)
        return DS_ERR_UNDECODABLE;
    *n = (uint32_t)v;
    return DS_ERR_OK;
}

ds_err_t ds_get_svarint(ds_reader_t *r, int64_t *v) {
    uint64_t u;
    ds_err_t e = ds_get_varint(r, &u);
    if (!e)
        *v = ds_unzigzag(u);
    return e;
}

ds_err_t ds_get_time(ds_reader_t *r, int64_t base, int64_t *t) {
    int64_t d;
    ds_err_t e = ds_get_svarint(r, &d);
    if (!e)
        *t = (int64_t)((uint64_t)base - (uint64_t)d);
    return e;
}

ds_err_t ds_get_f64c(ds_reader_t *r, double *v) {
    uint64_t u;
    ds_err_t e = ds_get_varint(r, &u);
    if (e)
        return e;
    if (u == 1)
        return ds_get_f64(r, v);
    if (u & 1)
        return DS_ERR_UNDECODABLE;
    int64_t i = ds_unzigzag(u >> 1);
    if (i < -9007199254740992LL || i > 9007199254740992LL)
        return DS_ERR_UNDECODABLE;
    *v = (double)i;
    return DS_ERR_OK;
}

ds_err_t ds_get_str(ds_reader_t *r, char **s) {
    uint64_t n;
    ds_err_t e = ds_get_varint(r, &n);
    if (e)
        return e;
    if (n == 0) {
        *s = NULL;
        return DS_ERR_OK;
    }
    n -= 1;
    if ((uint64_t)(r->end - r->p) < n)
        return DS_ERR_UNDECODABLE;
    char *p = malloc((size_t)n + 1);
    if (!p)
        return DS_ERR_NOMEM;
    memcpy(p, r->p, (size_t)n);
    p[n] = '\0';
    r->p += n;
    *s = p;
    return DS_ERR_OK;
}

struct ds_arena_block {
    ds_arena_block_t *next;
    size_t size;
    size_t used;
    unsigned char data[];
};

void ds_arena_init(ds_arena_t *a, size_t limit) {
    memset(a, 0, sizeof(*a));
    a->limit = limit;
}

static void free_blocks(ds_arena_block_t *b) {
    while (b) {
        ds_arena_block_t *n = b->next;
        free(b);
        b = n;
    }
}

void ds_arena_reset(ds_arena_t *a) {
    if (!a->head)
        return;
    /* keep the largest block: the newest one is at the head */
    ds_arena_block_t *keep = a->head;
    free_blocks(keep->next);
    keep->next = NULL;
    keep->used = 0;
    a->used_total = 0;
}

void ds_arena_free(ds_arena_t *a) {
    if (!a)
        return;
    free_blocks(a->head);
    a->head = NULL;
    a->used_total = 0;
}

void *ds_arena_alloc(ds_arena_t *a, size_t n) {
    n = (n + 7) & ~(size_t)7;
    if (a->limit && a->used_total + n > a->limit)
        return NULL;
    ds_arena_block_t *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = b ? b->size * 2 : 4096;
        while (size < n)
            size *= 2;
        ds_arena_block_t *nb = malloc(sizeof(*nb) + size);
        if (!nb)
            return NULL;
        nb->size = size;
        nb->used = 0;
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->used_total += n;
    return p;
}

char *ds_arena_strndup(ds_arena_t *a, const char *s, size_t n) {
    char *p = ds_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *ds_grow(void *arr, size_t *cap, size_t size, size_t first) {
    size_t nc = *cap ? *cap * 2 : first;
    if (nc < *cap || (size && nc > SIZE_MAX / size))
        return NULL;
    void *p = realloc(arr, nc * size);
    if (p)
        *cap = nc;
    return p;
}

size_t ds_strlcpy(char *dst, const char *src, size_t size) {
    size_t n = strlen(src);
    if (size) {
        size_t c = n < size - 1 ? n : size - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

bool ds_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        /* the sequence's length and the range of its second byte (which
         * rules out overlong forms, surrogates and code points past
         * U+10FFFF: RFC 3629's table) */
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else
            return false;
        if ((size_t)(end - p) < len || p[1] < lo || p[1] > hi)
            return false;
        for (size_t i = 2; i < len; i++)
            if (p[i] < 0x80 || p[i] > 0xBF)
                return false;
        p += len;
    }
    return true;
}
