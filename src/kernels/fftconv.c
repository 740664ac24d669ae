#include "kernels/fftconv.h"

#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"

enum { CB = 8 }; /* channels per task: one row of u gives CB consecutive floats */

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

/* Floats of one thread's work: CB time-domain rows of n, one spectrum, CB accumulated spectra. */
static size_t thread_floats(const FftConv *fc) {
    return CB * round16((size_t)fc->n) + (CB + 1) * fc->fs;
}

static uint64_t fft_flops(int n) { return (uint64_t)llround(2.5 * n * log2((double)n)); }

void fftconv_init(FftConv *fc, int C, int two_sided) {
    memset(fc, 0, sizeof *fc);
    fc->C = C;
    fc->two_sided = two_sided;
}

void fftconv_free(FftConv *fc) {
    if (fc->r2c) fftwf_destroy_plan(fc->r2c);
    if (fc->c2r) fftwf_destroy_plan(fc->c2r);
    fc->r2c = fc->c2r = NULL;
}

void fftconv_plan(FftConv *fc, Arena *acts, Arena *scratch, int B, int L) {
    XB_ASSERT(L >= 1 && fc->C >= 1);
    if (!fc->r2c || fc->L != L) {
        fftconv_free(fc);
        fc->L = L;
        fc->n = 2 * L;
        fc->F = L + 1;
        fc->fs = round16(2 * (size_t)fc->F);
        float *in = fftwf_alloc_real((size_t)fc->n);
        fftwf_complex *out = fftwf_alloc_complex((size_t)fc->F);
        XB_ASSERT(in && out);
        fc->r2c = fftwf_plan_dft_r2c_1d(fc->n, in, out, FFTW_ESTIMATE);
        fc->c2r = fftwf_plan_dft_c2r_1d(fc->n, out, in, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
        XB_ASSERT(fc->r2c && fc->c2r);
        fftwf_free(in);
        fftwf_free(out);
    }
    fc->uspec = arena_floats(acts, (size_t)B * fc->C * fc->fs);
    fc->kspec = arena_floats(acts, (size_t)fc->C * fc->fs);
    arena_floats(scratch, (size_t)omp_get_max_threads() * thread_floats(fc));
}

void fftconv_set_kernel(FftConv *fc, const float *kf, const float *kb, size_t cs, size_t ls,
                        Arena *scratch) {
    const int C = fc->C, L = fc->L, n = fc->n;
    const size_t fs = fc->fs, per = round16((size_t)n);
    const float inv = 1.0f / (float)n;
    XB_ASSERT(fc->r2c && (!kb || fc->two_sided));
    const size_t mark = arena_mark(scratch);
    float *work = arena_floats(scratch, (size_t)omp_get_max_threads() * per);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float *t = work + (size_t)omp_get_thread_num() * per, *ks = fc->kspec + (size_t)c * fs;
        for (int l = 0; l < L; l++) t[l] = kf[(size_t)c * cs + (size_t)l * ls];
        if (kb) /* pad(flip(kb), (L, 0)): t[L + i] = kb[L − 1 − i] */
            for (int i = 0; i < L; i++) t[L + i] = kb[(size_t)c * cs + (size_t)(L - 1 - i) * ls];
        else
            memset(t + L, 0, (size_t)L * sizeof *t);
        fftwf_execute_dft_r2c(fc->r2c, t, (fftwf_complex *)ks);
        for (int k = 0; k < 2 * fc->F; k++) ks[k] *= inv;
    }
    flops_add((uint64_t)C * fft_flops(n));
    arena_reset_to(scratch, mark);
}

void fftconv_forward(FftConv *fc, float *y, const float *u, const float *dskip, int B,
                     Arena *scratch) {
    const int C = fc->C, L = fc->L, F = fc->F, nblk = (C + CB - 1) / CB;
    const size_t fs = fc->fs, nst = round16((size_t)fc->n), per = thread_floats(fc);
    XB_ASSERT(fc->r2c);
    const size_t mark = arena_mark(scratch);
    float *work = arena_floats(scratch, (size_t)omp_get_max_threads() * per);
#pragma omp parallel for schedule(static)
    for (int task = 0; task < B * nblk; task++) {
        const int b = task / nblk, c0 = task % nblk * CB, cn = XB_MIN(CB, C - c0);
        float *tb = work + (size_t)omp_get_thread_num() * per, *w = tb + CB * nst;
        for (int t = 0; t < L; t++) {
            const float *row = u + ((size_t)b * L + t) * C + c0;
            for (int cc = 0; cc < cn; cc++) tb[cc * nst + t] = row[cc];
        }
        for (int cc = 0; cc < cn; cc++) {
            const int c = c0 + cc;
            float *x = tb + cc * nst, *us = fc->uspec + ((size_t)b * C + c) * fs;
            const float *ks = fc->kspec + (size_t)c * fs;
            memset(x + L, 0, (size_t)L * sizeof *x);
            fftwf_execute_dft_r2c(fc->r2c, x, (fftwf_complex *)us);
            for (int k = 0; k < F; k++) { /* w = U·K */
                const float ar = us[2 * k], ai = us[2 * k + 1], br = ks[2 * k], bi = ks[2 * k + 1];
                w[2 * k] = ar * br - ai * bi;
                w[2 * k + 1] = ar * bi + ai * br;
            }
            fftwf_execute_dft_c2r(fc->c2r, (fftwf_complex *)w, x);
        }
        for (int t = 0; t < L; t++) {
            const size_t r = ((size_t)b * L + t) * C + c0;
            for (int cc = 0; cc < cn; cc++)
                y[r + cc] = tb[cc * nst + t] + (dskip ? dskip[c0 + cc] * u[r + cc] : 0.0f);
        }
    }
    flops_add(2ull * B * C * fft_flops(fc->n) + 6ull * B * C * F);
    arena_reset_to(scratch, mark);
}

void fftconv_backward(const FftConv *fc, float *du, float *dkf, float *dkb, size_t cs, size_t ls,
                      float *ddskip, const float *dy, const float *u, const float *dskip, int B,
                      Arena *scratch) {
    const int C = fc->C, L = fc->L, F = fc->F, nblk = (C + CB - 1) / CB;
    const size_t fs = fc->fs, nst = round16((size_t)fc->n), per = thread_floats(fc);
    const float inv = 1.0f / (float)fc->n;
    XB_ASSERT(fc->r2c);
    const size_t mark = arena_mark(scratch);
    float *work = arena_floats(scratch, (size_t)omp_get_max_threads() * per);
    /* a task owns CB channels and sums their kernel gradients over the batch rows in order */
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * CB, cn = XB_MIN(CB, C - c0);
        float *tb = work + (size_t)omp_get_thread_num() * per, *w = tb + CB * nst, *acc = w + fs;
        memset(acc, 0, CB * fs * sizeof *acc);
        double dsk[CB] = {0};
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < L; t++) {
                const size_t r = ((size_t)b * L + t) * C + c0;
                for (int cc = 0; cc < cn; cc++) {
                    tb[cc * nst + t] = dy[r + cc];
                    dsk[cc] += (double)dy[r + cc] * u[r + cc];
                }
            }
            for (int cc = 0; cc < cn; cc++) {
                const int c = c0 + cc;
                float *x = tb + cc * nst, *a = acc + cc * fs;
                const float *us = fc->uspec + ((size_t)b * C + c) * fs,
                            *ks = fc->kspec + (size_t)c * fs;
                memset(x + L, 0, (size_t)L * sizeof *x);
                fftwf_execute_dft_r2c(fc->r2c, x, (fftwf_complex *)w);
                for (int k = 0; k < F; k++) { /* acc += dY·conj(U); w = dY·conj(K) */
                    const float gr = w[2 * k], gi = w[2 * k + 1];
                    a[2 * k] += gr * us[2 * k] + gi * us[2 * k + 1];
                    a[2 * k + 1] += gi * us[2 * k] - gr * us[2 * k + 1];
                    w[2 * k] = gr * ks[2 * k] + gi * ks[2 * k + 1];
                    w[2 * k + 1] = gi * ks[2 * k] - gr * ks[2 * k + 1];
                }
                fftwf_execute_dft_c2r(fc->c2r, (fftwf_complex *)w, x);
            }
            for (int t = 0; t < L; t++) {
                const size_t r = ((size_t)b * L + t) * C + c0;
                for (int cc = 0; cc < cn; cc++)
                    du[r + cc] += tb[cc * nst + t] + (dskip ? dskip[c0 + cc] * dy[r + cc] : 0.0f);
            }
        }
        for (int cc = 0; cc < cn; cc++) {
            const int c = c0 + cc;
            float *x = tb + cc * nst;
            fftwf_execute_dft_c2r(fc->c2r, (fftwf_complex *)(acc + cc * fs), x);
            for (int l = 0; l < L; l++) dkf[(size_t)c * cs + (size_t)l * ls] += x[l] * inv;
            if (fc->two_sided && dkb)
                for (int i = 0; i < L; i++)
                    dkb[(size_t)c * cs + (size_t)i * ls] += x[2 * L - 1 - i] * inv;
            if (dskip && ddskip) ddskip[c] += (float)dsk[cc];
        }
    }
    flops_add((2ull * B * C + C) * fft_flops(fc->n) + 14ull * B * C * F);
    arena_reset_to(scratch, mark);
}

uint64_t fftconv_flops(int B, int C, int L, int backward) {
    const uint64_t f = fft_flops(2 * L), bc = (uint64_t)B * C, F = (uint64_t)L + 1;
    if (backward) return (2 * bc + (uint64_t)C) * f + 14 * bc * F;
    return (uint64_t)C * f + 2 * bc * f + 6 * bc * F;
}
