#include "config/layout.h"

#include "config/config.h"

static int memory_of(const ModelShape *s) { return s->memory > 0 ? s->memory : s->segment; }

static int repeats(const ModelShape *s) {
    return s->latents > 0 && s->cross_attends > 1 ? s->cross_attends : 1;
}

int layout_blocks(const ModelShape *s) {
    return repeats(s) * (s->layers + (s->latents > 0 ? 1 : 0));
}

int layout_window(const ModelShape *s) {
    if (s->segment <= 0) return 0;
    const int mem = memory_of(s);
    const int ncm = s->compress > 0 ? (s->compressed_memory > 0 ? s->compressed_memory : mem) : 0;
    return ncm + mem + s->segment;
}

/* The Perceiver's blocks are `repeats` repeats of [cross-attend, latent blocks]; a Funnel stage
 * after the first starts with a POOL block. */
void layout_blocks_of(const ModelShape *s, BlockLayout *b) {
    const int N = layout_blocks(s), per_repeat = N / repeats(s);
    const int per_stage = s->funnel > 1 ? N / s->funnel : N;
    int L = s->max_len;
    for (int l = 0; l < N; l++) {
        BlockKind kind = BLOCK_SELF;
        int Lk = 0;
        if (s->latents > 0 && l % per_repeat == 0) {
            kind = BLOCK_CROSS;
            Lk = s->max_len; /* every cross-attend reads the input array */
            L = s->latents;
        } else if (s->funnel > 1 && l > 0 && l % per_stage == 0) {
            kind = BLOCK_POOL;
            Lk = L;
            L = cfg_pooled_length(L, s->cls);
        }
        b[l] = (BlockLayout){.kind = kind, .Lq = L, .Lk = Lk, .Lmix = 0};
        if (kind == BLOCK_SELF) b[l].Lmix = s->segment > 0 ? layout_window(s) : L;
    }
}
