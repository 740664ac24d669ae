#include "mixers/xattn.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "kernels/attention.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"

void xattn_create(XAttn *x, ParamTable *pt, const char *prefix, int D, int H, int bias) {
    memset(x, 0, sizeof *x);
    x->D = D, x->H = H;
    x->p_wq = mixer_add_linear(pt, prefix, "q", D, D, bias, &x->p_bq);
    x->p_wkv = mixer_add_linear(pt, prefix, "kv", 2 * D, D, bias, &x->p_bkv);
    x->p_wo = mixer_add_linear(pt, prefix, "out", D, D, bias, &x->p_bo);
}

static AttnShape shape_of(const XAttn *x, int B, int Lq, int Lk) {
    const int D = x->D;
    return attn_shape(B, x->H, Lq, Lk, D / x->H, D, 2 * D, 2 * D, D);
}

void xattn_plan(XAttn *x, Arena *acts, Arena *scratch, int B, int Lq, int Lk) {
    x->Lq = Lq, x->Lk = Lk;
    const size_t D = (size_t)x->D, BQ = (size_t)B * Lq, BK = (size_t)B * Lk;
    x->q = arena_floats(acts, BQ * D);
    x->kv = arena_floats(acts, BK * 2 * D);
    x->att = arena_floats(acts, BQ * D);
    x->lse = arena_floats(acts, BQ * x->H);
    AttnShape s = shape_of(x, B, Lq, Lk);
    const size_t mark = arena_mark(scratch);
    arena_floats(scratch, BQ * D);     /* d(att) */
    arena_floats(scratch, BQ * D);     /* d(q) */
    arena_floats(scratch, BK * 2 * D); /* d(kv) */
    arena_alloc(scratch, attn_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
    arena_reset_to(scratch, mark);
}

static const float *P(const float *params, const ParamTable *pt, int i) {
    return i < 0 ? NULL : params + pt->info[i].offset;
}
static float *G(float *grads, const ParamTable *pt, int i) {
    return i < 0 ? NULL : grads + pt->info[i].offset;
}

void xattn_forward(XAttn *x, float *y, const float *xq, const float *xkv,
                   const unsigned char *kmask, const float *params, const ParamTable *pt, int B,
                   Arena *scratch) {
    const int D = x->D;
    linear_forward(x->q, xq, P(params, pt, x->p_wq), P(params, pt, x->p_bq), B * x->Lq, D, D);
    linear_forward(x->kv, xkv, P(params, pt, x->p_wkv), P(params, pt, x->p_bkv), B * x->Lk, D,
                   2 * D);
    AttnShape s = shape_of(x, B, x->Lq, x->Lk);
    attn_forward(x->att, x->lse, x->q, x->kv, x->kv + D, kmask, &s, scratch);
    linear_forward(y, x->att, P(params, pt, x->p_wo), P(params, pt, x->p_bo), B * x->Lq, D, D);
}

void xattn_backward(XAttn *x, float *dxq, float *dxkv, const float *dy, const float *xq,
                    const float *xkv, const unsigned char *kmask, const float *params, float *grads,
                    const ParamTable *pt, int B, Arena *scratch) {
    const int D = x->D, BQ = B * x->Lq, BK = B * x->Lk;
    const size_t mark = arena_mark(scratch);
    float *datt = arena_floats(scratch, (size_t)BQ * D);
    float *dq = arena_floats(scratch, (size_t)BQ * D);
    float *dkv = arena_floats(scratch, (size_t)BK * 2 * D);
    memset(datt, 0, (size_t)BQ * D * sizeof(float));
    memset(dq, 0, (size_t)BQ * D * sizeof(float));
    memset(dkv, 0, (size_t)BK * 2 * D * sizeof(float));
    linear_backward(datt, G(grads, pt, x->p_wo), G(grads, pt, x->p_bo), dy, x->att,
                    P(params, pt, x->p_wo), BQ, D, D);
    AttnShape s = shape_of(x, B, x->Lq, x->Lk);
    attn_backward(dq, dkv, dkv + D, datt, x->q, x->kv, x->kv + D, x->att, x->lse, kmask, &s,
                  scratch);
    linear_backward(dxq, G(grads, pt, x->p_wq), G(grads, pt, x->p_bq), dq, xq,
                    P(params, pt, x->p_wq), BQ, D, D);
    linear_backward(dxkv, G(grads, pt, x->p_wkv), G(grads, pt, x->p_bkv), dkv, xkv,
                    P(params, pt, x->p_wkv), BK, D, 2 * D);
    arena_reset_to(scratch, mark);
}

uint64_t xattn_flops(const XAttn *x, int B, int Lq, int Lk, int backward) {
    const uint64_t D = (uint64_t)x->D, BQ = (uint64_t)B * Lq, BK = (uint64_t)B * Lk;
    const uint64_t proj = 2 * BQ * D * D * 2 + 2 * BK * D * 2 * D;
    AttnShape s = shape_of(x, B, Lq, Lk);
    return (backward ? 2 * proj : proj) + attn_flops(&s, backward);
}
