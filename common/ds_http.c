/*
 * ds_http.c — /metrics, /healthz and /readyz over libmicrohttpd.
 *
 * Design.  MHD runs one internal polling thread; every request is answered
 * on it in the first access-handler call (the routes take no body), so no
 * per-connection state exists.  /metrics renders into a fresh buffer per
 * scrape (scrapes are rare; the registry mutex is held only while
 * rendering).  MHD's own error messages go to our log through an external
 * logger; while ds_http_start() runs, the last one is also kept so that a
 * failed bind is reported with MHD's reason (e.g. "Address already in
 * use") in errstr.  Connections are bounded in number and time so a
 * misbehaving scraper cannot pin the thread or the memory.
 */
#include "ds_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ds_log.h"

#define CONN_LIMIT 32
#define CONN_TIMEOUT_S 10
#define METRICS_LIMIT (64u << 20) /* a render bigger than this is a bug */

struct ds_http {
    struct MHD_Daemon *d;
    ds_metrics_t *metrics;
    ds_http_ready_fn ready;
    void *opaque;
    int port;
    pthread_mutex_t log_lock;
    bool starting;
    char start_err[256];
};

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    ds_http_t *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    pthread_mutex_lock(&h->log_lock);
    bool starting = h->starting;
    if (starting)
        ds_strlcpy(h->start_err, msg, sizeof(h->start_err));
    pthread_mutex_unlock(&h->log_lock);
    /* a start-up failure reaches the caller through errstr */
    ds_log(starting ? DS_LOG_DEBUG : DS_LOG_WARN, "http", "%s", msg);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *ctype,
                             const void *body, size_t len) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    enum MHD_Result ret = MHD_YES;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES)
        ret = MHD_NO;
    if (ret == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED)
        ret = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (ret == MHD_YES)
        ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned int status, const char *text) {
    return reply(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

static enum MHD_Result serve_metrics(ds_http_t *h, struct MHD_Connection *c) {
    ds_buf_t b;
    ds_buf_init(&b, METRICS_LIMIT);
    ds_err_t e = h->metrics ? ds_metrics_render(h->metrics, &b) : DS_ERR_OK;
    enum MHD_Result ret;
    if (e) {
        DS_ERROR("http", "cannot render metrics: %s", ds_err2str(e));
        ret = reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n");
    } else {
        ret = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                    b.data ? (const void *)b.data : "", b.len);
    }
    ds_buf_free(&b);
    return ret;
}

static enum MHD_Result serve_ready(ds_http_t *h, struct MHD_Connection *c) {
    char why[512] = "";
    if (!h->ready || h->ready(h->opaque, why, sizeof(why)))
        return reply_text(c, MHD_HTTP_OK, "ready\n");
    why[sizeof(why) - 1] = '\0';
    char body[sizeof(why) + 16];
    snprintf(body, sizeof(body), "%s\n", why[0] ? why : "not ready");
    return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    (void)upload_data;
    (void)con_cls;
    ds_http_t *h = cls;
    enum { R_NONE, R_METRICS, R_HEALTH, R_READY } route = R_NONE;
    if (!strcmp(url, "/metrics"))
        route = R_METRICS;
    else if (!strcmp(url, "/healthz"))
        route = R_HEALTH;
    else if (!strcmp(url, "/readyz"))
        route = R_READY;
    if (route == R_NONE)
        return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *upload_data_size = 0; /* any body is ignored */
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    switch (route) {
    case R_METRICS:
        return serve_metrics(h, c);
    case R_HEALTH:
        return reply_text(c, MHD_HTTP_OK, "ok\n");
    case R_READY:
        return serve_ready(h, c);
    case R_NONE:
        break;
    }
    return MHD_NO;
}

/* Splits "HOST:PORT" / "[V6]:PORT" and resolves it. */
static bool parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen,
                       char *errstr, size_t errstr_size) {
    char host[256];
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon) {
        snprintf(errstr, errstr_size, "address \"%s\" is not HOST:PORT", addr ? addr : "");
        return false;
    }
    const char *hs = addr, *he = colon;
    if (*hs == '[') {
        if (he == hs || he[-1] != ']') {
            snprintf(errstr, errstr_size, "address \"%s\": unterminated [IPv6] host", addr);
            return false;
        }
        hs++;
        he--;
    } else if (memchr(hs, ':', (size_t)(he - hs))) {
        snprintf(errstr, errstr_size, "address \"%s\": write IPv6 hosts as [HOST]:PORT", addr);
        return false;
    }
    if ((size_t)(he - hs) >= sizeof(host)) {
        snprintf(errstr, errstr_size, "address \"%s\": host too long", addr);
        return false;
    }
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';

    const char *ps = colon + 1;
    char *end = NULL;
    errno = 0;
    long port = strtol(ps, &end, 10);
    if (!*ps || *end || errno || port < 0 || port > 65535 || *ps == '-' || *ps == '+' ||
        *ps == ' ') {
        snprintf(errstr, errstr_size, "address \"%s\": port must be a number 0..65535", addr);
        return false;
    }

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host[0] && strcmp(host, "*") ? host : "0.0.0.0", ps, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(errstr, errstr_size, "address \"%s\": cannot resolve host \"%s\": %s", addr, host,
                 gai_strerror(rc));
        if (res)
            freeaddrinfo(res);
        return false;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

ds_http_t *ds_http_start(const char *addr, ds_metrics_t *m, ds_http_ready_fn ready, void *opaque,
                         char *errstr, size_t errstr_size) {
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    if (!parse_addr(addr, &ss, &sslen, errstr, errstr_size))
        return NULL;
    (void)sslen;
    ds_http_t *h = calloc(1, sizeof(*h));
    if (!h || pthread_mutex_init(&h->log_lock, NULL)) {
        free(h);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    h->metrics = m;
    h->ready = ready;
    h->opaque = opaque;
    h->starting = true;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the logger must come first to catch every message */
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
                            mhd_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONN_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONN_TIMEOUT_S,
                            MHD_OPTION_END);
    pthread_mutex_lock(&h->log_lock);
    h->starting = false;
    pthread_mutex_unlock(&h->log_lock);
    if (!h->d) {
        /* MHD says "Failed to bind to port 0: <strerror>" (it never saw
         * our port, only the sockaddr): keep just the reason */
        const char *why = h->start_err[0] ? h->start_err : "libmicrohttpd failed to start";
        const char *tail = strrchr(why, ':');
        if (!strncmp(why, "Failed to bind", 14) && tail)
            snprintf(errstr, errstr_size, "cannot bind %s:%s", addr, tail + 1);
        else
            snprintf(errstr, errstr_size, "cannot serve HTTP on %s: %s", addr, why);
        ds_http_stop(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? (int)info->port : 0;
    if (h->port == 0) {
        snprintf(errstr, errstr_size, "cannot serve HTTP on %s: bound port unknown", addr);
        ds_http_stop(h);
        return NULL;
    }
    return h;
}

int ds_http_port(const ds_http_t *h) {
    return h ? h->port : 0;
}

void ds_http_stop(ds_http_t *h) {
    if (!h)
        return;
    if (h->d)
        MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->log_lock);
    free(h);
}
