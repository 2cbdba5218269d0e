/*
 * cmds.h — the subcommands of the dealsignal binary.
 * Each takes the arguments after its own name (argv[0] is the command
 * name) and returns the process exit code.  `--help` prints its usage.
 */
#ifndef DS_CMDS_H
#define DS_CMDS_H

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

#endif
