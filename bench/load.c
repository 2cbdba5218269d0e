/*
 * load.c — synthetic loads for the memory and clock-check benchmarks.
 *
 *   ds_bench_load BROKERS leads N           N MarketingEvents, one per lead
 *                                           (4 leads per account): N leads
 *   ds_bench_load BROKERS deals N STAGE [PREFIX [SIGNAL]]
 *                                           N DEAL_OPENED at STAGE, event
 *                                           time now: N deals; with SIGNAL,
 *                                           each also gets that buyer signal
 *   ds_bench_load BROKERS lead N CONTENTS [PREFIX]
 *                                           N MarketingEvents of ONE lead
 *                                           (PREFIX-L of account PREFIX-A),
 *                                           cycling over CONTENTS content
 *                                           items (40 insights, every stage)
 *   ds_bench_load BROKERS held TOPIC          prints how many records TOPIC
 *                                           holds (high - low watermark,
 *                                           summed over its partitions)
 *   ds_bench_load BROKERS crm N ACCOUNTS DEALS STAKEHOLDERS LEADS [PREFIX]
 *                                           N CrmEvents over ACCOUNTS accounts
 *                                           of DEALS deals each, every deal
 *                                           gaining up to STAKEHOLDERS
 *                                           stakeholders among its account's
 *                                           LEADS leads (contact ids
 *                                           L-<a>-<k>, accounts PREFIX-A-<a>)
 *
 * The crm load is the watcher's skew benchmark: each deal is opened, gets
 * seller activity, new stakeholders (never a mobilizer), the buyer signals
 * of RECOGNIZE_NEED and EXPLORE_OPTIONS and then two of DEFINE_CRITERIA's
 * three, so from its third signal on every evaluation asks for its
 * stakeholders' tiers (NO_MOBILIZER); reps report stages ahead of the
 * buyer now and then.  Deals are picked at random (seed 7), events ~7 ms
 * apart in event time from now - 30 days.  The same N events over other
 * shapes differ only in the ids of the accounts, deals and contacts.
 *
 * Topics: ma.events and crm.events (DS_LOAD_MA / DS_LOAD_CRM override).
 * DS_LOAD_RATE=R paces the crm and lead loads at R events per second (a
 * live stream: the worker keeps up, and writes each window's changes).
 * Run by bench/run.sh (memory, stallcheck, skew).
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_kafka.h"
#include "codec.h"
#include "events.h"

static void produce(rd_kafka_t *p, const char *topic, const char *key, const ds_buf_t *b) {
    while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(b->data, b->len),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(p, 1);
}

/* ev encoded into b, then produced: false when it cannot be encoded. */
static bool produce_crm(rd_kafka_t *p, ds_codec_t *codec, const char *topic, const char *key,
                        const ds_crm_event_t *ev, ds_buf_t *b) {
    ds_buf_reset(b);
    if (ds_codec_encode_crm(codec, ev, b))
        return false;
    produce(p, topic, key, b);
    return true;
}

static uint64_t g_rnd = 7;
static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (g_rnd += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static long rint_(long n) {
    return (long)(rnd() % (uint64_t)n);
}

/* Event i of a load paced at `rate` events/s from `start` (0: unpaced)
 * is sent when its time comes. */
static void pace(rd_kafka_t *p, double rate, int64_t start, long i) {
    if (rate > 0) {
        rd_kafka_flush(p, 1000);
        int64_t due = start + (int64_t)((double)(i + 1) * 1000.0 / rate);
        int64_t now = ds_clock_now_ms();
        if (due > now)
            ds_clock_sleep_ms(due - now);
    } else if (i % 1000 == 0) {
        rd_kafka_poll(p, 0);
    }
}

static double load_rate(void) {
    const char *rs = getenv("DS_LOAD_RATE");
    return rs ? atof(rs) : 0;
}

/* The lead load (see the header comment): one lead's N events, ~7 ms
 * apart in event time from now - 1 day, on content c-<i % contents>. */
static int load_lead(rd_kafka_t *p, ds_codec_t *codec, const char *topic, long n, long contents,
                     const char *prefix) {
    static const int types[] = {DS_MA_CONTENT_VIEWED, DS_MA_EMAIL_CLICKED,
                                DS_MA_CONTENT_COMPLETED, DS_MA_FORM_SUBMITTED};
    char lead[64], acct[64];
    snprintf(lead, sizeof(lead), "%s-L", prefix);
    snprintf(acct, sizeof(acct), "%s-A", prefix);
    ds_buf_t b;
    ds_buf_init(&b, 0);
    int64_t t = ds_clock_now_ms() - 86400000LL, start = ds_clock_now_ms();
    double rate = load_rate();
    for (long i = 0; i < n; i++) {
        char id[64], content[32], insight[32];
        long c = contents > 0 ? i % contents : 0;
        snprintf(id, sizeof(id), "%s-%ld", prefix, i);
        snprintf(content, sizeof(content), "c-%ld", c);
        snprintf(insight, sizeof(insight), "i-%ld", c % 40);
        t += 1 + rint_(13);
        ds_ma_event_t ev = ds_ma_event_make(id, t, lead, acct, types[rint_(4)], content, insight,
                                            (int)(c % DS_CS__COUNT));
        ds_buf_reset(&b);
        if (ds_codec_encode_ma(codec, &ev, &b))
            return 1;
        produce(p, topic, acct, &b);
        pace(p, rate, start, i);
    }
    ds_buf_free(&b);
    return 0;
}

typedef struct crm_deal {
    uint8_t opened, reported, nsig;
    int32_t nstake;
} crm_deal_t;

/* The crm load (see the header comment): N events, produced to `topic`. */
static int load_crm(rd_kafka_t *p, ds_codec_t *codec, const char *topic, long n, long accounts,
                    long deals, long stake, long leads, const char *prefix) {
    static const char *const sigs[] = {"live_call_accepted", "status_quo_flaw_acknowledged",
                                       "insight_exploration_committed", "resources_committed",
                                       "timeline_established"};
    static const char *const acts[] = {"email", "call", "meeting", "proposal"};
    long ndeals = accounts * deals;
    crm_deal_t *st = calloc((size_t)ndeals, sizeof(*st));
    if (!st || stake < 1 || leads < 1)
        return 1;
    ds_buf_t b;
    ds_buf_init(&b, 0);
    int64_t t = ds_clock_now_ms() - 30 * 86400000LL;
    double rate = load_rate();
    int64_t start = ds_clock_now_ms();
    for (long i = 0; i < n; i++) {
        long d = rint_(ndeals), a = d / deals, dl = d % deals;
        crm_deal_t *s = &st[d];
        char id[64], deal[64], acct[64], contact[64];
        snprintf(id, sizeof(id), "%s-%ld", prefix, i);
        snprintf(deal, sizeof(deal), "%s-D-%ld-%ld", prefix, a, dl);
        snprintf(acct, sizeof(acct), "%s-A-%ld", prefix, a);
        t += 1 + rint_(13);
        ds_crm_event_t ev = {.event_id = id,
                             .occurred_at = t,
                             .deal_id = deal,
                             .account_id = acct,
                             .owner_id = "rep-1",
                             .stage = DS_NONE,
                             .contact_role = DS_NONE};
        long roll = rint_(100);
        if (!s->opened) {
            s->opened = 1;
            ev.type = DS_CRM_DEAL_OPENED;
            ev.stage = DS_PS_RECOGNIZE_NEED;
        } else if (roll < 40 || (roll >= 65 && roll < 90 && !s->nstake)) {
            ev.type = DS_CRM_SELLER_ACTIVITY;
            ev.activity = acts[rint_(4)];
        } else if (roll < 65) {
            /* a new stakeholder while the deal has fewer than `stake`,
             * else one it has again */
            long k = s->nstake < stake ? s->nstake++ : rint_(s->nstake);
            snprintf(contact, sizeof(contact), "L-%ld-%ld", a, (dl * stake + k) % leads);
            ev.type = DS_CRM_STAKEHOLDER_ADDED;
            ev.contact_id = contact;
            ev.contact_role = DS_ROLE_TALKER + (int)rint_(3); /* never MOBILIZER */
        } else if (roll < 90) {
            snprintf(contact, sizeof(contact), "L-%ld-%ld", a,
                     (dl * stake + rint_(s->nstake)) % leads);
            ev.type = DS_CRM_BUYER_SIGNAL;
            ev.signal = s->nsig < 5 ? sigs[s->nsig++] : "pricing_requested";
            ev.contact_id = contact;
        } else if (roll < 95 && s->reported < DS_PS_EVALUATE_OPTIONS) {
            ev.type = DS_CRM_STAGE_CHANGED;
            ev.stage = ++s->reported;
        } else {
            ev.type = DS_CRM_SELLER_ACTIVITY;
            ev.activity = "proposal";
        }
        if (!produce_crm(p, codec, topic, deal, &ev, &b))
            return 1;
        pace(p, rate, start, i);
    }
    ds_buf_free(&b);
    free(st);
    return 0;
}

/* Records held by topic: the embedded broker drops the oldest ones beyond
 * its retention (~5 MiB per partition). */
static int held(rd_kafka_t *p, const char *topic) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(p, topic, NULL);
    const rd_kafka_metadata_t *md = NULL;
    if (!t || rd_kafka_metadata(p, 0, t, &md, 10000) || md->topic_cnt != 1 ||
        md->topics[0].err) {
        fprintf(stderr, "load: no metadata for %s\n", topic);
        return 1;
    }
    int64_t sum = 0;
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(p, topic, md->topics[0].partitions[i].id, &lo, &hi,
                                             10000)) {
            fprintf(stderr, "load: no offsets for %s\n", topic);
            return 1;
        }
        sum += hi - lo;
    }
    printf("%lld\n", (long long)sum);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[2], "held")) {
        char e[512];
        rd_kafka_t *p = ds_kafka_client_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), NULL, 0,
                                            argv[1], NULL, 0, NULL, e, sizeof(e));
        int rc = p ? held(p, argv[3]) : 1;
        if (p)
            rd_kafka_destroy(p);
        return rc;
    }
    if (argc < 4 ||
        (strcmp(argv[2], "leads") && strcmp(argv[2], "deals") && strcmp(argv[2], "crm") &&
         strcmp(argv[2], "lead")) ||
        (!strcmp(argv[2], "lead") && argc < 5) ||
        (!strcmp(argv[2], "deals") && argc < 5) || (!strcmp(argv[2], "crm") && argc < 8)) {
        fprintf(stderr,
                "usage: %s BROKERS leads N | BROKERS deals N STAGE [PREFIX [SIGNAL]]\n"
                "       | BROKERS held TOPIC | BROKERS lead N CONTENTS [PREFIX]\n"
                "       | BROKERS crm N ACCOUNTS DEALS STAKEHOLDERS LEADS [PREFIX]\n",
                argv[0]);
        return 2;
    }
    long n = atol(argv[3]);
    ds_registry_init(1 << 20);
    char err[512];
    ds_registry_t *reg = ds_registry_new_dir(DS_SOURCE_DIR "/schemas", err, sizeof(err));
    ds_codec_t *codec = reg ? ds_codec_new(reg, &ds_codec_default_ids, err, sizeof(err)) : NULL;
    if (!codec) {
        fprintf(stderr, "load: %s\n", err);
        return 1;
    }
    static const ds_kv_pair_t defs[] = {{"linger.ms", "5"},
                                        {"queue.buffering.max.messages", "1000000"}};
    rd_kafka_t *p = ds_kafka_client_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), defs, 2, argv[1],
                                        NULL, 0, NULL, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "load: %s\n", err);
        return 1;
    }
    const char *ma = getenv("DS_LOAD_MA") ? getenv("DS_LOAD_MA") : "ma.events";
    const char *crm = getenv("DS_LOAD_CRM") ? getenv("DS_LOAD_CRM") : "crm.events";
    ds_buf_t b;
    ds_buf_init(&b, 0);
    int64_t t0 = ds_clock_mono_us(), now = ds_clock_now_ms();
    if (!strcmp(argv[2], "crm") &&
        load_crm(p, codec, crm, n, strtol(argv[4], NULL, 10), strtol(argv[5], NULL, 10),
                 strtol(argv[6], NULL, 10), strtol(argv[7], NULL, 10), argc > 8 ? argv[8] : "SK"))
        return 1;
    bool lead = !strcmp(argv[2], "lead");
    if (lead && load_lead(p, codec, ma, n, strtol(argv[4], NULL, 10), argc > 5 ? argv[5] : "TL"))
        return 1;
    for (long i = 0; strcmp(argv[2], "crm") && !lead && i < n; i++) {
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
            if (ds_codec_encode_ma(codec, &ev, &b))
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
            if (!produce_crm(p, codec, crm, k1, &ev, &b))
                return 1;
            if (argc > 6) {
                snprintf(id, sizeof(id), "%s-signal-%ld", prefix, i);
                ev.type = DS_CRM_BUYER_SIGNAL;
                ev.stage = DS_NONE;
                ev.signal = argv[6];
                if (!produce_crm(p, codec, crm, k1, &ev, &b))
                    return 1;
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
