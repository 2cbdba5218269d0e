/*
 * test_metrics.c — the Prometheus registry: exact text of every metric
 * type, label escaping, handle identity, lock-free updates from several
 * threads, and (when promtool is installed) the official format checker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ds_metrics.h"
#include "unit_util.h"

/* NUL-terminated copy of a render. */
static char *render(ds_metrics_t *m) {
    ds_buf_t b;
    ds_buf_init(&b, 0);
    assert_int_equal(ds_metrics_render(m, &b), DS_ERR_OK);
    assert_int_equal(ds_buf_append(&b, "", 1), DS_ERR_OK);
    return (char *)b.data;
}

/* Fails the case unless m renders as want, byte for byte. */
static void expect_render(ds_metrics_t *m, const char *want) {
    char *got = render(m);
    assert_string_equal(got, want);
    free(got);
}

static double seven(void *opaque) {
    (void)opaque;
    return 7;
}
static double from_ptr(void *opaque) {
    return *(const double *)opaque;
}

static void test_render_exact(void **state) {
    (void)state;
    ds_metrics_t *m = ds_metrics_new("t_");
    assert_non_null(m);
    ds_counter_t *ev = ds_metrics_counter(m, "events", "Events seen", NULL);
    ds_gauge_t *lag = ds_metrics_gauge(m, "lag", "Consumer lag", "partition=\"0\"");
    ds_counter_t *dlq1 = ds_metrics_counter(m, "dlq", "DLQ records", "reason=\"bad_magic\"");
    static const double b[] = {0.125, 1};
    ds_histogram_t *h = ds_metrics_histogram(m, "lat_seconds", "Latency", "worker=\"w\"", b, 2);
    /* registered after the histogram: must still be grouped with dlq1 */
    ds_counter_t *dlq2 =
        ds_metrics_counter(m, "dlq", "ignored: first help wins", "reason=\"a\"b\\c\nd\"");
    assert_int_equal(ds_metrics_gauge_fn(m, "tracked", "Tracked things", NULL, seven, NULL),
                     DS_ERR_OK);
    assert_non_null(ev);
    assert_non_null(lag);
    assert_non_null(dlq1);
    assert_non_null(dlq2);
    assert_non_null(h);
    assert_ptr_not_equal(dlq1, dlq2);

    ds_counter_add(ev, 3);
    ds_gauge_set(lag, 10);
    ds_gauge_add(lag, 2.5);
    ds_counter_add(dlq1, 2);
    ds_counter_add(dlq2, 1);
    /* binary-exact values: 0.0625 + 0.125 + 0.5 + 3 = 3.6875.
     * le=0.125: 0.0625, 0.125 (inclusive) -> 2; le=1: +0.5 -> 3; +Inf: 4 */
    ds_histogram_observe(h, 0.0625);
    ds_histogram_observe(h, 0.125);
    ds_histogram_observe(h, 0.5);
    ds_histogram_observe(h, 3);
    ds_histogram_observe(h, NAN); /* ignored */
    assert_int_equal(ds_histogram_count(h), 4);
    assert_true(ds_histogram_sum(h) == 3.6875);

    expect_render(m, "# HELP t_events_total Events seen\n"
                     "# TYPE t_events_total counter\n"
                     "t_events_total 3\n"
                     "# HELP t_lag Consumer lag\n"
                     "# TYPE t_lag gauge\n"
                     "t_lag{partition=\"0\"} 12.5\n"
                     "# HELP t_dlq_total DLQ records\n"
                     "# TYPE t_dlq_total counter\n"
                     "t_dlq_total{reason=\"bad_magic\"} 2\n"
                     "t_dlq_total{reason=\"a\\\"b\\\\c\\nd\"} 1\n"
                     "# HELP t_lat_seconds Latency\n"
                     "# TYPE t_lat_seconds histogram\n"
                     "t_lat_seconds_bucket{worker=\"w\",le=\"0.125\"} 2\n"
                     "t_lat_seconds_bucket{worker=\"w\",le=\"1\"} 3\n"
                     "t_lat_seconds_bucket{worker=\"w\",le=\"+Inf\"} 4\n"
                     "t_lat_seconds_sum{worker=\"w\"} 3.6875\n"
                     "t_lat_seconds_count{worker=\"w\"} 4\n"
                     "# HELP t_tracked Tracked things\n"
                     "# TYPE t_tracked gauge\n"
                     "t_tracked 7\n");
    ds_metrics_destroy(m);
}

static void test_histogram_unlabelled_and_defaults(void **state) {
    (void)state;
    ds_metrics_t *m = ds_metrics_new(NULL);
    ds_histogram_t *h = ds_metrics_histogram(m, "op_seconds", "Op time", NULL, ds_latency_bounds,
                                             DS_LATENCY_BOUNDS_N);
    assert_non_null(h);
    ds_histogram_observe(h, 0.0005); /* on the first bound: in it */
    ds_histogram_observe(h, 11);     /* above 10: only +Inf */
    char *got = render(m);
    static const char *const want[] = {"op_seconds_bucket{le=\"0.0005\"} 1\n",
                                       "op_seconds_bucket{le=\"0.001\"} 1\n",
                                       "op_seconds_bucket{le=\"2.5\"} 1\n",
                                       "op_seconds_bucket{le=\"10\"} 1\n",
                                       "op_seconds_bucket{le=\"+Inf\"} 2\n",
                                       "op_seconds_sum 11.0005\n",
                                       "op_seconds_count 2\n"};
    uu_assert_contains(got, want, UU_COUNT(want));
    /* 14 bounds + Inf = 15 bucket lines */
    int lines = 0;
    for (const char *p = got; (p = strstr(p, "_bucket{")) != NULL; p++)
        lines++;
    assert_int_equal(lines, 15);
    free(got);
    ds_metrics_destroy(m);
}

static void test_help_escaping_and_nonfinite(void **state) {
    (void)state;
    ds_metrics_t *m = ds_metrics_new("x_");
    ds_gauge_t *g = ds_metrics_gauge(m, "g", "two\nlines, a \\ and \"quotes\"", "k=\"v\"");
    ds_gauge_t *inf = ds_metrics_gauge(m, "g", NULL, "k=\"inf\"");
    ds_gauge_t *big = ds_metrics_gauge(m, "g", NULL, "k=\"big\"");
    ds_gauge_set(g, NAN);
    ds_gauge_set(inf, -INFINITY);
    ds_gauge_set(big, 0.1); /* 0.1 reads back from %.15g */
    expect_render(m, "# HELP x_g two\\nlines, a \\\\ and \"quotes\"\n"
                     "# TYPE x_g gauge\n"
                     "x_g{k=\"v\"} NaN\n"
                     "x_g{k=\"inf\"} -Inf\n"
                     "x_g{k=\"big\"} 0.1\n");
    ds_gauge_set(big, 1.0 / 3.0); /* needs 17 digits to read back exactly */
    char *got = render(m);
    char *line = strstr(got, "x_g{k=\"big\"} ");
    assert_non_null(line);
    assert_true(strtod(line + strlen("x_g{k=\"big\"} "), NULL) == 1.0 / 3.0);
    free(got);
    ds_metrics_destroy(m);
}

static void test_same_handle(void **state) {
    (void)state;
    ds_metrics_t *m = ds_metrics_new("dealsignal_");
    ds_counter_t *a = ds_metrics_counter(m, "dlq_records", "h", "worker=\"s\",reason=\"x\"");
    ds_counter_t *b = ds_metrics_counter(m, "dlq_records", "h", "worker=\"s\", reason=\"x\"");
    ds_counter_t *c = ds_metrics_counter(m, "dlq_records", "h", "worker=\"s\",reason=\"y\"");
    ds_counter_t *d = ds_metrics_counter(m, "dlq_records_total", "h", "worker=\"s\",reason=\"x\"");
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_ptr_equal(a, d); /* "_total" is not doubled */
    assert_ptr_not_equal(a, c);
    ds_counter_add(a, 5);
    assert_int_equal(ds_counter_get(b), 5);
    assert_int_equal(ds_counter_get(c), 0);

    ds_gauge_t *g1 = ds_metrics_gauge(m, "lag", "h", NULL);
    ds_gauge_t *g2 = ds_metrics_gauge(m, "lag", "h", "");
    assert_non_null(g1);
    assert_ptr_equal(g1, g2);

    static const double b1[] = {1, 2}, b2[] = {1, 3};
    ds_histogram_t *h1 = ds_metrics_histogram(m, "t_seconds", "h", "w=\"a\"", b1, 2);
    assert_non_null(h1);
    assert_ptr_equal(ds_metrics_histogram(m, "t_seconds", "h", "w=\"a\"", b1, 2), h1);
    assert_null(ds_metrics_histogram(m, "t_seconds", "h", "w=\"a\"", b2, 2));
    assert_null(ds_metrics_histogram(m, "t_seconds", "h", "w=\"b\"", b2, 2));
    assert_non_null(ds_metrics_histogram(m, "t_seconds", "h", "w=\"b\"", b1, 2));

    char *got = render(m);
    const char *p = strstr(got, "dealsignal_dlq_records_total{worker=\"s\",reason=\"x\"} 5\n");
    assert_non_null(p);
    /* one HELP per family */
    assert_null(strstr(strstr(got, "# HELP dealsignal_dlq_records_total") + 1,
                       "# HELP dealsignal_dlq_records_total"));
    free(got);
    ds_metrics_destroy(m);
}

static void test_rejects_invalid(void **state) {
    (void)state;
    assert_null(ds_metrics_new("bad-prefix"));
    ds_metrics_t *m = ds_metrics_new("p_");
    assert_null(ds_metrics_counter(NULL, "x", "h", NULL));
    assert_null(ds_metrics_counter(m, NULL, "h", NULL));
    assert_null(ds_metrics_counter(m, "", "h", NULL));
    assert_null(ds_metrics_counter(m, "has-dash", "h", NULL));
    assert_null(ds_metrics_counter(m, "x", "h", "novalue"));
    assert_null(ds_metrics_counter(m, "x", "h", "a=\"unterminated"));
    assert_null(ds_metrics_counter(m, "x", "h", "a=\"1\",a=\"2\""));
    assert_null(ds_metrics_counter(m, "x", "h", "9a=\"1\""));
    assert_null(ds_metrics_counter(m, "x", "h", "__name__=\"1\""));
    /* a counter "x" is x_total; a gauge x_total clashes with it */
    assert_non_null(ds_metrics_counter(m, "x", "h", NULL));
    assert_null(ds_metrics_gauge(m, "x_total", "h", NULL));
    assert_int_equal(ds_metrics_gauge_fn(m, "x_total", "h", NULL, seven, NULL), DS_ERR_INVAL);
    static const double ok[] = {1, 2}, dec[] = {2, 1}, inf[] = {1, INFINITY};
    assert_null(ds_metrics_histogram(m, "h1", "h", "le=\"1\"", ok, 2));
    assert_null(ds_metrics_histogram(m, "h1", "h", NULL, dec, 2));
    assert_null(ds_metrics_histogram(m, "h1", "h", NULL, inf, 2));
    assert_null(ds_metrics_histogram(m, "h1", "h", NULL, ok, 0));
    /* a plain gauge and a callback gauge cannot share one series */
    assert_non_null(ds_metrics_gauge(m, "g", "h", NULL));
    assert_null(ds_metrics_histogram(m, "g", "h", NULL, ok, 2)); /* type clash */
    assert_non_null(ds_metrics_counter(m, "g", "h", NULL));      /* p_g_total: no clash */
    assert_int_equal(ds_metrics_gauge_fn(m, "g", "h", NULL, seven, NULL), DS_ERR_INVAL);
    /* NULL handles are ignored */
    ds_counter_add(NULL, 1);
    ds_gauge_set(NULL, 1);
    ds_gauge_add(NULL, 1);
    ds_histogram_observe(NULL, 1);
    assert_int_equal(ds_counter_get(NULL), 0);
    ds_metrics_destroy(m);
    ds_metrics_destroy(NULL);
}

static void test_gauge_fn_replace_remove(void **state) {
    (void)state;
    ds_metrics_t *m = ds_metrics_new("p_");
    double v = 41.5;
    assert_int_equal(ds_metrics_gauge_fn(m, "lag", "Lag", "p=\"1\"", seven, NULL), DS_ERR_OK);
    expect_render(m, "# HELP p_lag Lag\n# TYPE p_lag gauge\np_lag{p=\"1\"} 7\n");
    assert_int_equal(ds_metrics_gauge_fn(m, "lag", "Lag", "p=\"1\"", from_ptr, &v), DS_ERR_OK);
    expect_render(m, "# HELP p_lag Lag\n# TYPE p_lag gauge\np_lag{p=\"1\"} 41.5\n");
    /* the handle API does not hand out callback series */
    assert_null(ds_metrics_gauge(m, "lag", "Lag", "p=\"1\""));
    assert_int_equal(ds_metrics_gauge_fn(m, "lag", "Lag", "p=\"1\"", NULL, NULL), DS_ERR_OK);
    expect_render(m, ""); /* family without series is not rendered */
    ds_metrics_destroy(m);
}

#define THREADS 4
#define PER_THREAD 200000

typedef struct {
    _Atomic int failures; /* cmocka asserts must stay on the main thread */
    ds_metrics_t *m;
    ds_counter_t *c;
    ds_gauge_t *g;
    ds_histogram_t *h;
} shared_t;

static void *hammer(void *p) {
    shared_t *s = p;
    for (int i = 0; i < PER_THREAD; i++) {
        ds_counter_add(s->c, 1);
        ds_gauge_add(s->g, 1.0);
        ds_histogram_observe(s->h, 0.5);
        if (i % 10000 == 0) {
            /* registration and render race with the updates */
            if (ds_metrics_counter(s->m, "hits", "Hits", "k=\"v\"") != s->c)
                s->failures++;
            ds_buf_t b;
            ds_buf_init(&b, 0);
            if (ds_metrics_render(s->m, &b) != DS_ERR_OK)
                s->failures++;
            ds_buf_free(&b);
        }
    }
    return NULL;
}

static void test_concurrent_updates(void **state) {
    (void)state;
    shared_t s;
    memset(&s, 0, sizeof(s));
    s.m = ds_metrics_new("p_");
    s.c = ds_metrics_counter(s.m, "hits", "Hits", "k=\"v\"");
    s.g = ds_metrics_gauge(s.m, "level", "Level", NULL);
    static const double b[] = {0.25, 1};
    s.h = ds_metrics_histogram(s.m, "d_seconds", "D", NULL, b, 2);
    /* every thread started is joined before any assert can leave the
     * case: s lives on this frame */
    pthread_t t[THREADS];
    int started = 0;
    while (started < THREADS && pthread_create(&t[started], NULL, hammer, &s) == 0)
        started++;
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(started, THREADS);
    assert_int_equal(s.failures, 0);
    /* 4 threads x 200000 = 800000 of each; 800000 x 0.5 = 400000 (exact
     * in a double, as is every partial sum of halves) */
    assert_int_equal(ds_counter_get(s.c), 800000);
    assert_true(ds_gauge_get(s.g) == 800000.0);
    assert_int_equal(ds_histogram_count(s.h), 800000);
    assert_true(ds_histogram_sum(s.h) == 400000.0);
    char *got = render(s.m);
    assert_non_null(strstr(got, "p_hits_total{k=\"v\"} 800000\n"));
    assert_non_null(strstr(got, "p_d_seconds_bucket{le=\"0.25\"} 0\n"));
    assert_non_null(strstr(got, "p_d_seconds_bucket{le=\"1\"} 800000\n"));
    assert_non_null(strstr(got, "p_d_seconds_sum 400000\n"));
    free(got);
    ds_metrics_destroy(s.m);
}

/* ---- promtool ------------------------------------------------------------ */

static int on_path(const char *prog) {
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char dir[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof(dir) - 64) {
            memcpy(dir, path, n);
            snprintf(dir + n, sizeof(dir) - n, "/%s", prog);
            if (access(dir, X_OK) == 0)
                return 1;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return 0;
}

static void test_promtool_accepts_render(void **state) {
    (void)state;
    if (!on_path("promtool")) {
        print_message("promtool not on PATH (Debian package prometheus): skipping\n");
        skip();
    }
    ds_metrics_t *m = ds_metrics_new("dealsignal_");
    ds_counter_add(
        ds_metrics_counter(m, "consumed_records", "Records consumed", "worker=\"scorer\""), 10);
    ds_counter_add(ds_metrics_counter(m, "dlq_records", "Records sent to the DLQ",
                                      "worker=\"scorer\",reason=\"bad \"magic\"\\\nx\""),
                   1);
    ds_gauge_set(ds_metrics_gauge(m, "consumer_lag_records", "Lag", "partition=\"3\""), 42);
    ds_histogram_t *h = ds_metrics_histogram(m, "batch_seconds", "Batch time", "worker=\"scorer\"",
                                             ds_latency_bounds, DS_LATENCY_BOUNDS_N);
    ds_histogram_observe(h, 0.003);
    ds_histogram_observe(h, 0.2);
    assert_int_equal(ds_metrics_gauge_fn(m, "tracked_deals", "Deals", NULL, seven, NULL),
                     DS_ERR_OK);
    ds_counter_add(
        ds_metrics_counter(m, "consumed_records", "Records consumed", "worker=\"watcher\""), 4);
    char *text = render(m);
    signal(SIGPIPE, SIG_IGN);
    FILE *p = popen("promtool check metrics", "w");
    assert_non_null(p);
    fputs(text, p);
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* and it can fail: a duplicate HELP line is rejected */
    p = popen("promtool check metrics 2>/dev/null >/dev/null", "w");
    assert_non_null(p);
    fputs(text, p);
    fputs("# HELP dealsignal_tracked_deals again\n", p);
    st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_not_equal(WEXITSTATUS(st), 0);
    free(text);
    ds_metrics_destroy(m);
}

UU_MAIN(NULL, NULL, cmocka_unit_test(test_render_exact),
        cmocka_unit_test(test_histogram_unlabelled_and_defaults),
        cmocka_unit_test(test_help_escaping_and_nonfinite), cmocka_unit_test(test_same_handle),
        cmocka_unit_test(test_rejects_invalid), cmocka_unit_test(test_gauge_fn_replace_remove),
        cmocka_unit_test(test_concurrent_updates), cmocka_unit_test(test_promtool_accepts_render))
