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

#endif
