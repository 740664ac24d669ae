/* hyena: the Hyena operator (Poli et al., "Hyena Hierarchy", arXiv 2302.10866, §3), as the
 * authors' code runs it: HazyResearch/safari src/models/sequence/hyena.py (HyenaOperator of
 * order 2, HyenaFilter, PositionalEmbedding, ExponentialModulation, Sin, fftconv_ref):
 *
 *   (x0, x1, v) = split(shortconv(X·W_inᵀ + b_in)),   shortconv: depthwise, causal, 3 taps
 *   u = v ⊙ x1;   c = h ∗ u + bias ⊙ u   (a long convolution by FFT over 2L points);
 *   Y = (c ⊙ x0)·W_outᵀ + b_out.
 *
 * The long filter h (L, D) is implicit (eq. (7)): a small FFN of the positional features z_l of
 * position l, h_l = FFN(z_l) ⊙ window_l, with FFN = Linear(emb, F) → Sin → [Linear(F, F) → Sin]×2 →
 * Linear(F, D, no bias), Sin(x) = sin(f ⊙ x) with one trainable frequency vector f (F), initialised
 * to w, shared by the three activations (the code's one `act` module); z_l = [t_l, cos(f_k ω_l),
 * −sin(f_k ω_l)], t_l = l/(n−1), ω_l = 2πl/n, f_k = linspace(1e-4, bands − 1, bands), bands =
 * (emb − 1)/2, n = model.max_len (the code's l_max: the first L rows are used, so the filter does
 * not depend on the padded length); window_l = exp(−t_l·|δ_d|), δ = linspace(ln(1e-2)/1.5,
 * ln(1e-2)/0.3, D) (fast_decay_pct 0.3, slow_decay_pct 1.5, target 1e-2, shift 0). Defaults are
 * HyenaFilter's (configs/model/layer/hyena-filter.yaml): emb_dim 3, w 1, FFN width 64 (the
 * operator's filter_order), num_inner_mlps 2. The code registers z with a learning rate of 1e-5
 * and the window's δ with 0; here both are constants of max_len, and the code's filter learning
 * rate (1e-3) is the optimizer's. No weight decay on the filter (HyenaFilter wd 0).
 *
 * Bidirectional (the encoder form): as M2-BERT's Hyena filter (Fu et al., arXiv 2310.12109;
 * HazyResearch/m2 bert/src/mm/hyena_utils.py, HyenaFilter with bidirectional=True, and
 * monarch_mixer_sequence_mixer.py): a second FFN `implicit_filter_rev` over the same z, with the
 * same Sin frequencies, window and bias, gives a backward filter h_rev; the kernel is
 * pad(h, (0, L)) + pad(flip(h_rev), (L, 0)), so c[t] = Σ_{j≤t} h[t−j]u_j + Σ_{j>t} h_rev[j−t−1]u_j
 * + bias·u_t (kernels/fftconv.h). The short convolutions stay causal, as in M2 (whose
 * MonarchMixerSequenceMixing gates with the first third before the long convolution and the
 * second after it: safari's order with in_proj's rows relabelled; safari's is kept).
 *
 * Padding: the projections' padded rows are zeroed before the short convolution and u's before the
 * long one, so no padding content reaches a real position (for any mask); with 2L points and a
 * filter tied to max_len, the real outputs equal those of the row cut to its length.
 *
 * Initialisation as PyTorch's defaults for the code's modules: nn.Linear and nn.Conv1d weights and
 * biases U(±1/√fan_in), the filter bias N(0, 1). FLOPs: the projections, the FFN and the short
 * convolution (2 per tap) as matrix products, the FFT convolution (kernels/fftconv.h); Sin, the
 * window and the gates are element-wise. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "kernels/fftconv.h"
#include "kernels/linear.h"
#include "mixers/mixer.h"

/* The most taps of the short convolution: the option's maximum and its backward's per-thread
 * sums. */
enum { MAX_SHORT_ORDER = 64 };

static const OptSpec hyena_opts[] = {
    MOPT_BOOL("bidirectional", 1,
              "a forward and a backward implicit filter (M2-BERT's bidirectional Hyena, for the "
              "encoder); false: causal, as safari's HyenaOperator"),
    MOPT_INT("filter_order", 64, 1, 4096,
             "width of the implicit filter's FFN (HyenaOperator filter_order: 64)"),
    MOPT_INT("emb_dim", 3, 3, 255,
             "positional features of the filter, odd: t and (emb_dim-1)/2 cos/sin bands "
             "(HyenaFilter: 3; safari's Pile config 33, associative recall 5)"),
    MOPT_FLOAT("w", 1, 1e-3, 1e3,
               "initial frequency of the filter's Sin activations (HyenaFilter: 1; Pile config 14, "
               "associative recall 10)"),
    MOPT_INT("short_order", 3, 1, MAX_SHORT_ORDER,
             "taps of the causal depthwise convolution on the projections (HyenaOperator "
             "short_filter_order: 3)"),
    MOPT_BOOL("modulate", 1,
              "multiply the filter by the exponential decay window (ExponentialModulation)"),
};
#define NOPTS MOPT_COUNT(hyena_opts)

enum { NLIN = 4 };       /* FFN layers: implicit_filter.0, .2, .4, .6 */
enum { SIN_ROWS = 256 }; /* rows per partial sum of the frequencies' gradient */

typedef struct HyenaState {
    int nd, F, emb, K, n; /* filters (2 bidirectional), FFN width, features, taps, max_len */
    float *zpos;          /* (n, emb) positional features */
    float *window;        /* (n, D) exp(−t·|δ|), or 1 without modulation */
    int p_win, p_bin, p_sw, p_sb, p_wout, p_bout, p_fbias, p_freq;
    int p_w[2][NLIN], p_b[2][NLIN]; /* per filter; p_b[r][3] = −1 (the last layer has no bias) */
    FftConv fc;
    /* saved */
    float *p;                     /* (B, L, 3D) in_proj output, padded rows zeroed */
    float *sc;                    /* (B, L, 3D) short convolution: x0, x1, v */
    float *u, *c, *g;             /* (B, L, D) v⊙x1 (padded rows zeroed), long conv, c⊙x0 */
    float *pre[2][3], *act[2][3]; /* (L, F) before and after each Sin */
    float *h[2];                  /* (L, D) the filters */
} HyenaState;

static int hyena_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H, (void)max_len;
    const int e = opt_int(opts, hyena_opts, NOPTS, "emb_dim");
    if (e % 2 == 0) {
        return mixer_opt_error(
            err, "emb_dim",
            "%d is even (valid: an odd number >= 3: t and pairs of cos/sin features)", e);
    }
    return 0;
}

static void init_const(float *w, const ParamInfo *p, Rng *rng) {
    (void)rng;
    for (size_t k = 0; k < p->size; k++) w[k] = (float)p->init_arg[0];
}

/* PyTorch's nn.Linear default: weight and bias U(±1/√in). */
static int add_linear(ParamTable *pt, const char *prefix, const char *what, int out, int in,
                      int bias, int decay, int *pb) {
    const float a = 1.0f / sqrtf((float)in);
    XB_ASSERT(strlen(prefix) + strlen(what) + 8 < XB_PARAM_NAME);
    const int w = params_add2f(pt, out, in, INIT_UNIFORM, a, decay, "%s.%s.weight", prefix, what);
    *pb = -1;
    if (bias) {
        *pb = params_add1f(pt, out, INIT_UNIFORM, a, 0, "%s.%s.bias", prefix, what);
    }
    return w;
}

static void hyena_create(Mixer *m, ParamTable *pt) {
    HyenaState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    const int D = m->D, n = m->max_len;
    st->nd = opt_bool(m->opts, hyena_opts, NOPTS, "bidirectional") ? 2 : 1;
    st->F = opt_int(m->opts, hyena_opts, NOPTS, "filter_order");
    st->emb = opt_int(m->opts, hyena_opts, NOPTS, "emb_dim");
    st->K = opt_int(m->opts, hyena_opts, NOPTS, "short_order");
    st->n = n;
    const int F = st->F, emb = st->emb, K = st->K;
    char name[2 * XB_PARAM_NAME];
    st->p_win = add_linear(pt, m->prefix, "in_proj", 3 * D, D, 1, 1, &st->p_bin);
    st->p_sw = add_linear(pt, m->prefix, "short_filter", 3 * D, K, 1, 1, &st->p_sb);
    st->p_fbias = params_add1f(pt, D, INIT_NORMAL, 1.0f, 0, "%s.filter_fn.bias", m->prefix);
    const double w[1] = {opt_float(m->opts, hyena_opts, NOPTS, "w")};
    const int sf[1] = {F};
    snprintf(name, sizeof name, "%s.filter_fn.implicit_filter.1.freq", m->prefix);
    st->p_freq = params_add_fn(pt, name, 1, sf, init_const, w, 1, 0);
    static const char *const NETS[2] = {"implicit_filter", "implicit_filter_rev"};
    for (int r = 0; r < st->nd; r++) {
        char what[48];
        const int in[NLIN] = {emb, F, F, F}, out[NLIN] = {F, F, F, D};
        for (int k = 0; k < NLIN; k++) {
            snprintf(what, sizeof what, "filter_fn.%s.%d", NETS[r], 2 * k);
            st->p_w[r][k] =
                add_linear(pt, m->prefix, what, out[k], in[k], k < NLIN - 1, 0, &st->p_b[r][k]);
        }
    }
    st->p_wout = add_linear(pt, m->prefix, "out_proj", D, D, 1, 1, &st->p_bout);
    /* PositionalEmbedding(emb, n) and ExponentialModulation(D), constants of max_len */
    st->zpos = malloc((size_t)n * emb * sizeof(float));
    st->window = malloc((size_t)n * D * sizeof(float));
    XB_ASSERT(st->zpos && st->window);
    const int bands = (emb - 1) / 2, modulate = opt_bool(m->opts, hyena_opts, NOPTS, "modulate");
    const double lo = log(1e-2) / 1.5, hi = log(1e-2) / 0.3;
    for (int l = 0; l < n; l++) {
        const double t = n > 1 ? (double)l / (n - 1) : 0.0, om = 2.0 * M_PI * l / n;
        float *z = st->zpos + (size_t)l * emb;
        z[0] = (float)t;
        for (int k = 0; k < bands; k++) {
            const double f = bands > 1 ? 1e-4 + k * (bands - 1 - 1e-4) / (bands - 1) : 1e-4;
            z[1 + k] = (float)cos(f * om);
            z[1 + bands + k] = (float)-sin(f * om);
        }
        for (int d = 0; d < D; d++) {
            const double delta = D > 1 ? lo + d * (hi - lo) / (D - 1) : lo;
            st->window[(size_t)l * D + d] = modulate ? (float)exp(-t * fabs(delta)) : 1.0f;
        }
    }
    fftconv_init(&st->fc, D, st->nd == 2);
}

static void hyena_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    HyenaState *st = m->state;
    const size_t D = (size_t)m->D, BLD = (size_t)B * L * D, LF = (size_t)L * st->F;
    XB_ASSERT(L <= st->n);
    st->p = arena_floats(acts, 3 * BLD);
    st->sc = arena_floats(acts, 3 * BLD);
    st->u = arena_floats(acts, BLD);
    st->c = arena_floats(acts, BLD);
    st->g = arena_floats(acts, BLD);
    for (int r = 0; r < 2; r++) {
        for (int k = 0; k < 3; k++) {
            st->pre[r][k] = r < st->nd ? arena_floats(acts, LF) : NULL;
            st->act[r][k] = r < st->nd ? arena_floats(acts, LF) : NULL;
        }
        st->h[r] = r < st->nd ? arena_floats(acts, (size_t)L * D) : NULL;
    }
    /* backward: dg, du (BLD each), dS, dP (3BLD each), dh (2LD), two (L, F), chunk sums */
    arena_floats(scratch, 8 * BLD + 2 * (size_t)L * D + 2 * LF +
                              ((size_t)L / SIN_ROWS + 1) * st->F + 16 * 16);
    fftconv_plan(&st->fc, acts, scratch, B, L);
}

/* out (L, F) = sin(f ⊙ in), f the shared frequencies. */
static void sin_forward(float *out, const float *in, const float *f, int L, int F) {
#pragma omp parallel for schedule(static)
    for (int l = 0; l < L; l++)
        for (int j = 0; j < F; j++) out[(size_t)l * F + j] = sinf(f[j] * in[(size_t)l * F + j]);
}

/* din (L, F) = dout·f·cos(f⊙in) (overwritten); df (F) += Σ_l dout·in·cos(f⊙in), summed in row
 * chunks of SIN_ROWS (part: (ceil(L / SIN_ROWS), F)), then the chunks in order: rows are read
 * contiguously and the bits do not depend on the thread count. */
static void sin_backward(float *din, float *df, float *part, const float *dout, const float *in,
                         const float *f, int L, int F) {
    const int nch = (L + SIN_ROWS - 1) / SIN_ROWS;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < nch; ch++) {
        float *acc = part + (size_t)ch * F;
        memset(acc, 0, (size_t)F * sizeof *acc);
        for (int l = ch * SIN_ROWS; l < XB_MIN(L, (ch + 1) * SIN_ROWS); l++)
            for (int j = 0; j < F; j++) {
                const size_t i = (size_t)l * F + j;
                const float cs = cosf(f[j] * in[i]);
                acc[j] += dout[i] * in[i] * cs;
                din[i] = dout[i] * f[j] * cs;
            }
    }
    for (int ch = 0; ch < nch; ch++)
        for (int j = 0; j < F; j++) df[j] += part[(size_t)ch * F + j];
}

/* Filter r: h (L, D) = FFN_r(z[:L]) ⊙ window[:L]. */
static void filter_forward(const HyenaState *st, const MixerStep *s, int r, int L, int D) {
    const int F = st->F;
    const float *f = mixer_param(s, st->p_freq);
    const float *in = st->zpos;
    int nin = st->emb;
    for (int k = 0; k < 3; k++) {
        linear_forward(st->pre[r][k], in, mixer_param(s, st->p_w[r][k]),
                       mixer_param(s, st->p_b[r][k]), L, nin, F);
        sin_forward(st->act[r][k], st->pre[r][k], f, L, F);
        in = st->act[r][k], nin = F;
    }
    linear_forward(st->h[r], in, mixer_param(s, st->p_w[r][3]), NULL, L, F, D);
    const size_t n = (size_t)L * D;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) st->h[r][i] *= st->window[i];
}

/* dh (L, D) → the FFN's and the frequencies' gradients (dh is overwritten; tmp: two (L, F) and
 * the chunk sums of sin_backward). */
static void filter_backward(const HyenaState *st, const MixerStep *s, int r, int L, int D,
                            float *dh, float *tmp) {
    const int F = st->F;
    const size_t n = (size_t)L * D, LF = (size_t)L * F;
    const float *f = mixer_param(s, st->p_freq);
    float *gf = mixer_grad(s, st->p_freq), *da = tmp, *dp = tmp + LF, *part = tmp + 2 * LF;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dh[i] *= st->window[i];
    memset(da, 0, LF * sizeof(float));
    linear_backward(da, mixer_grad(s, st->p_w[r][3]), NULL, dh, st->act[r][2],
                    mixer_param(s, st->p_w[r][3]), L, F, D);
    for (int k = 2; k >= 0; k--) {
        sin_backward(dp, gf, part, da, st->pre[r][k], f, L, F);
        if (k > 0) memset(da, 0, LF * sizeof(float));
        linear_backward(k > 0 ? da : NULL, mixer_grad(s, st->p_w[r][k]),
                        mixer_grad(s, st->p_b[r][k]), dp, k > 0 ? st->act[r][k - 1] : st->zpos,
                        mixer_param(s, st->p_w[r][k]), L, k > 0 ? F : st->emb, F);
    }
}

/* sc (B, L, C) = sb + Σ_k sw[c][k]·p[t − (K−1) + k]: nn.Conv1d(groups=C, padding=K−1)[..., :L]. */
static void shortconv_forward(float *sc, const float *p, const float *sw, const float *sb, int B,
                              int L, int C, int K) {
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * L; bt++) {
        const int t = bt % L;
        float *o = sc + (size_t)bt * C;
        for (int c = 0; c < C; c++) o[c] = sb[c];
        for (int k = 0; k < K; k++) {
            const int ts = t - (K - 1) + k;
            if (ts < 0) continue;
            const float *in = p + ((size_t)bt - (size_t)(t - ts)) * C;
            for (int c = 0; c < C; c++) o[c] += sw[(size_t)c * K + k] * in[c];
        }
    }
    flops_add(2ull * K * B * L * C); /* every tap counted, the zero padding too */
}

/* dp (B, L, C) = Σ_k sw[c][k]·dsc[t + (K−1) − k] (overwritten); dsw, dsb +=. */
static void shortconv_backward(float *dp, float *dsw, float *dsb, const float *dsc, const float *p,
                               const float *sw, int B, int L, int C, int K) {
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * L; bt++) {
        const int t = bt % L;
        float *o = dp + (size_t)bt * C;
        memset(o, 0, (size_t)C * sizeof(float));
        for (int k = 0; k < K; k++) {
            const int to = t + (K - 1) - k;
            if (to >= L) continue;
            const float *g = dsc + ((size_t)bt + (size_t)(to - t)) * C;
            for (int c = 0; c < C; c++) o[c] += sw[(size_t)c * K + k] * g[c];
        }
    }
    enum { CB = 16 };
    const int nblk = (C + CB - 1) / CB;
    /* a task owns CB channels, summing rows in order: the same bits for any thread count */
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * CB, cn = XB_MIN(CB, C - c0);
        double aw[CB][MAX_SHORT_ORDER] = {{0}}, ab[CB] = {0};
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++) {
                const float *g = dsc + ((size_t)b * L + t) * C + c0;
                for (int cc = 0; cc < cn; cc++) ab[cc] += g[cc];
                for (int k = 0; k < K; k++) {
                    const int ts = t - (K - 1) + k;
                    if (ts < 0) continue;
                    const float *in = p + ((size_t)b * L + ts) * C + c0;
                    for (int cc = 0; cc < cn; cc++) aw[cc][k] += (double)g[cc] * in[cc];
                }
            }
        for (int cc = 0; cc < cn; cc++) {
            dsb[c0 + cc] += (float)ab[cc];
            for (int k = 0; k < K; k++) dsw[(size_t)(c0 + cc) * K + k] += (float)aw[cc][k];
        }
    }
    flops_add(4ull * K * B * L * C);
}

static void hyena_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    HyenaState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, BL = B * L;
    XB_ASSERT(st->fc.L == L);
    linear_forward(st->p, x, mixer_param(s, st->p_win), mixer_param(s, st->p_bin), BL, D, 3 * D);
    if (s->mask)
#pragma omp parallel for schedule(static)
        for (int r = 0; r < BL; r++)
            if (!s->mask[r]) memset(st->p + (size_t)r * 3 * D, 0, 3 * (size_t)D * sizeof(float));
    shortconv_forward(st->sc, st->p, mixer_param(s, st->p_sw), mixer_param(s, st->p_sb), B, L,
                      3 * D, st->K);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) { /* u = v ⊙ x1, zero on padding */
        const float *sr = st->sc + (size_t)r * 3 * D;
        const int real = !s->mask || s->mask[r];
        for (int d = 0; d < D; d++) st->u[(size_t)r * D + d] = real ? sr[2 * D + d] * sr[D + d] : 0;
    }
    for (int r = 0; r < st->nd; r++) filter_forward(st, s, r, L, D);
    const size_t mark = arena_mark(s->scratch);
    fftconv_set_kernel(&st->fc, st->h[0], st->nd == 2 ? st->h[1] : NULL, 1, (size_t)D, s->scratch);
    fftconv_forward(&st->fc, st->c, st->u, mixer_param(s, st->p_fbias), B, s->scratch);
    arena_reset_to(s->scratch, mark);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++)
        for (int d = 0; d < D; d++)
            st->g[(size_t)r * D + d] = st->c[(size_t)r * D + d] * st->sc[(size_t)r * 3 * D + d];
    linear_forward(y, st->g, mixer_param(s, st->p_wout), mixer_param(s, st->p_bout), BL, D, D);
}

static void hyena_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                           const float *x) {
    HyenaState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, BL = B * L;
    const size_t BLD = (size_t)BL * D, LD = (size_t)L * D;
    const size_t mark = arena_mark(s->scratch);
    /* zero-filled by the arena: dg, du and dh are accumulated into */
    float *dg = arena_floats(s->scratch, BLD), *du = arena_floats(s->scratch, BLD),
          *ds = arena_floats(s->scratch, 3 * BLD), *dp = arena_floats(s->scratch, 3 * BLD),
          *dh = arena_floats(s->scratch, 2 * LD),
          *tmp =
              arena_floats(s->scratch, 2 * (size_t)L * st->F + ((size_t)L / SIN_ROWS + 1) * st->F);
    linear_backward(dg, mixer_grad(s, st->p_wout), mixer_grad(s, st->p_bout), dy, st->g,
                    mixer_param(s, st->p_wout), BL, D, D);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++)
        for (int d = 0; d < D; d++) { /* g = c ⊙ x0; dg becomes dc */
            const size_t i = (size_t)r * D + d;
            const float gi = dg[i];
            ds[(size_t)r * 3 * D + d] = gi * st->c[i];
            dg[i] = gi * st->sc[(size_t)r * 3 * D + d];
        }
    fftconv_backward(&st->fc, du, dh, st->nd == 2 ? dh + LD : NULL, 1, (size_t)D,
                     mixer_grad(s, st->p_fbias), dg, st->u, mixer_param(s, st->p_fbias), B,
                     s->scratch);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) { /* u = v ⊙ x1 on real rows */
        const float *sr = st->sc + (size_t)r * 3 * D;
        float *dr = ds + (size_t)r * 3 * D;
        const int real = !s->mask || s->mask[r];
        for (int d = 0; d < D; d++) {
            const float g = real ? du[(size_t)r * D + d] : 0.0f;
            dr[D + d] = g * sr[2 * D + d];
            dr[2 * D + d] = g * sr[D + d];
        }
    }
    shortconv_backward(dp, mixer_grad(s, st->p_sw), mixer_grad(s, st->p_sb), ds, st->p,
                       mixer_param(s, st->p_sw), B, L, 3 * D, st->K);
    if (s->mask)
#pragma omp parallel for schedule(static)
        for (int r = 0; r < BL; r++)
            if (!s->mask[r]) memset(dp + (size_t)r * 3 * D, 0, 3 * (size_t)D * sizeof(float));
    linear_backward(dx, mixer_grad(s, st->p_win), mixer_grad(s, st->p_bin), dp, x,
                    mixer_param(s, st->p_win), BL, D, 3 * D);
    for (int r = 0; r < st->nd; r++) filter_backward(st, s, r, L, D, dh + r * LD, tmp);
    arena_reset_to(s->scratch, mark);
}

static uint64_t hyena_flops(const Mixer *m, int B, int L, int backward) {
    const HyenaState *st = m->state;
    const uint64_t D = (uint64_t)m->D, BL = (uint64_t)B * L, F = (uint64_t)st->F,
                   E = (uint64_t)st->emb, K = (uint64_t)st->K, nd = (uint64_t)st->nd;
    const uint64_t in = 2 * BL * D * 3 * D, out = 2 * BL * D * D, conv = 2 * K * BL * 3 * D;
    if (backward) /* every product twice (input and weight), the FFN's first layer only once */
        return fftconv_flops(B, m->D, L, 1) + 2 * (in + out + conv) +
               nd * 2 * (uint64_t)L * (2 * F * D + 4 * F * F + E * F);
    return fftconv_flops(B, m->D, L, 0) + in + out + conv +
           nd * 2 * (uint64_t)L * (E * F + 2 * F * F + F * D);
}

static void hyena_destroy(Mixer *m) {
    HyenaState *st = m->state;
    if (st) {
        fftconv_free(&st->fc);
        free(st->zpos);
        free(st->window);
    }
    free(st);
}

const MixerSpec mixer_hyena = {
    .name = "hyena",
    .classes = "LC",
    .arxiv = "2302.10866",
    .title = "Hyena: order-2 gated long convolution with implicit FFN filters (Sin, exponential "
             "window) by FFT, short causal convolutions; bidirectional as M2-BERT",
    .honours_mask = 1,
    .beyond_survey = 1,
    MIXER_OPTS(hyena_opts),
    .ops = &(const MixerOps){MIXER_OPS(hyena), .check = hyena_check, .destroy = hyena_destroy},
};
