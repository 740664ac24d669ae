/* Cross-attention between two sequences: queries from one (B, Lq, D), keys and values from another
 * (B, Lk, D), through the fused kernel, with its projections. Used wherever attention goes across
 * lengths: the Perceiver's latents reading the input (arXiv 2103.03206, §2.1), the Funnel
 * Transformer's pooled queries reading the unpooled sequence (arXiv 2006.03236, §2.2), and the
 * mechanisms that attend through a short sequence (Set Transformer's inducing points, Luna's
 * packed sequence). */
#ifndef XB_XATTN_H
#define XB_XATTN_H

#include <stdint.h>

#include "core/arena.h"
#include "core/params.h"

typedef struct XAttn {
    int D, H, Lq, Lk;          /* Lq, Lk: set by xattn_plan */
    int p_wq, p_wkv, p_wo;     /* (D, D), (2D, D), (D, D) */
    int p_bq, p_bkv, p_bo;     /* (D), (2D), (D), or −1 */
    float *q, *kv, *att, *lse; /* saved: (B, Lq, D), (B, Lk, 2D), (B, Lq, D), (B, H, Lq) */
} XAttn;

/* Declares PREFIX.q.weight, PREFIX.kv.weight, PREFIX.out.weight (Xavier-uniform per D×D block)
 * and, with bias, PREFIX.{q,kv,out}.bias (zeros). */
void xattn_create(XAttn *x, ParamTable *pt, const char *prefix, int D, int H, int bias);
/* Carves the saved activations for batch B, Lq queries and Lk keys from acts and measures the
 * scratch in scratch. */
void xattn_plan(XAttn *x, Arena *acts, Arena *scratch, int B, int Lq, int Lk);
/* y (B, Lq, D) = softmax(Q·Kᵀ/√Dh + mask)·V·W_o + b_o with Q = xq·W_qᵀ + b_q,
 * [K V] = xkv·W_kvᵀ + b_kv; kmask (B, Lk) or NULL. Overwrites y. */
void xattn_forward(XAttn *x, float *y, const float *xq, const float *xkv,
                   const unsigned char *kmask, const float *params, const ParamTable *pt, int B,
                   Arena *scratch);
/* dxq += ∂/∂xq, dxkv += ∂/∂xkv, parameter gradients += into grads. */
void xattn_backward(XAttn *x, float *dxq, float *dxkv, const float *dy, const float *xq,
                    const float *xkv, const unsigned char *kmask, const float *params, float *grads,
                    const ParamTable *pt, int B, Arena *scratch);
/* Matrix-product FLOPs of one forward (backward = 0) or backward at these sizes. */
uint64_t xattn_flops(const XAttn *x, int B, int Lq, int Lk, int backward);

#endif
