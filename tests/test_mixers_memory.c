/* The memory and low-rank mechanisms: luna, isab, synthesizer, nystrom. */
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
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "mixer_harness.h"
#include "mixers/attn_mixer.h"

/* Luna carries its packed sequence from layer to layer: two layers in a chain (the second reading
 * the first's output and its P'), with every gradient — including the first layer's P norm, which
 * only the second layer sees — against finite differences. */
typedef struct LunaChain {
    Mixer m[2];
    ParamTable pt;
    OptValues opts;
    float *params, *grads, *x, *h, *y, *dy, *dh, *dx;
    unsigned char *mask;
    Arena acts, scratch;
    int B, L, D;
} LunaChain;

static MixerStep chain_step(LunaChain *c) {
    MixerStep s = {.B = c->B,
                   .L = c->L,
                   .mask = c->mask,
                   .training = 1,
                   .seed = 7,
                   .step = 3,
                   .pt = &c->pt,
                   .params = c->params,
                   .grads = c->grads,
                   .scratch = &c->scratch};
    return s;
}

static void chain_forward(void *p) {
    LunaChain *c = p;
    MixerStep s = chain_step(c);
    arena_reset(&c->scratch);
    c->m[0].spec->ops->forward(&c->m[0], &s, c->h, c->x);
    arena_reset(&c->scratch);
    c->m[1].spec->ops->forward(&c->m[1], &s, c->y, c->h);
}

START_TEST(test_luna_two_layers_carry_p_and_its_gradient) {
    LunaChain c;
    memset(&c, 0, sizeof c);
    c.B = 2, c.L = 9, c.D = 8;
    const int H = 2;
    const MixerSpec *spec = mixer_get(mixer_find("luna"));
    set_opts(&c.opts, spec, "length=3,bias=true");
    params_init(&c.pt);
    for (int l = 0; l < 2; l++) mixer_create(&c.m[l], spec, &c.opts, c.D, H, c.L, l, &c.pt);
    c.m[1].prev = &c.m[0];
    c.params = calloc(c.pt.total, sizeof(float));
    c.grads = calloc(c.pt.total, sizeof(float));
    Rng r;
    rng_seed(&r, 3, RNG_STREAM_INIT);
    params_initialise(&c.pt, c.params, &r);
    for (int i = 0; i < c.pt.n; i++) /* norms and biases away from 1 and 0 */
        if (c.pt.info[i].init == INIT_ZEROS || c.pt.info[i].init == INIT_ONES)
            gc_fill_normal(c.params + c.pt.info[i].offset, c.pt.info[i].size, 50 + i, 0.5f);
    Arena ma, ms;
    arena_init_measure(&ma);
    arena_init_measure(&ms);
    for (int l = 0; l < 2; l++) spec->ops->plan(&c.m[l], &ma, &ms, c.B, c.L);
    ck_assert_int_eq(arena_init(&c.acts, ma.peak + 64), 0);
    ck_assert_int_eq(arena_init(&c.scratch, ms.peak + 64), 0);
    arena_init_measure(&ms);
    for (int l = 0; l < 2; l++) spec->ops->plan(&c.m[l], &c.acts, &ms, c.B, c.L);
    const size_t n = (size_t)c.B * c.L * c.D;
    c.x = malloc(n * sizeof(float)), c.h = malloc(n * sizeof(float)),
    c.y = malloc(n * sizeof(float));
    c.dy = malloc(n * sizeof(float)), c.dh = calloc(n, sizeof(float)),
    c.dx = calloc(n, sizeof(float));
    gc_fill_normal(c.x, n, 61, 1.0f);
    gc_fill_normal(c.dy, n, 62, 1.0f);
    c.mask = malloc((size_t)c.B * c.L);
    for (int i = 0; i < c.B * c.L; i++) c.mask[i] = i < c.B * c.L - 2;
    chain_forward(&c);
    MixerStep s = chain_step(&c);
    arena_reset(&c.scratch);
    spec->ops->backward(&c.m[1], &s, c.dh, c.dy, c.h);
    arena_reset(&c.scratch);
    spec->ops->backward(&c.m[0], &s, c.dx, c.dh, c.x);
    GcResult res;
    GC_ASSERT(
        gradcheck(chain_forward, &c, c.x, n, c.dx, c.y, n, c.dy, 1e-2f, 3e-3, 2e-2, 150, &res),
        "luna chain dx", &res);
    for (int i = 0; i < c.pt.n; i++) {
        const ParamInfo *p = &c.pt.info[i];
        GC_ASSERT(gradcheck(chain_forward, &c, c.params + p->offset, p->size, c.grads + p->offset,
                            c.y, n, c.dy, 1e-2f, 3e-3, 2e-2, 60, &res),
                  p->name, &res);
    }
    /* the first layer's P norm reaches the output only through the second layer */
    const int ln = params_find(&c.pt, "blocks.0.mixer.pnorm.weight");
    double g = 0;
    for (size_t k = 0; k < c.pt.info[ln].size; k++) g += fabs(c.grads[c.pt.info[ln].offset + k]);
    ck_assert(g > 0);
    for (int l = 0; l < 2; l++) mixer_destroy(&c.m[l]);
    params_free(&c.pt);
    free(c.params), free(c.grads), free(c.x), free(c.h), free(c.y), free(c.dy), free(c.dh);
    free(c.dx), free(c.mask);
    arena_destroy(&c.acts);
    arena_destroy(&c.scratch);
}
END_TEST

/* The Set Transformer's ISAB is permutation-equivariant (Lee et al., Property 1): shuffling the
 * input rows shuffles the output rows the same way. */
START_TEST(test_isab_is_permutation_equivariant) {
    const int L = 12, D = 8;
    Inst t;
    inst_init(&t, "isab", "inducing=5,bias=true", 1, L, D, 2, NULL, 29);
    inst_forward(&t);
    float y0[12 * 8], x0[12 * 8];
    memcpy(y0, t.y, sizeof y0);
    memcpy(x0, t.x, sizeof x0);
    int perm[12];
    for (int i = 0; i < L; i++) perm[i] = (5 * i + 3) % L;
    for (int i = 0; i < L; i++) memcpy(t.x + i * D, x0 + perm[i] * D, D * sizeof(float));
    inst_forward(&t);
    for (int i = 0; i < L; i++)
        for (int d = 0; d < D; d++)
            ck_assert_float_eq_tol(t.y[i * D + d], y0[perm[i] * D + d], 1e-5f);
    inst_free(&t);
}
END_TEST

/* Synthesizer mixed with dot-product attention and its synthetic logits zeroed is full attention
 * under the same projections (full's packed [q; k; v] rows copied into qk and value). */
static void check_synth_zero_is_full(const char *opts, const char *zero) {
    const int B = 2, L = 11, D = 8, H = 2, pad[2] = {0, 3};
    Inst a, f;
    inst_init(&a, "synthesizer", opts, B, L, D, H, pad, 5);
    inst_init(&f, "full", NULL, B, L, D, H, pad, 5);
#define T(inst, nm)                                                                                \
    ((inst).params + (inst).pt.info[params_find(&(inst).pt, "blocks.0.mixer." nm)].offset)
    memcpy(T(a, "qk.weight"), T(f, "qkv.weight"), (size_t)2 * D * D * sizeof(float));
    memcpy(T(a, "value.weight"), T(f, "qkv.weight") + 2 * D * D, (size_t)D * D * sizeof(float));
    memcpy(T(a, "out.weight"), T(f, "out.weight"), (size_t)D * D * sizeof(float));
    const int z = params_find(&a.pt, zero);
    ck_assert_int_ge(z, 0);
    memset(a.params + a.pt.info[z].offset, 0, a.pt.info[z].size * sizeof(float));
#undef T
    inst_forward(&a);
    inst_forward(&f);
    for (size_t k = 0; k < (size_t)B * L * D; k++)
        ck_assert_msg(fabsf(a.y[k] - f.y[k]) <= 1e-5f * (1 + fabsf(f.y[k])),
                      "synthesizer(%s): %g vs %g", opts, a.y[k], f.y[k]);
    inst_free(&a);
    inst_free(&f);
}

START_TEST(test_synthesizer_with_zero_synthetic_logits_and_dot_equals_full) {
    check_synth_zero_is_full("k=4,dot=true", "blocks.0.mixer.r1");
    check_synth_zero_is_full("variant=random,dot=true", "blocks.0.mixer.random");
}
END_TEST

/* Nyströmformer with a landmark per token is exact when the pseudo-inverse has converged:
 * F = A = B = softmax(QKᵀ/√d), and A·A⁺·A·V = A·V. Fewer landmarks approximate it, the error
 * falling as they grow. */
START_TEST(test_nystrom_with_every_token_a_landmark_equals_full) {
    check_equals_full("nystrom", "landmarks=13,conv=0,pinv_iters=40", NULL, 1, 13, 8, 2, 1e-3);
    check_equals_full("nystrom", "landmarks=300,conv=0,pinv_iters=40", NULL, 1, 300, 8, 2, 2e-3);
}
END_TEST

START_TEST(test_nystrom_error_against_softmax_falls_as_landmarks_grow) {
    const int M[4] = {2, 8, 32, 64};
    double mean[4], worst;
    char opts[64];
    for (int i = 0; i < 4; i++) {
        snprintf(opts, sizeof opts, "landmarks=%d,conv=0,pinv_iters=30", M[i]);
        error_vs_full("nystrom", opts, NULL, 1, 64, 8, 2, &worst, &mean[i]);
    }
    for (int i = 1; i < 4; i++)
        ck_assert_msg(mean[i] < mean[i - 1], "error with %d landmarks (%g) is not below %d's (%g)",
                      M[i], mean[i], M[i - 1], mean[i - 1]);
    ck_assert_msg(mean[3] < 1e-2 && mean[3] < 0.1 * mean[0],
                  "64 landmarks of 64 tokens: %g (2: %g)", mean[3], mean[0]);
}
END_TEST

static Suite *mixers_memory_suite(void) {
    Suite *s = suite_create("mixers_memory");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_luna_two_layers_carry_p_and_its_gradient);
    tcase_add_test(tc, test_isab_is_permutation_equivariant);
    tcase_add_test(tc, test_synthesizer_with_zero_synthetic_logits_and_dot_equals_full);
    tcase_add_test(tc, test_nystrom_with_every_token_a_landmark_equals_full);
    tcase_add_test(tc, test_nystrom_error_against_softmax_falls_as_landmarks_grow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(mixers_memory_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
