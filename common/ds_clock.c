/* ds_clock.c — wall and monotonic time in ms; ISO-8601 formatting. */
#include "ds_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t ds_clock_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ds_clock_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ds_clock_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void ds_clock_format(int64_t ms, char *out, unsigned out_size) {
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)s * 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, out_size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

void ds_clock_sleep_ms(int64_t ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

bool ds_clock_parse(const char *s, int64_t *ms) {
    if (!strncmp(s, "now", 3)) {
        int64_t now = ds_clock_now_ms();
        if (!s[3]) {
            *ms = now;
            return true;
        }
        if (s[3] != '-' && s[3] != '+')
            return false;
        char *end;
        double d = strtod(s + 3, &end);
        if (end == s + 3 || strcmp(end, "d"))
            return false;
        *ms = now + (int64_t)(d * 86400000.0);
        return true;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!e) {
        memset(&tm, 0, sizeof(tm));
        e = strptime(s, "%Y-%m-%d", &tm);
    }
    if (!e)
        return false;
    int frac = 0;
    if (*e == '.') {
        int digits = 0;
        for (e++; *e >= '0' && *e <= '9'; e++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*e - '0');
        if (!digits)
            return false;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (*e == 'Z')
        e++;
    if (*e)
        return false;
    *ms = (int64_t)timegm(&tm) * 1000 + frac;
    return true;
}
