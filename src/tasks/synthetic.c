/* Synthetic sequence-classification tasks of the long-sequence literature, generated from the
 * experiment seed (stream RNG_STREAM_DATA), so the same seed gives the same bytes:
 *
 *   parity  a string of bits (tokens 1, 2) of a length drawn uniformly from
 *           [min_length, max_length]; the label is their XOR (2 classes). Needs every token.
 *   recall  associative recall with one query (Ba et al., arXiv 1610.06258; the "AR" of the
 *           H3/Zoology line): n key-value pairs k₁ v₁ … kₙ vₙ with distinct keys from `keys`
 *           symbols and values from `values` symbols, then SEP and a query key drawn from the
 *           pairs; the label is the value paired with it (`values` classes). Tokens: keys
 *           1..K, values K+1..K+V, SEP K+V+1; length 2n + 2, n uniform in [min_pairs, max_pairs].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xassert.h"
#include "tasks/synthetic.h"
#include "tasks/task.h"

static const OptSpec parity_opts[] = {
    SYNTH_SPLIT_OPTS(20000),
    {.name = "min_length",
     .type = OPT_INT,
     .def = 32,
     .min = 1,
     .max = 16777216,
     .help = "shortest string of bits"},
    {.name = "max_length",
     .type = OPT_INT,
     .def = 256,
     .min = 1,
     .max = 16777216,
     .help = "longest string of bits"},
};

static const OptSpec recall_opts[] = {
    SYNTH_SPLIT_OPTS(20000),
    {.name = "min_pairs",
     .type = OPT_INT,
     .def = 64,
     .min = 1,
     .max = 8388608,
     .help = "fewest key-value pairs (length 2n + 2)"},
    {.name = "max_pairs",
     .type = OPT_INT,
     .def = 64,
     .min = 1,
     .max = 8388608,
     .help = "most key-value pairs"},
    {.name = "keys",
     .type = OPT_INT,
     .def = 1024,
     .min = 1,
     .max = 16777216,
     .help = "key symbols (at least max_pairs: the keys of an example are distinct)"},
    {.name = "values",
     .type = OPT_INT,
     .def = 16,
     .min = 2,
     .max = 65536,
     .help = "value symbols, the classes"},
};

#define NPAR ((int)XB_ARRAY_LEN(parity_opts))
#define NREC ((int)XB_ARRAY_LEN(recall_opts))

/* Allocates split s for n examples of ntok tokens in all, with targets or labels. */
static void alloc_split(Split *s, int n, int64_t ntok, int targets) {
    s->n = n;
    s->tokens = malloc(((size_t)ntok + 1) * sizeof *s->tokens);
    s->offsets = malloc(((size_t)n + 1) * sizeof *s->offsets);
    if (targets)
        s->targets = malloc(((size_t)ntok + 1) * sizeof *s->targets);
    else
        s->labels = malloc(((size_t)n + 1) * sizeof *s->labels);
    XB_ASSERT(s->tokens && s->offsets && (targets ? s->targets != NULL : s->labels != NULL));
    s->offsets[0] = 0;
}

int synth_check_counts(const OptValues *v, const OptSpec *o, int n, int64_t maxlen,
                       const char *source, XbError *err) {
    const int64_t ex = (int64_t)opt_int(v, o, n, "num_train") + opt_int(v, o, n, "num_val") +
                       opt_int(v, o, n, "num_test");
    if (ex * maxlen > (int64_t)2000000000)
        return xb_error_set(err, source, 0, 0, "task.num_train",
                            "%lld examples of up to %lld tokens is more than 2e9 tokens (lower "
                            "the counts or the lengths)",
                            (long long)ex, (long long)maxlen);
    return 0;
}

/* Lengths and examples from one stream, split after split, so each is allocated once. */
void synth_generate(Dataset *d, const OptValues *v, const OptSpec *o, int n, uint64_t seed,
                    int minlen, int maxlen, int step, int targets, SynthGenFn gen) {
    Rng r;
    rng_seed(&r, seed, RNG_STREAM_DATA);
    Split *splits[3] = {&d->train, &d->val, &d->test};
    const char *names[3] = {"num_train", "num_val", "num_test"};
    d->sequence = targets != 0;
    for (int k = 0; k < 3; k++) {
        const int cnt = opt_int(v, o, n, names[k]);
        alloc_split(splits[k], cnt, (int64_t)cnt * maxlen, targets);
        Split *s = splits[k];
        for (int i = 0; i < cnt; i++) {
            /* lengths in steps of `step` (recall: whole pairs) */
            const int span = (maxlen - minlen) / step + 1;
            const int len = minlen + step * (int)rng_below(&r, (uint32_t)span);
            const int64_t at = s->offsets[i];
            const int label = gen(&r, v, len, s->tokens + at, targets ? s->targets + at : NULL);
            if (!targets) s->labels[i] = label;
            s->offsets[i + 1] = at + len;
        }
    }
}

void synth_identity(Dataset *d, const char *task, const char *generator, uint64_t seed,
                    const char *const *keys, const int *values, int n) {
    dataset_id_str(&d->id, "task", task);
    dataset_id_str(&d->id, "generator", generator);
    dataset_id_uint(&d->id, "seed", seed);
    dataset_id_int(&d->id, "num_train", d->train.n);
    dataset_id_int(&d->id, "num_val", d->val.n);
    dataset_id_int(&d->id, "num_test", d->test.n);
    for (int i = 0; i < n; i++) dataset_id_int(&d->id, keys[i], values[i]);
}

void synth_distinct(Rng *r, int32_t *out, int k, int n, unsigned char *seen) {
    for (int j = n - k, i = 0; j < n; j++, i++) {
        int x = (int)rng_below(r, (uint32_t)j + 1);
        if (seen[x]) x = j; /* j itself cannot have been drawn yet */
        seen[x] = 1;
        out[i] = x;
    }
    for (int i = 0; i < k; i++) seen[out[i]] = 0;
    /* Floyd's order is far from uniform (with k = n it is 0, 1, ..., n − 1): shuffle it */
    for (int i = k - 1; i > 0; i--) {
        const int j = (int)rng_below(r, (uint32_t)i + 1);
        const int32_t t = out[i];
        out[i] = out[j], out[j] = t;
    }
}

static int parity_gen(Rng *r, const OptValues *v, int len, int32_t *out, int32_t *tgt) {
    (void)v, (void)tgt;
    int x = 0;
    for (int t = 0; t < len; t++) {
        const int bit = (int)(rng_u32(r) >> 31);
        out[t] = 1 + bit;
        x ^= bit;
    }
    return x;
}

static int parity_load(Dataset *d, const OptValues *v, uint64_t seed, const char *source,
                       XbError *err) {
    memset(d, 0, sizeof *d);
    const int lo = opt_int(v, parity_opts, NPAR, "min_length");
    const int hi = opt_int(v, parity_opts, NPAR, "max_length");
    if (lo > hi)
        return xb_error_set(err, source, 0, 0, "task.max_length",
                            "%d is shorter than task.min_length = %d (valid: %d or more)", hi, lo,
                            lo);
    if (synth_check_counts(v, parity_opts, NPAR, hi, source, err)) return -1;
    d->vocab_size = 3;
    d->n_classes = 2;
    synth_generate(d, v, parity_opts, NPAR, seed, lo, hi, 1, 0, parity_gen);
    static const char *const keys[] = {"min_length", "max_length"};
    synth_identity(d, "parity", "parity", seed, keys, (const int[]){lo, hi}, 2);
    dataset_checksum(d);
    return 0;
}

static int recall_gen(Rng *r, const OptValues *v, int len, int32_t *out, int32_t *tgt) {
    (void)tgt;
    const int K = opt_int(v, recall_opts, NREC, "keys"),
              V = opt_int(v, recall_opts, NREC, "values");
    const int n = (len - 2) / 2;
    /* n distinct keys in random order (in Floyd's own order, with n = K key p was symbol p) */
    int32_t *keys = malloc((size_t)n * sizeof *keys);
    unsigned char *seen = calloc((size_t)K, 1);
    XB_ASSERT(keys && seen);
    synth_distinct(r, keys, n, K, seen);
    for (int i = 0; i < n; i++) {
        out[2 * i] = 1 + keys[i];
        out[2 * i + 1] = 1 + K + (int)rng_below(r, (uint32_t)V);
    }
    free(keys), free(seen);
    const int q = (int)rng_below(r, (uint32_t)n);
    out[2 * n] = 1 + K + V; /* SEP */
    out[2 * n + 1] = out[2 * q];
    return out[2 * q + 1] - 1 - K;
}

static int recall_load(Dataset *d, const OptValues *v, uint64_t seed, const char *source,
                       XbError *err) {
    memset(d, 0, sizeof *d);
    const int lo = opt_int(v, recall_opts, NREC, "min_pairs");
    const int hi = opt_int(v, recall_opts, NREC, "max_pairs");
    const int K = opt_int(v, recall_opts, NREC, "keys"),
              V = opt_int(v, recall_opts, NREC, "values");
    if (lo > hi)
        return xb_error_set(err, source, 0, 0, "task.max_pairs",
                            "%d is fewer than task.min_pairs = %d (valid: %d or more)", hi, lo, lo);
    if (hi > K)
        return xb_error_set(err, source, 0, 0, "task.keys",
                            "%d key symbols cannot give %d distinct keys (valid: %d or more)", K,
                            hi, hi);
    if (synth_check_counts(v, recall_opts, NREC, 2 * (int64_t)hi + 2, source, err)) return -1;
    d->vocab_size = K + V + 2;
    d->n_classes = V;
    synth_generate(d, v, recall_opts, NREC, seed, 2 * lo + 2, 2 * hi + 2, 2, 0, recall_gen);
    static const char *const keys[] = {"min_pairs", "max_pairs", "keys", "values"};
    synth_identity(d, "recall", "associative-recall", seed, keys, (const int[]){lo, hi, K, V}, 4);
    dataset_checksum(d);
    return 0;
}

const TaskSpec task_parity = {
    .name = "parity",
    .description = "Parity: the XOR of a string of bits, 2 classes (generated)",
    .opts = parity_opts,
    .n_opts = NPAR,
    .load = parity_load,
    .generated = task_always_generated,
};

const TaskSpec task_recall = {
    .name = "recall",
    .description = "Associative recall: the value paired with a queried key, after n key-value "
                   "pairs (generated)",
    .opts = recall_opts,
    .n_opts = NREC,
    .load = recall_load,
    .generated = task_always_generated,
};
