/*
 * score_apart.c — what a unit keeps of a lead apart from its record, once
 * it grew past what a record should carry at each write: its dedupe ids
 * (past DS_IDS_APART_AT in its window) and its memory of content, the
 * repeats and share pairs (past DS_MEM_APART_AT).  Each is a hash of the
 * lead's own in Redis (the scorer's layout); here, what a write passes of
 * them (all after they moved, were read or the writer reconnected; else
 * what the unit's idlog and memlog say changed) and what a read gives
 * back (checked: a hash Redis lost is refused, not taken as empty); and
 * the memory as the rules change it (score.c): each change logged, and
 * the repeats of a lead whose memory is apart found by an index.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ds_fmt.h"
#include "score_int.h"

/* The resident lead of lead_id, or NULL. */
static lead_t *resident(const ds_score_unit_t *u, const char *lead_id) {
    uint32_t id = ds_score_lookup(u, lead_id, strlen(lead_id));
    int32_t li = id == NOID ? -1 : u->t.strs[id].lead;
    return li < 0 ? NULL : u->leads[li];
}

/* The first of n log entries of sz bytes (sorted by the intern id at
 * `at` in each, first) that is lead's, or n. */
static uint32_t first_of(const void *base, uint32_t n, size_t sz, size_t at, uint32_t lead) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, x;
        memcpy(&x, (const char *)base + (size_t)mid * sz + at, sizeof(x));
        if (x < lead)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- its ids ---------------------------------------------------------------- */

static int cmp_idlog(const void *a, const void *b) {
    const idlog_t *x = a, *y = b;
    if (x->lead != y->lead)
        return x->lead < y->lead ? -1 : 1;
    return x->h < y->h ? -1 : x->h > y->h;
}

/* What changed of lead L's ids kept apart, to w->ids: all of them after
 * they moved apart, were marked so (ds_score_unit_mark_all_dirty) or were
 * last written in another epoch of the writer; else each id of the
 * unit's idlog (sorted by the caller) as L holds it now: its
 * entry, or DS_SCORE_ID_DROPPED.  Costs what changed (or, whole, the
 * lead's ids). */
static ds_err_t write_ids(ds_score_unit_t *u, lead_t *L, const ds_score_writer_t *w) {
    if ((L->ids & (IDS_APART | IDS_MISSING)) != IDS_APART || !w->ids)
        return DS_ERR_OK; /* in the record, or never read: nothing changed;
                           * or a writer that stores no ids (views) */
    bool whole = (L->ids & IDS_WHOLE) || L->ids_epoch != (uint16_t)w->epoch;
    L->ids &= (uint8_t)~IDS_WHOLE;
    L->ids_epoch = (uint16_t)w->epoch;
    if (whole) {
        w->ids(w->opaque, ds_score_str(u, L->id), true, L->dd.e, L->dd.n);
        return DS_ERR_OK;
    }
    uint32_t lo = first_of(u->idlog, u->nidlog, sizeof(*u->idlog), offsetof(idlog_t, lead), L->id);
    uint32_t n = 0;
    for (uint32_t i = lo; i < u->nidlog && u->idlog[i].lead == L->id; i++)
        n += i == lo || u->idlog[i].h != u->idlog[i - 1].h;
    if (!n)
        return DS_ERR_OK;
    ds_dedupe_entry_t *ch = malloc(n * sizeof(*ch));
    if (!ch)
        return DS_ERR_NOMEM;
    n = 0;
    for (uint32_t i = lo; i < u->nidlog && u->idlog[i].lead == L->id; i++) {
        if (i != lo && u->idlog[i].h == u->idlog[i - 1].h)
            continue;
        const ds_dedupe_entry_t *x = ds_dedupe_find(&L->dd, u->idlog[i].h);
        ch[n++] = x ? *x : (ds_dedupe_entry_t){u->idlog[i].h, DS_SCORE_ID_DROPPED};
    }
    w->ids(w->opaque, ds_score_str(u, L->id), false, ch, n);
    free(ch);
    return DS_ERR_OK;
}

static int cmp_entry(const void *a, const void *b) {
    uint64_t x = ((const ds_dedupe_entry_t *)a)->h, y = ((const ds_dedupe_entry_t *)b)->h;
    return x < y ? -1 : x > y;
}

ds_err_t ds_score_unit_put_ids(ds_score_unit_t *u, const char *lead_id, const ds_dedupe_entry_t *e,
                               size_t n) {
    if (!u || !lead_id || (n && !e))
        return DS_ERR_INVAL;
    lead_t *L = resident(u, lead_id);
    if (!L || !(L->ids & IDS_MISSING))
        return DS_ERR_OK; /* not in memory, or its ids are */
    /* never empty: the id of the lead's latest event stays in its window */
    if (!n)
        return DS_ERR_UNDECODABLE;
    ds_dedupe_entry_t *v = malloc(n * sizeof(*v));
    if (!v)
        return DS_ERR_NOMEM;
    memcpy(v, e, n * sizeof(*v));
    qsort(v, n, sizeof(*v), cmp_entry); /* put in order: each one appended */
    ds_err_t err = DS_ERR_OK;
    for (size_t i = 0; i < n && !err; i++) {
        if (!v[i].h || v[i].t == DS_SCORE_ID_DROPPED || (i && v[i].h == v[i - 1].h))
            err = DS_ERR_UNDECODABLE; /* 0, or listed twice */
        else
            err = ds_dedupe_put(&L->dd, v[i].h, v[i].t, &(ds_dedupe_clock_t){.all = true});
    }
    free(v);
    if (err) { /* nothing half read stays */
        ds_dedupe_free(&L->dd);
        return err;
    }
    L->ids &= (uint8_t)~IDS_MISSING;
    u->missing--;
    return DS_ERR_OK;
}


/* ---- its repeats and shares ------------------------------------------------ */

/* The field of a repeat of (content, type): "r<type>:<content>", or
 * "r<type>" without content; of a share pair (content, colleague):
 * "s<length of content>:<content><colleague>", or "s:<colleague>". */
ds_err_t ds_score_mem_field(const ds_score_unit_t *u, bool share, uint32_t content,
                            uint32_t other, ds_buf_t *out) {
    char num[DS_FMT_INT_MAX];
    DS_TRY(ds_buf_append(out, share ? "s" : "r", 1));
    if (!share) {
        ds_fmt_i64(num, other);
        DS_TRY(ds_buf_append(out, num, strlen(num)));
    } else if (content != NOID) {
        ds_fmt_i64(num, ds_score_strlen(u, content));
        DS_TRY(ds_buf_append(out, num, strlen(num)));
    }
    if (share || content != NOID)
        DS_TRY(ds_buf_append(out, ":", 1));
    if (content != NOID)
        DS_TRY(ds_buf_append(out, ds_score_str(u, content), ds_score_strlen(u, content)));
    if (share)
        DS_TRY(ds_buf_append(out, ds_score_str(u, other), ds_score_strlen(u, other)));
    return DS_ERR_OK;
}

/* A field's value: a repeat's time in decimal ms, a share's "1". */
static ds_err_t mem_value(bool share, int64_t t, ds_buf_t *out) {
    char num[DS_FMT_INT_MAX] = "1";
    if (!share)
        ds_fmt_i64(num, t);
    return ds_buf_append(out, num, strlen(num));
}

static int cmp_memlog(const void *a, const void *b) {
    const memlog_t *x = a, *y = b;
    if (x->lead != y->lead)
        return x->lead < y->lead ? -1 : 1;
    if (x->share != y->share)
        return x->share < y->share ? -1 : 1;
    if (x->content != y->content)
        return x->content < y->content ? -1 : 1;
    if (x->other != y->other)
        return x->other < y->other ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool memlog_same(const memlog_t *x, const memlog_t *y) {
    return x->lead == y->lead && x->share == y->share && x->content == y->content &&
           x->other == y->other;
}

/* Fields built in one buffer, then pointed at (the buffer may move while
 * they are built). */
typedef struct fields {
    ds_buf_t b;
    size_t *off; /* per field: key start, value start, value end */
    ds_score_field_t *f;
    uint32_t n, cap;
} fields_t;

static ds_err_t fields_add(fields_t *fs, const ds_score_unit_t *u, bool share, uint32_t content,
                           uint32_t other, int64_t t) {
    if (ENSURE(fs->off, fs->cap, 3 * (uint64_t)fs->n + 3, 12))
        return DS_ERR_NOMEM;
    size_t *o = fs->off + 3 * (size_t)fs->n;
    o[0] = fs->b.len;
    DS_TRY(ds_score_mem_field(u, share, content, other, &fs->b));
    o[1] = fs->b.len;
    DS_TRY(mem_value(share, t, &fs->b));
    o[2] = fs->b.len;
    fs->n++;
    return DS_ERR_OK;
}

static ds_err_t fields_done(fields_t *fs) {
    if (!(fs->f = malloc((fs->n ? fs->n : 1) * sizeof(*fs->f))))
        return DS_ERR_NOMEM;
    const char *p = (const char *)fs->b.data;
    for (uint32_t i = 0; i < fs->n; i++) {
        const size_t *o = fs->off + 3 * (size_t)i;
        fs->f[i] = (ds_score_field_t){p + o[0], p + o[1], o[1] - o[0], o[2] - o[1]};
    }
    return DS_ERR_OK;
}

/* What changed of lead L's repeats and shares kept apart, to w->mem: all
 * of them after they moved apart, were marked so or were last written in
 * another epoch of the writer (none, deleting the hash, after an
 * unsubscribe took them back); else each one the unit's memlog (sorted
 * by the caller) set, at its last value.  Costs what changed (or, whole,
 * the lead's memory). */
static ds_err_t write_mem(ds_score_unit_t *u, lead_t *L, const ds_score_writer_t *w) {
    if (!w->mem || (L->mem & IDS_MISSING) || !(L->mem & (IDS_APART | MEM_GONE)))
        return DS_ERR_OK; /* in the record, or never read: nothing changed;
                           * or a writer that stores no memory (views) */
    bool whole = (L->mem & (IDS_WHOLE | MEM_GONE)) || L->mem_epoch != (uint16_t)w->epoch;
    if (!(L->mem & IDS_APART)) { /* an unsubscribe took them back */
        w->mem(w->opaque, ds_score_str(u, L->id), true, NULL, 0);
        L->mem = 0;
        return DS_ERR_OK;
    }
    fields_t fs = {.n = 0};
    ds_buf_init(&fs.b, 0);
    ds_err_t e = DS_ERR_OK;
    if (whole) {
        for (uint32_t i = 0; i < L->nrep && !e; i++)
            e = fields_add(&fs, u, false, L->rep[i].content, L->rep[i].type, L->rep[i].t);
        for (uint32_t i = 0; i < L->nshc && !e; i++)
            e = fields_add(&fs, u, true, L->shc[i].content, L->shc[i].colleague, 0);
    } else {
        const memlog_t *log = u->ma ? u->ma->log : NULL;
        uint32_t n = u->ma ? u->ma->n : 0;
        uint32_t lo = first_of(log, n, sizeof(*log), offsetof(memlog_t, lead), L->id);
        for (uint32_t i = lo; i < n && log[i].lead == L->id && !e; i++) {
            const memlog_t *x = &log[i];
            if (i + 1 < n && memlog_same(x, &log[i + 1]))
                continue; /* the last of a key is its value */
            e = fields_add(&fs, u, x->share, x->content, x->other, x->t);
        }
    }
    if (!e)
        e = fields_done(&fs);
    if (!e && (whole || fs.n)) {
        w->mem(w->opaque, ds_score_str(u, L->id), whole, fs.f, fs.n);
        L->mem &= (uint8_t)~(IDS_WHOLE | MEM_GONE);
        L->mem_epoch = (uint16_t)w->epoch;
    }
    ds_buf_free(&fs.b);
    free(fs.off);
    free(fs.f);
    return e;
}

/* A number in canonical decimal (no sign, no leading zero) at p, up to
 * end or `stop`; the end of it, or NULL. */
static const char *get_dec(const char *p, const char *end, char stop, uint64_t max, uint64_t *v) {
    const char *q = p;
    *v = 0;
    while (q < end && *q >= '0' && *q <= '9') {
        if (*v > (max - (uint64_t)(*q - '0')) / 10)
            return NULL;
        *v = *v * 10 + (uint64_t)(*q++ - '0');
    }
    if (q == p || (q - p > 1 && *p == '0') || (q < end && *q != stop))
        return NULL;
    return q;
}

/* One field of a lead's hash of repeats and shares, into L. */
static ds_err_t put_mem_field(ds_score_unit_t *u, lead_t *L, const ds_score_field_t *f,
                              ds_buf_t *check) {
    const char *p = f->k, *end = f->k + f->kn;
    if (f->kn < 2 || (*p != 'r' && *p != 's'))
        return DS_ERR_UNDECODABLE;
    bool share = *p++ == 's', has_content = false;
    uint64_t a = 0, clen = 0;
    uint32_t content = NOID, other = 0;
    int64_t t = 0;
    if (!share) { /* r<type>[:<content>] -> time */
        if (!(p = get_dec(p, end, ':', DS_MA__COUNT - 1, &a)))
            return DS_ERR_UNDECODABLE;
        other = (uint32_t)a;
        if (p < end) {
            has_content = true;
            p++;
            clen = (uint64_t)(end - p);
        }
        uint64_t tv = 0;
        const char *v = f->v, *vend = f->v + f->vn;
        bool neg = f->vn && *v == '-';
        if (!f->vn || !(v = get_dec(v + neg, vend, 0, (uint64_t)INT64_MAX + neg, &tv)) ||
            v != vend || (neg && !tv))
            return DS_ERR_UNDECODABLE;
        t = neg ? (int64_t)(0 - tv) : (int64_t)tv;
    } else { /* s[<length>]:[<content>]<colleague> -> 1 */
        if (*p != ':') {
            has_content = true;
            if (!(p = get_dec(p, end, ':', (uint64_t)(end - p), &clen)) || p == end ||
                (uint64_t)(end - p - 1) < clen)
                return DS_ERR_UNDECODABLE;
        }
        p++;
        if (f->vn != 1 || *f->v != '1')
            return DS_ERR_UNDECODABLE;
    }
    if (has_content) {
        if (ds_score_sym(u, p, (size_t)clen, &content))
            return DS_ERR_NOMEM;
        p += clen;
    }
    if (share && ds_score_intern(u, p, (size_t)(end - p), &other))
        return DS_ERR_NOMEM;
    /* canonical: the field as this build writes it (so no two fields
     * stand for one repeat or pair) */
    ds_buf_reset(check);
    DS_TRY(ds_score_mem_field(u, share, content, other, check));
    if (check->len != f->kn || memcmp(check->data, f->k, f->kn))
        return DS_ERR_UNDECODABLE;
    if (share) {
        if (GROW(L->shc, L->nshc, L->nshc + 1))
            return DS_ERR_NOMEM;
        L->shc[L->nshc++] = (shc_t){content, other};
    } else {
        if (GROW(L->rep, L->nrep, L->nrep + 1))
            return DS_ERR_NOMEM;
        L->rep[L->nrep++] = (rep_t){content, (uint8_t)other, t};
    }
    return DS_ERR_OK;
}

ds_err_t ds_score_unit_put_mem(ds_score_unit_t *u, const char *lead_id, const ds_score_field_t *f,
                               size_t n) {
    if (!u || !lead_id || (n && !f))
        return DS_ERR_INVAL;
    lead_t *L = resident(u, lead_id);
    if (!L || !(L->mem & IDS_MISSING))
        return DS_ERR_OK; /* not in memory, or its memory is */
    /* they moved apart past DS_MEM_APART_AT and only grow until an
     * unsubscribe takes them back: fewer is a hash Redis lost */
    if (n <= DS_MEM_APART_AT)
        return DS_ERR_UNDECODABLE;
    ds_buf_t check;
    ds_buf_init(&check, 0);
    ds_err_t err = DS_ERR_OK;
    for (size_t i = 0; i < n && !err; i++)
        err = put_mem_field(u, L, &f[i], &check);
    ds_buf_free(&check);
    if (err) { /* nothing half read stays */
        free(L->rep);
        free(L->shc);
        L->rep = NULL;
        L->shc = NULL;
        L->nrep = L->nshc = 0;
        return err;
    }
    L->mem &= (uint8_t)~IDS_MISSING;
    u->missing--;
    return DS_ERR_OK;
}

/* ---- its memory of content, as the rules change it -------------------------- */

/* A lead's memory of content (repeats and share pairs; score_int.h,
 * DS_MEM_APART_AT).  ds_score_mem_room makes room in the unit's memlog before
 * the memory changes, so that out of memory cannot leave a change
 * unlogged; ds_score_mem_set logs a change when the memory is kept apart, and
 * moves it apart at the change that makes it more than DS_MEM_APART_AT
 * (a point the events set, so the stored bytes do not depend on when the
 * writes fall). */
int ds_score_mem_room(ds_score_unit_t *u, const lead_t *L) {
    if (!(L->mem & IDS_APART))
        return 0;
    if (!u->ma && !(u->ma = calloc(1, sizeof(*u->ma))))
        return -1;
    return ENSURE(u->ma->log, u->ma->cap, u->ma->n + 1, 8);
}

void ds_score_mem_set(ds_score_unit_t *u, lead_t *L, bool share, uint32_t content,
                      uint32_t other, int64_t t) {
    if (L->mem & IDS_APART) {
        memapart_t *ma = u->ma; /* made by ds_score_mem_room */
        ma->log[ma->n] = (memlog_t){L->id, content, other, share, ma->n, t};
        ma->n++;
    } else if (L->nrep + L->nshc > DS_MEM_APART_AT) {
        L->mem |= IDS_APART | IDS_WHOLE;
    }
}

/* The key of the repeat of (content, type) in a lead's index, or NOID
 * when it has none (a symbol past what a key holds: looked up one by
 * one). */
static uint32_t rep_key(uint32_t content, uint8_t type) {
    uint64_t k = content == NOID ? 0 : (uint64_t)(content & ~DS_SYM) + 1;
    k = k * DS_MA__COUNT + type;
    return k < NOID ? (uint32_t)k : NOID;
}

/* Lead L's index of repeats (built now when it has none), or NULL: its
 * memory is in its record (a few entries), or out of memory (then looked
 * up one by one). */
static idmap_t *rep_index(ds_score_unit_t *u, const lead_t *L) {
    if (!(L->mem & IDS_APART))
        return NULL;
    if (!u->ma && !(u->ma = calloc(1, sizeof(*u->ma))))
        return NULL;
    memapart_t *ma = u->ma;
    int32_t x = ds_score_idx(&ma->repof, L->id);
    if (x >= 0)
        return &ma->repix[x];
    if (ENSURE(ma->repix, ma->crepix, ma->nrepix + 1, 4))
        return NULL;
    idmap_t m = {.v = NULL};
    for (uint32_t i = 0; i < L->nrep; i++) {
        uint32_t k = rep_key(L->rep[i].content, L->rep[i].type);
        if (k == NOID || ds_score_idx_put(&m, k, (int32_t)i)) {
            free(m.v);
            return NULL;
        }
    }
    if (ds_score_idx_put(&ma->repof, L->id, (int32_t)ma->nrepix)) {
        free(m.v);
        return NULL;
    }
    ma->repix[ma->nrepix] = m;
    return &ma->repix[ma->nrepix++];
}

/* Forget lead L's index of repeats (its memory went back to its record,
 * or the index could not follow a change). */
void ds_score_rep_unindex(ds_score_unit_t *u, const lead_t *L) {
    int32_t x = u->ma ? ds_score_idx(&u->ma->repof, L->id) : -1;
    if (x < 0)
        return;
    free(u->ma->repix[x].v);
    u->ma->repix[x] = (idmap_t){.v = NULL}; /* its slot stays, empty (a map has no delete) */
    ds_score_idx_put(&u->ma->repof, L->id, -1); /* the key is there: no allocation */
}

/* The repeat of (content, type) of lead L, or NULL. */
rep_t *ds_score_rep_find(ds_score_unit_t *u, lead_t *L, uint32_t content, uint8_t type) {
    idmap_t *m = rep_index(u, L);
    uint32_t k = rep_key(content, type);
    if (m && k != NOID) {
        int32_t i = ds_score_idx(m, k);
        return i < 0 ? NULL : &L->rep[i];
    }
    for (uint32_t i = 0; i < L->nrep; i++)
        if (L->rep[i].content == content && L->rep[i].type == type)
            return &L->rep[i];
    return NULL;
}

void ds_score_rep_added(ds_score_unit_t *u, lead_t *L) {
    const rep_t *x = &L->rep[L->nrep - 1];
    int32_t i = (L->mem & IDS_APART) && u->ma ? ds_score_idx(&u->ma->repof, L->id) : -1;
    uint32_t k = rep_key(x->content, x->type);
    if (i >= 0 && (k == NOID || ds_score_idx_put(&u->ma->repix[i], k, (int32_t)(L->nrep - 1))))
        ds_score_rep_unindex(u, L); /* looked up one by one until it is built again */
}

/* ---- the write ---------------------------------------------------------------- */

void ds_score_sort_logs(ds_score_unit_t *u) {
    if (u->nidlog > 1)
        qsort(u->idlog, u->nidlog, sizeof(*u->idlog), cmp_idlog);
    if (u->ma && u->ma->n > 1)
        qsort(u->ma->log, u->ma->n, sizeof(*u->ma->log), cmp_memlog);
}

ds_err_t ds_score_write_apart(ds_score_unit_t *u, lead_t *L, const ds_score_writer_t *w) {
    ds_err_t e = write_ids(u, L, w);
    return e ? e : write_mem(u, L, w);
}
