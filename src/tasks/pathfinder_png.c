/* LRA's released Pathfinder files (lra_release/pathfinderW/curv_NAME/): metadata/K.npy, which
 * in the release are text lines despite the name, one image per line,
 *     imgs/K sample_J.png NIMG LABEL CONTINUITY CONTOUR_LEN DISTRACTOR_LEN ... (space-separated)
 * of which LRA's builder (lra_benchmarks/data/pathfinder.py) reads columns 1, 2 (the image
 * DIR/imgs/K/sample_J.png) and 4 (the label, 1 connected); and the PNG images, decoded here with
 * libpng. LRA drops examples whose image file is empty (input_pipeline.py); so does this reader.
 * libpng's errors come back through png_set_error_fn and setjmp: it never prints or aborts. */
#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/hash.h"
#include "core/options.h"
#include "core/xassert.h"
#include "tasks/pathfinder.h"
#include "tasks/task.h"

/* The bytes of a PNG file being decoded, and libpng's last error message. */
typedef struct PngSource {
    const unsigned char *b;
    size_t n, pos;
    char msg[256];
} PngSource;

static void png_on_error(png_structp png, png_const_charp msg) {
    PngSource *s = png_get_error_ptr(png);
    if (msg != s->msg) snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void png_on_read(png_structp png, png_bytep out, size_t n) {
    PngSource *s = png_get_io_ptr(png);
    if (s->n - s->pos < n) {
        snprintf(s->msg, sizeof s->msg, "unexpected end of file (the file has %zu bytes)", s->n);
        png_error(png, s->msg);
    }
    memcpy(out, s->b + s->pos, n);
    s->pos += n;
}

/* Decodes src into pixels (size×size gray); -1 with src->msg set. */
static int decode(PngSource *src, int size, unsigned char *pixels) {
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    XB_ASSERT(png && info);
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rows);
        return -1;
    }
    png_set_read_fn(png, src, png_on_read);
    /* libpng allocates a chunk's claimed length before reading it, and its limit on that length
     * is a warning on read: one damaged file could make it allocate 2 GB. A Pathfinder image
     * needs no chunk near 1 MB; beyond it, and on any other of libpng's "benign" errors, the
     * file is refused */
    png_set_chunk_malloc_max(png, 1 << 20);
    png_set_benign_errors(png, 0);
    png_read_info(png, info);
    const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w != (png_uint_32)size || h != (png_uint_32)size) {
        snprintf(src->msg, sizeof src->msg, "the image is %ux%u pixels, expected %dx%d",
                 (unsigned)w, (unsigned)h, size, size);
        png_error(png, src->msg);
    }
    const int ct = png_get_color_type(png, info);
    png_set_expand(png); /* palette to RGB, gray below 8 bits to 8, transparency to alpha */
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    if (ct & PNG_COLOR_MASK_COLOR) png_set_rgb_to_gray_fixed(png, 1, -1, -1);
    png_read_update_info(png, info);
    XB_ASSERT(png_get_rowbytes(png, info) == (size_t)size);
    rows = malloc((size_t)size * sizeof *rows);
    XB_ASSERT(rows);
    for (int y = 0; y < size; y++) rows[y] = pixels + (size_t)y * size;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    return 0;
}

int pf_png_read(const char *path, int size, unsigned char *pixels, uint64_t *hash, XbError *err) {
    size_t n = 0;
    unsigned char *b = (unsigned char *)fileio_read_all(path, XB_FILE_IMAGE, NULL, &n, err);
    if (!b) return -1;
    *hash = xb_fnv1a64(*hash, b, n);
    if (n == 0) {
        free(b);
        return 1;
    }
    PngSource src = {.b = b, .n = n};
    const int rc = decode(&src, size, pixels);
    free(b);
    if (rc) return xb_error_set(err, path, 0, 0, NULL, "not a readable PNG: %s", src.msg);
    return 0;
}

/* ---- metadata ---- */

static int cmp_long(const void *a, const void *b) {
    const long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The K of every DIR/metadata/K.npy, ascending, into *ks (malloc'ed); their count or -1. */
static int list_metadata(const char *mdir, long **ks, XbError *err) {
    DIR *d = opendir(mdir);
    if (!d)
        return xb_error_set(err, mdir, 0, 0, "task.data_dir",
                            "cannot read: %s (expected LRA's layout "
                            "pathfinderW/curv_NAME/metadata/K.npy)",
                            strerror(errno));
    int n = 0, cap = 0;
    long *k = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        errno = 0;
        const long v = strtol(e->d_name, &end, 10);
        if (end == e->d_name || e->d_name[0] < '0' || e->d_name[0] > '9' || errno ||
            strcmp(end, ".npy") != 0)
            continue;
        if (n == cap) {
            k = realloc(k, (size_t)(cap = cap ? 2 * cap : 256) * sizeof *k);
            XB_ASSERT(k);
        }
        k[n++] = v;
    }
    closedir(d);
    if (n == 0) {
        free(k);
        return xb_error_set(err, mdir, 0, 0, "task.data_dir", "no metadata files (K.npy) in it");
    }
    qsort(k, (size_t)n, sizeof *k, cmp_long);
    *ks = k;
    return n;
}

/* Images accepted in all (LRA's release has 200000 per directory; counts are ints). */
#define PF_MAX_IMAGES 100000000

static void files_grow(PfFiles *f, int *cap) {
    if (f->n < *cap) return;
    *cap = *cap ? 2 * *cap : 1024;
    f->pixels = realloc(f->pixels, (size_t)*cap * f->size * f->size);
    f->labels = realloc(f->labels, (size_t)*cap * sizeof *f->labels);
    XB_ASSERT(f->pixels && f->labels);
}

/* Reads one metadata file's rows and their images into f. */
static int read_metadata(PfFiles *f, int *cap, const char *dir, const char *path, XbError *err) {
    FileLines in;
    if (fileio_lines_open(&in, path, XB_FILE_METADATA, NULL, err)) return -1;
    char img[2 * XB_OPT_STRLEN + 600];
    int rc = 0, got;
    while (rc == 0 && (got = fileio_lines_next(&in, err)) != 0) {
        if (got < 0) {
            rc = -1;
            break;
        }
        char *line = in.line;
        size_t len = in.len;
        const int lineno = (int)in.lineno;
        f->hash = xb_fnv1a64(f->hash, line, len);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        const char *nul = memchr(line, '\0', len);
        if (nul) {
            rc = xb_error_set(err, path, lineno, (int)(nul - line) + 1, NULL,
                              "a NUL byte (a metadata file is text)");
            break;
        }
        /* columns split on single spaces, as LRA's split(' ') */
        char *col[4];
        int nc = 0;
        for (char *p = line; nc < 4;) {
            col[nc++] = p;
            p = strchr(p, ' ');
            if (!p) break;
            *p++ = '\0';
        }
        if (nc < 4) {
            rc = xb_error_set(err, path, lineno, 1, NULL,
                              "expected at least 4 space-separated columns (imgs/K sample_J.png "
                              "NIMG LABEL ...), got %d",
                              nc);
            break;
        }
        if (!col[0][0] || !col[1][0]) {
            rc = xb_error_set(err, path, lineno, (int)(col[col[0][0] ? 1 : 0] - line) + 1, NULL,
                              "empty image path column");
            break;
        }
        if (!((col[3][0] == '0' || col[3][0] == '1') && col[3][1] == '\0')) {
            char shown[256];
            dataset_show(shown, sizeof shown, col[3], XB_MIN(strlen(col[3]), (size_t)40));
            rc = xb_error_set(err, path, lineno, (int)(col[3] - line) + 1, NULL,
                              "the label (4th column) must be 0 or 1, got \"%s\"", shown);
            break;
        }
        if (f->n == PF_MAX_IMAGES) {
            rc = xb_error_set(err, path, lineno, 1, NULL, "more than %d images in all",
                              PF_MAX_IMAGES);
            break;
        }
        snprintf(img, sizeof img, "%s/%s/%s", dir, col[0], col[1]);
        files_grow(f, cap);
        const int ok =
            pf_png_read(img, f->size, f->pixels + (size_t)f->n * f->size * f->size, &f->hash, err);
        if (ok < 0) {
            const size_t k = strlen(err->msg);
            snprintf(err->msg + k, sizeof err->msg - k, " (listed in %s line %d)", path, lineno);
            rc = -1;
        } else if (ok == 1) {
            f->skipped++;
        } else {
            f->labels[f->n++] = col[3][0] - '0';
        }
    }
    fileio_lines_close(&in);
    return rc;
}

int pf_files_read(PfFiles *f, const char *dir, int size, XbError *err) {
    memset(f, 0, sizeof *f);
    f->size = size;
    f->hash = XB_FNV_OFFSET;
    char mdir[XB_OPT_STRLEN + 600], path[XB_OPT_STRLEN + 640];
    snprintf(mdir, sizeof mdir, "%s/metadata", dir);
    long *ks = NULL;
    const int nk = list_metadata(mdir, &ks, err);
    if (nk < 0) return -1;
    int cap = 0, rc = 0;
    for (int i = 0; i < nk && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/%ld.npy", mdir, ks[i]);
        rc = read_metadata(f, &cap, dir, path, err);
        f->n_meta++;
    }
    free(ks);
    if (rc == 0 && f->n == 0)
        rc = xb_error_set(err, mdir, 0, 0, NULL, "the metadata files list no non-empty image");
    if (rc) pf_files_free(f);
    return rc;
}

void pf_files_free(PfFiles *f) {
    free(f->pixels);
    free(f->labels);
    memset(f, 0, sizeof *f);
}
