/*
 * demo_summary.h — the picture `dealsignal demo` ends with: where the open
 * deals are (the stage the rep reports against the stage the buyer has
 * verifiably reached), the open alerts by kind, and the accounts with the
 * most consensus and their mobilizers.
 *
 * A summary is filled from the public fields of the deal and account
 * hashes (one call per hash, in any order), then printed.  Reading Redis
 * and drawing are separate so that the drawing is tested without Redis.
 * Every line printed is at most DS_DEMO_SUMMARY_WIDTH columns (ASCII only).
 * Not thread-safe; one summary per caller.
 */
#ifndef DS_DEMO_SUMMARY_H
#define DS_DEMO_SUMMARY_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdio.h>

#define DS_DEMO_SUMMARY_WIDTH 100
#define DS_DEMO_SUMMARY_TOP 5 /* accounts shown */

typedef struct ds_demo_summary ds_demo_summary_t;

/** An empty summary; NULL when out of memory.  Free with _destroy. */
ds_demo_summary_t *ds_demo_summary_new(void);
void ds_demo_summary_destroy(ds_demo_summary_t *s); /* NULL is fine */

/** One deal hash's fields as Redis holds them: `state` (open, won, lost),
 * `reported_stage` and `verified_stage` (PurchaseStage symbols; an empty
 * verified stage means every stage is verified), `open_alerts`
 * (`KIND:level,…`).  NULL reads as empty.  A deal whose stages are not
 * symbols is counted among the deals but not placed in the matrix. */
void ds_demo_summary_add_deal(ds_demo_summary_t *s, const char *state, const char *reported_stage,
                              const char *verified_stage, const char *open_alerts);

/** One account hash's fields: `account_id`, `consensus` (0–100),
 * `engaged_stakeholders`, `confronted_stakeholders`, `top_insight` and
 * `mobilizers` (comma-separated lead ids).  NULL reads as empty or 0.
 * Only the DS_DEMO_SUMMARY_TOP accounts with the most consensus are kept
 * (ties: more mobilizers, then the smaller id). */
void ds_demo_summary_add_account(ds_demo_summary_t *s, const char *account_id,
                                 const char *consensus, const char *engaged, const char *confronted,
                                 const char *top_insight, const char *mobilizers);

/** Adds `n` to the count of scored leads shown in the heading. */
void ds_demo_summary_add_leads(ds_demo_summary_t *s, long n);

/** Draws the picture on `out`. */
void ds_demo_summary_print(const ds_demo_summary_t *s, FILE *out);

/** Fills `s` from every deal and account hash under `prefix` (SCAN, then
 * HMGET pipelined per page of keys).  Returns 0, or -1 with the reason in
 * errstr when Redis fails. */
int ds_demo_summary_read_redis(ds_demo_summary_t *s, redisContext *r, const char *prefix,
                               char *errstr, size_t errstr_size);

#endif
