/*
 * ds_reply.h — a Redis reply as the callers of ds_redis_run() see it.
 *
 * A read-only view, valid only during the callback that receives it: the
 * workers read their replies through it and never see the client
 * library's types.  Strings are NUL-terminated (their length is given as
 * well: they may hold NUL bytes).  Asking a reply for what it is not (the
 * integer of a string, the element of a non-array) gives 0, NULL or an
 * empty array, never undefined behaviour.
 */
#ifndef DS_REPLY_H
#define DS_REPLY_H

#include <stddef.h>

typedef struct ds_reply ds_reply_t;

typedef enum {
    DS_REPLY_NIL,    /* a missing key or field */
    DS_REPLY_STRING, /* a bulk string */
    DS_REPLY_INTEGER,
    DS_REPLY_ARRAY,  /* also a RESP3 map or set, flattened */
    DS_REPLY_STATUS, /* "+OK", "+QUEUED" */
    DS_REPLY_ERROR,
    DS_REPLY_OTHER, /* a RESP3 type the workers never ask for */
} ds_reply_type_t;

ds_reply_type_t ds_reply_type(const ds_reply_t *r);
/** The text of a STRING, STATUS or ERROR reply (NUL-terminated; *len, when
 *  len is not NULL, gets its length); NULL for any other type. */
const char *ds_reply_str(const ds_reply_t *r, size_t *len);
/** True when r is a STRING equal to s. */
int ds_reply_is(const ds_reply_t *r, const char *s);
/** The value of an INTEGER reply; 0 for any other type. */
long long ds_reply_integer(const ds_reply_t *r);
/** How many elements an ARRAY reply holds; 0 for any other type. */
size_t ds_reply_count(const ds_reply_t *r);
/** Element i (< ds_reply_count(r)) of an ARRAY reply. */
const ds_reply_t *ds_reply_at(const ds_reply_t *r, size_t i);

#endif
