#include "kernels/matmul.h"

#include <cblas.h>

#include "core/flops.h"

static int ta_of(MatTrans t) { return t == MM_TN || t == MM_TT; }
static int tb_of(MatTrans t) { return t == MM_NT || t == MM_TT; }
static enum CBLAS_TRANSPOSE op(int transposed) { return transposed ? CblasTrans : CblasNoTrans; }
/* BLAS wants a leading dimension of at least 1, even for an empty matrix. */
static int ld_of(int cols) { return cols > 1 ? cols : 1; }

void matmul_strided(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M,
                    int N, int K, MatTrans t, float alpha, float beta) {
    cblas_sgemm(CblasRowMajor, op(ta_of(t)), op(tb_of(t)), M, N, K, alpha, a, lda, b, ldb, beta, c,
                ldc);
    flops_add(matmul_flops(M, N, K));
}

void matmul(float *c, const float *a, const float *b, int M, int N, int K, MatTrans t, float alpha,
            float beta) {
    matmul_strided(c, ld_of(N), a, ld_of(ta_of(t) ? M : K), b, ld_of(tb_of(t) ? K : N), M, N, K, t,
                   alpha, beta);
}

/* With C = α·op(A)·op(B): d op(A) = α·dC·op(B)ᵀ and d op(B) = α·op(A)ᵀ·dC, each written in the
 * layout its operand is stored in (a transposed operand gets the transposed product). */
void matmul_backward_strided(float *da, int ldda, float *db, int lddb, const float *dc, int ldc,
                             const float *a, int lda, const float *b, int ldb, int M, int N, int K,
                             MatTrans t, float alpha) {
    const int ta = ta_of(t), tb = tb_of(t);
    if (da) {
        if (!ta) /* dA (M, K) += α·dC·op(B)ᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, op(!tb), M, K, N, alpha, dc, ldc, b, ldb, 1.0f,
                        da, ldda);
        else /* dA (K, M) += α·op(B)·dCᵀ */
            cblas_sgemm(CblasRowMajor, op(tb), CblasTrans, K, M, N, alpha, b, ldb, dc, ldc, 1.0f,
                        da, ldda);
        flops_add(matmul_flops(M, N, K));
    }
    if (db) {
        if (!tb) /* dB (K, N) += α·op(A)ᵀ·dC */
            cblas_sgemm(CblasRowMajor, op(!ta), CblasNoTrans, K, N, M, alpha, a, lda, dc, ldc, 1.0f,
                        db, lddb);
        else /* dB (N, K) += α·dCᵀ·op(A) */
            cblas_sgemm(CblasRowMajor, CblasTrans, op(ta), N, K, M, alpha, dc, ldc, a, lda, 1.0f,
                        db, lddb);
        flops_add(matmul_flops(M, N, K));
    }
}

void matmul_backward(float *da, float *db, const float *dc, const float *a, const float *b, int M,
                     int N, int K, MatTrans t, float alpha) {
    const int lda = ld_of(ta_of(t) ? M : K), ldb = ld_of(tb_of(t) ? K : N);
    matmul_backward_strided(da, lda, db, ldb, dc, ld_of(N), a, lda, b, ldb, M, N, K, t, alpha);
}

/* Product (i, j) of a batch. */
static void batch_one(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M,
                      int N, int K, MatTrans t, float alpha, float beta, const MatBatch *bt, int i,
                      int j) {
    cblas_sgemm(CblasRowMajor, op(ta_of(t)), op(tb_of(t)), M, N, K, alpha,
                a + (size_t)i * bt->a1 + (size_t)j * bt->a2, lda,
                b + (size_t)i * bt->b1 + (size_t)j * bt->b2, ldb, beta,
                c + (size_t)i * bt->c1 + (size_t)j * bt->c2, ldc);
}

void matmul_batched(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M,
                    int N, int K, MatTrans t, float alpha, float beta, const MatBatch *bt) {
    const int n1 = bt->n1, n2 = bt->n2;
    if (bt->parallel) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int i = 0; i < n1; i++)
            for (int j = 0; j < n2; j++)
                batch_one(c, ldc, a, lda, b, ldb, M, N, K, t, alpha, beta, bt, i, j);
    } else {
        for (int i = 0; i < n1; i++)
            for (int j = 0; j < n2; j++)
                batch_one(c, ldc, a, lda, b, ldb, M, N, K, t, alpha, beta, bt, i, j);
    }
    flops_add((uint64_t)n1 * (uint64_t)n2 * matmul_flops(M, N, K));
}
