#include "kernels/pool.h"
#include "core/profile.h"

#include <stddef.h>

static void pool_cls_forward_impl(float *out, const float *inp, int B, int L, int C) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) out[(size_t)b * C + c] = inp[(size_t)b * L * C + c];
}

static void pool_cls_backward_impl(float *dinp, const float *dout, int B, int L, int C) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) dinp[(size_t)b * L * C + c] += dout[(size_t)b * C + c];
}

static int real_count(const unsigned char *mask, int b, int L) {
    if (!mask) return L;
    int n = 0;
    for (int t = 0; t < L; t++) n += mask[(size_t)b * L + t] != 0;
    return n;
}

static void pool_mean_forward_impl(float *out, const float *inp, const unsigned char *mask, int B,
                                   int L, int C) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * C;
        for (int c = 0; c < C; c++) o[c] = 0.0f;
        const int n = real_count(mask, b, L);
        if (n == 0) continue;
        for (int t = 0; t < L; t++) {
            if (mask && !mask[(size_t)b * L + t]) continue;
            const float *x = inp + ((size_t)b * L + t) * C;
            for (int c = 0; c < C; c++) o[c] += x[c];
        }
        const float inv = 1.0f / (float)n;
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

static void pool_mean_backward_impl(float *dinp, const float *dout, const unsigned char *mask,
                                    int B, int L, int C) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const int n = real_count(mask, b, L);
        if (n == 0) continue;
        const float inv = 1.0f / (float)n;
        const float *d = dout + (size_t)b * C;
        for (int t = 0; t < L; t++) {
            if (mask && !mask[(size_t)b * L + t]) continue;
            float *g = dinp + ((size_t)b * L + t) * C;
            for (int c = 0; c < C; c++) g[c] += d[c] * inv;
        }
    }
}

/* The entry points, timed by core/profile.h. */
void pool_cls_forward(float *out, const float *inp, int B, int L, int C) {
    prof_open(PROF_POOL, 0);
    pool_cls_forward_impl(out, inp, B, L, C);
    prof_close();
}

void pool_cls_backward(float *dinp, const float *dout, int B, int L, int C) {
    prof_open(PROF_POOL, 1);
    pool_cls_backward_impl(dinp, dout, B, L, C);
    prof_close();
}

void pool_mean_forward(float *out, const float *inp, const unsigned char *mask, int B, int L,
                       int C) {
    prof_open(PROF_POOL, 0);
    pool_mean_forward_impl(out, inp, mask, B, L, C);
    prof_close();
}

void pool_mean_backward(float *dinp, const float *dout, const unsigned char *mask, int B, int L,
                        int C) {
    prof_open(PROF_POOL, 1);
    pool_mean_backward_impl(dinp, dout, mask, B, L, C);
    prof_close();
}
