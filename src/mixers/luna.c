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
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"
#include "mixers/xattn.h"

static const OptSpec luna_opts[] = {
    {.name = "length",
     .type = OPT_INT,
     .def = 256,
     .min = 1,
     .max = 65536,
     .help = "rows l of the packed sequence (LRA: 16, 128 or 256)"},
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the projections"},
};
#define NOPTS ((int)XB_ARRAY_LEN(luna_opts))

typedef struct LunaState {
    int l;
    int p_p;            /* the first layer's P (l, D) */
    XAttn pack, unpack; /* P over X; X over C */
    int p_lnw, p_lnb;   /* LayerNorm of P + C */
    /* saved by forward, (B, l, D) */
    float *pin;                       /* this layer's P */
    float *c;                         /* the packed context */
    float *psum, *pout, *mean, *rstd; /* P + C, P' = LN(P + C); (B·l) */
    float *dpout;                     /* the gradient arriving at P' from the next layer */
} LunaState;

static void luna_create(Mixer *m, ParamTable *pt) {
    LunaState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    st->l = opt_int(m->opts, luna_opts, NOPTS, "length");
    const int bias = opt_bool(m->opts, luna_opts, NOPTS, "bias");
    const int D = m->D;
    char name[XB_PARAM_NAME];
    st->p_p = -1;
    if (m->layer == 0) { /* N(0, 1/D), the scale of the paper's code for the extra sequence */
        snprintf(name, sizeof name, "%s.p", m->prefix);
        st->p_p = params_add2(pt, name, st->l, D, INIT_NORMAL, 1.0f / sqrtf((float)D), 0);
    }
    snprintf(name, sizeof name, "%s.pack", m->prefix);
    xattn_create(&st->pack, pt, name, D, m->H, bias);
    snprintf(name, sizeof name, "%s.unpack", m->prefix);
    xattn_create(&st->unpack, pt, name, D, m->H, bias);
    snprintf(name, sizeof name, "%s.pnorm.weight", m->prefix);
    st->p_lnw = params_add1(pt, name, D, INIT_ONES, 0, 0);
    snprintf(name, sizeof name, "%s.pnorm.bias", m->prefix);
    st->p_lnb = params_add1(pt, name, D, INIT_ZEROS, 0, 0);
}

static void luna_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    LunaState *st = m->state;
    const size_t D = (size_t)m->D, Bl = (size_t)B * st->l;
    st->pin = arena_floats(acts, Bl * D);
    st->c = arena_floats(acts, Bl * D);
    st->psum = arena_floats(acts, Bl * D);
    st->pout = arena_floats(acts, Bl * D);
    st->mean = arena_floats(acts, Bl);
    st->rstd = arena_floats(acts, Bl);
    st->dpout = arena_floats(acts, Bl * D);
    /* backward: d(c), d(psum), d(pin), then an attention's */
    arena_floats(scratch, 3 * Bl * D + 16 * 3);
    xattn_plan(&st->pack, acts, scratch, B, st->l, L);
    xattn_plan(&st->unpack, acts, scratch, B, L, st->l);
}

static void luna_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    LunaState *st = m->state;
    const int B = s->B, D = m->D, l = st->l, Bl = B * l;
    if (m->prev) { /* the previous layer's P' (the encoder runs the layers in order) */
        const LunaState *ps = m->prev->state;
        XB_ASSERT(m->prev->spec == m->spec && ps->l == l);
        memcpy(st->pin, ps->pout, (size_t)Bl * D * sizeof(float));
    } else {
        for (int b = 0; b < B; b++)
            memcpy(st->pin + (size_t)b * l * D, mixer_param(s, st->p_p),
                   (size_t)l * D * sizeof(float));
    }
    memset(st->dpout, 0, (size_t)Bl * D * sizeof(float));
    xattn_forward(&st->pack, st->c, st->pin, x, s->mask, s->params, s->pt, B, s->scratch);
    xattn_forward(&st->unpack, y, x, st->c, NULL, s->params, s->pt, B, s->scratch);
    /* the packed sequence for the next layer */
    for (size_t k = 0; k < (size_t)Bl * D; k++) st->psum[k] = st->pin[k] + st->c[k];
    layernorm_forward(st->pout, st->mean, st->rstd, st->psum, mixer_param(s, st->p_lnw),
                      mixer_param(s, st->p_lnb), Bl, D);
}

static void luna_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                          const float *x) {
    LunaState *st = m->state;
    const int B = s->B, D = m->D, l = st->l, Bl = B * l;
    const size_t mark = arena_mark(s->scratch), n = (size_t)Bl * D;
    float *dc = arena_floats(s->scratch, n);
    float *dsum = arena_floats(s->scratch, n);
    float *dpin = arena_floats(s->scratch, n);
    memset(dc, 0, n * sizeof(float));
    memset(dsum, 0, n * sizeof(float));
    memset(dpin, 0, n * sizeof(float));
    xattn_backward(&st->unpack, dx, dc, dy, x, st->c, NULL, s->params, s->grads, s->pt, B,
                   s->scratch);
    /* P' = LN(P + C) */
    layernorm_backward(dsum, mixer_grad(s, st->p_lnw), mixer_grad(s, st->p_lnb), st->dpout,
                       st->psum, mixer_param(s, st->p_lnw), st->mean, st->rstd, Bl, D);
    for (size_t k = 0; k < n; k++) dc[k] += dsum[k], dpin[k] += dsum[k];
    xattn_backward(&st->pack, dpin, dx, dc, st->pin, x, s->mask, s->params, s->grads, s->pt, B,
                   s->scratch);
    /* P's gradient: into the previous layer's P', or the learned P (summed over the batch) */
    if (m->prev) {
        LunaState *ps = m->prev->state;
        for (size_t k = 0; k < n; k++) ps->dpout[k] += dpin[k];
    } else {
        float *g = mixer_grad(s, st->p_p);
        for (int b = 0; b < B; b++)
            for (size_t k = 0; k < (size_t)l * D; k++) g[k] += dpin[(size_t)b * l * D + k];
    }
    arena_reset_to(s->scratch, mark);
}

static uint64_t luna_flops(const Mixer *m, int B, int L, int backward) {
    const LunaState *st = m->state;
    return xattn_flops(&st->pack, B, st->l, L, backward) +
           xattn_flops(&st->unpack, B, L, st->l, backward);
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
