/* What the fuzz harnesses share: a scratch directory of their own, files written into it, inputs
 * cut into parts, and the properties every harness checks on what a loader accepted.
 *
 * A harness is the libFuzzer entry point LLVMFuzzerTestOneInput (plus LLVMFuzzerInitialize when
 * it needs setup); it is linked either with -fsanitize=fuzzer (the fuzzers, meson option
 * `fuzzing`) or with replay.c's main, which runs it over files (the regression tests of
 * `meson test`). A property that does not hold ends the process through fuzz_fail, which prints
 * "fuzz: PROPERTY: what" and aborts, so libFuzzer records the input as a crash. */
#ifndef XB_FUZZ_H
#define XB_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "tasks/task.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A part of an input: data[0..n). */
typedef struct FuzzPart {
    const uint8_t *p;
    size_t n;
} FuzzPart;

/* The separator between the parts of an input that holds several files (listed in the
 * dictionaries); chosen so that no real file of ours contains it. */
#define FUZZ_SEP "\n--xb-fuzz-next-file--\n"

/* A fresh directory for this process (under $TMPDIR, else /tmp), removed at exit; the same path
 * on every call. */
const char *fuzz_dir(void);
/* Writes data[0..n) to fuzz_dir()/rel, creating rel's directories; aborts when it cannot. */
void fuzz_put(const char *rel, const void *data, size_t n);
/* fuzz_dir()/rel into out (n bytes). */
void fuzz_path(char *out, size_t n, const char *rel);

/* Cuts data[0..size) at each FUZZ_SEP into at most max parts (the last part keeps the rest);
 * returns how many (at least 1). */
size_t fuzz_split(const uint8_t *data, size_t size, FuzzPart *parts, size_t max);

/* The harness's name ("cache"), defined by each harness. */
extern const char FUZZ_NAME[];

/* Fails property `id` (a short name, e.g. "dataset-labels") with a message: prints it and
 * aborts, unless $XB_FUZZ_IGNORE (comma-separated) lists id or FUZZ_NAME:id, when it returns 1
 * so that a long campaign gets past a finding known and being fixed (scripts/fuzz.sh). */
int fuzz_fail(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The options of task t at their defaults with kv[0..n) (name, value pairs) applied: enum values
 * by choice name, strings as they stand, numbers parsed; aborts on a name t does not have. */
OptValues fuzz_task_opts(const TaskSpec *t, const char *const *kv, int n);

/* What the trainer, the batcher and the report writer take for granted of a dataset that loaded
 * (fuzz_fail otherwise): every split non-empty with its offsets rising from 0, two documents per
 * example exactly for a pair task, tokens in [0, vocab_size), labels in [0, n_classes) for a
 * classification task and targets in [XB_NO_TARGET, n_classes) for a sequence task (never
 * both), the checksum that of the data, and the identity one that report_dataset_identity takes
 * (dataset_id_check, which report.c asserts), printed as a JSON object with the task first and no
 * key twice. */
void fuzz_check_dataset(const Dataset *d);

/* Loads the task `name` with the option pairs kv (n strings: key, value, ...): a refusal must be
 * the usage code with a message (load-error), a dataset that loads passes fuzz_check_dataset. */
void fuzz_load_task(const char *name, const char *const *kv, int n);

#endif
