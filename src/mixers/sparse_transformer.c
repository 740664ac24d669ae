/* sparse_transformer: the factorised patterns of Child et al. (arXiv 1904.10509, §4.2-4.3).
 * Fixed: A1(i) = {j : ⌊j/l⌋ = ⌊i/l⌋} (its block), A2(i) = {j : j mod l ∈ [l − c, l)} (the summary
 * positions of every block). Strided: A1(i) = {j : |i − j| < l} (a window), A2(i) = {j : (i − j)
 * mod l = 0} (every l-th position). heads: split gives the first half of the heads A1 and the
 * second half A2 (the paper's multi-head factorisation); merged gives every head A1 ∪ A2 (as LRA
 * ran the fixed pattern). The encoder form is bidirectional; causal restricts to j <= i. Strided
 * A2 keys are one per stride: the kernel visits them as single-key ranges, O(L·L/l) work. LRA:
 * fixed, l = 128, c = 32.
 *
 * lra: LRA's own pattern (lra_benchmarks/models/sparse_transformer/sparse_attention.py, the default
 * `attention_patterns` Fixed1Pattern(128) ∪ Fixed2Pattern(128, 32)), which LRA's Table 1 ran:
 * every head sees the merged fixed pattern, whose summary keys also include each block's first
 * position (`remainder == 0`), lower-triangular in the encoder too (the file's "all attention
 * patterns are causal"); with a CLS token (model.pooling: cls, LRA's use_cls_token), position 0
 * sees every key and every query sees it, and the pattern runs over positions 1.. (`pad_first`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/xassert.h"
#include "mixers/attn_mixer.h"

static const char *const PATTERNS[] = {"fixed", "strided", NULL};
static const char *const HEADS[] = {"split", "merged", NULL};

static const OptSpec st_opts[] = {
    MOPT_ENUM("pattern", 0, PATTERNS,
              "fixed (blocks + summary positions) or strided (window + every l-th position)"),
    MOPT_INT("stride", 128, 1, 1048576, "l: block length (fixed) or stride (strided) (LRA: 128)"),
    MOPT_INT("summary", 32, 1, 1048576,
             "c: summary positions at the end of each block (fixed; LRA: 32)"),
    MOPT_ENUM("heads", 0, HEADS,
              "split: half the heads per component; merged: every head sees both"),
    MOPT_BOOL("causal", 0, "only keys j <= i (the paper's decoder)"),
    MOPT_BOOL("bias", 0, "biases in the projections"),
    MOPT_BOOL("lra", 0,
              "LRA's sparse_attention.py as its Table 1 ran it: merged fixed pattern whose summary "
              "keys include each block's first position, causal even in the encoder, the CLS "
              "position (pooling: cls) seeing and seen by all (implies pattern fixed, heads "
              "merged, causal)"),
};
#define NOPTS MOPT_COUNT(st_opts)

enum { TILE_STRIDED = 1 };

typedef struct StState {
    AttnMixer am; /* first */
    int strided, merged, l, c, H;
    int lra, cls; /* LRA's pattern; position 0 is a CLS token (Mixer.cls) */
} StState;

/* Which components head h uses: bit 0 A1, bit 1 A2. */
static int parts(const StState *st, int h) {
    if (st->merged) return 3;
    return h < st->H / 2 || st->H == 1 ? 1 : 2;
}

/* LRA's pattern over positions shifted by the CLS token: query i sees key j when j <= i and j is
 * in i's block, or is a block's first or one of its last c positions; position 0 (the CLS
 * token) sees and is seen by all. */
static int lra_sees(const StState *st, int i, int j) {
    if (st->cls && (i == 0 || j == 0)) return 1;
    i -= st->cls, j -= st->cls;
    const int l = st->l, rem = j % l;
    return j <= i && (j / l == i / l || rem == 0 || rem >= l - st->c);
}

static int lra_ranges(const StState *st, int Lk, int i0, int bq, int *a, int *e) {
    if (st->cls && i0 == 0) { /* the CLS row sees everything */
        a[0] = 0, e[0] = Lk;
        return 1;
    }
    const int l = st->l, sh = st->cls, last = XB_MIN(Lk, i0 + bq); /* causal: keys < last */
    int m = 0;
    if (sh) a[m] = 0, e[m] = 1, m++;
    const int first_block = (XB_MAX(i0 - sh, 0)) / l; /* the first row's block */
    for (int k = 0; k * l + sh < last; k++) {
        const int start = k * l + sh;
        if (k >= first_block) { /* blocks of the tile's rows: all of it */
            a[m] = start, e[m] = XB_MIN(last, start + l), m++;
            continue;
        }
        a[m] = start, e[m] = start + 1, m++; /* its first position */
        a[m] = start + XB_MAX(1, l - st->c), e[m] = XB_MIN(last, start + l), m++;
    }
    return m;
}

static int st_ranges(const AttnShape *s, int b, int h, int i0, int bq, int *lo, int *hi) {
    (void)b;
    const StState *st = s->pattern->ctx;
    const int p = parts(st, h), l = st->l, Lk = s->Lk;
    int n = 0;
    /* collect, in order, then merge overlaps */
    int a[2 * (s->Lk / (l > 0 ? l : 1)) + 6], e[2 * (s->Lk / (l > 0 ? l : 1)) + 6], m = 0;
    if (st->lra) {
        m = lra_ranges(st, Lk, i0, bq, a, e);
    } else if (!st->strided) {
        if (p & 1) a[m] = i0 / l * l, e[m] = XB_MIN(Lk, (i0 + bq - 1) / l * l + l), m++;
        if (p & 2)
            for (int k = 0; k * l < Lk; k++)
                a[m] = XB_MIN(Lk, k * l + XB_MAX(0, l - st->c)), e[m] = XB_MIN(Lk, (k + 1) * l),
                m++;
    } else {
        /* one query row per tile */
        if (p & 1) a[m] = XB_MAX(0, i0 - l + 1), e[m] = XB_MIN(Lk, i0 + l), m++;
        if (p & 2)
            for (int j = i0 % l; j < Lk; j += l) a[m] = j, e[m] = j + 1, m++;
    }
    /* sort by start (insertion: the lists are nearly sorted), then merge */
    for (int i = 1; i < m; i++)
        for (int k = i; k > 0 && a[k] < a[k - 1]; k--) {
            int t = a[k];
            a[k] = a[k - 1];
            a[k - 1] = t;
            t = e[k];
            e[k] = e[k - 1];
            e[k - 1] = t;
        }
    for (int i = 0; i < m; i++) {
        if (a[i] >= e[i]) continue;
        if (n && a[i] <= hi[n - 1])
            hi[n - 1] = XB_MAX(hi[n - 1], e[i]);
        else
            lo[n] = a[i], hi[n] = e[i], n++;
    }
    return n;
}

static void st_mask(const AttnShape *s, int b, int h, int i0, int bq, int j0, int bk, float *bias,
                    int ld) {
    (void)b;
    const StState *st = s->pattern->ctx;
    const int p = parts(st, h), l = st->l;
    for (int r = 0; r < bq; r++)
        for (int c = 0; c < bk; c++) {
            const int i = i0 + r, j = j0 + c;
            int ok;
            if (st->lra)
                ok = lra_sees(st, i, j);
            else if (!st->strided)
                ok = ((p & 1) && j / l == i / l) || ((p & 2) && j % l >= l - st->c);
            else
                ok = ((p & 1) && abs(i - j) < l) || ((p & 2) && (i - j) % l == 0);
            bias[(size_t)r * ld + c] = ok ? 0.0f : -INFINITY;
        }
}

static void st_create(Mixer *m, ParamTable *pt) {
    StState *st = calloc(1, sizeof *st);
    XB_ASSERT(st);
    attn_mixer_create(m, pt, &st->am, opt_bool(m->opts, st_opts, NOPTS, "causal"),
                      opt_bool(m->opts, st_opts, NOPTS, "bias"));
    st->strided = opt_enum(m->opts, st_opts, NOPTS, "pattern") == 1;
    st->merged = opt_enum(m->opts, st_opts, NOPTS, "heads") == 1;
    st->l = opt_int(m->opts, st_opts, NOPTS, "stride");
    st->c = opt_int(m->opts, st_opts, NOPTS, "summary");
    st->H = m->H;
    st->lra = opt_bool(m->opts, st_opts, NOPTS, "lra");
    if (st->lra) st->strided = 0, st->merged = 1; /* lra_sees is causal itself */
    const int max_ranges = 2 * (m->max_len / st->l) + 6;
    st->am.pattern = (AttnPattern){.bq = st->strided ? TILE_STRIDED : XB_MIN(st->l, 128),
                                   .max_ranges = max_ranges,
                                   .ranges = st_ranges,
                                   .mask = st_mask,
                                   .ctx = st};
    st->am.has_pattern = 1;
}

/* LRA's pattern needs to know whether position 0 is a CLS token: the encoder sets Mixer.cls after
 * create, before plan. */
static void st_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L) {
    StState *st = m->state;
    st->cls = m->cls;
    attn_mixer_plan(m, acts, scratch, B, L);
}

static int st_check(const OptValues *opts, int D, int H, int max_len, XbError *err) {
    (void)D, (void)max_len;
    if (opt_bool(opts, st_opts, NOPTS, "lra")) return 0; /* its own pattern, heads merged */
    const int l = opt_int(opts, st_opts, NOPTS, "stride"),
              c = opt_int(opts, st_opts, NOPTS, "summary");
    if (opt_enum(opts, st_opts, NOPTS, "pattern") == 0 && c > l) {
        return mixer_opt_error(err, "summary",
                               "%d is longer than the block (stride %d) (valid: 1 to %d)", c, l, l);
    }
    if (opt_enum(opts, st_opts, NOPTS, "heads") == 0 && H % 2 != 0 && H != 1) {
        return mixer_opt_error(err, "heads",
                               "split needs an even number of heads, got model.heads = %d "
                               "(valid: merged, or an even model.heads)",
                               H);
    }
    return 0;
}

const MixerSpec mixer_sparse_transformer = {
    .name = "sparse_transformer",
    .classes = "FP",
    .arxiv = "1904.10509",
    .title = "Sparse Transformer: fixed or strided factorised patterns, heads split or merged",
    .honours_mask = 1,
    MIXER_OPTS(st_opts),
    .ops =
        &(const MixerOps){.check = st_check, .create = st_create, .plan = st_plan, ATTN_MIXER_RUN},
};
