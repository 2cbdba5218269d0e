/*
 * ds_redis_conn.c — one hiredis connection's set-up and identity, shared by
 * ds_redis.c (one server) and ds_cluster.c (one connection per node).
 *
 * Dialling: connect with the command timeout set (hiredis 0.14 bounds only
 * the connect itself unless redisSetTimeout is called) and AUTH with the
 * URL's credentials, never echoing them in an error.  Every successful
 * dial bumps the epoch (ds_redis_epoch), which callers compare to notice a
 * reconnection.
 *
 * Identity: a new connection reads its server's run_id (INFO server) and
 * its CLIENT ID.  A connection dropped with commands in flight is
 * remembered as an orphan; the next connection to the same incarnation
 * kills it (CLIENT KILL ID) before anything is sent, so those commands
 * have run or never will.  The known table remembers per server the
 * run_id last seen and a key whose write was confirmed there: a new
 * run_id with that key gone means the server came back empty (reported
 * once, by ds_redis_known_take_emptied).
 *
 * RESP formatting (ds_redis_format) is here too: the asynchronous writes
 * of both clients are kept as RESP bytes.
 */
#include "ds_redis_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ds_cluster.h"
#include "ds_log.h"

/* ---- identities and the known servers -------------------------------------- */

typedef struct known_server {
    char name[270];  /* host:port */
    char run_id[48]; /* when last connected ("": not yet) */
    char proof[512]; /* a key whose write was confirmed there ("": none) */
    char gone[48];   /* the last run_id found to have come back empty */
} known_server_t;

struct ds_redis_known {
    known_server_t *s;
    size_t n;
    bool emptied; /* a server came back empty since ds_redis_take_emptied */
    char why[700];
};

ds_redis_known_t *ds_redis_known_new(void) {
    return calloc(1, sizeof(ds_redis_known_t));
}

void ds_redis_known_destroy(ds_redis_known_t *k) {
    if (!k)
        return;
    free(k->s);
    free(k);
}

int ds_redis_known_server(ds_redis_known_t *k, const char *name) {
    if (!k)
        return -1;
    for (size_t i = 0; i < k->n; i++)
        if (!strcmp(k->s[i].name, name))
            return (int)i;
    known_server_t *ns = realloc(k->s, (k->n + 1) * sizeof(*ns));
    if (!ns)
        return -1; /* then no check: a restart is taken as one with its data */
    k->s = ns;
    memset(&ns[k->n], 0, sizeof(ns[k->n]));
    ds_strlcpy(ns[k->n].name, name, sizeof(ns[k->n].name));
    return (int)k->n++;
}

void ds_redis_known_proof(ds_redis_known_t *k, int server, const char *key, size_t len) {
    if (!k || server < 0 || (size_t)server >= k->n || len >= sizeof(k->s[0].proof))
        return;
    memcpy(k->s[server].proof, key, len);
    k->s[server].proof[len] = '\0';
}

/* SCRIPT LOAD of body: the SHA-1 Redis answers must be `sha`, the one
 * the caller's EVALSHA commands name. */
ds_redis_script_t ds_redis_script_load(redisContext *c, const char *body, const char *sha,
                                       const char *name, char *err, size_t err_size) {
    const char *argv[] = {"SCRIPT", "LOAD", body};
    redisReply *rep = redisCommandArgv(c, 3, argv, NULL);
    if (!rep) {
        snprintf(err, err_size, "%s: SCRIPT LOAD: %s", name,
                 c->errstr[0] ? c->errstr : "no answer");
        return DS_REDIS_SCRIPT_DOWN;
    }
    ds_redis_script_t out = DS_REDIS_SCRIPT_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        /* an ACL user without +script|load, a server without scripting:
         * retrying cannot fix it; BUSY, LOADING … pass */
        ds_cluster_kind_t k = ds_cluster_reply_kind(rep, NULL);
        snprintf(err, err_size,
                 "%s: SCRIPT LOAD: %s (the scorer writes through a Lua script: its "
                 "user needs +script|load and +evalsha, or set redis.writes: transaction)",
                 name, rep->str);
        out = ds_cluster_kind_fatal(k) ? DS_REDIS_SCRIPT_REFUSED : DS_REDIS_SCRIPT_DOWN;
    } else if (rep->type != REDIS_REPLY_STRING || strcmp(rep->str, sha)) {
        snprintf(err, err_size, "%s: SCRIPT LOAD answered %s, not the SHA-1 %s this build names",
                 name, rep->type == REDIS_REPLY_STRING ? rep->str : "something else", sha);
        out = DS_REDIS_SCRIPT_REFUSED;
    }
    freeReplyObject(rep);
    return out;
}

bool ds_redis_cmd_keeps_key(const char *name, size_t len) {
    /* EVALSHA: the workers' scripts always write their first key */
    static const char *const keeps[] = {"HSET",  "SET",    "SADD",  "ZADD",
                                        "HMSET", "HSETNX", "SETNX", "EVALSHA"};
    for (size_t i = 0; i < sizeof(keeps) / sizeof(keeps[0]); i++)
        if (strlen(keeps[i]) == len && !strncasecmp(name, keeps[i], len))
            return true;
    return false;
}

bool ds_redis_known_gone(const ds_redis_known_t *k, int server, const char *run_id) {
    return k && server >= 0 && (size_t)server < k->n && run_id[0] &&
           !strcmp(k->s[server].gone, run_id);
}

void ds_redis_lost_note(ds_redis_lost_t *l, const char *run_id) {
    if (l->lost && strcmp(l->run_id, run_id))
        l->mixed = true;
    if (!l->lost)
        ds_strlcpy(l->run_id, run_id, sizeof(l->run_id));
    l->lost = true;
}

bool ds_redis_lost_take(ds_redis_lost_t *l, const ds_redis_known_t *k, int server) {
    bool counts = l->lost && (l->mixed || !ds_redis_known_gone(k, server, l->run_id));
    memset(l, 0, sizeof(*l));
    return counts;
}

void ds_redis_ident_drop(ds_redis_ident_t *id, bool in_flight) {
    if (in_flight && id->client_id) {
        /* its commands may still run: kill it from the next connection */
        id->orphan_id = id->client_id;
        memcpy(id->orphan_run_id, id->run_id, sizeof(id->run_id));
    }
    id->client_id = 0;
}

/* A new connection to a server the table knows: compare its run_id with
 * the one remembered and, when it changed, look for the proof. */
/* A new connection to a server the table knows: compare its run_id with
 * the one remembered and, when it changed, look for the proof.  False
 * when the server cannot answer that yet (loading its data; a cluster
 * master just restarted answers CLUSTERDOWN for a while): the connection
 * is not to be used, and the next one asks again. */
static bool known_check(redisContext *c, ds_redis_known_t *k, const char *name, const char *run_id,
                        char *err, size_t err_size) {
    int i = ds_redis_known_server(k, name);
    if (i < 0 || !run_id[0])
        return true;
    known_server_t *s = &k->s[i];
    if (!s->run_id[0] || !strcmp(s->run_id, run_id) || !s->proof[0]) {
        /* first seen, the same server, or nothing written there yet */
        ds_strlcpy(s->run_id, run_id, sizeof(s->run_id));
        return true;
    }
    redisReply *x = redisCommand(c, "EXISTS %b", s->proof, strlen(s->proof));
    if (!x) {
        snprintf(err, err_size, "%s", c->errstr);
        return false;
    }
    ds_cluster_kind_t kind = ds_cluster_reply_kind(x, NULL);
    if (kind == DS_CLUSTER_LOADING || kind == DS_CLUSTER_BUSY || kind == DS_CLUSTER_CLUSTERDOWN ||
        kind == DS_CLUSTER_TRYAGAIN) {
        snprintf(err, err_size,
                 "%s restarted (run_id %s, was %s) and cannot say yet what it holds: %s", name,
                 run_id, s->run_id, x->str);
        freeReplyObject(x);
        return false;
    }
    char was[sizeof(s->run_id)];
    ds_strlcpy(was, s->run_id, sizeof(was));
    ds_strlcpy(s->run_id, run_id, sizeof(s->run_id));
    if (x->type == REDIS_REPLY_INTEGER && x->integer == 0) {
        snprintf(k->why, sizeof(k->why), "%s restarted (run_id %s, was %s) and %s is gone", name,
                 run_id, was, s->proof);
        k->emptied = true;
        ds_strlcpy(s->gone, was, sizeof(s->gone));
    } else if (x && x->type == REDIS_REPLY_INTEGER) {
        DS_INFO("redis", "%s restarted (run_id %s, was %s) with its state", name, run_id, was);
    } else {
        /* an error that waiting does not change (e.g. MOVED: the key's
         * slot lives elsewhere now, or EXISTS not allowed) */
        DS_WARN("redis", "%s restarted (run_id %s, was %s); could not check its state: %s", name,
                run_id, was, x->type == REDIS_REPLY_ERROR ? x->str : "unexpected reply");
    }
    freeReplyObject(x);
    return true;
}

/* The server's run_id (from INFO server) and this connection's id, in one
 * round trip; then the connection an earlier drop left with commands in
 * flight is killed if it was to this same server.  Errors (an ACL user
 * not allowed INFO or CLIENT) leave them unknown: no kill then. */
bool ds_redis_ident_connect(redisContext *c, ds_redis_ident_t *id, ds_redis_known_t *known,
                            const char *name, char *err, size_t err_size) {
    id->run_id[0] = '\0';
    id->client_id = 0;
    snprintf(err, err_size, "%s: no answer", name);
    if (redisAppendCommand(c, "INFO server") != REDIS_OK ||
        redisAppendCommand(c, "CLIENT ID") != REDIS_OK)
        return false;
    for (int i = 0; i < 2; i++) {
        void *rep = NULL;
        if (redisGetReply(c, &rep) != REDIS_OK || !rep) {
            snprintf(err, err_size, "%s: %s", name, c->errstr[0] ? c->errstr : "no answer");
            return false;
        }
        redisReply *x = rep;
        if (i == 0 && x->type == REDIS_REPLY_STRING) {
            const char *p = strstr(x->str, "run_id:");
            if (p) {
                p += 7;
                size_t n = strcspn(p, "\r\n");
                if (n < sizeof(id->run_id)) {
                    memcpy(id->run_id, p, n);
                    id->run_id[n] = '\0';
                }
            }
        } else if (i == 1 && x->type == REDIS_REPLY_INTEGER) {
            id->client_id = x->integer;
        }
        freeReplyObject(x);
    }
    if (id->orphan_id && id->run_id[0] && !strcmp(id->run_id, id->orphan_run_id)) {
        char num[24];
        snprintf(num, sizeof(num), "%lld", id->orphan_id);
        redisReply *k = redisCommand(c, "CLIENT KILL ID %s", num);
        if (k && k->type == REDIS_REPLY_ERROR && !strstr(k->str, "No such client") &&
            !id->kill_refused) {
            id->kill_refused = true;
            DS_WARN("redis",
                    "cannot end the connection to %s dropped with writes in flight (%s): "
                    "they may still be applied after the writes sent again",
                    name, k->str);
        }
        if (k)
            freeReplyObject(k);
    }
    id->orphan_id = 0; /* killed, or another server (or unknown): it died with it */
    if (c->err) {
        snprintf(err, err_size, "%s: %s", name, c->errstr);
        return false;
    }
    return !known || known_check(c, known, name, id->run_id, err, err_size);
}

/* bumped by every (re)connection: see ds_redis_epoch() */
static unsigned g_epoch;

unsigned ds_redis_epoch(void) {
    return __atomic_load_n(&g_epoch, __ATOMIC_RELAXED);
}

redisContext *ds_redis_dial(const ds_redis_url_t *url, const char *host, int port, int timeout_ms,
                            bool *refused, char *errstr, size_t errstr_size) {
    *refused = false;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        snprintf(errstr, errstr_size, "connect %s:%d: %s", host, port,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    /* hiredis 0.14: redisConnectWithTimeout bounds the connect only, not the
     * commands that follow; they need redisSetTimeout */
    redisSetTimeout(c, tv);
    if (url->password[0]) {
        const char *argv[] = {"AUTH", url->user, url->password};
        redisReply *rep =
            url->user[0] ? redisCommandArgv(c, 3, argv, NULL)
                         : redisCommandArgv(c, 2, (const char *[]){"AUTH", url->password}, NULL);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            /* never echo AUTH's arguments */
            snprintf(errstr, errstr_size, "AUTH on %s:%d: %s", host, port,
                     rep ? rep->str : c->errstr);
            *refused = rep != NULL; /* a wrong password stays wrong */
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    __atomic_add_fetch(&g_epoch, 1, __ATOMIC_RELAXED);
    return c;
}

/* RESP: *argc CRLF then $len CRLF bytes CRLF per argument. */
/* "<type><n>\r\n" at p; the end of what was written.  Most lengths have
 * one or two digits. */
static char *put_resp_len(char *p, char type, size_t n) {
    *p++ = type;
    if (n < 10) {
        *p++ = (char)('0' + n);
    } else if (n < 100) {
        *p++ = (char)('0' + n / 10);
        *p++ = (char)('0' + n % 10);
    } else {
        char tmp[24];
        int k = 0;
        do {
            tmp[k++] = (char)('0' + n % 10);
            n /= 10;
        } while (n);
        while (k)
            *p++ = tmp[--k];
    }
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* The bytes of a length line: type, digits, CRLF. */
static size_t resp_len_size(size_t n) {
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return 1 + d + 2;
}

/* One reservation for the whole command, then the bytes written in place:
 * this runs for every argument of every state write. */
ds_err_t ds_redis_format(ds_buf_t *b, int argc, const char **argv, const size_t *lens) {
    size_t need = resp_len_size((size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t l = lens ? lens[i] : strlen(argv[i]);
        need += resp_len_size(l) + l + 2;
    }
    if (need > b->cap - b->len || (b->limit && need > b->limit - b->len)) {
        ds_err_t e = ds_buf_reserve(b, need);
        if (e)
            return e;
    }
    char *start = (char *)b->data + b->len, *p = put_resp_len(start, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t l = lens ? lens[i] : strlen(argv[i]);
        p = put_resp_len(p, '$', l);
        if (l)
            memcpy(p, argv[i], l);
        p += l;
        *p++ = '\r';
        *p++ = '\n';
    }
    b->len += (size_t)(p - start);
    return DS_ERR_OK;
}

bool ds_redis_known_take_emptied(ds_redis_known_t *k, char *why, size_t why_size) {
    if (!k->emptied)
        return false;
    k->emptied = false;
    ds_strlcpy(why, k->why, why_size);
    return true;
}
