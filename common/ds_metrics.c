/*
 * ds_metrics.c — a Prometheus registry with lock-free updates.
 *
 * Design.  Families (name, help, type) and series (one label set) are
 * created under one mutex and never freed before ds_metrics_destroy(), so a
 * handle is a stable pointer into its series and the hot path is a single
 * atomic operation: fetch_add for counters and histogram buckets, a store
 * or a CAS loop on the IEEE-754 bits for gauges and histogram sums.
 * Lookups go through two uthash tables (family by full name, series by
 * "full name\0canonical labels"); both orders of registration are kept in
 * linked lists so the output is stable and each family is rendered once,
 * together, wherever its series were registered.
 *
 * Invariants.  Every series' family has the same type; every series of a
 * histogram family shares the family's bounds.  Histogram buckets are
 * stored per bucket (not cumulative): an observation is one fetch_add, and
 * render derives the cumulative counts and `_count` from one pass over the
 * buckets, so `_count` always equals the `+Inf` bucket.  `_sum` is read
 * separately and may be ahead or behind by observations in flight.
 * Labels are stored canonical (escaped, `k="v",...`), so "same labels" is
 * a string compare.
 */
#include "ds_metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

const double ds_latency_bounds[DS_LATENCY_BOUNDS_N] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

#define MAX_BUCKETS 64
#define MAX_LABELS 32

typedef enum { T_COUNTER, T_GAUGE, T_HISTOGRAM } family_type_t;

struct ds_counter {
    atomic_uint_fast64_t value;
};

struct ds_gauge {
    _Atomic uint64_t bits; /* a double's bits */
};

struct ds_histogram {
    size_t n;             /* finite bounds; buckets has n + 1 slots */
    const double *bounds; /* the family's copy */
    _Atomic uint64_t sum_bits;
    atomic_uint_fast64_t buckets[];
};

typedef struct family family_t;

typedef struct series {
    UT_hash_handle hh;
    char *key; /* full name '\0' canonical labels: the hash key */
    size_t keylen;
    const char *labels; /* points into key */
    family_t *fam;
    struct series *next; /* in the family, registration order */
    struct ds_counter counter;
    struct ds_gauge gauge;
    bool is_fn;
    double (*fn)(void *);
    void *opaque;
    ds_histogram_t *hist;
} series_t;

struct family {
    UT_hash_handle hh;
    char *name; /* full name, with prefix (and _total for counters) */
    char *help;
    family_type_t type;
    double *bounds;
    size_t nbounds;
    series_t *first, *last;
    family_t *next; /* registration order */
};

struct ds_metrics {
    pthread_mutex_t lock;
    char *prefix;
    family_t *fam_by_name;
    series_t *series_by_key;
    family_t *first, *last;
};

/* ---- helpers ------------------------------------------------------------ */

static bool name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool name_char(char c) {
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Metric names also allow ':'.  `may_be_empty` for the prefix. */
static bool valid_metric_chars(const char *s, bool first_pos) {
    for (const char *p = s; *p; p++) {
        bool ok =
            (p == s && first_pos) ? (name_start(*p) || *p == ':') : (name_char(*p) || *p == ':');
        if (!ok)
            return false;
    }
    return true;
}

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static uint64_t dbits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}
static double bitsd(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* Adds v to the double stored in *bits; lock-free CAS loop. */
static void atomic_add_double(_Atomic uint64_t *bits, double v) {
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    for (;;) {
        uint64_t nw = dbits(bitsd(old) + v);
        if (atomic_compare_exchange_weak_explicit(bits, &old, nw, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

/* Shortest of %.15g / %.17g that reads back exactly; Prometheus spellings
 * for the non-finite values. */
static void fmt_double(char *out, size_t size, double v) {
    if (isnan(v)) {
        snprintf(out, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, size, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    snprintf(out, size, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, size, "%.17g", v);
}

/* Appends s escaped for a label value (\\, \", \n) or, with `help`, for a
 * HELP line (\\, \n only). */
static ds_err_t append_escaped(ds_buf_t *b, const char *s, size_t n, bool help) {
    ds_err_t e = DS_ERR_OK;
    size_t run = 0; /* bytes pending that need no escape */
    for (size_t i = 0; i < n && !e; i++) {
        const char *esc = NULL;
        if (s[i] == '\\')
            esc = "\\\\";
        else if (s[i] == '\n')
            esc = "\\n";
        else if (s[i] == '"' && !help)
            esc = "\\\"";
        if (!esc) {
            run++;
            continue;
        }
        e = ds_buf_append(b, s + i - run, run);
        run = 0;
        if (!e)
            e = ds_buf_append(b, esc, 2);
    }
    if (!e)
        e = ds_buf_append(b, s + n - run, run);
    return e;
}

/* True when the '"' at q closes a label value: what follows is the end,
 * or `,` then the end or `name="`. */
static bool value_ends_at(const char *q) {
    const char *r = q + 1;
    while (*r == ' ')
        r++;
    if (!*r)
        return true;
    if (*r != ',')
        return false;
    r++;
    while (*r == ' ')
        r++;
    if (!*r)
        return true;
    if (!name_start(*r))
        return false;
    while (name_char(*r))
        r++;
    return r[0] == '=' && r[1] == '"';
}

/* Parses caller labels into canonical escaped form in `out` (NUL
 * terminated, "" for none).  DS_ERR_INVAL on bad syntax, a bad or
 * duplicate name, or `le` when !allow_le. */
static ds_err_t canon_labels(const char *in, bool allow_le, ds_buf_t *out) {
    const char *names[MAX_LABELS];
    size_t lens[MAX_LABELS];
    size_t nl = 0;
    ds_err_t e = DS_ERR_OK;
    const char *p = in ? in : "";
    while (*p == ' ')
        p++;
    while (*p && !e) {
        if (!name_start(*p))
            return DS_ERR_INVAL;
        const char *name = p;
        while (name_char(*p))
            p++;
        size_t len = (size_t)(p - name);
        if (p[0] != '=' || p[1] != '"')
            return DS_ERR_INVAL;
        if (len >= 2 && name[0] == '_' && name[1] == '_')
            return DS_ERR_INVAL; /* reserved */
        if (!allow_le && len == 2 && !memcmp(name, "le", 2))
            return DS_ERR_INVAL;
        for (size_t i = 0; i < nl; i++)
            if (lens[i] == len && !memcmp(names[i], name, len))
                return DS_ERR_INVAL;
        if (nl == MAX_LABELS)
            return DS_ERR_INVAL;
        names[nl] = name;
        lens[nl++] = len;
        const char *v = p + 2, *q = v;
        for (;;) {
            q = strchr(q, '"');
            if (!q)
                return DS_ERR_INVAL;
            if (value_ends_at(q))
                break;
            q++;
        }
        if (nl > 1)
            e = ds_buf_append(out, ",", 1);
        if (!e)
            e = ds_buf_append(out, name, len + 2); /* name=" */
        if (!e)
            e = append_escaped(out, v, (size_t)(q - v), false);
        if (!e)
            e = ds_buf_append(out, "\"", 1);
        p = q + 1;
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
        while (*p == ' ')
            p++;
    }
    if (!e)
        e = ds_buf_append(out, "", 1);
    return e;
}

/* ---- registry ------------------------------------------------------------ */

ds_metrics_t *ds_metrics_new(const char *prefix) {
    if (!prefix)
        prefix = "";
    if (!valid_metric_chars(prefix, true))
        return NULL;
    ds_metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->prefix = dupstr(prefix);
    if (!m->prefix || pthread_mutex_init(&m->lock, NULL)) {
        free(m->prefix);
        free(m);
        return NULL;
    }
    return m;
}

void ds_metrics_destroy(ds_metrics_t *m) {
    if (!m)
        return;
    series_t *s, *stmp;
    HASH_ITER(hh, m->series_by_key, s, stmp) {
        HASH_DEL(m->series_by_key, s);
        free(s->hist);
        free(s->key);
        free(s);
    }
    family_t *f, *ftmp;
    HASH_ITER(hh, m->fam_by_name, f, ftmp) {
        HASH_DEL(m->fam_by_name, f);
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m->prefix);
    free(m);
}

/* A new family (caller holds the lock and has checked it does not exist).
 * NULL when out of memory. */
static family_t *new_family(ds_metrics_t *m, const char *fullname, const char *help,
                            family_type_t type, const double *bounds, size_t nb) {
    family_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->name = dupstr(fullname);
    f->help = dupstr(help ? help : "");
    f->type = type;
    if (type == T_HISTOGRAM) {
        f->bounds = malloc(nb * sizeof(*bounds));
        if (f->bounds)
            memcpy(f->bounds, bounds, nb * sizeof(*bounds));
        f->nbounds = nb;
    }
    if (!f->name || !f->help || (type == T_HISTOGRAM && !f->bounds)) {
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
        return NULL;
    }
    HASH_ADD_KEYPTR(hh, m->fam_by_name, f->name, strlen(f->name), f);
    if (m->last)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    return f;
}

/* Finds or creates the series (a new one is a callback gauge when as_fn);
 * *err says why when it returns NULL: invalid input, a type clash or out of
 * memory. */
static series_t *get_series(ds_metrics_t *m, const char *name, const char *help, const char *labels,
                            family_type_t type, const double *bounds, size_t nb, bool as_fn,
                            ds_err_t *err) {
    *err = DS_ERR_INVAL;
    if (!m || !name || !name[0] || !valid_metric_chars(name, m->prefix[0] == '\0'))
        return NULL;
    ds_buf_t key;
    ds_buf_init(&key, 0);
    const char *suffix = "";
    size_t nlen = strlen(name);
    if (type == T_COUNTER && !(nlen >= 6 && !strcmp(name + nlen - 6, "_total")))
        suffix = "_total";
    /* key = fullname '\0' labels '\0' */
    if (ds_buf_appendf(&key, "%s%s%s", m->prefix, name, suffix) || ds_buf_append(&key, "", 1)) {
        ds_buf_free(&key);
        *err = DS_ERR_NOMEM;
        return NULL;
    }
    size_t name_part = key.len;
    if (canon_labels(labels, type != T_HISTOGRAM, &key)) {
        ds_buf_free(&key);
        return NULL;
    }
    size_t keylen = key.len - 1; /* without the final NUL */
    series_t *s = NULL;
    pthread_mutex_lock(&m->lock);
    HASH_FIND(hh, m->series_by_key, key.data, keylen, s);
    if (s) {
        family_t *f = s->fam;
        bool same_bounds = type != T_HISTOGRAM ||
                           (f->nbounds == nb && !memcmp(f->bounds, bounds, nb * sizeof(*bounds)));
        if (f->type != type || !same_bounds)
            s = NULL;
        else
            *err = DS_ERR_OK;
        pthread_mutex_unlock(&m->lock);
        ds_buf_free(&key);
        return s;
    }
    family_t *f = NULL;
    HASH_FIND_STR(m->fam_by_name, (const char *)key.data, f);
    if (f && (f->type != type ||
              (type == T_HISTOGRAM &&
               (f->nbounds != nb || memcmp(f->bounds, bounds, nb * sizeof(*bounds)) != 0)))) {
        pthread_mutex_unlock(&m->lock);
        ds_buf_free(&key);
        return NULL; /* INVAL: type or bounds clash */
    }
    *err = DS_ERR_NOMEM;
    if (!f)
        f = new_family(m, (const char *)key.data, help, type, bounds, nb);
    if (f)
        s = calloc(1, sizeof(*s));
    if (s && type == T_HISTOGRAM) {
        s->hist = calloc(1, sizeof(*s->hist) + (nb + 1) * sizeof(s->hist->buckets[0]));
        if (s->hist) {
            s->hist->n = nb;
            s->hist->bounds = f->bounds;
            atomic_init(&s->hist->sum_bits, dbits(0.0));
            for (size_t i = 0; i <= nb; i++)
                atomic_init(&s->hist->buckets[i], 0);
        } else {
            free(s);
            s = NULL;
        }
    }
    if (s) {
        s->key = (char *)key.data; /* now owned by the series */
        s->keylen = keylen;
        s->labels = s->key + name_part;
        s->fam = f;
        s->is_fn = as_fn; /* set under the lock: render never sees it half made */
        atomic_init(&s->counter.value, 0);
        atomic_init(&s->gauge.bits, dbits(0.0));
        HASH_ADD_KEYPTR(hh, m->series_by_key, s->key, s->keylen, s);
        if (f->last)
            f->last->next = s;
        else
            f->first = s;
        f->last = s;
        *err = DS_ERR_OK;
    } else {
        ds_buf_free(&key);
    }
    pthread_mutex_unlock(&m->lock);
    return s;
}

ds_counter_t *ds_metrics_counter(ds_metrics_t *m, const char *name, const char *help,
                                 const char *labels) {
    ds_err_t err;
    series_t *s = get_series(m, name, help, labels, T_COUNTER, NULL, 0, false, &err);
    return s ? &s->counter : NULL;
}

void ds_counter_add(ds_counter_t *c, uint64_t n) {
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t ds_counter_get(const ds_counter_t *c) {
    return c ? atomic_load_explicit(&((ds_counter_t *)c)->value, memory_order_relaxed) : 0;
}

ds_gauge_t *ds_metrics_gauge(ds_metrics_t *m, const char *name, const char *help,
                             const char *labels) {
    ds_err_t err;
    series_t *s = get_series(m, name, help, labels, T_GAUGE, NULL, 0, false, &err);
    if (!s || s->is_fn)
        return NULL;
    return &s->gauge;
}

void ds_gauge_set(ds_gauge_t *g, double v) {
    if (g)
        atomic_store_explicit(&g->bits, dbits(v), memory_order_relaxed);
}

void ds_gauge_add(ds_gauge_t *g, double delta) {
    if (g)
        atomic_add_double(&g->bits, delta);
}

double ds_gauge_get(const ds_gauge_t *g) {
    return g ? bitsd(atomic_load_explicit(&((ds_gauge_t *)g)->bits, memory_order_relaxed)) : 0.0;
}

ds_err_t ds_metrics_gauge_fn(ds_metrics_t *m, const char *name, const char *help,
                             const char *labels, double (*fn)(void *opaque), void *opaque) {
    ds_err_t err;
    series_t *s = get_series(m, name, help, labels, T_GAUGE, NULL, 0, true, &err);
    if (!s)
        return err;
    pthread_mutex_lock(&m->lock);
    ds_err_t e = DS_ERR_OK;
    if (s->is_fn) {
        s->fn = fn;
        s->opaque = opaque;
    } else {
        e = DS_ERR_INVAL; /* a plain gauge of that name and labels exists */
    }
    pthread_mutex_unlock(&m->lock);
    return e;
}

ds_histogram_t *ds_metrics_histogram(ds_metrics_t *m, const char *name, const char *help,
                                     const char *labels, const double *bounds, size_t n) {
    if (!bounds || n == 0 || n > MAX_BUCKETS)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return NULL;
    }
    ds_err_t err;
    series_t *s = get_series(m, name, help, labels, T_HISTOGRAM, bounds, n, false, &err);
    return s ? s->hist : NULL;
}

void ds_histogram_observe(ds_histogram_t *h, double v) {
    if (!h || isnan(v))
        return;
    /* first bucket whose bound is >= v (le is inclusive); n = +Inf */
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

uint64_t ds_histogram_count(const ds_histogram_t *h) {
    if (!h)
        return 0;
    uint64_t n = 0;
    for (size_t i = 0; i <= h->n; i++)
        n += atomic_load_explicit(&((ds_histogram_t *)h)->buckets[i], memory_order_relaxed);
    return n;
}

double ds_histogram_sum(const ds_histogram_t *h) {
    return h ? bitsd(atomic_load_explicit(&((ds_histogram_t *)h)->sum_bits, memory_order_relaxed))
             : 0.0;
}

/* ---- render -------------------------------------------------------------- */

static const char *type_name(family_type_t t) {
    switch (t) {
    case T_COUNTER:
        return "counter";
    case T_GAUGE:
        return "gauge";
    case T_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

static bool renders(const series_t *s) {
    return !s->is_fn || s->fn;
}

/* name{labels} with `extra` (e.g. le="0.5") appended to the labels. */
static ds_err_t put_sample_name(ds_buf_t *b, const char *name, const char *suffix,
                                const char *labels, const char *extra) {
    bool has_l = labels[0] != '\0', has_x = extra && extra[0];
    if (!has_l && !has_x)
        return ds_buf_appendf(b, "%s%s ", name, suffix);
    return ds_buf_appendf(b, "%s%s{%s%s%s} ", name, suffix, labels, has_l && has_x ? "," : "",
                          has_x ? extra : "");
}

static ds_err_t render_series(ds_buf_t *b, const family_t *f, const series_t *s) {
    char num[40];
    ds_err_t e;
    switch (f->type) {
    case T_COUNTER:
        e = put_sample_name(b, f->name, "", s->labels, NULL);
        return e ? e : ds_buf_appendf(b, "%" PRIu64 "\n", ds_counter_get(&s->counter));
    case T_GAUGE:
        fmt_double(num, sizeof(num), s->is_fn ? s->fn(s->opaque) : ds_gauge_get(&s->gauge));
        e = put_sample_name(b, f->name, "", s->labels, NULL);
        return e ? e : ds_buf_appendf(b, "%s\n", num);
    case T_HISTOGRAM: {
        const ds_histogram_t *h = s->hist;
        uint64_t cum = 0;
        char le[64];
        for (size_t i = 0; i <= h->n; i++) {
            cum += atomic_load_explicit(&((ds_histogram_t *)h)->buckets[i], memory_order_relaxed);
            fmt_double(num, sizeof(num), i < h->n ? h->bounds[i] : INFINITY);
            snprintf(le, sizeof(le), "le=\"%s\"", num);
            e = put_sample_name(b, f->name, "_bucket", s->labels, le);
            if (!e)
                e = ds_buf_appendf(b, "%" PRIu64 "\n", cum);
            if (e)
                return e;
        }
        fmt_double(num, sizeof(num), ds_histogram_sum(h));
        e = put_sample_name(b, f->name, "_sum", s->labels, NULL);
        if (!e)
            e = ds_buf_appendf(b, "%s\n", num);
        if (!e)
            e = put_sample_name(b, f->name, "_count", s->labels, NULL);
        return e ? e : ds_buf_appendf(b, "%" PRIu64 "\n", cum);
    }
    }
    return DS_ERR_INVAL;
}

ds_err_t ds_metrics_render(ds_metrics_t *m, ds_buf_t *out) {
    if (!m || !out)
        return DS_ERR_INVAL;
    ds_err_t e = DS_ERR_OK;
    pthread_mutex_lock(&m->lock);
    for (const family_t *f = m->first; f && !e; f = f->next) {
        bool any = false;
        for (const series_t *s = f->first; s && !any; s = s->next)
            any = renders(s);
        if (!any)
            continue;
        e = ds_buf_appendf(out, "# HELP %s ", f->name);
        if (!e)
            e = append_escaped(out, f->help, strlen(f->help), true);
        if (!e)
            e = ds_buf_appendf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
        for (const series_t *s = f->first; s && !e; s = s->next)
            if (renders(s))
                e = render_series(out, f, s);
    }
    pthread_mutex_unlock(&m->lock);
    return e;
}
