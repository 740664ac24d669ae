#include "mixers/attn_mixer.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/linear.h"

static int block_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h;
    const BlockPattern *bp = s->pattern->ctx;
    const int first = i0 / bp->block * bp->block; /* start of the first row's block */
    const int last = ((i0 + bq - 1) / bp->block + 1) * bp->block; /* end of the last row's block */
    lo[0] = XB_MAX(0, first - bp->memory);
    hi[0] = XB_MIN(s->Lk, last);
    return lo[0] < hi[0];
}

/* Query i sees key j when j is in i's block or in the `memory` positions before it. */
static void block_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk,
                       float *bias, int ld) {
    (void)b, (void)h;
    const BlockPattern *bp = s->pattern->ctx;
    for (int r = 0; r < bq; r++) {
        const int start = (i0 + r) / bp->block * bp->block, end = start + bp->block;
        for (int c = 0; c < bk; c++) {
            const int j = j0 + c;
            bias[(size_t)r * ld + c] = j >= start - bp->memory && j < end ? 0.0f : -INFINITY;
        }
    }
}

AttnPattern attn_block_pattern(const BlockPattern *bp) {
    const int exact = bp->block <= 256; /* tiles are blocks: no mask needed */
    return (AttnPattern){.bq = exact ? bp->block : 128,
                         .max_ranges = 1,
                         .ranges = block_ranges,
                         .mask = exact ? NULL : block_mask,
                         .ctx = bp};
}

int mixer_add_linear(ParamTable *pt, const char *prefix, const char *what, int out, int in,
                     int bias, int *pb) {
    const int w = params_add2f(pt, out, in, INIT_UNIFORM, sqrtf(6.0f / (float)(2 * in)), 1,
                               "%s.%s.weight", prefix, what);
    *pb = -1;
    if (bias) {
        *pb = params_add1f(pt, out, INIT_ZEROS, 0, 0, "%s.%s.bias", prefix, what);
    }
    return w;
}

void attn_mixer_create(Mixer *m, ParamTable *pt, AttnMixer *st, int causal, int bias) {
    m->state = st;
    st->causal = causal;
    st->bias = bias;
    const int D = m->D;
    /* Xavier-uniform per D×D projection, as LRA initialises separate Q, K and V matrices. */
    const float a = sqrtf(6.0f / (float)(2 * D));
    st->p_wqkv = params_add2f(pt, 3 * D, D, INIT_UNIFORM, a, 1, "%s.qkv.weight", m->prefix);
    st->p_bqkv = -1;
    if (bias) {
        st->p_bqkv = params_add1f(pt, 3 * D, INIT_ZEROS, 0, 0, "%s.qkv.bias", m->prefix);
    }
    st->p_wo = params_add2f(pt, D, D, INIT_XAVIER_UNIFORM, 0, 1, "%s.out.weight", m->prefix);
    st->p_bo = -1;
    if (bias) {
        st->p_bo = params_add1f(pt, D, INIT_ZEROS, 0, 0, "%s.out.bias", m->prefix);
    }
}

AttnShape attn_mixer_shape(const Mixer *m, int B, int L) {
    const AttnMixer *st = m->state;
    const int D = m->D;
    XB_ASSERT(m->ctx == 0 || !st->has_pattern);
    /* the queries are the last L − ctx rows of the packed projections; the outputs compact */
    AttnShape s = attn_shape(B, m->H, L - m->ctx, L, D / m->H, 3 * D, 3 * D, 3 * D, D);
    s.bsq = (size_t)L * 3 * D;
    s.causal = st->causal;
    s.pattern = st->has_pattern ? &st->pattern : NULL;
    return s;
}

/* Rows [ctx, L) of every batch row of y (B, L, D) ↔ the compact (B, L − ctx, D): to_y = 1 copies
 * compact → y, 0 copies y → compact. */
static void query_rows(float *y, float *compact, int B, int L, int ctx, int D, int to_y) {
    const int Lq = L - ctx;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *a = y + ((size_t)b * L + ctx) * D, *c = compact + (size_t)b * Lq * D;
        if (to_y)
            memcpy(a, c, (size_t)Lq * D * sizeof(float));
        else
            memcpy(c, a, (size_t)Lq * D * sizeof(float));
    }
}

float *attn_mixer_project_out(const Mixer *m, const MixerStep *s, float *y, const float *att,
                              int p_wo, int p_bo) {
    const int D = m->D, Lq = s->L - m->ctx, BQ = s->B * Lq;
    if (m->ctx == 0) {
        linear_forward(y, att, mixer_param(s, p_wo), mixer_param(s, p_bo), BQ, D, D);
        return y;
    }
    float *yq = arena_floats(s->scratch, (size_t)BQ * D);
    linear_forward(yq, att, mixer_param(s, p_wo), mixer_param(s, p_bo), BQ, D, D);
    query_rows(y, yq, s->B, s->L, m->ctx, D, 1);
    return y;
}

void attn_mixer_project_out_backward(const Mixer *m, const MixerStep *s, float *datt,
                                     const float *dy, const float *att, int p_wo, int p_bo) {
    const int D = m->D, Lq = s->L - m->ctx, BQ = s->B * Lq;
    const float *dyq = dy;
    if (m->ctx > 0) {
        float *c = arena_floats(s->scratch, (size_t)BQ * D);
        query_rows((float *)dy, c, s->B, s->L, m->ctx, D, 0);
        dyq = c;
    }
    linear_backward(datt, mixer_grad(s, p_wo), mixer_grad(s, p_bo), dyq, att, mixer_param(s, p_wo),
                    BQ, D, D);
}

void attn_mixer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    AttnMixer *st = m->state;
    const size_t BL = (size_t)B * L, BQ = (size_t)B * (L - m->ctx);
    st->qkv = arena_floats(acts, BL * 3 * m->D);
    st->att = arena_floats(acts, BQ * m->D);
    st->lse = arena_floats(acts, BQ * m->H);
    /* forward: the compact output rows (ctx > 0); backward: d(att), d(qkv), compact dy rows, then
     * the attention kernel's own tiles */
    AttnShape s = attn_mixer_shape(m, B, L);
    arena_floats(scratch, BQ * m->D);
    arena_floats(scratch, BL * 3 * m->D);
    if (m->ctx > 0) arena_floats(scratch, BQ * m->D);
    arena_alloc(scratch, attn_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
}

void attn_mixer_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    AttnMixer *st = m->state;
    const int D = m->D, BL = s->B * s->L;
    AttnShape sh = attn_mixer_shape(m, s->B, s->L);
    /* Q, K, V of every row, as Transformer-XL's code projects [memory; segment] in one product */
    linear_forward(st->qkv, x, mixer_param(s, st->p_wqkv), mixer_param(s, st->p_bqkv), BL, D,
                   3 * D);
    const float *q = st->qkv + (size_t)m->ctx * 3 * D;
    attn_forward(st->att, st->lse, q, st->qkv + D, st->qkv + 2 * D, s->mask, &sh, s->scratch);
    const size_t mark = arena_mark(s->scratch);
    attn_mixer_project_out(m, s, y, st->att, st->p_wo, st->p_bo);
    arena_reset_to(s->scratch, mark);
}

void attn_mixer_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy, const float *x) {
    AttnMixer *st = m->state;
    const int D = m->D, BL = s->B * s->L;
    AttnShape sh = attn_mixer_shape(m, s->B, s->L);
    const size_t mark = arena_mark(s->scratch), BQ = (size_t)s->B * (s->L - m->ctx);
    float *datt = arena_floats(s->scratch, BQ * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    attn_mixer_project_out_backward(m, s, datt, dy, st->att, st->p_wo, st->p_bo);
    const size_t q0 = (size_t)m->ctx * 3 * D; /* the context rows' dq stays 0 */
    attn_backward(dqkv + q0, dqkv + D, dqkv + 2 * D, datt, st->qkv + q0, st->qkv + D,
                  st->qkv + 2 * D, st->att, st->lse, s->mask, &sh, s->scratch);
    linear_backward(dx, mixer_grad(s, st->p_wqkv), mixer_grad(s, st->p_bqkv), dqkv, x,
                    mixer_param(s, st->p_wqkv), BL, D, 3 * D);
    arena_reset_to(s->scratch, mark);
}

uint64_t attn_mixer_flops(const Mixer *m, int B, int L, int backward) {
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    const uint64_t BQ = (uint64_t)B * (uint64_t)(L - m->ctx);
    AttnShape sh = attn_mixer_shape(m, B, L);
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BQ * D * D;
    return (backward ? 2 * proj : proj) + attn_flops(&sh, backward);
}

void attn_mixer_destroy(Mixer *m) { free(m->state); }
