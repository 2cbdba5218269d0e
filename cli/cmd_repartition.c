/*
 * cmd_repartition.c — `dealsignal repartition --from TOPIC --to TOPIC`:
 * copies a topic whose records are keyed by anything (lead id, activity
 * id, …) to one keyed by each record's unit id — account_id (lead_id
 * without account) for a MarketingEvent, deal_id for a CrmEvent — so that
 * one unit's records share a partition of the copy.
 *
 * Stateless: its only state is its consumer group's committed offsets.
 * Records go out in rounds; a round's source offsets are stored only
 * after every record of it is acknowledged (idempotent producer), so a
 * crash copies some records twice (the workers apply an event_id once)
 * and loses none.  A failed delivery sends the whole round again, in
 * order.
 *
 * Order: the workers apply one unit's records in partition order, and the
 * rules depend on it (paths, follow and group credit).  A unit's records
 * come from several source partitions, so they are merged: each round
 * takes the record with the smallest (occurred_at, timestamp, partition,
 * offset) among the heads of the assigned partitions, and waits for a
 * partition that has nothing buffered until it has, is at its end
 * (partition EOF), or --max-wait-ms have passed.  A backlog is therefore
 * copied in event-time order (within a source partition the order is
 * kept as it is); a live stream goes out as it arrives.
 *
 * Records it cannot decode are copied with their own key (the worker
 * sends them to its DLQ with the precise reason).  A record that carries
 * a `dealsignal.error` header comes from a DLQ: only `wrong_key` ones are
 * re-keyed and copied (fed back); others are skipped and counted, so that
 * a DLQ fed back can never loop.  `dealsignal.*` headers are not copied.
 *
 * Memory: at most PART_MAX decoded records per source partition (the
 * partition is paused beyond it), plus one round (ROUND_MAX records).
 */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "codec.h"
#include "ds_backoff.h"
#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_config.h"
#include "ds_kafka.h"
#include "ds_log.h"
#include "ds_registry.h"
#include "worker.h"

#define ROUND_MAX 10000
#define PART_MAX 50000
#define MAX_X 32

static volatile sig_atomic_t g_stop;
static void on_sig(int s) {
    (void)s;
    g_stop = 1;
}

typedef enum { R_REKEY, R_FORWARD, R_SKIP } rkind_t;

typedef struct rrec {
    rd_kafka_message_t *m;
    int64_t at; /* occurred_at; INT64_MIN: out as soon as it is a head */
    int64_t ts; /* the record's timestamp */
    char *key;  /* R_REKEY: the unit id */
    rkind_t kind;
    bool same; /* already keyed by its unit id */
} rrec_t;

typedef struct rpart {
    bool assigned, eof, paused;
    int64_t empty_since; /* nothing buffered, not at its end, since (ms) */
    rrec_t *q;           /* ring */
    size_t head, n, cap;
} rpart_t;

typedef struct rp {
    rd_kafka_t *c, *p;
    const char *from, *to;
    ds_codec_t *codec;
    ds_arena_t arena;
    rpart_t *parts;
    int nparts;
    int assigned;
    rrec_t *round;
    size_t nround;
    int max_wait_ms;
    uint64_t rekeyed, same, forwarded, skipped;
    bool failed; /* stopped on an error */
    ds_log_rl_t rl_skip;
} rp_t;

static void usage(FILE *o) {
    fprintf(o, "usage: dealsignal repartition --from TOPIC --to TOPIC [--brokers LIST]\n"
               "                              [--group-id ID] [--schemas DIR]\n"
               "                              [--schema-registry URL] [--max-wait-ms N]\n"
               "                              [--exit-at-end] [--log-level L] [-X k=v]\n\n"
               "Copies TOPIC to a topic keyed by each record's unit id: account_id (lead_id\n"
               "without account) for a MarketingEvent, deal_id for a CrmEvent, the keys the\n"
               "workers need.  For producers that key by another id (lead, activity): let them\n"
               "write to a raw topic and run this from it to the worker's input topic.\n"
               "A backlog is copied in event-time order (merged across source partitions).\n"
               "A DLQ (<input>.dlq) can be fed back: its wrong_key records are re-keyed, its\n"
               "other records skipped.  Undecodable records are copied with their own key.\n"
               "Offsets are committed after delivery (idempotent producer): a restart resumes.\n\n"
               "  --group-id ID     consumer group (default dealsignal-repartition)\n"
               "  --max-wait-ms N   longest wait for a source partition with nothing buffered\n"
               "                    before the others go on without it (default 1000)\n"
               "  --exit-at-end     exit 0 once every partition is copied to its end\n"
               "  -X k=v            librdkafka property for the consumer and the producer\n"
               "                    (e.g. partitioner=murmur2_random to place keys as Java\n"
               "                    producers do)\n");
}

/* ---- buffers ------------------------------------------------------------- */

static rpart_t *part(rp_t *r, int32_t p) {
    if (p < 0)
        return NULL;
    if (p >= r->nparts) {
        int n = p + 1;
        rpart_t *np = realloc(r->parts, (size_t)n * sizeof(*np));
        if (!np)
            return NULL;
        memset(np + r->nparts, 0, (size_t)(n - r->nparts) * sizeof(*np));
        r->parts = np;
        r->nparts = n;
    }
    return &r->parts[p];
}

static rrec_t *q_at(rpart_t *pt, size_t i) {
    return &pt->q[(pt->head + i) % pt->cap];
}

static bool q_push(rpart_t *pt, const rrec_t *x) {
    if (pt->n == pt->cap) {
        size_t nc = pt->cap ? pt->cap * 2 : 256;
        rrec_t *nq = malloc(nc * sizeof(*nq));
        if (!nq)
            return false;
        for (size_t i = 0; i < pt->n; i++)
            nq[i] = *q_at(pt, i);
        free(pt->q);
        pt->q = nq;
        pt->cap = nc;
        pt->head = 0;
    }
    pt->q[(pt->head + pt->n++) % pt->cap] = *x;
    return true;
}

static void rec_free(rrec_t *x) {
    if (x->m)
        rd_kafka_message_destroy(x->m);
    free(x->key);
    memset(x, 0, sizeof(*x));
}

static void drop_part(rpart_t *pt) {
    for (size_t i = 0; i < pt->n; i++)
        rec_free(q_at(pt, i));
    free(pt->q);
    memset(pt, 0, sizeof(*pt));
}

static void set_paused(rp_t *r, int32_t p, bool pause) {
    rpart_t *pt = &r->parts[p];
    if (pt->paused == pause)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, r->from, p);
    (pause ? rd_kafka_pause_partitions : rd_kafka_resume_partitions)(r->c, l);
    rd_kafka_topic_partition_list_destroy(l);
    pt->paused = pause;
}

/* ---- rebalance ----------------------------------------------------------- */

static void on_assigned(void *opaque, const rd_kafka_topic_partition_list_t *parts) {
    rp_t *r = opaque;
    for (int i = 0; i < parts->cnt; i++) {
        rpart_t *pt = part(r, parts->elems[i].partition);
        if (pt && !pt->assigned) {
            pt->assigned = true;
            r->assigned++;
        }
    }
    DS_INFO("repartition", "copying %d partition(s) of %s to %s", r->assigned, r->from, r->to);
}

static void on_revoked(void *opaque, const rd_kafka_topic_partition_list_t *parts) {
    rp_t *r = opaque;
    (void)parts;
    /* rounds are produced and stored between polls: nothing is in flight
     * here; what is buffered is dropped and fetched again by the next
     * owner from the committed offsets */
    rd_kafka_resp_err_t err = rd_kafka_commit(r->c, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        DS_WARN("repartition", "commit on revoke: %s", rd_kafka_err2str(err));
    for (int p = 0; p < r->nparts; p++)
        drop_part(&r->parts[p]);
    r->assigned = 0;
}

/* ---- classify ------------------------------------------------------------ */

static bool header(const rd_kafka_message_t *m, const char *name, char *out, size_t n) {
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t vl;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &vl))
        return false;
    snprintf(out, n, "%.*s", (int)vl, v ? (const char *)v : "");
    return true;
}

/* Decode m as a MarketingEvent, else as a CrmEvent; DS_ERR_IO when the
 * schema registry does not answer (tried again for up to a minute). */
static ds_err_t decode(rp_t *r, const rd_kafka_message_t *m, const char **key, int64_t *at) {
    char detail[256];
    ds_err_t e = DS_ERR_IO;
    for (int64_t wait = 500, waited = 0; !g_stop; waited += wait, wait *= 2) {
        ds_arena_reset(&r->arena);
        ds_ma_event_t ma;
        ds_crm_event_t crm;
        e = ds_codec_decode_ma(r->codec, m->payload, m->len, &r->arena, &ma, detail,
                               sizeof(detail));
        if (!e) {
            *key = ma.account_id && ma.account_id[0] ? ma.account_id : ma.lead_id;
            *at = ma.occurred_at;
        } else if (e == DS_ERR_WRONG_TYPE) {
            e = ds_codec_decode_crm(r->codec, m->payload, m->len, &r->arena, &crm, detail,
                                    sizeof(detail));
            if (!e) {
                *key = crm.deal_id;
                *at = crm.occurred_at;
            }
        }
        if (e != DS_ERR_IO || waited >= 60000)
            break;
        DS_WARN("repartition", "cannot decode %s[%d]@%lld yet (%s); again in %lld ms", r->from,
                (int)m->partition, (long long)m->offset, detail, (long long)wait);
        ds_clock_sleep_ms(wait);
    }
    return e;
}

/* x for m: re-keyed, copied as it is, or skipped.  False when the schema
 * registry did not answer: m is not taken. */
static bool classify(rp_t *r, rd_kafka_message_t *m, rrec_t *x) {
    memset(x, 0, sizeof(*x));
    x->m = m;
    x->at = INT64_MIN;
    rd_kafka_timestamp_type_t tt;
    x->ts = rd_kafka_message_timestamp(m, &tt);
    char code[64];
    bool from_dlq = header(m, "dealsignal.error", code, sizeof(code));
    if (from_dlq && strcmp(code, ds_err2str(DS_ERR_WRONG_KEY))) {
        x->kind = R_SKIP;
        ds_log_rl(&r->rl_skip, 10000, DS_LOG_WARN, "repartition",
                  "skipped a DLQ record with error=%s (%s[%d]@%lld): only wrong_key records are "
                  "fed back; fix the others at their source",
                  code, r->from, (int)m->partition, (long long)m->offset);
        return true;
    }
    x->kind = R_FORWARD;
    if (!m->payload)
        return true;
    const char *key = NULL;
    ds_err_t e = decode(r, m, &key, &x->at);
    if (e == DS_ERR_IO)
        return false;
    if (e || !key || !key[0] || !(x->key = strdup(key))) {
        x->at = INT64_MIN;
        return true; /* copied as it is: the worker says what is wrong with it */
    }
    x->kind = R_REKEY;
    x->same = m->key && m->key_len == strlen(key) && !memcmp(m->key, key, m->key_len);
    return true;
}

/* ---- merge --------------------------------------------------------------- */

static bool rec_before(const rrec_t *a, const rrec_t *b) {
    if (a->at != b->at)
        return a->at < b->at;
    if (a->ts != b->ts)
        return a->ts < b->ts;
    if (a->m->partition != b->m->partition)
        return a->m->partition < b->m->partition;
    return a->m->offset < b->m->offset;
}

/* Move the next record in merge order to the round; false when none may
 * go yet: nothing is buffered, or a partition with nothing buffered is
 * neither at its end nor waited for --max-wait-ms yet. */
static bool release_one(rp_t *r, int64_t now) {
    rpart_t *best = NULL;
    bool waiting = false;
    for (int p = 0; p < r->nparts; p++) {
        rpart_t *pt = &r->parts[p];
        if (!pt->assigned)
            continue;
        if (!pt->n) {
            if (!pt->eof && !pt->empty_since)
                pt->empty_since = now;
            waiting |= !pt->eof && now - pt->empty_since < r->max_wait_ms;
            continue;
        }
        if (!best || rec_before(q_at(pt, 0), q_at(best, 0)))
            best = pt;
    }
    if (!best || waiting)
        return false;
    r->round[r->nround++] = *q_at(best, 0);
    best->head = (best->head + 1) % best->cap;
    best->n--;
    return true;
}

/* ---- produce ------------------------------------------------------------- */

static rd_kafka_headers_t *copy_headers(const rd_kafka_message_t *m) {
    rd_kafka_headers_t *h = NULL, *out = NULL;
    if (rd_kafka_message_headers(m, &h))
        return NULL;
    const char *name;
    const void *v;
    size_t vl;
    for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &v, &vl); i++) {
        if (!strncmp(name, "dealsignal.", 11))
            continue;
        if (!out)
            out = rd_kafka_headers_new(4);
        rd_kafka_header_add(out, name, -1, v, v ? (ssize_t)vl : -1);
    }
    return out;
}

static ds_err_t produce_one(rp_t *r, const rrec_t *x, ds_delivery_t *d) {
    const rd_kafka_message_t *m = x->m;
    const void *key = x->kind == R_REKEY ? x->key : m->key;
    size_t klen = x->kind == R_REKEY ? strlen(x->key) : m->key_len;
    for (;;) {
        rd_kafka_headers_t *h = copy_headers(m);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            r->p, RD_KAFKA_V_TOPIC(r->to), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_TIMESTAMP(x->ts > 0 ? x->ts : 0), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        if (!err) {
            d->outstanding++;
            return DS_ERR_OK;
        }
        if (h)
            rd_kafka_headers_destroy(h);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            DS_ERROR("repartition", "produce to %s: %s", r->to, rd_kafka_err2str(err));
            return DS_ERR_IO;
        }
        rd_kafka_poll(r->p, 10);
    }
}

/* Produce the round, wait for every ack (the whole round again, in order,
 * after a failure), then store its source offsets.  False when stopped
 * before it was acknowledged (nothing stored). */
static bool flush_round(rp_t *r) {
    if (!r->nround)
        return true;
    ds_backoff_t backoff = ds_backoff_make(500, DS_BACKOFF_MAX_MS);
    for (;;) {
        ds_delivery_t d;
        memset(&d, 0, sizeof(d));
        bool ok = true;
        for (size_t i = 0; ok && i < r->nround; i++)
            if (r->round[i].kind != R_SKIP)
                ok = !produce_one(r, &r->round[i], &d);
        ds_err_t e;
        int64_t stop_by = 0;
        while ((e = ds_kafka_wait(r->p, &d, 1000)) == DS_ERR_TIMEOUT) {
            if (g_stop && !stop_by)
                stop_by = ds_clock_mono_ms() + 10000;
            if (stop_by && ds_clock_mono_ms() > stop_by) {
                DS_WARN("repartition",
                        "stopping with %zu deliveries unconfirmed: their source "
                        "offsets are not committed (copied again next time)",
                        d.outstanding);
                return false;
            }
        }
        if (ok && e == DS_ERR_OK)
            break;
        DS_WARN("repartition",
                "delivery of a round of %zu failed (%zu failed: %s); producing it "
                "again in %lld ms",
                r->nround, d.failed, rd_kafka_err2str(d.first_err),
                (long long)ds_backoff_peek(&backoff));
        if (g_stop)
            return false;
        ds_clock_sleep_ms(ds_backoff_next(&backoff));
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < r->nround; i++) {
        rrec_t *x = &r->round[i];
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, r->from, x->m->partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(l, r->from, x->m->partition);
        if (x->m->offset + 1 > tp->offset)
            tp->offset = x->m->offset + 1;
        switch (x->kind) {
        case R_REKEY:
            r->rekeyed++;
            r->same += x->same;
            break;
        case R_FORWARD:
            r->forwarded++;
            break;
        case R_SKIP:
            r->skipped++;
            break;
        }
        rec_free(x);
    }
    ds_kafka_store_offsets(r->c, l);
    rd_kafka_topic_partition_list_destroy(l);
    r->nround = 0;
    return true;
}

static void report(const rp_t *r, const char *when) {
    DS_INFO("repartition",
            "%s: %llu records re-keyed by unit id (%llu were keyed so already), %llu copied "
            "with their own key (not decodable), %llu DLQ records skipped (not wrong_key)",
            when, (unsigned long long)r->rekeyed, (unsigned long long)r->same,
            (unsigned long long)r->forwarded, (unsigned long long)r->skipped);
}

/* ---- main ---------------------------------------------------------------- */

static bool at_end(const rp_t *r) {
    if (!r->assigned || r->nround)
        return false;
    for (int p = 0; p < r->nparts; p++)
        if (r->parts[p].assigned && (r->parts[p].n || !r->parts[p].eof))
            return false;
    return true;
}

/* Take what the consumer has (waiting up to wait_ms for the first). */
static void take(rp_t *r, int wait_ms) {
    for (int k = 0; k < ROUND_MAX; k++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->c, k ? 0 : wait_ms);
        if (!m)
            return;
        rpart_t *pt =
            m->rkt && !strcmp(rd_kafka_topic_name(m->rkt), r->from) ? part(r, m->partition) : NULL;
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (pt) {
                    pt->eof = true;
                    pt->empty_since = 0;
                }
            } else {
                DS_WARN("repartition", "consumer: %s", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        if (!pt || !pt->assigned) {
            rd_kafka_message_destroy(m);
            continue;
        }
        pt->eof = false;
        pt->empty_since = 0;
        rrec_t x;
        if (!classify(r, m, &x)) {
            /* nothing of this partition after m may go: stop here; m and
             * what follows are consumed again next time */
            DS_ERROR("repartition", "the schema registry does not answer: stopping");
            rd_kafka_message_destroy(m);
            r->failed = true;
            g_stop = 1;
            return;
        }
        if (!q_push(pt, &x)) {
            DS_ERROR("repartition", "out of memory");
            abort(); /* dropping it would lose a record */
        }
        if (pt->n >= PART_MAX)
            set_paused(r, m->partition, true);
    }
}

int ds_cmd_repartition(int argc, char **argv) {
    const char *from = NULL, *to = NULL;
    const char *group = "dealsignal-repartition";
    const char *level = "info";
    int max_wait = 1000, exit_at_end = 0;
    ds_kv_pair_t x[MAX_X + 2]; /* consumer settings, then the -X pairs */
    size_t nx = 0;
    ds_cmd_conn_t cn;
    ds_cmd_conn_init(&cn, x, sizeof(x) / sizeof(x[0]));
    cn.registry_url = "";
    static const struct option opts[] = {{"brokers", required_argument, 0, 'b'},
                                         {"from", required_argument, 0, 'f'},
                                         {"to", required_argument, 0, 't'},
                                         {"group-id", required_argument, 0, 'g'},
                                         {"schemas", required_argument, 0, 'S'},
                                         {"schema-registry", required_argument, 0, 'R'},
                                         {"max-wait-ms", required_argument, 0, 'w'},
                                         {"exit-at-end", no_argument, 0, 'e'},
                                         {"log-level", required_argument, 0, 'l'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    /* ours first: -X pairs come after them and win */
    static const char *const defs[][2] = {
        {"enable.partition.eof", "true"},
        {"statistics.interval.ms", "0"},
    };
#define NDEFS (sizeof(defs) / sizeof(defs[0]))
    for (size_t i = 0; i < NDEFS; i++) {
        x[nx].key = (char *)defs[i][0];
        x[nx++].value = (char *)defs[i][1];
    }
    cn.nx = nx;
    int ch;
    optind = 1;
    while ((ch = ds_cmd_getopt(argc, argv, "hX:", opts, "repartition")) != -1) {
        switch (ch) {
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'w':
            max_wait = (int)strtol(optarg, NULL, 10);
            break;
        case 'e':
            exit_at_end = 1;
            break;
        case 'l':
            level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            if (ds_cmd_conn_opt(&cn, ch, optarg, "repartition: -X needs key=value", usage))
                return 2;
        }
    }
    if (ds_cmd_no_more_args(argc, argv, optind, "repartition"))
        return 2;
    const char *brokers = cn.brokers, *schemas = cn.schemas, *registry = cn.registry_url;
    nx = cn.nx;
    if (!from || !to || !strcmp(from, to) || max_wait < 0 || ds_log_level_parse(level) < 0) {
        fprintf(stderr, "repartition: --from and --to name two different topics\n");
        usage(stderr);
        return 2;
    }
    ds_log_set_level((ds_log_level_t)ds_log_level_parse(level));
    ds_registry_init(1 << 24);
    ds_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.brokers = (char *)brokers;
    cfg.group_id = (char *)group;
    cfg.schemas_dir = (char *)schemas;
    cfg.schema_registry_url = (char *)registry;
    cfg.kafka = x;
    cfg.kafka_count = nx;
    ds_config_t pcfg = cfg; /* the producer: the -X pairs only */
    pcfg.kafka = x + NDEFS;
    pcfg.kafka_count = nx - NDEFS;

    rp_t r;
    memset(&r, 0, sizeof(r));
    r.from = from;
    r.to = to;
    r.max_wait_ms = max_wait;
    ds_arena_init(&r.arena, 0);
    int rc = 1;
    char err[512];
    ds_registry_t *reg = ds_registry_open(&cfg, err, sizeof(err));
    r.codec = reg ? ds_codec_new(reg, &ds_codec_default_ids, err, sizeof(err)) : NULL;
    r.round = calloc(ROUND_MAX, sizeof(*r.round));
    ds_kafka_hooks_t hooks = {.assigned = on_assigned, .revoked = on_revoked, .opaque = &r};
    if (r.codec && r.round) {
        r.p = ds_kafka_producer_new(&pcfg, err, sizeof(err));
        const char *topics[] = {from};
        if (r.p)
            r.c = ds_kafka_consumer_new(&cfg, topics, 1, &hooks, err, sizeof(err));
    } else if (!r.round) {
        snprintf(err, sizeof(err), "out of memory");
    }
    if (!r.c) {
        fprintf(stderr, "repartition: %s\n", err);
        goto out;
    }
    ds_cmd_catch_stop(on_sig);
    DS_INFO("repartition", "from=%s to=%s group=%s brokers=%s", from, to, group, brokers);
    rc = 0;
    int64_t last_report = ds_clock_mono_ms();
    while (!g_stop) {
        take(&r, r.nround ? 0 : 50);
        int64_t now = ds_clock_mono_ms();
        while (r.nround < ROUND_MAX && release_one(&r, now))
            ;
        for (int p = 0; p < r.nparts; p++)
            if (r.parts[p].paused && r.parts[p].n < PART_MAX / 2)
                set_paused(&r, p, false);
        /* a round goes out when full or when nothing more may go now */
        if (r.nround && !flush_round(&r))
            break;
        if (ds_clock_mono_ms() - last_report >= 10000) {
            report(&r, "progress");
            last_report = ds_clock_mono_ms();
        }
        if (exit_at_end && at_end(&r))
            break;
    }
    report(&r, g_stop ? "stopped" : "done");
    if (r.failed)
        rc = 1;
    rd_kafka_resp_err_t cerr = rd_kafka_commit(r.c, NULL, 0);
    if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        DS_ERROR("repartition", "final commit: %s", rd_kafka_err2str(cerr));
        rc = 1;
    }
out:
    for (size_t i = 0; i < r.nround; i++)
        rec_free(&r.round[i]);
    if (r.c) { /* its revoke (on_revoked) drops the buffers */
        rd_kafka_consumer_close(r.c);
        rd_kafka_destroy(r.c);
    }
    for (int p = 0; p < r.nparts; p++)
        drop_part(&r.parts[p]);
    free(r.parts);
    if (r.p) {
        rd_kafka_flush(r.p, 10000);
        rd_kafka_destroy(r.p);
    }
    free(r.round);
    ds_arena_free(&r.arena);
    ds_codec_destroy(r.codec);
    ds_registry_destroy(reg);
    return rc;
}
