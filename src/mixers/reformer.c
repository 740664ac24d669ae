/* reformer: LSH attention (Kitaev et al., arXiv 2001.04451, §2). Queries and keys are shared: the
 * key of token j is its query normalised, k_j = q_j/‖q_j‖. Each of `hashes` rounds draws a random
 * rotation R ∈ R^{Dh×n_b/2} (a fresh one every step, from the experiment seed) and hashes
 * h(x) = argmax([xR; −xR]) (§2, "angular LSH"); the tokens are stable-sorted by (bucket,
 * position), cut into chunks of `chunk`, and each chunk attends to itself and the chunk before it
 * (the first chunk to the last: the wrap of the paper's Fig. 2). A token does not attend to itself
 * unless nothing else is there (its logit gets −1e5, §2 "Shared-QK"). The rounds are combined by
 * their normalisers: o_i = Σ_r exp(z_i^r − logsumexp_r z_i^r)·o_i^r, z^r the row log-sum-exp
 * (§2.3 "Multi-round LSH attention"). Buckets default to 2·⌈L/chunk⌉ (the paper's n_b = 2L/m).
 * Padding tokens are given a bucket of their own after every real one, so they sort to the end
 * and cannot change where real tokens land; padding keys are masked.
 *
 * Sorting is done per (batch, head, round) with a counting sort; the sorted queries, keys and
 * values are gathered into contiguous sequences and attended with the fused kernel and a chunk
 * pattern; the backward recomputes nothing discrete (the permutations are kept), and reaches the
 * log-sum-exps through attn_backward_lse. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/flops.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "kernels/attention.h"
#include "kernels/gather.h"
#include "kernels/linear.h"
#include "mixers/mixer.h"

static const OptSpec reformer_opts[] = {
    {.name = "chunk",
     .type = OPT_INT,
     .def = 128,
     .min = 1,
     .max = 65536,
     .help = "chunk length m (Trax LSHSelfAttention: 128; LRA: 10)"},
    {.name = "buckets",
     .type = OPT_INT,
     .def = 0,
     .min = 0,
     .max = 65536,
     .help = "hash buckets n_b: 1, or even; 0 = 2·ceil(L/chunk), the paper's 2L/m (LRA: 10)"},
    {.name = "hashes",
     .type = OPT_INT,
     .def = 1,
     .min = 1,
     .max = 16,
     .help = "hashing rounds (LRA and Trax: 1; the paper's best: 8)"},
    {.name = "self_mask",
     .type = OPT_BOOL,
     .def = 1,
     .help = "a token attends to itself only when nothing else is in reach (the paper)"},
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the projections"},
};
#define NOPTS ((int)XB_ARRAY_LEN(reformer_opts))

/* The logit a token gets for itself (Trax's value: far below any real logit, yet finite so that
 * a token alone in reach still attends to itself). */
#define SELF_LOGIT (-1e5f)
/* Rows hashed per matrix product (bounds the per-thread projection buffer). */
enum { HASH_ROWS = 512 };

typedef struct ReformerState {
    int chunk, buckets_opt, R, self_mask, bias;
    int p_wqv, p_bqv, p_wo, p_bo;
    int Dh, NB; /* head width; buckets of the current length */
    AttnPattern pattern;
    /* saved by forward (NI = B·H·R items, one per batch row, head and round) */
    float *qv;                /* (B, L, 2D): queries then values */
    int *perm, *inv;          /* (NI, L): sorted index → position, and back */
    float *sq, *sk, *sv, *so; /* (NI, L, Dh): sorted queries, keys, values, outputs */
    float *lse;               /* (NI, L) */
    unsigned char *smask;     /* (NI, L) sorted key mask */
    float *att;               /* (B, L, D): the combined rounds, before the output projection */
    int planned_B, planned_L;
} ReformerState;

static int nbuckets(const ReformerState *st, int L) {
    if (st->buckets_opt > 0) return st->buckets_opt;
    return 2 * ((L + st->chunk - 1) / st->chunk);
}

/* Chunk c of the sorted sequence attends to chunk c−1 and itself; chunk 0 to itself and the last
 * chunk. */
static int ref_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h, (void)bq;
    const ReformerState *st = s->pattern->ctx;
    const int m = st->chunk, L = s->Lk, nch = (L + m - 1) / m, c = i0 / m;
    if (nch == 1) {
        lo[0] = 0, hi[0] = L;
        return 1;
    }
    if (c > 0) {
        lo[0] = (c - 1) * m, hi[0] = XB_MIN(L, (c + 1) * m);
        return 1;
    }
    lo[0] = 0, hi[0] = XB_MIN(L, m);
    if (nch == 2) { /* the last chunk is the next one: one range */
        hi[0] = L;
        return 1;
    }
    lo[1] = (nch - 1) * m, hi[1] = L;
    return 2;
}

/* The self logit: query i and key j are the same token when their sorted indices agree. */
static void ref_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk, float *bias,
                     int ld) {
    (void)s, (void)b, (void)h;
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++)
            bias[(size_t)r * ld + c] = i0 + r == j0 + c ? SELF_LOGIT : 0.0f;
}

static void reformer_create(Mixer *m, ParamTable *pt) {
    ReformerState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    st->chunk = opt_int(m->opts, reformer_opts, NOPTS, "chunk");
    st->buckets_opt = opt_int(m->opts, reformer_opts, NOPTS, "buckets");
    st->R = opt_int(m->opts, reformer_opts, NOPTS, "hashes");
    st->self_mask = opt_bool(m->opts, reformer_opts, NOPTS, "self_mask");
    st->bias = opt_bool(m->opts, reformer_opts, NOPTS, "bias");
    st->Dh = m->D / m->H;
    const int D = m->D;
    char name[XB_PARAM_NAME];
    /* shared-QK: one projection for queries (and keys), one for values; Xavier per D×D block */
    snprintf(name, sizeof name, "%s.qv.weight", m->prefix);
    st->p_wqv = params_add2(pt, name, 2 * D, D, INIT_UNIFORM, sqrtf(6.0f / (float)(2 * D)), 1);
    st->p_bqv = st->p_bo = -1;
    if (st->bias) {
        snprintf(name, sizeof name, "%s.qv.bias", m->prefix);
        st->p_bqv = params_add1(pt, name, 2 * D, INIT_ZEROS, 0, 0);
    }
    snprintf(name, sizeof name, "%s.out.weight", m->prefix);
    st->p_wo = params_add2(pt, name, D, D, INIT_XAVIER_UNIFORM, 0, 1);
    if (st->bias) {
        snprintf(name, sizeof name, "%s.out.bias", m->prefix);
        st->p_bo = params_add1(pt, name, D, INIT_ZEROS, 0, 0);
    }
    st->pattern = (AttnPattern){.bq = st->chunk,
                                .max_ranges = 2,
                                .ranges = ref_ranges,
                                .mask = st->self_mask ? ref_mask : NULL,
                                .ctx = st};
}

static int reformer_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H, (void)max_len;
    const int nb = opt_int(opts, reformer_opts, NOPTS, "buckets");
    if (nb > 1 && nb % 2) {
        snprintf(err->key, sizeof err->key, "model.mixer.buckets");
        snprintf(err->msg, sizeof err->msg,
                 "%d is odd (valid: 0 for 2·ceil(L/chunk), 1, or an even number: angular LSH "
                 "takes the argmax over [xR; -xR])",
                 nb);
        return -1;
    }
    return 0;
}

static AttnShape sorted_shape(const Mixer *m, int B, int L) {
    const ReformerState *st = m->state;
    const int Dh = st->Dh;
    AttnShape s = attn_shape(B * m->H * st->R, 1, L, L, Dh, Dh, Dh, Dh, Dh);
    s.pattern = &st->pattern;
    return s;
}

static void reformer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    ReformerState *st = m->state;
    const size_t BL = (size_t)B * L, NIL = BL * m->H * st->R, D = (size_t)m->D;
    st->qv = arena_floats(acts, BL * 2 * D);
    st->perm = arena_alloc(acts, NIL * sizeof(int));
    st->inv = arena_alloc(acts, NIL * sizeof(int));
    st->sq = arena_floats(acts, NIL * st->Dh);
    st->sk = arena_floats(acts, NIL * st->Dh);
    st->sv = arena_floats(acts, NIL * st->Dh);
    st->so = arena_floats(acts, NIL * st->Dh);
    st->lse = arena_floats(acts, NIL);
    st->smask = arena_alloc(acts, NIL);
    st->att = arena_floats(acts, BL * D);
    st->planned_B = B, st->planned_L = L;
    /* forward: the hashing buffers; backward: d(att), d(qv), and the sorted gradients */
    const int nt = omp_get_max_threads(), NB = XB_MAX(2, nbuckets(st, L));
    const size_t hash = (size_t)nt * ((size_t)HASH_ROWS * (NB / 2) + (size_t)L + NB + 2 + 16) +
                        (size_t)st->Dh * (NB / 2) * m->H * st->R;
    const size_t back = BL * D + BL * 2 * D + 4 * NIL * st->Dh + NIL + 16 * 8;
    AttnShape s = sorted_shape(m, B, L);
    arena_floats(scratch, XB_MAX(hash, back) + 64);
    arena_floats(scratch, attn_scratch_floats(&s, nt));
}

/* The buckets of every (b, h, round) and the permutations sorting them (hashing has no gradient).
 */
static void hash_and_sort(Mixer *m, const MixerStep *s) {
    ReformerState *st = m->state;
    const int B = s->B, L = s->L, H = m->H, R = st->R, Dh = st->Dh, D = m->D;
    const int NB = nbuckets(st, L), half = NB / 2, NI = B * H * R;
    st->NB = NB;
    const size_t mark = arena_mark(s->scratch);
    /* rotations (H, R, Dh, half), drawn per layer and step: a new hash every step as the paper */
    float *rot = NULL;
    if (NB > 1) {
        rot = arena_floats(s->scratch, (size_t)H * R * Dh * half);
        Rng r;
        const int64_t t = s->training ? s->step : 0; /* evaluation: one fixed hash */
        rng_seed(&r, rng_mix64(s->seed ^ rng_mix64(((uint64_t)m->layer << 48) ^ (uint64_t)t)),
                 RNG_STREAM_MIXER);
        for (size_t k = 0; k < (size_t)H * R * Dh * half; k++) rot[k] = rng_normal(&r);
    }
    const int nt = omp_get_max_threads();
    float *proj = arena_floats(s->scratch, (size_t)nt * HASH_ROWS * XB_MAX(1, half) + 16);
    int *bucket = arena_alloc(s->scratch, (size_t)nt * L * sizeof(int));
    int *work = arena_alloc(s->scratch, (size_t)nt * (NB + 2) * sizeof(int));
    uint64_t done = 0;
#pragma omp parallel for schedule(static) reduction(+ : done)
    for (int it = 0; it < NI; it++) {
        const int b = it / (H * R), h = it / R % H, r = it % R, t = omp_get_thread_num();
        int *bk = bucket + (size_t)t * L;
        const float *q = st->qv + (size_t)b * L * 2 * D + (size_t)h * Dh;
        for (int i0 = 0; i0 < L; i0 += HASH_ROWS) {
            const int n = XB_MIN(HASH_ROWS, L - i0);
            if (NB == 1) {
                for (int i = 0; i < n; i++) bk[i0 + i] = 0;
                continue;
            }
            float *xr = proj + (size_t)t * HASH_ROWS * half;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, half, Dh, 1.0f,
                        q + (size_t)i0 * 2 * D, 2 * D, rot + ((size_t)h * R + r) * Dh * half, half,
                        0.0f, xr, half);
            done += 2ull * (uint64_t)n * (uint64_t)Dh * (uint64_t)half;
            for (int i = 0; i < n; i++) { /* argmax over [xR; −xR], first maximum */
                const float *v = xr + (size_t)i * half;
                int best = 0;
                float bv = v[0];
                for (int c = 1; c < half; c++)
                    if (v[c] > bv) bv = v[c], best = c;
                for (int c = 0; c < half; c++)
                    if (-v[c] > bv) bv = -v[c], best = half + c;
                bk[i0 + i] = best;
            }
        }
        if (s->mask) /* padding after every real bucket */
            for (int i = 0; i < L; i++)
                if (!s->mask[(size_t)b * L + i]) bk[i] = NB;
        int *perm = st->perm + (size_t)it * L;
        sort_by_key(bk, L, NB + 1, perm, work + (size_t)t * (NB + 2));
        invert_perm(perm, L, st->inv + (size_t)it * L);
    }
    flops_add(done);
    arena_reset_to(s->scratch, mark);
}

static void reformer_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    ReformerState *st = m->state;
    const int B = s->B, L = s->L, H = m->H, R = st->R, Dh = st->Dh, D = m->D, BL = B * L;
    const int NI = B * H * R;
    linear_forward(st->qv, x, mixer_param(s, st->p_wqv), mixer_param(s, st->p_bqv), BL, D, 2 * D);
    if (!s->frozen || st->NB == 0) hash_and_sort(m, s);
        /* the sorted sequences: queries, unit keys, values and the key mask */
#pragma omp parallel for schedule(static)
    for (int it = 0; it < NI; it++) {
        const int b = it / (H * R), h = it / R % H;
        const int *perm = st->perm + (size_t)it * L;
        const size_t o = (size_t)it * L * Dh;
        const float *base = st->qv + (size_t)b * L * 2 * D + (size_t)h * Dh;
        gather_rows(st->sq + o, Dh, base, 2 * D, perm, L, Dh);
        gather_rows(st->sv + o, Dh, base + D, 2 * D, perm, L, Dh);
        for (int i = 0; i < L; i++) {
            const float *qi = st->sq + o + (size_t)i * Dh;
            float *ki = st->sk + o + (size_t)i * Dh;
            float n2 = 0.0f;
            for (int d = 0; d < Dh; d++) n2 += qi[d] * qi[d];
            const float inv = 1.0f / fmaxf(sqrtf(n2), 1e-6f);
            for (int d = 0; d < Dh; d++) ki[d] = qi[d] * inv;
            st->smask[(size_t)it * L + i] = s->mask ? s->mask[(size_t)b * L + perm[i]] : 1;
        }
    }
    AttnShape sh = sorted_shape(m, B, L);
    attn_forward(st->so, st->lse, st->sq, st->sk, st->sv, st->smask, &sh, s->scratch);
    /* combine the rounds by their log-sum-exps */
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < BL; bi++) {
        const int b = bi / L, i = bi % L;
        for (int h = 0; h < H; h++) {
            const int it0 = (b * H + h) * R;
            float mx = -INFINITY, w[16];
            for (int r = 0; r < R; r++) {
                const int si = st->inv[(size_t)(it0 + r) * L + i];
                w[r] = st->lse[(size_t)(it0 + r) * L + si];
                mx = fmaxf(mx, w[r]);
            }
            float sum = 0.0f;
            for (int r = 0; r < R; r++) sum += (w[r] = mx == -INFINITY ? 0.0f : expf(w[r] - mx));
            float *a = st->att + (size_t)bi * D + (size_t)h * Dh;
            for (int d = 0; d < Dh; d++) a[d] = 0.0f;
            for (int r = 0; r < R; r++) {
                if (w[r] == 0.0f) continue;
                const float wr = w[r] / sum;
                const float *o =
                    st->so + ((size_t)(it0 + r) * L + st->inv[(size_t)(it0 + r) * L + i]) * Dh;
                for (int d = 0; d < Dh; d++) a[d] += wr * o[d];
            }
        }
    }
    linear_forward(y, st->att, mixer_param(s, st->p_wo), mixer_param(s, st->p_bo), BL, D, D);
}

static void reformer_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                              const float *x) {
    ReformerState *st = m->state;
    const int B = s->B, L = s->L, H = m->H, R = st->R, Dh = st->Dh, D = m->D, BL = B * L;
    const int NI = B * H * R;
    const size_t NIL = (size_t)NI * L;
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dqv = arena_floats(s->scratch, (size_t)BL * 2 * D);
    float *dso = arena_floats(s->scratch, NIL * Dh);
    float *dsq = arena_floats(s->scratch, NIL * Dh);
    float *dsk = arena_floats(s->scratch, NIL * Dh);
    float *dsv = arena_floats(s->scratch, NIL * Dh);
    float *dlse = arena_floats(s->scratch, NIL);
    memset(datt, 0, (size_t)BL * D * sizeof(float));
    linear_backward(datt, mixer_grad(s, st->p_wo), mixer_grad(s, st->p_bo), dy, st->att,
                    mixer_param(s, st->p_wo), BL, D, D);
    /* through the combination: d o^r = w_r dO, d z^r = w_r (dO·(o^r − o)) */
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < BL; bi++) {
        const int b = bi / L, i = bi % L;
        for (int h = 0; h < H; h++) {
            const int it0 = (b * H + h) * R;
            float mx = -INFINITY, w[16];
            for (int r = 0; r < R; r++) {
                w[r] = st->lse[(size_t)(it0 + r) * L + st->inv[(size_t)(it0 + r) * L + i]];
                mx = fmaxf(mx, w[r]);
            }
            float sum = 0.0f;
            for (int r = 0; r < R; r++) sum += (w[r] = mx == -INFINITY ? 0.0f : expf(w[r] - mx));
            const float *g = datt + (size_t)bi * D + (size_t)h * Dh;
            const float *a = st->att + (size_t)bi * D + (size_t)h * Dh;
            for (int r = 0; r < R; r++) {
                const size_t row = (size_t)(it0 + r) * L + st->inv[(size_t)(it0 + r) * L + i];
                const float wr = w[r] == 0.0f ? 0.0f : w[r] / sum;
                const float *o = st->so + row * Dh;
                float *d = dso + row * Dh, dz = 0.0f;
                for (int k = 0; k < Dh; k++) {
                    d[k] = wr * g[k];
                    dz += g[k] * (o[k] - a[k]);
                }
                dlse[row] = wr * dz;
            }
        }
    }
    memset(dsq, 0, NIL * Dh * sizeof(float));
    memset(dsk, 0, NIL * Dh * sizeof(float));
    memset(dsv, 0, NIL * Dh * sizeof(float));
    AttnShape sh = sorted_shape(m, B, L);
    attn_backward_lse(dsq, dsk, dsv, dso, dlse, st->sq, st->sk, st->sv, st->so, st->lse, st->smask,
                      &sh, s->scratch);
    /* k = q/‖q‖: dq += (dk − k (k·dk))/‖q‖; then back to the positions, rounds in order */
    memset(dqv, 0, (size_t)BL * 2 * D * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        for (int r = 0; r < R; r++) {
            const size_t it = (size_t)bh * R + r, o = it * L * Dh;
            for (int i = 0; i < L; i++) {
                const float *qi = st->sq + o + (size_t)i * Dh, *ki = st->sk + o + (size_t)i * Dh;
                float *dki = dsk + o + (size_t)i * Dh, *dqi = dsq + o + (size_t)i * Dh;
                float n2 = 0.0f, kd = 0.0f;
                for (int d = 0; d < Dh; d++) n2 += qi[d] * qi[d], kd += ki[d] * dki[d];
                const float n = sqrtf(n2);
                if (n > 1e-6f)
                    for (int d = 0; d < Dh; d++) dqi[d] += (dki[d] - ki[d] * kd) / n;
                else
                    for (int d = 0; d < Dh; d++) dqi[d] += dki[d] / 1e-6f;
            }
            const int *perm = st->perm + it * L;
            float *base = dqv + (size_t)b * L * 2 * D + (size_t)h * Dh;
            scatter_add_rows(base, 2 * D, dsq + o, Dh, perm, L, Dh, 0);
            scatter_add_rows(base + D, 2 * D, dsv + o, Dh, perm, L, Dh, 0);
        }
    }
    linear_backward(dx, mixer_grad(s, st->p_wqv), mixer_grad(s, st->p_bqv), dqv, x,
                    mixer_param(s, st->p_wqv), BL, D, 2 * D);
    arena_reset_to(s->scratch, mark);
}

static uint64_t reformer_flops(const Mixer *m, int B, int L, int backward) {
    const ReformerState *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    const uint64_t proj = 2 * BL * D * 2 * D + 2 * BL * D * D;
    const int NB = nbuckets(st, L);
    const uint64_t hash =
        NB > 1 ? 2ull * BL * m->H * st->R * (uint64_t)st->Dh * (uint64_t)(NB / 2) : 0;
    AttnShape sh = sorted_shape(m, B, L);
    return (backward ? 2 * proj : proj + hash) + attn_flops(&sh, backward);
}

static void reformer_destroy(Mixer *m) { free(m->state); }

static const MixerOps reformer_ops = {
    .check = reformer_check,
    .create = reformer_create,
    .plan = reformer_plan,
    .forward = reformer_forward,
    .backward = reformer_backward,
    .flops = reformer_flops,
    .destroy = reformer_destroy,
};

const MixerSpec mixer_reformer = {
    .name = "reformer",
    .classes = "LP",
    .arxiv = "2001.04451",
    .title =
        "Reformer: shared-QK LSH attention, sorted into chunks, rounds combined by log-sum-exp",
    .honours_mask = 1,
    .opts = reformer_opts,
    .n_opts = NOPTS,
    .ops = &reformer_ops,
};
