/*
 * ds_serde.c — see ds_serde.h.  Schemas are cached per id (uthash).  The
 * hot path (ds_serde_read, ds_avro_*) reads and writes the bytes in place
 * against those schemas; the avro-c generic value kept per id serves the
 * reference decoder and encoder that the tests compare with.
 */
#include "ds_serde.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct ds_avro_plan {
    avro_type_t t;
    avro_schema_t s;    /* links followed */
    int64_t n;          /* fields, branches, symbols or fixed size */
    const ds_avro_plan_t **kids; /* fields, branches, or [0] items/values */
    const char **names; /* a record's field names */
};

typedef struct entry {
    int32_t id;
    avro_schema_t schema;
    const ds_avro_plan_t *plan;
    ds_avro_plan_t **plans; /* every node of plan, to free */
    size_t nplans;
    avro_value_iface_t *iface;
    avro_value_t value;
    const unsigned char **pos; /* top-level record: where each field starts */
    size_t nfields;
    UT_hash_handle hh;
} entry_t;

struct ds_registry {
    entry_t *entries;
    avro_reader_t reader;
    ds_registry_fetch_fn fetch;
    void *fetch_opaque;
    ds_err_t fetch_err;      /* of the last fetch that failed */
    char fetch_detail[256];
};

/* ---- capped allocator ------------------------------------------------------ */

static size_t g_max_alloc = 64u << 20;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > g_max_alloc)
        return NULL;
    return realloc(ptr, nsize);
}

void ds_serde_init(size_t max_alloc) {
    static int done;
    if (max_alloc)
        g_max_alloc = max_alloc < (1u << 20) ? (1u << 20) : max_alloc;
    if (!done) {
        avro_set_allocator(capped_alloc, NULL);
        done = 1;
    }
}

/* ---- registry ----------------------------------------------------------------- */

/* ---- compiled schemas ----------------------------------------------------- */

static avro_schema_t deref(avro_schema_t s) {
    while (s && avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    return s;
}

static void plans_free(entry_t *e) {
    for (size_t i = 0; i < e->nplans; i++) {
        free(e->plans[i]->kids);
        free(e->plans[i]->names);
        free(e->plans[i]);
    }
    free(e->plans);
    e->plans = NULL;
    e->nplans = 0;
    e->plan = NULL;
}

/* The node of s (links followed), made once per schema object: a named
 * type met again (recursion through a link) gets the same node. */
static ds_avro_plan_t *compile(entry_t *e, avro_schema_t s) {
    s = deref(s);
    if (!s)
        return NULL;
    for (size_t i = 0; i < e->nplans; i++)
        if (e->plans[i]->s == s)
            return e->plans[i];
    ds_avro_plan_t **np = realloc(e->plans, (e->nplans + 1) * sizeof(*np));
    if (!np)
        return NULL;
    e->plans = np;
    ds_avro_plan_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    e->plans[e->nplans++] = p;
    p->t = avro_typeof(s);
    p->s = s;
    size_t nk = 0;
    switch (p->t) {
    case AVRO_RECORD:
        nk = avro_schema_record_size(s);
        p->n = (int64_t)nk;
        if (nk && !(p->names = calloc(nk, sizeof(*p->names))))
            return NULL;
        break;
    case AVRO_UNION:
        nk = avro_schema_union_size(s);
        p->n = (int64_t)nk;
        break;
    case AVRO_ARRAY:
    case AVRO_MAP:
        nk = 1;
        break;
    case AVRO_ENUM:
        p->n = avro_schema_enum_number_of_symbols(s);
        break;
    case AVRO_FIXED:
        p->n = avro_schema_fixed_size(s);
        break;
    default:
        break;
    }
    if (!nk)
        return p;
    const ds_avro_plan_t **kids = calloc(nk, sizeof(*kids));
    if (!kids)
        return NULL;
    p->kids = kids;
    for (size_t i = 0; i < nk; i++) {
        avro_schema_t k;
        if (p->t == AVRO_RECORD) {
            k = avro_schema_record_field_get_by_index(s, (int)i);
            p->names[i] = avro_schema_record_field_name(s, (int)i);
        } else if (p->t == AVRO_UNION) {
            k = avro_schema_union_branch(s, (int)i);
        } else {
            k = p->t == AVRO_MAP ? avro_schema_map_values(s) : avro_schema_array_items(s);
        }
        if (!(kids[i] = compile(e, k)))
            return NULL;
    }
    return p;
}

ds_err_t ds_registry_add_json(ds_registry_t *r, int32_t id, const char *json, char *errstr,
                              size_t errstr_size) {
    avro_schema_t s;
    if (avro_schema_from_json_length(json, strlen(json), &s)) {
        snprintf(errstr, errstr_size, "schema %d: %s", (int)id, avro_strerror());
        return DS_ERR_INVAL;
    }
    entry_t *e = calloc(1, sizeof(*e));
    if (!e) {
        avro_schema_decref(s);
        return DS_ERR_NOMEM;
    }
    e->id = id;
    e->schema = s;
    if (avro_typeof(s) == AVRO_RECORD && (e->nfields = avro_schema_record_size(s)) &&
        !(e->pos = calloc(e->nfields, sizeof(*e->pos)))) {
        avro_schema_decref(s);
        free(e);
        return DS_ERR_NOMEM;
    }
    if (!(e->plan = compile(e, s))) {
        plans_free(e);
        avro_schema_decref(s);
        free(e->pos);
        free(e);
        return DS_ERR_NOMEM;
    }
    e->iface = avro_generic_class_from_schema(s);
    if (!e->iface || avro_generic_value_new(e->iface, &e->value)) {
        snprintf(errstr, errstr_size, "schema %d: %s", (int)id, avro_strerror());
        if (e->iface)
            avro_value_iface_decref(e->iface);
        plans_free(e);
        avro_schema_decref(s);
        free(e->pos);
        free(e);
        return DS_ERR_INVAL;
    }
    entry_t *old;
    HASH_FIND_INT(r->entries, &id, old);
    if (old) {
        HASH_DEL(r->entries, old);
        avro_value_decref(&old->value);
        avro_value_iface_decref(old->iface);
        plans_free(old);
        avro_schema_decref(old->schema);
        free(old->pos);
        free(old);
    }
    HASH_ADD_INT(r->entries, id, e);
    return DS_ERR_OK;
}

ds_registry_t *ds_registry_new(void) {
    ds_registry_t *r = calloc(1, sizeof(*r));
    if (r && !(r->reader = avro_reader_memory("", 0))) {
        free(r);
        r = NULL;
    }
    return r;
}

ds_registry_t *ds_registry_new_dir(const char *dir, char *errstr, size_t errstr_size) {
    ds_registry_t *r = ds_registry_new();
    if (!r) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(errstr, errstr_size, "schemas directory %s: %s", dir, strerror(errno));
        ds_registry_destroy(r);
        return NULL;
    }
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        char *end;
        long id = strtol(de->d_name, &end, 10);
        size_t l = strlen(de->d_name);
        if (end == de->d_name || *end != '-' || l < 6 || strcmp(de->d_name + l - 5, ".avsc"))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        ds_buf_t b;
        ds_buf_init(&b, 1 << 20);
        char chunk[4096];
        size_t got;
        ds_err_t e = DS_ERR_OK;
        while (!e && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
            e = ds_buf_append(&b, chunk, got);
        fclose(f);
        if (!e)
            e = ds_buf_append(&b, "", 1);
        if (!e)
            e = ds_registry_add_json(r, (int32_t)id, (const char *)b.data, errstr, errstr_size);
        ds_buf_free(&b);
        if (e) {
            closedir(d);
            ds_registry_destroy(r);
            return NULL;
        }
        n++;
    }
    closedir(d);
    if (!n) {
        snprintf(errstr, errstr_size, "no <id>-<Name>.avsc files in %s", dir);
        ds_registry_destroy(r);
        return NULL;
    }
    return r;
}

void ds_registry_set_fetcher(ds_registry_t *r, ds_registry_fetch_fn fn, void *opaque) {
    r->fetch = fn;
    r->fetch_opaque = opaque;
}

void ds_registry_destroy(ds_registry_t *r) {
    if (!r)
        return;
    entry_t *e, *t;
    HASH_ITER(hh, r->entries, e, t) {
        HASH_DEL(r->entries, e);
        avro_value_decref(&e->value);
        avro_value_iface_decref(e->iface);
        plans_free(e);
        avro_schema_decref(e->schema);
        free(e->pos);
        free(e);
    }
    if (r->reader)
        avro_reader_free(r->reader);
    free(r);
}

static entry_t *lookup(ds_registry_t *r, int32_t id) {
    entry_t *e;
    HASH_FIND_INT(r->entries, &id, e);
    if (e || !r->fetch)
        return e;
    char *json = NULL, err[256] = "";
    ds_err_t fe = r->fetch(r->fetch_opaque, id, &json, err, sizeof(err));
    if (fe == DS_ERR_OK && json) {
        if (ds_registry_add_json(r, id, json, err, sizeof(err)) == DS_ERR_OK)
            HASH_FIND_INT(r->entries, &id, e);
        else
            fe = DS_ERR_UNKNOWN_SCHEMA; /* not a schema avro-c can use */
    }
    free(json);
    if (!e) {
        r->fetch_err = fe ? fe : DS_ERR_UNKNOWN_SCHEMA;
        snprintf(r->fetch_detail, sizeof(r->fetch_detail), "%s", err);
    }
    return e;
}

avro_schema_t ds_registry_schema(ds_registry_t *r, int32_t id) {
    entry_t *e = lookup(r, id);
    return e ? e->schema : NULL;
}

ds_err_t ds_serde_unframe(const void *buf, size_t len, int32_t *id, const void **payload,
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

#define MAX_ITEMS 100000 /* any array/map; the SPEC limits are checked later */

typedef struct walk {
    const unsigned char *p, *end;
    size_t items;
    int depth;
    const unsigned char **pos; /* when set: the top-level fields' starts */
} walk_t;

static ds_err_t varint(walk_t *w, int64_t *out) {
    uint64_t v = 0;
    for (int s = 0; s < 64; s += 7) {
        if (w->p >= w->end)
            return DS_ERR_UNDECODABLE;
        unsigned char c = *w->p++;
        v |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return DS_ERR_OK;
        }
    }
    return DS_ERR_UNDECODABLE;
}

static ds_err_t skip(walk_t *w, int64_t n) {
    if (n < 0 || n > w->end - w->p)
        return DS_ERR_UNDECODABLE;
    w->p += n;
    return DS_ERR_OK;
}

static ds_err_t walk(walk_t *w, const ds_avro_plan_t *s) {
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

/* Unframe, find the writer schema and walk the payload against it. */
static ds_err_t check(ds_registry_t *r, const void *buf, size_t len, entry_t **ent,
                      walk_t *w, bool index_fields, char *detail, size_t detail_size) {
    int32_t id;
    const void *payload;
    size_t plen;
    if (ds_serde_unframe(buf, len, &id, &payload, &plen)) {
        snprintf(detail, detail_size, "not Confluent-framed Avro (magic byte %d, %zu bytes)",
                 len ? ((const unsigned char *)buf)[0] : -1, len);
        return DS_ERR_BAD_MAGIC;
    }
    r->fetch_err = DS_ERR_OK;
    entry_t *e = lookup(r, id);
    if (!e && r->fetch_err == DS_ERR_IO) {
        /* the registry did not answer: not the record's fault */
        snprintf(detail, detail_size, "schema id %d: %s", (int)id, r->fetch_detail);
        return DS_ERR_IO;
    }
    if (!e) {
        snprintf(detail, detail_size, "schema id %d is not in the registry", (int)id);
        return DS_ERR_UNKNOWN_SCHEMA;
    }
    *ent = e;
    w->p = payload;
    w->end = (const unsigned char *)payload + plen;
    w->items = 0;
    w->depth = 0;
    w->pos = index_fields ? e->pos : NULL;
    ds_err_t err = walk(w, e->plan);
    if (!err && w->p != w->end)
        err = DS_ERR_UNDECODABLE;
    if (err) {
        snprintf(detail, detail_size, "%s for schema %d at byte %zu of %zu",
                 err == DS_ERR_LIMIT_EXCEEDED ? "array or map count over the limit or the data"
                                              : "truncated or malformed Avro",
                 (int)id, (size_t)(w->p - (const unsigned char *)payload), plen);
        return err;
    }
    w->p = payload;
    return DS_ERR_OK;
}

ds_err_t ds_serde_decode(ds_registry_t *r, const void *buf, size_t len, avro_value_t **out,
                         char *detail, size_t detail_size) {
    entry_t *e;
    walk_t w = {0};
    ds_err_t err = check(r, buf, len, &e, &w, false, detail, detail_size);
    if (err)
        return err;
    avro_value_reset(&e->value);
    avro_reader_memory_set_source(r->reader, (const char *)w.p, (int64_t)(w.end - w.p));
    if (avro_value_read(r->reader, &e->value)) {
        snprintf(detail, detail_size, "undecodable Avro: %.180s", avro_strerror());
        return DS_ERR_UNDECODABLE;
    }
    *out = &e->value;
    return DS_ERR_OK;
}

ds_err_t ds_serde_read(ds_registry_t *r, const void *buf, size_t len, ds_avro_rec_t *out,
                       char *detail, size_t detail_size) {
    entry_t *e;
    walk_t w = {0};
    ds_err_t err = check(r, buf, len, &e, &w, true, detail, detail_size);
    if (err)
        return err;
    out->schema = e->schema;
    out->plan = e->plan;
    out->pos = e->pos;
    out->nfields = e->pos ? e->nfields : 0;
    out->end = w.end;
    out->hint = 0;
    return DS_ERR_OK;
}

/* ---- reading values in place ------------------------------------------------ */

/* Index of field `name` in a record, trying `hint` first (readers and
 * writers usually agree on the order); -1 when absent. */
static int field_index(const ds_avro_plan_t *rec, size_t n, size_t hint, const char *name) {
    if (hint < n && !strcmp(rec->names[hint], name))
        return (int)hint;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rec->names[i], name))
            return (int)i;
    return -1;
}

bool ds_avro_field(ds_avro_rec_t *rec, const char *name, ds_avro_val_t *out) {
    int i = field_index(rec->plan, rec->nfields, rec->hint, name);
    if (i < 0)
        return false;
    rec->hint = (size_t)i + 1;
    const ds_avro_plan_t *fs = rec->plan->kids[i];
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

ds_err_t ds_avro_long(const ds_avro_val_t *v, int64_t *out) {
    walk_t w = {v->p, v->end, 0, 0, NULL};
    switch (avro_typeof(v->schema)) {
    case AVRO_INT32:
    case AVRO_INT64:
        return varint(&w, out);
    default:
        return DS_ERR_WRONG_TYPE;
    }
}

ds_err_t ds_avro_double(const ds_avro_val_t *v, double *out) {
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
        if (ds_avro_long(v, &l))
            return DS_ERR_UNDECODABLE;
        *out = (double)l;
        return DS_ERR_OK;
    default:
        return DS_ERR_WRONG_TYPE;
    }
}

ds_err_t ds_avro_string(const ds_avro_val_t *v, const char **s, size_t *len) {
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

ds_err_t ds_avro_symbol(const ds_avro_val_t *v, const char **s, size_t *len) {
    if (avro_typeof(v->schema) != AVRO_ENUM)
        return ds_avro_string(v, s, len);
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
static int block(ds_avro_iter_t *it) {
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

int ds_avro_iter_next(ds_avro_iter_t *it, const char **key, size_t *key_len,
                      ds_avro_val_t *item) {
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

ds_err_t ds_avro_iter_init(const ds_avro_val_t *v, ds_avro_iter_t *it, size_t *count) {
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
    ds_avro_iter_t c = *it;
    ds_avro_val_t item;
    size_t n = 0;
    int r;
    while ((r = ds_avro_iter_next(&c, NULL, NULL, &item)) > 0)
        n++;
    if (r < 0)
        return DS_ERR_UNDECODABLE;
    *count = n;
    return DS_ERR_OK;
}

/* ---- writing ----------------------------------------------------------------- */

enum { K_UNSET, K_NULL, K_STR, K_LONG, K_DOUBLE, K_ENUM, K_ARR, K_MAP };

ds_err_t ds_avro_enc_begin(ds_registry_t *r, int32_t id, ds_avro_enc_t *e) {
    entry_t *ent = lookup(r, id);
    if (!ent || avro_typeof(ent->schema) != AVRO_RECORD || ent->nfields > DS_AVRO_ENC_FIELDS)
        return DS_ERR_UNKNOWN_SCHEMA;
    e->schema = ent->schema;
    e->plan = ent->plan;
    e->id = id;
    e->nfields = ent->nfields;
    e->hint = 0;
    e->bad = NULL;
    for (size_t i = 0; i < e->nfields; i++)
        e->slot[i].kind = K_UNSET;
    return DS_ERR_OK;
}

static ds_avro_slot_t *slot(ds_avro_enc_t *e, const char *name, bool optional) {
    int i = field_index(e->plan, e->nfields, e->hint, name);
    if (i < 0) {
        if (!optional && !e->bad)
            e->bad = name;
        return NULL;
    }
    e->hint = (size_t)i + 1;
    return &e->slot[i];
}

void ds_avro_enc_str(ds_avro_enc_t *e, const char *name, const char *s) {
    ds_avro_slot_t *x = slot(e, name, false);
    if (x) {
        x->kind = s ? K_STR : K_NULL;
        x->u.s = s;
    }
}

void ds_avro_enc_long(ds_avro_enc_t *e, const char *name, int64_t v) {
    ds_avro_slot_t *x = slot(e, name, false);
    if (x) {
        x->kind = K_LONG;
        x->u.l = v;
    }
}

void ds_avro_enc_null(ds_avro_enc_t *e, const char *name) {
    ds_avro_slot_t *x = slot(e, name, false);
    if (x)
        x->kind = K_NULL;
}

void ds_avro_enc_double(ds_avro_enc_t *e, const char *name, double v) {
    ds_avro_slot_t *x = slot(e, name, false);
    if (x) {
        x->kind = K_DOUBLE;
        x->u.d = v;
    }
}

void ds_avro_enc_enum(ds_avro_enc_t *e, const char *name, int idx) {
    ds_avro_slot_t *x = slot(e, name, false);
    if (x) {
        x->kind = idx < 0 ? K_NULL : K_ENUM;
        x->u.l = idx;
    }
}

void ds_avro_enc_str_array(ds_avro_enc_t *e, const char *name, const char *const *v, size_t n) {
    ds_avro_slot_t *x = slot(e, name, false);
    if (x) {
        x->kind = K_ARR;
        x->u.arr = v;
        x->n = n;
    }
}

void ds_avro_enc_str_map(ds_avro_enc_t *e, const char *name, const ds_avro_kv_t *kv, size_t n) {
    ds_avro_slot_t *x = slot(e, name, true);
    if (x) {
        x->kind = K_MAP;
        x->u.kv = kv;
        x->n = n;
    }
}

static ds_err_t put_long(ds_buf_t *b, int64_t v) {
    return ds_buf_put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static ds_err_t put_bytes(ds_buf_t *b, const char *s, size_t n) {
    ds_err_t e = put_long(b, (int64_t)n);
    return e ? e : ds_buf_append(b, s, n);
}

/* Does a value of slot kind k fit schema type t (a union's branch)? */
static bool fits(int k, avro_type_t t) {
    switch (k) {
    case K_UNSET:
    case K_NULL:
        return t == AVRO_NULL;
    case K_STR:
        return t == AVRO_STRING || t == AVRO_BYTES;
    case K_LONG:
        return t == AVRO_INT64 || t == AVRO_INT32;
    case K_DOUBLE:
        return t == AVRO_DOUBLE || t == AVRO_FLOAT;
    case K_ENUM:
        return t == AVRO_ENUM;
    case K_ARR:
        return t == AVRO_ARRAY;
    case K_MAP:
        return t == AVRO_MAP;
    }
    return false;
}

static ds_err_t put_value(ds_buf_t *b, const ds_avro_plan_t *s, const ds_avro_slot_t *x) {
    avro_type_t t = s->t;
    ds_err_t e;
    if (t == AVRO_UNION) {
        for (int64_t i = 0; i < s->n; i++) {
            const ds_avro_plan_t *br = s->kids[i];
            if (fits(x->kind, br->t))
                return (e = put_long(b, i)) ? e : put_value(b, br, x);
        }
        return DS_ERR_WRONG_TYPE;
    }
    if (!fits(x->kind, t))
        return DS_ERR_WRONG_TYPE;
    switch (t) {
    case AVRO_NULL:
        return DS_ERR_OK;
    case AVRO_STRING:
    case AVRO_BYTES:
        return put_bytes(b, x->u.s, strlen(x->u.s));
    case AVRO_INT32:
        if (x->u.l < INT32_MIN || x->u.l > INT32_MAX)
            return DS_ERR_LIMIT_EXCEEDED;
        return put_long(b, x->u.l);
    case AVRO_INT64:
        return put_long(b, x->u.l);
    case AVRO_DOUBLE:
        return ds_buf_put_f64(b, x->u.d);
    case AVRO_FLOAT: {
        float f = (float)x->u.d;
        uint32_t u;
        memcpy(&u, &f, sizeof(u));
        unsigned char le4[4] = {(unsigned char)u, (unsigned char)(u >> 8),
                                (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
        return ds_buf_append(b, le4, 4);
    }
    case AVRO_ENUM:
        if (x->u.l >= s->n)
            return DS_ERR_WRONG_TYPE;
        return put_long(b, x->u.l);
    case AVRO_ARRAY:
    case AVRO_MAP: {
        bool map = t == AVRO_MAP;
        if (s->kids[0]->t != AVRO_STRING)
            return DS_ERR_WRONG_TYPE;
        if (x->n && (e = put_long(b, (int64_t)x->n)))
            return e;
        for (size_t i = 0; i < x->n; i++) {
            if (map && (e = put_bytes(b, x->u.kv[i].key, strlen(x->u.kv[i].key))))
                return e;
            const char *v = map ? x->u.kv[i].value : x->u.arr[i];
            if ((e = put_bytes(b, v, strlen(v))))
                return e;
        }
        return put_long(b, 0);
    }
    default:
        return DS_ERR_WRONG_TYPE;
    }
}

ds_err_t ds_avro_enc_finish(ds_avro_enc_t *e, ds_buf_t *out) {
    if (e->bad)
        return DS_ERR_INVAL;
    size_t start = out->len;
    unsigned char hdr[5] = {0, (unsigned char)((uint32_t)e->id >> 24),
                            (unsigned char)((uint32_t)e->id >> 16),
                            (unsigned char)((uint32_t)e->id >> 8), (unsigned char)e->id};
    ds_err_t err = ds_buf_append(out, hdr, sizeof(hdr));
    for (size_t i = 0; !err && i < e->nfields; i++)
        err = put_value(out, e->plan->kids[i], &e->slot[i]);
    if (err) {
        out->len = start;
        return err == DS_ERR_LIMIT_EXCEEDED ? err : DS_ERR_INVAL;
    }
    return DS_ERR_OK;
}

ds_err_t ds_serde_value(ds_registry_t *r, int32_t id, avro_value_t **out) {
    entry_t *e = lookup(r, id);
    if (!e)
        return DS_ERR_UNKNOWN_SCHEMA;
    avro_value_reset(&e->value);
    *out = &e->value;
    return DS_ERR_OK;
}

ds_err_t ds_serde_encode(int32_t id, avro_value_t *v, ds_buf_t *out) {
    size_t size;
    if (avro_value_sizeof(v, &size))
        return DS_ERR_INVAL;
    ds_err_t e = ds_buf_reserve(out, size + 5);
    if (e)
        return e;
    unsigned char *p = out->data + out->len;
    p[0] = 0;
    p[1] = (unsigned char)((uint32_t)id >> 24);
    p[2] = (unsigned char)((uint32_t)id >> 16);
    p[3] = (unsigned char)((uint32_t)id >> 8);
    p[4] = (unsigned char)id;
    avro_writer_t w = avro_writer_memory((char *)p + 5, (int64_t)size);
    int rc = avro_value_write(w, v);
    avro_writer_free(w);
    if (rc)
        return DS_ERR_INVAL;
    out->len += size + 5;
    return DS_ERR_OK;
}
