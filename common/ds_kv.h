/*
 * ds_kv.h — a borrowed key/value pair of strings: one entry of an Avro
 * map<string>, such as a record's `attributes`.  Both the domain records
 * (events.h) and the Avro writer (ds_avro_enc.h) use it, so it lives
 * here, apart from either.  Neither pointer is owned by the pair.
 */
#ifndef DS_KV_H
#define DS_KV_H

typedef struct ds_kv {
    const char *key;
    const char *value;
} ds_kv_t;

#endif
