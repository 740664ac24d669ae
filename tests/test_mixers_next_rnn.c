/* The recurrent mechanisms after the survey: mamba (selective scan), rwkv (WKV), retnet
 * (retention). Each kernel against a naive loop or sum written here in double precision, its
 * backward against central differences of that reference; each mechanism against a naive double
 * implementation of its block from its own parameters; the chunkwise retention against the
 * parallel form; padding longer than the row; the authors' initialisations. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/rng.h"
#include "gradcheck.h"
#include "kernels/retention.h"
#include "kernels/selective_scan.h"
#include "kernels/wkv.h"
#include "mixer_harness.h"

/* ---- helpers ---- */

static float *param(Inst *t, const char *what) {
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "blocks.0.mixer.%s", what);
    const int i = params_find(&t->pt, name);
    return i < 0 ? NULL : t->params + t->pt.info[i].offset;
}

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

static void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    Rng r;
    rng_seed(&r, seed, RNG_STREAM_INIT);
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(&r);
}

static double softplus(double x) { return x > 30 ? x : log1p(exp(x)); }
static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double silu(double x) { return x * sigmoid(x); }

/* out (n, o) = in (n, i) · W (o, i)ᵀ + b, in double */
static void dlinear(double *out, const double *in, const float *W, const float *b, int n, int i,
                    int o) {
    for (int r = 0; r < n; r++)
        for (int c = 0; c < o; c++) {
            double s = b ? b[c] : 0.0;
            for (int k = 0; k < i; k++) s += in[(size_t)r * i + k] * W[(size_t)c * i + k];
            out[(size_t)r * o + c] = s;
        }
}

static Arena scratch_of(size_t floats) {
    Arena a;
    ck_assert_int_eq(arena_init(&a, floats * sizeof(float) + 4096), 0);
    return a;
}

/* Largest |got − ref| / (1 + |ref|). */
static double worst_rel(const float *got, const double *ref, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs(got[i] - ref[i]) / (1 + fabs(ref[i])));
    return w;
}

/* ---- selective scan ---- */

/* y (B, L, E) by the recurrence of selective_scan_ref, in double; scan order reversed when
 * `reverse`. */
static void naive_scan(double *y, const double *u, const double *delta, const double *A,
                       const double *Bm, const double *Cm, int ld, const double *Dk, int B, int L,
                       int E, int N, int reverse) {
    double *h = dalloc((size_t)N);
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++) {
            for (int n = 0; n < N; n++) h[n] = 0;
            for (int q = 0; q < L; q++) {
                const int t = reverse ? L - 1 - q : q;
                const size_t r = (size_t)b * L + t;
                const double d = delta[r * E + e], x = u[r * E + e];
                double acc = 0;
                for (int n = 0; n < N; n++) {
                    h[n] = exp(d * A[(size_t)e * N + n]) * h[n] + d * Bm[r * ld + n] * x;
                    acc += Cm[r * ld + n] * h[n];
                }
                y[r * E + e] = acc + Dk[e] * x;
            }
        }
    free(h);
}

typedef struct ScanCase {
    int B, L, E, N, chunk, reverse;
    float *u, *delta, *A, *bc, *D, *g; /* bc (B, L, 2N): B then C */
} ScanCase;

static ScanCase scan_case(int B, int L, int E, int N, int chunk, int reverse, uint64_t seed) {
    ScanCase c = {B, L, E, N, chunk, reverse, NULL, NULL, NULL, NULL, NULL, NULL};
    const size_t BLE = (size_t)B * L * E;
    c.u = malloc(BLE * sizeof(float)), c.delta = malloc(BLE * sizeof(float));
    c.A = malloc((size_t)E * N * sizeof(float)), c.D = malloc((size_t)E * sizeof(float));
    c.bc = malloc((size_t)B * L * 2 * N * sizeof(float)), c.g = malloc(BLE * sizeof(float));
    gc_fill_normal(c.u, BLE, seed, 1.0f);
    fill_uniform(c.delta, BLE, seed + 1, 0.01f, 0.6f);
    fill_uniform(c.A, (size_t)E * N, seed + 2, -3.0f, -0.2f);
    gc_fill_normal(c.bc, (size_t)B * L * 2 * N, seed + 3, 1.0f);
    gc_fill_normal(c.D, (size_t)E, seed + 4, 1.0f);
    gc_fill_normal(c.g, BLE, seed + 5, 1.0f);
    return c;
}

static void scan_case_free(ScanCase *c) {
    free(c->u), free(c->delta), free(c->A), free(c->bc), free(c->D), free(c->g);
}

static double *to_double(const float *x, size_t n) {
    double *d = dalloc(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

START_TEST(test_selective_scan_equals_the_naive_loop_in_double) {
    const int shapes[][6] = {/* B, L, E, N, chunk, reverse */
                             {2, 23, 5, 3, 4, 0},
                             {2, 23, 5, 3, 4, 1},
                             {1, 40, 17, 16, 64, 0},
                             {3, 17, 33, 4, 17, 1},
                             {1, 9, 2, 1, 1, 0}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const int *sh = shapes[k];
        ScanCase c = scan_case(sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], 100 + k);
        const int B = c.B, L = c.L, E = c.E, N = c.N;
        const size_t BLE = (size_t)B * L * E;
        SscanShape s = {B, L, E, N, 2 * N, c.chunk, c.reverse};
        float *y = malloc(BLE * sizeof(float)),
              *st = malloc((size_t)B * sscan_chunks(&s) * E * N * sizeof(float));
        sscan_forward(y, st, c.u, c.delta, c.A, c.bc, c.bc + N, c.D, &s);
        double *du = to_double(c.u, BLE), *dd = to_double(c.delta, BLE),
               *dA = to_double(c.A, (size_t)E * N), *dbc = to_double(c.bc, (size_t)B * L * 2 * N),
               *dD = to_double(c.D, (size_t)E), *ref = dalloc(BLE);
        naive_scan(ref, du, dd, dA, dbc, dbc + N, 2 * N, dD, B, L, E, N, c.reverse);
        const double w = worst_rel(y, ref, BLE);
        ck_assert_msg(w < 2e-5, "scan %zu differs from the naive loop by %g", k, w);
        free(y), free(st), free(du), free(dd), free(dA), free(dbc), free(dD), free(ref);
        scan_case_free(&c);
    }
}
END_TEST

/* f = Σ g·y of the naive scan, for central differences. */
static double scan_objective(const ScanCase *c, double *u, double *d, double *A, double *bc,
                             double *D) {
    const size_t BLE = (size_t)c->B * c->L * c->E;
    double *y = dalloc(BLE), f = 0;
    naive_scan(y, u, d, A, bc, bc + c->N, 2 * c->N, D, c->B, c->L, c->E, c->N, c->reverse);
    for (size_t i = 0; i < BLE; i++) f += c->g[i] * y[i];
    free(y);
    return f;
}

/* Every analytic gradient of x (n elements) against the central difference of the double
 * reference at step 1e-6: |analytic − numeric| <= 1e-4 + 1e-3·|numeric|. */
#define CHECK_FD(what, xd, n, analytic, objective)                                                 \
    for (size_t i_ = 0; i_ < (n); i_++) {                                                          \
        const double x0_ = (xd)[i_];                                                               \
        (xd)[i_] = x0_ + 1e-6;                                                                     \
        const double fp_ = (objective);                                                            \
        (xd)[i_] = x0_ - 1e-6;                                                                     \
        const double fm_ = (objective);                                                            \
        (xd)[i_] = x0_;                                                                            \
        const double num_ = (fp_ - fm_) / 2e-6;                                                    \
        ck_assert_msg(fabs((analytic)[i_] - num_) <= 1e-4 + 1e-3 * fabs(num_),                     \
                      "%s[%zu]: analytic %g, numeric %g", what, i_, (double)(analytic)[i_], num_); \
    }

START_TEST(test_selective_scan_backward_equals_central_differences_in_double) {
    for (int reverse = 0; reverse < 2; reverse++) {
        ScanCase c = scan_case(2, 23, 5, 3, 4, reverse, 300 + reverse);
        const int B = c.B, L = c.L, E = c.E, N = c.N;
        const size_t BLE = (size_t)B * L * E, nbc = (size_t)B * L * 2 * N;
        SscanShape s = {B, L, E, N, 2 * N, c.chunk, c.reverse};
        float *y = malloc(BLE * sizeof(float)),
              *st = malloc((size_t)B * sscan_chunks(&s) * E * N * sizeof(float));
        float *gu = calloc(BLE, sizeof(float)), *gd = calloc(BLE, sizeof(float)),
              *gA = calloc((size_t)E * N, sizeof(float)), *gbc = calloc(nbc, sizeof(float)),
              *gD = calloc((size_t)E, sizeof(float));
        sscan_forward(y, st, c.u, c.delta, c.A, c.bc, c.bc + N, c.D, &s);
        Arena a = scratch_of(sscan_scratch_floats(&s));
        sscan_backward(gu, gd, gA, gbc, gbc + N, gD, c.g, c.u, c.delta, c.A, c.bc, c.bc + N, c.D,
                       st, &s, &a);
        double *du = to_double(c.u, BLE), *dd = to_double(c.delta, BLE),
               *dA = to_double(c.A, (size_t)E * N), *dbc = to_double(c.bc, nbc),
               *dD = to_double(c.D, (size_t)E);
        CHECK_FD("du", du, BLE, gu, scan_objective(&c, du, dd, dA, dbc, dD));
        CHECK_FD("ddelta", dd, BLE, gd, scan_objective(&c, du, dd, dA, dbc, dD));
        CHECK_FD("dA", dA, (size_t)E * N, gA, scan_objective(&c, du, dd, dA, dbc, dD));
        CHECK_FD("dB, dC", dbc, nbc, gbc, scan_objective(&c, du, dd, dA, dbc, dD));
        CHECK_FD("dD", dD, (size_t)E, gD, scan_objective(&c, du, dd, dA, dbc, dD));
        arena_destroy(&a);
        free(y), free(st), free(gu), free(gd), free(gA), free(gbc), free(gD);
        free(du), free(dd), free(dA), free(dbc), free(dD);
        scan_case_free(&c);
    }
}
END_TEST

/* ---- mamba ---- */

/* Y (B, L, D) of the Mamba block written out in double from the instance's parameters: the
 * reverse branch is literally the causal branch run on the reversed real part of each row and
 * reversed back (Vim's flip), rows padded at the end. Y of padding rows is left 0. */
static void naive_mamba(double *Y, Inst *t, int E, int N, int K, int R, int ndir, double scale) {
    const int L = t->L, D = t->D, W = R + 2 * N;
    for (int b = 0; b < t->B; b++) {
        int len = L;
        while (t->mask && len > 0 && !t->mask[(size_t)b * L + len - 1]) len--;
        double *xin = dalloc((size_t)len * D), *xz = dalloc((size_t)len * 2 * E);
        for (size_t i = 0; i < (size_t)len * D; i++) xin[i] = t->x[(size_t)b * L * D + i];
        dlinear(xz, xin, param(t, "in_proj.weight"), param(t, "in_proj.bias"), len, D, 2 * E);
        double *ysum = dalloc((size_t)len * E);
        for (int d = 0; d < ndir; d++) {
            const char *sfx = d ? "_b" : "";
            char nm[64];
#define PP(fmt) (snprintf(nm, sizeof nm, fmt, sfx), param(t, nm))
            const float *cw = PP("conv1d%s.weight"), *cb = PP("conv1d%s.bias"),
                        *xw = PP("x_proj%s.weight"), *dw = PP("dt_proj%s.weight"),
                        *db = PP("dt_proj%s.bias"), *alog = PP("A%s_log"), *Dk = PP("D%s");
#undef PP
            double *xs = dalloc((size_t)len * E), *u = dalloc((size_t)len * E),
                   *xd = dalloc((size_t)len * W), *dl = dalloc((size_t)len * E),
                   *y = dalloc((size_t)len * E), *A = dalloc((size_t)E * N), *DD = dalloc(E);
            for (int s = 0; s < len; s++) /* the branch's sequence: reversed for the second */
                for (int e = 0; e < E; e++)
                    xs[(size_t)s * E + e] = xz[(size_t)(d ? len - 1 - s : s) * 2 * E + e];
            for (int s = 0; s < len; s++)
                for (int e = 0; e < E; e++) {
                    double c = cb ? cb[e] : 0.0;
                    for (int k = 0; k < K; k++) {
                        const int src = s - (K - 1) + k;
                        if (src >= 0) c += cw[(size_t)e * K + k] * xs[(size_t)src * E + e];
                    }
                    u[(size_t)s * E + e] = silu(c);
                }
            dlinear(xd, u, xw, NULL, len, E, W);
            for (int s = 0; s < len; s++)
                for (int e = 0; e < E; e++) {
                    double p = db[e];
                    for (int r = 0; r < R; r++) p += xd[(size_t)s * W + r] * dw[(size_t)e * R + r];
                    dl[(size_t)s * E + e] = softplus(p);
                }
            for (int i = 0; i < E * N; i++) A[i] = -exp((double)alog[i]);
            for (int e = 0; e < E; e++) DD[e] = Dk[e];
            naive_scan(y, u, dl, A, xd + R, xd + R + N, W, DD, 1, len, E, N, 0);
            for (int s = 0; s < len; s++)
                for (int e = 0; e < E; e++)
                    ysum[(size_t)(d ? len - 1 - s : s) * E + e] += y[(size_t)s * E + e];
            free(xs), free(u), free(xd), free(dl), free(y), free(A), free(DD);
        }
        double *gat = dalloc((size_t)len * E), *out = dalloc((size_t)len * D);
        for (int s = 0; s < len; s++)
            for (int e = 0; e < E; e++)
                gat[(size_t)s * E + e] =
                    ysum[(size_t)s * E + e] * silu(xz[(size_t)s * 2 * E + E + e]) * scale;
        dlinear(out, gat, param(t, "out_proj.weight"), param(t, "out_proj.bias"), len, E, D);
        memcpy(Y + (size_t)b * L * D, out, (size_t)len * D * sizeof(double));
        free(xin), free(xz), free(ysum), free(gat), free(out);
    }
}

static void check_mamba_naive(const char *opts, int E, int N, int K, int R, int ndir, double scale,
                              int B, int L, int D, int H) {
    const int pad[3] = {0, L / 2, 1};
    Inst t;
    inst_init(&t, "mamba", opts, B, L, D, H, pad, 77);
    t.training = 0;
    inst_forward(&t);
    double *Y = dalloc((size_t)B * L * D);
    naive_mamba(Y, &t, E, N, K, R, ndir, scale);
    double w = 0;
    for (int r = 0; r < B * L; r++)
        if (t.mask[r])
            for (int d = 0; d < D; d++)
                w = fmax(w, fabs(t.y[(size_t)r * D + d] - Y[(size_t)r * D + d]) /
                                (1 + fabs(Y[(size_t)r * D + d])));
    ck_assert_msg(w < 1e-5, "mamba(%s) differs from the naive block by %g", opts ? opts : "", w);
    free(Y);
    inst_free(&t);
}

START_TEST(test_mamba_equals_the_naive_block_in_double) {
    /* D = 20: E = 40, N = 16, d_conv 4, dt_rank ceil(20/16) = 2; Vim's average of the two */
    check_mamba_naive(NULL, 40, 16, 4, 2, 2, 0.5, 2, 37, 20, 2);
    check_mamba_naive("bidirectional=false", 40, 16, 4, 2, 1, 1.0, 2, 37, 20, 2);
    check_mamba_naive("divide_out=false,expand=1,d_state=5,d_conv=3,dt_rank=4,bias=true,chunk=7",
                      20, 5, 3, 4, 2, 1.0, 3, 29, 20, 2);
}
END_TEST

START_TEST(test_mamba_initialisation_is_the_codes) {
    Inst t;
    inst_init(&t, "mamba", NULL, 1, 5, 32, 2, NULL, 5); /* E = 64, N = 16, R = 2 */
    /* the harness draws zero-initialised tensors at random: read what params_initialise left */
    memset(t.params, 0, t.pt.total * sizeof(float));
    Rng r;
    rng_seed(&r, 5, RNG_STREAM_INIT);
    params_initialise(&t.pt, t.params, &r);
    const float *alog = param(&t, "A_log"), *Dk = param(&t, "D"), *db = param(&t, "dt_proj.bias"),
                *dbb = param(&t, "dt_proj_b.bias"), *dw = param(&t, "dt_proj.weight");
    for (int e = 0; e < 64; e++) {
        for (int n = 0; n < 16; n++) ck_assert_float_eq_tol(alog[e * 16 + n], logf(n + 1), 1e-6);
        ck_assert_float_eq(Dk[e], 1.0f);
        const double dt = softplus(db[e]); /* log-uniform in [dt_min, dt_max] */
        ck_assert_msg(dt >= 0.001 * 0.999 && dt <= 0.1 * 1.001, "dt %g", dt);
        ck_assert_float_eq(dbb[e], 0.0f); /* Vim's _init_weights zeroes the reverse branch's */
        for (int k = 0; k < 2; k++) ck_assert(fabsf(dw[e * 2 + k]) <= 1.0f / sqrtf(2.0f));
    }
    inst_free(&t);
}
END_TEST

/* ---- WKV ---- */

/* y by the explicit sums (RWKV-4: i < t with (t−1−i)·w; Bi-WKV: i ≠ t with (|t−i|−1)·w), in
 * double, over the real positions of each row (positions counted among real ones). */
static void naive_wkv(double *y, const double *w, const double *u, const double *k, const double *v,
                      const unsigned char *mask, const double *rscale, int B, int L, int C,
                      int bi) {
    int *pos = malloc((size_t)L * sizeof(int));
    for (int b = 0; b < B; b++) {
        int n = 0;
        for (int t = 0; t < L; t++)
            if (!mask || mask[(size_t)b * L + t]) pos[n++] = t;
        const double rs = rscale ? rscale[b] : 1.0;
        for (int c = 0; c < C; c++) {
            for (int t = 0; t < L; t++) y[((size_t)b * L + t) * C + c] = 0;
            for (int a = 0; a < n; a++) {
                const size_t rt = ((size_t)b * L + pos[a]) * C + c;
                double num = exp(u[c] * rs + k[rt]) * v[rt], den = exp(u[c] * rs + k[rt]);
                for (int i = 0; i < n; i++) {
                    if (i == a || (!bi && i > a)) continue;
                    const size_t ri = ((size_t)b * L + pos[i]) * C + c;
                    const double e = exp((abs(a - i) - 1) * w[c] * rs + k[ri]);
                    num += e * v[ri], den += e;
                }
                y[rt] = num / den;
            }
        }
    }
    free(pos);
}

typedef struct WkvCase {
    int B, L, C, bi;
    float *w, *u, *k, *v, *g, *rs;
    unsigned char *mask;
} WkvCase;

static WkvCase wkv_case(int B, int L, int C, int bi, float kscale, uint64_t seed) {
    WkvCase c = {B, L, C, bi, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    const size_t n = (size_t)B * L * C;
    c.w = malloc(C * sizeof(float)), c.u = malloc(C * sizeof(float));
    c.k = malloc(n * sizeof(float)), c.v = malloc(n * sizeof(float)),
    c.g = malloc(n * sizeof(float));
    c.rs = malloc(B * sizeof(float)), c.mask = malloc((size_t)B * L);
    if (bi)
        fill_uniform(c.w, C, seed, -3.0f, 5.0f); /* Bi-WKV's raw decay: growth too */
    else
        for (int i = 0; i < C; i++) c.w[i] = -expf(-5.0f + 8.0f * (float)i / (C - 1));
    fill_uniform(c.u, C, seed + 1, -2.0f, 1.0f);
    gc_fill_normal(c.k, n, seed + 2, kscale);
    gc_fill_normal(c.v, n, seed + 3, 1.0f);
    gc_fill_normal(c.g, n, seed + 4, 1.0f);
    for (int b = 0; b < B; b++) { /* row b has b·3 padding positions at the end */
        int T = 0;
        for (int t = 0; t < L; t++) T += c.mask[(size_t)b * L + t] = t < L - 3 * b;
        c.rs[b] = bi ? 1.0f / (float)T : 1.0f;
    }
    return c;
}

static void wkv_case_free(WkvCase *c) {
    free(c->w), free(c->u), free(c->k), free(c->v), free(c->g), free(c->rs), free(c->mask);
}

START_TEST(test_wkv_equals_the_naive_sums_in_double) {
    /* keys up to ±60: e^k overflows float, the running maximum keeps the sums finite */
    const float kscales[] = {1.0f, 20.0f};
    for (int bi = 0; bi < 2; bi++)
        for (int ks = 0; ks < 2; ks++) {
            WkvCase c = wkv_case(3, 21, 19, bi, kscales[ks], 500 + 2 * bi + ks);
            const size_t n = (size_t)c.B * c.L * c.C;
            WkvShape s = {c.B, c.L, c.C, bi, c.mask, c.rs};
            float *y = malloc(n * sizeof(float));
            Arena a = scratch_of(wkv_scratch_floats(&s));
            wkv_forward(y, c.w, c.u, c.k, c.v, &s, &a);
            double *w = to_double(c.w, c.C), *u = to_double(c.u, c.C), *k = to_double(c.k, n),
                   *v = to_double(c.v, n), *rs = to_double(c.rs, c.B), *ref = dalloc(n);
            naive_wkv(ref, w, u, k, v, c.mask, rs, c.B, c.L, c.C, bi);
            const double err = worst_rel(y, ref, n);
            ck_assert_msg(err < 2e-5, "wkv (bi %d, keys x%g) differs from the sums by %g", bi,
                          kscales[ks], err);
            for (size_t i = 0; i < n; i++) /* padding positions output 0 */
                if (!c.mask[i / c.C]) ck_assert_float_eq(y[i], 0.0f);
            arena_destroy(&a);
            free(y), free(w), free(u), free(k), free(v), free(rs), free(ref);
            wkv_case_free(&c);
        }
}
END_TEST

static double wkv_objective(const WkvCase *c, double *w, double *u, double *k, double *v,
                            const double *rs) {
    const size_t n = (size_t)c->B * c->L * c->C;
    double *y = dalloc(n), f = 0;
    naive_wkv(y, w, u, k, v, c->mask, rs, c->B, c->L, c->C, c->bi);
    for (size_t i = 0; i < n; i++) f += c->g[i] * y[i];
    free(y);
    return f;
}

START_TEST(test_wkv_backward_equals_central_differences_in_double) {
    for (int bi = 0; bi < 2; bi++) {
        WkvCase c = wkv_case(2, 11, 18, bi, 2.0f, 700 + bi);
        const size_t n = (size_t)c.B * c.L * c.C;
        WkvShape s = {c.B, c.L, c.C, bi, c.mask, c.rs};
        float *gw = calloc(c.C, sizeof(float)), *gu = calloc(c.C, sizeof(float)),
              *gk = calloc(n, sizeof(float)), *gv = calloc(n, sizeof(float));
        Arena a = scratch_of(wkv_scratch_floats(&s));
        wkv_backward(gw, gu, gk, gv, c.g, c.w, c.u, c.k, c.v, &s, &a);
        double *w = to_double(c.w, c.C), *u = to_double(c.u, c.C), *k = to_double(c.k, n),
               *v = to_double(c.v, n), *rs = to_double(c.rs, c.B);
        CHECK_FD("dw", w, (size_t)c.C, gw, wkv_objective(&c, w, u, k, v, rs));
        CHECK_FD("du", u, (size_t)c.C, gu, wkv_objective(&c, w, u, k, v, rs));
        CHECK_FD("dk", k, n, gk, wkv_objective(&c, w, u, k, v, rs));
        CHECK_FD("dv", v, n, gv, wkv_objective(&c, w, u, k, v, rs));
        arena_destroy(&a);
        free(gw), free(gu), free(gk), free(gv), free(w), free(u), free(k), free(v), free(rs);
        wkv_case_free(&c);
    }
}
END_TEST

/* ---- rwkv ---- */

/* Y of the RWKV time-mixing block in double from the instance's parameters (rows padded at the
 * end; the row cut to its real length). */
static void naive_rwkv(double *Y, Inst *t, int bi, int qshift) {
    const int L = t->L, D = t->D;
    const float *mk = param(t, "time_mix_k"), *mv = param(t, "time_mix_v"),
                *mr = param(t, "time_mix_r"), *decay = param(t, "time_decay"),
                *first = param(t, "time_first");
    for (int b = 0; b < t->B; b++) {
        int len = L;
        while (t->mask && len > 0 && !t->mask[(size_t)b * L + len - 1]) len--;
        const size_t n = (size_t)len * D;
        double *xk = dalloc(n), *xv = dalloc(n), *xr = dalloc(n), *k = dalloc(n), *v = dalloc(n),
               *r = dalloc(n), *y = dalloc(n), *out = dalloc(n), w[256], u[256], rs;
        const float *x = t->x + (size_t)b * L * D;
        for (int s = 0; s < len; s++)
            for (int c = 0; c < D; c++) {
                const int src = qshift && c >= D / 2 ? s + 1 : s - 1;
                const double xx = src >= 0 && src < len ? x[(size_t)src * D + c] : 0.0,
                             xc = x[(size_t)s * D + c];
                xk[(size_t)s * D + c] = xc * mk[c] + xx * (1 - mk[c]);
                xv[(size_t)s * D + c] = xc * mv[c] + xx * (1 - mv[c]);
                xr[(size_t)s * D + c] = xc * mr[c] + xx * (1 - mr[c]);
            }
        dlinear(k, xk, param(t, "key.weight"), NULL, len, D, D);
        dlinear(v, xv, param(t, "value.weight"), NULL, len, D, D);
        dlinear(r, xr, param(t, "receptance.weight"), NULL, len, D, D);
        for (int c = 0; c < D; c++)
            w[c] = bi ? -(double)decay[c] : -exp((double)decay[c]), u[c] = first[c];
        rs = bi ? 1.0 / len : 1.0;
        naive_wkv(y, w, u, k, v, NULL, &rs, 1, len, D, bi);
        for (size_t i = 0; i < n; i++) y[i] *= sigmoid(r[i]);
        dlinear(out, y, param(t, "output.weight"), NULL, len, D, D);
        memcpy(Y + (size_t)b * L * D, out, n * sizeof(double));
        free(xk), free(xv), free(xr), free(k), free(v), free(r), free(y), free(out);
    }
}

START_TEST(test_rwkv_equals_the_naive_block_in_double) {
    const char *opts[] = {NULL, "bidirectional=false", "shift=token"};
    const int bi[] = {1, 0, 1}, qs[] = {1, 0, 0};
    for (int k = 0; k < 3; k++) {
        const int B = 3, L = 31, D = 24, pad[3] = {0, 12, 1};
        Inst t;
        inst_init(&t, "rwkv", opts[k], B, L, D, 2, pad, 90 + k);
        t.training = 0;
        inst_forward(&t);
        double *Y = dalloc((size_t)B * L * D), w = 0;
        naive_rwkv(Y, &t, bi[k], qs[k]);
        for (int r = 0; r < B * L; r++)
            for (int d = 0; d < D; d++) {
                const size_t i = (size_t)r * D + d;
                w = fmax(w, t.mask[r] ? fabs(t.y[i] - Y[i]) / (1 + fabs(Y[i])) : fabs(t.y[i]));
            }
        ck_assert_msg(w < 1e-5, "rwkv(%s) differs from the naive block by %g",
                      opts[k] ? opts[k] : "", w);
        free(Y);
        inst_free(&t);
    }
}
END_TEST

/* The fancy init of the decay, bonus and mixes at every depth, in both variants; the
 * projections as each variant's code draws them: RWKV-4's RWKV_Init (key, receptance, output
 * zero; value orthogonal) and Vision-RWKV's TruncNormal(std 0.02) on every Linear. */
START_TEST(test_rwkv_initialisation_is_the_codes_at_its_depth) {
    const int D = 16;
    const char *opts[2] = {NULL, "bidirectional=false"};
    for (int variant = 0; variant < 2; variant++)
        for (int layer = 0; layer < 3; layer++) {
            ParamTable pt;
            params_init(&pt);
            OptValues o;
            set_opts(&o, mixer_get(mixer_find("rwkv")), opts[variant]);
            Mixer m;
            mixer_create_deep(&m, mixer_get(mixer_find("rwkv")), &o, D, 2, 8, layer, 3, &pt);
            float *p = calloc(pt.total, sizeof(float));
            Rng r;
            rng_seed(&r, 3, RNG_STREAM_INIT);
            params_initialise(&pt, p, &r);
            const double r0 = layer / 2.0, r1 = 1.0 - layer / 3.0;
            char nm[XB_PARAM_NAME];
#define AT(name)                                                                                   \
    (snprintf(nm, sizeof nm, "blocks.%d.mixer.%s", layer, name),                                   \
     p + pt.info[params_find(&pt, nm)].offset)
            for (int i = 0; i < D; i++) {
                ck_assert_float_eq_tol(AT("time_decay")[i],
                                       -5 + 8 * pow(i / (D - 1.0), 0.7 + 1.3 * r0), 1e-5);
                ck_assert_float_eq_tol(AT("time_first")[i], log(0.3) + 0.5 * ((i + 1) % 3 - 1),
                                       1e-6);
                ck_assert_float_eq_tol(AT("time_mix_k")[i], pow((double)i / D, r1), 1e-6);
                ck_assert_float_eq_tol(AT("time_mix_v")[i], pow((double)i / D, r1) + 0.3 * r0,
                                       1e-6);
                ck_assert_float_eq_tol(AT("time_mix_r")[i], pow((double)i / D, 0.5 * r1), 1e-6);
            }
            const char *proj[4] = {"key.weight", "value.weight", "receptance.weight",
                                   "output.weight"};
            for (int k = 0; k < 4; k++) {
                const float *w = AT(proj[k]);
                if (variant == 0) { /* 256 draws of N(0, 0.02²): the sample's σ within 20% */
                    double s2 = 0;
                    for (int i = 0; i < D * D; i++) s2 += (double)w[i] * w[i];
                    const double sd = sqrt(s2 / (D * D));
                    ck_assert_msg(fabs(sd - 0.02) < 0.004, "layer %d %s: sample std %g", layer,
                                  proj[k], sd);
                } else if (k == 1) { /* orthogonal: W Wᵀ = I */
                    for (int i = 0; i < D; i++)
                        for (int j = 0; j < D; j++) {
                            double s = 0;
                            for (int c = 0; c < D; c++) s += (double)w[i * D + c] * w[j * D + c];
                            ck_assert_msg(fabs(s - (i == j)) < 1e-5, "value rows %d, %d: %g", i, j,
                                          s);
                        }
                } else {
                    for (int i = 0; i < D * D; i++) ck_assert_float_eq(w[i], 0.0f);
                }
            }
#undef AT
            free(p);
            mixer_destroy(&m);
            params_free(&pt);
        }
}
END_TEST

/* ---- retention ---- */

/* o += Σ_{m allowed} γ^{|n−m|} (q_n·k_m) v_m, quadratic, in double. */
static void naive_retention(double *o, const float *q, const float *k, const float *v, int B, int H,
                            int L, int dq, int dv, const float *lg, int dir) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int n = 0; n < L; n++)
                for (int m = 0; m < L; m++) {
                    if ((dir == RET_CAUSAL && m > n) || (dir == RET_ANTICAUSAL && m < n)) continue;
                    double s = 0;
                    for (int d = 0; d < dq; d++)
                        s += (double)q[((size_t)b * L + n) * H * dq + h * dq + d] *
                             k[((size_t)b * L + m) * H * dq + h * dq + d];
                    s *= pow(exp((double)lg[h]), abs(n - m));
                    for (int d = 0; d < dv; d++)
                        o[((size_t)b * L + n) * H * dv + h * dv + d] +=
                            s * v[((size_t)b * L + m) * H * dv + h * dv + d];
                }
}

/* The token-by-token recurrent form of the causal retention (eq. 6): S_n = γ S_{n−1} + k_nᵀ v_n,
 * o_n = q_n S_n, in double. */
static void recurrent_retention(double *o, const float *q, const float *k, const float *v, int B,
                                int H, int L, int dq, int dv, const float *lg) {
    double *S = dalloc((size_t)dq * dv);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            memset(S, 0, (size_t)dq * dv * sizeof *S);
            const double g = exp((double)lg[h]);
            for (int n = 0; n < L; n++) {
                const float *qn = q + ((size_t)b * L + n) * H * dq + h * dq,
                            *kn = k + ((size_t)b * L + n) * H * dq + h * dq,
                            *vn = v + ((size_t)b * L + n) * H * dv + h * dv;
                for (int i = 0; i < dq; i++)
                    for (int j = 0; j < dv; j++)
                        S[i * dv + j] = g * S[i * dv + j] + (double)kn[i] * vn[j];
                for (int j = 0; j < dv; j++) {
                    double s = 0;
                    for (int i = 0; i < dq; i++) s += qn[i] * S[i * dv + j];
                    o[((size_t)b * L + n) * H * dv + h * dv + j] += s;
                }
            }
        }
    free(S);
}

START_TEST(test_retention_chunkwise_and_parallel_equal_the_quadratic_and_recurrent_forms) {
    const int B = 2, H = 2, L = 300, dq = 4, dv = 5;
    const float lg[2] = {logf(1 - powf(2, -5)), logf(1 - powf(2, -6))};
    const size_t nq = (size_t)B * L * H * dq, nv = (size_t)B * L * H * dv;
    float *q = malloc(nq * sizeof(float)), *k = malloc(nq * sizeof(float)),
          *v = malloc(nv * sizeof(float)), *o = malloc(nv * sizeof(float));
    gc_fill_normal(q, nq, 1, 1.0f), gc_fill_normal(k, nq, 2, 1.0f), gc_fill_normal(v, nv, 3, 1.0f);
    double *rec = dalloc(nv);
    recurrent_retention(rec, q, k, v, B, H, L, dq, dv, lg);
    const int chunks[] = {0, 1, 7, 64, 256, 512}; /* 0: the parallel form */
    for (int dir = RET_CAUSAL; dir <= RET_BOTH; dir++) {
        double *ref = dalloc(nv);
        naive_retention(ref, q, k, v, B, H, L, dq, dv, lg, dir);
        if (dir == RET_CAUSAL)
            for (size_t i = 0; i < nv; i++)
                ck_assert_msg(fabs(ref[i] - rec[i]) <= 1e-9 * (1 + fabs(rec[i])),
                              "the quadratic and the recurrent forms differ at %zu: %g %g", i,
                              ref[i], rec[i]);
        for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
            RetShape s = {B,      H,  L,  dq, dv, H * dq, H * dq,    H * dv,
                          H * dv, dq, dq, dv, dv, dir,    chunks[c], lg};
            for (size_t i = 0; i < nv; i++) o[i] = 0.5f; /* it adds */
            Arena a = scratch_of(retention_scratch_floats(&s));
            retention_forward(o, q, k, v, &s, &a);
            for (size_t i = 0; i < nv; i++) o[i] -= 0.5f;
            const double w = worst_rel(o, ref, nv);
            ck_assert_msg(w < 2e-5, "retention dir %d chunk %d differs by %g", dir, chunks[c], w);
            arena_destroy(&a);
        }
        free(ref);
    }
    free(q), free(k), free(v), free(o), free(rec);
}
END_TEST

/* ---- retnet ---- */

typedef struct RetnetRef {
    int causal, Dv, rms;
} RetnetRef;

/* Y (B, L, D) of multi-scale retention in double from the parameters p (the instance's layout)
 * and input x: rotation, the row-scaled decay mask over real keys, the normaliser
 * max(|Σ S|, 1), the per-head norm, the swish gate, the output projection. */
static void naive_retnet(double *Y, Inst *t, const float *params, const double *x,
                         const RetnetRef *c) {
    const int B = t->B, L = t->L, D = t->D, H = t->H, dk = D / H, Dv = c->Dv, dvh = Dv / H,
              P = dk / 2;
#define PR(name)                                                                                   \
    (params_find(&t->pt, "blocks.0.mixer." name) < 0                                               \
         ? NULL                                                                                    \
         : params + t->pt.info[params_find(&t->pt, "blocks.0.mixer." name)].offset)
    const size_t BL = (size_t)B * L;
    double *q = dalloc(BL * D), *k = dalloc(BL * D), *v = dalloc(BL * Dv), *g = dalloc(BL * Dv),
           *out = dalloc(BL * Dv);
    dlinear(q, x, PR("q_proj.weight"), PR("q_proj.bias"), (int)BL, D, D);
    dlinear(k, x, PR("k_proj.weight"), PR("k_proj.bias"), (int)BL, D, D);
    dlinear(v, x, PR("v_proj.weight"), PR("v_proj.bias"), (int)BL, D, Dv);
    dlinear(g, x, PR("g_proj.weight"), PR("g_proj.bias"), (int)BL, D, Dv);
    for (size_t r = 0; r < BL; r++) /* rotate pair i of each head by n·10000^(−i/(P−1)) */
        for (int h = 0; h < H; h++)
            for (int i = 0; i < P; i++) {
                const double a =
                    (double)(r % L) * (P > 1 ? pow(10000.0, -(double)i / (P - 1)) : 1.0);
                double *qq = q + r * D + h * dk + 2 * i, *kk = k + r * D + h * dk + 2 * i;
                const double q0 = qq[0], q1 = qq[1], k0 = kk[0], k1 = kk[1];
                qq[0] = q0 * cos(a) - q1 * sin(a), qq[1] = q1 * cos(a) + q0 * sin(a);
                kk[0] = (k0 * cos(a) - k1 * sin(a)) / sqrt(dk);
                kk[1] = (k1 * cos(a) + k0 * sin(a)) / sqrt(dk);
            }
    double *o = dalloc((size_t)dvh), *gp = dalloc((size_t)L); /* gp[j] = γ^j */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const double gm = 1 - pow(2.0, -5.0 - h);
            for (int j = 0; j < L; j++) gp[j] = pow(gm, j);
            for (int n = 0; n < L; n++) {
                const size_t rn = (size_t)b * L + n;
                if (t->mask && !t->mask[rn]) continue;
                double rowsum = 0, sig = 0;
                for (int m = 0; m < L; m++)
                    if ((!t->mask || t->mask[(size_t)b * L + m]) && (!c->causal || m <= n))
                        rowsum += gp[abs(n - m)];
                memset(o, 0, (size_t)dvh * sizeof *o);
                for (int m = 0; m < L; m++) {
                    const size_t rm = (size_t)b * L + m;
                    if ((t->mask && !t->mask[rm]) || (c->causal && m > n)) continue;
                    double s = 0;
                    for (int d = 0; d < dk; d++)
                        s += q[rn * D + h * dk + d] * k[rm * D + h * dk + d];
                    s *= gp[abs(n - m)] / sqrt(rowsum);
                    sig += s;
                    for (int j = 0; j < dvh; j++) o[j] += s * v[rm * Dv + h * dvh + j];
                }
                double mean = 0, var = 0;
                for (int j = 0; j < dvh; j++) o[j] /= fmax(fabs(sig), 1.0), mean += o[j] / dvh;
                if (c->rms) mean = 0;
                for (int j = 0; j < dvh; j++) var += (o[j] - mean) * (o[j] - mean) / dvh;
                for (int j = 0; j < dvh; j++)
                    out[rn * Dv + h * dvh + j] = silu(g[rn * Dv + h * dvh + j]) * (o[j] - mean) /
                                                 sqrt(var + (c->rms ? 1e-6 : 1e-5));
            }
        }
    dlinear(Y, out, PR("out_proj.weight"), PR("out_proj.bias"), (int)BL, Dv, D);
#undef PR
    free(q), free(k), free(v), free(g), free(out), free(o), free(gp);
}

static void check_retnet_naive(const char *opts, RetnetRef c, int B, int L, int D, int H) {
    const int pad[3] = {0, L / 3, 1};
    Inst t;
    inst_init(&t, "retnet", opts, B, L, D, H, pad, 61);
    t.training = 0;
    inst_forward(&t);
    double *x = to_double(t.x, (size_t)B * L * D), *Y = dalloc((size_t)B * L * D), w = 0;
    naive_retnet(Y, &t, t.params, x, &c);
    for (int r = 0; r < B * L; r++)
        if (t.mask[r])
            for (int d = 0; d < D; d++) {
                const size_t i = (size_t)r * D + d;
                w = fmax(w, fabs(t.y[i] - Y[i]) / (1 + fabs(Y[i])));
            }
    ck_assert_msg(w < 1e-4, "retnet(%s) differs from the naive retention by %g", opts ? opts : "",
                  w);
    free(x), free(Y);
    inst_free(&t);
}

START_TEST(test_retnet_equals_the_naive_retention_in_double) {
    check_retnet_naive(NULL, (RetnetRef){0, 32, 0}, 2, 70, 16, 2);
    check_retnet_naive("form=parallel", (RetnetRef){0, 32, 0}, 2, 70, 16, 2);
    check_retnet_naive("causal=true,chunk=9", (RetnetRef){1, 32, 0}, 2, 70, 16, 2);
    check_retnet_naive("causal=true,form=parallel,norm=rms,value_factor=1,bias=false",
                       (RetnetRef){1, 12, 1}, 3, 41, 12, 3);
}
END_TEST

/* The chunkwise form (and its chunk length) gives the parallel form's outputs and gradients. */
START_TEST(test_retnet_chunkwise_form_equals_the_parallel_form) {
    const char *pairs[][2] = {{"form=parallel", "chunk=64"},
                              {"form=parallel", "chunk=7"},
                              {"causal=true,form=parallel", "causal=true,chunk=64"},
                              {"causal=true,form=parallel", "causal=true,chunk=600"}};
    const int B = 2, L = 600, D = 8, H = 2, pad[2] = {0, 150};
    for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) {
        Inst a, c;
        inst_init(&a, "retnet", pairs[k][0], B, L, D, H, pad, 8);
        inst_init(&c, "retnet", pairs[k][1], B, L, D, H, pad, 8);
        inst_forward(&a), inst_forward(&c);
        inst_backward(&a), inst_backward(&c);
        double wy = 0, wx = 0, wg = 0;
        for (size_t i = 0; i < (size_t)B * L * D; i++) {
            wy = fmax(wy, fabs(a.y[i] - c.y[i]) / (1 + fabs(a.y[i])));
            wx = fmax(wx, fabs(a.dx[i] - c.dx[i]) / (1 + fabs(a.dx[i])));
        }
        for (size_t i = 0; i < a.pt.total; i++)
            wg = fmax(wg, fabs(a.grads[i] - c.grads[i]) / (1 + fabs(a.grads[i])));
        ck_assert_msg(wy < 1e-5 && wx < 1e-4 && wg < 1e-4, "%s vs %s: y %g, dx %g, grads %g",
                      pairs[k][0], pairs[k][1], wy, wx, wg);
        inst_free(&a), inst_free(&c);
    }
}
END_TEST

/* At L = 600 the default's W_q objective curves beyond the generic stencil's step (see
 * test_mixers.c); here every parameter's gradient (a spread subset of each tensor) and dx are
 * checked against central differences of the double reference at step 1e-4, where that
 * curvature is four orders smaller. */
START_TEST(test_retnet_default_gradients_at_600_equal_the_double_reference) {
    const int B = 1, L = 600, D = 8, H = 2;
    Inst t;
    inst_init(&t, "retnet", NULL, B, L, D, H, NULL, 31); /* the generic check's draw */
    inst_forward(&t);
    inst_backward(&t);
    const RetnetRef c = {0, 16, 0};
    const size_t n = (size_t)B * L * D;
    double *x = to_double(t.x, n), *Y = dalloc(n);
    float *p = malloc(t.pt.total * sizeof(float));
    memcpy(p, t.params, t.pt.total * sizeof(float));
    const double hs = 1e-4;
    for (int ti = -1; ti < t.pt.n; ti++) { /* −1: dx */
        const size_t size = ti < 0 ? n : t.pt.info[ti].size;
        const int checks = ti < 0 ? 16 : 6;
        for (int kk = 0; kk < checks; kk++) {
            const size_t i = (size_t)((double)kk * size / checks);
            double num;
            if (ti < 0) {
                const double x0 = x[i];
                x[i] = x0 + hs;
                naive_retnet(Y, &t, p, x, &c);
                double fp = 0;
                for (size_t j = 0; j < n; j++) fp += t.dy[j] * Y[j];
                x[i] = x0 - hs;
                naive_retnet(Y, &t, p, x, &c);
                double fm = 0;
                for (size_t j = 0; j < n; j++) fm += t.dy[j] * Y[j];
                x[i] = x0;
                num = (fp - fm) / (2 * hs);
            } else {
                /* parameters are floats: step by the float nearest to ±h, divide by the step */
                float *w = p + t.pt.info[ti].offset + i;
                const float w0 = *w, wp = w0 + (float)hs, wm = w0 - (float)hs;
                *w = wp;
                naive_retnet(Y, &t, p, x, &c);
                double fp = 0;
                for (size_t j = 0; j < n; j++) fp += t.dy[j] * Y[j];
                *w = wm;
                naive_retnet(Y, &t, p, x, &c);
                double fm = 0;
                for (size_t j = 0; j < n; j++) fm += t.dy[j] * Y[j];
                *w = w0;
                num = (fp - fm) / ((double)wp - (double)wm);
            }
            const double ana = ti < 0 ? t.dx[i] : t.grads[t.pt.info[ti].offset + i];
            ck_assert_msg(fabs(ana - num) <= 2e-3 + 2e-3 * fabs(num),
                          "%s[%zu]: analytic %g, numeric %g", ti < 0 ? "dx" : t.pt.info[ti].name, i,
                          ana, num);
        }
    }
    free(x), free(Y), free(p);
    inst_free(&t);
}
END_TEST

/* Where the retention output is small against the group norm's ε, the norm no longer cancels
 * the normaliser max(|Σ S|, 1): its gradient must then be the forward's (torchscale detaches
 * it, which gives another gradient here). Small values, large queries (so that |Σ S| > 1). */
START_TEST(test_retnet_normaliser_gradient_is_the_forwards_where_the_norm_does_not_cancel_it) {
    const int B = 2, L = 20, D = 8, H = 2, pad[2] = {0, 5};
    Inst t;
    inst_init(&t, "retnet", NULL, B, L, D, H, pad, 21);
    float *wq = param(&t, "q_proj.weight"), *wv = param(&t, "v_proj.weight"),
          *bv = param(&t, "v_proj.bias");
    for (int i = 0; i < D * D; i++) wq[i] *= 8.0f;
    for (int i = 0; i < 2 * D * D; i++) wv[i] *= 1e-3f;
    for (int i = 0; i < 2 * D; i++) bv[i] *= 1e-3f;
    inst_forward(&t);
    inst_backward(&t);
    t.frozen = 1;
    const size_t n = (size_t)B * L * D;
    const char *names[] = {"q_proj.weight", "k_proj.weight"}; /* Σ S depends on q and k */
    for (int k = 0; k < 2; k++) {
        GcResult r;
        float *w = param(&t, names[k]);
        const size_t off = (size_t)(w - t.params);
        const int ok = gradcheck(inst_forward, &t, w, (size_t)D * D, t.grads + off, t.y, n, t.dy,
                                 1e-2f, 3e-3, 2e-2, 64, &r);
        GC_ASSERT(ok, names[k], &r);
    }
    GcResult r;
    GC_ASSERT(gradcheck(inst_forward, &t, t.x, n, t.dx, t.y, n, t.dy, 1e-2f, 3e-3, 2e-2, 160, &r),
              "dx", &r);
    inst_free(&t);
}
END_TEST

/* ---- padding ---- */

/* Rows with more padding than tokens: the reverse scans meet the padding first and must start
 * their real part from a zero state; Bi-WKV's T and the retention row scale count real tokens. */
START_TEST(test_padding_longer_than_the_row_is_invisible) {
    const char *names[] = {"mamba", "rwkv", "retnet", "mamba", "rwkv"};
    const char *opts[] = {NULL, NULL, NULL, "bidirectional=false", "bidirectional=false"};
    for (int k = 0; k < 5; k++) {
        const int L = 70, Lr = 12, D = 8, pad[2] = {0, L - Lr};
        Inst a, t;
        inst_init(&a, names[k], opts[k], 2, L, D, 2, pad, 13);
        inst_init_at(&t, names[k], opts[k], 1, Lr, L, D, 2, NULL, 13);
        for (size_t i = (size_t)(L + Lr) * D; i < (size_t)2 * L * D; i++) a.x[i] = 50.0f;
        memcpy(t.x, a.x + (size_t)L * D, (size_t)Lr * D * sizeof(float));
        a.training = t.training = 0;
        inst_forward(&a), inst_forward(&t);
        double w = 0;
        for (size_t i = 0; i < (size_t)Lr * D; i++)
            w = fmax(w, fabs(a.y[(size_t)L * D + i] - t.y[i]) / (1 + fabs(t.y[i])));
        ck_assert_msg(w <= 1e-5, "%s(%s): %d padding positions change the row by %g", names[k],
                      opts[k] ? opts[k] : "", L - Lr, w);
        inst_free(&a), inst_free(&t);
    }
}
END_TEST

/* The scan kernels give the same bits for any thread count: the shared gradients (B_t, C_t and
 * A of the selective scan, w and u of the WKV) are summed from per-work-item partials in a fixed
 * order. (The mixers' projections go through OpenBLAS, whose sgemm may split its sums by thread
 * count, so the blocks promise the same bits for the same thread count only.) */
START_TEST(test_scan_kernels_give_the_same_bits_for_any_thread_count) {
    const int saved = omp_get_max_threads();
    ScanCase c = scan_case(3, 50, 37, 16, 8, 1, 900);
    WkvCase w = wkv_case(3, 50, 37, 1, 1.0f, 901);
    const size_t BLE = (size_t)c.B * c.L * c.E, nbc = (size_t)c.B * c.L * 2 * c.N;
    SscanShape ss = {c.B, c.L, c.E, c.N, 2 * c.N, c.chunk, c.reverse};
    WkvShape ws = {w.B, w.L, w.C, 1, w.mask, w.rs};
    float *out[2][9];
    for (int v = 0; v < 2; v++) {
        omp_set_num_threads(v + 1); /* before the arenas: scratch is sized per thread */
        float **o = out[v];
        o[0] = calloc(BLE, sizeof(float)), o[1] = calloc(BLE, sizeof(float));
        o[2] = calloc(BLE, sizeof(float)), o[3] = calloc((size_t)c.E * c.N, sizeof(float));
        o[4] = calloc(nbc, sizeof(float)), o[5] = calloc((size_t)c.E, sizeof(float));
        o[6] = calloc(BLE, sizeof(float)), o[7] = calloc(BLE, sizeof(float));
        o[8] = calloc(2 * (size_t)w.C, sizeof(float));
        float *st = malloc((size_t)c.B * sscan_chunks(&ss) * c.E * c.N * sizeof(float));
        Arena a = scratch_of(sscan_scratch_floats(&ss) + wkv_scratch_floats(&ws));
        sscan_forward(o[0], st, c.u, c.delta, c.A, c.bc, c.bc + c.N, c.D, &ss);
        sscan_backward(o[1], o[2], o[3], o[4], o[4] + c.N, o[5], c.g, c.u, c.delta, c.A, c.bc,
                       c.bc + c.N, c.D, st, &ss, &a);
        wkv_forward(o[6], w.w, w.u, w.k, w.v, &ws, &a);
        wkv_backward(o[8], o[8] + w.C, o[7], o[7], w.g, w.w, w.u, w.k, w.v, &ws, &a);
        arena_destroy(&a);
        free(st);
    }
    omp_set_num_threads(saved);
    const size_t sizes[9] = {BLE,         BLE, BLE, (size_t)c.E * c.N, nbc,
                             (size_t)c.E, BLE, BLE, 2 * (size_t)w.C};
    for (int i = 0; i < 9; i++) {
        ck_assert_msg(!memcmp(out[0][i], out[1][i], sizes[i] * sizeof(float)),
                      "output %d has other bits on two threads", i);
        free(out[0][i]), free(out[1][i]);
    }
    scan_case_free(&c);
    wkv_case_free(&w);
}
END_TEST

/* Option combinations the schema cannot express are refused with the key and what is valid. */
START_TEST(test_check_rejects_what_the_mechanisms_cannot_run) {
    XbError err;
    OptValues o;
    const MixerSpec *mamba = mixer_get(mixer_find("mamba")),
                    *retnet = mixer_get(mixer_find("retnet"));
    set_opts(&o, mamba, "dt_min=0.2,dt_max=0.1");
    xb_error_clear(&err);
    ck_assert_int_ne(mamba->ops->check(&o, 64, 2, 128, &err), 0);
    ck_assert_str_eq(err.key, "model.mixer.dt_min");
    ck_assert_str_eq(err.msg, "0.2 is above dt_max = 0.1 (valid: dt_min <= dt_max)");
    set_opts(&o, retnet, NULL);
    xb_error_clear(&err);
    ck_assert_int_ne(retnet->ops->check(&o, 6, 2, 128, &err), 0);
    ck_assert_str_eq(err.key, "model.d_model");
    ck_assert_str_eq(err.msg, "retnet rotates pairs of key dimensions: d_model / heads = 3 must be "
                              "even (valid: d_model a multiple of 2 * heads)");
    xb_error_clear(&err);
    ck_assert_int_eq(retnet->ops->check(&o, 8, 2, 128, &err), 0);
    const MixerSpec *rwkv = mixer_get(mixer_find("rwkv"));
    set_opts(&o, rwkv, "bidirectional=false,shift=q_shift");
    xb_error_clear(&err);
    ck_assert_int_ne(rwkv->ops->check(&o, 8, 2, 128, &err), 0);
    ck_assert_str_eq(err.key, "model.mixer.shift");
    ck_assert_str_eq(err.msg, "q_shift reads position t+1, which the causal form (bidirectional: "
                              "false) may not see (valid: token or auto)");
    set_opts(&o, rwkv, "bidirectional=false");
    xb_error_clear(&err);
    ck_assert_int_eq(rwkv->ops->check(&o, 8, 2, 128, &err), 0);
}
END_TEST

static Suite *next_rnn_suite(void) {
    Suite *s = suite_create("mixers_next_rnn");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_selective_scan_equals_the_naive_loop_in_double);
    tcase_add_test(tc, test_selective_scan_backward_equals_central_differences_in_double);
    tcase_add_test(tc, test_mamba_equals_the_naive_block_in_double);
    tcase_add_test(tc, test_mamba_initialisation_is_the_codes);
    tcase_add_test(tc, test_wkv_equals_the_naive_sums_in_double);
    tcase_add_test(tc, test_wkv_backward_equals_central_differences_in_double);
    tcase_add_test(tc, test_rwkv_equals_the_naive_block_in_double);
    tcase_add_test(tc, test_rwkv_initialisation_is_the_codes_at_its_depth);
    tcase_add_test(tc,
                   test_retention_chunkwise_and_parallel_equal_the_quadratic_and_recurrent_forms);
    tcase_add_test(tc, test_retnet_equals_the_naive_retention_in_double);
    tcase_add_test(tc, test_retnet_chunkwise_form_equals_the_parallel_form);
    tcase_add_test(tc, test_retnet_default_gradients_at_600_equal_the_double_reference);
    tcase_add_test(
        tc, test_retnet_normaliser_gradient_is_the_forwards_where_the_norm_does_not_cancel_it);
    tcase_add_test(tc, test_padding_longer_than_the_row_is_invisible);
    tcase_add_test(tc, test_scan_kernels_give_the_same_bits_for_any_thread_count);
    tcase_add_test(tc, test_check_rejects_what_the_mechanisms_cannot_run);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(next_rnn_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
