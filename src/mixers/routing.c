/* routing: Routing Transformer (Roy et al., arXiv 2003.05997, §4), content-based sparse attention
 * by online k-means. In each routing head (the first H − local_heads heads, see below), queries
 * and keys are layer-normalised without scale or bias (the authors' code,
 * google-research/routing_transformer utils.py, normalises them and then attends with the
 * normalised q and k; keys are not shared with queries in the encoder). Each of the k centroids μ
 * of a routing head (routing heads × k × Dh, a buffer) takes its top-w queries and, separately, its
 * top-w keys by dot product (balanced clusters, w = ⌈L/k⌉), in position order; the w queries of a
 * cluster attend to its w keys. Results go back to their positions divided by (count + 1e-2), count
 * the number of clusters that picked the query, as in the authors' scatter_cluster_items (a query
 * no cluster picked gets 0). Padding tokens are never picked and padded key slots are masked.
 *
 * Clustering has no gradient. The centroids move only by the exponential moving average of the
 * authors' online_kmeans, over the real queries and keys nearest (by dot product) to each
 * centroid: count ← λ·count + (1−λ)·n_c, sum ← λ·sum + (1−λ)·Σx, μ = sum / smoothed count
 * (Laplace smoothing with ε = 1e-5). The update is applied at the end of backward, which runs
 * once per training step, so two forwards in a row see the same centroids and give the same bits;
 * never in evaluation or when MixerStep.frozen is set. Differences from the authors' code: queries
 * and keys feed one update per step (the authors issue one per cluster_items call); the EMA count
 * starts at 1 and the EMA sum at the initial centroid, so μ starts at its initial value (with the
 * authors' zero count the first update divides by (1−λ)·n_c); the initial centroids are N(0, 1)
 * (the authors layer-normalise that draw, which only fixes its norm near √Dh).
 *
 * The commitment loss β·mean‖x − sg(μ(x))‖² over the normalised queries plus the same over the
 * keys (reduce_mean over real tokens, heads and channels, as the authors' e_loss) is added to
 * MixerStep.aux_loss when that is non-NULL, and its gradient in backward.
 *
 * Local heads. The authors never run routing heads alone: every model of theirs
 * (sparse_transformer.py, e.g. enwik8_local_cluster8k: 4 local + 4 routing heads) gives the other
 * heads local attention, which is what lets every query see something. Here the last `local_heads`
 * heads (the authors' order: routing heads first) attend within fixed blocks of w consecutive
 * positions, with their raw (not normalised) queries and keys and no pick count, as the authors'
 * local heads do; the authors' local blocks also see a flange of neighbouring positions, these see
 * their own block only. The default, half of the heads, is the authors' usual split; local_heads =
 * 0 gives routing heads only, whose unpicked queries get nothing, e.g. a CLS token that no centroid
 * picks.
 *
 * Cost: scores k·L·Dh per routing head and attention k·w²·Dh per head, O(L·√L) with k = √L. The
 * clusters and blocks run through the fused attention kernel as a batch of B·H·k dense w × w
 * problems. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "core/xassert.h"
#include "kernels/gather.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "mixers/attn_mixer.h"

static const OptSpec routing_opts[] = {
    MOPT_INT("clusters", 0, 0, 1048576,
             "centroids per head k; 0: round(sqrt(model.max_len)) (paper: k = sqrt(n))"),
    MOPT_INT("window", 0, 0, 1048576,
             "tokens per cluster w; 0: ceil(L / k) (paper: balanced clusters of n / k)"),
    MOPT_FLOAT("decay", 0.999, 0, 1, "EMA decay of the centroids (authors' online_kmeans: 0.999)"),
    MOPT_FLOAT("commitment", 1e-4, 0, 1e3,
               "weight of the commitment loss on the normalised q/k (paper: 1e-4)"),
    MOPT_INT("local_heads", -1, -1, 1024,
             "heads that attend within fixed blocks of w positions instead of clusters; -1: half "
             "of the heads, rounded down (the authors' split); 0: routing heads only"),
    MOPT_BOOL("bias", 0, "biases in the Q/K/V and output projections"),
};
#define NOPTS MOPT_COUNT(routing_opts)

#define ROUTING_EMA_EPS 1e-5f   /* Laplace smoothing of the EMA counts (authors' epsilon) */
#define ROUTING_COUNT_EPS 1e-2f /* added to the pick count before averaging (authors') */

typedef struct RoutingState {
    AttnMixer am; /* first: projections; am.qkv (B, L, 3D) and am.att (B, L, D) saved */
    int k, window;
    int hr; /* routing heads 0 .. hr−1; heads hr .. H−1 are local */
    float decay, beta;
    int p_mu, p_sum, p_count; /* buffers: centroids and EMA sums (hr, k, Dh), EMA counts (hr, k) */
    float *qkn;               /* (B, L, 2·hr·Dh) saved: routing heads' normalised q | k */
    float *ln_mean, *ln_rstd; /* (B, L, 2·hr) saved */
    float *qg, *kg, *vg, *og; /* (B, H, k, w, Dh) saved: gathered q, k, v; attention output */
    float *lse;               /* (B, H, k, w) saved */
    float *qscale;            /* (B, H, L) saved: 1 / (picks + 1e-2) */
    int *qidx, *kidx;         /* (B, H, k, w) saved: positions each centroid picked, -1 empty */
    unsigned char *kvalid;    /* (B, H, k, w) saved: key slot holds a real key */
    int *near;                /* (2, B, hr, L) saved: nearest centroid of each query, key; -1 pad */
} RoutingState;

/* A candidate token of one centroid: its score and position. */
typedef struct Cand {
    float s;
    int i;
} Cand;

static int routing_k(const OptValues *o, int max_len) {
    const int k = opt_int(o, routing_opts, NOPTS, "clusters");
    return k > 0 ? k : XB_MAX(1, (int)lround(sqrt((double)max_len)));
}

/* Local heads of H heads. */
static int routing_local_heads(const OptValues *o, int H) {
    const int lh = opt_int(o, routing_opts, NOPTS, "local_heads");
    return lh < 0 ? H / 2 : lh;
}

/* Tokens per cluster (and per local block) at length L. */
static int routing_w(const RoutingState *st, int L) {
    const int w = st->window > 0 ? st->window : (L + st->k - 1) / st->k;
    return XB_MAX(1, XB_MIN(w, L));
}

static int routing_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D;
    const int w = opt_int(opts, routing_opts, NOPTS, "window");
    const int lh = routing_local_heads(opts, H);
    if (lh >= H) {
        return mixer_opt_error(
            err, "local_heads",
            "%d local heads of model.heads = %d leave no routing head (valid: -1 for half "
            "the heads, or 0 to %d)",
            lh, H, H - 1);
    }
    if (mixer_check_len(opts, routing_opts, NOPTS, "clusters", max_len,
                        "%d clusters for model.max_len = %d (valid: 0 for round(sqrt(max_len)), "
                        "or 1 to %d)",
                        err) ||
        mixer_check_len(opts, routing_opts, NOPTS, "window", max_len,
                        "%d is longer than model.max_len = %d (valid: 0 for ceil(L / clusters), "
                        "or 1 to %d)",
                        err))
        return -1;
    const int kk = routing_k(opts, max_len);
    if (lh > 0 && w > 0 && (long)kk * w < max_len) {
        return mixer_opt_error(
            err, "window",
            "%d clusters of %d positions leave local heads' blocks short of model.max_len = "
            "%d (valid: 0 for ceil(L / clusters), %d to %d, or local_heads = 0)",
            kk, w, max_len, (max_len + kk - 1) / kk, max_len);
    }
    return 0;
}

static void routing_create(Mixer *m, ParamTable *pt) {
    RoutingState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, 0, opt_bool(m->opts, routing_opts, NOPTS, "bias"));
    st->k = routing_k(m->opts, m->max_len);
    st->window = opt_int(m->opts, routing_opts, NOPTS, "window");
    st->decay = (float)opt_float(m->opts, routing_opts, NOPTS, "decay");
    st->beta = (float)opt_float(m->opts, routing_opts, NOPTS, "commitment");
    st->hr = m->H - routing_local_heads(m->opts, m->H);
    char name[XB_PARAM_NAME];
    const int shape[3] = {st->hr, st->k, m->D / m->H};
    snprintf(name, sizeof name, "%s.centroids", m->prefix);
    st->p_mu = params_add_buffer(pt, name, 3, shape, INIT_NORMAL, 1.0f);
    snprintf(name, sizeof name, "%s.ema_sum", m->prefix);
    st->p_sum = params_add_copy(pt, name, st->p_mu, 0);
    pt->info[st->p_sum].buffer = 1;
    snprintf(name, sizeof name, "%s.ema_count", m->prefix);
    st->p_count = params_add_buffer(pt, name, 2, shape, INIT_ONES, 0.0f);
}

/* The clusters as a batch of B·H·k dense problems of w queries and w keys. */
static AttnShape cluster_shape(const Mixer *m, int B, int w) {
    const RoutingState *st = m->state;
    const int Dh = m->D / m->H;
    return attn_shape(B * m->H * st->k, 1, w, w, Dh, Dh, Dh, Dh, Dh);
}

/* Scratch of forward (which = 0) or backward (1), in the order the calls take it; NULL pointers
 * when measuring. */
typedef struct FwdScratch {
    float *scores; /* (2, B, hr, k, L) */
    float *best;   /* (2, B, hr, L) */
    Cand *cand;    /* (threads, L) */
    int *picks;    /* (B, H, L) */
} FwdScratch;

typedef struct BwdScratch {
    float *datt; /* (B, L, D) */
    float *dog;  /* (B, H, k, w, Dh) */
    float *dqg, *dkg, *dvg;
    float *dqkn;         /* (B, L, 2·hr·Dh) */
    float *dqkv;         /* (B, L, 3D) */
    float *raw, *draw;   /* (B, L, 2·hr·Dh) */
    double *sum, *count; /* (hr, k, Dh), (hr, k) */
} BwdScratch;

static FwdScratch carve_fwd(const Mixer *m, Arena *a, int B, int L) {
    const RoutingState *st = m->state;
    FwdScratch f;
    const size_t BHL = (size_t)B * m->H * L, BHrL = (size_t)B * st->hr * L;
    f.scores = arena_alloc(a, 2 * BHrL * st->k * sizeof(float));
    f.best = arena_alloc(a, 2 * BHrL * sizeof(float));
    f.cand = arena_alloc(a, (size_t)omp_get_max_threads() * L * sizeof(Cand));
    f.picks = arena_alloc(a, BHL * sizeof(int));
    return f;
}

static BwdScratch carve_bwd(const Mixer *m, Arena *a, int B, int L) {
    const RoutingState *st = m->state;
    const int D = m->D, w = routing_w(st, L), Dr = st->hr * (D / m->H);
    const size_t BL = (size_t)B * L, G = (size_t)B * m->H * st->k * w * (D / m->H);
    BwdScratch b;
    b.datt = arena_floats(a, BL * D);
    b.dog = arena_floats(a, G);
    b.dqg = arena_floats(a, G);
    b.dkg = arena_floats(a, G);
    b.dvg = arena_floats(a, G);
    b.dqkn = arena_floats(a, BL * 2 * Dr);
    b.dqkv = arena_floats(a, BL * 3 * D);
    b.raw = arena_floats(a, BL * 2 * Dr);
    b.draw = arena_floats(a, BL * 2 * Dr);
    b.sum = arena_alloc(a, (size_t)st->k * Dr * sizeof(double));
    b.count = arena_alloc(a, (size_t)st->hr * st->k * sizeof(double));
    return b;
}

static void routing_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    RoutingState *st = m->state;
    const int D = m->D, H = m->H, w = routing_w(st, L), hr = st->hr;
    const size_t BL = (size_t)B * L, S = (size_t)B * H * st->k * w, G = S * (D / H);
    st->am.qkv = arena_floats(acts, BL * 3 * D);
    st->am.att = arena_floats(acts, BL * D);
    st->qkn = arena_floats(acts, BL * 2 * hr * (D / H));
    st->ln_mean = arena_floats(acts, BL * 2 * hr);
    st->ln_rstd = arena_floats(acts, BL * 2 * hr);
    st->qg = arena_floats(acts, G);
    st->kg = arena_floats(acts, G);
    st->vg = arena_floats(acts, G);
    st->og = arena_floats(acts, G);
    st->lse = arena_floats(acts, S);
    st->qscale = arena_floats(acts, BL * H);
    st->qidx = arena_alloc(acts, S * sizeof(int));
    st->kidx = arena_alloc(acts, S * sizeof(int));
    st->kvalid = arena_alloc(acts, S);
    st->near = arena_alloc(acts, 2 * BL * hr * sizeof(int));
    /* forward and backward take their scratch in turn; the attention kernel's tiles on top */
    AttnShape sh = cluster_shape(m, B, w);
    const size_t attn = attn_scratch_floats(&sh, omp_get_max_threads()) * sizeof(float);
    const size_t mark = arena_mark(scratch);
    carve_fwd(m, scratch, B, L);
    arena_alloc(scratch, attn);
    arena_reset_to(scratch, mark);
    carve_bwd(m, scratch, B, L);
    arena_alloc(scratch, attn);
    arena_reset_to(scratch, mark);
}

static int is_real(const MixerStep *s, int b, int l) {
    return !s->mask || s->mask[(size_t)b * s->L + l];
}

/* a comes before b: higher score, then lower position (a total order, so the selection is the same
 * whatever the algorithm visits first). */
static int cand_before(Cand a, Cand b) { return a.s > b.s || (a.s == b.s && a.i < b.i); }

/* Reorders c[0, n) so that c[0, m) are the m first in cand_before order (Hoare's FIND with a
 * median-of-three pivot): expected O(n). */
static void select_first(Cand *c, int n, int m) {
    int lo = 0, hi = n - 1;
    const int t = m - 1;
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        Cand a = c[lo], b = c[mid], d = c[hi], p;
        if (cand_before(a, b))
            p = cand_before(b, d) ? b : (cand_before(a, d) ? d : a);
        else
            p = cand_before(a, d) ? a : (cand_before(b, d) ? d : b);
        int i = lo, j = hi;
        while (i <= j) {
            while (cand_before(c[i], p)) i++;
            while (cand_before(p, c[j])) j--;
            if (i <= j) {
                const Cand tmp = c[i];
                c[i++] = c[j];
                c[j--] = tmp;
            }
        }
        if (j < t) lo = i;
        if (t < i) hi = j;
    }
}

static int int_cmp(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Routing (no gradient): scores of every normalised query and key against the centroids, the
 * nearest centroid of each (for the EMA and the commitment loss), and each centroid's top-w
 * queries and keys in position order (§4.2, balanced clusters). */
static void route(Mixer *m, const MixerStep *s, const FwdScratch *f, int w) {
    RoutingState *st = m->state;
    const int H = m->H, Dh = m->D / H, B = s->B, L = s->L, k = st->k, hr = st->hr, Dr = hr * Dh;
    const float *mu = mixer_param(s, st->p_mu);
    const MatBatch per_head = {.n1 = B,
                               .n2 = hr,
                               .a2 = (size_t)k * Dh,
                               .b1 = (size_t)L * 2 * Dr,
                               .b2 = (size_t)Dh,
                               .c1 = (size_t)hr * k * L,
                               .c2 = (size_t)k * L};
    for (int t = 0; t < 2; t++) /* S_t[b, h] = μ_h · x_t[b, ·, h]ᵀ (k × L), routing heads */
        matmul_batched(f->scores + (size_t)t * B * hr * k * L, L, mu, Dh, st->qkn + (size_t)t * Dr,
                       2 * Dr, k, L, Dh, MM_NT, 1.0f, 0.0f, &per_head);
        /* nearest centroid: argmax over c, ties to the lower index */
#pragma omp parallel for collapse(3) schedule(static)
    for (int t = 0; t < 2; t++)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < hr; h++) {
                const size_t th = ((size_t)t * B + b) * hr + h;
                const float *S = f->scores + th * k * L;
                float *best = f->best + th * L;
                int *near = st->near + th * L;
                for (int l = 0; l < L; l++) best[l] = S[l], near[l] = 0;
                for (int c = 1; c < k; c++)
                    for (int l = 0; l < L; l++)
                        if (S[(size_t)c * L + l] > best[l])
                            best[l] = S[(size_t)c * L + l], near[l] = c;
                for (int l = 0; l < L; l++)
                    if (!is_real(s, b, l)) near[l] = -1;
            }
            /* each centroid's top-w real queries (t = 0) and keys (t = 1), ascending positions;
             * a local head's block c: the real positions c·w .. c·w + w − 1 */
#pragma omp parallel for collapse(4) schedule(static)
    for (int t = 0; t < 2; t++)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int c = 0; c < k; c++) {
                    if (h >= hr) {
                        const size_t slot = (((size_t)b * H + h) * k + c) * w;
                        int *idx = (t ? st->kidx : st->qidx) + slot;
                        for (int r = 0; r < w; r++) {
                            const int l = c * w + r;
                            idx[r] = l < L && is_real(s, b, l) ? l : -1;
                        }
                        if (t)
                            for (int r = 0; r < w; r++) st->kvalid[slot + r] = idx[r] >= 0;
                        continue;
                    }
                    const float *S = f->scores + ((((size_t)t * B + b) * hr + h) * k + c) * L;
                    Cand *cand = f->cand + (size_t)omp_get_thread_num() * L;
                    int n = 0;
                    for (int l = 0; l < L; l++)
                        if (is_real(s, b, l)) cand[n++] = (Cand){S[l], l};
                    const int take = XB_MIN(n, w);
                    if (take < n) select_first(cand, n, take);
                    const size_t slot = (((size_t)b * H + h) * k + c) * w;
                    int *idx = (t ? st->kidx : st->qidx) + slot;
                    for (int r = 0; r < take; r++) idx[r] = cand[r].i;
                    qsort(idx, (size_t)take, sizeof *idx, int_cmp);
                    for (int r = take; r < w; r++) idx[r] = -1;
                    if (t)
                        for (int r = 0; r < w; r++) st->kvalid[slot + r] = idx[r] >= 0;
                }
                /* 1 / (picks + 1e-2) of each query; 1 in a local head (one block each) */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t bh = (size_t)b * H + h;
            int *picks = f->picks + bh * L;
            memset(picks, 0, (size_t)L * sizeof *picks);
            const int *idx = st->qidx + bh * k * w;
            for (size_t r = 0; r < (size_t)k * w; r++)
                if (idx[r] >= 0) picks[idx[r]]++;
            for (int l = 0; l < L; l++)
                st->qscale[bh * L + l] =
                    h >= hr ? 1.0f : 1.0f / ((float)picks[l] + ROUTING_COUNT_EPS);
        }
}

/* β·mean over real tokens, routing heads and their channels of ‖x − μ(x)‖², queries plus keys. */
static double commitment_loss(const Mixer *m, const MixerStep *s) {
    const RoutingState *st = m->state;
    const int Dh = m->D / m->H, B = s->B, L = s->L, k = st->k, hr = st->hr, Dr = hr * Dh;
    const float *mu = mixer_param(s, st->p_mu);
    double sum = 0.0;
    size_t nreal = 0;
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) {
            if (!is_real(s, b, l)) continue;
            nreal++;
            for (int t = 0; t < 2; t++)
                for (int h = 0; h < hr; h++) {
                    const int c = st->near[(((size_t)t * B + b) * hr + h) * L + l];
                    const float *x =
                        st->qkn + ((size_t)b * L + l) * 2 * Dr + (size_t)t * Dr + (size_t)h * Dh;
                    const float *u = mu + ((size_t)h * k + c) * Dh;
                    for (int d = 0; d < Dh; d++) sum += (double)(x[d] - u[d]) * (x[d] - u[d]);
                }
        }
    return nreal ? st->beta * sum / ((double)nreal * hr * Dh) : 0.0;
}

/* dst (BL, 2·Dr) = the routing heads' queries | keys of qkv (BL, 3D): Dr = hr·Dh columns each. */
static void copy_routing_qk(float *dst, const float *qkv, int BL, int D, int Dr) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++)
        for (int t = 0; t < 2; t++)
            memcpy(dst + (size_t)r * 2 * Dr + (size_t)t * Dr,
                   qkv + (size_t)r * 3 * D + (size_t)t * D, (size_t)Dr * sizeof(float));
}

static void routing_forward(Mixer *m, const MixerStep *s, float *y, const float *x) {
    RoutingState *st = m->state;
    AttnMixer *am = &st->am;
    const int D = m->D, H = m->H, Dh = D / H, B = s->B, L = s->L, BL = B * L, k = st->k;
    const int w = routing_w(st, L), kw = k * w, Dr = st->hr * Dh;
    linear_forward(am->qkv, x, mixer_param(s, am->p_wqkv), mixer_param(s, am->p_bqkv), BL, D,
                   3 * D);
    /* LayerNorm without scale or bias on each routing head's query and key (§4.2) */
    copy_routing_qk(st->qkn, am->qkv, BL, D, Dr);
    layernorm_forward(st->qkn, st->ln_mean, st->ln_rstd, st->qkn, NULL, NULL, BL * 2 * st->hr, Dh);
    const size_t mark = arena_mark(s->scratch);
    if (!s->frozen) {
        FwdScratch f = carve_fwd(m, s->scratch, B, L);
        route(m, s, &f, w);
        arena_reset_to(s->scratch, mark);
    }
    for (int b = 0; b < B; b++) /* gather each cluster's queries, keys and values */
        for (int h = 0; h < H; h++) {
            const size_t g = ((size_t)b * H + h) * kw;
            /* normalised q and k in a routing head, the raw ones in a local head */
            const int routed = h < st->hr;
            const float *qk =
                routed ? st->qkn + (size_t)b * L * 2 * Dr : am->qkv + (size_t)b * L * 3 * D;
            const int ld = routed ? 2 * Dr : 3 * D, koff = routed ? Dr : D;
            gather_rows(st->qg + g * Dh, Dh, qk + (size_t)h * Dh, ld, st->qidx + g, kw, Dh);
            gather_rows(st->kg + g * Dh, Dh, qk + koff + (size_t)h * Dh, ld, st->kidx + g, kw, Dh);
            gather_rows(st->vg + g * Dh, Dh,
                        am->qkv + (size_t)b * L * 3 * D + 2 * D + (size_t)h * Dh, 3 * D,
                        st->kidx + g, kw, Dh);
        }
    AttnShape sh = cluster_shape(m, B, w);
    attn_forward(st->og, st->lse, st->qg, st->kg, st->vg, st->kvalid, &sh, s->scratch);
    memset(am->att, 0, (size_t)BL * D * sizeof(float));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) /* back to the positions; (b, h) own disjoint slices */
        for (int h = 0; h < H; h++) {
            const size_t g = ((size_t)b * H + h) * kw;
            scatter_add_rows(am->att + (size_t)b * L * D + (size_t)h * Dh, D, st->og + g * Dh, Dh,
                             st->qidx + g, kw, Dh, 0);
        }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++) /* the average over the clusters that picked the query */
        for (int h = 0; h < H; h++) {
            const float c = st->qscale[((size_t)(r / L) * H + h) * L + r % L];
            float *a = am->att + (size_t)r * D + (size_t)h * Dh;
            for (int d = 0; d < Dh; d++) a[d] *= c;
        }
    linear_forward(y, am->att, mixer_param(s, am->p_wo), mixer_param(s, am->p_bo), BL, D, D);
    if (s->aux_loss) *s->aux_loss += commitment_loss(m, s);
}

/* The online k-means step (authors' online_kmeans with EMA) over the real queries and keys of the
 * last forward, each counted for its nearest centroid. One head per task, tokens in order. */
static void ema_update(Mixer *m, const MixerStep *s, const BwdScratch *bs) {
    RoutingState *st = m->state;
    const int Dh = m->D / m->H, B = s->B, L = s->L, k = st->k, hr = st->hr, Dr = hr * Dh;
    /* buffers live in the parameter buffer, which the step hands out read-only for the others */
    float *mu = (float *)mixer_param(s, st->p_mu);
    float *esum = (float *)mixer_param(s, st->p_sum);
    float *ecount = (float *)mixer_param(s, st->p_count);
    const float lam = st->decay;
    double *cnt = bs->count;
    for (int h = 0; h < hr; h++) {
        double *sum = bs->sum + (size_t)h * k * Dh; /* tokens of head h */
        double *n = cnt + (size_t)h * k;
        memset(sum, 0, (size_t)k * Dh * sizeof *sum);
        memset(n, 0, (size_t)k * sizeof *n);
    }
#pragma omp parallel for schedule(static)
    for (int h = 0; h < hr; h++) {
        double *sum = bs->sum + (size_t)h * k * Dh, *n = cnt + (size_t)h * k;
        for (int t = 0; t < 2; t++)
            for (int b = 0; b < B; b++)
                for (int l = 0; l < L; l++) {
                    const int c = st->near[(((size_t)t * B + b) * hr + h) * L + l];
                    if (c < 0) continue;
                    const float *x =
                        st->qkn + ((size_t)b * L + l) * 2 * Dr + (size_t)t * Dr + (size_t)h * Dh;
                    n[c] += 1.0;
                    for (int d = 0; d < Dh; d++) sum[(size_t)c * Dh + d] += x[d];
                }
    }
    /* data-parallel training: every rank moves the centroids by the whole batch's statistics */
    dist_allreduce_f64(bs->sum, (size_t)hr * k * Dh);
    dist_allreduce_f64(cnt, (size_t)hr * k);
#pragma omp parallel for schedule(static)
    for (int h = 0; h < hr; h++) {
        const double *sum = bs->sum + (size_t)h * k * Dh, *n = cnt + (size_t)h * k;
        double total = 0.0;
        for (int c = 0; c < k; c++) {
            float *ec = ecount + (size_t)h * k + c;
            *ec = lam * *ec + (1.0f - lam) * (float)n[c];
            total += *ec;
            for (int d = 0; d < Dh; d++) {
                float *es = esum + ((size_t)h * k + c) * Dh + d;
                *es = lam * *es + (1.0f - lam) * (float)sum[(size_t)c * Dh + d];
            }
        }
        for (int c = 0; c < k; c++) {
            const double sm = (ecount[(size_t)h * k + c] + ROUTING_EMA_EPS) /
                              (total + k * ROUTING_EMA_EPS) * total;
            for (int d = 0; d < Dh; d++)
                mu[((size_t)h * k + c) * Dh + d] = (float)(esum[((size_t)h * k + c) * Dh + d] / sm);
        }
    }
}

static void routing_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                             const float *x) {
    RoutingState *st = m->state;
    AttnMixer *am = &st->am;
    const int D = m->D, H = m->H, Dh = D / H, B = s->B, L = s->L, BL = B * L, k = st->k;
    const int w = routing_w(st, L), kw = k * w, hr = st->hr, Dr = hr * Dh;
    const size_t mark = arena_mark(s->scratch);
    BwdScratch bs = carve_bwd(m, s->scratch, B, L);
    linear_backward(bs.datt, mixer_grad(s, am->p_wo), mixer_grad(s, am->p_bo), dy, am->att,
                    mixer_param(s, am->p_wo), BL, D, D);
    /* d(cluster outputs): each pick of a query gets its share 1 / (picks + 1e-2) */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t g = ((size_t)b * H + h) * kw;
            gather_rows(bs.dog + g * Dh, Dh, bs.datt + (size_t)b * L * D + (size_t)h * Dh, D,
                        st->qidx + g, kw, Dh);
        }
    const size_t S = (size_t)B * H * kw;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < S; r++) {
        const int i = st->qidx[r];
        if (i < 0) continue;
        const float c = st->qscale[r / kw * L + i];
        for (int d = 0; d < Dh; d++) bs.dog[r * Dh + d] *= c;
    }
    AttnShape sh = cluster_shape(m, B, w);
    attn_backward(bs.dqg, bs.dkg, bs.dvg, bs.dog, st->qg, st->kg, st->vg, st->og, st->lse,
                  st->kvalid, &sh, s->scratch);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) /* gathers' adjoints; (b, h) own disjoint slices */
        for (int h = 0; h < H; h++) {
            const size_t g = ((size_t)b * H + h) * kw;
            /* a routing head's q, k go back through the LayerNorm; a local head's straight */
            const int routed = h < hr, ld = routed ? 2 * Dr : 3 * D, koff = routed ? Dr : D;
            float *dq = (routed ? bs.dqkn : bs.dqkv) + (size_t)b * L * ld + (size_t)h * Dh;
            scatter_add_rows(dq, ld, bs.dqg + g * Dh, Dh, st->qidx + g, kw, Dh, 0);
            scatter_add_rows(dq + koff, ld, bs.dkg + g * Dh, Dh, st->kidx + g, kw, Dh, 0);
            scatter_add_rows(bs.dqkv + (size_t)b * L * 3 * D + 2 * D + (size_t)h * Dh, 3 * D,
                             bs.dvg + g * Dh, Dh, st->kidx + g, kw, Dh, 0);
        }
    if (s->aux_loss) { /* d/dx β·mean‖x − sg(μ(x))‖² = 2β(x − μ(x)) / (n_real·hr·Dh) */
        size_t nreal = 0;
        for (int r = 0; r < BL; r++) nreal += is_real(s, r / L, r % L);
        const float g = nreal ? 2.0f * st->beta / (float)((double)nreal * hr * Dh) : 0.0f;
        const float *mu = mixer_param(s, st->p_mu);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < BL; r++) {
            const int b = r / L, l = r % L;
            if (!is_real(s, b, l)) continue;
            for (int t = 0; t < 2; t++)
                for (int h = 0; h < hr; h++) {
                    const int c = st->near[(((size_t)t * B + b) * hr + h) * L + l];
                    const size_t o = (size_t)r * 2 * Dr + (size_t)t * Dr + (size_t)h * Dh;
                    const float *u = mu + ((size_t)h * k + c) * Dh;
                    for (int d = 0; d < Dh; d++) bs.dqkn[o + d] += g * (st->qkn[o + d] - u[d]);
                }
        }
    }
    /* through the LayerNorm, on a contiguous copy of the routing heads' raw queries and keys */
    copy_routing_qk(bs.raw, am->qkv, BL, D, Dr);
    layernorm_backward(bs.draw, NULL, NULL, bs.dqkn, bs.raw, NULL, st->ln_mean, st->ln_rstd,
                       BL * 2 * hr, Dh);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BL; r++)
        for (int t = 0; t < 2; t++)
            for (int c = 0; c < Dr; c++)
                bs.dqkv[(size_t)r * 3 * D + (size_t)t * D + c] +=
                    bs.draw[(size_t)r * 2 * Dr + (size_t)t * Dr + c];
    linear_backward(dx, mixer_grad(s, am->p_wqkv), mixer_grad(s, am->p_bqkv), bs.dqkv, x,
                    mixer_param(s, am->p_wqkv), BL, D, 3 * D);
    /* once per training step, after the gradients: the centroids' EMA step */
    if (s->training && !s->frozen) ema_update(m, s, &bs);
    arena_reset_to(s->scratch, mark);
}

static uint64_t routing_flops(const Mixer *m, int B, int L, int backward) {
    const RoutingState *st = m->state;
    const uint64_t BL = (uint64_t)B * (uint64_t)L, D = (uint64_t)m->D;
    AttnShape sh = cluster_shape(m, B, routing_w(st, L));
    const uint64_t proj = 2 * BL * D * 3 * D + 2 * BL * D * D;
    const uint64_t scores = /* routing heads' queries and keys vs centroids */
        4ull * BL * (uint64_t)st->k * (uint64_t)(st->hr * (m->D / m->H));
    return (backward ? 2 * proj : proj + scores) + attn_flops(&sh, backward);
}

const MixerSpec mixer_routing = {
    .name = "routing",
    .classes = "LP",
    .arxiv = "2003.05997",
    .title =
        "Routing Transformer: online k-means clusters of normalised q/k, attention within each; "
        "half the heads local",
    .honours_mask = 1,
    .padding_dependence =
        "the cluster size w = ceil(L/k) and the local heads' blocks come from the padded length L",
    MIXER_OPTS(routing_opts),
    .ops = &(const MixerOps){MIXER_OPS(routing), .check = routing_check},
};
