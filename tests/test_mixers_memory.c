/* The memory and low-rank mechanisms: luna, isab, synthesizer, nystrom. */
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
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "mixer_harness.h"
#include "mixers/attn_mixer.h"

static void ref_linear(double *y, const double *x, const float *w, const float *b, int N, int IC,
                       int OC);
static void ref_softmax(double *z, int Lq, int Lk, const unsigned char *kmask);

/* Luna carries its packed sequence from layer to layer: two layers in a chain, the second reading
 * the first's output and its P' (carry[0]: the first layer's carry_out, the second's carry_in;
 * dcarry[1] stays zero: nothing follows the second layer). */
typedef struct LunaChain {
    Mixer m[2];
    ParamTable pt;
    OptValues opts;
    float *params, *grads, *x, *h, *y, *dy, *dh, *dx;
    float *carry[2], *dcarry[2];
    unsigned char *mask;
    Arena acts, scratch;
    int B, L, D, H;
} LunaChain;

/* The step of layer l of the chain. */
static MixerStep chain_step(LunaChain *c, int l) {
    MixerStep s = {.B = c->B,
                   .L = c->L,
                   .mask = c->mask,
                   .training = 1,
                   .seed = 7,
                   .step = 3,
                   .pt = &c->pt,
                   .params = c->params,
                   .grads = c->grads,
                   .scratch = &c->scratch,
                   .carry_in = l ? c->carry[0] : NULL,
                   .carry_out = c->carry[l],
                   .dcarry_in = l ? c->dcarry[0] : NULL,
                   .dcarry_out = c->dcarry[l]};
    return s;
}

static void chain_forward(void *p) {
    LunaChain *c = p;
    MixerStep s0 = chain_step(c, 0), s1 = chain_step(c, 1);
    arena_reset(&c->scratch);
    c->m[0].spec->ops->forward(&c->m[0], &s0, c->h, c->x);
    arena_reset(&c->scratch);
    c->m[1].spec->ops->forward(&c->m[1], &s1, c->y, c->h);
}

/* Two luna layers with `opts` at (B, L, D, H); the last row's last `pad` positions are padding.
 * Norms and biases are moved away from 1 and 0. */
static void chain_init(LunaChain *c, const char *opts, int B, int L, int D, int H, int pad) {
    memset(c, 0, sizeof *c);
    c->B = B, c->L = L, c->D = D, c->H = H;
    const MixerSpec *spec = mixer_get(mixer_find("luna"));
    set_opts(&c->opts, spec, opts);
    params_init(&c->pt);
    for (int l = 0; l < 2; l++) mixer_create(&c->m[l], spec, &c->opts, D, H, L, l, &c->pt);
    for (int l = 0; l < 2; l++) {
        ck_assert_int_gt(c->m[l].carry, 0);
        c->carry[l] = calloc((size_t)B * c->m[l].carry * D, sizeof(float));
        c->dcarry[l] = calloc((size_t)B * c->m[l].carry * D, sizeof(float));
    }
    c->params = calloc(c->pt.total, sizeof(float));
    c->grads = calloc(c->pt.total, sizeof(float));
    Rng r;
    rng_seed(&r, 3, RNG_STREAM_INIT);
    params_initialise(&c->pt, c->params, &r);
    for (int i = 0; i < c->pt.n; i++)
        if (c->pt.info[i].init == INIT_ZEROS || c->pt.info[i].init == INIT_ONES)
            gc_fill_normal(c->params + c->pt.info[i].offset, c->pt.info[i].size, 50 + i, 0.5f);
    Arena ma, ms;
    arena_init_measure(&ma);
    arena_init_measure(&ms);
    for (int l = 0; l < 2; l++) spec->ops->plan(&c->m[l], &ma, &ms, B, L);
    ck_assert_int_eq(arena_init(&c->acts, ma.peak + 64), 0);
    ck_assert_int_eq(arena_init(&c->scratch, ms.peak + 64), 0);
    arena_init_measure(&ms);
    for (int l = 0; l < 2; l++) spec->ops->plan(&c->m[l], &c->acts, &ms, B, L);
    const size_t n = (size_t)B * L * D;
    c->x = malloc(n * sizeof(float)), c->h = malloc(n * sizeof(float)),
    c->y = malloc(n * sizeof(float));
    c->dy = malloc(n * sizeof(float)), c->dh = calloc(n, sizeof(float)),
    c->dx = calloc(n, sizeof(float));
    gc_fill_normal(c->x, n, 61, 1.0f);
    gc_fill_normal(c->dy, n, 62, 1.0f);
    c->mask = malloc((size_t)B * L);
    for (int i = 0; i < B * L; i++) c->mask[i] = i < B * L - pad;
}

static void chain_free(LunaChain *c) {
    for (int l = 0; l < 2; l++) mixer_destroy(&c->m[l]);
    params_free(&c->pt);
    free(c->params), free(c->grads), free(c->x), free(c->h), free(c->y), free(c->dy), free(c->dh);
    free(c->dx), free(c->mask);
    for (int l = 0; l < 2; l++) free(c->carry[l]), free(c->dcarry[l]);
    arena_destroy(&c->acts);
    arena_destroy(&c->scratch);
}

/* Every gradient of the chain — including the first layer's P norm, which only the second layer
 * sees — against finite differences. */
static void check_chain_gradients(const char *opts) {
    LunaChain c;
    chain_init(&c, opts, 2, 9, 8, 2, 2);
    const MixerSpec *spec = c.m[0].spec;
    chain_forward(&c);
    MixerStep s0 = chain_step(&c, 0), s1 = chain_step(&c, 1);
    arena_reset(&c.scratch);
    spec->ops->backward(&c.m[1], &s1, c.dh, c.dy, c.h);
    arena_reset(&c.scratch);
    spec->ops->backward(&c.m[0], &s0, c.dx, c.dh, c.x);
    const size_t n = (size_t)c.B * c.L * c.D;
    GcResult res;
    char what[160];
    snprintf(what, sizeof what, "luna(%s) chain dx", opts);
    GC_ASSERT(
        gradcheck(chain_forward, &c, c.x, n, c.dx, c.y, n, c.dy, 1e-2f, 3e-3, 2e-2, 150, &res),
        what, &res);
    for (int i = 0; i < c.pt.n; i++) {
        const ParamInfo *p = &c.pt.info[i];
        snprintf(what, sizeof what, "luna(%s) %s", opts, p->name);
        GC_ASSERT(gradcheck(chain_forward, &c, c.params + p->offset, p->size, c.grads + p->offset,
                            c.y, n, c.dy, 1e-2f, 3e-3, 2e-2, 60, &res),
                  what, &res);
    }
    /* the first layer's P norm reaches the output only through the second layer */
    const int ln = params_find(&c.pt, "blocks.0.mixer.pnorm.weight");
    double g = 0;
    for (size_t k = 0; k < c.pt.info[ln].size; k++) g += fabs(c.grads[c.pt.info[ln].offset + k]);
    ck_assert(g > 0);
    chain_free(&c);
}

START_TEST(test_luna_two_layers_carry_p_and_its_gradient) {
    check_chain_gradients("length=3");
    check_chain_gradients("length=8,kv=tied,bias=false"); /* the padded row: 7 packed rows */
}
END_TEST

/* A tensor of layer `layer` of the chain by the tail of its name, or NULL when absent. */
static const float *chain_tensor(const LunaChain *c, int layer, const char *what, int required) {
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "blocks.%d.mixer.%s", layer, what);
    const int i = params_find(&c->pt, name);
    ck_assert_msg(i >= 0 || !required, "luna has no tensor %s", name);
    return i < 0 ? NULL : c->params + c->pt.info[i].offset;
}

/* y (N, D) = LayerNorm(x) in double with the harness's epsilon. */
static void ref_layernorm(double *y, const double *x, const float *w, const float *b, int N,
                          int D) {
    for (int r = 0; r < N; r++) {
        double mean = 0, var = 0;
        for (int d = 0; d < D; d++) mean += x[(size_t)r * D + d] / D;
        for (int d = 0; d < D; d++) var += pow(x[(size_t)r * D + d] - mean, 2) / D;
        for (int d = 0; d < D; d++)
            y[(size_t)r * D + d] =
                (x[(size_t)r * D + d] - mean) / sqrt(var + XB_LN_EPS) * w[d] + b[d];
    }
}

/* Multi-head attention of queries q (Lq, D) over keys k and values v (Lk rows, row strides ldk,
 * ldv) with key mask kmask (NULL: all), scaled by 1/√Dh: o (Lq, D). */
static void ref_attention(double *o, const double *q, const double *k, int ldk, const double *v,
                          int ldv, const unsigned char *kmask, int Lq, int Lk, int D, int H) {
    const int Dh = D / H;
    double *z = malloc(sizeof(double) * Lq * Lk);
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < Lq; i++)
            for (int j = 0; j < Lk; j++) {
                double acc = 0;
                for (int d = 0; d < Dh; d++)
                    acc += q[(size_t)i * D + h * Dh + d] * k[(size_t)j * ldk + h * Dh + d];
                z[(size_t)i * Lk + j] = acc / sqrt(Dh);
            }
        ref_softmax(z, Lq, Lk, kmask);
        for (int i = 0; i < Lq; i++)
            for (int d = 0; d < Dh; d++) {
                double acc = 0;
                for (int j = 0; j < Lk; j++)
                    acc += z[(size_t)i * Lk + j] * v[(size_t)j * ldv + h * Dh + d];
                o[(size_t)i * D + h * Dh + d] = acc;
            }
    }
    free(z);
}

/* One luna layer of batch row b in double, as LunarMultiheadAttention with the layer's
 * post-norm on P: C = Attn(P·W_pq, X·W_pk, X·W_pv) (no output projection), y = Attn(X·W_q,
 * C·W_k, C·W_v)·W_o over the packed rows r < n (the row's real tokens, when dynamic), and
 * P' = LayerNorm(P + C). Tied: one projection gives both keys and values. */
static void luna_ref_layer(const LunaChain *c, int layer, int l, int tied, int dynamic, int b,
                           const double *x, const double *p, double *y, double *pout) {
    const int L = c->L, D = c->D, H = c->H, kvw = tied ? D : 2 * D;
    const char *kv = tied ? "c" : "kv";
    char nm[64];
    const unsigned char *xmask = c->mask + (size_t)b * L;
    unsigned char *pmask = malloc((size_t)l);
    int n = 0;
    for (int j = 0; j < L; j++) n += xmask[j];
    for (int r = 0; r < l; r++) pmask[r] = !dynamic || r < n;
    double *pq = malloc(sizeof(double) * l * D), *xkv = malloc(sizeof(double) * L * kvw);
    double *cc = malloc(sizeof(double) * l * D), *uq = malloc(sizeof(double) * L * D);
    double *ckv = malloc(sizeof(double) * l * kvw), *att = malloc(sizeof(double) * L * D);
#define W(what) chain_tensor(c, layer, what, 1)
#define BIAS(what) chain_tensor(c, layer, what, 0)
    ref_linear(pq, p, W("pack.q.weight"), BIAS("pack.q.bias"), l, D, D);
    snprintf(nm, sizeof nm, "pack.%s.weight", kv);
    const float *wpkv = W(nm);
    snprintf(nm, sizeof nm, "pack.%s.bias", kv);
    ref_linear(xkv, x, wpkv, BIAS(nm), L, D, kvw);
    ref_attention(cc, pq, xkv, kvw, xkv + (tied ? 0 : D), kvw, xmask, l, L, D, H);
    ref_linear(uq, x, W("unpack.q.weight"), BIAS("unpack.q.bias"), L, D, D);
    snprintf(nm, sizeof nm, "unpack.%s.weight", kv);
    const float *wkv = W(nm);
    snprintf(nm, sizeof nm, "unpack.%s.bias", kv);
    ref_linear(ckv, cc, wkv, BIAS(nm), l, D, kvw);
    ref_attention(att, uq, ckv, kvw, ckv + (tied ? 0 : D), kvw, pmask, L, l, D, H);
    ref_linear(y, att, W("unpack.out.weight"), BIAS("unpack.out.bias"), L, D, D);
    for (int k = 0; k < l * D; k++) cc[k] += p[k];
    ref_layernorm(pout, cc, W("pnorm.weight"), W("pnorm.bias"), l, D);
#undef W
#undef BIAS
    free(pmask), free(pq), free(xkv), free(cc), free(uq), free(ckv), free(att);
}

/* Luna's two layers against the official mechanism materialised in double: the first layer's
 * P₀ = LayerNorm(√D·E + S) (LunaLRAEncoder: projected_embeddings scaled by √D, plus sinusoidal
 * positions, then the embedding LayerNorm), each layer as luna_ref_layer, the second reading
 * the first's output and P'. */
static void check_luna_reference(const char *opts, int l, int tied, int dynamic) {
    LunaChain c;
    chain_init(&c, opts, 2, 9, 8, 2, 3);
    const int L = c.L, D = c.D;
    ck_assert_msg(chain_tensor(&c, 0, "pack.out.weight", 0) == NULL,
                  "luna(%s): the pack has an output projection, which "
                  "LunarMultiheadAttention._compute_pcontext does not",
                  opts);
    chain_forward(&c);
    const float *e = chain_tensor(&c, 0, "p", 1);
    const float *enw = chain_tensor(&c, 0, "p0norm.weight", 1),
                *enb = chain_tensor(&c, 0, "p0norm.bias", 1);
    double *pre = malloc(sizeof(double) * l * D), *p0 = malloc(sizeof(double) * l * D);
    const int half = D / 2; /* fairseq's get_sinusoidal_positional_embedding */
    for (int r = 0; r < l; r++)
        for (int i = 0; i < half; i++) {
            const double f = exp(-i * log(10000.0) / (half - 1));
            pre[r * D + i] = sqrt(D) * e[r * D + i] + sin(r * f);
            pre[r * D + half + i] = sqrt(D) * e[r * D + half + i] + cos(r * f);
        }
    ref_layernorm(p0, pre, enw, enb, l, D);
    double *x = malloc(sizeof(double) * L * D), *h = malloc(sizeof(double) * L * D);
    double *y = malloc(sizeof(double) * L * D), *p1 = malloc(sizeof(double) * l * D);
    double *p2 = malloc(sizeof(double) * l * D), worst = 0;
    for (int b = 0; b < c.B; b++) {
        for (int k = 0; k < L * D; k++) x[k] = c.x[(size_t)b * L * D + k];
        luna_ref_layer(&c, 0, l, tied, dynamic, b, x, p0, h, p1);
        luna_ref_layer(&c, 1, l, tied, dynamic, b, h, p1, y, p2);
        for (int k = 0; k < L * D; k++) {
            worst = fmax(worst, fabs(c.h[(size_t)b * L * D + k] - h[k]) / (1 + fabs(h[k])));
            worst = fmax(worst, fabs(c.y[(size_t)b * L * D + k] - y[k]) / (1 + fabs(y[k])));
        }
    }
    ck_assert_msg(worst <= 3e-5, "luna(%s) differs from the reference by %g", opts, worst);
    free(pre), free(p0), free(x), free(h), free(y), free(p1), free(p2);
    chain_free(&c);
}

START_TEST(test_luna_equals_the_official_mechanism_materialised) {
    check_luna_reference("length=4", 4, 0, 1);
    check_luna_reference("length=12,kv=tied", 12, 1, 1); /* rows of 9 and 6 packed rows */
    check_luna_reference("length=12,dynamic=false,bias=false", 12, 0, 0);
    check_luna_reference("length=3,kv=tied,bias=false", 3, 1, 1);
}
END_TEST

/* The Set Transformer's ISAB is permutation-equivariant (Lee et al., Property 1): shuffling the
 * input rows shuffles the output rows the same way. */
START_TEST(test_isab_is_permutation_equivariant) {
    const int L = 12, D = 8;
    Inst t;
    inst_init(&t, "isab", "inducing=5,bias=true", 1, L, D, 2, NULL, 29);
    inst_forward(&t);
    float y0[12 * 8], x0[12 * 8];
    memcpy(y0, t.y, sizeof y0);
    memcpy(x0, t.x, sizeof x0);
    int perm[12];
    for (int i = 0; i < L; i++) perm[i] = (5 * i + 3) % L;
    for (int i = 0; i < L; i++) memcpy(t.x + i * D, x0 + perm[i] * D, D * sizeof(float));
    inst_forward(&t);
    for (int i = 0; i < L; i++)
        for (int d = 0; d < D; d++)
            ck_assert_float_eq_tol(t.y[i * D + d], y0[perm[i] * D + d], 1e-5f);
    inst_free(&t);
}
END_TEST

/* Synthesizer mixed with dot-product attention and its synthetic logits zeroed is full attention
 * under the same projections (full's packed [q; k; v] rows copied into qk and value). */
static void check_synth_zero_is_full(const char *opts, const char *zero) {
    const int B = 2, L = 11, D = 8, H = 2, pad[2] = {0, 3};
    Inst a, f;
    inst_init(&a, "synthesizer", opts, B, L, D, H, pad, 5);
    inst_init(&f, "full", NULL, B, L, D, H, pad, 5);
#define T(inst, nm)                                                                                \
    ((inst).params + (inst).pt.info[params_find(&(inst).pt, "blocks.0.mixer." nm)].offset)
    memcpy(T(a, "qk.weight"), T(f, "qkv.weight"), (size_t)2 * D * D * sizeof(float));
    memcpy(T(a, "value.weight"), T(f, "qkv.weight") + 2 * D * D, (size_t)D * D * sizeof(float));
    memcpy(T(a, "out.weight"), T(f, "out.weight"), (size_t)D * D * sizeof(float));
    const int z = params_find(&a.pt, zero);
    ck_assert_int_ge(z, 0);
    memset(a.params + a.pt.info[z].offset, 0, a.pt.info[z].size * sizeof(float));
#undef T
    inst_forward(&a);
    inst_forward(&f);
    for (size_t k = 0; k < (size_t)B * L * D; k++)
        ck_assert_msg(fabsf(a.y[k] - f.y[k]) <= 1e-5f * (1 + fabsf(f.y[k])),
                      "synthesizer(%s): %g vs %g", opts, a.y[k], f.y[k]);
    inst_free(&a);
    inst_free(&f);
}

START_TEST(test_synthesizer_with_zero_synthetic_logits_and_dot_equals_full) {
    check_synth_zero_is_full("k=4,dot=true", "blocks.0.mixer.r1");
    check_synth_zero_is_full("variant=random,dot=true", "blocks.0.mixer.random");
}
END_TEST

/* A tensor of t's mechanism by the tail of its name ("value.weight"), or NULL when absent. */
static float *tensor_or_null(Inst *t, const char *what) {
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "blocks.0.mixer.%s", what);
    const int i = params_find(&t->pt, name);
    return i < 0 ? NULL : t->params + t->pt.info[i].offset;
}
static float *tensor(Inst *t, const char *what) {
    float *p = tensor_or_null(t, what);
    ck_assert_msg(p != NULL, "%s has no tensor %s", t->m.spec->name, what);
    return p;
}
static const ParamInfo *tensor_info(Inst *t, const char *what) {
    char name[XB_PARAM_NAME];
    snprintf(name, sizeof name, "blocks.0.mixer.%s", what);
    const int i = params_find(&t->pt, name);
    ck_assert_msg(i >= 0, "%s has no tensor %s", t->m.spec->name, what);
    return &t->pt.info[i];
}

/* y (N, OC) = x (N, IC)·Wᵀ + b in double (b may be NULL). */
static void ref_linear(double *y, const double *x, const float *w, const float *b, int N, int IC,
                       int OC) {
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) {
            double acc = b ? b[o] : 0.0;
            for (int c = 0; c < IC; c++)
                acc += x[(size_t)r * IC + c] * (double)w[(size_t)o * IC + c];
            y[(size_t)r * OC + o] = acc;
        }
}

/* Row-wise softmax of z (Lq, Lk) over the keys with kmask[j] (NULL: all), in place; a row with no
 * visible key becomes zeros. */
static void ref_softmax(double *z, int Lq, int Lk, const unsigned char *kmask) {
    for (int i = 0; i < Lq; i++) {
        double *r = z + (size_t)i * Lk, mx = -INFINITY, sum = 0;
        for (int j = 0; j < Lk; j++)
            if (!kmask || kmask[j]) mx = fmax(mx, r[j]);
        for (int j = 0; j < Lk; j++) sum += (r[j] = (!kmask || kmask[j]) ? exp(r[j] - mx) : 0.0);
        for (int j = 0; j < Lk; j++) r[j] = sum > 0 ? r[j] / sum : 0.0;
    }
}

/* Synthesizer's output of t, materialised in double from its own tensors: per head h (set of
 * synthetic logits g = h, or 0 with heads=shared) the logits B_g plus, with dot, Q_h·K_hᵀ/√Dh; the
 * masked softmax times head h's values; the output projection. */
static void synth_reference(Inst *t, int shared, int dot, double *yref) {
    const int B = t->B, L = t->L, D = t->D, H = t->H, Dh = D / H, n = t->m.max_len, BL = B * L;
    const int G = shared ? 1 : H, Dg = D / G;
    const float *r1 = tensor_or_null(t, "r1"), *r2 = tensor_or_null(t, "r2");
    const float *rr = tensor_or_null(t, "random"), *w1 = tensor_or_null(t, "dense.fc1.weight");
    int k = 0;
    if (r1) { /* each set of logits its own factors: (G, n, k) */
        const ParamInfo *p = tensor_info(t, "r1");
        ck_assert_msg(p->ndim == 3 && p->shape[0] == G && p->shape[1] == n, "r1 is not (%d, %d, k)",
                      G, n);
        k = p->shape[2];
    }
    if (rr) {
        const ParamInfo *p = tensor_info(t, "random");
        ck_assert_msg(p->ndim == 3 && p->shape[0] == G && p->shape[1] == n && p->shape[2] == n,
                      "random is not (%d, %d, %d)", G, n, n);
    }
    if (w1) {
        const ParamInfo *p = tensor_info(t, "dense.fc2.weight");
        ck_assert_msg(p->shape[0] == n && p->shape[1] == Dg, "dense.fc2 is not (%d, %d)", n, Dg);
    }
    double *x = malloc(sizeof(double) * BL * D), *v = malloc(sizeof(double) * BL * D);
    double *qk = malloc(sizeof(double) * BL * 2 * D), *h1 = malloc(sizeof(double) * BL * D);
    double *att = calloc((size_t)BL * D, sizeof(double)), *z = malloc(sizeof(double) * L * L);
    for (int i = 0; i < BL * D; i++) x[i] = t->x[i];
    ref_linear(v, x, tensor(t, "value.weight"), tensor_or_null(t, "value.bias"), BL, D, D);
    if (dot) ref_linear(qk, x, tensor(t, "qk.weight"), tensor_or_null(t, "qk.bias"), BL, D, 2 * D);
    if (w1) {
        ref_linear(h1, x, w1, tensor_or_null(t, "dense.fc1.bias"), BL, D, D);
        for (int i = 0; i < BL * D; i++) h1[i] = fmax(h1[i], 0.0);
    }
    const float *w2 = w1 ? tensor(t, "dense.fc2.weight") : NULL;
    const float *b2 = w1 ? tensor_or_null(t, "dense.fc2.bias") : NULL;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int g = shared ? 0 : h;
            for (int i = 0; i < L; i++)
                for (int j = 0; j < L; j++) {
                    double acc = 0;
                    if (r1)
                        for (int d = 0; d < k; d++)
                            acc += (double)r1[((size_t)g * n + i) * k + d] *
                                   r2[((size_t)g * n + j) * k + d];
                    if (rr) acc = rr[((size_t)g * n + i) * n + j];
                    if (w1) {
                        acc = b2 ? b2[j] : 0.0;
                        for (int c = 0; c < Dg; c++)
                            acc += (double)w2[(size_t)j * Dg + c] *
                                   h1[((size_t)b * L + i) * D + g * Dg + c];
                    }
                    for (int d = 0; dot && d < Dh; d++)
                        acc += qk[((size_t)b * L + i) * 2 * D + h * Dh + d] *
                               qk[((size_t)b * L + j) * 2 * D + D + h * Dh + d] / sqrt(Dh);
                    z[(size_t)i * L + j] = acc;
                }
            ref_softmax(z, L, L, t->mask ? t->mask + (size_t)b * L : NULL);
            for (int i = 0; i < L; i++)
                for (int d = 0; d < Dh; d++) {
                    double acc = 0;
                    for (int j = 0; j < L; j++)
                        acc += z[(size_t)i * L + j] * v[((size_t)b * L + j) * D + h * Dh + d];
                    att[((size_t)b * L + i) * D + h * Dh + d] = acc;
                }
        }
    ref_linear(yref, att, tensor(t, "out.weight"), tensor_or_null(t, "out.bias"), BL, D, D);
    free(x), free(v), free(qk), free(h1), free(att), free(z);
}

/* Each variant (with and without dot, per head and shared) equals the materialised reference, run
 * below its max_len (the first L rows and columns of the synthetic logits) with padding. */
START_TEST(test_synthesizer_equals_naive_reference_for_every_variant) {
    static const char *const OPTS[] = {
        "k=3",
        "k=3,dot=true,bias=true",
        "k=2,heads=shared",
        "variant=dense",
        "variant=dense,dot=true,bias=true",
        "variant=dense,heads=shared,bias=true",
        "variant=random",
        "variant=random,dot=true,trainable=false",
        "variant=random,heads=shared,dot=true",
    };
    const int B = 2, L = 9, n = 12, D = 8, H = 2, pad[2] = {0, 3};
    for (size_t c = 0; c < sizeof OPTS / sizeof *OPTS; c++) {
        Inst t;
        inst_init_at(&t, "synthesizer", OPTS[c], B, L, n, D, H, pad, 17 + c);
        inst_forward(&t);
        double *yref = malloc(sizeof(double) * B * L * D);
        synth_reference(&t, strstr(OPTS[c], "heads=shared") != NULL,
                        strstr(OPTS[c], "dot=true") != NULL, yref);
        double worst = 0;
        for (int i = 0; i < B * L * D; i++)
            worst = fmax(worst, fabs(t.y[i] - yref[i]) / (1 + fabs(yref[i])));
        ck_assert_msg(worst <= 2e-5, "synthesizer(%s) differs from the reference by %g", OPTS[c],
                      worst);
        free(yref);
        inst_free(&t);
    }
}
END_TEST

/* Largest |y[i, d] − y[i, Dh + d]|: head 0's against head 1's output channels. */
static double head_gap(const Inst *t, int Dh) {
    double gap = 0;
    for (int i = 0; i < t->B * t->L; i++)
        for (int d = 0; d < Dh; d++)
            gap = fmax(gap, fabs(t->y[(size_t)i * t->D + d] - t->y[(size_t)i * t->D + Dh + d]));
    return gap;
}

/* Each head has its own synthetic attention (LRA's `random1` (heads, max_length, k), ...): with
 * dot off, the output projection the identity and head 1's value weights a copy of head 0's, the
 * two heads' channels still differ (one shared map would make them equal, as heads=shared does);
 * and changing head 1's synthetic parameters leaves head 0's channels as they were. */
static void check_heads_independent(const char *variant, const char *what, size_t rows_from,
                                    size_t rows_n) {
    const int L = 10, D = 8, H = 2, Dh = D / H;
    char opts[96];
    for (int shared = 0; shared < 2; shared++) {
        snprintf(opts, sizeof opts, "variant=%s,k=4%s", variant, shared ? ",heads=shared" : "");
        Inst t;
        inst_init(&t, "synthesizer", opts, 1, L, D, H, NULL, 23);
        float *wo = tensor(&t, "out.weight"), *wv = tensor(&t, "value.weight");
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) wo[i * D + j] = i == j;
        memcpy(wv + Dh * D, wv, (size_t)Dh * D * sizeof(float));
        inst_forward(&t);
        const double gap = head_gap(&t, Dh);
        if (shared) {
            ck_assert_msg(gap <= 1e-6, "%s with heads=shared: heads differ by %g", variant, gap);
        } else {
            ck_assert_msg(gap > 1e-3,
                          "%s: two heads with the same values give the same output "
                          "(largest difference %g): one synthetic map for all heads",
                          variant, gap);
            float *y0 = malloc(sizeof(float) * L * D);
            memcpy(y0, t.y, sizeof(float) * L * D);
            float *p = tensor(&t, what);
            for (size_t q = rows_from; q < rows_from + rows_n; q++) /* not a constant shift */
                p[q] += 0.25f * (float)((q * 7) % 5);
            inst_forward(&t);
            double d0 = 0, d1 = 0;
            for (int i = 0; i < L; i++)
                for (int d = 0; d < Dh; d++) {
                    d0 = fmax(d0, fabs(t.y[i * D + d] - y0[i * D + d]));
                    d1 = fmax(d1, fabs(t.y[i * D + Dh + d] - y0[i * D + Dh + d]));
                }
            ck_assert_msg(d0 == 0 && d1 > 1e-3,
                          "%s: changing head 1's %s moved head 0 by %g and head 1 by %g", variant,
                          what, d0, d1);
            free(y0);
        }
        inst_free(&t);
    }
}

START_TEST(test_synthesizer_heads_have_their_own_synthetic_attention) {
    const size_t n = 10, k = 4, D = 8, Dh = 4;
    check_heads_independent("factorized", "r1", n * k, n * k);            /* R1 of head 1 */
    check_heads_independent("random", "random", n * n, n * n);            /* R of head 1 */
    check_heads_independent("dense", "dense.fc1.weight", Dh * D, Dh * D); /* W1's head-1 rows */
}
END_TEST

/* Nyströmformer with a landmark per token is exact when the pseudo-inverse has converged:
 * F = A = B = softmax(QKᵀ/√d), and A·A⁺·A·V = A·V. Fewer landmarks approximate it, the error
 * falling as they grow. */
START_TEST(test_nystrom_with_every_token_a_landmark_equals_full) {
    check_equals_full("nystrom", "landmarks=13,conv=0,pinv_iters=40", NULL, 1, 13, 8, 2, 1e-3);
    check_equals_full("nystrom", "landmarks=300,conv=0,pinv_iters=40", NULL, 1, 300, 8, 2, 2e-3);
}
END_TEST

START_TEST(test_nystrom_error_against_softmax_falls_as_landmarks_grow) {
    const int M[4] = {2, 8, 32, 64};
    double mean[4], worst;
    char opts[64];
    for (int i = 0; i < 4; i++) {
        snprintf(opts, sizeof opts, "landmarks=%d,conv=0,pinv_iters=30", M[i]);
        error_vs_full("nystrom", opts, NULL, 1, 64, 8, 2, &worst, &mean[i]);
    }
    for (int i = 1; i < 4; i++)
        ck_assert_msg(mean[i] < mean[i - 1], "error with %d landmarks (%g) is not below %d's (%g)",
                      M[i], mean[i], M[i - 1], mean[i - 1]);
    ck_assert_msg(mean[3] < 1e-2 && mean[3] < 0.1 * mean[0],
                  "64 landmarks of 64 tokens: %g (2: %g)", mean[3], mean[0]);
}
END_TEST

static Suite *mixers_memory_suite(void) {
    Suite *s = suite_create("mixers_memory");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_luna_two_layers_carry_p_and_its_gradient);
    tcase_add_test(tc, test_luna_equals_the_official_mechanism_materialised);
    tcase_add_test(tc, test_isab_is_permutation_equivariant);
    tcase_add_test(tc, test_synthesizer_with_zero_synthetic_logits_and_dot_equals_full);
    tcase_add_test(tc, test_synthesizer_equals_naive_reference_for_every_variant);
    tcase_add_test(tc, test_synthesizer_heads_have_their_own_synthetic_attention);
    tcase_add_test(tc, test_nystrom_with_every_token_a_landmark_equals_full);
    tcase_add_test(tc, test_nystrom_error_against_softmax_falls_as_landmarks_grow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(mixers_memory_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
