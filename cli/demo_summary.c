/*
 * demo_summary.c — the picture `dealsignal demo` ends with.
 *
 * Three parts, each a table of fixed-width columns (ASCII, at most
 * DS_DEMO_SUMMARY_WIDTH columns a line):
 *   1. the open deals as a matrix: rows are the stage the rep reports,
 *      columns the stage the buyer has verifiably reached (the first stage
 *      whose buyer signals are not all in, or "done" when every stage is
 *      verified); the diagonal, where both agree, is bracketed, and a deal
 *      left of it is reported past what the buyer has shown;
 *   2. the open alerts by kind, with a bar scaled to the largest count;
 *   3. the accounts with the most consensus, with their mobilizers.
 *
 * The summary keeps counters and the top DS_DEMO_SUMMARY_TOP accounts
 * only, so filling it costs O(1) memory per hash read.  Cells that do not
 * fit their column are cut and end in '~'; a mobilizer list that does not
 * fit ends in "+N more".  The Redis reader uses only the public fields of
 * the documented layout, never the internal blobs.
 */
#include "demo_summary.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"

#define NS DS_PS__COUNT /* stages; column NS is "every stage verified" */
#define NK DS_AK__COUNT

typedef struct {
    char *id, *insight, *mobilizers; /* owned */
    double consensus;
    long engaged, confronted;
    int nmob;
} account_t;

struct ds_demo_summary {
    long matrix[NS][NS + 1]; /* open deals by [reported][verified] */
    long open, won, lost, deals, unplaced, leads;
    long alerts[NK], alerted_deals;
    long accounts;
    account_t top[DS_DEMO_SUMMARY_TOP];
    int ntop;
};

/* What each alert kind means, in at most 50 columns. */
static const char *const kind_words[NK] = {
    "no buyer signal for longer than the stage allows",
    "the seller keeps acting, the buyer does not answer",
    "reported past the stage the buyer has verified",
    "no known mobilizer at a stage that needs one",
};

ds_demo_summary_t *ds_demo_summary_new(void) {
    return calloc(1, sizeof(ds_demo_summary_t));
}

static void account_free(account_t *a) {
    free(a->id);
    free(a->insight);
    free(a->mobilizers);
    memset(a, 0, sizeof(*a));
}

void ds_demo_summary_destroy(ds_demo_summary_t *s) {
    if (!s)
        return;
    for (int i = 0; i < s->ntop; i++)
        account_free(&s->top[i]);
    free(s);
}

static const char *nz(const char *v) {
    return v ? v : "";
}

void ds_demo_summary_add_deal(ds_demo_summary_t *s, const char *state, const char *reported_stage,
                              const char *verified_stage, const char *open_alerts) {
    s->deals++;
    state = nz(state);
    if (!strcmp(state, "won"))
        s->won++;
    else if (!strcmp(state, "lost"))
        s->lost++;
    if (strcmp(state, "open"))
        return;
    s->open++;
    int rep = ds_purchase_stage_parse(nz(reported_stage));
    int ver = *nz(verified_stage) ? ds_purchase_stage_parse(verified_stage) : NS;
    if (rep == DS_NONE || ver == DS_NONE)
        s->unplaced++;
    else
        s->matrix[rep][ver]++;
    /* KIND:level,KIND:level */
    bool any = false;
    for (const char *p = nz(open_alerts); *p;) {
        size_t n = strcspn(p, ",");
        size_t k = strcspn(p, ":");
        char kind[32];
        if (k > n)
            k = n;
        if (k < sizeof(kind)) {
            memcpy(kind, p, k);
            kind[k] = '\0';
            int v = ds_alert_kind_parse(kind);
            if (v != DS_NONE) {
                s->alerts[v]++;
                any = true;
            }
        }
        p += n + (p[n] == ',');
    }
    s->alerted_deals += any;
}

static int count_items(const char *list) {
    int n = 0;
    for (const char *p = list; *p; p += strcspn(p, ","), p += *p == ',')
        n += strcspn(p, ",") > 0;
    return n;
}

/* a ranks before b */
static bool before(const account_t *a, const account_t *b) {
    if (a->consensus != b->consensus)
        return a->consensus > b->consensus;
    if (a->nmob != b->nmob)
        return a->nmob > b->nmob;
    return strcmp(a->id, b->id) < 0;
}

void ds_demo_summary_add_account(ds_demo_summary_t *s, const char *account_id,
                                 const char *consensus, const char *engaged, const char *confronted,
                                 const char *top_insight, const char *mobilizers) {
    s->accounts++;
    account_t a = {0};
    a.consensus = strtod(nz(consensus), NULL);
    a.engaged = strtol(nz(engaged), NULL, 10);
    a.confronted = strtol(nz(confronted), NULL, 10);
    a.nmob = count_items(nz(mobilizers));
    a.id = (char *)nz(account_id); /* borrowed until it is kept */
    int at = s->ntop;
    while (at > 0 && before(&a, &s->top[at - 1]))
        at--;
    if (at >= DS_DEMO_SUMMARY_TOP)
        return;
    a.id = strdup(a.id);
    a.insight = strdup(nz(top_insight));
    a.mobilizers = strdup(nz(mobilizers));
    if (!a.id || !a.insight || !a.mobilizers) {
        account_free(&a);
        return;
    }
    if (s->ntop == DS_DEMO_SUMMARY_TOP)
        account_free(&s->top[--s->ntop]);
    memmove(&s->top[at + 1], &s->top[at], (size_t)(s->ntop - at) * sizeof(account_t));
    s->top[at] = a;
    s->ntop++;
}

void ds_demo_summary_add_leads(ds_demo_summary_t *s, long n) {
    s->leads += n;
}

/* ---- drawing ---- */

/* `v` in `w` columns, left- or right-aligned; cut with a final '~'. */
static void field(FILE *out, const char *v, int w, bool right) {
    int n = (int)strlen(v);
    if (n > w) {
        fprintf(out, "%.*s~", w - 1, v);
        return;
    }
    fprintf(out, right ? "%*s" : "%-*s", w, v);
}

/* `n` of `w` columns filled with `fill`, the rest with `rest`. */
static void bar(FILE *out, long n, int w, char fill, char rest) {
    for (int i = 0; i < w; i++)
        fputc(i < n ? fill : rest, out);
}

/* A count in a cell of 6: "." for none, "[n]" on the diagonal. */
static void cell(FILE *out, long v, bool diagonal) {
    char t[24];
    if (v)
        snprintf(t, sizeof(t), diagonal ? "[%ld]" : "%ld", v);
    else
        snprintf(t, sizeof(t), diagonal ? "[.]" : ".");
    field(out, t, 6, true);
}

#define LABEL 30 /* " 3 Defining purchase criteria" */

static void print_matrix(const ds_demo_summary_t *s, FILE *out) {
    fprintf(out, " WHERE THE OPEN DEALS ARE\n"
                 " Rows: the stage the rep reports.  Columns: the stage the buyer has verifiably\n"
                 " reached (the first whose buyer signals are not all in; done: every stage).\n"
                 " [n]: rep and buyer agree.  Left of them: the rep is ahead of the buyer.\n\n");
    field(out, " reported \\ verified", LABEL, false);
    for (int v = 0; v < NS; v++)
        fprintf(out, "%6d", v + 1);
    fprintf(out, "  done |  open ahead\n");
    long col[NS + 1] = {0}, ahead_all = 0, behind_all = 0;
    for (int r = 0; r < NS; r++) {
        char label[64];
        snprintf(label, sizeof(label), " %d %s", r + 1, ds_purchase_stage_words(r));
        field(out, label, LABEL, false);
        long row = 0, ahead = 0;
        for (int v = 0; v <= NS; v++) {
            long n = s->matrix[r][v];
            cell(out, n, v == r);
            row += n;
            col[v] += n;
            ahead += v < r ? n : 0;
            behind_all += v > r ? n : 0;
        }
        ahead_all += ahead;
        fprintf(out, " |");
        cell(out, row, false);
        cell(out, ahead, false);
        fputc('\n', out);
    }
    for (int i = 0; i < LABEL + 6 * (NS + 1) + 14; i++)
        fputc('-', out);
    fputc('\n', out);
    field(out, " open deals", LABEL, false);
    long placed = 0;
    for (int v = 0; v <= NS; v++) {
        cell(out, col[v], false);
        placed += col[v];
    }
    fprintf(out, " |");
    cell(out, placed, false);
    cell(out, ahead_all, false);
    fprintf(out,
            "\n\n %ld of %ld open deals: the rep reports a later stage than the buyer has shown.\n"
            " %ld of %ld open deals: the buyer has verified more than the rep reports.\n",
            ahead_all, placed, behind_all, placed);
    if (s->unplaced)
        fprintf(out, " %ld open deals have a stage that is not a PurchaseStage: not shown.\n",
                s->unplaced);
}

static void print_alerts(const ds_demo_summary_t *s, FILE *out) {
    long total = 0, max = 0;
    for (int k = 0; k < NK; k++) {
        total += s->alerts[k];
        max = s->alerts[k] > max ? s->alerts[k] : max;
    }
    fprintf(out, "\n OPEN ALERTS BY KIND: %ld open on %ld of the %ld open deals\n", total,
            s->alerted_deals, s->open);
    for (int k = 0; k < NK; k++) {
        fputc(' ', out);
        field(out, ds_alert_kind_name(k), 17, false);
        fprintf(out, "%4ld  ", s->alerts[k]);
        bar(out, max ? (s->alerts[k] * 20 + max - 1) / max : 0, 20, '#', ' '); /* any shows */
        fprintf(out, "  %s\n", kind_words[k]);
    }
}

/* The comma-separated `list` as "a, b, +N more" in at most w columns. */
static void mobilizer_list(FILE *out, const char *list, int nmob, int w) {
    char line[DS_DEMO_SUMMARY_WIDTH + 1];
    size_t len = 0;
    int shown = 0;
    if (nmob == 0) {
        fputc('-', out);
        return;
    }
    for (const char *p = list; *p && shown < nmob;) {
        size_t n = strcspn(p, ",");
        if (n) {
            char more[32] = "";
            if (shown + 1 < nmob)
                snprintf(more, sizeof(more), ", +%d more", nmob - shown - 1);
            size_t sep = shown ? 2 : 0;
            if (len + sep + n + strlen(more) > (size_t)w)
                break;
            memcpy(line + len, ", ", sep);
            memcpy(line + len + sep, p, n);
            len += sep + n;
            shown++;
        }
        p += n + (p[n] == ',');
    }
    line[len] = '\0';
    if (shown == nmob) {
        fputs(line, out);
        return;
    }
    char more[32];
    if (shown) {
        snprintf(more, sizeof(more), ", +%d more", nmob - shown);
        fprintf(out, "%s%s", line, more);
        return;
    }
    /* not even the first fits beside the count: cut it */
    more[0] = '\0';
    if (nmob > 1)
        snprintf(more, sizeof(more), ", +%d more", nmob - 1);
    size_t first = strcspn(list, ",");
    if (first > sizeof(line) - 1)
        first = sizeof(line) - 1;
    memcpy(line, list, first);
    line[first] = '\0';
    field(out, line, w - (int)strlen(more), false);
    fputs(more, out);
}

#define MOB_COL (1 + 12 + 1 + 7 + 2 + 10 + 2 + 11 + 2 + 18 + 2)

static void print_accounts(const ds_demo_summary_t *s, FILE *out) {
    fprintf(out, "\n ACCOUNTS WITH THE MOST CONSENSUS: stakeholders confronted with the"
                 " account's top insight\n");
    if (!s->ntop) {
        fprintf(out, " no account scored\n");
        return;
    }
    fprintf(out, " %-12s %-19s  %11s  %-18s  %s\n", "account", "consensus", "confronted",
            "top insight", "mobilizers");
    for (int i = 0; i < s->ntop; i++) {
        const account_t *a = &s->top[i];
        char pct[32], conf[48];
        snprintf(pct, sizeof(pct), "%.1f%%", a->consensus);
        snprintf(conf, sizeof(conf), "%ld of %ld", a->confronted, a->engaged);
        fputc(' ', out);
        field(out, a->id, 12, false);
        fputc(' ', out);
        field(out, pct, 7, true);
        fprintf(out, "  ");
        bar(out, (long)(a->consensus / 10 + 0.5), 10, '#', '.');
        fprintf(out, "  ");
        field(out, conf, 11, true);
        fprintf(out, "  ");
        field(out, *a->insight ? a->insight : "-", 18, false);
        fprintf(out, "  ");
        mobilizer_list(out, a->mobilizers, a->nmob, DS_DEMO_SUMMARY_WIDTH - MOB_COL);
        fputc('\n', out);
    }
}

void ds_demo_summary_print(const ds_demo_summary_t *s, FILE *out) {
    char rule[DS_DEMO_SUMMARY_WIDTH + 1];
    memset(rule, '=', DS_DEMO_SUMMARY_WIDTH);
    rule[DS_DEMO_SUMMARY_WIDTH] = '\0';
    fprintf(out,
            "\n%s\n dealsignal at a glance: %ld deals (%ld open, %ld won, %ld lost),"
            " %ld accounts, %ld leads scored\n%s\n\n",
            rule, s->deals, s->open, s->won, s->lost, s->accounts, s->leads, rule);
    print_matrix(s, out);
    print_alerts(s, out);
    print_accounts(s, out);
    fprintf(out, "%s\n", rule);
}

/* ---- reading Redis ---- */

static const char *const deal_fields[] = {"state", "reported_stage", "verified_stage",
                                          "open_alerts"};
static const char *const acct_fields[] = {"account_id",           "consensus",
                                          "engaged_stakeholders", "confronted_stakeholders",
                                          "top_insight",          "mobilizers"};
#define NDEAL (sizeof(deal_fields) / sizeof(deal_fields[0]))
#define NACCT (sizeof(acct_fields) / sizeof(acct_fields[0]))

/* An entity's own hash: its key's hash tag closes at the key's end. */
static bool entity_key(const char *k, size_t n) {
    const char *close = memchr(k, '}', n);
    return close && close == k + n - 1;
}

static const char *str_at(const redisReply *r, size_t i) {
    return i < r->elements && r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
}

static int fail(redisContext *r, const char *what, char *errstr, size_t n) {
    snprintf(errstr, n, "%s: %s", what, r->err ? r->errstr : "unexpected reply");
    return -1;
}

/* Every key matching `pattern`: entity hashes get an HMGET of `fields`,
 * pipelined per page; `kind` 'd' adds deals, 'a' accounts (and counts the
 * account's lead hashes). */
static int scan(ds_demo_summary_t *s, redisContext *r, const char *pattern, char kind, char *errstr,
                size_t errstr_size) {
    const char *const *fields = kind == 'd' ? deal_fields : acct_fields;
    size_t nf = kind == 'd' ? NDEAL : NACCT;
    char cursor[32] = "0";
    do {
        redisReply *page = redisCommand(r, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!page || page->type != REDIS_REPLY_ARRAY || page->elements != 2 ||
            page->element[0]->type != REDIS_REPLY_STRING ||
            page->element[1]->type != REDIS_REPLY_ARRAY) {
            if (page)
                freeReplyObject(page);
            return fail(r, "SCAN", errstr, errstr_size);
        }
        snprintf(cursor, sizeof(cursor), "%s", page->element[0]->str);
        const redisReply *keys = page->element[1];
        size_t asked = 0;
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            if (!entity_key(k->str, k->len)) {
                if (kind == 'a' && strstr(k->str, "}:lead:"))
                    s->leads++;
                continue;
            }
            const char *argv[1 + 1 + NACCT];
            size_t lens[1 + 1 + NACCT];
            argv[0] = "HMGET";
            lens[0] = 5;
            argv[1] = k->str;
            lens[1] = k->len;
            for (size_t f = 0; f < nf; f++) {
                argv[2 + f] = fields[f];
                lens[2 + f] = strlen(fields[f]);
            }
            if (redisAppendCommandArgv(r, (int)(2 + nf), argv, lens) != REDIS_OK) {
                freeReplyObject(page);
                return fail(r, "HMGET", errstr, errstr_size);
            }
            asked++;
        }
        freeReplyObject(page);
        for (size_t i = 0; i < asked; i++) {
            void *v = NULL;
            if (redisGetReply(r, &v) != REDIS_OK)
                return fail(r, "HMGET", errstr, errstr_size);
            redisReply *h = v;
            if (h->type == REDIS_REPLY_ARRAY && h->elements == nf) {
                if (kind == 'd')
                    ds_demo_summary_add_deal(s, str_at(h, 0), str_at(h, 1), str_at(h, 2),
                                             str_at(h, 3));
                else if (str_at(h, 0)) /* an account hash, not a lone lead's */
                    ds_demo_summary_add_account(s, str_at(h, 0), str_at(h, 1), str_at(h, 2),
                                                str_at(h, 3), str_at(h, 4), str_at(h, 5));
            }
            freeReplyObject(h);
        }
    } while (strcmp(cursor, "0"));
    return 0;
}

int ds_demo_summary_read_redis(ds_demo_summary_t *s, redisContext *r, const char *prefix,
                               char *errstr, size_t errstr_size) {
    char pattern[256];
    snprintf(pattern, sizeof(pattern), "%s{deal:*", prefix);
    if (scan(s, r, pattern, 'd', errstr, errstr_size))
        return -1;
    snprintf(pattern, sizeof(pattern), "%s{acct:*", prefix);
    return scan(s, r, pattern, 'a', errstr, errstr_size);
}
