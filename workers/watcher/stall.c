/*
 * stall.c — the customer-verified pipeline of one deal and its alerts.
 *
 * The deal keeps what the buyer did (signals with first-seen times, last
 * buyer signal), what the seller did (last activity, actions unanswered
 * since the last buyer signal), the stage the rep reports and the
 * stakeholders.  The verified stage is derived on demand from the observed
 * codes and the rules in force (so a rules reload applies at once).  Each
 * alert kind has its own small lifecycle (open, episode, level, last
 * notification); every transition is emitted once, in AlertKind order,
 * with an id derived from (deal, kind, episode, state, level).
 *
 * Cost: applying an event costs in proportion to what it touches, not to
 * the deal's history or its number of stakeholders.  The dedupe window
 * is a ds_dedupe_t (O(log n) to find an id); entries that leave the
 * window stay until the entries have doubled since the last compaction,
 * and are told apart by their time meanwhile (amortised O(1) an event).
 * Stakeholders are found through a hash index (built past 16 of them),
 * and a new stakeholder asks for its own tier only (the watcher answers a
 * deal of more than 16 from its account's mobilizers set, one read).  The
 * record (ds_deal_save) leaves out the stakeholders, and the ids once
 * there are more than SPILL_AT of them: a write stores what changed of
 * them (ds_deal_changes), so its size does not follow the deal's either.
 */
#include "stall.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_dedupe.h"
#include "ds_fmt.h"
#include "ds_hash.h"

#define NK DS_AK__COUNT

typedef struct sig {
    char *code;
    int64_t at;
} sig_t_;

typedef struct alert_st {
    uint8_t open;
    int32_t episode, level;
    int64_t last_notified;
} alert_st_t;

/* An open-addressing index of 32-bit positions (the stakeholders'), keyed
 * by a 64-bit hash: a power-of-two number of slots, at least twice the
 * entries; SLOT_EMPTY marks a free slot.  Positions are never removed: the
 * array it indexes is rebuilt instead. */
#define SLOT_EMPTY UINT32_MAX
#define INDEX_FROM 16 /* below this many entries a linear search is cheaper */
#define SPILL_AT 64    /* more ids than this: they leave the record */

struct ds_deal {
    char *id, *account_id, *owner_id;
    uint8_t opened, outcome; /* outcome: 0 open, 1 won, 2 lost */
    uint8_t mobilizer_known;
    int32_t reported;
    int64_t opened_at, last_buyer, last_seller; /* DS_TS_NULL: none */
    int32_t unanswered;
    sig_t_ *sigs;
    uint32_t nsigs;
    char **stake;
    uint32_t nstake, cstake;       /* cstake: room in stake[] */
    uint32_t *stake_ix, nstake_ix; /* index of stake[] (NULL below INDEX_FROM) */
    alert_st_t al[NK];
    /* The dedupe window: seen holds every id in the window (in arrival
     * order, as it is saved) and maybe ids that left it since it last
     * made room.  An entry is in the window when seen_exact (right after
     * a load or a change of window), or it is the entry of the last event
     * (kept one event longer however old), or max_t - at <= seen_win (the
     * window of the last event): seen_clock(). */
    ds_dedupe_t seen;
    uint64_t seen_last; /* the last event's id hash (0: none) */
    bool seen_exact;
    int64_t seen_win;
    int64_t max_t;
    /* seen drops what left the window only when it holds compact_at
     * entries (then compact_at = twice what is left, at least
     * DS_DEDUPE_COMPACT_MIN): a function of the events applied, so that what is
     * stored of it is the same however the writes fell (see
     * ds_deal_changes) */
    uint32_t compact_at;
    /* what changed since the last ds_deal_written (with `track`): the
     * stakeholders from stake_written on, the ids put (s_add) and dropped
     * (s_del) */
    bool track, whole; /* whole: a change could not be noted */
    bool side;         /* loaded from a state of version 3 (ds_deal_load_side) */
    /* the ids live in the record while few; once they were more than
     * SPILL_AT (a point the events set), in the watcher's key of their
     * own for good */
    bool spilled;
    uint32_t stake_stored; /* a record of version 3: its stakeholders, kept apart */
    uint32_t stake_written;
    uint64_t *s_add, *s_del;
    uint32_t ns_add, cs_add, ns_del, cs_del;
    /* the verified stage, valid while the rules' gen and nsigs are those
     * it was found with (signals are only ever added): every evaluation
     * and every deadline asks for it, several verifier lists × signals */
    uint64_t v_gen;
    uint32_t v_nsigs;
    int32_t v_stage;
    /* whether a stakeholder's tier is MOBILIZER, valid while ctx's
     * tier_epoch and nstake are those it was found with (the account id
     * changing clears it): a deal evaluated several times in one batch
     * asks for its stakeholders' tiers once */
    uint64_t m_epoch;
    uint32_t m_nstake;
    uint8_t m_result;
};


ds_deal_t *ds_deal_new(const char *deal_id) {
    ds_deal_t *d = calloc(1, sizeof(*d));
    if (!d || !(d->id = strdup(deal_id))) {
        free(d);
        return NULL;
    }
    d->reported = DS_PS_RECOGNIZE_NEED;
    d->last_buyer = d->last_seller = DS_TS_NULL;
    d->max_t = INT64_MIN;
    ds_dedupe_init(&d->seen, false);
    d->seen_exact = true;
    d->compact_at = DS_DEDUPE_COMPACT_MIN;
    return d;
}

void ds_deal_destroy(ds_deal_t *d) {
    if (!d)
        return;
    free(d->id);
    free(d->account_id);
    free(d->owner_id);
    for (uint32_t i = 0; i < d->nsigs; i++)
        free(d->sigs[i].code);
    free(d->sigs);
    for (uint32_t i = 0; i < d->nstake; i++)
        free(d->stake[i]);
    free(d->stake);
    free(d->stake_ix);
    ds_dedupe_free(&d->seen);
    free(d->s_add);
    free(d->s_del);
    free(d);
}

/* ---- the hash indexes -------------------------------------------------------- */

/* Room for n entries in *ix (at least twice n slots, a power of two);
 * false when out of memory (the caller then searches linearly). */
static bool ix_alloc(uint32_t **ix, uint32_t *nix, uint32_t n) {
    uint32_t want = 64;
    while (want < 2 * n)
        want *= 2;
    uint32_t *x = malloc(want * sizeof(*x));
    if (!x)
        return false;
    memset(x, 0xff, want * sizeof(*x)); /* SLOT_EMPTY */
    free(*ix);
    *ix = x;
    *nix = want;
    return true;
}

static uint64_t str_hash(const char *s) {
    return ds_fnv64(s, strlen(s));
}

/* The slot of stakeholder c (hash h) in stake_ix: the one holding c's
 * position, or the free slot where it would go (linear probing). */
static uint32_t stake_slot(const ds_deal_t *d, const char *c, uint64_t h) {
    uint32_t m = d->nstake_ix - 1, i = (uint32_t)h & m;
    while (d->stake_ix[i] != SLOT_EMPTY && strcmp(d->stake[d->stake_ix[i]], c))
        i = (i + 1) & m;
    return i;
}

static void stake_reindex(ds_deal_t *d) {
    if (d->nstake < INDEX_FROM || !ix_alloc(&d->stake_ix, &d->nstake_ix, d->cstake)) {
        free(d->stake_ix);
        d->stake_ix = NULL;
        d->nstake_ix = 0;
        return;
    }
    for (uint32_t i = 0; i < d->nstake; i++)
        d->stake_ix[stake_slot(d, d->stake[i], str_hash(d->stake[i]))] = i;
}

/* true when *dst changed */
static bool set_str(char **dst, const char *s) {
    if (!s || !s[0] || (*dst && !strcmp(*dst, s)))
        return false;
    char *n = strdup(s);
    if (!n)
        return false;
    free(*dst);
    *dst = n;
    return true;
}

static bool observed(const ds_deal_t *d, const char *code) {
    for (uint32_t i = 0; i < d->nsigs; i++)
        if (!strcmp(d->sigs[i].code, code))
            return true;
    return false;
}

/* The first stage not fully verified, as if the `nextra` codes of `extra`
 * had been observed too; DS_NONE when every stage is. */
static int verified_stage_with(const ds_deal_t *d, const ds_rules_t *r, const char *const *extra,
                               size_t nextra) {
    for (int s = 0; s < DS_PS__COUNT; s++) {
        const ds_stage_rule_t *st = &r->stall.stages[s];
        for (size_t i = 0; i < st->verifiers_count; i++) {
            if (observed(d, st->verifiers[i]))
                continue;
            size_t k = 0;
            while (k < nextra && strcmp(extra[k], st->verifiers[i]))
                k++;
            if (k == nextra)
                return s;
        }
    }
    return DS_NONE;
}

static int verified_stage(const ds_deal_t *d, const ds_rules_t *r) {
    if (r->gen && d->v_gen == r->gen && d->v_nsigs == d->nsigs)
        return d->v_stage;
    return verified_stage_with(d, r, NULL, 0);
}

/* verified_stage, cached for the callers that take a const deal (the
 * deadline, the public fields) */
static int verified_stage_cache(ds_deal_t *d, const ds_rules_t *r) {
    int v = verified_stage(d, r);
    d->v_gen = r->gen;
    d->v_nsigs = d->nsigs;
    d->v_stage = v;
    return v;
}

/* NO_MOBILIZER holds at verified stage v and reported stage rep (the
 * stakeholders' tiers aside): the one condition that asks for them. */
static bool mobilizer_required(const ds_rules_t *r, int v, int rep) {
    int req = r->stall.mobilizer_required_from;
    return v != DS_NONE && (v >= req || rep >= req);
}

bool ds_deal_may_ask_tiers(const ds_deal_t *d, const ds_crm_event_t *const *evs, size_t n,
                           const ds_rules_t *r) {
    if (d->outcome || d->mobilizer_known)
        return false;
    int v = verified_stage(d, r);
    if (v == DS_NONE)
        return false; /* every stage verified: signals only add, it stays so */
    /* Bounds over the events: the highest reported stage any of them can
     * set, and the verified stage with all their signals (verified stages
     * only rise as signals add, up to DS_NONE).  An evaluation after some
     * of them has a reported stage <= rep and a verified stage <= vall,
     * unless all are verified; so it asks only if this holds. */
    int rep = d->opened ? d->reported : DS_PS_RECOGNIZE_NEED;
    const char *sigs[64];
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->stage != DS_NONE && evs[i]->stage > rep)
            rep = evs[i]->stage;
        if (evs[i]->type == DS_CRM_BUYER_SIGNAL && evs[i]->signal && evs[i]->signal[0]) {
            if (ns == sizeof(sigs) / sizeof(sigs[0]))
                return true; /* too many to bound cheaply */
            sigs[ns++] = evs[i]->signal;
        }
    }
    int req = r->stall.mobilizer_required_from;
    int vall = ns ? verified_stage_with(d, r, sigs, ns) : v;
    return vall == DS_NONE || vall >= req || rep >= req;
}

static void add_stakeholder(ds_deal_t *d, const char *c) {
    if (!c || !c[0])
        return;
    uint32_t slot = SLOT_EMPTY;
    if (d->stake_ix) {
        slot = stake_slot(d, c, str_hash(c));
        if (d->stake_ix[slot] != SLOT_EMPTY)
            return;
    } else {
        for (uint32_t i = 0; i < d->nstake; i++)
            if (!strcmp(d->stake[i], c))
                return;
    }
    if (d->nstake == d->cstake) { /* grown by doubling */
        uint32_t nc = d->cstake ? d->cstake * 2 : 4;
        char **n = realloc(d->stake, nc * sizeof(char *));
        if (!n)
            return;
        d->stake = n;
        d->cstake = nc;
    }
    if (!(d->stake[d->nstake] = strdup(c)))
        return;
    d->nstake++;
    if (d->stake_ix && 2 * d->cstake <= d->nstake_ix)
        d->stake_ix[slot] = d->nstake - 1;
    else if (d->nstake >= INDEX_FROM)
        stake_reindex(d); /* first built, or grown */
}

static int64_t quiet_start(const ds_deal_t *d) {
    return d->last_buyer != DS_TS_NULL ? d->last_buyer : d->opened_at;
}

static int64_t max_quiet_ms(const ds_rules_t *r, int stage) {
    return ds_days_ms(r->stall.stages[stage].max_quiet_days);
}

static bool mobilizer(ds_deal_t *d, const ds_watch_ctx_t *c) {
    if (d->mobilizer_known)
        return true;
    if (!c->stakeholder_is_mobilizer)
        return false;
    uint32_t from = 0;
    if (c->tier_epoch && d->m_epoch == c->tier_epoch) {
        if (d->m_result || d->m_nstake == d->nstake)
            return d->m_result;
        from = d->m_nstake; /* the answers stand within an epoch: ask the new ones */
    }
    bool found = false;
    for (uint32_t i = from; !found && i < d->nstake; i++)
        found = c->stakeholder_is_mobilizer(c->opaque, d->account_id, d->stake[i]);
    d->m_epoch = c->tier_epoch;
    d->m_nstake = d->nstake;
    d->m_result = found;
    return found;
}

/* "%.0f" of v (whole days, |v| < 2^63) into out (DS_FMT_INT_MAX + 1
 * bytes): rounded to nearest, ties to even, and "-0" for a negative v that
 * rounds to zero, as printf does */
static void fmt_days(char *out, double v) {
    double r = nearbyint(v);
    if (r == 0 && signbit(v)) {
        memcpy(out, "-0", 3);
        return;
    }
    ds_fmt_i64(out, (int64_t)r);
}

static void emit(ds_deal_t *d, const ds_watch_ctx_t *c, int kind, int state, int verified) {
    const ds_rules_t *r = c->rules;
    alert_st_t *a = &d->al[kind];
    const char *missing[64];
    size_t nm = 0;
    if (verified != DS_NONE) {
        const ds_stage_rule_t *st = &r->stall.stages[verified];
        for (size_t i = 0; i < st->verifiers_count && nm < 64; i++)
            if (!observed(d, st->verifiers[i]))
                missing[nm++] = st->verifiers[i];
    }
    /* the text without printf: an evaluation can emit several alerts and
     * a replay many; the same text as "%d" and "%.0f" give */
    char id[600], msg[1400], miss[700], ep[DS_FMT_INT_MAX], lv[DS_FMT_INT_MAX],
        un[DS_FMT_INT_MAX], days[DS_FMT_INT_MAX + 1];
    ds_fmt_i64(ep, a->episode);
    ds_fmt_i64(lv, a->level);
    ds_fmt_i64(un, d->unanswered);
    const char *actions = d->unanswered == 1 ? " seller action" : " seller actions";
    ds_fmt_join(id, sizeof(id), d->id, ":", ds_alert_kind_name(kind), ":", ep, ":",
                ds_alert_state_name(state), ":", lv, NULL);
    size_t o = 0;
    miss[0] = '\0';
    for (size_t i = 0; i < nm && o < sizeof(miss) - 1; i++)
        o += ds_fmt_join(miss + o, sizeof(miss) - o, i ? ", " : "", missing[i], NULL);
    double quiet = (double)(c->now - quiet_start(d)) / DS_DAY_MS;
    fmt_days(days, quiet);
    bool one_day = !strcmp(days, "1");
    char where[900];
    if (verified != DS_NONE)
        ds_fmt_join(where, sizeof(where), "buyer is verifiably in ",
                    ds_purchase_stage_words(verified), ", missing ", miss, NULL);
    else
        ds_fmt_join(where, sizeof(where), "every stage is verified", NULL);
    const char *acct = d->account_id ? d->account_id : "no account";
    if (state == DS_AS_RESOLVED) {
        /* why it stopped holding, in words that are true of each way it
         * can: a closed deal, or what changed of the condition */
        const char *why;
        switch (kind) {
        case DS_AK_NO_BUYER_SIGNAL:
            why = verified == DS_NONE ? "every stage is verified" : "a buyer signal arrived";
            break;
        case DS_AK_ONE_SIDED:
            why = d->unanswered == 0 ? "the buyer answered the seller's actions"
                                     : "fewer seller actions are unanswered than the limit";
            break;
        case DS_AK_UNVERIFIED_STAGE:
            why = "the reported stage is no longer ahead of what the buyer verified";
            break;
        default:
            why = mobilizer_required(c->rules, verified, d->reported)
                      ? "a mobilizer is known"
                      : "the deal is no longer at a stage that requires a mobilizer";
        }
        ds_fmt_join(msg, sizeof(msg), "Deal ", d->id, " (account ", acct, "): ",
                    ds_alert_kind_name(kind), " resolved, ",
                    d->outcome ? "the deal is closed" : why,
                    d->outcome ? (d->outcome == 1 ? " (won)" : " (lost)") : "", "; ", where, ".",
                    NULL);
    } else {
        char rem[48] = "";
        if (state == DS_AS_REMINDER)
            ds_fmt_join(rem, sizeof(rem), " (reminder ", lv, ")", NULL);
        switch (kind) {
        case DS_AK_NO_BUYER_SIGNAL:
            ds_fmt_join(msg, sizeof(msg), "Deal ", d->id, " (account ", acct, ") stalled", rem,
                        ": ", un, actions, " and ", days,
                        one_day ? " day without a buyer signal; "
                                : " days without a buyer signal; ",
                        where, ". Stop and reassess.", NULL);
            break;
        case DS_AK_ONE_SIDED:
            ds_fmt_join(msg, sizeof(msg), "Deal ", d->id, " (account ", acct, ") is one-sided", rem,
                        ": ", un, actions, " in a row without a buyer response (", days,
                        one_day ? " day since the last buyer signal); "
                                : " days since the last buyer signal); ",
                        where, ". Stop chasing and get a commitment from the buyer.", NULL);
            break;
        case DS_AK_UNVERIFIED_STAGE:
            ds_fmt_join(msg, sizeof(msg), "Deal ", d->id, " (account ", acct,
                        ") is reported in ", ds_purchase_stage_words(d->reported), " but ", where,
                        rem, "; where is the deal, and how do you know?", NULL);
            break;
        default:
            ds_fmt_join(msg, sizeof(msg), "Deal ", d->id, " (account ", acct, ") has reached ",
                        ds_purchase_stage_words(verified != DS_NONE && verified > d->reported
                                                    ? verified
                                                    : d->reported),
                        " without a known mobilizer", rem, "; ", where,
                        ". Find the customer stakeholder who will drive the purchase.", NULL);
        }
    }
    ds_deal_alert_t al = {
        .alert_id = id,
        .deal_id = d->id,
        .account_id = d->account_id ? d->account_id : "",
        .owner_id = d->owner_id,
        .kind = kind,
        .state = state,
        .level = a->level,
        .reported_stage = d->reported,
        .verified_stage = verified,
        .missing_verifiers = missing,
        .missing_verifiers_count = nm,
        .last_buyer_signal_at = d->last_buyer,
        .last_seller_activity_at = d->last_seller,
        .unanswered_seller_actions = d->unanswered,
        .quiet_days = quiet,
        .message = msg,
        .raised_at = c->now,
    };
    if (c->alert)
        c->alert(c->opaque, &al);
}

void ds_deal_evaluate(ds_deal_t *d, const ds_watch_ctx_t *c) {
    if (!d->opened || d->outcome)
        return;
    const ds_rules_t *r = c->rules;
    int v = verified_stage_cache(d, r);
    bool holds[NK];
    holds[DS_AK_NO_BUYER_SIGNAL] =
        v != DS_NONE && (c->now - c->grace_ms) - quiet_start(d) > max_quiet_ms(r, v);
    holds[DS_AK_ONE_SIDED] = d->unanswered >= r->stall.max_unanswered_seller_actions;
    holds[DS_AK_UNVERIFIED_STAGE] = v != DS_NONE && d->reported > v;
    holds[DS_AK_NO_MOBILIZER] = mobilizer_required(r, v, d->reported) && !mobilizer(d, c);
    int64_t renotify = ds_days_ms(r->stall.renotify_days);
    for (int k = 0; k < NK; k++) {
        alert_st_t *a = &d->al[k];
        if (holds[k] && !a->open) {
            a->open = 1;
            a->episode++;
            a->level = 1;
            a->last_notified = c->now;
            emit(d, c, k, DS_AS_OPEN, v);
        } else if (holds[k] && a->open && c->now - a->last_notified >= renotify) {
            a->level++;
            a->last_notified = c->now;
            emit(d, c, k, DS_AS_REMINDER, v);
        } else if (!holds[k] && a->open) {
            a->open = 0;
            emit(d, c, k, DS_AS_RESOLVED, v);
        }
    }
}

/* What is in the window the last event left (see struct ds_deal). */
static ds_dedupe_clock_t seen_clock(const ds_deal_t *d) {
    return (ds_dedupe_clock_t){d->max_t, d->seen_win, d->seen_last, d->seen_exact};
}

/* Append h to *a (n used of *cap); false when out of memory. */
static bool note(uint64_t **a, uint32_t *n, uint32_t *cap, uint64_t h) {
    if (*n == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 4;
        uint64_t *x = realloc(*a, nc * sizeof(*x));
        if (!x)
            return false;
        *a = x;
        *cap = nc;
    }
    (*a)[(*n)++] = h;
    return true;
}

/* An id a compaction drops, noted for the write. */
static int note_gone(void *opaque, uint64_t h) {
    ds_deal_t *d = opaque;
    if (!note(&d->s_del, &d->ns_del, &d->cs_del, h))
        d->whole = true; /* out of memory: the next write is whole */
    return 0;
}

/* Drop the entries of seen not live under c, noting them for the write. */
static void seen_prune(ds_deal_t *d, const ds_dedupe_clock_t *c) {
    for (uint32_t i = 0; d->track && d->spilled && i < d->seen.n; i++)
        if (!ds_dedupe_live(c, &d->seen.e[i]))
            note_gone(d, d->seen.e[i].h);
    ds_dedupe_prune(&d->seen, c);
}

/* Whether ev's id is in the window (a duplicate); then the window moves
 * to the largest occurred_at seen and holds ev's id.  What is in the
 * window after the call: every id whose time is within window_days of the
 * largest occurred_at seen, and ev's (however old). */
static bool dedupe(ds_deal_t *d, const ds_crm_event_t *ev, double window_days) {
    uint64_t h = ds_dedupe_hash(ev->event_id, strlen(ev->event_id));
    int64_t win = ds_days_ms(window_days);
    ds_dedupe_clock_t c = seen_clock(d);
    if (!d->seen_exact && win != d->seen_win) {
        /* the old window's last verdicts, before the new one applies */
        seen_prune(d, &c);
        c.all = d->seen_exact = true;
    }
    const ds_dedupe_entry_t *x = ds_dedupe_find(&d->seen, h);
    bool dup = x && ds_dedupe_live(&c, x);
    if (ev->occurred_at > d->max_t)
        d->max_t = ev->occurred_at;
    d->seen_win = win;
    d->seen_exact = false;
    d->seen_last = h;
    if (dup)
        return true;
    /* nothing is dropped here (all): only a compaction drops */
    if (ds_dedupe_put(&d->seen, h, ev->occurred_at, &(ds_dedupe_clock_t){.all = true})) {
        d->seen_last = 0; /* out of memory: applied, not remembered */
        return false;
    }
    if (d->track && d->spilled && !note(&d->s_add, &d->ns_add, &d->cs_add, h))
        d->whole = true;
    ds_dedupe_clock_t now = seen_clock(d);
    int (*gone)(void *, uint64_t) = d->track && d->spilled ? note_gone : NULL;
    (void)ds_dedupe_compact(&d->seen, &d->compact_at, &now, gone, d); /* never stopped */
    if (!d->spilled && d->seen.n > SPILL_AT) {
        d->spilled = true;
        d->whole = true; /* the next write stores every id in the key */
    }
    return false;
}

ds_err_t ds_deal_apply(ds_deal_t *d, const ds_crm_event_t *ev, const ds_watch_ctx_t *c) {
    if (d->outcome)
        return DS_ERR_IGNORED;
    if (dedupe(d, ev, c->rules->dedupe_window_days))
        return DS_ERR_DUPLICATE;
    int64_t t = ev->occurred_at;
    bool first = !d->opened;
    if (first) {
        d->opened = 1;
        d->opened_at = t;
        d->reported = (ev->type == DS_CRM_DEAL_OPENED && ev->stage != DS_NONE)
                          ? ev->stage
                          : DS_PS_RECOGNIZE_NEED;
    }
    /* an ignored event (a later DEAL_OPENED, a STAGE_CHANGED without a
     * stage) moves the clocks but sets nothing of the deal, its owner and
     * account included */
    bool ignored = !first && (ev->type == DS_CRM_DEAL_OPENED ||
                              (ev->type == DS_CRM_STAGE_CHANGED && ev->stage == DS_NONE));
    if (!ignored && set_str(&d->account_id, ev->account_id))
        d->m_epoch = 0; /* the tiers are the account's */
    if (!ignored)
        set_str(&d->owner_id, ev->owner_id);
    switch (ev->type) {
    case DS_CRM_DEAL_OPENED:
        if (!first)
            return DS_ERR_IGNORED;
        break;
    case DS_CRM_STAGE_CHANGED:
        if (ev->stage == DS_NONE)
            return DS_ERR_IGNORED;
        d->reported = ev->stage;
        break;
    case DS_CRM_SELLER_ACTIVITY:
        d->unanswered++;
        if (d->last_seller == DS_TS_NULL || t > d->last_seller)
            d->last_seller = t;
        break;
    case DS_CRM_BUYER_SIGNAL:
        if (ev->signal && ev->signal[0] && !observed(d, ev->signal)) {
            sig_t_ *n = realloc(d->sigs, (d->nsigs + 1) * sizeof(*n));
            if (n) {
                d->sigs = n;
                if ((d->sigs[d->nsigs].code = strdup(ev->signal))) {
                    d->sigs[d->nsigs].at = t;
                    d->nsigs++;
                }
            }
        }
        if (ev->signal && !strcmp(ev->signal, "mobilizer_committed"))
            d->mobilizer_known = 1;
        if (ev->contact_role == DS_ROLE_MOBILIZER)
            d->mobilizer_known = 1;
        add_stakeholder(d, ev->contact_id);
        d->unanswered = 0;
        if (d->last_buyer == DS_TS_NULL || t > d->last_buyer)
            d->last_buyer = t;
        break;
    case DS_CRM_STAKEHOLDER_ADDED:
        add_stakeholder(d, ev->contact_id);
        if (ev->contact_role == DS_ROLE_MOBILIZER)
            d->mobilizer_known = 1;
        break;
    case DS_CRM_DEAL_WON:
    case DS_CRM_DEAL_LOST: {
        d->outcome = ev->type == DS_CRM_DEAL_WON ? 1 : 2;
        int v = verified_stage_cache(d, c->rules);
        for (int k = 0; k < NK; k++) {
            if (d->al[k].open) {
                d->al[k].open = 0;
                emit(d, c, k, DS_AS_RESOLVED, v);
            }
        }
        return DS_ERR_OK;
    }
    default:
        return DS_ERR_IGNORED;
    }
    ds_deal_evaluate(d, c);
    return DS_ERR_OK;
}

int64_t ds_deal_next_deadline(const ds_deal_t *d, const ds_rules_t *r) {
    if (!d->opened || d->outcome)
        return INT64_MAX;
    int64_t best = INT64_MAX;
    int v = verified_stage(d, r);
    if (v != DS_NONE && !d->al[DS_AK_NO_BUYER_SIGNAL].open)
        best = quiet_start(d) + max_quiet_ms(r, v) + 1;
    int64_t renotify = ds_days_ms(r->stall.renotify_days);
    /* at least 1 ms on: with renotify_days 0 a REMINDER is due at every
     * evaluation, and a clock check must not find the deal due again at
     * the time it was just evaluated (it would evaluate it for ever) */
    if (renotify < 1)
        renotify = 1;
    for (int k = 0; k < NK; k++)
        if (d->al[k].open && d->al[k].last_notified + renotify < best)
            best = d->al[k].last_notified + renotify;
    return best;
}

const char *ds_deal_id(const ds_deal_t *d) { return d->id; }
int64_t ds_deal_opened_at(const ds_deal_t *d) {
    return d->opened ? d->opened_at : DS_TS_NULL;
}
int64_t ds_deal_quiet_start(const ds_deal_t *d) {
    return d->opened ? quiet_start(d) : DS_TS_NULL;
}
int ds_deal_verified_stage(const ds_deal_t *d, const ds_rules_t *r) {
    return verified_stage(d, r);
}
int ds_deal_outcome(const ds_deal_t *d) {
    return d->outcome == 1 ? DS_CRM_DEAL_WON : d->outcome == 2 ? DS_CRM_DEAL_LOST : DS_NONE;
}
const char *ds_deal_account_id(const ds_deal_t *d) { return d->account_id; }
bool ds_deal_is_closed(const ds_deal_t *d) { return d->outcome != 0; }
bool ds_deal_mobilizer_known(const ds_deal_t *d) { return d->mobilizer_known; }
size_t ds_deal_stakeholder_count(const ds_deal_t *d) { return d->nstake; }
const char *ds_deal_stakeholder(const ds_deal_t *d, size_t i) {
    return i < d->nstake ? d->stake[i] : NULL;
}

/* ---- what a write stores of the stakeholders and the dedupe ids ----------- */

void ds_deal_track(ds_deal_t *d) {
    d->track = true;
    d->whole = true; /* what is stored is not known yet */
}

void ds_deal_kept_apart(const ds_deal_t *d, bool *stakeholders, bool *ids) {
    *stakeholders = d->side && d->stake_stored > 0;
    *ids = d->side && d->spilled;
}

ds_err_t ds_deal_load_stakeholder(ds_deal_t *d, const char *contact_id) {
    if (!d->side)
        return DS_ERR_OK; /* an earlier version's state holds them */
    uint32_t n = d->nstake;
    add_stakeholder(d, contact_id);
    return d->nstake > n || !contact_id || !contact_id[0] ? DS_ERR_OK : DS_ERR_NOMEM;
}

ds_err_t ds_deal_load_seen(ds_deal_t *d, uint64_t h, int64_t t) {
    if (!d->side || !d->spilled)
        return DS_ERR_OK; /* the record holds them */
    if (!h)
        return DS_ERR_UNDECODABLE;
    return ds_dedupe_put(&d->seen, h, t, &(ds_dedupe_clock_t){.all = true});
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* a sorted without repeats; its new length */
static uint32_t sort_unique(uint64_t *a, uint32_t n) {
    if (n < 2)
        return n;
    qsort(a, n, sizeof(*a), cmp_u64);
    uint32_t k = 1;
    for (uint32_t i = 1; i < n; i++)
        if (a[i] != a[k - 1])
            a[k++] = a[i];
    return k;
}

bool ds_deal_changes(ds_deal_t *d, bool whole, size_t *first_stakeholder,
                     void (*put)(void *, uint64_t, int64_t), void (*del)(void *, uint64_t),
                     void *opaque) {
    whole = whole || d->whole || !d->track;
    *first_stakeholder = whole ? 0 : d->stake_written;
    if (!d->spilled)
        return whole; /* the ids are in the record */
    if (whole) {
        for (uint32_t i = 0; i < d->seen.n; i++)
            put(opaque, d->seen.e[i].h, d->seen.e[i].t);
        return true;
    }
    d->ns_add = sort_unique(d->s_add, d->ns_add);
    d->ns_del = sort_unique(d->s_del, d->ns_del);
    for (uint32_t i = 0; i < d->ns_add; i++) {
        const ds_dedupe_entry_t *x = ds_dedupe_find(&d->seen, d->s_add[i]);
        if (x) /* else dropped since: among s_del */
            put(opaque, x->h, x->t);
    }
    for (uint32_t i = 0; i < d->ns_del; i++)
        if (!ds_dedupe_find(&d->seen, d->s_del[i])) /* else put again since */
            del(opaque, d->s_del[i]);
    return false;
}

void ds_deal_written(ds_deal_t *d) {
    d->stake_written = d->nstake;
    d->ns_add = d->ns_del = 0;
    d->whole = false;
    if (d->cs_add > 64) { /* a burst's room is not kept */
        free(d->s_add);
        d->s_add = NULL;
        d->cs_add = 0;
    }
    if (d->cs_del > 64) {
        free(d->s_del);
        d->s_del = NULL;
        d->cs_del = 0;
    }
}

static ds_err_t pf(ds_buf_t *o, const char *k, const char *v) {
    ds_err_t e = ds_buf_append(o, k, strlen(k) + 1);
    return e ? e : ds_buf_append(o, v ? v : "", (v ? strlen(v) : 0) + 1);
}

static void ts(char *b, int64_t t) { /* b: DS_FMT_INT_MAX bytes */
    if (t == DS_TS_NULL)
        b[0] = '\0';
    else
        ds_fmt_i64(b, t);
}

/* ",item" (or "item" for the first) into o */
static ds_err_t put_item(ds_buf_t *o, int *n, const char *s) {
    ds_err_t e = (*n)++ ? ds_buf_append(o, ",", 1) : DS_ERR_OK;
    return e ? e : ds_buf_append(o, s, strlen(s));
}

/* ",item<sep>number" (or without the comma for the first) into o */
static ds_err_t put_item_num(ds_buf_t *o, int *n, const char *s, char sep, int64_t v) {
    char num[DS_FMT_INT_MAX + 1];
    num[0] = sep;
    ds_fmt_i64(num + 1, v);
    ds_err_t e = put_item(o, n, s);
    return e ? e : ds_buf_append(o, num, strlen(num));
}

ds_err_t ds_deal_public_fields(const ds_deal_t *d, const ds_rules_t *r, ds_buf_t *o) {
    char a[DS_FMT_INT_MAX], b[DS_FMT_INT_MAX], c[DS_FMT_INT_MAX], u[DS_FMT_INT_MAX];
    int v = verified_stage(d, r);
    ts(a, d->opened_at);
    ts(b, d->last_buyer);
    ts(c, d->last_seller);
    ds_fmt_i64(u, d->unanswered);
    ds_err_t e = DS_ERR_OK;
    e = e ? e : pf(o, "deal_id", d->id);
    e = e ? e : pf(o, "account_id", d->account_id);
    e = e ? e : pf(o, "owner_id", d->owner_id);
    e = e ? e : pf(o, "state", d->outcome == 1 ? "won" : d->outcome == 2 ? "lost" : "open");
    e = e ? e : pf(o, "reported_stage", ds_purchase_stage_name(d->reported));
    e = e ? e : pf(o, "verified_stage", v == DS_NONE ? "" : ds_purchase_stage_name(v));
    e = e ? e : pf(o, "opened_at", a);
    e = e ? e : pf(o, "last_buyer_signal_at", b);
    e = e ? e : pf(o, "last_seller_activity_at", c);
    e = e ? e : pf(o, "unanswered_seller_actions", u);
    /* the lists are joined straight into o: key NUL item,item NUL (the
     * stakeholders are a set of their own: ds_deal_changes) */
    int n = 0;
    e = e ? e : pf(o, "mobilizer_known", d->mobilizer_known ? "1" : "0");
    e = e ? e : ds_buf_append(o, "signals", sizeof("signals"));
    n = 0;
    for (uint32_t i = 0; !e && i < d->nsigs; i++)
        e = put_item_num(o, &n, d->sigs[i].code, '=', d->sigs[i].at);
    e = e ? e : ds_buf_append(o, "", 1);
    e = e ? e : ds_buf_append(o, "open_alerts", sizeof("open_alerts"));
    n = 0;
    for (int k = 0; !e && k < NK; k++)
        if (d->al[k].open)
            e = put_item_num(o, &n, ds_alert_kind_name(k), ':', d->al[k].level);
    e = e ? e : ds_buf_append(o, "", 1);
    e = e ? e : ds_buf_append(o, "missing_verifiers", sizeof("missing_verifiers"));
    n = 0;
    if (v != DS_NONE)
        for (size_t i = 0; !e && i < r->stall.stages[v].verifiers_count; i++)
            if (!observed(d, r->stall.stages[v].verifiers[i]))
                e = put_item(o, &n, r->stall.stages[v].verifiers[i]);
    e = e ? e : ds_buf_append(o, "", 1);
    return e;
}

/* Version 2 (version 1 still loads) writes max_t first and every other
 * time relative to it (ds_buf_put_time: small, the deal's
 * times lie within days of it), as the scorer's state does: less to
 * format, send and store at each write.  Version 3 (versions 1 and 2
 * still load) leaves out the stakeholders and the dedupe ids, which the
 * watcher keeps in keys of their own and writes as they change
 * (ds_deal_changes), and keeps the dedupe window's clock instead. */
#define VERSION 3


static ds_err_t get_t(ds_reader_t *r, int ver, int64_t base, int64_t *t) {
    return ver == 1 ? ds_get_i64(r, t) : ds_get_time(r, base, t);
}

ds_err_t ds_deal_save(const ds_deal_t *d, ds_buf_t *o) {
    int64_t b = d->max_t;
    ds_err_t e = ds_buf_put_u8(o, VERSION);
    e = e ? e : ds_buf_put_str(o, d->id);
    e = e ? e : ds_buf_put_str(o, d->account_id);
    e = e ? e : ds_buf_put_str(o, d->owner_id);
    e = e ? e : ds_buf_put_u8(o, d->opened);
    e = e ? e : ds_buf_put_u8(o, d->outcome);
    e = e ? e : ds_buf_put_u8(o, d->mobilizer_known);
    e = e ? e : ds_buf_put_varint(o, (uint64_t)d->reported);
    e = e ? e : ds_buf_put_svarint(o, b);
    e = e ? e : ds_buf_put_time(o, b, d->opened_at);
    e = e ? e : ds_buf_put_time(o, b, d->last_buyer);
    e = e ? e : ds_buf_put_time(o, b, d->last_seller);
    e = e ? e : ds_buf_put_varint(o, (uint64_t)d->unanswered);
    e = e ? e : ds_buf_put_varint(o, d->nsigs);
    for (uint32_t i = 0; !e && i < d->nsigs; i++) {
        e = ds_buf_put_str(o, d->sigs[i].code);
        e = e ? e : ds_buf_put_time(o, b, d->sigs[i].at);
    }
    for (int k = 0; !e && k < NK; k++) {
        e = ds_buf_put_u8(o, d->al[k].open);
        e = e ? e : ds_buf_put_varint(o, (uint64_t)d->al[k].episode);
        e = e ? e : ds_buf_put_varint(o, (uint64_t)d->al[k].level);
        e = e ? e : ds_buf_put_time(o, b, d->al[k].last_notified);
    }
    e = e ? e : ds_buf_put_svarint(o, d->seen_win);
    e = e ? e : ds_buf_put_i64(o, (int64_t)d->seen_last);
    e = e ? e : ds_buf_put_u8(o, d->seen_exact);
    e = e ? e : ds_buf_put_varint(o, d->compact_at);
    e = e ? e : ds_buf_put_u8(o, d->spilled);
    e = e ? e : ds_buf_put_varint(o, d->nstake);
    if (!e && !d->spilled) /* every id, by hash: the set as it is */
        e = ds_dedupe_save(&d->seen, &(ds_dedupe_clock_t){.all = true}, b, o);
    return e;
}

#define GET(x)                                                                                     \
    do {                                                                                           \
        if ((x))                                                                                   \
            goto bad;                                                                              \
    } while (0)

ds_deal_t *ds_deal_load(const void *p, size_t n, ds_err_t *err) {
    ds_reader_t r;
    ds_reader_init(&r, p, n);
    ds_deal_t *d = calloc(1, sizeof(*d));
    if (!d) {
        *err = DS_ERR_NOMEM;
        return NULL;
    }
    uint8_t ver, u8;
    uint64_t v, cnt;
    GET(ds_get_u8(&r, &ver));
    GET(ver < 1 || ver > VERSION);
    GET(ds_get_str(&r, &d->id));
    GET(!d->id);
    GET(ds_get_str(&r, &d->account_id));
    GET(ds_get_str(&r, &d->owner_id));
    GET(ds_get_u8(&r, &d->opened));
    GET(ds_get_u8(&r, &d->outcome));
    GET(ds_get_u8(&r, &d->mobilizer_known));
    GET(ds_get_varint(&r, &v) || v >= DS_PS__COUNT);
    d->reported = (int32_t)v;
    if (ver > 1)
        GET(ds_get_svarint(&r, &d->max_t));
    /* version 1 has max_t after these: its times are absolute */
    GET(get_t(&r, ver, d->max_t, &d->opened_at));
    GET(get_t(&r, ver, d->max_t, &d->last_buyer));
    GET(get_t(&r, ver, d->max_t, &d->last_seller));
    GET(ds_get_varint(&r, &v));
    d->unanswered = (int32_t)v;
    if (ver == 1)
        GET(ds_get_i64(&r, &d->max_t));
    GET(ds_get_varint(&r, &cnt) || cnt > n);
    d->sigs = calloc(cnt ? cnt : 1, sizeof(*d->sigs));
    GET(!d->sigs);
    for (uint64_t i = 0; i < cnt; i++) {
        GET(ds_get_str(&r, &d->sigs[i].code) || !d->sigs[i].code);
        d->nsigs++;
        GET(get_t(&r, ver, d->max_t, &d->sigs[i].at));
    }
    ds_dedupe_init(&d->seen, false);
    d->compact_at = DS_DEDUPE_COMPACT_MIN;
    if (ver < 3) {
        GET(ds_get_varint(&r, &cnt) || cnt > n);
        d->stake = calloc(cnt ? cnt : 1, sizeof(char *));
        GET(!d->stake);
        d->cstake = cnt ? (uint32_t)cnt : 1;
        for (uint64_t i = 0; i < cnt; i++) {
            GET(ds_get_str(&r, &d->stake[i]) || !d->stake[i]);
            d->nstake++;
        }
        stake_reindex(d);
    }
    for (int k = 0; k < NK; k++) {
        GET(ds_get_u8(&r, &u8));
        d->al[k].open = u8;
        GET(ds_get_varint(&r, &v));
        d->al[k].episode = (int32_t)v;
        GET(ds_get_varint(&r, &v));
        d->al[k].level = (int32_t)v;
        GET(get_t(&r, ver, d->max_t, &d->al[k].last_notified));
    }
    if (ver < 3) {
        GET(ds_dedupe_load(&d->seen, &r, d->max_t, ver == 1));
        /* what was saved is the window */
        d->seen_exact = true;
        if (d->seen.n >= DS_DEDUPE_COMPACT_MIN / 2)
            d->compact_at = 2 * d->seen.n;
        d->spilled = d->seen.n > SPILL_AT;
    } else {
        int64_t last;
        GET(ds_get_svarint(&r, &d->seen_win));
        GET(ds_get_i64(&r, &last));
        d->seen_last = (uint64_t)last;
        GET(ds_get_u8(&r, &u8));
        d->seen_exact = u8 != 0;
        GET(ds_get_varint(&r, &v) || !v || v > UINT32_MAX);
        d->compact_at = (uint32_t)v;
        GET(ds_get_u8(&r, &u8) || u8 > 1);
        d->spilled = u8;
        GET(ds_get_varint(&r, &v) || v > UINT32_MAX);
        d->stake_stored = (uint32_t)v;
        if (!d->spilled)
            GET(ds_dedupe_load(&d->seen, &r, d->max_t, false));
        d->side = true;
    }
    GET(r.p != r.end);
    return d;
bad:
    ds_deal_destroy(d);
    *err = DS_ERR_UNDECODABLE;
    return NULL;
}

size_t ds_deal_mem(const ds_deal_t *d) {
    size_t m = sizeof(*d) + strlen(d->id) + 1;
    m += d->account_id ? strlen(d->account_id) + 1 : 0;
    m += d->owner_id ? strlen(d->owner_id) + 1 : 0;
    for (uint32_t i = 0; i < d->nsigs; i++)
        m += sizeof(sig_t_) + strlen(d->sigs[i].code) + 1;
    m += d->cstake * sizeof(char *);
    for (uint32_t i = 0; i < d->nstake; i++)
        m += strlen(d->stake[i]) + 1;
    m += (size_t)d->nstake_ix * sizeof(uint32_t);
    m += ((size_t)d->cs_add + d->cs_del) * sizeof(uint64_t);
    return m + ds_dedupe_mem(&d->seen);
}
