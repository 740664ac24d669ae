/* reformer: LSH attention (Kitaev et al., arXiv 2001.04451, §2). Queries and keys are shared: the
 * key of token j is its query normalised, k_j = q_j/‖q_j‖. Each of `hashes` rounds draws a random
 * rotation R ∈ R^{Dh×n_b/2} (a fresh one every training step, from the experiment seed) and hashes
 * h(x) = argmax([xR; −xR]) (§2, "angular LSH"); the tokens are stable-sorted by (bucket,
 * position), cut into chunks of `chunk`, and each chunk looks at itself and the chunk before it
 * (the first chunk at the last: the wrap of Trax's look_one_back). Buckets default to
 * 2·⌈L/chunk⌉ (the paper's n_b = 2l/m; Trax's LSHSelfAttention.hash_vectors, 2·max(1, L//chunk)).
 *
 * Within that window a query attends only to the keys of its own bucket (eq. 3: P̃_i ⊆ {j :
 * h(q_i) = h(k_j)}), and to itself only when nothing else is there: the self logit gets −1e5
 * (§2 "Shared-QK"). With several rounds, a pair that N_ij rounds attend would be counted N_ij
 * times; its logit is lowered by log N_ij in each (§2.3, m^{(r)}_{i,j} = log N_{i,j}), and the
 * rounds are combined by their normalisers, o_i = Σ_r exp(z_i^r − logsumexp_r z_i^r)·o_i^r, so
 * the result is one softmax over the union of the rounds' pairs. This is what the paper's code
 * ran: Trax's LSHCausalAttention (trax/layers/research/efficient_attention.py before commit
 * f3e11e5e, "Remove efficient attention v1"), whose defaults attend_across_buckets=False and
 * allow_duplicate_attention=False mask other buckets (−1e7) and subtract stop_gradient(log
 * dup_counts); N_ij is a constant here too. Trax's later LSHSelfAttention dropped both
 * (same_bucket = false, dedup = false). Two departures: Trax v1 chunks the rounds' sorted
 * sequences as one, so the first chunk of round r looks back at round r − 1's last chunk, which
 * the round offset of its buckets hides; here each round wraps to its own last chunk, which
 * differs only when one bucket holds a whole round. And Trax LSHCausalAttention is causal; this
 * is the encoder form (LSHSelfAttention with causal=False).
 *
 * Padding tokens are given a bucket of their own after every real one (LSHSelfAttention's extra
 * bucket), so they sort to the end and cannot change where real tokens land; padding keys are
 * masked. The bucket count (when 0) and the wrap use the padded length L, as in Trax.
 *
 * `lra` runs LRA's ReformerAttention (lra_benchmarks/models/reformer/reformer_attention.py,
 * lsh_attention_single_head): the rotation comes from a fixed key (jax.random.PRNGKey(0)), the
 * same for every layer, head and step; keys are the raw queries (length_norm=False) and the
 * logits are multiplied by √d_h (`* (qdim ** 0.5)`); no self mask, no bucket restriction, no
 * duplicate correction; each round is cut into n_b chunks (chunk_size = n_hashes·n_buckets
 * chunks over the rounds), so chunks are ⌈L/n_b⌉ long; n_b defaults to LRA's 10; and there is no
 * output projection. Not reproduced: LRA ignores its padding_mask (its padding tokens are keys
 * like any other) and pads L to a multiple of chunk_len = 10 (one whole extra chunk when L already
 * is one); here padding stays masked.
 *
 * Sorting is done per (batch, head, round) with a counting sort; the sorted queries, keys and
 * values are gathered into contiguous sequences and attended with the fused kernel, a chunk
 * pattern and a mask (buckets, self, log N_ij) computed from the kept sort; the backward
 * recomputes nothing discrete, and reaches the log-sum-exps through attn_backward_lse. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xassert.h"
#include "kernels/attention.h"
#include "kernels/gather.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "mixers/mixer.h"
#include "mixers/reformer.h"

/* Rows hashed per matrix product (bounds the per-thread projection buffer); the most hashing
 * rounds, the option's maximum and the size of the per-round arrays (w, cp, bp, log_count). */
enum { HASH_ROWS = 512, MAX_HASHES = 16 };

static const OptSpec reformer_opts[] = {
    MOPT_INT("chunk", 128, 1, 65536,
             "chunk length m (Trax LSHSelfAttention: 128); unused with lra"),
    MOPT_INT("buckets", 0, 0, 65536,
             "hash buckets n_b: 1, or even; 0 = 2·ceil(L/chunk) of the padded length L, the "
             "paper's 2l/m (with lra: 10, LRA's n_buckets)"),
    MOPT_INT("hashes", 1, 1, MAX_HASHES, "hashing rounds (LRA and Trax: 1; the paper's best: 8)"),
    MOPT_BOOL("self_mask", 1,
              "a token attends to itself only when nothing else is in reach (the paper, Trax)"),
    MOPT_BOOL("same_bucket", 1,
              "attend only to keys of the query's own bucket within the chunk window (the paper's "
              "eq. 3; Trax LSHCausalAttention attend_across_buckets=False); false: any key of the "
              "window (Trax's later LSHSelfAttention)"),
    MOPT_BOOL("dedup", 1,
              "lower the logit of a pair that N rounds attend by log N (the paper's §2.3; Trax "
              "LSHCausalAttention allow_duplicate_attention=False); false: count it N times"),
    MOPT_BOOL("lra", 0,
              "what LRA's Table 1 ran (lra_benchmarks reformer_attention.py): one fixed hashing "
              "key for all layers, heads and steps; raw queries as keys, logits times sqrt(d_h); "
              "no self mask, bucket restriction or dedup; n_b chunks per round; no output "
              "projection (padding stays masked)"),
    MOPT_BOOL("bias", 0, "biases in the projections"),
};
#define NOPTS MOPT_COUNT(reformer_opts)

/* The logit a token gets for itself (Trax's value: far below any real logit, yet finite so that
 * a token alone in reach still attends to itself). */
#define SELF_LOGIT (-1e5f)
/* LRA's hashing key: jax.random.PRNGKey(0) in lsh_attention_single_head, whatever the seed. */
#define LRA_HASH_SEED 0u
/* LRA's n_buckets (ReformerAttention's default, which its configs keep). */
enum { LRA_BUCKETS = 10 };

typedef struct ReformerState {
    int chunk, buckets_opt, R, self_mask, same_bucket, dedup, lra, bias;
    int p_wqv, p_bqv, p_wo, p_bo;
    int Dh, NB;          /* head width; buckets of the last forward */
    AttnPattern pattern; /* template; sorted_shape sets bq to the chunk length of the call */
    float log_count[MAX_HASHES + 1]; /* log N for N = 0..R */
    /* saved by forward (NI = B·H·R items, one per batch row, head and round) */
    float *qv;                /* (B, L, 2D): queries then values */
    int *perm, *inv;          /* (NI, L): sorted index → position, and back */
    int *sbkt;                /* (NI, L): the bucket at each sorted index */
    int *pbkt, *pchunk;       /* (NI, L): the bucket and the chunk of each position */
    float *sq, *sk, *sv, *so; /* (NI, L, Dh): sorted queries, keys, values, outputs */
    float *lse;               /* (NI, L) */
    unsigned char *smask;     /* (NI, L) sorted key mask */
    float *att;               /* (B, L, D): the combined rounds, before the output projection */
} ReformerState;

static int nbuckets(const ReformerState *st, int L) {
    if (st->buckets_opt > 0) return st->buckets_opt;
    if (st->lra) return LRA_BUCKETS;
    return 2 * ((L + st->chunk - 1) / st->chunk);
}

/* The chunk length at length L: `chunk`, or with lra ⌈L/n_b⌉ (n_b chunks per round). */
static int chunk_len(const ReformerState *st, int L) {
    if (!st->lra) return st->chunk;
    const int nb = nbuckets(st, L);
    return (L + nb - 1) / nb;
}

/* Chunk c of the sorted sequence attends to chunk c−1 and itself; chunk 0 to itself and the last
 * chunk. The chunk length is the pattern's tile height. */
static int ref_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h, (void)bq;
    const int m = s->pattern->bq, L = s->Lk, nch = (L + m - 1) / m, c = i0 / m;
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

/* The mask of a tile of sorted item `b` (one batch row, head and round):
 *   −inf         when the key's bucket is not the query's (same_bucket),
 *   −1e5         added for the token itself (self_mask),
 *   −log N_ij    added when N_ij > 1 rounds attend the pair (dedup),
 * the paper's m^{(r)}_{i,j} (§2.3). N_ij counts the rounds whose attended set holds the pair: key
 * q in the chunk window of query p and, with same_bucket, in p's bucket. The tile's own round
 * always does (its keys are the window, other buckets are −inf), the others are looked up by
 * position in pchunk and pbkt. */
static void ref_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk, float *bias,
                     int ld) {
    (void)h;
    const ReformerState *st = s->pattern->ctx;
    const int L = s->Lk, m = s->pattern->bq, nch = (L + m - 1) / m, R = st->R;
    const int it0 = b - b % R, self = b % R;
    const size_t o = (size_t)b * L;
    const int *sb = st->sbkt + o, *perm = st->perm + o;
    const int count = st->dedup && R > 1;
    for (int r = 0; r < bq; r++) {
        const int i = i0 + r, p = perm[i];
        float *row = bias + (size_t)r * ld;
        int cp[MAX_HASHES], bp[MAX_HASHES]; /* p's chunk and bucket in every round */
        for (int k = 0; count && k < R; k++) {
            cp[k] = st->pchunk[(size_t)(it0 + k) * L + p];
            bp[k] = st->pbkt[(size_t)(it0 + k) * L + p];
        }
        for (int c = 0; c < bk; c++) {
            const int j = j0 + c;
            if (st->same_bucket && sb[i] != sb[j]) {
                row[c] = -INFINITY;
                continue;
            }
            float v = st->self_mask && i == j ? SELF_LOGIT : 0.0f;
            if (count) {
                const int q = perm[j];
                int n = 1;
                for (int k = 0; k < R; k++) {
                    if (k == self) continue;
                    const size_t ok = (size_t)(it0 + k) * L + q;
                    const int cq = st->pchunk[ok];
                    n += (!st->same_bucket || st->pbkt[ok] == bp[k]) &&
                         (cq == cp[k] || cq == (cp[k] > 0 ? cp[k] - 1 : nch - 1));
                }
                v -= st->log_count[n];
            }
            row[c] = v;
        }
    }
}

static void reformer_create(Mixer *m, ParamTable *pt) {
    ReformerState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    st->chunk = opt_int(m->opts, reformer_opts, NOPTS, "chunk");
    st->buckets_opt = opt_int(m->opts, reformer_opts, NOPTS, "buckets");
    st->R = opt_int(m->opts, reformer_opts, NOPTS, "hashes");
    st->lra = opt_bool(m->opts, reformer_opts, NOPTS, "lra");
    st->self_mask = !st->lra && opt_bool(m->opts, reformer_opts, NOPTS, "self_mask");
    st->same_bucket = !st->lra && opt_bool(m->opts, reformer_opts, NOPTS, "same_bucket");
    st->dedup = !st->lra && opt_bool(m->opts, reformer_opts, NOPTS, "dedup");
    st->bias = opt_bool(m->opts, reformer_opts, NOPTS, "bias");
    st->Dh = m->D / m->H;
    XB_ASSERT(st->R <= MAX_HASHES);
    st->log_count[0] = 0.0f; /* never used: an attended pair has N >= 1 */
    for (int n = 1; n <= MAX_HASHES; n++) st->log_count[n] = logf((float)n);
    const int D = m->D;
    /* shared-QK: one projection for queries (and keys), one for values; Xavier per D×D block */
    st->p_wqv = params_add2f(pt, 2 * D, D, INIT_UNIFORM, sqrtf(6.0f / (float)(2 * D)), 1,
                             "%s.qv.weight", m->prefix);
    st->p_bqv = st->p_wo = st->p_bo = -1;
    if (st->bias) {
        st->p_bqv = params_add1f(pt, 2 * D, INIT_ZEROS, 0, 0, "%s.qv.bias", m->prefix);
    }
    if (!st->lra) { /* LRA's ReformerAttention returns the heads without an output projection */
        st->p_wo = params_add2f(pt, D, D, INIT_XAVIER_UNIFORM, 0, 1, "%s.out.weight", m->prefix);
        if (st->bias) {
            st->p_bo = params_add1f(pt, D, INIT_ZEROS, 0, 0, "%s.out.bias", m->prefix);
        }
    }
    const int masked = st->self_mask || st->same_bucket || (st->dedup && st->R > 1);
    st->pattern = (AttnPattern){.bq = st->chunk,
                                .max_ranges = 2,
                                .ranges = ref_ranges,
                                .mask = masked ? ref_mask : NULL,
                                .ctx = st};
}

static int reformer_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H, (void)max_len;
    const int nb = opt_int(opts, reformer_opts, NOPTS, "buckets");
    if (nb > 1 && nb % 2) {
        return mixer_opt_error(
            err, "buckets",
            "%d is odd (valid: 0 for 2·ceil(L/chunk), 1, or an even number: angular LSH "
            "takes the argmax over [xR; -xR])",
            nb);
    }
    if (!opt_bool(opts, reformer_opts, NOPTS, "lra")) return 0;
    /* lra is LRA's attention as a whole: reject settings it does not have */
    static const char *const off[] = {"self_mask", "same_bucket", "dedup"};
    for (size_t k = 0; k < XB_ARRAY_LEN(off); k++)
        if (opt_bool(opts, reformer_opts, NOPTS, off[k])) {
            const int i = opt_index(reformer_opts, NOPTS, off[k]);
            if (!opts->set[i]) continue; /* the default, overridden by lra */
            return mixer_opt_error(
                err, off[k], "LRA's Reformer attention has no %s (valid with lra: false, or unset)",
                off[k]);
        }
    if (opts->set[opt_index(reformer_opts, NOPTS, "chunk")]) {
        return mixer_opt_error(
            err, "chunk",
            "LRA cuts each round into n_b chunks of ceil(L/n_b) (valid with lra: unset; "
            "choose buckets instead)");
    }
    return 0;
}

/* The shape of the sorted items at (B, L), with *pat the pattern at that length. */
static AttnShape sorted_shape(const Mixer *m, int B, int L, AttnPattern *pat) {
    const ReformerState *st = m->state;
    const int Dh = st->Dh;
    AttnShape s = attn_shape(B * m->H * st->R, 1, L, L, Dh, Dh, Dh, Dh, Dh);
    *pat = st->pattern;
    pat->bq = chunk_len(st, L);
    s.pattern = pat;
    if (st->lra) s.scale = sqrtf((float)Dh); /* LRA: dots * (qdim ** 0.5) */
    return s;
}

static void reformer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    ReformerState *st = m->state;
    const size_t BL = (size_t)B * L, NIL = BL * m->H * st->R, D = (size_t)m->D;
    st->qv = arena_floats(acts, BL * 2 * D);
    st->perm = arena_alloc(acts, NIL * sizeof(int));
    st->inv = arena_alloc(acts, NIL * sizeof(int));
    st->sbkt = arena_alloc(acts, NIL * sizeof(int));
    st->pbkt = arena_alloc(acts, NIL * sizeof(int));
    st->pchunk = arena_alloc(acts, NIL * sizeof(int));
    st->sq = arena_floats(acts, NIL * st->Dh);
    st->sk = arena_floats(acts, NIL * st->Dh);
    st->sv = arena_floats(acts, NIL * st->Dh);
    st->so = arena_floats(acts, NIL * st->Dh);
    st->lse = arena_floats(acts, NIL);
    st->smask = arena_alloc(acts, NIL);
    st->att = arena_floats(acts, BL * D);
    /* forward: the hashing buffers; backward: d(att), d(qv), and the sorted gradients */
    const int nt = omp_get_max_threads(), NB = XB_MAX(2, nbuckets(st, L));
    const size_t hash = (size_t)nt * ((size_t)HASH_ROWS * (NB / 2) + (size_t)L + NB + 2 + 16) +
                        (size_t)st->Dh * (NB / 2) * m->H * st->R;
    const size_t back = BL * D + BL * 2 * D + 4 * NIL * st->Dh + NIL + 16 * 8;
    AttnPattern pat;
    AttnShape s = sorted_shape(m, B, L, &pat);
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
    /* rotations (H, R, Dh, half): drawn per layer and training step, a new hash every step as in
     * the paper; with lra one fixed draw for every layer, head and step, as LRA's PRNGKey(0) */
    float *rot = NULL;
    if (NB > 1) {
        const size_t per_head = (size_t)R * Dh * half;
        rot = arena_floats(s->scratch, (size_t)H * per_head);
        Rng r;
        if (st->lra) {
            rng_seed(&r, LRA_HASH_SEED, RNG_STREAM_MIXER);
            for (size_t k = 0; k < per_head; k++) rot[k] = rng_normal(&r);
            for (int h = 1; h < H; h++) memcpy(rot + h * per_head, rot, per_head * sizeof(float));
        } else {
            const int64_t t = s->training ? s->step : 0; /* evaluation: one fixed hash */
            rng_seed(&r, rng_mix64(s->seed ^ rng_mix64(((uint64_t)m->layer << 48) ^ (uint64_t)t)),
                     RNG_STREAM_MIXER);
            for (size_t k = 0; k < (size_t)H * per_head; k++) rot[k] = rng_normal(&r);
        }
    }
    const int nt = omp_get_max_threads();
    float *proj = arena_floats(s->scratch, (size_t)nt * HASH_ROWS * XB_MAX(1, half) + 16);
    int *bucket = arena_alloc(s->scratch, (size_t)nt * L * sizeof(int));
    int *work = arena_alloc(s->scratch, (size_t)nt * (NB + 2) * sizeof(int));
#pragma omp parallel for schedule(static)
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
            matmul_strided(xr, half, q + (size_t)i0 * 2 * D, 2 * D,
                           rot + ((size_t)h * R + r) * Dh * half, half, n, half, Dh, MM_NN, 1.0f,
                           0.0f);
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
        int *perm = st->perm + (size_t)it * L, *sb = st->sbkt + (size_t)it * L;
        sort_by_key(bk, L, NB + 1, perm, work + (size_t)t * (NB + 2));
        invert_perm(perm, L, st->inv + (size_t)it * L);
        for (int i = 0; i < L; i++) sb[i] = bk[perm[i]];
        memcpy(st->pbkt + (size_t)it * L, bk, (size_t)L * sizeof(int));
    }
    arena_reset_to(s->scratch, mark);
}

int reformer_buckets(const Mixer *m, int B, int L, int *bucket) {
    const ReformerState *st = m->state;
    const size_t NI = (size_t)B * m->H * st->R;
    for (size_t it = 0; it < NI; it++)
        for (int p = 0; p < L; p++) bucket[it * L + p] = st->sbkt[it * L + st->inv[it * L + p]];
    return st->NB;
}

/* Combination weights of the rounds of (b, h) at position i: w_r = exp(z^r − logsumexp_r z^r),
 * z^r the round's row log-sum-exp (0 for a round that saw no key). */
static void round_weights(const ReformerState *st, int it0, int L, int i, float *w) {
    float mx = -INFINITY;
    for (int r = 0; r < st->R; r++) {
        w[r] = st->lse[(size_t)(it0 + r) * L + st->inv[(size_t)(it0 + r) * L + i]];
        mx = fmaxf(mx, w[r]);
    }
    float sum = 0.0f;
    for (int r = 0; r < st->R; r++) sum += (w[r] = mx == -INFINITY ? 0.0f : expf(w[r] - mx));
    for (int r = 0; r < st->R; r++) w[r] = w[r] == 0.0f ? 0.0f : w[r] / sum;
}

static void reformer_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    ReformerState *st = m->state;
    const int B = s->B, L = s->L, H = m->H, R = st->R, Dh = st->Dh, D = m->D, BL = B * L;
    const int NI = B * H * R;
    linear_forward(st->qv, x, mixer_param(s, st->p_wqv), mixer_param(s, st->p_bqv), BL, D, 2 * D);
    const int m_len = chunk_len(st, L);
    if (!s->frozen || st->NB == 0) hash_and_sort(m, s);
        /* the sorted sequences: queries, keys (unit, or with lra the raw queries), values and the
         * key mask */
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
            const float inv = st->lra ? 1.0f : 1.0f / fmaxf(sqrtf(n2), 1e-6f);
            for (int d = 0; d < Dh; d++) ki[d] = qi[d] * inv;
            st->smask[(size_t)it * L + i] = s->mask ? s->mask[(size_t)b * L + perm[i]] : 1;
        }
        const int *inv = st->inv + (size_t)it * L;
        for (int p = 0; p < L; p++) st->pchunk[(size_t)it * L + p] = inv[p] / m_len;
    }
    AttnPattern pat;
    AttnShape sh = sorted_shape(m, B, L, &pat);
    attn_forward(st->so, st->lse, st->sq, st->sk, st->sv, st->smask, &sh, s->scratch);
    /* combine the rounds by their log-sum-exps */
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < BL; bi++) {
        const int b = bi / L, i = bi % L;
        for (int h = 0; h < H; h++) {
            const int it0 = (b * H + h) * R;
            float w[MAX_HASHES];
            round_weights(st, it0, L, i, w);
            float *a = st->att + (size_t)bi * D + (size_t)h * Dh;
            for (int d = 0; d < Dh; d++) a[d] = 0.0f;
            for (int r = 0; r < R; r++) {
                if (w[r] == 0.0f) continue;
                const float *o =
                    st->so + ((size_t)(it0 + r) * L + st->inv[(size_t)(it0 + r) * L + i]) * Dh;
                for (int d = 0; d < Dh; d++) a[d] += w[r] * o[d];
            }
        }
    }
    if (st->lra)
        memcpy(y, st->att, (size_t)BL * D * sizeof(float));
    else
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
    if (st->lra)
        memcpy(datt, dy, (size_t)BL * D * sizeof(float));
    else {
        memset(datt, 0, (size_t)BL * D * sizeof(float));
        linear_backward(datt, mixer_grad(s, st->p_wo), mixer_grad(s, st->p_bo), dy, st->att,
                        mixer_param(s, st->p_wo), BL, D, D);
    }
    /* through the combination: d o^r = w_r dO, d z^r = w_r (dO·(o^r − o)) */
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < BL; bi++) {
        const int b = bi / L, i = bi % L;
        for (int h = 0; h < H; h++) {
            const int it0 = (b * H + h) * R;
            float w[MAX_HASHES];
            round_weights(st, it0, L, i, w);
            const float *g = datt + (size_t)bi * D + (size_t)h * Dh;
            const float *a = st->att + (size_t)bi * D + (size_t)h * Dh;
            for (int r = 0; r < R; r++) {
                const size_t row = (size_t)(it0 + r) * L + st->inv[(size_t)(it0 + r) * L + i];
                const float *o = st->so + row * Dh;
                float *d = dso + row * Dh, dz = 0.0f;
                for (int k = 0; k < Dh; k++) {
                    d[k] = w[r] * g[k];
                    dz += g[k] * (o[k] - a[k]);
                }
                dlse[row] = w[r] * dz;
            }
        }
    }
    memset(dsq, 0, NIL * Dh * sizeof(float));
    memset(dsk, 0, NIL * Dh * sizeof(float));
    memset(dsv, 0, NIL * Dh * sizeof(float));
    AttnPattern pat;
    AttnShape sh = sorted_shape(m, B, L, &pat);
    attn_backward_lse(dsq, dsk, dsv, dso, dlse, st->sq, st->sk, st->sv, st->so, st->lse, st->smask,
                      &sh, s->scratch);
    /* k = q/‖q‖: dq += (dk − k (k·dk))/‖q‖ (with lra k = q: dq += dk); then back to the
     * positions, rounds in order */
    memset(dqv, 0, (size_t)BL * 2 * D * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        for (int r = 0; r < R; r++) {
            const size_t it = (size_t)bh * R + r, o = it * L * Dh;
            for (int i = 0; i < L; i++) {
                const float *qi = st->sq + o + (size_t)i * Dh, *ki = st->sk + o + (size_t)i * Dh;
                float *dki = dsk + o + (size_t)i * Dh, *dqi = dsq + o + (size_t)i * Dh;
                if (st->lra) {
                    for (int d = 0; d < Dh; d++) dqi[d] += dki[d];
                    continue;
                }
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
    const uint64_t proj = 2 * BL * D * 2 * D + (st->lra ? 0 : 2 * BL * D * D);
    const int NB = nbuckets(st, L);
    const uint64_t hash =
        NB > 1 ? 2ull * BL * m->H * st->R * (uint64_t)st->Dh * (uint64_t)(NB / 2) : 0;
    AttnPattern pat;
    AttnShape sh = sorted_shape(m, B, L, &pat);
    return (backward ? 2 * proj : proj + hash) + attn_flops(&sh, backward);
}

const MixerSpec mixer_reformer = {
    .name = "reformer",
    .classes = "LP",
    .arxiv = "2001.04451",
    .title = "Reformer: shared-QK LSH attention within buckets of sorted chunks, rounds combined "
             "by log-sum-exp with duplicate pairs counted once",
    .honours_mask = 1,
    .padding_dependence =
        "with buckets 0 the bucket count 2·ceil(L/chunk) counts the padded length L (Trax's "
        "hash_vectors); the first chunk of each round looks back at the last chunk of the padded "
        "length (Trax's look_one_back), not at the row's last real chunk; with lra the chunks are "
        "ceil(L/n_b) of the padded length; otherwise padding is invisible",
    MIXER_OPTS(reformer_opts),
    .ops = &(const MixerOps){MIXER_OPS(reformer), .check = reformer_check},
};
