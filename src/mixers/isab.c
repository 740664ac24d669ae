/* isab: induced set attention (Lee et al., Set Transformer, arXiv 1810.00825, §3.2):
 * ISAB_m(X) = MAB(X, H), H = MAB(I, X) with m learned inducing points I, where (eq. 6–7)
 * MAB(X, Y) = LN(H' + rFF(H')), H' = LN(X + Multihead(X, Y, Y)), rFF(z) = ReLU(z·W + b) as in the
 * authors' code. As a token mixer inside our pre-LN block, which already adds the residual and
 * applies the LayerNorm and the feed-forward around the mixer, the mechanism computes the inner
 * MAB(I, X) completely (its own attention, norms and rFF, padding keys masked) and returns the
 * outer MAB's attention Multihead(X, H, H): the block supplies the rest of the outer MAB. Both
 * attentions run through the fused kernel (m queries over L keys, L queries over m keys): O(m·L).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/activations.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"
#include "mixers/xattn.h"

static const OptSpec isab_opts[] = {
    MOPT_INT("inducing", 32, 1, 65536, "inducing points m (the paper's experiments: 16 or 32)"),
    MOPT_BOOL("bias", 0, "biases in the attention projections"),
};
#define NOPTS MOPT_COUNT(isab_opts)

typedef struct IsabState {
    int m;
    int p_i;                                        /* inducing points (m, D) */
    XAttn inner, outer;                             /* I over X; X over H */
    int p_ln0w, p_ln0b, p_fw, p_fb, p_ln1w, p_ln1b; /* inner norms and rFF */
    /* saved (B, m, D) unless said */
    float *ib;                             /* I per batch row */
    float *hpre, *h0, *mean0, *rstd0;      /* I + attention; LN0 */
    float *fpre, *h2, *hi, *mean1, *rstd1; /* rFF pre-activation; H0 + rFF; H = LN1 */
    unsigned char *act;                    /* (B·m, D) the ReLU's active set */
} IsabState;

static void isab_create(Mixer *m, ParamTable *pt) {
    IsabState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    st->m = opt_int(m->opts, isab_opts, NOPTS, "inducing");
    const int bias = opt_bool(m->opts, isab_opts, NOPTS, "bias");
    const int D = m->D;
    char name[XB_PARAM_NAME];
    /* Xavier-uniform, as the authors */
    st->p_i = params_add2f(pt, st->m, D, INIT_XAVIER_UNIFORM, 0, 0, "%s.inducing", m->prefix);
    snprintf(name, sizeof name, "%s.inner", m->prefix);
    xattn_create(&st->inner, pt, name, D, m->H, bias);
    st->p_ln0w = params_add1f(pt, D, INIT_ONES, 0, 0, "%s.inner.norm0.weight", m->prefix);
    st->p_ln0b = params_add1f(pt, D, INIT_ZEROS, 0, 0, "%s.inner.norm0.bias", m->prefix);
    st->p_fw = params_add2f(pt, D, D, INIT_XAVIER_UNIFORM, 0, 1, "%s.inner.rff.weight", m->prefix);
    st->p_fb = params_add1f(pt, D, INIT_ZEROS, 0, 0, "%s.inner.rff.bias", m->prefix);
    st->p_ln1w = params_add1f(pt, D, INIT_ONES, 0, 0, "%s.inner.norm1.weight", m->prefix);
    st->p_ln1b = params_add1f(pt, D, INIT_ZEROS, 0, 0, "%s.inner.norm1.bias", m->prefix);
    snprintf(name, sizeof name, "%s.outer", m->prefix);
    xattn_create(&st->outer, pt, name, D, m->H, bias);
}

static void isab_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    IsabState *st = m->state;
    const size_t D = (size_t)m->D, Bm = (size_t)B * st->m;
    st->ib = arena_floats(acts, Bm * D);
    st->hpre = arena_floats(acts, Bm * D);
    st->h0 = arena_floats(acts, Bm * D);
    st->mean0 = arena_floats(acts, Bm);
    st->rstd0 = arena_floats(acts, Bm);
    st->fpre = arena_floats(acts, Bm * D);
    st->act = arena_alloc(acts, Bm * D);
    st->h2 = arena_floats(acts, Bm * D);
    st->hi = arena_floats(acts, Bm * D);
    st->mean1 = arena_floats(acts, Bm);
    st->rstd1 = arena_floats(acts, Bm);
    /* backward: d(hi), d(h2), d(fpre), d(h0), d(hpre), d(ib), then an attention's */
    arena_floats(scratch, 6 * Bm * D + 16 * 6);
    xattn_plan(&st->inner, acts, scratch, B, st->m, L);
    xattn_plan(&st->outer, acts, scratch, B, L, st->m);
}

static void isab_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    IsabState *st = m->state;
    const int B = s->B, D = m->D, M = st->m, Bm = B * M;
    const size_t n = (size_t)Bm * D;
    for (int b = 0; b < B; b++)
        memcpy(st->ib + (size_t)b * M * D, mixer_param(s, st->p_i), (size_t)M * D * sizeof(float));
    /* H = MAB(I, X) */
    xattn_forward(&st->inner, st->hpre, st->ib, x, s->mask, s->params, s->pt, B, s->scratch);
    for (size_t k = 0; k < n; k++) st->hpre[k] += st->ib[k];
    layernorm_forward(st->h0, st->mean0, st->rstd0, st->hpre, mixer_param(s, st->p_ln0w),
                      mixer_param(s, st->p_ln0b), Bm, D);
    linear_forward(st->fpre, st->h0, mixer_param(s, st->p_fw), mixer_param(s, st->p_fb), Bm, D, D);
    relu_forward_set(st->h2, st->act, st->fpre, n, s->frozen);
    for (size_t k = 0; k < n; k++) st->h2[k] += st->h0[k];
    layernorm_forward(st->hi, st->mean1, st->rstd1, st->h2, mixer_param(s, st->p_ln1w),
                      mixer_param(s, st->p_ln1b), Bm, D);
    /* the outer MAB's attention: X over H */
    xattn_forward(&st->outer, y, x, st->hi, NULL, s->params, s->pt, B, s->scratch);
}

static void isab_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                          const float *x) {
    IsabState *st = m->state;
    const int B = s->B, D = m->D, M = st->m, Bm = B * M;
    const size_t n = (size_t)Bm * D;
    const size_t mark = arena_mark(s->scratch);
#define BUF(v, k)                                                                                  \
    float *v = arena_floats(s->scratch, k);                                                        \
    memset(v, 0, (k) * sizeof(float))
    BUF(dhi, n);
    BUF(dh2, n);
    BUF(dfpre, n);
    BUF(dh0, n);
    BUF(dhpre, n);
    BUF(dib, n);
#undef BUF
    xattn_backward(&st->outer, dx, dhi, dy, x, st->hi, NULL, s->params, s->grads, s->pt, B,
                   s->scratch);
    /* H = LN1(H0 + ReLU(H0·W + b)), H0 = LN0(I + attention) */
    layernorm_backward(dh2, mixer_grad(s, st->p_ln1w), mixer_grad(s, st->p_ln1b), dhi, st->h2,
                       mixer_param(s, st->p_ln1w), st->mean1, st->rstd1, Bm, D);
    relu_backward_set(dfpre, st->act, dh2, n);
    memcpy(dh0, dh2, n * sizeof(float));
    linear_backward(dh0, mixer_grad(s, st->p_fw), mixer_grad(s, st->p_fb), dfpre, st->h0,
                    mixer_param(s, st->p_fw), Bm, D, D);
    layernorm_backward(dhpre, mixer_grad(s, st->p_ln0w), mixer_grad(s, st->p_ln0b), dh0, st->hpre,
                       mixer_param(s, st->p_ln0w), st->mean0, st->rstd0, Bm, D);
    memcpy(dib, dhpre, n * sizeof(float));
    xattn_backward(&st->inner, dib, dx, dhpre, st->ib, x, s->mask, s->params, s->grads, s->pt, B,
                   s->scratch);
    float *gi = mixer_grad(s, st->p_i); /* the inducing points are shared by the batch */
    for (int b = 0; b < B; b++)
        for (size_t k = 0; k < (size_t)M * D; k++) gi[k] += dib[(size_t)b * M * D + k];
    arena_reset_to(s->scratch, mark);
}

static uint64_t isab_flops(const Mixer *m, int B, int L, int backward) {
    const IsabState *st = m->state;
    const uint64_t D = (uint64_t)m->D, Bm = (uint64_t)B * st->m;
    const uint64_t rff = 2 * D * D * Bm;
    return (backward ? 2 * rff : rff) + xattn_flops(&st->inner, B, st->m, L, backward) +
           xattn_flops(&st->outer, B, L, st->m, backward);
}

const MixerSpec mixer_isab = {
    .name = "isab",
    .classes = "M",
    .arxiv = "1810.00825",
    .title = "Set Transformer ISAB: attention through m learned inducing points (O(m·L))",
    .honours_mask = 1,
    MIXER_OPTS(isab_opts),
    .ops = &(const MixerOps){MIXER_OPS(isab)},
};
