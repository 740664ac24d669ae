/* linformer: Linformer (Wang et al., arXiv 2006.04768, §4): keys and values projected along the
 * length by learned E, F ∈ R^{k×n} (n = model.max_len), then softmax attention of the L queries
 * over the k projected keys: O(L·k). Sharing as in §4 ("Additional Efficiency Techniques"):
 * headwise (one E and one F per layer, the default), kv (E = F), layerwise (one projection for
 * every layer, keys and values), or none (per head). Padding keys are zeroed before the projection,
 * so they contribute nothing. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "mixers/attn_mixer.h"

static const char *const SHARING[] = {"headwise", "kv", "layerwise", "none", NULL};
enum { SHARE_HEADWISE, SHARE_KV, SHARE_LAYERWISE, SHARE_NONE, N_SHARING };
MOPT_CHOICES_ARE(SHARING, N_SHARING);

static const OptSpec linformer_opts[] = {
    MOPT_INT("k", 256, 1, 1048576, "projected length (paper: 256; LRA text: 32)"),
    MOPT_ENUM("sharing", 0, SHARING,
              "projection sharing: per layer (headwise), E = F (kv), one for all layers, per head"),
    MOPT_BOOL("bias", 0, "biases in the Q/K/V and output projections"),
};
#define NOPTS MOPT_COUNT(linformer_opts)

typedef struct LinformerState {
    AttnMixer am; /* first: projections, qkv, att, lse */
    int k, n, sharing;
    int p_e, p_f; /* E and F (the same index when shared) */
    float *kvm;   /* (B, L, 2D) saved: keys and values with padding rows zeroed */
    float *kvp;   /* (B, k, 2D) saved: projected keys and values */
} LinformerState;

static void linformer_create(Mixer *m, ParamTable *pt) {
    LinformerState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, 0, opt_bool(m->opts, linformer_opts, NOPTS, "bias"));
    st->k = opt_int(m->opts, linformer_opts, NOPTS, "k");
    st->n = m->max_len;
    st->sharing = opt_enum(m->opts, linformer_opts, NOPTS, "sharing");
    /* N(0, 1/n): E·K keeps the scale of K */
    const float sd = 1.0f / sqrtf((float)st->n);
    const int shape3[3] = {m->H, st->k, st->n};
    switch (st->sharing) {
    case SHARE_LAYERWISE: /* declared by the first layer, found by the others */
        st->p_e = st->p_f = params_find(pt, "blocks.0.mixer.proj.weight");
        if (st->p_e < 0)
            st->p_e = st->p_f =
                params_add2(pt, "blocks.0.mixer.proj.weight", st->k, st->n, INIT_NORMAL, sd, 1);
        break;
    case SHARE_KV:
        st->p_e = st->p_f =
            params_add2f(pt, st->k, st->n, INIT_NORMAL, sd, 1, "%s.proj.weight", m->prefix);
        break;
    case SHARE_HEADWISE:
        st->p_e = params_add2f(pt, st->k, st->n, INIT_NORMAL, sd, 1, "%s.e.weight", m->prefix);
        st->p_f = params_add2f(pt, st->k, st->n, INIT_NORMAL, sd, 1, "%s.f.weight", m->prefix);
        break;
    default:
        st->p_e = params_addf(pt, 3, shape3, INIT_NORMAL, sd, 1, "%s.e.weight", m->prefix);
        st->p_f = params_addf(pt, 3, shape3, INIT_NORMAL, sd, 1, "%s.f.weight", m->prefix);
    }
}

static int linformer_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H;
    return mixer_check_len(opts, linformer_opts, NOPTS, "k", max_len,
                           "%d is longer than model.max_len = %d (valid: 1 to %d: Linformer "
                           "shortens the keys)",
                           err);
}

/* Queries (B, L, ·) against the projected keys and values (B, k, 2D). */
static AttnShape proj_shape(const Mixer *m, int B, int L) {
    const LinformerState *st = m->state;
    const int D = m->D;
    AttnShape s = attn_shape(B, m->H, L, st->k, D / m->H, 3 * D, 2 * D, 2 * D, D);
    s.bsk = s.bsv = (size_t)st->k * 2 * D;
    return s;
}

static void linformer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    LinformerState *st = m->state;
    AttnMixer *am = &st->am;
    const size_t BL = (size_t)B * L;
    am->qkv = arena_floats(acts, BL * 3 * m->D);
    am->att = arena_floats(acts, BL * m->D);
    am->lse = arena_floats(acts, BL * m->H);
    st->kvm = arena_floats(acts, BL * 2 * m->D);
    st->kvp = arena_floats(acts, (size_t)B * st->k * 2 * m->D);
    AttnShape s = proj_shape(m, B, L);
    arena_floats(scratch, BL * m->D);                    /* d(att) */
    arena_floats(scratch, BL * 3 * m->D);                /* d(qkv) */
    arena_floats(scratch, (size_t)B * st->k * 2 * m->D); /* d(kvp) */
    arena_alloc(scratch, attn_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
}

/* The (k, n) projection of head h (E for which = 0, F for 1) inside buffer `base` (params or
 * grads). */
static const float *proj_of(const LinformerState *st, const MixerStep *s, const float *base,
                            int which, int h) {
    const int idx = which ? st->p_f : st->p_e;
    const float *p = base + s->pt->info[idx].offset;
    return st->sharing == SHARE_NONE ? p + (size_t)h * st->k * st->n : p;
}

static void linformer_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    LinformerState *st = m->state;
    AttnMixer *am = &st->am;
    const int D = m->D, H = m->H, Dh = D / H, B = s->B, L = s->L, BL = B * L;
    linear_forward(am->qkv, x, mixer_param(s, am->p_wqkv), mixer_param(s, am->p_bqkv), BL, D,
                   3 * D);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) { /* keys and values, padding rows zeroed */
        const int real = !s->mask || s->mask[r];
        for (int c = 0; c < 2 * D; c++)
            st->kvm[(size_t)r * 2 * D + c] = real ? am->qkv[(size_t)r * 3 * D + D + c] : 0.0f;
    }
    for (int b = 0; b < B; b++) /* K' = E K, V' = F V per head (sgemm threads itself) */
        for (int h = 0; h < H; h++)
            for (int w = 0; w < 2; w++)
                matmul_strided(st->kvp + (size_t)b * st->k * 2 * D + (size_t)w * D + (size_t)h * Dh,
                               2 * D, proj_of(st, s, s->params, w, h), st->n,
                               st->kvm + (size_t)b * L * 2 * D + (size_t)w * D + (size_t)h * Dh,
                               2 * D, st->k, Dh, L, MM_NN, 1.0f, 0.0f);
    AttnShape sh = proj_shape(m, B, L);
    attn_forward(am->att, am->lse, am->qkv, st->kvp, st->kvp + D, NULL, &sh, s->scratch);
    linear_forward(y, am->att, mixer_param(s, am->p_wo), mixer_param(s, am->p_bo), BL, D, D);
}

static void linformer_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                               const float *x) {
    LinformerState *st = m->state;
    AttnMixer *am = &st->am;
    const int D = m->D, H = m->H, Dh = D / H, B = s->B, L = s->L, BL = B * L;
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    float *dkvp = arena_floats(s->scratch, (size_t)B * st->k * 2 * D);
    linear_backward(datt, mixer_grad(s, am->p_wo), mixer_grad(s, am->p_bo), dy, am->att,
                    mixer_param(s, am->p_wo), BL, D, D);
    AttnShape sh = proj_shape(m, B, L);
    attn_backward(dqkv, dkvp, dkvp + D, datt, am->qkv, st->kvp, st->kvp + D, am->att, am->lse, NULL,
                  &sh, s->scratch);
    /* dE += dK' Kmᵀ, dKm = Eᵀ dK' (and F, V alike); (b, h) in order: shared E accumulate */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < 2; w++) {
                const float *dp = dkvp + (size_t)b * st->k * 2 * D + (size_t)w * D + (size_t)h * Dh;
                const float *km = st->kvm + (size_t)b * L * 2 * D + (size_t)w * D + (size_t)h * Dh;
                matmul_backward_strided((float *)proj_of(st, s, s->grads, w, h), st->n,
                                        dqkv + (size_t)b * L * 3 * D + D + (size_t)w * D +
                                            (size_t)h * Dh,
                                        3 * D, dp, 2 * D, proj_of(st, s, s->params, w, h), st->n,
                                        km, 2 * D, st->k, Dh, L, MM_NN, 1.0f);
            }
    if (s->mask) /* padding keys and values took no part */
        for (int r = 0; r < BL; r++)
            if (!s->mask[r]) memset(dqkv + (size_t)r * 3 * D + D, 0, 2 * (size_t)D * sizeof(float));
    linear_backward(dx, mixer_grad(s, am->p_wqkv), mixer_grad(s, am->p_bqkv), dqkv, x,
                    mixer_param(s, am->p_wqkv), BL, D, 3 * D);
    arena_reset_to(s->scratch, mark);
}

static uint64_t linformer_flops(const Mixer *m, int B, int L, int backward) {
    const LinformerState *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    AttnShape sh = proj_shape(m, B, L);
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BL * D * D;
    const uint64_t len = 4ull * (uint64_t)B * st->k * (uint64_t)L * D; /* E K and F V */
    return (backward ? 2 * (proj + len) : proj + len) + attn_flops(&sh, backward);
}

const MixerSpec mixer_linformer = {
    .name = "linformer",
    .classes = "LR",
    .arxiv = "2006.04768",
    .title = "Linformer: keys and values projected along the length to k",
    .honours_mask = 1,
    MIXER_OPTS(linformer_opts),
    .ops = &(const MixerOps){MIXER_OPS(linformer), .check = linformer_check},
};
