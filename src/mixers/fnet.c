/* fnet: Fourier token mixing (Lee-Thorp et al., FNet, arXiv 2105.03824, §3.2): the attention
 * sublayer becomes Y = Re(FFT_seq(FFT_hidden(X))), a 2-D discrete Fourier transform over the
 * sequence and the hidden dimension keeping the real part; no parameters. Computed with FFTW (a
 * real-to-complex 2-D plan per length, made once; the other half of the spectrum follows from
 * Hermitian symmetry, Z[k1][k2] = conj(Z[−k1][−k2]), whose real part is the same).
 *
 * Backward: for real X the map is X ↦ Re(F)·X with F = F_L ⊗ F_D, and the DFT matrix is symmetric,
 * so Re(F) is a symmetric real matrix: the map is its own adjoint and dX = Re(FFT2(dY)).
 *
 * Padding: the paper mixes every position. Here padding rows are zeroed before the transform (the
 * same as padding with zero vectors), so their content cannot reach real positions; the real
 * outputs still depend on the padded length, as in the paper. FLOPs: an FFT is not a matrix
 * product; it is counted as FFTW's benchmarks count a real transform of N points, 2.5·N·log2 N. */
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "mixers/mixer.h"

static const OptSpec fnet_opts[1]; /* no options */

typedef struct FnetState {
    fftwf_plan plan; /* r2c L × D, made for the planned length */
    int L;
} FnetState;

static void fnet_create(Mixer *m, ParamTable *pt) {
    (void)pt;
    FnetState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
}

static size_t spectrum_floats(int L, int D) { return (size_t)L * (D / 2 + 1) * 2; }

/* Floats of one thread's work: the input rows, then the half spectrum, 64-byte aligned. */
static size_t input_floats(int L, int D) { return ((size_t)L * D + 15) / 16 * 16; }
static size_t thread_floats(int L, int D) {
    return input_floats(L, D) + (spectrum_floats(L, D) + 15) / 16 * 16 + 16;
}

static void fnet_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    (void)acts;
    FnetState *st = m->state;
    const int D = m->D, nt = omp_get_max_threads();
    arena_floats(scratch, (size_t)B * L * D); /* backward with a mask: the full gradient */
    arena_floats(scratch, (size_t)nt * thread_floats(L, D));
    if (st->plan && st->L == L) return;
    if (st->plan) fftwf_destroy_plan(st->plan);
    float *in = fftwf_alloc_real((size_t)L * D);
    fftwf_complex *out = fftwf_alloc_complex((size_t)L * (D / 2 + 1));
    XB_ASSERT(in && out);
    st->plan = fftwf_plan_dft_r2c_2d(L, D, in, out, FFTW_ESTIMATE);
    XB_ASSERT(st->plan);
    st->L = L;
    fftwf_free(in);
    fftwf_free(out);
}

static uint64_t fft_flops(int B, int L, int D) {
    const double n = (double)L * (double)D;
    return (uint64_t)B * (uint64_t)llround(2.5 * n * log2(n));
}

/* y (B, L, D) = Re(FFT2(x)) per batch row, with the masked rows of x taken as 0. The same call is
 * the backward (dx += Re(FFT2(dy))) with accumulate = 1. */
static void fourier(const Mixer *m, const MixerStep *s, float *y, const float *x, int accumulate) {
    const FnetState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, H2 = D / 2 + 1;
    XB_ASSERT(st->plan && st->L == L);
    const size_t nin = input_floats(L, D), per = thread_floats(L, D);
    const size_t mark = arena_mark(s->scratch);
    float *work = arena_floats(s->scratch, (size_t)omp_get_max_threads() * per);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *in = work + (size_t)omp_get_thread_num() * per;
        fftwf_complex *z = (fftwf_complex *)(in + nin); /* both 64-byte aligned, as per is */
        for (int i = 0; i < L; i++) {
            const int real = !s->mask || s->mask[(size_t)b * L + i];
            if (real)
                memcpy(in + (size_t)i * D, x + ((size_t)b * L + i) * D, (size_t)D * sizeof(float));
            else
                memset(in + (size_t)i * D, 0, (size_t)D * sizeof(float));
        }
        fftwf_execute_dft_r2c(st->plan, in, z);
        for (int k1 = 0; k1 < L; k1++) {
            float *yr = y + ((size_t)b * L + k1) * D;
            for (int k2 = 0; k2 < D; k2++) {
                const size_t at =
                    k2 < H2 ? (size_t)k1 * H2 + k2 : (size_t)((L - k1) % L) * H2 + (size_t)(D - k2);
                const float re = z[at][0];
                yr[k2] = accumulate ? yr[k2] + re : re;
            }
        }
    }
    flops_add(fft_flops(B, L, D));
    arena_reset_to(s->scratch, mark);
}

static void fnet_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    fourier(m, s, y, x, 0);
}

static void fnet_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                          const float *x) {
    (void)x;
    /* the masked rows of x were zeros: their gradient is 0 */
    const int B = s->B, L = s->L, D = m->D;
    if (!s->mask) {
        fourier(m, s, dx, dy, 1);
        return;
    }
    const size_t mark = arena_mark(s->scratch);
    float *g = arena_floats(s->scratch, (size_t)B * L * D);
    MixerStep all = *s;
    all.mask = NULL;
    fourier(m, &all, g, dy, 0);
    for (size_t r = 0; r < (size_t)B * L; r++)
        if (s->mask[r])
            for (int d = 0; d < D; d++) dx[r * D + d] += g[r * D + d];
    arena_reset_to(s->scratch, mark);
}

static uint64_t fnet_flops(const Mixer *m, int B, int L, int backward) {
    (void)backward;
    return fft_flops(B, L, m->D);
}

static void fnet_destroy(Mixer *m) {
    FnetState *st = m->state;
    if (st && st->plan) fftwf_destroy_plan(st->plan);
    free(st);
}

const MixerSpec mixer_fnet = {
    .name = "fnet",
    .classes = "ALT",
    .arxiv = "2105.03824",
    .title = "FNet: Fourier mixing Re(FFT2(X)) through FFTW, no parameters (an alternative to "
             "attention, outside the survey's classes)",
    .honours_mask = 1,
    .padding_dependence = "the DFT runs over the padded length, padding rows counting as zeros (as "
                          "FNet's code on padded batches)",
    .opts = fnet_opts,
    .n_opts = 0,
    .ops = &(const MixerOps){MIXER_OPS(fnet), .destroy = fnet_destroy},
};
