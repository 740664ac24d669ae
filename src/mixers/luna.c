/* luna: Linear Unified Nested Attention (Ma et al., arXiv 2106.01540, §3). An extra sequence P of
 * `length` rows is carried from layer to layer. Pack: the packed context C = Attn(P·W_q, X·W_k,
 * X·W_v)·W_o attends from P over the input (padding keys masked), O(l·L). Unpack: the output
 * Y = Attn(X·W_q', C·W_k', C·W_v')·W_o' attends from the input over the l packed rows, O(L·l).
 * The block adds Y to the residual stream as for any mixer; the packed sequence moves on as
 * P' = LayerNorm(P + C) (eq. 7), to be the next layer's P. The first layer's P is a learned
 * parameter (shared by the batch). Gradients follow the same path back: a layer's backward adds
 * the gradient of its P into the previous layer's P' gradient, which that layer's backward (run
 * next) starts from. LRA runs l ∈ {16, 128, 256}; 256 is the default here (Luna-256). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/attention.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"

static const OptSpec luna_opts[] = {
    {.name = "length", .type = OPT_INT, .def = 256, .min = 1, .max = 65536,
     .help = "rows l of the packed sequence (LRA: 16, 128 or 256)"},
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the projections"},
};
#define NOPTS ((int)XB_ARRAY_LEN(luna_opts))

typedef struct LunaState {
    int l, bias;
    int p_p;                                   /* the first layer's P (l, D) */
    int p_pq, p_pqb, p_pkv, p_pkvb, p_po, p_pob; /* pack projections */
    int p_uq, p_uqb, p_ukv, p_ukvb, p_uo, p_uob; /* unpack projections */
    int p_lnw, p_lnb;                          /* LayerNorm of P + C */
    /* saved by forward */
    float *pin;                    /* (B, l, D) this layer's P */
    float *qp, *kvx, *cpre, *lse1; /* (B, l, D), (B, L, 2D), (B, l, D), (B, H, l) */
    float *c;                      /* (B, l, D) packed context */
    float *qx, *kvc, *u, *lse2;    /* (B, L, D), (B, l, 2D), (B, L, D), (B, H, L) */
    float *psum, *pout, *mean, *rstd; /* P + C, P' (B, l, D); (B·l) */
    float *dpout;                  /* (B, l, D) gradient arriving at P' from the next layer */
} LunaState;

static void luna_create(Mixer *m, ParamTable *pt) {
    LunaState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    st->l = opt_int(m->opts, luna_opts, NOPTS, "length");
    st->bias = opt_bool(m->opts, luna_opts, NOPTS, "bias");
    const int D = m->D;
    char name[XB_PARAM_NAME];
    st->p_p = -1;
    if (m->layer == 0) { /* N(0, 1/D), the scale of the paper's code for the extra sequence */
        snprintf(name, sizeof name, "%s.p", m->prefix);
        st->p_p = params_add2(pt, name, st->l, D, INIT_NORMAL, 1.0f / sqrtf((float)D), 0);
    }
    st->p_pq = mixer_add_linear(pt, m->prefix, "pack.q", D, D, st->bias, &st->p_pqb);
    st->p_pkv = mixer_add_linear(pt, m->prefix, "pack.kv", 2 * D, D, st->bias, &st->p_pkvb);
    st->p_po = mixer_add_linear(pt, m->prefix, "pack.out", D, D, st->bias, &st->p_pob);
    st->p_uq = mixer_add_linear(pt, m->prefix, "unpack.q", D, D, st->bias, &st->p_uqb);
    st->p_ukv = mixer_add_linear(pt, m->prefix, "unpack.kv", 2 * D, D, st->bias, &st->p_ukvb);
    st->p_uo = mixer_add_linear(pt, m->prefix, "unpack.out", D, D, st->bias, &st->p_uob);
    snprintf(name, sizeof name, "%s.pnorm.weight", m->prefix);
    st->p_lnw = params_add1(pt, name, D, INIT_ONES, 0, 0);
    snprintf(name, sizeof name, "%s.pnorm.bias", m->prefix);
    st->p_lnb = params_add1(pt, name, D, INIT_ZEROS, 0, 0);
}

/* Pack: l queries over the L inputs; unpack: L queries over the l packed rows. */
static AttnShape pack_shape(const Mixer *m, int B, int L) {
    const LunaState *st = m->state;
    const int D = m->D;
    return attn_shape(B, m->H, st->l, L, D / m->H, D, 2 * D, 2 * D, D);
}
static AttnShape unpack_shape(const Mixer *m, int B, int L) {
    const LunaState *st = m->state;
    const int D = m->D;
    return attn_shape(B, m->H, L, st->l, D / m->H, D, 2 * D, 2 * D, D);
}

static void luna_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    LunaState *st = m->state;
    const size_t D = (size_t)m->D, BL = (size_t)B * L, Bl = (size_t)B * st->l;
    st->pin = arena_floats(acts, Bl * D);
    st->qp = arena_floats(acts, Bl * D);
    st->kvx = arena_floats(acts, BL * 2 * D);
    st->cpre = arena_floats(acts, Bl * D);
    st->lse1 = arena_floats(acts, Bl * m->H);
    st->c = arena_floats(acts, Bl * D);
    st->qx = arena_floats(acts, BL * D);
    st->kvc = arena_floats(acts, Bl * 2 * D);
    st->u = arena_floats(acts, BL * D);
    st->lse2 = arena_floats(acts, BL * m->H);
    st->psum = arena_floats(acts, Bl * D);
    st->pout = arena_floats(acts, Bl * D);
    st->mean = arena_floats(acts, Bl);
    st->rstd = arena_floats(acts, Bl);
    st->dpout = arena_floats(acts, Bl * D);
    /* backward: d(u), d(qx), d(kvc), d(c), d(psum), d(cpre), d(qp), d(kvx), d(pin) */
    arena_floats(scratch, 2 * BL * D + Bl * 2 * D + 4 * Bl * D + BL * 2 * D + Bl * D + 16 * 16);
    AttnShape a = pack_shape(m, B, L), b = unpack_shape(m, B, L);
    const int nt = omp_get_max_threads();
    arena_floats(scratch, XB_MAX(attn_scratch_floats(&a, nt), attn_scratch_floats(&b, nt)));
}

static const float *pp(const MixerStep *s, int i) {
    return i < 0 ? NULL : s->params + s->pt->info[i].offset;
}
static float *gp(const MixerStep *s, int i) {
    return i < 0 ? NULL : s->grads + s->pt->info[i].offset;
}

static void luna_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    LunaState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, l = st->l, BL = B * L, Bl = B * l;
    if (m->prev) { /* the previous layer's P' (the encoder runs the layers in order) */
        const LunaState *ps = m->prev->state;
        XB_ASSERT(m->prev->spec == m->spec && ps->l == l);
        memcpy(st->pin, ps->pout, (size_t)Bl * D * sizeof(float));
    } else {
        for (int b = 0; b < B; b++)
            memcpy(st->pin + (size_t)b * l * D, pp(s, st->p_p), (size_t)l * D * sizeof(float));
    }
    memset(st->dpout, 0, (size_t)Bl * D * sizeof(float));
    /* pack */
    linear_forward(st->qp, st->pin, pp(s, st->p_pq), pp(s, st->p_pqb), Bl, D, D);
    linear_forward(st->kvx, x, pp(s, st->p_pkv), pp(s, st->p_pkvb), BL, D, 2 * D);
    AttnShape a = pack_shape(m, B, L);
    attn_forward(st->cpre, st->lse1, st->qp, st->kvx, st->kvx + D, s->mask, &a, s->scratch);
    linear_forward(st->c, st->cpre, pp(s, st->p_po), pp(s, st->p_pob), Bl, D, D);
    /* unpack */
    linear_forward(st->qx, x, pp(s, st->p_uq), pp(s, st->p_uqb), BL, D, D);
    linear_forward(st->kvc, st->c, pp(s, st->p_ukv), pp(s, st->p_ukvb), Bl, D, 2 * D);
    AttnShape u = unpack_shape(m, B, L);
    attn_forward(st->u, st->lse2, st->qx, st->kvc, st->kvc + D, NULL, &u, s->scratch);
    linear_forward(y, st->u, pp(s, st->p_uo), pp(s, st->p_uob), BL, D, D);
    /* the packed sequence for the next layer */
    for (size_t k = 0; k < (size_t)Bl * D; k++) st->psum[k] = st->pin[k] + st->c[k];
    layernorm_forward(st->pout, st->mean, st->rstd, st->psum, pp(s, st->p_lnw), pp(s, st->p_lnb),
                      Bl, D);
}

static void luna_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy, const float *x) {
    LunaState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, l = st->l, BL = B * L, Bl = B * l;
    const size_t mark = arena_mark(s->scratch);
    float *du = arena_floats(s->scratch, (size_t)BL * D);
    float *dqx = arena_floats(s->scratch, (size_t)BL * D);
    float *dkvc = arena_floats(s->scratch, (size_t)Bl * 2 * D);
    float *dc = arena_floats(s->scratch, (size_t)Bl * D);
    float *dsum = arena_floats(s->scratch, (size_t)Bl * D);
    float *dcpre = arena_floats(s->scratch, (size_t)Bl * D);
    float *dqp = arena_floats(s->scratch, (size_t)Bl * D);
    float *dkvx = arena_floats(s->scratch, (size_t)BL * 2 * D);
    float *dpin = arena_floats(s->scratch, (size_t)Bl * D);
    memset(du, 0, (size_t)BL * D * sizeof(float));
    memset(dqx, 0, (size_t)BL * D * sizeof(float));
    memset(dkvc, 0, (size_t)Bl * 2 * D * sizeof(float));
    memset(dc, 0, (size_t)Bl * D * sizeof(float));
    memset(dsum, 0, (size_t)Bl * D * sizeof(float));
    memset(dcpre, 0, (size_t)Bl * D * sizeof(float));
    memset(dqp, 0, (size_t)Bl * D * sizeof(float));
    memset(dkvx, 0, (size_t)BL * 2 * D * sizeof(float));
    memset(dpin, 0, (size_t)Bl * D * sizeof(float));
    /* unpack */
    linear_backward(du, gp(s, st->p_uo), gp(s, st->p_uob), dy, st->u, pp(s, st->p_uo), BL, D, D);
    AttnShape u = unpack_shape(m, B, L);
    attn_backward(dqx, dkvc, dkvc + D, du, st->qx, st->kvc, st->kvc + D, st->u, st->lse2, NULL, &u,
                  s->scratch);
    linear_backward(dx, gp(s, st->p_uq), gp(s, st->p_uqb), dqx, x, pp(s, st->p_uq), BL, D, D);
    linear_backward(dc, gp(s, st->p_ukv), gp(s, st->p_ukvb), dkvc, st->c, pp(s, st->p_ukv), Bl, D,
                    2 * D);
    /* P' = LN(P + C) */
    layernorm_backward(dsum, gp(s, st->p_lnw), gp(s, st->p_lnb), st->dpout, st->psum,
                       pp(s, st->p_lnw), st->mean, st->rstd, Bl, D);
    for (size_t k = 0; k < (size_t)Bl * D; k++) dc[k] += dsum[k], dpin[k] += dsum[k];
    /* pack */
    linear_backward(dcpre, gp(s, st->p_po), gp(s, st->p_pob), dc, st->cpre, pp(s, st->p_po), Bl, D, D);
    AttnShape a = pack_shape(m, B, L);
    attn_backward(dqp, dkvx, dkvx + D, dcpre, st->qp, st->kvx, st->kvx + D, st->cpre, st->lse1,
                  s->mask, &a, s->scratch);
    linear_backward(dx, gp(s, st->p_pkv), gp(s, st->p_pkvb), dkvx, x, pp(s, st->p_pkv), BL, D, 2 * D);
    linear_backward(dpin, gp(s, st->p_pq), gp(s, st->p_pqb), dqp, st->pin, pp(s, st->p_pq), Bl, D, D);
    /* P's gradient: into the previous layer's P', or the learned P (summed over the batch) */
    if (m->prev) {
        LunaState *ps = m->prev->state;
        for (size_t k = 0; k < (size_t)Bl * D; k++) ps->dpout[k] += dpin[k];
    } else {
        float *g = gp(s, st->p_p);
        for (int b = 0; b < B; b++)
            for (size_t k = 0; k < (size_t)l * D; k++) g[k] += dpin[(size_t)b * l * D + k];
    }
    arena_reset_to(s->scratch, mark);
}

static uint64_t luna_flops(const Mixer *m, int B, int L, int backward) {
    const LunaState *st = m->state;
    const uint64_t D = (uint64_t)m->D, BL = (uint64_t)B * (uint64_t)L, Bl = (uint64_t)B * st->l;
    /* pack: q (l rows), kv (L rows), out (l rows); unpack: q (L), kv (l), out (L) */
    const uint64_t proj = 2 * D * D * (Bl + 2 * BL + Bl) + 2 * D * D * (BL + 2 * Bl + BL);
    AttnShape a = pack_shape(m, B, L), u = unpack_shape(m, B, L);
    return (backward ? 2 * proj : proj) + attn_flops(&a, backward) + attn_flops(&u, backward);
}

static void luna_destroy(Mixer *m) { free(m->state); }

static const MixerOps luna_ops = {
    .create = luna_create,
    .plan = luna_plan,
    .forward = luna_forward,
    .backward = luna_backward,
    .flops = luna_flops,
    .destroy = luna_destroy,
};

const MixerSpec mixer_luna = {
    .name = "luna",
    .classes = "M",
    .arxiv = "2106.01540",
    .title = "Luna: pack into l rows carried across layers, unpack back (linear in L)",
    .honours_mask = 1,
    .opts = luna_opts,
    .n_opts = NOPTS,
    .ops = &luna_ops,
};
