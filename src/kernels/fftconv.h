/* Long convolution through the FFT, for the mixers whose token mixing is a learned kernel as long
 * as the sequence (S4D, Hyena). Per channel c of u (B, L, C), with a forward kernel kf and, for a
 * two-sided (bidirectional) convolution, a backward kernel kb (both C × L):
 *
 *   y[t] = Σ_{j≤t} kf[c][t−j]·u[j] + Σ_{j>t} kb[c][j−t−1]·u[j] + dskip[c]·u[t],   t < L.
 *
 * Computed as S4's FFTConv does (state-spaces/s4 models/s4/s4.py, FFTConv.forward): the two
 * kernels become one of length 2L, k = pad(kf, (0, L)) + pad(flip(kb), (L, 0)), and u is
 * zero-padded to n = 2L, y = irfft(rfft(u, n)·rfft(k, n))[:L]: with 2L points nothing wraps
 * around, so this is the linear convolution above. The reverse sum starts at j = t + 1 (the
 * "deliberate off-by-one" of FFTConv; M2-BERT's bidirectional Hyena filter, HazyResearch/m2
 * bert/src/mm/hyena_utils.py HyenaFilter.forward, builds the same kernel), and kb[c][L−1] is
 * never used. Without kb the convolution is causal (S4D's and Hyena's own code).
 *
 * Backward, with U, K, dY the n-point spectra (K scaled by 1/n, as Hyena's fftconv_ref does):
 * du = irfft(dY·conj(K))[:L] + dskip·dy (a correlation), dk = irfft(Σ_b dY·conj(U))/n over the 2L
 * kernel, read back into kf (indices 0..L−1) and kb (index 2L−1−i for kb[i]).
 *
 * FFTW plans (FFTW_ESTIMATE: the same algorithm, so the same bits, in every run) are made at plan
 * time; OpenMP runs over (batch row, block of channels) in the forward and over blocks of channels
 * in the backward, whose kernel gradient sums the batch rows in order (the same bits for any
 * thread count). FLOPs: a real transform of n points counts 2.5·n·log2 n (as fnet), a complex
 * product 6 and a complex multiply-add 8; the skip term is element-wise (not counted). */
#ifndef XB_FFTCONV_H
#define XB_FFTCONV_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

typedef struct FftConv {
    int C, two_sided; /* channels; 1 with a backward kernel */
    int L, n, F;      /* planned length, FFT size 2L, spectrum bins n/2 + 1 */
    size_t fs;        /* floats per stored spectrum: 2F rounded up to 16 (64-byte aligned) */
    void *r2c, *c2r;  /* fftwf_plan of n points */
    float *uspec;     /* (B, C, fs) the input's spectra, saved by forward for backward */
    float *kspec;     /* (C, fs) the kernel's spectrum ×1/n, from fftconv_set_kernel */
} FftConv;

/* An empty convolution of C channels (two_sided: with a backward kernel); no plans yet. */
void fftconv_init(FftConv *fc, int C, int two_sided);
/* Makes the plans for length L (once per length; FFTW's planner is not thread-safe, so call it
 * from one thread), carves uspec and kspec from acts and measures what the calls take from
 * scratch at batch B. */
void fftconv_plan(FftConv *fc, Arena *acts, Arena *scratch, int B, int L);
/* Destroys the plans (the arena memory belongs to the caller). */
void fftconv_free(FftConv *fc);
/* fc->kspec = rfft(k, n)/n of the 2L kernel built from kf and kb (kb NULL: one-sided), where the
 * tap l of channel c is kf[c·cs + l·ls] (likewise kb). */
void fftconv_set_kernel(FftConv *fc, const float *kf, const float *kb, size_t cs, size_t ls,
                        Arena *scratch);
/* y (B, L, C) = the convolution of u (B, L, C) with the kernel set last, + dskip (C) ⊙ u (dskip
 * may be NULL); overwrites y and saves u's spectra for backward. */
void fftconv_forward(FftConv *fc, float *y, const float *u, const float *dskip, int B,
                     Arena *scratch);
/* du (B, L, C) += d/du; dkf, dkb += the kernels' gradients (strides cs, ls as in set_kernel;
 * dkb only when two-sided); ddskip (C) += (when dskip is given). Needs the u and kernel of the
 * last forward. */
void fftconv_backward(const FftConv *fc, float *du, float *dkf, float *dkb, size_t cs, size_t ls,
                      float *ddskip, const float *dy, const float *u, const float *dskip, int B,
                      Arena *scratch);
/* FLOPs that set_kernel + forward (backward = 0) or backward add at (B, C, L). */
uint64_t fftconv_flops(int B, int C, int L, int backward);

#endif
