/* The fixed patterns and the mechanisms that shorten keys: each equal to `full` where its pattern
 * covers every pair, and its pattern the one the paper draws. */
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

START_TEST(test_local_with_a_block_covering_the_sequence_equals_full) {
    check_equals_full("local", "block=17", NULL, 2, 17, 8, 2, 1e-5);
    check_equals_full("local", "block=300", NULL, 1, 140, 8, 2, 1e-5); /* masked-tile path */
    /* causal blocks whose memory reaches back to the start see what causal full attention sees */
    check_equals_full("local", "block=5,memory=20,causal=true", "causal=true", 2, 17, 8, 2, 1e-5);
}
END_TEST

/* LRA's local attention written out as local_attention.py computes it, in double precision but
 * with the score + bias rounded to float as JAX does: the sequence padded to Lp = L + w − L mod w
 * with zero inputs (whose q, k, v are the projections' biases) marked real, group j = positions
 * r·n + j (n = Lp/w) from the (bs, w, n) reshape, member r of group j masked by the contiguous bits
 * j·w + r of the (bs·n, w) reshape of the padding mask, −1e10 where masked. A query whose bit is
 * clear averages its group uniformly (position 4 of the padded row below). */
START_TEST(test_local_lra_is_lras_strided_reshape) {
    const int B = 2, L = 23, D = 8, H = 2, Dh = D / H, w = 5, pad[2] = {0, 4};
    const int Lp = L + (w - L % w), n = Lp / w;
    Inst t;
    inst_init(&t, "local", "lra=true,block=5,bias=true", B, L, D, H, pad, 27);
    t.training = 0;
    inst_forward(&t);
    const ParamTable *pt = &t.pt;
#define PT(nm) (t.params + pt->info[params_find(pt, "blocks.0.mixer." nm)].offset)
    const float *wqkv = PT("qkv.weight"), *bqkv = PT("qkv.bias"), *wo = PT("out.weight"),
                *bo = PT("out.bias");
#undef PT
    double qkv[2][25][24];
    for (int b = 0; b < B; b++)
        for (int p = 0; p < Lp; p++)
            for (int o = 0; o < 3 * D; o++) {
                double a = bqkv[o];
                for (int c = 0; c < D && p < L; c++)
                    a += (double)wqkv[o * D + c] * t.x[(b * L + p) * D + c];
                qkv[b][p][o] = a;
            }
    double worst = 0;
    int uniform_rows = 0;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < L; p++) {
            const int i = p / n, j = p % n; /* member i of group j */
            const int qbit = j * w + i >= L || t.mask[b * L + j * w + i];
            uniform_rows += !qbit && t.mask[b * L + p];
            double att[8] = {0};
            for (int h = 0; h < H; h++) {
                double sc[5], mx = -INFINITY, z = 0;
                for (int c = 0; c < w; c++) {
                    const int pc = c * n + j;
                    double dot = 0;
                    for (int d = 0; d < Dh; d++)
                        dot += qkv[b][p][h * Dh + d] * qkv[b][pc][D + h * Dh + d];
                    const int kbit = j * w + c >= L || t.mask[b * L + j * w + c];
                    sc[c] = (double)((float)(dot / sqrt(Dh)) + (qbit && kbit ? 0.0f : -1e10f));
                    mx = fmax(mx, sc[c]);
                }
                for (int c = 0; c < w; c++) z += exp(sc[c] - mx);
                for (int c = 0; c < w; c++)
                    for (int d = 0; d < Dh; d++)
                        att[h * Dh + d] +=
                            exp(sc[c] - mx) / z * qkv[b][c * n + j][2 * D + h * Dh + d];
            }
            for (int o = 0; o < D; o++) {
                double y = bo[o];
                for (int c = 0; c < D; c++) y += (double)wo[o * D + c] * att[c];
                worst = fmax(worst, fabs(y - t.y[(b * L + p) * D + o]) / (1 + fabs(y)));
            }
        }
    ck_assert_int_gt(uniform_rows, 0); /* the case exists in this batch */
    ck_assert_msg(worst < 1e-5, "lra local differs from local_attention.py's reshape by %g", worst);
    inst_free(&t);
}
END_TEST

START_TEST(test_sliding_with_a_window_covering_the_sequence_equals_full) {
    check_equals_full("sliding", "window=40", NULL, 2, 20, 8, 2, 1e-5);
    check_equals_full("sliding", "window=400", NULL, 1, 150, 8, 2, 1e-5);
    check_equals_full("sliding", "window=40,causal=true", "causal=true", 2, 20, 8, 2, 1e-5);
}
END_TEST

START_TEST(test_bigbird_with_every_block_global_or_in_the_window_equals_full) {
    check_equals_full("bigbird", "block=4,global=3,random=2", NULL, 2, 21, 8, 2,
                      1e-5); /* all global */
    check_equals_full("bigbird", "block=8,window=5,global=0,random=0", NULL, 2, 19, 8, 2, 1e-5);
}
END_TEST

START_TEST(test_longformer_with_every_token_global_or_a_covering_window_equals_full) {
    Inst t; /* the global projections start as copies of the local ones (§3.1) */
    inst_init(&t, "longformer", "global=2", 1, 8, 8, 2, NULL, 4);
    const ParamInfo *l = &t.pt.info[params_find(&t.pt, "blocks.0.mixer.qkv.weight")];
    const ParamInfo *g = &t.pt.info[params_find(&t.pt, "blocks.0.mixer.qkv_global.weight")];
    ck_assert_mem_eq(t.params + l->offset, t.params + g->offset, l->size * sizeof(float));
    inst_free(&t);
    check_equals_full("longformer", "window=4,global=15", NULL, 2, 15, 8, 2, 1e-5);
    check_equals_full("longformer", "window=40,global=0", NULL, 2, 19, 8, 2, 1e-5);
    check_equals_full("longformer", "window=40,global=3", NULL, 2, 19, 8, 2, 1e-5);
}
END_TEST

START_TEST(test_linformer_with_k_equal_L_and_identity_projections_equals_full) {
    const char *sharing[4] = {"headwise", "kv", "layerwise", "none"};
    for (int v = 0; v < 4; v++) {
        const int L = 12, H = 2;
        char opts[64];
        snprintf(opts, sizeof opts, "k=%d,sharing=%s", L, sharing[v]);
        Inst a, f;
        inst_init(&a, "linformer", opts, 1, L, 8, H, NULL, 5);
        inst_init(&f, "full", NULL, 1, L, 8, H, NULL, 5);
        for (int i = 0; i < f.pt.n; i++) {
            const int j = params_find(&a.pt, f.pt.info[i].name);
            memcpy(a.params + a.pt.info[j].offset, f.params + f.pt.info[i].offset,
                   f.pt.info[i].size * sizeof(float));
        }
        for (int i = 0; i < a.pt.n; i++) /* E = F = I (per head when not shared) */
            if (params_find(&f.pt, a.pt.info[i].name) < 0) {
                float *e = a.params + a.pt.info[i].offset;
                memset(e, 0, a.pt.info[i].size * sizeof(float));
                for (size_t blk = 0; blk < a.pt.info[i].size / ((size_t)L * L); blk++)
                    for (int r = 0; r < L; r++) e[blk * L * L + (size_t)r * L + r] = 1.0f;
            }
        inst_forward(&a);
        inst_forward(&f);
        for (size_t k = 0; k < (size_t)L * 8; k++)
            ck_assert_msg(fabsf(a.y[k] - f.y[k]) <= 1e-5f * (1 + fabsf(f.y[k])), "%s: %g vs %g",
                          sharing[v], a.y[k], f.y[k]);
        inst_free(&a);
        inst_free(&f);
    }
}
END_TEST

START_TEST(test_memory_compressed_with_c_1_and_identity_convolutions_equals_full) {
    const int L = 11, D = 8;
    Inst a, f;
    const int pad[2] = {0, 3};
    inst_init(&a, "memory_compressed", "compression=1", 2, L, D, 2, pad, 5);
    inst_init(&f, "full", NULL, 2, L, D, 2, pad, 5);
    for (int i = 0; i < f.pt.n; i++) {
        const int j = params_find(&a.pt, f.pt.info[i].name);
        memcpy(a.params + a.pt.info[j].offset, f.params + f.pt.info[i].offset,
               f.pt.info[i].size * sizeof(float));
    }
    for (int i = 0; i < a.pt.n; i++)
        if (params_find(&f.pt, a.pt.info[i].name) < 0) { /* the convolutions: identity */
            float *w = a.params + a.pt.info[i].offset;
            memset(w, 0, a.pt.info[i].size * sizeof(float));
            for (int d = 0; d < D; d++) w[(size_t)d * D + d] = 1.0f;
        }
    inst_forward(&a);
    inst_forward(&f);
    for (size_t k = 0; k < (size_t)2 * L * D; k++)
        ck_assert_msg(fabsf(a.y[k] - f.y[k]) <= 1e-5f * (1 + fabsf(f.y[k])), "%g vs %g", a.y[k],
                      f.y[k]);
    inst_free(&a);
    inst_free(&f);
}
END_TEST

START_TEST(test_sparse_transformer_covering_all_pairs_equals_full) {
    /* merged heads: a block (fixed) or a window (strided) as long as the sequence covers it */
    check_equals_full("sparse_transformer", "stride=32,summary=4,heads=merged", NULL, 2, 20, 8, 2,
                      1e-5);
    check_equals_full("sparse_transformer", "pattern=strided,stride=20,heads=merged", NULL, 2, 20,
                      8, 2, 1e-5);
    check_equals_full("sparse_transformer", "pattern=strided,stride=20,heads=merged,causal=true",
                      "causal=true", 2, 20, 8, 2, 1e-5);
    /* and the pattern is the paper's: with l = 4, c = 1, query 5 of a fixed A2 head sees 3, 7, 11
     */
    Inst t;
    inst_init(&t, "sparse_transformer", "stride=4,summary=1", 1, 12, 8, 2, NULL, 2);
    AttnShape s = attn_mixer_shape(&t.m, 1, 12);
    float row[12];
    s.pattern->mask(&s, 0, 1, 5, 1, 0, 12, row, 12);
    for (int j = 0; j < 12; j++) ck_assert_int_eq(row[j] == 0.0f, j % 4 == 3);
    s.pattern->mask(&s, 0, 0, 5, 1, 0, 12, row, 12); /* an A1 head: block 1 */
    for (int j = 0; j < 12; j++) ck_assert_int_eq(row[j] == 0.0f, j / 4 == 1);
    inst_free(&t);
}
END_TEST

/* LRA's sparse pattern, written out as its build_mask does (sparse_attention.py): Fixed1 (same
 * block of l) or Fixed2 (k mod l == 0 or >= l − c), and k <= q; with use_cls_token the pattern of
 * the L − 1 positions after the CLS token, padded with a first row and column of ones. The
 * mechanism's outputs equal attention with that mask materialised (so its key ranges cover it). */
static int g_lra_l, g_lra_c, g_lra_cls;
static int lra_build_mask(int q, int k) {
    if (g_lra_cls) {
        if (q == 0 || k == 0) return 1;
        q--, k--;
    }
    const int fixed1 = q / g_lra_l == k / g_lra_l,
              fixed2 = k % g_lra_l == 0 || k % g_lra_l >= g_lra_l - g_lra_c;
    return k <= q && (fixed1 || fixed2);
}
static int lra_all_keys(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h, (void)i0, (void)bq;
    lo[0] = 0, hi[0] = s->Lk;
    return 1;
}
static void lra_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk, float *bias,
                     int ld) {
    (void)s, (void)b, (void)h;
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++)
            bias[(size_t)r * ld + c] = lra_build_mask(i0 + r, j0 + c) ? 0.0f : -INFINITY;
}

START_TEST(test_sparse_transformer_lra_is_lras_merged_causal_pattern) {
    const int L[2] = {29, 300}, l[2] = {8, 128}, c[2] = {3, 32}, pad[2] = {0, 5};
    for (int v = 0; v < 4; v++) {
        const int n = L[v / 2], B = 2, D = 8, H = 2, Dh = D / H;
        g_lra_l = l[v / 2], g_lra_c = c[v / 2], g_lra_cls = v % 2;
        char opts[96];
        snprintf(opts, sizeof opts, "lra=true,stride=%d,summary=%d", g_lra_l, g_lra_c);
        g_cls = g_lra_cls;
        Inst t;
        inst_init(&t, "sparse_transformer", opts, B, n, D, H, pad, 19);
        g_cls = 0;
        inst_forward(&t);
        float *qkv = malloc((size_t)B * n * 3 * D * sizeof(float)),
              *o = malloc((size_t)B * n * D * sizeof(float)),
              *y = malloc((size_t)B * n * D * sizeof(float)),
              *lse = malloc((size_t)B * H * n * sizeof(float));
        const ParamTable *pt = &t.pt;
        linear_forward(qkv, t.x,
                       t.params + pt->info[params_find(pt, "blocks.0.mixer.qkv.weight")].offset,
                       NULL, B * n, D, 3 * D);
        AttnShape s = attn_shape(B, H, n, n, Dh, 3 * D, 3 * D, 3 * D, D);
        const AttnPattern full = {
            .bq = n, .max_ranges = 1, .ranges = lra_all_keys, .mask = lra_mask};
        s.pattern = &full;
        attn_forward_naive(o, lse, qkv, qkv + D, qkv + 2 * D, t.mask, &s);
        linear_forward(y, o,
                       t.params + pt->info[params_find(pt, "blocks.0.mixer.out.weight")].offset,
                       NULL, B * n, D, D);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < n - pad[b]; i++)
                for (int d = 0; d < D; d++) {
                    const size_t k = ((size_t)b * n + i) * D + d;
                    ck_assert_msg(fabsf(t.y[k] - y[k]) <= 1e-5f * (1 + fabsf(y[k])),
                                  "lra(L %d, cls %d) row %d: %g vs %g", n, g_lra_cls, i, t.y[k],
                                  y[k]);
                }
        free(qkv), free(o), free(y), free(lse);
        inst_free(&t);
    }
}
END_TEST

START_TEST(test_bigbird_pattern_is_what_the_paper_draws) {
    /* 10 blocks of 2: block 4 of head h sees its window {3, 4, 5}, the global blocks {0, 9} and
     * two random blocks outside those, different across heads and layers, equal for equal seeds */
    Inst t;
    inst_init(&t, "bigbird", "block=2,random=2", 1, 20, 8, 2, NULL, 3);
    inst_forward(&t);
    AttnShape s = attn_mixer_shape(&t.m, 1, 20);
    int lo[8], hi[8], seen[2][10] = {{0}};
    for (int h = 0; h < 2; h++) {
        const int n = s.pattern->ranges(&s, 0, h, 8, 2, lo, hi);
        int count = 0;
        for (int r = 0; r < n; r++)
            for (int j = lo[r]; j < hi[r]; j++) seen[h][j / 2] = 1, count++;
        ck_assert_int_eq(count, 2 * 7);
        const int must[5] = {0, 3, 4, 5, 9};
        for (int k = 0; k < 5; k++) ck_assert(seen[h][must[k]]);
        const int n0 = s.pattern->ranges(&s, 0, h, 0, 2, lo, hi); /* a global block: everything */
        ck_assert_int_eq(n0, 1);
        ck_assert_int_eq(hi[0] - lo[0], 20);
    }
    ck_assert_int_ne(memcmp(seen[0], seen[1], sizeof seen[0]), 0);
    inst_free(&t);
}
END_TEST

/* Axial attention along the only row of a grid at least L wide, or the only column of a grid one
 * wide, is full attention; a grid that leaves cells empty must not change that. */
START_TEST(test_axial_on_one_row_or_one_column_equals_full) {
    check_equals_full("axial", "width=13,axis=rows", NULL, 2, 13, 8, 2, 1e-5);
    check_equals_full("axial", "width=1,axis=columns", NULL, 2, 13, 8, 2, 1e-5);
    check_equals_full("axial", "width=300,axis=rows", NULL, 1, 300, 8, 2, 1e-5); /* masked tiles */
    check_equals_full("axial", "width=1,axis=columns", NULL, 1, 300, 8, 2, 1e-5);
}
END_TEST

/* Column attention of position p sees exactly the positions p ± k·width: compare one output row
 * with full attention restricted by hand (keys of other columns pushed out by a huge offset). */
START_TEST(test_axial_columns_see_only_their_column) {
    Inst t;
    inst_init(&t, "axial", "width=4,axis=columns", 1, 14, 8, 2, NULL, 21);
    inst_forward(&t);
    float *y0 = malloc((size_t)14 * 8 * sizeof(float));
    memcpy(y0, t.y, (size_t)14 * 8 * sizeof(float));
    for (int p = 0; p < 14; p++) /* change every position outside column 1 */
        if (p % 4 != 1)
            for (int d = 0; d < 8; d++) t.x[p * 8 + d] += 1.0f;
    inst_forward(&t);
    for (int p = 1; p < 14; p += 4)
        for (int d = 0; d < 8; d++) ck_assert_float_eq(t.y[p * 8 + d], y0[p * 8 + d]);
    int changed = 0;
    for (int d = 0; d < 8; d++) changed |= t.y[0 * 8 + d] != y0[0 * 8 + d];
    ck_assert(changed);
    free(y0);
    inst_free(&t);
}
END_TEST

/* Transformer-XL's relative attention against its scores written out: (q_i + u)·k_j +
 * (q_i + v)·W_R r_{i−j}, scaled, masked, softmax, times V, then the output projection. */
START_TEST(test_full_relative_matches_explicit_scores) {
    const int B = 2, L = 11, D = 8, H = 2, Dh = D / H, pad[2] = {0, 3};
    Inst t;
    inst_init(&t, "full", "relative=true,bias=true", B, L, D, H, pad, 17);
    inst_forward(&t);
#define PT(nm) (t.params + t.pt.info[params_find(&t.pt, "blocks.0.mixer." nm)].offset)
    const float *wqkv = PT("qkv.weight"), *bqkv = PT("qkv.bias"), *wo = PT("out.weight"),
                *bo = PT("out.bias"), *wr = PT("rel.weight"), *u = PT("rel.u"), *v = PT("rel.v");
#undef PT
    double qkv[2][11][24], R[21][8], att[2][11][8];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L; i++)
            for (int o = 0; o < 3 * D; o++) {
                double a = bqkv[o];
                for (int c = 0; c < D; c++) a += (double)wqkv[o * D + c] * t.x[(b * L + i) * D + c];
                qkv[b][i][o] = a;
            }
    for (int n = 0; n < 2 * L - 1; n++) {
        double r[8];
        for (int k = 0; k < D / 2; k++) {
            const double a = (double)(n - (L - 1)) / pow(10000.0, 2.0 * k / D);
            r[2 * k] = sin(a), r[2 * k + 1] = cos(a);
        }
        for (int o = 0; o < D; o++) {
            R[n][o] = 0;
            for (int c = 0; c < D; c++) R[n][o] += (double)wr[o * D + c] * r[c];
        }
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < L; i++) {
                double sc[11], mx = -INFINITY, sum = 0;
                for (int j = 0; j < L; j++) {
                    double a = 0;
                    for (int d = 0; d < Dh; d++) {
                        const int c = h * Dh + d;
                        a += (qkv[b][i][c] + u[c]) * qkv[b][j][D + c] +
                             (qkv[b][i][c] + v[c]) * R[i - j + L - 1][c];
                    }
                    sc[j] = j < L - pad[b] ? a / sqrt(Dh) : -INFINITY;
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j < L; j++) sum += sc[j] == -INFINITY ? 0 : exp(sc[j] - mx);
                for (int d = 0; d < Dh; d++) {
                    double a = 0;
                    for (int j = 0; j < L; j++)
                        if (sc[j] != -INFINITY)
                            a += exp(sc[j] - mx) / sum * qkv[b][j][2 * D + h * Dh + d];
                    att[b][i][h * Dh + d] = a;
                }
            }
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L; i++)
            for (int o = 0; o < D; o++) {
                double y = bo[o];
                for (int c = 0; c < D; c++) y += (double)wo[o * D + c] * att[b][i][c];
                worst = fmax(worst, fabs(y - t.y[(b * L + i) * D + o]) / (1 + fabs(y)));
            }
    ck_assert_msg(worst < 1e-5, "relative attention differs from its explicit scores by %g", worst);
    inst_free(&t);
}
END_TEST

/* Transformer-XL's layer computes queries for the segment only: with the first ctx rows of each
 * window as context (Mixer.ctx), the outputs, dx and every gradient at the query rows equal those
 * of the mechanism over all rows whose context rows' dy is 0, and the FLOPs are those of
 * (L − ctx) query rows: the packed projection over every row, attention and output projection over
 * the query rows. The generic checks (finite differences, counted = analytic FLOPs, padding) run
 * with the context too. */
START_TEST(test_full_with_context_rows_equals_full_on_the_query_rows) {
    const char *opts[4] = {NULL, "causal=true", "relative=true",
                           "relative=true,causal=true,bias=true"};
    const int B = 2, L = 11, D = 8, H = 2, ctx = 4, pad[2] = {0, 3};
    for (int v = 0; v < 4; v++) {
        Inst a, c;
        inst_init(&a, "full", opts[v], B, L, D, H, pad, 13);
        g_ctx = ctx;
        inst_init(&c, "full", opts[v], B, L, D, H, pad, 13);
        g_ctx = 0;
        ck_assert_int_eq(c.m.ctx, ctx);
        for (int b = 0; b < B; b++) /* the context rows carry no gradient */
            memset(a.dy + (size_t)b * L * D, 0, (size_t)ctx * D * sizeof(float));
        memcpy(c.dy, a.dy, (size_t)B * L * D * sizeof(float));
        flops_reset();
        inst_forward(&a);
        const uint64_t fa = flops_counted();
        flops_reset();
        inst_forward(&c);
        const uint64_t fc = flops_counted();
        inst_backward(&a);
        inst_backward(&c);
        for (int b = 0; b < B; b++)
            for (int i = ctx; i < L; i++)
                for (int d = 0; d < D; d++) {
                    const size_t k = ((size_t)b * L + i) * D + d;
                    ck_assert_msg(fabsf(a.y[k] - c.y[k]) <= 1e-5f * (1 + fabsf(a.y[k])),
                                  "full(%s) row %d: %g vs %g", opts[v] ? opts[v] : "", i, c.y[k],
                                  a.y[k]);
                }
        for (size_t k = 0; k < (size_t)B * L * D; k++)
            ck_assert_msg(fabsf(a.dx[k] - c.dx[k]) <= 1e-5f * (1 + fabsf(a.dx[k])),
                          "full(%s) dx %zu: %g vs %g", opts[v] ? opts[v] : "", k, c.dx[k], a.dx[k]);
        for (size_t k = 0; k < a.pt.total; k++)
            ck_assert_msg(fabsf(a.grads[k] - c.grads[k]) <= 1e-5f * (1 + fabsf(a.grads[k])),
                          "full(%s) gradient %zu: %g vs %g", opts[v] ? opts[v] : "", k, c.grads[k],
                          a.grads[k]);
        /* a Transformer-XL layer's FLOPs: the packed projection over every row, then for the
         * query rows only, scores and values (2·Lq·L·(Dh + Dv) per head), the relative term's
         * band (2·Lq·(Lq + L − 1)·Dh per head: one tile here) and the output projection */
        const uint64_t BL = (uint64_t)B * L, Lq = (uint64_t)(L - ctx), d = (uint64_t)D,
                       BH = (uint64_t)B * H, Dh = d / H;
        uint64_t want = 2 * BL * d * 3 * d + BH * 2 * Lq * L * 2 * Dh + 2 * B * Lq * d * d;
        if (v >= 2) want += 2 * (2 * (uint64_t)L - 1) * d * d + BH * 2 * Lq * (Lq + L - 1) * Dh;
        ck_assert_uint_eq(fc, want);
        ck_assert_uint_eq(fc, c.m.spec->ops->flops(&c.m, B, L, 0));
        ck_assert_uint_lt(fc, fa);
        inst_free(&a);
        inst_free(&c);
        g_ctx = ctx;
        check_mechanism("full", opts[v], B, L, D, H);
        g_ctx = 0;
    }
}
END_TEST

/* FNet against the 2-D DFT written out in double precision: y[k1][k2] = Σ x[n1][n2]·
 * cos(2π(k1·n1/L + k2·n2/D)), the real part of the transform of a real input. */
START_TEST(test_fnet_is_the_real_part_of_the_2d_dft) {
    const int B = 2, L = 9, D = 6, pad[2] = {0, 2};
    Inst t;
    inst_init(&t, "fnet", NULL, B, L, D, 2, pad, 23);
    inst_forward(&t);
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int k1 = 0; k1 < L; k1++)
            for (int k2 = 0; k2 < D; k2++) {
                double a = 0;
                for (int n1 = 0; n1 < L - pad[b]; n1++) /* padding rows count as zeros */
                    for (int n2 = 0; n2 < D; n2++)
                        a += t.x[(b * L + n1) * D + n2] *
                             cos(2 * M_PI * ((double)k1 * n1 / L + (double)k2 * n2 / D));
                worst = fmax(worst, fabs(a - t.y[(b * L + k1) * D + k2]) / (1 + fabs(a)));
            }
    ck_assert_msg(worst < 1e-5, "FNet differs from the DFT by %g", worst);
    inst_free(&t);
}
END_TEST

static Suite *mixers_patterns_suite(void) {
    Suite *s = suite_create("mixers_patterns");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_local_with_a_block_covering_the_sequence_equals_full);
    tcase_add_test(tc, test_sliding_with_a_window_covering_the_sequence_equals_full);
    tcase_add_test(tc, test_bigbird_with_every_block_global_or_in_the_window_equals_full);
    tcase_add_test(tc, test_longformer_with_every_token_global_or_a_covering_window_equals_full);
    tcase_add_test(tc, test_linformer_with_k_equal_L_and_identity_projections_equals_full);
    tcase_add_test(tc, test_memory_compressed_with_c_1_and_identity_convolutions_equals_full);
    tcase_add_test(tc, test_sparse_transformer_covering_all_pairs_equals_full);
    tcase_add_test(tc, test_bigbird_pattern_is_what_the_paper_draws);
    tcase_add_test(tc, test_local_lra_is_lras_strided_reshape);
    tcase_add_test(tc, test_sparse_transformer_lra_is_lras_merged_causal_pattern);
    tcase_add_test(tc, test_axial_on_one_row_or_one_column_equals_full);
    tcase_add_test(tc, test_axial_columns_see_only_their_column);
    tcase_add_test(tc, test_full_relative_matches_explicit_scores);
    tcase_add_test(tc, test_full_with_context_rows_equals_full_on_the_query_rows);
    tcase_add_test(tc, test_fnet_is_the_real_part_of_the_2d_dft);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(mixers_patterns_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
