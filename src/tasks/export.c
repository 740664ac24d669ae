/* A task's splits in the Long Range Arena's file formats (see export.h). */
#include "tasks/export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/signals.h"
#include "core/xassert.h"
#include "tasks/listops.h"

static const char *const SPLIT_NAMES[3] = {"train", "val", "test"};

static const Split *split_of(const Dataset *ds, int k) {
    return k == 0 ? &ds->train : k == 1 ? &ds->val : &ds->test;
}

/* ---- NumPy .npy (format 1.0:
 * https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html) ---- */

/* The magic, version 1.0, the header length and the header dict, padded with spaces and ended by
 * a newline so that the data starts at a multiple of 64 bytes. */
static void npy_header(FILE *f, char type, int ndim, const int64_t *shape) {
    char dict[256], dims[160] = "";
    size_t k = 0;
    for (int i = 0; i < ndim; i++)
        k += (size_t)snprintf(dims + k, sizeof dims - k, "%lld,%s", (long long)shape[i],
                              i + 1 < ndim ? " " : "");
    if (ndim > 1) dims[k - 1] = '\0'; /* (N,) keeps its comma, (N, L) does not */
    int n = snprintf(dict, sizeof dict,
                     "{'descr': '<%c4', 'fortran_order': False, 'shape': (%s), }", type, dims);
    while ((10 + n + 1) % 64) dict[n++] = ' ';
    dict[n++] = '\n';
    const unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff), (unsigned char)(n >> 8)};
    fwrite(pre, 1, sizeof pre, f);
    fwrite(dict, 1, (size_t)n, f);
}

/* n 4-byte values (int32 or float32 bit patterns) in little-endian order, whatever the host. */
static void put_le32(FILE *f, const void *data, size_t n) {
    enum { CHUNK = 4096 };
    unsigned char buf[4 * CHUNK];
    const uint32_t *v = data;
    for (size_t a = 0; a < n; a += CHUNK) {
        const size_t m = n - a < CHUNK ? n - a : CHUNK;
        for (size_t i = 0; i < m; i++) {
            const uint32_t x = v[a + i];
            buf[4 * i] = (unsigned char)x, buf[4 * i + 1] = (unsigned char)(x >> 8);
            buf[4 * i + 2] = (unsigned char)(x >> 16), buf[4 * i + 3] = (unsigned char)(x >> 24);
        }
        fwrite(buf, 4, m, f);
    }
}

static int npy_count(int ndim, const int64_t *shape, size_t *n) {
    *n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        *n *= (size_t)shape[i];
    }
    return 0;
}

int export_npy(const char *path, char type, int ndim, const int64_t *shape, const void *data,
               XbError *err) {
    XB_ASSERT((type == 'i' || type == 'f') && ndim >= 1 && ndim <= 4);
    size_t n;
    const int shaped = npy_count(ndim, shape, &n) == 0;
    XB_ASSERT(shaped);
    AtomicFile af;
    if (fileio_open(&af, path, "array", err)) {
        err->code = XB_EXIT_USAGE;
        return -1;
    }
    npy_header(af.f, type, ndim, shape);
    put_le32(af.f, data, n);
    if (fileio_commit(&af, err)) {
        err->code = XB_EXIT_USAGE;
        return -1;
    }
    return 0;
}

/* ---- the formats ---- */

/* Writes file `file` of the format for ds through the open f (path: its final name, for
 * messages); *replaced counts bytes the format cannot hold. Returns 0 or -1 with err. */
typedef int (*PutFn)(FILE *f, const char *path, const Dataset *ds, int file, int64_t *replaced,
                     XbError *err);

/* Opens tmp, lets put write it, closes it; a write error names path and tmp. */
static int put_file(const char *tmp, const char *path, PutFn put, const Dataset *ds, int file,
                    int64_t *replaced, XbError *err) {
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return xb_error_set(err, path, 0, 0, NULL, "cannot write (%s): %s", tmp, strerror(errno));
    int rc = put(f, path, ds, file, replaced, err);
    const int bad = ferror(f) != 0, e = errno;
    const int closed = fclose(f) == 0;
    if (rc == 0 && (bad || !closed))
        rc = xb_error_set(err, path, 0, 0, NULL, "cannot write (%s): %s", tmp,
                          strerror(bad ? (e ? e : EIO) : errno));
    return rc;
}

/* The byte of a text task's token (byte + 1), or -1 for an id that is no byte. */
static int token_byte(int32_t t) { return t >= 1 && t <= 256 ? (int)t - 1 : -1; }

static int bad_token(const char *path, const char *split, int i, int32_t t, XbError *err) {
    return xb_error_set(
        err, path, 0, 0, NULL,
        "%s example %d holds token %d, which is no byte (valid: 1 to 256, byte + 1)", split, i,
        (int)t);
}

static int put_text(FILE *f, const char *path, const Dataset *ds, int file, int64_t *replaced,
                    XbError *err) {
    (void)replaced;
    const Split *s = split_of(ds, file);
    fputs("label\ttext\n", f);
    for (int i = 0; i < s->n; i++) {
        fprintf(f, "%d\t", (int)s->labels[i]);
        for (int64_t t = s->offsets[i]; t < s->offsets[i + 1]; t++) {
            const int c = token_byte(s->tokens[t]);
            if (c < 0) return bad_token(path, SPLIT_NAMES[file], i, s->tokens[t], err);
            const char *esc = c == '\\'   ? "\\\\"
                              : c == '\t' ? "\\t"
                              : c == '\n' ? "\\n"
                              : c == '\r' ? "\\r"
                              : c == 0    ? "\\0"
                                          : NULL;
            if (esc)
                fputs(esc, f);
            else
                fputc(c, f);
        }
        fputc('\n', f);
    }
    return 0;
}

/* LRA's split files of the AAN pairs are train, eval and test. */
static const char *const AAN_SPLITS[3] = {"train", "eval", "test"};

static int put_aan(FILE *f, const char *path, const Dataset *ds, int file, int64_t *replaced,
                   XbError *err) {
    const Split *s = split_of(ds, file);
    XB_ASSERT(split_docs(s) == 2);
    for (int i = 0; i < s->n; i++) {
        fprintf(f, "%d\t%s.%d.1\t%s.%d.2", (int)s->labels[i], AAN_SPLITS[file], i, AAN_SPLITS[file],
                i);
        for (int k = 0; k < 2; k++) {
            fputc('\t', f);
            for (int64_t t = s->offsets[2 * i + k]; t < s->offsets[2 * i + k + 1]; t++) {
                int c = token_byte(s->tokens[t]);
                if (c < 0) return bad_token(path, SPLIT_NAMES[file], i, s->tokens[t], err);
                if (c == '\t' || c == '\n' || c == '\r' || c == 0) c = ' ', (*replaced)++;
                fputc(c, f);
            }
        }
        fputc('\n', f);
    }
    return 0;
}

/* Writes the n values of v, then pad until width values are written. */
static void put_row(FILE *f, const int32_t *v, int64_t n, int64_t width, int32_t pad) {
    enum { CHUNK = 1024 };
    int32_t fill[CHUNK];
    put_le32(f, v, (size_t)n);
    for (int i = 0; i < CHUNK; i++) fill[i] = pad;
    for (int64_t a = n; a < width; a += CHUNK)
        put_le32(f, fill, (size_t)(width - a < CHUNK ? width - a : CHUNK));
}

/* Files 2k and 2k + 1 of a sequence task: split k's inputs (N, L), the token ids padded with
 * XB_PAD_ID, and targets (N, L), each position's class or XB_NO_TARGET (padding included), L
 * the split's longest example. */
static int put_seq_npy(FILE *f, const char *path, const Dataset *ds, int file, int64_t *replaced,
                       XbError *err) {
    (void)path, (void)replaced, (void)err;
    const Split *s = split_of(ds, file / 2);
    XB_ASSERT(s->targets && split_docs(s) == 1);
    const int64_t L = dataset_max_length(s), shape[2] = {s->n, L};
    npy_header(f, 'i', 2, shape);
    for (int i = 0; i < s->n; i++) {
        const int64_t a = s->offsets[i], n = s->offsets[i + 1] - a;
        if (file % 2 == 0)
            put_row(f, s->tokens + a, n, L, XB_PAD_ID);
        else
            put_row(f, s->targets + a, n, L, XB_NO_TARGET);
    }
    return 0;
}

/* Files 2k and 2k + 1: split k's inputs (N, L) and targets (N,). */
static int put_npy(FILE *f, const char *path, const Dataset *ds, int file, int64_t *replaced,
                   XbError *err) {
    (void)replaced;
    const Split *s = split_of(ds, file / 2);
    const int64_t L = s->n ? s->offsets[1] - s->offsets[0] : 0;
    for (int i = 0; i < s->n; i++)
        if (s->offsets[i] != (int64_t)i * L || s->offsets[i + 1] - s->offsets[i] != L)
            return xb_error_set(err, path, 0, 0, NULL,
                                "%s example %d has %lld tokens, the first %lld: an array needs "
                                "one length",
                                SPLIT_NAMES[file / 2], i,
                                (long long)(s->offsets[i + 1] - s->offsets[i]), (long long)L);
    if (file % 2 == 0) {
        const int64_t shape[2] = {s->n, L};
        npy_header(f, 'i', 2, shape);
        put_le32(f, s->tokens, (size_t)s->n * (size_t)L);
    } else {
        const int64_t shape[1] = {s->n};
        npy_header(f, 'i', 1, shape);
        put_le32(f, s->labels, (size_t)s->n);
    }
    return 0;
}

/* Writes file `file` of the format for ds to tmp (path: its final name, for messages). */
typedef int (*WriteFn)(const char *tmp, const char *path, const Dataset *ds, int file,
                       int64_t *replaced, XbError *err);

/* ListOps in LRA's to_string form, as tasks/listops.c writes it. */
static int write_listops(const char *tmp, const char *path, const Dataset *ds, int file,
                         int64_t *replaced, XbError *err) {
    (void)replaced;
    if (listops_write_tsv(tmp, split_of(ds, file), err) == 0) return 0;
    snprintf(err->file, sizeof err->file, "%s", path);
    return -1;
}

static int write_text(const char *tmp, const char *path, const Dataset *ds, int file,
                      int64_t *replaced, XbError *err) {
    return put_file(tmp, path, put_text, ds, file, replaced, err);
}

static int write_aan(const char *tmp, const char *path, const Dataset *ds, int file,
                     int64_t *replaced, XbError *err) {
    return put_file(tmp, path, put_aan, ds, file, replaced, err);
}

static int write_npy(const char *tmp, const char *path, const Dataset *ds, int file,
                     int64_t *replaced, XbError *err) {
    return put_file(tmp, path, put_npy, ds, file, replaced, err);
}

static int write_seq_npy(const char *tmp, const char *path, const Dataset *ds, int file,
                         int64_t *replaced, XbError *err) {
    return put_file(tmp, path, put_seq_npy, ds, file, replaced, err);
}

typedef struct Format {
    const char *task, *format, *reload;
    int n_files;
    const char *files[EXPORT_MAX_FILES];
    WriteFn write;
} Format;

static const Format FORMATS[] = {
    {"listops",
     "LRA's ListOps TSV",
     "--set task.source=files --set task.data_dir=",
     3,
     {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"},
     write_listops},
    {"text",
     "TSV of label and escaped text",
     NULL,
     3,
     {"text_train.tsv", "text_val.tsv", "text_test.tsv"},
     write_text},
    {"retrieval",
     "LRA's AAN TSV",
     "--set task.source=aan --set task.data_dir=",
     3,
     {"new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv", "new_aan_pairs.test.tsv"},
     write_aan},
    {"image",
     "NumPy int32 arrays",
     NULL,
     6,
     {"image_train_inputs.npy", "image_train_targets.npy", "image_val_inputs.npy",
      "image_val_targets.npy", "image_test_inputs.npy", "image_test_targets.npy"},
     write_npy},
    {"pathfinder",
     "NumPy int32 arrays",
     NULL,
     6,
     {"pathfinder_train_inputs.npy", "pathfinder_train_targets.npy", "pathfinder_val_inputs.npy",
      "pathfinder_val_targets.npy", "pathfinder_test_inputs.npy", "pathfinder_test_targets.npy"},
     write_npy},
    {"mqar",
     "NumPy int32 arrays, per-position targets",
     NULL,
     6,
     {"mqar_train_inputs.npy", "mqar_train_targets.npy", "mqar_val_inputs.npy",
      "mqar_val_targets.npy", "mqar_test_inputs.npy", "mqar_test_targets.npy"},
     write_seq_npy},
    {"selcopy",
     "NumPy int32 arrays, per-position targets",
     NULL,
     6,
     {"selcopy_train_inputs.npy", "selcopy_train_targets.npy", "selcopy_val_inputs.npy",
      "selcopy_val_targets.npy", "selcopy_test_inputs.npy", "selcopy_test_targets.npy"},
     write_seq_npy},
    {"needle",
     "NumPy int32 arrays, per-position targets",
     NULL,
     6,
     {"needle_train_inputs.npy", "needle_train_targets.npy", "needle_val_inputs.npy",
      "needle_val_targets.npy", "needle_test_inputs.npy", "needle_test_targets.npy"},
     write_seq_npy},
};

const char *export_task_names(void) {
    return "listops, text, retrieval, image, pathfinder, mqar, selcopy, needle";
}

static const Format *format_of(const char *task) {
    for (size_t i = 0; i < XB_ARRAY_LEN(FORMATS); i++)
        if (!strcmp(FORMATS[i].task, task)) return &FORMATS[i];
    return NULL;
}

static int usage_error(XbError *err) {
    err->code = XB_EXIT_USAGE;
    return -1;
}

/* 0 when dir exists as a directory, or when its nearest existing ancestor is a directory that
 * can take new entries; else -1 with err (a write would fail after a long load). */
static int creatable(const char *dir, XbError *err) {
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", dir) >= sizeof buf)
        return xb_error_set(err, dir, 0, 0, NULL, "path is too long");
    for (;;) {
        struct stat st;
        if (stat(buf, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return xb_error_set(err, dir, 0, 0, NULL,
                                    "cannot create directory: '%s' is not "
                                    "a directory",
                                    buf);
            if (access(buf, W_OK | X_OK) != 0)
                return xb_error_set(err, dir, 0, 0, NULL, "cannot write into '%s': %s", buf,
                                    strerror(errno));
            return 0;
        }
        char *slash = strrchr(buf, '/');
        while (slash && slash > buf && slash[1] == '\0') { /* trailing slashes */
            *slash = '\0';
            slash = strrchr(buf, '/');
        }
        if (!slash)
            snprintf(buf, sizeof buf, ".");
        else if (slash == buf)
            buf[1] = '\0';
        else
            *slash = '\0';
    }
}

int export_check(const char *task, const char *dir, XbError *err) {
    const Format *fm = format_of(task);
    if (!fm)
        return xb_error_set(err, dir, 0, 0, NULL, "task %s has no export format (valid: %s)", task,
                            export_task_names());
    if (creatable(dir, err)) return -1;
    for (int i = 0; i < fm->n_files; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, fm->files[i]);
        if (lstat(path, &st) == 0)
            return xb_error_set(err, path, 0, 0, NULL,
                                "already exists (export into a new or empty directory: an "
                                "export never replaces a file)");
    }
    return 0;
}

int export_dataset(const Dataset *ds, const char *task, const char *dir, ExportSummary *out,
                   XbError *err) {
    memset(out, 0, sizeof *out);
    if (export_check(task, dir, err)) return -1;
    const Format *fm = format_of(task);
    if (fileio_mkdirs(dir, dir, err)) return usage_error(err);
    /* The files are written in a directory of our own (mkdtemp: mode 0700, a new name), where no
     * one else can plant a file or a symlink, then renamed into dir. */
    char tdir[4200];
    if ((size_t)snprintf(tdir, sizeof tdir, "%s/.xformer-bench-export.XXXXXX", dir) >= sizeof tdir)
        return xb_error_set(err, dir, 0, 0, NULL, "path is too long");
    if (!mkdtemp(tdir))
        return xb_error_set(err, dir, 0, 0, NULL, "cannot write in the directory: %s",
                            strerror(errno));
    const int tslot = xb_temp_register(tdir);
    int slots[EXPORT_MAX_FILES];
    char path[EXPORT_MAX_FILES][4096], tmp[EXPORT_MAX_FILES][4300];
    int tried = 0, rc = 0;
    for (int i = 0; i < fm->n_files && rc == 0; i++, tried++) {
        snprintf(path[i], sizeof path[i], "%s/%s", dir, fm->files[i]);
        snprintf(tmp[i], sizeof tmp[i], "%s/%s", tdir, fm->files[i]);
        slots[i] = xb_temp_register(tmp[i]);
        rc = fm->write(tmp[i], path[i], ds, i, &out->replaced, err);
    }
    for (int i = 0; i < fm->n_files && rc == 0; i++) {
        if (rename(tmp[i], path[i]) != 0) {
            rc = xb_error_set(err, path[i], 0, 0, NULL, "cannot rename %s into place: %s", tmp[i],
                              strerror(errno));
            /* the files renamed so far go too: an export is whole or absent */
            for (int j = 0; j < i; j++) unlink(path[j]);
            break;
        }
    }
    for (int i = 0; i < tried; i++) {
        if (rc) unlink(tmp[i]); /* files only: never a directory */
        xb_temp_forget(slots[i]);
    }
    rmdir(tdir);
    xb_temp_forget(tslot);
    if (rc) return usage_error(err);
    out->n_files = fm->n_files;
    for (int i = 0; i < fm->n_files; i++)
        snprintf(out->files[i], sizeof out->files[i], "%s", fm->files[i]);
    out->format = fm->format;
    out->reload = fm->reload;
    return 0;
}
