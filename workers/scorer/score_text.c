/*
 * score_text.c — the public record of a lead: its figures, its reasons in
 * words (the largest current contributions, at most five, larger first
 * then by text) and its output id.  The texts are built in the unit's
 * scratch: valid until the next call on a unit sharing it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_hash.h"
#include "score_int.h"


/* ---- reasons -------------------------------------------------------------- */

static const char *const stage_words[DS_CS__COUNT] = {"Spark", "Introduce", "Confront",
                                                      "Solution (Build-B)", "Spec"};

bool ds_score_put_s(ds_buf_t *b, const char *s) { return ds_buf_append(b, s, strlen(s)) == 0; }

bool ds_score_put_u(ds_buf_t *b, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return ds_buf_append(b, tmp + sizeof(tmp) - n, n) == 0;
}

/* One decimal, rounded half away from zero (fast path for reasons). */
static bool put_1d(ds_buf_t *b, double v) {
    double x = round(v * 10.0);
    bool ok = true;
    if (x < 0) {
        ok = ds_score_put_s(b, "-");
        x = -x;
    }
    if (!(x < 1.0e18))
        return ok && ds_score_put_s(b, "inf");
    uint64_t n = (uint64_t)x;
    char d[3] = {'.', (char)('0' + n % 10), 0};
    return ok && ds_score_put_u(b, n / 10) && ds_score_put_s(b, d);
}

static const char *opt(const ds_score_unit_t *u, uint32_t id, const char *none) {
    return id == NOID ? none : S(u, id);
}

/* Append the words of one bucket (NUL-terminated), with its points unless
 * `bare`; false on OOM. */
static bool bucket_text(const ds_score_unit_t *u, const bkt_t *k, ds_buf_t *b, bool bare) {
    bool ok = true;
    switch (bk_kind(k)) {
    case BK_CONF_INS:
        ok = ds_score_put_s(b, stage_words[bk_b(k)]) && ds_score_put_s(b, " content on insight ") &&
             ds_score_put_s(b, S(u, k->a));
        break;
    case BK_CONF_CONTENT:
        ok = ds_score_put_s(b, stage_words[bk_b(k)]) && ds_score_put_s(b, " content ") &&
             ds_score_put_s(b, opt(u, k->a, "(unnamed)")) && ds_score_put_s(b, " (no insight)");
        break;
    case BK_SHARE: {
        uint32_t n = bk_b(k);
        ok = ds_score_put_s(b, "Shared ") && ds_score_put_s(b, opt(u, k->a, "content")) && ds_score_put_s(b, " with ") &&
             ds_score_put_u(b, n) && ds_score_put_s(b, n == 1 ? " colleague" : " colleagues");
        break;
    }
    case BK_FOLLOW:
        ok = ds_score_put_s(b, "Colleague ") && ds_score_put_s(b, S(u, k->a)) && ds_score_put_s(b, " engaged insight ") &&
             ds_score_put_s(b, S(u, bk_b(k))) && ds_score_put_s(b, " after a share");
        break;
    default:
        ok = ds_score_put_s(b, "Attended webinar ") && ds_score_put_s(b, S(u, k->a)) &&
             ds_score_put_s(b, " with colleagues");
        break;
    }
    if (ok && !bare)
        ok = ds_score_put_s(b, ": ") && put_1d(b, k->v) && ds_score_put_s(b, " pts");
    return ok && ds_buf_append(b, "", 1) == 0;
}

/* Order of reasons: larger value first, then by text. */
static int bucket_cmp(const ds_score_unit_t *u, const bkt_t *x, const bkt_t *y) {
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    ds_buf_t *b = &u->scr->text;
    size_t base = b->len;
    if (!bucket_text(u, x, b, false))
        return 0;
    size_t oy = b->len;
    int c = 0;
    if (bucket_text(u, y, b, false))
        c = strcmp((const char *)b->data + base, (const char *)b->data + oy);
    b->len = base;
    return c;
}

/* Fill out->reasons with the top buckets (without their points when
 * `bare`); texts go to scratch text. */
static void reasons_fill(const ds_score_unit_t *u, const lead_t *L, ds_lead_score_t *out,
                         bool bare) {
    scratch_t *sc = u->scr;
    size_t n = 0;
    for (uint32_t i = 0; i < L->nbkt; i++) {
        const bkt_t *k = &L->bkt[i];
        if (ds_score_r10(k->v) < 1) /* would read "0.0 pts" */
            continue;
        size_t pos = n;
        while (pos > 0 && bucket_cmp(u, k, &L->bkt[sc->cand[pos - 1]]) < 0)
            pos--;
        if (pos >= DS_MAX_REASONS)
            continue;
        size_t last = n < DS_MAX_REASONS ? n : DS_MAX_REASONS - 1;
        for (size_t j = last; j > pos; j--)
            sc->cand[j] = sc->cand[j - 1];
        sc->cand[pos] = i;
        if (n < DS_MAX_REASONS)
            n++;
    }
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        sc->roff[i] = sc->text.len;
        if (!bucket_text(u, &L->bkt[sc->cand[i]], &sc->text, bare))
            break;
        ok++;
    }
    for (size_t i = 0; i < ok; i++)
        out->reasons[i] = (const char *)sc->text.data + sc->roff[i];
    out->reasons_count = ok;
}

/* Build the public record of a lead.  `n_out` > 0: output id "<lead>:<n>"
 * (an emitted record: reasons with their points); 0: the stored view. */
void ds_score_lead_record(const ds_score_unit_t *u, const lead_t *L, const lview_t *v, int prev_tier,
                        uint32_t n_out, ds_lead_score_t *out) {
    scratch_t *sc = u->scr;
    memset(out, 0, sizeof(*out));
    ds_buf_reset(&sc->text);
    bool has_oid = false;
    if (n_out) {
        has_oid = ds_score_put_s(&sc->text, S(u, L->id)) && ds_score_put_s(&sc->text, ":") &&
                  ds_score_put_u(&sc->text, n_out) && ds_buf_append(&sc->text, "", 1) == 0;
        if (!has_oid)
            ds_buf_reset(&sc->text);
    }
    reasons_fill(u, L, out, n_out == 0);
    out->output_id = has_oid ? (const char *)sc->text.data : NULL;
    out->lead_id = S(u, L->id);
    out->account_id = u->is_account ? u->key : NULL;
    out->confront = v->c;
    out->connect = v->n;
    out->mobilizer = v->m;
    out->tier = v->tier;
    out->previous_tier = prev_tier;
    out->top_insight = v->top == NOID ? NULL : S(u, v->top);
    out->furthest_stage = v->furthest;
    out->as_of = L->as_of == UNSET_T ? 0 : L->as_of;
    out->events_applied = L->events_applied;
}

void ds_score_lead_public(const ds_score_unit_t *u, uint32_t li, ds_lead_score_t *out) {
    const lead_t *L = u->leads[li];
    lview_t v;
    ds_score_lead_view(u, L, &v);
    ds_score_lead_record(u, L, &v, L->em_tier, 0, out);
}

