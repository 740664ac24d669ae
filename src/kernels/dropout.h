/* Inverted dropout (Srivastava et al., JMLR 2014) with counter-based masks: element i of a call
 * is kept iff rng_hash_uniform(key, first + i) >= p, so forward and backward agree without storing
 * the mask, the bits do not depend on the number of threads, and a batch split across processes
 * (each passing the index of its first element in the whole batch as `first`) draws the masks of
 * the whole batch: an example's mask does not depend on the number of processes. */
#ifndef XB_DROPOUT_H
#define XB_DROPOUT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

/* Element i of a call is kept when rng_hash_uniform(key, first + i) >= p, that is when its 24-bit
 * hash h has h / 2^24 >= p, i.e. h >= ceil(p · 2^24) (p · 2^24 is exact): the same mask, compared
 * in integers so loops vectorise. For kernels that fuse dropout with their own pass. */
static inline uint32_t dropout_threshold(float p) { return (uint32_t)ceilf(p * 16777216.0f); }
static inline int dropout_kept(uint64_t key, uint64_t i, uint32_t threshold) {
    return rng_hash_u24(key, i) >= threshold;
}

/* The key of one dropout site in one step. */
uint64_t dropout_key(uint64_t seed, int64_t step, int site);
/* out (n) = kept ? inp / (1 − p) : 0; p = 0 copies. out may equal inp. */
void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key, uint64_t first);
/* out (n) = dropout(inp) + res, one pass with the bits of dropout_forward and then the add (a
 * residual connection). out may equal inp or res. */
void dropout_add_forward(float *out, const float *inp, const float *res, size_t n, float p,
                         uint64_t key, uint64_t first);
/* dinp (n) += kept ? dout / (1 − p) : 0, with the forward's key and first. */
void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                      uint64_t first);
/* The same into a dinp that is overwritten: the bits of zeroing it and calling dropout_backward,
 * without the separate clearing pass. */
void dropout_backward_set(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                          uint64_t first);

#endif
