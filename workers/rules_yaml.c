/*
 * rules_yaml.c — the rules file: YAML (libyaml document tree) over the
 * default rules, strict (unknown keys, wrong types, unknown symbols and
 * negative numbers are errors naming FILE:LINE and the key path), and the
 * effective rules printed back as YAML that loads to the same rules.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ds_fmt.h"
#include "rules.h"

typedef struct ctx {
    yaml_document_t *doc;
    const char *name;
    char *err;
    size_t errsz;
    ds_rules_t *r;
} ctx_t;

static int bad(ctx_t *c, yaml_node_t *n, const char *path, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errsz, "%s:%zu: %s: %s", c->name, n ? n->start_mark.line + 1 : 0, path,
             msg);
    return -1;
}

static const char *scalar(yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A mapping key's text (NULL when it is not a scalar) and its path,
 * parent.key ("?" for a key that is not a scalar), in p. */
static const char *key_path(yaml_node_t *k, const char *parent, char *p, size_t size) {
    const char *key = scalar(k);
    snprintf(p, size, "%s.%s", parent, key ? key : "?");
    return key;
}

static int num(ctx_t *c, yaml_node_t *n, const char *path, double *out, bool positive) {
    const char *s = scalar(n);
    if (!s)
        return bad(c, n, path, "expected a number");
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return bad(c, n, path, "'%s' is not a number", s);
    if (v < 0)
        return bad(c, n, path, "must not be negative (%s)", s);
    if (v > DS_RULES_NUM_MAX) /* days, minutes, points: far past any use, short of overflows */
        return bad(c, n, path, "must be at most 1000000 (%s)", s);
    if (positive && v <= 0)
        return bad(c, n, path, "must be greater than 0 (%s)", s);
    *out = v;
    return 0;
}

static int integer(ctx_t *c, yaml_node_t *n, const char *path, int *out) {
    double v;
    if (num(c, n, path, &v, false))
        return -1;
    if (v != floor(v) || v > 1e9)
        return bad(c, n, path, "expected a whole number");
    *out = (int)v;
    return 0;
}

static int sym(ctx_t *c, yaml_node_t *n, const char *path, int (*parse)(const char *),
               const char *what, const char *list, int *out) {
    const char *s = scalar(n);
    if (!s)
        return bad(c, n, path, "expected a %s symbol", what);
    *out = parse(s);
    if (*out == DS_NONE)
        return bad(c, n, path, "unknown %s symbol %s (expected one of %s)", what, s, list);
    return 0;
}

#define MAP_EACH(c, n, k, v) MAP_EACH_(c, n, k, v, k##_pair)
#define MAP_EACH_(c, n, k, v, pr)                                                                  \
    for (yaml_node_pair_t *pr = (n)->data.mapping.pairs.start;                                     \
         pr < (n)->data.mapping.pairs.top &&                                                       \
         ((k) = yaml_document_get_node((c)->doc, pr->key),                                         \
         (v) = yaml_document_get_node((c)->doc, pr->value), 1);                                    \
         pr++)

static const char CS_LIST[] = "SPARK, INTRODUCE, CONFRONT, BUILD_B, SPEC";
static const char PS_LIST[] = "RECOGNIZE_NEED, EXPLORE_OPTIONS, DEFINE_CRITERIA, "
                              "EVALUATE_OPTIONS, SELECT_SUPPLIER, NEGOTIATE, IMPLEMENT, "
                              "EVALUATE_IMPACT";
static const char MA_LIST[] = "CONTENT_VIEWED, CONTENT_COMPLETED, DIAGNOSTIC_COMPLETED, "
                              "EMAIL_CLICKED, WEBINAR_ATTENDED, FORM_SUBMITTED";

/* A map whose keys are each given once (YAML parsers differ on which of
 * two wins: a second is an error, not a silent override). */
static int want_map(ctx_t *c, yaml_node_t *n, const char *path) {
    if (!n || n->type != YAML_MAPPING_NODE)
        return bad(c, n, path, "expected a map");
    yaml_node_t *k, *v;
    MAP_EACH(c, n, k, v) {
        (void)v;
        const char *key = scalar(k);
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; key && q < k_pair; q++) {
            const char *before = scalar(yaml_document_get_node(c->doc, q->key));
            if (before && !strcmp(before, key)) {
                char p[400];
                key_path(k, path, p, sizeof(p));
                return bad(c, k, p, "given twice");
            }
        }
    }
    return 0;
}

static int cmp_cat(const void *a, const void *b) {
    return strcmp(((const ds_catalog_entry_t *)a)->content_id,
                  ((const ds_catalog_entry_t *)b)->content_id);
}

static int parse_catalog(ctx_t *c, yaml_node_t *n) {
    if (!n || n->type != YAML_SEQUENCE_NODE)
        return bad(c, n, "scoring.catalog", "expected a list");
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    /* a repeated `catalog` key replaces the earlier list (found by fuzzing:
     * the old count outlived the old array) */
    for (size_t i = 0; i < c->r->scoring.catalog_count; i++) {
        free(c->r->scoring.catalog[i].content_id);
        free(c->r->scoring.catalog[i].insight_id);
    }
    free(c->r->scoring.catalog);
    c->r->scoring.catalog = NULL;
    c->r->scoring.catalog_count = 0;
    ds_catalog_entry_t *cat = calloc(cnt ? cnt : 1, sizeof(*cat));
    if (!cat)
        return bad(c, n, "scoring.catalog", "out of memory");
    c->r->scoring.catalog = cat;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        char path[64];
        snprintf(path, sizeof(path), "scoring.catalog[%zu]", i);
        if (want_map(c, it, path))
            return -1;
        cat[i].stage = DS_NONE;
        c->r->scoring.catalog_count = i + 1;
        yaml_node_t *k, *v;
        MAP_EACH(c, it, k, v) {
            char kp[128];
            const char *key = key_path(k, path, kp, sizeof(kp));
            const char *s = scalar(v);
            if (key && !strcmp(key, "content_id") && s) {
                free(cat[i].content_id);
                cat[i].content_id = strdup(s);
            } else if (key && !strcmp(key, "insight_id") && s) {
                free(cat[i].insight_id);
                cat[i].insight_id = s[0] ? strdup(s) : NULL;
            } else if (key && !strcmp(key, "stage")) {
                if (sym(c, v, kp, ds_content_stage_parse, "ContentStage", CS_LIST, &cat[i].stage))
                    return -1;
            } else if (key && (!strcmp(key, "content_id") || !strcmp(key, "insight_id"))) {
                return bad(c, v, kp, "expected a string");
            } else {
                return bad(c, k, kp, "unknown key");
            }
        }
        if (!cat[i].content_id)
            return bad(c, it, path, "content_id is required");
    }
    qsort(cat, cnt, sizeof(*cat), cmp_cat);
    for (size_t i = 1; i < cnt; i++)
        if (!strcmp(cat[i - 1].content_id, cat[i].content_id))
            return bad(c, n, "scoring.catalog", "duplicate content_id %s", cat[i].content_id);
    if (ds_rules_index_catalog(c->r))
        return bad(c, n, "scoring.catalog", "out of memory");
    return 0;
}

static int parse_scoring(ctx_t *c, yaml_node_t *n) {
    if (want_map(c, n, "scoring"))
        return -1;
    yaml_node_t *k, *v;
    MAP_EACH(c, n, k, v) {
        char p[128];
        const char *key = key_path(k, "scoring", p, sizeof(p));
        int rc = 0;
        double *d = NULL;
        bool positive = false;
        if (!key)
            return bad(c, k, "scoring", "keys must be strings");
        if (!strcmp(key, "half_life_days"))
            d = &c->r->scoring.half_life_days, positive = true;
        else if (!strcmp(key, "repeat_window_days"))
            d = &c->r->scoring.repeat_window_days;
        else if (!strcmp(key, "path_multiplier"))
            d = &c->r->scoring.path_multiplier;
        else if (!strcmp(key, "b_state_factor"))
            d = &c->r->scoring.b_state_factor;
        else if (!strcmp(key, "share_points"))
            d = &c->r->scoring.share_points;
        else if (!strcmp(key, "follow_points"))
            d = &c->r->scoring.follow_points;
        else if (!strcmp(key, "follow_window_days"))
            d = &c->r->scoring.follow_window_days;
        else if (!strcmp(key, "group_points"))
            d = &c->r->scoring.group_points;
        else if (!strcmp(key, "consensus_target"))
            d = &c->r->scoring.consensus_target, positive = true;
        if (d) {
            rc = num(c, v, p, d, positive);
        } else if (!strcmp(key, "share_cap")) {
            rc = integer(c, v, p, &c->r->scoring.share_cap);
        } else if (!strcmp(key, "stage_points") || !strcmp(key, "type_weight")) {
            bool sp = !strcmp(key, "stage_points");
            if (want_map(c, v, p))
                return -1;
            yaml_node_t *k2, *v2;
            MAP_EACH(c, v, k2, v2) {
                char p2[320];
                key_path(k2, p, p2, sizeof(p2));
                int idx;
                if (sp) {
                    if (sym(c, k2, p2, ds_content_stage_parse, "ContentStage", CS_LIST, &idx) ||
                        num(c, v2, p2, &c->r->scoring.stage_points[idx], false))
                        return -1;
                } else {
                    if (sym(c, k2, p2, ds_ma_type_parse, "MarketingEventType", MA_LIST, &idx))
                        return -1;
                    if (idx == DS_MA_CONTENT_SHARED || idx == DS_MA_UNSUBSCRIBED)
                        return bad(c, k2, p2, "%s has no type weight (expected one of %s)",
                                   scalar(k2), MA_LIST);
                    if (num(c, v2, p2, &c->r->scoring.type_weight[idx], false))
                        return -1;
                }
            }
        } else if (!strcmp(key, "tiers")) {
            if (want_map(c, v, p))
                return -1;
            yaml_node_t *k2, *v2;
            MAP_EACH(c, v, k2, v2) {
                char p2[320];
                const char *t = key_path(k2, p, p2, sizeof(p2));
                if (t && !strcmp(t, "confronted"))
                    rc = num(c, v2, p2, &c->r->scoring.tier_confronted, false);
                else if (t && !strcmp(t, "connector"))
                    rc = num(c, v2, p2, &c->r->scoring.tier_connector, false);
                else
                    return bad(c, k2, p2, "unknown key (expected confronted, connector)");
                if (rc)
                    return -1;
            }
        } else if (!strcmp(key, "catalog")) {
            rc = parse_catalog(c, v);
        } else {
            return bad(c, k, p, "unknown key");
        }
        if (rc)
            return -1;
    }
    return 0;
}

static int parse_stage(ctx_t *c, yaml_node_t *n, const char *path, ds_stage_rule_t *st) {
    if (want_map(c, n, path))
        return -1;
    yaml_node_t *k, *v;
    MAP_EACH(c, n, k, v) {
        char p[400];
        const char *key = key_path(k, path, p, sizeof(p));
        if (key && !strcmp(key, "max_quiet_days")) {
            if (num(c, v, p, &st->max_quiet_days, false))
                return -1;
        } else if (key && !strcmp(key, "verifiers")) {
            if (v->type != YAML_SEQUENCE_NODE)
                return bad(c, v, p, "expected a list of signal codes");
            size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            for (size_t i = 0; i < st->verifiers_count; i++)
                free(st->verifiers[i]);
            free(st->verifiers);
            st->verifiers = calloc(cnt ? cnt : 1, sizeof(char *));
            st->verifiers_count = 0;
            if (!st->verifiers)
                return bad(c, v, p, "out of memory");
            for (size_t i = 0; i < cnt; i++) {
                yaml_node_t *it = yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
                const char *s = scalar(it);
                if (!s || !s[0])
                    return bad(c, it, p, "expected a signal code");
                if (strlen(s) > DS_MAX_ID_BYTES) /* a longer signal is DLQ'd: never seen */
                    return bad(c, it, p, "a signal code over %d bytes", DS_MAX_ID_BYTES);
                st->verifiers[st->verifiers_count++] = strdup(s);
            }
        } else {
            return bad(c, k, p, "unknown key (expected verifiers, max_quiet_days)");
        }
    }
    return 0;
}

static int parse_stall(ctx_t *c, yaml_node_t *n) {
    if (want_map(c, n, "stall"))
        return -1;
    yaml_node_t *k, *v;
    MAP_EACH(c, n, k, v) {
        char p[128];
        const char *key = key_path(k, "stall", p, sizeof(p));
        int rc;
        if (!key)
            return bad(c, k, "stall", "keys must be strings");
        if (!strcmp(key, "max_unanswered_seller_actions"))
            rc = integer(c, v, p, &c->r->stall.max_unanswered_seller_actions);
        else if (!strcmp(key, "renotify_days"))
            rc = num(c, v, p, &c->r->stall.renotify_days, false);
        else if (!strcmp(key, "grace_minutes"))
            rc = num(c, v, p, &c->r->stall.grace_minutes, false);
        else if (!strcmp(key, "mobilizer_required_from"))
            rc = sym(c, v, p, ds_purchase_stage_parse, "PurchaseStage", PS_LIST,
                     &c->r->stall.mobilizer_required_from);
        else if (!strcmp(key, "stages")) {
            if (want_map(c, v, p))
                return -1;
            yaml_node_t *k2, *v2;
            rc = 0;
            MAP_EACH(c, v, k2, v2) {
                char p2[320];
                key_path(k2, p, p2, sizeof(p2));
                int idx;
                if (sym(c, k2, p2, ds_purchase_stage_parse, "PurchaseStage", PS_LIST, &idx) ||
                    parse_stage(c, v2, p2, &c->r->stall.stages[idx]))
                    return -1;
            }
        } else
            return bad(c, k, p, "unknown key");
        if (rc)
            return -1;
    }
    return 0;
}

ds_rules_t *ds_rules_load_buffer(const char *name, const char *yaml, size_t len, char *err,
                                 size_t errsz) {
    ds_rules_t *r = ds_rules_new_default();
    if (!r) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&p, &doc)) {
        snprintf(err, errsz, "%s:%zu: YAML syntax error: %s", name, p.problem_mark.line + 1,
                 p.problem ? p.problem : "unreadable");
        yaml_parser_delete(&p);
        ds_rules_destroy(r);
        return NULL;
    }
    ctx_t c = {&doc, name, err, errsz, r};
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !(root->type == YAML_SCALAR_NODE && !root->data.scalar.length)) {
        if (want_map(&c, root, "(top level)"))
            rc = -1;
        yaml_node_t *k, *v;
        if (!rc) {
            MAP_EACH(&c, root, k, v) {
                const char *key = scalar(k);
                if (key && !strcmp(key, "scoring"))
                    rc = parse_scoring(&c, v);
                else if (key && !strcmp(key, "stall"))
                    rc = parse_stall(&c, v);
                else
                    rc = bad(&c, k, key ? key : "?", "unknown key (expected scoring, stall)");
                if (rc)
                    break;
            }
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    if (rc) {
        ds_rules_destroy(r);
        return NULL;
    }
    return r;
}

ds_rules_t *ds_rules_load_file(const char *path, char *err, size_t errsz) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) {
                snprintf(err, errsz, "%s: file too large", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errsz, "out of memory");
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    ds_rules_t *r = ds_rules_load_buffer(path, buf ? buf : "", len, err, errsz);
    free(buf);
    return r;
}

/* The shortest text that reads back as the same double. */
typedef struct num {
    char s[DS_FMT_DOUBLE_MAX];
} num_t;

static num_t num_text(double v) {
    num_t n;
    ds_fmt_double(n.s, v);
    return n;
}
#define N(v) (num_text(v).s)

void ds_rules_print(const ds_rules_t *r, FILE *o) {
    ds_rules_print_annotated(r, o, NULL, NULL);
}

/* text as "# " lines (a comment never spans a line break) */
static void comment(FILE *o, const char *indent, const char *text) {
    while (*text) {
        size_t n = strcspn(text, "\n");
        fprintf(o, "%s# %.*s\n", indent, (int)n, text);
        text += n + (text[n] == '\n');
    }
}

void ds_rules_print_annotated(const ds_rules_t *r, FILE *o, const char *header,
                              const char *const *stage_notes) {
    const typeof(r->scoring) *s = &r->scoring;
    if (header)
        comment(o, "", header);
    fprintf(o, "scoring:\n");
    fprintf(o, "  half_life_days: %s\n  repeat_window_days: %s\n", N(s->half_life_days),
            N(s->repeat_window_days));
    fprintf(o, "  stage_points: {");
    for (int i = 0; i < DS_CS__COUNT; i++)
        fprintf(o, "%s%s: %s", i ? ", " : "", ds_content_stage_name(i), N(s->stage_points[i]));
    fprintf(o, "}\n  type_weight: {");
    int first = 1;
    for (int i = 0; i < DS_MA__COUNT; i++) {
        if (i == DS_MA_CONTENT_SHARED || i == DS_MA_UNSUBSCRIBED)
            continue;
        fprintf(o, "%s%s: %s", first ? "" : ", ", ds_ma_type_name(i), N(s->type_weight[i]));
        first = 0;
    }
    fprintf(o, "}\n");
    fprintf(o, "  path_multiplier: %s\n  b_state_factor: %s\n  share_points: %s\n"
               "  share_cap: %d\n  follow_points: %s\n  follow_window_days: %s\n"
               "  group_points: %s\n  tiers: {confronted: %s, connector: %s}\n"
               "  consensus_target: %s\n",
            N(s->path_multiplier), N(s->b_state_factor), N(s->share_points), s->share_cap,
            N(s->follow_points), N(s->follow_window_days), N(s->group_points),
            N(s->tier_confronted), N(s->tier_connector), N(s->consensus_target));
    fprintf(o, "  catalog:%s\n", s->catalog_count ? "" : " []");
    for (size_t i = 0; i < s->catalog_count; i++) {
        const ds_catalog_entry_t *e = &s->catalog[i];
        fprintf(o, "    - {content_id: \"%s\"", e->content_id);
        if (e->insight_id)
            fprintf(o, ", insight_id: \"%s\"", e->insight_id);
        if (e->stage != DS_NONE)
            fprintf(o, ", stage: %s", ds_content_stage_name(e->stage));
        fprintf(o, "}\n");
    }
    fprintf(o, "stall:\n  max_unanswered_seller_actions: %d\n  renotify_days: %s\n"
               "  grace_minutes: %s\n  mobilizer_required_from: %s\n  stages:\n",
            r->stall.max_unanswered_seller_actions, N(r->stall.renotify_days),
            N(r->stall.grace_minutes), ds_purchase_stage_name(r->stall.mobilizer_required_from));
    for (int i = 0; i < DS_PS__COUNT; i++) {
        const ds_stage_rule_t *st = &r->stall.stages[i];
        if (stage_notes && stage_notes[i])
            comment(o, "    ", stage_notes[i]);
        fprintf(o, "    %s: {verifiers: [", ds_purchase_stage_name(i));
        for (size_t j = 0; j < st->verifiers_count; j++)
            fprintf(o, "%s\"%s\"", j ? ", " : "", st->verifiers[j]);
        fprintf(o, "], max_quiet_days: %s}\n", N(st->max_quiet_days));
    }
}
