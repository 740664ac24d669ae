/* The long-convolution mechanisms after the survey: s4d and hyena, and the FFT convolution they
 * share (kernels/fftconv.h). Each against a reference computed another way in double precision:
 * the convolution against the direct sums, S4D against its state space run as a recurrence in both
 * directions, Hyena against its filters applied by direct convolution. */
#include <check.h>
#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "gradcheck.h"
#include "kernels/fftconv.h"
#include "mixer_harness.h"

/* ---- helpers ---- */

/* Offset of tensor "blocks.0.mixer.<what>" in t's buffers. */
static size_t off(const Inst *t, const char *what) {
    char name[160];
    snprintf(name, sizeof name, "blocks.0.mixer.%s", what);
    const int i = params_find(&t->pt, name);
    ck_assert_msg(i >= 0, "no tensor %s", name);
    return t->pt.info[i].offset;
}

/* y (N, OC) = x (N, IC)·Wᵀ + b (b may be NULL), W and b read from p. */
static void ref_linear(double *y, const double *x, const double *w, const double *b, int N, int IC,
                       int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < IC; i++) acc += x[(size_t)n * IC + i] * w[(size_t)o * IC + i];
            y[(size_t)n * OC + o] = acc;
        }
}

static double *to_double(const float *p, size_t n) {
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = p[i];
    return d;
}

/* Largest |got − ref| / (1 + |ref|). */
static double worst_rel(const float *got, const double *ref, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs(got[i] - ref[i]) / (1 + fabs(ref[i])));
    return w;
}

static int real_at(const Inst *t, int b, int l) {
    return !t->mask || t->mask[(size_t)b * t->L + l];
}

/* ---- the FFT convolution ---- */

/* Forward and backward of kernels/fftconv against the direct sums
 *   y[t] = Σ_{j≤t} kf[t−j]u[j] + Σ_{j>t} kb[j−t−1]u[j] + dskip·u[t]
 * and their derivatives, in double. */
static void check_fftconv(int two_sided, int B, int L, int C) {
    FftConv fc;
    fftconv_init(&fc, C, two_sided);
    Arena ma, ms, acts, scratch;
    arena_init_measure(&ma);
    arena_init_measure(&ms);
    fftconv_plan(&fc, &ma, &ms, B, L);
    ck_assert_int_eq(arena_init(&acts, ma.peak + 64), 0);
    ck_assert_int_eq(arena_init(&scratch, ms.peak + 64), 0);
    arena_init_measure(&ms);
    fftconv_plan(&fc, &acts, &ms, B, L);
    const size_t n = (size_t)B * L * C, nk = (size_t)C * L;
    float *u = malloc(n * sizeof *u), *dy = malloc(n * sizeof *dy), *y = malloc(n * sizeof *y);
    float *du = calloc(n, sizeof *du), *kf = malloc(nk * sizeof *kf), *kb = malloc(nk * 4);
    float *dkf = calloc(nk, 4), *dkb = calloc(nk, 4), *ds = malloc((size_t)C * 4),
          *dds = calloc((size_t)C, 4);
    gc_fill_normal(u, n, 1, 1.0f);
    gc_fill_normal(dy, n, 2, 1.0f);
    gc_fill_normal(kf, nk, 3, 1.0f);
    gc_fill_normal(kb, nk, 4, 1.0f);
    gc_fill_normal(ds, (size_t)C, 5, 1.0f);
    flops_reset();
    fftconv_set_kernel(&fc, kf, two_sided ? kb : NULL, (size_t)L, 1, &scratch);
    fftconv_forward(&fc, y, u, ds, B, &scratch);
    ck_assert_uint_eq(flops_counted(), fftconv_flops(B, C, L, 0));
    flops_reset();
    fftconv_backward(&fc, du, dkf, dkb, (size_t)L, 1, dds, dy, u, ds, B, &scratch);
    ck_assert_uint_eq(flops_counted(), fftconv_flops(B, C, L, 1));
    double *ry = calloc(n, sizeof *ry), *rdu = calloc(n, sizeof *rdu), *rdkf = calloc(nk, 8),
           *rdkb = calloc(nk, 8), *rds = calloc((size_t)C, 8);
#define AT(b, t, c) (((size_t)(b)*L + (t)) * C + (c))
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < L; t++) {
                const double g = dy[AT(b, t, c)];
                ry[AT(b, t, c)] += (double)ds[c] * u[AT(b, t, c)];
                rdu[AT(b, t, c)] += (double)ds[c] * g;
                rds[c] += g * u[AT(b, t, c)];
                for (int j = 0; j < L; j++) {
                    const double k = j <= t ? kf[(size_t)c * L + t - j]
                                            : (two_sided ? kb[(size_t)c * L + j - t - 1] : 0.0);
                    ry[AT(b, t, c)] += k * u[AT(b, j, c)];
                    rdu[AT(b, j, c)] += k * g;
                    if (j <= t)
                        rdkf[(size_t)c * L + t - j] += g * u[AT(b, j, c)];
                    else
                        rdkb[(size_t)c * L + j - t - 1] += g * u[AT(b, j, c)];
                }
            }
#undef AT
    /* float rounding of sums of L products of N(0, 1) numbers: a few ulps of their size √L */
    const double tol = 2e-6 * sqrt((double)L) + 1e-6;
    double w;
    ck_assert_msg((w = worst_rel(y, ry, n)) <= tol, "fftconv(two_sided=%d, L=%d) y: %g", two_sided,
                  L, w);
    ck_assert_msg((w = worst_rel(du, rdu, n)) <= tol, "du: %g", w);
    ck_assert_msg((w = worst_rel(dkf, rdkf, nk)) <= tol * sqrt((double)B), "dkf: %g", w);
    if (two_sided)
        ck_assert_msg((w = worst_rel(dkb, rdkb, nk)) <= tol * sqrt((double)B), "dkb: %g", w);
    ck_assert_msg((w = worst_rel(dds, rds, (size_t)C)) <= tol * sqrt((double)B), "dskip: %g", w);
    free(u), free(dy), free(y), free(du), free(kf), free(kb), free(dkf), free(dkb), free(ds),
        free(dds), free(ry), free(rdu), free(rdkf), free(rdkb), free(rds);
    fftconv_free(&fc);
    arena_destroy(&acts);
    arena_destroy(&scratch);
}

START_TEST(test_fftconv_equals_direct_convolution_forward_and_backward) {
    check_fftconv(0, 3, 37, 11); /* channel blocks of 8 and 3 */
    check_fftconv(1, 3, 37, 11);
    check_fftconv(1, 1, 1, 2);   /* one position: the backward kernel is never used */
    check_fftconv(1, 1, 600, 9); /* three key tiles of the attention kernel */
}
END_TEST

/* ---- S4D ---- */

static double gelu_ref(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }

/* y (B, L, D) of s4d with parameters p (double, t's layout), computed as the state space
 *   x_l = Ā x_{l−1} + B̄ u_l,  y_l = 2·Re(C x_l)   (Ā = exp(Δ·A), B̄ = (Ā − 1)/A)
 * run forward with C[0] and, for the bidirectional form, backward with C[1] over the states
 * x^b_t = Ā x^b_{t+1} + B̄ u_{t+1} (the reverse sum from j = t + 1, as S4's FFTConv), then
 * + D·u, exact GELU, the 1×1 convolution to 2D and the GLU. Padded inputs are zeros. */
static void s4d_reference(double *y, const Inst *t, const double *p, int N2, int nk) {
    const int B = t->B, L = t->L, D = t->D;
    const double *logdt = p + off(t, "kernel.log_dt"), *lar = p + off(t, "kernel.log_A_real"),
                 *aim = p + off(t, "kernel.A_imag"), *cc = p + off(t, "kernel.C"),
                 *dd = p + off(t, "D"), *w = p + off(t, "output_linear.0.weight"),
                 *bias = p + off(t, "output_linear.0.bias");
    double *pre = calloc((size_t)B * L * D, sizeof *pre), *u = malloc((size_t)L * sizeof *u);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < D; h++) {
            for (int l = 0; l < L; l++)
                u[l] = real_at(t, b, l) ? t->x[((size_t)b * L + l) * D + h] : 0.0;
            const double dt = exp(logdt[h]);
            for (int n = 0; n < N2; n++) {
                const double complex A = -exp(lar[h * N2 + n]) + I * aim[h * N2 + n],
                                     Ab = cexp(dt * A), Bb = (Ab - 1) / A;
                for (int k = 0; k < nk; k++) {
                    const size_t ic = (((size_t)k * D + h) * N2 + n) * 2;
                    const double complex C = cc[ic] + I * cc[ic + 1];
                    double complex x = 0;
                    for (int s = 0; s < L; s++) {
                        const int l = k == 0 ? s : L - 1 - s;
                        if (k == 0) x = Ab * x + Bb * u[l];
                        pre[((size_t)b * L + l) * D + h] += 2 * creal(C * x);
                        if (k == 1) x = Ab * x + Bb * u[l];
                    }
                }
            }
            for (int l = 0; l < L; l++) pre[((size_t)b * L + l) * D + h] += dd[h] * u[l];
        }
    const size_t BL = (size_t)B * L;
    for (size_t i = 0; i < BL * D; i++) pre[i] = gelu_ref(pre[i]);
    double *z = malloc(BL * 2 * D * sizeof *z);
    ref_linear(z, pre, w, bias, (int)BL, D, 2 * D);
    for (size_t r = 0; r < BL; r++)
        for (int d = 0; d < D; d++)
            y[r * D + d] = z[r * 2 * D + d] / (1 + exp(-z[r * 2 * D + D + d]));
    free(pre), free(u), free(z);
}

static void check_s4d_recurrence(const char *opts, int B, int L, int D, int pad, int N2, int nk) {
    const int pads[2] = {0, pad};
    Inst t;
    inst_init(&t, "s4d", opts, B, L, D, 2, B == 2 ? pads : NULL, 11);
    t.training = 0;
    inst_forward(&t);
    double *p = to_double(t.params, t.pt.total), *ry = malloc((size_t)B * L * D * sizeof *ry);
    s4d_reference(ry, &t, p, N2, nk);
    const double w = worst_rel(t.y, ry, (size_t)B * L * D);
    ck_assert_msg(w <= 1e-4, "s4d(%s) L=%d differs from its recurrence by %g", opts, L, w);
    free(p), free(ry);
    inst_free(&t);
}

START_TEST(test_s4d_fft_convolution_equals_the_recurrence_in_both_directions) {
    check_s4d_recurrence(NULL, 2, 50, 8, 13, 32, 2);
    check_s4d_recurrence("bidirectional=false,init=inv,d_state=16", 2, 40, 6, 9, 8, 1);
    check_s4d_recurrence("init=inv,dt_min=0.01,dt_max=0.5", 2, 33, 4, 5, 32, 2);
    check_s4d_recurrence(NULL, 1, 600, 8, 0, 32, 2); /* three key tiles */
}
END_TEST

/* The default state size (N = 64, modes up to A_imag = 31π) makes the loss oscillate in log Δ
 * faster than the generic check's step h = 1e-2 resolves, so its gradients are checked here:
 * against central differences (h = 1e-6) of the recurrence in double. */
START_TEST(test_s4d_default_gradients_match_double_differences_of_the_recurrence) {
    const int B = 2, L = 12, D = 4, pads[2] = {0, 3};
    Inst t;
    inst_init(&t, "s4d", NULL, B, L, D, 2, pads, 17);
    inst_forward(&t);
    inst_backward(&t);
    double *p = to_double(t.params, t.pt.total), *ry = malloc((size_t)B * L * D * sizeof *ry);
    const char *names[] = {
        "kernel.log_dt",         "kernel.log_A_real", "kernel.A_imag", "kernel.C", "D",
        "output_linear.0.weight"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char name[160];
        snprintf(name, sizeof name, "blocks.0.mixer.%s", names[k]);
        const ParamInfo *pi = &t.pt.info[params_find(&t.pt, name)];
        double worst = 0;
        for (size_t i = 0; i < pi->size; i++) {
            double f[2];
            const double h = 1e-6, keep = p[pi->offset + i];
            for (int sgn = 0; sgn < 2; sgn++) {
                p[pi->offset + i] = keep + (sgn ? -h : h);
                s4d_reference(ry, &t, p, 32, 2);
                f[sgn] = 0;
                for (size_t j = 0; j < (size_t)B * L * D; j++) f[sgn] += t.dy[j] * ry[j];
            }
            p[pi->offset + i] = keep;
            const double num = (f[0] - f[1]) / (2 * h), ana = t.grads[pi->offset + i];
            worst = fmax(worst, fabs(ana - num) / (1 + fabs(num)));
        }
        ck_assert_msg(worst <= 1e-3, "s4d %s: gradient differs by %g (relative)", names[k], worst);
    }
    free(p), free(ry);
    inst_free(&t);
}
END_TEST

START_TEST(test_s4d_initialisation_is_s4d_lin_or_inv_as_the_code) {
    for (int inv = 0; inv < 2; inv++) {
        Inst t;
        inst_init(&t, "s4d", inv ? "init=inv" : NULL, 1, 4, 16, 2, NULL, 3);
        const float *lar = t.params + off(&t, "kernel.log_A_real"),
                    *aim = t.params + off(&t, "kernel.A_imag"),
                    *logdt = t.params + off(&t, "kernel.log_dt");
        double lo = 1e9, hi = -1e9;
        for (int h = 0; h < 16; h++) {
            lo = fmin(lo, logdt[h]), hi = fmax(hi, logdt[h]);
            for (int n = 0; n < 32; n++) {
                /* s4d.py: log_A_real = log 0.5, A_imag = π·n; dplr(init='inv'):
                 * (N/π)·(N/(2n+1) − 1) with N = 64 */
                const double want = inv ? 64 / M_PI * (64.0 / (2 * n + 1) - 1) : M_PI * n;
                ck_assert_double_eq_tol(lar[h * 32 + n], log(0.5), 1e-6);
                ck_assert_double_eq_tol(aim[h * 32 + n], want, 1e-4 * (1 + want));
            }
        }
        ck_assert(lo >= log(1e-3) - 1e-6 && hi <= log(1e-1) + 1e-6 && hi - lo > 1.0);
        inst_free(&t);
    }
}
END_TEST

/* ---- Hyena ---- */

/* y (B, L, D) of hyena with parameters p (double), its filters applied by direct convolution:
 * projections, the causal short convolution, u = v ⊙ x1, the implicit filters from the code's
 * positional features over max_len n and its decay window, c[t] = Σ_{j≤t} h[t−j]u_j +
 * Σ_{j>t} h_rev[j−t−1]u_j + bias·u_t, the gate x0 and the output projection. */
static void hyena_reference(double *y, const Inst *t, const double *p, int n, int F, int emb, int K,
                            int nd, int modulate) {
    const int B = t->B, L = t->L, D = t->D;
    const size_t BL = (size_t)B * L;
    double *x = malloc(BL * D * sizeof *x), *pr = malloc(BL * 3 * D * sizeof *pr),
           *s = malloc(BL * 3 * D * sizeof *s), *u = malloc(BL * D * sizeof *u),
           *g = malloc(BL * D * sizeof *g);
    for (size_t i = 0; i < BL * D; i++) x[i] = t->x[i];
    ref_linear(pr, x, p + off(t, "in_proj.weight"), p + off(t, "in_proj.bias"), (int)BL, D, 3 * D);
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++)
            if (!real_at(t, b, l))
                for (int c = 0; c < 3 * D; c++) pr[((size_t)b * L + l) * 3 * D + c] = 0;
    const double *sw = p + off(t, "short_filter.weight"), *sb = p + off(t, "short_filter.bias");
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++)
            for (int c = 0; c < 3 * D; c++) {
                double acc = sb[c];
                for (int k = 0; k < K; k++) {
                    const int ls = l - (K - 1) + k;
                    if (ls >= 0) acc += sw[c * K + k] * pr[((size_t)b * L + ls) * 3 * D + c];
                }
                s[((size_t)b * L + l) * 3 * D + c] = acc;
            }
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++) {
                const double *sr = s + ((size_t)b * L + l) * 3 * D;
                u[((size_t)b * L + l) * D + d] = real_at(t, b, l) ? sr[2 * D + d] * sr[D + d] : 0;
            }
    /* the filters: PositionalEmbedding, the FFN with Sin, ExponentialModulation */
    double *h[2], *z = malloc((size_t)L * emb * sizeof *z), *a = malloc((size_t)L * F * 8),
                  *a2 = malloc((size_t)L * F * 8);
    const int bands = (emb - 1) / 2;
    for (int l = 0; l < L; l++) {
        z[(size_t)l * emb] = (double)l / (n - 1);
        for (int k = 0; k < bands; k++) {
            const double f = bands > 1 ? 1e-4 + k * (bands - 1 - 1e-4) / (bands - 1) : 1e-4,
                         om = 2 * M_PI * l / n;
            z[(size_t)l * emb + 1 + k] = cos(f * om);
            z[(size_t)l * emb + 1 + bands + k] = -sin(f * om);
        }
    }
    const double *freq = p + off(t, "filter_fn.implicit_filter.1.freq");
    for (int r = 0; r < nd; r++) {
        char w[96], bb[96];
        const char *net = r ? "implicit_filter_rev" : "implicit_filter";
        h[r] = malloc((size_t)L * D * sizeof *h[r]);
        const double *in = z;
        int nin = emb;
        for (int k = 0; k < 3; k++) {
            snprintf(w, sizeof w, "filter_fn.%s.%d.weight", net, 2 * k);
            snprintf(bb, sizeof bb, "filter_fn.%s.%d.bias", net, 2 * k);
            double *o = k % 2 ? a2 : a;
            ref_linear(o, in, p + off(t, w), p + off(t, bb), L, nin, F);
            for (size_t i = 0; i < (size_t)L * F; i++) o[i] = sin(freq[i % F] * o[i]);
            in = o, nin = F;
        }
        snprintf(w, sizeof w, "filter_fn.%s.6.weight", net);
        ref_linear(h[r], in, p + off(t, w), NULL, L, F, D);
        const double lo = log(1e-2) / 1.5, hi = log(1e-2) / 0.3;
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++)
                if (modulate)
                    h[r][(size_t)l * D + d] *=
                        exp(-(double)l / (n - 1) * fabs(lo + d * (hi - lo) / (D - 1)));
    }
    const double *fb = p + off(t, "filter_fn.bias");
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++) {
                const size_t i = ((size_t)b * L + l) * D + d;
                double acc = fb[d] * u[i];
                for (int j = 0; j < L; j++) {
                    const double uj = u[((size_t)b * L + j) * D + d];
                    if (j <= l)
                        acc += h[0][(size_t)(l - j) * D + d] * uj;
                    else if (nd == 2)
                        acc += h[1][(size_t)(j - l - 1) * D + d] * uj;
                }
                g[i] = acc * s[((size_t)b * L + l) * 3 * D + d];
            }
    ref_linear(y, g, p + off(t, "out_proj.weight"), p + off(t, "out_proj.bias"), (int)BL, D, D);
    for (int r = 0; r < nd; r++) free(h[r]);
    free(x), free(pr), free(s), free(u), free(g), free(z), free(a), free(a2);
}

static void check_hyena_direct(const char *opts, int B, int L, int max_len, int D, int pad, int F,
                               int emb, int K, int nd, int modulate) {
    const int pads[2] = {0, pad};
    Inst t;
    inst_init_at(&t, "hyena", opts, B, L, max_len, D, 2, B == 2 ? pads : NULL, 13);
    t.training = 0;
    inst_forward(&t);
    double *p = to_double(t.params, t.pt.total), *ry = malloc((size_t)B * L * D * sizeof *ry);
    hyena_reference(ry, &t, p, max_len, F, emb, K, nd, modulate);
    const double w = worst_rel(t.y, ry, (size_t)B * L * D);
    ck_assert_msg(w <= 1e-4, "hyena(%s) L=%d differs from the direct convolution by %g",
                  opts ? opts : "defaults", L, w);
    free(p), free(ry);
    inst_free(&t);
}

START_TEST(test_hyena_fft_convolution_equals_direct_convolution) {
    check_hyena_direct(NULL, 2, 40, 40, 8, 11, 64, 3, 3, 2, 1);
    check_hyena_direct("bidirectional=false,emb_dim=5,w=10,short_order=4", 2, 30, 45, 6, 7, 64, 5,
                       4, 1, 1);
    check_hyena_direct("emb_dim=33,filter_order=16,modulate=false", 2, 25, 25, 4, 4, 16, 33, 3, 2,
                       0);
    check_hyena_direct("filter_order=16", 1, 600, 700, 8, 0, 16, 3, 3, 2, 1); /* three tiles */
}
END_TEST

/* ---- both ---- */

/* Padding anywhere in a row (not only at its end) is zeroed before every sequence-mixing step:
 * changing the content of masked positions changes no real output. */
START_TEST(test_masked_positions_inside_a_row_cannot_reach_real_ones) {
    const char *names[] = {"s4d", "hyena"};
    for (int k = 0; k < 2; k++) {
        Inst t;
        inst_init(&t, names[k], NULL, 2, 24, 8, 2, NULL, 5);
        t.mask = malloc(48);
        for (int i = 0; i < 48; i++) t.mask[i] = !(i == 3 || i == 30 || i == 31 || i == 40);
        t.training = 0;
        inst_forward(&t);
        float *y0 = malloc(48 * 8 * sizeof *y0);
        memcpy(y0, t.y, 48 * 8 * sizeof *y0);
        for (int i = 0; i < 48; i++)
            if (!t.mask[i])
                for (int d = 0; d < 8; d++) t.x[i * 8 + d] += 5.0f;
        inst_forward(&t);
        for (int i = 0; i < 48; i++)
            if (t.mask[i])
                for (int d = 0; d < 8; d++)
                    ck_assert_msg(t.y[i * 8 + d] == y0[i * 8 + d],
                                  "%s: masked content reached position %d", names[k], i);
        free(y0);
        inst_free(&t);
    }
}
END_TEST

static Suite *mixers_next_lc_suite(void) {
    Suite *s = suite_create("mixers_next_lc");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_fftconv_equals_direct_convolution_forward_and_backward);
    tcase_add_test(tc, test_s4d_fft_convolution_equals_the_recurrence_in_both_directions);
    tcase_add_test(tc, test_s4d_default_gradients_match_double_differences_of_the_recurrence);
    tcase_add_test(tc, test_s4d_initialisation_is_s4d_lin_or_inv_as_the_code);
    tcase_add_test(tc, test_hyena_fft_convolution_equals_direct_convolution);
    tcase_add_test(tc, test_masked_positions_inside_a_row_cannot_reach_real_ones);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(mixers_next_lc_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
