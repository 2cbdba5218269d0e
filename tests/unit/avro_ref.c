/*
 * avro_ref.c — see avro_ref.h.
 *
 * The values are kept in a short array searched by id: a test uses a
 * handful of ids.  A value is remade when the registry's schema for its id
 * is no longer the one it was made from (the id was added again).
 */
#include "avro_ref.h"

#include <stdio.h>
#include <stdlib.h>

#include "ds_avro_dec.h"

typedef struct ref_value {
    int32_t id;
    avro_schema_t schema; /* the registry's, when the value was made */
    avro_value_iface_t *iface;
    avro_value_t value;
} ref_value_t;

struct ref_avro {
    ds_registry_t *reg;
    avro_reader_t reader;
    ref_value_t *values;
    size_t n;
};

ref_avro_t *ref_avro_new(ds_registry_t *reg) {
    ref_avro_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->reg = reg;
    if (!(g->reader = avro_reader_memory("", 0))) {
        free(g);
        return NULL;
    }
    return g;
}

static void value_free(ref_value_t *v) {
    avro_value_decref(&v->value);
    avro_value_iface_decref(v->iface);
}

void ref_avro_destroy(ref_avro_t *g) {
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++)
        value_free(&g->values[i]);
    free(g->values);
    avro_reader_free(g->reader);
    free(g);
}

static ref_value_t *find(ref_avro_t *g, int32_t id) {
    for (size_t i = 0; i < g->n; i++)
        if (g->values[i].id == id)
            return &g->values[i];
    return NULL;
}

ds_err_t ref_avro_value(ref_avro_t *g, int32_t id, avro_value_t **out) {
    avro_schema_t s = ds_registry_schema(g->reg, id);
    if (!s)
        return DS_ERR_UNKNOWN_SCHEMA;
    ref_value_t *v = find(g, id);
    if (v && v->schema != s) { /* the id was added again: drop the old value */
        value_free(v);
        *v = g->values[--g->n];
        v = NULL;
    }
    if (!v) {
        ref_value_t nv = {.id = id, .schema = s};
        if (!(nv.iface = avro_generic_class_from_schema(s)))
            return DS_ERR_INVAL;
        ref_value_t *grown = realloc(g->values, (g->n + 1) * sizeof(*grown));
        if (!grown || avro_generic_value_new(nv.iface, &nv.value)) {
            if (grown)
                g->values = grown;
            avro_value_iface_decref(nv.iface);
            return grown ? DS_ERR_INVAL : DS_ERR_NOMEM;
        }
        g->values = grown;
        v = &g->values[g->n++];
        *v = nv;
    }
    avro_value_reset(&v->value);
    *out = &v->value;
    return DS_ERR_OK;
}

ds_err_t ref_avro_decode(ref_avro_t *g, const void *buf, size_t len, avro_value_t **out,
                         char *detail, size_t detail_size) {
    ds_avro_dec_rec_t rec;
    ds_err_t e = ds_avro_dec_read(g->reg, buf, len, &rec, detail, detail_size);
    if (e)
        return e;
    int32_t id;
    const void *payload;
    size_t plen;
    if ((e = ds_avro_dec_unframe(buf, len, &id, &payload, &plen)) ||
        (e = ref_avro_value(g, id, out)))
        return e;
    avro_reader_memory_set_source(g->reader, payload, (int64_t)plen);
    if (avro_value_read(g->reader, *out)) {
        snprintf(detail, detail_size, "undecodable Avro: %.180s", avro_strerror());
        return DS_ERR_UNDECODABLE;
    }
    return DS_ERR_OK;
}

ds_err_t ref_avro_encode(int32_t id, avro_value_t *v, ds_buf_t *out) {
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
