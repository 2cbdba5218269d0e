/*
 * ds_partitions.c — membership in a set of partitions (ds_partitions.h).
 * The set is borrowed: the caller owns the array for the call it passes
 * it to.
 */
#include "ds_partitions.h"

bool ds_partitions_has(const ds_partitions_t *set, int32_t p) {
    for (size_t i = 0; set && i < set->n; i++)
        if (set->ids[i] == p)
            return true;
    return false;
}
