/* Layer normalisation over the last dimension (Ba et al., arXiv 1607.06450). */
#ifndef XB_LAYERNORM_H
#define XB_LAYERNORM_H

#define XB_LN_EPS 1e-6f

/* out (N, C) = (inp − mean)·rstd·weight + bias per row; saves mean (N) and rstd (N) for the
 * backward. weight and bias may be NULL (1 and 0). */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C);
/* dinp (N, C) += ∂/∂inp; dweight (C), dbias (C) += (each may be NULL). */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int N, int C);

#endif
