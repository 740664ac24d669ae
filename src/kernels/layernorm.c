#include "kernels/layernorm.h"

#include <math.h>
#include <stddef.h>

#include "core/profile.h"
#include "kernels/simd.h"

/* Rows are normalised ROWS at a time: a row's sums are chains of dependent additions that wait on
 * the adder's latency, so the chains of ROWS rows are interleaved (each row still summed left to
 * right, the bits of one row at a time). */
enum { ROWS = 8 };

/* The mean and the variance of rows x[r·C ...] for r < nr, summed as a plain loop over c would. */
static inline void row_stats(const float *x, int nr, int C, float *mean, float *var) {
    float m[ROWS] = {0}, v[ROWS] = {0};
    if (nr == ROWS) {
        for (int c = 0; c < C; c++)
            for (int r = 0; r < ROWS; r++) m[r] += x[(size_t)r * C + c];
        for (int r = 0; r < ROWS; r++) m[r] /= (float)C;
        for (int c = 0; c < C; c++)
            for (int r = 0; r < ROWS; r++) {
                const float d = x[(size_t)r * C + c] - m[r];
                v[r] += d * d;
            }
    } else {
        for (int r = 0; r < nr; r++) {
            for (int c = 0; c < C; c++) m[r] += x[(size_t)r * C + c];
            m[r] /= (float)C;
            for (int c = 0; c < C; c++) {
                const float d = x[(size_t)r * C + c] - m[r];
                v[r] += d * d;
            }
        }
    }
    for (int r = 0; r < nr; r++) mean[r] = m[r], var[r] = v[r] / (float)C;
}

/* The backward's sums of g = dout·w and g·x̂ over each row, interleaved as row_stats. */
static inline void row_grad_sums(const float *dout, const float *inp, const float *weight,
                                 const float *mean, const float *rstd, int nr, int C, float *sg,
                                 float *sgx) {
    for (int r = 0; r < ROWS; r++) sg[r] = sgx[r] = 0.0f;
    if (nr == ROWS) {
        for (int c = 0; c < C; c++) {
            const float w = weight ? weight[c] : 1.0f;
            for (int r = 0; r < ROWS; r++) {
                const size_t k = (size_t)r * C + c;
                const float g = dout[k] * w;
                sg[r] += g;
                sgx[r] += g * (inp[k] - mean[r]) * rstd[r];
            }
        }
        return;
    }
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < C; c++) {
            const size_t k = (size_t)r * C + c;
            const float g = dout[k] * (weight ? weight[c] : 1.0f);
            sg[r] += g;
            sgx[r] += g * (inp[k] - mean[r]) * rstd[r];
        }
}

XB_CLONES static void layernorm_forward_impl(float *out, float *mean, float *rstd, const float *inp,
                                             const float *weight, const float *bias, int N, int C) {
    const int nb = (N + ROWS - 1) / ROWS;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nb; blk++) {
        const int n0 = blk * ROWS, nr = N - n0 < ROWS ? N - n0 : ROWS;
        float m[ROWS], v[ROWS];
        row_stats(inp + (size_t)n0 * C, nr, C, m, v);
        for (int r = 0; r < nr; r++) {
            const int n = n0 + r;
            const float *x = inp + (size_t)n * C;
            float *y = out + (size_t)n * C;
            const float mr = m[r], s = 1.0f / sqrtf(v[r] + XB_LN_EPS);
            if (weight && bias) {
                for (int c = 0; c < C; c++) y[c] = (x[c] - mr) * s * weight[c] + bias[c];
            } else {
                for (int c = 0; c < C; c++) {
                    float z = (x[c] - mr) * s;
                    if (weight) z *= weight[c];
                    if (bias) z += bias[c];
                    y[c] = z;
                }
            }
            mean[n] = mr;
            rstd[n] = s;
        }
    }
}

/* With x̂ = (x − μ)·σ⁻¹ and g = dout·w: dx = σ⁻¹·(g − mean(g) − x̂·mean(g·x̂)). */
XB_CLONES static void layernorm_backward_impl(float *dinp, float *dweight, float *dbias,
                                              const float *dout, const float *inp,
                                              const float *weight, const float *mean,
                                              const float *rstd, int N, int C) {
    if (dinp) {
        const int nb = (N + ROWS - 1) / ROWS;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nb; blk++) {
            const int n0 = blk * ROWS, nr = N - n0 < ROWS ? N - n0 : ROWS;
            float sg[ROWS], sgx[ROWS];
            row_grad_sums(dout + (size_t)n0 * C, inp + (size_t)n0 * C, weight, mean + n0, rstd + n0,
                          nr, C, sg, sgx);
            for (int r = 0; r < nr; r++) {
                const int n = n0 + r;
                const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                float *dx = dinp + (size_t)n * C;
                const float m = mean[n], s = rstd[n], a = sg[r] / (float)C, b = sgx[r] / (float)C;
                for (int c = 0; c < C; c++) {
                    const float g = dy[c] * (weight ? weight[c] : 1.0f);
                    dx[c] += s * (g - a - (x[c] - m) * s * b);
                }
            }
        }
    }
    if (dweight || dbias) {
        /* Channel blocks per thread, rows summed in order (deterministic for any thread count). */
        enum { CB = 16 };
        const int nblk = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nblk; blk++) {
            const int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
            float aw[CB] = {0}, ab[CB] = {0};
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                const float m = mean[n], s = rstd[n];
                for (int c = c0; c < c1; c++) {
                    aw[c - c0] += dy[c] * (x[c] - m) * s;
                    ab[c - c0] += dy[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dweight) dweight[c] += aw[c - c0];
                if (dbias) dbias[c] += ab[c - c0];
            }
        }
    }
}

/* The entry points, timed by core/profile.h. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C) {
    prof_open(PROF_LAYERNORM, 0);
    layernorm_forward_impl(out, mean, rstd, inp, weight, bias, N, C);
    prof_close();
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int N, int C) {
    prof_open(PROF_LAYERNORM, 1);
    layernorm_backward_impl(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
    prof_close();
}
