/* Row-wise softmax. */
#ifndef XB_SOFTMAX_H
#define XB_SOFTMAX_H

/* out (N, C) = softmax of each row of inp (max-subtracted). out may equal inp. */
void softmax_forward(float *out, const float *inp, int N, int C);
/* dinp (N, C) += out ∘ (dout − rowsum(dout ∘ out)), from the forward's output. */
void softmax_backward(float *dinp, const float *out, const float *dout, int N, int C);

#endif
