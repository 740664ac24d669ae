#include "mixers/kernel_mixer.h"

#include <string.h>

#include "core/flops.h"
#include "kernels/linear.h"

void kernel_mixer_create(Mixer *m, ParamTable *pt, KernelMixer *km, int bias) {
    attn_mixer_create(m, pt, &km->am, 0, bias);
    m->state = km;
    km->H = m->H;
    km->Dh = m->D / m->H;
}

LinAttnShape kernel_mixer_shape(const Mixer *m, int B, int L) {
    const KernelMixer *km = m->state;
    const int D = m->D;
    LinAttnShape s = {.B = B,
                      .H = m->H,
                      .L = L,
                      .M = km->M,
                      .Dh = D / m->H,
                      .ldv = 3 * D,
                      .ldo = D,
                      .bsv = (size_t)L * 3 * D,
                      .bso = (size_t)L * D,
                      .eps = km->eps,
                      .min_den = km->min_den,
                      .guard = km->guard,
                      .low = km->low,
                      .causal = km->causal};
    return s;
}

/* The fused path: FeatureOps' row maps behind the kernel's LinAttnMap. */
typedef struct RowsCtx {
    KernelMixer *km;
    const MixerStep *s;
    const float *qkv; /* (B, L, 3D) */
    float *dqkv;      /* (B, L, 3D), backward */
} RowsCtx;

static size_t rows_x(const RowsCtx *c, int b, int h, int l0, int is_key) {
    const KernelMixer *km = c->km;
    const size_t D = (size_t)km->H * km->Dh;
    return ((size_t)b * c->s->L + l0) * 3 * D + (is_key ? D : 0) + (size_t)h * km->Dh;
}

static void rows_map(const LinAttnMap *mp, int b, int h, int l0, int n, int is_key, int pass,
                     float *phi, float *work) {
    const RowsCtx *c = mp->ctx;
    c->km->fops->map_rows(c->km, c->s, b, h, l0, n, is_key, pass, phi,
                          c->qkv + rows_x(c, b, h, l0, is_key), work);
}

static void rows_backward(const LinAttnMap *mp, int b, int h, int l0, int n, int is_key,
                          float *dphi, int ld, const float *phi, float *work) {
    const RowsCtx *c = mp->ctx;
    const size_t o = rows_x(c, b, h, l0, is_key);
    c->km->fops->backward_rows(c->km, c->s, b, h, l0, n, is_key, c->dqkv + o, dphi, ld, phi,
                               c->qkv + o, work);
}

static void rows_end(const LinAttnMap *mp, int b, int h, int is_key, float *work) {
    const RowsCtx *c = mp->ctx;
    const size_t o = rows_x(c, b, h, 0, is_key);
    c->km->fops->backward_end(c->km, c->s, b, h, is_key, c->dqkv + o, c->qkv + o, work);
}

static LinAttnMap rows_map_of(const KernelMixer *km, const RowsCtx *c) {
    return (LinAttnMap){.key_passes = km->fops->key_passes,
                        .work_floats = km->fops->rows_work ? km->fops->rows_work(km) : 0,
                        .map = rows_map,
                        .backward = rows_backward,
                        .end = km->fops->backward_end ? rows_end : NULL,
                        .ctx = c};
}

void kernel_mixer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    KernelMixer *km = m->state;
    const size_t BL = (size_t)B * L, BHLM = BL * m->H * km->M;
    km->am.qkv = arena_floats(acts, BL * 3 * m->D);
    km->am.att = arena_floats(acts, BL * m->D);
    km->phq = arena_floats(acts, BHLM);
    km->phk = arena_floats(acts, BHLM);
    km->kv = arena_floats(acts, (size_t)B * m->H * km->M * (m->D / m->H));
    km->z = arena_floats(acts, (size_t)B * m->H * km->M);
    km->den = arena_floats(acts, (size_t)B * m->H * L);
    km->low = arena_alloc(acts, (size_t)B * m->H * L);
    LinAttnShape s = kernel_mixer_shape(m, B, L);
    if (km->fops->map_rows) { /* backward: d(att), d(qkv), the fused kernel's scratch */
        const RowsCtx c = {.km = km};
        const LinAttnMap mp = rows_map_of(km, &c);
        arena_floats(scratch, BL * m->D);
        arena_floats(scratch, BL * 3 * m->D);
        arena_alloc(scratch, linattn_fused_scratch_floats(&s, &mp) * sizeof(float));
        return;
    }
    /* backward: d(att), d(qkv), d(phq), d(phk), then the kernel's scratch */
    arena_floats(scratch, BL * m->D);
    arena_floats(scratch, BL * 3 * m->D);
    arena_floats(scratch, BHLM);
    arena_floats(scratch, BHLM);
    arena_floats(scratch, linattn_scratch_floats(&s));
}

/* Zeroes the features of padding keys: they then add nothing to S and z. */
static void mask_keys(float *phi, const unsigned char *mask, int B, int H, int L, int M) {
    if (!mask) return;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int l = 0; l < L; l++)
                if (!mask[(size_t)b * L + l])
                    memset(phi + (((size_t)b * H + h) * L + l) * M, 0, (size_t)M * sizeof *phi);
}

void kernel_mixer_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    KernelMixer *km = m->state;
    const int D = m->D, BL = s->B * s->L;
    LinAttnShape sh = kernel_mixer_shape(m, s->B, s->L);
    sh.frozen = s->frozen;
    linear_forward(km->am.qkv, x, mixer_param(s, km->am.p_wqkv), mixer_param(s, km->am.p_bqkv), BL,
                   D, 3 * D);
    if (km->fops->prepare) km->fops->prepare(km, s);
    if (km->fops->map_rows) {
        const RowsCtx c = {.km = km, .s = s, .qkv = km->am.qkv};
        const LinAttnMap mp = rows_map_of(km, &c);
        linattn_fused_forward(km->am.att, km->kv, km->z, km->den, km->phq, km->phk,
                              km->am.qkv + 2 * D, s->mask, &sh, &mp, s->scratch);
        flops_add(km->fops->flops(km, s->B, s->L, 0));
        linear_forward(y, km->am.att, mixer_param(s, km->am.p_wo), mixer_param(s, km->am.p_bo), BL,
                       D, D);
        return;
    }
    km->fops->forward(km, s, km->phq, km->am.qkv, 0);
    km->fops->forward(km, s, km->phk, km->am.qkv + D, 1);
    mask_keys(km->phk, s->mask, s->B, m->H, s->L, km->M);
    linattn_forward(km->am.att, km->kv, km->z, km->den, km->phq, km->phk, km->am.qkv + 2 * D, &sh);
    linear_forward(y, km->am.att, mixer_param(s, km->am.p_wo), mixer_param(s, km->am.p_bo), BL, D,
                   D);
}

void kernel_mixer_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                           const float *x) {
    KernelMixer *km = m->state;
    const int D = m->D, BL = s->B * s->L;
    LinAttnShape sh = kernel_mixer_shape(m, s->B, s->L);
    const size_t mark = arena_mark(s->scratch), BHLM = (size_t)BL * m->H * km->M;
    float *datt = arena_floats(s->scratch, (size_t)BL * D);
    float *dqkv = arena_floats(s->scratch, (size_t)BL * 3 * D);
    if (km->fops->map_rows) {
        sh.frozen = s->frozen;
        const RowsCtx c = {.km = km, .s = s, .qkv = km->am.qkv, .dqkv = dqkv};
        const LinAttnMap mp = rows_map_of(km, &c);
        linear_backward(datt, mixer_grad(s, km->am.p_wo), mixer_grad(s, km->am.p_bo), dy,
                        km->am.att, mixer_param(s, km->am.p_wo), BL, D, D);
        linattn_fused_backward(dqkv + 2 * D, datt, km->am.att, km->phq, km->phk, km->am.qkv + 2 * D,
                               km->kv, km->z, km->den, s->mask, &sh, &mp, s->scratch);
        flops_add(km->fops->flops(km, s->B, s->L, 1));
        linear_backward(dx, mixer_grad(s, km->am.p_wqkv), mixer_grad(s, km->am.p_bqkv), dqkv, x,
                        mixer_param(s, km->am.p_wqkv), BL, D, 3 * D);
        arena_reset_to(s->scratch, mark);
        return;
    }
    float *dphq = arena_floats(s->scratch, BHLM);
    float *dphk = arena_floats(s->scratch, BHLM);
    linear_backward(datt, mixer_grad(s, km->am.p_wo), mixer_grad(s, km->am.p_bo), dy, km->am.att,
                    mixer_param(s, km->am.p_wo), BL, D, D);
    linattn_backward(dphq, dphk, dqkv + 2 * D, datt, km->am.att, km->phq, km->phk,
                     km->am.qkv + 2 * D, km->kv, km->z, km->den, &sh, s->scratch);
    mask_keys(dphk, s->mask, s->B, m->H, s->L, km->M);
    km->fops->backward(km, s, dqkv, dphq, km->phq, km->am.qkv, 0);
    km->fops->backward(km, s, dqkv + D, dphk, km->phk, km->am.qkv + D, 1);
    linear_backward(dx, mixer_grad(s, km->am.p_wqkv), mixer_grad(s, km->am.p_bqkv), dqkv, x,
                    mixer_param(s, km->am.p_wqkv), BL, D, 3 * D);
    arena_reset_to(s->scratch, mark);
}

uint64_t kernel_mixer_flops(const Mixer *m, int B, int L, int backward) {
    const KernelMixer *km = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    LinAttnShape sh = kernel_mixer_shape(m, B, L);
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BL * D * D;
    return (backward ? 2 * proj : proj) + linattn_flops(&sh, backward) +
           km->fops->flops(km, B, L, backward);
}

const float *kernel_mixer_random(const Mixer *m, int *rows, int *per_head) {
    const KernelMixer *km = m->state;
    *rows = 0, *per_head = 0;
    return km->fops->random ? km->fops->random(km, rows, per_head) : NULL;
}
