#include "kernels/attn_tile.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define XB_TILE_AVX2 1
#include <immintrin.h>
#define AVX2_FN __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#endif

enum { NR = ATTN_TILE_NR, MR = 6 }; /* a register tile: 6 rows × 16 columns */

static int force_portable;

void attn_tile_force_portable(int on) { force_portable = on; }

int attn_tile_uses_avx2(void) {
#ifdef XB_TILE_AVX2
    static int have = -1;
    if (have < 0) have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return have && !force_portable;
#else
    return 0;
#endif
}

void attn_tile_pack(float *bt, const float *b, int ldb, int n, int k, float alpha) {
    for (int p = 0; p < attn_tile_cols(n) / NR; p++) {
        float *dst = bt + (size_t)p * k * NR;
        for (int c = 0; c < NR; c++) {
            const int j = p * NR + c;
            const float *src = b + (size_t)j * ldb;
            if (j < n)
                for (int d = 0; d < k; d++) dst[(size_t)d * NR + c] = alpha * src[d];
            else
                for (int d = 0; d < k; d++) dst[(size_t)d * NR + c] = 0.0f;
        }
    }
}

/* 2^x after Cephes exp2f: x = n + r with n = round(x) (exact), |r| <= 1/2, 2^r = 1 + r·P(r) with P
 * of degree 5 (relative error 1.7e-7), 2^n by building the exponent bits; 0 below −126, NaN for
 * NaN. */
#define EXP2_LO -126.0f
#define EXP2_HI 127.0f
#define EXP2_P0 1.535336188319500e-4f
#define EXP2_P1 1.339887440266574e-3f
#define EXP2_P2 9.618437357674640e-3f
#define EXP2_P3 5.550332471162809e-2f
#define EXP2_P4 2.402264791363012e-1f
#define EXP2_P5 6.931472028550421e-1f
#define EXP2_MAGIC 12582912.0f /* 1.5·2^23: adding it rounds to an integer */

float attn_tile_exp2f(float x) {
    float xc = x > EXP2_LO ? x : EXP2_LO; /* NaN fails the compare and becomes lo */
    xc = xc < EXP2_HI ? xc : EXP2_HI;
    const float t = xc + EXP2_MAGIC, n = t - EXP2_MAGIC, r = xc - n;
    float p = EXP2_P0;
    p = p * r + EXP2_P1;
    p = p * r + EXP2_P2;
    p = p * r + EXP2_P3;
    p = p * r + EXP2_P4;
    p = p * r + EXP2_P5;
    p = r * p + 1.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    const uint32_t bits = (tb << 23) + (127u << 23); /* t's low bits hold n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x != x ? x : x < EXP2_LO ? 0.0f : p * scale;
}

/* ---------------------------------------------------------------------------------------------
 * Portable C: the same loops, each element's products summed in the same order. */

static void scores_portable(float *c, int ldc, const float *a, int lda, const float *bt, int m,
                            int n, int k, const float *rowbias, float *colmax, const float *e,
                            const float *colsub) {
    for (int p = 0; p < attn_tile_cols(n) / NR; p++) {
        const float *bp = bt + (size_t)p * k * NR;
        for (int r = 0; r < m; r++) {
            const float *ar = a + (size_t)r * lda;
            float acc[NR] = {0};
            for (int d = 0; d < k; d++)
                for (int j = 0; j < NR; j++) acc[j] += ar[d] * bp[(size_t)d * NR + j];
            float *cr = c + (size_t)r * ldc + p * NR;
            if (e) {
                const float *er = e + (size_t)r * ldc + p * NR;
                for (int j = 0; j < NR; j++) cr[j] = er[j] * (acc[j] - colsub[p * NR + j]);
                continue;
            }
            for (int j = 0; j < NR; j++) cr[j] = rowbias ? acc[j] + rowbias[r] : acc[j];
            if (colmax)
                for (int j = 0; j < NR; j++)
                    colmax[p * NR + j] = cr[j] > colmax[p * NR + j] ? cr[j] : colmax[p * NR + j];
        }
    }
}

static void acc_portable(float *c, int ldc, const float *a, int ars, int acs, const float *b,
                         int ldb, int m, int n, int kk, float alpha) {
    for (int i = 0; i < m; i++)
        for (int j0 = 0; j0 < n; j0 += NR) {
            const int nc = n - j0 < NR ? n - j0 : NR;
            float acc[NR] = {0};
            for (int t = 0; t < kk; t++) {
                const float av = a[(size_t)i * ars + (size_t)t * acs];
                const float *bt = b + (size_t)t * ldb + j0;
                for (int j = 0; j < nc; j++) acc[j] += av * bt[j];
            }
            float *ci = c + (size_t)i * ldc + j0;
            for (int j = 0; j < nc; j++) ci[j] += alpha * acc[j];
        }
}

static void exp2_portable(float *s, int lds, int m, int n, const float *ref, float *colsum) {
    if (colsum)
        for (int c = 0; c < n; c++) colsum[c] = 0.0f;
    for (int r = 0; r < m; r++) {
        float *sr = s + (size_t)r * lds;
        for (int c = 0; c < n; c++) {
            sr[c] = attn_tile_exp2f(sr[c] - ref[c]);
            if (colsum) colsum[c] += sr[c];
        }
    }
}

static void exp2_row_portable(float *y, const float *x, int n, float ref, float a, float b) {
    for (int i = 0; i < n; i++) y[i] = a * (attn_tile_exp2f(x[i] - ref) + b);
}

static void colmax_portable(const float *s, int lds, int m, int n, float *colmax) {
    for (int r = 0; r < m; r++)
        for (int c = 0; c < n; c++) {
            const float v = s[(size_t)r * lds + c];
            colmax[c] = v > colmax[c] ? v : colmax[c];
        }
}

/* ---------------------------------------------------------------------------------------------
 * AVX2 with FMA. */
#ifdef XB_TILE_AVX2

/* attn_tile_exp2f on 8 lanes, its multiply-adds fused. The clamps keep a NaN (their operand
 * order: maxps and minps return the second operand when one is NaN). */
AVX2_INLINE __m256 exp2_8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(EXP2_LO), magic = _mm256_set1_ps(EXP2_MAGIC);
    const __m256 xc = _mm256_min_ps(_mm256_set1_ps(EXP2_HI), _mm256_max_ps(lo, x));
    const __m256 t = _mm256_add_ps(xc, magic);
    const __m256 r = _mm256_sub_ps(xc, _mm256_sub_ps(t, magic));
    __m256 p = _mm256_set1_ps(EXP2_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP2_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP2_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP2_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP2_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP2_P5));
    p = _mm256_fmadd_ps(r, p, _mm256_set1_ps(1.0f));
    /* t's bits are magic's plus n, and magic's low 9 bits are 0: (t << 23) is n << 23 */
    const __m256i bits = _mm256_add_epi32(_mm256_slli_epi32(_mm256_castps_si256(t), 23),
                                          _mm256_set1_epi32(127 << 23));
    const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y); /* below lo (and −inf): 0 */
}

/* The scores of MR_ rows against one 16-column panel (MR_ a constant after inlining). */
AVX2_INLINE void scores_tile(const int MR_, float *c, int ldc, const float *a, int lda,
                             const float *bp, int k, const float *rowbias, __m256 *mx,
                             const float *e, const float *colsub) {
    __m256 c0[MR], c1[MR];
    for (int r = 0; r < MR_; r++) c0[r] = c1[r] = _mm256_setzero_ps();
    for (int d = 0; d < k; d++) {
        const __m256 b0 = _mm256_loadu_ps(bp + (size_t)d * NR);
        const __m256 b1 = _mm256_loadu_ps(bp + (size_t)d * NR + 8);
        for (int r = 0; r < MR_; r++) {
            const __m256 av = _mm256_broadcast_ss(a + (size_t)r * lda + d);
            c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
        }
    }
    if (e) {
        const __m256 s0 = _mm256_loadu_ps(colsub), s1 = _mm256_loadu_ps(colsub + 8);
        for (int r = 0; r < MR_; r++) {
            const float *er = e + (size_t)r * ldc;
            float *cr = c + (size_t)r * ldc;
            _mm256_storeu_ps(cr, _mm256_mul_ps(_mm256_loadu_ps(er), _mm256_sub_ps(c0[r], s0)));
            _mm256_storeu_ps(cr + 8,
                             _mm256_mul_ps(_mm256_loadu_ps(er + 8), _mm256_sub_ps(c1[r], s1)));
        }
        return;
    }
    for (int r = 0; r < MR_; r++) {
        __m256 v0 = c0[r], v1 = c1[r];
        if (rowbias) {
            const __m256 rb = _mm256_broadcast_ss(rowbias + r);
            v0 = _mm256_add_ps(v0, rb), v1 = _mm256_add_ps(v1, rb);
        }
        float *cr = c + (size_t)r * ldc;
        _mm256_storeu_ps(cr, v0);
        _mm256_storeu_ps(cr + 8, v1);
        mx[0] = _mm256_max_ps(mx[0], v0);
        mx[1] = _mm256_max_ps(mx[1], v1);
    }
}

AVX2_FN static void scores_avx2(float *c, int ldc, const float *a, int lda, const float *bt, int m,
                                int n, int k, const float *rowbias, float *colmax, const float *e,
                                const float *colsub) {
    for (int p = 0; p < attn_tile_cols(n) / NR; p++) {
        const float *bp = bt + (size_t)p * k * NR;
        __m256 mx[2] = {_mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY)};
        int r = 0;
        for (; r + MR <= m; r += MR)
            scores_tile(MR, c + (size_t)r * ldc + p * NR, ldc, a + (size_t)r * lda, lda, bp, k,
                        rowbias ? rowbias + r : NULL, mx, e ? e + (size_t)r * ldc + p * NR : NULL,
                        colsub ? colsub + p * NR : NULL);
        float *cr = c + (size_t)r * ldc + p * NR;
        const float *ar = a + (size_t)r * lda, *rb = rowbias ? rowbias + r : NULL;
        const float *er = e ? e + (size_t)r * ldc + p * NR : NULL;
        const float *cs = colsub ? colsub + p * NR : NULL;
        switch (m - r) {
        case 5:
            scores_tile(5, cr, ldc, ar, lda, bp, k, rb, mx, er, cs);
            break;
        case 4:
            scores_tile(4, cr, ldc, ar, lda, bp, k, rb, mx, er, cs);
            break;
        case 3:
            scores_tile(3, cr, ldc, ar, lda, bp, k, rb, mx, er, cs);
            break;
        case 2:
            scores_tile(2, cr, ldc, ar, lda, bp, k, rb, mx, er, cs);
            break;
        case 1:
            scores_tile(1, cr, ldc, ar, lda, bp, k, rb, mx, er, cs);
            break;
        default:
            break;
        }
        if (colmax) {
            float *cm = colmax + p * NR;
            _mm256_storeu_ps(cm, _mm256_max_ps(_mm256_loadu_ps(cm), mx[0]));
            _mm256_storeu_ps(cm + 8, _mm256_max_ps(_mm256_loadu_ps(cm + 8), mx[1]));
        }
    }
}

/* Lanes [0, n) of a mask (n in 0..8). */
static const int32_t lane_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* C rows [0, MR_) × 16 columns (FULL) or the first nc columns (masks m0, m1) += alpha·A·B. */
AVX2_INLINE void acc_tile(const int MR_, const int FULL, float *c, int ldc, const float *a, int ars,
                          int acs, const float *b, int ldb, int kk, float alpha, __m256i m0,
                          __m256i m1) {
    __m256 c0[MR], c1[MR];
    for (int r = 0; r < MR_; r++) c0[r] = c1[r] = _mm256_setzero_ps();
    for (int t = 0; t < kk; t++) {
        const float *bt = b + (size_t)t * ldb, *at = a + (size_t)t * acs;
        const __m256 b0 = FULL ? _mm256_loadu_ps(bt) : _mm256_maskload_ps(bt, m0);
        const __m256 b1 = FULL ? _mm256_loadu_ps(bt + 8) : _mm256_maskload_ps(bt + 8, m1);
        for (int r = 0; r < MR_; r++) {
            const __m256 av = _mm256_broadcast_ss(at + (size_t)r * ars);
            c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
        }
    }
    const __m256 al = _mm256_set1_ps(alpha);
    for (int r = 0; r < MR_; r++) {
        float *cr = c + (size_t)r * ldc;
        if (FULL) {
            _mm256_storeu_ps(cr, _mm256_fmadd_ps(al, c0[r], _mm256_loadu_ps(cr)));
            _mm256_storeu_ps(cr + 8, _mm256_fmadd_ps(al, c1[r], _mm256_loadu_ps(cr + 8)));
        } else {
            _mm256_maskstore_ps(cr, m0, _mm256_fmadd_ps(al, c0[r], _mm256_maskload_ps(cr, m0)));
            _mm256_maskstore_ps(cr + 8, m1,
                                _mm256_fmadd_ps(al, c1[r], _mm256_maskload_ps(cr + 8, m1)));
        }
    }
}

AVX2_INLINE void acc_cols(const int FULL, float *c, int ldc, const float *a, int ars, int acs,
                          const float *b, int ldb, int m, int kk, float alpha, __m256i m0,
                          __m256i m1) {
    int i = 0;
    for (; i + MR <= m; i += MR)
        acc_tile(MR, FULL, c + (size_t)i * ldc, ldc, a + (size_t)i * ars, ars, acs, b, ldb, kk,
                 alpha, m0, m1);
    float *ci = c + (size_t)i * ldc;
    const float *ai = a + (size_t)i * ars;
    switch (m - i) {
    case 5:
        acc_tile(5, FULL, ci, ldc, ai, ars, acs, b, ldb, kk, alpha, m0, m1);
        break;
    case 4:
        acc_tile(4, FULL, ci, ldc, ai, ars, acs, b, ldb, kk, alpha, m0, m1);
        break;
    case 3:
        acc_tile(3, FULL, ci, ldc, ai, ars, acs, b, ldb, kk, alpha, m0, m1);
        break;
    case 2:
        acc_tile(2, FULL, ci, ldc, ai, ars, acs, b, ldb, kk, alpha, m0, m1);
        break;
    case 1:
        acc_tile(1, FULL, ci, ldc, ai, ars, acs, b, ldb, kk, alpha, m0, m1);
        break;
    default:
        break;
    }
}

AVX2_FN static void acc_avx2(float *c, int ldc, const float *a, int ars, int acs, const float *b,
                             int ldb, int m, int n, int kk, float alpha) {
    const __m256i all = _mm256_set1_epi32(-1);
    for (int j0 = 0; j0 < n; j0 += NR) {
        const int nc = n - j0;
        if (nc >= NR) {
            acc_cols(1, c + j0, ldc, a, ars, acs, b + j0, ldb, m, kk, alpha, all, all);
        } else {
            const int n0 = nc < 8 ? nc : 8, n1 = nc - n0;
            const __m256i m0 = _mm256_loadu_si256((const __m256i *)(lane_tab + 8 - n0));
            const __m256i m1 = _mm256_loadu_si256((const __m256i *)(lane_tab + 8 - n1));
            acc_cols(0, c + j0, ldc, a, ars, acs, b + j0, ldb, m, kk, alpha, m0, m1);
        }
    }
}

AVX2_FN static void exp2_avx2(float *s, int lds, int m, int n, const float *ref, float *colsum) {
    for (int c = 0; c < n; c += 8) {
        const __m256 rf = _mm256_loadu_ps(ref + c);
        __m256 sum = _mm256_setzero_ps();
        for (int r = 0; r < m; r++) {
            float *p = s + (size_t)r * lds + c;
            const __m256 v = exp2_8(_mm256_sub_ps(_mm256_loadu_ps(p), rf));
            _mm256_storeu_ps(p, v);
            sum = _mm256_add_ps(sum, v);
        }
        if (colsum) _mm256_storeu_ps(colsum + c, sum);
    }
}

AVX2_FN static void exp2_row_avx2(float *y, const float *x, int n, float ref, float a, float b) {
    const __m256 rf = _mm256_set1_ps(ref), av = _mm256_set1_ps(a), bv = _mm256_set1_ps(b);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp2_8(_mm256_sub_ps(_mm256_loadu_ps(x + i), rf));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(av, _mm256_add_ps(e, bv)));
    }
    for (; i < n; i++) y[i] = a * (attn_tile_exp2f(x[i] - ref) + b);
}

AVX2_FN static void colmax_avx2(const float *s, int lds, int m, int n, float *colmax) {
    for (int c = 0; c < n; c += 8) {
        __m256 mx = _mm256_loadu_ps(colmax + c);
        for (int r = 0; r < m; r++)
            mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + (size_t)r * lds + c));
        _mm256_storeu_ps(colmax + c, mx);
    }
}
#endif

/* ---------------------------------------------------------------------------------------------
 * The entry points. */

void attn_tile_scores(float *c, int ldc, const float *a, int lda, const float *bt, int m, int n,
                      int k, const float *rowbias, float *colmax) {
#ifdef XB_TILE_AVX2
    if (attn_tile_uses_avx2()) {
        scores_avx2(c, ldc, a, lda, bt, m, n, k, rowbias, colmax, NULL, NULL);
        return;
    }
#endif
    scores_portable(c, ldc, a, lda, bt, m, n, k, rowbias, colmax, NULL, NULL);
}

void attn_tile_dscores(float *c, int ldc, const float *a, int lda, const float *bt, int m, int n,
                       int k, const float *e, const float *colsub) {
#ifdef XB_TILE_AVX2
    if (attn_tile_uses_avx2()) {
        scores_avx2(c, ldc, a, lda, bt, m, n, k, NULL, NULL, e, colsub);
        return;
    }
#endif
    scores_portable(c, ldc, a, lda, bt, m, n, k, NULL, NULL, e, colsub);
}

void attn_tile_acc(float *c, int ldc, const float *a, int ars, int acs, const float *b, int ldb,
                   int m, int n, int kk, float alpha) {
#ifdef XB_TILE_AVX2
    if (attn_tile_uses_avx2()) {
        acc_avx2(c, ldc, a, ars, acs, b, ldb, m, n, kk, alpha);
        return;
    }
#endif
    acc_portable(c, ldc, a, ars, acs, b, ldb, m, n, kk, alpha);
}

void attn_tile_exp2(float *s, int lds, int m, int n, const float *ref, float *colsum) {
#ifdef XB_TILE_AVX2
    if (attn_tile_uses_avx2()) {
        exp2_avx2(s, lds, m, n, ref, colsum);
        return;
    }
#endif
    exp2_portable(s, lds, m, n, ref, colsum);
}

void attn_tile_exp2_row(float *y, const float *x, int n, float ref, float a, float b) {
#ifdef XB_TILE_AVX2
    if (attn_tile_uses_avx2()) {
        exp2_row_avx2(y, x, n, ref, a, b);
        return;
    }
#endif
    exp2_row_portable(y, x, n, ref, a, b);
}

void attn_tile_colmax(const float *s, int lds, int m, int n, float *colmax) {
#ifdef XB_TILE_AVX2
    if (attn_tile_uses_avx2()) {
        colmax_avx2(s, lds, m, n, colmax);
        return;
    }
#endif
    colmax_portable(s, lds, m, n, colmax);
}
