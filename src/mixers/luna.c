/* luna: Linear Unified Nested Attention (Ma et al., arXiv 2106.01540, §3), as the authors' code
 * runs it (github.com/XuezheMax/fairseq-apollo: LunarMultiheadAttention in
 * fairseq/modules/luna_attention.py, LunaSentenceEncoderLayer in luna_sentence_encoder.py and
 * LunaLRAEncoder in fairseq/models/lra/luna_lra_encoder.py). An extra sequence P of l rows is
 * carried from layer to layer; per layer, with H heads of width Dh = D/H on both sides:
 *   pack (_compute_pcontext):  C = softmax(P·W_pqᵀ/√Dh · (X·W_pkᵀ)ᵀ + mask_X)·(X·W_pvᵀ), (l, D):
 *                              no output projection; padding keys of X masked;
 *   unpack (forward):          Y = softmax(X·W_qᵀ/√Dh · (C·W_kᵀ)ᵀ + mask_P)·(C·W_vᵀ)·W_oᵀ, (L, D);
 *   the next layer's P:        P' = LayerNorm(P + C) (the layer's post-norm
 *                              self_atten_proj_layer_norm; LunaLRAEncoder builds its layers with
 *                              normalize_before=False).
 * Every projection has a bias (LunarMultiheadAttention's bias=True; `bias: false` drops them).
 * The key and value projections are separate (`kv: untied`: LRA's model passes tie_kv=False, and
 * the paper's equations); `kv: tied` uses one projection as both key and value on each side
 * (pc_proj, c_proj: the module's own default, the luna_base_tied models).
 * The first layer's P (LunaLRAEncoder.forward): P₀ = LayerNorm(√D·E + S) with E (l, D) a learned
 * parameter drawn from N(0, 1/D) (projected_embeddings), scaled by embed_scale = √D and shifted
 * by the sinusoidal positions S (projected_positions; LRA's Luna uses sinusoidal positions) before
 * the embedding LayerNorm (proj_emb_layer_norm: every LRA Luna config sets
 * encoder_normalize_before, hence layernorm_embedding). `dynamic` (LunaLRAEncoder's default
 * dynamic_projection): a row with n < l real tokens uses only the first n rows of P, the others
 * masked as unpack keys (px_padding_mask). Initialisation as reset_parameters: Xavier-uniform with
 * gain 1/√2 for the query, key and value projections, gain 1 for the output, biases 0.
 * Dropout aside; the LayerNorms use this harness's epsilon (1e-6; fairseq's LayerNorm 1e-5).
 * P' leaves through MixerStep.carry_out and the next layer's P arrives through carry_in (buffers
 * the encoder owns, Mixer.carry = l rows); gradients follow the same path back: a layer's backward
 * adds the gradient of its P into dcarry_in, the previous layer's dcarry_out, which that layer's
 * backward (run next) starts from. LRA runs
 * l ∈ {16, 128, 256}; 256 is the default here (Luna-256). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/attention.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"

static const char *const KV[] = {"untied", "tied", NULL};
enum { KV_UNTIED, KV_TIED, N_KV };
MOPT_CHOICES_ARE(KV, N_KV);

static const OptSpec luna_opts[] = {
    MOPT_INT("length", 256, 1, 65536, "rows l of the packed sequence (LRA: 16, 128 or 256)"),
    MOPT_ENUM("kv", KV_UNTIED, KV,
              "untied: separate key and value projections (LRA's runs, the paper); tied: one "
              "projection as both (the code's luna_base_tied)"),
    MOPT_BOOL("dynamic", 1,
              "a row of n < l real tokens uses only the first n packed rows (the LRA code's "
              "dynamic projection); false: all l"),
    MOPT_BOOL("bias", 1, "biases in the projections (the authors' code: yes)"),
};
#define NOPTS MOPT_COUNT(luna_opts)

typedef struct LunaState {
    int l, tied, dynamic, kvw;      /* kvw: width of a key/value projection's output, D or 2D */
    int p_e, p_enw, p_enb;          /* the first layer: E (l, D) and the LayerNorm of √D·E + S */
    int p_pq, p_bpq, p_pkv, p_bpkv; /* pack: query of P, key/value of X */
    int p_q, p_bq, p_kv, p_bkv, p_o, p_bo; /* unpack: query of X, key/value of C, output */
    int p_lnw, p_lnb;                      /* LayerNorm of P + C */
    float *sin;                            /* the first layer: S (l, D) */
    /* saved by forward */
    float *epre, *p0, *emean, *erstd; /* the first layer: √D·E + S, P₀ (l, D); (l) */
    float *pin;                       /* (B, l, D) this layer's P */
    unsigned char *pmask;             /* (B, l) packed rows visible to the unpack */
    float *pq, *xkv, *c, *plse;       /* (B, l, D), (B, L, kvw), (B, l, D), (B, H, l) */
    float *uq, *ckv, *uatt, *ulse;    /* (B, L, D), (B, l, kvw), (B, L, D), (B, H, L) */
    float *psum, *mean, *rstd;        /* P + C (B, l, D); the statistics of P' = LN(P + C) */
} LunaState;

/* A D×D-block Xavier-uniform projection with gain g (PyTorch's xavier_uniform_(w, gain=g)). */
static int add_proj(ParamTable *pt, const char *prefix, const char *what, int out, int D, float g,
                    int bias, int *pb) {
    const int w = params_add2f(pt, out, D, INIT_UNIFORM, g * sqrtf(6.0f / (float)(2 * D)), 1,
                               "%s.%s.weight", prefix, what);
    *pb = -1;
    if (bias) {
        *pb = params_add1f(pt, out, INIT_ZEROS, 0, 0, "%s.%s.bias", prefix, what);
    }
    return w;
}

/* S (l, D) as fairseq's get_sinusoidal_positional_embedding: [sin(r·f), cos(r·f)] with
 * f_i = 10000^(−i/(D/2 − 1)), i < D/2, and a zero column when D is odd. */
static void sinusoid(float *s, int l, int D) {
    const int half = D / 2;
    const double step = log(10000.0) / (double)(half > 1 ? half - 1 : 1);
    for (int r = 0; r < l; r++) {
        for (int i = 0; i < half; i++) {
            const double a = (double)r * exp(-(double)i * step);
            s[(size_t)r * D + i] = (float)sin(a);
            s[(size_t)r * D + half + i] = (float)cos(a);
        }
        if (D % 2) s[(size_t)r * D + D - 1] = 0.0f;
    }
}

static void luna_create(Mixer *m, ParamTable *pt) {
    LunaState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    m->state = st;
    st->l = opt_int(m->opts, luna_opts, NOPTS, "length");
    st->tied = opt_enum(m->opts, luna_opts, NOPTS, "kv") == KV_TIED;
    st->dynamic = opt_bool(m->opts, luna_opts, NOPTS, "dynamic");
    const int bias = opt_bool(m->opts, luna_opts, NOPTS, "bias");
    const int D = m->D, kvw = st->tied ? D : 2 * D;
    const float g = 1.0f / sqrtf(2.0f);
    st->kvw = kvw;
    m->carry = st->l; /* P' for the next layer */
    st->p_e = st->p_enw = st->p_enb = -1;
    if (m->layer == 0) {
        st->p_e =
            params_add2f(pt, st->l, D, INIT_NORMAL, 1.0f / sqrtf((float)D), 0, "%s.p", m->prefix);
        st->p_enw = params_add1f(pt, D, INIT_ONES, 0, 0, "%s.p0norm.weight", m->prefix);
        st->p_enb = params_add1f(pt, D, INIT_ZEROS, 0, 0, "%s.p0norm.bias", m->prefix);
        st->sin = malloc((size_t)st->l * D * sizeof(float));
        XB_ASSERT(st->sin);
        sinusoid(st->sin, st->l, D);
    }
    const char *kv = st->tied ? "c" : "kv";
    char pre[sizeof m->prefix + 8];
    snprintf(pre, sizeof pre, "%s.pack", m->prefix);
    st->p_pq = add_proj(pt, pre, "q", D, D, g, bias, &st->p_bpq);
    st->p_pkv = add_proj(pt, pre, kv, kvw, D, g, bias, &st->p_bpkv);
    snprintf(pre, sizeof pre, "%s.unpack", m->prefix);
    st->p_q = add_proj(pt, pre, "q", D, D, g, bias, &st->p_bq);
    st->p_kv = add_proj(pt, pre, kv, kvw, D, g, bias, &st->p_bkv);
    st->p_o = add_proj(pt, pre, "out", D, D, 1.0f, bias, &st->p_bo);
    st->p_lnw = params_add1f(pt, D, INIT_ONES, 0, 0, "%s.pnorm.weight", m->prefix);
    st->p_lnb = params_add1f(pt, D, INIT_ZEROS, 0, 0, "%s.pnorm.bias", m->prefix);
}

/* Pack: l queries of P over the L keys of X. Unpack: L queries of X over the l rows of C. */
static AttnShape pack_shape(const Mixer *m, int B, int L) {
    const LunaState *st = m->state;
    return attn_shape(B, m->H, st->l, L, m->D / m->H, m->D, st->kvw, st->kvw, m->D);
}
static AttnShape unpack_shape(const Mixer *m, int B, int L) {
    const LunaState *st = m->state;
    return attn_shape(B, m->H, L, st->l, m->D / m->H, m->D, st->kvw, st->kvw, m->D);
}

static void luna_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    LunaState *st = m->state;
    const size_t D = (size_t)m->D, l = (size_t)st->l, Bl = (size_t)B * l, BL = (size_t)B * L;
    const size_t H = (size_t)m->H, kvw = (size_t)st->kvw;
    st->epre = st->p0 = st->emean = st->erstd = NULL;
    if (st->p_e >= 0) {
        st->epre = arena_floats(acts, l * D);
        st->p0 = arena_floats(acts, l * D);
        st->emean = arena_floats(acts, l);
        st->erstd = arena_floats(acts, l);
    }
    st->pin = arena_floats(acts, Bl * D);
    st->pmask = arena_alloc(acts, Bl);
    st->pq = arena_floats(acts, Bl * D);
    st->xkv = arena_floats(acts, BL * kvw);
    st->c = arena_floats(acts, Bl * D);
    st->plse = arena_floats(acts, Bl * H);
    st->uq = arena_floats(acts, BL * D);
    st->ckv = arena_floats(acts, Bl * kvw);
    st->uatt = arena_floats(acts, BL * D);
    st->ulse = arena_floats(acts, BL * H);
    st->psum = arena_floats(acts, Bl * D);
    st->mean = arena_floats(acts, Bl);
    st->rstd = arena_floats(acts, Bl);
    /* backward: d(uatt), d(uq), d(c), d(pq), d(pin), d(ckv), d(xkv), the separate key and
     * value gradients of a tied projection, d(P₀) and d(√D·E + S), then an attention's */
    AttnShape sp = pack_shape(m, B, L), su = unpack_shape(m, B, L);
    const size_t att = attn_scratch_floats(&sp, omp_get_max_threads()),
                 atu = attn_scratch_floats(&su, omp_get_max_threads());
    arena_floats(scratch, 2 * BL * D + 3 * Bl * D + Bl * kvw + BL * kvw +
                              (BL > Bl ? BL : Bl) * 2 * D + 2 * l * D + (att > atu ? att : atu) +
                              16 * 12);
}

/* Forward of one projection into (B·N, out) rows. */
#define PROJ(out, in, w, b, N, oc)                                                                 \
    linear_forward(out, in, mixer_param(s, w), mixer_param(s, b), N, D, oc)

static void luna_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    LunaState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, l = st->l, Bl = B * l, kvw = st->kvw;
    XB_ASSERT(s->carry_out);
    if (st->p_e < 0) { /* the previous layer's P' (the encoder runs the layers in order) */
        XB_ASSERT(s->carry_in);
        memcpy(st->pin, s->carry_in, (size_t)Bl * D * sizeof(float));
    } else { /* P₀ = LN(√D·E + S), the same for every batch row */
        const float *e = mixer_param(s, st->p_e), sq = sqrtf((float)D);
        for (size_t k = 0; k < (size_t)l * D; k++) st->epre[k] = sq * e[k] + st->sin[k];
        layernorm_forward(st->p0, st->emean, st->erstd, st->epre, mixer_param(s, st->p_enw),
                          mixer_param(s, st->p_enb), l, D);
        for (int b = 0; b < B; b++)
            memcpy(st->pin + (size_t)b * l * D, st->p0, (size_t)l * D * sizeof(float));
    }
    for (int b = 0; b < B; b++) { /* packed rows r < (real tokens of the row) when dynamic */
        int n = L;
        if (s->mask) {
            n = 0;
            for (int j = 0; j < L; j++) n += s->mask[(size_t)b * L + j] != 0;
        }
        for (int r = 0; r < l; r++) st->pmask[(size_t)b * l + r] = !st->dynamic || r < n;
    }
    const int voff = st->tied ? 0 : D;
    /* pack: C = Attn(P·W_pq, X·W_pk, X·W_pv) */
    PROJ(st->pq, st->pin, st->p_pq, st->p_bpq, Bl, D);
    PROJ(st->xkv, x, st->p_pkv, st->p_bpkv, B * L, kvw);
    AttnShape sp = pack_shape(m, B, L);
    attn_forward(st->c, st->plse, st->pq, st->xkv, st->xkv + voff, s->mask, &sp, s->scratch);
    /* unpack: Y = Attn(X·W_q, C·W_k, C·W_v)·W_o */
    PROJ(st->uq, x, st->p_q, st->p_bq, B * L, D);
    PROJ(st->ckv, st->c, st->p_kv, st->p_bkv, Bl, kvw);
    AttnShape su = unpack_shape(m, B, L);
    attn_forward(st->uatt, st->ulse, st->uq, st->ckv, st->ckv + voff, st->pmask, &su, s->scratch);
    PROJ(y, st->uatt, st->p_o, st->p_bo, B * L, D);
    /* the packed sequence for the next layer */
    for (size_t k = 0; k < (size_t)Bl * D; k++) st->psum[k] = st->pin[k] + st->c[k];
    layernorm_forward(s->carry_out, st->mean, st->rstd, st->psum, mixer_param(s, st->p_lnw),
                      mixer_param(s, st->p_lnb), Bl, D);
}

/* Backward of attention with keys and values from one projection output kv (N rows of width
 * kvw): dkv (N, kvw) += its gradient. dkv2 is scratch of 2·N·D floats. */
static void attn_back_kv(const LunaState *st, float *dq, float *dkv, float *dkv2, const float *datt,
                         const float *q, const float *kv, const float *o, const float *lse,
                         const unsigned char *kmask, const AttnShape *sh, size_t N, int D,
                         Arena *scratch) {
    if (st->tied) { /* separate key and value gradients, then their sum */
        memset(dkv2, 0, 2 * N * D * sizeof(float));
        attn_backward(dq, dkv2, dkv2 + N * D, datt, q, kv, kv, o, lse, kmask, sh, scratch);
        for (size_t k = 0; k < N * D; k++) dkv[k] += dkv2[k] + dkv2[N * D + k];
    } else {
        attn_backward(dq, dkv, dkv + D, datt, q, kv, kv + D, o, lse, kmask, sh, scratch);
    }
}

static void luna_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                          const float *x) {
    LunaState *st = m->state;
    const int B = s->B, L = s->L, D = m->D, l = st->l, Bl = B * l, BL = B * L, kvw = st->kvw;
    const size_t mark = arena_mark(s->scratch), n = (size_t)Bl * D;
#define SCRATCH(name, count)                                                                       \
    float *name = arena_floats(s->scratch, count);                                                 \
    memset(name, 0, (count) * sizeof(float))
    SCRATCH(datt, (size_t)BL * D);
    SCRATCH(duq, (size_t)BL * D);
    SCRATCH(dckv, (size_t)Bl * kvw);
    SCRATCH(dc, n);
    SCRATCH(dpq, n);
    SCRATCH(dpin, n);
    SCRATCH(dxkv, (size_t)BL * kvw);
    float *dkv2 = arena_floats(s->scratch, (size_t)(BL > Bl ? BL : Bl) * 2 * D);
#undef SCRATCH
    /* unpack */
    linear_backward(datt, mixer_grad(s, st->p_o), mixer_grad(s, st->p_bo), dy, st->uatt,
                    mixer_param(s, st->p_o), BL, D, D);
    AttnShape su = unpack_shape(m, B, L);
    attn_back_kv(st, duq, dckv, dkv2, datt, st->uq, st->ckv, st->uatt, st->ulse, st->pmask, &su,
                 (size_t)Bl, D, s->scratch);
    linear_backward(dx, mixer_grad(s, st->p_q), mixer_grad(s, st->p_bq), duq, x,
                    mixer_param(s, st->p_q), BL, D, D);
    linear_backward(dc, mixer_grad(s, st->p_kv), mixer_grad(s, st->p_bkv), dckv, st->c,
                    mixer_param(s, st->p_kv), Bl, D, kvw);
    /* P' = LN(P + C) */
    float *dsum = dpq; /* d(psum), before dpq is needed */
    XB_ASSERT(s->dcarry_out);
    layernorm_backward(dsum, mixer_grad(s, st->p_lnw), mixer_grad(s, st->p_lnb), s->dcarry_out,
                       st->psum, mixer_param(s, st->p_lnw), st->mean, st->rstd, Bl, D);
    for (size_t k = 0; k < n; k++) dc[k] += dsum[k], dpin[k] += dsum[k];
    memset(dpq, 0, n * sizeof(float));
    /* pack */
    AttnShape sp = pack_shape(m, B, L);
    attn_back_kv(st, dpq, dxkv, dkv2, dc, st->pq, st->xkv, st->c, st->plse, s->mask, &sp,
                 (size_t)BL, D, s->scratch);
    linear_backward(dpin, mixer_grad(s, st->p_pq), mixer_grad(s, st->p_bpq), dpq, st->pin,
                    mixer_param(s, st->p_pq), Bl, D, D);
    linear_backward(dx, mixer_grad(s, st->p_pkv), mixer_grad(s, st->p_bpkv), dxkv, x,
                    mixer_param(s, st->p_pkv), BL, D, kvw);
    /* P's gradient: into the previous layer's P', or through P₀ = LN(√D·E + S) to E */
    if (st->p_e < 0) {
        XB_ASSERT(s->dcarry_in);
        for (size_t k = 0; k < n; k++) s->dcarry_in[k] += dpin[k];
    } else {
        const size_t lD = (size_t)l * D;
        float *dp0 = arena_floats(s->scratch, lD), *dpre = arena_floats(s->scratch, lD);
        memset(dp0, 0, lD * sizeof(float));
        memset(dpre, 0, lD * sizeof(float));
        for (int b = 0; b < B; b++)
            for (size_t k = 0; k < lD; k++) dp0[k] += dpin[(size_t)b * lD + k];
        layernorm_backward(dpre, mixer_grad(s, st->p_enw), mixer_grad(s, st->p_enb), dp0, st->epre,
                           mixer_param(s, st->p_enw), st->emean, st->erstd, l, D);
        float *ge = mixer_grad(s, st->p_e);
        const float sq = sqrtf((float)D);
        for (size_t k = 0; k < lD; k++) ge[k] += sq * dpre[k];
    }
    arena_reset_to(s->scratch, mark);
}

static uint64_t luna_flops(const Mixer *m, int B, int L, int backward) {
    const LunaState *st = m->state;
    const uint64_t D = (uint64_t)m->D, Bl = (uint64_t)B * (uint64_t)st->l,
                   BL = (uint64_t)B * (uint64_t)L, kvw = (uint64_t)st->kvw;
    /* pack: P·W_pq, X·W_pkv; unpack: X·W_q, C·W_kv, the output */
    const uint64_t proj = 2 * Bl * D * D + 2 * BL * D * kvw + 4 * BL * D * D + 2 * Bl * D * kvw;
    AttnShape sp = pack_shape(m, B, L), su = unpack_shape(m, B, L);
    return (backward ? 2 * proj : proj) + attn_flops(&sp, backward) + attn_flops(&su, backward);
}

static void luna_destroy(Mixer *m) {
    LunaState *st = m->state;
    free(st->sin);
    free(st);
}

const MixerSpec mixer_luna = {
    .name = "luna",
    .classes = "M",
    .arxiv = "2106.01540",
    .title = "Luna: pack X into l rows by P's attention (no output projection), unpack back; "
             "P' = LayerNorm(P + packed) carried across layers (linear in L)",
    .honours_mask = 1,
    MIXER_OPTS(luna_opts),
    .ops = &(const MixerOps){MIXER_OPS(luna), .destroy = luna_destroy},
};
