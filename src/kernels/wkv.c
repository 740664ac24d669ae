#include "kernels/wkv.h"

#include <omp.h>
#include <string.h>

#include "core/flops.h"
#include "kernels/fastmath.h"

enum { CB = 16 };      /* channels per work item */
#define EMPTY (-1e38f) /* the exponent of an empty sum (the CUDA kernel's MIN_VALUE) */
#define XMAX(a, b) ((a) > (b) ? (a) : (b))

static inline int is_real(const WkvShape *s, int b, int t) {
    return !s->mask || s->mask[(size_t)b * s->L + t];
}

static size_t thread_floats(const WkvShape *s, int backward) {
    return ((size_t)(backward ? 5 : 3) * s->L * CB + 15) / 16 * 16;
}

size_t wkv_scratch_floats(const WkvShape *s) {
    return (size_t)2 * s->B * s->C + (size_t)omp_get_max_threads() * thread_floats(s, 1) + 64;
}

/* The suffix states of channels c0 … c0+nc−1 of row b: at each t, the sums over real i > t,
 * sc = Σ e^{(i−t−1)w + k_i − so} v_i and sd (v = 1), and their derivatives in w (dsc, dsd, in the
 * same scale; NULL: not wanted). Arrays (L, CB). */
static void suffix_states(float *sc, float *sd, float *so, float *dsc, float *dsd, const float *w,
                          const float *k, const float *v, const WkvShape *s, int b, int c0, int nc,
                          float rs) {
    const int L = s->L, C = s->C;
    float c[CB] = {0}, d[CB] = {0}, o[CB], dc[CB] = {0}, dd[CB] = {0};
    for (int j = 0; j < CB; j++) o[j] = EMPTY;
    for (int t = L - 1; t >= 0; t--) {
        const size_t at = (size_t)t * CB;
        memcpy(sc + at, c, sizeof c);
        memcpy(sd + at, d, sizeof d);
        memcpy(so + at, o, sizeof o);
        if (dsc) {
            memcpy(dsc + at, dc, sizeof dc);
            memcpy(dsd + at, dd, sizeof dd);
        }
        if (!is_real(s, b, t)) continue;
        const size_t row = ((size_t)b * L + t) * C + c0;
#pragma omp simd
        for (int j = 0; j < nc; j++) {
            const float wc = w[c0 + j] * rs, kk = k[row + j];
            const float no = XMAX(wc + o[j], kk), e1 = xb_expf(wc + o[j] - no),
                        e2 = xb_expf(kk - no);
            dc[j] = e1 * (dc[j] + c[j]);
            dd[j] = e1 * (dd[j] + d[j]);
            c[j] = e1 * c[j] + e2 * v[row + j];
            d[j] = e1 * d[j] + e2;
            o[j] = no;
        }
    }
}

/* Per row and channel, the prefix state (a, b, o) holds Σ_{i<t} e^{(t−1−i)w + k_i − o} v_i and the
 * same with v = 1; the output at t puts the prefix, the suffix (Bi-WKV) and the bonus term on the
 * common exponent no = max(o, so, u + k_t); then the prefix takes token t:
 * no' = max(w + o, k_t), a = e^{w+o−no'}·a + e^{k_t−no'}·v_t. */
void wkv_forward(float *y, const float *w, const float *u, const float *k, const float *v,
                 const WkvShape *s, Arena *scratch) {
    const int B = s->B, L = s->L, C = s->C, nblk = (C + CB - 1) / CB, bi = s->bidirectional;
    const size_t mark = arena_mark(scratch), per = thread_floats(s, 0);
    float *work = arena_floats(scratch, (size_t)omp_get_max_threads() * per);
#pragma omp parallel for schedule(static)
    for (int it = 0; it < B * nblk; it++) {
        const int b = it / nblk, c0 = it % nblk * CB, nc = C - c0 < CB ? C - c0 : CB;
        const float rs = s->rscale ? s->rscale[b] : 1.0f;
        float *sc = work + (size_t)omp_get_thread_num() * per, *sd = sc + (size_t)L * CB,
              *so = sd + (size_t)L * CB;
        if (bi) suffix_states(sc, sd, so, NULL, NULL, w, k, v, s, b, c0, nc, rs);
        float a[CB] = {0}, bb[CB] = {0}, o[CB];
        for (int j = 0; j < CB; j++) o[j] = EMPTY;
        for (int t = 0; t < L; t++) {
            const size_t row = ((size_t)b * L + t) * C + c0, at = (size_t)t * CB;
            if (!is_real(s, b, t)) {
                memset(y + row, 0, (size_t)nc * sizeof *y);
                continue;
            }
#pragma omp simd
            for (int j = 0; j < nc; j++) {
                const float wc = w[c0 + j] * rs, ek = u[c0 + j] * rs + k[row + j], kk = k[row + j],
                            vv = v[row + j];
                float no = XMAX(o[j], ek);
                if (bi) no = XMAX(no, so[at + j]);
                const float e1 = xb_expf(o[j] - no), e3 = xb_expf(ek - no);
                float num = e1 * a[j] + e3 * vv, den = e1 * bb[j] + e3;
                if (bi) {
                    const float e2 = xb_expf(so[at + j] - no);
                    num += e2 * sc[at + j];
                    den += e2 * sd[at + j];
                }
                y[row + j] = num / den;
                const float n2 = XMAX(wc + o[j], kk), f1 = xb_expf(wc + o[j] - n2),
                            f2 = xb_expf(kk - n2);
                a[j] = f1 * a[j] + f2 * vv;
                bb[j] = f1 * bb[j] + f2;
                o[j] = n2;
            }
        }
    }
    flops_add(wkv_flops(s, 0));
    arena_reset_to(scratch, mark);
}

/* With den_t = D_t·e^{no_t} and G_t = gy_t / D_t (so gy_t / den_t = G_t·e^{−no_t}):
 *   direct:  dv_t += G_t·e^{u+k_t−no_t},  dk_t and du += G_t·e^{u+k_t−no_t}·(v_t − y_t);
 *   in w:    dw += Σ_t G_t·[e^{o_t−no_t}(a'_t − y_t·b'_t) + e^{so_t−no_t}(c'_t − y_t·d'_t)], the
 *            derivatives of the states following a'_{t+1} = e^w (a'_t + a_t);
 *   states:  with P_i = Σ_{t>i} e^{(t−1−i)w} gy_t/den_t and Q_i the same times y_t (a reverse
 *            scan, kept as P̃·e^π with π its running maximum exponent, π ≤ −k_i),
 *            dk_i += e^{k_i}(v_i·P_i − Q_i), dv_i += e^{k_i}·P_i; Bi-WKV adds the mirror image
 *            (sums over t < i, a forward scan). */
void wkv_backward(float *dw, float *du, float *dk, float *dv, const float *gy, const float *w,
                  const float *u, const float *k, const float *v, const WkvShape *s,
                  Arena *scratch) {
    const int B = s->B, L = s->L, C = s->C, nblk = (C + CB - 1) / CB, bi = s->bidirectional;
    const size_t mark = arena_mark(scratch), per = thread_floats(s, 1), LC = (size_t)L * CB;
    float *dwp = arena_floats(scratch, (size_t)B * C), *dup = arena_floats(scratch, (size_t)B * C);
    float *work = arena_floats(scratch, (size_t)omp_get_max_threads() * per);
#pragma omp parallel for schedule(static)
    for (int it = 0; it < B * nblk; it++) {
        const int b = it / nblk, c0 = it % nblk * CB, nc = C - c0 < CB ? C - c0 : CB;
        const float rs = s->rscale ? s->rscale[b] : 1.0f;
        /* suffix states, then (written over them as the forward scan passes) G_t, y_t, no_t */
        float *s0 = work + (size_t)omp_get_thread_num() * per, *s1 = s0 + LC, *s2 = s1 + LC,
              *s3 = s2 + LC, *s4 = s3 + LC;
        if (bi) suffix_states(s0, s1, s2, s3, s4, w, k, v, s, b, c0, nc, rs);
        float a[CB] = {0}, bb[CB] = {0}, o[CB], da[CB] = {0}, db[CB] = {0}, gw[CB] = {0},
              gu[CB] = {0};
        for (int j = 0; j < CB; j++) o[j] = EMPTY;
        for (int t = 0; t < L; t++) {
            if (!is_real(s, b, t)) continue;
            const size_t row = ((size_t)b * L + t) * C + c0, at = (size_t)t * CB;
#pragma omp simd
            for (int j = 0; j < nc; j++) {
                const float wc = w[c0 + j] * rs, ek = u[c0 + j] * rs + k[row + j], kk = k[row + j],
                            vv = v[row + j];
                float no = XMAX(o[j], ek), e2 = 0.0f;
                if (bi) no = XMAX(no, s2[at + j]);
                const float e1 = xb_expf(o[j] - no), e3 = xb_expf(ek - no);
                float num = e1 * a[j] + e3 * vv, den = e1 * bb[j] + e3;
                if (bi) {
                    e2 = xb_expf(s2[at + j] - no);
                    num += e2 * s0[at + j];
                    den += e2 * s1[at + j];
                }
                const float yy = num / den, G = gy[row + j] / den;
                float dwt = e1 * (da[j] - yy * db[j]);
                if (bi) dwt += e2 * (s3[at + j] - yy * s4[at + j]);
                gw[j] += G * dwt;
                gu[j] += G * e3 * (vv - yy);
                dk[row + j] += G * e3 * (vv - yy);
                dv[row + j] += G * e3;
                s0[at + j] = G, s1[at + j] = yy, s2[at + j] = no;
                const float n2 = XMAX(wc + o[j], kk), f1 = xb_expf(wc + o[j] - n2),
                            f2 = xb_expf(kk - n2);
                da[j] = f1 * (da[j] + a[j]);
                db[j] = f1 * (db[j] + bb[j]);
                a[j] = f1 * a[j] + f2 * vv;
                bb[j] = f1 * bb[j] + f2;
                o[j] = n2;
            }
        }
        for (int j = 0; j < nc; j++) {
            dwp[(size_t)b * C + c0 + j] = rs * gw[j];
            dup[(size_t)b * C + c0 + j] = rs * gu[j];
        }
        /* the adjoint scans: through the prefix states (t > i, backwards), then for Bi-WKV
         * through the suffix states (t < i, forwards) */
        for (int pass = 0; pass < (bi ? 2 : 1); pass++) {
            float P[CB] = {0}, Q[CB] = {0}, pi[CB];
            for (int j = 0; j < CB; j++) pi[j] = EMPTY;
            for (int q = 0; q < L; q++) {
                const int i = pass == 0 ? L - 1 - q : q;
                if (!is_real(s, b, i)) continue;
                const size_t row = ((size_t)b * L + i) * C + c0, at = (size_t)i * CB;
#pragma omp simd
                for (int j = 0; j < nc; j++) {
                    const float wc = w[c0 + j] * rs, ex = xb_expf(k[row + j] + pi[j]);
                    dk[row + j] += ex * (v[row + j] * P[j] - Q[j]);
                    dv[row + j] += ex * P[j];
                    const float np = XMAX(-s2[at + j], wc + pi[j]), h1 = xb_expf(wc + pi[j] - np),
                                h2 = xb_expf(-s2[at + j] - np);
                    P[j] = h1 * P[j] + h2 * s0[at + j];
                    Q[j] = h1 * Q[j] + h2 * s0[at + j] * s1[at + j];
                    pi[j] = np;
                }
            }
        }
    }
    for (int b = 0; b < B; b++) /* the rows' shares, in order */
        for (int c = 0; c < C; c++) {
            dw[c] += dwp[(size_t)b * C + c];
            du[c] += dup[(size_t)b * C + c];
        }
    flops_add(wkv_flops(s, 1));
    arena_reset_to(scratch, mark);
}

uint64_t wkv_flops(const WkvShape *s, int backward) {
    const uint64_t n = (uint64_t)s->B * (uint64_t)s->L * (uint64_t)s->C,
                   f = s->bidirectional ? 20 : 12;
    return n * (backward ? 3 * f : f);
}
