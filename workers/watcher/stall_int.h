/*
 * stall_int.h — the data of a deal, shared by the files of the stall
 * domain (stall.c: the rules, the alerts and the public view;
 * stall_store.c: the deal as stored, its record and what a write carries
 * of its stakeholders and dedupe ids) and by their unit tests.  Not a
 * public header.
 */
#ifndef DS_STALL_INT_H
#define DS_STALL_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "ds_dedupe.h"
#include "stall.h"

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
#define SPILL_AT 64   /* more ids than this: they leave the record */

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
    /* loaded from a state of version 3: its stakeholders and ids may be
     * kept apart (ds_deal_kept_apart) */
    bool side;
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

/* Add stakeholder c (nothing for NULL, "" or one already there; nothing
 * when out of memory: the count tells). */
void ds_deal_add_stakeholder(ds_deal_t *d, const char *c);
/* Rebuild the index of stake[] (none below INDEX_FROM, or when out of
 * memory: then a linear search). */
void ds_deal_stake_reindex(ds_deal_t *d);

#endif
