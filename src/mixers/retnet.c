/* retnet: multi-scale retention (Sun et al., RetNet, arXiv 2307.08621, §2.1-2.2), as the code
 * released with the paper runs it (microsoft/torchscale bf65397, July 2023:
 * torchscale/component/multiscale_retention.py MultiScaleRetention, torchscale/architecture/
 * retnet.py RetNetRelPos). Per head h (d = D/H key width, dv = value_factor·D/H value width):
 *   q = X W_q + b_q, k = (X W_k + b_k)/√d, v = X W_v + b_v, g = X W_g + b_g;
 *   q, k rotated by the angle n·θ_i, θ_i = 10000^(−i/(d/2−1)), on the pairs (2i, 2i+1)
 *     (theta_shift / rotate_every_two: xPos's rotation; its length scaling is the decay below);
 *   S[n, m] = (q_n·k_m)·γ_h^{|n−m|} / √(Σ_m' γ_h^{|n−m'|}), γ_h = 1 − 2^(−5−h) (the decay mask,
 *     row-scaled as RetNetRelPos scales it);
 *   O_n = Σ_m S[n, m] v_m / max(|Σ_m S[n, m]|, 1) (parallel_forward; the paper's §2.5 scores
 *     normalisation; torchscale detaches the normaliser, which the group norm after it cancels up
 *     to the norm's ε; here it is differentiated, so that the gradient is the forward's; which
 *     side of the max acts is a discrete choice kept under MixerStep.frozen);
 *   Y = (swish(g) ⊙ GroupNorm_h(O)) W_o + b_o, the group norm per head without affine
 *     (LayerNorm(head_dim, elementwise_affine=False), ε = 1e-5).
 * torchscale since 5c89ffb (Sep 2023) differs: no biases, RMSNorm (ε 1e-6), value width
 * configurable (`bias: false`, `norm: rms`).
 *
 * Encoder form (our adaptation; the paper's retention is causal, `causal: true`): the decay is
 * two-sided, γ^{|n−m|}, the 1-D analogue of RMT's Manhattan-distance decay (Fan et al., arXiv
 * 2309.11523), so that every position sees the whole sequence and retention stays a sum of a
 * causal and an anti-causal recurrence (less the diagonal): O(L) with the chunkwise form.
 * Computed by kernels/retention.h: the chunkwise-recurrent form (eq. 7, default, O(L·chunk)) or
 * the parallel form streamed over tiles (eq. 5, O(L²) time, O(L) memory); both give the same
 * result up to rounding. Σ_m S[n, m] comes out of the same pass: v carries a column of ones.
 * (torchscale's chunk_recurrent_forward normalises by other, per-chunk scales, which its group
 * norm cancels; here the chunkwise form computes the parallel form's function exactly.)
 *
 * Padding: the keys of padding positions are zeroed and the row scale sums over real keys only,
 * so a row's real outputs equal those of the row cut to its real length; padding rows output
 * b_o. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/fastmath.h"
#include "kernels/linear.h"
#include "kernels/retention.h"
#include "mixers/mixer.h"

static const char *const FORMS[] = {"chunkwise", "parallel", NULL};
enum { FORM_CHUNKWISE, FORM_PARALLEL, N_FORMS };
MOPT_CHOICES_ARE(FORMS, N_FORMS);
static const char *const NORMS[] = {"group", "rms", NULL};
enum { NORM_GROUP, NORM_RMS, N_NORMS };
MOPT_CHOICES_ARE(NORMS, N_NORMS);

static const OptSpec retnet_opts[] = {
    MOPT_BOOL("causal", 0,
              "the paper's causal retention (m <= n); false: the encoder's two-sided decay "
              "gamma^|n-m| (our adaptation, RMT's decay in 1-D)"),
    MOPT_ENUM("form", FORM_CHUNKWISE, FORMS,
              "chunkwise: the chunkwise-recurrent form, O(L*chunk); parallel: (QK^T * D)V over "
              "tiles, O(L^2) time; the same result"),
    MOPT_INT("chunk", 64, 1, 65536,
             "chunk length of the chunkwise form (torchscale's recurrent_chunk_size, 512 there; "
             "a speed setting: the result does not depend on it)"),
    MOPT_INT("value_factor", 2, 1, 8,
             "value width per head over key width (the paper and torchscale's first release: 2)"),
    MOPT_ENUM("norm", NORM_GROUP, NORMS,
              "per-head norm of the retention output: group (the paper, GroupNorm eps 1e-5) or "
              "rms (torchscale since Sep 2023, eps 1e-6)"),
    MOPT_BOOL("bias", 1,
              "biases in the q, k, v, g and output projections (torchscale's first release; "
              "later ones have none)"),
};
#define NOPTS MOPT_COUNT(retnet_opts)

/* The most heads: one decay each, γ_h = 1 − 2^(−5−h), in a fixed array. */
enum { MAX_HEADS = 64 };

typedef struct RetnetState {
    int causal, chunk, norm, Dv, dk, dvh;
    int p_wq, p_bq, p_wk, p_bk, p_wv, p_bv, p_wg, p_bg, p_wo, p_bo;
    float log_gamma[MAX_HEADS];
    /* saved by the forward (B, L, ·) */
    float *qr, *kr;         /* (B, L, D): rotated queries; rotated, scaled, padding-zeroed keys */
    float *vaug;            /* (B, L, H(dvh+1)): values with a column of ones per head */
    float *g;               /* (B, L, Dv) gate pre-activation */
    float *on;              /* (B, L, Dv) normalised retention output */
    float *out;             /* (B, L, Dv) swish(g) ⊙ on: the output projection's input */
    float *fac;             /* (B, L, H): the row scale times 1/max(|Σ S|, 1) */
    float *sig;             /* (B, L, H): Σ_m S[n, m] */
    float *mean, *rstd;     /* (B, L, H): the norm's mean (0 for rms) and 1/σ */
    unsigned char *clamped; /* (B, L, H): |Σ S| > 1 (the normaliser acts), kept when frozen */
    float *cs;              /* (L, d/2, 2): cos and sin of the rotation angles */
} RetnetState;

static int retnet_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)opts, (void)max_len;
    if ((D / H) % 2 != 0) {
        snprintf(err->key, sizeof err->key, "model.d_model");
        snprintf(err->msg, sizeof err->msg,
                 "retnet rotates pairs of key dimensions: d_model / heads = %d must be even "
                 "(valid: d_model a multiple of 2 * heads)",
                 D / H);
        return -1;
    }
    if (H > MAX_HEADS) {
        snprintf(err->key, sizeof err->key, "model.heads");
        snprintf(err->msg, sizeof err->msg,
                 "retnet has one decay per head: %d heads (valid: 1 to %d)", H, MAX_HEADS);
        return -1;
    }
    return 0;
}

static int add_linear(ParamTable *pt, const char *prefix, const char *what, int out, int in,
                      float gain, int bias, int *pb) {
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "%s.%s.weight", prefix, what);
    /* xavier_uniform_(gain): U(±gain·√(6/(fan_in + fan_out))) */
    const int w =
        params_add2(pt, name, out, in, INIT_UNIFORM, gain * sqrtf(6.0f / (float)(in + out)), 1);
    *pb = -1;
    if (bias) { /* nn.Linear's default bias: U(±1/√fan_in); the output's is set to 0 */
        snprintf(name, sizeof name, "%s.%s.bias", prefix, what);
        *pb = strcmp(what, "out_proj") == 0
                  ? params_add1(pt, name, out, INIT_ZEROS, 0, 0)
                  : params_add1(pt, name, out, INIT_UNIFORM, 1.0f / sqrtf((float)in), 0);
    }
    return w;
}

static void retnet_create(Mixer *m, ParamTable *pt) {
    RetnetState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    const OptValues *o = m->opts;
    const int D = m->D, H = m->H, bias = opt_bool(o, retnet_opts, NOPTS, "bias");
    st->causal = opt_bool(o, retnet_opts, NOPTS, "causal");
    st->chunk = opt_enum(o, retnet_opts, NOPTS, "form") == FORM_PARALLEL
                    ? 0
                    : opt_int(o, retnet_opts, NOPTS, "chunk");
    st->norm = opt_enum(o, retnet_opts, NOPTS, "norm");
    st->Dv = D * opt_int(o, retnet_opts, NOPTS, "value_factor");
    st->dk = D / H;
    st->dvh = st->Dv / H;
    for (int h = 0; h < H; h++) st->log_gamma[h] = (float)log(1.0 - pow(2.0, -5.0 - h));
    const float g = powf(2.0f, -2.5f);
    st->p_wq = add_linear(pt, m->prefix, "q_proj", D, D, g, bias, &st->p_bq);
    st->p_wk = add_linear(pt, m->prefix, "k_proj", D, D, g, bias, &st->p_bk);
    st->p_wv = add_linear(pt, m->prefix, "v_proj", st->Dv, D, g, bias, &st->p_bv);
    st->p_wg = add_linear(pt, m->prefix, "g_proj", st->Dv, D, g, bias, &st->p_bg);
    st->p_wo = add_linear(pt, m->prefix, "out_proj", D, st->Dv, 1.0f, bias, &st->p_bo);
}

/* The retention call of the forward, or of one of the backward's three. */
static RetShape ret_shape(const Mixer *m, int B, int L, int dq, int dv, int dir) {
    const RetnetState *st = m->state;
    RetShape s = {.B = B,
                  .H = m->H,
                  .L = L,
                  .dq = dq,
                  .dv = dv,
                  .dir = dir,
                  .chunk = st->chunk,
                  .log_gamma = st->log_gamma};
    return s;
}

static int fwd_dir(const RetnetState *st) { return st->causal ? RET_CAUSAL : RET_BOTH; }
static int rev_dir(const RetnetState *st) { return st->causal ? RET_ANTICAUSAL : RET_BOTH; }

/* forward: U = retention(qr, kr, vaug) */
static RetShape shape_u(const Mixer *m, int B, int L) {
    const RetnetState *st = m->state;
    const int D = m->D, Wa = m->H * (st->dvh + 1);
    RetShape s = ret_shape(m, B, L, st->dk, st->dvh + 1, fwd_dir(st));
    s.ldq = s.ldk = D, s.ldv = s.ldo = Wa;
    s.hq = s.hk = st->dk, s.hv = s.ho = st->dvh + 1;
    return s;
}
/* backward, with dU (B, L, H(dvh+1)) the gradient of U (its last column per head that of Σ S):
 * dq = retention(dU, vaug, kr); dk = retention(vaug, dU, qr) reversed; dv = retention(kr, qr, dU)
 * reversed */
static RetShape shape_dq(const Mixer *m, int B, int L) {
    const RetnetState *st = m->state;
    const int Wa = m->H * (st->dvh + 1);
    RetShape s = ret_shape(m, B, L, st->dvh + 1, st->dk, fwd_dir(st));
    s.ldq = s.ldk = Wa, s.ldv = s.ldo = m->D;
    s.hq = s.hk = st->dvh + 1, s.hv = s.ho = st->dk;
    return s;
}
static RetShape shape_dk(const Mixer *m, int B, int L) {
    RetShape s = shape_dq(m, B, L);
    s.dir = rev_dir(m->state);
    return s;
}
static RetShape shape_dv(const Mixer *m, int B, int L) {
    const RetnetState *st = m->state;
    const int Wa = m->H * (st->dvh + 1);
    RetShape s = ret_shape(m, B, L, st->dk, st->dvh + 1, rev_dir(st));
    s.ldq = s.ldk = m->D, s.ldv = s.ldo = Wa;
    s.hq = s.hk = st->dk, s.hv = s.ho = st->dvh + 1;
    return s;
}

static size_t max3(size_t a, size_t b, size_t c) { return XB_MAX(a, XB_MAX(b, c)); }

static void retnet_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    RetnetState *st = m->state;
    const size_t BL = (size_t)B * L, D = (size_t)m->D, Dv = (size_t)st->Dv,
                 Wa = (size_t)m->H * (st->dvh + 1);
    st->qr = arena_floats(acts, BL * D);
    st->kr = arena_floats(acts, BL * D);
    st->vaug = arena_floats(acts, BL * Wa);
    st->g = arena_floats(acts, BL * Dv);
    st->on = arena_floats(acts, BL * Dv);
    st->out = arena_floats(acts, BL * Dv);
    st->fac = arena_floats(acts, BL * m->H);
    st->sig = arena_floats(acts, BL * m->H);
    st->mean = arena_floats(acts, BL * m->H);
    st->rstd = arena_floats(acts, BL * m->H);
    st->clamped = arena_alloc(acts, BL * m->H);
    st->cs = arena_floats(acts, (size_t)L * st->dk);
    /* forward: v, U; backward: dout, dU, dq, dk, dv, dg, then the kernel's scratch */
    RetShape su = shape_u(m, B, L), sq = shape_dq(m, B, L), sk = shape_dk(m, B, L),
             sv = shape_dv(m, B, L);
    const size_t mark = arena_mark(scratch);
    arena_floats(scratch, BL * Dv);
    arena_floats(scratch, BL * Wa);
    arena_floats(scratch, retention_scratch_floats(&su));
    arena_reset_to(scratch, mark);
    for (int i = 0; i < 4; i++) arena_floats(scratch, BL * Wa);
    for (int i = 0; i < 2; i++) arena_floats(scratch, BL * D);
    arena_floats(scratch, max3(retention_scratch_floats(&sq), retention_scratch_floats(&sk),
                               retention_scratch_floats(&sv)));
}

/* The rotation angles: θ_i = 10000^(−i/(d/2−1)) (linspace(0, 1, d/2)), position n turns pair i
 * by n·θ_i. */
static void rotation_table(float *cs, int L, int dk) {
    const int P = dk / 2;
    for (int n = 0; n < L; n++)
        for (int i = 0; i < P; i++) {
            const double th = P > 1 ? pow(10000.0, -(double)i / (P - 1)) : 1.0, a = n * th;
            cs[((size_t)n * P + i) * 2] = (float)cos(a);
            cs[((size_t)n * P + i) * 2 + 1] = (float)sin(a);
        }
}

/* Rotates every head of x (B, L, D) by +n·θ (sign 1) or back (−1), in place, times `scale`. */
static void rotate(float *x, const float *cs, int B, int L, int D, int dk, float sign,
                   float scale) {
    const int P = dk / 2;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B * L; r++) {
        const int n = r % L;
        float *row = x + (size_t)r * D;
        for (int c = 0; c < D / 2; c++) { /* pair c of the row is pair c % P of its head */
            const float co = cs[((size_t)n * P + c % P) * 2],
                        si = sign * cs[((size_t)n * P + c % P) * 2 + 1];
            const float a = row[2 * c], b = row[2 * c + 1];
            row[2 * c] = scale * (a * co - b * si);
            row[2 * c + 1] = scale * (b * co + a * si);
        }
    }
}

static inline int is_real(const MixerStep *s, int b, int n) {
    return !s->mask || s->mask[(size_t)b * s->L + n];
}

static inline float silu(float x) { return x / (1.0f + xb_expf(-x)); }

static void retnet_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    RetnetState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, H = m->H, BL = B * L, Dv = st->Dv, dk = st->dk,
              dvh = st->dvh, Wa = H * (dvh + 1), causal = st->causal;
    const size_t mark = arena_mark(s->scratch);
    float *v = arena_floats(s->scratch, (size_t)BL * Dv);
    float *u = arena_floats(s->scratch, (size_t)BL * Wa); /* (B, L, H(dvh+1)) retention */
    linear_forward(st->qr, x, mixer_param(s, st->p_wq), mixer_param(s, st->p_bq), BL, D, D);
    linear_forward(st->kr, x, mixer_param(s, st->p_wk), mixer_param(s, st->p_bk), BL, D, D);
    linear_forward(v, x, mixer_param(s, st->p_wv), mixer_param(s, st->p_bv), BL, D, Dv);
    linear_forward(st->g, x, mixer_param(s, st->p_wg), mixer_param(s, st->p_bg), BL, D, Dv);
    rotation_table(st->cs, L, dk);
    rotate(st->qr, st->cs, B, L, D, dk, 1.0f, 1.0f);
    rotate(st->kr, st->cs, B, L, D, dk, 1.0f, 1.0f / sqrtf((float)dk));
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) {
        if (!is_real(s, r / L, r % L)) memset(st->kr + (size_t)r * D, 0, (size_t)D * sizeof(float));
        for (int h = 0; h < H; h++) {
            float *va = st->vaug + (size_t)r * Wa + (size_t)h * (dvh + 1);
            memcpy(va, v + (size_t)r * Dv + (size_t)h * dvh, (size_t)dvh * sizeof(float));
            va[dvh] = 1.0f;
        }
    }
    RetShape su = shape_u(m, B, L);
    retention_forward(u, st->qr, st->kr, st->vaug, &su, s->scratch);
    /* the row scale √(Σ_m γ^{|n−m|}) over real keys, the normaliser, the norm, the gate */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const double gm = exp((double)st->log_gamma[h]);
            double fw = 0.0; /* Σ_{m <= n} γ^{n−m} over real m */
            for (int n = 0; n < L; n++) fw = gm * fw + is_real(s, b, n);
            double bw = 0.0; /* Σ_{m >= n}, built from the end */
            for (int n = L - 1; n >= 0; n--) {
                const int real = is_real(s, b, n);
                bw = gm * bw + real;
                st->fac[((size_t)b * L + n) * H + h] = (float)bw; /* kept for the pass below */
            }
            fw = 0.0;
            for (int n = 0; n < L; n++) {
                const size_t r = (size_t)b * L + n;
                const int real = is_real(s, b, n);
                fw = gm * fw + real;
                const double sum = causal ? fw : fw + st->fac[r * H + h] - real;
                const float sc = sum > 0 ? (float)(1.0 / sqrt(sum)) : 0.0f;
                const float *U = u + r * Wa + (size_t)h * (dvh + 1), sig = U[dvh] * sc;
                unsigned char *cl = st->clamped + r * H + h;
                if (!s->frozen) *cl = fabsf(sig) > 1.0f;
                const float f = *cl ? sc / fabsf(sig) : sc;
                st->fac[r * H + h] = f;
                st->sig[r * H + h] = sig;
                float *on = st->on + r * Dv + (size_t)h * dvh, *out = st->out + r * Dv + h * dvh;
                const float *g = st->g + r * Dv + (size_t)h * dvh;
                float mean = 0.0f, var = 0.0f;
                if (st->norm == NORM_GROUP) {
                    for (int j = 0; j < dvh; j++) mean += U[j] * f;
                    mean /= (float)dvh;
                }
                for (int j = 0; j < dvh; j++) {
                    const float d = U[j] * f - mean;
                    var += d * d;
                }
                var /= (float)dvh;
                const float rs = 1.0f / sqrtf(var + (st->norm == NORM_GROUP ? 1e-5f : 1e-6f));
                st->rstd[r * H + h] = rs;
                st->mean[r * H + h] = mean;
                for (int j = 0; j < dvh; j++) {
                    on[j] = (U[j] * f - mean) * rs;
                    out[j] = real ? silu(g[j]) * on[j] : 0.0f;
                }
            }
        }
    linear_forward(y, st->out, mixer_param(s, st->p_wo), mixer_param(s, st->p_bo), BL, Dv, D);
    arena_reset_to(s->scratch, mark);
}

static void retnet_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                            const float *x) {
    RetnetState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, H = m->H, BL = B * L, Dv = st->Dv, dk = st->dk,
              dvh = st->dvh, Wa = H * (dvh + 1);
    const size_t mark = arena_mark(s->scratch);
    float *dout = arena_floats(s->scratch, (size_t)BL * Wa); /* later dv */
    float *dU = arena_floats(s->scratch, (size_t)BL * Wa);
    float *dva = arena_floats(s->scratch, (size_t)BL * Wa);
    float *dg = arena_floats(s->scratch, (size_t)BL * Wa);
    float *dq = arena_floats(s->scratch, (size_t)BL * D);
    float *dkk = arena_floats(s->scratch, (size_t)BL * D);
    linear_backward(dout, mixer_grad(s, st->p_wo), mixer_grad(s, st->p_bo), dy, st->out,
                    mixer_param(s, st->p_wo), BL, Dv, D);
    /* The gate, the norm, then U: with x = U[0:dvh]·f the norm's input, f = s/c, s the row scale
     * and c = |σ| where the normaliser acts (σ = U[dvh]·s, else c = 1): dU[j] = f·dx_j and
     * dU[dvh] = −f·sign(σ)·Σ_j dx_j·x_j (0 when it does not act). */
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) {
        if (!is_real(s, r / L, r % L)) continue; /* the output there is 0: dU, dg stay 0 */
        for (int h = 0; h < H; h++) {
            const size_t o = (size_t)r * Dv + (size_t)h * dvh, rh = (size_t)r * H + h;
            const float *on = st->on + o, *g = st->g + o, *go = dout + o;
            float *du = dU + (size_t)r * Wa + (size_t)h * (dvh + 1), m1 = 0.0f, m2 = 0.0f;
#pragma omp simd
            for (int j = 0; j < dvh; j++) dg[o + j] = 1.0f / (1.0f + xb_expf(-g[j])); /* σ(g) */
            for (int j = 0; j < dvh; j++) { /* d(on) in du first */
                const float sg = dg[o + j];
                du[j] = go[j] * g[j] * sg;
                dg[o + j] = go[j] * on[j] * sg * (1.0f + g[j] * (1.0f - sg));
                m1 += du[j];
                m2 += du[j] * on[j];
            }
            m1 /= (float)dvh;
            m2 /= (float)dvh;
            if (st->norm == NORM_RMS) m1 = 0.0f;
            const float rs = st->rstd[rh], f = st->fac[rh];
            float dxx = 0.0f; /* Σ_j dx_j·x_j */
            for (int j = 0; j < dvh; j++) {
                const float dxj = rs * (du[j] - m1 - on[j] * m2);
                dxx += dxj * (on[j] / rs + st->mean[rh]);
                du[j] = f * dxj;
            }
            du[dvh] = st->clamped[rh] ? -f * (st->sig[rh] > 0 ? 1.0f : -1.0f) * dxx : 0.0f;
        }
    }
    RetShape sq = shape_dq(m, B, L), sk = shape_dk(m, B, L), sv = shape_dv(m, B, L);
    retention_forward(dq, dU, st->vaug, st->kr, &sq, s->scratch);
    retention_forward(dkk, st->vaug, dU, st->qr, &sk, s->scratch);
    retention_forward(dva, st->kr, st->qr, dU, &sv, s->scratch);
    float *dv = dout;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) {
        if (!is_real(s, r / L, r % L)) /* padding keys were zeroed */
            memset(dkk + (size_t)r * D, 0, (size_t)D * sizeof(float));
        for (int h = 0; h < H; h++) /* the ones column is no parameter's */
            memcpy(dv + (size_t)r * Dv + (size_t)h * dvh,
                   dva + (size_t)r * Wa + (size_t)h * (dvh + 1), (size_t)dvh * sizeof(float));
    }
    rotate(dq, st->cs, B, L, D, dk, -1.0f, 1.0f);
    rotate(dkk, st->cs, B, L, D, dk, -1.0f, 1.0f / sqrtf((float)dk));
    linear_backward(dx, mixer_grad(s, st->p_wq), mixer_grad(s, st->p_bq), dq, x,
                    mixer_param(s, st->p_wq), BL, D, D);
    linear_backward(dx, mixer_grad(s, st->p_wk), mixer_grad(s, st->p_bk), dkk, x,
                    mixer_param(s, st->p_wk), BL, D, D);
    linear_backward(dx, mixer_grad(s, st->p_wv), mixer_grad(s, st->p_bv), dv, x,
                    mixer_param(s, st->p_wv), BL, D, Dv);
    linear_backward(dx, mixer_grad(s, st->p_wg), mixer_grad(s, st->p_bg), dg, x,
                    mixer_param(s, st->p_wg), BL, D, Dv);
    arena_reset_to(s->scratch, mark);
}

static uint64_t retnet_flops(const Mixer *m, int B, int L, int backward) {
    const RetnetState *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D, Dv = (uint64_t)st->Dv;
    const uint64_t proj = 2 * BL * D * (2 * D + 3 * Dv); /* q, k, v, g and the output */
    if (!backward) {
        RetShape su = shape_u(m, B, L);
        return proj + retention_flops(&su);
    }
    RetShape sq = shape_dq(m, B, L), sk = shape_dk(m, B, L), sv = shape_dv(m, B, L);
    return 2 * proj + retention_flops(&sq) + retention_flops(&sk) + retention_flops(&sv);
}

const MixerSpec mixer_retnet = {
    .name = "retnet",
    .classes = "RNN",
    .arxiv = "2307.08621",
    .title = "RetNet: multi-scale retention (decay per head, rotated q/k, GroupNorm, swish gate), "
             "two-sided decay for the encoder, chunkwise-recurrent O(L)",
    .honours_mask = 1,
    .beyond_survey = 1,
    MIXER_OPTS(retnet_opts),
    .ops = &(const MixerOps){MIXER_OPS(retnet), .check = retnet_check},
};
