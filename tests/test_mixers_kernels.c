/* The kernel (feature-map) mechanisms: linear, performer, rfa. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "gradcheck.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "mixer_harness.h"
#include "mixers/attn_mixer.h"

START_TEST(test_performer_error_against_softmax_falls_as_features_grow) {
    const int M[4] = {4, 32, 256, 2048};
    double mean[4];
    g_xscale = 0.5f;
    for (int i = 0; i < 4; i++) {
        char opts[64];
        snprintf(opts, sizeof opts, "features=%d", M[i]);
        double worst;
        error_vs_full("performer", opts, NULL, 1, 40, 8, 2, &worst, &mean[i]);
    }
    g_xscale = 1.0f;
    for (int i = 1; i < 4; i++)
        ck_assert_msg(mean[i] < mean[i - 1], "error with %d features (%g) is not below %d's (%g)",
                      M[i], mean[i], M[i - 1], mean[i - 1]);
    ck_assert_msg(mean[3] < 0.25 * mean[0], "2048 features: %g, 4 features: %g", mean[3], mean[0]);
}
END_TEST

static Suite *mixers_kernels_suite(void) {
    Suite *s = suite_create("mixers_kernels");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_performer_error_against_softmax_falls_as_features_grow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(mixers_kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
