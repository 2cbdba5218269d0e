/*
 * test_redis_it.c — the asynchronous write path of ds_redis against a real
 * redis-server: commands captured as RESP bytes, sent without waiting,
 * replies collected later; a connection killed with replies in flight
 * fails the collect and drops everything in flight, and the same bytes
 * sent again on a new connection give the same state; an error reply fails
 * the collect; a synchronous run with replies in flight is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_buf.h"
#include "ds_redis.h"
#include "harness.h"

static ds_h_env_t env;

static ds_redis_t *client(void) {
    char err[256] = "";
    ds_redis_t *r = ds_redis_new(env.redis_url, 2000, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(ds_redis_connect(r), DS_ERR_OK);
    return r;
}

static void capture_two(ds_redis_t *r, ds_buf_t *b, size_t *n, const char *value) {
    ds_redis_capture(r, b, n);
    const char *hset[] = {"HSET", "t:{u}", "f", value};
    ds_redis_cmd(r, 4, hset, NULL);
    const char *sadd[] = {"SADD", "t:{u}:s", "a", "b"};
    ds_redis_cmd(r, 4, sadd, NULL);
    ds_redis_capture(r, NULL, NULL);
}

static void test_capture_is_resp(void **state) {
    (void)state;
    ds_redis_t *r = client();
    ds_buf_t b;
    ds_buf_init(&b, 0);
    size_t n = 0;
    ds_redis_capture(r, &b, &n);
    const char *argv[] = {"SET", "k", "v\r\nx"};
    ds_redis_cmd(r, 3, argv, NULL);
    ds_redis_capture(r, NULL, NULL);
    static const char want[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv\r\nx\r\n";
    assert_int_equal(n, 1);
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.data, want, b.len);
    /* nothing was queued on the connection itself */
    assert_int_equal(ds_redis_pending(r), 0);
    ds_buf_free(&b);
    ds_redis_destroy(r);
}

static void test_send_then_collect(void **state) {
    (void)state;
    ds_redis_t *r = client();
    ds_buf_t b;
    ds_buf_init(&b, 0);
    size_t n = 0;
    capture_two(r, &b, &n, "one");
    assert_int_equal(n, 2);
    assert_int_equal(ds_redis_send(r, b.data, b.len, n), DS_ERR_OK);
    assert_int_equal(ds_redis_inflight(r), 2);
    /* a synchronous run must not read these replies as its own */
    const char *get[] = {"GET", "nothing"};
    ds_redis_cmd(r, 2, get, NULL);
    assert_int_equal(ds_redis_run(r, NULL, NULL), DS_ERR_IO);
    assert_false(ds_redis_connected(r));
    /* so the bytes go again, on a new connection */
    assert_int_equal(ds_redis_connect(r), DS_ERR_OK);
    assert_int_equal(ds_redis_send(r, b.data, b.len, n), DS_ERR_OK);
    assert_int_equal(ds_redis_collect(r, 2), DS_ERR_OK);
    assert_int_equal(ds_redis_inflight(r), 0);
    ds_h_expect_hget(&env, "t:{u}", "f", "one", 0);
    ds_buf_free(&b);
    ds_redis_destroy(r);
}

static void test_killed_connection_then_resend(void **state) {
    (void)state;
    ds_redis_t *r = client();
    ds_buf_t b;
    ds_buf_init(&b, 0);
    size_t n = 0;
    capture_two(r, &b, &n, "two");
    /* the connection dies before its replies are read */
    freeReplyObject(ds_h_redis(&env, "CLIENT KILL TYPE normal SKIPME yes"));
    ds_err_t e = ds_redis_send(r, b.data, b.len, n);
    if (!e)
        e = ds_redis_collect(r, n);
    assert_int_equal(e, DS_ERR_IO);
    assert_false(ds_redis_connected(r));
    assert_int_equal(ds_redis_inflight(r), 0);
    assert_true(ds_redis_errstr(r)[0] != 0);
    /* the same bytes on a new connection: the same state */
    assert_int_equal(ds_redis_connect(r), DS_ERR_OK);
    assert_int_equal(ds_redis_send(r, b.data, b.len, n), DS_ERR_OK);
    assert_int_equal(ds_redis_collect(r, n), DS_ERR_OK);
    ds_h_expect_hget(&env, "t:{u}", "f", "two", 0);
    redisReply *card = ds_h_redis(&env, "SCARD t:{u}:s");
    assert_int_equal(card->integer, 2);
    freeReplyObject(card);
    ds_buf_free(&b);
    ds_redis_destroy(r);
}

static void test_error_reply_fails_collect(void **state) {
    (void)state;
    ds_redis_t *r = client();
    freeReplyObject(ds_h_redis(&env, "SET t:{str} plain"));
    ds_buf_t b;
    ds_buf_init(&b, 0);
    size_t n = 0;
    ds_redis_capture(r, &b, &n);
    const char *bad[] = {"HSET", "t:{str}", "f", "v"}; /* WRONGTYPE */
    ds_redis_cmd(r, 4, bad, NULL);
    const char *ok[] = {"SET", "t:{after}", "1"};
    ds_redis_cmd(r, 3, ok, NULL);
    ds_redis_capture(r, NULL, NULL);
    assert_int_equal(ds_redis_send(r, b.data, b.len, n), DS_ERR_OK);
    assert_int_equal(ds_redis_collect(r, n), DS_ERR_IO);
    assert_non_null(strstr(ds_redis_errstr(r), "WRONGTYPE"));
    /* every reply was read: the connection is still in step */
    assert_int_equal(ds_redis_inflight(r), 0);
    ds_buf_free(&b);
    ds_redis_destroy(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_is_resp),
        cmocka_unit_test(test_send_then_collect),
        cmocka_unit_test(test_killed_connection_then_resend),
        cmocka_unit_test(test_error_reply_fails_collect),
    };
    return ds_h_main(&env, 1, tests, sizeof(tests) / sizeof(tests[0]));
}
