/* ListOps: LRA's generator (lengths, depth, arity, distinct trees, labels = values), LRA's TSV
 * format both ways, and the batches every task shares. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture_files.h"
#include "tasks/listops.h"
#include "tasks/task.h"

static const TaskSpec *spec(void) { return task_get(task_find("listops")); }

static OptValues opts(int ntr, int nva, int nte, int minl, int maxl) {
    OptValues v;
    opt_defaults(&v, spec()->opts, spec()->n_opts);
    const struct {
        const char *k;
        int x;
    } set[] = {{"num_train", ntr},
               {"num_val", nva},
               {"num_test", nte},
               {"min_length", minl},
               {"max_length", maxl}};
    for (int i = 0; i < 5; i++) v.num[opt_index(spec()->opts, spec()->n_opts, set[i].k)] = set[i].x;
    return v;
}

static void set_opt(OptValues *v, const char *k, double x) {
    v->num[opt_index(spec()->opts, spec()->n_opts, k)] = x;
}

static const char *err_str(const XbError *e) {
    static char buf[2048];
    xb_error_format(e, buf, sizeof buf);
    return buf;
}

static int cmp_int(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int plain_length(const Split *s, int i) {
    int n = 0;
    for (int64_t t = s->offsets[i]; t < s->offsets[i + 1]; t++)
        n += s->tokens[t] != LISTOPS_LPAREN && s->tokens[t] != LISTOPS_RPAREN;
    return n;
}

START_TEST(test_same_seed_same_dataset_and_other_seed_differs) {
    OptValues v = opts(300, 50, 50, 5, 60);
    Dataset a, b, c;
    XbError err;
    ck_assert_int_eq(spec()->load(&a, &v, 7, "t.yaml", &err), 0);
    ck_assert_int_eq(spec()->load(&b, &v, 7, "t.yaml", &err), 0);
    ck_assert_int_eq(spec()->load(&c, &v, 8, "t.yaml", &err), 0);
    ck_assert_str_eq(a.checksum, b.checksum);
    ck_assert_str_ne(a.checksum, c.checksum);
    ck_assert_int_eq(a.train.n, 300);
    ck_assert_int_eq(a.val.n, 50);
    ck_assert_int_eq(a.test.n, 50);
    ck_assert_int_eq(a.vocab_size, 19);
    ck_assert_int_eq(a.n_classes, 10);
    ck_assert(fixture_identity_has(&a, "\"seed\":7"));
    dataset_free(&a), dataset_free(&b), dataset_free(&c);
}
END_TEST

/* Checks every structural promise of the generator on every example of d. */
static void check_trees(const Dataset *d, int minl, int maxl, int max_depth, int max_args) {
    const Split *sp[3] = {&d->train, &d->val, &d->test};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < sp[k]->n; i++) {
            const Split *s = sp[k];
            const int32_t *t = s->tokens + s->offsets[i];
            const int n = (int)(s->offsets[i + 1] - s->offsets[i]);
            const int len = plain_length(s, i);
            ck_assert_int_gt(len, minl);
            ck_assert_int_lt(len, maxl);
            ck_assert_int_eq(listops_eval_tokens(t, n), s->labels[i]);
            /* depth and arity */
            int depth = 0, deepest = 0, args[128] = {0};
            for (int j = 0; j < n; j++) {
                if (t[j] >= LISTOPS_MIN && t[j] <= LISTOPS_SM) {
                    if (depth > 0) args[depth]++;
                    depth++;
                    args[depth] = 0;
                    deepest = depth > deepest ? depth : deepest;
                } else if (t[j] == LISTOPS_END) {
                    ck_assert_int_ge(args[depth], 2);
                    ck_assert_int_le(args[depth], max_args);
                    depth--;
                } else if (t[j] >= LISTOPS_DIGIT0 && t[j] < LISTOPS_DIGIT0 + 10) {
                    args[depth]++;
                }
            }
            ck_assert_int_eq(depth, 0);
            ck_assert_int_lt(deepest,
                             max_depth); /* the root is at depth 1, leaves at most max_depth */
        }
}

START_TEST(test_trees_respect_lengths_depth_arity_and_labels_are_values) {
    OptValues v = opts(400, 50, 50, 20, 120);
    set_opt(&v, "max_depth", 6);
    set_opt(&v, "max_args", 5);
    Dataset d;
    XbError err;
    ck_assert_int_eq(spec()->load(&d, &v, 1, "t.yaml", &err), 0);
    check_trees(&d, 20, 120, 6, 5);
    dataset_free(&d);
}
END_TEST

/* At LRA's settings (500 < length < 2000, depth 10, 10 arguments) the generator's statistics
 * match those of LRA's procedure, which LRA publishes as code rather than as figures:
 * scripts/listops_reference.py models that procedure independently in Python, and over 20000 of
 * its trees (seed 0) gives the figures below. 3000 trees of ours are compared with tolerances
 * of about four standard errors. */
START_TEST(test_lra_settings_match_the_reference_statistics) {
    static const int ref_deciles[9] = {579, 662, 753, 850, 961, 1081, 1230, 1409, 1649};
    static const double ref_label[10] = {17.04, 8.96, 7.71, 8.08, 9.1,
                                         8.69,  8.01, 7.47, 8.21, 16.74};
    OptValues v = opts(3000, 1, 1, 500, 2000);
    Dataset d;
    XbError err;
    ck_assert_int_eq(spec()->load(&d, &v, 3, "t.yaml", &err), 0);
    const Split *s = &d.train;
    int *len = malloc((size_t)s->n * sizeof *len), deep = 0, label[10] = {0};
    ck_assert_ptr_nonnull(len);
    for (int i = 0; i < s->n; i++) {
        len[i] = plain_length(s, i);
        label[s->labels[i]]++;
        int depth = 0, deepest = 0;
        for (int64_t t = s->offsets[i]; t < s->offsets[i + 1]; t++) {
            const int32_t x = s->tokens[t];
            if (x >= LISTOPS_MIN && x <= LISTOPS_SM) deepest = ++depth > deepest ? depth : deepest;
            if (x == LISTOPS_END) depth--;
        }
        deep += deepest + 1 == 10; /* its leaves reach depth 10 */
    }
    qsort(len, (size_t)s->n, sizeof *len, cmp_int);
    for (int k = 1; k <= 9; k++) {
        const double ours = len[s->n * k / 10], ref = ref_deciles[k - 1];
        ck_assert_msg(fabs(ours - ref) <= 0.05 * ref, "length decile %d: %g, reference %g", k, ours,
                      ref);
    }
    /* the reference's trees all reach the deepest level: long trees need it */
    ck_assert_int_ge(deep, s->n * 99 / 100);
    for (int c = 0; c < 10; c++) {
        const double ours = 100.0 * label[c] / s->n;
        ck_assert_msg(fabs(ours - ref_label[c]) <= 2.5, "label %d: %.2f %%, reference %.2f %%", c,
                      ours, ref_label[c]);
    }
    free(len);
    dataset_free(&d);
}
END_TEST

START_TEST(test_no_duplicate_trees_across_splits) {
    OptValues v = opts(800, 100, 100, 3, 12); /* short trees: duplicates would be common */
    Dataset d;
    XbError err;
    ck_assert_int_eq(spec()->load(&d, &v, 2, "t.yaml", &err), 0);
    const Split *sp[3] = {&d.train, &d.val, &d.test};
    int total = 0;
    for (int k = 0; k < 3; k++) total += sp[k]->n;
    char **txt = calloc((size_t)total, sizeof *txt);
    int m = 0;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < sp[k]->n; i++) {
            const int n = (int)(sp[k]->offsets[i + 1] - sp[k]->offsets[i]);
            txt[m] = calloc((size_t)n + 1, 1);
            for (int j = 0; j < n; j++)
                txt[m][j] = (char)('A' + sp[k]->tokens[sp[k]->offsets[i] + j]);
            m++;
        }
    for (int a = 0; a < m; a++)
        for (int b = a + 1; b < m; b++) ck_assert_str_ne(txt[a], txt[b]);
    for (int a = 0; a < m; a++) free(txt[a]);
    free(txt);
    dataset_free(&d);
}
END_TEST

START_TEST(test_every_operator_and_label_occurs) {
    OptValues v = opts(1600, 200, 200, 10, 200);
    Dataset d;
    XbError err;
    ck_assert_int_eq(spec()->load(&d, &v, 3, "t.yaml", &err), 0);
    int ops[4] = {0}, labels[10] = {0};
    for (int64_t t = 0; t < d.train.offsets[d.train.n]; t++)
        if (d.train.tokens[t] >= LISTOPS_MIN && d.train.tokens[t] <= LISTOPS_SM)
            ops[d.train.tokens[t] - LISTOPS_MIN]++;
    for (int i = 0; i < d.train.n; i++) labels[d.train.labels[i]]++;
    for (int k = 0; k < 4; k++) ck_assert_int_gt(ops[k], 0);
    for (int k = 0; k < 10; k++) ck_assert_int_gt(labels[k], 0);
    ck_assert_double_lt(dataset_majority(&d.train, 10), 0.5);
    dataset_free(&d);
}
END_TEST

START_TEST(test_parens_option_adds_balanced_parens_with_same_trees) {
    OptValues v = opts(200, 20, 20, 5, 50);
    Dataset a, b;
    XbError err;
    ck_assert_int_eq(spec()->load(&a, &v, 4, "t.yaml", &err), 0);
    set_opt(&v, "parens", 1);
    ck_assert_int_eq(spec()->load(&b, &v, 4, "t.yaml", &err), 0);
    for (int i = 0; i < a.train.n; i++) {
        ck_assert_int_eq(a.train.labels[i], b.train.labels[i]);
        ck_assert_int_eq(plain_length(&a.train, i), plain_length(&b.train, i));
        int open = 0;
        for (int64_t t = b.train.offsets[i]; t < b.train.offsets[i + 1]; t++) {
            open += b.train.tokens[t] == LISTOPS_LPAREN;
            open -= b.train.tokens[t] == LISTOPS_RPAREN;
            ck_assert_int_ge(open, 0);
        }
        ck_assert_int_eq(open, 0);
    }
    ck_assert_str_ne(a.checksum, b.checksum);
    dataset_free(&a), dataset_free(&b);
}
END_TEST

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(test_lra_fixture_loads_and_writes_back_byte_for_byte) {
    OptValues v = opts(1, 1, 1, 0, 10);
    set_opt(&v, "source", 1);
    snprintf(v.str[opt_index(spec()->opts, spec()->n_opts, "data_dir")], XB_OPT_STRLEN, "%s",
             XB_FIXTURES "/listops/good");
    Dataset d;
    XbError err;
    ck_assert_int_eq(spec()->load(&d, &v, 1, "t.yaml", &err), 0);
    ck_assert_int_eq(d.train.n, 3);
    ck_assert_int_eq(d.val.n, 1);
    ck_assert_int_eq(d.test.n, 1);
    const int32_t first[] = {LISTOPS_MAX, LISTOPS_DIGIT0 + 2, LISTOPS_DIGIT0 + 9, LISTOPS_END};
    ck_assert_int_eq(d.train.offsets[1], 4);
    ck_assert_mem_eq(d.train.tokens, first, sizeof first);
    const int want[3] = {9, 5, 4};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(d.train.labels[i], want[i]);
        ck_assert_int_eq(listops_eval_tokens(d.train.tokens + d.train.offsets[i],
                                             (int)(d.train.offsets[i + 1] - d.train.offsets[i])),
                         want[i]);
    }
    ck_assert(fixture_identity_has(&d, "\"source\":\"files\""));
    char path[] = "/tmp/xb-listops-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(listops_write_tsv(path, &d.train, &err), 0);
    char expect[1 << 16];
    snprintf(expect, sizeof expect, "%s", read_all(XB_FIXTURES "/listops/good/basic_train.tsv"));
    ck_assert_str_eq(read_all(path), expect);
    unlink(path);
    dataset_free(&d);
}
END_TEST

START_TEST(test_generated_split_round_trips_through_tsv) {
    OptValues v = opts(50, 5, 5, 10, 80);
    Dataset g, f;
    XbError err;
    ck_assert_int_eq(spec()->load(&g, &v, 9, "t.yaml", &err), 0);
    char dir[] = "/tmp/xb-listops-dir-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *names[3] = {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"};
    const Split *sp[3] = {&g.train, &g.val, &g.test};
    char path[3][512];
    for (int k = 0; k < 3; k++) {
        snprintf(path[k], sizeof path[k], "%s/%s", dir, names[k]);
        ck_assert_int_eq(listops_write_tsv(path[k], sp[k], &err), 0);
    }
    set_opt(&v, "source", 1);
    snprintf(v.str[opt_index(spec()->opts, spec()->n_opts, "data_dir")], XB_OPT_STRLEN, "%s", dir);
    ck_assert_int_eq(spec()->load(&f, &v, 123, "t.yaml", &err), 0);
    ck_assert_int_eq(f.train.n, 50);
    ck_assert_mem_eq(f.train.tokens, g.train.tokens, (size_t)g.train.offsets[50] * sizeof(int32_t));
    ck_assert_mem_eq(f.train.labels, g.train.labels, 50 * sizeof(int32_t));
    ck_assert_str_eq(f.checksum, g.checksum); /* the same examples, read back */
    for (int k = 0; k < 3; k++) unlink(path[k]);
    rmdir(dir);
    dataset_free(&g), dataset_free(&f);
}
END_TEST

static void expect_file_error(const char *sub, const char *file, const char *msg) {
    OptValues v = opts(1, 1, 1, 0, 10);
    set_opt(&v, "source", 1);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/listops/%s", XB_FIXTURES, sub);
    snprintf(v.str[opt_index(spec()->opts, spec()->n_opts, "data_dir")], XB_OPT_STRLEN, "%s", dir);
    Dataset d;
    XbError err;
    xb_error_clear(&err);
    ck_assert_int_eq(spec()->load(&d, &v, 1, "t.yaml", &err), -1);
    char want[2048];
    snprintf(want, sizeof want, "%s/%s%s", dir, file, msg);
    ck_assert_str_eq(err_str(&err), want);
}

START_TEST(test_unknown_token_reports_line_and_column) {
    expect_file_error("bad_token", "basic_train.tsv",
                      ":3:16: unknown token \"x9\" (valid: 0-9, [MIN, [MAX, [MED, [SM, ], (, ))");
}
END_TEST

START_TEST(test_bad_header_reports_line_1) {
    expect_file_error("bad_header", "basic_train.tsv",
                      ":1:1: expected the header \"Source<TAB>Target\"");
}
END_TEST

START_TEST(test_bad_target_reports_its_column) {
    expect_file_error("bad_target", "basic_train.tsv",
                      ":2:24: target must be an integer in [0, 9], got \"10\"");
}
END_TEST

START_TEST(test_missing_tab_is_an_error) {
    expect_file_error("no_tab", "basic_train.tsv", ":2:1: expected two tab-separated columns");
}
END_TEST

START_TEST(test_missing_file_names_path_and_key) {
    expect_file_error("missing", "basic_train.tsv",
                      ": task.data_dir: cannot read: No such file or directory");
}
END_TEST

START_TEST(test_empty_split_file_is_an_error) {
    expect_file_error("empty", "basic_val.tsv", ": no examples");
}
END_TEST

/* A row with an unknown token and a bad target: the leftmost problem is reported. */
START_TEST(test_row_with_two_problems_reports_the_leftmost) {
    expect_file_error("bad_both", "basic_train.tsv",
                      ":2:16: unknown token \"[AVG\" (valid: 0-9, [MIN, [MAX, [MED, [SM, ], (, ))");
}
END_TEST

/* Python's csv.writer, which LRA uses, ends rows with CRLF. */
START_TEST(test_crlf_files_load_like_lf_files) {
    OptValues v = opts(1, 1, 1, 0, 10);
    set_opt(&v, "source", 1);
    set_opt(&v, "parens", 1);
    snprintf(v.str[opt_index(spec()->opts, spec()->n_opts, "data_dir")], XB_OPT_STRLEN, "%s",
             XB_FIXTURES "/listops/crlf");
    Dataset d;
    XbError err;
    ck_assert_int_eq(spec()->load(&d, &v, 1, "t.yaml", &err), 0);
    ck_assert_int_eq(d.train.n, 2);
    ck_assert_int_eq(d.val.n, 1);
    ck_assert_int_eq(d.test.n, 1);
    /* parens kept: ( ( ( [MAX 2 ) 9 ) ] ) */
    const int32_t L = LISTOPS_LPAREN, R = LISTOPS_RPAREN, D = LISTOPS_DIGIT0;
    const int32_t first[] = {L, L, L, LISTOPS_MAX, D + 2, R, D + 9, R, LISTOPS_END, R};
    ck_assert_int_eq(d.train.offsets[1], 10);
    ck_assert_mem_eq(d.train.tokens, first, sizeof first);
    ck_assert_int_eq(d.train.labels[0], 9);
    ck_assert_int_eq(d.train.labels[1], 5);
    ck_assert_int_eq(d.val.labels[0], 4);
    ck_assert_int_eq(d.test.labels[0], 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(listops_eval_tokens(d.train.tokens + d.train.offsets[i],
                                             (int)(d.train.offsets[i + 1] - d.train.offsets[i])),
                         d.train.labels[i]);
    ck_assert(fixture_identity_has(&d, "\"parens\":true"));
    ck_assert(fixture_identity_has(&d, "\"data_dir\":\"" XB_FIXTURES "/listops/crlf\""));
    dataset_free(&d);
}
END_TEST

START_TEST(test_option_errors_name_the_key) {
    Dataset d;
    XbError err;
    OptValues v = opts(10, 1, 1, 50, 40);
    ck_assert_int_eq(spec()->load(&d, &v, 1, "t.yaml", &err), -1);
    ck_assert_str_eq(err_str(&err), "t.yaml: task.max_length: must be greater than task.min_length "
                                    "+ 1 (got min_length 50, max_length 40)");
    v = opts(10, 1, 1, 5, 40);
    set_opt(&v, "source", 1);
    ck_assert_int_eq(spec()->load(&d, &v, 1, "t.yaml", &err), -1);
    ck_assert_str_eq(err_str(&err), "t.yaml: task.data_dir: is required when task.source is files");
    v = opts(10, 1, 1, 5, 40);
    set_opt(&v, "max_depth", 1); /* only single digits: never longer than 5 */
    ck_assert_int_eq(spec()->load(&d, &v, 1, "t.yaml", &err), -1);
    ck_assert_str_eq(err_str(&err), "t.yaml: task: could not generate 12 distinct trees with 5 < "
                                    "length < 40 in 10012000 attempts (raise max_depth or "
                                    "max_args, or widen the lengths)");
}
END_TEST

START_TEST(test_eval_tokens_follows_lra_semantics) {
    const int32_t D = LISTOPS_DIGIT0;
    const int32_t med_even[] = {LISTOPS_MED, D + 1, D + 2, D + 7, D + 8, LISTOPS_END}; /* (2+7)/2 */
    const int32_t sm[] = {LISTOPS_SM, D + 9, D + 8, D + 7, LISTOPS_END};
    const int32_t bad[] = {LISTOPS_MIN, D + 1, D + 2};
    const int32_t extra[] = {D + 1, D + 2};
    ck_assert_int_eq(listops_eval_tokens(med_even, 6), 4);
    ck_assert_int_eq(listops_eval_tokens(sm, 5), 4);
    ck_assert_int_eq(listops_eval_tokens(bad, 3), -1);
    ck_assert_int_eq(listops_eval_tokens(extra, 2), -1);
}
END_TEST

START_TEST(test_batch_adds_cls_truncates_pads_and_masks) {
    int32_t tok[] = {5, 6, 7, 8, 9, 3, 4};
    int64_t off[] = {0, 5, 7};
    int32_t lab[] = {1, 2};
    Split s = {.n = 2, .tokens = tok, .offsets = off, .labels = lab};
    int idx[2] = {1, 0};
    int32_t out[8], labels[2];
    unsigned char mask[8];
    dataset_batch(&s, idx, 2, 4, 19, out, mask, labels);
    const int32_t want[8] = {19, 3, 4, 0, 19, 5, 6, 7};
    const unsigned char wmask[8] = {1, 1, 1, 0, 1, 1, 1, 1};
    ck_assert_mem_eq(out, want, sizeof want);
    ck_assert_mem_eq(mask, wmask, sizeof wmask);
    ck_assert_int_eq(labels[0], 2);
    ck_assert_int_eq(labels[1], 1);
    dataset_batch(&s, idx, 2, 4, -1, out, mask, labels);
    const int32_t want2[8] = {3, 4, 0, 0, 5, 6, 7, 8};
    ck_assert_mem_eq(out, want2, sizeof want2);
    ck_assert_double_eq(dataset_majority(&s, 3), 0.5);
}
END_TEST

START_TEST(test_eval_accepts_parens_and_rejects_malformed) {
    const int32_t L = LISTOPS_LPAREN, R = LISTOPS_RPAREN, D = LISTOPS_DIGIT0;
    /* ( ( ( [MIN 7 ) 3 ) ] ) = 3, and MAX(MIN(7, 3), 5) = 5 */
    const int32_t paren[] = {L, L, L, LISTOPS_MIN, D + 7, R, D + 3, R, LISTOPS_END, R};
    const int32_t nested[] = {LISTOPS_MAX, LISTOPS_MIN, D + 7,      D + 3,
                              LISTOPS_END, D + 5,       LISTOPS_END};
    const int32_t med_odd[] = {LISTOPS_MED, D + 9, D + 0, D + 4, LISTOPS_END};
    const int32_t empty_op[] = {LISTOPS_SM, LISTOPS_END};
    const int32_t pad[] = {LISTOPS_MIN, D + 1, 0, LISTOPS_END};
    ck_assert_int_eq(listops_eval_tokens(paren, 10), 3);
    ck_assert_int_eq(listops_eval_tokens(nested, 7), 5);
    ck_assert_int_eq(listops_eval_tokens(med_odd, 5), 4);
    ck_assert_int_eq(listops_eval_tokens(empty_op, 2), -1);
    ck_assert_int_eq(listops_eval_tokens(pad, 4), -1);
    ck_assert_int_eq(listops_eval_tokens(paren, 0), -1);
    /* nesting far deeper than any generated tree is rejected, not a stack overflow */
    const int deep = 200000;
    int32_t *t = malloc((size_t)(2 * deep + 1) * sizeof *t);
    for (int i = 0; i < deep; i++) t[i] = LISTOPS_MIN, t[deep + 1 + i] = LISTOPS_END;
    t[deep] = D + 1;
    ck_assert_int_eq(listops_eval_tokens(t, 2 * deep + 1), -1);
    free(t);
}
END_TEST

/* FNV-1a 64 written out byte by byte, as a reference for dataset_checksum. */
static uint64_t ref_fnv(uint64_t h, uint32_t v) {
    for (int b = 0; b < 4; b++) h = (h ^ ((v >> (8 * b)) & 0xff)) * 0x100000001b3ull;
    return h;
}

START_TEST(test_checksum_is_fnv1a_over_counts_lengths_tokens_labels) {
    int32_t tok[] = {13, 4, 11, 16, 7};
    int64_t off[] = {0, 4, 5};
    int32_t lab[] = {9, 5};
    int64_t off0[] = {0};
    int64_t off1[] = {0, 1};
    Dataset d = {0};
    d.train = (Split){.n = 2, .tokens = tok, .offsets = off, .labels = lab};
    d.val = (Split){.n = 0, .offsets = off0};
    d.test = (Split){.n = 1, .tokens = tok + 4, .offsets = off1, .labels = lab + 1};
    dataset_checksum(&d);
    /* train: n, then (length, tokens, label) per example; val: n = 0; test: one example */
    uint64_t r = 0xcbf29ce484222325ull;
    r = ref_fnv(r, 2);
    r = ref_fnv(r, 4);
    for (int i = 0; i < 4; i++) r = ref_fnv(r, (uint32_t)tok[i]);
    r = ref_fnv(r, 9);
    r = ref_fnv(r, 1), r = ref_fnv(r, 7), r = ref_fnv(r, 5);
    r = ref_fnv(r, 0);
    r = ref_fnv(r, 1), r = ref_fnv(r, 1), r = ref_fnv(r, 7), r = ref_fnv(r, 5);
    char want[17];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)r);
    ck_assert_str_eq(d.checksum, want);
    ck_assert_int_eq((int)strlen(d.checksum), 16);
}
END_TEST

START_TEST(test_majority_breaks_ties_to_lowest_label_and_empty_is_zero) {
    int32_t lab[] = {3, 7, 7, 3, 1};
    int64_t off[] = {0, 0, 0, 0, 0, 0};
    Split s = {.n = 5, .offsets = off, .labels = lab};
    ck_assert_double_eq_tol(dataset_majority(&s, 10), 0.4, 1e-12);
    Split e = {.n = 0, .offsets = off};
    ck_assert_double_eq(dataset_majority(&e, 10), 0.0);
    int32_t one[] = {4, 4, 4, 2};
    Split t = {.n = 4, .offsets = off, .labels = one};
    ck_assert_double_eq_tol(dataset_majority(&t, 10), 0.75, 1e-12);
}
END_TEST

START_TEST(test_batch_with_room_only_for_cls_masks_one_token) {
    int32_t tok[] = {5, 6, 7};
    int64_t off[] = {0, 3};
    int32_t lab[] = {8};
    Split s = {.n = 1, .tokens = tok, .offsets = off, .labels = lab};
    int idx[1] = {0};
    int32_t out[3] = {-1, -1, -1}, labels[1];
    unsigned char mask[3] = {9, 9, 9};
    dataset_batch(&s, idx, 1, 1, 19, out, mask, labels);
    ck_assert_int_eq(out[0], 19);
    ck_assert_int_eq(mask[0], 1);
    ck_assert_int_eq(out[1], -1); /* nothing written past the row */
    dataset_batch(&s, idx, 1, 3, -1, out, mask, labels);
    const int32_t want[3] = {5, 6, 7};
    const unsigned char wmask[3] = {1, 1, 1};
    ck_assert_mem_eq(out, want, sizeof want);
    ck_assert_mem_eq(mask, wmask, sizeof wmask);
    ck_assert_int_eq(labels[0], 8);
}
END_TEST

START_TEST(test_write_tsv_rejects_a_split_that_is_not_listops) {
    int32_t tok[] = {LISTOPS_MIN, LISTOPS_DIGIT0 + 1, LISTOPS_DIGIT0 + 2}; /* no ] */
    int64_t off[] = {0, 3};
    int32_t lab[] = {1};
    Split s = {.n = 1, .tokens = tok, .offsets = off, .labels = lab};
    char path[] = "/tmp/xb-listops-bad-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    XbError err;
    xb_error_clear(&err);
    ck_assert_int_eq(listops_write_tsv(path, &s, &err), -1);
    char want[256];
    snprintf(want, sizeof want, "%s: example 0 is not a ListOps expression", path);
    ck_assert_str_eq(err_str(&err), want);
    unlink(path);
}
END_TEST

/* A directory of three split files: train holds a good row and then `row` (line 3; len bytes,
 * which may hold NULs), val and test one good row each. Returns the directory (static). */
static const char *files_with_row(const char *row, size_t len) {
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/xb-listops-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    static const char *const names[3] = {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"};
    for (int k = 0; k < 3; k++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        fputs("Source\tTarget\n[MAX 2 9 ]\t9\n", f);
        if (k == 0) ck_assert_int_eq(fwrite(row, 1, len, f), len);
        ck_assert_int_eq(fclose(f), 0);
    }
    return dir;
}

static void expect_dir_error(const char *dir, const char *msg) {
    OptValues v = opts(1, 1, 1, 0, 10);
    set_opt(&v, "source", 1);
    snprintf(v.str[opt_index(spec()->opts, spec()->n_opts, "data_dir")], XB_OPT_STRLEN, "%s", dir);
    Dataset d;
    XbError err;
    xb_error_clear(&err);
    ck_assert_int_eq(spec()->load(&d, &v, 1, "t.yaml", &err), -1);
    ck_assert_int_eq(err.code, XB_EXIT_USAGE);
    char want[2048];
    snprintf(want, sizeof want, "%s/basic_train.tsv%s", dir, msg);
    ck_assert_str_eq(err_str(&err), want);
}

static void rm_dir(const char *dir) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Rows whose every token and target is valid but which are not one expression: each is refused
 * at its line and the column of the fault (the end of the Source column when it is missing). */
START_TEST(test_malformed_expressions_are_refused_at_their_line_and_column) {
    static const struct {
        const char *row, *msg;
    } cases[] = {
        {"[MIN 5 3\t3\n", ":3:9: not a ListOps expression: the expression is not closed (a ] is "
                          "missing)"},
        {"[MIN ]\t3\n", ":3:6: not a ListOps expression: an operator without arguments"},
        {"5 3\t3\n", ":3:3: not a ListOps expression: more after the end of the expression (one "
                     "per row)"},
        {"] 5\t1\n", ":3:1: not a ListOps expression: a ] without an operator to close"},
        {"\t3\n", ":3:1: not a ListOps expression: no expression"},
        {"( [MIN 5 ]\t5\n", ":3:11: not a ListOps expression: a ( without its )"},
        {"[MIN 5 ] )\t5\n", ":3:10: not a ListOps expression: a ) without its ("},
        {"[SM [MAX 1 2 ] 3\t5\n", ":3:17: not a ListOps expression: the expression is not "
                                  "closed (a ] is missing)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *dir = files_with_row(cases[i].row, strlen(cases[i].row));
        expect_dir_error(dir, cases[i].msg);
        rm_dir(dir);
    }
    /* LRA's own form, parentheses and all, still reads */
    const char *good = "( ( ( [MIN 5 ) 0 ) ] )\t0\n";
    const char *dir = files_with_row(good, strlen(good));
    OptValues v = opts(1, 1, 1, 0, 10);
    set_opt(&v, "source", 1);
    snprintf(v.str[opt_index(spec()->opts, spec()->n_opts, "data_dir")], XB_OPT_STRLEN, "%s", dir);
    Dataset d;
    XbError err;
    ck_assert_int_eq(spec()->load(&d, &v, 1, "t.yaml", &err), 0);
    ck_assert_int_eq(d.train.n, 2);
    dataset_free(&d);
    rm_dir(dir);
}
END_TEST

/* A NUL byte ended the text where C strings end: "9\0junk" read as the target 9. */
START_TEST(test_a_nul_byte_is_refused_not_cut) {
    static const char row[] = "[MAX 2 9 ]\t9\0junk\n";
    const char *dir = files_with_row(row, sizeof row - 1);
    expect_dir_error(dir, ":3:13: a NUL byte (the file must be text)");
    rm_dir(dir);
    static const char row2[] = "[MAX 2 \0 9 ]\t9\n";
    dir = files_with_row(row2, sizeof row2 - 1);
    expect_dir_error(dir, ":3:8: a NUL byte (the file must be text)");
    rm_dir(dir);
}
END_TEST

/* A message is one line: control characters of the file are shown escaped, not written to the
 * terminal. */
START_TEST(test_messages_show_control_characters_escaped) {
    const char *row = "[MAX 2 \x1b[31m9 ]\t9\n";
    const char *dir = files_with_row(row, strlen(row));
    expect_dir_error(dir, ":3:8: unknown token \"\\x1b[31m9\" (valid: 0-9, [MIN, [MAX, [MED, [SM, "
                          "], (, ))");
    rm_dir(dir);
    row = "[MAX 2 9 ]\t9\r9\n";
    dir = files_with_row(row, strlen(row));
    expect_dir_error(dir, ":3:12: target must be an integer in [0, 9], got \"9\\r9\"");
    rm_dir(dir);
}
END_TEST

/* /dev/zero as a split file was read until the memory ran out; a FIFO waited for a writer. Now a
 * file that is not a regular file, one larger than the limit for a data file, and a line longer
 * than the limit for a line each stop at once with the file and the limit. */
START_TEST(test_data_files_that_never_end_or_are_not_files_are_refused) {
    const char *dir = files_with_row("", 0);
    char path[128];
    snprintf(path, sizeof path, "%s/basic_train.tsv", dir);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(symlink("/dev/zero", path), 0);
    expect_dir_error(dir, ": task.data_dir: cannot read: it is a character device, not a regular "
                          "file");
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    expect_dir_error(dir, ": task.data_dir: cannot read: it is a FIFO, not a regular file");
    ck_assert_int_eq(unlink(path), 0);
    /* sparse files: no disk space used */
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("Source\tTarget\n", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(truncate(path, 80 << 20), 0); /* line 2: 80 MiB of NUL bytes, no newline */
    expect_dir_error(dir, ":2:1: task.data_dir: a line longer than 64 MiB, more than a line of a "
                          "data file may be");
    ck_assert_int_eq(truncate(path, 17ll << 30), 0);
    expect_dir_error(dir, ": task.data_dir: cannot read: it is 17 GiB, more than a data file may "
                          "be (at most 16 GiB)");
    rm_dir(dir);
}
END_TEST

static Suite *listops_suite(void) {
    Suite *s = suite_create("listops");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_same_seed_same_dataset_and_other_seed_differs);
    tcase_add_test(tc, test_trees_respect_lengths_depth_arity_and_labels_are_values);
    tcase_add_test(tc, test_lra_settings_match_the_reference_statistics);
    tcase_add_test(tc, test_no_duplicate_trees_across_splits);
    tcase_add_test(tc, test_every_operator_and_label_occurs);
    tcase_add_test(tc, test_parens_option_adds_balanced_parens_with_same_trees);
    tcase_add_test(tc, test_lra_fixture_loads_and_writes_back_byte_for_byte);
    tcase_add_test(tc, test_generated_split_round_trips_through_tsv);
    tcase_add_test(tc, test_unknown_token_reports_line_and_column);
    tcase_add_test(tc, test_bad_header_reports_line_1);
    tcase_add_test(tc, test_bad_target_reports_its_column);
    tcase_add_test(tc, test_missing_tab_is_an_error);
    tcase_add_test(tc, test_missing_file_names_path_and_key);
    tcase_add_test(tc, test_empty_split_file_is_an_error);
    tcase_add_test(tc, test_row_with_two_problems_reports_the_leftmost);
    tcase_add_test(tc, test_crlf_files_load_like_lf_files);
    tcase_add_test(tc, test_option_errors_name_the_key);
    tcase_add_test(tc, test_eval_tokens_follows_lra_semantics);
    tcase_add_test(tc, test_batch_adds_cls_truncates_pads_and_masks);
    tcase_add_test(tc, test_eval_accepts_parens_and_rejects_malformed);
    tcase_add_test(tc, test_checksum_is_fnv1a_over_counts_lengths_tokens_labels);
    tcase_add_test(tc, test_majority_breaks_ties_to_lowest_label_and_empty_is_zero);
    tcase_add_test(tc, test_batch_with_room_only_for_cls_masks_one_token);
    tcase_add_test(tc, test_write_tsv_rejects_a_split_that_is_not_listops);
    tcase_add_test(tc, test_malformed_expressions_are_refused_at_their_line_and_column);
    tcase_add_test(tc, test_a_nul_byte_is_refused_not_cut);
    tcase_add_test(tc, test_messages_show_control_characters_escaped);
    tcase_add_test(tc, test_data_files_that_never_end_or_are_not_files_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(listops_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
