#include "kernels/attention.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "kernels/fastmath.h"

/* Tile sizes: a BQ×BK score tile (64 KiB) and the BQ×Dh accumulator stay in L2. */
enum { BQ = 128, BK = 256 };

AttnShape attn_shape(int B, int H, int Lq, int Lk, int Dh, int ldq, int ldk, int ldv, int ldo) {
    AttnShape s;
    memset(&s, 0, sizeof s);
    s.B = B;
    s.H = H;
    s.Lq = Lq;
    s.Lk = Lk;
    s.Dh = Dh;
    s.ldq = ldq;
    s.ldk = ldk;
    s.ldv = ldv;
    s.ldo = ldo;
    s.bsq = (size_t)Lq * (size_t)ldq;
    s.bsk = (size_t)Lk * (size_t)ldk;
    s.bsv = (size_t)Lk * (size_t)ldv;
    s.bso = (size_t)Lq * (size_t)ldo;
    s.scale = 1.0f / sqrtf((float)Dh);
    return s;
}

/* Last key index (exclusive) that query row i may see. */
static inline int key_limit(const AttnShape *s, int i) {
    if (!s->causal) return s->Lk;
    int lim = i + 1 + (s->Lk - s->Lq);
    return lim < 0 ? 0 : (lim > s->Lk ? s->Lk : lim);
}

/* Per-thread scratch, in floats. */
static size_t fwd_thread_floats(const AttnShape *s) {
    return (size_t)BQ * BK + (size_t)BQ * (size_t)s->Dh + 3 * (size_t)BQ + BK + 64;
}
static size_t bwd_thread_floats(const AttnShape *s) {
    return 2 * (size_t)BQ * BK + 2 * (size_t)BK * (size_t)s->Dh + (size_t)s->Lq + BK + 64;
}

size_t attn_scratch_floats(const AttnShape *s, int nthreads) {
    size_t f = fwd_thread_floats(s), b = bwd_thread_floats(s);
    return (size_t)nthreads * (f > b ? f : b) + 64;
}

/* Additive key bias for keys [j0, j0+bk): 0 visible, -inf padding (the causal limit is applied per
 * row). Tiles of padding are computed like any other, so the work does not depend on the data. */
static void key_bias(float *kb, const unsigned char *km, int j0, int bk) {
    for (int j = 0; j < bk; j++) kb[j] = (km && !km[j0 + j]) ? -INFINITY : 0.0f;
}

static inline float *align_floats(float *p) {
    uintptr_t u = (uintptr_t)p;
    u = (u + 63) & ~(uintptr_t)63;
    return (float *)u;
}

void attn_forward(float *o, float *lse, const float *q, const float *k, const float *v,
                  const unsigned char *kmask, const AttnShape *s, Arena *scratch) {
    const int B = s->B, H = s->H, Lq = s->Lq, Lk = s->Lk, Dh = s->Dh;
    const int nqt = (Lq + BQ - 1) / BQ;
    const int nthreads = omp_get_max_threads();
    const size_t per = fwd_thread_floats(s);
    size_t mark = arena_mark(scratch);
    float *work = arena_alloc(scratch, ((size_t)nthreads * per + 64) * sizeof(float));
    flops_add(attn_flops(s, 0));

#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int qt = 0; qt < nqt; qt++) {
                float *w = align_floats(work + (size_t)omp_get_thread_num() * per);
                float *S = w;                              /* (BQ, BK) */
                float *acc = S + (size_t)BQ * BK;          /* (BQ, Dh) */
                float *m = acc + (size_t)BQ * Dh;          /* (BQ) running max */
                float *l = m + BQ;                         /* (BQ) running sum */
                float *kb = l + BQ;                        /* (BK) key bias */
                const int i0 = qt * BQ, bq = XB_MIN(BQ, Lq - i0);
                const float *qb = q + (size_t)b * s->bsq + (size_t)i0 * s->ldq + (size_t)h * Dh;
                const float *kbase = k + (size_t)b * s->bsk + (size_t)h * Dh;
                const float *vbase = v + (size_t)b * s->bsv + (size_t)h * Dh;
                const unsigned char *km = kmask ? kmask + (size_t)b * Lk : NULL;
                const int jmax = key_limit(s, i0 + bq - 1);
                for (int i = 0; i < bq; i++) m[i] = -INFINITY, l[i] = 0.0f;
                memset(acc, 0, (size_t)bq * Dh * sizeof *acc);

                for (int j0 = 0; j0 < jmax; j0 += BK) {
                    const int bk = XB_MIN(BK, jmax - j0);
                    key_bias(kb, km, j0, bk);
                    /* S = scale · Q_tile · K_tileᵀ */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, bk, Dh, s->scale, qb,
                                s->ldq, kbase + (size_t)j0 * s->ldk, s->ldk, 0.0f, S, bk);
                    for (int i = 0; i < bq; i++) {
                        float *Si = S + (size_t)i * bk;
                        const int lim = key_limit(s, i0 + i) - j0; /* keys >= lim hidden */
                        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
                        for (int j = 0; j < bk; j++) {
                            float x = j < lim ? Si[j] + kb[j] : -INFINITY;
                            Si[j] = x;
                            mx = x > mx ? x : mx;
                        }
                        const float mnew = mx > m[i] ? mx : m[i];
                        const float mref = mnew == -INFINITY ? 0.0f : mnew;
                        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                        for (int j = 0; j < bk; j++) {
                            float e = xb_expf(Si[j] - mref);
                            Si[j] = e;
                            sum += e;
                        }
                        const float alpha = xb_expf(m[i] - mref);
                        l[i] = l[i] * alpha + sum;
                        m[i] = mnew;
                        float *ai = acc + (size_t)i * Dh;
                        for (int d = 0; d < Dh; d++) ai[d] *= alpha;
                    }
                    /* acc += P · V_tile */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, Dh, bk, 1.0f, S, bk,
                                vbase + (size_t)j0 * s->ldv, s->ldv, 1.0f, acc, Dh);
                }
                float *ob = o + (size_t)b * s->bso + (size_t)i0 * s->ldo + (size_t)h * Dh;
                float *lb = lse + ((size_t)b * H + h) * Lq + i0;
                for (int i = 0; i < bq; i++) {
                    const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
                    float *oi = ob + (size_t)i * s->ldo;
                    const float *ai = acc + (size_t)i * Dh;
                    for (int d = 0; d < Dh; d++) oi[d] = ai[d] * inv;
                    lb[i] = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
                }
            }
    arena_reset_to(scratch, mark);
}

void attn_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                   const float *k, const float *v, const float *o, const float *lse,
                   const unsigned char *kmask, const AttnShape *s, Arena *scratch) {
    const int B = s->B, H = s->H, Lq = s->Lq, Lk = s->Lk, Dh = s->Dh;
    const int nthreads = omp_get_max_threads();
    const size_t per = bwd_thread_floats(s);
    size_t mark = arena_mark(scratch);
    float *work = arena_alloc(scratch, ((size_t)nthreads * per + 64) * sizeof(float));
    flops_add(attn_flops(s, 1));

    /* One (b, h) per task: dQ of a head accumulates over all key tiles without races, and the
     * order of every sum is fixed, so the bits do not depend on the thread count. */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            float *w = align_floats(work + (size_t)omp_get_thread_num() * per);
            float *P = w;                             /* (BQ, BK) */
            float *dP = P + (size_t)BQ * BK;          /* (BQ, BK) */
            float *dKt = dP + (size_t)BQ * BK;        /* (BK, Dh) */
            float *dVt = dKt + (size_t)BK * Dh;       /* (BK, Dh) */
            float *Drow = dVt + (size_t)BK * Dh;      /* (Lq) rowsum(dO∘O) */
            float *kb = Drow + Lq;                    /* (BK) */
            const size_t qoff = (size_t)b * s->bsq + (size_t)h * Dh;
            const size_t ooff = (size_t)b * s->bso + (size_t)h * Dh;
            const size_t koff = (size_t)b * s->bsk + (size_t)h * Dh;
            const size_t voff = (size_t)b * s->bsv + (size_t)h * Dh;
            const float *lb = lse + ((size_t)b * H + h) * Lq;
            const unsigned char *km = kmask ? kmask + (size_t)b * Lk : NULL;
            for (int i = 0; i < Lq; i++) {
                const float *doi = dout + ooff + (size_t)i * s->ldo;
                const float *oi = o + ooff + (size_t)i * s->ldo;
                float acc = 0.0f;
                for (int d = 0; d < Dh; d++) acc += doi[d] * oi[d];
                Drow[i] = acc;
            }
            for (int j0 = 0; j0 < Lk; j0 += BK) {
                const int bk = XB_MIN(BK, Lk - j0);
                key_bias(kb, km, j0, bk);
                memset(dKt, 0, (size_t)bk * Dh * sizeof *dKt);
                memset(dVt, 0, (size_t)bk * Dh * sizeof *dVt);
                const float *kt = k + koff + (size_t)j0 * s->ldk;
                const float *vt = v + voff + (size_t)j0 * s->ldv;
                int any = 0;
                for (int i0 = 0; i0 < Lq; i0 += BQ) {
                    const int bq = XB_MIN(BQ, Lq - i0);
                    if (key_limit(s, i0 + bq - 1) <= j0) continue; /* tile entirely hidden */
                    any = 1;
                    const float *qt = q + qoff + (size_t)i0 * s->ldq;
                    const float *dot = dout + ooff + (size_t)i0 * s->ldo;
                    /* P = exp(scale·Q Kᵀ + bias − lse) */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, bk, Dh, s->scale, qt,
                                s->ldq, kt, s->ldk, 0.0f, P, bk);
                    for (int i = 0; i < bq; i++) {
                        float *Pi = P + (size_t)i * bk;
                        const float li = lb[i0 + i];
                        const int lim = key_limit(s, i0 + i) - j0;
                        const float ref = li == -INFINITY ? INFINITY : li;
#pragma omp simd
                        for (int j = 0; j < bk; j++) {
                            float x = Pi[j] + kb[j] - ref;
                            Pi[j] = j < lim ? xb_expf(x) : 0.0f;
                        }
                    }
                    /* dV_tile += Pᵀ dO */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, bk, Dh, bq, 1.0f, P, bk,
                                dot, s->ldo, 1.0f, dVt, Dh);
                    /* dP = dO V_tileᵀ */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, bk, Dh, 1.0f, dot,
                                s->ldo, vt, s->ldv, 0.0f, dP, bk);
                    /* dS = P ∘ (dP − D) (stored in dP) */
                    for (int i = 0; i < bq; i++) {
                        float *dPi = dP + (size_t)i * bk;
                        const float *Pi = P + (size_t)i * bk;
                        const float Di = Drow[i0 + i];
#pragma omp simd
                        for (int j = 0; j < bk; j++) dPi[j] = Pi[j] * (dPi[j] - Di);
                    }
                    /* dQ += scale · dS K_tile ; dK_tile += scale · dSᵀ Q */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, Dh, bk, s->scale,
                                dP, bk, kt, s->ldk, 1.0f, dq + qoff + (size_t)i0 * s->ldq, s->ldq);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, bk, Dh, bq, s->scale, dP,
                                bk, qt, s->ldq, 1.0f, dKt, Dh);
                }
                if (!any) continue;
                for (int j = 0; j < bk; j++) {
                    float *dkj = dk + koff + (size_t)(j0 + j) * s->ldk;
                    float *dvj = dv + voff + (size_t)(j0 + j) * s->ldv;
                    const float *a = dKt + (size_t)j * Dh, *c = dVt + (size_t)j * Dh;
                    for (int d = 0; d < Dh; d++) dkj[d] += a[d], dvj[d] += c[d];
                }
            }
        }
    arena_reset_to(scratch, mark);
}

/* Mirrors the tile loops above: fully hidden causal tiles are skipped in both passes; padding keys
 * are computed (the count does not depend on the data). */
uint64_t attn_flops(const AttnShape *s, int backward) {
    uint64_t per_bh = 0;
    for (int i0 = 0; i0 < s->Lq; i0 += BQ) {
        const int bq = XB_MIN(BQ, s->Lq - i0);
        const int jmax = backward ? s->Lk : key_limit(s, i0 + bq - 1);
        for (int j0 = 0; j0 < jmax; j0 += BK) {
            const int bk = XB_MIN(BK, jmax - j0);
            if (backward && key_limit(s, i0 + bq - 1) <= j0) continue;
            per_bh += (uint64_t)(backward ? 10 : 4) * (uint64_t)bq * (uint64_t)bk * (uint64_t)s->Dh;
        }
    }
    return per_bh * (uint64_t)s->B * (uint64_t)s->H;
}

void attn_forward_naive(float *o, float *lse, const float *q, const float *k, const float *v,
                        const unsigned char *kmask, const AttnShape *s) {
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++)
            for (int i = 0; i < s->Lq; i++) {
                const float *qi = q + (size_t)b * s->bsq + (size_t)i * s->ldq + (size_t)h * s->Dh;
                double mx = -INFINITY;
                double sc[s->Lk];
                for (int j = 0; j < s->Lk; j++) {
                    const float *kj = k + (size_t)b * s->bsk + (size_t)j * s->ldk + (size_t)h * s->Dh;
                    double acc = 0.0;
                    for (int d = 0; d < s->Dh; d++) acc += (double)qi[d] * kj[d];
                    int vis = (!kmask || kmask[(size_t)b * s->Lk + j]) && j < key_limit(s, i);
                    sc[j] = vis ? acc * s->scale : -INFINITY;
                    if (sc[j] > mx) mx = sc[j];
                }
                double sum = 0.0;
                for (int j = 0; j < s->Lk; j++) sum += sc[j] == -INFINITY ? 0.0 : exp(sc[j] - mx);
                float *oi = o + (size_t)b * s->bso + (size_t)i * s->ldo + (size_t)h * s->Dh;
                for (int d = 0; d < s->Dh; d++) {
                    double acc = 0.0;
                    for (int j = 0; j < s->Lk; j++) {
                        if (sc[j] == -INFINITY) continue;
                        const float *vj =
                            v + (size_t)b * s->bsv + (size_t)j * s->ldv + (size_t)h * s->Dh;
                        acc += exp(sc[j] - mx) / sum * vj[d];
                    }
                    oi[d] = sum > 0.0 ? (float)acc : 0.0f;
                }
                lse[((size_t)b * s->H + h) * s->Lq + i] =
                    sum > 0.0 ? (float)(mx + log(sum)) : -INFINITY;
            }
}
