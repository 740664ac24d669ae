/* The data cache: a hit gives back the very dataset that was generated (every array, the
 * identity, the checksum); the key changes with the seed and every option; a damaged file is
 * regenerated, never used; data read from files and a cache turned off write nothing; a write
 * clears the temporaries that killed writes left, once they are a day old. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>
#include <zlib.h>

#include "core/error.h"
#include "fixture_files.h"
#include "tasks/cache.h"
#include "tasks/task.h"

static char g_dir[64];

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/xb-cache-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    setenv("XB_CACHE_DIR", g_dir, 1);
}

static void teardown(void) { fixture_rmdir(g_dir); }

static const TaskSpec *task(const char *name) { return task_get(task_find(name)); }

static OptValues opts(const char *name, const char *const *kv, int n) {
    return fixture_task_opts(name, kv, n);
}

static CacheOutcome load(const char *name, const OptValues *v, uint64_t seed, Dataset *d,
                         char *path) {
    XbError err;
    xb_error_clear(&err);
    CacheOutcome oc;
    char msg[1024] = "";
    const int rc = task_load(task(name), d, v, seed, "t.yaml", &oc, path, 4200, &err);
    if (rc) xb_error_format(&err, msg, sizeof msg);
    ck_assert_msg(rc == 0, "%s", msg);
    return oc;
}

static void assert_split_eq(const Split *a, const Split *b) {
    ck_assert_int_eq(a->n, b->n);
    ck_assert_int_eq(split_docs(a), split_docs(b));
    const size_t nd = (size_t)a->n * (size_t)split_docs(a), ntok = (size_t)a->offsets[nd];
    ck_assert_int_eq(memcmp(a->offsets, b->offsets, (nd + 1) * sizeof *a->offsets), 0);
    ck_assert_int_eq(memcmp(a->tokens, b->tokens, ntok * sizeof *a->tokens), 0);
    ck_assert_int_eq(!a->labels, !b->labels);
    if (a->labels) ck_assert_int_eq(memcmp(a->labels, b->labels, a->n * sizeof *a->labels), 0);
    ck_assert_int_eq(!a->targets, !b->targets);
    if (a->targets) ck_assert_int_eq(memcmp(a->targets, b->targets, ntok * sizeof *a->targets), 0);
}

/* The same fields in the same order: kind, depth, key and value. */
static void assert_id_eq(const DatasetId *a, const DatasetId *b) {
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const DatasetIdField *f = &a->f[i], *g = &b->f[i];
        ck_assert_int_eq(f->kind, g->kind);
        ck_assert_int_eq(f->depth, g->depth);
        ck_assert_str_eq(f->key, g->key);
        if (f->kind == DATASET_ID_STR)
            ck_assert_str_eq(dataset_id_text(a, f), dataset_id_text(b, g));
        else if (f->kind == DATASET_ID_NUM)
            ck_assert(f->v.x == g->v.x);
        else if (f->kind == DATASET_ID_HASH)
            ck_assert(f->v.hash == g->v.hash);
        else if (f->kind == DATASET_ID_LIST)
            ck_assert(f->n == g->n && !memcmp(f->v.list, g->v.list, f->n * sizeof *f->v.list));
        else if (f->kind != DATASET_ID_OBJECT)
            ck_assert_int_eq(f->v.i, g->v.i);
    }
}

static void assert_dataset_eq(const Dataset *a, const Dataset *b) {
    ck_assert_int_eq(a->pairs, b->pairs);
    ck_assert_int_eq(a->vocab_size, b->vocab_size);
    ck_assert_int_eq(a->n_classes, b->n_classes);
    ck_assert_int_eq(a->sequence, b->sequence);
    assert_id_eq(&a->id, &b->id);
    fixture_identity_eq(a, b);
    ck_assert_str_eq(a->checksum, b->checksum);
    assert_split_eq(&a->train, &b->train);
    assert_split_eq(&a->val, &b->val);
    assert_split_eq(&a->test, &b->test);
}

static int count_files(const char *dir) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    int n = -1;
    ck_assert_int_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static const char *const LISTOPS[] = {"num_train",  "300", "num_val",    "40", "num_test", "40",
                                      "min_length", "20",  "max_length", "80"};

START_TEST(test_a_hit_is_the_generated_dataset_exactly) {
    /* a per-example task; a sequence task whose targets must come back too; and vocabularies
     * stored at one, two and four bytes a token */
    const char *names[4] = {"listops", "selcopy", "recall", "recall"};
    const char *kv[4][8] = {{0},
                            {"num_train", "200", "num_val", "30", "num_test", "30"},
                            {"num_train", "200", "num_val", "30", "keys", "1024"},
                            {"num_train", "200", "num_val", "30", "keys", "70000"}};
    const int vocab_min[4] = {2, 2, 257, 65537}, vocab_max[4] = {256, 256, 65536, 1 << 30};
    for (int k = 0; k < 4; k++) {
        OptValues v = k ? opts(names[k], kv[k], 6) : opts("listops", LISTOPS, 10);
        Dataset gen, hit, direct;
        char p1[4200], p2[4200];
        ck_assert_int_eq(load(names[k], &v, 5, &gen, p1), CACHE_WRITTEN);
        ck_assert_int_eq(access(p1, R_OK), 0);
        ck_assert_int_eq(load(names[k], &v, 5, &hit, p2), CACHE_HIT);
        ck_assert_str_eq(p1, p2);
        XbError err;
        xb_error_clear(&err);
        ck_assert_int_eq(task(names[k])->load(&direct, &v, 5, "t.yaml", &err), 0);
        assert_dataset_eq(&gen, &direct); /* writing does not change what the run gets */
        assert_dataset_eq(&hit, &direct);
        ck_assert_int_eq(!!hit.train.targets, k == 1);
        ck_assert_int_ge(hit.vocab_size, vocab_min[k]);
        ck_assert_int_le(hit.vocab_size, vocab_max[k]);
        dataset_free(&gen);
        dataset_free(&hit);
        dataset_free(&direct);
    }
    ck_assert_int_eq(count_files(g_dir), 4); /* and no temporary file is left behind */
}
END_TEST

START_TEST(test_the_key_changes_with_the_seed_and_every_option) {
    OptValues v = opts("listops", LISTOPS, 10);
    Dataset d;
    char base[4200], p[4200];
    ck_assert_int_eq(load("listops", &v, 5, &d, base), CACHE_WRITTEN);
    dataset_free(&d);
    ck_assert_int_eq(load("listops", &v, 6, &d, p), CACHE_WRITTEN); /* another seed */
    ck_assert_str_ne(p, base);
    dataset_free(&d);
    const char *changed[][2] = {{"num_train", "301"}, {"num_val", "41"},    {"num_test", "41"},
                                {"min_length", "21"}, {"max_length", "81"}, {"max_depth", "9"},
                                {"max_args", "9"},    {"parens", "1"}};
    for (size_t i = 0; i < sizeof changed / sizeof changed[0]; i++) {
        const char *kv[12];
        memcpy(kv, LISTOPS, sizeof LISTOPS);
        kv[10] = changed[i][0], kv[11] = changed[i][1];
        OptValues w = opts("listops", kv, 12);
        ck_assert_int_eq(load("listops", &w, 5, &d, p), CACHE_WRITTEN);
        ck_assert_str_ne(p, base);
        dataset_free(&d);
    }
    ck_assert_int_eq(load("listops", &v, 5, &d, p), CACHE_HIT);
    ck_assert_str_eq(p, base);
    dataset_free(&d);
}
END_TEST

/* Damages the file at path: cut to half, or one byte flipped at a fraction of its length. */
static void damage(const char *path, int how) {
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    if (how == 0) {
        ck_assert_int_eq(truncate(path, st.st_size / 2), 0);
        return;
    }
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    const long at = how == 1 ? 3 : (long)(st.st_size * 0.7); /* the magic, or a token */
    ck_assert_int_eq(fseek(f, at, SEEK_SET), 0);
    const int c = fgetc(f);
    ck_assert_int_eq(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 0x10, f);
    fclose(f);
}

START_TEST(test_a_damaged_file_is_regenerated_not_used) {
    OptValues v = opts("listops", LISTOPS, 10);
    Dataset good, d;
    char p[4200];
    ck_assert_int_eq(load("listops", &v, 5, &good, p), CACHE_WRITTEN);
    for (int how = 0; how < 3; how++) {
        damage(p, how);
        ck_assert_int_eq(load("listops", &v, 5, &d, p), CACHE_WRITTEN);
        assert_dataset_eq(&d, &good);
        dataset_free(&d);
        ck_assert_int_eq(load("listops", &v, 5, &d, p), CACHE_HIT); /* rewritten whole */
        dataset_free(&d);
    }
    dataset_free(&good);
}
END_TEST

START_TEST(test_files_and_a_cache_turned_off_write_nothing) {
    const char *files[] = {"source", "files", "data_dir", XB_FIXTURES "/listops/good"};
    OptValues v = opts("listops", files, 4);
    Dataset d;
    char p[4200];
    ck_assert_int_eq(load("listops", &v, 5, &d, p), CACHE_NONE);
    ck_assert_str_eq(p, "");
    dataset_free(&d);
    setenv("XB_CACHE_DIR", "", 1);
    OptValues w = opts("listops", LISTOPS, 10);
    ck_assert_int_eq(load("listops", &w, 5, &d, p), CACHE_NONE);
    dataset_free(&d);
    ck_assert_int_eq(count_files(g_dir), 0);
}
END_TEST

START_TEST(test_the_directory_follows_xb_cache_dir_then_xdg_then_home) {
    char d[4096];
    setenv("XB_CACHE_DIR", "/a/b", 1);
    ck_assert_int_eq(task_cache_dir(d, sizeof d), 0);
    ck_assert_str_eq(d, "/a/b");
    unsetenv("XB_CACHE_DIR");
    setenv("XDG_CACHE_HOME", "/x", 1);
    ck_assert_int_eq(task_cache_dir(d, sizeof d), 0);
    ck_assert_str_eq(d, "/x/xformer-bench");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/h", 1);
    ck_assert_int_eq(task_cache_dir(d, sizeof d), 0);
    ck_assert_str_eq(d, "/h/.cache/xformer-bench");
    unsetenv("HOME");
    ck_assert_int_eq(task_cache_dir(d, sizeof d), -1);
    setenv("XB_CACHE_DIR", "", 1);
    ck_assert_int_eq(task_cache_dir(d, sizeof d), -1);
}
END_TEST

/* Creates dir/name, dated age_s seconds ago. */
static void touch_aged(const char *name, long age_s) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("partial", f);
    fclose(f);
    const time_t t = time(NULL) - age_s;
    const struct utimbuf times = {t, t};
    ck_assert_int_eq(utime(p, &times), 0);
}

static int exists(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return access(p, F_OK) == 0;
}

START_TEST(test_a_write_removes_temporaries_a_day_old_and_nothing_else) {
    const long day = 24 * 3600;
    touch_aged("listops-00000000000000aa.xbd.Ab3xZ9", day + 60); /* a killed write: removed */
    touch_aged("listops-00000000000000bb.xbd.Qq7pL2", 600);      /* may be writing now: kept */
    touch_aged("listops-00000000000000cc.xbd", 3 * day);         /* a cache file: kept */
    touch_aged("notes.xbd.old", 3 * day);                        /* not our pattern: kept */
    touch_aged("listops.xbd.Ab3xZ9x", 3 * day);                  /* 7 letters: kept */
    OptValues v = opts("listops", LISTOPS, 10);
    Dataset d;
    char p[4200];
    ck_assert_int_eq(load("listops", &v, 5, &d, p), CACHE_WRITTEN);
    dataset_free(&d);
    ck_assert(!exists("listops-00000000000000aa.xbd.Ab3xZ9"));
    ck_assert(exists("listops-00000000000000bb.xbd.Qq7pL2"));
    ck_assert(exists("listops-00000000000000cc.xbd"));
    ck_assert(exists("notes.xbd.old"));
    ck_assert(exists("listops.xbd.Ab3xZ9x"));
    ck_assert_int_eq(count_files(g_dir), 5); /* the four kept and the new cache file */
}
END_TEST

/* Where the dataset header's fields are: after the magic (8), the byte-order marker (4), the key's
 * length (8) and the key, come pairs, vocab_size, n_classes and sequence (8 bytes each). */
static long header_field(const char *path, int k) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    int64_t key_len;
    ck_assert_int_eq(fseek(f, 12, SEEK_SET), 0);
    ck_assert_int_eq(fread(&key_len, sizeof key_len, 1, f), 1);
    fclose(f);
    return 20 + (long)key_len + 8 * k;
}

/* Writes bytes b[0..n) over the file at path from offset at. */
static void poke(const char *path, long at, const void *b, size_t n) {
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, at, SEEK_SET), 0);
    ck_assert_int_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void poke_i64(const char *path, long at, int64_t v) { poke(path, at, &v, sizeof v); }

/* The byte at offset at of the file at path. */
static int peek(const char *path, long at) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, at, SEEK_SET), 0);
    const int c = fgetc(f);
    fclose(f);
    return c;
}

/* The offset of the first n bytes equal to b at or after offset from in the file at path. */
static long find_bytes(const char *path, long from, const char *b, size_t n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char buf[4096];
    ck_assert_int_eq(fseek(f, from, SEEK_SET), 0);
    const size_t got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t i = 0; i + n <= got; i++)
        if (!memcmp(buf + i, b, n)) return from + (long)i;
    ck_abort_msg("%s not found in %s", b, path);
    return -1;
}

/* Rewrites the file's last 4 bytes as the CRC-32 of the bytes before them, as a writer would. */
static void fix_crc(const char *path) {
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    const long n = ftell(f) - 4;
    unsigned char *b = malloc((size_t)n);
    ck_assert_ptr_nonnull(b);
    rewind(f);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    const uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)n);
    ck_assert_int_eq(fwrite(&crc, sizeof crc, 1, f), 1);
    ck_assert_int_eq(fclose(f), 0);
    free(b);
}

/* load(), with what it wrote on stderr into err_text (n bytes). */
static CacheOutcome load_stderr(const char *name, const OptValues *v, Dataset *d, char *path,
                                char *err_text, size_t n) {
    char tmp[] = "/tmp/xb-stderr-XXXXXX";
    const int fd = mkstemp(tmp), saved = dup(2);
    ck_assert(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    const CacheOutcome oc = load(name, v, 5, d, path);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    const ssize_t got = pread(fd, err_text, n - 1, 0);
    err_text[got > 0 ? got : 0] = '\0';
    close(fd);
    unlink(tmp);
    return oc;
}

/* The header's vocabulary size, class count and flags were outside every check (the checksum
 * covers the splits only): a changed vocabulary served token ids past a shrunken embedding,
 * changed flags aborted the model. Each change is now seen, said in one line on stderr, and the
 * data generated again, the same as before. */
START_TEST(test_a_changed_header_field_is_regenerated_and_said_so) {
    OptValues v = opts("listops", LISTOPS, 10);
    Dataset good, d;
    char p[4200], text[2048], want[6000];
    ck_assert_int_eq(load("listops", &v, 5, &good, p), CACHE_WRITTEN);
    static const int64_t changed[4] = {1, 3, 2, 1}; /* pairs, vocab_size, n_classes, sequence */
    for (int k = 0; k < 4; k++) {
        poke_i64(p, header_field(p, k), changed[k]);
        ck_assert_int_eq(load_stderr("listops", &v, &d, p, text, sizeof text), CACHE_WRITTEN);
        snprintf(want, sizeof want,
                 "warning: the data cache file %s cannot be used (its CRC-32 does not match its "
                 "bytes): generating the data again\n",
                 p);
        ck_assert_str_eq(text, want);
        assert_dataset_eq(&d, &good);
        dataset_free(&d);
        ck_assert_int_eq(load_stderr("listops", &v, &d, p, text, sizeof text), CACHE_HIT);
        ck_assert_str_eq(text, ""); /* rewritten whole, read silently */
        dataset_free(&d);
    }
    dataset_free(&good);
}
END_TEST

/* A file whose CRC was made to match (a writer with a bug, or on purpose) still cannot give a
 * model token ids past its vocabulary, labels past its classes, flags its splits do not have or
 * an identity the report cannot hold: the dataset is checked before it is used. */
START_TEST(test_a_consistent_file_with_data_a_model_cannot_take_is_regenerated) {
    OptValues v = opts("listops", LISTOPS, 10);
    Dataset good, d;
    char p[4200], text[2048];
    ck_assert_int_eq(load("listops", &v, 5, &good, p), CACHE_WRITTEN);
    static const struct {
        int field;     /* 0-3: pairs, vocab_size, n_classes, sequence; 4: its first key's "t" */
        int64_t value; /* the field's new value */
        const char *why;
    } cases[] = {
        {1, 3, " is not in the vocabulary [0, 3)): generating the data again\n"},
        {2, 2, " is not a class in [0, 2)): generating the data again\n"},
        {0, 1, "(split train: 1 documents per example, but the dataset is made of pairs)"},
        {3, 1, "(split train: a label per example, but the dataset has targets per position)"},
        {4, 0,
         "(the dataset's identity starts with the key \"#ask\" (valid: \"task\", the task's "
         "name))"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].field < 4) {
            poke_i64(p, header_field(p, cases[i].field), cases[i].value);
        } else { /* the identity follows the four fields: its field count, then the first
                  * field's kind, depth, key length and key */
            const long at = header_field(p, 4) + 32;
            ck_assert_int_eq(peek(p, at), 't');
            poke(p, at, "#", 1);
        }
        fix_crc(p);
        ck_assert_int_eq(load_stderr("listops", &v, &d, p, text, sizeof text), CACHE_WRITTEN);
        ck_assert_msg(strstr(text, cases[i].why) && !strncmp(text, "warning: the data cache", 23),
                      "%zu: %s", i, text);
        assert_dataset_eq(&d, &good);
        dataset_free(&d);
    }
    dataset_free(&good);
}
END_TEST

/* The identity is read field by field, each checked as it comes (its count, kind, depth, key and
 * value) and then as a whole (dataset_validate: the task first, no key twice): a file whose CRC
 * matches but whose identity the report could not hold is regenerated, with the reason. */
START_TEST(test_a_consistent_file_with_a_malformed_identity_is_regenerated) {
    OptValues v = opts("listops", LISTOPS, 10);
    Dataset good, d;
    char p[4200], text[2048];
    ck_assert_int_eq(load("listops", &v, 5, &good, p), CACHE_WRITTEN);
    static const char bad[] = "(its dataset identity is out of range or cut short)";
    static const struct {
        const char *after; /* the key the change is after ("": the field count) */
        long at;           /* bytes after it */
        int64_t value;     /* written there as an int64, or "max" over "min" when after is "min_" */
        const char *why;
        const char *byte; /* or this byte written there instead */
    } cases[] = {
        {"", 0, 0, bad, NULL},                     /* no fields */
        {"", 0, DATASET_ID_FIELDS + 1, bad, NULL}, /* more than fit */
        {"", 8, DATASET_ID_KINDS, bad, NULL},      /* the first field's kind */
        {"", 16, 1, bad, NULL},                    /* its depth: nested, with no object before it */
        {"", 24, 0, bad, NULL},                    /* its key's length */
        {"", 24, DATASET_ID_KEY, bad, NULL},       /* a key longer than a key can be */
        {"task", 0, 1 << 20, bad, NULL},           /* the string's length */
        {"parens", 0, 2, bad, NULL},               /* a boolean that is neither */
        {"seed", 0, INT64_MAX, bad, NULL},         /* an integer a report cannot hold exactly */
        {"min_", 0, 0, "(the dataset's identity has the key \"max_length\" twice)", NULL},
        {"generator", -9, 0, bad, "\xff"}, /* a key that is not UTF-8: a report could not hold it */
        {"lra-", 0, 0, bad, "\x89"},       /* a string that is not UTF-8 */
        {"task", 14, 0, "(its dataset identity is another task's)", "z"}, /* "listopz" */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const long id = header_field(p, 4); /* the identity follows the four fields */
        const char *key = cases[i].after;
        const long at = *key ? find_bytes(p, id, key, strlen(key)) + (long)strlen(key) : id;
        if (cases[i].byte)
            poke(p, at + cases[i].at, cases[i].byte, 1);
        else if (!strcmp(key, "min_"))
            poke(p, at - 4, "max_", 4);
        else
            poke_i64(p, at + cases[i].at, cases[i].value);
        fix_crc(p);
        ck_assert_int_eq(load_stderr("listops", &v, &d, p, text, sizeof text), CACHE_WRITTEN);
        ck_assert_msg(strstr(text, cases[i].why) && !strncmp(text, "warning: the data cache", 23),
                      "%zu: %s", i, text);
        assert_dataset_eq(&d, &good);
        dataset_free(&d);
    }
    dataset_free(&good);
}
END_TEST

/* A generated dataset whose identity has a field of every kind, one of them inside an object. */
static int every_kind_load(Dataset *d, const OptValues *o, uint64_t seed, const char *source,
                           XbError *err) {
    (void)o, (void)source, (void)err;
    memset(d, 0, sizeof *d);
    d->vocab_size = 3, d->n_classes = 2;
    DatasetId *id = &d->id;
    dataset_id_str(id, "task", "every-kind");
    dataset_id_str(id, "s", "a\"b\\c \xc3\xa9\t");
    dataset_id_int(id, "i", -5);
    dataset_id_int(id, "big", 9007199254740991);
    dataset_id_uint(id, "seed", seed);
    dataset_id_num(id, "x", 0.9);
    dataset_id_num(id, "tiny", 1.5e-5);
    dataset_id_num(id, "rounded", 1.23456789);
    dataset_id_bool(id, "t", 1);
    dataset_id_bool(id, "f", 0);
    dataset_id_hash(id, "h", 0xfedcba9876543210ULL);
    dataset_id_list(id, "l", (const int[]){2, 3}, 2);
    dataset_id_begin(id, "files");
    dataset_id_hash(id, "a", 1);
    dataset_id_int(id, "b", 7);
    dataset_id_end(id);
    dataset_id_str(id, "after", "");
    Split *s[3] = {&d->train, &d->val, &d->test};
    for (int k = 0; k < 3; k++) {
        s[k]->n = 1;
        s[k]->tokens = malloc(2 * sizeof(int32_t));
        s[k]->offsets = malloc(2 * sizeof(int64_t));
        s[k]->labels = malloc(sizeof(int32_t));
        s[k]->tokens[0] = 1, s[k]->tokens[1] = 2;
        s[k]->offsets[0] = 0, s[k]->offsets[1] = 2;
        s[k]->labels[0] = k & 1;
    }
    dataset_checksum(d);
    return 0;
}

START_TEST(test_a_hit_gives_back_every_kind_of_identity_field) {
    const TaskSpec t = {
        .name = "every-kind", .load = every_kind_load, .generated = task_always_generated};
    Dataset gen, hit;
    XbError err;
    xb_error_clear(&err);
    CacheOutcome oc;
    char p[4200];
    ck_assert_int_eq(task_load(&t, &gen, NULL, 77, "t.yaml", &oc, p, sizeof p, &err), 0);
    ck_assert_int_eq(oc, CACHE_WRITTEN);
    ck_assert_int_eq(task_load(&t, &hit, NULL, 77, "t.yaml", &oc, p, sizeof p, &err), 0);
    ck_assert_int_eq(oc, CACHE_HIT);
    assert_dataset_eq(&hit, &gen);
    ck_assert(fixture_identity_has(
        &hit, "{\"task\":\"every-kind\",\"s\":\"a\\\"b\\\\c \xc3\xa9\\t\",\"i\":-5,"
              "\"big\":9007199254740991,\"seed\":77,\"x\":0.9,\"tiny\":1.5e-05,"
              "\"rounded\":1.23457,\"t\":true,\"f\":false,\"h\":\"fedcba9876543210\","
              "\"l\":[2,3],\"files\":{\"a\":\"0000000000000001\",\"b\":7},\"after\":\"\"}"));
    dataset_free(&gen);
    dataset_free(&hit);
}
END_TEST

/* An identity that does not fit its bounds is a task's programming error: the call asserts
 * (SIGABRT) rather than cut it short. _i: more fields than fit, a key too long, a number %g
 * would print in exponent form, an integer a double cannot hold, an object inside an object, an
 * end without a begin, more string bytes than fit. */
START_TEST(test_an_identity_that_does_not_fit_is_a_programming_error) {
    DatasetId id = {0};
    dataset_id_str(&id, "task", "t");
    char key[64], big[DATASET_ID_TEXT];
    if (_i == 0) {
        for (int k = 0; k < DATASET_ID_FIELDS; k++) {
            snprintf(key, sizeof key, "k%d", k);
            dataset_id_int(&id, key, k);
        }
    }
    if (_i == 1) {
        memset(key, 'k', DATASET_ID_KEY), key[DATASET_ID_KEY] = '\0';
        dataset_id_int(&id, key, 1);
    }
    if (_i == 2) dataset_id_num(&id, "x", 1e6);
    if (_i == 3) dataset_id_int(&id, "i", (int64_t)1 << 53);
    if (_i == 4) {
        dataset_id_begin(&id, "files");
        dataset_id_begin(&id, "inner");
    }
    if (_i == 5) dataset_id_end(&id);
    if (_i == 6) {
        memset(big, 'b', sizeof big - 1), big[sizeof big - 1] = '\0';
        dataset_id_str(&id, "s", big);
    }
}
END_TEST

/* A cache file that is not a regular file (a FIFO would block the read) is not used. */
START_TEST(test_a_cache_path_that_is_not_a_file_is_regenerated) {
    OptValues v = opts("listops", LISTOPS, 10);
    Dataset good, d;
    char p[4200], text[2048], want[6000];
    ck_assert_int_eq(load("listops", &v, 5, &good, p), CACHE_WRITTEN);
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    ck_assert_int_eq(load_stderr("listops", &v, &d, p, text, sizeof text), CACHE_WRITTEN);
    snprintf(want, sizeof want,
             "warning: the data cache file %s cannot be used (it is a FIFO, not a regular file): "
             "generating the data again\n",
             p);
    ck_assert_str_eq(text, want);
    assert_dataset_eq(&d, &good);
    dataset_free(&d);
    dataset_free(&good);
}
END_TEST

/* A task whose loader returns data a model cannot take: task_load refuses it. */
static int bad_load(Dataset *d, const OptValues *o, uint64_t seed, const char *source,
                    XbError *err) {
    (void)o, (void)seed, (void)source, (void)err;
    memset(d, 0, sizeof *d);
    d->vocab_size = 3, d->n_classes = 2;
    dataset_id_str(&d->id, "task", "bad");
    Split *s[3] = {&d->train, &d->val, &d->test};
    for (int k = 0; k < 3; k++) {
        s[k]->n = 1;
        s[k]->tokens = malloc(2 * sizeof(int32_t));
        s[k]->offsets = malloc(2 * sizeof(int64_t));
        s[k]->labels = malloc(sizeof(int32_t));
        s[k]->tokens[0] = 1, s[k]->tokens[1] = k == 2 ? 7 : 2;
        s[k]->offsets[0] = 0, s[k]->offsets[1] = 2;
        s[k]->labels[0] = 1;
    }
    return 0;
}

START_TEST(test_a_loader_returning_ids_past_its_vocabulary_is_an_error) {
    const TaskSpec bad = {.name = "bad", .load = bad_load};
    Dataset d;
    XbError err;
    xb_error_clear(&err);
    CacheOutcome oc;
    ck_assert_int_eq(task_load(&bad, &d, NULL, 1, "t.yaml", &oc, NULL, 0, &err), -1);
    ck_assert_int_eq(err.code, XB_EXIT_USAGE);
    char msg[2048];
    xb_error_format(&err, msg, sizeof msg);
    ck_assert_str_eq(msg, "t.yaml: split test, example 0, token 1: id 7 is not in the vocabulary "
                          "[0, 3) (task bad)");
}
END_TEST

static Suite *cache_suite(void) {
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("all");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_hit_is_the_generated_dataset_exactly);
    tcase_add_test(tc, test_the_key_changes_with_the_seed_and_every_option);
    tcase_add_test(tc, test_a_damaged_file_is_regenerated_not_used);
    tcase_add_test(tc, test_a_changed_header_field_is_regenerated_and_said_so);
    tcase_add_test(tc, test_a_consistent_file_with_data_a_model_cannot_take_is_regenerated);
    tcase_add_test(tc, test_a_consistent_file_with_a_malformed_identity_is_regenerated);
    tcase_add_test(tc, test_a_hit_gives_back_every_kind_of_identity_field);
    tcase_add_test(tc, test_a_cache_path_that_is_not_a_file_is_regenerated);
    tcase_add_test(tc, test_a_loader_returning_ids_past_its_vocabulary_is_an_error);
    tcase_add_test(tc, test_files_and_a_cache_turned_off_write_nothing);
    tcase_add_test(tc, test_the_directory_follows_xb_cache_dir_then_xdg_then_home);
    tcase_add_test(tc, test_a_write_removes_temporaries_a_day_old_and_nothing_else);
    suite_add_tcase(s, tc);
    tc = tcase_create("identity"); /* in a process of its own: Check forks, as it does by default */
    tcase_add_loop_test_raise_signal(tc, test_an_identity_that_does_not_fit_is_a_programming_error,
                                     SIGABRT, 0, 7);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(cache_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
