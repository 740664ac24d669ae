/* RWKV's WKV operator, in the numerically stable form of the authors' CUDA kernel (a running
 * maximum exponent o per state, the sums kept as multiples of e^o).
 *
 * RWKV-4 (Peng et al., arXiv 2305.13048, eq. 14; BlinkDL/RWKV-LM RWKV-v4/cuda/wkv_cuda.cu,
 * kernel_forward), per batch row and channel, with the per-step log-decay w (< 0: RWKV-4 passes
 * w = −exp(time_decay)) and the bonus u:
 *     wkv_t = (Σ_{i<t} e^{(t−1−i)w + k_i} v_i + e^{u + k_t} v_t)
 *           / (Σ_{i<t} e^{(t−1−i)w + k_i}     + e^{u + k_t}).
 * Bi-WKV (Vision-RWKV, Duan et al., arXiv 2403.02308, eq. 5; OpenGVLab/Vision-RWKV
 * classification/mmcls_custom/models/backbones/cuda/wkv_cuda.cu) sums over both sides:
 *     wkv_t = (Σ_{i≠t} e^{(|t−i|−1)w + k_i} v_i + e^{u + k_t} v_t) / (the same with v = 1),
 * computed in O(L) from a prefix state (i < t) and a suffix state (i > t). Vision-RWKV divides its
 * decay and bonus by the number of tokens T: the per-row factor rscale.
 *
 * Masked positions are skipped: they enter no state, the states pass them without decaying (so a
 * row's real positions see exactly the row cut to its real length when the padding is at the
 * end), and their output is 0. Work: OpenMP over (row, blocks of 16 channels). */
#ifndef XB_WKV_H
#define XB_WKV_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

typedef struct WkvShape {
    int B, L, C;
    int bidirectional;         /* 0: RWKV-4 (i < t); 1: Bi-WKV (i ≠ t) */
    const unsigned char *mask; /* (B, L): 1 real, 0 skipped; NULL: all real */
    const float *rscale;       /* (B): factor on w and u per row (Bi-WKV's 1/T), or NULL: 1 */
} WkvShape;

/* y (B, L, C) = WKV of k, v (B, L, C) with w, u (C). Overwrites y. Takes wkv_scratch_floats(s)
 * floats from scratch (the suffix states) and gives them back. */
void wkv_forward(float *y, const float *w, const float *u, const float *k, const float *v,
                 const WkvShape *s, Arena *scratch);
/* Given gy = ∂loss/∂y (B, L, C): dw, du (C) and dk, dv (B, L, C) += the gradients (dw with
 * respect to w as passed, before rscale). Recomputes the states; takes wkv_scratch_floats(s)
 * floats from scratch and gives them back. */
void wkv_backward(float *dw, float *du, float *dk, float *dv, const float *gy, const float *w,
                  const float *u, const float *k, const float *v, const WkvShape *s,
                  Arena *scratch);
size_t wkv_scratch_floats(const WkvShape *s);
/* FLOPs, 2 per multiply-add of the recurrences: 12 per channel and step one-directional (the
 * output's numerator and denominator, the state update), 20 bidirectional; the backward 3 times
 * that (the recomputed states with their derivatives in w, the direct terms, the adjoint scans).
 * The exponentials are not counted, as a softmax's are not. */
uint64_t wkv_flops(const WkvShape *s, int backward);

#endif
