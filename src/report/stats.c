#include "report/stats.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"

void stats_mean_sd(double *mean, double *sd, const double *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    const double m = n ? s / (double)n : NAN;
    double ss = 0.0; /* two passes: no cancellation when the spread is small against the mean */
    for (size_t i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = n >= 2 ? sqrt(ss / (double)(n - 1)) : NAN;
}

/* The continued fraction of I_x(a, b) (DLMF 8.17.22): 1 / (1 + d1 / (1 + d2 / (1 + ...))) with
 * d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)), d_{2m} = m (b - m) x / ((a + 2m - 1)
 * (a + 2m)). The denominator g = 1 + d1 / (1 + ...) is evaluated by the modified Lentz method;
 * it converges fast for x < (a + 1) / (a + b + 2). */
static double beta_fraction(double a, double b, double x) {
    const double tiny = 1e-300;
    double g = 1.0, c = 1.0, d = 0.0;
    for (int k = 1; k <= 4000; k++) {
        const int m = k / 2;
        const double dk = k % 2 ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                                : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
        d = 1.0 + dk * d;
        d = 1.0 / (fabs(d) < tiny ? tiny : d);
        c = 1.0 + dk / c;
        if (fabs(c) < tiny) c = tiny;
        const double delta = c * d;
        g *= delta;
        if (fabs(delta - 1.0) < 4 * DBL_EPSILON) break;
    }
    return 1.0 / g;
}

double stats_beta_inc(double a, double b, double x) {
    XB_ASSERT(a > 0 && b > 0);
    if (!(x > 0)) return 0.0;
    if (!(x < 1)) return 1.0;
    /* x^a (1 - x)^b / (a B(a, b)) in logarithms */
    const double lfront = a * log(x) + b * log1p(-x) + lgamma(a + b) - lgamma(a) - lgamma(b);
    if (x < (a + 1) / (a + b + 2)) return exp(lfront) * beta_fraction(a, b, x) / a;
    return 1.0 - exp(lfront) * beta_fraction(b, a, 1.0 - x) / b; /* I_x(a,b) = 1 - I_{1-x}(b,a) */
}

double stats_t_cdf(double t, double df) {
    XB_ASSERT(df > 0);
    if (isnan(t)) return NAN;
    if (isinf(t)) return t > 0 ? 1.0 : 0.0;
    const double tail = 0.5 * stats_beta_inc(0.5 * df, 0.5, df / (df + t * t)); /* P(T > |t|) */
    return t >= 0 ? 1.0 - tail : tail;
}

int stats_welch_less(Welch *out, const double *a, size_t na, const double *b, size_t nb) {
    if (na < 2 || nb < 2) return -1;
    double ma, sa, mb, sb;
    stats_mean_sd(&ma, &sa, a, na);
    stats_mean_sd(&mb, &sb, b, nb);
    const double qa = sa * sa / (double)na, qb = sb * sb / (double)nb, se2 = qa + qb;
    if (!(se2 > 0)) return -1;
    out->t = (mb - ma) / sqrt(se2);
    out->df = se2 * se2 / (qa * qa / (double)(na - 1) + qb * qb / (double)(nb - 1));
    out->p = stats_t_cdf(out->t, out->df);
    return 0;
}

static int by_seed(const void *x, const void *y) {
    const ReportSummary *a = *(const ReportSummary *const *)x,
                        *b = *(const ReportSummary *const *)y;
    if (a->seed != b->seed) return a->seed < b->seed ? -1 : 1;
    return strcmp(a->path, b->path); /* a fixed order of the sums within a seed */
}

void stats_seed_cell(SeedCell *out, double *values, const ReportSummary *const *runs, size_t nrun,
                     double margin) {
    const ReportSummary **r = malloc((nrun ? nrun : 1) * sizeof *r);
    double *v = malloc((nrun ? nrun : 1) * sizeof *v);
    XB_ASSERT(r && v);
    size_t m = 0, n = 0;
    for (size_t i = 0; i < nrun; i++)
        if (!isnan(runs[i]->test_acc)) r[m++] = runs[i];
    qsort(r, m, sizeof *r, by_seed);
    int converged = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        double acc = 0.0, base = 0.0;
        for (; j < m && r[j]->seed == r[i]->seed; j++)
            acc += r[j]->test_acc, base += r[j]->baseline;
        acc = 100.0 * acc / (double)(j - i), base = 100.0 * base / (double)(j - i);
        converged += !(acc - base <= margin); /* a NaN baseline: nothing to judge against */
        v[n++] = acc;
        i = j;
    }
    stats_mean_sd(&out->mean, &out->sd, v, n);
    out->n = (int)n;
    out->converged = converged;
    if (values) memcpy(values, v, n * sizeof *v);
    free(r);
    free(v);
}

/* [mean - sd, mean + sd] meets [mean' - sd', mean' + sd'] (a NaN sd counts as 0). */
static int meets(double m1, double s1, double m2, double s2) {
    s1 = isnan(s1) ? 0.0 : s1, s2 = isnan(s2) ? 0.0 : s2;
    return m1 - s1 <= m2 + s2 && m2 - s2 <= m1 + s1;
}

void stats_marks(StatsMark *mark, const double *mean, const double *sd, size_t n) {
    size_t best = n, filled = 0;
    for (size_t i = 0; i < n; i++) {
        mark[i] = STATS_MARK_NONE;
        if (isnan(mean[i])) continue;
        filled++;
        if (best == n || mean[i] > mean[best]) best = i;
    }
    if (filled < 2) return;
    int tied = 0;
    for (size_t i = 0; i < n; i++)
        if (i != best && !isnan(mean[i]) && meets(mean[best], sd[best], mean[i], sd[i])) {
            mark[i] = STATS_MARK_TIE;
            tied = 1;
        }
    mark[best] = tied ? STATS_MARK_TIE : STATS_MARK_BEST;
}
