/*
 * backtest.h — CRM history replayed through the watcher's stall logic in
 * memory, and each alert kind judged against the deals' outcomes.  Pure C:
 * the caller decodes the records and hands each event with its partition,
 * in partition order; nothing here reads Kafka, Redis or Avro.
 *
 * The replay is the watcher's under `clock: event`: each partition's
 * watermark and deadline index (partclock.h), every deal applied and
 * evaluated by stall.h at the watermark, due deals evaluated after every
 * event.  Without Redis no stakeholder tier is known: only a
 * mobilizer_committed signal or a contact with role MOBILIZER make a deal's
 * mobilizer known (as for a watcher whose scorer has stored no tier).
 *
 * Memory: an open deal holds its stall state, its alert counts and (with
 * opts.spells) its quiet spells.  A closed deal's state is freed; what
 * stays of it is an 8-byte hash of its id (its later events are ignored,
 * as the watcher ignores them), its cycle length (8 bytes), the lead time
 * of each kind a lost deal had open (8 bytes each) and, with opts.spells,
 * a won deal's quiet spells (16 bytes each).  Deals first seen before
 * opts.since are remembered by an 8-byte hash too.
 *
 * Cost: one event is one hash lookup, one ds_deal_apply and O(log deals)
 * per deadline scheduled or due.  Not thread-safe.
 */
#ifndef DS_BACKTEST_H
#define DS_BACKTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ds_err.h"
#include "rules.h"

typedef struct ds_backtest ds_backtest_t;

typedef struct ds_backtest_opts {
    /* Event-time range [since, until): events outside it are not applied
     * and do not move the clock, and a deal first seen before `since` is
     * left out (its later events too).  INT64_MIN / INT64_MAX: unbounded. */
    int64_t since, until;
    /* Keep won deals' quiet spells per verified stage (ds_backtest_spells). */
    bool spells;
} ds_backtest_opts_t;

/* The figures of one alert kind (or of any kind, or of AGED).  Ratios and
 * the median are NAN when their denominator is empty. */
typedef struct ds_bt_figures {
    int64_t alerts_opened;   /* OPEN transitions (a deal alerted twice counts 2) */
    int64_t deals_alerted;   /* deals with at least one */
    int64_t won, lost, open; /* the deals alerted, by outcome */
    double precision;        /* lost / (won + lost) of the deals alerted */
    double recall;           /* deals alerted and lost / lost deals */
    double median_lead_days; /* first OPEN → DEAL_LOST, of the deals alerted and lost */
    double noise;            /* deals alerted and won / won deals */
} ds_bt_figures_t;

typedef struct ds_bt_report {
    int64_t events;       /* events handed to ds_backtest_apply */
    int64_t applied;      /* changed a deal (ds_deal_apply said OK) */
    int64_t duplicates;   /* event ids seen before (applied once) */
    int64_t ignored;      /* after the deal closed, a later DEAL_OPENED, … */
    int64_t out_of_range; /* outside [since, until), or of a deal opened before */
    int64_t deals, won, lost, open;
    double median_won_cycle_days; /* opening → DEAL_WON; NAN: no won deal */
    double aged_after_days;       /* 1.65 × median_won_cycle_days */
    ds_bt_figures_t kind[DS_AK__COUNT];
    ds_bt_figures_t any;  /* a deal alerted by any of the four kinds */
    ds_bt_figures_t aged; /* report-only: open longer than aged_after_days */
} ds_bt_report_t;

/* "It takes 65 % longer to lose a deal than to win one." */
#define DS_BT_AGED_FACTOR 1.65

/** A replay under `rules` (borrowed: it must outlive the backtest and not
 *  change).  NULL when out of memory. */
ds_backtest_t *ds_backtest_new(const ds_rules_t *rules, const ds_backtest_opts_t *opts);
void ds_backtest_destroy(ds_backtest_t *bt);

/** Replay one decoded event of `partition` (>= 0).  DS_ERR_NOMEM or
 *  DS_ERR_INVAL (a partition over 1,048,575); the event is then lost. */
ds_err_t ds_backtest_apply(ds_backtest_t *bt, int32_t partition, const ds_crm_event_t *ev) DS_WUR;

/** The figures so far: closed deals as they closed, open deals as they
 *  stand at their partition's watermark.  May be called at any time. */
void ds_backtest_report(ds_backtest_t *bt, ds_bt_report_t *out);

/** Deals whose state is held (the open ones). */
size_t ds_backtest_open_deals(const ds_backtest_t *bt);

/** With opts.spells: the quiet spells of the won deals while their verified
 *  stage was `stage` (from the opening or a buyer signal to the next buyer
 *  signal), in days, in no particular order; *deals gets how many won
 *  deals contributed at least one.  NULL when none. */
const double *ds_backtest_spells(const ds_backtest_t *bt, int stage, size_t *n, size_t *deals);

/** The median of v[0 .. n) (sorted in place): the middle value, or the
 *  mean of the two middle values of an even count; NAN when n is 0. */
double ds_backtest_median(double *v, size_t n);

/* ---- output -------------------------------------------------------------
 * What was read, for the report's first lines. */
typedef struct ds_bt_source {
    const char *topic;
    int64_t records;      /* records read */
    int64_t undecodable;  /* records the watcher would send to the DLQ */
    int64_t since, until; /* as in ds_backtest_opts_t */
} ds_bt_source_t;

/** The report as an aligned table of at most 100 columns: one row per
 *  kind.  With n == 2 (--compare), one block per kind with each figure of
 *  reps[0] and reps[1] side by side.  names[i]: the rules of reps[i]. */
void ds_backtest_print_table(FILE *out, const ds_bt_source_t *src, const char *const *names,
                             const ds_bt_report_t *const *reps, size_t n);
/** The same as one JSON object (one line). */
void ds_backtest_print_json(FILE *out, const ds_bt_source_t *src, const char *const *names,
                            const ds_bt_report_t *const *reps, size_t n);

#endif
