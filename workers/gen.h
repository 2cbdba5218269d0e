/*
 * gen.h — the event generator, a library that `dealsignal gen`, the demo,
 * the benchmarks and the tests use: a seeded, reproducible model of a
 * company's activity stream: accounts with buying groups of 3-8 leads walking Spark → Introduce →
 * Confront content (or landing on B-state content), sharing it, attending
 * webinars together; deals moving through the purchase stages with seller
 * activity and buyer signals, their outcome following the buyer's
 * behaviour: won at the won pace; lost after going quiet, turning
 * one-sided, dragging or never finding a mobilizer; some left open.
 * Pure: no I/O.  Unbounded.
 */
#ifndef DS_GEN_H
#define DS_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "events.h"

typedef enum { DS_GEN_MIXED, DS_GEN_MARKETING, DS_GEN_CRM } ds_gen_mix_t;

/* DEMO: the model above.  WIDE and SKEW: marketing streams at the scale of
 * a company's content marketing (a catalog of DS_GEN_WIDE_CONTENT items
 * over DS_GEN_WIDE_INSIGHTS insights, buying groups of leads_per_account
 * leads walking its paths, sharing and attending webinars, events ~7 ms
 * apart): WIDE also sends 4 % of its events from leads without an account
 * (a pool of 6 per account); SKEW sends every event from an account's lead,
 * for comparing few large accounts with many small ones. */
typedef enum { DS_GEN_DEMO, DS_GEN_WIDE, DS_GEN_SKEW } ds_gen_profile_t;

typedef struct ds_gen_opts {
    uint64_t seed;
    int accounts;     /* default 50 (DEMO), 20,000 (WIDE), 1 (SKEW) */
    ds_gen_mix_t mix;
    int64_t start_ms; /* event time of the first event */
    double span_days; /* event time covered by accounts*60 events (default 90) */
    /* WIDE and SKEW (marketing only; span_days is not used) */
    ds_gen_profile_t profile;
    int leads_per_account; /* default 12 (WIDE), 5000 (SKEW) */
} ds_gen_opts_t;

typedef struct ds_gen_event {
    bool is_crm;
    ds_ma_event_t ma;
    ds_crm_event_t crm;
    bool duplicate; /* a deliberate re-send of the previous event id */
} ds_gen_event_t;

typedef struct ds_gen ds_gen_t;

ds_gen_t *ds_gen_new(const ds_gen_opts_t *opts);
/** The next event; its strings are valid until the next call. */
bool ds_gen_next(ds_gen_t *g, ds_gen_event_t *out);
void ds_gen_destroy(ds_gen_t *g);

/** Content ids of the catalog the generator uses (for config/demo-rules.yaml). */
#define DS_GEN_INSIGHTS 3

#define DS_GEN_WIDE_INSIGHTS 40
#define DS_GEN_WIDE_CONTENT 2400 /* 60 items per insight */

/** Entry i (0 <= i < DS_GEN_WIDE_CONTENT) of the WIDE and SKEW profiles'
 *  catalog, the same for every seed: its content id into `content_id`
 *  (n bytes), its insight id (static) and its ContentStage. */
void ds_gen_wide_catalog(size_t i, char *content_id, size_t n, const char **insight_id, int *stage);

/** config/demo-rules.yaml as it was at build time: the demo profile's
 *  rules (the defaults and a catalog of its content), compiled in. */
extern const char *const ds_builtin_demo_rules;

#endif
