/* performer: FAVOR+ (Choromanski et al., arXiv 2009.14794). Softmax attention approximated with
 * positive orthogonal random features: with x' = x·Dh^(−1/4) and W (M×Dh) stacked orthogonal
 * blocks whose rows are rescaled to χ(Dh)-distributed norms (§2.4),
 *   φ(x) = M^(−1/2)·(exp(W x' − ‖x'‖²/2 − c) + ε)          (Lemma 1, positive features)
 * with the stabiliser c the row maximum for queries and the maximum over a head's real keys for
 * keys (its gradient is kept, see favor_backward). Then O = D⁻¹φ(Q)(φ(K)ᵀV). The
 * features are not parameters: they are redrawn every `redraw` training steps from the seed, and
 * evaluation uses the draw of the step that produced the parameters. kernel: relu gives LRA's
 * generalized ReLU kernel, φ = relu(W x') + 0.001. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xassert.h"
#include "core/flops.h"
#include "mixers/kernel_mixer.h"

/* LAPACK (in OpenBLAS): QR factorisation, and the explicit Q. */
void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau, float *work,
             const int *lwork, int *info);
void sorgqr_(const int *m, const int *n, const int *k, float *a, const int *lda, const float *tau,
             float *work, const int *lwork, int *info);

static const char *const KERNELS[] = {"softmax", "relu", NULL};

static const OptSpec performer_opts[] = {
    {.name = "features",
     .type = OPT_INT,
     .def = 256,
     .min = 1,
     .max = 65536,
     .help = "random features M per head (paper and LRA: 256)"},
    {.name = "kernel",
     .type = OPT_ENUM,
     .def = 0,
     .choices = KERNELS,
     .help = "softmax: FAVOR+ positive features; relu: LRA's generalized ReLU kernel"},
    {.name = "orthogonal",
     .type = OPT_BOOL,
     .def = 1,
     .help = "orthogonal random features (FAVOR+); false draws them i.i.d."},
    {.name = "redraw",
     .type = OPT_INT,
     .def = 1000,
     .min = 0,
     .max = 1000000000,
     .help = "redraw the features every this many training steps (0 = never)"},
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the projections"},
};
#define NOPTS ((int)XB_ARRAY_LEN(performer_opts))

#define FAVOR_EPS 1e-6f
#define RELU_EPS 1e-3f

typedef struct Favor {
    int kernel, orthogonal, redraw, layer;
    float *W;      /* (M, Dh) */
    int64_t drawn; /* index of the current draw, −1 before the first */
    float *u;      /* (B, H, L, M) projections W x' of Q then K, saved for the backward */
    float *uk;
    float *kmax;                  /* (B, H) key stabilisers */
    unsigned char *act_q, *act_k; /* relu: (B, H, L, M) active sets, kept while s->frozen */
} Favor;

/* W: ⌈M/Dh⌉ blocks, each the Q of a Gaussian matrix's QR (rows orthonormal), rows rescaled by the
 * norms of independent Gaussian vectors (the paper's χ(Dh) scaling); or i.i.d. Gaussian rows. */
static void draw_features(Favor *f, int M, int Dh, uint64_t seed, int64_t index) {
    Rng r;
    rng_seed(&r, rng_mix64(seed ^ rng_mix64(((uint64_t)f->layer << 40) ^ (uint64_t)index)),
             RNG_STREAM_MIXER);
    float *g = malloc((size_t)Dh * Dh * sizeof *g), *tau = malloc((size_t)Dh * sizeof *tau);
    float *sign = malloc((size_t)Dh * sizeof *sign);
    const int lwork = 64 * Dh;
    float *work = malloc((size_t)lwork * sizeof *work);
    XB_ASSERT(g && tau && work && sign);
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
    free(g), free(tau), free(work), free(sign);
    f->drawn = index;
}

/* Training step t uses draw (t − 1) / redraw; evaluating the parameters of step t uses the same
 * draw, so a best checkpoint restored after later redraws is tested with its own features. */
static void favor_prepare(KernelMixer *km, const MixerStep *s) {
    Favor *f = km->own;
    const int64_t index = f->redraw > 0 && s->step > 0 ? (s->step - 1) / f->redraw : 0;
    if (index != f->drawn) draw_features(f, km->M, km->Dh, s->seed, index);
}

/* u = W x' for every row of Q or K: (B, H, L, M). */
static void project(const KernelMixer *km, const MixerStep *s, float *u, const float *x) {
    const Favor *f = km->own;
    const int H = km->H, Dh = km->Dh, M = km->M, L = s->L;
    const float scale = powf((float)Dh, -0.25f);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, M, Dh, scale,
                        x + (size_t)b * L * 3 * H * Dh + (size_t)h * Dh, 3 * H * Dh, f->W, Dh, 0.0f,
                        u + ((size_t)b * H + h) * L * M, M);
}

static void favor_forward(KernelMixer *km, const MixerStep *s, float *phi, const float *x,
                          int is_key) {
    Favor *f = km->own;
    const int H = km->H, Dh = km->Dh, M = km->M, L = s->L;
    float *u = is_key ? f->uk : f->u;
    project(km, s, u, x);
    flops_add(2ull * (uint64_t)s->B * H * L * M * Dh);
    const float ratio = 1.0f / sqrtf((float)M), xs = powf((float)Dh, -0.25f);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            const float *ub = u + bh * L * M;
            float *pb = phi + bh * L * M;
            if (f->kernel == 1) { /* relu, on the active set (the previous one when frozen) */
                unsigned char *act = (is_key ? f->act_k : f->act_q) + bh * L * M;
                for (size_t i = 0; i < (size_t)L * M; i++) {
                    if (!s->frozen) act[i] = ub[i] > 0.0f;
                    pb[i] = (act[i] ? ub[i] : 0.0f) + RELU_EPS;
                }
                continue;
            }
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

/* softmax: with e = φ/ratio − ε = exp(u − ‖x'‖²/2 − c) and c constant, du = dφ·ratio·e,
 * dx' = duᵀW − (Σ du)·x'; relu: du = dφ·[u > 0], dx' = duᵀW. Then dx = dx'·Dh^(−1/4). */
static void favor_backward(KernelMixer *km, const MixerStep *s, float *dx, const float *dphi,
                           const float *phi, const float *x, int is_key) {
    Favor *f = km->own;
    const int H = km->H, Dh = km->Dh, M = km->M, L = s->L;
    const float *u = is_key ? f->uk : f->u;
    const unsigned char *act = is_key ? f->act_k : f->act_q;
    const float ratio = 1.0f / sqrtf((float)M), xs = powf((float)Dh, -0.25f);
    /* du overwrites a scratch copy, then one product per (b, h) */
    const size_t mark = arena_mark(s->scratch), n = (size_t)s->B * H * L * M;
    float *du = arena_floats(s->scratch, n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (f->kernel == 1)
            du[i] = act[i] ? dphi[i] : 0.0f;
        else
            du[i] = dphi[i] * (phi[i] - ratio * FAVOR_EPS);
    }
    /* Σ_m du per row, before the stabiliser's share is added: the gradient of −‖x'‖²/2 */
    float *rowsum = arena_floats(s->scratch, (size_t)s->B * H * L);
    if (f->kernel == 0) {
#pragma omp parallel for schedule(static)
        for (size_t r = 0; r < (size_t)s->B * H * L; r++) {
            float sum = 0.0f;
            for (int m = 0; m < M; m++) sum += du[r * M + m];
            rowsum[r] = sum;
        }
    }
    if (f->kernel == 0) {
        /* The stabilisers are maxima of u, so they move with it: c's gradient, −Σ du over what
         * it divides, goes to its argmax. (The authors' code stops it; with ε > 0 the output
         * depends on c slightly, and this keeps the backward the exact derivative.) */
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
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h, xo = (size_t)b * L * 3 * H * Dh + (size_t)h * Dh;
            const float *db = du + bh * L * M;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, Dh, M, xs, db, M, f->W, Dh,
                        1.0f, dx + xo, 3 * H * Dh);
            if (f->kernel == 1) continue;
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
    (void)backward; /* W x' forward, duᵀW backward, for Q and for K */
    return 2 * 2ull * (uint64_t)B * km->H * (uint64_t)L * km->M * km->Dh;
}

static const FeatureOps favor_ops = {.prepare = favor_prepare,
                                     .forward = favor_forward,
                                     .backward = favor_backward,
                                     .flops = favor_flops};

typedef struct PerformerState {
    KernelMixer km; /* first */
    Favor favor;
} PerformerState;

static void performer_create(Mixer *m, ParamTable *pt) {
    PerformerState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    kernel_mixer_create(m, pt, &st->km, opt_bool(m->opts, performer_opts, NOPTS, "bias"));
    st->km.fops = &favor_ops;
    st->km.M = opt_int(m->opts, performer_opts, NOPTS, "features");
    st->km.own = &st->favor;
    Favor *f = &st->favor;
    f->kernel = opt_enum(m->opts, performer_opts, NOPTS, "kernel");
    f->orthogonal = opt_bool(m->opts, performer_opts, NOPTS, "orthogonal");
    f->redraw = opt_int(m->opts, performer_opts, NOPTS, "redraw");
    f->layer = m->layer;
    f->drawn = -1;
    f->W = malloc((size_t)st->km.M * st->km.Dh * sizeof *f->W);
    XB_ASSERT(f->W);
}

static void performer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    PerformerState *st = m->state;
    kernel_mixer_plan(m, acts, scratch, B, L);
    const size_t n = (size_t)B * m->H * L * st->km.M;
    st->favor.u = arena_floats(acts, n);
    st->favor.uk = arena_floats(acts, n);
    st->favor.kmax = arena_floats(acts, (size_t)B * m->H);
    if (st->favor.kernel == 1) {
        st->favor.act_q = arena_alloc(acts, n);
        st->favor.act_k = arena_alloc(acts, n);
    }
    arena_floats(scratch, n); /* du and row sums, on top of the kernel mixer's backward buffers */
    arena_floats(scratch, (size_t)B * m->H * L);
}

static void performer_destroy(Mixer *m) {
    PerformerState *st = m->state;
    free(st->favor.W);
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
    .title = "Performer FAVOR+: positive orthogonal random features (or LRA's ReLU kernel)",
    .honours_mask = 1,
    .opts = performer_opts,
    .n_opts = NOPTS,
    .ops = &performer_ops,
};
