/*
 * workers.h — the two workers, each the engine (worker.h) with its
 * adapter: the lead scorer (ma.events → lead.scores, account.scores and
 * the Redis lead/account state; workers/scorer/) and the stall watcher
 * (crm.events → deal.alerts and the Redis deal state, with clock checks
 * against a deadline index; workers/watcher/).
 *
 * Each returns an engine to run with ds_worker_run and free with
 * ds_worker_destroy.  `rules` is borrowed (new ones: ds_worker_set_rules).
 * NULL with errstr.
 */
#ifndef DS_WORKERS_H
#define DS_WORKERS_H

#include "worker.h"

ds_worker_t *ds_scorer_new(const ds_config_t *cfg, const ds_rules_t *rules, ds_metrics_t *metrics,
                           int thread, char *errstr, size_t errstr_size);
ds_worker_t *ds_watcher_new(const ds_config_t *cfg, const ds_rules_t *rules, ds_metrics_t *metrics,
                            int thread, char *errstr, size_t errstr_size);

#endif
