/*
 * gen.h — a seeded, reproducible model of a company's activity stream:
 * accounts with buying groups of 3-8 leads walking Spark → Introduce →
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

typedef struct ds_gen_opts {
    uint64_t seed;
    int accounts;     /* default 50 */
    ds_gen_mix_t mix;
    int64_t start_ms; /* event time of the first event */
    double span_days; /* event time covered by accounts*60 events (default 90) */
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

#endif
