/* Synthetic tasks: the same seed gives the same bytes, labels are what the task defines
 * (recomputed here from the tokens), lengths stay in range, classes are balanced, and bad
 * options are one-line errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tasks/task.h"

static const TaskSpec *task(const char *name) { return task_get(task_find(name)); }

static OptValues opts(const char *name, const char *const *kv, int n) {
    const TaskSpec *t = task(name);
    OptValues v;
    opt_defaults(&v, t->opts, t->n_opts);
    for (int i = 0; i < n; i += 2) {
        const int k = opt_index(t->opts, t->n_opts, kv[i]);
        ck_assert_int_ge(k, 0);
        v.num[k] = atof(kv[i + 1]);
    }
    return v;
}

static void load_ok(const char *name, const OptValues *v, uint64_t seed, Dataset *d) {
    XbError err;
    xb_error_clear(&err);
    char msg[1024] = "";
    const int rc = task(name)->load(d, v, seed, "t.yaml", &err);
    if (rc) xb_error_format(&err, msg, sizeof msg);
    ck_assert_msg(rc == 0, "%s", msg);
}

static void expect_error(const char *name, const OptValues *v, const char *want) {
    XbError err;
    xb_error_clear(&err);
    Dataset d;
    ck_assert_int_eq(task(name)->load(&d, v, 1, "t.yaml", &err), -1);
    char msg[1024];
    xb_error_format(&err, msg, sizeof msg);
    ck_assert_str_eq(msg, want);
}

START_TEST(test_generators_are_deterministic_in_the_seed) {
    const char *names[2] = {"parity", "recall"};
    const char *kv[] = {"num_train", "300", "num_val", "50", "num_test", "50"};
    for (int k = 0; k < 2; k++) {
        OptValues v = opts(names[k], kv, 6);
        Dataset a, b, c;
        load_ok(names[k], &v, 7, &a);
        load_ok(names[k], &v, 7, &b);
        load_ok(names[k], &v, 8, &c);
        ck_assert_str_eq(a.checksum, b.checksum);
        ck_assert_int_eq(a.train.offsets[a.train.n], b.train.offsets[b.train.n]);
        ck_assert_int_eq(memcmp(a.train.tokens, b.train.tokens,
                                (size_t)a.train.offsets[a.train.n] * sizeof(int32_t)),
                         0);
        ck_assert_str_ne(a.checksum, c.checksum);
        dataset_free(&a), dataset_free(&b), dataset_free(&c);
    }
}
END_TEST

START_TEST(test_parity_label_is_the_xor_and_lengths_stay_in_range) {
    const char *kv[] = {"num_train", "4000", "min_length", "5", "max_length", "40"};
    OptValues v = opts("parity", kv, 6);
    Dataset d;
    load_ok("parity", &v, 3, &d);
    ck_assert_int_eq(d.vocab_size, 3);
    ck_assert_int_eq(d.n_classes, 2);
    int ones = 0, seen_min = 0, seen_max = 0;
    for (int i = 0; i < d.train.n; i++) {
        const int64_t a = d.train.offsets[i], b = d.train.offsets[i + 1];
        ck_assert(b - a >= 5 && b - a <= 40);
        seen_min |= b - a == 5, seen_max |= b - a == 40;
        int x = 0;
        for (int64_t t = a; t < b; t++) {
            ck_assert(d.train.tokens[t] == 1 || d.train.tokens[t] == 2);
            x ^= d.train.tokens[t] == 2;
        }
        ck_assert_int_eq(d.train.labels[i], x);
        ones += x;
    }
    ck_assert(seen_min && seen_max);
    ck_assert_int_gt(ones, 1800); /* 2000 expected of 4000 */
    ck_assert_int_lt(ones, 2200);
    dataset_free(&d);
}
END_TEST

START_TEST(test_recall_label_is_the_value_of_the_queried_key) {
    const char *kv[] = {"num_train", "3000", "min_pairs", "3",      "max_pairs",
                        "20",        "keys", "20",        "values", "5"};
    OptValues v = opts("recall", kv, 10);
    Dataset d;
    load_ok("recall", &v, 5, &d);
    const int K = 20, V = 5;
    ck_assert_int_eq(d.vocab_size, K + V + 2);
    ck_assert_int_eq(d.n_classes, V);
    int count[5] = {0}, full = 0;
    for (int i = 0; i < d.train.n; i++) {
        const int32_t *x = d.train.tokens + d.train.offsets[i];
        const int len = (int)(d.train.offsets[i + 1] - d.train.offsets[i]), n = (len - 2) / 2;
        ck_assert(len % 2 == 0 && n >= 3 && n <= 20);
        full += n == 20; /* every key symbol used once */
        int found = -1;
        for (int p = 0; p < n; p++) {
            ck_assert(x[2 * p] >= 1 && x[2 * p] <= K);
            ck_assert(x[2 * p + 1] > K && x[2 * p + 1] <= K + V);
            for (int q = 0; q < p; q++) ck_assert_int_ne(x[2 * q], x[2 * p]); /* distinct keys */
            if (x[2 * p] == x[2 * n + 1]) found = x[2 * p + 1] - K - 1;
        }
        ck_assert_int_eq(x[2 * n], K + V + 1); /* SEP */
        ck_assert_int_eq(d.train.labels[i], found);
        count[found]++;
    }
    ck_assert_int_gt(full, 0);
    for (int c = 0; c < V; c++) ck_assert_int_gt(count[c], 500); /* 600 expected each */
    dataset_free(&d);
}
END_TEST

START_TEST(test_bad_synthetic_options_are_one_line_errors) {
    const char *a[] = {"min_length", "50", "max_length", "40"};
    OptValues v = opts("parity", a, 4);
    expect_error("parity", &v,
                 "t.yaml: task.max_length: 40 is shorter than task.min_length = 50 (valid: 50 or "
                 "more)");
    const char *b[] = {"max_pairs", "100", "keys", "64"};
    v = opts("recall", b, 4);
    expect_error("recall", &v,
                 "t.yaml: task.keys: 64 key symbols cannot give 100 distinct keys (valid: 100 or "
                 "more)");
    const char *c[] = {"min_pairs", "9", "max_pairs", "8"};
    v = opts("recall", c, 4);
    expect_error("recall", &v,
                 "t.yaml: task.max_pairs: 8 is fewer than task.min_pairs = 9 (valid: 9 or more)");
    const char *e[] = {"num_train", "10000000", "min_length", "1000", "max_length", "1000"};
    v = opts("parity", e, 6);
    expect_error("parity", &v,
                 "t.yaml: task.num_train: 10002000 examples of up to 1000 tokens is more than 2e9 "
                 "tokens (lower the counts or the lengths)");
}
END_TEST

static Suite *synthetic_suite(void) {
    Suite *s = suite_create("synthetic");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_generators_are_deterministic_in_the_seed);
    tcase_add_test(tc, test_parity_label_is_the_xor_and_lengths_stay_in_range);
    tcase_add_test(tc, test_recall_label_is_the_value_of_the_queried_key);
    tcase_add_test(tc, test_bad_synthetic_options_are_one_line_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(synthetic_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
