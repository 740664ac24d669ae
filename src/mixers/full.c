/* full: softmax attention (Vaswani et al., arXiv 1706.03762), the reference every efficient
 * mechanism is measured against. Packed QKV projection, fused streaming attention (no L×L
 * matrix is stored), output projection. */
#include <stdlib.h>

#include "core/xassert.h"
#include "mixers/attn_mixer.h"

static const OptSpec full_opts[] = {
    {.name = "causal", .type = OPT_BOOL, .def = 0,
     .help = "hide later keys from each query (decoder-style); LRA's encoders are bidirectional"},
    {.name = "bias", .type = OPT_BOOL, .def = 0,
     .help = "biases in the Q/K/V and output projections (LRA: none)"},
};
#define NOPTS ((int)XB_ARRAY_LEN(full_opts))

static void full_create(Mixer *m, ParamTable *pt) {
    AttnMixer *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, st, opt_bool(m->opts, full_opts, NOPTS, "causal"),
                      opt_bool(m->opts, full_opts, NOPTS, "bias"));
}

static const MixerOps full_ops = {
    .create = full_create,
    .plan = attn_mixer_plan,
    .forward = attn_mixer_forward,
    .backward = attn_mixer_backward,
    .flops = attn_mixer_flops,
    .destroy = attn_mixer_destroy,
};

const MixerSpec mixer_full = {
    .name = "full",
    .classes = "baseline",
    .arxiv = "1706.03762",
    .title = "softmax attention, fused and streamed over key tiles (O(L) memory)",
    .honours_mask = 1,
    .opts = full_opts,
    .n_opts = NOPTS,
    .ops = &full_ops,
};
