/* local: blocked local attention (Parmar et al., Image Transformer, arXiv 1802.05751, §3.2, in its
 * 1D form; the Long Range Arena's "Local Attention"). The sequence is cut into blocks of `block`
 * positions; a query attends to the keys of its own block and, with `memory` > 0, to the `memory`
 * positions before the block (the Image Transformer's memory block). LRA: blocks of 50, no memory. */
#include <math.h>
#include <stdlib.h>

#include "core/xassert.h"
#include "mixers/attn_mixer.h"

static const OptSpec local_opts[] = {
    {.name = "block", .type = OPT_INT, .def = 50, .min = 1, .max = 1048576,
     .help = "positions per block (LRA: 50)"},
    {.name = "memory", .type = OPT_INT, .def = 0, .min = 0, .max = 1048576,
     .help = "positions before its block that a query also sees (Image Transformer's memory block)"},
    {.name = "causal", .type = OPT_BOOL, .def = 0, .help = "hide later keys (decoder-style)"},
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the projections"},
};
#define NOPTS ((int)XB_ARRAY_LEN(local_opts))

/* Query tiles are the blocks themselves when they are small enough; longer blocks are cut into
 * tiles of TILE rows, with a mask for the tiles that straddle two blocks. */
enum { TILE = 128 };

typedef struct LocalState {
    AttnMixer am; /* first: the shared attention body */
    int block, memory;
} LocalState;

static int local_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h;
    const LocalState *st = s->pattern->ctx;
    const int first = i0 / st->block * st->block;               /* start of the first row's block */
    const int last = ((i0 + bq - 1) / st->block + 1) * st->block; /* end of the last row's block */
    lo[0] = XB_MAX(0, first - st->memory);
    hi[0] = XB_MIN(s->Lk, last);
    return lo[0] < hi[0];
}

/* Query i sees key j when j is in i's block or in the `memory` positions before it. */
static void local_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk, float *bias,
                       int ld) {
    (void)b, (void)h;
    const LocalState *st = s->pattern->ctx;
    for (int r = 0; r < bq; r++) {
        const int start = (i0 + r) / st->block * st->block, end = start + st->block;
        for (int c = 0; c < bk; c++) {
            const int j = j0 + c;
            bias[(size_t)r * ld + c] = j >= start - st->memory && j < end ? 0.0f : -INFINITY;
        }
    }
}

static void local_create(Mixer *m, ParamTable *pt) {
    LocalState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, opt_bool(m->opts, local_opts, NOPTS, "causal"),
                      opt_bool(m->opts, local_opts, NOPTS, "bias"));
    st->block = opt_int(m->opts, local_opts, NOPTS, "block");
    st->memory = opt_int(m->opts, local_opts, NOPTS, "memory");
    const int exact = st->block <= 256; /* tiles are blocks: no mask needed */
    st->am.pattern = (AttnPattern){.bq = exact ? st->block : TILE, .max_ranges = 1,
                                   .ranges = local_ranges, .mask = exact ? NULL : local_mask,
                                   .ctx = st};
    st->am.has_pattern = 1;
}

static const MixerOps local_ops = {
    .create = local_create,
    .plan = attn_mixer_plan,
    .forward = attn_mixer_forward,
    .backward = attn_mixer_backward,
    .flops = attn_mixer_flops,
    .destroy = attn_mixer_destroy,
};

const MixerSpec mixer_local = {
    .name = "local",
    .classes = "FP",
    .arxiv = "1802.05751",
    .title = "blocked local attention (Image Transformer 1D; LRA's Local Attention)",
    .honours_mask = 1,
    .opts = local_opts,
    .n_opts = NOPTS,
    .ops = &local_ops,
};
