/*
 * cmd_backtest.c — `dealsignal backtest` and `dealsignal rules learn`: the
 * CRM topic's history replayed through the watcher's stall logic in memory
 * (workers/watcher/backtest.c), judged against the deals' outcomes or used
 * to learn each stage's max_quiet_days (learn.c).
 *
 * Reading: every partition of the topic is assigned directly (no group is
 * joined, no offset is stored or committed) from its beginning; each
 * partition's high watermark is read first, and the read ends when every
 * partition has reached it, so records produced meanwhile are not part of
 * the history.  Records are checked and decoded as the watcher does
 * (null value, empty key, over max_message_bytes, undecodable: skipped and
 * counted, as the watcher sends them to the DLQ).  Nothing is written to
 * Kafka or Redis.
 *
 * Settings come from the same table as the workers' (--config, --brokers,
 * --topic-crm, --rules, --schemas, --schema-registry, -X, DEALSIGNAL_*).
 */
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "backtest.h"
#include "cmds.h"
#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_config.h"
#include "ds_kafka.h"
#include "ds_log.h"
#include "ds_registry.h"
#include "learn.h"
#include "rules.h"
#include "worker.h"

static volatile sig_atomic_t g_stop;
static void on_sig(int s) {
    (void)s;
    g_stop = 1;
}

/* ---- reading the history -------------------------------------------------- */

typedef struct feed {
    ds_backtest_t *bt[2];
    size_t n;
    ds_err_t err;
} feed_t;

typedef struct history {
    int64_t records, undecodable;
    int partitions;
    double seconds;
} history_t;

/* Read cfg->topic_crm from the beginning to each partition's high
 * watermark as it is now, and replay every decodable event into f.
 * 0, or 1 with a message in err. */
static int read_history(const ds_config_t *cfg, feed_t *f, history_t *h, char *err, size_t errsz) {
    memset(h, 0, sizeof(*h));
    int rc = 1;
    ds_registry_t *reg = ds_registry_open(cfg, err, errsz);
    ds_codec_t *codec = reg ? ds_codec_new(reg, &ds_codec_default_ids, err, errsz) : NULL;
    rd_kafka_t *k = NULL;
    int64_t *high = NULL;
    ds_arena_t arena;
    ds_arena_init(&arena, 0);
    if (!codec)
        goto out;
    static const ds_kv_pair_t defs[] = {
        /* a group id librdkafka asks for; the group is never joined */
        {"group.id", "dealsignal-backtest"},   {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"}, {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},     {"fetch.wait.max.ms", "10"},
        {"queued.min.messages", "1000000"},    {"queued.max.messages.kbytes", "65536"},
    };
    if (!(k = ds_kafka_client_new(RD_KAFKA_CONSUMER, rd_kafka_conf_new(), defs,
                                  sizeof(defs) / sizeof(defs[0]), cfg->brokers, cfg->kafka,
                                  cfg->kafka_count, "kafka consumer", err, errsz)))
        goto out;
    rd_kafka_poll_set_consumer(k);
    const char *topic = cfg->topic_crm;
    int64_t t0 = ds_clock_mono_ms();
    int nparts = 0;
    rd_kafka_resp_err_t merr = RD_KAFKA_RESP_ERR_NO_ERROR;
    while (nparts == 0 && !g_stop && ds_clock_mono_ms() - t0 < 15000) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(k, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        merr = rd_kafka_metadata(k, 0, t, &md, 5000);
        if (!merr) {
            if (md->topic_cnt == 1) {
                merr = md->topics[0].err;
                if (!merr)
                    nparts = md->topics[0].partition_cnt;
            }
            rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(t);
        if (nparts == 0)
            ds_clock_sleep_ms(200);
    }
    if (nparts == 0) {
        snprintf(err, errsz, "topic %s: no partitions found at %s (%s)", topic, cfg->brokers,
                 merr ? rd_kafka_err2str(merr) : "empty");
        goto out;
    }
    h->partitions = nparts;
    high = calloc((size_t)nparts, sizeof(*high));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    if (!high || !l) {
        snprintf(err, errsz, "out of memory");
        if (l)
            rd_kafka_topic_partition_list_destroy(l);
        goto out;
    }
    int behind = 0;
    for (int p = 0; p < nparts; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t werr;
        int tries = 0;
        while ((werr = rd_kafka_query_watermark_offsets(k, topic, p, &lo, &hi, 5000)) &&
               ++tries < 3 && !g_stop)
            ds_clock_sleep_ms(200);
        if (werr) {
            snprintf(err, errsz, "topic %s partition %d: watermarks: %s", topic, p,
                     rd_kafka_err2str(werr));
            rd_kafka_topic_partition_list_destroy(l);
            goto out;
        }
        high[p] = hi;
        if (lo < hi) {
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
            behind++;
        }
    }
    rd_kafka_resp_err_t aerr = behind ? rd_kafka_assign(k, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (aerr) {
        snprintf(err, errsz, "assign: %s", rd_kafka_err2str(aerr));
        goto out;
    }
    int64_t last = ds_clock_mono_ms(), start_us = ds_clock_mono_us();
    char detail[256];
    while (behind > 0 && !g_stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k, 100);
        if (!m) {
            if (ds_clock_mono_ms() - last > 30000) {
                snprintf(err, errsz, "no record for 30 s with %d partition(s) not read to the end",
                         behind);
                goto out;
            }
            continue;
        }
        last = ds_clock_mono_ms();
        if (m->err) {
            DS_WARN("backtest", "reading %s: %s", topic, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        int32_t p = m->partition;
        if (p < 0 || p >= nparts || m->offset >= high[p]) {
            rd_kafka_message_destroy(m); /* produced after the start */
            continue;
        }
        if (m->offset + 1 >= high[p]) {
            high[p] = -1; /* read to the end: later records are not ours */
            behind--;
        }
        h->records++;
        ds_crm_event_t ev;
        ds_err_t de;
        if (!m->payload || !m->key || !m->key_len || m->len > (size_t)cfg->max_message_bytes) {
            de = DS_ERR_UNDECODABLE;
        } else {
            ds_arena_reset(&arena);
            de =
                ds_codec_decode_crm(codec, m->payload, m->len, &arena, &ev, detail, sizeof(detail));
        }
        if (de) {
            h->undecodable++;
        } else {
            for (size_t i = 0; i < f->n && !f->err; i++)
                f->err = ds_backtest_apply(f->bt[i], p, &ev);
        }
        rd_kafka_message_destroy(m);
        if (f->err) {
            snprintf(err, errsz, "replay: %s", ds_err2str(f->err));
            goto out;
        }
    }
    h->seconds = (double)(ds_clock_mono_us() - start_us) / 1e6;
    if (g_stop) {
        snprintf(err, errsz, "interrupted");
        goto out;
    }
    rc = 0;
out:
    if (k) {
        rd_kafka_consumer_close(k);
        rd_kafka_destroy(k);
    }
    free(high);
    ds_arena_free(&arena);
    ds_codec_destroy(codec);
    ds_registry_destroy(reg);
    return rc;
}

/* ---- arguments -------------------------------------------------------------- */

/* One of the command's own flags (`takes_value` false: "--json"). */
typedef struct opt {
    const char *name;
    bool takes_value;
    const char *value; /* set when given ("" for a flag without value) */
} opt_t;

/* The command's own flags (opts) are taken out of argv; the rest goes to
 * ds_config_load: *cargv_out, calloc'ed and NULL-terminated, argv[0]
 * first (the caller frees it).  Returns 0; 1 out of memory; 2 after
 * saying on stderr which flag misses its value (nothing to free then). */
static int split_args(const char *cmd, int argc, char **argv, opt_t *opts, size_t nopts,
                      char ***cargv_out, int *cargc) {
    char **cargv = calloc((size_t)argc + 1, sizeof(char *));
    if (!cargv)
        return 1;
    *cargc = 0;
    cargv[(*cargc)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t j = 0;
        const char *val = NULL;
        for (; j < nopts; j++) {
            size_t l = strlen(opts[j].name);
            if (!strncmp(a, opts[j].name, l) &&
                (a[l] == '\0' || (a[l] == '=' && opts[j].takes_value))) {
                val = a[l] == '=' ? a + l + 1 : NULL;
                break;
            }
        }
        if (j == nopts) {
            cargv[(*cargc)++] = argv[i];
            continue;
        }
        if (!opts[j].takes_value) {
            opts[j].value = "";
        } else if (val) {
            opts[j].value = val;
        } else if (i + 1 < argc) {
            opts[j].value = argv[++i];
        } else {
            fprintf(stderr, "dealsignal %s: %s needs a value\n", cmd, argv[i]);
            free(cargv);
            return 2;
        }
    }
    cargv[*cargc] = NULL;
    *cargv_out = cargv;
    return 0;
}

/* An unset option leaves *t as it is. */
static bool parse_time(const char *cmd, const opt_t *opt, int64_t *t) {
    if (!opt->value || ds_clock_parse(opt->value, t))
        return true;
    fprintf(stderr, "dealsignal %s: %s %s: expected 2026-01-31, 2026-01-31T12:00:00 or now-30d\n",
            cmd, opt->name, opt->value);
    return false;
}

static bool parse_range(const char *cmd, const opt_t *since, const opt_t *until,
                        ds_backtest_opts_t *o) {
    o->since = INT64_MIN;
    o->until = INT64_MAX;
    if (!parse_time(cmd, since, &o->since) || !parse_time(cmd, until, &o->until))
        return false;
    if (o->since >= o->until) {
        fprintf(stderr, "dealsignal %s: --since must be before --until\n", cmd);
        return false;
    }
    return true;
}

static ds_config_t *setup(const char *cmd, int cargc, char **cargv) {
    ds_config_t *cfg = ds_cmd_load_config(cmd, cargc, cargv);
    if (cfg)
        ds_cmd_catch_stop(on_sig);
    return cfg;
}

static void read_note(const char *cmd, const ds_config_t *cfg, const history_t *h) {
    struct rusage ru;
    long rss_kib = getrusage(RUSAGE_SELF, &ru) ? 0 : ru.ru_maxrss;
    fprintf(stderr,
            "%s: read %lld records of %s (%d partitions) in %.2f s = %.0f records/s; %lld "
            "undecodable; peak RSS %ld MiB\n",
            cmd, (long long)h->records, cfg->topic_crm, h->partitions, h->seconds,
            h->seconds > 0 ? (double)h->records / h->seconds : 0.0, (long long)h->undecodable,
            rss_kib / 1024);
}

/* The rules at path (NULL or empty: the built-in ones) and a backtest
 * over them; 0, or the exit status after saying why on stderr: 2 the rules
 * do not load, 1 out of memory.  *rules is set even when the backtest
 * cannot be made (the caller destroys both). */
static int open_backtest(const char *cmd, const char *path, const ds_config_t *cfg,
                         const ds_backtest_opts_t *bo, ds_rules_t **rules, ds_backtest_t **bt) {
    char err[1024] = "";
    if (!(*rules = ds_cmd_load_rules(path, cfg, err, sizeof(err)))) {
        fprintf(stderr, "dealsignal %s: rules: %s\n", cmd, err);
        return 2;
    }
    if (!(*bt = ds_backtest_new(*rules, bo))) {
        fprintf(stderr, "dealsignal %s: out of memory\n", cmd);
        return 1;
    }
    return 0;
}

/* Replays the CRM topic into f's backtests and notes the read on stderr;
 * false after saying why. */
static bool replay(const char *cmd, const ds_config_t *cfg, feed_t *f, history_t *h) {
    char err[1024] = "";
    if (read_history(cfg, f, h, err, sizeof(err))) {
        fprintf(stderr, "dealsignal %s: %s\n", cmd, err);
        return false;
    }
    read_note(cmd, cfg, h);
    return true;
}

/* ---- backtest --------------------------------------------------------------- */

static void backtest_usage(FILE *o) {
    fprintf(o,
            "usage: dealsignal backtest [--rules FILE] [--compare FILE] [--json]\n"
            "                           [--since T] [--until T] [--config FILE] [--brokers LIST]\n"
            "                           [--topic-crm T] [--schemas DIR | --schema-registry URL]\n"
            "                           [-X key=value]\n\n"
            "Replays the CRM topic from its beginning to its end (as it is when the command\n"
            "starts) through the watcher's stall rules in memory, under the event clock, and\n"
            "reports how well each alert kind predicted the deals that were lost: alerts\n"
            "opened, deals alerted and how they ended (won, lost, still open), precision,\n"
            "recall, median lead time and noise, per kind, for any kind, and for AGED (deals\n"
            "open longer than 1.65 x the median won cycle; report only).  Reads only: no\n"
            "consumer group is joined, no offset committed, nothing written to Kafka or Redis.\n"
            "Without Redis no lead tier is known: a deal's mobilizer is known from a\n"
            "mobilizer_committed signal or a contact with role MOBILIZER only.\n\n"
            "  --rules FILE     the stall rules to judge (default: the built-in defaults)\n"
            "  --compare FILE   also judge these rules, side by side (e.g. `rules learn`'s)\n"
            "  --json           one JSON object instead of the table\n"
            "  --since T        only deals opened at or after T (event time): 2026-01-31,\n"
            "                   2026-01-31T12:00:00 (UTC) or now-90d\n"
            "  --until T        only events before T; deals open then count as still open\n\n"
            "Connection, topic and schema settings are the workers' (see `dealsignal watcher\n"
            "--help`).  Exit status: 0 done, 1 failed, 2 usage.  See docs/LEARNING.md.\n");
}

/* what the table calls a rules file */
static const char *rules_name(const char *path) {
    return path && path[0] ? path : "(defaults)";
}

int ds_cmd_backtest(int argc, char **argv) {
    if (ds_config_wants_help(argc, argv)) {
        backtest_usage(stdout);
        return 0;
    }
    enum { O_COMPARE, O_JSON, O_SINCE, O_UNTIL, O_N };
    opt_t opts[O_N] = {{"--compare", true, NULL},
                       {"--json", false, NULL},
                       {"--since", true, NULL},
                       {"--until", true, NULL}};
    char **cargv;
    int cargc;
    int bad = split_args("backtest", argc, argv, opts, O_N, &cargv, &cargc);
    if (bad)
        return bad;
    ds_backtest_opts_t bo = {0};
    if (!parse_range("backtest", &opts[O_SINCE], &opts[O_UNTIL], &bo)) {
        free(cargv);
        return 2;
    }
    ds_config_t *cfg = setup("backtest", cargc, cargv);
    free(cargv);
    if (!cfg)
        return 2;
    int rc = 1;
    ds_rules_t *rules[2] = {NULL, NULL};
    const char *paths[2] = {cfg->rules_path, opts[O_COMPARE].value};
    size_t n = opts[O_COMPARE].value ? 2 : 1;
    feed_t f = {.n = n};
    for (size_t i = 0; i < n; i++)
        if ((rc = open_backtest("backtest", paths[i], cfg, &bo, &rules[i], &f.bt[i])))
            goto out;
    rc = 1;
    history_t h;
    if (!replay("backtest", cfg, &f, &h))
        goto out;
    ds_bt_report_t rep[2];
    const ds_bt_report_t *reps[2] = {&rep[0], &rep[1]};
    const char *names[2] = {rules_name(paths[0]), n > 1 ? rules_name(paths[1]) : NULL};
    for (size_t i = 0; i < n; i++)
        ds_backtest_report(f.bt[i], &rep[i]);
    ds_bt_source_t src = {cfg->topic_crm, h.records, h.undecodable, bo.since, bo.until};
    if (opts[O_JSON].value)
        ds_backtest_print_json(stdout, &src, names, reps, n);
    else
        ds_backtest_print_table(stdout, &src, names, reps, n);
    rc = fflush(stdout) ? 1 : 0;
out:
    for (size_t i = 0; i < 2; i++) {
        ds_backtest_destroy(f.bt[i]);
        ds_rules_destroy(rules[i]);
    }
    ds_config_destroy(cfg);
    return rc;
}

/* ---- rules learn ------------------------------------------------------------ */

static void learn_usage(FILE *o) {
    fprintf(o, "usage: dealsignal rules learn [--rules FILE] [--quantile Q] [--min-deals N]\n"
               "                              [--since T] [--until T] [--config FILE]\n"
               "                              [--brokers LIST] [--topic-crm T]\n"
               "                              [--schemas DIR | --schema-registry URL] [-X k=v]\n\n"
               "Replays the CRM topic as `dealsignal backtest` does and writes to stdout a rules\n"
               "file equal to the input rules (--rules, default the built-in ones) except each\n"
               "stage's max_quiet_days, learned from the WON deals: the Q quantile of their quiet\n"
               "spells while their verified stage was that stage (from the opening or a buyer\n"
               "signal to the next buyer signal), rounded up to three significant digits, when\n"
               "at least N won deals contributed; otherwise the input value stays.  A comment\n"
               "above each stage gives the evidence (deals, spells, median, quantile).  The\n"
               "output passes `dealsignal rules check`; compare it with\n"
               "`dealsignal backtest --rules OLD --compare NEW`.\n\n"
               "  --quantile Q     0 < Q <= 1 (default 0.9): the share of won deals' quiet spells\n"
               "                   that end within the learned value\n"
               "  --min-deals N    won deals a stage needs to be learned (default 20)\n"
               "  --since/--until  an event-time range, as for `dealsignal backtest`\n\n"
               "Exit status: 0 done, 1 failed, 2 usage.  See docs/LEARNING.md.\n");
}

int ds_cmd_rules_learn(int argc, char **argv) {
    if (ds_config_wants_help(argc, argv)) {
        learn_usage(stdout);
        return 0;
    }
    enum { O_Q, O_MIN, O_SINCE, O_UNTIL, O_N };
    opt_t opts[O_N] = {{"--quantile", true, NULL},
                       {"--min-deals", true, NULL},
                       {"--since", true, NULL},
                       {"--until", true, NULL}};
    char **cargv;
    int cargc;
    int bad = split_args("rules learn", argc, argv, opts, O_N, &cargv, &cargc);
    if (bad)
        return bad;
    ds_backtest_opts_t bo = {.spells = true};
    double q = 0.9;
    long min_deals = 20;
    char *end;
    if (opts[O_Q].value) {
        q = strtod(opts[O_Q].value, &end);
        if (*end || end == opts[O_Q].value || !(q > 0) || q > 1) {
            fprintf(stderr, "dealsignal rules learn: --quantile must be a number in (0, 1]\n");
            bad = 1;
        }
    }
    if (!bad && opts[O_MIN].value) {
        min_deals = strtol(opts[O_MIN].value, &end, 10);
        if (*end || end == opts[O_MIN].value || min_deals < 1) {
            fprintf(stderr, "dealsignal rules learn: --min-deals must be a whole number >= 1\n");
            bad = 1;
        }
    }
    if (bad || !parse_range("rules learn", &opts[O_SINCE], &opts[O_UNTIL], &bo)) {
        free(cargv);
        return 2;
    }
    ds_config_t *cfg = setup("rules learn", cargc, cargv);
    free(cargv);
    if (!cfg)
        return 2;
    feed_t f = {.n = 1};
    ds_rules_t *rules = NULL;
    int rc = open_backtest("rules learn", cfg->rules_path, cfg, &bo, &rules, &f.bt[0]);
    if (rc)
        goto out;
    rc = 1;
    history_t h;
    if (!replay("rules learn", cfg, &f, &h))
        goto out;
    ds_bt_report_t rep;
    ds_backtest_report(f.bt[0], &rep);
    ds_learned_t l[DS_PS__COUNT];
    char notes[DS_PS__COUNT][300];
    const char *note_ptr[DS_PS__COUNT];
    int learned = 0;
    for (int s = 0; s < DS_PS__COUNT; s++) {
        size_t ns, nd;
        const double *sp = ds_backtest_spells(f.bt[0], s, &ns, &nd);
        ds_learn_stage(sp, ns, nd, q, (size_t)min_deals, rules->stall.stages[s].max_quiet_days,
                       &l[s]);
        ds_learn_note(&l[s], q, (size_t)min_deals, notes[s], sizeof(notes[s]));
        note_ptr[s] = notes[s];
        learned += l[s].learned;
    }
    /* the replay is done with the rules: now they may change */
    ds_backtest_destroy(f.bt[0]);
    f.bt[0] = NULL;
    for (int s = 0; s < DS_PS__COUNT; s++)
        rules->stall.stages[s].max_quiet_days = l[s].value;
    char header[1024];
    snprintf(header, sizeof(header),
             "Written by `dealsignal rules learn --quantile %g --min-deals %ld` from %s:\n"
             "%lld records, %lld deals (%lld won, %lld lost, %lld still open).  Each stage's\n"
             "max_quiet_days is the %g quantile of the won deals' quiet spells at that stage\n"
             "when at least %ld won deals had one there; else the value of %s.",
             q, min_deals, cfg->topic_crm, (long long)h.records, (long long)rep.deals,
             (long long)rep.won, (long long)rep.lost, (long long)rep.open, q, min_deals,
             cfg->rules_path && cfg->rules_path[0] ? cfg->rules_path : "the built-in rules");
    ds_rules_print_annotated(rules, stdout, header, note_ptr);
    if (fflush(stdout))
        goto out;
    fprintf(stderr, "rules learn: %d of %d stages learned from %lld won deals\n", learned,
            DS_PS__COUNT, (long long)rep.won);
    rc = 0;
out:
    ds_backtest_destroy(f.bt[0]);
    ds_rules_destroy(rules);
    ds_config_destroy(cfg);
    return rc;
}
