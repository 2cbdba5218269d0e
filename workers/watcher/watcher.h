/*
 * watcher.h — the stall watcher worker: crm.events → deal.alerts and the
 * Redis deal state, with clock checks against a deadline index.
 */
#ifndef DS_WATCHER_H
#define DS_WATCHER_H

#include "worker.h"

typedef struct ds_watcher ds_watcher_t;

/** `rules` is borrowed (new ones: ds_worker_set_rules).  NULL with errstr. */
ds_watcher_t *ds_watcher_new(const ds_config_t *cfg, const ds_rules_t *rules,
                             ds_metrics_t *metrics, char *errstr, size_t errstr_size);
/** Its engine: run it with ds_worker_run (until ds_worker_stop). */
ds_worker_t *ds_watcher_worker(ds_watcher_t *w);
void ds_watcher_destroy(ds_watcher_t *w);

#endif
