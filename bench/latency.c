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
 * Events alternate between many leads and stages so that most change a
 * score.  Runs against a scorer started separately (bench/run.sh does).
 */
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_serde.h"
#include "events.h"

static volatile int g_done;
/* samples of events produced before this (ms, wall) are warm-up: not counted */
static volatile int64_t g_measure_from = INT64_MAX;
static double *g_lat;
static size_t g_nlat, g_cap;
static const char *g_brokers, *g_schemas, *g_in, *g_out;

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *consume(void *arg) {
    (void)arg;
    char e[256], err[512];
    ds_registry_t *reg = ds_registry_new_dir(g_schemas, err, sizeof(err));
    ds_codec_t *codec = reg ? ds_codec_new(reg, &ds_codec_default_ids, err, sizeof(err)) : NULL;
    if (!codec) {
        fprintf(stderr, "latency: %s\n", err);
        exit(1);
    }
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", g_brokers, e, sizeof(e));
    char group[64];
    snprintf(group, sizeof(group), "latency-%lld", (long long)ds_clock_now_ms());
    rd_kafka_conf_set(c, "group.id", group, e, sizeof(e));
    rd_kafka_conf_set(c, "auto.offset.reset", "latest", e, sizeof(e));
    rd_kafka_conf_set(c, "fetch.wait.max.ms", "5", e, sizeof(e));
    rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof(e));
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
            ds_lead_score_t s;
            char detail[128];
            ds_arena_reset(&arena);
            if (!ds_decode_lead_score(codec, m->payload, m->len, &arena, &s, detail,
                                      sizeof(detail))) {
                double lat = (double)(ds_clock_now_ms() - s.as_of);
                if (s.as_of < g_measure_from) {
                    rd_kafka_message_destroy(m);
                    continue;
                }
                if (g_nlat == g_cap) {
                    g_cap = g_cap ? g_cap * 2 : 65536;
                    g_lat = realloc(g_lat, g_cap * sizeof(double));
                }
                g_lat[g_nlat++] = lat;
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
    ds_serde_init(1 << 20);
    char err[512], e[256];
    ds_registry_t *reg = ds_registry_new_dir(g_schemas, err, sizeof(err));
    ds_codec_t *codec = reg ? ds_codec_new(reg, &ds_codec_default_ids, err, sizeof(err)) : NULL;
    if (!codec) {
        fprintf(stderr, "latency: %s\n", err);
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, consume, NULL);
    ds_clock_sleep_ms(4000); /* the consumer joins its group */
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", g_brokers, e, sizeof(e));
    rd_kafka_conf_set(c, "linger.ms", "5", e, sizeof(e)); /* the Kafka default since 4.0 */
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
    ds_buf_t b;
    ds_buf_init(&b, 0);
    double warmup = getenv("DS_LAT_WARMUP") ? strtod(getenv("DS_LAT_WARMUP"), NULL) : 3;
    g_measure_from = ds_clock_now_ms() + (int64_t)(warmup * 1000);
    int64_t start = ds_clock_mono_us();
    long n = 0, total = (long)(rate * (secs + warmup));
    while (n < total) {
        int64_t due = start + (int64_t)((double)n * 1e6 / rate);
        /* sleep, do not spin: the machine has two cores and the worker,
         * Redis and the broker need them */
        for (int64_t ahead; (ahead = due - ds_clock_mono_us()) > 0;)
            rd_kafka_poll(p, ahead > 1000 ? (int)(ahead / 1000) : 1);
        char id[48], lead[64], acct[64], content[64], insight[64];
        snprintf(id, sizeof(id), "lat-%lld-%ld", (long long)start, n);
        /* leads of this run only, 100,000 of them in 25,000 accounts: a
         * lead gets an event every 100,000, far from the score caps */
        snprintf(acct, sizeof(acct), "LA-%lld-%ld", (long long)start, n % 25000);
        snprintf(lead, sizeof(lead), "LL-%lld-%ld", (long long)start, n % 100000);
        /* new content of a new insight each round over the leads: every
         * event adds points, so every event moves a score */
        snprintf(content, sizeof(content), "lc-%lld-%ld", (long long)start, n / 100000);
        snprintf(insight, sizeof(insight), "li-%lld-%ld", (long long)start, n / 100000);
        ds_ma_event_t ev;
        memset(&ev, 0, sizeof(ev));
        ev.event_id = id;
        ev.occurred_at = ds_clock_now_ms();
        ev.lead_id = lead;
        ev.account_id = acct;
        ev.type = DS_MA_CONTENT_COMPLETED;
        ev.content_id = content;
        ev.insight_id = insight;
        ev.content_stage = DS_CS_CONFRONT;
        ds_buf_reset(&b);
        if (ds_encode_ma(codec, &ev, &b))
            return 1;
        while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(g_in),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_KEY(acct, strlen(acct)),
                                 RD_KAFKA_V_VALUE(b.data, b.len), RD_KAFKA_V_END) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 1);
        n++;
    }
    rd_kafka_flush(p, 10000);
    ds_clock_sleep_ms(2000);
    g_done = 1;
    pthread_join(t, NULL);
    if (!g_nlat) {
        fprintf(stderr, "latency: no LeadScore received\n");
        return 1;
    }
    if (getenv("DS_LAT_TRACE")) { /* the worst latency of each second, in arrival order */
        size_t per = rate > 1 ? (size_t)rate : 1;
        for (size_t i = 0; i < g_nlat; i += per) {
            double mx = 0;
            for (size_t k = i; k < g_nlat && k < i + per; k++)
                mx = g_lat[k] > mx ? g_lat[k] : mx;
            fprintf(stderr, "%.0f ", mx);
        }
        fprintf(stderr, "(max ms per second of samples)\n");
    }
    qsort(g_lat, g_nlat, sizeof(double), cmpd);
    printf("latency produce→%s at %.0f events/s over %.0f s: n=%zu p50=%.1f ms p90=%.1f ms "
           "p99=%.1f ms max=%.1f ms\n",
           g_out, rate, secs, g_nlat, g_lat[g_nlat / 2], g_lat[g_nlat * 9 / 10], g_lat[g_nlat * 99 / 100],
           g_lat[g_nlat - 1]);
    rd_kafka_destroy(p);
    ds_buf_free(&b);
    ds_codec_destroy(codec);
    ds_registry_destroy(reg);
    free(g_lat);
    return 0;
}
