#include "kernels/linear_attn.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/xassert.h"

#include "core/flops.h"
#include "core/profile.h"
#include "kernels/attn_tile.h"
#include "kernels/matmul.h"
#include "kernels/simd.h"

/* Per (b, h): S = Φkᵀ V (M×Dh), z = Φkᵀ 1, num = Φq S, den = Φq z + ε (then clamped or guarded),
 * O = num / den. */
static void linattn_forward_impl(float *o, float *kv, float *z, float *den, const float *phq,
                                 const float *phk, const float *v, const LinAttnShape *s) {
    const int B = s->B, H = s->H, L = s->L, M = s->M, Dh = s->Dh;
    XB_ASSERT(!s->causal); /* the causal form runs on the fused path only */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            const float *pq = phq + bh * L * M, *pk = phk + bh * L * M;
            const float *vb = v + (size_t)b * s->bsv + (size_t)h * Dh;
            float *ob = o + (size_t)b * s->bso + (size_t)h * Dh;
            float *S = kv + bh * M * Dh, *zz = z + bh * M, *dn = den + bh * L;
            matmul_strided(S, Dh, pk, M, vb, s->ldv, M, Dh, L, MM_TN, 1.0f, 0.0f);
            for (int m = 0; m < M; m++) zz[m] = 0.0f;
            for (int l = 0; l < L; l++) /* z = Φkᵀ 1, rows in order */
                for (int m = 0; m < M; m++) zz[m] += pk[(size_t)l * M + m];
            cblas_sgemv(CblasRowMajor, CblasNoTrans, L, M, 1.0f, pq, M, zz, 1, 0.0f, dn, 1);
            matmul_strided(ob, s->ldo, pq, M, S, Dh, L, Dh, M, MM_NN, 1.0f, 0.0f);
            unsigned char *lw = s->low ? s->low + bh * L : NULL;
            for (int l = 0; l < L; l++) {
                dn[l] += s->eps;
                if (s->min_den > 0.0f || s->guard > 0.0f) {
                    /* the clamp (RFA) or the guard (Performer) acts on low rows */
                    int low = lw && s->frozen ? lw[l]
                                              : (s->min_den > 0.0f ? dn[l] < s->min_den
                                                                   : fabsf(dn[l]) <= s->guard);
                    if (lw) lw[l] = (unsigned char)low;
                    if (low && s->min_den > 0.0f) dn[l] = s->min_den;
                    if (low && s->guard > 0.0f) dn[l] += 2.0f * s->guard;
                }
                const float inv = dn[l] != 0.0f ? 1.0f / dn[l] : 0.0f;
                float *oi = ob + (size_t)l * s->ldo;
                for (int d = 0; d < Dh; d++) oi[d] *= inv;
            }
        }
    /* the products counted themselves (kernels/matmul.h); den = Φq z remains, 2·L·M a head */
    flops_add(2ull * (uint64_t)s->L * s->M * (uint64_t)B * H);
}

/* With dnum = dO/den and dden = −rowsum(dO∘O)/den: dΦq = dnum Sᵀ + dden zᵀ, dS = Φqᵀ dnum,
 * dz = Φqᵀ dden, dΦk = V dSᵀ + 1 dzᵀ, dV = Φk dS. */
static void linattn_backward_impl(float *dphq, float *dphk, float *dv, const float *dout,
                                  const float *o, const float *phq, const float *phk,
                                  const float *v, const float *kv, const float *z, const float *den,
                                  const LinAttnShape *s, Arena *scratch) {
    const int B = s->B, H = s->H, L = s->L, M = s->M, Dh = s->Dh;
    XB_ASSERT(!s->causal);
    const size_t per = (size_t)L * Dh + (size_t)L + (size_t)M * Dh + (size_t)M;
    const size_t mark = arena_mark(scratch);
    float *work = arena_floats(scratch, linattn_scratch_floats(s));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            float *dnum = work + bh * per, *dden = dnum + (size_t)L * Dh, *dS = dden + L,
                  *dz = dS + (size_t)M * Dh;
            const float *pq = phq + bh * L * M, *pk = phk + bh * L * M;
            const float *S = kv + bh * M * Dh, *zz = z + bh * M, *dn = den + bh * L;
            const float *vb = v + (size_t)b * s->bsv + (size_t)h * Dh;
            const float *ob = o + (size_t)b * s->bso + (size_t)h * Dh;
            const float *gb = dout + (size_t)b * s->bso + (size_t)h * Dh;
            for (int l = 0; l < L; l++) {
                const float *gi = gb + (size_t)l * s->ldo, *oi = ob + (size_t)l * s->ldo;
                const float inv = dn[l] != 0.0f ? 1.0f / dn[l] : 0.0f;
                float dot = 0.0f;
                for (int d = 0; d < Dh; d++) {
                    dnum[(size_t)l * Dh + d] = gi[d] * inv;
                    dot += gi[d] * oi[d];
                }
                /* a clamped denominator is a constant; a guarded one is shifted by one */
                const int clamped =
                    s->min_den > 0.0f && (s->low ? s->low[bh * L + l] != 0 : dn[l] <= s->min_den);
                dden[l] = clamped ? 0.0f : -dot * inv;
            }
            float *gq = dphq + bh * L * M, *gk = dphk + bh * L * M;
            matmul_strided(gq, M, dnum, Dh, S, Dh, L, M, Dh, MM_NT, 1.0f, 1.0f);
            cblas_sger(CblasRowMajor, L, M, 1.0f, dden, 1, zz, 1, gq, M);
            matmul_strided(dS, Dh, pq, M, dnum, Dh, M, Dh, L, MM_TN, 1.0f, 0.0f);
            cblas_sgemv(CblasRowMajor, CblasTrans, L, M, 1.0f, pq, M, dden, 1, 0.0f, dz, 1);
            matmul_strided(gk, M, vb, s->ldv, dS, Dh, L, M, Dh, MM_NT, 1.0f, 1.0f);
            for (int l = 0; l < L; l++)
                for (int m = 0; m < M; m++) gk[(size_t)l * M + m] += dz[m];
            matmul_strided(dv + (size_t)b * s->bsv + (size_t)h * Dh, s->ldv, pk, M, dS, Dh, L, Dh,
                           M, MM_NN, 1.0f, 1.0f);
        }
    arena_reset_to(scratch, mark);
    /* the products counted themselves; the rank-1 update dden zᵀ and dz = Φqᵀ dden remain */
    flops_add(4ull * (uint64_t)s->L * s->M * (uint64_t)B * H);
}

size_t linattn_scratch_floats(const LinAttnShape *s) {
    return ((size_t)s->L * s->Dh + (size_t)s->L + (size_t)s->M * s->Dh + (size_t)s->M) *
           (size_t)s->B * (size_t)s->H;
}

uint64_t linattn_flops(const LinAttnShape *s, int backward) {
    const uint64_t L = (uint64_t)s->L, M = (uint64_t)s->M, Dh = (uint64_t)s->Dh;
    if (s->causal) {
        /* Σ n² over the chunks of n rows: the masked intra-chunk products (causal_forward_impl,
         * causal_backward_impl say which) */
        uint64_t sq = 0;
        for (int l0 = 0; l0 < s->L; l0 += LINATTN_CHUNK) {
            const uint64_t n = (uint64_t)XB_MIN(LINATTN_CHUNK, s->L - l0);
            sq += n * n;
        }
        const uint64_t per = backward ? 10 * L * M * Dh + 4 * L * M + 6 * sq * (M + Dh)
                                      : 4 * L * M * Dh + 2 * L * M + 2 * sq * (M + Dh);
        return per * (uint64_t)s->B * (uint64_t)s->H;
    }
    /* forward: S and num (2·L·M·Dh each), den (2·L·M); backward: dΦq, dS, dΦk, dV (2·L·M·Dh
     * each), the rank-1 update dden zᵀ and dz = Φqᵀ dden (2·L·M each) */
    const uint64_t per = backward ? 8 * L * M * Dh + 4 * L * M : 4 * L * M * Dh + 2 * L * M;
    return per * (uint64_t)s->B * (uint64_t)s->H;
}

/* ---- The fused path ---- */

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Per-thread scratch of the fused kernels, in floats (each piece a multiple of 16 floats, so the
 * pieces stay 64-byte aligned): dS, dz, a packed [S | z] or [dS | dz], a chunk of [dnum | dden]
 * or [V | 1], a chunk of dφ (row stride attn_tile_cols(M)), a chunk of outputs, the map's work;
 * the causal form adds a chunk's scores A and their gradient dA (C × C each). */
static size_t fused_thread_floats(const LinAttnShape *s, const LinAttnMap *mp) {
    const size_t M = (size_t)s->M, Dh = (size_t)s->Dh, C = LINATTN_CHUNK;
    const size_t Mp = (size_t)attn_tile_cols(s->M);
    return align16(M * Dh) + align16(M) + align16(Mp * (Dh + 1)) + align16(C * (Dh + 1)) +
           align16(C * Mp) + align16(C * Dh) + align16(mp->work_floats) +
           (s->causal ? 2 * align16(C * C) : 0);
}

size_t linattn_fused_scratch_floats(const LinAttnShape *s, const LinAttnMap *mp) {
    return (size_t)omp_get_max_threads() * fused_thread_floats(s, mp) + 16;
}

typedef struct FusedWork {
    float *dS, *dz, *packed, *a, *dphi, *num, *map, *A, *dA;
} FusedWork;

static FusedWork fused_carve(float *base, const LinAttnShape *s, const LinAttnMap *mp) {
    const size_t M = (size_t)s->M, Dh = (size_t)s->Dh, C = LINATTN_CHUNK;
    const size_t Mp = (size_t)attn_tile_cols(s->M);
    FusedWork w;
    float *p = base;
    w.dS = p, p += align16(M * Dh);
    w.dz = p, p += align16(M);
    w.packed = p, p += align16(Mp * (Dh + 1));
    w.a = p, p += align16(C * (Dh + 1));
    w.dphi = p, p += align16(C * Mp);
    w.num = p, p += align16(C * Dh);
    w.map = p, p += align16(mp->work_floats);
    w.A = s->causal ? p : NULL, p += s->causal ? align16(C * C) : 0;
    w.dA = s->causal ? p : NULL;
    return w;
}

/* Zeroes the rows of padding keys (km[l0 + l] == 0) among rows l < n of x (M floats each, row
 * stride ld); km NULL: every key is real. */
static void zero_padding_rows(float *x, int ld, int M, const unsigned char *km, int l0, int n) {
    for (int l = 0; km && l < n; l++)
        if (!km[l0 + l]) memset(x + (size_t)l * ld, 0, (size_t)M * sizeof *x);
}

/* x · y over n, in eight interleaved partial sums added in a fixed order (a vector reduction that
 * does not depend on the instruction set). */
XB_CLONES static float dot8(const float *x, const float *y, int n) {
    float p[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) p[j] += x[i + j] * y[i + j];
    for (; i < n; i++) p[i & 7] += x[i] * y[i];
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* acc (n) += Σ over rows r < m of a[r·lda ...]·(w ? w[r·ws] : 1), rows in order. */
XB_CLONES static void add_rows(float *acc, const float *a, int lda, int m, int n, const float *w,
                               int ws) {
    for (int r = 0; r < m; r++) {
        const float *ar = a + (size_t)r * lda;
        if (w) {
            const float wr = w[(size_t)r * ws];
            for (int j = 0; j < n; j++) acc[j] += ar[j] * wr;
        } else {
            for (int j = 0; j < n; j++) acc[j] += ar[j];
        }
    }
}

/* bt ← the panels (attn_tile_pack) of [A | c], A (M × Dh, row stride Dh) and c (M): the product of
 * a chunk's [x | y] with them is x·Aᵀ + y·cᵀ. */
static void pack_with_column(float *bt, const float *a, const float *c, int M, int Dh) {
    const int K = Dh + 1;
    for (int p = 0; p < attn_tile_cols(M) / ATTN_TILE_NR; p++)
        for (int d = 0; d < K; d++)
            for (int j = 0; j < ATTN_TILE_NR; j++) {
                const int m = p * ATTN_TILE_NR + j;
                bt[((size_t)p * K + d) * ATTN_TILE_NR + j] = m >= M   ? 0.0f
                                                             : d < Dh ? a[(size_t)m * Dh + d]
                                                                      : c[m];
            }
}

/* The denominator of row l of head bh (the clamp or the guard, the saved low rows) and its
 * inverse; as linattn_forward. */
static float denominator(const LinAttnShape *s, size_t bh, int l, float dn, float *den) {
    dn += s->eps;
    if (s->min_den > 0.0f || s->guard > 0.0f) {
        unsigned char *lw = s->low ? s->low + bh * s->L : NULL;
        int low =
            lw && s->frozen ? lw[l] : (s->min_den > 0.0f ? dn < s->min_den : fabsf(dn) <= s->guard);
        if (lw) lw[l] = (unsigned char)low;
        if (low && s->min_den > 0.0f) dn = s->min_den;
        if (low && s->guard > 0.0f) dn += 2.0f * s->guard;
    }
    den[bh * s->L + l] = dn;
    return dn != 0.0f ? 1.0f / dn : 0.0f;
}

/* Per head: the keys' chunks (the map, the padding rows zeroed, S += φ(K)ᵀV and z += φ(K)ᵀ1 while
 * the chunk is in cache), then the queries' chunks (the map, num = φ(Q)S, den = φ(Q)z + ε,
 * o = num / den). */
static void linattn_fused_forward_impl(float *o, float *kv, float *z, float *den, float *phq,
                                       float *phk, const float *v, const unsigned char *kmask,
                                       const LinAttnShape *s, const LinAttnMap *mp,
                                       Arena *scratch) {
    const int B = s->B, H = s->H, L = s->L, M = s->M, Dh = s->Dh;
    const size_t per = fused_thread_floats(s, mp), mark = arena_mark(scratch);
    float *work = arena_alloc(scratch, linattn_fused_scratch_floats(s, mp) * sizeof(float));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            FusedWork w = fused_carve(work + (size_t)omp_get_thread_num() * per, s, mp);
            const size_t bh = (size_t)b * H + h;
            float *S = kv + bh * M * Dh, *zz = z + bh * M;
            const float *vb = v + (size_t)b * s->bsv + (size_t)h * Dh;
            float *ob = o + (size_t)b * s->bso + (size_t)h * Dh;
            const unsigned char *km = kmask ? kmask + (size_t)b * L : NULL;
            memset(S, 0, (size_t)M * Dh * sizeof *S);
            memset(zz, 0, (size_t)M * sizeof *zz);
            for (int pass = mp->key_passes == 2 ? 0 : 1; pass <= 1; pass++)
                for (int l0 = 0; l0 < L; l0 += LINATTN_CHUNK) {
                    const int n = XB_MIN(LINATTN_CHUNK, L - l0);
                    float *pk = phk + (bh * L + l0) * M;
                    if (pass == 1) /* the chunk's values, read after the map */
                        for (int l = 0; l < n; l++)
                            prefetch_row(vb + (size_t)(l0 + l) * s->ldv, Dh);
                    mp->map(mp, b, h, l0, n, 1, pass, pk, w.map);
                    if (pass == 0) continue;
                    zero_padding_rows(pk, M, M, km, l0, n);
                    attn_tile_acc(S, Dh, pk, 1, M, vb + (size_t)l0 * s->ldv, s->ldv, M, Dh, n,
                                  1.0f);
                    add_rows(zz, pk, M, n, M, NULL, 0);
                }
            for (int l0 = 0; l0 < L; l0 += LINATTN_CHUNK) {
                const int n = XB_MIN(LINATTN_CHUNK, L - l0);
                float *pq = phq + (bh * L + l0) * M;
                mp->map(mp, b, h, l0, n, 0, 1, pq, w.map);
                memset(w.num, 0, (size_t)n * Dh * sizeof *w.num);
                attn_tile_acc(w.num, Dh, pq, M, 1, S, Dh, n, Dh, M, 1.0f);
                for (int l = 0; l < n; l++) {
                    const float inv =
                        denominator(s, bh, l0 + l, dot8(pq + (size_t)l * M, zz, M), den);
                    float *oi = ob + (size_t)(l0 + l) * s->ldo;
                    prefetch_row(oi + PREFETCH_ROWS * s->ldo, Dh);
                    const float *ni = w.num + (size_t)l * Dh;
                    for (int d = 0; d < Dh; d++) oi[d] = ni[d] * inv;
                }
            }
        }
    arena_reset_to(scratch, mark);
    flops_add(linattn_flops(s, 0));
}

/* a (n × (Dh + 1)) = the rows [dnum | dden] of rows [l0, l0 + n) of head bh: dnum = dO/den,
 * dden = −rowsum(dO∘O)/den, 0 where the clamp acted. gb, ob: the head's dO and O (row stride
 * ldo); dn: the head's saved denominators. */
static void grad_rows(float *a, const LinAttnShape *s, size_t bh, int l0, int n, const float *gb,
                      const float *ob, const float *dn) {
    const int Dh = s->Dh, K = Dh + 1;
    for (int l = 0; l < n; l++) {
        const int li = l0 + l;
        const float *gi = gb + (size_t)li * s->ldo, *oi = ob + (size_t)li * s->ldo;
        prefetch_row(gi + PREFETCH_ROWS * s->ldo, Dh);
        prefetch_row(oi + PREFETCH_ROWS * s->ldo, Dh);
        const float inv = dn[li] != 0.0f ? 1.0f / dn[li] : 0.0f;
        float *ai = a + (size_t)l * K, dot = 0.0f;
        for (int d = 0; d < Dh; d++) {
            ai[d] = gi[d] * inv;
            dot += gi[d] * oi[d];
        }
        /* a clamped denominator is a constant; a guarded one is shifted by one */
        const int clamped =
            s->min_den > 0.0f && (s->low ? s->low[bh * s->L + li] != 0 : dn[li] <= s->min_den);
        ai[Dh] = clamped ? 0.0f : -dot * inv;
    }
}

/* With dnum = dO/den and dden = −rowsum(dO∘O)/den, per head: the queries' chunks (dS += φ(Q)ᵀdnum,
 * dz += φ(Q)ᵀdden, dφ(Q) = [dnum | dden]·[S | z]ᵀ and the map's backward), then the keys' chunks
 * (dφ(K) = [V | 1]·[dS | dz]ᵀ, zero on padding keys; dV += φ(K)·dS; the map's backward). */
static void linattn_fused_backward_impl(float *dv, const float *dout, const float *o,
                                        const float *phq, const float *phk, const float *v,
                                        const float *kv, const float *z, const float *den,
                                        const unsigned char *kmask, const LinAttnShape *s,
                                        const LinAttnMap *mp, Arena *scratch) {
    const int B = s->B, H = s->H, L = s->L, M = s->M, Dh = s->Dh, K = Dh + 1;
    const int Mp = attn_tile_cols(M);
    const size_t per = fused_thread_floats(s, mp), mark = arena_mark(scratch);
    float *work = arena_alloc(scratch, linattn_fused_scratch_floats(s, mp) * sizeof(float));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            FusedWork w = fused_carve(work + (size_t)omp_get_thread_num() * per, s, mp);
            const size_t bh = (size_t)b * H + h;
            const float *S = kv + bh * M * Dh, *zz = z + bh * M, *dn = den + bh * L;
            const float *vb = v + (size_t)b * s->bsv + (size_t)h * Dh;
            const float *ob = o + (size_t)b * s->bso + (size_t)h * Dh;
            const float *gb = dout + (size_t)b * s->bso + (size_t)h * Dh;
            float *dvb = dv + (size_t)b * s->bsv + (size_t)h * Dh;
            const unsigned char *km = kmask ? kmask + (size_t)b * L : NULL;
            memset(w.dS, 0, (size_t)M * Dh * sizeof *w.dS);
            memset(w.dz, 0, (size_t)M * sizeof *w.dz);
            pack_with_column(w.packed, S, zz, M, Dh);
            for (int l0 = 0; l0 < L; l0 += LINATTN_CHUNK) {
                const int n = XB_MIN(LINATTN_CHUNK, L - l0);
                const float *pq = phq + (bh * L + l0) * M;
                grad_rows(w.a, s, bh, l0, n, gb, ob, dn);
                attn_tile_acc(w.dS, Dh, pq, 1, M, w.a, K, M, Dh, n, 1.0f);
                add_rows(w.dz, pq, M, n, M, w.a + Dh, K); /* dz += φ(Q)ᵀ dden, rows in order */
                attn_tile_scores(w.dphi, Mp, w.a, K, w.packed, n, M, K, NULL, NULL);
                mp->backward(mp, b, h, l0, n, 0, w.dphi, Mp, pq, w.map);
            }
            if (mp->end) mp->end(mp, b, h, 0, w.map);
            pack_with_column(w.packed, w.dS, w.dz, M, Dh);
            for (int l0 = 0; l0 < L; l0 += LINATTN_CHUNK) {
                const int n = XB_MIN(LINATTN_CHUNK, L - l0);
                const float *pk = phk + (bh * L + l0) * M;
                for (int l = 0; l < n; l++) { /* the chunk's [V | 1] */
                    const float *vi = vb + (size_t)(l0 + l) * s->ldv;
                    prefetch_row(vi + PREFETCH_ROWS * s->ldv, Dh);
                    prefetch_row(dvb + (size_t)(l0 + l) * s->ldv, Dh); /* dV's rows, below */
                    float *ai = w.a + (size_t)l * K;
                    for (int d = 0; d < Dh; d++) ai[d] = vi[d];
                    ai[Dh] = 1.0f;
                }
                attn_tile_scores(w.dphi, Mp, w.a, K, w.packed, n, M, K, NULL, NULL);
                zero_padding_rows(w.dphi, Mp, M, km, l0, n);
                attn_tile_acc(dvb + (size_t)l0 * s->ldv, s->ldv, pk, M, 1, w.dS, Dh, n, Dh, M,
                              1.0f);
                mp->backward(mp, b, h, l0, n, 1, w.dphi, Mp, pk, w.map);
            }
            if (mp->end) mp->end(mp, b, h, 1, w.map);
        }
    arena_reset_to(scratch, mark);
    flops_add(linattn_flops(s, 1));
}

/* ---- The causal form (arXiv 2006.16236, eq. 8-9, §3.3) ----
 * O_i = φ(q_i)ᵀS_i / (φ(q_i)ᵀz_i + ε) with the inclusive prefix sums S_i = Σ_{j<=i} φ(k_j)v_jᵀ and
 * z_i = Σ_{j<=i} φ(k_j): the authors' causal_dot_product (idiap/fast-transformers,
 * fast_transformers/causal_product/causal_product_cpu.cpp) adds k_l v_lᵀ to its state before it
 * reads query l, and CausalLinearAttention (attention/causal_linear_attention.py) normalises by
 * φ(q_i)·cumsum(φ(K))_i + eps. They scan one row at a time; here a head is scanned in chunks of
 * C rows. With S, z the sums over the earlier chunks and A = φ(Q_c)φ(K_c)ᵀ with A_ij = 0 for j > i,
 *   num_c = φ(Q_c) S + A V_c,  den_c = φ(Q_c) z + A 1 (+ ε, clamp, guard as the other form),
 * then S += φ(K_c)ᵀV_c, z += φ(K_c)ᵀ1: O(L·C·(M + Dh) + L·M·Dh) a head. */

/* A (n × n, row stride C): zero above the diagonal (key j after query i). */
static void mask_upper(float *A, int n) {
    for (int i = 0; i < n; i++)
        memset(A + (size_t)i * LINATTN_CHUNK + i + 1, 0, (size_t)(n - i - 1) * sizeof *A);
}

/* Per head: every key chunk through the map first (LinAttnMap's order; padding rows zeroed), then
 * the chunks in order: queries through the map, the masked chunk product plus the earlier chunks'
 * S and z, then S and z take the chunk's keys. kv and z end as the sums over all keys. */
static void causal_forward_impl(float *o, float *kv, float *z, float *den, float *phq, float *phk,
                                const float *v, const unsigned char *kmask, const LinAttnShape *s,
                                const LinAttnMap *mp, Arena *scratch) {
    const int B = s->B, H = s->H, L = s->L, M = s->M, Dh = s->Dh, C = LINATTN_CHUNK;
    const size_t per = fused_thread_floats(s, mp), mark = arena_mark(scratch);
    float *work = arena_alloc(scratch, linattn_fused_scratch_floats(s, mp) * sizeof(float));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            FusedWork w = fused_carve(work + (size_t)omp_get_thread_num() * per, s, mp);
            const size_t bh = (size_t)b * H + h;
            float *S = kv + bh * M * Dh, *zz = z + bh * M;
            const float *vb = v + (size_t)b * s->bsv + (size_t)h * Dh;
            float *ob = o + (size_t)b * s->bso + (size_t)h * Dh;
            const unsigned char *km = kmask ? kmask + (size_t)b * L : NULL;
            memset(S, 0, (size_t)M * Dh * sizeof *S);
            memset(zz, 0, (size_t)M * sizeof *zz);
            for (int pass = mp->key_passes == 2 ? 0 : 1; pass <= 1; pass++)
                for (int l0 = 0; l0 < L; l0 += C) {
                    const int n = XB_MIN(C, L - l0);
                    float *pk = phk + (bh * L + l0) * M;
                    mp->map(mp, b, h, l0, n, 1, pass, pk, w.map);
                    if (pass == 1) zero_padding_rows(pk, M, M, km, l0, n);
                }
            for (int l0 = 0; l0 < L; l0 += C) {
                const int n = XB_MIN(C, L - l0);
                float *pq = phq + (bh * L + l0) * M;
                const float *pk = phk + (bh * L + l0) * M, *vc = vb + (size_t)l0 * s->ldv;
                mp->map(mp, b, h, l0, n, 0, 1, pq, w.map);
                matmul_strided(w.num, Dh, pq, M, S, Dh, n, Dh, M, MM_NN, 1.0f, 0.0f);
                matmul_strided(w.A, C, pq, M, pk, M, n, n, M, MM_NT, 1.0f, 0.0f);
                mask_upper(w.A, n);
                matmul_strided(w.num, Dh, w.A, C, vc, s->ldv, n, Dh, n, MM_NN, 1.0f, 1.0f);
                for (int l = 0; l < n; l++) {
                    float dn = dot8(pq + (size_t)l * M, zz, M); /* earlier chunks, then this */
                    for (int j = 0; j <= l; j++) dn += w.A[(size_t)l * C + j];
                    const float inv = denominator(s, bh, l0 + l, dn, den);
                    float *oi = ob + (size_t)(l0 + l) * s->ldo;
                    const float *ni = w.num + (size_t)l * Dh;
                    for (int d = 0; d < Dh; d++) oi[d] = ni[d] * inv;
                }
                matmul_strided(S, Dh, pk, M, vc, s->ldv, M, Dh, n, MM_TN, 1.0f, 1.0f);
                add_rows(zz, pk, M, n, M, NULL, 0);
            }
        }
    arena_reset_to(scratch, mark);
    /* the products counted themselves; den's φ(Q_c)z remains, 2·L·M a head */
    flops_add(2ull * (uint64_t)L * M * (uint64_t)B * H);
}

/* dA (n × n, row stride C) = dnum V_cᵀ + dden 1ᵀ, zero above the diagonal, from a = [dnum | dden]
 * (n × (Dh + 1)) and vc (n × Dh, row stride ldv). */
static void causal_dscores(float *dA, const float *a, const float *vc, int ldv, int n, int Dh) {
    const int C = LINATTN_CHUNK, K = Dh + 1;
    matmul_strided(dA, C, a, K, vc, ldv, n, n, Dh, MM_NT, 1.0f, 0.0f);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) dA[(size_t)i * C + j] += a[(size_t)i * K + Dh];
    mask_upper(dA, n);
}

/* The reverse pass of causal_forward_impl, as the authors' causal_dot_backward
 * (causal_product_cpu.cpp) splits it, by chunks. With a = [dnum | dden] (grad_rows) and
 * dA = dnum V_cᵀ + dden 1ᵀ masked as A:
 * - queries, chunks in order, S and z the prefix sums over the earlier chunks:
 *     dφ(Q_c) = dnum Sᵀ + dden zᵀ + dA φ(K_c);
 * - keys, chunks in reverse order, dS = Σ φ(Q)ᵀdnum and dz = Σ φ(Q)ᵀdden over the later chunks
 *   (suffix sums):
 *     dφ(K_c) = V_c dSᵀ + 1 dzᵀ + dAᵀ φ(Q_c) (zero on padding keys),
 *     dV_c += φ(K_c) dS + Aᵀ dnum,
 *   then dS, dz take the chunk's queries.
 * The map's backward sees the query chunks in order, then the key chunks in reverse order. */
static void causal_backward_impl(float *dv, const float *dout, const float *o, const float *phq,
                                 const float *phk, const float *v, const float *den,
                                 const unsigned char *kmask, const LinAttnShape *s,
                                 const LinAttnMap *mp, Arena *scratch) {
    const int B = s->B, H = s->H, L = s->L, M = s->M, Dh = s->Dh, K = Dh + 1, C = LINATTN_CHUNK;
    const int Mp = attn_tile_cols(M);
    const size_t per = fused_thread_floats(s, mp), mark = arena_mark(scratch);
    float *work = arena_alloc(scratch, linattn_fused_scratch_floats(s, mp) * sizeof(float));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            FusedWork w = fused_carve(work + (size_t)omp_get_thread_num() * per, s, mp);
            const size_t bh = (size_t)b * H + h;
            const float *dn = den + bh * L;
            const float *vb = v + (size_t)b * s->bsv + (size_t)h * Dh;
            const float *ob = o + (size_t)b * s->bso + (size_t)h * Dh;
            const float *gb = dout + (size_t)b * s->bso + (size_t)h * Dh;
            float *dvb = dv + (size_t)b * s->bsv + (size_t)h * Dh;
            const unsigned char *km = kmask ? kmask + (size_t)b * L : NULL;
            /* the queries: the prefix S, z in the packed piece (M × Dh, then M) */
            float *S = w.packed, *zz = w.packed + (size_t)M * Dh;
            memset(w.packed, 0, (size_t)M * K * sizeof *w.packed);
            for (int l0 = 0; l0 < L; l0 += C) {
                const int n = XB_MIN(C, L - l0);
                const float *pq = phq + (bh * L + l0) * M, *pk = phk + (bh * L + l0) * M;
                const float *vc = vb + (size_t)l0 * s->ldv;
                grad_rows(w.a, s, bh, l0, n, gb, ob, dn);
                matmul_strided(w.dphi, Mp, w.a, K, S, Dh, n, M, Dh, MM_NT, 1.0f, 0.0f);
                for (int l = 0; l < n; l++) { /* + dden zᵀ */
                    const float dd = w.a[(size_t)l * K + Dh];
                    float *gi = w.dphi + (size_t)l * Mp;
                    for (int m = 0; m < M; m++) gi[m] += dd * zz[m];
                }
                causal_dscores(w.dA, w.a, vc, s->ldv, n, Dh);
                matmul_strided(w.dphi, Mp, w.dA, C, pk, M, n, M, n, MM_NN, 1.0f, 1.0f);
                mp->backward(mp, b, h, l0, n, 0, w.dphi, Mp, pq, w.map);
                matmul_strided(S, Dh, pk, M, vc, s->ldv, M, Dh, n, MM_TN, 1.0f, 1.0f);
                add_rows(zz, pk, M, n, M, NULL, 0);
            }
            if (mp->end) mp->end(mp, b, h, 0, w.map);
            /* the keys and values, chunks in reverse order */
            memset(w.dS, 0, (size_t)M * Dh * sizeof *w.dS);
            memset(w.dz, 0, (size_t)M * sizeof *w.dz);
            const int last = (L - 1) / C * C;
            for (int l0 = last; l0 >= 0; l0 -= C) {
                const int n = XB_MIN(C, L - l0);
                const float *pq = phq + (bh * L + l0) * M, *pk = phk + (bh * L + l0) * M;
                const float *vc = vb + (size_t)l0 * s->ldv;
                grad_rows(w.a, s, bh, l0, n, gb, ob, dn);
                matmul_strided(w.A, C, pq, M, pk, M, n, n, M, MM_NT, 1.0f, 0.0f);
                mask_upper(w.A, n);
                causal_dscores(w.dA, w.a, vc, s->ldv, n, Dh);
                matmul_strided(w.dphi, Mp, vc, s->ldv, w.dS, Dh, n, M, Dh, MM_NT, 1.0f, 0.0f);
                for (int l = 0; l < n; l++) { /* + 1 dzᵀ */
                    float *gi = w.dphi + (size_t)l * Mp;
                    for (int m = 0; m < M; m++) gi[m] += w.dz[m];
                }
                matmul_strided(w.dphi, Mp, w.dA, C, pq, M, n, M, n, MM_TN, 1.0f, 1.0f);
                zero_padding_rows(w.dphi, Mp, M, km, l0, n);
                float *dvc = dvb + (size_t)l0 * s->ldv;
                matmul_strided(dvc, s->ldv, pk, M, w.dS, Dh, n, Dh, M, MM_NN, 1.0f, 1.0f);
                matmul_strided(dvc, s->ldv, w.A, C, w.a, K, n, Dh, n, MM_TN, 1.0f, 1.0f);
                matmul_strided(w.dS, Dh, pq, M, w.a, K, M, Dh, n, MM_TN, 1.0f, 1.0f);
                add_rows(w.dz, pq, M, n, M, w.a + Dh, K); /* dz += φ(Q_c)ᵀ dden, rows in order */
                mp->backward(mp, b, h, l0, n, 1, w.dphi, Mp, pk, w.map);
            }
            if (mp->end) mp->end(mp, b, h, 1, w.map);
        }
    arena_reset_to(scratch, mark);
    /* the products counted themselves; dden zᵀ and dz += φ(Q_c)ᵀdden remain, 4·L·M a head */
    flops_add(4ull * (uint64_t)L * M * (uint64_t)B * H);
}

/* The entry points, timed by core/profile.h. */
void linattn_forward(float *o, float *kv, float *z, float *den, const float *phq, const float *phk,
                     const float *v, const LinAttnShape *s) {
    prof_open(PROF_LINEAR_ATTN, 0);
    linattn_forward_impl(o, kv, z, den, phq, phk, v, s);
    prof_close();
}

void linattn_backward(float *dphq, float *dphk, float *dv, const float *dout, const float *o,
                      const float *phq, const float *phk, const float *v, const float *kv,
                      const float *z, const float *den, const LinAttnShape *s, Arena *scratch) {
    prof_open(PROF_LINEAR_ATTN, 1);
    linattn_backward_impl(dphq, dphk, dv, dout, o, phq, phk, v, kv, z, den, s, scratch);
    prof_close();
}

void linattn_fused_forward(float *o, float *kv, float *z, float *den, float *phq, float *phk,
                           const float *v, const unsigned char *kmask, const LinAttnShape *s,
                           const LinAttnMap *mp, Arena *scratch) {
    prof_open(PROF_LINEAR_ATTN, 0);
    if (s->causal)
        causal_forward_impl(o, kv, z, den, phq, phk, v, kmask, s, mp, scratch);
    else
        linattn_fused_forward_impl(o, kv, z, den, phq, phk, v, kmask, s, mp, scratch);
    prof_close();
}

void linattn_fused_backward(float *dv, const float *dout, const float *o, const float *phq,
                            const float *phk, const float *v, const float *kv, const float *z,
                            const float *den, const unsigned char *kmask, const LinAttnShape *s,
                            const LinAttnMap *mp, Arena *scratch) {
    prof_open(PROF_LINEAR_ATTN, 1);
    if (s->causal)
        causal_backward_impl(dv, dout, o, phq, phk, v, den, kmask, s, mp, scratch);
    else
        linattn_fused_backward_impl(dv, dout, o, phq, phk, v, kv, z, den, kmask, s, mp, scratch);
    prof_close();
}
