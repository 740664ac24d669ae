/* The blocks of a model and the sequence lengths they run at, from the model's shape: one
 * function that both the config's validation (every length a mechanism will see) and the encoder
 * (its blocks) use, so the two cannot disagree. */
#ifndef XB_LAYOUT_H
#define XB_LAYOUT_H

/* How a block mixes its tokens (model/encoder.h says more): SELF, the configured mechanism over
 * the block's own sequence; POOL, the Funnel's first block of a stage (pooled queries attend over
 * the unpooled input); CROSS, the Perceiver's cross-attend (latents attend over the input). */
typedef enum { BLOCK_SELF, BLOCK_POOL, BLOCK_CROSS } BlockKind;

/* What of the model config fixes the blocks and their lengths. */
typedef struct ModelShape {
    int layers, max_len;
    int cls;                         /* pooling cls: position 0 is never pooled */
    int funnel;                      /* Funnel stages (0 or 1: none) */
    int latents, cross_attends;      /* Perceiver (latents 0: none) */
    int segment, memory;             /* Transformer-XL (segment 0: none; memory 0: segment) */
    int compress, compressed_memory; /* Compressive Transformer (compress 0: none) */
} ModelShape;

typedef struct BlockLayout {
    BlockKind kind;
    int Lq;   /* the block's sequence (its output's length) */
    int Lk;   /* POOL and CROSS: the length of the sequence attended over; SELF: 0 */
    int Lmix; /* SELF: the length the mechanism runs at (the recurrence's window, or Lq) */
} BlockLayout;

/* The number of blocks: layers, plus a cross-attend per repeat of the Perceiver's. */
int layout_blocks(const ModelShape *s);
/* The recurrence's window [compressed slots; memory; segment], 0 without recurrence. */
int layout_window(const ModelShape *s);
/* Fills b[0 .. layout_blocks(s)) in order. */
void layout_blocks_of(const ModelShape *s, BlockLayout *b);

#endif
