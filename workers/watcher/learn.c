/*
 * learn.c — quantiles of won deals' quiet spells (see learn.h).  The
 * nearest-rank quantile is a value some spell had, and a threshold equal
 * to it lets that spell pass: NO_BUYER_SIGNAL holds only when the quiet
 * time is over max_quiet_days.  Rounding up keeps that true.
 */
#include "learn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backtest.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ds_learn_quantile(double *v, size_t n, double q) {
    if (!n)
        return NAN;
    qsort(v, n, sizeof(*v), cmp_double);
    double r = ceil(q * (double)n - 1e-9); /* q × n may land a hair over a whole number */
    size_t k = r < 1 ? 1 : r > (double)n ? n : (size_t)r;
    return v[k - 1];
}

double ds_learn_round_up(double v) {
    if (!(v > 0))
        return 0;
    double scale = pow(10, floor(log10(v)) - 2);
    double x = ceil(v / scale * (1 - 1e-12)) * scale;
    char buf[32];
    snprintf(buf, sizeof(buf), "%.3g", x);
    return strtod(buf, NULL);
}

void ds_learn_stage(const double *spells, size_t n, size_t deals, double q, size_t min_deals,
                    double current, ds_learned_t *out) {
    memset(out, 0, sizeof(*out));
    out->deals = deals;
    out->spells = n;
    out->current = current;
    out->value = current;
    out->median_days = out->quantile_days = NAN;
    double *v = n ? malloc(n * sizeof(*v)) : NULL;
    if (n && !v)
        return; /* out of memory: nothing learned */
    if (n)
        memcpy(v, spells, n * sizeof(*v));
    out->quantile_days = ds_learn_quantile(v, n, q);
    out->median_days = ds_backtest_median(v, n);
    free(v);
    if (n && deals >= min_deals && deals > 0) {
        out->learned = true;
        out->value = ds_learn_round_up(out->quantile_days);
    }
}

void ds_learn_note(const ds_learned_t *l, double q, size_t min_deals, char *out, size_t n) {
    if (l->learned)
        snprintf(out, n,
                 "learned from %zu won deals, %zu quiet spells: median %.3g d, %g quantile %.3g d "
                 "(was %g)",
                 l->deals, l->spells, l->median_days, q, l->quantile_days, l->current);
    else if (l->spells)
        snprintf(out, n,
                 "kept: %zu won deals, %zu quiet spells (median %.3g d, %g quantile %.3g d); "
                 "fewer deals than --min-deals %zu",
                 l->deals, l->spells, l->median_days, q, l->quantile_days, min_deals);
    else
        snprintf(out, n, "kept: no won deal had a quiet spell at this stage");
}
