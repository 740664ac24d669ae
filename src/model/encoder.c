#include "model/encoder.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xassert.h"
#include "kernels/activations.h"
#include "kernels/dropout.h"
#include "kernels/embedding.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/pool.h"

/* Dropout call sites (keys are derived from seed, step and site). */
static int site_embed(void) { return 0; }
static int site_layer(int l, int k) { return 1 + 3 * l + k; } /* k: 0 mixer, 1 GELU, 2 FFN out */

static void declare_params(Encoder *e, const OptValues *mixer_opts) {
    ParamTable *pt = &e->pt;
    char name[XB_PARAM_NAME];
    const int D = e->D, F = e->F;
    /* LRA: token embeddings N(0, 1), learned positions N(0, 0.02²), Xavier-uniform dense layers
     * with (near-)zero biases, LayerNorm scale 1 and shift 0, Flax-default LeCun-normal head. */
    e->p_wte = params_add2(pt, "embed.tokens.weight", e->V, D, INIT_NORMAL, 1.0f, 0);
    e->p_wpe = -1;
    if (e->positions == POS_LEARNED)
        e->p_wpe = params_add2(pt, "embed.positions.weight", e->L, D, INIT_NORMAL, 0.02f, 0);
    for (int l = 0; l < e->N; l++) {
        LayerParams *p = &e->lp[l];
#define ADD1(field, what, n, init)                                                                 \
    snprintf(name, sizeof name, "blocks.%d.%s", l, what);                                          \
    p->field = params_add1(pt, name, n, init, 0, 0)
#define ADD2(field, what, r, c)                                                                    \
    snprintf(name, sizeof name, "blocks.%d.%s", l, what);                                          \
    p->field = params_add2(pt, name, r, c, INIT_XAVIER_UNIFORM, 0, 1)
        ADD1(ln1_w, "norm1.weight", D, INIT_ONES);
        ADD1(ln1_b, "norm1.bias", D, INIT_ZEROS);
        mixer_create(&e->mixers[l], e->mixer_spec, mixer_opts, D, e->H, e->L, l, pt);
        e->mixers[l].prev = l > 0 ? &e->mixers[l - 1] : NULL;
        ADD1(ln2_w, "norm2.weight", D, INIT_ONES);
        ADD1(ln2_b, "norm2.bias", D, INIT_ZEROS);
        ADD2(fc1_w, "ffn.fc1.weight", F, D);
        ADD1(fc1_b, "ffn.fc1.bias", F, INIT_ZEROS);
        ADD2(fc2_w, "ffn.fc2.weight", D, F);
        ADD1(fc2_b, "ffn.fc2.bias", D, INIT_ZEROS);
#undef ADD1
#undef ADD2
    }
    e->p_lnf_w = params_add1(pt, "norm.weight", D, INIT_ONES, 0, 0);
    e->p_lnf_b = params_add1(pt, "norm.bias", D, INIT_ZEROS, 0, 0);
    e->p_h1_w = params_add2(pt, "head.fc1.weight", e->Hh, D, INIT_NORMAL, 1.0f / sqrtf((float)D), 1);
    e->p_h1_b = params_add1(pt, "head.fc1.bias", e->Hh, INIT_ZEROS, 0, 0);
    e->p_h2_w =
        params_add2(pt, "head.fc2.weight", e->C, e->Hh, INIT_NORMAL, 1.0f / sqrtf((float)e->Hh), 1);
    e->p_h2_b = params_add1(pt, "head.fc2.bias", e->C, INIT_ZEROS, 0, 0);
}

/* The encoder's own backward buffers, carved from the scratch arena in this order in both the
 * plan and the backward, so the plan is exact. */
typedef struct BwdScratch {
    float *dlogits, *da1, *dh1, *dpooled; /* (B, C), (B, Hh), (B, Hh), (B, D) */
    float *dlnf, *dx, *dtmp, *dln;        /* (B, L, D) each; dx is the residual stream's gradient */
    float *dg, *dh;                       /* (B, L, F) each */
} BwdScratch;

static void carve_backward(const Encoder *e, Arena *s, BwdScratch *b) {
    const size_t BLD = (size_t)e->B * e->L * e->D, BLF = (size_t)e->B * e->L * e->F;
    b->dlogits = arena_floats(s, (size_t)e->B * e->C);
    b->da1 = arena_floats(s, (size_t)e->B * e->Hh);
    b->dh1 = arena_floats(s, (size_t)e->B * e->Hh);
    b->dpooled = arena_floats(s, (size_t)e->B * e->D);
    b->dlnf = arena_floats(s, BLD);
    b->dx = arena_floats(s, BLD);
    b->dtmp = arena_floats(s, BLD);
    b->dln = arena_floats(s, BLD);
    b->dg = arena_floats(s, BLF);
    b->dh = arena_floats(s, BLF);
}

/* Carves every activation from `a` and lets the mixers plan theirs; `s` measures scratch. */
static void plan(Encoder *e, Arena *a, Arena *s) {
    const size_t BL = (size_t)e->B * e->L, BLD = BL * e->D, BLF = BL * e->F;
    e->tokens = arena_alloc(a, BL * sizeof(int32_t));
    e->mask = arena_alloc(a, BL);
    e->labels = arena_alloc(a, (size_t)e->B * sizeof(int32_t));
    e->x = arena_floats(a, (size_t)(e->N + 1) * BLD);
    for (int l = 0; l < e->N; l++) {
        LayerActs *t = &e->la[l];
        t->ln1 = arena_floats(a, BLD);
        t->ln1_mean = arena_floats(a, BL);
        t->ln1_rstd = arena_floats(a, BL);
        t->r = arena_floats(a, BLD);
        t->ln2 = arena_floats(a, BLD);
        t->ln2_mean = arena_floats(a, BL);
        t->ln2_rstd = arena_floats(a, BL);
        t->h = arena_floats(a, BLF);
        t->g = arena_floats(a, BLF);
        /* Mixer calls happen on top of the encoder's backward buffers and do not overlap each
         * other, so each layer plans its scratch from the same mark. */
        const size_t mark = arena_mark(s);
        carve_backward(e, s, &(BwdScratch){0});
        e->mixer_spec->ops->plan(&e->mixers[l], a, s, e->B, e->L);
        arena_reset_to(s, mark);
    }
    e->lnf = arena_floats(a, BLD);
    e->lnf_mean = arena_floats(a, BL);
    e->lnf_rstd = arena_floats(a, BL);
    e->pooled = arena_floats(a, (size_t)e->B * e->D);
    e->h1 = arena_floats(a, (size_t)e->B * e->Hh);
    e->a1 = arena_floats(a, (size_t)e->B * e->Hh);
    e->logits = arena_floats(a, (size_t)e->B * e->C);
    e->probs = arena_floats(a, (size_t)e->B * e->C);
    e->losses = arena_floats(a, (size_t)e->B);
    if (e->positions == POS_SINUSOIDAL) e->sinus = arena_floats(a, (size_t)e->L * e->D);
}

int encoder_create(Encoder *e, const ExperimentConfig *cfg, int vocab, int n_classes,
                   XbError *err) {
    memset(e, 0, sizeof *e);
    e->B = cfg->batch_size;
    e->L = cfg->max_len;
    e->pooling = cfg->pooling;
    e->positions = cfg->positions;
    e->cls_id = cfg->pooling == POOL_CLS ? vocab : -1;
    e->V = vocab + (cfg->pooling == POOL_CLS ? 1 : 0);
    e->C = n_classes;
    e->D = cfg->d_model;
    e->H = cfg->heads;
    e->F = cfg->d_ff;
    e->N = cfg->layers;
    e->Hh = cfg->head_hidden > 0 ? cfg->head_hidden : cfg->d_ff;
    e->dropout = cfg->dropout;
    e->mixer_spec = mixer_get(cfg->mixer_index);
    e->mixers = calloc((size_t)e->N, sizeof *e->mixers);
    e->lp = calloc((size_t)e->N, sizeof *e->lp);
    e->la = calloc((size_t)e->N, sizeof *e->la);
    XB_ASSERT(e->mixers && e->lp && e->la);
    params_init(&e->pt);
    declare_params(e, &cfg->mixer_opts);

    e->params = aligned_alloc(XB_ALIGN, ((e->pt.total * sizeof(float)) + XB_ALIGN - 1) / XB_ALIGN * XB_ALIGN);
    e->grads = aligned_alloc(XB_ALIGN, ((e->pt.total * sizeof(float)) + XB_ALIGN - 1) / XB_ALIGN * XB_ALIGN);
    Arena ma, ms;
    arena_init_measure(&ma);
    arena_init_measure(&ms);
    plan(e, &ma, &ms);
    if (!e->params || !e->grads || arena_init(&e->acts, ma.peak) || arena_init(&e->scratch, ms.peak)) {
        encoder_destroy(e);
        return xb_error_set(err, cfg->source, 0, 0, "model",
                            "cannot allocate %.1f MiB of activations and %.1f MiB of scratch "
                            "(reduce train.batch_size, model.max_len or model.d_model)",
                            (double)ma.peak / 1048576.0, (double)ms.peak / 1048576.0);
    }
    Arena scratch_measure;
    arena_init_measure(&scratch_measure);
    plan(e, &e->acts, &scratch_measure);
    memset(e->params, 0, e->pt.total * sizeof(float));
    memset(e->grads, 0, e->pt.total * sizeof(float));
    if (e->sinus) sinusoidal_table(e->sinus, e->L, e->D);
    return 0;
}

void encoder_destroy(Encoder *e) {
    if (e->mixers)
        for (int l = 0; l < e->N; l++) mixer_destroy(&e->mixers[l]);
    free(e->mixers);
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

static const float *P(const Encoder *e, int i) { return i < 0 ? NULL : e->params + e->pt.info[i].offset; }
static float *G(const Encoder *e, int i) { return i < 0 ? NULL : e->grads + e->pt.info[i].offset; }

static MixerStep mixer_step(Encoder *e, int training, uint64_t seed, int64_t step) {
    MixerStep s = {.B = e->B, .L = e->L, .mask = e->mask, .training = training, .seed = seed,
                   .step = step, .pt = &e->pt, .params = e->params, .grads = e->grads,
                   .scratch = &e->scratch};
    return s;
}

/* out = a + b, element-wise over n. */
static void add_into(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

double encoder_forward(Encoder *e, int training, uint64_t seed, int64_t step) {
    const int B = e->B, L = e->L, D = e->D, F = e->F, BL = B * L;
    const size_t BLD = (size_t)BL * D, BLF = (size_t)BL * F;
    const float p = training ? e->dropout : 0.0f;
    MixerStep ms = mixer_step(e, training, seed, step);
    arena_reset(&e->scratch);

    const float *wpe = e->positions == POS_LEARNED ? P(e, e->p_wpe) : e->sinus;
    embedding_forward(e->x, e->tokens, P(e, e->p_wte), wpe, B, L, D);
    dropout_forward(e->x, e->x, BLD, p, dropout_key(seed, step, site_embed()));
    for (int l = 0; l < e->N; l++) {
        const LayerParams *lp = &e->lp[l];
        LayerActs *t = &e->la[l];
        const float *xin = e->x + (size_t)l * BLD;
        float *xout = e->x + (size_t)(l + 1) * BLD;
        layernorm_forward(t->ln1, t->ln1_mean, t->ln1_rstd, xin, P(e, lp->ln1_w), P(e, lp->ln1_b), BL, D);
        e->mixer_spec->ops->forward(&e->mixers[l], &ms, t->r, t->ln1);
        arena_reset(&e->scratch);
        dropout_forward(t->r, t->r, BLD, p, dropout_key(seed, step, site_layer(l, 0)));
        add_into(t->r, t->r, xin, BLD);
        layernorm_forward(t->ln2, t->ln2_mean, t->ln2_rstd, t->r, P(e, lp->ln2_w), P(e, lp->ln2_b), BL, D);
        linear_forward(t->h, t->ln2, P(e, lp->fc1_w), P(e, lp->fc1_b), BL, D, F);
        gelu_forward(t->g, t->h, BLF);
        dropout_forward(t->g, t->g, BLF, p, dropout_key(seed, step, site_layer(l, 1)));
        linear_forward(xout, t->g, P(e, lp->fc2_w), P(e, lp->fc2_b), BL, F, D);
        dropout_forward(xout, xout, BLD, p, dropout_key(seed, step, site_layer(l, 2)));
        add_into(xout, xout, t->r, BLD);
    }
    const float *xN = e->x + (size_t)e->N * BLD;
    layernorm_forward(e->lnf, e->lnf_mean, e->lnf_rstd, xN, P(e, e->p_lnf_w), P(e, e->p_lnf_b), BL, D);
    if (e->pooling == POOL_CLS)
        pool_cls_forward(e->pooled, e->lnf, B, L, D);
    else
        pool_mean_forward(e->pooled, e->lnf, e->mask, B, L, D);
    linear_forward(e->h1, e->pooled, P(e, e->p_h1_w), P(e, e->p_h1_b), B, D, e->Hh);
    relu_forward(e->a1, e->h1, (size_t)B * e->Hh);
    linear_forward(e->logits, e->a1, P(e, e->p_h2_w), P(e, e->p_h2_b), B, e->Hh, e->C);
    crossentropy_forward(e->losses, e->probs, e->logits, e->labels, B, e->C);
    double sum = 0.0;
    for (int b = 0; b < B; b++) sum += e->losses[b];
    return sum / B;
}

void encoder_backward(Encoder *e, uint64_t seed, int64_t step) {
    const int B = e->B, L = e->L, D = e->D, F = e->F, BL = B * L, Hh = e->Hh;
    const size_t BLD = (size_t)BL * D, BLF = (size_t)BL * F;
    const float p = e->dropout;
    MixerStep ms = mixer_step(e, 1, seed, step);
    arena_reset(&e->scratch);
    BwdScratch bs;
    carve_backward(e, &e->scratch, &bs);
    float *dlogits = bs.dlogits, *da1 = bs.da1, *dh1 = bs.dh1, *dpooled = bs.dpooled;
    float *dlnf = bs.dlnf, *dx = bs.dx, *dtmp = bs.dtmp, *dln = bs.dln, *dg = bs.dg, *dh = bs.dh;
    const size_t mark = arena_mark(&e->scratch);

    crossentropy_backward(dlogits, e->probs, e->labels, 1.0f / (float)B, B, e->C);
    linear_backward(da1, G(e, e->p_h2_w), G(e, e->p_h2_b), dlogits, e->a1, P(e, e->p_h2_w), B, Hh, e->C);
    relu_backward(dh1, e->h1, da1, (size_t)B * Hh);
    linear_backward(dpooled, G(e, e->p_h1_w), G(e, e->p_h1_b), dh1, e->pooled, P(e, e->p_h1_w), B, D, Hh);
    if (e->pooling == POOL_CLS)
        pool_cls_backward(dlnf, dpooled, B, L, D);
    else
        pool_mean_backward(dlnf, dpooled, e->mask, B, L, D);
    layernorm_backward(dx, G(e, e->p_lnf_w), G(e, e->p_lnf_b), dlnf, e->x + (size_t)e->N * BLD,
                       P(e, e->p_lnf_w), e->lnf_mean, e->lnf_rstd, BL, D);
    for (int l = e->N - 1; l >= 0; l--) {
        const LayerParams *lp = &e->lp[l];
        LayerActs *t = &e->la[l];
        /* x_out = r + drop(fc2(g)); dx holds d(x_out) and becomes d(r). */
        memset(dtmp, 0, BLD * sizeof *dtmp);
        dropout_backward(dtmp, dx, BLD, p, dropout_key(seed, step, site_layer(l, 2)));
        memset(dg, 0, BLF * sizeof *dg);
        linear_backward(dg, G(e, lp->fc2_w), G(e, lp->fc2_b), dtmp, t->g, P(e, lp->fc2_w), BL, F, D);
        memset(dh, 0, BLF * sizeof *dh);
        dropout_backward(dh, dg, BLF, p, dropout_key(seed, step, site_layer(l, 1)));
        memset(dg, 0, BLF * sizeof *dg);
        gelu_backward(dg, t->h, dh, BLF);
        memset(dln, 0, BLD * sizeof *dln);
        linear_backward(dln, G(e, lp->fc1_w), G(e, lp->fc1_b), dg, t->ln2, P(e, lp->fc1_w), BL, D, F);
        layernorm_backward(dx, G(e, lp->ln2_w), G(e, lp->ln2_b), dln, t->r, P(e, lp->ln2_w),
                           t->ln2_mean, t->ln2_rstd, BL, D);
        /* r = x_in + drop(mixer(ln1(x_in))); dx holds d(r) and becomes d(x_in). */
        memset(dtmp, 0, BLD * sizeof *dtmp);
        dropout_backward(dtmp, dx, BLD, p, dropout_key(seed, step, site_layer(l, 0)));
        memset(dln, 0, BLD * sizeof *dln);
        e->mixer_spec->ops->backward(&e->mixers[l], &ms, dln, dtmp, t->ln1);
        arena_reset_to(&e->scratch, mark);
        layernorm_backward(dx, G(e, lp->ln1_w), G(e, lp->ln1_b), dln, e->x + (size_t)l * BLD,
                           P(e, lp->ln1_w), t->ln1_mean, t->ln1_rstd, BL, D);
    }
    /* x_0 = drop(embed(tokens)) */
    memset(dtmp, 0, BLD * sizeof *dtmp);
    dropout_backward(dtmp, dx, BLD, p, dropout_key(seed, step, site_embed()));
    embedding_backward(G(e, e->p_wte), e->positions == POS_LEARNED ? G(e, e->p_wpe) : NULL, dtmp,
                       e->tokens, B, L, D);
    arena_reset(&e->scratch);
}

uint64_t encoder_flops(const Encoder *e, int backward) {
    const uint64_t BL = (uint64_t)e->B * (uint64_t)e->L, B = (uint64_t)e->B;
    const uint64_t D = (uint64_t)e->D, F = (uint64_t)e->F, Hh = (uint64_t)e->Hh, C = (uint64_t)e->C;
    uint64_t f = 0;
    for (int l = 0; l < e->N; l++) f += e->mixer_spec->ops->flops(&e->mixers[l], e->B, e->L, backward);
    const uint64_t ffn = (uint64_t)e->N * 2 * (2 * BL * D * F);
    const uint64_t head = 2 * B * D * Hh + 2 * B * Hh * C;
    f += backward ? 2 * (ffn + head) : ffn + head;
    return f;
}

size_t encoder_param_bytes(const Encoder *e) { return e->pt.total * sizeof(float); }
