/*
 * scoring_util.h — what the scoring and stall tests (test_score,
 * test_stall, test_score_prop) and the redis-v2 fixture's generator
 * (tests/fixtures/make_redis_v2.c) need the same way:
 *   - a generated MarketingEvent held in fixed buffers (su_ev_t), and the
 *     ds_ma_event_t that points into it;
 *   - saved state: a fixture file read whole, and the checks a save/load
 *     format must pass (a load saves back to the same bytes, no proper
 *     prefix of a save loads), for any type through su_codec_t.
 *
 * The checks fail the running cmocka case, so they are for the test's
 * main thread only.  Nothing here keeps state between calls.
 */
#ifndef DS_SCORING_UTIL_H
#define DS_SCORING_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_err.h"
#include "events.h"

/* ---- generated events ---------------------------------------------------- */

#define SU_ID 64 /* bytes of each id buffer, NUL included */
#define SU_NSW 10 /* colleagues a share names at the most */

/** How an event names its account. */
enum { SU_ACCT_NULL = 0, SU_ACCT_EMPTY = 1, SU_ACCT_SET = 2 };

/** A MarketingEvent whose strings live in the record (it can be copied
 *  and kept).  content_id and insight_id count only when has_content and
 *  has_insight; stage is DS_NONE or a ContentStage; unit is the
 *  generator's own (test_score_prop's scoring unit), not part of the
 *  event. */
typedef struct su_ev {
    char id[SU_ID], lead[SU_ID], acct[SU_ID], content[SU_ID], insight[SU_ID];
    char sw[SU_NSW][SU_ID];
    int nsw;
    int type, stage;
    int acct_kind; /* SU_ACCT_* */
    bool has_content, has_insight;
    int64_t t;
    int unit;
} su_ev_t;

/** m becomes the event e describes, its strings pointing into e;
 *  sw (SU_NSW entries) receives the shared_with pointers. */
void su_ev_to_ma(const su_ev_t *e, ds_ma_event_t *m, const char **sw, const char *source);

/* ---- saved state ----------------------------------------------------------- */

/** The bytes of tests/fixtures/<name> under $DS_SOURCE_DIR (else the
 *  source tree the test was built from), malloc'ed; *n gets their length.
 *  The case fails if the file cannot be read. */
unsigned char *su_fixture(const char *name, size_t *n);

/** A type's save and load (ds_deal_t, ds_score_unit_t). */
typedef struct su_codec {
    ds_err_t (*save)(const void *obj, ds_buf_t *out);
    void *(*load)(const void *p, size_t n, ds_err_t *err);
    void (*destroy)(void *obj);
} su_codec_t;

extern const su_codec_t SU_DEAL, SU_SCORE_UNIT;

/** obj saved into b (emptied first); the case fails if the save does. */
void su_save(const su_codec_t *c, const void *obj, ds_buf_t *b);
/** The object b's bytes load to (the caller destroys it); the case fails
 *  unless they load without error. */
void *su_load(const su_codec_t *c, const ds_buf_t *b);
/** su_load, and the loaded object must save to b's bytes again. */
void *su_load_canonical(const su_codec_t *c, const ds_buf_t *b);
/** The case fails unless a and b hold the same bytes. */
void su_assert_same_bytes(const ds_buf_t *a, const ds_buf_t *b);
/** The case fails unless every proper prefix of p[0..n) is refused. */
void su_assert_prefixes_refused(const su_codec_t *c, const void *p, size_t n);

#endif
