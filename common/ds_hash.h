/*
 * ds_hash.h — 64-bit FNV-1a, the one non-cryptographic hash of the
 * project: event-id dedupe, string interning, and the signatures of what
 * a worker last wrote to a Redis hash.
 */
#ifndef DS_HASH_H
#define DS_HASH_H

#include <stddef.h>
#include <stdint.h>

#define DS_FNV64_INIT 1469598103934665603ULL

static inline uint64_t ds_fnv64_add(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static inline uint64_t ds_fnv64(const void *p, size_t n) { return ds_fnv64_add(DS_FNV64_INIT, p, n); }

/** Add a string as its length (8 bytes, little-endian) then its bytes, so
 *  that a sequence of strings hashes without ambiguity. */
static inline uint64_t ds_fnv64_str(uint64_t h, const char *s, size_t n) {
    unsigned char len[8];
    for (int k = 0; k < 8; k++)
        len[k] = (unsigned char)((uint64_t)n >> (8 * k));
    return ds_fnv64_add(ds_fnv64_add(h, len, sizeof(len)), s, n);
}

#endif
