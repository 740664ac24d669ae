/* Inverted dropout (Srivastava et al., JMLR 2014) with counter-based masks: element i of a call
 * is kept iff rng_hash_uniform(key, first + i) >= p, so forward and backward agree without storing
 * the mask, the bits do not depend on the number of threads, and a batch split across processes
 * (each passing the index of its first element in the whole batch as `first`) draws the masks of
 * the whole batch: an example's mask does not depend on the number of processes. */
#ifndef XB_DROPOUT_H
#define XB_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

/* The key of one dropout site in one step. */
uint64_t dropout_key(uint64_t seed, int64_t step, int site);
/* out (n) = kept ? inp / (1 − p) : 0; p = 0 copies. out may equal inp. */
void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key, uint64_t first);
/* dinp (n) += kept ? dout / (1 − p) : 0, with the forward's key and first. */
void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                      uint64_t first);

#endif
