/* Fused dense attention: softmax(scale·Q·Kᵀ + mask)·V streamed over key tiles with an online
 * softmax, so the L×L matrix is never stored (the backward recomputes tiles). Shared by every
 * mechanism that ends in (rectangular) dense attention. */
#ifndef XB_ATTENTION_H
#define XB_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

typedef struct AttnPattern AttnPattern;
typedef struct AttnBias AttnBias;

/* Where the heads live. Q row i of batch b, head h starts at q + b·bsq + i·ldq + h·Dh (likewise
 * K, V with bsk/ldk and bsv/ldv over Lk rows, and the output O with bso/ldo over Lq rows), so
 * packed (B, L, 3, H, Dh) projections are used in place. */
typedef struct AttnShape {
    int B, H, Lq, Lk, Dh;       /* Dh: width of a query/key head */
    int Dv;                     /* width of a value/output head (attn_shape sets Dh; values and
                                 * outputs of head h start at h·Dv) */
    size_t bsq, bsk, bsv, bso;  /* batch strides (floats) */
    int ldq, ldk, ldv, ldo;     /* row strides (floats) */
    float scale;                /* usually 1/sqrt(Dh) */
    int causal;                 /* 1: query i sees keys j <= i + (Lk - Lq) */
    const AttnPattern *pattern; /* NULL: dense (every key, subject to mask and causality) */
    const AttnBias *bias;       /* NULL, or a content-dependent additive bias on the scores */
} AttnShape;

/* An additive score bias that depends on the data (Transformer-XL's relative-position term
 * (q_i + v)·R_{i−j}): computed per tile in the forward and the recomputing backward, with its
 * gradient handed back per tile. The backward visits one (b, h) per thread, so a callback may
 * accumulate into buffers private to (b, h) without races. */
struct AttnBias {
    /* out[r·ld + c] = the bias of query i0 + r and key j0 + c of (b, h) (overwrite). work holds
     * work_floats floats private to the calling thread. */
    void (*tile)(const struct AttnShape *s, int b, int h, int i0, int bq, int j0, int bk,
                 float *out, int ld, float *work);
    /* dbias[r·ld + c] = ∂loss/∂bias of that pair: accumulate the bias's own gradients. */
    void (*tile_backward)(const struct AttnShape *s, int b, int h, int i0, int bq, int j0, int bk,
                          const float *dbias, int ld, float *work);
    /* Matrix-product FLOPs of one tile's forward (backward = 0) or backward (including its
     * recomputation), for attn_flops: the kernels do not add them, the callbacks' products
     * count themselves (kernels/matmul), so the counted and the analytic totals check each
     * other. */
    uint64_t (*tile_flops)(const struct AttnShape *s, int bq, int bk, int backward);
    size_t work_floats;
    const void *ctx;
};

/* A sparsity pattern (block-sparse attention): which keys each tile of queries visits, and which
 * pairs inside a visited tile are allowed. Local windows, strided/fixed patterns, global tokens and
 * random blocks are patterns; learnable patterns become patterns after their tokens are sorted. */
struct AttnPattern {
    int bq;         /* query rows per tile (the pattern's block size); 0 = the kernel's default */
    int max_ranges; /* most key ranges one query tile can have */
    /* The key ranges [lo[r], hi[r]) that query rows [i0, i0 + bq) of (b, h) visit: ascending,
     * disjoint, a superset of the allowed keys. Returns their count (<= max_ranges). */
    int (*ranges)(const struct AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi);
    /* Additive mask of a visited tile: bias[r·ld + c] = 0 when query i0 + r may see key j0 + c,
     * −inf otherwise. NULL: every key of the ranges is allowed. */
    void (*mask)(const struct AttnShape *s, int b, int h, int i0, int bq, int j0, int bk,
                 float *bias, int ld);
    const void *ctx; /* the mechanism's own data; the callbacks get the shape (Lq, Lk, ...) */
};

/* Shape for the common case: Q, K, V and O as (B, L, H·Dh) slices with row stride ld. */
AttnShape attn_shape(int B, int H, int Lq, int Lk, int Dh, int ldq, int ldk, int ldv, int ldo);

/* Floats of scratch that attn_forward / attn_backward take from the arena at most (for planning).
 */
size_t attn_scratch_floats(const AttnShape *s, int nthreads);

/* O = softmax(scale·QKᵀ + mask)·V per (b, h) (Vaswani et al., arXiv 1706.03762, eq. 1), computed
 * as FlashAttention (Dao et al., arXiv 2205.14135, Alg. 1) on CPU tiles; lse (B, H, Lq) receives
 * each row's log-sum-exp for the backward (-inf for a row with no visible key, whose output is 0).
 * kmask (B, Lk): 1 = key visible, 0 = padding; NULL = all visible. Scratch is taken from `scratch`
 * and released before returning. Overwrites o. */
void attn_forward(float *o, float *lse, const float *q, const float *k, const float *v,
                  const unsigned char *kmask, const AttnShape *s, Arena *scratch);

/* Gradients of attn_forward (FlashAttention Alg. 2, tiles recomputed from lse): with P the softmax,
 * dV += Pᵀ·dO, dS = P∘(dO·Vᵀ − rowsum(dO∘O)), dQ += scale·dS·K, dK += scale·dSᵀ·Q. dq/dk/dv use
 * the same layout as q/k/v and are accumulated into. */
void attn_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                   const float *k, const float *v, const float *o, const float *lse,
                   const unsigned char *kmask, const AttnShape *s, Arena *scratch);

/* The same with a gradient dlse (B, H, Lq) arriving at the saved log-sum-exp too (mechanisms that
 * weight several attentions by their normalisers, e.g. Reformer's hash rounds): dS gains P·dlse.
 * dlse NULL is attn_backward. */
void attn_backward_lse(float *dq, float *dk, float *dv, const float *dout, const float *dlse,
                       const float *q, const float *k, const float *v, const float *o,
                       const float *lse, const unsigned char *kmask, const AttnShape *s,
                       Arena *scratch);

/* Matrix-product FLOPs that attn_forward (backward = 0) or attn_backward (1) performs:
 * 2·bq·bk·(Dh + Dv) per visited tile forward, 2·bq·bk·(3·Dh + 2·Dv) backward (the score tile is
 * recomputed). The kernels count
 * the tiles they actually compute; a test keeps the two equal. */
uint64_t attn_flops(const AttnShape *s, int backward);

/* Reference: the same attention with the full score matrix materialised, the pattern applied
 * through its mask alone (tests only, slow). */
void attn_forward_naive(float *o, float *lse, const float *q, const float *k, const float *v,
                        const unsigned char *kmask, const AttnShape *s);

#endif
