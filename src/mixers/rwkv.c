/* rwkv: RWKV-4 time mixing (Peng et al., arXiv 2305.13048, §3.1-3.2), as the authors' code runs
 * it (BlinkDL/RWKV-LM RWKV-v4/src/model.py RWKV_TimeMix, RWKV-v4/cuda/wkv_cuda.cu):
 *   xx = the sequence shifted by one (time_shift: position t sees x_{t−1}, x_{−1} = 0);
 *   x_k = μ_k ⊙ x + (1 − μ_k) ⊙ xx (likewise x_v, x_r: the learned token-shift mix);
 *   k = x_k W_kᵀ, v = x_v W_vᵀ, r = x_r W_rᵀ (no biases);
 *   Y = (σ(r) ⊙ WKV(w, u, k, v)) W_oᵀ with w = −exp(time_decay), u = time_first
 * (kernels/wkv.h: the WKV recurrence in its stable running-maximum form).
 * Initialisation (RWKV_TimeMix's "fancy init", RWKV_Init): with r0 = layer/(layers−1) and
 * r1 = 1 − layer/layers, time_decay_i = −5 + 8·(i/(D−1))^(0.7+1.3·r0), time_first_i =
 * ln 0.3 + 0.5·((i+1) mod 3 − 1), μ_k = (i/D)^r1, μ_v = (i/D)^r1 + 0.3·r0, μ_r = (i/D)^(0.5·r1);
 * W_v orthogonal (gain 1), W_k, W_r and W_o zero (scale_init = 0).
 *
 * Bidirectional (the default, for the encoder tasks): Vision-RWKV's Bi-WKV (Duan et al., arXiv
 * 2403.02308, eq. 5; OpenGVLab/Vision-RWKV classification/mmcls_custom/models/backbones/vrwkv.py
 * VRWKV_SpatialMix): the sum runs over every i ≠ t with decay e^{−(|t−i|−1)·w/T} and bonus
 * e^{u/T + k_t}, w = time_decay used as it is (no −exp: the spatial_decay / T of the code) and T
 * the row's number of real tokens; the same fancy initialisation of the decay, bonus and mixes,
 * but the projections drawn from N(0, 0.02²) (the classifier's TruncNormal init_cfg) where
 * RWKV-4 zeroes key, receptance and output. Vision-RWKV replaces the token
 * shift by its 2-D Q-Shift (quarters of the channels from the left, right, upper and lower
 * neighbour); a sequence has only two neighbours, so `shift: q_shift` (the default here) takes
 * the first half of the channels from t−1 and the second half from t+1 (our 1-D reading). The CUDA
 * kernel's 1e-6 added to the denominator (in the scale of the largest term, where the denominator
 * is at least 1) is left out.
 *
 * Padding: the shift reads 0 from padding positions, the WKV skips them (kernels/wkv.h) and
 * Bi-WKV's T counts real tokens, so a row's real outputs equal those of the row cut to its real
 * length; padding rows output 0. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/fastmath.h"
#include "kernels/linear.h"
#include "kernels/wkv.h"
#include "mixers/mixer.h"

static const char *const SHIFTS[] = {"auto", "token", "q_shift", NULL};
enum { SHIFT_AUTO, SHIFT_TOKEN, SHIFT_Q, N_SHIFTS };
MOPT_CHOICES_ARE(SHIFTS, N_SHIFTS);

static const OptSpec rwkv_opts[] = {
    MOPT_BOOL("bidirectional", 1,
              "Vision-RWKV's Bi-WKV (decay by |t-i|/T over both sides; projections initialised "
              "N(0, 0.02^2) as Vision-RWKV's); false: RWKV-4's causal WKV (key, receptance, output "
              "zero and value orthogonal at initialisation, as RWKV_Init)"),
    MOPT_ENUM("shift", SHIFT_AUTO, SHIFTS,
              "token shift: token (RWKV-4: every channel from t-1), q_shift (Vision-RWKV's Q-Shift "
              "in 1-D: half the channels from t-1, half from t+1; bidirectional only), auto "
              "(q_shift when bidirectional, else token)"),
};
#define NOPTS MOPT_COUNT(rwkv_opts)

typedef struct RwkvState {
    int bi, qshift;
    int p_decay, p_first, p_mk, p_mv, p_mr, p_wk, p_wv, p_wr, p_wo;
    /* saved by the forward, (B, L, D) unless noted */
    float *xx, *xk, *xv, *xr, *k, *v, *r, *wkv, *out;
    float *w, *rscale; /* (D): the per-step log-decay passed to the WKV; (B): Bi-WKV's 1/T */
} RwkvState;

/* The fancy init of channel i of D, from the depth ratios r0 = layer/(layers−1) (0 for one
 * layer) and r1 = 1 − layer/layers, the two arguments. */
enum { INIT_DECAY, INIT_FIRST, INIT_MIX_K, INIT_MIX_V, INIT_MIX_R };

static void init_channel(float *w, const ParamInfo *p, int which) {
    const int D = (int)p->size;
    const double r0 = p->init_arg[0], r1 = p->init_arg[1];
    for (int i = 0; i < D; i++) {
        const double xi = (double)i / D;
        switch (which) {
        case INIT_DECAY:
            w[i] = (float)(-5.0 + 8.0 * pow(D > 1 ? (double)i / (D - 1) : 0.0, 0.7 + 1.3 * r0));
            break;
        case INIT_FIRST:
            w[i] = (float)(log(0.3) + 0.5 * ((i + 1) % 3 - 1));
            break;
        case INIT_MIX_K:
            w[i] = (float)pow(xi, r1);
            break;
        case INIT_MIX_V:
            w[i] = (float)(pow(xi, r1) + 0.3 * r0);
            break;
        default:
            w[i] = (float)pow(xi, 0.5 * r1);
        }
    }
}
static void init_decay(float *w, const ParamInfo *p, Rng *rng) {
    (void)rng;
    init_channel(w, p, INIT_DECAY);
}
static void init_first(float *w, const ParamInfo *p, Rng *rng) {
    (void)rng;
    init_channel(w, p, INIT_FIRST);
}
static void init_mix_k(float *w, const ParamInfo *p, Rng *rng) {
    (void)rng;
    init_channel(w, p, INIT_MIX_K);
}
static void init_mix_v(float *w, const ParamInfo *p, Rng *rng) {
    (void)rng;
    init_channel(w, p, INIT_MIX_V);
}
static void init_mix_r(float *w, const ParamInfo *p, Rng *rng) {
    (void)rng;
    init_channel(w, p, INIT_MIX_R);
}

/* nn.init.orthogonal_ (gain 1): the rows of a Gaussian matrix made orthonormal (Gram-Schmidt in
 * double, which gives the Q of a QR with a positive diagonal of R). */
static void init_orthogonal(float *w, const ParamInfo *p, Rng *rng) {
    const int R = p->shape[0], C = p->shape[1];
    double *a = malloc((size_t)R * C * sizeof *a);
    XB_ASSERT(a && R <= C);
    for (size_t i = 0; i < (size_t)R * C; i++) a[i] = rng_normal(rng);
    for (int i = 0; i < R; i++) {
        double *ai = a + (size_t)i * C;
        for (int j = 0; j < i; j++) {
            const double *aj = a + (size_t)j * C;
            double d = 0.0;
            for (int c = 0; c < C; c++) d += ai[c] * aj[c];
            for (int c = 0; c < C; c++) ai[c] -= d * aj[c];
        }
        double nrm = 0.0;
        for (int c = 0; c < C; c++) nrm += ai[c] * ai[c];
        nrm = sqrt(nrm);
        for (int c = 0; c < C; c++) ai[c] /= nrm;
    }
    for (size_t i = 0; i < (size_t)R * C; i++) w[i] = (float)a[i];
    free(a);
}

static void rwkv_create(Mixer *m, ParamTable *pt) {
    RwkvState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    st->bi = opt_bool(m->opts, rwkv_opts, NOPTS, "bidirectional");
    const int sh = opt_enum(m->opts, rwkv_opts, NOPTS, "shift");
    st->qshift = sh == SHIFT_Q || (sh == SHIFT_AUTO && st->bi);
    const int D = m->D, n = m->n_layers > 0 ? m->n_layers : 1; /* unknown: a first layer */
    const double ratios[2] = {n > 1 ? (double)m->layer / (n - 1) : 0.0, 1.0 - (double)m->layer / n};
    char name[XB_PARAM_NAME];
#define VEC(field, what, fn)                                                                       \
    snprintf(name, sizeof name, "%s.%s", m->prefix, what);                                         \
    st->field = params_add_fn(pt, name, 1, &D, fn, ratios, 2, 0)
    VEC(p_decay, "time_decay", init_decay);
    VEC(p_first, "time_first", init_first);
    VEC(p_mk, "time_mix_k", init_mix_k);
    VEC(p_mv, "time_mix_v", init_mix_v);
    VEC(p_mr, "time_mix_r", init_mix_r);
#undef VEC
    /* The projections: RWKV-4's RWKV_Init (key, receptance, output zero: scale_init = 0; value
     * orthogonal), or Vision-RWKV's, where those scale_init marks are never read and the
     * classifier's init_cfg (configs/vrwkv/vrwkv_*_in1k.py: TruncNormal, layer='Linear',
     * std=0.02, truncated at ±2, i.e. never at this width) draws every Linear. */
    const char *what[4] = {"key", "value", "receptance", "output"};
    int *idx[4] = {&st->p_wk, &st->p_wv, &st->p_wr, &st->p_wo};
    const int sq[2] = {D, D};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s.weight", m->prefix, what[i]);
        *idx[i] = st->bi   ? params_add2(pt, name, D, D, INIT_NORMAL, 0.02f, 1)
                  : i == 1 ? params_add_fn(pt, name, 2, sq, init_orthogonal, NULL, 0, 1)
                           : params_add2(pt, name, D, D, INIT_ZEROS, 0, 1);
    }
}

static WkvShape wkv_shape(const Mixer *m, const unsigned char *mask, int B, int L) {
    const RwkvState *st = m->state;
    WkvShape s = {.B = B,
                  .L = L,
                  .C = m->D,
                  .bidirectional = st->bi,
                  .mask = mask,
                  .rscale = st->bi ? st->rscale : NULL};
    return s;
}

static void rwkv_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    RwkvState *st = m->state;
    const size_t BLD = (size_t)B * L * m->D;
    float **saved[] = {&st->xx, &st->xk, &st->xv,  &st->xr, &st->k,
                       &st->v,  &st->r,  &st->wkv, &st->out};
    for (size_t i = 0; i < XB_ARRAY_LEN(saved); i++) *saved[i] = arena_floats(acts, BLD);
    st->w = arena_floats(acts, (size_t)m->D);
    st->rscale = arena_floats(acts, (size_t)B);
    WkvShape s = wkv_shape(m, NULL, B, L);
    const size_t mark = arena_mark(scratch); /* forward: the kernel's scratch */
    arena_floats(scratch, wkv_scratch_floats(&s));
    arena_reset_to(scratch, mark);
    /* backward: dout, dk, dv, dr, dxk, dxv, dxr, dxx, dw, du, then the kernel's scratch */
    for (int i = 0; i < 8; i++) arena_floats(scratch, BLD);
    for (int i = 0; i < 2; i++) arena_floats(scratch, (size_t)m->D);
    arena_floats(scratch, wkv_scratch_floats(&s));
}

static inline int is_real(const MixerStep *s, int b, int t) {
    return !s->mask || s->mask[(size_t)b * s->L + t];
}

/* The neighbour channel c of position t reads: t−1, or t+1 for the second half under Q-Shift;
 * −1 when there is none (the edge, or a padding position). */
static inline int shift_src(const RwkvState *st, const MixerStep *s, int b, int t, int c, int D) {
    const int src = st->qshift && c >= D / 2 ? t + 1 : t - 1;
    return src >= 0 && src < s->L && is_real(s, b, src) ? src : -1;
}

static void rwkv_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    RwkvState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, BL = B * L;
    const float *mk = mixer_param(s, st->p_mk), *mv = mixer_param(s, st->p_mv),
                *mr = mixer_param(s, st->p_mr), *decay = mixer_param(s, st->p_decay);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) {
        const int b = r / L, t = r % L;
        for (int c = 0; c < D; c++) {
            const int src = shift_src(st, s, b, t, c, D);
            const size_t i = (size_t)r * D + c;
            const float xx = src >= 0 ? x[((size_t)b * L + src) * D + c] : 0.0f;
            st->xx[i] = xx;
            st->xk[i] = x[i] * mk[c] + xx * (1.0f - mk[c]);
            st->xv[i] = x[i] * mv[c] + xx * (1.0f - mv[c]);
            st->xr[i] = x[i] * mr[c] + xx * (1.0f - mr[c]);
        }
    }
    linear_forward(st->k, st->xk, mixer_param(s, st->p_wk), NULL, BL, D, D);
    linear_forward(st->v, st->xv, mixer_param(s, st->p_wv), NULL, BL, D, D);
    linear_forward(st->r, st->xr, mixer_param(s, st->p_wr), NULL, BL, D, D);
    for (int c = 0; c < D; c++) st->w[c] = st->bi ? -decay[c] : -expf(decay[c]);
    for (int b = 0; b < B; b++) {
        int T = 0;
        for (int t = 0; t < L; t++) T += is_real(s, b, t);
        st->rscale[b] = T > 0 ? 1.0f / (float)T : 0.0f;
    }
    WkvShape ws = wkv_shape(m, s->mask, B, L);
    wkv_forward(st->wkv, st->w, mixer_param(s, st->p_first), st->k, st->v, &ws, s->scratch);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < (size_t)BL * D; i++)
        st->out[i] = st->wkv[i] / (1.0f + xb_expf(-st->r[i]));
    linear_forward(y, st->out, mixer_param(s, st->p_wo), NULL, BL, D, D);
}

static void rwkv_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                          const float *x) {
    RwkvState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, BL = B * L;
    const size_t BLD = (size_t)BL * D, mark = arena_mark(s->scratch);
    float *dout = arena_floats(s->scratch, BLD), *dk = arena_floats(s->scratch, BLD),
          *dv = arena_floats(s->scratch, BLD), *dr = arena_floats(s->scratch, BLD),
          *dxk = arena_floats(s->scratch, BLD), *dxv = arena_floats(s->scratch, BLD),
          *dxr = arena_floats(s->scratch, BLD), *dxx = arena_floats(s->scratch, BLD),
          *dw = arena_floats(s->scratch, (size_t)D), *du = arena_floats(s->scratch, (size_t)D);
    linear_backward(dout, mixer_grad(s, st->p_wo), NULL, dy, st->out, mixer_param(s, st->p_wo), BL,
                    D, D);
    float *dwkv = dxk; /* borrowed until the key projection's backward */
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < BLD; i++) {
        const float sg = 1.0f / (1.0f + xb_expf(-st->r[i]));
        dwkv[i] = dout[i] * sg;
        dr[i] = dout[i] * st->wkv[i] * sg * (1.0f - sg);
    }
    WkvShape ws = wkv_shape(m, s->mask, B, L);
    wkv_backward(dw, du, dk, dv, dwkv, st->w, mixer_param(s, st->p_first), st->k, st->v, &ws,
                 s->scratch);
    memset(dxk, 0, BLD * sizeof *dxk);
    float *gd = mixer_grad(s, st->p_decay), *gf = mixer_grad(s, st->p_first);
    for (int c = 0; c < D; c++) { /* w = −exp(decay) (RWKV-4) or −decay (Bi-WKV) */
        gd[c] += st->bi ? -dw[c] : dw[c] * st->w[c];
        gf[c] += du[c];
    }
    linear_backward(dxk, mixer_grad(s, st->p_wk), NULL, dk, st->xk, mixer_param(s, st->p_wk), BL, D,
                    D);
    linear_backward(dxv, mixer_grad(s, st->p_wv), NULL, dv, st->xv, mixer_param(s, st->p_wv), BL, D,
                    D);
    linear_backward(dxr, mixer_grad(s, st->p_wr), NULL, dr, st->xr, mixer_param(s, st->p_wr), BL, D,
                    D);
    /* the mixes: x_k = μ_k x + (1 − μ_k) xx; μ's gradient sums the rows in order per channel
     * (blocks of channels per thread, rows inner: whole cache lines) */
    const float *mk = mixer_param(s, st->p_mk), *mv = mixer_param(s, st->p_mv),
                *mr = mixer_param(s, st->p_mr);
    float *gmk = mixer_grad(s, st->p_mk), *gmv = mixer_grad(s, st->p_mv),
          *gmr = mixer_grad(s, st->p_mr);
    enum { CB = 16 };
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < D; c0 += CB) {
        const int nc = D - c0 < CB ? D - c0 : CB;
        float ak[CB] = {0}, av[CB] = {0}, ar[CB] = {0};
        for (int r = 0; r < BL; r++)
            for (int j = 0; j < nc; j++) {
                const int c = c0 + j;
                const size_t i = (size_t)r * D + c;
                const float diff = x[i] - st->xx[i];
                ak[j] += dxk[i] * diff;
                av[j] += dxv[i] * diff;
                ar[j] += dxr[i] * diff;
                dx[i] += dxk[i] * mk[c] + dxv[i] * mv[c] + dxr[i] * mr[c];
                dxx[i] =
                    dxk[i] * (1.0f - mk[c]) + dxv[i] * (1.0f - mv[c]) + dxr[i] * (1.0f - mr[c]);
            }
        for (int j = 0; j < nc; j++)
            gmk[c0 + j] += ak[j], gmv[c0 + j] += av[j], gmr[c0 + j] += ar[j];
    }
    /* the shift: each position's neighbour gets its gradient back (every (src, c) from one
     * position only) */
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) {
        const int b = r / L;
        for (int c = 0; c < D; c++) {
            const int src = shift_src(st, s, b, r % L, c, D);
            if (src >= 0) dx[((size_t)b * L + src) * D + c] += dxx[(size_t)r * D + c];
        }
    }
    arena_reset_to(s->scratch, mark);
}

static uint64_t rwkv_flops(const Mixer *m, int B, int L, int backward) {
    const uint64_t D = (uint64_t)m->D, proj = 8 * (uint64_t)B * (uint64_t)L * D * D;
    WkvShape s = wkv_shape(m, NULL, B, L);
    return (backward ? 2 * proj : proj) + wkv_flops(&s, backward);
}

/* A causal WKV with Q-Shift would still read position t + 1: refused, so that bidirectional: false
 * always means causal. */
static int rwkv_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H, (void)max_len;
    if (!opt_bool(opts, rwkv_opts, NOPTS, "bidirectional") &&
        opt_enum(opts, rwkv_opts, NOPTS, "shift") == SHIFT_Q)
        return mixer_opt_error(err, "shift",
                               "q_shift reads position t+1, which the causal form "
                               "(bidirectional: false) may not see (valid: token or auto)");
    return 0;
}

const MixerSpec mixer_rwkv = {
    .name = "rwkv",
    .classes = "RNN",
    .arxiv = "2305.13048",
    .title = "RWKV-4 time mixing: token shift, WKV recurrence with per-channel decay and bonus, "
             "receptance gate; bidirectional as Vision-RWKV's Bi-WKV",
    .honours_mask = 1,
    .beyond_survey = 1,
    MIXER_OPTS(rwkv_opts),
    .ops = &(const MixerOps){MIXER_OPS(rwkv), .check = rwkv_check},
};
