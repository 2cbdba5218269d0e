/*
 * monitor.c — where the bytes a worker sends to Redis go: reads the output
 * of `redis-cli monitor` and prints, per kind of command and key, and per
 * field of the hashes the scorer writes, how often it came and how many
 * bytes of the Redis protocol it took, per event.
 *
 *   redis-cli -p PORT monitor > FILE;  ds_bench_monitor PREFIX EVENTS < FILE
 *
 * A command's bytes are its RESP encoding as a client sends it ("*N\r\n",
 * then "$LEN\r\n" ARG "\r\n" for each argument); the "framing" line of a
 * hash is its command, its key and the length prefixes of its fields.
 * Keys are named by their shape under PREFIX: {acct:A} (the account hash),
 * {acct:A}:lead:L (a lead hash), {acct:A}:att:C, {acct:A}:SUFFIX,
 * {lead:L} (a lead without account), {deal:D}, {wpart:*}.  MONITOR slows
 * Redis down, and with it the worker's windows: read the shares, not the
 * absolute figures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXARGS 4096
#define MAXROWS 256

typedef struct row {
    char name[96];
    double count, bytes;
} row_t;

typedef struct table {
    row_t v[MAXROWS];
    int n;
} table_t;

static table_t cmds, fields; /* by command and key shape; by hash field */

static row_t *row(table_t *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].name, name))
            return &t->v[i];
    if (t->n == MAXROWS)
        return &t->v[MAXROWS - 1];
    snprintf(t->v[t->n].name, sizeof(t->v[t->n].name), "%s", name);
    return &t->v[t->n++];
}

static int by_bytes(const void *a, const void *b) {
    const row_t *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : strcmp(x->name, y->name);
}

static void print(table_t *t, double events, double total) {
    qsort(t->v, (size_t)t->n, sizeof(row_t), by_bytes);
    for (int i = 0; i < t->n; i++)
        printf("%-52s %10.3f %9.1f %7.1f%%\n", t->v[i].name, t->v[i].count / events,
               t->v[i].bytes / events, total > 0 ? 100.0 * t->v[i].bytes / total : 0.0);
}

/* The hashes whose fields are named, not numbered. */
static int named_fields(const char *shape) {
    return !strcmp(shape, "{acct:*}") || !strcmp(shape, "{acct:*}:lead:*") ||
           !strcmp(shape, "{lead:*}") || !strcmp(shape, "{deal:*}");
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
}

/* The character an escape \c stands for (\n, \r, \t, \a, \b; else c). */
static char unescape(char c) {
    static const char from[] = "nrtab", to[] = "\n\r\t\a\b";
    const char *f = strchr(from, c);
    return f ? to[f - from] : c;
}

/* The quoted arguments of one MONITOR line, unescaped in place (sdscatrepr's
 * escapes); their count.  Each argument is NUL-terminated, its length in len. */
static int split(char *line, char **arg, size_t *len) {
    char *p = strchr(line, ']');
    int n = 0;
    while (p && (p = strchr(p, '"')) && n < MAXARGS) {
        char *out = ++p, *start = p;
        while (*p && *p != '"') {
            if (*p == '\\' && p[1]) {
                p++;
                if (*p == 'x' && p[1] && p[2]) {
                    *out++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
                    p += 3;
                    continue;
                }
                *out++ = unescape(*p);
                p++;
                continue;
            }
            *out++ = *p++;
        }
        if (!*p)
            break;
        len[n] = (size_t)(out - start);
        *out = '\0';
        arg[n++] = start;
        p++;
    }
    return n;
}

static size_t digits(size_t v) {
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* "$LEN\r\n" ARG "\r\n" */
static double bulk(size_t n) {
    return (double)(1 + digits(n) + 2 + n + 2);
}

/* The shape of a key under prefix: a static name. */
static const char *shape(const char *key, const char *prefix, char *buf, size_t cap) {
    size_t pl = strlen(prefix);
    if (strncmp(key, prefix, pl))
        return "(other key)";
    key += pl;
    const char *close = strchr(key, '}');
    if (*key != '{' || !close)
        return "(other key)";
    const char *colon = strchr(key, ':');
    size_t kind = colon && colon < close ? (size_t)(colon - key - 1) : 0;
    const char *rest = close + 1;
    if (!*rest) {
        snprintf(buf, cap, "{%.*s:*}", (int)kind, key + 1);
        return buf;
    }
    if (!strncmp(rest, ":lead:", 6))
        return "{acct:*}:lead:*";
    if (!strncmp(rest, ":att:", 5))
        return "{acct:*}:att:*";
    snprintf(buf, cap, "{%.*s:*}%.40s", (int)kind, key + 1, rest);
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: ds_bench_monitor PREFIX EVENTS < monitor-output\n");
        return 2;
    }
    const char *prefix = argv[1];
    double events = atof(argv[2]);
    if (events <= 0) {
        fprintf(stderr, "ds_bench_monitor: EVENTS must be positive\n");
        return 2;
    }
    static char *arg[MAXARGS];
    static size_t len[MAXARGS];
    size_t cap = 1 << 20;
    char *line = malloc(cap);
    double total = 0;
    while (line && getline(&line, &cap, stdin) > 0) {
        int c = split(line, arg, len);
        if (c < 1)
            continue;
        double bytes = 1 + (double)digits((size_t)c) + 2;
        for (int i = 0; i < c; i++)
            bytes += bulk(len[i]);
        total += bytes;
        char sb[160], name[200];
        const char *sh = c > 1 ? shape(arg[1], prefix, sb, sizeof(sb)) : "";
        for (char *u = arg[0]; *u; u++)
            *u = (char)(*u >= 'a' && *u <= 'z' ? *u - 32 : *u);
        snprintf(name, sizeof(name), "%s %s", arg[0], sh);
        row_t *r = row(&cmds, name);
        r->count++;
        r->bytes += bytes;
        if (strcmp(arg[0], "HSET") || !named_fields(sh))
            continue;
        double named = 0; /* the bytes of the names and values */
        for (int i = 2; i + 1 < c; i += 2) {
            snprintf(name, sizeof(name), "%s %s", sh, arg[i]);
            row_t *f = row(&fields, name);
            f->count++;
            f->bytes += (double)(len[i] + len[i + 1]);
            named += (double)(len[i] + len[i + 1]);
        }
        snprintf(name, sizeof(name), "%s (command, key, lengths)", sh);
        row_t *f = row(&fields, name);
        f->count++;
        f->bytes += bytes - named;
    }
    free(line);
    printf("%-52s %10s %9s %8s\n", "command and key", "per event", "B/event", "share");
    print(&cmds, events, total);
    printf("%-52s %10s %9.1f %7.1f%%\n\n", "all", "", total / events, 100.0);
    printf("%-52s %10s %9s %8s\n", "hash field (name and value)", "per event", "B/event", "share");
    print(&fields, events, total);
    return 0;
}
