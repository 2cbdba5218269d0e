/*
 * score_container.c — a whole unit as one buffer: every lead's record,
 * the attendance fields, the dictionary, the mobilizers and the account's
 * record, in the stored formats of score_store.c.  For tests and tools
 * (the worker stores units piece by piece); ds_score_unit_load() also
 * reads the whole-unit blobs of earlier versions (score_legacy.c).  The
 * bytes are canonical: a unit loaded from them saves to the same bytes.
 *
 *   "DSS3", key, is_account, dictionary (strings), account record,
 *   insight sums (dictionary index, value), leads (id, record),
 *   mobilizers (ids), attendance indexes (content, fields (lead, value)
 *   by lead id)
 */
#include <stdlib.h>
#include <string.h>

#include "score_int.h"

#define CONTAINER_MAGIC "DSS3"

/* ---- the whole unit as one buffer ------------------------------------------------ */

static int cmp_strp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

ds_err_t ds_score_unit_save(ds_score_unit_t *u, ds_buf_t *out) {
    if (!u || !out)
        return DS_ERR_INVAL;
    ds_buf_t rec, tmp;
    ds_buf_init(&rec, 0);
    ds_buf_init(&tmp, 0);
    ds_err_t e = DS_ERR_OK;
#define TRY(x)                                                                                     \
    do {                                                                                           \
        if (!e)                                                                                    \
            e = (x);                                                                               \
    } while (0)
    TRY(ds_buf_append(out, CONTAINER_MAGIC, 4));
    TRY(ds_buf_put_str(out, u->key));
    TRY(ds_buf_put_u8(out, u->is_account));
    /* leads first: they assign dictionary entries the account refers to */
    uint32_t nl = 0;
    for (uint32_t i = 0; i < u->nleads; i++)
        nl += 1;
    ds_buf_t leads;
    ds_buf_init(&leads, 0);
    for (uint32_t i = 0; i < u->nleads && !e; i++) {
        const lead_t *L = u->leads[i];
        ds_buf_reset(&rec);
        TRY(u->is_account ? ds_score_encode_lead(u, L, true, &rec)
                           : ds_score_encode_lone(u, L, true, &rec, &tmp));
        TRY(ds_score_put_sid(u, &leads, L->id));
        TRY(ds_buf_put_strn(&leads, (const char *)rec.data, rec.len));
    }
    ds_buf_t acct, sums;
    ds_buf_init(&acct, 0);
    ds_buf_init(&sums, 0);
    if (u->is_account)
        TRY(ds_score_encode_account(u, &acct));
    /* the insight sums, keyed by dictionary index (assigning as needed) */
    uint32_t nsums = 0;
    for (uint32_t k = 0; k < u->nagg && !e; k++) {
        ds_buf_reset(&rec);
        TRY(ds_score_encode_sum(&u->agg[k], &rec));
        if (!rec.len)
            continue;
        TRY(ds_score_dict_assign(u, u->agg[k].insight) ? DS_ERR_NOMEM : DS_ERR_OK);
        TRY(ds_buf_put_varint(&sums, (uint64_t)ds_score_idx(&u->dictmap, u->agg[k].insight)));
        TRY(ds_buf_put_strn(&sums, (const char *)rec.data, rec.len));
        nsums++;
    }
    TRY(ds_buf_put_varint(out, u->ndict));
    for (uint32_t i = 0; i < u->ndict && !e; i++)
        TRY(ds_score_put_sid(u, out, u->dict[i]));
    TRY(ds_buf_put_strn(out, (const char *)acct.data, acct.len));
    TRY(ds_buf_put_varint(out, nsums));
    TRY(ds_buf_append(out, sums.data, sums.len));
    TRY(ds_buf_put_varint(out, nl));
    TRY(ds_buf_append(out, leads.data, leads.len));
    TRY(ds_buf_put_varint(out, u->nmob));
    for (uint32_t i = 0; i < u->nmob && !e; i++)
        TRY(ds_score_put_sid(u, out, u->mob[i]));
    /* attendance indexes, as their stored fields: one per attendee, by id */
    TRY(ds_buf_put_varint(out, u->natts));
    for (uint32_t k = 0; k < u->natts && !e; k++) {
        const attidx_t *a = &u->atts[k];
        TRY(ds_score_put_sid(u, out, a->content));
        const char **ids = calloc(a->nall + 1, sizeof(*ids));
        if (!ids) {
            TRY(DS_ERR_NOMEM);
            break;
        }
        uint32_t nf = 0;
        for (uint32_t i = 0; i < a->nall; i++)
            ids[nf++] = ds_score_str(u, a->all[i].lead);
        qsort(ids, nf, sizeof(*ids), cmp_strp);
        uint32_t nd = 0;
        for (uint32_t i = 0; i < nf; i++)
            if (!nd || strcmp(ids[nd - 1], ids[i]))
                ids[nd++] = ids[i];
        TRY(ds_buf_put_varint(out, nd));
        for (uint32_t i = 0; i < nd && !e; i++) {
            uint32_t sid = ds_score_lookup(u, ids[i], strlen(ids[i]));
            int32_t li = u->t.strs[sid].lead;
            ds_buf_reset(&rec);
            if (li >= 0)
                TRY(ds_score_encode_field(u->leads[li], a->content, &rec));
            TRY(ds_score_put_sid(u, out, sid));
            TRY(ds_buf_put_strn(out, (const char *)rec.data, rec.len));
        }
        free(ids);
    }
#undef TRY
    ds_buf_free(&leads);
    ds_buf_free(&acct);
    ds_buf_free(&sums);
    ds_buf_free(&rec);
    ds_buf_free(&tmp);
    return e;
}

/* A length-prefixed byte string of the container (not copied). */
static bool get_bytes(ds_reader_t *r, const unsigned char **p, size_t *n) {
    uint64_t len;
    if (ds_get_varint(r, &len) || len < 1 || len - 1 > (uint64_t)(r->end - r->p))
        return false;
    *p = r->p;
    *n = (size_t)(len - 1);
    r->p += len - 1;
    return true;
}

static char *dup_bytes(const unsigned char *p, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

ds_score_unit_t *ds_score_unit_load(const void *p, size_t n, ds_err_t *err) {
    ds_err_t dummy;
    if (!err)
        err = &dummy;
    *err = DS_ERR_UNDECODABLE;
    if (!p || n < 4)
        return NULL;
    if (memcmp(p, CONTAINER_MAGIC, 4))
        return ds_score_unit_load_legacy(p, n, NULL, err);
    ds_reader_t r;
    ds_reader_init(&r, (const unsigned char *)p + 4, n - 4);
    const unsigned char *b;
    size_t bn;
    uint8_t is_acct;
    if (!get_bytes(&r, &b, &bn) || ds_get_u8(&r, &is_acct) || is_acct > 1)
        return NULL;
    char *key = dup_bytes(b, bn);
    ds_score_unit_t *u = key ? ds_score_unit_new(key, is_acct) : NULL;
    free(key);
    if (!u) {
        *err = DS_ERR_NOMEM;
        return NULL;
    }
    ds_err_t e = DS_ERR_OK;
    uint64_t cnt;
    bool ok = ds_get_varint(&r, &cnt) == 0 && cnt <= (uint64_t)(r.end - r.p);
    for (uint64_t i = 0; ok && !e && i < cnt; i++) {
        ok = get_bytes(&r, &b, &bn);
        if (ok)
            e = ds_score_unit_put_dict(u, i, (const char *)b, bn);
    }
    ok = ok && get_bytes(&r, &b, &bn);
    if (ok && !e && u->is_account)
        e = ds_score_unit_put_account(u, b, bn);
    else if (ok && bn)
        ok = false;
    if (!u->is_account)
        u->dict_written = 0; /* a lone lead's dictionary lives in its record */
    ok = ok && ds_get_varint(&r, &cnt) == 0 && cnt <= (uint64_t)(r.end - r.p);
    for (uint64_t i = 0; ok && !e && i < cnt; i++) {
        uint64_t idx;
        ok = ds_get_varint(&r, &idx) == 0 && get_bytes(&r, &b, &bn);
        if (ok)
            e = ds_score_unit_put_sum(u, idx, b, bn);
    }
    ok = ok && ds_get_varint(&r, &cnt) == 0 && cnt <= (uint64_t)(r.end - r.p);
    for (uint64_t i = 0; ok && !e && i < cnt; i++) {
        const unsigned char *idp, *rp;
        size_t idn, rn;
        ok = get_bytes(&r, &idp, &idn) && get_bytes(&r, &rp, &rn);
        char *id = ok ? dup_bytes(idp, idn) : NULL;
        if (ok && !id)
            e = DS_ERR_NOMEM;
        if (id && !e) {
            uint32_t sid = ds_score_lookup(u, id, idn);
            if (sid != NOID && u->t.strs[sid].lead >= 0)
                ok = false; /* a lead twice */
            else
                e = ds_score_unit_put_lead(u, id, rp, rn);
        }
        free(id);
    }
    ok = ok && ds_get_varint(&r, &cnt) == 0 && cnt <= (uint64_t)(r.end - r.p);
    for (uint64_t i = 0; ok && !e && i < cnt; i++) {
        ok = get_bytes(&r, &b, &bn);
        char *id = ok ? dup_bytes(b, bn) : NULL;
        if (id)
            e = ds_score_unit_put_mobilizer(u, id, bn);
        else if (ok)
            e = DS_ERR_NOMEM;
        free(id);
    }
    ok = ok && ds_get_varint(&r, &cnt) == 0 && cnt <= (uint64_t)(r.end - r.p);
    for (uint64_t i = 0; ok && !e && i < cnt; i++) {
        ok = get_bytes(&r, &b, &bn);
        char *content = ok ? dup_bytes(b, bn) : NULL;
        uint64_t nf = 0;
        ok = ok && content && ds_get_varint(&r, &nf) == 0 && nf <= (uint64_t)(r.end - r.p);
        for (uint64_t k = 0; ok && !e && k < nf; k++) {
            const unsigned char *lp, *vp;
            size_t ln, vn;
            ok = get_bytes(&r, &lp, &ln) && get_bytes(&r, &vp, &vn);
            char *lead = ok ? dup_bytes(lp, ln) : NULL;
            if (lead && vn)
                e = ds_score_unit_put_attendance(u, content, lead, vp, vn);
            free(lead);
        }
        if (ok && !e && content)
            e = ds_score_unit_attendance_done(u, content);
        free(content);
    }
    if (!ok || e || r.p != r.end) {
        *err = e == DS_ERR_NOMEM ? DS_ERR_NOMEM : DS_ERR_UNDECODABLE;
        ds_score_unit_destroy(u);
        return NULL;
    }
    u->complete = true; /* the container holds everything (but missing) */
    u->nmchg = 0;
    *err = DS_ERR_OK;
    return u;
}
