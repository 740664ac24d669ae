/* s4d: S4D, the diagonal structured state space (Gu et al., "On the Parameterization and
 * Initialization of Diagonal State Space Models", arXiv 2206.11893), as the authors' code runs it:
 * state-spaces/s4 models/s4/s4d.py (S4DKernel, S4D) for the kernel and the layer, and
 * models/s4/s4.py (FFTConv, S4Block) for the bidirectional form and the padding mask.
 *
 * Every channel h of the D channels is a state space of N/2 complex modes (the other N/2 are their
 * conjugates), B = 1 folded into C as in s4d.py, discretised by zero-order hold:
 *   x_l = Ā x_{l−1} + B̄ u_l,  y_l = 2·Re(C x_l) + D_h u_l,  Ā = exp(Δ·A),  B̄ = (exp(Δ·A) − 1)/A,
 * i.e. the convolution y = K ∗ u + D·u with the kernel (§3.1, Listing 1 of the paper)
 *   K[l] = 2·Re Σ_n C'_n·exp(Δ·A_n)^l,   C'_n = C_n·(exp(Δ·A_n) − 1)/A_n,   l = 0..L−1,
 * A_n = −exp(log_A_real_n) + i·A_imag_n, Δ = exp(log_dt). The kernel is computed in double (the
 * powers by repeated products) and applied by FFT over 2L points (kernels/fftconv.h: no
 * wraparound). Then, as S4D.forward: GELU (exact, nn.GELU), and output_linear = a 1×1 convolution D
 * → 2D and a GLU, y = a ⊙ σ(b).
 *
 * Bidirectional (FFTConv with bidirectional=True, the setting of every LRA config of the repo,
 * configs/experiment/lra/s4-*.yaml): the kernel has twice the channels of C, C (2, D, N/2), while
 * A and Δ are shared; k0 runs forward and k1 backward, joined as pad(k0, (0, L)) +
 * pad(flip(k1), (L, 0)) with its off-by-one: y[t] = Σ_{j≤t} k0[t−j]u_j + Σ_{j>t} k1[j−t−1]u_j.
 *
 * Initialisation (s4d.py; S4D-Inv from s4.py's dplr, init 'inv'): log_dt ~ U[log dt_min,
 * log dt_max], log_A_real = log 0.5, A_imag = π·n (S4D-Lin) or (N/π)·(N/(2n+1) − 1) (S4D-Inv, N
 * the full state size), C complex N(0, 1) (real and imaginary parts N(0, 1/2)), D ~ N(0, 1), the
 * 1×1 convolution as PyTorch's default U(±1/√D). No weight decay on log_dt and A (s4d.py's
 * `register`); the code's separate learning rate for them (0.001 in configs/model/layer/s4d*.yaml)
 * has no counterpart here: every parameter uses the optimizer's rate.
 *
 * Padding (S4Block.forward's `lengths`: x = x·mask): padded rows of the input are zeroed before
 * the convolution; with 2L points the real outputs equal those of the row cut to its length.
 *
 * FLOPs: the Vandermonde product 4 per (kernel, channel, mode, tap) forward and 8 backward (the
 * two sums Σ dK·z^l and Σ l·dK·z^l), the FFT convolution (kernels/fftconv.h), the 1×1 convolution
 * as a matrix product; GELU and GLU are element-wise. */
#include <complex.h>
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

#define S4D_MAX_STATE 512

static const char *const INITS[] = {"lin", "inv", NULL};
enum { INIT_LIN, INIT_INV, N_INITS };
MOPT_CHOICES_ARE(INITS, N_INITS);

static const OptSpec s4d_opts[] = {
    MOPT_INT("d_state", 64, 2, S4D_MAX_STATE,
             "state size N, even: N/2 complex modes per channel (s4d.py: 64; the repo's LRA "
             "configs use 4 with S4-LegS)"),
    MOPT_ENUM("init", INIT_LIN, INITS,
              "imaginary parts of A: lin (S4D-Lin, pi*n, s4d.py) or inv (S4D-Inv, "
              "(N/pi)*(N/(2n+1) - 1))"),
    MOPT_FLOAT("dt_min", 0.001, 1e-6, 10,
               "smallest initial step size: log dt ~ U[log dt_min, log dt_max]"),
    MOPT_FLOAT("dt_max", 0.1, 1e-6, 10, "largest initial step size"),
    MOPT_BOOL("bidirectional", 1,
              "a forward and a backward kernel (FFTConv bidirectional, as the repo's LRA configs); "
              "false: causal"),
};
#define NOPTS MOPT_COUNT(s4d_opts)

typedef struct S4dState {
    int N2, nk;                          /* complex modes; kernels (2 when bidirectional) */
    int p_logdt, p_lar, p_aim, p_c, p_d; /* (D), (D, N2), (D, N2), (nk, D, N2, 2), (D) */
    int p_w, p_b;                        /* output_linear: (2D, D), (2D) */
    FftConv fc;                          /* D channels */
    float *u, *pre, *act;                /* saved (B, L, D): masked x, conv + D·u, GELU */
    float *z;                            /* saved (B, L, 2D): before the GLU */
} S4dState;

/* ---- initialisation (ParamInitFn) ---- */

static void init_log_uniform(float *w, const ParamInfo *p, Rng *rng) { /* U[arg0, arg1] */
    for (size_t k = 0; k < p->size; k++)
        w[k] = (float)(p->init_arg[0] + (p->init_arg[1] - p->init_arg[0]) * rng_uniform(rng));
}

static void init_const(float *w, const ParamInfo *p, Rng *rng) {
    (void)rng;
    for (size_t k = 0; k < p->size; k++) w[k] = (float)p->init_arg[0];
}

/* A_imag (D, N/2) for state size N = arg0: S4D-Lin (arg1 = 0) or S4D-Inv (arg1 = 1). */
static void init_a_imag(float *w, const ParamInfo *p, Rng *rng) {
    (void)rng;
    const double N = p->init_arg[0];
    const int n2 = p->shape[1];
    for (size_t k = 0; k < p->size; k++) {
        const double n = (double)(k % (size_t)n2);
        w[k] = (float)(p->init_arg[1] == 0 ? M_PI * n : N / M_PI * (N / (2 * n + 1) - 1));
    }
}

/* ---- the mixer ---- */

static int s4d_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H, (void)max_len;
    const int N = opt_int(opts, s4d_opts, NOPTS, "d_state");
    if (N % 2) {
        return mixer_opt_error(
            err, "d_state", "%d is odd (valid: an even number: the modes come in conjugate pairs)",
            N);
    }
    const double lo = opt_float(opts, s4d_opts, NOPTS, "dt_min"),
                 hi = opt_float(opts, s4d_opts, NOPTS, "dt_max");
    if (lo > hi) {
        return mixer_opt_error(err, "dt_min",
                               "%g is larger than dt_max = %g (valid: dt_min <= dt_max)", lo, hi);
    }
    return 0;
}

static void s4d_create(Mixer *m, ParamTable *pt) {
    S4dState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    const int D = m->D, N = opt_int(m->opts, s4d_opts, NOPTS, "d_state");
    st->N2 = N / 2;
    st->nk = opt_bool(m->opts, s4d_opts, NOPTS, "bidirectional") ? 2 : 1;
    char name[XB_PARAM_NAME];
    const double dt[2] = {log(opt_float(m->opts, s4d_opts, NOPTS, "dt_min")),
                          log(opt_float(m->opts, s4d_opts, NOPTS, "dt_max"))},
                 half[1] = {log(0.5)},
                 imag[2] = {N, opt_enum(m->opts, s4d_opts, NOPTS, "init") == INIT_INV};
    const int sd[1] = {D}, sa[2] = {D, st->N2}, sc[4] = {st->nk, D, st->N2, 2};
    snprintf(name, sizeof name, "%s.kernel.log_dt", m->prefix);
    st->p_logdt = params_add_fn(pt, name, 1, sd, init_log_uniform, dt, 2, 0);
    snprintf(name, sizeof name, "%s.kernel.log_A_real", m->prefix);
    st->p_lar = params_add_fn(pt, name, 2, sa, init_const, half, 1, 0);
    snprintf(name, sizeof name, "%s.kernel.A_imag", m->prefix);
    st->p_aim = params_add_fn(pt, name, 2, sa, init_a_imag, imag, 2, 0);
    st->p_c = params_addf(pt, 4, sc, INIT_NORMAL, sqrtf(0.5f), 1, "%s.kernel.C", m->prefix);
    st->p_d = params_add1f(pt, D, INIT_NORMAL, 1.0f, 1, "%s.D", m->prefix);
    const float a = 1.0f / sqrtf((float)D); /* nn.Conv1d's default, fan_in D */
    st->p_w =
        params_add2f(pt, 2 * D, D, INIT_UNIFORM, a, 1, "%s.output_linear.0.weight", m->prefix);
    st->p_b = params_add1f(pt, 2 * D, INIT_UNIFORM, a, 0, "%s.output_linear.0.bias", m->prefix);
    fftconv_init(&st->fc, D, st->nk == 2);
}

static void s4d_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    S4dState *st = m->state;
    const size_t BLD = (size_t)B * L * m->D, K = (size_t)st->nk * m->D * L;
    XB_ASSERT(L <= m->max_len);
    st->u = arena_floats(acts, BLD);
    st->pre = arena_floats(acts, BLD);
    st->act = arena_floats(acts, BLD);
    st->z = arena_floats(acts, 2 * BLD);
    /* forward: the kernels; backward: dz, d(act), du and the kernels' gradient; then the
     * convolution's own scratch on top */
    arena_floats(scratch, K + 2 * BLD + BLD + BLD + 64);
    fftconv_plan(&st->fc, acts, scratch, B, L);
}

/* The modes of channel h: Δ, A_n, E_n = exp(Δ·A_n) and Q_n = (E_n − 1)/A_n. */
static double s4d_modes(const S4dState *st, const MixerStep *s, int h, double complex *A,
                        double complex *E, double complex *Q) {
    const float *logdt = mixer_param(s, st->p_logdt), *lar = mixer_param(s, st->p_lar),
                *aim = mixer_param(s, st->p_aim);
    const double dt = exp((double)logdt[h]);
    for (int n = 0; n < st->N2; n++) {
        const size_t i = (size_t)h * st->N2 + n;
        A[n] = -exp((double)lar[i]) + I * (double)aim[i];
        E[n] = cexp(dt * A[n]);
        Q[n] = (E[n] - 1.0) / A[n];
    }
    return dt;
}

/* K (nk, D, L): K[k][h][l] = 2·Re Σ_n C'_{k,h,n}·E_{h,n}^l (arXiv 2206.11893, Listing 1). */
static void s4d_kernel(const S4dState *st, const MixerStep *s, int D, int L, float *K) {
    const int N2 = st->N2, nk = st->nk;
    const float *c = mixer_param(s, st->p_c);
#pragma omp parallel for schedule(static)
    for (int h = 0; h < D; h++) {
        double complex A[S4D_MAX_STATE / 2], E[S4D_MAX_STATE / 2], Q[S4D_MAX_STATE / 2];
        double er[S4D_MAX_STATE / 2], ei[S4D_MAX_STATE / 2], wr[S4D_MAX_STATE / 2],
            wi[S4D_MAX_STATE / 2], cr[2][S4D_MAX_STATE / 2], ci[2][S4D_MAX_STATE / 2];
        s4d_modes(st, s, h, A, E, Q);
        for (int n = 0; n < N2; n++) {
            er[n] = creal(E[n]), ei[n] = cimag(E[n]), wr[n] = 1.0, wi[n] = 0.0;
            for (int k = 0; k < nk; k++) {
                const float *ck = c + (((size_t)k * D + h) * N2 + n) * 2;
                const double complex cp = (ck[0] + I * ck[1]) * Q[n];
                cr[k][n] = creal(cp), ci[k][n] = cimag(cp);
            }
        }
        for (int l = 0; l < L; l++) {
            for (int k = 0; k < nk; k++) {
                double acc = 0.0; /* a fixed vector order: the same bits in every run */
#pragma omp simd reduction(+ : acc)
                for (int n = 0; n < N2; n++) acc += cr[k][n] * wr[n] - ci[k][n] * wi[n];
                K[((size_t)k * D + h) * L + l] = (float)(2.0 * acc);
            }
            for (int n = 0; n < N2; n++) {
                const double r = wr[n] * er[n] - wi[n] * ei[n];
                wi[n] = wr[n] * ei[n] + wi[n] * er[n];
                wr[n] = r;
            }
        }
    }
    flops_add(4ull * nk * D * N2 * L);
}

/* The parameters' gradients from dK (nk, D, L). With f_k = Σ_n C'_n z_n^l holomorphic and
 * K_k = 2·Re f_k, a real parameter p gets 2·Re(Σ_l dK[l]·∂f/∂p) and a complex w = a + ib gets
 * (2·Re g, −2·Im g) with g = Σ_l dK[l]·∂f/∂w; here G_n = Σ_l dK[l]·z_n^l (∂/∂C') and
 * S_n = Σ_l l·dK[l]·z_n^l (∂/∂(ΔA) through z^l), then the chain through C' = C·(E − 1)/A,
 * E = exp(ΔA), ΔA = Δ·A, Δ = exp(log_dt), A = −exp(log_A_real) + i·A_imag. */
static void s4d_kernel_backward(const S4dState *st, const MixerStep *s, int D, int L,
                                const float *dK) {
    const int N2 = st->N2, nk = st->nk;
    const float *c = mixer_param(s, st->p_c), *lar = mixer_param(s, st->p_lar);
    float *glogdt = mixer_grad(s, st->p_logdt), *glar = mixer_grad(s, st->p_lar),
          *gaim = mixer_grad(s, st->p_aim), *gc = mixer_grad(s, st->p_c);
#pragma omp parallel for schedule(static)
    for (int h = 0; h < D; h++) {
        double complex A[S4D_MAX_STATE / 2], E[S4D_MAX_STATE / 2], Q[S4D_MAX_STATE / 2];
        double er[S4D_MAX_STATE / 2], ei[S4D_MAX_STATE / 2], wr[S4D_MAX_STATE / 2],
            wi[S4D_MAX_STATE / 2], gr[2][S4D_MAX_STATE / 2], gi[2][S4D_MAX_STATE / 2],
            sr[2][S4D_MAX_STATE / 2], si[2][S4D_MAX_STATE / 2];
        const double dt = s4d_modes(st, s, h, A, E, Q);
        for (int n = 0; n < N2; n++) {
            er[n] = creal(E[n]), ei[n] = cimag(E[n]), wr[n] = 1.0, wi[n] = 0.0;
            for (int k = 0; k < nk; k++) gr[k][n] = gi[k][n] = sr[k][n] = si[k][n] = 0.0;
        }
        for (int l = 0; l < L; l++) {
            for (int k = 0; k < nk; k++) {
                const double g = dK[((size_t)k * D + h) * L + l], gl = g * l;
                for (int n = 0; n < N2; n++) {
                    gr[k][n] += g * wr[n], gi[k][n] += g * wi[n];
                    sr[k][n] += gl * wr[n], si[k][n] += gl * wi[n];
                }
            }
            for (int n = 0; n < N2; n++) {
                const double r = wr[n] * er[n] - wi[n] * ei[n];
                wi[n] = wr[n] * ei[n] + wi[n] * er[n];
                wr[n] = r;
            }
        }
        double dlogdt = 0.0;
        for (int n = 0; n < N2; n++) {
            const size_t i = (size_t)h * N2 + n;
            double complex g_dta = 0.0, g_a = 0.0; /* ∂ℓ through ΔA, and through A at fixed ΔA */
            for (int k = 0; k < nk; k++) {
                const size_t ic = (((size_t)k * D + h) * N2 + n) * 2;
                const double complex ck = c[ic] + I * c[ic + 1], G = gr[k][n] + I * gi[k][n],
                                     S = sr[k][n] + I * si[k][n], gC = G * Q[n];
                gc[ic] += (float)(2.0 * creal(gC));
                gc[ic + 1] += (float)(-2.0 * cimag(gC));
                g_dta += ck * Q[n] * S + G * ck * E[n] / A[n];
                g_a += -G * ck * (E[n] - 1.0) / (A[n] * A[n]);
            }
            g_a += g_dta * dt;
            dlogdt += dt * 2.0 * creal(g_dta * A[n]);
            glar[i] += (float)(2.0 * creal(g_a) * -exp((double)lar[i]));
            gaim[i] += (float)(-2.0 * cimag(g_a));
        }
        glogdt[h] += (float)dlogdt;
    }
    flops_add(8ull * nk * D * N2 * L);
}

/* Exact GELU, x·Φ(x) (nn.GELU's default), and its derivative Φ(x) + x·φ(x). */
static inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2)); }
static inline float gelu_erf_grad(float x) {
    return 0.5f * (1.0f + erff(x * (float)M_SQRT1_2)) +
           x * expf(-0.5f * x * x) * (float)(0.5 * M_2_SQRTPI * M_SQRT1_2);
}

static void s4d_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    S4dState *st = m->state;
    const int B = s->B, L = s->L, D = m->D;
    const size_t BL = (size_t)B * L;
    XB_ASSERT(st->fc.L == L);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < BL; r++) { /* S4Block: x = x·mask */
        if (!s->mask || s->mask[r])
            memcpy(st->u + r * D, x + r * D, (size_t)D * sizeof(float));
        else
            memset(st->u + r * D, 0, (size_t)D * sizeof(float));
    }
    const size_t mark = arena_mark(s->scratch);
    float *K = arena_floats(s->scratch, (size_t)st->nk * D * L);
    s4d_kernel(st, s, D, L, K);
    fftconv_set_kernel(&st->fc, K, st->nk == 2 ? K + (size_t)D * L : NULL, (size_t)L, 1,
                       s->scratch);
    fftconv_forward(&st->fc, st->pre, st->u, mixer_param(s, st->p_d), B, s->scratch);
    arena_reset_to(s->scratch, mark);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BL * D; i++) st->act[i] = gelu_erf(st->pre[i]);
    linear_forward(st->z, st->act, mixer_param(s, st->p_w), mixer_param(s, st->p_b), (int)BL, D,
                   2 * D);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < BL; r++) { /* GLU(dim=-2 of (B, 2D, L)): a·σ(b) */
        const float *zr = st->z + r * 2 * D;
        for (int d = 0; d < D; d++) y[r * D + d] = zr[d] / (1.0f + expf(-zr[D + d]));
    }
}

static void s4d_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy, const float *x) {
    (void)x; /* the masked copy saved by forward is what the convolution saw */
    S4dState *st = m->state;
    const int B = s->B, L = s->L, D = m->D;
    const size_t BL = (size_t)B * L, BLD = BL * D;
    const size_t mark = arena_mark(s->scratch);
    /* zero-filled by the arena: dact, du and dK are accumulated into */
    float *dz = arena_floats(s->scratch, 2 * BLD), *dact = arena_floats(s->scratch, BLD),
          *du = arena_floats(s->scratch, BLD);
    float *dK = arena_floats(s->scratch, (size_t)st->nk * D * L);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < BL; r++) {
        const float *zr = st->z + r * 2 * D;
        for (int d = 0; d < D; d++) {
            const float sg = 1.0f / (1.0f + expf(-zr[D + d])), g = dy[r * D + d];
            dz[r * 2 * D + d] = g * sg;
            dz[r * 2 * D + D + d] = g * zr[d] * sg * (1.0f - sg);
        }
    }
    linear_backward(dact, mixer_grad(s, st->p_w), mixer_grad(s, st->p_b), dz, st->act,
                    mixer_param(s, st->p_w), (int)BL, D, 2 * D);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BLD; i++) dact[i] *= gelu_erf_grad(st->pre[i]);
    fftconv_backward(&st->fc, du, dK, st->nk == 2 ? dK + (size_t)D * L : NULL, (size_t)L, 1,
                     mixer_grad(s, st->p_d), dact, st->u, mixer_param(s, st->p_d), B, s->scratch);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < BL; r++)
        if (!s->mask || s->mask[r])
            for (int d = 0; d < D; d++) dx[r * D + d] += du[r * D + d];
    s4d_kernel_backward(st, s, D, L, dK);
    arena_reset_to(s->scratch, mark);
}

static uint64_t s4d_flops(const Mixer *m, int B, int L, int backward) {
    const S4dState *st = m->state;
    const uint64_t D = (uint64_t)m->D, BL = (uint64_t)B * L,
                   kgen = (uint64_t)st->nk * D * st->N2 * L;
    if (backward) return fftconv_flops(B, m->D, L, 1) + 2 * (2 * BL * D * 2 * D) + 8 * kgen;
    return fftconv_flops(B, m->D, L, 0) + 2 * BL * D * 2 * D + 4 * kgen;
}

static void s4d_destroy(Mixer *m) {
    S4dState *st = m->state;
    if (st) fftconv_free(&st->fc);
    free(st);
}

const MixerSpec mixer_s4d = {
    .name = "s4d",
    .classes = "SSM",
    .arxiv = "2206.11893",
    .title = "S4D: a diagonal state space per channel (ZOH, S4D-Lin/Inv), its kernel applied by "
             "FFT convolution, D skip, GELU, GLU output; bidirectional as S4's FFTConv",
    .honours_mask = 1,
    .beyond_survey = 1,
    MIXER_OPTS(s4d_opts),
    .ops = &(const MixerOps){MIXER_OPS(s4d), .check = s4d_check, .destroy = s4d_destroy},
};
