/* The learnable patterns: reformer, sinkhorn, routing. */
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
#include "mixers/reformer.h"

/* Reformer with one bucket and chunks in reach of each other is dense attention with shared QK
 * (keys are the queries normalised); with its self mask off, exactly that. The reference is
 * computed here from the mechanism's own projections, with the materialised attention. Real rows
 * only: a padding query has the padding bucket, where every key is masked, so its row is the
 * output bias alone (dense attention would let it see the real keys). With several rounds of one
 * bucket every attended pair is counted in all R rounds, so the log R correction shifts every
 * logit alike and changes nothing. */
static int all_keys(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b, (void)h, (void)i0, (void)bq;
    lo[0] = 0, hi[0] = s->Lk;
    return 1;
}
static void no_self(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk, float *bias,
                    int ld) {
    (void)s, (void)b, (void)h;
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++) bias[(size_t)r * ld + c] = i0 + r == j0 + c ? -INFINITY : 0.0f;
}

static void check_reformer_dense(const char *opts, int self_mask, int B, int L, int D, int H) {
    const int pad[2] = {0, 3};
    Inst t;
    inst_init(&t, "reformer", opts, B, L, D, H, B == 2 ? pad : NULL, 9);
    inst_forward(&t);
    const int Dh = D / H, BL = B * L;
    const int iqv = params_find(&t.pt, "blocks.0.mixer.qv.weight");
    const int iqb = params_find(&t.pt, "blocks.0.mixer.qv.bias");
    const int io = params_find(&t.pt, "blocks.0.mixer.out.weight");
    const int ib = params_find(&t.pt, "blocks.0.mixer.out.bias");
    ck_assert(iqv >= 0 && io >= 0);
    float *qv = malloc((size_t)BL * 2 * D * sizeof(float)),
          *k = malloc((size_t)BL * D * sizeof(float));
    float *o = malloc((size_t)BL * D * sizeof(float)), *y = malloc((size_t)BL * D * sizeof(float));
    float *lse = malloc((size_t)B * H * L * sizeof(float));
    linear_forward(qv, t.x, t.params + t.pt.info[iqv].offset,
                   iqb >= 0 ? t.params + t.pt.info[iqb].offset : NULL, BL, D, 2 * D);
    for (int r = 0; r < BL; r++)
        for (int h = 0; h < H; h++) {
            const float *q = qv + (size_t)r * 2 * D + h * Dh;
            double n2 = 0;
            for (int d = 0; d < Dh; d++) n2 += (double)q[d] * q[d];
            for (int d = 0; d < Dh; d++) k[(size_t)r * D + h * Dh + d] = q[d] / (float)sqrt(n2);
        }
    AttnShape sh = attn_shape(B, H, L, L, Dh, 2 * D, D, 2 * D, D);
    const AttnPattern diag = {.bq = L, .max_ranges = 1, .ranges = all_keys, .mask = no_self};
    if (self_mask) sh.pattern = &diag; /* exp(−1e5) is 0 in float when another key is visible */
    attn_forward_naive(o, lse, qv, k, qv + D, t.mask, &sh);
    linear_forward(y, o, t.params + t.pt.info[io].offset,
                   ib >= 0 ? t.params + t.pt.info[ib].offset : NULL, BL, D, D);
    double worst = 0;
    for (size_t i = 0; i < (size_t)BL * D; i++)
        if (!t.mask || t.mask[i / D])
            worst = fmax(worst, fabs((double)t.y[i] - y[i]) / (1 + fabs((double)y[i])));
    ck_assert_msg(worst < 1e-5, "reformer(%s) differs from dense shared-QK attention by %g", opts,
                  worst);
    free(qv), free(k), free(o), free(y), free(lse);
    inst_free(&t);
}

START_TEST(test_reformer_with_one_bucket_equals_dense_shared_qk_attention) {
    check_reformer_dense("buckets=1,chunk=16,self_mask=false", 0, 2, 13, 8, 2); /* one chunk */
    check_reformer_dense("buckets=1,chunk=16,self_mask=false,hashes=3", 0, 2, 13, 8,
                         2); /* rounds */
    check_reformer_dense("buckets=1,chunk=7,self_mask=false", 0, 2, 13, 8,
                         2); /* two chunks, wrap */
    check_reformer_dense("buckets=1,chunk=150,self_mask=false", 0, 1, 300, 8, 2); /* key tiles */
    check_reformer_dense("buckets=1,chunk=7", 1, 2, 13, 8, 2); /* the self logit hides the token */
    check_reformer_dense("buckets=1,chunk=16,hashes=2", 1, 2, 13, 8, 2);
}
END_TEST

/* The reformer options the reference follows (lra implies no self mask, buckets or dedup). */
typedef struct LshConf {
    int chunk, R, self_mask, same_bucket, dedup, lra;
} LshConf;

static LshConf lsh_conf(const Inst *t) {
    const MixerSpec *sp = t->m.spec;
    LshConf c;
    c.chunk = opt_int(&t->opts, sp->opts, sp->n_opts, "chunk");
    c.R = opt_int(&t->opts, sp->opts, sp->n_opts, "hashes");
    c.lra = opt_bool(&t->opts, sp->opts, sp->n_opts, "lra");
    c.self_mask = !c.lra && opt_bool(&t->opts, sp->opts, sp->n_opts, "self_mask");
    c.same_bucket = !c.lra && opt_bool(&t->opts, sp->opts, sp->n_opts, "same_bucket");
    c.dedup = !c.lra && opt_bool(&t->opts, sp->opts, sp->n_opts, "dedup");
    return c;
}

/* The paper's LSH attention (arXiv 2001.04451, eq. 3 and §2.3) rebuilt in double from the
 * mechanism's projections and its buckets (reformer_buckets). Round r sorts the positions by
 * (bucket, position) and cuts them into chunks of m; query i attends to the real keys j whose chunk
 * is i's or the one before (the first chunk: the last), and, with same_bucket, whose bucket is
 * i's. The logit is s_ij = scale·q_i·k_j − 1e5·[i = j] (self_mask) − log N_ij (dedup), N_ij the
 * number of rounds whose attended set holds j; the rounds are combined by their log-sum-exps.
 * With `union_form` instead one softmax over the union of the rounds' sets without the log N term
 * (what the correction is meant to give). With lra: keys are the raw queries, scale = √d_h, the
 * chunks ⌈L/n_b⌉ long, no output projection. y (B, L, D) of real rows; padding rows are left 0. */
static void reformer_reference(double *y, const Inst *t, const LshConf *c, int union_form) {
    const int B = t->B, L = t->L, D = t->D, H = t->H, Dh = D / H, BL = B * L, R = c->R;
    const ParamTable *pt = &t->pt;
    const int iqb = params_find(pt, "blocks.0.mixer.qv.bias");
    const int io = params_find(pt, "blocks.0.mixer.out.weight");
    const int ib = params_find(pt, "blocks.0.mixer.out.bias");
    ck_assert(R <= 16 && Dh <= 16);
    float *qv = malloc((size_t)BL * 2 * D * sizeof(float));
    linear_forward(qv, t->x,
                   t->params + pt->info[params_find(pt, "blocks.0.mixer.qv.weight")].offset,
                   iqb >= 0 ? t->params + pt->info[iqb].offset : NULL, BL, D, 2 * D);
    int *bucket = malloc((size_t)B * H * R * L * sizeof(int));
    const int NB = reformer_buckets(&t->m, B, L, bucket);
    const int m = c->lra ? (L + NB - 1) / NB : c->chunk, nch = (L + m - 1) / m;
    const double scale = c->lra ? sqrt((double)Dh) : 1.0 / sqrt((double)Dh);
    int *chk = malloc((size_t)R * L * sizeof(int)); /* chunk of each position, per round */
    double *k = malloc((size_t)L * Dh * sizeof(double));
    double *s = malloc((size_t)L * sizeof(double)), zr[16], orr[16][16];
    memset(y, 0, (size_t)BL * D * sizeof(double));
    for (int b = 0; b < B; b++) {
        double *att = calloc((size_t)L * D, sizeof(double));
        for (int h = 0; h < H; h++) {
            const int *bk = bucket + ((size_t)b * H + h) * R * L;
            for (int r = 0; r < R; r++) /* sorted index of p: the pairs (bucket, position) before */
                for (int p = 0; p < L; p++) {
                    int n = 0;
                    for (int q = 0; q < L; q++)
                        n += bk[r * L + q] < bk[r * L + p] ||
                             (bk[r * L + q] == bk[r * L + p] && q < p);
                    chk[r * L + p] = n / m;
                }
            for (int j = 0; j < L; j++) { /* k_j = q_j/‖q_j‖ (LRA: q_j) */
                const float *q = qv + ((size_t)b * L + j) * 2 * D + h * Dh;
                double n2 = 0;
                for (int d = 0; d < Dh; d++) n2 += (double)q[d] * q[d];
                for (int d = 0; d < Dh; d++) k[j * Dh + d] = c->lra ? q[d] : q[d] / sqrt(n2);
            }
#define LSH_IN(r, i, j)                                                                            \
    ((chk[(r)*L + (j)] == chk[(r)*L + (i)] ||                                                      \
      chk[(r)*L + (j)] == (chk[(r)*L + (i)] > 0 ? chk[(r)*L + (i)] - 1 : nch - 1)) &&              \
     (!c->same_bucket || bk[(r)*L + (i)] == bk[(r)*L + (j)]))
            for (int i = 0; i < L; i++) {
                if (t->mask && !t->mask[(size_t)b * L + i]) continue;
                const float *qi = qv + ((size_t)b * L + i) * 2 * D + h * Dh;
                for (int j = 0; j < L; j++) {
                    s[j] = 0;
                    for (int d = 0; d < Dh; d++) s[j] += (double)qi[d] * k[j * Dh + d];
                    s[j] = s[j] * scale - (c->self_mask && i == j ? 1e5 : 0.0);
                }
                for (int r = 0; r < (union_form ? 1 : R); r++) {
                    double mx = -INFINITY, sum = 0, e[L];
                    for (int j = 0; j < L; j++) {
                        e[j] = -INFINITY;
                        if (t->mask && !t->mask[(size_t)b * L + j]) continue;
                        int n = 0, in = 0;
                        for (int rr = 0; rr < R; rr++) n += LSH_IN(rr, i, j);
                        in = union_form ? n > 0 : LSH_IN(r, i, j);
                        if (!in) continue;
                        e[j] = s[j] - (!union_form && c->dedup ? log((double)n) : 0.0);
                        mx = fmax(mx, e[j]);
                    }
                    for (int d = 0; d < Dh; d++) orr[r][d] = 0;
                    for (int j = 0; j < L; j++) {
                        if (e[j] == -INFINITY) continue;
                        const double w = exp(e[j] - mx);
                        sum += w;
                        for (int d = 0; d < Dh; d++)
                            orr[r][d] += w * qv[((size_t)b * L + j) * 2 * D + D + h * Dh + d];
                    }
                    zr[r] = sum > 0 ? mx + log(sum) : -INFINITY;
                    for (int d = 0; d < Dh; d++) orr[r][d] = sum > 0 ? orr[r][d] / sum : 0;
                }
                const int nr = union_form ? 1 : R;
                double mz = -INFINITY, tot = 0;
                for (int r = 0; r < nr; r++) mz = fmax(mz, zr[r]);
                for (int r = 0; r < nr; r++) tot += zr[r] == -INFINITY ? 0 : exp(zr[r] - mz);
                for (int r = 0; r < nr; r++) {
                    if (zr[r] == -INFINITY) continue;
                    const double w = exp(zr[r] - mz) / tot;
                    for (int d = 0; d < Dh; d++) att[(size_t)i * D + h * Dh + d] += w * orr[r][d];
                }
            }
#undef LSH_IN
        }
        for (int i = 0; i < L; i++) {
            if (t->mask && !t->mask[(size_t)b * L + i]) continue;
            double *yi = y + ((size_t)b * L + i) * D;
            if (io < 0) { /* lra: no output projection */
                for (int d = 0; d < D; d++) yi[d] = att[(size_t)i * D + d];
                continue;
            }
            const float *wo = t->params + pt->info[io].offset;
            for (int d = 0; d < D; d++) {
                double acc = ib >= 0 ? t->params[pt->info[ib].offset + d] : 0.0;
                for (int e = 0; e < D; e++) acc += (double)wo[d * D + e] * att[(size_t)i * D + e];
                yi[d] = acc;
            }
        }
        free(att);
    }
    free(qv), free(bucket), free(chk), free(k), free(s);
}

/* Largest relative difference between y (float, the mechanism's) and ref at the real rows. */
static double real_rows_diff(const Inst *t, const float *y, const double *ref) {
    double worst = 0;
    for (size_t i = 0; i < (size_t)t->B * t->L * t->D; i++)
        if (!t->mask || t->mask[i / t->D])
            worst = fmax(worst, fabs((double)y[i] - ref[i]) / (1 + fabs(ref[i])));
    return worst;
}
static double real_rows_diff_d(const Inst *t, const double *a, const double *ref) {
    double worst = 0;
    for (size_t i = 0; i < (size_t)t->B * t->L * t->D; i++)
        if (!t->mask || t->mask[i / t->D])
            worst = fmax(worst, fabs(a[i] - ref[i]) / (1 + fabs(ref[i])));
    return worst;
}

/* The mechanism against the reference; returns the instance (forward run) for more checks. */
static void check_reformer_reference(Inst *t, const char *opts, int B, int L, int D, int H) {
    const int pad[3] = {0, 3, 1};
    inst_init(t, "reformer", opts, B, L, D, H, pad, 13);
    inst_forward(t);
    const LshConf c = lsh_conf(t);
    double *ref = malloc((size_t)B * L * D * sizeof(double));
    reformer_reference(ref, t, &c, 0);
    const double worst = real_rows_diff(t, t->y, ref);
    ck_assert_msg(worst < 1e-5, "reformer(%s) differs from the naive LSH attention by %g", opts,
                  worst);
    free(ref);
}

START_TEST(test_reformer_equals_naive_lsh_attention_of_its_buckets) {
    static const struct {
        const char *opts;
        int B, L, D, H;
    } cases[] = {
        {"chunk=4", 2, 13, 8, 2},
        {"chunk=3,buckets=4,hashes=3,bias=true", 3, 12, 6, 3},
        {"chunk=5,self_mask=false,hashes=2", 2, 11, 8, 2},
        {"chunk=2,buckets=6,hashes=2", 2, 9, 8, 2},
        {"chunk=4,buckets=2,hashes=4", 2, 13, 8, 2},
        {"chunk=3,buckets=4,hashes=3,same_bucket=false", 2, 13, 8, 2},
        {"chunk=3,buckets=4,hashes=3,dedup=false", 2, 13, 8, 2},
        {"chunk=4,buckets=4,hashes=2", 1, 40, 8, 2},
        {"lra=true,buckets=4", 2, 13, 8, 2},
        {"lra=true,buckets=2,hashes=2,bias=true", 2, 14, 8, 2},
    };
    for (size_t v = 0; v < sizeof cases / sizeof *cases; v++) {
        Inst t;
        check_reformer_reference(&t, cases[v].opts, cases[v].B, cases[v].L, cases[v].D, cases[v].H);
        inst_free(&t);
    }
}
END_TEST

/* Eq. 3 of the paper: within the chunk window a query attends to its own bucket only. One chunk
 * holds the whole row, so the window is everything and only the buckets separate tokens. */
START_TEST(test_reformer_pair_in_another_bucket_of_the_same_chunk_gets_no_weight) {
    const int B = 2, L = 13, D = 8, H = 2;
    Inst t;
    check_reformer_reference(&t, "chunk=16,buckets=4", B, L, D, H);
    int *bucket = malloc((size_t)B * H * L * sizeof(int));
    reformer_buckets(&t.m, B, L, bucket);
    int split = 0; /* real pairs of one chunk in different buckets */
    for (int bh = 0; bh < B * H; bh++)
        for (int i = 0; i < L; i++)
            for (int j = 0; j < L; j++)
                split += t.mask[(bh / H) * L + i] && t.mask[(bh / H) * L + j] &&
                         bucket[bh * L + i] != bucket[bh * L + j];
    ck_assert_int_gt(split, 0);
    LshConf c = lsh_conf(&t);
    c.same_bucket = 0; /* what the rows would be if those pairs had weight */
    double *across = malloc((size_t)B * L * D * sizeof(double));
    reformer_reference(across, &t, &c, 0);
    ck_assert_msg(real_rows_diff(&t, t.y, across) > 1e-2, "the buckets made no difference");
    free(across), free(bucket);
    inst_free(&t);
}
END_TEST

/* §2.3: with few buckets and several rounds most pairs are attended in several rounds; lowering
 * each logit by log N_ij makes the combined rounds one softmax over the union of the attended
 * sets (checked in double), and the result differs from counting pairs N_ij times. */
START_TEST(test_reformer_duplicate_pairs_across_rounds_count_once) {
    const char *opts[2] = {"chunk=16,buckets=2,hashes=4", "chunk=4,buckets=2,hashes=4"};
    const int B = 2, L = 13, D = 8, H = 2;
    for (int v = 0; v < 2; v++) {
        Inst t;
        check_reformer_reference(&t, opts[v], B, L, D, H);
        LshConf c = lsh_conf(&t);
        double *per = malloc((size_t)B * L * D * sizeof(double));
        double *uni = malloc((size_t)B * L * D * sizeof(double));
        reformer_reference(per, &t, &c, 0);
        reformer_reference(uni, &t, &c, 1);
        ck_assert_msg(real_rows_diff_d(&t, per, uni) < 1e-9,
                      "%s: rounds with log N are not one "
                      "softmax over the union",
                      opts[v]);
        c.dedup = 0;
        reformer_reference(per, &t, &c, 0);
        ck_assert_msg(real_rows_diff(&t, t.y, per) > 1e-3, "%s: no pair was attended twice",
                      opts[v]);
        free(per), free(uni);
        inst_free(&t);
    }
}
END_TEST

/* The spec's padding_dependence: with buckets given, a padded row's real outputs equal those of
 * the row cut to its real length when both have the same number of chunks (the first chunk wraps
 * to the same last chunk); with buckets 0 the padded row hashes into 2·ceil(L/chunk) buckets of
 * the padded L, exactly as the cut row does when given that count; with lra the chunks are
 * ceil(L/n_b) of the padded L, the same here. In evaluation, as the generic truncation test. */
START_TEST(test_reformer_padding_changes_real_outputs_only_through_the_padded_length) {
    static const struct {
        const char *padded, *cut;
        int L, p;
    } cases[] = {
        {"chunk=4,buckets=4", "chunk=4,buckets=4", 16, 3},
        {"chunk=4,buckets=2,hashes=3", "chunk=4,buckets=2,hashes=3", 16, 2},
        {"chunk=5,buckets=4,hashes=2,same_bucket=false",
         "chunk=5,buckets=4,hashes=2,same_bucket=false", 15, 4},
        {"chunk=4,hashes=2", "chunk=4,hashes=2,buckets=8", 16, 3},
        {"lra=true,buckets=4", "lra=true,buckets=4", 16, 1},
    };
    const int D = 8, H = 2;
    for (size_t v = 0; v < sizeof cases / sizeof *cases; v++) {
        const int L = cases[v].L, p = cases[v].p, Lr = L - p, pad[2] = {0, p};
        Inst a, t;
        inst_init(&a, "reformer", cases[v].padded, 2, L, D, H, pad, 41);
        inst_init_at(&t, "reformer", cases[v].cut, 1, Lr, L, D, H, NULL, 41);
        ck_assert_int_eq(memcmp(a.params, t.params, a.pt.total * sizeof(float)), 0);
        memcpy(t.x, a.x + (size_t)L * D, (size_t)Lr * D * sizeof(float));
        a.training = t.training = 0;
        inst_forward(&a);
        inst_forward(&t);
        double worst = 0;
        for (size_t k = 0; k < (size_t)Lr * D; k++)
            worst = fmax(worst, fabs((double)a.y[(size_t)L * D + k] - t.y[k]) / (1 + fabs(t.y[k])));
        ck_assert_msg(worst <= 1e-5, "%s: padding changes real outputs by %g", cases[v].padded,
                      worst);
        inst_free(&a);
        inst_free(&t);
    }
}
END_TEST

START_TEST(test_reformer_lra_is_lras_attention_and_rejects_what_it_lacks) {
    const MixerSpec *spec = mixer_get(mixer_find("reformer"));
    const char *bad[4] = {"lra=true,self_mask=true", "lra=true,same_bucket=true",
                          "lra=true,dedup=true", "lra=true,chunk=8"};
    const char *key[4] = {"model.mixer.self_mask", "model.mixer.same_bucket", "model.mixer.dedup",
                          "model.mixer.chunk"};
    for (int v = 0; v < 4; v++) {
        OptValues o;
        set_opts(&o, spec, bad[v]);
        XbError err;
        xb_error_clear(&err);
        ck_assert_int_eq(spec->ops->check(&o, 8, 2, 16, &err), -1);
        ck_assert_str_eq(err.key, key[v]);
        ck_assert_ptr_nonnull(strstr(err.msg, "valid"));
    }
    OptValues o;
    set_opts(&o, spec, "lra=true,self_mask=false,buckets=4");
    XbError err;
    xb_error_clear(&err);
    ck_assert_int_eq(spec->ops->check(&o, 8, 2, 16, &err), 0);
    /* no output projection; one hashing key for every layer, step and experiment seed */
    Inst t;
    inst_init(&t, "reformer", "lra=true,buckets=4,hashes=2", 1, 16, 8, 2, NULL, 3);
    ck_assert_int_lt(params_find(&t.pt, "blocks.0.mixer.out.weight"), 0);
    int *b0 = malloc(2 * 2 * 16 * sizeof(int)), *b1 = malloc(2 * 2 * 16 * sizeof(int));
    inst_forward(&t);
    reformer_buckets(&t.m, 1, 16, b0);
    for (int v = 0; v < 3; v++) {
        MixerStep s = step_of(&t);
        s.seed = 100 + v, s.step = 7 * v, s.training = v != 1;
        t.m.layer = v;
        arena_reset(&t.scratch);
        t.m.spec->ops->forward(&t.m, &s, t.y, t.x);
        reformer_buckets(&t.m, 1, 16, b1);
        ck_assert_int_eq(memcmp(b0, b1, 2 * 2 * 16 * sizeof(int)), 0);
    }
    t.m.layer = 0;
    free(b0), free(b1);
    inst_free(&t);
}
END_TEST

/* One block: the 1×1 Sinkhorn matrix is 1 whatever the sort net says, the sorted block is the block
 * itself, and attending to every key twice is full attention. SortCut of that block likewise. */
START_TEST(test_sinkhorn_with_one_block_equals_full) {
    check_equals_full("sinkhorn", "block=13", NULL, 1, 13, 8, 2, 1e-5);
    check_equals_full("sinkhorn", "block=13,sort_net=mlp,temperature=0.3", NULL, 1, 13, 8, 2, 1e-5);
    check_equals_full("sinkhorn", "block=13,sortcut=1", NULL, 1, 13, 8, 2, 1e-5);
}
END_TEST

/* ---- sinkhorn ---- */

/* Sparse Sinkhorn attention (arXiv 2002.11296, §3) rebuilt in double from the mechanism's
 * parameters, in evaluation (no Gumbel noise): blocks of b keys with padding and the tail zeroed,
 * the sort net on the block sums, R0 = Z/τ, `iterations` rounds of row then column log-sum-exp
 * normalisation, P = exp(R). Sorted slot r of block n has key Σ_l P_nl k_lr, value Σ_l P_nl v_lr
 * and weight ρ_nr = Σ_l P_nl m_lr / Σ_l P_nl (its real share; the slot is left out when 0). A
 * real query of block n attends, in one softmax, to the real keys of its block and the slots of
 * sorted block n (SortCut: the slots of sorted blocks 0 .. n_c − 1). y of real rows only. */
static void sinkhorn_reference(double *y, const Inst *t) {
    const MixerSpec *sp = t->m.spec;
    const int bs = opt_int(&t->opts, sp->opts, sp->n_opts, "block");
    const int iters = opt_int(&t->opts, sp->opts, sp->n_opts, "iterations");
    const double tau = opt_float(&t->opts, sp->opts, sp->n_opts, "temperature");
    const int mlp = opt_enum(&t->opts, sp->opts, sp->n_opts, "sort_net") == 1;
    const int cut = opt_int(&t->opts, sp->opts, sp->n_opts, "sortcut");
    const int B = t->B, L = t->L, D = t->D, H = t->H, Dh = D / H, BL = B * L;
    const int nB = (L + bs - 1) / bs, NBmax = nB, NK = nB * bs; /* max_len = L here */
    const ParamTable *pt = &t->pt;
#define PARAM(name)                                                                                \
    (params_find(pt, name) < 0 ? NULL : t->params + pt->info[params_find(pt, name)].offset)
    const float *w1 = PARAM(mlp ? "blocks.0.mixer.sort.fc1.weight" : "blocks.0.mixer.sort.weight");
    const float *b1 = PARAM(mlp ? "blocks.0.mixer.sort.fc1.bias" : "blocks.0.mixer.sort.bias");
    const float *w2 = PARAM("blocks.0.mixer.sort.fc2.weight");
    const float *b2 = PARAM("blocks.0.mixer.sort.fc2.bias");
    const float *wo = PARAM("blocks.0.mixer.out.weight"), *bo = PARAM("blocks.0.mixer.out.bias");
    float *qkv = malloc((size_t)BL * 3 * D * sizeof(float));
    linear_forward(qkv, t->x, PARAM("blocks.0.mixer.qkv.weight"), PARAM("blocks.0.mixer.qkv.bias"),
                   BL, D, 3 * D);
#undef PARAM
    double *kb = malloc((size_t)NK * Dh * sizeof(double)),
           *vb = malloc((size_t)NK * Dh * sizeof(double));
    double *ks = malloc((size_t)NK * Dh * sizeof(double)),
           *vs = malloc((size_t)NK * Dh * sizeof(double));
    double *bsum = malloc((size_t)nB * Dh * sizeof(double)),
           *hid = malloc((size_t)nB * Dh * sizeof(double));
    double *R = malloc((size_t)nB * nB * sizeof(double)),
           *rho = malloc((size_t)NK * sizeof(double));
    double *att = malloc((size_t)BL * D * sizeof(double)),
           *e = malloc((size_t)2 * NK * sizeof(double));
    int *mk = malloc((size_t)NK * sizeof(int));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            for (int p = 0; p < NK; p++) {
                mk[p] = p < L && (!t->mask || t->mask[(size_t)b * L + p]);
                for (int d = 0; d < Dh; d++) {
                    const float *row = qkv + ((size_t)b * L + p) * 3 * D + h * Dh + d;
                    kb[p * Dh + d] = mk[p] ? row[D] : 0.0;
                    vb[p * Dh + d] = mk[p] ? row[2 * D] : 0.0;
                }
            }
            for (int l = 0; l < nB; l++)
                for (int d = 0; d < Dh; d++) {
                    bsum[l * Dh + d] = 0;
                    for (int r = 0; r < bs; r++) bsum[l * Dh + d] += kb[(l * bs + r) * Dh + d];
                }
            const double *in = bsum;
            if (mlp) { /* hid = relu(bsum·W1 + b1), W1 (Dh, Dh) */
                for (int l = 0; l < nB; l++)
                    for (int c = 0; c < Dh; c++) {
                        double a = b1[c];
                        for (int d = 0; d < Dh; d++) a += bsum[l * Dh + d] * w1[d * Dh + c];
                        hid[l * Dh + c] = a > 0 ? a : 0;
                    }
                in = hid;
            }
            for (int n = 0; n < nB; n++) /* R0 = (in·W + bias)/τ, W (Dh, NBmax) */
                for (int l = 0; l < nB; l++) {
                    double a = mlp ? b2[l] : b1[l];
                    for (int d = 0; d < Dh; d++)
                        a += in[n * Dh + d] * (mlp ? w2 : w1)[d * NBmax + l];
                    R[n * nB + l] = a / tau;
                }
            for (int it = 0; it < 2 * iters; it++) /* rows, then columns */
                for (int a = 0; a < nB; a++) {
                    double mx = -INFINITY, sum = 0;
#define AT(c) R[it % 2 ? (c)*nB + a : a * nB + (c)]
                    for (int c = 0; c < nB; c++) mx = fmax(mx, AT(c));
                    for (int c = 0; c < nB; c++) sum += exp(AT(c) - mx);
                    for (int c = 0; c < nB; c++) AT(c) -= mx + log(sum);
#undef AT
                }
            for (int n = 0; n < nB; n++) {
                double S = 0;
                for (int l = 0; l < nB; l++) S += exp(R[n * nB + l]);
                for (int r = 0; r < bs; r++) {
                    double M = 0;
                    for (int l = 0; l < nB; l++) M += mk[l * bs + r] ? exp(R[n * nB + l]) : 0;
                    rho[n * bs + r] = M / S;
                    for (int d = 0; d < Dh; d++) {
                        double a = 0, c = 0;
                        for (int l = 0; l < nB; l++)
                            a += exp(R[n * nB + l]) * kb[(l * bs + r) * Dh + d],
                                c += exp(R[n * nB + l]) * vb[(l * bs + r) * Dh + d];
                        ks[(n * bs + r) * Dh + d] = a, vs[(n * bs + r) * Dh + d] = c;
                    }
                }
            }
            for (int i = 0; i < L; i++) {
                if (!mk[i]) continue;
                const int n = i / bs;
                const float *q = qkv + ((size_t)b * L + i) * 3 * D + h * Dh;
                double mx = -INFINITY, sum = 0, o[16] = {0};
                /* candidate keys: own block (cut: none), then the sorted slots */
                const int own0 = cut ? 0 : n * bs, nown = cut ? 0 : bs;
                const int s0 = cut ? 0 : n * bs, ns = cut ? XB_MIN(cut, nB) * bs : bs;
                for (int c = 0; c < nown + ns; c++) {
                    const int own = c < nown, p = own ? own0 + c : s0 + c - nown;
                    const double w = own ? mk[p] : rho[p];
                    e[c] = -INFINITY;
                    if (w <= 0) continue;
                    double dot = 0;
                    for (int d = 0; d < Dh; d++) dot += (double)q[d] * (own ? kb : ks)[p * Dh + d];
                    e[c] = dot / sqrt((double)Dh) + log(w);
                    mx = fmax(mx, e[c]);
                }
                for (int c = 0; c < nown + ns; c++) {
                    if (e[c] == -INFINITY) continue;
                    const int own = c < nown, p = own ? own0 + c : s0 + c - nown;
                    const double w = exp(e[c] - mx);
                    sum += w;
                    for (int d = 0; d < Dh; d++) o[d] += w * (own ? vb : vs)[p * Dh + d];
                }
                for (int d = 0; d < Dh; d++) att[((size_t)b * L + i) * D + h * Dh + d] = o[d] / sum;
            }
        }
    memset(y, 0, (size_t)BL * D * sizeof(double));
    for (int i = 0; i < BL; i++) {
        if (t->mask && !t->mask[i]) continue;
        for (int d = 0; d < D; d++) {
            double a = bo ? bo[d] : 0.0;
            for (int c = 0; c < D; c++) a += (double)wo[d * D + c] * att[(size_t)i * D + c];
            y[(size_t)i * D + d] = a;
        }
    }
    free(qkv), free(kb), free(vb), free(ks), free(vs), free(bsum), free(hid), free(R), free(rho);
    free(att), free(e), free(mk);
}

/* The padded blocks' zero keys take no softmax mass: a sorted key counts for the real share of its
 * P-mixture, and one with no real member (here: slots past the real length of a row shorter than
 * one block, and the zero tail) for nothing. */
START_TEST(test_sinkhorn_sorted_keys_count_for_the_real_share_of_their_mixture) {
    static const struct {
        const char *opts;
        int B, L, D, H, pad1;
    } cases[] = {
        {"block=3", 2, 13, 8, 2, 5},
        {"block=4,sort_net=mlp,iterations=3,bias=true", 2, 12, 6, 3, 5},
        {"block=3,sortcut=2,temperature=0.5", 2, 14, 8, 2, 6},
        {"block=5,iterations=1", 2, 11, 8, 2, 3},
        {"block=5", 2, 12, 8, 2, 9},            /* 3 real tokens: one partial block */
        {"block=4,sortcut=1", 2, 13, 8, 2, 10}, /* sorted slots past the real length */
        {"block=300", 2, 600, 8, 2, 250},       /* keys over three tiles of the kernel */
    };
    for (size_t v = 0; v < sizeof cases / sizeof *cases; v++) {
        const int pad[2] = {0, cases[v].pad1}, B = cases[v].B, L = cases[v].L, D = cases[v].D;
        Inst t;
        inst_init(&t, "sinkhorn", cases[v].opts, B, L, D, cases[v].H, pad, 23);
        t.training = 0;
        inst_forward(&t);
        double *ref = malloc((size_t)B * L * D * sizeof(double));
        sinkhorn_reference(ref, &t);
        const double worst = real_rows_diff(&t, t.y, ref);
        ck_assert_msg(worst < 2e-5, "sinkhorn(%s) differs from the reference by %g", cases[v].opts,
                      worst);
        free(ref);
        inst_free(&t);
    }
}
END_TEST

/* The spec's padding_dependence: padding reaches real outputs only through the number of blocks;
 * a padded row whose cut to its real length has as many blocks gives the same outputs. */
START_TEST(test_sinkhorn_padded_row_equals_its_cut_with_as_many_blocks) {
    static const struct {
        const char *opts;
        int L, p;
    } cases[] = {
        {"block=3", 14, 1},
        {"block=4,sort_net=mlp,iterations=3,bias=true", 12, 3},
        {"block=3,sortcut=2,temperature=0.5", 15, 2},
    };
    const int D = 8, H = 2;
    for (size_t v = 0; v < sizeof cases / sizeof *cases; v++) {
        const int L = cases[v].L, p = cases[v].p, Lr = L - p, pad[2] = {0, p};
        Inst a, t;
        inst_init(&a, "sinkhorn", cases[v].opts, 2, L, D, H, pad, 41);
        inst_init_at(&t, "sinkhorn", cases[v].opts, 1, Lr, L, D, H, NULL, 41);
        memcpy(t.x, a.x + (size_t)L * D, (size_t)Lr * D * sizeof(float));
        a.training = t.training = 0;
        inst_forward(&a);
        inst_forward(&t);
        double worst = 0;
        for (size_t k = 0; k < (size_t)Lr * D; k++)
            worst = fmax(worst, fabs((double)a.y[(size_t)L * D + k] - t.y[k]) / (1 + fabs(t.y[k])));
        ck_assert_msg(worst <= 1e-5, "sinkhorn(%s): padding changes real outputs by %g",
                      cases[v].opts, worst);
        inst_free(&a);
        inst_free(&t);
    }
}
END_TEST

/* MixerStep.frozen keeps the mlp sort net's ReLU on the active set of the previous forward: after
 * fc1's bias is pushed far below zero, a fresh ReLU zeroes every unit, the frozen one does not. */
START_TEST(test_sinkhorn_mlp_sort_net_keeps_its_relu_active_set_when_frozen) {
    const int B = 2, L = 12, D = 8, H = 2, pad[2] = {0, 2};
    Inst t;
    inst_init(&t, "sinkhorn", "block=3,sort_net=mlp,noise=false", B, L, D, H, pad, 5);
    inst_forward(&t);
    const ParamInfo *pb = &t.pt.info[params_find(&t.pt, "blocks.0.mixer.sort.fc1.bias")];
    for (size_t k = 0; k < pb->size; k++) t.params[pb->offset + k] -= 100.0f;
    const size_t n = (size_t)B * L * D;
    float *frozen = malloc(n * sizeof(float));
    t.frozen = 1;
    inst_forward(&t);
    memcpy(frozen, t.y, n * sizeof(float));
    t.frozen = 0;
    inst_forward(&t);
    double diff = 0;
    for (size_t k = 0; k < n; k++) diff = fmax(diff, fabs((double)frozen[k] - t.y[k]));
    ck_assert_msg(diff > 1e-4, "the frozen forward recomputed the ReLU's active set");
    free(frozen);
    inst_free(&t);
}
END_TEST

/* ---- routing ---- */

/* Routing heads attend with the layer-normalised queries and keys (the authors' code), so their
 * degenerate case is dense attention on those, not `full`: q̂, k̂ = LayerNorm without scale or
 * bias per head, computed here with the naive kernel, and divided by one pick + 1e-2. The last
 * `local` heads, whose one block is then the whole sequence, attend with the raw q and k. */
static void routing_reference(float *y, const Inst *t, int local) {
    const int B = t->B, L = t->L, D = t->D, H = t->H, Dh = D / H, BL = B * L;
    const ParamTable *pt = &t->pt;
    const float *wqkv = t->params + pt->info[params_find(pt, "blocks.0.mixer.qkv.weight")].offset;
    const int ib = params_find(pt, "blocks.0.mixer.qkv.bias");
    const float *wo = t->params + pt->info[params_find(pt, "blocks.0.mixer.out.weight")].offset;
    const int ob = params_find(pt, "blocks.0.mixer.out.bias");
    float *qkv = malloc((size_t)BL * 3 * D * sizeof(float));
    float *qk = malloc((size_t)BL * 2 * D * sizeof(float));
    const int hr = H - local;
    float *mean = malloc((size_t)BL * 2 * H * sizeof(float)),
          *rstd = malloc((size_t)BL * 2 * H * sizeof(float));
    float *o = malloc((size_t)BL * D * sizeof(float)),
          *lse = malloc((size_t)B * H * L * sizeof(float));
    linear_forward(qkv, t->x, wqkv, ib < 0 ? NULL : t->params + pt->info[ib].offset, BL, D, 3 * D);
    for (int r = 0; r < BL; r++)
        memcpy(qk + (size_t)r * 2 * D, qkv + (size_t)r * 3 * D, 2 * D * sizeof(float));
    layernorm_forward(qk, mean, rstd, qk, NULL, NULL, BL * 2 * H, Dh);
    for (int r = 0; r < BL; r++)
        for (int u = 0; u < 2; u++) /* routing heads' q̂ and k̂ */
            memcpy(qkv + (size_t)r * 3 * D + u * D, qk + (size_t)r * 2 * D + u * D,
                   (size_t)hr * Dh * sizeof(float));
    AttnShape s = attn_shape(B, H, L, L, Dh, 3 * D, 3 * D, 3 * D, D);
    attn_forward_naive(o, lse, qkv, qkv + D, qkv + 2 * D, t->mask, &s);
    for (int r = 0; r < BL; r++) /* one pick: count + 1e-2, in routing heads */
        for (int i = 0; i < hr * Dh; i++) o[(size_t)r * D + i] /= 1.0f + 1e-2f;
    linear_forward(y, o, wo, ob < 0 ? NULL : t->params + pt->info[ob].offset, BL, D, D);
    free(qkv), free(qk), free(mean), free(rstd), free(o), free(lse);
}

START_TEST(test_routing_one_cluster_covering_the_sequence_equals_attention_on_normalised_qk) {
    const int pad[2] = {0, 4};
    const char *opts[3] = {"clusters=1,local_heads=0",
                           "clusters=1,window=13,bias=true,local_heads=0",
                           "clusters=1"}; /* the last: one routing head and one local head */
    for (int v = 0; v < 3; v++) {
        Inst t;
        inst_init(&t, "routing", opts[v], 2, 13, 8, 2, pad, 9);
        inst_forward(&t);
        float *ref = malloc((size_t)2 * 13 * 8 * sizeof(float));
        routing_reference(ref, &t, v == 2);
        for (int r = 0; r < 2 * 13; r++)
            if (t.mask[r]) /* padding queries are never picked: their rows are the bias alone */
                for (int d = 0; d < 8; d++) {
                    const float a = t.y[r * 8 + d], b = ref[r * 8 + d];
                    ck_assert_msg(fabsf(a - b) <= 1e-5f * (1 + fabsf(b)), "%s: row %d: %g vs %g",
                                  opts[v], r, a, b);
                }
        free(ref);
        inst_free(&t);
    }
}
END_TEST

/* Normalised queries (t = 0) or keys (1) of row r, head h, as the reference computes them. */
static void routing_normalised(float *out, const Inst *t) {
    const int BL = t->B * t->L, D = t->D;
    const ParamTable *pt = &t->pt;
    const int ib = params_find(pt, "blocks.0.mixer.qkv.bias");
    float *qkv = malloc((size_t)BL * 3 * D * sizeof(float));
    float *mean = malloc((size_t)BL * 2 * t->H * sizeof(float)),
          *rstd = malloc((size_t)BL * 2 * t->H * sizeof(float));
    linear_forward(qkv, t->x,
                   t->params + pt->info[params_find(pt, "blocks.0.mixer.qkv.weight")].offset,
                   ib < 0 ? NULL : t->params + pt->info[ib].offset, BL, D, 3 * D);
    for (int r = 0; r < BL; r++)
        memcpy(out + (size_t)r * 2 * D, qkv + (size_t)r * 3 * D, 2 * D * sizeof(float));
    layernorm_forward(out, mean, rstd, out, NULL, NULL, BL * 2 * t->H, D / t->H);
    free(qkv), free(mean), free(rstd);
}

START_TEST(test_routing_ema_moves_centroids_by_the_decay_formula_only_in_training) {
    const int B = 2, L = 16, D = 8, H = 2, Dh = D / H, k = 4, pad[2] = {0, 5};
    const float lam = 0.9f;
    Inst t;
    inst_init(&t, "routing", "decay=0.9,local_heads=0", B, L, D, H, pad, 12);
    const ParamTable *pt = &t.pt;
    const ParamInfo *pm = &pt->info[params_find(pt, "blocks.0.mixer.centroids")];
    const ParamInfo *ps = &pt->info[params_find(pt, "blocks.0.mixer.ema_sum")];
    const ParamInfo *pc = &pt->info[params_find(pt, "blocks.0.mixer.ema_count")];
    ck_assert(pm->buffer && ps->buffer && pc->buffer);
    ck_assert_int_eq((int)pm->size, H * k * Dh);
    float *mu = t.params + pm->offset, *sum = t.params + ps->offset, *cnt = t.params + pc->offset;
    float mu0[H * k * Dh], sum0[H * k * Dh], cnt0[H * k];
    memcpy(mu0, mu, sizeof mu0), memcpy(sum0, sum, sizeof sum0), memcpy(cnt0, cnt, sizeof cnt0);
    /* expected: each real query and key counts for its nearest centroid by dot product */
    float *qk = malloc((size_t)B * L * 2 * D * sizeof(float));
    routing_normalised(qk, &t);
    double n[H][k], s[H][k][Dh];
    memset(n, 0, sizeof n), memset(s, 0, sizeof s);
    for (int r = 0; r < B * L; r++) {
        if (!t.mask[r]) continue;
        for (int tt = 0; tt < 2; tt++)
            for (int h = 0; h < H; h++) {
                const float *x = qk + (size_t)r * 2 * D + tt * D + h * Dh;
                int best = 0;
                double bv = -INFINITY;
                for (int c = 0; c < k; c++) {
                    double dot = 0;
                    for (int d = 0; d < Dh; d++) dot += (double)x[d] * mu0[(h * k + c) * Dh + d];
                    if (dot > bv) bv = dot, best = c;
                }
                n[h][best] += 1;
                for (int d = 0; d < Dh; d++) s[h][best][d] += x[d];
            }
    }
    inst_forward(&t);
    inst_backward(&t); /* training, not frozen: one EMA step */
    for (int h = 0; h < H; h++) {
        double total = 0, ec[k];
        for (int c = 0; c < k; c++) total += ec[c] = lam * cnt0[h * k + c] + (1 - lam) * n[h][c];
        for (int c = 0; c < k; c++) {
            ck_assert_msg(fabs(cnt[h * k + c] - ec[c]) <= 1e-5 * (1 + ec[c]), "count %d %d", h, c);
            const double sm = (ec[c] + 1e-5) / (total + k * 1e-5) * total;
            double before = 0, after = 0;
            for (int d = 0; d < Dh; d++) {
                const int i = (h * k + c) * Dh + d;
                const double es = lam * sum0[i] + (1 - lam) * s[h][c][d];
                ck_assert_msg(fabs(sum[i] - es) <= 1e-5 * (1 + fabs(es)), "sum %d %d %d", h, c, d);
                ck_assert_msg(fabs(mu[i] - es / sm) <= 1e-4 * (1 + fabs(es / sm)),
                              "centroid %d %d %d: %g vs %g", h, c, d, mu[i], es / sm);
                if (n[h][c] > 0) {
                    const double m = s[h][c][d] / n[h][c];
                    before += (mu0[i] - m) * (mu0[i] - m), after += (mu[i] - m) * (mu[i] - m);
                }
            }
            if (n[h][c] > 0)
                ck_assert_msg(after < before, "centroid %d %d did not move closer", h, c);
        }
    }
    /* evaluation, and frozen training steps, leave the buffers alone */
    const size_t nb = pt->total * sizeof(float);
    float *snap = malloc(nb);
    memcpy(snap, t.params, nb);
    for (int mode = 0; mode < 2; mode++) {
        MixerStep st = step_of(&t);
        st.training = mode == 0 ? 0 : 1;
        st.frozen = mode == 0 ? 0 : 1;
        arena_reset(&t.scratch);
        t.m.spec->ops->forward(&t.m, &st, t.y, t.x);
        arena_reset(&t.scratch);
        t.m.spec->ops->backward(&t.m, &st, t.dx, t.dy, t.x);
        ck_assert_int_eq(memcmp(snap, t.params, nb), 0);
    }
    free(snap);
    free(qk);
    inst_free(&t);
}
END_TEST

/* The commitment loss of forward, for gradcheck (out[0]). */
static float g_aux_out;
static void routing_aux_forward(void *p) {
    Inst *t = p;
    MixerStep s = step_of(t);
    double aux = 0;
    s.aux_loss = &aux;
    arena_reset(&t->scratch);
    t->m.spec->ops->forward(&t->m, &s, t->y, t->x);
    g_aux_out = (float)aux;
}

START_TEST(test_routing_commitment_loss_gradient_matches_finite_differences) {
    const int B = 2, L = 12, D = 8, H = 2, pad[2] = {0, 3};
    Inst t;
    inst_init(&t, "routing", "commitment=1,bias=true", B, L, D, H, pad, 21);
    routing_aux_forward(&t); /* routes; the checks below keep these clusters */
    ck_assert(g_aux_out > 0);
    t.frozen = 1;
    routing_aux_forward(&t);
    MixerStep s = step_of(&t);
    double aux = 0;
    s.aux_loss = &aux;
    const size_t n = (size_t)B * L * D;
    memset(t.dy, 0, n * sizeof(float)); /* only the commitment term */
    memset(t.dx, 0, n * sizeof(float));
    memset(t.grads, 0, t.pt.total * sizeof(float));
    arena_reset(&t.scratch);
    t.m.spec->ops->backward(&t.m, &s, t.dx, t.dy, t.x);
    const float one = 1.0f;
    GcResult r;
    GC_ASSERT(gradcheck(routing_aux_forward, &t, t.x, n, t.dx, &g_aux_out, 1, &one, 1e-2f, 1e-4,
                        2e-2, 200, &r),
              "routing commitment dx", &r);
    const char *names[2] = {"blocks.0.mixer.qkv.weight", "blocks.0.mixer.qkv.bias"};
    for (int i = 0; i < 2; i++) {
        const ParamInfo *p = &t.pt.info[params_find(&t.pt, names[i])];
        GC_ASSERT(gradcheck(routing_aux_forward, &t, t.params + p->offset, p->size,
                            t.grads + p->offset, &g_aux_out, 1, &one, 1e-2f, 1e-4, 2e-2, 80, &r),
                  names[i], &r);
    }
    inst_free(&t);
}
END_TEST

START_TEST(test_routing_padding_cannot_change_the_clusters_of_real_tokens) {
    /* unlike the generic check, routing is recomputed after the padding changes */
    const int B = 2, L = 20, D = 8, H = 2, pad[2] = {3, 7};
    Inst t;
    inst_init(&t, "routing", "clusters=4", B, L, D, H, pad, 17);
    inst_forward(&t);
    const size_t n = (size_t)B * L * D;
    float *y0 = malloc(n * sizeof(float));
    memcpy(y0, t.y, n * sizeof(float));
    for (int r = 0; r < B * L; r++)
        if (!t.mask[r])
            for (int d = 0; d < D; d++) t.x[r * D + d] = 5.0f * t.x[r * D + d] + 3.0f;
    inst_forward(&t);
    for (int r = 0; r < B * L; r++)
        if (t.mask[r])
            for (int d = 0; d < D; d++)
                ck_assert_msg(fabsf(t.y[r * D + d] - y0[r * D + d]) <=
                                  1e-5f * (1 + fabsf(y0[r * D + d])),
                              "padding changed row %d", r);
    free(y0);
    inst_free(&t);
}
END_TEST

START_TEST(test_routing_same_bits_for_any_thread_count) {
    const int B = 2, L = 100, D = 8, H = 2, pad[2] = {0, 17};
    const int nt[2] = {1, XB_MAX(2, omp_get_max_threads())};
    const int saved = omp_get_max_threads();
    Inst t[2];
    for (int v = 0; v < 2; v++) {
        omp_set_num_threads(nt[v]); /* before the plan: scratch is sized per thread */
        inst_init(&t[v], "routing", NULL, B, L, D, H, pad, 4);
        inst_forward(&t[v]);
        inst_backward(&t[v]); /* gradients and the EMA step */
        inst_forward(&t[v]);
        omp_set_num_threads(saved);
    }
    const size_t n = (size_t)B * L * D;
    ck_assert_int_eq(memcmp(t[0].y, t[1].y, n * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(t[0].dx, t[1].dx, n * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(t[0].grads, t[1].grads, t[0].pt.total * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(t[0].params, t[1].params, t[0].pt.total * sizeof(float)), 0);
    inst_free(&t[0]);
    inst_free(&t[1]);
}
END_TEST

START_TEST(test_routing_check_rejects_more_clusters_or_a_longer_window_than_max_len) {
    const MixerSpec *spec = mixer_get(mixer_find("routing"));
    /* more clusters or a longer window than max_len; no routing head left; local blocks that
     * leave positions uncovered (3 clusters of 3 < 10) */
    const char *bad[4] = {"clusters=11", "window=11", "local_heads=2", "clusters=3,window=3"};
    const char *key[4] = {"model.mixer.clusters", "model.mixer.window", "model.mixer.local_heads",
                          "model.mixer.window"};
    for (int v = 0; v < 4; v++) {
        OptValues o;
        set_opts(&o, spec, bad[v]);
        XbError err;
        xb_error_clear(&err);
        ck_assert_int_eq(spec->ops->check(&o, 8, 2, 10, &err), -1);
        ck_assert_str_eq(err.key, key[v]);
        ck_assert_ptr_nonnull(strstr(err.msg, "valid"));
    }
    OptValues o;
    set_opts(&o, spec, "clusters=10,window=10");
    XbError err;
    xb_error_clear(&err);
    ck_assert_int_eq(spec->ops->check(&o, 8, 2, 10, &err), 0);
    set_opts(&o, spec, "clusters=3,window=3,local_heads=0"); /* no local blocks to cover L */
    ck_assert_int_eq(spec->ops->check(&o, 8, 2, 10, &err), 0);
}
END_TEST

/* A local head attends, with its raw query and key, to the real positions of its block of w =
 * ceil(L / clusters) positions, and to nothing else; its output is not divided by a pick count.
 * The routing head's channels are cut off at the output projection, so y is the local head's. */
START_TEST(test_routing_local_heads_attend_within_blocks_of_the_window) {
    const int B = 2, L = 13, D = 8, H = 2, Dh = D / H, w = 5, pad[2] = {0, 4}; /* 3 clusters */
    Inst t;
    inst_init(&t, "routing", "clusters=3,local_heads=1,bias=true", B, L, D, H, pad, 31);
    const ParamTable *pt = &t.pt;
    ck_assert_int_eq((int)pt->info[params_find(pt, "blocks.0.mixer.centroids")].size, 1 * 3 * Dh);
    float *wo = t.params + pt->info[params_find(pt, "blocks.0.mixer.out.weight")].offset;
    const float *bo = t.params + pt->info[params_find(pt, "blocks.0.mixer.out.bias")].offset;
    for (int o = 0; o < D; o++) /* (out, in): drop the routing head's inputs 0 .. Dh − 1 */
        for (int i = 0; i < Dh; i++) wo[o * D + i] = 0.0f;
    inst_forward(&t);
    float *qkv = malloc((size_t)B * L * 3 * D * sizeof(float));
    linear_forward(
        qkv, t.x, t.params + pt->info[params_find(pt, "blocks.0.mixer.qkv.weight")].offset,
        t.params + pt->info[params_find(pt, "blocks.0.mixer.qkv.bias")].offset, B * L, D, 3 * D);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L; i++) {
            if (!t.mask[b * L + i]) continue;
            const float *q = qkv + ((size_t)b * L + i) * 3 * D + Dh; /* head 1 */
            double p[5], z = 0, mx = -INFINITY, o[4] = {0, 0, 0, 0};
            const int j0 = i / w * w;
            for (int j = j0; j < j0 + w; j++) {
                p[j - j0] = -INFINITY;
                if (j >= L || !t.mask[b * L + j]) continue;
                const float *k = qkv + ((size_t)b * L + j) * 3 * D + D + Dh;
                double dot = 0;
                for (int d = 0; d < Dh; d++) dot += (double)q[d] * k[d];
                p[j - j0] = dot / sqrt((double)Dh);
                mx = fmax(mx, p[j - j0]);
            }
            for (int j = j0; j < j0 + w; j++) {
                if (p[j - j0] == -INFINITY) continue;
                const double e = exp(p[j - j0] - mx);
                z += e;
                for (int d = 0; d < Dh; d++)
                    o[d] += e * qkv[((size_t)b * L + j) * 3 * D + 2 * D + Dh + d];
            }
            for (int c = 0; c < D; c++) {
                double ref = bo[c];
                for (int d = 0; d < Dh; d++) ref += wo[c * D + Dh + d] * o[d] / z;
                const float a = t.y[((size_t)b * L + i) * D + c];
                ck_assert_msg(fabs(a - ref) <= 1e-5 * (1 + fabs(ref)),
                              "b %d row %d col %d: %g vs %g", b, i, c, a, ref);
            }
        }
    free(qkv);
    inst_free(&t);
}
END_TEST

static Suite *mixers_learned_suite(void) {
    Suite *s = suite_create("mixers_learned");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_reformer_with_one_bucket_equals_dense_shared_qk_attention);
    tcase_add_test(tc, test_reformer_equals_naive_lsh_attention_of_its_buckets);
    tcase_add_test(tc, test_reformer_pair_in_another_bucket_of_the_same_chunk_gets_no_weight);
    tcase_add_test(tc, test_reformer_duplicate_pairs_across_rounds_count_once);
    tcase_add_test(tc, test_reformer_padding_changes_real_outputs_only_through_the_padded_length);
    tcase_add_test(tc, test_reformer_lra_is_lras_attention_and_rejects_what_it_lacks);
    tcase_add_test(tc, test_sinkhorn_with_one_block_equals_full);
    tcase_add_test(tc, test_sinkhorn_sorted_keys_count_for_the_real_share_of_their_mixture);
    tcase_add_test(tc, test_sinkhorn_padded_row_equals_its_cut_with_as_many_blocks);
    tcase_add_test(tc, test_sinkhorn_mlp_sort_net_keeps_its_relu_active_set_when_frozen);
    tcase_add_test(
        tc, test_routing_one_cluster_covering_the_sequence_equals_attention_on_normalised_qk);
    tcase_add_test(tc, test_routing_ema_moves_centroids_by_the_decay_formula_only_in_training);
    tcase_add_test(tc, test_routing_commitment_loss_gradient_matches_finite_differences);
    tcase_add_test(tc, test_routing_padding_cannot_change_the_clusters_of_real_tokens);
    tcase_add_test(tc, test_routing_same_bits_for_any_thread_count);
    tcase_add_test(tc, test_routing_check_rejects_more_clusters_or_a_longer_window_than_max_len);
    tcase_add_test(tc, test_routing_local_heads_attend_within_blocks_of_the_window);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(mixers_learned_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
