/*
 * cmd_demo.c — `dealsignal demo`: the whole system on one machine.
 *
 * Starts, as child processes of this one: the embedded broker, a private
 * redis-server (its own port and directory, nothing persisted), both
 * workers (`dealsignal run`, event clock, demo rules), two `tail`s that
 * print scores and alerts as they are produced, and the generator.  Stops
 * by itself once the generated scenario has been processed (or on Ctrl-C):
 * stops the generator, then the workers (which write their state to Redis
 * on SIGTERM), then the tails, draws the picture of what Redis then holds
 * (demo_summary.c), and stops Redis and the broker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmds.h"
#include "demo_summary.h"
#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_kafka.h"
#include "gen.h"

static volatile sig_atomic_t g_stop;
static void on_sig(int s) {
    (void)s;
    g_stop = 1;
}

static char g_self[4096];
static pid_t g_children[16];
static int g_nchildren;

static pid_t spawn(const char *const *argv, int out_fd, int in_fd) {
    pid_t p = fork();
    if (p == 0) {
        setpgid(0, 0); /* Ctrl-C reaches the demo only; it stops the children in order */
        if (out_fd >= 0)
            dup2(out_fd, 1);
        if (in_fd >= 0)
            dup2(in_fd, 0);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "demo: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (p > 0 && g_nchildren < 16)
        g_children[g_nchildren++] = p;
    return p;
}

static int stop_child(pid_t p, int timeout_ms) {
    if (p <= 0)
        return -1;
    kill(p, SIGTERM);
    int64_t end = ds_clock_mono_ms() + timeout_ms;
    int st = 0;
    while (ds_clock_mono_ms() < end) {
        if (waitpid(p, &st, WNOHANG) == p)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        ds_clock_sleep_ms(20);
    }
    kill(p, SIGKILL);
    waitpid(p, &st, 0);
    return -1;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a))) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

/* Whether the schemas directory (if named) and the rules file are there, before
 * anything is started: the children are given these paths as they are
 * (a relative one is the working directory's, which they share). */
static bool inputs_found(const char *schemas, const char *rules) {
    struct stat st;
    /* the default schemas (and NULL rules), absent, are the binary's copy */
    if (strcmp(schemas, "schemas") && (stat(schemas, &st) != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr,
                "demo: no schemas directory at %s: run the demo from the repository's root "
                "(scripts/demo.sh does), or give --schemas DIR\n",
                schemas);
        return false;
    }
    if (rules && (stat(rules, &st) != 0 || !S_ISREG(st.st_mode))) {
        fprintf(stderr, "demo: no rules file at %s (--rules)\n", rules);
        return false;
    }
    return true;
}

/* The scenario just run, judged: `dealsignal backtest` over the CRM topic
 * with the demo's rules (the broker still holds every event), its table
 * on our stdout.  Waits at most 60 s (Ctrl-C stops it). */
static void demo_backtest(const char *brokers, const char *schemas, const char *rules) {
    if (g_stop)
        return; /* Ctrl-C: no more output */
    fprintf(stderr, "\ndemo: how well each alert kind foretold the lost deals of this synthetic "
                    "history\n(dealsignal backtest; see docs/LEARNING.md):\n\n");
    fflush(stdout);
    const char *args[] = {g_self,    "backtest", "--brokers",   brokers, "--schemas", schemas,
                          "--rules", rules,      "--log-level", "warn",  NULL};
    pid_t p = spawn(args, -1, -1);
    int st;
    for (int i = 0; p > 0 && i < 600 && !g_stop; i++) {
        if (waitpid(p, &st, WNOHANG) == p)
            return;
        ds_clock_sleep_ms(100);
    }
    if (p > 0 && stop_child(p, 2000) != 0)
        fprintf(stderr, "demo: the backtest did not finish\n");
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: dealsignal demo [--count N] [--rate EPS] [--seed S] [--accounts N]\n"
            "                       [--metrics-addr HOST:PORT] [--keep-running]\n"
            "                       [--schemas DIR] [--rules FILE]\n\n"
            "Runs the whole system on this machine: the embedded broker (in memory, not\n"
            "durable), a private redis-server on a free port, the scorer and the watcher\n"
            "(event clock, config/demo-rules.yaml), and a generated scenario of marketing and\n"
            "CRM events (quiet deals, one-sided deals, reps jumping stages).  Prints lead and\n"
            "account scores and deal alerts as they are produced, then a summary and a\n"
            "backtest of the alert rules against the scenario's won and lost deals, and\n"
            "stops by itself when the scenario has been processed (or on Ctrl-C).\n\n"
            "  --count N        events to generate (default 3000)\n"
            "  --rate EPS       events per second (default 500; 0 = as fast as possible)\n"
            "  --seed S         scenario seed (default 6)\n"
            "  --accounts N     accounts in the scenario (default 12)\n"
            "  --metrics-addr   serve /metrics, /healthz, /readyz there (default off)\n"
            "  --keep-running   do not stop after the scenario; Ctrl-C stops\n"
            "  --schemas DIR    the <id>-<Name>.avsc files (default $DEALSIGNAL_SCHEMAS_DIR,\n"
            "                   else schemas in the working directory, else the binary's own)\n"
            "  --rules FILE     the workers' rules (default config/demo-rules.yaml in the\n"
            "                   working directory, else the binary's own copy of it)\n");
}

/* Until the workers have processed everything generated: their group has
 * committed each input partition's high watermark (offsets are committed
 * only once the state is written and the outputs acknowledged), or 60 s. */
static void wait_processed(const char *brokers) {
    int64_t end = ds_clock_mono_ms() + 60000;
    while (!g_stop && ds_clock_mono_ms() < end) {
        if (ds_kafka_group_caught_up(brokers, "demo", "ma.events", 2000) &&
            ds_kafka_group_caught_up(brokers, "demo", "crm.events", 2000))
            return;
        ds_clock_sleep_ms(200);
    }
    if (!g_stop)
        fprintf(stderr, "demo: the workers have not processed everything after 60 s\n");
}

/* The picture the demo ends with, from the state the workers left in Redis. */
static void print_summary(int port) {
    redisContext *r = redisConnect("127.0.0.1", port);
    ds_demo_summary_t *s = ds_demo_summary_new();
    char err[256];
    if (!r || r->err || !s)
        fprintf(stderr, "demo: no summary: cannot read Redis\n");
    else if (ds_demo_summary_read_redis(s, r, "ds:", err, sizeof(err)))
        fprintf(stderr, "demo: no summary: %s\n", err);
    else
        ds_demo_summary_print(s, stdout);
    fflush(stdout);
    ds_demo_summary_destroy(s);
    if (r)
        redisFree(r);
}

int ds_cmd_demo(int argc, char **argv) {
    const char *count = "3000", *rate = "500", *seed = "6", *accounts = "12", *metrics = "";
    const char *schemas = getenv("DEALSIGNAL_SCHEMAS_DIR"), *rules = "config/demo-rules.yaml";
    bool rules_set = false;
    if (!schemas || !schemas[0])
        schemas = "schemas";
    int keep = 0;
    static const struct option opts[] = {
        {"count", required_argument, 0, 'n'},        {"rate", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 's'},         {"accounts", required_argument, 0, 'a'},
        {"metrics-addr", required_argument, 0, 'm'}, {"keep-running", no_argument, 0, 'k'},
        {"schemas", required_argument, 0, 'S'},      {"rules", required_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': count = optarg; break;
        case 'r': rate = optarg; break;
        case 's': seed = optarg; break;
        case 'a': accounts = optarg; break; /* each checked below, before anything starts */
        case 'm': metrics = optarg; break;
        case 'k': keep = 1; break;
        case 'S': schemas = optarg; break;
        case 'R':
            rules = optarg;
            rules_set = true;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    double num;
    if (ds_cmd_num("demo", "count", count, 1, 1e9, true, &num) ||
        ds_cmd_num("demo", "rate", rate, 0, 1e9, false, &num) ||
        ds_cmd_num("demo", "seed", seed, 0, 1e15, true, &num) ||
        ds_cmd_num("demo", "accounts", accounts, 1, 1e6, true, &num))
        return 2;
    if (!inputs_found(schemas, rules_set ? rules : NULL))
        return 1;
    ssize_t sl = readlink("/proc/self/exe", g_self, sizeof(g_self) - 1);
    if (sl <= 0) {
        fprintf(stderr, "demo: cannot find my own binary\n");
        return 1;
    }
    g_self[sl] = '\0';
    ds_cmd_catch_stop(on_sig);
    signal(SIGPIPE, SIG_IGN);

    char tmpdir[] = "/tmp/dealsignal-demo-XXXXXX";
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "demo: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char redis_url[64], port_s[16], logpath[4200], rules_copy[4200];
    snprintf(logpath, sizeof(logpath), "%s/workers.log", tmpdir);
    struct stat rst;
    if (!rules_set && stat(rules, &rst) != 0) { /* outside the repository: our own copy */
        snprintf(rules_copy, sizeof(rules_copy), "%s/demo-rules.yaml", tmpdir);
        FILE *rf = fopen(rules_copy, "w");
        bool written = rf && fputs(ds_builtin_demo_rules, rf) != EOF;
        if (rf && fclose(rf) != 0)
            written = false;
        if (!written) {
            fprintf(stderr, "demo: cannot write %s\n", rules_copy);
            unlink(rules_copy);
            rmdir(tmpdir);
            return 1;
        }
        rules = rules_copy;
    }
    int rc = 1, port = -1;
    pid_t broker = -1, redis = -1, workers = -1, tail_s = -1, tail_a = -1, gen = -1;

    /* 1. the broker: first stdout line = bootstrap servers */
    int bp[2];
    if (pipe(bp)) {
        perror("pipe");
        goto out;
    }
    const char *bargs[] = {g_self, "broker", "--partitions", "4", NULL};
    broker = spawn(bargs, bp[1], -1);
    close(bp[1]);
    char brokers[512] = "";
    FILE *bf = fdopen(bp[0], "r");
    if (!bf || !fgets(brokers, sizeof(brokers), bf)) {
        fprintf(stderr, "demo: the broker did not start\n");
        if (bf)
            fclose(bf);
        goto out;
    }
    fclose(bf);
    brokers[strcspn(brokers, "\r\n")] = '\0';

    /* 2. a private redis-server */
    port = free_port();
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(redis_url, sizeof(redis_url), "redis://127.0.0.1:%d/0", port);
    int devnull = open("/dev/null", O_WRONLY);
    const char *rargs[] = {"redis-server", "--port", port_s, "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", tmpdir, NULL};
    redis = spawn(rargs, devnull, -1);
    bool up = false;
    for (int i = 0; i < 200 && !up; i++) {
        redisContext *rc2 = redisConnect("127.0.0.1", port);
        up = rc2 && !rc2->err;
        if (rc2)
            redisFree(rc2);
        if (!up)
            ds_clock_sleep_ms(25);
    }
    if (!up) {
        fprintf(stderr, "demo: redis-server did not start (is it installed?)\n");
        goto out;
    }
    char pace[64];
    if (strtod(rate, NULL) > 0)
        snprintf(pace, sizeof(pace), "at %s/s", rate);
    else
        snprintf(pace, sizeof(pace), "as fast as possible");
    fprintf(stderr,
            "demo: broker %s (in memory, not durable), redis %s\n"
            "demo: logs %s (kept if the demo fails)\n"
            "demo: generating %s events %s (seed %s); Ctrl-C stops\n\n",
            brokers, redis_url, logpath, count, pace, seed);

    /* 3. both workers, their logs to a file so the screen shows results */
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
    const char *wargs[] = {g_self,    "run",          "--brokers",    brokers,   "--redis",
                           redis_url, "--schemas",    schemas,        "--rules", rules,
                           "--clock", "event",        "--group-id",   "demo",    "--metrics-addr",
                           metrics,   NULL};
    pid_t wpid = fork();
    if (wpid == 0) {
        setpgid(0, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        execv(g_self, (char *const *)wargs);
        _exit(127);
    }
    workers = wpid;
    g_children[g_nchildren++] = wpid;

    /* 4. the tails print to our stdout, from the topics' beginning (a tail
     * that joins after the first outputs would miss them), a line each cut
     * to the summary's 100 columns */
    const char *targs[] = {g_self,      "tail",  "scores",           "--brokers", brokers,
                           "--schemas", schemas, "--from-beginning", "--width", "100",
                           NULL};
    tail_s = spawn(targs, -1, -1);
    const char *aargs[] = {g_self,      "tail",  "alerts",           "--brokers", brokers,
                           "--schemas", schemas, "--from-beginning", "--width", "100",
                           NULL};
    tail_a = spawn(aargs, -1, -1);

    /* 5. the scenario */
    const char *gargs[] = {g_self,   "gen",     "--brokers",  brokers,  "--count", count,
                           "--rate", rate,      "--seed",     seed,     "--accounts", accounts,
                           "--schemas", schemas, NULL};
    gen = spawn(gargs, devnull, -1);
    int st;
    while (!g_stop) {
        if (gen > 0 && waitpid(gen, &st, WNOHANG) == gen) {
            gen = -1;
            if (!WIFEXITED(st) || WEXITSTATUS(st)) {
                fprintf(stderr, "demo: the generator failed; see %s\n", logpath);
                goto out; /* rc 1: no picture of nothing, the logs kept */
            }
            if (!keep) {
                wait_processed(brokers);
                break;
            }
        }
        if (waitpid(workers, &st, WNOHANG) == workers) {
            workers = -1;
            fprintf(stderr, "demo: the workers exited; see %s\n", logpath);
            goto out;
        }
        ds_clock_sleep_ms(100);
    }
    rc = 0;
out:
    stop_child(gen, 5000);
    /* SIGTERM writes the workers' state to Redis before they exit */
    if (workers > 0 && stop_child(workers, 15000) != 0) {
        fprintf(stderr, "demo: the workers did not stop cleanly; see %s\n", logpath);
        rc = 1;
    }
    stop_child(tail_s, 5000);
    stop_child(tail_a, 5000);
    if (rc == 0)
        print_summary(port);
    if (rc == 0)
        demo_backtest(brokers, schemas, rules);
    stop_child(redis, 5000);
    stop_child(broker, 5000);
    if (rc == 0) {
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "demo: could not remove %s\n", tmpdir);
    }
    return rc;
}
