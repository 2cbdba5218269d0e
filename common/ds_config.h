/*
 * ds_config.h — the worker configuration: one table, three sources.
 *
 * Every setting is a row of the table in ds_config.c (name, type, default,
 * bounds, help).  Sources in rising precedence: the YAML config file
 * (--config FILE; nested keys flatten with dots: `topics: {crm: x}` is
 * `topics.crm`), environment variables (DEALSIGNAL_ + the name upper-cased
 * with dots as underscores: DEALSIGNAL_TOPICS_CRM), then flags
 * (--topic-crm, --brokers … as listed in each row).  Keys under `kafka.`
 * pass through to librdkafka unchanged (kafka.security.protocol …).
 * Validation happens at load; errors name the key, the source and the
 * reason.  Secrets (kafka.*password*, kafka.*secret*, the password in
 * redis.url) are never printed: ds_config_dump() redacts them.
 */
#ifndef DS_CONFIG_H
#define DS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ds_err.h"

typedef struct ds_kv_pair {
    char *key;   /* without the "kafka." prefix */
    char *value;
} ds_kv_pair_t;

#define DS_CONFIG_MAX_ROWS 64

typedef struct ds_config {
    char *brokers;              /* kafka bootstrap servers */
    char *group_id;             /* consumer group */
    char *redis_url;            /* redis://[user:password@]host:port[/db] */
    char *redis_prefix;         /* key prefix, default "ds:" */
    int redis_timeout_ms;
    int broker_timeout_ms;      /* not ready once no broker answered this long */
    int redis_flush_ms;       /* coalesce state writes over this interval (0: every batch) */
    int redis_flush_max_ms;   /* ... longer while behind the input: half the lag, up to this */
    int redis_flush_entities; /* ... or until this many entities changed */
    char *redis_cluster;      /* "auto" | "on" | "off" */
    char *redis_writes;       /* "script" | "transaction" */
    char *redis_seeds;        /* more cluster nodes, host:port,… */
    int redis_wait_replicas;  /* WAIT for this many replicas before storing offsets (0: off) */
    int redis_wait_timeout_ms;
    char *rules_path;           /* NULL: built-in defaults */
    char *clock;                /* "wall" | "event" */
    char *schemas_dir;          /* embedded registry */
    char *schema_registry_url;  /* NULL: embedded registry */
    char *schema_registry_subject_strategy; /* "topic" | "record" */
    char *schema_registry_auto_register;    /* "true" | "false" */
    char *metrics_addr;         /* HOST:PORT, "" = off */
    char *topic_marketing, *topic_crm, *topic_lead_scores, *topic_account_scores,
        *topic_alerts;
    int schema_id_lead_score, schema_id_account_score, schema_id_deal_alert;
    double dedupe_window_days;
    int max_message_bytes;
    int threads;                /* instances of each worker in the process */
    int batch_size;             /* max messages per batch */
    int batch_max_ms;           /* max time to fill a batch */
    int check_interval_ms;      /* wall clock deadline checks */
    int shutdown_timeout_ms;
    char *log_level;
    char *log_format;           /* "kv" | "json" */
    ds_kv_pair_t *kafka;        /* pass-through librdkafka properties */
    size_t kafka_count;
    bool set[DS_CONFIG_MAX_ROWS]; /* per table row: set by the file, env or a flag */
} ds_config_t;

typedef struct ds_redis_url {
    char host[256];
    int port;
    char user[128];
    char password[256];
    int db;
} ds_redis_url_t;

/** Parse redis://[user:password@]host[:port][/db]. */
ds_err_t ds_redis_url_parse(const char *url, ds_redis_url_t *out, char *errstr,
                            size_t errstr_size) DS_WUR;
/** True when argv asks for --help / -h. */
bool ds_config_wants_help(int argc, char **argv);

/** Where a flag table lookup ends for the command: flags not in the table
 *  are errors (the caller handles --help and --config before). */

/** Load the configuration: defaults, then `config_path` (may be NULL),
 *  then the environment (envp), then argv flags (argv[0] is skipped).
 *  On error returns NULL with "key: reason (source)" in errstr.
 *  `extra_flags` lists flags the caller parses itself (NULL-terminated,
 *  e.g. {"--partitions", NULL}): they and their value are skipped. */
ds_config_t *ds_config_load(int argc, char **argv, char **envp, char *errstr,
                            size_t errstr_size);
void ds_config_destroy(ds_config_t *c);
/** Print every setting as `name = value` with secrets redacted. */
void ds_config_dump(const ds_config_t *c, FILE *out);
/** Print the flags part of --help (one line per setting with its default). */
void ds_config_print_help(FILE *out);
/** Print the configuration table as a Markdown table (README section). */
void ds_config_print_markdown(FILE *out);
/** True when setting `name` was given (file, environment or flag) rather
 *  than left at its default. */
bool ds_config_is_set(const ds_config_t *c, const char *name);
/** True if a setting name (or kafka.* key) holds a secret. */
bool ds_config_is_secret(const char *name);

#endif
