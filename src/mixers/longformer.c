/* longformer: Longformer's attention (Beltagy et al., arXiv 2004.05150, §3.1): every token sees a
 * (optionally dilated) window of w/2 keys on either side plus the global tokens; the global tokens
 * (the first `global` positions: the CLS token in LRA) see every token, through their own Q, K,
 * V projections, initialised as copies of the local ones (§3.1, "Linear Projections for Global
 * Attention"). LRA: window 512, one global token. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"

static const OptSpec longformer_opts[] = {
    MOPT_INT("window", 512, 0, 2097152, "window width w: w/2 keys on either side (LRA: 512)"),
    MOPT_INT("dilation", 1, 1, 4096,
             "gap between window keys (the paper's dilated sliding window)"),
    MOPT_INT("global", 1, 0, 1048576,
             "leading positions with global attention (LRA: 1, the CLS token)"),
    MOPT_BOOL("bias", 0, "biases in the projections"),
};
#define NOPTS MOPT_COUNT(longformer_opts)

enum { TILE = 64 };

typedef struct LongformerState {
    AttnMixer am; /* first: the local projections and attention */
    int half, dilation, G;
    int p_wg, p_bg; /* global Q, K, V projection (3D, D) and bias */
    float *qkvg;    /* (B, L, 3D) saved */
    float *attg;    /* (B, G, D) saved */
    float *lseg;    /* (B, H, G) saved */
} LongformerState;

static int lf_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h;
    const LongformerState *st = s->pattern->ctx;
    const int reach = st->half * st->dilation, G = XB_MIN(st->G, s->Lk);
    int n = 0;
    if (G > 0) lo[n] = 0, hi[n] = G, n++;
    const int a = XB_MAX(0, i0 - reach), e = XB_MIN(s->Lk, i0 + bq + reach);
    if (n && a <= hi[0])
        hi[0] = XB_MAX(hi[0], e);
    else if (a < e)
        lo[n] = a, hi[n] = e, n++;
    return n;
}

static void lf_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk, float *bias,
                    int ld) {
    (void)b, (void)h;
    const LongformerState *st = s->pattern->ctx;
    const int reach = st->half * st->dilation;
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++) {
            const int j = j0 + c, d = j - (i0 + r);
            const int ok = j < st->G || (d >= -reach && d <= reach && d % st->dilation == 0);
            bias[(size_t)r * ld + c] = ok ? 0.0f : -INFINITY;
        }
}

static void longformer_create(Mixer *m, ParamTable *pt) {
    LongformerState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    const int bias = opt_bool(m->opts, longformer_opts, NOPTS, "bias");
    attn_mixer_create(m, pt, &st->am, 0, bias);
    st->half = opt_int(m->opts, longformer_opts, NOPTS, "window") / 2;
    st->dilation = opt_int(m->opts, longformer_opts, NOPTS, "dilation");
    st->G = opt_int(m->opts, longformer_opts, NOPTS, "global");
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "%s.qkv_global.weight", m->prefix);
    st->p_wg = params_add_copy(pt, name, st->am.p_wqkv, 1);
    st->p_bg = -1;
    if (bias) {
        snprintf(name, sizeof name, "%s.qkv_global.bias", m->prefix);
        st->p_bg = params_add_copy(pt, name, st->am.p_bqkv, 0);
    }
    st->am.pattern =
        (AttnPattern){.bq = TILE, .max_ranges = 2, .ranges = lf_ranges, .mask = lf_mask, .ctx = st};
    st->am.has_pattern = 1;
}

static int longformer_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H;
    return mixer_check_len(opts, longformer_opts, NOPTS, "global", max_len,
                           "%d global tokens do not fit in model.max_len = %d (valid: 0 to %d)",
                           err);
}

/* The global attention: queries are the first G rows of the global projection, keys and values
 * all its rows. */
static AttnShape global_shape(const Mixer *m, int B, int L) {
    const LongformerState *st = m->state;
    const int D = m->D;
    AttnShape s = attn_shape(B, m->H, XB_MIN(st->G, L), L, D / m->H, 3 * D, 3 * D, 3 * D, D);
    s.bsq = (size_t)L * 3 * D; /* the queries are rows of a (B, L, 3D) buffer */
    return s;
}

static void longformer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    LongformerState *st = m->state;
    attn_mixer_plan(m, acts, scratch, B, L);
    const size_t BL = (size_t)B * L;
    st->qkvg = arena_floats(acts, BL * 3 * m->D);
    st->attg = arena_floats(acts, (size_t)B * st->G * m->D + 1);
    st->lseg = arena_floats(acts, (size_t)B * m->H * st->G + 1);
    /* backward, on top of attn_mixer's: d(qkv_global), d(att_global), the global kernel's tiles */
    AttnShape g = global_shape(m, B, L);
    arena_floats(scratch, BL * 3 * m->D);
    arena_floats(scratch, (size_t)B * st->G * m->D + 1);
    arena_alloc(scratch, attn_scratch_floats(&g, omp_get_max_threads()) * sizeof(float));
}

static void longformer_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    LongformerState *st = m->state;
    AttnMixer *am = &st->am;
    const int D = m->D, B = s->B, L = s->L, BL = B * L, G = XB_MIN(st->G, L);
    AttnShape loc = attn_mixer_shape(m, B, L), glo = global_shape(m, B, L);
    linear_forward(am->qkv, x, mixer_param(s, am->p_wqkv), mixer_param(s, am->p_bqkv), BL, D,
                   3 * D);
    linear_forward(st->qkvg, x, mixer_param(s, st->p_wg), mixer_param(s, st->p_bg), BL, D, 3 * D);
    attn_forward(am->att, am->lse, am->qkv, am->qkv + D, am->qkv + 2 * D, s->mask, &loc,
                 s->scratch);
    if (G > 0) {
        attn_forward(st->attg, st->lseg, st->qkvg, st->qkvg + D, st->qkvg + 2 * D, s->mask, &glo,
                     s->scratch);
        for (int b = 0; b < B; b++) /* the global rows take the global result */
            memcpy(am->att + (size_t)b * L * D, st->attg + (size_t)b * G * D,
                   (size_t)G * D * sizeof(float));
    }
    linear_forward(y, am->att, mixer_param(s, am->p_wo), mixer_param(s, am->p_bo), BL, D, D);
}

static void longformer_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                                const float *x) {
    LongformerState *st = m->state;
    AttnMixer *am = &st->am;
    const int D = m->D, B = s->B, L = s->L, BL = B * L, G = XB_MIN(st->G, L);
    AttnShape loc = attn_mixer_shape(m, B, L), glo = global_shape(m, B, L);
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    float *dqkvg = arena_floats(s->scratch, (size_t)BL * 3 * D);
    float *dattg = arena_floats(s->scratch, (size_t)B * G * D + 1);
    linear_backward(datt, mixer_grad(s, am->p_wo), mixer_grad(s, am->p_bo), dy, am->att,
                    mixer_param(s, am->p_wo), BL, D, D);
    if (G > 0) {
        for (int b = 0; b < B; b++) { /* the global rows' gradient goes to the global attention */
            memcpy(dattg + (size_t)b * G * D, datt + (size_t)b * L * D,
                   (size_t)G * D * sizeof(float));
            memset(datt + (size_t)b * L * D, 0, (size_t)G * D * sizeof(float));
        }
        attn_backward(dqkvg, dqkvg + D, dqkvg + 2 * D, dattg, st->qkvg, st->qkvg + D,
                      st->qkvg + 2 * D, st->attg, st->lseg, s->mask, &glo, s->scratch);
    }
    attn_backward(dqkv, dqkv + D, dqkv + 2 * D, datt, am->qkv, am->qkv + D, am->qkv + 2 * D,
                  am->att, am->lse, s->mask, &loc, s->scratch);
    linear_backward(dx, mixer_grad(s, am->p_wqkv), mixer_grad(s, am->p_bqkv), dqkv, x,
                    mixer_param(s, am->p_wqkv), BL, D, 3 * D);
    linear_backward(dx, mixer_grad(s, st->p_wg), mixer_grad(s, st->p_bg), dqkvg, x,
                    mixer_param(s, st->p_wg), BL, D, 3 * D);
    arena_reset_to(s->scratch, mark);
}

static uint64_t longformer_flops(const Mixer *m, int B, int L, int backward) {
    const LongformerState *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    AttnShape glo = global_shape(m, B, L);
    const uint64_t proj = 2 * BL * D * 3 * D; /* the global projection, on top of the local body */
    return attn_mixer_flops(m, B, L, backward) + (backward ? 2 * proj : proj) +
           (XB_MIN(st->G, L) > 0 ? attn_flops(&glo, backward) : 0);
}

const MixerSpec mixer_longformer = {
    .name = "longformer",
    .classes = "FP+M",
    .arxiv = "2004.05150",
    .title = "Longformer: (dilated) sliding window + global tokens with their own projections",
    .honours_mask = 1,
    MIXER_OPTS(longformer_opts),
    .ops = &(const MixerOps){MIXER_OPS(longformer), .check = longformer_check},
};
