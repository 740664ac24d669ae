/* Vectorisable elementary functions for the hot loops (GCC vectorises loops that call these under
 * `#pragma omp simd`; libm's expf is a scalar call and would dominate attention). */
#ifndef XB_FASTMATH_H
#define XB_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* exp(x) in float, after Cephes expf: x = n·ln2 + r with |r| <= ln2/2 (ln2 split in two parts for
 * exact reduction), e^r by a degree-6 polynomial, 2^n by building the exponent bits. Relative error
 * below 2e-7 for x in [-87.3, 88]; exactly 0 below -87.3 (including -inf), saturates above 88;
 * NaN for NaN (clamped first, so the integer conversion below never sees a NaN). */
static inline float xb_expf(float x) {
    const float lo = -87.33654475f, hi = 88.0f;
    float xc = x > lo ? x : lo; /* NaN fails the compare and becomes lo */
    xc = xc < hi ? xc : hi;
    /* n = round(x·log2(e)) by adding and subtracting 1.5·2^23: unlike floorf, this vectorises. */
    const float magic = 12582912.0f;
    const float n = (xc * 1.44269504088896341f + magic) - magic;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    const float y = p * scale;
    return x != x ? x : x < lo ? 0.0f : y;
}

/* sin(x) and cos(x) in float, after Cephes sinf/cosf: x = n·π/2 + r with n = round(x·2/π) and
 * π/2 in three parts (the first exact in 8 bits, so n·part is exact for |n| < 2^16), sin r and
 * cos r by Cephes' polynomials on |r| <= π/4, then the quadrant n mod 4. Absolute error below
 * 3e-7 for |x| <= XB_SINCOS_MAX (tests/test_kernels.c); beyond it, and for NaN, x is taken as 0:
 * a caller that may see such arguments recomputes them with libm's sinf and cosf. */
#define XB_SINCOS_MAX 8192.0f
static inline void xb_sincosf(float x, float *s, float *c) {
    const float xc = x >= -XB_SINCOS_MAX && x <= XB_SINCOS_MAX ? x : 0.0f; /* NaN: 0 */
    const float magic = 12582912.0f;                                        /* 1.5·2^23 */
    const float n = (xc * 0.636619772367581343f + magic) - magic;
    float r = xc - n * 1.5703125f;
    r = r - n * 4.837512969970703125e-4f;
    r = r - n * 7.54978995489188216e-8f;
    const float z = r * r;
    float ps = -1.9515295891e-4f;
    ps = ps * z + 8.3321608736e-3f;
    ps = ps * z - 1.6666654611e-1f;
    const float sr = ps * z * r + r;
    float pc = 2.443315711809948e-5f;
    pc = pc * z - 1.388731625493765e-3f;
    pc = pc * z + 4.166664568298827e-2f;
    const float cr = pc * z * z - 0.5f * z + 1.0f;
    const int32_t q = (int32_t)n & 3; /* sin: sr, cr, −sr, −cr; cos: cr, −sr, −cr, sr */
    const float sa = (q & 1) ? cr : sr, ca = (q & 1) ? sr : cr;
    *s = (q & 2) ? -sa : sa;
    *c = ((q + 1) & 2) ? -ca : ca;
}

#endif
