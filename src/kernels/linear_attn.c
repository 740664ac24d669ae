#include "kernels/linear_attn.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/flops.h"
#include "core/profile.h"

/* Per (b, h): S = Φkᵀ V (M×Dh), z = Φkᵀ 1, num = Φq S, den = Φq z + ε (then clamped or guarded),
 * O = num / den. */
static void linattn_forward_impl(float *o, float *kv, float *z, float *den, const float *phq,
                                 const float *phk, const float *v, const LinAttnShape *s) {
    const int B = s->B, H = s->H, L = s->L, M = s->M, Dh = s->Dh;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            const float *pq = phq + bh * L * M, *pk = phk + bh * L * M;
            const float *vb = v + (size_t)b * s->bsv + (size_t)h * Dh;
            float *ob = o + (size_t)b * s->bso + (size_t)h * Dh;
            float *S = kv + bh * M * Dh, *zz = z + bh * M, *dn = den + bh * L;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, Dh, L, 1.0f, pk, M, vb, s->ldv,
                        0.0f, S, Dh);
            for (int m = 0; m < M; m++) zz[m] = 0.0f;
            for (int l = 0; l < L; l++) /* z = Φkᵀ 1, rows in order */
                for (int m = 0; m < M; m++) zz[m] += pk[(size_t)l * M + m];
            cblas_sgemv(CblasRowMajor, CblasNoTrans, L, M, 1.0f, pq, M, zz, 1, 0.0f, dn, 1);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, Dh, M, 1.0f, pq, M, S, Dh,
                        0.0f, ob, s->ldo);
            unsigned char *lw = s->low ? s->low + bh * L : NULL;
            for (int l = 0; l < L; l++) {
                dn[l] += s->eps;
                if (s->min_den > 0.0f || s->guard > 0.0f) {
                    /* the clamp (RFA) or the guard (Performer) acts on low rows */
                    int low = lw && s->frozen ? lw[l]
                                              : (s->min_den > 0.0f ? dn[l] < s->min_den
                                                                   : fabsf(dn[l]) <= s->guard);
                    if (lw) lw[l] = (unsigned char)low;
                    if (low && s->min_den > 0.0f) dn[l] = s->min_den;
                    if (low && s->guard > 0.0f) dn[l] += 2.0f * s->guard;
                }
                const float inv = dn[l] != 0.0f ? 1.0f / dn[l] : 0.0f;
                float *oi = ob + (size_t)l * s->ldo;
                for (int d = 0; d < Dh; d++) oi[d] *= inv;
            }
        }
    flops_add(linattn_flops(s, 0));
}

/* With dnum = dO/den and dden = −rowsum(dO∘O)/den: dΦq = dnum Sᵀ + dden zᵀ, dS = Φqᵀ dnum,
 * dz = Φqᵀ dden, dΦk = V dSᵀ + 1 dzᵀ, dV = Φk dS. */
static void linattn_backward_impl(float *dphq, float *dphk, float *dv, const float *dout,
                                  const float *o, const float *phq, const float *phk,
                                  const float *v, const float *kv, const float *z, const float *den,
                                  const LinAttnShape *s, Arena *scratch) {
    const int B = s->B, H = s->H, L = s->L, M = s->M, Dh = s->Dh;
    const size_t per = (size_t)L * Dh + (size_t)L + (size_t)M * Dh + (size_t)M;
    const size_t mark = arena_mark(scratch);
    float *work = arena_floats(scratch, linattn_scratch_floats(s));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            float *dnum = work + bh * per, *dden = dnum + (size_t)L * Dh, *dS = dden + L,
                  *dz = dS + (size_t)M * Dh;
            const float *pq = phq + bh * L * M, *pk = phk + bh * L * M;
            const float *S = kv + bh * M * Dh, *zz = z + bh * M, *dn = den + bh * L;
            const float *vb = v + (size_t)b * s->bsv + (size_t)h * Dh;
            const float *ob = o + (size_t)b * s->bso + (size_t)h * Dh;
            const float *gb = dout + (size_t)b * s->bso + (size_t)h * Dh;
            for (int l = 0; l < L; l++) {
                const float *gi = gb + (size_t)l * s->ldo, *oi = ob + (size_t)l * s->ldo;
                const float inv = dn[l] != 0.0f ? 1.0f / dn[l] : 0.0f;
                float dot = 0.0f;
                for (int d = 0; d < Dh; d++) {
                    dnum[(size_t)l * Dh + d] = gi[d] * inv;
                    dot += gi[d] * oi[d];
                }
                /* a clamped denominator is a constant; a guarded one is shifted by one */
                const int clamped =
                    s->min_den > 0.0f && (s->low ? s->low[bh * L + l] != 0 : dn[l] <= s->min_den);
                dden[l] = clamped ? 0.0f : -dot * inv;
            }
            float *gq = dphq + bh * L * M, *gk = dphk + bh * L * M;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, M, Dh, 1.0f, dnum, Dh, S, Dh,
                        1.0f, gq, M);
            cblas_sger(CblasRowMajor, L, M, 1.0f, dden, 1, zz, 1, gq, M);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, Dh, L, 1.0f, pq, M, dnum, Dh,
                        0.0f, dS, Dh);
            cblas_sgemv(CblasRowMajor, CblasTrans, L, M, 1.0f, pq, M, dden, 1, 0.0f, dz, 1);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, M, Dh, 1.0f, vb, s->ldv, dS, Dh,
                        1.0f, gk, M);
            for (int l = 0; l < L; l++)
                for (int m = 0; m < M; m++) gk[(size_t)l * M + m] += dz[m];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, Dh, M, 1.0f, pk, M, dS, Dh,
                        1.0f, dv + (size_t)b * s->bsv + (size_t)h * Dh, s->ldv);
        }
    arena_reset_to(scratch, mark);
    flops_add(linattn_flops(s, 1));
}

size_t linattn_scratch_floats(const LinAttnShape *s) {
    return ((size_t)s->L * s->Dh + (size_t)s->L + (size_t)s->M * s->Dh + (size_t)s->M) *
           (size_t)s->B * (size_t)s->H;
}

uint64_t linattn_flops(const LinAttnShape *s, int backward) {
    const uint64_t L = (uint64_t)s->L, M = (uint64_t)s->M, Dh = (uint64_t)s->Dh;
    /* forward: S and num (2·L·M·Dh each), den (2·L·M); backward: dΦq, dS, dΦk, dV (2·L·M·Dh
     * each), the rank-1 update dden zᵀ and dz = Φqᵀ dden (2·L·M each) */
    const uint64_t per = backward ? 8 * L * M * Dh + 4 * L * M : 4 * L * M * Dh + 2 * L * M;
    return per * (uint64_t)s->B * (uint64_t)s->H;
}

/* The entry points, timed by core/profile.h. */
void linattn_forward(float *o, float *kv, float *z, float *den, const float *phq, const float *phk,
                     const float *v, const LinAttnShape *s) {
    prof_open(PROF_LINEAR_ATTN, 0);
    linattn_forward_impl(o, kv, z, den, phq, phk, v, s);
    prof_close();
}

void linattn_backward(float *dphq, float *dphk, float *dv, const float *dout, const float *o,
                      const float *phq, const float *phk, const float *v, const float *kv,
                      const float *z, const float *den, const LinAttnShape *s, Arena *scratch) {
    prof_open(PROF_LINEAR_ATTN, 1);
    linattn_backward_impl(dphq, dphk, dv, dout, o, phq, phk, v, kv, z, den, s, scratch);
    prof_close();
}
