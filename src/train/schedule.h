/* Learning-rate schedules: linear warm-up, then constant, cosine, linear or inverse-sqrt decay. */
#ifndef XB_SCHEDULE_H
#define XB_SCHEDULE_H

#include <stdint.h>

#include "config/config.h"

/* Learning rate for training step `step` (1-based) of `steps`: lr·step/warmup during warm-up, then
 * constant: lr; cosine: lr·½(1 + cos(π·t)), t the fraction of the steps after warm-up;
 * linear: lr·(1 − t); rsqrt: lr·sqrt(warmup / step) (LRA's "linear_warmup * rsqrt_decay",
 * normalised so that lr is the peak; with no warm-up, lr/sqrt(step)). */
double schedule_lr(SchedKind kind, double lr, int64_t warmup, int64_t steps, int64_t step);

#endif
