/* AdamW (Loshchilov & Hutter, arXiv 1711.05101) with decoupled weight decay on the tensors marked
 * for decay, plus global gradient-norm clipping. */
#ifndef XB_ADAMW_H
#define XB_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "core/params.h"

typedef struct AdamW {
    float *m, *v; /* first and second moments, pt->total floats each (owned) */
    size_t n;
    double beta1, beta2, eps, weight_decay;
    int64_t t; /* updates done */
} AdamW;

/* Allocates zeroed moments for n floats; returns 0 or -1 when out of memory. */
int adamw_init(AdamW *o, size_t n, double beta1, double beta2, double eps, double weight_decay);
void adamw_free(AdamW *o);
/* One update: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², p ← p − lr·(m̂/(√v̂ + ε) + λ·p) with λ
 * applied only to tensors whose ParamInfo.decay is set. */
void adamw_step(AdamW *o, const ParamTable *pt, float *params, const float *grads, double lr);

/* L2 norm of g[0..n), summed in a fixed order (the same bits for any thread count). */
double grad_global_norm(const float *g, size_t n);
/* Scales g so that its norm is at most max_norm (max_norm 0 = no clipping); returns the norm
 * before clipping. */
double grad_clip(float *g, size_t n, double max_norm);

#endif
