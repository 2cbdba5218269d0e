/*
 * cmds.c — what the subcommands share: the connection options (brokers,
 * schemas, -X key=value), the configuration and rules of the workers and
 * of backtest, catching the stop signals and writing JSON lines.  Each
 * command keeps its own stop flag and handler (one command runs per
 * process); only the installation is here.  Option parsing goes through
 * ds_cmd_getopt, so that an option's value is never the next flag.
 */
#include "cmds.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ds_log.h"
#include "ds_registry.h"

extern char **environ;

bool ds_cmd_x_pair(char *arg, ds_kv_pair_t *pairs, size_t *n, size_t max) {
    char *eq = strchr(arg, '=');
    if (!eq || *n == max)
        return false;
    *eq = '\0';
    pairs[*n].key = arg;
    pairs[(*n)++].value = eq + 1;
    return true;
}

int ds_cmd_getopt(int argc, char **argv, const char *shortopts, const struct option *opts,
                  const char *cmd) {
    int li = -1;
    int ch = getopt_long(argc, argv, shortopts, opts, &li);
    if (ch == -1 || ch == '?' || ch == ':' || !optarg || strncmp(optarg, "--", 2))
        return ch;
    if (li >= 0)
        fprintf(stderr, "%s: --%s needs a value, not the option \"%s\"\n", cmd, opts[li].name,
                optarg);
    else
        fprintf(stderr, "%s: -%c needs a value, not the option \"%s\"\n", cmd, ch, optarg);
    return DS_CMD_OPT_BAD_VALUE;
}

int ds_cmd_no_more_args(int argc, char **argv, int first, const char *cmd) {
    if (first >= argc)
        return 0;
    fprintf(stderr, "%s: unexpected argument \"%s\"\n", cmd, argv[first]);
    return 2;
}

int ds_cmd_choice(const char *cmd, const char *opt, const char *arg, const char *const *names) {
    size_t n = 0;
    for (; names[n]; n++)
        if (!strcmp(arg, names[n]))
            return (int)n;
    fprintf(stderr, "%s: --%s must be ", cmd, opt);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%s", i == 0 ? "" : i + 1 < n ? ", " : " or ", names[i]);
    fputc('\n', stderr);
    return -1;
}

int ds_cmd_num(const char *cmd, const char *opt, const char *arg, double min, double max,
               bool whole, double *out) {
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v) || v < min || v > max ||
        (whole && v != floor(v))) {
        fprintf(stderr, whole ? "%s: --%s: '%s' is not a whole number from %.0f to %.0f\n"
                              : "%s: --%s: '%s' is not a number from %g to %g\n",
                cmd, opt, arg, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

void ds_cmd_conn_init(ds_cmd_conn_t *c, ds_kv_pair_t *x, size_t max_x) {
    const char *brokers = getenv("DEALSIGNAL_BROKERS");
    c->brokers = brokers ? brokers : "localhost:9092";
    c->schemas = "schemas";
    c->registry_url = NULL;
    c->x = x;
    c->nx = 0;
    c->max_x = max_x;
}

int ds_cmd_conn_opt(ds_cmd_conn_t *c, int ch, char *arg, const char *x_error,
                    void (*usage)(FILE *)) {
    switch (ch) {
    case 'b':
        c->brokers = arg;
        return 0;
    case 'S':
        c->schemas = arg;
        return 0;
    case 'R':
        c->registry_url = arg;
        return 0;
    case 'X':
        if (ds_cmd_x_pair(arg, c->x, &c->nx, c->max_x))
            return 0;
        if (x_error)
            fprintf(stderr, "%s\n", x_error);
        return 2;
    case DS_CMD_OPT_BAD_VALUE:
        return 2;
    default:
        usage(stderr);
        return 2;
    }
}

ds_config_t *ds_cmd_load_config(const char *cmd, int argc, char **argv) {
    char err[1024] = "";
    ds_config_t *cfg = ds_config_load(argc, argv, environ, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "dealsignal %s: %s\n", cmd, err);
        return NULL;
    }
    ds_log_set_level((ds_log_level_t)ds_log_level_parse(cfg->log_level));
    ds_log_set_json(!strcmp(cfg->log_format, "json"));
    ds_registry_init((size_t)cfg->max_message_bytes * 4);
    return cfg;
}

ds_rules_t *ds_cmd_load_rules(const char *path, const ds_config_t *cfg, char *err, size_t errsz) {
    ds_rules_t *r = path && path[0] ? ds_rules_load_file(path, err, errsz) : ds_rules_new_default();
    if (r)
        r->dedupe_window_days = cfg->dedupe_window_days;
    else if (!err[0])
        snprintf(err, errsz, "out of memory");
    return r;
}

void ds_cmd_json_str(const char *s) {
    if (!s) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        if (*s == '\n') {
            fputs("\\n", stdout);
            continue;
        }
        putchar(*s);
    }
    putchar('"');
}

void ds_cmd_json_field(const char *name, const char *s) {
    printf(",\"%s\":", name);
    ds_cmd_json_str(s);
}

void ds_cmd_json_strs(const char *const *v, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            putchar(',');
        ds_cmd_json_str(v[i]);
    }
    putchar(']');
}

void ds_cmd_catch_stop(void (*on_stop)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
