#include "kernels/linear.h"

#include <stddef.h>
#include <string.h>

#include "core/profile.h"
#include "kernels/matmul.h"
#include "kernels/skinny.h"

static void linear_forward_impl(float *out, const float *inp, const float *weight,
                                const float *bias, int N, int IC, int OC) {
    if (skinny_available() && skinny_fits(N, OC, IC)) {
        skinny_nt(out, inp, weight, bias, N, OC, IC);
        return;
    }
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof *out);
    }
    matmul(out, inp, weight, N, OC, IC, MM_NT, 1.0f, bias ? 1.0f : 0.0f);
}

static void linear_backward_impl(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, int N, int IC, int OC) {
    /* out = inp·weightᵀ: dinp += dout·weight, dweight += doutᵀ·inp */
    if (skinny_available() && skinny_fits(N, OC, IC)) {
        if (dinp) skinny_nn_acc(dinp, dout, weight, N, IC, OC);
        if (dweight) skinny_tn_acc(dweight, dout, inp, OC, IC, N);
    } else {
        matmul_backward(dinp, dweight, dout, inp, weight, N, OC, IC, MM_NT, 1.0f);
    }
    if (dbias) {
        /* Column blocks per thread, rows summed in order: the same bits for any thread count. */
        enum { CB = 16 };
        const int nblk = (OC + CB - 1) / CB;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nblk; blk++) {
            const int c0 = blk * CB, c1 = c0 + CB < OC ? c0 + CB : OC;
            float acc[CB] = {0};
            for (int n = 0; n < N; n++) {
                const float *row = dout + (size_t)n * OC;
                for (int c = c0; c < c1; c++) acc[c - c0] += row[c];
            }
            for (int c = c0; c < c1; c++) dbias[c] += acc[c - c0];
        }
    }
}

/* The entry points, timed by core/profile.h. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int IC, int OC) {
    prof_open(PROF_LINEAR, 0);
    linear_forward_impl(out, inp, weight, bias, N, IC, OC);
    prof_close();
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int IC, int OC) {
    prof_open(PROF_LINEAR, 1);
    linear_backward_impl(dinp, dweight, dbias, dout, inp, weight, N, IC, OC);
    prof_close();
}
