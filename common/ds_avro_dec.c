/*
 * ds_avro_dec.c — see ds_avro_dec.h.
 *
 * One cursor type (walk_t) serves the check and the accessors.  walk()
 * steps over one value of a plan node, recursing into records, unions,
 * arrays and maps; it allocates nothing and refuses, as DS_ERR_UNDECODABLE,
 * any varint longer than 10 bytes, length or index out of range and
 * nesting deeper than 64, and, as DS_ERR_LIMIT_EXCEEDED, an array or map
 * block whose count exceeds the bytes left (every item takes at least one
 * byte, so such a count is a bomb, not data) or brings the message's items
 * over MAX_ITEMS.  At depth 1 of a record it notes each field's start in
 * the registry entry's scratch (pos).  The accessors trust a walked
 * message and still bound every read by its end.
 */
#include "ds_avro_dec.h"

#include <stdio.h>
#include <string.h>

#include "ds_buf.h"
#include "ds_registry_plan.h"

ds_err_t ds_avro_dec_unframe(const void *buf, size_t len, int32_t *id, const void **payload,
                             size_t *plen) {
    const unsigned char *b = buf;
    if (len < 5 || b[0] != 0)
        return DS_ERR_BAD_MAGIC;
    *id = (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4]);
    *payload = b + 5;
    *plen = len - 5;
    return DS_ERR_OK;
}

/* ---- the pre-check: walk the bytes against the schema, allocate nothing --- */

#define MAX_ITEMS                                                                                  \
    100000 /* all arrays and maps of a message; the records' own limits are the codec's */

typedef struct walk {
    const unsigned char *p, *end;
    size_t items;
    int depth;
    const unsigned char **pos; /* when set: the top-level fields' starts */
} walk_t;

/* Avro's int and long: a zigzag varint.  Forced inline: walk() reads
 * several per field, and GCC kept an out-of-line copy that cost a fifth
 * of the decode. */
static inline __attribute__((always_inline)) ds_err_t varint(walk_t *w, int64_t *out) {
    uint64_t v;
    ds_err_t e = ds_varint_get(&w->p, w->end, &v);
    if (!e)
        *out = ds_unzigzag(v);
    return e;
}

static ds_err_t skip(walk_t *w, int64_t n) {
    if (n < 0 || n > w->end - w->p)
        return DS_ERR_UNDECODABLE;
    w->p += n;
    return DS_ERR_OK;
}

static ds_err_t walk(walk_t *w, const ds_registry_plan_t *s) {
    if (++w->depth > 64)
        return DS_ERR_UNDECODABLE;
    ds_err_t e = DS_ERR_OK;
    int64_t n;
    switch (s->t) {
    case AVRO_NULL:
        break;
    case AVRO_BOOLEAN:
        e = skip(w, 1);
        break;
    case AVRO_INT32:
    case AVRO_INT64:
        e = varint(w, &n);
        break;
    case AVRO_ENUM:
        e = varint(w, &n);
        if (!e && (n < 0 || n >= s->n))
            e = DS_ERR_UNDECODABLE;
        break;
    case AVRO_FLOAT:
        e = skip(w, 4);
        break;
    case AVRO_DOUBLE:
        e = skip(w, 8);
        break;
    case AVRO_STRING:
    case AVRO_BYTES:
        e = varint(w, &n);
        if (!e)
            e = skip(w, n);
        break;
    case AVRO_FIXED:
        e = skip(w, s->n);
        break;
    case AVRO_RECORD:
        for (int64_t i = 0; !e && i < s->n; i++) {
            if (w->pos && w->depth == 1)
                w->pos[i] = w->p;
            e = walk(w, s->kids[i]);
        }
        break;
    case AVRO_UNION:
        e = varint(w, &n);
        if (!e && (n < 0 || n >= s->n))
            e = DS_ERR_UNDECODABLE;
        if (!e)
            e = walk(w, s->kids[n]);
        break;
    case AVRO_ARRAY:
    case AVRO_MAP:
        for (;;) {
            e = varint(w, &n);
            if (e || n == 0)
                break;
            if (n < 0) {
                int64_t bytes;
                n = -n;
                if ((e = varint(w, &bytes)))
                    break;
            }
            /* every item takes at least one byte: a count beyond what is
             * left is a bomb, not data */
            if (n > MAX_ITEMS || w->items + (size_t)n > MAX_ITEMS) {
                e = DS_ERR_LIMIT_EXCEEDED;
                break;
            }
            if (n > w->end - w->p) {
                e = DS_ERR_LIMIT_EXCEEDED;
                break;
            }
            w->items += (size_t)n;
            for (int64_t i = 0; !e && i < n; i++) {
                if (s->t == AVRO_MAP) {
                    int64_t kl;
                    e = varint(w, &kl);
                    if (!e)
                        e = skip(w, kl);
                }
                if (!e)
                    e = walk(w, s->kids[0]);
            }
            if (e)
                break;
        }
        break;
    default:
        e = DS_ERR_UNDECODABLE;
    }
    w->depth--;
    return e;
}

/* Unframe, find the writer schema, walk the payload against it and note
 * where the top-level fields start. */
ds_err_t ds_avro_dec_read(ds_registry_t *r, const void *buf, size_t len, ds_avro_dec_rec_t *out,
                          char *detail, size_t detail_size) {
    int32_t id;
    const void *payload;
    size_t plen;
    if (ds_avro_dec_unframe(buf, len, &id, &payload, &plen)) {
        if (!len)
            snprintf(detail, detail_size, "not Confluent-framed Avro (an empty value)");
        else if (((const unsigned char *)buf)[0])
            snprintf(detail, detail_size, "not Confluent-framed Avro (magic byte %d, %zu bytes)",
                     ((const unsigned char *)buf)[0], len);
        else
            snprintf(detail, detail_size,
                     "not Confluent-framed Avro (%zu bytes, shorter than the 5 of the frame)", len);
        return DS_ERR_BAD_MAGIC;
    }
    const char *io_err;
    ds_registry_entry_t *e = ds_registry_entry(r, id, &io_err);
    if (!e && io_err) {
        /* the registry did not answer: not the record's fault */
        snprintf(detail, detail_size, "schema id %d: %s", (int)id, io_err);
        return DS_ERR_IO;
    }
    if (!e) {
        snprintf(detail, detail_size, "schema id %d is not in the registry", (int)id);
        return DS_ERR_UNKNOWN_SCHEMA;
    }
    walk_t w = {payload, (const unsigned char *)payload + plen, 0, 0, e->pos};
    ds_err_t err = walk(&w, e->plan);
    if (!err && w.p != w.end)
        err = DS_ERR_UNDECODABLE;
    if (err) {
        snprintf(detail, detail_size, "%s for schema %d at byte %zu of %zu",
                 err == DS_ERR_LIMIT_EXCEEDED ? "array or map count over the limit or the data"
                                              : "truncated or malformed Avro",
                 (int)id, (size_t)(w.p - (const unsigned char *)payload), plen);
        return err;
    }
    out->schema = e->schema;
    out->plan = e->plan;
    out->pos = e->pos;
    out->nfields = e->pos ? e->nfields : 0;
    out->end = w.end;
    out->hint = 0;
    return DS_ERR_OK;
}

/* ---- reading values in place ------------------------------------------------ */

bool ds_avro_dec_field(ds_avro_dec_rec_t *rec, const char *name, ds_avro_dec_val_t *out) {
    int i = ds_registry_plan_field(rec->plan, rec->nfields, rec->hint, name);
    if (i < 0)
        return false;
    rec->hint = (size_t)i + 1;
    const ds_registry_plan_t *fs = rec->plan->kids[i];
    walk_t w = {rec->pos[i], rec->end, 0, 0, NULL};
    if (fs->t == AVRO_UNION) {
        int64_t b;
        if (varint(&w, &b) || b < 0 || b >= fs->n)
            return false; /* cannot happen after the walk */
        fs = fs->kids[b];
    }
    if (fs->t == AVRO_NULL)
        return false;
    out->schema = fs->s;
    out->plan = fs;
    out->p = w.p;
    out->end = rec->end;
    return true;
}

ds_err_t ds_avro_dec_long(const ds_avro_dec_val_t *v, int64_t *out) {
    walk_t w = {v->p, v->end, 0, 0, NULL};
    switch (avro_typeof(v->schema)) {
    case AVRO_INT32:
    case AVRO_INT64:
        return varint(&w, out);
    default:
        return DS_ERR_WRONG_TYPE;
    }
}

ds_err_t ds_avro_dec_double(const ds_avro_dec_val_t *v, double *out) {
    int64_t l;
    switch (avro_typeof(v->schema)) {
    case AVRO_DOUBLE: { /* 8 bytes little-endian, as ds_buf's own doubles */
        ds_reader_t rd;
        ds_reader_init(&rd, v->p, (size_t)(v->end - v->p));
        return ds_get_f64(&rd, out) ? DS_ERR_UNDECODABLE : DS_ERR_OK;
    }
    case AVRO_FLOAT: {
        if (v->end - v->p < 4)
            return DS_ERR_UNDECODABLE;
        uint32_t u = (uint32_t)v->p[0] | (uint32_t)v->p[1] << 8 | (uint32_t)v->p[2] << 16 |
                     (uint32_t)v->p[3] << 24;
        float f;
        memcpy(&f, &u, sizeof(f));
        *out = f;
        return DS_ERR_OK;
    }
    case AVRO_INT32:
    case AVRO_INT64:
        if (ds_avro_dec_long(v, &l))
            return DS_ERR_UNDECODABLE;
        *out = (double)l;
        return DS_ERR_OK;
    default:
        return DS_ERR_WRONG_TYPE;
    }
}

ds_err_t ds_avro_dec_string(const ds_avro_dec_val_t *v, const char **s, size_t *len) {
    walk_t w = {v->p, v->end, 0, 0, NULL};
    int64_t n;
    avro_type_t t = avro_typeof(v->schema);
    if (t != AVRO_STRING && t != AVRO_BYTES)
        return DS_ERR_WRONG_TYPE;
    if (varint(&w, &n) || n < 0 || n > w.end - w.p)
        return DS_ERR_UNDECODABLE;
    *s = (const char *)w.p;
    *len = (size_t)n;
    return DS_ERR_OK;
}

ds_err_t ds_avro_dec_symbol(const ds_avro_dec_val_t *v, const char **s, size_t *len) {
    if (avro_typeof(v->schema) != AVRO_ENUM)
        return ds_avro_dec_string(v, s, len);
    walk_t w = {v->p, v->end, 0, 0, NULL};
    int64_t i;
    if (varint(&w, &i) || i < 0 || i >= avro_schema_enum_number_of_symbols(v->schema))
        return DS_ERR_UNDECODABLE;
    *s = avro_schema_enum_get(v->schema, (int)i);
    *len = strlen(*s);
    return DS_ERR_OK;
}

/* The next item's count (reading a new block header when the current one
 * is used up); 0 at the end. */
static int block(ds_avro_dec_iter_t *it) {
    walk_t w = {it->p, it->end, 0, 0, NULL};
    while (it->left == 0) {
        int64_t n;
        if (varint(&w, &n))
            return -1;
        if (n == 0) {
            it->p = w.p;
            return 0;
        }
        if (n < 0) {
            int64_t bytes;
            if (varint(&w, &bytes))
                return -1;
            n = -n;
        }
        it->left = n;
    }
    it->p = w.p;
    return 1;
}

int ds_avro_dec_iter_next(ds_avro_dec_iter_t *it, const char **key, size_t *key_len,
                          ds_avro_dec_val_t *item) {
    int b = block(it);
    if (b <= 0)
        return b;
    walk_t w = {it->p, it->end, 0, 0, NULL};
    if (it->is_map) {
        int64_t kl;
        if (varint(&w, &kl) || kl < 0 || kl > w.end - w.p)
            return -1;
        if (key) {
            *key = (const char *)w.p;
            *key_len = (size_t)kl;
        }
        w.p += kl;
    }
    item->schema = it->items;
    item->plan = it->items_plan;
    item->p = w.p;
    item->end = it->end;
    if (walk(&w, it->items_plan)) /* step over the item */
        return -1;
    it->p = w.p;
    it->left--;
    return 1;
}

ds_err_t ds_avro_dec_iter_init(const ds_avro_dec_val_t *v, ds_avro_dec_iter_t *it, size_t *count) {
    avro_type_t t = avro_typeof(v->schema);
    if (t != AVRO_ARRAY && t != AVRO_MAP)
        return DS_ERR_WRONG_TYPE;
    it->is_map = t == AVRO_MAP;
    it->items_plan = v->plan->kids[0];
    it->items = it->items_plan->s;
    it->p = v->p;
    it->end = v->end;
    it->left = 0;
    /* count with a copy: block headers carry the counts, items are skipped */
    ds_avro_dec_iter_t c = *it;
    ds_avro_dec_val_t item;
    size_t n = 0;
    int r;
    while ((r = ds_avro_dec_iter_next(&c, NULL, NULL, &item)) > 0)
        n++;
    if (r < 0)
        return DS_ERR_UNDECODABLE;
    *count = n;
    return DS_ERR_OK;
}
