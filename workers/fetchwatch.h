/*
 * fetchwatch.h — an assigned partition that stopped being fetched.
 *
 * The worker reads librdkafka's statistics once a second.  A partition
 * it is assigned, and does not hold paused itself, whose application
 * position (the offset after the last record the consumer handed over)
 * has not moved for DS_FETCHWATCH_STALL_MS is "still"; if records wait
 * past that position, the worker says so and fetches it again from
 * there (worker_kafka.c).  Pure bookkeeping, no Kafka here.
 */
#ifndef DS_FETCHWATCH_H
#define DS_FETCHWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DS_FETCHWATCH_STALL_MS 30000
/* At most this much of the time between two reports counts: a worker
 * that was busy reads the reports queued meanwhile in a burst, and its
 * busy time is no sign that a partition is not fetched. */
#define DS_FETCHWATCH_GAP_MS 2000

typedef struct ds_fetchwatch_part {
    bool known;       /* reported since the last ds_fetchwatch_forget */
    int64_t pos;      /* position at the last report */
    int64_t last_ms;  /* time of the last report */
    int64_t still_ms; /* how long pos has not moved, unpaused (gaps capped) */
} ds_fetchwatch_part_t;

typedef struct ds_fetchwatch {
    ds_fetchwatch_part_t *p; /* by partition id: p[0..n) set, room for cap */
    size_t n, cap;
    int64_t stall_ms;
} ds_fetchwatch_t;

void ds_fetchwatch_init(ds_fetchwatch_t *fw, int64_t stall_ms);
void ds_fetchwatch_free(ds_fetchwatch_t *fw);
/* A new assignment, or a rewind: every partition starts again. */
void ds_fetchwatch_forget(ds_fetchwatch_t *fw);
/* One report of an assigned partition at now_ms: its position (< 0: none
 * yet) and whether the worker holds its partitions paused.  True when pos
 * has not moved for stall_ms of unpaused reports; the count then starts
 * again (so it is true again after another stall_ms).  False when out of
 * memory (nothing is watched then). */
bool ds_fetchwatch_still(ds_fetchwatch_t *fw, int32_t partition, int64_t pos, bool paused,
                         int64_t now_ms);

#endif
