/* performer: FAVOR+ (Choromanski et al., arXiv 2009.14794) as the authors' code runs it
 * (google-research/google-research, performer/fast_attention/jax/fast_attention.py and
 * performer/fast_attention/tensorflow/fast_attention.py): per head O = D⁻¹φ(Q)(φ(K)ᵀV),
 * D = diag(φ(Q)φ(K)ᵀ1), with one of three feature maps φ.
 *
 * kernel: softmax (the default; make_fast_softmax_attention, softmax_kernel_transformation): with
 *   x' = x·Dh^(−1/4) and W (M×Dh) stacked orthogonal blocks whose rows have χ(Dh)-distributed
 *   norms (GaussianOrthogonalRandomMatrix with scaling=0, §2.4),
 *     φ(x) = M^(−1/2)·(exp(W x' − ‖x'‖²/2 − c) + ε),  ε = 1e-6              (Lemma 1)
 *   with the stabiliser c the row maximum for queries and the maximum over the head's keys for
 *   keys (the authors differentiate through both maxima, jnp.max / tf.math.reduce_max, and so does
 *   favor_backward); the denominator gets the authors' guard D ← D + 2ε·[|D| <= ε] and no other ε.
 * kernel: relu (the paper's generalized attention with f = ReLU, §2.2; relu_kernel_transformation
 *   with a projection matrix): φ(x) = relu(M^(−1/2)·W x) + 0.001, W as above, no Dh^(−1/4) and no
 *   denominator guard (favor_attention divides as is).
 * kernel: relu_lra: what LRA's Table 1 ran. lra_benchmarks/models/performer/performer.py defaults
 *   to make_fast_generalized_attention with its defaults (features_type='deterministic', so no
 *   projection; kernel_fn=relu, kernel_epsilon=0.001, normalize_data=False, no denominator guard):
 *   φ(x) = relu(x) + 0.001 on the raw per-head queries and keys, M = Dh.
 *
 * Where this differs from the authors' code:
 * - padding: their FastAttention ignores the attention bias, so LRA's Performer attends to padding
 *   keys; here padding keys get zero features and the key stabiliser is the maximum over the real
 *   keys, so padding is invisible.
 * - redraw: they draw W anew at every call, seeded from the sum of the queries; here W is drawn
 *   from the experiment seed every `redraw` training steps (default 1: every step), and evaluation
 *   uses the draw of the step that produced the parameters, so it is deterministic and blind to
 *   padding.
 * - orthogonal blocks: the Q of jnp.linalg.qr inherits the signs LAPACK gives R's diagonal, which
 *   biases its columns; each column is multiplied by sign(R_ii), so the blocks are Haar-distributed
 *   as the paper's orthogonal features assume (performer_pytorch's qr_uniform_q).
 * - relu: the JAX make_fast_generalized_attention with features_type='ortho' omits the M^(−1/2)
 *   ratio (its 0.001 then weighs √M times less); `relu` follows the TF function and the paper's φ.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "kernels/activations.h"
#include "mixers/kernel_mixer.h"

/* LAPACK (in OpenBLAS): QR factorisation, and the explicit Q. */
void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau, float *work,
             const int *lwork, int *info);
void sorgqr_(const int *m, const int *n, const int *k, float *a, const int *lda, const float *tau,
             float *work, const int *lwork, int *info);

enum { K_SOFTMAX, K_RELU, K_RELU_LRA };
static const char *const KERNELS[] = {"softmax", "relu", "relu_lra", NULL};

static const OptSpec performer_opts[] = {
    {.name = "features",
     .type = OPT_INT,
     .def = 256,
     .min = 1,
     .max = 65536,
     .help = "random features M per head (paper and authors' code: 256); relu_lra has none"},
    {.name = "kernel",
     .type = OPT_ENUM,
     .def = K_SOFTMAX,
     .choices = KERNELS,
     .help = "softmax: FAVOR+ positive random features (paper); relu: the paper's generalized "
             "kernel relu(M^-1/2 W x) + 0.001; relu_lra: relu(x) + 0.001 on the raw queries and "
             "keys, no random features, what LRA's Table 1 ran (its performer.py default)"},
    {.name = "orthogonal",
     .type = OPT_BOOL,
     .def = 1,
     .help = "orthogonal random features (FAVOR+); false draws them i.i.d."},
    {.name = "redraw",
     .type = OPT_INT,
     .def = 1,
     .min = 0,
     .max = 1000000000,
     .help = "draw new features every this many training steps (authors' code: every call, 1; "
             "performer_pytorch: 1000; 0 = never)"},
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the projections"},
};
#define NOPTS ((int)XB_ARRAY_LEN(performer_opts))

/* make_fast_softmax_attention's numerical_stabilizer: the features' ε and the denominator guard */
#define FAVOR_EPS 1e-6f
/* relu_kernel_transformation's numerical_stabilizer (make_fast_generalized_attention's
 * kernel_epsilon) */
#define RELU_EPS 1e-3f

typedef struct Favor {
    int kernel, orthogonal, redraw, layer;
    float *W;  /* (M, Dh); NULL for relu_lra */
    float *qr; /* the draw's workspace: a block (Dh²), τ, signs (Dh each), LAPACK's (64·Dh) */
    int64_t drawn; /* index of the current draw, −1 before the first */
    float *u;      /* (B, H, L, M) projections of Q then K (relu_lra: Q and K per head), saved */
    float *uk;
    float *kmax;                  /* (B, H) key stabilisers */
    unsigned char *act_q, *act_k; /* relu kernels: (B, H, L, M) active sets, kept while frozen */
} Favor;

/* W: ⌈M/Dh⌉ blocks, each the Q of a Gaussian matrix's QR (rows orthonormal), rows rescaled by the
 * norms of independent Gaussian vectors (the paper's χ(Dh) scaling); or i.i.d. Gaussian rows. */
static void draw_features(Favor *f, int M, int Dh, uint64_t seed, int64_t index) {
    Rng r;
    rng_seed(&r, rng_mix64(seed ^ rng_mix64(((uint64_t)f->layer << 40) ^ (uint64_t)index)),
             RNG_STREAM_MIXER);
    float *g = f->qr, *tau = g + (size_t)Dh * Dh, *sign = tau + Dh, *work = sign + Dh;
    const int lwork = 64 * Dh;
    for (int r0 = 0; r0 < M; r0 += Dh) {
        for (int i = 0; i < Dh * Dh; i++) g[i] = rng_normal(&r);
        if (f->orthogonal) {
            int info;
            sgeqrf_(&Dh, &Dh, g, &Dh, tau, work, &lwork, &info);
            XB_ASSERT(info == 0);
            for (int i = 0; i < Dh; i++) sign[i] = g[(size_t)i * Dh + i] < 0.0f ? -1.0f : 1.0f;
            sorgqr_(&Dh, &Dh, &Dh, g, &Dh, tau, work, &lwork, &info);
            XB_ASSERT(info == 0);
            /* g (column-major) holds Q; its columns become W's rows. Householder QR fixes the
             * signs of R's diagonal, which biases Q's columns; multiplying column i by
             * sign(R_ii) makes Q Haar-distributed (Mezzadri 2007), so each row is isotropic. */
            for (int i = 0; i < Dh; i++)
                for (int d = 0; d < Dh; d++) g[(size_t)i * Dh + d] *= sign[i];
        }
        for (int i = 0; i < Dh && r0 + i < M; i++) {
            float *w = f->W + (size_t)(r0 + i) * Dh;
            for (int d = 0; d < Dh; d++) w[d] = g[(size_t)i * Dh + d];
            if (f->orthogonal) {
                double n2 = 0;
                for (int d = 0; d < Dh; d++) {
                    const double z = rng_normal(&r);
                    n2 += z * z;
                }
                const float scale = (float)sqrt(n2);
                for (int d = 0; d < Dh; d++) w[d] *= scale;
            }
        }
    }
    f->drawn = index;
}

/* Training step t uses draw (t − 1) / redraw; evaluating the parameters of step t uses the same
 * draw, so a best checkpoint restored after later redraws is tested with its own features. */
static void favor_prepare(KernelMixer *km, const MixerStep *s) {
    Favor *f = km->own;
    if (f->kernel == K_RELU_LRA) return; /* no random features */
    const int64_t index = f->redraw > 0 && s->step > 0 ? (s->step - 1) / f->redraw : 0;
    if (index != f->drawn) draw_features(f, km->M, km->Dh, s->seed, index);
}

/* u = scale·W x for every row of Q or K: (B, H, L, M). */
static void project(const KernelMixer *km, const MixerStep *s, float *u, const float *x,
                    float scale) {
    const Favor *f = km->own;
    const int H = km->H, Dh = km->Dh, M = km->M, L = s->L;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, M, Dh, scale,
                        x + (size_t)b * L * 3 * H * Dh + (size_t)h * Dh, 3 * H * Dh, f->W, Dh, 0.0f,
                        u + ((size_t)b * H + h) * L * M, M);
    flops_add(2ull * (uint64_t)s->B * H * L * M * Dh);
}

/* u (B, H, L, Dh) = the head slices of Q or K, for relu_lra. */
static void gather_heads(const KernelMixer *km, const MixerStep *s, float *u, const float *x) {
    const int H = km->H, Dh = km->Dh, L = s->L;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++)
            for (int l = 0; l < L; l++)
                memcpy(u + (((size_t)b * H + h) * L + l) * Dh,
                       x + ((size_t)b * L + l) * 3 * H * Dh + (size_t)h * Dh,
                       (size_t)Dh * sizeof *u);
}

/* φ = relu(u) + 0.001 on the active set (the previous forward's when frozen). */
static void relu_features(float *phi, unsigned char *act, const float *u, size_t n, int frozen) {
    relu_forward_set(phi, act, u, n, frozen);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) phi[i] += RELU_EPS;
}

/* softmax: φ = M^(−1/2)·(exp(u − ‖x'‖²/2 − c) + ε), u = W x', x' = x·Dh^(−1/4). */
static void softmax_features(KernelMixer *km, const MixerStep *s, float *phi, const float *u,
                             const float *x, int is_key) {
    Favor *f = km->own;
    const int H = km->H, Dh = km->Dh, M = km->M, L = s->L;
    const float ratio = 1.0f / sqrtf((float)M), xs = powf((float)Dh, -0.25f);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            const float *ub = u + bh * L * M;
            float *pb = phi + bh * L * M;
            float kmax = -INFINITY; /* keys: one stabiliser over the head's real keys */
            if (is_key) {
                for (int l = 0; l < L; l++) {
                    if (s->mask && !s->mask[(size_t)b * L + l]) continue;
                    for (int m = 0; m < M; m++) kmax = fmaxf(kmax, ub[(size_t)l * M + m]);
                }
                if (kmax == -INFINITY) kmax = 0.0f;
                f->kmax[bh] = kmax;
            }
            for (int l = 0; l < L; l++) {
                const float *xi = x + ((size_t)b * L + l) * 3 * H * Dh + (size_t)h * Dh;
                float n2 = 0.0f;
                for (int d = 0; d < Dh; d++) n2 += xi[d] * xi[d];
                const float diag = 0.5f * n2 * xs * xs;
                const float *ui = ub + (size_t)l * M;
                float c = kmax;
                if (!is_key) {
                    c = -INFINITY;
                    for (int m = 0; m < M; m++) c = fmaxf(c, ui[m]);
                }
                float *pi = pb + (size_t)l * M;
                for (int m = 0; m < M; m++) pi[m] = ratio * (expf(ui[m] - diag - c) + FAVOR_EPS);
            }
        }
}

static void favor_forward(KernelMixer *km, const MixerStep *s, float *phi, const float *x,
                          int is_key) {
    Favor *f = km->own;
    const int Dh = km->Dh, M = km->M;
    const size_t n = (size_t)s->B * km->H * s->L * M;
    float *u = is_key ? f->uk : f->u;
    unsigned char *act = is_key ? f->act_k : f->act_q;
    switch (f->kernel) {
    case K_SOFTMAX:
        project(km, s, u, x, powf((float)Dh, -0.25f));
        softmax_features(km, s, phi, u, x, is_key);
        break;
    case K_RELU:
        project(km, s, u, x, 1.0f / sqrtf((float)M));
        relu_features(phi, act, u, n, s->frozen);
        break;
    default: /* K_RELU_LRA */
        gather_heads(km, s, u, x);
        relu_features(phi, act, u, n, s->frozen);
        break;
    }
}

/* The stabilisers are maxima of u, so they move with it: c's gradient, −Σ du over what it
 * divides, goes to its argmax (the authors' jnp.max and tf.math.reduce_max do the same;
 * later performer_pytorch versions detach c, which with ε > 0 is not the exact derivative). */
static void stabiliser_backward(const KernelMixer *km, const MixerStep *s, float *du,
                                const float *u, int is_key) {
    const int H = km->H, M = km->M, L = s->L;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            const float *ub = u + bh * L * M;
            float *db = du + bh * L * M;
            if (!is_key) {
                for (int l = 0; l < L; l++) {
                    const float *ui = ub + (size_t)l * M;
                    float *di = db + (size_t)l * M, sum = 0.0f;
                    int arg = 0;
                    for (int m = 0; m < M; m++) {
                        sum += di[m];
                        if (ui[m] > ui[arg]) arg = m;
                    }
                    di[arg] -= sum;
                }
            } else {
                float sum = 0.0f;
                size_t arg = SIZE_MAX;
                for (int l = 0; l < L; l++) {
                    if (s->mask && !s->mask[(size_t)b * L + l]) continue;
                    for (int m = 0; m < M; m++) {
                        const size_t k = (size_t)l * M + m;
                        sum += db[k];
                        if (arg == SIZE_MAX || ub[k] > ub[arg]) arg = k;
                    }
                }
                if (arg != SIZE_MAX) db[arg] -= sum;
            }
        }
}

/* softmax: with e = φ/ratio − ε = exp(u − ‖x'‖²/2 − c), du = dφ·ratio·e plus the stabilisers'
 * share, dx = (duᵀW − (Σ_m dφ·ratio·e)·x')·Dh^(−1/4); relu: du = dφ·[u > 0], dx = M^(−1/2)·duᵀW;
 * relu_lra: dx = dφ·[x > 0]. */
static void favor_backward(KernelMixer *km, const MixerStep *s, float *dx, const float *dphi,
                           const float *phi, const float *x, int is_key) {
    Favor *f = km->own;
    const int H = km->H, Dh = km->Dh, M = km->M, L = s->L;
    const float *u = is_key ? f->uk : f->u;
    const unsigned char *act = is_key ? f->act_k : f->act_q;
    const float ratio = 1.0f / sqrtf((float)M), xs = powf((float)Dh, -0.25f);
    const size_t mark = arena_mark(s->scratch), n = (size_t)s->B * H * L * M;
    float *du = arena_floats(s->scratch, n); /* zero-filled */
    float *rowsum = arena_floats(s->scratch, (size_t)s->B * H * L);
    if (f->kernel != K_SOFTMAX) {
        relu_backward_set(du, act, dphi, n);
    } else {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) du[i] = dphi[i] * (phi[i] - ratio * FAVOR_EPS);
            /* Σ_m du per row, before the stabilisers' share: the gradient of −‖x'‖²/2 */
#pragma omp parallel for schedule(static)
        for (size_t r = 0; r < (size_t)s->B * H * L; r++) {
            float sum = 0.0f;
            for (int m = 0; m < M; m++) sum += du[r * M + m];
            rowsum[r] = sum;
        }
        stabiliser_backward(km, s, du, u, is_key);
    }
    if (f->kernel == K_RELU_LRA) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < s->B; b++)
            for (int h = 0; h < H; h++)
                for (int l = 0; l < L; l++) {
                    const float *di = du + (((size_t)b * H + h) * L + l) * Dh;
                    float *gi = dx + ((size_t)b * L + l) * 3 * H * Dh + (size_t)h * Dh;
                    for (int d = 0; d < Dh; d++) gi[d] += di[d];
                }
        arena_reset_to(s->scratch, mark);
        return;
    }
    const float alpha = f->kernel == K_SOFTMAX ? xs : ratio;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h, xo = (size_t)b * L * 3 * H * Dh + (size_t)h * Dh;
            const float *db = du + bh * L * M;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, Dh, M, alpha, db, M, f->W, Dh,
                        1.0f, dx + xo, 3 * H * Dh);
            if (f->kernel != K_SOFTMAX) continue;
            for (int l = 0; l < L; l++) {
                const float sum = rowsum[bh * L + l];
                const float *xi = x + xo + (size_t)l * 3 * H * Dh;
                float *gi = dx + xo + (size_t)l * 3 * H * Dh;
                for (int d = 0; d < Dh; d++) gi[d] -= sum * xi[d] * xs * xs;
            }
        }
    flops_add(2ull * (uint64_t)s->B * H * L * M * Dh);
    arena_reset_to(s->scratch, mark);
}

static uint64_t favor_flops(const KernelMixer *km, int B, int L, int backward) {
    (void)backward; /* W x forward, duᵀW backward, for Q and for K; relu_lra has no projection */
    const Favor *f = km->own;
    if (f->kernel == K_RELU_LRA) return 0;
    return 2 * 2ull * (uint64_t)B * km->H * (uint64_t)L * km->M * km->Dh;
}

static const float *favor_random(const KernelMixer *km, int *rows, int *per_head) {
    const Favor *f = km->own;
    *rows = f->W ? km->M : 0, *per_head = 0;
    return f->W;
}

static const FeatureOps favor_ops = {.prepare = favor_prepare,
                                     .forward = favor_forward,
                                     .backward = favor_backward,
                                     .flops = favor_flops,
                                     .random = favor_random};

typedef struct PerformerState {
    KernelMixer km; /* first */
    Favor favor;
} PerformerState;

static void performer_create(Mixer *m, ParamTable *pt) {
    PerformerState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    kernel_mixer_create(m, pt, &st->km, opt_bool(m->opts, performer_opts, NOPTS, "bias"));
    Favor *f = &st->favor;
    f->kernel = opt_enum(m->opts, performer_opts, NOPTS, "kernel");
    f->orthogonal = opt_bool(m->opts, performer_opts, NOPTS, "orthogonal");
    f->redraw = opt_int(m->opts, performer_opts, NOPTS, "redraw");
    f->layer = m->layer;
    f->drawn = -1;
    st->km.fops = &favor_ops;
    st->km.own = f;
    const int Dh = st->km.Dh;
    if (f->kernel == K_RELU_LRA) {
        st->km.M = Dh;
    } else {
        st->km.M = opt_int(m->opts, performer_opts, NOPTS, "features");
        f->W = malloc((size_t)st->km.M * Dh * sizeof *f->W);
        f->qr = malloc(((size_t)Dh * Dh + 2 * (size_t)Dh + 64 * (size_t)Dh) * sizeof *f->qr);
        XB_ASSERT(f->W && f->qr);
    }
    if (f->kernel == K_SOFTMAX) st->km.guard = FAVOR_EPS; /* the relu kernels divide as is */
}

static void performer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    PerformerState *st = m->state;
    kernel_mixer_plan(m, acts, scratch, B, L);
    const size_t n = (size_t)B * m->H * L * st->km.M;
    st->favor.u = arena_floats(acts, n);
    st->favor.uk = arena_floats(acts, n);
    st->favor.kmax = arena_floats(acts, (size_t)B * m->H);
    if (st->favor.kernel != K_SOFTMAX) {
        st->favor.act_q = arena_alloc(acts, n);
        st->favor.act_k = arena_alloc(acts, n);
    }
    arena_floats(scratch, n); /* du and row sums, on top of the kernel mixer's backward buffers */
    arena_floats(scratch, (size_t)B * m->H * L);
}

static void performer_destroy(Mixer *m) {
    PerformerState *st = m->state;
    free(st->favor.W);
    free(st->favor.qr);
    free(st);
}

static const MixerOps performer_ops = {
    .create = performer_create,
    .plan = performer_plan,
    .forward = kernel_mixer_forward,
    .backward = kernel_mixer_backward,
    .flops = kernel_mixer_flops,
    .destroy = performer_destroy,
};

const MixerSpec mixer_performer = {
    .name = "performer",
    .classes = "KR",
    .arxiv = "2009.14794",
    .title = "Performer FAVOR+: positive orthogonal random features (or ReLU kernels)",
    .honours_mask = 1,
    .opts = performer_opts,
    .n_opts = NOPTS,
    .ops = &performer_ops,
};
