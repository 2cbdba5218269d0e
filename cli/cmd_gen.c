/*
 * cmd_gen.c — `dealsignal gen`: the scenario model of gen.c, framed as
 * Avro and produced to the input topics (or printed as JSON lines).
 */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_kafka.h"
#include "ds_log.h"
#include "ds_registry.h"
#include "ds_registry_http.h"
#include "gen.h"
#include "worker.h"

static volatile sig_atomic_t g_stop;
static void on_sig(int s) {
    (void)s;
    g_stop = 1;
}

static void usage(FILE *o) {
    fprintf(o,
            "usage: dealsignal gen [--brokers LIST] [--count N] [--rate EPS] [--seed S]\n"
            "                      [--accounts N] [--scenario mixed|marketing|crm]\n"
            "                      [--start ISO8601|now-Nd] [--span-days D] [--print]\n"
            "                      [--schemas DIR] [--topic-marketing T] [--topic-crm T] [-X k=v]\n"
            "                      [--schema-registry URL [--subject-strategy topic|record]]\n"
            "                      [--profile demo|wide|skew] [--leads N] [--print-rules]\n"
            "                      [--key unit|lead_id|account_id|event_id]\n\n"
            "Produces realistic synthetic marketing and CRM events (Avro, Confluent framing):\n"
            "accounts with buying groups of 3-8 leads walking Spark/Introduce/Confront content,\n"
            "shares and webinars; deals moving through the purchase stages with seller activity\n"
            "and buyer signals, some quiet, some one-sided, some with reps jumping stages, some\n"
            "without a mobilizer; ~0.5%% deliberate duplicates.  Same seed, same stream.\n\n"
            "  --brokers LIST Kafka bootstrap servers (default $DEALSIGNAL_BROKERS, else\n"
            "                 localhost:9092)\n"
            "  --count N      events (default 10000)\n"
            "  --rate EPS     events per second (default 0: as fast as possible)\n"
            "  --seed S       the stream's seed (default 1)\n"
            "  --accounts N   accounts (default 50)\n"
            "  --scenario S   mixed (default), marketing or crm events only\n"
            "  --start T      event time of the first event (default now-90d)\n"
            "  --span-days D  event time one round of the accounts covers (default 90)\n"
            "  --print        JSON lines on stdout instead of producing\n"
            "  --schema-registry URL  register MarketingEvent and CrmEvent (from --schemas) under\n"
            "                 <topic>-value (record: their full names) and write the ids the\n"
            "                 registry returns; without it the embedded ids 1 and 2 are written\n"
            "  --key F        the Kafka key: unit (default, the contract: account_id, or lead_id\n"
            "                 without account; deal_id) or, to reproduce a wrongly keyed\n"
            "                 producer, that field of each record that has it (else the unit)\n\n"
            "Profiles: demo (the above, default); wide: a company's marketing stream, 20,000\n"
            "accounts x 12 leads (--accounts, --leads), 2,400 content items over 40 insights,\n"
            "4%% of the events from leads without an account, events ~7 ms apart; skew: the\n"
            "same events, every one from an account's lead (default one account of 5,000\n"
            "leads).  Both are marketing only.  --print-rules prints a rules file with the\n"
            "profile's content catalog (for the scorer's --rules) and exits.\n");
}

/* The fields both kinds of event open with. */
static void open_event(const char *topic, const char *event_id, int64_t occurred_at) {
    printf("{\"topic\":\"%s\"", topic);
    ds_cmd_json_field("event_id", event_id);
    printf(",\"occurred_at\":%lld", (long long)occurred_at);
}

static void print_event(const ds_gen_event_t *e) {
    if (e->is_crm) {
        const ds_crm_event_t *c = &e->crm;
        open_event("crm", c->event_id, c->occurred_at);
        ds_cmd_json_field("deal_id", c->deal_id);
        ds_cmd_json_field("account_id", c->account_id);
        ds_cmd_json_field("type", ds_crm_type_name(c->type));
        ds_cmd_json_field("stage", ds_purchase_stage_name(c->stage));
        ds_cmd_json_field("signal", c->signal);
        ds_cmd_json_field("contact_id", c->contact_id);
        ds_cmd_json_field("contact_role", ds_role_name(c->contact_role));
        printf("}\n");
    } else {
        const ds_ma_event_t *m = &e->ma;
        open_event("marketing", m->event_id, m->occurred_at);
        ds_cmd_json_field("lead_id", m->lead_id);
        ds_cmd_json_field("account_id", m->account_id);
        ds_cmd_json_field("type", ds_ma_type_name(m->type));
        ds_cmd_json_field("content_id", m->content_id);
        printf(",\"shared_with\":");
        ds_cmd_json_strs(m->shared_with, m->shared_with_count);
        printf("}\n");
    }
}

/* Register `record`'s schema (from dir) under its subject for `topic`,
 * waiting for a registry that does not answer yet (up to about a minute:
 * a stack whose registry starts after gen); the schema goes into reg's
 * cache under the id the registry returns.  -1 with errstr on failure. */
static int32_t register_input(const char *url, const char *strategy, const char *dir,
                              const char *record, const char *topic, ds_registry_t *reg,
                              char *errstr, size_t errstr_size) {
    char err[1536], subject[512];
    char *json = ds_schema_file_text(dir, record, err, sizeof(err));
    if (!json) {
        snprintf(errstr, errstr_size, "%s", err);
        return -1;
    }
    int32_t id = -1;
    ds_err_t e = ds_schema_subject(strategy, topic, json, subject, sizeof(subject), err,
                                   sizeof(err));
    for (int attempt = 0; !e && !g_stop; attempt++) {
        e = ds_registry_http_register(url, subject, json, 5000, &id, err, sizeof(err));
        if (e != DS_ERR_IO || attempt >= 30)
            break;
        fprintf(stderr, "gen: %s; trying again in 2 s\n", err);
        ds_clock_sleep_ms(2000);
    }
    if (!e)
        e = ds_registry_add_json(reg, id, json, err, sizeof(err));
    free(json);
    if (e) {
        snprintf(errstr, errstr_size, "%s", err);
        return -1;
    }
    fprintf(stderr, "gen: %s registered under subject %s: schema id %d\n", record, subject,
            (int)id);
    return id;
}

/* A rules file whose catalog classifies every content id of the profile. */
static int print_catalog(ds_gen_profile_t p) {
    if (p == DS_GEN_DEMO) { /* config/demo-rules.yaml, compiled in */
        fputs(ds_builtin_demo_rules, stdout);
        return 0;
    }
    printf("# Rules for `dealsignal gen --profile wide|skew`: the defaults plus a catalog of\n"
           "# every content id the profile uses (%d items over %d insights).\n"
           "scoring:\n  catalog:\n",
           DS_GEN_WIDE_CONTENT, DS_GEN_WIDE_INSIGHTS);
    for (size_t i = 0; i < DS_GEN_WIDE_CONTENT; i++) {
        char id[64];
        const char *ins;
        int stage;
        ds_gen_wide_catalog(i, id, sizeof(id), &ins, &stage);
        printf("    - {content_id: %s, insight_id: %s, stage: %s}\n", id, ins,
               ds_content_stage_name(stage));
    }
    return ferror(stdout) ? 1 : 0;
}

int ds_cmd_gen(int argc, char **argv) {
    long count = 10000;
    double rate = 0, num;
    ds_gen_opts_t o = {.seed = 1, .accounts = 50, .mix = DS_GEN_MIXED, .span_days = 90};
    const char *strategy = "topic";
    const char *t_ma = "ma.events", *t_crm = "crm.events", *start = "now-90d";
    const char *key_by = "unit";
    int print = 0, print_rules = 0, accounts_set = 0, scenario_set = 0;
    ds_kv_pair_t extra[32];
    ds_cmd_conn_t cn;
    ds_cmd_conn_init(&cn, extra, 32);
    static const struct option opts[] = {
        {"brokers", required_argument, 0, 'b'},  {"count", required_argument, 0, 'n'},
        {"rate", required_argument, 0, 'r'},     {"seed", required_argument, 0, 's'},
        {"accounts", required_argument, 0, 'a'}, {"scenario", required_argument, 0, 'c'},
        {"start", required_argument, 0, 't'},    {"span-days", required_argument, 0, 'd'},
        {"print", no_argument, 0, 'p'},          {"schemas", required_argument, 0, 'S'},
        {"topic-marketing", required_argument, 0, 'M'},
        {"topic-crm", required_argument, 0, 'C'}, {"help", no_argument, 0, 'h'},
        {"schema-registry", required_argument, 0, 'R'},
        {"subject-strategy", required_argument, 0, 'N'},
        {"profile", required_argument, 0, 'P'},
        {"leads", required_argument, 0, 'L'},
        {"print-rules", no_argument, 0, 'W'},
        {"key", required_argument, 0, 'k'},
        {0, 0, 0, 0}};
    /* in the order of ds_gen_mix_t and ds_gen_profile_t */
    static const char *const mixes[] = {"mixed", "marketing", "crm", NULL};
    static const char *const profiles[] = {"demo", "wide", "skew", NULL};
    static const char *const strategies[] = {"topic", "record", NULL};
    static const char *const keys[] = {"unit", "lead_id", "account_id", "event_id", NULL};
    int ch, pick;
    optind = 1;
    while ((ch = ds_cmd_getopt(argc, argv, "hX:", opts, "gen")) != -1) {
        switch (ch) {
        case 'n':
            if (ds_cmd_num("gen", "count", optarg, 1, 1e12, true, &num))
                return 2;
            count = (long)num;
            break;
        case 'r':
            if (ds_cmd_num("gen", "rate", optarg, 0, 1e9, false, &rate))
                return 2;
            break;
        case 's':
            if (ds_cmd_num("gen", "seed", optarg, 0, 1e15, true, &num))
                return 2;
            o.seed = (uint64_t)num;
            break;
        case 'a':
            if (ds_cmd_num("gen", "accounts", optarg, 1, 1e7, true, &num))
                return 2;
            o.accounts = (int)num;
            accounts_set = 1;
            break;
        case 'c':
            scenario_set = 1;
            if ((pick = ds_cmd_choice("gen", "scenario", optarg, mixes)) < 0)
                return 2;
            o.mix = (ds_gen_mix_t)pick;
            break;
        case 't': start = optarg; break;
        case 'd':
            if (ds_cmd_num("gen", "span-days", optarg, 0.001, 36500, false, &o.span_days))
                return 2;
            break;
        case 'p':
            print = 1;
            break;
        case 'P':
            if ((pick = ds_cmd_choice("gen", "profile", optarg, profiles)) < 0)
                return 2;
            o.profile = (ds_gen_profile_t)pick;
            break;
        case 'L':
            if (ds_cmd_num("gen", "leads", optarg, 1, 1e7, true, &num))
                return 2;
            o.leads_per_account = (int)num;
            break;
        case 'W': print_rules = 1; break;
        case 'N':
            if (ds_cmd_choice("gen", "subject-strategy", optarg, strategies) < 0)
                return 2;
            strategy = optarg;
            break;
        case 'M': t_ma = optarg; break;
        case 'C': t_crm = optarg; break;
        case 'k':
            if (ds_cmd_choice("gen", "key", optarg, keys) < 0)
                return 2;
            key_by = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            if (ds_cmd_conn_opt(&cn, ch, optarg, "gen: -X needs key=value", usage))
                return 2;
        }
    }
    if (ds_cmd_no_more_args(argc, argv, optind, "gen"))
        return 2;
    const char *brokers = cn.brokers, *schemas = cn.schemas, *registry_url = cn.registry_url;
    if (o.profile != DS_GEN_DEMO) {
        if (scenario_set && o.mix != DS_GEN_MARKETING) {
            fprintf(stderr, "gen: the wide and skew profiles are marketing streams "
                            "(--scenario marketing)\n");
            return 2;
        }
        o.mix = DS_GEN_MARKETING;
        if (!accounts_set)
            o.accounts = 0; /* the profile's default */
        if (o.accounts < 0 || o.leads_per_account < 0) {
            fprintf(stderr, "gen: bad --accounts or --leads\n");
            return 2;
        }
    }
    if (print_rules)
        return print_catalog(o.profile);
    if (!ds_clock_parse(start, &o.start_ms) || o.start_ms < 0 || count < 0) {
        fprintf(stderr, "gen: bad --start or --count\n");
        return 2;
    }
    ds_gen_t *g = ds_gen_new(&o);
    if (!g)
        return 1;
    ds_cmd_catch_stop(on_sig);
    ds_gen_event_t ev;
    if (print) {
        for (long i = 0; i < count && !g_stop; i++) {
            ds_gen_next(g, &ev);
            print_event(&ev);
        }
        ds_gen_destroy(g);
        return 0;
    }
    char err[512];
    ds_registry_init(1 << 20);
    ds_registry_t *reg = NULL;
    ds_codec_t *codec = NULL;
    if (registry_url && registry_url[0]) {
        ds_codec_ids_t ids = {-1, -1, -1, -1, -1};
        reg = ds_registry_open_url(registry_url, err, sizeof(err));
        if (reg &&
            (ids.marketing_event = register_input(registry_url, strategy, schemas,
                                                  "MarketingEvent", t_ma, reg, err,
                                                  sizeof(err))) >= 0 &&
            (ids.crm_event = register_input(registry_url, strategy, schemas, "CrmEvent", t_crm,
                                            reg, err, sizeof(err))) >= 0)
            codec = ds_codec_new(reg, &ids, err, sizeof(err));
    } else {
        reg = ds_registry_open_dir(schemas, err, sizeof(err));
        codec = reg ? ds_codec_new(reg, &ds_codec_default_ids, err, sizeof(err)) : NULL;
    }
    rd_kafka_t *p = NULL;
    if (codec) {
        static const ds_kv_pair_t defs[] = {{"enable.idempotence", "true"},
                                            {"linger.ms", "5"},
                                            {"batch.num.messages", "10000"},
                                            {"queue.buffering.max.messages", "1000000"}};
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        ds_kafka_conf_track_deliveries(conf);
        p = ds_kafka_client_new(RD_KAFKA_PRODUCER, conf, defs, 4, brokers, cn.x, cn.nx, NULL, err,
                                sizeof(err));
    }
    if (!p) {
        fprintf(stderr, "gen: %s\n", err);
        ds_codec_destroy(codec);
        ds_registry_destroy(reg);
        ds_gen_destroy(g);
        return 1;
    }
    ds_buf_t b;
    ds_buf_init(&b, 0);
    ds_delivery_t d = {0};
    long n_ma = 0, n_crm = 0, n_dup = 0;
    int64_t t0 = ds_clock_mono_us();
    int rc = 0;
    for (long i = 0; i < count && !g_stop; i++) {
        if (rate > 0) {
            int64_t due = t0 + (int64_t)((double)i * 1e6 / rate);
            while (ds_clock_mono_us() < due && !g_stop) {
                rd_kafka_poll(p, 0);
                int64_t left = (due - ds_clock_mono_us()) / 1000;
                if (left > 1)
                    ds_clock_sleep_ms(left > 50 ? 50 : left);
            }
        }
        ds_gen_next(g, &ev);
        ds_buf_reset(&b);
        ds_err_t e = ev.is_crm ? ds_codec_encode_crm(codec, &ev.crm, &b)
                               : ds_codec_encode_ma(codec, &ev.ma, &b);
        if (e) {
            fprintf(stderr, "gen: encode failed: %s\n", ds_err2str(e));
            rc = 1;
            break;
        }
        const char *key = ev.is_crm ? ev.crm.deal_id
                                    : (ev.ma.account_id ? ev.ma.account_id : ev.ma.lead_id);
        const char *other = !strcmp(key_by, "event_id")   ? (ev.is_crm ? ev.crm.event_id
                                                                       : ev.ma.event_id)
                            : !strcmp(key_by, "lead_id")    ? (ev.is_crm ? NULL : ev.ma.lead_id)
                            : !strcmp(key_by, "account_id") ? (ev.is_crm ? ev.crm.account_id
                                                                         : ev.ma.account_id)
                                                            : NULL;
        if (other)
            key = other;
        if (ds_kafka_produce(p, ev.is_crm ? t_crm : t_ma, key, strlen(key), b.data, b.len, NULL,
                             &d)) {
            rc = 1;
            break;
        }
        if (ev.is_crm)
            n_crm++;
        else
            n_ma++;
        n_dup += ev.duplicate;
        if ((i & 1023) == 0)
            rd_kafka_poll(p, 0);
    }
    if (ds_kafka_wait(p, &d, 60000) != DS_ERR_OK) {
        if (d.failed)
            fprintf(stderr, "gen: %zu deliveries failed (first: %s), %zu not acknowledged\n",
                    d.failed, rd_kafka_err2str(d.first_err), d.outstanding);
        else
            fprintf(stderr,
                    "gen: %zu records not acknowledged within 60 s: is a broker listening at "
                    "%s?\n",
                    d.outstanding, brokers);
        rc = 1;
    }
    double secs = (double)(ds_clock_mono_us() - t0) / 1e6;
    if (d.failed || d.outstanding)
        fprintf(stderr, "gen: %zu of the %ld events sent were acknowledged\n", d.delivered,
                n_ma + n_crm);
    else
        fprintf(stderr,
                "gen: produced %ld marketing + %ld crm events (%ld duplicates) in %.2f s = "
                "%.0f events/s\n",
                n_ma, n_crm, n_dup, secs, (double)(n_ma + n_crm) / (secs > 0 ? secs : 1));
    rd_kafka_destroy(p);
    ds_buf_free(&b);
    ds_codec_destroy(codec);
    ds_registry_destroy(reg);
    ds_gen_destroy(g);
    return rc;
}
