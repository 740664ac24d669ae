/* Linear (kernelised) attention: with feature maps φ, O_i = φ(q_i)ᵀS / (φ(q_i)ᵀz + ε) where
 * S = Σ_j φ(k_j) v_jᵀ and z = Σ_j φ(k_j) (Katharopoulos et al., arXiv 2006.16236, eq. 5-6), or
 * the causal form with the sums over j <= i (eq. 8-9; LinAttnShape.causal).
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
    int causal; /* 1: the causal (decoder) form, on the fused path only: query i sees keys
                 * j <= i, O_i = φ(q_i)ᵀS_i / (φ(q_i)ᵀz_i + ε) with S_i = Σ_{j<=i} φ(k_j)v_jᵀ
                 * and z_i = Σ_{j<=i} φ(k_j) (arXiv 2006.16236, eq. 8-9, §3.3), the
                 * denominator's eps, clamp, guard and `low` as in the bidirectional form.
                 * Padding keys (zero features) add nothing to the prefix sums; a padding
                 * query's output is whatever its sums give, as in the other form */
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

/* ---- The fused path: the feature map inside the kernel, row chunk by row chunk. ----
 * Per head, the keys' features are made a chunk of rows at a time and folded into S and z while
 * the chunk is in cache, then the queries' chunks are made and turned into outputs; the backward
 * visits the chunks the same way. φ(Q) and φ(K) are stored for the backward (B, H, L, M) as in the
 * unfused path, but nothing else of size L·M is: no projections beside them, no dφ. */
enum { LINATTN_CHUNK = 128 }; /* rows of a chunk */

/* The feature map, called by one thread per head (b, h) for chunks of rows [l0, l0 + n) in order.
 * Keys first: with key_passes 2 the map is called on every key chunk with pass 0 (it may gather a
 * statistic over the head's keys, e.g. a maximum, and leave anything in phi) and then on every key
 * chunk with pass 1; otherwise with pass 1 only. Pass 1 leaves φ in phi (n × M, row stride M); the
 * kernel then zeroes the rows of padding keys. Queries: pass 1 once per chunk. The causal form
 * (LinAttnShape.causal) calls the map in the same order. */
typedef struct LinAttnMap {
    int key_passes;
    size_t work_floats; /* per thread, for chunks of up to LINATTN_CHUNK rows */
    void (*map)(const struct LinAttnMap *mp, int b, int h, int l0, int n, int is_key, int pass,
                float *phi, float *work);
    /* The map's backward on a chunk: dx += ∂/∂x from dphi (n × M, row stride ld: the gradient of
     * φ, zero on padding keys; the map may overwrite it) and phi (the forward's φ). Queries: the
     * chunks in order, then end(is_key = 0); then the keys likewise, except that the causal form
     * visits the key chunks in reverse order (suffix sums). end may be NULL. */
    void (*backward)(const struct LinAttnMap *mp, int b, int h, int l0, int n, int is_key,
                     float *dphi, int ld, const float *phi, float *work);
    void (*end)(const struct LinAttnMap *mp, int b, int h, int is_key, float *work);
    const void *ctx;
} LinAttnMap;

/* The forward of linattn_forward with the map inside: phq, phk (B, H, L, M) receive φ(Q), φ(K)
 * (zero rows for padding keys: kmask (B, L), 1 real, NULL all real). Saves kv, z, den (and low) as
 * linattn_forward does (kv, z: the sums over all keys in the causal form too). With s->causal, the
 * causal form by chunks of LINATTN_CHUNK rows: the masked chunk product plus the earlier chunks'
 * sums, O(L·LINATTN_CHUNK·(M + Dh)) a head beside the O(L·M·Dh) of the sums. */
void linattn_fused_forward(float *o, float *kv, float *z, float *den, float *phq, float *phk,
                           const float *v, const unsigned char *kmask, const LinAttnShape *s,
                           const LinAttnMap *mp, Arena *scratch);
/* The backward of the fused forward: dv += ∂/∂V, and the map's backward for every chunk (dx is
 * the map's business). Takes linattn_fused_scratch_floats(s, mp) floats from scratch. */
void linattn_fused_backward(float *dv, const float *dout, const float *o, const float *phq,
                            const float *phk, const float *v, const float *kv, const float *z,
                            const float *den, const unsigned char *kmask, const LinAttnShape *s,
                            const LinAttnMap *mp, Arena *scratch);
size_t linattn_fused_scratch_floats(const LinAttnShape *s, const LinAttnMap *mp);
/* Matrix-product FLOPs (products and matrix-vector sums, 2 per multiply-add), of either form. */
uint64_t linattn_flops(const LinAttnShape *s, int backward);

#endif
