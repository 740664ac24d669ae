#include "model/xattn.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "kernels/attention.h"
#include "kernels/linear.h"

void xattn_create(XAttn *x, ParamTable *pt, const char *prefix, int D, int H, int Lq, int Lk) {
    memset(x, 0, sizeof *x);
    x->D = D, x->H = H, x->Lq = Lq, x->Lk = Lk;
    char name[XB_PARAM_NAME];
    const float a = sqrtf(6.0f / (float)(2 * D)); /* Xavier per D×D block */
    snprintf(name, sizeof name, "%s.q.weight", prefix);
    x->p_wq = params_add2(pt, name, D, D, INIT_UNIFORM, a, 1);
    snprintf(name, sizeof name, "%s.kv.weight", prefix);
    x->p_wkv = params_add2(pt, name, 2 * D, D, INIT_UNIFORM, a, 1);
    snprintf(name, sizeof name, "%s.out.weight", prefix);
    x->p_wo = params_add2(pt, name, D, D, INIT_XAVIER_UNIFORM, 0, 1);
}

static AttnShape shape_of(const XAttn *x, int B) {
    const int D = x->D;
    return attn_shape(B, x->H, x->Lq, x->Lk, D / x->H, D, 2 * D, 2 * D, D);
}

void xattn_plan(XAttn *x, Arena *acts, Arena *scratch, int B) {
    const size_t D = (size_t)x->D, BQ = (size_t)B * x->Lq, BK = (size_t)B * x->Lk;
    x->q = arena_floats(acts, BQ * D);
    x->kv = arena_floats(acts, BK * 2 * D);
    x->att = arena_floats(acts, BQ * D);
    x->lse = arena_floats(acts, BQ * x->H);
    AttnShape s = shape_of(x, B);
    arena_floats(scratch, BQ * D);     /* d(att) */
    arena_floats(scratch, BQ * D);     /* d(q) */
    arena_floats(scratch, BK * 2 * D); /* d(kv) */
    arena_alloc(scratch, attn_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
}

void xattn_forward(XAttn *x, float *y, const float *xq, const float *xkv, const unsigned char *kmask,
                   const float *params, const ParamTable *pt, int B, Arena *scratch) {
    const int D = x->D;
    linear_forward(x->q, xq, params + pt->info[x->p_wq].offset, NULL, B * x->Lq, D, D);
    linear_forward(x->kv, xkv, params + pt->info[x->p_wkv].offset, NULL, B * x->Lk, D, 2 * D);
    AttnShape s = shape_of(x, B);
    attn_forward(x->att, x->lse, x->q, x->kv, x->kv + D, kmask, &s, scratch);
    linear_forward(y, x->att, params + pt->info[x->p_wo].offset, NULL, B * x->Lq, D, D);
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
    const size_t oq = pt->info[x->p_wq].offset, okv = pt->info[x->p_wkv].offset,
                 oo = pt->info[x->p_wo].offset;
    linear_backward(datt, grads + oo, NULL, dy, x->att, params + oo, BQ, D, D);
    AttnShape s = shape_of(x, B);
    attn_backward(dq, dkv, dkv + D, datt, x->q, x->kv, x->kv + D, x->att, x->lse, kmask, &s, scratch);
    linear_backward(dxq, grads + oq, NULL, dq, xq, params + oq, BQ, D, D);
    linear_backward(dxkv, grads + okv, NULL, dkv, xkv, params + okv, BK, D, 2 * D);
    arena_reset_to(scratch, mark);
}

uint64_t xattn_flops(const XAttn *x, int B, int backward) {
    const uint64_t D = (uint64_t)x->D, BQ = (uint64_t)B * x->Lq, BK = (uint64_t)B * x->Lk;
    const uint64_t proj = 2 * BQ * D * D * 2 + 2 * BK * D * 2 * D;
    AttnShape s = shape_of(x, B);
    return (backward ? 2 * proj : proj) + attn_flops(&s, backward);
}
