/* clustered: clustered attention (Vyas et al., arXiv 2007.04825, §3.2-3.3) as the authors' code
 * runs it (idiap/fast-transformers: attention/clustered_attention.py ClusteredAttention,
 * attention/improved_clustered_attention.py ImprovedClusteredAttention, hashing/hash_cpu.cpp,
 * clustering/hamming/cluster_cpu.cpp).
 *
 * Grouping (no gradient; MixerStep.frozen reuses the last forward's groups): per forward `bits`
 * hyperplanes a_i ∈ R^{Dh+1} ~ N(0, 1), shared by every row and head (_create_query_groups:
 * planes (bits, E + 1), the offset column zeroed without hash_bias), hash each query,
 * bit i = [a_i[:Dh]·q > a_i[Dh]] (compute_hashes), then k-means in Hamming space per (row, head)
 * over the real queries (cluster): the centroids start as the hashes of the first `clusters`
 * queries (initialize), then iterations − 1 rounds of assignment to the nearest centroid by
 * popcount(h ⊕ c), the first minimum winning (assign), and centroid bits by majority, ties 0, an
 * empty cluster a random code (recompute_centroids), and a last assignment.
 *
 * clustered (§3.2, eq. 5-6): a centroid's query is the mean of its members' queries
 * (_GroupQueries), it attends to every key, A_c = softmax(Q_c Kᵀ/√Dh + key mask), and each member
 * takes O_c = A_c V (_BroadcastValues). The gradient reaches each member as dQ_c / |c|.
 * improved (§3.3, eq. 9): the top-k keys T_c of each centroid by Q_c·k_j (torch.topk over the
 * masked scores, k = min(topk, L)) are attended exactly by each member,
 *   o_i = (1 − m_c)·softmax_{j∈T_c}(q_i·k_j/√Dh)·V_{T_c} + Σ_{j∉T_c} A_c[j] v_j,
 *   m_c = Σ_{j∉T_c} A_c[j]                         (A_bottomk, differentiated as in autograd)
 * with top-k slots that fall on padding keys masked (k larger than the row's real keys).
 *
 * Departures. The code's first centroids are the codes of positions 0..C − 1, real or not (and
 * it fails for L < C); here they are those of the first min(C, n) real queries, with min(C, n)
 * clusters, so padding never moves the clusters of real queries. For right padding this changes
 * nothing: with n >= C the first C positions are real, and with n < C every real code starts as
 * a centroid at distance 0, so the extra centroids never win an assignment; it matters for
 * padding before real positions. The code draws the planes and an empty cluster's code from
 * unseeded generators at every call; here the planes come from the experiment seed, the layer and
 * MixerStep.step (the training step; in evaluation the step of the parameters), and an empty
 * cluster's code from those and the row's own codes, so a row gets the same clusters in any
 * batch. Padding queries get no cluster and output 0 (before W_o). Defaults:
 * the registry's iterations 10, bits 63, hash_bias, topk 32; clusters 100 is the paper's setting
 * (its "clustered-100", "i-clustered-100"); attention dropout is not used. */
#include "mixers/clustered.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "mixers/attn_mixer.h"

static const OptSpec clustered_opts[] = {
    MOPT_INT("clusters", 100, 1, 65536,
             "query clusters C per row and head (the paper's experiments: 100; the code has no "
             "default); a row with fewer real queries has as many clusters as queries"),
    MOPT_INT("iterations", 10, 1, 1000,
             "Lloyd iterations of the Hamming k-means (fast-transformers' registry: 10)"),
    MOPT_INT("bits", 63, 1, 63,
             "hash bits: random hyperplanes per query (fast-transformers' registry: 63)"),
    MOPT_BOOL("hash_bias", 1,
              "hyperplanes with random offsets, Hamming distance ~ L2 (true), or through the "
              "origin, ~ cosine (false)"),
    MOPT_BOOL("improved", 0,
              "improved clustered attention: each query attends exactly to its centroid's top-k "
              "keys, the rest with the centroid's probabilities (ImprovedClusteredAttention)"),
    MOPT_INT("topk", 32, 1, 65536,
             "improved: keys per centroid attended exactly (fast-transformers: 32)"),
    MOPT_BOOL("bias", 1,
              "biases in the Q/K/V and output projections (fast-transformers' AttentionLayer: "
              "nn.Linear, yes)"),
};
#define NOPTS MOPT_COUNT(clustered_opts)

typedef struct Clustered {
    AttnMixer am; /* first: projections; qkv, att saved; lse (B, H, Cs) of the centroids */
    int C, iters, bits, hash_bias, improved, topk;
    int Dh, Cs, K, have; /* Cs = min(C, L) centroid slots, K = min(topk, L); have: groups exist */
    int layer;
    float *planes; /* (bits, Dh + 1) of the last draw */
    int *cl;       /* (B, H, L) cluster of each query, −1 for padding */
    int *cnt;      /* (B, H, Cs) members */
    float *qc;     /* (B, Cs, D) centroid queries (0 for an empty slot) */
    float *oc;     /* (B, Cs, D) clustered: A_c V; improved: Σ_{j∉T} A_c[j] v_j */
    float *A;      /* improved (B, H, Cs, L): A_c */
    int *top;      /* improved (B, H, Cs, K): T_c ascending */
    float *a;      /* improved (B, H, L, K): each query's softmax over its T_c */
    float *mb;     /* improved (B, H, Cs): m_c */
    float *tp;     /* improved (B, L, D): softmax_{T_c}·V_{T_c} of each query */
} Clustered;

static void clustered_create(Mixer *m, ParamTable *pt) {
    Clustered *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, 0, opt_bool(m->opts, clustered_opts, NOPTS, "bias"));
    st->C = opt_int(m->opts, clustered_opts, NOPTS, "clusters");
    st->iters = opt_int(m->opts, clustered_opts, NOPTS, "iterations");
    st->bits = opt_int(m->opts, clustered_opts, NOPTS, "bits");
    st->hash_bias = opt_bool(m->opts, clustered_opts, NOPTS, "hash_bias");
    st->improved = opt_bool(m->opts, clustered_opts, NOPTS, "improved");
    st->topk = opt_int(m->opts, clustered_opts, NOPTS, "topk");
    st->Dh = m->D / m->H;
    st->layer = m->layer;
    st->planes = malloc((size_t)st->bits * (st->Dh + 1) * sizeof *st->planes);
    XB_ASSERT(st->planes);
}

static void clustered_destroy(Mixer *m) {
    Clustered *st = m->state;
    free(st->planes);
    free(st);
}

/* The centroids' attention to every key (clustered): queries (B, Cs, D), keys and values packed. */
static AttnShape centroid_shape(const Mixer *m, int B, int L) {
    const Clustered *st = m->state;
    const int D = m->D;
    AttnShape s = attn_shape(B, m->H, XB_MIN(st->C, L), L, D / m->H, D, 3 * D, 3 * D, D);
    return s;
}

static size_t imp_floats(int Cs, int L, int K, int Dh);

static void clustered_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    Clustered *st = m->state;
    const int H = m->H, D = m->D, Cs = XB_MIN(st->C, L), K = XB_MIN(st->topk, L);
    const size_t BL = (size_t)B * L, BH = (size_t)B * H;
    st->Cs = Cs, st->K = K, st->have = 0;
    st->am.qkv = arena_floats(acts, BL * 3 * D);
    st->am.att = arena_floats(acts, BL * D);
    st->am.lse = arena_floats(acts, BH * Cs);
    st->cl = arena_alloc(acts, BH * L * sizeof(int));
    st->cnt = arena_alloc(acts, BH * Cs * sizeof(int));
    st->qc = arena_floats(acts, (size_t)B * Cs * D);
    st->oc = arena_floats(acts, (size_t)B * Cs * D);
    const int nt = omp_get_max_threads();
    /* forward: the hashing's projections and codes, the k-means' codes and bit counts */
    const size_t mark = arena_mark(scratch);
    arena_floats(scratch, BH * L * st->bits);
    arena_alloc(scratch, BH * L * sizeof(uint64_t));
    arena_alloc(scratch, (size_t)nt * ((size_t)Cs * (sizeof(uint64_t) + 64 * sizeof(int)) + 64));
    arena_reset_to(scratch, mark);
    /* backward: datt, dqkv, dqc and doc, then the kernel's tiles or the improved buffers */
    arena_floats(scratch, BL * D);
    arena_floats(scratch, BL * 3 * D);
    arena_floats(scratch, 2 * (size_t)B * Cs * D);
    if (st->improved) {
        st->A = arena_floats(acts, BH * Cs * L);
        st->top = arena_alloc(acts, BH * Cs * K * sizeof(int));
        st->a = arena_floats(acts, BH * L * K);
        st->mb = arena_floats(acts, BH * Cs);
        st->tp = arena_floats(acts, BL * D);
        arena_floats(scratch, (size_t)nt * imp_floats(Cs, L, K, st->Dh)); /* per thread */
        arena_floats(scratch, BH * Cs);                                   /* dm_c */
    } else {
        AttnShape s = centroid_shape(m, B, L);
        arena_alloc(scratch, attn_scratch_floats(&s, nt) * sizeof(float));
    }
}

/* ---- grouping (no gradient) ---- */

/* Planes (bits, Dh + 1) ~ N(0, 1) for this layer and step; offsets 0 without hash_bias. */
static void draw_planes(Clustered *st, const MixerStep *s) {
    Rng r;
    rng_seed(&r, rng_mix64(s->seed ^ rng_mix64(((uint64_t)st->layer << 48) ^ (uint64_t)s->step)),
             RNG_STREAM_MIXER);
    const int E = st->Dh + 1;
    for (int i = 0; i < st->bits; i++)
        for (int d = 0; d < E; d++) {
            const float g = rng_normal(&r);
            st->planes[(size_t)i * E + d] = d == st->Dh && !st->hash_bias ? 0.0f : g;
        }
}

/* The first minimum of popcount(h ⊕ c_k) over the n centroids. */
static int nearest(uint64_t h, const uint64_t *c, int n) {
    int best = -1, mind = 1000;
    for (int k = 0; k < n; k++) {
        const int d = __builtin_popcountll(h ^ c[k]);
        if (d < mind) mind = d, best = k;
    }
    return best;
}

/* Hamming k-means of the real codes of one (row, head): cl (L) and cnt (Cs) out. cent holds Cs
 * codes and votes Cs·64 ints of work. key seeds an empty cluster's random code. */
static void hamming_kmeans(int *cl, int *cnt, const uint64_t *code, const unsigned char *mask,
                           int L, int Cs, int iters, int bits, uint64_t key, uint64_t *cent,
                           int *votes) {
    const uint64_t all = bits == 64 ? ~0ull : (1ull << bits) - 1;
    int n = 0; /* initialize: the codes of the first real queries */
    for (int l = 0; l < L; l++) {
        cl[l] = -1;
        if (mask && !mask[l]) continue;
        if (n < Cs) cent[n] = code[l];
        n++;
    }
    const int C = XB_MIN(Cs, n);
    for (int it = 0; it <= iters - 1; it++) {
        for (int l = 0; l < L; l++) /* assign */
            if (!mask || mask[l]) cl[l] = nearest(code[l], cent, C);
        if (it == iters - 1) break; /* the last assignment */
        memset(votes, 0, (size_t)C * 64 * sizeof *votes);
        memset(cnt, 0, (size_t)C * sizeof *cnt);
        for (int l = 0; l < L; l++) { /* recompute: majority per bit */
            if (cl[l] < 0) continue;
            int *v = votes + (size_t)cl[l] * 64;
            cnt[cl[l]]++;
            for (int b = 0; b < bits; b++) v[b] += (code[l] >> b & 1) ? 1 : -1;
        }
        for (int k = 0; k < C; k++) {
            if (cnt[k] == 0) {
                cent[k] = rng_mix64(key ^ rng_mix64(((uint64_t)it << 32) ^ (uint64_t)k)) & all;
                continue;
            }
            uint64_t c = 0;
            for (int b = 0; b < bits; b++) c |= (uint64_t)(votes[(size_t)k * 64 + b] > 0) << b;
            cent[k] = c;
        }
    }
    memset(cnt, 0, (size_t)Cs * sizeof *cnt);
    for (int l = 0; l < L; l++)
        if (cl[l] >= 0) cnt[cl[l]]++;
}

/* Hashes every query with the planes and clusters the real ones of each (row, head). */
static void group_queries(Mixer *m, const MixerStep *s) {
    Clustered *st = m->state;
    const int B = s->B, L = s->L, H = m->H, D = m->D, Dh = st->Dh, E = Dh + 1, nb = st->bits;
    const int Cs = st->Cs;
    draw_planes(st, s);
    const size_t mark = arena_mark(s->scratch), BH = (size_t)B * H;
    float *proj = arena_floats(s->scratch, BH * L * nb);
    uint64_t *code = arena_alloc(s->scratch, BH * L * sizeof(uint64_t));
    const int nt = omp_get_max_threads();
    const size_t per = (size_t)Cs * (sizeof(uint64_t) + 64 * sizeof(int)) + 64;
    char *work = arena_alloc(s->scratch, (size_t)nt * per);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            float *p = proj + bh * L * nb;
            matmul_strided(p, nb, st->am.qkv + (size_t)b * L * 3 * D + (size_t)h * Dh, 3 * D,
                           st->planes, E, L, nb, Dh, MM_NT, 1.0f, 0.0f);
            uint64_t *c = code + bh * L, digest = 0;
            const unsigned char *mb = s->mask ? s->mask + (size_t)b * L : NULL;
            for (int l = 0; l < L; l++) {
                uint64_t hv = 0;
                for (int i = 0; i < nb; i++)
                    hv |= (uint64_t)(p[(size_t)l * nb + i] > st->planes[(size_t)i * E + Dh]) << i;
                c[l] = hv;
                if (!mb || mb[l]) digest = rng_mix64(digest ^ hv);
            }
            char *w = work + (size_t)omp_get_thread_num() * per;
            const uint64_t key =
                rng_mix64(s->seed ^ rng_mix64(((uint64_t)st->layer << 48) ^ (uint64_t)s->step)) ^
                rng_mix64(digest ^ (uint64_t)h);
            hamming_kmeans(st->cl + bh * L, st->cnt + bh * Cs, c, mb, L, Cs, st->iters, nb, key,
                           (uint64_t *)w, (int *)(w + (size_t)Cs * sizeof(uint64_t)));
        }
    arena_reset_to(s->scratch, mark);
}

/* qc (B, Cs, D) = the mean of each cluster's queries (0 for an empty slot). */
static void centroid_queries(Clustered *st, int B, int L, int H, int D) {
    const int Cs = st->Cs, Dh = st->Dh;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            float *qc = st->qc + (size_t)b * Cs * D + (size_t)h * Dh;
            for (int c = 0; c < Cs; c++) memset(qc + (size_t)c * D, 0, (size_t)Dh * sizeof *qc);
            for (int l = 0; l < L; l++) {
                const int c = st->cl[bh * L + l];
                if (c < 0) continue;
                const float *q = st->am.qkv + ((size_t)b * L + l) * 3 * D + (size_t)h * Dh;
                for (int d = 0; d < Dh; d++) qc[(size_t)c * D + d] += q[d];
            }
            for (int c = 0; c < Cs; c++) {
                const int n = st->cnt[bh * Cs + c];
                for (int d = 0; d < Dh && n > 0; d++) qc[(size_t)c * D + d] /= (float)n;
            }
        }
}

/* ---- improved clustered attention ---- */

/* a better than b: a larger score, or an equal one at a lower index (torch.topk's choice is
 * unspecified on ties; this one is deterministic). */
static int better(float va, int ia, float vb, int ib) { return va > vb || (va == vb && ia < ib); }

/* The k best of the n scores (−inf for padding keys), ascending indices into out. heap: k ints. */
static void top_k(int *out, const float *sc, int n, int k, int *heap) {
    int size = 0;
    for (int j = 0; j < n; j++) {
        if (size < k) { /* push, sift up: the root is the worst kept */
            int i = size++;
            heap[i] = j;
            while (i > 0) {
                const int p = (i - 1) / 2;
                if (!better(sc[heap[p]], heap[p], sc[heap[i]], heap[i])) break;
                const int t = heap[p];
                heap[p] = heap[i], heap[i] = t, i = p;
            }
        } else if (better(sc[j], j, sc[heap[0]], heap[0])) { /* replace the root, sift down */
            int i = 0;
            heap[0] = j;
            for (;;) {
                const int a = 2 * i + 1, b = a + 1;
                int w = i;
                if (a < size && better(sc[heap[w]], heap[w], sc[heap[a]], heap[a])) w = a;
                if (b < size && better(sc[heap[w]], heap[w], sc[heap[b]], heap[b])) w = b;
                if (w == i) break;
                const int t = heap[w];
                heap[w] = heap[i], heap[i] = t, i = w;
            }
        }
    }
    for (int i = 0; i < k; i++) out[i] = heap[i]; /* then ascending (insertion sort: k is small) */
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            const int t = out[j];
            out[j] = out[j - 1], out[j - 1] = t;
        }
}

/* Per thread: Ā and a second (Cs, L), a row of marks (L), the heap (K ints), da (K), dt (Dh),
 * dQ_c (Cs, Dh). */
typedef struct ImpWork {
    float *abar, *g, *mark, *da, *dt, *dqc;
    int *heap;
} ImpWork;

static size_t imp_floats(int Cs, int L, int K, int Dh) {
    return 2 * (size_t)Cs * L + (size_t)L + 2 * (size_t)K + (size_t)Dh + (size_t)Cs * Dh;
}

static ImpWork imp_work(float *base, int Cs, int L, int K, int Dh, int t) {
    float *p = base + (size_t)t * imp_floats(Cs, L, K, Dh);
    ImpWork w;
    w.abar = p, p += (size_t)Cs * L;
    w.g = p, p += (size_t)Cs * L;
    w.mark = p, p += L;
    w.heap = (int *)p, p += K; /* ints the size of floats */
    w.da = p, p += K;
    w.dt = p, p += Dh;
    w.dqc = p;
    return w;
}

/* Ā = A with the top-k entries (and padding keys, already 0) zeroed, and mark = 1 on T_c. */
static void bottom(float *abar, const float *A, const int *top, int Cs, int L, int K) {
    memcpy(abar, A, (size_t)Cs * L * sizeof *abar);
    for (int c = 0; c < Cs; c++)
        for (int t = 0; t < K; t++) abar[(size_t)c * L + top[(size_t)c * K + t]] = 0.0f;
}

static void improved_forward(Mixer *m, const MixerStep *s) {
    Clustered *st = m->state;
    const int B = s->B, L = s->L, H = m->H, D = m->D, Dh = st->Dh, Cs = st->Cs, K = st->K;
    const float scale = 1.0f / sqrtf((float)Dh);
    const int choose = !(s->frozen && st->have);
    const size_t mark = arena_mark(s->scratch);
    const int nt = omp_get_max_threads();
    float *work = arena_floats(s->scratch, (size_t)nt * imp_floats(Cs, L, K, Dh));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            ImpWork w = imp_work(work, Cs, L, K, Dh, omp_get_thread_num());
            const unsigned char *mb = s->mask ? s->mask + (size_t)b * L : NULL;
            const float *kb = st->am.qkv + (size_t)b * L * 3 * D + D + (size_t)h * Dh;
            const float *vb = kb + D, *qc = st->qc + (size_t)b * Cs * D + (size_t)h * Dh;
            float *A = st->A + bh * Cs * L, *mbot = st->mb + bh * Cs;
            int *top = st->top + bh * Cs * K;
            /* S = Q_c Kᵀ with padding keys −inf; T_c; A_c = softmax(S/√Dh) */
            matmul_strided(A, L, qc, D, kb, 3 * D, Cs, L, Dh, MM_NT, 1.0f, 0.0f);
            for (int c = 0; c < Cs; c++) {
                float *sc = A + (size_t)c * L, mx = -INFINITY, sum = 0.0f;
                for (int j = 0; j < L; j++) {
                    if (mb && !mb[j]) sc[j] = -INFINITY;
                    mx = fmaxf(mx, sc[j]);
                }
                if (choose) top_k(top + (size_t)c * K, sc, L, K, w.heap);
                for (int j = 0; j < L; j++) {
                    sc[j] = sc[j] == -INFINITY ? 0.0f : expf(scale * (sc[j] - mx));
                    sum += sc[j];
                }
                for (int j = 0; j < L; j++) sc[j] = sum > 0.0f ? sc[j] / sum : 0.0f;
            }
            /* m_c = Σ_{j∉T} A_c[j]; O_c = Ā V */
            bottom(w.abar, A, top, Cs, L, K);
            for (int c = 0; c < Cs; c++) {
                float acc = 0.0f;
                for (int j = 0; j < L; j++) acc += w.abar[(size_t)c * L + j];
                mbot[c] = acc;
            }
            float *ob = st->oc + (size_t)b * Cs * D + (size_t)h * Dh;
            matmul_strided(ob, D, w.abar, L, vb, 3 * D, Cs, Dh, L, MM_NN, 1.0f, 0.0f);
            /* each query: softmax over its centroid's T_c (padding keys masked), then the sum;
             * a padding query is computed with cluster 0 and given 0 */
            for (int i = 0; i < L; i++) {
                const int ci = st->cl[bh * L + i], c = ci < 0 ? 0 : ci;
                const float *q = st->am.qkv + ((size_t)b * L + i) * 3 * D + (size_t)h * Dh;
                const int *T = top + (size_t)c * K;
                float *a = st->a + (bh * L + i) * K, mx = -INFINITY, sum = 0.0f;
                for (int t = 0; t < K; t++) {
                    const float *k = kb + (size_t)T[t] * 3 * D;
                    float dot = 0.0f;
                    for (int d = 0; d < Dh; d++) dot += q[d] * k[d];
                    a[t] = mb && !mb[T[t]] ? -INFINITY : scale * dot;
                    mx = fmaxf(mx, a[t]);
                }
                for (int t = 0; t < K; t++) {
                    a[t] = a[t] == -INFINITY ? 0.0f : expf(a[t] - mx);
                    sum += a[t];
                }
                float *tp = st->tp + ((size_t)b * L + i) * D + (size_t)h * Dh;
                float *o = st->am.att + ((size_t)b * L + i) * D + (size_t)h * Dh;
                for (int d = 0; d < Dh; d++) tp[d] = 0.0f;
                for (int t = 0; t < K; t++) {
                    a[t] = sum > 0.0f ? a[t] / sum : 0.0f;
                    const float *v = vb + (size_t)T[t] * 3 * D;
                    for (int d = 0; d < Dh; d++) tp[d] += a[t] * v[d];
                }
                for (int d = 0; d < Dh; d++)
                    o[d] = ci < 0 ? 0.0f : (1.0f - mbot[c]) * tp[d] + ob[(size_t)c * D + d];
            }
        }
    /* the products count themselves; each query's exact top-k attention: 4·K·Dh per query */
    flops_add(4ull * (uint64_t)B * H * (uint64_t)K * L * Dh);
    arena_reset_to(s->scratch, mark);
}

/* Gradients of improved_forward, with dO (datt) given; dq/dk/dv into the packed dqkv. */
static void improved_backward(Mixer *m, const MixerStep *s, float *dqkv, const float *datt) {
    Clustered *st = m->state;
    const int B = s->B, L = s->L, H = m->H, D = m->D, Dh = st->Dh, Cs = st->Cs, K = st->K;
    const float scale = 1.0f / sqrtf((float)Dh);
    const size_t mark = arena_mark(s->scratch);
    const int nt = omp_get_max_threads();
    float *work = arena_floats(s->scratch, (size_t)nt * imp_floats(Cs, L, K, Dh));
    float *doc = arena_floats(s->scratch, (size_t)B * Cs * D); /* Σ_{i∈c} dO_i */
    float *dm = arena_floats(s->scratch, (size_t)B * H * Cs);  /* ∂/∂m_c */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            ImpWork w = imp_work(work, Cs, L, K, Dh, omp_get_thread_num());
            const unsigned char *mb = s->mask ? s->mask + (size_t)b * L : NULL;
            const float *kb = st->am.qkv + (size_t)b * L * 3 * D + D + (size_t)h * Dh;
            const float *vb = kb + D, *qc = st->qc + (size_t)b * Cs * D + (size_t)h * Dh;
            float *dkb = dqkv + (size_t)b * L * 3 * D + D + (size_t)h * Dh, *dvb = dkb + D;
            const float *A = st->A + bh * Cs * L, *mbot = st->mb + bh * Cs;
            const int *top = st->top + bh * Cs * K;
            float *dob = doc + (size_t)b * Cs * D + (size_t)h * Dh, *dmc = dm + bh * Cs;
            /* the queries: dO_c and dm_c gathered, the exact top-k part differentiated */
            for (int i = 0; i < L; i++) {
                const int ci = st->cl[bh * L + i], c = ci < 0 ? 0 : ci;
                const float *g = datt + ((size_t)b * L + i) * D + (size_t)h * Dh;
                const float *tp = st->tp + ((size_t)b * L + i) * D + (size_t)h * Dh;
                const float *q = st->am.qkv + ((size_t)b * L + i) * 3 * D + (size_t)h * Dh;
                float *dq = dqkv + ((size_t)b * L + i) * 3 * D + (size_t)h * Dh;
                const int *T = top + (size_t)c * K;
                const float *a = st->a + (bh * L + i) * K;
                float *dt = w.dt, *da = w.da, dot = 0.0f;
                const float keep = ci < 0 ? 0.0f : 1.0f - mbot[c];
                if (ci >= 0) {
                    float gt = 0.0f;
                    for (int d = 0; d < Dh; d++) {
                        dob[(size_t)c * D + d] += g[d];
                        gt += g[d] * tp[d];
                    }
                    dmc[c] -= gt;
                }
                for (int d = 0; d < Dh; d++) dt[d] = keep * g[d];
                for (int t = 0; t < K; t++) { /* da = dt·v_j, dv_j += a_j dt */
                    const float *v = vb + (size_t)T[t] * 3 * D;
                    float *dv = dvb + (size_t)T[t] * 3 * D, acc = 0.0f;
                    for (int d = 0; d < Dh; d++) {
                        acc += dt[d] * v[d];
                        dv[d] += a[t] * dt[d];
                    }
                    da[t] = acc;
                    dot += a[t] * acc;
                }
                for (int t = 0; t < K; t++) { /* ds = a(da − Σ a da); dq, dk_j */
                    const float ds = scale * a[t] * (da[t] - dot);
                    const float *k = kb + (size_t)T[t] * 3 * D;
                    float *dk = dkb + (size_t)T[t] * 3 * D;
                    for (int d = 0; d < Dh; d++) {
                        dq[d] += ds * k[d];
                        dk[d] += ds * q[d];
                    }
                }
            }
            /* the centroids: dĀ_c[j] = dO_c·v_j + dm_c off T_c, dA = that, dS = A(dA − Σ A dA)/√Dh
             */
            matmul_strided(w.g, L, dob, D, vb, 3 * D, Cs, L, Dh, MM_NT, 1.0f, 0.0f);
            bottom(w.abar, A, top, Cs, L, K);
            matmul_strided(dvb, 3 * D, w.abar, L, dob, D, L, Dh, Cs, MM_TN, 1.0f, 1.0f);
            for (int c = 0; c < Cs; c++) {
                float *g = w.g + (size_t)c * L, sum = 0.0f;
                const float *ar = A + (size_t)c * L;
                for (int j = 0; j < L; j++) w.mark[j] = 0.0f;
                for (int t = 0; t < K; t++) w.mark[top[(size_t)c * K + t]] = 1.0f;
                for (int j = 0; j < L; j++) {
                    g[j] = w.mark[j] != 0.0f || (mb && !mb[j]) ? 0.0f : g[j] + dmc[c];
                    sum += ar[j] * g[j];
                }
                for (int j = 0; j < L; j++) g[j] = scale * ar[j] * (g[j] - sum);
            }
            /* dQ_c = dS K to the members, dK += dSᵀ Q_c */
            matmul_strided(w.dqc, Dh, w.g, L, kb, 3 * D, Cs, Dh, L, MM_NN, 1.0f, 0.0f);
            matmul_strided(dkb, 3 * D, w.g, L, qc, D, L, Dh, Cs, MM_TN, 1.0f, 1.0f);
            for (int i = 0; i < L; i++) {
                const int c = st->cl[bh * L + i];
                if (c < 0) continue;
                float *dq = dqkv + ((size_t)b * L + i) * 3 * D + (size_t)h * Dh;
                const float inv = 1.0f / (float)st->cnt[bh * Cs + c];
                for (int d = 0; d < Dh; d++) dq[d] += w.dqc[(size_t)c * Dh + d] * inv;
            }
        }
    /* the products count themselves; the exact top-k attention's backward: 8·K·Dh per query */
    flops_add(8ull * (uint64_t)B * H * (uint64_t)K * L * Dh);
    arena_reset_to(s->scratch, mark);
}

/* ---- the mixer ---- */

static void clustered_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    Clustered *st = m->state;
    const int B = s->B, L = s->L, H = m->H, D = m->D, BL = B * L, Cs = st->Cs, Dh = st->Dh;
    linear_forward(st->am.qkv, x, mixer_param(s, st->am.p_wqkv), mixer_param(s, st->am.p_bqkv), BL,
                   D, 3 * D);
    if (!(s->frozen && st->have)) group_queries(m, s);
    centroid_queries(st, B, L, H, D);
    if (st->improved) {
        improved_forward(m, s);
    } else {
        AttnShape sh = centroid_shape(m, B, L);
        attn_forward(st->oc, st->am.lse, st->qc, st->am.qkv + D, st->am.qkv + 2 * D, s->mask, &sh,
                     s->scratch);
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) /* each query takes its centroid's output */
            for (int h = 0; h < H; h++)
                for (int l = 0; l < L; l++) {
                    const int c = st->cl[((size_t)b * H + h) * L + l];
                    float *o = st->am.att + ((size_t)b * L + l) * D + (size_t)h * Dh;
                    const float *oc = st->oc + ((size_t)b * Cs + (c < 0 ? 0 : c)) * D + h * Dh;
                    for (int d = 0; d < Dh; d++) o[d] = c < 0 ? 0.0f : oc[d];
                }
    }
    st->have = 1;
    linear_forward(y, st->am.att, mixer_param(s, st->am.p_wo), mixer_param(s, st->am.p_bo), BL, D,
                   D);
}

static void clustered_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                               const float *x) {
    Clustered *st = m->state;
    const int B = s->B, L = s->L, H = m->H, D = m->D, BL = B * L, Cs = st->Cs, Dh = st->Dh;
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    linear_backward(datt, mixer_grad(s, st->am.p_wo), mixer_grad(s, st->am.p_bo), dy, st->am.att,
                    mixer_param(s, st->am.p_wo), BL, D, D);
    if (st->improved) {
        improved_backward(m, s, dqkv, datt);
    } else {
        float *doc = arena_floats(s->scratch, (size_t)B * Cs * D);
        float *dqc = arena_floats(s->scratch, (size_t)B * Cs * D);
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) /* dO_c = Σ_{i∈c} dO_i */
            for (int h = 0; h < H; h++)
                for (int l = 0; l < L; l++) {
                    const int c = st->cl[((size_t)b * H + h) * L + l];
                    if (c < 0) continue;
                    const float *g = datt + ((size_t)b * L + l) * D + (size_t)h * Dh;
                    float *o = doc + ((size_t)b * Cs + c) * D + (size_t)h * Dh;
                    for (int d = 0; d < Dh; d++) o[d] += g[d];
                }
        AttnShape sh = centroid_shape(m, B, L);
        attn_backward(dqc, dqkv + D, dqkv + 2 * D, doc, st->qc, st->am.qkv + D, st->am.qkv + 2 * D,
                      st->oc, st->am.lse, s->mask, &sh, s->scratch);
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) /* dq_i = dQ_c / |c| */
            for (int h = 0; h < H; h++)
                for (int l = 0; l < L; l++) {
                    const size_t bh = (size_t)b * H + h;
                    const int c = st->cl[bh * L + l];
                    if (c < 0) continue;
                    const float inv = 1.0f / (float)st->cnt[bh * Cs + c];
                    const float *g = dqc + ((size_t)b * Cs + c) * D + (size_t)h * Dh;
                    float *dq = dqkv + ((size_t)b * L + l) * 3 * D + (size_t)h * Dh;
                    for (int d = 0; d < Dh; d++) dq[d] += g[d] * inv;
                }
    }
    linear_backward(dx, mixer_grad(s, st->am.p_wqkv), mixer_grad(s, st->am.p_bqkv), dqkv, x,
                    mixer_param(s, st->am.p_wqkv), BL, D, 3 * D);
    arena_reset_to(s->scratch, mark);
}

static uint64_t clustered_flops(const Mixer *m, int B, int L, int backward) {
    const Clustered *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    const uint64_t proj = 8 * BL * D * D, hash = 2 * BL * D * (uint64_t)st->bits;
    uint64_t att;
    if (st->improved) {
        const uint64_t Cs = (uint64_t)XB_MIN(st->C, L), K = (uint64_t)XB_MIN(st->topk, L);
        att = (backward ? 8 : 4) * BL * (Cs + K) * D;
    } else {
        AttnShape sh = centroid_shape(m, B, L);
        att = attn_flops(&sh, backward);
    }
    return backward ? 2 * proj + att : proj + hash + att;
}

const float *clustered_planes(const Mixer *m, int *bits) {
    const Clustered *st = m->state;
    *bits = st->bits;
    return st->planes;
}

const int *clustered_assignments(const Mixer *m, int *slots) {
    const Clustered *st = m->state;
    *slots = st->Cs;
    return st->cl;
}

const int *clustered_topk(const Mixer *m, int *k) {
    const Clustered *st = m->state;
    *k = st->K;
    return st->improved ? st->top : NULL;
}

const MixerSpec mixer_clustered = {
    .name = "clustered",
    .classes = "LP",
    .arxiv = "2007.04825",
    .title = "clustered attention: queries grouped by Hamming k-means of LSH codes, centroids "
             "attend (improved: plus each query's exact top-k)",
    .honours_mask = 1,
    MIXER_OPTS(clustered_opts),
    .ops = &(const MixerOps){MIXER_OPS(clustered), .destroy = clustered_destroy},
};
