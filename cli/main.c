/*
 * main.c — `dealsignal <command>`: dispatch to the subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"scorer", ds_cmd_scorer, "run the lead scorer (ma.events -> lead.scores, account.scores)"},
    {"watcher", ds_cmd_watcher, "run the stall watcher (crm.events -> deal.alerts)"},
    {"run", ds_cmd_run, "run the scorer and the watcher in one process"},
    {"broker", ds_cmd_broker, "an embedded in-memory Kafka cluster for development (not durable)"},
    {"gen", ds_cmd_gen, "produce realistic synthetic CRM and marketing events"},
    {"tail", ds_cmd_tail, "print scores, alerts or DLQ records in human form"},
    {"rules", ds_cmd_rules, "rules check FILE, rules defaults, rules learn (from won deals)"},
    {"demo", ds_cmd_demo, "broker + private redis-server + workers + generated scenario"},
    {"backtest", ds_cmd_backtest, "judge the stall rules against won and lost deals of history"},
    {"repartition", ds_cmd_repartition, "copy a topic re-keyed by unit id (account, lead, deal)"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: dealsignal <command> [options]\n\n"
                 "Scores leads on confront and connect criteria and watches deals for the\n"
                 "buyer signals that prove they are moving (Kafka in, Kafka + Redis out).\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n`dealsignal <command> --help` describes each one.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("dealsignal %s\n", DS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "dealsignal: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
