/* Seeds as samples (report/stats.h): mean and standard deviation, per-seed values and convergence
 * counts of a cell, the best-or-tied marks of a column, Student's t distribution and Welch's
 * one-sided t-test, each against numbers computed by hand or outside this code.
 *
 * The reference numbers of the t distribution and of Welch's test were computed with mpmath 1.3
 * (Python, 30 digits) by integrating the t density, not through the incomplete beta function:
 *   tcdf(t, df) = quad(gamma((df+1)/2) / (sqrt(df*pi) gamma(df/2)) (1 + x^2/df)^(-(df+1)/2),
 *                      [-inf, 0, t])
 * and Welch's t, df (Welch-Satterthwaite) and p = tcdf(t, df) from the samples' means and sample
 * variances in the same precision. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report/stats.h"

START_TEST(test_mean_and_sample_sd_match_hand_computation) {
    /* 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations 32, sample variance 32/7 */
    const double x[] = {2, 4, 4, 4, 5, 5, 7, 9};
    double m, sd;
    stats_mean_sd(&m, &sd, x, 8);
    ck_assert_double_eq_tol(m, 5.0, 1e-15);
    ck_assert_double_eq_tol(sd, sqrt(32.0 / 7.0), 1e-15);
    stats_mean_sd(&m, &sd, x, 1); /* one value: no spread to speak of */
    ck_assert_double_eq(m, 2.0);
    ck_assert(isnan(sd));
    stats_mean_sd(&m, &sd, x, 0);
    ck_assert(isnan(m) && isnan(sd));
    /* no cancellation: a spread of 1 around 1e9 (the squares, near 1e18, have no units digit) */
    const double y[] = {1e9 + 1, 1e9 + 2, 1e9 + 3};
    stats_mean_sd(&m, &sd, y, 3);
    ck_assert_double_eq(sd, 1.0);
}
END_TEST

static ReportSummary run(const char *path, unsigned seed, double acc, double baseline) {
    ReportSummary r;
    memset(&r, 0, sizeof r);
    snprintf(r.path, sizeof r.path, "%s", path);
    r.seed = seed, r.test_acc = acc, r.baseline = baseline;
    return r;
}

START_TEST(test_seed_cell_counts_distinct_seeds_and_the_converged) {
    /* seeds 2, 0, 1 (out of order), seed 1 reported twice (averaged: 0.36), one run without an
     * accuracy (left out); baseline 0.30, margin 3 points: seed 2 at 31% did not converge */
    const ReportSummary r[] = {run("c", 2, 0.31, 0.30), run("a", 0, 0.40, 0.30),
                               run("b", 1, 0.35, 0.30), run("d", 1, 0.37, 0.30),
                               run("e", 3, NAN, 0.30)};
    const ReportSummary *p[5] = {&r[0], &r[1], &r[2], &r[3], &r[4]};
    SeedCell c;
    double v[5];
    stats_seed_cell(&c, v, p, 5, 3.0);
    ck_assert_int_eq(c.n, 3);
    ck_assert_int_eq(c.converged, 2);
    ck_assert_double_eq_tol(v[0], 40.0, 1e-12); /* seed order */
    ck_assert_double_eq_tol(v[1], 36.0, 1e-12);
    ck_assert_double_eq_tol(v[2], 31.0, 1e-12);
    /* mean 107/3; deviations 13/3, 1/3, -14/3: variance (169 + 1 + 196) / 9 / 2 = 61/3 */
    ck_assert_double_eq_tol(c.mean, 107.0 / 3.0, 1e-12);
    ck_assert_double_eq_tol(c.sd, sqrt(61.0 / 3.0), 1e-12);
    /* a margin of 0: beating the baseline at all; exactly at the baseline is not converged */
    const ReportSummary q[] = {run("a", 0, 0.30, 0.30), run("b", 1, 0.3001, 0.30)};
    const ReportSummary *pq[2] = {&q[0], &q[1]};
    stats_seed_cell(&c, NULL, pq, 2, 0.0);
    ck_assert_int_eq(c.n, 2);
    ck_assert_int_eq(c.converged, 1);
    /* no run with an accuracy */
    stats_seed_cell(&c, NULL, p + 4, 1, 3.0);
    ck_assert_int_eq(c.n, 0);
    ck_assert(isnan(c.mean) && isnan(c.sd));
}
END_TEST

START_TEST(test_marks_bold_only_clear_of_every_other_interval_else_ties) {
    StatsMark k[4];
    /* 36.4 ± 0.5 against 35.0 ± 0.8: [35.9, 36.9] and [34.2, 35.8] do not meet: best */
    const double m1[] = {35.0, 36.4, NAN, 30.0}, s1[] = {0.8, 0.5, NAN, 1.0};
    stats_marks(k, m1, s1, 4);
    ck_assert_int_eq(k[0], STATS_MARK_NONE);
    ck_assert_int_eq(k[1], STATS_MARK_BEST);
    ck_assert_int_eq(k[2], STATS_MARK_NONE);
    ck_assert_int_eq(k[3], STATS_MARK_NONE);
    /* the second's interval reaches the best's: both tied; the third, clear of the best, is not
     * marked even though it meets the second */
    const double m2[] = {35.0, 36.4, 34.0, 20.0}, s2[] = {1.0, 0.5, 0.2, NAN};
    stats_marks(k, m2, s2, 4);
    ck_assert_int_eq(k[0], STATS_MARK_TIE);
    ck_assert_int_eq(k[1], STATS_MARK_TIE);
    ck_assert_int_eq(k[2], STATS_MARK_NONE);
    ck_assert_int_eq(k[3], STATS_MARK_NONE);
    /* a wide interval of a lower mean still ties: the best must be clear of every other cell */
    const double m3[] = {36.4, 35.0, 30.0}, s3[] = {0.1, 0.2, 6.5};
    stats_marks(k, m3, s3, 3);
    ck_assert_int_eq(k[0], STATS_MARK_TIE);
    ck_assert_int_eq(k[1], STATS_MARK_NONE);
    ck_assert_int_eq(k[2], STATS_MARK_TIE);
    /* single seeds (no sd): equal values tie, intervals that touch meet */
    const double m4[] = {50.0, 50.0, 49.9}, s4[] = {NAN, NAN, NAN};
    stats_marks(k, m4, s4, 3);
    ck_assert_int_eq(k[0], STATS_MARK_TIE);
    ck_assert_int_eq(k[1], STATS_MARK_TIE);
    ck_assert_int_eq(k[2], STATS_MARK_NONE);
    const double m5[] = {37.0, 36.0}, s5[] = {0.5, 0.5};
    stats_marks(k, m5, s5, 2);
    ck_assert_int_eq(k[0], STATS_MARK_TIE);
    /* one filled cell: nothing to be best against */
    const double m6[] = {NAN, 40.0}, s6[] = {NAN, NAN};
    stats_marks(k, m6, s6, 2);
    ck_assert_int_eq(k[1], STATS_MARK_NONE);
}
END_TEST

START_TEST(test_t_cdf_matches_independent_values) {
    /* the 95% points of printed t tables (5 and 10 degrees of freedom), df = 1 (Cauchy: 1/2 +
     * atan(t)/pi, by hand) and fractional degrees of freedom, against mpmath (see the top) */
    const struct {
        double t, df, p;
    } c[] = {
        {2.015048373, 5, 0.94999999997875412}, {1.812461123, 10, 0.95000000001536329},
        {12.0, 1.0, 0.5 + atan(12.0) / M_PI},  {12.0, 1.0, 0.97353532394041012},
        {-1.5, 2.5, 0.12391822654314813},      {0.3, 7.3, 0.61372973191014498},
        {-40.0, 3.5, 4.3832205546865099e-6},   {0.0, 4.0, 0.5},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        ck_assert_msg(fabs(stats_t_cdf(c[i].t, c[i].df) - c[i].p) <= 1e-12 * fmax(c[i].p, 1e-3),
                      "t = %g, df = %g: %.17g, expected %.17g", c[i].t, c[i].df,
                      stats_t_cdf(c[i].t, c[i].df), c[i].p);
    /* I_x(a, b) itself: I_0.3(2.5, 0.5) and I_0.7(3, 4) (the latter a polynomial: 0.92953) */
    ck_assert_double_eq_tol(stats_beta_inc(2.5, 0.5, 0.3), 0.018927124071945652, 1e-15);
    ck_assert_double_eq_tol(stats_beta_inc(3, 4, 0.7), 0.92953, 1e-14);
}
END_TEST

START_TEST(test_welch_one_sided_p_matches_independent_computation) {
    const struct {
        double a[4], b[4];
        size_t na, nb;
        double t, df, p;
    } c[] = {
        /* a clear drop: 41.0 ± 1.0 -> 37.17 ± 1.26 */
        {{40.0, 42.0, 41.0},
         {37.0, 38.5, 36.0},
         3,
         3,
         -4.1309219466158227,
         3.8059405940594059,
         0.0080180950050622847},
        /* a drop within the spread, unequal sizes */
        {{36.4, 35.9, 36.9},
         {36.1, 35.0, 37.2, 35.8},
         3,
         4,
         -0.6956083436402483,
         4.7463059693908632,
         0.25962421751531484},
        {{33.0, 34.5, 35.25},
         {34.0, 33.5, 35.0},
         3,
         3,
         -0.10482848367219183,
         3.4845360824742268,
         0.46113113158507617},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        Welch w;
        ck_assert_int_eq(stats_welch_less(&w, c[i].a, c[i].na, c[i].b, c[i].nb), 0);
        ck_assert_double_eq_tol(w.t, c[i].t, 1e-12);
        ck_assert_double_eq_tol(w.df, c[i].df, 1e-12);
        ck_assert_double_eq_tol(w.p, c[i].p, 1e-12);
    }
    /* the other direction is the complement: an improvement has p near 1 */
    Welch w;
    ck_assert_int_eq(stats_welch_less(&w, c[0].b, 3, c[0].a, 3), 0);
    ck_assert_double_eq_tol(w.p, 1.0 - 0.0080180950050622847, 1e-12);
}
END_TEST

START_TEST(test_welch_is_undefined_below_two_values_or_without_spread) {
    const double a[] = {40.0, 41.0, 42.0}, b[] = {38.0, 38.0, 38.0}, one[] = {30.0};
    Welch w = {1, 2, 3};
    ck_assert_int_eq(stats_welch_less(&w, a, 3, one, 1), -1);
    ck_assert_int_eq(stats_welch_less(&w, one, 1, a, 3), -1);
    ck_assert_int_eq(stats_welch_less(&w, b, 3, b, 3), -1);
    ck_assert_double_eq(w.p, 3); /* untouched */
    /* spread on one side only is defined: df = n - 1 of that side */
    ck_assert_int_eq(stats_welch_less(&w, a, 3, b, 3), 0);
    ck_assert_double_eq_tol(w.df, 2.0, 1e-12);
    ck_assert_double_eq_tol(w.t, -3.0 / sqrt(1.0 / 3.0), 1e-12);
}
END_TEST

static Suite *stats_suite(void) {
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_mean_and_sample_sd_match_hand_computation);
    tcase_add_test(tc, test_seed_cell_counts_distinct_seeds_and_the_converged);
    tcase_add_test(tc, test_marks_bold_only_clear_of_every_other_interval_else_ties);
    tcase_add_test(tc, test_t_cdf_matches_independent_values);
    tcase_add_test(tc, test_welch_one_sided_p_matches_independent_computation);
    tcase_add_test(tc, test_welch_is_undefined_below_two_values_or_without_spread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(stats_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
