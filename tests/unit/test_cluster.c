/*
 * test_cluster.c — the pure parts of Redis Cluster routing: CRC16/XMODEM
 * and the key slot (vectors checked against redis-server 7.0's CLUSTER
 * KEYSLOT), the slot map from CLUSTER SLOTS replies (7.0's extra fields,
 * an empty host), RESP formatting and the command parse, and the classification of
 * replies and of the replies of one unit (MULTI/EXEC with a redirect
 * queued).  Replies are built by feeding RESP to a hiredis reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ds_buf.h"
#include "ds_cluster.h"
#include "ds_redis.h"
#include "ds_redis_conn.h"
#include "unit_util.h"

/* One reply from RESP text (the test frees it). */
static redisReply *resp_n(const char *text, size_t len) {
    redisReader *rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, text, len), REDIS_OK);
    void *r = NULL;
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

static redisReply *resp(const char *text) {
    return resp_n(text, strlen(text));
}

static void test_crc16(void **state) {
    (void)state;
    assert_int_equal(ds_cluster_crc16("123456789", 9), 0x31C3);
    assert_int_equal(ds_cluster_crc16("", 0), 0);
}

static void test_keyslot(void **state) {
    (void)state;
    static const struct {
        const char *key;
        unsigned slot;
    } v[] = {
        /* from CLUSTER KEYSLOT on redis-server 7.0.15 */
        {"123456789", 12739},
        {"foo", 12182},
        {"bar", 5061},
        {"{acct:A}", 6603},
        {"ds:{acct:A}:lead:L7", 6603},
        {"{user1000}.following", 3443},
        {"foo{bar}{zap}", 5061}, /* the first tag only: "bar" */
        {"foo{{bar}}zap", 4015}, /* "{bar" */
        {"{}x", 10595},          /* empty tag: the whole key */
        {"foo{}{bar}", 8363},    /* the first {} is empty: the whole key */
        {"a{}b{c}", 7353},
        {"{a", 10276}, /* no closing brace */
        {"a}b{", 6027},
        {"", 0},
        {"{", 4092},
        {"}", 12090},
        {"{}", 15257},
        {"ds:{wpart:crm.events:3}:deadlines", 573},
        {"ds:{deal:D-17}", 9446},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        unsigned got = ds_cluster_keyslot(v[i].key, strlen(v[i].key));
        if (got != v[i].slot)
            fail_msg("keyslot(\"%s\") = %u, want %u", v[i].key, got, v[i].slot);
    }
    /* keys of one unit share a slot */
    assert_int_equal(ds_cluster_keyslot("p:{acct:X}", 10),
                     ds_cluster_keyslot("q:{acct:X}:leads", 16));
}

static void test_map_parse(void **state) {
    (void)state;
    /* 7.0: master [host, port, id, [metadata…]] (RESP2 flattens the map), replicas after it; the
     * second range's master has an empty host (the asked one) */
    redisReply *r =
        resp("*2\r\n"
             "*4\r\n:0\r\n:8191\r\n"
             "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$3\r\nid1\r\n*2\r\n$8\r\nhostname\r\n$1\r\nh\r\n"
             "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$3\r\nid4\r\n"
             "*3\r\n:8192\r\n:16383\r\n"
             "*3\r\n$0\r\n\r\n:7002\r\n$3\r\nid2\r\n");
    ds_cluster_map_t m;
    memset(&m, 0, sizeof(m));
    char err[200];
    assert_int_equal(ds_cluster_map_parse(&m, r, "10.0.0.9", err, sizeof(err)), DS_ERR_OK);
    assert_int_equal(m.nnodes, 2);
    assert_string_equal(m.nodes[0].host, "127.0.0.1");
    assert_int_equal(m.nodes[0].port, 7001);
    assert_string_equal(m.nodes[1].host, "10.0.0.9");
    assert_int_equal(m.nodes[1].port, 7002);
    assert_int_equal(m.owner[0], 0);
    assert_int_equal(m.owner[8191], 0);
    assert_int_equal(m.owner[8192], 1);
    assert_int_equal(m.owner[16383], 1);
    assert_int_equal(ds_cluster_map_covered(&m), DS_CLUSTER_NSLOTS);
    freeReplyObject(r);

    /* slot numbers as strings (some 7.0.x builds), a gap, one node twice */
    r = resp("*2\r\n"
             "*3\r\n$1\r\n0\r\n$2\r\n99\r\n*2\r\n$1\r\nh\r\n:1\r\n"
             "*3\r\n:200\r\n:299\r\n*2\r\n$1\r\nh\r\n:1\r\n");
    assert_int_equal(ds_cluster_map_parse(&m, r, "x", err, sizeof(err)), DS_ERR_OK);
    assert_int_equal(m.nnodes, 1);
    assert_int_equal(m.owner[99], 0);
    assert_int_equal(m.owner[100], -1);
    assert_int_equal(m.owner[250], 0);
    assert_int_equal(ds_cluster_map_covered(&m), 200);
    freeReplyObject(r);

    /* shapes that are not a map */
    const char *bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        "*1\r\n*2\r\n:0\r\n:1\r\n",                            /* no node */
        "*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* end < start */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* past the last slot */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",     /* port 0 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = resp(bad[i]);
        assert_int_equal(ds_cluster_map_parse(&m, r, "x", err, sizeof(err)), DS_ERR_INVAL);
        assert_int_equal(m.nnodes, 0);
        freeReplyObject(r);
    }
    ds_cluster_map_free(&m);
}

/* ds_redis_format writes what hiredis's own formatter does, for lengths of
 * every digit count, binary bytes and the empty string, with and without
 * lengths given; past its buffer's limit it fails and writes nothing. */
static void test_format(void **state) {
    (void)state;
    static char big[12345];
    memset(big, 'x', sizeof(big));
    big[7] = '\0';
    big[8] = '\r';
    const char *argv[] = {"HSET", "ds:{acct:A}:lead:L", "", "123456789", "0123456789", big, big};
    size_t lens[] = {4, 18, 0, 9, 10, 99, sizeof(big)};
    int argc = 7;
    ds_buf_t b;
    ds_buf_init(&b, 0);
    assert_int_equal(ds_buf_append(&b, "prefix", 6), DS_ERR_OK);
    assert_int_equal(ds_redis_format(&b, argc, argv, lens), DS_ERR_OK);
    char *want = NULL;
    long long n = redisFormatCommandArgv(&want, argc, argv, lens);
    assert_true(n > 0);
    assert_int_equal(b.len, 6 + (size_t)n);
    assert_memory_equal(b.data, "prefix", 6);
    assert_memory_equal(b.data + 6, want, (size_t)n);
    redisFreeCommand(want);
    /* lengths taken with strlen when none are given */
    const char *text[] = {"SET", "k", "a value of some length"};
    ds_buf_reset(&b);
    assert_int_equal(ds_redis_format(&b, 3, text, NULL), DS_ERR_OK);
    n = redisFormatCommandArgv(&want, 3, text, NULL);
    assert_int_equal(b.len, (size_t)n);
    assert_memory_equal(b.data, want, (size_t)n);
    ds_buf_free(&b);
    /* a limit: exactly enough succeeds, one byte less fails untouched */
    ds_buf_init(&b, (size_t)n);
    assert_int_equal(ds_redis_format(&b, 3, text, NULL), DS_ERR_OK);
    assert_int_equal(b.len, (size_t)n);
    ds_buf_free(&b);
    ds_buf_init(&b, (size_t)n - 1);
    assert_int_equal(ds_redis_format(&b, 3, text, NULL), DS_ERR_LIMIT_EXCEEDED);
    assert_int_equal(b.len, 0);
    ds_buf_free(&b);
    redisFreeCommand(want);
}

static void test_cmd_parse(void **state) {
    (void)state;
    ds_buf_t b;
    ds_buf_init(&b, 0);
    const char *hset[] = {"HSET", "ds:{acct:A}", "f", "v\r\n"};
    assert_int_equal(ds_redis_format(&b, 4, hset, NULL), DS_ERR_OK);
    size_t one = b.len;
    const char *multi[] = {"MULTI"};
    assert_int_equal(ds_redis_format(&b, 1, multi, NULL), DS_ERR_OK);
    ds_cluster_cmd_t c;
    assert_int_equal(ds_cluster_cmd_parse((const char *)b.data, b.len, &c), DS_ERR_OK);
    assert_int_equal(c.size, one);
    assert_int_equal(c.argc, 4);
    assert_int_equal(c.name_len, 4);
    assert_memory_equal(c.name, "HSET", 4);
    assert_int_equal(c.arg1_len, 11);
    assert_int_equal(ds_cluster_cmd_slot(&c), 6603);
    assert_int_equal(ds_cluster_cmd_parse((const char *)b.data + one, b.len - one, &c), DS_ERR_OK);
    assert_int_equal(c.argc, 1);
    assert_null(c.arg1);
    assert_int_equal(ds_cluster_cmd_slot(&c), -1);
    /* a truncated command, and bytes that are not RESP */
    assert_int_equal(ds_cluster_cmd_parse((const char *)b.data, one - 1, &c), DS_ERR_INVAL);
    assert_int_equal(ds_cluster_cmd_parse("PING\r\n", 6, &c), DS_ERR_INVAL);
    assert_int_equal(ds_cluster_cmd_parse("*1\r\n$4\r\nPINGx\r\n", 15, &c), DS_ERR_INVAL);
    /* keyless commands with arguments */
    ds_buf_reset(&b);
    const char *wait[] = {"wait", "1", "100"};
    assert_int_equal(ds_redis_format(&b, 3, wait, NULL), DS_ERR_OK);
    assert_int_equal(ds_cluster_cmd_parse((const char *)b.data, b.len, &c), DS_ERR_OK);
    assert_int_equal(ds_cluster_cmd_slot(&c), -1);
    /* which commands have a key: argv[1], unless the command has none */
    static const struct {
        const char *name;
        bool keyed;
    } k[] = {{"HSET", true},    {"hget", true},     {"HMGET", true},    {"SADD", true},
             {"ZADD", true},    {"ZREM", true},     {"ZRANGE", true},   {"EXPIRE", true},
             {"SET", true},     {"MULTI", false},   {"exec", false},    {"Echo", false},
             {"HELLO", false},  {"INFO", false},    {"PING", false},    {"CLUSTER", false},
             {"CLIENT", false}, {"ASKING", false},  {"AUTH", false},    {"SELECT", false},
             {"WAIT", false},   {"DISCARD", false}, {"READONLY", false}};
    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
        ds_buf_reset(&b);
        const char *argv[] = {k[i].name, "{x}"};
        assert_int_equal(ds_redis_format(&b, 2, argv, NULL), DS_ERR_OK);
        assert_int_equal(ds_cluster_cmd_parse((const char *)b.data, b.len, &c), DS_ERR_OK);
        int want = k[i].keyed ? (int)ds_cluster_keyslot("x", 1) : -1;
        if (ds_cluster_cmd_slot(&c) != want)
            fail_msg("%s: slot %d, want %d", k[i].name, ds_cluster_cmd_slot(&c), want);
    }
    ds_buf_free(&b);
}

static void test_reply_kind(void **state) {
    (void)state;
    static const struct {
        const char *resp;
        ds_cluster_kind_t kind;
        const char *cls;
    } v[] = {
        {"+OK\r\n", DS_CLUSTER_OK, "ok"},
        {":3\r\n", DS_CLUSTER_OK, "ok"},
        {"$-1\r\n", DS_CLUSTER_OK, "ok"},
        {"-MOVED 3999 127.0.0.1:6381\r\n", DS_CLUSTER_MOVED, "redirect"},
        {"-ASK 3999 127.0.0.1:6381\r\n", DS_CLUSTER_ASK, "redirect"},
        {"-TRYAGAIN Multiple keys request during rehashing of slot\r\n", DS_CLUSTER_TRYAGAIN,
         "busy"},
        /* a script's undeclared key that a slot migration already moved */
        {"-ERR Script attempted to access a non local key in a cluster node script: "
         "c7cc72f2fb3806b487d453e5b383d11f6d1b26e6, on @user_script:62.\r\n",
         DS_CLUSTER_TRYAGAIN, "busy"},
        {"-LOADING Redis is loading the dataset in memory\r\n", DS_CLUSTER_LOADING, "busy"},
        {"-BUSY Redis is busy running a script.\r\n", DS_CLUSTER_BUSY, "busy"},
        {"-OOM command not allowed when used memory > 'maxmemory'.\r\n", DS_CLUSTER_BUSY, "busy"},
        {"-CLUSTERDOWN The cluster is down\r\n", DS_CLUSTER_CLUSTERDOWN, "down"},
        {"-CLUSTERDOWN Hash slot not served\r\n", DS_CLUSTER_CLUSTERDOWN, "down"},
        {"-READONLY You can't write against a read only replica.\r\n", DS_CLUSTER_DOWN, "down"},
        {"-MASTERDOWN Link with MASTER is down\r\n", DS_CLUSTER_DOWN, "down"},
        {"-NOAUTH Authentication required.\r\n", DS_CLUSTER_REFUSED, "refused"},
        {"-WRONGPASS invalid username-password pair or user is disabled.\r\n", DS_CLUSTER_REFUSED,
         "refused"},
        {"-NOPERM this user has no permissions to run the 'hset' command\r\n", DS_CLUSTER_REFUSED,
         "refused"},
        {"-ERR This instance has cluster support disabled\r\n", DS_CLUSTER_REFUSED, "refused"},
        {"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
         DS_CLUSTER_BADCMD, "bad_command"},
        {"-ERR unknown command 'HSETX'\r\n", DS_CLUSTER_BADCMD, "bad_command"},
        {"-CROSSSLOT Keys in request don't hash to the same slot\r\n", DS_CLUSTER_BADCMD,
         "bad_command"},
        {"-BUSYKEY Target key name already exists.\r\n", DS_CLUSTER_BADCMD, "bad_command"},
        {"-EXECABORT Transaction discarded because of previous errors.\r\n", DS_CLUSTER_EXECABORT,
         "bad_command"},
        {"-MOVED nonsense\r\n", DS_CLUSTER_DOWN, "down"}, /* unreadable: retried */
        {"-NOSCRIPT No matching script. Please use EVAL.\r\n", DS_CLUSTER_NOSCRIPT, "down"},
        {"*2\r\n:1\r\n-WRONGTYPE x\r\n", DS_CLUSTER_BADCMD, "bad_command"}, /* inside EXEC */
        {"*2\r\n:1\r\n:0\r\n", DS_CLUSTER_OK, "ok"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        redisReply *r = resp(v[i].resp);
        ds_cluster_redirect_t to;
        memset(&to, 0, sizeof(to));
        ds_cluster_kind_t k = ds_cluster_reply_kind(r, &to);
        if (k != v[i].kind)
            fail_msg("%s: kind %s, want %s", v[i].resp, ds_cluster_kind_name(k),
                     ds_cluster_kind_name(v[i].kind));
        assert_string_equal(ds_cluster_kind_class(k), v[i].cls);
        freeReplyObject(r);
    }
    redisReply *r = resp("-ASK 16383 10.1.2.3:30006\r\n");
    ds_cluster_redirect_t to;
    assert_int_equal(ds_cluster_reply_kind(r, &to), DS_CLUSTER_ASK);
    assert_int_equal(to.slot, 16383);
    assert_string_equal(to.to.host, "10.1.2.3");
    assert_int_equal(to.to.port, 30006);
    freeReplyObject(r);
    r = resp("-MOVED 7 :30002\r\n"); /* empty host: the node that answered */
    assert_int_equal(ds_cluster_reply_kind(r, &to), DS_CLUSTER_MOVED);
    assert_string_equal(to.to.host, "");
    assert_int_equal(to.to.port, 30002);
    freeReplyObject(r);
    assert_true(ds_cluster_kind_fatal(DS_CLUSTER_REFUSED));
    assert_true(ds_cluster_kind_fatal(DS_CLUSTER_BADCMD));
    assert_false(ds_cluster_kind_fatal(DS_CLUSTER_MOVED));
    assert_false(ds_cluster_kind_fatal(DS_CLUSTER_TRYAGAIN));
    assert_false(ds_cluster_kind_fatal(DS_CLUSTER_CLUSTERDOWN));
}

/* The replies of one unit, decided as the client decides. */
static ds_cluster_kind_t unit_of(const char *const *texts, size_t n, ds_cluster_redirect_t *to) {
    redisReply *r[8];
    for (size_t i = 0; i < n; i++)
        r[i] = resp(texts[i]);
    ds_cluster_kind_t k = ds_cluster_unit_kind((const redisReply *const *)r, n, to);
    for (size_t i = 0; i < n; i++)
        freeReplyObject(r[i]);
    return k;
}

static void test_unit_kind(void **state) {
    (void)state;
    ds_cluster_redirect_t to;
    /* MULTI; HSET; HSET; EXEC all fine */
    const char *ok[] = {"+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "*2\r\n:1\r\n:0\r\n"};
    assert_int_equal(unit_of(ok, 4, &to), DS_CLUSTER_OK);
    /* the slot moved between MULTI and the queued commands: the queued
     * replies say MOVED, EXEC says EXECABORT; the unit is a redirect */
    const char *moved[] = {"+OK\r\n", "-MOVED 6603 127.0.0.1:30002\r\n",
                           "-MOVED 6603 127.0.0.1:30002\r\n",
                           "-EXECABORT Transaction discarded because of previous errors.\r\n"};
    memset(&to, 0, sizeof(to));
    assert_int_equal(unit_of(moved, 4, &to), DS_CLUSTER_MOVED);
    assert_int_equal(to.slot, 6603);
    assert_int_equal(to.to.port, 30002);
    /* one key of the transaction migrated: ASK on that command only */
    const char *ask[] = {"+OK\r\n", "+QUEUED\r\n", "-ASK 6603 127.0.0.1:30003\r\n",
                         "-EXECABORT Transaction discarded because of previous errors.\r\n"};
    assert_int_equal(unit_of(ask, 4, &to), DS_CLUSTER_ASK);
    assert_int_equal(to.to.port, 30003);
    /* a fatal error beats a retryable one, whatever the order */
    const char *both[] = {"+OK\r\n", "-TRYAGAIN x\r\n", "-ERR unknown command 'X'\r\n",
                          "-EXECABORT y\r\n"};
    assert_int_equal(unit_of(both, 4, NULL), DS_CLUSTER_BADCMD);
    /* a command failing inside EXEC (WRONGTYPE) */
    const char *inside[] = {"+OK\r\n", "+QUEUED\r\n", "*1\r\n-WRONGTYPE z\r\n"};
    assert_int_equal(unit_of(inside, 3, NULL), DS_CLUSTER_BADCMD);
    /* the merge itself */
    assert_int_equal(ds_cluster_kind_merge(DS_CLUSTER_EXECABORT, DS_CLUSTER_MOVED),
                     DS_CLUSTER_MOVED);
    assert_int_equal(ds_cluster_kind_merge(DS_CLUSTER_ASK, DS_CLUSTER_EXECABORT), DS_CLUSTER_ASK);
    assert_int_equal(ds_cluster_kind_merge(DS_CLUSTER_MOVED, DS_CLUSTER_ASK), DS_CLUSTER_MOVED);
    assert_int_equal(ds_cluster_kind_merge(DS_CLUSTER_OK, DS_CLUSTER_OK), DS_CLUSTER_OK);
}

/* The view the workers read replies through (ds_reply.h). */
static void test_reply_view(void **state) {
    (void)state;
    static const char text[] = "*4\r\n$3\r\nab\0\r\n:42\r\n$-1\r\n*1\r\n$9\r\nMOBILIZER\r\n";
    redisReply *r = resp_n(text, sizeof(text) - 1);
    const ds_reply_t *v = ds_reply_of(r);
    assert_int_equal(ds_reply_type(v), DS_REPLY_ARRAY);
    assert_int_equal(ds_reply_count(v), 4);
    size_t len = 99;
    const char *s = ds_reply_str(ds_reply_at(v, 0), &len);
    assert_int_equal(len, 3); /* NUL bytes kept */
    assert_memory_equal(s, "ab\0", 3);
    assert_int_equal(ds_reply_integer(ds_reply_at(v, 1)), 42);
    assert_int_equal(ds_reply_type(ds_reply_at(v, 2)), DS_REPLY_NIL);
    assert_null(ds_reply_str(ds_reply_at(v, 2), &len));
    assert_int_equal(len, 0);
    assert_true(ds_reply_is(ds_reply_at(ds_reply_at(v, 3), 0), "MOBILIZER"));
    assert_false(ds_reply_is(ds_reply_at(ds_reply_at(v, 3), 0), "MOBILIZE"));
    assert_false(ds_reply_is(ds_reply_at(ds_reply_at(v, 3), 0), "MOBILIZERS"));
    /* asking for what a reply is not */
    assert_int_equal(ds_reply_integer(ds_reply_at(v, 0)), 0);
    assert_int_equal(ds_reply_count(ds_reply_at(v, 1)), 0);
    assert_null(ds_reply_str(v, NULL));
    freeReplyObject(r);
    r = resp("-ERR boom\r\n");
    assert_int_equal(ds_reply_type(ds_reply_of(r)), DS_REPLY_ERROR);
    assert_string_equal(ds_reply_str(ds_reply_of(r), NULL), "ERR boom");
    assert_false(ds_reply_is(ds_reply_of(r), "ERR boom")); /* only a string is */
    freeReplyObject(r);
    r = resp("+OK\r\n");
    assert_int_equal(ds_reply_type(ds_reply_of(r)), DS_REPLY_STATUS);
    freeReplyObject(r);
}

UU_MAIN(NULL, NULL, cmocka_unit_test(test_crc16), cmocka_unit_test(test_keyslot),
        cmocka_unit_test(test_map_parse), cmocka_unit_test(test_format),
        cmocka_unit_test(test_cmd_parse),
        cmocka_unit_test(test_reply_kind), cmocka_unit_test(test_unit_kind),
        cmocka_unit_test(test_reply_view))
