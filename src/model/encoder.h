/* The encoder: embeddings → pre-LayerNorm blocks (token mixing + FFN, residuals, dropout) → final
 * LayerNorm → pooling → MLP classifier head, with hand-written forward and backward. Sizes are
 * fixed at creation; parameters, gradients and activations are planned up front.
 *
 * With model.pooling: none there is no pooling and no CLS token: the same MLP head runs on every
 * position of the final LayerNorm's output, and the loss is the mean cross-entropy over the
 * positions that carry a target (labels is then (B, L), XB_NO_TARGET elsewhere). The blocks must
 * keep the input's length (no Funnel stages, no Perceiver latents; the config refuses them).
 *
 * A block mixes its tokens in one of three ways: SELF, the configured mechanism over the block's
 * own sequence; POOL, the Funnel Transformer's first block of a stage (arXiv 2006.03236, §2.2): the
 * queries are the input mean-pooled by 2 (the CLS position never pooled) and attend over the
 * unpooled input, so the stream shortens; CROSS, the Perceiver's cross-attend (arXiv 2103.03206,
 * §2.1): a learned latent array attends (one head) over the embedded input, and the blocks after it
 * run the mechanism over the latents. With model.cross_attends = R the Perceiver's blocks are R
 * repeats of [cross-attend, model.layers latent blocks], each later cross-attend reading the latent
 * stream against the input array again (§2, Fig. 1); the latent blocks of every repeat are the
 * first repeat's (shared tensors), and the cross-attends after the first share one set.
 *
 * Segment recurrence (Transformer-XL, arXiv 1901.02860, §3.2): with model.segment = S the sequence
 * is cut into segments and a SELF block's mechanism runs on each segment with, before it, the M
 * states that precede the segment at that block's input (its memory), under a stop-gradient. The
 * blocks run layer by layer over all segments at once: the memory of segment k at block l is block
 * l's input over segment k − 1, which the previous block has already computed for every segment,
 * so this is the paper's recurrence exactly, with the segments batched. With model.compress = c the
 * windows also hold the Compressive Transformer's compressed memory (model/compress.h). */
#ifndef XB_ENCODER_H
#define XB_ENCODER_H

#include <stdint.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/error.h"
#include "mixers/mixer.h"
#include "model/compress.h"
#include "model/moe.h"
#include "core/params.h"

typedef struct LayerParams {
    int ln1_w, ln1_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
    int lnkv_w, lnkv_b; /* POOL and CROSS: LayerNorm of the keys' sequence */
    int latents;        /* CROSS: the latent array (Lq, D) */
    int router;         /* Switch FFN: the router (E, D); fc1/fc2 are then (E, F, D), (E, D, F) */
} LayerParams;

typedef struct LayerActs {
    BlockKind kind;
    int Lq, Lk;                          /* the block's sequence; POOL/CROSS: the attended one */
    unsigned char *qmask;                /* (B, Lq) the block's mask, or NULL (all real) */
    float *qin;                          /* (B, Lq, D) POOL: the pooled input; CROSS: the latents */
    float *ln1, *ln1_mean, *ln1_rstd;    /* (B, Lq, D), (B, Lq), (B, Lq) */
    float *lnkv, *lnkv_mean, *lnkv_rstd; /* (B, Lk, D) ... POOL and CROSS */
    float *ext, *yext;                   /* recurrence: (B·nS, N + M + S, D) the windows
                                          * [compressed; memory; segment] the mechanism sees, and
                                          * its output */
    unsigned char *extmask;              /* (B·nS, N + M + S) */
    float *carry, *dcarry;               /* SELF, a mechanism with Mixer.carry rows: its carry_out
                                          * (B', carry, D), B' the rows of its step (B·nS with
                                          * recurrence), read by the next SELF block's mechanism as
                                          * carry_in; and the gradient arriving at it */
    float *r;                            /* (B, Lq, D) residual after the mixer */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *h;     /* (B, Lq, F) FFN pre-activation */
    float *g;     /* (B, Lq, F) GELU output after dropout */
    uint64_t *keep[3]; /* the masks of the block's three dropouts (kernels/dropout.h's bits): after
                        * the mixer, in the FFN, after the FFN; NULL when cfg.dropout is 0 */
    Moe moe;      /* Switch FFN: its routing and saved activations */
    Compress cmp; /* recurrence with compression: f_c and its saved state */
} LayerActs;

typedef struct XAttn XAttn;

/* The encoder's settings, resolved once from the experiment config by encoder_config (defaults
 * filled in, sizes derived): what the model's parts read, so that none of them reads the config. */
typedef struct EncoderConfig {
    int pairs, NB;                  /* pairs: each example is two documents through one shared
                                     * encoder (LRA's retrieval dual encoder); NB examples */
    int B, L, V, C, D, H, F, N, Hh; /* batch rows, input length, vocab (+CLS), classes, width,
                                     * heads, FFN, blocks (layers, plus the Perceiver's
                                     * cross-attend), head hidden */
    int funnel, latents;            /* model.funnel stages (0: none), model.latents (0: none) */
    int xrep;           /* Perceiver: cross-attends (model.cross_attends; 1 otherwise) */
    int seg, mem, nseg; /* Transformer-XL recurrence: segment, memory, segments (0: none) */
    int crate, ncm;     /* Compressive Transformer: rate c and slots N (0: none) */
    FfnKind ffn;        /* dense, or Switch mixture of experts */
    int experts;
    double capacity[2], balance, zloss; /* Switch: capacity factor in evaluation, in training */
    PoolKind pooling;
    PosKind positions;
    float dropout;
    int cls_id; /* token id of CLS (V - 1) or -1 for mean pooling */
    const MixerSpec *mixer_spec;
    const OptValues *mixer_opts; /* the config's validated options (the config outlives the
                                  * encoder) */
    ModelShape shape;            /* what lays out the blocks (config/layout.h) */
} EncoderConfig;

/* Resolves cfg into c for a task of `vocab` ids and n_classes; with pairs, every example is two
 * documents (the dual encoder of encoder_create_pairs). */
void encoder_config(EncoderConfig *c, const ExperimentConfig *cfg, int vocab, int n_classes,
                    int pairs);

typedef struct Encoder {
    EncoderConfig cfg; /* the settings, fixed at creation */
    /* The batch's shape and conventions, as in cfg, for the caller that fills tokens, mask and
     * labels and reads logits, probs and losses (below). */
    int B, NB, L, C;
    PoolKind pooling;
    int cls_id;
    int frozen; /* tests: forward keeps every discrete choice of the last forward (the
                 * recurrence's memory rows and compressed slots, Switch routing, ReLU active
                 * sets, the mixers' buckets and clusters: MixerStep.frozen), so finite
                 * differences see the map the backward differentiates */

    ParamTable pt;
    float *params, *grads; /* pt.total floats each, owned */
    Mixer *mixers;         /* N (used by SELF blocks) */
    XAttn *xattn;          /* N (used by POOL and CROSS blocks) */
    int p_wte, p_wpe, p_lnf_w, p_lnf_b, p_h1_w, p_h1_b, p_h2_w, p_h2_b;
    LayerParams *lp; /* N */
    float *sinus;    /* (L, D) sinusoidal positions, or NULL */

    /* inputs, filled by the caller before forward */
    int32_t *tokens;     /* (B, L) */
    unsigned char *mask; /* (B, L) */
    int32_t *labels;     /* (NB), or (B, L) per-position targets (negative: none) when pooling is
                          * none */

    /* activations */
    float **xs;      /* N + 1: xs[l] (B, length, D) is block l's input, xs[N] the output */
    double aux_loss; /* auxiliary losses of the last forward (Routing's commitment, ...) */
    LayerActs *la;   /* N */
    uint64_t *keep_embed; /* the embedding dropout's mask, NULL when cfg.dropout is 0 */
    int keep_valid;       /* the masks are those of the last forward (a training one): the
                           * backward reads them instead of hashing again */
    const unsigned char *final_mask; /* the last block's mask (NULL: all real) */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *pooled;         /* (B, D); NULL when pooling is none */
    float *feat;           /* pairs: (NB, 4D) [u, v, u·v, u − v] */
    float *h1, *a1;        /* (R, Hh): R = NB rows, or B·L when pooling is none */
    unsigned char *h1act;  /* (R, Hh) the head ReLU's active set */
    float *logits, *probs; /* (R, C) */
    float *losses;         /* (R); 0 on a row without a target */
    int n_targets;         /* rows of the last forward with a target (NB unless pooling is none) */
    /* data-parallel training (set by the caller; 0 in one process): */
    uint64_t row0;  /* the batch row of the whole (global) batch that row 0 here is: dropout masks
                     * and per-row noise are drawn for the global row */
    double ce_norm; /* > 0: backward's divisor of the summed cross-entropy instead of n_targets */

    Arena acts, scratch;
} Encoder;

/* Builds the model for cfg with a task vocabulary of `vocab` ids and n_classes; plans and
 * allocates every buffer (call after omp_set_num_threads). Returns 0, or -1 with err set when
 * the memory cannot be had. */
int encoder_create(Encoder *e, const ExperimentConfig *cfg, int vocab, int n_classes, XbError *err);
/* The same; with pairs, every example is two documents (rows 2b, 2b + 1 of tokens/mask, so B =
 * 2·batch_size rows) encoded by the one encoder, and the classifier reads LRA's [u, v, u·v, u − v]
 * of their pooled vectors (the retrieval task's dual encoder, arXiv 2011.04006 §3.2). */
int encoder_create_pairs(Encoder *e, const ExperimentConfig *cfg, int vocab, int n_classes,
                         int pairs, XbError *err);
void encoder_destroy(Encoder *e);
/* Bytes that encoder_create and AdamW would allocate for cfg (parameters, gradients, optimizer
 * moments, activations, scratch), found by planning without allocating: for memory budgets. */
size_t encoder_planned_bytes(const ExperimentConfig *cfg, int vocab, int n_classes, int pairs);
/* Initialises the parameters from the INIT stream of seed. */
void encoder_init_params(Encoder *e, uint64_t seed);
/* Runs the model on e->tokens/mask/labels; returns the mean cross-entropy over the rows with a
 * target (plus auxiliary losses). Dropout (training) is drawn from (seed, step). In evaluation
 * step is the training step that produced the parameters (0: none), so mechanisms with redrawn
 * random features evaluate with the draw those parameters were trained with. */
double encoder_forward(Encoder *e, int training, uint64_t seed, int64_t step);
/* Accumulates the gradient of the mean loss into e->grads (zero them first); same seed/step as
 * the forward. */
void encoder_backward(Encoder *e, uint64_t seed, int64_t step);
/* Matrix-product FLOPs of one forward (backward = 0) or backward. */
uint64_t encoder_flops(const Encoder *e, int backward);
/* Bytes of the planned buffers. */
size_t encoder_param_bytes(const Encoder *e);

#endif
