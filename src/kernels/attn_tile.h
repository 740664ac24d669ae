/* The small products and column passes of the fused attention kernel (kernels/attention.c), on one
 * tile of keys × queries. Heads are narrow (Dh 32 in LRA's models), so a tile's products are tall
 * and skinny: sgemm packs both operands on every call and zeroes its output first, which cost
 * about as much as the arithmetic. Here only the query tile is packed (once, for all of its key
 * tiles); scores are stored transposed, keys × queries, so the softmax's maxima and sums over keys
 * are sums down columns: vector adds in key order, with no horizontal reduction.
 *
 * Two implementations with the same arithmetic: AVX2 with FMA (6×16 register tiles), chosen at
 * run time when the CPU has both, and portable C. Every sum runs in a fixed order, so the bits do
 * not depend on the thread count; they may differ between the two implementations (FMA rounds
 * once). */
#ifndef XB_ATTN_TILE_H
#define XB_ATTN_TILE_H

#include <stddef.h>

/* Columns of a packed panel. Tiles of n columns are stored with row stride attn_tile_cols(n). */
enum { ATTN_TILE_NR = 16 };
static inline int attn_tile_cols(int n) {
    return (n + ATTN_TILE_NR - 1) / ATTN_TILE_NR * ATTN_TILE_NR;
}

/* bt ← alpha·Bᵀ of B (n × k, row stride ldb) in panels of 16 columns:
 * bt[(p·k + d)·16 + c] = alpha·B[16p + c][d], zero for rows 16p + c >= n. Floats:
 * attn_tile_cols(n)·k. */
void attn_tile_pack(float *bt, const float *b, int ldb, int n, int k, float alpha);

/* C (m × attn_tile_cols(n), row stride ldc) = A·Bᵀ + rowbias[r] on row r (rowbias NULL: none),
 * A (m × k, row stride lda), bt as attn_tile_pack left it. colmax (attn_tile_cols(n)), when not
 * NULL, becomes max(colmax, the column's maxima). */
void attn_tile_scores(float *c, int ldc, const float *a, int lda, const float *bt, int m, int n,
                      int k, const float *rowbias, float *colmax);

/* C = E ∘ (A·Bᵀ − colsub[c]), E and C (m × attn_tile_cols(n)) with row stride ldc: the softmax's
 * backward on a tile (E the probabilities, colsub each query's rowsum(dO ∘ O)). */
void attn_tile_dscores(float *c, int ldc, const float *a, int lda, const float *bt, int m, int n,
                       int k, const float *e, const float *colsub);

/* C (m × n, row stride ldc) += alpha·A·B, with A's element (i, t) at a[i·ars + t·acs] (m × kk, so
 * A or Aᵀ of a stored tile) and B (kk × n, row stride ldb). Each element's products are summed in
 * t order, then added to C. */
void attn_tile_acc(float *c, int ldc, const float *a, int ars, int acs, const float *b, int ldb,
                   int m, int n, int kk, float alpha);

/* S (m × n, n a multiple of 8, row stride lds) ← 2^(S − ref[c]) column by column; colsum (n),
 * when not NULL, receives each column's sum of the new values, rows added in order. Base 2: the
 * reduction x = n + r is exact, so the exponential is a few operations shorter than e^x (the
 * kernel scales its scores by log2(e) instead). Relative error below 2e-7; 0 below −126 and for
 * −inf; NaN stays NaN. */
void attn_tile_exp2(float *s, int lds, int m, int n, const float *ref, float *colsum);
/* 2^x as attn_tile_exp2 computes it, for one value. */
float attn_tile_exp2f(float x);
/* y (n) = a·(2^(x − ref) + b) with attn_tile_exp2's exponential, for a row of features
 * (Performer's positive features). y may equal x. */
void attn_tile_exp2_row(float *y, const float *x, int n, float ref, float a, float b);

/* colmax (n) ← max(colmax, the maxima of S's columns), n a multiple of 8. */
void attn_tile_colmax(const float *s, int lds, int m, int n, float *colmax);

/* Tests: 1 runs the portable implementation even where AVX2 and FMA are available. */
void attn_tile_force_portable(int on);
/* 1 when the AVX2 implementation is in use. */
int attn_tile_uses_avx2(void);

#endif
