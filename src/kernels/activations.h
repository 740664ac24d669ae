/* Element-wise activations. */
#ifndef XB_ACTIVATIONS_H
#define XB_ACTIVATIONS_H

#include <stddef.h>
#include <stdint.h>

/* GELU, tanh approximation (Hendrycks & Gimpel, arXiv 1606.08415, §2):
 * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). out may equal inp. */
void gelu_forward(float *out, const float *inp, size_t n);
/* dinp += gelu'(inp)·dout. */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* out = dropout(gelu(inp)) in one pass (kernels/dropout.h: the same key, first and mask, and keep
 * receives the mask when not NULL), with the bits of gelu_forward followed by dropout_forward. out
 * may equal inp. */
void gelu_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key,
                          uint64_t first, uint64_t *keep);
/* Its backward into a dinp that is overwritten: the bits of zeroing a buffer, dropout_backward
 * into it (from keep when not NULL), zeroing dinp and gelu_backward into it. dinp may equal
 * dout. */
void gelu_dropout_backward(float *dinp, const float *inp, const float *dout, size_t n, float p,
                           uint64_t key, uint64_t first, const uint64_t *keep);
/* ReLU: out = max(inp, 0). */
void relu_forward(float *out, const float *inp, size_t n);
/* dinp += [inp > 0]·dout. */
void relu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* ReLU on an active set: unless `frozen`, active[i] = inp[i] > 0 first; then out[i] = active[i] ?
 * inp[i] : 0. Frozen (MixerStep.frozen), the set of the previous call is kept, so the map is
 * linear around the point a gradient check perturbs and no kink lies between its evaluations. */
void relu_forward_set(float *out, unsigned char *active, const float *inp, size_t n, int frozen);
/* (out may equal inp.) */
/* dinp += active[i]·dout[i]. */
void relu_backward_set(float *dinp, const unsigned char *active, const float *dout, size_t n);

#endif
