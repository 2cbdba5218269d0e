/*
 * latency.c — produce-to-score latency at a fixed rate.
 *
 *   ds_bench_latency BROKERS RATE SECONDS [SCHEMAS_DIR]
 *
 * Topics: DS_LAT_IN (default ma.events) and DS_LAT_OUT (default
 * lead.scores), so that a scorer can be measured on topics of its own.
 * Produces MarketingEvents at RATE events/s for SECONDS, each stamped with
 * occurred_at = the wall time it is produced (ms), to ma.events; consumes
 * lead.scores from its end and, for each LeadScore, takes now − as_of (as_of
 * is the occurred_at of the event that moved the score) as the latency from
 * produce to the score on its topic.  Prints p50/p90/p99/max.  The first
 * DS_LAT_WARMUP seconds (default 3) are produced at the same rate but not
 * counted: the worker creates the state of every new lead then.
 *
 * The mix (DS_LAT_MIX):
 *   gen     (default) `dealsignal gen`'s marketing mix, the one the
 *           throughput bench measures, over DS_LAT_ACCOUNTS accounts
 *           (default 20000), with occurred_at replaced by the wall time;
 *   growth  a stress mix: 100,000 leads in 25,000 accounts, each event new
 *           content of a new insight, so that every event moves a score
 *           and every account's state grows all through the run.
 * DS_LAT_FETCH_WAIT_MS (default 5) is the consumer's fetch.wait.max.ms.
 * Runs against a scorer started separately (bench/run.sh does).
 */
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_kafka.h"
#include "codec.h"
#include "events.h"
#include "gen.h"

static volatile int g_done;
static volatile int64_t g_last_ms; /* when the consumer last got a score (mono) */
/* samples of events produced before this (ms, wall) are warm-up: not counted */
static volatile int64_t g_measure_from = INT64_MAX;
static double *g_lat;
static size_t g_nlat, g_cap;
/* the worst latency of the events produced in each second of the run */
#define MAX_SECS 3600
static double g_worst[MAX_SECS];
static const char *g_brokers, *g_schemas, *g_in, *g_out;

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *consume(void *arg) {
    (void)arg;
    char err[512];
    ds_registry_t *reg = ds_registry_new_dir(g_schemas, err, sizeof(err));
    ds_codec_t *codec = reg ? ds_codec_new(reg, &ds_codec_default_ids, err, sizeof(err)) : NULL;
    if (!codec) {
        fprintf(stderr, "latency: %s\n", err);
        exit(1);
    }
    char group[64];
    snprintf(group, sizeof(group), "latency-%lld", (long long)ds_clock_now_ms());
    char *fw = getenv("DS_LAT_FETCH_WAIT_MS");
    const ds_kv_pair_t defs[] = {
        {"group.id", group}, {"auto.offset.reset", "latest"}, {"fetch.wait.max.ms", fw ? fw : "5"}};
    rd_kafka_t *k = ds_kafka_client_new(RD_KAFKA_CONSUMER, rd_kafka_conf_new(), defs, 3, g_brokers,
                                        NULL, 0, NULL, err, sizeof(err));
    if (!k) {
        fprintf(stderr, "latency: %s\n", err);
        exit(1);
    }
    rd_kafka_poll_set_consumer(k);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, g_out, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(k, l);
    rd_kafka_topic_partition_list_destroy(l);
    ds_arena_t arena;
    ds_arena_init(&arena, 0);
    while (!g_done) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k, 100);
        if (!m)
            continue;
        if (!m->err) {
            g_last_ms = ds_clock_mono_ms();
            ds_lead_score_t s;
            char detail[128];
            ds_arena_reset(&arena);
            if (!ds_codec_decode_lead_score(codec, m->payload, m->len, &arena, &s, detail,
                                            sizeof(detail))) {
                double lat = (double)(ds_clock_now_ms() - s.as_of);
                if (s.as_of < g_measure_from) {
                    rd_kafka_message_destroy(m);
                    continue;
                }
                if (g_nlat == g_cap && !(g_lat = ds_grow(g_lat, &g_cap, sizeof(double), 65536))) {
                    fprintf(stderr, "latency: out of memory\n");
                    exit(1);
                }
                g_lat[g_nlat++] = lat;
                int64_t sec = (s.as_of - g_measure_from) / 1000;
                if (sec < MAX_SECS && lat > g_worst[sec])
                    g_worst[sec] = lat;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(k);
    rd_kafka_destroy(k);
    ds_arena_free(&arena);
    ds_codec_destroy(codec);
    ds_registry_destroy(reg);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s BROKERS RATE SECONDS [SCHEMAS_DIR]\n", argv[0]);
        return 2;
    }
    g_brokers = argv[1];
    double rate = strtod(argv[2], NULL);
    double secs = strtod(argv[3], NULL);
    g_schemas = argc > 4 ? argv[4] : DS_SOURCE_DIR "/schemas";
    g_in = getenv("DS_LAT_IN") ? getenv("DS_LAT_IN") : "ma.events";
    g_out = getenv("DS_LAT_OUT") ? getenv("DS_LAT_OUT") : "lead.scores";
    ds_registry_init(1 << 20);
    char err[512];
    ds_registry_t *reg = ds_registry_new_dir(g_schemas, err, sizeof(err));
    ds_codec_t *codec = reg ? ds_codec_new(reg, &ds_codec_default_ids, err, sizeof(err)) : NULL;
    if (!codec) {
        fprintf(stderr, "latency: %s\n", err);
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, consume, NULL);
    ds_clock_sleep_ms(4000); /* the consumer joins its group */
    /* linger.ms: the Kafka default since 4.0 */
    static const ds_kv_pair_t pdefs[] = {{"linger.ms", "5"}};
    rd_kafka_t *p = ds_kafka_client_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), pdefs, 1, g_brokers,
                                        NULL, 0, NULL, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "latency: %s\n", err);
        return 1;
    }
    { /* the topic's leaders before the clock starts: the first events are
       * not held waiting for the producer's metadata */
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p, g_in, NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(p, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    ds_buf_t b;
    ds_buf_init(&b, 0);
    double warmup = getenv("DS_LAT_WARMUP") ? strtod(getenv("DS_LAT_WARMUP"), NULL) : 3;
    g_measure_from = ds_clock_now_ms() + (int64_t)(warmup * 1000);
    int64_t start = ds_clock_mono_us();
    long n = 0, total = (long)(rate * (secs + warmup));
    const char *mix = getenv("DS_LAT_MIX") ? getenv("DS_LAT_MIX") : "gen";
    bool growth = !strcmp(mix, "growth");
    if (!growth && strcmp(mix, "gen")) {
        fprintf(stderr, "latency: DS_LAT_MIX is gen or growth, not %s\n", mix);
        return 2;
    }
    const char *accounts = getenv("DS_LAT_ACCOUNTS");
    ds_gen_opts_t go = {.seed = 11,
                        .accounts = accounts ? (int)strtol(accounts, NULL, 10) : 20000,
                        .mix = DS_GEN_MARKETING,
                        .start_ms = ds_clock_now_ms()};
    ds_gen_t *gen = growth ? NULL : ds_gen_new(&go);
    while (n < total) {
        int64_t due = start + (int64_t)((double)n * 1e6 / rate);
        /* sleep, do not spin: the machine has two cores and the worker,
         * Redis and the broker need them */
        for (int64_t ahead; (ahead = due - ds_clock_mono_us()) > 0;)
            rd_kafka_poll(p, ahead > 1000 ? (int)(ahead / 1000) : 1);
        ds_ma_event_t ev;
        char id[48], lead[64], acct[64], content[64], insight[64];
        const char *key;
        if (gen) {
            ds_gen_event_t ge;
            ds_gen_next(gen, &ge);
            ev = ge.ma;
            ev.occurred_at = ds_clock_now_ms();
            key = ev.account_id ? ev.account_id : ev.lead_id;
        } else {
            snprintf(id, sizeof(id), "lat-%lld-%ld", (long long)start, n);
            /* leads of this run only, 100,000 of them in 25,000 accounts: a
             * lead gets an event every 100,000, far from the score caps */
            snprintf(acct, sizeof(acct), "LA-%lld-%ld", (long long)start, n % 25000);
            snprintf(lead, sizeof(lead), "LL-%lld-%ld", (long long)start, n % 100000);
            /* new content of a new insight each round over the leads: every
             * event adds points, so every event moves a score */
            snprintf(content, sizeof(content), "lc-%lld-%ld", (long long)start, n / 100000);
            snprintf(insight, sizeof(insight), "li-%lld-%ld", (long long)start, n / 100000);
            ev = ds_ma_event_make(id, ds_clock_now_ms(), lead, acct, DS_MA_CONTENT_COMPLETED,
                                  content, insight, DS_CS_CONFRONT);
            key = acct;
        }
        ds_buf_reset(&b);
        if (ds_codec_encode_ma(codec, &ev, &b))
            return 1;
        while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(g_in),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_KEY(key, strlen(key)),
                                 RD_KAFKA_V_VALUE(b.data, b.len), RD_KAFKA_V_END) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 1);
        n++;
    }
    rd_kafka_flush(p, 10000);
    /* every score of a backlog counts: wait until none has come for 2 s
     * (at most 120 s) */
    int64_t stop_by = ds_clock_mono_ms() + 120000;
    g_last_ms = ds_clock_mono_ms();
    while (ds_clock_mono_ms() - g_last_ms < 2000 && ds_clock_mono_ms() < stop_by)
        ds_clock_sleep_ms(100);
    g_done = 1;
    pthread_join(t, NULL);
    if (!g_nlat) {
        fprintf(stderr, "latency: no LeadScore received\n");
        return 1;
    }
    if (getenv("DS_LAT_TRACE")) { /* by the second in which the events were produced */
        for (int64_t i = 0; i < (int64_t)secs && i < MAX_SECS; i++)
            fprintf(stderr, "%.0f ", g_worst[i]);
        fprintf(stderr, "(the worst ms of the events produced in each second)\n");
    }
    qsort(g_lat, g_nlat, sizeof(double), cmpd);
    printf("latency produce→%s at %.0f events/s over %.0f s: n=%zu p50=%.1f ms p90=%.1f ms "
           "p99=%.1f ms max=%.1f ms\n",
           g_out, rate, secs, g_nlat, g_lat[g_nlat / 2], g_lat[g_nlat * 9 / 10], g_lat[g_nlat * 99 / 100],
           g_lat[g_nlat - 1]);
    rd_kafka_destroy(p);
    ds_gen_destroy(gen);
    ds_buf_free(&b);
    ds_codec_destroy(codec);
    ds_registry_destroy(reg);
    free(g_lat);
    return 0;
}
