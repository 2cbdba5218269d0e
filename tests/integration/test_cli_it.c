/*
 * test_cli_it.c — the command line of `dealsignal tail` and `gen` through
 * the binary, against the embedded broker (no Redis):
 *
 *  - `tail dlq --from-beginning --timeout-ms 1000` prints the records the
 *    topic holds although joining the group takes longer than that (~3 s
 *    on the embedded broker: the timeout counts from the assignment);
 *  - `tail dlq --json` prints one JSON object per record with the DLQ
 *    headers;
 *  - an option whose value is the next flag, and a leftover argument, are
 *    refused with status 2 and one line naming them.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ds_clock.h"
#include "harness.h"
#include "unit_util.h"

static ds_h_env_t env;
static char out[256], errf[256];

/* Run $DS_BIN args to completion: stdout to `out`, stderr to `errf`. */
static int run(const char *const *args) {
    return ds_h_run_to(out, errf, false, args);
}

/* The whole of file path (at most size-1 bytes). */
static char *slurp(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int group_setup(void **state) {
    (void)state;
    ds_h_start(&env, 1, false);
    snprintf(out, sizeof(out), "%s/cli.out", env.tmpdir);
    snprintf(errf, sizeof(errf), "%s/cli.err", env.tmpdir);
    /* two DLQ records as the DLQ writer makes them */
    rd_kafka_t *p = ds_h_producer(&env);
    for (int i = 0; i < 2; i++) {
        char off[16];
        snprintf(off, sizeof(off), "%d", 40 + i);
        rd_kafka_headers_t *h = rd_kafka_headers_new(5);
        rd_kafka_header_add(h, "dealsignal.error", -1, "bad_magic", -1);
        rd_kafka_header_add(h, "dealsignal.detail", -1, "first byte 0x7b, not 0", -1);
        rd_kafka_header_add(h, "dealsignal.source.topic", -1, "ma.events", -1);
        rd_kafka_header_add(h, "dealsignal.source.partition", -1, "0", -1);
        rd_kafka_header_add(h, "dealsignal.source.offset", -1, off, -1);
        assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("ma.events.dlq"),
                                           RD_KAFKA_V_KEY("A-1", 3),
                                           RD_KAFKA_V_VALUE((void *)"{\"x\":1}", 7),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                         0);
    }
    ds_h_flush(p);
    rd_kafka_destroy(p);
    return 0;
}

/* A timeout shorter than the group join still reads what the topic holds;
 * every record is one JSON object with the DLQ headers. */
static void test_tail_dlq_json(void **state) {
    (void)state;
    const char *args[] = {"tail",         "dlq",  "--brokers", env.brokers, "--from-beginning",
                          "--timeout-ms", "1000", "--json",    NULL};
    assert_int_equal(run(args), 0);
    char buf[8192];
    slurp(out, buf, sizeof(buf));
    fprintf(stderr, "%s", buf);
    int n = 0;
    for (char *line = buf, *nl; *line; line = nl + 1, n++) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o)
            fail_msg("not JSON (%s): %s", je.text, line);
        assert_string_equal(json_string_value(json_object_get(o, "topic")), "ma.events.dlq");
        assert_int_equal(json_integer_value(json_object_get(o, "partition")), 0);
        assert_int_equal(json_integer_value(json_object_get(o, "offset")), n);
        assert_string_equal(json_string_value(json_object_get(o, "key")), "A-1");
        assert_string_equal(json_string_value(json_object_get(o, "code")), "bad_magic");
        assert_string_equal(json_string_value(json_object_get(o, "detail")),
                            "first byte 0x7b, not 0");
        assert_string_equal(json_string_value(json_object_get(o, "source_topic")), "ma.events");
        assert_int_equal(json_integer_value(json_object_get(o, "source_partition")), 0);
        assert_int_equal(json_integer_value(json_object_get(o, "source_offset")), 40 + n);
        assert_int_equal(json_integer_value(json_object_get(o, "value_size")), 7);
        json_decref(o);
    }
    assert_int_equal(n, 2);
}

/* --width cuts each text line to that many columns, its end "..."; a
 * line that fits is printed whole */
static void test_tail_width(void **state) {
    (void)state;
    const char *full = "DLQ     ma.events.dlq[0]@0 bad_magic: first byte 0x7b, not 0 (7 bytes)\n"
                       "DLQ     ma.events.dlq[0]@1 bad_magic: first byte 0x7b, not 0 (7 bytes)\n";
    const char *cut = "DLQ     ma.events.dlq[0]@0 bad_magic:...\n"
                      "DLQ     ma.events.dlq[0]@1 bad_magic:...\n";
    const char *widths[] = {"40", "71"}, *want[] = {cut, full};
    for (int k = 0; k < 2; k++) {
        const char *args[] = {"tail",         "dlq",  "--brokers", env.brokers, "--from-beginning",
                              "--timeout-ms", "1000", "--width",   widths[k],   NULL};
        assert_int_equal(run(args), 0);
        char buf[4096];
        assert_string_equal(slurp(out, buf, sizeof(buf)), want[k]);
    }
}

/* gen --print-rules of the demo profile is config/demo-rules.yaml (the
 * binary's copy, so the demo runs outside the repository) */
static void test_demo_rules_builtin(void **state) {
    (void)state;
    const char *args[] = {"gen", "--print-rules", NULL};
    assert_int_equal(run(args), 0);
    char path[600], want[16384], got[16384];
    snprintf(path, sizeof(path), "%s/../config/demo-rules.yaml", getenv("DS_SCHEMAS_DIR"));
    slurp(path, want, sizeof(want));
    assert_true(strlen(want) > 100);
    assert_string_equal(slurp(out, got, sizeof(got)), want);
}

/* status 2 and one line on stderr naming `names` */
static void expect_refused(const char *const *args, const char *names) {
    assert_int_equal(run(args), 2);
    char buf[4096];
    slurp(errf, buf, sizeof(buf));
    fprintf(stderr, "  %s", buf);
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    assert_string_equal(nl + 1, "");
    assert_non_null(strstr(buf, names));
}

static void test_bad_arguments(void **state) {
    (void)state;
    const char *gen_flag[] = {"gen",       "--count",    "1",   "--print",
                              "--brokers", "--scenario", "crm", NULL};
    expect_refused(gen_flag, "\"--scenario\"");
    const char *gen_extra[] = {"gen", "--count", "1", "--print", "crm", NULL};
    expect_refused(gen_extra, "\"crm\"");
    const char *tail_extra[] = {"tail", "scores", "extra", "--brokers", env.brokers, NULL};
    expect_refused(tail_extra, "\"extra\"");
    const char *tail_bogus[] = {"tail", "bogus", "--brokers", env.brokers, NULL};
    assert_int_equal(run(tail_bogus), 2);
    char buf[4096];
    assert_non_null(strstr(slurp(errf, buf, sizeof(buf)), "bogus"));
    /* `rules defaults` takes nothing: --help is the usage, anything else
     * a usage error, never the defaults */
    const char *defaults_help[] = {"rules", "defaults", "--help", NULL};
    assert_int_equal(run(defaults_help), 0);
    assert_non_null(strstr(slurp(out, buf, sizeof(buf)), "usage: dealsignal rules"));
    const char *defaults_extra[] = {"rules", "defaults", "x", NULL};
    assert_int_equal(run(defaults_extra), 2);
    assert_null(strstr(slurp(out, buf, sizeof(buf)), "scoring:"));
    /* numbers are checked before anything runs: the demo starts nothing */
    const char *gen_count[] = {"gen", "--print", "--count", "abc", NULL};
    expect_refused(gen_count, "--count: 'abc' is not a whole number from 1");
    const char *gen_accounts[] = {"gen", "--print", "--accounts", "0", NULL};
    expect_refused(gen_accounts, "--accounts: '0'");
    const char *tail_max[] = {"tail", "scores", "--max", "abc", "--brokers", env.brokers, NULL};
    expect_refused(tail_max, "--max: 'abc'");
    const char *tail_both[] = {"tail", "scores", "--json", "--width", "50", NULL};
    expect_refused(tail_both, "--json and --width");
    const char *demo_count[] = {"demo", "--count", "-5", NULL};
    expect_refused(demo_count, "--count: '-5'");
    assert_null(strstr(slurp(out, buf, sizeof(buf)), "redis"));
    const char *broker_ctl[] = {"broker", "--control", "tcp", NULL};
    expect_refused(broker_ctl, "--control must be stdin");
}

UU_MAIN(group_setup, ds_h_group_teardown, cmocka_unit_test(test_tail_dlq_json),
        cmocka_unit_test(test_tail_width), cmocka_unit_test(test_demo_rules_builtin),
        cmocka_unit_test(test_bad_arguments))
