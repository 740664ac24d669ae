/* Linear (kernelised) attention: with feature maps φ, O_i = φ(q_i)ᵀS / (φ(q_i)ᵀz + ε) where
 * S = Σ_j φ(k_j) v_jᵀ and z = Σ_j φ(k_j) (Katharopoulos et al., arXiv 2006.16236, eq. 5-6).
 * Shared by the kernel-class mechanisms (linear, performer, rfa); each supplies its own feature
 * map (kernels/features.h). Time and memory O(L·M·Dh) per head. */
#ifndef XB_LINEAR_ATTN_H
#define XB_LINEAR_ATTN_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

typedef struct LinAttnShape {
    int B, H, L, M, Dh; /* batch, heads, length, features, head width */
    int ldv, ldo;       /* row strides of V and O (B, L, ·) layouts; head h at column h·Dh */
    size_t bsv, bso;    /* batch strides of V and O */
    float eps;          /* added to the denominator */
    float min_den;      /* > 0: the denominator is clamped from below to it (features that can be
                         * negative, RFA's sin/cos); the clamp has no gradient */
    float guard;        /* > 0: den += 2·guard where |den| <= guard, the Performer authors' guard
                         * (fast_attention.py, FastAttentionviaLowRankDecomposition); a shift, so
                         * the gradient passes unchanged */
    unsigned char
        *low; /* NULL, or (B, H, L): the rows where the clamp or the guard acted, saved by
               * the forward; when `frozen` the forward reuses the previous set instead
               * of comparing (MixerStep.frozen), so no kink lies within a gradient check */
    int frozen;
} LinAttnShape;

/* o (B, L, ·) = the normalised aggregate; a row whose denominator is exactly 0 (no real key and
 * no eps, clamp or guard) gets o = 0. phq, phk (B, H, L, M): features of queries and keys
 * (padding keys must have zero features). Saves kv (B, H, M, Dh) = S, z (B, H, M) and
 * den (B, H, L) for the backward. Overwrites o's head columns. */
void linattn_forward(float *o, float *kv, float *z, float *den, const float *phq, const float *phk,
                     const float *v, const LinAttnShape *s);
/* dphq, dphk (B, H, L, M) and dv (V's layout) += the gradients, from the forward's saved values.
 * Takes linattn_scratch_floats(s) floats from scratch and gives them back. */
void linattn_backward(float *dphq, float *dphk, float *dv, const float *dout, const float *o,
                      const float *phq, const float *phk, const float *v, const float *kv,
                      const float *z, const float *den, const LinAttnShape *s, Arena *scratch);
size_t linattn_scratch_floats(const LinAttnShape *s);
/* Matrix-product FLOPs (products and matrix-vector sums, 2 per multiply-add). */
uint64_t linattn_flops(const LinAttnShape *s, int backward);

#endif
