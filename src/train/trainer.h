/* The training loop: batches from the dataset, forward/backward, clipping, AdamW, periodic
 * validation with a best checkpoint, and a final test evaluation of that checkpoint. */
#ifndef XB_TRAINER_H
#define XB_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "config/config.h"
#include "core/profile.h"
#include "core/error.h"
#include "report/report.h"
#include "tasks/task.h"

typedef struct TrainProgress {
    int64_t step, steps;
    double loss; /* mean training loss over the last log interval */
    double lr;
    double steps_per_s; /* training steps per second so far (evaluation time excluded) */
    double eta_s;       /* estimated seconds left */
    double val_acc;     /* latest validation accuracy, NaN before the first evaluation */
    int is_eval;        /* 1 when called right after an evaluation */
} TrainProgress;

typedef struct TrainHooks {
    void (*progress)(void *ctx, const TrainProgress *p); /* may be NULL */
    void *ctx;
    volatile sig_atomic_t *stop; /* when it becomes nonzero, training stops as "interrupted" */
    int no_eval;     /* benchmarks: no validation, no checkpoint, no test (accuracy stays NaN) */
    int time_warmup; /* steps left out of the median step time (at least 1 when steps > 1) */
    const char *state_path; /* the run's resumable state (train/state.h), saved every
                             * train.checkpoint_every steps and when a signal stops the run;
                             * NULL: none */
    int resume;             /* continue from state_path when it exists */
} TrainHooks;

/* What train_run produced: the run's result as its report takes it (report/report.h). */
typedef RunResult TrainResult;

enum { TRAIN_TIMED_STEPS = 4096 };

/* Trains the model that cfg describes on ds. ckpt_path: where the best validation checkpoint is
 * saved (safetensors) when cfg->checkpoint is set. Returns 0 when the run completed, diverged or
 * was interrupted (see r->status), -1 with err set when it could not run (e.g. out of memory). */
int train_run(const ExperimentConfig *cfg, const Dataset *ds, const char *ckpt_path,
              const TrainHooks *hooks, TrainResult *r, XbError *err);
void train_result_free(TrainResult *r);
/* 0 when cfg's model can train on ds; else -1 with err set (a sequence task whose examples are
 * longer than model.max_len would lose targets to truncation). train_run checks it too. */
int train_check(const ExperimentConfig *cfg, const Dataset *ds, XbError *err);

/* What train_eval_checkpoint measured. */
typedef struct TrainEval {
    double loss, acc, exact; /* as the report's test figures (exact: NaN unless a sequence task) */
    int n;                   /* examples evaluated */
    int classes;
    int positions; /* logits per example: 0 = one row (n, C); else L rows, (n, L, C) */
} TrainEval;

/* Evaluates split sp of ds with the parameters of the checkpoint at ckpt_path exactly as
 * train_run evaluates (cfg's model and batch size, the last batch padded, the parameters of
 * training step `step`, the first max_batches batches, 0 = all). With logits not NULL, *logits
 * receives the head's output of every evaluated example in order, float32 (n, C) or
 * (n, L, C) (malloc'd, owned by the caller). Returns 0, or -1 with err set (a checkpoint that
 * is missing or of another model: the checkpoint's own message). */
int train_eval_checkpoint(const ExperimentConfig *cfg, const Dataset *ds, const Split *sp,
                          const char *ckpt_path, int64_t step, int max_batches, TrainEval *out,
                          float **logits, XbError *err);

#endif
