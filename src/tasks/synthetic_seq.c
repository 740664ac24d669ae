/* Synthetic sequence tasks: a class to predict at some positions (the per-position head,
 * model.pooling: none), generated from the experiment seed (stream RNG_STREAM_DATA), so the same
 * seed gives the same bytes. Positions without a target hold XB_NO_TARGET.
 *
 *   selcopy  selective copying (Gu & Dao, Mamba, arXiv 2312.00752 §3.1; after the copying task
 *            of Arjovsky et al., arXiv 1511.06464, as varied by Jing et al.): a body of L blanks
 *            with `tokens` data symbols at distinct uniformly random positions, then `tokens`
 *            markers; the targets at the markers are the data symbols in order. Tokens: data
 *            1..S, BLANK S+1, MARKER S+2; length L + k, L uniform in [min_length, max_length].
 *   mqar     multi-query associative recall (Arora et al., Zoology, arXiv 2312.04927 §3): n
 *            key-value pairs k₁ v₁ … kₙ vₙ with distinct keys, SEP, then `queries` distinct keys
 *            of the pairs in random order; the target at each query is the value paired with
 *            it. A task of its own rather than an option of `recall`: the layout and the kind
 *            of output (a class per query, not per example) differ, and `recall` stays exactly
 *            what it was. Zoology's decoder predicts the value at the query key as the next
 *            token and its queries are followed by their values; our encoder sees the whole
 *            sequence, so the queries stand alone and carry the target. Tokens: keys 1..K,
 *            values K+1..K+V, SEP K+V+1; length 2n + 1 + q, n uniform in [min_pairs, max_pairs].
 *   needle   needle-in-a-haystack retrieval in the fixed-vocabulary form of passkey retrieval
 *            (Mohtashami & Jaggi, Landmark Attention, arXiv 2305.16300 §4.2): filler tokens
 *            drawn uniformly from `filler` symbols, with `needles` needles, each a key followed
 *            by `digits` value tokens, at uniformly random non-overlapping positions (distinct
 *            keys); at the end a query key, one of the needles', then `digits` ANSWER slots
 *            whose targets are that needle's value tokens in order. With needles = keys = 1 it
 *            is passkey retrieval; more needles are RULER's multi-key variant (arXiv
 *            2404.06654). A per-position task rather than a classification: a multi-token value
 *            has V^digits answers, too many classes, and each slot is a V-way choice. Tokens:
 *            filler 1..F, keys F+1..F+K, values F+K+1..F+K+V, ANSWER F+K+V+1; length uniform
 *            in [min_length, max_length].
 *
 * A target is the index of the symbol among the data symbols (selcopy) or values (mqar, needle),
 * so n_classes is S or V.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xassert.h"
#include "tasks/synthetic.h"
#include "tasks/task.h"

#define OPT(n, d, lo, hi, h)                                                                       \
    { .name = n, .type = OPT_INT, .def = d, .min = lo, .max = hi, .help = h }

static const OptSpec selcopy_opts[] = {
    SYNTH_SPLIT_OPTS(20000),
    OPT("min_length", 256, 1, 16777216, "shortest body of blanks and data tokens"),
    OPT("max_length", 256, 1, 16777216, "longest body (the markers follow it)"),
    OPT("tokens", 16, 1, 65536, "data tokens to copy (at most min_length), as many markers"),
    OPT("symbols", 16, 2, 65536, "data symbols, the classes"),
};

static const OptSpec mqar_opts[] = {
    SYNTH_SPLIT_OPTS(20000),
    OPT("min_pairs", 32, 1, 8388608, "fewest key-value pairs (length 2n + 1 + queries)"),
    OPT("max_pairs", 32, 1, 8388608, "most key-value pairs"),
    OPT("queries", 8, 1, 8388608, "distinct keys queried (at most min_pairs)"),
    OPT("keys", 256, 1, 16777216, "key symbols (at least max_pairs: the keys are distinct)"),
    OPT("values", 64, 2, 65536, "value symbols, the classes"),
};

static const OptSpec needle_opts[] = {
    SYNTH_SPLIT_OPTS(10000),
    OPT("min_length", 1024, 3, 16777216, "shortest example, query and answer slots included"),
    OPT("max_length", 1024, 3, 16777216, "longest example"),
    OPT("needles", 1, 1, 65536, "needles in the haystack, with distinct keys; one is queried"),
    OPT("keys", 1, 1, 65536, "key symbols (at least needles; 1: passkey's fixed marker)"),
    OPT("values", 10, 2, 65536, "value symbols, the classes (10: digits)"),
    OPT("digits", 5, 1, 4096, "value tokens per needle, and answer slots"),
    OPT("filler", 16, 1, 65536, "filler symbols of the haystack"),
};

#define NSEL ((int)XB_ARRAY_LEN(selcopy_opts))
#define NMQ ((int)XB_ARRAY_LEN(mqar_opts))
#define NNDL ((int)XB_ARRAY_LEN(needle_opts))

/* ---- selective copying ---- */

static int selcopy_gen(Rng *r, const OptValues *v, int len, int32_t *out, int32_t *tgt) {
    const int k = opt_int(v, selcopy_opts, NSEL, "tokens"),
              S = opt_int(v, selcopy_opts, NSEL, "symbols");
    const int L = len - k, BLANK = S + 1, MARKER = S + 2;
    /* the k data positions: Floyd's sampling over [0, L), marked in out (then read in order) */
    for (int t = 0; t < L; t++) out[t] = BLANK;
    for (int j = L - k; j < L; j++) {
        const int x = (int)rng_below(r, (uint32_t)j + 1);
        out[out[x] == BLANK ? x : j] = 0;
    }
    int m = 0;
    for (int t = 0; t < L; t++) {
        tgt[t] = XB_NO_TARGET;
        if (out[t] == BLANK) continue;
        const int sym = (int)rng_below(r, (uint32_t)S);
        out[t] = 1 + sym;
        tgt[L + m++] = sym;
    }
    XB_ASSERT(m == k);
    for (int t = L; t < len; t++) out[t] = MARKER;
    return 0;
}

static int selcopy_load(Dataset *d, const OptValues *v, uint64_t seed, const char *source,
                        XbError *err) {
    memset(d, 0, sizeof *d);
    const int lo = opt_int(v, selcopy_opts, NSEL, "min_length"),
              hi = opt_int(v, selcopy_opts, NSEL, "max_length");
    const int k = opt_int(v, selcopy_opts, NSEL, "tokens"),
              S = opt_int(v, selcopy_opts, NSEL, "symbols");
    if (lo > hi)
        return xb_error_set(err, source, 0, 0, "task.max_length",
                            "%d is shorter than task.min_length = %d (valid: %d or more)", hi, lo,
                            lo);
    if (k > lo)
        return xb_error_set(err, source, 0, 0, "task.tokens",
                            "%d data tokens do not fit a body of task.min_length = %d (valid: 1 "
                            "to %d)",
                            k, lo, lo);
    if (synth_check_counts(v, selcopy_opts, NSEL, (int64_t)hi + k, source, err)) return -1;
    d->vocab_size = S + 3;
    d->n_classes = S;
    synth_generate(d, v, selcopy_opts, NSEL, seed, lo + k, hi + k, 1, 1, selcopy_gen);
    static const char *const keys[] = {"min_length", "max_length", "tokens", "symbols"};
    synth_identity(d, "selcopy", "selective-copying", seed, keys, (const int[]){lo, hi, k, S}, 4);
    dataset_checksum(d);
    return 0;
}

/* ---- multi-query associative recall ---- */

static int mqar_gen(Rng *r, const OptValues *v, int len, int32_t *out, int32_t *tgt) {
    const int Q = opt_int(v, mqar_opts, NMQ, "queries"), K = opt_int(v, mqar_opts, NMQ, "keys"),
              V = opt_int(v, mqar_opts, NMQ, "values");
    const int n = (len - 1 - Q) / 2;
    unsigned char *seen = calloc((size_t)XB_MAX(K, n), 1);
    XB_ASSERT(seen);
    /* scratch in tgt[0, n + Q), below the query positions 2n + 1.. (Q <= n) */
    int32_t *keys = tgt, *pick = tgt + n;
    synth_distinct(r, keys, n, K, seen);
    for (int i = 0; i < n; i++) {
        out[2 * i] = 1 + keys[i];
        out[2 * i + 1] = 1 + K + (int)rng_below(r, (uint32_t)V);
    }
    synth_distinct(r, pick, Q, n, seen);
    free(seen);
    out[2 * n] = 1 + K + V; /* SEP */
    for (int j = 0; j < Q; j++) {
        out[2 * n + 1 + j] = out[2 * pick[j]];
        tgt[2 * n + 1 + j] = out[2 * pick[j] + 1] - 1 - K;
    }
    for (int t = 0; t <= 2 * n; t++) tgt[t] = XB_NO_TARGET;
    return 0;
}

static int mqar_load(Dataset *d, const OptValues *v, uint64_t seed, const char *source,
                     XbError *err) {
    memset(d, 0, sizeof *d);
    const int lo = opt_int(v, mqar_opts, NMQ, "min_pairs"),
              hi = opt_int(v, mqar_opts, NMQ, "max_pairs");
    const int Q = opt_int(v, mqar_opts, NMQ, "queries"), K = opt_int(v, mqar_opts, NMQ, "keys"),
              V = opt_int(v, mqar_opts, NMQ, "values");
    if (lo > hi)
        return xb_error_set(err, source, 0, 0, "task.max_pairs",
                            "%d is fewer than task.min_pairs = %d (valid: %d or more)", hi, lo, lo);
    if (hi > K)
        return xb_error_set(err, source, 0, 0, "task.keys",
                            "%d key symbols cannot give %d distinct keys (valid: %d or more)", K,
                            hi, hi);
    if (Q > lo)
        return xb_error_set(err, source, 0, 0, "task.queries",
                            "%d distinct queries cannot come from task.min_pairs = %d pairs "
                            "(valid: 1 to %d)",
                            Q, lo, lo);
    if (synth_check_counts(v, mqar_opts, NMQ, 2 * (int64_t)hi + 1 + Q, source, err)) return -1;
    d->vocab_size = K + V + 2;
    d->n_classes = V;
    synth_generate(d, v, mqar_opts, NMQ, seed, 2 * lo + 1 + Q, 2 * hi + 1 + Q, 2, 1, mqar_gen);
    static const char *const keys[] = {"min_pairs", "max_pairs", "queries", "keys", "values"};
    synth_identity(d, "mqar", "multi-query-associative-recall", seed, keys,
                   (const int[]){lo, hi, Q, K, V}, 5);
    dataset_checksum(d);
    return 0;
}

/* ---- needle in a haystack ---- */

static int cmp_i32(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int needle_gen(Rng *r, const OptValues *v, int len, int32_t *out, int32_t *tgt) {
    const int m = opt_int(v, needle_opts, NNDL, "needles"),
              K = opt_int(v, needle_opts, NNDL, "keys"),
              V = opt_int(v, needle_opts, NNDL, "values"),
              nd = opt_int(v, needle_opts, NNDL, "digits"),
              F = opt_int(v, needle_opts, NNDL, "filler");
    const int w = 1 + nd, body = len - 1 - nd, gaps = body - m * w;
    for (int t = 0; t < body; t++) out[t] = 1 + (int)rng_below(r, (uint32_t)F);
    /* needle i (in position order) starts at u_i + i·w, u sorted uniform draws from [0, gaps]:
     * non-overlapping, each arrangement as likely as its gap multiset. Scratch in tgt. */
    int32_t *u = tgt, *keys = tgt + m;
    for (int i = 0; i < m; i++) u[i] = (int32_t)rng_below(r, (uint32_t)gaps + 1);
    qsort(u, (size_t)m, sizeof *u, cmp_i32);
    unsigned char *seen = calloc((size_t)K, 1);
    XB_ASSERT(seen);
    synth_distinct(r, keys, m, K, seen);
    free(seen);
    for (int i = 0; i < m; i++) {
        int32_t *p = out + u[i] + (size_t)i * w;
        p[0] = 1 + F + keys[i];
        for (int j = 0; j < nd; j++) p[1 + j] = 1 + F + K + (int)rng_below(r, (uint32_t)V);
    }
    const int q = (int)rng_below(r, (uint32_t)m);
    const int32_t *needle = out + u[q] + (size_t)q * w;
    out[body] = needle[0]; /* the query key */
    for (int j = 0; j < nd; j++) {
        out[body + 1 + j] = 1 + F + K + V; /* ANSWER */
        tgt[body + 1 + j] = needle[1 + j] - 1 - F - K;
    }
    for (int t = 0; t <= body; t++) tgt[t] = XB_NO_TARGET;
    return 0;
}

static int needle_load(Dataset *d, const OptValues *v, uint64_t seed, const char *source,
                       XbError *err) {
    memset(d, 0, sizeof *d);
    const int lo = opt_int(v, needle_opts, NNDL, "min_length"),
              hi = opt_int(v, needle_opts, NNDL, "max_length");
    const int m = opt_int(v, needle_opts, NNDL, "needles"),
              K = opt_int(v, needle_opts, NNDL, "keys"),
              V = opt_int(v, needle_opts, NNDL, "values"),
              nd = opt_int(v, needle_opts, NNDL, "digits"),
              F = opt_int(v, needle_opts, NNDL, "filler");
    const int64_t need = (int64_t)m * (1 + nd) + 1 + nd; /* the needles, query and slots */
    if (lo > hi)
        return xb_error_set(err, source, 0, 0, "task.max_length",
                            "%d is shorter than task.min_length = %d (valid: %d or more)", hi, lo,
                            lo);
    if (m > K)
        return xb_error_set(err, source, 0, 0, "task.keys",
                            "%d key symbols cannot give %d needles distinct keys (valid: %d or "
                            "more)",
                            K, m, m);
    if (lo < need)
        return xb_error_set(err, source, 0, 0, "task.min_length",
                            "%d tokens cannot hold %d needles of 1 + %d tokens, the query and %d "
                            "answer slots (valid: %lld or more)",
                            lo, m, nd, nd, (long long)need);
    if (synth_check_counts(v, needle_opts, NNDL, hi, source, err)) return -1;
    d->vocab_size = F + K + V + 2;
    d->n_classes = V;
    synth_generate(d, v, needle_opts, NNDL, seed, lo, hi, 1, 1, needle_gen);
    static const char *const keys[] = {"min_length", "max_length", "needles", "keys",
                                       "values",     "digits",     "filler"};
    synth_identity(d, "needle", "needle-in-a-haystack", seed, keys,
                   (const int[]){lo, hi, m, K, V, nd, F}, 7);
    dataset_checksum(d);
    return 0;
}

const TaskSpec task_selcopy = {
    .name = "selcopy",
    .description = "Selective copying: the data tokens scattered among blanks, in order, at the "
                   "markers that follow (generated, per position)",
    .opts = selcopy_opts,
    .n_opts = NSEL,
    .sequence = 1,
    .load = selcopy_load,
    .generated = task_always_generated,
};

const TaskSpec task_mqar = {
    .name = "mqar",
    .description = "Multi-query associative recall: after n key-value pairs, the value of each "
                   "queried key at its position (generated, per position)",
    .opts = mqar_opts,
    .n_opts = NMQ,
    .sequence = 1,
    .load = mqar_load,
    .generated = task_always_generated,
};

const TaskSpec task_needle = {
    .name = "needle",
    .description = "Needle in a haystack: the value tokens of the needle whose key is queried at "
                   "the end, in answer slots (generated, per position)",
    .opts = needle_opts,
    .n_opts = NNDL,
    .sequence = 1,
    .load = needle_load,
    .generated = task_always_generated,
};
