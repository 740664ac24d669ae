/* The harness the mixer suites share: one mechanism instance with its buffers, and the generic
 * checks every configuration goes through. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/flops.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "gradcheck.h"
#include "mixer_harness.h"

/* "name=value,name=value" → option values of spec (numbers, true/false, or enum choices). */
void set_opts(OptValues *v, const MixerSpec *spec, const char *text) {
    opt_defaults(v, spec->opts, spec->n_opts);
    if (!text) return;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        ck_assert_ptr_nonnull(eq);
        *eq = '\0';
        const int i = opt_index(spec->opts, spec->n_opts, tok);
        ck_assert_msg(i >= 0, "%s has no option %s", spec->name, tok);
        const OptSpec *o = &spec->opts[i];
        if (o->type == OPT_BOOL)
            v->num[i] = strcmp(eq + 1, "true") == 0;
        else if (o->type == OPT_ENUM) {
            v->num[i] = -1;
            for (int c = 0; o->choices[c]; c++)
                if (!strcmp(o->choices[c], eq + 1)) v->num[i] = c;
            ck_assert(v->num[i] >= 0);
        } else if (o->type == OPT_STRING)
            snprintf(v->str[i], XB_OPT_STRLEN, "%s", eq + 1);
        else
            v->num[i] = atof(eq + 1);
        v->set[i] = 1;
    }
}

/* Scale of the random inputs (the performer test lowers it: the variance of positive random
 * features grows like exp(‖q‖·‖k‖)). */
float g_xscale = 1.0f;
int g_ctx = 0;
int g_cls = 0;

void inst_init(Inst *t, const char *name, const char *opts, int B, int L, int D, int H,
               const int *pad, uint64_t seed) {
    inst_init_at(t, name, opts, B, L, L, D, H, pad, seed);
}

void inst_init_at(Inst *t, const char *name, const char *opts, int B, int L, int max_len, int D,
                  int H, const int *pad, uint64_t seed) {
    memset(t, 0, sizeof *t);
    const int mi = mixer_find(name);
    ck_assert_msg(mi >= 0, "no mechanism %s", name);
    const MixerSpec *spec = mixer_get(mi);
    set_opts(&t->opts, spec, opts);
    if (spec->ops->check) {
        XbError err;
        xb_error_clear(&err);
        ck_assert_msg(spec->ops->check(&t->opts, D, H, max_len, &err) == 0, "%s: %s", name,
                      err.msg);
    }
    t->B = B, t->L = L, t->D = D, t->H = H;
    t->training = 1;
    params_init(&t->pt);
    mixer_create(&t->m, spec, &t->opts, D, H, max_len, 0, &t->pt);
    if (spec->skips_context) t->m.ctx = g_ctx;
    t->m.cls = g_cls;
    t->params = calloc(t->pt.total + 1, sizeof(float));
    t->grads = calloc(t->pt.total + 1, sizeof(float));
    Rng r;
    rng_seed(&r, seed, RNG_STREAM_INIT);
    params_initialise(&t->pt, t->params, &r);
    /* biases start at zero; make them matter for the gradient check */
    for (int i = 0; i < t->pt.n; i++)
        if (t->pt.info[i].init == INIT_ZEROS)
            gc_fill_normal(t->params + t->pt.info[i].offset, t->pt.info[i].size, seed + 100 + i,
                           0.3f);
    Arena ma, ms;
    arena_init_measure(&ma);
    arena_init_measure(&ms);
    spec->ops->plan(&t->m, &ma, &ms, B, L);
    ck_assert_int_eq(arena_init(&t->acts, ma.peak + 64), 0);
    ck_assert_int_eq(arena_init(&t->scratch, ms.peak + 64), 0);
    arena_init_measure(&ms);
    spec->ops->plan(&t->m, &t->acts, &ms, B, L);
    const size_t n = (size_t)B * L * D;
    t->x = malloc(n * sizeof(float));
    t->y = calloc(n, sizeof(float));
    t->dy = malloc(n * sizeof(float));
    t->dx = calloc(n, sizeof(float));
    if (t->m.carry > 0) {
        t->carry = calloc((size_t)B * t->m.carry * D, sizeof(float));
        t->dcarry = calloc((size_t)B * t->m.carry * D, sizeof(float));
    }
    gc_fill_normal(t->x, n, seed + 1, g_xscale);
    gc_fill_normal(t->dy, n, seed + 2, 1.0f);
    if (pad) {
        t->mask = malloc((size_t)B * L);
        for (int b = 0; b < B; b++)
            for (int l = 0; l < L; l++) t->mask[(size_t)b * L + l] = l < L - pad[b];
    }
}

void inst_free(Inst *t) {
    mixer_destroy(&t->m);
    params_free(&t->pt);
    free(t->params), free(t->grads), free(t->x), free(t->y), free(t->dy), free(t->dx),
        free(t->mask), free(t->carry), free(t->dcarry);
    arena_destroy(&t->acts);
    arena_destroy(&t->scratch);
}

MixerStep step_of(Inst *t) {
    MixerStep s = {.B = t->B,
                   .L = t->L,
                   .mask = t->mask,
                   .training = t->training,
                   .frozen = t->frozen,
                   .seed = 7,
                   .step = 3,
                   .pt = &t->pt,
                   .params = t->params,
                   .grads = t->grads,
                   .scratch = &t->scratch,
                   .carry_out = t->carry,
                   .dcarry_out = t->dcarry};
    return s;
}

void inst_forward(void *p) {
    Inst *t = p;
    MixerStep s = step_of(t);
    arena_reset(&t->scratch);
    t->m.spec->ops->forward(&t->m, &s, t->y, t->x);
}

void inst_backward(Inst *t) {
    MixerStep s = step_of(t);
    memset(t->grads, 0, t->pt.total * sizeof(float));
    memset(t->dx, 0, (size_t)t->B * t->L * t->D * sizeof(float));
    arena_reset(&t->scratch);
    t->m.spec->ops->backward(&t->m, &s, t->dx, t->dy, t->x);
}

/* The generic checks on one configuration. */
void check_mechanism(const char *name, const char *opts, int B, int L, int D, int H) {
    const int pad[3] = {0, L / 3, 1};
    Inst t;
    inst_init(&t, name, opts, B, L, D, H, B <= 3 ? pad : NULL, 31);
    const size_t n = (size_t)B * L * D;
    /* FLOPs: what the kernels did equals the analytic count */
    flops_reset();
    inst_forward(&t);
    ck_assert_uint_eq(flops_counted(), t.m.spec->ops->flops(&t.m, B, L, 0));
    flops_reset();
    inst_backward(&t);
    ck_assert_uint_eq(flops_counted(), t.m.spec->ops->flops(&t.m, B, L, 1));
    /* the same bits twice */
    float *y0 = malloc(n * sizeof(float));
    memcpy(y0, t.y, n * sizeof(float));
    inst_forward(&t);
    ck_assert_int_eq(memcmp(y0, t.y, n * sizeof(float)), 0);
    /* gradients: the input, then every parameter tensor */
    GcResult r;
    char what[160];
    snprintf(what, sizeof what, "%s(%s) dx", name, opts ? opts : "");
    t.frozen = 1; /* discrete choices stay those of the forward the backward used */
    int okx = gradcheck(inst_forward, &t, t.x, n, t.dx, t.y, n, t.dy, 1e-2f, 3e-3, 2e-2, 150, &r);
    GC_ASSERT(okx, what, &r);
    for (int i = 0; i < t.pt.n; i++) {
        const ParamInfo *p = &t.pt.info[i];
        if (p->buffer) continue; /* state without a gradient */
        snprintf(what, sizeof what, "%s(%s) %s", name, opts ? opts : "", p->name);
        /* one step, no retry: the stencil's O(h⁴) error covers curved maps (ISAB's LayerNorms),
         * and with `frozen` a ReLU keeps its active set, so no kink lies within reach */
        int ok = gradcheck(inst_forward, &t, t.params + p->offset, p->size, t.grads + p->offset,
                           t.y, n, t.dy, 1e-2f, 3e-3, 2e-2, 60, &r);
        GC_ASSERT(ok, what, &r);
    }
    /* padding positions cannot reach real ones */
    if (t.mask && t.m.spec->honours_mask) {
        inst_forward(&t);
        memcpy(y0, t.y, n * sizeof(float));
        for (int b = 0; b < B; b++)
            for (int l = 0; l < L; l++)
                if (!t.mask[(size_t)b * L + l])
                    for (int d = 0; d < D; d++) t.x[((size_t)b * L + l) * D + d] += 3.0f;
        inst_forward(&t);
        for (int b = 0; b < B; b++)
            for (int l = 0; l < L; l++)
                if (t.mask[(size_t)b * L + l])
                    for (int d = 0; d < D; d++) {
                        const size_t k = ((size_t)b * L + l) * D + d;
                        ck_assert_msg(fabsf(t.y[k] - y0[k]) <= 1e-5f * (1 + fabsf(y0[k])),
                                      "%s: padding changed position %d of row %d", name, l, b);
                    }
    }
    free(y0);
    inst_free(&t);
}

/* Largest and mean relative difference between y of `name` with `opts` and full attention's
 * (with full_opts) under the same projection weights. */
void error_vs_full(const char *name, const char *opts, const char *full_opts, int B, int L, int D,
                   int H, double *worst_out, double *mean_out) {
    const int pad[2] = {0, 3};
    Inst a, f;
    inst_init(&a, name, opts, B, L, D, H, B == 2 ? pad : NULL, 5);
    inst_init(&f, "full", full_opts, B, L, D, H, B == 2 ? pad : NULL, 5);
    for (int i = 0; i < f.pt.n; i++) { /* copy full's tensors into the mechanism by name */
        const int j = params_find(&a.pt, f.pt.info[i].name);
        ck_assert_msg(j >= 0, "%s has no tensor %s", name, f.pt.info[i].name);
        memcpy(a.params + a.pt.info[j].offset, f.params + f.pt.info[i].offset,
               f.pt.info[i].size * sizeof(float));
    }
    for (int j = 0; j < a.pt.n; j++) /* tensors initialised as copies stay copies */
        if (a.pt.info[j].init == INIT_COPY)
            memcpy(a.params + a.pt.info[j].offset,
                   a.params + a.pt.info[a.pt.info[j].copy_of].offset,
                   a.pt.info[j].size * sizeof(float));
    inst_forward(&a);
    inst_forward(&f);
    const size_t n = (size_t)B * L * D;
    double worst = 0, sum = 0;
    for (size_t k = 0; k < n; k++) {
        const double d = fabs((double)a.y[k] - f.y[k]) / (1 + fabs((double)f.y[k]));
        if (d > worst) worst = d;
        sum += d;
    }
    *worst_out = worst;
    *mean_out = sum / (double)n;
    inst_free(&a);
    inst_free(&f);
}

/* y of `name` with `opts` equals full attention's with the same projection weights. */
void check_equals_full(const char *name, const char *opts, const char *full_opts, int B, int L,
                       int D, int H, double tol) {
    double worst, mean;
    error_vs_full(name, opts, full_opts, B, L, D, H, &worst, &mean);
    ck_assert_msg(worst <= tol, "%s(%s) differs from full by %g", name, opts, worst);
}
