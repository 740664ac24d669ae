/* synthesizer: Synthesizer (Tay et al., arXiv 2005.00743, §3): attention weights synthesised
 * without token-token dot products, Y_h = softmax(B_h)·G_h(X) for every head h, with G_h head h's
 * slice of the value projection, then the output projection. Each head has its own synthetic
 * logits B_h, as in the authors' code: LRA's SynthesizerAttention.apply
 * (lra_benchmarks/models/synthesizer/synthesizer_attention.py) and Mesh TensorFlow's
 * synthetic_attention (mesh_tensorflow/transformer/attention.py). Variants (n = model.max_len, the
 * first L rows and columns used):
 *   factorized: B_h = R1_h·R2_hᵀ, R1_h, R2_h ∈ R^{n×k} (LRA: `random1` (heads, max_length, k),
 *               `random2` (heads, k, max_length); stored here as (heads, n, k) both). k = 32 as
 *               LRA's text config;
 *   dense:      B_h[i] = W2·ReLU(W1_h·x_i + b1_h) + b2, W1_h the h-th Dh rows of W1 (D, D), W2
 *               (n, Dh) shared by the heads (LRA: `dense_syn` with features (heads, head_dim),
 *               `dense_syn2` from head_dim to max_length; Mesh TF's "dense_minus" likewise);
 *   random:     B_h = R_h ∈ R^{n×n} (LRA: `random` (heads, max_length, max_length)), learned or
 *               fixed at its initialisation (`trainable: false`).
 * Initialisation as LRA's SynthesizerBlock (kernel_init = xavier_uniform, with jax's fans of a
 * (heads, rows, cols) tensor: fan_in = heads·rows, fan_out = heads·cols): R1, R2 uniform in
 * ±sqrt(6 / (H·(n + k))), R in ±sqrt(3 / (H·n)), W1 in ±sqrt(3 / D), W2 in ±sqrt(6 / (Dh + n)).
 * `heads: shared` gives every head the same logits instead (one R1, R2 or R; W2 (n, D) over the
 * whole of ReLU(W1·x)), this harness's earlier form: with `dot: false` it is single-head attention.
 * `dot` adds each head's scaled Q·Kᵀ/√Dh to its synthetic logits (LRA's synthetic_attention with
 * ignore_dot_product false; the paper's mixtures "R+V", "D+V"). Padding keys are masked.
 *
 * Two places where LRA's code is not followed. Its dense logits are reshaped from (batch, L,
 * heads, n) to (batch, heads, L, n) without a transpose ("TODO(yitay) check if this reshape is
 * needed"), which hands query i of head h another token's logits; no LRA config runs dense, so the
 * per-query, per-head logits of the paper and Mesh TF are used. And with ignore_dot_product LRA
 * applies no padding mask at all; here padding keys are always masked.
 *
 * dense and random keep the (B, H, L, L) probabilities: they are O(L²) by nature. factorized
 * streams through the fused kernel: head h's logit R1_h[i]·R2_h[j] is a score with query/key width
 * k (with `dot`, the features [R1_h[i], q_i/√Dh] and [R2_h[j], k_j], width k + Dh), so it runs in
 * O(L) memory. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "mixers/attn_mixer.h"

static const char *const VARIANTS[] = {"factorized", "dense", "random", NULL};
enum { V_FACTORIZED, V_DENSE, V_RANDOM, N_VARIANTS };
MOPT_CHOICES_ARE(VARIANTS, N_VARIANTS);
static const char *const HEADS[] = {"per_head", "shared", NULL};
enum { HEADS_PER_HEAD, HEADS_SHARED, N_HEADS };
MOPT_CHOICES_ARE(HEADS, N_HEADS);

static const OptSpec synth_opts[] = {
    MOPT_ENUM("variant", V_FACTORIZED, VARIANTS,
              "factorized random (LRA's text config), dense, or random (LRA's released code runs "
              "random with dot on every task: train.py never reads the text config's keys)"),
    MOPT_INT("k", 32, 1, 65536, "rank of each head's factorized logits R1·R2ᵀ (LRA: 32)"),
    MOPT_ENUM(
        "heads", HEADS_PER_HEAD, HEADS,
        "per_head: every head its own synthetic logits (the paper, LRA's and Mesh TF's code); "
        "shared: one set for all heads (single-head attention unless dot)"),
    MOPT_BOOL("trainable", 1, "random: learn R (true) or keep it fixed at its initialisation"),
    MOPT_BOOL("dot", 0,
              "add each head's dot-product logits Q·Kᵀ/sqrt(Dh) (the paper's mixtures; LRA's text "
              "config: off)"),
    MOPT_BOOL("bias", 0,
              "biases in the projections and the dense variant's two layers (LRA: none)"),
};
#define NOPTS MOPT_COUNT(synth_opts)

typedef struct SynthState {
    int variant, k, dot, bias, n, kq;         /* kq: factorized query/key feature width per head */
    int G, Dg;                                /* sets of synthetic logits (H or 1), dense width */
    int p_wv, p_bv, p_wqk, p_bqk, p_wo, p_bo; /* value, (q, k) with dot, output */
    int p_w1, p_b1, p_w2, p_b2;               /* dense: (D, D), (D), (n, Dg), (n) */
    int p_r, p_r1, p_r2;                      /* random (G, n, n); factorized (G, n, k) each */
    /* saved */
    float *v, *qk;      /* (B, L, D) values; (B, L, 2D) queries and keys (dot) */
    float *att, *lse;   /* (B, L, D) before the output projection; factorized: (B, H, L) */
    float *h1pre, *h1;  /* dense: (B, L, D) */
    unsigned char *act; /* dense: (B, L, D) the ReLU's active set */
    float *p;           /* dense/random: (B, H, L, L) probabilities */
    float *qf, *kf;     /* factorized: (B, L, H·kq) features */
} SynthState;

/* The set of synthetic logits head h uses. */
static inline int group_of(const SynthState *st, int h, int H) { return h * st->G / H; }

static void synth_create(Mixer *m, ParamTable *pt) {
    SynthState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    st->variant = opt_enum(m->opts, synth_opts, NOPTS, "variant");
    st->k = opt_int(m->opts, synth_opts, NOPTS, "k");
    st->dot = opt_bool(m->opts, synth_opts, NOPTS, "dot");
    st->bias = opt_bool(m->opts, synth_opts, NOPTS, "bias");
    st->n = m->max_len;
    const int D = m->D, n = st->n, H = m->H, Dh = D / H;
    st->G = opt_enum(m->opts, synth_opts, NOPTS, "heads") == HEADS_SHARED ? 1 : H;
    st->Dg = D / st->G;
    const int G = st->G, k = st->k;
    st->kq = k + (st->dot ? Dh : 0);
    char name[XB_PARAM_NAME];
    st->p_wv = mixer_add_linear(pt, m->prefix, "value", D, D, st->bias, &st->p_bv);
    st->p_wqk = st->p_bqk = -1;
    if (st->dot) st->p_wqk = mixer_add_linear(pt, m->prefix, "qk", 2 * D, D, st->bias, &st->p_bqk);
    st->p_wo = mixer_add_linear(pt, m->prefix, "out", D, D, st->bias, &st->p_bo);
    st->p_w1 = st->p_b1 = st->p_w2 = st->p_b2 = st->p_r = st->p_r1 = st->p_r2 = -1;
    switch (st->variant) {
    case V_DENSE: {
        snprintf(name, sizeof name, "%s.dense", m->prefix);
        st->p_w1 = mixer_add_linear(pt, name, "fc1", D, D, st->bias, &st->p_b1);
        st->p_w2 = params_add2f(pt, n, st->Dg, INIT_UNIFORM, sqrtf(6.0f / (float)(st->Dg + n)), 1,
                                "%s.dense.fc2.weight", m->prefix);
        if (st->bias) {
            st->p_b2 = params_add1f(pt, n, INIT_ZEROS, 0, 0, "%s.dense.fc2.bias", m->prefix);
        }
        break;
    }
    case V_RANDOM: {
        const int shape[3] = {G, n, n};
        const float a = sqrtf(3.0f / ((float)G * (float)n));
        snprintf(name, sizeof name, "%s.random", m->prefix);
        if (opt_bool(m->opts, synth_opts, NOPTS, "trainable"))
            st->p_r = params_add(pt, name, 3, shape, INIT_UNIFORM, a, 1);
        else
            st->p_r = params_add_buffer(pt, name, 3, shape, INIT_UNIFORM, a);
        break;
    }
    default: {
        const int shape[3] = {G, n, k};
        const float a = sqrtf(6.0f / ((float)G * (float)(n + k)));
        st->p_r1 = params_addf(pt, 3, shape, INIT_UNIFORM, a, 1, "%s.r1", m->prefix);
        st->p_r2 = params_addf(pt, 3, shape, INIT_UNIFORM, a, 1, "%s.r2", m->prefix);
    }
    }
}

static int synth_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H;
    if (opt_enum(opts, synth_opts, NOPTS, "variant") != V_FACTORIZED) return 0;
    return mixer_check_len(opts, synth_opts, NOPTS, "k", max_len,
                           "%d is larger than model.max_len = %d (valid: 1 to %d: the rank of an "
                           "n x n matrix)",
                           err);
}

/* factorized: features (B, L, H·kq) against features, values from v (B, L, D). */
static AttnShape feat_shape(const Mixer *m, int B, int L) {
    const SynthState *st = m->state;
    const int D = m->D, H = m->H;
    AttnShape s = attn_shape(B, H, L, L, st->kq, H * st->kq, H * st->kq, D, D);
    s.Dv = D / H;
    s.scale = 1.0f;
    return s;
}

static void synth_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    SynthState *st = m->state;
    const size_t D = (size_t)m->D, BL = (size_t)B * L, H = (size_t)m->H, G = (size_t)st->G;
    st->v = arena_floats(acts, BL * D);
    st->qk = st->dot ? arena_floats(acts, BL * 2 * D) : NULL;
    st->att = arena_floats(acts, BL * D);
    st->act = NULL;
    st->h1pre = st->h1 = st->p = st->qf = st->kf = st->lse = NULL;
    size_t extra = 0;
    if (st->variant == V_FACTORIZED) {
        st->qf = arena_floats(acts, BL * H * st->kq);
        st->kf = arena_floats(acts, BL * H * st->kq);
        st->lse = arena_floats(acts, BL * H);
        AttnShape s = feat_shape(m, B, L);
        extra = 2 * BL * H * st->kq + BL * 2 * D + attn_scratch_floats(&s, omp_get_max_threads());
    } else {
        if (st->variant == V_DENSE) {
            st->h1pre = arena_floats(acts, BL * D);
            st->act = arena_alloc(acts, BL * D);
            st->h1 = arena_floats(acts, BL * D);
        }
        st->p = arena_floats(acts, (size_t)B * H * L * L);
        /* backward: d(logits) per batch row and set (B, G, L, L), per thread a (L, L) tile,
         * d(qk), and the dense variant's d(h1), d(h1pre) */
        extra = B * G * L * (size_t)L + (size_t)omp_get_max_threads() * L * L + BL * 2 * D +
                2 * BL * D + 64;
    }
    arena_floats(scratch, 2 * BL * D + extra + 64); /* d(att), d(v) */
}

static void synth_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    SynthState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, H = m->H, Dh = D / H, BL = B * L, kq = st->kq;
    const int G = st->G, Dg = st->Dg, n = st->n, k = st->k;
    linear_forward(st->v, x, mixer_param(s, st->p_wv), mixer_param(s, st->p_bv), BL, D, D);
    if (st->dot)
        linear_forward(st->qk, x, mixer_param(s, st->p_wqk), mixer_param(s, st->p_bqk), BL, D,
                       2 * D);
    if (st->variant == V_FACTORIZED) {
        const float *r1 = mixer_param(s, st->p_r1), *r2 = mixer_param(s, st->p_r2),
                    sc = 1.0f / sqrtf((float)Dh);
#pragma omp parallel for schedule(static)
        for (int bi = 0; bi < BL; bi++) {
            const int i = bi % L;
            for (int h = 0; h < H; h++) {
                const size_t row = ((size_t)group_of(st, h, H) * n + i) * k;
                float *qf = st->qf + ((size_t)bi * H + h) * kq,
                      *kf = st->kf + ((size_t)bi * H + h) * kq;
                memcpy(qf, r1 + row, (size_t)k * sizeof(float));
                memcpy(kf, r2 + row, (size_t)k * sizeof(float));
                for (int d = 0; st->dot && d < Dh; d++) {
                    qf[k + d] = st->qk[(size_t)bi * 2 * D + h * Dh + d] * sc;
                    kf[k + d] = st->qk[(size_t)bi * 2 * D + D + h * Dh + d];
                }
            }
        }
        AttnShape sh = feat_shape(m, B, L);
        attn_forward(st->att, st->lse, st->qf, st->kf, st->v, s->mask, &sh, s->scratch);
    } else {
        const size_t LL = (size_t)L * L;
        if (st->variant == V_DENSE) { /* h1 = ReLU(W1 x + b1), (B, L, D) */
            linear_forward(st->h1pre, x, mixer_param(s, st->p_w1), mixer_param(s, st->p_b1), BL, D,
                           D);
            relu_forward_set(st->h1, st->act, st->h1pre, (size_t)BL * D, s->frozen);
        }
        /* the synthetic logits of set g into the slot of its first head, copied to the others */
        const float *w2 = mixer_param(s, st->p_w2), *b2 = mixer_param(s, st->p_b2),
                    *r = mixer_param(s, st->p_r);
        for (int b = 0; b < B; b++)
            for (int g = 0; g < G; g++) {
                const int h0 = g * H / G, h1 = (g + 1) * H / G;
                float *z = st->p + ((size_t)b * H + h0) * LL;
                if (st->variant == V_DENSE) { /* z (L, L) = h1_g (L, Dg)·W2[:L]ᵀ + b2[:L] */
                    for (int i = 0; b2 && i < L; i++)
                        memcpy(z + (size_t)i * L, b2, (size_t)L * sizeof(float));
                    matmul_strided(z, L, st->h1 + (size_t)b * L * D + (size_t)g * Dg, D, w2, Dg, L,
                                   L, Dg, MM_NT, 1.0f, b2 ? 1.0f : 0.0f);
                } else {
                    for (int i = 0; i < L; i++)
                        memcpy(z + (size_t)i * L, r + ((size_t)g * n + i) * n,
                               (size_t)L * sizeof(float));
                }
                for (int h = h0 + 1; h < h1; h++)
                    memcpy(st->p + ((size_t)b * H + h) * LL, z, LL * sizeof(float));
            }
        const float sc = 1.0f / sqrtf((float)Dh);
#pragma omp parallel for schedule(static)
        for (int bh = 0; bh < B * H; bh++) {
            const int b = bh / H, h = bh % H;
            float *ph = st->p + (size_t)bh * LL;
            if (st->dot) {
                matmul_strided(ph, L, st->qk + (size_t)b * L * 2 * D + h * Dh, 2 * D,
                               st->qk + (size_t)b * L * 2 * D + D + h * Dh, 2 * D, L, L, Dh, MM_NT,
                               sc, 1.0f);
            }
            for (int i = 0; i < L; i++) { /* masked softmax over the keys */
                float *row = ph + (size_t)i * L, mx = -INFINITY, sum = 0.0f;
                for (int j = 0; j < L; j++) {
                    if (s->mask && !s->mask[(size_t)b * L + j]) row[j] = -INFINITY;
                    mx = fmaxf(mx, row[j]);
                }
                for (int j = 0; j < L; j++)
                    sum += (row[j] = mx == -INFINITY ? 0.0f : expf(row[j] - mx));
                for (int j = 0; j < L; j++) row[j] = sum > 0.0f ? row[j] / sum : 0.0f;
            }
            matmul_strided(st->att + (size_t)b * L * D + h * Dh, D, ph, L,
                           st->v + (size_t)b * L * D + h * Dh, D, L, Dh, L, MM_NN, 1.0f, 0.0f);
        }
    }
    linear_forward(y, st->att, mixer_param(s, st->p_wo), mixer_param(s, st->p_bo), BL, D, D);
}

/* Backward of the materialised variants: dv, dqk += and dz (B, G, L, L) = d(synthetic logits). */
static void dense_probs_backward(const SynthState *st, const MixerStep *s, int H, int D, float *dz,
                                 float *dv, float *dqk, const float *datt) {
    const int B = s->B, L = s->L, Dh = D / H, G = st->G;
    const size_t LL = (size_t)L * L;
    const float sc = 1.0f / sqrtf((float)Dh);
    float *work = arena_floats(s->scratch, (size_t)omp_get_max_threads() * LL);
    /* one task per (batch row, set of logits): its heads run in turn, adding into its dz */
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * G; bg++) {
        const int b = bg / G, g = bg % G;
        float *ds = work + (size_t)omp_get_thread_num() * LL, *dzg = dz + (size_t)bg * LL;
        for (int h = g * H / G; h < (g + 1) * H / G; h++) {
            const float *ph = st->p + ((size_t)b * H + h) * LL;
            const float *go = datt + (size_t)b * L * D + h * Dh;
            /* dV = Pᵀ dO; dP = dO Vᵀ; dS = P ∘ (dP − rowsum(dP ∘ P)) */
            matmul_strided(dv + (size_t)b * L * D + h * Dh, D, ph, L, go, D, L, Dh, L, MM_TN, 1.0f,
                           1.0f);
            matmul_strided(ds, L, go, D, st->v + (size_t)b * L * D + h * Dh, D, L, L, Dh, MM_NT,
                           1.0f, 0.0f);
            for (int i = 0; i < L; i++) {
                float *r = ds + (size_t)i * L, acc = 0.0f;
                const float *pr = ph + (size_t)i * L;
                for (int j = 0; j < L; j++) acc += r[j] * pr[j];
                for (int j = 0; j < L; j++) r[j] = pr[j] * (r[j] - acc);
            }
            for (size_t q = 0; q < LL; q++) dzg[q] += ds[q];
            if (st->dot) { /* dQ = sc·dS K, dK = sc·dSᵀ Q */
                const float *q = st->qk + (size_t)b * L * 2 * D + h * Dh;
                matmul_strided(dqk + (size_t)b * L * 2 * D + h * Dh, 2 * D, ds, L, q + D, 2 * D, L,
                               Dh, L, MM_NN, sc, 1.0f);
                matmul_strided(dqk + (size_t)b * L * 2 * D + D + h * Dh, 2 * D, ds, L, q, 2 * D, L,
                               Dh, L, MM_TN, sc, 1.0f);
            }
        }
    }
}

static void synth_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                           const float *x) {
    SynthState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, H = m->H, Dh = D / H, BL = B * L, kq = st->kq;
    const int G = st->G, Dg = st->Dg, n = st->n, k = st->k;
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dv = arena_floats(s->scratch, (size_t)BL * D);
    float *dqk = st->dot ? arena_floats(s->scratch, (size_t)BL * 2 * D) : NULL;
    memset(datt, 0, (size_t)BL * D * sizeof(float));
    memset(dv, 0, (size_t)BL * D * sizeof(float));
    if (dqk) memset(dqk, 0, (size_t)BL * 2 * D * sizeof(float));
    linear_backward(datt, mixer_grad(s, st->p_wo), mixer_grad(s, st->p_bo), dy, st->att,
                    mixer_param(s, st->p_wo), BL, D, D);
    if (st->variant == V_FACTORIZED) {
        const float sc = 1.0f / sqrtf((float)Dh);
        const size_t nf = (size_t)BL * H * kq;
        float *dqf = arena_floats(s->scratch, nf), *dkf = arena_floats(s->scratch, nf);
        memset(dqf, 0, nf * sizeof(float));
        memset(dkf, 0, nf * sizeof(float));
        AttnShape sh = feat_shape(m, B, L);
        attn_backward(dqf, dkf, dv, datt, st->qf, st->kf, st->v, st->att, st->lse, s->mask, &sh,
                      s->scratch);
        /* features back to R1, R2 and to q, k: a thread owns position i (row i of every set),
         * summing batch rows and heads in order */
        float *g1 = mixer_grad(s, st->p_r1), *g2 = mixer_grad(s, st->p_r2);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < L; i++)
            for (int b = 0; b < B; b++) {
                const size_t bi = (size_t)b * L + i;
                for (int h = 0; h < H; h++) {
                    const size_t row = ((size_t)group_of(st, h, H) * n + i) * k;
                    const float *a = dqf + (bi * H + h) * kq, *c = dkf + (bi * H + h) * kq;
                    for (int d = 0; d < k; d++) g1[row + d] += a[d], g2[row + d] += c[d];
                    for (int d = 0; st->dot && d < Dh; d++) {
                        dqk[bi * 2 * D + h * Dh + d] += a[k + d] * sc;
                        dqk[bi * 2 * D + D + h * Dh + d] += c[k + d];
                    }
                }
            }
    } else {
        const size_t LL = (size_t)L * L;
        float *dz = arena_floats(s->scratch, (size_t)B * G * LL);
        memset(dz, 0, (size_t)B * G * LL * sizeof(float));
        dense_probs_backward(st, s, H, D, dz, dv, dqk, datt);
        if (st->variant == V_RANDOM) { /* a thread owns row (g, i) of R, batch rows in order */
            float *gr = mixer_grad(s, st->p_r);
            if (gr) {
#pragma omp parallel for schedule(static)
                for (int gi = 0; gi < G * L; gi++) {
                    const int g = gi / L, i = gi % L;
                    float *dst = gr + ((size_t)g * n + i) * n;
                    for (int b = 0; b < B; b++) {
                        const float *src = dz + ((size_t)b * G + g) * LL + (size_t)i * L;
                        for (int j = 0; j < L; j++) dst[j] += src[j];
                    }
                }
            }
        } else { /* dense: through W2[:L] per (batch row, set), then the ReLU and W1 */
            float *dh1 = arena_floats(s->scratch, (size_t)BL * D);
            float *dpre = arena_floats(s->scratch, (size_t)BL * D);
            memset(dh1, 0, (size_t)BL * D * sizeof(float));
            memset(dpre, 0, (size_t)BL * D * sizeof(float));
            const float *w2 = mixer_param(s, st->p_w2);
            float *gw2 = mixer_grad(s, st->p_w2), *gb2 = mixer_grad(s, st->p_b2);
            for (int b = 0; b < B; b++)
                for (int g = 0; g < G; g++) {
                    const float *dzg = dz + ((size_t)b * G + g) * LL;
                    const size_t off = (size_t)b * L * D + (size_t)g * Dg;
                    /* dW2[:L] (L, Dg) += dzᵀ·h1_g; d(h1_g) (L, Dg) += dz·W2[:L] */
                    matmul_strided(gw2, Dg, dzg, L, st->h1 + off, D, L, Dg, L, MM_TN, 1.0f, 1.0f);
                    matmul_strided(dh1 + off, D, dzg, L, w2, Dg, L, Dg, L, MM_NN, 1.0f, 1.0f);
                    for (int i = 0; gb2 && i < L; i++)
                        for (int j = 0; j < L; j++) gb2[j] += dzg[(size_t)i * L + j];
                }
            relu_backward_set(dpre, st->act, dh1, (size_t)BL * D);
            linear_backward(dx, mixer_grad(s, st->p_w1), mixer_grad(s, st->p_b1), dpre, x,
                            mixer_param(s, st->p_w1), BL, D, D);
        }
    }
    linear_backward(dx, mixer_grad(s, st->p_wv), mixer_grad(s, st->p_bv), dv, x,
                    mixer_param(s, st->p_wv), BL, D, D);
    if (st->dot)
        linear_backward(dx, mixer_grad(s, st->p_wqk), mixer_grad(s, st->p_bqk), dqk, x,
                        mixer_param(s, st->p_wqk), BL, D, 2 * D);
    arena_reset_to(s->scratch, mark);
}

static uint64_t synth_flops(const Mixer *m, int B, int L, int backward) {
    const SynthState *st = m->state;
    const uint64_t D = (uint64_t)m->D, BL = (uint64_t)B * (uint64_t)L, H = (uint64_t)m->H;
    const uint64_t Dh = D / H, LL = (uint64_t)L * (uint64_t)L;
    uint64_t proj = 2 * BL * D * D * 2 + (st->dot ? 2 * BL * D * 2 * D : 0); /* value, out, qk */
    if (st->variant == V_FACTORIZED) {
        AttnShape sh = feat_shape(m, B, L);
        return (backward ? 2 * proj : proj) + attn_flops(&sh, backward);
    }
    /* dense: W1, then W2 over each set's Dg columns: G·Dg = D in all */
    if (st->variant == V_DENSE) proj += 2 * BL * D * D + 2 * BL * D * (uint64_t)L;
    const uint64_t mix = (uint64_t)B * H * LL * Dh * (st->dot ? 4 : 2);
    return backward ? 2 * proj + 2 * mix : proj + mix;
}

const MixerSpec mixer_synthesizer = {
    .name = "synthesizer",
    .classes = "LR+LP",
    .arxiv = "2005.00743",
    .title = "Synthesizer: per-head synthesised attention weights (factorized random, dense or "
             "random), optionally plus dot-product logits",
    .honours_mask = 1,
    MIXER_OPTS(synth_opts),
    .ops = &(const MixerOps){MIXER_OPS(synth), .check = synth_check},
};
