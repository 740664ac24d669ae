/* synthesizer: Synthesizer (Tay et al., arXiv 2005.00743, §3): attention weights synthesised
 * without token-token dot products, Y = softmax(B)·G(X) with G the value projection, then the
 * output projection. Variants (§3.1–3.2):
 *   dense:      B_i = W2·ReLU(W1·x_i + b1) + b2 ∈ R^n (n = model.max_len; the first L used);
 *   random:     B = R ∈ R^{n×n}, learned, or fixed at its initialisation (`trainable: false`);
 *   factorized: B = R1·R2ᵀ with R1, R2 ∈ R^{n×k} (the factorised random Synthesizer; LRA's text
 *               runs used it with k = 32, which is the default).
 * The synthetic logits are shared by the heads (the paper's parameter counts: d² + d·n for dense,
 * n² for random), each head mixing its own slice of the values. `dot` adds the ordinary scaled
 * Q·Kᵀ logits of each head (the paper's mixtures "R+V", "D+V"). Padding keys are masked.
 *
 * dense and random keep the (B, H, L, L) probabilities: they are O(L²) by nature. factorized
 * streams through the fused kernel: its logit R1_i·R2_j is a score with query/key width k (with
 * `dot`, the features [R1_i, q_i/√Dh] and [R2_j, k_j], width k + Dh), so it runs in O(L) memory. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"

static const char *const VARIANTS[] = {"factorized", "dense", "random", NULL};
enum { V_FACTORIZED, V_DENSE, V_RANDOM };

static const OptSpec synth_opts[] = {
    {.name = "variant",
     .type = OPT_ENUM,
     .def = V_FACTORIZED,
     .choices = VARIANTS,
     .help = "factorized random (LRA's text runs), dense, or random"},
    {.name = "k",
     .type = OPT_INT,
     .def = 32,
     .min = 1,
     .max = 65536,
     .help = "rank of the factorized logits R1·R2ᵀ (LRA: 32)"},
    {.name = "trainable",
     .type = OPT_BOOL,
     .def = 1,
     .help = "random: learn R (true) or keep it fixed at its initialisation"},
    {.name = "dot",
     .type = OPT_BOOL,
     .def = 0,
     .help = "add each head's dot-product logits Q·Kᵀ/sqrt(Dh) (the paper's mixtures; LRA: off)"},
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the projections"},
};
#define NOPTS ((int)XB_ARRAY_LEN(synth_opts))

typedef struct SynthState {
    int variant, k, dot, bias, n, kq;         /* kq: factorized query/key feature width per head */
    int p_wv, p_bv, p_wqk, p_bqk, p_wo, p_bo; /* value, (q, k) with dot, output */
    int p_w1, p_b1, p_w2, p_b2;               /* dense: (D, D), (D), (n, D), (n) */
    int p_r, p_r1, p_r2;                      /* random (n, n); factorized (n, k) each */
    /* saved */
    float *v, *qk;      /* (B, L, D) values; (B, L, 2D) queries and keys (dot) */
    float *att, *lse;   /* (B, L, D) before the output projection; factorized: (B, H, L) */
    float *h1pre, *h1;  /* dense: (B, L, D) */
    unsigned char *act; /* dense: (B, L, D) the ReLU's active set */
    float *p;           /* dense/random: (B, H, L, L) probabilities */
    float *qf, *kf;     /* factorized: (B, L, H·kq) features */
} SynthState;

static void synth_create(Mixer *m, ParamTable *pt) {
    SynthState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    st->variant = opt_enum(m->opts, synth_opts, NOPTS, "variant");
    st->k = opt_int(m->opts, synth_opts, NOPTS, "k");
    st->dot = opt_bool(m->opts, synth_opts, NOPTS, "dot");
    st->bias = opt_bool(m->opts, synth_opts, NOPTS, "bias");
    st->n = m->max_len;
    const int D = m->D, n = st->n, Dh = D / m->H;
    st->kq = st->k + (st->dot ? Dh : 0);
    char name[XB_PARAM_NAME];
    st->p_wv = mixer_add_linear(pt, m->prefix, "value", D, D, st->bias, &st->p_bv);
    st->p_wqk = st->p_bqk = -1;
    if (st->dot) st->p_wqk = mixer_add_linear(pt, m->prefix, "qk", 2 * D, D, st->bias, &st->p_bqk);
    st->p_wo = mixer_add_linear(pt, m->prefix, "out", D, D, st->bias, &st->p_bo);
    st->p_w1 = st->p_b1 = st->p_w2 = st->p_b2 = st->p_r = st->p_r1 = st->p_r2 = -1;
    const int shape[2] = {n, n};
    switch (st->variant) {
    case V_DENSE:
        snprintf(name, sizeof name, "%s.dense.fc1.weight", m->prefix);
        st->p_w1 = params_add2(pt, name, D, D, INIT_XAVIER_UNIFORM, 0, 1);
        snprintf(name, sizeof name, "%s.dense.fc1.bias", m->prefix);
        st->p_b1 = params_add1(pt, name, D, INIT_ZEROS, 0, 0);
        snprintf(name, sizeof name, "%s.dense.fc2.weight", m->prefix);
        st->p_w2 = params_add2(pt, name, n, D, INIT_XAVIER_UNIFORM, 0, 1);
        snprintf(name, sizeof name, "%s.dense.fc2.bias", m->prefix);
        st->p_b2 = params_add1(pt, name, n, INIT_ZEROS, 0, 0);
        break;
    case V_RANDOM: /* N(0, 1): logits of the scale of scaled dot products */
        snprintf(name, sizeof name, "%s.random", m->prefix);
        if (opt_bool(m->opts, synth_opts, NOPTS, "trainable"))
            st->p_r = params_add(pt, name, 2, shape, INIT_NORMAL, 1.0f, 1);
        else
            st->p_r = params_add_buffer(pt, name, 2, shape, INIT_NORMAL, 1.0f);
        break;
    default:
        snprintf(name, sizeof name, "%s.r1", m->prefix);
        st->p_r1 =
            params_add2(pt, name, n, st->k, INIT_NORMAL, 1.0f / sqrtf(sqrtf((float)st->k)), 1);
        snprintf(name, sizeof name, "%s.r2", m->prefix);
        st->p_r2 =
            params_add2(pt, name, n, st->k, INIT_NORMAL, 1.0f / sqrtf(sqrtf((float)st->k)), 1);
    }
}

static int synth_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H;
    const int k = opt_int(opts, synth_opts, NOPTS, "k");
    if (opt_enum(opts, synth_opts, NOPTS, "variant") == V_FACTORIZED && k > max_len) {
        snprintf(err->key, sizeof err->key, "model.mixer.k");
        snprintf(err->msg, sizeof err->msg,
                 "%d is larger than model.max_len = %d (valid: 1 to %d: the rank of an n x n "
                 "matrix)",
                 k, max_len, max_len);
        return -1;
    }
    return 0;
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
    const size_t D = (size_t)m->D, BL = (size_t)B * L, H = (size_t)m->H;
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
        /* backward: d(logits) per batch row (L, L) and, per thread, a (L, L) tile */
        extra = BL * L + (size_t)omp_get_max_threads() * L * L + BL * 2 * D + 2 * BL * D + 64;
    }
    arena_floats(scratch, 2 * BL * D + extra + 64); /* d(att), d(v) */
}

/* The shared synthetic logits of batch row b into z (L, L). */
static void synthetic_logits(const SynthState *st, const MixerStep *s, int b, float *z) {
    const int L = s->L;
    if (st->variant == V_RANDOM) {
        const float *r = mixer_param(s, st->p_r);
        for (int i = 0; i < L; i++)
            memcpy(z + (size_t)i * L, r + (size_t)i * st->n, (size_t)L * sizeof(float));
    } else { /* dense: already computed into z by the caller's linear layer */
        (void)b;
    }
}

static void synth_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    SynthState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, H = m->H, Dh = D / H, BL = B * L, kq = st->kq;
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
                float *qf = st->qf + ((size_t)bi * H + h) * kq,
                      *kf = st->kf + ((size_t)bi * H + h) * kq;
                memcpy(qf, r1 + (size_t)i * st->k, (size_t)st->k * sizeof(float));
                memcpy(kf, r2 + (size_t)i * st->k, (size_t)st->k * sizeof(float));
                for (int d = 0; st->dot && d < Dh; d++) {
                    qf[st->k + d] = st->qk[(size_t)bi * 2 * D + h * Dh + d] * sc;
                    kf[st->k + d] = st->qk[(size_t)bi * 2 * D + D + h * Dh + d];
                }
            }
        }
        AttnShape sh = feat_shape(m, B, L);
        attn_forward(st->att, st->lse, st->qf, st->kf, st->v, s->mask, &sh, s->scratch);
    } else {
        if (st->variant == V_DENSE) { /* logits (B, L, L) = W2[:L]·ReLU(W1 x + b1) + b2[:L] */
            linear_forward(st->h1pre, x, mixer_param(s, st->p_w1), mixer_param(s, st->p_b1), BL, D,
                           D);
            relu_forward_set(st->h1, st->act, st->h1pre, (size_t)BL * D, s->frozen);
        }
        const size_t LL = (size_t)L * L;
        const float sc = 1.0f / sqrtf((float)Dh);
        uint64_t done = 0;
        for (int b = 0; b < B; b++) {
            float *z = st->p + (size_t)b * H * LL; /* head 0's slot holds the shared logits */
            if (st->variant == V_DENSE)
                linear_forward(z, st->h1 + (size_t)b * L * D, mixer_param(s, st->p_w2),
                               mixer_param(s, st->p_b2), L, D, L);
            else
                synthetic_logits(st, s, b, z);
            for (int h = H - 1; h >= 0; h--) { /* copy to every head (head 0 last, in place) */
                float *ph = z + (size_t)h * LL;
                if (h) memcpy(ph, z, LL * sizeof(float));
            }
        }
#pragma omp parallel for schedule(static) reduction(+ : done)
        for (int bh = 0; bh < B * H; bh++) {
            const int b = bh / H, h = bh % H;
            float *ph = st->p + (size_t)bh * LL;
            if (st->dot) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, Dh, sc,
                            st->qk + (size_t)b * L * 2 * D + h * Dh, 2 * D,
                            st->qk + (size_t)b * L * 2 * D + D + h * Dh, 2 * D, 1.0f, ph, L);
                done += 2ull * L * L * Dh;
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, Dh, L, 1.0f, ph, L,
                        st->v + (size_t)b * L * D + h * Dh, D, 0.0f,
                        st->att + (size_t)b * L * D + h * Dh, D);
            done += 2ull * L * L * Dh;
        }
        flops_add(done);
    }
    linear_forward(y, st->att, mixer_param(s, st->p_wo), mixer_param(s, st->p_bo), BL, D, D);
}

static void synth_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                           const float *x) {
    SynthState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, H = m->H, Dh = D / H, BL = B * L, kq = st->kq;
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dv = arena_floats(s->scratch, (size_t)BL * D);
    float *dqk = st->dot ? arena_floats(s->scratch, (size_t)BL * 2 * D) : NULL;
    memset(datt, 0, (size_t)BL * D * sizeof(float));
    memset(dv, 0, (size_t)BL * D * sizeof(float));
    if (dqk) memset(dqk, 0, (size_t)BL * 2 * D * sizeof(float));
    linear_backward(datt, mixer_grad(s, st->p_wo), mixer_grad(s, st->p_bo), dy, st->att,
                    mixer_param(s, st->p_wo), BL, D, D);
    const float sc = 1.0f / sqrtf((float)Dh);
    if (st->variant == V_FACTORIZED) {
        const size_t nf = (size_t)BL * H * kq;
        float *dqf = arena_floats(s->scratch, nf), *dkf = arena_floats(s->scratch, nf);
        memset(dqf, 0, nf * sizeof(float));
        memset(dkf, 0, nf * sizeof(float));
        AttnShape sh = feat_shape(m, B, L);
        attn_backward(dqf, dkf, dv, datt, st->qf, st->kf, st->v, st->att, st->lse, s->mask, &sh,
                      s->scratch);
        /* features back to R1, R2 (rows of every batch row and head, in order) and to q, k */
        float *g1 = mixer_grad(s, st->p_r1), *g2 = mixer_grad(s, st->p_r2);
        for (int bi = 0; bi < BL; bi++) {
            const int i = bi % L;
            for (int h = 0; h < H; h++) {
                const float *a = dqf + ((size_t)bi * H + h) * kq,
                            *c = dkf + ((size_t)bi * H + h) * kq;
                for (int d = 0; d < st->k; d++)
                    g1[(size_t)i * st->k + d] += a[d], g2[(size_t)i * st->k + d] += c[d];
                for (int d = 0; st->dot && d < Dh; d++) {
                    dqk[(size_t)bi * 2 * D + h * Dh + d] += a[st->k + d] * sc;
                    dqk[(size_t)bi * 2 * D + D + h * Dh + d] += c[st->k + d];
                }
            }
        }
    } else {
        const size_t LL = (size_t)L * L;
        float *dz = arena_floats(s->scratch, (size_t)B * LL); /* d(shared logits) per batch row */
        float *work = arena_floats(s->scratch, (size_t)omp_get_max_threads() * LL);
        memset(dz, 0, (size_t)B * LL * sizeof(float));
        uint64_t done = 0;
        /* per batch row, heads in order (they share dz[b]); the heads of a row run in turn */
#pragma omp parallel for schedule(static) reduction(+ : done)
        for (int b = 0; b < B; b++) {
            float *ds = work + (size_t)omp_get_thread_num() * LL;
            for (int h = 0; h < H; h++) {
                const float *ph = st->p + ((size_t)b * H + h) * LL;
                const float *go = datt + (size_t)b * L * D + h * Dh;
                /* dV = Pᵀ dO; dP = dO Vᵀ; dS = P ∘ (dP − rowsum(dP ∘ P)) */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, Dh, L, 1.0f, ph, L, go, D,
                            1.0f, dv + (size_t)b * L * D + h * Dh, D);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, Dh, 1.0f, go, D,
                            st->v + (size_t)b * L * D + h * Dh, D, 0.0f, ds, L);
                done += 4ull * L * L * Dh;
                for (int i = 0; i < L; i++) {
                    float *r = ds + (size_t)i * L, acc = 0.0f;
                    const float *pr = ph + (size_t)i * L;
                    for (int j = 0; j < L; j++) acc += r[j] * pr[j];
                    for (int j = 0; j < L; j++) r[j] = pr[j] * (r[j] - acc);
                }
                for (size_t k = 0; k < LL; k++) dz[(size_t)b * LL + k] += ds[k];
                if (st->dot) { /* dQ = sc·dS K, dK = sc·dSᵀ Q */
                    const float *q = st->qk + (size_t)b * L * 2 * D + h * Dh;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, Dh, L, sc, ds, L,
                                q + D, 2 * D, 1.0f, dqk + (size_t)b * L * 2 * D + h * Dh, 2 * D);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, Dh, L, sc, ds, L, q,
                                2 * D, 1.0f, dqk + (size_t)b * L * 2 * D + D + h * Dh, 2 * D);
                    done += 4ull * L * L * Dh;
                }
            }
        }
        flops_add(done);
        if (st->variant == V_RANDOM) {
            float *gr = mixer_grad(s, st->p_r);
            for (int b = 0; gr && b < B; b++)
                for (int i = 0; i < L; i++)
                    for (int j = 0; j < L; j++)
                        gr[(size_t)i * st->n + j] += dz[(size_t)b * LL + (size_t)i * L + j];
        } else { /* dense: through W2[:L], the ReLU and W1 */
            float *dh1 = arena_floats(s->scratch, (size_t)BL * D);
            float *dpre = arena_floats(s->scratch, (size_t)BL * D);
            memset(dh1, 0, (size_t)BL * D * sizeof(float));
            memset(dpre, 0, (size_t)BL * D * sizeof(float));
            for (int b = 0; b < B; b++)
                linear_backward(dh1 + (size_t)b * L * D, mixer_grad(s, st->p_w2),
                                mixer_grad(s, st->p_b2), dz + (size_t)b * LL,
                                st->h1 + (size_t)b * L * D, mixer_param(s, st->p_w2), L, D, L);
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
    if (st->variant == V_DENSE) proj += 2 * BL * D * D + 2 * BL * D * (uint64_t)L; /* W1, W2 */
    const uint64_t mix = (uint64_t)B * H * LL * Dh * (st->dot ? 4 : 2);
    return backward ? 2 * proj + 2 * mix : proj + mix;
}

static void synth_destroy(Mixer *m) { free(m->state); }

static const MixerOps synth_ops = {
    .check = synth_check,
    .create = synth_create,
    .plan = synth_plan,
    .forward = synth_forward,
    .backward = synth_backward,
    .flops = synth_flops,
    .destroy = synth_destroy,
};

const MixerSpec mixer_synthesizer = {
    .name = "synthesizer",
    .classes = "LR+LP",
    .arxiv = "2005.00743",
    .title = "Synthesizer: synthesised attention weights (factorized random, dense or random)",
    .honours_mask = 1,
    .opts = synth_opts,
    .n_opts = NOPTS,
    .ops = &synth_ops,
};
