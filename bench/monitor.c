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
 * {lead:L} (a lead without account), {deal:D}, {wpart:*}.  An EVALSHA (the
 * scorer's writes: workers/scorer/write.lua) is named by its first key, and
 * split into its program (ARGV[1], taken apart by field: its format is
 * write.lua's) and the rest; the commands its script
 * runs (MONITOR shows them as from "lua") are not sent by the worker: they
 * are counted apart, without bytes.  MONITOR slows Redis down, and with it
 * the worker's windows: read the shares, not the absolute figures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
static table_t inner;        /* run by scripts, by command and key shape */

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

/* ---- the scorer's write programs (workers/scorer/write.lua) ---- */

/* The fields of a lead operation after its id and mask, and the width of
 * each one's length; those of an account operation after its flag (the
 * last five only when the flag is 1). */
static const char *const lead_names[] = {"confront",       "connect",        "mobilizer", "tier",
                                         "top_insight",    "furthest_stage", "reasons",   "as_of",
                                         "events_applied", "state",          "checkpoint"};
static const int lead_widths[] = {1, 1, 1, 1, 2, 1, 2, 1, 1, 2, 1}; /* W: 2 -> 4 */
static const unsigned lead_bits[] = {2, 2, 2, 4, 4, 4, 8, 16, 16, 32, 64};
/* the operations of one mask each, and their masks */
static const char shape_ops[] = "FGPQZ";
static const unsigned shape_masks[] = {191, 63, 58, 48, 32};
static const char *const acct_names[] = {
    "state",     "checkpoint",  "as_of",     "engaged_stakeholders", "confronted_stakeholders",
    "consensus", "top_insight", "mobilizers"};
static const int acct_widths[] = {4, 1, 1, 1, 1, 1, 4, 4};

typedef struct prog {
    const unsigned char *p, *end;
    int bad;
} prog_t;

static unsigned long take(prog_t *g, int width) {
    unsigned long v = 0;
    if (g->end - g->p < width) {
        g->bad = 1;
        return 0;
    }
    for (int i = 0; i < width; i++)
        v = v << 8 | *g->p++;
    return v;
}

/* A value after its length: its bytes, counted in row `name` of what
 * (the length itself goes to the operation's overhead). */
static double take_str(prog_t *g, int width, const char *what, const char *name) {
    unsigned long n = take(g, width);
    if ((unsigned long)(g->end - g->p) < n) {
        g->bad = 1;
        return 0;
    }
    g->p += n;
    if (n && name) {
        char row_name[160];
        snprintf(row_name, sizeof(row_name), "%s %s", what, name);
        row_t *r = row(&fields, row_name);
        r->count++;
        r->bytes += (double)n;
    }
    return (double)n;
}

/* The program of one EVALSHA (units' shapes[0..nunits) in turn): its
 * values by field, and each operation's own bytes (operation, ids, masks,
 * lengths). */
static void program(const char *const *shapes, int nunits, const unsigned char *p, size_t n) {
    prog_t g = {p, p + n, 0};
    char what[160], over[200];
    int unit = 0;
    while (g.p < g.end && !g.bad) {
        const unsigned char *start = g.p;
        const char *shape = shapes[unit];
        double values = 0;
        int op = *g.p++;
        switch (op) {
        case 'U': /* counted with the EVALSHA's own bytes */
            if (++unit >= nunits)
                g.bad = 1;
            row(&fields, "EVALSHA (SHA-1, keys, account ids, lengths)")->bytes += 1;
            continue;
        case 'F':
        case 'G':
        case 'P':
        case 'Q':
        case 'Z':
        case 'L':
        case 'W': {
            if (strcmp(shape, "{lead:*}")) /* a lead of an account, or one without */
                snprintf(what, sizeof(what), "%s:lead:*", shape);
            else
                snprintf(what, sizeof(what), "%s", shape);
            values += take_str(&g, 2, what, "(id)");
            const char *sh = strchr(shape_ops, op);
            unsigned mask = sh ? shape_masks[sh - shape_ops] : 0;
            if (!sh)
                take(&g, 2); /* L, W: every value, after the mask */
            for (int i = 0; i < 11; i++)
                if (!sh || (mask & lead_bits[i]))
                    values += take_str(&g, op == 'W' && lead_widths[i] == 2 ? 4 : lead_widths[i],
                                       what, lead_names[i]);
            break;
        }
        case 'A': {
            snprintf(what, sizeof(what), "%s", shape);
            int all = (int)take(&g, 1) == 1;
            for (int i = 0; i < (all ? 8 : 3); i++)
                values += take_str(&g, acct_widths[i], what, acct_names[i]);
            break;
        }
        case 'D':
        case 'S': { /* D: the first index, then the texts; S: index and value each */
            snprintf(what, sizeof(what), "%s:%s", shape, op == 'D' ? "dict" : "sums");
            if (op == 'D')
                take(&g, 4);
            unsigned long k = take(&g, 2);
            for (unsigned long i = 0; i < k && !g.bad; i++) {
                if (op == 'S')
                    take(&g, 4);
                values += take_str(&g, 4, what, "(values)");
            }
            break;
        }
        case 'T':
            snprintf(what, sizeof(what), "%s:att:*", shape);
            values += take_str(&g, 2, what, "(content id)");
            values += take_str(&g, 2, what, "(lead id)");
            values += take_str(&g, 4, what, "(value)");
            break;
        case 'M':
            snprintf(what, sizeof(what), "%s:mobilizers", shape);
            take(&g, 1);
            values += take_str(&g, 2, what, "(lead id)");
            break;
        case 'X':
            snprintf(what, sizeof(what), "%s blob", shape);
            break;
        default:
            g.bad = 1;
            continue;
        }
        snprintf(over, sizeof(over), "%s (operation, mask, lengths)", what);
        row_t *r = row(&fields, over);
        r->count++;
        r->bytes += (double)(g.p - start) - values;
    }
    if (g.bad)
        row(&fields, "(write programs not understood)")->count++;
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
        const char *client = strchr(line, '[');
        const char *end = client ? strchr(client, ']') : NULL;
        int lua = end && end - client >= 4 && !strncmp(end - 3, "lua", 3);
        int c = split(line, arg, len);
        if (c < 1)
            continue;
        int script = !strcasecmp(arg[0], "EVALSHA") || !strcasecmp(arg[0], "EVAL");
        double bytes = 1 + (double)digits((size_t)c) + 2;
        for (int i = 0; i < c; i++)
            bytes += bulk(len[i]);
        char sb[160], name[200];
        const char *key = script ? NULL : (c > 1 ? arg[1] : NULL); /* a script: below */
        const char *sh = script ? "(units' writes)" : key ? shape(key, prefix, sb, sizeof(sb)) : "";
        for (char *u = arg[0]; *u; u++)
            *u = (char)(*u >= 'a' && *u <= 'z' ? *u - 32 : *u);
        snprintf(name, sizeof(name), "%s %s", arg[0], sh);
        if (lua) {
            row(&inner, name)->count++;
            continue;
        }
        total += bytes;
        row_t *r = row(&cmds, name);
        r->count++;
        r->bytes += bytes;
        int nkeys = script && c > 2 ? (int)strtol(arg[2], NULL, 10) : 0;
        if (script && nkeys > 0 && nkeys < 256 && c > 3 + nkeys) {
            /* the scorer's write script: KEYS the units, ARGV[1] their program */
            static char shape_buf[256][160];
            const char *shapes[256];
            for (int u = 0; u < nkeys; u++)
                shapes[u] = shape(arg[3 + u], prefix, shape_buf[u], sizeof(shape_buf[u]));
            size_t plen = len[3 + nkeys];
            program(shapes, nkeys, (const unsigned char *)arg[3 + nkeys], plen);
            row_t *f = row(&fields, "EVALSHA (SHA-1, keys, account ids, lengths)");
            f->count++;
            f->bytes += bytes - (double)plen;
            row_t *u = row(&fields, "EVALSHA units");
            u->count += nkeys;
            continue;
        }
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
    printf("%-52s %10s %9s %8s\n", "what the bytes carry", "per event", "B/event", "share");
    print(&fields, events, total);
    if (inner.n) {
        printf("\n%-52s %10s\n", "run by scripts (not sent)", "per event");
        for (int i = 0; i < inner.n; i++)
            inner.v[i].bytes = inner.v[i].count; /* sorted by count */
        qsort(inner.v, (size_t)inner.n, sizeof(row_t), by_bytes);
        for (int i = 0; i < inner.n; i++)
            printf("%-52s %10.3f\n", inner.v[i].name, inner.v[i].count / events);
    }
    return 0;
}
