/* ds_err.c — text for ds_err_t, from the X-macro table in ds_err.h. */
#include "ds_err.h"

static const char *const ds_err_text[] = {
#define DS_ERR_TEXT(name, text) text,
    DS_ERR_MAP(DS_ERR_TEXT)
#undef DS_ERR_TEXT
};

const char *ds_err2str(ds_err_t err) {
    if ((unsigned)err >= DS_ERR__COUNT)
        return "unknown error";
    return ds_err_text[err];
}

int ds_err_is_dlq(ds_err_t err) {
    return err >= DS_ERR_BAD_MAGIC && err < DS_ERR__COUNT;
}
