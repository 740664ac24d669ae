/* Matrix products on OpenBLAS that count their own FLOPs (core/flops.h: 2 per multiply-add, so a
 * product of op(a) (M, K) by op(b) (K, N) adds 2·M·N·K). Every matrix is row-major; an operand
 * read transposed is stored as its transpose (a as (K, M), b as (N, K)). A thin layer over
 * cblas_sgemm: the same call with the same arguments, so the bits are BLAS's own.
 *
 * Threads: a product outside a parallel region runs on BLAS's threads; inside one (a loop over
 * heads with `omp parallel for`) BLAS runs it on the calling thread. */
#ifndef XB_MATMUL_H
#define XB_MATMUL_H

#include <stddef.h>
#include <stdint.h>

/* Which operands are read transposed: a then b (N: as stored, T: transposed). */
typedef enum { MM_NN, MM_NT, MM_TN, MM_TT } MatTrans;

/* c (M, N) = alpha·op(a)·op(b) + beta·c, every operand contiguous. With beta = 0, c is only
 * written. */
void matmul(float *c, const float *a, const float *b, int M, int N, int K, MatTrans t, float alpha,
            float beta);

/* The same with row strides (floats between the rows as stored: ldc for c (M, N), lda for a,
 * ldb for b), for blocks of wider matrices such as one head's columns of (L, D). */
void matmul_strided(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M,
                    int N, int K, MatTrans t, float alpha, float beta);

/* The backward of c = alpha·op(a)·op(b) with every operand contiguous: da += alpha·∂/∂a (laid out
 * as a), db += alpha·∂/∂b (laid out as b), from dc (M, N). Either of da, db may be NULL (not
 * computed, not counted). */
void matmul_backward(float *da, float *db, const float *dc, const float *a, const float *b, int M,
                     int N, int K, MatTrans t, float alpha);

/* The same with row strides: ldda for da, lddb for db, ldc for dc, lda for a, ldb for b. */
void matmul_backward_strided(float *da, int ldda, float *db, int lddb, const float *dc, int ldc,
                             const float *a, int lda, const float *b, int ldb, int M, int N, int K,
                             MatTrans t, float alpha);

/* n1 × n2 products (batch rows × heads, say): product (i, j) reads a + i·a1 + j·a2 and
 * b + i·b1 + j·b2 and writes c + i·c1 + j·c2 (offsets in floats), each as matmul_strided.
 * parallel = 1 runs the products on OpenMP threads (each product on one), 0 one after the
 * other on BLAS's threads. */
typedef struct MatBatch {
    int n1, n2;
    size_t a1, a2, b1, b2, c1, c2;
    int parallel;
} MatBatch;
void matmul_batched(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M,
                    int N, int K, MatTrans t, float alpha, float beta, const MatBatch *bt);

/* The FLOPs that one product of that size counts: 2·M·N·K. */
static inline uint64_t matmul_flops(int M, int N, int K) {
    return 2ull * (uint64_t)M * (uint64_t)N * (uint64_t)K;
}

#endif
