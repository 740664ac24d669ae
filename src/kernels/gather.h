/* Moving rows by an index (the K6/K7 kernels of the design): learnable patterns sort their tokens
 * into buckets or clusters, attend on the sorted sequence, and move the results back. */
#ifndef XB_GATHER_H
#define XB_GATHER_H

/* dst row r (stride ldd) = src row idx[r] (stride lds), w floats; idx[r] < 0 gives a zero row. */
void gather_rows(float *dst, int ldd, const float *src, int lds, const int *idx, int n, int w);

/* The adjoint of gather_rows: dst row idx[r] += src row r, for idx[r] >= 0. Rows are visited in
 * order r = 0..n-1, so the sums are the same bits at any thread count; when `injective` (no two
 * rows share a destination, e.g. a permutation) the rows are spread over threads. */
void scatter_add_rows(float *dst, int ldd, const float *src, int lds, const int *idx, int n, int w,
                      int injective);

/* Stable counting sort: perm receives 0..n-1 ordered by key (0 <= key < nkeys), ties by index,
 * so sorting by (bucket, position) is one call. work holds nkeys + 1 ints. */
void sort_by_key(const int *key, int n, int nkeys, int *perm, int *work);

/* inv[perm[i]] = i. */
void invert_perm(const int *perm, int n, int *inv);

#endif
