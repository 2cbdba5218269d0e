/*
 * ds_config.c — the configuration table and its three sources.
 *
 * One row per setting; loading walks the rows for defaults, then applies
 * the YAML file (flattened to dotted keys, with line numbers for errors),
 * the DEALSIGNAL_* environment and the flags, each value validated by the
 * row's type and bounds as it is set, so an error names key and source.
 */
#include "ds_config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ds_buf.h"

typedef enum { T_STR, T_INT, T_DBL, T_ENUM } type_t;

typedef struct row {
    const char *name, *flag;
    type_t type;
    const char *def;
    double min, max;
    const char *choices; /* T_ENUM: "a|b" */
    size_t off;
    const char *help;
} row_t;

#define OFF(f) offsetof(ds_config_t, f)
static const row_t rows[] = {
    {"brokers", "--brokers", T_STR, "localhost:9092", 0, 0, NULL, OFF(brokers),
     "Kafka bootstrap servers"},
    {"group.id", "--group-id", T_STR, "dealsignal", 0, 0, NULL, OFF(group_id),
     "consumer group id; give scorer and watcher processes a group each, e.g. "
     "--group-id dealsignal-scorer (in one group, each start or stop of one rebalances "
     "the other)"},
    {"redis.url", "--redis", T_STR, "redis://127.0.0.1:6379/0", 0, 0, NULL, OFF(redis_url),
     "redis://[user:password@]host:port[/db]"},
    {"redis.prefix", "--redis-prefix", T_STR, "ds:", 0, 0, NULL, OFF(redis_prefix),
     "prefix of every Redis key"},
    {"redis.timeout_ms", "--redis-timeout-ms", T_INT, "2000", 1, 600000, NULL,
     OFF(redis_timeout_ms), "Redis connect and command timeout"},
    {"broker_timeout_ms", "--broker-timeout-ms", T_INT, "10000", 500, 600000, NULL,
     OFF(broker_timeout_ms),
     "not ready once no broker has answered for this long (librdkafka statistics); ready "
     "again at the first answer"},
    {"redis.flush_ms", "--redis-flush-ms", T_INT, "1000", 0, 60000, NULL, OFF(redis_flush_ms),
     "state writes are coalesced per entity in windows of this length, each written over "
     "the next (0 = every batch); offsets are committed after each window is written"},
    {"redis.flush_max_ms", "--redis-flush-max-ms", T_INT, "5000", 0, 60000, NULL,
     OFF(redis_flush_max_ms),
     "while the worker is behind its input (more messages wait in the partition of the "
     "newest one read), a window lasts half the lag (now minus that message's Kafka "
     "timestamp), up to this length: a backlog writes each changed entity once per longer "
     "window (0, or not above redis.flush_ms: always redis.flush_ms)"},
    {"redis.flush_entities", "--redis-flush-entities", T_INT, "100000", 1, 10000000, NULL,
     OFF(redis_flush_entities), "a window closes sooner once this many entities have changed"},
    {"redis.cluster", "--redis-cluster", T_ENUM, "auto", 0, 0, "auto|on|off", OFF(redis_cluster),
     "auto: find out at each connection whether redis.url is a Redis Cluster node and route "
     "by slot if so; on: require a cluster; off: one plain Redis (a redirect stops the worker)"},
    {"redis.writes", "--redis-writes", T_ENUM, "script", 0, 0, "script|transaction",
     OFF(redis_writes),
     "script: the scorer writes through its Lua script (EVALSHA; the Redis user needs "
     "+evalsha +script|load): less than half the bytes, more Redis CPU; transaction: the same "
     "commands sent in a MULTI/EXEC per unit"},
    {"redis.seeds", "--redis-seeds", T_STR, "", 0, 0, NULL, OFF(redis_seeds),
     "more Redis Cluster nodes (host:port, comma-separated) tried when redis.url's is down"},
    {"redis.wait_replicas", "--redis-wait-replicas", T_INT, "0", 0, 100, NULL,
     OFF(redis_wait_replicas),
     "before a window's offsets are stored, WAIT until this many replicas of every node "
     "written have its writes (0 = off: a failover may lose acknowledged writes)"},
    {"redis.wait_timeout_ms", "--redis-wait-timeout-ms", T_INT, "1000", 1, 600000, NULL,
     OFF(redis_wait_timeout_ms),
     "how long one WAIT waits for the replicas, less than redis.timeout_ms; fewer in time: the "
     "window is written again"},
    {"rules", "--rules", T_STR, "", 0, 0, NULL, OFF(rules_path),
     "rules file (YAML); empty = built-in defaults"},
    {"clock", "--clock", T_ENUM, "wall", 0, 0, "wall|event", OFF(clock),
     "wall: deadlines against the system clock; event: per-partition watermark"},
    {"schemas.dir", "--schemas", T_STR, "schemas", 0, 0, NULL, OFF(schemas_dir),
     "embedded schema registry: directory of <id>-<Name>.avsc (the default, absent: the binary's "
     "own copy)"},
    {"schema_registry.url", "--schema-registry", T_STR, "", 0, 0, NULL, OFF(schema_registry_url),
     "Confluent Schema Registry URL; empty = embedded"},
    {"schema_registry.subject_strategy", "--subject-strategy", T_ENUM, "topic", 0, 0,
     "topic|record", OFF(schema_registry_subject_strategy),
     "subject of each output schema: topic = <topic>-value, record = the record's full name"},
    {"schema_registry.auto_register", "--auto-register", T_ENUM, "true", 0, 0, "true|false",
     OFF(schema_registry_auto_register),
     "register the output schemas at start-up; false = look them up and stop when missing"},
    {"metrics.addr", "--metrics-addr", T_STR, "", 0, 0, NULL, OFF(metrics_addr),
     "HOST:PORT for /metrics, /healthz, /readyz; empty = off"},
    {"topics.marketing", "--topic-marketing", T_STR, "ma.events", 0, 0, NULL, OFF(topic_marketing),
     "input: MarketingEvent"},
    {"topics.crm", "--topic-crm", T_STR, "crm.events", 0, 0, NULL, OFF(topic_crm),
     "input: CrmEvent"},
    {"topics.lead_scores", "--topic-lead-scores", T_STR, "lead.scores", 0, 0, NULL,
     OFF(topic_lead_scores), "output: LeadScore (compacted)"},
    {"topics.account_scores", "--topic-account-scores", T_STR, "account.scores", 0, 0, NULL,
     OFF(topic_account_scores), "output: AccountScore (compacted)"},
    {"topics.alerts", "--topic-alerts", T_STR, "deal.alerts", 0, 0, NULL, OFF(topic_alerts),
     "output: DealAlert"},
    {"schema_ids.lead_score", "--schema-id-lead-score", T_INT, "3", 0, 2147483647, NULL,
     OFF(schema_id_lead_score),
     "schema id written on LeadScore records; with a registry only when set (then not registered)"},
    {"schema_ids.account_score", "--schema-id-account-score", T_INT, "4", 0, 2147483647, NULL,
     OFF(schema_id_account_score),
     "schema id written on AccountScore records; with a registry only when set (then not "
     "registered)"},
    {"schema_ids.deal_alert", "--schema-id-deal-alert", T_INT, "5", 0, 2147483647, NULL,
     OFF(schema_id_deal_alert),
     "schema id written on DealAlert records; with a registry only when set (then not registered)"},
    {"dedupe_window_days", "--dedupe-window-days", T_DBL, "7", 0, 3650, NULL,
     OFF(dedupe_window_days), "duplicate event ids are applied once within this event time"},
    {"max_message_bytes", "--max-message-bytes", T_INT, "65536", 1024, 16777216, NULL,
     OFF(max_message_bytes), "larger input records go to the DLQ (limit_exceeded)"},
    {"threads", "--threads", T_INT, "1", 1, 64, NULL, OFF(threads),
     "instances of each worker in this process, each on a thread of its own with its own Kafka "
     "clients and Redis connections, all in group.id: they share the input's partitions as "
     "processes of one group do; above 1, every series a worker reports carries "
     "thread=\"1\"…"},
    {"batch.size", "--batch-size", T_INT, "10000", 1, 1000000, NULL, OFF(batch_size),
     "max records per batch"},
    {"batch.max_ms", "--batch-max-ms", T_INT, "20", 1, 10000, NULL, OFF(batch_max_ms),
     "max time to fill a batch"},
    {"check_interval_ms", "--check-interval-ms", T_INT, "500", 10, 600000, NULL,
     OFF(check_interval_ms), "wall clock: interval of deadline checks"},
    {"shutdown_timeout_ms", "--shutdown-timeout-ms", T_INT, "10000", 100, 600000, NULL,
     OFF(shutdown_timeout_ms), "bound on the graceful shutdown"},
    {"log.level", "--log-level", T_ENUM, "info", 0, 0, "debug|info|warn|error", OFF(log_level),
     "log level"},
    {"log.format", "--log-format", T_ENUM, "kv", 0, 0, "kv|json", OFF(log_format),
     "log lines as key=value or JSON"},
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))
_Static_assert(NROWS <= DS_CONFIG_MAX_ROWS, "raise DS_CONFIG_MAX_ROWS");

static char **str_at(ds_config_t *c, const row_t *r) { return (char **)((char *)c + r->off); }

static const row_t *find_row(const char *name) {
    for (size_t i = 0; i < NROWS; i++)
        if (!strcmp(rows[i].name, name))
            return &rows[i];
    return NULL;
}

static bool in_choices(const char *choices, const char *v) {
    size_t n = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == n && !strncmp(p, v, n))
            return true;
        p += l + (bar ? 1 : 0);
    }
    return false;
}

static ds_err_t set_row(ds_config_t *c, const row_t *r, const char *v, const char *src, char *err,
                        size_t errsz) {
    char *end;
    c->set[r - rows] = strcmp(src, "default") != 0;
    switch (r->type) {
    case T_STR:
    case T_ENUM: {
        if (r->type == T_ENUM && !in_choices(r->choices, v)) {
            snprintf(err, errsz, "%s: '%s' is not one of %s (%s)", r->name, v, r->choices, src);
            return DS_ERR_CONFIG;
        }
        char *d = strdup(v);
        if (!d)
            return DS_ERR_NOMEM;
        free(*str_at(c, r));
        *str_at(c, r) = d;
        return DS_ERR_OK;
    }
    case T_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < r->min || x > r->max) {
            snprintf(err, errsz, "%s: '%s' is not an integer in [%.0f, %.0f] (%s)", r->name, v,
                     r->min, r->max, src);
            return DS_ERR_CONFIG;
        }
        *(int *)((char *)c + r->off) = (int)x;
        return DS_ERR_OK;
    }
    case T_DBL: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || x < r->min || x > r->max) {
            snprintf(err, errsz, "%s: '%s' is not a number in [%g, %g] (%s)", r->name, v, r->min,
                     r->max, src);
            return DS_ERR_CONFIG;
        }
        *(double *)((char *)c + r->off) = x;
        return DS_ERR_OK;
    }
    }
    return DS_ERR_INVAL;
}

static ds_err_t add_kafka(ds_config_t *c, const char *k, const char *v) {
    for (size_t i = 0; i < c->kafka_count; i++) {
        if (!strcmp(c->kafka[i].key, k)) {
            char *d = strdup(v);
            if (!d)
                return DS_ERR_NOMEM;
            free(c->kafka[i].value);
            c->kafka[i].value = d;
            return DS_ERR_OK;
        }
    }
    ds_kv_pair_t *n = realloc(c->kafka, (c->kafka_count + 1) * sizeof(*n));
    if (!n)
        return DS_ERR_NOMEM;
    c->kafka = n;
    n[c->kafka_count].key = strdup(k);
    n[c->kafka_count].value = strdup(v);
    c->kafka_count++;
    return DS_ERR_OK;
}

/* a dotted setting name or kafka.* key, from any source */
static ds_err_t set_named(ds_config_t *c, const char *name, const char *v, const char *src,
                          char *err, size_t errsz) {
    if (!strncmp(name, "kafka.", 6) && name[6])
        return add_kafka(c, name + 6, v);
    const row_t *r = find_row(name);
    if (!r) {
        snprintf(err, errsz, "%s: unknown setting (%s)", name, src);
        return DS_ERR_CONFIG;
    }
    return set_row(c, r, v, src, err, errsz);
}

/* ---- YAML file: nested maps flatten to dotted names --------------------- */

/* The parser's next event; false, with the syntax error at its line in
 * err, when the file is not YAML there. */
static bool next_event(yaml_parser_t *p, yaml_event_t *ev, const char *path, char *err,
                       size_t errsz) {
    if (yaml_parser_parse(p, ev))
        return true;
    snprintf(err, errsz, "%s:%zu: %s (file)", path, p->problem_mark.line + 1,
             p->problem ? p->problem : "YAML syntax error");
    return false;
}

/* The whole file parsed once for its syntax, so that a syntax error is
 * what is reported even where the settings pass would first have stopped
 * on what the broken syntax looked like (a list, say). */
static ds_err_t check_syntax(FILE *f, const char *path, char *err, size_t errsz) {
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    ds_err_t rc = DS_ERR_OK;
    for (bool done = false; !done;) {
        yaml_event_t ev;
        if (!next_event(&p, &ev, path, err, errsz)) {
            rc = DS_ERR_CONFIG;
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    rewind(f);
    return rc;
}

static ds_err_t load_file(ds_config_t *c, const char *path, char *err, size_t errsz) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "config: cannot open %s: %s", path, strerror(errno));
        return DS_ERR_CONFIG;
    }
    if (check_syntax(f, path, err, errsz)) {
        fclose(f);
        return DS_ERR_CONFIG;
    }
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    char stack[16][128];
    int depth = 0;      /* number of open mappings */
    bool want_key[16] = {true};
    ds_err_t rc = DS_ERR_OK;
    for (bool done = false; !done && !rc;) {
        yaml_event_t ev;
        if (!next_event(&p, &ev, path, err, errsz)) {
            rc = DS_ERR_CONFIG;
            break;
        }
        int line = (int)ev.start_mark.line + 1;
        char src[300];
        snprintf(src, sizeof(src), "file %s:%d", path, line);
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_MAPPING_START_EVENT:
            if (depth >= 15) {
                snprintf(err, errsz, "%s:%d: nesting too deep (file)", path, line);
                rc = DS_ERR_CONFIG;
                break;
            }
            depth++;
            want_key[depth] = true;
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            if (depth > 0)
                want_key[depth] = true;
            break;
        case YAML_SEQUENCE_START_EVENT:
            snprintf(err, errsz, "%s:%d: lists are not settings (file)", path, line);
            rc = DS_ERR_CONFIG;
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            if (depth == 0)
                break;
            if (want_key[depth]) {
                snprintf(stack[depth], sizeof(stack[depth]), "%s", v);
                want_key[depth] = false;
            } else {
                char name[512] = "";
                size_t o = 0;
                for (int i = 1; i <= depth && o < sizeof(name); i++)
                    o += (size_t)snprintf(name + o, sizeof(name) - o, "%s%s", i > 1 ? "." : "",
                                          stack[i]);
                rc = set_named(c, name, v, src, err, errsz);
                want_key[depth] = true;
            }
            break;
        }
        default:
            break;
        }
        /* a nested mapping ends the key that opened it */
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

/* ---- environment and flags ------------------------------------------------ */

static void env_name(const char *name, char *out, size_t n) {
    size_t o = (size_t)snprintf(out, n, "DEALSIGNAL_");
    for (const char *p = name; *p && o + 1 < n; p++)
        out[o++] = (*p == '.') ? '_' : (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p);
    out[o] = '\0';
}

bool ds_config_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

ds_config_t *ds_config_load(int argc, char **argv, char **envp, char *err, size_t errsz) {
    ds_config_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < NROWS; i++)
        if (set_row(c, &rows[i], rows[i].def, "default", err, errsz))
            goto fail;
    /* the config file: --config, else DEALSIGNAL_CONFIG */
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            file = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            file = argv[i] + 9;
    }
    for (char **e = envp; !file && e && *e; e++)
        if (!strncmp(*e, "DEALSIGNAL_CONFIG=", 18))
            file = *e + 18;
    if (file && file[0] && load_file(c, file, err, errsz))
        goto fail;
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "DEALSIGNAL_", 11))
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char var[256];
        snprintf(var, sizeof(var), "%.*s", (int)(eq - *e), *e);
        if (!strcmp(var, "DEALSIGNAL_CONFIG"))
            continue;
        char src[300];
        snprintf(src, sizeof(src), "env %s", var);
        if (!strncmp(var, "DEALSIGNAL_KAFKA_", 17)) {
            char k[256];
            size_t o = 0;
            for (const char *p = var + 17; *p && o + 1 < sizeof(k); p++)
                k[o++] = *p == '_' ? '.' : (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
            k[o] = '\0';
            if (add_kafka(c, k, eq + 1))
                goto oom;
            continue;
        }
        const row_t *r = NULL;
        for (size_t i = 0; i < NROWS && !r; i++) {
            char n[256];
            env_name(rows[i].name, n, sizeof(n));
            if (!strcmp(n, var))
                r = &rows[i];
        }
        if (!r) {
            snprintf(err, errsz, "%s: unknown setting (env)", var);
            goto fail;
        }
        if (set_row(c, r, eq + 1, src, err, errsz))
            goto fail;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char flag[128];
        const char *eq = strchr(a, '=');
        if (!strcmp(a, "-X")) {
            if (i + 1 >= argc) {
                snprintf(err, errsz, "-X: needs key=value (flag -X)");
                goto fail;
            }
            const char *kv = argv[++i];
            const char *e2 = strchr(kv, '=');
            if (!e2 || e2 == kv) {
                snprintf(err, errsz, "-X %s: needs key=value (flag -X)", kv);
                goto fail;
            }
            char k[256];
            snprintf(k, sizeof(k), "%.*s", (int)(e2 - kv), kv);
            if (add_kafka(c, k, e2 + 1))
                goto oom;
            continue;
        }
        if (strncmp(a, "--", 2)) {
            snprintf(err, errsz, "unexpected argument '%s'", a);
            goto fail;
        }
        if (eq) {
            snprintf(flag, sizeof(flag), "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(flag, sizeof(flag), "%s", a);
        }
        bool is_config = !strcmp(flag, "--config");
        const row_t *r = NULL;
        for (size_t k = 0; k < NROWS && !r; k++)
            if (!strcmp(rows[k].flag, flag))
                r = &rows[k];
        if (!r && !is_config) {
            snprintf(err, errsz, "unknown flag %s (try --help)", flag);
            goto fail;
        }
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, errsz, "%s: needs a value (flag %s)", r ? r->name : "config", flag);
                goto fail;
            }
            val = argv[++i];
        }
        if (is_config)
            continue;
        char src[160];
        snprintf(src, sizeof(src), "flag %s", flag);
        if (set_row(c, r, val, src, err, errsz))
            goto fail;
    }
    ds_redis_url_t u;
    char uerr[256];
    if (ds_redis_url_parse(c->redis_url, &u, uerr, sizeof(uerr))) {
        snprintf(err, errsz, "redis.url: %s", uerr);
        goto fail;
    }
    if (c->redis_wait_replicas > 0 && c->redis_wait_timeout_ms >= c->redis_timeout_ms) {
        /* a WAIT's reply is owed that long: it would count as no answer */
        snprintf(err, errsz,
                 "redis.wait_timeout_ms (%d) must be less than redis.timeout_ms (%d) when "
                 "redis.wait_replicas is set",
                 c->redis_wait_timeout_ms, c->redis_timeout_ms);
        goto fail;
    }
    return c;
oom:
    snprintf(err, errsz, "out of memory");
fail:
    ds_config_destroy(c);
    return NULL;
}

void ds_config_destroy(ds_config_t *c) {
    if (!c)
        return;
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].type == T_STR || rows[i].type == T_ENUM)
            free(*str_at(c, &rows[i]));
    for (size_t i = 0; i < c->kafka_count; i++) {
        free(c->kafka[i].key);
        free(c->kafka[i].value);
    }
    free(c->kafka);
    free(c);
}

bool ds_config_is_set(const ds_config_t *c, const char *name) {
    const row_t *r = find_row(name);
    return r && c->set[r - rows];
}

bool ds_config_is_secret(const char *name) {
    return strstr(name, "password") || strstr(name, "secret") ||
           strstr(name, "sasl.oauthbearer.config") || strstr(name, "ssl.key");
}

static void value_text(const ds_config_t *c, const row_t *r, char *out, size_t n) {
    switch (r->type) {
    case T_STR:
    case T_ENUM: {
        const char *v = *(char *const *)((const char *)c + r->off);
        if (!strcmp(r->name, "redis.url") || !strcmp(r->name, "schema_registry.url")) {
            /* URLs may carry a password: redact it */
            const char *scheme = strstr(v, "://"), *at = strrchr(v, '@');
            if (scheme && at && at > scheme) {
                const char *colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
                if (colon)
                    snprintf(out, n, "%.*s:***%s", (int)(colon - v), v, at);
                else
                    snprintf(out, n, "%.*s***%s", (int)(scheme + 3 - v), v, at);
                return;
            }
        }
        snprintf(out, n, "%s", v);
        return;
    }
    case T_INT:
        snprintf(out, n, "%d", *(const int *)((const char *)c + r->off));
        return;
    case T_DBL:
        snprintf(out, n, "%g", *(const double *)((const char *)c + r->off));
        return;
    }
}

void ds_config_dump(const ds_config_t *c, FILE *out) {
    char v[600];
    for (size_t i = 0; i < NROWS; i++) {
        value_text(c, &rows[i], v, sizeof(v));
        fprintf(out, "%s = %s\n", rows[i].name, v);
    }
    for (size_t i = 0; i < c->kafka_count; i++)
        fprintf(out, "kafka.%s = %s\n", c->kafka[i].key,
                ds_config_is_secret(c->kafka[i].key) ? "***" : c->kafka[i].value);
}

static const char *type_name(const row_t *r) {
    return r->type == T_INT ? "int" : r->type == T_DBL ? "number" : r->type == T_ENUM ? r->choices
                                                                                       : "string";
}

#define HELP_INDENT 33 /* where an option's text starts */
#define HELP_WIDTH 80

/* One option of --help: its flag and type, then its text from column
 * HELP_INDENT (on a line of its own when the flag reaches it), words
 * wrapped at HELP_WIDTH. */
static void help_row(FILE *out, const char *left, const char *text) {
    int col = fprintf(out, "  %s", left);
    if (col >= HELP_INDENT - 1) {
        fputc('\n', out);
        col = 0;
    }
    fprintf(out, "%*s", HELP_INDENT - col, "");
    col = HELP_INDENT;
    for (const char *w = text; *w;) {
        size_t n = strcspn(w, " ");
        if (col > HELP_INDENT && col + 1 + (int)n > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_INDENT, "");
            col = HELP_INDENT;
        } else if (col > HELP_INDENT) {
            fputc(' ', out);
            col++;
        }
        fwrite(w, 1, n, out);
        col += (int)n;
        w += n;
        w += strspn(w, " ");
    }
    fputc('\n', out);
}

void ds_config_print_help(FILE *out) {
    help_row(out, "--config FILE", "YAML config file (env DEALSIGNAL_CONFIG)");
    for (size_t i = 0; i < NROWS; i++) {
        char left[64], text[1024];
        snprintf(left, sizeof(left), "%s %s", rows[i].flag, type_name(&rows[i]));
        snprintf(text, sizeof(text), "%s (default: %s)", rows[i].help,
                 rows[i].def[0] ? rows[i].def : "\"\"");
        help_row(out, left, text);
    }
    help_row(out, "-X key=value",
             "any librdkafka property, for each Kafka client of the command (also kafka.* in the "
             "file, DEALSIGNAL_KAFKA_*)");
}

/* Text for a Markdown table cell: '|' would end the cell and '<' '>' read
 * as an HTML tag, so they are escaped (a backslash before ASCII
 * punctuation shows it as is). */
static void md_cell(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '|' || *s == '<' || *s == '>')
            fputc('\\', out);
        fputc(*s, out);
    }
}

void ds_config_print_markdown(FILE *out) {
    fprintf(out, "| setting | flag | environment | type | default | meaning |\n"
                 "| --- | --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < NROWS; i++) {
        char env[128];
        env_name(rows[i].name, env, sizeof(env));
        fprintf(out, "| `%s` | `%s` | `%s` | ", rows[i].name, rows[i].flag, env);
        md_cell(out, type_name(&rows[i]));
        fputs(" | ", out);
        if (rows[i].def[0])
            fprintf(out, "`%s`", rows[i].def); /* an empty default: an empty cell */
        fputs(" | ", out);
        md_cell(out, rows[i].help);
        fputs(" |\n", out);
    }
    fprintf(out, "| `kafka.*` | `-X key=value` | `DEALSIGNAL_KAFKA_*` | string | | any librdkafka "
                 "property, passed through unchanged to each Kafka client of the command; a "
                 "client ignores, without a warning, a property of the other kind (a consumer's "
                 "on a producer) |\n");
}

ds_err_t ds_redis_url_parse(const char *url, ds_redis_url_t *out, char *err, size_t errsz) {
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "redis://", 8)) {
        snprintf(err, errsz, "must start with redis:// (redis://[user:password@]host:port[/db])");
        return DS_ERR_CONFIG;
    }
    const char *p = url + 8;
    const char *slash = strchr(p, '/');
    const char *hostpart_end = slash ? slash : p + strlen(p);
    const char *at = NULL;
    for (const char *q = p; q < hostpart_end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if ((size_t)(colon - p) >= sizeof(out->user) ||
                (size_t)(at - colon - 1) >= sizeof(out->password)) {
                snprintf(err, errsz, "credentials too long");
                return DS_ERR_CONFIG;
            }
            memcpy(out->user, p, (size_t)(colon - p));
            memcpy(out->password, colon + 1, (size_t)(at - colon - 1));
        } else {
            if ((size_t)(at - p) >= sizeof(out->password)) {
                snprintf(err, errsz, "credentials too long");
                return DS_ERR_CONFIG;
            }
            memcpy(out->password, p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *colon = memchr(p, ':', (size_t)(hostpart_end - p));
    const char *host_end = colon ? colon : hostpart_end;
    if (host_end == p || (size_t)(host_end - p) >= sizeof(out->host)) {
        snprintf(err, errsz, "missing or too long host");
        return DS_ERR_CONFIG;
    }
    memcpy(out->host, p, (size_t)(host_end - p));
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != hostpart_end || port < 1 || port > 65535) {
            snprintf(err, errsz, "bad port");
            return DS_ERR_CONFIG;
        }
        out->port = (int)port;
    }
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 100000) {
            snprintf(err, errsz, "bad database number");
            return DS_ERR_CONFIG;
        }
        out->db = (int)db;
    }
    return DS_ERR_OK;
}
