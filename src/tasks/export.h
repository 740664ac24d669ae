/* A task's splits written in the Long Range Arena's file formats, so that an implementation we did
 * not write (LRA's own input pipelines, scripts/reference/torch_encoder.py) reads exactly the
 * examples we train on, and our official-format loaders read them back:
 *   listops     basic_{train,val,test}.tsv: the header "Source<TAB>Target", then one expression per
 *               row as LRA's to_string prints it, and its value (task.source: files reads them);
 *   retrieval   new_aan_pairs.{train,eval,test}.tsv: rows label, id1, id2, text1, text2, no header
 *               (lra_benchmarks/matching/input_pipeline.py, get_tsv_dataset: header=False,
 *               use_quote_delim=False), each text's bytes as they stand (task.source: aan reads
 *               them). A row cannot hold a tab, a line feed, a carriage return or a NUL byte:
 *               those are written as spaces and counted, as LRA's own text preparation joins
 *               lines with spaces (lra_benchmarks/data/text_classification.py);
 *   text        text_{train,val,test}.tsv: the header "label<TAB>text", then one document per
 *               row, its bytes as they stand except \\, \t, \n, \r and \0 for a backslash, tab,
 *               line feed, carriage return and NUL (the Linear TSV / PostgreSQL COPY escapes), so
 *               every byte survives (LRA read IMDb through tfds, which has no file of its own);
 *   image,      TASK_{train,val,test}_{inputs,targets}.npy: NumPy format 1.0, little-endian int32,
 *   pathfinder  inputs (N, L) the token ids (pixel + 1), targets (N,) the labels ("inputs" and
 *               "targets" are the keys of LRA's batches);
 *   mqar,       the same files for the sequence tasks (model.pooling: none): inputs (N, L) the
 *   selcopy,    token ids padded with 0 (XB_PAD_ID) to the split's longest example, targets
 *   needle      (N, L) each position's class, or -1 (XB_NO_TARGET) at a position without one,
 *               padding included.
 * Token ids of the text tasks are byte + 1 and of ListOps those of tasks/listops.h, as the loaders
 * make them. */
#ifndef XB_EXPORT_H
#define XB_EXPORT_H

#include <stdint.h>

#include "core/error.h"
#include "tasks/task.h"

enum { EXPORT_MAX_FILES = 6 };

/* What export_dataset wrote. */
typedef struct ExportSummary {
    int n_files;
    char files[EXPORT_MAX_FILES][64]; /* names inside the directory, in order */
    const char *format;               /* "LRA's ListOps TSV", ... (static) */
    const char *reload; /* the --set options that read the files back, up to the directory
                         * ("... task.data_dir="), or NULL */
    int64_t replaced;   /* retrieval: bytes written as spaces (a row cannot hold them) */
} ExportSummary;

/* The tasks that have an export format, as "listops, text, ..." (static). */
const char *export_task_names(void);

/* Checks that `task` has an export format and that none of its files exists in dir yet (the
 * export never replaces a file). Returns 0, or -1 with err (code XB_EXIT_USAGE) naming the task
 * or the file. */
int export_check(const char *task, const char *dir, XbError *err);

/* Writes ds, the data of task `task`, into dir (created if missing) in the task's format. Every
 * file is written to NAME.tmp first and renamed only when all of them are complete; on an error
 * no file and no temporary is left. Returns 0, or -1 with err (code XB_EXIT_USAGE) naming the
 * path and what is wrong. */
int export_dataset(const Dataset *ds, const char *task, const char *dir, ExportSummary *out,
                   XbError *err);

/* Writes a NumPy .npy file (format 1.0, C order) atomically (PATH.tmp, then rename): ndim
 * dimensions shape[0..ndim) of `type` 'i' (little-endian int32) or 'f' (little-endian float32)
 * from data. Returns 0, or -1 with err (code XB_EXIT_USAGE) naming path. */
int export_npy(const char *path, char type, int ndim, const int64_t *shape, const void *data,
               XbError *err);

#endif
