#include "model/encoder.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/profile.h"
#include "core/xassert.h"
#include "kernels/activations.h"
#include "kernels/dropout.h"
#include "kernels/embedding.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/pool.h"
#include "mixers/xattn.h"

/* Dropout call sites (keys are derived from seed, step and site). */
static int site_embed(void) { return 0; }
static int site_layer(int l, int k) { return 1 + 3 * l + k; } /* k: 0 mixer, 1 GELU, 2 FFN out */

/* The classifier's input width: the pooled vector (or each position's), or LRA's [u, v, u·v,
 * u − v] of a pair. */
static int head_in(const Encoder *e) { return e->cfg.pairs ? 4 * e->cfg.D : e->cfg.D; }

/* The classifier's rows: one per example, or one per position when pooling is none. */
static int head_rows(const Encoder *e) {
    return e->cfg.pooling == POOL_NONE ? e->cfg.B * e->cfg.L : e->cfg.NB;
}

/* Recurrence: the window a mechanism sees, [compressed slots; memory; segment]. */
static int window(const Encoder *e) { return e->cfg.ncm + e->cfg.mem + e->cfg.seg; }

/* The kind and sequence lengths of every block (config/layout.h, which the config's validation
 * uses too). */
static void lay_out_blocks(Encoder *e, const ModelShape *shape) {
    BlockLayout *b = malloc((size_t)e->cfg.N * sizeof *b);
    XB_ASSERT(b || e->cfg.N == 0);
    layout_blocks_of(shape, b);
    for (int l = 0; l < e->cfg.N; l++)
        e->la[l].kind = b[l].kind, e->la[l].Lq = b[l].Lq, e->la[l].Lk = b[l].Lk;
    free(b);
}

/* The block whose parameters block l uses: itself; with repeated cross-attends (the Perceiver,
 * arXiv 2103.03206, §2: "weights shared between each instance of the latent Transformer and the
 * cross-attends after the first"), a latent block uses the first repeat's and a cross-attend
 * after the first the second repeat's. */
static int param_block(const Encoder *e, int l) {
    if (e->cfg.xrep == 1) return l;
    const int per = e->cfg.N / e->cfg.xrep, r = l / per, k = l % per;
    return k > 0 ? k : r == 0 ? 0 : per;
}

/* The FFN of block pb's tensors: dense fc1, fc2, or the Switch Transformer's router and E
 * experts, each initialised as the dense FFN would be. */
static void declare_ffn(Encoder *e, LayerParams *p, int pb) {
    ParamTable *pt = &e->pt;
    const int D = e->cfg.D, F = e->cfg.F;
    p->router = -1;
    if (e->cfg.ffn == FFN_SWITCH) {
        const int E = e->cfg.experts, s1[3] = {E, F, D}, s2[3] = {E, D, F}, sb1[2] = {E, F},
                  sb2[2] = {E, D};
        const float a = sqrtf(6.0f / (float)(D + F));
        p->router =
            params_add2f(pt, E, D, INIT_XAVIER_UNIFORM, 0, 1, "blocks.%d.ffn.router.weight", pb);
        p->fc1_w =
            params_addf(pt, 3, s1, INIT_UNIFORM, a, 1, "blocks.%d.ffn.experts.fc1.weight", pb);
        p->fc1_b = params_addf(pt, 2, sb1, INIT_ZEROS, 0, 0, "blocks.%d.ffn.experts.fc1.bias", pb);
        p->fc2_w =
            params_addf(pt, 3, s2, INIT_UNIFORM, a, 1, "blocks.%d.ffn.experts.fc2.weight", pb);
        p->fc2_b = params_addf(pt, 2, sb2, INIT_ZEROS, 0, 0, "blocks.%d.ffn.experts.fc2.bias", pb);
    } else {
        p->fc1_w =
            params_add2f(pt, F, D, INIT_XAVIER_UNIFORM, 0, 1, "blocks.%d.ffn.fc1.weight", pb);
        p->fc1_b = params_add1f(pt, F, INIT_ZEROS, 0, 0, "blocks.%d.ffn.fc1.bias", pb);
        p->fc2_w =
            params_add2f(pt, D, F, INIT_XAVIER_UNIFORM, 0, 1, "blocks.%d.ffn.fc2.weight", pb);
        p->fc2_b = params_add1f(pt, D, INIT_ZEROS, 0, 0, "blocks.%d.ffn.fc2.bias", pb);
    }
}

/* The final LayerNorm and the MLP head (LeCun-normal, as Flax's default). */
static void declare_head(Encoder *e) {
    ParamTable *pt = &e->pt;
    const int D = e->cfg.D, hin = head_in(e);
    e->p_lnf_w = params_add1(pt, "norm.weight", D, INIT_ONES, 0, 0);
    e->p_lnf_b = params_add1(pt, "norm.bias", D, INIT_ZEROS, 0, 0);
    e->p_h1_w = params_add2(pt, "head.fc1.weight", e->cfg.Hh, hin, INIT_NORMAL,
                            1.0f / sqrtf((float)hin), 1);
    e->p_h1_b = params_add1(pt, "head.fc1.bias", e->cfg.Hh, INIT_ZEROS, 0, 0);
    e->p_h2_w = params_add2(pt, "head.fc2.weight", e->cfg.C, e->cfg.Hh, INIT_NORMAL,
                            1.0f / sqrtf((float)e->cfg.Hh), 1);
    e->p_h2_b = params_add1(pt, "head.fc2.bias", e->cfg.C, INIT_ZEROS, 0, 0);
}

static void declare_params(Encoder *e) {
    ParamTable *pt = &e->pt;
    char name[XB_PARAM_NAME];
    const int D = e->cfg.D;
    /* LRA: token embeddings N(0, 1), learned positions N(0, 0.02²), Xavier-uniform dense layers
     * with (near-)zero biases, LayerNorm scale 1 and shift 0, Flax-default LeCun-normal head. */
    e->p_wte = params_add2(pt, "embed.tokens.weight", e->cfg.V, D, INIT_NORMAL, 1.0f, 0);
    e->p_wpe = -1;
    if (e->cfg.positions == POS_LEARNED)
        e->p_wpe = params_add2(pt, "embed.positions.weight", e->cfg.L, D, INIT_NORMAL, 0.02f, 0);
    int layer = 0; /* mixer layer index: the SELF blocks in order */
    int depth = 0; /* mixer layers with tensors of their own */
    for (int l = 0; l < e->cfg.N; l++)
        depth += e->la[l].kind == BLOCK_SELF && param_block(e, l) == l;
    for (int l = 0; l < e->cfg.N; l++) {
        LayerParams *p = &e->lp[l];
        const LayerActs *t = &e->la[l];
        const int pb = param_block(e, l); /* the block whose tensors these are */
        pt->share = pb != l;              /* declaring them again returns the same tensors */
#define ADD1(field, what, n, init)                                                                 \
    p->field = params_add1f(pt, n, init, 0, 0, "blocks.%d.%s", pb, what)
        p->lnkv_w = p->lnkv_b = p->latents = -1;
        if (t->kind == BLOCK_CROSS && l == 0) { /* the latent array, N(0, 0.02²) as the paper's
                                                 * code; later cross-attends read the stream */
            p->latents = params_add2f(pt, t->Lq, D, INIT_NORMAL, 0.02f, 0, "blocks.%d.latents", l);
        }
        ADD1(ln1_w, "norm1.weight", D, INIT_ONES);
        ADD1(ln1_b, "norm1.bias", D, INIT_ZEROS);
        if (t->kind == BLOCK_SELF) {
            mixer_create_deep(&e->mixers[l], e->cfg.mixer_spec, e->cfg.mixer_opts, D, e->cfg.H,
                              e->cfg.seg > 0 ? window(e) : t->Lq,
                              pb != l ? e->mixers[pb].layer : layer++, depth, pt);
            /* Transformer-XL computes queries for the segment only: the window's memory rows
             * (and compressed slots) are keys and values, when the mechanism can skip them */
            if (e->cfg.seg > 0 && e->cfg.mixer_spec->skips_context)
                e->mixers[l].ctx = window(e) - e->cfg.seg;
            e->mixers[l].cls =
                e->cfg.cls_id >= 0 && e->cfg.seg == 0; /* position 0 is the CLS token */
        } else {
            ADD1(lnkv_w, "norm_kv.weight", D, INIT_ONES);
            ADD1(lnkv_b, "norm_kv.bias", D, INIT_ZEROS);
            snprintf(name, sizeof name, "blocks.%d.%s", pb,
                     t->kind == BLOCK_POOL ? "pool_attn" : "cross_attn");
            /* the Perceiver cross-attends with one head (§2.1), the Funnel with the model's */
            xattn_create(&e->xattn[l], pt, name, D, t->kind == BLOCK_CROSS ? 1 : e->cfg.H, 0);
        }
        ADD1(ln2_w, "norm2.weight", D, INIT_ONES);
        ADD1(ln2_b, "norm2.bias", D, INIT_ZEROS);
        declare_ffn(e, p, pb);
#undef ADD1
    }
    pt->share = 0;
    declare_head(e);
    /* the compressors last, so that they do not shift the other tensors' initial values */
    for (int l = 0; l < e->cfg.N && e->cfg.crate > 0; l++) {
        if (e->la[l].kind != BLOCK_SELF) continue;
        snprintf(name, sizeof name, "blocks.%d", l);
        compress_create(&e->la[l].cmp, pt, name, e->cfg.B, e->cfg.L, D, e->cfg.H, e->cfg.seg,
                        e->cfg.mem, e->cfg.crate, e->cfg.ncm);
    }
}

/* The encoder's own backward buffers, carved from the scratch arena in this order in both the
 * plan and the backward, so the plan is exact. */
typedef struct BwdScratch {
    float *dlogits, *da1, *dh1, *dpooled; /* (R, C), (R, Hh), (R, Hh), (B, D) or NULL */
    float *dfeat;                         /* pairs: (NB, 4D) */
    float *dlnf, *dx, *dtmp, *dln;        /* (B, L, D) each (L the longest block's); dx is the
                                           * residual stream's gradient */
    float *dx2, *dq;     /* (B, L, D): d(block input) beside dx; d(queries' input) */
    float *dx0;          /* Perceiver: (B, L, D) d(input array), summed over the cross-attends */
    float *dyext, *dext; /* recurrence: (B·nS, M + S, D) each */
    float *dg;           /* (B, L, F) */
} BwdScratch;

static void carve_backward(const Encoder *e, Arena *s, BwdScratch *b) {
    int Lmax = e->cfg.L; /* the longest sequence of any block */
    for (int l = 0; l < e->cfg.N; l++) Lmax = XB_MAX(Lmax, e->la[l].Lq);
    const size_t BLD = (size_t)e->cfg.B * Lmax * e->cfg.D, BLF = (size_t)e->cfg.B * Lmax * e->cfg.F;
    const size_t R = (size_t)head_rows(e);
    b->dlogits = arena_floats(s, R * e->cfg.C);
    b->da1 = arena_floats(s, R * e->cfg.Hh);
    b->dh1 = arena_floats(s, R * e->cfg.Hh);
    b->dpooled = e->cfg.pooling == POOL_NONE ? NULL : arena_floats(s, (size_t)e->cfg.B * e->cfg.D);
    b->dfeat = e->cfg.pairs ? arena_floats(s, (size_t)e->cfg.NB * 4 * e->cfg.D) : NULL;
    b->dlnf = arena_floats(s, BLD);
    b->dx = arena_floats(s, BLD);
    b->dtmp = arena_floats(s, BLD);
    b->dln = arena_floats(s, BLD);
    int down = 0; /* a POOL or CROSS block: the only users of dx2 and dq */
    for (int l = 0; l < e->cfg.N; l++) down |= e->la[l].kind != BLOCK_SELF;
    b->dx2 = down ? arena_floats(s, BLD) : NULL;
    b->dq = down ? arena_floats(s, BLD) : NULL;
    b->dx0 = e->cfg.latents > 0 ? arena_floats(s, (size_t)e->cfg.B * e->cfg.L * e->cfg.D) : NULL;
    const size_t ext = e->cfg.seg > 0 ? (size_t)e->cfg.B * e->cfg.nseg * window(e) * e->cfg.D : 0;
    b->dyext = ext ? arena_floats(s, ext) : NULL;
    b->dext = ext ? arena_floats(s, ext) : NULL;
    b->dg = arena_floats(s, BLF);
}

/* The floats of block l's carry (MixerStep.carry_out): 0 unless its mechanism has one. */
static size_t carry_floats(const Encoder *e, int l) {
    if (e->la[l].kind != BLOCK_SELF || e->mixers[l].carry <= 0) return 0;
    return (size_t)(e->cfg.seg > 0 ? e->cfg.B * e->cfg.nseg : e->cfg.B) * e->mixers[l].carry *
           e->cfg.D;
}

/* Block l's saved activations from `a` (its mask: the input's, or POOL's own), and the plans of
 * its mechanism, compressor and Switch FFN; `s` measures scratch. */
static void plan_block(Encoder *e, int l, const unsigned char *mask, Arena *a, Arena *s) {
    LayerActs *t = &e->la[l];
    const int B = e->cfg.B, D = e->cfg.D, F = e->cfg.F;
    const size_t Q = (size_t)B * t->Lq, K = (size_t)B * t->Lk;
    t->qmask = NULL;
    if (t->kind == BLOCK_SELF) t->qmask = (unsigned char *)mask;
    if (t->kind == BLOCK_POOL) t->qmask = arena_alloc(a, Q);
    t->qin = t->kind == BLOCK_SELF ? NULL : arena_floats(a, Q * D);
    t->ln1 = arena_floats(a, Q * D);
    t->ln1_mean = arena_floats(a, Q);
    t->ln1_rstd = arena_floats(a, Q);
    t->lnkv = t->lnkv_mean = t->lnkv_rstd = NULL;
    if (t->kind != BLOCK_SELF) {
        t->lnkv = arena_floats(a, K * D);
        t->lnkv_mean = arena_floats(a, K);
        t->lnkv_rstd = arena_floats(a, K);
    }
    t->ext = t->yext = NULL;
    t->extmask = NULL;
    if (t->kind == BLOCK_SELF && e->cfg.seg > 0) {
        const size_t X = (size_t)B * e->cfg.nseg * window(e);
        t->ext = arena_floats(a, X * D);
        t->yext = arena_floats(a, X * D);
        t->extmask = arena_alloc(a, X);
    }
    const size_t C = carry_floats(e, l); /* the mechanism's carry to the next SELF block */
    t->carry = C ? arena_floats(a, C) : NULL;
    t->dcarry = C ? arena_floats(a, C) : NULL;
    t->r = arena_floats(a, Q * D);
    t->ln2 = arena_floats(a, Q * D);
    t->ln2_mean = arena_floats(a, Q);
    t->ln2_rstd = arena_floats(a, Q);
    e->xs[l + 1] = arena_floats(a, Q * D);
    t->h = t->g = NULL;
    if (e->cfg.ffn == FFN_SWITCH) {
        moe_init(&t->moe, (int)Q, D, F, e->cfg.experts);
    } else {
        t->h = arena_floats(a, Q * F);
        t->g = arena_floats(a, Q * F);
    }
    const int drop = e->cfg.dropout > 0.0f;
    t->keep[0] = drop ? arena_alloc(a, dropout_words(Q * D) * sizeof(uint64_t)) : NULL;
    t->keep[1] = drop && e->cfg.ffn != FFN_SWITCH
                     ? arena_alloc(a, dropout_words(Q * F) * sizeof(uint64_t))
                     : NULL;
    t->keep[2] = drop ? arena_alloc(a, dropout_words(Q * D) * sizeof(uint64_t)) : NULL;
    /* Mixer calls happen on top of the encoder's backward buffers and do not overlap each
     * other, so each layer plans its scratch from the same mark. */
    const size_t mark = arena_mark(s);
    carve_backward(e, s, &(BwdScratch){0});
    if (e->cfg.ffn == FFN_SWITCH) { /* its scratch, on top of the backward buffers like a mixer's */
        moe_plan(&t->moe, a, s);
    }
    if (t->kind == BLOCK_SELF && e->cfg.crate > 0) compress_plan(&t->cmp, a, s);
    if (t->kind == BLOCK_SELF && e->cfg.seg > 0)
        e->cfg.mixer_spec->ops->plan(&e->mixers[l], a, s, e->cfg.B * e->cfg.nseg, window(e));
    else if (t->kind == BLOCK_SELF)
        e->cfg.mixer_spec->ops->plan(&e->mixers[l], a, s, e->cfg.B, t->Lq);
    else
        xattn_plan(&e->xattn[l], a, s, e->cfg.B, t->Lq, t->Lk);
    arena_reset_to(s, mark);
}

/* Carves every activation from `a` and lets the mixers plan theirs; `s` measures scratch. */
static void plan(Encoder *e, Arena *a, Arena *s) {
    const size_t BL = (size_t)e->cfg.B * e->cfg.L;
    const int B = e->cfg.B, D = e->cfg.D;
    e->tokens = arena_alloc(a, BL * sizeof(int32_t));
    e->mask = arena_alloc(a, BL);
    e->labels = arena_alloc(a, (size_t)head_rows(e) * sizeof(int32_t));
    e->xs[0] = arena_floats(a, BL * D);
    e->keep_embed =
        e->cfg.dropout > 0.0f ? arena_alloc(a, dropout_words(BL * D) * sizeof(uint64_t)) : NULL;
    for (int l = 0; l < e->cfg.N; l++) plan_block(e, l, l ? e->la[l - 1].qmask : e->mask, a, s);
    const int Lf = e->cfg.N ? e->la[e->cfg.N - 1].Lq : e->cfg.L;
    e->final_mask = e->cfg.N ? e->la[e->cfg.N - 1].qmask : e->mask;
    e->lnf = arena_floats(a, (size_t)B * Lf * D);
    e->lnf_mean = arena_floats(a, (size_t)B * Lf);
    e->lnf_rstd = arena_floats(a, (size_t)B * Lf);
    const size_t R = (size_t)head_rows(e);
    e->pooled = e->cfg.pooling == POOL_NONE ? NULL : arena_floats(a, (size_t)e->cfg.B * e->cfg.D);
    e->feat = e->cfg.pairs ? arena_floats(a, (size_t)e->cfg.NB * 4 * e->cfg.D) : NULL;
    e->h1 = arena_floats(a, R * e->cfg.Hh);
    e->a1 = arena_floats(a, R * e->cfg.Hh);
    e->h1act = arena_alloc(a, R * e->cfg.Hh);
    e->logits = arena_floats(a, R * e->cfg.C);
    e->probs = arena_floats(a, R * e->cfg.C);
    e->losses = arena_floats(a, R);
    if (e->cfg.positions == POS_SINUSOIDAL) e->sinus = arena_floats(a, (size_t)e->cfg.L * e->cfg.D);
}

void encoder_config(EncoderConfig *c, const ExperimentConfig *cfg, int vocab, int n_classes,
                    int pairs) {
    memset(c, 0, sizeof *c);
    c->pairs = pairs != 0;
    XB_ASSERT(!(c->pairs && cfg->pooling == POOL_NONE)); /* config: sequence tasks are single */
    c->NB = cfg->batch_size;
    c->B = c->pairs ? 2 * c->NB : c->NB;
    c->L = cfg->max_len;
    c->pooling = cfg->pooling;
    c->positions = cfg->positions;
    c->cls_id = cfg->pooling == POOL_CLS ? vocab : -1;
    c->V = vocab + (cfg->pooling == POOL_CLS ? 1 : 0);
    c->C = n_classes;
    c->D = cfg->d_model;
    c->H = cfg->heads;
    c->F = cfg->d_ff;
    c->funnel = cfg->funnel;
    c->latents = cfg->latents;
    c->seg = cfg->segment;
    c->mem = cfg->memory > 0 ? cfg->memory : cfg->segment;
    c->nseg = c->seg > 0 ? cfg->max_len / c->seg : 0;
    c->crate = cfg->segment > 0 ? cfg->compress : 0;
    c->ncm = c->crate > 0 ? (cfg->compressed_memory > 0 ? cfg->compressed_memory : c->mem) : 0;
    c->ffn = cfg->ffn;
    c->experts = cfg->experts > 0 ? cfg->experts : 1;
    c->capacity[0] = cfg->eval_capacity_factor, c->capacity[1] = cfg->capacity_factor;
    c->balance = cfg->balance_loss, c->zloss = cfg->router_z_loss;
    c->xrep = cfg->latents > 0 && cfg->cross_attends > 1 ? cfg->cross_attends : 1;
    c->shape = cfg_model_shape(cfg);
    c->N = layout_blocks(&c->shape);
    c->Hh = cfg->head_hidden > 0 ? cfg->head_hidden : cfg->d_ff;
    c->dropout = cfg->dropout;
    c->mixer_spec = mixer_get(cfg->mixer_index);
    c->mixer_opts = &cfg->mixer_opts;
}

/* The blocks and the parameter table of the model of c (no buffers yet). */
static void setup(Encoder *e, const EncoderConfig *c) {
    memset(e, 0, sizeof *e);
    e->cfg = *c;
    e->B = c->B, e->NB = c->NB, e->L = c->L, e->C = c->C, e->pooling = c->pooling;
    e->cls_id = c->cls_id;
    e->mixers = calloc((size_t)c->N, sizeof *e->mixers);
    e->lp = calloc((size_t)c->N, sizeof *e->lp);
    e->la = calloc((size_t)c->N, sizeof *e->la);
    e->xattn = calloc((size_t)c->N, sizeof *e->xattn);
    e->xs = calloc((size_t)c->N + 1, sizeof *e->xs);
    XB_ASSERT(e->mixers && e->lp && e->la && e->xattn && e->xs);
    lay_out_blocks(e, &c->shape);
    /* config: with pooling none no block changes the length */
    XB_ASSERT(c->pooling != POOL_NONE || c->N == 0 || e->la[c->N - 1].Lq == c->L);
    params_init(&e->pt);
    declare_params(e);
}

size_t encoder_planned_bytes(const ExperimentConfig *cfg, int vocab, int n_classes, int pairs) {
    Encoder e;
    EncoderConfig c;
    encoder_config(&c, cfg, vocab, n_classes, pairs);
    setup(&e, &c);
    Arena ma, ms;
    arena_init_measure(&ma);
    arena_init_measure(&ms);
    plan(&e, &ma, &ms);
    /* parameters, gradients and AdamW's two moments */
    const size_t bytes = 4 * e.pt.total * sizeof(float) + ma.peak + ms.peak;
    encoder_destroy(&e);
    return bytes;
}

int encoder_create(Encoder *e, const ExperimentConfig *cfg, int vocab, int n_classes,
                   XbError *err) {
    return encoder_create_pairs(e, cfg, vocab, n_classes, 0, err);
}

int encoder_create_pairs(Encoder *e, const ExperimentConfig *cfg, int vocab, int n_classes,
                         int pairs, XbError *err) {
    EncoderConfig c;
    encoder_config(&c, cfg, vocab, n_classes, pairs);
    setup(e, &c);
    e->params = aligned_alloc(XB_ALIGN,
                              ((e->pt.total * sizeof(float)) + XB_ALIGN - 1) / XB_ALIGN * XB_ALIGN);
    e->grads = aligned_alloc(XB_ALIGN,
                             ((e->pt.total * sizeof(float)) + XB_ALIGN - 1) / XB_ALIGN * XB_ALIGN);
    Arena ma, ms;
    arena_init_measure(&ma);
    arena_init_measure(&ms);
    plan(e, &ma, &ms);
    if (!e->params || !e->grads || arena_init(&e->acts, ma.peak) ||
        arena_init(&e->scratch, ms.peak)) {
        encoder_destroy(e);
        return xb_error_set(err, cfg->source, cfg->model_line, cfg->model_col, "model",
                            "cannot allocate %.1f MiB of activations and %.1f MiB of scratch "
                            "(reduce train.batch_size, model.max_len or model.d_model)",
                            (double)ma.peak / 1048576.0, (double)ms.peak / 1048576.0);
    }
    Arena scratch_measure;
    arena_init_measure(&scratch_measure);
    plan(e, &e->acts, &scratch_measure);
    memset(e->params, 0, e->pt.total * sizeof(float));
    memset(e->grads, 0, e->pt.total * sizeof(float));
    if (e->sinus) sinusoidal_table(e->sinus, e->cfg.L, e->cfg.D);
    return 0;
}

void encoder_destroy(Encoder *e) {
    if (e->mixers && e->la)
        for (int l = 0; l < e->cfg.N; l++)
            if (e->la[l].kind == BLOCK_SELF) mixer_destroy(&e->mixers[l]);
    free(e->mixers);
    free(e->xattn);
    free(e->xs);
    free(e->lp);
    free(e->la);
    free(e->params);
    free(e->grads);
    arena_destroy(&e->acts);
    arena_destroy(&e->scratch);
    params_free(&e->pt);
    memset(e, 0, sizeof *e);
}

void encoder_init_params(Encoder *e, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed, RNG_STREAM_INIT);
    params_initialise(&e->pt, e->params, &r);
}

static const float *P(const Encoder *e, int i) {
    return i < 0 ? NULL : e->params + e->pt.info[i].offset;
}
static float *G(const Encoder *e, int i) { return i < 0 ? NULL : e->grads + e->pt.info[i].offset; }

static MoeParams moe_params(const Encoder *e, const LayerParams *lp) {
    return (MoeParams){P(e, lp->router), P(e, lp->fc1_w), P(e, lp->fc1_b), P(e, lp->fc2_w),
                       P(e, lp->fc2_b)};
}

/* The SELF block before block l whose mechanism hands its carry to block l's, or -1. */
static int carry_from(const Encoder *e, int l) {
    for (int k = l - 1; k >= 0; k--)
        if (e->la[k].kind == BLOCK_SELF) return e->la[k].carry ? k : -1;
    return -1;
}

static MixerStep mixer_step(Encoder *e, int l, int training, uint64_t seed, int64_t step) {
    const LayerActs *t = &e->la[l];
    const int from = carry_from(e, l);
    MixerStep s = {.B = e->cfg.B,
                   .L = t->Lq,
                   .mask = t->qmask,
                   .training = training,
                   .frozen = e->frozen,
                   .seed = seed,
                   .step = step,
                   .pt = &e->pt,
                   .params = e->params,
                   .grads = e->grads,
                   .scratch = &e->scratch,
                   .aux_loss = &e->aux_loss,
                   .row0 = e->row0,
                   .carry_in = from >= 0 ? e->la[from].carry : NULL,
                   .carry_out = t->carry,
                   .dcarry_in = from >= 0 ? e->la[from].dcarry : NULL,
                   .dcarry_out = t->dcarry};
    if (e->cfg.seg > 0) /* the windows [memory; segment], batched */
        s.B = e->cfg.B * e->cfg.nseg, s.L = window(e), s.mask = t->extmask,
        s.row0 = e->row0 * e->cfg.nseg;
    return s;
}

/* The windows of the recurrence from the block's normalised input ln (B, L, D): window (b, k)
 * holds the compressed slots of the N groups of c before its memory, the M positions before
 * segment k (zero and masked before the start), then the segment. With keep_memory the slot and
 * memory rows are left as they are (tests: a frozen memory). */
static void build_windows(const Encoder *e, LayerActs *t, const float *ln, int keep_memory) {
    const int B = e->cfg.B, L = e->cfg.L, D = e->cfg.D, S = e->cfg.seg, M = e->cfg.mem,
              N = e->cfg.ncm, W = window(e);
#pragma omp parallel for schedule(static)
    for (int bk = 0; bk < B * e->cfg.nseg; bk++) {
        const int b = bk / e->cfg.nseg, k = bk % e->cfg.nseg;
        float *win = t->ext + (size_t)bk * W * D;
        unsigned char *real = t->extmask + (size_t)bk * W;
        if (N > 0 && !keep_memory) compress_window(&t->cmp, win, real, b, k);
        for (int i = keep_memory ? N + M : N; i < W; i++) {
            const int pos = k * S - M - N + i; /* its position in the sequence */
            real[i] = (unsigned char)(pos >= 0 && (!e->mask || e->mask[(size_t)b * L + pos]));
            if (pos >= 0)
                memcpy(win + (size_t)i * D, ln + ((size_t)b * L + pos) * D,
                       (size_t)D * sizeof(float));
            else
                memset(win + (size_t)i * D, 0, (size_t)D * sizeof(float));
        }
    }
}

/* Rows of the windows that are segment positions ↔ the sequence (B, L, D): to_windows = 0 copies
 * win → seq, 1 copies seq → win (and zeroes the memory rows). */
static void segment_rows(const Encoder *e, float *seq, float *win, int to_windows) {
    const int B = e->cfg.B, L = e->cfg.L, D = e->cfg.D, S = e->cfg.seg, W = window(e),
              M = W - S; /* M: rows before */
#pragma omp parallel for schedule(static)
    for (int bk = 0; bk < B * e->cfg.nseg; bk++) {
        const int b = bk / e->cfg.nseg, k = bk % e->cfg.nseg;
        float *w = win + (size_t)bk * W * D, *q = seq + ((size_t)b * L + (size_t)k * S) * D;
        if (to_windows) {
            memset(w, 0, (size_t)M * D * sizeof(float));
            memcpy(w + (size_t)M * D, q, (size_t)S * D * sizeof(float));
        } else {
            memcpy(q, w + (size_t)M * D, (size_t)S * D * sizeof(float));
        }
    }
}

/* The Funnel's pooling by 2 along the sequence (B, Lin, D) → (B, Lout, D): the mean of each pair's
 * real positions (the CLS position, when cls, stays as it is); a pair without a real position
 * pools to 0 and is padding. */
static void funnel_pool(float *out, unsigned char *omask, const float *in,
                        const unsigned char *imask, int B, int Lin, int Lout, int D, int cls) {
#pragma omp parallel for schedule(static)
    for (int bj = 0; bj < B * Lout; bj++) {
        const int b = bj / Lout, j = bj % Lout;
        const int a = cls ? (j == 0 ? 0 : 2 * j - 1) : 2 * j;
        const int n = cls && j == 0 ? 1 : XB_MIN(2, Lin - a);
        float *o = out + (size_t)bj * D;
        int cnt = 0;
        for (int d = 0; d < D; d++) o[d] = 0.0f;
        for (int k = 0; k < n; k++) {
            if (imask && !imask[(size_t)b * Lin + a + k]) continue;
            const float *x = in + ((size_t)b * Lin + a + k) * D;
            for (int d = 0; d < D; d++) o[d] += x[d];
            cnt++;
        }
        for (int d = 0; d < D; d++) o[d] = cnt ? o[d] / (float)cnt : 0.0f;
        omask[bj] = cnt > 0;
    }
}

/* din += the pooling's adjoint applied to dout. */
static void funnel_pool_backward(float *din, const float *dout, const unsigned char *imask, int B,
                                 int Lin, int Lout, int D, int cls) {
#pragma omp parallel for schedule(static)
    for (int bj = 0; bj < B * Lout; bj++) {
        const int b = bj / Lout, j = bj % Lout;
        const int a = cls ? (j == 0 ? 0 : 2 * j - 1) : 2 * j;
        const int n = cls && j == 0 ? 1 : XB_MIN(2, Lin - a);
        int cnt = 0;
        for (int k = 0; k < n; k++) cnt += !imask || imask[(size_t)b * Lin + a + k];
        const float *g = dout + (size_t)bj * D;
        for (int k = 0; k < n && cnt; k++) {
            if (imask && !imask[(size_t)b * Lin + a + k]) continue;
            float *x = din + ((size_t)b * Lin + a + k) * D;
            for (int d = 0; d < D; d++) x[d] += g[d] / (float)cnt;
        }
    }
}

/* The mask of block l's input sequence (the previous block's, or the tokens'). */
static const unsigned char *input_mask(const Encoder *e, int l) {
    return l == 0 ? e->mask : e->la[l - 1].qmask;
}

/* The mask of the keys a POOL or CROSS block attends over: its input's, or the tokens' (every
 * cross-attend reads the input array). */
static const unsigned char *key_mask(const Encoder *e, int l) {
    return e->la[l].kind == BLOCK_CROSS ? e->mask : input_mask(e, l);
}

/* A SELF block's token mixing: the mechanism over the normalised input (or over the
 * recurrence's windows of it) into t->r. */
static void self_forward(Encoder *e, int l, int training, uint64_t seed, int64_t step) {
    const LayerParams *lp = &e->lp[l];
    LayerActs *t = &e->la[l];
    MixerStep ms = mixer_step(e, l, training, seed, step);
    layernorm_forward(t->ln1, t->ln1_mean, t->ln1_rstd, e->xs[l], P(e, lp->ln1_w), P(e, lp->ln1_b),
                      e->cfg.B * t->Lq, e->cfg.D);
    if (e->cfg.seg > 0) {
        if (e->cfg.crate > 0) {
            e->aux_loss += compress_forward(&t->cmp, t->ln1, e->mask, e->frozen, e->params, &e->pt,
                                            &e->scratch);
        }
        build_windows(e, t, t->ln1, e->frozen);
        prof_open(PROF_MIXER, 0);
        e->cfg.mixer_spec->ops->forward(&e->mixers[l], &ms, t->yext, t->ext);
        prof_close();
        segment_rows(e, t->r, t->yext, 0);
    } else {
        prof_open(PROF_MIXER, 0);
        e->cfg.mixer_spec->ops->forward(&e->mixers[l], &ms, t->r, t->ln1);
        prof_close();
    }
}

/* A POOL or CROSS block's mixing into t->r: POOL, the pooled input attends over the input; CROSS,
 * the latents (the learned array, or the stream of the blocks before a later cross-attend) over
 * the input array. Its queries' input t->qin is the block's residual. */
static void downsample_forward(Encoder *e, int l) {
    const LayerParams *lp = &e->lp[l];
    LayerActs *t = &e->la[l];
    const int B = e->cfg.B, D = e->cfg.D;
    const float *xin = e->xs[l], *kin = t->kind == BLOCK_CROSS ? e->xs[0] : xin;
    if (t->kind == BLOCK_POOL)
        funnel_pool(t->qin, t->qmask, xin, input_mask(e, l), B, t->Lk, t->Lq, D,
                    e->cfg.cls_id >= 0);
    else if (lp->latents >= 0)
        for (int b = 0; b < B; b++)
            memcpy(t->qin + (size_t)b * t->Lq * D, P(e, lp->latents),
                   (size_t)t->Lq * D * sizeof(float));
    else
        memcpy(t->qin, xin, (size_t)B * t->Lq * D * sizeof(float));
    layernorm_forward(t->ln1, t->ln1_mean, t->ln1_rstd, t->qin, P(e, lp->ln1_w), P(e, lp->ln1_b),
                      B * t->Lq, D);
    layernorm_forward(t->lnkv, t->lnkv_mean, t->lnkv_rstd, kin, P(e, lp->lnkv_w), P(e, lp->lnkv_b),
                      B * t->Lk, D);
    prof_open(PROF_CROSS_ATTN, 0);
    xattn_forward(&e->xattn[l], t->r, t->ln1, t->lnkv, key_mask(e, l), e->params, &e->pt, B,
                  &e->scratch);
    prof_close();
}

/* The block's feed-forward half: x_out = r + drop(FFN(LN2(r))), the FFN dense (fc1, GELU, dropout,
 * fc2) or the Switch Transformer's experts. */
static void ffn_forward(Encoder *e, int l, int training, float p, uint64_t seed, int64_t step) {
    const LayerParams *lp = &e->lp[l];
    LayerActs *t = &e->la[l];
    const int BQ = e->cfg.B * t->Lq, D = e->cfg.D, F = e->cfg.F;
    const size_t QD = (size_t)BQ * D, QF = (size_t)BQ * F;
    float *xout = e->xs[l + 1];
    layernorm_forward(t->ln2, t->ln2_mean, t->ln2_rstd, t->r, P(e, lp->ln2_w), P(e, lp->ln2_b), BQ,
                      D);
    if (e->cfg.ffn == FFN_SWITCH) {
        const MoeParams mp = moe_params(e, lp);
        t->moe.frozen = e->frozen;
        prof_open(PROF_FFN, 0);
        e->aux_loss +=
            moe_forward(&t->moe, xout, t->ln2, t->qmask, &mp, e->cfg.capacity[training != 0],
                        e->cfg.balance, e->cfg.zloss, &e->scratch);
        prof_close();
        arena_reset(&e->scratch);
    } else {
        linear_forward(t->h, t->ln2, P(e, lp->fc1_w), P(e, lp->fc1_b), BQ, D, F);
        gelu_dropout_forward(t->g, t->h, QF, p, dropout_key(seed, step, site_layer(l, 1)),
                             e->row0 * (uint64_t)t->Lq * F, t->keep[1]);
        linear_forward(xout, t->g, P(e, lp->fc2_w), P(e, lp->fc2_b), BQ, F, D);
    }
    dropout_add_forward(xout, xout, t->r, QD, p, dropout_key(seed, step, site_layer(l, 2)),
                        e->row0 * (uint64_t)t->Lq * D, t->keep[2]);
}

/* The final LayerNorm, the pooling (or none), LRA's pair features, the MLP head and the loss:
 * the mean cross-entropy over the rows with a target, plus the auxiliary losses. */
static double head_forward(Encoder *e) {
    const int B = e->cfg.B, D = e->cfg.D, NB = e->cfg.NB, R = head_rows(e);
    const int Lf = e->cfg.N ? e->la[e->cfg.N - 1].Lq : e->cfg.L;
    layernorm_forward(e->lnf, e->lnf_mean, e->lnf_rstd, e->xs[e->cfg.N], P(e, e->p_lnf_w),
                      P(e, e->p_lnf_b), B * Lf, D);
    if (e->cfg.pooling == POOL_CLS)
        pool_cls_forward(e->pooled, e->lnf, B, Lf, D);
    else if (e->cfg.pooling == POOL_MEAN)
        pool_mean_forward(e->pooled, e->lnf, e->final_mask, B, Lf, D);
    if (e->cfg.pairs) /* LRA's retrieval head: [u, v, u·v, u − v] of the two documents' vectors */
        for (int b = 0; b < NB; b++) {
            const float *u = e->pooled + (size_t)2 * b * D, *v = u + D;
            float *f = e->feat + (size_t)b * 4 * D;
            for (int d = 0; d < D; d++)
                f[d] = u[d], f[D + d] = v[d], f[2 * D + d] = u[d] * v[d],
                f[3 * D + d] = u[d] - v[d];
        }
    /* the head: on each example's vector, or on every position (pooling none) */
    const float *hin = e->cfg.pairs ? e->feat : e->cfg.pooling == POOL_NONE ? e->lnf : e->pooled;
    linear_forward(e->h1, hin, P(e, e->p_h1_w), P(e, e->p_h1_b), R, head_in(e), e->cfg.Hh);
    relu_forward_set(e->a1, e->h1act, e->h1, (size_t)R * e->cfg.Hh, e->frozen);
    linear_forward(e->logits, e->a1, P(e, e->p_h2_w), P(e, e->p_h2_b), R, e->cfg.Hh, e->cfg.C);
    crossentropy_forward(e->losses, e->probs, e->logits, e->labels, R, e->cfg.C);
    double sum = 0.0;
    int n = 0;
    for (int r = 0; r < R; r++) sum += e->losses[r], n += e->labels[r] >= 0;
    e->n_targets = n;
    return (n ? sum / n : 0.0) + e->aux_loss;
}

static double encoder_forward_impl(Encoder *e, int training, uint64_t seed, int64_t step) {
    const int B = e->cfg.B, L = e->cfg.L, D = e->cfg.D;
    const float p = training ? e->cfg.dropout : 0.0f;
    arena_reset(&e->scratch);
    e->aux_loss = 0.0;
    const float *wpe = e->cfg.positions == POS_LEARNED ? P(e, e->p_wpe) : e->sinus;
    embedding_forward(e->xs[0], e->tokens, P(e, e->p_wte), wpe, B, L, D);
    e->keep_valid = 0; /* until this forward has written them (p > 0) */
    dropout_forward(e->xs[0], e->xs[0], (size_t)B * L * D, p, dropout_key(seed, step, site_embed()),
                    e->row0 * (uint64_t)L * D, e->keep_embed);
    for (int l = 0; l < e->cfg.N; l++) { /* r = base + drop(mix(LN1(...))), then the FFN half */
        LayerActs *t = &e->la[l];
        const size_t QD = (size_t)B * t->Lq * D;
        if (t->kind == BLOCK_SELF)
            self_forward(e, l, training, seed, step);
        else
            downsample_forward(e, l);
        arena_reset(&e->scratch);
        dropout_add_forward(t->r, t->r, t->kind == BLOCK_SELF ? e->xs[l] : t->qin, QD, p,
                            dropout_key(seed, step, site_layer(l, 0)),
                            e->row0 * (uint64_t)t->Lq * D, t->keep[0]);
        ffn_forward(e, l, training, p, seed, step);
    }
    e->keep_valid = p > 0.0f && e->keep_embed;
    return head_forward(e);
}

/* The head's backward, from the loss to bs->dx = d(the last block's output). */
static void head_backward(Encoder *e, const BwdScratch *bs) {
    const int B = e->cfg.B, D = e->cfg.D, Hh = e->cfg.Hh, NB = e->cfg.NB, R = head_rows(e);
    const int Lf = e->cfg.N ? e->la[e->cfg.N - 1].Lq : e->cfg.L;
    float *dlnf = bs->dlnf, *dpooled = bs->dpooled;
    memset(dlnf, 0, (size_t)B * Lf * D * sizeof *dlnf);
    /* the loss is the sum of the rows' cross-entropies over the normaliser: this call's targets,
     * or (data-parallel training) the whole batch's per process, set by the caller */
    const double norm = e->ce_norm > 0 ? e->ce_norm : (double)e->n_targets;
    if (e->n_targets > 0)
        crossentropy_backward(bs->dlogits, e->probs, e->labels, (float)(1.0 / norm), R, e->cfg.C);
    linear_backward(bs->da1, G(e, e->p_h2_w), G(e, e->p_h2_b), bs->dlogits, e->a1, P(e, e->p_h2_w),
                    R, Hh, e->cfg.C);
    relu_backward_set(bs->dh1, e->h1act, bs->da1, (size_t)R * Hh);
    if (e->cfg.pooling == POOL_NONE) { /* the head read every position of lnf */
        linear_backward(dlnf, G(e, e->p_h1_w), G(e, e->p_h1_b), bs->dh1, e->lnf, P(e, e->p_h1_w), R,
                        D, Hh);
    } else if (e->cfg.pairs) {
        memset(bs->dfeat, 0, (size_t)NB * 4 * D * sizeof(float));
        linear_backward(bs->dfeat, G(e, e->p_h1_w), G(e, e->p_h1_b), bs->dh1, e->feat,
                        P(e, e->p_h1_w), NB, 4 * D, Hh);
        for (int b = 0; b < NB; b++) { /* both towers' vectors from [u, v, u·v, u − v] */
            const float *u = e->pooled + (size_t)2 * b * D, *v = u + D;
            const float *g = bs->dfeat + (size_t)b * 4 * D;
            float *du = dpooled + (size_t)2 * b * D, *dv = du + D;
            for (int d = 0; d < D; d++) {
                du[d] = g[d] + g[2 * D + d] * v[d] + g[3 * D + d];
                dv[d] = g[D + d] + g[2 * D + d] * u[d] - g[3 * D + d];
            }
        }
    } else {
        linear_backward(dpooled, G(e, e->p_h1_w), G(e, e->p_h1_b), bs->dh1, e->pooled,
                        P(e, e->p_h1_w), B, D, Hh);
    }
    if (e->cfg.pooling == POOL_CLS)
        pool_cls_backward(dlnf, dpooled, B, Lf, D);
    else if (e->cfg.pooling == POOL_MEAN)
        pool_mean_backward(dlnf, dpooled, e->final_mask, B, Lf, D);
    memset(bs->dx, 0, (size_t)B * Lf * D * sizeof *bs->dx);
    layernorm_backward(bs->dx, G(e, e->p_lnf_w), G(e, e->p_lnf_b), dlnf, e->xs[e->cfg.N],
                       P(e, e->p_lnf_w), e->lnf_mean, e->lnf_rstd, B * Lf, D);
}

/* A dropout's mask as the last forward stored it, or NULL (the backward hashes again): a backward
 * after an evaluation forward (tests) gets the masks of (seed, step) as it always did. */
static const uint64_t *kept(const Encoder *e, const uint64_t *keep) {
    return e->keep_valid ? keep : NULL;
}

/* The FFN half's backward: x_out = r + drop(FFN(LN2(r))); bs->dx holds d(x_out) and becomes
 * d(r). */
static void ffn_backward(Encoder *e, int l, const BwdScratch *bs, size_t mark, uint64_t seed,
                         int64_t step) {
    const LayerParams *lp = &e->lp[l];
    LayerActs *t = &e->la[l];
    const int BQ = e->cfg.B * t->Lq, D = e->cfg.D, F = e->cfg.F;
    const size_t QD = (size_t)BQ * D, QF = (size_t)BQ * F;
    const float p = e->cfg.dropout;
    float *dx = bs->dx, *dtmp = bs->dtmp, *dln = bs->dln, *dg = bs->dg;
    dropout_backward_set(dtmp, dx, QD, p, dropout_key(seed, step, site_layer(l, 2)),
                         e->row0 * (uint64_t)t->Lq * D, kept(e, t->keep[2]));
    memset(dln, 0, QD * sizeof *dln);
    if (e->cfg.ffn == FFN_SWITCH) {
        const MoeParams mp = moe_params(e, lp);
        const MoeGrads mg = {G(e, lp->router), G(e, lp->fc1_w), G(e, lp->fc1_b), G(e, lp->fc2_w),
                             G(e, lp->fc2_b)};
        prof_open(PROF_FFN, 1);
        moe_backward(&t->moe, dln, &mg, dtmp, t->ln2, t->qmask, &mp, e->cfg.balance, e->cfg.zloss,
                     &e->scratch);
        prof_close();
        arena_reset_to(&e->scratch, mark);
    } else {
        memset(dg, 0, QF * sizeof *dg);
        linear_backward(dg, G(e, lp->fc2_w), G(e, lp->fc2_b), dtmp, t->g, P(e, lp->fc2_w), BQ, F,
                        D);
        gelu_dropout_backward(dg, t->h, dg, QF, p, dropout_key(seed, step, site_layer(l, 1)),
                              e->row0 * (uint64_t)t->Lq * F, kept(e, t->keep[1]));
        linear_backward(dln, G(e, lp->fc1_w), G(e, lp->fc1_b), dg, t->ln2, P(e, lp->fc1_w), BQ, D,
                        F);
    }
    layernorm_backward(dx, G(e, lp->ln2_w), G(e, lp->ln2_b), dln, t->r, P(e, lp->ln2_w),
                       t->ln2_mean, t->ln2_rstd, BQ, D);
}

/* A SELF block's mixing backward: bs->dtmp holds d(mix output), bs->dx d(r) = d(x_in) from the
 * residual, to which the mixer's and LN1's gradient is added. */
static void self_backward(Encoder *e, int l, const BwdScratch *bs, size_t mark, uint64_t seed,
                          int64_t step) {
    const LayerParams *lp = &e->lp[l];
    LayerActs *t = &e->la[l];
    MixerStep ms = mixer_step(e, l, 1, seed, step);
    if (e->cfg.seg > 0) { /* the memory rows are constants: their gradient stops here */
        const size_t X = (size_t)e->cfg.B * e->cfg.nseg * window(e) * e->cfg.D;
        segment_rows(e, bs->dtmp, bs->dyext, 1);
        memset(bs->dext, 0, X * sizeof(float));
        prof_open(PROF_MIXER, 1);
        e->cfg.mixer_spec->ops->backward(&e->mixers[l], &ms, bs->dext, bs->dyext, t->ext);
        prof_close();
        segment_rows(e, bs->dln, bs->dext, 0);
        arena_reset_to(&e->scratch, mark);
        /* f_c learns from the attention-reconstruction loss alone */
        if (e->cfg.crate > 0) compress_backward(&t->cmp, e->params, e->grads, &e->pt, &e->scratch);
    } else {
        prof_open(PROF_MIXER, 1);
        e->cfg.mixer_spec->ops->backward(&e->mixers[l], &ms, bs->dln, bs->dtmp, t->ln1);
        prof_close();
    }
    arena_reset_to(&e->scratch, mark);
    layernorm_backward(bs->dx, G(e, lp->ln1_w), G(e, lp->ln1_b), bs->dln, e->xs[l], P(e, lp->ln1_w),
                       t->ln1_mean, t->ln1_rstd, e->cfg.B * t->Lq, e->cfg.D);
}

/* A POOL or CROSS block's mixing backward: the base is the queries' input (pooled x_in, or the
 * latents) and the keys read x_in (POOL) or the input array (CROSS); bs->dx becomes d(x_in), or
 * for CROSS d(the latent stream) with the input array's share gathered in bs->dx0. */
static void downsample_backward(Encoder *e, int l, const BwdScratch *bs, size_t mark) {
    const LayerParams *lp = &e->lp[l];
    LayerActs *t = &e->la[l];
    const int B = e->cfg.B, D = e->cfg.D, BQ = B * t->Lq, BK = B * t->Lk;
    const size_t QD = (size_t)BQ * D;
    float *dx = bs->dx, *dkv = bs->dx2, *dq = bs->dq;
    memset(dkv, 0, (size_t)BK * D * sizeof *dkv);
    prof_open(PROF_CROSS_ATTN, 1);
    xattn_backward(&e->xattn[l], bs->dln, dkv, bs->dtmp, t->ln1, t->lnkv, key_mask(e, l), e->params,
                   e->grads, &e->pt, B, &e->scratch);
    prof_close();
    arena_reset_to(&e->scratch, mark);
    memcpy(dq, dx, QD * sizeof *dq); /* d(base) from the residual */
    layernorm_backward(dq, G(e, lp->ln1_w), G(e, lp->ln1_b), bs->dln, t->qin, P(e, lp->ln1_w),
                       t->ln1_mean, t->ln1_rstd, BQ, D);
    if (t->kind == BLOCK_POOL) {
        memset(dx, 0, (size_t)BK * D * sizeof *dx); /* dx becomes d(x_in) */
        layernorm_backward(dx, G(e, lp->lnkv_w), G(e, lp->lnkv_b), dkv, e->xs[l], P(e, lp->lnkv_w),
                           t->lnkv_mean, t->lnkv_rstd, BK, D);
        funnel_pool_backward(dx, dq, input_mask(e, l), B, t->Lk, t->Lq, D, e->cfg.cls_id >= 0);
        return;
    }
    /* CROSS: the keys read the input array, whose gradient gathers over the cross-attends */
    layernorm_backward(bs->dx0, G(e, lp->lnkv_w), G(e, lp->lnkv_b), dkv, e->xs[0], P(e, lp->lnkv_w),
                       t->lnkv_mean, t->lnkv_rstd, BK, D);
    if (lp->latents < 0) { /* a later cross-attend: dx becomes d(the latent stream) */
        memcpy(dx, dq, QD * sizeof *dx);
        return;
    }
    float *gl = G(e, lp->latents); /* the latents are shared by the batch */
    for (int b = 0; b < B; b++)
        for (size_t k = 0; k < (size_t)t->Lq * D; k++) gl[k] += dq[(size_t)b * t->Lq * D + k];
    memcpy(dx, bs->dx0, (size_t)BK * D * sizeof *dx); /* the first block: dx = d(x_0) */
}

static void encoder_backward_impl(Encoder *e, uint64_t seed, int64_t step) {
    const int B = e->cfg.B, L = e->cfg.L, D = e->cfg.D;
    const float p = e->cfg.dropout;
    arena_reset(&e->scratch);
    BwdScratch bs;
    carve_backward(e, &e->scratch, &bs);
    const size_t mark = arena_mark(&e->scratch);
    for (int l = 0; l < e->cfg.N; l++) /* the carries' gradients gather from the blocks after */
        if (e->la[l].dcarry) memset(e->la[l].dcarry, 0, carry_floats(e, l) * sizeof(float));
    head_backward(e, &bs);
    for (int l = e->cfg.N - 1; l >= 0; l--) {
        const LayerActs *t = &e->la[l];
        const size_t QD = (size_t)B * t->Lq * D;
        ffn_backward(e, l, &bs, mark, seed, step);
        /* r = base + drop(mix(...)); dx holds d(r) */
        dropout_backward_set(bs.dtmp, bs.dx, QD, p, dropout_key(seed, step, site_layer(l, 0)),
                             e->row0 * (uint64_t)t->Lq * D, kept(e, t->keep[0]));
        memset(bs.dln, 0, QD * sizeof *bs.dln);
        if (t->kind == BLOCK_SELF)
            self_backward(e, l, &bs, mark, seed, step);
        else
            downsample_backward(e, l, &bs, mark);
    }
    /* x_0 = drop(embed(tokens)) */
    const size_t BLD = (size_t)B * L * D;
    dropout_backward_set(bs.dtmp, bs.dx, BLD, p, dropout_key(seed, step, site_embed()),
                         e->row0 * (uint64_t)L * D, kept(e, e->keep_embed));
    embedding_backward(G(e, e->p_wte), e->cfg.positions == POS_LEARNED ? G(e, e->p_wpe) : NULL,
                       bs.dtmp, e->tokens, B, L, D);
    arena_reset(&e->scratch);
}

/* The encoder's own glue (residual adds, windows, pooling) is what its kernels leave over. */
double encoder_forward(Encoder *e, int training, uint64_t seed, int64_t step) {
    prof_open(PROF_ENCODER, 0);
    const double loss = encoder_forward_impl(e, training, seed, step);
    prof_close();
    return loss;
}

void encoder_backward(Encoder *e, uint64_t seed, int64_t step) {
    prof_open(PROF_ENCODER, 1);
    encoder_backward_impl(e, seed, step);
    prof_close();
}

uint64_t encoder_flops(const Encoder *e, int backward) {
    const uint64_t B = (uint64_t)e->cfg.B;
    const uint64_t D = (uint64_t)e->cfg.D, F = (uint64_t)e->cfg.F, Hh = (uint64_t)e->cfg.Hh,
                   C = (uint64_t)e->cfg.C;
    uint64_t f = 0, ffn = 0;
    for (int l = 0; l < e->cfg.N; l++) {
        const LayerActs *t = &e->la[l];
        if (t->kind == BLOCK_SELF && e->cfg.crate > 0) f += compress_flops(&t->cmp, backward);
        if (t->kind == BLOCK_SELF && e->cfg.seg > 0)
            f += e->cfg.mixer_spec->ops->flops(&e->mixers[l], e->cfg.B * e->cfg.nseg, window(e),
                                               backward);
        else if (t->kind == BLOCK_SELF)
            f += e->cfg.mixer_spec->ops->flops(&e->mixers[l], e->cfg.B, t->Lq, backward);
        else
            f += xattn_flops(&e->xattn[l], e->cfg.B, t->Lq, t->Lk, backward);
        ffn += e->cfg.ffn == FFN_SWITCH ? moe_flops(&t->moe, 0)
                                        : 2 * (2 * B * (uint64_t)t->Lq * D * F);
    }
    const uint64_t R = (uint64_t)head_rows(e),
                   head = 2 * R * (uint64_t)head_in(e) * Hh + 2 * R * Hh * C;
    f += backward ? 2 * (ffn + head) : ffn + head;
    return f;
}

size_t encoder_param_bytes(const Encoder *e) { return e->pt.total * sizeof(float); }
