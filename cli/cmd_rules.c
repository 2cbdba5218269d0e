/* cmd_rules.c — `dealsignal rules check FILE`, `dealsignal rules defaults`
 * and `dealsignal rules learn` (cmd_backtest.c). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "rules.h"

static void usage(FILE *o) {
    fprintf(
        o,
        "usage: dealsignal rules check FILE   validate a rules file and print the effective rules\n"
        "       dealsignal rules defaults     print the built-in default rules\n"
        "       dealsignal rules learn [...]  write rules whose max_quiet_days are learned\n"
        "                                     from won deals (rules learn --help)\n\n"
        "An error names the file, the line and the key, e.g.\n"
        "  rules.yaml:7: scoring.stage_points.SPORK: unknown ContentStage symbol ...\n"
        "Exit status: 0 valid, 1 invalid, 2 usage.\n");
}

int ds_cmd_rules(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "learn"))
        return ds_cmd_rules_learn(argc - 1, argv + 1);
    if (!strcmp(argv[1], "defaults")) {
        if (argc > 2) { /* --help, or anything else: it takes nothing */
            bool help = !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h");
            usage(help ? stdout : stderr);
            return help ? 0 : 2;
        }
        ds_rules_t *r = ds_rules_new_default();
        if (!r)
            return 1;
        ds_rules_print(r, stdout);
        ds_rules_destroy(r);
        return 0;
    }
    if (!strcmp(argv[1], "check") && argc == 3 && strcmp(argv[2], "--help")) {
        char err[1024] = "";
        ds_rules_t *r = ds_rules_load_file(argv[2], err, sizeof(err));
        if (!r) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        fprintf(stderr, "ok: %s\n", argv[2]);
        ds_rules_print(r, stdout);
        ds_rules_destroy(r);
        return 0;
    }
    if (!strcmp(argv[1], "check") && argc == 3) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
