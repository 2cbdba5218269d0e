/*
 * ds_registry_http.c — GET /schemas/ids/{id} from a Confluent Schema Registry.
 *
 * Design.  The base URL is parsed with libcurl's URL API: its userinfo is
 * taken out and given to curl as basic-auth credentials, so the URL we
 * request and quote in errors never carries the password (curl's own
 * error buffer only sees that URL).  A schema is fetched once per id per
 * process (the cache is the caller's), so one easy handle per call is
 * fine and keeps the function thread-safe.  The body is capped: a
 * registry (or something pretending to be one) cannot make us buffer
 * without bound.  Redirects are not followed, only http/https are spoken.
 *
 * Error mapping: 404 → UNKNOWN_SCHEMA (the record's schema id is unknown:
 * a DLQ reason); everything else that goes wrong with the registry is
 * DS_ERR_IO, a transient infrastructure fault the caller retries, never a
 * reason to dead-letter a record.
 */
#include "ds_registry_http.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_buf.h"

#define MAX_BODY (8u << 20)
#define DEFAULT_TIMEOUT_MS 10000L

#ifndef DS_VERSION
#define DS_VERSION "dev"
#endif

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void) {
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *p, size_t size, size_t n, void *opaque) {
    ds_buf_t *b = opaque;
    size_t len = size * n;
    if (ds_buf_append(b, p, len) != DS_ERR_OK)
        return 0; /* curl aborts with CURLE_WRITE_ERROR */
    return len;
}

/* The request URL without credentials, and the credentials (NULL when the
 * URL has none).  All strings are curl_free'd by the caller. */
typedef struct {
    char *url;  /* for the request and for messages */
    char *user; /* decoded */
    char *password;
} target_t;

static void target_free(target_t *t) {
    curl_free(t->url);
    curl_free(t->user);
    curl_free(t->password);
    memset(t, 0, sizeof(*t));
}

static ds_err_t build_target(const char *base_url, int32_t id, target_t *t, char *errstr,
                             size_t errstr_size) {
    memset(t, 0, sizeof(*t));
    CURLU *u = curl_url();
    if (!u) {
        snprintf(errstr, errstr_size, "out of memory");
        return DS_ERR_NOMEM;
    }
    ds_err_t e = DS_ERR_INVAL;
    char *scheme = NULL, *path = NULL;
    if (curl_url_set(u, CURLUPART_URL, base_url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        char shown[512];
        /* never echo credentials, not even of a malformed URL */
        const char *at = strrchr(base_url, '@');
        if (at)
            snprintf(shown, sizeof(shown), "***%s", at);
        else
            ds_strlcpy(shown, base_url, sizeof(shown));
        snprintf(errstr, errstr_size,
                 "schema registry URL \"%s\" is not http[s]://[user:password@]host[:port][/path]",
                 shown);
        goto out;
    }
    /* credentials out of the URL */
    if (curl_url_get(u, CURLUPART_USER, &t->user, CURLU_URLDECODE) != CURLUE_OK)
        t->user = NULL;
    if (curl_url_get(u, CURLUPART_PASSWORD, &t->password, CURLU_URLDECODE) != CURLUE_OK)
        t->password = NULL;
    if (curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK)
        goto nomem;
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        path = NULL;
    size_t plen = path ? strlen(path) : 0;
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    char newpath[2048];
    int n = snprintf(newpath, sizeof(newpath), "%.*s/schemas/ids/%ld", (int)plen, path ? path : "",
                     (long)id);
    if (n < 0 || (size_t)n >= sizeof(newpath)) {
        snprintf(errstr, errstr_size, "schema registry URL path too long");
        goto out;
    }
    if (curl_url_set(u, CURLUPART_PATH, newpath, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &t->url, 0) != CURLUE_OK)
        goto nomem;
    e = DS_ERR_OK;
    goto out;
nomem:
    snprintf(errstr, errstr_size, "out of memory");
    e = DS_ERR_NOMEM;
out:
    curl_free(scheme);
    curl_free(path);
    curl_url_cleanup(u);
    if (e)
        target_free(t);
    return e;
}

/* The registry's own "message" from an error body, or "". */
static void error_message(const ds_buf_t *body, char *out, size_t out_size) {
    out[0] = '\0';
    json_error_t jerr;
    json_t *root = body->len ? json_loadb((const char *)body->data, body->len, 0, &jerr) : NULL;
    const char *msg = root ? json_string_value(json_object_get(root, "message")) : NULL;
    if (msg)
        snprintf(out, out_size, ": %.200s", msg);
    json_decref(root);
}

static ds_err_t parse_schema(const ds_buf_t *body, int32_t id, const char *url, char **schema_json,
                             char *errstr, size_t errstr_size) {
    json_error_t jerr;
    json_t *root = json_loadb(body->data ? (const char *)body->data : "", body->len, 0, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "schema registry %s: answer is not JSON: %s (line %d)", url,
                 jerr.text, jerr.line);
        return DS_ERR_IO;
    }
    ds_err_t e = DS_ERR_OK;
    const char *type = json_string_value(json_object_get(root, "schemaType"));
    json_t *schema = json_object_get(root, "schema");
    if (type && strcmp(type, "AVRO") != 0) {
        snprintf(errstr, errstr_size, "schema id %ld is a %.32s schema, not Avro", (long)id, type);
        e = DS_ERR_WRONG_TYPE;
    } else if (!json_is_string(schema)) {
        snprintf(errstr, errstr_size, "schema registry %s: answer has no \"schema\" string", url);
        e = DS_ERR_IO;
    } else {
        size_t n = json_string_length(schema);
        const char *s = json_string_value(schema);
        if (memchr(s, '\0', n)) {
            snprintf(errstr, errstr_size, "schema registry %s: schema contains NUL", url);
            e = DS_ERR_IO;
        } else if (!(*schema_json = malloc(n + 1))) {
            snprintf(errstr, errstr_size, "out of memory");
            e = DS_ERR_NOMEM;
        } else {
            memcpy(*schema_json, s, n + 1);
        }
    }
    json_decref(root);
    return e;
}

ds_err_t ds_schema_registry_fetch(const char *base_url, int32_t id, long timeout_ms,
                                  char **schema_json, char *errstr, size_t errstr_size) {
    if (schema_json)
        *schema_json = NULL;
    if (!base_url || !schema_json || id < 0) {
        snprintf(errstr, errstr_size, "schema registry fetch: invalid argument (id %ld)", (long)id);
        return DS_ERR_INVAL;
    }
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "libcurl: %s", curl_easy_strerror(curl_init_rc));
        return DS_ERR_IO;
    }
    if (timeout_ms <= 0)
        timeout_ms = DEFAULT_TIMEOUT_MS;

    target_t t;
    ds_err_t e = build_target(base_url, id, &t, errstr, errstr_size);
    if (e)
        return e;

    ds_buf_t body;
    ds_buf_init(&body, MAX_BODY);
    char cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs =
        curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json, application/json");
    CURL *c = curl_easy_init();
    if (!c || !hdrs) {
        snprintf(errstr, errstr_size, "out of memory");
        e = DS_ERR_NOMEM;
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, t.url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "dealsignal/" DS_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    if (t.user || t.password) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, t.user ? t.user : "");
        curl_easy_setopt(c, CURLOPT_PASSWORD, t.password ? t.password : "");
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        if (rc == CURLE_WRITE_ERROR)
            snprintf(errstr, errstr_size, "schema registry %s: answer larger than %u bytes", t.url,
                     MAX_BODY);
        else
            snprintf(errstr, errstr_size, "schema registry %s: %s", t.url,
                     cerr[0] ? cerr : curl_easy_strerror(rc));
        e = DS_ERR_IO;
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200) {
        e = parse_schema(&body, id, t.url, schema_json, errstr, errstr_size);
    } else {
        char msg[256];
        error_message(&body, msg, sizeof(msg));
        if (status == 404) {
            snprintf(errstr, errstr_size, "schema id %ld not found in the schema registry%s",
                     (long)id, msg);
            e = DS_ERR_UNKNOWN_SCHEMA;
        } else {
            snprintf(errstr, errstr_size, "schema registry %s: HTTP %ld%s%s", t.url, status,
                     status == 401 || status == 403 ? " (check the credentials)" : "", msg);
            e = DS_ERR_IO;
        }
    }
out:
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    ds_buf_free(&body);
    target_free(&t);
    return e;
}
