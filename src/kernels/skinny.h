/* The dense layers' products on register tiles of our own: a tall matrix (tens of thousands of
 * rows, batch × length) by a small one (tens to hundreds of rows and columns, the weights). On
 * such shapes sgemm repacks the tall operand on every call and runs at 35-57% of its square-matrix
 * speed (AMD EPYC, AVX2, 2 threads: 57-92 GFLOP/s for the forward products of d_model 64 against
 * 166 for n = 1024); here only the small operand is packed, into 16-column panels that stay in L1,
 * and the tall one is read in place a strip of rows at a time.
 *
 * AVX2 with FMA, 6×16 register tiles, chosen at run time (skinny_available). On a CPU with AVX-512
 * sgemm's own kernels are twice as wide as these, and ours have not been measured against them
 * there, so such a CPU keeps sgemm (kernels/linear.c decides).
 *
 * Every sum runs in a fixed order that depends on the shapes only, not on the thread count: rows
 * are independent, and the sum over rows of skinny_tn_acc adds fixed blocks of rows in block order.
 * Each function counts its FLOPs as kernels/matmul.h does (2·M·N·K). */
#ifndef XB_SKINNY_H
#define XB_SKINNY_H

/* 1 when the CPU runs these kernels (AVX2 and FMA) and has no AVX-512, and no test turned them
 * off. */
int skinny_available(void);
/* Tests and benchmarks: 1 makes skinny_available() say 0. */
void skinny_force_off(int on);
/* Whether a product with these dimensions is one these kernels are for (the small sides at most
 * SKINNY_MAX_SMALL, the tall side at least SKINNY_MIN_ROWS). */
enum { SKINNY_MAX_SMALL = 1024, SKINNY_MIN_ROWS = 64 };
int skinny_fits(int rows, int n, int k);

/* c (M, N) = a (M, K)·wᵀ + bias, w stored (N, K) (nn.Linear's weight); bias (N) may be NULL.
 * Overwrites c. Each element is bias + Σ_k a·w summed in k order. */
void skinny_nt(float *c, const float *a, const float *w, const float *bias, int M, int N, int K);

/* c (M, N) += a (M, K)·b (K, N). Each element's products are summed in k order, then added. */
void skinny_nn_acc(float *c, const float *a, const float *b, int M, int N, int K);

/* c (M, N) += aᵀ·b, a stored (K, M), b (K, N), K the long side (rows of a batch): the sum over K
 * in fixed blocks of rows, each block's sum in row order, the blocks' sums added in block order,
 * then to c. */
void skinny_tn_acc(float *c, const float *a, const float *b, int M, int N, int K);

#endif
