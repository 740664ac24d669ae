#include "kernels/skinny.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "kernels/matmul.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define XB_SKINNY_AVX2 1
#include <immintrin.h>
#define AVX2_FN __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#endif

enum {
    NR = 16,     /* columns of a packed panel and of a register tile */
    MR = 6,      /* rows of a register tile: 12 accumulators, 2 panel rows, 1 broadcast */
    STRIP = 96,  /* rows of the tall operand per task: 16 register tiles, 24 KiB at K = 64 */
    BLOCK = 1024, /* rows of skinny_tn_acc's fixed blocks (at least; at most MAX_BLOCKS blocks, */
    MAX_BLOCKS = 64, /* and their partial sums at most PART_FLOATS floats: 16 MiB) */
    PART_FLOATS = 1 << 22,
    CHUNK = 256 /* rows of a block packed at a time: a 16 KiB panel, its rows of a in L2 */
};

static int force_off;

void skinny_force_off(int on) { force_off = on; }

int skinny_available(void) {
#ifdef XB_SKINNY_AVX2
    static int have = -1;
    if (have < 0)
        have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               !__builtin_cpu_supports("avx512f");
    return have && !force_off;
#else
    return 0;
#endif
}

int skinny_fits(int rows, int n, int k) {
    return rows >= SKINNY_MIN_ROWS && n >= 1 && k >= 1 && n <= SKINNY_MAX_SMALL &&
           k <= SKINNY_MAX_SMALL;
}

static int panels(int n) { return (n + NR - 1) / NR; }

static float *alloc_floats(size_t n) {
    /* 64-byte aligned; a multiple of 64 bytes as aligned_alloc wants */
    const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    XB_ASSERT(p); /* at most 1024 × 1024 floats per block (skinny_fits), as attention's tables */
    return p;
}

/* bp ← B (kk × n, element (t, j) at b[t·brs + j·bcs]) in panels of 16 columns:
 * bp[(p·kk + t)·16 + c] = B(t, 16p + c), zero past column n. */
static void pack(float *bp, const float *b, size_t brs, size_t bcs, int kk, int n) {
    for (int p = 0; p < panels(n); p++) {
        float *dst = bp + (size_t)p * kk * NR;
        const int j0 = p * NR, nc = n - j0 < NR ? n - j0 : NR;
        for (int t = 0; t < kk; t++) {
            float *d = dst + (size_t)t * NR;
            const float *s = b + (size_t)t * brs + (size_t)j0 * bcs;
            if (bcs == 1)
                memcpy(d, s, (size_t)nc * sizeof *d);
            else
                for (int c = 0; c < nc; c++) d[c] = s[(size_t)c * bcs];
            for (int c = nc; c < NR; c++) d[c] = 0.0f;
        }
    }
}

#ifdef XB_SKINNY_AVX2
/* Lanes [0, n) of a mask (n in 0..8). */
static const int32_t lane_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* Rows [0, MR_) of one panel's 16 columns (FULL, or the columns the masks m0, m1 keep) of
 * C = init + A·B (ACC 0: init is the panel's 16 values of bias, or 0 when bias is NULL) or
 * C += A·B (ACC 1). A's element (i, t) at a[i·ars + t·acs]. */
AVX2_INLINE void tile(const int MR_, const int ACC, const int FULL, float *c, size_t ldc,
                      const float *a, size_t ars, size_t acs, const float *bp, int kk,
                      const float *bias, __m256i m0, __m256i m1) {
    __m256 c0[MR], c1[MR];
    const __m256 i0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 i1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    for (int r = 0; r < MR_; r++) c0[r] = i0, c1[r] = i1;
    for (int t = 0; t < kk; t++) {
        const __m256 b0 = _mm256_load_ps(bp + (size_t)t * NR);
        const __m256 b1 = _mm256_load_ps(bp + (size_t)t * NR + 8);
        const float *at = a + (size_t)t * acs;
        for (int r = 0; r < MR_; r++) {
            const __m256 av = _mm256_broadcast_ss(at + (size_t)r * ars);
            c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
        }
    }
    for (int r = 0; r < MR_; r++) {
        float *cr = c + (size_t)r * ldc;
        __m256 v0 = c0[r], v1 = c1[r];
        if (FULL) {
            if (ACC) {
                v0 = _mm256_add_ps(_mm256_loadu_ps(cr), v0);
                v1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), v1);
            }
            _mm256_storeu_ps(cr, v0);
            _mm256_storeu_ps(cr + 8, v1);
        } else {
            if (ACC) {
                v0 = _mm256_add_ps(_mm256_maskload_ps(cr, m0), v0);
                v1 = _mm256_add_ps(_mm256_maskload_ps(cr + 8, m1), v1);
            }
            _mm256_maskstore_ps(cr, m0, v0);
            _mm256_maskstore_ps(cr + 8, m1, v1);
        }
    }
}

/* All m rows of one panel, in register tiles of 6 rows and one of the rest. */
AVX2_INLINE void panel_rows(const int ACC, const int FULL, float *c, size_t ldc, const float *a,
                            size_t ars, size_t acs, const float *bp, int m, int kk,
                            const float *bias, __m256i m0, __m256i m1) {
    int i = 0;
    for (; i + MR <= m; i += MR)
        tile(MR, ACC, FULL, c + (size_t)i * ldc, ldc, a + (size_t)i * ars, ars, acs, bp, kk, bias,
             m0, m1);
    float *ci = c + (size_t)i * ldc;
    const float *ai = a + (size_t)i * ars;
    switch (m - i) {
    case 5:
        tile(5, ACC, FULL, ci, ldc, ai, ars, acs, bp, kk, bias, m0, m1);
        break;
    case 4:
        tile(4, ACC, FULL, ci, ldc, ai, ars, acs, bp, kk, bias, m0, m1);
        break;
    case 3:
        tile(3, ACC, FULL, ci, ldc, ai, ars, acs, bp, kk, bias, m0, m1);
        break;
    case 2:
        tile(2, ACC, FULL, ci, ldc, ai, ars, acs, bp, kk, bias, m0, m1);
        break;
    case 1:
        tile(1, ACC, FULL, ci, ldc, ai, ars, acs, bp, kk, bias, m0, m1);
        break;
    default:
        break;
    }
}

/* C (m × n, row stride ldc) = bias + A·B (acc 0) or += A·B (acc 1), B packed in bp (kk rows), bias
 * padded to whole panels or NULL; panel by panel, so a panel stays in L1 for all m rows. */
AVX2_FN static void block_avx2(int acc, float *c, size_t ldc, const float *a, size_t ars,
                               size_t acs, const float *bp, int m, int n, int kk,
                               const float *bias) {
    const __m256i all = _mm256_set1_epi32(-1);
    for (int p = 0; p < panels(n); p++) {
        const float *pp = bp + (size_t)p * kk * NR, *pb = bias ? bias + p * NR : NULL;
        float *cp = c + p * NR;
        const int nc = n - p * NR;
        if (nc >= NR) {
            if (acc)
                panel_rows(1, 1, cp, ldc, a, ars, acs, pp, m, kk, NULL, all, all);
            else
                panel_rows(0, 1, cp, ldc, a, ars, acs, pp, m, kk, pb, all, all);
        } else {
            const int n0 = nc < 8 ? nc : 8, n1 = nc - n0;
            const __m256i m0 = _mm256_loadu_si256((const __m256i *)(lane_tab + 8 - n0));
            const __m256i m1 = _mm256_loadu_si256((const __m256i *)(lane_tab + 8 - n1));
            if (acc)
                panel_rows(1, 0, cp, ldc, a, ars, acs, pp, m, kk, NULL, m0, m1);
            else
                panel_rows(0, 0, cp, ldc, a, ars, acs, pp, m, kk, pb, m0, m1);
        }
    }
}
#else
static void block_avx2(int acc, float *c, size_t ldc, const float *a, size_t ars, size_t acs,
                       const float *bp, int m, int n, int kk, const float *bias) {
    (void)acc, (void)c, (void)ldc, (void)a, (void)ars, (void)acs, (void)bp, (void)m, (void)n,
        (void)kk, (void)bias;
    XB_ASSERT(!"skinny kernels called on a CPU without AVX2");
}
#endif

/* C (M, N) = bias + A·B or += A·B over strips of rows on OpenMP's threads, A (M × K) row-major. */
static void strips(int acc, float *c, const float *a, const float *bp, int M, int N, int K,
                   const float *bias) {
    const int ns = (M + STRIP - 1) / STRIP;
#pragma omp parallel for schedule(static)
    for (int s = 0; s < ns; s++) {
        const int r0 = s * STRIP, m = M - r0 < STRIP ? M - r0 : STRIP;
        block_avx2(acc, c + (size_t)r0 * N, (size_t)N, a + (size_t)r0 * K, (size_t)K, 1, bp, m, N,
                   K, bias);
    }
}

void skinny_nt(float *c, const float *a, const float *w, const float *bias, int M, int N, int K) {
    if (M <= 0 || N <= 0) return;
    float *bp = alloc_floats((size_t)panels(N) * NR * (size_t)K);
    float *bb = NULL;
    pack(bp, w, 1, (size_t)K, K, N); /* B(t, j) = w[j][t] */
    if (bias) {
        bb = alloc_floats((size_t)panels(N) * NR);
        memset(bb, 0, (size_t)panels(N) * NR * sizeof *bb);
        memcpy(bb, bias, (size_t)N * sizeof *bb);
    }
    if (K > 0) {
        strips(0, c, a, bp, M, N, K, bb);
    } else { /* no products: the bias, or zeros */
#pragma omp parallel for schedule(static)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) c[(size_t)i * N + j] = bias ? bias[j] : 0.0f;
    }
    free(bb);
    free(bp);
    flops_add(matmul_flops(M, N, K));
}

void skinny_nn_acc(float *c, const float *a, const float *b, int M, int N, int K) {
    if (M > 0 && N > 0 && K > 0) {
        float *bp = alloc_floats((size_t)panels(N) * NR * (size_t)K);
        pack(bp, b, (size_t)N, 1, K, N);
        strips(1, c, a, bp, M, N, K, NULL);
        free(bp);
    }
    flops_add(matmul_flops(M, N, K));
}

/* Rows per block of skinny_tn_acc: a function of the shapes only, so the sums do not depend on
 * the thread count. */
static int block_rows(int K, size_t mn) {
    for (size_t rb = BLOCK;; rb *= 2) {
        if (rb >= (size_t)K) return K; /* one block */
        const size_t nb = ((size_t)K + rb - 1) / rb;
        if (nb <= MAX_BLOCKS && nb * mn <= PART_FLOATS) return (int)rb;
    }
}

void skinny_tn_acc(float *c, const float *a, const float *b, int M, int N, int K) {
    if (M > 0 && N > 0 && K > 0) {
        const size_t mn = (size_t)M * N;
        const int rb = block_rows(K, mn), nb = (K + rb - 1) / rb;
        float *part = alloc_floats(mn * (size_t)nb);
#pragma omp parallel
        {
            float *bp = alloc_floats((size_t)panels(N) * NR * CHUNK);
#pragma omp for schedule(static)
            for (int blk = 0; blk < nb; blk++) {
                const int t0 = blk * rb, t1 = t0 + rb < K ? t0 + rb : K;
                float *pc = part + (size_t)blk * mn;
                for (int u = t0; u < t1; u += CHUNK) {
                    const int kk = t1 - u < CHUNK ? t1 - u : CHUNK;
                    pack(bp, b + (size_t)u * N, (size_t)N, 1, kk, N);
                    /* A(i, t) = a[t][i]: rows of the product are columns of a */
                    block_avx2(u > t0, pc, (size_t)N, a + (size_t)u * M, 1, (size_t)M, bp, M, N, kk,
                               NULL);
                }
            }
            free(bp);
        }
#pragma omp parallel for schedule(static)
        for (size_t e = 0; e < mn; e++) {
            float s = part[e];
            for (int blk = 1; blk < nb; blk++) s += part[(size_t)blk * mn + e];
            c[e] += s;
        }
        free(part);
    }
    flops_add(matmul_flops(M, N, K));
}
