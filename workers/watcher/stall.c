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
 *
 * The deal's data is stall_int.h's; its stored form (the record, and what
 * a write carries of the stakeholders and the dedupe ids) stall_store.c's.
 */
#include "stall.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_dedupe.h"
#include "ds_fmt.h"
#include "ds_hash.h"
#include "stall_int.h"

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

void ds_deal_stake_reindex(ds_deal_t *d) {
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

void ds_deal_add_stakeholder(ds_deal_t *d, const char *c) {
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
        ds_deal_stake_reindex(d); /* first built, or grown */
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

/* What is in the window the last event left (see struct ds_deal, stall_int.h). */
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
        ds_deal_add_stakeholder(d, ev->contact_id);
        d->unanswered = 0;
        if (d->last_buyer == DS_TS_NULL || t > d->last_buyer)
            d->last_buyer = t;
        break;
    case DS_CRM_STAKEHOLDER_ADDED:
        ds_deal_add_stakeholder(d, ev->contact_id);
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
    e = e ? e : pf(o, "mobilizer_known", d->mobilizer_known ? "1" : "0");
    e = e ? e : ds_buf_append(o, "signals", sizeof("signals"));
    int n = 0;
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
