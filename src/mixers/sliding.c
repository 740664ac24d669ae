/* sliding: sliding-window attention. Query i attends to keys j with |i − j| <= window / 2 (w/2 on
 * either side, as Longformer's local part, arXiv 2004.05150, §3.1, without global tokens); memory
 * and time O(L·w). */
#include <math.h>
#include <stdlib.h>

#include "core/xassert.h"
#include "mixers/attn_mixer.h"

static const OptSpec sliding_opts[] = {
    MOPT_INT("window", 256, 0, 2097152,
             "window width w: each query sees w/2 keys on either side and itself"),
    MOPT_BOOL("causal", 0, "only the w/2 keys before each query and itself (decoder-style)"),
    MOPT_BOOL("bias", 0, "biases in the projections"),
};
#define NOPTS MOPT_COUNT(sliding_opts)

enum { TILE = 64 };

typedef struct SlidingState {
    AttnMixer am; /* first: the shared attention body */
    int half;     /* w/2 */
} SlidingState;

static int sliding_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h;
    const SlidingState *st = s->pattern->ctx;
    lo[0] = XB_MAX(0, i0 - st->half);
    hi[0] = XB_MIN(s->Lk, i0 + bq + st->half);
    return lo[0] < hi[0];
}

static void sliding_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk,
                         float *bias, int ld) {
    (void)b, (void)h;
    const SlidingState *st = s->pattern->ctx;
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++) {
            const int d = (j0 + c) - (i0 + r);
            bias[(size_t)r * ld + c] = d >= -st->half && d <= st->half ? 0.0f : -INFINITY;
        }
}

static void sliding_create(Mixer *m, ParamTable *pt) {
    SlidingState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, opt_bool(m->opts, sliding_opts, NOPTS, "causal"),
                      opt_bool(m->opts, sliding_opts, NOPTS, "bias"));
    st->half = opt_int(m->opts, sliding_opts, NOPTS, "window") / 2;
    st->am.pattern = (AttnPattern){
        .bq = TILE, .max_ranges = 1, .ranges = sliding_ranges, .mask = sliding_mask, .ctx = st};
    st->am.has_pattern = 1;
}

const MixerSpec mixer_sliding = {
    .name = "sliding",
    .classes = "FP",
    .arxiv = "2004.05150",
    .title = "sliding-window attention, w/2 keys on either side",
    .honours_mask = 1,
    MIXER_OPTS(sliding_opts),
    .ops = &(const MixerOps){.create = sliding_create, .plan = attn_mixer_plan, ATTN_MIXER_RUN},
};
