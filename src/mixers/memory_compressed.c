/* memory_compressed: memory-compressed attention (Liu et al., arXiv 1801.10198, §3.2.2): keys
 * and values are shortened by a strided convolution with kernel = stride = c (learned, mixing
 * channels), then every query attends to the L/c compressed positions: O(L²/c). A compressed key
 * is padding when all c positions it summarises are; padding rows are zeroed before the
 * convolution, and a short last group is padded with zeros. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"

static const OptSpec mc_opts[] = {
    MOPT_INT("compression", 3, 1, 4096,
             "kernel size and stride c of the key/value convolution (paper: 3)"),
    MOPT_BOOL("bias", 0, "biases in the projections and the convolutions"),
};
#define NOPTS MOPT_COUNT(mc_opts)

typedef struct McState {
    AttnMixer am; /* first: projections, qkv, att, lse */
    int c;
    int p_ck, p_cv, p_bk, p_bv; /* convolutions (D, c·D) and their biases */
    int Lc;                     /* compressed length of the planned L */
    float *km, *vm;             /* (B, Lc·c, D) saved: keys/values, padding zeroed, tail padded */
    float *kc, *vc;             /* (B, Lc, D) saved: compressed */
    unsigned char *cmask;       /* (B, Lc) */
} McState;

static void mc_create(Mixer *m, ParamTable *pt) {
    McState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    const int bias = opt_bool(m->opts, mc_opts, NOPTS, "bias");
    attn_mixer_create(m, pt, &st->am, 0, bias);
    st->c = opt_int(m->opts, mc_opts, NOPTS, "compression");
    st->p_ck = params_add2f(pt, m->D, st->c * m->D, INIT_XAVIER_UNIFORM, 0, 1, "%s.conv_k.weight",
                            m->prefix);
    st->p_cv = params_add2f(pt, m->D, st->c * m->D, INIT_XAVIER_UNIFORM, 0, 1, "%s.conv_v.weight",
                            m->prefix);
    st->p_bk = st->p_bv = -1;
    if (bias) {
        st->p_bk = params_add1f(pt, m->D, INIT_ZEROS, 0, 0, "%s.conv_k.bias", m->prefix);
        st->p_bv = params_add1f(pt, m->D, INIT_ZEROS, 0, 0, "%s.conv_v.bias", m->prefix);
    }
}

static AttnShape mc_shape(const Mixer *m, int B, int L) {
    const McState *st = m->state;
    const int D = m->D, Lc = (L + st->c - 1) / st->c;
    AttnShape s = attn_shape(B, m->H, L, Lc, D / m->H, 3 * D, D, D, D);
    s.bsq = (size_t)L * 3 * D;
    return s;
}

static void mc_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    McState *st = m->state;
    AttnMixer *am = &st->am;
    const size_t BL = (size_t)B * L;
    st->Lc = (L + st->c - 1) / st->c;
    const size_t BP = (size_t)B * st->Lc * st->c, BC = (size_t)B * st->Lc;
    am->qkv = arena_floats(acts, BL * 3 * m->D);
    am->att = arena_floats(acts, BL * m->D);
    am->lse = arena_floats(acts, BL * m->H);
    st->km = arena_floats(acts, BP * m->D);
    st->vm = arena_floats(acts, BP * m->D);
    st->kc = arena_floats(acts, BC * m->D);
    st->vc = arena_floats(acts, BC * m->D);
    st->cmask = arena_alloc(acts, BC);
    AttnShape s = mc_shape(m, B, L);
    arena_floats(scratch, BL * m->D);     /* d(att) */
    arena_floats(scratch, BL * 3 * m->D); /* d(qkv) */
    arena_floats(scratch, BC * m->D);     /* d(kc) */
    arena_floats(scratch, BC * m->D);     /* d(vc) */
    arena_floats(scratch, BP * m->D);     /* d(km), then d(vm) */
    arena_alloc(scratch, attn_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
}

static void mc_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    McState *st = m->state;
    AttnMixer *am = &st->am;
    const int D = m->D, B = s->B, L = s->L, BL = B * L, c = st->c, Lc = (L + c - 1) / c;
    const int P = Lc * c;
    linear_forward(am->qkv, x, mixer_param(s, am->p_wqkv), mixer_param(s, am->p_bqkv), BL, D,
                   3 * D);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < P; t++) {
            const int real = t < L && (!s->mask || s->mask[(size_t)b * L + t]);
            const float *src = am->qkv + ((size_t)b * L + t) * 3 * D;
            float *kr = st->km + ((size_t)b * P + t) * D, *vr = st->vm + ((size_t)b * P + t) * D;
            for (int d = 0; d < D; d++) {
                kr[d] = real ? src[D + d] : 0.0f;
                vr[d] = real ? src[2 * D + d] : 0.0f;
            }
        }
    for (int b = 0; b < B; b++)
        for (int g = 0; g < Lc; g++) {
            int any = 0;
            for (int t = g * c; t < XB_MIN(L, (g + 1) * c); t++)
                any |= !s->mask || s->mask[(size_t)b * L + t];
            st->cmask[(size_t)b * Lc + g] = (unsigned char)any;
        }
    /* the strided convolution: each group of c rows, flattened, through a (D, c·D) map */
    linear_forward(st->kc, st->km, mixer_param(s, st->p_ck), mixer_param(s, st->p_bk), B * Lc,
                   c * D, D);
    linear_forward(st->vc, st->vm, mixer_param(s, st->p_cv), mixer_param(s, st->p_bv), B * Lc,
                   c * D, D);
    AttnShape sh = mc_shape(m, B, L);
    attn_forward(am->att, am->lse, am->qkv, st->kc, st->vc, st->cmask, &sh, s->scratch);
    linear_forward(y, am->att, mixer_param(s, am->p_wo), mixer_param(s, am->p_bo), BL, D, D);
}

static void mc_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy, const float *x) {
    McState *st = m->state;
    AttnMixer *am = &st->am;
    const int D = m->D, B = s->B, L = s->L, BL = B * L, c = st->c, Lc = (L + c - 1) / c;
    const int P = Lc * c;
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    float *dkc = arena_floats(s->scratch, (size_t)B * Lc * D);
    float *dvc = arena_floats(s->scratch, (size_t)B * Lc * D);
    float *dm = arena_floats(s->scratch, (size_t)B * P * D);
    linear_backward(datt, mixer_grad(s, am->p_wo), mixer_grad(s, am->p_bo), dy, am->att,
                    mixer_param(s, am->p_wo), BL, D, D);
    AttnShape sh = mc_shape(m, B, L);
    attn_backward(dqkv, dkc, dvc, datt, am->qkv, st->kc, st->vc, am->att, am->lse, st->cmask, &sh,
                  s->scratch);
    for (int w = 0; w < 2; w++) { /* keys, then values: back through the convolution */
        memset(dm, 0, (size_t)B * P * D * sizeof *dm);
        linear_backward(dm, mixer_grad(s, w ? st->p_cv : st->p_ck),
                        mixer_grad(s, w ? st->p_bv : st->p_bk), w ? dvc : dkc, w ? st->vm : st->km,
                        mixer_param(s, w ? st->p_cv : st->p_ck), B * Lc, c * D, D);
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++) {
                if (s->mask && !s->mask[(size_t)b * L + t]) continue;
                const float *g = dm + ((size_t)b * P + t) * D;
                float *o = dqkv + ((size_t)b * L + t) * 3 * D + (size_t)(1 + w) * D;
                for (int d = 0; d < D; d++) o[d] += g[d];
            }
    }
    linear_backward(dx, mixer_grad(s, am->p_wqkv), mixer_grad(s, am->p_bqkv), dqkv, x,
                    mixer_param(s, am->p_wqkv), BL, D, 3 * D);
    arena_reset_to(s->scratch, mark);
}

static uint64_t mc_flops(const Mixer *m, int B, int L, int backward) {
    const McState *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    const uint64_t Lc = (uint64_t)((L + st->c - 1) / st->c);
    AttnShape sh = mc_shape(m, B, L);
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BL * D * D;
    const uint64_t conv = 2 * (2 * (uint64_t)B * Lc * (uint64_t)st->c * D * D);
    return (backward ? 2 * (proj + conv) : proj + conv) + attn_flops(&sh, backward);
}

const MixerSpec mixer_memory_compressed = {
    .name = "memory_compressed",
    .classes = "FP+M",
    .arxiv = "1801.10198",
    .title = "memory-compressed attention: keys/values shortened by a strided convolution",
    .honours_mask = 1,
    MIXER_OPTS(mc_opts),
    .ops = &(const MixerOps){MIXER_OPS(mc)},
};
