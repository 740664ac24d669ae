/* Fused streaming attention against a materialised reference and finite differences. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "gradcheck.h"
#include "kernels/attention.h"
#include "kernels/attn_tile.h"

typedef struct Case {
    AttnShape s;
    float *q, *k, *v, *o, *lse, *dout;
    float *dq, *dk, *dv;
    unsigned char *mask; /* (B, Lk) or NULL */
    size_t nq, nk, no;
    Arena arena;
} Case;

/* Separate Q, K, V tensors of shape (B, L, H·Dh) and a padding mask that hides the last `pad[b]`
 * keys of batch row b. */
static void case_init(Case *c, int B, int H, int Lq, int Lk, int Dh, int causal, const int *pad,
                      uint64_t seed) {
    memset(c, 0, sizeof *c);
    const int D = H * Dh;
    c->s = attn_shape(B, H, Lq, Lk, Dh, D, D, D, D);
    c->s.causal = causal;
    c->nq = (size_t)B * Lq * D;
    c->nk = (size_t)B * Lk * D;
    c->no = c->nq;
    c->q = malloc(c->nq * sizeof(float));
    c->k = malloc(c->nk * sizeof(float));
    c->v = malloc(c->nk * sizeof(float));
    c->o = calloc(c->no, sizeof(float));
    c->dout = malloc(c->no * sizeof(float));
    c->lse = calloc((size_t)B * H * Lq, sizeof(float));
    c->dq = calloc(c->nq, sizeof(float));
    c->dk = calloc(c->nk, sizeof(float));
    c->dv = calloc(c->nk, sizeof(float));
    gc_fill_normal(c->q, c->nq, seed, 1.0f);
    gc_fill_normal(c->k, c->nk, seed + 1, 1.0f);
    gc_fill_normal(c->v, c->nk, seed + 2, 1.0f);
    gc_fill_normal(c->dout, c->no, seed + 3, 1.0f);
    if (pad) {
        c->mask = malloc((size_t)B * Lk);
        for (int b = 0; b < B; b++)
            for (int j = 0; j < Lk; j++) c->mask[(size_t)b * Lk + j] = j < Lk - pad[b];
    }
    ck_assert_int_eq(
        arena_init(&c->arena, attn_scratch_floats(&c->s, omp_get_max_threads()) * 4 + 4096), 0);
}

static void case_free(Case *c) {
    free(c->q), free(c->k), free(c->v), free(c->o), free(c->dout), free(c->lse);
    free(c->dq), free(c->dk), free(c->dv), free(c->mask);
    arena_destroy(&c->arena);
}

static void case_forward(void *ctx) {
    Case *c = ctx;
    attn_forward(c->o, c->lse, c->q, c->k, c->v, c->mask, &c->s, &c->arena);
}

static void case_backward(Case *c) {
    memset(c->dq, 0, c->nq * sizeof(float));
    memset(c->dk, 0, c->nk * sizeof(float));
    memset(c->dv, 0, c->nk * sizeof(float));
    attn_backward(c->dq, c->dk, c->dv, c->dout, c->q, c->k, c->v, c->o, c->lse, c->mask, &c->s,
                  &c->arena);
}

/* max |a - b| / (1 + |b|) */
static double max_rel(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(b[i]) && a[i] == b[i]) continue;
        double d = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
        if (!(d <= m)) m = d;
    }
    return m;
}

static void check_against_naive(int B, int H, int Lq, int Lk, int Dh, int causal, const int *pad) {
    Case c;
    case_init(&c, B, H, Lq, Lk, Dh, causal, pad, 11);
    case_forward(&c);
    float *o2 = calloc(c.no, sizeof(float)), *l2 = calloc((size_t)B * H * Lq, sizeof(float));
    attn_forward_naive(o2, l2, c.q, c.k, c.v, c.mask, &c.s);
    ck_assert_double_le(max_rel(c.o, o2, c.no), 2e-5);
    ck_assert_double_le(max_rel(c.lse, l2, (size_t)B * H * Lq), 2e-5);
    free(o2), free(l2);
    case_free(&c);
}

START_TEST(test_fused_equals_materialised_reference_across_tiles) {
    /* 600 keys span three key tiles (BK = 256) and 300 queries three query tiles (BQ = 128). */
    check_against_naive(2, 3, 300, 600, 8, 0, NULL);
    check_against_naive(1, 1, 1, 1, 4, 0, NULL);
}
END_TEST

START_TEST(test_fused_equals_reference_with_padding_mask) {
    const int pad[3] = {0, 17, 299};
    check_against_naive(3, 2, 77, 300, 8, 0, pad);
}
END_TEST

START_TEST(test_causal_equals_reference_including_rectangular) {
    check_against_naive(2, 2, 150, 150, 8, 1, NULL);
    const int pad[2] = {3, 40};
    check_against_naive(2, 2, 70, 330, 8, 1, pad); /* queries aligned to the last keys */
}
END_TEST

START_TEST(test_padding_keys_do_not_change_real_outputs) {
    const int pad[2] = {5, 130};
    Case c;
    case_init(&c, 2, 2, 40, 300, 8, 0, pad, 5);
    case_forward(&c);
    float *o1 = malloc(c.no * sizeof(float));
    memcpy(o1, c.o, c.no * sizeof(float));
    /* scribble over every padded key and value */
    const int D = 16;
    for (int b = 0; b < 2; b++)
        for (int j = 300 - pad[b]; j < 300; j++)
            for (int d = 0; d < D; d++) {
                c.k[((size_t)b * 300 + j) * D + d] = 1e3f * (float)(d + 1);
                c.v[((size_t)b * 300 + j) * D + d] = -7e2f;
            }
    case_forward(&c);
    ck_assert_int_eq(memcmp(o1, c.o, c.no * sizeof(float)), 0);
    /* and the gradient reaching padded keys and values is exactly zero */
    case_backward(&c);
    for (int b = 0; b < 2; b++)
        for (int j = 300 - pad[b]; j < 300; j++)
            for (int d = 0; d < D; d++) {
                ck_assert_float_eq(c.dk[((size_t)b * 300 + j) * D + d], 0.0f);
                ck_assert_float_eq(c.dv[((size_t)b * 300 + j) * D + d], 0.0f);
            }
    free(o1);
    case_free(&c);
}
END_TEST

START_TEST(test_row_without_visible_key_gives_zero_and_no_nan) {
    const int pad[2] = {9, 0};
    Case c;
    case_init(&c, 2, 1, 9, 9, 4, 0, pad, 3); /* batch row 0: every key is padding */
    case_forward(&c);
    for (int i = 0; i < 9; i++) {
        ck_assert(isinf(c.lse[i]) && c.lse[i] < 0);
        for (int d = 0; d < 4; d++) ck_assert_float_eq(c.o[(size_t)i * 4 + d], 0.0f);
    }
    case_backward(&c);
    for (size_t i = 0; i < c.nq; i++) ck_assert(isfinite(c.dq[i]));
    for (size_t i = 0; i < 9 * 4; i++) ck_assert_float_eq(c.dq[i], 0.0f);
    case_free(&c);
}
END_TEST

static void check_gradients(int B, int H, int Lq, int Lk, int Dh, int causal, const int *pad,
                            size_t max_check) {
    Case c;
    case_init(&c, B, H, Lq, Lk, Dh, causal, pad, 21);
    case_forward(&c);
    case_backward(&c);
    GcResult r;
    struct {
        float *x, *g;
        size_t n;
        const char *name;
    } t[3] = {{c.q, c.dq, c.nq, "dq"}, {c.k, c.dk, c.nk, "dk"}, {c.v, c.dv, c.nk, "dv"}};
    for (int i = 0; i < 3; i++) {
        int ok = gradcheck(case_forward, &c, t[i].x, t[i].n, t[i].g, c.o, c.no, c.dout, 1e-2, 2e-3,
                           2e-2, max_check, &r);
        GC_ASSERT(ok, t[i].name, &r);
    }
    case_free(&c);
}

START_TEST(test_backward_matches_finite_differences) {
    const int pad[2] = {0, 6};
    check_gradients(2, 2, 13, 13, 4, 0, pad, 100000);
}
END_TEST

START_TEST(test_backward_matches_finite_differences_causal_rectangular) {
    const int pad[2] = {2, 0};
    check_gradients(2, 1, 9, 14, 4, 1, pad, 100000);
}
END_TEST

START_TEST(test_backward_matches_finite_differences_across_tiles) {
    const int pad[1] = {31};
    check_gradients(1, 2, 150, 270, 4, 0, pad, 400); /* two query and two key tiles */
}
END_TEST

/* A pattern with everything a mechanism may use: 16-row query tiles, two key ranges per tile
 * (a window around the tile and the last 10 keys), and an element mask inside them. */
static int test_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    const int Lk = s->Lk;
    (void)b;
    int n = 0;
    lo[n] = XB_MAX(0, i0 - 20 - 3 * h), hi[n] = XB_MIN(Lk, i0 + bq + 5);
    if (lo[n] < hi[n]) n++;
    const int tail = Lk - 10;
    if (n && hi[n - 1] >= tail) {
        hi[n - 1] = Lk;
    } else {
        lo[n] = tail, hi[n] = Lk;
        n++;
    }
    return n;
}
static void test_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk, float *bias,
                      int ld) {
    (void)s;
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++)
            bias[(size_t)r * ld + c] =
                ((i0 + r) * 7 + (j0 + c) + b + h) % 5 == 0 ? -INFINITY : 0.0f;
}

static void with_pattern(Case *c, const AttnPattern *p) {
    c->s.pattern = p;
    arena_destroy(&c->arena);
    ck_assert_int_eq(
        arena_init(&c->arena, attn_scratch_floats(&c->s, omp_get_max_threads()) * 4 + 4096), 0);
}

START_TEST(test_block_sparse_pattern_equals_reference_gradients_and_flops) {
    const AttnPattern pat = {.bq = 16, .max_ranges = 2, .ranges = test_ranges, .mask = test_mask};
    const int pad[2] = {0, 7};
    Case c;
    case_init(&c, 2, 2, 70, 90, 4, 0, pad, 13);
    with_pattern(&c, &pat);
    flops_reset();
    case_forward(&c);
    ck_assert_uint_eq(flops_counted(), attn_flops(&c.s, 0));
    ck_assert_uint_lt(flops_counted(), 4ull * 2 * 2 * 70 * 90 * 4); /* sparser than dense */
    float *o2 = calloc(c.no, sizeof(float)), *l2 = calloc(2 * 2 * 70, sizeof(float));
    attn_forward_naive(o2, l2, c.q, c.k, c.v, c.mask, &c.s);
    ck_assert_double_le(max_rel(c.o, o2, c.no), 2e-5);
    ck_assert_double_le(max_rel(c.lse, l2, 2 * 2 * 70), 2e-5);
    free(o2), free(l2);
    flops_reset();
    case_backward(&c);
    ck_assert_uint_eq(flops_counted(), attn_flops(&c.s, 1));
    GcResult r;
    struct {
        float *x, *g;
        size_t n;
        const char *name;
    } t[3] = {{c.q, c.dq, c.nq, "dq"}, {c.k, c.dk, c.nk, "dk"}, {c.v, c.dv, c.nk, "dv"}};
    for (int i = 0; i < 3; i++) {
        int ok = gradcheck(case_forward, &c, t[i].x, t[i].n, t[i].g, c.o, c.no, c.dout, 1e-2, 2e-3,
                           2e-2, 300, &r);
        GC_ASSERT(ok, t[i].name, &r);
    }
    case_free(&c);
}
END_TEST

START_TEST(test_counted_flops_equal_analytic) {
    Case c;
    case_init(&c, 2, 3, 130, 300, 8, 0, NULL, 1);
    flops_reset();
    case_forward(&c);
    ck_assert_uint_eq(flops_counted(), 4ull * 2 * 3 * 130 * 300 * 8);
    ck_assert_uint_eq(flops_counted(), attn_flops(&c.s, 0));
    flops_reset();
    case_backward(&c);
    ck_assert_uint_eq(flops_counted(), 10ull * 2 * 3 * 130 * 300 * 8);
    case_free(&c);
    /* causal skips whole tiles above the diagonal, in both the count and the work */
    case_init(&c, 1, 1, 600, 600, 8, 1, NULL, 1);
    ck_assert_uint_lt(attn_flops(&c.s, 0), 4ull * 600 * 600 * 8);
    flops_reset();
    case_forward(&c);
    case_backward(&c);
    ck_assert_uint_eq(flops_counted(), attn_flops(&c.s, 0) + attn_flops(&c.s, 1));
    case_free(&c);
}
END_TEST

START_TEST(test_same_bits_for_one_and_two_threads) {
    const int pad[2] = {0, 50};
    float *ref[4];
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        Case c;
        case_init(&c, 2, 2, 200, 300, 8, 0, pad, 8);
        case_forward(&c);
        case_backward(&c);
        float *bufs[4] = {c.o, c.dq, c.dk, c.dv};
        size_t ns[4] = {c.no, c.nq, c.nk, c.nk};
        for (int i = 0; i < 4; i++) {
            if (t == 1) {
                ref[i] = malloc(ns[i] * sizeof(float));
                memcpy(ref[i], bufs[i], ns[i] * sizeof(float));
            } else {
                ck_assert_int_eq(memcmp(ref[i], bufs[i], ns[i] * sizeof(float)), 0);
                free(ref[i]);
            }
        }
        case_free(&c);
    }
}
END_TEST

/* Query/key heads of width 3 and value heads of width 5, with the log-sum-exp carrying a gradient
 * of its own (what Reformer's rounds need): out = [o, lse] against the reference and finite
 * differences, and the counted FLOPs equal the analytic count. */
typedef struct WideCase {
    AttnShape s;
    float *q, *k, *v, *out, *dout, *dq, *dk, *dv;
    unsigned char *mask;
    size_t nq, nk, nv, no, nl;
    Arena arena;
} WideCase;

static void wide_forward(void *ctx) {
    WideCase *c = ctx;
    attn_forward(c->out, c->out + c->no, c->q, c->k, c->v, c->mask, &c->s, &c->arena);
}

START_TEST(test_value_width_and_lse_gradient) {
    const int B = 2, H = 2, Lq = 11, Lk = 14, Dh = 3, Dv = 5;
    WideCase c;
    memset(&c, 0, sizeof c);
    c.s = attn_shape(B, H, Lq, Lk, Dh, H * Dh, H * Dh, H * Dv, H * Dv);
    c.s.Dv = Dv;
    c.nq = (size_t)B * Lq * H * Dh, c.nk = (size_t)B * Lk * H * Dh, c.nv = (size_t)B * Lk * H * Dv;
    c.no = (size_t)B * Lq * H * Dv, c.nl = (size_t)B * H * Lq;
    c.q = malloc(c.nq * sizeof(float)), c.k = malloc(c.nk * sizeof(float));
    c.v = malloc(c.nv * sizeof(float));
    c.out = calloc(c.no + c.nl, sizeof(float)), c.dout = malloc((c.no + c.nl) * sizeof(float));
    c.dq = calloc(c.nq, sizeof(float)), c.dk = calloc(c.nk, sizeof(float));
    c.dv = calloc(c.nv, sizeof(float));
    gc_fill_normal(c.q, c.nq, 41, 1.0f);
    gc_fill_normal(c.k, c.nk, 42, 1.0f);
    gc_fill_normal(c.v, c.nv, 43, 1.0f);
    gc_fill_normal(c.dout, c.no + c.nl, 44, 1.0f);
    c.mask = malloc((size_t)B * Lk);
    for (int j = 0; j < B * Lk; j++) c.mask[j] = j < B * Lk - 4;
    ck_assert_int_eq(
        arena_init(&c.arena, attn_scratch_floats(&c.s, omp_get_max_threads()) * 4 + 4096), 0);
    flops_reset();
    wide_forward(&c);
    ck_assert_uint_eq(flops_counted(), attn_flops(&c.s, 0));
    float *o2 = calloc(c.no, sizeof(float)), *l2 = calloc(c.nl, sizeof(float));
    attn_forward_naive(o2, l2, c.q, c.k, c.v, c.mask, &c.s);
    ck_assert_double_le(max_rel(c.out, o2, c.no), 2e-5);
    ck_assert_double_le(max_rel(c.out + c.no, l2, c.nl), 2e-5);
    flops_reset();
    attn_backward_lse(c.dq, c.dk, c.dv, c.dout, c.dout + c.no, c.q, c.k, c.v, c.out, c.out + c.no,
                      c.mask, &c.s, &c.arena);
    ck_assert_uint_eq(flops_counted(), attn_flops(&c.s, 1));
    GcResult r;
    struct {
        float *x, *g;
        size_t n;
        const char *name;
    } t[3] = {{c.q, c.dq, c.nq, "dq"}, {c.k, c.dk, c.nk, "dk"}, {c.v, c.dv, c.nv, "dv"}};
    for (int i = 0; i < 3; i++) {
        int ok = gradcheck(wide_forward, &c, t[i].x, t[i].n, t[i].g, c.out, c.no + c.nl, c.dout,
                           1e-2, 2e-3, 2e-2, 100000, &r);
        GC_ASSERT(ok, t[i].name, &r);
    }
    free(o2), free(l2), free(c.q), free(c.k), free(c.v), free(c.out), free(c.dout);
    free(c.dq), free(c.dk), free(c.dv), free(c.mask);
    arena_destroy(&c.arena);
}
END_TEST

/* The tile kernels of both implementations against double-precision references, at sizes around
 * their register tiles (6 rows, 16 columns, 8 lanes) and with strides wider than the rows. */
static double tile_err(double got, double want) { return fabs(got - want) / (1.0 + fabs(want)); }

static void check_tiles(int m, int n, int k) {
    const int np = attn_tile_cols(n), lda = k + 3, ldb = k + 1, ldc = np + 16;
    float *a = malloc((size_t)m * lda * sizeof(float)),
          *b = malloc((size_t)n * ldb * sizeof(float));
    float *bt = malloc((size_t)np * k * sizeof(float)), *rb = malloc((size_t)m * sizeof(float));
    float *c = malloc((size_t)m * ldc * sizeof(float)),
          *e = malloc((size_t)m * ldc * sizeof(float));
    float *cs = malloc((size_t)np * sizeof(float)), *cm = malloc((size_t)np * sizeof(float));
    gc_fill_normal(a, (size_t)m * lda, 101, 1.0f);
    gc_fill_normal(b, (size_t)n * ldb, 102, 1.0f);
    gc_fill_normal(rb, (size_t)m, 103, 1.0f);
    gc_fill_normal(e, (size_t)m * ldc, 104, 1.0f);
    gc_fill_normal(cs, (size_t)np, 105, 1.0f);
    attn_tile_pack(bt, b, ldb, n, k, 0.7f);
    for (int j = 0; j < np; j++) cm[j] = -INFINITY;
    /* scores of the packed 0.7·Bᵀ: C = 0.7·A·Bᵀ + rowbias, column maxima; padding columns are the
     * bias alone */
    attn_tile_scores(c, ldc, a, lda, bt, m, n, k, rb, cm);
    double worst = 0.0;
    for (int j = 0; j < np; j++) {
        double mx = -INFINITY;
        for (int i = 0; i < m; i++) {
            double dot = 0.0;
            for (int d = 0; d < k && j < n; d++)
                dot += (double)a[(size_t)i * lda + d] * b[(size_t)j * ldb + d];
            const double want = 0.7 * dot + rb[i];
            worst = fmax(worst, tile_err(c[(size_t)i * ldc + j], want));
            mx = fmax(mx, c[(size_t)i * ldc + j]);
        }
        ck_assert_float_eq(cm[j], (float)mx);
    }
    ck_assert_double_le(worst, 1e-5);
    /* dscores: C = E ∘ (A·Bᵀ − colsub) */
    attn_tile_pack(bt, b, ldb, n, k, 1.0f);
    attn_tile_dscores(c, ldc, a, lda, bt, m, n, k, e, cs);
    worst = 0.0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double dot = 0.0;
            for (int d = 0; d < k; d++)
                dot += (double)a[(size_t)i * lda + d] * b[(size_t)j * ldb + d];
            worst = fmax(worst,
                         tile_err(c[(size_t)i * ldc + j], e[(size_t)i * ldc + j] * (dot - cs[j])));
        }
    ck_assert_double_le(worst, 1e-5);
    /* acc, A as stored and transposed: C += 0.5·A·B over kk = k, columns past n untouched */
    for (int tr = 0; tr < 2; tr++) {
        const int ars = tr ? 1 : lda, acs = tr ? lda : 1; /* tr: A(i, t) = a[t·lda + i], m <= k */
        const int mm = tr ? XB_MIN(m, k) : m, kk = tr ? XB_MIN(m, k) : k;
        float *bb = malloc((size_t)kk * (n + 5) * sizeof(float));
        gc_fill_normal(bb, (size_t)kk * (n + 5), 106, 1.0f);
        float *c0 = malloc((size_t)mm * ldc * sizeof(float));
        gc_fill_normal(c0, (size_t)mm * ldc, 107, 1.0f);
        memcpy(c, c0, (size_t)mm * ldc * sizeof(float));
        attn_tile_acc(c, ldc, a, ars, acs, bb, n + 5, mm, n, kk, 0.5f);
        worst = 0.0;
        for (int i = 0; i < mm; i++)
            for (int j = 0; j < ldc; j++) {
                if (j >= n) {
                    ck_assert_float_eq(c[(size_t)i * ldc + j], c0[(size_t)i * ldc + j]);
                    continue;
                }
                double dot = 0.0;
                for (int t = 0; t < kk; t++)
                    dot +=
                        (double)a[(size_t)i * ars + (size_t)t * acs] * bb[(size_t)t * (n + 5) + j];
                worst = fmax(worst,
                             tile_err(c[(size_t)i * ldc + j], c0[(size_t)i * ldc + j] + 0.5 * dot));
            }
        ck_assert_double_le(worst, 1e-5);
        free(bb), free(c0);
    }
    /* 2^x with column sums in row order; −inf gives 0, NaN stays NaN */
    for (int i = 0; i < m; i++)
        for (int j = 0; j < np; j++)
            c[(size_t)i * ldc + j] = (i + j) % 7 == 3 ? -INFINITY : e[(size_t)i * ldc + j];
    attn_tile_exp2(c, ldc, m, np, cs, cm);
    float nan[8] = {NAN, 0.0f, -INFINITY, 1.0f, -127.0f, 126.5f, -125.7f, NAN}, zero[8] = {0};
    attn_tile_exp2(nan, 8, 1, 8, zero, NULL);
    ck_assert(isnan(nan[0]) && isnan(nan[7]) && isnan(attn_tile_exp2f(NAN)));
    ck_assert_float_eq(nan[2], 0.0f);
    ck_assert_float_eq(nan[4], 0.0f);
    ck_assert_float_eq(nan[1], 1.0f);
    ck_assert_double_le(tile_err(nan[3], 2.0), 1e-6);
    ck_assert_double_le(fabs(nan[5] / exp2(126.5) - 1.0), 1e-6);
    ck_assert_double_le(fabs(nan[6] / exp2((double)-125.7f) - 1.0), 1e-6);
    for (double x = -126.0; x <= 127.0; x += 0.37) /* the scalar twin, over the whole range */
        ck_assert_double_le(fabs(attn_tile_exp2f((float)x) / exp2((float)x) - 1.0), 3e-7);
    for (int j = 0; j < np; j++) {
        double sum = 0.0;
        for (int i = 0; i < m; i++) {
            const double x = (i + j) % 7 == 3 ? -INFINITY : (double)e[(size_t)i * ldc + j] - cs[j];
            ck_assert_double_le(tile_err(c[(size_t)i * ldc + j], exp2(x)), 1e-6);
            sum += c[(size_t)i * ldc + j];
        }
        ck_assert_double_le(tile_err(cm[j], sum), 1e-6);
    }
    free(a), free(b), free(bt), free(rb), free(c), free(e), free(cs), free(cm);
}

static void check_all_tiles(void) {
    const int ms[] = {1, 5, 6, 7, 13, 40}, ns[] = {1, 3, 8, 15, 16, 17, 40},
              ks[] = {1, 3, 8, 32, 33};
    for (size_t i = 0; i < XB_ARRAY_LEN(ms); i++)
        for (size_t j = 0; j < XB_ARRAY_LEN(ns); j++)
            for (size_t l = 0; l < XB_ARRAY_LEN(ks); l++) check_tiles(ms[i], ns[j], ks[l]);
}

START_TEST(test_tile_kernels_equal_double_reference) {
    check_all_tiles(); /* the implementation this CPU runs */
    attn_tile_force_portable(1);
    check_all_tiles();
    attn_tile_force_portable(0);
}
END_TEST

/* The portable tiles through the whole kernel: reference, padding, causal, a pattern with a mask,
 * finite differences (the AVX2 path is what the other tests see on a machine that has it). */
START_TEST(test_portable_tiles_equal_reference_and_gradients) {
    attn_tile_force_portable(1);
    ck_assert_int_eq(attn_tile_uses_avx2(), 0);
    check_against_naive(2, 3, 300, 600, 8, 0, NULL);
    const int pad[3] = {0, 17, 299};
    check_against_naive(3, 2, 77, 300, 8, 0, pad);
    check_against_naive(2, 2, 70, 330, 8, 1, pad);
    check_gradients(2, 2, 13, 13, 4, 0, pad, 100000);
    check_gradients(2, 1, 9, 14, 4, 1, pad, 100000);
    attn_tile_force_portable(0);
}
END_TEST

/* A pattern's mask may add finite values (Reformer's −1e5 self logit and −log count): softmax of
 * scale·q·k + bias over the allowed keys, against a double-precision reference, with the
 * gradients against finite differences. */
static void finite_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk,
                        float *bias, int ld) {
    (void)s;
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++) {
            const int i = i0 + r, j = j0 + c;
            bias[(size_t)r * ld + c] = (i + 2 * j + b + h) % 7 == 0 ? -INFINITY
                                       : i == j                     ? -3.0f
                                                                    : -0.25f * (float)((i + j) % 4);
        }
}
static int all_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h, (void)i0, (void)bq;
    lo[0] = 0, hi[0] = s->Lk;
    return 1;
}

START_TEST(test_finite_pattern_mask_is_added_to_the_scores) {
    const AttnPattern pat = {.bq = 32, .max_ranges = 1, .ranges = all_ranges, .mask = finite_mask};
    const int B = 2, H = 2, Lq = 70, Lk = 300, Dh = 4, D = H * Dh, pad[2] = {0, 9};
    Case c;
    case_init(&c, B, H, Lq, Lk, Dh, 0, pad, 17);
    with_pattern(&c, &pat);
    case_forward(&c);
    double worst = 0.0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Lq; i++) {
                double sc[300], mx = -INFINITY, sum = 0.0;
                float row[300];
                finite_mask(&c.s, b, h, i, 1, 0, Lk, row, Lk);
                for (int j = 0; j < Lk; j++) {
                    double dot = 0.0;
                    for (int d = 0; d < Dh; d++)
                        dot += (double)c.q[((size_t)b * Lq + i) * D + h * Dh + d] *
                               c.k[((size_t)b * Lk + j) * D + h * Dh + d];
                    sc[j] = c.mask[(size_t)b * Lk + j] ? dot / sqrt(Dh) + row[j] : -INFINITY;
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j < Lk; j++) sum += sc[j] == -INFINITY ? 0.0 : exp(sc[j] - mx);
                for (int d = 0; d < Dh; d++) {
                    double o = 0.0;
                    for (int j = 0; j < Lk; j++)
                        if (sc[j] != -INFINITY)
                            o += exp(sc[j] - mx) / sum * c.v[((size_t)b * Lk + j) * D + h * Dh + d];
                    worst = fmax(worst, fabs(c.o[((size_t)b * Lq + i) * D + h * Dh + d] - o) /
                                            (1.0 + fabs(o)));
                }
                const double lse = mx + log(sum);
                worst = fmax(worst,
                             fabs(c.lse[((size_t)b * H + h) * Lq + i] - lse) / (1.0 + fabs(lse)));
            }
    ck_assert_double_le(worst, 2e-5);
    case_backward(&c);
    GcResult r;
    struct {
        float *x, *g;
        size_t n;
        const char *name;
    } t[3] = {{c.q, c.dq, c.nq, "dq"}, {c.k, c.dk, c.nk, "dk"}, {c.v, c.dv, c.nk, "dv"}};
    for (int i = 0; i < 3; i++) {
        int ok = gradcheck(case_forward, &c, t[i].x, t[i].n, t[i].g, c.o, c.no, c.dout, 1e-2, 2e-3,
                           2e-2, 300, &r);
        GC_ASSERT(ok, t[i].name, &r);
    }
    case_free(&c);
}
END_TEST

static Suite *attention_suite(void) {
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("fused");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fused_equals_materialised_reference_across_tiles);
    tcase_add_test(tc, test_fused_equals_reference_with_padding_mask);
    tcase_add_test(tc, test_causal_equals_reference_including_rectangular);
    tcase_add_test(tc, test_padding_keys_do_not_change_real_outputs);
    tcase_add_test(tc, test_row_without_visible_key_gives_zero_and_no_nan);
    tcase_add_test(tc, test_backward_matches_finite_differences);
    tcase_add_test(tc, test_backward_matches_finite_differences_causal_rectangular);
    tcase_add_test(tc, test_backward_matches_finite_differences_across_tiles);
    tcase_add_test(tc, test_counted_flops_equal_analytic);
    tcase_add_test(tc, test_block_sparse_pattern_equals_reference_gradients_and_flops);
    tcase_add_test(tc, test_same_bits_for_one_and_two_threads);
    tcase_add_test(tc, test_value_width_and_lse_gradient);
    tcase_add_test(tc, test_tile_kernels_equal_double_reference);
    tcase_add_test(tc, test_portable_tiles_equal_reference_and_gradients);
    tcase_add_test(tc, test_finite_pattern_mask_is_added_to_the_scores);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(attention_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
