/* FLOP counter that kernels add to as they run. Convention: 2 FLOPs per multiply-accumulate of a
 * matrix product (the papers' and LRA's convention); element-wise work (softmax, norms,
 * activations) is not counted. Kernels add once per call, from the calling thread. */
#ifndef XB_FLOPS_H
#define XB_FLOPS_H

#include <stdint.h>

void flops_add(uint64_t n);
uint64_t flops_counted(void);
void flops_reset(void);

#endif
