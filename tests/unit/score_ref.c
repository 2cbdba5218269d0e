/*
 * score_ref.c — THE PRE-REWRITE LEAD SCORER, KEPT AS A TEST ORACLE.
 *
 * A copy of workers/scorer/score.c from before the account roll-up became
 * incremental (the account is recomputed from all its leads at every
 * event), with its external names renamed to ref_score_* (score_ref.h).
 * tests/unit/test_score_prop.c applies random streams to it and to
 * ds_score_unit_t and requires identical outputs.  It is not built into
 * the product.  Do not change its behaviour.
 *
 * The one deliberate difference from the original, marked "as_of_max"
 * below: an account's as_of (AccountScore.as_of and the account view that
 * the Redis account hash shows) is the largest as_of any of its leads has
 * ever had, so a late UNSUBSCRIBED, which sets its lead's as_of back to
 * the unsubscribe's time, no longer moves the account's as_of back.  The
 * figure is saved at the end of the blob; a blob without it (the original
 * format) starts it at the largest as_of of the loaded leads.
 *
 * What follows is the original file's text.
 *
 * score.c — the lead-scoring domain (SPEC "Lead scoring"), pure C.
 *
 * Layout.  A unit (one account with its leads, or one lone lead) interns
 * every id it meets (lead, content, insight, colleague) once: a string pool
 * plus an open-addressing table of indexes, so the rest of the state holds
 * 32-bit ids and small flat arrays instead of strings.  Per lead: totals,
 * per-insight records (points, A-state and stage masks), repeat-window
 * records per (content, type), reason buckets and the counted share pairs.
 * Per unit: follow-share records, follow credits, webinar attendances and
 * group credits (sorted arrays, binary search), and the dedupe set.
 *
 * Invariants.
 * - Every per-lead accumulator (confront, connect, per-insight points,
 *   reason buckets) is a value "as of" lead->as_of; when as_of moves
 *   forward they are all rescaled by 2^(-dt/half_life) together, so their
 *   sums stay consistent.  A late contribution is decayed to as_of.
 * - Events that change nothing (duplicates, repeats, unclassified content)
 *   touch nothing but events_applied/dirty; as_of moves only with a
 *   positive contribution.
 * - Dedupe: 64-bit FNV-1a of event_id -> occurred_at in an open-addressing
 *   table; a hit is a duplicate only while (max t seen - its t) is within
 *   the window, so pruning (done when the table would grow) never changes
 *   answers.  Saving writes only live entries, sorted: canonical bytes.
 * - Everything is deterministic given the event order: arrays keep
 *   insertion or sorted order, and save/load preserves both, so a loaded
 *   unit behaves exactly like the one saved (and re-saves byte-identically).
 * - Rules-derived figures the const views need (tier thresholds, consensus
 *   target, dedupe window) are copied into the unit at each apply.
 */
#include "score_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ds_hash.h"

#define NOID UINT32_MAX
#define UNSET_T INT64_MIN
#define STATE_MAGIC "DSSU"
#define STATE_VERSION 2 /* 1: fixed-width numbers (still loaded) */

/* ---- data ---------------------------------------------------------------- */

typedef struct istr {
    uint32_t off, len, hash;
    int32_t lead; /* index in leads[] or -1 */
} istr_t;

typedef struct ins {
    uint32_t insight;
    uint8_t amask; /* A-state stages engaged (bit = stage) */
    uint8_t smask; /* every stage engaged */
    double pts;    /* confront points on this insight, at lead as_of */
} ins_t;

typedef struct rep {
    uint32_t content; /* NOID: no content_id */
    uint8_t type;
    int64_t t; /* last counted */
} rep_t;

enum { BK_CONF_INS, BK_CONF_CONTENT, BK_SHARE, BK_FOLLOW, BK_GROUP, BK__COUNT };

typedef struct bkt {
    uint32_t a, b; /* see bucket_text() */
    uint8_t kind;
    double v;
} bkt_t;

typedef struct shc {
    uint32_t content, colleague; /* a counted share pair */
} shc_t;

typedef struct lead {
    uint32_t id; /* intern id of lead_id */
    uint32_t n_emitted;
    int64_t as_of;
    int64_t events_applied;
    double confront, connect; /* uncapped points at as_of */
    int32_t em_c10, em_n10, em_m10; /* last emitted, rounded ×10 */
    uint8_t em_tier, any_a, dirty, touched;
    uint64_t written[REF_LEAD_NOTES]; /* the caller's note of what it wrote (foreach_dirty) */
    ins_t *ins;
    rep_t *rep;
    bkt_t *bkt;
    shc_t *shc;
    uint32_t nins, cins, nrep, crep, nbkt, cbkt, nshc, cshc;
} lead_t;

typedef struct fw { /* the sharer shared the insight with the colleague at ts */
    uint32_t colleague, insight, sharer;
    int64_t ts;
} fw_t;

typedef struct cr { /* follow credit given: (sharer, colleague, insight) */
    uint32_t sharer, colleague, insight;
} cr_t;

typedef struct att { /* counted webinar attendance */
    uint32_t content, lead; /* lead: index in leads[] */
    int64_t t;
} att_t;

typedef struct gc { /* group credit given: (lead index, content) */
    uint32_t lead, content;
} gc_t;

typedef struct dd {
    uint64_t h; /* 0: empty slot */
    int64_t t;
} dd_t;

typedef struct lview {
    double c, n, m;
    int tier;
    uint32_t top;
    int furthest;
} lview_t;

typedef struct aview {
    int32_t engaged, confronted, cons10;
    uint32_t top;
    uint32_t *mob; /* intern ids, sorted by text; points into scratch */
    uint32_t nmob;
    int64_t as_of;
} aview_t;

typedef struct isum {
    uint32_t insight;
    double pts;
} isum_t;

/* Scratch space reused by every apply/view: writable through a const unit
 * (it is not part of the unit's logical state). */
typedef struct scratch {
    ds_buf_t text;
    uint32_t *touched;
    uint32_t ntouched, ctouched;
    uint32_t *ltop; /* per lead: its top insight */
    double *lconf;  /* per lead: its capped confront */
    uint8_t *ltier;
    uint32_t clead;
    isum_t *isum;
    uint32_t nisum, cisum;
    uint32_t *mob;
    uint32_t cmob;
    const char **mobp;
    uint32_t cmobp;
    uint32_t cand[DS_MAX_REASONS];
    size_t roff[DS_MAX_REASONS];
} scratch_t;

struct ref_score_unit {
    char *key;
    bool is_account;
    /* rules copied at the last apply (needed by the const views and save) */
    double tier_confronted, tier_connector, consensus_target;
    int64_t dd_window_ms;
    /* interned strings */
    char *pool;
    uint32_t pool_len, pool_cap;
    istr_t *strs;
    uint32_t nstrs, cstrs;
    uint32_t *slots; /* idx + 1; 0 empty */
    uint32_t slot_cap;
    /* leads */
    lead_t *leads;
    uint32_t nleads, cleads;
    /* dedupe */
    dd_t *dd;
    uint32_t ndd, dd_cap;
    int64_t max_t;
    /* cross-lead memory */
    fw_t *fw;
    uint32_t nfw, cfw;
    cr_t *cr;
    uint32_t ncr, ccr;
    att_t *att;
    uint32_t natt, catt;
    gc_t *gc;
    uint32_t ngc, cgc;
    /* last emitted AccountScore */
    uint32_t acc_n_emitted;
    int32_t em_engaged, em_confronted, em_cons10;
    uint32_t em_top;
    uint32_t *em_mob;
    uint32_t nem_mob, cem_mob;
    /* as_of_max: the largest as_of any lead of the unit has ever had
     * (UNSET_T: none yet); the account's as_of.  Raised in emit(), which
     * every apply that moves a lead's as_of reaches with that lead touched. */
    int64_t as_of_max;
    scratch_t *scr;
};

/* ---- small helpers -------------------------------------------------------- */

static void *ensure_cap(void *p, uint32_t *cap, uint32_t need, size_t sz, uint32_t first) {
    uint32_t nc = *cap ? *cap : first;
    while (nc < need) {
        if (nc > UINT32_MAX / 2)
            return NULL;
        nc *= 2;
    }
    if ((size_t)nc > SIZE_MAX / sz)
        return NULL;
    void *np = realloc(p, (size_t)nc * sz);
    if (!np)
        return NULL;
    *cap = nc;
    return np;
}

static inline bool over_u32(uint64_t v) { return v > UINT32_MAX; }

/* Make room for `need` elements in arr (capacity cap); 0 on success. */
#define ENSURE(arr, cap, need, first)                                                              \
    __extension__({                                                                                \
        int rc_ = 0;                                                                               \
        if ((uint64_t)(need) > (uint64_t)(cap)) {                                                  \
            if (over_u32((uint64_t)(need))) {                                                      \
                rc_ = -1;                                                                          \
            } else {                                                                               \
                void *np_ = ensure_cap((arr), &(cap), (uint32_t)(need), sizeof(*(arr)), (first));  \
                if (np_)                                                                           \
                    (arr) = np_;                                                                   \
                else                                                                               \
                    rc_ = -1;                                                                      \
            }                                                                                      \
        }                                                                                          \
        rc_;                                                                                       \
    })

static void insert_at(void *base, uint32_t n, size_t sz, uint32_t pos, const void *rec) {
    unsigned char *b = base;
    memmove(b + (size_t)(pos + 1) * sz, b + (size_t)pos * sz, (size_t)(n - pos) * sz);
    memcpy(b + (size_t)pos * sz, rec, sz);
}

/* a - b, saturated (event times come from the network). */
static int64_t tdiff(int64_t a, int64_t b) {
    int64_t d;
    if (__builtin_sub_overflow(a, b, &d))
        return a > b ? INT64_MAX : INT64_MIN;
    return d;
}

static int64_t tabs(int64_t d) { return d == INT64_MIN ? INT64_MAX : (d < 0 ? -d : d); }

static int64_t days_ms(double days) {
    if (!(days > 0))
        return 0;
    double ms = days * DS_DAY_MS;
    if (ms >= 9.0e18)
        return INT64_MAX;
    return (int64_t)llround(ms);
}

static double half_life_ms(const ds_rules_t *r) { return r->scoring.half_life_days * DS_DAY_MS; }

/* 2^(-dt/h); a non-positive half-life means no decay. */
static double decay(int64_t dt, double h) {
    if (!(h > 0) || dt <= 0)
        return 1.0;
    return exp2(-(double)dt / h);
}

static int32_t r10(double x) {
    double v = round(x * 10.0);
    if (v > 2.0e9)
        return INT32_MAX;
    if (v < -2.0e9)
        return INT32_MIN;
    return (int32_t)v;
}

static int cmp_u32(uint32_t a, uint32_t b) { return a < b ? -1 : a > b; }
static int cmp_i64(int64_t a, int64_t b) { return a < b ? -1 : a > b; }

/* ---- interning ------------------------------------------------------------ */

static const char *S(const ref_score_unit_t *u, uint32_t id) { return u->pool + u->strs[id].off; }

static uint32_t str_hash(const char *s, size_t len) {
    uint64_t h = ds_fnv64(s, len);
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t intern_find(const ref_score_unit_t *u, const char *s, size_t len, uint32_t h) {
    if (!u->slot_cap)
        return NOID;
    uint32_t mask = u->slot_cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t v = u->slots[i];
        if (!v)
            return NOID;
        const istr_t *e = &u->strs[v - 1];
        if (e->hash == h && e->len == len && !memcmp(u->pool + e->off, s, len))
            return v - 1;
    }
}

static int slots_rebuild(ref_score_unit_t *u, uint32_t cap) {
    uint32_t *ns = calloc(cap, sizeof(*ns));
    if (!ns)
        return -1;
    for (uint32_t k = 0; k < u->nstrs; k++) {
        uint32_t i = u->strs[k].hash & (cap - 1);
        while (ns[i])
            i = (i + 1) & (cap - 1);
        ns[i] = k + 1;
    }
    free(u->slots);
    u->slots = ns;
    u->slot_cap = cap;
    return 0;
}

/* The intern id of s (added when new); -1 on OOM. */
static int intern(ref_score_unit_t *u, const char *s, uint32_t *out) {
    size_t len = strlen(s);
    if (len > UINT32_MAX / 4)
        return -1;
    uint32_t h = str_hash(s, len);
    uint32_t id = intern_find(u, s, len, h);
    if (id != NOID) {
        *out = id;
        return 0;
    }
    if ((uint64_t)(u->nstrs + 1) * 2 > u->slot_cap &&
        slots_rebuild(u, u->slot_cap ? u->slot_cap * 2 : 16))
        return -1;
    if ((uint64_t)u->pool_len + len + 1 > UINT32_MAX ||
        ENSURE(u->pool, u->pool_cap, (uint64_t)u->pool_len + len + 1, 256) ||
        ENSURE(u->strs, u->cstrs, u->nstrs + 1, 8))
        return -1;
    memcpy(u->pool + u->pool_len, s, len + 1);
    id = u->nstrs++;
    u->strs[id] = (istr_t){u->pool_len, (uint32_t)len, h, -1};
    u->pool_len += (uint32_t)len + 1;
    uint32_t mask = u->slot_cap - 1, i = h & mask;
    while (u->slots[i])
        i = (i + 1) & mask;
    u->slots[i] = id + 1;
    *out = id;
    return 0;
}

__attribute__((unused)) static uint32_t lookup(const ref_score_unit_t *u, const char *s) {
    if (!s)
        return NOID;
    size_t len = strlen(s);
    return intern_find(u, s, len, str_hash(s, len));
}

/* ---- leads ---------------------------------------------------------------- */

static int lead_get(ref_score_unit_t *u, const char *lead_id, uint32_t *li) {
    uint32_t id;
    if (intern(u, lead_id, &id))
        return -1;
    if (u->strs[id].lead >= 0) {
        *li = (uint32_t)u->strs[id].lead;
        return 0;
    }
    if (u->nleads >= INT32_MAX || ENSURE(u->leads, u->cleads, u->nleads + 1, 4))
        return -1;
    lead_t *L = &u->leads[u->nleads];
    memset(L, 0, sizeof(*L));
    L->id = id;
    L->as_of = UNSET_T;
    L->em_tier = DS_TIER_UNAWARE;
    u->strs[id].lead = (int32_t)u->nleads;
    *li = u->nleads++;
    return 0;
}

static void lead_free_arrays(lead_t *L) {
    free(L->ins);
    free(L->rep);
    free(L->bkt);
    free(L->shc);
    L->ins = NULL;
    L->rep = NULL;
    L->bkt = NULL;
    L->shc = NULL;
    L->nins = L->cins = L->nrep = L->crep = L->nbkt = L->cbkt = L->nshc = L->cshc = 0;
}

/* Move the lead's as_of forward to t, rescaling every accumulator. */
static void lead_move(lead_t *L, int64_t t, double h) {
    if (L->as_of == UNSET_T) {
        L->as_of = t;
        return;
    }
    if (t <= L->as_of)
        return;
    double f = decay(tdiff(t, L->as_of), h);
    L->confront *= f;
    L->connect *= f;
    for (uint32_t i = 0; i < L->nins; i++)
        L->ins[i].pts *= f;
    for (uint32_t i = 0; i < L->nbkt; i++)
        L->bkt[i].v *= f;
    L->as_of = t;
}

static int bucket_add(lead_t *L, uint8_t kind, uint32_t a, uint32_t b, double v) {
    for (uint32_t i = 0; i < L->nbkt; i++) {
        bkt_t *k = &L->bkt[i];
        if (k->kind == kind && k->a == a && k->b == b) {
            k->v += v;
            return 0;
        }
    }
    if (ENSURE(L->bkt, L->cbkt, L->nbkt + 1, 1))
        return -1;
    L->bkt[L->nbkt++] = (bkt_t){a, b, kind, v};
    return 0;
}

/* Add p points made at t (confront when `confront`, else connect) to the
 * lead, to insight record `ins_idx` (NOID: none) and to a reason bucket. */
static int lead_add(lead_t *L, const ds_rules_t *r, int64_t t, double p, bool confront,
                    uint32_t ins_idx, uint8_t kind, uint32_t a, uint32_t b) {
    if (!(p > 0))
        return 0;
    double h = half_life_ms(r);
    lead_move(L, t, h);
    double v = t >= L->as_of ? p : p * decay(tdiff(L->as_of, t), h);
    if (confront)
        L->confront += v;
    else
        L->connect += v;
    if (ins_idx != NOID)
        L->ins[ins_idx].pts += v;
    return bucket_add(L, kind, a, b, v);
}

static int touch(ref_score_unit_t *u, uint32_t li) {
    lead_t *L = &u->leads[li];
    L->dirty = 1;
    if (L->touched)
        return 0;
    scratch_t *sc = u->scr;
    if (ENSURE(sc->touched, sc->ctouched, sc->ntouched + 1, 8))
        return -1;
    sc->touched[sc->ntouched++] = li;
    L->touched = 1;
    return 0;
}

/* ---- lead view ------------------------------------------------------------ */

static int tier_of(const ref_score_unit_t *u, double c, double n) {
    if (c >= u->tier_confronted && n >= u->tier_connector)
        return DS_TIER_MOBILIZER;
    if (c >= u->tier_confronted)
        return DS_TIER_CONFRONTED;
    if (n >= u->tier_connector)
        return DS_TIER_CONNECTOR;
    if (c > 0 || n > 0)
        return DS_TIER_LEARNING;
    return DS_TIER_UNAWARE;
}

static void lead_view(const ref_score_unit_t *u, const lead_t *L, lview_t *v) {
    v->c = L->confront > 100 ? 100 : (L->confront > 0 ? L->confront : 0);
    v->n = L->connect > 100 ? 100 : (L->connect > 0 ? L->connect : 0);
    v->m = sqrt(v->c * v->n);
    v->tier = tier_of(u, v->c, v->n);
    v->top = NOID;
    v->furthest = DS_NONE;
    const ins_t *best = NULL;
    for (uint32_t i = 0; i < L->nins; i++) {
        const ins_t *x = &L->ins[i];
        if (!(x->pts > 0))
            continue;
        if (!best || x->pts > best->pts ||
            (x->pts == best->pts && strcmp(S(u, x->insight), S(u, best->insight)) < 0))
            best = x;
    }
    if (best) {
        v->top = best->insight;
        for (int s = DS_CS__COUNT - 1; s >= 0; s--)
            if (best->smask & (1u << s)) {
                v->furthest = s;
                break;
            }
    }
}

/* ---- reasons -------------------------------------------------------------- */

static const char *const stage_words[DS_CS__COUNT] = {"Spark", "Introduce", "Confront",
                                                      "Solution (Build-B)", "Spec"};

static bool put_s(ds_buf_t *b, const char *s) { return ds_buf_append(b, s, strlen(s)) == 0; }

static bool put_u(ds_buf_t *b, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return ds_buf_append(b, tmp + sizeof(tmp) - n, n) == 0;
}

/* One decimal, rounded half away from zero (fast path for reasons). */
static bool put_1d(ds_buf_t *b, double v) {
    double x = round(v * 10.0);
    bool ok = true;
    if (x < 0) {
        ok = put_s(b, "-");
        x = -x;
    }
    if (!(x < 1.0e18))
        return ok && put_s(b, "inf");
    uint64_t n = (uint64_t)x;
    char d[3] = {'.', (char)('0' + n % 10), 0};
    return ok && put_u(b, n / 10) && put_s(b, d);
}

static uint32_t share_count(const lead_t *L, uint32_t content) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < L->nshc; i++)
        n += L->shc[i].content == content;
    return n;
}

static const char *opt(const ref_score_unit_t *u, uint32_t id, const char *none) {
    return id == NOID ? none : S(u, id);
}

/* Append the words of one bucket (NUL-terminated); false on OOM. */
static bool bucket_text(const ref_score_unit_t *u, const lead_t *L, const bkt_t *k, ds_buf_t *b) {
    bool ok = true;
    switch (k->kind) {
    case BK_CONF_INS:
        ok = put_s(b, stage_words[k->b]) && put_s(b, " content on insight ") &&
             put_s(b, S(u, k->a));
        break;
    case BK_CONF_CONTENT:
        ok = put_s(b, stage_words[k->b]) && put_s(b, " content ") &&
             put_s(b, opt(u, k->a, "(unnamed)")) && put_s(b, " (no insight)");
        break;
    case BK_SHARE: {
        uint32_t n = share_count(L, k->a);
        ok = put_s(b, "Shared ") && put_s(b, opt(u, k->a, "content")) && put_s(b, " with ") &&
             put_u(b, n) && put_s(b, n == 1 ? " colleague" : " colleagues");
        break;
    }
    case BK_FOLLOW:
        ok = put_s(b, "Colleague ") && put_s(b, S(u, k->a)) && put_s(b, " engaged insight ") &&
             put_s(b, S(u, k->b)) && put_s(b, " after a share");
        break;
    default:
        ok = put_s(b, "Attended webinar ") && put_s(b, S(u, k->a)) &&
             put_s(b, " with colleagues");
        break;
    }
    return ok && put_s(b, ": ") && put_1d(b, k->v) && put_s(b, " pts") &&
           ds_buf_append(b, "", 1) == 0;
}

/* Order of reasons: larger value first, then by text. */
static int bucket_cmp(const ref_score_unit_t *u, const lead_t *L, const bkt_t *x, const bkt_t *y) {
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    ds_buf_t *b = &u->scr->text;
    size_t base = b->len;
    if (!bucket_text(u, L, x, b))
        return 0;
    size_t oy = b->len;
    int c = 0;
    if (bucket_text(u, L, y, b))
        c = strcmp((const char *)b->data + base, (const char *)b->data + oy);
    b->len = base;
    return c;
}

/* Fill out->reasons with the top buckets; texts go to scratch text. */
static void reasons_fill(const ref_score_unit_t *u, const lead_t *L, ds_lead_score_t *out) {
    scratch_t *sc = u->scr;
    size_t n = 0;
    for (uint32_t i = 0; i < L->nbkt; i++) {
        const bkt_t *k = &L->bkt[i];
        if (r10(k->v) < 1) /* would read "0.0 pts" */
            continue;
        size_t pos = n;
        while (pos > 0 && bucket_cmp(u, L, k, &L->bkt[sc->cand[pos - 1]]) < 0)
            pos--;
        if (pos >= DS_MAX_REASONS)
            continue;
        size_t last = n < DS_MAX_REASONS ? n : DS_MAX_REASONS - 1;
        for (size_t j = last; j > pos; j--)
            sc->cand[j] = sc->cand[j - 1];
        sc->cand[pos] = i;
        if (n < DS_MAX_REASONS)
            n++;
    }
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        sc->roff[i] = sc->text.len;
        if (!bucket_text(u, L, &L->bkt[sc->cand[i]], &sc->text))
            break;
        ok++;
    }
    for (size_t i = 0; i < ok; i++)
        out->reasons[i] = (const char *)sc->text.data + sc->roff[i];
    out->reasons_count = ok;
}

/* Build the public record of a lead.  `n_out` > 0: output id "<lead>:<n>". */
static void lead_record(const ref_score_unit_t *u, const lead_t *L, const lview_t *v, int prev_tier,
                        uint32_t n_out, ds_lead_score_t *out) {
    scratch_t *sc = u->scr;
    memset(out, 0, sizeof(*out));
    ds_buf_reset(&sc->text);
    size_t oid = 0;
    bool has_oid = false;
    if (n_out) {
        has_oid = put_s(&sc->text, S(u, L->id)) && put_s(&sc->text, ":") &&
                  put_u(&sc->text, n_out) && ds_buf_append(&sc->text, "", 1) == 0;
        if (!has_oid)
            ds_buf_reset(&sc->text);
    }
    reasons_fill(u, L, out);
    out->output_id = has_oid ? (const char *)sc->text.data + oid : NULL;
    out->lead_id = S(u, L->id);
    out->account_id = u->is_account ? u->key : NULL;
    out->confront = v->c;
    out->connect = v->n;
    out->mobilizer = v->m;
    out->tier = v->tier;
    out->previous_tier = prev_tier;
    out->top_insight = v->top == NOID ? NULL : S(u, v->top);
    out->furthest_stage = v->furthest;
    out->as_of = L->as_of == UNSET_T ? 0 : L->as_of;
    out->events_applied = L->events_applied;
}

/* ---- account view --------------------------------------------------------- */

static int scratch_leads(scratch_t *sc, uint32_t n) {
    if (n <= sc->clead)
        return 0;
    uint32_t c = sc->clead ? sc->clead : 8;
    while (c < n)
        c *= 2;
    uint32_t *a = realloc(sc->ltop, c * sizeof(*a));
    if (!a)
        return -1;
    sc->ltop = a;
    double *d = realloc(sc->lconf, c * sizeof(*d));
    if (!d)
        return -1;
    sc->lconf = d;
    uint8_t *t = realloc(sc->ltier, c);
    if (!t)
        return -1;
    sc->ltier = t;
    sc->clead = c;
    return 0;
}

static int account_compute(const ref_score_unit_t *u, aview_t *a) {
    scratch_t *sc = u->scr;
    memset(a, 0, sizeof(*a));
    a->top = NOID;
    if (scratch_leads(sc, u->nleads) || ENSURE(sc->mob, sc->cmob, u->nleads + 1, 8))
        return -1;
    sc->nisum = 0;
    int64_t as_of = UNSET_T;
    uint32_t nmob = 0;
    for (uint32_t li = 0; li < u->nleads; li++) {
        const lead_t *L = &u->leads[li];
        lview_t v;
        lead_view(u, L, &v);
        sc->ltop[li] = v.top;
        sc->lconf[li] = v.c;
        sc->ltier[li] = (uint8_t)v.tier;
        if (v.c > 0 || v.n > 0)
            a->engaged++;
        if (v.tier == DS_TIER_MOBILIZER) {
            /* insertion by text: mobilizers sorted ascending */
            uint32_t pos = nmob;
            while (pos > 0 && strcmp(S(u, sc->mob[pos - 1]), S(u, L->id)) > 0) {
                sc->mob[pos] = sc->mob[pos - 1];
                pos--;
            }
            sc->mob[pos] = L->id;
            nmob++;
        }
        if (L->as_of != UNSET_T && (as_of == UNSET_T || L->as_of > as_of))
            as_of = L->as_of;
        for (uint32_t i = 0; i < L->nins; i++) {
            const ins_t *x = &L->ins[i];
            uint32_t k = 0;
            while (k < sc->nisum && sc->isum[k].insight != x->insight)
                k++;
            if (k == sc->nisum) {
                if (ENSURE(sc->isum, sc->cisum, sc->nisum + 1, 8))
                    return -1;
                sc->isum[sc->nisum++] = (isum_t){x->insight, 0};
            }
            sc->isum[k].pts += x->pts;
        }
    }
    const isum_t *best = NULL;
    for (uint32_t k = 0; k < sc->nisum; k++) {
        const isum_t *x = &sc->isum[k];
        if (!(x->pts > 0))
            continue;
        if (!best || x->pts > best->pts ||
            (x->pts == best->pts && strcmp(S(u, x->insight), S(u, best->insight)) < 0))
            best = x;
    }
    a->top = best ? best->insight : NOID;
    for (uint32_t li = 0; li < u->nleads; li++)
        if (a->top != NOID && sc->lconf[li] >= u->tier_confronted && sc->ltop[li] == a->top)
            a->confronted++;
    double cons;
    if (u->consensus_target > 0) {
        double q = (double)a->confronted / u->consensus_target;
        cons = 100.0 * (q < 1 ? q : 1);
    } else {
        cons = a->confronted > 0 ? 100.0 : 0.0;
    }
    a->cons10 = r10(cons);
    a->mob = sc->mob;
    a->nmob = nmob;
    /* as_of_max: the account's as_of never goes back (the original code
     * used the largest current lead as_of, `as_of` here) */
    if (u->as_of_max != UNSET_T && (as_of == UNSET_T || u->as_of_max > as_of))
        as_of = u->as_of_max;
    a->as_of = as_of == UNSET_T ? 0 : as_of;
    return 0;
}

static int account_fill(const ref_score_unit_t *u, const aview_t *a, ds_account_score_t *out) {
    scratch_t *sc = u->scr;
    if (ENSURE(sc->mobp, sc->cmobp, a->nmob + 1, 8))
        return -1;
    for (uint32_t i = 0; i < a->nmob; i++)
        sc->mobp[i] = S(u, a->mob[i]);
    memset(out, 0, sizeof(*out));
    out->account_id = u->key;
    out->engaged_stakeholders = a->engaged;
    out->confronted_stakeholders = a->confronted;
    out->consensus = a->cons10 / 10.0;
    out->top_insight = a->top == NOID ? NULL : S(u, a->top);
    out->mobilizers = sc->mobp;
    out->mobilizers_count = a->nmob;
    out->as_of = a->as_of;
    return 0;
}

/* ---- dedupe --------------------------------------------------------------- */

static bool dd_live(const ref_score_unit_t *u, int64_t t) {
    return tdiff(u->max_t, t) <= u->dd_window_ms;
}

/* The dedupe entries are an array sorted by hash: found by binary search,
 * saved in order without sorting (canonical whatever the order of the
 * events), 16 bytes each.  An insert moves the entries after it, which
 * costs no more than the save that follows it (every live entry). */
static uint32_t dd_find(const ref_score_unit_t *u, uint64_t h) {
    uint32_t lo = 0, hi = u->ndd;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (u->dd[mid].h < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Make room for one more entry: drop the ones no longer live (against
 * u->max_t), and grow when that leaves the array more than 3/4 full (so a
 * full array is not compacted again at every insert). */
static int dd_reserve(ref_score_unit_t *u) {
    if (u->ndd < u->dd_cap)
        return 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < u->ndd; i++)
        if (dd_live(u, u->dd[i].t))
            u->dd[k++] = u->dd[i];
    u->ndd = k;
    if (u->dd_cap && (uint64_t)k * 4 <= (uint64_t)u->dd_cap * 3)
        return 0;
    return ENSURE(u->dd, u->dd_cap, (uint64_t)u->dd_cap + 1, 4);
}

static int cmp_dd(const void *a, const void *b) {
    const dd_t *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h;
}

/* ---- lifecycle ------------------------------------------------------------ */

ref_score_unit_t *ref_score_unit_new(const char *key, bool is_account) {
    if (!key)
        return NULL;
    ref_score_unit_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->scr = calloc(1, sizeof(*u->scr));
    u->key = strdup(key);
    if (!u->scr || !u->key) {
        free(u->scr);
        free(u->key);
        free(u);
        return NULL;
    }
    ds_buf_init(&u->scr->text, 0);
    u->is_account = is_account;
    u->tier_confronted = 40;
    u->tier_connector = 30;
    u->consensus_target = 5.4;
    u->dd_window_ms = days_ms(7);
    u->max_t = UNSET_T;
    u->em_top = NOID;
    u->as_of_max = UNSET_T;
    return u;
}

void ref_score_unit_destroy(ref_score_unit_t *u) {
    if (!u)
        return;
    for (uint32_t i = 0; i < u->nleads; i++)
        lead_free_arrays(&u->leads[i]);
    free(u->leads);
    free(u->pool);
    free(u->strs);
    free(u->slots);
    free(u->dd);
    free(u->fw);
    free(u->cr);
    free(u->att);
    free(u->gc);
    free(u->em_mob);
    if (u->scr) {
        scratch_t *sc = u->scr;
        ds_buf_free(&sc->text);
        free(sc->touched);
        free(sc->ltop);
        free(sc->lconf);
        free(sc->ltier);
        free(sc->isum);
        free(sc->mob);
        free(sc->mobp);
        free(sc);
    }
    free(u->key);
    free(u);
}

const char *ref_score_unit_key(const ref_score_unit_t *u) { return u->key; }
bool ref_score_unit_is_account(const ref_score_unit_t *u) { return u->is_account; }
size_t ref_score_unit_lead_count(const ref_score_unit_t *u) { return u->nleads; }

const char *ref_score_unit_lead_id(const ref_score_unit_t *u, size_t i) {
    return i < u->nleads ? S(u, u->leads[i].id) : NULL;
}

/* ---- apply: the rules ----------------------------------------------------- */

static int cmp_fw(const fw_t *x, const fw_t *y) {
    int c = cmp_u32(x->colleague, y->colleague);
    if (!c)
        c = cmp_u32(x->insight, y->insight);
    if (!c)
        c = cmp_u32(x->sharer, y->sharer);
    return c ? c : cmp_i64(x->ts, y->ts);
}
static int cmp_cr(const cr_t *x, const cr_t *y) {
    int c = cmp_u32(x->sharer, y->sharer);
    if (!c)
        c = cmp_u32(x->colleague, y->colleague);
    return c ? c : cmp_u32(x->insight, y->insight);
}
static int cmp_att(const att_t *x, const att_t *y) {
    int c = cmp_u32(x->content, y->content);
    if (!c)
        c = cmp_u32(x->lead, y->lead);
    return c ? c : cmp_i64(x->t, y->t);
}
static int cmp_gc(const gc_t *x, const gc_t *y) {
    int c = cmp_u32(x->lead, y->lead);
    return c ? c : cmp_u32(x->content, y->content);
}

/* Lower bound + "found" for each sorted array. */
#define DEFINE_LBOUND(name, T, cmpfn)                                                              \
    static uint32_t name(const T *a, uint32_t n, const T *key, bool *found) {                     \
        uint32_t lo = 0, hi = n;                                                                   \
        while (lo < hi) {                                                                          \
            uint32_t mid = lo + (hi - lo) / 2;                                                     \
            if (cmpfn(&a[mid], key) < 0)                                                           \
                lo = mid + 1;                                                                      \
            else                                                                                   \
                hi = mid;                                                                          \
        }                                                                                          \
        *found = lo < n && cmpfn(&a[lo], key) == 0;                                                \
        return lo;                                                                                 \
    }
DEFINE_LBOUND(lb_fw, fw_t, cmp_fw)
DEFINE_LBOUND(lb_cr, cr_t, cmp_cr)
DEFINE_LBOUND(lb_att, att_t, cmp_att)
DEFINE_LBOUND(lb_gc, gc_t, cmp_gc)

/* Insert rec into sorted array unless present; -1 on OOM. */
#define SORTED_ADD(arr, n, cap, lbfn, rec)                                                         \
    __extension__({                                                                                \
        bool f_;                                                                                   \
        int src_ = 0;                                                                              \
        uint32_t p_ = lbfn((arr), (n), &(rec), &f_);                                               \
        if (!f_) {                                                                                 \
            if (ENSURE((arr), (cap), (n) + 1, 8))                                                  \
                src_ = -1;                                                                         \
            else                                                                                   \
                insert_at((arr), (n)++, sizeof(*(arr)), p_, &(rec));                               \
        }                                                                                          \
        src_;                                                                                      \
    })

/* Follow credit: the lead `li` (a colleague) engaged `insight` at t. */
static int follow_credit(ref_score_unit_t *u, const ds_rules_t *r, uint32_t li, uint32_t insight,
                         int64_t t) {
    uint32_t col = u->leads[li].id;
    int64_t win = days_ms(r->scoring.follow_window_days);
    fw_t key = {col, insight, 0, INT64_MIN};
    bool found;
    uint32_t i = lb_fw(u->fw, u->nfw, &key, &found);
    for (; i < u->nfw && u->fw[i].colleague == col && u->fw[i].insight == insight; i++) {
        const fw_t *f = &u->fw[i];
        int64_t d = tdiff(t, f->ts);
        if (f->sharer == col || d < 0 || d > win)
            continue;
        cr_t c = {f->sharer, col, insight};
        uint32_t pos = lb_cr(u->cr, u->ncr, &c, &found);
        if (found)
            continue;
        if (ENSURE(u->cr, u->ccr, u->ncr + 1, 8))
            return -1;
        insert_at(u->cr, u->ncr++, sizeof(*u->cr), pos, &c);
        int32_t si = u->strs[f->sharer].lead;
        if (si < 0)
            continue;
        lead_t *S_ = &u->leads[si];
        if (lead_add(S_, r, t, r->scoring.follow_points, false, NOID, BK_FOLLOW, col, insight) ||
            touch(u, (uint32_t)si))
            return -1;
    }
    return 0;
}

static bool gc_has(const ref_score_unit_t *u, uint32_t li, uint32_t content) {
    gc_t g = {li, content};
    bool found;
    (void)lb_gc(u->gc, u->ngc, &g, &found);
    return found;
}

static int group_give(ref_score_unit_t *u, const ds_rules_t *r, uint32_t li, uint32_t content,
                      int64_t t) {
    gc_t g = {li, content};
    if (gc_has(u, li, content))
        return 0;
    if (SORTED_ADD(u->gc, u->ngc, u->cgc, lb_gc, g))
        return -1;
    return lead_add(&u->leads[li], r, t, r->scoring.group_points, false, NOID, BK_GROUP, content,
                    0) ||
           touch(u, li);
}

/* A counted webinar attendance of lead li. */
static int group_credit(ref_score_unit_t *u, const ds_rules_t *r, uint32_t li, uint32_t content,
                        int64_t t) {
    att_t a = {content, li, t};
    if (SORTED_ADD(u->att, u->natt, u->catt, lb_att, a))
        return -1;
    att_t key = {content, 0, INT64_MIN};
    bool found, any = false;
    for (uint32_t i = lb_att(u->att, u->natt, &key, &found);
         i < u->natt && u->att[i].content == content; i++) {
        const att_t *o = &u->att[i];
        if (o->lead == li || tabs(tdiff(t, o->t)) > (int64_t)DS_DAY_MS)
            continue;
        any = true;
        uint32_t ol = o->lead;
        if (group_give(u, r, ol, content, t))
            return -1;
    }
    return any ? group_give(u, r, li, content, t) : 0;
}

/* A classified engagement (not a share) of lead li. */
static int engage(ref_score_unit_t *u, const ds_rules_t *r, uint32_t li, const ds_ma_event_t *ev,
                  uint32_t content, uint32_t insight, int stage, bool *changed) {
    lead_t *L = &u->leads[li];
    int64_t t = ev->occurred_at;
    rep_t *rp = NULL;
    for (uint32_t i = 0; i < L->nrep; i++)
        if (L->rep[i].content == content && L->rep[i].type == (uint8_t)ev->type) {
            rp = &L->rep[i];
            break;
        }
    if (rp) {
        if (tabs(tdiff(t, rp->t)) < days_ms(r->scoring.repeat_window_days))
            return 0; /* a repeat inside the window changes nothing */
        rp->t = t;
    } else {
        if (ENSURE(L->rep, L->crep, L->nrep + 1, 1))
            return -1;
        L->rep[L->nrep++] = (rep_t){content, (uint8_t)ev->type, t};
    }
    *changed = true;
    uint32_t ii = NOID;
    if (insight != NOID) {
        for (uint32_t i = 0; i < L->nins; i++)
            if (L->ins[i].insight == insight) {
                ii = i;
                break;
            }
        if (ii == NOID) {
            if (ENSURE(L->ins, L->cins, L->nins + 1, 1))
                return -1;
            ii = L->nins++;
            L->ins[ii] = (ins_t){insight, 0, 0, 0};
        }
    }
    bool a_state = stage <= DS_CS_CONFRONT;
    double mult = 1.0, bf = 1.0;
    if ((stage == DS_CS_INTRODUCE || stage == DS_CS_CONFRONT) && ii != NOID &&
        (L->ins[ii].amask & ((1u << stage) - 1)))
        mult = r->scoring.path_multiplier;
    if (!a_state && !L->any_a)
        bf = r->scoring.b_state_factor;
    double p = r->scoring.stage_points[stage] * r->scoring.type_weight[ev->type] * mult * bf;
    if (ii != NOID) {
        L->ins[ii].smask |= (uint8_t)(1u << stage);
        if (a_state)
            L->ins[ii].amask |= (uint8_t)(1u << stage);
    }
    if (a_state)
        L->any_a = 1;
    if (ii != NOID) {
        if (lead_add(L, r, t, p, true, ii, BK_CONF_INS, insight, (uint32_t)stage))
            return -1;
    } else if (lead_add(L, r, t, p, true, NOID, BK_CONF_CONTENT, content, (uint32_t)stage)) {
        return -1;
    }
    if (!u->is_account)
        return 0; /* follow and group credit need colleagues of an account */
    if (ev->type == DS_MA_WEBINAR_ATTENDED && content != NOID &&
        group_credit(u, r, li, content, t))
        return -1;
    if (insight != NOID && follow_credit(u, r, li, insight, t))
        return -1;
    return 0;
}

static int share(ref_score_unit_t *u, const ds_rules_t *r, uint32_t li, const ds_ma_event_t *ev,
                 uint32_t content, uint32_t insight, bool *changed) {
    int64_t t = ev->occurred_at;
    uint32_t added = 0;
    for (size_t k = 0; k < ev->shared_with_count; k++) {
        const char *cs = ev->shared_with[k];
        if (!cs || !strcmp(cs, ev->lead_id))
            continue;
        uint32_t col;
        if (intern(u, cs, &col))
            return -1;
        lead_t *L = &u->leads[li];
        bool have = false;
        uint32_t n = 0;
        for (uint32_t i = 0; i < L->nshc; i++)
            if (L->shc[i].content == content) {
                n++;
                if (L->shc[i].colleague == col)
                    have = true;
            }
        if (!have && r->scoring.share_cap > 0 && n < (uint32_t)r->scoring.share_cap) {
            if (ENSURE(L->shc, L->cshc, L->nshc + 1, 1))
                return -1;
            L->shc[L->nshc++] = (shc_t){content, col};
            added++;
            *changed = true;
        }
        if (u->is_account && insight != NOID) {
            fw_t f = {col, insight, L->id, t};
            uint32_t before = u->nfw;
            if (SORTED_ADD(u->fw, u->nfw, u->cfw, lb_fw, f))
                return -1;
            if (u->nfw != before)
                *changed = true;
        }
    }
    return lead_add(&u->leads[li], r, t, added * r->scoring.share_points, false, NOID, BK_SHARE,
                    content, 0);
}

/* Whether the lead has points or any memory an unsubscribe would clear. */
static bool has_memory(const ref_score_unit_t *u, uint32_t li) {
    const lead_t *L = &u->leads[li];
    if (L->confront != 0 || L->connect != 0 || L->any_a || L->nins || L->nrep || L->nbkt ||
        L->nshc)
        return true;
    for (uint32_t i = 0; i < u->nfw; i++)
        if (u->fw[i].sharer == L->id)
            return true;
    for (uint32_t i = 0; i < u->ncr; i++)
        if (u->cr[i].sharer == L->id)
            return true;
    for (uint32_t i = 0; i < u->natt; i++)
        if (u->att[i].lead == li)
            return true;
    for (uint32_t i = 0; i < u->ngc; i++)
        if (u->gc[i].lead == li)
            return true;
    return false;
}

/* Clear the lead's points and memory; false when there was nothing to
 * clear: then nothing changes, as_of included (an event that changes
 * nothing does not move as_of). */
static bool unsubscribe(ref_score_unit_t *u, uint32_t li, int64_t t) {
    if (!has_memory(u, li))
        return false;
    lead_t *L = &u->leads[li];
    uint32_t id = L->id, j = 0;
    L->confront = L->connect = 0;
    L->any_a = 0;
    L->as_of = t;
    lead_free_arrays(L);
    for (uint32_t i = 0; i < u->nfw; i++)
        if (u->fw[i].sharer != id)
            u->fw[j++] = u->fw[i];
    u->nfw = j;
    j = 0;
    for (uint32_t i = 0; i < u->ncr; i++)
        if (u->cr[i].sharer != id)
            u->cr[j++] = u->cr[i];
    u->ncr = j;
    j = 0;
    for (uint32_t i = 0; i < u->natt; i++)
        if (u->att[i].lead != li)
            u->att[j++] = u->att[i];
    u->natt = j;
    j = 0;
    for (uint32_t i = 0; i < u->ngc; i++)
        if (u->gc[i].lead != li)
            u->gc[j++] = u->gc[i];
    u->ngc = j;
    return true;
}

/* ---- apply: emission ------------------------------------------------------ */

static const ref_score_unit_t *g_sort_unit; /* single-threaded sort context */

static int cmp_touched(const void *a, const void *b) {
    const ref_score_unit_t *u = g_sort_unit;
    return strcmp(S(u, u->leads[*(const uint32_t *)a].id), S(u, u->leads[*(const uint32_t *)b].id));
}

static int emit(ref_score_unit_t *u, const ref_score_sink_t *sink, ref_score_stats_t *stats) {
    scratch_t *sc = u->scr;
    if (sc->ntouched > 2) {
        /* others in lead_id order (qsort_r is not portable; the unit is
         * single-threaded by contract, but keep the context local) */
        for (uint32_t i = 2; i < sc->ntouched; i++) {
            uint32_t x = sc->touched[i], j = i;
            while (j > 1 && strcmp(S(u, u->leads[sc->touched[j - 1]].id), S(u, u->leads[x].id)) > 0) {
                sc->touched[j] = sc->touched[j - 1];
                j--;
            }
            sc->touched[j] = x;
        }
    }
    (void)cmp_touched;
    for (uint32_t i = 0; i < sc->ntouched; i++) {
        lead_t *L = &u->leads[sc->touched[i]];
        L->touched = 0;
        /* as_of_max: every lead whose as_of moved in this apply is touched */
        if (L->as_of != UNSET_T && (u->as_of_max == UNSET_T || L->as_of > u->as_of_max))
            u->as_of_max = L->as_of;
        lview_t v;
        lead_view(u, L, &v);
        int32_t c10 = r10(v.c), n10 = r10(v.n), m10 = r10(v.m);
        if (c10 == L->em_c10 && n10 == L->em_n10 && m10 == L->em_m10 && v.tier == L->em_tier)
            continue;
        int prev = L->em_tier;
        L->em_c10 = c10;
        L->em_n10 = n10;
        L->em_m10 = m10;
        L->em_tier = (uint8_t)v.tier;
        L->n_emitted++;
        if (sink && sink->lead_score) {
            ds_lead_score_t rec;
            lead_record(u, L, &v, prev, L->n_emitted, &rec);
            sink->lead_score(sink->opaque, &rec);
        }
        if (stats)
            stats->lead_scores++;
    }
    sc->ntouched = 0;
    if (!u->is_account)
        return 0;
    aview_t a;
    if (account_compute(u, &a))
        return -1;
    bool same = a.engaged == u->em_engaged && a.confronted == u->em_confronted &&
                a.cons10 == u->em_cons10 && a.top == u->em_top && a.nmob == u->nem_mob;
    for (uint32_t i = 0; same && i < a.nmob; i++)
        same = a.mob[i] == u->em_mob[i];
    if (same)
        return 0;
    if (ENSURE(u->em_mob, u->cem_mob, a.nmob + 1, 4))
        return -1;
    u->em_engaged = a.engaged;
    u->em_confronted = a.confronted;
    u->em_cons10 = a.cons10;
    u->em_top = a.top;
    u->nem_mob = a.nmob;
    if (a.nmob)
        memcpy(u->em_mob, a.mob, a.nmob * sizeof(*a.mob));
    u->acc_n_emitted++;
    if (sink && sink->account_score) {
        ds_account_score_t rec;
        if (account_fill(u, &a, &rec))
            return -1;
        ds_buf_t *b = &u->scr->text;
        ds_buf_reset(b);
        if (put_s(b, u->key) && put_s(b, ":") && put_u(b, u->acc_n_emitted) &&
            ds_buf_append(b, "", 1) == 0)
            rec.output_id = (const char *)b->data;
        sink->account_score(sink->opaque, &rec);
    }
    if (stats)
        stats->account_scores++;
    return 0;
}

/* ---- apply ---------------------------------------------------------------- */

static bool belongs(const ref_score_unit_t *u, const ds_ma_event_t *ev) {
    bool has_acct = ev->account_id && ev->account_id[0];
    if (u->is_account)
        return has_acct && !strcmp(ev->account_id, u->key);
    return !has_acct && !strcmp(ev->lead_id, u->key);
}

ds_err_t ref_score_unit_apply_ex(ref_score_unit_t *u, const ds_rules_t *r, const ds_ma_event_t *ev,
                                const ref_score_sink_t *sink, ref_score_stats_t *stats) {
    if (!u || !r || !ev || !ev->event_id || !ev->lead_id || !ev->lead_id[0] || ev->type < 0 ||
        ev->type >= DS_MA__COUNT || (ev->content_stage != DS_NONE &&
                                     (ev->content_stage < 0 || ev->content_stage >= DS_CS__COUNT)))
        return DS_ERR_INVAL;
    if (!belongs(u, ev))
        return DS_ERR_INVAL;
    u->tier_confronted = r->scoring.tier_confronted;
    u->tier_connector = r->scoring.tier_connector;
    u->consensus_target = r->scoring.consensus_target;
    u->dd_window_ms = days_ms(r->dedupe_window_days);

    /* dedupe, in event time */
    int64_t t = ev->occurred_at;
    uint64_t h = ds_fnv64(ev->event_id, strlen(ev->event_id));
    if (!h)
        h = 1;
    int64_t max_t = (u->max_t == UNSET_T || t > u->max_t) ? t : u->max_t;
    uint32_t pos = dd_find(u, h);
    bool seen = pos < u->ndd && u->dd[pos].h == h;
    if (seen && tdiff(max_t, u->dd[pos].t) <= u->dd_window_ms) {
        if (stats)
            stats->duplicates++;
        return DS_ERR_DUPLICATE;
    }
    uint32_t li;
    if (lead_get(u, ev->lead_id, &li))
        return DS_ERR_NOMEM;
    u->max_t = max_t;
    if (seen) { /* the same id, out of the window: it counts again */
        u->dd[pos].t = t;
    } else {
        if (u->ndd == u->dd_cap) {
            if (dd_reserve(u))
                return DS_ERR_NOMEM;
            pos = dd_find(u, h);
        }
        insert_at(u->dd, u->ndd, sizeof(dd_t), pos, &(dd_t){h, t});
        u->ndd++;
    }
    if (stats)
        stats->applied++;

    lead_t *L = &u->leads[li];
    L->events_applied++;
    L->dirty = 1;
    bool changed = false;
    int rc = 0;
    if (ev->type == DS_MA_UNSUBSCRIBED) {
        changed = unsubscribe(u, li, t);
    } else {
        const ds_catalog_entry_t *ce = ds_rules_catalog_find(r, ev->content_id);
        const char *insight_s = ev->insight_id ? ev->insight_id : (ce ? ce->insight_id : NULL);
        int stage = ev->content_stage != DS_NONE ? ev->content_stage : (ce ? ce->stage : DS_NONE);
        if (stage < 0 || stage >= DS_CS__COUNT) {
            if (stats)
                stats->unclassified++;
            return DS_ERR_OK; /* unclassified: scores nothing, records nothing */
        }
        uint32_t content = NOID, insight = NOID;
        if ((ev->content_id && intern(u, ev->content_id, &content)) ||
            (insight_s && insight_s[0] && intern(u, insight_s, &insight)))
            return DS_ERR_NOMEM;
        if (ev->type == DS_MA_CONTENT_SHARED)
            rc = share(u, r, li, ev, content, insight, &changed);
        else
            rc = engage(u, r, li, ev, content, insight, stage, &changed);
    }
    if (!changed && !rc)
        return DS_ERR_OK;
    /* the event's own lead first, then credited ones */
    scratch_t *sc = u->scr;
    for (uint32_t i = 0; i < sc->ntouched; i++)
        if (sc->touched[i] == li && i != 0) {
            memmove(sc->touched + 1, sc->touched, i * sizeof(*sc->touched));
            sc->touched[0] = li;
        }
    if (!u->leads[li].touched) {
        if (ENSURE(sc->touched, sc->ctouched, sc->ntouched + 1, 8))
            rc = -1;
        else {
            memmove(sc->touched + 1, sc->touched, sc->ntouched * sizeof(*sc->touched));
            sc->touched[0] = li;
            sc->ntouched++;
            u->leads[li].touched = 1;
        }
    }
    if (emit(u, sink, stats))
        rc = -1;
    if (rc) {
        for (uint32_t i = 0; i < sc->ntouched; i++)
            u->leads[sc->touched[i]].touched = 0;
        sc->ntouched = 0;
        return DS_ERR_NOMEM;
    }
    return DS_ERR_OK;
}

ds_err_t ref_score_unit_apply(ref_score_unit_t *u, const ds_rules_t *r, const ds_ma_event_t *ev,
                             const ref_score_sink_t *sink) {
    return ref_score_unit_apply_ex(u, r, ev, sink, NULL);
}

/* ---- views ---------------------------------------------------------------- */

void ref_score_unit_foreach_dirty(ref_score_unit_t *u,
                                 void (*fn)(void *opaque, uint64_t *written,
                                            const ds_lead_score_t *view),
                                 void *opaque) {
    for (uint32_t i = 0; i < u->nleads; i++) {
        lead_t *L = &u->leads[i];
        if (!L->dirty)
            continue;
        lview_t v;
        lead_view(u, L, &v);
        ds_lead_score_t rec;
        lead_record(u, L, &v, L->em_tier, 0, &rec);
        fn(opaque, L->written, &rec);
    }
}

void ref_score_unit_view_of(ref_score_unit_t *u, const char *lead_id,
                            void (*fn)(void *opaque, uint64_t *written,
                                       const ds_lead_score_t *view),
                            void *opaque) {
    for (uint32_t i = 0; i < u->nleads; i++) {
        lead_t *L = &u->leads[i];
        if (strcmp(S(u, L->id), lead_id))
            continue;
        lview_t v;
        lead_view(u, L, &v);
        ds_lead_score_t rec;
        lead_record(u, L, &v, L->em_tier, 0, &rec);
        fn(opaque, L->written, &rec);
        return;
    }
}

bool ref_score_unit_account_view(ref_score_unit_t *u, ds_account_score_t *out) {
    if (!u->is_account)
        return false;
    aview_t a;
    if (account_compute(u, &a) || account_fill(u, &a, out))
        return false;
    return true;
}

void ref_score_unit_prefetch(const ref_score_unit_t *u, int stage) {
    if (stage == 0) {
        __builtin_prefetch(u);
        __builtin_prefetch((const char *)u + 64);
        __builtin_prefetch((const char *)u + 128);
        return;
    }
    if (stage == 2) { /* the leads' own arrays (leads[] loaded by stage 1) */
        for (uint32_t i = 0; i < u->nleads && i < 16; i++) {
            const lead_t *L = &u->leads[i];
            const void *p[] = {L->ins, L->rep, L->bkt, L->shc};
            for (size_t k = 0; k < sizeof(p) / sizeof(p[0]); k++)
                if (p[k])
                    __builtin_prefetch(p[k]);
        }
        return;
    }
    const void *p[] = {u->pool, u->strs, u->leads, u->dd, u->fw, u->cr, u->att, u->gc,
                       u->em_mob, u->scr};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
        if (p[i])
            __builtin_prefetch(p[i]);
}

int64_t ref_score_unit_leads_as_of(const ref_score_unit_t *u) {
    int64_t m = UNSET_T;
    for (uint32_t i = 0; i < u->nleads; i++)
        if (u->leads[i].as_of != UNSET_T && (m == UNSET_T || u->leads[i].as_of > m))
            m = u->leads[i].as_of;
    return m == UNSET_T ? 0 : m;
}

void ref_score_unit_clear_dirty(ref_score_unit_t *u) {
    for (uint32_t i = 0; i < u->nleads; i++)
        u->leads[i].dirty = 0;
}

size_t ref_score_unit_mem(const ref_score_unit_t *u) {
    const size_t oh = 16; /* malloc overhead per block, roughly */
    size_t m = sizeof(*u) + oh + strlen(u->key) + 1 + oh;
    m += u->pool_cap + oh + (size_t)u->cstrs * sizeof(istr_t) + oh +
         (size_t)u->slot_cap * sizeof(uint32_t) + oh;
    m += (size_t)u->cleads * sizeof(lead_t) + oh;
    for (uint32_t i = 0; i < u->nleads; i++) {
        const lead_t *L = &u->leads[i];
        m += (size_t)L->cins * sizeof(ins_t) + (size_t)L->crep * sizeof(rep_t) +
             (size_t)L->cbkt * sizeof(bkt_t) + (size_t)L->cshc * sizeof(shc_t);
        m += oh * ((L->cins > 0) + (L->crep > 0) + (L->cbkt > 0) + (L->cshc > 0));
    }
    m += (size_t)u->dd_cap * sizeof(dd_t) + (size_t)u->cfw * sizeof(fw_t) +
         (size_t)u->ccr * sizeof(cr_t) + (size_t)u->catt * sizeof(att_t) +
         (size_t)u->cgc * sizeof(gc_t) + (size_t)u->cem_mob * sizeof(uint32_t) + 6 * oh;
    const scratch_t *sc = u->scr;
    m += sizeof(*sc) + sc->text.cap + (size_t)sc->ctouched * 4 + (size_t)sc->clead * 13 +
         (size_t)sc->cisum * sizeof(isum_t) + (size_t)sc->cmob * 4 +
         (size_t)sc->cmobp * sizeof(char *) + 8 * oh;
    return m;
}

/* ---- save / load ---------------------------------------------------------- */

#define PUT(x)                                                                                     \
    do {                                                                                           \
        ds_err_t e_ = (x);                                                                         \
        if (e_)                                                                                    \
            return e_;                                                                             \
    } while (0)

/* ids are written as id + 1, 0 for NOID */
static ds_err_t put_id(ds_buf_t *b, uint32_t id) {
    return ds_buf_put_varint(b, id == NOID ? 0 : (uint64_t)id + 1);
}

/* Version 2 writes times relative to the unit's max_t (ds_buf_put_time:
 * small, most lie within days of it), other integers as zigzag varints and
 * doubles with ds_buf_put_f64c: a third fewer bytes than version 1 (585
 * against 917 for test_score.c's mixed unit), so less to format, send and
 * store at every write. */

static ds_err_t save_lead(const lead_t *L, int64_t base, ds_buf_t *out) {
    PUT(put_id(out, L->id));
    PUT(ds_buf_put_varint(out, L->n_emitted));
    PUT(ds_buf_put_time(out, base, L->as_of));
    PUT(ds_buf_put_svarint(out, L->events_applied));
    PUT(ds_buf_put_f64c(out, L->confront));
    PUT(ds_buf_put_f64c(out, L->connect));
    PUT(ds_buf_put_svarint(out, L->em_c10));
    PUT(ds_buf_put_svarint(out, L->em_n10));
    PUT(ds_buf_put_svarint(out, L->em_m10));
    PUT(ds_buf_put_u8(out, L->em_tier));
    PUT(ds_buf_put_u8(out, L->any_a));
    PUT(ds_buf_put_varint(out, L->nins));
    for (uint32_t i = 0; i < L->nins; i++) {
        PUT(put_id(out, L->ins[i].insight));
        PUT(ds_buf_put_u8(out, L->ins[i].amask));
        PUT(ds_buf_put_u8(out, L->ins[i].smask));
        PUT(ds_buf_put_f64c(out, L->ins[i].pts));
    }
    PUT(ds_buf_put_varint(out, L->nrep));
    for (uint32_t i = 0; i < L->nrep; i++) {
        PUT(put_id(out, L->rep[i].content));
        PUT(ds_buf_put_u8(out, L->rep[i].type));
        PUT(ds_buf_put_time(out, base, L->rep[i].t));
    }
    PUT(ds_buf_put_varint(out, L->nbkt));
    for (uint32_t i = 0; i < L->nbkt; i++) {
        PUT(ds_buf_put_u8(out, L->bkt[i].kind));
        PUT(put_id(out, L->bkt[i].a));
        PUT(put_id(out, L->bkt[i].b));
        PUT(ds_buf_put_f64c(out, L->bkt[i].v));
    }
    PUT(ds_buf_put_varint(out, L->nshc));
    for (uint32_t i = 0; i < L->nshc; i++) {
        PUT(put_id(out, L->shc[i].content));
        PUT(put_id(out, L->shc[i].colleague));
    }
    return DS_ERR_OK;
}

ds_err_t ref_score_unit_save(const ref_score_unit_t *u, ds_buf_t *out) {
    if (!u || !out)
        return DS_ERR_INVAL;
    PUT(ds_buf_append(out, STATE_MAGIC, 4));
    PUT(ds_buf_put_u8(out, STATE_VERSION));
    PUT(ds_buf_put_str(out, u->key));
    PUT(ds_buf_put_u8(out, u->is_account));
    PUT(ds_buf_put_f64c(out, u->tier_confronted));
    PUT(ds_buf_put_f64c(out, u->tier_connector));
    PUT(ds_buf_put_f64c(out, u->consensus_target));
    PUT(ds_buf_put_svarint(out, u->dd_window_ms));
    PUT(ds_buf_put_svarint(out, u->max_t));
    PUT(ds_buf_put_varint(out, u->nstrs));
    for (uint32_t i = 0; i < u->nstrs; i++)
        PUT(ds_buf_put_strn(out, S(u, i), u->strs[i].len));
    /* the live dedupe entries, in hash order */
    uint32_t k = 0;
    for (uint32_t i = 0; i < u->ndd; i++)
        k += dd_live(u, u->dd[i].t);
    ds_err_t e = ds_buf_put_varint(out, k);
    for (uint32_t i = 0; !e && i < u->ndd; i++) {
        if (!dd_live(u, u->dd[i].t))
            continue;
        e = ds_buf_put_i64(out, (int64_t)u->dd[i].h);
        if (!e)
            e = ds_buf_put_time(out, u->max_t, u->dd[i].t);
    }
    PUT(e);
    PUT(ds_buf_put_varint(out, u->nleads));
    for (uint32_t i = 0; i < u->nleads; i++)
        PUT(save_lead(&u->leads[i], u->max_t, out));
    PUT(ds_buf_put_varint(out, u->nfw));
    for (uint32_t i = 0; i < u->nfw; i++) {
        PUT(put_id(out, u->fw[i].colleague));
        PUT(put_id(out, u->fw[i].insight));
        PUT(put_id(out, u->fw[i].sharer));
        PUT(ds_buf_put_time(out, u->max_t, u->fw[i].ts));
    }
    PUT(ds_buf_put_varint(out, u->ncr));
    for (uint32_t i = 0; i < u->ncr; i++) {
        PUT(put_id(out, u->cr[i].sharer));
        PUT(put_id(out, u->cr[i].colleague));
        PUT(put_id(out, u->cr[i].insight));
    }
    PUT(ds_buf_put_varint(out, u->natt));
    for (uint32_t i = 0; i < u->natt; i++) {
        PUT(put_id(out, u->att[i].content));
        PUT(ds_buf_put_varint(out, u->att[i].lead));
        PUT(ds_buf_put_time(out, u->max_t, u->att[i].t));
    }
    PUT(ds_buf_put_varint(out, u->ngc));
    for (uint32_t i = 0; i < u->ngc; i++) {
        PUT(ds_buf_put_varint(out, u->gc[i].lead));
        PUT(put_id(out, u->gc[i].content));
    }
    PUT(ds_buf_put_varint(out, u->acc_n_emitted));
    PUT(ds_buf_put_svarint(out, u->em_engaged));
    PUT(ds_buf_put_svarint(out, u->em_confronted));
    PUT(ds_buf_put_svarint(out, u->em_cons10));
    PUT(put_id(out, u->em_top));
    PUT(ds_buf_put_varint(out, u->nem_mob));
    for (uint32_t i = 0; i < u->nem_mob; i++)
        PUT(put_id(out, u->em_mob[i]));
    PUT(ds_buf_put_svarint(out, u->as_of_max)); /* as_of_max: not in the original format */
    return DS_ERR_OK;
}

/* Loader: every get fails into UNDECODABLE; ids are range-checked. */
typedef struct loader {
    ds_reader_t r;
    ref_score_unit_t *u;
    ds_err_t err;
    int version; /* 1 (fixed-width numbers) or 2 */
} loader_t;

#define GET(x)                                                                                     \
    do {                                                                                           \
        ds_err_t e_ = (x);                                                                         \
        if (e_) {                                                                                  \
            ld->err = e_ == DS_ERR_NOMEM ? DS_ERR_NOMEM : DS_ERR_UNDECODABLE;                      \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ld->err = DS_ERR_UNDECODABLE;                                                          \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
#define NOMEM_IF(cond)                                                                             \
    do {                                                                                           \
        if (cond) {                                                                                \
            ld->err = DS_ERR_NOMEM;                                                                \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int get_count(loader_t *ld, uint32_t *n) {
    uint64_t v;
    GET(ds_get_varint(&ld->r, &v));
    /* every element takes at least one byte: bounds what we allocate */
    CHECK(v <= (uint64_t)(ld->r.end - ld->r.p) && v < INT32_MAX);
    *n = (uint32_t)v;
    return 0;
}

/* An id < limit; NOID allowed when opt_none. */
static int get_id(loader_t *ld, uint32_t limit, bool opt_none, uint32_t *id) {
    uint64_t v;
    GET(ds_get_varint(&ld->r, &v));
    if (v == 0) {
        CHECK(opt_none);
        *id = NOID;
        return 0;
    }
    CHECK(v - 1 < limit);
    *id = (uint32_t)(v - 1);
    return 0;
}

static int get_u8max(loader_t *ld, uint8_t max, uint8_t *v) {
    GET(ds_get_u8(&ld->r, v));
    CHECK(*v <= max);
    return 0;
}

/* An integer, a time (after max_t is known) or a double as the blob's
 * version wrote it. */
static int get_int(loader_t *ld, int64_t *v) {
    GET(ld->version == 1 ? ds_get_i64(&ld->r, v) : ds_get_svarint(&ld->r, v));
    return 0;
}

static int get_time(loader_t *ld, int64_t *t) {
    if (ld->version == 1) {
        GET(ds_get_i64(&ld->r, t));
        return 0;
    }
    GET(ds_get_time(&ld->r, ld->u->max_t, t));
    return 0;
}

static int get_dbl(loader_t *ld, double *v) {
    GET(ld->version == 1 ? ds_get_f64(&ld->r, v) : ds_get_f64c(&ld->r, v));
    return 0;
}

static int get_i32(loader_t *ld, int32_t *v) {
    int64_t x;
    if (get_int(ld, &x))
        return -1;
    CHECK(x >= INT32_MIN && x <= INT32_MAX);
    *v = (int32_t)x;
    return 0;
}

static int load_lead(loader_t *ld, lead_t *L) {
    ref_score_unit_t *u = ld->u;
    uint32_t n, ns = u->nstrs;
    uint64_t v;
    GET(ds_get_varint(&ld->r, &v));
    CHECK(v <= UINT32_MAX);
    L->n_emitted = (uint32_t)v;
    if (get_time(ld, &L->as_of) || get_int(ld, &L->events_applied) ||
        get_dbl(ld, &L->confront) || get_dbl(ld, &L->connect) || get_i32(ld, &L->em_c10) || get_i32(ld, &L->em_n10) || get_i32(ld, &L->em_m10) ||
        get_u8max(ld, DS_TIER__COUNT - 1, &L->em_tier) || get_u8max(ld, 1, &L->any_a))
        return -1;
    if (get_count(ld, &n))
        return -1;
    NOMEM_IF(n && ENSURE(L->ins, L->cins, n, 1));
    for (uint32_t i = 0; i < n; i++) {
        ins_t *x = &L->ins[i];
        if (get_id(ld, ns, false, &x->insight) || get_u8max(ld, 7, &x->amask) ||
            get_u8max(ld, 31, &x->smask) || get_dbl(ld, &x->pts))
            return -1;
        L->nins++;
    }
    if (get_count(ld, &n))
        return -1;
    NOMEM_IF(n && ENSURE(L->rep, L->crep, n, 1));
    for (uint32_t i = 0; i < n; i++) {
        rep_t *x = &L->rep[i];
        if (get_id(ld, ns, true, &x->content) || get_u8max(ld, DS_MA__COUNT - 1, &x->type) ||
            get_time(ld, &x->t))
            return -1;
        L->nrep++;
    }
    if (get_count(ld, &n))
        return -1;
    NOMEM_IF(n && ENSURE(L->bkt, L->cbkt, n, 1));
    for (uint32_t i = 0; i < n; i++) {
        bkt_t *x = &L->bkt[i];
        if (get_u8max(ld, BK__COUNT - 1, &x->kind))
            return -1;
        switch (x->kind) {
        case BK_CONF_INS:
        case BK_CONF_CONTENT:
            if (get_id(ld, ns, x->kind == BK_CONF_CONTENT, &x->a) ||
                get_id(ld, DS_CS__COUNT, false, &x->b))
                return -1;
            break;
        case BK_FOLLOW:
            if (get_id(ld, ns, false, &x->a) || get_id(ld, ns, false, &x->b))
                return -1;
            break;
        default:
            if (get_id(ld, ns, x->kind == BK_SHARE, &x->a) || get_id(ld, 1, false, &x->b))
                return -1;
            break;
        }
        if (get_dbl(ld, &x->v))
            return -1;
        L->nbkt++;
    }
    if (get_count(ld, &n))
        return -1;
    NOMEM_IF(n && ENSURE(L->shc, L->cshc, n, 1));
    for (uint32_t i = 0; i < n; i++) {
        shc_t *x = &L->shc[i];
        if (get_id(ld, ns, true, &x->content) || get_id(ld, ns, false, &x->colleague))
            return -1;
        L->nshc++;
    }
    return 0;
}

static int load_body(loader_t *ld) {
    ref_score_unit_t *u = ld->u;
    uint8_t is_acct;
    uint32_t n;
    if (get_u8max(ld, 1, &is_acct))
        return -1;
    u->is_account = is_acct;
    if (get_dbl(ld, &u->tier_confronted) || get_dbl(ld, &u->tier_connector) ||
        get_dbl(ld, &u->consensus_target) || get_int(ld, &u->dd_window_ms) ||
        get_int(ld, &u->max_t))
        return -1;
    if (get_count(ld, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        char *s = NULL;
        GET(ds_get_str(&ld->r, &s));
        CHECK(s);
        uint32_t id;
        int rc = intern(u, s, &id);
        free(s);
        NOMEM_IF(rc);
        CHECK(id == i); /* no duplicates */
    }
    uint32_t ns = u->nstrs;
    if (get_count(ld, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        int64_t h, t;
        GET(ds_get_i64(&ld->r, &h));
        if (get_time(ld, &t))
            return -1;
        CHECK(h != 0);
        NOMEM_IF(ENSURE(u->dd, u->dd_cap, (uint64_t)u->ndd + 1, 4));
        u->dd[u->ndd++] = (dd_t){(uint64_t)h, t};
    }
    /* saved in hash order; a blob from elsewhere is sorted here */
    bool sorted = true;
    for (uint32_t i = 1; i < u->ndd && sorted; i++)
        sorted = u->dd[i - 1].h < u->dd[i].h;
    if (!sorted) {
        qsort(u->dd, u->ndd, sizeof(dd_t), cmp_dd);
        for (uint32_t i = 1; i < u->ndd; i++)
            CHECK(u->dd[i - 1].h != u->dd[i].h); /* no duplicates */
    }
    if (get_count(ld, &n))
        return -1;
    NOMEM_IF(n && ENSURE(u->leads, u->cleads, n, 4));
    for (uint32_t i = 0; i < n; i++) {
        lead_t *L = &u->leads[i];
        memset(L, 0, sizeof(*L));
        u->nleads++; /* counted first so destroy frees a half-read lead */
        if (get_id(ld, ns, false, &L->id))
            return -1;
        CHECK(u->strs[L->id].lead < 0);
        u->strs[L->id].lead = (int32_t)i;
        if (load_lead(ld, L))
            return -1;
    }
    uint32_t nl = u->nleads;
    if (get_count(ld, &n))
        return -1;
    NOMEM_IF(n && ENSURE(u->fw, u->cfw, n, 8));
    for (uint32_t i = 0; i < n; i++) {
        fw_t *x = &u->fw[i];
        if (get_id(ld, ns, false, &x->colleague) || get_id(ld, ns, false, &x->insight) ||
            get_id(ld, ns, false, &x->sharer) || get_time(ld, &x->ts))
            return -1;
        CHECK(u->strs[x->sharer].lead >= 0);
        CHECK(i == 0 || cmp_fw(&u->fw[i - 1], x) < 0);
        u->nfw++;
    }
    if (get_count(ld, &n))
        return -1;
    NOMEM_IF(n && ENSURE(u->cr, u->ccr, n, 8));
    for (uint32_t i = 0; i < n; i++) {
        cr_t *x = &u->cr[i];
        if (get_id(ld, ns, false, &x->sharer) || get_id(ld, ns, false, &x->colleague) ||
            get_id(ld, ns, false, &x->insight))
            return -1;
        CHECK(i == 0 || cmp_cr(&u->cr[i - 1], x) < 0);
        u->ncr++;
    }
    if (get_count(ld, &n))
        return -1;
    NOMEM_IF(n && ENSURE(u->att, u->catt, n, 8));
    for (uint32_t i = 0; i < n; i++) {
        att_t *x = &u->att[i];
        uint64_t l;
        if (get_id(ld, ns, false, &x->content))
            return -1;
        GET(ds_get_varint(&ld->r, &l));
        CHECK(l < nl);
        x->lead = (uint32_t)l;
        if (get_time(ld, &x->t))
            return -1;
        CHECK(i == 0 || cmp_att(&u->att[i - 1], x) < 0);
        u->natt++;
    }
    if (get_count(ld, &n))
        return -1;
    NOMEM_IF(n && ENSURE(u->gc, u->cgc, n, 8));
    for (uint32_t i = 0; i < n; i++) {
        gc_t *x = &u->gc[i];
        uint64_t l;
        GET(ds_get_varint(&ld->r, &l));
        CHECK(l < nl);
        x->lead = (uint32_t)l;
        if (get_id(ld, ns, false, &x->content))
            return -1;
        CHECK(i == 0 || cmp_gc(&u->gc[i - 1], x) < 0);
        u->ngc++;
    }
    uint64_t v;
    GET(ds_get_varint(&ld->r, &v));
    CHECK(v <= UINT32_MAX);
    u->acc_n_emitted = (uint32_t)v;
    if (get_i32(ld, &u->em_engaged) || get_i32(ld, &u->em_confronted) ||
        get_i32(ld, &u->em_cons10) || get_id(ld, ns, true, &u->em_top) || get_count(ld, &n))
        return -1;
    NOMEM_IF(n && ENSURE(u->em_mob, u->cem_mob, n, 4));
    for (uint32_t i = 0; i < n; i++) {
        if (get_id(ld, ns, false, &u->em_mob[i]))
            return -1;
        u->nem_mob++;
    }
    /* as_of_max: saved last by this copy; a blob of the original format
     * ends here, and its leads' largest as_of is all that is known */
    if (ld->r.p < ld->r.end) {
        GET(ds_get_svarint(&ld->r, &u->as_of_max));
    } else {
        u->as_of_max = UNSET_T;
        for (uint32_t i = 0; i < u->nleads; i++)
            if (u->leads[i].as_of != UNSET_T &&
                (u->as_of_max == UNSET_T || u->leads[i].as_of > u->as_of_max))
                u->as_of_max = u->leads[i].as_of;
    }
    CHECK(ld->r.p == ld->r.end);
    return 0;
}

ref_score_unit_t *ref_score_unit_load(const void *p, size_t n, ds_err_t *err) {
    ds_err_t dummy;
    if (!err)
        err = &dummy;
    *err = DS_ERR_UNDECODABLE;
    if (!p || n < 5 || memcmp(p, STATE_MAGIC, 4))
        return NULL;
    int version = ((const unsigned char *)p)[4];
    if (version != 1 && version != STATE_VERSION)
        return NULL;
    loader_t ld_, *ld = &ld_;
    ld->version = version;
    ds_reader_init(&ld->r, (const unsigned char *)p + 5, n - 5);
    ld->err = DS_ERR_OK;
    char *key = NULL;
    ds_err_t e = ds_get_str(&ld->r, &key);
    if (e || !key) {
        free(key);
        *err = e == DS_ERR_NOMEM ? DS_ERR_NOMEM : DS_ERR_UNDECODABLE;
        return NULL;
    }
    ld->u = ref_score_unit_new(key, false);
    free(key);
    if (!ld->u) {
        *err = DS_ERR_NOMEM;
        return NULL;
    }
    if (load_body(ld)) {
        *err = ld->err ? ld->err : DS_ERR_UNDECODABLE;
        ref_score_unit_destroy(ld->u);
        return NULL;
    }
    *err = DS_ERR_OK;
    return ld->u;
}
