/*
 * cmd_workers.c — `dealsignal scorer|watcher|run`: configuration, rules,
 * metrics endpoint, signals, one thread per worker (`threads` of each kind
 * asked for, all in one consumer group).
 *
 * The main thread owns configuration and rules: SIGHUP re-reads the rules
 * file and, when valid, hands the new rules to the workers (they switch
 * between batches); invalid rules are logged and the old ones stay.  Rule
 * sets are freed only at exit, so a worker never sees freed rules.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmds.h"
#include "ds_clock.h"
#include "ds_config.h"
#include "ds_http.h"
#include "ds_log.h"
#include "ds_metrics.h"
#include "ds_registry.h"
#include "rules.h"
#include "workers.h"

enum { RUN_SCORER = 1, RUN_WATCHER = 2 };

static volatile sig_atomic_t g_reload;

static void on_hup(int sig) {
    (void)sig;
    g_reload = 1;
}

typedef struct app {
    ds_config_t *cfg;
    ds_rules_t **rules; /* every set loaded; the last is in force */
    size_t nrules;
    ds_metrics_t *metrics;
    /* the engines of those that run, each on a thread of its own */
    struct run {
        ds_worker_t *worker;
        size_t kind; /* its index in kinds[] */
        pthread_t thread;
        bool started;
        int rc;
        bool left; /* at the leave barrier, or its run is over */
        struct app *app;
    } *runs;
    size_t nruns;
    /* the workers leave the group together (ds_worker_before_leave) */
    pthread_mutex_t leave_mu;
    pthread_cond_t leave_cv;
    size_t leaving;
} app_t;

static void print_usage(const char *cmd, FILE *out) {
    const char *what =
        !strcmp(cmd, "scorer")
            ? "Runs the lead scorer: consumes topics.marketing, produces topics.lead_scores\n"
              "and topics.account_scores, keeps lead and account state in Redis."
        : !strcmp(cmd, "watcher")
            ? "Runs the stall watcher: consumes topics.crm, produces topics.alerts, keeps\n"
              "deal state and the deadline index in Redis."
            : "Runs the scorer and the watcher in one process (one thread each, or\n"
              "`threads` of each).";
    fprintf(out,
            "usage: dealsignal %s [--config FILE] [options]\n\n%s\n\n"
            "Options (each also settable in the config file and as DEALSIGNAL_* variables;\n"
            "flags win over variables, which win over the file):\n",
            cmd, what);
    ds_config_print_help(out);
    fprintf(out, "\nSignals: SIGTERM/SIGINT finish the batch, commit and exit 0; SIGHUP reloads\n"
                 "the rules file (invalid rules are rejected and the old ones stay).\n");
}

/* Whether another worker of run i's kind has partitions. */
static bool kind_assigned(const app_t *a, size_t i) {
    for (size_t j = 0; j < a->nruns; j++)
        if (j != i && a->runs[j].kind == a->runs[i].kind && ds_worker_assigned(a->runs[j].worker))
            return true;
    return false;
}

/* Ready when every worker is; a thread left without partitions (more
 * threads than partitions) does not hold the process back while another
 * of its kind has some: it has no work, as a process of the group left
 * without partitions has none. */
static bool ready_fn(void *opaque, char *why, size_t why_size) {
    app_t *a = opaque;
    for (size_t i = 0; i < a->nruns; i++)
        if (!ds_worker_ready(a->runs[i].worker, why, why_size) &&
            (ds_worker_assigned(a->runs[i].worker) || !kind_assigned(a, i)))
            return false;
    return true;
}

/* One more worker of the process is ready to leave the group (or will
 * never get there); with `wait`, wait until every worker is, or until
 * shutdown_timeout_ms has passed. */
static void leave_barrier(struct run *r, bool wait) {
    app_t *a = r->app;
    pthread_mutex_lock(&a->leave_mu);
    if (!r->left) {
        r->left = true;
        a->leaving++;
        pthread_cond_broadcast(&a->leave_cv);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t ns = until.tv_nsec + (int64_t)a->cfg->shutdown_timeout_ms * 1000000;
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    while (wait && a->leaving < a->nruns)
        if (pthread_cond_timedwait(&a->leave_cv, &a->leave_mu, &until))
            break;
    pthread_mutex_unlock(&a->leave_mu);
}

static void before_leave(void *p) {
    leave_barrier(p, true);
}

static void *worker_thread(void *p) {
    struct run *r = p;
    r->rc = ds_worker_run(r->worker);
    ds_worker_stop = 1;      /* one worker down takes the process down */
    leave_barrier(r, false); /* a run that ended before the barrier */
    return NULL;
}

static bool keep_rules(app_t *a, ds_rules_t *r) {
    ds_rules_t **nr = realloc(a->rules, (a->nrules + 1) * sizeof(*nr));
    if (!nr)
        return false;
    a->rules = nr;
    a->rules[a->nrules++] = r;
    return true;
}

static void reload(app_t *a) {
    char err[1024] = "";
    ds_rules_t *r = ds_cmd_load_rules(a->cfg->rules_path, a->cfg, err, sizeof(err));
    if (!r || !keep_rules(a, r)) {
        DS_ERROR("main", "rules reload rejected, the rules in force stay: %s", err);
        ds_rules_destroy(r);
        return;
    }
    for (size_t i = 0; i < a->nruns; i++)
        ds_worker_set_rules(a->runs[i].worker, r);
    if (a->cfg->rules_path && a->cfg->rules_path[0])
        DS_INFO("main", "rules reloaded from %s", a->cfg->rules_path);
    else
        DS_INFO("main", "rules reloaded: the built-in defaults");
}

static int run_workers(int argc, char **argv, int which) {
    if (ds_config_wants_help(argc, argv)) {
        print_usage(argv[0], stdout);
        return 0;
    }
    /* first: a SIGTERM while the workers start stops them as one after
     * (exit 0), not the process by the signal's default action */
    ds_worker_install_signals();
    char err[1024] = "";
    app_t a;
    memset(&a, 0, sizeof(a));
    pthread_mutex_init(&a.leave_mu, NULL);
    pthread_cond_init(&a.leave_cv, NULL);
    int rc = 2;
    ds_http_t *http = NULL;
    if (!(a.cfg = ds_cmd_load_config(argv[0], argc, argv)))
        return 2;
    {
        /* what an operator checks first; the password is never printed */
        char redis[512];
        ds_log_redact_url(a.cfg->redis_url, redis, sizeof(redis));
        DS_INFO("main", "starting %s brokers=%s redis=%s group=%s rules=%s kafka_settings=%zu",
                argv[0], a.cfg->brokers, redis, a.cfg->group_id,
                a.cfg->rules_path && a.cfg->rules_path[0] ? a.cfg->rules_path : "(defaults)",
                a.cfg->kafka_count);
    }

    ds_rules_t *rules = ds_cmd_load_rules(a.cfg->rules_path, a.cfg, err, sizeof(err));
    if (!rules || !keep_rules(&a, rules)) {
        fprintf(stderr, "dealsignal %s: rules: %s\n", argv[0], err);
        ds_rules_destroy(rules);
        goto out;
    }
    a.metrics = ds_metrics_new("dealsignal_");
    if (!a.metrics) {
        fprintf(stderr, "dealsignal %s: out of memory\n", argv[0]);
        goto out;
    }
    static const struct {
        int which;
        const char *name;
        ds_worker_t *(*make)(const ds_config_t *, const ds_rules_t *, ds_metrics_t *, int, char *,
                             size_t);
    } kinds[] = {{RUN_SCORER, "scorer", ds_scorer_new}, {RUN_WATCHER, "watcher", ds_watcher_new}};
    int threads = a.cfg->threads;
    if (!(a.runs = calloc(2 * (size_t)threads, sizeof(*a.runs)))) {
        fprintf(stderr, "dealsignal %s: out of memory\n", argv[0]);
        goto out;
    }
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (!(which & kinds[k].which))
            continue;
        for (int t = 1; t <= threads; t++) {
            ds_worker_t *w =
                kinds[k].make(a.cfg, rules, a.metrics, threads > 1 ? t : 0, err, sizeof(err));
            if (!w) {
                /* `run` names which worker; `scorer` and `watcher` are it */
                if (strcmp(argv[0], kinds[k].name))
                    fprintf(stderr, "dealsignal %s: %s: %s\n", argv[0], kinds[k].name, err);
                else
                    fprintf(stderr, "dealsignal %s: %s\n", argv[0], err);
                goto out;
            }
            ds_worker_before_leave(w, before_leave, &a.runs[a.nruns]);
            a.runs[a.nruns] = (struct run){.worker = w, .kind = k, .app = &a};
            a.nruns++;
        }
    }
    if (a.cfg->metrics_addr && a.cfg->metrics_addr[0]) {
        http = ds_http_start(a.cfg->metrics_addr, a.metrics, ready_fn, &a, err, sizeof(err));
        if (!http) {
            fprintf(stderr, "dealsignal %s: metrics.addr: %s\n", argv[0], err);
            goto out;
        }
        DS_INFO("main", "metrics and health on http://%s (port %d)", a.cfg->metrics_addr,
                ds_http_port(http));
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);

    for (size_t i = 0; i < a.nruns; i++)
        a.runs[i].started = !pthread_create(&a.runs[i].thread, NULL, worker_thread, &a.runs[i]);
    while (!ds_worker_stop) {
        if (g_reload) {
            g_reload = 0;
            reload(&a);
        }
        ds_clock_sleep_ms(100);
    }
    DS_INFO("main", "stopping: each worker finishes its batch, writes its state and commits "
                    "(shutdown_timeout_ms %d)",
            a.cfg->shutdown_timeout_ms);
    rc = 0;
    for (size_t i = 0; i < a.nruns; i++) {
        if (a.runs[i].started)
            pthread_join(a.runs[i].thread, NULL);
        rc |= a.runs[i].rc ? 1 : 0;
    }
    DS_INFO("main", "stopped rc=%d", rc);
out:
    ds_http_stop(http);
    for (size_t i = 0; i < a.nruns; i++)
        ds_worker_destroy(a.runs[i].worker);
    free(a.runs);
    pthread_cond_destroy(&a.leave_cv);
    pthread_mutex_destroy(&a.leave_mu);
    ds_metrics_destroy(a.metrics);
    for (size_t i = 0; i < a.nrules; i++)
        ds_rules_destroy(a.rules[i]);
    free(a.rules);
    ds_config_destroy(a.cfg);
    return rc;
}

int ds_cmd_scorer(int argc, char **argv) {
    return run_workers(argc, argv, RUN_SCORER);
}
int ds_cmd_watcher(int argc, char **argv) {
    return run_workers(argc, argv, RUN_WATCHER);
}
int ds_cmd_run(int argc, char **argv) {
    return run_workers(argc, argv, RUN_SCORER | RUN_WATCHER);
}
