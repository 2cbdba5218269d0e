/*
 * test_http.c — the operations endpoint (ds_http) over real loopback HTTP
 * with libcurl, and the Schema Registry client (ds_registry_http) against
 * a tiny libmicrohttpd registry started here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ds_http.h"
#include "ds_metrics.h"
#include "ds_registry_http.h"
#include "test_registry.h"
#include "unit_util.h"

/* ---- a small curl client ------------------------------------------------ */

typedef struct {
    long status;
    char body[8192];
    size_t len;
    char ctype[128];
} resp_t;

static size_t sink(char *p, size_t size, size_t n, void *opaque) {
    resp_t *r = opaque;
    size_t len = size * n;
    size_t room = sizeof(r->body) - 1 - r->len;
    size_t take = len < room ? len : room;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return len;
}

static void http_do_host(const char *host, const char *method, int port, const char *path,
                         resp_t *r) {
    memset(r, 0, sizeof(*r));
    char url[256];
    snprintf(url, sizeof(url), "http://%s:%d%s", host, port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct)
        snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
    curl_easy_cleanup(c);
}

static void http_do(const char *method, int port, const char *path, resp_t *r) {
    http_do_host("127.0.0.1", method, port, path, r);
}

static void http_get(int port, const char *path, resp_t *r) {
    http_do("GET", port, path, r);
}

/* ---- ds_http -------------------------------------------------------------- */

typedef struct {
    _Atomic bool ready;
    const char *reason;
    _Atomic int calls;
} readiness_t;

static bool ready_cb(void *opaque, char *why, size_t why_size) {
    readiness_t *r = opaque;
    r->calls++;
    if (r->ready)
        return true;
    snprintf(why, why_size, "%s", r->reason);
    return false;
}

static void test_routes(void **state) {
    (void)state;
    ds_metrics_t *m = ds_metrics_new("dealsignal_");
    ds_counter_t *c =
        ds_metrics_counter(m, "consumed_records", "Records consumed", "worker=\"scorer\"");
    ds_counter_add(c, 41);
    readiness_t rd = {.ready = true, .reason = "redis: connection refused", .calls = 0};
    char err[256] = "";
    ds_http_t *h = ds_http_start("127.0.0.1:0", m, ready_cb, &rd, err, sizeof(err));
    assert_non_null(h);
    int port = ds_http_port(h);
    assert_true(port > 0 && port <= 65535);

    resp_t r;
    http_get(port, "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/plain"));
    assert_non_null(strstr(r.ctype, "version=0.0.4"));
    assert_string_equal(r.body, "# HELP dealsignal_consumed_records_total Records consumed\n"
                                "# TYPE dealsignal_consumed_records_total counter\n"
                                "dealsignal_consumed_records_total{worker=\"scorer\"} 41\n");
    ds_counter_add(c, 1); /* each scrape renders afresh */
    http_get(port, "/metrics", &r);
    assert_non_null(strstr(r.body, "dealsignal_consumed_records_total{worker=\"scorer\"} 42\n"));

    http_get(port, "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");

    http_get(port, "/readyz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ready\n");
    assert_int_equal(rd.calls, 1);

    rd.ready = false;
    http_get(port, "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "redis: connection refused\n");
    /* healthz stays up while not ready: the process itself is alive */
    http_get(port, "/healthz", &r);
    assert_int_equal(r.status, 200);

    rd.ready = true;
    http_get(port, "/readyz", &r);
    assert_int_equal(r.status, 200);

    http_get(port, "/", &r);
    assert_int_equal(r.status, 404);
    http_get(port, "/metrics/extra", &r);
    assert_int_equal(r.status, 404);
    http_get(port, "/healthz?x=1", &r); /* query strings are not part of the path */
    assert_int_equal(r.status, 200);
    http_do("POST", port, "/metrics", &r);
    assert_int_equal(r.status, 405);
    http_do("DELETE", port, "/nothing", &r);
    assert_int_equal(r.status, 404);

    ds_http_stop(h);
    ds_metrics_destroy(m);
}

static void test_no_metrics_no_ready(void **state) {
    (void)state;
    char err[256] = "";
    ds_http_t *h = ds_http_start("127.0.0.1:0", NULL, NULL, NULL, err, sizeof(err));
    assert_non_null(h);
    resp_t r;
    http_get(ds_http_port(h), "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    http_get(ds_http_port(h), "/readyz", &r);
    assert_int_equal(r.status, 200);
    ds_http_stop(h);
    ds_http_stop(NULL);

    /* IPv6 loopback, where the machine has it */
    h = ds_http_start("[::1]:0", NULL, NULL, NULL, err, sizeof(err));
    if (!h) {
        print_message("  no IPv6 loopback here (%s): IPv6 case skipped\n", err);
        return;
    }
    http_do_host("[::1]", "GET", ds_http_port(h), "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    ds_http_stop(h);
}

static void expect_bad_addr(const char *addr, const char *needle) {
    char err[256] = "";
    ds_http_t *h = ds_http_start(addr, NULL, NULL, NULL, err, sizeof(err));
    if (h)
        ds_http_stop(h);
    assert_null(h);
    print_message("  %-28s -> %s\n", addr ? addr : "(null)", err);
    assert_true(err[0] != '\0');
    if (needle)
        assert_non_null(strcasestr(err, needle));
}

static void test_bad_addresses(void **state) {
    (void)state;
    expect_bad_addr(NULL, "HOST:PORT");
    expect_bad_addr("9100", "HOST:PORT");
    expect_bad_addr("127.0.0.1:", "port");
    expect_bad_addr("127.0.0.1:http", "port");
    expect_bad_addr("127.0.0.1:70000", "port");
    expect_bad_addr("127.0.0.1:-1", "port");
    expect_bad_addr("::1:9100", "[HOST]");
    expect_bad_addr("[::1:9100", "IPv6");
    expect_bad_addr("no-such-host.invalid:9100", "resolve");

    /* a port already taken: MHD's reason reaches errstr */
    char err[256] = "";
    ds_http_t *h = ds_http_start("127.0.0.1:0", NULL, NULL, NULL, err, sizeof(err));
    assert_non_null(h);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ds_http_port(h));
    expect_bad_addr(addr, "in use");
    ds_http_stop(h);
}

/* ---- a tiny schema registry ---------------------------------------------- */

#define SCHEMA_7                                                                                   \
    "{\"type\": \"record\", \"name\": \"X\", \"fields\": [{\"name\": \"a\", \"type\": "            \
    "\"string\"}]}"
/* base64("user:s3:cr@t") */
#define GOOD_AUTH "Basic dXNlcjpzMzpjckB0"

typedef struct {
    _Atomic int requests;
    char last_path[256];
    struct MHD_Daemon *d; /* serving on 127.0.0.1:port */
    int port;
} registry_t;

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned int status, const char *s) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(s), (void *)s, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/vnd.schemaregistry.v1+json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result registry_handler(void *cls, struct MHD_Connection *c, const char *url,
                                        const char *method, const char *version,
                                        const char *upload_data, size_t *upload_data_size,
                                        void **con_cls) {
    (void)method;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    registry_t *reg = cls;
    reg->requests++;
    snprintf(reg->last_path, sizeof(reg->last_path), "%s", url);
    if (!strncmp(url, "/auth/", 6)) {
        const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!a || strcmp(a, GOOD_AUTH) != 0)
            return send_json(c, 401, "{\"error_code\":401,\"message\":\"Unauthorized\"}");
        url += 5;
    } else if (!strncmp(url, "/prefix/", 8)) {
        url += 7;
    }
    if (!strcmp(url, "/schemas/ids/7")) {
        /* the schema is a JSON string inside JSON: escaped quotes */
        return send_json(c, 200,
                         "{\"schema\": \"{\\\"type\\\": \\\"record\\\", \\\"name\\\": \\\"X\\\", "
                         "\\\"fields\\\": [{\\\"name\\\": \\\"a\\\", \\\"type\\\": "
                         "\\\"string\\\"}]}\"}");
    }
    if (!strcmp(url, "/schemas/ids/8"))
        return send_json(c, 200,
                         "{\"schemaType\":\"PROTOBUF\",\"schema\":\"syntax = \\\"proto3\\\";\"}");
    if (!strcmp(url, "/schemas/ids/9"))
        return send_json(c, 500, "{\"error_code\":50001,\"message\":\"store down\"}");
    if (!strcmp(url, "/schemas/ids/10"))
        return send_json(c, 200, "<html>not json</html>");
    if (!strcmp(url, "/schemas/ids/12"))
        return send_json(c, 200, "{\"schemaType\":\"AVRO\",\"schema\":\"\\\"string\\\"\"}");
    if (!strcmp(url, "/schemas/ids/11")) {
        sleep(1); /* slower than the client's timeout */
        return send_json(c, 200, "{\"schema\":\"\\\"string\\\"\"}");
    }
    return send_json(c, 404, "{\"error_code\":40403,\"message\":\"Schema not found\"}");
}

static void registry_start(registry_t *reg) {
    memset(reg, 0, sizeof(*reg));
    reg->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                  MHD_USE_ERROR_LOG,
                              0, NULL, NULL, registry_handler, reg, MHD_OPTION_END);
    assert_non_null(reg->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(reg->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    reg->port = info->port;
}

static void test_registry_fetch(void **state) {
    (void)state;
    registry_t reg;
    registry_start(&reg);
    char base[256], err[512];
    char *schema = (char *)1;

    snprintf(base, sizeof(base), "http://127.0.0.1:%d", reg.port);
    assert_int_equal(ds_registry_http_fetch(base, 7, 2000, &schema, err, sizeof(err)), DS_ERR_OK);
    assert_string_equal(schema, SCHEMA_7);
    assert_string_equal(reg.last_path, "/schemas/ids/7");
    free(schema);

    /* explicit AVRO schemaType, and a trailing '/' on the base URL */
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/", reg.port);
    assert_int_equal(ds_registry_http_fetch(base, 12, 2000, &schema, err, sizeof(err)), DS_ERR_OK);
    assert_string_equal(schema, "\"string\"");
    assert_string_equal(reg.last_path, "/schemas/ids/12");
    free(schema);

    /* a path prefix (registry behind a reverse proxy) */
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/prefix//", reg.port);
    assert_int_equal(ds_registry_http_fetch(base, 7, 2000, &schema, err, sizeof(err)), DS_ERR_OK);
    assert_string_equal(reg.last_path, "/prefix/schemas/ids/7");
    free(schema);

    snprintf(base, sizeof(base), "http://127.0.0.1:%d", reg.port);
    schema = (char *)1;
    assert_int_equal(ds_registry_http_fetch(base, 5, 2000, &schema, err, sizeof(err)),
                     DS_ERR_UNKNOWN_SCHEMA);
    assert_null(schema);
    assert_non_null(strstr(err, "5"));
    assert_int_equal(ds_registry_http_fetch(base, 8, 2000, &schema, err, sizeof(err)),
                     DS_ERR_WRONG_TYPE);
    assert_non_null(strstr(err, "PROTOBUF"));
    assert_int_equal(ds_registry_http_fetch(base, 9, 2000, &schema, err, sizeof(err)), DS_ERR_IO);
    assert_non_null(strstr(err, "500"));
    assert_non_null(strstr(err, "store down"));
    assert_int_equal(ds_registry_http_fetch(base, 10, 2000, &schema, err, sizeof(err)), DS_ERR_IO);
    assert_null(schema);
    /* timeout: 200 ms against a 1 s answer */
    assert_int_equal(ds_registry_http_fetch(base, 11, 200, &schema, err, sizeof(err)), DS_ERR_IO);
    assert_non_null(strcasestr(err, "time"));
    assert_int_equal(ds_registry_http_fetch(base, -1, 200, &schema, err, sizeof(err)),
                     DS_ERR_INVAL);
    MHD_stop_daemon(reg.d);

    /* nothing listens there any more: a network error */
    assert_int_equal(ds_registry_http_fetch(base, 7, 2000, &schema, err, sizeof(err)), DS_ERR_IO);
    assert_null(schema);
    print_message("  refused: %s\n", err);
}

static void test_registry_basic_auth(void **state) {
    (void)state;
    registry_t reg;
    registry_start(&reg);
    char base[256], err[512];
    char *schema = NULL;

    /* password "s3:cr@t", percent-encoded in the userinfo */
    snprintf(base, sizeof(base), "http://user:s3%%3Acr%%40t@127.0.0.1:%d/auth", reg.port);
    assert_int_equal(ds_registry_http_fetch(base, 7, 2000, &schema, err, sizeof(err)), DS_ERR_OK);
    assert_string_equal(schema, SCHEMA_7);
    free(schema);
    schema = NULL;

    /* the password never shows in an error */
    assert_int_equal(ds_registry_http_fetch(base, 9, 2000, &schema, err, sizeof(err)), DS_ERR_IO);
    assert_null(strstr(err, "s3"));
    assert_non_null(strstr(err, "127.0.0.1"));
    assert_int_equal(ds_registry_http_fetch(base, 4, 2000, &schema, err, sizeof(err)),
                     DS_ERR_UNKNOWN_SCHEMA);
    assert_null(strstr(err, "s3"));

    /* wrong password: 401 is an I/O (configuration) error, not a DLQ one */
    snprintf(base, sizeof(base), "http://user:wrong-pw@127.0.0.1:%d/auth", reg.port);
    assert_int_equal(ds_registry_http_fetch(base, 7, 2000, &schema, err, sizeof(err)), DS_ERR_IO);
    assert_non_null(strstr(err, "401"));
    assert_null(strstr(err, "wrong-pw"));
    /* no credentials at all */
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/auth", reg.port);
    assert_int_equal(ds_registry_http_fetch(base, 7, 2000, &schema, err, sizeof(err)), DS_ERR_IO);
    MHD_stop_daemon(reg.d);

    /* malformed URLs: INVAL, without echoing the password */
    int before = reg.requests;
    assert_int_equal(
        ds_registry_http_fetch("ftp://u:topsecret@host/", 7, 200, &schema, err, sizeof(err)),
        DS_ERR_INVAL);
    assert_null(strstr(err, "topsecret"));
    assert_int_equal(ds_registry_http_fetch("not a url", 7, 200, &schema, err, sizeof(err)),
                     DS_ERR_INVAL);
    assert_int_equal(ds_registry_http_fetch(NULL, 7, 200, &schema, err, sizeof(err)), DS_ERR_INVAL);
    assert_int_equal(reg.requests, before);
}

/* ---- register, look up, compatibility: against tests/registry ------------ */

#define REC_V1                                                                                     \
    "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"t\",\"fields\":[{\"name\":\"a\","     \
    "\"type\":\"string\"}]}"
/* v1 with a field added with a default: a compatible new version */
#define REC_V2                                                                                     \
    "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"t\",\"fields\":[{\"name\":\"a\","     \
    "\"type\":\"string\"},{\"name\":\"b\",\"type\":\"long\",\"default\":0}]}"
/* a field added without a default: not BACKWARD compatible with v1 */
#define REC_BAD                                                                                    \
    "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"t\",\"fields\":[{\"name\":\"a\","     \
    "\"type\":\"string\"},{\"name\":\"c\",\"type\":\"long\"}]}"

/* Registers schema under "x-value" at base (timeout_ms at most): fails the
 * case unless the answer is want and, when part is not NULL, the reason
 * written in err (err_size bytes) holds part. */
static void expect_register(const char *base, const char *schema, int timeout_ms, ds_err_t want,
                            const char *part, char *err, size_t err_size) {
    int32_t id = -1;
    assert_int_equal(
        ds_registry_http_register(base, "x-value", schema, timeout_ms, &id, err, err_size), want);
    if (part && !strstr(err, part))
        fail_msg("no \"%s\" in: %s", part, err);
}

static void test_registry_register_lookup(void **state) {
    (void)state;
    ds_treg_opts_t o = {0, 0, NULL};
    ds_treg_t *r = ds_treg_start(&o);
    assert_non_null(r);
    char base[128], err[2048];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", ds_treg_port(r));
    int32_t id1 = -1, again = -1, other = -1, id2 = -1, found = -1, version = -1;

    assert_int_equal(
        ds_registry_http_register(base, "x-value", REC_V1, 2000, &id1, err, sizeof(err)),
        DS_ERR_OK);
    assert_true(id1 > 5);
    /* the same schema (other whitespace): the same id, no new version */
    assert_int_equal(ds_registry_http_register(base, "x-value", "  " REC_V1 "\n", 2000, &again, err,
                                               sizeof(err)),
                     DS_ERR_OK);
    assert_int_equal(again, id1);
    /* under another subject: the same id as well (ids are global) */
    assert_int_equal(
        ds_registry_http_register(base, "y-value", REC_V1, 2000, &other, err, sizeof(err)),
        DS_ERR_OK);
    assert_int_equal(other, id1);
    /* a compatible change: a new id, version 2 */
    assert_int_equal(
        ds_registry_http_register(base, "x-value", REC_V2, 2000, &id2, err, sizeof(err)),
        DS_ERR_OK);
    assert_true(id2 != id1);
    assert_int_equal(
        ds_registry_http_lookup(base, "x-value", REC_V2, 2000, &found, &version, err, sizeof(err)),
        DS_ERR_OK);
    assert_int_equal(found, id2);
    assert_int_equal(version, 2);
    assert_int_equal(
        ds_registry_http_lookup(base, "x-value", REC_V1, 2000, &found, &version, err, sizeof(err)),
        DS_ERR_OK);
    assert_int_equal(found, id1);
    assert_int_equal(version, 1);

    /* lookups that find nothing say which of the two */
    assert_int_equal(
        ds_registry_http_lookup(base, "none-value", REC_V1, 2000, &found, NULL, err, sizeof(err)),
        DS_ERR_NOTFOUND);
    assert_non_null(strstr(err, "40401"));
    assert_int_equal(
        ds_registry_http_lookup(base, "y-value", REC_V2, 2000, &found, NULL, err, sizeof(err)),
        DS_ERR_NOTFOUND);
    assert_non_null(strstr(err, "40403"));

    /* 409: the subject and the level that applies, global then its own */
    expect_register(base, REC_BAD, 2000, DS_ERR_CONFIG, "409", err, sizeof(err));
    assert_non_null(strstr(err, "\"x-value\""));
    assert_non_null(strstr(err, "level BACKWARD, the registry's global level"));
    ds_treg_set_level(r, "x-value", "FULL_TRANSITIVE");
    expect_register(base, REC_BAD, 2000, DS_ERR_CONFIG, "level FULL_TRANSITIVE, set on the subject",
                    err, sizeof(err));
    char level[32];
    bool own = false;
    assert_int_equal(ds_registry_http_compatibility(base, "y-value", 2000, level, sizeof(level),
                                                    &own, err, sizeof(err)),
                     DS_ERR_OK);
    assert_string_equal(level, "BACKWARD");
    assert_false(own);
    /* NONE takes anything */
    ds_treg_set_level(r, "x-value", "NONE");
    expect_register(base, REC_BAD, 2000, DS_ERR_OK, NULL, err, sizeof(err));

    /* not a schema: 422, for good */
    expect_register(base, "{\"type\": 7}", 2000, DS_ERR_CONFIG, "422", err, sizeof(err));
    /* 5xx: transient */
    ds_treg_fail_next(r, 1);
    expect_register(base, REC_V1, 2000, DS_ERR_IO, "500", err, sizeof(err));
    ds_treg_stop(r);
    /* nobody there: transient */
    expect_register(base, REC_V1, 500, DS_ERR_IO, NULL, err, sizeof(err));
}

static void test_registry_register_auth(void **state) {
    (void)state;
    ds_treg_opts_t o = {0, 0, "me:p@ss:w0rd"};
    ds_treg_t *r = ds_treg_start(&o);
    assert_non_null(r);
    char base[160], err[2048];
    int32_t id = -1;
    snprintf(base, sizeof(base), "http://me:p%%40ss%%3Aw0rd@127.0.0.1:%d", ds_treg_port(r));
    expect_register(base, REC_V1, 2000, DS_ERR_OK, NULL, err, sizeof(err));
    snprintf(base, sizeof(base), "http://me:hunter2@127.0.0.1:%d", ds_treg_port(r));
    expect_register(base, REC_V1, 2000, DS_ERR_CONFIG, "401", err, sizeof(err));
    assert_non_null(strstr(err, "user \"me\""));
    assert_null(strstr(err, "hunter2"));
    assert_int_equal(
        ds_registry_http_lookup(base, "x-value", REC_V1, 2000, &id, NULL, err, sizeof(err)),
        DS_ERR_CONFIG);
    assert_null(strstr(err, "hunter2"));
    ds_treg_stop(r);
}

static int setup(void **state) {
    (void)state;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    curl_global_cleanup();
    return 0;
}

UU_MAIN(setup, teardown, cmocka_unit_test(test_routes), cmocka_unit_test(test_no_metrics_no_ready),
        cmocka_unit_test(test_bad_addresses), cmocka_unit_test(test_registry_fetch),
        cmocka_unit_test(test_registry_basic_auth), cmocka_unit_test(test_registry_register_lookup),
        cmocka_unit_test(test_registry_register_auth))
