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
 *   softmax_backward_rows); the denominator gets the authors' guard D ← D + 2ε·[|D| <= ε] and no
 * other ε. kernel: relu (the paper's generalized attention with f = ReLU, §2.2;
 * relu_kernel_transformation with a projection matrix): φ(x) = relu(M^(−1/2)·W x) + 0.001, W as
 * above, no Dh^(−1/4) and no denominator guard (favor_attention divides as is). kernel: relu_lra:
 * what LRA's Table 1 ran. lra_benchmarks/models/performer/performer.py defaults to
 * make_fast_generalized_attention with its defaults (features_type='deterministic', so no
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
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xassert.h"
#include "kernels/activations.h"
#include "kernels/attn_tile.h"
#include "kernels/simd.h"
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
#define LOG2E 1.44269504088896341f

typedef struct Favor {
    int kernel, orthogonal, redraw, layer;
    float *W;  /* (M, Dh); NULL for relu_lra */
    float *Wp; /* W packed for the projection's tiles (kernels/attn_tile.h), scaled as the kernel
                * projects: log2(e)·Dh^(−1/4) (softmax, in the base 2 of its exponentials) or
                * M^(−1/2) (relu) */
    float *qr; /* the draw's workspace: a block (Dh²), τ, signs (Dh each), LAPACK's (64·Dh) */
    int64_t drawn; /* index of the current draw, −1 before the first */
    float *kmax;   /* (B, H) key stabilisers (softmax: in base 2, as u) */
    size_t *karg;  /* (B, H): where the key stabiliser's maximum is, l·M + m (SIZE_MAX: none) */
    float *ksum;   /* (B, H): backward, Σ du over the real keys (the key stabiliser's gradient) */
    int *qarg;     /* (B, H, L): where each query stabiliser's maximum is */
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
    attn_tile_pack(f->Wp, f->W, Dh, M, Dh,
                   f->kernel == K_SOFTMAX ? LOG2E * powf((float)Dh, -0.25f)
                                          : 1.0f / sqrtf((float)M));
}

/* Training step t uses draw (t − 1) / redraw; evaluating the parameters of step t uses the same
 * draw, so a best checkpoint restored after later redraws is tested with its own features. */
static void favor_prepare(KernelMixer *km, const MixerStep *s) {
    Favor *f = km->own;
    if (f->kernel == K_RELU_LRA) return; /* no random features */
    const int64_t index = f->redraw > 0 && s->step > 0 ? (s->step - 1) / f->redraw : 0;
    if (index != f->drawn) draw_features(f, km->M, km->Dh, s->seed, index);
}

/* The maps run inside the fused linear-attention kernel (kernels/linear_attn.h), a chunk of n rows
 * of one head at a time: the projection u = W x of a chunk is a small product on cached rows, and
 * φ is made from it in place; nothing of size L·M but φ itself is stored. */

/* Σ x over n in eight interleaved partial sums added in a fixed order (a vector reduction whose
 * bits do not depend on the instruction set). */
XB_CLONES static float sum8(const float *x, int n) {
    float p[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) p[j] += x[i + j];
    for (; i < n; i++) p[i & 7] += x[i];
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* The maximum of x over n (a vector reduction: max is exact in any order). */
XB_CLONES static float max_of(const float *x, int n) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* The first index of x (n) holding v. */
static int first_of(const float *x, int n, float v) {
    int i = 0;
    while (i < n - 1 && x[i] != v) i++;
    return i;
}

/* phi (n × M) = M^(−1/2)·(2^(u − log2(e)·‖x'‖²/2 − c) + ε) for each row, u = log2(e)·W x' (the
 * packed W carries the factor, so the exponentials are powers of 2: attn_tile_exp2_row) with row
 * stride ldu (u and phi may be the same); c per row (crow) or one for all rows (crow NULL: c0). */
static void favor_exp_rows(float *phi, const float *u, int ldu, const float *x, int ld, int n,
                           int M, int Dh, const float *crow, float c0) {
    const float ratio = 1.0f / sqrtf((float)M), xs = powf((float)Dh, -0.25f);
    for (int l = 0; l < n; l++) {
        const float *xi = x + (size_t)l * ld;
        prefetch_row(xi + PREFETCH_ROWS * ld, Dh);
        float n2 = 0.0f;
        for (int d = 0; d < Dh; d++) n2 += xi[d] * xi[d];
        const float diag = LOG2E * (0.5f * n2 * xs * xs), c = crow ? crow[l] : c0;
        attn_tile_exp2_row(phi + (size_t)l * M, u + (size_t)l * ldu, M, diag + c, ratio, FAVOR_EPS);
    }
}

static size_t favor_rows_work(const KernelMixer *km) {
    return (size_t)LINATTN_CHUNK * (size_t)attn_tile_cols(km->M) + 2 * LINATTN_CHUNK + 16;
}

/* softmax: keys in two passes (pass 0: u into phi and the maximum over the head's real keys;
 * pass 1: φ in place), queries in one (u in work, its rows' maxima, φ). The keys' stabiliser is
 * one maximum over the features and the positions of a head, the queries' one per row
 * (fast_attention.py, nonnegative_softmax_kernel_feature_creator: jnp.max over last_dims_t +
 * attention_dims_t for keys, over last_dims_t for queries), hence the keys' first pass. */
static void softmax_map_rows(KernelMixer *km, const MixerStep *s, int b, int h, int l0, int n,
                             int is_key, int pass, float *phi, const float *x, float *work) {
    Favor *f = km->own;
    const int M = km->M, Dh = km->Dh, Mp = attn_tile_cols(M), ld = 3 * km->H * Dh;
    const size_t bh = (size_t)b * km->H + h;
    float *u = work, *crow = work + (size_t)LINATTN_CHUNK * Mp;
    if (is_key && pass == 1) {
        if (l0 == 0 && f->kmax[bh] == -INFINITY) f->kmax[bh] = 0.0f; /* no real key */
        favor_exp_rows(phi, phi, M, x, ld, n, M, Dh, NULL, f->kmax[bh]);
        return;
    }
    attn_tile_scores(u, Mp, x, ld, f->Wp, n, M, Dh, NULL, NULL); /* u = log2(e)·W x' */
    if (is_key) { /* pass 0: the maximum over the real keys, its first place in (l, m) order */
        if (l0 == 0) f->kmax[bh] = -INFINITY, f->karg[bh] = SIZE_MAX;
        for (int l = 0; l < n; l++) {
            const float *ui = u + (size_t)l * Mp;
            memcpy(phi + (size_t)l * M, ui, (size_t)M * sizeof *phi);
            if (s->mask && !s->mask[(size_t)b * s->L + l0 + l]) continue;
            const float mx = max_of(ui, M);
            if (f->karg[bh] == SIZE_MAX || mx > f->kmax[bh])
                f->kmax[bh] = mx, f->karg[bh] = (size_t)(l0 + l) * M + first_of(ui, M, mx);
        }
        return;
    }
    int *arg = f->qarg + bh * s->L + l0;
    for (int l = 0; l < n; l++) { /* each query's stabiliser: its row's maximum, first place */
        const float *ui = u + (size_t)l * Mp;
        crow[l] = max_of(ui, M);
        arg[l] = first_of(ui, M, crow[l]);
    }
    favor_exp_rows(phi, u, Mp, x, ld, n, M, Dh, crow, 0.0f);
}

/* relu: φ = relu(M^(−1/2)·W x) + 0.001; relu_lra: φ = relu(x) + 0.001, on the active set (the
 * previous forward's when frozen). */
static void relu_map_rows(KernelMixer *km, const MixerStep *s, int b, int h, int l0, int n,
                          int is_key, int pass, float *phi, const float *x, float *work) {
    (void)pass;
    Favor *f = km->own;
    const int M = km->M, Dh = km->Dh, Mp = attn_tile_cols(M), ld = 3 * km->H * Dh;
    const size_t bh = (size_t)b * km->H + h, cn = (size_t)n * M;
    if (f->kernel == K_RELU) {
        attn_tile_scores(work, Mp, x, ld, f->Wp, n, M, Dh, NULL, NULL);
        for (int l = 0; l < n; l++)
            memcpy(phi + (size_t)l * M, work + (size_t)l * Mp, (size_t)M * sizeof *phi);
    } else {
        for (int l = 0; l < n; l++)
            memcpy(phi + (size_t)l * M, x + (size_t)l * ld, (size_t)M * sizeof *phi);
    }
    unsigned char *act = (is_key ? f->act_k : f->act_q) + (bh * s->L + l0) * M;
    relu_forward_set(phi, act, phi, cn, s->frozen);
    for (size_t i = 0; i < cn; i++) phi[i] += RELU_EPS;
}

/* du = dφ·M^(−1/2)·e in place, e = φ/ratio − ε = exp(u − ‖x'‖²/2 − c), and rowsum: Σ_m du per
 * row (sum8's order). */
XB_CLONES static void softmax_du_rows(float *du, int ld, float *rowsum, const float *phi, int n,
                                      int M, float ratio_eps) {
    for (int l = 0; l < n; l++) {
        float *di = du + (size_t)l * ld;
        const float *pi = phi + (size_t)l * M;
        for (int m = 0; m < M; m++) di[m] = di[m] * (pi[m] - ratio_eps);
        rowsum[l] = sum8(di, M);
    }
}

/* The stabilisers are maxima of u, so they move with it: c's gradient, −Σ du over what it
 * divides, goes to its argmax (the authors' jnp.max and tf.math.reduce_max do the same;
 * later performer_pytorch versions detach c, which with ε > 0 is not the exact derivative).
 * dx += (duᵀW − (Σ_m du)·x')·Dh^(−1/4). */
static void softmax_backward_rows(KernelMixer *km, const MixerStep *s, int b, int h, int l0, int n,
                                  int is_key, float *dx, float *dphi, int ldd, const float *phi,
                                  const float *x, float *work) {
    Favor *f = km->own;
    const int M = km->M, Dh = km->Dh, ld = 3 * km->H * Dh;
    const size_t bh = (size_t)b * km->H + h;
    const float ratio = 1.0f / sqrtf((float)M), xs = powf((float)Dh, -0.25f);
    float *rowsum = work;
    softmax_du_rows(dphi, ldd, rowsum, phi, n, M, ratio * FAVOR_EPS);
    if (!is_key) { /* a query's stabiliser: −Σ_m du at its argmax */
        const int *arg = f->qarg + bh * s->L + l0;
        for (int l = 0; l < n; l++) dphi[(size_t)l * ldd + arg[l]] -= rowsum[l];
    } else { /* the keys': Σ du over the real keys, rows in order, for softmax_backward_end */
        if (l0 == 0) f->ksum[bh] = 0.0f;
        for (int l = 0; l < n; l++)
            if (!s->mask || s->mask[(size_t)b * s->L + l0 + l]) f->ksum[bh] += rowsum[l];
    }
    attn_tile_acc(dx, ld, dphi, ldd, 1, f->W, Dh, n, Dh, M, xs);
    for (int l = 0; l < n; l++) {
        const float *xi = x + (size_t)l * ld;
        float *gi = dx + (size_t)l * ld;
        for (int d = 0; d < Dh; d++) gi[d] -= rowsum[l] * xi[d] * xs * xs;
    }
}

/* The key stabiliser's share, −Σ du at its argmax, through W to the key that holds it. */
static void softmax_backward_end(KernelMixer *km, const MixerStep *s, int b, int h, int is_key,
                                 float *dx, const float *x, float *work) {
    (void)s, (void)x, (void)work;
    Favor *f = km->own;
    const size_t bh = (size_t)b * km->H + h;
    if (!is_key || f->karg[bh] == SIZE_MAX) return;
    const int M = km->M, Dh = km->Dh, ld = 3 * km->H * Dh;
    const float xs = powf((float)Dh, -0.25f), g = -f->ksum[bh];
    const size_t l = f->karg[bh] / (size_t)M, m = f->karg[bh] % (size_t)M;
    float *gi = dx + l * (size_t)ld;
    for (int d = 0; d < Dh; d++) gi[d] += xs * (g * f->W[m * (size_t)Dh + d]);
}

/* relu: dx += M^(−1/2)·duᵀW, relu_lra: dx += du, du = dφ on the active set. */
static void relu_backward_rows(KernelMixer *km, const MixerStep *s, int b, int h, int l0, int n,
                               int is_key, float *dx, float *dphi, int ldd, const float *phi,
                               const float *x, float *work) {
    (void)phi, (void)x;
    Favor *f = km->own;
    const int M = km->M, Dh = km->Dh, ld = 3 * km->H * Dh;
    const size_t bh = (size_t)b * km->H + h;
    const unsigned char *act = (is_key ? f->act_k : f->act_q) + (bh * s->L + l0) * M;
    float *du = work; /* (n × M) */
    memset(du, 0, (size_t)n * M * sizeof *du);
    if (ldd == M)
        relu_backward_set(du, act, dphi, (size_t)n * M);
    else
        for (int l = 0; l < n; l++)
            relu_backward_set(du + (size_t)l * M, act + (size_t)l * M, dphi + (size_t)l * ldd,
                              (size_t)M);
    if (f->kernel == K_RELU) {
        attn_tile_acc(dx, ld, du, M, 1, f->W, Dh, n, Dh, M, 1.0f / sqrtf((float)M));
        return;
    }
    for (int l = 0; l < n; l++)
        for (int d = 0; d < Dh; d++) dx[(size_t)l * ld + d] += du[(size_t)l * M + d];
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

static const FeatureOps softmax_ops = {.prepare = favor_prepare,
                                       .flops = favor_flops,
                                       .random = favor_random,
                                       .key_passes = 2,
                                       .rows_work = favor_rows_work,
                                       .map_rows = softmax_map_rows,
                                       .backward_rows = softmax_backward_rows,
                                       .backward_end = softmax_backward_end};

static const FeatureOps relu_ops = {.prepare = favor_prepare,
                                    .flops = favor_flops,
                                    .random = favor_random,
                                    .key_passes = 1,
                                    .rows_work = favor_rows_work,
                                    .map_rows = relu_map_rows,
                                    .backward_rows = relu_backward_rows};

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
    st->km.fops = f->kernel == K_SOFTMAX ? &softmax_ops : &relu_ops;
    st->km.own = f;
    const int Dh = st->km.Dh;
    if (f->kernel == K_RELU_LRA) {
        st->km.M = Dh;
    } else {
        st->km.M = opt_int(m->opts, performer_opts, NOPTS, "features");
        f->W = malloc((size_t)st->km.M * Dh * sizeof *f->W);
        f->Wp = malloc((size_t)attn_tile_cols(st->km.M) * Dh * sizeof *f->Wp);
        f->qr = malloc(((size_t)Dh * Dh + 2 * (size_t)Dh + 64 * (size_t)Dh) * sizeof *f->qr);
        XB_ASSERT(f->W && f->Wp && f->qr);
    }
    if (f->kernel == K_SOFTMAX) st->km.guard = FAVOR_EPS; /* the relu kernels divide as is */
}

static void performer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    PerformerState *st = m->state;
    kernel_mixer_plan(m, acts, scratch, B, L);
    /* the maps' work is the fused kernel's, which kernel_mixer_plan counted */
    Favor *f = &st->favor;
    const size_t n = (size_t)B * m->H * L * st->km.M, BH = (size_t)B * m->H;
    f->kmax = arena_floats(acts, BH);
    f->ksum = arena_floats(acts, BH);
    f->karg = arena_alloc(acts, BH * sizeof *f->karg);
    f->qarg = arena_alloc(acts, BH * L * sizeof *f->qarg);
    if (f->kernel != K_SOFTMAX) {
        f->act_q = arena_alloc(acts, n);
        f->act_k = arena_alloc(acts, n);
    }
}

static void performer_destroy(Mixer *m) {
    PerformerState *st = m->state;
    free(st->favor.W);
    free(st->favor.Wp);
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
