/*
 * digest.c — a digest of the Redis state under a key prefix, to check that
 * a benchmark run ended in the same state as another (one Redis or the
 * masters of a cluster, one worker process or several).
 *
 *   ds_bench_digest PREFIX PORT[/DB] [PORT[/DB] ...]
 *
 * SCANs every server given (127.0.0.1) for PREFIX*, reads each key
 * (hashes field by field, sorted sets with scores, sets; pipelined), and
 * prints "KEYS DIGEST": the number of keys and a 64-bit FNV-1a over the
 * sorted per-key digests (keys without the prefix), so neither the order
 * of keys and fields nor the prefix counts.
 */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define FNV0 0xcbf29ce484222325ULL

static int cmp64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* a digest of pairs or members, independent of their order */
static uint64_t body(const redisReply *r, int pairs) {
    size_t step = pairs ? 2 : 1, n = r->elements / step;
    uint64_t *d = calloc(n ? n : 1, sizeof(*d));
    for (size_t i = 0; i < n; i++) {
        uint64_t h = FNV0;
        for (size_t k = 0; k < step; k++)
            h = fnv(fnv(h, r->element[i * step + k]->str, r->element[i * step + k]->len), "", 1);
        d[i] = h;
    }
    qsort(d, n, sizeof(*d), cmp64);
    uint64_t h = fnv(FNV0, d, n * sizeof(*d));
    free(d);
    return h;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PREFIX PORT[/DB] ...\n", argv[0]);
        return 2;
    }
    const char *prefix = argv[1];
    uint64_t *keys = NULL;
    size_t nkeys = 0, cap = 0;
    for (int a = 2; a < argc; a++) {
        char *end;
        long port = strtol(argv[a], &end, 10);
        if (end == argv[a] || port <= 0 || port > 65535 || (*end && *end != '/')) {
            fprintf(stderr, "%s: not PORT[/DB]\n", argv[a]);
            return 2;
        }
        const char *slash = strchr(argv[a], '/');
        redisContext *c = redisConnect("127.0.0.1", (int)port);
        if (!c || c->err) {
            fprintf(stderr, "connect %s failed\n", argv[a]);
            return 1;
        }
        if (slash) {
            redisReply *s = redisCommand(c, "SELECT %s", slash + 1);
            freeReplyObject(s);
        }
        char cursor[32] = "0";
        do {
            redisReply *sr = redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor, prefix);
            if (!sr || sr->type != REDIS_REPLY_ARRAY) {
                fprintf(stderr, "SCAN failed on %s\n", argv[a]);
                return 1;
            }
            snprintf(cursor, sizeof(cursor), "%s", sr->element[0]->str);
            const redisReply *ks = sr->element[1];
            for (size_t i = 0; i < ks->elements; i++)
                redisAppendCommand(c, "TYPE %b", ks->element[i]->str, ks->element[i]->len);
            char **types = calloc(ks->elements + 1, sizeof(char *));
            for (size_t i = 0; i < ks->elements; i++) {
                redisReply *t;
                redisGetReply(c, (void **)&t);
                types[i] = strdup(t->str);
                freeReplyObject(t);
            }
            for (size_t i = 0; i < ks->elements; i++) {
                const char *k = ks->element[i]->str;
                size_t kl = ks->element[i]->len;
                if (!strcmp(types[i], "hash"))
                    redisAppendCommand(c, "HGETALL %b", k, kl);
                else if (!strcmp(types[i], "zset"))
                    redisAppendCommand(c, "ZRANGE %b 0 -1 WITHSCORES", k, kl);
                else if (!strcmp(types[i], "set"))
                    redisAppendCommand(c, "SMEMBERS %b", k, kl);
                else
                    redisAppendCommand(c, "DUMP %b", k, kl);
            }
            for (size_t i = 0; i < ks->elements; i++) {
                redisReply *v;
                redisGetReply(c, (void **)&v);
                size_t pl = strlen(prefix); /* runs under other prefixes compare */
                uint64_t h = fnv(FNV0, ks->element[i]->str + pl, ks->element[i]->len - pl);
                h = fnv(h, types[i], strlen(types[i]));
                uint64_t b = v->type == REDIS_REPLY_ARRAY
                                 ? body(v, strcmp(types[i], "set") != 0)
                                 : fnv(FNV0, v->str ? v->str : "", v->str ? v->len : 0);
                h = fnv(h, &b, sizeof(b));
                freeReplyObject(v);
                if (nkeys == cap) {
                    cap = cap ? cap * 2 : 4096;
                    keys = realloc(keys, cap * sizeof(*keys));
                }
                keys[nkeys++] = h;
                free(types[i]);
            }
            free(types);
            freeReplyObject(sr);
        } while (strcmp(cursor, "0"));
        redisFree(c);
    }
    qsort(keys, nkeys, sizeof(*keys), cmp64);
    printf("%zu %016llx\n", nkeys, (unsigned long long)fnv(FNV0, keys, nkeys * sizeof(*keys)));
    free(keys);
    return 0;
}
