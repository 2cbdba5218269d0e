/*
 * registry_open.c — the schema registry a worker uses, and the ids its
 * outputs are written with.
 *
 * Without schema_registry.url the embedded directory (schemas.dir,
 * `<id>-<Name>.avsc`) is the registry: input ids are looked up there and
 * outputs carry schema_ids.* (3, 4, 5 by default).
 *
 * With schema_registry.url every id is the registry's: the cache starts
 * empty and input schemas are fetched by id (GET /schemas/ids/{id}), so a
 * registry's id 3 is never mistaken for the embedded LeadScore.  Each
 * output schema (the text of schemas.dir's `<n>-<Record>.avsc`) is
 * registered under its subject at start-up (or, with
 * schema_registry.auto_register false, looked up there) and records carry
 * the id the registry returns, as Confluent's serializers do; the schema is
 * put in the cache under that id, so encoding never waits for the
 * registry.  A schema_ids.* that is set explicitly wins: that id is
 * written, nothing is registered for it, and its schema is fetched by id
 * and must be the expected record.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "ds_log.h"
#include "ds_registry.h"
#include "ds_registry_http.h"
#include "worker.h"

#define REGISTRY_TIMEOUT_MS 5000
#define DEFAULT_DIR "schemas" /* schemas.dir's default */

static ds_err_t fetch(void *opaque, int32_t id, char **json, char *errstr, size_t errstr_size) {
    const ds_config_t *cfg = opaque;
    return ds_registry_http_fetch(cfg->schema_registry_url, id, REGISTRY_TIMEOUT_MS, json, errstr,
                                  errstr_size);
}

/* The default directory, absent from the working directory: the schemas
 * compiled into the binary stand for it.  A directory named explicitly
 * must exist. */
static bool use_builtin(const char *dir) {
    struct stat st;
    return !strcmp(dir, DEFAULT_DIR) && stat(dir, &st) != 0 && errno == ENOENT;
}

static ds_registry_t *open_builtin(char *errstr, size_t errstr_size) {
    ds_registry_t *r = ds_registry_new();
    if (!r) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    for (const ds_schema_file_t *f = ds_builtin_schemas; f->name; f++) {
        ds_err_t e = ds_registry_add_json(r, (int32_t)strtol(f->name, NULL, 10), f->json, errstr,
                                          errstr_size);
        if (e) {
            ds_registry_destroy(r);
            return NULL;
        }
    }
    return r;
}

ds_registry_t *ds_registry_open_dir(const char *dir, char *errstr, size_t errstr_size) {
    if (!dir)
        dir = DEFAULT_DIR;
    if (use_builtin(dir))
        return open_builtin(errstr, errstr_size);
    return ds_registry_new_dir(dir, errstr, errstr_size);
}

/* The highest-numbered built-in <id>-<record>.avsc, copied; NULL if none. */
static char *builtin_text(const char *record, char *errstr, size_t errstr_size) {
    const ds_schema_file_t *best = NULL;
    long best_id = -1;
    size_t rl = strlen(record);
    for (const ds_schema_file_t *f = ds_builtin_schemas; f->name; f++) {
        char *end;
        long id = strtol(f->name, &end, 10);
        if (*end == '-' && !strncmp(end + 1, record, rl) && !strcmp(end + 1 + rl, ".avsc") &&
            id > best_id) {
            best = f;
            best_id = id;
        }
    }
    char *copy = best ? strdup(best->json) : NULL;
    if (!copy)
        snprintf(errstr, errstr_size, best ? "out of memory" : "no built-in <id>-%s.avsc",
                 record);
    return copy;
}

bool ds_registry_is_remote(const ds_config_t *cfg) {
    return cfg->schema_registry_url && cfg->schema_registry_url[0];
}

static ds_err_t fetch_url(void *opaque, int32_t id, char **json, char *errstr, size_t errstr_size) {
    return ds_registry_http_fetch(opaque, id, REGISTRY_TIMEOUT_MS, json, errstr, errstr_size);
}

ds_registry_t *ds_registry_open_url(const char *url, char *errstr, size_t errstr_size) {
    ds_registry_t *r = ds_registry_new();
    if (!r)
        snprintf(errstr, errstr_size, "out of memory");
    else
        ds_registry_set_fetcher(r, fetch_url, (void *)url);
    return r;
}

ds_registry_t *ds_registry_open(const ds_config_t *cfg, char *errstr, size_t errstr_size) {
    if (!ds_registry_is_remote(cfg))
        return ds_registry_open_dir(cfg->schemas_dir, errstr, errstr_size);
    ds_registry_t *r = ds_registry_new();
    if (!r) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    ds_registry_set_fetcher(r, fetch, (void *)cfg);
    return r;
}

char *ds_schema_file_text(const char *dir, const char *record, char *errstr, size_t errstr_size) {
    char path[4096] = "";
    if (!dir)
        dir = DEFAULT_DIR;
    if (use_builtin(dir))
        return builtin_text(record, errstr, errstr_size);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(errstr, errstr_size, "schemas directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    long best = -1;
    size_t rl = strlen(record);
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long id = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end != '-' || strncmp(end + 1, record, rl) ||
            strcmp(end + 1 + rl, ".avsc") || id <= best)
            continue;
        best = id;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    }
    closedir(d);
    if (best < 0) {
        snprintf(errstr, errstr_size, "no <id>-%s.avsc in %s", record, dir);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    ds_buf_t b;
    ds_buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t got;
    ds_err_t e = f ? DS_ERR_OK : DS_ERR_IO;
    while (!e && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        e = ds_buf_append(&b, chunk, got);
    if (f)
        fclose(f);
    if (!e)
        e = ds_buf_append(&b, "", 1);
    if (e) {
        snprintf(errstr, errstr_size, "%s: %s", path, f ? ds_err2str(e) : strerror(errno));
        ds_buf_free(&b);
        return NULL;
    }
    return (char *)b.data; /* ds_buf's bytes are malloc'ed: now the caller's */
}

ds_err_t ds_schema_subject(const char *strategy, const char *topic, const char *schema_json,
                           char *out, size_t out_size, char *errstr, size_t errstr_size) {
    if (!strategy || !strcmp(strategy, "topic")) {
        int n = snprintf(out, out_size, "%s-value", topic);
        if (n < 0 || (size_t)n >= out_size) {
            snprintf(errstr, errstr_size, "subject of topic %.100s: too long", topic);
            return DS_ERR_INVAL;
        }
        return DS_ERR_OK;
    }
    /* record: the record's full name, as Confluent's RecordNameStrategy */
    json_error_t jerr;
    json_t *root = json_loads(schema_json, 0, &jerr);
    const char *name = root ? json_string_value(json_object_get(root, "name")) : NULL;
    const char *ns = root ? json_string_value(json_object_get(root, "namespace")) : NULL;
    ds_err_t e = DS_ERR_OK;
    int n = -1;
    if (!name)
        snprintf(errstr, errstr_size, "schema has no record name");
    else if (strchr(name, '.') || !ns || !ns[0])
        n = snprintf(out, out_size, "%s", name);
    else
        n = snprintf(out, out_size, "%s.%s", ns, name);
    if (n < 0 || (size_t)n >= out_size) {
        if (name)
            snprintf(errstr, errstr_size, "subject of record %.100s: too long", name);
        e = DS_ERR_INVAL;
    }
    json_decref(root);
    return e;
}

/* An explicitly set id with a registry: fetch its schema and check that it
 * is the record the output is. */
static ds_err_t resolve_explicit(const ds_config_t *cfg, ds_registry_t *reg, ds_output_schema_t *o,
                                 char *errstr, size_t errstr_size) {
    char *json = NULL;
    char err[1024];
    ds_err_t e = ds_registry_http_fetch(cfg->schema_registry_url, o->configured_id,
                                        REGISTRY_TIMEOUT_MS, &json, err, sizeof(err));
    if (e == DS_ERR_UNKNOWN_SCHEMA) {
        snprintf(errstr, errstr_size,
                 "%s is set to %d, which the schema registry does not know (%s); unset it to "
                 "have the %s schema registered, or set an id the registry has",
                 o->id_setting, (int)o->configured_id, err, o->record);
        return DS_ERR_CONFIG;
    }
    if (e) {
        snprintf(errstr, errstr_size, "%s %d: %s", o->id_setting, (int)o->configured_id, err);
        return e == DS_ERR_IO ? DS_ERR_IO : DS_ERR_CONFIG;
    }
    e = ds_registry_add_json(reg, o->configured_id, json, err, sizeof(err));
    free(json);
    if (e) {
        snprintf(errstr, errstr_size, "%s %d: %s", o->id_setting, (int)o->configured_id, err);
        return DS_ERR_CONFIG;
    }
    avro_schema_t s = ds_registry_schema(reg, o->configured_id);
    const char *name = s && avro_typeof(s) == AVRO_RECORD ? avro_schema_name(s) : NULL;
    if (!name || strcmp(name, o->record)) {
        snprintf(errstr, errstr_size, "%s %d is %s%s in the schema registry, not a %s record",
                 o->id_setting, (int)o->configured_id, name ? "a record named " : "not a record",
                 name ? name : "", o->record);
        return DS_ERR_CONFIG;
    }
    o->id = o->configured_id;
    return DS_ERR_OK;
}

static ds_err_t resolve_one(const ds_config_t *cfg, ds_registry_t *reg, ds_output_schema_t *o,
                            char *errstr, size_t errstr_size) {
    if (ds_config_is_set(cfg, o->id_setting))
        return resolve_explicit(cfg, reg, o, errstr, errstr_size);
    char err[1536];
    char *json = ds_schema_file_text(cfg->schemas_dir, o->record, err, sizeof(err));
    if (!json) {
        snprintf(errstr, errstr_size, "%s schema: %s", o->record, err);
        return DS_ERR_CONFIG;
    }
    char subject[512];
    ds_err_t e = ds_schema_subject(cfg->schema_registry_subject_strategy, o->topic, json, subject,
                                   sizeof(subject), err, sizeof(err));
    bool reg_on = strcmp(cfg->schema_registry_auto_register, "false") != 0;
    int32_t id = -1;
    if (!e && reg_on)
        e = ds_registry_http_register(cfg->schema_registry_url, subject, json, REGISTRY_TIMEOUT_MS,
                                      &id, err, sizeof(err));
    else if (!e)
        e = ds_registry_http_lookup(cfg->schema_registry_url, subject, json, REGISTRY_TIMEOUT_MS,
                                    &id, NULL, err, sizeof(err));
    if (e == DS_ERR_NOTFOUND) {
        snprintf(errstr, errstr_size,
                 "schema_registry.auto_register is false and the %s schema is not registered "
                 "under subject \"%s\" (%s). Register it (POST /subjects/%s/versions with "
                 "%s/<n>-%s.avsc), or set schema_registry.auto_register to true",
                 o->record, subject, err, subject, cfg->schemas_dir, o->record);
        e = DS_ERR_CONFIG;
    } else if (e) {
        snprintf(errstr, errstr_size, "%s schema, subject \"%s\": %s", o->record, subject, err);
        if (e != DS_ERR_IO)
            e = DS_ERR_CONFIG;
    } else if ((e = ds_registry_add_json(reg, id, json, err, sizeof(err)))) {
        snprintf(errstr, errstr_size, "%s schema: %s", o->record, err);
        e = DS_ERR_CONFIG;
    } else {
        o->id = id;
        snprintf(o->subject, sizeof(o->subject), "%s", subject);
    }
    free(json);
    return e;
}

ds_err_t ds_output_schemas_resolve(const ds_config_t *cfg, ds_registry_t *reg,
                                   ds_output_schema_t *outs, size_t n, char *errstr,
                                   size_t errstr_size) {
    for (size_t i = 0; i < n; i++) {
        ds_output_schema_t *o = &outs[i];
        o->subject[0] = '\0';
        if (!ds_registry_is_remote(cfg)) {
            if (!ds_registry_schema(reg, o->configured_id)) {
                snprintf(errstr, errstr_size, "output schema id %d (%s) is not in %s",
                         (int)o->configured_id, o->id_setting, cfg->schemas_dir);
                return DS_ERR_CONFIG;
            }
            o->id = o->configured_id;
            continue;
        }
        if (o->id >= 0) /* resolved by an earlier call */
            continue;
        ds_err_t e = resolve_one(cfg, reg, o, errstr, errstr_size);
        if (e)
            return e;
    }
    return DS_ERR_OK;
}

void ds_output_schema_init(ds_output_schema_t *o, const ds_config_t *cfg, const char *record) {
    memset(o, 0, sizeof(*o));
    o->record = record;
    o->id = -1;
    if (!strcmp(record, "LeadScore")) {
        o->topic = cfg->topic_lead_scores;
        o->id_setting = "schema_ids.lead_score";
        o->configured_id = cfg->schema_id_lead_score;
    } else if (!strcmp(record, "AccountScore")) {
        o->topic = cfg->topic_account_scores;
        o->id_setting = "schema_ids.account_score";
        o->configured_id = cfg->schema_id_account_score;
    } else {
        o->topic = cfg->topic_alerts;
        o->id_setting = "schema_ids.deal_alert";
        o->configured_id = cfg->schema_id_deal_alert;
    }
}

ds_err_t ds_output_schemas_start(const ds_config_t *cfg, ds_registry_t *reg, ds_codec_t *codec,
                                 ds_output_schema_t *outs, size_t n, const char *comp, char *errstr,
                                 size_t errstr_size) {
    if (!ds_registry_is_remote(cfg))
        return DS_ERR_OK; /* the codec has the configured ids, checked when it was made */
    ds_err_t e = ds_output_schemas_resolve(cfg, reg, outs, n, errstr, errstr_size);
    if (e)
        return e;
    ds_codec_ids_t ids = {-1, -1, -1, -1, -1};
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(outs[i].record, "LeadScore"))
            ids.lead_score = outs[i].id;
        else if (!strcmp(outs[i].record, "AccountScore"))
            ids.account_score = outs[i].id;
        else
            ids.deal_alert = outs[i].id;
        if (outs[i].subject[0])
            DS_INFO(comp, "output %s: schema id %d, registered under subject %s", outs[i].record,
                    (int)outs[i].id, outs[i].subject);
        else
            DS_INFO(comp, "output %s: schema id %d (%s, not registered by dealsignal)",
                    outs[i].record, (int)outs[i].id, outs[i].id_setting);
    }
    e = ds_codec_set_ids(codec, &ids, errstr, errstr_size);
    return e ? DS_ERR_CONFIG : DS_ERR_OK;
}
