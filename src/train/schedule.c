#include "train/schedule.h"

#include <math.h>

double schedule_lr(SchedKind kind, double lr, int64_t warmup, int64_t steps, int64_t step) {
    if (warmup > 0 && step <= warmup) return lr * (double)step / (double)warmup;
    const double span = (double)(steps - warmup);
    const double t = span > 0 ? (double)(step - warmup) / span : 1.0;
    switch (kind) {
    case SCHED_CONSTANT:
        return lr;
    case SCHED_COSINE:
        return lr * 0.5 * (1.0 + cos(M_PI * (t > 1.0 ? 1.0 : t)));
    case SCHED_LINEAR:
        return lr * (t > 1.0 ? 0.0 : 1.0 - t);
    case SCHED_RSQRT:
        return warmup > 0 ? lr * sqrt((double)warmup / (double)step) : lr / sqrt((double)step);
    }
    return lr;
}
