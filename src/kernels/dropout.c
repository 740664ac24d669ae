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
 * dropped value is rounded to float first, so the bits are those of the two passes); keep, when
 * not NULL, receives the mask. */
XB_CLONES static void dropout_forward_impl(float *out, const float *inp, const float *res, size_t n,
                                           float p, uint64_t key, uint64_t first, uint64_t *keep) {
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
    if (keep) {
        const size_t nw = dropout_words(n);
#pragma omp parallel for schedule(static)
        for (size_t w = 0; w < nw; w++) {
            const size_t i0 = w * 64, m = n - i0 < 64 ? n - i0 : 64;
            unsigned char k[64];
            keep[w] = dropout_word(k, key, first + i0, m, t);
            float *o = out + i0;
            const float *x = inp + i0, *r = res ? res + i0 : NULL;
            if (r) {
#pragma omp simd
                for (size_t j = 0; j < m; j++) {
                    const float d = k[j] ? x[j] * s : 0.0f;
                    o[j] = d + r[j];
                }
            } else {
#pragma omp simd
                for (size_t j = 0; j < m; j++) o[j] = k[j] ? x[j] * s : 0.0f;
            }
        }
        return;
    }
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
 * = 0 + the gradient, the bits of clearing dinp and accumulating, in one pass. The mask from keep
 * when not NULL, else from the hash. */
XB_CLONES static void dropout_backward_impl(float *dinp, const float *dout, size_t n, float p,
                                            uint64_t key, uint64_t first, const uint64_t *keep,
                                            int set) {
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
    if (keep) {
        const size_t nw = dropout_words(n);
#pragma omp parallel for schedule(static)
        for (size_t w = 0; w < nw; w++) {
            const size_t i0 = w * 64, m = n - i0 < 64 ? n - i0 : 64;
            const uint64_t k = keep[w];
            float *di = dinp + i0;
            const float *g = dout + i0;
            if (set) {
#pragma omp simd
                for (size_t j = 0; j < m; j++) di[j] = dropout_bit(k, j) ? 0.0f + g[j] * s : 0.0f;
            } else {
#pragma omp simd
                for (size_t j = 0; j < m; j++) di[j] = dropout_bit(k, j) ? di[j] + g[j] * s : di[j];
            }
        }
        return;
    }
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
void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key, uint64_t first,
                     uint64_t *keep) {
    prof_open(PROF_DROPOUT, 0);
    dropout_forward_impl(out, inp, NULL, n, p, key, first, keep);
    prof_close();
}

void dropout_add_forward(float *out, const float *inp, const float *res, size_t n, float p,
                         uint64_t key, uint64_t first, uint64_t *keep) {
    prof_open(PROF_DROPOUT, 0);
    dropout_forward_impl(out, inp, res, n, p, key, first, keep);
    prof_close();
}

void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                      uint64_t first, const uint64_t *keep) {
    prof_open(PROF_DROPOUT, 1);
    dropout_backward_impl(dinp, dout, n, p, key, first, keep, 0);
    prof_close();
}

void dropout_backward_set(float *dinp, const float *dout, size_t n, float p, uint64_t key,
                          uint64_t first, const uint64_t *keep) {
    prof_open(PROF_DROPOUT, 1);
    dropout_backward_impl(dinp, dout, n, p, key, first, keep, 1);
    prof_close();
}
