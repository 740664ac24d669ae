/* The figures of a report that the comparing and tabulating commands read, taken out of the JSON
 * with an error naming the file and the field when one is missing or of the wrong type; and the
 * reports of a list of files and directories, loaded in a stable order. */
#ifndef XB_SUMMARY_H
#define XB_SUMMARY_H

#include <stdint.h>

#include "config/config.h"
#include "core/error.h"

typedef struct ReportSummary {
    char path[1024];
    char run_id[256], task[64], mixer[64], classes[64], hash[17], status[16];
    int max_len, batch_size;
    double test_acc, baseline;        /* fractions; NaN when the run did not evaluate */
    double steps_per_s, tokens_per_s; /* measured */
    double step_s_median;             /* measured; NaN when the report has none */
    double wall_s;                    /* measured, the whole run */
    double peak_rss, planned;         /* bytes: measured; planned buffers */
    uint64_t flops_step;              /* analytic FLOPs of a training step */
    uint64_t flops_counted;           /* counted by the kernels over one training step */
    uint64_t params;
    /* measured.calibration (NaN when unknown, or absent in older reports): the share of the
     * cores the run's threads got, the probe's sgemm GFLOP/s, and the process's CPU seconds over
     * training and evaluation */
    double core_share, calib_sgemm, calib_cpu_s;
    double steps;      /* training.steps: the steps trained (NaN when absent) */
    uint64_t seed;     /* config.experiment.seed */
    uint64_t cell_key; /* FNV-1a 64 of the config without the seed (and what cfg_hash leaves out):
                        * equal keys are seeds of the same experiment (report/stats.h) */
} ReportSummary;

enum { REPORT_PROFILE_MAX = 64 };

/* One entry of a report's measured.profile: a kernel family in one direction. */
typedef struct ProfileEntry {
    char family[48];
    int backward;
    double s; /* seconds over all training steps */
} ProfileEntry;

/* A report's measured.profile (core/profile.h), with what it is measured against. */
typedef struct ReportProfile {
    int read; /* 1: the report has a profile (the fields below are valid) */
    int n;
    ProfileEntry e[REPORT_PROFILE_MAX]; /* the entries with time, forward and backward */
    double other_s, train_s;            /* not in any kernel; all training steps */
    long long regions, steps;
} ReportProfile;

/* Reads the report at path (report_read) and fills *s. Returns 0, or -1 with err set. */
int summary_read(const char *path, ReportSummary *s, XbError *err);

/* Reads measured.profile, measured.train_s and training.steps of the report at path into *p
 * (p->read stays 0 when the report cannot be read or has no profile). */
void summary_read_profile(const char *path, ReportProfile *p);

/* What eval needs of a report to evaluate its run again: its resolved config (loaded as a config
 * file would be), the run id, the data's checksum, the best validation step and the accuracies,
 * and the checkpoint the report names. */
typedef struct ReportRun {
    ConfigSet cs; /* one run (free with cfg_set_free) */
    char run_id[256], checksum[17];
    char ckpt[4400];    /* the checkpoint beside the report (checkpoint.file, or RUN_ID.safetensors
                         * for a report older than that record) */
    char ckpt_hash[17]; /* checkpoint.fnv1a64, or "" (a report older than it) */
    int64_t best_step;
    double test_acc, val_acc; /* test.accuracy, training.best_val_accuracy (NaN: null) */
} ReportRun;

/* Reads the report at path into *r. Returns 0, or -1 with err set (naming the report and the key;
 * an error in its config names the key under "config."). */
int summary_read_run(const char *path, ReportRun *r, XbError *err);

/* The shortest decimal form of x that reads back as x, into buf. */
void summary_shortest(char *buf, size_t n, double x);

/* The reports named by paths[0..n): a file is one report, a directory every *.json in it but
 * index.json, sorted by name. *out (malloc'd, owned by the caller) receives *count summaries.
 * A directory without reports is an error. Returns 0, or -1 with err set. */
int summary_load(const char *const *paths, int n, ReportSummary **out, int *count, XbError *err);

#endif
