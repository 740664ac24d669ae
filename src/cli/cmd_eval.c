/* xformer-bench eval: a report's model rebuilt from its resolved config, its checkpoint loaded, a
 * split evaluated as `run` evaluated it; the accuracy next to the report's, the logits on request.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/rundir.h"
#include "config/config.h"
#include "core/error.h"
#include "core/xassert.h"
#include "report/report.h"
#include "report/summary.h"
#include "tasks/export.h"
#include "tasks/task.h"
#include "train/trainer.h"

/* The arguments of `eval`. */
typedef struct EvalArgs {
    CliList report; /* the operand: one report */
    int split;      /* EVAL_TEST or EVAL_VAL */
    const char *logits;
    long long threads;
} EvalArgs;

enum { EVAL_TEST, EVAL_VAL };
static const char *const SPLITS[] = {[EVAL_TEST] = "test", [EVAL_VAL] = "val", NULL};
_Static_assert(XB_ARRAY_LEN(SPLITS) == EVAL_VAL + 2, "a name for every split, then NULL");

enum { EVAL_SPLIT, EVAL_LOGITS, EVAL_THREADS, N_EVAL_OPTS };
static const CliOpt EVAL_OPTS[] = {
    [EVAL_SPLIT] = {"--split", 0, CLI_ENUM, CLI_AT(EvalArgs, split, int), .choices = SPLITS,
                    .def = "test",
                    .help = "the split: test (as the report's test.accuracy) or val (the "
                            "validation batches run used, as training.best_val_accuracy)"},
    [EVAL_LOGITS] = {"--logits", 0, CLI_STR, CLI_AT(EvalArgs, logits, const char *), "FILE.npy",
                     .help = "also write the classifier's logits as a NumPy float32 array in "
                             "example order: (N, C), or (N, L, C) for a sequence task"},
    [EVAL_THREADS] = {"--threads", 0, CLI_INT, CLI_AT(EvalArgs, threads, long long), "N", .min = 0,
                      .max = 1024,
                      .help = "threads for OpenMP and OpenBLAS, 0 = all cores (default: the "
                              "report's experiment.threads)"},
};

static const CliHelp EVAL_HELP[] = {
    {"Rebuilds the model of a report from the resolved config it holds, loads its checkpoint\n"
     "(RUN_ID.safetensors beside the report: the best validation step's parameters), loads the\n"
     "task's data (which must have the report's checksum) and evaluates a split exactly as run\n"
     "evaluated it: the same batches, the same parameters, the same step. Prints the accuracy\n"
     "next to the report's; for a checkpoint that run wrote they are equal.\n",
     ~0u},
    {"Exit status: 0, or 2 bad input (an unreadable or malformed report, a missing checkpoint or\n"
     "one of another model, data that differ from the report's, an unwritable FILE.npy).\n",
     0},
};

/* The report's checkpoint: named by the report (or RUN_ID.safetensors beside an older one),
 * readable, and the one the report names (its hash). Returns 0, or -1 with err set. */
static int find_checkpoint(const char *report, ReportRun *s, XbError *err) {
    if (access(s->ckpt, R_OK) != 0) /* before a long load of the data */
        return xb_error_set(err, s->ckpt, 0, 0, NULL,
                            "cannot read the checkpoint: %s (run writes RUN_ID.safetensors beside "
                            "the report when train.checkpoint is true)",
                            strerror(errno));
    char have[17];
    if (s->ckpt_hash[0] && !rundir_file_hash(s->ckpt, have, err) && strcmp(have, s->ckpt_hash))
        xb_error_set(err, s->ckpt, 0, 0, NULL,
                     "is not the checkpoint of %s: its FNV-1a 64 is %s, the report names %s (a "
                     "later run of the same id, or a damaged file)",
                     report, have, s->ckpt_hash);
    return err->msg[0] ? -1 : 0;
}

/* The task's data, which must still have the report's checksum; returns an exit code. */
static int load_same_data(const char *report, const ReportRun *s, Dataset *ds) {
    int rc = cli_load_dataset(&s->cs.runs[0], ds, 1, NULL, NULL, 0);
    if (rc || !strcmp(ds->checksum, s->checksum)) return rc;
    XbError err;
    xb_error_set(&err, report, 0, 0, "dataset.checksum",
                 "the run's data had checksum %s, the task's data now has %s (its files or "
                 "its generator changed): the run cannot be evaluated again",
                 s->checksum, ds->checksum);
    dataset_free(ds);
    return print_error(&err);
}

/* Evaluates the split of a->split with the checkpoint, writing the logits when asked. */
static int evaluate(const EvalArgs *a, const ReportRun *s, const Dataset *ds, TrainEval *ev,
                    XbError *err) {
    const ExperimentConfig *cfg = &s->cs.runs[0];
    const int test = a->split == EVAL_TEST;
    float *logits = NULL;
    int rc =
        train_eval_checkpoint(cfg, ds, test ? &ds->test : &ds->val, s->ckpt, s->best_step,
                              test ? 0 : cfg->eval_batches, ev, a->logits ? &logits : NULL, err);
    if (!rc && a->logits) {
        const int64_t shape[3] = {ev->n, ev->positions ? ev->positions : ev->classes, ev->classes};
        rc = export_npy(a->logits, 'f', ev->positions ? 3 : 2, shape, logits, err);
    }
    free(logits);
    return rc;
}

/* The accuracy next to the report's, and where the logits went. */
static void print_eval(const EvalArgs *a, const ReportRun *s, const TrainEval *ev) {
    const int test = a->split == EVAL_TEST;
    const double said = test ? s->test_acc : s->val_acc;
    char acc[40], was[40];
    summary_shortest(acc, sizeof acc, ev->acc);
    summary_shortest(was, sizeof was, said);
    printf("%s: %s accuracy %s (%.2f%%) of %d examples, loss %.6g", s->run_id,
           test ? "test" : "validation", acc, 100.0 * ev->acc, ev->n, ev->loss);
    if (!isnan(ev->exact)) printf(", exact match %.2f%%", 100.0 * ev->exact);
    if (isnan(said))
        printf("; the report has none\n");
    else if (said == ev->acc)
        printf("; the report's: %s, equal\n", was);
    else
        printf("; the report's: %s, %+.4f points\n", was, 100.0 * (ev->acc - said));
    if (a->logits && ev->positions)
        printf("  logits (%d, %d, %d) float32 -> %s\n", ev->n, ev->positions, ev->classes,
               a->logits);
    else if (a->logits)
        printf("  logits (%d, %d) float32 -> %s\n", ev->n, ev->classes, a->logits);
}

static int eval_args(const void *args, const CliSeen *seen) {
    const EvalArgs *a = args;
    const char *report = a->report.v[0];
    XbError err;
    xb_error_clear(&err);
    ReportRun s;
    if (summary_read_run(report, &s, &err)) return print_error(&err);
    int rc = find_checkpoint(report, &s, &err) ? print_error(&err) : XB_EXIT_OK;
    ExperimentConfig *cfg = &s.cs.runs[0];
    if (seen->given[EVAL_THREADS]) cfg->threads = (int)a->threads;
    cli_set_threads(cfg);
    Dataset ds;
    if (!rc) rc = load_same_data(report, &s, &ds);
    if (!rc) {
        TrainEval ev;
        rc = evaluate(a, &s, &ds, &ev, &err) ? print_error(&err) : XB_EXIT_OK;
        dataset_free(&ds);
        if (!rc) print_eval(a, &s, &ev);
    }
    cfg_set_free(&s.cs);
    return rc;
}

CLI_CHECK_TABLE(EVAL_OPTS, N_EVAL_OPTS);
const CliCommand CMD_EVAL = CLI_COMMAND(
    "eval", EvalArgs, report, eval_args, EVAL_OPTS, EVAL_HELP,
    .summary = "evaluate a report's checkpoint again; write its logits", .operands = "REPORT.json",
    .min_operands = 1, .max_operands = 1, .one_more = "one REPORT");
