/*
 * ds_registry.c — see ds_registry.h.
 *
 * Entries are kept in a uthash table keyed by id.  Adding an entry parses
 * the JSON with avro-c and compiles the plan (compile()): one node per
 * schema object with links followed, found again by a linear search of the
 * entry's nodes, so a recursive type points back at its own node instead
 * of recursing forever.  All of an entry's nodes are also kept in a flat
 * array so that freeing the entry frees each once.
 *
 * The fetcher is asked on every miss; its error class (DS_ERR_IO or not)
 * and text are kept for the reader to tell "the registry did not answer"
 * from "no such schema".
 */
#include "ds_registry.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "ds_buf.h"
#include "ds_registry_plan.h"

typedef struct entry {
    ds_registry_entry_t pub;
    int32_t id;
    ds_registry_plan_t **plans; /* every node of pub.plan, to free */
    size_t nplans;
    UT_hash_handle hh;
} entry_t;

struct ds_registry {
    entry_t *entries;
    ds_registry_fetch_fn fetch;
    void *fetch_opaque;
    ds_err_t fetch_err; /* of the last fetch that failed */
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

void ds_registry_init(size_t max_alloc) {
    static int done;
    if (max_alloc)
        g_max_alloc = max_alloc < (1u << 20) ? (1u << 20) : max_alloc;
    if (!done) {
        avro_set_allocator(capped_alloc, NULL);
        done = 1;
    }
}

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
    e->pub.plan = NULL;
}

/* The node of s (links followed), made once per schema object: a named
 * type met again (recursion through a link) gets the same node. */
static ds_registry_plan_t *compile(entry_t *e, avro_schema_t s) {
    s = deref(s);
    if (!s)
        return NULL;
    for (size_t i = 0; i < e->nplans; i++)
        if (e->plans[i]->s == s)
            return e->plans[i];
    ds_registry_plan_t **np = realloc(e->plans, (e->nplans + 1) * sizeof(*np));
    if (!np)
        return NULL;
    e->plans = np;
    ds_registry_plan_t *p = calloc(1, sizeof(*p));
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
    const ds_registry_plan_t **kids = calloc(nk, sizeof(*kids));
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

/* ---- the cache ----------------------------------------------------------------- */

static void entry_free(entry_t *e) {
    plans_free(e);
    avro_schema_decref(e->pub.schema);
    free(e->pub.pos);
    free(e);
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
    e->pub.schema = s;
    if (avro_typeof(s) == AVRO_RECORD && (e->pub.nfields = avro_schema_record_size(s)) &&
        !(e->pub.pos = calloc(e->pub.nfields, sizeof(*e->pub.pos)))) {
        entry_free(e);
        return DS_ERR_NOMEM;
    }
    if (!(e->pub.plan = compile(e, s))) {
        entry_free(e);
        return DS_ERR_NOMEM;
    }
    entry_t *old;
    HASH_FIND_INT(r->entries, &id, old);
    if (old) {
        HASH_DEL(r->entries, old);
        entry_free(old);
    }
    HASH_ADD_INT(r->entries, id, e);
    return DS_ERR_OK;
}

ds_registry_t *ds_registry_new(void) {
    return calloc(1, sizeof(ds_registry_t));
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
        entry_free(e);
    }
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

ds_registry_entry_t *ds_registry_entry(ds_registry_t *r, int32_t id, const char **io_err) {
    r->fetch_err = DS_ERR_OK;
    entry_t *e = lookup(r, id);
    if (io_err)
        *io_err = !e && r->fetch_err == DS_ERR_IO ? r->fetch_detail : NULL;
    return e ? &e->pub : NULL;
}

avro_schema_t ds_registry_schema(ds_registry_t *r, int32_t id) {
    entry_t *e = lookup(r, id);
    return e ? e->pub.schema : NULL;
}
