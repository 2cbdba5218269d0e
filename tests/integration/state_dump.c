/*
 * state_dump.c — see state_dump.h.  Errors print one line and end the
 * process after ds_h_cleanup(), as the harness does: a fixture that cannot
 * be read or a Redis that refuses a command is not something a test goes
 * on from.
 */
#include "state_dump.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ds_buf.h"

#define sd_die(...) ds_h_die("state_dump", __VA_ARGS__)

static void must(ds_err_t e) {
    if (e)
        sd_die("out of memory");
}

/* ---- event streams ---------------------------------------------------------- */

static json_t *jstr(const char *s) {
    return s ? json_string(s) : json_null();
}

void ds_sd_event_write(FILE *f, const ds_ma_event_t *ev) {
    json_t *o = json_object();
    json_t *sw = json_array();
    for (size_t i = 0; i < ev->shared_with_count; i++)
        json_array_append_new(sw, json_string(ev->shared_with[i]));
    json_object_set_new(o, "event_id", json_string(ev->event_id));
    json_object_set_new(o, "occurred_at", json_integer((json_int_t)ev->occurred_at));
    json_object_set_new(o, "lead_id", json_string(ev->lead_id));
    json_object_set_new(o, "account_id", jstr(ev->account_id));
    json_object_set_new(o, "type", json_string(ds_ma_type_name(ev->type)));
    json_object_set_new(o, "content_id", jstr(ev->content_id));
    json_object_set_new(o, "insight_id", jstr(ev->insight_id));
    json_object_set_new(o, "content_stage", jstr(ds_content_stage_name(ev->content_stage)));
    json_object_set_new(o, "shared_with", sw);
    json_object_set_new(o, "source", jstr(ev->source));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (!s)
        sd_die("cannot write event %s as JSON", ev->event_id);
    fprintf(f, "%s\n", s);
    free(s);
    json_decref(o);
}

typedef struct owned {
    json_t *docs;     /* array of the parsed lines */
    const char ***sw; /* each event's shared_with array */
    size_t n;
} owned_t;

/* The string member `name`; NULL for null or absent when optional. */
static bool get_str(json_t *o, const char *name, bool optional, const char **out) {
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v)) {
        *out = NULL;
        return optional;
    }
    if (!json_is_string(v))
        return false;
    *out = json_string_value(v);
    return true;
}

bool ds_sd_events_load(const char *path, ds_sd_events_t *out) {
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "state_dump: cannot open %s\n", path);
        return false;
    }
    owned_t *own = calloc(1, sizeof(*own));
    own->docs = json_array();
    out->owned = own;
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    size_t lineno = 0;
    bool ok = true;
    while (ok && (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if (len == 0 || line[0] == '\n')
            continue;
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)len, 0, &jerr);
        if (!o || !json_is_object(o)) {
            fprintf(stderr, "state_dump: %s:%zu: %s\n", path, lineno,
                    o ? "not an object" : jerr.text);
            json_decref(o);
            ok = false;
            break;
        }
        json_array_append_new(own->docs, o);
        if (out->n == cap) {
            cap = cap ? cap * 2 : 256;
            out->ev = realloc(out->ev, cap * sizeof(*out->ev));
            own->sw = realloc(own->sw, cap * sizeof(*own->sw));
            if (!out->ev || !own->sw)
                sd_die("out of memory");
        }
        ds_ma_event_t *e = &out->ev[out->n];
        memset(e, 0, sizeof(*e));
        own->sw[out->n] = NULL;
        out->n++;
        own->n = out->n;
        const char *type = NULL, *stage = NULL;
        json_t *t = json_object_get(o, "occurred_at");
        json_t *sw = json_object_get(o, "shared_with");
        ok = get_str(o, "event_id", false, &e->event_id) &&
             get_str(o, "lead_id", false, &e->lead_id) &&
             get_str(o, "account_id", true, &e->account_id) && get_str(o, "type", false, &type) &&
             get_str(o, "content_id", true, &e->content_id) &&
             get_str(o, "insight_id", true, &e->insight_id) &&
             get_str(o, "content_stage", true, &stage) && get_str(o, "source", true, &e->source) &&
             json_is_integer(t) && (!sw || json_is_array(sw));
        if (ok) {
            e->occurred_at = (int64_t)json_integer_value(t);
            e->type = ds_ma_type_parse(type);
            e->content_stage = stage ? ds_content_stage_parse(stage) : DS_NONE;
            ok = e->type != DS_NONE && (!stage || e->content_stage != DS_NONE);
        }
        size_t nsw = sw ? json_array_size(sw) : 0;
        if (ok && nsw) {
            const char **a = calloc(nsw, sizeof(*a));
            if (!a)
                sd_die("out of memory");
            own->sw[out->n - 1] = a;
            for (size_t i = 0; ok && i < nsw; i++) {
                a[i] = json_string_value(json_array_get(sw, i));
                ok = a[i] != NULL;
            }
            e->shared_with = a;
            e->shared_with_count = nsw;
        }
        if (!ok)
            fprintf(stderr, "state_dump: %s:%zu: not a MarketingEvent\n", path, lineno);
    }
    free(line);
    fclose(f);
    if (!ok)
        ds_sd_events_free(out);
    return ok;
}

void ds_sd_events_free(ds_sd_events_t *e) {
    owned_t *own = e->owned;
    if (own) {
        for (size_t i = 0; i < own->n; i++)
            free(own->sw[i]);
        free(own->sw);
        json_decref(own->docs);
        free(own);
    }
    free(e->ev);
    memset(e, 0, sizeof(*e));
}

/* ---- quoting ---------------------------------------------------------------- */

void ds_sd_quote(ds_buf_t *b, const void *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = p;
    must(ds_buf_append(b, "\"", 1));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            must(ds_buf_append(b, esc, 2));
        } else if (c >= 0x20 && c < 0x7f) {
            must(ds_buf_append(b, &c, 1));
        } else {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            must(ds_buf_append(b, esc, 4));
        }
    }
    must(ds_buf_append(b, "\"", 1));
}

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Split one dump line into arguments (the quoting ds_sd_quote writes, as
 * redis-cli reads it).  Arguments are appended NUL-separated to `args`,
 * their offsets and lengths to off/lens; returns the count or -1. */
static int split_args(const char *line, ds_buf_t *args, size_t *off, size_t *lens, int max) {
    const char *p = line;
    int n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '\n' || *p == '\r')
            return n;
        if (n == max)
            return -1;
        off[n] = args->len;
        if (*p != '"') { /* a bare word (the command name) */
            while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                must(ds_buf_append(args, p++, 1));
            lens[n] = args->len - off[n];
            must(ds_buf_append(args, "", 1));
            n++;
            continue;
        }
        p++;
        for (;;) {
            if (!*p)
                return -1; /* unterminated */
            if (*p == '"') {
                p++;
                break;
            }
            if (*p == '\\') {
                int hi, lo;
                if (p[1] == 'x' && (hi = hexval(p[2])) >= 0 && (lo = hexval(p[3])) >= 0) {
                    unsigned char c = (unsigned char)(hi * 16 + lo);
                    must(ds_buf_append(args, &c, 1));
                    p += 4;
                    continue;
                }
                char c = p[1];
                if (!c)
                    return -1;
                c = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
                must(ds_buf_append(args, &c, 1));
                p += 2;
                continue;
            }
            must(ds_buf_append(args, p, 1));
            p++;
        }
        if (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return -1; /* a closing quote must end the argument */
        lens[n] = args->len - off[n];
        must(ds_buf_append(args, "", 1));
        n++;
    }
}

/* ---- dump and restore ---------------------------------------------------------- */

redisContext *ds_sd_connect(const ds_h_env_t *env, int db) {
    redisContext *c = redisConnect("127.0.0.1", env->redis_port);
    if (!c || c->err)
        sd_die("cannot connect to redis on port %d", env->redis_port);
    redisReply *r = redisCommand(c, "SELECT %d", db);
    if (!r || r->type == REDIS_REPLY_ERROR)
        sd_die("SELECT %d failed", db);
    freeReplyObject(r);
    return c;
}

static redisReply *cmd(redisContext *c, int argc, const char **argv, const size_t *lens) {
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (!r)
        sd_die("redis: %s", c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        sd_die("redis refused %s: %s", argv[0], r->str);
    return r;
}

/* cmd of `verb key args…` (args: strings up to a NULL, six at most); the
 * key is binary-safe. */
static redisReply *key_cmd(redisContext *c, const char *verb, const redisReply *key, ...) {
    const char *argv[8] = {verb, key->str};
    size_t lens[8] = {strlen(verb), key->len};
    int argc = 2;
    va_list ap;
    va_start(ap, key);
    for (const char *a; (a = va_arg(ap, const char *));) {
        if (argc == 8)
            sd_die("%s: too many arguments", verb);
        lens[argc] = strlen(a);
        argv[argc++] = a;
    }
    va_end(ap);
    return cmd(c, argc, argv, lens);
}

typedef struct bstr {
    const char *p;
    size_t n;
    size_t idx; /* where it came from */
} bstr_t;

static int cmp_bstr(const void *a, const void *b) {
    const bstr_t *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* One command line: name, the key, then the elements (sorted) of an
 * array reply taken `stride` at a time (2 for field/value pairs). */
static void put_cmd(FILE *f, ds_buf_t *b, const char *name, const redisReply *key,
                    const redisReply *arr, size_t stride, bool score_first) {
    size_t n = arr->elements / stride;
    bstr_t *v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        sd_die("out of memory");
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = arr->element[i * stride];
        v[i] = (bstr_t){e->str, e->len, i};
    }
    /* RPUSH keeps list order; the rest sort */
    if (strcmp(name, "RPUSH"))
        qsort(v, n, sizeof(*v), cmp_bstr);
    ds_buf_reset(b);
    must(ds_buf_append(b, name, strlen(name)));
    must(ds_buf_append(b, " ", 1));
    ds_sd_quote(b, key->str, key->len);
    for (size_t i = 0; i < n; i++) {
        /* the hash value or the sorted set score that came with it */
        const redisReply *second = stride == 2 ? arr->element[v[i].idx * 2 + 1] : NULL;
        if (score_first) {
            must(ds_buf_append(b, " ", 1));
            ds_sd_quote(b, second->str, second->len);
        }
        must(ds_buf_append(b, " ", 1));
        ds_sd_quote(b, v[i].p, v[i].n);
        if (second && !score_first) {
            must(ds_buf_append(b, " ", 1));
            ds_sd_quote(b, second->str, second->len);
        }
    }
    must(ds_buf_append(b, "\n", 1));
    fwrite(b->data, 1, b->len, f);
    free(v);
}

size_t ds_sd_dump(redisContext *c, const char *prefix, FILE *f) {
    /* every key under the prefix, sorted */
    redisReply **keys = NULL;
    size_t nkeys = 0, cap = 0;
    char cursor[32] = "0";
    char pattern[256];
    snprintf(pattern, sizeof(pattern), "%s*", prefix);
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        redisReply *r = cmd(c, 6, argv, NULL);
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
            sd_die("unexpected SCAN reply");
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        redisReply *arr = r->element[1];
        for (size_t i = 0; i < arr->elements; i++) {
            if (nkeys == cap) {
                cap = cap ? cap * 2 : 256;
                keys = realloc(keys, cap * sizeof(*keys));
                if (!keys)
                    sd_die("out of memory");
            }
            /* move the element out of the reply */
            keys[nkeys++] = arr->element[i];
            arr->element[i] = NULL;
        }
        arr->elements = 0;
        freeReplyObject(r);
    } while (strcmp(cursor, "0"));
    bstr_t *order = calloc(nkeys ? nkeys : 1, sizeof(*order));
    for (size_t i = 0; i < nkeys; i++)
        order[i] = (bstr_t){keys[i]->str, keys[i]->len, i};
    qsort(order, nkeys, sizeof(*order), cmp_bstr);
    ds_buf_t b;
    ds_buf_init(&b, 0);
    size_t dumped = 0;
    for (size_t i = 0; i < nkeys; i++) {
        const redisReply *key = keys[order[i].idx];
        if (i && !cmp_bstr(&order[i - 1], &order[i]))
            continue; /* SCAN may return a key twice */
        redisReply *t = key_cmd(c, "TYPE", key, NULL);
        const char *type = t->str;
        redisReply *v = NULL;
        if (!strcmp(type, "hash")) {
            v = key_cmd(c, "HGETALL", key, NULL);
            put_cmd(f, &b, "HSET", key, v, 2, false);
        } else if (!strcmp(type, "set")) {
            v = key_cmd(c, "SMEMBERS", key, NULL);
            put_cmd(f, &b, "SADD", key, v, 1, false);
        } else if (!strcmp(type, "list")) {
            v = key_cmd(c, "LRANGE", key, "0", "-1", NULL);
            put_cmd(f, &b, "RPUSH", key, v, 1, false);
        } else if (!strcmp(type, "zset")) {
            v = key_cmd(c, "ZRANGE", key, "0", "-1", "WITHSCORES", NULL);
            put_cmd(f, &b, "ZADD", key, v, 2, true);
        } else if (!strcmp(type, "string")) {
            v = key_cmd(c, "GET", key, NULL);
            ds_buf_reset(&b);
            must(ds_buf_append(&b, "SET ", 4));
            ds_sd_quote(&b, key->str, key->len);
            must(ds_buf_append(&b, " ", 1));
            ds_sd_quote(&b, v->str, v->len);
            must(ds_buf_append(&b, "\n", 1));
            fwrite(b.data, 1, b.len, f);
        } else {
            sd_die("key of type %s is not supported by the dump", type);
        }
        freeReplyObject(v);
        freeReplyObject(t);
        redisReply *ttl = key_cmd(c, "PTTL", key, NULL);
        if (ttl->type == REDIS_REPLY_INTEGER && ttl->integer >= 0) {
            ds_buf_reset(&b);
            must(ds_buf_append(&b, "PEXPIRE ", 8));
            ds_sd_quote(&b, key->str, key->len);
            must(ds_buf_appendf(&b, " \"%lld\"\n", ttl->integer));
            fwrite(b.data, 1, b.len, f);
        }
        freeReplyObject(ttl);
        dumped++;
    }
    ds_buf_free(&b);
    for (size_t i = 0; i < nkeys; i++)
        freeReplyObject(keys[i]);
    free(keys);
    free(order);
    return dumped;
}

size_t ds_sd_restore(redisContext *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        sd_die("cannot open %s", path);
    char *line = NULL;
    size_t lcap = 0, sent = 0, lineno = 0;
    ds_buf_t args;
    ds_buf_init(&args, 0);
    enum { MAXARGS = 4096 };
    size_t *off = calloc(MAXARGS, sizeof(*off)), *lens = calloc(MAXARGS, sizeof(*lens));
    const char **argv = calloc(MAXARGS, sizeof(*argv));
    if (!off || !lens || !argv)
        sd_die("out of memory");
    while (getline(&line, &lcap, f) >= 0) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        ds_buf_reset(&args);
        int n = split_args(line, &args, off, lens, MAXARGS);
        if (n <= 0)
            sd_die("%s:%zu: not a dump line", path, lineno);
        for (int i = 0; i < n; i++)
            argv[i] = (const char *)args.data + off[i];
        freeReplyObject(cmd(c, n, argv, lens));
        sent++;
    }
    free(line);
    free(off);
    free(lens);
    free(argv);
    ds_buf_free(&args);
    fclose(f);
    return sent;
}

/* ---- outputs ------------------------------------------------------------------- */

static void put_opt(ds_buf_t *b, const char *name, const char *s) {
    must(ds_buf_appendf(b, " %s ", name));
    if (s)
        ds_sd_quote(b, s, strlen(s));
    else
        must(ds_buf_append(b, "null", 4));
}

char *ds_sd_render_output(const char *kind, const ds_h_record_t *r) {
    const char *id = ds_h_header(r, "dealsignal.id");
    if (!id)
        sd_die("a %s record without dealsignal.id", kind);
    ds_arena_t arena;
    ds_arena_init(&arena, 0);
    ds_buf_t b;
    ds_buf_init(&b, 0);
    char detail[256];
    must(ds_buf_appendf(&b, "%s ", kind));
    ds_sd_quote(&b, id, strlen(id));
    put_opt(&b, "key", r->key);
    if (!strcmp(kind, "lead")) {
        ds_lead_score_t s;
        if (ds_codec_decode_lead_score(ds_h_codec(), r->val, r->len, &arena, &s, detail,
                                       sizeof(detail)))
            sd_die("LeadScore %s does not decode: %s", id, detail);
        put_opt(&b, "lead_id", s.lead_id);
        put_opt(&b, "account_id", s.account_id);
        must(ds_buf_appendf(&b, " confront %.17g connect %.17g mobilizer %.17g", s.confront,
                            s.connect, s.mobilizer));
        must(ds_buf_appendf(&b, " tier %s previous_tier %s", ds_tier_name(s.tier),
                            ds_tier_name(s.previous_tier)));
        put_opt(&b, "top_insight", s.top_insight);
        put_opt(&b, "furthest_stage", ds_content_stage_name(s.furthest_stage));
        must(ds_buf_append(&b, " reasons [", 10));
        for (size_t i = 0; i < s.reasons_count; i++) {
            if (i)
                must(ds_buf_append(&b, " ", 1));
            ds_sd_quote(&b, s.reasons[i], strlen(s.reasons[i]));
        }
        must(ds_buf_appendf(&b, "] as_of %" PRId64 " events_applied %" PRId64, s.as_of,
                            s.events_applied));
    } else {
        ds_account_score_t s;
        if (ds_codec_decode_account_score(ds_h_codec(), r->val, r->len, &arena, &s, detail,
                                          sizeof(detail)))
            sd_die("AccountScore %s does not decode: %s", id, detail);
        put_opt(&b, "account_id", s.account_id);
        must(ds_buf_appendf(
            &b, " engaged_stakeholders %d confronted_stakeholders %d consensus %.17g",
            (int)s.engaged_stakeholders, (int)s.confronted_stakeholders, s.consensus));
        put_opt(&b, "top_insight", s.top_insight);
        must(ds_buf_append(&b, " mobilizers [", 13));
        for (size_t i = 0; i < s.mobilizers_count; i++) {
            if (i)
                must(ds_buf_append(&b, " ", 1));
            ds_sd_quote(&b, s.mobilizers[i], strlen(s.mobilizers[i]));
        }
        must(ds_buf_appendf(&b, "] as_of %" PRId64, s.as_of));
    }
    must(ds_buf_append(&b, "", 1));
    ds_arena_free(&arena);
    char *out = strdup((const char *)b.data);
    ds_buf_free(&b);
    if (!out)
        sd_die("out of memory");
    return out;
}
