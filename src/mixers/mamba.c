/* mamba: the selective state space block (Gu & Dao, arXiv 2312.00752, §3 and Fig. 3), as the
 * authors' code runs it (state-spaces/mamba mamba_ssm/modules/mamba_simple.py, Mamba.forward
 * without the fused path; selective_scan_ref in mamba_ssm/ops/selective_scan_interface.py).
 * With E = expand·D inner channels, N = d_state, R = dt_rank (ceil(D/16) by default):
 *   (x, z) = X W_inᵀ (in_proj, 2E outputs, no bias);
 *   u = SiLU(causal depthwise conv(x) + b) (conv1d: d_conv taps, left padding);
 *   (δ, B, C) = u W_xᵀ (x_proj, R + 2N outputs); Δ = softplus(δ W_dtᵀ + b_dt) (dt_proj);
 *   y = selective scan(u, Δ, A = −exp(A_log), B, C) + D·u (kernels/selective_scan.h);
 *   Y = (y ⊙ SiLU(z)) W_outᵀ.
 * Initialisation as Mamba.__init__: A_log = log(1 … N) per channel (S4D-real), D = 1,
 * dt_proj.weight ~ U(±dt_scale/√R), dt_proj.bias = softplus⁻¹(dt) with dt log-uniform in
 * [dt_min, dt_max] floored at dt_init_floor, the other layers PyTorch's defaults (U(±1/√fan_in));
 * out_proj rescaled by 1/√layers (_init_weights, rescale_prenorm_residual).
 *
 * Bidirectional (the default, for the encoder tasks): Vision Mamba's "v2" block (Zhu et al.,
 * arXiv 2401.09417; hustvl/Vim mamba-1p1p1/mamba_ssm/modules/mamba_simple.py, bimamba_type="v2"):
 * in_proj, z and out_proj are shared; a second conv1d_b, x_proj_b, dt_proj_b, A_b_log and D_b
 * run steps 2-4 on the reversed sequence; Y = ((y_f + flip(y_b)) ⊙ SiLU(z) / 2) W_outᵀ, the
 * division by 2 being if_devide_out=True of Vim's released models (`divide_out`). Vim's
 * _init_weights zeroes dt_proj_b.bias (only dt_proj.bias is marked _no_reinit); that is kept.
 *
 * Padding: x is zeroed at padding positions before the convolutions and the scans see Δ = 0 and
 * u = 0 there, which leaves their state exactly as it was; so the reverse scan, which meets the
 * trailing padding first, starts its real part from a zero state, and a row's real outputs equal
 * those of the row cut to its real length. Padding rows output 0 (plus out_proj's bias).
 *
 * The backward recomputes the scan states chunk by chunk from the states saved at the chunk
 * boundaries (`chunk` steps apart). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "kernels/fastmath.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "kernels/selective_scan.h"
#include "mixers/mixer.h"

/* The most convolution taps: the option's maximum and the convolution's per-thread weights. */
enum { MAX_D_CONV = 64 };

static const OptSpec mamba_opts[] = {
    MOPT_INT("d_state", 16, 1, SSCAN_MAX_N, "state size N per channel"),
    MOPT_INT("d_conv", 4, 1, MAX_D_CONV, "taps of the short depthwise convolution"),
    MOPT_INT("expand", 2, 1, 8, "inner channels per model channel (E = expand * d_model)"),
    MOPT_INT("dt_rank", 0, 0, 4096,
             "rank of the step-size projection; 0: ceil(d_model / 16) (the code's \"auto\")"),
    MOPT_FLOAT("dt_min", 0.001, 1e-6, 1, "smallest initial step size"),
    MOPT_FLOAT("dt_max", 0.1, 1e-6, 1, "largest initial step size"),
    MOPT_FLOAT("dt_init_floor", 1e-4, 0, 1, "floor of the initial step sizes"),
    MOPT_FLOAT("dt_scale", 1.0, 0, 100,
               "scale of dt_proj's initial weights (U(+-dt_scale/sqrt(dt_rank)))"),
    MOPT_BOOL("conv_bias", 1, "bias of the convolution"),
    MOPT_BOOL("bias", 0, "biases of in_proj and out_proj"),
    MOPT_BOOL("bidirectional", 1,
              "Vision Mamba's v2 block: a second scan over the reversed sequence (false: the "
              "causal Mamba of the paper)"),
    MOPT_BOOL("divide_out", 1,
              "bidirectional: average the two scans (Vim's if_devide_out, as its released "
              "models); false: their sum"),
    MOPT_INT("chunk", 64, 1, 65536,
             "scan steps between the states the forward keeps for the backward (memory "
             "B*E*N*L/chunk; the result does not depend on it)"),
};
#define NOPTS MOPT_COUNT(mamba_opts)

/* One scan direction's parameters and saved activations. */
typedef struct MambaDir {
    int p_cw, p_cb, p_xw, p_dw, p_db, p_alog, p_d;
    float *cpre;   /* (B, L, E) convolution output before SiLU */
    float *u;      /* (B, L, E) SiLU of it, 0 at padding */
    float *xdbl;   /* (B, L, R + 2N) x_proj's output: δ, B, C */
    float *dpre;   /* (B, L, E) step size before softplus */
    float *delta;  /* (B, L, E) Δ = softplus(dpre), 0 at padding */
    float *states; /* (B, chunks, E, N) scan states at the chunk starts */
} MambaDir;

typedef struct MambaState {
    int E, N, K, R, ndir, divide, chunk;
    int p_win, p_bin, p_wout, p_bout;
    MambaDir dir[2];
    float *xz;   /* (B, L, 2E) in_proj's output, x zeroed at padding */
    float *ysum; /* (B, L, E) y_f + y_b (before the gate), 0 at padding */
    float *gat;  /* (B, L, E) out_proj's input */
} MambaState;

static int mamba_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H, (void)max_len;
    const double lo = opt_float(opts, mamba_opts, NOPTS, "dt_min"),
                 hi = opt_float(opts, mamba_opts, NOPTS, "dt_max");
    if (lo > hi) {
        return mixer_opt_error(err, "dt_min", "%g is above dt_max = %g (valid: dt_min <= dt_max)",
                               lo, hi);
    }
    return 0;
}

/* A_log = log(1 … N) on every row (S4D-real). */
static void init_alog(float *w, const ParamInfo *p, Rng *rng) {
    (void)rng;
    for (int e = 0; e < p->shape[0]; e++)
        for (int n = 0; n < p->shape[1]; n++) w[(size_t)e * p->shape[1] + n] = logf((float)(n + 1));
}

/* dt_proj.bias = softplus⁻¹(dt) = dt + log(−expm1(−dt)), dt = exp(U(log dt_min, log dt_max))
 * floored at dt_init_floor (the arguments, in this order). */
static void init_dt_bias(float *w, const ParamInfo *p, Rng *rng) {
    const double lo = log(p->init_arg[0]), hi = log(p->init_arg[1]);
    for (size_t i = 0; i < p->size; i++) {
        double dt = exp(lo + rng_uniform(rng) * (hi - lo));
        if (dt < p->init_arg[2]) dt = p->init_arg[2];
        w[i] = (float)(dt + log(-expm1(-dt)));
    }
}

/* out_proj: kaiming_uniform_(a=√5), i.e. U(±1/√fan_in), then divided by √layers (the
 * argument). */
static void init_out(float *w, const ParamInfo *p, Rng *rng) {
    const float a = 1.0f / sqrtf((float)p->shape[1]) / sqrtf((float)p->init_arg[0]);
    for (size_t i = 0; i < p->size; i++) w[i] = a * (2.0f * rng_uniform(rng) - 1.0f);
}

static int add(ParamTable *pt, const Mixer *m, const char *what, int d0, int d1, InitKind init,
               float scale, int decay) {
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "%s.%s", m->prefix, what);
    return d1 > 0 ? params_add2(pt, name, d0, d1, init, scale, decay)
                  : params_add1(pt, name, d0, init, scale, decay);
}

static int add_fn(ParamTable *pt, const Mixer *m, const char *what, int d0, int d1, ParamInitFn fn,
                  const double *args, int nargs, int decay) {
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "%s.%s", m->prefix, what);
    const int shape[2] = {d0, d1};
    return params_add_fn(pt, name, d1 > 0 ? 2 : 1, shape, fn, args, nargs, decay);
}

static void mamba_create(Mixer *m, ParamTable *pt) {
    MambaState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    const OptValues *o = m->opts;
    const int D = m->D;
    st->E = opt_int(o, mamba_opts, NOPTS, "expand") * D;
    st->N = opt_int(o, mamba_opts, NOPTS, "d_state");
    st->K = opt_int(o, mamba_opts, NOPTS, "d_conv");
    st->R = opt_int(o, mamba_opts, NOPTS, "dt_rank");
    if (st->R == 0) st->R = (D + 15) / 16;
    st->ndir = opt_bool(o, mamba_opts, NOPTS, "bidirectional") ? 2 : 1;
    st->divide = st->ndir == 2 && opt_bool(o, mamba_opts, NOPTS, "divide_out");
    st->chunk = opt_int(o, mamba_opts, NOPTS, "chunk");
    const float dt_std = (float)opt_float(o, mamba_opts, NOPTS, "dt_scale") / sqrtf((float)st->R);
    const double dt_args[3] = {opt_float(o, mamba_opts, NOPTS, "dt_min"),
                               opt_float(o, mamba_opts, NOPTS, "dt_max"),
                               opt_float(o, mamba_opts, NOPTS, "dt_init_floor")};
    const int E = st->E, N = st->N, K = st->K, R = st->R,
              bias = opt_bool(o, mamba_opts, NOPTS, "bias"),
              conv_bias = opt_bool(o, mamba_opts, NOPTS, "conv_bias");
    st->p_win = add(pt, m, "in_proj.weight", 2 * E, D, INIT_UNIFORM, 1.0f / sqrtf((float)D), 1);
    st->p_bin = bias ? add(pt, m, "in_proj.bias", 2 * E, 0, INIT_ZEROS, 0, 0) : -1;
    for (int d = 0; d < st->ndir; d++) {
        MambaDir *md = &st->dir[d];
        const char *sfx = d ? "_b" : "";
        char what[32];
        snprintf(what, sizeof what, "conv1d%s.weight", sfx);
        md->p_cw = add(pt, m, what, E, K, INIT_UNIFORM, 1.0f / sqrtf((float)K), 1);
        snprintf(what, sizeof what, "conv1d%s.bias", sfx);
        md->p_cb = conv_bias ? add(pt, m, what, E, 0, INIT_UNIFORM, 1.0f / sqrtf((float)K), 0) : -1;
        snprintf(what, sizeof what, "x_proj%s.weight", sfx);
        md->p_xw = add(pt, m, what, R + 2 * N, E, INIT_UNIFORM, 1.0f / sqrtf((float)E), 1);
        snprintf(what, sizeof what, "dt_proj%s.weight", sfx);
        md->p_dw = add(pt, m, what, E, R, INIT_UNIFORM, d ? 1.0f / sqrtf((float)R) : dt_std, 1);
        snprintf(what, sizeof what, "dt_proj%s.bias", sfx);
        md->p_db = d ? add(pt, m, what, E, 0, INIT_ZEROS, 0, 0)
                     : add_fn(pt, m, what, E, 0, init_dt_bias, dt_args, 3, 0);
        snprintf(what, sizeof what, "A%s_log", sfx);
        md->p_alog = add_fn(pt, m, what, E, N, init_alog, NULL, 0, 0);
        snprintf(what, sizeof what, "D%s", sfx);
        md->p_d = add(pt, m, what, E, 0, INIT_ONES, 0, 0);
    }
    const double layers = m->n_layers > 0 ? m->n_layers : 1; /* unknown: one */
    st->p_wout = add_fn(pt, m, "out_proj.weight", D, E, init_out, &layers, 1, 1);
    st->p_bout = bias ? add(pt, m, "out_proj.bias", D, 0, INIT_ZEROS, 0, 0) : -1;
}

static SscanShape scan_shape(const MambaState *st, int B, int L, int d) {
    SscanShape s = {.B = B,
                    .L = L,
                    .E = st->E,
                    .N = st->N,
                    .ldbc = st->R + 2 * st->N,
                    .chunk = st->chunk,
                    .reverse = d};
    return s;
}

static void mamba_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    MambaState *st = m->state;
    const size_t BL = (size_t)B * L, E = (size_t)st->E, W = (size_t)(st->R + 2 * st->N);
    st->xz = arena_floats(acts, BL * 2 * E);
    st->ysum = arena_floats(acts, BL * E);
    st->gat = arena_floats(acts, BL * E);
    SscanShape ss = scan_shape(st, B, L, 0);
    for (int d = 0; d < st->ndir; d++) {
        MambaDir *md = &st->dir[d];
        md->cpre = arena_floats(acts, BL * E);
        md->u = arena_floats(acts, BL * E);
        md->xdbl = arena_floats(acts, BL * W);
        md->dpre = arena_floats(acts, BL * E);
        md->delta = arena_floats(acts, BL * E);
        md->states = arena_floats(acts, (size_t)B * sscan_chunks(&ss) * E * st->N);
    }
    /* forward: A, y; backward: A, dA, d(gat), g, d(xz), du, dΔ, d(xdbl), then the scan's */
    const size_t mark = arena_mark(scratch);
    arena_floats(scratch, E * st->N);
    arena_floats(scratch, BL * E);
    arena_reset_to(scratch, mark);
    const size_t bwd[] = {E * st->N, E * st->N,  BL * E,
                          BL * E,    2 * BL * E, BL * E,
                          BL * E,    BL * W,     sscan_scratch_floats(&ss)};
    for (size_t i = 0; i < XB_ARRAY_LEN(bwd); i++) arena_floats(scratch, bwd[i]);
}

static inline int is_real(const MixerStep *s, int b, int t) {
    return !s->mask || s->mask[(size_t)b * s->L + t];
}

/* σ(x) and softplus(x) in forms the elementwise loops vectorise (libm's expf and log1pf are
 * scalar calls: they took a tenth of a step). softplus(x) = max(x, 0) + log1p(e^{−|x|}), and
 * log1p(z) = 2·atanh(s), s = z/(2 + z) <= 1/3 for z in [0, 1], by its series to s^15 (the
 * remainder below 2e-9 relative); x itself above 20, as torch's softplus threshold. */
static inline float sigm(float x) { return 1.0f / (1.0f + xb_expf(-x)); }

static inline float softplus(float x) {
    const float z = xb_expf(-fabsf(x)), s = z / (2.0f + z), s2 = s * s;
    float q = 1.0f / 15.0f;
    q = q * s2 + 1.0f / 13.0f;
    q = q * s2 + 1.0f / 11.0f;
    q = q * s2 + 1.0f / 9.0f;
    q = q * s2 + 1.0f / 7.0f;
    q = q * s2 + 1.0f / 5.0f;
    q = q * s2 + 1.0f / 3.0f;
    q = q * s2 + 1.0f;
    const float sp = (x > 0.0f ? x : 0.0f) + 2.0f * s * q;
    return x > 20.0f ? x : sp;
}

/* Source position of tap k for output t: t − (K−1) + k forwards; t + (K−1) − k for the reversed
 * sequence (the causal convolution of flip(x), flipped back). */
static inline int tap(int t, int k, int K, int reverse) {
    return reverse ? t + (K - 1) - k : t - (K - 1) + k;
}

/* cpre (B, L, E) = depthwise convolution of x (the first E columns of xz, row stride 2E) + b
 * (blocks of 16 channels per thread, the taps' weights kept as (K, 16): channels in vector
 * lanes). */
static void conv_forward(float *cpre, const float *xz, const float *w, const float *bias, int B,
                         int L, int E, int K, int reverse) {
    enum { CB = 16 };
    XB_ASSERT(K <= MAX_D_CONV);
#pragma omp parallel for schedule(static)
    for (int e0 = 0; e0 < E; e0 += CB) {
        const int ne = E - e0 < CB ? E - e0 : CB;
        float wt[MAX_D_CONV][CB], b0[CB];
        for (int j = 0; j < CB; j++) {
            b0[j] = j < ne && bias ? bias[e0 + j] : 0.0f;
            for (int k = 0; k < K; k++) wt[k][j] = j < ne ? w[(size_t)(e0 + j) * K + k] : 0.0f;
        }
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++) {
                float *c = cpre + ((size_t)b * L + t) * E + e0;
                for (int j = 0; j < ne; j++) c[j] = b0[j];
                for (int k = 0; k < K; k++) {
                    const int src = tap(t, k, K, reverse);
                    if (src < 0 || src >= L) continue;
                    const float *xs = xz + ((size_t)b * L + src) * 2 * E + e0, *wk = wt[k];
                    for (int j = 0; j < ne; j++) c[j] += wk[j] * xs[j];
                }
            }
    }
    flops_add(2ull * (uint64_t)B * (uint64_t)L * (uint64_t)E * (uint64_t)K);
}

/* dx (row stride 2E) += the convolution's adjoint of dc (B, L, E); dw, db += (blocks of 16
 * channels per thread, the taps' weights and sums kept as (K, 16) so that the channels run in
 * vector lanes; rows summed in order, then added once). */
static void conv_backward(float *dx, float *dw, float *db, const float *dc, const float *xz,
                          const float *w, int B, int L, int E, int K, int reverse) {
    enum { CB = 16 };
    XB_ASSERT(K <= MAX_D_CONV);
#pragma omp parallel for schedule(static)
    for (int e0 = 0; e0 < E; e0 += CB) {
        const int ne = E - e0 < CB ? E - e0 : CB;
        float wt[MAX_D_CONV][CB], acc[MAX_D_CONV][CB], bacc[CB] = {0};
        for (int k = 0; k < K; k++)
            for (int j = 0; j < CB; j++) {
                wt[k][j] = j < ne ? w[(size_t)(e0 + j) * K + k] : 0.0f;
                acc[k][j] = 0.0f;
            }
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++) {
                const float *g = dc + ((size_t)b * L + t) * E + e0;
                for (int j = 0; j < ne; j++) bacc[j] += g[j];
                for (int k = 0; k < K; k++) {
                    const int src = tap(t, k, K, reverse);
                    if (src < 0 || src >= L) continue;
                    const size_t at = ((size_t)b * L + src) * 2 * E + e0;
                    const float *xs = xz + at;
                    float *dxs = dx + at, *ak = acc[k];
                    const float *wk = wt[k];
                    for (int j = 0; j < ne; j++) {
                        ak[j] += g[j] * xs[j];
                        dxs[j] += g[j] * wk[j];
                    }
                }
            }
        for (int j = 0; j < ne; j++) {
            for (int k = 0; k < K; k++) dw[(size_t)(e0 + j) * K + k] += acc[k][j];
            if (db) db[e0 + j] += bacc[j];
        }
    }
    flops_add(4ull * (uint64_t)B * (uint64_t)L * (uint64_t)E * (uint64_t)K);
}

/* Δ (B, L, E) = softplus(dpre), 0 at padding. */
static void step_sizes(float *delta, const float *dpre, const MixerStep *s, int E) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < s->B * s->L; r++) {
        const float *p = dpre + (size_t)r * E;
        float *dl = delta + (size_t)r * E;
        if (!is_real(s, r / s->L, r % s->L)) {
            memset(dl, 0, (size_t)E * sizeof *dl);
            continue;
        }
#pragma omp simd
        for (int e = 0; e < E; e++) dl[e] = softplus(p[e]);
    }
}

static void mamba_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    MambaState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, BL = B * L, E = st->E, N = st->N, R = st->R,
              W = R + 2 * N;
    const size_t mark = arena_mark(s->scratch);
    float *A = arena_floats(s->scratch, (size_t)E * N);
    float *yd = arena_floats(s->scratch, (size_t)BL * E);
    linear_forward(st->xz, x, mixer_param(s, st->p_win), mixer_param(s, st->p_bin), BL, D, 2 * E);
    for (int r = 0; r < BL; r++) /* padding enters no convolution */
        if (!is_real(s, r / L, r % L)) memset(st->xz + (size_t)r * 2 * E, 0, E * sizeof(float));
    for (int d = 0; d < st->ndir; d++) {
        MambaDir *md = &st->dir[d];
        conv_forward(md->cpre, st->xz, mixer_param(s, md->p_cw), mixer_param(s, md->p_cb), B, L, E,
                     st->K, d);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < BL; r++) {
            const float *c = md->cpre + (size_t)r * E;
            float *u = md->u + (size_t)r * E;
            if (!is_real(s, r / L, r % L)) {
                memset(u, 0, (size_t)E * sizeof *u);
                continue;
            }
#pragma omp simd
            for (int e = 0; e < E; e++) u[e] = c[e] * sigm(c[e]);
        }
        linear_forward(md->xdbl, md->u, mixer_param(s, md->p_xw), NULL, BL, E, W);
        const float *db = mixer_param(s, md->p_db);
        for (int r = 0; r < BL; r++) memcpy(md->dpre + (size_t)r * E, db, E * sizeof(float));
        matmul_strided(md->dpre, E, md->xdbl, W, mixer_param(s, md->p_dw), R, BL, E, R, MM_NT, 1.0f,
                       1.0f);
        step_sizes(md->delta, md->dpre, s, E);
        const float *alog = mixer_param(s, md->p_alog);
        for (size_t i = 0; i < (size_t)E * N; i++) A[i] = -expf(alog[i]);
        SscanShape ss = scan_shape(st, B, L, d);
        sscan_forward(d ? yd : st->ysum, md->states, md->u, md->delta, A, md->xdbl + R,
                      md->xdbl + R + N, mixer_param(s, md->p_d), &ss);
        if (d) {
#pragma omp parallel for simd schedule(static)
            for (size_t i = 0; i < (size_t)BL * E; i++) st->ysum[i] += yd[i];
        }
    }
    const float scale = st->divide ? 0.5f : 1.0f;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) {
        const int real = is_real(s, r / L, r % L);
        float *ys = st->ysum + (size_t)r * E, *g = st->gat + (size_t)r * E;
        const float *z = st->xz + (size_t)r * 2 * E + E;
        if (!real) memset(ys, 0, (size_t)E * sizeof *ys);
#pragma omp simd
        for (int e = 0; e < E; e++) {
            g[e] = ys[e] * z[e] * sigm(z[e]) * scale;
        }
    }
    linear_forward(y, st->gat, mixer_param(s, st->p_wout), mixer_param(s, st->p_bout), BL, E, D);
    arena_reset_to(s->scratch, mark);
}

static void mamba_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                           const float *x) {
    MambaState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, BL = B * L, E = st->E, N = st->N, R = st->R,
              W = R + 2 * N;
    const size_t mark = arena_mark(s->scratch), BLE = (size_t)BL * E;
    float *A = arena_floats(s->scratch, (size_t)E * N),
          *dA = arena_floats(s->scratch, (size_t)E * N);
    float *dgat = arena_floats(s->scratch, BLE), *g = arena_floats(s->scratch, BLE);
    float *dxz = arena_floats(s->scratch, 2 * BLE);
    float *du = arena_floats(s->scratch, BLE), *ddelta = arena_floats(s->scratch, BLE);
    float *dxdbl = arena_floats(s->scratch, (size_t)BL * W);
    linear_backward(dgat, mixer_grad(s, st->p_wout), mixer_grad(s, st->p_bout), dy, st->gat,
                    mixer_param(s, st->p_wout), BL, E, D);
    const float scale = st->divide ? 0.5f : 1.0f;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) { /* the gate: g = ∂/∂y (both scans), dz */
        if (!is_real(s, r / L, r % L)) continue;
        const float *z = st->xz + (size_t)r * 2 * E + E, *ys = st->ysum + (size_t)r * E,
                    *dg = dgat + (size_t)r * E;
        float *dz = dxz + (size_t)r * 2 * E + E;
#pragma omp simd
        for (int e = 0; e < E; e++) {
            const float sz = sigm(z[e]);
            g[(size_t)r * E + e] = dg[e] * z[e] * sz * scale;
            dz[e] = dg[e] * ys[e] * scale * sz * (1.0f + z[e] * (1.0f - sz));
        }
    }
    for (int d = 0; d < st->ndir; d++) {
        MambaDir *md = &st->dir[d];
        const float *alog = mixer_param(s, md->p_alog);
        for (size_t i = 0; i < (size_t)E * N; i++) A[i] = -expf(alog[i]);
        memset(dA, 0, (size_t)E * N * sizeof *dA);
        memset(du, 0, BLE * sizeof *du);
        memset(ddelta, 0, BLE * sizeof *ddelta);
        memset(dxdbl, 0, (size_t)BL * W * sizeof *dxdbl);
        SscanShape ss = scan_shape(st, B, L, d);
        sscan_backward(du, ddelta, dA, dxdbl + R, dxdbl + R + N, mixer_grad(s, md->p_d), g, md->u,
                       md->delta, A, md->xdbl + R, md->xdbl + R + N, mixer_param(s, md->p_d),
                       md->states, &ss, s->scratch);
        float *galog = mixer_grad(s, md->p_alog);
        for (size_t i = 0; i < (size_t)E * N; i++) galog[i] += dA[i] * A[i]; /* A = −e^{A_log} */
#pragma omp parallel for schedule(static)
        for (int r = 0; r < BL; r++) { /* softplus; Δ was fixed at 0 on padding */
            float *dd = ddelta + (size_t)r * E;
            const float *p = md->dpre + (size_t)r * E;
            if (!is_real(s, r / L, r % L)) {
                memset(dd, 0, (size_t)E * sizeof *dd);
                continue;
            }
#pragma omp simd
            for (int e = 0; e < E; e++) dd[e] *= sigm(p[e]);
        }
        /* dt_proj: dpre = δ W_dtᵀ + b_dt with δ the first R columns of xdbl */
        linear_backward(NULL, NULL, mixer_grad(s, md->p_db), ddelta, NULL, NULL, BL, R, E);
        matmul_backward_strided(dxdbl, W, mixer_grad(s, md->p_dw), R, ddelta, E, md->xdbl, W,
                                mixer_param(s, md->p_dw), R, BL, E, R, MM_NT, 1.0f);
        linear_backward(du, mixer_grad(s, md->p_xw), NULL, dxdbl, md->u, mixer_param(s, md->p_xw),
                        BL, E, W);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < BL; r++) { /* SiLU; u was fixed at 0 on padding */
            float *dr = du + (size_t)r * E;
            const float *c = md->cpre + (size_t)r * E;
            if (!is_real(s, r / L, r % L)) {
                memset(dr, 0, (size_t)E * sizeof *dr);
                continue;
            }
#pragma omp simd
            for (int e = 0; e < E; e++) {
                const float sc = sigm(c[e]);
                dr[e] *= sc * (1.0f + c[e] * (1.0f - sc));
            }
        }
        conv_backward(dxz, mixer_grad(s, md->p_cw), mixer_grad(s, md->p_cb), du, st->xz,
                      mixer_param(s, md->p_cw), B, L, E, st->K, d);
    }
    for (int r = 0; r < BL; r++) /* x was zeroed on padding */
        if (!is_real(s, r / L, r % L)) memset(dxz + (size_t)r * 2 * E, 0, E * sizeof(float));
    linear_backward(dx, mixer_grad(s, st->p_win), mixer_grad(s, st->p_bin), dxz, x,
                    mixer_param(s, st->p_win), BL, D, 2 * E);
    arena_reset_to(s->scratch, mark);
}

static uint64_t mamba_flops(const Mixer *m, int B, int L, int backward) {
    const MambaState *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D, E = (uint64_t)st->E,
                   R = (uint64_t)st->R, W = R + 2 * (uint64_t)st->N, K = (uint64_t)st->K;
    /* in_proj and out_proj, then per direction the convolution, x_proj, dt_proj and the scan;
     * a backward product costs twice its forward (the input's and the weight's gradients) */
    const uint64_t proj = 2 * BL * D * 2 * E + 2 * BL * E * D,
                   dir = 2 * BL * E * K + 2 * BL * E * W + 2 * BL * R * E, f = backward ? 2 : 1;
    SscanShape ss = scan_shape(st, B, L, 0);
    return f * proj + (uint64_t)st->ndir * (f * dir + sscan_flops(&ss, backward));
}

const MixerSpec mixer_mamba = {
    .name = "mamba",
    .classes = "SSM",
    .arxiv = "2312.00752",
    .title = "Mamba: selective state space scan (input-dependent step, B and C), short causal "
             "convolution, SiLU gate; bidirectional as Vision Mamba's v2 block",
    .honours_mask = 1,
    .beyond_survey = 1,
    MIXER_OPTS(mamba_opts),
    .ops = &(const MixerOps){MIXER_OPS(mamba), .check = mamba_check},
};
