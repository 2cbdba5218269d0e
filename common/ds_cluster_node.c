/*
 * ds_cluster_node.c — one master's connection in the cluster client
 * (ds_cluster_int.h).
 *
 * A node is dialed on first use and identified before anything is sent
 * (ds_redis_ident_connect: the orphan of a dropped connection ended, a
 * restart without the data noticed).  It keeps the byte ranges still to
 * write, pointing into the caller's buffers (nothing is copied; ranges
 * that touch are merged), written with sendmsg() either all at once (the
 * command timeout bounds it) or as far as the socket takes them; and a
 * ring of the replies it owes, by unit, in the order written.  A reply
 * belongs to the head of that ring: it is classified (ds_cluster_map.c),
 * a -MOVED updates the slot's owner, an -ASK names the node of the unit's
 * next attempt, a WAIT's count confirms the node's writes so far (or is
 * short), and the reply is kept for a synchronous run (ds_cluster_run).
 * A lost connection
 * (a failed write or read, or no reply within the timeout) fails every
 * reply the node owed, marks the map for a refresh and notes the writes
 * no WAIT confirmed there as possibly lost.  Error replies and failed
 * connections are counted per node and kind.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ds_clock.h"
#include "ds_cluster_int.h"

/* ---- metrics -------------------------------------------------------------------- */

void ds_cl_count_error(ds_cluster_t *c, int ni, ds_cluster_kind_t k) {
    if (!c->metrics || k == DS_CLUSTER_OK)
        return;
    node_t *n = &c->nodes[ni];
    if (!n->m_err[k]) {
        char l[512];
        snprintf(l, sizeof(l), "%snode=\"%s\",kind=\"%s\",class=\"%s\"", c->labels, n->name,
                 ds_cluster_kind_name(k), ds_cluster_kind_class(k));
        n->m_err[k] = ds_metrics_counter(c->metrics, "redis_node_errors",
                                         "Error replies and failed connections, by Redis node "
                                         "and kind",
                                         l);
    }
    ds_counter_add(n->m_err[k], 1);
    if (k == DS_CLUSTER_MOVED || k == DS_CLUSTER_ASK || k == DS_CLUSTER_TRYAGAIN ||
        k == DS_CLUSTER_CLUSTERDOWN || k == DS_CLUSTER_LOADING) {
        if (!c->m_redirect[k]) {
            char l[256];
            snprintf(l, sizeof(l), "%skind=\"%s\"", c->labels, ds_cluster_kind_name(k));
            c->m_redirect[k] = ds_metrics_counter(
                c->metrics, "redis_redirects",
                "Redis Cluster replies that sent a command elsewhere or again (moved, ask, "
                "tryagain, clusterdown, loading)",
                l);
        }
        ds_counter_add(c->m_redirect[k], 1);
    }
}

/* ---- nodes ---------------------------------------------------------------------- */

int ds_cl_node_for(ds_cluster_t *c, const ds_cluster_addr_t *a) {
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].addr.port == a->port && !strcmp(c->nodes[i].addr.host, a->host))
            return (int)i;
    node_t *nn = realloc(c->nodes, (c->nnodes + 1) * sizeof(*nn));
    if (!nn) {
        DS_ERROR("redis", "out of memory adding a cluster node");
        abort(); /* a write routed nowhere would be lost silently */
    }
    c->nodes = nn;
    node_t *n = &nn[c->nnodes];
    memset(n, 0, sizeof(*n));
    n->addr = *a;
    snprintf(n->name, sizeof(n->name), "%s:%d", a->host, a->port);
    n->known = ds_redis_known_server(c->known, n->name);
    return (int)c->nnodes++;
}

bool ds_cl_node_connect(ds_cluster_t *c, int ni) {
    node_t *n = &c->nodes[ni];
    if (n->ctx && n->noscript && !n->q_len && n->out_n == n->out_head)
        ds_cl_node_reset(n); /* its scripts were flushed: a new connection loads them */
    if (n->ctx)
        return true;
    n->noscript = false;
    char e[400];
    bool refused = false;
    n->ctx =
        ds_redis_dial(&c->url, n->addr.host, n->addr.port, c->timeout_ms, &refused, e, sizeof(e));
    if (!n->ctx) {
        ds_cl_set_err(c, "%s", e);
        ds_cl_count_error(c, ni, refused ? DS_CLUSTER_REFUSED : DS_CLUSTER_DOWN);
        if (refused)
            c->fatal = true;
        else
            c->down_seen = true;
        return false;
    }
    /* its identity first: the orphan of a dropped connection ended, and
     * a restart without the data noticed, before anything is sent */
    if (!ds_redis_ident_connect(n->ctx, &n->ident, c->known, n->name, e, sizeof(e))) {
        /* SO_RCVTIMEO: no answer within the timeout */
        bool timeout = n->ctx->err && (errno == EAGAIN || errno == EWOULDBLOCK);
        ds_cl_set_err(c, "%s%s", e, timeout ? " (redis.timeout_ms)" : "");
        ds_cl_count_error(c, ni, DS_CLUSTER_DOWN);
        redisFree(n->ctx);
        n->ctx = NULL;
        c->down_seen = true;
        c->timed_out |= timeout;
        return false;
    }
    if (c->script) {
        ds_redis_script_t sr =
            ds_redis_script_load(n->ctx, c->script, c->script_sha, n->name, e, sizeof(e));
        if (sr != DS_REDIS_SCRIPT_OK) {
            ds_cl_set_err(c, "%s", e);
            ds_cl_count_error(c, ni,
                              sr == DS_REDIS_SCRIPT_REFUSED ? DS_CLUSTER_REFUSED : DS_CLUSTER_DOWN);
            if (sr == DS_REDIS_SCRIPT_REFUSED)
                c->fatal = true;
            else
                c->down_seen = true;
            redisFree(n->ctx);
            n->ctx = NULL;
            return false;
        }
    }
    return true;
}

void ds_cl_node_reset(node_t *n) {
    ds_redis_ident_drop(&n->ident, n->ctx && (n->q_len || n->out_n > n->out_head));
    if (n->ctx)
        redisFree(n->ctx);
    n->ctx = NULL;
    n->out_head = n->out_n = 0;
    n->q_head = n->q_len = 0;
}

/* Node n is gone or no longer a master: writes no WAIT confirmed there
 * may be lost (replication is asynchronous). */
void ds_cl_node_forget_writes(node_t *n) {
    if (n->wseq > n->waited)
        ds_redis_lost_note(&n->lost, n->ident.run_id);
    n->wseq = n->waited = 0;
}

/* The connection to node ni is gone: every reply it owed is lost. */
void ds_cl_node_fail(ds_cluster_t *c, int ni, const char *why) {
    node_t *n = &c->nodes[ni];
    ds_cl_set_err(c, "%s: %s", n->name, why && why[0] ? why : "connection lost");
    ds_cl_count_error(c, ni, DS_CLUSTER_DOWN);
    c->down_seen = true;
    for (size_t i = 0; i < n->q_len; i++) {
        qent_t *q = &n->q[(n->q_head + i) & (n->q_cap - 1)];
        unit_t *u = ds_cl_unit_at(c, q->unit);
        u->left -= q->replies;
        u->kind = ds_cluster_kind_merge((ds_cluster_kind_t)u->kind, DS_CLUSTER_DOWN);
        if (!u->left)
            ds_cl_unit_finish(c, q->unit);
    }
    ds_cl_node_reset(n);
    ds_cl_node_forget_writes(n);
    c->need_refresh = c->need_backoff = true;
}

void ds_cl_q_push(node_t *n, uint64_t unit, uint32_t replies, uint64_t mark) {
    if (!n->q_len)
        n->progress_ms = ds_clock_mono_ms(); /* its replies are owed from now */
    if (n->q_len == n->q_cap) {
        size_t nc = n->q_cap ? n->q_cap * 2 : 256;
        qent_t *nq = malloc(nc * sizeof(*nq));
        if (!nq) {
            DS_ERROR("redis", "out of memory queuing a cluster reply");
            abort();
        }
        for (size_t i = 0; i < n->q_len; i++)
            nq[i] = n->q[(n->q_head + i) & (n->q_cap - 1)];
        free(n->q);
        n->q = nq;
        n->q_cap = nc;
        n->q_head = 0;
    }
    n->q[(n->q_head + n->q_len++) & (n->q_cap - 1)] = (qent_t){unit, mark, replies};
}

void ds_cl_out_push(node_t *n, const void *p, size_t len) {
    if (!len)
        return;
    if (n->out_n > n->out_head) {
        struct iovec *last = &n->out[n->out_n - 1];
        if ((const char *)last->iov_base + last->iov_len == (const char *)p) {
            last->iov_len += len; /* contiguous with the last range */
            return;
        }
    }
    if (n->out_n == n->out_cap) {
        if (n->out_head) { /* move what is left to the front */
            memmove(n->out, n->out + n->out_head, (n->out_n - n->out_head) * sizeof(*n->out));
            n->out_n -= n->out_head;
            n->out_head = 0;
        }
        if (n->out_n == n->out_cap) {
            size_t nc = n->out_cap ? n->out_cap * 2 : 256;
            struct iovec *no = realloc(n->out, nc * sizeof(*no));
            if (!no) {
                DS_ERROR("redis", "out of memory queuing a cluster write");
                abort();
            }
            n->out = no;
            n->out_cap = nc;
        }
    }
    n->out[n->out_n++] = (struct iovec){(void *)p, len};
}

/* Write node ni's queued bytes: all of them (`block`: the socket has the
 * command timeout as SO_SNDTIMEO) or what the socket takes now. */
bool ds_cl_node_write(ds_cluster_t *c, int ni, bool block) {
    node_t *n = &c->nodes[ni];
    while (n->ctx && n->out_head < n->out_n) {
        size_t cnt = n->out_n - n->out_head;
        struct msghdr mh;
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = n->out + n->out_head;
        mh.msg_iovlen = cnt > 512 ? 512 : cnt;
        ssize_t w = sendmsg(n->ctx->fd, &mh, MSG_NOSIGNAL | (block ? 0 : MSG_DONTWAIT));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && !block && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (w <= 0) {
            char why[128];
            snprintf(why, sizeof(why), "write: %s", w < 0 ? strerror(errno) : "connection closed");
            ds_cl_node_fail(c, ni, why);
            return false;
        }
        size_t left = (size_t)w;
        while (left) {
            struct iovec *v = &n->out[n->out_head];
            if (left >= v->iov_len) {
                left -= v->iov_len;
                n->out_head++;
            } else {
                v->iov_base = (char *)v->iov_base + left;
                v->iov_len -= left;
                left = 0;
            }
        }
    }
    if (n->out_head == n->out_n)
        n->out_head = n->out_n = 0;
    return n->ctx != NULL;
}

/* One reply from node ni: it belongs to the head of its queue. */
static void on_reply(ds_cluster_t *c, int ni, redisReply *r) {
    node_t *n = &c->nodes[ni];
    n->progress_ms = ds_clock_mono_ms();
    qent_t *q = &n->q[n->q_head];
    uint64_t k = q->unit;
    unit_t *u = ds_cl_unit_at(c, k);
    ds_cluster_kind_t kind;
    ds_cluster_redirect_t to;
    bool mine = true; /* a reply to one of the unit's commands (not ASKING's) */
    if (u->asking) {
        u->asking = 0;
        mine = false;
        kind = ds_cluster_reply_kind(r, &to);
    } else {
        kind = ds_cluster_reply_kind(r, &to);
        if (u->wait_n >= 0 && kind != DS_CLUSTER_OK) {
            /* a WAIT refused (e.g. by a node that became a replica): down */
            kind = DS_CLUSTER_DOWN;
        } else if (u->wait_n >= 0 && (r->type != REDIS_REPLY_INTEGER || r->integer < u->wait_n)) {
            kind = DS_CLUSTER_SHORT;
            ds_cl_set_err(c, "WAIT on %s: %lld of %lld replicas acknowledged the writes", n->name,
                          r->type == REDIS_REPLY_INTEGER ? r->integer : -1LL, u->wait_n);
        } else if (u->wait_n >= 0 && q->mark > n->waited) {
            n->waited = q->mark;
        }
    }
    if (kind != DS_CLUSTER_OK) {
        ds_cl_count_error(c, ni, kind);
        n->noscript |= kind == DS_CLUSTER_NOSCRIPT;
        if (kind == DS_CLUSTER_MOVED || kind == DS_CLUSTER_ASK) {
            if (!to.to.host[0])
                ds_strlcpy(to.to.host, n->addr.host, sizeof(to.to.host));
            int t = ds_cl_node_for(c, &to.to);
            n = &c->nodes[ni]; /* ds_cl_node_for may move the array */
            q = &n->q[n->q_head];
            if (kind == DS_CLUSTER_MOVED) {
                c->owner[to.slot] = (int16_t)t;
                c->nodes[t].master = true;
            } else {
                u->ask = t;
            }
        }
        if (kind != DS_CLUSTER_SHORT) {
            const char *text = r->type == REDIS_REPLY_ERROR ? r->str : "error inside EXEC";
            if (r->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i < r->elements; i++)
                    if (r->element[i]->type == REDIS_REPLY_ERROR) {
                        text = r->element[i]->str;
                        break;
                    }
            ds_cl_set_err(c, "%s from %s: %s", ds_cluster_kind_class(kind), n->name, text);
        }
        u->kind = ds_cluster_kind_merge((ds_cluster_kind_t)u->kind, kind);
    }
    if (mine && c->keeping && u->wait_n < 0 && u->got < u->ncmds) {
        redisReply **slot = &c->kept[u->keep + u->got];
        if (*slot)
            freeReplyObject(*slot);
        *slot = r;
        r = NULL;
    }
    if (r)
        freeReplyObject(r);
    if (mine)
        u->got++;
    u->left--;
    if (!--q->replies) {
        n->q_head = (n->q_head + 1) & (n->q_cap - 1);
        n->q_len--;
    }
    if (!u->left)
        ds_cl_unit_finish(c, k);
}

/* Read one reply from node ni, waiting for it.  False: connection lost. */
bool ds_cl_read_one(ds_cluster_t *c, int ni) {
    node_t *n = &c->nodes[ni];
    void *rep = NULL;
    if (redisGetReply(n->ctx, &rep) != REDIS_OK || !rep) {
        bool timeout = errno == EAGAIN || errno == EWOULDBLOCK; /* SO_RCVTIMEO */
        char why[200];
        if (timeout)
            snprintf(why, sizeof(why), "no reply within %d ms (redis.timeout_ms)", c->timeout_ms);
        else
            snprintf(why, sizeof(why), "read: %s", n->ctx->errstr[0] ? n->ctx->errstr : "no reply");
        ds_cl_node_fail(c, ni, why);
        /* a node that does not answer is not repaired within this call
         * (a new connection would wait as long again): the call fails */
        c->timed_out |= timeout;
        return false;
    }
    on_reply(c, ni, rep);
    return true;
}

/* Handle the replies of node ni already in hiredis's buffer. */
static void read_buffered(ds_cluster_t *c, int ni) {
    node_t *n = &c->nodes[ni];
    while (n->ctx && n->q_len) {
        void *rep = NULL;
        if (redisGetReplyFromReader(n->ctx, &rep) != REDIS_OK) {
            ds_cl_node_fail(c, ni, n->ctx->errstr);
            return;
        }
        if (!rep)
            return;
        on_reply(c, ni, rep);
    }
}

#define POLL_MAX 64

/* Read the replies the nodes have already sent, without waiting: one
 * poll() over every node that owes replies, one read from each that has
 * bytes, until none has. */
void ds_cl_read_avail_all(ds_cluster_t *c) {
    for (;;) {
        struct pollfd pfd[POLL_MAX];
        int idx[POLL_MAX], n = 0;
        for (size_t i = 0; i < c->nnodes && n < POLL_MAX; i++) {
            read_buffered(c, (int)i);
            if (c->nodes[i].ctx && c->nodes[i].q_len) {
                pfd[n] = (struct pollfd){.fd = c->nodes[i].ctx->fd, .events = POLLIN};
                idx[n++] = (int)i;
            }
        }
        if (!n || poll(pfd, (nfds_t)n, 0) <= 0)
            return;
        for (int k = 0; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            node_t *nd = &c->nodes[idx[k]];
            if (nd->ctx && redisBufferRead(nd->ctx) != REDIS_OK)
                ds_cl_node_fail(c, idx[k], nd->ctx->errstr[0] ? nd->ctx->errstr : "read");
        }
    }
}
