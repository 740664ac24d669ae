/* linear: the Linear Transformer (Katharopoulos et al., arXiv 2006.16236): attention with the
 * feature map φ(x) = elu(x) + 1 (§3.2.1, eq. 7), computed as φ(Q)(φ(K)ᵀV) in O(L·Dh²):
 *   O_i = φ(q_i)ᵀ Σ_j φ(k_j) v_jᵀ / (φ(q_i)ᵀ Σ_j φ(k_j) + ε),  ε = 1e-6,
 * as the authors' code runs it (idiap/fast-transformers, fast_transformers/attention/
 * linear_attention.py: elu_feature_map, LinearAttention(eps=1e-6), padding keys' features zeroed
 * through key_lengths). LRA's copy (lra_benchmarks/models/linear_transformer/linear_attention.py)
 * has the same map and ε.
 *
 * causal: the decoder form (§3.3, eq. 8-9), O_i = φ(q_i)ᵀ Σ_{j<=i} φ(k_j) v_jᵀ /
 * (φ(q_i)ᵀ Σ_{j<=i} φ(k_j) + ε), as CausalLinearAttention (attention/causal_linear_attention.py:
 * the same map and eps, padding keys zeroed, the normaliser φ(q_i)·cumsum(φ(K))_i + eps) and its
 * causal_dot_product (causal_product/causal_product_cpu.cpp: key i is in the sum query i reads)
 * run it; by chunks of rows on the shared kernel (kernels/linear_attn.h, LinAttnShape.causal). */
#include <math.h>
#include <stdlib.h>

#include "core/xassert.h"
#include "kernels/fastmath.h"
#include "kernels/simd.h"
#include "mixers/kernel_mixer.h"

static const OptSpec linear_opts[] = {
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the projections"},
    {.name = "causal",
     .type = OPT_BOOL,
     .def = 0,
     .help = "hide later keys from each query (decoder-style: prefix sums, "
             "eq. 8-9); LRA's encoders are bidirectional"},
};
#define NOPTS ((int)XB_ARRAY_LEN(linear_opts))

#define LINEAR_EPS 1e-6f /* LinearAttention(eps=1e-6) */

/* φ(x) = elu(x) + 1 = x + 1 for x > 0, e^x otherwise, on n rows of a head's slice x (row stride
 * ld) into phi (n × Dh). */
XB_CLONES static void elu1_rows(float *phi, const float *x, int n, int Dh, size_t ld) {
    for (int l = 0; l < n; l++) {
        const float *xi = x + (size_t)l * ld;
        prefetch_row(xi + PREFETCH_ROWS * ld, Dh);
        float *pi = phi + (size_t)l * Dh;
        for (int d = 0; d < Dh; d++) pi[d] = xi[d] > 0.0f ? xi[d] + 1.0f : xb_expf(xi[d]);
    }
}

/* dx += dφ·elu'(x), elu'(x) + 0 = 1 for x > 0, e^x = φ otherwise. */
XB_CLONES static void elu1_rows_backward(float *dx, const float *dphi, int ldd, const float *phi,
                                         const float *x, int n, int Dh, size_t ld) {
    for (int l = 0; l < n; l++) {
        const float *xi = x + (size_t)l * ld, *pi = phi + (size_t)l * Dh;
        const float *gi = dphi + (size_t)l * ldd;
        float *di = dx + (size_t)l * ld;
        prefetch_row(xi + PREFETCH_ROWS * ld, Dh);
        prefetch_row(di + PREFETCH_ROWS * ld, Dh);
        for (int d = 0; d < Dh; d++) di[d] += gi[d] * (xi[d] > 0.0f ? 1.0f : pi[d]);
    }
}

/* The fused kernel's chunks (kernels/linear_attn.h): the map is row-local, one key pass. */
static void elu1_map_rows(KernelMixer *km, const MixerStep *s, int b, int h, int l0, int n,
                          int is_key, int pass, float *phi, const float *x, float *work) {
    (void)s, (void)b, (void)h, (void)l0, (void)is_key, (void)pass, (void)work;
    elu1_rows(phi, x, n, km->Dh, (size_t)3 * km->H * km->Dh);
}

static void elu1_backward_rows(KernelMixer *km, const MixerStep *s, int b, int h, int l0, int n,
                               int is_key, float *dx, float *dphi, int ld, const float *phi,
                               const float *x, float *work) {
    (void)s, (void)b, (void)h, (void)l0, (void)is_key, (void)work;
    elu1_rows_backward(dx, dphi, ld, phi, x, n, km->Dh, (size_t)3 * km->H * km->Dh);
}

static uint64_t elu1_flops(const KernelMixer *km, int B, int L, int backward) {
    (void)km, (void)B, (void)L, (void)backward;
    return 0; /* element-wise */
}

static const FeatureOps elu1_ops = {.flops = elu1_flops,
                                    .key_passes = 1,
                                    .map_rows = elu1_map_rows,
                                    .backward_rows = elu1_backward_rows};

static void linear_create(Mixer *m, ParamTable *pt) {
    KernelMixer *km = calloc(1, sizeof *km);
    XB_ASSERT(km);
    kernel_mixer_create(m, pt, km, opt_bool(m->opts, linear_opts, NOPTS, "bias"));
    km->fops = &elu1_ops;
    km->M = m->D / m->H;
    km->eps = LINEAR_EPS;
    km->causal = opt_bool(m->opts, linear_opts, NOPTS, "causal");
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
