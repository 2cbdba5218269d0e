/*
 * test_redis_it.c — the asynchronous write path of ds_redis against a real
 * redis-server: commands captured as RESP bytes, sent without waiting,
 * replies collected later; a connection killed with replies in flight
 * fails the collect and drops everything in flight, and the same bytes
 * sent again on a new connection give the same state; an error reply fails
 * the collect; a synchronous run with replies in flight is refused; a
 * client's script is loaded on every connection, so a NOSCRIPT (scripts
 * flushed) passes once the caller connects again.
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

/* A case's connected client and the buffer its captured commands go to. */
typedef struct fx {
    ds_redis_t *r;
    ds_buf_t b;
    size_t n;
} fx_t;

static int fx_setup(void **state) {
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->r = client();
    ds_buf_init(&f->b, 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state) {
    fx_t *f = *state;
    ds_buf_free(&f->b);
    ds_redis_destroy(f->r);
    free(f);
    return ds_h_threads_teardown(state);
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
    fx_t *f = *state;
    ds_redis_capture(f->r, &f->b, &f->n);
    const char *argv[] = {"SET", "k", "v\r\nx"};
    ds_redis_cmd(f->r, 3, argv, NULL);
    ds_redis_capture(f->r, NULL, NULL);
    static const char want[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv\r\nx\r\n";
    assert_int_equal(f->n, 1);
    assert_int_equal(f->b.len, sizeof(want) - 1);
    assert_memory_equal(f->b.data, want, f->b.len);
    /* nothing was queued on the connection itself */
    assert_int_equal(ds_redis_pending(f->r), 0);
}

static void test_send_then_collect(void **state) {
    fx_t *f = *state;
    capture_two(f->r, &f->b, &f->n, "one");
    assert_int_equal(f->n, 2);
    assert_int_equal(ds_redis_send(f->r, f->b.data, f->b.len, f->n), DS_ERR_OK);
    assert_int_equal(ds_redis_inflight(f->r), 2);
    /* a synchronous run must not read these replies as its own */
    const char *get[] = {"GET", "nothing"};
    ds_redis_cmd(f->r, 2, get, NULL);
    assert_int_equal(ds_redis_run(f->r, NULL, NULL), DS_ERR_IO);
    assert_false(ds_redis_connected(f->r));
    /* so the bytes go again, on a new connection */
    assert_int_equal(ds_redis_connect(f->r), DS_ERR_OK);
    assert_int_equal(ds_redis_send(f->r, f->b.data, f->b.len, f->n), DS_ERR_OK);
    assert_int_equal(ds_redis_collect(f->r, 2), DS_ERR_OK);
    assert_int_equal(ds_redis_inflight(f->r), 0);
    ds_h_expect_hget(&env, "t:{u}", "f", "one", 0);
}

static void test_killed_connection_then_resend(void **state) {
    fx_t *f = *state;
    capture_two(f->r, &f->b, &f->n, "two");
    /* the connection dies before its replies are read */
    freeReplyObject(ds_h_redis(&env, "CLIENT KILL TYPE normal SKIPME yes"));
    ds_err_t e = ds_redis_send(f->r, f->b.data, f->b.len, f->n);
    if (!e)
        e = ds_redis_collect(f->r, f->n);
    assert_int_equal(e, DS_ERR_IO);
    assert_false(ds_redis_connected(f->r));
    assert_int_equal(ds_redis_inflight(f->r), 0);
    assert_true(ds_redis_errstr(f->r)[0] != 0);
    /* the same bytes on a new connection: the same state */
    assert_int_equal(ds_redis_connect(f->r), DS_ERR_OK);
    assert_int_equal(ds_redis_send(f->r, f->b.data, f->b.len, f->n), DS_ERR_OK);
    assert_int_equal(ds_redis_collect(f->r, f->n), DS_ERR_OK);
    ds_h_expect_hget(&env, "t:{u}", "f", "two", 0);
    redisReply *card = ds_h_redis(&env, "SCARD t:{u}:s");
    assert_int_equal(card->integer, 2);
    freeReplyObject(card);
}

static void test_error_reply_fails_collect(void **state) {
    fx_t *f = *state;
    freeReplyObject(ds_h_redis(&env, "SET t:{str} plain"));
    ds_redis_capture(f->r, &f->b, &f->n);
    const char *bad[] = {"HSET", "t:{str}", "f", "v"}; /* WRONGTYPE */
    ds_redis_cmd(f->r, 4, bad, NULL);
    const char *ok[] = {"SET", "t:{after}", "1"};
    ds_redis_cmd(f->r, 3, ok, NULL);
    ds_redis_capture(f->r, NULL, NULL);
    assert_int_equal(ds_redis_send(f->r, f->b.data, f->b.len, f->n), DS_ERR_OK);
    assert_int_equal(ds_redis_collect(f->r, f->n), DS_ERR_IO);
    assert_non_null(strstr(ds_redis_errstr(f->r), "WRONGTYPE"));
    /* every reply was read: the connection is still in step */
    assert_int_equal(ds_redis_inflight(f->r), 0);
}

/* EVALSHA sha 1 t:{s} value, captured into b (n commands), sent and
 * collected. */
static ds_err_t evalsha(ds_redis_t *r, ds_buf_t *b, size_t *n, const char *sha, const char *value) {
    ds_buf_reset(b);
    *n = 0;
    const char *argv[] = {"EVALSHA", sha, "1", "t:{s}", value};
    ds_redis_capture(r, b, n);
    ds_redis_cmd(r, 5, argv, NULL);
    ds_redis_capture(r, NULL, NULL);
    ds_err_t e = ds_redis_send(r, b->data, b->len, *n);
    return e ? e : ds_redis_collect(r, *n);
}

/* What a worker's writes rely on: the script given in the options is
 * loaded by every connection before anything else goes on it; NOSCRIPT
 * fails the collect without being fatal, and the bytes sent again on a new
 * connection run; a SHA-1 that is not the script's is refused for good. */
static void test_script_loaded_on_every_connection(void **state) {
    (void)state;
    static const char body[] = "return redis.call('HSET', KEYS[1], 'f', ARGV[1])";
    redisReply *load = ds_h_redis(&env, "SCRIPT LOAD %s", body);
    assert_int_equal(load->type, REDIS_REPLY_STRING);
    char sha[64];
    snprintf(sha, sizeof(sha), "%s", load->str);
    freeReplyObject(load);
    freeReplyObject(ds_h_redis(&env, "SCRIPT FLUSH"));

    char err[256] = "";
    ds_redis_t *r = ds_redis_new(env.redis_url, 2000, err, sizeof(err));
    assert_non_null(r);
    ds_redis_set_opts(r, &(ds_redis_opts_t){.script = body, .script_sha = sha});
    assert_int_equal(ds_redis_connect(r), DS_ERR_OK);
    redisReply *ex = ds_h_redis(&env, "SCRIPT EXISTS %s", sha);
    assert_int_equal(ex->element[0]->integer, 1);
    freeReplyObject(ex);

    ds_buf_t b;
    ds_buf_init(&b, 0);
    size_t n = 0;
    assert_int_equal(evalsha(r, &b, &n, sha, "one"), DS_ERR_OK);
    ds_h_expect_hget(&env, "t:{s}", "f", "one", 0);

    /* the scripts flushed under the live connection */
    freeReplyObject(ds_h_redis(&env, "SCRIPT FLUSH"));
    assert_int_equal(evalsha(r, &b, &n, sha, "two"), DS_ERR_IO);
    assert_non_null(strstr(ds_redis_errstr(r), "NOSCRIPT"));
    assert_false(ds_redis_fatal(r));
    /* what a worker does on an error: close, connect again, send again */
    ds_redis_close(r);
    assert_int_equal(ds_redis_connect(r), DS_ERR_OK);
    assert_int_equal(ds_redis_send(r, b.data, b.len, n), DS_ERR_OK);
    assert_int_equal(ds_redis_collect(r, n), DS_ERR_OK);
    ds_h_expect_hget(&env, "t:{s}", "f", "two", 0);
    ds_buf_free(&b);
    ds_redis_destroy(r);

    /* a build whose SHA-1 is not its script's */
    r = ds_redis_new(env.redis_url, 2000, err, sizeof(err));
    assert_non_null(r);
    ds_redis_set_opts(r,
                      &(ds_redis_opts_t){.script = body,
                                         .script_sha = "0000000000000000000000000000000000000000"});
    assert_int_equal(ds_redis_connect(r), DS_ERR_IO);
    assert_true(ds_redis_fatal(r));
    assert_non_null(strstr(ds_redis_errstr(r), "SCRIPT LOAD answered"));
    ds_redis_destroy(r);
}

DS_H_MAIN(&env, 1, cmocka_unit_test_setup_teardown(test_capture_is_resp, fx_setup, fx_teardown),
          cmocka_unit_test_setup_teardown(test_send_then_collect, fx_setup, fx_teardown),
          cmocka_unit_test_setup_teardown(test_killed_connection_then_resend, fx_setup,
                                          fx_teardown),
          cmocka_unit_test_setup_teardown(test_error_reply_fails_collect, fx_setup, fx_teardown),
          cmocka_unit_test(test_script_loaded_on_every_connection))
