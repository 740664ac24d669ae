/* The JSON documents beside the run reports: a sweep's index (OUTPUT_DIR/index.json, written by
 * run), a benchmark's index (DIR/index.json, written by bench) and bench --allreduce's
 * measurements (DIR/allreduce.json). Each is written atomically (report_write). */
#ifndef XB_REPORT_INDEX_H
#define XB_REPORT_INDEX_H

#include <stddef.h>

#include "config/config.h"
#include "core/error.h"
#include "report/summary.h"

/* Writes the index of sweep cs, OUTPUT_DIR/index.json of its first run: every run with its report,
 * config hash and outcome from codes[r] (an exit code: ok, failed, bad input; < 0: not run by this
 * process), in sweep order. Shards of one sweep (run --shard) share the index: each merges its
 * outcomes into the one on disk under OUTPUT_DIR/index.lock, keeping another shard's outcome of a
 * run this process did not run. Returns 0, or -1 with err set. */
int report_write_sweep_index(const ConfigSet *cs, const int *codes, XbError *err);

/* One point of a benchmark: a mechanism at a length. */
typedef struct BenchPoint {
    char mixer[64];
    int L;
    const char *status; /* "ok", "skipped" (budget or length), "failed" */
    char why[1400];     /* not ok: the reason */
    size_t planned;     /* planned bytes; 0: not known */
    ReportSummary s;    /* ok: the point's report */
    ReportProfile prof; /* ok: its profile (bench --profile) */
} BenchPoint;

/* What the benchmark says of an ok point beside its report: NaN where it cannot be said (no
 * `full` at the same length, no calibration). */
typedef struct BenchFigures {
    double step_s;                                /* the median step */
    double tokens_per_s;                          /* batch × L / step_s */
    double gflops_per_s;                          /* analytic FLOPs of a step / step_s */
    double sgemm_gflops_per_s, fraction_of_sgemm; /* the point's own calibration */
    double speed_vs_full, memory_vs_full;         /* against `full` at the same length */
    double full_step_s, full_peak_rss;
} BenchFigures;

/* The figures of pt[i] (ok), against the ok point of `full` at its length among pt[0..n). */
void report_bench_figures(const BenchPoint *pt, int n, int i, BenchFigures *f);
/* Writes DIR/index.json of a benchmark of `steps` steps (`warmup` left out of the median) with
 * its points pt[0..n). Returns 0, or -1 with err set. */
int report_write_bench_index(const char *path, const BenchPoint *pt, int n, long long steps,
                             int warmup, XbError *err);

/* One buffer size of bench --allreduce. */
typedef struct AllreducePoint {
    size_t bytes;
    double median_s, min_s, max_s; /* over the timed calls (each the slowest process's) */
    double x;                      /* the ring's bytes per process, 2(P-1)/P × bytes */
} AllreducePoint;

/* The fit of the ring all-reduce's cost T(n) = 2(P-1) alpha + 2(P-1)/P n beta (NaN: none). */
typedef struct AllreduceFit {
    double c;     /* the intercept, 2(P-1) alpha */
    double alpha; /* the latency of one of the ring's 2(P-1) steps */
    double beta;  /* seconds per byte */
} AllreduceFit;

/* Writes DIR/allreduce.json: the measurement of P processes, `repeats` calls per size, the load
 * average (NaN where unknown), each point with its bandwidths and the model's time (fit of the
 * medians), the fits of the medians and of the minima. Returns 0, or -1 with err set. */
int report_write_allreduce(const char *path, int P, long long repeats, const double load[3],
                           const AllreducePoint *pt, int n, const AllreduceFit *fit,
                           const AllreduceFit *fit_min, XbError *err);

#endif
