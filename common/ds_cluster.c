/*
 * ds_cluster.c — the Redis Cluster client of ds_cluster.h (its pure
 * helpers, which this file routes by, are in ds_cluster_map.c).
 *
 * The client keeps every unit (one command, or MULTI … EXEC) from the
 * moment it is given until its replies are reported to the caller, in a
 * ring numbered in the caller's order.  Each master has one connection,
 * a queue of byte ranges still to write (pointing into the caller's
 * buffers: nothing is copied) and a queue of the units whose replies it
 * owes, in the order they were written.  A reply is matched to the head of
 * its node's queue; a unit is done when all its replies are in, and the
 * caller is told about done units in order only.  A node's connection,
 * its queues and the matching of replies are in ds_cluster_node.c; both
 * files share the state through ds_cluster_int.h.
 *
 * A unit that must be sent again (redirect, busy, down, a lost node) marks
 * the earliest such unit; before anything is sent again every reply still
 * outstanding on any node is read (so no older attempt can land after a
 * newer one), the map is refreshed if a redirect or a lost node asks for
 * it, a busy or down reply backs off, and then that unit and every later
 * one are routed and written again in order (a unit that got -ASK goes to
 * the named node behind ASKING).  A repair that does not succeed within
 * the command timeout (or REPAIR_ROUNDS rounds) fails the call: everything
 * in flight is dropped and the caller sends its batch again later.
 *
 * Cost: one RESP parse per command sent (its name and key, no copy) and a
 * CRC16 of the hash tag; replies are parsed by hiredis as on one node.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_backoff.h"
#include "ds_clock.h"
#include "ds_cluster_int.h"

/* ---- the client ------------------------------------------------------------------ */

#define NONE UINT64_MAX
#define REPAIR_ROUNDS 64
#define BACKOFF_MIN_MS 5
#define BACKOFF_MAX_MS 250

static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";

void ds_cl_set_err(ds_cluster_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
}

static bool parse_addr(const char *s, size_t n, ds_cluster_addr_t *a) {
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ':')
            colon = s + i;
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(a->host))
        return false;
    char port[8];
    size_t pl = n - (size_t)(colon - s) - 1;
    if (!pl || pl >= sizeof(port))
        return false;
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
    char *end;
    long p = strtol(port, &end, 10);
    if (*end || p <= 0 || p > 65535)
        return false;
    memcpy(a->host, s, (size_t)(colon - s));
    a->host[colon - s] = '\0';
    a->port = (int)p;
    return true;
}

ds_cluster_t *ds_cluster_new(const ds_cluster_opts_t *o) {
    ds_cluster_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->url = *o->url;
    c->timeout_ms = o->timeout_ms;
    c->known = o->known;
    c->script = o->script;
    c->script_sha = o->script_sha;
    c->first_failed = NONE;
    for (size_t i = 0; i < DS_CLUSTER_NSLOTS; i++)
        c->owner[i] = -1;
    ds_buf_init(&c->sbuf, 0);
    c->u_cap = 256;
    c->u = calloc(c->u_cap, sizeof(*c->u));
    size_t cap = 2; /* the URL's node, and one more than the commas */
    for (const char *p = o->seeds; p && *p; p++)
        cap += *p == ',';
    c->seeds = calloc(cap, sizeof(*c->seeds));
    if (!c->u || !c->seeds) {
        ds_cluster_destroy(c);
        return NULL;
    }
    ds_strlcpy(c->seeds[0].host, o->url->host, sizeof(c->seeds[0].host));
    c->seeds[0].port = o->url->port;
    c->nseeds = 1;
    for (const char *p = o->seeds; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n && parse_addr(p, n, &c->seeds[c->nseeds]))
            c->nseeds++;
        p = e ? e + 1 : p + n;
    }
    c->metrics = o->metrics;
    if (o->metrics_labels && o->metrics_labels[0])
        snprintf(c->labels, sizeof(c->labels), "%s,", o->metrics_labels);
    if (c->metrics) {
        char l[200];
        snprintf(l, sizeof(l), "%.*s", c->labels[0] ? (int)strlen(c->labels) - 1 : 0, c->labels);
        c->m_nodes = ds_metrics_gauge(
            c->metrics, "redis_cluster_nodes",
            "Masters in the Redis Cluster slot map (absent with one plain Redis)", l);
    }
    return c;
}

void ds_cluster_destroy(ds_cluster_t *c) {
    if (!c)
        return;
    ds_cluster_close(c);
    for (size_t i = 0; i < c->nnodes; i++)
        ds_cl_node_reset(&c->nodes[i]);
    for (size_t i = 0; i < c->nnodes; i++) {
        free(c->nodes[i].out);
        free(c->nodes[i].q);
    }
    free(c->nodes);
    free(c->seeds);
    free(c->u);
    free(c->kept);
    ds_buf_free(&c->sbuf);
    free(c);
}

const char *ds_cluster_errstr(const ds_cluster_t *c) {
    return c->err;
}
bool ds_cluster_fatal(const ds_cluster_t *c) {
    return c->fatal;
}
size_t ds_cluster_nodes(const ds_cluster_t *c) {
    return c->nmasters;
}
bool ds_cluster_connected(const ds_cluster_t *c) {
    return c->have_map;
}
size_t ds_cluster_inflight(const ds_cluster_t *c) {
    return c->inflight;
}
size_t ds_cluster_pending(const ds_cluster_t *c) {
    return c->scount;
}
bool ds_cluster_take_lost(ds_cluster_t *c) {
    bool l = false;
    for (size_t i = 0; i < c->nnodes; i++)
        if (ds_redis_lost_take(&c->nodes[i].lost, c->known, c->nodes[i].known))
            l = true;
    return l;
}

/* ---- a unit's outcome -------------------------------------------------------------- */

static void note_failed(ds_cluster_t *c, uint64_t k, ds_cluster_kind_t kind) {
    if (k < c->first_failed || c->first_failed == NONE)
        c->first_failed = k;
    switch (kind) {
    case DS_CLUSTER_MOVED:
        c->need_refresh = true;
        break;
    case DS_CLUSTER_ASK:
        break;
    case DS_CLUSTER_CLUSTERDOWN:
    case DS_CLUSTER_DOWN:
    case DS_CLUSTER_NOSCRIPT:
        c->need_refresh = true;
        c->need_backoff = true;
        break;
    default:
        c->need_backoff = true;
        break;
    }
    if (ds_cluster_kind_fatal(kind))
        c->fatal = true;
}

void ds_cl_unit_finish(ds_cluster_t *c, uint64_t k) {
    unit_t *u = ds_cl_unit_at(c, k);
    u->state = U_DONE;
    if (u->kind != DS_CLUSTER_OK)
        note_failed(c, k, (ds_cluster_kind_t)u->kind);
    else if (u->key && u->node >= 0) /* a write confirmed: its key proves the node's state */
        ds_redis_known_proof(c->known, c->nodes[u->node].known, u->key, u->key_len);
}

/* ---- the slot map ----------------------------------------------------------------- */

static void map_apply(ds_cluster_t *c, const ds_cluster_map_t *m) {
    size_t known = c->nnodes;
    bool *was = malloc((known ? known : 1) * sizeof(bool));
    int *map = malloc((m->nnodes ? m->nnodes : 1) * sizeof(int));
    if (!map || !was) {
        DS_ERROR("redis", "out of memory applying the cluster map");
        abort();
    }
    for (size_t i = 0; i < known; i++) {
        was[i] = c->nodes[i].master;
        c->nodes[i].master = false;
    }
    for (size_t i = 0; i < m->nnodes; i++) {
        map[i] = ds_cl_node_for(c, &m->nodes[i]);
        c->nodes[map[i]].master = true;
    }
    for (size_t s = 0; s < DS_CLUSTER_NSLOTS; s++)
        c->owner[s] = m->owner[s] >= 0 ? (int16_t)map[m->owner[s]] : -1;
    free(map);
    c->nmasters = m->nnodes;
    for (size_t i = 0; i < known; i++)
        if (was[i] && !c->nodes[i].master)
            ds_cl_node_forget_writes(&c->nodes[i]);
    free(was);
    /* a node that owns no slot any more is not written to: close it once idle */
    for (size_t i = 0; i < c->nnodes; i++)
        if (!c->nodes[i].master && c->nodes[i].ctx && !c->nodes[i].q_len &&
            c->nodes[i].out_n == c->nodes[i].out_head)
            ds_cl_node_reset(&c->nodes[i]);
    c->have_map = true;
    if (c->m_nodes)
        ds_gauge_set(c->m_nodes, (double)c->nmasters);
}

/* CLUSTER SLOTS from node ni; false when it gave no map. */
static bool map_from(ds_cluster_t *c, int ni) {
    if (!ds_cl_node_connect(c, ni))
        return false;
    node_t *n = &c->nodes[ni];
    if (n->q_len || n->out_n > n->out_head)
        return false; /* replies outstanding: not now */
    redisReply *r = redisCommand(n->ctx, "CLUSTER SLOTS");
    if (!r) {
        ds_cl_node_fail(c, ni, c->nodes[ni].ctx->errstr);
        return false;
    }
    bool ok = false;
    if (r->type == REDIS_REPLY_ERROR) {
        ds_cluster_kind_t k = ds_cluster_reply_kind(r, NULL);
        ds_cl_set_err(c, "CLUSTER SLOTS on %s: %s", n->name, r->str);
        ds_cl_count_error(c, ni, k);
        if (k == DS_CLUSTER_REFUSED)
            c->fatal = true;
    } else {
        ds_cluster_map_t m;
        memset(&m, 0, sizeof(m));
        char e[200];
        ds_err_t pe = ds_cluster_map_parse(&m, r, n->addr.host, e, sizeof(e));
        if (!pe && m.nnodes) {
            map_apply(c, &m); /* may move c->nodes: n is stale after it */
            n = &c->nodes[ni];
            ds_log_rl(&c->rl_map, 5000, DS_LOG_INFO, "redis",
                      "cluster slot map from %s: %zu masters, %zu of %d slots covered", n->name,
                      m.nnodes, ds_cluster_map_covered(&m), DS_CLUSTER_NSLOTS);
            ok = true;
        } else {
            ds_cl_set_err(c, "CLUSTER SLOTS on %s: %s", n->name, pe ? e : "no slots assigned");
        }
        ds_cluster_map_free(&m);
    }
    freeReplyObject(r);
    return ok;
}

/* The map from any node that answers: known masters, other known nodes,
 * then the seeds. */
static ds_err_t refresh_map(ds_cluster_t *c) {
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < c->nnodes; i++)
            if (c->nodes[i].master == (pass == 0) && map_from(c, (int)i))
                return DS_ERR_OK;
    for (size_t i = 0; i < c->nseeds; i++)
        if (map_from(c, ds_cl_node_for(c, &c->seeds[i])))
            return DS_ERR_OK;
    return DS_ERR_IO;
}

ds_err_t ds_cluster_connect(ds_cluster_t *c) {
    if (c->have_map)
        return DS_ERR_OK;
    c->fatal = false;
    ds_err_t e = refresh_map(c);
    if (!e)
        c->down_seen = c->timed_out = false;
    return e;
}

/* ---- units ------------------------------------------------------------------------ */

static uint64_t unit_add(ds_cluster_t *c) {
    if (c->u_tail - c->u_head == c->u_cap) {
        size_t nc = c->u_cap * 2;
        unit_t *nu = malloc(nc * sizeof(*nu));
        if (!nu) {
            DS_ERROR("redis", "out of memory tracking cluster writes");
            abort();
        }
        for (uint64_t k = c->u_head; k < c->u_tail; k++)
            nu[k & (nc - 1)] = *ds_cl_unit_at(c, k);
        free(c->u);
        c->u = nu;
        c->u_cap = nc;
    }
    uint64_t k = c->u_tail++;
    memset(ds_cl_unit_at(c, k), 0, sizeof(unit_t));
    return k;
}

static int any_master(ds_cluster_t *c) {
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].master && c->nodes[i].ctx)
            return (int)i;
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].master)
            return (int)i;
    return -1;
}

/* Route unit k and queue its bytes (one attempt).  A unit that cannot be
 * sent (no owner, node unreachable) is done at once with that outcome. */
static void route(ds_cluster_t *c, uint64_t k) {
    unit_t *u = ds_cl_unit_at(c, k);
    u->kind = DS_CLUSTER_OK;
    u->got = 0;
    u->asking = 0;
    u->state = U_SENT;
    if (u->tries < 255)
        u->tries++;
    if (c->keeping)
        for (uint32_t i = 0; i < u->ncmds; i++)
            if (c->kept[u->keep + i]) {
                freeReplyObject(c->kept[u->keep + i]);
                c->kept[u->keep + i] = NULL;
            }
    if (u->wait_n >= 0 || u->bcast) {
        /* a WAIT: to every node with writes no WAIT confirmed yet; the
         * probe's PING: to every master */
        u->node = -1;
        u->left = 0;
        for (size_t i = 0; i < c->nnodes; i++) {
            if (u->bcast ? !c->nodes[i].master : c->nodes[i].wseq <= c->nodes[i].waited)
                continue;
            if (!ds_cl_node_connect(c, (int)i)) {
                u->kind = ds_cluster_kind_merge((ds_cluster_kind_t)u->kind, DS_CLUSTER_DOWN);
                continue;
            }
            node_t *n = &c->nodes[i];
            ds_cl_out_push(n, u->p, u->len);
            ds_cl_q_push(n, k, 1, n->wseq);
            u->left++;
        }
        if (!u->left && u->bcast && u->kind == DS_CLUSTER_OK) {
            ds_cl_set_err(c, "no master in the cluster map");
            u->kind = DS_CLUSTER_CLUSTERDOWN;
        }
        if (!u->left)
            ds_cl_unit_finish(c, k);
        return;
    }
    int ni;
    if (u->ask >= 0) {
        ni = u->ask;
        u->ask = -1;
        u->asking = 1;
    } else {
        ni = u->slot >= 0 ? c->owner[u->slot] : any_master(c);
    }
    if (ni < 0) {
        ds_cl_set_err(c, "slot %d has no master in the cluster map", (int)u->slot);
        u->kind = DS_CLUSTER_CLUSTERDOWN;
        u->asking = 0;
        ds_cl_unit_finish(c, k);
        return;
    }
    if (!ds_cl_node_connect(c, ni)) {
        u->kind = c->fatal ? DS_CLUSTER_REFUSED : DS_CLUSTER_DOWN;
        u->asking = 0;
        ds_cl_unit_finish(c, k);
        return;
    }
    node_t *n = &c->nodes[ni];
    if (u->asking)
        ds_cl_out_push(n, asking_cmd, sizeof(asking_cmd) - 1);
    ds_cl_out_push(n, u->p, u->len);
    u->left = u->ncmds + u->asking;
    u->node = ni;
    ds_cl_q_push(n, k, u->left, 0);
    n->wseq++;
}

/* Split `len` bytes of commands into units (a MULTI … EXEC group is one,
 * on one slot) and route them.  keep: the index of the first command's
 * reply in kept[]. */
static ds_err_t add_units(ds_cluster_t *c, const char *p, size_t len, size_t ncmds) {
    size_t off = 0, cmds = 0;
    while (off < len) {
        ds_cluster_cmd_t cmd;
        if (ds_cluster_cmd_parse(p + off, len - off, &cmd)) {
            ds_cl_set_err(c, "unreadable command at byte %zu of %zu", off, len);
            return DS_ERR_INVAL;
        }
        uint64_t k = unit_add(c);
        unit_t *u = ds_cl_unit_at(c, k);
        u->p = p + off;
        u->keep = cmds;
        u->ask = -1;
        u->wait_n = -1;
        u->ncmds = 1;
        u->slot = ds_cluster_cmd_slot(&cmd);
        off += cmd.size;
        if (cmd.key && ds_redis_cmd_keeps_key(cmd.name, cmd.name_len)) {
            u->key = cmd.key;
            u->key_len = cmd.key_len;
        }
        if (ds_cluster_cmd_is(&cmd, "PING") && cmd.argc == 1) {
            u->bcast = 1;
        } else if (ds_cluster_cmd_is(&cmd, "WAIT") && cmd.arg1) {
            char num[24];
            size_t l = cmd.arg1_len < sizeof(num) - 1 ? cmd.arg1_len : sizeof(num) - 1;
            memcpy(num, cmd.arg1, l);
            num[l] = '\0';
            u->wait_n = strtoll(num, NULL, 10);
        } else if (ds_cluster_cmd_is(&cmd, "MULTI")) {
            bool closed = false;
            while (!closed && off < len) {
                if (ds_cluster_cmd_parse(p + off, len - off, &cmd)) {
                    ds_cl_set_err(c, "unreadable command at byte %zu of %zu", off, len);
                    return DS_ERR_INVAL;
                }
                off += cmd.size;
                u->ncmds++;
                closed = ds_cluster_cmd_is(&cmd, "EXEC") || ds_cluster_cmd_is(&cmd, "DISCARD");
                if (!u->key && cmd.key && ds_redis_cmd_keeps_key(cmd.name, cmd.name_len)) {
                    u->key = cmd.key;
                    u->key_len = cmd.key_len;
                }
                int s = ds_cluster_cmd_slot(&cmd);
                if (s >= 0 && u->slot < 0)
                    u->slot = s;
                else if (s >= 0 && s != u->slot) {
                    ds_cl_set_err(c,
                                  "a transaction spans slots %d and %d (keys of one atomic write "
                                  "need one hash tag)",
                                  (int)u->slot, s);
                    c->fatal = true;
                    return DS_ERR_INVAL;
                }
            }
            if (!closed) {
                ds_cl_set_err(c, "MULTI without EXEC");
                c->fatal = true;
                return DS_ERR_INVAL;
            }
        }
        u->len = (size_t)(p + off - u->p);
        cmds += u->ncmds;
        c->inflight += u->ncmds;
        route(c, k);
    }
    if (cmds != ncmds) {
        ds_cl_set_err(c, "send of %zu commands holds %zu", ncmds, cmds);
        return DS_ERR_INVAL;
    }
    return DS_ERR_OK;
}

static void drop_units(ds_cluster_t *c) {
    for (size_t i = 0; i < c->nnodes; i++) {
        node_t *n = &c->nodes[i];
        if (n->q_len || n->out_n > n->out_head) {
            /* replies owed to units forgotten: the connection goes, and
             * with it what a WAIT on it would have covered */
            ds_cl_node_reset(n);
            ds_cl_node_forget_writes(n);
        }
    }
    c->u_head = c->u_tail = 0;
    c->inflight = 0;
    c->first_failed = NONE;
    c->need_refresh = c->need_backoff = false;
}

/* A connection with nothing owed stays open: a WAIT on it still covers
 * the writes it carried (WAIT counts per connection). */
void ds_cluster_close(ds_cluster_t *c) {
    drop_units(c);
    ds_buf_reset(&c->sbuf);
    c->scount = 0;
    c->have_map = false;
}

void ds_cluster_pump(ds_cluster_t *c) {
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].ctx && c->nodes[i].out_n > c->nodes[i].out_head)
            (void)ds_cl_node_write(c, (int)i, false);
}

/* Every byte written and every reply read, on every node. */
static void drain(ds_cluster_t *c) {
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].ctx)
            (void)ds_cl_node_write(c, (int)i, true);
    for (size_t i = 0; i < c->nnodes; i++)
        while (c->nodes[i].ctx && c->nodes[i].q_len)
            if (!ds_cl_read_one(c, (int)i))
                break;
}

/* Send again, in order, the earliest unit that failed and every later
 * one, until none fails (see the header comment).  DS_ERR_IO when the
 * bound is reached or a reply is fatal. */
static ds_err_t repair(ds_cluster_t *c) {
    int64_t start = ds_clock_mono_ms();
    ds_backoff_t backoff = ds_backoff_make(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    for (int round = 0;; round++) {
        drain(c);
        if (c->fatal)
            return DS_ERR_IO;
        if (c->first_failed == NONE) {
            c->down_seen = c->timed_out = false;
            return DS_ERR_OK;
        }
        if (c->timed_out)
            return DS_ERR_IO; /* a node does not answer: no new attempt now */
        int64_t spent = ds_clock_mono_ms() - start;
        if (round >= REPAIR_ROUNDS || spent >= c->timeout_ms) {
            char last[600];
            ds_strlcpy(last, c->err, sizeof(last));
            ds_cl_set_err(c, "%s (still failing after %d tries in %lld ms)", last, round + 1,
                          (long long)spent);
            return DS_ERR_IO;
        }
        if (c->need_backoff) {
            int64_t left = c->timeout_ms - spent;
            int64_t ms = ds_backoff_next(&backoff);
            ds_clock_sleep_ms(ms < left ? ms : left);
            c->need_backoff = false;
        }
        if (c->need_refresh) {
            c->need_refresh = false;
            (void)refresh_map(c); /* else the old map and MOVED's update */
            if (c->fatal)
                return DS_ERR_IO;
        }
        uint64_t from = c->first_failed;
        c->first_failed = NONE;
        for (uint64_t k = from; k < c->u_tail; k++)
            route(c, k);
    }
}

/* Pop the done units at the head while they fit in `max` commands. */
static size_t pop_done(ds_cluster_t *c, size_t max) {
    size_t got = 0;
    while (c->u_head < c->u_tail) {
        unit_t *u = ds_cl_unit_at(c, c->u_head);
        if (u->state != U_DONE || u->kind != DS_CLUSTER_OK || got + u->ncmds > max)
            break;
        got += u->ncmds;
        c->inflight -= u->ncmds;
        c->u_head++;
    }
    return got;
}

/* Fail the call: everything in flight goes (the caller sends it again).
 * When a node was lost or did not answer, the map goes too: the caller
 * sees it is not connected (and reconnects, reading the map again). */
static ds_err_t fail_all(ds_cluster_t *c) {
    drop_units(c);
    if (c->down_seen || c->timed_out)
        c->have_map = false;
    c->down_seen = c->timed_out = false;
    return DS_ERR_IO;
}

/* Wait until the oldest n commands are done (repairing on the way). */
static ds_err_t wait_for(ds_cluster_t *c, size_t n) {
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].ctx)
            (void)ds_cl_node_write(c, (int)i, true);
    size_t got = 0;
    for (;;) {
        got += pop_done(c, n - got);
        if (got == n)
            return DS_ERR_OK;
        if (c->first_failed != NONE) {
            if (repair(c))
                return fail_all(c);
            continue;
        }
        if (c->u_head == c->u_tail) {
            ds_cl_set_err(c, "collect of %zu commands: a unit does not end there", n);
            return fail_all(c);
        }
        uint64_t k = c->u_head;
        unit_t *u = ds_cl_unit_at(c, k);
        if (u->state == U_DONE) { /* done but does not fit: a unit split by n */
            ds_cl_set_err(c, "collect of %zu commands splits a unit", n);
            return fail_all(c);
        }
        bool read = false;
        for (size_t i = 0; i < c->nnodes; i++) {
            node_t *nd = &c->nodes[i];
            if (nd->ctx && nd->q_len && nd->q[nd->q_head].unit == k) {
                (void)ds_cl_read_one(c, (int)i);
                read = true;
            }
        }
        if (!read) { /* no node owes it a reply: a bug, not a hang */
            ds_cl_set_err(c, "the oldest command waits for a reply no node owes");
            drain(c);
            return fail_all(c);
        }
    }
}

ds_err_t ds_cluster_send(ds_cluster_t *c, const void *cmds, size_t len, size_t ncmds) {
    if (!c->have_map) {
        if (!c->err[0])
            ds_cl_set_err(c, "not connected");
        return DS_ERR_IO;
    }
    if (c->scount) {
        ds_cl_set_err(c, "send with queued commands");
        ds_cluster_close(c);
        return DS_ERR_IO;
    }
    if (add_units(c, cmds, len, ncmds)) {
        drain(c);
        return fail_all(c);
    }
    ds_cluster_pump(c);
    return DS_ERR_OK;
}

/* A collect of n replies needs the map and n commands in flight (more is
 * the caller's bug: every command in flight is failed). */
static ds_err_t collect_check(ds_cluster_t *c, size_t n) {
    if (!c->have_map) {
        if (!c->err[0])
            ds_cl_set_err(c, "not connected");
        return DS_ERR_IO;
    }
    if (n > c->inflight) {
        ds_cl_set_err(c, "collect of %zu replies, %zu in flight", n, c->inflight);
        drain(c);
        return fail_all(c);
    }
    return DS_ERR_OK;
}

ds_err_t ds_cluster_collect(ds_cluster_t *c, size_t n) {
    ds_err_t e = collect_check(c, n);
    return e ? e : wait_for(c, n);
}

ds_err_t ds_cluster_collect_avail(ds_cluster_t *c, size_t max, size_t *got) {
    *got = 0;
    ds_err_t e = collect_check(c, max);
    if (e)
        return e;
    ds_cluster_pump(c);
    ds_cl_read_avail_all(c);
    int64_t now = ds_clock_mono_ms();
    for (size_t i = 0; i < c->nnodes; i++) {
        node_t *n = &c->nodes[i];
        if (n->ctx && n->q_len && now - n->progress_ms > c->timeout_ms) {
            /* paused, or the connection is dead without an error: what is
             * in flight counts as lost; the caller sends it again */
            char why[160];
            snprintf(why, sizeof(why), "no reply for %lld ms (redis.timeout_ms %d)",
                     (long long)(now - n->progress_ms), c->timeout_ms);
            ds_cl_node_fail(c, (int)i, why);
            c->timed_out = true;
        }
    }
    if (c->timed_out) {
        (void)fail_all(c);
        return DS_ERR_TIMEOUT;
    }
    if (c->first_failed != NONE && repair(c))
        return fail_all(c);
    *got = pop_done(c, max);
    return DS_ERR_OK;
}

/* ---- the synchronous pipeline -------------------------------------------------- */

void ds_cluster_cmd(ds_cluster_t *c, int argc, const char **argv, const size_t *lens) {
    if (ds_redis_format(&c->sbuf, argc, argv, lens)) {
        DS_ERROR("redis", "out of memory formatting a command");
        abort();
    }
    c->scount++;
}

void ds_cluster_discard(ds_cluster_t *c) {
    ds_buf_reset(&c->sbuf);
    c->scount = 0;
}

ds_err_t ds_cluster_run(ds_cluster_t *c, ds_redis_reply_fn fn, void *opaque) {
    size_t n = c->scount;
    c->scount = 0;
    if (!c->have_map) {
        ds_buf_reset(&c->sbuf);
        if (!c->err[0])
            ds_cl_set_err(c, "not connected");
        return DS_ERR_IO;
    }
    if (c->inflight) {
        ds_buf_reset(&c->sbuf);
        ds_cl_set_err(c, "run with %zu replies in flight", c->inflight);
        ds_cluster_close(c);
        return DS_ERR_IO;
    }
    if (n > c->nkept) {
        redisReply **nk = realloc(c->kept, n * sizeof(*nk));
        if (!nk) {
            DS_ERROR("redis", "out of memory reading replies");
            abort();
        }
        c->kept = nk;
        c->nkept = n;
    }
    if (c->kept)
        memset(c->kept, 0, c->nkept * sizeof(*c->kept));
    c->keeping = true;
    ds_err_t e = add_units(c, (const char *)c->sbuf.data, c->sbuf.len, n);
    if (e) {
        drain(c);
        fail_all(c);
    } else {
        e = wait_for(c, n);
    }
    c->keeping = false;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = c->kept[i];
        if (!e && r && fn)
            fn(opaque, i, ds_reply_of(r));
        else if (!e && r && r->type == REDIS_REPLY_ERROR) {
            ds_cl_set_err(c, "%s", r->str);
            e = DS_ERR_IO;
        }
        if (r)
            freeReplyObject(r);
        c->kept[i] = NULL;
    }
    ds_buf_reset(&c->sbuf);
    return e;
}
