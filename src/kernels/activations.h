/* Element-wise activations. */
#ifndef XB_ACTIVATIONS_H
#define XB_ACTIVATIONS_H

#include <stddef.h>

/* GELU, tanh approximation (Hendrycks & Gimpel, arXiv 1606.08415, §2):
 * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). out may equal inp. */
void gelu_forward(float *out, const float *inp, size_t n);
/* dinp += gelu'(inp)·dout. */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* ReLU: out = max(inp, 0). */
void relu_forward(float *out, const float *inp, size_t n);
/* dinp += [inp > 0]·dout. */
void relu_backward(float *dinp, const float *inp, const float *dout, size_t n);

#endif
