/*
 * ds_redis.c — pipelined hiredis with reconnect.
 *
 * Commands are kept in our own buffer (argv copies) until run, so that a
 * failed run can be told apart from a half-sent one: we never resend on our
 * own; the caller re-runs its idempotent batch.  hiredis appends formatted
 * commands to its output buffer, and redisGetReply flushes and reads.
 *
 * Cluster mode: when the probe at connection time (CLUSTER SLOTS) says the
 * server is a cluster node, a ds_cluster_t takes over every call; the
 * single-node code below is then unused.  WAIT on one node: its position
 * among the replies owed is noted at send time (the buffer is parsed only
 * when wait_replicas is set) and its reply checked when read.
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
 * before anything is sent again.  ds_cluster does the same per node, with
 * the functions of ds_redis_conn.h (ds_redis_ident_*), and both consult the same
 * table of known servers (ds_redis_known_*) to tell a restart that kept
 * the data from one that came back empty.
 */
#include "ds_redis.h"
#include "ds_redis_conn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ds_clock.h"
#include "ds_cluster.h"
#include "ds_log.h"

struct ds_redis {
    ds_redis_url_t url;
    int timeout_ms;
    redisContext *ctx;
    size_t pending;
    size_t inflight; /* replies owed by ds_redis_send */
    struct {         /* sent bytes the socket has not taken yet */
        const char *p;
        size_t len;
    } outq[8];
    size_t noutq;
    ds_buf_t *capture; /* ds_redis_capture target, or NULL */
    size_t *capture_count;
    ds_buf_t fmt; /* a command formatted for hiredis's output buffer */
    int64_t progress_ms;    /* last reply read, or first reply owed since */
    ds_redis_ident_t ident; /* this connection's, and the one dropped in flight */
    int known_server;       /* the server's entry in opts.known (-1: none yet) */
    char err[600];
    ds_redis_opts_t opts;
    ds_cluster_t *cl; /* non-NULL: the server is a cluster; it does everything */
    bool fatal;
    /* WAIT on one node: replies owed since the connection was made, read,
     * and where the WAITs among them are; writes sent and confirmed */
    uint64_t sent_no, read_no;
    struct {
        uint64_t at, mark;
        long long n;
    } waits[32];
    size_t wait_head, nwaits;
    uint64_t wseq, waited;
    ds_redis_lost_t lost;
    ds_counter_t *m_err[DS_CLUSTER__KINDS];
};

/* An error reply seen on the single connection: classified, kept as the
 * error text, counted; fatal when retrying cannot fix it. */
static void note_error(ds_redis_t *r, const redisReply *rep, const char *what) {
    ds_cluster_kind_t k = ds_cluster_reply_kind(rep, NULL);
    const char *text = rep->type == REDIS_REPLY_ERROR ? rep->str : "error inside EXEC";
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
        if (rep->element[i]->type == REDIS_REPLY_ERROR) {
            text = rep->element[i]->str; /* the command that failed inside EXEC */
            break;
        }
    if (k == DS_CLUSTER_MOVED || k == DS_CLUSTER_ASK) {
        snprintf(r->err, sizeof(r->err), "%s:%d answered '%s': it is a Redis Cluster node%s",
                 r->url.host, r->url.port, text,
                 r->opts.cluster == DS_REDIS_CLUSTER_OFF
                     ? " but redis.cluster is off"
                     : " that did not say so when asked (CLUSTER SLOTS)");
        r->fatal = true;
    } else {
        snprintf(r->err, sizeof(r->err), "%s%s%s (%s)", what ? what : "", what ? ": " : "", text,
                 ds_cluster_kind_class(k));
        if (ds_cluster_kind_fatal(k))
            r->fatal = true;
    }
    if (r->opts.metrics && k != DS_CLUSTER_OK) {
        if (!r->m_err[k]) {
            char l[512];
            snprintf(l, sizeof(l), "%s%snode=\"%s:%d\",kind=\"%s\",class=\"%s\"",
                     r->opts.metrics_labels ? r->opts.metrics_labels : "",
                     r->opts.metrics_labels && r->opts.metrics_labels[0] ? "," : "", r->url.host,
                     r->url.port, ds_cluster_kind_name(k), ds_cluster_kind_class(k));
            r->m_err[k] = ds_metrics_counter(r->opts.metrics, "redis_node_errors",
                                             "Error replies and failed connections, by Redis "
                                             "node and kind",
                                             l);
        }
        ds_counter_add(r->m_err[k], 1);
    }
}

void ds_redis_set_opts(ds_redis_t *r, const ds_redis_opts_t *o) {
    r->opts = *o;
}

bool ds_redis_fatal(const ds_redis_t *r) {
    return r->fatal || (r->cl && ds_cluster_fatal(r->cl));
}

bool ds_redis_is_cluster(const ds_redis_t *r) {
    return r->cl != NULL;
}

bool ds_redis_take_lost(ds_redis_t *r) {
    bool l = ds_redis_lost_take(&r->lost, r->opts.known, r->known_server);
    if (r->cl && ds_cluster_take_lost(r->cl))
        l = true;
    return l && r->opts.wait_replicas > 0;
}

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
    r->known_server = -1;
    ds_buf_init(&r->fmt, 0);
    return r;
}

static void drop(ds_redis_t *r) {
    ds_redis_ident_drop(&r->ident, r->ctx && (r->inflight || r->noutq));
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->pending = 0;
    r->inflight = 0;
    r->noutq = 0;
    if (r->wseq > r->waited) /* writes no WAIT confirmed went with the connection */
        ds_redis_lost_note(&r->lost, r->ident.run_id);
    r->wseq = r->waited = 0;
    r->sent_no = r->read_no = 0;
    r->nwaits = r->wait_head = 0;
}

void ds_redis_destroy(ds_redis_t *r) {
    if (!r)
        return;
    drop(r);
    ds_cluster_destroy(r->cl);
    ds_buf_free(&r->fmt);
    free(r);
}

bool ds_redis_connected(const ds_redis_t *r) {
    return r->cl ? ds_cluster_connected(r->cl) : r->ctx != NULL;
}

void ds_redis_note_written(ds_redis_t *r, const void *cmds, size_t len) {
    if (!r->opts.known || r->cl)
        return; /* a cluster takes its proofs from the replies */
    const char *p = cmds;
    for (size_t off = 0; off < len;) {
        ds_cluster_cmd_t cmd;
        if (ds_cluster_cmd_parse(p + off, len - off, &cmd))
            return;
        off += cmd.size;
        if (cmd.key && ds_redis_cmd_keeps_key(cmd.name, cmd.name_len)) {
            if (r->known_server < 0) {
                char name[300];
                snprintf(name, sizeof(name), "%s:%d", r->url.host, r->url.port);
                r->known_server = ds_redis_known_server(r->opts.known, name);
            }
            ds_redis_known_proof(r->opts.known, r->known_server, cmd.key, cmd.key_len);
            return;
        }
    }
}

bool ds_redis_take_emptied(ds_redis_t *r, char *why, size_t why_size) {
    return r->opts.known && ds_redis_known_take_emptied(r->opts.known, why, why_size);
}

/* Ask a fresh connection whether its server is a cluster node: 1 yes, 0
 * no, -1 could not tell now (err set). */
static int probe_cluster(ds_redis_t *r, redisContext *c, const char *name) {
    redisReply *rep = redisCommand(c, "CLUSTER SLOTS");
    if (!rep) {
        snprintf(r->err, sizeof(r->err), "%s: %s", name, c->errstr);
        return -1;
    }
    int is = -1;
    if (rep->type == REDIS_REPLY_ARRAY) {
        is = 1;
    } else if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "cluster support disabled")) {
        is = 0;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        /* e.g. no permission for CLUSTER: INFO tells as well */
        redisReply *info = redisCommand(c, "INFO cluster");
        if (info && info->type == REDIS_REPLY_STRING && strstr(info->str, "cluster_enabled:1"))
            is = 1;
        else if (info && info->type == REDIS_REPLY_STRING && strstr(info->str, "cluster_enabled:0"))
            is = 0;
        else if (!info)
            snprintf(r->err, sizeof(r->err), "%s: %s", name, c->errstr);
        else if (ds_cluster_reply_kind(rep, NULL) == DS_CLUSTER_LOADING ||
                 ds_cluster_reply_kind(rep, NULL) == DS_CLUSTER_BUSY)
            note_error(r, rep, name); /* ask again later */
        else {
            /* neither command allowed (a proxy, renamed commands): one
             * server as far as we can tell; a redirect would say otherwise */
            DS_INFO("redis",
                    "%s does not say whether it is a cluster node (%s): taken as one "
                    "plain Redis",
                    name, rep->str);
            is = 0;
        }
        if (info)
            freeReplyObject(info);
    }
    freeReplyObject(rep);
    return is;
}

/* Become a cluster client (the server said it is a cluster node). */
/* The cluster client's options: the URL's credentials and r's options. */
static ds_cluster_opts_t cluster_opts(ds_redis_t *r) {
    return (ds_cluster_opts_t){.url = &r->url,
                               .seeds = r->opts.seeds,
                               .timeout_ms = r->timeout_ms,
                               .metrics = r->opts.metrics,
                               .metrics_labels = r->opts.metrics_labels,
                               .known = r->opts.known,
                               .script = r->opts.script,
                               .script_sha = r->opts.script_sha};
}

static ds_err_t go_cluster(ds_redis_t *r) {
    if (r->url.db) {
        snprintf(r->err, sizeof(r->err),
                 "redis.url names database %d, but a Redis Cluster has database 0 only", r->url.db);
        r->fatal = true;
        return DS_ERR_IO;
    }
    ds_cluster_opts_t co = cluster_opts(r);
    r->cl = ds_cluster_new(&co);
    if (!r->cl) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        return DS_ERR_IO;
    }
    DS_INFO("redis", "%s:%d is a Redis Cluster node: routing by slot", r->url.host, r->url.port);
    return ds_cluster_connect(r->cl);
}

ds_err_t ds_redis_connect(ds_redis_t *r) {
    if (r->cl)
        return ds_cluster_connect(r->cl);
    if (r->ctx)
        return DS_ERR_OK;
    char name[300];
    snprintf(name, sizeof(name), "%s:%d", r->url.host, r->url.port);
    bool refused = false;
    redisContext *c = ds_redis_dial(&r->url, r->url.host, r->url.port, r->timeout_ms, &refused,
                                    r->err, sizeof(r->err));
    if (!c && !refused && r->opts.seeds && r->opts.seeds[0] &&
        r->opts.cluster != DS_REDIS_CLUSTER_OFF) {
        /* the first node is down: a seed that is a cluster node will do */
        ds_cluster_opts_t co = cluster_opts(r);
        ds_cluster_t *cl = ds_cluster_new(&co);
        if (cl && ds_cluster_connect(cl) == DS_ERR_OK && !r->url.db) {
            r->cl = cl;
            DS_INFO("redis", "%s is down; a seed node answered: routing by slot", name);
            return DS_ERR_OK;
        }
        ds_cluster_destroy(cl);
    }
    if (!c) {
        r->fatal = refused;
        return DS_ERR_IO;
    }
    if (r->opts.cluster != DS_REDIS_CLUSTER_OFF) {
        int is = probe_cluster(r, c, name);
        if (is < 0 || is == 1) {
            redisFree(c);
            return is < 0 ? DS_ERR_IO : go_cluster(r);
        }
        if (r->opts.cluster == DS_REDIS_CLUSTER_ON) {
            snprintf(r->err, sizeof(r->err),
                     "redis.cluster is on but %s is not a Redis Cluster node (cluster support "
                     "disabled)",
                     name);
            r->fatal = true;
            redisFree(c);
            return DS_ERR_IO;
        }
    }
    if (r->url.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", r->url.db);
        const char *sel[] = {"SELECT", db};
        redisReply *rep = redisCommandArgv(c, 2, sel, NULL);
        bool ok = rep && rep->type != REDIS_REPLY_ERROR;
        if (!rep)
            snprintf(r->err, sizeof(r->err), "SELECT: %s", c->errstr);
        else if (!ok)
            note_error(r, rep, "SELECT");
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            redisFree(c);
            return DS_ERR_IO;
        }
    }
    /* after SELECT: the proof of the known table is looked up in this db */
    if (!ds_redis_ident_connect(c, &r->ident, r->opts.known, name, r->err, sizeof(r->err))) {
        /* the server stopped answering meanwhile, or is not ready yet */
        redisFree(c);
        return DS_ERR_IO;
    }
    if (r->opts.script) {
        ds_redis_script_t sr = ds_redis_script_load(c, r->opts.script, r->opts.script_sha, name,
                                                    r->err, sizeof(r->err));
        if (sr != DS_REDIS_SCRIPT_OK) {
            r->fatal |= sr == DS_REDIS_SCRIPT_REFUSED;
            redisFree(c);
            return DS_ERR_IO;
        }
    }
    r->ctx = c;
    r->pending = 0;
    r->inflight = 0;
    if (r->known_server < 0)
        r->known_server = ds_redis_known_server(r->opts.known, name);
    return DS_ERR_OK;
}

static void capture_cmd(ds_redis_t *r, int argc, const char **argv, const size_t *lens) {
    if (ds_redis_format(r->capture, argc, argv, lens)) {
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

void ds_redis_capture_wait(ds_redis_t *r) {
    if (!r->capture || r->opts.wait_replicas <= 0)
        return;
    char n[16], t[16];
    snprintf(n, sizeof(n), "%d", r->opts.wait_replicas);
    snprintf(t, sizeof(t), "%d", r->opts.wait_timeout_ms);
    const char *argv[] = {"WAIT", n, t};
    capture_cmd(r, 3, argv, NULL);
}

size_t ds_redis_inflight(const ds_redis_t *r) {
    return r->cl ? ds_cluster_inflight(r->cl) : r->inflight;
}

void ds_redis_close(ds_redis_t *r) {
    if (r->cl)
        ds_cluster_close(r->cl);
    drop(r);
}

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
    if (r->cl)
        ds_cluster_pump(r->cl);
    else if (r->ctx && r->noutq)
        (void)write_out(r, false);
}

/* Note where the WAITs of a send are among the replies owed (and count
 * the writes before each): parsed only when WAIT is configured. */
static ds_err_t note_waits(ds_redis_t *r, const char *p, size_t len) {
    uint64_t at = r->sent_no;
    for (size_t off = 0; off < len; at++) {
        ds_cluster_cmd_t cmd;
        if (ds_cluster_cmd_parse(p + off, len - off, &cmd)) {
            snprintf(r->err, sizeof(r->err), "unreadable command at byte %zu of %zu", off, len);
            return DS_ERR_INVAL;
        }
        off += cmd.size;
        if (cmd.name_len == 4 && !strncasecmp(cmd.name, "WAIT", 4) && cmd.arg1) {
            if (r->nwaits == sizeof(r->waits) / sizeof(r->waits[0])) {
                snprintf(r->err, sizeof(r->err), "too many WAITs in flight");
                return DS_ERR_INVAL;
            }
            size_t i = (r->wait_head + r->nwaits++) % (sizeof(r->waits) / sizeof(r->waits[0]));
            r->waits[i].at = at;
            r->waits[i].mark = r->wseq;
            r->waits[i].n = strtoll(cmd.arg1, NULL, 10);
        } else {
            r->wseq++;
        }
    }
    return DS_ERR_OK;
}

/* A reply owed by a send was read: check it when it is a WAIT's. */
static bool check_wait(ds_redis_t *r, const redisReply *reply) {
    uint64_t no = r->read_no++;
    if (!r->nwaits || r->waits[r->wait_head].at != no)
        return true;
    long long n = r->waits[r->wait_head].n;
    uint64_t mark = r->waits[r->wait_head].mark;
    r->wait_head = (r->wait_head + 1) % (sizeof(r->waits) / sizeof(r->waits[0]));
    r->nwaits--;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= n) {
        if (mark > r->waited)
            r->waited = mark;
        return true;
    }
    if (reply->type == REDIS_REPLY_ERROR)
        note_error(r, reply, "WAIT");
    else
        snprintf(r->err, sizeof(r->err),
                 "WAIT on %s:%d: %lld of %lld replicas acknowledged the "
                 "writes",
                 r->url.host, r->url.port,
                 reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1LL, n);
    return false;
}

ds_err_t ds_redis_send(ds_redis_t *r, const void *cmds, size_t len, size_t ncmds) {
    if (r->cl)
        return ds_cluster_send(r->cl, cmds, len, ncmds);
    if (r->ctx && !r->pending && r->opts.wait_replicas > 0 && note_waits(r, cmds, len)) {
        drop(r);
        return DS_ERR_IO;
    }
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
    r->sent_no += ncmds;
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
        redisReply *reply = rep;
        if (inflight) {
            r->inflight--;
            r->progress_ms = ds_clock_mono_ms();
            if (!check_wait(r, reply))
                result = DS_ERR_IO;
        }
        if (reply->type == REDIS_REPLY_ERROR ||
            (reply->type == REDIS_REPLY_ARRAY && ds_cluster_reply_kind(reply, NULL))) {
            if (result == DS_ERR_OK || !on_reply)
                note_error(r, reply, NULL); /* the first one's text is kept */
            if (!on_reply || ds_redis_fatal(r))
                result = DS_ERR_IO;
        }
        if (on_reply)
            on_reply(opaque, i, ds_reply_of(reply));
        freeReplyObject(reply);
    }
    return result;
}

/* A collect of n replies needs the connection and n replies in flight
 * (more is the caller's bug: the connection is dropped). */
static ds_err_t collect_check(ds_redis_t *r, size_t n) {
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
    return DS_ERR_OK;
}

ds_err_t ds_redis_collect(ds_redis_t *r, size_t n) {
    if (r->cl)
        return ds_cluster_collect(r->cl, n);
    if (collect_check(r, n))
        return DS_ERR_IO;
    if (n && r->noutq && write_out(r, true))
        return DS_ERR_IO;
    return read_replies(r, n, NULL, NULL, true);
}

ds_err_t ds_redis_collect_avail(ds_redis_t *r, size_t max, size_t *got) {
    if (r->cl)
        return ds_cluster_collect_avail(r->cl, max, got);
    *got = 0;
    if (collect_check(r, max))
        return DS_ERR_IO;
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
            if (!check_wait(r, reply))
                result = DS_ERR_IO;
            if (reply->type == REDIS_REPLY_ERROR ||
                (reply->type == REDIS_REPLY_ARRAY && ds_cluster_reply_kind(reply, NULL))) {
                note_error(r, reply, NULL);
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
    if (r->cl) {
        ds_cluster_cmd(r->cl, argc, argv, lens);
        return;
    }
    if (!r->ctx)
        return; /* ds_redis_run will fail: not connected */
    /* formatted here, as captured writes are: hiredis's own formatter
     * costs several times as much (an sds per argument) */
    ds_buf_reset(&r->fmt);
    if (ds_redis_format(&r->fmt, argc, argv, lens) ||
        redisAppendFormattedCommand(r->ctx, (const char *)r->fmt.data, r->fmt.len) != REDIS_OK) {
        snprintf(r->err, sizeof(r->err), "append: %s",
                 r->ctx->errstr[0] ? r->ctx->errstr : "out of memory");
        drop(r);
        return;
    }
    r->pending++;
}

size_t ds_redis_pending(const ds_redis_t *r) {
    return r->cl ? ds_cluster_pending(r->cl) : r->pending;
}

void ds_redis_discard(ds_redis_t *r) {
    if (r->cl) {
        ds_cluster_discard(r->cl);
        return;
    }
    /* the only way to drop what hiredis has buffered is a new context */
    if (r->pending)
        drop(r);
}

ds_err_t ds_redis_run(ds_redis_t *r, ds_redis_reply_fn on_reply, void *opaque) {
    if (r->cl)
        return ds_cluster_run(r->cl, on_reply, opaque);
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

const char *ds_redis_errstr(const ds_redis_t *r) {
    return r->cl && ds_cluster_errstr(r->cl)[0] ? ds_cluster_errstr(r->cl) : r->err;
}
