#include "kernels/attention.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "core/profile.h"
#include "kernels/attn_tile.h"

/* Tile sizes: a BQ×BK score tile (128 KiB) and the BQ×Dh accumulator stay in L2. */
enum { BQ = 128, BK = 256 };

/* The tiles hold scores in base 2, S·log2(e), so that the exponentials are powers of 2
 * (attn_tile_exp2); the log-sum-exp the kernel saves and returns is in natural units. */
#define LOG2E 1.44269504088896341f
#define LN2 0.693147180559945309f

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

/* Per-thread scratch, in floats: the transposed score tile S (keys × queries) and the backward's
 * dS, the pattern mask (and the transposed dS handed to a data bias), the data bias's tile and
 * work, the output accumulator, the packed query tile and dO tile, column vectors, the key bias
 * and the range lists (as floats' worth of ints), each start aligned to 64 bytes. */
static size_t thread_floats(const AttnShape *s) {
    const size_t bq = (size_t)tile_rows(s), bqp = (size_t)attn_tile_cols(tile_rows(s));
    const int masked = (s->pattern && s->pattern->mask) || s->bias;
    size_t n = 2 * BK * bqp + bq * (size_t)s->Dv + bqp * ((size_t)s->Dh + (size_t)s->Dv) + 6 * bqp +
               BK + 2 * (size_t)max_ranges(s) + 10 * 16;
    if (masked) n += bq * BK + 16;
    if (s->bias) n += bq * BK + s->bias->work_floats + 32;
    return n;
}

size_t attn_scratch_floats(const AttnShape *s, int nthreads) {
    return (size_t)nthreads * thread_floats(s) + 64;
}

/* Additive key bias for keys [j0, j0+bk): 0 visible, -inf padding (the causal limit is applied per
 * query). Tiles of padding are computed like any other, so the work does not depend on the data.
 */
static void key_bias(float *kb, const unsigned char *km, int j0, int bk) {
    for (int j = 0; j < bk; j++) kb[j] = (km && !km[j0 + j]) ? -INFINITY : 0.0f;
}

static inline float *align_floats(float *p) {
    uintptr_t u = (uintptr_t)p;
    u = (u + 63) & ~(uintptr_t)63;
    return (float *)u;
}

/* Thread-local views of the scratch. Tiles of scores are stored transposed, keys × queries, with
 * row stride bqp = attn_tile_cols(bq); the padding columns hold finite values nobody reads. */
typedef struct Work {
    float *S, *T;         /* (BK, bqp): scores / probabilities; the backward's dS */
    float *M;             /* (bq, BK): the pattern's mask tile; the transposed dS for a data bias */
    float *X, *bw;        /* with a data bias: (bq, BK) its tile; its callbacks' work */
    float *acc;           /* (bq, Dv) */
    float *qt, *ot;       /* packed Qᵀ (Dh rows), dOᵀ (Dv rows) of the query tile */
    float *m, *l, *mx;    /* (bqp): running max and sum, the tile's max */
    float *ref, *sum, *D; /* (bqp): exponentials' reference, the tile's sums, rowsum(dO ∘ O) */
    float *kb;            /* (BK) */
    int *lo, *hi;         /* (max_ranges) */
} Work;

static Work carve(float *base, const AttnShape *s) {
    const size_t bq = (size_t)tile_rows(s), bqp = (size_t)attn_tile_cols(tile_rows(s));
    Work w;
    memset(&w, 0, sizeof w);
    float *p = align_floats(base);
    w.S = p, p = align_floats(p + BK * bqp);
    w.T = p, p = align_floats(p + BK * bqp);
    if ((s->pattern && s->pattern->mask) || s->bias) w.M = p, p = align_floats(p + bq * BK);
    if (s->bias) {
        w.X = p, p = align_floats(p + bq * BK);
        w.bw = p, p = align_floats(p + s->bias->work_floats);
    }
    w.acc = p, p = align_floats(p + bq * (size_t)s->Dv);
    w.qt = p, p = align_floats(p + bqp * (size_t)s->Dh);
    w.ot = p, p = align_floats(p + bqp * (size_t)s->Dv);
    w.m = p, w.l = p + bqp, w.mx = p + 2 * bqp, w.ref = p + 3 * bqp, w.sum = p + 4 * bqp,
    w.D = p + 5 * bqp, p = align_floats(p + 6 * bqp);
    w.kb = p, p = p + BK;
    w.lo = (int *)p, w.hi = w.lo + max_ranges(s);
    return w;
}

/* What a tile needs besides the scores and the key bias: the pattern's mask, the data bias, or the
 * causal limit inside it (query i0, the first, sees the fewest keys). */
static int tile_needs_pass(const AttnShape *s, int i0, int j0, int bk) {
    return (s->pattern && s->pattern->mask) || s->bias || key_limit(s, i0) - j0 < bk;
}

/* The extra terms of the transposed tile S (bk × bqp) of queries [i0, i0 + bq) and keys
 * [j0, j0 + bk): the pattern's mask and the data bias (both computed row-major, queries × keys, and
 * added transposed), and −inf past each query's causal limit. */
static void tile_pass(const AttnShape *s, Work *w, int b, int h, int i0, int bq, int j0, int bk,
                      float *S, int bqp) {
    const AttnPattern *pat = s->pattern;
    if (pat && pat->mask) { /* in the tile's base-2 units (a mask may be finite: Reformer's) */
        pat->mask(s, b, h, i0, bq, j0, bk, w->M, bk);
        for (int c = 0; c < bq; c++)
            for (int r = 0; r < bk; r++) S[(size_t)r * bqp + c] += LOG2E * w->M[(size_t)c * bk + r];
    }
    if (s->bias) {
        s->bias->tile(s, b, h, i0, bq, j0, bk, w->X, bk, w->bw);
        for (int c = 0; c < bq; c++)
            for (int r = 0; r < bk; r++) S[(size_t)r * bqp + c] += LOG2E * w->X[(size_t)c * bk + r];
    }
    if (key_limit(s, i0) - j0 < bk)
        for (int c = 0; c < bq; c++) {
            const int lim = key_limit(s, i0 + c) - j0; /* keys >= lim hidden */
            for (int r = lim < 0 ? 0 : lim; r < bk; r++) S[(size_t)r * bqp + c] = -INFINITY;
        }
}

/* The reference point of a query's exponentials: its max, or 0 while it has seen only −inf. */
#define MREF(mx) ((mx) == -INFINITY ? 0.0f : (mx))

/* Per query tile: Sᵀ = log2(e)·scale·K_tile·Qᵀ (+ key bias, mask), the online softmax down its
 * columns in base 2 (running max m and sum l; the accumulator's rows rescaled when the max moves),
 * acc += P·V_tile; lse = m·ln 2 + ln l.
 */
static void attn_forward_impl(float *o, float *lse, const float *q, const float *k, const float *v,
                              const unsigned char *kmask, const AttnShape *s, Arena *scratch) {
    const int B = s->B, H = s->H, Lq = s->Lq, Lk = s->Lk, Dh = s->Dh, Dv = s->Dv, TQ = tile_rows(s);
    XB_ASSERT(Dv > 0);
    const int nqt = (Lq + TQ - 1) / TQ;
    const size_t per = thread_floats(s);
    const size_t mark = arena_mark(scratch);
    float *work = arena_alloc(scratch, ((size_t)omp_get_max_threads() * per + 64) * sizeof(float));
    uint64_t done = 0; /* matrix-product FLOPs actually computed */

#pragma omp parallel for collapse(3) schedule(static) reduction(+ : done)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int qt = 0; qt < nqt; qt++) {
                Work w = carve(work + (size_t)omp_get_thread_num() * per, s);
                const int i0 = qt * TQ, bq = XB_MIN(TQ, Lq - i0), bqp = attn_tile_cols(bq);
                const float *qb = q + (size_t)b * s->bsq + (size_t)i0 * s->ldq + (size_t)h * Dh;
                const float *kbase = k + (size_t)b * s->bsk + (size_t)h * Dh;
                const float *vbase = v + (size_t)b * s->bsv + (size_t)h * Dv;
                const unsigned char *km = kmask ? kmask + (size_t)b * Lk : NULL;
                attn_tile_pack(w.qt, qb, s->ldq, bq, Dh, LOG2E * s->scale);
                for (int c = 0; c < bqp; c++) w.m[c] = -INFINITY, w.l[c] = 0.0f;
                memset(w.acc, 0, (size_t)bq * Dv * sizeof *w.acc);
                const int nr = tile_ranges(s, b, h, i0, bq, w.lo, w.hi);
                for (int r = 0; r < nr; r++)
                    for (int j0 = w.lo[r]; j0 < w.hi[r]; j0 += BK) {
                        const int bk = XB_MIN(BK, w.hi[r] - j0);
                        if (km) key_bias(w.kb, km, j0, bk);
                        for (int c = 0; c < bqp; c++) w.mx[c] = -INFINITY;
                        const int pass = tile_needs_pass(s, i0, j0, bk);
                        attn_tile_scores(w.S, bqp, kbase + (size_t)j0 * s->ldk, s->ldk, w.qt, bk,
                                         bq, Dh, km ? w.kb : NULL, pass ? NULL : w.mx);
                        if (pass) {
                            tile_pass(s, &w, b, h, i0, bq, j0, bk, w.S, bqp);
                            attn_tile_colmax(w.S, bqp, bk, bqp, w.mx);
                        }
                        for (int c = 0; c < bqp; c++)
                            w.mx[c] = w.mx[c] > w.m[c] ? w.mx[c] : w.m[c], w.ref[c] = MREF(w.mx[c]);
                        attn_tile_exp2(w.S, bqp, bk, bqp, w.ref, w.sum);
                        for (int c = 0; c < bq; c++) {
                            const float alpha = attn_tile_exp2f(w.m[c] - w.ref[c]);
                            w.l[c] = w.l[c] * alpha + w.sum[c];
                            w.m[c] = w.mx[c];
                            if (alpha != 1.0f) {
                                float *ar = w.acc + (size_t)c * Dv;
                                for (int d = 0; d < Dv; d++) ar[d] *= alpha;
                            }
                        }
                        /* acc += P · V_tile, P the transpose of S */
                        attn_tile_acc(w.acc, Dv, w.S, 1, bqp, vbase + (size_t)j0 * s->ldv, s->ldv,
                                      bq, Dv, bk, 1.0f);
                        done += 2ull * (uint64_t)bq * (uint64_t)bk * (uint64_t)(Dh + Dv);
                    }
                float *ob = o + (size_t)b * s->bso + (size_t)i0 * s->ldo + (size_t)h * Dv;
                float *lb = lse + ((size_t)b * H + h) * Lq + i0;
                for (int i = 0; i < bq; i++) {
                    const float inv = w.l[i] > 0.0f ? 1.0f / w.l[i] : 0.0f;
                    float *oi = ob + (size_t)i * s->ldo;
                    const float *ai = w.acc + (size_t)i * Dv;
                    for (int d = 0; d < Dv; d++) oi[d] = ai[d] * inv;
                    lb[i] = w.l[i] > 0.0f ? w.m[i] * LN2 + logf(w.l[i]) : -INFINITY;
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
    uint64_t done = 0;

    /* One (b, h) per task, its query tiles in order: dK and dV of a head accumulate without races
     * and every sum has a fixed order, so the bits do not depend on the thread count. The tiles
     * are exactly the forward's, recomputed from the saved log-sum-exp. */
#pragma omp parallel for collapse(2) schedule(static) reduction(+ : done)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            Work w = carve(work + (size_t)omp_get_thread_num() * per, s);
            const size_t qoff = (size_t)b * s->bsq + (size_t)h * Dh;
            const size_t ooff = (size_t)b * s->bso + (size_t)h * Dv;
            const size_t koff = (size_t)b * s->bsk + (size_t)h * Dh;
            const size_t voff = (size_t)b * s->bsv + (size_t)h * Dv;
            const float *lb = lse + ((size_t)b * H + h) * Lq;
            const float *dlb = dlse ? dlse + ((size_t)b * H + h) * Lq : NULL;
            const unsigned char *km = kmask ? kmask + (size_t)b * Lk : NULL;
            for (int i0 = 0; i0 < Lq; i0 += TQ) {
                const int bq = XB_MIN(TQ, Lq - i0), bqp = attn_tile_cols(bq);
                const float *qt = q + qoff + (size_t)i0 * s->ldq;
                const float *dot = dout + ooff + (size_t)i0 * s->ldo;
                attn_tile_pack(w.qt, qt, s->ldq, bq, Dh, LOG2E * s->scale);
                attn_tile_pack(w.ot, dot, s->ldo, bq, Dv, 1.0f);
                for (int i = 0; i < bqp;
                     i++) { /* D = rowsum(dO ∘ O) − dlse; P's reference (base 2) */
                    if (i >= bq) {
                        w.D[i] = 0.0f, w.ref[i] = INFINITY;
                        continue;
                    }
                    const float *doi = dot + (size_t)i * s->ldo;
                    const float *oi = o + ooff + (size_t)(i0 + i) * s->ldo;
                    float acc = 0.0f;
                    for (int d = 0; d < Dv; d++) acc += doi[d] * oi[d];
                    w.D[i] = dlb && lb[i0 + i] != -INFINITY ? acc - dlb[i0 + i] : acc;
                    w.ref[i] = lb[i0 + i] == -INFINITY ? INFINITY : LOG2E * lb[i0 + i];
                }
                const int nr = tile_ranges(s, b, h, i0, bq, w.lo, w.hi);
                for (int r = 0; r < nr; r++)
                    for (int j0 = w.lo[r]; j0 < w.hi[r]; j0 += BK) {
                        const int bk = XB_MIN(BK, w.hi[r] - j0);
                        const float *kt = k + koff + (size_t)j0 * s->ldk;
                        const float *vt = v + voff + (size_t)j0 * s->ldv;
                        if (km) key_bias(w.kb, km, j0, bk);
                        /* Pᵀ = 2^(log2(e)·(scale·K Qᵀ + mask − lse)) */
                        attn_tile_scores(w.S, bqp, kt, s->ldk, w.qt, bk, bq, Dh, km ? w.kb : NULL,
                                         NULL);
                        if (tile_needs_pass(s, i0, j0, bk))
                            tile_pass(s, &w, b, h, i0, bq, j0, bk, w.S, bqp);
                        attn_tile_exp2(w.S, bqp, bk, bqp, w.ref, NULL);
                        /* dV_tile += Pᵀ dO */
                        attn_tile_acc(dv + voff + (size_t)j0 * s->ldv, s->ldv, w.S, bqp, 1, dot,
                                      s->ldo, bk, Dv, bq, 1.0f);
                        /* dSᵀ = Pᵀ ∘ (V_tile dOᵀ − D) */
                        attn_tile_dscores(w.T, bqp, vt, s->ldv, w.ot, bk, bq, Dv, w.S, w.D);
                        if (s->bias) { /* its callback takes dS queries × keys */
                            for (int c = 0; c < bq; c++)
                                for (int j = 0; j < bk; j++)
                                    w.M[(size_t)c * bk + j] = w.T[(size_t)j * bqp + c];
                            s->bias->tile_backward(s, b, h, i0, bq, j0, bk, w.M, bk, w.bw);
                        }
                        /* dQ += scale · dS K_tile ; dK_tile += scale · dSᵀ Q */
                        attn_tile_acc(dq + qoff + (size_t)i0 * s->ldq, s->ldq, w.T, 1, bqp, kt,
                                      s->ldk, bq, Dh, bk, s->scale);
                        attn_tile_acc(dk + koff + (size_t)j0 * s->ldk, s->ldk, w.T, bqp, 1, qt,
                                      s->ldq, bk, Dh, bq, s->scale);
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
