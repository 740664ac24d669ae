/* long_short: the Long-Short Transformer (Zhu et al., arXiv 2107.02192, §3), the bidirectional
 * form as the authors' LRA code runs it (NVIDIA/transformer-ls, Transformer-LS-LRA and lra/
 * attention_transformer_ls.py, AttentionLS.forward with pooling_mode MEAN and conv off):
 *
 *   Q = X W_q/√Dh,  K = LN_l(X W_k),  V = LN_l(X W_v)       (one LayerNorm over all heads,
 * "dual_ln_l") long term, dynamic projection (§3.2, eq. 3): P = softmax over the sequence of X W_P
 * (H·r columns, padding positions −inf; head_scores), K̄ = LN_s(Pᵀ K), V̄ = LN_s(Pᵀ V) per head
 *     (dual_ln_s over the landmarks' heads concatenated; §3.3, DualLN)
 *   short term, segment-wise sliding window (§3.1): the queries are cut into segments of w; the
 *     queries of segment g see the keys [g·w − e, (g + 1)·w + e) with e = max(⌊w/2⌋, 1)
 *     (get_tiles_v2 / get_tiled_mask_v2: keys beyond the sequence or padding −inf)
 *   one softmax per query over the union [r landmarks ‖ window keys] (§3.3, eq. 5), the
 *   probabilities of padding queries zeroed (all_attn.masked_fill), O = A_r V̄ + A_w V_window,
 *   Y = O W_oᵀ + b_o.
 *
 * All projections have biases (nn.Linear's default). Defaults w = 8, r = 32: the paper's LRA row
 * "Transformer-LS (w, r = 8, 32)", which run_listops.sh, run_text.sh and run_retrieval.sh run
 * (conv_kernel_size −1: no convolution branch). The code needs the padded length to be a multiple
 * of w; here a last partial segment is simply shorter (the same as padding it to a multiple of w).
 * Padding is invisible: padding keys are −inf in the window and have P = 0, and the segments are
 * counted from position 0. Not here: the CLS path of the code (cls_from_seq, and run_tasks.py's
 * --cls_last_layer, a learned token attending to [itself, the last layer's outputs]): pooling is
 * the model's choice, not the mixer's. The LayerNorms use the harness's ε = 1e-6 (PyTorch 1e-5).
 *
 * dual_ln = false is the paper's ablation without DualLN (§3.3, Table 6): no LN_l, no LN_s. With
 * it, no landmarks and a window covering the sequence this is softmax attention (tested).
 *
 * The softmax goes through the fused attention kernel (kernels/attention.h): keys and values are
 * per row [K̄ (r rows); K (L rows)], and a pattern gives each tile of queries the landmark range
 * and its segments' window range. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "mixers/attn_mixer.h"

static const OptSpec long_short_opts[] = {
    MOPT_INT("window", 8, 1, 65536,
             "segment length w of the short-term attention; a segment sees its keys and "
             "max(w/2, 1) more on each side (paper's LRA: 8)"),
    MOPT_INT("landmarks", 32, 0, 4096,
             "rows r of the dynamic projection per head (paper's LRA: 32; 0 = short-term only)"),
    MOPT_BOOL("dual_ln", 1,
              "DualLN: LayerNorms on the keys and values (LN_l) and on the projected ones (LN_s); "
              "false is the paper's ablation without it"),
    MOPT_BOOL("bias", 1,
              "biases in the Q/K/V, projection and output layers (the authors' nn.Linear: yes)"),
};
#define NOPTS MOPT_COUNT(long_short_opts)

typedef struct LongShort {
    AttnMixer am; /* first: the projections (W_q, W_k, W_v packed as qkv), att, lse */
    int w, e, r, dual_ln;
    int p_lnlw, p_lnlb, p_lnsw, p_lnsb; /* LN_l, LN_s (−1 without dual_ln) */
    int p_wp, p_bp;                     /* W_P (H·r, D), b_P (H·r) (−1 without landmarks) */
    AttnPattern pattern;
    float *q, *kraw, *vraw;       /* (B, L, D) saved: projections before LN_l */
    float *kc, *vc;               /* (B, r + L, D) saved: [K̄; K], [V̄; V] */
    float *kbar, *vbar;           /* (B, r, D) saved: Pᵀ K, Pᵀ V before LN_s */
    float *mk, *rk, *mv, *rv;     /* (B, L) saved: LN_l statistics */
    float *mks, *rks, *mvs, *rvs; /* (B, r) saved: LN_s statistics */
    float *P;                     /* (B, L, H·r) saved: the dynamic projection */
    unsigned char *kmask;         /* (B, r + L) saved: visible keys */
} LongShort;

/* Query rows per tile: a segment when it is 32 to 256 long, else 128 rows or the first multiple
 * of w from 32 up, with a mask for the rows of other segments. */
static int ls_tile_rows(int w) {
    if (w >= 32 && w <= 256) return w;
    if (w > 256) return 128;
    return (32 + w - 1) / w * w;
}

/* The window of the queries [i0, i0 + bq) (their segments' keys) after the landmarks. */
static int ls_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h;
    const LongShort *st = s->pattern->ctx;
    const int L = s->Lq, g0 = i0 / st->w, g1 = (i0 + bq - 1) / st->w;
    int n = 0;
    if (st->r > 0) lo[n] = 0, hi[n] = st->r, n++;
    lo[n] = st->r + XB_MAX(0, g0 * st->w - st->e);
    hi[n] = st->r + XB_MIN(L, (g1 + 1) * st->w + st->e);
    return n + (lo[n] < hi[n]);
}

/* Query i sees the landmarks and the keys [g·w − e, (g + 1)·w + e) of its segment g = ⌊i/w⌋. */
static void ls_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk, float *bias,
                    int ld) {
    (void)b, (void)h;
    const LongShort *st = s->pattern->ctx;
    for (int r = 0; r < bq; r++) {
        const int g = (i0 + r) / st->w, a = g * st->w - st->e, z = (g + 1) * st->w + st->e;
        for (int c = 0; c < bk; c++) {
            const int p = j0 + c - st->r; /* sequence position of the key (< 0: a landmark) */
            bias[(size_t)r * ld + c] = p < 0 || (p >= a && p < z) ? 0.0f : -INFINITY;
        }
    }
}

static int long_short_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)max_len;
    const int r = opt_int(opts, long_short_opts, NOPTS, "landmarks");
    if ((long)r * H > 65536) {
        return mixer_opt_error(
            err, "landmarks",
            "%d landmarks for each of %d heads make %ld projection rows (at most 65536)", r, H,
            (long)r * H);
    }
    return 0;
}

static int add_vector(ParamTable *pt, const char *prefix, const char *what, int n, InitKind init) {
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    return params_add1(pt, name, n, init, 0, 0);
}

static void long_short_create(Mixer *m, ParamTable *pt) {
    LongShort *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    const int bias = opt_bool(m->opts, long_short_opts, NOPTS, "bias");
    attn_mixer_create(m, pt, &st->am, 0, bias);
    st->w = opt_int(m->opts, long_short_opts, NOPTS, "window");
    st->e = XB_MAX(st->w / 2, 1); /* get_tiles_v2: ext_len = max(window_size // 2, 1) */
    st->r = opt_int(m->opts, long_short_opts, NOPTS, "landmarks");
    st->dual_ln = opt_bool(m->opts, long_short_opts, NOPTS, "dual_ln");
    st->p_lnlw = st->p_lnlb = st->p_lnsw = st->p_lnsb = st->p_wp = st->p_bp = -1;
    if (st->dual_ln) {
        st->p_lnlw = add_vector(pt, m->prefix, "ln_l.weight", m->D, INIT_ONES);
        st->p_lnlb = add_vector(pt, m->prefix, "ln_l.bias", m->D, INIT_ZEROS);
        if (st->r > 0) {
            st->p_lnsw = add_vector(pt, m->prefix, "ln_s.weight", m->D, INIT_ONES);
            st->p_lnsb = add_vector(pt, m->prefix, "ln_s.bias", m->D, INIT_ZEROS);
        }
    }
    if (st->r > 0)
        st->p_wp =
            mixer_add_linear(pt, m->prefix, "landmarks", m->H * st->r, m->D, bias, &st->p_bp);
    const int bq = ls_tile_rows(st->w);
    st->pattern = (AttnPattern){.bq = bq,
                                .max_ranges = 2,
                                .ranges = ls_ranges,
                                .mask = bq == st->w ? NULL : ls_mask,
                                .ctx = st};
}

/* Queries (B, L, D) against [landmarks; sequence] (B, r + L, D) under the pattern. */
static AttnShape ls_shape(const Mixer *m, int B, int L) {
    const LongShort *st = m->state;
    const int D = m->D, Lk = st->r + L;
    AttnShape s = attn_shape(B, m->H, L, Lk, D / m->H, D, D, D, D);
    s.pattern = &st->pattern;
    return s;
}

static void long_short_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    LongShort *st = m->state;
    const size_t BL = (size_t)B * L, D = (size_t)m->D, Bk = (size_t)B * (st->r + L);
    const size_t Br = (size_t)B * st->r, HR = (size_t)m->H * st->r;
    st->q = arena_floats(acts, BL * D);
    st->kraw = arena_floats(acts, BL * D);
    st->vraw = arena_floats(acts, BL * D);
    st->kc = arena_floats(acts, Bk * D);
    st->vc = arena_floats(acts, Bk * D);
    st->am.att = arena_floats(acts, BL * D);
    st->am.lse = arena_floats(acts, BL * m->H);
    st->kmask = arena_alloc(acts, Bk);
    st->mk = arena_floats(acts, BL);
    st->rk = arena_floats(acts, BL);
    st->mv = arena_floats(acts, BL);
    st->rv = arena_floats(acts, BL);
    if (st->r > 0) {
        st->P = arena_floats(acts, BL * HR);
        st->kbar = arena_floats(acts, Br * D);
        st->vbar = arena_floats(acts, Br * D);
        st->mks = arena_floats(acts, Br);
        st->rks = arena_floats(acts, Br);
        st->mvs = arena_floats(acts, Br);
        st->rvs = arena_floats(acts, Br);
    }
    /* backward: datt, dq, dkraw, dvraw; dkc, dvc; dkbar, dvbar; dP; then the kernel's tiles */
    AttnShape s = ls_shape(m, B, L);
    arena_floats(scratch, 4 * BL * D);
    arena_floats(scratch, 2 * Bk * D);
    arena_floats(scratch, 2 * Br * D);
    arena_floats(scratch, BL * HR);
    arena_alloc(scratch, attn_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
}

/* The parameter tensors of W_q, W_k, W_v are the row blocks of the packed qkv weight. */
static const float *block(const float *p, int i, size_t n) { return p ? p + i * n : NULL; }
static float *gblock(float *p, int i, size_t n) { return p ? p + i * n : NULL; }

/* P (B, L, H·r) = softmax over the real positions of each column of X W_Pᵀ + b_P (in place). */
static void landmark_softmax(float *P, const unsigned char *mask, int B, int L, int C) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float *p = P + (size_t)b * L * C + c;
            const unsigned char *mb = mask ? mask + (size_t)b * L : NULL;
            float mx = -INFINITY;
            for (int l = 0; l < L; l++)
                if (!mb || mb[l]) mx = fmaxf(mx, p[(size_t)l * C]);
            float sum = 0.0f;
            for (int l = 0; l < L; l++) {
                const float e = (!mb || mb[l]) ? expf(p[(size_t)l * C] - mx) : 0.0f;
                p[(size_t)l * C] = e;
                sum += e;
            }
            const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
            for (int l = 0; l < L; l++) p[(size_t)l * C] *= inv;
        }
}

/* dP ← P ∘ (dP − Σ_l P dP) per column (in place: dP becomes the scores' gradient). */
static void landmark_softmax_backward(float *dP, const float *P, int B, int L, int C) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *p = P + (size_t)b * L * C + c;
            float *g = dP + (size_t)b * L * C + c;
            float dot = 0.0f;
            for (int l = 0; l < L; l++) dot += p[(size_t)l * C] * g[(size_t)l * C];
            for (int l = 0; l < L; l++)
                g[(size_t)l * C] = p[(size_t)l * C] * (g[(size_t)l * C] - dot);
        }
}

/* out (B, r, D) = per head Pᵀ (r × L) · X (L × Dh); X is the sequence part of kc or vc. */
static void project_landmarks(float *out, const float *P, const float *x, int B, int H, int L,
                              int r, int D) {
    const int Dh = D / H;
    const MatBatch per_head = {.n1 = B,
                               .n2 = H,
                               .a1 = (size_t)L * H * r,
                               .a2 = (size_t)r,
                               .b1 = (size_t)(r + L) * D,
                               .b2 = (size_t)Dh,
                               .c1 = (size_t)r * D,
                               .c2 = (size_t)Dh,
                               .parallel = 1};
    matmul_batched(out, D, P, H * r, x + (size_t)r * D, D, r, Dh, L, MM_TN, 1.0f, 0.0f, &per_head);
}

/* dP += X dOutᵀ, dX += P dOut per head (the gradients of project_landmarks). */
static void project_landmarks_backward(float *dP, float *dx, const float *dout, const float *P,
                                       const float *x, int B, int H, int L, int r, int D) {
    const int Dh = D / H;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t xo = (size_t)b * (r + L) * D + (size_t)r * D + (size_t)h * Dh;
            const size_t po = (size_t)b * L * H * r + (size_t)h * r;
            const float *g = dout + (size_t)b * r * D + (size_t)h * Dh;
            matmul_backward_strided(dP + po, H * r, dx + xo, D, g, D, P + po, H * r, x + xo, D, r,
                                    Dh, L, MM_TN, 1.0f);
        }
}

/* out = LN(in) (n rows of D) with the statistics, or a copy without dual_ln. */
static void norm_rows(float *out, float *mean, float *rstd, const float *in, const float *w,
                      const float *bias, int n, int D, int on) {
    if (on)
        layernorm_forward(out, mean, rstd, in, w, bias, n, D);
    else
        memcpy(out, in, (size_t)n * D * sizeof *out);
}

static void norm_rows_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                               const float *w, const float *mean, const float *rstd, int n, int D,
                               int on) {
    if (on) {
        layernorm_backward(din, dw, db, dout, in, w, mean, rstd, n, D);
        return;
    }
    for (size_t k = 0; k < (size_t)n * D; k++) din[k] += dout[k];
}

static void long_short_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    LongShort *st = m->state;
    const int B = s->B, L = s->L, D = m->D, H = m->H, r = st->r, BL = B * L, Lk = r + L;
    const size_t DD = (size_t)D * D;
    const float *W = mixer_param(s, st->am.p_wqkv), *bW = mixer_param(s, st->am.p_bqkv);
    linear_forward(st->q, x, block(W, 0, DD), block(bW, 0, D), BL, D, D);
    linear_forward(st->kraw, x, block(W, 1, DD), block(bW, 1, D), BL, D, D);
    linear_forward(st->vraw, x, block(W, 2, DD), block(bW, 2, D), BL, D, D);
    const float *lw = mixer_param(s, st->p_lnlw), *lb = mixer_param(s, st->p_lnlb);
    for (int b = 0; b < B; b++) { /* K = LN_l(X W_k), V = LN_l(X W_v) after the landmark rows */
        const size_t o = (size_t)b * L * D, c = ((size_t)b * Lk + r) * D;
        norm_rows(st->kc + c, st->mk + (size_t)b * L, st->rk + (size_t)b * L, st->kraw + o, lw, lb,
                  L, D, st->dual_ln);
        norm_rows(st->vc + c, st->mv + (size_t)b * L, st->rv + (size_t)b * L, st->vraw + o, lw, lb,
                  L, D, st->dual_ln);
    }
    for (int b = 0; b < B; b++)
        for (int j = 0; j < Lk; j++)
            st->kmask[(size_t)b * Lk + j] =
                j < r || !s->mask || s->mask[(size_t)b * L + j - r] ? 1 : 0;
    if (r > 0) { /* the dynamic projection and the landmarks K̄ = LN_s(Pᵀ K), V̄ = LN_s(Pᵀ V) */
        linear_forward(st->P, x, mixer_param(s, st->p_wp), mixer_param(s, st->p_bp), BL, D, H * r);
        landmark_softmax(st->P, s->mask, B, L, H * r);
        project_landmarks(st->kbar, st->P, st->kc, B, H, L, r, D);
        project_landmarks(st->vbar, st->P, st->vc, B, H, L, r, D);
        const float *sw = mixer_param(s, st->p_lnsw), *sb = mixer_param(s, st->p_lnsb);
        for (int b = 0; b < B; b++) {
            const size_t o = (size_t)b * r * D, c = (size_t)b * Lk * D;
            norm_rows(st->kc + c, st->mks + (size_t)b * r, st->rks + (size_t)b * r, st->kbar + o,
                      sw, sb, r, D, st->dual_ln);
            norm_rows(st->vc + c, st->mvs + (size_t)b * r, st->rvs + (size_t)b * r, st->vbar + o,
                      sw, sb, r, D, st->dual_ln);
        }
    }
    AttnShape sh = ls_shape(m, B, L);
    attn_forward(st->am.att, st->am.lse, st->q, st->kc, st->vc, st->kmask, &sh, s->scratch);
    if (s->mask) /* padding queries: probabilities zeroed, so their output is 0 */
        for (size_t i = 0; i < (size_t)BL; i++)
            if (!s->mask[i]) memset(st->am.att + i * D, 0, (size_t)D * sizeof(float));
    linear_forward(y, st->am.att, mixer_param(s, st->am.p_wo), mixer_param(s, st->am.p_bo), BL, D,
                   D);
}

static void long_short_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                                const float *x) {
    LongShort *st = m->state;
    const int B = s->B, L = s->L, D = m->D, H = m->H, r = st->r, BL = B * L, Lk = r + L;
    const size_t DD = (size_t)D * D, mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dq = arena_floats(s->scratch, (size_t)BL * D);
    float *dkraw = arena_floats(s->scratch, (size_t)BL * D);
    float *dvraw = arena_floats(s->scratch, (size_t)BL * D);
    float *dkc = arena_floats(s->scratch, (size_t)B * Lk * D);
    float *dvc = arena_floats(s->scratch, (size_t)B * Lk * D);
    linear_backward(datt, mixer_grad(s, st->am.p_wo), mixer_grad(s, st->am.p_bo), dy, st->am.att,
                    mixer_param(s, st->am.p_wo), BL, D, D);
    if (s->mask)
        for (size_t i = 0; i < (size_t)BL; i++)
            if (!s->mask[i]) memset(datt + i * D, 0, (size_t)D * sizeof(float));
    AttnShape sh = ls_shape(m, B, L);
    attn_backward(dq, dkc, dvc, datt, st->q, st->kc, st->vc, st->am.att, st->am.lse, st->kmask, &sh,
                  s->scratch);
    if (r > 0) {
        float *dkbar = arena_floats(s->scratch, (size_t)B * r * D);
        float *dvbar = arena_floats(s->scratch, (size_t)B * r * D);
        float *dP = arena_floats(s->scratch, (size_t)BL * H * r);
        const float *sw = mixer_param(s, st->p_lnsw);
        float *gsw = mixer_grad(s, st->p_lnsw), *gsb = mixer_grad(s, st->p_lnsb);
        for (int b = 0; b < B; b++) {
            const size_t o = (size_t)b * r * D, c = (size_t)b * Lk * D;
            norm_rows_backward(dkbar + o, gsw, gsb, dkc + c, st->kbar + o, sw,
                               st->mks + (size_t)b * r, st->rks + (size_t)b * r, r, D, st->dual_ln);
            norm_rows_backward(dvbar + o, gsw, gsb, dvc + c, st->vbar + o, sw,
                               st->mvs + (size_t)b * r, st->rvs + (size_t)b * r, r, D, st->dual_ln);
        }
        project_landmarks_backward(dP, dkc, dkbar, st->P, st->kc, B, H, L, r, D);
        project_landmarks_backward(dP, dvc, dvbar, st->P, st->vc, B, H, L, r, D);
        landmark_softmax_backward(dP, st->P, B, L, H * r);
        linear_backward(dx, mixer_grad(s, st->p_wp), mixer_grad(s, st->p_bp), dP, x,
                        mixer_param(s, st->p_wp), BL, D, H * r);
    }
    const float *lw = mixer_param(s, st->p_lnlw);
    float *glw = mixer_grad(s, st->p_lnlw), *glb = mixer_grad(s, st->p_lnlb);
    for (int b = 0; b < B; b++) {
        const size_t o = (size_t)b * L * D, c = ((size_t)b * Lk + r) * D;
        norm_rows_backward(dkraw + o, glw, glb, dkc + c, st->kraw + o, lw, st->mk + (size_t)b * L,
                           st->rk + (size_t)b * L, L, D, st->dual_ln);
        norm_rows_backward(dvraw + o, glw, glb, dvc + c, st->vraw + o, lw, st->mv + (size_t)b * L,
                           st->rv + (size_t)b * L, L, D, st->dual_ln);
    }
    const float *W = mixer_param(s, st->am.p_wqkv);
    float *gW = mixer_grad(s, st->am.p_wqkv), *gb = mixer_grad(s, st->am.p_bqkv);
    linear_backward(dx, gblock(gW, 0, DD), gblock(gb, 0, D), dq, x, block(W, 0, DD), BL, D, D);
    linear_backward(dx, gblock(gW, 1, DD), gblock(gb, 1, D), dkraw, x, block(W, 1, DD), BL, D, D);
    linear_backward(dx, gblock(gW, 2, DD), gblock(gb, 2, D), dvraw, x, block(W, 2, DD), BL, D, D);
    arena_reset_to(s->scratch, mark);
}

static uint64_t long_short_flops(const Mixer *m, int B, int L, int backward) {
    const LongShort *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D, r = (uint64_t)st->r;
    const uint64_t proj = 8 * BL * D * D + 2 * BL * D * (uint64_t)m->H * r; /* Q K V O, W_P */
    const uint64_t land = 4 * BL * r * D;                                   /* Pᵀ K, Pᵀ V */
    AttnShape sh = ls_shape(m, B, L);
    return (backward ? 2 * (proj + land) : proj + land) + attn_flops(&sh, backward);
}

const MixerSpec mixer_long_short = {
    .name = "long_short",
    .classes = "FP+LR",
    .arxiv = "2107.02192",
    .title = "Long-Short Transformer: segment-wise sliding window + dynamic projection, DualLN, "
             "one softmax",
    .honours_mask = 1,
    MIXER_OPTS(long_short_opts),
    .ops = &(const MixerOps){MIXER_OPS(long_short), .check = long_short_check},
};
