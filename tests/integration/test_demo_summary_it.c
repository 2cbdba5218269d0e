/*
 * test_demo_summary_it.c — the demo's picture reads Redis's documented
 * layout right: every deal hash over several SCAN pages, the account
 * hashes and not the lead hashes beside them (those are counted), no lone
 * lead, no watermark key and no key of another prefix; a key of the wrong
 * type is passed over; a Redis that is gone is an error, not a picture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "demo_summary.h"
#include "harness.h"

static ds_h_env_t env;

static void cmd(const char *fmt, const char *arg) {
    redisReply *r = ds_h_redis(&env, fmt, arg);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

static char *read_and_draw(redisContext *c, int *rc, char *err, size_t errn) {
    ds_demo_summary_t *s = ds_demo_summary_new();
    *rc = ds_demo_summary_read_redis(s, c, "ds:", err, errn);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    ds_demo_summary_print(s, m);
    fclose(m);
    ds_demo_summary_destroy(s);
    return text;
}

static void test_reads_the_layout(void **state) {
    (void)state;
    /* 2,500 open deals, more than one SCAN page: 1,000 reported past their
     * verified stage with one alert each, 1,500 where rep and buyer agree */
    cmd("EVAL %s 0",
        "for i = 1, 2500 do "
        "  local rep, al = 'RECOGNIZE_NEED', '' "
        "  if i <= 1000 then rep, al = 'NEGOTIATE', 'UNVERIFIED_STAGE:1' end "
        "  redis.call('HSET', 'ds:{deal:D-' .. i .. '}', 'deal_id', 'D-' .. i, 'state', 'open', "
        "    'reported_stage', rep, 'verified_stage', "
        "    i <= 1000 and 'DEFINE_CRITERIA' or 'RECOGNIZE_NEED', 'open_alerts', al) "
        "end");
    cmd("HSET ds:{deal:won-1} state won reported_stage NEGOTIATE verified_stage %s", "IMPLEMENT");
    cmd("SET ds:{deal:not-a-hash} %s", "x");
    cmd("ZADD ds:{wpart:crm.events:0}:deadlines 1 %s", "D-1");
    cmd("HSET ds:{wpart:crm.events:0} watermark %s", "1");
    cmd("HSET other:{deal:D-x} state open reported_stage NEGOTIATE verified_stage %s",
        "RECOGNIZE_NEED");
    cmd("HSET ds:{acct:A-1} account_id A-1 consensus 55.6 engaged_stakeholders 4 "
        "confronted_stakeholders 3 top_insight ins mobilizers %s",
        "L-1,L-2");
    cmd("HSET ds:{acct:A-1}:lead:L-1 lead_id L-1 account_id %s", "A-1");
    cmd("HSET ds:{acct:A-1}:lead:L-2 lead_id L-2 account_id %s", "A-1");
    cmd("SADD ds:{acct:A-1}:leads L-1 %s", "L-2");
    cmd("HSET ds:{lead:L-9} lead_id L-9 confront %s", "12");
    cmd("HSET ds:{acct:A-2} checkpoint %s", "0:1"); /* state only, no scores yet */

    redisContext *c = redisConnect("127.0.0.1", env.redis_port);
    assert_true(c && !c->err);
    int rc;
    char err[256] = "";
    char *t = read_and_draw(c, &rc, err, sizeof(err));
    assert_int_equal(rc, 0);
    if (!strstr(t, " 2501 deals (2500 open, 1 won, 0 lost), 1 accounts, 2 leads scored"))
        fail_msg("heading:\n%s", t);
    assert_non_null(strstr(t, " 1000 of 2500 open deals: the rep reports a later stage"));
    assert_non_null(strstr(t, "OPEN ALERTS BY KIND: 1000 open on 1000 of the 2500 open deals"));
    assert_non_null(strstr(t, " A-1            55.6%  ######....       3 of 4  ins"
                              "                 L-1, L-2"));
    free(t);

    /* Redis gone: an error, and the reason */
    ds_h_stop_redis(&env);
    t = read_and_draw(c, &rc, err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "SCAN"));
    free(t);
    redisFree(c);
}

DS_H_MAIN(&env, 1, cmocka_unit_test(test_reads_the_layout))
