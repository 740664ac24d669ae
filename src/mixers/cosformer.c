/* cosformer: cosFormer (Qin et al., arXiv 2202.08791, §3.3-3.4, eq. 8-11), the bidirectional
 * (encoder) form as the authors' code runs it (OpenNLPLab/cosFormer, cosformer.py,
 * CosformerAttention.forward with causal=False):
 *   q_i, k_j = ReLU(x W_q + b_q), ReLU(x W_k + b_k) per head, v_j = x W_v + b_v,
 *   s(q_i, k_j) = q_i·k_j · cos(π/2 · (i − j)/M)                              (eq. 9)
 *   O_i = Σ_j s(q_i, k_j) v_j / max(Σ_j s(q_i, k_j), 1e-6)
 * computed in O(L) by the decomposition cos(a − b) = cos a cos b + sin a sin b (eq. 10-11): with
 * θ_i = π/2 · i/M for the 1-based position i (get_index: π/2 · arange(1, L + 1)),
 *   φ(q_i) = [q_i sin θ_i, q_i cos θ_i],  φ(k_j) = [k_j sin θ_j, k_j cos θ_j]  (2·Dh features)
 * on the shared linear-attention kernel (kernels/linear_attn.h) with no ε and the denominator
 * clamped from below at 1e-6 (forward: z_ = 1/clamp_min(q_·Σk_, eps), eps = 1e-6), the clamp
 * having no gradient, as torch.clamp_min.
 *
 * M: the code takes m = max(src_len, tgt_len), the length of the (padded) tensor it is given, so
 * on a padded batch M is the padded length L and a row's real outputs change with the padding;
 * that is the default (padded_m). padded_m = false uses each row's real length (its number of
 * real positions), the paper's "M is the length of the sequence" per sequence, and padding is then
 * invisible. The code has no key-padding mask (attn_mask is ignored in the non-causal path); here
 * padding keys get zero features, so they are excluded exactly in both settings.
 *
 * The ReLU keeps its active set when MixerStep.frozen (relu_forward_set), so a gradient check
 * meets no kink. Projections have biases by default (nn.Linear's default in cosformer.py). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/activations.h"
#include "mixers/kernel_mixer.h"

static const OptSpec cosformer_opts[] = {
    MOPT_BOOL("padded_m", 1,
              "M of the re-weighting cos(pi/2·(i-j)/M) is the padded length L, as cosformer.py's "
              "m = max(src_len, tgt_len) of the padded batch (true), or each row's real length, "
              "the paper's sequence length (false: padding invisible)"),
    MOPT_BOOL(
        "bias", 1,
        "biases in the Q/K/V and output projections (cosformer.py: nn.Linear's default, yes)"),
};
#define NOPTS MOPT_COUNT(cosformer_opts)

#define COS_MIN_DEN 1e-6f /* forward(eps=1e-6): clamp_min of the denominator */

typedef struct CosState {
    KernelMixer km; /* first */
    int padded_m;
    float *sn, *cs;             /* (B, L) saved: sin θ_i, cos θ_i of every row */
    unsigned char *actq, *actk; /* (B, L, D) saved: the ReLU's active sets */
} CosState;

/* θ_i = π/2 · (i + 1)/M for the 0-based position i, M the padded length or the row's real one. */
static void cos_prepare(KernelMixer *km, const MixerStep *s) {
    CosState *st = (CosState *)km;
    const int L = s->L;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < s->B; b++) {
        int M = L;
        if (!st->padded_m && s->mask) {
            M = 0;
            for (int l = 0; l < L; l++) M += s->mask[(size_t)b * L + l] != 0;
            if (M == 0) M = L; /* no real position: nothing reads the angles */
        }
        for (int l = 0; l < L; l++) {
            const double th = M_PI / 2.0 * (double)(l + 1) / (double)M;
            st->sn[(size_t)b * L + l] = (float)sin(th);
            st->cs[(size_t)b * L + l] = (float)cos(th);
        }
    }
}

/* x: Q or K inside the packed (B, L, 3D) projection; phi (B, H, L, 2·Dh) = [r sin θ, r cos θ] with
 * r = ReLU(x) on the active set (the previous forward's when frozen). */
static void cos_forward(KernelMixer *km, const MixerStep *s, float *phi, const float *x,
                        int is_key) {
    CosState *st = (CosState *)km;
    const int H = km->H, Dh = km->Dh, D = H * Dh, L = s->L, M = km->M;
    const size_t BL = (size_t)s->B * L, mark = arena_mark(s->scratch);
    float *r = arena_floats(s->scratch, BL * D); /* (B, L, D): x, then ReLU(x) */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BL; i++) memcpy(r + i * D, x + i * 3 * D, (size_t)D * sizeof *r);
    relu_forward_set(r, is_key ? st->actk : st->actq, r, BL * D, s->frozen);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++)
            for (int l = 0; l < L; l++) {
                const size_t bl = (size_t)b * L + l;
                const float *ri = r + bl * D + (size_t)h * Dh;
                /* padding: keys excluded, queries given no feature (their output is 0) */
                const int real = !s->mask || s->mask[bl];
                const float sn = real ? st->sn[bl] : 0.0f, cs = real ? st->cs[bl] : 0.0f;
                float *pi = phi + (((size_t)b * H + h) * L + l) * M;
                for (int d = 0; d < Dh; d++) {
                    pi[d] = ri[d] * sn;
                    pi[Dh + d] = ri[d] * cs;
                }
            }
    arena_reset_to(s->scratch, mark);
}

/* dx += ReLU'(x) · (dφ_sin sin θ + dφ_cos cos θ), on the forward's active set. */
static void cos_backward(KernelMixer *km, const MixerStep *s, float *dx, const float *dphi,
                         const float *phi, const float *x, int is_key) {
    (void)phi, (void)x;
    CosState *st = (CosState *)km;
    const int H = km->H, Dh = km->Dh, D = H * Dh, L = s->L, M = km->M;
    const size_t BL = (size_t)s->B * L, mark = arena_mark(s->scratch);
    float *g = arena_floats(s->scratch, BL * D); /* (B, L, D): ∂/∂ReLU(x) */
    float *gx = arena_floats(s->scratch, BL * D);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < H; h++)
            for (int l = 0; l < L; l++) {
                const size_t bl = (size_t)b * L + l;
                const int real = !s->mask || s->mask[bl];
                const float sn = real ? st->sn[bl] : 0.0f, cs = real ? st->cs[bl] : 0.0f;
                const float *gi = dphi + (((size_t)b * H + h) * L + l) * M;
                float *o = g + bl * D + (size_t)h * Dh;
                for (int d = 0; d < Dh; d++) o[d] = gi[d] * sn + gi[Dh + d] * cs;
            }
    relu_backward_set(gx, is_key ? st->actk : st->actq, g, BL * D);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BL; i++)
        for (int d = 0; d < D; d++) dx[i * 3 * D + d] += gx[i * D + d];
    arena_reset_to(s->scratch, mark);
}

static uint64_t cos_flops(const KernelMixer *km, int B, int L, int backward) {
    (void)km, (void)B, (void)L, (void)backward;
    return 0; /* element-wise */
}

static const FeatureOps cos_ops = {
    .prepare = cos_prepare, .forward = cos_forward, .backward = cos_backward, .flops = cos_flops};

static void cosformer_create(Mixer *m, ParamTable *pt) {
    CosState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    kernel_mixer_create(m, pt, &st->km, opt_bool(m->opts, cosformer_opts, NOPTS, "bias"));
    st->padded_m = opt_bool(m->opts, cosformer_opts, NOPTS, "padded_m");
    st->km.fops = &cos_ops;
    st->km.own = st;
    st->km.M = 2 * (m->D / m->H);
    st->km.eps = 0.0f;
    st->km.min_den = COS_MIN_DEN;
}

static void cosformer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    CosState *st = m->state;
    kernel_mixer_plan(m, acts, scratch, B, L);
    const size_t BL = (size_t)B * L;
    st->sn = arena_floats(acts, BL);
    st->cs = arena_floats(acts, BL);
    st->actq = arena_alloc(acts, BL * m->D);
    st->actk = arena_alloc(acts, BL * m->D);
    /* the maps' buffers, on top of the kernel mixer's backward buffers */
    arena_floats(scratch, BL * m->D);
    arena_floats(scratch, BL * m->D);
}

const MixerSpec mixer_cosformer = {
    .name = "cosformer",
    .classes = "KR",
    .arxiv = "2202.08791",
    .title = "cosFormer: ReLU features with cos(pi/2·(i-j)/M) re-weighting, O(L) attention",
    .honours_mask = 1,
    .padding_dependence = "M of the cos re-weighting is the padded length L (cosformer.py: m = "
                          "max(src_len, tgt_len) of the padded batch); padding keys are excluded",
    .padding_dependence_option = "padded_m",
    MIXER_OPTS(cosformer_opts),
    .ops = &(const MixerOps){.create = cosformer_create, .plan = cosformer_plan, KERNEL_MIXER_RUN},
};
