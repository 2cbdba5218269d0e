/*
 * score_int.h — the data of a scoring unit, shared by the files of the
 * scoring domain (score.c: the rules; score_rollup.c: the roll-up;
 * score_unit.c: a unit's memory; score_text.c: the public records;
 * score_store.c: the per-lead records and the account aggregate as bytes;
 * score_apart.c: a lead's ids and memory of content kept apart from them,
 * and that memory as the rules change it;
 * score_container.c: a whole unit as one buffer; score_legacy.c: units
 * saved whole by earlier versions) and by their unit tests.  Not a public
 * header.
 *
 * A unit is one account (or one lead without account).  Its leads are
 * records of their own, kept in memory once loaded ("resident") and
 * persisted one by one; the account holds only aggregates that are
 * maintained incrementally (see score_rollup.c) and the indexes that relate
 * leads to each other (webinar attendances).  Every relation between two
 * leads is stored on one of them:
 *   - a share of S to colleague C on insight I is an entry of C's inbox
 *     (sharer S, S's generation, I, time): C's next engagement of I looks
 *     there for whom to credit;
 *   - a follow credit given to S for C on I is an entry of C's credited
 *     list (S, S's generation, I);
 *   - a counted webinar attendance is on the attendee (content, time) and
 *     in the account's attendance index of that content (by time), which
 *     answers "who attended within a day" without visiting the others;
 *   - a group credit received is on the receiver (content).
 * A lead's generation counts its UNSUBSCRIBEs: an inbox or credited entry
 * made under an older generation of its sharer no longer exists as far as
 * the rules are concerned (an unsubscribe clears the sharer's shares and
 * credits without touching the colleagues' records).
 */
#ifndef DS_SCORE_INT_H
#define DS_SCORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "ds_buf.h"
#include "ds_dedupe.h"
#include "score.h"

#define NOID UINT32_MAX
#define UNSET_T INT64_MIN

/* An interned string: its text in the table's pool. */
typedef struct istr {
    uint32_t off, len, hash;
    int32_t lead; /* a unit's lead id: index in leads[], or -1 */
} istr_t;

/* A string table: a pool of texts and an open-addressing index. */
typedef struct strtab {
    char *pool;
    uint32_t pool_len, pool_cap;
    istr_t *strs;
    uint32_t n, cap;
    uint32_t *slots; /* idx + 1; 0 empty */
    uint32_t slot_cap;
} strtab_t;

/* Ids: a unit's lead ids (and colleagues') index its own table; content and
 * insight ids are symbols of the scratch's table, shared by the units of a
 * worker, with this bit set. */
#define DS_SYM 0x80000000u

/* A map of ids to indexes (open addressing, rebuilt at three quarters
 * full): a unit's insight -> aggregate, content -> attendance index, and
 * symbol -> dictionary entry. */
typedef struct idpair {
    uint32_t key; /* NOID: empty */
    int32_t val;
} idpair_t;
typedef struct idmap {
    idpair_t *v;
    uint32_t n, cap;
} idmap_t;

/* The index of key in m, or -1. */
int32_t ds_score_idx(const idmap_t *m, uint32_t key);
/* Set it; -1 on OOM. */
int ds_score_idx_put(idmap_t *m, uint32_t key, int32_t val);

typedef struct ins {
    uint32_t insight;
    uint8_t amask; /* A-state stages engaged (bit = stage) */
    uint8_t smask; /* every stage engaged */
    uint8_t pos;   /* counted in the sum's npos (pts > 0 when last settled) */
    double pts;    /* confront points on this insight, at lead as_of */
    double spts;   /* pts when last settled: it adds ds_score_q(spts) to the sum */
} ins_t;

typedef struct rep {
    uint32_t content; /* NOID: no content_id */
    uint8_t type;
    int64_t t; /* last counted */
} rep_t;

enum { BK_CONF_INS, BK_CONF_CONTENT, BK_SHARE, BK_FOLLOW, BK_GROUP, BK__COUNT };

/* A reason bucket: points of one kind from one source, packed in 16
 * bytes: a (an insight, a content or a colleague), and the kind with b
 * (a stage; the insight of a follow credit, a symbol kept without its
 * DS_SYM bit; a share's count of colleagues, so that its words need not
 * visit the lead's share pairs) in kb.  Read and made with the bk_*
 * functions below. */
typedef struct bkt {
    double v;
    uint32_t a;
    uint32_t kb; /* b << 3 | kind */
} bkt_t;

static inline uint8_t bk_kind(const bkt_t *k) { return (uint8_t)(k->kb & 7); }
static inline uint32_t bk_b(const bkt_t *k) {
    uint32_t b = k->kb >> 3;
    return bk_kind(k) == BK_FOLLOW ? b | DS_SYM : b;
}
static inline bkt_t bk_make(uint8_t kind, uint32_t a, uint32_t b, double v) {
    return (bkt_t){v, a, (kind == BK_FOLLOW ? b & ~DS_SYM : b) << 3 | kind};
}

typedef struct shc {
    uint32_t content, colleague; /* a counted share pair */
} shc_t;

typedef struct inb { /* sharer shared insight with this lead at ts */
    uint32_t sharer, insight, gen;
    int64_t ts;
} inb_t;

typedef struct crd { /* follow credit given to sharer for this lead on insight */
    uint32_t sharer, insight, gen;
} crd_t;

typedef struct latt { /* a counted webinar attendance of this lead */
    uint32_t content;
    int64_t t;
} latt_t;

enum { LF_SHARED = 1, LF_CREDITED = 2, LF_GROUP = 4 };

typedef struct lead {
    uint32_t id; /* intern id of lead_id */
    uint32_t n_emitted;
    uint32_t gen;    /* UNSUBSCRIBEs that cleared something */
    uint32_t c_top;  /* the insight it is counted confronted on, NOID: none */
    int64_t as_of;   /* UNSET_T until a contribution */
    int64_t max_t;   /* its dedupe clock: largest occurred_at applied */
    int64_t events_applied;
    double confront, connect; /* uncapped points at as_of */
    int32_t em_c10, em_n10, em_m10; /* last emitted, rounded ×10 */
    uint8_t em_tier, any_a, flags;
    uint8_t dirty, touched;
    uint8_t member;     /* had an event of its own: in the account's lead set */
    uint8_t set_known;  /* its membership is already written */
    uint8_t c_engaged, c_mob; /* what it adds to the account's counts */
    uint8_t ids;        /* IDS_*: where its dedupe ids are kept */
    uint16_t ids_epoch; /* the writer's epoch its kept-apart ids were written in */
    uint64_t notes[DS_LEAD_NOTES]; /* the caller's note of what it wrote */
    ins_t *ins;
    rep_t *rep;
    bkt_t *bkt;
    shc_t *shc;
    /* the event ids it applied (ds_dedupe_hash -> occurred_at), by hash,
     * read against the unit's clock (max_t) and dedupe window */
    ds_dedupe_t dd;
    inb_t *inb;
    crd_t *crd;
    latt_t *att;
    uint32_t *gc; /* contents whose group credit it received */
    /* counts; an array's capacity is the class of its count (1, 2, 3, 4,
     * 6, 8, 12, …: ds_score_capn), so it is not stored */
    uint32_t nins, nrep, nbkt, nshc, ninb, ncrd, natt, ngc;
    /* dd drops the ids that left the window only when it holds dd_compact_at
     * of them (ds_dedupe_compact): a function of the events applied, so
     * that what is stored of the ids is the same however the writes fell */
    uint32_t dd_compact_at;
    /* where its memory of content (repeats and share pairs) is: IDS_* and
     * MEM_GONE; the writer's epoch it was last written in when apart (in
     * what would be the struct's padding) */
    uint16_t mem_epoch;
    uint8_t mem;
} lead_t;

/* Where a lead's dedupe ids are kept (lead_t.ids).  While at most
 * DS_IDS_APART_AT are in the window of its latest event, in its record;
 * from the event that makes them more (a point the events set), in a hash
 * of their own for good, which a write changes by what changed (the
 * unit's idlog; score.c, remember_id). */
enum {
    IDS_APART = 1,   /* kept apart (a flag of the record) */
    IDS_MISSING = 2, /* kept apart and not read yet: its next event needs them */
    IDS_WHOLE = 4,   /* the next write stores them all (they just moved apart) */
};
#define DS_IDS_APART_AT 64

/* Where a lead's memory of content (its repeats and share pairs) is kept
 * (lead_t.mem, the IDS_* flags): in its record while there are at most
 * DS_MEM_APART_AT; from the event that makes them more, in a hash of
 * their own, which a write changes by what changed (the unit's memlog),
 * until an UNSUBSCRIBE clears them (then MEM_GONE: the next write deletes
 * the hash). */
enum { MEM_GONE = 8 };
#define DS_MEM_APART_AT 64

/* A repeat or share pair of a lead whose memory is kept apart, set since
 * the unit's last write (in the order they were set: the last of a key
 * is its value). */
typedef struct memlog {
    uint32_t lead;    /* intern id */
    uint32_t content; /* NOID: none */
    uint32_t other;   /* a repeat: its type; a share: the colleague */
    uint8_t share;
    uint32_t seq;
    int64_t t; /* a repeat's last counted time */
} memlog_t;

/* An id of a lead whose ids are kept apart, put or dropped since the
 * unit's last write: its stored entry is set to what the lead holds. */
typedef struct idlog {
    uint64_t h;
    uint32_t lead; /* intern id */
} idlog_t;

/* What a unit keeps for the leads whose memory is kept apart, allocated
 * with the first of them (most units never have one: a unit's size
 * stays as it was). */
typedef struct memapart {
    memlog_t *log; /* the memory kept apart set since the last write */
    uint32_t n, cap;
    /* an index of the repeats of each such lead (thousands of entries:
     * looked up by key, not one by one), built when first needed and
     * dropped when it cannot be kept: a lead's intern id -> its map in
     * repix ((content, type) -> index in rep) */
    idmap_t repof;
    idmap_t *repix;
    uint32_t nrepix, crepix;
} memapart_t;

/* One insight of the account: the sum of its leads' points on it (each
 * at the lead's own as_of, in fixed point so that the sum is exact and
 * independent of the order of updates) and how many leads are confronted
 * with it as their top insight. */
typedef struct aggi {
    uint32_t insight;
    uint32_t nconf;
    uint32_t npos;  /* records with points > 0: the sum is positive iff any */
    uint8_t dirty;  /* changed since the last write (in sdirty) */
    __int128 q;
} aggi_t;

typedef struct attx {
    int64_t t;
    uint32_t lead; /* intern id of the attendee */
} attx_t;

/* The counted attendances of one webinar (content) in the account, by
 * time, and those of attendees who have not received its group credit. */
typedef struct attidx {
    uint32_t content;
    uint8_t loaded; /* complete in memory (loaded, or the unit is new) */
    attx_t *all, *unc;
    uint32_t nall, call, nunc, cunc;
} attidx_t;

/* The references of one record to its own list of strings (the record
 * of a lone lead whose memory is kept apart: ds_score_encode_lone). */
typedef struct refmap {
    idmap_t m; /* symbol -> index in ids */
    uint32_t *ids;
    uint32_t n, cap;
} refmap_t;

typedef struct afield { /* an attendance-index field to write: (content, lead) */
    uint32_t content, lead;
} afield_t;

struct ds_score_scratch {
    strtab_t syms; /* content and insight ids of every unit sharing it */
    uint32_t refs; /* units using it (it outlives them) */
    ds_buf_t text;
    uint32_t *touched;
    uint32_t ntouched, ctouched;
    uint32_t *tmp; /* the attendees one attendance credits */
    uint32_t ctmp;
    const char **mobp;
    uint32_t cmobp;
    refmap_t *enc; /* while a record refers to its own list, not a dictionary */
    uint32_t cand[DS_MAX_REASONS];
    size_t roff[DS_MAX_REASONS];
};
typedef struct ds_score_scratch scratch_t;

struct ds_score_unit {
    char *key;
    bool is_account;
    /* Everything the unit ever held is in memory (a new unit, or one moved
     * from a whole-unit blob): a lead or index not found is new.  Else
     * only what was loaded is, and anything else must be loaded first. */
    bool complete;
    bool legacy;      /* read from a whole-unit blob: its next write moves it */
    bool thr_known;   /* thresholds below are those of the stored figures */
    bool pub_changed; /* account figures changed since the last write */
    /* rules the stored figures were computed with, and copies for views */
    double tier_confronted, tier_connector, consensus_target;
    int64_t dd_window_ms;
    /* interned lead ids; the indexes of the symbols the unit uses */
    strtab_t t;
    idmap_t aggmap, attmap, dictmap;
    /* the stored dictionary (content and insight ids of lead records) */
    uint32_t *dict; /* dict index -> intern id (NOID: not loaded yet) */
    uint32_t ndict, cdict;
    uint32_t dict_written; /* indexes below this are stored */
    /* leads */
    lead_t **leads; /* each allocated on its own: a pointer stays valid */
    uint32_t nleads, cleads;
    uint32_t members;          /* the account's leads (stored) */
    uint32_t resident_members; /* of which in memory */
    /* the account aggregate */
    aggi_t *agg;
    uint32_t nagg, cagg;
    int32_t engaged;
    uint32_t *mob; /* mobilizer leads (intern ids), sorted by text */
    uint32_t nmob, cmob;
    uint64_t mob_sig; /* order-independent hash of the mobilizer set */
    int64_t as_of;    /* the largest as_of its leads have had */
    uint32_t acc_n_emitted;
    int32_t em_engaged, em_confronted, em_cons10;
    uint32_t em_top;
    uint64_t em_mob_sig;
    uint32_t em_nmob;
    /* dedupe entries of a whole-unit blob, not attributable to a lead;
     * live against max_t (the largest occurred_at applied in the unit: the
     * clock of every lead's ids too) */
    ds_dedupe_t ldd;
    int64_t max_t;
    /* webinar attendance indexes */
    attidx_t *atts;
    uint32_t natts, catts;
    afield_t *adirty;
    uint32_t nadirty, cadirty;
    uint32_t *mchg; /* leads whose mobilizer membership changed (unwritten) */
    uint32_t nmchg, cmchg;
    uint32_t *dlist; /* dirty leads, in the order they became dirty */
    uint32_t ndl, cdl;
    uint32_t *sdirty; /* changed insight sums (indexes in agg[]) */
    uint32_t nsd, csd;
    idlog_t *idlog; /* the ids kept apart that changed since the last write */
    uint32_t nidlog, cidlog;
    memapart_t *ma; /* its leads' memory kept apart: NULL until one is */
    uint32_t missing; /* parts of leads kept apart and not read yet (IDS_MISSING
                       * of ids and of memory; a complete unit's too) */
    scratch_t *scr;
    bool own_scr; /* scr is this unit's own (else shared, see score.h) */
};

#define S(u, id) ds_score_str((u), (id))

/* A lead's figures as its view shows them (scores capped to 100). */
typedef struct lview {
    double c, n, m;
    int tier;
    uint32_t top;
    int furthest;
} lview_t;

/* The account's figures. */
typedef struct aview {
    int32_t engaged, confronted, cons10;
    uint32_t top;
} aview_t;

/* x × 10 rounded half away from zero, saturated: emitted values compare so. */
static inline int32_t ds_score_r10(double x) {
    double v = __builtin_round(x * 10.0);
    if (v > 2.0e9)
        return INT32_MAX;
    if (v < -2.0e9)
        return INT32_MIN;
    return (int32_t)v;
}

/* Insert rec at pos of an array of n elements of sz bytes (room for n+1);
 * remove the element at pos. */
static inline void ds_score_insert_at(void *base, uint32_t n, size_t sz, uint32_t pos,
                                      const void *rec) {
    unsigned char *b = base;
    __builtin_memmove(b + (size_t)(pos + 1) * sz, b + (size_t)pos * sz, (size_t)(n - pos) * sz);
    __builtin_memcpy(b + (size_t)pos * sz, rec, sz);
}

static inline void ds_score_remove_at(void *base, uint32_t *n, size_t sz, uint32_t pos) {
    unsigned char *b = base;
    __builtin_memmove(b + (size_t)pos * sz, b + (size_t)(pos + 1) * sz,
                      (size_t)(*n - pos - 1) * sz);
    (*n)--;
}

/* ---- shared helpers (score_unit.c, score_rollup.c, score_text.c) --------- */

void *ds_score_ensure_cap(void *p, uint32_t *cap, uint32_t need, size_t sz, uint32_t first);
static inline bool ds_score_over_u32(uint64_t v) { return v > UINT32_MAX; }
/* An array of n elements of sz bytes with room for `need`: its capacity is
 * the class of its count (ds_score_capn), grown by realloc.  NULL on OOM
 * (p unchanged). */
void *ds_score_grow(void *p, uint32_t n, uint64_t need, size_t sz);
uint32_t ds_score_capn(uint32_t n);
#define GROW(arr, n, need)                                                                         \
    __extension__({                                                                                \
        void *np_ = ds_score_grow((arr), (n), (need), sizeof(*(arr)));                             \
        if (np_)                                                                                   \
            (arr) = np_;                                                                           \
        np_ ? 0 : -1;                                                                              \
    })

/* The decoders of saved units (score_store.c, score_legacy.c) read from
 * d->r and fail by setting d->bad and returning -1: RD_GET on a reader
 * call's error, RD_CHECK when a condition on what was read is false. */
#define RD_GET(x)                                                                                  \
    do {                                                                                           \
        if ((x) != DS_ERR_OK) {                                                                    \
            d->bad = true;                                                                         \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
#define RD_CHECK(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            d->bad = true;                                                                         \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* First capacities of a unit's arrays, small because most units are: a
 * lead without an account is a unit of its own holding one lead id and a
 * few content ids, and a worker may hold hundreds of thousands of them
 * (an account's arrays grow by half from there: ds_score_ensure_cap). */
#define DS_FIRST_TEXT 32 /* bytes of interned ids */
#define DS_FIRST_IDS 2   /* interned ids, leads, dictionary entries, dirty leads */
#define DS_FIRST_SLOTS 4 /* hash slots of an index: a power of two */

/* Make room for `need` elements in arr (capacity cap); 0 on success. */
#define ENSURE(arr, cap, need, first)                                                              \
    __extension__({                                                                                \
        int rc_ = 0;                                                                               \
        if ((uint64_t)(need) > (uint64_t)(cap)) {                                                  \
            if (ds_score_over_u32((uint64_t)(need))) {                                                \
                rc_ = -1;                                                                          \
            } else {                                                                               \
                void *np_ =                                                                        \
                    ds_score_ensure_cap((arr), &(cap), (uint32_t)(need), sizeof(*(arr)), (first)); \
                if (np_)                                                                           \
                    (arr) = np_;                                                                   \
                else                                                                               \
                    rc_ = -1;                                                                      \
            }                                                                                      \
        }                                                                                          \
        rc_;                                                                                       \
    })

static inline const char *ds_score_str(const ds_score_unit_t *u, uint32_t id) {
    if (id & DS_SYM)
        return u->scr->syms.pool + u->scr->syms.strs[id & ~DS_SYM].off;
    return u->t.pool + u->t.strs[id].off;
}

static inline uint32_t ds_score_strlen(const ds_score_unit_t *u, uint32_t id) {
    return id & DS_SYM ? u->scr->syms.strs[id & ~DS_SYM].len : u->t.strs[id].len;
}

/* A content or insight id as a symbol (added when new); -1 on OOM. */
int ds_score_sym(ds_score_unit_t *u, const char *s, size_t len, uint32_t *out);
/* The symbol of s, or NOID. */
uint32_t ds_score_sym_lookup(const ds_score_unit_t *u, const char *s, size_t len);

/* The index of s in t (added when new); -1 on OOM.  Frees t's memory. */
int ds_score_tab_intern(strtab_t *t, const char *s, size_t len, uint32_t *out);
void ds_score_tab_free(strtab_t *t);
/* The intern id of lead id s (added when new); -1 on OOM. */
int ds_score_intern(ds_score_unit_t *u, const char *s, size_t len, uint32_t *out);
/* The intern id of lead id s, or NOID. */
uint32_t ds_score_lookup(const ds_score_unit_t *u, const char *s, size_t len);
/* The resident lead of intern id `id` (created, empty, when absent);
 * -1 on OOM. */
int ds_score_lead_slot(ds_score_unit_t *u, uint32_t id, uint32_t *li);
/* The attendance index of a content (created empty when absent). */
int ds_score_att_slot(ds_score_unit_t *u, uint32_t content, uint32_t *ai);
/* The aggregate slot of an insight (created when absent). */
int ds_score_agg_slot(ds_score_unit_t *u, uint32_t insight, uint32_t *gi);
/* Points in fixed point (2^32 per point): every double up to 2^94 points
 * exactly rounded, sums exact and independent of their order. */
__int128 ds_score_q(double pts);
/* Bring the account's aggregates in line with lead li after it changed
 * (or was loaded: then its contributions start from zero). */
int ds_score_settle(ds_score_unit_t *u, uint32_t li);
/* Insert / remove attendance x of content index ai (sorted by t, lead). */
int ds_score_att_insert(attx_t **arr, uint32_t *n, uint32_t *cap, attx_t x);
void ds_score_lead_free_arrays(lead_t *L);
/* Set the count of colleagues of L's share bucket of content (if any). */
void ds_score_share_count(lead_t *L, uint32_t content, uint32_t count);
/* Set every share bucket's count from L's share pairs (a record that
 * does not store them). */
void ds_score_share_counts(lead_t *L);
/* Give a content or insight id its dictionary index, in the order events
 * first name them (so the stored bytes are the same however the writes
 * fall); 0 when it has one. */
int ds_score_dict_assign(ds_score_unit_t *u, uint32_t id);
int ds_score_mark_lead(ds_score_unit_t *u, uint32_t li);
/* Insight sum g changed: it is written with the unit's next write. */
int ds_score_mark_sum(ds_score_unit_t *u, uint32_t g);
int ds_score_mark_field(ds_score_unit_t *u, uint32_t content, uint32_t lead);
int ds_score_mob_set(ds_score_unit_t *u, uint32_t lead_id, bool on);
uint64_t ds_score_mob_hash(const ds_score_unit_t *u, uint32_t id);
void ds_score_lead_view(const ds_score_unit_t *u, const lead_t *L, lview_t *v);
void ds_score_account_figures(const ds_score_unit_t *u, aview_t *a);
int ds_score_account_fill(const ds_score_unit_t *u, const aview_t *a, ds_account_score_t *out);
bool ds_score_thresholds_differ(const ds_score_unit_t *u, const ds_rules_t *r);
/* Every lead of the account is in memory. */
bool ds_score_all_resident(const ds_score_unit_t *u);
/* Take r's tier thresholds and settle every lead under them. */
int ds_score_adopt_thresholds(ds_score_unit_t *u, const ds_rules_t *r);
bool ds_score_put_s(ds_buf_t *b, const char *s);
bool ds_score_put_u(ds_buf_t *b, uint64_t v);
/* The public record of lead L with view v; n_out > 0: output id
 * "<lead>:<n_out>". */
void ds_score_lead_record(const ds_score_unit_t *u, const lead_t *L, const lview_t *v,
                          int prev_tier, uint32_t n_out, ds_lead_score_t *out);
/* The stored formats (score_store.c): append to out. */
/* A lead's record: with `container`, its ids whenever they are in memory
 * (a whole-unit container), else only while they are not kept apart. */
ds_err_t ds_score_encode_lead(ds_score_unit_t *u, const lead_t *L, bool container,
                              ds_buf_t *out);
ds_err_t ds_score_encode_lone(ds_score_unit_t *u, const lead_t *L, bool container,
                              ds_buf_t *out, ds_buf_t *tmp);
ds_err_t ds_score_encode_account(ds_score_unit_t *u, ds_buf_t *out);
/* What a unit keeps of its leads apart from their records (score_apart.c):
 * the logs sorted for the write, then each written lead's part of them. */
void ds_score_sort_logs(ds_score_unit_t *u);
/* A lead's memory of content as the rules change it: room in the memlog
 * first (0, or -1 on OOM), then the change noted (and the move apart past
 * DS_MEM_APART_AT); its repeat of (content, type) or NULL (by an index
 * once apart); a repeat appended to L->rep; the index dropped. */
int ds_score_mem_room(ds_score_unit_t *u, const lead_t *L);
void ds_score_mem_set(ds_score_unit_t *u, lead_t *L, bool share, uint32_t content,
                      uint32_t other, int64_t t);
rep_t *ds_score_rep_find(ds_score_unit_t *u, lead_t *L, uint32_t content, uint8_t type);
void ds_score_rep_added(ds_score_unit_t *u, lead_t *L);
void ds_score_rep_unindex(ds_score_unit_t *u, const lead_t *L);
ds_err_t ds_score_write_apart(ds_score_unit_t *u, lead_t *L, const ds_score_writer_t *w);
/* The field of a lead's repeat (content, type `other`) or, with `share`,
 * share pair (content, colleague `other`) in its hash kept apart. */
ds_err_t ds_score_mem_field(const ds_score_unit_t *u, bool share, uint32_t content,
                            uint32_t other, ds_buf_t *out);
ds_err_t ds_score_encode_field(const lead_t *L, uint32_t content, ds_buf_t *out);
/* An insight's sum; nothing when it is all zero (the field is deleted). */
ds_err_t ds_score_encode_sum(const aggi_t *g, ds_buf_t *out);
ds_err_t ds_score_put_sid(const ds_score_unit_t *u, ds_buf_t *b, uint32_t id);
/* Set lead li's contributions to what its record implies (a lead loaded
 * from storage, whose share is already in the stored sums). */
void ds_score_contributions(ds_score_unit_t *u, uint32_t li);
/* The public view of lead li as stored (no output id; previous tier the
 * last emitted one); valid until the next call on the unit. */
void ds_score_lead_public(const ds_score_unit_t *u, uint32_t li, ds_lead_score_t *out);
/* A signature of the account's public figures (never 0): changes when one
 * of them does.  O(1) but for the argmax over the account's insights. */
uint64_t ds_score_account_sig(const ds_score_unit_t *u);

#endif
