/*
 * ds_redis.c — pipelined hiredis with reconnect.
 *
 * Commands are kept in our own buffer (argv copies) until run, so that a
 * failed run can be told apart from a half-sent one: we never resend on our
 * own; the caller re-runs its idempotent batch.  hiredis appends formatted
 * commands to its output buffer, and redisGetReply flushes and reads.
 *
 * Time: blocking reads and writes end after timeout_ms (SO_RCVTIMEO and
 * SO_SNDTIMEO); replies that are not waited for (ds_redis_collect_avail)
 * count as lost once none has come for timeout_ms while some are owed.
 *
 * A connection dropped with commands in flight leaves them in the server's
 * socket buffer: a server that was only paused runs them when it resumes,
 * possibly after the same writes sent again on a new connection.  So the
 * next connection to the same server (same run_id) first kills the old one
 * (CLIENT KILL ID): the server has then run those commands or never will,
 * before anything is sent again.
 */
#include "ds_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ds_clock.h"
#include "ds_log.h"

struct ds_redis {
    ds_redis_url_t url;
    int timeout_ms;
    redisContext *ctx;
    size_t pending;
    size_t inflight;      /* replies owed by ds_redis_send */
    struct {              /* sent bytes the socket has not taken yet */
        const char *p;
        size_t len;
    } outq[8];
    size_t noutq;
    ds_buf_t *capture;    /* ds_redis_capture target, or NULL */
    size_t *capture_count;
    int64_t progress_ms; /* last reply read, or first reply owed since */
    long long client_id; /* CLIENT ID of this connection (0: unknown) */
    char run_id[48];     /* the server's run_id at connect ("": unknown) */
    long long orphan_id; /* a connection dropped with commands in flight */
    char orphan_run_id[48];
    bool kill_refused; /* CLIENT KILL not allowed: said once */
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
    if (r->ctx && (r->inflight || r->noutq) && r->client_id) {
        /* its commands may still run: kill it from the next connection */
        r->orphan_id = r->client_id;
        memcpy(r->orphan_run_id, r->run_id, sizeof(r->run_id));
    }
    r->client_id = 0;
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->pending = 0;
    r->inflight = 0;
    r->noutq = 0;
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

/* The server's run_id (from INFO server) and this connection's id, in one
 * round trip; then the connection an earlier drop left with commands in
 * flight is killed if it was to this same server.  Errors (an ACL user
 * not allowed INFO or CLIENT) leave them unknown: no kill then. */
static void identify(ds_redis_t *r) {
    r->run_id[0] = '\0';
    r->client_id = 0;
    if (redisAppendCommand(r->ctx, "INFO server") != REDIS_OK ||
        redisAppendCommand(r->ctx, "CLIENT ID") != REDIS_OK)
        return;
    for (int i = 0; i < 2; i++) {
        void *rep = NULL;
        if (redisGetReply(r->ctx, &rep) != REDIS_OK || !rep)
            return;
        redisReply *x = rep;
        if (i == 0 && x->type == REDIS_REPLY_STRING) {
            const char *p = strstr(x->str, "run_id:");
            if (p) {
                p += 7;
                size_t n = strcspn(p, "\r\n");
                if (n < sizeof(r->run_id)) {
                    memcpy(r->run_id, p, n);
                    r->run_id[n] = '\0';
                }
            }
        } else if (i == 1 && x->type == REDIS_REPLY_INTEGER) {
            r->client_id = x->integer;
        }
        freeReplyObject(x);
    }
    if (!r->orphan_id || !r->run_id[0] || strcmp(r->run_id, r->orphan_run_id)) {
        r->orphan_id = 0; /* another server (or unknown): it died with it */
        return;
    }
    char id[24];
    snprintf(id, sizeof(id), "%lld", r->orphan_id);
    redisReply *k = redisCommand(r->ctx, "CLIENT KILL ID %s", id);
    if (k && k->type == REDIS_REPLY_ERROR && !strstr(k->str, "No such client") &&
        !r->kill_refused) {
        r->kill_refused = true;
        DS_WARN("redis",
                "cannot end the connection dropped with writes in flight (%s): "
                "they may still be applied after the writes sent again",
                k->str);
    }
    if (k)
        freeReplyObject(k);
    r->orphan_id = 0;
}

/* bumped by every (re)connection: see ds_redis_epoch() */
static unsigned g_epoch;

unsigned ds_redis_epoch(void) { return __atomic_load_n(&g_epoch, __ATOMIC_RELAXED); }

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
    r->inflight = 0;
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
    identify(r);
    if (!r->ctx || r->ctx->err) { /* the server stopped answering meanwhile */
        snprintf(r->err, sizeof(r->err), "connect %s:%d: %s", r->url.host, r->url.port,
                 r->ctx ? r->ctx->errstr : "lost");
        drop(r);
        return DS_ERR_IO;
    }
    __atomic_add_fetch(&g_epoch, 1, __ATOMIC_RELAXED);
    return DS_ERR_OK;
}

const char *ds_redis_server_run_id(const ds_redis_t *r) {
    return r->ctx ? r->run_id : "";
}

/* RESP: *argc CRLF then $len CRLF bytes CRLF per argument. */
static ds_err_t put_resp_len(ds_buf_t *b, char type, size_t n) {
    char tmp[24];
    int k = (int)sizeof(tmp);
    tmp[--k] = '\n';
    tmp[--k] = '\r';
    do {
        tmp[--k] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    tmp[--k] = type;
    return ds_buf_append(b, tmp + k, sizeof(tmp) - (size_t)k);
}

static void capture_cmd(ds_redis_t *r, int argc, const char **argv, const size_t *lens) {
    ds_buf_t *b = r->capture;
    ds_err_t e = put_resp_len(b, '*', (size_t)argc);
    for (int i = 0; !e && i < argc; i++) {
        size_t l = lens ? lens[i] : strlen(argv[i]);
        e = put_resp_len(b, '$', l);
        if (!e)
            e = ds_buf_append(b, argv[i], l);
        if (!e)
            e = ds_buf_append(b, "\r\n", 2);
    }
    if (e) {
        DS_ERROR("redis", "out of memory formatting a command");
        abort(); /* a write silently missing would break exactly-once */
    }
    /* feed Redis the bytes of earlier sends while these are formatted */
    if ((++*r->capture_count & 127) == 0)
        ds_redis_pump(r);
}

void ds_redis_capture(ds_redis_t *r, ds_buf_t *out, size_t *count) {
    r->capture = out;
    r->capture_count = count;
}

size_t ds_redis_inflight(const ds_redis_t *r) { return r->inflight; }

void ds_redis_close(ds_redis_t *r) { drop(r); }

/* Write the queued bytes; `block`: all of them (the socket has
 * SO_SNDTIMEO from redisSetTimeout, so a stuck server ends in EAGAIN, not a
 * hang), else what the socket takes now. */
static ds_err_t write_out(ds_redis_t *r, bool block) {
    size_t done = 0;
    ds_err_t e = DS_ERR_OK;
    while (done < r->noutq) {
        ssize_t n = send(r->ctx->fd, r->outq[done].p, r->outq[done].len,
                         MSG_NOSIGNAL | (block ? 0 : MSG_DONTWAIT));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && !block && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            snprintf(r->err, sizeof(r->err), "write: %s",
                     n < 0 ? strerror(errno) : "connection closed");
            e = DS_ERR_IO;
            break;
        }
        r->outq[done].p += n;
        r->outq[done].len -= (size_t)n;
        if (!r->outq[done].len)
            done++;
    }
    if (e) {
        drop(r);
        return e;
    }
    memmove(r->outq, r->outq + done, (r->noutq - done) * sizeof(r->outq[0]));
    r->noutq -= done;
    return DS_ERR_OK;
}

void ds_redis_pump(ds_redis_t *r) {
    if (r->ctx && r->noutq)
        (void)write_out(r, false);
}

ds_err_t ds_redis_send(ds_redis_t *r, const void *cmds, size_t len, size_t ncmds) {
    if (!r->ctx || r->pending) {
        if (r->ctx)
            snprintf(r->err, sizeof(r->err), "send with queued commands");
        else if (!r->err[0])
            snprintf(r->err, sizeof(r->err), "not connected");
        drop(r);
        return DS_ERR_IO;
    }
    if (r->noutq == sizeof(r->outq) / sizeof(r->outq[0]) && write_out(r, true))
        return DS_ERR_IO;
    if (len) {
        r->outq[r->noutq].p = cmds;
        r->outq[r->noutq].len = len;
        r->noutq++;
    }
    if (write_out(r, false))
        return DS_ERR_IO;
    if (!r->inflight && ncmds)
        r->progress_ms = ds_clock_mono_ms(); /* the replies are owed from now */
    r->inflight += ncmds;
    return DS_ERR_OK;
}

/* Read n replies in order.  on_reply sees each (error replies included);
 * without it an error reply makes the result DS_ERR_IO.  An I/O error drops
 * the connection.  `inflight`: the replies are owed by ds_redis_send. */
static ds_err_t read_replies(ds_redis_t *r, size_t n, ds_redis_reply_fn on_reply, void *opaque,
                             bool inflight) {
    ds_err_t result = DS_ERR_OK;
    for (size_t i = 0; i < n; i++) {
        void *rep = NULL;
        if (redisGetReply(r->ctx, &rep) != REDIS_OK || !rep) {
            snprintf(r->err, sizeof(r->err), "%s", r->ctx->errstr[0] ? r->ctx->errstr : "no reply");
            drop(r);
            return DS_ERR_IO;
        }
        if (inflight) {
            r->inflight--;
            r->progress_ms = ds_clock_mono_ms();
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
    return result;
}

ds_err_t ds_redis_collect(ds_redis_t *r, size_t n) {
    if (!r->ctx) {
        if (!r->err[0])
            snprintf(r->err, sizeof(r->err), "not connected");
        return DS_ERR_IO;
    }
    if (n > r->inflight) {
        snprintf(r->err, sizeof(r->err), "collect of %zu replies, %zu in flight", n, r->inflight);
        drop(r);
        return DS_ERR_IO;
    }
    if (n && r->noutq && write_out(r, true))
        return DS_ERR_IO;
    return read_replies(r, n, NULL, NULL, true);
}

ds_err_t ds_redis_collect_avail(ds_redis_t *r, size_t max, size_t *got) {
    *got = 0;
    if (!r->ctx) {
        if (!r->err[0])
            snprintf(r->err, sizeof(r->err), "not connected");
        return DS_ERR_IO;
    }
    if (max > r->inflight) {
        snprintf(r->err, sizeof(r->err), "collect of %zu replies, %zu in flight", max,
                 r->inflight);
        drop(r);
        return DS_ERR_IO;
    }
    ds_redis_pump(r);
    ds_err_t result = DS_ERR_OK;
    while (r->ctx && *got < max) {
        void *rep = NULL;
        if (redisGetReplyFromReader(r->ctx, &rep) != REDIS_OK) {
            snprintf(r->err, sizeof(r->err), "%s", r->ctx->errstr);
            drop(r);
            return DS_ERR_IO;
        }
        if (rep) {
            r->inflight--;
            r->progress_ms = ds_clock_mono_ms();
            (*got)++;
            redisReply *reply = rep;
            if (reply->type == REDIS_REPLY_ERROR) {
                snprintf(r->err, sizeof(r->err), "%s", reply->str);
                result = DS_ERR_IO;
            }
            freeReplyObject(reply);
            continue;
        }
        /* nothing complete in the buffer: read only what is already there */
        struct pollfd pfd = {.fd = r->ctx->fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) <= 0)
            break;
        if (redisBufferRead(r->ctx) != REDIS_OK) {
            snprintf(r->err, sizeof(r->err), "%s", r->ctx->errstr[0] ? r->ctx->errstr : "read");
            drop(r);
            return DS_ERR_IO;
        }
    }
    if (!r->ctx)
        return DS_ERR_IO;
    if (r->inflight && ds_clock_mono_ms() - r->progress_ms > r->timeout_ms) {
        /* paused, or the connection is dead without an error: what is in
         * flight counts as lost; the caller sends it again */
        snprintf(r->err, sizeof(r->err), "no reply for %lld ms (redis.timeout_ms %d)",
                 (long long)(ds_clock_mono_ms() - r->progress_ms), r->timeout_ms);
        drop(r);
        return DS_ERR_TIMEOUT;
    }
    return result;
}

void ds_redis_cmd(ds_redis_t *r, int argc, const char **argv, const size_t *lens) {
    if (r->capture) {
        capture_cmd(r, argc, argv, lens);
        return;
    }
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
    if (r->inflight) {
        /* replies of asynchronous sends come first on this connection */
        snprintf(r->err, sizeof(r->err), "run with %zu replies in flight", r->inflight);
        drop(r);
        return DS_ERR_IO;
    }
    size_t n = r->pending;
    ds_err_t result = read_replies(r, n, on_reply, opaque, false);
    r->pending = 0;
    return result;
}

const char *ds_redis_errstr(const ds_redis_t *r) { return r->err; }
