/*
 * test_fmt.c — ds_fmt gives the same text as the printf formats it
 * replaces on the Redis write paths; ds_buf's compact numbers (the saved
 * state's encoding) read back exactly.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_buf.h"
#include "ds_fmt.h"
#include "unit_util.h"

static void check_g6(double v) {
    char want[64], got[64];
    snprintf(want, sizeof(want), "%.6g", v);
    memset(got, 'x', sizeof(got));
    size_t n = ds_fmt_g6(got, sizeof(got), v);
    if (strcmp(want, got) != 0 || n != strlen(want))
        fail_msg("%.17g: printf gives \"%s\", ds_fmt_g6 \"%s\" (%zu)", v, want, got, n);
}

static void test_g6_matches_printf(void **state) {
    (void)state;
    /* every one-decimal value of the fast path and past its edges */
    for (long k = -120000; k <= 120000; k++)
        check_g6((double)k / 10.0);
    /* sums and products as the scorer makes them, not only k / 10 */
    double acc = 0;
    for (int i = 0; i < 10000; i++) {
        acc += 0.1;
        check_g6(acc);
        check_g6(acc * 2.5);
        check_g6(round(acc * 10) / 10);
    }
    static const double special[] = {0.0,     -0.0,    0.05,    0.15,      0.25,      1e-5,
                                     1e-7,    9999.9,  10000.0, 99999.9,   100000.0,  123456.7,
                                     1e300,   -1e300,  0.3,     0.1 + 0.2, 2.675,     1.0 / 3,
                                     INFINITY, -INFINITY, NAN, 5e-324, 4503599627370496.5, -12.34};
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
        check_g6(special[i]);
    srand(7);
    for (int i = 0; i < 200000; i++) {
        double v = ((double)rand() / RAND_MAX - 0.5) * pow(10, rand() % 12 - 4);
        check_g6(v);
        check_g6(round(v * 10) / 10);
    }
}

static void test_integers(void **state) {
    (void)state;
    static const int64_t v[] = {0, 1, -1, 9, 10, -10, 1795862619838, INT64_MAX, INT64_MIN,
                                INT32_MIN, 1000000000000000000LL};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char want[32], got[DS_FMT_INT_MAX];
        snprintf(want, sizeof(want), "%lld", (long long)v[i]);
        assert_int_equal(ds_fmt_i64(got, v[i]), strlen(want));
        assert_string_equal(got, want);
    }
    char got[DS_FMT_INT_MAX];
    assert_int_equal(ds_fmt_u64(got, UINT64_MAX), 20);
    assert_string_equal(got, "18446744073709551615");
    char ck[DS_FMT_CKPT_MAX];
    assert_int_equal(ds_fmt_checkpoint(ck, 47, 123456789012LL), strlen("47:123456789012"));
    assert_string_equal(ck, "47:123456789012");
}

static void test_join_cuts_to_the_buffer(void **state) {
    (void)state;
    char fits[16];
    assert_int_equal(ds_fmt_join(fits, sizeof(fits), "ds:", "{acct:", "A-7", "}", NULL), 13);
    assert_string_equal(fits, "ds:{acct:A-7}");
    char b[12];
    assert_int_equal(ds_fmt_join(b, sizeof(b), "ds:", "{acct:", "A-7", "}:leads", NULL), 11);
    assert_string_equal(b, "ds:{acct:A-");
    assert_int_equal(ds_fmt_join(b, sizeof(b), NULL), 0);
    assert_string_equal(b, "");
    char one[1];
    assert_int_equal(ds_fmt_join(one, sizeof(one), "abc", NULL), 0);
    assert_string_equal(one, "");
}

/* Zigzag varints and compact doubles read back bit for bit, at the edges
 * of their short forms too, and take the bytes they promise. */
static void test_compact_numbers(void **state) {
    (void)state;
    static const int64_t ints[] = {0,         1,         -1,        63,        -64,      64,
                                   -65,       INT64_MAX, INT64_MIN, 1700000000000LL};
    static const double dbls[] = {0.0,  -0.0,     1.0,      -6.0,          0.5,        1e300,
                                  -1e-300, 9007199254740992.0, -9007199254740992.0,
                                  9007199254740994.0, INFINITY, -INFINITY, NAN, 18.518518518518519};
    ds_buf_t b;
    ds_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        assert_int_equal(ds_buf_put_svarint(&b, ints[i]), DS_ERR_OK);
    for (size_t i = 0; i < sizeof(dbls) / sizeof(dbls[0]); i++)
        assert_int_equal(ds_buf_put_f64c(&b, dbls[i]), DS_ERR_OK);
    ds_reader_t r;
    ds_reader_init(&r, b.data, b.len);
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        int64_t v;
        assert_int_equal(ds_get_svarint(&r, &v), DS_ERR_OK);
        assert_true(v == ints[i]);
    }
    for (size_t i = 0; i < sizeof(dbls) / sizeof(dbls[0]); i++) {
        double v;
        assert_int_equal(ds_get_f64c(&r, &v), DS_ERR_OK);
        assert_memory_equal(&v, &dbls[i], sizeof(v));
    }
    assert_ptr_equal(r.p, r.end);
    /* short forms: -64..63 in one byte, points like 10 or -6 in one */
    size_t n0 = b.len;
    assert_int_equal(ds_buf_put_svarint(&b, -64), DS_ERR_OK);
    assert_int_equal(ds_buf_put_svarint(&b, 63), DS_ERR_OK);
    assert_int_equal(ds_buf_put_f64c(&b, 10.0), DS_ERR_OK);
    assert_int_equal(ds_buf_put_f64c(&b, -6.0), DS_ERR_OK);
    assert_int_equal(b.len - n0, 4);
    assert_int_equal(ds_buf_put_f64c(&b, 0.1), DS_ERR_OK);
    assert_int_equal(b.len - n0, 13);
    /* an odd tag other than 1 is not a double */
    unsigned char bad[] = {3, 0, 0, 0, 0, 0, 0, 0, 0};
    double v;
    ds_reader_init(&r, bad, sizeof(bad));
    assert_int_equal(ds_get_f64c(&r, &v), DS_ERR_UNDECODABLE);
    ds_buf_free(&b);
}

/* ds_fmt_double: the shortest text that reads back as the same double
 * (tail --json printed 6 digits: 2.06969e+07 for 20696875.25). */
static void test_shortest_double(void **state) {
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {{0.3, "0.3"},         {20696875.25, "20696875.25"}, {5.4, "5.4"},
                 {0, "0"},             {-2.5, "-2.5"},               {1e300, "1e+300"},
                 {0.1 + 0.2, "0.30000000000000004"}};
    char out[DS_FMT_DOUBLE_MAX];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(ds_fmt_double(out, cases[i].v), strlen(cases[i].want));
        assert_string_equal(out, cases[i].want);
        assert_true(strtod(out, NULL) == cases[i].v);
    }
}

UU_MAIN(NULL, NULL, cmocka_unit_test(test_g6_matches_printf), cmocka_unit_test(test_integers),
        cmocka_unit_test(test_join_cuts_to_the_buffer), cmocka_unit_test(test_compact_numbers),
        cmocka_unit_test(test_shortest_double))
