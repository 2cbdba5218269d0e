/*
 * watch.c — times a throughput run from outside the workers, cheaply.
 *
 *   ds_bench_watch TARGET PORTS PIDS [MAX_SECONDS]
 *
 * PORTS and PIDS are comma-separated: the workers' metrics ports and their
 * process ids.  Every 20 ms it reads each port's /metrics over one plain
 * HTTP/1.0 request and sums dealsignal_polled_records_total (records taken
 * into a batch) and dealsignal_consumed_records_total (records whose state,
 * outputs and offsets are done).  It prints
 *
 *   first WALL POLLED     once records were polled (with several workers:
 *                         once every one is ready, /readyz 200)
 *   done WALL CONSUMED    once CONSUMED >= TARGET, then exits 0
 *   capped                before "done" when MAX_SECONDS passed since
 *                         "first" before CONSUMED reached TARGET (a run
 *                         too slow to wait for: its rate is CONSUMED so far)
 *
 * The clock starts at the first poll, not at the first commit: with
 * write-behind the first offsets are stored a flush interval later, and
 * the records polled meanwhile would be left out of the time but not of
 * the count.
 *
 * WALL is the realtime clock in seconds (as `date +%s.%N`).  Exits 1 when a
 * worker process is gone first.  bench/run.sh used to poll with curl and
 * awk every 20 ms: on this 2-core VM each poll cost ~40 ms of CPU, most of
 * a core taken from the worker and Redis it was measuring.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAXW 64
#define CONSUMED "dealsignal_consumed_records_total"
#define POLLED "dealsignal_polled_records_total"

/* GET path from 127.0.0.1:port into buf (NUL-terminated); the HTTP status,
 * or -1 when the request failed. */
static int http_get(int port, const char *path, char *buf, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    char req[128];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap)
            break; /* the rest is not needed: the metric comes early */
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status;
    if (sscanf(buf, "HTTP/%*s %d", &status) != 1)
        return -1;
    return status;
}

/* Sum of the samples of `name` in a Prometheus text body; -1 if absent. */
static double metric(const char *body, const char *name) {
    double sum = -1;
    size_t ml = strlen(name);
    for (const char *p = body; (p = strstr(p, name)) != NULL; p += ml) {
        if (p != body && p[-1] != '\n')
            continue; /* inside a comment line */
        const char *q = p + ml;
        if (*q == '{')
            q = strchr(q, '}');
        if (!q)
            break;
        if (*q == '}')
            q++;
        if (*q != ' ')
            continue;
        sum = (sum < 0 ? 0 : sum) + strtod(q, NULL);
    }
    return sum;
}

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int split(const char *s, long *out) {
    int n = 0;
    while (*s && n < MAXW) {
        char *end;
        out[n++] = strtol(s, &end, 10);
        s = *end == ',' ? end + 1 : end + strlen(end);
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s TARGET PORTS PIDS [MAX_SECONDS] (comma-separated lists)\n",
                argv[0]);
        return 2;
    }
    double target = strtod(argv[1], NULL);
    double max_s = argc == 5 ? strtod(argv[4], NULL) : 0, t_first = 0;
    long ports[MAXW], pids[MAXW];
    int np = split(argv[2], ports), nw = split(argv[3], pids);
    static char buf[1 << 20];
    int first = 0;
    const char *tr = getenv("BENCH_TRACE"); /* every sample to stderr */
    int trace = tr && *tr && strcmp(tr, "0") != 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        double consumed = 0, polled = 0;
        for (int i = 0; i < np; i++) {
            if (http_get((int)ports[i], "/metrics", buf, sizeof(buf)) == 200) {
                double v = metric(buf, CONSUMED), p = metric(buf, POLLED);
                if (p < 0) /* a build without the counter: its first commit */
                    p = v;
                if (v > 0)
                    consumed += v;
                if (p > 0)
                    polled += p;
            }
        }
        double now = wall();
        if (trace)
            fprintf(stderr, "trace %.3f %.0f %.0f\n", now, polled, consumed);
        if (!first && polled > 0) {
            int ready = 1;
            for (int i = 0; np > 1 && i < np; i++)
                if (http_get((int)ports[i], "/readyz", buf, 4096) != 200)
                    ready = 0;
            if (ready) {
                printf("first %.6f %.0f\n", now, polled);
                first = 1;
                t_first = now;
            }
        }
        if (first && max_s > 0 && now - t_first >= max_s && consumed < target) {
            printf("capped\ndone %.6f %.0f\n", now, consumed);
            return 0;
        }
        if (consumed >= target) {
            if (!first)
                printf("first %.6f %.0f\n", now, consumed);
            printf("done %.6f %.0f\n", now, consumed);
            return 0;
        }
        for (int i = 0; i < nw; i++)
            if (kill((pid_t)pids[i], 0) != 0 && errno == ESRCH) {
                fprintf(stderr, "worker %ld is gone\n", pids[i]);
                return 1;
            }
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, NULL);
    }
}
