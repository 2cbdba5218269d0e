/*
 * learn.h — a stage's max_quiet_days learned from won deals (pure C).
 *
 * Input: the quiet spells of the won deals while their verified stage was
 * the stage (ds_backtest_spells), in days.  The learned value is the
 * nearest-rank Q quantile of the spells (the ceil(Q × n)-th smallest), so
 * that at least Q of them end within it, rounded up to three significant
 * digits; it is learned only when at least `min_deals` won deals
 * contributed, else the current value stays.
 */
#ifndef DS_LEARN_H
#define DS_LEARN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ds_learned {
    bool learned; /* enough deals: value is the rounded quantile */
    size_t deals, spells;
    double median_days;   /* NAN: no spell */
    double quantile_days; /* unrounded; NAN: no spell */
    double current;       /* the input rules' value */
    double value;         /* what the output rules get */
} ds_learned_t;

/** The nearest-rank q quantile (0 < q <= 1) of v[0 .. n), sorted in
 *  place: the ceil(q × n)-th smallest value (at least the first); NAN when
 *  n is 0. */
double ds_learn_quantile(double *v, size_t n, double q);

/** v rounded up to three significant digits (0 for v <= 0). */
double ds_learn_round_up(double v);

/** Learn one stage.  `spells` (n values) is not changed. */
void ds_learn_stage(const double *spells, size_t n, size_t deals, double q, size_t min_deals,
                    double current, ds_learned_t *out);

/** The evidence of a stage in one line, for a YAML comment, e.g.
 *  "learned from 34 won deals, 51 quiet spells: median 6.2 d, 0.9 quantile
 *  15.3 d (was 21)". */
void ds_learn_note(const ds_learned_t *l, double q, size_t min_deals, char *out, size_t n);

#endif
