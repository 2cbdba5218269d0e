/*
 * ds_cluster_map.c — the pure half of ds_cluster.h: what the client
 * routes by, with nothing running and no I/O (tests/unit/test_cluster.c).
 *
 *   - the key slot: CRC16/XMODEM (table built once, at load time) of the
 *     hash tag, & 16383;
 *   - the slot map read from a CLUSTER SLOTS reply (masters only, in the
 *     order first seen; an empty host is the node that was asked);
 *   - the parse of one RESP command as ds_redis formats it: its name and
 *     first argument, pointing into the caller's bytes (no copy), and the
 *     slot it is routed by (-1 for the commands without a key);
 *   - the classification of replies (redirect, busy, down, refused, bad
 *     command) and of the replies of one unit: the first error's kind,
 *     except that a fatal kind takes over from a retryable one and
 *     EXECABORT gives way to the queued command's own error.
 *
 * Cost: a command's parse reads its argument headers once; a key's slot
 * is one CRC16 pass over the hash tag.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ds_buf.h"
#include "ds_cluster.h"

/* ---- CRC16/XMODEM and the key slot ------------------------------------------ */

static uint16_t crc_tab[256];

__attribute__((constructor)) static void crc_init(void) {
    for (unsigned i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int b = 0; b < 8; b++)
            c = (uint16_t)((c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1);
        crc_tab[i] = c;
    }
}

uint16_t ds_cluster_crc16(const void *data, size_t len) {
    const unsigned char *p = data;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ crc_tab[((crc >> 8) ^ p[i]) & 0xff]);
    return crc;
}

unsigned ds_cluster_keyslot(const void *key, size_t len) {
    const char *k = key;
    const char *open = memchr(k, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - k) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return ds_cluster_crc16(open + 1, (size_t)(close - open - 1)) & (DS_CLUSTER_NSLOTS - 1);
    }
    return ds_cluster_crc16(k, len) & (DS_CLUSTER_NSLOTS - 1);
}

/* ---- the slot map --------------------------------------------------------------- */

void ds_cluster_map_free(ds_cluster_map_t *m) {
    free(m->nodes);
    m->nodes = NULL;
    m->nnodes = 0;
    for (size_t i = 0; i < DS_CLUSTER_NSLOTS; i++)
        m->owner[i] = -1;
}

size_t ds_cluster_map_covered(const ds_cluster_map_t *m) {
    size_t n = 0;
    for (size_t i = 0; i < DS_CLUSTER_NSLOTS; i++)
        n += m->owner[i] >= 0;
    return n;
}

static bool reply_int(const redisReply *r, long long *v) {
    if (r->type == REDIS_REPLY_INTEGER) {
        *v = r->integer;
        return true;
    }
    if (r->type == REDIS_REPLY_STRING) { /* some builds answer numbers as strings */
        char *end;
        errno = 0;
        *v = strtoll(r->str, &end, 10);
        return !errno && end != r->str && !*end;
    }
    return false;
}

ds_err_t ds_cluster_map_parse(ds_cluster_map_t *m, const redisReply *slots, const char *asked_host,
                              char *errstr, size_t errstr_size) {
    ds_cluster_map_free(m);
    if (!slots || slots->type != REDIS_REPLY_ARRAY) {
        snprintf(errstr, errstr_size, "CLUSTER SLOTS: not an array");
        return DS_ERR_INVAL;
    }
    for (size_t i = 0; i < slots->elements; i++) {
        const redisReply *e = slots->element[i];
        long long lo, hi, port;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || !reply_int(e->element[0], &lo) ||
            !reply_int(e->element[1], &hi) || lo < 0 || hi < lo || hi >= DS_CLUSTER_NSLOTS) {
            snprintf(errstr, errstr_size, "CLUSTER SLOTS: entry %zu is not [start, end, node…]", i);
            ds_cluster_map_free(m);
            return DS_ERR_INVAL;
        }
        const redisReply *n = e->element[2];
        if (n->type != REDIS_REPLY_ARRAY || n->elements < 2 ||
            n->element[0]->type != REDIS_REPLY_STRING || !reply_int(n->element[1], &port) ||
            port <= 0 || port > 65535) {
            snprintf(errstr, errstr_size, "CLUSTER SLOTS: entry %zu has no host and port", i);
            ds_cluster_map_free(m);
            return DS_ERR_INVAL;
        }
        const char *host = n->element[0]->len ? n->element[0]->str : asked_host;
        size_t k = 0;
        while (k < m->nnodes && !(m->nodes[k].port == port && !strcmp(m->nodes[k].host, host)))
            k++;
        if (k == m->nnodes) {
            ds_cluster_addr_t *nn = realloc(m->nodes, (m->nnodes + 1) * sizeof(*nn));
            if (!nn) {
                snprintf(errstr, errstr_size, "out of memory");
                ds_cluster_map_free(m);
                return DS_ERR_NOMEM;
            }
            m->nodes = nn;
            ds_strlcpy(nn[k].host, host, sizeof(nn[k].host));
            nn[k].port = (int)port;
            m->nnodes++;
        }
        for (long long s = lo; s <= hi; s++)
            m->owner[s] = (int16_t)k;
    }
    return DS_ERR_OK;
}

/* ---- RESP commands --------------------------------------------------------------- */

static bool resp_len(const char **pp, const char *end, char type, size_t *val) {
    const char *p = *pp;
    if (p >= end || *p != type)
        return false;
    p++;
    size_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (size_t)(*p - '0');
        p++;
        if (++digits > 15)
            return false;
    }
    if (!digits || end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return false;
    *val = v;
    *pp = p + 2;
    return true;
}

static bool name_is(const ds_cluster_cmd_t *c, const char *name);

ds_err_t ds_cluster_cmd_parse(const char *p, size_t len, ds_cluster_cmd_t *out) {
    const char *s = p, *end = p + len;
    const char *numkeys = NULL;
    size_t argc, numkeys_len = 0;
    bool script = false;
    memset(out, 0, sizeof(*out));
    if (!resp_len(&p, end, '*', &argc) || argc == 0 || argc > INT_MAX)
        return DS_ERR_INVAL;
    for (size_t i = 0; i < argc; i++) {
        size_t l;
        if (!resp_len(&p, end, '$', &l) || (size_t)(end - p) < l + 2 || p[l] != '\r' ||
            p[l + 1] != '\n')
            return DS_ERR_INVAL;
        if (i == 0) {
            out->name = p;
            out->name_len = l;
            script = name_is(out, "EVALSHA") || name_is(out, "EVAL");
        } else if (i == 1) {
            out->arg1 = p;
            out->arg1_len = l;
        } else if (i == 2 && script) {
            numkeys = p;
            numkeys_len = l;
        } else if (i == 3 && script && !(numkeys_len == 1 && numkeys[0] == '0')) {
            out->key = p;
            out->key_len = l;
        }
        p += l + 2;
    }
    if (!script) {
        out->key = out->arg1;
        out->key_len = out->arg1_len;
    }
    out->argc = (int)argc;
    out->size = (size_t)(p - s);
    return DS_ERR_OK;
}

static bool name_is(const ds_cluster_cmd_t *c, const char *name) {
    size_t n = strlen(name);
    return c->name_len == n && !strncasecmp(c->name, name, n);
}

bool ds_cluster_cmd_is(const ds_cluster_cmd_t *cmd, const char *name) {
    return name_is(cmd, name);
}

/* Commands without a key, found by their first letter first: this runs
 * for every command sent. */
static bool keyless(const ds_cluster_cmd_t *c) {
    if (!c->name_len)
        return true;
    switch (c->name[0] | 0x20) {
    case 'a':
        return name_is(c, "ASKING") || name_is(c, "AUTH");
    case 'c':
        return name_is(c, "CLUSTER") || name_is(c, "CONFIG") || name_is(c, "CLIENT") ||
               name_is(c, "COMMAND");
    case 'd':
        return name_is(c, "DISCARD") || name_is(c, "DBSIZE");
    case 'e':
        return name_is(c, "EXEC") || name_is(c, "ECHO");
    case 'h':
        return name_is(c, "HELLO");
    case 'i':
        return name_is(c, "INFO");
    case 'm':
        return name_is(c, "MULTI");
    case 'p':
        return name_is(c, "PING");
    case 'r':
        return name_is(c, "READONLY") || name_is(c, "READWRITE");
    case 's':
        return name_is(c, "SELECT") || name_is(c, "SCRIPT");
    case 't':
        return name_is(c, "TIME");
    case 'w':
        return name_is(c, "WAIT");
    default:
        return false;
    }
}

int ds_cluster_cmd_slot(const ds_cluster_cmd_t *cmd) {
    if (!cmd->key || keyless(cmd))
        return -1;
    return (int)ds_cluster_keyslot(cmd->key, cmd->key_len);
}

/* ---- replies -------------------------------------------------------------------- */

static const struct {
    const char *name, *cls;
    bool fatal;
} kinds[DS_CLUSTER__KINDS] = {
    [DS_CLUSTER_OK] = {"ok", "ok", false},
    [DS_CLUSTER_MOVED] = {"moved", "redirect", false},
    [DS_CLUSTER_ASK] = {"ask", "redirect", false},
    [DS_CLUSTER_TRYAGAIN] = {"tryagain", "busy", false},
    [DS_CLUSTER_LOADING] = {"loading", "busy", false},
    [DS_CLUSTER_BUSY] = {"busy", "busy", false},
    [DS_CLUSTER_CLUSTERDOWN] = {"clusterdown", "down", false},
    [DS_CLUSTER_DOWN] = {"down", "down", false},
    [DS_CLUSTER_SHORT] = {"wait_short", "down", false},
    [DS_CLUSTER_NOSCRIPT] = {"noscript", "down", false},
    [DS_CLUSTER_EXECABORT] = {"execabort", "bad_command", true},
    [DS_CLUSTER_REFUSED] = {"refused", "refused", true},
    [DS_CLUSTER_BADCMD] = {"bad_command", "bad_command", true},
};

const char *ds_cluster_kind_class(ds_cluster_kind_t k) {
    return k < DS_CLUSTER__KINDS ? kinds[k].cls : "?";
}
const char *ds_cluster_kind_name(ds_cluster_kind_t k) {
    return k < DS_CLUSTER__KINDS ? kinds[k].name : "?";
}
bool ds_cluster_kind_fatal(ds_cluster_kind_t k) {
    return k < DS_CLUSTER__KINDS && kinds[k].fatal;
}

static bool word_is(const char *s, const char *w) {
    size_t n = strlen(w);
    return !strncmp(s, w, n) && (s[n] == ' ' || s[n] == '\0');
}

/* "MOVED 3999 127.0.0.1:6381" (also ASK); the host may be empty */
static bool parse_redirect(const char *s, ds_cluster_redirect_t *to) {
    const char *p = strchr(s, ' ');
    if (!p)
        return false;
    char *end;
    errno = 0;
    long slot = strtol(p + 1, &end, 10);
    if (errno || end == p + 1 || *end != ' ' || slot < 0 || slot >= DS_CLUSTER_NSLOTS)
        return false;
    const char *addr = end + 1;
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return false;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port <= 0 || port > 65535)
        return false;
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof(to->to.host))
        return false;
    memcpy(to->to.host, addr, hl);
    to->to.host[hl] = '\0';
    to->to.port = (int)port;
    to->slot = (unsigned)slot;
    return true;
}

ds_cluster_kind_t ds_cluster_reply_kind(const redisReply *r, ds_cluster_redirect_t *to) {
    ds_cluster_redirect_t scratch;
    if (!to)
        to = &scratch;
    if (!r)
        return DS_CLUSTER_DOWN;
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i] && r->element[i]->type == REDIS_REPLY_ERROR)
                return ds_cluster_reply_kind(r->element[i], to);
        return DS_CLUSTER_OK;
    }
    if (r->type != REDIS_REPLY_ERROR)
        return DS_CLUSTER_OK;
    const char *s = r->str ? r->str : "";
    if (word_is(s, "MOVED"))
        return parse_redirect(s, to) ? DS_CLUSTER_MOVED : DS_CLUSTER_DOWN;
    if (word_is(s, "ASK"))
        return parse_redirect(s, to) ? DS_CLUSTER_ASK : DS_CLUSTER_DOWN;
    /* A script that reached a key it was not given in KEYS (the scorer's
     * lead hashes, under the account's hash tag) after a slot migration
     * moved it: Redis 7.0 cannot redirect that one and fails the script
     * there.  Like TRYAGAIN, it passes: once the slot has moved, the
     * retry gets MOVED. */
    if (word_is(s, "TRYAGAIN") ||
        (word_is(s, "ERR") && strstr(s, "Script attempted to access a non local key")))
        return DS_CLUSTER_TRYAGAIN;
    if (word_is(s, "LOADING"))
        return DS_CLUSTER_LOADING;
    if (word_is(s, "BUSY") || word_is(s, "OOM") || word_is(s, "MISCONF") ||
        !strncmp(s, "ERR max number of clients", 25))
        return DS_CLUSTER_BUSY;
    if (word_is(s, "CLUSTERDOWN"))
        return DS_CLUSTER_CLUSTERDOWN;
    if (word_is(s, "EXECABORT"))
        return DS_CLUSTER_EXECABORT;
    if (word_is(s, "NOAUTH") || word_is(s, "WRONGPASS") || word_is(s, "NOPERM") ||
        strstr(s, "cluster support disabled"))
        return DS_CLUSTER_REFUSED;
    if (word_is(s, "NOSCRIPT")) /* a connection made again loads it */
        return DS_CLUSTER_NOSCRIPT;
    if (word_is(s, "ERR") || word_is(s, "WRONGTYPE") || word_is(s, "CROSSSLOT") ||
        word_is(s, "BUSYKEY"))
        return DS_CLUSTER_BADCMD;
    /* MASTERDOWN, READONLY, NOREPLICAS, UNBLOCKED and codes unknown to us:
     * a state of the server that may pass, retried (and logged) */
    return DS_CLUSTER_DOWN;
}

ds_cluster_kind_t ds_cluster_kind_merge(ds_cluster_kind_t acc, ds_cluster_kind_t next) {
    if (next == DS_CLUSTER_OK)
        return acc;
    if (acc == DS_CLUSTER_OK || acc == DS_CLUSTER_EXECABORT)
        return next;
    if (next == DS_CLUSTER_EXECABORT)
        return acc;
    if (ds_cluster_kind_fatal(next) && !ds_cluster_kind_fatal(acc))
        return next;
    return acc;
}

ds_cluster_kind_t ds_cluster_unit_kind(const redisReply *const *replies, size_t n,
                                       ds_cluster_redirect_t *to) {
    ds_cluster_kind_t acc = DS_CLUSTER_OK;
    for (size_t i = 0; i < n; i++) {
        ds_cluster_redirect_t r;
        ds_cluster_kind_t k = ds_cluster_reply_kind(replies[i], &r);
        ds_cluster_kind_t m = ds_cluster_kind_merge(acc, k);
        if (m != acc && to && (k == DS_CLUSTER_MOVED || k == DS_CLUSTER_ASK))
            *to = r;
        acc = m;
    }
    return acc;
}
