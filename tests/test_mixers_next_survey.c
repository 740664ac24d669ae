/* The survey's mechanisms added after its first implementation round: cosformer, long_short,
 * clustered. Each is recomputed naively in double precision from its own parameters (the L×L
 * matrices materialised), checked in its degenerate settings against `full`, and checked for what
 * padding may and may not change. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "gradcheck.h"
#include "mixer_harness.h"

/* ---- shared helpers ---- */

/* Index of the tensor whose name ends with suffix, or -1. */
static int tensor(const Inst *t, const char *suffix) {
    const size_t n = strlen(suffix);
    for (int i = 0; i < t->pt.n; i++) {
        const size_t len = strlen(t->pt.info[i].name);
        if (len >= n && !strcmp(t->pt.info[i].name + len - n, suffix)) return i;
    }
    return -1;
}

static const float *tensor_data(const Inst *t, const char *suffix) {
    const int i = tensor(t, suffix);
    return i < 0 ? NULL : t->params + t->pt.info[i].offset;
}

/* out (n, dout) = in (n, din)·Wᵀ + b in double; b may be NULL. */
static void ref_linear(double *out, const double *in, const float *W, const float *bias, int n,
                       int din, int dout) {
    for (int r = 0; r < n; r++)
        for (int c = 0; c < dout; c++) {
            double acc = bias ? bias[c] : 0;
            for (int i = 0; i < din; i++) acc += (double)W[(size_t)c * din + i] * in[r * din + i];
            out[(size_t)r * dout + c] = acc;
        }
}

/* Row b of t's input in double (L, D). */
static void input_row(double *x, const Inst *t, int b) {
    for (size_t k = 0; k < (size_t)t->L * t->D; k++) x[k] = t->x[(size_t)b * t->L * t->D + k];
}

static int is_real(const Inst *t, int b, int l) {
    return !t->mask || t->mask[(size_t)b * t->L + l];
}

/* Largest |y − ref| over the largest |ref|, over the real rows (padding rows: anything). */
static double real_rel_error(const Inst *t, const float *y, const double *ref) {
    double worst = 0, scale = 0;
    for (int b = 0; b < t->B; b++)
        for (int l = 0; l < t->L; l++) {
            if (!is_real(t, b, l)) continue;
            for (int d = 0; d < t->D; d++) {
                const size_t k = ((size_t)b * t->L + l) * t->D + d;
                worst = fmax(worst, fabs((double)y[k] - ref[k]));
                scale = fmax(scale, fabs(ref[k]));
            }
        }
    return worst / scale;
}

#define VALUE_TOL 1e-5 /* float32 kernels against a double reference */

typedef void (*RefFn)(double *y, const Inst *t);

/* Σ_k dy_k·ref_k over the real rows at t's current inputs and parameters. */
static double ref_loss(const Inst *t, RefFn ref, double *y) {
    ref(y, t);
    double f = 0;
    for (int b = 0; b < t->B; b++)
        for (int l = 0; l < t->L; l++)
            if (is_real(t, b, l))
                for (int d = 0; d < t->D; d++) {
                    const size_t k = ((size_t)b * t->L + l) * t->D + d;
                    f += t->dy[k] * y[k];
                }
    return f;
}

/* g (n) against central differences of the double reference: `count` evenly spaced elements of
 * buf are moved by ±h in float (the quotient uses the float steps actually taken). The loss counts
 * the real rows only, so t->dy must be zero on padding rows. */
static void check_ref_derivative(Inst *t, RefFn ref, float *buf, const float *g, size_t n,
                                 int count, double h, const char *what) {
    double *y = malloc((size_t)t->B * t->L * t->D * sizeof *y);
    ck_assert_ptr_nonnull(y);
    for (int c = 0; c < count; c++) {
        const size_t k = (size_t)c * n / (size_t)count;
        const float v = buf[k];
        buf[k] = (float)(v + h);
        const double up = buf[k], fp = ref_loss(t, ref, y);
        buf[k] = (float)(v - h);
        const double dn = buf[k], fm = ref_loss(t, ref, y);
        buf[k] = v;
        const double num = (fp - fm) / (up - dn);
        ck_assert_msg(fabs(g[k] - num) <= 1e-3 * (1 + fabs(num)),
                      "%s element %zu: analytic %.7g, the reference's derivative %.7g", what, k,
                      (double)g[k], num);
    }
    free(y);
}

/* The backward of t (evaluation) is the derivative of the reference for dx and every parameter. */
static void check_gradients_against_reference(Inst *t, RefFn ref, double h, const char *name) {
    for (int b = 0; b < t->B; b++) /* the loss of the real rows */
        for (int l = 0; l < t->L; l++)
            if (!is_real(t, b, l))
                memset(t->dy + ((size_t)b * t->L + l) * t->D, 0, (size_t)t->D * sizeof(float));
    t->training = 0;
    inst_forward(t);
    inst_backward(t);
    char what[256];
    snprintf(what, sizeof what, "%s dx", name);
    check_ref_derivative(t, ref, t->x, t->dx, (size_t)t->B * t->L * t->D, 12, h, what);
    for (int i = 0; i < t->pt.n; i++) {
        const ParamInfo *p = &t->pt.info[i];
        snprintf(what, sizeof what, "%s %s", name, p->name);
        check_ref_derivative(t, ref, t->params + p->offset, t->grads + p->offset, p->size, 12, h,
                             what);
    }
}

/* ---- cosformer ---- */

static int g_cos_padded_m = 1; /* the reference's M: the padded length (1) or the real one (0) */

/* cosFormer as cosformer.py's left_product computes it: the L×L weights
 * A_ij = ReLU(q_i)·ReLU(k_j)·cos(π/2·(i − j)/M) over the real keys j, rows divided by
 * max(Σ_j A_ij, 1e-6), times V, then the output projection. */
static void ref_cosformer(double *y, const Inst *t) {
    const int L = t->L, D = t->D, H = t->H, Dh = D / H;
    const float *wqkv = tensor_data(t, ".qkv.weight"), *bqkv = tensor_data(t, ".qkv.bias");
    const float *wo = tensor_data(t, ".out.weight"), *bo = tensor_data(t, ".out.bias");
    double *x = malloc((size_t)L * D * sizeof *x), *qkv = malloc((size_t)L * 3 * D * sizeof *qkv);
    double *o = calloc((size_t)L * D, sizeof *o), *A = malloc((size_t)L * sizeof *A);
    ck_assert(x && qkv && o && A);
    for (int b = 0; b < t->B; b++) {
        input_row(x, t, b);
        ref_linear(qkv, x, wqkv, bqkv, L, D, 3 * D);
        int M = L;
        if (!g_cos_padded_m) {
            M = 0;
            for (int l = 0; l < L; l++) M += is_real(t, b, l);
        }
        for (int h = 0; h < H; h++)
            for (int i = 0; i < L; i++) {
                double den = 0;
                for (int j = 0; j < L; j++) {
                    double a = 0;
                    if (is_real(t, b, j))
                        for (int d = 0; d < Dh; d++)
                            a += fmax(qkv[(size_t)i * 3 * D + h * Dh + d], 0) *
                                 fmax(qkv[(size_t)j * 3 * D + D + h * Dh + d], 0);
                    A[j] = a * cos(M_PI / 2 * (double)(i - j) / M);
                    den += A[j];
                }
                den = fmax(den, 1e-6);
                for (int d = 0; d < Dh; d++) {
                    double num = 0;
                    for (int j = 0; j < L; j++)
                        num += A[j] * qkv[(size_t)j * 3 * D + 2 * D + h * Dh + d];
                    o[(size_t)i * D + h * Dh + d] = num / den;
                }
            }
        ref_linear(y + (size_t)b * L * D, o, wo, bo, L, D, D);
    }
    free(x), free(qkv), free(o), free(A);
}

static double cosformer_error(const char *opts, int padded_m, int B, int L, int D, int H) {
    const int pad[3] = {0, L / 3, 2};
    Inst t;
    inst_init(&t, "cosformer", opts, B, L, D, H, pad, 23);
    t.training = 0;
    inst_forward(&t);
    double *ref = malloc((size_t)B * L * D * sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    g_cos_padded_m = padded_m;
    ref_cosformer(ref, &t);
    const double err = real_rel_error(&t, t.y, ref);
    free(ref);
    inst_free(&t);
    return err;
}

START_TEST(test_cosformer_equals_the_explicit_reweighted_attention) {
    const struct {
        const char *opts;
        int padded_m, B, L, D, H;
    } c[] = {{NULL, 1, 2, 13, 8, 2},
             {"padded_m=false", 0, 3, 11, 6, 3},
             {"bias=false", 1, 2, 9, 8, 2},
             {NULL, 1, 1, 600, 8, 2},
             {"padded_m=false", 0, 2, 600, 8, 2}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        const double err =
            cosformer_error(c[i].opts, c[i].padded_m, c[i].B, c[i].L, c[i].D, c[i].H);
        ck_assert_msg(err <= VALUE_TOL, "cosformer(%s) L=%d: relative error %g", c[i].opts, c[i].L,
                      err);
    }
}
END_TEST

/* The generic finite-difference check (step 1e-2) cannot be used where a query's active ReLU
 * features are all small: with the active set frozen a step of 1e-2 makes them negative and the
 * denominator Σ_j A_ij crosses zero. The double reference takes a step far below those values. */
START_TEST(test_cosformer_backward_is_the_references_derivative) {
    const int pad[2] = {0, 200}, pad3[3] = {0, 3, 1};
    Inst t;
    g_cos_padded_m = 1;
    inst_init(&t, "cosformer", NULL, 2, 600, 8, 2, pad, 29);
    check_gradients_against_reference(&t, ref_cosformer, 1e-5, "cosformer()");
    inst_free(&t);
    g_cos_padded_m = 0;
    inst_init(&t, "cosformer", "padded_m=false,bias=false", 3, 9, 6, 3, pad3, 31);
    check_gradients_against_reference(&t, ref_cosformer, 1e-5, "cosformer(padded_m=false)");
    inst_free(&t);
}
END_TEST

/* ---- long_short ---- */

static void ref_layernorm(double *x, int n, int D, const float *w, const float *b) {
    for (int r = 0; r < n; r++) {
        double *v = x + (size_t)r * D, mean = 0, var = 0;
        for (int d = 0; d < D; d++) mean += v[d];
        mean /= D;
        for (int d = 0; d < D; d++) var += (v[d] - mean) * (v[d] - mean);
        var /= D;
        const double rs = 1 / sqrt(var + 1e-6); /* the harness's ε (PyTorch's is 1e-5) */
        for (int d = 0; d < D; d++) v[d] = (v[d] - mean) * rs * (w ? w[d] : 1) + (b ? b[d] : 0);
    }
}

static int g_ls_w, g_ls_r, g_ls_dual; /* the reference's window, landmarks, DualLN */

/* AttentionLS.forward materialised: per head the L×(r + L) scores [Q K̄ᵀ ‖ Q Kᵀ]/√Dh with −inf
 * for keys outside the query's segment window [g·w − e, (g + 1)·w + e), e = max(⌊w/2⌋, 1), and
 * for padding keys; one softmax per row; padding query rows 0. */
static void ref_long_short(double *y, const Inst *t) {
    const int L = t->L, D = t->D, H = t->H, Dh = D / H, r = g_ls_r, w = g_ls_w;
    const int e = w / 2 > 1 ? w / 2 : 1;
    const float *wqkv = tensor_data(t, ".qkv.weight"), *bqkv = tensor_data(t, ".qkv.bias");
    const float *wo = tensor_data(t, ".out.weight"), *bo = tensor_data(t, ".out.bias");
    const float *wp = tensor_data(t, ".landmarks.weight"), *bp = tensor_data(t, ".landmarks.bias");
    const float *lw = tensor_data(t, ".ln_l.weight"), *lb = tensor_data(t, ".ln_l.bias");
    const float *sw = tensor_data(t, ".ln_s.weight"), *sb = tensor_data(t, ".ln_s.bias");
    double *x = malloc((size_t)L * D * sizeof *x), *qkv = malloc((size_t)L * 3 * D * sizeof *qkv);
    double *q = malloc((size_t)L * D * sizeof *q), *k = malloc((size_t)L * D * sizeof *k);
    double *v = malloc((size_t)L * D * sizeof *v), *o = malloc((size_t)L * D * sizeof *o);
    double *P = malloc((size_t)L * (H * r + 1) * sizeof *P);
    double *kb = calloc((size_t)(r + 1) * D, sizeof *kb),
           *vb = calloc((size_t)(r + 1) * D, sizeof *vb);
    double *sc = malloc((size_t)(r + L) * sizeof *sc);
    ck_assert(x && qkv && q && k && v && o && P && kb && vb && sc);
    for (int b = 0; b < t->B; b++) {
        input_row(x, t, b);
        ref_linear(qkv, x, wqkv, bqkv, L, D, 3 * D);
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++) {
                q[(size_t)l * D + d] = qkv[(size_t)l * 3 * D + d];
                k[(size_t)l * D + d] = qkv[(size_t)l * 3 * D + D + d];
                v[(size_t)l * D + d] = qkv[(size_t)l * 3 * D + 2 * D + d];
            }
        if (g_ls_dual) {
            ref_layernorm(k, L, D, lw, lb);
            ref_layernorm(v, L, D, lw, lb);
        }
        if (r > 0) { /* P: softmax over the real positions of X W_Pᵀ + b_P, column by column */
            ref_linear(P, x, wp, bp, L, D, H * r);
            for (int c = 0; c < H * r; c++) {
                double mx = -INFINITY, sum = 0;
                for (int l = 0; l < L; l++)
                    if (is_real(t, b, l)) mx = fmax(mx, P[(size_t)l * H * r + c]);
                for (int l = 0; l < L; l++) {
                    double *p = &P[(size_t)l * H * r + c];
                    *p = is_real(t, b, l) ? exp(*p - mx) : 0;
                    sum += *p;
                }
                for (int l = 0; l < L; l++) P[(size_t)l * H * r + c] /= sum;
            }
            for (int i = 0; i < r; i++) /* K̄ = Pᵀ K per head, rows (r, D) */
                for (int h = 0; h < H; h++)
                    for (int d = 0; d < Dh; d++) {
                        double ak = 0, av = 0;
                        for (int l = 0; l < L; l++) {
                            const double p = P[(size_t)l * H * r + h * r + i];
                            ak += p * k[(size_t)l * D + h * Dh + d];
                            av += p * v[(size_t)l * D + h * Dh + d];
                        }
                        kb[(size_t)i * D + h * Dh + d] = ak;
                        vb[(size_t)i * D + h * Dh + d] = av;
                    }
            if (g_ls_dual) {
                ref_layernorm(kb, r, D, sw, sb);
                ref_layernorm(vb, r, D, sw, sb);
            }
        }
        for (int h = 0; h < H; h++)
            for (int i = 0; i < L; i++) {
                const int g = i / w, a = g * w - e, z = (g + 1) * w + e;
                double mx = -INFINITY;
                for (int j = 0; j < r + L; j++) {
                    const double *kj = j < r ? kb + (size_t)j * D : k + (size_t)(j - r) * D;
                    const int p = j - r;
                    const int vis = j < r || (p >= a && p < z && is_real(t, b, p));
                    double acc = 0;
                    for (int d = 0; d < Dh; d++)
                        acc += q[(size_t)i * D + h * Dh + d] * kj[h * Dh + d];
                    sc[j] = vis ? acc / sqrt((double)Dh) : -INFINITY;
                    mx = fmax(mx, sc[j]);
                }
                double sum = 0;
                for (int j = 0; j < r + L; j++) sum += sc[j] == -INFINITY ? 0 : exp(sc[j] - mx);
                for (int d = 0; d < Dh; d++) {
                    double acc = 0;
                    for (int j = 0; j < r + L; j++) {
                        if (sc[j] == -INFINITY) continue;
                        const double *vj = j < r ? vb + (size_t)j * D : v + (size_t)(j - r) * D;
                        acc += exp(sc[j] - mx) / sum * vj[h * Dh + d];
                    }
                    o[(size_t)i * D + h * Dh + d] = is_real(t, b, i) ? acc : 0;
                }
            }
        ref_linear(y + (size_t)b * L * D, o, wo, bo, L, D, D);
    }
    free(x), free(qkv), free(q), free(k), free(v), free(o), free(P), free(kb), free(vb), free(sc);
}

static double long_short_error(int w, int r, int dual, int B, int L, int D, int H) {
    char opts[96];
    snprintf(opts, sizeof opts, "window=%d,landmarks=%d,dual_ln=%s", w, r, dual ? "true" : "false");
    const int pad[3] = {0, L / 3, 2};
    Inst t;
    inst_init(&t, "long_short", opts, B, L, D, H, pad, 19);
    t.training = 0;
    inst_forward(&t);
    double *ref = malloc((size_t)B * L * D * sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    g_ls_w = w, g_ls_r = r, g_ls_dual = dual;
    ref_long_short(ref, &t);
    const double err = real_rel_error(&t, t.y, ref);
    /* padding rows: the output bias alone */
    const float *bo = tensor_data(&t, ".out.bias");
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++)
            if (!is_real(&t, b, l))
                for (int d = 0; d < D; d++)
                    ck_assert_float_eq(t.y[((size_t)b * L + l) * D + d], bo[d]);
    free(ref);
    inst_free(&t);
    return err;
}

START_TEST(test_long_short_equals_the_materialised_union_softmax) {
    const int c[][7] = {/* w, r, dual_ln, B, L, D, H */
                        {2, 3, 1, 2, 13, 8, 2},    {3, 2, 1, 3, 11, 6, 3},
                        {1, 0, 1, 2, 9, 8, 2},     {4, 2, 0, 2, 12, 8, 2},
                        {20, 4, 1, 2, 17, 8, 2},   {8, 32, 1, 2, 600, 8, 2},
                        {300, 4, 1, 1, 600, 8, 2}, {5, 7, 1, 3, 50, 12, 2}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        const double err =
            long_short_error(c[i][0], c[i][1], c[i][2], c[i][3], c[i][4], c[i][5], c[i][6]);
        ck_assert_msg(err <= VALUE_TOL,
                      "long_short(w=%d, r=%d, dual_ln=%d) L=%d: relative error %g", c[i][0],
                      c[i][1], c[i][2], c[i][4], err);
    }
}
END_TEST

/* Without DualLN (the LayerNorms would normalise K and V) and without landmarks, a window
 * covering the sequence leaves softmax attention with the same projections. */
START_TEST(test_long_short_without_dual_ln_and_landmarks_with_a_covering_window_equals_full) {
    check_equals_full("long_short", "window=13,landmarks=0,dual_ln=false", "bias=true", 1, 13, 8, 2,
                      1e-5);
    check_equals_full("long_short", "window=600,landmarks=0,dual_ln=false", "bias=true", 1, 600, 8,
                      2, 1e-5);
    /* w = 400: one segment of 400 and one of 200 whose windows reach back e = 200 keys only, so
     * the first query of the second segment misses keys 0..199: not full */
    double worst, mean;
    error_vs_full("long_short", "window=400,landmarks=0,dual_ln=false", "bias=true", 1, 600, 8, 2,
                  &worst, &mean);
    ck_assert_msg(worst > 1e-3, "a window that misses keys still equals full (%g)", worst);
}
END_TEST

static Suite *next_survey_suite(void) {
    Suite *s = suite_create("mixers_next_survey");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_cosformer_equals_the_explicit_reweighted_attention);
    tcase_add_test(tc, test_cosformer_backward_is_the_references_derivative);
    tcase_add_test(tc, test_long_short_equals_the_materialised_union_softmax);
    tcase_add_test(
        tc, test_long_short_without_dual_ln_and_landmarks_with_a_covering_window_equals_full);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(next_survey_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
