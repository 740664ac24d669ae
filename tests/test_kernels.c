/* Every kernel's backward against central finite differences, plus the invariants each forward
 * promises (normalisation, masks, determinism, FLOP counts). */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "core/rng.h"
#include "gradcheck.h"
#include "kernels/activations.h"
#include "kernels/dropout.h"
#include "kernels/embedding.h"
#include "kernels/gather.h"
#include "kernels/fastmath.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/linear_attn.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "kernels/pool.h"
#include "kernels/skinny.h"
#include "kernels/softmax.h"

#define ATOL 2e-3
#define RTOL 1e-2
#define H 1e-2f

static float *randn(size_t n, uint64_t seed) {
    float *p = malloc(n * sizeof *p);
    gc_fill_normal(p, n, seed, 1.0f);
    return p;
}
static float *zeros(size_t n) { return calloc(n, sizeof(float)); }

/* ---- linear ---- */
typedef struct {
    float *out, *inp, *w, *b;
    int N, IC, OC;
} LinCtx;
static void lin_fwd(void *c) {
    LinCtx *x = c;
    linear_forward(x->out, x->inp, x->w, x->b, x->N, x->IC, x->OC);
}

START_TEST(test_linear_backward_matches_finite_differences) {
    LinCtx c = {.N = 7, .IC = 5, .OC = 6};
    c.inp = randn(35, 1), c.w = randn(30, 2), c.b = randn(6, 3), c.out = zeros(42);
    float *dout = randn(42, 4), *di = zeros(35), *dw = zeros(30), *db = zeros(6);
    lin_fwd(&c);
    linear_backward(di, dw, db, dout, c.inp, c.w, 7, 5, 6);
    GcResult r;
    GC_ASSERT(gradcheck(lin_fwd, &c, c.inp, 35, di, c.out, 42, dout, H, ATOL, RTOL, 1000, &r),
              "dinp", &r);
    GC_ASSERT(gradcheck(lin_fwd, &c, c.w, 30, dw, c.out, 42, dout, H, ATOL, RTOL, 1000, &r),
              "dweight", &r);
    GC_ASSERT(gradcheck(lin_fwd, &c, c.b, 6, db, c.out, 42, dout, H, ATOL, RTOL, 1000, &r), "dbias",
              &r);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(dout), free(di), free(dw), free(db);
}
END_TEST

START_TEST(test_linear_backward_accumulates_and_skips_null) {
    const int N = 4, IC = 3, OC = 5;
    float *inp = randn(12, 5), *w = randn(15, 6), *dout = randn(20, 7);
    float *di1 = zeros(12), *di2 = zeros(12), *db = zeros(OC);
    linear_backward(di1, NULL, NULL, dout, inp, w, N, IC, OC);
    for (int i = 0; i < 12; i++) di2[i] = 1.0f;
    flops_reset();
    linear_backward(di2, NULL, db, dout, inp, w, N, IC, OC);
    ck_assert_uint_eq(flops_counted(), 2ull * N * IC * OC); /* bias sums are not matrix products */
    for (int i = 0; i < 12; i++) ck_assert_float_eq_tol(di2[i], di1[i] + 1.0f, 1e-6);
    free(inp), free(w), free(dout), free(di1), free(di2), free(db);
}
END_TEST

START_TEST(test_linear_counts_two_flops_per_multiply_add) {
    const int N = 9, IC = 4, OC = 3;
    float *inp = randn(36, 1), *w = randn(12, 2), *out = zeros(27), *dout = randn(27, 3);
    float *di = zeros(36), *dw = zeros(12);
    flops_reset();
    linear_forward(out, inp, w, NULL, N, IC, OC);
    ck_assert_uint_eq(flops_counted(), 2ull * N * IC * OC);
    linear_backward(di, dw, NULL, dout, inp, w, N, IC, OC);
    ck_assert_uint_eq(flops_counted(), 6ull * N * IC * OC);
    /* without bias the output is exactly inp·Wᵀ */
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int i = 0; i < IC; i++) s += (double)inp[n * IC + i] * w[o * IC + i];
            ck_assert_float_eq_tol(out[n * OC + o], s, 1e-5);
        }
    free(inp), free(w), free(out), free(dout), free(di), free(dw);
}
END_TEST

/* ---- matmul ---- */

/* Element (i, j) of op(x) for x stored row-major with row stride ld (transposed: x[j][i]). */
static double op_at(const float *x, int ld, int trans, int i, int j) {
    return trans ? x[(size_t)j * ld + i] : x[(size_t)i * ld + j];
}
static int ta_of(MatTrans t) { return t == MM_TN || t == MM_TT; }
static int tb_of(MatTrans t) { return t == MM_NT || t == MM_TT; }

/* The naive product in double: ref (M, N; stride ldc) = alpha·op(a)·op(b) + beta·c0. */
static void naive_matmul(double *ref, int ldc, const float *c0, const float *a, int lda,
                         const float *b, int ldb, int M, int N, int K, MatTrans t, double alpha,
                         double beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += op_at(a, lda, ta_of(t), i, k) * op_at(b, ldb, tb_of(t), k, j);
            ref[(size_t)i * ldc + j] = alpha * s + beta * c0[(size_t)i * ldc + j];
        }
}

/* c (rows × ld) equals ref in its first cols columns (to 1e-5 relative) and still holds c0
 * beyond them. */
static void assert_block(const float *c, const double *ref, const float *c0, int rows, int cols,
                         int ld) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < ld; j++) {
            const size_t k = (size_t)i * ld + j;
            if (j < cols)
                ck_assert_msg(fabs(c[k] - ref[k]) <= 1e-5 * (1 + fabs(ref[k])),
                              "(%d, %d): %g, naive %g", i, j, c[k], ref[k]);
            else
                ck_assert_msg(c[k] == c0[k], "(%d, %d) outside the block was written", i, j);
        }
}

START_TEST(test_matmul_every_transpose_equals_the_naive_product_and_counts_2mnk) {
    const int M = 5, N = 7, K = 3;
    for (int t = MM_NN; t <= MM_TT; t++) {
        float *a = randn(M * K, 11 + t), *b = randn(K * N, 21 + t), *c0 = randn(M * N, 31 + t);
        float *c = malloc(M * N * sizeof *c);
        double ref[5 * 7];
        memcpy(c, c0, M * N * sizeof *c);
        /* a stored (M, K), or (K, M) when read transposed; likewise b */
        const int lda = ta_of(t) ? M : K, ldb = tb_of(t) ? K : N;
        naive_matmul(ref, N, c0, a, lda, b, ldb, M, N, K, t, 0.7, 0.3);
        flops_reset();
        matmul(c, a, b, M, N, K, t, 0.7f, 0.3f);
        ck_assert_uint_eq(flops_counted(), 2ull * M * N * K);
        ck_assert_uint_eq(matmul_flops(M, N, K), 2ull * M * N * K);
        assert_block(c, ref, c0, M, N, N);
        /* beta = 0 only writes: NaN in c does not survive */
        for (int k = 0; k < M * N; k++) c[k] = NAN;
        naive_matmul(ref, N, c0, a, lda, b, ldb, M, N, K, t, 1.0, 0.0);
        matmul(c, a, b, M, N, K, t, 1.0f, 0.0f);
        assert_block(c, ref, c0, M, N, N);
        free(a), free(b), free(c0), free(c);
    }
}
END_TEST

START_TEST(test_matmul_strided_reads_and_writes_only_its_block) {
    /* one head's columns: a (M, K) inside rows of 9, b (K, N) inside rows of 10, c inside 11 */
    const int M = 4, N = 3, K = 6, lda = 9, ldb = 10, ldc = 11;
    for (int t = MM_NN; t <= MM_TT; t++) {
        const int arows = ta_of(t) ? K : M, brows = tb_of(t) ? N : K;
        float *a = randn((size_t)arows * lda, 41 + t), *b = randn((size_t)brows * ldb, 51 + t);
        float *c0 = randn((size_t)M * ldc, 61 + t), *c = malloc((size_t)M * ldc * sizeof *c);
        double ref[4 * 11];
        memcpy(c, c0, (size_t)M * ldc * sizeof *c);
        naive_matmul(ref, ldc, c0, a, lda, b, ldb, M, N, K, t, -1.5, 1.0);
        flops_reset();
        matmul_strided(c, ldc, a, lda, b, ldb, M, N, K, t, -1.5f, 1.0f);
        ck_assert_uint_eq(flops_counted(), 2ull * M * N * K);
        assert_block(c, ref, c0, M, N, ldc);
        free(a), free(b), free(c0), free(c);
    }
}
END_TEST

/* The gradients of c = alpha·op(a)·op(b) against the loss Σ dc·c, naively: d op(a)[i][k] =
 * alpha·Σ_j dc[i][j]·op(b)[k][j], d op(b)[k][j] = alpha·Σ_i op(a)[i][k]·dc[i][j]. */
START_TEST(test_matmul_backward_accumulates_the_naive_gradients_and_counts_each) {
    const int M = 4, N = 5, K = 3, lda = 7, ldb = 8, ldc = 6, ldda = 9, lddb = 10;
    const double alpha = 0.5;
    for (int t = MM_NN; t <= MM_TT; t++) {
        const int ta = ta_of(t), tb = tb_of(t), arows = ta ? K : M, brows = tb ? N : K;
        float *a = randn((size_t)arows * lda, 71 + t), *b = randn((size_t)brows * ldb, 81 + t);
        float *dc = randn((size_t)M * ldc, 91 + t);
        float *da0 = randn((size_t)arows * ldda, 101 + t),
              *db0 = randn((size_t)brows * lddb, 111 + t);
        float *da = malloc((size_t)arows * ldda * sizeof *da),
              *db = malloc((size_t)brows * lddb * sizeof *db);
        memcpy(da, da0, (size_t)arows * ldda * sizeof *da);
        memcpy(db, db0, (size_t)brows * lddb * sizeof *db);
        flops_reset();
        matmul_backward_strided(da, ldda, db, lddb, dc, ldc, a, lda, b, ldb, M, N, K, (MatTrans)t,
                                (float)alpha);
        ck_assert_uint_eq(flops_counted(), 4ull * M * N * K);
        for (int i = 0; i < M; i++) /* op(a)'s element (i, k) is stored at (k, i) when ta */
            for (int k = 0; k < K; k++) {
                double s = 0;
                for (int j = 0; j < N; j++)
                    s += (double)dc[(size_t)i * ldc + j] * op_at(b, ldb, tb, k, j);
                const size_t at = ta ? (size_t)k * ldda + i : (size_t)i * ldda + k;
                const double want = da0[at] + alpha * s;
                ck_assert_msg(fabs(da[at] - want) <= 1e-5 * (1 + fabs(want)), "t %d: da", t);
            }
        for (int k = 0; k < K; k++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int i = 0; i < M; i++)
                    s += op_at(a, lda, ta, i, k) * (double)dc[(size_t)i * ldc + j];
                const size_t at = tb ? (size_t)j * lddb + k : (size_t)k * lddb + j;
                const double want = db0[at] + alpha * s;
                ck_assert_msg(fabs(db[at] - want) <= 1e-5 * (1 + fabs(want)), "t %d: db", t);
            }
        /* the columns beyond each block are not touched */
        for (int r = 0; r < arows; r++)
            for (int c = ta ? M : K; c < ldda; c++)
                ck_assert(da[(size_t)r * ldda + c] == da0[(size_t)r * ldda + c]);
        for (int r = 0; r < brows; r++)
            for (int c = tb ? K : N; c < lddb; c++)
                ck_assert(db[(size_t)r * lddb + c] == db0[(size_t)r * lddb + c]);
        /* a NULL gradient is neither computed nor counted; the contiguous form agrees */
        float *dac = calloc((size_t)M * K, sizeof *dac), *dbc = calloc((size_t)K * N, sizeof *dbc);
        float *ac = malloc((size_t)M * K * sizeof *ac), *bc = malloc((size_t)K * N * sizeof *bc),
              *dcc = malloc((size_t)M * N * sizeof *dcc);
        for (int r = 0; r < arows; r++)
            for (int c = 0; c < (ta ? M : K); c++)
                ac[r * (ta ? M : K) + c] = a[(size_t)r * lda + c];
        for (int r = 0; r < brows; r++)
            for (int c = 0; c < (tb ? K : N); c++)
                bc[r * (tb ? K : N) + c] = b[(size_t)r * ldb + c];
        for (int r = 0; r < M; r++)
            for (int c = 0; c < N; c++) dcc[r * N + c] = dc[(size_t)r * ldc + c];
        flops_reset();
        matmul_backward(dac, NULL, dcc, ac, bc, M, N, K, (MatTrans)t, (float)alpha);
        ck_assert_uint_eq(flops_counted(), 2ull * M * N * K);
        matmul_backward(NULL, dbc, dcc, ac, bc, M, N, K, (MatTrans)t, (float)alpha);
        ck_assert_uint_eq(flops_counted(), 4ull * M * N * K);
        for (int r = 0; r < arows; r++)
            for (int c = 0; c < (ta ? M : K); c++) {
                const double want = da[(size_t)r * ldda + c] - da0[(size_t)r * ldda + c];
                ck_assert(fabs(dac[r * (ta ? M : K) + c] - want) <= 1e-5 * (1 + fabs(want)));
            }
        for (int r = 0; r < brows; r++)
            for (int c = 0; c < (tb ? K : N); c++) {
                const double want = db[(size_t)r * lddb + c] - db0[(size_t)r * lddb + c];
                ck_assert(fabs(dbc[r * (tb ? K : N) + c] - want) <= 1e-5 * (1 + fabs(want)));
            }
        free(a), free(b), free(dc), free(da0), free(db0), free(da), free(db);
        free(dac), free(dbc), free(ac), free(bc), free(dcc);
    }
}
END_TEST

START_TEST(test_matmul_batched_over_rows_and_heads_equals_each_product) {
    /* per (row b, head h): q (L, Dh) at columns h·Dh of x (B, L, D) times a per-head w (Dh, N),
     * into out (B, L, NH·N) at columns h·N; serial and on OpenMP threads */
    const int B = 2, NH = 3, L = 5, Dh = 4, N = 2, D = NH * Dh, W = NH * N;
    float *x = randn((size_t)B * L * D, 121), *w = randn((size_t)NH * Dh * N, 122);
    const MatBatch per_head = {.n1 = B,
                               .n2 = NH,
                               .a1 = (size_t)L * D,
                               .a2 = (size_t)Dh,
                               .b1 = 0,
                               .b2 = (size_t)Dh * N,
                               .c1 = (size_t)L * W,
                               .c2 = (size_t)N};
    for (int par = 0; par < 2; par++) {
        MatBatch bt = per_head;
        bt.parallel = par;
        float *out = calloc((size_t)B * L * W, sizeof *out);
        flops_reset();
        matmul_batched(out, W, x, D, w, N, L, N, Dh, MM_NN, 1.0f, 0.0f, &bt);
        ck_assert_uint_eq(flops_counted(), 2ull * B * NH * L * N * Dh);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < L; i++)
                    for (int j = 0; j < N; j++) {
                        double s = 0;
                        for (int k = 0; k < Dh; k++)
                            s += (double)x[((size_t)b * L + i) * D + h * Dh + k] *
                                 w[((size_t)h * Dh + k) * N + j];
                        const float got = out[((size_t)b * L + i) * W + h * N + j];
                        ck_assert_msg(fabs(got - s) <= 1e-5 * (1 + fabs(s)),
                                      "parallel %d (%d, %d, %d, %d): %g, naive %g", par, b, h, i, j,
                                      got, s);
                    }
        free(out);
    }
    free(x), free(w);
}
END_TEST

/* ---- the dense layers' own products (kernels/skinny.h) ---- */

/* Shapes with every kind of edge: rows not a multiple of the 6-row tile or the 96-row strip,
 * columns not a multiple of the 16-column panel (and fewer than 8 in the last one), long sums that
 * span several packed chunks (256 rows) and several fixed blocks (1024 rows) of skinny_tn_acc. */
static const int SK_SHAPES[][3] = {{64, 16, 64},  {97, 23, 5},  {200, 192, 64},
                                   {131, 7, 130}, {2500, 40, 9}, {1100, 3, 1}};

START_TEST(test_skinny_products_equal_the_double_product_and_count_2mnk) {
    if (!skinny_available()) {
        fprintf(stderr, "skinny: this CPU has no AVX2 with FMA (or has AVX-512): not tested here\n");
        return;
    }
    for (size_t s = 0; s < XB_ARRAY_LEN(SK_SHAPES); s++) {
        const int M = SK_SHAPES[s][0], N = SK_SHAPES[s][1], K = SK_SHAPES[s][2];
        float *a = randn((size_t)M * K, 100 + s), *w = randn((size_t)N * K, 200 + s);
        float *bias = randn(N, 300 + s), *c0 = randn((size_t)M * N, 400 + s);
        float *c = malloc((size_t)M * N * sizeof *c);
        double *ref = malloc((size_t)M * N * sizeof *ref);
        /* c = a·wᵀ + bias, then without bias */
        for (int with_bias = 1; with_bias >= 0; with_bias--) {
            naive_matmul(ref, N, c0, a, K, w, K, M, N, K, MM_NT, 1.0, 0.0);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) ref[(size_t)i * N + j] += with_bias ? bias[j] : 0.0;
            memcpy(c, c0, (size_t)M * N * sizeof *c);
            flops_reset();
            skinny_nt(c, a, w, with_bias ? bias : NULL, M, N, K);
            ck_assert_uint_eq(flops_counted(), matmul_flops(M, N, K));
            assert_block(c, ref, c0, M, N, N);
        }
        /* c (M, N) += a2 (M, K)·b (K, N) */
        float *a2 = randn((size_t)M * K, 500 + s), *b = randn((size_t)K * N, 600 + s);
        naive_matmul(ref, N, c0, a2, K, b, N, M, N, K, MM_NN, 1.0, 1.0);
        memcpy(c, c0, (size_t)M * N * sizeof *c);
        flops_reset();
        skinny_nn_acc(c, a2, b, M, N, K);
        ck_assert_uint_eq(flops_counted(), matmul_flops(M, N, K));
        assert_block(c, ref, c0, M, N, N);
        /* c (N, K) += aᵀ·a2 with a (M, N)… : the long side is M here */
        float *at = randn((size_t)M * N, 700 + s), *d0 = randn((size_t)N * K, 800 + s);
        float *d = malloc((size_t)N * K * sizeof *d);
        double *rd = malloc((size_t)N * K * sizeof *rd);
        naive_matmul(rd, K, d0, at, N, a2, K, N, K, M, MM_TN, 1.0, 1.0);
        memcpy(d, d0, (size_t)N * K * sizeof *d);
        flops_reset();
        skinny_tn_acc(d, at, a2, N, K, M);
        ck_assert_uint_eq(flops_counted(), matmul_flops(N, K, M));
        for (size_t e = 0; e < (size_t)N * K; e++) /* sums of up to 2500 terms */
            ck_assert_msg(fabs(d[e] - rd[e]) <= 1e-4 * (1 + fabs(rd[e])), "shape %zu (%zu): %g, naive %g",
                          s, e, d[e], rd[e]);
        free(a), free(w), free(bias), free(c0), free(c), free(ref), free(a2), free(b), free(at);
        free(d0), free(d), free(rd);
    }
}
END_TEST

/* The three products give the same bits on 1 thread as on 3: the sums' order is the shapes'. */
START_TEST(test_skinny_products_same_bits_for_any_threads) {
    if (!skinny_available()) return; /* said by the test above */
    const int M = 3001, N = 40, K = 70;
    float *a = randn((size_t)M * K, 1), *w = randn((size_t)N * K, 2), *dc = randn((size_t)M * N, 3);
    float *out[2], *da[2], *dw[2];
    const int threads = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r ? 3 : 1);
        out[r] = zeros((size_t)M * N), da[r] = zeros((size_t)M * K), dw[r] = zeros((size_t)N * K);
        skinny_nt(out[r], a, w, NULL, M, N, K);
        skinny_nn_acc(da[r], dc, w, M, K, N);
        skinny_tn_acc(dw[r], dc, a, N, K, M);
    }
    omp_set_num_threads(threads);
    ck_assert(memcmp(out[0], out[1], (size_t)M * N * sizeof(float)) == 0);
    ck_assert(memcmp(da[0], da[1], (size_t)M * K * sizeof(float)) == 0);
    ck_assert(memcmp(dw[0], dw[1], (size_t)N * K * sizeof(float)) == 0);
    for (int r = 0; r < 2; r++) free(out[r]), free(da[r]), free(dw[r]);
    free(a), free(w), free(dc);
}
END_TEST

/* x and y (n) agree to tol relative to 1 + |y|. */
static void assert_close(const float *x, const float *y, size_t n, double tol, const char *what) {
    for (size_t e = 0; e < n; e++)
        ck_assert_msg(fabs(x[e] - y[e]) <= tol * (1 + fabs(y[e])), "%s[%zu]: %g against %g", what,
                      e, x[e], y[e]);
}

/* A dense layer tall enough for the skinny kernels gives OpenBLAS's values (to rounding) and the
 * same FLOP count, forward and backward. */
START_TEST(test_linear_on_skinny_kernels_equals_linear_on_sgemm) {
    const int N = 300, IC = 48, OC = 72;
    float *inp = randn((size_t)N * IC, 1), *w = randn((size_t)OC * IC, 2), *b = randn(OC, 3);
    float *dout = randn((size_t)N * OC, 4);
    float *out[2], *di[2], *dw[2], *db[2];
    uint64_t fl[2];
    for (int r = 0; r < 2; r++) {
        skinny_force_off(r == 1);
        out[r] = zeros((size_t)N * OC), di[r] = zeros((size_t)N * IC), dw[r] = zeros((size_t)OC * IC);
        db[r] = zeros(OC);
        for (size_t e = 0; e < (size_t)N * IC; e++) di[r][e] = 0.5f; /* backward accumulates */
        flops_reset();
        linear_forward(out[r], inp, w, b, N, IC, OC);
        linear_backward(di[r], dw[r], db[r], dout, inp, w, N, IC, OC);
        fl[r] = flops_counted();
    }
    skinny_force_off(0);
    ck_assert_uint_eq(fl[0], fl[1]);
    ck_assert_uint_eq(fl[0], 6ull * N * IC * OC);
    assert_close(out[0], out[1], (size_t)N * OC, 1e-5, "out");
    assert_close(di[0], di[1], (size_t)N * IC, 1e-5, "dinp");
    assert_close(dw[0], dw[1], (size_t)OC * IC, 1e-4, "dweight"); /* sums of 300 terms of size 1 */
    for (int o = 0; o < OC; o++) ck_assert_float_eq(db[0][o], db[1][o]);
    for (int r = 0; r < 2; r++) free(out[r]), free(di[r]), free(dw[r]), free(db[r]);
    free(inp), free(w), free(b), free(dout);
}
END_TEST

/* ---- layernorm ---- */
typedef struct {
    float *out, *mean, *rstd, *inp, *w, *b;
    int N, C;
} LnCtx;
static void ln_fwd(void *c) {
    LnCtx *x = c;
    layernorm_forward(x->out, x->mean, x->rstd, x->inp, x->w, x->b, x->N, x->C);
}

START_TEST(test_layernorm_backward_matches_finite_differences) {
    LnCtx c = {.N = 6, .C = 37}; /* C > one 16-channel block, not a multiple of it */
    const size_t n = 6 * 37;
    c.inp = randn(n, 1), c.w = randn(37, 2), c.b = randn(37, 3), c.out = zeros(n);
    c.mean = zeros(6), c.rstd = zeros(6);
    for (size_t i = 0; i < n; i++) c.inp[i] = 2.0f * c.inp[i] + 0.5f;
    float *dout = randn(n, 4), *di = zeros(n), *dw = zeros(37), *db = zeros(37);
    ln_fwd(&c);
    layernorm_backward(di, dw, db, dout, c.inp, c.w, c.mean, c.rstd, 6, 37);
    GcResult r;
    GC_ASSERT(gradcheck(ln_fwd, &c, c.inp, n, di, c.out, n, dout, H, ATOL, RTOL, 1000, &r), "dinp",
              &r);
    GC_ASSERT(gradcheck(ln_fwd, &c, c.w, 37, dw, c.out, n, dout, H, ATOL, RTOL, 1000, &r),
              "dweight", &r);
    GC_ASSERT(gradcheck(ln_fwd, &c, c.b, 37, db, c.out, n, dout, H, ATOL, RTOL, 1000, &r), "dbias",
              &r);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.mean), free(c.rstd);
    free(dout), free(di), free(dw), free(db);
}
END_TEST

START_TEST(test_layernorm_output_has_zero_mean_unit_variance) {
    const int N = 5, C = 64;
    float *inp = randn(N * C, 9), *out = zeros(N * C), *m = zeros(N), *s = zeros(N);
    for (int i = 0; i < N * C; i++) inp[i] = 3.0f * inp[i] - 7.0f;
    layernorm_forward(out, m, s, inp, NULL, NULL, N, C);
    for (int n = 0; n < N; n++) {
        double mu = 0, var = 0;
        for (int c = 0; c < C; c++) mu += out[n * C + c];
        mu /= C;
        for (int c = 0; c < C; c++) var += (out[n * C + c] - mu) * (out[n * C + c] - mu);
        var /= C;
        ck_assert_double_eq_tol(mu, 0.0, 1e-5);
        ck_assert_double_eq_tol(var, 1.0, 1e-4);
    }
    free(inp), free(out), free(m), free(s);
}
END_TEST

/* ---- element-wise ---- */
typedef struct {
    float *out, *inp;
    size_t n;
    int which;
} EwCtx;
static void ew_fwd(void *c) {
    EwCtx *x = c;
    if (x->which == 0)
        gelu_forward(x->out, x->inp, x->n);
    else
        relu_forward(x->out, x->inp, x->n);
}

START_TEST(test_gelu_backward_matches_finite_differences) {
    EwCtx c = {.n = 200, .which = 0};
    c.inp = randn(200, 11), c.out = zeros(200);
    for (size_t i = 0; i < 200; i++) c.inp[i] *= 3.0f; /* reach the saturated tails too */
    float *dout = randn(200, 12), *di = zeros(200);
    ew_fwd(&c);
    gelu_backward(di, c.inp, dout, 200);
    GcResult r;
    GC_ASSERT(gradcheck(ew_fwd, &c, c.inp, 200, di, c.out, 200, dout, H, ATOL, RTOL, 1000, &r),
              "gelu", &r);
    /* and the forward is the tanh formula */
    for (size_t i = 0; i < 200; i++) {
        const double x = c.inp[i];
        const double ref = 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
        ck_assert_double_eq_tol(c.out[i], ref, 2e-6 * (1 + fabs(ref)));
    }
    free(c.inp), free(c.out), free(dout), free(di);
}
END_TEST

START_TEST(test_relu_backward_matches_finite_differences) {
    EwCtx c = {.n = 100, .which = 1};
    c.inp = randn(100, 13), c.out = zeros(100);
    for (size_t i = 0; i < 100; i++) /* keep inputs away from the kink */
        c.inp[i] += c.inp[i] >= 0 ? 0.1f : -0.1f;
    float *dout = randn(100, 14), *di = zeros(100);
    ew_fwd(&c);
    relu_backward(di, c.inp, dout, 100);
    GcResult r;
    GC_ASSERT(gradcheck(ew_fwd, &c, c.inp, 100, di, c.out, 100, dout, 1e-3f, ATOL, RTOL, 1000, &r),
              "relu", &r);
    free(c.inp), free(c.out), free(dout), free(di);
}
END_TEST

/* ---- softmax ---- */
typedef struct {
    float *out, *inp;
    int N, C;
} SmCtx;
static void sm_fwd(void *c) {
    SmCtx *x = c;
    softmax_forward(x->out, x->inp, x->N, x->C);
}

START_TEST(test_softmax_backward_matches_finite_differences) {
    SmCtx c = {.N = 4, .C = 9};
    c.inp = randn(36, 15), c.out = zeros(36);
    float *dout = randn(36, 16), *di = zeros(36);
    sm_fwd(&c);
    softmax_backward(di, c.out, dout, 4, 9);
    GcResult r;
    GC_ASSERT(gradcheck(sm_fwd, &c, c.inp, 36, di, c.out, 36, dout, H, ATOL, RTOL, 1000, &r),
              "softmax", &r);
    for (int n = 0; n < 4; n++) {
        double s = 0;
        for (int k = 0; k < 9; k++) s += c.out[n * 9 + k];
        ck_assert_double_eq_tol(s, 1.0, 1e-6);
    }
    free(c.inp), free(c.out), free(dout), free(di);
}
END_TEST

START_TEST(test_softmax_is_shift_invariant_and_handles_large_logits) {
    float in[4] = {1000.0f, 1001.0f, 999.0f, -1000.0f}, in2[4], o1[4], o2[4];
    for (int i = 0; i < 4; i++) in2[i] = in[i] - 1000.0f;
    softmax_forward(o1, in, 1, 4);
    softmax_forward(o2, in2, 1, 4);
    for (int i = 0; i < 4; i++) {
        ck_assert(isfinite(o1[i]));
        ck_assert_float_eq_tol(o1[i], o2[i], 1e-6);
    }
}
END_TEST

/* ---- dropout ---- */
typedef struct {
    float *out, *inp;
    size_t n;
    float p;
    uint64_t key;
} DoCtx;
static void do_fwd(void *c) {
    DoCtx *x = c;
    dropout_forward(x->out, x->inp, x->n, x->p, x->key, 0, NULL);
}

START_TEST(test_dropout_backward_matches_finite_differences) {
    DoCtx c = {.n = 300, .p = 0.3f, .key = dropout_key(5, 17, 2)};
    c.inp = randn(300, 17), c.out = zeros(300);
    float *dout = randn(300, 18), *di = zeros(300);
    do_fwd(&c);
    dropout_backward(di, dout, 300, c.p, c.key, 0, NULL);
    GcResult r;
    GC_ASSERT(gradcheck(do_fwd, &c, c.inp, 300, di, c.out, 300, dout, H, ATOL, RTOL, 1000, &r),
              "dropout", &r);
    free(c.inp), free(c.out), free(dout), free(di);
}
END_TEST

START_TEST(test_dropout_keeps_expected_fraction_and_same_bits_for_any_threads) {
    const size_t n = 200000;
    float *x = malloc(n * sizeof *x), *y1 = zeros(n), *y2 = zeros(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    const uint64_t key = dropout_key(1, 3, 4);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    dropout_forward(y1, x, n, 0.25f, key, 0, NULL);
    omp_set_num_threads(saved > 1 ? saved : 2);
    dropout_forward(y2, x, n, 0.25f, key, 0, NULL);
    omp_set_num_threads(saved);
    ck_assert_int_eq(memcmp(y1, y2, n * sizeof *y1), 0);
    size_t kept = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        kept += y1[i] != 0.0f;
        sum += y1[i];
        ck_assert(y1[i] == 0.0f || fabsf(y1[i] - 1.0f / 0.75f) < 1e-6f);
    }
    ck_assert_double_eq_tol((double)kept / n, 0.75, 0.01);
    ck_assert_double_eq_tol(sum / n, 1.0, 0.01); /* inverted dropout keeps the expectation */
    /* a different site or step gives a different mask */
    dropout_forward(y2, x, n, 0.25f, dropout_key(1, 3, 5), 0, NULL);
    ck_assert_int_ne(memcmp(y1, y2, n * sizeof *y1), 0);
    /* p = 0 is the identity */
    dropout_forward(y2, x, n, 0.0f, key, 0, NULL);
    ck_assert_int_eq(memcmp(x, y2, n * sizeof *x), 0);
    free(x), free(y1), free(y2);
}
END_TEST

/* ---- embedding ---- */
typedef struct {
    float *out, *wte, *wpe;
    int32_t *tok;
    int B, T, C;
} EmCtx;
static void em_fwd(void *c) {
    EmCtx *x = c;
    embedding_forward(x->out, x->tok, x->wte, x->wpe, x->B, x->T, x->C);
}

START_TEST(test_embedding_backward_matches_finite_differences) {
    EmCtx c = {.B = 3, .T = 5, .C = 20};
    const int V = 7;
    int32_t tok[15];
    for (int i = 0; i < 15; i++) tok[i] = (i * 5 + 1) % V; /* repeated tokens accumulate */
    c.tok = tok;
    c.wte = randn(V * 20, 21), c.wpe = randn(5 * 20, 22), c.out = zeros(300);
    float *dout = randn(300, 23), *dte = zeros(V * 20), *dpe = zeros(100);
    em_fwd(&c);
    embedding_backward(dte, dpe, dout, tok, 3, 5, 20);
    GcResult r;
    GC_ASSERT(gradcheck(em_fwd, &c, c.wte, V * 20, dte, c.out, 300, dout, H, ATOL, RTOL, 1000, &r),
              "dwte", &r);
    GC_ASSERT(gradcheck(em_fwd, &c, c.wpe, 100, dpe, c.out, 300, dout, H, ATOL, RTOL, 1000, &r),
              "dwpe", &r);
    free(c.wte), free(c.wpe), free(c.out), free(dout), free(dte), free(dpe);
}
END_TEST

START_TEST(test_sinusoidal_table_matches_formula) {
    const int T = 50, C = 10;
    float *pe = zeros(T * C);
    sinusoidal_table(pe, T, C);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < C / 2; i++) {
            const double a = t / pow(10000.0, 2.0 * i / C);
            ck_assert_double_eq_tol(pe[t * C + 2 * i], sin(a), 1e-6);
            ck_assert_double_eq_tol(pe[t * C + 2 * i + 1], cos(a), 1e-6);
        }
    free(pe);
}
END_TEST

/* ---- pooling ---- */
typedef struct {
    float *out, *inp;
    unsigned char *mask;
    int B, L, C, mean;
} PoCtx;
static void po_fwd(void *c) {
    PoCtx *x = c;
    if (x->mean)
        pool_mean_forward(x->out, x->inp, x->mask, x->B, x->L, x->C);
    else
        pool_cls_forward(x->out, x->inp, x->B, x->L, x->C);
}

START_TEST(test_pooling_backward_matches_finite_differences) {
    unsigned char mask[12] = {1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0}; /* B=2, L=6 */
    for (int mean = 0; mean < 2; mean++) {
        PoCtx c = {.B = 2, .L = 6, .C = 3, .mean = mean, .mask = mask};
        c.inp = randn(36, 31), c.out = zeros(6);
        float *dout = randn(6, 32), *di = zeros(36);
        po_fwd(&c);
        if (mean)
            pool_mean_backward(di, dout, mask, 2, 6, 3);
        else
            pool_cls_backward(di, dout, 2, 6, 3);
        GcResult r;
        GC_ASSERT(gradcheck(po_fwd, &c, c.inp, 36, di, c.out, 6, dout, H, ATOL, RTOL, 1000, &r),
                  mean ? "mean" : "cls", &r);
        if (mean) /* padding positions get no gradient and do not enter the mean */
            for (int t = 1; t < 6; t++)
                for (int k = 0; k < 3; k++) ck_assert_float_eq(di[(6 + t) * 3 + k], 0.0f);
        free(c.inp), free(c.out), free(dout), free(di);
    }
}
END_TEST

/* ---- cross-entropy ---- */
typedef struct {
    float *loss, *probs, *logits;
    int32_t *tgt;
    int B, V;
} CeCtx;
static void ce_fwd(void *c) {
    CeCtx *x = c;
    crossentropy_forward(x->loss, x->probs, x->logits, x->tgt, x->B, x->V);
}

START_TEST(test_crossentropy_backward_matches_finite_differences) {
    int32_t tgt[5] = {0, 3, 9, 2, 3};
    CeCtx c = {.B = 5, .V = 10, .tgt = tgt};
    c.logits = randn(50, 41), c.probs = zeros(50), c.loss = zeros(5);
    float w[5] = {0.2f, 0.2f, 0.2f, 0.2f, 0.2f}, *dl = zeros(50);
    ce_fwd(&c);
    crossentropy_backward(dl, c.probs, tgt, 0.2f, 5, 10);
    GcResult r;
    GC_ASSERT(gradcheck(ce_fwd, &c, c.logits, 50, dl, c.loss, 5, w, H, ATOL, RTOL, 1000, &r),
              "dlogits", &r);
    for (int b = 0; b < 5; b++) {
        double s = 0;
        for (int v = 0; v < 10; v++) s += c.probs[b * 10 + v];
        ck_assert_double_eq_tol(s, 1.0, 1e-6);
        ck_assert_double_eq_tol(c.loss[b], -log(c.probs[b * 10 + tgt[b]]), 1e-5);
    }
    free(c.logits), free(c.probs), free(c.loss), free(dl);
}
END_TEST

/* A row whose target is negative (a position without a target) has no loss and no gradient. */
START_TEST(test_crossentropy_rows_without_target_have_no_loss_or_gradient) {
    int32_t tgt[4] = {1, -1, 4, -1};
    CeCtx c = {.B = 4, .V = 6, .tgt = tgt};
    c.logits = randn(24, 43), c.probs = zeros(24), c.loss = zeros(4);
    float w[4] = {0.5f, 0.5f, 0.5f, 0.5f}, *dl = zeros(24);
    ce_fwd(&c);
    crossentropy_backward(dl, c.probs, tgt, 0.5f, 4, 6);
    GcResult r;
    GC_ASSERT(gradcheck(ce_fwd, &c, c.logits, 24, dl, c.loss, 4, w, H, ATOL, RTOL, 1000, &r),
              "dlogits", &r);
    for (int v = 0; v < 6; v++) {
        ck_assert_float_eq(dl[6 + v], 0.0f);
        ck_assert_float_eq(dl[18 + v], 0.0f);
    }
    ck_assert_float_eq(c.loss[1], 0.0f);
    ck_assert_float_eq(c.loss[3], 0.0f);
    ck_assert_float_gt(c.loss[0], 0.0f);
    free(c.logits), free(c.probs), free(c.loss), free(dl);
}
END_TEST

START_TEST(test_fast_exp_is_accurate_over_the_float_range) {
    double worst = 0;
    for (double x = -87.0; x <= 88.0; x += 0.001) {
        const double ref = exp((double)(float)x), got = xb_expf((float)x);
        const double rel = fabs(got - ref) / ref;
        if (rel > worst) worst = rel;
    }
    ck_assert_msg(worst < 3e-7, "relative error %g", worst);
    ck_assert_float_eq(xb_expf(-INFINITY), 0.0f);
    ck_assert_float_eq(xb_expf(-100.0f), 0.0f);
    ck_assert_float_eq(xb_expf(0.0f), 1.0f);
    ck_assert(isfinite(xb_expf(100.0f)));
    ck_assert(isnan(xb_expf(NAN))); /* NaN in, NaN out, and no float-to-int conversion of a NaN */
}
END_TEST

/* xb_sincosf against double sin and cos on a fine grid near 0 and a coarse one to its range's end,
 * and the quadrants' signs at multiples of π/2; beyond the range (and NaN) it returns sin 0, cos 0
 * as documented, for the caller to recompute. */
START_TEST(test_fast_sincos_is_accurate_over_its_range) {
    double worst = 0;
    for (int pass = 0; pass < 2; pass++) {
        const double lim = pass ? XB_SINCOS_MAX : 20.0, step = pass ? 0.0137 : 0.0001;
        for (double x = -lim; x <= lim; x += step) {
            const float xf = (float)x;
            float s, c;
            xb_sincosf(xf, &s, &c);
            const double es = fabs(s - sin((double)xf)), ec = fabs(c - cos((double)xf));
            if (es > worst) worst = es;
            if (ec > worst) worst = ec;
        }
    }
    ck_assert_msg(worst < 3e-7, "absolute error %g", worst);
    for (int k = -8; k <= 8; k++) {
        float s, c;
        xb_sincosf((float)(k * M_PI / 2), &s, &c);
        ck_assert_msg(fabs(s - sin(k * M_PI / 2)) < 1e-6 && fabs(c - cos(k * M_PI / 2)) < 1e-6,
                      "k = %d: %g %g", k, s, c);
    }
    float s = 2, c = 2;
    xb_sincosf(NAN, &s, &c);
    ck_assert(s == 0.0f && c == 1.0f);
    xb_sincosf(1e6f, &s, &c);
    ck_assert(s == 0.0f && c == 1.0f);
}
END_TEST

START_TEST(test_sort_by_key_is_stable_and_gather_scatter_are_adjoint) {
    const int key[10] = {2, 0, 1, 2, 0, 0, 3, 1, 2, 0};
    int perm[10], inv[10], work[5];
    sort_by_key(key, 10, 4, perm, work);
    const int want[10] = {1, 4, 5, 9, 2, 7, 0, 3, 8, 6}; /* by key, ties by position */
    for (int i = 0; i < 10; i++) ck_assert_int_eq(perm[i], want[i]);
    invert_perm(perm, 10, inv);
    for (int i = 0; i < 10; i++) ck_assert_int_eq(perm[inv[i]], i);
    /* <gather(x), y> = <x, scatter(y)> for an index with repeats and holes */
    const int idx[7] = {3, -1, 0, 3, 5, 1, 0};
    float x[6 * 2], y[7 * 2], gx[7 * 2], sy[6 * 2];
    gc_fill_normal(x, 12, 5, 1.0f);
    gc_fill_normal(y, 14, 6, 1.0f);
    memset(sy, 0, sizeof sy);
    gather_rows(gx, 2, x, 2, idx, 7, 2);
    scatter_add_rows(sy, 2, y, 2, idx, 7, 2, 0);
    ck_assert_float_eq(gx[2], 0.0f);
    ck_assert_float_eq(gx[3], 0.0f);
    double a = 0, b = 0;
    for (int i = 0; i < 14; i++) a += (double)gx[i] * y[i];
    for (int i = 0; i < 12; i++) b += (double)x[i] * sy[i];
    ck_assert_double_eq_tol(a, b, 1e-5);
}
END_TEST

/* The fused passes against the separate ones they replace: the same bits, including the sign of a
 * zero gradient, with dropout on and off. */
START_TEST(test_fused_dropout_passes_equal_separate_passes) {
    const size_t n = 1003;
    float *x = randn(n, 61), *r = randn(n, 62), *g = randn(n, 63);
    for (size_t i = 0; i < n; i += 7) g[i] = -0.0f;
    float *a = zeros(n), *b = zeros(n);
    const float ps[2] = {0.0f, 0.3f};
    for (int k = 0; k < 2; k++) {
        const float p = ps[k];
        const uint64_t key = dropout_key(5, 3, 2);
        /* out = dropout(x) + r */
        dropout_forward(a, x, n, p, key, 11, NULL);
        for (size_t i = 0; i < n; i++) a[i] = a[i] + r[i];
        memcpy(b, x, n * sizeof *b);
        dropout_add_forward(b, b, r, n, p, key, 11, NULL);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
        /* dinp = 0, then += dropout's gradient */
        memset(a, 0, n * sizeof *a);
        dropout_backward(a, g, n, p, key, 11, NULL);
        for (size_t i = 0; i < n; i++) b[i] = 12345.0f;
        dropout_backward_set(b, g, n, p, key, 11, NULL);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
        /* GELU then dropout, and its backward into a cleared buffer */
        gelu_forward(a, x, n);
        dropout_forward(a, a, n, p, key, 11, NULL);
        gelu_dropout_forward(b, x, n, p, key, 11, NULL);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
        float *dh = zeros(n);
        dropout_backward(dh, g, n, p, key, 11, NULL);
        memset(a, 0, n * sizeof *a);
        gelu_backward(a, x, dh, n);
        memcpy(b, g, n * sizeof *b);
        gelu_dropout_backward(b, x, b, n, p, key, 11, NULL);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
        free(dh);
    }
    free(x), free(r), free(g), free(a), free(b);
}
END_TEST

/* The masks a forward keeps as bits are the hash's, and every backward that reads them gives the
 * bits of the one that hashes again; for a length with a partial last word, on 1 and 3 threads. */
START_TEST(test_dropout_masks_kept_as_bits_give_the_hashed_bits) {
    const size_t n = 1003, nw = dropout_words(n);
    ck_assert_uint_eq(nw, 16);
    float *x = randn(n, 71), *r = randn(n, 72), *g = randn(n, 73);
    for (size_t i = 0; i < n; i += 7) g[i] = -0.0f;
    float *a = zeros(n), *b = zeros(n);
    uint64_t *keep = calloc(nw, sizeof *keep), *keep2 = calloc(nw, sizeof *keep2);
    const float p = 0.3f;
    const uint64_t key = dropout_key(5, 3, 2);
    const uint32_t t = dropout_threshold(p);
    const int saved = omp_get_max_threads();
    for (int th = 1; th <= 3; th += 2) {
        omp_set_num_threads(th);
        memset(keep, 0xff, nw * sizeof *keep);
        dropout_forward(a, x, n, p, key, 11, NULL);
        dropout_forward(b, x, n, p, key, 11, keep);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(dropout_bit(keep[i / 64], i % 64), dropout_kept(key, 11 + i, t));
        ck_assert_uint_eq(keep[nw - 1] >> (n % 64), 0); /* no bits past the end */
        dropout_add_forward(a, x, r, n, p, key, 11, NULL);
        dropout_add_forward(b, x, r, n, p, key, 11, keep2);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
        ck_assert_int_eq(memcmp(keep, keep2, nw * sizeof *keep), 0);
        gelu_dropout_forward(a, x, n, p, key, 11, NULL);
        gelu_dropout_forward(b, x, n, p, key, 11, keep2);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
        ck_assert_int_eq(memcmp(keep, keep2, nw * sizeof *keep), 0);
        /* the backwards: from the bits, key and first are not read */
        memcpy(a, r, n * sizeof *a), memcpy(b, r, n * sizeof *b);
        dropout_backward(a, g, n, p, key, 11, NULL);
        dropout_backward(b, g, n, p, 0, 0, keep);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
        dropout_backward_set(a, g, n, p, key, 11, NULL);
        dropout_backward_set(b, g, n, p, 0, 0, keep);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
        gelu_dropout_backward(a, x, g, n, p, key, 11, NULL);
        gelu_dropout_backward(b, x, g, n, p, 0, 0, keep);
        ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
    }
    omp_set_num_threads(saved);
    free(x), free(r), free(g), free(a), free(b), free(keep), free(keep2);
}
END_TEST

/* LayerNorm normalises its rows eight at a time: against a double-precision reference, and the
 * same bits as a plain loop over one row at a time, for row counts that leave a partial block. */
START_TEST(test_layernorm_row_blocks_equal_reference_and_one_row_at_a_time) {
    const int Ns[3] = {1, 13, 24}, Cs[3] = {1, 5, 64};
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 3; c++) {
            const int N = Ns[a], C = Cs[c];
            const size_t n = (size_t)N * C;
            float *x = randn(n, 71), *w = randn((size_t)C, 72), *bb = randn((size_t)C, 73);
            float *dy = randn(n, 74), *y = zeros(n), *mean = zeros((size_t)N);
            float *rstd = zeros((size_t)N), *dx = zeros(n), *dx1 = zeros(n);
            layernorm_forward(y, mean, rstd, x, w, bb, N, C);
            layernorm_backward(dx, NULL, NULL, dy, x, w, mean, rstd, N, C);
            for (int r = 0; r < N; r++) {
                const float *xr = x + (size_t)r * C, *gr = dy + (size_t)r * C;
                /* one row, as a plain loop: the same float operations in the same order */
                float m = 0.0f, v = 0.0f;
                for (int k = 0; k < C; k++) m += xr[k];
                m /= (float)C;
                for (int k = 0; k < C; k++) v += (xr[k] - m) * (xr[k] - m);
                v /= (float)C;
                const float s = 1.0f / sqrtf(v + XB_LN_EPS);
                ck_assert_float_eq(mean[r], m);
                ck_assert_float_eq(rstd[r], s);
                float sg = 0.0f, sgx = 0.0f;
                for (int k = 0; k < C; k++) {
                    const float g = gr[k] * w[k];
                    sg += g;
                    sgx += g * (xr[k] - m) * s;
                }
                sg /= (float)C, sgx /= (float)C;
                for (int k = 0; k < C; k++) {
                    ck_assert_float_eq(y[(size_t)r * C + k], (xr[k] - m) * s * w[k] + bb[k]);
                    const float g = gr[k] * w[k];
                    dx1[(size_t)r * C + k] += s * (g - sg - (xr[k] - m) * s * sgx);
                }
                /* and in double */
                double md = 0.0, vd = 0.0;
                for (int k = 0; k < C; k++) md += xr[k];
                md /= C;
                for (int k = 0; k < C; k++) vd += (xr[k] - md) * (xr[k] - md);
                vd /= C;
                for (int k = 0; k < C; k++) {
                    const double want = (xr[k] - md) / sqrt(vd + XB_LN_EPS) * w[k] + bb[k];
                    ck_assert_double_le(fabs(y[(size_t)r * C + k] - want),
                                        1e-4 * (1.0 + fabs(want)));
                }
            }
            ck_assert_int_eq(memcmp(dx, dx1, n * sizeof *dx), 0);
            free(x), free(w), free(bb), free(dy), free(y), free(mean), free(rstd), free(dx);
            free(dx1);
        }
}
END_TEST

/* ---- the fused linear-attention kernel ---- */
#pragma push_macro("H")
#undef H /* LinAttnShape has a member H (heads) */
typedef struct FusedCtx {
    const float *pq, *pk; /* (B, H, L, M) the features the map hands out */
    float *dpq, *dpk;     /* (B, H, L, M) the gradients the map receives */
    int heads, len, feats, key_calls;
} FusedCtx;

static void fused_map(const LinAttnMap *mp, int b, int h, int l0, int n, int is_key, int pass,
                      float *phi, float *work) {
    (void)work;
    FusedCtx *c = (FusedCtx *)mp->ctx;
    if (is_key) { /* the map is called from the kernel's threads */
#pragma omp atomic
        c->key_calls++;
    }
    if (pass == 0) return;
    const size_t o = (((size_t)b * c->heads + h) * c->len + l0) * c->feats;
    memcpy(phi, (is_key ? c->pk : c->pq) + o, (size_t)n * c->feats * sizeof *phi);
}

static void fused_map_backward(const LinAttnMap *mp, int b, int h, int l0, int n, int is_key,
                               float *dphi, int ld, const float *phi, float *work) {
    (void)phi, (void)work;
    FusedCtx *c = (FusedCtx *)mp->ctx;
    const size_t o = (((size_t)b * c->heads + h) * c->len + l0) * c->feats;
    for (int l = 0; l < n; l++)
        memcpy((is_key ? c->dpk : c->dpq) + o + (size_t)l * c->feats, dphi + (size_t)l * ld,
               (size_t)c->feats * sizeof *dphi);
}

/* O = φ(Q)(φ(K)ᵀV) / (φ(Q)·Σφ(K) + ε) and its gradients, the features handed out by a map a chunk
 * at a time, against a double-precision reference: three chunks of rows and a short one, a feature
 * count that is not a multiple of the tiles' 16 columns, padding keys, one and two key passes. */
START_TEST(test_linattn_fused_equals_double_reference) {
    const int B = 2, NH = 2, L = 300, M = 20, Dh = 5, D = NH * Dh, pad[2] = {0, 37};
    const size_t nf = (size_t)B * NH * L * M;
    float *pq = randn(nf, 81), *pk = randn(nf, 82), *v = randn((size_t)B * L * 3 * D, 83);
    for (size_t i = 0; i < nf; i++) pq[i] = fabsf(pq[i]) + 0.1f, pk[i] = fabsf(pk[i]) + 0.1f;
    float *dout = randn((size_t)B * L * D, 84), *o = zeros((size_t)B * L * D);
    float *phq = zeros(nf), *phk = zeros(nf), *kv = zeros((size_t)B * NH * M * Dh);
    float *z = zeros((size_t)B * NH * M), *den = zeros((size_t)B * NH * L);
    float *dpq = zeros(nf), *dpk = zeros(nf), *dv = zeros((size_t)B * L * 3 * D);
    unsigned char *mask = malloc((size_t)B * L);
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) mask[(size_t)b * L + l] = l < L - pad[b];
    LinAttnShape s = {.B = B,
                      .H = NH,
                      .L = L,
                      .M = M,
                      .Dh = Dh,
                      .ldv = 3 * D,
                      .ldo = D,
                      .bsv = (size_t)L * 3 * D,
                      .bso = (size_t)L * D,
                      .eps = 1e-6f};
    for (int passes = 1; passes <= 2; passes++) {
        FusedCtx c = {
            .pq = pq, .pk = pk, .dpq = dpq, .dpk = dpk, .heads = NH, .len = L, .feats = M};
        const LinAttnMap mp = {
            .key_passes = passes, .map = fused_map, .backward = fused_map_backward, .ctx = &c};
        Arena ar;
        ck_assert_int_eq(arena_init(&ar, linattn_fused_scratch_floats(&s, &mp) * 4 + 4096), 0);
        linattn_fused_forward(o, kv, z, den, phq, phk, v + 2 * D, mask, &s, &mp, &ar);
        ck_assert_int_eq(c.key_calls, B * NH * 3 * passes); /* 128 + 128 + 44 rows, per pass */
        memset(dv, 0, (size_t)B * L * 3 * D * sizeof *dv);
        linattn_fused_backward(dv + 2 * D, dout, o, phq, phk, v + 2 * D, kv, z, den, mask, &s, &mp,
                               &ar);
        arena_destroy(&ar);
        double worst = 0.0;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const size_t bh = (size_t)b * NH + h;
                double S[20][5] = {{0}}, zz[20] = {0}, dS[20][5] = {{0}}, dz[20] = {0};
                const float *Q = pq + bh * L * M, *K = pk + bh * L * M;
                for (int j = 0; j < L; j++) {
                    const int real = mask[(size_t)b * L + j];
                    for (int m = 0; m < M; m++) {
                        ck_assert_float_eq(phk[(bh * L + j) * M + m], real ? K[j * M + m] : 0.0f);
                        if (!real) continue;
                        zz[m] += K[j * M + m];
                        for (int d = 0; d < Dh; d++)
                            S[m][d] +=
                                K[j * M + m] * v[((size_t)b * L + j) * 3 * D + 2 * D + h * Dh + d];
                    }
                }
                for (int l = 0; l < L; l++) {
                    double dn = 1e-6, num[5] = {0}, dot = 0.0, ref[5];
                    for (int m = 0; m < M; m++) {
                        dn += Q[l * M + m] * zz[m];
                        for (int d = 0; d < Dh; d++) num[d] += Q[l * M + m] * S[m][d];
                    }
                    const float *g = dout + ((size_t)b * L + l) * D + h * Dh;
                    for (int d = 0; d < Dh; d++) {
                        ref[d] = num[d] / dn;
                        const float got = o[((size_t)b * L + l) * D + h * Dh + d];
                        worst = fmax(worst, fabs(got - ref[d]) / (1.0 + fabs(ref[d])));
                        dot += g[d] * ref[d];
                    }
                    const double dden = -dot / dn;
                    for (int m = 0; m < M; m++) {
                        double want = dden * zz[m];
                        for (int d = 0; d < Dh; d++) want += g[d] / dn * S[m][d];
                        const float got = dpq[(bh * L + l) * M + m];
                        worst = fmax(worst, fabs(got - want) / (1.0 + fabs(want)));
                        dz[m] += Q[l * M + m] * dden;
                        for (int d = 0; d < Dh; d++) dS[m][d] += Q[l * M + m] * g[d] / dn;
                    }
                }
                for (int j = 0; j < L; j++) {
                    const int real = mask[(size_t)b * L + j];
                    const float *vj = v + ((size_t)b * L + j) * 3 * D + 2 * D + h * Dh;
                    for (int m = 0; m < M; m++) {
                        double want = dz[m];
                        for (int d = 0; d < Dh; d++) want += vj[d] * dS[m][d];
                        want = real ? want : 0.0;
                        const float got = dpk[(bh * L + j) * M + m];
                        worst = fmax(worst, fabs(got - want) / (1.0 + fabs(want)));
                    }
                    for (int d = 0; d < Dh; d++) {
                        double want = 0.0;
                        for (int m = 0; m < M; m++) want += (real ? K[j * M + m] : 0.0) * dS[m][d];
                        const float got = dv[((size_t)b * L + j) * 3 * D + 2 * D + h * Dh + d];
                        worst = fmax(worst, fabs(got - want) / (1.0 + fabs(want)));
                    }
                }
            }
        ck_assert_double_le(worst, 1e-4);
    }
    free(pq), free(pk), free(v), free(dout), free(o), free(phq), free(phk), free(kv), free(z);
    free(den), free(dpq), free(dpk), free(dv), free(mask);
}
END_TEST
#pragma pop_macro("H")

static Suite *kernels_suite(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_linear_backward_matches_finite_differences);
    tcase_add_test(tc, test_linear_backward_accumulates_and_skips_null);
    tcase_add_test(tc, test_linear_counts_two_flops_per_multiply_add);
    tcase_add_test(tc, test_matmul_every_transpose_equals_the_naive_product_and_counts_2mnk);
    tcase_add_test(tc, test_matmul_strided_reads_and_writes_only_its_block);
    tcase_add_test(tc, test_matmul_backward_accumulates_the_naive_gradients_and_counts_each);
    tcase_add_test(tc, test_matmul_batched_over_rows_and_heads_equals_each_product);
    tcase_add_test(tc, test_skinny_products_equal_the_double_product_and_count_2mnk);
    tcase_add_test(tc, test_skinny_products_same_bits_for_any_threads);
    tcase_add_test(tc, test_linear_on_skinny_kernels_equals_linear_on_sgemm);
    tcase_add_test(tc, test_layernorm_backward_matches_finite_differences);
    tcase_add_test(tc, test_layernorm_output_has_zero_mean_unit_variance);
    tcase_add_test(tc, test_gelu_backward_matches_finite_differences);
    tcase_add_test(tc, test_relu_backward_matches_finite_differences);
    tcase_add_test(tc, test_softmax_backward_matches_finite_differences);
    tcase_add_test(tc, test_softmax_is_shift_invariant_and_handles_large_logits);
    tcase_add_test(tc, test_dropout_backward_matches_finite_differences);
    tcase_add_test(tc, test_dropout_keeps_expected_fraction_and_same_bits_for_any_threads);
    tcase_add_test(tc, test_embedding_backward_matches_finite_differences);
    tcase_add_test(tc, test_sinusoidal_table_matches_formula);
    tcase_add_test(tc, test_pooling_backward_matches_finite_differences);
    tcase_add_test(tc, test_crossentropy_backward_matches_finite_differences);
    tcase_add_test(tc, test_crossentropy_rows_without_target_have_no_loss_or_gradient);
    tcase_add_test(tc, test_fast_exp_is_accurate_over_the_float_range);
    tcase_add_test(tc, test_fast_sincos_is_accurate_over_its_range);
    tcase_add_test(tc, test_sort_by_key_is_stable_and_gather_scatter_are_adjoint);
    tcase_add_test(tc, test_fused_dropout_passes_equal_separate_passes);
    tcase_add_test(tc, test_dropout_masks_kept_as_bits_give_the_hashed_bits);
    tcase_add_test(tc, test_layernorm_row_blocks_equal_reference_and_one_row_at_a_time);
    tcase_add_test(tc, test_linattn_fused_equals_double_reference);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
