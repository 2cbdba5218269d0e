/*
 * cmd_tail.c — `dealsignal tail scores|alerts|dlq`: records in human form
 * (or JSON lines with --json), from the end (default) or the beginning.
 * With --width, each record's human line is written to memory first
 * (open_memstream) and printed cut to that many columns.
 *
 * --timeout-ms counts from the moment the consumer has joined its group and
 * holds its assignment (joining takes seconds on a small broker), so a
 * timeout shorter than the join still reads what the topics hold.  Waiting
 * for that assignment is bounded by ASSIGN_WAIT_MS: a broker that never
 * answers ends the command with status 1.
 */
#include <getopt.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "codec.h"
#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_fmt.h"
#include "ds_kafka.h"
#include "ds_registry.h"
#include "worker.h"

/* how long --timeout-ms waits for the group's first assignment */
#define ASSIGN_WAIT_MS 30000

static volatile sig_atomic_t g_stop;
static void on_sig(int s) {
    (void)s;
    g_stop = 1;
}

/* Set by the rebalance callback, which runs inside rd_kafka_consumer_poll
 * on this thread: the group has given this consumer its (maybe empty)
 * assignment. */
static bool g_assigned;

static void on_rebalance(rd_kafka_t *k, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    (void)opaque;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(k), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (coop)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(k, parts));
        else
            rd_kafka_assign(k, parts);
        g_assigned = true;
    } else if (coop) {
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(k, parts));
    } else {
        rd_kafka_assign(k, NULL);
    }
}

static void usage(FILE *o) {
    fprintf(o, "usage: dealsignal tail scores|alerts|dlq [--brokers LIST] [--from-beginning]\n"
               "                       [--max N] [--timeout-ms T] [--json | --width N]\n"
               "                       [--schemas DIR]\n"
               "                       [--schema-registry URL]\n"
               "                       [--topic-lead-scores T] [--topic-account-scores T]\n"
               "                       [--topic-alerts T] [--topic-marketing T] [--topic-crm T]\n"
               "                       [-X key=value]\n\n"
               "Prints LeadScore/AccountScore (scores), DealAlert (alerts) or DLQ records (dlq:\n"
               "the --topic-marketing and --topic-crm topics + \".dlq\")\n"
               "one per line as they arrive; stops after --max records, after --timeout-ms T\n"
               "without a record, or on Ctrl-C.  T counts from the moment the consumer has its\n"
               "partitions; with --timeout-ms, no assignment within 30 s (no broker answering)\n"
               "exits with status 1.  Writer schemas come from --schemas DIR, or with\n"
               "--schema-registry URL from that registry, by the id each record carries.\n"
               "--width N cuts each line to N columns (its end replaced by \"...\").\n");
}

/* Write the line (ending in a newline) to stdout, cut to `width` columns
 * (UTF-8 characters; a cut line ends in "..."). */
static void put_cut(const char *line, size_t len, size_t width) {
    if (len && line[len - 1] == '\n')
        len--;
    size_t cols = 0, keep = len, room = width > 3 ? width - 3 : 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)line[i] & 0xc0) == 0x80)
            continue; /* a continuation byte: no column of its own */
        if (cols++ == room)
            keep = i; /* the bytes of the first `room` columns */
    }
    fwrite(line, 1, cols > width ? keep : len, stdout);
    fputs(cols > width ? "...\n" : "\n", stdout);
}

static void jtime(int64_t t) { /* INT64_MIN: null */
    if (t == INT64_MIN)
        fputs("null", stdout);
    else
        printf("%lld", (long long)t);
}

static const char *stage_or(int v) {
    const char *s = ds_content_stage_name(v);
    return s ? s : "-";
}

/* ,"name":v with v's shortest exact text (JSON has no NaN or infinity:
 * null then) */
static void jnum(const char *name, double v) {
    char t[DS_FMT_DOUBLE_MAX];
    if (isfinite(v))
        ds_fmt_double(t, v);
    printf(",\"%s\":%s", name, isfinite(v) ? t : "null");
}

static void show_lead(const ds_lead_score_t *s, bool json, FILE *o) {
    if (json) {
        printf("{\"type\":\"LeadScore\"");
        ds_cmd_json_field("lead_id", s->lead_id);
        ds_cmd_json_field("account_id", s->account_id);
        jnum("confront", s->confront);
        jnum("connect", s->connect);
        jnum("mobilizer", s->mobilizer);
        printf(",\"tier\":\"%s\",\"previous_tier\":\"%s\"", ds_tier_name(s->tier),
               ds_tier_name(s->previous_tier));
        ds_cmd_json_field("top_insight", s->top_insight);
        ds_cmd_json_field("furthest_stage",
                          s->furthest_stage >= 0 ? ds_content_stage_name(s->furthest_stage) : NULL);
        printf(",\"as_of\":%lld,\"events_applied\":%lld,\"reasons\":", (long long)s->as_of,
               (long long)s->events_applied);
        ds_cmd_json_strs(s->reasons, s->reasons_count);
        printf("}\n");
        return;
    }
    fprintf(o, "LEAD    %-12s (%s) %s", s->lead_id, s->account_id ? s->account_id : "no account",
            ds_tier_name(s->tier));
    if (s->tier != s->previous_tier)
        fprintf(o, " <- %s", ds_tier_name(s->previous_tier));
    fprintf(o, "  confront %.1f connect %.1f mobilizer %.1f  top %s (%s)", s->confront, s->connect,
            s->mobilizer, s->top_insight ? s->top_insight : "-", stage_or(s->furthest_stage));
    for (size_t i = 0; i < s->reasons_count; i++)
        fprintf(o, "%s%s", i ? "; " : "  | ", s->reasons[i]);
    fputc('\n', o);
}

static void show_account(const ds_account_score_t *a, bool json, FILE *o) {
    if (json) {
        printf("{\"type\":\"AccountScore\"");
        ds_cmd_json_field("account_id", a->account_id);
        printf(",\"engaged_stakeholders\":%d,\"confronted_stakeholders\":%d",
               (int)a->engaged_stakeholders, (int)a->confronted_stakeholders);
        jnum("consensus", a->consensus);
        ds_cmd_json_field("top_insight", a->top_insight);
        printf(",\"as_of\":%lld,\"mobilizers\":", (long long)a->as_of);
        ds_cmd_json_strs(a->mobilizers, a->mobilizers_count);
        printf("}\n");
        return;
    }
    fprintf(o, "ACCOUNT %-12s engaged %d confronted %d consensus %.1f%% top %s mobilizers ",
            a->account_id, (int)a->engaged_stakeholders, (int)a->confronted_stakeholders,
            a->consensus, a->top_insight ? a->top_insight : "-");
    for (size_t i = 0; i < a->mobilizers_count; i++)
        fprintf(o, "%s%s", i ? "," : "", a->mobilizers[i]);
    if (!a->mobilizers_count)
        fputc('-', o);
    fputc('\n', o);
}

static void show_alert(const ds_deal_alert_t *a, bool json, FILE *o) {
    if (json) {
        printf("{\"type\":\"DealAlert\"");
        ds_cmd_json_field("alert_id", a->alert_id);
        ds_cmd_json_field("deal_id", a->deal_id);
        ds_cmd_json_field("account_id", a->account_id);
        ds_cmd_json_field("owner_id", a->owner_id);
        printf(",\"kind\":\"%s\",\"state\":\"%s\",\"level\":%d", ds_alert_kind_name(a->kind),
               ds_alert_state_name(a->state), (int)a->level);
        ds_cmd_json_field("reported_stage", ds_purchase_stage_name(a->reported_stage));
        ds_cmd_json_field("verified_stage", a->verified_stage >= 0
                                                ? ds_purchase_stage_name(a->verified_stage)
                                                : NULL);
        printf(",\"missing_verifiers\":");
        ds_cmd_json_strs(a->missing_verifiers, a->missing_verifiers_count);
        printf(",\"last_buyer_signal_at\":");
        jtime(a->last_buyer_signal_at);
        printf(",\"last_seller_activity_at\":");
        jtime(a->last_seller_activity_at);
        printf(",\"unanswered_seller_actions\":%d", (int)a->unanswered_seller_actions);
        jnum("quiet_days", a->quiet_days);
        ds_cmd_json_field("message", a->message);
        printf(",\"raised_at\":%lld}\n", (long long)a->raised_at);
        return;
    }
    char when[40];
    ds_clock_format(a->raised_at, when, sizeof(when));
    fprintf(o, "ALERT   %-8s L%d %-16s %s owner %s at %s: %s\n", ds_alert_state_name(a->state),
            (int)a->level, ds_alert_kind_name(a->kind), a->deal_id, a->owner_id ? a->owner_id : "-",
            when, a->message);
}

/* A JSON string of the n bytes at p, or null when they are not UTF-8 (a
 * DLQ record keeps the original key, which may be any bytes). */
static json_t *jbytes(const void *p, size_t n) {
    json_t *s = p ? json_stringn((const char *)p, n) : NULL;
    return s ? s : json_null();
}

/* One DLQ record: its coordinates, the headers the DLQ writer adds (the
 * reason code, the detail, where the record came from) and the size of the
 * original value, which stays as it was (not printed). */
static void show_dlq(const rd_kafka_message_t *m, const char *topic, bool json, FILE *out) {
    static const char *const names[][2] = {{"dealsignal.error", "code"},
                                           {"dealsignal.detail", "detail"},
                                           {"dealsignal.source.topic", "source_topic"},
                                           {"dealsignal.source.partition", "source_partition"},
                                           {"dealsignal.source.offset", "source_offset"}};
    enum { CODE, DETAIL, SRC_TOPIC, SRC_PART, SRC_OFF, NH };
    const void *hv[NH] = {0};
    size_t hl[NH] = {0};
    rd_kafka_headers_t *h = NULL;
    if (!rd_kafka_message_headers(m, &h))
        for (int i = 0; i < NH; i++)
            if (rd_kafka_header_get_last(h, names[i][0], &hv[i], &hl[i]))
                hv[i] = NULL;
    if (!json) {
        fprintf(out, "DLQ     %s[%d]@%lld %.*s: %.*s (%zu bytes)\n", topic, (int)m->partition,
                (long long)m->offset, hv[CODE] ? (int)hl[CODE] : 1,
                hv[CODE] ? (const char *)hv[CODE] : "?", hv[DETAIL] ? (int)hl[DETAIL] : 0,
                hv[DETAIL] ? (const char *)hv[DETAIL] : "", m->len);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("DLQ"));
    json_object_set_new(o, "topic", json_string(topic));
    json_object_set_new(o, "partition", json_integer(m->partition));
    json_object_set_new(o, "offset", json_integer(m->offset));
    json_object_set_new(o, "key", jbytes(m->key, m->key_len));
    for (int i = 0; i < NH; i++) {
        json_t *v = NULL;
        if (hv[i] && (i == SRC_PART || i == SRC_OFF)) {
            char num[32], *end;
            snprintf(num, sizeof(num), "%.*s", (int)hl[i], (const char *)hv[i]);
            long long x = strtoll(num, &end, 10);
            if (end != num && !*end)
                v = json_integer(x);
        }
        json_object_set_new(o, names[i][1], v ? v : jbytes(hv[i], hl[i]));
    }
    json_object_set_new(o, "value_size", json_integer((json_int_t)m->len));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line)
        puts(line);
    free(line);
    json_decref(o);
}

int ds_cmd_tail(int argc, char **argv) {
    const char *t_ls = "lead.scores", *t_as = "account.scores", *t_al = "deal.alerts";
    const char *t_ma = "ma.events", *t_crm = "crm.events";
    long max = -1, timeout = -1, width = 0;
    double num;
    int beginning = 0, json = 0;
    ds_kv_pair_t extra[32];
    ds_cmd_conn_t cn;
    ds_cmd_conn_init(&cn, extra, 32);
    cn.registry_url = getenv("DEALSIGNAL_SCHEMA_REGISTRY_URL");
    static const struct option opts[] = {
        {"brokers", required_argument, 0, 'b'},    {"from-beginning", no_argument, 0, 'f'},
        {"max", required_argument, 0, 'm'},        {"timeout-ms", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},             {"schemas", required_argument, 0, 'S'},
        {"width", required_argument, 0, 'w'},      {"topic-lead-scores", required_argument, 0, 'L'},
        {"topic-account-scores", required_argument, 0, 'A'},
        {"topic-alerts", required_argument, 0, 'T'}, {"help", no_argument, 0, 'h'},
        {"topic-marketing", required_argument, 0, 'M'},
        {"topic-crm", required_argument, 0, 'C'},
        {"schema-registry", required_argument, 0, 'R'},
        {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = ds_cmd_getopt(argc, argv, "hX:", opts, "tail")) != -1) {
        switch (ch) {
        case 'f': beginning = 1; break;
        case 'm':
            if (ds_cmd_num("tail", "max", optarg, 1, 1e15, true, &num))
                return 2;
            max = (long)num;
            break;
        case 't':
            if (ds_cmd_num("tail", "timeout-ms", optarg, 1, 1e9, true, &num))
                return 2;
            timeout = (long)num;
            break;
        case 'w':
            if (ds_cmd_num("tail", "width", optarg, 10, 100000, true, &num))
                return 2;
            width = (long)num;
            break;
        case 'j':
            json = 1;
            break;
        case 'L': t_ls = optarg; break;
        case 'A': t_as = optarg; break;
        case 'T': t_al = optarg; break;
        case 'M': t_ma = optarg; break;
        case 'C':
            t_crm = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default:
            if (ds_cmd_conn_opt(&cn, ch, optarg, NULL, usage))
                return 2;
        }
    }
    const char *brokers = cn.brokers, *schemas = cn.schemas, *registry_url = cn.registry_url;
    if (json && width) {
        fprintf(stderr, "tail: --json and --width do not go together (a JSON line is never cut)\n");
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "tail: which records? scores, alerts or dlq\n");
        usage(stderr);
        return 2;
    }
    const char *what = argv[optind];
    if (ds_cmd_no_more_args(argc, argv, optind + 1, "tail"))
        return 2;
    const char *topics[2];
    char dlq[2][300];
    int nt;
    if (!strcmp(what, "scores")) {
        topics[0] = t_ls;
        topics[1] = t_as;
        nt = 2;
    } else if (!strcmp(what, "alerts")) {
        topics[0] = t_al;
        nt = 1;
    } else if (!strcmp(what, "dlq")) {
        snprintf(dlq[0], sizeof(dlq[0]), "%s.dlq", t_ma);
        snprintf(dlq[1], sizeof(dlq[1]), "%s.dlq", t_crm);
        topics[0] = dlq[0];
        topics[1] = dlq[1];
        nt = 2;
    } else {
        fprintf(stderr, "tail: unknown records \"%s\": scores, alerts or dlq\n", what);
        usage(stderr);
        return 2;
    }
    char err[512];
    ds_registry_init(1 << 20);
    bool remote = registry_url && registry_url[0];
    ds_registry_t *reg = remote ? ds_registry_open_url(registry_url, err, sizeof(err))
                                : ds_registry_open_dir(schemas, err, sizeof(err));
    /* decoding follows each record's id: the output ids are not needed */
    static const ds_codec_ids_t no_ids = {-1, -1, -1, -1, -1};
    ds_codec_t *codec =
        reg ? ds_codec_new(reg, remote ? &no_ids : &ds_codec_default_ids, err, sizeof(err))
            : NULL;
    if (!codec) {
        fprintf(stderr, "tail: %s\n", err);
        ds_registry_destroy(reg);
        return 1;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char group[64];
    snprintf(group, sizeof(group), "dealsignal-tail-%lld", (long long)ds_clock_mono_us());
    ds_kv_pair_t defs[] = {{"group.id", group},
                           {"auto.offset.reset", beginning ? "earliest" : "latest"},
                           {"enable.auto.commit", "false"},
                           {"log_level", "3"}};
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_t *k = ds_kafka_client_new(RD_KAFKA_CONSUMER, conf, defs, 4, brokers, cn.x, cn.nx,
                                        NULL, err, sizeof(err));
    if (!k) {
        fprintf(stderr, "tail: %s\n", err);
        ds_codec_destroy(codec);
        ds_registry_destroy(reg);
        return 1;
    }
    rd_kafka_poll_set_consumer(k);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    for (int i = 0; i < nt; i++)
        rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(k, l);
    rd_kafka_topic_partition_list_destroy(l);
    ds_cmd_catch_stop(on_sig);
    setvbuf(stdout, NULL, _IOLBF, 0);
    ds_arena_t arena;
    ds_arena_init(&arena, 0);
    long seen = 0;
    int rc = 0;
    bool counting = false; /* last is the time of the assignment or a record */
    int64_t started = ds_clock_mono_ms(), last = started;
    while (!g_stop && (max < 0 || seen < max)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k, 100);
        if (g_assigned && !counting) {
            counting = true;
            last = ds_clock_mono_ms();
        }
        if (!m) {
            int64_t now = ds_clock_mono_ms();
            if (timeout >= 0 && counting && now - last > timeout)
                break;
            if (timeout >= 0 && !counting && now - started > ASSIGN_WAIT_MS) {
                fprintf(stderr,
                        "tail: no partitions assigned within %d s: is a broker listening at "
                        "%s?\n",
                        ASSIGN_WAIT_MS / 1000, brokers);
                rc = 1;
                break;
            }
            continue;
        }
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        last = ds_clock_mono_ms();
        seen++;
        ds_arena_reset(&arena);
        char detail[256];
        const char *topic = rd_kafka_topic_name(m->rkt);
        /* with --width, the record's line is written to memory, then cut */
        char *line = NULL;
        size_t line_len = 0;
        FILE *o = width > 0 && !json ? open_memstream(&line, &line_len) : NULL;
        if (!o)
            o = stdout;
        if (!strcmp(what, "dlq")) {
            show_dlq(m, topic, json, o);
        } else if (!strcmp(topic, t_ls)) {
            ds_lead_score_t s;
            if (!ds_codec_decode_lead_score(codec, m->payload, m->len, &arena, &s, detail,
                                            sizeof(detail)))
                show_lead(&s, json, o);
            else
                fprintf(o, "? undecodable LeadScore: %s\n", detail);
        } else if (!strcmp(topic, t_as)) {
            ds_account_score_t a;
            if (!ds_codec_decode_account_score(codec, m->payload, m->len, &arena, &a, detail,
                                               sizeof(detail)))
                show_account(&a, json, o);
            else
                fprintf(o, "? undecodable AccountScore: %s\n", detail);
        } else {
            ds_deal_alert_t a;
            if (!ds_codec_decode_deal_alert(codec, m->payload, m->len, &arena, &a, detail,
                                            sizeof(detail)))
                show_alert(&a, json, o);
            else
                fprintf(o, "? undecodable DealAlert: %s\n", detail);
        }
        if (o != stdout) {
            fclose(o);
            put_cut(line, line_len, (size_t)width);
            free(line);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(k);
    rd_kafka_destroy(k);
    ds_arena_free(&arena);
    ds_codec_destroy(codec);
    ds_registry_destroy(reg);
    return rc;
}
