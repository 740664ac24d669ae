/* Cross-attention between two sequences: queries from one (B, Lq, D), keys and values from another
 * (B, Lk, D), through the fused kernel. Used where the model, not the mixer, attends across
 * lengths: the Perceiver's latents reading the input (arXiv 2103.03206, §2.1) and the Funnel
 * Transformer's pooled queries reading the unpooled sequence (arXiv 2006.03236, §2.2). */
#ifndef XB_XATTN_H
#define XB_XATTN_H

#include <stdint.h>

#include "core/arena.h"
#include "model/params.h"

typedef struct XAttn {
    int D, H, Lq, Lk;
    int p_wq, p_wkv, p_wo;     /* (D, D), (2D, D), (D, D) */
    float *q, *kv, *att, *lse; /* saved: (B, Lq, D), (B, Lk, 2D), (B, Lq, D), (B, H, Lq) */
} XAttn;

/* Declares PREFIX.q.weight, PREFIX.kv.weight, PREFIX.out.weight (Xavier-uniform). */
void xattn_create(XAttn *x, ParamTable *pt, const char *prefix, int D, int H, int Lq, int Lk);
/* Carves the saved activations for batch B from acts and measures the scratch in scratch. */
void xattn_plan(XAttn *x, Arena *acts, Arena *scratch, int B);
/* y (B, Lq, D) = softmax(Q·Kᵀ/√Dh + mask)·V·W_o with Q = xq·W_qᵀ, [K V] = xkv·W_kvᵀ; kmask (B, Lk)
 * or NULL. Overwrites y. */
void xattn_forward(XAttn *x, float *y, const float *xq, const float *xkv, const unsigned char *kmask,
                   const float *params, const ParamTable *pt, int B, Arena *scratch);
/* dxq += ∂/∂xq, dxkv += ∂/∂xkv, parameter gradients += into grads. */
void xattn_backward(XAttn *x, float *dxq, float *dxkv, const float *dy, const float *xq,
                    const float *xkv, const unsigned char *kmask, const float *params, float *grads,
                    const ParamTable *pt, int B, Arena *scratch);
/* Matrix-product FLOPs of one forward (backward = 0) or backward. */
uint64_t xattn_flops(const XAttn *x, int B, int backward);

#endif
