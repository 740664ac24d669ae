/* isab: induced set attention (Lee et al., Set Transformer, arXiv 1810.00825, §3.2):
 * ISAB_m(X) = MAB(X, H), H = MAB(I, X) with m learned inducing points I, where (eq. 6–7)
 * MAB(X, Y) = LN(H' + rFF(H')), H' = LN(X + Multihead(X, Y, Y)), rFF(z) = ReLU(z·W + b) as in the
 * authors' code. As a token mixer inside our pre-LN block, which already adds the residual and
 * applies the LayerNorm and the feed-forward around the mixer, the mechanism computes the inner
 * MAB(I, X) completely (its own attention, norms and rFF, padding keys masked) and returns the
 * outer MAB's attention Multihead(X, H, H): the block supplies the rest of the outer MAB. Both
 * attentions run through the fused kernel (m queries over L keys, L queries over m keys): O(m·L). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"

static const OptSpec isab_opts[] = {
    {.name = "inducing", .type = OPT_INT, .def = 32, .min = 1, .max = 65536,
     .help = "inducing points m (the paper's experiments: 16 or 32)"},
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the attention projections"},
};
#define NOPTS ((int)XB_ARRAY_LEN(isab_opts))

typedef struct IsabState {
    int m, bias;
    int p_i;                                  /* inducing points (m, D) */
    int p_q1, p_q1b, p_kv1, p_kv1b, p_o1, p_o1b; /* inner attention: I over X */
    int p_ln0w, p_ln0b, p_fw, p_fb, p_ln1w, p_ln1b; /* inner norms and rFF */
    int p_q2, p_q2b, p_kv2, p_kv2b, p_o2, p_o2b; /* outer attention: X over H */
    /* saved (B, m, ·) unless said */
    float *ib, *q1, *kv1, *a1, *lse1; /* I per batch row; (B, L, 2D); (B, m, D); (B, H, m) */
    float *hpre, *h0, *mean0, *rstd0; /* I + attention; LN0 */
    float *fpre, *h2, *hi, *mean1, *rstd1; /* rFF pre-activation; H0 + rFF; H = LN1 */
    float *q2, *kv2, *a2, *lse2;      /* (B, L, D); (B, m, 2D); (B, L, D); (B, H, L) */
} IsabState;

static void isab_create(Mixer *m, ParamTable *pt) {
    IsabState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    st->m = opt_int(m->opts, isab_opts, NOPTS, "inducing");
    st->bias = opt_bool(m->opts, isab_opts, NOPTS, "bias");
    const int D = m->D;
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "%s.inducing", m->prefix); /* Xavier-uniform, as the authors */
    st->p_i = params_add2(pt, name, st->m, D, INIT_XAVIER_UNIFORM, 0, 0);
    st->p_q1 = mixer_add_linear(pt, m->prefix, "inner.q", D, D, st->bias, &st->p_q1b);
    st->p_kv1 = mixer_add_linear(pt, m->prefix, "inner.kv", 2 * D, D, st->bias, &st->p_kv1b);
    st->p_o1 = mixer_add_linear(pt, m->prefix, "inner.out", D, D, st->bias, &st->p_o1b);
    snprintf(name, sizeof name, "%s.inner.norm0.weight", m->prefix);
    st->p_ln0w = params_add1(pt, name, D, INIT_ONES, 0, 0);
    snprintf(name, sizeof name, "%s.inner.norm0.bias", m->prefix);
    st->p_ln0b = params_add1(pt, name, D, INIT_ZEROS, 0, 0);
    snprintf(name, sizeof name, "%s.inner.rff.weight", m->prefix);
    st->p_fw = params_add2(pt, name, D, D, INIT_XAVIER_UNIFORM, 0, 1);
    snprintf(name, sizeof name, "%s.inner.rff.bias", m->prefix);
    st->p_fb = params_add1(pt, name, D, INIT_ZEROS, 0, 0);
    snprintf(name, sizeof name, "%s.inner.norm1.weight", m->prefix);
    st->p_ln1w = params_add1(pt, name, D, INIT_ONES, 0, 0);
    snprintf(name, sizeof name, "%s.inner.norm1.bias", m->prefix);
    st->p_ln1b = params_add1(pt, name, D, INIT_ZEROS, 0, 0);
    st->p_q2 = mixer_add_linear(pt, m->prefix, "outer.q", D, D, st->bias, &st->p_q2b);
    st->p_kv2 = mixer_add_linear(pt, m->prefix, "outer.kv", 2 * D, D, st->bias, &st->p_kv2b);
    st->p_o2 = mixer_add_linear(pt, m->prefix, "outer.out", D, D, st->bias, &st->p_o2b);
}

static AttnShape inner_shape(const Mixer *m, int B, int L) {
    const IsabState *st = m->state;
    const int D = m->D;
    return attn_shape(B, m->H, st->m, L, D / m->H, D, 2 * D, 2 * D, D);
}
static AttnShape outer_shape(const Mixer *m, int B, int L) {
    const IsabState *st = m->state;
    const int D = m->D;
    return attn_shape(B, m->H, L, st->m, D / m->H, D, 2 * D, 2 * D, D);
}

static void isab_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    IsabState *st = m->state;
    const size_t D = (size_t)m->D, BL = (size_t)B * L, Bm = (size_t)B * st->m;
    st->ib = arena_floats(acts, Bm * D);
    st->q1 = arena_floats(acts, Bm * D);
    st->kv1 = arena_floats(acts, BL * 2 * D);
    st->a1 = arena_floats(acts, Bm * D);
    st->lse1 = arena_floats(acts, Bm * m->H);
    st->hpre = arena_floats(acts, Bm * D);
    st->h0 = arena_floats(acts, Bm * D);
    st->mean0 = arena_floats(acts, Bm);
    st->rstd0 = arena_floats(acts, Bm);
    st->fpre = arena_floats(acts, Bm * D);
    st->h2 = arena_floats(acts, Bm * D);
    st->hi = arena_floats(acts, Bm * D);
    st->mean1 = arena_floats(acts, Bm);
    st->rstd1 = arena_floats(acts, Bm);
    st->q2 = arena_floats(acts, BL * D);
    st->kv2 = arena_floats(acts, Bm * 2 * D);
    st->a2 = arena_floats(acts, BL * D);
    st->lse2 = arena_floats(acts, BL * m->H);
    /* backward: d(a2), d(q2), d(kv2), d(hi), d(h2), d(fpre), d(h0), d(hpre), d(a1), d(q1),
     * d(kv1), d(ib) */
    arena_floats(scratch, 2 * BL * D + 2 * Bm * D + 7 * Bm * D + BL * 2 * D + Bm * D + 16 * 16);
    AttnShape a = inner_shape(m, B, L), b = outer_shape(m, B, L);
    const int nt = omp_get_max_threads();
    arena_floats(scratch, XB_MAX(attn_scratch_floats(&a, nt), attn_scratch_floats(&b, nt)));
}

static const float *pp(const MixerStep *s, int i) {
    return i < 0 ? NULL : s->params + s->pt->info[i].offset;
}
static float *gp(const MixerStep *s, int i) {
    return i < 0 ? NULL : s->grads + s->pt->info[i].offset;
}

static void isab_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    IsabState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, M = st->m, BL = B * L, Bm = B * M;
    const size_t n = (size_t)Bm * D;
    for (int b = 0; b < B; b++)
        memcpy(st->ib + (size_t)b * M * D, pp(s, st->p_i), (size_t)M * D * sizeof(float));
    /* H = MAB(I, X) */
    linear_forward(st->q1, st->ib, pp(s, st->p_q1), pp(s, st->p_q1b), Bm, D, D);
    linear_forward(st->kv1, x, pp(s, st->p_kv1), pp(s, st->p_kv1b), BL, D, 2 * D);
    AttnShape a = inner_shape(m, B, L);
    attn_forward(st->a1, st->lse1, st->q1, st->kv1, st->kv1 + D, s->mask, &a, s->scratch);
    linear_forward(st->hpre, st->a1, pp(s, st->p_o1), pp(s, st->p_o1b), Bm, D, D);
    for (size_t k = 0; k < n; k++) st->hpre[k] += st->ib[k];
    layernorm_forward(st->h0, st->mean0, st->rstd0, st->hpre, pp(s, st->p_ln0w), pp(s, st->p_ln0b),
                      Bm, D);
    linear_forward(st->fpre, st->h0, pp(s, st->p_fw), pp(s, st->p_fb), Bm, D, D);
    relu_forward(st->h2, st->fpre, n);
    for (size_t k = 0; k < n; k++) st->h2[k] += st->h0[k];
    layernorm_forward(st->hi, st->mean1, st->rstd1, st->h2, pp(s, st->p_ln1w), pp(s, st->p_ln1b),
                      Bm, D);
    /* the outer MAB's attention: X over H */
    linear_forward(st->q2, x, pp(s, st->p_q2), pp(s, st->p_q2b), BL, D, D);
    linear_forward(st->kv2, st->hi, pp(s, st->p_kv2), pp(s, st->p_kv2b), Bm, D, 2 * D);
    AttnShape o = outer_shape(m, B, L);
    attn_forward(st->a2, st->lse2, st->q2, st->kv2, st->kv2 + D, NULL, &o, s->scratch);
    linear_forward(y, st->a2, pp(s, st->p_o2), pp(s, st->p_o2b), BL, D, D);
}

static void isab_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy, const float *x) {
    IsabState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, M = st->m, BL = B * L, Bm = B * M;
    const size_t n = (size_t)Bm * D, nl = (size_t)BL * D;
    const size_t mark = arena_mark(s->scratch);
#define BUF(v, k) float *v = arena_floats(s->scratch, k); memset(v, 0, (k) * sizeof(float))
    BUF(da2, nl);
    BUF(dq2, nl);
    BUF(dkv2, 2 * n);
    BUF(dhi, n);
    BUF(dh2, n);
    BUF(dfpre, n);
    BUF(dh0, n);
    BUF(dhpre, n);
    BUF(da1, n);
    BUF(dq1, n);
    BUF(dkv1, 2 * nl);
    BUF(dib, n);
#undef BUF
    linear_backward(da2, gp(s, st->p_o2), gp(s, st->p_o2b), dy, st->a2, pp(s, st->p_o2), BL, D, D);
    AttnShape o = outer_shape(m, B, L);
    attn_backward(dq2, dkv2, dkv2 + D, da2, st->q2, st->kv2, st->kv2 + D, st->a2, st->lse2, NULL, &o,
                  s->scratch);
    linear_backward(dx, gp(s, st->p_q2), gp(s, st->p_q2b), dq2, x, pp(s, st->p_q2), BL, D, D);
    linear_backward(dhi, gp(s, st->p_kv2), gp(s, st->p_kv2b), dkv2, st->hi, pp(s, st->p_kv2), Bm, D,
                    2 * D);
    /* H = LN1(H0 + ReLU(H0·W + b)), H0 = LN0(I + attention) */
    layernorm_backward(dh2, gp(s, st->p_ln1w), gp(s, st->p_ln1b), dhi, st->h2, pp(s, st->p_ln1w),
                       st->mean1, st->rstd1, Bm, D);
    relu_backward(dfpre, st->fpre, dh2, n);
    memcpy(dh0, dh2, n * sizeof(float));
    linear_backward(dh0, gp(s, st->p_fw), gp(s, st->p_fb), dfpre, st->h0, pp(s, st->p_fw), Bm, D, D);
    layernorm_backward(dhpre, gp(s, st->p_ln0w), gp(s, st->p_ln0b), dh0, st->hpre, pp(s, st->p_ln0w),
                       st->mean0, st->rstd0, Bm, D);
    memcpy(dib, dhpre, n * sizeof(float));
    linear_backward(da1, gp(s, st->p_o1), gp(s, st->p_o1b), dhpre, st->a1, pp(s, st->p_o1), Bm, D, D);
    AttnShape a = inner_shape(m, B, L);
    attn_backward(dq1, dkv1, dkv1 + D, da1, st->q1, st->kv1, st->kv1 + D, st->a1, st->lse1, s->mask,
                  &a, s->scratch);
    linear_backward(dib, gp(s, st->p_q1), gp(s, st->p_q1b), dq1, st->ib, pp(s, st->p_q1), Bm, D, D);
    linear_backward(dx, gp(s, st->p_kv1), gp(s, st->p_kv1b), dkv1, x, pp(s, st->p_kv1), BL, D, 2 * D);
    float *gi = gp(s, st->p_i); /* the inducing points are shared by the batch */
    for (int b = 0; b < B; b++)
        for (size_t k = 0; k < (size_t)M * D; k++) gi[k] += dib[(size_t)b * M * D + k];
    arena_reset_to(s->scratch, mark);
}

static uint64_t isab_flops(const Mixer *m, int B, int L, int backward) {
    const IsabState *st = m->state;
    const uint64_t D = (uint64_t)m->D, BL = (uint64_t)B * (uint64_t)L, Bm = (uint64_t)B * st->m;
    /* inner: q, kv, out, rFF; outer: q, kv, out */
    const uint64_t proj = 2 * D * D * (Bm + 2 * BL + Bm + Bm) + 2 * D * D * (BL + 2 * Bm + BL);
    AttnShape a = inner_shape(m, B, L), o = outer_shape(m, B, L);
    return (backward ? 2 * proj : proj) + attn_flops(&a, backward) + attn_flops(&o, backward);
}

static void isab_destroy(Mixer *m) { free(m->state); }

static const MixerOps isab_ops = {
    .create = isab_create,
    .plan = isab_plan,
    .forward = isab_forward,
    .backward = isab_backward,
    .flops = isab_flops,
    .destroy = isab_destroy,
};

const MixerSpec mixer_isab = {
    .name = "isab",
    .classes = "M",
    .arxiv = "1810.00825",
    .title = "Set Transformer ISAB: attention through m learned inducing points (O(m·L))",
    .honours_mask = 1,
    .opts = isab_opts,
    .n_opts = NOPTS,
    .ops = &isab_ops,
};
