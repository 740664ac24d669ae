/* data --export's formats (tasks/export.h): ListOps and Retrieval read back through our
 * official-format loaders as the very same examples; Text's escapes undone by a naive reader
 * here give every byte back; the .npy files parsed here by the format's definition; and bad
 * output directories, existing files and a failed write leave nothing behind. */
#include <check.h>
#include <signal.h>
#include <sys/resource.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/xassert.h"
#include "fixture_files.h"
#include "tasks/export.h"
#include "tasks/task.h"

static void load(Dataset *d, const char *task, const char *const *kv, int n) {
    const OptValues v = fixture_task_opts(task, kv, n);
    XbError err;
    xb_error_clear(&err);
    char msg[2048] = "";
    const int rc = task_get(task_find(task))->load(d, &v, 7, "t.yaml", &err);
    if (rc) xb_error_format(&err, msg, sizeof msg);
    ck_assert_msg(rc == 0, "%s", msg);
}

static void export_ok(const Dataset *d, const char *task, const char *dir, ExportSummary *ex) {
    XbError err;
    xb_error_clear(&err);
    char msg[2048] = "";
    const int rc = export_dataset(d, task, dir, ex, &err);
    if (rc) xb_error_format(&err, msg, sizeof msg);
    ck_assert_msg(rc == 0, "%s", msg);
}

/* Every split of a and b holds the same documents (token ids) and labels. */
static void assert_same_examples(const Dataset *a, const Dataset *b) {
    const Split *sa[3] = {&a->train, &a->val, &a->test}, *sb[3] = {&b->train, &b->val, &b->test};
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(sa[k]->n, sb[k]->n);
        ck_assert_int_eq(split_docs(sa[k]), split_docs(sb[k]));
        const int nd = sa[k]->n * split_docs(sa[k]);
        for (int j = 0; j <= nd; j++) ck_assert_int_eq(sa[k]->offsets[j], sb[k]->offsets[j]);
        for (int64_t t = 0; t < sa[k]->offsets[nd]; t++)
            ck_assert_msg(sa[k]->tokens[t] == sb[k]->tokens[t], "split %d token %lld: %d != %d", k,
                          (long long)t, sa[k]->tokens[t], sb[k]->tokens[t]);
        for (int i = 0; i < sa[k]->n; i++) ck_assert_int_eq(sa[k]->labels[i], sb[k]->labels[i]);
    }
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

START_TEST(test_listops_export_reads_back_through_the_files_loader_as_the_same_examples) {
    char dir[64] = "/tmp/xb-export-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (int parens = 0; parens < 2; parens++) {
        const char *kv[] = {"num_train",  "300", "num_val",    "40",
                            "num_test",   "50",  "min_length", "5",
                            "max_length", "60",  "parens",     parens ? "1" : "0"};
        Dataset gen, back;
        load(&gen, "listops", kv, 12);
        char sub[128];
        snprintf(sub, sizeof sub, "%s/p%d", dir, parens);
        ExportSummary ex;
        export_ok(&gen, "listops", sub, &ex);
        ck_assert_int_eq(ex.n_files, 3);
        ck_assert_str_eq(ex.files[0], "basic_train.tsv");
        ck_assert_int_eq(ex.replaced, 0);
        const char *fk[] = {"source", "files", "data_dir", sub, "parens", parens ? "1" : "0"};
        load(&back, "listops", fk, 6);
        assert_same_examples(&gen, &back);
        ck_assert_str_eq(gen.checksum, back.checksum);
        dataset_free(&gen);
        dataset_free(&back);
    }
    fixture_rmdir(dir);
}
END_TEST

/* An AAN file written here: rows of label, ids and two texts with every byte a row can hold. */
static void write_aan(const char *dir, const char *name, int rows, int salt) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < rows; i++) {
        fprintf(f, "%d\tP%02d\tQ%02d\t", (i + salt) % 2, i, i);
        for (int b = 1; b < 256; b++) /* every byte but NUL, tab, LF, CR; CR ends a row */
            if (b != '\t' && b != '\n' && b != '\r' && (b + i) % 3) fputc(b, f);
        fprintf(f, "\tsecond text %d of 'x' \\ \"y\"\n", i + salt);
    }
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_retrieval_aan_export_reads_back_as_the_same_pairs) {
    char dir[64] = "/tmp/xb-export-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_aan(dir, "new_aan_pairs.train.tsv", 9, 0);
    write_aan(dir, "new_aan_pairs.eval.tsv", 3, 1);
    write_aan(dir, "new_aan_pairs.test.tsv", 4, 2);
    const char *kv[] = {"source", "aan", "data_dir", dir};
    Dataset src, back;
    load(&src, "retrieval", kv, 4);
    char out[128];
    snprintf(out, sizeof out, "%s/out", dir);
    ExportSummary ex;
    export_ok(&src, "retrieval", out, &ex);
    ck_assert_int_eq(ex.replaced, 0);
    ck_assert_str_eq(ex.files[1], "new_aan_pairs.eval.tsv");
    const char *bk[] = {"source", "aan", "data_dir", out};
    load(&back, "retrieval", bk, 4);
    assert_same_examples(&src, &back);
    ck_assert_str_eq(src.checksum, back.checksum);
    dataset_free(&src);
    dataset_free(&back);
    fixture_rmdir(dir);
}
END_TEST

enum { NHAM = 30, NSPAM = 20 };

/* A SpamAssassin-layout corpus whose bodies hold line feeds, tabs, carriage returns, backslashes
 * and (with nul) a NUL byte. */
static void write_corpus(const char *dir, int nul) {
    static const char *const groups[] = {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1",
                                         "spam-2"};
    for (int g = 0; g < 5; g++) fixture_put(dir, groups[g], ".keep", "");
    for (int i = 0; i < NHAM + NSPAM; i++) {
        char path[256], body[512];
        int m = snprintf(body, sizeof body, "From: x%d\nSubject: s\n\n<message %02d>\n", i, i);
        for (int k = 0; k < 8 + (i * 5) % 17; k++)
            m += snprintf(body + m, sizeof body - (size_t)m, "w%d\t%d\\%s", i, k,
                          k % 3 == 0   ? "\r\n"
                          : k % 3 == 1 ? "\n"
                                       : " ");
        snprintf(path, sizeof path, "%s/%s/%05d.txt", dir, i < NHAM ? "easy-ham-1" : "spam-1", i);
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        fwrite(body, 1, (size_t)m, f);
        if (nul && i % 7 == 0) fwrite("a\0b", 1, 3, f);
        ck_assert_int_eq(fclose(f), 0);
    }
}

START_TEST(test_retrieval_export_writes_bytes_a_row_cannot_hold_as_spaces_and_keeps_the_rest) {
    char dir[64] = "/tmp/xb-export-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_corpus(dir, 1);
    const char *kv[] = {"source", "spam-assassin", "data_dir", dir};
    Dataset src, back;
    load(&src, "retrieval", kv, 4);
    char out[128];
    snprintf(out, sizeof out, "%s/out", dir);
    ExportSummary ex;
    export_ok(&src, "retrieval", out, &ex);
    const char *bk[] = {"source", "aan", "data_dir", out};
    load(&back, "retrieval", bk, 4);
    /* the same pairs, each byte the same but tab, LF, CR and NUL, which read back as spaces */
    const Split *sa[3] = {&src.train, &src.val, &src.test},
                *sb[3] = {&back.train, &back.val, &back.test};
    int64_t replaced = 0;
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(sa[k]->n, sb[k]->n);
        for (int j = 0; j <= 2 * sa[k]->n; j++)
            ck_assert_int_eq(sa[k]->offsets[j], sb[k]->offsets[j]);
        for (int64_t t = 0; t < sa[k]->offsets[2 * sa[k]->n]; t++) {
            const int b = sa[k]->tokens[t] - 1;
            const int gone = b == '\t' || b == '\n' || b == '\r' || b == 0;
            replaced += gone;
            ck_assert_int_eq(sb[k]->tokens[t] - 1, gone ? ' ' : b);
        }
        for (int i = 0; i < sa[k]->n; i++) ck_assert_int_eq(sa[k]->labels[i], sb[k]->labels[i]);
    }
    ck_assert_int_gt(replaced, 100);
    ck_assert_int_eq(ex.replaced, replaced);
    dataset_free(&src);
    dataset_free(&back);
    fixture_rmdir(dir);
}
END_TEST

/* Reads an exported text TSV naively: the header, then label TAB escaped-text per line. Checks
 * it against split s. */
static void assert_text_file(const char *path, const Split *s) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char head[16] = "";
    ck_assert_ptr_nonnull(fgets(head, sizeof head, f));
    ck_assert_str_eq(head, "label\ttext\n");
    for (int i = 0; i < s->n; i++) {
        int label = -1, c;
        ck_assert_int_eq(fscanf(f, "%d", &label), 1);
        ck_assert_int_eq(label, s->labels[i]);
        ck_assert_int_eq(fgetc(f), '\t');
        int64_t t = s->offsets[i];
        while ((c = fgetc(f)) != '\n') {
            ck_assert_int_ne(c, EOF);
            ck_assert_int_ne(c, '\t');
            ck_assert_int_ne(c, '\r');
            ck_assert_int_ne(c, 0);
            if (c == '\\') {
                const int e = fgetc(f);
                c = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == '0' ? 0 : e;
                ck_assert_msg(strchr("tnr0\\", e) && e, "unknown escape \\%c", e);
            }
            ck_assert_int_lt(t, s->offsets[i + 1]);
            ck_assert_int_eq(c + 1, s->tokens[t]);
            t++;
        }
        ck_assert_int_eq(t, s->offsets[i + 1]);
    }
    ck_assert_int_eq(fgetc(f), EOF);
    fclose(f);
}

START_TEST(test_text_export_escapes_and_every_byte_reads_back) {
    char dir[64] = "/tmp/xb-export-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_corpus(dir, 1);
    const char *kv[] = {"source", "spam-assassin", "data_dir", dir};
    Dataset src;
    load(&src, "text", kv, 4);
    char out[128], path[256];
    snprintf(out, sizeof out, "%s/out", dir);
    ExportSummary ex;
    export_ok(&src, "text", out, &ex);
    ck_assert_int_eq(ex.replaced, 0);
    const Split *sp[3] = {&src.train, &src.val, &src.test};
    int nul = 0;
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", out, ex.files[k]);
        assert_text_file(path, sp[k]);
        for (int64_t t = 0; t < sp[k]->offsets[sp[k]->n]; t++) nul += sp[k]->tokens[t] == 1;
    }
    ck_assert_int_gt(nul, 0); /* the NUL bytes were there to escape */
    dataset_free(&src);
    fixture_rmdir(dir);
}
END_TEST

/* The bytes of path (malloc'd), *n their count. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    b[*n] = 0;
    return b;
}

/* Checks path against the .npy format 1.0 with the exact header dict, and returns its data. */
static const unsigned char *npy_data(const unsigned char *b, size_t n, const char *dict) {
    ck_assert_uint_ge(n, 10);
    ck_assert_int_eq(memcmp(b, "\x93NUMPY\x01\x00", 8), 0);
    const size_t hl = (size_t)b[8] | (size_t)b[9] << 8;
    ck_assert_uint_eq((10 + hl) % 64, 0);
    ck_assert_uint_le(10 + hl, n);
    ck_assert_int_eq(b[10 + hl - 1], '\n');
    const size_t dl = strlen(dict);
    ck_assert_int_eq(memcmp(b + 10, dict, dl), 0);
    for (size_t i = 10 + dl; i < 10 + hl - 1; i++) ck_assert_int_eq(b[i], ' ');
    return b + 10 + hl;
}

static int32_t le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

START_TEST(test_pathfinder_export_npy_files_parse_as_the_format_defines) {
    char dir[64] = "/tmp/xb-export-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *kv[] = {"num_train", "6", "num_val", "2", "num_test", "3", "difficulty", "easy"};
    Dataset d;
    load(&d, "pathfinder", kv, 8);
    ExportSummary ex;
    export_ok(&d, "pathfinder", dir, &ex);
    ck_assert_int_eq(ex.n_files, 6);
    const Split *sp[3] = {&d.train, &d.val, &d.test};
    for (int k = 0; k < 3; k++) {
        char path[256], dict[128];
        size_t n;
        snprintf(path, sizeof path, "%s/%s", dir, ex.files[2 * k]);
        unsigned char *b = slurp(path, &n);
        snprintf(dict, sizeof dict,
                 "{'descr': '<i4', 'fortran_order': False, 'shape': (%d, 1024), }", sp[k]->n);
        const unsigned char *x = npy_data(b, n, dict);
        ck_assert_uint_eq((size_t)(b + n - x), 4 * (size_t)sp[k]->n * 1024);
        for (size_t t = 0; t < (size_t)sp[k]->n * 1024; t++)
            ck_assert_int_eq(le32(x + 4 * t), sp[k]->tokens[t]);
        free(b);
        snprintf(path, sizeof path, "%s/%s", dir, ex.files[2 * k + 1]);
        b = slurp(path, &n);
        snprintf(dict, sizeof dict, "{'descr': '<i4', 'fortran_order': False, 'shape': (%d,), }",
                 sp[k]->n);
        const unsigned char *y = npy_data(b, n, dict);
        ck_assert_uint_eq((size_t)(b + n - y), 4 * (size_t)sp[k]->n);
        for (int i = 0; i < sp[k]->n; i++) ck_assert_int_eq(le32(y + 4 * i), sp[k]->labels[i]);
        free(b);
    }
    ck_assert_str_eq(ex.files[5], "pathfinder_test_targets.npy");
    dataset_free(&d);
    fixture_rmdir(dir);
}
END_TEST

/* mqar, selcopy and needle of varying lengths: inputs (N, L) hold each example's tokens then 0,
 * targets (N, L) each position's target then -1, L the split's longest example. */
START_TEST(test_sequence_task_exports_pad_tokens_with_0_and_targets_with_minus_1) {
    const char *const mqar[] = {"num_train", "12", "num_val",   "5", "num_test", "7",
                                "min_pairs", "2",  "max_pairs", "5", "queries",  "2",
                                "keys",      "16", "values",    "4"};
    const char *const selcopy[] = {"num_train", "12",         "num_val", "5",          "num_test",
                                   "7",         "min_length", "4",       "max_length", "12",
                                   "tokens",    "3",          "symbols", "4"};
    const char *const needle[] = {"num_train",  "12", "num_val",    "5",  "num_test", "7",
                                  "min_length", "9",  "max_length", "20", "digits",   "2"};
    const struct {
        const char *task;
        const char *const *kv;
        int n;
    } cases[] = {{"mqar", mqar, 16}, {"selcopy", selcopy, 14}, {"needle", needle, 12}};
    for (size_t c = 0; c < XB_ARRAY_LEN(cases); c++) {
        char dir[64] = "/tmp/xb-export-XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(dir));
        Dataset d;
        load(&d, cases[c].task, cases[c].kv, cases[c].n);
        ExportSummary ex;
        export_ok(&d, cases[c].task, dir, &ex);
        ck_assert_int_eq(ex.n_files, 6);
        const Split *sp[3] = {&d.train, &d.val, &d.test};
        const char *const names[3] = {"train", "val", "test"};
        int padded = 0;
        for (int k = 0; k < 3; k++) {
            int64_t L = 0;
            for (int i = 0; i < sp[k]->n; i++)
                L = XB_MAX(L, sp[k]->offsets[i + 1] - sp[k]->offsets[i]);
            char dict[128];
            snprintf(dict, sizeof dict,
                     "{'descr': '<i4', 'fortran_order': False, 'shape': (%d, %lld), }", sp[k]->n,
                     (long long)L);
            for (int file = 0; file < 2; file++) {
                char path[256], want[64];
                snprintf(want, sizeof want, "%s_%s_%s.npy", cases[c].task, names[k],
                         file ? "targets" : "inputs");
                ck_assert_str_eq(ex.files[2 * k + file], want);
                snprintf(path, sizeof path, "%s/%s", dir, want);
                size_t n;
                unsigned char *b = slurp(path, &n);
                const unsigned char *x = npy_data(b, n, dict);
                ck_assert_uint_eq((size_t)(b + n - x), 4 * (size_t)sp[k]->n * (size_t)L);
                const int32_t *v = file ? sp[k]->targets : sp[k]->tokens,
                              pad = file ? XB_NO_TARGET : XB_PAD_ID;
                for (int i = 0; i < sp[k]->n; i++) {
                    const int64_t a = sp[k]->offsets[i], len = sp[k]->offsets[i + 1] - a;
                    padded += len < L;
                    for (int64_t t = 0; t < L; t++)
                        ck_assert_msg(le32(x + 4 * ((size_t)i * L + t)) ==
                                          (t < len ? v[a + t] : pad),
                                      "%s example %d position %lld", want, i, (long long)t);
                }
                free(b);
            }
        }
        ck_assert_int_gt(padded, 0); /* the lengths varied: padding was written */
        dataset_free(&d);
        fixture_rmdir(dir);
    }
}
END_TEST

START_TEST(test_npy_of_floats_holds_their_bits_little_endian) {
    char dir[64] = "/tmp/xb-export-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const float v[6] = {1.0f, -2.5f, 3.25e-7f, 1e30f, 0.0f, -0.0f};
    const int64_t shape[2] = {3, 2};
    char path[128];
    snprintf(path, sizeof path, "%s/sub/x.npy", dir);
    XbError err;
    xb_error_clear(&err);
    ck_assert_int_eq(export_npy(path, 'f', 2, shape, v, &err), 0);
    size_t n;
    unsigned char *b = slurp(path, &n);
    const unsigned char *x =
        npy_data(b, n, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }");
    ck_assert_uint_eq((size_t)(b + n - x), sizeof v);
    for (int i = 0; i < 6; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        ck_assert_uint_eq((uint32_t)le32(x + 4 * i), bits);
    }
    free(b);
    fixture_rmdir(dir);
}
END_TEST

START_TEST(test_existing_files_unwritable_dirs_and_failed_writes_leave_nothing_behind) {
    char dir[64] = "/tmp/xb-export-XXXXXX", msg[2048];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *kv[] = {"num_train", "20",         "num_val", "5",          "num_test",
                        "5",         "min_length", "3",       "max_length", "20"};
    Dataset d;
    load(&d, "listops", kv, 10);
    XbError err;
    ExportSummary ex;
    char out[128], path[256];
    /* an existing file is never replaced */
    snprintf(out, sizeof out, "%s/a", dir);
    fixture_put(out, "", "basic_val.tsv", "mine\n");
    xb_error_clear(&err);
    ck_assert_int_eq(export_dataset(&d, "listops", out, &ex, &err), -1);
    xb_error_format(&err, msg, sizeof msg);
    snprintf(path, sizeof path,
             "%s/basic_val.tsv: already exists (export into a new or empty directory: an "
             "export never replaces a file)",
             out);
    ck_assert_str_eq(msg, path);
    ck_assert_int_eq(err.code, XB_EXIT_USAGE);
    ck_assert_int_eq(count_entries(out), 1);
    /* a directory below a regular file */
    snprintf(out, sizeof out, "%s/a/basic_val.tsv/sub", dir);
    xb_error_clear(&err);
    ck_assert_int_eq(export_dataset(&d, "listops", out, &ex, &err), -1);
    xb_error_format(&err, msg, sizeof msg);
    snprintf(path, sizeof path,
             "%s: cannot create directory: '%s/a/basic_val.tsv' is not a "
             "directory",
             out, dir);
    ck_assert_str_eq(msg, path);
    /* a write that fails (files limited to 64 bytes): nothing is left, not even the temporaries'
     * directory; a symlink planted at the old fixed temporary name is never followed */
    snprintf(out, sizeof out, "%s/b", dir);
    ck_assert_int_eq(mkdir(out, 0755), 0);
    snprintf(path, sizeof path, "%s/basic_train.tsv.tmp", out);
    char victim[300];
    snprintf(victim, sizeof victim, "%s/victim", dir);
    FILE *v = fopen(victim, "w");
    ck_assert_ptr_nonnull(v);
    fputs("keep", v);
    fclose(v);
    ck_assert_int_eq(symlink(victim, path), 0);
    struct rlimit lim, small = {.rlim_cur = 64, .rlim_max = RLIM_INFINITY};
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &lim), 0);
    small.rlim_max = lim.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    xb_error_clear(&err);
    const int rc = export_dataset(&d, "listops", out, &ex, &err);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    signal(SIGXFSZ, SIG_DFL);
    ck_assert_int_eq(rc, -1);
    xb_error_format(&err, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "File too large"), "%s", msg);
    ck_assert_int_eq(count_entries(out), 1); /* only the planted symlink */
    v = fopen(victim, "r");
    char got[16] = "";
    ck_assert_ptr_nonnull(fgets(got, sizeof got, v));
    fclose(v);
    ck_assert_str_eq(got, "keep");
    unlink(path);
    unlink(victim);
    /* a task without a format */
    xb_error_clear(&err);
    ck_assert_int_eq(export_check("parity", dir, &err), -1);
    xb_error_format(&err, msg, sizeof msg);
    ck_assert_msg(strstr(msg, ": task parity has no export format (valid: listops, text, "
                              "retrieval, image, pathfinder, mqar, selcopy, needle)"),
                  "%s", msg);
    dataset_free(&d);
    fixture_rmdir(dir);
}
END_TEST

static Suite *export_suite(void) {
    Suite *s = suite_create("export");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc,
                   test_listops_export_reads_back_through_the_files_loader_as_the_same_examples);
    tcase_add_test(tc, test_retrieval_aan_export_reads_back_as_the_same_pairs);
    tcase_add_test(
        tc, test_retrieval_export_writes_bytes_a_row_cannot_hold_as_spaces_and_keeps_the_rest);
    tcase_add_test(tc, test_text_export_escapes_and_every_byte_reads_back);
    tcase_add_test(tc, test_pathfinder_export_npy_files_parse_as_the_format_defines);
    tcase_add_test(tc, test_sequence_task_exports_pad_tokens_with_0_and_targets_with_minus_1);
    tcase_add_test(tc, test_npy_of_floats_holds_their_bits_little_endian);
    tcase_add_test(tc, test_existing_files_unwritable_dirs_and_failed_writes_leave_nothing_behind);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(export_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
