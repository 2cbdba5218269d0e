/*
 * test_config_readme.c — the README's configuration table is the table
 * in ds_config.c: every row printed by ds_config_print_markdown must
 * appear verbatim in README.md.  Also: precedence and secret redaction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ds_config.h"
#include "unit_util.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

static void test_readme_matches_table(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof(path), "%s/README.md", DS_SOURCE_DIR);
    char *readme = slurp(path);
    assert_non_null(readme);
    uu_text_t out;
    ds_config_print_markdown(uu_text_open(&out));
    char *table = uu_text_close(&out);
    char *save = NULL;
    for (char *line = strtok_r(table, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strstr(readme, line))
            fprintf(stderr, "README lacks: %s\n", line);
        assert_non_null(strstr(readme, line));
    }
    free(table);
    free(readme);
}

static void test_precedence_and_secrets(void **state) {
    (void)state;
    char file[] = "/tmp/ds-config-XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    const char *yaml = "topics:\n  crm: from-file\n  alerts: from-file\nbatch:\n  size: 7\n"
                       "kafka:\n  sasl.password: hunter2\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    char *envp[] = {"DEALSIGNAL_TOPICS_CRM=from-env", "DEALSIGNAL_TOPICS_ALERTS=from-env",
                    "DEALSIGNAL_REDIS_URL=redis://u:hunter2@127.0.0.1:6380/2", NULL};
    char *argv[] = {"scorer", "--config", file, "--topic-alerts", "from-flag", NULL};
    char err[512];
    ds_config_t *c = ds_config_load(5, argv, envp, err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(c->topic_crm, "from-env");      /* env over file */
    assert_string_equal(c->topic_alerts, "from-flag");  /* flag over env */
    assert_int_equal(c->batch_size, 7);                 /* file over default */
    uu_text_t out;
    ds_config_dump(c, uu_text_open(&out));
    char *dump = uu_text_close(&out);
    assert_null(strstr(dump, "hunter2"));
    assert_non_null(strstr(dump, "redis://u:***@127.0.0.1:6380/2"));
    free(dump);
    ds_redis_url_t u;
    assert_int_equal(ds_redis_url_parse(c->redis_url, &u, err, sizeof(err)), DS_ERR_OK);
    assert_string_equal(u.user, "u");
    assert_string_equal(u.password, "hunter2");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    ds_config_destroy(c);
    char *bad[] = {"scorer", "--batch-size", "0", NULL};
    assert_null(ds_config_load(3, bad, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "batch.size"));
    assert_non_null(strstr(err, "flag --batch-size"));
    /* a WAIT's reply must come within the command timeout */
    char *wait[] = {"scorer", "--redis-wait-replicas", "1", "--redis-timeout-ms", "1000", NULL};
    assert_null(ds_config_load(5, wait, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "redis.wait_timeout_ms (1000)"));
    assert_non_null(strstr(err, "redis.timeout_ms (1000)"));
    char *nowait[] = {"scorer", "--redis-timeout-ms", "1000", NULL};
    c = ds_config_load(3, nowait, NULL, err, sizeof(err));
    assert_non_null(c);
    ds_config_destroy(c);
    char *unknown[] = {"scorer", "--no-such-flag", "1", NULL};
    assert_null(ds_config_load(3, unknown, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "--no-such-flag"));
    unlink(file);
}

/* An explicitly set schema_ids.* is told apart from its default, even when
 * it names the same id (with a registry, only set ids are taken as is). */
static void test_explicit_settings(void **state) {
    (void)state;
    char err[512];
    char *none[] = {"x", NULL};
    ds_config_t *c = ds_config_load(1, none, NULL, err, sizeof(err));
    assert_non_null(c);
    assert_false(ds_config_is_set(c, "schema_ids.lead_score"));
    assert_int_equal(c->schema_id_lead_score, 3);
    assert_string_equal(c->schema_registry_subject_strategy, "topic");
    assert_string_equal(c->schema_registry_auto_register, "true");
    ds_config_destroy(c);
    char *argv[] = {"x", "--schema-id-lead-score", "3", "--auto-register", "false", NULL};
    char *envp[] = {"DEALSIGNAL_SCHEMA_IDS_DEAL_ALERT=77",
                    "DEALSIGNAL_SCHEMA_REGISTRY_SUBJECT_STRATEGY=record", NULL};
    c = ds_config_load(5, argv, envp, err, sizeof(err));
    assert_non_null(c);
    assert_true(ds_config_is_set(c, "schema_ids.lead_score"));
    assert_true(ds_config_is_set(c, "schema_ids.deal_alert"));
    assert_false(ds_config_is_set(c, "schema_ids.account_score"));
    assert_false(ds_config_is_set(c, "no.such.setting"));
    assert_int_equal(c->schema_id_deal_alert, 77);
    assert_string_equal(c->schema_registry_subject_strategy, "record");
    assert_string_equal(c->schema_registry_auto_register, "false");
    ds_config_destroy(c);
    char *bad[] = {"x", "--subject-strategy", "topicrecord", NULL};
    assert_null(ds_config_load(3, bad, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "schema_registry.subject_strategy"));
}

/* A config file that is not YAML is reported as a syntax error at its
 * line, not as what its broken syntax first looked like (an open list);
 * a list where settings belong is reported as such. */
static void test_file_errors(void **state) {
    (void)state;
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"batch:\n  size: 7\ntopics: [a, b\n", ":4: did not find expected ',' or ']' (file)"},
        {"batch:\n  size: 7\n   bad: : x\n", ":3: mapping values are not allowed"},
        {"batch:\n  size: 7\ntopics: [a, b]\n", ":3: lists are not settings (file)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char file[] = "/tmp/ds-config-XXXXXX";
        int fd = mkstemp(file);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, cases[i].yaml, strlen(cases[i].yaml)),
                         (ssize_t)strlen(cases[i].yaml));
        close(fd);
        char *argv[] = {"scorer", "--config", file, NULL};
        char err[512];
        ds_config_t *c = ds_config_load(3, argv, NULL, err, sizeof(err));
        unlink(file);
        if (c || !strstr(err, cases[i].want))
            fprintf(stderr, "case %zu: %s\n", i, c ? "loaded" : err);
        assert_null(c);
        assert_non_null(strstr(err, cases[i].want));
    }
}

UU_MAIN(NULL, NULL, cmocka_unit_test(test_readme_matches_table),
        cmocka_unit_test(test_precedence_and_secrets), cmocka_unit_test(test_explicit_settings),
        cmocka_unit_test(test_file_errors))
