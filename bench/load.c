/*
 * load.c — synthetic loads for the memory and clock-check benchmarks.
 *
 *   ds_bench_load BROKERS leads N           N MarketingEvents, one per lead
 *                                           (4 leads per account): N leads
 *   ds_bench_load BROKERS deals N STAGE [PREFIX [SIGNAL]]
 *                                           N DEAL_OPENED at STAGE, event
 *                                           time now: N deals; with SIGNAL,
 *                                           each also gets that buyer signal
 *
 * Topics: ma.events and crm.events (DS_LOAD_MA / DS_LOAD_CRM override).
 * Run by bench/run.sh (memory, stallcheck).
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_serde.h"
#include "events.h"

static void produce(rd_kafka_t *p, const char *topic, const char *key, const ds_buf_t *b) {
    while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(b->data, b->len),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(p, 1);
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[2], "leads") && strcmp(argv[2], "deals")) ||
        (!strcmp(argv[2], "deals") && argc < 5)) {
        fprintf(stderr, "usage: %s BROKERS leads N | BROKERS deals N STAGE [PREFIX [SIGNAL]]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[3]);
    ds_serde_init(1 << 20);
    char err[512], e[256];
    ds_registry_t *reg = ds_registry_new_dir(DS_SOURCE_DIR "/schemas", err, sizeof(err));
    ds_codec_t *codec = reg ? ds_codec_new(reg, &ds_codec_default_ids, err, sizeof(err)) : NULL;
    if (!codec) {
        fprintf(stderr, "load: %s\n", err);
        return 1;
    }
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", argv[1], e, sizeof(e));
    rd_kafka_conf_set(c, "linger.ms", "5", e, sizeof(e));
    rd_kafka_conf_set(c, "queue.buffering.max.messages", "1000000", e, sizeof(e));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
    if (!p) {
        fprintf(stderr, "load: %s\n", e);
        return 1;
    }
    const char *ma = getenv("DS_LOAD_MA") ? getenv("DS_LOAD_MA") : "ma.events";
    const char *crm = getenv("DS_LOAD_CRM") ? getenv("DS_LOAD_CRM") : "crm.events";
    ds_buf_t b;
    ds_buf_init(&b, 0);
    int64_t t0 = ds_clock_mono_us(), now = ds_clock_now_ms();
    for (long i = 0; i < n; i++) {
        char id[64], k1[48], k2[48];
        ds_buf_reset(&b);
        if (!strcmp(argv[2], "leads")) {
            snprintf(id, sizeof(id), "mem-%ld", i);
            snprintf(k1, sizeof(k1), "ML-%ld", i);
            snprintf(k2, sizeof(k2), "MA-%ld", i / 4);
            ds_ma_event_t ev = {.event_id = id, .occurred_at = now - (n - i), .lead_id = k1,
                                .account_id = k2, .type = DS_MA_CONTENT_COMPLETED,
                                .content_id = "mem-c", .insight_id = "mem-i",
                                .content_stage = DS_CS_CONFRONT};
            if (ds_encode_ma(codec, &ev, &b))
                return 1;
            produce(p, ma, k2, &b);
        } else {
            const char *prefix = argc > 5 ? argv[5] : "SD";
            int stage = ds_purchase_stage_parse(argv[4]);
            if (stage < 0) {
                fprintf(stderr, "load: unknown stage %s\n", argv[4]);
                return 2;
            }
            snprintf(id, sizeof(id), "%s-open-%ld", prefix, i);
            snprintf(k1, sizeof(k1), "%s-%ld", prefix, i);
            snprintf(k2, sizeof(k2), "%s-A-%ld", prefix, i / 3);
            ds_crm_event_t ev = {.event_id = id, .occurred_at = now, .deal_id = k1,
                                 .account_id = k2, .type = DS_CRM_DEAL_OPENED, .stage = stage,
                                 .contact_role = DS_NONE};
            if (ds_encode_crm(codec, &ev, &b))
                return 1;
            produce(p, crm, k1, &b);
            if (argc > 6) {
                snprintf(id, sizeof(id), "%s-signal-%ld", prefix, i);
                ev.type = DS_CRM_BUYER_SIGNAL;
                ev.stage = DS_NONE;
                ev.signal = argv[6];
                ds_buf_reset(&b);
                if (ds_encode_crm(codec, &ev, &b))
                    return 1;
                produce(p, crm, k1, &b);
            }
        }
        if (i % 1000 == 0)
            rd_kafka_poll(p, 0);
    }
    if (rd_kafka_flush(p, 60000)) {
        fprintf(stderr, "load: flush timed out\n");
        return 1;
    }
    fprintf(stderr, "load: %ld %s produced in %.2f s\n", n, argv[2],
            (double)(ds_clock_mono_us() - t0) / 1e6);
    rd_kafka_destroy(p);
    ds_buf_free(&b);
    ds_codec_destroy(codec);
    ds_registry_destroy(reg);
    return 0;
}
