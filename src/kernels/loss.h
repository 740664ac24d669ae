/* Softmax cross-entropy for classification. */
#ifndef XB_LOSS_H
#define XB_LOSS_H

#include <stdint.h>

/* probs (B, V) = softmax(logits (B, V)); losses (B) = −log probs[b, targets[b]], or 0 for a row
 * whose target is negative (no target there). */
void crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *targets,
                          int B, int V);
/* dlogits (B, V) += scale·(probs − onehot(targets)) on rows with a target (>= 0): the gradient
 * of scale·Σ losses. */
void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, float scale,
                           int B, int V);

#endif
