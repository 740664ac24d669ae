/* image: classification of images read as sequences of 8-bit gray pixels (LRA's "Image" task,
 * arXiv 2011.04006 §3.4). Token = pixel + 1 (0 is padding), so the vocabulary is 257. Sources:
 *   fashion-mnist  Debian's dataset-fashion-mnist (IDX files, gzipped or not): 28×28, L = 784;
 *   cifar10        CIFAR-10's binary version (data_batch_1..5.bin, test_batch.bin), the official
 *                  LRA input: 32×32 RGB made gray as LRA does (tf.image.rgb_to_grayscale:
 *                  0.2989 R + 0.5870 G + 0.1140 B, rounded), L = 1024.
 * The validation split is the last num_val examples of the training files (LRA: 45K/5K for
 * CIFAR-10). Files are read through zlib, which takes gzipped and plain files alike. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/fileio.h"
#include "core/hash.h"
#include "core/xassert.h"
#include "tasks/task.h"

static const char *const SOURCES[] = {"fashion-mnist", "cifar10", NULL};
enum { SRC_FASHION, SRC_CIFAR };

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static const OptSpec image_opts[] = {
    {.name = "source",
     .type = OPT_ENUM,
     .def = SRC_FASHION,
     .choices = SOURCES,
     .help = "fashion-mnist (Debian's dataset-fashion-mnist) or cifar10 (LRA's CIFAR-10 binary "
             "files)"},
    {.name = "data_dir",
     .type = OPT_STRING,
     .def_str = "",
     .help = "directory of the files; default " FASHION_DIR " for fashion-mnist"},
    {.name = "num_train",
     .type = OPT_INT,
     .def = 0,
     .min = 0,
     .max = 10000000,
     .help = "training examples at most; 0 = all that the validation split leaves"},
    {.name = "num_val",
     .type = OPT_INT,
     .def = 5000,
     .min = 1,
     .max = 10000000,
     .help = "validation examples, the last of the training files (LRA: 5000)"},
    {.name = "num_test",
     .type = OPT_INT,
     .def = 0,
     .min = 0,
     .max = 10000000,
     .help = "test examples at most; 0 = all"},
};
#define NOPTS ((int)XB_ARRAY_LEN(image_opts))

/* Examples before splitting: n images of L pixels (as tokens) and their labels. */
typedef struct Images {
    int n, L, cap;
    int32_t *tokens;
    int32_t *labels;
} Images;

static void images_free(Images *im) {
    free(im->tokens);
    free(im->labels);
    memset(im, 0, sizeof *im);
}

static void images_grow(Images *im, int more) {
    if (im->n + more <= im->cap) return;
    while (im->cap < im->n + more) im->cap = im->cap ? 2 * im->cap : 1024;
    im->tokens = realloc(im->tokens, (size_t)im->cap * im->L * sizeof *im->tokens);
    im->labels = realloc(im->labels, (size_t)im->cap * sizeof *im->labels);
    XB_ASSERT(im->tokens && im->labels);
}

/* The whole (decompressed) file; *hash is the FNV-1a 64 of its decompressed bytes. The file must
 * be a regular file, and it may hold at most fileio_max_bytes(XB_FILE_ARRAY) bytes unzipped. */
static unsigned char *read_file(const char *path, size_t *n, uint64_t *hash, const char *hint,
                                XbError *err) {
    FILE *plain = fileio_open_read(path, XB_FILE_ARRAY, "task.data_dir", NULL, err);
    if (!plain) {
        const size_t k = strlen(err->msg);
        snprintf(err->msg + k, sizeof err->msg - k, "%s", hint);
        return NULL;
    }
    const int fd = dup(fileno(plain));
    fclose(plain);
    gzFile f = fd >= 0 ? gzdopen(fd, "rb") : NULL;
    if (!f) {
        if (fd >= 0) close(fd);
        xb_error_set(err, path, 0, 0, "task.data_dir", "cannot read: %s%s",
                     errno ? strerror(errno) : "cannot open", hint);
        return NULL;
    }
    const size_t max = (size_t)fileio_max_bytes(XB_FILE_ARRAY);
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    XB_ASSERT(buf);
    for (;;) {
        if (len == cap) {
            if (len > max) {
                char lim[32];
                fileio_format_size(lim, sizeof lim, max);
                xb_error_set(err, path, 0, 0, "task.data_dir",
                             "cannot read: it unzips to more than %s, more than %s may be", lim,
                             fileio_kind_name(XB_FILE_ARRAY));
                gzclose(f);
                free(buf);
                return NULL;
            }
            cap = XB_MIN(2 * cap, max + 1);
            buf = realloc(buf, cap);
            XB_ASSERT(buf);
        }
        const int got = gzread(f, buf + len, (unsigned)XB_MIN(cap - len, (size_t)1 << 30));
        if (got < 0) {
            int code;
            const char *msg = gzerror(f, &code);
            xb_error_set(err, path, 0, 0, "task.data_dir", "cannot read: %s", msg);
            gzclose(f);
            free(buf);
            return NULL;
        }
        if (got == 0) break;
        len += (size_t)got;
    }
    gzclose(f);
    *n = len;
    *hash = xb_fnv1a64(XB_FNV_OFFSET, buf, len);
    return buf;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks an IDX file of unsigned bytes with `dims` dimensions; sizes into d[], data at *data. */
static int parse_idx(const char *path, const unsigned char *b, size_t n, int dims, uint32_t *d,
                     const unsigned char **data, XbError *err) {
    if (n < 4 || b[0] || b[1] || b[2] != 0x08 || b[3] != dims)
        return xb_error_set(err, path, 0, 0, NULL,
                            "not an IDX file of %s (expected the magic bytes 00 00 08 %02x)",
                            dims == 3 ? "images" : "labels", dims);
    const size_t head = 4 + 4 * (size_t)dims;
    if (n < head)
        return xb_error_set(err, path, 0, 0, NULL, "truncated IDX header (%zu of %zu bytes)", n,
                            head);
    /* the product in long double: sizes of 2^32 cubed must not wrap around to a small number */
    long double total = 1;
    for (int k = 0; k < dims; k++) d[k] = be32(b + 4 + 4 * k), total *= d[k];
    if ((long double)(n - head) < total)
        return xb_error_set(err, path, 0, 0, NULL,
                            "truncated IDX: the header promises %.0Lf bytes of data, the file has "
                            "%zu (it ends at byte %zu)",
                            total, n - head, n);
    if (dims == 3 && (d[1] == 0 || d[2] == 0))
        return xb_error_set(err, path, 0, 0, NULL, "images of %ux%u pixels (valid: 1 or more each)",
                            d[1], d[2]);
    *data = b + head;
    return 0;
}

static const char FASHION_HINT[] =
    " (install Fashion-MNIST with: apt-get install dataset-fashion-mnist)";

/* One IDX images + labels pair, appended to im. */
static int read_idx_pair(Images *im, const char *dir, const char *stem, uint64_t *hash,
                         XbError *err) {
    char pi[XB_OPT_STRLEN + 64], pl[XB_OPT_STRLEN + 64];
    snprintf(pi, sizeof pi, "%s/%s-images-idx3-ubyte.gz", dir, stem);
    snprintf(pl, sizeof pl, "%s/%s-labels-idx1-ubyte.gz", dir, stem);
    if (access(pi, F_OK) != 0) /* fall back to the unzipped names */
        pi[strlen(pi) - 3] = '\0', pl[strlen(pl) - 3] = '\0';
    size_t ni, nl;
    uint64_t hi, hl;
    unsigned char *bi = read_file(pi, &ni, &hi, FASHION_HINT, err);
    if (!bi) return -1;
    unsigned char *bl = read_file(pl, &nl, &hl, FASHION_HINT, err);
    if (!bl) {
        free(bi);
        return -1;
    }
    uint32_t di[3], dl[1];
    const unsigned char *pix, *lab;
    int rc = parse_idx(pi, bi, ni, 3, di, &pix, err) || parse_idx(pl, bl, nl, 1, dl, &lab, err);
    if (!rc && di[0] == 0) /* a split of no examples: nothing to train or test on */
        rc = xb_error_set(err, pi, 0, 0, NULL, "holds no images (valid: 1 or more)");
    if (!rc && di[0] != dl[0])
        rc = xb_error_set(err, pl, 0, 0, NULL, "%u labels for the %u images of %s", dl[0], di[0],
                          pi);
    if (!rc && im->L && (int)(di[1] * di[2]) != im->L)
        rc = xb_error_set(err, pi, 0, 0, NULL, "images of %ux%u, the others are %d pixels", di[1],
                          di[2], im->L);
    if (!rc) {
        im->L = (int)(di[1] * di[2]);
        images_grow(im, (int)di[0]);
        for (uint32_t i = 0; i < di[0] && !rc; i++) {
            if (lab[i] > 9) {
                rc = xb_error_set(err, pl, 0, 0, NULL, "label %u at byte %u is not a class 0-9",
                                  lab[i], 8 + i);
                break;
            }
            for (int t = 0; t < im->L; t++)
                im->tokens[(size_t)im->n * im->L + t] = 1 + pix[(size_t)i * im->L + t];
            im->labels[im->n++] = lab[i];
        }
    }
    hash[0] = hi, hash[1] = hl;
    free(bi);
    free(bl);
    return rc ? -1 : 0;
}

static const char CIFAR_HINT[] =
    " (set task.data_dir to CIFAR-10's binary version, the cifar-10-batches-bin directory)";

/* One CIFAR-10 binary file (records of a label byte and 3×1024 planes R, G, B), appended. */
static int read_cifar(Images *im, const char *path, uint64_t *hash, XbError *err) {
    size_t n;
    unsigned char *b = read_file(path, &n, hash, CIFAR_HINT, err);
    if (!b) return -1;
    enum { REC = 1 + 3 * 1024 };
    int rc = 0;
    if (n == 0 || n % REC)
        rc = xb_error_set(err, path, 0, 0, NULL,
                          "truncated CIFAR-10 file: %zu bytes is not a whole number of 3073-byte "
                          "records (the last one starts at byte %zu)",
                          n, n / REC * REC);
    im->L = 1024;
    const int recs = rc ? 0 : (int)(n / REC);
    images_grow(im, recs);
    for (int r = 0; r < recs && !rc; r++) {
        const unsigned char *p = b + (size_t)r * REC;
        if (p[0] > 9) {
            rc = xb_error_set(err, path, 0, 0, NULL,
                              "label %u at byte %zu is not a CIFAR-10 class (0-9)", p[0],
                              (size_t)r * REC);
            break;
        }
        for (int t = 0; t < 1024; t++) {
            const double g =
                0.2989 * p[1 + t] + 0.5870 * p[1 + 1024 + t] + 0.1140 * p[1 + 2048 + t];
            im->tokens[(size_t)im->n * 1024 + t] = 1 + (int32_t)fmin(255.0, floor(g + 0.5));
        }
        im->labels[im->n++] = p[0];
    }
    free(b);
    return rc ? -1 : 0;
}

/* Examples [a, a + n) of im as a split. */
static void to_split(Split *s, const Images *im, int a, int n) {
    s->n = n;
    s->tokens = malloc(((size_t)n * im->L + 1) * sizeof *s->tokens);
    s->offsets = malloc(((size_t)n + 1) * sizeof *s->offsets);
    s->labels = malloc(((size_t)n + 1) * sizeof *s->labels);
    XB_ASSERT(s->tokens && s->offsets && s->labels);
    memcpy(s->tokens, im->tokens + (size_t)a * im->L, (size_t)n * im->L * sizeof *s->tokens);
    memcpy(s->labels, im->labels + a, (size_t)n * sizeof *s->labels);
    for (int i = 0; i <= n; i++) s->offsets[i] = (int64_t)i * im->L;
}

static int image_load(Dataset *d, const OptValues *v, uint64_t seed, const char *source,
                      XbError *err) {
    (void)seed; /* the files fix the data */
    memset(d, 0, sizeof *d);
    d->vocab_size = 257;
    d->n_classes = 10;
    const int src = opt_enum(v, image_opts, NOPTS, "source");
    const char *dir = opt_str(v, image_opts, NOPTS, "data_dir");
    if (!dir[0] && src == SRC_CIFAR)
        return xb_error_set(err, source, 0, 0, "task.data_dir",
                            "is required when task.source is cifar10 (the cifar-10-batches-bin "
                            "directory of CIFAR-10's binary version)");
    if (!dir[0]) dir = FASHION_DIR;
    Images tr = {0}, te = {0};
    char files[8][48];
    uint64_t h[8];
    int nf = 0, rc = 0;
    if (src == SRC_FASHION) {
        rc =
            read_idx_pair(&tr, dir, "train", h, err) || read_idx_pair(&te, dir, "t10k", h + 2, err);
        snprintf(files[0], sizeof files[0], "train-images"),
            snprintf(files[1], sizeof files[1], "train-labels");
        snprintf(files[2], sizeof files[2], "t10k-images"),
            snprintf(files[3], sizeof files[3], "t10k-labels");
        nf = 4;
    } else {
        for (int k = 1; k <= 6 && !rc; k++) {
            char path[XB_OPT_STRLEN + 32];
            if (k <= 5)
                snprintf(files[nf], sizeof files[nf], "data_batch_%d.bin", k);
            else
                snprintf(files[nf], sizeof files[nf], "test_batch.bin");
            snprintf(path, sizeof path, "%s/%s", dir, files[nf]);
            rc = read_cifar(k <= 5 ? &tr : &te, path, &h[nf], err);
            nf++;
        }
    }
    const int nval = opt_int(v, image_opts, NOPTS, "num_val");
    if (!rc && nval >= tr.n)
        rc = xb_error_set(err, source, 0, 0, "task.num_val",
                          "%d leaves no training example of the %d in the files (valid: 1 to %d)",
                          nval, tr.n, tr.n - 1);
    if (rc) {
        images_free(&tr), images_free(&te);
        return -1;
    }
    const int ntr_max = opt_int(v, image_opts, NOPTS, "num_train");
    const int nte_max = opt_int(v, image_opts, NOPTS, "num_test");
    const int ntr = ntr_max ? XB_MIN(ntr_max, tr.n - nval) : tr.n - nval;
    const int nte = nte_max ? XB_MIN(nte_max, te.n) : te.n;
    to_split(&d->train, &tr, 0, ntr);
    to_split(&d->val, &tr, tr.n - nval, nval);
    to_split(&d->test, &te, 0, nte);
    images_free(&tr), images_free(&te);
    DatasetId *id = &d->id;
    dataset_id_str(id, "task", "image");
    dataset_id_str(id, "source", SOURCES[src]);
    dataset_id_str(id, "data_dir", dir);
    dataset_id_int(id, "num_train", ntr);
    dataset_id_int(id, "num_val", nval);
    dataset_id_int(id, "num_test", nte);
    dataset_id_begin(id, "files");
    for (int f = 0; f < nf; f++) dataset_id_hash(id, files[f], h[f]);
    dataset_id_end(id);
    dataset_checksum(d);
    return 0;
}

const TaskSpec task_image = {
    .name = "image",
    .description = "Image (LRA): 8-bit gray pixels as a sequence, 10 classes; Fashion-MNIST "
                   "(L = 784) or CIFAR-10 (L = 1024)",
    .opts = image_opts,
    .n_opts = NOPTS,
    .load = image_load,
};
