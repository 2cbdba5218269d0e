/*
 * main.c — `ds_test_registry`: the test Schema Registry (test_registry.h)
 * as a process, for tests written in other languages.
 *
 *   ds_test_registry [--port N] [--first-id N] [--auth user:password]
 *
 * Prints its base URL (http://127.0.0.1:PORT) as the first line of stdout
 * and serves until SIGTERM/SIGINT or until its stdin closes (so that it
 * never outlives the test that started it with a pipe).
 */
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_registry.h"

static volatile sig_atomic_t g_stop;
static void on_sig(int s) {
    (void)s;
    g_stop = 1;
}

int main(int argc, char **argv) {
    ds_treg_opts_t o = {0, 0, NULL};
    bool watch_stdin = !isatty(0);
    static const struct option opts[] = {{"port", required_argument, 0, 'p'},
                                         {"first-id", required_argument, 0, 'i'},
                                         {"auth", required_argument, 0, 'a'},
                                         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            o.port = (int)strtol(optarg, NULL, 10);
            break;
        case 'i':
            o.first_id = (int32_t)strtol(optarg, NULL, 10);
            break;
        case 'a':
            o.auth = optarg;
            break;
        default:
            fprintf(stderr, "usage: ds_test_registry [--port N] [--first-id N] "
                            "[--auth user:password]\n");
            return 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sig;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    ds_treg_t *r = ds_treg_start(&o);
    if (!r) {
        fprintf(stderr, "ds_test_registry: cannot listen on 127.0.0.1:%d\n", o.port);
        return 1;
    }
    printf("http://127.0.0.1:%d\n", ds_treg_port(r));
    fflush(stdout);
    while (!g_stop) {
        struct pollfd p = {0, POLLIN, 0};
        if (watch_stdin && poll(&p, 1, 200) > 0) {
            char buf[256];
            if (read(0, buf, sizeof(buf)) <= 0)
                break; /* the parent went away */
        } else if (!watch_stdin) {
            usleep(200000);
        }
    }
    ds_treg_stop(r);
    return 0;
}
