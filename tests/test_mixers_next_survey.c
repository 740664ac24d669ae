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
#include "mixers/clustered.h"

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
    check_ref_derivative(t, ref, t->x, t->dx, (size_t)t->B * t->L * t->D, 8, h, what);
    for (int i = 0; i < t->pt.n; i++) {
        const ParamInfo *p = &t->pt.info[i];
        snprintf(what, sizeof what, "%s %s", name, p->name);
        check_ref_derivative(t, ref, t->params + p->offset, t->grads + p->offset, p->size, 8, h,
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
    const int pad[1] = {200}, pad3[3] = {0, 3, 1};
    Inst t;
    g_cos_padded_m = 1;
    inst_init(&t, "cosformer", NULL, 1, 600, 8, 2, pad, 29);
    check_gradients_against_reference(&t, ref_cosformer, 1e-5, "cosformer()");
    inst_free(&t);
    g_cos_padded_m = 0;
    inst_init(&t, "cosformer", "padded_m=false,bias=false", 3, 9, 6, 3, pad3, 31);
    check_gradients_against_reference(&t, ref_cosformer, 1e-5, "cosformer(padded_m=false)");
    inst_free(&t);
}
END_TEST

/* How padding matters (the spec's padding_dependence): with padded_m a padded row's real outputs
 * are the reference's at M = the padded length, not those of the row cut to its real length
 * (M = the real length there); without it, the cut row's. Padding keys are excluded either way
 * (the reference sees only real keys). */
START_TEST(test_cosformer_padded_length_enters_only_through_m) {
    const int L = 30, Lr = 20, D = 8, H = 2, pad[2] = {0, L - Lr};
    for (int padded_m = 0; padded_m <= 1; padded_m++) {
        const char *opts = padded_m ? "padded_m=true" : "padded_m=false";
        Inst a, t;
        inst_init(&a, "cosformer", opts, 2, L, D, H, pad, 47);
        inst_init_at(&t, "cosformer", opts, 1, Lr, L, D, H, NULL, 47);
        memcpy(t.x, a.x + (size_t)L * D, (size_t)Lr * D * sizeof(float));
        a.training = t.training = 0;
        inst_forward(&a);
        inst_forward(&t);
        double *ref = malloc((size_t)2 * L * D * sizeof *ref);
        ck_assert_ptr_nonnull(ref);
        g_cos_padded_m = padded_m;
        ref_cosformer(ref, &a);
        double vs_cut = 0, vs_ref = 0;
        for (size_t k = 0; k < (size_t)Lr * D; k++) {
            const double got = a.y[(size_t)L * D + k];
            vs_cut = fmax(vs_cut, fabs(got - t.y[k]) / (1 + fabs((double)t.y[k])));
            vs_ref = fmax(vs_ref,
                          fabs(got - ref[(size_t)L * D + k]) / (1 + fabs(ref[(size_t)L * D + k])));
        }
        ck_assert_msg(vs_ref <= 1e-5, "%s: %g from the reference", opts, vs_ref);
        if (padded_m)
            ck_assert_msg(vs_cut > 1e-3, "padded_m: the padded row equals its cut (%g)", vs_cut);
        else
            ck_assert_msg(vs_cut <= 1e-5, "%s: %g from the cut row", opts, vs_cut);
        free(ref);
        inst_free(&a);
        inst_free(&t);
    }
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

/* ---- clustered ---- */

static int g_cl_improved; /* the reference: improved clustered attention */
/* The seed of the instances compared with full or with the reference k-means: one whose codes
 * tell the queries apart and whose clusters never empty (both asserted, see below). */
static const uint64_t g_cl_seed = 2;

/* Clustered attention recomputed in double from the mechanism's own groups (and, improved, its
 * top-k sets, which are checked to be top-k in double): centroid queries the means of their
 * members, A_c = softmax(Q_c Kᵀ/√Dh) over the real keys, a member takes A_c V, or improved
 * (1 − m_c)·softmax_{T_c}(q_i Kᵀ/√Dh) V + Σ_{j∉T_c} A_c[j] v_j; padding queries 0. */
static void ref_clustered(double *y, const Inst *t) {
    const int L = t->L, D = t->D, H = t->H, Dh = D / H;
    int Cs, K = 0;
    const int *cl = clustered_assignments(&t->m, &Cs);
    const int *top = clustered_topk(&t->m, &K);
    ck_assert(!g_cl_improved || top);
    const float *wqkv = tensor_data(t, ".qkv.weight"), *bqkv = tensor_data(t, ".qkv.bias");
    const float *wo = tensor_data(t, ".out.weight"), *bo = tensor_data(t, ".out.bias");
    double *x = malloc((size_t)L * D * sizeof *x), *qkv = malloc((size_t)L * 3 * D * sizeof *qkv);
    double *o = malloc((size_t)L * D * sizeof *o), *qc = malloc((size_t)Cs * Dh * sizeof *qc);
    double *S = malloc((size_t)Cs * L * sizeof *S), *A = malloc((size_t)Cs * L * sizeof *A);
    double *a = malloc((size_t)(K + 1) * sizeof *a);
    int *n = malloc((size_t)Cs * sizeof *n);
    unsigned char *inT = malloc((size_t)L);
    ck_assert(x && qkv && o && qc && S && A && a && n && inT);
    const double sc = 1 / sqrt((double)Dh);
    for (int b = 0; b < t->B; b++) {
        input_row(x, t, b);
        ref_linear(qkv, x, wqkv, bqkv, L, D, 3 * D);
        for (int h = 0; h < H; h++) {
            const int *c_of = cl + ((size_t)b * H + h) * L;
            memset(qc, 0, (size_t)Cs * Dh * sizeof *qc);
            memset(n, 0, (size_t)Cs * sizeof *n);
            for (int i = 0; i < L; i++) {
                ck_assert_int_eq(c_of[i] < 0, !is_real(t, b, i)); /* padding: no cluster */
                if (c_of[i] < 0) continue;
                n[c_of[i]]++;
                for (int d = 0; d < Dh; d++)
                    qc[c_of[i] * Dh + d] += qkv[(size_t)i * 3 * D + h * Dh + d];
            }
            for (int c = 0; c < Cs; c++) {
                double mx = -INFINITY, sum = 0;
                for (int d = 0; d < Dh && n[c]; d++) qc[c * Dh + d] /= n[c];
                for (int j = 0; j < L; j++) {
                    double acc = 0;
                    for (int d = 0; d < Dh; d++)
                        acc += qc[c * Dh + d] * qkv[(size_t)j * 3 * D + D + h * Dh + d];
                    S[(size_t)c * L + j] = is_real(t, b, j) ? acc : -INFINITY;
                    mx = fmax(mx, S[(size_t)c * L + j]);
                }
                for (int j = 0; j < L; j++)
                    sum += A[(size_t)c * L + j] =
                        is_real(t, b, j) ? exp(sc * (S[(size_t)c * L + j] - mx)) : 0;
                for (int j = 0; j < L; j++) A[(size_t)c * L + j] /= sum;
            }
            for (int i = 0; i < L; i++) {
                const int c = c_of[i];
                double *oi = o + (size_t)i * D + h * Dh;
                if (c < 0) {
                    for (int d = 0; d < Dh; d++) oi[d] = 0;
                    continue;
                }
                const double *Ac = A + (size_t)c * L;
                memset(inT, 0, (size_t)L);
                double mbot = 0, amx = -INFINITY, asum = 0;
                if (g_cl_improved) {
                    const int *T = top + (((size_t)b * H + h) * Cs + c) * K;
                    int nreal = 0, nkeys = 0;
                    double worst_in = INFINITY, best_out = -INFINITY;
                    for (int u = 0; u < K; u++) inT[T[u]] = 1;
                    for (int j = 0; j < L; j++) {
                        if (!is_real(t, b, j)) continue;
                        nkeys++;
                        if (inT[j])
                            nreal++, worst_in = fmin(worst_in, S[(size_t)c * L + j]);
                        else
                            best_out = fmax(best_out, S[(size_t)c * L + j]);
                    }
                    ck_assert_int_eq(nreal, nkeys < K ? nkeys : K); /* real keys first */
                    ck_assert_msg(worst_in >= best_out - 1e-5 * (1 + fabs(best_out)),
                                  "a key outside T_c scores %g > %g inside", best_out, worst_in);
                    for (int u = 0; u < K; u++) {
                        const int j = T[u];
                        double acc = 0;
                        for (int d = 0; d < Dh; d++)
                            acc += qkv[(size_t)i * 3 * D + h * Dh + d] *
                                   qkv[(size_t)j * 3 * D + D + h * Dh + d];
                        a[u] = is_real(t, b, j) ? sc * acc : -INFINITY;
                        amx = fmax(amx, a[u]);
                    }
                    for (int u = 0; u < K; u++)
                        asum += a[u] = a[u] == -INFINITY ? 0 : exp(a[u] - amx);
                    for (int j = 0; j < L; j++) mbot += inT[j] ? 0 : Ac[j];
                }
                for (int d = 0; d < Dh; d++) {
                    double acc = 0;
                    for (int j = 0; j < L; j++)
                        if (!inT[j]) acc += Ac[j] * qkv[(size_t)j * 3 * D + 2 * D + h * Dh + d];
                    if (g_cl_improved) {
                        const int *T = top + (((size_t)b * H + h) * Cs + c) * K;
                        double tp = 0;
                        for (int u = 0; u < K; u++)
                            tp += a[u] / asum * qkv[(size_t)T[u] * 3 * D + 2 * D + h * Dh + d];
                        acc += (1 - mbot) * tp;
                    }
                    oi[d] = acc;
                }
            }
        }
        ref_linear(y + (size_t)b * L * D, o, wo, bo, L, D, D);
    }
    free(x), free(qkv), free(o), free(qc), free(S), free(A), free(a), free(n), free(inT);
}

static double clustered_error(const char *opts, int improved, int B, int L, int D, int H) {
    const int pad[3] = {0, L / 3, 2};
    Inst t;
    inst_init(&t, "clustered", opts, B, L, D, H, pad, 13);
    t.training = 0;
    inst_forward(&t);
    double *ref = malloc((size_t)B * L * D * sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    g_cl_improved = improved;
    ref_clustered(ref, &t);
    const double err = real_rel_error(&t, t.y, ref);
    free(ref);
    inst_free(&t);
    return err;
}

START_TEST(test_clustered_equals_naive_attention_of_its_clusters) {
    const struct {
        const char *opts;
        int improved, B, L, D, H;
    } c[] = {{"clusters=3", 0, 2, 13, 8, 2},
             {"clusters=4,bits=8,iterations=3,bias=false", 0, 3, 11, 6, 3},
             {"clusters=3,improved=true,topk=4", 1, 2, 13, 8, 2},
             {"clusters=2,improved=true,topk=20,bits=5", 1, 3, 11, 6, 3}, /* masked top-k slots */
             {"clusters=100", 0, 2, 600, 8, 2},
             {"clusters=10,improved=true", 1, 2, 600, 8, 2}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        const double err =
            clustered_error(c[i].opts, c[i].improved, c[i].B, c[i].L, c[i].D, c[i].H);
        ck_assert_msg(err <= VALUE_TOL, "clustered(%s) L=%d: relative error %g", c[i].opts, c[i].L,
                      err);
    }
}
END_TEST

/* The worst relative difference of the real rows of `clustered` with opts from `full` (biases
 * on) under the same projections, at padding pad. */
static double clustered_vs_full(const char *opts, int B, int L, int D, int H, const int *pad,
                                int distinct) {
    Inst a, f;
    inst_init(&a, "clustered", opts, B, L, D, H, pad, g_cl_seed);
    inst_init(&f, "full", "bias=true", B, L, D, H, pad, g_cl_seed);
    for (int i = 0; i < f.pt.n; i++) {
        const int j = params_find(&a.pt, f.pt.info[i].name);
        ck_assert_int_ge(j, 0);
        memcpy(a.params + a.pt.info[j].offset, f.params + f.pt.info[i].offset,
               f.pt.info[i].size * sizeof(float));
    }
    a.training = f.training = 0;
    inst_forward(&a);
    inst_forward(&f);
    if (distinct) { /* the premise: no two real queries of a (row, head) share a code */
        int Cs;
        const int *cl = clustered_assignments(&a.m, &Cs);
        for (int bh = 0; bh < B * H; bh++)
            for (int i = 0; i < L; i++)
                for (int j = 0; j < i; j++)
                    ck_assert_msg(cl[bh * L + i] < 0 || cl[bh * L + i] != cl[bh * L + j],
                                  "queries %d and %d share a cluster", j, i);
    }
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++)
            if (is_real(&a, b, l))
                for (int d = 0; d < D; d++) {
                    const size_t k = ((size_t)b * L + l) * D + d;
                    worst = fmax(worst, fabs((double)a.y[k] - f.y[k]) / (1 + fabs((double)f.y[k])));
                }
    inst_free(&a);
    inst_free(&f);
    return worst;
}

/* The test: with as many clusters as queries every query is its own centroid, when the
 * codes tell the queries apart (asserted: a hyperplane separates q and q' with probability
 * ∠((q, 1), (q', 1))/π, so 63 of them leave close queries in low dimensions one code, e.g. two
 * queries 0.6 apart at L = 13, Dh = 4, seed 5; at L = 600 the heads are 32 wide), and the
 * centroids' attention is full attention. */
START_TEST(test_clustered_with_a_cluster_per_query_equals_full) {
    const int pad2[2] = {0, 4}, pad600[2] = {0, 200};
    const double e1 = clustered_vs_full("clusters=17", 2, 17, 8, 2, pad2, 1);
    const double e2 = clustered_vs_full("clusters=40", 3, 11, 6, 3, NULL, 1);
    const double e3 = clustered_vs_full("clusters=600", 2, 600, 64, 2, pad600, 1);
    ck_assert_msg(e1 <= 1e-5 && e2 <= 1e-5 && e3 <= 1e-5, "differs from full: %g, %g, %g", e1, e2,
                  e3);
}
END_TEST

/* Improved clustered attention with top-k covering every key attends exactly from every query,
 * whatever the clusters: m_c = 0 and the top-k softmax is the full one. */
START_TEST(test_clustered_improved_with_topk_covering_the_keys_equals_full) {
    const int pad2[2] = {0, 4}, pad600[2] = {0, 200};
    double e1 = clustered_vs_full("clusters=3,improved=true,topk=13", 2, 13, 8, 2, pad2, 0);
    double e2 = clustered_vs_full("clusters=2,improved=true,topk=600", 2, 600, 8, 2, pad600, 0);
    double e3 = clustered_vs_full("clusters=3,improved=true,topk=12", 2, 13, 8, 2, pad2, 0);
    ck_assert_msg(e1 <= 1e-5 && e2 <= 1e-5, "differs from full: %g, %g", e1, e2);
    ck_assert_msg(e3 > 1e-4, "topk = L − 1 equals full (%g): the test cannot tell", e3);
}
END_TEST

/* The groups are hash_cpu.cpp's codes clustered as cluster_cpu.cpp does, recomputed here in
 * double from the mechanism's planes: bit i = [a_i·q > offset_i]; centroids from the first real
 * codes; iterations − 1 rounds of nearest-centroid assignment (first minimum) and bitwise majority
 * (ties 0); a last assignment. The configurations are ones where no cluster empties (an empty
 * cluster takes a random code) and no code bit is within 1e-5 of its threshold. */
static void check_hamming_kmeans(const char *opts, int C, int iters, int B, int L, int D, int H) {
    const int pad[3] = {0, L / 3, 2};
    Inst t;
    inst_init(&t, "clustered", opts, B, L, D, H, pad, g_cl_seed);
    inst_forward(&t);
    const int Dh = D / H;
    int bits, Cs;
    const float *planes = clustered_planes(&t.m, &bits);
    const int *cl = clustered_assignments(&t.m, &Cs);
    const float *wqkv = tensor_data(&t, ".qkv.weight"), *bqkv = tensor_data(&t, ".qkv.bias");
    double *x = malloc((size_t)L * D * sizeof *x), *qkv = malloc((size_t)L * 3 * D * sizeof *qkv);
    uint64_t *code = malloc((size_t)L * sizeof *code), cent[64];
    int *mine = malloc((size_t)L * sizeof *mine);
    ck_assert(x && qkv && code && mine && C <= 64);
    for (int b = 0; b < B; b++) {
        input_row(x, &t, b);
        ref_linear(qkv, x, wqkv, bqkv, L, D, 3 * D);
        for (int h = 0; h < H; h++) {
            int n = 0;
            for (int l = 0; l < L; l++) {
                code[l] = 0;
                for (int i = 0; i < bits; i++) {
                    const float *ai = planes + (size_t)i * (Dh + 1);
                    double dot = 0;
                    for (int d = 0; d < Dh; d++) dot += ai[d] * qkv[(size_t)l * 3 * D + h * Dh + d];
                    ck_assert_msg(fabs(dot - ai[Dh]) > 1e-5, "a code bit at its threshold");
                    code[l] |= (uint64_t)(dot > ai[Dh]) << i;
                }
                if (is_real(&t, b, l) && n < C) cent[n++] = code[l];
            }
            const int k = n < C ? n : C;
            for (int it = 0; it < iters; it++) {
                for (int l = 0; l < L; l++) {
                    mine[l] = -1;
                    if (!is_real(&t, b, l)) continue;
                    int mind = 1000;
                    for (int c = 0; c < k; c++) {
                        const int dist = __builtin_popcountll(code[l] ^ cent[c]);
                        if (dist < mind) mind = dist, mine[l] = c;
                    }
                }
                if (it == iters - 1) break;
                for (int c = 0; c < k; c++) {
                    int votes[64] = {0}, members = 0;
                    for (int l = 0; l < L; l++)
                        if (mine[l] == c) {
                            members++;
                            for (int i = 0; i < bits; i++) votes[i] += (code[l] >> i & 1) ? 1 : -1;
                        }
                    ck_assert_msg(members > 0, "cluster %d emptied: the test cannot follow", c);
                    cent[c] = 0;
                    for (int i = 0; i < bits; i++) cent[c] |= (uint64_t)(votes[i] > 0) << i;
                }
            }
            for (int l = 0; l < L; l++)
                ck_assert_msg(cl[((size_t)b * H + h) * L + l] == mine[l],
                              "%s: query %d of row %d head %d: cluster %d, the reference's %d",
                              opts, l, b, h, cl[((size_t)b * H + h) * L + l], mine[l]);
        }
    }
    free(x), free(qkv), free(code), free(mine);
    inst_free(&t);
}

START_TEST(test_clustered_groups_are_the_hamming_kmeans_of_the_codes) {
    check_hamming_kmeans("clusters=4", 4, 10, 2, 40, 8, 2);
    check_hamming_kmeans("clusters=3,bits=24,hash_bias=false,iterations=4", 3, 4, 3, 30, 8, 2);
    check_hamming_kmeans("clusters=20", 20, 10, 2, 9, 16, 2); /* more clusters than queries */
}
END_TEST

/* Padding never moves the clusters of real queries: a padded row has the groups of the row cut
 * to its real length, whatever its padding holds (even with fewer real queries than clusters). */
START_TEST(test_clustered_padding_never_changes_the_clusters_of_real_queries) {
    const char *opts[2] = {"clusters=4", "clusters=30,improved=true,topk=8"};
    for (int o = 0; o < 2; o++) {
        const int L = 40, Lr = 25, D = 8, H = 2, pad[2] = {0, L - Lr};
        Inst a, t;
        inst_init(&a, "clustered", opts[o], 2, L, D, H, pad, 41);
        inst_init_at(&t, "clustered", opts[o], 1, Lr, L, D, H, NULL, 41);
        memcpy(t.x, a.x + (size_t)L * D, (size_t)Lr * D * sizeof(float));
        inst_forward(&a);
        inst_forward(&t);
        int Ca, Ct;
        const int *ca = clustered_assignments(&a.m, &Ca), *ct = clustered_assignments(&t.m, &Ct);
        int *before = malloc((size_t)H * L * sizeof *before);
        ck_assert_ptr_nonnull(before);
        memcpy(before, ca + (size_t)H * L, (size_t)H * L * sizeof *before);
        for (int h = 0; h < H; h++)
            for (int l = 0; l < Lr; l++) ck_assert_int_eq(before[h * L + l], ct[h * Lr + l]);
        for (size_t k = (size_t)(L + Lr) * D; k < (size_t)2 * L * D; k++) a.x[k] += 5.0f;
        inst_forward(&a);
        ck_assert_int_eq(memcmp(before, ca + (size_t)H * L, (size_t)H * L * sizeof *before), 0);
        free(before);
        inst_free(&a);
        inst_free(&t);
    }
}
END_TEST

/* No gradient flows through the grouping: MixerStep.frozen keeps the last forward's clusters and
 * top-k sets while the queries move; unfrozen, the moved queries are regrouped. The hyperplanes
 * are drawn anew at every step (the code draws them at every call). */
START_TEST(test_clustered_frozen_keeps_clusters_and_topk_and_steps_redraw_planes) {
    const int L = 60, D = 8, H = 2;
    Inst t;
    inst_init(&t, "clustered", "clusters=6,improved=true,topk=5", 1, L, D, H, NULL, 43);
    inst_forward(&t);
    int Cs, K, bits;
    const int *cl = clustered_assignments(&t.m, &Cs), *top = clustered_topk(&t.m, &K);
    const size_t ncl = (size_t)H * L * sizeof(int), ntop = (size_t)H * Cs * K * sizeof(int);
    int *cl0 = malloc(ncl), *top0 = malloc(ntop);
    ck_assert(cl0 && top0);
    memcpy(cl0, cl, ncl);
    memcpy(top0, top, ntop);
    gc_fill_normal(t.x, (size_t)L * D, 99, 1.0f); /* other queries */
    t.frozen = 1;
    inst_forward(&t);
    ck_assert_int_eq(memcmp(cl0, cl, ncl), 0);
    ck_assert_int_eq(memcmp(top0, top, ntop), 0);
    t.frozen = 0;
    inst_forward(&t);
    ck_assert(memcmp(cl0, cl, ncl) != 0 && memcmp(top0, top, ntop) != 0);
    const float *planes = clustered_planes(&t.m, &bits);
    float *p3 = malloc((size_t)bits * (D / H + 1) * sizeof *p3);
    ck_assert_ptr_nonnull(p3);
    memcpy(p3, planes, (size_t)bits * (D / H + 1) * sizeof *p3);
    MixerStep s = step_of(&t);
    s.step = 4;
    arena_reset(&t.scratch);
    t.m.spec->ops->forward(&t.m, &s, t.y, t.x);
    ck_assert(memcmp(p3, planes, (size_t)bits * (D / H + 1) * sizeof *p3) != 0);
    free(cl0), free(top0), free(p3);
    inst_free(&t);
}
END_TEST

static Suite *next_survey_suite(void) {
    Suite *s = suite_create("mixers_next_survey");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_cosformer_equals_the_explicit_reweighted_attention);
    tcase_add_test(tc, test_cosformer_backward_is_the_references_derivative);
    tcase_add_test(tc, test_cosformer_padded_length_enters_only_through_m);
    tcase_add_test(tc, test_long_short_equals_the_materialised_union_softmax);
    tcase_add_test(
        tc, test_long_short_without_dual_ln_and_landmarks_with_a_covering_window_equals_full);
    tcase_add_test(tc, test_clustered_equals_naive_attention_of_its_clusters);
    tcase_add_test(tc, test_clustered_with_a_cluster_per_query_equals_full);
    tcase_add_test(tc, test_clustered_improved_with_topk_covering_the_keys_equals_full);
    tcase_add_test(tc, test_clustered_groups_are_the_hamming_kmeans_of_the_codes);
    tcase_add_test(tc, test_clustered_padding_never_changes_the_clusters_of_real_queries);
    tcase_add_test(tc, test_clustered_frozen_keeps_clusters_and_topk_and_steps_redraw_planes);
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
