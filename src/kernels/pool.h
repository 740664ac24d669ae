/* Sequence pooling to one vector per example, for the classification head. */
#ifndef XB_POOL_H
#define XB_POOL_H

/* out (B, C) = inp[b, 0, :] (the CLS position). inp (B, L, C). */
void pool_cls_forward(float *out, const float *inp, int B, int L, int C);
/* dinp[b, 0, :] += dout[b, :]. */
void pool_cls_backward(float *dinp, const float *dout, int B, int L, int C);
/* out (B, C) = mean of inp[b, t, :] over positions with mask[b, t] = 1 (NULL: all); a row with no
 * real token pools to 0. */
void pool_mean_forward(float *out, const float *inp, const unsigned char *mask, int B, int L,
                       int C);
/* dinp[b, t, :] += dout[b, :] / count_b at real positions. */
void pool_mean_backward(float *dinp, const float *dout, const unsigned char *mask, int B, int L,
                        int C);

#endif
