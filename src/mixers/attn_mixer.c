#include "mixers/attn_mixer.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

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
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "%s.%s.weight", prefix, what);
    const int w = params_add2(pt, name, out, in, INIT_UNIFORM, sqrtf(6.0f / (float)(2 * in)), 1);
    *pb = -1;
    if (bias) {
        snprintf(name, sizeof name, "%s.%s.bias", prefix, what);
        *pb = params_add1(pt, name, out, INIT_ZEROS, 0, 0);
    }
    return w;
}

void attn_mixer_create(Mixer *m, ParamTable *pt, AttnMixer *st, int causal, int bias) {
    m->state = st;
    st->causal = causal;
    st->bias = bias;
    char name[XB_PARAM_NAME];
    const int D = m->D;
    /* Xavier-uniform per D×D projection, as LRA initialises separate Q, K and V matrices. */
    const float a = sqrtf(6.0f / (float)(2 * D));
    snprintf(name, sizeof name, "%s.qkv.weight", m->prefix);
    st->p_wqkv = params_add2(pt, name, 3 * D, D, INIT_UNIFORM, a, 1);
    st->p_bqkv = -1;
    if (bias) {
        snprintf(name, sizeof name, "%s.qkv.bias", m->prefix);
        st->p_bqkv = params_add1(pt, name, 3 * D, INIT_ZEROS, 0, 0);
    }
    snprintf(name, sizeof name, "%s.out.weight", m->prefix);
    st->p_wo = params_add2(pt, name, D, D, INIT_XAVIER_UNIFORM, 0, 1);
    st->p_bo = -1;
    if (bias) {
        snprintf(name, sizeof name, "%s.out.bias", m->prefix);
        st->p_bo = params_add1(pt, name, D, INIT_ZEROS, 0, 0);
    }
}

AttnShape attn_mixer_shape(const Mixer *m, int B, int L) {
    const AttnMixer *st = m->state;
    const int D = m->D;
    AttnShape s = attn_shape(B, m->H, L, L, D / m->H, 3 * D, 3 * D, 3 * D, D);
    s.causal = st->causal;
    s.pattern = st->has_pattern ? &st->pattern : NULL;
    return s;
}

void attn_mixer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    AttnMixer *st = m->state;
    const size_t BL = (size_t)B * L;
    st->qkv = arena_floats(acts, BL * 3 * m->D);
    st->att = arena_floats(acts, BL * m->D);
    st->lse = arena_floats(acts, (size_t)B * m->H * L);
    /* backward: d(att) and d(qkv), then the attention kernel's own tiles */
    AttnShape s = attn_mixer_shape(m, B, L);
    arena_floats(scratch, BL * m->D);
    arena_floats(scratch, BL * 3 * m->D);
    arena_alloc(scratch, attn_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
}

void attn_mixer_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    AttnMixer *st = m->state;
    const int D = m->D, BL = s->B * s->L;
    AttnShape sh = attn_mixer_shape(m, s->B, s->L);
    linear_forward(st->qkv, x, mixer_param(s, st->p_wqkv), mixer_param(s, st->p_bqkv), BL, D,
                   3 * D);
    attn_forward(st->att, st->lse, st->qkv, st->qkv + D, st->qkv + 2 * D, s->mask, &sh, s->scratch);
    linear_forward(y, st->att, mixer_param(s, st->p_wo), mixer_param(s, st->p_bo), BL, D, D);
}

void attn_mixer_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy, const float *x) {
    AttnMixer *st = m->state;
    const int D = m->D, BL = s->B * s->L;
    AttnShape sh = attn_mixer_shape(m, s->B, s->L);
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    linear_backward(datt, mixer_grad(s, st->p_wo), mixer_grad(s, st->p_bo), dy, st->att,
                    mixer_param(s, st->p_wo), BL, D, D);
    attn_backward(dqkv, dqkv + D, dqkv + 2 * D, datt, st->qkv, st->qkv + D, st->qkv + 2 * D,
                  st->att, st->lse, s->mask, &sh, s->scratch);
    linear_backward(dx, mixer_grad(s, st->p_wqkv), mixer_grad(s, st->p_bqkv), dqkv, x,
                    mixer_param(s, st->p_wqkv), BL, D, 3 * D);
    arena_reset_to(s->scratch, mark);
}

uint64_t attn_mixer_flops(const Mixer *m, int B, int L, int backward) {
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    AttnShape sh = attn_mixer_shape(m, B, L);
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BL * D * D;
    return (backward ? 2 * proj : proj) + attn_flops(&sh, backward);
}

void attn_mixer_destroy(Mixer *m) { free(m->state); }
