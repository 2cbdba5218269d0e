/*
 * scoring_util.c — see scoring_util.h.  The codecs adapt the deal's and
 * the scoring unit's save/load to one signature (the scoring unit's save
 * takes a non-const unit: it sorts its dedupe ids in place, which a save
 * of a test's unit may do).  A fixture is read whole into memory.
 */
#include "scoring_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "score.h"
#include "stall.h"

void su_ev_to_ma(const su_ev_t *e, ds_ma_event_t *m, const char **sw, const char *source) {
    static const char *const accounts[] = {NULL, ""};
    memset(m, 0, sizeof(*m));
    m->event_id = e->id;
    m->occurred_at = e->t;
    m->lead_id = e->lead;
    m->account_id = e->acct_kind == SU_ACCT_SET ? e->acct : accounts[e->acct_kind];
    m->type = e->type;
    m->content_id = e->has_content ? e->content : NULL;
    m->insight_id = e->has_insight ? e->insight : NULL;
    m->content_stage = e->stage;
    for (int i = 0; i < e->nsw; i++)
        sw[i] = e->sw[i];
    m->shared_with = e->nsw ? sw : NULL;
    m->shared_with_count = (size_t)e->nsw;
    m->source = source;
}

unsigned char *su_fixture(const char *name, size_t *n) {
    const char *dir = getenv("DS_SOURCE_DIR");
    if (!dir)
        dir = DS_SOURCE_DIR; /* the tree the test was built from */
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/fixtures/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0, got;
    unsigned char *p = malloc(cap);
    assert_non_null(p);
    while ((got = fread(p + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            p = realloc(p, cap *= 2);
            assert_non_null(p);
        }
    }
    assert_false(ferror(f));
    fclose(f);
    *n = len;
    return p;
}

/* A whole deal as the watcher stores it in three keys, in one buffer:
 * 'W', the record's length (varint) and the record, the stakeholders
 * (count, strings, in the deal's order) and the dedupe ids (count, then
 * hash and time, 8 bytes each, by hash: ds_deal_changes whole).  Bytes
 * that do not start with 'W' are a record of an earlier version, which
 * holds everything itself. */
static void deal_put_id(void *opaque, uint64_t h, int64_t t) {
    ds_buf_t *ids = opaque;
    assert_int_equal(ds_buf_put_i64(ids, (int64_t)h), DS_ERR_OK);
    assert_int_equal(ds_buf_put_i64(ids, t), DS_ERR_OK);
}
static void deal_del_id(void *opaque, uint64_t h) {
    (void)opaque, (void)h;
    fail_msg("a whole write deletes nothing");
}
static ds_err_t deal_save(const void *obj, ds_buf_t *out) {
    ds_deal_t *d = (ds_deal_t *)obj; /* a whole ds_deal_changes changes nothing */
    ds_buf_t rec, ids;
    ds_buf_init(&rec, 0);
    ds_buf_init(&ids, 0);
    ds_err_t e = ds_deal_save(d, &rec);
    size_t first;
    assert_true(ds_deal_changes(d, true, &first, deal_put_id, deal_del_id, &ids));
    assert_int_equal(first, 0);
    e = e ? e : ds_buf_put_u8(out, 'W');
    e = e ? e : ds_buf_put_varint(out, rec.len);
    e = e ? e : ds_buf_append(out, rec.data, rec.len);
    e = e ? e : ds_buf_put_varint(out, ds_deal_stakeholder_count(d));
    for (size_t i = 0; !e && i < ds_deal_stakeholder_count(d); i++)
        e = ds_buf_put_str(out, ds_deal_stakeholder(d, i));
    e = e ? e : ds_buf_put_varint(out, ids.len / 16);
    e = e ? e : ds_buf_append(out, ids.data, ids.len);
    ds_buf_free(&rec);
    ds_buf_free(&ids);
    return e;
}
static void *deal_load(const void *p, size_t n, ds_err_t *err) {
    if (!n || *(const unsigned char *)p != 'W')
        return ds_deal_load(p, n, err);
    ds_reader_t r;
    ds_reader_init(&r, (const unsigned char *)p + 1, n - 1);
    uint64_t len, cnt;
    ds_deal_t *d = NULL;
    *err = DS_ERR_UNDECODABLE;
    if (ds_get_varint(&r, &len) || len > (size_t)(r.end - r.p))
        return NULL;
    if (!(d = ds_deal_load(r.p, len, err)))
        return NULL;
    r.p += len;
    if (ds_get_varint(&r, &cnt))
        goto bad;
    for (uint64_t i = 0; i < cnt; i++) {
        char *s;
        if (ds_get_str(&r, &s) || !s)
            goto bad;
        ds_err_t e = ds_deal_load_stakeholder(d, s);
        free(s);
        if (e)
            goto bad;
    }
    if (ds_get_varint(&r, &cnt))
        goto bad;
    for (uint64_t i = 0; i < cnt; i++) {
        int64_t h, t;
        if (ds_get_i64(&r, &h) || ds_get_i64(&r, &t) || ds_deal_load_seen(d, (uint64_t)h, t))
            goto bad;
    }
    if (r.p != r.end)
        goto bad;
    *err = DS_ERR_OK;
    return d;
bad:
    ds_deal_destroy(d);
    *err = DS_ERR_UNDECODABLE;
    return NULL;
}
static void deal_destroy(void *obj) {
    ds_deal_destroy(obj);
}
const su_codec_t SU_DEAL = {deal_save, deal_load, deal_destroy};

static ds_err_t unit_save(const void *obj, ds_buf_t *out) {
    return ds_score_unit_save((ds_score_unit_t *)obj, out);
}
static void *unit_load(const void *p, size_t n, ds_err_t *err) {
    return ds_score_unit_load(p, n, err);
}
static void unit_destroy(void *obj) {
    ds_score_unit_destroy(obj);
}
const su_codec_t SU_SCORE_UNIT = {unit_save, unit_load, unit_destroy};

void su_save(const su_codec_t *c, const void *obj, ds_buf_t *b) {
    ds_buf_reset(b);
    assert_int_equal(c->save(obj, b), DS_ERR_OK);
}

void *su_load(const su_codec_t *c, const ds_buf_t *b) {
    ds_err_t err = DS_ERR_OK;
    void *obj = c->load(b->data, b->len, &err);
    assert_non_null(obj);
    assert_int_equal(err, DS_ERR_OK);
    return obj;
}

void su_assert_same_bytes(const ds_buf_t *a, const ds_buf_t *b) {
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
}

void *su_load_canonical(const su_codec_t *c, const ds_buf_t *b) {
    void *obj = su_load(c, b);
    ds_buf_t again;
    ds_buf_init(&again, 0);
    su_save(c, obj, &again);
    su_assert_same_bytes(b, &again);
    ds_buf_free(&again);
    return obj;
}

void su_assert_prefixes_refused(const su_codec_t *c, const void *p, size_t n) {
    ds_err_t err = DS_ERR_OK;
    for (size_t k = 0; k < n; k++) {
        void *obj = c->load(p, k, &err);
        if (obj) {
            c->destroy(obj);
            fail_msg("the first %zu of %zu saved bytes loaded", k, n);
        }
    }
}
