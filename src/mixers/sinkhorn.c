/* sinkhorn: Sparse Sinkhorn attention (Tay et al., arXiv 2002.11296, §3). The sequence is cut into
 * n_B blocks of `block` tokens. A sort network reads each block's summed keys and gives the logits
 * R ∈ R^{n_B×n_B} (row i: which block block i would like as its partner); Gumbel noise is added in
 * training, R is divided by the temperature τ and made doubly stochastic by `iterations` rounds
 * of Sinkhorn normalisation in the log domain (rows, then columns: eq. 4–6), P = exp(R). The
 * sorted keys and values are K̃ = (P ⊗ I_b)·K, Ṽ = (P ⊗ I_b)·V: sorted block i is the P-weighted
 * mixture of the key blocks. Each query block attends, in one softmax, to its own block and to
 * sorted block i (§3.2 "Sparse Sinkhorn attention"). SortCut (§3.3): with `sortcut` = n_c > 0 every
 * query attends to the first n_c sorted blocks only. Everything is differentiable: the Sinkhorn
 * rounds are unrolled and their iterates kept for the backward.
 *
 * Sort network: `linear` is the Long Range Arena's (one dense layer on the block-summed keys,
 * shared by the heads, n_B outputs); `mlp` the paper's two-layer ReLU network. Padding keys and
 * values are zeroed before the block sums and the sorting, so padding content cannot reach real
 * positions.
 *
 * Padding in the sorted blocks. Slot r of sorted block n mixes slot r of every block l with weight
 * P_nl, padding (and the zero tail of the last block) included. The authors mix the key mask with
 * the permutation too (LRA's sinkhorn_attention.py, SinkhornAttention.apply: sorted_padding_mask =
 * einsum('bksj,bnhl->bnsj', padding_mask, permutation), turned into a bias by `> 0`) and so keep
 * a sorted key wherever one block with P_nl > 0 has a real token at r: with a dense P nearly
 * always, so the zero keys of padded blocks keep their softmax mass and the outputs of real tokens
 * shrink with the padding (lucidrains' sinkhorn-transformer takes the mask of the argmax block
 * instead, exact only for a hard permutation). Here a sorted slot counts for the real share of
 * its mixture, ρ_nr = Σ_l P_nl·m_lr / Σ_l P_nl (m_lr = 1 for a real token): its logit gets
 * log ρ_nr (a data bias of the attention kernel), so a slot with no real member takes exactly
 * zero weight, a fully real one is untouched (ρ = 1 exactly, bit for bit), and a hard permutation
 * gives the authors' 0/1 mask. ρ is differentiable in P and its gradient reaches the sort net.
 * What remains of the padded length is by nature (padding_dependence): n_B = ⌈L/b⌉ counts the
 * padded blocks, which enter the sort net and the doubly stochastic P, as in the authors' code.
 *
 * The mlp's ReLU runs on an active set (relu_forward_set) that MixerStep.frozen keeps. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xassert.h"
#include "kernels/activations.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "mixers/attn_mixer.h"

static const char *const SORT_NETS[] = {"linear", "mlp", NULL};
enum { NET_LINEAR, NET_MLP, N_NETS };
MOPT_CHOICES_ARE(SORT_NETS, N_NETS);

static const OptSpec sinkhorn_opts[] = {
    MOPT_INT("block", 50, 1, 65536, "tokens per block (LRA: 50)"),
    MOPT_INT("iterations", 5, 1, 100, "Sinkhorn normalisation rounds (row then column; LRA: 1)"),
    MOPT_FLOAT("temperature", 0.75, 1e-3, 100, "temperature tau dividing the sort logits"),
    MOPT_BOOL("noise", 1, "Gumbel noise on the sort logits in training"),
    MOPT_ENUM("sort_net", NET_LINEAR, SORT_NETS,
              "sort network: one dense layer (LRA) or two with a ReLU (the paper)"),
    MOPT_INT("sortcut", 0, 0, 65536,
             "SortCut: attend to the first n_c sorted blocks only; 0 = off"),
    MOPT_BOOL("bias", 0, "biases in the projections"),
};
#define NOPTS MOPT_COUNT(sinkhorn_opts)

typedef struct SinkhornState {
    AttnMixer am; /* first: projections; qkv, att, lse */
    int b, iters, noise, net, cut, NBmax;
    float tau;
    int p_w1, p_b1, p_w2, p_b2; /* sort net: (Dh, NBmax) or (Dh, Dh) + (Dh, NBmax) */
    int nB, nK;                 /* blocks and attended keys of the planned length */
    AttnPattern pattern;
    /* saved, per (b, h) */
    float *kb, *vb;        /* (B, H, nB, b·Dh) blocked keys and values, padding zeroed */
    float *bsum;           /* (B, H, nB, Dh) */
    float *hid, *act;      /* (B, H, nB, Dh) mlp pre-activation and activation */
    unsigned char *active; /* (B, H, nB, Dh) the mlp's ReLU active set (kept when frozen) */
    float *logit;          /* (B, H, 2·iters + 1, nB, nB): R0 and every half-round's result */
    float *kk, *vv;        /* (B, nK, D) the keys and values attended */
    unsigned char *kkmask; /* (B, nK) */
    float *mix, *rsum;     /* (B, H, rows, b) Σ_l P_nl·m_lr and (B, H, rows) Σ_l P_nl */
    float *kbias;          /* (B, H, nK): 0 for own keys, log ρ for sorted ones (−inf: ρ = 0) */
    float *dkbias;         /* (B, H, nK) its gradient, during backward (scratch) */
    AttnBias bias;
} SinkhornState;

/* Query tile i (the block) visits keys [2bi, 2bi + 2b): its own block then its sorted partner. */
static int pair_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h, (void)bq;
    const SinkhornState *st = s->pattern->ctx;
    lo[0] = 2 * i0;
    hi[0] = XB_MIN(s->Lk, 2 * (i0 / st->b + 1) * st->b);
    return 1;
}

/* The per-key logit bias kbias of (b, h): every query row of the tile gets the same row. */
static void key_bias_tile(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk,
                          float *out, int ld, float *work) {
    (void)i0, (void)work;
    const SinkhornState *st = s->bias->ctx;
    const float *kb = st->kbias + ((size_t)b * s->H + h) * st->nK + j0;
    for (int r = 0; r < bq; r++) memcpy(out + (size_t)r * ld, kb, (size_t)bk * sizeof(float));
}

/* dkbias of (b, h) += the column sums of the tile's score gradient (rows in order). */
static void key_bias_tile_backward(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk,
                                   const float *dbias, int ld, float *work) {
    (void)i0, (void)work;
    const SinkhornState *st = s->bias->ctx;
    float *dkb = st->dkbias + ((size_t)b * s->H + h) * st->nK + j0;
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++) dkb[c] += dbias[(size_t)r * ld + c];
}

static uint64_t key_bias_flops(const AttnShape *s, int bq, int bk, int backward) {
    (void)s, (void)bq, (void)bk, (void)backward;
    return 0; /* additions only */
}

static void sinkhorn_create(Mixer *m, ParamTable *pt) {
    SinkhornState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, 0, opt_bool(m->opts, sinkhorn_opts, NOPTS, "bias"));
    st->b = opt_int(m->opts, sinkhorn_opts, NOPTS, "block");
    st->iters = opt_int(m->opts, sinkhorn_opts, NOPTS, "iterations");
    st->tau = (float)opt_float(m->opts, sinkhorn_opts, NOPTS, "temperature");
    st->noise = opt_bool(m->opts, sinkhorn_opts, NOPTS, "noise");
    st->net = opt_enum(m->opts, sinkhorn_opts, NOPTS, "sort_net");
    st->cut = opt_int(m->opts, sinkhorn_opts, NOPTS, "sortcut");
    st->NBmax = (m->max_len + st->b - 1) / st->b;
    const int Dh = m->D / m->H;
    st->p_w2 = st->p_b2 = -1;
    if (st->net == NET_MLP) {
        st->p_w1 =
            params_add2f(pt, Dh, Dh, INIT_XAVIER_UNIFORM, 0, 1, "%s.sort.fc1.weight", m->prefix);
        st->p_b1 = params_add1f(pt, Dh, INIT_ZEROS, 0, 0, "%s.sort.fc1.bias", m->prefix);
        st->p_w2 = params_add2f(pt, Dh, st->NBmax, INIT_XAVIER_UNIFORM, 0, 1, "%s.sort.fc2.weight",
                                m->prefix);
        st->p_b2 = params_add1f(pt, st->NBmax, INIT_ZEROS, 0, 0, "%s.sort.fc2.bias", m->prefix);
    } else {
        st->p_w1 =
            params_add2f(pt, Dh, st->NBmax, INIT_XAVIER_UNIFORM, 0, 1, "%s.sort.weight", m->prefix);
        st->p_b1 = params_add1f(pt, st->NBmax, INIT_ZEROS, 0, 0, "%s.sort.bias", m->prefix);
    }
    st->pattern = (AttnPattern){.bq = st->b, .max_ranges = 1, .ranges = pair_ranges, .ctx = st};
    st->bias = (AttnBias){.tile = key_bias_tile,
                          .tile_backward = key_bias_tile_backward,
                          .tile_flops = key_bias_flops,
                          .work_floats = 0,
                          .ctx = st};
}

static int sinkhorn_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H;
    const int b = opt_int(opts, sinkhorn_opts, NOPTS, "block");
    const int cut = opt_int(opts, sinkhorn_opts, NOPTS, "sortcut");
    if (mixer_check_len(opts, sinkhorn_opts, NOPTS, "block", max_len,
                        "%d is longer than model.max_len = %d (valid: 1 to %d)", err))
        return -1;
    const int nb = (max_len + b - 1) / b;
    if (cut > nb) {
        return mixer_opt_error(
            err, "sortcut",
            "%d blocks, but model.max_len = %d holds %d blocks of %d (valid: 0 to %d)", cut,
            max_len, nb, b, nb);
    }
    return 0;
}

static AttnShape keys_shape(const Mixer *m, int B, int L) {
    const SinkhornState *st = m->state;
    const int D = m->D;
    AttnShape s = attn_shape(B, m->H, L, st->nK, D / m->H, 3 * D, D, D, D);
    if (!st->cut) s.pattern = &st->pattern;
    s.bias = &st->bias;
    return s;
}

static void sizes(SinkhornState *st, int L) {
    st->nB = (L + st->b - 1) / st->b;
    st->nK = st->cut ? XB_MIN(st->cut, st->nB) * st->b : 2 * st->nB * st->b;
}

/* Floats of a thread's buffer for real_shares and dp_log_rho: the (nB·bs) real flags and bs use
 * flags as bytes, then 2·bs terms and nB sums. */
static size_t mask_work_floats(int nB, int bs) {
    return ((size_t)nB * bs + bs + sizeof(float) - 1) / sizeof(float) + 2 * (size_t)bs + nB;
}

static void sinkhorn_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    SinkhornState *st = m->state;
    AttnMixer *am = &st->am;
    sizes(st, L);
    const int H = m->H, D = m->D, Dh = D / H, nB = st->nB, NL = 2 * st->iters + 1;
    const size_t BL = (size_t)B * L, BH = (size_t)B * H, blk = (size_t)nB * st->b * Dh;
    am->qkv = arena_floats(acts, BL * 3 * D);
    am->att = arena_floats(acts, BL * D);
    am->lse = arena_floats(acts, BL * H);
    st->kb = arena_floats(acts, BH * blk);
    st->vb = arena_floats(acts, BH * blk);
    st->bsum = arena_floats(acts, BH * nB * Dh);
    st->hid = arena_floats(acts, BH * nB * Dh);
    st->act = arena_floats(acts, BH * nB * Dh);
    st->active = arena_alloc(acts, BH * nB * Dh);
    st->logit = arena_floats(acts, BH * NL * nB * nB);
    st->kk = arena_floats(acts, (size_t)B * st->nK * D);
    st->vv = arena_floats(acts, (size_t)B * st->nK * D);
    st->kkmask = arena_alloc(acts, (size_t)B * st->nK);
    st->mix = arena_floats(acts, BH * nB * st->b);
    st->rsum = arena_floats(acts, BH * nB);
    st->kbias = arena_floats(acts, BH * st->nK);
    /* forward: per-thread sort logits (nB·NBmax) and the two sorted block sets; backward: d(att),
     * d(qkv), d(kk), d(vv), per (b, h) the logit gradients and the mlp's d(activation) and
     * d(hidden) (kept for the sort net's weights), the gradient of the sorted keys' log ρ, and per
     * thread the block gradients */
    const int nt = omp_get_max_threads();
    arena_floats(scratch, BL * D);
    arena_floats(scratch, BL * 3 * D);
    arena_floats(scratch, (size_t)B * st->nK * D);
    arena_floats(scratch, (size_t)B * st->nK * D);
    arena_floats(scratch, BH * nB * (st->NBmax + 2 * (size_t)Dh) + 16);
    arena_floats(scratch, BH * st->nK);
    arena_floats(scratch, (size_t)nt * (4 * blk + 2 * (size_t)nB * nB + (size_t)nB * Dh +
                                        mask_work_floats(nB, st->b)) +
                              64);
    AttnShape s = keys_shape(m, B, L);
    arena_alloc(scratch, attn_scratch_floats(&s, nt) * sizeof(float));
}

/* One Sinkhorn half-round in place: subtract each row's (cols = 0) or column's (cols = 1)
 * log-sum-exp from the n×n matrix x. */
static void normalise(float *x, int n, int cols) {
    for (int a = 0; a < n; a++) {
        const size_t step = cols ? (size_t)n : 1, base = cols ? (size_t)a : (size_t)a * n;
        float mx = -INFINITY;
        for (int c = 0; c < n; c++) mx = fmaxf(mx, x[base + c * step]);
        double sum = 0.0;
        for (int c = 0; c < n; c++) sum += exp((double)(x[base + c * step] - mx));
        const float lse = mx + (float)log(sum);
        for (int c = 0; c < n; c++) x[base + c * step] -= lse;
    }
}

/* Its backward given the result y: dx = g − exp(y)·Σ g along the same rows (or columns), in place
 * on g. */
static void normalise_backward(float *g, const float *y, int n, int cols) {
    for (int a = 0; a < n; a++) {
        const size_t step = cols ? (size_t)n : 1, base = cols ? (size_t)a : (size_t)a * n;
        double sum = 0.0;
        for (int c = 0; c < n; c++) sum += g[base + c * step];
        for (int c = 0; c < n; c++) g[base + c * step] -= expf(y[base + c * step]) * (float)sum;
    }
}

/* Whether position p of batch row b is a real token (not padding, not the tail past L). */
static int is_real(const MixerStep *s, int b, int p) {
    return p < s->L && (!s->mask || s->mask[(size_t)b * s->L + p]);
}

/* The real share of each sorted slot, for one (b, h): rsum[n] = Σ_l P_nl and mix[n][r] =
 * Σ_l P_nl·m_lr (m_lr: slot r of block l is real), each summed in l order. The slots run side by
 * side as vector lanes over the mask's rows: the bits of a loop per (n, r). */
static void real_shares(float *mix, float *rsum, const float *P, const MixerStep *s, int b,
                        int rows, int nB, int bs, float *work) {
    unsigned char *real = (unsigned char *)work; /* real[l·bs + r]; mask_work_floats(nB, bs) */
    for (int p = 0; p < nB * bs; p++) real[p] = (unsigned char)is_real(s, b, p);
    for (int n = 0; n < rows; n++) {
        const float *Pn = P + (size_t)n * nB;
        float S = 0.0f, *Mn = mix + (size_t)n * bs;
        for (int l = 0; l < nB; l++) S += Pn[l];
        rsum[n] = S;
        for (int r = 0; r < bs; r++) Mn[r] = 0.0f;
        for (int l = 0; l < nB; l++) {
            const float pl = Pn[l];
            const unsigned char *rl = real + (size_t)l * bs;
#pragma omp simd
            for (int r = 0; r < bs; r++) Mn[r] += rl[r] ? pl : 0.0f;
        }
    }
}

static void sinkhorn_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    SinkhornState *st = m->state;
    AttnMixer *am = &st->am;
    const int B = s->B, L = s->L, H = m->H, D = m->D, Dh = D / H, BL = B * L, bs = st->b;
    XB_ASSERT(st->nB == (L + bs - 1) / bs);
    const int nB = st->nB, NL = 2 * st->iters + 1, NBmax = st->NBmax;
    const int rows = st->cut ? XB_MIN(st->cut, nB) : nB;
    const size_t blk = (size_t)nB * bs * Dh, nK = (size_t)st->nK;
    linear_forward(am->qkv, x, mixer_param(s, am->p_wqkv), mixer_param(s, am->p_bqkv), BL, D,
                   3 * D);
    const size_t mark = arena_mark(s->scratch);
    const int nt = omp_get_max_threads();
    const size_t per = 2 * blk + (size_t)nB * nB + mask_work_floats(nB, bs);
    float *work = arena_floats(s->scratch, (size_t)nt * per + 64);
    const uint64_t key =
        rng_mix64(s->seed ^ rng_mix64(((uint64_t)m->layer << 48) ^ (uint64_t)s->step));
    const float *w1 = mixer_param(s, st->p_w1), *b1 = mixer_param(s, st->p_b1),
                *w2 = mixer_param(s, st->p_w2), *b2 = mixer_param(s, st->p_b2);
    /* blocked keys and values (padding and the tail zero), the block sums, the mlp's hidden layer
     */
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        float *kb = st->kb + (size_t)bh * blk, *vb = st->vb + (size_t)bh * blk;
        float *bsum = st->bsum + (size_t)bh * nB * Dh, *hid = st->hid + (size_t)bh * nB * Dh;
        for (int i = 0; i < nB * bs; i++) {
            const int real = is_real(s, b, i);
            const float *row = am->qkv + ((size_t)b * L + (real ? i : 0)) * 3 * D + (size_t)h * Dh;
            for (int d = 0; d < Dh; d++) {
                kb[(size_t)i * Dh + d] = real ? row[D + d] : 0.0f;
                vb[(size_t)i * Dh + d] = real ? row[2 * D + d] : 0.0f;
            }
        }
        for (int j = 0; j < nB; j++)
            for (int d = 0; d < Dh; d++) {
                float acc = 0.0f;
                for (int r = 0; r < bs; r++) acc += kb[((size_t)j * bs + r) * Dh + d];
                bsum[(size_t)j * Dh + d] = acc;
            }
        if (st->net == NET_MLP) {
            for (int j = 0; j < nB; j++)
                memcpy(hid + (size_t)j * Dh, b1, (size_t)Dh * sizeof(float));
            matmul_strided(hid, Dh, bsum, Dh, w1, Dh, nB, Dh, Dh, MM_NN, 1.0f, 1.0f);
        }
    }
    /* the mlp's ReLU on its active set (the previous call's when frozen) */
    if (st->net == NET_MLP)
        relu_forward_set(st->act, st->active, st->hid, (size_t)B * H * nB * Dh, s->frozen);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const float *kb = st->kb + (size_t)bh * blk, *vb = st->vb + (size_t)bh * blk;
        float *lg = st->logit + (size_t)bh * NL * nB * nB;
        float *mix = st->mix + (size_t)bh * nB * bs, *rsum = st->rsum + (size_t)bh * nB;
        float *kbias = st->kbias + (size_t)bh * nK;
        float *z = work + (size_t)omp_get_thread_num() * per; /* (nB, nB) sort logits */
        float *ks = z + (size_t)nB * nB, *vs = ks + blk;      /* sorted blocks */
        /* the sort net: z = bsum·W1 + b1, or relu(bsum·W1 + b1)·W2 + b2 (first nB outputs) */
        const float *in = st->bsum + (size_t)bh * nB * Dh, *wl = w1, *bl = b1;
        if (st->net == NET_MLP) in = st->act + (size_t)bh * nB * Dh, wl = w2, bl = b2;
        for (int j = 0; j < nB; j++) memcpy(z + (size_t)j * nB, bl, (size_t)nB * sizeof(float));
        matmul_strided(z, nB, in, Dh, wl, NBmax, nB, nB, Dh, MM_NN, 1.0f, 1.0f);
        /* R0 = (z + Gumbel)/τ, then the Sinkhorn rounds, every iterate kept */
        for (int i = 0; i < nB; i++)
            for (int j = 0; j < nB; j++) {
                float g = 0.0f;
                if (s->training && st->noise) {
                    const uint64_t ctr = ((s->row0 * H + (uint64_t)bh) * nB + i) * nB + j;
                    const float u = fminf(fmaxf(rng_hash_uniform(key, ctr), 1e-10f), 1.0f - 1e-7f);
                    g = -logf(-logf(u));
                }
                lg[(size_t)i * nB + j] = (z[(size_t)i * nB + j] + g) / st->tau;
            }
        for (int t = 1; t < NL; t++) {
            float *cur = lg + (size_t)t * nB * nB;
            memcpy(cur, cur - (size_t)nB * nB, (size_t)nB * nB * sizeof(float));
            normalise(cur, nB, (t - 1) % 2);
        }
        float *P = z; /* P = exp(R), reusing z */
        const float *last = lg + (size_t)(NL - 1) * nB * nB;
        for (size_t k = 0; k < (size_t)nB * nB; k++) P[k] = expf(last[k]);
        /* sorted blocks K̃ = P·Kb, Ṽ = P·Vb (only the first `cut` with SortCut) */
        matmul_strided(ks, bs * Dh, P, nB, kb, bs * Dh, rows, bs * Dh, nB, MM_NN, 1.0f, 0.0f);
        matmul_strided(vs, bs * Dh, P, nB, vb, bs * Dh, rows, bs * Dh, nB, MM_NN, 1.0f, 0.0f);
        /* the real share of each sorted slot: ρ_nr = Σ_l P_nl·m_lr / Σ_l P_nl, summed in the same
         * order so that a slot real in every block has ρ = 1 exactly */
        real_shares(mix, rsum, P, s, b, rows, nB, bs, vs + blk);
        /* the keys attended: [own block i; sorted block i] per block, or the sorted blocks */
        for (int i = 0; i < rows; i++)
            for (int r = 0; r < bs; r++) {
                const size_t src = ((size_t)i * bs + r) * Dh;
                const size_t own = st->cut ? 0 : 2 * (size_t)i * bs + r;
                const size_t srt = st->cut ? (size_t)i * bs + r : 2 * (size_t)i * bs + bs + r;
                const size_t ko = (size_t)b * nK, co = (size_t)h * Dh;
                memcpy(st->kk + (ko + srt) * D + co, ks + src, (size_t)Dh * sizeof(float));
                memcpy(st->vv + (ko + srt) * D + co, vs + src, (size_t)Dh * sizeof(float));
                const float M = mix[(size_t)i * bs + r];
                kbias[srt] = M > 0.0f && rsum[i] > 0.0f ? logf(M / rsum[i]) : -INFINITY;
                if (!st->cut) {
                    memcpy(st->kk + (ko + own) * D + co, kb + src, (size_t)Dh * sizeof(float));
                    memcpy(st->vv + (ko + own) * D + co, vb + src, (size_t)Dh * sizeof(float));
                    kbias[own] = 0.0f;
                }
                if (h == 0) { /* own keys: the token's mask; sorted keys: through kbias */
                    st->kkmask[ko + srt] = 1;
                    if (!st->cut) st->kkmask[ko + own] = is_real(s, b, i * bs + r);
                }
            }
    }
    arena_reset_to(s->scratch, mark);
    AttnShape sh = keys_shape(m, B, L);
    attn_forward(am->att, am->lse, am->qkv, st->kk, st->vv, st->kkmask, &sh, s->scratch);
    linear_forward(y, am->att, mixer_param(s, am->p_wo), mixer_param(s, am->p_bo), BL, D, D);
}

/* dP += through the sorted slots' log ρ, for one (b, h): row n, block l gains
 * Σ_r [slot r of block l real ? d/M − d/S_n : −d/S_n] over the slots r with M = mix[n][r] > 0
 * and S_n > 0 (d the slot's bias gradient), summed in r order. The terms depend on (n, r) only,
 * so they are computed once per row, and the blocks l run side by side as vector lanes, each
 * summing its r in order: the bits of a loop per (n, l). */
static void dp_log_rho(float *g, const float *mix, const float *rsum, const float *dkbias,
                       const MixerStep *s, int b, int rows, int nB, int bs, int cut, float *work) {
    unsigned char *realT = (unsigned char *)work; /* (r, l) real, then use (r): mask_work_floats */
    float *term = work + mask_work_floats(nB, bs) - 2 * (size_t)bs - nB;
    unsigned char *use = realT + (size_t)bs * nB;
    float *acc = term + 2 * (size_t)bs;
    for (int r = 0; r < bs; r++)
        for (int l = 0; l < nB; l++) realT[(size_t)r * nB + l] = (unsigned char)is_real(s, b, l * bs + r);
    for (int n = 0; n < rows; n++) {
        const float Sn = rsum[n];
        for (int r = 0; r < bs; r++) {
            const float M = mix[(size_t)n * bs + r];
            const float d = dkbias[cut ? (size_t)n * bs + r : 2 * (size_t)n * bs + bs + r];
            use[r] = M > 0.0f && Sn > 0.0f;
            term[r] = use[r] ? d / M - d / Sn : 0.0f;
            term[bs + r] = use[r] ? -d / Sn : 0.0f;
        }
        for (int l = 0; l < nB; l++) acc[l] = 0.0f;
        for (int r = 0; r < bs; r++) {
            if (!use[r]) continue;
            const float ta = term[r], tb = term[bs + r];
            const unsigned char *rt = realT + (size_t)r * nB;
#pragma omp simd
            for (int l = 0; l < nB; l++) acc[l] += rt[l] ? ta : tb;
        }
        for (int l = 0; l < nB; l++) g[(size_t)n * nB + l] += acc[l];
    }
}

static void sinkhorn_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                              const float *x) {
    SinkhornState *st = m->state;
    AttnMixer *am = &st->am;
    const int B = s->B, L = s->L, H = m->H, D = m->D, Dh = D / H, BL = B * L, bs = st->b;
    const int nB = st->nB, NL = 2 * st->iters + 1, NBmax = st->NBmax;
    const int rows = st->cut ? XB_MIN(st->cut, nB) : nB;
    const size_t blk = (size_t)nB * bs * Dh, nK = (size_t)st->nK;
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    float *dkk = arena_floats(s->scratch, (size_t)B * nK * D);
    float *dvv = arena_floats(s->scratch, (size_t)B * nK * D);
    /* per (b, h): dZ (nB, nB), the mlp's d(activation) and d(hidden) (nB, Dh) each */
    const size_t dzn = (size_t)nB * (NBmax + 2 * (size_t)Dh);
    float *dz = arena_floats(s->scratch, (size_t)B * H * dzn + 16);
    st->dkbias = arena_floats(s->scratch, (size_t)B * H * nK);
    const int nt = omp_get_max_threads();
    const size_t per =
        4 * blk + 2 * (size_t)nB * nB + (size_t)nB * Dh + mask_work_floats(nB, bs);
    float *work = arena_floats(s->scratch, (size_t)nt * per + 64);
    memset(datt, 0, (size_t)BL * D * sizeof(float));
    memset(dqkv, 0, (size_t)BL * 3 * D * sizeof(float));
    memset(dkk, 0, (size_t)B * nK * D * sizeof(float));
    memset(dvv, 0, (size_t)B * nK * D * sizeof(float));
    memset(st->dkbias, 0, (size_t)B * H * nK * sizeof(float));
    linear_backward(datt, mixer_grad(s, am->p_wo), mixer_grad(s, am->p_bo), dy, am->att,
                    mixer_param(s, am->p_wo), BL, D, D);
    AttnShape sh = keys_shape(m, B, L);
    attn_backward(dqkv, dkk, dvv, datt, am->qkv, st->kk, st->vv, am->att, am->lse, st->kkmask, &sh,
                  s->scratch);
    const float *w1 = mixer_param(s, st->p_w1), *w2 = mixer_param(s, st->p_w2);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const float *kb = st->kb + (size_t)bh * blk, *vb = st->vb + (size_t)bh * blk;
        const float *lg = st->logit + (size_t)bh * NL * nB * nB;
        const float *mix = st->mix + (size_t)bh * nB * bs, *rsum = st->rsum + (size_t)bh * nB;
        const float *dkbias = st->dkbias + (size_t)bh * nK;
        float *w = work + (size_t)omp_get_thread_num() * per;
        float *dks = w, *dvs = dks + blk, *dkb = dvs + blk, *dvb = dkb + blk;
        float *P = dvb + blk, *g = P + (size_t)nB * nB, *dbsum = g + (size_t)nB * nB;
        float *dzz = dz + (size_t)bh * dzn, *dact = dzz + (size_t)nB * nB;
        memset(dkb, 0, 2 * blk * sizeof(float));
        /* the attended keys back into blocks: own blocks straight to dKb, sorted ones to dK̃ */
        for (int i = 0; i < rows; i++)
            for (int r = 0; r < bs; r++) {
                const size_t dst = ((size_t)i * bs + r) * Dh;
                const size_t srt =
                    (size_t)b * nK + (st->cut ? (size_t)i * bs : 2 * (size_t)i * bs + bs) + r;
                memcpy(dks + dst, dkk + srt * D + (size_t)h * Dh, (size_t)Dh * sizeof(float));
                memcpy(dvs + dst, dvv + srt * D + (size_t)h * Dh, (size_t)Dh * sizeof(float));
                if (!st->cut) {
                    const size_t own = (size_t)b * nK + 2 * (size_t)i * bs + r;
                    memcpy(dkb + dst, dkk + own * D + (size_t)h * Dh, (size_t)Dh * sizeof(float));
                    memcpy(dvb + dst, dvv + own * D + (size_t)h * Dh, (size_t)Dh * sizeof(float));
                }
            }
        const float *last = lg + (size_t)(NL - 1) * nB * nB;
        for (size_t k = 0; k < (size_t)nB * nB; k++) P[k] = expf(last[k]);
        /* dP = dK̃·Kbᵀ + dṼ·Vbᵀ (rows beyond the cut are 0); dKb += Pᵀ·dK̃, dVb += Pᵀ·dṼ */
        memset(g, 0, (size_t)nB * nB * sizeof(float));
        matmul_strided(g, nB, dks, bs * Dh, kb, bs * Dh, rows, nB, bs * Dh, MM_NT, 1.0f, 0.0f);
        matmul_strided(g, nB, dvs, bs * Dh, vb, bs * Dh, rows, nB, bs * Dh, MM_NT, 1.0f, 1.0f);
        matmul_strided(dkb, bs * Dh, P, nB, dks, bs * Dh, nB, bs * Dh, rows, MM_TN, 1.0f, 1.0f);
        matmul_strided(dvb, bs * Dh, P, nB, dvs, bs * Dh, nB, bs * Dh, rows, MM_TN, 1.0f, 1.0f);
        /* dP += through the sorted slots' log ρ: ∂ log ρ_nr/∂P_nl = m_lr/M_nr − 1/S_n (0 for a
         * slot real in every block, where M = S; nothing for a slot with ρ = 0) */
        dp_log_rho(g, mix, rsum, dkbias, s, b, rows, nB, bs, st->cut, dbsum + (size_t)nB * Dh);
        /* through exp and the Sinkhorn rounds back to R0, then /τ: dZ */
        for (size_t k = 0; k < (size_t)nB * nB; k++) g[k] *= P[k];
        for (int t = NL - 1; t >= 1; t--)
            normalise_backward(g, lg + (size_t)t * nB * nB, nB, (t - 1) % 2);
        for (size_t k = 0; k < (size_t)nB * nB; k++) dzz[k] = g[k] / st->tau;
        /* the sort net's input gradient: dbsum = dZ·W1ᵀ (linear); the mlp's d(activation) =
         * dZ·W2ᵀ, through the ReLU below */
        if (st->net == NET_MLP) {
            matmul_strided(dact, Dh, dzz, nB, w2, NBmax, nB, Dh, nB, MM_NT, 1.0f, 0.0f);
        } else {
            matmul_strided(dbsum, Dh, dzz, nB, w1, NBmax, nB, Dh, nB, MM_NT, 1.0f, 0.0f);
        }
        /* back to the positions: the block gradients, and (linear) every row of block j receives
         * dbsum_j; padding gets none */
        for (int i = 0; i < L; i++) {
            if (!is_real(s, b, i)) continue;
            float *dk = dqkv + ((size_t)b * L + i) * 3 * D + D + (size_t)h * Dh;
            float *dv = dk + D;
            const float *gk = dkb + (size_t)i * Dh, *gv = dvb + (size_t)i * Dh;
            const float *gs = dbsum + (size_t)(i / bs) * Dh;
            if (st->net == NET_MLP)
                for (int d = 0; d < Dh; d++) dk[d] += gk[d], dv[d] += gv[d];
            else
                for (int d = 0; d < Dh; d++) dk[d] += gk[d] + gs[d], dv[d] += gv[d];
        }
    }
    if (st->net == NET_MLP) {
        /* d(hidden) = d(activation) on the ReLU's active set, then dbsum = d(hidden)·W1ᵀ to the
         * positions of each block */
        for (int bh = 0; bh < B * H; bh++) {
            float *dact = dz + (size_t)bh * dzn + (size_t)nB * nB, *dhid = dact + (size_t)nB * Dh;
            memset(dhid, 0, (size_t)nB * Dh * sizeof(float));
            relu_backward_set(dhid, st->active + (size_t)bh * nB * Dh, dact, (size_t)nB * Dh);
        }
#pragma omp parallel for schedule(static)
        for (int bh = 0; bh < B * H; bh++) {
            const int b = bh / H, h = bh % H;
            const float *dhid = dz + (size_t)bh * dzn + (size_t)nB * nB + (size_t)nB * Dh;
            float *dbsum = work + (size_t)omp_get_thread_num() * per;
            matmul_strided(dbsum, Dh, dhid, Dh, w1, Dh, nB, Dh, Dh, MM_NT, 1.0f, 0.0f);
            for (int i = 0; i < L; i++) {
                if (!is_real(s, b, i)) continue;
                float *dk = dqkv + ((size_t)b * L + i) * 3 * D + D + (size_t)h * Dh;
                const float *gs = dbsum + (size_t)(i / bs) * Dh;
                for (int d = 0; d < Dh; d++) dk[d] += gs[d];
            }
        }
    }
    /* the sort net's weights, (b, h) in order */
    for (int bh = 0; bh < B * H; bh++) {
        const float *dzz = dz + (size_t)bh * dzn;
        const float *dhid = dzz + (size_t)nB * nB + (size_t)nB * Dh;
        const float *bsum = st->bsum + (size_t)bh * nB * Dh, *act = st->act + (size_t)bh * nB * Dh;
        float *gw1 = mixer_grad(s, st->p_w1), *gb1 = mixer_grad(s, st->p_b1);
        if (st->net == NET_MLP) {
            float *gw2 = mixer_grad(s, st->p_w2), *gb2 = mixer_grad(s, st->p_b2);
            matmul_strided(gw2, NBmax, act, Dh, dzz, nB, Dh, nB, nB, MM_TN, 1.0f, 1.0f);
            matmul_strided(gw1, Dh, bsum, Dh, dhid, Dh, Dh, Dh, nB, MM_TN, 1.0f, 1.0f);
            for (int j = 0; j < nB; j++)
                for (int c = 0; c < nB; c++) gb2[c] += dzz[(size_t)j * nB + c];
            for (int j = 0; j < nB; j++)
                for (int c = 0; c < Dh; c++) gb1[c] += dhid[(size_t)j * Dh + c];
        } else {
            matmul_strided(gw1, NBmax, bsum, Dh, dzz, nB, Dh, nB, nB, MM_TN, 1.0f, 1.0f);
            for (int j = 0; j < nB; j++)
                for (int c = 0; c < nB; c++) gb1[c] += dzz[(size_t)j * nB + c];
        }
    }
    linear_backward(dx, mixer_grad(s, am->p_wqkv), mixer_grad(s, am->p_bqkv), dqkv, x,
                    mixer_param(s, am->p_wqkv), BL, D, 3 * D);
    st->dkbias = NULL;
    arena_reset_to(s->scratch, mark);
}

static uint64_t sinkhorn_flops(const Mixer *m, int B, int L, int backward) {
    const SinkhornState *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D, Dh = D / (uint64_t)m->H;
    const uint64_t nB = (uint64_t)(L + st->b - 1) / (uint64_t)st->b, bs = (uint64_t)st->b;
    const uint64_t rows = st->cut ? XB_MIN((uint64_t)st->cut, nB) : nB, BH = (uint64_t)B * m->H;
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BL * D * D;
    const uint64_t net = 2 * nB * nB * Dh + (st->net == NET_MLP ? 2 * nB * Dh * Dh : 0);
    AttnShape sh = keys_shape(m, B, L);
    if (!backward) return proj + BH * (net + 4 * rows * nB * bs * Dh) + attn_flops(&sh, 0);
    /* the sort net's backward is twice its forward (input and weight gradients) */
    return 2 * proj + BH * (2 * net + 8 * rows * nB * bs * Dh) + attn_flops(&sh, 1);
}

const MixerSpec mixer_sinkhorn = {
    .name = "sinkhorn",
    .classes = "LP",
    .arxiv = "2002.11296",
    .title =
        "Sparse Sinkhorn attention: blocks sorted by a learned soft permutation (SortCut option)",
    .honours_mask = 1,
    .padding_dependence =
        "n_B = ceil(L/block) counts the blocks of the padded length L: padded blocks enter the "
        "sort net and the doubly stochastic Sinkhorn matrix P (as in the authors' code), so they "
        "take a share of each sorted block's mixture; that share gets no attention weight (a "
        "sorted key counts for the real share of its mixture) and padding content is invisible, "
        "so a row whose cut has as many blocks gives the same outputs",
    MIXER_OPTS(sinkhorn_opts),
    .ops = &(const MixerOps){MIXER_OPS(sinkhorn), .check = sinkhorn_check},
};
