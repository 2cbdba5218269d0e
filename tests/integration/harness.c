/*
 * harness.c — see harness.h.  Processes are started with fork/exec and
 * tracked in a small table so that cleanup kills whatever is left; the
 * threads a case starts are tracked in another, and every case's teardown
 * joins whatever it left running.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ds_buf.h"
#include "ds_clock.h"
#include "ds_kafka.h"
#include "ds_registry.h"

static pid_t g_pids[64];
static int g_npids;
static ds_h_env_t *g_env;
static ds_registry_t *g_reg;
static ds_codec_t *g_codec;

void ds_h_die(const char *who, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", who);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    ds_h_cleanup();
    exit(1);
}

#define die(...) ds_h_die("harness", __VA_ARGS__)

static void track(pid_t p) {
    if (g_npids < 64)
        g_pids[g_npids++] = p;
}

static void untrack(pid_t p) {
    for (int i = 0; i < g_npids; i++)
        if (g_pids[i] == p)
            g_pids[i] = 0;
}

void ds_h_cleanup(void) {
    for (int i = 0; i < g_npids; i++) {
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
            g_pids[i] = 0;
        }
    }
    if (g_env && g_env->tmpdir[0] && getenv("DS_KEEP_TMP")) {
        fprintf(stderr, "kept %s (DS_KEEP_TMP)\n", g_env->tmpdir);
        g_env->tmpdir[0] = '\0';
    }
    if (g_env && g_env->tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_env->tmpdir);
        if (system(cmd) != 0) {
            /* best effort */
        }
        g_env->tmpdir[0] = '\0';
    }
    ds_h_codec_free();
}

/* A port the kernel says is free now.  Never one this process handed out
 * before: a port is closed again before its server binds it, and the
 * kernel may well give it out twice in a row (six cluster nodes and their
 * bus ports are picked before any of them has started). */
int ds_h_free_port(void) {
    static uint8_t given[65536];
    for (int tries = 0; tries < 1000; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            die("bind: %s", strerror(errno));
        socklen_t l = sizeof(a);
        getsockname(fd, (struct sockaddr *)&a, &l);
        close(fd);
        int port = ntohs(a.sin_port);
        if (!given[port]) {
            given[port] = 1;
            return port;
        }
    }
    die("no free port not handed out before");
    return -1;
}

static const char *bin(void) {
    const char *b = getenv("DS_BIN");
    return b ? b : "./dealsignal";
}

pid_t ds_h_spawn(const char *logfile, const char *const *args) {
    pid_t p = fork();
    if (p < 0)
        die("fork: %s", strerror(errno));
    if (p == 0) {
        if (logfile) {
            int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        const char *argv[64];
        int n = 0;
        argv[n++] = bin();
        for (int i = 0; args[i] && n < 63; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(bin(), (char *const *)argv);
        _exit(127);
    }
    track(p);
    return p;
}

void ds_h_names(ds_h_names_t *n, const char *group_prefix, const char *name, bool long_topics) {
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(n->prefix, sizeof(n->prefix), "%s:", name);
    snprintf(n->group, sizeof(n->group), "%s-%s", group_prefix, name);
    snprintf(n->ls, sizeof(n->ls), long_topics ? "lead.scores.%s" : "%s.ls", name);
    snprintf(n->as, sizeof(n->as), long_topics ? "account.scores.%s" : "%s.as", name);
    snprintf(n->al, sizeof(n->al), long_topics ? "deal.alerts.%s" : "%s.al", name);
}

void ds_h_args_add(ds_h_args_t *a, ...) {
    va_list ap;
    va_start(ap, a);
    for (const char *s; (s = va_arg(ap, const char *));) {
        if (a->n + 1 >= (int)(sizeof(a->v) / sizeof(a->v[0])))
            die("too many arguments");
        a->v[a->n++] = s;
    }
    va_end(ap);
    a->v[a->n] = NULL;
}

void ds_h_worker_args(ds_h_args_t *a, const ds_h_env_t *env, const char *what,
                      const char *redis_url, const char *group, const char *prefix) {
    a->n = 0;
    ds_h_args_add(a, what, "--brokers", env->brokers, "--redis", redis_url, "--group-id", group,
                  "--redis-prefix", prefix, "--schemas", getenv("DS_SCHEMAS_DIR"), "--clock",
                  "event", "-X", "session.timeout.ms=6000", NULL);
}

bool ds_h_gen_mixed(const ds_h_env_t *env, long events) {
    char count[32], accounts[32], log[256];
    snprintf(count, sizeof(count), "%ld", events);
    snprintf(accounts, sizeof(accounts), "%ld", events / 400 > 50 ? events / 400 : 50);
    snprintf(log, sizeof(log), "%s/gen.log", env->tmpdir);
    const char *args[] = {"gen",
                          "--brokers",
                          env->brokers,
                          "--count",
                          count,
                          "--seed",
                          "11",
                          "--scenario",
                          "mixed",
                          "--start", /* the same stream whatever the day it runs */
                          "2025-06-01",
                          "--accounts",
                          accounts,
                          "--schemas",
                          getenv("DS_SCHEMAS_DIR"),
                          NULL};
    pid_t g = ds_h_spawn(log, args);
    int st;
    if (waitpid(g, &st, 0) != g)
        return false;
    untrack(g);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int ds_h_teardown(rd_kafka_t *producer, pid_t worker) {
    if (producer)
        rd_kafka_destroy(producer);
    int rc = ds_h_stop(worker, SIGTERM, 10000);
    ds_h_cleanup();
    return rc == 0 ? 0 : -1;
}

int ds_h_group_teardown(void **state) {
    (void)state;
    ds_h_cleanup();
    return 0;
}

int ds_h_run_to(const char *out, const char *err, bool err_append, const char *const *args) {
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | (err_append ? O_APPEND : O_TRUNC), 0644);
        if (fo < 0 || fe < 0)
            _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        const char *argv[64];
        int n = 0;
        argv[n++] = getenv("DS_BIN");
        for (int i = 0; args[i] && n < 63; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    for (int i = 0; i < 600; i++) {
        if (waitpid(p, &st, WNOHANG) == p)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        ds_clock_sleep_ms(100);
    }
    kill(p, SIGKILL);
    waitpid(p, &st, 0);
    fail_msg("%s %s did not finish within 60 s", getenv("DS_BIN"), args[0]);
    return -1;
}

int ds_h_stop(pid_t pid, int sig, int timeout_ms) {
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    int64_t end = ds_clock_mono_ms() + timeout_ms;
    int st;
    while (ds_clock_mono_ms() < end) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            untrack(pid);
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            return 128 + WTERMSIG(st);
        }
        ds_clock_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    untrack(pid);
    return -1;
}

static pid_t exec_redis(ds_h_env_t *env) {
    char port[16];
    snprintf(port, sizeof(port), "%d", env->redis_port);
    pid_t p = fork();
    if (p == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", env->redis_aof ? "yes" : "no", "--appendfsync", "always", "--dir",
               env->tmpdir, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    track(p);
    return p;
}

static void wait_redis(ds_h_env_t *env);

static void start_redis(ds_h_env_t *env) {
    env->redis_port = ds_h_free_port();
    env->redis_pid = exec_redis(env);
    snprintf(env->redis_url, sizeof(env->redis_url), "redis://127.0.0.1:%d/0", env->redis_port);
    wait_redis(env);
}

static void wait_redis(ds_h_env_t *env) {
    for (int i = 0; i < 200; i++) {
        redisContext *c = redisConnect("127.0.0.1", env->redis_port);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return;
        } else if (c) {
            redisFree(c);
        }
        ds_clock_sleep_ms(25);
    }
    die("redis-server did not start on port %d", env->redis_port);
}

void ds_h_stop_redis(ds_h_env_t *env) {
    ds_h_stop(env->redis_pid, SIGKILL, 5000);
    env->redis_pid = 0;
}

void ds_h_restart_redis(ds_h_env_t *env) {
    env->redis_pid = exec_redis(env);
    wait_redis(env);
}

void ds_h_start_aof(ds_h_env_t *env, int partitions) {
    memset(env, 0, sizeof(*env));
    env->redis_aof = true;
    ds_h_start(env, partitions, true);
}

/* A test that dies of a signal (a crash, a timeout) takes what it started
 * with it: only async-signal-safe calls here. */
static void on_fatal_signal(int sig) {
    for (int i = 0; i < g_npids; i++)
        if (g_pids[i] > 0)
            kill(g_pids[i], SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

void ds_h_start(ds_h_env_t *env, int partitions, bool want_redis) {
    bool aof = env->redis_aof;
    memset(env, 0, sizeof(*env));
    env->redis_aof = aof;
    g_env = env;
    atexit(ds_h_cleanup);
    signal(SIGSEGV, on_fatal_signal);
    signal(SIGABRT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGBUS, on_fatal_signal);
    signal(SIGPIPE, SIG_IGN);
    snprintf(env->tmpdir, sizeof(env->tmpdir), "/tmp/ds-it-XXXXXX");
    if (!mkdtemp(env->tmpdir))
        die("mkdtemp: %s", strerror(errno));
    if (want_redis)
        start_redis(env);
    int out[2], in[2];
    if (pipe(out) || pipe(in))
        die("pipe");
    char parts[16];
    snprintf(parts, sizeof(parts), "%d", partitions);
    pid_t p = fork();
    if (p == 0) {
        dup2(out[1], 1);
        dup2(in[0], 0);
        close(out[0]);
        close(in[1]);
        execl(bin(), bin(), "broker", "--partitions", parts, "--control", "stdin", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    env->broker_pid = p;
    env->broker_ctl = in[1];
    track(p);
    FILE *f = fdopen(out[0], "r");
    if (!f || !fgets(env->brokers, sizeof(env->brokers), f))
        die("broker printed no bootstrap servers");
    env->brokers[strcspn(env->brokers, "\r\n")] = '\0';
    /* keep reading the control answers in the background: a child drains
     * the pipe so the broker never blocks on a full stdout */
    if (fork() == 0) {
        char line[256];
        while (fgets(line, sizeof(line), f))
            ;
        _exit(0);
    }
    fclose(f);
}

void ds_h_broker_ctl(ds_h_env_t *env, const char *line) {
    size_t n = strlen(line);
    if (write(env->broker_ctl, line, n) != (ssize_t)n || write(env->broker_ctl, "\n", 1) != 1)
        die("broker control write failed");
    ds_clock_sleep_ms(100);
}

void ds_h_create_topic(ds_h_env_t *env, const char *name, int partitions) {
    char line[300];
    snprintf(line, sizeof(line), "create-topic %s %d", name, partitions);
    ds_h_broker_ctl(env, line);
}

/* ---- Kafka ----------------------------------------------------------------- */

rd_kafka_t *ds_h_producer(const ds_h_env_t *env) {
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char e[256];
    rd_kafka_conf_set(c, "bootstrap.servers", env->brokers, e, sizeof(e));
    rd_kafka_conf_set(c, "enable.idempotence", "true", e, sizeof(e));
    rd_kafka_conf_set(c, "linger.ms", "1", e, sizeof(e));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
    if (!p)
        die("producer: %s", e);
    return p;
}

void ds_h_produce(rd_kafka_t *p, const char *topic, const char *key, const void *val, size_t len) {
    ds_h_produce_to(p, topic, RD_KAFKA_PARTITION_UA, key, key ? strlen(key) : 0, val, len);
}

void ds_h_produce_to(rd_kafka_t *p, const char *topic, int32_t partition, const void *key,
                     size_t klen, const void *val, size_t len) {
    ds_h_produce_at(p, topic, partition, key, klen, val, len, 0);
}

void ds_h_produce_at(rd_kafka_t *p, const char *topic, int32_t partition, const void *key,
                     size_t klen, const void *val, size_t len, int64_t ts_ms) {
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, klen),
            RD_KAFKA_V_VALUE((void *)val, len), RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_END);
        if (!err)
            return;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(p, 10);
            continue;
        }
        die("produce: %s", rd_kafka_err2str(err));
    }
}

void ds_h_flush(rd_kafka_t *p) {
    if (rd_kafka_flush(p, 30000))
        die("flush timed out");
}

size_t ds_h_consume(const ds_h_env_t *env, const char *topic, size_t want, int timeout_ms,
                    ds_h_record_t **out) {
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char e[256];
    rd_kafka_conf_set(c, "bootstrap.servers", env->brokers, e, sizeof(e));
    rd_kafka_conf_set(c, "group.id", ds_h_unique("reader"), e, sizeof(e));
    rd_kafka_conf_set(c, "auto.offset.reset", "earliest", e, sizeof(e));
    rd_kafka_conf_set(c, "enable.auto.commit", "false", e, sizeof(e));
    rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof(e));
    if (!k)
        die("consumer: %s", e);
    rd_kafka_poll_set_consumer(k);
    int64_t end = ds_clock_mono_ms() + timeout_ms;
    /* assign every partition from the beginning: no group join (the mock
     * cluster's join costs seconds per call) */
    int nparts = 0;
    while (nparts == 0 && ds_clock_mono_ms() < end) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(k, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(k, 0, t, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (md->topic_cnt == 1 && !md->topics[0].err)
                nparts = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(t);
        if (nparts == 0)
            ds_clock_sleep_ms(100);
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts ? nparts : 1);
    for (int i = 0; i < nparts; i++)
        rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (nparts)
        rd_kafka_assign(k, l);
    rd_kafka_topic_partition_list_destroy(l);
    /* want == SIZE_MAX: everything there is now, i.e. up to each
     * partition's high watermark (read first), not what one poll loop
     * happens to see before the timeout */
    int64_t *high = NULL, *pos = NULL;
    int behind = 0;
    if (want == SIZE_MAX && nparts > 0) {
        size_t np = (unsigned)nparts;
        high = calloc(np, sizeof(*high));
        pos = calloc(np, sizeof(*pos));
        for (int i = 0; i < nparts; i++) {
            int64_t lo = 0, hi = 0;
            while (rd_kafka_query_watermark_offsets(k, topic, i, &lo, &hi, 2000))
                if (ds_clock_mono_ms() < end)
                    ds_clock_sleep_ms(100);
                else
                    die("%s[%d]: no high watermark within %d ms", topic, i, timeout_ms);
            high[i] = hi;
            pos[i] = lo;
            behind += pos[i] < high[i];
        }
    }
    size_t n = 0, cap = 64;
    ds_h_record_t *recs = calloc(cap, sizeof(*recs));
    while (n < want && ds_clock_mono_ms() < end && (!high || behind > 0)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k, 100);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (high && m->partition >= 0 && m->partition < nparts) {
            bool was_behind = pos[m->partition] < high[m->partition];
            if (m->offset + 1 > pos[m->partition])
                pos[m->partition] = m->offset + 1;
            behind -= was_behind && pos[m->partition] >= high[m->partition];
        }
        if (n == cap) {
            cap *= 2;
            recs = realloc(recs, cap * sizeof(*recs));
        }
        ds_h_record_t *r = &recs[n++];
        memset(r, 0, sizeof(*r));
        r->key = m->key ? strndup(m->key, m->key_len) : NULL;
        r->len = m->len;
        r->val = malloc(m->len + 1);
        if (m->len)
            memcpy(r->val, m->payload, m->len);
        r->partition = m->partition;
        r->offset = m->offset;
        rd_kafka_headers_t *h = NULL;
        if (!rd_kafka_message_headers(m, &h)) {
            const char *name;
            const void *v;
            size_t vl;
            for (size_t i = 0; i < 8 && !rd_kafka_header_get_all(h, i, &name, &v, &vl); i++) {
                r->headers[i][0] = strdup(name);
                r->headers[i][1] = v ? strndup(v, vl) : strdup("");
                r->nheaders++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    /* a read cut short by the timeout is not "everything there is" */
    if (high && behind > 0)
        die("%s: %d partition(s) not read to their high watermark within %d ms", topic, behind,
            timeout_ms);
    free(high);
    free(pos);
    rd_kafka_consumer_close(k);
    rd_kafka_destroy(k);
    *out = recs;
    return n;
}

void ds_h_records_free(ds_h_record_t *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(r[i].key);
        free(r[i].val);
        for (int j = 0; j < r[i].nheaders; j++) {
            free(r[i].headers[j][0]);
            free(r[i].headers[j][1]);
        }
    }
    free(r);
}

const char *ds_h_header(const ds_h_record_t *r, const char *name) {
    for (int i = 0; i < r->nheaders; i++)
        if (!strcmp(r->headers[i][0], name))
            return r->headers[i][1];
    return NULL;
}

/* ---- Redis ----------------------------------------------------------------- */

void ds_h_expect_hget(const ds_h_env_t *env, const char *key, const char *field, const char *want,
                      int timeout_ms) {
    char *v = timeout_ms > 0 ? ds_h_wait_hget(env, key, field, want, timeout_ms)
                             : ds_h_hget(env, key, field);
    if (v && (!want || !strcmp(v, want))) {
        free(v);
        return;
    }
    char got[256];
    snprintf(got, sizeof(got), "%s", v ? v : "(nil)");
    free(v); /* before fail_msg: it leaves this frame */
    fail_msg("HGET %s %s: %s, want %s", key, field, got, want ? want : "a value");
}

void ds_h_expect_records(const ds_h_env_t *env, const char *topic, size_t read, int timeout_ms,
                         size_t want) {
    ds_h_record_t *recs;
    size_t n = ds_h_consume(env, topic, read, timeout_ms, &recs);
    ds_h_records_free(recs, n);
    if (n != want)
        fail_msg("%s: %zu records, want %zu", topic, n, want);
}

void ds_h_expect_hash(const ds_h_env_t *env, const char *key, const char *const (*fields)[2],
                      size_t n) {
    for (size_t i = 0; i < n; i++)
        ds_h_expect_hget(env, key, fields[i][0], fields[i][1], 0);
}

redisReply *ds_h_redis(const ds_h_env_t *env, const char *fmt, ...) {
    redisContext *c = redisConnect("127.0.0.1", env->redis_port);
    if (!c || c->err)
        die("redis connect");
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

char *ds_h_hget(const ds_h_env_t *env, const char *key, const char *field) {
    redisReply *r = ds_h_redis(env, "HGET %s %s", key, field);
    char *s = NULL;
    if (r && r->type == REDIS_REPLY_STRING)
        s = strndup(r->str, r->len);
    if (r)
        freeReplyObject(r);
    return s;
}

char *ds_h_wait_hget(const ds_h_env_t *env, const char *key, const char *field, const char *want,
                     int timeout_ms) {
    int64_t end = ds_clock_mono_ms() + timeout_ms;
    for (;;) {
        char *v = ds_h_hget(env, key, field);
        if ((v && (!want || !strcmp(v, want))) || ds_clock_mono_ms() >= end)
            return v;
        free(v);
        ds_clock_sleep_ms(50);
    }
}

/* ---- codec ------------------------------------------------------------------ */

ds_codec_t *ds_h_codec(void) {
    if (g_codec)
        return g_codec;
    const char *dir = getenv("DS_SCHEMAS_DIR");
    char err[512];
    ds_registry_init(1 << 20);
    g_reg = ds_registry_new_dir(dir ? dir : "schemas", err, sizeof(err));
    if (!g_reg)
        die("registry: %s", err);
    g_codec = ds_codec_new(g_reg, &ds_codec_default_ids, err, sizeof(err));
    if (!g_codec)
        die("codec: %s", err);
    return g_codec;
}

void ds_h_codec_free(void) {
    ds_codec_destroy(g_codec);
    g_codec = NULL;
    ds_registry_destroy(g_reg);
    g_reg = NULL;
}

ds_err_t ds_h_decode(ds_codec_t *codec, ds_h_kind_t kind, const ds_h_record_t *r, ds_arena_t *arena,
                     void *out, char *detail, size_t detail_size) {
    switch (kind) {
    case DS_H_LEAD_SCORE:
        return ds_codec_decode_lead_score(codec, r->val, r->len, arena, out, detail, detail_size);
    case DS_H_ACCOUNT_SCORE:
        return ds_codec_decode_account_score(codec, r->val, r->len, arena, out, detail,
                                             detail_size);
    case DS_H_DEAL_ALERT:
        return ds_codec_decode_deal_alert(codec, r->val, r->len, arena, out, detail, detail_size);
    case DS_H_MA_EVENT:
        return ds_codec_decode_ma(codec, r->val, r->len, arena, out, detail, detail_size);
    case DS_H_CRM_EVENT:
        return ds_codec_decode_crm(codec, r->val, r->len, arena, out, detail, detail_size);
    }
    die("ds_h_decode: no kind %d", (int)kind);
}

void ds_h_decode_all(ds_h_kind_t kind, const ds_h_record_t *r, size_t n, ds_arena_t *arena,
                     void *out) {
    static const size_t size[] = {sizeof(ds_lead_score_t), sizeof(ds_account_score_t),
                                  sizeof(ds_deal_alert_t), sizeof(ds_ma_event_t),
                                  sizeof(ds_crm_event_t)};
    for (size_t i = 0; i < n; i++) {
        char detail[256] = "";
        ds_err_t e = ds_h_decode(ds_h_codec(), kind, &r[i], arena,
                                 (unsigned char *)out + i * size[kind], detail, sizeof(detail));
        if (e)
            fail_msg("record %zu of %zu (partition %d, offset %lld) does not decode: %s", i, n,
                     (int)r[i].partition, (long long)r[i].offset, detail);
    }
}

ds_ma_event_t ds_h_ma(const char *id, int64_t t, const char *lead, const char *account, int type,
                      const char *content, const char *insight, int stage) {
    return ds_ma_event_make(id, t, lead, account, type, content, insight, stage);
}

void ds_h_send_ma(rd_kafka_t *p, const char *topic, const ds_ma_event_t *ev) {
    ds_h_send_ma_at(p, topic, ev, 0);
}

void ds_h_send_ma_at(rd_kafka_t *p, const char *topic, const ds_ma_event_t *ev, int64_t ts_ms) {
    ds_buf_t b;
    ds_buf_init(&b, 0);
    if (ds_codec_encode_ma(ds_h_codec(), ev, &b))
        die("encode MarketingEvent %s", ev->event_id);
    const char *key = ev->account_id ? ev->account_id : ev->lead_id;
    ds_h_produce_at(p, topic, RD_KAFKA_PARTITION_UA, key, strlen(key), b.data, b.len, ts_ms);
    ds_buf_free(&b);
}

void ds_h_send_crm(rd_kafka_t *p, const char *topic, const ds_crm_event_t *ev) {
    ds_buf_t b;
    ds_buf_init(&b, 0);
    if (ds_codec_encode_crm(ds_h_codec(), ev, &b))
        die("encode CrmEvent %s", ev->event_id);
    ds_h_produce(p, topic, ev->deal_id, b.data, b.len);
    ds_buf_free(&b);
}

const char *ds_h_unique(const char *prefix) {
    static char buf[128];
    static unsigned n;
    snprintf(buf, sizeof(buf), "%s-%d-%u-%lld", prefix, (int)getpid(), n++,
             (long long)ds_clock_mono_us());
    return buf;
}

bool ds_h_group_done(const ds_h_env_t *env, const char *group, const char *topic) {
    return ds_kafka_group_caught_up(env->brokers, group, topic, 5000);
}

typedef struct consumed {
    int64_t sum; /* committed, over the partitions */
    bool done;   /* every partition committed to its high watermark */
} consumed_t;

static void add_committed(void *opaque, int32_t partition, int64_t committed, int64_t high) {
    (void)partition;
    consumed_t *c = opaque;
    if (committed > 0)
        c->sum += committed;
    if (high < 0 || (high > 0 && committed < high))
        c->done = false;
}

/* Each look is a client of its own on the broker: every poll_ms. */
static int64_t wait_consumed(const ds_h_env_t *env, const char *group, const char *topic,
                             int64_t more_than, int timeout_ms, int poll_ms) {
    int64_t end = ds_clock_mono_ms() + timeout_ms;
    while (ds_clock_mono_ms() < end) {
        consumed_t c = {0, true};
        if (ds_kafka_group_offsets(env->brokers, group, topic, 5000, add_committed, &c) > 0 &&
            (c.sum > more_than || c.done))
            return c.sum;
        ds_clock_sleep_ms(poll_ms);
    }
    return -1;
}

int64_t ds_h_wait_group_consumed(const ds_h_env_t *env, const char *group, const char *topic,
                                 int64_t more_than, int timeout_ms) {
    return wait_consumed(env, group, topic, more_than, timeout_ms, 100);
}

bool ds_h_wait_group(const ds_h_env_t *env, const char *group, const char *topic, int timeout_ms) {
    return wait_consumed(env, group, topic, INT64_MAX, timeout_ms, 500) >= 0;
}

/* ---- Redis Cluster ---------------------------------------------------------------- */

/* Each node's cluster bus port: its own free port (by default it would be
 * port + 10000, which fails for ports above 55535). */
static int g_bus_port[65536];

static pid_t exec_cluster_node(const ds_h_env_t *env, int port) {
    char p[16], bus[16], dir[200], conf[64];
    snprintf(p, sizeof(p), "%d", port);
    if (!g_bus_port[port])
        g_bus_port[port] = ds_h_free_port();
    snprintf(bus, sizeof(bus), "%d", g_bus_port[port]);
    snprintf(dir, sizeof(dir), "%s/cluster-%d", env->tmpdir, port);
    snprintf(conf, sizeof(conf), "nodes-%d.conf", port);
    mkdir(dir, 0755);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1",
               "--cluster-enabled", "yes", "--cluster-port", bus, "--cluster-config-file", conf,
               "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no", "--dir", dir,
               "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    track(pid);
    return pid;
}

static redisReply *vnode(int port, const char *fmt, va_list ap) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *r = redisvCommand(c, fmt, ap);
    redisFree(c);
    return r;
}

redisReply *ds_h_node(const ds_h_cluster_t *cl, int i, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vnode(cl->port[i], fmt, ap);
    va_end(ap);
    return r;
}

static int index_of_port(const ds_h_cluster_t *cl, long long port) {
    for (int i = 0; i < cl->n; i++)
        if (cl->port[i] == port)
            return i;
    return -1;
}

/* owner[slot] = node index, from node i's CLUSTER SLOTS; false if none */
static bool slots_of(const ds_h_cluster_t *cl, int i, int16_t *owner) {
    redisReply *r = ds_h_node(cl, i, "CLUSTER SLOTS");
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return false;
    }
    for (int s = 0; s < 16384; s++)
        owner[s] = -1;
    for (size_t k = 0; k < r->elements; k++) {
        redisReply *e = r->element[k];
        if (e->elements < 3)
            continue;
        int m = index_of_port(cl, e->element[2]->element[1]->integer);
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
            owner[s] = (int16_t)m;
    }
    freeReplyObject(r);
    return true;
}

static bool info_has(const ds_h_cluster_t *cl, int i, const char *section, const char *needle) {
    redisReply *r = ds_h_node(cl, i, "INFO %s", section);
    bool ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, needle);
    if (r)
        freeReplyObject(r);
    return ok;
}

/* The line of `text` that starts with `key` (up to its end), or "?". */
static void line_of(const char *text, const char *key, char *out, size_t n) {
    const char *p = text ? strstr(text, key) : NULL;
    size_t k = 0;
    while (p && p[k] && p[k] != '\r' && p[k] != '\n' && k + 1 < n)
        k++;
    snprintf(out, n, "%.*s", p ? (int)k : 1, p ? p : "?");
}

/* What each live node says, when the cluster did not come right in time. */
static void cluster_report(const ds_h_cluster_t *cl) {
    static int16_t owner[16384];
    for (int i = 0; i < cl->n; i++) {
        if (cl->pid[i] <= 0)
            continue;
        char state[64], role[64], link[64];
        redisReply *ci = ds_h_node(cl, i, "CLUSTER INFO");
        line_of(ci && ci->type == REDIS_REPLY_STRING ? ci->str : NULL, "cluster_state:", state,
                sizeof(state));
        if (ci)
            freeReplyObject(ci);
        redisReply *ri = ds_h_node(cl, i, "INFO replication");
        const char *rs = ri && ri->type == REDIS_REPLY_STRING ? ri->str : NULL;
        line_of(rs, "role:", role, sizeof(role));
        line_of(rs, "master_link_status:", link, sizeof(link));
        if (ri)
            freeReplyObject(ri);
        int dead = 0, none = 0;
        if (slots_of(cl, i, owner))
            for (int s = 0; s < 16384; s++) {
                none += owner[s] < 0;
                dead += owner[s] >= 0 && cl->pid[owner[s]] <= 0;
            }
        fprintf(stderr, "  cluster node %d: %s %s %s; slots of no node %d, of a dead one %d\n",
                cl->port[i], state, role, rs && strstr(rs, "role:slave") ? link : "", none, dead);
    }
}

bool ds_h_cluster_wait_ok(const ds_h_cluster_t *cl, int timeout_ms) {
    int64_t end = ds_clock_mono_ms() + timeout_ms;
    static int16_t first[16384], other[16384];
    while (ds_clock_mono_ms() < end) {
        bool ok = true;
        int ref = -1;
        for (int i = 0; ok && i < cl->n; i++) {
            if (cl->pid[i] <= 0)
                continue;
            redisReply *ci = ds_h_node(cl, i, "CLUSTER INFO");
            ok = ci && ci->type == REDIS_REPLY_STRING && strstr(ci->str, "cluster_state:ok");
            if (ci)
                freeReplyObject(ci);
            if (ok && info_has(cl, i, "replication", "role:slave"))
                ok = info_has(cl, i, "replication", "master_link_status:up") &&
                     info_has(cl, i, "replication", "master_sync_in_progress:0");
            if (!ok)
                break;
            if (ref < 0) {
                ok = slots_of(cl, i, first);
                ref = i;
            } else {
                ok = slots_of(cl, i, other) && !memcmp(first, other, sizeof(first));
            }
            for (int s = 0; ok && i == ref && s < 16384; s++)
                ok = first[s] >= 0 && cl->pid[first[s]] > 0;
        }
        if (ok && ref >= 0)
            return true;
        ds_clock_sleep_ms(100);
    }
    cluster_report(cl);
    return false;
}

void ds_h_cluster_start(ds_h_env_t *env, ds_h_cluster_t *cl, int masters, int replicas) {
    memset(cl, 0, sizeof(*cl));
    cl->n = masters * (1 + replicas);
    if (cl->n > DS_H_CLUSTER_MAX)
        die("cluster of %d nodes: at most %d", cl->n, DS_H_CLUSTER_MAX);
    for (int i = 0; i < cl->n; i++) {
        cl->port[i] = ds_h_free_port();
        cl->pid[i] = exec_cluster_node(env, cl->port[i]);
    }
    for (int i = 0; i < cl->n; i++) {
        redisReply *r = NULL;
        /* another test running at the same time may have taken the port
         * between our pick and the node's bind: a new port, twice */
        for (int attempt = 0; !r && attempt < 3; attempt++) {
            if (attempt) {
                fprintf(stderr, "harness: cluster node on port %d did not start; another port\n",
                        cl->port[i]);
                kill(cl->pid[i], SIGKILL);
                waitpid(cl->pid[i], NULL, 0);
                untrack(cl->pid[i]);
                cl->port[i] = ds_h_free_port();
                cl->pid[i] = exec_cluster_node(env, cl->port[i]);
            }
            for (int tries = 0; !(r = ds_h_node(cl, i, "PING")) && tries < 200; tries++)
                ds_clock_sleep_ms(25);
        }
        if (!r)
            die("cluster node on port %d did not start", cl->port[i]);
        freeReplyObject(r);
    }
    const char *args[DS_H_CLUSTER_MAX + 8];
    char addrs[DS_H_CLUSTER_MAX][32], reps[8];
    int a = 0;
    args[a++] = "redis-cli";
    args[a++] = "--cluster";
    args[a++] = "create";
    for (int i = 0; i < cl->n; i++) {
        snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d", cl->port[i]);
        args[a++] = addrs[i];
    }
    snprintf(reps, sizeof(reps), "%d", replicas);
    args[a++] = "--cluster-replicas";
    args[a++] = reps;
    args[a++] = "--cluster-yes";
    args[a] = NULL;
    pid_t p = fork();
    if (p == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp("redis-cli", (char *const *)args);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        die("redis-cli --cluster create failed");
    if (!ds_h_cluster_wait_ok(cl, 30000))
        die("the cluster did not reach cluster_state:ok");
    snprintf(cl->url, sizeof(cl->url), "redis://127.0.0.1:%d/0", cl->port[0]);
    size_t o = 0;
    for (int i = 1; i < cl->n; i++)
        o += (size_t)snprintf(cl->seeds + o, sizeof(cl->seeds) - o, "%s127.0.0.1:%d",
                              i > 1 ? "," : "", cl->port[i]);
}

void ds_h_cluster_kill(ds_h_cluster_t *cl, int i) {
    ds_h_stop(cl->pid[i], SIGKILL, 5000);
    cl->pid[i] = 0;
}

void ds_h_cluster_restart(const ds_h_env_t *env, ds_h_cluster_t *cl, int i) {
    cl->pid[i] = exec_cluster_node(env, cl->port[i]);
    for (int tries = 0; tries < 200; tries++) {
        redisReply *r = ds_h_node(cl, i, "PING");
        if (r) {
            freeReplyObject(r);
            return;
        }
        ds_clock_sleep_ms(25);
    }
    die("cluster node on port %d did not restart", cl->port[i]);
}

int ds_h_cluster_owner(const ds_h_cluster_t *cl, unsigned slot) {
    static int16_t owner[16384];
    for (int i = 0; i < cl->n; i++)
        if (cl->pid[i] > 0 && slots_of(cl, i, owner))
            return owner[slot & 16383];
    return -1;
}

int ds_h_cluster_masters(const ds_h_cluster_t *cl, int *out) {
    static int16_t owner[16384];
    int n = 0;
    for (int i = 0; i < cl->n; i++) {
        if (cl->pid[i] <= 0 || !slots_of(cl, i, owner))
            continue;
        for (int s = 0; s < 16384; s++) {
            bool seen = owner[s] < 0;
            for (int k = 0; k < n && !seen; k++)
                seen = out[k] == owner[s];
            if (!seen)
                out[n++] = owner[s];
        }
        break;
    }
    return n;
}

char *ds_h_cluster_hget(const ds_h_cluster_t *cl, const char *key, const char *field) {
    redisReply *s = NULL;
    for (int i = 0; i < cl->n && !s; i++)
        if (cl->pid[i] > 0)
            s = ds_h_node(cl, i, "CLUSTER KEYSLOT %s", key);
    if (!s)
        return NULL;
    int owner = ds_h_cluster_owner(cl, (unsigned)s->integer);
    freeReplyObject(s);
    if (owner < 0)
        return NULL;
    redisReply *r = ds_h_node(cl, owner, "HGET %s %s", key, field);
    char *v = r && r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : NULL;
    if (r)
        freeReplyObject(r);
    return v;
}

pid_t ds_h_cluster_reshard(const ds_h_cluster_t *cl, int from, int to, int nslots,
                           const char *logfile) {
    redisReply *a = ds_h_node(cl, from, "CLUSTER MYID");
    redisReply *b = ds_h_node(cl, to, "CLUSTER MYID");
    if (!a || !b || a->type != REDIS_REPLY_STRING || b->type != REDIS_REPLY_STRING)
        die("CLUSTER MYID failed");
    char addr[32], n[16];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", cl->port[from]);
    snprintf(n, sizeof(n), "%d", nslots);
    char *fid = strdup(a->str), *tid = strdup(b->str);
    freeReplyObject(a);
    freeReplyObject(b);
    pid_t p = fork();
    if (p == 0) {
        int fd = open(logfile ? logfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        /* small pipelines: the migration takes a while, so the workers
         * meet both ASK and MOVED */
        execlp("redis-cli", "redis-cli", "--cluster", "reshard", addr, "--cluster-from", fid,
               "--cluster-to", tid, "--cluster-slots", n, "--cluster-yes", "--cluster-pipeline",
               "2", (char *)NULL);
        _exit(127);
    }
    free(fid);
    free(tid);
    track(p);
    return p;
}

/* ---- snapshots ------------------------------------------------------------- */

static int cmp_line(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void push_line(char ***v, size_t *n, size_t *cap, char *s) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = realloc(*v, *cap * sizeof(char *));
        if (!*v)
            die("out of memory");
    }
    (*v)[(*n)++] = s;
}

/* A hash or zset reply (flat field/value pairs) as sorted "f=v;" text;
 * a value holding a NUL is hexed ("f#hex"). */
static char *canon_pairs(const redisReply *r, const char *skip) {
    size_t np = r->elements / 2, total = 1;
    char **parts = calloc(np ? np : 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (skip && !strcmp(f->str, skip))
            continue;
        bool bin = memchr(v->str, 0, v->len) || memchr(f->str, 0, f->len);
        size_t n = f->len + 2 + (bin ? 2 * v->len : v->len) + 1;
        char *s = malloc(n);
        memcpy(s, f->str, f->len);
        s[f->len] = bin ? '#' : '=';
        size_t o = f->len + 1;
        for (size_t j = 0; j < v->len; j++) {
            if (bin)
                o += (size_t)snprintf(s + o, 3, "%02x", (unsigned char)v->str[j]);
            else
                s[o++] = v->str[j];
        }
        s[o] = '\0';
        parts[k++] = s;
        total += o + 1;
    }
    qsort(parts, k, sizeof(char *), cmp_line);
    char *out = malloc(total);
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        o += (size_t)snprintf(out + o, total - o, "%s;", parts[i]);
        free(parts[i]);
    }
    free(parts);
    return out;
}

size_t ds_h_snapshot_ports(const int *ports, int nports, const char *prefix, const char *skip_field,
                           char ***lines) {
    char **v = NULL;
    size_t n = 0, cap = 0, plen = strlen(prefix);
    for (int p = 0; p < nports; p++) {
        redisContext *c = redisConnect("127.0.0.1", ports[p]);
        if (!c || c->err)
            die("snapshot: cannot connect to port %d", ports[p]);
        char cursor[32] = "0";
        do {
            redisReply *sr = redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor, prefix);
            if (!sr || sr->type != REDIS_REPLY_ARRAY)
                die("snapshot: SCAN failed on port %d", ports[p]);
            snprintf(cursor, sizeof(cursor), "%s", sr->element[0]->str);
            for (size_t i = 0; i < sr->element[1]->elements; i++) {
                const char *key = sr->element[1]->element[i]->str;
                redisReply *t = redisCommand(c, "TYPE %s", key);
                redisReply *val = NULL;
                char *body;
                if (!strcmp(t->str, "hash")) {
                    val = redisCommand(c, "HGETALL %s", key);
                    body = canon_pairs(val, skip_field);
                } else if (!strcmp(t->str, "zset")) {
                    val = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", key);
                    body = canon_pairs(val, NULL);
                } else if (!strcmp(t->str, "set")) {
                    val = redisCommand(c, "SORT %s ALPHA", key);
                    size_t total = 1, o = 0;
                    for (size_t j = 0; j < val->elements; j++)
                        total += val->element[j]->len + 1;
                    body = malloc(total);
                    body[0] = '\0';
                    for (size_t j = 0; j < val->elements; j++)
                        o += (size_t)snprintf(body + o, total - o, "%s,", val->element[j]->str);
                } else {
                    body = strdup(t->str);
                }
                size_t l = strlen(key) - plen + strlen(body) + 2;
                char *line = malloc(l);
                snprintf(line, l, "%s\t%s", key + plen, body);
                push_line(&v, &n, &cap, line);
                free(body);
                if (val)
                    freeReplyObject(val);
                freeReplyObject(t);
            }
            freeReplyObject(sr);
        } while (strcmp(cursor, "0"));
        redisFree(c);
    }
    if (n)
        qsort(v, n, sizeof(char *), cmp_line);
    *lines = v;
    return n;
}

size_t ds_h_snapshot(const ds_h_env_t *env, const char *prefix, const char *skip_field,
                     char ***lines) {
    return ds_h_snapshot_ports(&env->redis_port, 1, prefix, skip_field, lines);
}

void ds_h_lines_free(char **lines, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* ---- HTTP -------------------------------------------------------------------- */

static size_t http_sink(char *p, size_t sz, size_t n, void *opaque) {
    ds_buf_t *b = opaque;
    return ds_buf_append(b, p, sz * n) ? 0 : sz * n;
}

long ds_h_http_get(const char *addr, const char *path, char **body) {
    char url[300];
    snprintf(url, sizeof(url), "http://%s%s", addr, path);
    ds_buf_t b;
    ds_buf_init(&b, 0);
    CURL *c = curl_easy_init();
    if (!c)
        die("curl_easy_init");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (ds_buf_append(&b, "", 1))
        die("out of memory");
    if (body)
        *body = (char *)b.data;
    else
        ds_buf_free(&b);
    return status;
}

double ds_h_metric(const char *text, const char *sample) {
    size_t n = strlen(sample);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, sample, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

double ds_h_metric_sum(const char *text, const char *prefix) {
    double sum = 0;
    size_t pl = strlen(prefix);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        if (!strncmp(line, prefix, pl)) {
            const char *sp = NULL;
            for (const char *q = line; q < (nl ? nl : line + strlen(line)); q++)
                if (*q == ' ')
                    sp = q;
            if (sp)
                sum += strtod(sp + 1, NULL);
        }
        line = nl ? nl + 1 : NULL;
    }
    return sum;
}

/* ---- comparisons -------------------------------------------------------------- */

size_t ds_h_output_ids(const ds_h_env_t *env, const char *const *topics, int ntopics, char ***out) {
    size_t n = 0, cap = 1024;
    char **ids = malloc(cap * sizeof(char *));
    for (int t = 0; t < ntopics; t++) {
        ds_h_record_t *recs;
        size_t k = ds_h_consume(env, topics[t], SIZE_MAX, 60000, &recs);
        /* the embedded broker keeps ~5 MiB a partition and drops the
         * oldest records past that: a set of ids read then is not the set
         * written, and comparing it would report ids that are not missing */
        int32_t first[256];
        for (int p = 0; p < 256; p++)
            first[p] = -1;
        for (size_t i = 0; i < k; i++)
            if (recs[i].partition >= 0 && recs[i].partition < 256 &&
                (first[recs[i].partition] < 0 || recs[i].offset < first[recs[i].partition]))
                first[recs[i].partition] = (int32_t)recs[i].offset;
        for (int p = 0; p < 256; p++)
            if (first[p] > 0)
                die("%s[%d] starts at offset %d: the embedded broker dropped its oldest records "
                    "(it keeps ~5 MiB a partition); use a smaller stream",
                    topics[t], p, first[p]);
        for (size_t i = 0; i < k; i++) {
            const char *id = ds_h_header(&recs[i], "dealsignal.id");
            if (!id)
                die("a record of %s without dealsignal.id", topics[t]);
            if (n == cap)
                ids = realloc(ids, (cap *= 2) * sizeof(char *));
            size_t l = strlen(id) + 16;
            ids[n] = malloc(l);
            snprintf(ids[n++], l, "%d/%s", t, id);
        }
        ds_h_records_free(recs, k);
    }
    qsort(ids, n, sizeof(char *), cmp_line);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && !strcmp(ids[k - 1], ids[i])) {
            free(ids[i]);
            continue;
        }
        ids[k++] = ids[i];
    }
    *out = ids;
    return k;
}

bool ds_h_same_lines(const char *what, const char *name_a, char **a, size_t na, const char *name_b,
                     char **b, size_t nb) {
    fprintf(stderr, "  %s: %s %zu, %s %zu\n", what, name_a, na, name_b, nb);
    for (size_t i = 0, j = 0, shown = 0; (i < na || j < nb) && shown < 3;) {
        int c = i == na ? 1 : j == nb ? -1 : strcmp(a[i], b[j]);
        if (c) {
            fprintf(stderr, "  only in %s: %.300s\n", c < 0 ? name_a : name_b, c < 0 ? a[i] : b[j]);
            shown++;
        }
        i += c <= 0;
        j += c >= 0;
    }
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]))
            return false;
    return true;
}

int ds_h_log_count_after(const char *path, const char *mark, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[8192];
    int n = 0;
    bool past = !mark;
    while (fgets(line, sizeof(line), f)) {
        past = past || strstr(line, mark);
        n += past && strstr(line, needle) != NULL;
    }
    fclose(f);
    return n;
}

int ds_h_log_count(const char *path, const char *needle) {
    return ds_h_log_count_after(path, NULL, needle);
}

void ds_h_show_log(const char *path, int lines) {
    char cmd[600];
    fprintf(stderr, "---- last %d lines of %s\n", lines, path);
    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", lines, path);
    if (system(cmd) != 0)
        fprintf(stderr, "(cannot show %s)\n", path);
    fprintf(stderr, "----\n");
}

static void show_offset(void *opaque, int32_t partition, int64_t committed, int64_t high) {
    const char *const *gt = opaque;
    fprintf(stderr, "  group %s, %s [%d]: committed %lld, high watermark %lld\n", gt[0], gt[1],
            (int)partition, (long long)committed, (long long)high);
}

void ds_h_show_group(const ds_h_env_t *env, const char *group, const char *topic) {
    const char *gt[] = {group, topic};
    if (ds_kafka_group_offsets(env->brokers, group, topic, 5000, show_offset, gt) < 0)
        fprintf(stderr, "  group %s: the broker did not answer for %s\n", group, topic);
}

bool ds_h_same_state(const ds_h_env_t *env, const char *name_a, const char *prefix_a,
                     const char *name_b, const char *prefix_b, const char *skip_field,
                     size_t min_keys) {
    char **x, **y;
    size_t nx = ds_h_snapshot(env, prefix_a, skip_field, &x);
    size_t ny = ds_h_snapshot(env, prefix_b, skip_field, &y);
    bool same = nx > min_keys && ds_h_same_lines("keys", name_a, x, nx, name_b, y, ny);
    ds_h_lines_free(x, nx);
    ds_h_lines_free(y, ny);
    return same;
}

bool ds_h_same_outputs(const ds_h_env_t *env, const char *name_a, const char *const *topics_a,
                       const char *name_b, const char *const *topics_b, int ntopics) {
    char **x, **y;
    size_t nx = ds_h_output_ids(env, topics_a, ntopics, &x);
    size_t ny = ds_h_output_ids(env, topics_b, ntopics, &y);
    bool same = nx > 0 && ds_h_same_lines("output ids", name_a, x, nx, name_b, y, ny);
    ds_h_lines_free(x, nx);
    ds_h_lines_free(y, ny);
    return same;
}

/* ---- threads a case starts --------------------------------------------------------
 * A case that fails longjmps out of its frame at once: a thread it started
 * would run on into the next case, reading an argument on a stack frame
 * that is gone.  So the harness records every thread with its argument (a
 * heap copy) and the teardown of every case joins whatever is left, after
 * raising a flag the thread functions check.  Only the test's main thread
 * touches the table; the flag is atomic. */

#define DS_H_THREADS_MAX 16

static struct {
    pthread_t id;
    void *arg;
} g_threads[DS_H_THREADS_MAX];
static int g_stopping;

void *ds_h_thread_start(void *(*fn)(void *arg), const void *arg, size_t size) {
    int i = 0;
    while (i < DS_H_THREADS_MAX && g_threads[i].arg)
        i++;
    if (i == DS_H_THREADS_MAX)
        die("more than %d threads at once", DS_H_THREADS_MAX);
    void *copy = malloc(size ? size : 1);
    if (!copy)
        die("out of memory");
    memcpy(copy, arg, size);
    int e = pthread_create(&g_threads[i].id, NULL, fn, copy);
    if (e)
        die("pthread_create: %s", strerror(e));
    g_threads[i].arg = copy;
    return copy;
}

void *ds_h_thread_join(void *arg) {
    for (int i = 0; i < DS_H_THREADS_MAX; i++)
        if (arg && g_threads[i].arg == arg) {
            void *ret = NULL;
            pthread_join(g_threads[i].id, &ret);
            free(arg);
            g_threads[i].arg = NULL;
            return ret;
        }
    die("ds_h_thread_join: not a thread the harness started");
    return NULL;
}

bool ds_h_stopping(void) {
    return __atomic_load_n(&g_stopping, __ATOMIC_ACQUIRE);
}

int ds_h_threads_teardown(void **state) {
    (void)state;
    int left = 0;
    __atomic_store_n(&g_stopping, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < DS_H_THREADS_MAX; i++)
        if (g_threads[i].arg) {
            ds_h_thread_join(g_threads[i].arg);
            left++;
        }
    __atomic_store_n(&g_stopping, 0, __ATOMIC_RELEASE);
    if (left)
        fprintf(stderr, "  harness: stopped and joined %d thread%s the case left running\n", left,
                left == 1 ? "" : "s");
    return 0;
}

/* The cases of one run, each with ds_h_threads_teardown unless it has a
 * teardown of its own. */
static int run_group(const char *group, const struct CMUnitTest *tests, size_t n) {
    struct CMUnitTest *all = calloc(n ? n : 1, sizeof(*all));
    if (!all)
        die("out of memory");
    for (size_t i = 0; i < n; i++) {
        all[i] = tests[i];
        if (!all[i].teardown_func)
            all[i].teardown_func = ds_h_threads_teardown;
    }
    int rc = _cmocka_run_group_tests(group, all, n, NULL, NULL);
    free(all);
    return rc;
}

int ds_h_run_tests(const char *group, const struct CMUnitTest *tests, size_t n,
                   const char *only_var) {
    const char *only = only_var ? getenv(only_var) : NULL;
    if (!only)
        return run_group("tests", tests, n);
    struct CMUnitTest *some = calloc(n, sizeof(*some));
    if (!some)
        return 1;
    some[0] = tests[0];
    size_t nsome = 1;
    for (size_t i = 1; i < n; i++) { /* NAME, or NAME,NAME,… */
        const char *name = tests[i].name + strlen("test_");
        size_t len = strlen(name);
        for (const char *p = only; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
            if (strcspn(p, ",") == len && !strncmp(p, name, len)) {
                some[nsome++] = tests[i];
                break;
            }
        }
    }
    int rc = run_group(group, some, nsome);
    free(some);
    return rc;
}

int ds_h_main(ds_h_env_t *env, int partitions, const struct CMUnitTest *tests, size_t n) {
    ds_h_start(env, partitions, true);
    int rc = ds_h_run_tests("tests", tests, n, NULL);
    ds_h_cleanup();
    return rc;
}

bool ds_h_same_run_state(const ds_h_env_t *env, const ds_h_names_t *a, const ds_h_names_t *b,
                         const char *skip_field, size_t min_keys) {
    return ds_h_same_state(env, a->name, a->prefix, b->name, b->prefix, skip_field, min_keys);
}

bool ds_h_same_run_scores(const ds_h_env_t *env, const ds_h_names_t *a, const ds_h_names_t *b) {
    const char *ta[] = {a->ls, a->as}, *tb[] = {b->ls, b->as};
    return ds_h_same_outputs(env, a->name, ta, b->name, tb, 2);
}

/* ---- one case's scorer --------------------------------------------------------- */

void ds_h_scase(ds_h_scase_t *c, const ds_h_env_t *env, const char *group_prefix,
                const char *name, const char *writes) {
    ds_h_names(&c->n, group_prefix, name, false);
    snprintf(c->topic, sizeof(c->topic), "%s.events", name);
    snprintf(c->log, sizeof(c->log), "%s/%s.log", env->tmpdir, name);
    c->writes = writes;
}

pid_t ds_h_scase_start(const ds_h_env_t *env, const ds_h_scase_t *c) {
    ds_h_args_t a;
    ds_h_worker_args(&a, env, "scorer", env->redis_url, c->n.group, c->n.prefix);
    ds_h_args_add(&a, "--topic-marketing", c->topic, "--topic-lead-scores", c->n.ls,
                  "--topic-account-scores", c->n.as, "--redis-writes", c->writes, NULL);
    return ds_h_spawn(c->log, a.v);
}

void ds_h_scase_wait_applied(const ds_h_env_t *env, const ds_h_scase_t *c, const char *key,
                             int want) {
    char w[16];
    snprintf(w, sizeof(w), "%d", want);
    char *v = ds_h_wait_hget(env, key, "events_applied", w, 60000);
    if (v && !strcmp(v, w)) {
        free(v);
        return;
    }
    char got[32];
    snprintf(got, sizeof(got), "%s", v ? v : "(nil)");
    free(v); /* before fail_msg: it leaves this frame */
    ds_h_show_log(c->log, 30);
    fail_msg("%s events_applied: %s, want %s", key, got, w);
}

long long ds_h_redis_int(const ds_h_env_t *env, const char *fmt, const char *key) {
    redisReply *x = ds_h_redis(env, fmt, key);
    assert_non_null(x);
    assert_int_equal(x->type, REDIS_REPLY_INTEGER);
    long long v = x->integer;
    freeReplyObject(x);
    return v;
}
