/* axial: axial attention (Ho et al., Axial Transformer, arXiv 1912.12180, §3). The sequence is
 * folded row by row into a grid of `width` columns and ceil(L/width) rows; attention runs along one
 * axis: within a row (the `width` neighbours of the same row) or within a column (the positions
 * `width` apart). The paper stacks row and column layers alternately, so that two layers give every
 * position a full receptive field in O(L·(rows + columns)); `axis: alternate` (the default) does
 * that by layer parity (even layers rows, odd layers columns). The width defaults to
 * ceil(√max_len), the square grid.
 *
 * Both axes are one code path: the packed Q/K/V rows are gathered into axis-major order (a column
 * after another, or the rows as they are), the grid's empty cells becoming masked zero rows, and
 * the fused kernel attends within blocks of the axis length; the outputs are gathered back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "core/xassert.h"
#include "kernels/gather.h"
#include "kernels/linear.h"
#include "mixers/attn_mixer.h"

static const char *const AXES[] = {"alternate", "rows", "columns", NULL};
enum { AXIS_ALTERNATE, AXIS_ROWS, AXIS_COLUMNS, N_AXES };
MOPT_CHOICES_ARE(AXES, N_AXES);

static const OptSpec axial_opts[] = {
    MOPT_INT("width", 0, 0, 1048576,
             "columns of the grid the sequence is folded into; 0 = ceil(sqrt(max_len))"),
    MOPT_ENUM(
        "axis", AXIS_ALTERNATE, AXES,
        "attend along rows or columns; alternate: rows in even layers, columns in odd (paper)"),
    MOPT_BOOL("bias", 0, "biases in the projections"),
};
#define NOPTS MOPT_COUNT(axial_opts)

typedef struct AxialState {
    AttnMixer am;         /* first: projections; am.qkv (B, L, 3D) and am.att (B, L, D) saved */
    int width, columns;   /* grid width; 1 when this layer attends along columns */
    BlockPattern blocks;  /* blocks of the axis length over the axis-major sequence */
    int G;                /* grid cells: rows · width */
    int *perm, *inv;      /* (G) axis-major cell → position (−1 for an empty cell); (L) back */
    float *sqkv, *sout;   /* (B, G, 3D), (B, G, D) saved */
    float *slse;          /* (B, H, G) saved */
    unsigned char *smask; /* (B, G) */
} AxialState;

static void axial_create(Mixer *m, ParamTable *pt) {
    AxialState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, 0, opt_bool(m->opts, axial_opts, NOPTS, "bias"));
    st->width = opt_int(m->opts, axial_opts, NOPTS, "width");
    if (st->width == 0) st->width = (int)ceil(sqrt((double)m->max_len));
    const int axis = opt_enum(m->opts, axial_opts, NOPTS, "axis");
    st->columns = axis == AXIS_COLUMNS || (axis == AXIS_ALTERNATE && m->layer % 2 == 1);
}

static int axial_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)H;
    return mixer_check_len(opts, axial_opts, NOPTS, "width", max_len,
                           "%d is wider than model.max_len = %d (valid: 0 for ceil(sqrt(max_len)), "
                           "or 1 to %d)",
                           err);
}

/* The grid of length L: axis-major order and the block length along the axis. */
static void layout(AxialState *st, int L) {
    const int W = st->width, rows = (L + W - 1) / W;
    st->G = rows * W;
    st->blocks.block = st->columns ? rows : W;
    st->blocks.memory = 0;
    if (!st->perm) return; /* a measuring plan */
    for (int s = 0; s < st->G; s++) {
        const int p = st->columns ? (s % rows) * W + s / rows : s;
        st->perm[s] = p < L ? p : -1;
        if (p < L) st->inv[p] = s;
    }
}

static AttnShape grid_shape(const Mixer *m, int B) {
    const AxialState *st = m->state;
    const int D = m->D;
    AttnShape s = attn_shape(B, m->H, st->G, st->G, D / m->H, 3 * D, 3 * D, 3 * D, D);
    s.pattern = &st->am.pattern;
    return s;
}

static void axial_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    AxialState *st = m->state;
    const int W = st->width, G = (L + W - 1) / W * W, D = m->D;
    const size_t BL = (size_t)B * L;
    st->am.qkv = arena_floats(acts, BL * 3 * D);
    st->am.att = arena_floats(acts, BL * D);
    st->perm = arena_alloc(acts, (size_t)G * sizeof(int));
    st->inv = arena_alloc(acts, (size_t)L * sizeof(int));
    st->sqkv = arena_floats(acts, (size_t)B * G * 3 * D);
    st->sout = arena_floats(acts, (size_t)B * G * D);
    st->slse = arena_floats(acts, (size_t)B * m->H * G);
    st->smask = arena_alloc(acts, (size_t)B * G);
    layout(st, L);
    st->am.pattern = attn_block_pattern(&st->blocks);
    st->am.has_pattern = 1;
    AttnShape s = grid_shape(m, B);
    arena_floats(scratch, BL * D);                /* d(att) */
    arena_floats(scratch, (size_t)B * G * D);     /* d(sout) */
    arena_floats(scratch, (size_t)B * G * 3 * D); /* d(sqkv) */
    arena_floats(scratch, BL * 3 * D);            /* d(qkv) */
    arena_alloc(scratch, attn_scratch_floats(&s, omp_get_max_threads()) * sizeof(float));
}

static void axial_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    AxialState *st = m->state;
    AttnMixer *am = &st->am;
    const int D = m->D, B = s->B, L = s->L, G = st->G, BL = B * L;
    XB_ASSERT(G == (L + st->width - 1) / st->width * st->width);
    linear_forward(am->qkv, x, mixer_param(s, am->p_wqkv), mixer_param(s, am->p_bqkv), BL, D,
                   3 * D);
    for (int b = 0; b < B; b++) {
        gather_rows(st->sqkv + (size_t)b * G * 3 * D, 3 * D, am->qkv + (size_t)b * L * 3 * D, 3 * D,
                    st->perm, G, 3 * D);
        for (int c = 0; c < G; c++)
            st->smask[(size_t)b * G + c] =
                st->perm[c] >= 0 && (!s->mask || s->mask[(size_t)b * L + st->perm[c]]);
    }
    AttnShape sh = grid_shape(m, B);
    attn_forward(st->sout, st->slse, st->sqkv, st->sqkv + D, st->sqkv + 2 * D, st->smask, &sh,
                 s->scratch);
    for (int b = 0; b < B; b++)
        gather_rows(am->att + (size_t)b * L * D, D, st->sout + (size_t)b * G * D, D, st->inv, L, D);
    linear_forward(y, am->att, mixer_param(s, am->p_wo), mixer_param(s, am->p_bo), BL, D, D);
}

static void axial_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                           const float *x) {
    AxialState *st = m->state;
    AttnMixer *am = &st->am;
    const int D = m->D, B = s->B, L = s->L, G = st->G, BL = B * L;
    const size_t mark = arena_mark(s->scratch);
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dsout = arena_floats(s->scratch, (size_t)B * G * D);
    float *dsqkv = arena_floats(s->scratch, (size_t)B * G * 3 * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    memset(datt, 0, (size_t)BL * D * sizeof(float));
    linear_backward(datt, mixer_grad(s, am->p_wo), mixer_grad(s, am->p_bo), dy, am->att,
                    mixer_param(s, am->p_wo), BL, D, D);
    for (int b = 0; b < B; b++)
        gather_rows(dsout + (size_t)b * G * D, D, datt + (size_t)b * L * D, D, st->perm, G, D);
    memset(dsqkv, 0, (size_t)B * G * 3 * D * sizeof(float));
    AttnShape sh = grid_shape(m, B);
    attn_backward(dsqkv, dsqkv + D, dsqkv + 2 * D, dsout, st->sqkv, st->sqkv + D, st->sqkv + 2 * D,
                  st->sout, st->slse, st->smask, &sh, s->scratch);
    for (int b = 0; b < B; b++) /* every position has one cell: a gather by the inverse */
        gather_rows(dqkv + (size_t)b * L * 3 * D, 3 * D, dsqkv + (size_t)b * G * 3 * D, 3 * D,
                    st->inv, L, 3 * D);
    linear_backward(dx, mixer_grad(s, am->p_wqkv), mixer_grad(s, am->p_bqkv), dqkv, x,
                    mixer_param(s, am->p_wqkv), BL, D, 3 * D);
    arena_reset_to(s->scratch, mark);
}

static uint64_t axial_flops(const Mixer *m, int B, int L, int backward) {
    const AxialState *st = m->state;
    XB_ASSERT(st->G == (L + st->width - 1) / st->width * st->width);
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BL * D * D;
    AttnShape sh = grid_shape(m, B);
    return (backward ? 2 * proj : proj) + attn_flops(&sh, backward);
}

const MixerSpec mixer_axial = {
    .name = "axial",
    .classes = "FP",
    .arxiv = "1912.12180",
    .title = "Axial Transformer: the sequence folded into a grid, attention along rows or columns",
    .honours_mask = 1,
    MIXER_OPTS(axial_opts),
    .ops = &(const MixerOps){MIXER_OPS(axial), .check = axial_check},
};
