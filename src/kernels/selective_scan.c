#include "kernels/selective_scan.h"

#include <omp.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "kernels/fastmath.h"

enum { EB = 16 }; /* channels per work item: the vector lanes of the inner loops */

int sscan_chunks(const SscanShape *s) { return (s->L + s->chunk - 1) / s->chunk; }

static int n_blocks(const SscanShape *s) { return (s->E + EB - 1) / EB; }

/* Position of scan step tau. */
static inline int step_t(const SscanShape *s, int tau) { return s->reverse ? s->L - 1 - tau : tau; }

/* A work item keeps its states as (N, EB): for each state index n the EB channels side by side,
 * so that the inner loops run over channels in vector lanes with no horizontal sums (lanes past
 * the last channel hold zeros and stay zero). */

/* at (N, EB) = the block's rows of A, transposed. */
static void load_a(float *at, const float *A, int e0, int ne, int N) {
    for (int n = 0; n < N; n++)
        for (int j = 0; j < EB; j++) at[n * EB + j] = j < ne ? A[(size_t)(e0 + j) * N + n] : 0.0f;
}

/* Asks for the rows of scan step tau + PF (Δ, u, B_t, C_t and, in the backward, dy) ahead of
 * time: a work item walks its channels' rows E floats apart, which leaves a 4-KiB page every few
 * steps, where the hardware prefetchers stop, and the loads then stalled the scans for a quarter
 * of their time. */
/* (Inlined by force: as a call it counts as free of side effects, and GCC drops the call.) */
enum { PF = 8 };
__attribute__((always_inline)) static inline void
prefetch_step(const SscanShape *s, int b, int tau, int e0, const float *delta, const float *u,
              const float *Bm, const float *dy, const float *du, const float *ddelta) {
    if (tau + PF < 0 || tau + PF >= s->L) return;
    const size_t row = (size_t)b * s->L + step_t(s, tau + PF), at = row * s->E + e0;
    __builtin_prefetch(delta + at);
    __builtin_prefetch(u + at);
    __builtin_prefetch(Bm + row * s->ldbc);
    if (dy) { /* the backward's: its reverse pass reads dy and adds into du and dΔ */
        __builtin_prefetch(dy + at);
        __builtin_prefetch(du + at, 1);
        __builtin_prefetch(ddelta + at, 1);
    }
}

/* The step's Δ, u and Δ·u of the block's channels (0 past the last). */
static void load_step(float *d, float *x, float *dx, const float *delta, const float *u, size_t at,
                      int ne) {
    for (int j = 0; j < EB; j++) {
        d[j] = j < ne ? delta[at + j] : 0.0f;
        x[j] = j < ne ? u[at + j] : 0.0f;
        dx[j] = d[j] * x[j];
    }
}

void sscan_forward(float *y, float *states, const float *u, const float *delta, const float *A,
                   const float *Bm, const float *Cm, const float *Dskip, const SscanShape *s) {
    const int B = s->B, L = s->L, E = s->E, N = s->N, nc = sscan_chunks(s), nblk = n_blocks(s);
    XB_ASSERT(N <= SSCAN_MAX_N && s->chunk > 0);
#pragma omp parallel for schedule(static)
    for (int it = 0; it < B * nblk; it++) {
        const int b = it / nblk, e0 = it % nblk * EB, ne = E - e0 < EB ? E - e0 : EB;
        _Alignas(64) float h[SSCAN_MAX_N * EB], at[SSCAN_MAX_N * EB];
        _Alignas(64) float d[EB], x[EB], dx[EB], acc[EB];
        memset(h, 0, (size_t)N * EB * sizeof *h);
        load_a(at, A, e0, ne, N);
        for (int tau = 0; tau < L; tau++) {
            if (tau % s->chunk == 0) { /* the state entering the chunk, as (E, N) */
                float *st = states + (((size_t)b * nc + tau / s->chunk) * E + e0) * N;
                for (int j = 0; j < ne; j++)
                    for (int n = 0; n < N; n++) st[(size_t)j * N + n] = h[n * EB + j];
            }
            const size_t row = (size_t)b * L + step_t(s, tau);
            const float *Bt = Bm + row * s->ldbc, *Ct = Cm + row * s->ldbc;
            prefetch_step(s, b, tau, e0, delta, u, Bm, NULL, NULL, NULL);
            load_step(d, x, dx, delta, u, row * E + e0, ne);
            for (int j = 0; j < EB; j++) acc[j] = j < ne ? Dskip[e0 + j] * x[j] : 0.0f;
            for (int n = 0; n < N; n++) {
                const float bn = Bt[n], cn = Ct[n];
                float *hn = h + n * EB;
                const float *an = at + n * EB;
#pragma omp simd aligned(hn, an : 64)
                for (int j = 0; j < EB; j++) {
                    hn[j] = xb_expf(d[j] * an[j]) * hn[j] + dx[j] * bn;
                    acc[j] += cn * hn[j];
                }
            }
            for (int j = 0; j < ne; j++) y[row * E + e0 + j] = acc[j];
        }
    }
    flops_add(sscan_flops(s, 0));
}

static size_t thread_floats(const SscanShape *s) {
    return (size_t)2 * s->chunk * s->N * EB; /* a multiple of 16: 64-byte aligned slices */
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
    const size_t mark = arena_mark(scratch), NE = (size_t)N * EB;
    float *dbc = arena_floats(scratch, (size_t)B * nblk * L * 2 * N); /* (B, nblk, L, 2N) */
    float *dAp = arena_floats(scratch, (size_t)B * E * N);            /* (B, E, N) */
    float *dDp = arena_floats(scratch, (size_t)B * E);                /* (B, E) */
    const size_t per = thread_floats(s);
    float *work = arena_floats(scratch, (size_t)omp_get_max_threads() * per);
#pragma omp parallel for schedule(static)
    for (int it = 0; it < B * nblk; it++) {
        const int b = it / nblk, e0 = it % nblk * EB, ne = E - e0 < EB ? E - e0 : EB;
        float *hb = work + (size_t)omp_get_thread_num() * per; /* (C, N, EB) states after */
        float *ab = hb + (size_t)C * NE;                       /* (C, N, EB) exp(Δ_t·A) */
        float *part = dbc + (size_t)it * L * 2 * N;            /* (L, 2N): dB_t, dC_t */
        _Alignas(64) float dh[SSCAN_MAX_N * EB], at[SSCAN_MAX_N * EB], dAl[SSCAN_MAX_N * EB],
            h0[SSCAN_MAX_N * EB];
        _Alignas(64) float d[EB], x[EB], dx[EB], g[EB], sdu[EB], sdd[EB];
        memset(dh, 0, NE * sizeof *dh);
        memset(dAl, 0, NE * sizeof *dAl);
        load_a(at, A, e0, ne, N);
        for (int k = nc - 1; k >= 0; k--) {
            const int tau0 = k * C, tau1 = tau0 + C < L ? tau0 + C : L;
            const float *st = states + (((size_t)b * nc + k) * E + e0) * N;
            for (int n = 0; n < N; n++)
                for (int j = 0; j < EB; j++) h0[n * EB + j] = j < ne ? st[(size_t)j * N + n] : 0.0f;
            for (int tau = tau0 - PF; tau < tau0; tau++) /* the chunk's first rows */
                prefetch_step(s, b, tau, e0, delta, u, Bm, dy, du, ddelta);
            for (int tau = tau0; tau < tau1; tau++) { /* the chunk's states, again */
                const size_t row = (size_t)b * L + step_t(s, tau), j2 = (size_t)(tau - tau0);
                const float *Bt = Bm + row * s->ldbc, *prev = j2 ? hb + (j2 - 1) * NE : h0;
                prefetch_step(s, b, tau, e0, delta, u, Bm, dy, du, ddelta);
                load_step(d, x, dx, delta, u, row * E + e0, ne);
                for (int n = 0; n < N; n++) {
                    const float bn = Bt[n], *an = at + n * EB, *pn = prev + n * EB;
                    float *hn = hb + j2 * NE + n * EB, *ea = ab + j2 * NE + n * EB;
#pragma omp simd aligned(an, pn, hn, ea : 64)
                    for (int j = 0; j < EB; j++) {
                        ea[j] = xb_expf(d[j] * an[j]);
                        hn[j] = ea[j] * pn[j] + dx[j] * bn;
                    }
                }
            }
            for (int tau = tau1 - 1; tau >= tau0; tau--) {
                const int t = step_t(s, tau);
                const size_t row = (size_t)b * L + t, j2 = (size_t)(tau - tau0);
                const float *Bt = Bm + row * s->ldbc, *Ct = Cm + row * s->ldbc,
                            *prev = j2 ? hb + (j2 - 1) * NE : h0;
                float *dBt = part + (size_t)t * 2 * N, *dCt = dBt + N;
                load_step(d, x, dx, delta, u, row * E + e0, ne);
                for (int j = 0; j < EB; j++) {
                    g[j] = j < ne ? dy[row * E + e0 + j] : 0.0f;
                    sdu[j] = sdd[j] = 0.0f;
                }
                for (int n = 0; n < N; n++) {
                    const float bn = Bt[n], cn = Ct[n], *an = at + n * EB, *pn = prev + n * EB,
                                *hn = hb + j2 * NE + n * EB, *ea = ab + j2 * NE + n * EB;
                    float *dhn = dh + n * EB, *dan = dAl + n * EB, dcs = 0.0f, dbs = 0.0f;
#pragma omp simd aligned(an, pn, hn, ea, dhn, dan : 64) reduction(+ : dcs, dbs)
                    for (int j = 0; j < EB; j++) {
                        const float dhv = dhn[j] + cn * g[j], t1 = dhv * ea[j] * pn[j];
                        dcs += g[j] * hn[j];
                        dbs += dhv * dx[j];
                        sdu[j] += dhv * bn;
                        sdd[j] += t1 * an[j] + dhv * bn * x[j];
                        dan[j] += t1 * d[j];
                        dhn[j] = ea[j] * dhv;
                    }
                    dCt[n] += dcs;
                    dBt[n] += dbs;
                }
                for (int j = 0; j < ne; j++) {
                    const size_t i = row * E + e0 + j;
                    du[i] += d[j] * sdu[j] + Dskip[e0 + j] * g[j];
                    ddelta[i] += sdd[j];
                    dDp[(size_t)b * E + e0 + j] += g[j] * x[j];
                }
            }
        }
        for (int j = 0; j < ne; j++)
            for (int n = 0; n < N; n++) dAp[((size_t)b * E + e0 + j) * N + n] = dAl[n * EB + j];
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
