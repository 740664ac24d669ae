/* The image task: IDX (gzipped and plain) and CIFAR-10 binary fixtures written here in those
 * formats, LRA's gray conversion, malformed files named with the place of the fault, and a small
 * sample of the real Fashion-MNIST that Debian's dataset-fashion-mnist installs. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "fixture_files.h"
#include "tasks/task.h"

static const TaskSpec *image(void) { return task_get(task_find("image")); }

static void set_opt(OptValues *v, const char *name, const char *value) {
    const TaskSpec *t = image();
    const int i = opt_index(t->opts, t->n_opts, name);
    ck_assert_int_ge(i, 0);
    if (t->opts[i].type == OPT_STRING)
        snprintf(v->str[i], sizeof v->str[i], "%s", value);
    else if (t->opts[i].type == OPT_ENUM)
        v->num[i] = strcmp(value, "cifar10") == 0;
    else
        v->num[i] = atof(value);
}

static OptValues opts(const char *dir, const char *source, const char *num_val) {
    OptValues v;
    opt_defaults(&v, image()->opts, image()->n_opts);
    set_opt(&v, "data_dir", dir);
    set_opt(&v, "source", source);
    set_opt(&v, "num_val", num_val);
    return v;
}

static void write_bytes(const char *path, const unsigned char *b, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(gzwrite(f, b, (unsigned)n), (int)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(b, 1, n, f), n);
        fclose(f);
    }
}

/* An IDX pair STEM-{images-idx3,labels-idx1}-ubyte[.gz] of n images of r×c; pixel t of image i
 * is (7i + t) mod 256, its label i mod 10. cut: bytes to drop from the end of the images file. */
static void write_idx(const char *dir, const char *stem, int n, int r, int c, int gz, size_t cut) {
    const size_t np = (size_t)n * r * c;
    unsigned char *b = malloc(16 + np), *l = malloc(8 + (size_t)n);
    const unsigned char hi[16] = {0,
                                  0,
                                  8,
                                  3,
                                  0,
                                  0,
                                  (unsigned char)(n >> 8),
                                  (unsigned char)n,
                                  0,
                                  0,
                                  0,
                                  (unsigned char)r,
                                  0,
                                  0,
                                  0,
                                  (unsigned char)c};
    memcpy(b, hi, 16);
    for (size_t k = 0; k < np; k++)
        b[16 + k] = (unsigned char)((7 * (k / (size_t)(r * c)) + k % (size_t)(r * c)) % 256);
    const unsigned char hl[8] = {0, 0, 8, 1, 0, 0, (unsigned char)(n >> 8), (unsigned char)n};
    memcpy(l, hl, 8);
    for (int i = 0; i < n; i++) l[8 + i] = (unsigned char)(i % 10);
    char p[512];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte%s", dir, stem, gz ? ".gz" : "");
    write_bytes(p, b, 16 + np - cut, gz);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte%s", dir, stem, gz ? ".gz" : "");
    write_bytes(p, l, 8 + (size_t)n, gz);
    free(b);
    free(l);
}

static void tmpdir(char *dir, size_t n) {
    snprintf(dir, n, "/tmp/xb-image-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Loads and returns 0, or returns -1 with the one-line error in msg. */
static int load(Dataset *d, const OptValues *v, char *msg, size_t n) {
    XbError err;
    xb_error_clear(&err);
    const int rc = image()->load(d, v, 1, "t.yaml", &err);
    if (rc) xb_error_format(&err, msg, n);
    return rc;
}

START_TEST(test_image_idx_fixtures_gzipped_or_plain_load_as_pixels_plus_one) {
    for (int gz = 0; gz < 2; gz++) {
        char dir[64];
        tmpdir(dir, sizeof dir);
        write_idx(dir, "train", 12, 3, 4, gz, 0);
        write_idx(dir, "t10k", 5, 3, 4, gz, 0);
        OptValues v = opts(dir, "fashion-mnist", "3");
        Dataset d;
        char msg[1024];
        ck_assert_msg(load(&d, &v, msg, sizeof msg) == 0, "%s", msg);
        ck_assert_int_eq(d.vocab_size, 257);
        ck_assert_int_eq(d.n_classes, 10);
        ck_assert_int_eq(d.train.n, 9);
        ck_assert_int_eq(d.val.n, 3); /* the last three of the training file */
        ck_assert_int_eq(d.test.n, 5);
        for (int i = 0; i < 9; i++) {
            ck_assert_int_eq(d.train.offsets[i + 1] - d.train.offsets[i], 12);
            ck_assert_int_eq(d.train.labels[i], i % 10);
            for (int t = 0; t < 12; t++)
                ck_assert_int_eq(d.train.tokens[12 * i + t], 1 + (7 * i + t) % 256);
        }
        ck_assert_int_eq(d.val.labels[0], 9);
        ck_assert_int_eq(d.val.tokens[0], 1 + 7 * 9);
        ck_assert(fixture_identity_has(&d, "\"source\":\"fashion-mnist\""));
        dataset_free(&d);
        fixture_rmdir(dir);
    }
}
END_TEST

/* CIFAR-10 binary: records of a label and the R, G, B planes; gray = 0.2989 R + 0.5870 G +
 * 0.1140 B rounded (tf.image.rgb_to_grayscale, as LRA's input pipeline). */
START_TEST(test_image_cifar_binary_fixture_is_made_gray_as_lra_does) {
    char dir[64];
    tmpdir(dir, sizeof dir);
    enum { REC = 3073 };
    unsigned char *b = calloc(2, REC);
    for (int r = 0; r < 2; r++) {
        unsigned char *p = b + (size_t)r * REC;
        p[0] = (unsigned char)(3 + r);
        for (int t = 0; t < 1024; t++)
            p[1 + t] = 200, p[1025 + t] = 100, p[2049 + t] = (unsigned char)t;
    }
    for (int k = 1; k <= 6; k++) {
        char path[256];
        if (k <= 5)
            snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, k);
        else
            snprintf(path, sizeof path, "%s/test_batch.bin", dir);
        write_bytes(path, b, 2 * REC, 0);
    }
    OptValues v = opts(dir, "cifar10", "2");
    Dataset d;
    char msg[1024];
    ck_assert_msg(load(&d, &v, msg, sizeof msg) == 0, "%s", msg);
    ck_assert_int_eq(d.train.n, 8);
    ck_assert_int_eq(d.val.n, 2);
    ck_assert_int_eq(d.test.n, 2);
    ck_assert_int_eq(d.test.offsets[1], 1024);
    ck_assert_int_eq(d.test.labels[1], 4);
    /* 0.2989·200 + 0.5870·100 = 118.48; + 0.1140·t */
    ck_assert_int_eq(d.test.tokens[0], 1 + 118);
    ck_assert_int_eq(d.test.tokens[10], 1 + 120);  /* 119.62 */
    ck_assert_int_eq(d.test.tokens[255], 1 + 148); /* 147.55 */
    dataset_free(&d);
    /* a cut record and a label beyond 9 */
    char path[256];
    snprintf(path, sizeof path, "%s/data_batch_3.bin", dir);
    write_bytes(path, b, 2 * REC - 5, 0);
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    char want[1024];
    snprintf(want, sizeof want,
             "%s: truncated CIFAR-10 file: 6141 bytes is not a whole number of 3073-byte records "
             "(the last one starts at byte 3073)",
             path);
    ck_assert_str_eq(msg, want);
    b[REC] = 12;
    write_bytes(path, b, 2 * REC, 0);
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    snprintf(want, sizeof want, "%s: label 12 at byte 3073 is not a CIFAR-10 class (0-9)", path);
    ck_assert_str_eq(msg, want);
    free(b);
    fixture_rmdir(dir);
}
END_TEST

START_TEST(test_image_malformed_or_missing_files_name_the_file_and_place) {
    char dir[64], msg[1024], want[1400], p[512];
    tmpdir(dir, sizeof dir);
    Dataset d;
    OptValues v = opts(dir, "fashion-mnist", "3");
    /* missing: the command that installs the data */
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s/train-images-idx3-ubyte: task.data_dir: cannot read: No such file or directory "
             "(install Fashion-MNIST with: apt-get install dataset-fashion-mnist)",
             dir);
    ck_assert_str_eq(msg, want);
    /* truncated pixels */
    write_idx(dir, "train", 12, 3, 4, 1, 7);
    write_idx(dir, "t10k", 5, 3, 4, 1, 0);
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s/train-images-idx3-ubyte.gz: truncated IDX: the header promises 144 bytes of data, "
             "the file has 137 (it ends at byte 153)",
             dir);
    ck_assert_str_eq(msg, want);
    /* not IDX at all */
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    write_bytes(p, (const unsigned char *)"P5\n3 4\n255\n", 11, 1);
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s: not an IDX file of images (expected the magic bytes 00 00 08 03)", p);
    ck_assert_str_eq(msg, want);
    /* labels that do not match the images */
    write_idx(dir, "train", 12, 3, 4, 1, 0);
    write_idx(dir, "t10k", 5, 3, 4, 1, 0);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    const unsigned char few[8 + 4] = {0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4};
    write_bytes(p, few, sizeof few, 1);
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    snprintf(want, sizeof want, "%s: 4 labels for the 5 images of %s/t10k-images-idx3-ubyte.gz", p,
             dir);
    ck_assert_str_eq(msg, want);
    /* a validation split that leaves nothing to train on */
    write_idx(dir, "t10k", 5, 3, 4, 1, 0);
    v = opts(dir, "fashion-mnist", "12");
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "t.yaml: task.num_val: 12 leaves no training example of the 12 in the "
                          "files (valid: 1 to 11)");
    /* CIFAR-10 needs its directory */
    v = opts("", "cifar10", "3");
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "t.yaml: task.data_dir: is required when task.source is cifar10 (the "
                          "cifar-10-batches-bin directory of CIFAR-10's binary version)");
    fixture_rmdir(dir);
}
END_TEST

/* Dimensions whose product passes 2^64 wrapped around to the file's size, so the size check
 * passed and the loader aborted asking for terabytes; a dimension of 0 made images of 0 pixels.
 * A /dev/zero or a FIFO for a file stops at once. */
START_TEST(test_image_idx_sizes_that_overflow_or_are_zero_and_files_that_are_not_files) {
    char dir[64], msg[1024], want[1400], p[512];
    tmpdir(dir, sizeof dir);
    Dataset d;
    OptValues v = opts(dir, "fashion-mnist", "1");
    write_idx(dir, "train", 12, 3, 4, 0, 0);
    write_idx(dir, "t10k", 5, 3, 4, 0, 0);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    /* 3 × 2007567422 × 3062868337 = 2^64 + 26, and 26 bytes of pixels */
    unsigned char b[16 + 26] = {0,    0,    8,    3,    0,    0,    0,    3,
                                0x77, 0xa9, 0x0c, 0x3e, 0xb6, 0x8f, 0xa9, 0x71};
    write_bytes(p, b, sizeof b, 0);
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s: truncated IDX: the header promises 18446744073709551642 bytes of data, the file "
             "has 26 (it ends at byte 42)",
             p);
    ck_assert_str_eq(msg, want);
    const unsigned char zero[16] = {0, 0, 8, 3, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 4};
    write_bytes(p, zero, sizeof zero, 0);
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    snprintf(want, sizeof want, "%s: images of 0x4 pixels (valid: 1 or more each)", p);
    ck_assert_str_eq(msg, want);
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(symlink("/dev/zero", p), 0);
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s: task.data_dir: cannot read: it is a character device, not a regular file "
             "(install Fashion-MNIST with: apt-get install dataset-fashion-mnist)",
             p);
    ck_assert_str_eq(msg, want);
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    ck_assert_int_eq(load(&d, &v, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s: task.data_dir: cannot read: it is a FIFO, not a regular file (install "
             "Fashion-MNIST with: apt-get install dataset-fashion-mnist)",
             p);
    ck_assert_str_eq(msg, want);
    fixture_rmdir(dir);
}
END_TEST

/* The real data: Debian's Fashion-MNIST (scripts/setup.sh installs it): 60000 + 10000 images of
 * 28×28, ten balanced classes. */
START_TEST(test_image_real_fashion_mnist_sample) {
    OptValues v = opts("", "fashion-mnist", "5000");
    set_opt(&v, "num_train", "2000");
    set_opt(&v, "num_test", "1000");
    Dataset d;
    char msg[1024];
    ck_assert_msg(load(&d, &v, msg, sizeof msg) == 0, "%s", msg);
    ck_assert_int_eq(d.train.n, 2000);
    ck_assert_int_eq(d.val.n, 5000);
    ck_assert_int_eq(d.test.n, 1000);
    ck_assert_int_eq(d.test.offsets[1], 784);
    int count[10] = {0}, maxtok = 0;
    for (int i = 0; i < d.test.n; i++) count[d.test.labels[i]]++;
    for (int64_t t = 0; t < d.test.offsets[d.test.n]; t++)
        maxtok = d.test.tokens[t] > maxtok ? d.test.tokens[t] : maxtok;
    for (int c = 0; c < 10; c++) ck_assert_int_gt(count[c], 60); /* about 100 each */
    ck_assert_int_eq(maxtok, 256);                               /* white pixels: 255 + 1 */
    dataset_free(&d);
}
END_TEST

static Suite *image_suite(void) {
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_image_idx_fixtures_gzipped_or_plain_load_as_pixels_plus_one);
    tcase_add_test(tc, test_image_cifar_binary_fixture_is_made_gray_as_lra_does);
    tcase_add_test(tc, test_image_malformed_or_missing_files_name_the_file_and_place);
    tcase_add_test(tc, test_image_idx_sizes_that_overflow_or_are_zero_and_files_that_are_not_files);
    tcase_add_test(tc, test_image_real_fashion_mnist_sample);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(image_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
