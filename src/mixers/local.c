/* local: blocked local attention (Parmar et al., Image Transformer, arXiv 1802.05751, §3.2, in its
 * 1D form; the Long Range Arena's "Local Attention"). The sequence is cut into blocks of `block`
 * positions; a query attends to the keys of its own block and, with `memory` > 0, to the `memory`
 * positions before the block (the Image Transformer's memory block). LRA: blocks of 50, no memory.
 *
 * lra: what LRA's code computes (lra_benchmarks/models/local/local_attention.py, LocalAttention),
 * which is what its Table 1 reports. The sequence of L positions is padded to Lp = L + extra with
 * extra = block − L mod block (a whole block when block divides L), the new rows being zero inputs
 * whose padding-mask bit is true (a boolean padded with −1e9 is true); then q, k, v are reshaped
 * (bs, block, Lp/block, ...) and attention runs along the axis of length `block`, so group j holds
 * the positions j, j + n, j + 2n, ... (n = Lp/block): positions congruent mod n, not contiguous
 * blocks. The padding mask, reshaped the other way (bs·n, block), gives group j the mask bits of
 * the contiguous positions j·block .. j·block + block − 1: member r of group j is visible to member
 * q when both of those bits are set, with a bias of −1e10 (not −inf) otherwise, so a query whose
 * bit is clear attends uniformly over its whole group. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/xassert.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"

static const OptSpec local_opts[] = {
    MOPT_INT("block", 50, 1, 1048576, "positions per block (LRA: 50)"),
    MOPT_INT(
        "memory", 0, 0, 1048576,
        "positions before its block that a query also sees (Image Transformer's memory block)"),
    MOPT_BOOL("causal", 0, "hide later keys (decoder-style)"),
    MOPT_BOOL("bias", 0, "biases in the projections"),
    MOPT_BOOL("lra", 0,
              "LRA's local_attention.py as its Table 1 ran it: the reshape groups positions "
              "congruent mod (padded length / block), masked by the bits of contiguous blocks "
              "(not with memory or causal)"),
};
#define NOPTS MOPT_COUNT(local_opts)

/* LRA's masked bias: a finite −1e10, as its attention_bias. */
#define LRA_MASKED (-1e10f)

typedef struct LocalState {
    AttnMixer am; /* first: the shared attention body */
    BlockPattern blocks;
    int lra;
    /* lra: the padded length and the groups; saved by forward */
    int L, Lp, n;              /* planned length, padded length, groups */
    int *src;                  /* (Lp) grouped row g → its position (>= L: an added zero row) */
    AttnPattern groups;        /* blocks of `block` over the grouped rows, LRA's mask */
    const unsigned char *mask; /* the step's token mask (B, L), or NULL */
    float *gqkv, *gatt, *glse; /* (B, Lp, 3D), (B, Lp, D), (B, H, Lp): grouped */
} LocalState;

static int local_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H, (void)max_len;
    if (opt_bool(opts, local_opts, NOPTS, "lra") && (opt_int(opts, local_opts, NOPTS, "memory") ||
                                                     opt_bool(opts, local_opts, NOPTS, "causal"))) {
        return mixer_opt_error(
            err, "lra",
            "LRA's local attention has no memory block and is not causal (valid: lra: false, "
            "or memory: 0 and causal: false)");
    }
    return 0;
}

/* LRA's mask bit of position p of row b: the token mask, true for the added rows. */
static inline int lra_bit(const LocalState *st, int b, int p) {
    return p >= st->L || !st->mask || st->mask[(size_t)b * st->L + p];
}

/* Grouped rows [i0, i0 + bq) see their own group (one range; tiles are groups when block <= 256).
 */
static int group_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h;
    const LocalState *st = s->pattern->ctx;
    const int w = st->blocks.block;
    lo[0] = i0 / w * w;
    hi[0] = XB_MIN(s->Lk, ((i0 + bq - 1) / w + 1) * w);
    return 1;
}

/* Member r of group j sees member c when the contiguous bits j·w + r and j·w + c are both set
 * (−1e10 otherwise); other groups are hidden (−inf). */
static void group_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk,
                       float *bias, int ld) {
    (void)h;
    const LocalState *st = s->pattern->ctx;
    const int w = st->blocks.block;
    for (int r = 0; r < bq; r++) {
        const int gi = (i0 + r) / w, qi = lra_bit(st, b, gi * w + (i0 + r) % w);
        for (int c = 0; c < bk; c++) {
            const int gj = (j0 + c) / w;
            bias[(size_t)r * ld + c] =
                gj != gi ? -INFINITY
                         : (qi && lra_bit(st, b, gi * w + (j0 + c) % w) ? 0.0f : LRA_MASKED);
        }
    }
}

static void local_create(Mixer *m, ParamTable *pt) {
    LocalState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, opt_bool(m->opts, local_opts, NOPTS, "causal"),
                      opt_bool(m->opts, local_opts, NOPTS, "bias"));
    st->blocks.block = opt_int(m->opts, local_opts, NOPTS, "block");
    st->blocks.memory = opt_int(m->opts, local_opts, NOPTS, "memory");
    st->lra = opt_bool(m->opts, local_opts, NOPTS, "lra");
    st->am.pattern = attn_block_pattern(&st->blocks);
    st->am.has_pattern = 1;
    st->groups = (AttnPattern){.bq = XB_MIN(st->blocks.block, 128),
                               .max_ranges = 1,
                               .ranges = group_ranges,
                               .mask = group_mask,
                               .ctx = st};
}

/* The grouped attention over (B, Lp) rows of the packed projections. */
static AttnShape group_shape(const Mixer *m, int B) {
    const LocalState *st = m->state;
    const int D = m->D;
    AttnShape s = attn_shape(B, m->H, st->Lp, st->Lp, D / m->H, 3 * D, 3 * D, 3 * D, D);
    s.pattern = &st->groups;
    return s;
}

static void local_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    LocalState *st = m->state;
    if (!st->lra) {
        attn_mixer_plan(m, acts, scratch, B, L);
        return;
    }
    const int w = st->blocks.block, D = m->D;
    st->L = L, st->Lp = L + (w - L % w), st->n = st->Lp / w;
    free(st->src);
    st->src = malloc((size_t)st->Lp * sizeof *st->src);
    XB_ASSERT(st->src);
    for (int g = 0; g < st->Lp; g++) /* group j, member r ← position r·n + j */
        st->src[g] = (g % w) * st->n + g / w;
    const size_t BL = (size_t)B * L, BP = (size_t)B * st->Lp;
    st->am.qkv = arena_floats(acts, BL * 3 * D);
    st->am.att = arena_floats(acts, BL * D);
    st->gqkv = arena_floats(acts, BP * 3 * D);
    st->gatt = arena_floats(acts, BP * D);
    st->glse = arena_floats(acts, BP * m->H);
    /* backward: d(att), d(grouped att), d(grouped qkv), d(qkv), then the kernel's tiles */
    AttnShape s = group_shape(m, B);
    arena_floats(scratch, BL * D);
    arena_floats(scratch, BP * D);
    arena_floats(scratch, BP * 3 * D);
    arena_floats(scratch, BL * 3 * D);
    arena_alloc(scratch, attn_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
}

/* grouped (B, Lp, C) ← rows (B, L, C) by st->src; an added row is `fill` (C floats, NULL: 0). */
static void to_groups(const LocalState *st, float *grouped, const float *rows, const float *fill,
                      int B, int C) {
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * st->Lp; bg++) {
        const int b = bg / st->Lp, p = st->src[bg % st->Lp];
        float *out = grouped + (size_t)bg * C;
        if (p < st->L)
            memcpy(out, rows + ((size_t)b * st->L + p) * C, (size_t)C * sizeof(float));
        else if (fill)
            memcpy(out, fill, (size_t)C * sizeof(float));
        else
            memset(out, 0, (size_t)C * sizeof(float));
    }
}

/* rows (B, L, C) ← the grouped rows of real positions (overwrites). */
static void from_groups(const LocalState *st, float *rows, const float *grouped, int B, int C) {
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * st->Lp; bg++) {
        const int b = bg / st->Lp, p = st->src[bg % st->Lp];
        if (p < st->L)
            memcpy(rows + ((size_t)b * st->L + p) * C, grouped + (size_t)bg * C,
                   (size_t)C * sizeof(float));
    }
}

static void local_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    LocalState *st = m->state;
    if (!st->lra) {
        attn_mixer_forward(m, s, y, x);
        return;
    }
    XB_ASSERT(s->L == st->L);
    const int D = m->D, BL = s->B * s->L;
    AttnMixer *am = &st->am;
    linear_forward(am->qkv, x, mixer_param(s, am->p_wqkv), mixer_param(s, am->p_bqkv), BL, D,
                   3 * D);
    /* an added row's input is zero: its q, k, v are the projection's bias */
    to_groups(st, st->gqkv, am->qkv, mixer_param(s, am->p_bqkv), s->B, 3 * D);
    st->mask = s->mask;
    AttnShape sh = group_shape(m, s->B);
    attn_forward(st->gatt, st->glse, st->gqkv, st->gqkv + D, st->gqkv + 2 * D, NULL, &sh,
                 s->scratch);
    from_groups(st, am->att, st->gatt, s->B, D);
    linear_forward(y, am->att, mixer_param(s, am->p_wo), mixer_param(s, am->p_bo), BL, D, D);
}

static void local_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                           const float *x) {
    LocalState *st = m->state;
    if (!st->lra) {
        attn_mixer_backward(m, s, dx, dy, x);
        return;
    }
    const int D = m->D, B = s->B, BL = B * s->L, BP = B * st->Lp;
    AttnMixer *am = &st->am;
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dgatt = arena_floats(s->scratch, (size_t)BP * D);
    float *dgqkv = arena_floats(s->scratch, (size_t)BP * 3 * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    linear_backward(datt, mixer_grad(s, am->p_wo), mixer_grad(s, am->p_bo), dy, am->att,
                    mixer_param(s, am->p_wo), BL, D, D);
    to_groups(st, dgatt, datt, NULL, B, D); /* the added rows' outputs are dropped */
    st->mask = s->mask;
    AttnShape sh = group_shape(m, B);
    attn_backward(dgqkv, dgqkv + D, dgqkv + 2 * D, dgatt, st->gqkv, st->gqkv + D, st->gqkv + 2 * D,
                  st->gatt, st->glse, NULL, &sh, s->scratch);
    from_groups(st, dqkv, dgqkv, B, 3 * D);
    linear_backward(dx, mixer_grad(s, am->p_wqkv), mixer_grad(s, am->p_bqkv), dqkv, x,
                    mixer_param(s, am->p_wqkv), BL, D, 3 * D);
    float *gb = mixer_grad(s, am->p_bqkv); /* the added rows' q, k, v are the bias */
    if (gb)
        for (int bg = 0; bg < BP; bg++)
            if (st->src[bg % st->Lp] >= st->L)
                for (int c = 0; c < 3 * D; c++) gb[c] += dgqkv[(size_t)bg * 3 * D + c];
    arena_reset_to(s->scratch, mark);
}

static uint64_t local_flops(const Mixer *m, int B, int L, int backward) {
    const LocalState *st = m->state;
    if (!st->lra) return attn_mixer_flops(m, B, L, backward);
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BL * D * D;
    AttnShape sh = group_shape(m, B);
    return (backward ? 2 * proj : proj) + attn_flops(&sh, backward);
}

static void local_destroy(Mixer *m) {
    LocalState *st = m->state;
    free(st->src);
    free(st);
}

const MixerSpec mixer_local = {
    .name = "local",
    .classes = "FP",
    .arxiv = "1802.05751",
    .title = "blocked local attention (Image Transformer 1D; LRA's Local Attention)",
    .honours_mask = 1,
    .padding_dependence = "the groups (positions congruent mod the padded length / block) and "
                          "their mask bits come from the padded length, as in LRA's code",
    .padding_dependence_option = "lra",
    MIXER_OPTS(local_opts),
    .ops = &(const MixerOps){MIXER_OPS(local), .check = local_check, .destroy = local_destroy},
};
