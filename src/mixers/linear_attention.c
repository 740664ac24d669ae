/* linear: the Linear Transformer (Katharopoulos et al., arXiv 2006.16236): attention with the
 * feature map φ(x) = elu(x) + 1 (§3.2.1, eq. 7), computed as φ(Q)(φ(K)ᵀV) in O(L·Dh²):
 *   O_i = φ(q_i)ᵀ Σ_j φ(k_j) v_jᵀ / (φ(q_i)ᵀ Σ_j φ(k_j) + ε),  ε = 1e-6,
 * as the authors' code runs it (idiap/fast-transformers, fast_transformers/attention/
 * linear_attention.py: elu_feature_map, LinearAttention(eps=1e-6), padding keys' features zeroed
 * through key_lengths). LRA's copy (lra_benchmarks/models/linear_transformer/linear_attention.py)
 * has the same map and ε. */
#include <math.h>
#include <stdlib.h>

#include "core/xassert.h"
#include "kernels/fastmath.h"
#include "mixers/kernel_mixer.h"

static const OptSpec linear_opts[] = {
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the projections"},
};
#define NOPTS ((int)XB_ARRAY_LEN(linear_opts))

#define LINEAR_EPS 1e-6f /* LinearAttention(eps=1e-6) */

/* x: Q or K inside the packed (B, L, 3·H·Dh) projection; phi: (B, H, L, Dh). */
static void elu1_forward(KernelMixer *km, const MixerStep *s, float *phi, const float *x,
                         int is_key) {
    (void)is_key;
    const int H = km->H, Dh = km->Dh, L = s->L;
    const size_t ld = (size_t)3 * H * Dh;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++)
            for (int l = 0; l < L; l++) {
                const float *xi = x + ((size_t)b * L + l) * ld + (size_t)h * Dh;
                float *pi = phi + (((size_t)b * H + h) * L + l) * Dh;
                for (int d = 0; d < Dh; d++) pi[d] = xi[d] > 0.0f ? xi[d] + 1.0f : xb_expf(xi[d]);
            }
}

static void elu1_backward(KernelMixer *km, const MixerStep *s, float *dx, const float *dphi,
                          const float *phi, const float *x, int is_key) {
    (void)is_key;
    const int H = km->H, Dh = km->Dh, L = s->L;
    const size_t ld = (size_t)3 * H * Dh;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++)
            for (int l = 0; l < L; l++) {
                const size_t xo = ((size_t)b * L + l) * ld + (size_t)h * Dh;
                const size_t po = (((size_t)b * H + h) * L + l) * Dh;
                for (int d = 0; d < Dh; d++) /* elu'(x) + 0 = 1 for x > 0, e^x = φ otherwise */
                    dx[xo + d] += dphi[po + d] * (x[xo + d] > 0.0f ? 1.0f : phi[po + d]);
            }
}

static uint64_t elu1_flops(const KernelMixer *km, int B, int L, int backward) {
    (void)km, (void)B, (void)L, (void)backward;
    return 0; /* element-wise */
}

static const FeatureOps elu1_ops = {
    .forward = elu1_forward, .backward = elu1_backward, .flops = elu1_flops};

static void linear_create(Mixer *m, ParamTable *pt) {
    KernelMixer *km = calloc(1, sizeof *km);
    XB_ASSERT(km);
    kernel_mixer_create(m, pt, km, opt_bool(m->opts, linear_opts, NOPTS, "bias"));
    km->fops = &elu1_ops;
    km->M = m->D / m->H;
    km->eps = LINEAR_EPS;
}

static const MixerOps linear_ops = {
    .create = linear_create,
    .plan = kernel_mixer_plan,
    .forward = kernel_mixer_forward,
    .backward = kernel_mixer_backward,
    .flops = kernel_mixer_flops,
    .destroy = attn_mixer_destroy,
};

const MixerSpec mixer_linear = {
    .name = "linear",
    .classes = "KR",
    .arxiv = "2006.16236",
    .title = "Linear Transformer: elu(x)+1 feature map, O(L) attention",
    .honours_mask = 1,
    .opts = linear_opts,
    .n_opts = NOPTS,
    .ops = &linear_ops,
};
