/* local: blocked local attention (Parmar et al., Image Transformer, arXiv 1802.05751, §3.2, in its
 * 1D form; the Long Range Arena's "Local Attention"). The sequence is cut into blocks of `block`
 * positions; a query attends to the keys of its own block and, with `memory` > 0, to the `memory`
 * positions before the block (the Image Transformer's memory block). LRA: blocks of 50, no memory.
 */
#include <stdlib.h>

#include "core/xassert.h"
#include "mixers/attn_mixer.h"

static const OptSpec local_opts[] = {
    {.name = "block",
     .type = OPT_INT,
     .def = 50,
     .min = 1,
     .max = 1048576,
     .help = "positions per block (LRA: 50)"},
    {.name = "memory",
     .type = OPT_INT,
     .def = 0,
     .min = 0,
     .max = 1048576,
     .help =
         "positions before its block that a query also sees (Image Transformer's memory block)"},
    {.name = "causal", .type = OPT_BOOL, .def = 0, .help = "hide later keys (decoder-style)"},
    {.name = "bias", .type = OPT_BOOL, .def = 0, .help = "biases in the projections"},
};
#define NOPTS ((int)XB_ARRAY_LEN(local_opts))

typedef struct LocalState {
    AttnMixer am; /* first: the shared attention body */
    BlockPattern blocks;
} LocalState;

static void local_create(Mixer *m, ParamTable *pt) {
    LocalState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, opt_bool(m->opts, local_opts, NOPTS, "causal"),
                      opt_bool(m->opts, local_opts, NOPTS, "bias"));
    st->blocks.block = opt_int(m->opts, local_opts, NOPTS, "block");
    st->blocks.memory = opt_int(m->opts, local_opts, NOPTS, "memory");
    st->am.pattern = attn_block_pattern(&st->blocks);
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
