/* The Compressive Transformer's compressed memory (Rae et al., arXiv 1911.05507, §3), an option of
 * the Transformer-XL recurrence. Each block keeps, before its memory of M states, N compressed
 * slots: the states that fell out of the memory, compressed c to 1 by f_c, a 1-D convolution with
 * kernel and stride c (§3.1, the paper's best function). Segment k (positions [kS, kS + S)) sees
 *
 *     [ N slots of positions [kS − M − cN, kS − M) ; memory [kS − M, kS) ; segment ]
 *
 * which is what the paper's FIFO holds after k steps when c divides S and M (so that every
 * position falls into one group of c, whichever segment evicts it): the slots are computed once
 * per group over the whole sequence and shared by the windows, like the memory.
 *
 * Neither the memory nor the slots pass the task's gradient (stop-gradient). f_c is trained only
 * by the attention-reconstruction loss (§3.2, Algorithm 2): at segment k the S states evicted from
 * the memory, old = [kS − M, kS − M + S), are compressed; the segment's states h attend over old
 * and over f_c(old), and the loss is ‖attn(h, old) − attn(h, f_c(old))‖², with h and old under a
 * stop-gradient, summed over the rows and averaged over the real query rows. The attention is
 * content-based multi-head attention over the states themselves (heads as D/H slices, scale
 * 1/√(D/H)): the mechanism's own query/key/value maps are not something every mechanism has
 * (FNet, Synthesizer's random variant), and one loss for every mechanism keeps them comparable.
 * Padding states are zeroed before f_c and excluded as keys; a slot is real when any of its c
 * positions is. */
#ifndef XB_COMPRESS_H
#define XB_COMPRESS_H

#include <stdint.h>

#include "core/arena.h"
#include "core/params.h"

typedef struct Compress {
    int B, L, D, H, S, M, c, N; /* batch, length, width, heads, segment, memory, rate, slots */
    int p_w, p_b;               /* f_c: (D, c·D) on c consecutive states, (D) */
    /* saved by forward */
    float *in;                /* (M + B·L, D): M zero rows, then the states, padding zeroed */
    float *slots;             /* (M/c + B·L/c, D): M/c zero rows, then f_c of every group */
    unsigned char *smask;     /* (B, L/c) the real slots */
    unsigned char *okeys;     /* (B·nS, S) the evicted states that are real keys */
    unsigned char *nkeys;     /* (B·nS, S/c) their compressions that are real keys */
    float *newo, *lse, *dout; /* (B·nS·S, D), (B·nS, H, S), (B·nS·S, D): attention over the
                               * compressions, its log-sum-exp, the loss's gradient at it */
} Compress;

/* Sizes, and f_c's parameters declared as `prefix`.compress.{weight,bias}. */
void compress_create(Compress *cp, ParamTable *pt, const char *prefix, int B, int L, int D, int H,
                     int S, int M, int c, int N);
/* Carves the saved buffers from acts (NULL pointers while measuring) and measures scratch. */
void compress_plan(Compress *cp, Arena *acts, Arena *scratch);
/* Compresses the block's states x (B, L, D) (mask (B, L), NULL: all real) into cp->slots and
 * returns the attention-reconstruction loss. frozen (tests): keep the states of the last forward
 * (the memory's stop-gradient, seen by finite differences). */
double compress_forward(Compress *cp, const float *x, const unsigned char *mask, int frozen,
                        const float *params, const ParamTable *pt, Arena *scratch);
/* f_c's gradients += those of the loss of the last forward. */
void compress_backward(Compress *cp, const float *params, float *grads, const ParamTable *pt,
                       Arena *scratch);
/* The N slots that segment k of example b sees before its memory, those of the N groups of c that
 * end at position kS − M, into rows (N, D), and whether each is a real key into real (N): a slot
 * before the sequence's start is zero and no key, as is one of padding alone. */
void compress_window(const Compress *cp, float *rows, unsigned char *real, int b, int k);
/* Matrix-product FLOPs of one forward (backward = 0) or backward. */
uint64_t compress_flops(const Compress *cp, int backward);

#endif
