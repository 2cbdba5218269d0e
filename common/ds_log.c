/*
 * ds_log.c — key=value (or JSON) log lines on stderr.
 *
 * One fprintf per line under a mutex so lines from librdkafka's threads and
 * ours never interleave.  The message text is escaped for the format.
 */
#include "ds_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ds_buf.h"
#include "ds_clock.h"

static ds_log_level_t g_level = DS_LOG_INFO;
static int g_json;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const g_names[] = {"debug", "info", "warn", "error"};

void ds_log_set_level(ds_log_level_t lvl) { g_level = lvl; }
ds_log_level_t ds_log_get_level(void) { return g_level; }
void ds_log_set_json(int on) { g_json = on; }

int ds_log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, g_names[i]))
            return i;
    if (!strcmp(s, "warning"))
        return DS_LOG_WARN;
    return -1;
}

static void emit(ds_log_level_t lvl, const char *comp, const char *fmt, va_list ap,
                 uint64_t suppressed) {
    char msg[1024], esc[2200], ts[40];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t j = 0;
    for (size_t i = 0; msg[i] && j < sizeof(esc) - 3; i++) {
        char c = msg[i];
        if (c == '"' || c == '\\') {
            esc[j++] = '\\';
            esc[j++] = c;
        } else if (c == '\n' || c == '\r') {
            esc[j++] = ' ';
        } else {
            esc[j++] = c;
        }
    }
    esc[j] = '\0';
    ds_clock_format(ds_clock_now_ms(), ts, sizeof(ts));
    pthread_mutex_lock(&g_lock);
    if (g_json) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"comp\":\"%s\",\"msg\":\"%s\"", ts,
                g_names[lvl], comp, esc);
        if (suppressed)
            fprintf(stderr, ",\"suppressed\":%llu", (unsigned long long)suppressed);
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "ts=%s level=%s comp=%s msg=\"%s\"", ts, g_names[lvl], comp, esc);
        if (suppressed)
            fprintf(stderr, " suppressed=%llu", (unsigned long long)suppressed);
        fputc('\n', stderr);
    }
    pthread_mutex_unlock(&g_lock);
}

void ds_log(ds_log_level_t lvl, const char *comp, const char *fmt, ...) {
    if (lvl < g_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(lvl, comp, fmt, ap, 0);
    va_end(ap);
}

void ds_log_rl(ds_log_rl_t *st, int64_t interval_ms, ds_log_level_t lvl, const char *comp,
               const char *fmt, ...) {
    if (lvl < g_level)
        return;
    int64_t now = ds_clock_mono_ms();
    if (st->last_ms && now - st->last_ms < interval_ms) {
        st->suppressed++;
        return;
    }
    uint64_t sup = st->suppressed;
    st->suppressed = 0;
    st->last_ms = now;
    va_list ap;
    va_start(ap, fmt);
    emit(lvl, comp, fmt, ap, sup);
    va_end(ap);
}

void ds_log_redact_url(const char *url, char *out, size_t out_size) {
    /* scheme://user:password@host -> scheme://user:***@host */
    const char *scheme = strstr(url, "://");
    const char *at = strrchr(url, '@');
    if (!scheme || !at || at < scheme) {
        ds_strlcpy(out, url, out_size);
        return;
    }
    const char *creds = scheme + 3;
    const char *colon = memchr(creds, ':', (size_t)(at - creds));
    if (!colon) {
        /* a lone token before '@' is a password in redis://pass@host */
        snprintf(out, out_size, "%.*s***%s", (int)(creds - url), url, at);
        return;
    }
    snprintf(out, out_size, "%.*s:***%s", (int)(colon - url), url, at);
}
