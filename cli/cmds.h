/*
 * cmds.h — the subcommands of the dealsignal binary.
 * Each takes the arguments after its own name (argv[0] is the command
 * name) and returns the process exit code.  `--help` prints its usage.
 */
#ifndef DS_CMDS_H
#define DS_CMDS_H

#include <stdbool.h>
#include <stddef.h>

#include "ds_config.h"

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

/** Appends the argument of a -X flag, "key=value", to pairs (*n of max
 *  used), splitting arg in place at its first '=' (the pair points into
 *  arg).  False, arg unchanged, when it has no '=' or pairs is full. */
bool ds_cmd_x_pair(char *arg, ds_kv_pair_t *pairs, size_t *n, size_t max);
/** Installs on_stop as the handler of SIGINT and SIGTERM. */
void ds_cmd_catch_stop(void (*on_stop)(int));

#endif
