/* Switch Transformer mixture-of-experts feed-forward layer (Fedus et al., arXiv 2101.03961, §2):
 * a router sends each token to its top-1 expert FFN, scaled by the router probability; each
 * expert takes at most C = ceil(T/E · capacity_factor) tokens (T the real tokens), in position
 * order, and the tokens beyond it are dropped (output 0: the block's residual carries them). The
 * load-balancing loss α·E·Σ_e f_e·P_e (eq. 4: f_e the fraction of tokens whose top-1 is e, P_e the
 * mean router probability of e) and optionally the router z-loss β·mean(logsumexp(z)²) (ST-MoE,
 * arXiv 2202.08906, eq. 5) are added to the training loss. Padding tokens are not routed. */
#ifndef XB_MOE_H
#define XB_MOE_H

#include <stdint.h>

#include "core/arena.h"

typedef struct MoeParams {
    const float *wr;      /* (E, D) router */
    const float *w1, *b1; /* (E, F, D), (E, F) */
    const float *w2, *b2; /* (E, D, F), (E, D) */
} MoeParams;

typedef struct MoeGrads {
    float *wr, *w1, *b1, *w2, *b2; /* same shapes, accumulated into */
} MoeGrads;

typedef struct Moe {
    int N, D, F, E; /* tokens (B·L), width, expert hidden width, experts */
    /* saved by forward */
    float *p;              /* (N, E) router probabilities */
    float *lse;            /* (N) router logsumexp */
    int *expert;           /* (N) top-1 expert, −1 for padding */
    int *order;            /* (N) kept tokens grouped by expert, in position order; then −1 */
    int *start;            /* (E + 1) each expert's first row in order */
    float *xe, *h, *a, *o; /* (N, D), (N, F), (N, F), (N, D) rows in `order` */
    int kept, real;        /* tokens kept by the capacity; real (routed) tokens */
    int *count;            /* (E) tokens whose top-1 is e (before dropping) */
    int frozen;            /* tests: reuse the last routing (argmax and drops are piecewise
                            * constant; finite differences must not cross them) */
} Moe;

/* Sizes; the saved buffers are carved by moe_plan. */
void moe_init(Moe *m, int N, int D, int F, int E);
/* Carves the saved activations from acts (NULL pointers while measuring) and measures scratch. */
void moe_plan(Moe *m, Arena *acts, Arena *scratch);
/* y (N, D) = the layer on x (N, D); valid (N) marks real tokens (NULL: all). Returns the weighted
 * auxiliary loss (α·balance + β·z-loss) over the real tokens. */
double moe_forward(Moe *m, float *y, const float *x, const unsigned char *valid, const MoeParams *p,
                   double capacity_factor, double alpha, double beta, Arena *scratch);
/* dx (N, D) += ∂/∂x, gradients += for the loss whose gradient at y is dy plus the auxiliary loss
 * (weight 1). */
void moe_backward(Moe *m, float *dx, const MoeGrads *g, const float *dy, const float *x,
                  const unsigned char *valid, const MoeParams *p, double alpha, double beta,
                  Arena *scratch);
/* Matrix-product FLOPs of the last forward's routing (backward = 0), or of its backward. */
uint64_t moe_flops(const Moe *m, int backward);

#endif
