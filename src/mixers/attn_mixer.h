/* The body every softmax-attention mechanism shares: a packed Q/K/V projection, the fused
 * (optionally block-sparse) attention kernel, an output projection. A mechanism that is "softmax
 * attention over a pattern" is this plus its pattern: full, local, sliding, ... */
#ifndef XB_ATTN_MIXER_H
#define XB_ATTN_MIXER_H

#include "kernels/attention.h"
#include "mixers/mixer.h"

typedef struct AttnMixer {
    int causal, bias;
    int p_wqkv, p_bqkv, p_wo, p_bo; /* parameter indices (-1 when absent) */
    float *qkv;                     /* (B, L, 3D) saved */
    float *att;                     /* (B, L, D) saved: attention output before projection */
    float *lse;                     /* (B, H, L) saved */
    AttnPattern pattern;            /* used when has_pattern */
    int has_pattern;
} AttnMixer;

/* Blocks of `block` positions, each query seeing its own block and the `memory` positions before
 * it (blocked local attention; Axial's rows and columns). */
typedef struct BlockPattern {
    int block, memory;
} BlockPattern;
/* The pattern for bp (which must outlive it): query tiles are the blocks when they are at most 256
 * long, otherwise 128-row tiles with a mask for tiles straddling two blocks. */
AttnPattern attn_block_pattern(const BlockPattern *bp);

/* Declares a dense layer PREFIX.WHAT.weight (out, in), Xavier-uniform as a D×D block of LRA's
 * projections, and PREFIX.WHAT.bias (zeros) when `bias` (its index in *pb, else −1). Returns the
 * weight's index. */
int mixer_add_linear(ParamTable *pt, const char *prefix, const char *what, int out, int in,
                     int bias, int *pb);

/* Declares the projections (names PREFIX.qkv.weight, PREFIX.out.weight, and .bias when `bias`),
 * initialised as LRA does (Xavier-uniform per D×D block). `st` becomes m->state's head: a
 * mechanism embeds AttnMixer as the first member of its own state. */
void attn_mixer_create(Mixer *m, ParamTable *pt, AttnMixer *st, int causal, int bias);
/* The attention shape for (B, L), with the pattern when there is one: queries are the rows after
 * m->ctx of the packed projections (Lq = L − ctx, batch stride L·3D), outputs compact
 * (B, L − ctx, D); a mechanism with a pattern has ctx 0. */
AttnShape attn_mixer_shape(const Mixer *m, int B, int L);
/* y's rows after m->ctx (all rows when ctx is 0) = att (B, L − ctx, D, compact)·W_oᵀ + b_o; with
 * ctx > 0 the product goes through scratch (released by the caller). Returns y. */
float *attn_mixer_project_out(const Mixer *m, const MixerStep *s, float *y, const float *att,
                              int p_wo, int p_bo);
/* datt (compact) += dy's rows after ctx ·W_o; W_o's and b_o's gradients +=. Scratch as above. */
void attn_mixer_project_out_backward(const Mixer *m, const MixerStep *s, float *datt,
                                     const float *dy, const float *att, int p_wo, int p_bo);
/* MixerOps entries, for m->state pointing at an AttnMixer (or a struct that starts with one). */
void attn_mixer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L);
void attn_mixer_forward(Mixer *m, const MixerStep *s, float *y, const float *x);
void attn_mixer_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy, const float *x);
uint64_t attn_mixer_flops(const Mixer *m, int B, int L, int backward);
void attn_mixer_destroy(Mixer *m);

#endif
