/* Mamba's selective scan (Gu & Dao, arXiv 2312.00752, Algorithm 2; the recurrence of
 * state-spaces/mamba mamba_ssm/ops/selective_scan_interface.py, selective_scan_ref): per batch row
 * b and channel e, with a state h ∈ R^N,
 *     h_t = exp(Δ_t·A_e) ⊙ h_{t−1} + Δ_t·u_t·B_t,    y_t = C_t·h_t + D_e·u_t,
 * Δ, u (B, L, E) per channel, B_t, C_t ∈ R^N shared by the channels (input-dependent), A (E, N).
 * The scan runs forward in t, or backward (t = L−1 … 0) for the reverse branch of a bidirectional
 * encoder. A position with Δ_t = 0 and u_t = 0 leaves the state exactly as it was (exp(0) = 1):
 * that is how masked positions are skipped.
 *
 * Channels are independent: the work is split over (b, blocks of 16 channels), OpenMP static,
 * the L-loop sequential, the N states of a block in registers. The forward keeps the state at the
 * start of every chunk of `chunk` steps; the backward recomputes the states within a chunk from
 * there and runs the adjoint recurrence backwards: O(B·E·N·L/chunk) saved floats instead of
 * O(B·E·N·L). */
#ifndef XB_SELECTIVE_SCAN_H
#define XB_SELECTIVE_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

#define SSCAN_MAX_N 256 /* largest state size (Mamba's d_state) */

typedef struct SscanShape {
    int B, L, E, N;
    int ldbc;    /* row stride of B_t and C_t (they live in x_proj's output, (B, L, ldbc)) */
    int chunk;   /* steps between saved states */
    int reverse; /* 1: the scan runs t = L−1 … 0 */
} SscanShape;

/* Number of saved states per (b, e): ceil(L / chunk). */
int sscan_chunks(const SscanShape *s);
/* y (B, L, E) = the scan of u (B, L, E) with step sizes delta (B, L, E), A (E, N), Bm and Cm
 * (B, L, ldbc) and the skip Dskip (E). Saves states (B, chunks, E, N): the state entering each
 * chunk (in scan order). Overwrites y. */
void sscan_forward(float *y, float *states, const float *u, const float *delta, const float *A,
                   const float *Bm, const float *Cm, const float *Dskip, const SscanShape *s);
/* Given dy (B, L, E) = ∂loss/∂y: du, ddelta (B, L, E), dA (E, N), dBm and dCm (B, L, ldbc) and
 * dD (E) += the gradients. Needs the forward's inputs and saved states; takes
 * sscan_scratch_floats(s) floats from scratch and gives them back. */
void sscan_backward(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD,
                    const float *dy, const float *u, const float *delta, const float *A,
                    const float *Bm, const float *Cm, const float *Dskip, const float *states,
                    const SscanShape *s, Arena *scratch);
size_t sscan_scratch_floats(const SscanShape *s);
/* FLOPs of one call, 2 per multiply-add of the recurrences: forward 6 per state and step (the
 * update exp(ΔA)·h + (Δu)·B, the read-out C·h) and 2 per channel and step (D·u); backward 4 per
 * state for the recomputed update, 18 per state for the adjoint (dh, dC, dB, du, dΔ, dA and the
 * carried dh) and 6 per channel. The exponentials are not counted, as a softmax's are not. */
uint64_t sscan_flops(const SscanShape *s, int backward);

#endif
