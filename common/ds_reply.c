/*
 * ds_reply.c — the read-only view of a hiredis reply (see ds_reply.h).
 *
 * A ds_reply_t is the redisReply itself behind an opaque type: no copy is
 * made, and nothing outside common/ includes hiredis to read a reply.
 */
#include "ds_reply.h"

#include <hiredis/hiredis.h>
#include <string.h>

static const redisReply *rr(const ds_reply_t *r) {
    return (const redisReply *)(const void *)r;
}

ds_reply_type_t ds_reply_type(const ds_reply_t *r) {
    switch (rr(r)->type) {
    case REDIS_REPLY_NIL:
        return DS_REPLY_NIL;
    case REDIS_REPLY_STRING:
        return DS_REPLY_STRING;
    case REDIS_REPLY_INTEGER:
        return DS_REPLY_INTEGER;
    case REDIS_REPLY_ARRAY:
#ifdef REDIS_REPLY_MAP
    case REDIS_REPLY_MAP:
    case REDIS_REPLY_SET:
#endif
        return DS_REPLY_ARRAY;
    case REDIS_REPLY_STATUS:
        return DS_REPLY_STATUS;
    case REDIS_REPLY_ERROR:
        return DS_REPLY_ERROR;
    default:
        return DS_REPLY_OTHER;
    }
}

const char *ds_reply_str(const ds_reply_t *r, size_t *len) {
    ds_reply_type_t t = ds_reply_type(r);
    if (t != DS_REPLY_STRING && t != DS_REPLY_STATUS && t != DS_REPLY_ERROR) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = rr(r)->len;
    return rr(r)->str;
}

int ds_reply_is(const ds_reply_t *r, const char *s) {
    return rr(r)->type == REDIS_REPLY_STRING && rr(r)->len == strlen(s) &&
           !memcmp(rr(r)->str, s, rr(r)->len);
}

long long ds_reply_integer(const ds_reply_t *r) {
    return rr(r)->type == REDIS_REPLY_INTEGER ? rr(r)->integer : 0;
}

size_t ds_reply_count(const ds_reply_t *r) {
    return ds_reply_type(r) == DS_REPLY_ARRAY ? rr(r)->elements : 0;
}

const ds_reply_t *ds_reply_at(const ds_reply_t *r, size_t i) {
    return (const ds_reply_t *)(const void *)rr(r)->element[i];
}
