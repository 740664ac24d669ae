/* pathfinder: LRA's Pathfinder task (arXiv 2011.04006 §3.5, after Linsley et al., arXiv
 * 1805.08315): an image of dashed contours and two markers; are the markers the two ends of one
 * contour? 2 classes, pixels as tokens (pixel + 1, 0 is padding; vocabulary 257), W·W long:
 * 1024 at 32×32, 16384 at 128×128 (Path-X). Sources:
 *   generate  drawn in C from the seed (pathfinder_gen.c) with LRA's settings for the resolution
 *             and difficulty; example i of a split has label i mod 2 (exactly balanced) and its
 *             own random stream, so any thread count gives the same bytes;
 *   files     LRA's release (pathfinder_png.c): DATA_DIR/pathfinderW/curv_baseline (easy),
 *             curv_contour_length_9 (intermediate) or curv_contour_length_14 (hard), split as
 *             LRA does: the first 80 % of the rows train, the next 10 % validate, the last 10 %
 *             test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "tasks/pathfinder.h"
#include "tasks/task.h"

static const char *const SOURCES[] = {"generate", "files", NULL};
enum { SRC_GENERATE, SRC_FILES };
static const char *const DIFFICULTIES[] = {"easy", "intermediate", "hard", NULL};
static const char *const DIFF_DIRS[] = {"curv_baseline", "curv_contour_length_9",
                                        "curv_contour_length_14"};

/* LRA's split sizes of the 200K images per difficulty (base_pathfinder32_config.py:
 * TRAIN_EXAMPLES 160000, VALID_EXAMPLES 20000; the test split is the remaining 10 %). */
static const int LRA_COUNT[3] = {160000, 20000, 20000};

static const OptSpec pf_opts[] = {
    {.name = "source",
     .type = OPT_ENUM,
     .def = SRC_GENERATE,
     .choices = SOURCES,
     .help = "generate from the seed, or read LRA's released PNG files"},
    {.name = "data_dir",
     .type = OPT_STRING,
     .def_str = "",
     .help = "directory holding pathfinder32/, pathfinder64/, ... of LRA's release (source: "
             "files)"},
    {.name = "resolution",
     .type = OPT_INT,
     .def = 32,
     .min = 32,
     .max = 256,
     .help = "image side: 32, 64, 128 (Path-X) or 256; the sequence has side² pixels"},
    {.name = "difficulty",
     .type = OPT_ENUM,
     .def = PF_HARD,
     .choices = DIFFICULTIES,
     .help = "contour length 6, 9 or 14 paddles (LRA's benchmark: hard)"},
    {.name = "num_train",
     .type = OPT_INT,
     .def = 0,
     .min = 0,
     .max = 10000000,
     .help = "training examples; 0 = LRA's (160000 generated, or 80 % of the files)"},
    {.name = "num_val",
     .type = OPT_INT,
     .def = 0,
     .min = 0,
     .max = 10000000,
     .help = "validation examples; 0 = LRA's (20000 generated, or 10 % of the files)"},
    {.name = "num_test",
     .type = OPT_INT,
     .def = 0,
     .min = 0,
     .max = 10000000,
     .help = "test examples; 0 = LRA's (20000 generated, or 10 % of the files)"},
};
#define NOPTS ((int)XB_ARRAY_LEN(pf_opts))

static const char *const COUNT_KEYS[3] = {"num_train", "num_val", "num_test"};

static void alloc_split(Split *s, int n, int L) {
    s->n = n;
    s->tokens = malloc(((size_t)n * L + 1) * sizeof *s->tokens);
    s->offsets = malloc(((size_t)n + 1) * sizeof *s->offsets);
    s->labels = malloc(((size_t)n + 1) * sizeof *s->labels);
    XB_ASSERT(s->tokens && s->offsets && s->labels);
    for (int i = 0; i <= n; i++) s->offsets[i] = (int64_t)i * L;
}

/* Pixels as tokens: pixel + 1. */
static void to_tokens(int32_t *out, const unsigned char *pix, size_t n) {
    for (size_t t = 0; t < n; t++) out[t] = 1 + pix[t];
}

static int generate(Dataset *d, const PfParams *p, const int count[3], uint64_t seed) {
    Split *splits[3] = {&d->train, &d->val, &d->test};
    const int L = p->size * p->size;
    for (int k = 0; k < 3; k++) {
        Split *s = splits[k];
        alloc_split(s, count[k], L);
        /* each split its own range of example indices: the validation and test images do not
         * change with num_train */
        const uint64_t base = (uint64_t)k << 40;
#pragma omp parallel
        {
            unsigned char *pix = malloc((size_t)L);
            XB_ASSERT(pix);
#pragma omp for schedule(static)
            for (int i = 0; i < s->n; i++) {
                s->labels[i] = i & 1;
                pf_generate(p, seed, base + (uint64_t)i, i & 1, pix, NULL);
                to_tokens(s->tokens + (size_t)i * L, pix, (size_t)L);
            }
            free(pix);
        }
    }
    return 0;
}

/* Examples [a, a + n) of f as a split. */
static void files_split(Split *s, const PfFiles *f, int a, int n) {
    const int L = f->size * f->size;
    alloc_split(s, n, L);
    to_tokens(s->tokens, f->pixels + (size_t)a * L, (size_t)n * L);
    memcpy(s->labels, f->labels + a, (size_t)n * sizeof *s->labels);
}

static int load_files(Dataset *d, const OptValues *v, int res, int diff, const char *source,
                      XbError *err) {
    const char *dir = opt_str(v, pf_opts, NOPTS, "data_dir");
    if (!dir[0])
        return xb_error_set(err, source, 0, 0, "task.data_dir",
                            "is required when task.source is files (the directory of LRA's "
                            "release that holds pathfinder%d/)",
                            res);
    char sub[XB_OPT_STRLEN + 64];
    snprintf(sub, sizeof sub, "%s/pathfinder%d/%s", dir, res, DIFF_DIRS[diff]);
    PfFiles f;
    if (pf_files_read(&f, sub, res, err)) return -1;
    /* LRA: split[:80%], split[80%:90%], split[90%:] */
    const int b1 = (int)((int64_t)f.n * 8 / 10), b2 = (int)((int64_t)f.n * 9 / 10);
    if (b1 == b2 || b2 == f.n) {
        xb_error_set(err, sub, 0, 0, "task.data_dir",
                     "%d examples are too few to split 80/10/10 as LRA does (at least 10)", f.n);
        pf_files_free(&f);
        return -1;
    }
    const int start[3] = {0, b1, b2}, avail[3] = {b1, b2 - b1, f.n - b2};
    Split *splits[3] = {&d->train, &d->val, &d->test};
    int count[3];
    for (int k = 0; k < 3; k++) {
        const int want = opt_int(v, pf_opts, NOPTS, COUNT_KEYS[k]);
        count[k] = want && want < avail[k] ? want : avail[k];
        files_split(splits[k], &f, start[k], count[k]);
    }
    DatasetId *id = &d->id;
    dataset_id_str(id, "task", "pathfinder");
    dataset_id_str(id, "source", "files");
    dataset_id_str(id, "data_dir", dir);
    dataset_id_int(id, "resolution", res);
    dataset_id_str(id, "difficulty", DIFFICULTIES[diff]);
    for (int k = 0; k < 3; k++) dataset_id_int(id, COUNT_KEYS[k], count[k]);
    dataset_id_int(id, "metadata_files", f.n_meta);
    dataset_id_int(id, "examples", f.n);
    dataset_id_int(id, "empty_images_skipped", f.skipped);
    dataset_id_hash(id, "files_fnv1a64", f.hash);
    pf_files_free(&f);
    return 0;
}

/* The identity of generated data: the seed, the options and the generator's settings. */
static void generated_identity(DatasetId *id, const PfParams *p, uint64_t seed, int res, int diff,
                               const int count[3]) {
    dataset_id_str(id, "task", "pathfinder");
    dataset_id_str(id, "source", "generate");
    dataset_id_str(id, "generator", "linsley-snakes2");
    dataset_id_uint(id, "seed", seed);
    dataset_id_int(id, "resolution", res);
    dataset_id_str(id, "difficulty", DIFFICULTIES[diff]);
    for (int k = 0; k < 3; k++) dataset_id_int(id, COUNT_KEYS[k], count[k]);
    dataset_id_int(id, "contour_length", p->contour_len);
    dataset_id_int(id, "distractors", p->n_distractors);
    dataset_id_int(id, "distractor_length", p->distractor_len);
    dataset_id_num(id, "paddle_length", p->paddle_len);
    dataset_id_num(id, "thickness", p->thickness);
    const int margins[2] = {p->margins[0], p->n_margins > 1 ? p->margins[1] : p->margins[0]};
    dataset_id_list(id, "margins", margins, 2);
    dataset_id_int(id, "padding", p->padding);
    dataset_id_num(id, "marker_radius", p->marker_radius);
    dataset_id_num(id, "seed_distance", p->seed_distance);
    dataset_id_num(id, "continuity", p->continuity);
    dataset_id_num(id, "contrast", p->contrast);
}

static int pathfinder_load(Dataset *d, const OptValues *v, uint64_t seed, const char *source,
                           XbError *err) {
    memset(d, 0, sizeof *d);
    d->vocab_size = 257;
    d->n_classes = 2;
    const int res = opt_int(v, pf_opts, NOPTS, "resolution");
    const int diff = opt_enum(v, pf_opts, NOPTS, "difficulty");
    PfParams p;
    if (pf_params(&p, res, diff))
        return xb_error_set(err, source, 0, 0, "task.resolution",
                            "%d is not one of LRA's Pathfinder resolutions (valid: 32, 64, 128, "
                            "256)",
                            res);
    int rc;
    if (opt_enum(v, pf_opts, NOPTS, "source") == SRC_FILES) {
        rc = load_files(d, v, res, diff, source, err);
    } else {
        int count[3];
        int64_t total = 0;
        for (int k = 0; k < 3; k++) {
            const int c = opt_int(v, pf_opts, NOPTS, COUNT_KEYS[k]);
            count[k] = c ? c : LRA_COUNT[k];
            total += count[k];
        }
        if (total * res * res > (int64_t)2000000000)
            return xb_error_set(err, source, 0, 0, "task.num_train",
                                "%lld images of %dx%d are more than 2e9 tokens (8 GB); set "
                                "task.num_train, num_val and num_test lower",
                                (long long)total, res, res);
        rc = generate(d, &p, count, seed);
        generated_identity(&d->id, &p, seed, res, diff, count);
    }
    if (rc) {
        dataset_free(d);
        return -1;
    }
    dataset_checksum(d);
    return 0;
}

static int pathfinder_generated(const OptValues *v) {
    return opt_enum(v, pf_opts, NOPTS, "source") != SRC_FILES;
}

const TaskSpec task_pathfinder = {
    .name = "pathfinder",
    .description = "Pathfinder (LRA): are two markers joined by one dashed contour? 2 classes; "
                   "W×W gray pixels, L = 1024 at 32 (128: Path-X, L = 16384)",
    .opts = pf_opts,
    .n_opts = NOPTS,
    .load = pathfinder_load,
    .generated = pathfinder_generated,
};
