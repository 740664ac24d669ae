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

/* The mask of a call as bits, for a backward that reads it instead of hashing again (the hash is
 * most of a dropout pass's time): bit i % 64 of word i / 64 is element i's, 1 when kept.
 * dropout_words(n) words; a forward given such an array fills it (when p > 0), and a backward
 * given it reads it. The bits are those of the hash, so results do not change. */
static inline size_t dropout_words(size_t n) { return (n + 63) / 64; }
/* The mask of elements first .. first + m − 1 (m <= 64) of a call, as bytes (k[j] 1 when kept:
 * the form a vector loop selects with) and returned as a word. */
static inline uint64_t dropout_word(unsigned char *k, uint64_t key, uint64_t first, size_t m,
                                    uint32_t threshold) {
#pragma omp simd
    for (size_t j = 0; j < m; j++) k[j] = (unsigned char)dropout_kept(key, first + j, threshold);
    uint64_t w = 0;
    for (size_t j = 0; j < m; j++) w |= (uint64_t)k[j] << j;
    return w;
}
static inline int dropout_bit(uint64_t w, size_t j) { return (int)((w >> j) & 1u); }

/* The key of one dropout site in one step. */
uint64_t dropout_key(uint64_t seed, int64_t step, int site);
/* out (n) = kept ? inp / (1 − p) : 0; p = 0 copies. out may equal inp. keep (dropout_words(n)),
 * when not NULL and p > 0, receives the mask. */
void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key, uint64_t first,
                     uint64_t *keep);
/* out (n) = dropout(inp) + res, one pass with the bits of dropout_forward and then the add (a
 * residual connection). out may equal inp or res. */
void dropout_add_forward(float *out, const float *inp, const float *res, size_t n, float p,
                         uint64_t key, uint64_t first, uint64_t *keep);
/* dinp (n) += kept ? dout / (1 − p) : 0, with the forward's key and first, or its mask keep when
 * not NULL (then key and first are not read). */
void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                      uint64_t first, const uint64_t *keep);
/* The same into a dinp that is overwritten: the bits of zeroing it and calling dropout_backward,
 * without the separate clearing pass. */
void dropout_backward_set(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                          uint64_t first, const uint64_t *keep);

#endif
