/*
 * rules.h — the scoring and stall rules (the README's "Rules" and
 * docs/CONTRACT.md).
 *
 * A ds_rules_t is immutable once loaded: workers hold a pointer to the one
 * in force and a SIGHUP reload swaps in a new one (or keeps the old one when
 * the new file is invalid).  Every key is optional and defaults as in
 * docs/CONTRACT.md; durations are stored both as days (to print) and as
 * ms (to use).
 */
#ifndef DS_RULES_H
#define DS_RULES_H

#include <stdint.h>
#include <stdio.h>

#include "events.h"

typedef struct ds_catalog_entry {
    char *content_id;
    char *insight_id; /* NULL allowed */
    int stage;        /* ds_content_stage_t or DS_NONE */
} ds_catalog_entry_t;

typedef struct ds_stage_rule {
    char **verifiers;
    size_t verifiers_count;
    double max_quiet_days;
} ds_stage_rule_t;

typedef struct ds_rules {
    struct {
        double half_life_days;
        double repeat_window_days;
        double stage_points[DS_CS__COUNT];
        double type_weight[DS_MA__COUNT]; /* CONTENT_SHARED, UNSUBSCRIBED: 0 */
        double path_multiplier;
        double b_state_factor;
        double share_points;
        int share_cap;
        double follow_points;
        double follow_window_days;
        double group_points;
        double tier_confronted;
        double tier_connector;
        double consensus_target;
        ds_catalog_entry_t *catalog; /* sorted by content_id */
        size_t catalog_count;
        /* an index of catalog by content_id (positions + 1, open
         * addressing by hash; ds_rules_index_catalog) */
        uint32_t *catalog_index;
        size_t catalog_index_cap;
    } scoring;
    struct {
        int max_unanswered_seller_actions;
        double renotify_days;
        double grace_minutes;
        int mobilizer_required_from; /* ds_purchase_stage_t */
        ds_stage_rule_t stages[DS_PS__COUNT];
    } stall;
    /* Not a rules-file key: set from the configuration (dedupe_window_days). */
    double dedupe_window_days;
    /* Unique per rules object made by ds_rules_new_default (and so by the
     * loaders), never 0: what is derived from a rules object and cached
     * elsewhere (a deal's verified stage) is keyed on it, since a reloaded
     * object may reuse a freed one's address.  Do not edit the rules after
     * such a cache has seen them. */
    uint64_t gen;
} ds_rules_t;

#define DS_DAY_MS 86400000.0

/** A duration of the rules in days as whole milliseconds, rounded to the
 *  nearest (0.009 days is 777,600 ms, not the 777,599 a truncation of
 *  its binary product gives); 0 for a non-positive one, INT64_MAX past
 *  what an int64 holds. */
int64_t ds_days_ms(double days);

/* Every number of a rules file is from 0 to this (days, minutes, points,
 * weights): beyond any use, and short of the overflows of times and scores
 * built from them. */
#define DS_RULES_NUM_MAX 1000000.0

/** The default rules.  Caller frees with ds_rules_destroy. NULL on OOM. */
ds_rules_t *ds_rules_new_default(void);
/** Parse a YAML rules file over the defaults.  On error returns NULL and
 *  writes "FILE:LINE: key a.b.c: reason" to errstr. */
ds_rules_t *ds_rules_load_file(const char *path, char *errstr, size_t errstr_size);
/** Same from a buffer; `name` is used in error messages. */
ds_rules_t *ds_rules_load_buffer(const char *name, const char *yaml, size_t len,
                                 char *errstr, size_t errstr_size);
void ds_rules_destroy(ds_rules_t *r);
/** The catalog entry of a content id, or NULL.  O(1) once indexed, else
 *  O(log n). */
const ds_catalog_entry_t *ds_rules_catalog_find(const ds_rules_t *r, const char *content_id);
/** Index the catalog (after it is sorted and complete; again after any
 *  change).  -1 when out of memory (lookups then search the sorted list). */
int ds_rules_index_catalog(ds_rules_t *r);
/** Print the effective rules as YAML that ds_rules_load_* accepts. */
void ds_rules_print(const ds_rules_t *r, FILE *out);
/** The same with comments: `header` (may be NULL; one "# " line per line
 *  of it) first, and each non-NULL stage_notes[s] as a "# " line just
 *  above stage s (stage_notes may be NULL). */
void ds_rules_print_annotated(const ds_rules_t *r, FILE *out, const char *header,
                              const char *const *stage_notes);

#endif
