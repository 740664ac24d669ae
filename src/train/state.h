/* A run's resumable state: everything that decides the rest of a run, so that a run stopped at any
 * step (a scheduler's preemption: SIGTERM, or a kill) and resumed from its last state ends with the
 * report of the run that was never stopped (outside `measured`). One file, written atomically:
 *   "XBSTATE1" | u64 header length | JSON header | float32 arrays: parameters (buffers included),
 *   AdamW's m and v, the best validation parameters | int32 sampler permutation | u64 FNV-1a 64 of
 *   every byte before it.
 * The header holds the scalars (step, AdamW's t, the sampler's position and PCG state, the best
 * step and accuracy, the training-loss accumulators, counted FLOPs) and the evaluation history,
 * with the config hash, the dataset checksum and the sizes that a state must match to be resumed.
 */
#ifndef XB_STATE_H
#define XB_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "report/report.h"

typedef struct TrainState {
    uint64_t config_hash;   /* of the run that wrote it (cfg_hash) */
    uint64_t data_checksum; /* of its dataset */
    int64_t step;           /* training steps done */
    int64_t adam_t;         /* AdamW's update count */
    uint64_t rng_state, rng_inc;
    int sampler_pos, sampler_n;
    int64_t best_step;
    double best_val_acc;
    double loss_sum; /* the training loss since the last evaluation: sum and count */
    int64_t loss_n;
    uint64_t flops_total, flops_step_counted; /* counted so far; of step 1 */
    int n_evals;
    EvalRecord *evals; /* n_evals (state_load: room for max_evals, the caller's) */
    size_t n_params;   /* floats in each of params, m, v, best */
    float *params, *m, *v, *best;
    int *perm; /* sampler_n */
} TrainState;

/* Writes s to path atomically. Returns 0 or -1 with err set. */
int state_save(const char *path, const TrainState *s, XbError *err);
/* Reads path into s, whose arrays (n_params floats each, sampler_n ints, max_evals records) the
 * caller has allocated and whose config_hash, data_checksum, n_params and sampler_n say what the
 * state must match: a truncated or damaged file, or a state of another config, dataset or model,
 * is an error naming the file and what differs (code XB_EXIT_USAGE). Returns 0 or -1. */
int state_load(const char *path, TrainState *s, int max_evals, XbError *err);

#endif
