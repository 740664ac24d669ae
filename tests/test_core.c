/* core/: the arena (planning by measuring, alignment, the stack discipline of scratch), the random
 * numbers (PCG32's published outputs, unbiased bounded draws, streams), the option schemas (what
 * is valid, as the error messages print it) and the error line's format. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/options.h"
#include "core/rng.h"

/* ---- arena ---- */

/* A measuring arena counts what the same allocations need from a real one: 64-byte blocks,
 * a peak that a reset does not lower. */
START_TEST(test_arena_measures_what_it_would_hand_out) {
    Arena m;
    arena_init_measure(&m);
    ck_assert_ptr_null(arena_alloc(&m, 1));
    ck_assert_uint_eq(m.used, 64);
    ck_assert_ptr_null(arena_floats(&m, 17)); /* 68 bytes: two blocks */
    ck_assert_uint_eq(m.used, 192);
    const size_t mark = arena_mark(&m);
    arena_alloc(&m, 1000);
    ck_assert_uint_eq(m.peak, 192 + 1024);
    arena_reset_to(&m, mark);
    ck_assert_uint_eq(m.used, 192);
    arena_alloc(&m, 64);
    ck_assert_uint_eq(m.peak, 192 + 1024); /* the peak stays */
    arena_reset(&m);
    ck_assert_uint_eq(m.used, 0);

    /* the same sequence fits exactly in a real arena of the measured peak */
    Arena a;
    ck_assert_int_eq(arena_init(&a, m.peak), 0);
    ck_assert_uint_eq(a.cap, m.peak);
    char *p = arena_alloc(&a, 1);
    float *f = arena_floats(&a, 17);
    ck_assert_ptr_eq((char *)f, p + 64);
    const size_t at = arena_mark(&a);
    char *big = arena_alloc(&a, 1000);
    ck_assert_ptr_eq(big, p + 192);
    ck_assert_uint_eq(a.used, a.cap);
    arena_reset_to(&a, at);
    ck_assert_ptr_eq(arena_alloc(&a, 64), big); /* scratch comes back at the mark */
    arena_destroy(&a);
    ck_assert_ptr_null(a.base);
}
END_TEST

START_TEST(test_arena_memory_is_aligned_and_floats_are_zeroed) {
    Arena a;
    ck_assert_int_eq(arena_init(&a, 4096), 0);
    for (size_t n = 1; n < 300; n += 37) {
        void *p = arena_alloc(&a, n);
        ck_assert_uint_eq((uintptr_t)p % XB_ALIGN, 0);
        memset(p, 0xff, n);
    }
    arena_reset(&a);
    float *f = arena_floats(&a, 200); /* over the 0xff bytes written above */
    for (int i = 0; i < 200; i++) ck_assert_float_eq(f[i], 0.0f);
    arena_destroy(&a);
}
END_TEST

/* ---- random numbers ---- */

/* pcg32_srandom_r(42, 54) then pcg32_random_r, as pcg-random.org's pcg32-demo prints them. */
START_TEST(test_rng_is_pcg32) {
    static const uint32_t want[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u,
                                     0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
    Rng r;
    rng_seed(&r, 42, 54);
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(rng_u32(&r), want[i]);
}
END_TEST

/* Streams of one seed, and seeds of one stream, are different sequences; the same pair is the
 * same sequence. */
START_TEST(test_rng_streams_and_seeds_give_other_sequences) {
    Rng a, b, c, d;
    rng_seed(&a, 7, RNG_STREAM_DATA);
    rng_seed(&b, 7, RNG_STREAM_INIT);
    rng_seed(&c, 8, RNG_STREAM_DATA);
    rng_seed(&d, 7, RNG_STREAM_DATA);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 64; i++) {
        const uint32_t x = rng_u32(&a);
        same_ab += x == rng_u32(&b);
        same_ac += x == rng_u32(&c);
        ck_assert_uint_eq(x, rng_u32(&d));
    }
    ck_assert_int_le(same_ab, 1);
    ck_assert_int_le(same_ac, 1);
}
END_TEST

/* rng_below(n) stays below n and is uniform: each of 3 values, and each third of [0, 3·2^30)
 * (an n for which 2^32 mod n is a quarter of 2^32), within 5 sd of a third of 60000 draws. */
START_TEST(test_rng_below_is_uniform) {
    Rng r;
    rng_seed(&r, 1, 9);
    int count[3] = {0};
    for (int i = 0; i < 60000; i++) {
        const uint32_t x = rng_below(&r, 3);
        ck_assert_uint_lt(x, 3);
        count[x]++;
    }
    for (int k = 0; k < 3; k++) ck_assert_int_lt(abs(count[k] - 20000), 5 * 116);
    const uint32_t n = 3u << 30;
    int third[3] = {0};
    for (int i = 0; i < 60000; i++) {
        const uint32_t x = rng_below(&r, n);
        ck_assert_uint_lt(x, n);
        third[x / (1u << 30)]++;
    }
    for (int k = 0; k < 3; k++) ck_assert_int_lt(abs(third[k] - 20000), 5 * 116);
    ck_assert_uint_eq(rng_below(&r, 1), 0);
}
END_TEST

START_TEST(test_rng_uniform_normal_and_shuffle) {
    Rng r;
    rng_seed(&r, 3, 4);
    double s = 0, s2 = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        const float u = rng_uniform(&r);
        const double v = rng_uniform_double(&r);
        ck_assert(u >= 0.0f && u < 1.0f);
        ck_assert(v >= 0.0 && v < 1.0);
        const double z = rng_normal(&r);
        s += z, s2 += z * z;
    }
    ck_assert_double_lt(fabs(s / n), 0.02);        /* sd of the mean 0.003 */
    ck_assert_double_lt(fabs(s2 / n - 1.0), 0.03); /* sd of the variance 0.0045 */
    int idx[10], seen[10] = {0}, moved = 0;
    for (int i = 0; i < 10; i++) idx[i] = i;
    rng_shuffle(&r, idx, 10);
    for (int i = 0; i < 10; i++) seen[idx[i]]++, moved += idx[i] != i;
    for (int i = 0; i < 10; i++) ck_assert_int_eq(seen[i], 1);
    ck_assert_int_gt(moved, 0);
    /* the counter-based noise depends on (key, counter) only */
    ck_assert_float_eq(rng_hash_uniform(5, 77), rng_hash_uniform(5, 77));
    ck_assert_float_ne(rng_hash_uniform(5, 77), rng_hash_uniform(5, 78));
}
END_TEST

/* ---- option schemas ---- */

static const char *const POOL[] = {"cls", "mean", NULL};
static const OptSpec SPECS[] = {
    {.name = "block", .type = OPT_INT, .def = 64, .min = 1, .max = 4096, .help = "h"},
    {.name = "rate", .type = OPT_FLOAT, .def = 0.5, .min = 0, .max = 1, .help = "h"},
    {.name = "causal", .type = OPT_BOOL, .def = 1, .help = "h"},
    {.name = "pool", .type = OPT_ENUM, .def = 1, .choices = POOL, .help = "h"},
    {.name = "path", .type = OPT_STRING, .def_str = "a/b", .help = "h"},
};
#define NS ((int)(sizeof SPECS / sizeof *SPECS))

START_TEST(test_options_defaults_lookup_and_text) {
    OptValues v;
    opt_defaults(&v, SPECS, NS);
    ck_assert_int_eq(v.n, NS);
    ck_assert_int_eq(opt_int(&v, SPECS, NS, "block"), 64);
    ck_assert_double_eq(opt_float(&v, SPECS, NS, "rate"), 0.5);
    ck_assert_int_eq(opt_bool(&v, SPECS, NS, "causal"), 1);
    ck_assert_int_eq(opt_enum(&v, SPECS, NS, "pool"), 1);
    ck_assert_str_eq(opt_enum_name(&v, SPECS, NS, "pool"), "mean");
    ck_assert_str_eq(opt_str(&v, SPECS, NS, "path"), "a/b");
    for (int i = 0; i < NS; i++) ck_assert_int_eq(v.set[i], 0);
    ck_assert_int_eq(opt_index(SPECS, NS, "pool"), 3);
    ck_assert_int_eq(opt_index(SPECS, NS, "Pool"), -1);
    ck_assert_int_eq(opt_index(SPECS, NS, "bloc"), -1);
    static const char *const valid[NS] = {"an integer in [1, 4096]", "a number in [0, 1]",
                                          "true or false", "one of: cls, mean", "a string"};
    static const char *const def[NS] = {"64", "0.5", "true", "mean", "a/b"};
    for (int i = 0; i < NS; i++) {
        char buf[128];
        opt_describe_valid(&SPECS[i], buf, sizeof buf);
        ck_assert_str_eq(buf, valid[i]);
        opt_format_default(&SPECS[i], buf, sizeof buf);
        ck_assert_str_eq(buf, def[i]);
    }
    char small[12]; /* a description cut to the buffer stays a string */
    opt_describe_valid(&SPECS[3], small, sizeof small);
    ck_assert_str_eq(small, "one of: cls");
}
END_TEST

/* ---- errors ---- */

START_TEST(test_error_line_has_the_parts_that_are_known) {
    XbError e;
    char buf[2048];
    xb_error_clear(&e);
    ck_assert_int_eq(e.code, 0);
    ck_assert_int_eq(xb_error_set(&e, "c.yaml", 3, 7, "model.layers", "%d is not %s", 0, "valid"),
                     -1);
    ck_assert_int_eq(e.code, XB_EXIT_USAGE);
    xb_error_format(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "c.yaml:3:7: model.layers: 0 is not valid");
    xb_error_set(&e, "c.yaml", 3, 0, NULL, "m");
    xb_error_format(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "c.yaml:3:1: m"); /* an unknown column is the line's start */
    xb_error_set(&e, "--set", 0, 0, "train.lr", "m");
    xb_error_format(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "--set: train.lr: m");
    xb_error_set(&e, NULL, 0, 0, NULL, "only the message");
    xb_error_format(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "only the message");
    char cut[10];
    xb_error_set(&e, "c.yaml", 12, 4, "k", "m");
    xb_error_format(&e, cut, sizeof cut);
    ck_assert_str_eq(cut, "c.yaml:12");
    ck_assert_int_eq(xb_error_set(NULL, "f", 1, 1, "k", "m"), -1);
}
END_TEST

static Suite *core_suite(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_arena_measures_what_it_would_hand_out);
    tcase_add_test(tc, test_arena_memory_is_aligned_and_floats_are_zeroed);
    tcase_add_test(tc, test_rng_is_pcg32);
    tcase_add_test(tc, test_rng_streams_and_seeds_give_other_sequences);
    tcase_add_test(tc, test_rng_below_is_uniform);
    tcase_add_test(tc, test_rng_uniform_normal_and_shuffle);
    tcase_add_test(tc, test_options_defaults_lookup_and_text);
    tcase_add_test(tc, test_error_line_has_the_parts_that_are_known);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(core_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
