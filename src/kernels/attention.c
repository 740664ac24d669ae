#include "kernels/attention.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "kernels/fastmath.h"
#include "core/profile.h"

/* Tile sizes: a BQ×BK score tile (64 KiB) and the BQ×Dh accumulator stay in L2. */
enum { BQ = 128, BK = 256 };

AttnShape attn_shape(int B, int H, int Lq, int Lk, int Dh, int ldq, int ldk, int ldv, int ldo) {
    AttnShape s;
    memset(&s, 0, sizeof s);
    s.B = B;
    s.H = H;
    s.Lq = Lq;
    s.Lk = Lk;
    s.Dh = Dh;
    s.ldq = ldq;
    s.ldk = ldk;
    s.ldv = ldv;
    s.ldo = ldo;
    s.bsq = (size_t)Lq * (size_t)ldq;
    s.bsk = (size_t)Lk * (size_t)ldk;
    s.bsv = (size_t)Lk * (size_t)ldv;
    s.bso = (size_t)Lq * (size_t)ldo;
    s.Dv = Dh;
    s.scale = 1.0f / sqrtf((float)Dh);
    return s;
}

/* Last key index (exclusive) that query row i may see. */
static inline int key_limit(const AttnShape *s, int i) {
    if (!s->causal) return s->Lk;
    int lim = i + 1 + (s->Lk - s->Lq);
    return lim < 0 ? 0 : (lim > s->Lk ? s->Lk : lim);
}

/* Query rows per tile. */
static int tile_rows(const AttnShape *s) {
    return s->pattern && s->pattern->bq > 0 ? s->pattern->bq : BQ;
}

static int max_ranges(const AttnShape *s) { return s->pattern ? s->pattern->max_ranges : 1; }

/* The key ranges of query rows [i0, i0 + bq) of (b, h): the pattern's, or [0, causal limit). */
static int tile_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    if (s->pattern) {
        const int n = s->pattern->ranges(s, b, h, i0, bq, lo, hi);
        XB_ASSERT(n >= 0 && n <= s->pattern->max_ranges);
        return n;
    }
    lo[0] = 0;
    hi[0] = key_limit(s, i0 + bq - 1);
    return hi[0] > 0;
}

/* Per-thread scratch, in floats: score tile, mask tile, accumulator / gradient tile, row vectors,
 * key bias, and the range lists (as floats' worth of ints). */
static size_t thread_floats(const AttnShape *s) {
    const size_t bq = (size_t)tile_rows(s);
    const size_t extra = s->bias ? bq * BK + s->bias->work_floats + 32 : 0;
    return 3 * bq * BK + bq * (size_t)s->Dv + 3 * bq + BK + 2 * (size_t)max_ranges(s) + 5 * 16 +
           extra;
}

size_t attn_scratch_floats(const AttnShape *s, int nthreads) {
    return (size_t)nthreads * thread_floats(s) + 64;
}

/* Additive key bias for keys [j0, j0+bk): 0 visible, -inf padding (the causal limit is applied per
 * row). Tiles of padding are computed like any other, so the work does not depend on the data. */
static void key_bias(float *kb, const unsigned char *km, int j0, int bk) {
    for (int j = 0; j < bk; j++) kb[j] = (km && !km[j0 + j]) ? -INFINITY : 0.0f;
}

static inline float *align_floats(float *p) {
    uintptr_t u = (uintptr_t)p;
    u = (u + 63) & ~(uintptr_t)63;
    return (float *)u;
}

/* Thread-local views of the scratch. */
typedef struct Work {
    float *S, *M, *T, *acc; /* (bq, BK) scores / probabilities, mask, dP; (bq, Dh) */
    float *r1, *r2, *r3;    /* (bq) */
    float *kb;              /* (BK) */
    int *lo, *hi;           /* (max_ranges) */
    float *X, *bw;          /* with a data bias: (bq, BK) its tile; its callbacks' work */
} Work;

static Work carve(float *base, const AttnShape *s) {
    const size_t bq = (size_t)tile_rows(s);
    Work w;
    float *p = align_floats(base);
    w.S = p, p = align_floats(p + bq * BK);
    w.M = p, p = align_floats(p + bq * BK);
    w.T = p, p = align_floats(p + bq * BK);
    w.acc = p, p = align_floats(p + bq * (size_t)s->Dv);
    w.r1 = p, w.r2 = p + bq, w.r3 = p + 2 * bq, p = align_floats(p + 3 * bq);
    w.kb = p, p = p + BK;
    w.lo = (int *)p, w.hi = w.lo + max_ranges(s);
    w.X = w.bw = NULL;
    if (s->bias) {
        p = align_floats(p + 2 * (size_t)max_ranges(s));
        w.X = p, p = align_floats(p + bq * BK);
        w.bw = p;
    }
    return w;
}

/* In place over the tile S (bq, bk): S[i][j] ← S[i][j] + kb[j] + M[i][j] for keys the row may see
 * (causality), −inf otherwise. Returns nothing; M may be NULL. */
static void bias_tile(const AttnShape *s, float *S, const float *M, const float *kb, int i0, int bq,
                      int j0, int bk) {
    for (int i = 0; i < bq; i++) {
        float *Si = S + (size_t)i * bk;
        const int lim = key_limit(s, i0 + i) - j0; /* keys >= lim hidden */
        if (M) {
            const float *Mi = M + (size_t)i * bk;
#pragma omp simd
            for (int j = 0; j < bk; j++) Si[j] = j < lim ? Si[j] + kb[j] + Mi[j] : -INFINITY;
        } else {
#pragma omp simd
            for (int j = 0; j < bk; j++) Si[j] = j < lim ? Si[j] + kb[j] : -INFINITY;
        }
    }
}

/* S += the data bias of the tile (−inf entries stay −inf). */
static void add_data_bias(const AttnShape *s, Work *w, int b, int h, int i0, int bq, int j0, int bk,
                          float *S) {
    s->bias->tile(s, b, h, i0, bq, j0, bk, w->X, bk, w->bw);
    for (size_t k = 0; k < (size_t)bq * bk; k++) S[k] += w->X[k];
}

/* The reference point of a row's exponentials: its max, or 0 while the row has seen only −inf. */
#define MREF(mx) ((mx) == -INFINITY ? 0.0f : (mx))

/* Each of rows n < SUM_ROWS of S (n × bk) summed left to right, as a plain loop would: the same
 * float result, bit for bit (a vector reduction would reorder the sum). One row's sum is a chain of
 * dependent additions that waits on the adder's latency; the rows' chains are interleaved so the
 * adder stays busy. */
enum { SUM_ROWS = 8 };

static void row_sums(const float *S, int n, int bk, float *sum) {
    if (n == SUM_ROWS) {
        float a[SUM_ROWS] = {0};
        for (int j = 0; j < bk; j++)
            for (int r = 0; r < SUM_ROWS; r++) a[r] += S[(size_t)r * bk + j];
        for (int r = 0; r < SUM_ROWS; r++) sum[r] = a[r];
        return;
    }
    for (int r = 0; r < n; r++) {
        float t = 0.0f;
        for (int j = 0; j < bk; j++) t += S[(size_t)r * bk + j];
        sum[r] = t;
    }
}

static void attn_forward_impl(float *o, float *lse, const float *q, const float *k, const float *v,
                              const unsigned char *kmask, const AttnShape *s, Arena *scratch) {
    const int B = s->B, H = s->H, Lq = s->Lq, Lk = s->Lk, Dh = s->Dh, Dv = s->Dv, TQ = tile_rows(s);
    XB_ASSERT(Dv > 0);
    const int nqt = (Lq + TQ - 1) / TQ;
    const size_t per = thread_floats(s);
    const size_t mark = arena_mark(scratch);
    float *work = arena_alloc(scratch, ((size_t)omp_get_max_threads() * per + 64) * sizeof(float));
    const AttnPattern *pat = s->pattern;
    uint64_t done = 0; /* matrix-product FLOPs actually computed */

#pragma omp parallel for collapse(3) schedule(static) reduction(+ : done)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int qt = 0; qt < nqt; qt++) {
                Work w = carve(work + (size_t)omp_get_thread_num() * per, s);
                float *m = w.r1, *l = w.r2; /* running max and sum per row */
                float *mn = w.r3;           /* the max after this key tile */
                const int i0 = qt * TQ, bq = XB_MIN(TQ, Lq - i0);
                const float *qb = q + (size_t)b * s->bsq + (size_t)i0 * s->ldq + (size_t)h * Dh;
                const float *kbase = k + (size_t)b * s->bsk + (size_t)h * Dh;
                const float *vbase = v + (size_t)b * s->bsv + (size_t)h * Dv;
                const unsigned char *km = kmask ? kmask + (size_t)b * Lk : NULL;
                for (int i = 0; i < bq; i++) m[i] = -INFINITY, l[i] = 0.0f;
                memset(w.acc, 0, (size_t)bq * Dv * sizeof *w.acc);
                const int nr = tile_ranges(s, b, h, i0, bq, w.lo, w.hi);
                for (int r = 0; r < nr; r++)
                    for (int j0 = w.lo[r]; j0 < w.hi[r]; j0 += BK) {
                        const int bk = XB_MIN(BK, w.hi[r] - j0);
                        key_bias(w.kb, km, j0, bk);
                        /* S = scale · Q_tile · K_tileᵀ, then the mask */
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, bk, Dh, s->scale,
                                    qb, s->ldq, kbase + (size_t)j0 * s->ldk, s->ldk, 0.0f, w.S, bk);
                        if (pat && pat->mask) pat->mask(s, b, h, i0, bq, j0, bk, w.M, bk);
                        bias_tile(s, w.S, pat && pat->mask ? w.M : NULL, w.kb, i0, bq, j0, bk);
                        if (s->bias) add_data_bias(s, &w, b, h, i0, bq, j0, bk, w.S);
                        for (int i = 0; i < bq; i++) {
                            float *Si = w.S + (size_t)i * bk;
                            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
                            for (int j = 0; j < bk; j++) mx = Si[j] > mx ? Si[j] : mx;
                            mn[i] = mx > m[i] ? mx : m[i];
                            const float mref = MREF(mn[i]);
#pragma omp simd
                            for (int j = 0; j < bk; j++) Si[j] = xb_expf(Si[j] - mref);
                        }
                        for (int i = 0; i < bq; i += SUM_ROWS) {
                            const int nr = XB_MIN(SUM_ROWS, bq - i);
                            float sum[SUM_ROWS];
                            row_sums(w.S + (size_t)i * bk, nr, bk, sum);
                            for (int r = i; r < i + nr; r++) {
                                const float alpha = xb_expf(m[r] - MREF(mn[r]));
                                l[r] = l[r] * alpha + sum[r - i];
                                m[r] = mn[r];
                                float *ar = w.acc + (size_t)r * Dv;
                                for (int d = 0; d < Dv; d++) ar[d] *= alpha;
                            }
                        }
                        /* acc += P · V_tile */
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, Dv, bk, 1.0f,
                                    w.S, bk, vbase + (size_t)j0 * s->ldv, s->ldv, 1.0f, w.acc, Dv);
                        done += 2ull * (uint64_t)bq * (uint64_t)bk * (uint64_t)(Dh + Dv);
                        if (s->bias) done += s->bias->tile_flops(s, bq, bk, 0);
                    }
                float *ob = o + (size_t)b * s->bso + (size_t)i0 * s->ldo + (size_t)h * Dv;
                float *lb = lse + ((size_t)b * H + h) * Lq + i0;
                for (int i = 0; i < bq; i++) {
                    const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
                    float *oi = ob + (size_t)i * s->ldo;
                    const float *ai = w.acc + (size_t)i * Dv;
                    for (int d = 0; d < Dv; d++) oi[d] = ai[d] * inv;
                    lb[i] = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
                }
            }
    flops_add(done);
    arena_reset_to(scratch, mark);
}

static void attn_backward_impl(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *o, const float *lse,
                               const unsigned char *kmask, const AttnShape *s, Arena *scratch) {
    attn_backward_lse(dq, dk, dv, dout, NULL, q, k, v, o, lse, kmask, s, scratch);
}

static void attn_backward_lse_impl(float *dq, float *dk, float *dv, const float *dout,
                                   const float *dlse, const float *q, const float *k,
                                   const float *v, const float *o, const float *lse,
                                   const unsigned char *kmask, const AttnShape *s, Arena *scratch) {
    const int B = s->B, H = s->H, Lq = s->Lq, Lk = s->Lk, Dh = s->Dh, Dv = s->Dv, TQ = tile_rows(s);
    const size_t per = thread_floats(s);
    const size_t mark = arena_mark(scratch);
    float *work = arena_alloc(scratch, ((size_t)omp_get_max_threads() * per + 64) * sizeof(float));
    const AttnPattern *pat = s->pattern;
    uint64_t done = 0;

    /* One (b, h) per task, its query tiles in order: dK and dV of a head accumulate without races
     * and every sum has a fixed order, so the bits do not depend on the thread count. The tiles
     * are exactly the forward's, recomputed from the saved log-sum-exp. */
#pragma omp parallel for collapse(2) schedule(static) reduction(+ : done)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            Work w = carve(work + (size_t)omp_get_thread_num() * per, s);
            float *P = w.S, *dP = w.T, *Drow = w.r1;
            const size_t qoff = (size_t)b * s->bsq + (size_t)h * Dh;
            const size_t ooff = (size_t)b * s->bso + (size_t)h * Dv;
            const size_t koff = (size_t)b * s->bsk + (size_t)h * Dh;
            const size_t voff = (size_t)b * s->bsv + (size_t)h * Dv;
            const float *lb = lse + ((size_t)b * H + h) * Lq;
            const float *dlb = dlse ? dlse + ((size_t)b * H + h) * Lq : NULL;
            const unsigned char *km = kmask ? kmask + (size_t)b * Lk : NULL;
            for (int i0 = 0; i0 < Lq; i0 += TQ) {
                const int bq = XB_MIN(TQ, Lq - i0);
                const float *qt = q + qoff + (size_t)i0 * s->ldq;
                const float *dot = dout + ooff + (size_t)i0 * s->ldo;
                for (int i = 0; i < bq; i++) { /* D = rowsum(dO ∘ O) − dlse */
                    const float *doi = dot + (size_t)i * s->ldo;
                    const float *oi = o + ooff + (size_t)(i0 + i) * s->ldo;
                    float acc = 0.0f;
                    for (int d = 0; d < Dv; d++) acc += doi[d] * oi[d];
                    Drow[i] = dlb && lb[i0 + i] != -INFINITY ? acc - dlb[i0 + i] : acc;
                }
                const int nr = tile_ranges(s, b, h, i0, bq, w.lo, w.hi);
                for (int r = 0; r < nr; r++)
                    for (int j0 = w.lo[r]; j0 < w.hi[r]; j0 += BK) {
                        const int bk = XB_MIN(BK, w.hi[r] - j0);
                        const float *kt = k + koff + (size_t)j0 * s->ldk;
                        const float *vt = v + voff + (size_t)j0 * s->ldv;
                        key_bias(w.kb, km, j0, bk);
                        /* P = exp(scale·Q Kᵀ + mask − lse) */
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, bk, Dh, s->scale,
                                    qt, s->ldq, kt, s->ldk, 0.0f, P, bk);
                        if (pat && pat->mask) pat->mask(s, b, h, i0, bq, j0, bk, w.M, bk);
                        bias_tile(s, P, pat && pat->mask ? w.M : NULL, w.kb, i0, bq, j0, bk);
                        if (s->bias) add_data_bias(s, &w, b, h, i0, bq, j0, bk, P);
                        for (int i = 0; i < bq; i++) {
                            float *Pi = P + (size_t)i * bk;
                            const float li = lb[i0 + i];
                            const float ref = li == -INFINITY ? INFINITY : li;
#pragma omp simd
                            for (int j = 0; j < bk; j++) Pi[j] = xb_expf(Pi[j] - ref);
                        }
                        /* dV_tile += Pᵀ dO */
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, bk, Dv, bq, 1.0f, P,
                                    bk, dot, s->ldo, 1.0f, dv + voff + (size_t)j0 * s->ldv, s->ldv);
                        /* dP = dO V_tileᵀ; dS = P ∘ (dP − D) in place */
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, bk, Dv, 1.0f, dot,
                                    s->ldo, vt, s->ldv, 0.0f, dP, bk);
                        for (int i = 0; i < bq; i++) {
                            float *dPi = dP + (size_t)i * bk;
                            const float *Pi = P + (size_t)i * bk;
                            const float Di = Drow[i];
#pragma omp simd
                            for (int j = 0; j < bk; j++) dPi[j] = Pi[j] * (dPi[j] - Di);
                        }
                        if (s->bias) {
                            s->bias->tile_backward(s, b, h, i0, bq, j0, bk, dP, bk, w.bw);
                            done += s->bias->tile_flops(s, bq, bk, 1);
                        }
                        /* dQ += scale · dS K_tile ; dK_tile += scale · dSᵀ Q */
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, Dh, bk, s->scale,
                                    dP, bk, kt, s->ldk, 1.0f, dq + qoff + (size_t)i0 * s->ldq,
                                    s->ldq);
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, bk, Dh, bq, s->scale,
                                    dP, bk, qt, s->ldq, 1.0f, dk + koff + (size_t)j0 * s->ldk,
                                    s->ldk);
                        done += 2ull * (uint64_t)bq * (uint64_t)bk * (uint64_t)(3 * Dh + 2 * Dv);
                    }
            }
        }
    flops_add(done);
    arena_reset_to(scratch, mark);
}

/* The tiles the kernels visit, counted without running them (padding keys are computed like any
 * other, so the count does not depend on the data). */
uint64_t attn_flops(const AttnShape *s, int backward) {
    const int TQ = tile_rows(s), nr_max = max_ranges(s);
    int *lo = malloc((size_t)nr_max * sizeof *lo), *hi = malloc((size_t)nr_max * sizeof *hi);
    XB_ASSERT(lo && hi);
    uint64_t f = 0, fb = 0; /* pairs visited; the data bias's FLOPs */
    for (int b = 0; b < (s->pattern ? s->B : 1); b++)
        for (int h = 0; h < (s->pattern ? s->H : 1); h++)
            for (int i0 = 0; i0 < s->Lq; i0 += TQ) {
                const int bq = XB_MIN(TQ, s->Lq - i0);
                const int nr = tile_ranges(s, b, h, i0, bq, lo, hi);
                for (int r = 0; r < nr; r++) {
                    f += (uint64_t)bq * (uint64_t)(hi[r] - lo[r]);
                    for (int j0 = lo[r]; s->bias && j0 < hi[r]; j0 += BK)
                        fb += s->bias->tile_flops(s, bq, XB_MIN(BK, hi[r] - j0), backward);
                }
            }
    free(lo);
    free(hi);
    if (!s->pattern) f *= (uint64_t)s->B * (uint64_t)s->H, fb *= (uint64_t)s->B * (uint64_t)s->H;
    return fb + f * (backward ? 2ull * (3ull * (uint64_t)s->Dh + 2ull * (uint64_t)s->Dv)
                              : 2ull * ((uint64_t)s->Dh + (uint64_t)s->Dv));
}

void attn_forward_naive(float *o, float *lse, const float *q, const float *k, const float *v,
                        const unsigned char *kmask, const AttnShape *s) {
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++)
            for (int i = 0; i < s->Lq; i++) {
                const float *qi = q + (size_t)b * s->bsq + (size_t)i * s->ldq + (size_t)h * s->Dh;
                double mx = -INFINITY;
                double sc[s->Lk];
                float pm[s->Lk]; /* 0 where the pattern allows the pair: inside a range, unmasked */
                for (int j = 0; j < s->Lk; j++) pm[j] = s->pattern ? -INFINITY : 0.0f;
                if (s->pattern) {
                    const int TQ = tile_rows(s), i0 = i / TQ * TQ, bq = XB_MIN(TQ, s->Lq - i0);
                    int lo[s->pattern->max_ranges + 1], hi[s->pattern->max_ranges + 1];
                    const int nr = tile_ranges(s, b, h, i0, bq, lo, hi);
                    for (int r = 0; r < nr; r++)
                        for (int j = lo[r]; j < hi[r]; j++) pm[j] = 0.0f;
                    if (s->pattern->mask) {
                        float row[s->Lk];
                        s->pattern->mask(s, b, h, i, 1, 0, s->Lk, row, s->Lk);
                        for (int j = 0; j < s->Lk; j++) pm[j] += row[j];
                    }
                }
                for (int j = 0; j < s->Lk; j++) {
                    const float *kj =
                        k + (size_t)b * s->bsk + (size_t)j * s->ldk + (size_t)h * s->Dh;
                    double acc = 0.0;
                    for (int d = 0; d < s->Dh; d++) acc += (double)qi[d] * kj[d];
                    int vis = (!kmask || kmask[(size_t)b * s->Lk + j]) && j < key_limit(s, i) &&
                              pm[j] == 0.0f;
                    sc[j] = vis ? acc * s->scale : -INFINITY;
                    if (sc[j] > mx) mx = sc[j];
                }
                double sum = 0.0;
                for (int j = 0; j < s->Lk; j++) sum += sc[j] == -INFINITY ? 0.0 : exp(sc[j] - mx);
                float *oi = o + (size_t)b * s->bso + (size_t)i * s->ldo + (size_t)h * s->Dv;
                for (int d = 0; d < s->Dv; d++) {
                    double acc = 0.0;
                    for (int j = 0; j < s->Lk; j++) {
                        if (sc[j] == -INFINITY) continue;
                        const float *vj =
                            v + (size_t)b * s->bsv + (size_t)j * s->ldv + (size_t)h * s->Dv;
                        acc += exp(sc[j] - mx) / sum * vj[d];
                    }
                    oi[d] = sum > 0.0 ? (float)acc : 0.0f;
                }
                lse[((size_t)b * s->H + h) * s->Lq + i] =
                    sum > 0.0 ? (float)(mx + log(sum)) : -INFINITY;
            }
}

/* The entry points, timed by core/profile.h. */
void attn_forward(float *o, float *lse, const float *q, const float *k, const float *v,
                  const unsigned char *kmask, const AttnShape *s, Arena *scratch) {
    prof_open(PROF_ATTENTION, 0);
    attn_forward_impl(o, lse, q, k, v, kmask, s, scratch);
    prof_close();
}

void attn_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                   const float *k, const float *v, const float *o, const float *lse,
                   const unsigned char *kmask, const AttnShape *s, Arena *scratch) {
    prof_open(PROF_ATTENTION, 1);
    attn_backward_impl(dq, dk, dv, dout, q, k, v, o, lse, kmask, s, scratch);
    prof_close();
}

void attn_backward_lse(float *dq, float *dk, float *dv, const float *dout, const float *dlse,
                       const float *q, const float *k, const float *v, const float *o,
                       const float *lse, const unsigned char *kmask, const AttnShape *s,
                       Arena *scratch) {
    prof_open(PROF_ATTENTION, 1);
    attn_backward_lse_impl(dq, dk, dv, dout, dlse, q, k, v, o, lse, kmask, s, scratch);
    prof_close();
}
