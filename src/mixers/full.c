/* full: softmax attention (Vaswani et al., arXiv 1706.03762), the reference every efficient
 * mechanism is measured against. Packed QKV projection, fused streaming attention (no L×L
 * matrix is stored), output projection.
 *
 * relative: Transformer-XL's relative-position attention (Dai et al., arXiv 1901.02860, §3.3):
 * score_ij = (q_i + u)·k_j + (q_i + v)·W_R r_{i−j}, with r sinusoidal in the signed distance i − j
 * (both directions, for an encoder) and u, v learned per head; the second term is a data-dependent
 * bias the fused kernel computes per tile from the tile's band of distances (the "relative shift"
 * done as one small matrix product per tile), so nothing L×L is stored. With model.segment this is
 * the Transformer-XL layer: the distances are those inside each [memory; segment] window. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "mixers/attn_mixer.h"

static const OptSpec full_opts[] = {
    {.name = "causal",
     .type = OPT_BOOL,
     .def = 0,
     .help = "hide later keys from each query (decoder-style); LRA's encoders are bidirectional"},
    {.name = "bias",
     .type = OPT_BOOL,
     .def = 0,
     .help = "biases in the Q/K/V and output projections (LRA: none)"},
    {.name = "relative",
     .type = OPT_BOOL,
     .def = 0,
     .help = "Transformer-XL relative positions: (q+u)·k + (q+v)·W_R r(i-j)"},
};
#define NOPTS ((int)XB_ARRAY_LEN(full_opts))

/* The kernel's tile sizes bound a tile's band of distances. */
enum { TILE_Q = 128, TILE_K = 256 };

typedef struct FullState {
    AttnMixer am; /* first: projections, qkv, att, lse */
    int relative;
    int p_wr, p_u, p_v; /* W_R (D, D), u and v (H, Dh) */
    AttnBias bias;
    int L, nd;       /* planned length; distances 2L − 1 */
    int ctx;         /* Mixer.ctx: queries are the rows after it */
    float *qu, *qv;  /* (B, L, D) saved: q + u, q + v */
    float *r, *R;    /* (nd, D): sinusoids of the distances, and R = r·W_Rᵀ */
    float *dqv, *dR; /* backward: (B, L, D); (B·H, nd, Dh) per (b, h), summed after */
} FullState;

/* The band of distances of a tile: distance index of (i0 + r, j0 + c) is d0 + r − c + bk − 1.
 * Query row i is position i + Lk − Lq (the queries are the last Lq positions). */
static int band_start(const AttnShape *s, int i0, int j0, int bk) {
    return i0 + (s->Lk - s->Lq) - (j0 + bk - 1) + (s->Lk - 1);
}

static void rel_tile(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk, float *out,
                     int ld, float *work) {
    const FullState *st = s->bias->ctx;
    const int D = s->H * s->Dh, Dh = s->Dh, nt = bq + bk - 1;
    const float *qv = st->qv + ((size_t)b * st->L + st->ctx + i0) * D + (size_t)h * Dh;
    const float *R = st->R + (size_t)band_start(s, i0, j0, bk) * D + (size_t)h * Dh;
    matmul_strided(work, nt, qv, D, R, D, bq, nt, Dh, MM_NT, s->scale, 0.0f);
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++)
            out[(size_t)r * ld + c] = work[(size_t)r * nt + r - c + bk - 1];
}

static void rel_tile_backward(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk,
                              const float *dbias, int ld, float *work) {
    const FullState *st = s->bias->ctx;
    const int D = s->H * s->Dh, Dh = s->Dh, nt = bq + bk - 1, d0 = band_start(s, i0, j0, bk);
    memset(work, 0, (size_t)bq * nt * sizeof(float));
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++)
            work[(size_t)r * nt + r - c + bk - 1] = s->scale * dbias[(size_t)r * ld + c];
    const size_t row = ((size_t)b * st->L + st->ctx + i0) * D + (size_t)h * Dh;
    /* d(q + v) += dG·R_band; dR_band(b, h) += dGᵀ·(q + v) */
    matmul_strided(st->dqv + row, D, work, nt, st->R + (size_t)d0 * D + (size_t)h * Dh, D, bq, Dh,
                   nt, MM_NN, 1.0f, 1.0f);
    matmul_strided(st->dR + ((size_t)(b * s->H + h) * st->nd + d0) * Dh, Dh, work, nt, st->qv + row,
                   D, nt, Dh, bq, MM_TN, 1.0f, 1.0f);
}

static uint64_t rel_tile_flops(const AttnShape *s, int bq, int bk, int backward) {
    return (backward ? 6ull : 2ull) * (uint64_t)bq * (uint64_t)(bq + bk - 1) * (uint64_t)s->Dh;
}

static void full_create(Mixer *m, ParamTable *pt) {
    FullState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, opt_bool(m->opts, full_opts, NOPTS, "causal"),
                      opt_bool(m->opts, full_opts, NOPTS, "bias"));
    st->relative = opt_bool(m->opts, full_opts, NOPTS, "relative");
    if (!st->relative) return;
    st->p_wr = params_add2f(pt, m->D, m->D, INIT_XAVIER_UNIFORM, 0, 1, "%s.rel.weight", m->prefix);
    st->p_u = params_add2f(pt, m->H, m->D / m->H, INIT_ZEROS, 0, 0, "%s.rel.u", m->prefix);
    st->p_v = params_add2f(pt, m->H, m->D / m->H, INIT_ZEROS, 0, 0, "%s.rel.v", m->prefix);
    st->bias = (AttnBias){.tile = rel_tile,
                          .tile_backward = rel_tile_backward,
                          .tile_flops = rel_tile_flops,
                          .work_floats = (size_t)TILE_Q * (TILE_Q + TILE_K),
                          .ctx = st};
}

/* Queries q + u (the rows after ctx of (B, L, D)) against the packed keys and values, with the
 * relative bias; outputs compact (B, L − ctx, D). */
static AttnShape rel_shape(const Mixer *m, int B, int L) {
    const FullState *st = m->state;
    const int D = m->D;
    AttnShape s = attn_shape(B, m->H, L - m->ctx, L, D / m->H, D, 3 * D, 3 * D, D);
    s.bsq = (size_t)L * D;
    s.causal = st->am.causal;
    s.bias = &st->bias;
    return s;
}

static void full_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    FullState *st = m->state;
    if (!st->relative) {
        attn_mixer_plan(m, acts, scratch, B, L);
        return;
    }
    const size_t BL = (size_t)B * L, BQ = (size_t)B * (L - m->ctx), D = (size_t)m->D;
    st->L = L, st->nd = 2 * L - 1, st->ctx = m->ctx;
    st->am.qkv = arena_floats(acts, BL * 3 * D);
    st->am.att = arena_floats(acts, BQ * D);
    st->am.lse = arena_floats(acts, BQ * m->H);
    st->qu = arena_floats(acts, BL * D);
    st->qv = arena_floats(acts, BL * D);
    st->r = arena_floats(acts, (size_t)st->nd * D);
    st->R = arena_floats(acts, (size_t)st->nd * D);
    if (st->r) /* sinusoids of the signed distance d = idx − (L − 1), as the model's positions */
        for (int i = 0; i < st->nd; i++)
            for (size_t k = 0; k < D / 2; k++) {
                const double a = (double)(i - (L - 1)) / pow(10000.0, 2.0 * (double)k / (double)D);
                st->r[(size_t)i * D + 2 * k] = (float)sin(a);
                st->r[(size_t)i * D + 2 * k + 1] = (float)cos(a);
            }
    AttnShape s = rel_shape(m, B, L);
    arena_floats(scratch, BQ * D);                                 /* d(att) */
    if (m->ctx > 0) arena_floats(scratch, BQ * D);                 /* dy's query rows */
    arena_floats(scratch, BL * 3 * D);                             /* d(qkv) */
    arena_floats(scratch, BL * D);                                 /* d(q + u) */
    arena_floats(scratch, BL * D);                                 /* d(q + v) */
    arena_floats(scratch, (size_t)B * m->H * st->nd * (D / m->H)); /* dR per (b, h) */
    arena_floats(scratch, (size_t)st->nd * D);                     /* dR */
    arena_alloc(scratch, attn_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
}

static void full_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    FullState *st = m->state;
    if (!st->relative) {
        attn_mixer_forward(m, s, y, x);
        return;
    }
    AttnMixer *am = &st->am;
    const int D = m->D, BL = s->B * s->L;
    XB_ASSERT(s->L == st->L);
    linear_forward(am->qkv, x, mixer_param(s, am->p_wqkv), mixer_param(s, am->p_bqkv), BL, D,
                   3 * D);
    const float *u = mixer_param(s, st->p_u), *v = mixer_param(s, st->p_v);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++)
        for (int c = 0; c < D; c++) {
            const float q = am->qkv[(size_t)r * 3 * D + c];
            st->qu[(size_t)r * D + c] = q + u[c];
            st->qv[(size_t)r * D + c] = q + v[c];
        }
    linear_forward(st->R, st->r, mixer_param(s, st->p_wr), NULL, st->nd, D, D);
    AttnShape sh = rel_shape(m, s->B, s->L);
    attn_forward(am->att, am->lse, st->qu + (size_t)m->ctx * D, am->qkv + D, am->qkv + 2 * D,
                 s->mask, &sh, s->scratch);
    const size_t mark = arena_mark(s->scratch);
    attn_mixer_project_out(m, s, y, am->att, am->p_wo, am->p_bo);
    arena_reset_to(s->scratch, mark);
}

static void full_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                          const float *x) {
    FullState *st = m->state;
    if (!st->relative) {
        attn_mixer_backward(m, s, dx, dy, x);
        return;
    }
    AttnMixer *am = &st->am;
    const int D = m->D, H = m->H, Dh = D / H, B = s->B, BL = B * s->L, nd = st->nd;
    const size_t mark = arena_mark(s->scratch), BQ = (size_t)B * (s->L - m->ctx),
                 q0 = (size_t)m->ctx * D;
    float *datt = arena_floats(s->scratch, BQ * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    float *dqu = arena_floats(s->scratch, (size_t)BL * D);
    st->dqv = arena_floats(s->scratch, (size_t)BL * D);
    st->dR = arena_floats(s->scratch, (size_t)B * H * nd * Dh);
    float *dR = arena_floats(s->scratch, (size_t)nd * D);
    memset(dqkv, 0, (size_t)BL * 3 * D * sizeof(float));
    memset(dqu, 0, (size_t)BL * D * sizeof(float));
    memset(st->dqv, 0, (size_t)BL * D * sizeof(float));
    memset(st->dR, 0, (size_t)B * H * nd * Dh * sizeof(float));
    attn_mixer_project_out_backward(m, s, datt, dy, am->att, am->p_wo, am->p_bo);
    AttnShape sh = rel_shape(m, B, s->L);
    attn_backward(dqu + q0, dqkv + D, dqkv + 2 * D, datt, st->qu + q0, am->qkv + D, am->qkv + 2 * D,
                  am->att, am->lse, s->mask, &sh, s->scratch);
    /* q feeds both q + u and q + v; u and v collect their rows */
    float *du = mixer_grad(s, st->p_u), *dv = mixer_grad(s, st->p_v);
    for (int r = 0; r < BL; r++)
        for (int c = 0; c < D; c++) {
            const float a = dqu[(size_t)r * D + c], b = st->dqv[(size_t)r * D + c];
            dqkv[(size_t)r * 3 * D + c] += a + b;
            du[c] += a, dv[c] += b;
        }
    /* dR (nd, D) from the per-(b, h) pieces, batch rows in order; dW_R += dRᵀ·r */
    memset(dR, 0, (size_t)nd * D * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < nd; i++)
                for (int d = 0; d < Dh; d++)
                    dR[(size_t)i * D + h * Dh + d] +=
                        st->dR[((size_t)(b * H + h) * nd + i) * Dh + d];
    linear_backward(NULL, mixer_grad(s, st->p_wr), NULL, dR, st->r, mixer_param(s, st->p_wr), nd, D,
                    D);
    linear_backward(dx, mixer_grad(s, am->p_wqkv), mixer_grad(s, am->p_bqkv), dqkv, x,
                    mixer_param(s, am->p_wqkv), BL, D, 3 * D);
    st->dqv = st->dR = NULL;
    arena_reset_to(s->scratch, mark);
}

static uint64_t full_flops(const Mixer *m, int B, int L, int backward) {
    const FullState *st = m->state;
    if (!st->relative) return attn_mixer_flops(m, B, L, backward);
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D, nd = 2 * (uint64_t)L - 1;
    const uint64_t BQ = (uint64_t)B * (uint64_t)(L - m->ctx);
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BQ * D * D;
    AttnShape sh = rel_shape(m, B, L);
    /* R = r·W_Rᵀ forward; its weight gradient backward (r is a constant) */
    return (backward ? 2 * proj : proj) + 2 * nd * D * D + attn_flops(&sh, backward);
}

static const MixerOps full_ops = {
    .create = full_create,
    .plan = full_plan,
    .forward = full_forward,
    .backward = full_backward,
    .flops = full_flops,
    .destroy = attn_mixer_destroy,
};

const MixerSpec mixer_full = {
    .name = "full",
    .classes = "baseline",
    .arxiv = "1706.03762",
    .title = "softmax attention, fused and streamed over key tiles (O(L) memory); Transformer-XL "
             "relative positions as an option",
    .honours_mask = 1,
    .skips_context = 1,
    .opts = full_opts,
    .n_opts = NOPTS,
    .ops = &full_ops,
};
