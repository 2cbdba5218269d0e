/*
 * cmds.c — what the subcommands share: reading a -X key=value argument
 * and catching the stop signals.  Each command keeps its own stop flag
 * and handler (one command runs per process); only the installation is
 * here.
 */
#include "cmds.h"

#include <signal.h>
#include <string.h>

bool ds_cmd_x_pair(char *arg, ds_kv_pair_t *pairs, size_t *n, size_t max) {
    char *eq = strchr(arg, '=');
    if (!eq || *n == max)
        return false;
    *eq = '\0';
    pairs[*n].key = arg;
    pairs[(*n)++].value = eq + 1;
    return true;
}

void ds_cmd_catch_stop(void (*on_stop)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
