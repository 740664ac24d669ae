/* Run reports: one JSON document per run (schema in report.schema.json), written atomically. */
#ifndef XB_REPORT_H
#define XB_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/calib.h"
#include "core/error.h"
#include "core/profile.h"

#define XB_REPORT_SCHEMA_VERSION 1

struct cJSON;

typedef struct EvalRecord {
    int64_t step;
    double lr;
    double train_loss; /* mean training loss since the previous evaluation */
    double val_loss, val_acc;
    double elapsed_s; /* wall time since the start of training (goes to "measured") */
} EvalRecord;

typedef struct MemoryReport {
    size_t parameters, gradients, optimizer, activations, scratch_peak; /* bytes, planned */
    size_t peak_rss;                                                    /* bytes, measured */
} MemoryReport;

/* What a training run produced, as its report needs it: train_run (train/trainer.h, where it is
 * TrainResult) fills it; report_from_run turns it into the report. */
typedef struct RunResult {
    const char *status; /* "ok", "diverged" or "interrupted" */
    char status_message[1280];
    EvalRecord *evals; /* n_evals records (owned; train_result_free) */
    int n_evals;
    int64_t steps_done, best_step;
    double best_val_acc, test_acc, test_loss; /* NaN when not evaluated; a sequence task's are
                                               * per target position */
    double test_exact; /* sequence tasks: the fraction of test examples with every target
                        * position right; else NaN */
    uint64_t flops_fwd, flops_bwd; /* analytic, one training step */
    uint64_t flops_step_counted, flops_total;
    MemoryReport mem; /* planned bytes (peak_rss left to the caller) */
    size_t n_params;
    double train_s, eval_s, steps_per_s, tokens_per_s;
    double step_s_median;      /* median wall time of a training step after the warm-up (of the last
                                * TRAIN_TIMED_STEPS at most); NaN when no step was timed */
    double comm_s;             /* seconds in collectives (data-parallel training) */
    double profile[PROF_N][2]; /* training steps' seconds per kernel family, forward/backward */
    long long profile_regions; /* timed regions (for the profile's own cost) */
} RunResult;

/* What a run's report holds beside its config, its data and its result: how and where it ran. */
typedef struct RunContext {
    const char *run_id;      /* the id it took (run --unique-id may have suffixed the config's) */
    int threads;             /* per process */
    int processes;           /* that trained the run together; 0 or 1: one */
    double wall_s;           /* the whole run */
    size_t peak_rss;         /* bytes */
    const CalibUsage *usage; /* the threads' share of the cores (NULL: no calibration) */
    const CalibProbe *probe; /* the probe after training (NULL: none, e.g. after a signal) */
} RunContext;

struct ExperimentConfig;
struct Dataset;
struct DatasetId;

/* The report of a finished run of cfg on ds (report_build's document, owned by the caller). */
struct cJSON *report_from_run(const struct ExperimentConfig *cfg, const struct Dataset *ds,
                              const RunResult *res, const RunContext *ctx);
/* Adds the run's checkpoint to its report doc: {"file", "fnv1a64", "step"} (replacing any), or
 * null when file is NULL (the run put none beside its report). */
void report_set_checkpoint(struct cJSON *doc, const char *file, const char *fnv1a64, int64_t step);

typedef struct RunReport {
    const struct cJSON *config; /* resolved config (not owned) */
    char config_hash[17];
    char run_id[256];
    const char *status; /* "ok", "diverged", "interrupted" or "failed" */
    char status_message[1280];
    int threads;   /* per process */
    int processes; /* that trained the run together (data-parallel); 0 or 1: one */

    const struct DatasetId *dataset_id; /* what made the data (Dataset.id; not owned) */
    const char *dataset_checksum;
    int train_n, val_n, test_n, vocab_size, n_classes;
    int sequence; /* 1: a sequence task (per-position targets): accuracies are per target
                   * position and the test also reports exact_match */

    const char *mixer, *mixer_classes;
    size_t n_params;

    const EvalRecord *evals;
    int n_evals;
    int64_t steps_done, best_step;
    double best_val_acc;
    double test_acc, test_loss, majority_baseline; /* NaN when not evaluated */
    double test_exact; /* sequence tasks: examples with every target right (NaN: not evaluated) */

    uint64_t flops_fwd_analytic, flops_bwd_analytic; /* per training step, whole model */
    uint64_t flops_step_counted;                     /* counted by the kernels over one step */
    uint64_t flops_total_counted;                    /* all steps and evaluations */

    MemoryReport mem;
    double wall_s, train_s, eval_s, steps_per_s, tokens_per_s; /* measured */
    double comm_s;                                             /* measured: in collectives */
    const double (*profile)[2]; /* PROF_N × {forward, backward} seconds, or NULL */
    long long profile_regions;
    double step_s_median; /* measured, NaN: none timed */
    /* the calibration (core/calib.h): the threads' share of the cores over training and
     * evaluation, and the probe run after them (NULL: none, e.g. after a signal) */
    const CalibUsage *usage; /* NULL: no calibration at all */
    const CalibProbe *probe;
} RunReport;

/* A dataset's identity (tasks/identity.h) as the report's `dataset.identity` object: its fields
 * in order, a hash as 16 hex digits, an object field's fields inside it. id must pass
 * dataset_id_check (every dataset is checked before a run; asserted). Owned by the caller. */
struct cJSON *report_dataset_identity(const struct DatasetId *id);
/* The same object as compact JSON text (report_json_print_compact), as `data` prints it;
 * malloc'ed, owned by the caller. */
char *report_dataset_identity_text(const struct DatasetId *id);

/* Builds the report document (with schema_version, tool and environment); owned by the caller. */
struct cJSON *report_build(const RunReport *r);
/* Writes doc to path atomically (creates missing directories, writes path.tmp, fsync, rename;
 * on failure removes path.tmp), printed by report_json_print. */
int report_write(const char *path, const struct cJSON *doc, XbError *err);
/* Reads and parses a report; refuses unknown schema_version and malformed JSON with a message
 * naming the file (and the line and column of a JSON syntax error). *out owned by the caller. */
int report_read(const char *path, struct cJSON **out, XbError *err);
/* Resets the process's peak resident set size to the current one (Linux's clear_refs), so that
 * each run of a sweep reports its own peak; returns 0, or -1 where that is not possible. */
int report_reset_peak_rss(void);
/* "an array", "a string", "a number", "a boolean", "null" or "an object": for messages. */
const char *report_json_type_name(const struct cJSON *j);
/* The process's peak resident set size in bytes (VmHWM). */
size_t report_peak_rss(void);
/* The report's "environment" object: CPU model, online cores, threads, BLAS build and threads,
 * compiler, OS (env.c). Owned by the caller. */
struct cJSON *report_environment(int threads);
/* Prints j as indented JSON (two spaces, newline at the end) whose numbers read back to the same
 * doubles, which cJSON_Print does not guarantee; NaN and infinities print as null
 * (json_text.c). Owned by the caller (free). */
char *report_json_print(const struct cJSON *j);
/* j as JSON text on one line, without spaces or a final newline, with report_json_print's numbers
 * and strings (json_text.c). Owned by the caller (free). */
char *report_json_print_compact(const struct cJSON *j);
/* Checks that text[0..n) is one JSON document (RFC 8259, strict). Returns 0, or -1 with *pos the
 * byte offset of the first error and *msg what is wrong (a static string) (json_text.c). */
int report_json_check(const char *text, size_t n, size_t *pos, const char **msg);
/* The deepest nesting report_json_check accepts (cJSON's limit is 1000; a report nests 4 levels),
 * and the message it gives beyond it. */
#define REPORT_JSON_MAX_DEPTH 64
extern const char report_json_too_deep[];
/* report_json_check's message for bytes that are not UTF-8 (RFC 8259 8.1). */
extern const char report_json_not_utf8[];

#endif
