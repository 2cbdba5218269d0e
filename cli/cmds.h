/*
 * cmds.h — the subcommands of the dealsignal binary.
 * Each takes the arguments after its own name (argv[0] is the command
 * name) and returns the process exit code.  `--help` prints its usage.
 */
#ifndef DS_CMDS_H
#define DS_CMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "ds_config.h"
#include "rules.h"

int ds_cmd_broker(int argc, char **argv);
int ds_cmd_scorer(int argc, char **argv);
int ds_cmd_watcher(int argc, char **argv);
int ds_cmd_run(int argc, char **argv);
int ds_cmd_gen(int argc, char **argv);
int ds_cmd_tail(int argc, char **argv);
int ds_cmd_rules(int argc, char **argv);
int ds_cmd_demo(int argc, char **argv);
int ds_cmd_backtest(int argc, char **argv);
/* `dealsignal rules learn …`: argv[0] is "learn" */
int ds_cmd_rules_learn(int argc, char **argv);
int ds_cmd_repartition(int argc, char **argv);

/* The options gen, tail and repartition share: where the brokers and the
 * schemas are (a directory, or a Schema Registry's URL) and -X librdkafka
 * properties, added to x (nx of max_x used). */
typedef struct ds_cmd_conn {
    const char *brokers;      /* --brokers; default $DEALSIGNAL_BROKERS or localhost:9092 */
    const char *schemas;      /* --schemas; default "schemas" */
    const char *registry_url; /* --schema-registry; default NULL */
    ds_kv_pair_t *x;
    size_t nx, max_x;
} ds_cmd_conn_t;

/* What ds_cmd_getopt returns for an option whose value is a flag. */
#define DS_CMD_OPT_BAD_VALUE 0x10000

struct option;
/** getopt_long(argc, argv, shortopts, opts, NULL), refusing a value that
 *  starts with "--" ("--brokers --scenario crm" is a missing value, not the
 *  broker list "--scenario"): then says so on stderr, naming the option,
 *  after "cmd: ", and returns DS_CMD_OPT_BAD_VALUE (ds_cmd_conn_opt turns
 *  it into status 2 without printing more). */
int ds_cmd_getopt(int argc, char **argv, const char *shortopts, const struct option *opts,
                  const char *cmd);
/** 0 when argv[first..argc) is empty; else says on stderr, after "cmd: ",
 *  which argument is left over and returns 2. */
int ds_cmd_no_more_args(int argc, char **argv, int first, const char *cmd);

/** The index of arg among names (a NULL-terminated list); -1, after
 *  saying on stderr "cmd: --opt must be a, b or c", when it is none of
 *  them. */
int ds_cmd_choice(const char *cmd, const char *opt, const char *arg, const char *const *names);

/** arg as a number in [min, max] (whole: an integer) into *out; -1,
 *  after saying on stderr "cmd: --opt: 'arg' is not a whole number from
 *  min to max", when it is not. */
int ds_cmd_num(const char *cmd, const char *opt, const char *arg, double min, double max,
               bool whole, double *out);

/** The defaults above, with the -X pairs going to x (max_x of them). */
void ds_cmd_conn_init(ds_cmd_conn_t *c, ds_kv_pair_t *x, size_t max_x);
/** Takes getopt's answer ch (its argument arg) when it is one of the
 *  shared options and returns 0.  Otherwise returns 2, the exit status of
 *  a usage error, after saying why on stderr: x_error (when not NULL) for
 *  a -X argument without '=' or beyond max_x, usage(stderr) for an option
 *  the command does not know; nothing for DS_CMD_OPT_BAD_VALUE (said). */
int ds_cmd_conn_opt(ds_cmd_conn_t *c, int ch, char *arg, const char *x_error,
                    void (*usage)(FILE *));

/** Appends the argument of a -X flag, "key=value", to pairs (*n of max
 *  used), splitting arg in place at its first '=' (the pair points into
 *  arg).  False, arg unchanged, when it has no '=' or pairs is full. */
bool ds_cmd_x_pair(char *arg, ds_kv_pair_t *pairs, size_t *n, size_t max);
/** The configuration of `dealsignal cmd` (file, DEALSIGNAL_* variables,
 *  then argv's flags), with the log level and format and the registry's
 *  message bound it sets applied; NULL after saying why on stderr
 *  ("dealsignal cmd: …"), the exit status then being 2. */
ds_config_t *ds_cmd_load_config(const char *cmd, int argc, char **argv);
/** The rules file at path (NULL or empty: the built-in rules) with cfg's
 *  dedupe window; NULL with err set when they do not load. */
ds_rules_t *ds_cmd_load_rules(const char *path, const ds_config_t *cfg, char *err, size_t errsz);

/* JSON lines on stdout (tail --json, gen --print), written as they go. */
/** s as a JSON string ('"', '\\' and newline escaped), or null when NULL. */
void ds_cmd_json_str(const char *s);
/** ,"name": then s as ds_cmd_json_str writes it: an object's member after
 *  its first. */
void ds_cmd_json_field(const char *name, const char *s);
/** The n strings of v as a JSON array. */
void ds_cmd_json_strs(const char *const *v, size_t n);

/** Installs on_stop as the handler of SIGINT and SIGTERM. */
void ds_cmd_catch_stop(void (*on_stop)(int));

#endif
