#include "kernels/dropout.h"

#include <string.h>

#include "core/rng.h"

uint64_t dropout_key(uint64_t seed, int64_t step, int site) {
    return rng_mix64(rng_mix64(seed ^ ((uint64_t)RNG_STREAM_DROPOUT << 56)) ^
                     rng_mix64((uint64_t)step * 0x9E3779B97F4A7C15ull + (uint64_t)site));
}

void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key) {
    if (p <= 0.0f) {
        if (out != inp) memcpy(out, inp, n * sizeof *out);
        return;
    }
    const float s = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = rng_hash_uniform(key, i) >= p ? inp[i] * s : 0.0f;
}

void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t key) {
    if (p <= 0.0f) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
        return;
    }
    const float s = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        if (rng_hash_uniform(key, i) >= p) dinp[i] += dout[i] * s;
}
