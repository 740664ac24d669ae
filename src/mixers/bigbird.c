/* bigbird: BigBird's block-sparse attention (Zaheer et al., arXiv 2007.14062, §2 and App. D, the
 * ITC layout): the sequence in blocks of `block` tokens; each query block attends to a window of
 * `window` blocks around it, to the `global` blocks at each end of the sequence, and to `random`
 * blocks drawn once per layer and head (from the seed, no gradient) among the others; the global
 * blocks attend to everything. LRA: blocks of 64, 3 random blocks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xassert.h"
#include "mixers/attn_mixer.h"

static const OptSpec bigbird_opts[] = {
    MOPT_INT("block", 64, 1, 65536, "tokens per block (LRA: 64)"),
    MOPT_INT("window", 3, 1, 1025, "blocks in each query block's window, odd (paper: 3)"),
    MOPT_INT("global", 1, 0, 1024,
             "global blocks at each end of the sequence (ITC: the first and the last)"),
    MOPT_INT("random", 3, 0, 1024, "random key blocks per query block (LRA: 3)"),
    MOPT_BOOL("bias", 0, "biases in the projections"),
};
#define NOPTS MOPT_COUNT(bigbird_opts)

typedef struct BigBirdState {
    AttnMixer am; /* first: the shared attention body */
    int block, window, global, random, layer;
    int nb, L;           /* blocks of the planned length, and the length */
    int *rand;           /* (H, nb, random) key blocks, −1 when fewer were available */
    uint64_t drawn_seed; /* the seed the table was drawn from */
    int drawn;
} BigBirdState;

static int is_global(const BigBirdState *st, int blk, int nb) {
    return blk < st->global || blk >= nb - st->global;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Random blocks of (h, query block q): uniformly among the full blocks outside its window and the
 * global blocks, without repetition (a partial Fisher-Yates over the candidates). A short last
 * block is never drawn, so the work does not depend on the seed. */
static void draw_random(BigBirdState *st, int H, uint64_t seed) {
    const int nb = st->nb, r = st->random, half = st->window / 2;
    int *cand = malloc((size_t)nb * sizeof *cand);
    XB_ASSERT(cand);
    for (int h = 0; h < H; h++) {
        Rng rng;
        rng_seed(&rng, rng_mix64(seed ^ rng_mix64(((uint64_t)st->layer << 32) | (uint64_t)h)),
                 RNG_STREAM_MIXER);
        for (int q = 0; q < nb; q++) {
            int n = 0;
            for (int k = 0; k < nb; k++)
                if (abs(k - q) > half && !is_global(st, k, nb) && (k + 1) * st->block <= st->L)
                    cand[n++] = k;
            int *out = st->rand + ((size_t)h * nb + q) * r;
            for (int i = 0; i < r; i++) {
                if (i < n) {
                    const int j = i + (int)rng_below(&rng, (uint32_t)(n - i));
                    const int t = cand[i];
                    cand[i] = cand[j], cand[j] = t;
                    out[i] = cand[i];
                } else {
                    out[i] = -1;
                }
            }
        }
    }
    free(cand);
    st->drawn_seed = seed;
    st->drawn = 1;
}

static int bigbird_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)bq;
    const BigBirdState *st = s->pattern->ctx;
    const int nb = (s->Lk + st->block - 1) / st->block, q = i0 / st->block;
    XB_ASSERT(nb == st->nb);
    if (is_global(st, q, nb)) {
        lo[0] = 0, hi[0] = s->Lk;
        return 1;
    }
    int blocks[st->window + 2 * st->global + st->random + 1], n = 0;
    const int half = st->window / 2;
    for (int k = XB_MAX(0, q - half); k <= XB_MIN(nb - 1, q + half); k++) blocks[n++] = k;
    for (int k = 0; k < st->global && k < nb; k++) blocks[n++] = k, blocks[n++] = nb - 1 - k;
    const int *rnd = st->rand + ((size_t)h * nb + q) * st->random;
    for (int i = 0; i < st->random; i++)
        if (rnd[i] >= 0) blocks[n++] = rnd[i];
    qsort(blocks, (size_t)n, sizeof *blocks, cmp_int);
    int nr = 0;
    for (int i = 0; i < n; i++) {
        const int a = blocks[i] * st->block, e = XB_MIN(s->Lk, a + st->block);
        if (nr && a <= hi[nr - 1]) { /* adjacent or repeated: extend */
            hi[nr - 1] = XB_MAX(hi[nr - 1], e);
        } else {
            lo[nr] = a, hi[nr] = e;
            nr++;
        }
    }
    return nr;
}

static void bigbird_create(Mixer *m, ParamTable *pt) {
    BigBirdState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, 0, opt_bool(m->opts, bigbird_opts, NOPTS, "bias"));
    st->block = opt_int(m->opts, bigbird_opts, NOPTS, "block");
    st->window = opt_int(m->opts, bigbird_opts, NOPTS, "window");
    st->global = opt_int(m->opts, bigbird_opts, NOPTS, "global");
    st->random = opt_int(m->opts, bigbird_opts, NOPTS, "random");
    st->layer = m->layer;
    st->am.pattern = (AttnPattern){.bq = st->block,
                                   .max_ranges = st->window + 2 * st->global + st->random + 1,
                                   .ranges = bigbird_ranges,
                                   .ctx = st};
    st->am.has_pattern = 1;
}

static int bigbird_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H, (void)max_len;
    const int w = opt_int(opts, bigbird_opts, NOPTS, "window");
    if (w % 2 == 0) {
        return mixer_opt_error(err, "window",
                               "%d is even (valid: an odd number of blocks, the query "
                               "block in the middle)",
                               w);
    }
    return 0;
}

static void bigbird_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    BigBirdState *st = m->state;
    attn_mixer_plan(m, acts, scratch, B, L);
    st->nb = (L + st->block - 1) / st->block;
    st->L = L;
    st->rand = arena_alloc(acts, (size_t)m->H * st->nb * XB_MAX(st->random, 1) * sizeof(int));
    st->drawn = 0;
}

static void bigbird_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    BigBirdState *st = m->state;
    if (!st->drawn || st->drawn_seed != s->seed) draw_random(st, m->H, s->seed);
    attn_mixer_forward(m, s, y, x);
}

static uint64_t bigbird_flops(const Mixer *m, int B, int L, int backward) {
    BigBirdState *st = m->state;
    if (!st->drawn)
        draw_random(st, m->H, 0); /* the count needs a table; every seed's has the
                                       same number of full blocks */
    return attn_mixer_flops(m, B, L, backward);
}

const MixerSpec mixer_bigbird = {
    .name = "bigbird",
    .classes = "FP+M",
    .arxiv = "2007.14062",
    .title = "BigBird ITC: window + global + random blocks",
    .honours_mask = 1,
    .padding_dependence = "the random blocks are drawn among, and the last global block is, the "
                          "blocks of the padded length (as the authors' code on padded batches)",
    MIXER_OPTS(bigbird_opts),
    .ops = &(const MixerOps){.check = bigbird_check,
                             .create = bigbird_create,
                             .plan = bigbird_plan,
                             .forward = bigbird_forward,
                             .backward = attn_mixer_backward,
                             .flops = bigbird_flops},
};
