/* The pathfinder task: the generator is deterministic for any thread count, its classes are
 * exactly balanced, a positive's markers end one contour and a negative's two (flood fill over
 * the dashes), the image shows the drawn geometry; LRA's release layout (PNGs written here with
 * libpng, metadata text files) loads and splits as LRA does; corrupt PNGs and bad metadata rows
 * are one-line errors naming the file and the place. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "fixture_files.h"
#include "tasks/pathfinder.h"
#include "tasks/task.h"

static const TaskSpec *task(void) { return task_get(task_find("pathfinder")); }

static OptValues opts(const char *const *kv, int n) {
    return fixture_task_opts("pathfinder", kv, n);
}

/* Loads and returns 0, or returns -1 with the one-line error in msg. */
static int load(Dataset *d, const OptValues *v, uint64_t seed, char *msg, size_t n) {
    XbError err;
    xb_error_clear(&err);
    const int rc = task()->load(d, v, seed, "t.yaml", &err);
    if (rc) xb_error_format(&err, msg, n);
    return rc;
}

static void load_ok(Dataset *d, const OptValues *v, uint64_t seed) {
    char msg[1024] = "";
    ck_assert_msg(load(d, v, seed, msg, sizeof msg) == 0, "%s", msg);
}

static int same_split(const Split *a, const Split *b) {
    return a->n == b->n && a->offsets[a->n] == b->offsets[b->n] &&
           memcmp(a->tokens, b->tokens, (size_t)a->offsets[a->n] * sizeof *a->tokens) == 0 &&
           memcmp(a->labels, b->labels, (size_t)a->n * sizeof *a->labels) == 0;
}

START_TEST(test_pathfinder_same_seed_same_bytes_for_any_thread_count) {
    const char *kv[] = {"num_train", "120", "num_val", "16", "num_test", "16"};
    const OptValues v = opts(kv, 6);
    Dataset a, b, c;
    omp_set_num_threads(1);
    load_ok(&a, &v, 7);
    omp_set_num_threads(2);
    load_ok(&b, &v, 7);
    load_ok(&c, &v, 8);
    ck_assert(same_split(&a.train, &b.train) && same_split(&a.val, &b.val) &&
              same_split(&a.test, &b.test));
    ck_assert_str_eq(a.checksum, b.checksum);
    fixture_identity_eq(&a, &b);
    ck_assert_str_ne(a.checksum, c.checksum);
    ck_assert_int_eq(a.vocab_size, 257);
    ck_assert_int_eq(a.n_classes, 2);
    ck_assert_int_eq(a.train.offsets[1], 1024);
    /* the validation split does not move when the training split grows */
    const char *kv2[] = {"num_train", "30", "num_val", "16", "num_test", "16"};
    const OptValues v2 = opts(kv2, 6);
    Dataset e;
    load_ok(&e, &v2, 7);
    ck_assert(same_split(&a.val, &e.val) && same_split(&a.test, &e.test));
    ck_assert_int_eq(memcmp(a.train.tokens, e.train.tokens, 30 * 1024 * sizeof(int32_t)), 0);
    dataset_free(&a), dataset_free(&b), dataset_free(&c), dataset_free(&e);
}
END_TEST

/* LRA's Pathfinder is balanced (50 % connected): exactly half of every split, whatever its size. */
START_TEST(test_pathfinder_classes_are_exactly_balanced) {
    const char *kv[] = {"num_train", "301", "num_val", "40", "num_test", "7"};
    const OptValues v = opts(kv, 6);
    Dataset d;
    load_ok(&d, &v, 3);
    const Split *s[3] = {&d.train, &d.val, &d.test};
    for (int k = 0; k < 3; k++) {
        int pos = 0;
        for (int i = 0; i < s[k]->n; i++) {
            ck_assert(s[k]->labels[i] == 0 || s[k]->labels[i] == 1);
            pos += s[k]->labels[i];
        }
        ck_assert_int_eq(pos, s[k]->n / 2); /* odd: one more negative */
    }
    ck_assert_double_eq_tol(dataset_majority(&d.val, 2), 0.5, 1e-12);
    dataset_free(&d);
}
END_TEST

/* Index of the paddle with an end point at (x, y), or -1. */
static int paddle_at(const PfScene *s, double x, double y) {
    for (int i = 0; i < s->n; i++) {
        const PfPaddle *p = &s->p[i];
        if (hypot(p->ax - x, p->ay - y) < 1e-9 || hypot(p->bx - x, p->by - y) < 1e-9) return i;
    }
    return -1;
}

/* Flood fill over the dashes: two paddles touch when they are closer than halfway between the
 * largest gap inside a contour (2m) and the least distance between unrelated paddles (t + 2m).
 * comp[i] is the component of paddle i. */
static void components(const PfScene *s, int *comp) {
    const double reach = 0.5 * (s->gap + s->clearance);
    int stack[PF_MAX_PADDLES];
    for (int i = 0; i < s->n; i++) comp[i] = -1;
    for (int i = 0, nc = 0; i < s->n; i++) {
        if (comp[i] >= 0) continue;
        int top = 0;
        stack[top++] = i;
        comp[i] = nc;
        while (top) {
            const PfPaddle *a = &s->p[stack[--top]];
            for (int j = 0; j < s->n; j++) {
                const PfPaddle *b = &s->p[j];
                if (comp[j] < 0 && pf_segment_distance(a->ax, a->ay, a->bx, a->by, b->ax, b->ay,
                                                       b->bx, b->by) < reach)
                    comp[j] = nc, stack[top++] = j;
            }
        }
        nc++;
    }
}

START_TEST(test_pathfinder_positive_markers_end_one_contour_negative_two) {
    const int res[4] = {32, 64, 128, 256};
    for (int r = 0; r < 4; r++)
        for (int diff = PF_EASY; diff <= PF_HARD; diff++) {
            PfParams p;
            ck_assert_int_eq(pf_params(&p, res[r], diff), 0);
            const int W = p.size;
            unsigned char *pix = malloc((size_t)W * W);
            static PfScene s;
            int comp[PF_MAX_PADDLES];
            const int n = res[r] >= 128 ? 6 : 20;
            for (int i = 0; i < n; i++) {
                const int label = i & 1;
                pf_generate(&p, 11, (uint64_t)i, label, pix, &s);
                components(&s, comp);
                /* every contour is one component and no two contours share one */
                for (int a = 0; a < s.n; a++)
                    for (int b = 0; b < s.n; b++)
                        ck_assert_msg((comp[a] == comp[b]) == (s.p[a].contour == s.p[b].contour),
                                      "%dx%d image %d: paddles %d and %d", W, W, i, a, b);
                /* the markers sit on contour ends: the same contour iff positive */
                const int m0 = paddle_at(&s, s.marker[0][0], s.marker[0][1]);
                const int m1 = paddle_at(&s, s.marker[1][0], s.marker[1][1]);
                ck_assert(m0 >= 0 && m1 >= 0 && m0 != m1);
                ck_assert_int_eq(comp[m0] == comp[m1], label);
                ck_assert_int_eq(s.marker_contour[0] == s.marker_contour[1], label);
                int len[2] = {0, 0};
                for (int a = 0; a < s.n; a++)
                    if (s.p[a].contour < 2) len[s.p[a].contour]++;
                ck_assert(len[0] == p.contour_len && len[1] == p.contour_len);
                /* the pixels show it: markers at full brightness, every dash inked, nothing far
                 * from all shapes */
                for (int k = 0; k < 2; k++) {
                    const int x = (int)lround(s.marker[k][0]), y = (int)lround(s.marker[k][1]);
                    ck_assert_int_ge(pix[y * W + x], 170);
                }
                for (int a = 0; a < s.n; a++) {
                    const int x = (int)lround(0.5 * (s.p[a].ax + s.p[a].bx));
                    const int y = (int)lround(0.5 * (s.p[a].ay + s.p[a].by));
                    ck_assert_int_gt(pix[y * W + x], 0);
                }
                const double far = fmax(p.marker_radius, 0.5 * p.thickness) + 1.5;
                for (int y = 0; y < W; y++)
                    for (int x = 0; x < W; x++) {
                        double dmin = 1e9;
                        for (int a = 0; a < s.n; a++)
                            dmin = fmin(dmin, pf_segment_distance(x, y, x, y, s.p[a].ax, s.p[a].ay,
                                                                  s.p[a].bx, s.p[a].by));
                        for (int k = 0; k < 2; k++)
                            dmin = fmin(dmin, hypot(x - s.marker[k][0], y - s.marker[k][1]));
                        if (dmin > far) ck_assert_int_eq(pix[y * W + x], 0);
                    }
            }
            free(pix);
        }
}
END_TEST

/* Linsley's continuity: consecutive dashes of a contour turn by at most 90°/c and are 2m·cos(Δ/2)
 * apart (the next pivot lies m beyond a head, the next dash starts m past the pivot). */
START_TEST(test_pathfinder_dashes_turn_within_the_continuity_limit) {
    const int res[3] = {32, 64, 128};
    for (int r = 0; r < 3; r++) {
        PfParams p;
        ck_assert_int_eq(pf_params(&p, res[r], PF_HARD), 0);
        unsigned char *pix = malloc((size_t)p.size * p.size);
        static PfScene s;
        for (int i = 0; i < 10; i++) {
            pf_generate(&p, 5, (uint64_t)i, i & 1, pix, &s);
            for (int a = 1; a < s.n; a++) {
                const PfPaddle *u = &s.p[a - 1], *v = &s.p[a];
                if (u->contour != v->contour) continue;
                const double tu = atan2(u->by - u->ay, u->bx - u->ax);
                const double tv = atan2(v->by - v->ay, v->bx - v->ax);
                double turn = fabs(tv - tu);
                if (turn > M_PI) turn = 2 * M_PI - turn;
                ck_assert_double_le(turn, M_PI / 2 / p.continuity + 1e-9);
                ck_assert_double_eq_tol(hypot(v->ax - u->bx, v->ay - u->by),
                                        2 * s.margin * cos(turn / 2), 1e-9);
                ck_assert_double_eq_tol(hypot(v->bx - v->ax, v->by - v->ay), p.paddle_len, 1e-9);
            }
        }
        free(pix);
    }
    PfParams p;
    ck_assert_int_eq(pf_params(&p, 48, PF_HARD), -1);
}
END_TEST

/* ---- LRA's release layout, written here ---- */

static void write_png(const char *path, const unsigned char *pix, int w, int h) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, pix + (size_t)y * w);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void rmdir_all(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Image j of the fixture: pixel t is (j·5 + t) mod 256. */
static void fixture_pixels(unsigned char *pix, int j) {
    for (int t = 0; t < 32 * 32; t++) pix[t] = (unsigned char)((j * 5 + t) % 256);
}

/* ROOT/pathfinder32/curv_contour_length_14 with metadata 0.npy, 2.npy, 10.npy (read in that
 * order) of 7 rows each, images j = 0..20 with label j mod 2 (row j lists sample_j.png of
 * imgs/(j / 7)), image 9 empty as a few of LRA's are. Returns the curv_ directory in sub. */
static void write_release(char *root, size_t nr, char *sub, size_t ns) {
    snprintf(root, nr, "/tmp/xb-pathfinder-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    snprintf(sub, ns, "%s/pathfinder32", root);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(sub, ns, "%s/pathfinder32/curv_contour_length_14", root);
    char p[600];
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(p, sizeof p, "%s/metadata", sub);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/imgs", sub);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    const int meta[3] = {0, 2, 10};
    unsigned char pix[32 * 32];
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/imgs/%d", sub, k);
        ck_assert_int_eq(mkdir(p, 0755), 0);
        char text[2048] = "";
        for (int j = 7 * k; j < 7 * k + 7; j++) {
            char row[128];
            snprintf(row, sizeof row, "imgs/%d sample_%d.png %d %d 1.0 14 4 2 0.5 1 1\n", k, j, j,
                     j % 2);
            strcat(text, row);
            snprintf(p, sizeof p, "%s/imgs/%d/sample_%d.png", sub, k, j);
            fixture_pixels(pix, j);
            if (j == 9)
                write_text(p, "");
            else
                write_png(p, pix, 32, 32);
        }
        snprintf(p, sizeof p, "%s/metadata/%d.npy", sub, meta[k]);
        write_text(p, text);
    }
}

START_TEST(test_pathfinder_release_layout_loads_and_splits_as_lra) {
    char root[64], sub[600];
    write_release(root, sizeof root, sub, sizeof sub);
    const char *kv[] = {"source", "files", "data_dir", root};
    OptValues v = opts(kv, 4);
    Dataset d;
    load_ok(&d, &v, 1);
    /* 20 non-empty images: 16 / 2 / 2 (80 %, 10 %, 10 %) in metadata order 0, 2, 10 */
    ck_assert_int_eq(d.train.n, 16);
    ck_assert_int_eq(d.val.n, 2);
    ck_assert_int_eq(d.test.n, 2);
    ck_assert_int_eq(d.vocab_size, 257);
    const Split *s[3] = {&d.train, &d.val, &d.test};
    for (int k = 0, e = 0; k < 3; k++)
        for (int i = 0; i < s[k]->n; i++, e++) {
            const int j = e < 9 ? e : e + 1; /* image 9 left out */
            unsigned char pix[32 * 32];
            fixture_pixels(pix, j);
            ck_assert_int_eq(s[k]->labels[i], j % 2);
            ck_assert_int_eq(s[k]->offsets[i + 1] - s[k]->offsets[i], 1024);
            for (int t = 0; t < 1024; t++)
                ck_assert_int_eq(s[k]->tokens[(size_t)i * 1024 + t], 1 + pix[t]);
        }
    ck_assert(fixture_identity_has(&d, "\"metadata_files\":3,\"examples\":20,"
                                       "\"empty_images_skipped\":1"));
    dataset_free(&d);
    /* counts cap each split from its start */
    const char *kv2[] = {"source", "files", "data_dir", root, "num_train", "5", "num_val", "9"};
    v = opts(kv2, 8);
    load_ok(&d, &v, 1);
    ck_assert_int_eq(d.train.n, 5);
    ck_assert_int_eq(d.val.n, 2);
    ck_assert_int_eq(d.val.labels[0], 17 % 2); /* the 17th non-empty image is sample_17 */
    dataset_free(&d);
    rmdir_all(root);
}
END_TEST

/* A chunk whose length field claims 256 MB (libpng allocated it before finding the file is 49
 * bytes, and its own limit was only a warning): refused at once, without the memory
 * (tests/fuzz/regressions/png). */
START_TEST(test_pathfinder_png_chunk_claiming_256_mb_is_refused_without_allocating_it) {
    static const unsigned char file[49] = {
        0x89, 'P', 'N', 'G',  0x0d, 0x0a, 0x1a, 0x0a, 0,   0, 0,  13,  'I',
        'H',  'D', 'R', 0,    0,    0,    32,   0,    0,   0, 32, 8,   0,
        0,    0,   0,   0x56, 0x11, 0x25, 0x28, 0x10, 0,   0, 0,  't', 'E',
        'X',  't', 'C', 'o',  'm',  'm',  'e',  'n',  't', 0};
    char dir[] = "/tmp/xb-png-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/big.png", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(file, 1, sizeof file, f), sizeof file);
    fclose(f);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    unsigned char pixels[32 * 32];
    uint64_t hash = 0;
    XbError err;
    xb_error_clear(&err);
    ck_assert_int_eq(pf_png_read(path, 32, pixels, &hash, &err), -1);
    getrusage(RUSAGE_SELF, &after);
    ck_assert_int_eq(err.code, XB_EXIT_USAGE);
    ck_assert_str_eq(err.file, path);
    ck_assert_str_eq(err.msg, "not a readable PNG: tEXt: chunk data is too large");
    ck_assert_int_lt(after.ru_maxrss - before.ru_maxrss, 16 * 1024); /* KB */
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_pathfinder_corrupt_png_or_metadata_names_the_file_and_place) {
    char root[64], sub[600], p[700], meta[700], want[2048], msg[1024];
    write_release(root, sizeof root, sub, sizeof sub);
    const char *kv[] = {"source", "files", "data_dir", root};
    const OptValues v = opts(kv, 4);
    Dataset d;
    snprintf(meta, sizeof meta, "%s/metadata/2.npy", sub);
    /* a PNG cut short: libpng asks for bytes past the end */
    snprintf(p, sizeof p, "%s/imgs/1/sample_10.png", sub);
    FILE *f = fopen(p, "rb");
    unsigned char head[40];
    ck_assert_uint_eq(fread(head, 1, 40, f), 40);
    fclose(f);
    f = fopen(p, "wb");
    fwrite(head, 1, 40, f);
    fclose(f);
    ck_assert_int_eq(load(&d, &v, 1, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s: not a readable PNG: unexpected end of file (the file has 40 bytes) (listed in "
             "%s line 4)",
             p, meta);
    ck_assert_str_eq(msg, want);
    /* not a PNG at all: libpng's signature check */
    write_text(p, "GIF89a not a png");
    ck_assert_int_eq(load(&d, &v, 1, msg, sizeof msg), -1);
    snprintf(want, sizeof want, "%s: not a readable PNG: Not a PNG file (listed in %s line 4)", p,
             meta);
    ck_assert_str_eq(msg, want);
    /* an image of the wrong size */
    unsigned char pix[16 * 16] = {0};
    write_png(p, pix, 16, 16);
    ck_assert_int_eq(load(&d, &v, 1, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s: not a readable PNG: the image is 16x16 pixels, expected 32x32 (listed in %s "
             "line 4)",
             p, meta);
    ck_assert_str_eq(msg, want);
    /* metadata rows: a label that is not 0/1, too few columns */
    write_text(meta, "imgs/1 sample_7.png 7 1 1.0 14\nimgs/1 sample_8.png 8 yes 1.0 14\n");
    ck_assert_int_eq(load(&d, &v, 1, msg, sizeof msg), -1);
    snprintf(want, sizeof want, "%s:2:23: the label (4th column) must be 0 or 1, got \"yes\"",
             meta);
    ck_assert_str_eq(msg, want);
    write_text(meta, "imgs/1 sample_7.png 7 1\nimgs/1 sample_8.png\n");
    ck_assert_int_eq(load(&d, &v, 1, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s:2:1: expected at least 4 space-separated columns (imgs/K sample_J.png NIMG LABEL "
             "...), got 2",
             meta);
    ck_assert_str_eq(msg, want);
    /* too few rows to split */
    write_text(meta, "");
    snprintf(p, sizeof p, "%s/metadata/10.npy", sub);
    write_text(p, "");
    snprintf(p, sizeof p, "%s/metadata/0.npy", sub);
    write_text(p, "imgs/0 sample_0.png 0 0\nimgs/0 sample_1.png 1 1\nimgs/0 sample_2.png 2 0\n");
    ck_assert_int_eq(load(&d, &v, 1, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s: task.data_dir: 3 examples are too few to split 80/10/10 as LRA does (at least "
             "10)",
             sub);
    ck_assert_str_eq(msg, want);
    /* a row naming an image that is not there */
    write_text(meta, "imgs/1 sample_99.png 99 1\n");
    ck_assert_int_eq(load(&d, &v, 1, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s/imgs/1/sample_99.png: cannot read: No such file or directory (listed in %s line "
             "1)",
             sub, meta);
    ck_assert_str_eq(msg, want);
    rmdir_all(root);
    /* no release there; no directory given */
    ck_assert_int_eq(load(&d, &v, 1, msg, sizeof msg), -1);
    snprintf(want, sizeof want,
             "%s/metadata: task.data_dir: cannot read: No such file or directory (expected LRA's "
             "layout pathfinderW/curv_NAME/metadata/K.npy)",
             sub);
    ck_assert_str_eq(msg, want);
    const char *kv2[] = {"source", "files"};
    const OptValues v2 = opts(kv2, 2);
    ck_assert_int_eq(load(&d, &v2, 1, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "t.yaml: task.data_dir: is required when task.source is files (the "
                          "directory of LRA's release that holds pathfinder32/)");
    const char *kv3[] = {"resolution", "48"};
    const OptValues v3 = opts(kv3, 2);
    ck_assert_int_eq(load(&d, &v3, 1, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "t.yaml: task.resolution: 48 is not one of LRA's Pathfinder resolutions "
                          "(valid: 32, 64, 128, 256)");
    const char *kv4[] = {"resolution", "128"};
    const OptValues v4 = opts(kv4, 2);
    ck_assert_int_eq(load(&d, &v4, 1, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "t.yaml: task.num_train: 200000 images of 128x128 are more than 2e9 "
                          "tokens (8 GB); set task.num_train, num_val and num_test lower");
}
END_TEST

static Suite *pathfinder_suite(void) {
    Suite *s = suite_create("pathfinder");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_pathfinder_same_seed_same_bytes_for_any_thread_count);
    tcase_add_test(tc, test_pathfinder_classes_are_exactly_balanced);
    tcase_add_test(tc, test_pathfinder_positive_markers_end_one_contour_negative_two);
    tcase_add_test(tc, test_pathfinder_dashes_turn_within_the_continuity_limit);
    tcase_add_test(tc, test_pathfinder_release_layout_loads_and_splits_as_lra);
    tcase_add_test(tc, test_pathfinder_corrupt_png_or_metadata_names_the_file_and_place);
    tcase_add_test(tc, test_pathfinder_png_chunk_claiming_256_mb_is_refused_without_allocating_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(pathfinder_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
