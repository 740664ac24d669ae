/* The whole encoder: gradients of the loss against finite differences for every parameter
 * tensor, counted FLOPs equal to the analytic count, and padding that cannot leak into results. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "gradcheck.h"
#include "mixers/mixer.h"
#include "model/encoder.h"
#include "model/moe.h"

enum { V = 9, NCLS = 3 };

/* Model-level variants the tests switch on: Funnel stages, Perceiver latents, layers. */
static int g_funnel = 0, g_latents = 0, g_layers = 2, g_segment = 0, g_memory = 0, g_len = 7;
static int g_experts = 0;             /* > 0: Switch FFN with that many experts */
static int g_xrep = 1;                /* Perceiver: cross-attends */
static int g_compress = 0, g_ncm = 0; /* Compressive Transformer: rate, slots */
static double g_balance = 0.01, g_zloss = 1e-3;
static const char *g_mixer = "full";   /* the mechanism */
static const char *g_mixer_set = NULL; /* "name=value": one of its options set */

static ExperimentConfig tiny_config(int B, int L, PoolKind pool, PosKind pos, float dropout) {
    ExperimentConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.source, sizeof c.source, "test");
    c.layers = g_layers, c.d_model = 8, c.heads = 2, c.d_ff = 12, c.head_hidden = 10;
    c.funnel = g_funnel, c.latents = g_latents, c.segment = g_segment, c.memory = g_memory;
    c.cross_attends = g_xrep;
    c.compress = g_compress, c.compressed_memory = g_ncm;
    c.ffn = g_experts ? FFN_SWITCH : FFN_DENSE, c.experts = g_experts ? g_experts : 8;
    c.capacity_factor = 1.25, c.eval_capacity_factor = 2.0;
    c.balance_loss = g_balance, c.router_z_loss = g_zloss;
    c.max_len = L, c.batch_size = B, c.dropout = dropout;
    c.pooling = pool, c.positions = pos;
    c.mixer_index = mixer_find(g_mixer);
    const MixerSpec *m = mixer_get(c.mixer_index);
    opt_defaults(&c.mixer_opts, m->opts, m->n_opts);
    if (g_mixer_set) {
        char name[64];
        const char *eq = strchr(g_mixer_set, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - g_mixer_set), g_mixer_set);
        c.mixer_opts.num[opt_index(m->opts, m->n_opts, name)] = atof(eq + 1);
    }
    return c;
}

/* Fills the batch: row b has len[b] real tokens (CLS first when pooling is cls), then padding
 * whose token id is `pad_token` (0 normally; anything else must not matter). */
static void fill_batch(Encoder *e, const int *len, int32_t pad_token) {
    for (int b = 0; b < e->B; b++) {
        for (int t = 0; t < e->L; t++) {
            const size_t i = (size_t)b * e->L + t;
            const int real = t < len[b];
            e->mask[i] = (unsigned char)real;
            e->tokens[i] = real ? 1 + (int32_t)((b * 7 + t * 3) % (V - 1)) : pad_token;
            if (real && t == 0 && e->cls_id >= 0) e->tokens[i] = e->cls_id;
        }
    }
    if (e->pooling == POOL_NONE) /* targets at most real positions, none at the others */
        for (int i = 0; i < e->B * e->L; i++)
            e->labels[i] = e->mask[i] && i % 3 != 1 ? (int32_t)((i * 5) % NCLS) : -1;
    else
        for (int b = 0; b < e->NB; b++) e->labels[b] = b % NCLS; /* NB = B unless pairs */
}

typedef struct {
    Encoder *e;
    float loss;
    uint64_t seed;
    int64_t step;
} Ctx;
static void model_fwd(void *p) {
    Ctx *c = p;
    c->loss = (float)encoder_forward(c->e, 1, c->seed, c->step);
}

static void check_model_gradients(PoolKind pool, PosKind pos, float dropout,
                                  const char *mixer_opt) {
    const int B = 3, L = g_len, len[3] = {g_len, 4, 5};
    ExperimentConfig cfg = tiny_config(B, L, pool, pos, dropout);
    if (mixer_opt) {
        const MixerSpec *m = mixer_get(cfg.mixer_index);
        cfg.mixer_opts.num[opt_index(m->opts, m->n_opts, mixer_opt)] = 1;
    }
    Encoder e;
    XbError err;
    ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
    encoder_init_params(&e, 5);
    for (int i = 0; i < e.pt.n; i++) /* N(0, 0.02²) latents make LayerNorm too curved for h */
        if (strstr(e.pt.info[i].name, ".latents"))
            gc_fill_normal(e.params + e.pt.info[i].offset, e.pt.info[i].size, 77, 1.0f);
    fill_batch(&e, len, 0);
    Ctx c = {.e = &e, .seed = 11, .step = 3};
    model_fwd(&c);
    memset(e.grads, 0, e.pt.total * sizeof(float));
    encoder_backward(&e, c.seed, c.step);
    e.frozen = 1; /* the memory is a constant for the gradient; top-1 routing, drops and the
                   * ReLUs' active sets are piecewise constant */
    const float one = 1.0f;
    /* Every tensor, up to 40 evenly spaced elements of each. */
    for (int i = 0; i < e.pt.n; i++) {
        const ParamInfo *p = &e.pt.info[i];
        GcResult r;
        int ok = gradcheck(model_fwd, &c, e.params + p->offset, p->size, e.grads + p->offset,
                           &c.loss, 1, &one, 3e-3f, 1e-3, 1e-2, 40, &r);
        GC_ASSERT(ok, p->name, &r);
    }
    encoder_destroy(&e);
}

START_TEST(test_encoder_gradients_match_finite_differences_cls_sinusoidal) {
    check_model_gradients(POOL_CLS, POS_SINUSOIDAL, 0.0f, NULL);
}
END_TEST

START_TEST(test_encoder_gradients_match_finite_differences_mean_learned_dropout) {
    check_model_gradients(POOL_MEAN, POS_LEARNED, 0.2f, NULL);
}
END_TEST

START_TEST(test_encoder_gradients_match_finite_differences_causal_with_bias) {
    check_model_gradients(POOL_MEAN, POS_NONE, 0.1f, "causal");
    check_model_gradients(POOL_CLS, POS_LEARNED, 0.0f, "bias");
}
END_TEST

static void check_flops_len(PoolKind pool, int L) {
    const int len[4] = {L, 10, 1, 20};
    ExperimentConfig cfg = tiny_config(4, L, pool, POS_SINUSOIDAL, 0.1f);
    Encoder e;
    XbError err;
    ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
    encoder_init_params(&e, 1);
    fill_batch(&e, len, 0);
    flops_reset();
    encoder_forward(&e, 1, 1, 1);
    ck_assert_uint_eq(flops_counted(), encoder_flops(&e, 0));
    flops_reset();
    encoder_backward(&e, 1, 1);
    ck_assert_uint_eq(flops_counted(), encoder_flops(&e, 1));
    ck_assert_uint_gt(encoder_flops(&e, 1), encoder_flops(&e, 0));
    encoder_destroy(&e);
}

static void check_flops(PoolKind pool) { check_flops_len(pool, 33); }

START_TEST(test_counted_flops_equal_analytic_count) {
    check_flops(POOL_CLS);
    check_flops(POOL_NONE);
    g_funnel = 2;
    check_flops(POOL_CLS);
    check_flops(POOL_MEAN);
    g_funnel = 0, g_latents = 5;
    check_flops(POOL_MEAN);
    g_latents = 0, g_segment = 11, g_memory = 7; /* 33 = 3 segments */
    check_flops(POOL_CLS);
    g_segment = 12, g_memory = 6, g_compress = 3, g_ncm = 4; /* 36 = 3 segments */
    check_flops_len(POOL_MEAN, 36);
    g_segment = 0, g_memory = 0, g_compress = 0, g_ncm = 0;
}
END_TEST

static void check_padding(void) {
    const int len[3] = {9, 4, 6};
    const int last = g_latents || g_funnel > 1 ? POOL_MEAN : POOL_NONE; /* none keeps the length */
    for (int pool = g_latents ? 1 : 0; pool <= last; pool++) {
        ExperimentConfig cfg = tiny_config(3, 9, (PoolKind)pool, POS_LEARNED, 0.0f);
        Encoder e;
        XbError err;
        ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
        encoder_init_params(&e, 2);
        fill_batch(&e, len, 0);
        const double l0 = encoder_forward(&e, 0, 1, 1);
        const int rows = pool == POOL_NONE ? 3 * 9 : 3; /* per position: padding rows differ */
        float logits[3 * 9 * NCLS];
        memcpy(logits, e.logits, (size_t)rows * NCLS * sizeof(float));
        memset(e.grads, 0, e.pt.total * sizeof(float));
        encoder_backward(&e, 1, 1);
        float *g0 = malloc(e.pt.total * sizeof(float));
        memcpy(g0, e.grads, e.pt.total * sizeof(float));
        fill_batch(&e, len, 5); /* same real tokens, different ids under the mask */
        const double l1 = encoder_forward(&e, 0, 1, 1);
        ck_assert_double_eq_tol(l0, l1, 1e-6);
        for (int i = 0; i < rows * NCLS; i++)
            if (pool != POOL_NONE || e.mask[i / NCLS])
                ck_assert_float_eq_tol(e.logits[i], logits[i], 1e-5);
        memset(e.grads, 0, e.pt.total * sizeof(float));
        encoder_backward(&e, 1, 1);
        /* Padding positions still flow through the FFN (as in every encoder) but their loss
         * gradient is zero, so only the embedding rows of the two pad ids may differ. */
        const ParamInfo *wte = &e.pt.info[e.p_wte];
        for (size_t i = 0; i < e.pt.total; i++) {
            if (i >= wte->offset && i < wte->offset + wte->size) continue;
            ck_assert_msg(fabsf(e.grads[i] - g0[i]) <= 1e-5f * (1 + fabsf(g0[i])),
                          "gradient %zu changed with the padding ids", i);
        }
        free(g0);
        encoder_destroy(&e);
    }
}

START_TEST(test_padding_tokens_do_not_change_logits_or_gradients) {
    check_padding();
    g_funnel = 2; /* pooled pairs of padding stay padding */
    check_padding();
    g_funnel = 0, g_latents = 4; /* the latents read the input with padding masked */
    check_padding();
    g_latents = 0, g_segment = 3, g_memory = 5; /* padding in the memory is masked too */
    check_padding();
    g_memory = 3, g_compress = 3, g_ncm = 2; /* and in the compressed memory */
    check_padding();
    g_segment = 0, g_memory = 0, g_compress = 0, g_ncm = 0;
}
END_TEST

/* The per-position head (pooling none): the MLP head on every position, the loss the mean
 * cross-entropy over the positions with a target. Every gradient against finite differences,
 * alone, with dropout, under the segment recurrence and with a Switch FFN. */
START_TEST(test_per_position_head_gradients_match_finite_differences) {
    check_model_gradients(POOL_NONE, POS_SINUSOIDAL, 0.0f, NULL);
    check_model_gradients(POOL_NONE, POS_LEARNED, 0.2f, NULL);
    g_len = 8, g_segment = 4, g_memory = 3;
    check_model_gradients(POOL_NONE, POS_LEARNED, 0.1f, NULL);
    g_len = 7, g_segment = 0, g_memory = 0, g_experts = 3;
    check_model_gradients(POOL_NONE, POS_SINUSOIDAL, 0.0f, NULL);
    g_experts = 0;
}
END_TEST

/* The per-position loss is the mean over target positions of −log p(target): recomputed here
 * from the probabilities, and a position without a target has no gradient reaching its logits
 * (its token's embedding gets none through the head when the token occurs nowhere else). */
START_TEST(test_per_position_loss_is_the_mean_over_target_positions) {
    const int len[3] = {7, 4, 5};
    ExperimentConfig cfg = tiny_config(3, 7, POOL_NONE, POS_SINUSOIDAL, 0.0f);
    Encoder e;
    XbError err;
    ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
    ck_assert_int_eq(e.cls_id, -1);
    encoder_init_params(&e, 3);
    fill_batch(&e, len, 0);
    const double loss = encoder_forward(&e, 0, 1, 1);
    double sum = 0.0;
    int n = 0;
    for (int i = 0; i < 3 * 7; i++)
        if (e.labels[i] >= 0) sum -= log(e.probs[(size_t)i * NCLS + e.labels[i]]), n++;
    ck_assert_int_eq(n, e.n_targets);
    ck_assert_int_gt(n, 0);
    ck_assert_double_eq_tol(loss, sum / n, 1e-5);
    for (int i = 0; i < 3 * 7; i++) e.labels[i] = -1; /* no target anywhere: no loss, no gradient */
    ck_assert_double_eq(encoder_forward(&e, 0, 1, 1), 0.0);
    memset(e.grads, 0, e.pt.total * sizeof(float));
    encoder_backward(&e, 1, 1);
    for (size_t i = 0; i < e.pt.total; i++) ck_assert_float_eq(e.grads[i], 0.0f);
    encoder_destroy(&e);
}
END_TEST

/* Funnel: the first block of every stage after the first pools the sequence by 2 and attends
 * from the pooled queries over the unpooled keys; Perceiver: one cross-attend from the latents,
 * then the blocks over the latents. Every gradient of the whole model against finite
 * differences, with CLS and mean pooling, and stage lengths that leave an odd position. */
START_TEST(test_funnel_and_perceiver_gradients_match_finite_differences) {
    g_funnel = 2;
    check_model_gradients(POOL_CLS, POS_SINUSOIDAL, 0.0f, NULL);
    check_model_gradients(POOL_MEAN, POS_LEARNED, 0.1f, NULL);
    g_funnel = 3, g_layers = 3; /* 7 → 4 → 3 with CLS */
    check_model_gradients(POOL_CLS, POS_LEARNED, 0.0f, NULL);
    g_funnel = 0, g_layers = 2, g_latents = 3;
    check_model_gradients(POOL_MEAN, POS_SINUSOIDAL, 0.1f, NULL);
    g_latents = 0;
}
END_TEST

/* Luna's packed sequence P' goes from each layer to the next through the carry the encoder owns
 * (MixerStep.carry_in/out), across a Funnel's pooling block, and so does its gradient: every
 * gradient against finite differences; the first layer's P norm reaches the loss only through the
 * layers after it, so its gradient is not zero; counted FLOPs equal the analytic count, and a
 * second backward gives the same bits. */
START_TEST(test_luna_layers_carry_p_through_the_encoder) {
    g_mixer = "luna", g_mixer_set = "length=3", g_layers = 3;
    check_model_gradients(POOL_MEAN, POS_SINUSOIDAL, 0.0f, NULL);
    g_funnel = 2; /* SELF, POOL, SELF: the carry skips the pooling block */
    check_model_gradients(POOL_CLS, POS_LEARNED, 0.1f, NULL);
    g_funnel = 0;
    const int len[3] = {g_len, 4, 5};
    ExperimentConfig cfg = tiny_config(3, g_len, POOL_MEAN, POS_SINUSOIDAL, 0.0f);
    Encoder e;
    XbError err;
    ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
    encoder_init_params(&e, 5);
    fill_batch(&e, len, 0);
    for (int l = 0; l < e.cfg.N; l++) ck_assert_ptr_nonnull(e.la[l].carry);
    flops_reset();
    encoder_forward(&e, 1, 11, 3);
    ck_assert_uint_eq(flops_counted(), encoder_flops(&e, 0));
    memset(e.grads, 0, e.pt.total * sizeof(float));
    flops_reset();
    encoder_backward(&e, 11, 3);
    ck_assert_uint_eq(flops_counted(), encoder_flops(&e, 1));
    /* a second backward gives the same bits: the carries' gradients start from zero each time */
    float *first = malloc(e.pt.total * sizeof(float));
    memcpy(first, e.grads, e.pt.total * sizeof(float));
    memset(e.grads, 0, e.pt.total * sizeof(float));
    encoder_backward(&e, 11, 3);
    ck_assert_int_eq(memcmp(first, e.grads, e.pt.total * sizeof(float)), 0);
    free(first);
    const ParamInfo *pn = &e.pt.info[params_find(&e.pt, "blocks.0.mixer.pnorm.weight")];
    double g = 0;
    for (size_t k = 0; k < pn->size; k++) g += fabs(e.grads[pn->offset + k]);
    ck_assert_double_gt(g, 0);
    encoder_destroy(&e);
    g_mixer = "full", g_mixer_set = NULL, g_layers = 2;
}
END_TEST

/* The Perceiver's repeated cross-attends (arXiv 2103.03206, §2, Fig. 1): R repeats of
 * [cross-attend, latent blocks], every later cross-attend reading the latent stream against the
 * input array. Every gradient against finite differences (the shared tensors collect theirs from
 * each use), FLOPs counted = analytic, and the tensors are one repeat's plus one set for the
 * cross-attends after the first, whatever R. */
START_TEST(test_perceiver_repeated_cross_attends_share_weights) {
    g_latents = 3, g_xrep = 3;
    check_model_gradients(POOL_MEAN, POS_SINUSOIDAL, 0.1f, NULL);
    const int len[2] = {7, 4};
    size_t count[4];
    int ntensors[4];
    for (int r = 1; r <= 3; r++) {
        g_xrep = r;
        ExperimentConfig cfg = tiny_config(2, 7, POOL_MEAN, POS_SINUSOIDAL, 0.0f);
        Encoder e;
        XbError err;
        ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
        ck_assert_int_eq(e.cfg.N, r * (g_layers + 1));
        encoder_init_params(&e, 5);
        fill_batch(&e, len, 0);
        flops_reset();
        encoder_forward(&e, 1, 11, 3);
        ck_assert_uint_eq(flops_counted(), encoder_flops(&e, 0));
        flops_reset();
        memset(e.grads, 0, e.pt.total * sizeof(float));
        encoder_backward(&e, 11, 3);
        ck_assert_uint_eq(flops_counted(), encoder_flops(&e, 1));
        count[r] = params_count(&e.pt), ntensors[r] = e.pt.n;
        /* the second repeat's cross-attend has its own tensors, no later block does */
        ck_assert_int_eq(params_find(&e.pt, "blocks.3.cross_attn.q.weight") >= 0, r >= 2);
        ck_assert_int_lt(params_find(&e.pt, "blocks.6.cross_attn.q.weight"), 0);
        ck_assert_int_lt(params_find(&e.pt, "blocks.4.norm1.weight"), 0);
        encoder_destroy(&e);
    }
    /* one more cross-attend block: 2 norms of the queries and the keys, q, kv, out, a norm and
     * the FFN: D·D + 2D·D + D·D + 4·D (norms) + 2·D (norm2) + D·F + F + F·D + D */
    const size_t D = 8, F = 12;
    ck_assert_uint_eq(count[2] - count[1], 4 * D * D + 6 * D + 2 * D * F + F + D);
    ck_assert_uint_eq(count[3], count[2]);
    ck_assert_int_eq(ntensors[3], ntensors[2]);
    g_latents = 0, g_xrep = 1;
}
END_TEST

/* Transformer-XL recurrence, memory before each segment under a stop-gradient: with the memory
 * frozen, finite differences see exactly what the backward computes. Segments of 4 over 8 tokens
 * with a memory of 3, and of 2 with a memory of 5 (reaching two segments back). */
START_TEST(test_recurrence_gradients_match_finite_differences) {
    g_len = 8, g_segment = 4, g_memory = 3;
    check_model_gradients(POOL_CLS, POS_SINUSOIDAL, 0.0f, NULL);
    g_segment = 2, g_memory = 5;
    check_model_gradients(POOL_MEAN, POS_LEARNED, 0.1f, NULL);
    g_len = 7, g_segment = 0, g_memory = 0;
}
END_TEST

/* Transformer-XL's cost (arXiv 1901.02860, §3.2): per layer and segment of S tokens with a memory
 * of M, K and V (and, in the authors' code, Q) projected over the M + S window, attention of the
 * S queries over M + S keys, the output projection and the FFN over the S rows; counted while the
 * encoder runs and analytically, forward and backward. The memory rows' queries are not computed.
 */
START_TEST(test_recurrence_flops_are_transformer_xl_flops) {
    const int len[3] = {16, 9, 12};
    g_len = 16, g_segment = 4, g_memory = 6;
    ExperimentConfig cfg = tiny_config(3, 16, POOL_MEAN, POS_SINUSOIDAL, 0.0f);
    Encoder e;
    XbError err;
    ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
    encoder_init_params(&e, 4);
    fill_batch(&e, len, 0);
    const uint64_t B = 3, L = 16, S = 4, W = 4 + 6, nS = L / S, D = 8, F = 12, H = 2, Dh = D / H,
                   Hh = 10, layers = 2;
    const uint64_t qkv = 2 * B * nS * W * D * 3 * D, out = 2 * B * L * D * D,
                   ffn = 2 * 2 * B * L * D * F, head = 2 * B * D * Hh + 2 * B * Hh * NCLS;
    const uint64_t pairs = B * H * nS * S * W; /* (query, key) pairs per layer */
    const uint64_t fwd = layers * (qkv + pairs * 2 * (Dh + Dh) + out + ffn) + head;
    const uint64_t bwd =
        layers * (2 * qkv + pairs * 2 * (3 * Dh + 2 * Dh) + 2 * out + 2 * ffn) + 2 * head;
    flops_reset();
    encoder_forward(&e, 1, 11, 3);
    ck_assert_uint_eq(flops_counted(), fwd);
    ck_assert_uint_eq(encoder_flops(&e, 0), fwd);
    flops_reset();
    memset(e.grads, 0, e.pt.total * sizeof(float));
    encoder_backward(&e, 11, 3);
    ck_assert_uint_eq(flops_counted(), bwd);
    ck_assert_uint_eq(encoder_flops(&e, 1), bwd);
    encoder_destroy(&e);
    g_len = 7, g_segment = 0, g_memory = 0;
}
END_TEST

/* One segment: its memory (and compressed memory) lies before the start, all masked, and the
 * reconstruction loss has nothing to reconstruct, so the model is the plain one. */
START_TEST(test_recurrence_with_one_segment_equals_no_recurrence) {
    const int len[3] = {9, 4, 6};
    double loss[3];
    float *logits[3];
    for (int k = 0; k < 3; k++) {
        g_segment = k ? 9 : 0, g_memory = k == 1 ? 4 : k == 2 ? 9 : 0;
        g_compress = k == 2 ? 3 : 0, g_ncm = k == 2 ? 2 : 0;
        ExperimentConfig cfg = tiny_config(3, 9, POOL_CLS, POS_SINUSOIDAL, 0.0f);
        Encoder e;
        XbError err;
        ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
        encoder_init_params(&e, 4);
        fill_batch(&e, len, 0);
        loss[k] = encoder_forward(&e, 0, 1, 1);
        logits[k] = malloc(3 * NCLS * sizeof(float));
        memcpy(logits[k], e.logits, 3 * NCLS * sizeof(float));
        encoder_destroy(&e);
    }
    g_segment = 0, g_memory = 0, g_compress = 0, g_ncm = 0;
    for (int k = 1; k < 3; k++) {
        ck_assert_double_eq_tol(loss[0], loss[k], 1e-6);
        for (int i = 0; i < 3 * NCLS; i++) ck_assert_float_eq_tol(logits[0][i], logits[k][i], 1e-5);
    }
    free(logits[0]), free(logits[1]), free(logits[2]);
}
END_TEST

/* Later segments read earlier ones through the memory, never the reverse. */
START_TEST(test_recurrence_memory_reaches_back_only) {
    const int len[1] = {8};
    g_segment = 4, g_memory = 4, g_len = 8;
    ExperimentConfig cfg = tiny_config(1, 8, POOL_MEAN, POS_SINUSOIDAL, 0.0f);
    Encoder e;
    XbError err;
    ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
    encoder_init_params(&e, 4);
    fill_batch(&e, len, 0);
    encoder_forward(&e, 0, 1, 1);
    const size_t n = (size_t)8 * e.cfg.D;
    float *x0 = malloc(n * sizeof(float));
    memcpy(x0, e.xs[e.cfg.N], n * sizeof(float));
    e.tokens[6] = (e.tokens[6] + 1) % V; /* a token of the second segment */
    encoder_forward(&e, 0, 1, 1);
    for (size_t i = 0; i < 4 * (size_t)e.cfg.D; i++) ck_assert_float_eq(e.xs[e.cfg.N][i], x0[i]);
    memcpy(x0, e.xs[e.cfg.N], n * sizeof(float));
    e.tokens[1] = (e.tokens[1] + 1) % V; /* a token of the first segment */
    encoder_forward(&e, 0, 1, 1);
    int changed = 0;
    for (size_t i = 4 * (size_t)e.cfg.D; i < n; i++) changed |= e.xs[e.cfg.N][i] != x0[i];
    ck_assert(changed);
    encoder_destroy(&e);
    free(x0);
    g_segment = 0, g_memory = 0, g_len = 7;
}
END_TEST

/* Compressive Transformer: every gradient, f_c's from the attention-reconstruction loss alone
 * (the memory and its compression frozen, as the stop-gradient sees them); segments of 2 over 8
 * tokens with a memory of 2 and 2 slots of 2 (reaching back to position 2k − 6), and segments of
 * 4 over 12 with a memory of 4 and 3 slots of 2. */
START_TEST(test_compressive_gradients_match_finite_differences) {
    g_len = 8, g_segment = 2, g_memory = 2, g_compress = 2, g_ncm = 2;
    check_model_gradients(POOL_CLS, POS_SINUSOIDAL, 0.0f, NULL);
    g_len = 12, g_segment = 4, g_memory = 4, g_compress = 2, g_ncm = 3;
    check_model_gradients(POOL_MEAN, POS_LEARNED, 0.1f, NULL);
    g_len = 7, g_segment = 0, g_memory = 0, g_compress = 0, g_ncm = 0;
}
END_TEST

/* One block, segments of 2, memory 2: the last segment (positions 6, 7) sees positions 4, 5
 * through its memory and 0..3 only through the two compressed slots. */
START_TEST(test_compressed_memory_reaches_beyond_the_memory) {
    const int len[1] = {8};
    g_layers = 1, g_segment = 2, g_memory = 2, g_len = 8;
    for (int k = 0; k < 2; k++) {
        g_compress = k ? 2 : 0, g_ncm = k ? 2 : 0;
        ExperimentConfig cfg = tiny_config(1, 8, POOL_MEAN, POS_SINUSOIDAL, 0.0f);
        Encoder e;
        XbError err;
        ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
        encoder_init_params(&e, 4);
        fill_batch(&e, len, 0);
        encoder_forward(&e, 0, 1, 1);
        float last[2 * 8];
        memcpy(last, e.xs[e.cfg.N] + 6 * (size_t)e.cfg.D, sizeof last);
        e.tokens[1] = (e.tokens[1] + 1) % V;
        encoder_forward(&e, 0, 1, 1);
        int changed = 0;
        for (int i = 0; i < 2 * e.cfg.D; i++)
            changed |= e.xs[e.cfg.N][6 * (size_t)e.cfg.D + i] != last[i];
        ck_assert_int_eq(changed, k); /* without compression position 1 is out of reach */
        encoder_destroy(&e);
    }
    g_layers = 2, g_segment = 0, g_memory = 0, g_len = 7, g_compress = 0, g_ncm = 0;
}
END_TEST

/* The attention-reconstruction loss: 0 when f_c (rate 1) is the identity, positive for the
 * initial f_c, and falling as f_c follows its gradient. */
START_TEST(test_compression_loss_is_reconstruction) {
    const int len[2] = {12, 9};
    g_segment = 4, g_memory = 4, g_compress = 1, g_ncm = 2;
    ExperimentConfig cfg = tiny_config(2, 12, POOL_MEAN, POS_SINUSOIDAL, 0.0f);
    Encoder e;
    XbError err;
    ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
    encoder_init_params(&e, 3);
    fill_batch(&e, len, 0);
    encoder_forward(&e, 0, 1, 1);
    const double first = e.aux_loss;
    ck_assert_double_gt(first, 1e-4);
    const int D = e.cfg.D;
    for (int l = 0; l < e.cfg.N; l++) { /* f_c = identity */
        float *w = e.params + e.pt.info[e.la[l].cmp.p_w].offset;
        float *b = e.params + e.pt.info[e.la[l].cmp.p_b].offset;
        memset(w, 0, (size_t)D * D * sizeof(float));
        memset(b, 0, (size_t)D * sizeof(float));
        for (int d = 0; d < D; d++) w[(size_t)d * D + d] = 1.0f;
    }
    encoder_forward(&e, 0, 1, 1);
    ck_assert_double_eq_tol(e.aux_loss, 0.0, 1e-12);
    encoder_init_params(&e, 3);
    double prev = first;
    for (int it = 0; it < 20; it++) { /* gradient descent on f_c alone */
        memset(e.grads, 0, e.pt.total * sizeof(float));
        encoder_forward(&e, 1, 1, 1);
        if (it) ck_assert_double_le(e.aux_loss, prev * (1 + 1e-6));
        prev = e.aux_loss;
        encoder_backward(&e, 1, 1);
        for (int l = 0; l < e.cfg.N; l++)
            for (int k = 0; k < 2; k++) {
                const ParamInfo *p = &e.pt.info[k ? e.la[l].cmp.p_b : e.la[l].cmp.p_w];
                for (size_t i = 0; i < p->size; i++)
                    e.params[p->offset + i] -= 0.05f * e.grads[p->offset + i];
            }
    }
    ck_assert_double_lt(prev, 0.5 * first);
    encoder_destroy(&e);
    g_segment = 0, g_memory = 0, g_compress = 0, g_ncm = 0;
}
END_TEST

/* LRA's retrieval dual encoder: each example is two documents (rows 2b, 2b + 1) through the one
 * encoder, the classifier on [u, v, u·v, u − v]. Every gradient against finite differences,
 * FLOPs counted = analytic, and the towers share their weights: a document's vector is the
 * same whichever side of the pair it is on. */
START_TEST(test_dual_encoder_gradients_flops_and_shared_towers) {
    const int len[6] = {7, 4, 5, 6, 3, 7};
    for (int pool = 0; pool < 2; pool++) {
        ExperimentConfig cfg = tiny_config(3, 7, (PoolKind)pool, POS_SINUSOIDAL, 0.1f);
        Encoder e;
        XbError err;
        ck_assert_int_eq(encoder_create_pairs(&e, &cfg, V, NCLS, 1, &err), 0);
        ck_assert_int_eq(e.B, 6);
        ck_assert_int_eq(e.NB, 3);
        encoder_init_params(&e, 5);
        fill_batch(&e, len, 0);
        flops_reset();
        encoder_forward(&e, 1, 11, 3);
        ck_assert_uint_eq(flops_counted(), encoder_flops(&e, 0));
        flops_reset();
        memset(e.grads, 0, e.pt.total * sizeof(float));
        encoder_backward(&e, 11, 3);
        ck_assert_uint_eq(flops_counted(), encoder_flops(&e, 1));
        Ctx c = {.e = &e, .seed = 11, .step = 3};
        const float one = 1.0f;
        e.frozen = 1; /* the head's ReLU keeps its active set */
        for (int i = 0; i < e.pt.n; i++) {
            const ParamInfo *p = &e.pt.info[i];
            GcResult r;
            int ok = gradcheck(model_fwd, &c, e.params + p->offset, p->size, e.grads + p->offset,
                               &c.loss, 1, &one, 3e-3f, 1e-3, 1e-2, 40, &r);
            GC_ASSERT(ok, p->name, &r);
        }
        /* swap the documents of example 0: its two vectors swap (up to the rounding of BLAS
         * kernels that block rows differently) */
        encoder_forward(&e, 0, 1, 1);
        const int D = e.cfg.D;
        float u[64], v[64];
        memcpy(u, e.pooled, (size_t)D * sizeof(float));
        memcpy(v, e.pooled + D, (size_t)D * sizeof(float));
        for (int t = 0; t < e.L; t++) {
            int32_t tk = e.tokens[t];
            e.tokens[t] = e.tokens[e.L + t], e.tokens[e.L + t] = tk;
            unsigned char mk = e.mask[t];
            e.mask[t] = e.mask[e.L + t], e.mask[e.L + t] = mk;
        }
        encoder_forward(&e, 0, 1, 1);
        for (int d = 0; d < D; d++) {
            ck_assert_float_eq_tol(e.pooled[d], v[d], 1e-5f);
            ck_assert_float_eq_tol(e.pooled[D + d], u[d], 1e-5f);
        }
        ck_assert(fabsf(u[0] - v[0]) > 1e-3f); /* the two documents differ */
        encoder_destroy(&e);
    }
}
END_TEST

START_TEST(test_same_seed_gives_identical_step) {
    const int len[2] = {12, 7};
    float *g[2];
    double loss[2];
    for (int k = 0; k < 2; k++) {
        ExperimentConfig cfg = tiny_config(2, 12, POOL_CLS, POS_SINUSOIDAL, 0.3f);
        Encoder e;
        XbError err;
        ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
        encoder_init_params(&e, 9);
        fill_batch(&e, len, 0);
        loss[k] = encoder_forward(&e, 1, 4, 2);
        encoder_backward(&e, 4, 2);
        g[k] = malloc(e.pt.total * sizeof(float));
        memcpy(g[k], e.grads, e.pt.total * sizeof(float));
        if (k == 1) ck_assert_int_eq(memcmp(g[0], g[1], e.pt.total * sizeof(float)), 0);
        encoder_destroy(&e);
    }
    ck_assert(loss[0] == loss[1]);
    free(g[0]), free(g[1]);
}
END_TEST

/* Switch FFN: gradients of the whole model (router through the gate and the balance and z losses,
 * every expert) with the routing frozen, FLOPs, padding; one expert with room for every token is
 * the dense FFN. */
START_TEST(test_switch_ffn_gradients_flops_padding) {
    g_experts = 3;
    check_model_gradients(POOL_CLS, POS_SINUSOIDAL, 0.0f, NULL);
    check_model_gradients(POOL_MEAN, POS_LEARNED, 0.1f, NULL);
    check_flops(POOL_CLS);
    check_padding();
    g_experts = 0;
}
END_TEST

START_TEST(test_switch_with_one_expert_equals_the_dense_ffn) {
    const int len[3] = {9, 4, 6};
    double loss[2];
    Encoder e[2];
    XbError err;
    g_balance = 0, g_zloss = 0;
    for (int k = 0; k < 2; k++) {
        g_experts = k; /* 0: dense; 1: one expert */
        ExperimentConfig cfg = tiny_config(3, 9, POOL_CLS, POS_SINUSOIDAL, 0.0f);
        ck_assert_int_eq(encoder_create(&e[k], &cfg, V, NCLS, &err), 0);
        encoder_init_params(&e[k], 4);
        fill_batch(&e[k], len, 0);
    }
    for (int i = 0; i < e[0].pt.n; i++) { /* the dense tensors into the expert's (same layout) */
        char name[XB_PARAM_NAME];
        snprintf(name, sizeof name, "%s", e[0].pt.info[i].name);
        char *f = strstr(name, "ffn.fc");
        if (f) memmove(f + 12, f + 4, strlen(f + 4) + 1), memcpy(f, "ffn.experts.", 12);
        const int j = params_find(&e[1].pt, name);
        ck_assert_msg(j >= 0, "no %s", name);
        memcpy(e[1].params + e[1].pt.info[j].offset, e[0].params + e[0].pt.info[i].offset,
               e[0].pt.info[i].size * sizeof(float));
    }
    for (int k = 0; k < 2; k++) loss[k] = encoder_forward(&e[k], 1, 1, 1);
    ck_assert_double_eq_tol(loss[0], loss[1], 1e-6);
    for (int i = 0; i < 3 * NCLS; i++) ck_assert_float_eq_tol(e[0].logits[i], e[1].logits[i], 1e-5);
    for (int k = 0; k < 2; k++) encoder_destroy(&e[k]);
    g_experts = 0, g_balance = 0.01, g_zloss = 1e-3;
}
END_TEST

/* A capacity too small for the tokens drops the latest ones: their FFN output is exactly 0. */
START_TEST(test_switch_drops_tokens_beyond_capacity) {
    Moe m;
    const int N = 12, D = 4, F = 5, E = 2;
    moe_init(&m, N, D, F, E);
    Arena ma, ms, acts, scratch;
    arena_init_measure(&ma);
    arena_init_measure(&ms);
    moe_plan(&m, &ma, &ms);
    ck_assert_int_eq(arena_init(&acts, ma.peak + 64), 0);
    ck_assert_int_eq(arena_init(&scratch, ms.peak + 64), 0);
    moe_plan(&m, &acts, &ms);
    float wr[2 * 4] = {1, 0, 0, 0, -1, 0, 0, 0}; /* x[0] > 0 → expert 0 */
    float w1[2 * 5 * 4], b1[2 * 5], w2[2 * 4 * 5], b2[2 * 4], x[12 * 4], y[12 * 4];
    gc_fill_normal(w1, 40, 1, 1.0f), gc_fill_normal(b1, 10, 2, 1.0f);
    gc_fill_normal(w2, 40, 3, 1.0f), gc_fill_normal(b2, 8, 4, 1.0f);
    gc_fill_normal(x, 48, 5, 1.0f);
    for (int i = 0; i < N; i++) x[i * D] = 2.0f; /* every token prefers expert 0 */
    const MoeParams p = {wr, w1, b1, w2, b2};
    moe_forward(&m, y, x, NULL, &p, 1.0, 0.01, 0.0, &scratch); /* C = ceil(12/2·1) = 6 */
    ck_assert_int_eq(m.kept, 6);
    for (int i = 0; i < N; i++) {
        double n = 0;
        for (int d = 0; d < D; d++) n += fabs(y[i * D + d]);
        if (i < 6)
            ck_assert(n > 0);
        else
            ck_assert(n == 0);
    }
    arena_destroy(&acts);
    arena_destroy(&scratch);
}
END_TEST

/* Performer (features redrawn every `redraw` steps) and RFA (every step): evaluating the
 * parameters of step t uses the draw that training step t used, whatever was drawn in between,
 * so a best checkpoint restored after later redraws is tested with its own features. */
static void check_eval_uses_the_draw_of_its_step(const char *mixer, int redraw) {
    ExperimentConfig cfg = tiny_config(3, 9, POOL_CLS, POS_LEARNED, 0.0f);
    cfg.mixer_index = mixer_find(mixer);
    const MixerSpec *m = mixer_get(cfg.mixer_index);
    opt_defaults(&cfg.mixer_opts, m->opts, m->n_opts);
    if (redraw) cfg.mixer_opts.num[opt_index(m->opts, m->n_opts, "redraw")] = redraw;
    Encoder e;
    XbError err;
    ck_assert_int_eq(encoder_create(&e, &cfg, V, NCLS, &err), 0);
    encoder_init_params(&e, 5);
    const int len[3] = {9, 4, 6};
    fill_batch(&e, len, 0);
    const double train5 = encoder_forward(&e, 1, 1, 5); /* no dropout: only the draw differs */
    const double train9 = encoder_forward(&e, 1, 1, 9);
    ck_assert_msg(train5 != train9, "%s: steps 5 and 9 should use different draws", mixer);
    ck_assert_double_eq(encoder_forward(&e, 0, 1, 5), train5); /* after step 9's draw */
    ck_assert_double_eq(encoder_forward(&e, 0, 1, 9), train9);
    ck_assert_double_eq(encoder_forward(&e, 0, 1, 5), train5);
    encoder_destroy(&e);
}

START_TEST(test_evaluation_uses_the_feature_draw_of_the_parameters_step) {
    check_eval_uses_the_draw_of_its_step("performer", 2); /* draws (t - 1) / 2: 2 and 4 */
    check_eval_uses_the_draw_of_its_step("rfa", 0);
}
END_TEST

static Suite *model_suite(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_encoder_gradients_match_finite_differences_cls_sinusoidal);
    tcase_add_test(tc, test_encoder_gradients_match_finite_differences_mean_learned_dropout);
    tcase_add_test(tc, test_encoder_gradients_match_finite_differences_causal_with_bias);
    tcase_add_test(tc, test_counted_flops_equal_analytic_count);
    tcase_add_test(tc, test_padding_tokens_do_not_change_logits_or_gradients);
    tcase_add_test(tc, test_same_seed_gives_identical_step);
    tcase_add_test(tc, test_funnel_and_perceiver_gradients_match_finite_differences);
    tcase_add_test(tc, test_perceiver_repeated_cross_attends_share_weights);
    tcase_add_test(tc, test_luna_layers_carry_p_through_the_encoder);
    tcase_add_test(tc, test_per_position_head_gradients_match_finite_differences);
    tcase_add_test(tc, test_per_position_loss_is_the_mean_over_target_positions);
    tcase_add_test(tc, test_recurrence_gradients_match_finite_differences);
    tcase_add_test(tc, test_recurrence_flops_are_transformer_xl_flops);
    tcase_add_test(tc, test_recurrence_with_one_segment_equals_no_recurrence);
    tcase_add_test(tc, test_recurrence_memory_reaches_back_only);
    tcase_add_test(tc, test_dual_encoder_gradients_flops_and_shared_towers);
    tcase_add_test(tc, test_compressive_gradients_match_finite_differences);
    tcase_add_test(tc, test_compressed_memory_reaches_beyond_the_memory);
    tcase_add_test(tc, test_compression_loss_is_reconstruction);
    tcase_add_test(tc, test_switch_ffn_gradients_flops_padding);
    tcase_add_test(tc, test_switch_with_one_expert_equals_the_dense_ffn);
    tcase_add_test(tc, test_switch_drops_tokens_beyond_capacity);
    tcase_add_test(tc, test_evaluation_uses_the_feature_draw_of_the_parameters_step);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(model_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
