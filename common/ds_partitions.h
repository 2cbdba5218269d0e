/*
 * ds_partitions.h — a set of partitions of the input topic, as the worker
 * hands it to its adapter (those assigned to it, those it owns): our own
 * type, so that the business code needs no Kafka client header.
 *
 * A plain array, in the order the consumer listed them; a lookup is a
 * linear scan (a worker owns a few dozen partitions at most).
 */
#ifndef DS_PARTITIONS_H
#define DS_PARTITIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ds_partitions {
    const int32_t *ids;
    size_t n;
} ds_partitions_t;

/** Whether partition p is in the set (NULL: the empty set). */
bool ds_partitions_has(const ds_partitions_t *set, int32_t p);

#endif
