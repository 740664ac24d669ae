/* rfa: Random Feature Attention (Peng et al., arXiv 2103.02143) as the authors' code runs it
 * (haopeng-uw/RFA at commit 6d59b1c7: utils/rfa_utils.py random_project with random_feature
 * 'rrf', _normalize, build_random_matrices; models/cross_rfa.py and causal_rfa.py). Per head,
 * queries and keys are ℓ2-normalised, x̂ = x/(‖x‖ + 0.001) (_normalize), and mapped by random
 * Fourier features
 *   φ(x) = s·[sin(W x̂), cos(W x̂)],  s = 0.1 (SCALE),  rows w_i = σ ∘ ε_i,
 * ε_i ~ N(0, I_Dh), F rows per head, and σ a learned per-head, per-dimension scale initialised to
 * 1: the paper's learned variance, their code's build_random_matrices with reparam_proj (a flag,
 * off unless --reparam-proj is passed; learned_sigma: false runs the flag's default, σ = 1); the
 * temperature τ stays 1 (cross_tau / causal_tau, learned_tau off). Then
 *   O_i = Σ_j φ(q_i)·φ(k_j) v_j / max(Σ_j φ(q_i)·φ(k_j), 0.1)
 * (clamp_min(EPS), EPS = 0.1, no other ε; the sines and cosines can make the sum negative). As
 * φ(x)·φ(y) = s²·Σ_i cos(w_i·(x̂ − ŷ)) ≈ s²·F·exp(−‖σ∘(x̂ − ŷ)‖²/2), this is softmax attention over
 * unit-norm queries and keys with a learned temperature per dimension.
 *
 * Where the paper and the code differ, the code is followed: the paper's φ (random Fourier
 * features after Rahimi & Recht) carries D^(−1/2), here F^(−1/2); the code scales by s = 0.1 and
 * clamps the denominator at 0.1 — the scale cancels in O except against the clamp, which sits at
 * Σ_i cos = 10 — and adds 0.001 to the norm it divides by.
 * Where this differs from the authors' code: they draw from a pool of pre-sampled matrices
 * (random_matrices/{Dh}_{F}.npy, sample_random_matrices: a fresh subset per training step, the
 * first H matrices in evaluation); here ε is drawn from the experiment seed at every training step,
 * and evaluation uses the draw of the step that produced the parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/flops.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "kernels/fastmath.h"
#include "kernels/matmul.h"
#include "mixers/kernel_mixer.h"

static const OptSpec rfa_opts[] = {
    MOPT_INT("features", 64, 1, 32768,
             "random features F per head, each a sine and a cosine (authors' code: 64)"),
    MOPT_BOOL("learned_sigma", 1,
              "learn the per-dimension scale sigma of the random features (the paper's learned "
              "variance, the authors' --reparam-proj); false: sigma = 1 (that flag's default)"),
    MOPT_BOOL("bias", 0, "biases in the projections"),
};
#define NOPTS MOPT_COUNT(rfa_opts)

#define RFA_SCALE 0.1f     /* rfa_utils.py SCALE */
#define RFA_MIN_DEN 0.1f   /* rfa_utils.py EPS: qz.clamp_min(EPS) */
#define RFA_NORM_EPS 1e-3f /* _normalize: x / (‖x‖ + 1e-3) */

typedef struct RfaState {
    KernelMixer km; /* first */
    int F;          /* random features (M = 2F) */
    int p_sigma;    /* (H, Dh) learned scales, or −1: σ = 1 */
    float *ones;    /* (H, Dh) σ when it is not learned */
    int layer;
    float *eps;    /* (H, F, Dh) current draw */
    float *w;      /* (H, F, Dh) the rows w_i = σ ∘ ε_i of the last forward */
    int64_t drawn; /* step of the current draw, −1 before the first */
    float *xn;     /* (2, B, H, L, Dh): normalised Q then K, saved */
    float *norm;   /* (2, B, H, L) their norms ‖x‖ */
    float *u;      /* (2, B, H, L, F): W x̂, saved */
} RfaState;

static void rfa_prepare(KernelMixer *km, const MixerStep *s) {
    RfaState *st = (RfaState *)km;
    const int64_t want = s->step; /* evaluation: the draw of the parameters' last step */
    if (want == st->drawn) return;
    Rng r;
    rng_seed(&r, rng_mix64(s->seed ^ rng_mix64(((uint64_t)st->layer << 40) ^ (uint64_t)want)),
             RNG_STREAM_MIXER);
    const size_t n = (size_t)km->H * st->F * km->Dh;
    for (size_t i = 0; i < n; i++) st->eps[i] = rng_normal(&r);
    st->drawn = want;
}

/* φ's row pr (2F) = s·[sin u, cos u] for the F projections u: vectorised, then libm for the rare
 * argument beyond xb_sincosf's range. */
static void features_row(float *pr, const float *ur, int F, float r) {
#pragma omp simd
    for (int i = 0; i < F; i++) {
        float sn, cs;
        xb_sincosf(ur[i], &sn, &cs);
        pr[i] = r * sn;
        pr[F + i] = r * cs;
    }
    for (int i = 0; i < F; i++)
        if (!(fabsf(ur[i]) <= XB_SINCOS_MAX)) pr[i] = r * sinf(ur[i]), pr[F + i] = r * cosf(ur[i]);
}

static void rfa_forward(KernelMixer *km, const MixerStep *s, float *phi, const float *x,
                        int is_key) {
    RfaState *st = (RfaState *)km;
    const int H = km->H, Dh = km->Dh, F = st->F, M = km->M, L = s->L, B = s->B;
    const float *sigma = st->p_sigma >= 0 ? mixer_param(s, st->p_sigma) : st->ones;
    const float r = RFA_SCALE;
    const size_t side = (size_t)B * H * L;
    float *xn = st->xn + (is_key ? side * Dh : 0), *nrm = st->norm + (is_key ? side : 0);
    float *u = st->u + (is_key ? side * F : 0);
    for (int h = 0; h < H; h++) /* w_i = σ ∘ ε_i */
        for (int i = 0; i < F; i++)
            for (int d = 0; d < Dh; d++) {
                const size_t k = ((size_t)h * F + i) * Dh + d;
                st->w[k] = st->eps[k] * sigma[(size_t)h * Dh + d];
            }
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            for (int l = 0; l < L; l++) {
                const float *xi = x + ((size_t)b * L + l) * 3 * H * Dh + (size_t)h * Dh;
                float n2 = 0.0f;
                for (int d = 0; d < Dh; d++) n2 += xi[d] * xi[d];
                const float n = sqrtf(n2);
                nrm[bh * L + l] = n;
                for (int d = 0; d < Dh; d++) xn[(bh * L + l) * Dh + d] = xi[d] / (n + RFA_NORM_EPS);
            }
            /* u (L, F) = x̂ (L, Dh)·Wᵀ, on this thread; it counts its FLOPs */
            matmul(u + bh * L * F, xn + bh * L * Dh, st->w + (size_t)h * F * Dh, L, F, Dh, MM_NT,
                   1.0f, 0.0f);
            for (int l = 0; l < L; l++)
                features_row(phi + (bh * L + l) * M, u + (bh * L + l) * F, F, r);
        }
}

/* Rows of the backward per block: du (ROWS, F), G (ROWS, Dh) and dx̂ (Dh) per thread. */
enum { RFA_ROWS = 128 };

/* du_i = s·(dφ_sin,i cos u_i − dφ_cos,i sin u_i); G = du·ε (rows of w without σ), so that
 * dx̂_d = σ_d G_d and dσ_d += Σ G_d x̂_d; with n = ‖x‖ and x̂ = x/(n + δ):
 * dx = (dx̂ − x̂ (x̂·dx̂)·(n + δ)/n) / (n + δ). */
static void rfa_backward(KernelMixer *km, const MixerStep *s, float *dx, const float *dphi,
                         const float *phi, const float *x, int is_key) {
    (void)phi, (void)x;
    RfaState *st = (RfaState *)km;
    const int H = km->H, Dh = km->Dh, F = st->F, M = km->M, L = s->L, B = s->B;
    const float *sigma = st->p_sigma >= 0 ? mixer_param(s, st->p_sigma) : st->ones;
    float *dsigma = mixer_grad(s, st->p_sigma); /* NULL when σ is not learned */
    const float r = RFA_SCALE;
    const size_t side = (size_t)B * H * L;
    const float *xn = st->xn + (is_key ? side * Dh : 0), *nrm = st->norm + (is_key ? side : 0);
    const float *u = st->u + (is_key ? side * F : 0);
    /* heads in parallel, batch rows in order inside: dσ of a head has one writer */
#pragma omp parallel for schedule(static)
    for (int h = 0; h < H; h++) {
        const float *e = st->eps + (size_t)h * F * Dh;
        const float *sg = sigma + (size_t)h * Dh;
        float *dsg = dsigma ? dsigma + (size_t)h * Dh : NULL;
        float *du = malloc(((size_t)RFA_ROWS * (F + Dh) + Dh) * sizeof *du);
        XB_ASSERT(du);
        float *G = du + (size_t)RFA_ROWS * F, *dxh = G + (size_t)RFA_ROWS * Dh;
        for (int b = 0; b < B; b++) {
            const size_t bh = (size_t)b * H + h;
            for (int l0 = 0; l0 < L; l0 += RFA_ROWS) {
                const int nr = L - l0 < RFA_ROWS ? L - l0 : RFA_ROWS;
                for (int t = 0; t < nr; t++) {
                    const float *ur = u + (bh * L + l0 + t) * F;
                    const float *dp = dphi + (bh * L + l0 + t) * M;
                    float *dr = du + (size_t)t * F;
#pragma omp simd
                    for (int i = 0; i < F; i++) {
                        float sn, cs;
                        xb_sincosf(ur[i], &sn, &cs);
                        dr[i] = r * (dp[i] * cs - dp[F + i] * sn);
                    }
                    for (int i = 0; i < F; i++)
                        if (!(fabsf(ur[i]) <= XB_SINCOS_MAX))
                            dr[i] = r * (dp[i] * cosf(ur[i]) - dp[F + i] * sinf(ur[i]));
                }
                matmul(G, du, e, nr, Dh, F, MM_NN, 1.0f, 0.0f); /* counts its FLOPs */
                for (int t = 0; t < nr; t++) {
                    const size_t row = bh * L + l0 + t;
                    const float *xr = xn + row * Dh, *g = G + (size_t)t * Dh;
                    float dot = 0.0f;
                    for (int d = 0; d < Dh; d++) dxh[d] = sg[d] * g[d];
                    if (dsg)
                        for (int d = 0; d < Dh; d++) dsg[d] += g[d] * xr[d];
                    for (int d = 0; d < Dh; d++) dot += xr[d] * dxh[d];
                    float *gi = dx + ((size_t)b * L + l0 + t) * 3 * H * Dh + (size_t)h * Dh;
                    const float n = nrm[row], inv = 1.0f / (n + RFA_NORM_EPS);
                    const float radial = n > 0.0f ? dot * (n + RFA_NORM_EPS) / n : 0.0f;
                    for (int d = 0; d < Dh; d++) gi[d] += (dxh[d] - xr[d] * radial) * inv;
                }
            }
        }
        free(du);
    }
}

static uint64_t rfa_flops(const KernelMixer *km, int B, int L, int backward) {
    (void)backward;
    const RfaState *st = (const RfaState *)km;
    return 2 * 2ull * (uint64_t)B * km->H * (uint64_t)L * st->F * km->Dh; /* Q and K */
}

static const float *rfa_random(const KernelMixer *km, int *rows, int *per_head) {
    const RfaState *st = (const RfaState *)km;
    *rows = st->F, *per_head = 1;
    return st->eps;
}

static const FeatureOps rfa_fops = {.prepare = rfa_prepare,
                                    .forward = rfa_forward,
                                    .backward = rfa_backward,
                                    .flops = rfa_flops,
                                    .random = rfa_random};

static void rfa_create(Mixer *m, ParamTable *pt) {
    RfaState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    kernel_mixer_create(m, pt, &st->km, opt_bool(m->opts, rfa_opts, NOPTS, "bias"));
    st->F = opt_int(m->opts, rfa_opts, NOPTS, "features");
    st->km.fops = &rfa_fops;
    st->km.M = 2 * st->F;
    st->km.min_den = RFA_MIN_DEN;
    st->layer = m->layer;
    st->drawn = -1;
    st->p_sigma = -1;
    if (opt_bool(m->opts, rfa_opts, NOPTS, "learned_sigma")) {
        st->p_sigma = params_add2f(pt, m->H, m->D / m->H, INIT_ONES, 0, 0, "%s.sigma", m->prefix);
    }
    st->ones = malloc((size_t)m->D * sizeof *st->ones);
    XB_ASSERT(st->ones);
    for (int i = 0; i < m->D; i++) st->ones[i] = 1.0f;
    st->eps = malloc((size_t)m->H * st->F * (m->D / m->H) * sizeof *st->eps);
    st->w = malloc((size_t)m->H * st->F * (m->D / m->H) * sizeof *st->w);
    XB_ASSERT(st->eps && st->w);
}

static void rfa_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    RfaState *st = m->state;
    kernel_mixer_plan(m, acts, scratch, B, L);
    const size_t side = (size_t)B * m->H * L;
    st->xn = arena_floats(acts, 2 * side * (m->D / m->H));
    st->norm = arena_floats(acts, 2 * side);
    st->u = arena_floats(acts, 2 * side * st->F);
}

static void rfa_destroy(Mixer *m) {
    RfaState *st = m->state;
    free(st->eps);
    free(st->w);
    free(st->ones);
    free(st);
}

const MixerSpec mixer_rfa = {
    .name = "rfa",
    .classes = "KR",
    .arxiv = "2103.02143",
    .title = "Random Feature Attention: sin/cos random features of unit q, k; learned scales",
    .honours_mask = 1,
    MIXER_OPTS(rfa_opts),
    .ops =
        &(const MixerOps){
            .create = rfa_create, .plan = rfa_plan, KERNEL_MIXER_RUN, .destroy = rfa_destroy},
};
