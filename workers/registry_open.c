/*
 * registry_open.c — the schema registry a worker uses: the embedded
 * directory, and with schema_registry.url a Schema Registry client that
 * fills the same cache on a miss.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ds_registry_http.h"
#include "ds_serde.h"
#include "worker.h"

static ds_err_t fetch(void *opaque, int32_t id, char **json, char *errstr, size_t errstr_size) {
    const ds_config_t *cfg = opaque;
    return ds_schema_registry_fetch(cfg->schema_registry_url, id, 5000, json, errstr,
                                    errstr_size);
}

ds_registry_t *ds_registry_open_dir(const char *dir, char *errstr, size_t errstr_size) {
    char alt[4096];
    struct stat st;
    /* running from elsewhere than the source tree: the tree's schemas/ */
    if (stat(dir, &st) != 0 && !strcmp(dir, "schemas")) {
        snprintf(alt, sizeof(alt), "%s/schemas", DS_SOURCE_DIR);
        dir = alt;
    }
    return ds_registry_new_dir(dir, errstr, errstr_size);
}

ds_registry_t *ds_registry_open(const ds_config_t *cfg, char *errstr, size_t errstr_size) {
    ds_registry_t *r = ds_registry_open_dir(cfg->schemas_dir, errstr, errstr_size);
    if (r && cfg->schema_registry_url && cfg->schema_registry_url[0])
        ds_registry_set_fetcher(r, fetch, (void *)cfg);
    return r;
}
