/* Pathfinder (Linsley et al., arXiv 1805.08315; LRA, arXiv 2011.04006 §3.5): is there a path
 * between the two markers? The generator (pathfinder_gen.c) and the reader of LRA's released
 * files (pathfinder_png.c), shared by the task (pathfinder.c) and its tests. */
#ifndef XB_PATHFINDER_H
#define XB_PATHFINDER_H

#include <stdint.h>

#include "core/error.h"

enum { PF_EASY, PF_INTERMEDIATE, PF_HARD };

/* The drawing settings of one resolution and difficulty, in pixels (LRA's, from the docstrings of
 * lra_benchmarks/data/pathfinder.py; Linsley's snakes2_wrapper.py for what they leave out). */
typedef struct PfParams {
    int size;           /* image side W; the sequence has W·W pixels */
    int contour_len;    /* paddles per target contour: 6, 9, 14 (easy, intermediate, hard) */
    int distractor_len; /* paddles per distractor contour: contour_len / 3 */
    int n_distractors;  /* distractor contours tried: paddle budget / distractor_len */
    int margins[2];     /* margin m, drawn per image from margins[0..n_margins) */
    int n_margins;
    int padding;          /* empty border (px) */
    double paddle_len;    /* length of one dash */
    double thickness;     /* stroke width */
    double marker_radius; /* the two filled circles */
    double seed_distance; /* between the first dashes of the two target contours */
    double continuity;    /* turn weight cos²(min(c·Δθ, π/2)): at most 90°/c between dashes */
    double contrast;      /* stroke intensity relative to the markers' */
} PfParams;

#define PF_MAX_PADDLES 96

/* One dash: a segment from (ax, ay) to (bx, by) (x the column, y the row, pixel centres at
 * integers), of contour `contour` (0 and 1 the targets, then the distractors). */
typedef struct PfPaddle {
    double ax, ay, bx, by;
    int contour;
} PfPaddle;

/* What pf_generate drew, for tests. */
typedef struct PfScene {
    int n; /* paddles */
    PfPaddle p[PF_MAX_PADDLES];
    int n_contours;        /* 2 targets + the distractors that fitted */
    int margin;            /* m of this image: dashes of a contour are 2m apart */
    double marker[2][2];   /* (x, y) of the two markers */
    int marker_contour[2]; /* the contour each marker ends */
    double gap, clearance; /* largest gap inside a contour; least distance between two others */
} PfScene;

/* Fills p with LRA's settings for resolution 32, 64, 128 or 256 and a PF_* difficulty; returns -1
 * for another resolution. */
int pf_params(PfParams *p, int resolution, int difficulty);

/* Draws example `index` of the stream `seed` with the given label (1: the markers end one
 * contour) into pixels (W·W bytes, row-major, 0 background). Depends only on (p, seed, index,
 * label), so examples can be drawn in parallel. scene (may be NULL) receives the geometry. */
void pf_generate(const PfParams *p, uint64_t seed, uint64_t index, int label, unsigned char *pixels,
                 PfScene *scene);

/* Distance between the segments (ax, ay)-(bx, by) and (cx, cy)-(dx, dy). */
double pf_segment_distance(double ax, double ay, double bx, double by, double cx, double cy,
                           double dx, double dy);

/* Reads a PNG of size×size pixels from path as 8-bit gray (colour made gray with libpng's
 * default weights) into pixels; *hash continues over the file's bytes. Returns 0, 1 if the file
 * is empty (LRA skips those), or -1 with err naming the file and libpng's message. */
int pf_png_read(const char *path, int size, unsigned char *pixels, uint64_t *hash, XbError *err);

/* LRA's released examples of one resolution and difficulty: the rows of
 * DIR/metadata/0.npy, 1.npy, ... in that order (text lines "imgs/K sample_J.png NIMG LABEL ..."),
 * images read, empty ones skipped as LRA does. */
typedef struct PfFiles {
    int n, size, skipped;  /* examples, their side, empty images left out */
    unsigned char *pixels; /* (n, size·size) */
    int32_t *labels;       /* (n) */
    int n_meta;            /* metadata files read */
    uint64_t hash;         /* FNV-1a 64 over every metadata and image file, in order read */
} PfFiles;

/* Reads dir (a curv_NAME directory of LRA's release) into f; -1 with err naming the file, line and
 * column of the first fault. */
int pf_files_read(PfFiles *f, const char *dir, int size, XbError *err);
void pf_files_free(PfFiles *f);

#endif
