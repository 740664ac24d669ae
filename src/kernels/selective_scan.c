#include "kernels/selective_scan.h"

#include <omp.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "kernels/fastmath.h"

enum { EB = 16 }; /* channels per work item */

int sscan_chunks(const SscanShape *s) { return (s->L + s->chunk - 1) / s->chunk; }

static int n_blocks(const SscanShape *s) { return (s->E + EB - 1) / EB; }

/* Position of scan step tau. */
static inline int step_t(const SscanShape *s, int tau) { return s->reverse ? s->L - 1 - tau : tau; }

void sscan_forward(float *y, float *states, const float *u, const float *delta, const float *A,
                   const float *Bm, const float *Cm, const float *Dskip, const SscanShape *s) {
    const int B = s->B, L = s->L, E = s->E, N = s->N, nc = sscan_chunks(s), nblk = n_blocks(s);
    XB_ASSERT(N <= SSCAN_MAX_N && s->chunk > 0);
#pragma omp parallel for schedule(static)
    for (int it = 0; it < B * nblk; it++) {
        const int b = it / nblk, e0 = it % nblk * EB, ne = E - e0 < EB ? E - e0 : EB;
        _Alignas(64) float h[EB * SSCAN_MAX_N]; /* (ne, N); aligned alike in every thread */
        memset(h, 0, (size_t)ne * N * sizeof *h);
        for (int tau = 0; tau < L; tau++) {
            if (tau % s->chunk == 0)
                memcpy(states + (((size_t)b * nc + tau / s->chunk) * E + e0) * N, h,
                       (size_t)ne * N * sizeof *h);
            const size_t row = (size_t)b * L + step_t(s, tau);
            const float *Bt = Bm + row * s->ldbc, *Ct = Cm + row * s->ldbc;
            for (int j = 0; j < ne; j++) {
                const int e = e0 + j;
                const float d = delta[row * E + e], x = u[row * E + e], dx = d * x;
                const float *Ae = A + (size_t)e * N;
                float *he = h + (size_t)j * N, acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (int n = 0; n < N; n++) {
                    const float hn = xb_expf(d * Ae[n]) * he[n] + dx * Bt[n];
                    he[n] = hn;
                    acc += Ct[n] * hn;
                }
                y[row * E + e] = acc + Dskip[e] * x;
            }
        }
    }
    flops_add(sscan_flops(s, 0));
}

static size_t thread_floats(const SscanShape *s) {
    return ((size_t)2 * s->chunk * EB * s->N + 15) / 16 * 16;
}

size_t sscan_scratch_floats(const SscanShape *s) {
    const size_t B = (size_t)s->B, E = (size_t)s->E, N = (size_t)s->N;
    return B * n_blocks(s) * s->L * 2 * N + B * E * N + B * E +
           (size_t)omp_get_max_threads() * thread_floats(s) + 64;
}

/* The adjoint of the recurrence, with dh_t = ∂loss/∂h_t (through y_t and h_{t+1}):
 *     dh_t = exp(Δ_{t+1}A)·dh_{t+1} + C_t·g_t,   g_t = ∂loss/∂y_t,
 *     dC_t += g_t·h_t,  dB_t += dh_t·Δ_t·u_t,  du_t += Δ_t·(B_t·dh_t) + D·g_t,
 *     dΔ_t += Σ_n dh_t[n]·(A[n]·exp(Δ_tA[n])·h_{t−1}[n] + B_t[n]·u_t),
 *     dA[n] += dh_t[n]·Δ_t·exp(Δ_tA[n])·h_{t−1}[n],  dD += g_t·u_t.
 * B_t and C_t are shared by the channels, so each work item sums its channels' share into a
 * partial buffer of its own; the partials (and dA, dD over the batch) are added in a fixed order
 * afterwards: the same bits for any thread count. */
void sscan_backward(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD,
                    const float *dy, const float *u, const float *delta, const float *A,
                    const float *Bm, const float *Cm, const float *Dskip, const float *states,
                    const SscanShape *s, Arena *scratch) {
    const int B = s->B, L = s->L, E = s->E, N = s->N, nc = sscan_chunks(s), nblk = n_blocks(s),
              C = s->chunk;
    const size_t mark = arena_mark(scratch);
    float *dbc = arena_floats(scratch, (size_t)B * nblk * L * 2 * N); /* (B, nblk, L, 2N) */
    float *dAp = arena_floats(scratch, (size_t)B * E * N);            /* (B, E, N) */
    float *dDp = arena_floats(scratch, (size_t)B * E);                /* (B, E) */
    const size_t per = thread_floats(s);
    float *work = arena_floats(scratch, (size_t)omp_get_max_threads() * per);
#pragma omp parallel for schedule(static)
    for (int it = 0; it < B * nblk; it++) {
        const int b = it / nblk, blk = it % nblk, e0 = blk * EB, ne = E - e0 < EB ? E - e0 : EB;
        float *hb = work + (size_t)omp_get_thread_num() * per; /* (C, EB, N) states after */
        float *ab = hb + (size_t)C * EB * N;                   /* (C, EB, N) exp(Δ_t·A) */
        float *part = dbc + (size_t)it * L * 2 * N;            /* (L, 2N): dB_t, dC_t */
        _Alignas(64) float dh[EB * SSCAN_MAX_N];
        memset(dh, 0, (size_t)ne * N * sizeof *dh);
        for (int k = nc - 1; k >= 0; k--) {
            const int tau0 = k * C, tau1 = tau0 + C < L ? tau0 + C : L;
            const float *h0 = states + (((size_t)b * nc + k) * E + e0) * N;
            for (int tau = tau0; tau < tau1; tau++) { /* the chunk's states, again */
                const size_t row = (size_t)b * L + step_t(s, tau), j2 = (size_t)(tau - tau0);
                const float *Bt = Bm + row * s->ldbc;
                const float *prev = j2 ? hb + (j2 - 1) * EB * N : h0;
                for (int j = 0; j < ne; j++) {
                    const int e = e0 + j;
                    const float d = delta[row * E + e], dx = d * u[row * E + e];
                    const float *Ae = A + (size_t)e * N, *pe = prev + (size_t)j * N;
                    float *he = hb + (j2 * EB + j) * N, *ae = ab + (j2 * EB + j) * N;
#pragma omp simd
                    for (int n = 0; n < N; n++) {
                        ae[n] = xb_expf(d * Ae[n]);
                        he[n] = ae[n] * pe[n] + dx * Bt[n];
                    }
                }
            }
            for (int tau = tau1 - 1; tau >= tau0; tau--) {
                const int t = step_t(s, tau);
                const size_t row = (size_t)b * L + t, j2 = (size_t)(tau - tau0);
                const float *Bt = Bm + row * s->ldbc, *Ct = Cm + row * s->ldbc;
                float *dBt = part + (size_t)t * 2 * N, *dCt = dBt + N;
                const float *prev = j2 ? hb + (j2 - 1) * EB * N : h0;
                for (int j = 0; j < ne; j++) {
                    const int e = e0 + j;
                    const float g = dy[row * E + e], d = delta[row * E + e], x = u[row * E + e],
                                dx = d * x;
                    const float *Ae = A + (size_t)e * N, *pe = prev + (size_t)j * N,
                                *he = hb + (j2 * EB + j) * N, *ae = ab + (j2 * EB + j) * N;
                    float *dhe = dh + (size_t)j * N, *dAe = dAp + ((size_t)b * E + e) * N;
                    float sdu = 0.0f, sdd = 0.0f;
#pragma omp simd reduction(+ : sdu, sdd)
                    for (int n = 0; n < N; n++) {
                        const float dhn = dhe[n] + Ct[n] * g;
                        dCt[n] += g * he[n];
                        dBt[n] += dhn * dx;
                        sdu += dhn * Bt[n];
                        const float t1 = dhn * ae[n] * pe[n];
                        sdd += t1 * Ae[n] + dhn * Bt[n] * x;
                        dAe[n] += t1 * d;
                        dhe[n] = ae[n] * dhn;
                    }
                    du[row * E + e] += d * sdu + Dskip[e] * g;
                    ddelta[row * E + e] += sdd;
                    dDp[(size_t)b * E + e] += g * x;
                }
            }
        }
    }
    /* the partials, in a fixed order */
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B * L; r++) {
        const int b = r / L, t = r % L;
        float *dBt = dBm + (size_t)r * s->ldbc, *dCt = dCm + (size_t)r * s->ldbc;
        for (int blk = 0; blk < nblk; blk++) {
            const float *p = dbc + ((size_t)(b * nblk + blk) * L + t) * 2 * N;
            for (int n = 0; n < N; n++) {
                dBt[n] += p[n];
                dCt[n] += p[N + n];
            }
        }
    }
    for (int b = 0; b < B; b++) {
        for (size_t i = 0; i < (size_t)E * N; i++) dA[i] += dAp[(size_t)b * E * N + i];
        for (int e = 0; e < E; e++) dD[e] += dDp[(size_t)b * E + e];
    }
    flops_add(sscan_flops(s, 1));
    arena_reset_to(scratch, mark);
}

uint64_t sscan_flops(const SscanShape *s, int backward) {
    const uint64_t BLE = (uint64_t)s->B * (uint64_t)s->L * (uint64_t)s->E, N = (uint64_t)s->N;
    return backward ? BLE * (22 * N + 6) : BLE * (6 * N + 2);
}
