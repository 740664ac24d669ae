#include "kernels/retention.h"

#include <omp.h>
#include <stdlib.h>

#include "core/xassert.h"
#include "kernels/fastmath.h"
#include "kernels/matmul.h"

enum { TILE = 128 }; /* tile of the parallel form */

static int tile_len(const RetShape *s) { return s->chunk > 0 ? s->chunk : TILE; }

static size_t thread_floats(const RetShape *s) {
    const size_t T = (size_t)tile_len(s), dq = (size_t)s->dq, dv = (size_t)s->dv;
    return (2 * T * T + 2 * T * dq + 2 * dq * dv + 15) / 16 * 16;
}

size_t retention_scratch_floats(const RetShape *s) {
    return (size_t)omp_get_max_threads() * thread_floats(s) + 64;
}

static inline int allowed(int dir, int n, int m) {
    return dir == RET_BOTH || (dir == RET_CAUSAL ? m <= n : m >= n);
}

/* G (ti, tj; row stride ld) = γ^{|n−m|} where position m may reach n, else 0. */
static void decay_tile(float *G, int ld, int n0, int ti, int m0, int tj, float lg, int dir) {
    for (int i = 0; i < ti; i++)
        for (int j = 0; j < tj; j++) {
            const int n = n0 + i, m = m0 + j;
            G[(size_t)i * ld + j] = allowed(dir, n, m) ? xb_expf(lg * (float)abs(n - m)) : 0.0f;
        }
}

/* o (ti, dv) += ((q kᵀ) ⊙ G) v for one block of ti queries and tj keys; S, G (ti, tj; stride ld).
 */
static void block(float *o, const float *q, const float *k, const float *v, float *S,
                  const float *G, int ld, int ti, int tj, const RetShape *s) {
    matmul_strided(S, ld, q, s->ldq, k, s->ldk, ti, tj, s->dq, MM_NT, 1.0f, 0.0f);
    for (int i = 0; i < ti; i++)
        for (int j = 0; j < tj; j++) S[(size_t)i * ld + j] *= G[(size_t)i * ld + j];
    matmul_strided(o, s->ldo, S, ld, v, s->ldv, ti, s->dv, tj, MM_NN, 1.0f, 1.0f);
}

/* One sweep of the chunkwise form over the chunks, forwards (causal cross terms) or backwards
 * (anti-causal), with the intra-chunk blocks when `intra`. A forward state after chunk c is
 * S = Σ_{m < end} γ^{end−1−m} k_mᵀ v_m and query n = c0 + i of the next chunk adds
 * γ^{i+1} q_n S; a backward state is S = Σ_{m >= c0} γ^{m−c0} k_mᵀ v_m and query c0' + i of the
 * chunk before (of n' positions) adds γ^{n'−i} q S. */
static void sweep(float *o, const float *q, const float *k, const float *v, float *work, int h,
                  int backwards, int intra, const RetShape *s) {
    const int C = s->chunk, L = s->L, dq = s->dq, dv = s->dv, nchunks = (L + C - 1) / C;
    const float lg = s->log_gamma[h];
    float *S = work, *G = S + (size_t)C * C, *Qs = G + (size_t)C * C, *Ks = Qs + (size_t)C * dq,
          *St = Ks + (size_t)C * dq;
    decay_tile(G, C, 0, C, 0, C, lg, s->dir); /* depends on n − m only: every chunk's */
    for (size_t i = 0; i < (size_t)dq * dv; i++) St[i] = 0.0f;
    for (int ci = 0; ci < nchunks; ci++) {
        const int c = backwards ? nchunks - 1 - ci : ci, c0 = c * C, n = L - c0 < C ? L - c0 : C;
        const float *qc = q + (size_t)c0 * s->ldq, *kc = k + (size_t)c0 * s->ldk,
                    *vc = v + (size_t)c0 * s->ldv;
        float *oc = o + (size_t)c0 * s->ldo;
        if (intra) block(oc, qc, kc, vc, S, G, C, n, n, s);
        for (int i = 0; i < n; i++) { /* the carried state */
            const float f = xb_expf(lg * (float)(backwards ? n - i : i + 1));
            for (int d = 0; d < dq; d++) Qs[(size_t)i * dq + d] = f * qc[(size_t)i * s->ldq + d];
        }
        matmul_strided(oc, s->ldo, Qs, dq, St, dv, n, dv, dq, MM_NN, 1.0f, 1.0f);
        for (int j = 0; j < n; j++) { /* then this chunk joins it */
            const float f = xb_expf(lg * (float)(backwards ? j : n - 1 - j));
            for (int d = 0; d < dq; d++) Ks[(size_t)j * dq + d] = f * kc[(size_t)j * s->ldk + d];
        }
        matmul_strided(St, dv, Ks, dq, vc, s->ldv, dq, dv, n, MM_TN, 1.0f, xb_expf(lg * (float)n));
    }
}

void retention_forward(float *o, const float *q, const float *k, const float *v, const RetShape *s,
                       Arena *scratch) {
    const int B = s->B, H = s->H, L = s->L;
    const size_t mark = arena_mark(scratch), per = thread_floats(s);
    float *work = arena_floats(scratch, (size_t)omp_get_max_threads() * per);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            float *w = work + (size_t)omp_get_thread_num() * per;
            const float *qb = q + (size_t)b * L * s->ldq + (size_t)h * s->hq,
                        *kb = k + (size_t)b * L * s->ldk + (size_t)h * s->hk,
                        *vb = v + (size_t)b * L * s->ldv + (size_t)h * s->hv;
            float *ob = o + (size_t)b * L * s->ldo + (size_t)h * s->ho;
            if (s->chunk > 0) {
                if (s->dir != RET_ANTICAUSAL) sweep(ob, qb, kb, vb, w, h, 0, 1, s);
                if (s->dir != RET_CAUSAL)
                    sweep(ob, qb, kb, vb, w, h, 1, s->dir == RET_ANTICAUSAL, s);
                continue;
            }
            float *S = w, *G = S + (size_t)TILE * TILE;
            for (int i0 = 0; i0 < L; i0 += TILE)
                for (int j0 = 0; j0 < L; j0 += TILE) {
                    const int ti = L - i0 < TILE ? L - i0 : TILE,
                              tj = L - j0 < TILE ? L - j0 : TILE;
                    if ((s->dir == RET_CAUSAL && j0 > i0 + ti - 1) ||
                        (s->dir == RET_ANTICAUSAL && j0 + tj - 1 < i0))
                        continue;
                    decay_tile(G, TILE, i0, ti, j0, tj, s->log_gamma[h], s->dir);
                    block(ob + (size_t)i0 * s->ldo, qb + (size_t)i0 * s->ldq,
                          kb + (size_t)j0 * s->ldk, vb + (size_t)j0 * s->ldv, S, G, TILE, ti, tj,
                          s);
                }
        }
    arena_reset_to(scratch, mark);
}

uint64_t retention_flops(const RetShape *s) {
    const uint64_t dq = (uint64_t)s->dq, dv = (uint64_t)s->dv;
    const int L = s->L, T = tile_len(s);
    uint64_t f = 0;
    if (s->chunk > 0) {
        const uint64_t sweeps = s->dir == RET_BOTH ? 2 : 1;
        for (int c0 = 0; c0 < L; c0 += T) {
            const uint64_t n = (uint64_t)(L - c0 < T ? L - c0 : T);
            f += 2 * n * n * (dq + dv) + sweeps * 4 * n * dq * dv;
        }
    } else {
        for (int i0 = 0; i0 < L; i0 += T)
            for (int j0 = 0; j0 < L; j0 += T) {
                const int ti = L - i0 < T ? L - i0 : T, tj = L - j0 < T ? L - j0 : T;
                if ((s->dir == RET_CAUSAL && j0 > i0 + ti - 1) ||
                    (s->dir == RET_ANTICAUSAL && j0 + tj - 1 < i0))
                    continue;
                f += 2 * (uint64_t)ti * (uint64_t)tj * (dq + dv);
            }
    }
    return f * (uint64_t)s->B * (uint64_t)s->H;
}
