/* Token embeddings plus position embeddings (learned table or fixed sinusoids). */
#ifndef XB_EMBEDDING_H
#define XB_EMBEDDING_H

#include <stdint.h>

/* out (B, T, C) = wte[tokens[b, t]] + wpe[t]; wte (V, C), wpe (T, C) or NULL for none. */
void embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B,
                       int T, int C);
/* dwte (V, C) += scattered dout; dwpe (T, C) += dout summed over the batch (each may be NULL). */
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B,
                        int T, int C);
/* The fixed sinusoidal table of Vaswani et al. (arXiv 1706.03762, §3.5), interleaved as LRA has it:
 * out[t, 2i] = sin(t / 10000^(2i/C)), out[t, 2i+1] = cos(t / 10000^(2i/C)). out (T, C). */
void sinusoidal_table(float *out, int T, int C);

#endif
