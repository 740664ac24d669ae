/* nystrom: Nyströmformer (Xiong et al., arXiv 2102.03902, §3): softmax attention approximated
 * through m landmarks. Per head, q and k are scaled by Dh^(−1/4) each and their padded rows zeroed
 * (as the authors' code); the landmarks Q̃, K̃ are the means of m segments of the sequence
 * (segment s = rows [⌊sL/m⌋, ⌊(s+1)L/m⌋), so L need not be a multiple of m); then
 *   F = softmax(Q·K̃ᵀ) (L×m), A = softmax(Q̃·K̃ᵀ) (m×m), B = softmax(Q̃·Kᵀ + mask) (m×L),
 *   O = F·A⁺·(B·V) + DepthwiseConv_k(V)   (eq. 13–15; the skip convolution is the authors' code),
 * with A⁺ the iterative Moore–Penrose pseudo-inverse (eq. 16, Razavi et al.):
 *   Z₀ = Aᵀ/c, Z ← ¼·Z·(13I − AZ·(15I − AZ·(7I − AZ))), `pinv_iters` times,
 * c the largest column sum of A (the authors' default initialisation; they take the maximum over
 * the whole batch, here per example and head so that examples stay independent). B·V is attention
 * of the m landmark queries over the L keys and F·W (W = A⁺·B·V) attention of the L queries over
 * the m landmark keys, both through the fused kernel, so nothing L×m is stored; A and the pinv
 * iterates (m×m) are kept and the backward runs through the unrolled iterations. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "mixers/attn_mixer.h"

static const OptSpec nystrom_opts[] = {
    MOPT_INT("landmarks", 64, 1, 65536, "landmarks m (the paper: 64; its LRA runs: 32 to 256)"),
    MOPT_INT("pinv_iters", 6, 1, 100,
             "iterations of the Moore-Penrose pseudo-inverse (the paper: 6)"),
    MOPT_INT("conv", 33, 0, 1025,
             "width of the depthwise skip convolution on V, odd; 0 = none (the paper's code: 33)"),
    MOPT_BOOL("bias", 0, "biases in the projections"),
};
#define NOPTS MOPT_COUNT(nystrom_opts)

typedef struct NystromState {
    AttnMixer am; /* first: projections; qkv, att (B, L, D); lse = F's (B, H, L) */
    int m, iters, conv;
    int p_conv;       /* (H, conv) */
    float *qs, *ks;   /* (B, L, D) scaled, padding zeroed */
    float *ql, *kl;   /* (B, m, D) landmarks */
    float *a;         /* (B, H, m, m) */
    float *z;         /* (B, H, iters + 1, m, m) pinv iterates */
    float *bv, *lse3; /* (B, m, D) B·V; (B, H, m) */
    float *w;         /* (B, m, D) A⁺·B·V */
    float *fo;        /* (B, L, D) F·W (att adds the convolution to it) */
} NystromState;

static void nystrom_create(Mixer *m, ParamTable *pt) {
    NystromState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, 0, opt_bool(m->opts, nystrom_opts, NOPTS, "bias"));
    st->m = opt_int(m->opts, nystrom_opts, NOPTS, "landmarks");
    st->iters = opt_int(m->opts, nystrom_opts, NOPTS, "pinv_iters");
    st->conv = opt_int(m->opts, nystrom_opts, NOPTS, "conv");
    st->p_conv = -1;
    if (st->conv) {
        st->p_conv = params_add2f(pt, m->H, st->conv, INIT_UNIFORM, 1.0f / sqrtf((float)st->conv),
                                  1, "%s.conv.weight", m->prefix);
    }
}

static int nystrom_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H;
    const int c = opt_int(opts, nystrom_opts, NOPTS, "conv");
    if (mixer_check_len(opts, nystrom_opts, NOPTS, "landmarks", max_len,
                        "%d is more than model.max_len = %d (valid: 1 to %d: a landmark is the "
                        "mean of at least one position)",
                        err))
        return -1;
    if (c && c % 2 == 0) {
        return mixer_opt_error(err, "conv", "%d is even (valid: 0, or an odd width)", c);
    }
    return 0;
}

/* B·V: the landmark queries (B, m, D) over the scaled keys (B, L, D) and the values. */
static AttnShape land_shape(const Mixer *m, int B, int L) {
    const NystromState *st = m->state;
    const int D = m->D;
    AttnShape s = attn_shape(B, m->H, st->m, L, D / m->H, D, D, 3 * D, D);
    s.scale = 1.0f;
    return s;
}
/* F·W: the scaled queries (B, L, D) over the landmark keys (B, m, D), values W (B, m, D). */
static AttnShape out_shape(const Mixer *m, int B, int L) {
    const NystromState *st = m->state;
    const int D = m->D;
    AttnShape s = attn_shape(B, m->H, L, st->m, D / m->H, D, D, D, D);
    s.scale = 1.0f;
    return s;
}

static void nystrom_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    NystromState *st = m->state;
    AttnMixer *am = &st->am;
    const size_t D = (size_t)m->D, BL = (size_t)B * L, Bm = (size_t)B * st->m,
                 BH = (size_t)B * m->H;
    const size_t mm = (size_t)st->m * st->m;
    am->qkv = arena_floats(acts, BL * 3 * D);
    am->att = arena_floats(acts, BL * D);
    am->lse = arena_floats(acts, BL * m->H);
    st->qs = arena_floats(acts, BL * D);
    st->ks = arena_floats(acts, BL * D);
    st->ql = arena_floats(acts, Bm * D);
    st->kl = arena_floats(acts, Bm * D);
    st->a = arena_floats(acts, BH * mm);
    st->z = arena_floats(acts, BH * (st->iters + 1) * mm);
    st->bv = arena_floats(acts, Bm * D);
    st->lse3 = arena_floats(acts, Bm * m->H);
    st->w = arena_floats(acts, Bm * D);
    st->fo = arena_floats(acts, BL * D);
    /* forward: per thread 4 m×m; backward: d(att), d(qkv), d(qs), d(ks), d(ql), d(kl), d(w),
     * d(bv), and per thread 12 m×m */
    const int nt = omp_get_max_threads();
    arena_floats(scratch,
                 BL * D + BL * 3 * D + 2 * BL * D + 4 * Bm * D + (size_t)nt * 12 * mm + 64);
    AttnShape a = land_shape(m, B, L), o = out_shape(m, B, L);
    arena_floats(scratch, XB_MAX(attn_scratch_floats(&a, nt), attn_scratch_floats(&o, nt)));
}

/* x ← c·I − x for an n×n matrix. */
static void c_minus(float *x, float c, int n) {
    for (int i = 0; i < n * n; i++) x[i] = -x[i];
    for (int i = 0; i < n; i++) x[(size_t)i * n + i] += c;
}

/* Segment s of the sequence: rows [lo, hi). */
static void segment(int s, int m, int L, int *lo, int *hi) {
    *lo = (int)((long long)s * L / m);
    *hi = (int)((long long)(s + 1) * L / m);
}

/* The depthwise skip convolution on V (the value columns of qkv, (B, L, 3D)), its taps cw (H, conv)
 * shared by a head's channels, zero padding at the ends and at padding positions. The loops run
 * along channels (vectorised); each element's taps are still summed in tap order from 0 and then
 * added, so the bits are those of a loop per element. */
static float *conv_taps(const float *cw, int conv, int D, int Dh) {
    float *wc = malloc((size_t)conv * D * sizeof *wc); /* wc[t·D + c] = cw[(c / Dh)·conv + t] */
    XB_ASSERT(wc);
    for (int t = 0; t < conv; t++)
        for (int c = 0; c < D; c++) wc[(size_t)t * D + c] = cw[(size_t)(c / Dh) * conv + t];
    return wc;
}

/* att (B·L, D) += conv(V). */
static void conv_forward(float *att, const float *qkv, const unsigned char *mask, const float *cw,
                         int B, int L, int D, int Dh, int conv) {
    float *wc = conv_taps(cw, conv, D, Dh);
    const int half = conv / 2;
#pragma omp parallel
    {
        float *acc = malloc((size_t)D * sizeof *acc);
        XB_ASSERT(acc);
#pragma omp for schedule(static)
        for (int r = 0; r < B * L; r++) {
            const int b = r / L, i = r % L;
            for (int c = 0; c < D; c++) acc[c] = 0.0f;
            for (int t = 0; t < conv; t++) {
                const int j = i + t - half;
                if (j < 0 || j >= L || (mask && !mask[(size_t)b * L + j])) continue;
                const float *v = qkv + ((size_t)b * L + j) * 3 * D + 2 * D, *w = wc + (size_t)t * D;
#pragma omp simd
                for (int c = 0; c < D; c++) acc[c] += w[c] * v[c];
            }
            float *o = att + (size_t)r * D;
            for (int c = 0; c < D; c++) o[c] += acc[c];
        }
        free(acc);
    }
    free(wc);
}

/* d(V) at real positions into dqkv's value columns, and gw (H, conv) += the taps' gradients, each
 * summed in double over rows, per channel, then over the head's channels in order. */
static void conv_backward(float *dqkv, float *gw, const float *datt, const float *qkv,
                          const unsigned char *mask, const float *cw, int B, int L, int D, int Dh,
                          int conv) {
    float *wc = conv_taps(cw, conv, D, Dh);
    const int half = conv / 2, BL = B * L, H = D / Dh;
#pragma omp parallel
    {
        float *acc = malloc((size_t)D * sizeof *acc);
        XB_ASSERT(acc);
#pragma omp for schedule(static)
        for (int r = 0; r < BL; r++) {
            const int b = r / L, j = r % L;
            if (mask && !mask[r]) continue;
            for (int c = 0; c < D; c++) acc[c] = 0.0f;
            for (int t = 0; t < conv; t++) {
                const int i = j - t + half;
                if (i < 0 || i >= L) continue;
                const float *g = datt + ((size_t)b * L + i) * D, *w = wc + (size_t)t * D;
#pragma omp simd
                for (int c = 0; c < D; c++) acc[c] += w[c] * g[c];
            }
            float *dv = dqkv + (size_t)r * 3 * D + 2 * D;
            for (int c = 0; c < D; c++) dv[c] += acc[c];
        }
        free(acc);
    }
    free(wc);
    if (!gw) return;
#pragma omp parallel
    {
        double *dacc = malloc((size_t)Dh * sizeof *dacc);
        XB_ASSERT(dacc);
#pragma omp for collapse(2) schedule(static)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < conv; t++) {
                for (int c = 0; c < Dh; c++) dacc[c] = 0.0;
                for (int r = 0; r < BL; r++) {
                    const int b = r / L, j = r % L + t - half;
                    if (j < 0 || j >= L || (mask && !mask[(size_t)b * L + j])) continue;
                    const float *g = datt + (size_t)r * D + (size_t)h * Dh;
                    const float *v = qkv + ((size_t)b * L + j) * 3 * D + 2 * D + (size_t)h * Dh;
#pragma omp simd
                    for (int c = 0; c < Dh; c++) dacc[c] += (double)g[c] * v[c];
                }
                double sum = 0.0;
                for (int c = 0; c < Dh; c++) sum += dacc[c];
                gw[(size_t)h * conv + t] += (float)sum;
            }
        free(dacc);
    }
}

static void nystrom_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    NystromState *st = m->state;
    AttnMixer *am = &st->am;
    const int B = s->B, L = s->L, D = m->D, H = m->H, Dh = D / H, M = st->m, BL = B * L;
    const size_t mm2 = (size_t)M * M;
    const float sc = 1.0f / sqrtf(sqrtf((float)Dh));
    linear_forward(am->qkv, x, mixer_param(s, am->p_wqkv), mixer_param(s, am->p_bqkv), BL, D,
                   3 * D);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) { /* scaled q and k, padding rows zeroed */
        const int real = !s->mask || s->mask[r];
        for (int c = 0; c < D; c++) {
            st->qs[(size_t)r * D + c] = real ? am->qkv[(size_t)r * 3 * D + c] * sc : 0.0f;
            st->ks[(size_t)r * D + c] = real ? am->qkv[(size_t)r * 3 * D + D + c] * sc : 0.0f;
        }
    }
#pragma omp parallel for schedule(static)
    for (int bs = 0; bs < B * M; bs++) { /* landmarks: segment means */
        const int b = bs / M;
        int lo, hi;
        segment(bs % M, M, L, &lo, &hi);
        for (int c = 0; c < D; c++) {
            float aq = 0.0f, ak = 0.0f;
            for (int i = lo; i < hi; i++)
                aq += st->qs[((size_t)b * L + i) * D + c],
                    ak += st->ks[((size_t)b * L + i) * D + c];
            st->ql[(size_t)bs * D + c] = aq / (float)(hi - lo);
            st->kl[(size_t)bs * D + c] = ak / (float)(hi - lo);
        }
    }
    /* A = softmax(Q̃ K̃ᵀ) and its pseudo-inverse, per (b, h) */
    const size_t mark = arena_mark(s->scratch);
    const int nt = omp_get_max_threads();
    float *work = arena_floats(s->scratch, (size_t)nt * 4 * mm2);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        float *A = st->a + (size_t)bh * mm2, *Z = st->z + (size_t)bh * (st->iters + 1) * mm2;
        float *X = work + (size_t)omp_get_thread_num() * 4 * mm2, *T = X + mm2, *U = T + mm2;
        matmul_strided(A, M, st->ql + (size_t)b * M * D + h * Dh, D,
                       st->kl + (size_t)b * M * D + h * Dh, D, M, M, Dh, MM_NT, 1.0f, 0.0f);
        for (int i = 0; i < M; i++) {
            float *row = A + (size_t)i * M, mx = -INFINITY, sum = 0.0f;
            for (int j = 0; j < M; j++) mx = fmaxf(mx, row[j]);
            for (int j = 0; j < M; j++) sum += (row[j] = expf(row[j] - mx));
            for (int j = 0; j < M; j++) row[j] /= sum;
        }
        float c = 0.0f; /* the largest column sum */
        for (int j = 0; j < M; j++) {
            float cs = 0.0f;
            for (int i = 0; i < M; i++) cs += A[(size_t)i * M + j];
            c = fmaxf(c, cs);
        }
        for (int i = 0; i < M; i++)
            for (int j = 0; j < M; j++) Z[(size_t)i * M + j] = A[(size_t)j * M + i] / c;
        for (int t = 0; t < st->iters; t++) {
            const float *Zt = Z + (size_t)t * mm2;
            float *Zn = Z + (size_t)(t + 1) * mm2;
            matmul(X, A, Zt, M, M, M, MM_NN, 1.0f, 0.0f); /* X = A Z */
            memcpy(T, X, mm2 * sizeof(float));
            c_minus(T, 7.0f, M);                         /* 7I − X */
            matmul(U, X, T, M, M, M, MM_NN, 1.0f, 0.0f); /* X (7I − X) */
            c_minus(U, 15.0f, M);                        /* 15I − X (7I − X) */
            matmul(T, X, U, M, M, M, MM_NN, 1.0f, 0.0f); /* X (15I − …) */
            c_minus(T, 13.0f, M);                        /* P(X) = 13I − X (15I − …) */
            matmul(Zn, Zt, T, M, M, M, MM_NN, 0.25f, 0.0f);
        }
    }
    arena_reset_to(s->scratch, mark);
    /* B·V, then W = A⁺·(B·V), then F·W */
    AttnShape la = land_shape(m, B, L);
    attn_forward(st->bv, st->lse3, st->ql, st->ks, am->qkv + 2 * D, s->mask, &la, s->scratch);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const float *Z = st->z + ((size_t)bh * (st->iters + 1) + st->iters) * mm2;
        matmul_strided(st->w + (size_t)b * M * D + h * Dh, D, Z, M,
                       st->bv + (size_t)b * M * D + h * Dh, D, M, Dh, M, MM_NN, 1.0f, 0.0f);
    }
    AttnShape os = out_shape(m, B, L);
    attn_forward(st->fo, am->lse, st->qs, st->kl, st->w, NULL, &os, s->scratch);
    memcpy(am->att, st->fo, (size_t)BL * D * sizeof(float));
    if (st->conv) { /* + the depthwise convolution of the (masked) values along the sequence */
        conv_forward(am->att, am->qkv, s->mask, mixer_param(s, st->p_conv), B, L, D, Dh,
                     st->conv);
        flops_add(2ull * (uint64_t)BL * D * st->conv);
    }
    linear_forward(y, am->att, mixer_param(s, am->p_wo), mixer_param(s, am->p_bo), BL, D, D);
}

static void nystrom_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                             const float *x) {
    NystromState *st = m->state;
    AttnMixer *am = &st->am;
    const int B = s->B, L = s->L, D = m->D, H = m->H, Dh = D / H, M = st->m, BL = B * L;
    const size_t mm2 = (size_t)M * M, BMD = (size_t)B * M * D;
    const float sc = 1.0f / sqrtf(sqrtf((float)Dh));
    const size_t mark = arena_mark(s->scratch);
    const int nt = omp_get_max_threads();
#define BUF(v, k)                                                                                  \
    float *v = arena_floats(s->scratch, k);                                                        \
    memset(v, 0, (k) * sizeof(float))
    BUF(datt, (size_t)BL * D);
    BUF(dqkv, (size_t)BL * 3 * D);
    BUF(dqs, (size_t)BL * D);
    BUF(dks, (size_t)BL * D);
    BUF(dql, BMD);
    BUF(dkl, BMD);
    BUF(dw, BMD);
    BUF(dbv, BMD);
#undef BUF
    float *work = arena_floats(s->scratch, (size_t)nt * 12 * mm2);
    linear_backward(datt, mixer_grad(s, am->p_wo), mixer_grad(s, am->p_bo), dy, am->att,
                    mixer_param(s, am->p_wo), BL, D, D);
    if (st->conv) { /* the convolution: d(V) at real positions, and its weights per head */
        conv_backward(dqkv, mixer_grad(s, st->p_conv), datt, am->qkv, s->mask,
                      mixer_param(s, st->p_conv), B, L, D, Dh, st->conv);
        flops_add(4ull * (uint64_t)BL * D * st->conv);
    }
    AttnShape os = out_shape(m, B, L);
    attn_backward(dqs, dkl, dw, datt, st->qs, st->kl, st->w, st->fo, am->lse, NULL, &os,
                  s->scratch);
    /* W = Z·BV: dBV = Zᵀ dW; dZ = dW BVᵀ, then back through the iterations and A's softmax */
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const float *A = st->a + (size_t)bh * mm2, *Z = st->z + (size_t)bh * (st->iters + 1) * mm2;
        float *wk = work + (size_t)omp_get_thread_num() * 12 * mm2;
        float *G = wk, *dA = G + mm2, *X = dA + mm2, *X2 = X + mm2, *P = X2 + mm2, *U = P + mm2;
        float *dX = U + mm2, *T = dX + mm2, *T2 = T + mm2;
        const float *dwb = dw + (size_t)b * M * D + h * Dh,
                    *bvb = st->bv + (size_t)b * M * D + h * Dh;
        matmul_strided(dbv + (size_t)b * M * D + h * Dh, D, Z + (size_t)st->iters * mm2, M, dwb, D,
                       M, Dh, M, MM_TN, 1.0f, 0.0f);
        matmul_strided(G, M, dwb, D, bvb, D, M, M, Dh, MM_NT, 1.0f, 0.0f);
        memset(dA, 0, mm2 * sizeof(float));
        for (int t = st->iters - 1; t >= 0; t--) { /* G = dZ_{t+1} → dZ_t, dA */
            const float *Zt = Z + (size_t)t * mm2;
            matmul(X, A, Zt, M, M, M, MM_NN, 1.0f, 0.0f);                        /* X = A Z_t */
            matmul(X2, X, X, M, M, M, MM_NN, 1.0f, 0.0f);                        /* X² */
            for (size_t k = 0; k < mm2; k++) P[k] = 7.0f * X2[k] - 15.0f * X[k]; /* P(X) */
            matmul(P, X2, X, M, M, M, MM_NN, -1.0f, 1.0f);                       /* − X³ */
            for (int i = 0; i < M; i++) P[(size_t)i * M + i] += 13.0f;
            for (size_t k = 0; k < mm2; k++) G[k] *= 0.25f; /* Z_{t+1} = ¼ Z_t P(X) */
            matmul(U, Zt, G, M, M, M, MM_TN, 1.0f, 0.0f);   /* U = Z_tᵀ G */
            /* dX = −15U + 7(U Xᵀ + Xᵀ U) − (U X²ᵀ + Xᵀ U Xᵀ + X²ᵀ U) */
            for (size_t k = 0; k < mm2; k++) dX[k] = -15.0f * U[k];
            matmul(dX, U, X, M, M, M, MM_NT, 7.0f, 1.0f);
            matmul(dX, X, U, M, M, M, MM_TN, 7.0f, 1.0f);
            matmul(dX, U, X2, M, M, M, MM_NT, -1.0f, 1.0f);
            matmul(T, X, U, M, M, M, MM_TN, 1.0f, 0.0f);
            matmul(dX, T, X, M, M, M, MM_NT, -1.0f, 1.0f);
            matmul(dX, X2, U, M, M, M, MM_TN, -1.0f, 1.0f);
            /* dZ_t = G P(X)ᵀ + Aᵀ dX; dA += dX Z_tᵀ */
            matmul(T2, G, P, M, M, M, MM_NT, 1.0f, 0.0f);
            matmul(T2, A, dX, M, M, M, MM_TN, 1.0f, 1.0f);
            matmul(dA, dX, Zt, M, M, M, MM_NT, 1.0f, 1.0f);
            memcpy(G, T2, mm2 * sizeof(float));
        }
        /* Z₀ = Aᵀ/c, c the largest column sum (jc its column): dA += G₀ᵀ/c, dc = −Σ G₀∘Aᵀ/c² */
        float c = -1.0f;
        int jc = 0;
        for (int j = 0; j < M; j++) {
            float cs = 0.0f;
            for (int i = 0; i < M; i++) cs += A[(size_t)i * M + j];
            if (cs > c) c = cs, jc = j;
        }
        double dc = 0.0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < M; j++) {
                dA[(size_t)j * M + i] += G[(size_t)i * M + j] / c;
                dc -= (double)G[(size_t)i * M + j] * A[(size_t)j * M + i] / ((double)c * c);
            }
        for (int i = 0; i < M; i++) dA[(size_t)i * M + jc] += (float)dc;
        /* A = softmax(Q̃ K̃ᵀ): dS = A∘(dA − rowsum(dA∘A)); dQ̃ += dS K̃, dK̃ += dSᵀ Q̃ */
        for (int i = 0; i < M; i++) {
            float acc = 0.0f;
            for (int j = 0; j < M; j++) acc += dA[(size_t)i * M + j] * A[(size_t)i * M + j];
            for (int j = 0; j < M; j++)
                dA[(size_t)i * M + j] = A[(size_t)i * M + j] * (dA[(size_t)i * M + j] - acc);
        }
        matmul_strided(dql + (size_t)b * M * D + h * Dh, D, dA, M,
                       st->kl + (size_t)b * M * D + h * Dh, D, M, Dh, M, MM_NN, 1.0f, 1.0f);
        matmul_strided(dkl + (size_t)b * M * D + h * Dh, D, dA, M,
                       st->ql + (size_t)b * M * D + h * Dh, D, M, Dh, M, MM_TN, 1.0f, 1.0f);
    }
    AttnShape la = land_shape(m, B, L);
    attn_backward(dql, dks, dqkv + 2 * D, dbv, st->ql, st->ks, am->qkv + 2 * D, st->bv, st->lse3,
                  s->mask, &la, s->scratch);
    /* landmarks are segment means; q and k were scaled and their padding rows zeroed */
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) {
        const int b = r / L, i = r % L;
        if (s->mask && !s->mask[r]) continue;
        int sg = (int)((long long)i * M / L), lo, hi; /* the segment holding i */
        for (segment(sg, M, L, &lo, &hi); i < lo || i >= hi; segment(sg, M, L, &lo, &hi))
            sg += i < lo ? -1 : 1;
        const float inv = 1.0f / (float)(hi - lo);
        for (int c = 0; c < D; c++) {
            const size_t l = ((size_t)b * M + sg) * D + c;
            dqkv[(size_t)r * 3 * D + c] += (dqs[(size_t)r * D + c] + dql[l] * inv) * sc;
            dqkv[(size_t)r * 3 * D + D + c] += (dks[(size_t)r * D + c] + dkl[l] * inv) * sc;
        }
    }
    linear_backward(dx, mixer_grad(s, am->p_wqkv), mixer_grad(s, am->p_bqkv), dqkv, x,
                    mixer_param(s, am->p_wqkv), BL, D, 3 * D);
    arena_reset_to(s->scratch, mark);
}

static uint64_t nystrom_flops(const Mixer *m, int B, int L, int backward) {
    const NystromState *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D, BH = (uint64_t)B * m->H;
    const uint64_t M = (uint64_t)st->m, Dh = D / (uint64_t)m->H, M3 = 2 * M * M * M;
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BL * D * D;
    const uint64_t conv = st->conv ? 2 * BL * D * (uint64_t)st->conv : 0;
    AttnShape la = land_shape(m, B, L), os = out_shape(m, B, L);
    const uint64_t attn = attn_flops(&la, backward) + attn_flops(&os, backward);
    if (!backward) /* A, 4 products per iteration, W */
        return proj + conv + attn + BH * (2 * M * M * Dh + 4 * M3 * st->iters + 2 * M * M * Dh);
    /* dBV and dZ, 13 products per iteration, dQ̃ and dK̃ */
    return 2 * proj + 2 * conv + attn +
           BH * (4 * M * M * Dh + 13 * M3 * st->iters + 4 * M * M * Dh);
}

const MixerSpec mixer_nystrom = {
    .name = "nystrom",
    .classes = "M+DS",
    .arxiv = "2102.03902",
    .title = "Nystromformer: landmark (segment-mean) Nystrom approximation with an iterative "
             "pseudo-inverse, depthwise-convolution skip",
    .honours_mask = 1,
    .padding_dependence = "the landmarks are the means of m segments of the padded length, padding "
                          "rows counting as zeros (as the authors' code)",
    MIXER_OPTS(nystrom_opts),
    .ops = &(const MixerOps){MIXER_OPS(nystrom), .check = nystrom_check},
};
