/*
 * ds_registry_http.c — the Confluent Schema Registry calls dealsignal makes.
 *
 * Design.  The base URL is parsed with libcurl's URL API: its userinfo is
 * taken out and given to curl as basic-auth credentials, so the URL we
 * request and quote in errors never carries the password (curl's own
 * error buffer only sees that URL).  Calls are rare (a schema per id per
 * process, a registration per output at start-up), so one easy handle per
 * call is fine and keeps every function thread-safe.  Bodies are capped: a
 * registry (or something pretending to be one) cannot make us buffer
 * without bound.  Redirects are not followed, only http/https are spoken.
 *
 * Error mapping.  What a retry can cure (no answer, timeouts, 5xx, 429,
 * an answer that is not the registry's JSON) is DS_ERR_IO; what it cannot
 * (credentials refused, an incompatible or invalid schema, other 4xx) is
 * DS_ERR_CONFIG, with a message that says what to change.  The fetch by
 * id keeps its own mapping: on the decode path only a 404 makes a record's
 * schema id unknown (a DLQ reason); every other fault is DS_ERR_IO.
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
#define CONTENT_TYPE "application/vnd.schemaregistry.v1+json"

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
 * URL has none).  All strings are curl_free'd by target_free. */
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

/* base_url + path (path starts with '/', already escaped). */
static ds_err_t build_target(const char *base_url, const char *path_tail, target_t *t, char *errstr,
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
    int n = snprintf(newpath, sizeof(newpath), "%.*s%s", (int)plen, path ? path : "", path_tail);
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

/* One request's answer.  url never holds credentials. */
typedef struct answer {
    long status;
    ds_buf_t body;
    char url[1024];
    char user[128]; /* "" when the URL has none */
} answer_t;

static void answer_free(answer_t *a) {
    ds_buf_free(&a->body);
}

/* One HTTP request.  DS_ERR_OK when an answer came, whatever its status
 * (a->status); DS_ERR_IO when none did (errstr says why). */
static ds_err_t call(const char *base_url, const char *method, const char *path,
                     const char *json_body, long timeout_ms, answer_t *a, char *errstr,
                     size_t errstr_size) {
    memset(a, 0, sizeof(*a));
    ds_buf_init(&a->body, MAX_BODY);
    if (!base_url) {
        snprintf(errstr, errstr_size, "schema registry: no URL");
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
    ds_err_t e = build_target(base_url, path, &t, errstr, errstr_size);
    if (e)
        return e;
    ds_strlcpy(a->url, t.url, sizeof(a->url));
    ds_strlcpy(a->user, t.user ? t.user : "", sizeof(a->user));

    char cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: " CONTENT_TYPE ", application/json");
    if (hdrs && json_body)
        hdrs = curl_slist_append(hdrs, "Content-Type: " CONTENT_TYPE);
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
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a->body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    if (json_body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(json_body));
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
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
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
out:
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    target_free(&t);
    return e;
}

static json_t *parse_body(const answer_t *a) {
    json_error_t jerr;
    return a->body.len ? json_loadb((const char *)a->body.data, a->body.len, 0, &jerr) : NULL;
}

/* The registry's own error_code and message from an error body
 * (": 40401 Subject 'x' not found."), or "". */
static void error_message(const answer_t *a, char *out, size_t out_size, long *code) {
    out[0] = '\0';
    if (code)
        *code = 0;
    json_t *root = parse_body(a);
    const char *msg = root ? json_string_value(json_object_get(root, "message")) : NULL;
    json_t *jc = root ? json_object_get(root, "error_code") : NULL;
    long ec = json_is_integer(jc) ? (long)json_integer_value(jc) : 0;
    if (code)
        *code = ec;
    if (msg && ec)
        snprintf(out, out_size, ": %ld %.300s", ec, msg);
    else if (msg)
        snprintf(out, out_size, ": %.300s", msg);
    json_decref(root);
}

/* An answer that is not 2xx: IO when a retry can help, CONFIG otherwise. */
static ds_err_t refused(const answer_t *a, const char *doing, char *errstr, size_t errstr_size) {
    char msg[400];
    error_message(a, msg, sizeof(msg), NULL);
    if (a->status >= 500 || a->status == 429) {
        snprintf(errstr, errstr_size, "schema registry %s: HTTP %ld%s (while %s; retrying)", a->url,
                 a->status, msg, doing);
        return DS_ERR_IO;
    }
    if (a->status == 401 || a->status == 403) {
        char who[200];
        if (a->user[0])
            snprintf(who, sizeof(who), "user \"%.100s\" and the password in schema_registry.url",
                     a->user);
        else
            snprintf(who, sizeof(who), "schema_registry.url, which carries no user:password@");
        snprintf(errstr, errstr_size,
                 "schema registry %s: HTTP %ld %s%s while %s: check the credentials (%s)%s", a->url,
                 a->status, a->status == 401 ? "Unauthorized" : "Forbidden", msg, doing, who,
                 a->status == 403 ? ", and that they may read and register schemas" : "");
        return DS_ERR_CONFIG;
    }
    snprintf(errstr, errstr_size, "schema registry %s: HTTP %ld%s while %s", a->url, a->status, msg,
             doing);
    return DS_ERR_CONFIG;
}

static ds_err_t parse_schema(const answer_t *a, int32_t id, char **schema_json, char *errstr,
                             size_t errstr_size) {
    json_error_t jerr;
    json_t *root =
        json_loadb(a->body.data ? (const char *)a->body.data : "", a->body.len, 0, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "schema registry %s: answer is not JSON: %s (line %d)",
                 a->url, jerr.text, jerr.line);
        return DS_ERR_IO;
    }
    ds_err_t e = DS_ERR_OK;
    const char *type = json_string_value(json_object_get(root, "schemaType"));
    json_t *schema = json_object_get(root, "schema");
    if (type && strcmp(type, "AVRO") != 0) {
        snprintf(errstr, errstr_size, "schema id %ld is a %.32s schema, not Avro", (long)id, type);
        e = DS_ERR_WRONG_TYPE;
    } else if (!json_is_string(schema)) {
        snprintf(errstr, errstr_size, "schema registry %s: answer has no \"schema\" string",
                 a->url);
        e = DS_ERR_IO;
    } else {
        size_t n = json_string_length(schema);
        const char *s = json_string_value(schema);
        if (memchr(s, '\0', n)) {
            snprintf(errstr, errstr_size, "schema registry %s: schema contains NUL", a->url);
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

ds_err_t ds_registry_http_fetch(const char *base_url, int32_t id, long timeout_ms,
                                char **schema_json, char *errstr, size_t errstr_size) {
    if (schema_json)
        *schema_json = NULL;
    if (!base_url || !schema_json || id < 0) {
        snprintf(errstr, errstr_size, "schema registry fetch: invalid argument (id %ld)", (long)id);
        return DS_ERR_INVAL;
    }
    char path[64];
    snprintf(path, sizeof(path), "/schemas/ids/%ld", (long)id);
    answer_t a;
    ds_err_t e = call(base_url, "GET", path, NULL, timeout_ms, &a, errstr, errstr_size);
    if (!e) {
        if (a.status == 200) {
            e = parse_schema(&a, id, schema_json, errstr, errstr_size);
        } else if (a.status == 404) {
            char msg[400];
            error_message(&a, msg, sizeof(msg), NULL);
            snprintf(errstr, errstr_size, "schema id %ld not found in the schema registry%s",
                     (long)id, msg);
            e = DS_ERR_UNKNOWN_SCHEMA;
        } else {
            char doing[64];
            snprintf(doing, sizeof(doing), "fetching schema id %ld", (long)id);
            refused(&a, doing, errstr, errstr_size);
            e = DS_ERR_IO; /* never a DLQ reason, see above */
        }
    }
    answer_free(&a);
    return e;
}

/* "/subjects/<escaped subject><tail>" */
static ds_err_t subject_path(const char *prefix, const char *subject, const char *tail, char *out,
                             size_t out_size, char *errstr, size_t errstr_size) {
    if (!subject || !subject[0]) {
        snprintf(errstr, errstr_size, "schema registry: empty subject");
        return DS_ERR_INVAL;
    }
    char *esc = curl_easy_escape(NULL, subject, 0);
    if (!esc) {
        snprintf(errstr, errstr_size, "out of memory");
        return DS_ERR_NOMEM;
    }
    int n = snprintf(out, out_size, "%s%s%s", prefix, esc, tail);
    curl_free(esc);
    if (n < 0 || (size_t)n >= out_size) {
        snprintf(errstr, errstr_size, "schema registry: subject too long");
        return DS_ERR_INVAL;
    }
    return DS_ERR_OK;
}

/* {"schema": "<schema_json>"}, malloc'ed. */
static char *schema_body(const char *schema_json) {
    json_t *o = json_pack("{s:s}", "schema", schema_json);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* An integer member of a 2xx answer, or IO. */
static ds_err_t int_member(const answer_t *a, const char *name, int32_t *out, char *errstr,
                           size_t errstr_size) {
    json_t *root = parse_body(a);
    json_t *v = root ? json_object_get(root, name) : NULL;
    ds_err_t e = DS_ERR_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
        snprintf(errstr, errstr_size, "schema registry %s: answer has no \"%s\" integer", a->url,
                 name);
        e = DS_ERR_IO;
    } else {
        *out = (int32_t)json_integer_value(v);
    }
    json_decref(root);
    return e;
}

ds_err_t ds_registry_http_compatibility(const char *base_url, const char *subject, long timeout_ms,
                                        char *level, size_t level_size, bool *own, char *errstr,
                                        size_t errstr_size) {
    char path[1024];
    ds_err_t e = subject_path("/config/", subject, "", path, sizeof(path), errstr, errstr_size);
    if (e)
        return e;
    level[0] = '\0';
    *own = false;
    for (int round = 0; round < 2; round++) {
        answer_t a;
        e = call(base_url, "GET", round ? "/config" : path, NULL, timeout_ms, &a, errstr,
                 errstr_size);
        if (!e && a.status == 200) {
            json_t *root = parse_body(&a);
            const char *l =
                root ? json_string_value(json_object_get(root, "compatibilityLevel")) : NULL;
            if (!l && root) /* some registries answer with the PUT's key */
                l = json_string_value(json_object_get(root, "compatibility"));
            if (l) {
                ds_strlcpy(level, l, level_size);
                *own = round == 0;
            } else {
                snprintf(errstr, errstr_size, "schema registry %s: no compatibilityLevel", a.url);
                e = DS_ERR_IO;
            }
            json_decref(root);
        } else if (!e && (round == 1 || a.status != 404)) {
            e = refused(&a, "reading the compatibility level", errstr, errstr_size);
        }
        answer_free(&a);
        /* 404 on the subject: no level of its own (40408, or 40401 from
         * older registries): the global level applies */
        if (e || level[0])
            return e;
    }
    return DS_ERR_IO;
}

/* POSTs schema_json, in the body the registry wants, to
 * /subjects/<subject><suffix>.  Results as call()'s, plus DS_ERR_INVAL
 * without a schema and DS_ERR_NOMEM; *a is freed with answer_free
 * whatever the result. */
static ds_err_t post_schema(const char *base_url, const char *subject, const char *suffix,
                            const char *schema_json, long timeout_ms, answer_t *a, char *errstr,
                            size_t errstr_size) {
    memset(a, 0, sizeof(*a));
    char path[1024];
    ds_err_t e =
        subject_path("/subjects/", subject, suffix, path, sizeof(path), errstr, errstr_size);
    if (e)
        return e;
    char *body = schema_json ? schema_body(schema_json) : NULL;
    if (!body) {
        snprintf(errstr, errstr_size, "schema registry: no schema or out of memory");
        return schema_json ? DS_ERR_NOMEM : DS_ERR_INVAL;
    }
    e = call(base_url, "POST", path, body, timeout_ms, a, errstr, errstr_size);
    free(body);
    return e;
}

ds_err_t ds_registry_http_register(const char *base_url, const char *subject,
                                   const char *schema_json, long timeout_ms, int32_t *id,
                                   char *errstr, size_t errstr_size) {
    answer_t a;
    ds_err_t e = post_schema(base_url, subject, "/versions", schema_json, timeout_ms, &a, errstr,
                             errstr_size);
    if (!e) {
        if (a.status == 200) {
            e = int_member(&a, "id", id, errstr, errstr_size);
        } else if (a.status == 409) {
            char msg[400], level[64], lerr[256];
            bool own = false;
            error_message(&a, msg, sizeof(msg), NULL);
            if (ds_registry_http_compatibility(base_url, subject, timeout_ms, level, sizeof(level),
                                               &own, lerr, sizeof(lerr)))
                snprintf(level, sizeof(level), "unknown: %.40s", lerr);
            char esc[600] = "";
            (void)subject_path("/config/", subject, "", esc, sizeof(esc), lerr, sizeof(lerr));
            snprintf(errstr, errstr_size,
                     "schema registry %s: HTTP 409: the schema is incompatible with the "
                     "versions already under subject \"%s\" (compatibility level %s, %s). "
                     "Make the change compatible (add fields with defaults), change the "
                     "subject's level (PUT %s) or write to another subject. The registry "
                     "says%s",
                     a.url, subject, level,
                     own ? "set on the subject" : "the registry's global level", esc, msg);
            e = DS_ERR_CONFIG;
        } else {
            char doing[300];
            snprintf(doing, sizeof(doing), "registering a schema under subject \"%.200s\"",
                     subject);
            e = refused(&a, doing, errstr, errstr_size);
        }
    }
    answer_free(&a);
    return e;
}

ds_err_t ds_registry_http_lookup(const char *base_url, const char *subject, const char *schema_json,
                                 long timeout_ms, int32_t *id, int32_t *version, char *errstr,
                                 size_t errstr_size) {
    answer_t a;
    ds_err_t e =
        post_schema(base_url, subject, "", schema_json, timeout_ms, &a, errstr, errstr_size);
    if (!e) {
        if (a.status == 200) {
            e = int_member(&a, "id", id, errstr, errstr_size);
            int32_t v = 0;
            if (!e && version && int_member(&a, "version", &v, errstr, errstr_size) == DS_ERR_OK)
                *version = v;
        } else if (a.status == 404) {
            char msg[400];
            long code = 0;
            error_message(&a, msg, sizeof(msg), &code);
            snprintf(errstr, errstr_size, "schema registry %s: %s under subject \"%s\"%s", a.url,
                     code == 40401 ? "no such subject, so the schema is not registered"
                                   : "the schema is not registered",
                     subject, msg);
            e = DS_ERR_NOTFOUND;
        } else {
            char doing[300];
            snprintf(doing, sizeof(doing), "looking a schema up under subject \"%.200s\"", subject);
            e = refused(&a, doing, errstr, errstr_size);
        }
    }
    answer_free(&a);
    return e;
}
