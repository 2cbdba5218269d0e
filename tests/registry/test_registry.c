/*
 * test_registry.c — see test_registry.h.
 *
 * One MHD polling thread answers every request, so the handlers run one
 * at a time; the mutex only guards the state against the test's own
 * thread (ds_treg_* calls).  Schemas are kept as parsed JSON (jansson)
 * beside two texts: the compact one the registry answers with, and a
 * key-sorted one that decides identity.  Compatibility follows Avro's
 * schema resolution rules: a reader can read a writer when their types
 * match or promote (int→long→float→double, string↔bytes), unions are
 * resolved branch by branch, records match by name and every reader
 * field is in the writer or has a default, enums keep the writer's
 * symbols or have a default.
 */
#include "test_registry.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CT "application/vnd.schemaregistry.v1+json"
#define MAX_SCHEMAS 1024
#define MAX_SUBJECTS 256
#define MAX_VERSIONS 64
#define MAX_BODY (1 << 20)

typedef struct schema {
    int32_t id;
    json_t *json;
    char *text; /* compact, as answered */
    char *key;  /* compact with sorted keys: identity */
} schema_t;

typedef struct subject {
    char *name;
    int nversions;
    int versions[MAX_VERSIONS]; /* indexes into schemas */
    char level[32];             /* "" = the global level */
} subject_t;

struct ds_treg {
    struct MHD_Daemon *d;
    int port;
    char auth[256]; /* expected Authorization header, "" = none */
    pthread_mutex_t lock;
    int32_t next_id;
    schema_t schemas[MAX_SCHEMAS];
    int nschemas;
    subject_t subjects[MAX_SUBJECTS];
    int nsubjects;
    char level[32];
    int fail_next;
    int registrations;
};

/* ---- small helpers -------------------------------------------------------- */

static void base64(const char *in, char *out, size_t out_size) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n && o + 5 < out_size; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, json_t *body) {
    char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!s)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", CT);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result error(struct MHD_Connection *c, unsigned status, int code, const char *msg) {
    return answer(c, status, json_pack("{s:i,s:s}", "error_code", code, "message", msg));
}

static subject_t *find_subject(ds_treg_t *r, const char *name) {
    for (int i = 0; i < r->nsubjects; i++)
        if (!strcmp(r->subjects[i].name, name))
            return &r->subjects[i];
    return NULL;
}

static schema_t *find_id(ds_treg_t *r, int32_t id) {
    for (int i = 0; i < r->nschemas; i++)
        if (r->schemas[i].id == id)
            return &r->schemas[i];
    return NULL;
}

static int find_key(ds_treg_t *r, const char *key) {
    for (int i = 0; i < r->nschemas; i++)
        if (!strcmp(r->schemas[i].key, key))
            return i;
    return -1;
}

/* ---- Avro schema resolution (reader can read writer) ---------------------- */

typedef struct names {
    json_t *defs[256]; /* named types met while walking one schema */
    int n;
} names_t;

static const char *full_name(json_t *t, char *buf, size_t size) {
    const char *name = json_string_value(json_object_get(t, "name"));
    const char *ns = json_string_value(json_object_get(t, "namespace"));
    if (!name)
        return "";
    if (strchr(name, '.') || !ns || !ns[0])
        return name;
    snprintf(buf, size, "%s.%s", ns, name);
    return buf;
}

static const char *short_name(const char *full) {
    const char *dot = strrchr(full, '.');
    return dot ? dot + 1 : full;
}

static void collect_names(json_t *t, names_t *nm, int depth) {
    if (depth > 64)
        return;
    if (json_is_array(t)) {
        for (size_t i = 0; i < json_array_size(t); i++)
            collect_names(json_array_get(t, i), nm, depth + 1);
        return;
    }
    if (!json_is_object(t))
        return;
    const char *type = json_string_value(json_object_get(t, "type"));
    if (!type)
        return;
    if ((!strcmp(type, "record") || !strcmp(type, "enum") || !strcmp(type, "fixed")) && nm->n < 256)
        nm->defs[nm->n++] = t;
    if (!strcmp(type, "record")) {
        json_t *fields = json_object_get(t, "fields");
        for (size_t i = 0; i < json_array_size(fields); i++)
            collect_names(json_object_get(json_array_get(fields, i), "type"), nm, depth + 1);
    } else if (!strcmp(type, "array")) {
        collect_names(json_object_get(t, "items"), nm, depth + 1);
    } else if (!strcmp(type, "map")) {
        collect_names(json_object_get(t, "values"), nm, depth + 1);
    }
}

/* A type with named references replaced by their definitions and
 * {"type": "long"} by "long". */
static json_t *deref(json_t *t, const names_t *nm) {
    if (json_is_string(t)) {
        const char *s = json_string_value(t);
        for (int i = 0; i < nm->n; i++) {
            char buf[512];
            const char *fn = full_name(nm->defs[i], buf, sizeof(buf));
            if (!strcmp(fn, s) || !strcmp(short_name(fn), s))
                return nm->defs[i];
        }
        return t;
    }
    if (json_is_object(t)) {
        json_t *inner = json_object_get(t, "type");
        if (json_is_string(inner)) {
            const char *s = json_string_value(inner);
            if (strcmp(s, "record") && strcmp(s, "enum") && strcmp(s, "fixed") &&
                strcmp(s, "array") && strcmp(s, "map"))
                return inner; /* a primitive with attributes (logicalType) */
        }
    }
    return t;
}

static const char *kind(json_t *t) {
    if (json_is_string(t))
        return json_string_value(t);
    if (json_is_array(t))
        return "union";
    return json_string_value(json_object_get(t, "type"));
}

static bool promotes(const char *w, const char *r) {
    if (!strcmp(w, r))
        return true;
    if (!strcmp(w, "int"))
        return !strcmp(r, "long") || !strcmp(r, "float") || !strcmp(r, "double");
    if (!strcmp(w, "long"))
        return !strcmp(r, "float") || !strcmp(r, "double");
    if (!strcmp(w, "float"))
        return !strcmp(r, "double");
    if (!strcmp(w, "string"))
        return !strcmp(r, "bytes");
    if (!strcmp(w, "bytes"))
        return !strcmp(r, "string");
    return false;
}

typedef struct why {
    char type[64];
    char text[1024];
} why_t;

/* Says in *why why the reader cannot read the writer's data: Confluent's
 * error type and a text from fmt; returns false. */
__attribute__((format(printf, 3, 4))) static bool cannot(why_t *why, const char *type,
                                                         const char *fmt, ...) {
    snprintf(why->type, sizeof(why->type), "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->text, sizeof(why->text), fmt, ap);
    va_end(ap);
    return false;
}

static bool reads(json_t *rt, const names_t *rn, json_t *wt, const names_t *wn, const char *path,
                  why_t *why, int depth) {
    if (depth > 64)
        return true;
    rt = deref(rt, rn);
    wt = deref(wt, wn);
    const char *rk = kind(rt), *wk = kind(wt);
    if (!rk || !wk) {
        return cannot(why, "TYPE_MISMATCH", "unreadable type at path '%.300s'", path);
    }
    if (!strcmp(wk, "union")) {
        for (size_t i = 0; i < json_array_size(wt); i++)
            if (!reads(rt, rn, json_array_get(wt, i), wn, path, why, depth + 1))
                return false;
        return true;
    }
    if (!strcmp(rk, "union")) {
        for (size_t i = 0; i < json_array_size(rt); i++) {
            why_t ignore;
            if (reads(json_array_get(rt, i), rn, wt, wn, path, &ignore, depth + 1))
                return true;
        }
        return cannot(
            why, "MISSING_UNION_BRANCH",
            "The new schema is missing a type inside a union field at path '%.300s' in the old "
            "schema: %.50s",
            path, wk);
    }
    if (strcmp(rk, wk)) {
        if (promotes(wk, rk))
            return true;
        return cannot(
            why, "TYPE_MISMATCH",
            "The type (path '%.300s') of a field in the new schema does not match with the old "
            "schema: %.50s is not %.50s",
            path, rk, wk);
    }
    char rb[512], wb[512];
    if (!strcmp(rk, "record") || !strcmp(rk, "enum") || !strcmp(rk, "fixed")) {
        const char *rname = full_name(rt, rb, sizeof(rb)), *wname = full_name(wt, wb, sizeof(wb));
        if (strcmp(rname, wname) && strcmp(short_name(rname), short_name(wname))) {
            return cannot(
                why, "NAME_MISMATCH",
                "The name of the schema has changed (path '%.300s'): %.200s is not %.200s", path,
                rname, wname);
        }
    }
    if (!strcmp(rk, "record")) {
        json_t *rf = json_object_get(rt, "fields"), *wf = json_object_get(wt, "fields");
        for (size_t i = 0; i < json_array_size(rf); i++) {
            json_t *f = json_array_get(rf, i);
            const char *name = json_string_value(json_object_get(f, "name"));
            json_t *match = NULL;
            for (size_t j = 0; name && j < json_array_size(wf) && !match; j++)
                if (!strcmp(json_string_value(json_object_get(json_array_get(wf, j), "name")) ?: "",
                            name))
                    match = json_array_get(wf, j);
            char fpath[512];
            snprintf(fpath, sizeof(fpath), "%.300s/fields/%zu", path, i);
            if (!match) {
                if (json_object_get(f, "default"))
                    continue;
                return cannot(
                    why, "READER_FIELD_MISSING_DEFAULT_VALUE",
                    "The field '%.100s' at path '%.300s' in the new schema has no default value "
                    "and is missing in the old schema",
                    name ? name : "?", fpath);
            }
            if (!reads(json_object_get(f, "type"), rn, json_object_get(match, "type"), wn, fpath,
                       why, depth + 1))
                return false;
        }
        return true;
    }
    if (!strcmp(rk, "enum")) {
        if (json_object_get(rt, "default"))
            return true;
        json_t *rs = json_object_get(rt, "symbols"), *ws = json_object_get(wt, "symbols");
        for (size_t j = 0; j < json_array_size(ws); j++) {
            const char *sym = json_string_value(json_array_get(ws, j));
            bool found = false;
            for (size_t i = 0; i < json_array_size(rs) && !found; i++)
                found = sym && !strcmp(sym, json_string_value(json_array_get(rs, i)) ?: "");
            if (!found) {
                return cannot(
                    why, "MISSING_ENUM_SYMBOLS",
                    "The new schema is missing enum symbols '[%.100s]' at path '%.300s' in the old "
                    "schema",
                    sym ? sym : "?", path);
            }
        }
        return true;
    }
    if (!strcmp(rk, "array"))
        return reads(json_object_get(rt, "items"), rn, json_object_get(wt, "items"), wn, path, why,
                     depth + 1);
    if (!strcmp(rk, "map"))
        return reads(json_object_get(rt, "values"), rn, json_object_get(wt, "values"), wn, path,
                     why, depth + 1);
    if (!strcmp(rk, "fixed") && json_integer_value(json_object_get(rt, "size")) !=
                                    json_integer_value(json_object_get(wt, "size"))) {
        return cannot(why, "FIXED_SIZE_MISMATCH", "fixed size differs at path '%.300s'", path);
    }
    return true;
}

static bool can_read(json_t *reader, json_t *writer, why_t *why) {
    names_t rn = {.n = 0}, wn = {.n = 0};
    collect_names(reader, &rn, 0);
    collect_names(writer, &wn, 0);
    return reads(reader, &rn, writer, &wn, "", why, 0);
}

/* A schema that Avro accepts at all: a primitive name, a union, or an
 * object with a known type; records need a name and fields. */
static bool valid(json_t *t, int depth) {
    static const char *const prims[] = {"null",  "boolean", "int",   "long",
                                        "float", "double",  "bytes", "string"};
    if (depth > 64)
        return false;
    if (json_is_string(t))
        return true; /* a primitive or a named reference */
    if (json_is_array(t)) {
        for (size_t i = 0; i < json_array_size(t); i++)
            if (!valid(json_array_get(t, i), depth + 1))
                return false;
        return json_array_size(t) > 0;
    }
    const char *type = json_string_value(json_object_get(t, "type"));
    if (!type)
        return false;
    if (!strcmp(type, "record") || !strcmp(type, "error")) {
        json_t *fields = json_object_get(t, "fields");
        if (!json_is_string(json_object_get(t, "name")) || !json_is_array(fields))
            return false;
        for (size_t i = 0; i < json_array_size(fields); i++) {
            json_t *f = json_array_get(fields, i);
            if (!json_is_string(json_object_get(f, "name")) ||
                !valid(json_object_get(f, "type"), depth + 1))
                return false;
        }
        return true;
    }
    if (!strcmp(type, "enum"))
        return json_is_string(json_object_get(t, "name")) &&
               json_is_array(json_object_get(t, "symbols"));
    if (!strcmp(type, "fixed"))
        return json_is_string(json_object_get(t, "name")) &&
               json_is_integer(json_object_get(t, "size"));
    if (!strcmp(type, "array"))
        return valid(json_object_get(t, "items"), depth + 1);
    if (!strcmp(type, "map"))
        return valid(json_object_get(t, "values"), depth + 1);
    for (size_t i = 0; i < sizeof(prims) / sizeof(prims[0]); i++)
        if (!strcmp(type, prims[i]))
            return true;
    return false;
}

/* ---- the operations ------------------------------------------------------- */

typedef struct outcome {
    unsigned status;
    int code;
    char message[2048];
    int32_t id;
    int version;
} outcome_t;

static void level_of(ds_treg_t *r, subject_t *s, char *out, size_t size) {
    snprintf(out, size, "%s", s && s->level[0] ? s->level : r->level);
}

/* POST /subjects/{s}/versions (r->lock held). */
static void do_register(ds_treg_t *r, const char *subject, const char *text, outcome_t *o) {
    memset(o, 0, sizeof(*o));
    json_error_t jerr;
    json_t *js = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!js || !valid(js, 0)) {
        json_decref(js);
        o->status = 422;
        o->code = 42201;
        snprintf(o->message, sizeof(o->message), "Invalid schema %s", text);
        return;
    }
    char *key = json_dumps(js, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    subject_t *s = find_subject(r, subject);
    int existing = find_key(r, key);
    if (s && existing >= 0) {
        for (int v = 0; v < s->nversions; v++) {
            if (s->versions[v] == existing) { /* already this subject's: same id */
                o->status = 200;
                o->id = r->schemas[existing].id;
                o->version = v + 1;
                free(key);
                json_decref(js);
                return;
            }
        }
    }
    if (s && s->nversions) {
        char level[32];
        level_of(r, s, level, sizeof(level));
        bool transitive = strstr(level, "_TRANSITIVE") != NULL;
        bool back = !strncmp(level, "BACKWARD", 8) || !strncmp(level, "FULL", 4);
        bool fwd = !strncmp(level, "FORWARD", 7) || !strncmp(level, "FULL", 4);
        for (int v = s->nversions - 1; v >= (transitive ? 0 : s->nversions - 1); v--) {
            json_t *old = r->schemas[s->versions[v]].json;
            why_t why = {"", ""};
            bool ok = (!back || can_read(js, old, &why)) && (!fwd || can_read(old, js, &why));
            if (!ok) {
                o->status = 409;
                o->code = 409;
                snprintf(o->message, sizeof(o->message),
                         "Schema being registered is incompatible with an earlier schema for "
                         "subject \"%s\", details: [{errorType:'%s', description:'%s'}, "
                         "{oldSchemaVersion: %d}, {oldSchema: '%.600s'}, {compatibility: '%s'}]",
                         subject, why.type, why.text, v + 1, r->schemas[s->versions[v]].text,
                         level);
                free(key);
                json_decref(js);
                return;
            }
        }
    }
    if (!s) {
        if (r->nsubjects == MAX_SUBJECTS)
            goto full;
        s = &r->subjects[r->nsubjects++];
        memset(s, 0, sizeof(*s));
        s->name = strdup(subject);
    }
    if (s->nversions == MAX_VERSIONS)
        goto full;
    if (existing < 0) {
        if (r->nschemas == MAX_SCHEMAS)
            goto full;
        existing = r->nschemas++;
        schema_t *sc = &r->schemas[existing];
        sc->id = r->next_id++;
        sc->json = js;
        sc->text = json_dumps(js, JSON_COMPACT | JSON_ENCODE_ANY);
        sc->key = key;
        js = NULL;
        key = NULL;
    }
    s->versions[s->nversions++] = existing;
    o->status = 200;
    o->id = r->schemas[existing].id;
    o->version = s->nversions;
    r->registrations++;
    free(key);
    json_decref(js);
    return;
full:
    free(key);
    json_decref(js);
    o->status = 500;
    o->code = 50001;
    snprintf(o->message, sizeof(o->message), "Error in the backend datastore: test registry full");
}

/* ---- HTTP ----------------------------------------------------------------- */

typedef struct upload {
    char *data;
    size_t len;
    bool too_big;
} upload_t;

static json_t *body_json(const upload_t *u) {
    json_error_t jerr;
    return u && u->len ? json_loadb(u->data, u->len, 0, &jerr) : NULL;
}

static enum MHD_Result route(ds_treg_t *r, struct MHD_Connection *c, const char *url,
                             const char *method, const upload_t *u) {
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), put = !strcmp(method, "PUT");
    char subject[1024] = "", rest[256] = "";
    /* /subjects[/{s}[/versions[/{v}]]] */
    if (!strcmp(url, "/subjects") && get) {
        json_t *a = json_array();
        for (int i = 0; i < r->nsubjects; i++)
            if (r->subjects[i].nversions)
                json_array_append_new(a, json_string(r->subjects[i].name));
        return answer(c, 200, a);
    }
    if (!strncmp(url, "/subjects/", 10)) {
        const char *s = url + 10;
        const char *slash = strchr(s, '/');
        snprintf(subject, sizeof(subject), "%.*s", slash ? (int)(slash - s) : (int)strlen(s), s);
        if (slash)
            snprintf(rest, sizeof(rest), "%s", slash);
        subject_t *sub = find_subject(r, subject);
        if (sub && !sub->nversions) /* only a level set on it: no subject yet */
            sub = NULL;
        char msg[1200];
        snprintf(msg, sizeof(msg), "Subject '%s' not found.", subject);
        if (!rest[0] && post) { /* lookup */
            json_t *b = body_json(u);
            const char *text = b ? json_string_value(json_object_get(b, "schema")) : NULL;
            if (!text) {
                json_decref(b);
                return error(c, 422, 42201, "Invalid schema: no \"schema\" string");
            }
            json_error_t jerr;
            json_t *js = json_loads(text, JSON_DECODE_ANY, &jerr);
            char *key = js ? json_dumps(js, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
            json_decref(js);
            json_decref(b);
            if (!key)
                return error(c, 422, 42201, "Invalid schema");
            int idx = find_key(r, key);
            free(key);
            if (!sub)
                return error(c, 404, 40401, msg);
            for (int v = 0; idx >= 0 && v < sub->nversions; v++)
                if (sub->versions[v] == idx)
                    return answer(c, 200,
                                  json_pack("{s:s,s:i,s:i,s:s}", "subject", subject, "version",
                                            v + 1, "id", (int)r->schemas[idx].id, "schema",
                                            r->schemas[idx].text));
            return error(c, 404, 40403, "Schema not found");
        }
        if (!strcmp(rest, "/versions") && post) {
            json_t *b = body_json(u);
            const char *text = b ? json_string_value(json_object_get(b, "schema")) : NULL;
            const char *type = b ? json_string_value(json_object_get(b, "schemaType")) : NULL;
            if (!text || (type && strcmp(type, "AVRO"))) {
                json_decref(b);
                return error(c, 422, 42201,
                             text ? "Invalid schema type: only AVRO here"
                                  : "Invalid schema: no \"schema\" string");
            }
            outcome_t o;
            do_register(r, subject, text, &o);
            json_decref(b);
            if (o.status != 200)
                return error(c, o.status, o.code, o.message);
            return answer(c, 200, json_pack("{s:i}", "id", (int)o.id));
        }
        if (!strcmp(rest, "/versions") && get) {
            if (!sub)
                return error(c, 404, 40401, msg);
            json_t *a = json_array();
            for (int v = 0; v < sub->nversions; v++)
                json_array_append_new(a, json_integer(v + 1));
            return answer(c, 200, a);
        }
        if (!strncmp(rest, "/versions/", 10) && get) {
            if (!sub)
                return error(c, 404, 40401, msg);
            const char *v = rest + 10;
            char *end;
            long n = !strcmp(v, "latest") ? sub->nversions : strtol(v, &end, 10);
            if (strcmp(v, "latest") && (*end || end == v))
                return error(c, 422, 42202,
                             "The specified version is not a valid version id. Allowed values "
                             "are between [1, 2^31-1] and the string \"latest\"");
            if (n < 1 || n > sub->nversions) {
                snprintf(msg, sizeof(msg), "Version %s not found.", v);
                return error(c, 404, 40402, msg);
            }
            schema_t *sc = &r->schemas[sub->versions[n - 1]];
            return answer(c, 200,
                          json_pack("{s:s,s:i,s:i,s:s}", "subject", subject, "version", (int)n,
                                    "id", (int)sc->id, "schema", sc->text));
        }
        return error(c, 405, 405, "HTTP 405 Method Not Allowed");
    }
    if (!strncmp(url, "/schemas/ids/", 13) && get) {
        char *end;
        long id = strtol(url + 13, &end, 10);
        schema_t *sc = *end ? NULL : find_id(r, (int32_t)id);
        if (!sc) {
            char msg[128];
            snprintf(msg, sizeof(msg), "Schema %ld not found", id);
            return error(c, 404, 40403, msg);
        }
        return answer(c, 200, json_pack("{s:s}", "schema", sc->text));
    }
    if (!strcmp(url, "/config") || !strncmp(url, "/config/", 8)) {
        subject_t *sub = url[7] ? find_subject(r, url + 8) : NULL;
        if (get) {
            if (!url[7])
                return answer(c, 200, json_pack("{s:s}", "compatibilityLevel", r->level));
            if (!sub || !sub->level[0]) {
                char msg[1200];
                snprintf(msg, sizeof(msg),
                         "Subject '%s' does not have subject-level compatibility configured",
                         url + 8);
                return error(c, 404, 40408, msg);
            }
            return answer(c, 200, json_pack("{s:s}", "compatibilityLevel", sub->level));
        }
        if (put) {
            json_t *b = body_json(u);
            const char *l = b ? json_string_value(json_object_get(b, "compatibility")) : NULL;
            static const char *const levels[] = {
                "NONE", "BACKWARD",       "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
                "FULL", "FULL_TRANSITIVE"};
            bool ok = false;
            for (size_t i = 0; l && i < sizeof(levels) / sizeof(levels[0]); i++)
                ok |= !strcmp(l, levels[i]);
            if (!ok) {
                json_decref(b);
                return error(c, 422, 42203, "Invalid compatibility level");
            }
            char level[32];
            snprintf(level, sizeof(level), "%s", l);
            json_decref(b);
            if (url[7]) {
                if (!sub && r->nsubjects < MAX_SUBJECTS) {
                    sub = &r->subjects[r->nsubjects++];
                    memset(sub, 0, sizeof(*sub));
                    sub->name = strdup(url + 8);
                }
                if (sub)
                    snprintf(sub->level, sizeof(sub->level), "%s", level);
            } else {
                snprintf(r->level, sizeof(r->level), "%s", level);
            }
            return answer(c, 200, json_pack("{s:s}", "compatibility", level));
        }
    }
    return error(c, 404, 404, "HTTP 404 Not Found");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
    (void)version;
    ds_treg_t *r = cls;
    upload_t *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (!u)
            return MHD_NO;
        *con_cls = u;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (u->len + *upload_data_size > MAX_BODY) {
            u->too_big = true;
        } else {
            char *n = realloc(u->data, u->len + *upload_data_size + 1);
            if (!n)
                return MHD_NO;
            u->data = n;
            memcpy(u->data + u->len, upload_data, *upload_data_size);
            u->len += *upload_data_size;
            u->data[u->len] = '\0';
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (u->too_big)
        return error(c, 413, 413, "Request too large");
    pthread_mutex_lock(&r->lock);
    enum MHD_Result ret;
    if (r->auth[0]) {
        const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!a || strcmp(a, r->auth)) {
            struct MHD_Response *resp = MHD_create_response_from_buffer(
                strlen("{\"error_code\":401,\"message\":\"Unauthorized\"}"),
                (void *)"{\"error_code\":401,\"message\":\"Unauthorized\"}",
                MHD_RESPMEM_PERSISTENT);
            MHD_add_response_header(resp, "Content-Type", CT);
            MHD_add_response_header(resp, "WWW-Authenticate", "Basic realm=\"SchemaRegistry\"");
            ret = MHD_queue_response(c, 401, resp);
            MHD_destroy_response(resp);
            pthread_mutex_unlock(&r->lock);
            return ret;
        }
    }
    if (r->fail_next > 0) {
        r->fail_next--;
        ret = error(c, 500, 50001, "Error in the backend datastore");
    } else {
        ret = route(r, c, url, method, u);
    }
    pthread_mutex_unlock(&r->lock);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    upload_t *u = *con_cls;
    if (u) {
        free(u->data);
        free(u);
        *con_cls = NULL;
    }
}

ds_treg_t *ds_treg_start(const ds_treg_opts_t *opts) {
    ds_treg_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    snprintf(r->level, sizeof(r->level), "BACKWARD");
    r->next_id =
        opts && opts->first_id > 0
            ? opts->first_id
            : 1000 + (int32_t)(((unsigned)time(NULL) * 2654435761u ^ (unsigned)getpid()) % 999000u);
    if (opts && opts->auth) {
        char b64[400];
        base64(opts->auth, b64, sizeof(b64));
        snprintf(r->auth, sizeof(r->auth), "Basic %.240s", b64);
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)(opts ? opts->port : 0));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            handler, r, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, r, MHD_OPTION_END);
    if (!r->d) {
        pthread_mutex_destroy(&r->lock);
        free(r);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    r->port = info ? info->port : 0;
    return r;
}

int ds_treg_port(const ds_treg_t *r) {
    return r->port;
}

void ds_treg_fail_next(ds_treg_t *r, int n) {
    pthread_mutex_lock(&r->lock);
    r->fail_next = n;
    pthread_mutex_unlock(&r->lock);
}

int ds_treg_registrations(const ds_treg_t *r) {
    pthread_mutex_lock((pthread_mutex_t *)&r->lock);
    int n = r->registrations;
    pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
    return n;
}

int32_t ds_treg_latest_id(ds_treg_t *r, const char *subject) {
    pthread_mutex_lock(&r->lock);
    subject_t *s = find_subject(r, subject);
    int32_t id = s && s->nversions ? r->schemas[s->versions[s->nversions - 1]].id : -1;
    pthread_mutex_unlock(&r->lock);
    return id;
}

int32_t ds_treg_register(ds_treg_t *r, const char *subject, const char *schema_json) {
    outcome_t o;
    pthread_mutex_lock(&r->lock);
    do_register(r, subject, schema_json, &o);
    pthread_mutex_unlock(&r->lock);
    return o.status == 200 ? o.id : -(int32_t)o.status;
}

void ds_treg_set_level(ds_treg_t *r, const char *subject, const char *level) {
    pthread_mutex_lock(&r->lock);
    if (!subject) {
        snprintf(r->level, sizeof(r->level), "%s", level);
    } else {
        subject_t *s = find_subject(r, subject);
        if (!s && r->nsubjects < MAX_SUBJECTS) {
            s = &r->subjects[r->nsubjects++];
            memset(s, 0, sizeof(*s));
            s->name = strdup(subject);
        }
        if (s)
            snprintf(s->level, sizeof(s->level), "%s", level);
    }
    pthread_mutex_unlock(&r->lock);
}

void ds_treg_stop(ds_treg_t *r) {
    if (!r)
        return;
    MHD_stop_daemon(r->d);
    for (int i = 0; i < r->nschemas; i++) {
        json_decref(r->schemas[i].json);
        free(r->schemas[i].text);
        free(r->schemas[i].key);
    }
    for (int i = 0; i < r->nsubjects; i++)
        free(r->subjects[i].name);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
