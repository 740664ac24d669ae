#include "kernels/activations.h"

#include "core/profile.h"
#include "kernels/dropout.h"
#include "kernels/fastmath.h"
#include "kernels/simd.h"

#define GELU_K 0.7978845608028654f /* √(2/π) */
#define GELU_C 0.044715f

/* tanh(u) = 1 − 2/(e^{2u} + 1), with the vectorisable exp; exact enough (|err| < 1e-6) and
 * saturating correctly at ±1 for large |u|. */
static inline float fast_tanh(float u) { return 1.0f - 2.0f / (xb_expf(2.0f * u) + 1.0f); }

static inline float gelu(float x) {
    return 0.5f * x * (1.0f + fast_tanh(GELU_K * (x + GELU_C * x * x * x)));
}

/* gelu'(x) */
static inline float gelu_grad(float x) {
    const float t = fast_tanh(GELU_K * (x + GELU_C * x * x * x));
    const float du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}

XB_CLONES static void gelu_forward_impl(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = gelu(inp[i]);
}

XB_CLONES static void gelu_backward_impl(float *dinp, const float *inp, const float *dout,
                                         size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * gelu_grad(inp[i]);
}

/* The FFN's GELU and its dropout in one pass, each value rounded as the two passes round it. */
XB_CLONES static void gelu_dropout_forward_impl(float *out, const float *inp, size_t n, float p,
                                                uint64_t key, uint64_t first, uint64_t *keep) {
    if (p <= 0.0f) {
        gelu_forward_impl(out, inp, n);
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
#pragma omp simd
            for (size_t j = 0; j < m; j++) {
                const float g = gelu(inp[i0 + j]);
                out[i0 + j] = k[j] ? g * s : 0.0f;
            }
        }
        return;
    }
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float g = gelu(inp[i]);
        out[i] = dropout_kept(key, first + i, t) ? g * s : 0.0f;
    }
}

/* dinp = 0 + gelu'(inp)·(0 + dropout's gradient of dout): the bits of clearing a buffer, the
 * dropout backward into it, clearing dinp and the GELU backward into it. */
XB_CLONES static void gelu_dropout_backward_impl(float *dinp, const float *inp, const float *dout,
                                                 size_t n, float p, uint64_t key, uint64_t first,
                                                 const uint64_t *keep) {
    if (p <= 0.0f) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) dinp[i] = 0.0f + (0.0f + dout[i]) * gelu_grad(inp[i]);
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
#pragma omp simd
            for (size_t j = 0; j < m; j++) {
                const float dh = dropout_bit(k, j) ? 0.0f + dout[i0 + j] * s : 0.0f;
                dinp[i0 + j] = 0.0f + dh * gelu_grad(inp[i0 + j]);
            }
        }
        return;
    }
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float dh = dropout_kept(key, first + i, t) ? 0.0f + dout[i] * s : 0.0f;
        dinp[i] = 0.0f + dh * gelu_grad(inp[i]);
    }
}

XB_CLONES static void relu_forward_impl(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

XB_CLONES static void relu_backward_impl(float *dinp, const float *inp, const float *dout,
                                         size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

/* One pass: the active set (unless frozen) and the output. */
XB_CLONES static void relu_forward_set_impl(float *out, unsigned char *active, const float *inp,
                                            size_t n, int frozen) {
    if (!frozen) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) {
            const unsigned char a = inp[i] > 0.0f;
            active[i] = a;
            out[i] = a ? inp[i] : 0.0f;
        }
        return;
    }
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = active[i] ? inp[i] : 0.0f;
}

XB_CLONES static void relu_backward_set_impl(float *dinp, const unsigned char *active,
                                             const float *dout, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += active[i] ? dout[i] : 0.0f;
}

/* The entry points, timed by core/profile.h. */
void gelu_forward(float *out, const float *inp, size_t n) {
    prof_open(PROF_ACTIVATION, 0);
    gelu_forward_impl(out, inp, n);
    prof_close();
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    prof_open(PROF_ACTIVATION, 1);
    gelu_backward_impl(dinp, inp, dout, n);
    prof_close();
}

void gelu_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key,
                          uint64_t first, uint64_t *keep) {
    prof_open(PROF_ACTIVATION, 0);
    gelu_dropout_forward_impl(out, inp, n, p, key, first, keep);
    prof_close();
}

void gelu_dropout_backward(float *dinp, const float *inp, const float *dout, size_t n, float p,
                           uint64_t key, uint64_t first, const uint64_t *keep) {
    prof_open(PROF_ACTIVATION, 1);
    gelu_dropout_backward_impl(dinp, inp, dout, n, p, key, first, keep);
    prof_close();
}

void relu_forward(float *out, const float *inp, size_t n) {
    prof_open(PROF_ACTIVATION, 0);
    relu_forward_impl(out, inp, n);
    prof_close();
}

void relu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    prof_open(PROF_ACTIVATION, 1);
    relu_backward_impl(dinp, inp, dout, n);
    prof_close();
}

void relu_forward_set(float *out, unsigned char *active, const float *inp, size_t n, int frozen) {
    prof_open(PROF_ACTIVATION, 0);
    relu_forward_set_impl(out, active, inp, n, frozen);
    prof_close();
}

void relu_backward_set(float *dinp, const unsigned char *active, const float *dout, size_t n) {
    prof_open(PROF_ACTIVATION, 1);
    relu_backward_set_impl(dinp, active, dout, n);
    prof_close();
}
