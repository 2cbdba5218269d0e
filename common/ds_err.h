/*
 * ds_err.h — the one error enum of dealsignal.
 *
 * 0 is OK.  The codes whose text has no space are also the stable
 * DLQ reason codes written in the `dealsignal.error` header: they are an
 * interface, never rename them.
 */
#ifndef DS_ERR_H
#define DS_ERR_H

#define DS_ERR_MAP(X)                                                     \
    X(OK, "ok")                                                           \
    X(AGAIN, "try again")                                                 \
    X(NOMEM, "out of memory")                                             \
    X(INVAL, "invalid argument")                                          \
    X(IO, "i/o error")                                                    \
    X(TIMEOUT, "timed out")                                               \
    X(NOTFOUND, "not found")                                              \
    X(CONFIG, "configuration error")                                      \
    X(DUPLICATE, "duplicate")                                             \
    X(IGNORED, "ignored")                                                 \
    /* decode failures: stable DLQ codes */                              \
    X(BAD_MAGIC, "bad_magic")                                             \
    X(UNKNOWN_SCHEMA, "unknown_schema_id")                                \
    X(UNDECODABLE, "undecodable")                                         \
    X(MISSING_FIELD, "missing_field")                                     \
    X(UNKNOWN_ENUM, "unknown_enum")                                       \
    X(LIMIT_EXCEEDED, "limit_exceeded")                                   \
    X(WRONG_TYPE, "wrong_schema")                                         \
    X(EMPTY_KEY, "empty_key")                                             \
    X(NULL_VALUE, "null_value")                                           \
    X(INVALID_ID, "invalid_id")                                           \
    X(INVALID_TIME, "invalid_time")                                       \
    /* the record's key or partition is not its unit's: stable DLQ codes */ \
    X(WRONG_KEY, "wrong_key")                                             \
    X(WRONG_PARTITION, "wrong_partition")

typedef enum {
#define DS_ERR_ENUM(name, text) DS_ERR_##name,
    DS_ERR_MAP(DS_ERR_ENUM)
#undef DS_ERR_ENUM
    DS_ERR__COUNT
} ds_err_t;

/** Text for an error code; never NULL, static storage. Any thread. */
const char *ds_err2str(ds_err_t err);

/** True for the codes that send a record to the DLQ. */
int ds_err_is_dlq(ds_err_t err);

/** Return from the enclosing function with x's error, if it has one. */
#define DS_TRY(x)                                                                                  \
    do {                                                                                           \
        ds_err_t e_ = (x);                                                                         \
        if (e_)                                                                                    \
            return e_;                                                                             \
    } while (0)

#define DS_WUR __attribute__((warn_unused_result))
#define DS_PRINTF(a, b) __attribute__((format(printf, a, b)))

#endif
