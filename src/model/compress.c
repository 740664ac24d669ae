#include "model/compress.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/attention.h"
#include "kernels/linear.h"

void compress_create(Compress *cp, ParamTable *pt, const char *prefix, int B, int L, int D, int H,
                     int S, int M, int c, int N) {
    XB_ASSERT(c > 0 && S % c == 0 && M % c == 0 && L % S == 0);
    memset(cp, 0, sizeof *cp);
    cp->B = B, cp->L = L, cp->D = D, cp->H = H, cp->S = S, cp->M = M, cp->c = c, cp->N = N;
    cp->p_w = params_add2f(pt, D, c * D, INIT_XAVIER_UNIFORM, 0, 1, "%s.compress.weight", prefix);
    cp->p_b = params_add1f(pt, D, INIT_ZEROS, 0, 0, "%s.compress.bias", prefix);
}

/* The two attentions of the loss: the segments' states (B·nS batches of S queries) over the
 * evicted states (S keys, `in` read from row 0 = position −M) or over their compressions (S/c
 * keys, `slots` read from row 0 = group −M/c). */
static AttnShape loss_shape(const Compress *cp, int compressed) {
    const int nS = cp->L / cp->S, Lk = compressed ? cp->S / cp->c : cp->S, D = cp->D;
    return attn_shape(cp->B * nS, cp->H, cp->S, Lk, D / cp->H, D, D, D, D);
}

void compress_plan(Compress *cp, Arena *acts, Arena *scratch) {
    const size_t BL = (size_t)cp->B * cp->L, D = (size_t)cp->D, G = (size_t)cp->L / cp->c;
    const size_t nS = (size_t)cp->L / cp->S, rows = (size_t)cp->M / cp->c + cp->B * G;
    cp->in = arena_floats(acts, ((size_t)cp->M + BL) * D);
    cp->slots = arena_floats(acts, rows * D);
    cp->smask = arena_alloc(acts, cp->B * G);
    cp->okeys = arena_alloc(acts, BL);
    cp->nkeys = arena_alloc(acts, cp->B * nS * (cp->S / cp->c));
    cp->newo = arena_floats(acts, BL * D);
    cp->lse = arena_floats(acts, BL * cp->H);
    cp->dout = arena_floats(acts, BL * D);
    const int nt = omp_get_max_threads();
    const AttnShape so = loss_shape(cp, 0), sn = loss_shape(cp, 1);
    const size_t mark = arena_mark(scratch);
    /* forward: the attention over the evicted states and its log-sum-exp, per segment the sums */
    arena_floats(scratch, BL * D);
    arena_floats(scratch, BL * cp->H);
    arena_alloc(scratch, cp->B * nS * (sizeof(double) + sizeof(int)) + 64);
    arena_alloc(scratch, attn_scratch_floats(&so, nt) * sizeof(float));
    arena_reset_to(scratch, mark);
    /* backward: d(queries) (discarded), d(keys), d(values) */
    arena_floats(scratch, BL * D);
    arena_floats(scratch, rows * D);
    arena_floats(scratch, rows * D);
    arena_alloc(scratch, attn_scratch_floats(&sn, nt) * sizeof(float));
    arena_reset_to(scratch, mark);
}

void compress_window(const Compress *cp, float *rows, unsigned char *real, int b, int k) {
    const int G = cp->L / cp->c, g0 = (k * cp->S - cp->M) / cp->c - cp->N, D = cp->D;
    for (int i = 0; i < cp->N; i++) { /* group g covers positions [g·c, g·c + c) */
        const int g = g0 + i;
        real[i] = (unsigned char)(g >= 0 && cp->smask[(size_t)b * G + g]);
        if (g >= 0)
            memcpy(rows + (size_t)i * D,
                   cp->slots + ((size_t)cp->M / cp->c + (size_t)b * G + g) * D,
                   (size_t)D * sizeof(float));
        else
            memset(rows + (size_t)i * D, 0, (size_t)D * sizeof(float));
    }
}

double compress_forward(Compress *cp, const float *x, const unsigned char *mask, int frozen,
                        const float *params, const ParamTable *pt, Arena *scratch) {
    const int B = cp->B, L = cp->L, D = cp->D, H = cp->H, S = cp->S, M = cp->M, c = cp->c;
    const int nS = L / S, G = L / c, Sc = S / c;
    float *const in = cp->in + (size_t)M * D;
    if (!frozen) {
        memset(cp->in, 0, (size_t)M * D * sizeof(float));
#pragma omp parallel for schedule(static)
        for (int i = 0; i < B * L; i++) {
            if (!mask || mask[i])
                memcpy(in + (size_t)i * D, x + (size_t)i * D, (size_t)D * sizeof(float));
            else
                memset(in + (size_t)i * D, 0, (size_t)D * sizeof(float));
        }
    }
    /* f_c: the groups of c consecutive states are the rows of a (B·G, c·D) matrix */
    memset(cp->slots, 0, (size_t)M / c * D * sizeof(float));
    linear_forward(cp->slots + (size_t)M / c * D, in, params + pt->info[cp->p_w].offset,
                   params + pt->info[cp->p_b].offset, B * G, c * D, D);
    for (int bg = 0; bg < B * G; bg++) {
        int any = 0;
        for (int r = 0; r < c; r++) any |= !mask || mask[(size_t)bg * c + r];
        cp->smask[bg] = (unsigned char)any;
    }
    for (int bk = 0; bk < B * nS; bk++) {
        const int b = bk / nS, k = bk % nS, p0 = k * S - M, g0 = p0 / c; /* c divides p0 */
        for (int j = 0; j < S; j++)
            cp->okeys[(size_t)bk * S + j] = p0 + j >= 0 && (!mask || mask[(size_t)b * L + p0 + j]);
        for (int j = 0; j < Sc; j++)
            cp->nkeys[(size_t)bk * Sc + j] = g0 + j >= 0 && cp->smask[(size_t)b * G + g0 + j];
    }

    const size_t mark = arena_mark(scratch);
    float *oldo = arena_floats(scratch, (size_t)B * L * D);
    float *olse = arena_floats(scratch, (size_t)B * L * H);
    double *sum = arena_alloc(scratch, (size_t)B * nS * sizeof(double));
    int *rows = arena_alloc(scratch, (size_t)B * nS * sizeof(int));
    const AttnShape so = loss_shape(cp, 0), sn = loss_shape(cp, 1);
    attn_forward(oldo, olse, in, cp->in, cp->in, cp->okeys, &so, scratch);
    attn_forward(cp->newo, cp->lse, in, cp->slots, cp->slots, cp->nkeys, &sn, scratch);
#pragma omp parallel for schedule(static)
    for (int bk = 0; bk < B * nS; bk++) {
        const int b = bk / nS, k = bk % nS;
        int keys = 0;
        for (int j = 0; j < S; j++) keys += cp->okeys[(size_t)bk * S + j];
        double s = 0.0;
        int n = 0;
        for (int i = 0; i < S; i++) {
            const size_t row = (size_t)bk * S + i;
            const int real = keys > 0 && (!mask || mask[(size_t)b * L + (size_t)k * S + i]);
            n += real;
            for (int d = 0; d < D; d++) {
                const float diff = real ? oldo[row * D + d] - cp->newo[row * D + d] : 0.0f;
                s += (double)diff * diff;
                cp->dout[row * D + d] = diff; /* scaled below */
            }
        }
        sum[bk] = s, rows[bk] = n;
    }
    double loss = 0.0;
    long long n = 0;
    for (int bk = 0; bk < B * nS; bk++) loss += sum[bk], n += rows[bk];
    const float g = n ? -2.0f / (float)n : 0.0f;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < (size_t)B * L * D; i++) cp->dout[i] *= g;
    arena_reset_to(scratch, mark);
    return n ? loss / (double)n : 0.0;
}

void compress_backward(Compress *cp, const float *params, float *grads, const ParamTable *pt,
                       Arena *scratch) {
    const int B = cp->B, L = cp->L, D = cp->D, c = cp->c, G = L / c;
    const size_t rows = (size_t)cp->M / c + (size_t)B * G;
    const size_t mark = arena_mark(scratch);
    float *dq = arena_floats(scratch, (size_t)B * L * D);
    float *dk = arena_floats(scratch, rows * D);
    float *dv = arena_floats(scratch, rows * D);
    memset(dq, 0, (size_t)B * L * D * sizeof(float));
    memset(dk, 0, rows * D * sizeof(float));
    memset(dv, 0, rows * D * sizeof(float));
    const AttnShape sn = loss_shape(cp, 1);
    const float *in = cp->in + (size_t)cp->M * D;
    attn_backward(dq, dk, dv, cp->dout, in, cp->slots, cp->slots, cp->newo, cp->lse, cp->nkeys, &sn,
                  scratch);
    for (size_t i = 0; i < rows * D; i++) dk[i] += dv[i];
    const size_t skip = (size_t)cp->M / c * D; /* the zero rows before group 0 are no slots */
    linear_backward(NULL, grads + pt->info[cp->p_w].offset, grads + pt->info[cp->p_b].offset,
                    dk + skip, in, params + pt->info[cp->p_w].offset, B * G, c * D, D);
    arena_reset_to(scratch, mark);
}

uint64_t compress_flops(const Compress *cp, int backward) {
    const AttnShape so = loss_shape(cp, 0), sn = loss_shape(cp, 1);
    const uint64_t conv = 2ull * (uint64_t)cp->B * (uint64_t)cp->L * (uint64_t)cp->D * cp->D;
    return conv + (backward ? attn_flops(&sn, 1) : attn_flops(&so, 0) + attn_flops(&sn, 0));
}
