/* Dense layer: out = inp·Wᵀ + b, with W stored (out_features, in_features) as in PyTorch's
 * nn.Linear, so checkpoints load without transposes. The products run on kernels/skinny.h where
 * the CPU and the shapes suit it, on OpenBLAS otherwise. */
#ifndef XB_LINEAR_H
#define XB_LINEAR_H

/* out (N, OC) = inp (N, IC) · weight (OC, IC)ᵀ + bias (OC); bias may be NULL. Overwrites out. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int IC, int OC);
/* dinp (N, IC) += dout·weight; dweight (OC, IC) += doutᵀ·inp; dbias (OC) += column sums of dout.
 * Any of dinp, dweight, dbias may be NULL (not computed, and its FLOPs not counted). */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int IC, int OC);

#endif
