/*
 * events.c — the enums of events.h as their Avro symbol text, both ways,
 * from the X-macro lists of events.h (so a name cannot drift from its
 * value), and the purchase stages in words.  Parsing is a linear search
 * over at most 8 symbols.
 */
#include <string.h>

#include "events.h"

#define DS_ENUM_TABLE(fn, MAP, count)                                                              \
    static const char *const fn##_names[] = {MAP(DS_ENUM_STR)};                                    \
    const char *fn##_name(int v) {                                                                 \
        return (v >= 0 && v < (count)) ? fn##_names[v] : NULL;                                     \
    }                                                                                              \
    int fn##_parse(const char *s) {                                                                \
        if (!s)                                                                                    \
            return DS_NONE;                                                                        \
        for (int i = 0; i < (count); i++)                                                          \
            if (!strcmp(s, fn##_names[i]))                                                         \
                return i;                                                                          \
        return DS_NONE;                                                                            \
    }
#define DS_ENUM_STR(s) #s,

DS_ENUM_TABLE(ds_ma_type, DS_MA_TYPE_MAP, DS_MA__COUNT)
DS_ENUM_TABLE(ds_content_stage, DS_CONTENT_STAGE_MAP, DS_CS__COUNT)
DS_ENUM_TABLE(ds_crm_type, DS_CRM_TYPE_MAP, DS_CRM__COUNT)
DS_ENUM_TABLE(ds_purchase_stage, DS_PURCHASE_STAGE_MAP, DS_PS__COUNT)
DS_ENUM_TABLE(ds_role, DS_ROLE_MAP, DS_ROLE__COUNT)
DS_ENUM_TABLE(ds_tier, DS_TIER_MAP, DS_TIER__COUNT)
DS_ENUM_TABLE(ds_alert_kind, DS_ALERT_KIND_MAP, DS_AK__COUNT)
DS_ENUM_TABLE(ds_alert_state, DS_ALERT_STATE_MAP, DS_AS__COUNT)

static const char *const stage_words[DS_PS__COUNT] = {
    "Recognizing the need", "Exploring options",    "Defining purchase criteria",
    "Evaluating options",   "Selecting a supplier", "Negotiating",
    "Implementing",         "Evaluating impact",
};

const char *ds_purchase_stage_words(int v) {
    return (v >= 0 && v < DS_PS__COUNT) ? stage_words[v] : "an unknown stage";
}

ds_ma_event_t ds_ma_event_make(const char *event_id, int64_t occurred_at, const char *lead_id,
                               const char *account_id, int type, const char *content_id,
                               const char *insight_id, int content_stage) {
    ds_ma_event_t e;
    memset(&e, 0, sizeof(e));
    e.event_id = event_id;
    e.occurred_at = occurred_at;
    e.lead_id = lead_id;
    e.account_id = account_id;
    e.type = type;
    e.content_id = content_id;
    e.insight_id = insight_id;
    e.content_stage = content_stage;
    return e;
}
