/*
 * ds_redis.c — pipelined hiredis with reconnect.
 *
 * Commands are kept in our own buffer (argv copies) until run, so that a
 * failed run can be told apart from a half-sent one: we never resend on our
 * own; the caller re-runs its idempotent batch.  hiredis appends formatted
 * commands to its output buffer, and redisGetReply flushes and reads.
 */
#include "ds_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "ds_log.h"

struct ds_redis {
    ds_redis_url_t url;
    int timeout_ms;
    redisContext *ctx;
    size_t pending;
    char err[600];
};

ds_redis_t *ds_redis_new(const char *url, int timeout_ms, char *errstr, size_t errstr_size) {
    ds_redis_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (ds_redis_url_parse(url, &r->url, errstr, errstr_size)) {
        free(r);
        return NULL;
    }
    r->timeout_ms = timeout_ms;
    return r;
}

static void drop(ds_redis_t *r) {
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->pending = 0;
}

void ds_redis_destroy(ds_redis_t *r) {
    if (!r)
        return;
    drop(r);
    free(r);
}

bool ds_redis_connected(const ds_redis_t *r) { return r->ctx != NULL; }

static ds_err_t simple(ds_redis_t *r, int argc, const char **argv) {
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, NULL);
    if (!rep) {
        snprintf(r->err, sizeof(r->err), "%s", r->ctx->errstr);
        return DS_ERR_IO;
    }
    ds_err_t e = DS_ERR_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        /* argv[0] only: never echo AUTH arguments */
        snprintf(r->err, sizeof(r->err), "%s: %s", argv[0], rep->str);
        e = DS_ERR_IO;
    }
    freeReplyObject(rep);
    return e;
}

ds_err_t ds_redis_connect(ds_redis_t *r) {
    if (r->ctx)
        return DS_ERR_OK;
    struct timeval tv = {.tv_sec = r->timeout_ms / 1000, .tv_usec = (r->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(r->url.host, r->url.port, tv);
    if (!c || c->err) {
        snprintf(r->err, sizeof(r->err), "connect %s:%d: %s", r->url.host, r->url.port,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return DS_ERR_IO;
    }
    /* the connect timeout does not bound commands (PITFALLS) */
    redisSetTimeout(c, tv);
    r->ctx = c;
    r->pending = 0;
    if (r->url.password[0]) {
        const char *auth_user[] = {"AUTH", r->url.user, r->url.password};
        const char *auth[] = {"AUTH", r->url.password};
        ds_err_t e = r->url.user[0] ? simple(r, 3, auth_user) : simple(r, 2, auth);
        if (e) {
            drop(r);
            return e;
        }
    }
    if (r->url.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", r->url.db);
        const char *sel[] = {"SELECT", db};
        if (simple(r, 2, sel)) {
            drop(r);
            return DS_ERR_IO;
        }
    }
    return DS_ERR_OK;
}

void ds_redis_cmd(ds_redis_t *r, int argc, const char **argv, const size_t *lens) {
    if (!r->ctx)
        return; /* ds_redis_run will fail: not connected */
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK) {
        snprintf(r->err, sizeof(r->err), "append: %s", r->ctx->errstr);
        drop(r);
        return;
    }
    r->pending++;
}

size_t ds_redis_pending(const ds_redis_t *r) { return r->pending; }

void ds_redis_discard(ds_redis_t *r) {
    /* the only way to drop what hiredis has buffered is a new context */
    if (r->pending)
        drop(r);
}

ds_err_t ds_redis_run(ds_redis_t *r, ds_redis_reply_fn on_reply, void *opaque) {
    if (!r->ctx) {
        if (!r->err[0])
            snprintf(r->err, sizeof(r->err), "not connected");
        return DS_ERR_IO;
    }
    size_t n = r->pending;
    ds_err_t result = DS_ERR_OK;
    for (size_t i = 0; i < n; i++) {
        void *rep = NULL;
        if (redisGetReply(r->ctx, &rep) != REDIS_OK || !rep) {
            snprintf(r->err, sizeof(r->err), "%s", r->ctx->errstr[0] ? r->ctx->errstr : "no reply");
            drop(r);
            return DS_ERR_IO;
        }
        redisReply *reply = rep;
        if (on_reply)
            on_reply(opaque, i, reply);
        else if (reply->type == REDIS_REPLY_ERROR) {
            snprintf(r->err, sizeof(r->err), "%s", reply->str);
            result = DS_ERR_IO;
        }
        freeReplyObject(reply);
    }
    r->pending = 0;
    return result;
}

const char *ds_redis_errstr(const ds_redis_t *r) { return r->err; }
