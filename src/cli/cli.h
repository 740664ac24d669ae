/* Subcommands: each declares its options in a table (cli/opts.h), parses its arguments with it
 * and wires the library together. */
#ifndef XB_CLI_H
#define XB_CLI_H

#include <stddef.h>

#include "cli/opts.h"
#include "core/error.h"

/* The subcommands in the order `xformer-bench --help` lists them (static storage); *n their
 * number. Each runs with cli_main (cli/opts.h). */
const CliCommand *const *cli_commands(int *n);
extern const CliCommand CMD_RUN, CMD_LIST, CMD_DATA, CMD_EVAL, CMD_BENCH, CMD_COMPARE, CMD_TABLE,
    CMD_PLOT;

enum { BENCH_MAX_SIZES = 64 };
/* bench --sizes: buffer sizes in bytes. */
typedef struct BenchSizes {
    size_t bytes[BENCH_MAX_SIZES];
    int n;
} BenchSizes;
/* bench --allreduce: times the all-reduce of each size `repeats` times over the processes of the
 * MPI world, prints a table and writes OUTPUT_DIR/allreduce.json (cli/bench_allreduce.c);
 * returns an exit code. */
int bench_allreduce(const BenchSizes *sizes, long long repeats, const char *outdir, int quiet);

struct ExperimentConfig;
struct Dataset;

/* How cli_run_loaded runs an experiment. */
typedef struct CliRun {
    int quiet;          /* no progress lines */
    int silent;         /* not even the closing summary line */
    int checkpoint;     /* save the best validation checkpoint (when the config asks for one) */
    int no_eval;        /* benchmark: no validation, no test */
    int time_warmup;    /* steps left out of the median step time */
    struct RunDir *dir; /* the run's directory, already taken (cli/rundir.h); NULL: take it */
    int state;          /* keep a resumable state (train.checkpoint_every, and on a signal) */
    int resume;         /* continue from the run's state when there is one (run --resume) */
} CliRun;

/* Sets OpenMP's and OpenBLAS's threads from experiment.threads (0: every core); returns them. */
int cli_set_threads(const struct ExperimentConfig *cfg);
/* Loads cfg's task data into ds, through the data cache (tasks/cache.h); returns an exit code
 * (the error printed). When cached is not NULL it gets the cache's outcome (a CacheOutcome) and
 * path[0..n) the cache file, if any. */
int cli_load_dataset(const struct ExperimentConfig *cfg, struct Dataset *ds, int quiet, int *cached,
                     char *path, size_t n);
/* Trains and evaluates cfg on a loaded dataset and writes OUTPUT_DIR/RUN_ID.json; returns the
 * exit code of `run` for it. */
int cli_run_loaded(const struct ExperimentConfig *cfg, const struct Dataset *ds, const CliRun *how);
/* Prints "xformer-bench: FILE:LINE:COL: key: message" on stderr; returns err's exit code. */
int print_error(const XbError *e);

/* Prints "xformer-bench CMD: FILE:LINE:COL: key: message" (err) on stderr; returns
 * XB_EXIT_USAGE (bad input to a command that runs nothing: compare, table, plot). */
int cli_command_error(const char *cmd, const XbError *err);
/* Prints "xformer-bench CMD: message" on stderr and returns XB_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a whole decimal integer in [lo, hi]; returns 0 or -1. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);

#endif
