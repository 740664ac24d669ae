/* The kernel (feature-map) mechanisms: linear, performer, rfa. Each is recomputed naively in double
 * precision from its own parameters and the random features its forward drew
 * (kernel_mixer_random): Q, K, V = X·Wᵀ + b, per head the materialised L×L matrix
 * A_ij = φ(q_i)·φ(k_j) over the real keys j (and j <= i for a causal form, A_ij = 0 above the
 * diagonal), O_i = Σ_j A_ij v_j / D_i with the mechanism's denominator D_i (its ε, guard or clamp),
 * then the output projection. */
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
#include "mixers/kernel_mixer.h"

/* ---- the naive reference ---- */

typedef enum { MAP_ELU1, MAP_FAVOR, MAP_RELU, MAP_RELU_LRA, MAP_RFA } MapKind;

/* The constants of each mechanism, written from the authors' code (see the mechanisms' headers),
 * not read from ours. */
typedef struct RefMap {
    MapKind kind;
    double eps;     /* added to D */
    double guard;   /* D += 2·guard where |D| <= guard */
    double min_den; /* D = max(D, min_den) */
    int causal;     /* 1: A_ij = 0 for j > i */
} RefMap;

static const RefMap REF_LINEAR = {MAP_ELU1, 1e-6, 0, 0, 0}; /* fast-transformers eps=1e-6 */
/* CausalLinearAttention(eps=1e-6): φ(q_i)·Σ_{j<=i} φ(k_j) (cumsum) + eps */
static const RefMap REF_LINEAR_CAUSAL = {MAP_ELU1, 1e-6, 0, 0, 1};
static const RefMap REF_FAVOR = {MAP_FAVOR, 0, 1e-6, 0, 0};    /* numerical_stabilizer 1e-6 */
static const RefMap REF_RELU = {MAP_RELU, 0, 0, 0, 0};         /* favor_attention: no guard */
static const RefMap REF_RELU_LRA = {MAP_RELU_LRA, 0, 0, 0, 0}; /* numerical_stabilizer=0.0 */
static const RefMap REF_RFA = {MAP_RFA, 0, 0, 0.1, 0};         /* clamp_min(EPS), EPS = 0.1 */

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

/* phi (M) = the feature map of x (Dh) of head h; c is the stabiliser (softmax only). */
static void ref_features(double *phi, const double *x, int Dh, int h, int M, const RefMap *rm,
                         const float *W, const float *sigma, double c) {
    switch (rm->kind) {
    case MAP_ELU1:
        for (int d = 0; d < Dh; d++) phi[d] = x[d] > 0 ? x[d] + 1 : exp(x[d]);
        break;
    case MAP_RELU_LRA:
        for (int d = 0; d < Dh; d++) phi[d] = fmax(x[d], 0) + 1e-3;
        break;
    case MAP_RELU:
        for (int m = 0; m < M; m++) {
            double u = 0;
            for (int d = 0; d < Dh; d++) u += (double)W[(size_t)m * Dh + d] * x[d];
            phi[m] = fmax(u / sqrt((double)M), 0) + 1e-3;
        }
        break;
    case MAP_FAVOR: {
        const double xs = pow((double)Dh, -0.25);
        double n2 = 0;
        for (int d = 0; d < Dh; d++) n2 += x[d] * x[d] * xs * xs;
        for (int m = 0; m < M; m++) {
            double u = 0;
            for (int d = 0; d < Dh; d++) u += (double)W[(size_t)m * Dh + d] * x[d] * xs;
            phi[m] = (exp(u - n2 / 2 - c) + 1e-6) / sqrt((double)M);
        }
        break;
    }
    case MAP_RFA: {
        const int F = M / 2;
        double n2 = 0;
        for (int d = 0; d < Dh; d++) n2 += x[d] * x[d];
        const double nrm = sqrt(n2) + 1e-3;
        for (int i = 0; i < F; i++) {
            double u = 0;
            for (int d = 0; d < Dh; d++)
                u += (sigma ? sigma[(size_t)h * Dh + d] : 1.0) * W[((size_t)h * F + i) * Dh + d] *
                     x[d] / nrm;
            phi[i] = 0.1 * sin(u);
            phi[F + i] = 0.1 * cos(u);
        }
        break;
    }
    }
}

/* FAVOR's stabiliser of x (Dh): max_m of W x·Dh^(−1/4). */
static double favor_max(const double *x, int Dh, int M, const float *W) {
    const double xs = pow((double)Dh, -0.25);
    double c = -INFINITY;
    for (int m = 0; m < M; m++) {
        double u = 0;
        for (int d = 0; d < Dh; d++) u += (double)W[(size_t)m * Dh + d] * x[d] * xs;
        c = fmax(c, u);
    }
    return c;
}

/* y (B, L, D) = the mechanism of t recomputed naively in double after t's last forward (which
 * drew the random features). Returns how many rows' denominators the clamp or the guard moved. */
static int ref_forward(double *y, const Inst *t, const RefMap *rm, int M) {
    const int B = t->B, L = t->L, D = t->D, H = t->H, Dh = D / H;
    const float *wqkv = tensor_data(t, ".qkv.weight"), *bqkv = tensor_data(t, ".qkv.bias");
    const float *wo = tensor_data(t, ".out.weight"), *bo = tensor_data(t, ".out.bias");
    const float *sigma = tensor_data(t, ".sigma");
    int rows = 0, per_head = 0;
    const float *W = kernel_mixer_random(&t->m, &rows, &per_head);
    if (rm->kind == MAP_FAVOR || rm->kind == MAP_RELU) {
        ck_assert_ptr_nonnull(W);
        ck_assert_int_eq(rows, M);
        ck_assert_int_eq(per_head, 0);
    } else if (rm->kind == MAP_RFA) {
        ck_assert_ptr_nonnull(W);
        ck_assert_int_eq(2 * rows, M);
        ck_assert_int_eq(per_head, 1);
    } else {
        ck_assert_ptr_null(W);
    }
    double *qkv = malloc((size_t)L * 3 * D * sizeof *qkv), *o = malloc((size_t)L * D * sizeof *o);
    double *pq = malloc((size_t)L * M * sizeof *pq), *pk = malloc((size_t)L * M * sizeof *pk);
    double *A = malloc((size_t)L * L * sizeof *A);
    ck_assert(qkv && o && pq && pk && A);
    int moved = 0;
    for (int b = 0; b < B; b++) {
        const unsigned char *mask = t->mask ? t->mask + (size_t)b * L : NULL;
        for (int l = 0; l < L; l++) /* Q, K, V = X·Wᵀ + b */
            for (int c = 0; c < 3 * D; c++) {
                double acc = bqkv ? bqkv[c] : 0;
                for (int i = 0; i < D; i++)
                    acc += (double)wqkv[(size_t)c * D + i] * t->x[((size_t)b * L + l) * D + i];
                qkv[(size_t)l * 3 * D + c] = acc;
            }
        for (int h = 0; h < H; h++) {
            double kmax = -INFINITY; /* FAVOR's key stabiliser: over the head's real keys */
            if (rm->kind == MAP_FAVOR)
                for (int l = 0; l < L; l++)
                    if (!mask || mask[l])
                        kmax =
                            fmax(kmax, favor_max(qkv + (size_t)l * 3 * D + D + h * Dh, Dh, M, W));
            for (int l = 0; l < L; l++) {
                const double *q = qkv + (size_t)l * 3 * D + h * Dh, *k = q + D;
                const double cq = rm->kind == MAP_FAVOR ? favor_max(q, Dh, M, W) : 0;
                ref_features(pq + (size_t)l * M, q, Dh, h, M, rm, W, sigma, cq);
                ref_features(pk + (size_t)l * M, k, Dh, h, M, rm, W, sigma, kmax);
            }
            for (int i = 0; i < L; i++) /* A = φ(Q)φ(K)ᵀ, padding (and later) keys excluded */
                for (int j = 0; j < L; j++) {
                    double a = 0;
                    if ((!mask || mask[j]) && !(rm->causal && j > i))
                        for (int m = 0; m < M; m++)
                            a += pq[(size_t)i * M + m] * pk[(size_t)j * M + m];
                    A[(size_t)i * L + j] = a;
                }
            for (int i = 0; i < L; i++) {
                double den = rm->eps;
                for (int j = 0; j < L; j++) den += A[(size_t)i * L + j];
                if (rm->min_den > 0 && den < rm->min_den) den = rm->min_den, moved++;
                if (rm->guard > 0 && fabs(den) <= rm->guard) den += 2 * rm->guard, moved++;
                for (int d = 0; d < Dh; d++) {
                    double num = 0;
                    for (int j = 0; j < L; j++)
                        num += A[(size_t)i * L + j] * qkv[(size_t)j * 3 * D + 2 * D + h * Dh + d];
                    o[(size_t)i * D + h * Dh + d] = num / den;
                }
            }
        }
        for (int l = 0; l < L; l++) /* the output projection */
            for (int c = 0; c < D; c++) {
                double acc = bo ? bo[c] : 0;
                for (int i = 0; i < D; i++)
                    acc += (double)wo[(size_t)c * D + i] * o[(size_t)l * D + i];
                y[((size_t)b * L + l) * D + c] = acc;
            }
    }
    free(qkv), free(o), free(pq), free(pk), free(A);
    return moved;
}

/* Largest |y − ref| over the largest |ref|. */
static double rel_error(const float *y, const double *ref, size_t n) {
    double worst = 0, scale = 0;
    for (size_t k = 0; k < n; k++) {
        worst = fmax(worst, fabs((double)y[k] - ref[k]));
        scale = fmax(scale, fabs(ref[k]));
    }
    return worst / scale;
}

/* The mechanism's forward (evaluation, step 3 of seed 7, padding in row 1) against the naive
 * reference; returns the relative error and the rows the reference clamped or guarded. */
static double value_error(const char *name, const char *opts, const RefMap *rm, int M, int B, int L,
                          int D, int H, int *moved) {
    const int pad[3] = {0, L / 3, 2};
    Inst t;
    inst_init(&t, name, opts, B, L, D, H, pad, 23);
    const int si = tensor(&t, ".sigma"); /* RFA's learned scales start at 1: move them */
    if (si >= 0)
        for (size_t k = 0; k < t.pt.info[si].size; k++)
            t.params[t.pt.info[si].offset + k] = 1.0f + 0.5f * sinf(1.0f + (float)k);
    t.training = 0;
    inst_forward(&t);
    const size_t n = (size_t)B * L * D;
    double *ref = malloc(n * sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    const int mv = ref_forward(ref, &t, rm, M);
    if (moved) *moved = mv;
    const double err = rel_error(t.y, ref, n);
    free(ref);
    inst_free(&t);
    return err;
}

#define VALUE_TOL 1e-5 /* float32 kernels against a double reference */

static void check_value(const char *name, const char *opts, const RefMap *rm, int M, int B, int L,
                        int D, int H) {
    const double err = value_error(name, opts, rm, M, B, L, D, H, NULL);
    ck_assert_msg(err <= VALUE_TOL, "%s(%s) B=%d L=%d D=%d H=%d: relative error %g > %g", name,
                  opts ? opts : "", B, L, D, H, err, VALUE_TOL);
}

START_TEST(test_linear_equals_naive_elu1_attention_with_eps_1e6) {
    check_value("linear", NULL, &REF_LINEAR, 4, 2, 13, 8, 2);
    check_value("linear", "bias=true", &REF_LINEAR, 2, 3, 11, 6, 3);
    check_value("linear", NULL, &REF_LINEAR, 4, 1, 600, 8, 2);
}
END_TEST

/* The causal form against the explicit L×L masked matrix: at lengths within one chunk, at a
 * multiple of the chunk (LINATTN_CHUNK = 128: 256, two chunks) and across five chunks whose last
 * is partial (600 = 4·128 + 88), with padding in the batch's later rows. */
START_TEST(test_linear_causal_equals_naive_lower_triangular_elu1_attention) {
    check_value("linear", "causal=true", &REF_LINEAR_CAUSAL, 4, 2, 13, 8, 2);
    check_value("linear", "causal=true,bias=true", &REF_LINEAR_CAUSAL, 2, 3, 11, 6, 3);
    check_value("linear", "causal=true", &REF_LINEAR_CAUSAL, 4, 2, 256, 8, 2);
    check_value("linear", "causal=true", &REF_LINEAR_CAUSAL, 4, 1, 600, 8, 2);
    check_value("linear", "causal=true,bias=true", &REF_LINEAR_CAUSAL, 8, 3, 300, 16, 2);
}
END_TEST

/* ... and it is not the bidirectional form: the reference without the mask is far from it. */
START_TEST(test_linear_causal_differs_from_the_bidirectional_reference) {
    const double err = value_error("linear", "causal=true", &REF_LINEAR, 4, 1, 300, 8, 2, NULL);
    ck_assert_msg(err > 1e-2, "causal linear within %g of the bidirectional reference", err);
}
END_TEST

/* Heads are the parallel unit and each head's sums run in a fixed order: one thread and two give
 * the same outputs and gradients, bit for bit. */
START_TEST(test_linear_causal_same_bits_for_any_thread_count) {
    const int B = 2, L = 300, D = 8, H = 2, pad[2] = {0, 37};
    const int nt[2] = {1, XB_MAX(2, omp_get_max_threads())};
    const int saved = omp_get_max_threads();
    Inst t[2];
    for (int v = 0; v < 2; v++) {
        omp_set_num_threads(nt[v]); /* before the plan: scratch is sized per thread */
        inst_init(&t[v], "linear", "causal=true", B, L, D, H, pad, 4);
        inst_forward(&t[v]);
        inst_backward(&t[v]);
        omp_set_num_threads(saved);
    }
    const size_t n = (size_t)B * L * D;
    ck_assert_int_eq(memcmp(t[0].y, t[1].y, n * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(t[0].dx, t[1].dx, n * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(t[0].grads, t[1].grads, t[0].pt.total * sizeof(float)), 0);
    inst_free(&t[0]);
    inst_free(&t[1]);
}
END_TEST

START_TEST(test_performer_softmax_equals_naive_favor_with_the_authors_guard) {
    check_value("performer", "features=16", &REF_FAVOR, 16, 2, 13, 8, 2);
    check_value("performer", "features=7,orthogonal=false,bias=true", &REF_FAVOR, 7, 3, 11, 6, 3);
    check_value("performer", "features=16", &REF_FAVOR, 16, 1, 600, 8, 2);
}
END_TEST

START_TEST(test_performer_relu_is_the_papers_relu_of_projections_over_sqrt_m_plus_1e3) {
    check_value("performer", "features=12,kernel=relu", &REF_RELU, 12, 2, 13, 8, 2);
    check_value("performer", "features=9,kernel=relu,orthogonal=false,bias=true", &REF_RELU, 9, 3,
                11, 6, 3);
    check_value("performer", "features=12,kernel=relu", &REF_RELU, 12, 1, 600, 8, 2);
}
END_TEST

START_TEST(test_performer_relu_lra_is_relu_of_raw_queries_and_keys_plus_1e3) {
    check_value("performer", "kernel=relu_lra", &REF_RELU_LRA, 4, 2, 13, 8, 2);
    check_value("performer", "kernel=relu_lra,bias=true", &REF_RELU_LRA, 2, 3, 11, 6, 3);
    check_value("performer", "kernel=relu_lra", &REF_RELU_LRA, 4, 1, 600, 8, 2);
}
END_TEST

START_TEST(test_rfa_equals_naive_sincos_attention_of_normalised_q_k_with_clamp) {
    int moved = 0, total = 0;
    const double e1 = value_error("rfa", "features=6", &REF_RFA, 12, 2, 13, 8, 2, &moved);
    total += moved;
    const double e2 = value_error("rfa", "features=3,bias=true", &REF_RFA, 6, 3, 11, 6, 3, &moved);
    total += moved;
    const double e3 = value_error("rfa", "features=6", &REF_RFA, 12, 1, 600, 8, 2, &moved);
    total += moved;
    const double e4 = value_error("rfa", "features=4,learned_sigma=false", &REF_RFA, 8, 2, 13, 8, 2,
                                  &moved); /* σ = 1: no .sigma tensor */
    total += moved;
    ck_assert_msg(e1 <= VALUE_TOL && e2 <= VALUE_TOL && e3 <= VALUE_TOL && e4 <= VALUE_TOL,
                  "rfa: relative errors %g, %g, %g, %g > %g", e1, e2, e3, e4, VALUE_TOL);
    /* the short rows have small sums Σ_j φ(q)·φ(k_j) = 0.01·Σ cos: the clamp acted */
    ck_assert_msg(total > 0, "no denominator reached the clamp: the test misses it");
}
END_TEST

/* Σ_k dy_k·ref_k at t's current inputs and parameters. */
static double ref_loss(const Inst *t, const RefMap *rm, int M, double *ref) {
    ref_forward(ref, t, rm, M);
    double f = 0;
    for (size_t k = 0; k < (size_t)t->B * t->L * t->D; k++) f += t->dy[k] * ref[k];
    return f;
}

/* g (n) against central differences of the double reference: `count` evenly spaced elements of
 * buf are moved by ±h in float (the quotient uses the float steps actually taken). */
static void check_ref_derivative(Inst *t, const RefMap *rm, int M, float *buf, const float *g,
                                 size_t n, int count, double h, const char *what) {
    double *ref = malloc((size_t)t->B * t->L * t->D * sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    for (int c = 0; c < count; c++) {
        const size_t k = (size_t)c * n / (size_t)count;
        const float v = buf[k];
        buf[k] = (float)(v + h);
        const double up = buf[k], fp = ref_loss(t, rm, M, ref);
        buf[k] = (float)(v - h);
        const double dn = buf[k], fm = ref_loss(t, rm, M, ref);
        buf[k] = v;
        const double num = (fp - fm) / (up - dn);
        ck_assert_msg(fabs(g[k] - num) <= 1e-3 * (1 + fabs(num)),
                      "%s element %zu: analytic %.7g, the reference's derivative %.7g", what, k,
                      (double)g[k], num);
    }
    free(ref);
}

/* The backward is the derivative of the reference, for the ReLU kernels at three key tiles. The
 * generic check's step h = 1e-2 is too coarse there: with Dh = 4 raw features (relu_lra) some
 * query has one small active feature, and moving it by ~h moves its denominator near zero. The
 * reference in double allows a step below the distance to the nearest ReLU kink (1e-4 already
 * crosses one in these configurations; 1e-5 does not). */
#define REF_H 1e-5
static void check_gradients_against_reference(const char *opts, const RefMap *rm, int M) {
    Inst t;
    inst_init(&t, "performer", opts, 1, 600, 8, 2, NULL, 29);
    t.training = 0;
    inst_forward(&t);
    inst_backward(&t);
    char what[256];
    snprintf(what, sizeof what, "performer(%s) dx", opts);
    check_ref_derivative(&t, rm, M, t.x, t.dx, (size_t)600 * 8, 12, REF_H, what);
    for (int i = 0; i < t.pt.n; i++) {
        const ParamInfo *p = &t.pt.info[i];
        snprintf(what, sizeof what, "performer(%s) %s", opts, p->name);
        check_ref_derivative(&t, rm, M, t.params + p->offset, t.grads + p->offset, p->size, 12,
                             REF_H, what);
    }
    inst_free(&t);
}

START_TEST(test_performer_relu_kernels_backward_is_the_references_derivative_at_600) {
    check_gradients_against_reference("kernel=relu_lra", &REF_RELU_LRA, 4);
    check_gradients_against_reference("features=12,kernel=relu", &REF_RELU, 12);
}
END_TEST

/* The causal backward's gradients against the double reference's derivative at a finer step than
 * the generic check's h = 1e-2, across five chunks. */
START_TEST(test_linear_causal_backward_is_the_references_derivative_at_600) {
    Inst t;
    inst_init(&t, "linear", "causal=true", 1, 600, 8, 2, NULL, 29);
    t.training = 0;
    inst_forward(&t);
    inst_backward(&t);
    check_ref_derivative(&t, &REF_LINEAR_CAUSAL, 4, t.x, t.dx, (size_t)600 * 8, 12, 1e-3,
                         "linear(causal=true) dx");
    for (int i = 0; i < t.pt.n; i++) {
        const ParamInfo *p = &t.pt.info[i];
        check_ref_derivative(&t, &REF_LINEAR_CAUSAL, 4, t.params + p->offset, t.grads + p->offset,
                             p->size, 12, 1e-3, p->name);
    }
    inst_free(&t);
}
END_TEST

START_TEST(test_performer_error_against_softmax_falls_as_features_grow) {
    const int M[4] = {4, 32, 256, 2048};
    double mean[4];
    g_xscale = 0.5f;
    for (int i = 0; i < 4; i++) {
        char opts[64];
        snprintf(opts, sizeof opts, "features=%d", M[i]);
        double worst;
        error_vs_full("performer", opts, NULL, 1, 40, 8, 2, &worst, &mean[i]);
    }
    g_xscale = 1.0f;
    for (int i = 1; i < 4; i++)
        ck_assert_msg(mean[i] < mean[i - 1], "error with %d features (%g) is not below %d's (%g)",
                      M[i], mean[i], M[i - 1], mean[i - 1]);
    ck_assert_msg(mean[3] < 0.25 * mean[0], "2048 features: %g, 4 features: %g", mean[3], mean[0]);
}
END_TEST

/* What the fused kernel (kernels/linear_attn.h) stores per position: the projections Q, K, V and
 * the attention output (4·D floats), the features φ(Q) and φ(K) (2·H·M), a denominator, a byte of
 * clamp and a query stabiliser's index per head, and for the ReLU kernels their active sets (2·H·M
 * bytes); the backward's scratch per position is d(att) and d(qkv) alone (4·D floats). Measured as
 * the growth of the plans from L = 300 to 600, so nothing else of size L·M (projections beside φ,
 * dφ, the stabilisers' du) is stored. */
START_TEST(test_kernel_mechanisms_store_only_features_per_position) {
    const struct {
        const char *name, *opts;
        int M, relu;
    } cases[] = {{"performer", "features=64", 64, 0},
                 {"performer", "features=40,kernel=relu", 40, 1},
                 {"performer", "kernel=relu_lra", 8, 1},
                 {"linear", NULL, 8, 0},
                 {"linear", "causal=true", 8, 0}};
    const int B = 2, D = 16, H = 2;
    for (size_t c = 0; c < XB_ARRAY_LEN(cases); c++) {
        Inst a, b;
        inst_init(&a, cases[c].name, cases[c].opts, B, 300, D, H, NULL, 1);
        inst_init(&b, cases[c].name, cases[c].opts, B, 600, D, H, NULL, 1);
        const size_t per_pos = (size_t)B * ((4 * (size_t)D + 2 * (size_t)H * cases[c].M) * 4 +
                                            (size_t)H * (4 + 1 + 4) +
                                            (cases[c].relu ? 2 * (size_t)H * cases[c].M : 0));
        const size_t acts = b.acts.cap - a.acts.cap, scratch = b.scratch.cap - a.scratch.cap;
        ck_assert_msg(acts <= 300 * per_pos + 1024,
                      "%s(%s): activations grow by %zu for 300 positions, at most %zu",
                      cases[c].name, cases[c].opts, acts, 300 * per_pos + 1024);
        ck_assert_msg(scratch <= 300 * (size_t)B * 4 * D * 4 + 1024,
                      "%s(%s): scratch grows by %zu for 300 positions, at most %zu", cases[c].name,
                      cases[c].opts, scratch, 300 * (size_t)B * 4 * D * 4 + 1024);
        inst_free(&a);
        inst_free(&b);
    }
}
END_TEST

static Suite *mixers_kernels_suite(void) {
    Suite *s = suite_create("mixers_kernels");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_linear_equals_naive_elu1_attention_with_eps_1e6);
    tcase_add_test(tc, test_linear_causal_equals_naive_lower_triangular_elu1_attention);
    tcase_add_test(tc, test_linear_causal_differs_from_the_bidirectional_reference);
    tcase_add_test(tc, test_linear_causal_backward_is_the_references_derivative_at_600);
    tcase_add_test(tc, test_linear_causal_same_bits_for_any_thread_count);
    tcase_add_test(tc, test_performer_softmax_equals_naive_favor_with_the_authors_guard);
    tcase_add_test(tc, test_performer_relu_is_the_papers_relu_of_projections_over_sqrt_m_plus_1e3);
    tcase_add_test(tc, test_performer_relu_lra_is_relu_of_raw_queries_and_keys_plus_1e3);
    tcase_add_test(tc, test_rfa_equals_naive_sincos_attention_of_normalised_q_k_with_clamp);
    tcase_add_test(tc, test_performer_relu_kernels_backward_is_the_references_derivative_at_600);
    tcase_add_test(tc, test_performer_error_against_softmax_falls_as_features_grow);
    tcase_add_test(tc, test_kernel_mechanisms_store_only_features_per_position);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(mixers_kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
