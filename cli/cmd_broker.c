/*
 * cmd_broker.c — `dealsignal broker`: librdkafka's mock cluster in its own
 * process (so a worker killed with -9 does not take the offsets with it).
 * First stdout line: the bootstrap servers.  With --control stdin it takes
 * fault-injection commands, one per line, for tests.  The executable's
 * accept() (accept_nodelay.c) sets TCP_NODELAY on the broker's sockets.
 */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmds.h"

static volatile sig_atomic_t g_stop;
static void on_sig(int s) {
    (void)s;
    g_stop = 1;
}

static const struct {
    const char *name;
    int16_t key;
} apis[] = {{"Produce", 0},       {"Fetch", 1},          {"ListOffsets", 2},
            {"Metadata", 3},      {"OffsetCommit", 8},   {"OffsetFetch", 9},
            {"FindCoordinator", 10}, {"JoinGroup", 11},  {"Heartbeat", 12},
            {"LeaveGroup", 13},   {"SyncGroup", 14},     {"InitProducerId", 22}};

static int toi(const char *s) { return (int)strtol(s, NULL, 10); }

static int api_key(const char *s) {
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++)
        if (!strcasecmp(s, apis[i].name))
            return apis[i].key;
    char *end;
    long v = strtol(s, &end, 10);
    return *end || v < 0 ? -1 : (int)v;
}

static int err_code(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*end)
        return (int)v;
    const struct rd_kafka_err_desc *d;
    size_t n;
    rd_kafka_get_err_descs(&d, &n);
    for (size_t i = 0; i < n; i++)
        if (d[i].name && !strcasecmp(d[i].name, s))
            return d[i].code;
    return -100000;
}

static void control(rd_kafka_mock_cluster_t *mc, char *line) {
    char *argv[8];
    int argc = 0;
    for (char *t = strtok_r(line, " \t\r\n", &line); t && argc < 8; t = strtok_r(NULL, " \t\r\n", &line))
        argv[argc++] = t;
    if (!argc)
        return;
    if (!strcmp(argv[0], "push-errors") && argc == 4) {
        int key = api_key(argv[1]), cnt = toi(argv[2]), code = err_code(argv[3]);
        if (key < 0 || cnt <= 0 || code == -100000) {
            printf("error: push-errors APIKEY COUNT ERRNAME\n");
        } else {
            rd_kafka_resp_err_t *errs = calloc((size_t)cnt, sizeof(*errs));
            for (int i = 0; i < cnt; i++)
                errs[i] = (rd_kafka_resp_err_t)code;
            rd_kafka_mock_push_request_errors_array(mc, (int16_t)key, (size_t)cnt, errs);
            free(errs);
            printf("ok\n");
        }
    } else if ((!strcmp(argv[0], "broker-down") || !strcmp(argv[0], "broker-up")) && argc == 2) {
        int id = toi(argv[1]);
        rd_kafka_resp_err_t e = argv[0][7] == 'd' ? rd_kafka_mock_broker_set_down(mc, id)
                                                  : rd_kafka_mock_broker_set_up(mc, id);
        printf(e ? "error: %s\n" : "ok\n", rd_kafka_err2str(e));
    } else if (!strcmp(argv[0], "rtt") && argc == 3) {
        rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_rtt(mc, toi(argv[1]), toi(argv[2]));
        printf(e ? "error: %s\n" : "ok\n", rd_kafka_err2str(e));
    } else if (!strcmp(argv[0], "create-topic") && argc == 3) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, argv[1], toi(argv[2]), 1);
        printf(e ? "error: %s\n" : "ok\n", rd_kafka_err2str(e));
    } else {
        printf("error: unknown command %s\n", argv[0]);
    }
    fflush(stdout);
}

static void usage(FILE *o) {
    fprintf(o, "usage: dealsignal broker [--partitions N] [--topics a,b,...] [--brokers-count N]\n"
               "                         [--control stdin]\n\n"
               "An embedded Kafka cluster (librdkafka's mock cluster) on loopback for development,\n"
               "demos and tests.  Prints the bootstrap servers on its first line of stdout and\n"
               "serves until SIGTERM/SIGINT.  IN MEMORY ONLY, NOT DURABLE: everything is lost when\n"
               "it stops, and each partition keeps only about 5 MiB.\n\n"
               "  --partitions N     partitions per topic (default 4)\n"
               "  --topics LIST      topics to create, NAME or NAME:PARTITIONS (default\n"
               "                     ma.events,crm.events,lead.scores,account.scores,\n"
               "                     deal.alerts,ma.events.dlq,crm.events.dlq)\n"
               "  --brokers-count N  brokers in the cluster (default 1)\n"
               "  --control stdin    accept fault commands on stdin: push-errors API COUNT ERR,\n"
               "                     broker-down ID, broker-up ID, rtt ID MS, create-topic NAME N\n");
}

int ds_cmd_broker(int argc, char **argv) {
    int partitions = 4, nbrokers = 1, ctl = 0;
    const char *topics = "ma.events,crm.events,lead.scores,account.scores,deal.alerts,"
                         "ma.events.dlq,crm.events.dlq";
    static const struct option opts[] = {{"partitions", required_argument, 0, 'p'},
                                         {"topics", required_argument, 0, 't'},
                                         {"brokers-count", required_argument, 0, 'b'},
                                         {"control", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': partitions = (int)strtol(optarg, NULL, 10); break;
        case 't': topics = optarg; break;
        case 'b': nbrokers = (int)strtol(optarg, NULL, 10); break;
        case 'c': {
            static const char *const ctls[] = {"stdin", NULL};
            if (ds_cmd_choice("broker", "control", optarg, ctls) < 0)
                return 2;
            ctl = 1;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (partitions < 1 || nbrokers < 1) {
        fprintf(stderr, "broker: --%s must be at least 1\n",
                partitions < 1 ? "partitions" : "brokers-count");
        usage(stderr);
        return 2;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "broker: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (!mc) {
        fprintf(stderr, "broker: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    char *list = strdup(topics), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        /* NAME or NAME:PARTITIONS */
        char *colon = strchr(t, ':');
        int n = partitions;
        if (colon) {
            *colon = '\0';
            n = toi(colon + 1);
            if (n < 1) {
                fprintf(stderr, "broker: --topics %s: partitions must be >= 1\n", t);
                free(list);
                rd_kafka_mock_cluster_destroy(mc);
                rd_kafka_destroy(rk);
                return 2;
            }
        }
        rd_kafka_mock_topic_create(mc, t, n, 1);
    }
    free(list);
    ds_cmd_catch_stop(on_sig);
    signal(SIGPIPE, SIG_IGN);
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    fprintf(stderr,
            "dealsignal broker: in-memory development Kafka (librdkafka mock cluster) at %s\n"
            "dealsignal broker: NOT DURABLE: all data is lost when it stops; ~5 MiB kept per "
            "partition; %d partitions per topic\n",
            rd_kafka_mock_cluster_bootstraps(mc), partitions);
    char line[512];
    size_t used = 0;
    while (!g_stop) {
        if (!ctl) {
            usleep(100000);
            continue;
        }
        struct pollfd pfd = {0, POLLIN, 0};
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t n = read(0, line + used, sizeof(line) - 1 - used);
            if (n <= 0) {
                ctl = 0; /* stdin closed: keep serving */
                continue;
            }
            used += (size_t)n;
            line[used] = '\0';
            char *nl;
            while ((nl = strchr(line, '\n'))) {
                *nl = '\0';
                char cmd[512];
                snprintf(cmd, sizeof(cmd), "%s", line);
                control(mc, cmd);
                size_t rest = used - (size_t)(nl + 1 - line);
                memmove(line, nl + 1, rest + 1);
                used = rest;
            }
            if (used >= sizeof(line) - 1)
                used = 0;
        }
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
