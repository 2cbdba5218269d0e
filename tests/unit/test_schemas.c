/*
 * test_schemas.c — the subjects output schemas are registered under
 * (TopicNameStrategy, RecordNameStrategy) and which schema file a record's
 * registration takes from schemas.dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit_util.h"
#include "worker.h"

static void test_subjects(void **state) {
    (void)state;
    char out[128], err[256];
    const char *ls = "{\"type\":\"record\",\"name\":\"LeadScore\",\"namespace\":\"dealsignal.v1\","
                     "\"fields\":[]}";
    assert_int_equal(
        ds_schema_subject("topic", "lead.scores", ls, out, sizeof(out), err, sizeof(err)),
        DS_ERR_OK);
    assert_string_equal(out, "lead.scores-value");
    assert_int_equal(ds_schema_subject(NULL, "t", ls, out, sizeof(out), err, sizeof(err)),
                     DS_ERR_OK);
    assert_string_equal(out, "t-value");
    assert_int_equal(
        ds_schema_subject("record", "lead.scores", ls, out, sizeof(out), err, sizeof(err)),
        DS_ERR_OK);
    assert_string_equal(out, "dealsignal.v1.LeadScore");
    /* a full name in "name" wins over the namespace; no namespace: the name */
    assert_int_equal(ds_schema_subject("record", "t",
                                       "{\"type\":\"record\",\"name\":\"a.b.C\",\"namespace\":"
                                       "\"x\",\"fields\":[]}",
                                       out, sizeof(out), err, sizeof(err)),
                     DS_ERR_OK);
    assert_string_equal(out, "a.b.C");
    assert_int_equal(ds_schema_subject("record", "t", "{\"type\":\"record\",\"name\":\"C\"}", out,
                                       sizeof(out), err, sizeof(err)),
                     DS_ERR_OK);
    assert_string_equal(out, "C");
    assert_int_equal(
        ds_schema_subject("record", "t", "\"string\"", out, sizeof(out), err, sizeof(err)),
        DS_ERR_INVAL);
    assert_int_equal(ds_schema_subject("topic", "t", ls, out, 4, err, sizeof(err)), DS_ERR_INVAL);
}

static void put(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_schema_file_text(void **state) {
    (void)state;
    char dir[] = "/tmp/ds-schemas-XXXXXX", err[512];
    assert_non_null(mkdtemp(dir));
    put(dir, "3-LeadScore.avsc", "three");
    put(dir, "12-LeadScore.avsc", "twelve");
    put(dir, "7-LeadScoreX.avsc", "not this record");
    put(dir, "4-AccountScore.avsc", "four");
    char *t = ds_schema_file_text(dir, "LeadScore", err, sizeof(err));
    assert_non_null(t);
    assert_string_equal(t, "twelve"); /* the highest id */
    free(t);
    t = ds_schema_file_text(dir, "AccountScore", err, sizeof(err));
    assert_string_equal(t, "four");
    free(t);
    assert_null(ds_schema_file_text(dir, "DealAlert", err, sizeof(err)));
    assert_non_null(strstr(err, "DealAlert"));
    /* the project's own */
    t = ds_schema_file_text(getenv("DS_SCHEMAS_DIR"), "DealAlert", err, sizeof(err));
    assert_non_null(t);
    assert_non_null(strstr(t, "\"DealAlert\""));
    free(t);
    const char *names[] = {"3-LeadScore.avsc", "12-LeadScore.avsc", "7-LeadScoreX.avsc",
                           "4-AccountScore.avsc"};
    for (size_t i = 0; i < 4; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

UU_MAIN(NULL, NULL, cmocka_unit_test(test_subjects), cmocka_unit_test(test_schema_file_text))
