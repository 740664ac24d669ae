#include "kernels/dropout.h"

#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "core/profile.h"

uint64_t dropout_key(uint64_t seed, int64_t step, int site) {
    return rng_mix64(rng_mix64(seed ^ ((uint64_t)RNG_STREAM_DROPOUT << 56)) ^
                     rng_mix64((uint64_t)step * 0x9E3779B97F4A7C15ull + (uint64_t)site));
}

/* An element is kept when rng_hash_uniform(key, i) >= p, that is when its 24-bit hash h has
 * h / 2^24 >= p, i.e. h >= ceil(p · 2^24) (p · 2^24 is exact): the same mask, compared in integers
 * so the loop vectorises. */
static uint32_t keep_threshold(float p) { return (uint32_t)ceilf(p * 16777216.0f); }

static void dropout_forward_impl(float *out, const float *inp, size_t n, float p, uint64_t key,
                                 uint64_t first) {
    if (p <= 0.0f) {
        if (out != inp) memcpy(out, inp, n * sizeof *out);
        return;
    }
    const float s = 1.0f / (1.0f - p);
    const uint32_t t = keep_threshold(p);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = rng_hash_u24(key, first + i) >= t ? inp[i] * s : 0.0f;
}

static void dropout_backward_impl(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                                  uint64_t first) {
    if (p <= 0.0f) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
        return;
    }
    const float s = 1.0f / (1.0f - p);
    const uint32_t t = keep_threshold(p);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) /* a select, not += 0, which would turn a -0 into +0 */
        dinp[i] = rng_hash_u24(key, first + i) >= t ? dinp[i] + dout[i] * s : dinp[i];
}

/* The entry points, timed by core/profile.h. */
void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key,
                     uint64_t first) {
    prof_open(PROF_DROPOUT, 0);
    dropout_forward_impl(out, inp, n, p, key, first);
    prof_close();
}

void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                      uint64_t first) {
    prof_open(PROF_DROPOUT, 1);
    dropout_backward_impl(dinp, dout, n, p, key, first);
    prof_close();
}
