/* Retention without its normalisations (Sun et al., RetNet, arXiv 2307.08621, eq. 5-7): per batch
 * row and head, with a decay γ_h ∈ (0, 1),
 *     O_n += Σ_{m ∈ R(n)} γ^{|n−m|} (q_n·k_m) v_m,
 * R(n) = {m <= n} (causal, the paper's), {m >= n} (anti-causal: what the backward of the causal
 * form needs) or every m (both: an encoder's two-sided decay γ^{|n−m|}, the causal and the
 * anti-causal sums less the diagonal once).
 *
 * Two forms, equal up to rounding:
 *  - chunkwise recurrent (eq. 7; torchscale multiscale_retention.py, chunk_recurrent_forward):
 *    within a chunk of C positions the parallel form (Q Kᵀ ⊙ Γ) V, across chunks a state
 *    S = Σ_m γ^{·} k_mᵀ v_m per direction carried from chunk to chunk; time O(L·C·(dq + dv)
 *    + L·dq·dv), memory O(C² + dq·dv) per work item;
 *  - parallel (eq. 5), streamed over tiles of 128 × 128 so memory stays O(L): time O(L²).
 * Products go through kernels/matmul.h, which counts their FLOPs; OpenMP over (row, head). */
#ifndef XB_RETENTION_H
#define XB_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

enum { RET_CAUSAL, RET_ANTICAUSAL, RET_BOTH };

typedef struct RetShape {
    int B, H, L;
    int dq, dv;             /* widths per head: of q and k; of v and o */
    int ldq, ldk, ldv, ldo; /* row strides of the (B, L, ·) operands */
    int hq, hk, hv, ho;     /* column offset of head h is h·hq (…) in each operand */
    int dir;                /* RET_CAUSAL, RET_ANTICAUSAL or RET_BOTH */
    int chunk;              /* chunkwise form with chunks of this length; 0: the parallel form */
    const float *log_gamma; /* (H): ln γ_h */
} RetShape;

/* o += retention(q, k, v) (see above). Takes retention_scratch_floats(s) floats from scratch and
 * gives them back. */
void retention_forward(float *o, const float *q, const float *k, const float *v, const RetShape *s,
                       Arena *scratch);
size_t retention_scratch_floats(const RetShape *s);
/* FLOPs of one call, as its products count them (2 per multiply-add: Q Kᵀ and the weighted sum
 * over V per chunk or tile pair; the queries against the carried states and the state updates). */
uint64_t retention_flops(const RetShape *s);

#endif
