/* The optimiser and the schedules against their defining formulas. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "train/adamw.h"
#include "train/schedule.h"

static void two_tensors(ParamTable *t) {
    params_init(t);
    params_add2(t, "w", 5, 7, INIT_NORMAL, 1.0f, 1); /* decayed */
    params_add1(t, "b", 9, INIT_ZEROS, 0, 0);        /* not decayed */
}

START_TEST(test_adamw_matches_reference_update_with_decoupled_decay) {
    ParamTable t;
    two_tensors(&t);
    float *p = calloc(t.total, sizeof *p), *g = calloc(t.total, sizeof *g);
    double *rp = calloc(t.total, sizeof *rp), *rm = calloc(t.total, sizeof *rm),
           *rv = calloc(t.total, sizeof *rv);
    gc_fill_normal(p, t.total, 1, 1.0f);
    for (size_t i = 0; i < t.total; i++) rp[i] = p[i];
    AdamW o;
    const double b1 = 0.9, b2 = 0.98, eps = 1e-6, wd = 0.1, lr = 0.01;
    ck_assert_int_eq(adamw_init(&o, t.total, b1, b2, eps, wd), 0);
    for (int step = 1; step <= 4; step++) {
        gc_fill_normal(g, t.total, 100 + step, 1.0f);
        adamw_step(&o, &t, p, g, lr);
        for (int k = 0; k < t.n; k++)
            for (size_t j = 0; j < t.info[k].size; j++) {
                const size_t i = t.info[k].offset + j;
                rm[i] = b1 * rm[i] + (1 - b1) * g[i];
                rv[i] = b2 * rv[i] + (1 - b2) * g[i] * g[i];
                const double mh = rm[i] / (1 - pow(b1, step)), vh = rv[i] / (1 - pow(b2, step));
                rp[i] -= lr * (mh / (sqrt(vh) + eps) + (t.info[k].decay ? wd * rp[i] : 0.0));
            }
    }
    for (int k = 0; k < t.n; k++)
        for (size_t j = 0; j < t.info[k].size; j++) {
            const size_t i = t.info[k].offset + j;
            ck_assert_double_eq_tol(p[i], rp[i], 1e-5);
        }
    adamw_free(&o);
    free(p), free(g), free(rp), free(rm), free(rv);
    params_free(&t);
}
END_TEST

START_TEST(test_weight_decay_touches_only_decay_tensors) {
    ParamTable t;
    two_tensors(&t);
    float *p = calloc(t.total, sizeof *p), *g = calloc(t.total, sizeof *g);
    for (size_t i = 0; i < t.total; i++) p[i] = 2.0f;
    AdamW o;
    ck_assert_int_eq(adamw_init(&o, t.total, 0.9, 0.999, 1e-8, 0.5), 0);
    adamw_step(&o, &t, p, g, 0.1); /* zero gradient: only the decay moves parameters */
    for (size_t j = 0; j < t.info[0].size; j++)
        ck_assert_float_eq_tol(p[t.info[0].offset + j], 2.0f * (1 - 0.1f * 0.5f), 1e-6);
    for (size_t j = 0; j < t.info[1].size; j++) ck_assert_float_eq(p[t.info[1].offset + j], 2.0f);
    adamw_free(&o);
    free(p), free(g);
    params_free(&t);
}
END_TEST

START_TEST(test_clipping_scales_to_max_norm_and_reports_the_norm) {
    const size_t n = 1000;
    float *g = malloc(n * sizeof *g);
    gc_fill_normal(g, n, 3, 1.0f);
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += (double)g[i] * g[i];
    ref = sqrt(ref);
    ck_assert_double_eq_tol(grad_clip(g, n, 0.0), ref, 1e-9 * ref); /* 0 = no clipping */
    ck_assert_double_eq_tol(grad_global_norm(g, n), ref, 1e-9 * ref);
    ck_assert_double_eq_tol(grad_clip(g, n, 2.0), ref, 1e-9 * ref);
    ck_assert_double_eq_tol(grad_global_norm(g, n), 2.0, 1e-5);
    /* a norm below the limit leaves g alone */
    const double before = grad_global_norm(g, n);
    grad_clip(g, n, 10.0);
    ck_assert_double_eq(grad_global_norm(g, n), before);
    free(g);
}
END_TEST

START_TEST(test_global_norm_has_the_same_bits_for_any_thread_count) {
    const size_t n = 123457;
    float *g = malloc(n * sizeof *g);
    gc_fill_normal(g, n, 4, 1.0f);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const double a = grad_global_norm(g, n);
    omp_set_num_threads(2);
    const double b = grad_global_norm(g, n);
    omp_set_num_threads(saved);
    ck_assert(a == b);
    free(g);
}
END_TEST

START_TEST(test_schedules_follow_their_formulas) {
    const double lr = 0.01;
    /* linear warm-up for every kind */
    for (int k = 0; k < 4; k++) {
        ck_assert_double_eq_tol(schedule_lr((SchedKind)k, lr, 100, 1000, 1), lr / 100, 1e-15);
        ck_assert_double_eq_tol(schedule_lr((SchedKind)k, lr, 100, 1000, 50), lr / 2, 1e-15);
        ck_assert_double_eq_tol(schedule_lr((SchedKind)k, lr, 100, 1000, 100), lr, 1e-15);
    }
    ck_assert_double_eq(schedule_lr(SCHED_CONSTANT, lr, 100, 1000, 777), lr);
    ck_assert_double_eq_tol(schedule_lr(SCHED_COSINE, lr, 100, 1000, 550), lr / 2, 1e-12);
    ck_assert_double_eq_tol(schedule_lr(SCHED_COSINE, lr, 100, 1000, 1000), 0.0, 1e-15);
    ck_assert_double_eq_tol(schedule_lr(SCHED_LINEAR, lr, 100, 1000, 325), lr * 0.75, 1e-12);
    /* LRA's rsqrt decay, normalised so that lr is the peak at the end of warm-up */
    ck_assert_double_eq_tol(schedule_lr(SCHED_RSQRT, lr, 100, 1000, 400), lr / 2, 1e-12);
    ck_assert_double_eq_tol(schedule_lr(SCHED_RSQRT, lr, 0, 1000, 4), lr / 2, 1e-12);
    ck_assert_double_eq_tol(schedule_lr(SCHED_COSINE, lr, 0, 1000, 1),
                            lr * 0.5 * (1 + cos(M_PI * 0.001)), 1e-12);
}
END_TEST

static Suite *train_suite(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_adamw_matches_reference_update_with_decoupled_decay);
    tcase_add_test(tc, test_weight_decay_touches_only_decay_tensors);
    tcase_add_test(tc, test_clipping_scales_to_max_norm_and_reports_the_norm);
    tcase_add_test(tc, test_global_norm_has_the_same_bits_for_any_thread_count);
    tcase_add_test(tc, test_schedules_follow_their_formulas);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(train_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
