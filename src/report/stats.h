/* Seeds of one experiment as a sample: mean and standard deviation, how many runs converged, which
 * cell of a column is best beyond the intervals, and Welch's t-test between two samples. What
 * `table`, `compare` and `plot` need to say how far a difference exceeds the spread of seeds. */
#ifndef XB_STATS_H
#define XB_STATS_H

#include <stddef.h>

#include "report/summary.h"

/* Mean of x[0..n) and its sample standard deviation (divisor n - 1); sd is NaN when n < 2 and
 * mean NaN when n == 0. */
void stats_mean_sd(double *mean, double *sd, const double *x, size_t n);

/* The regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1] (DLMF 8.17.2), by
 * its continued fraction (DLMF 8.17.22) evaluated with Lentz's method. */
double stats_beta_inc(double a, double b, double x);

/* P(T <= t) for Student's t distribution with df > 0 degrees of freedom (df need not be whole):
 * 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2 for t >= 0 (DLMF 8.17.5 with the t density). */
double stats_t_cdf(double t, double df);

/* Welch's unequal-variance t-test of "the mean of b is lower than the mean of a" (one-sided):
 * t = (mean_b - mean_a) / sqrt(var_a/n_a + var_b/n_b), the Welch-Satterthwaite degrees of freedom,
 * and p = P(T_df <= t). */
typedef struct Welch {
    double t, df, p;
} Welch;

/* Fills *out for samples a[0..na) and b[0..nb). Returns 0, or -1 (out untouched) when the test is
 * undefined: fewer than 2 values on a side, or no spread on either side. */
int stats_welch_less(Welch *out, const double *a, size_t na, const double *b, size_t nb);

/* The seeds of one cell: runs that share a task, a mechanism (and for `compare` a config but for
 * the seed). Reports of the same seed are one run repeated: their mean is that seed's value. */
typedef struct SeedCell {
    double mean, sd; /* test accuracy in %, over the seeds; sd NaN when n < 2, both NaN when 0 */
    int n;           /* distinct seeds with a test accuracy */
    int converged;   /* of them, those whose accuracy beats the majority baseline by more than
                      * the margin (a seed without a baseline counts as converged) */
} SeedCell;

/* Aggregates runs[0..nrun) (reports without a test accuracy are left out) into *out. values, when
 * not NULL, receives the n per-seed accuracies in % (room for nrun), in increasing seed order.
 * margin is in percentage points. */
void stats_seed_cell(SeedCell *out, double *values, const ReportSummary *const *runs, size_t nrun,
                     double margin);

/* How a cell of a column stands against the others. */
typedef enum { STATS_MARK_NONE, STATS_MARK_BEST, STATS_MARK_TIE } StatsMark;

/* The marks of a column of n cells, each an interval [mean - sd, mean + sd] (sd NaN or 0: the
 * point mean; mean NaN: an empty cell, never marked). The cell of the highest mean is BEST when
 * its interval meets no other cell's (intervals that touch meet); otherwise it and every cell
 * whose interval meets its interval are TIE. With fewer than two non-empty cells nothing is
 * marked. */
void stats_marks(StatsMark *mark, const double *mean, const double *sd, size_t n);

#endif
