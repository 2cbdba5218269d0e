/*
 * stall_store.c — a deal as stored (the deal's data: stall_int.h; its
 * rules: stall.c).
 *
 * The record (ds_deal_save, ds_deal_load) leaves out the stakeholders, and
 * the dedupe ids once there are more than SPILL_AT of them: the watcher
 * keeps those in keys of their own, and a write stores what changed of
 * them since the last (ds_deal_track, ds_deal_changes, ds_deal_written),
 * so that its size does not follow the deal's.  A record of an earlier
 * version holds them itself.
 */
#include <stdlib.h>

#include "stall_int.h"

/* ---- what a write stores of the stakeholders and the dedupe ids ----------- */

void ds_deal_track(ds_deal_t *d) {
    d->track = true;
    d->whole = true; /* what is stored is not known yet */
}

void ds_deal_kept_apart(const ds_deal_t *d, bool *stakeholders, bool *ids) {
    *stakeholders = d->side && d->stake_stored > 0;
    *ids = d->side && d->spilled;
}

ds_err_t ds_deal_load_stakeholder(ds_deal_t *d, const char *contact_id) {
    if (!d->side)
        return DS_ERR_OK; /* an earlier version's state holds them */
    uint32_t n = d->nstake;
    ds_deal_add_stakeholder(d, contact_id);
    return d->nstake > n || !contact_id || !contact_id[0] ? DS_ERR_OK : DS_ERR_NOMEM;
}

ds_err_t ds_deal_load_seen(ds_deal_t *d, uint64_t h, int64_t t) {
    if (!d->side || !d->spilled)
        return DS_ERR_OK; /* the record holds them */
    if (!h)
        return DS_ERR_UNDECODABLE;
    return ds_dedupe_put(&d->seen, h, t, &(ds_dedupe_clock_t){.all = true});
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* a sorted without repeats; its new length */
static uint32_t sort_unique(uint64_t *a, uint32_t n) {
    if (n < 2)
        return n;
    qsort(a, n, sizeof(*a), cmp_u64);
    uint32_t k = 1;
    for (uint32_t i = 1; i < n; i++)
        if (a[i] != a[k - 1])
            a[k++] = a[i];
    return k;
}

bool ds_deal_changes(ds_deal_t *d, bool whole, size_t *first_stakeholder,
                     void (*put)(void *, uint64_t, int64_t), void (*del)(void *, uint64_t),
                     void *opaque) {
    whole = whole || d->whole || !d->track;
    *first_stakeholder = whole ? 0 : d->stake_written;
    if (!d->spilled)
        return whole; /* the ids are in the record */
    if (whole) {
        for (uint32_t i = 0; i < d->seen.n; i++)
            put(opaque, d->seen.e[i].h, d->seen.e[i].t);
        return true;
    }
    d->ns_add = sort_unique(d->s_add, d->ns_add);
    d->ns_del = sort_unique(d->s_del, d->ns_del);
    for (uint32_t i = 0; i < d->ns_add; i++) {
        const ds_dedupe_entry_t *x = ds_dedupe_find(&d->seen, d->s_add[i]);
        if (x) /* else dropped since: among s_del */
            put(opaque, x->h, x->t);
    }
    for (uint32_t i = 0; i < d->ns_del; i++)
        if (!ds_dedupe_find(&d->seen, d->s_del[i])) /* else put again since */
            del(opaque, d->s_del[i]);
    return false;
}

void ds_deal_written(ds_deal_t *d) {
    d->stake_written = d->nstake;
    d->ns_add = d->ns_del = 0;
    d->whole = false;
    if (d->cs_add > 64) { /* a burst's room is not kept */
        free(d->s_add);
        d->s_add = NULL;
        d->cs_add = 0;
    }
    if (d->cs_del > 64) {
        free(d->s_del);
        d->s_del = NULL;
        d->cs_del = 0;
    }
}

/* Version 2 (version 1 still loads) writes max_t first and every other
 * time relative to it (ds_buf_put_time: small, the deal's
 * times lie within days of it), as the scorer's state does: less to
 * format, send and store at each write.  Version 3 (versions 1 and 2
 * still load) leaves out the stakeholders and the dedupe ids, which the
 * watcher keeps in keys of their own and writes as they change
 * (ds_deal_changes), and keeps the dedupe window's clock instead. */
#define VERSION 3

static ds_err_t get_t(ds_reader_t *r, int ver, int64_t base, int64_t *t) {
    return ver == 1 ? ds_get_i64(r, t) : ds_get_time(r, base, t);
}

ds_err_t ds_deal_save(const ds_deal_t *d, ds_buf_t *o) {
    int64_t b = d->max_t;
    ds_err_t e = ds_buf_put_u8(o, VERSION);
    e = e ? e : ds_buf_put_str(o, d->id);
    e = e ? e : ds_buf_put_str(o, d->account_id);
    e = e ? e : ds_buf_put_str(o, d->owner_id);
    e = e ? e : ds_buf_put_u8(o, d->opened);
    e = e ? e : ds_buf_put_u8(o, d->outcome);
    e = e ? e : ds_buf_put_u8(o, d->mobilizer_known);
    e = e ? e : ds_buf_put_varint(o, (uint64_t)d->reported);
    e = e ? e : ds_buf_put_svarint(o, b);
    e = e ? e : ds_buf_put_time(o, b, d->opened_at);
    e = e ? e : ds_buf_put_time(o, b, d->last_buyer);
    e = e ? e : ds_buf_put_time(o, b, d->last_seller);
    e = e ? e : ds_buf_put_varint(o, (uint64_t)d->unanswered);
    e = e ? e : ds_buf_put_varint(o, d->nsigs);
    for (uint32_t i = 0; !e && i < d->nsigs; i++) {
        e = ds_buf_put_str(o, d->sigs[i].code);
        e = e ? e : ds_buf_put_time(o, b, d->sigs[i].at);
    }
    for (int k = 0; !e && k < NK; k++) {
        e = ds_buf_put_u8(o, d->al[k].open);
        e = e ? e : ds_buf_put_varint(o, (uint64_t)d->al[k].episode);
        e = e ? e : ds_buf_put_varint(o, (uint64_t)d->al[k].level);
        e = e ? e : ds_buf_put_time(o, b, d->al[k].last_notified);
    }
    e = e ? e : ds_buf_put_svarint(o, d->seen_win);
    e = e ? e : ds_buf_put_i64(o, (int64_t)d->seen_last);
    e = e ? e : ds_buf_put_u8(o, d->seen_exact);
    e = e ? e : ds_buf_put_varint(o, d->compact_at);
    e = e ? e : ds_buf_put_u8(o, d->spilled);
    e = e ? e : ds_buf_put_varint(o, d->nstake);
    if (!e && !d->spilled) /* every id, by hash: the set as it is */
        e = ds_dedupe_save(&d->seen, &(ds_dedupe_clock_t){.all = true}, b, o);
    return e;
}

#define GET(x)                                                                                     \
    do {                                                                                           \
        if ((x))                                                                                   \
            goto bad;                                                                              \
    } while (0)

ds_deal_t *ds_deal_load(const void *p, size_t n, ds_err_t *err) {
    ds_reader_t r;
    ds_reader_init(&r, p, n);
    ds_deal_t *d = calloc(1, sizeof(*d));
    if (!d) {
        *err = DS_ERR_NOMEM;
        return NULL;
    }
    uint8_t ver, u8;
    uint64_t v, cnt;
    GET(ds_get_u8(&r, &ver));
    GET(ver < 1 || ver > VERSION);
    GET(ds_get_str(&r, &d->id));
    GET(!d->id);
    GET(ds_get_str(&r, &d->account_id));
    GET(ds_get_str(&r, &d->owner_id));
    GET(ds_get_u8(&r, &d->opened));
    GET(ds_get_u8(&r, &d->outcome));
    GET(ds_get_u8(&r, &d->mobilizer_known));
    GET(ds_get_varint(&r, &v) || v >= DS_PS__COUNT);
    d->reported = (int32_t)v;
    if (ver > 1)
        GET(ds_get_svarint(&r, &d->max_t));
    /* version 1 has max_t after these: its times are absolute */
    GET(get_t(&r, ver, d->max_t, &d->opened_at));
    GET(get_t(&r, ver, d->max_t, &d->last_buyer));
    GET(get_t(&r, ver, d->max_t, &d->last_seller));
    GET(ds_get_varint(&r, &v));
    d->unanswered = (int32_t)v;
    if (ver == 1)
        GET(ds_get_i64(&r, &d->max_t));
    GET(ds_get_varint(&r, &cnt) || cnt > n);
    d->sigs = calloc(cnt ? cnt : 1, sizeof(*d->sigs));
    GET(!d->sigs);
    for (uint64_t i = 0; i < cnt; i++) {
        GET(ds_get_str(&r, &d->sigs[i].code) || !d->sigs[i].code);
        d->nsigs++;
        GET(get_t(&r, ver, d->max_t, &d->sigs[i].at));
    }
    ds_dedupe_init(&d->seen, false);
    d->compact_at = DS_DEDUPE_COMPACT_MIN;
    if (ver < 3) {
        GET(ds_get_varint(&r, &cnt) || cnt > n);
        d->stake = calloc(cnt ? cnt : 1, sizeof(char *));
        GET(!d->stake);
        d->cstake = cnt ? (uint32_t)cnt : 1;
        for (uint64_t i = 0; i < cnt; i++) {
            GET(ds_get_str(&r, &d->stake[i]) || !d->stake[i]);
            d->nstake++;
        }
        ds_deal_stake_reindex(d);
    }
    for (int k = 0; k < NK; k++) {
        GET(ds_get_u8(&r, &u8));
        d->al[k].open = u8;
        GET(ds_get_varint(&r, &v));
        d->al[k].episode = (int32_t)v;
        GET(ds_get_varint(&r, &v));
        d->al[k].level = (int32_t)v;
        GET(get_t(&r, ver, d->max_t, &d->al[k].last_notified));
    }
    if (ver < 3) {
        GET(ds_dedupe_load(&d->seen, &r, d->max_t, ver == 1));
        /* what was saved is the window */
        d->seen_exact = true;
        if (d->seen.n >= DS_DEDUPE_COMPACT_MIN / 2)
            d->compact_at = 2 * d->seen.n;
        d->spilled = d->seen.n > SPILL_AT;
    } else {
        int64_t last;
        GET(ds_get_svarint(&r, &d->seen_win));
        GET(ds_get_i64(&r, &last));
        d->seen_last = (uint64_t)last;
        GET(ds_get_u8(&r, &u8));
        d->seen_exact = u8 != 0;
        GET(ds_get_varint(&r, &v) || !v || v > UINT32_MAX);
        d->compact_at = (uint32_t)v;
        GET(ds_get_u8(&r, &u8) || u8 > 1);
        d->spilled = u8;
        GET(ds_get_varint(&r, &v) || v > UINT32_MAX);
        d->stake_stored = (uint32_t)v;
        if (!d->spilled)
            GET(ds_dedupe_load(&d->seen, &r, d->max_t, false));
        d->side = true;
    }
    GET(r.p != r.end);
    return d;
bad:
    ds_deal_destroy(d);
    *err = DS_ERR_UNDECODABLE;
    return NULL;
}
