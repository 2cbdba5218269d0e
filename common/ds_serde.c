/*
 * ds_serde.c — see ds_serde.h.  Schemas and their generic value classes
 * are cached per id (uthash); one generic value per id is reused with
 * avro_value_reset so that decoding builds no class per message.
 */
#include "ds_serde.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

typedef struct entry {
    int32_t id;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    UT_hash_handle hh;
} entry_t;

struct ds_registry {
    entry_t *entries;
    avro_reader_t reader;
    ds_registry_fetch_fn fetch;
    void *fetch_opaque;
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
    e->iface = avro_generic_class_from_schema(s);
    if (!e->iface || avro_generic_value_new(e->iface, &e->value)) {
        snprintf(errstr, errstr_size, "schema %d: %s", (int)id, avro_strerror());
        if (e->iface)
            avro_value_iface_decref(e->iface);
        avro_schema_decref(s);
        free(e);
        return DS_ERR_INVAL;
    }
    entry_t *old;
    HASH_FIND_INT(r->entries, &id, old);
    if (old) {
        HASH_DEL(r->entries, old);
        avro_value_decref(&old->value);
        avro_value_iface_decref(old->iface);
        avro_schema_decref(old->schema);
        free(old);
    }
    HASH_ADD_INT(r->entries, id, e);
    return DS_ERR_OK;
}

ds_registry_t *ds_registry_new_dir(const char *dir, char *errstr, size_t errstr_size) {
    ds_registry_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->reader = avro_reader_memory("", 0);
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
        avro_schema_decref(e->schema);
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
    char *json = NULL, err[256];
    if (r->fetch(r->fetch_opaque, id, &json, err, sizeof(err)) == DS_ERR_OK && json) {
        if (ds_registry_add_json(r, id, json, err, sizeof(err)) == DS_ERR_OK)
            HASH_FIND_INT(r->entries, &id, e);
    }
    free(json);
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

static ds_err_t walk(walk_t *w, avro_schema_t s) {
    if (++w->depth > 64)
        return DS_ERR_UNDECODABLE;
    ds_err_t e = DS_ERR_OK;
    int64_t n;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        break;
    case AVRO_BOOLEAN:
        e = skip(w, 1);
        break;
    case AVRO_INT32:
    case AVRO_INT64:
    case AVRO_ENUM:
        e = varint(w, &n);
        if (!e && avro_typeof(s) == AVRO_ENUM &&
            (n < 0 || n >= avro_schema_enum_number_of_symbols(s)))
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
        e = skip(w, avro_schema_fixed_size(s));
        break;
    case AVRO_RECORD:
        for (size_t i = 0; !e && i < avro_schema_record_size(s); i++)
            e = walk(w, avro_schema_record_field_get_by_index(s, (int)i));
        break;
    case AVRO_UNION:
        e = varint(w, &n);
        if (!e && (n < 0 || (size_t)n >= avro_schema_union_size(s)))
            e = DS_ERR_UNDECODABLE;
        if (!e)
            e = walk(w, avro_schema_union_branch(s, (int)n));
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
                if (avro_typeof(s) == AVRO_MAP) {
                    int64_t kl;
                    e = varint(w, &kl);
                    if (!e)
                        e = skip(w, kl);
                    if (!e)
                        e = walk(w, avro_schema_map_values(s));
                } else {
                    e = walk(w, avro_schema_array_items(s));
                }
            }
            if (e)
                break;
        }
        break;
    case AVRO_LINK:
        e = walk(w, avro_schema_link_target(s));
        break;
    default:
        e = DS_ERR_UNDECODABLE;
    }
    w->depth--;
    return e;
}

ds_err_t ds_serde_decode(ds_registry_t *r, const void *buf, size_t len, avro_value_t **out,
                         char *detail, size_t detail_size) {
    int32_t id;
    const void *payload;
    size_t plen;
    if (ds_serde_unframe(buf, len, &id, &payload, &plen)) {
        snprintf(detail, detail_size, "not Confluent-framed Avro (magic byte %d, %zu bytes)",
                 len ? ((const unsigned char *)buf)[0] : -1, len);
        return DS_ERR_BAD_MAGIC;
    }
    entry_t *e = lookup(r, id);
    if (!e) {
        snprintf(detail, detail_size, "schema id %d is not in the registry", (int)id);
        return DS_ERR_UNKNOWN_SCHEMA;
    }
    walk_t w = {payload, (const unsigned char *)payload + plen, 0, 0};
    ds_err_t err = walk(&w, e->schema);
    if (!err && w.p != w.end)
        err = DS_ERR_UNDECODABLE;
    if (err) {
        snprintf(detail, detail_size, "%s for schema %d at byte %zu of %zu",
                 err == DS_ERR_LIMIT_EXCEEDED ? "array or map count over the limit or the data"
                                              : "truncated or malformed Avro",
                 (int)id, (size_t)(w.p - (const unsigned char *)payload), plen);
        return err;
    }
    avro_value_reset(&e->value);
    avro_reader_memory_set_source(r->reader, payload, (int64_t)plen);
    if (avro_value_read(r->reader, &e->value)) {
        snprintf(detail, detail_size, "undecodable Avro: %.180s", avro_strerror());
        return DS_ERR_UNDECODABLE;
    }
    *out = &e->value;
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
