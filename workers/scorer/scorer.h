/*
 * scorer.h — the lead scorer worker: ma.events → lead.scores,
 * account.scores and the Redis lead/account state.
 */
#ifndef DS_SCORER_H
#define DS_SCORER_H

#include "worker.h"

typedef struct ds_scorer ds_scorer_t;

/** `rules` is borrowed (new ones: ds_worker_set_rules).  NULL with errstr. */
ds_scorer_t *ds_scorer_new(const ds_config_t *cfg, const ds_rules_t *rules,
                           ds_metrics_t *metrics, char *errstr, size_t errstr_size);
/** Its engine: run it with ds_worker_run (until ds_worker_stop). */
ds_worker_t *ds_scorer_worker(ds_scorer_t *s);
void ds_scorer_destroy(ds_scorer_t *s);

#endif
