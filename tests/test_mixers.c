/* Every mechanism of the registry, through the same checks: backward against central finite
 * differences for the input and every parameter, counted FLOPs equal to the analytic count,
 * padding that cannot change real positions (when the mechanism honours the mask), the same bits
 * twice; and each approximate mechanism equal to `full` in its degenerate setting. */
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

/* ---- the table of configurations ---- */

typedef struct Conf {
    const char *name, *opts;
    int B, L, D, H;
} Conf;

static const Conf LISTED[] = {
    {"full", NULL, 2, 11, 8, 2},
    {"full", "causal=true,bias=true", 2, 9, 8, 2},
    {"full", "relative=true", 2, 11, 8, 2},
    {"full", "relative=true,causal=true,bias=true", 3, 9, 6, 3},
    {"full", "relative=true", 1, 300, 8, 2}, /* tiles of 128 queries and 256 keys */
    {"full", "causal=true", 1, 600, 8, 2},   /* three key tiles */
    {"full", NULL, 1, 600, 8, 2},            /* three key tiles, five query tiles, every pair */
    {"local", "block=4", 2, 13, 8, 2},
    {"local", "block=5,memory=3,bias=true", 3, 12, 6, 3},
    {"local", "block=300,memory=2", 1, 9, 8, 2}, /* long blocks: masked tiles */
    {"local", "block=4,causal=true", 2, 10, 8, 2},
    {"local", "block=50,memory=20", 1, 600, 8, 2},
    {"local", "lra=true,block=4", 4, 13, 8, 2}, /* no padding: a masked query row is uniform,
                                                 * flat for finite differences */
    {"local", "lra=true,block=5,bias=true", 4, 20, 6, 3}, /* a whole added block */
    {"local", "lra=true,block=50", 1, 600, 8, 2},
    {"sliding", "window=4", 2, 13, 8, 2},
    {"sliding", "window=6,causal=true,bias=true", 3, 11, 6, 3},
    {"sliding", "window=300", 1, 600, 8, 2},
    {"linear", NULL, 2, 11, 8, 2},
    {"linear", "bias=true", 3, 9, 6, 3},
    {"linear", NULL, 1, 600, 8, 2}, /* three key tiles */
    {"linear", "causal=true", 2, 11, 8, 2},
    {"linear", "causal=true,bias=true", 3, 9, 6, 3},
    {"linear", "causal=true", 2, 300, 8, 2}, /* three chunks of 128 rows, the last of 44 */
    {"linear", "causal=true", 1, 600, 8, 2}, /* five chunks, the last of 88 */
    {"performer", "features=16", 2, 11, 8, 2},
    {"performer", "features=7,orthogonal=false,bias=true", 3, 9, 6, 3},
    {"performer", "features=12,kernel=relu", 2, 10, 8, 2},
    {"performer", "features=9,kernel=relu,orthogonal=false,bias=true", 3, 9, 6, 3},
    {"performer", "kernel=relu_lra", 2, 11, 8, 2},
    {"performer", "kernel=relu_lra,bias=true", 3, 9, 6, 3},
    {"performer", "features=16,redraw=0", 1, 600, 8, 2},
    {"performer", "features=12,kernel=relu", 1, 600, 8, 2},
    /* relu_lra at Dh = 4 (D = 8) has queries with one small active feature, whose denominator the
     * step h = 1e-2 pushes near zero; its L = 600, D = 8 gradients are checked against the naive
     * reference in test_mixers_kernels */
    {"performer", "kernel=relu_lra", 1, 600, 16, 2},
    {"bigbird", "block=2,window=1,global=1,random=1", 2, 14, 8, 2},
    {"bigbird", "block=3,random=2,bias=true", 3, 22, 6, 3},
    {"bigbird", "block=2,window=3,global=0,random=2", 2, 17, 8, 2},
    {"bigbird", "block=64", 1, 600, 8, 2},
    {"longformer", "window=4,global=2", 2, 13, 8, 2},
    {"longformer", "window=6,dilation=2,global=1,bias=true", 3, 15, 6, 3},
    {"longformer", "window=2,global=0", 2, 9, 8, 2},
    {"longformer", "window=256,dilation=2,global=2", 1, 600, 8, 2},
    {"linformer", "k=4", 2, 11, 8, 2},
    {"linformer", "k=5,sharing=kv,bias=true", 3, 9, 6, 3},
    {"linformer", "k=3,sharing=none", 2, 10, 8, 2},
    {"linformer", "k=3,sharing=layerwise", 2, 10, 8, 2},
    {"linformer", "k=32", 1, 600, 8, 2},
    {"rfa", "features=6", 2, 11, 8, 2},
    {"rfa", "features=5,bias=true", 3, 9, 6, 3},
    {"rfa", "features=6", 1, 600, 8, 2},
    {"rfa", "features=4,learned_sigma=false,bias=true", 2, 12, 8, 2},
    {"memory_compressed", NULL, 2, 13, 8, 2},
    {"memory_compressed", "compression=2,bias=true", 3, 12, 6, 3},
    {"memory_compressed", NULL, 1, 600, 8, 2},
    {"sparse_transformer", "stride=4,summary=2", 2, 13, 8, 2},
    {"sparse_transformer", "stride=4,summary=1,heads=merged,causal=true", 2, 13, 8, 2},
    {"sparse_transformer", "pattern=strided,stride=3", 2, 13, 8, 2},
    {"sparse_transformer", "pattern=strided,stride=4,heads=merged,bias=true", 3, 11, 6, 3},
    {"sparse_transformer", "stride=128,summary=32,heads=merged", 1, 600, 8, 2},
    {"sparse_transformer", "lra=true,stride=4,summary=2", 2, 13, 8, 2},
    {"sparse_transformer", "lra=true,bias=true", 1, 600, 8, 2},
    {"axial", NULL, 2, 13, 8, 2},
    {"axial", "width=3,axis=columns,bias=true", 3, 11, 6, 3},
    {"axial", "width=5,axis=rows", 2, 12, 8, 2},
    {"axial", "width=4,axis=columns", 2, 16, 8, 2},
    {"axial", "width=24,axis=columns", 1, 600, 8, 2},
    {"axial", "width=300,axis=rows", 1, 600, 8, 2},
    {"sinkhorn", "block=3", 2, 13, 8, 2},
    {"sinkhorn", "block=4,sort_net=mlp,iterations=3,bias=true", 3, 12, 6, 3},
    {"sinkhorn", "block=3,sortcut=2,temperature=0.5", 2, 14, 8, 2},
    {"sinkhorn", "block=5,iterations=1,noise=false", 2, 11, 8, 2},
    {"sinkhorn", "block=300", 1, 600, 8, 2}, /* own + sorted block: three key tiles */
    {"luna", "length=4", 2, 13, 8, 2},
    {"luna", "length=3,bias=false", 3, 11, 6, 3},
    {"luna", "length=20", 2, 9, 8, 2}, /* dynamic: rows use as many packed rows as tokens */
    {"luna", "length=5,kv=tied", 2, 11, 8, 2},
    {"luna", "length=20,dynamic=false,kv=tied", 3, 9, 6, 3},
    {"luna", "length=16", 1, 600, 8, 2}, /* three key tiles */
    {"fnet", NULL, 2, 13, 8, 2},
    {"fnet", NULL, 3, 10, 6, 3},
    {"fnet", NULL, 1, 600, 8, 2},
    /* (the generic check runs a training backward, with its EMA step, between the two forwards
     * it compares; decay=1 keeps the centroids where one small move would flip a top-w pick) */
    {"routing", NULL, 2, 16, 8, 2}, /* one routing head, one local head */
    {"routing", "local_heads=0", 2, 16, 8, 2},
    {"routing", "clusters=3,window=5,bias=true,decay=1", 3, 13, 6, 2}, /* Dh = 2 would make the
                                                                        * LayerNorm a sign */
    {"routing", "clusters=3,local_heads=2,decay=1", 3, 14, 12, 4},     /* a padded last block */
    {"routing", "clusters=2,window=9", 2, 11, 8, 2}, /* overlapping clusters, unfilled key slots */
    {"routing", "clusters=5,window=2,decay=1,local_heads=0", 2, 22, 8, 2}, /* unpicked queries */
    {"routing", "decay=1", 1, 600, 8, 2},
    {"isab", "inducing=4", 2, 13, 8, 2},
    {"isab", "inducing=3,bias=true", 3, 11, 6, 3},
    {"isab", "inducing=20", 2, 9, 8, 2},
    {"isab", "inducing=16", 1, 600, 8, 2},
    {"synthesizer", "k=4", 2, 11, 8, 2},
    {"synthesizer", "k=3,dot=true,bias=true", 3, 9, 6, 3},
    {"synthesizer", "k=20", 1, 300, 8, 2}, /* factorized across kernel tiles */
    {"synthesizer", "variant=dense", 2, 11, 8, 2},
    {"synthesizer", "variant=dense,dot=true,bias=true", 2, 9, 8, 2},
    {"synthesizer", "variant=random,dot=true", 2, 10, 8, 2},
    {"synthesizer", "variant=random,trainable=false,bias=true", 3, 9, 6, 3},
    {"synthesizer", "variant=dense,dot=true", 3, 9, 6, 3}, /* three heads, three W1 slices */
    {"synthesizer", "k=3,heads=shared,dot=true", 2, 11, 8, 2},
    {"synthesizer", "variant=dense,heads=shared,bias=true", 2, 9, 8, 2},
    {"synthesizer", "variant=random,heads=shared", 2, 10, 8, 2},
    {"synthesizer", "k=8", 1, 600, 8, 2}, /* three key tiles */
    {"nystrom", "landmarks=4,conv=3", 2, 13, 8, 2},
    {"nystrom", "landmarks=3,conv=0,bias=true", 3, 11, 6, 3},
    {"nystrom", "landmarks=5,pinv_iters=3,conv=5", 2, 12, 8, 2},
    {"nystrom", "landmarks=32,conv=33", 1, 600, 8, 2},
    {"reformer", "chunk=4", 2, 13, 8, 2},
    {"reformer", "chunk=3,buckets=4,hashes=3,bias=true", 3, 12, 6, 3},
    {"reformer", "chunk=5,self_mask=false,hashes=2", 2, 11, 8, 2},
    {"reformer", "chunk=2,buckets=6,hashes=2", 2, 9, 8, 2},
    {"reformer", "chunk=300,buckets=2", 1, 600, 8, 2}, /* windows of three key tiles */
    {"reformer", "chunk=3,buckets=2,hashes=3,same_bucket=false", 2, 13, 8, 2},
    {"reformer", "chunk=4,buckets=4,hashes=2,dedup=false", 2, 13, 8, 2},
    {"reformer", "lra=true,buckets=4", 2, 13, 8, 2},
    {"reformer", "lra=true,buckets=2,hashes=2,bias=true", 3, 12, 6, 3},
    /* cosformer's ReLU features, frozen, go negative under the step h = 1e-2 where a query's
     * active features are all small, and its denominator crosses zero: at Dh = 4 with 600
     * queries some query is that close (the gradients at L = 600, D = 8, H = 2 are checked
     * against the double reference's derivative in test_mixers_next_survey) */
    {"cosformer", NULL, 2, 11, 8, 2},
    {"cosformer", "padded_m=false,bias=false", 3, 9, 6, 3},
    {"cosformer", "padded_m=false", 2, 12, 8, 2},
    {"cosformer", "padded_m=false", 1, 600, 8, 1},
    {"cosformer", NULL, 1, 600, 8, 1},
    {"long_short", "window=2,landmarks=3", 2, 13, 8, 2},
    {"long_short", "window=3,landmarks=2,bias=false", 3, 11, 6, 3}, /* odd w: e = 1 */
    {"long_short", "window=1,landmarks=0", 2, 9, 8, 2},
    {"long_short", "window=4,landmarks=2,dual_ln=false", 2, 12, 8, 2},
    {"long_short", "window=20,landmarks=4", 2, 17, 8, 2},   /* one segment in 40-row tiles */
    {"long_short", "window=8,landmarks=32", 1, 600, 8, 2},  /* the default: 32-row tiles */
    {"long_short", "window=300,landmarks=4", 1, 600, 8, 2}, /* 128-row tiles, masked */
    {"long_short", "window=32,landmarks=2", 2, 70, 8, 2},   /* tiles of one segment, no mask */
    {"clustered", "clusters=3", 2, 13, 8, 2},
    {"clustered", "clusters=4,bits=8,iterations=3,bias=false", 3, 11, 6, 3},
    {"clustered", "clusters=20,hash_bias=false", 2, 9, 8, 2}, /* a cluster per query */
    {"clustered", "clusters=3,improved=true,topk=4", 2, 13, 8, 2},
    {"clustered", "clusters=2,improved=true,topk=20,bits=5", 3, 11, 6, 3}, /* masked top-k slots */
    {"clustered", "clusters=100", 1, 600, 8, 2},
    {"clustered", "clusters=10,improved=true", 1, 600, 8, 2},
    {"s4d", NULL, 2, 11, 8, 2},
    {"s4d", "d_state=4", 2, 13, 8, 2},
    {"s4d", "d_state=8,init=inv,bidirectional=false", 3, 9, 6, 3},
    {"s4d", "d_state=6,dt_min=0.01,dt_max=0.05", 2, 12, 8, 2},
    {"s4d", "d_state=4", 1, 600, 8, 2}, /* three key tiles; at N = 64 the modes (up to 31·pi)
                                         * turn faster in log dt than h = 1e-2 resolves: those
                                         * gradients are checked in test_mixers_next_lc */
    {"hyena", NULL, 2, 11, 8, 2},
    {"hyena", "bidirectional=false,emb_dim=5,w=2,short_order=4", 3, 9, 6, 3},
    {"hyena", "filter_order=16,modulate=false", 2, 10, 8, 2},
    {"hyena", "filter_order=16", 1, 600, 8, 2}, /* three key tiles; a narrower FFN keeps it fast */
    {"mamba", NULL, 2, 11, 8, 2},
    {"mamba", "bidirectional=false", 2, 9, 8, 2},
    {"mamba", "d_state=4,expand=1,chunk=3,bias=true,conv_bias=false,divide_out=false", 3, 10, 6, 3},
    {"mamba", "d_conv=2,dt_rank=3,chunk=4", 2, 13, 8, 2},
    {"mamba", "dt_min=0.01,dt_max=0.5,dt_init_floor=0.02,dt_scale=2", 2, 10, 8, 2},
    {"mamba", NULL, 1, 600, 8, 2}, /* ten chunks of saved states */
    {"rwkv", NULL, 2, 11, 8, 2},
    {"rwkv", "bidirectional=false", 2, 11, 8, 2},
    {"rwkv", "shift=token", 3, 9, 6, 3},
    {"rwkv", "bidirectional=false,shift=token", 2, 10, 8, 2},
    {"rwkv", NULL, 1, 600, 8, 2},
    {"retnet", NULL, 2, 11, 8, 2},
    {"retnet", "causal=true,chunk=4", 2, 11, 8, 2},
    {"retnet", "form=parallel,norm=rms,bias=false,value_factor=1", 3, 9, 12, 3},
    {"retnet", "causal=true,form=parallel", 2, 11, 8, 2},
    {"retnet", "chunk=5", 2, 13, 8, 2},
    {"retnet", "value_factor=1", 3, 12, 12, 3},
    /* L = 600 (ten chunks; five by five parallel tiles; three key tiles). The per-head group norm
     * sees A_n = M_n·q_n only through its direction, and over 600 positions a few with a small
     * |A_n| curve W_q's objective beyond the stencil at h = 1e-2 in some draws; the default's
     * gradients at L = 600 are checked against the double-precision reference at a finer step in
     * test_mixers_next_rnn */
    {"retnet", "value_factor=3,bias=false", 1, 600, 8, 2},
    {"retnet", "causal=true,bias=false,form=parallel", 1, 600, 8, 2},
    {"retnet", "causal=true,bias=false,chunk=256", 1, 600, 8, 2},
};

/* The configurations run: those listed, then each registered mechanism that has none at its
 * defaults (2 rows of 11, width 8, 2 heads), so that a new mechanism is checked from the moment
 * it is registered; one whose defaults cannot take that shape fails its check until it is
 * listed. XB_ONLY_MIXER=NAME (while developing one mechanism) keeps only NAME's: the others are
 * not run, rather than counted as passed, and a name with none fails. */
static Conf CONFS[XB_ARRAY_LEN(LISTED) + 64];
static int n_confs;

static void collect_confs(void) {
    n_confs = 0;
    for (size_t k = 0; k < XB_ARRAY_LEN(LISTED); k++) CONFS[n_confs++] = LISTED[k];
    for (int i = 0; i < mixer_count(); i++) {
        int found = 0;
        for (size_t k = 0; k < XB_ARRAY_LEN(LISTED); k++)
            found |= !strcmp(LISTED[k].name, mixer_get(i)->name);
        XB_ASSERT(n_confs < (int)XB_ARRAY_LEN(CONFS));
        if (!found) CONFS[n_confs++] = (Conf){mixer_get(i)->name, NULL, 2, 11, 8, 2};
    }
    const char *only = getenv("XB_ONLY_MIXER");
    if (!only || !*only) return;
    const int all = n_confs;
    n_confs = 0;
    for (int k = 0; k < all; k++)
        if (!strcmp(CONFS[k].name, only)) CONFS[n_confs++] = CONFS[k];
    fprintf(stderr, "XB_ONLY_MIXER=%s: %d of the %d configurations\n", only, n_confs, all);
}

START_TEST(test_only_mixer_names_a_tested_mechanism) {
    ck_assert_msg(n_confs > 0, "XB_ONLY_MIXER=%s: no configuration of that name",
                  getenv("XB_ONLY_MIXER"));
}
END_TEST

START_TEST(test_mechanism_gradients_flops_padding_and_determinism) {
    const Conf *c = &CONFS[_i];
    check_mechanism(c->name, c->opts, c->B, c->L, c->D, c->H);
}
END_TEST

/* Padding is invisible: in evaluation, the outputs at the real positions of a padded row equal
 * the outputs of the row cut to its real length (the mechanism built for the same max_len, so its
 * parameters are the same tensors). A mechanism whose outputs depend on the padded length by
 * nature says how in its spec (padding_dependence) and is checked by its own suite instead. */
START_TEST(test_mechanism_on_a_padded_row_equals_it_cut_to_its_real_length) {
    const Conf *c = &CONFS[_i];
    const MixerSpec *spec = mixer_get(mixer_find(c->name));
    if (!spec->honours_mask) return;
    if (spec->padding_dependence) { /* checked by the mechanism's own suite */
        if (!spec->padding_dependence_option) return;
        OptValues o;
        set_opts(&o, spec, c->opts);
        if (opt_bool(&o, spec->opts, spec->n_opts, spec->padding_dependence_option)) return;
    }
    const int L = c->L, p = c->L / 3, Lr = L - p, D = c->D, pad[2] = {0, p};
    Inst a, t;
    inst_init(&a, c->name, c->opts, 2, L, D, c->H, pad, 41);
    inst_init_at(&t, c->name, c->opts, 1, Lr, L, D, c->H, NULL, 41);
    ck_assert_int_eq(memcmp(a.params, t.params, a.pt.total * sizeof(float)), 0);
    memcpy(t.x, a.x + (size_t)L * D, (size_t)Lr * D * sizeof(float));
    a.training = t.training = 0;
    inst_forward(&a);
    inst_forward(&t);
    double worst = 0;
    for (size_t k = 0; k < (size_t)Lr * D; k++) {
        const double ref = t.y[k], got = a.y[(size_t)L * D + k];
        worst = fmax(worst, fabs(got - ref) / (1 + fabs(ref)));
    }
    ck_assert_msg(worst <= 1e-5, "%s(%s): %d padding positions of %d change real outputs by %g",
                  c->name, c->opts ? c->opts : "", p, L, worst);
    inst_free(&a);
    inst_free(&t);
}
END_TEST

/* A causal form (causal=true, bidirectional=false) is causal: changing the inputs at position p
 * and after leaves every output before p as it was (to rounding), and moves the output at p. The
 * checks above cannot see a scan run the wrong way or a convolution shifted by one, since a
 * mechanism's backward agrees with its own forward either way. */
static int is_causal_form(const char *opts) {
    return opts && (strstr(opts, "causal=true") || strstr(opts, "bidirectional=false"));
}

START_TEST(test_causal_forms_do_not_see_later_positions) {
    const Conf *c = &CONFS[_i];
    if (!is_causal_form(c->opts)) return;
    Inst t;
    inst_init(&t, c->name, c->opts, c->B, c->L, c->D, c->H, NULL, 43);
    t.training = 0;
    const int L = c->L, D = c->D;
    const size_t n = (size_t)c->B * L * D;
    float *x0 = malloc(n * sizeof(float)), *y0 = malloc(n * sizeof(float));
    float *noise = malloc(n * sizeof(float));
    XB_ASSERT(x0 && y0 && noise);
    memcpy(x0, t.x, n * sizeof(float));
    gc_fill_normal(noise, n, 44, 1.0f);
    inst_forward(&t);
    memcpy(y0, t.y, n * sizeof(float));
    const int ps[3] = {1, L / 2, L - 1};
    for (int k = 0; k < 3; k++) {
        const int p = ps[k];
        for (int b = 0; b < c->B; b++)
            for (int l = 0; l < L; l++)
                for (int d = 0; d < D; d++) {
                    const size_t i = ((size_t)b * L + l) * D + d;
                    t.x[i] = x0[i] + (l >= p ? noise[i] : 0.0f);
                }
        inst_forward(&t);
        double before = 0, at = 0;
        for (int b = 0; b < c->B; b++)
            for (int l = 0; l <= p; l++)
                for (int d = 0; d < D; d++) {
                    const size_t i = ((size_t)b * L + l) * D + d;
                    const double e = fabs((double)t.y[i] - y0[i]) / (1 + fabs((double)y0[i]));
                    if (l < p)
                        before = fmax(before, e);
                    else
                        at = fmax(at, e);
                }
        ck_assert_msg(before <= 1e-6,
                      "%s(%s): changing positions %d.. of %d moves earlier outputs by %g", c->name,
                      c->opts, p, L, before);
        ck_assert_msg(at >= 1e-4, "%s(%s): changing position %d of %d moves its output by %g only",
                      c->name, c->opts, p, L, at);
    }
    free(x0), free(y0), free(noise);
    inst_free(&t);
}
END_TEST

static Suite *mixers_suite(void) {
    collect_confs();
    Suite *s = suite_create("mixers");
    TCase *tc = tcase_create("all");
    tcase_add_loop_test(tc, test_mechanism_gradients_flops_padding_and_determinism, 0, n_confs);
    tcase_add_loop_test(tc, test_mechanism_on_a_padded_row_equals_it_cut_to_its_real_length, 0,
                        n_confs);
    tcase_add_loop_test(tc, test_causal_forms_do_not_see_later_positions, 0, n_confs);
    tcase_add_test(tc, test_only_mixer_names_a_tested_mechanism);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(mixers_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
