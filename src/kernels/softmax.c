#include "kernels/softmax.h"

#include <stddef.h>

#include "kernels/fastmath.h"
#include "core/profile.h"

static void softmax_forward_impl(float *out, const float *inp, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float mx = x[0];
        for (int c = 1; c < C; c++) mx = x[c] > mx ? x[c] : mx;
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = xb_expf(x[c] - mx);
        float sum = 0.0f; /* in index order, as in attention.c */
        for (int c = 0; c < C; c++) sum += y[c];
        const float inv = 1.0f / sum;
        for (int c = 0; c < C; c++) y[c] *= inv;
    }
}

static void softmax_backward_impl(float *dinp, const float *out, const float *dout, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *y = out + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float dot = 0.0f;
        for (int c = 0; c < C; c++) dot += dy[c] * y[c];
        for (int c = 0; c < C; c++) dx[c] += y[c] * (dy[c] - dot);
    }
}

/* The entry points, timed by core/profile.h. */
void softmax_forward(float *out, const float *inp, int N, int C) {
    prof_open(PROF_SOFTMAX, 0);
    softmax_forward_impl(out, inp, N, C);
    prof_close();
}

void softmax_backward(float *dinp, const float *out, const float *dout, int N, int C) {
    prof_open(PROF_SOFTMAX, 1);
    softmax_backward_impl(dinp, out, dout, N, C);
    prof_close();
}
