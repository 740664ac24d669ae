#include "kernels/dropout.h"

#include <math.h>
#include <string.h>

#include "core/profile.h"
#include "core/rng.h"
#include "kernels/simd.h"

uint64_t dropout_key(uint64_t seed, int64_t step, int site) {
    return rng_mix64(rng_mix64(seed ^ ((uint64_t)RNG_STREAM_DROPOUT << 56)) ^
                     rng_mix64((uint64_t)step * 0x9E3779B97F4A7C15ull + (uint64_t)site));
}

/* out = drop(inp) (+ res when res is not NULL: the residual add of a block, in the same pass; the
 * dropped value is rounded to float first, so the bits are those of the two passes). */
XB_CLONES static void dropout_forward_impl(float *out, const float *inp, const float *res, size_t n,
                                           float p, uint64_t key, uint64_t first) {
    if (p <= 0.0f) {
        if (res) {
#pragma omp parallel for simd schedule(static)
            for (size_t i = 0; i < n; i++) out[i] = inp[i] + res[i];
        } else if (out != inp) {
            memcpy(out, inp, n * sizeof *out);
        }
        return;
    }
    const float s = 1.0f / (1.0f - p);
    const uint32_t t = dropout_threshold(p);
    if (res) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) {
            const float d = dropout_kept(key, first + i, t) ? inp[i] * s : 0.0f;
            out[i] = d + res[i];
        }
        return;
    }
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = dropout_kept(key, first + i, t) ? inp[i] * s : 0.0f;
}

/* set = 0: dinp += the gradient (a select, not += 0, which would turn a −0 into +0); set = 1: dinp
 * = 0 + the gradient, the bits of clearing dinp and accumulating, in one pass. */
XB_CLONES static void dropout_backward_impl(float *dinp, const float *dout, size_t n, float p,
                                            uint64_t key, uint64_t first, int set) {
    if (p <= 0.0f) {
        if (set) {
#pragma omp parallel for simd schedule(static)
            for (size_t i = 0; i < n; i++) dinp[i] = 0.0f + dout[i];
        } else {
#pragma omp parallel for simd schedule(static)
            for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
        }
        return;
    }
    const float s = 1.0f / (1.0f - p);
    const uint32_t t = dropout_threshold(p);
    if (set) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++)
            dinp[i] = dropout_kept(key, first + i, t) ? 0.0f + dout[i] * s : 0.0f;
        return;
    }
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        dinp[i] = dropout_kept(key, first + i, t) ? dinp[i] + dout[i] * s : dinp[i];
}

/* The entry points, timed by core/profile.h. */
void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key,
                     uint64_t first) {
    prof_open(PROF_DROPOUT, 0);
    dropout_forward_impl(out, inp, NULL, n, p, key, first);
    prof_close();
}

void dropout_add_forward(float *out, const float *inp, const float *res, size_t n, float p,
                         uint64_t key, uint64_t first) {
    prof_open(PROF_DROPOUT, 0);
    dropout_forward_impl(out, inp, res, n, p, key, first);
    prof_close();
}

void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                      uint64_t first) {
    prof_open(PROF_DROPOUT, 1);
    dropout_backward_impl(dinp, dout, n, p, key, first, 0);
    prof_close();
}

void dropout_backward_set(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                          uint64_t first) {
    prof_open(PROF_DROPOUT, 1);
    dropout_backward_impl(dinp, dout, n, p, key, first, 1);
    prof_close();
}
