/* Synthetic tasks: the same seed gives the same bytes, labels and per-position targets are what
 * the task defines (recomputed here from the tokens), lengths stay in range, classes are
 * balanced, and bad options are one-line errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "fixture_files.h"
#include "tasks/task.h"

static const TaskSpec *task(const char *name) { return task_get(task_find(name)); }

static OptValues opts(const char *name, const char *const *kv, int n) {
    return fixture_task_opts(name, kv, n);
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
    const char *names[5] = {"parity", "recall", "mqar", "needle", "selcopy"};
    const char *kv[] = {"num_train", "300", "num_val", "50", "num_test", "50"};
    for (int k = 0; k < 5; k++) {
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
        ck_assert_int_eq(a.sequence, k >= 2);
        if (a.sequence) /* the targets too, and the checksum covers them */
            ck_assert_int_eq(memcmp(a.train.targets, b.train.targets,
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

/* Selective copying: the body holds exactly k data symbols among blanks, the k markers follow,
 * and the markers' targets are the data symbols in order; nothing else has a target. */
START_TEST(test_selcopy_targets_are_the_data_tokens_in_order) {
    const char *kv[] = {"num_train", "2000",   "min_length", "20",      "max_length",
                        "40",        "tokens", "5",          "symbols", "4"};
    OptValues v = opts("selcopy", kv, 10);
    Dataset d;
    load_ok("selcopy", &v, 4, &d);
    const int S = 4, k = 5, BLANK = S + 1, MARKER = S + 2;
    ck_assert_int_eq(d.vocab_size, S + 3);
    ck_assert_int_eq(d.n_classes, S);
    ck_assert_ptr_null(d.train.labels);
    int first_at[40] = {0}, seen_min = 0, seen_max = 0;
    for (int i = 0; i < d.train.n; i++) {
        const int32_t *x = d.train.tokens + d.train.offsets[i];
        const int32_t *y = d.train.targets + d.train.offsets[i];
        const int len = (int)(d.train.offsets[i + 1] - d.train.offsets[i]), L = len - k;
        ck_assert(L >= 20 && L <= 40);
        seen_min |= L == 20, seen_max |= L == 40;
        int m = 0, first = -1;
        int32_t data[5];
        for (int t = 0; t < L; t++) {
            ck_assert_int_eq(y[t], XB_NO_TARGET);
            if (x[t] == BLANK) continue;
            ck_assert(x[t] >= 1 && x[t] <= S);
            ck_assert_int_lt(m, k);
            if (first < 0) first = t;
            data[m++] = x[t] - 1;
        }
        ck_assert_int_eq(m, k);
        first_at[first]++;
        for (int j = 0; j < k; j++) {
            ck_assert_int_eq(x[L + j], MARKER);
            ck_assert_int_eq(y[L + j], data[j]);
        }
    }
    ck_assert(seen_min && seen_max);
    /* the first data token is anywhere early, not at a fixed place: P(first = 0) = k/L */
    ck_assert_int_gt(first_at[0], 100);
    ck_assert_int_gt(first_at[5], 20);
    ck_assert_double_lt(dataset_majority(&d.train, S), 0.3); /* 0.25 expected */
    dataset_free(&d);
}
END_TEST

/* MQAR: distinct keys, distinct queries drawn from the pairs' keys, and the target at each query
 * is the value paired with its key. */
START_TEST(test_mqar_targets_are_the_values_of_the_queried_keys) {
    const char *kv[] = {"num_train", "2000", "min_pairs", "4",  "max_pairs", "12",
                        "queries",   "4",    "keys",      "12", "values",    "6"};
    OptValues v = opts("mqar", kv, 12);
    Dataset d;
    load_ok("mqar", &v, 9, &d);
    const int K = 12, V = 6, Q = 4;
    ck_assert_int_eq(d.vocab_size, K + V + 2);
    ck_assert_int_eq(d.n_classes, V);
    int count[6] = {0}, full = 0;
    for (int i = 0; i < d.train.n; i++) {
        const int32_t *x = d.train.tokens + d.train.offsets[i];
        const int32_t *y = d.train.targets + d.train.offsets[i];
        const int len = (int)(d.train.offsets[i + 1] - d.train.offsets[i]), n = (len - 1 - Q) / 2;
        ck_assert(len == 2 * n + 1 + Q && n >= 4 && n <= 12);
        full += n == 12;
        for (int p = 0; p < n; p++) {
            ck_assert(x[2 * p] >= 1 && x[2 * p] <= K);
            ck_assert(x[2 * p + 1] > K && x[2 * p + 1] <= K + V);
            for (int q = 0; q < p; q++) ck_assert_int_ne(x[2 * q], x[2 * p]);
            ck_assert_int_eq(y[2 * p], XB_NO_TARGET);
            ck_assert_int_eq(y[2 * p + 1], XB_NO_TARGET);
        }
        ck_assert_int_eq(x[2 * n], K + V + 1); /* SEP */
        ck_assert_int_eq(y[2 * n], XB_NO_TARGET);
        for (int j = 0; j < Q; j++) {
            const int32_t qk = x[2 * n + 1 + j];
            for (int jj = 0; jj < j; jj++) ck_assert_int_ne(x[2 * n + 1 + jj], qk);
            int found = -1;
            for (int p = 0; p < n; p++)
                if (x[2 * p] == qk) found = x[2 * p + 1] - K - 1;
            ck_assert_int_ge(found, 0);
            ck_assert_int_eq(y[2 * n + 1 + j], found);
            count[found]++;
        }
    }
    ck_assert_int_gt(full, 0);
    for (int c = 0; c < V; c++) ck_assert_int_gt(count[c], 1100); /* 1333 expected each */
    dataset_free(&d);
}
END_TEST

/* Over the 4000 training examples of d (8 pairs of 8 key symbols each), which key symbol sits at
 * pair p (every task with pairs), and which pair query j asks for (mqar, queries from token 17 on,
 * when queries > 0): each of the 64 counts within 5 sd of the 500 a uniform draw gives. */
static void check_uniform_order(const Dataset *d, int queries) {
    enum { N = 8 };
    int key_at[N][N] = {{0}}, pair_of[N][N] = {{0}};
    for (int i = 0; i < d->train.n; i++) {
        const int32_t *x = d->train.tokens + d->train.offsets[i];
        for (int p = 0; p < N; p++) key_at[p][x[2 * p] - 1]++;
        for (int j = 0; j < queries; j++)
            for (int p = 0; p < N; p++)
                if (x[2 * p] == x[2 * N + 1 + j]) pair_of[j][p]++;
    }
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++) { /* sd 21 */
            ck_assert_msg(key_at[a][b] > 400 && key_at[a][b] < 600,
                          "key %d at pair %d in %d of 4000 examples", b, a, key_at[a][b]);
            if (a < queries)
                ck_assert_msg(pair_of[a][b] > 400 && pair_of[a][b] < 600,
                              "query %d asks for pair %d in %d of 4000 examples", a, b,
                              pair_of[a][b]);
        }
}

/* Associative recall's keys come in random order: with as many pairs as key symbols, which symbol
 * sits at pair p is uniform (Floyd's order put symbol p at pair p, so the query's symbol gave
 * its position). */
START_TEST(test_recall_keys_are_in_random_order) {
    const char *kv[] = {"num_train", "4000", "min_pairs", "8",      "max_pairs",
                        "8",         "keys", "8",         "values", "4"};
    OptValues v = opts("recall", kv, 10);
    Dataset d;
    load_ok("recall", &v, 6, &d);
    check_uniform_order(&d, 0);
    dataset_free(&d);
}
END_TEST

/* MQAR's keys and queries come in random order: which key symbol sits at pair p, and which pair
 * query j asks for, are uniform. (Floyd's sampling alone, in its own order, gave keys 0, 1, ... in
 * pair order when keys = pairs, and queries in pair order when queries = pairs: a lookup by
 * position, with no recall needed.) */
START_TEST(test_mqar_keys_and_queries_are_in_random_order) {
    const char *kv[] = {"num_train", "4000", "min_pairs", "8", "max_pairs", "8",
                        "queries",   "8",    "keys",      "8", "values",    "4"};
    OptValues v = opts("mqar", kv, 12);
    Dataset d;
    load_ok("mqar", &v, 5, &d);
    check_uniform_order(&d, 8);
    dataset_free(&d);
}
END_TEST

/* Needle in a haystack: `needles` needles with distinct keys among filler, the query is one of
 * their keys and the answer slots' targets are that needle's value tokens; needles land all over
 * the haystack; 16K-token examples too. */
static void check_needles(const Dataset *d, int F, int K, int V, int m, int nd, int *lo, int *hi) {
    const Split *s = &d->train;
    for (int i = 0; i < s->n; i++) {
        const int32_t *x = s->tokens + s->offsets[i], *y = s->targets + s->offsets[i];
        const int len = (int)(s->offsets[i + 1] - s->offsets[i]), body = len - 1 - nd;
        int n = 0, match = -1;
        int32_t keys[8];
        for (int t = 0; t < body; t++) {
            ck_assert_int_eq(y[t], XB_NO_TARGET);
            if (x[t] >= 1 && x[t] <= F) continue;
            ck_assert(x[t] > F && x[t] <= F + K); /* a key, then its values */
            ck_assert_int_lt(n, m);
            for (int j = 0; j < n; j++) ck_assert_int_ne(keys[j], x[t]);
            keys[n++] = x[t];
            if (x[t] == x[body]) match = t;
            *lo = t < *lo ? t : *lo, *hi = t > *hi ? t : *hi;
            for (int j = 1; j <= nd; j++) ck_assert(x[t + j] > F + K && x[t + j] <= F + K + V);
            t += nd;
        }
        ck_assert_int_eq(n, m);
        ck_assert_int_ge(match, 0);
        for (int j = 0; j < nd; j++) {
            ck_assert_int_eq(x[body + 1 + j], F + K + V + 1); /* ANSWER */
            ck_assert_int_eq(y[body + 1 + j], x[match + 1 + j] - F - K - 1);
        }
    }
}

START_TEST(test_needle_targets_are_the_value_of_the_queried_needle) {
    const char *kv[] = {"num_train", "1500", "min_length", "30", "max_length", "60",
                        "needles",   "3",    "keys",       "5",  "values",     "7",
                        "digits",    "2",    "filler",     "4"};
    OptValues v = opts("needle", kv, 16);
    Dataset d;
    load_ok("needle", &v, 2, &d);
    ck_assert_int_eq(d.vocab_size, 4 + 5 + 7 + 2);
    ck_assert_int_eq(d.n_classes, 7);
    int lo = 1 << 30, hi = -1;
    check_needles(&d, 4, 5, 7, 3, 2, &lo, &hi);
    ck_assert_int_eq(lo, 0);
    ck_assert_int_ge(hi, 60 - 3 - 3); /* a needle ends right before the query */
    dataset_free(&d);
    const char *big[] = {"num_train", "20",         "num_val", "2",          "num_test",
                         "2",         "min_length", "16384",   "max_length", "16384"};
    v = opts("needle", big, 10); /* passkey retrieval: one needle, one key, 5 digits */
    load_ok("needle", &v, 3, &d);
    lo = 1 << 30, hi = -1;
    check_needles(&d, 16, 1, 10, 1, 5, &lo, &hi);
    ck_assert_int_eq(d.train.offsets[1], 16384);
    ck_assert_int_gt(hi - lo, 4096); /* 20 uniform positions in 16K spread out */
    dataset_free(&d);
}
END_TEST

/* A sequence split's batch: targets where the tokens land (after CLS when there is one), none
 * on padding; the majority baseline counts target positions. */
START_TEST(test_sequence_batch_aligns_targets_with_tokens) {
    int32_t tok[7] = {3, 4, 5, 6, 7, 8, 9}, tgt[7] = {-1, 1, -1, 0, 1, 1, -1};
    int64_t off[3] = {0, 3, 7};
    Split s = {.n = 2, .tokens = tok, .offsets = off, .targets = tgt};
    const int idx[2] = {1, 0};
    int32_t out[10], lab[10];
    unsigned char mask[10];
    dataset_batch(&s, idx, 2, 5, -1, out, mask, lab);
    const int32_t want_tok[10] = {6, 7, 8, 9, 0, 3, 4, 5, 0, 0};
    const int32_t want_lab[10] = {0, 1, 1, -1, -1, -1, 1, -1, -1, -1};
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(out[i], want_tok[i]);
        ck_assert_int_eq(lab[i], want_lab[i]);
    }
    dataset_batch(&s, idx, 2, 3, 10, out, mask, lab); /* CLS first, cut to 3 */
    const int32_t cls_tok[6] = {10, 6, 7, 10, 3, 4}, cls_lab[6] = {-1, 0, 1, -1, -1, 1};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(out[i], cls_tok[i]);
        ck_assert_int_eq(lab[i], cls_lab[i]);
    }
    ck_assert_double_eq_tol(dataset_majority(&s, 2), 0.75, 1e-12); /* 3 of 4 targets are 1 */
    ck_assert_int_eq(dataset_max_length(&s), 4);
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
    const char *f[] = {"min_length", "8", "max_length", "8", "tokens", "9"};
    v = opts("selcopy", f, 6);
    expect_error("selcopy", &v,
                 "t.yaml: task.tokens: 9 data tokens do not fit a body of task.min_length = 8 "
                 "(valid: 1 to 8)");
    const char *g[] = {"min_pairs", "4", "queries", "5"};
    v = opts("mqar", g, 4);
    expect_error("mqar", &v,
                 "t.yaml: task.queries: 5 distinct queries cannot come from task.min_pairs = 4 "
                 "pairs (valid: 1 to 4)");
    const char *h[] = {"needles", "3", "keys", "2"};
    v = opts("needle", h, 4);
    expect_error("needle", &v,
                 "t.yaml: task.keys: 2 key symbols cannot give 3 needles distinct keys (valid: 3 "
                 "or more)");
    const char *j[] = {"min_length", "11", "needles", "2", "keys", "2", "digits", "3"};
    v = opts("needle", j, 8);
    expect_error("needle", &v,
                 "t.yaml: task.min_length: 11 tokens cannot hold 2 needles of 1 + 3 tokens, the "
                 "query and 3 answer slots (valid: 12 or more)");
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
    tcase_add_test(tc, test_recall_keys_are_in_random_order);
    tcase_add_test(tc, test_selcopy_targets_are_the_data_tokens_in_order);
    tcase_add_test(tc, test_mqar_targets_are_the_values_of_the_queried_keys);
    tcase_add_test(tc, test_mqar_keys_and_queries_are_in_random_order);
    tcase_add_test(tc, test_needle_targets_are_the_value_of_the_queried_needle);
    tcase_add_test(tc, test_sequence_batch_aligns_targets_with_tokens);
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
